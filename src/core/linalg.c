/*
 * linalg.c - dense symmetric eigendecomposition in double (linalg.h): LAPACK's dsyevd
 * when the BLAS provides it, a cyclic Jacobi solver otherwise.
 */
#include <math.h>
#include <stdlib.h>

#include "core/linalg.h"
#include "lgd_config.h"

#if LGD_HAVE_LAPACK
/* LAPACK (Fortran ABI, as OpenBLAS exports it): symmetric eigendecomposition */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info);
#endif

/* Cyclic Jacobi eigendecomposition of the symmetric n x n matrix a (destroyed):
 * eigenvalues into w[n], eigenvectors into the columns of v[n][n]. */
void lgd_jacobi_eigen(double *a, size_t n, double *w, double *v)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            v[i * n + j] = (i == j);
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (size_t i = 0; i < n; i++) {
            diag += a[i * n + i] * a[i * n + i];
            for (size_t j = i + 1; j < n; j++)
                off += a[i * n + j] * a[i * n + j];
        }
        if (off <= 1e-30 * diag || off == 0.0)
            break;
        for (size_t p = 0; p < n; p++) {
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0.0)
                    continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (size_t k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        w[i] = a[i * n + i];
}

/* Eigendecomposition of the symmetric n x n matrix a (destroyed): eigenvalues into
 * w[n], eigenvectors into the columns of v[n][n]. LAPACK's divide-and-conquer solver
 * when the BLAS provides it (O(n^3) with a small constant), else cyclic Jacobi. */
int lgd_symmetric_eigen(double *a, size_t n, double *w, double *v)
{
#if LGD_HAVE_LAPACK
    if (n <= 46340) { /* n * n fits LAPACK's int */
        int N = (int)n, lwork = -1, liwork = -1, info = 0, iq = 0;
        double wq = 0.0;
        dsyevd_("V", "U", &N, a, &N, w, &wq, &lwork, &iq, &liwork, &info); /* sizes */
        if (info == 0) {
            lwork = (int)wq;
            liwork = iq;
            double *work = malloc((size_t)lwork * sizeof *work);
            int *iwork = malloc((size_t)liwork * sizeof *iwork);
            if (!work || !iwork) {
                free(work);
                free(iwork);
                return -2;
            }
            /* a is symmetric, so its row-major layout is its column-major one; on exit the
             * columns of the Fortran matrix (rows of ours) are the eigenvectors */
            dsyevd_("V", "U", &N, a, &N, w, work, &lwork, iwork, &liwork, &info);
            free(work);
            free(iwork);
            if (info == 0) {
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < n; j++)
                        v[i * n + j] = a[j * n + i];
                return 0;
            }
        }
        return -1;
    }
#endif
    lgd_jacobi_eigen(a, n, w, v);
    return 0;
}

