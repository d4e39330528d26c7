/*
 * cpu_backend.h - the CPU backend's state (struct lgd_backend on the CPU) and its
 * grow-only scratch.
 *
 * Private to the CPU backend (backend/cpu/) and to the modules' CPU kernel tables,
 * which read `threads` through cpu_parallel.h.
 */
#ifndef LGD_CPU_BACKEND_H
#define LGD_CPU_BACKEND_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend/backend.h"

/* Convolution primitives that one backend keeps (oneDNN, cpu_dnnl.c). */
#define LGD_DNNL_CONV_CACHE 96

struct lgd_dnnl_conv;
struct dnnl_engine;
struct dnnl_stream;

/* The CPU backend's state. A backend object is used by one thread at a time, so
 * the scratch buffer and the oneDNN state need no lock. */
struct lgd_cpu_pool;

/* The contention guard's state (cpu_contention.h): the last measurement of the
 * driving thread's run-queue wait and the decision it gave. Atomics: any thread may
 * ask, and a stale answer only costs time. */
typedef struct lgd_cpu_contention {
    int enabled;
    _Atomic int contended;
    _Atomic long long checked_ns; /* CLOCK_MONOTONIC of the last measurement; 0: none */
    _Atomic long long wait_ns;    /* the measured thread's run-queue wait then */
    _Atomic long long tid;        /* the measured thread */
} lgd_cpu_contention;

struct lgd_backend {
    int threads;
    lgd_cpu_contention contention;
    /* the backend's own parking workers (cpu_pool.h), started by the first loop that
     * uses them (lgd_cpu_pool_get); NULL with one thread or when none could start */
    struct lgd_cpu_pool *pool;
    int pool_tried;
    char name[96];
    /* grow-only scratch of the network layers (im2col / col2im tiles, oneDNN's
     * reordered tensors and scratchpads), 64-byte aligned; freed by lgd_cpu_nn_release */
    float *nn_scratch;
    size_t nn_scratch_floats;
    /* oneDNN (cpu_dnnl.c). onednn: built with it and not switched off by
     * LGD_CPU_ONEDNN=0 when the backend opened (lgd_cpu_dnnl_init). The engine and
     * stream are created by the first convolution (dnnl_failed: that failed, so the
     * im2col path is used from then on); primitives are cached per shape, least
     * recently used out first; all freed by lgd_cpu_dnnl_release. */
    int onednn;
    int dnnl_failed;
    struct dnnl_engine *dnnl_engine;
    struct dnnl_stream *dnnl_stream;
    struct lgd_dnnl_conv *dnnl_convs[LGD_DNNL_CONV_CACHE];
    uint64_t dnnl_clock;      /* LRU clock */
    uint64_t dnnl_conv_calls; /* convolutions computed by oneDNN (seen by the tests) */
};

/* The backend's worker pool for `threads` threads, started on first use; NULL means
 * "run on the caller" (one thread, or the threads could not be started). */
struct lgd_cpu_pool *lgd_cpu_pool_get(lgd_backend *be);

/* Frees the network layers' scratch (called by the backend's destroy). */
void lgd_cpu_nn_release(lgd_backend *be);
/* At least `floats` floats of the grow-only scratch (64-byte aligned), or NULL. */
float *lgd_cpu_nn_scratch(lgd_backend *be, size_t floats);

#endif
