/*
 * test_gemm_split.c - the CPU GEMM's guards against OpenBLAS's int sizes
 * (src/backend/cpu/cpu_matrix.c): compiled here with LGD_CPU_BLAS_INT_MAX = 7, so that
 * row counts above it go to OpenBLAS in blocks, and column counts, inner sizes or
 * leading dimensions above it take the plain double loop. Every transpose combination
 * and beta 0 / non-zero, against a float64 reference; oneDNN is off for these calls.
 */
#define LGD_CPU_BLAS_INT_MAX ((size_t)7)
#include "backend/cpu/cpu_matrix.c"

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "testutil.h"

static double ref_entry(int ta, int tb, size_t K, const float *A, size_t lda, const float *B,
                        size_t ldb, size_t i, size_t j)
{
    double acc = 0.0;
    for (size_t k = 0; k < K; k++)
        acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
               (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
    return acc;
}

static void check_case(size_t M, size_t N, size_t K, int ta, int tb, float beta)
{
    tu_rng r = { 1234 + M * 31 + N * 7 + K };
    size_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
    size_t arows = ta ? K : M, brows = tb ? N : K;
    float *A = malloc(arows * lda * sizeof *A), *B = malloc(brows * ldb * sizeof *B);
    float *C = malloc(M * ldc * sizeof *C), *C0 = malloc(M * ldc * sizeof *C0);
    ck_assert(A && B && C && C0);
    tu_fill_normal(&r, A, arows * lda, 1.0f);
    tu_fill_normal(&r, B, brows * ldb, 1.0f);
    tu_fill_normal(&r, C, M * ldc, 1.0f);
    if (beta == 0.0f) /* beta = 0 must ignore C, NaN included */
        for (size_t i = 0; i < M * ldc; i++)
            C[i] = NAN;
    memcpy(C0, C, M * ldc * sizeof *C);
    lgd_backend be;
    memset(&be, 0, sizeof be); /* onednn = 0: OpenBLAS or the plain loop */
    const float alpha = 0.75f;
    lgd_cpu_sgemm(&be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++) {
            if (j >= N) { /* padding untouched */
                ck_assert_mem_eq(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float));
                continue;
            }
            double want = alpha * ref_entry(ta, tb, K, A, lda, B, ldb, i, j) +
                          (beta == 0.0f ? 0.0 : (double)beta * C0[i * ldc + j]);
            ck_assert_msg(fabs(C[i * ldc + j] - want) <= 1e-5 * (1.0 + fabs(want)) * (double)K,
                          "M=%zu N=%zu K=%zu ta=%d tb=%d beta=%g: C[%zu][%zu] = %g, want %g", M,
                          N, K, ta, tb, (double)beta, i, j, (double)C[i * ldc + j], want);
        }
    free(A);
    free(B);
    free(C);
    free(C0);
}

#ifdef _OPENMP
#include <omp.h>
#endif

/* The backend's thread count reaches OpenBLAS (its OpenMP build sizes its team by the
 * calling thread's omp_get_max_threads(), set around the call), and the caller's own
 * OpenMP setting is restored after. */
START_TEST(the_backend_thread_count_reaches_openblas)
{
#if defined(_OPENMP)
    if (openblas_get_parallel() != 2) /* 2: the OpenMP build */
        return;
    enum { n = 384 }; /* large enough for OpenBLAS to consider threads */
    float *a = calloc(n * n, sizeof(float)), *c = calloc(n * n, sizeof(float));
    lgd_backend be;
    memset(&be, 0, sizeof be);
    /* The host's OpenMP setting is 2 threads and OpenBLAS has run with it; a backend
     * with 3 makes OpenBLAS run with 3 (seen in the count it reports, which it caps at
     * the CPUs: with fewer than 3 only the restoring of the host's setting is checked;
     * a count of 1 it never reports, it then runs alone without updating it). */
    int host = omp_get_max_threads();
    omp_set_num_threads(2);
    be.threads = 2;
    lgd_cpu_sgemm(&be, 0, 0, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
    be.threads = 3;
    lgd_cpu_sgemm(&be, 0, 0, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
    if (omp_get_num_procs() >= 3)
        ck_assert_int_eq(openblas_get_num_threads(), 3);
    ck_assert_int_eq(omp_get_max_threads(), 2); /* the host's setting, restored */
    be.threads = 1;
    lgd_cpu_sgemm(&be, 0, 0, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
    ck_assert_int_eq(omp_get_max_threads(), 2);
    omp_set_num_threads(host);
    free(a);
    free(c);
#endif
}
END_TEST

START_TEST(rows_in_blocks_and_wide_sizes_in_the_plain_loop)
{
    /* M = 20 > 7: three blocks through OpenBLAS (N, K and the leading dims <= 7 need
     * lda <= 7: K = 3, N = 2); then N or K above 7: the plain loop */
    const size_t shapes[][3] = { { 20, 2, 3 }, { 7, 2, 3 }, { 1, 2, 3 }, { 5, 9, 3 },
                                 { 5, 3, 11 }, { 17, 12, 9 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_case(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, 0.0f);
                check_case(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, 0.5f);
            }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gemm_split");
    TCase *tc = tcase_create("gemm");
    tcase_add_test(tc, rows_in_blocks_and_wide_sizes_in_the_plain_loop);
    tcase_add_test(tc, the_backend_thread_count_reaches_openblas);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
