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
    /* x[batch][n][dim] -> loss[batch * n], grad (may be NULL) like x */
    lgd_status (*eval)(lgd_loss *l, const float *x, size_t batch, size_t n, float *loss,
                       float *grad);
    void (*destroy)(lgd_loss *l);
} lgd_loss_vtable;

struct lgd_loss {
    int refs;
    lgd_context *ctx;
    const lgd_loss_vtable *vt;
    int64_t dim;
    void *impl;
};

lgd_status lgd_loss_new(lgd_context *ctx, const lgd_loss_vtable *vt, int64_t dim, void *impl,
                        lgd_loss **out);
lgd_loss *lgd_loss_retain(lgd_loss *l);
void lgd_loss_release(lgd_loss *l);
/* Evaluates through the vtable and checks the outputs are finite. */
lgd_status lgd_loss_eval_raw(lgd_loss *l, const float *x, size_t batch, size_t n, float *loss,
                             float *grad);

#endif
