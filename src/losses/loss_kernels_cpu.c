/*
 * loss_kernels_cpu.c - the built-in losses' kernel table on the CPU (loss_kernels.h).
 *
 * Each loss is written once, for a block of rows that share a target row
 * (sqerr_rows, logistic_rows: compiled for AVX-512 / AVX2 / baseline with the same
 * bits, LGD_CPU_CLONES); the table's kernels call it on blocks of rows in parallel, and
 * the fused Monte Carlo kernel on one sample's draws. Sums over a row use eight
 * partial sums in double (element j goes to sum j % 8, the eight added in a fixed tree),
 * so they vectorise without depending on the vector width.
 */
#include <math.h>
#include <stddef.h>

#include "backend/cpu/cpu_parallel.h"
#include "core/hd_math.h"
#include "losses/loss_kernels.h"

/* rows per unit of the parallel loops (a unit never spans two target rows) */
#define LOSS_BLOCK_ROWS 256

static inline double tree8(const double acc[8])
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

LGD_CPU_CLONES static void sqerr_rows(size_t rows, size_t cols, const float *x,
                                      const float *t, const float *weights, float *loss,
                                      float *grad)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *gr = grad ? grad + r * cols : NULL;
        double acc[8] = { 0 };
        size_t j = 0;
        if (weights) {
            for (; j + 8 <= cols; j += 8)
                for (size_t k = 0; k < 8; k++) {
                    float d = xr[j + k] - t[j + k], w = weights[j + k];
                    acc[k] += (double)w * d * d;
                }
            for (size_t k = 0; j + k < cols; k++) {
                float d = xr[j + k] - t[j + k], w = weights[j + k];
                acc[k] += (double)w * d * d;
            }
            if (gr)
                for (size_t i = 0; i < cols; i++)
                    gr[i] = 2.0f * weights[i] * (xr[i] - t[i]);
        } else { /* weights 1: the same bits as above with w = 1 */
            for (; j + 8 <= cols; j += 8)
                for (size_t k = 0; k < 8; k++) {
                    float d = xr[j + k] - t[j + k];
                    acc[k] += (double)d * d;
                }
            for (size_t k = 0; j + k < cols; k++) {
                float d = xr[j + k] - t[j + k];
                acc[k] += (double)d * d;
            }
            if (gr)
                for (size_t i = 0; i < cols; i++)
                    gr[i] = 2.0f * (xr[i] - t[i]);
        }
        loss[r] = (float)tree8(acc);
    }
}

LGD_CPU_CLONES static void logistic_rows(size_t rows, size_t cols, const float *x,
                                         const float *a, float b, float *loss, float *grad)
{
    enum { BLK = 64 };
    for (size_t r0 = 0; r0 < rows; r0 += BLK) {
        size_t nr = rows - r0 < BLK ? rows - r0 : BLK;
        float t[BLK], sp[BLK], sg[BLK];
        if (cols == 1) { /* z = b + a x: the tree below with one nonzero partial sum */
            for (size_t i = 0; i < nr; i++)
                t[i] = -(float)((double)b + (double)a[0] * x[r0 + i]);
        } else {
            for (size_t i = 0; i < nr; i++) {
                const float *xr = x + (r0 + i) * cols;
                double acc[8] = { 0 };
                size_t j = 0;
                for (; j + 8 <= cols; j += 8)
                    for (size_t k = 0; k < 8; k++)
                        acc[k] += (double)a[j + k] * xr[j + k];
                for (size_t k = 0; j + k < cols; k++)
                    acc[k] += (double)a[j + k] * xr[j + k];
                t[i] = -(float)((double)b + tree8(acc));
            }
        }
        /* loss = softplus(-z), grad = -sigmoid(-z) a */
        for (size_t i = 0; i < nr; i++)
            lgd_softplus_sigmoid(t[i], &sp[i], &sg[i]);
        for (size_t i = 0; i < nr; i++)
            loss[r0 + i] = sp[i];
        if (grad && cols == 1) {
            for (size_t i = 0; i < nr; i++)
                grad[r0 + i] = -sg[i] * a[0];
        } else if (grad) {
            for (size_t i = 0; i < nr; i++) {
                float s = -sg[i];
                float *gr = grad + (r0 + i) * cols;
                for (size_t j = 0; j < cols; j++)
                    gr[j] = s * a[j];
            }
        }
    }
}

/* Units of at most LOSS_BLOCK_ROWS rows that never span two targets: row r's target is
 * (r / per_target) % target_rows. */
static void cpu_loss_sqerr(lgd_backend *be, size_t rows, size_t cols, const float *x,
                           const float *target, size_t target_rows, size_t per_target,
                           const float *weights, float *loss, float *grad)
{
    size_t per_group = (per_target + LOSS_BLOCK_ROWS - 1) / LOSS_BLOCK_ROWS;
    size_t groups = (rows + per_target - 1) / per_target, units = groups * per_group;
    LGD_CPU_FOR(rows * cols)
    for (size_t u = 0; u < units; u++) {
        size_t gi = u / per_group, r0 = gi * per_target + (u % per_group) * LOSS_BLOCK_ROWS;
        size_t end = gi * per_target + per_target;
        end = end < rows ? end : rows;
        end = end - r0 < LOSS_BLOCK_ROWS ? end : r0 + LOSS_BLOCK_ROWS;
        if (r0 >= end)
            continue;
        sqerr_rows(end - r0, cols, x + r0 * cols, target + (gi % target_rows) * cols, weights,
                   loss + r0, grad ? grad + r0 * cols : NULL);
    }
}

static void cpu_loss_logistic(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *a, float b, float *loss, float *grad)
{
    size_t units = (rows + LOSS_BLOCK_ROWS - 1) / LOSS_BLOCK_ROWS;
    LGD_CPU_FOR(rows * cols)
    for (size_t u = 0; u < units; u++) {
        size_t r0 = u * LOSS_BLOCK_ROWS;
        size_t nr = rows - r0 < LOSS_BLOCK_ROWS ? rows - r0 : LOSS_BLOCK_ROWS;
        logistic_rows(nr, cols, x + r0 * cols, a, b, loss + r0, grad ? grad + r0 * cols : NULL);
    }
}

static void cpu_loss_residual(lgd_backend *be, size_t rows, size_t m, const float *y,
                              size_t target_rows, size_t per_target, float inv_s2, float *hx,
                              float *loss)
{
    LGD_CPU_FOR(rows * m)
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + ((r / per_target) % target_rows) * m;
        float *h = hx + r * m;
        double acc = 0.0;
        for (size_t j = 0; j < m; j++) {
            float d = h[j] - yr[j];
            acc += (double)d * d;
            h[j] = d * inv_s2;
        }
        loss[r] = (float)(0.5 * acc * inv_s2);
    }
}

const lgd_loss_kernels lgd_loss_kernels_cpu = {
    .sqerr = cpu_loss_sqerr,
    .logistic = cpu_loss_logistic,
    .residual = cpu_loss_residual,
    .sqerr_rows = sqerr_rows,
    .logistic_rows = logistic_rows,
};

const lgd_kernel_table lgd_loss_kernel_table = { "loss_builtin", LGD_LOSS_KERNELS_VERSION,
                                                 &lgd_loss_kernels_cpu };
