/*
 * image_metrics.c - PSNR, SSIM, the Frechet distance and classifier scores of the image
 * experiments (image_metrics.h). C11 and libm only.
 */
#include "image_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double img_psnr(const float *a, const float *b, int64_t n, double range)
{
    double se = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (n <= 0)
        return NAN;
    if (se == 0.0)
        return INFINITY;
    return 10.0 * log10(range * range / (se / (double)n));
}

double img_ssim(const float *a, const float *b, int h, int w, int win, double range)
{
    if (win < 3 || win % 2 == 0 || win > h || win > w)
        return NAN;
    const double c1 = (0.01 * range) * (0.01 * range);
    const double c2 = (0.03 * range) * (0.03 * range);
    const double np = (double)win * win;
    const double cov_norm = np / (np - 1.0);
    double sum = 0.0;
    int count = 0;
    for (int i = 0; i + win <= h; i++) {
        for (int j = 0; j + win <= w; j++) {
            double sa = 0.0, sb = 0.0, saa = 0.0, sbb = 0.0, sab = 0.0;
            for (int u = 0; u < win; u++) {
                for (int v = 0; v < win; v++) {
                    double x = a[(i + u) * w + j + v], y = b[(i + u) * w + j + v];
                    sa += x;
                    sb += y;
                    saa += x * x;
                    sbb += y * y;
                    sab += x * y;
                }
            }
            double ma = sa / np, mb = sb / np;
            double va = cov_norm * (saa / np - ma * ma);
            double vb = cov_norm * (sbb / np - mb * mb);
            double vab = cov_norm * (sab / np - ma * mb);
            sum += ((2.0 * ma * mb + c1) * (2.0 * vab + c2)) /
                   ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count++;
        }
    }
    return sum / count;
}

int img_sym_eig(const double *a, int d, double *evals, double *evecs)
{
    if (d < 1 || d > IMG_EIG_MAX_DIM)
        return -1;
    double m[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM];
    double v[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM];
    double scale = 0.0;
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) {
            /* the symmetric part, so that rounding in a does not matter */
            m[i * d + j] = 0.5 * (a[i * d + j] + a[j * d + i]);
            v[i * d + j] = i == j ? 1.0 : 0.0;
            scale = fmax(scale, fabs(m[i * d + j]));
        }
    }
    int converged = 0;
    for (int sweep = 0; sweep < 100 && !converged; sweep++) {
        double off = 0.0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++)
                off += m[p * d + q] * m[p * d + q];
        if (off <= 1e-30 * scale * scale || scale == 0.0) {
            converged = 1;
            break;
        }
        for (int p = 0; p < d; p++) {
            for (int q = p + 1; q < d; q++) {
                double apq = m[p * d + q];
                if (apq == 0.0)
                    continue;
                /* the rotation that zeroes m[p][q] (Golub & Van Loan, Alg. 8.4.1) */
                double tau = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                double t = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
                double c = 1.0 / sqrt(1.0 + t * t), s = t * c;
                for (int k = 0; k < d; k++) { /* columns p, q: m = m J */
                    double mkp = m[k * d + p], mkq = m[k * d + q];
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for (int k = 0; k < d; k++) { /* rows p, q: m = J^T m */
                    double mpk = m[p * d + k], mqk = m[q * d + k];
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                m[p * d + q] = m[q * d + p] = 0.0;
                for (int k = 0; k < d; k++) { /* v = v J */
                    double vkp = v[k * d + p], vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    if (!converged)
        return -1;
    /* ascending order (selection sort of the d pairs) */
    int order[IMG_EIG_MAX_DIM];
    for (int i = 0; i < d; i++)
        order[i] = i;
    for (int i = 0; i < d; i++) {
        int best = i;
        for (int j = i + 1; j < d; j++)
            if (m[order[j] * d + order[j]] < m[order[best] * d + order[best]])
                best = j;
        int tmp = order[i];
        order[i] = order[best];
        order[best] = tmp;
    }
    for (int k = 0; k < d; k++) {
        evals[k] = m[order[k] * d + order[k]];
        if (evecs)
            for (int i = 0; i < d; i++)
                evecs[i * d + k] = v[i * d + order[k]];
    }
    return 0;
}

int img_mean_cov(const float *x, int64_t n, int d, double *mu, double *cov)
{
    if (n < 2 || d < 1 || d > IMG_EIG_MAX_DIM)
        return -1;
    for (int j = 0; j < d; j++) {
        double s = 0.0;
        for (int64_t r = 0; r < n; r++)
            s += x[r * d + j];
        mu[j] = s / (double)n;
    }
    for (int j = 0; j < d; j++) {
        for (int k = j; k < d; k++) {
            double s = 0.0;
            for (int64_t r = 0; r < n; r++)
                s += ((double)x[r * d + j] - mu[j]) * ((double)x[r * d + k] - mu[k]);
            cov[j * d + k] = cov[k * d + j] = s / (double)(n - 1);
        }
    }
    return 0;
}

double img_frechet_gauss(const double *mu1, const double *c1, const double *mu2,
                         const double *c2, int d)
{
    if (d < 1 || d > IMG_EIG_MAX_DIM)
        return NAN;
    double ev[IMG_EIG_MAX_DIM], vec[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM];
    double root[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM], tmp[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM];
    double prod[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM];
    if (img_sym_eig(c1, d, ev, vec))
        return NAN;
    /* root = c1^{1/2} = V diag(sqrt(max(ev, 0))) V^T */
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++)
                s += vec[i * d + k] * sqrt(fmax(ev[k], 0.0)) * vec[j * d + k];
            root[i * d + j] = s;
        }
    }
    /* prod = root c2 root */
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++)
                s += c2[i * d + k] * root[k * d + j];
            tmp[i * d + j] = s;
        }
    }
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++)
                s += root[i * d + k] * tmp[k * d + j];
            prod[i * d + j] = s;
        }
    }
    if (img_sym_eig(prod, d, ev, NULL))
        return NAN;
    double tr_sqrt = 0.0, tr1 = 0.0, tr2 = 0.0, dm = 0.0;
    for (int k = 0; k < d; k++) {
        tr_sqrt += sqrt(fmax(ev[k], 0.0));
        tr1 += c1[k * d + k];
        tr2 += c2[k * d + k];
        dm += (mu1[k] - mu2[k]) * (mu1[k] - mu2[k]);
    }
    return dm + tr1 + tr2 - 2.0 * tr_sqrt;
}

double img_frechet(const float *x, int64_t nx, const float *y, int64_t ny, int d)
{
    if (d < 1 || d > IMG_EIG_MAX_DIM)
        return NAN;
    double mu1[IMG_EIG_MAX_DIM], mu2[IMG_EIG_MAX_DIM];
    double c1[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM], c2[IMG_EIG_MAX_DIM * IMG_EIG_MAX_DIM];
    if (img_mean_cov(x, nx, d, mu1, c1) || img_mean_cov(y, ny, d, mu2, c2))
        return NAN;
    return img_frechet_gauss(mu1, c1, mu2, c2, d);
}

double img_cross_entropy(const float *logits, int k, int label)
{
    double mx = logits[0];
    for (int i = 1; i < k; i++)
        mx = fmax(mx, (double)logits[i]);
    double s = 0.0;
    for (int i = 0; i < k; i++)
        s += exp((double)logits[i] - mx);
    return mx + log(s) - (double)logits[label];
}

int img_argmax(const float *logits, int k)
{
    int best = 0;
    for (int i = 1; i < k; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

void img_mean_sd(const double *v, int n, double *mean, double *sd)
{
    if (n <= 0) {
        *mean = *sd = NAN;
        return;
    }
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += v[i];
    double m = s / n, q = 0.0;
    for (int i = 0; i < n; i++)
        q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}
