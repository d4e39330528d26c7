/*
 * kernels_operator.cu - the matrix-free linear operators' kernel table on CUDA
 * ("operator", losses/operator_kernels.h): a 1-D sparse map along one image axis and
 * the elementwise mask. One thread per output element, summing its taps in double in
 * CSR order as the CPU does (losses/operator_kernels_cpu.c): a product of two floats is
 * exact in double and the module is built without FMA contraction, so the results are
 * the CPU's bits.
 */
#include "cuda_kernels.cuh"
#include "kernel_tables.h"
#include "losses/operator_kernels.h"

/* out[o][i][k] = sum_e weight[e] x[o][index[e]][k], e over row i of the CSR map;
 * element t of out is (o, i, k) with t = (o n_out + i) inner + k */
template <typename I>
__global__ void op_apply_axis_kernel(size_t total, size_t n_in, size_t n_out, size_t inner,
                                     const int32_t *offsets, const int32_t *index,
                                     const float *weight, const float *x, float *out)
{
    LGD_GRID_STRIDE(I, t, total) {
        I q = t / (I)inner, k = t % (I)inner;
        I o = q / (I)n_out, i = q % (I)n_out;
        const float *xo = x + (size_t)o * n_in * inner + (size_t)k;
        double acc = 0.0;
        for (int32_t e = offsets[i]; e < offsets[i + 1]; e++)
            acc += (double)weight[e] * (double)xo[(size_t)index[e] * inner];
        out[t] = (float)acc;
    }
}

static void cuda_op_apply_axis(lgd_backend *be, size_t outer, size_t n_in, size_t n_out,
                               size_t inner, const int32_t *offsets, const int32_t *index,
                               const float *weight, const float *x, float *out)
{
    size_t total = outer * n_out * inner; /* the output's numel */
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, op_apply_axis_kernel, total, n_in, n_out, inner, offsets, index,
                    weight, x, out);
}

template <typename I>
__global__ void op_mul_rows_kernel(size_t n, size_t cols, const float *mask, const float *x,
                                   float *out)
{
    LGD_GRID_STRIDE(I, i, n)
        out[i] = mask[i % (I)cols] * x[i];
}

static void cuda_op_mul_rows(lgd_backend *be, size_t rows, size_t cols, const float *mask,
                             const float *x, float *out)
{
    size_t n = rows * cols;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, op_mul_rows_kernel, n, cols, mask, x, out);
}

extern "C" const lgd_operator_kernels lgd_cuda_operator_kernels = {
    .apply_axis = cuda_op_apply_axis,
    .mul_rows = cuda_op_mul_rows,
};
