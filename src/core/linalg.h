/*
 * linalg.h - dense linear algebra on the host, in double: what the models need at
 * creation time (not per step), independent of the backend.
 */
#ifndef LGD_LINALG_H
#define LGD_LINALG_H

#include <stddef.h>

/* Eigendecomposition of a symmetric n x n matrix a (row-major, destroyed): eigenvalues
 * into w[n], eigenvectors into the columns of v[n][n]. LAPACK dsyevd when available,
 * else cyclic Jacobi (lgd_jacobi_eigen). Returns 0 on success, -1 when LAPACK failed,
 * -2 when its workspace could not be allocated. */
int lgd_symmetric_eigen(double *a, size_t n, double *w, double *v);
/* The cyclic Jacobi solver alone (same contract; always succeeds). */
void lgd_jacobi_eigen(double *a, size_t n, double *w, double *v);

#endif
