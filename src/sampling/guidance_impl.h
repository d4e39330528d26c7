/*
 * guidance_impl.h - the guidance object's state, private to sampling/guidance.c and
 * sampling/guidance_report.c.
 */
#ifndef LGD_GUIDANCE_IMPL_H
#define LGD_GUIDANCE_IMPL_H

#include <stddef.h>

#include "core/internal.h"
#include "sampling/mc_kernels.h"

struct lgd_guidance {
    lgd_refcount refs;
    lgd_context *ctx;
    const lgd_mc_kernels *mc; /* the backend's Monte Carlo reductions */
    lgd_model *model;
    lgd_loss *loss;           /* NULL for LGD_GUIDANCE_NONE */
    lgd_guidance_options opt;
    size_t chunk;             /* draws per chunk */
    int fused;                /* may use the backend's fused LGD-MC loop (mc_kernels.h) */
    lgd_buffer cond;          /* [cond_rows][cond_dim] */
    size_t cond_rows;
    int has_cond;
    /* scratch, grown with the batch */
    size_t batch_cap;
    lgd_buffer xhat, gvec, v;         /* [B][D] */
    lgd_buffer draws, grad;           /* [B][chunk][D] */
    lgd_buffer losses;                /* [B][chunk] */
    lgd_buffer st_max, st_sum, st_sum2, st_wloss, st_lsum, ess, lambda, norms; /* [B] */
    lgd_buffer st_vec;                /* [B][D] */
    lgd_buffer flags;                 /* [FLAG_COUNT] finiteness flags of one call */
    float *host;                      /* [B] host scratch for reports */
};

/* Finiteness of each stage of a call is recorded on the backend without waiting
 * (finite_flag) and read back once at the end of the call (check_flags). */
enum { FLAG_XHAT, FLAG_LOSS, FLAG_GRAD, FLAG_TERM, FLAG_COUNT };

/* Fills the caller's report (checked before the call by lgd_guidance_check_report),
 * never past its struct_size; every batch field is computed from the per-row floats
 * that the per-row arrays receive (guidance_report.c). */
lgd_status lgd_guidance_fill_report(lgd_guidance *g, float sigma, size_t batch, int active,
                                    int have_lambda, lgd_guidance_report *rep);

#endif
