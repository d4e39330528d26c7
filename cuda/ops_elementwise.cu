/*
 * ops_elementwise.cu - elementwise operations (fill, axpby and their row-wise and
 * broadcast forms, diagonal filters, select_rows). Each mirrors the loop of the
 * same name in src/backend_cpu.c, expression for expression.
 *
 * Kernels are templated on the index type: 32-bit when the element count fits
 * (cheaper divisions for the row/column split), 64-bit otherwise.
 */
#include "cuda_kernels.cuh"


template <typename I> __global__ void fill_kernel(float *x, size_t n, float value)
{
    LGD_GRID_STRIDE(I, i, n)
        x[i] = value;
}

extern "C" void lgd_cuda_fill(lgd_backend *be, float *x, size_t n, float value)
{
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if (bits == 0u) { /* +0.0f: all bytes zero */
        lgd_cuda_check(be, cudaMemsetAsync(x, 0, n * sizeof(float), be->stream),
                       "fill (cudaMemsetAsync)");
        return;
    }
    LGD_LAUNCH_FLAT(be, n, fill_kernel, x, n, value);
}

template <typename I>
__global__ void axpby_kernel(size_t n, float a, const float *x, float b, float *y)
{
    if (b == 0.0f) {
        LGD_GRID_STRIDE(I, i, n)
            y[i] = a * x[i];
    } else {
        LGD_GRID_STRIDE(I, i, n)
            y[i] = a * x[i] + b * y[i];
    }
}

extern "C" void lgd_cuda_axpby(lgd_backend *be, size_t n, float a, const float *x, float b,
                               float *y)
{
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, axpby_kernel, n, a, x, b, y);
}

template <typename I>
__global__ void axpby_rows_kernel(size_t n, size_t cols, const float *a, size_t a_stride,
                                  const float *x, float b, float *y)
{
    LGD_GRID_STRIDE(I, i, n) {
        I r = i / (I)cols;
        float ar = a[(size_t)r * a_stride];
        if (b == 0.0f)
            y[i] = ar * x[i];
        else
            y[i] = ar * x[i] + b * y[i];
    }
}

extern "C" void lgd_cuda_axpby_rows(lgd_backend *be, size_t rows, size_t cols, const float *a,
                                    size_t a_stride, const float *x, float b, float *y)
{
    size_t n = rows * cols;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, axpby_rows_kernel, n, cols, a, a_stride, x, b, y);
}

template <typename I>
__global__ void sub_row_kernel(size_t n, size_t cols, const float *x, const float *row,
                               float *out)
{
    LGD_GRID_STRIDE(I, i, n)
        out[i] = x[i] - row[i % (I)cols];
}

extern "C" void lgd_cuda_sub_row(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                 const float *row, float *out)
{
    size_t n = rows * cols;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, sub_row_kernel, n, cols, x, row, out);
}

template <typename I>
__global__ void broadcast_axpy_kernel(size_t n, size_t repeat, size_t cols, const float *x,
                                      float a, const float *y, float *out)
{
    LGD_GRID_STRIDE(I, i, n) {
        I r = i / (I)cols, j = i - r * (I)cols;
        out[i] = x[(size_t)(r / (I)repeat) * cols + j] + a * y[i];
    }
}

extern "C" void lgd_cuda_broadcast_axpy(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                                        const float *x, float a, const float *y, float *out)
{
    size_t n = rows * cols;
    if (n == 0 || repeat == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, broadcast_axpy_kernel, n, repeat, cols, x, a, y, out);
}

template <typename I>
__global__ void diag_filter_kernel(int filter, size_t n, size_t cols, const float *lam, float s2,
                                   const float *in, float *out)
{
    LGD_GRID_STRIDE(I, i, n) {
        float l = lam[i % (I)cols], f;
        switch (filter) {
        case LGD_FILTER_SHRINK: f = l / (l + s2); break;
        case LGD_FILTER_PRECISION: f = 1.0f / (l + s2); break;
        default: f = sqrtf(l * s2 / (l + s2)); break;
        }
        out[i] = f * in[i];
    }
}

extern "C" void lgd_cuda_diag_filter(lgd_backend *be, lgd_diag_filter filter, size_t rows,
                                     size_t cols, const float *lam, float s2, const float *in,
                                     float *out)
{
    size_t n = rows * cols;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, diag_filter_kernel, (int)filter, n, cols, lam, s2, in, out);
}

template <typename I>
__global__ void inv_sqrt_scale_kernel(size_t n, float w, const float *in, float floor, float *out)
{
    LGD_GRID_STRIDE(I, i, n)
        out[i] = w / sqrtf(in[i] > floor ? in[i] : floor);
}

extern "C" void lgd_cuda_inv_sqrt_scale(lgd_backend *be, size_t n, float w, const float *in,
                                        float floor, float *out)
{
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, inv_sqrt_scale_kernel, n, w, in, floor, out);
}

template <typename I>
__global__ void select_rows_kernel(size_t total, size_t cols, const int32_t *idx, int32_t k,
                                   const float *src, float *dst)
{
    LGD_GRID_STRIDE(I, i, total) {
        if (idx[i / (I)cols] == k)
            dst[i] = src[i];
    }
}

extern "C" void lgd_cuda_select_rows(lgd_backend *be, size_t n, size_t cols, const int32_t *idx,
                                     int32_t k, const float *src, float *dst)
{
    size_t total = n * cols;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, select_rows_kernel, total, cols, idx, k, src, dst);
}

/* C[r][j] = beta C[r][j] for r < rows, j < cols, row stride ldc (GEMM with K = 0); beta = 0
 * writes zeros (NaN in C is not propagated, as in BLAS). */
template <typename I>
__global__ void scale_matrix_kernel(size_t n, size_t cols, size_t ldc, float beta, float *C)
{
    LGD_GRID_STRIDE(I, i, n) {
        I r = i / (I)cols, j = i - r * (I)cols;
        float *c = C + (size_t)r * ldc + (size_t)j;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

extern "C" void lgd_cuda_scale_matrix(lgd_backend *be, size_t rows, size_t cols, float beta,
                                      float *C, size_t ldc)
{
    size_t n = rows * cols;
    if (n == 0 || beta == 1.0f)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, scale_matrix_kernel, n, cols, ldc, beta, C);
}
