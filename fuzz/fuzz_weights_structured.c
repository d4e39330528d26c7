/*
 * fuzz_weights_structured.c - the structure-aware weights loader fuzzer.
 *
 * The input is decoded into a description of a network file (netgen.h: an
 * architecture from the valid set or a mutated name, lgd.* hyperparameters such as
 * shapes, dims, channels, groups, heads, factors and layer lists, the weight dtype,
 * the schedule, and mutations of the dtype / shape / offset tables and of the bytes);
 * the target writes that file (a valid JSON header and consistent offsets unless the
 * description asks to break them), loads it with lgd_network_load_memory() and, when
 * it loads and is small, runs it (run_net.c: forward, VJP, the model and
 * lgd_model_load()). Seeds: fuzz/make_seeds.c (valid descriptions of every
 * architecture and layer, and of the fixtures in tests/fixtures/nn).
 */
#include <stdlib.h>

#include "fz_common.h"
#include "netgen.h"
#include "run_net.h"

FZ_SANITIZER_DEFAULTS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ng_desc d;
    netgen_decode(data, size, &d);
    unsigned char *file = NULL;
    size_t file_size = 0;
    if (netgen_build(&d, &file, &file_size))
        return 0;
    fz_run_network(file, file_size, d.t, d.batch);
    free(file);
    return 0;
}
