/*
 * run_net.h - what both weights fuzzers do with a file's bytes (run_net.c): load them
 * with lgd_network_load_memory() and check the loader's contract; when the network
 * loads and is small enough to run in milliseconds, one forward pass and one VJP on a
 * small batch (and calls with wrong shapes, which must be refused); when it can be a
 * model, the model from it (denoise and VJP) and lgd_model_load() of the same bytes,
 * which must agree.
 */
#ifndef LGD_FUZZ_RUN_NET_H
#define LGD_FUZZ_RUN_NET_H

#include <stddef.h>

/* Runs the checks above on a context of its own. t: the network time; batch: rows. */
void fz_run_network(const unsigned char *file, size_t size, float t, int batch);

/* The work caps (the largest network that is run, not only loaded). Attention costs
 * positions^2 per block, which the parameter count does not see: hence the small dim,
 * and the time cap (a forward pass slower than FZ_NET_MAX_FORWARD_MS is not followed by
 * the VJP and the model). */
#define FZ_NET_MAX_DIM 512
#define FZ_NET_MAX_FORWARD_MS 20.0
#define FZ_NET_MAX_OUT_DIM 8192
#define FZ_NET_MAX_COND_DIM 1024
#define FZ_NET_MAX_PARAMS 200000
#define FZ_NET_MAX_WORK 8000000.0 /* parameters x input floats: a bound on the MACs */

#endif
