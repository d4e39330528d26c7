/*
 * loss_internal.h - the losses' private interface: the vtable every loss fills and the
 * loss object. Used by losses/ and the guidance.
 */
#ifndef LGD_LOSS_INTERNAL_H
#define LGD_LOSS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

typedef struct lgd_loss_vtable {
    const char *name;
    /* x[batch][n][dim] -> loss[batch * n], grad (may be NULL) like x. Row (b * n + i)
     * is draw first_draw + i of the total_draws draws of sample b (guidance: a chunk of
     * n_samples; elsewhere 0 and n); only callback losses (eval_draws) look at them. */
    lgd_status (*eval)(lgd_loss *l, const float *x, size_t batch, size_t n, size_t first_draw,
                       size_t total_draws, float *loss, float *grad);
    void (*destroy)(lgd_loss *l);
} lgd_loss_vtable;

/* A loss's evaluation on one sample's draws, on the calling thread and host memory
 * (built-in losses on the CPU): x[m][dim] are draws of sample `sample` of the guidance
 * batch -> loss[m], grad[m][dim], in the same arithmetic as the vtable's eval gives those
 * rows. The fused Monte Carlo kernel (sampling/mc_kernels.h) calls it inside its own
 * parallel loop. target_rows: the rows of the loss's target (the batch must have as many,
 * or the target one; otherwise the guidance takes eval, which reports it), 0 for none. */
typedef struct lgd_loss_block {
    void (*eval)(const lgd_loss *l, size_t sample, size_t m, const float *x, float *loss,
                 float *grad);
    size_t target_rows;
} lgd_loss_block;

struct lgd_loss {
    lgd_refcount refs;
    lgd_context *ctx;
    const lgd_loss_vtable *vt;
    int64_t dim;
    void *impl;
    /* the dlopen reference of the plugin that made this loss (lgd_loss_load_plugin), or
     * NULL; dropped by the final release after vt->destroy (src/plugins/) */
    void *plugin;
    lgd_loss_block block; /* eval NULL: none (every loss but the CPU's built-ins) */
};

lgd_status lgd_loss_new(lgd_context *ctx, const lgd_loss_vtable *vt, int64_t dim, void *impl,
                        lgd_loss **out);
lgd_loss *lgd_loss_retain(lgd_loss *l);
void lgd_loss_release(lgd_loss *l);
/* Evaluates through the vtable and checks the outputs are finite: draws first_draw ..
 * first_draw + n - 1 of total_draws (lgd_loss_eval_draws), or all n draws of n
 * (lgd_loss_eval_raw: first_draw 0, total_draws n). */
lgd_status lgd_loss_eval_draws(lgd_loss *l, const float *x, size_t batch, size_t n,
                               size_t first_draw, size_t total_draws, float *loss, float *grad);
lgd_status lgd_loss_eval_raw(lgd_loss *l, const float *x, size_t batch, size_t n, float *loss,
                             float *grad);

#endif
