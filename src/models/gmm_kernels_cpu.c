/*
 * gmm_kernels_cpu.c - the Gaussian mixture's kernel table on the CPU (gmm_kernels.h).
 */
#include <math.h>
#include <stddef.h>

#include "backend/cpu/cpu_normals.h"
#include "backend/cpu/cpu_parallel.h"
#include "core/hd_math.h"
#include "core/philox.h"
#include "core/rng.h"
#include "models/gmm_kernels.h"

/* Columns whose filter factors are computed at once, on the stack: a factor per
 * column rather than a division per element, and no allocation per call. */
#define GMM_FACTOR_BLOCK 1024

static void cpu_diag_filter(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                            const float *lam, float s2, const float *in, float *out)
{
    for (size_t j0 = 0; j0 < cols; j0 += GMM_FACTOR_BLOCK) {
        size_t nj = cols - j0 < GMM_FACTOR_BLOCK ? cols - j0 : GMM_FACTOR_BLOCK;
        float f[GMM_FACTOR_BLOCK];
        for (size_t j = 0; j < nj; j++)
            f[j] = lgd_diag_factor(filter, lam[j0 + j], s2);
        LGD_CPU_FOR(rows * nj)
        for (size_t r = 0; r < rows; r++) {
            const float *ir = in + r * cols + j0;
            float *o = out + r * cols + j0;
            for (size_t j = 0; j < nj; j++)
                o[j] = f[j] * ir[j];
        }
    }
}

static void cpu_gaussian_logp(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *lam, float s2, float c, float *out,
                              size_t out_stride)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++) {
            double v = x[r * cols + j];
            acc += v * v / ((double)lam[j] + (double)s2);
        }
        out[r * out_stride] = (float)((double)c - 0.5 * acc);
    }
}

#ifdef LGD_CPU_PHILOX_AVX2
/* Word 0 of the Philox4x32-10 blocks (0, row, draw0 + l, tag), l = 0..7, in AVX2
 * registers (the draw in counter word 2, not a block index in words 0 and 2). */
__attribute__((target("avx2"))) static inline void
uniform_words_x8_avx2(uint32_t row, uint32_t draw0, uint32_t tag, uint64_t seed, uint32_t w[8])
{
    __m256i x[4] = { _mm256_setzero_si256(), _mm256_set1_epi32((int)row),
                     _mm256_add_epi32(_mm256_set1_epi32((int)draw0),
                                      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                     _mm256_set1_epi32((int)tag) };
    lgd_cpu_philox_rounds_avx2(x, seed);
    _mm256_storeu_si256((__m256i *)w, x[0]);
}
#endif

/* Draws at a time of cpu_posterior_draws' component choice (uniforms and indices on
 * the stack): a multiple of 8. */
#define GMM_DRAW_BLOCK 64

/* The uniforms of draws draw0 .. draw0 + 7 of a row: cpu_uniform's Philox block
 * (0, row, draw, tag) and word 0 of it, eight at a time. */
LGD_CPU_INLINE void uniform_x8(uint32_t row, uint32_t draw0, uint32_t tag, uint64_t seed,
                               float u[8])
{
#ifdef LGD_CPU_PHILOX_AVX2
    if (__builtin_cpu_supports("avx2")) {
        uint32_t w[8];
        uniform_words_x8_avx2(row, draw0, tag, seed, w);
        for (int l = 0; l < 8; l++)
            u[l] = lgd_u32_to_uniform_open(w[l]);
        return;
    }
#endif
    for (uint32_t l = 0; l < 8; l++)
        u[l] = lgd_u32_to_uniform_open(
            lgd_philox4x32_10(0u, row, draw0 + l, tag, (uint32_t)seed, (uint32_t)(seed >> 32)).v[0]);
}

/*
 * Draws [first, first + count) of row r of the posterior (gmm_kernels.h), the same bits
 * as gmm_sample_posterior's draws of the same indices:
 *  - eps: elements [first D, (first + count) D) of row r's normal stream, purpose
 *    LGD_RNG_POSTERIOR (cpu_normal's code, cpu_normals.h): the stream is indexed by the
 *    draw, not by the call, so any chunking gives the same elements;
 *  - the component: cpu_uniform's Philox block (0, first_row + r, draw, tag) and
 *    cpu_categorical's running sum over resp[r];
 *  - out = m_k[r] + (post_std_k * eps): diag_filter's product, back_project's 1 * t
 *    (exact) and broadcast_axpy's m + 1 * t (exact product), one rounding each; ISO C
 *    contracts no FMA (cpu_parallel.h), so every clone rounds alike.
 */
LGD_CPU_CLONES static void cpu_posterior_draws(const lgd_gmm_posterior *p, size_t r, size_t first,
                                               size_t count, float *out)
{
    const size_t D = p->D, K = p->K;
    lgd_rng_stream s = p->rng; /* (the group code takes the first element from f0) */
    s.purpose = LGD_RNG_POSTERIOR;
    uint64_t f0 = (uint64_t)first * D, n = (uint64_t)count * D;
    uint64_t groups = lgd_cpu_normal_groups(f0, n);
    for (uint64_t gi = 0; gi < groups; gi++)
        lgd_cpu_normal_stream_group(&s, r, f0, n, gi, D, NULL, 0.0f, out);
    const uint32_t tag = lgd_rng_tag(LGD_RNG_COMPONENT, p->rng.step);
    const uint32_t row = (uint32_t)(p->rng.first_row + r);
    const uint32_t k0 = (uint32_t)p->rng.seed, k1 = (uint32_t)(p->rng.seed >> 32);
    const float *resp = p->resp + r * K;
    for (size_t j0 = 0; j0 < count; j0 += GMM_DRAW_BLOCK) {
        size_t nb = count - j0 < GMM_DRAW_BLOCK ? count - j0 : GMM_DRAW_BLOCK;
        float u[GMM_DRAW_BLOCK];
        size_t comp[GMM_DRAW_BLOCK];
        size_t n8 = nb / 8 * 8;
        for (size_t j = 0; j < n8; j += 8)
            uniform_x8(row, (uint32_t)(first + j0 + j), tag, p->rng.seed, u + j);
        for (size_t j = n8; j < nb; j++) {
            lgd_philox_block b =
                lgd_philox4x32_10(0u, row, (uint32_t)(first + j0 + j), tag, k0, k1);
            u[j] = lgd_u32_to_uniform_open(b.v[0]);
        }
        for (size_t j = 0; j < nb; j++) { /* the first k whose running sum exceeds u */
            float c = 0.0f;
            size_t k = K - 1;
            for (size_t i = 0; i < K; i++) {
                c += resp[i];
                if (c > u[j]) {
                    k = i;
                    break;
                }
            }
            comp[j] = k;
        }
        if (D == 1) { /* one value per draw: no inner loop */
            for (size_t j = 0; j < nb; j++)
                out[j0 + j] = p->means[comp[j] * p->batch + r] +
                              p->post_std[comp[j]] * out[j0 + j];
            continue;
        }
        for (size_t j = 0; j < nb; j++) {
            const float *m = p->means + (comp[j] * p->batch + r) * D;
            const float *f = p->post_std + comp[j] * D;
            float *o = out + (j0 + j) * D;
            for (size_t e = 0; e < D; e++)
                o[e] = m[e] + f[e] * o[e];
        }
    }
}

const lgd_gmm_kernels lgd_gmm_kernels_cpu = {
    .diag_filter = cpu_diag_filter,
    .gaussian_logp = cpu_gaussian_logp,
    .posterior_draws = cpu_posterior_draws,
};

const lgd_kernel_table lgd_gmm_kernel_table = { "gmm", LGD_GMM_KERNELS_VERSION,
                                                &lgd_gmm_kernels_cpu };
