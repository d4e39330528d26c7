/*
 * cpu_matrix.c - the CPU's GEMMs (the backend table's gemm and gemm_batched, and
 * every GEMM of the layers: oneDNN's sgemm when built with it, OpenBLAS otherwise),
 * row copies and batched transposes.
 *
 * Every output element is computed by one thread in a fixed order, so results do
 * not depend on the backend's thread count. GEMMs never run inside OpenMP regions:
 * OpenBLAS runs single-threaded inside an active parallel region and with its own
 * threads outside one, and with some of its kernels (Haswell, used on AVX2 machines)
 * the two give different roundings. So GEMMs are called one after the other from the
 * calling thread, and be->threads parallelises the data movement around them.
 */
#include <stddef.h>
#include <limits.h>
#include <string.h>

#include <cblas.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"

/* ------------------------------------------------------------------ GEMM */

/* The largest size OpenBLAS's int arguments take (tests/test_gemm_split.c compiles
 * this file with a small value to exercise the blocks and the plain loop). */
#ifndef LGD_CPU_BLAS_INT_MAX
#define LGD_CPU_BLAS_INT_MAX ((size_t)INT_MAX)
#endif

/* C = alpha op(A) op(B) + beta C, row-major, one dot product at a time in double: only
 * for sizes that OpenBLAS's int arguments cannot hold. beta = 0 ignores C's contents. */
static void gemm_reference(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                           const float *A, size_t lda, const float *B, size_t ldb, float beta,
                           float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < K; k++)
                acc += (double)(trans_a ? A[k * lda + i] : A[i * lda + k]) *
                       (double)(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
            float c = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * acc) + c;
        }
}

static void sgemm_any(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                      float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                      float beta, float *C, size_t ldc);

/* the GEMM libraries' threads: the backend's count (cpu_parallel.h) */
void lgd_cpu_sgemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                   float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    int saved = lgd_cpu_libs_begin(be);
    sgemm_any(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    lgd_cpu_libs_end(be, saved);
}

static void sgemm_any(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                      float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                      float beta, float *C, size_t ldc)
{
    /* oneDNN's sgemm when built with it (cpu_dnnl.c); OpenBLAS otherwise, and
     * for what oneDNN leaves to it (small or K = 0 products, errors) */
    if (be->onednn && lgd_cpu_dnnl_sgemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                                         beta, C, ldc) == 0)
        return;
    /* OpenBLAS takes int sizes (blasint). Rows beyond INT_MAX go in blocks; a column
     * count, inner size or leading dimension beyond it (a row of over 2^31 floats, 8 GiB)
     * takes the plain loop above instead of a truncated size. */
    const size_t cap = LGD_CPU_BLAS_INT_MAX;
    if (N > cap || K > cap || lda > cap || ldb > cap || ldc > cap) {
        gemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    for (size_t r0 = 0; r0 < M; r0 += cap) {
        size_t rows = M - r0 < cap ? M - r0 : cap;
        const float *Ab = trans_a ? A + r0 : A + r0 * lda; /* op(A)'s rows r0.. */
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (blasint)rows, (blasint)N, (blasint)K,
                    alpha, Ab, (blasint)lda, B, (blasint)ldb, beta, C + r0 * ldc, (blasint)ldc);
    }
}

void lgd_cpu_gemm_batched(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                          size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                          const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                          size_t ldc, size_t stride_c, size_t count)
{
    /* one call after another: see the top of the file */
    for (size_t i = 0; i < count; i++)
        lgd_cpu_sgemm(be, trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda,
                      B + i * stride_b, ldb, beta, C + i * stride_c, ldc);
}

/* ------------------------------------------------------------------ copies */

void lgd_cpu_copy_rows(lgd_backend *be, size_t rows, size_t cols, const float *src, size_t lds,
                       float beta, float *dst, size_t ldd)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *sr = src + r * lds;
        float *dr = dst + r * ldd;
        if (beta == 0.0f) {
            memmove(dr, sr, cols * sizeof(float));
        } else {
            for (size_t j = 0; j < cols; j++)
                dr[j] = sr[j] + beta * dr[j];
        }
    }
}

#define NN_TBLOCK 32

void lgd_cpu_transpose(lgd_backend *be, size_t batch, size_t rows, size_t cols, const float *x,
                       float beta, float *y)
{
    /* one unit: a band of NN_TBLOCK rows of y (columns of x) of one batch item */
    const size_t bands = (cols + NN_TBLOCK - 1) / NN_TBLOCK;
    LGD_CPU_FOR(batch * rows * cols)
    for (size_t u = 0; u < batch * bands; u++) {
        const size_t b = u / bands, j0 = (u % bands) * NN_TBLOCK;
        const size_t j1 = j0 + NN_TBLOCK < cols ? j0 + NN_TBLOCK : cols;
        const float *xb = x + b * rows * cols;
        float *yb = y + b * rows * cols;
        for (size_t i0 = 0; i0 < rows; i0 += NN_TBLOCK) {
            const size_t i1 = i0 + NN_TBLOCK < rows ? i0 + NN_TBLOCK : rows;
            for (size_t j = j0; j < j1; j++) {
                float *yr = yb + j * rows;
                if (beta == 0.0f)
                    for (size_t i = i0; i < i1; i++)
                        yr[i] = xb[i * cols + j];
                else
                    for (size_t i = i0; i < i1; i++)
                        yr[i] = xb[i * cols + j] + beta * yr[i];
            }
        }
    }
}

