/*
 * image_metrics.h - the image metrics of `lgd superres` and `lgd classcond`: PSNR, SSIM,
 * the Frechet distance between two sets of feature vectors (with the symmetric
 * eigendecomposition it needs), and the cross-entropy / accuracy of classifier logits.
 *
 * Not part of liblgd's API. Plain C11 and libm only (no liblgd), so that the unit test
 * (tests/test_image_tools.c) compiles this file on its own and checks every function
 * against exact answers. Everything is computed in double; no function allocates more
 * than O(d^2) scratch, and none keeps state between calls.
 */
#ifndef LGD_TOOL_IMAGE_METRICS_H
#define LGD_TOOL_IMAGE_METRICS_H

#include <stdint.h>

/*
 * PSNR = 10 log10(range^2 / MSE) in dB of image a against the reference b (n values
 * each), range the data range (2 for images in [-1, 1]). +infinity when the images are
 * equal (MSE 0).
 */
double img_psnr(const float *a, const float *b, int64_t n, double range);

/*
 * SSIM (Wang et al. 2004) of a against b, single-channel images of h x w pixels
 * (row-major), as scikit-image's structural_similarity(a, b, win_size=win,
 * data_range=range) computes it (its defaults otherwise: a uniform win x win window,
 * sample covariances with the divisor N - 1, K1 = 0.01, K2 = 0.03): the SSIM map
 *   ((2 mu_a mu_b + C1)(2 cov_ab + C2)) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)),
 *   C1 = (0.01 range)^2, C2 = (0.03 range)^2,
 * over every window that lies wholly inside the image, averaged. win odd, 3 <= win <=
 * min(h, w). Returns NaN for bad sizes.
 */
double img_ssim(const float *a, const float *b, int h, int w, int win, double range);

/*
 * The eigendecomposition of the symmetric d x d matrix a (row-major; only read) by
 * cyclic Jacobi rotations, in double: eigenvalues into evals[d] (ascending) and, when
 * evecs is not NULL, the orthonormal eigenvectors as the columns of evecs[d][d]
 * (row-major: evecs[i * d + k] is component i of vector k). Returns 0, or -1 when
 * d < 1 or d > IMG_EIG_MAX_DIM or it did not converge in 100 sweeps.
 */
#define IMG_EIG_MAX_DIM 64
int img_sym_eig(const double *a, int d, double *evals, double *evecs);

/*
 * The mean mu[d] and sample covariance cov[d][d] (divisor n - 1, as numpy.cov) of the n
 * rows x[n][d] (float), n >= 2. Returns 0, or -1 for n < 2 or d out of [1,
 * IMG_EIG_MAX_DIM].
 */
int img_mean_cov(const float *x, int64_t n, int d, double *mu, double *cov);

/*
 * The Frechet distance between the Gaussians N(mu1, c1) and N(mu2, c2) in d dimensions
 * (Heusel et al. 2017, the FID formula):
 *   |mu1 - mu2|^2 + tr(c1) + tr(c2) - 2 tr((c1^{1/2} c2 c1^{1/2})^{1/2}),
 * the last trace computed as the sum of the square roots of the eigenvalues of the
 * symmetric positive semi-definite c1^{1/2} c2 c1^{1/2} (equal to tr sqrtm(c1 c2);
 * eigenvalues below 0 from rounding count as 0). Returns NaN on failure (sizes,
 * non-convergence).
 */
double img_frechet_gauss(const double *mu1, const double *c1, const double *mu2,
                         const double *c2, int d);

/* The Frechet distance between the feature sets x[nx][d] and y[ny][d] (their means and
 * sample covariances, img_mean_cov()); NaN when nx or ny < 2. */
double img_frechet(const float *x, int64_t nx, const float *y, int64_t ny, int d);

/* The cross-entropy -log softmax(logits)[label] of one row of k logits, in double
 * (log-sum-exp with the maximum taken out). */
double img_cross_entropy(const float *logits, int k, int label);

/* The index of the largest of k logits (the first on ties). */
int img_argmax(const float *logits, int k);

/* Mean and sample standard deviation (divisor n - 1; 0 when n = 1; NaN when n = 0) of
 * v[n]. */
void img_mean_sd(const double *v, int n, double *mean, double *sd);

#endif /* LGD_TOOL_IMAGE_METRICS_H */
