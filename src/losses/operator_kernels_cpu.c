/*
 * operator_kernels_cpu.c - the linear operators' kernel table on the CPU
 * (operator_kernels.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_parallel.h"
#include "losses/operator_kernels.h"

#define OP_BLOCK 8

static void cpu_op_apply_axis(lgd_backend *be, size_t outer, size_t n_in, size_t n_out,
                              size_t inner, const int32_t *offsets, const int32_t *index,
                              const float *weight, const float *x, float *out)
{
    size_t lines = outer * n_out; /* one (o, i) pair each; <= the output's numel */
    LGD_CPU_FOR(lines * inner)
    for (size_t q = 0; q < lines; q++) {
        size_t o = q / n_out, i = q % n_out;
        const float *xo = x + o * n_in * inner;
        float *dst = out + q * inner;
        size_t e0 = (size_t)offsets[i], e1 = (size_t)offsets[i + 1], k = 0;
        /* OP_BLOCK elements side by side (independent sums, vectorisable); each one's
         * taps are still added in CSR order, as below */
        for (; k + OP_BLOCK <= inner; k += OP_BLOCK) {
            double acc[OP_BLOCK] = { 0.0 };
            for (size_t e = e0; e < e1; e++) {
                double w = (double)weight[e];
                const float *xr = xo + (size_t)index[e] * inner + k;
                for (size_t b = 0; b < OP_BLOCK; b++)
                    acc[b] += w * (double)xr[b];
            }
            for (size_t b = 0; b < OP_BLOCK; b++)
                dst[k + b] = (float)acc[b];
        }
        for (; k < inner; k++) {
            double acc = 0.0;
            for (size_t e = e0; e < e1; e++)
                acc += (double)weight[e] * (double)xo[(size_t)index[e] * inner + k];
            dst[k] = (float)acc;
        }
    }
}

static void cpu_op_mul_rows(lgd_backend *be, size_t rows, size_t cols, const float *mask,
                            const float *x, float *out)
{
    size_t n = rows * cols; /* the elements of x */
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        out[i] = mask[i % cols] * x[i];
}

const lgd_operator_kernels lgd_operator_kernels_cpu = {
    .apply_axis = cpu_op_apply_axis,
    .mul_rows = cpu_op_mul_rows,
};

const lgd_kernel_table lgd_operator_kernel_table = { "operator", LGD_OPERATOR_KERNELS_VERSION,
                                                     &lgd_operator_kernels_cpu };
