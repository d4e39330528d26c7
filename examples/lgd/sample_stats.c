/*
 * sample_stats.c - the statistics of sample_stats.h.
 */
#include "sample_stats.h"

#include <math.h>
#include <stdlib.h>

/* KL(N(m1, s1^2) || N(m2, s2^2)) = ln(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2. */
double stats_kl_gauss(double m1, double s1, double m2, double s2)
{
    if (!(s2 > 0.0))
        return INFINITY;
    return log(s2 / s1) + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2.0 * s2 * s2) - 0.5;
}

/* Mean and sample standard deviation (n - 1) of v[n], n >= 2. */
void stats_mean_std(const float *v, int64_t n, double *mean, double *std)
{
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    double m = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += ((double)v[i] - m) * ((double)v[i] - m);
    *mean = m;
    *std = sqrt(s2 / (double)(n - 1));
}

/* Mean and standard deviation (n - 1; 0 for n = 1) of v[n] in doubles. */
void stats_mean_sd(const double *v, int64_t n, double *mean, double *sd)
{
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    double m = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(s2 / (double)(n - 1)) : 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantiles q[k] (linear interpolation between order statistics) of v[n] into out[k];
 * v is sorted in place. */
void stats_quantiles(double *v, int64_t n, const double *q, int k, double *out)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    for (int j = 0; j < k; j++) {
        double pos = q[j] * (double)(n - 1);
        int64_t lo = (int64_t)floor(pos);
        int64_t hi = lo + 1 < n ? lo + 1 : lo;
        out[j] = v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
    }
}

/* Density histogram (count / (n * width)) of v[n] over nb bins of [lo, hi]; returns the
 * number of samples outside. */
int64_t stats_histogram(const float *v, int64_t n, double lo, double hi, int nb, double *dens)
{
    int64_t outside = 0;
    double w = (hi - lo) / nb;
    for (int b = 0; b < nb; b++)
        dens[b] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        if (!(x >= lo && x < hi)) {
            outside++;
            continue;
        }
        int b = (int)((x - lo) / w);
        dens[b < nb ? b : nb - 1] += 1.0;
    }
    for (int b = 0; b < nb; b++)
        dens[b] /= (double)n * w;
    return outside;
}

/* max |v[i]|. */
double stats_max_abs(const double *v, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

/* ||g - ref|| / ||ref||. */
double stats_rel_l2(const double *g, const double *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num += (g[i] - ref[i]) * (g[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0.0 ? sqrt(num / den) : INFINITY;
}
