/*
 * sample_stats.h - the statistics the lgd tool reports: moments, the Gaussian KL
 * divergence of the paper's App. B.1, quantiles, density histograms, curve errors.
 *
 * Not part of liblgd's API; the only arithmetic the tool does itself (every
 * estimator, model and sampler comes from liblgd).
 */
#ifndef LGD_TOOL_SAMPLE_STATS_H
#define LGD_TOOL_SAMPLE_STATS_H

#include <stdint.h>

/* KL(N(m1, s1^2) || N(m2, s2^2)) = ln(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2;
 * +infinity when s2 <= 0. */
double stats_kl_gauss(double m1, double s1, double m2, double s2);

/* Mean and sample standard deviation (divisor n - 1) of v[n], n >= 2, in double. */
void stats_mean_std(const float *v, int64_t n, double *mean, double *std);

/* Mean and standard deviation (divisor n - 1; 0 for n = 1) of v[n], n >= 1. */
void stats_mean_sd(const double *v, int64_t n, double *mean, double *sd);

/* Quantiles q[0..k-1] in [0, 1] of v[n] (linear interpolation between order statistics)
 * into out[k]; v is sorted in place. n >= 1. */
void stats_quantiles(double *v, int64_t n, const double *q, int k, double *out);

/* Density histogram, count / (n * width), of v[n] over nb equal bins of [lo, hi) into
 * dens[nb]; returns the number of samples outside [lo, hi). */
int64_t stats_histogram(const float *v, int64_t n, double lo, double hi, int nb, double *dens);

/* max_i |v[i]|. */
double stats_max_abs(const double *v, int64_t n);

/* ||g - ref||_2 / ||ref||_2 (+infinity when ref is all zeros). */
double stats_rel_l2(const double *g, const double *ref, int64_t n);

#endif /* LGD_SAMPLE_STATS_H */
