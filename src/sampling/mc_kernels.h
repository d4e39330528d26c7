/*
 * mc_kernels.h - the guidance's Monte Carlo reductions, as a kernel table
 * (core/kernels.h): the online log-sum-exp over LGD-MC draws (sampling/guidance.c).
 *
 * CPU: sampling/mc_kernels_cpu.c; CUDA: cuda/kernels_mc.cu.
 */
#ifndef LGD_MC_KERNELS_H
#define LGD_MC_KERNELS_H

#include <stddef.h>

#include "backend/backend.h"
#include "core/kernels.h"

#define LGD_MC_KERNELS_VERSION 1u

/* State of the online log-sum-exp over Monte Carlo draws, one entry per row b:
 *   max[b] = running max of -l, sum[b] = sum_i exp(-l_i - max), sum2[b] = sum_i
 *   exp(-2 l_i - 2 max), wloss[b] = sum_i exp(-l_i - max) l_i, lsum[b] = sum_i l_i,
 *   vec[b][:] = sum_i exp(-l_i - max) v_i. All backend memory. */
typedef struct lgd_mc_state {
    float *max, *sum, *sum2, *wloss, *lsum; /* [rows] */
    float *vec;                             /* [rows][cols] */
} lgd_mc_state;

struct lgd_loss; /* losses/loss_internal.h (no public header: the CUDA module includes this) */
struct lgd_posterior_sampler; /* models/model_internal.h */

typedef struct lgd_mc_kernels {
    void (*reset)(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st);
    /* folds draws loss[rows][draws], vec[rows][draws][cols] into the state */
    void (*accumulate)(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                       const float *loss, const float *vec, lgd_mc_state *st);
    /* out[r][:] = vec / sum; ess[r] = sum^2 / sum2; wloss[r] = wloss / sum (in place) */
    void (*finish)(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st, float *out,
                   float *ess);
    /* Optional (the CPU's table; NULL on devices): the whole LGD-MC loop over draws
     * [rng->first_draw, end) of every row in one pass, for a loss with a block evaluator
     * (losses/loss_internal.h): per row, chunk by chunk (chunks start at multiples of
     * `chunk`, as the unfused loop's), draws[r] = xhat[r] + radius eps (the normal
     * stream of normal_around), loss and gradient by the block evaluator into the
     * row's slice of losses[rows][chunk] and grad[rows][chunk][cols], folded into the
     * state by accumulate's arithmetic: the same bits as the unfused loop, with every
     * intermediate in the row's slice (cache-resident) and one parallel loop (rows
     * scheduled dynamically: a thread slowed by another process costs its share, not
     * the whole). With values_only (the gradient-free kind) the loss is evaluated
     * without its gradient and the folded vector is xhat[r] - draws[r] (broadcast_axpy's
     * arithmetic). Returns nonzero when some loss value is not finite. */
    int (*fused)(lgd_backend *be, const struct lgd_loss *loss, const lgd_rng_stream *rng, size_t rows,
                 size_t end, size_t chunk, size_t cols, const float *xhat, float radius,
                 int values_only, float *draws, float *grad, float *losses, lgd_mc_state *st);
    /* Optional (the CPU's table; NULL on devices): the same for the exact kind, draws
     * [first, end) of every row: per row, span by span, the draws from the model's block
     * sampler (models/model_internal.h), their loss values by the block evaluator (no
     * gradient), and the draws themselves folded by accumulate's arithmetic, chunk by
     * chunk (chunks start at multiples of `chunk`): the same bits as the unfused loop
     * (sample_posterior, eval, accumulate). draws[rows][chunk][cols] and losses[rows][chunk]
     * are scratch for spans too large for the stack. Returns nonzero when some loss
     * value is not finite. */
    int (*fused_exact)(lgd_backend *be, const struct lgd_loss *loss,
                       const struct lgd_posterior_sampler *ps, size_t rows, size_t first,
                       size_t end, size_t chunk, size_t cols, float *draws, float *losses,
                       lgd_mc_state *st);
} lgd_mc_kernels;

extern const lgd_mc_kernels lgd_mc_kernels_cpu;
extern const lgd_kernel_table lgd_mc_kernel_table; /* "mc", version 1 */

#endif
