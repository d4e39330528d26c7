/*
 * fuzz_weights_bytes.c - plain bytes into lgd_network_load_memory(): the safetensors
 * parser, the JSON reader and the builders on whatever libFuzzer makes of the files
 * in tests/fixtures/nn (the seeds). A file that loads and is small is run as the
 * structured fuzzer runs it (run_net.c). fuzz/dict/safetensors.dict gives libFuzzer
 * the header's words.
 */
#include "fz_common.h"
#include "run_net.h"

FZ_SANITIZER_DEFAULTS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the time and batch come from the input's length: no byte of the file is spent */
    fz_run_network(data, size, size % 3 ? 37.5f : 0.5f, 1 + (int)(size % 2));
    return 0;
}
