/*
 * ops_elementwise.cu - the backend table's elementwise operations (fill, axpby and
 * their row-wise and broadcast forms, inv_sqrt_scale, select_rows) and layout
 * operations (copy_rows, transpose), and the scaling of a GEMM with K = 0. Each
 * mirrors the loop of the same name in src/backend/cpu/ (cpu_backend.c, cpu_matrix.c),
 * expression for expression.
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

/* ---- row copies, transposes ---- */

template <typename I>
__global__ void copy_rows_kernel(size_t total, size_t cols, const float *src, size_t lds,
                                 float beta, float *dst, size_t ldd)
{
    LGD_GRID_STRIDE(I, i, total) {
        I r = i / (I)cols, j = i - r * (I)cols;
        float *d = dst + (size_t)r * ldd + (size_t)j;
        *d = lgd_acc(src[(size_t)r * lds + (size_t)j], beta, d);
    }
}

extern "C" void lgd_cuda_copy_rows(lgd_backend *be, size_t rows, size_t cols, const float *src,
                                   size_t lds, float beta, float *dst, size_t ldd)
{
    size_t total = rows * cols;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, copy_rows_kernel, total, cols, src, lds, beta, dst, ldd);
}

/* y[b][j][i] = x[b][i][j] + beta y[b][j][i] through 32 x 32 shared-memory tiles
 * (reads and writes coalesced); blocks of 32 x 8 threads stride over the tiles. */
#define LGD_TILE 32
#define LGD_TILE_ROWS 8

__global__ void transpose_kernel(size_t batch, size_t rows, size_t cols, const float *x,
                                 float beta, float *y)
{
    __shared__ float tile[LGD_TILE][LGD_TILE + 1];
    const size_t tr = (rows + LGD_TILE - 1) / LGD_TILE, tc = (cols + LGD_TILE - 1) / LGD_TILE;
    const size_t tiles = batch * tr * tc;
    const unsigned tx = threadIdx.x, ty = threadIdx.y;
    for (size_t t = blockIdx.x; t < tiles; t += gridDim.x) { /* uniform in the block */
        size_t tj = t % tc, u = t / tc;
        size_t ti = u % tr, b = u / tr;
        const float *xb = x + b * rows * cols;
        float *yb = y + b * rows * cols;
        size_t i0 = ti * LGD_TILE, j0 = tj * LGD_TILE;
        for (unsigned k = ty; k < LGD_TILE; k += LGD_TILE_ROWS) {
            size_t i = i0 + k, j = j0 + tx;
            if (i < rows && j < cols)
                tile[k][tx] = xb[i * cols + j];
        }
        __syncthreads();
        for (unsigned k = ty; k < LGD_TILE; k += LGD_TILE_ROWS) {
            size_t j = j0 + k, i = i0 + tx; /* y[j][i] */
            if (i < rows && j < cols) {
                float *d = yb + j * rows + i;
                *d = lgd_acc(tile[tx][k], beta, d);
            }
        }
        __syncthreads(); /* the tile is reused by the next iteration */
    }
}

extern "C" void lgd_cuda_transpose(lgd_backend *be, size_t batch, size_t rows, size_t cols,
                                   const float *x, float beta, float *y)
{
    if (batch == 0 || rows == 0 || cols == 0)
        return;
    lgd_cuda_enter(be);
    size_t tiles = batch * ((rows + LGD_TILE - 1) / LGD_TILE) * ((cols + LGD_TILE - 1) / LGD_TILE);
    size_t cap = (size_t)(be->sm_count > 0 ? be->sm_count : 16) * 32;
    unsigned blocks = (unsigned)(tiles < cap ? tiles : cap);
    transpose_kernel<<<blocks, dim3(LGD_TILE, LGD_TILE_ROWS), 0, be->stream>>>(batch, rows, cols,
                                                                              x, beta, y);
    LGD_CUDA_LAUNCHED(be, "transpose_kernel");
}
