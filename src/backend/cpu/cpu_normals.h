/*
 * cpu_normals.h - the CPU's normal numbers: Philox4x32-10 blocks eight at a time and
 * Box-Muller, written lane-wise so that the compiler vectorises them (core/philox.h
 * holds the scalar definitions they equal, lane by lane).
 *
 * Header-only (static inline): the backend's normal ops (cpu_backend.c) and the fused
 * Monte Carlo kernel (sampling/mc_fused_cpu.c) generate the same stream from the same
 * code, so that the two give the same bits. The layout is backend.h's: the normals of
 * row r are one flat stream, element f is element f % 4 of the block at counter
 * (f / 4, first_row + r, f / 4 >> 32, tag).
 */
#ifndef LGD_CPU_NORMALS_H
#define LGD_CPU_NORMALS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "core/philox.h"

/* Always inlined, so that a caller compiled for AVX2 / AVX-512 (LGD_CPU_CLONES)
 * vectorises them for its target. */
#if defined(__GNUC__)
#define LGD_CPU_INLINE static inline __attribute__((always_inline))
#else
#define LGD_CPU_INLINE static inline
#endif

/* Blocks per group: eight Philox blocks, 32 normals. */
#define LGD_CPU_PHILOX_LANES 8

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LGD_NO_TARGET_CLONES)
#include <immintrin.h>
#define LGD_CPU_PHILOX_AVX2 1
/* The ten Philox4x32-10 rounds of eight blocks in AVX2 registers, x[w] holding word w
 * of the eight counters on entry and of the eight results on return: the 32 x 32 ->
 * 64-bit products of the even and the odd lanes (vpmuludq), their halves put back in
 * place by blends. Integer arithmetic: the same bits as lgd_philox4x32_10 lane by lane
 * (compilers do not find this for the portable loop). */
__attribute__((target("avx2"))) static inline void lgd_cpu_philox_rounds_avx2(__m256i x[4],
                                                                            uint64_t seed)
{
    __m256i x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        __m256i e0 = _mm256_mul_epu32(x0, m0), o0 = _mm256_mul_epu32(_mm256_srli_epi64(x0, 32), m0);
        __m256i e1 = _mm256_mul_epu32(x2, m1), o1 = _mm256_mul_epu32(_mm256_srli_epi64(x2, 32), m1);
        __m256i lo0 = _mm256_blend_epi32(e0, _mm256_slli_epi64(o0, 32), 0xAA);
        __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(e0, 32), o0, 0xAA);
        __m256i lo1 = _mm256_blend_epi32(e1, _mm256_slli_epi64(o1, 32), 0xAA);
        __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(e1, 32), o1, 0xAA);
        x0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), _mm256_set1_epi32((int)k0));
        x2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), _mm256_set1_epi32((int)k1));
        x1 = lo1;
        x3 = lo0;
    }
    x[0] = x0;
    x[1] = x1;
    x[2] = x2;
    x[3] = x3;
}

/* Eight blocks at consecutive 64-bit block indices blk..blk+7 (split over counter words
 * 0 and 2), counter words 1 and 3 c1 and c3, in AVX2 registers. */
__attribute__((target("avx2"))) static inline void
lgd_cpu_philox_x8_avx2(uint64_t blk, uint32_t c1, uint32_t c3, uint64_t seed,
                       uint32_t out[4][LGD_CPU_PHILOX_LANES])
{
    uint32_t lo[LGD_CPU_PHILOX_LANES], hi[LGD_CPU_PHILOX_LANES];
    for (int l = 0; l < LGD_CPU_PHILOX_LANES; l++) {
        lo[l] = (uint32_t)(blk + (uint64_t)l);
        hi[l] = (uint32_t)((blk + (uint64_t)l) >> 32);
    }
    __m256i x[4] = { _mm256_loadu_si256((const __m256i *)lo), _mm256_set1_epi32((int)c1),
                     _mm256_loadu_si256((const __m256i *)hi), _mm256_set1_epi32((int)c3) };
    lgd_cpu_philox_rounds_avx2(x, seed);
    for (int w = 0; w < 4; w++)
        _mm256_storeu_si256((__m256i *)out[w], x[w]);
}
#endif

/* Eight Philox4x32-10 blocks at consecutive 64-bit block indices blk..blk+7 (split
 * over counter words 0 and 2). Same results as lgd_philox4x32_10 lane by lane; on a
 * CPU with AVX2 computed by lgd_cpu_philox_x8_avx2. */
LGD_CPU_INLINE void lgd_cpu_philox_x8(uint64_t blk, uint32_t c1, uint32_t c3, uint64_t seed,
                                     uint32_t out[4][LGD_CPU_PHILOX_LANES])
{
#ifdef LGD_CPU_PHILOX_AVX2
    if (__builtin_cpu_supports("avx2")) {
        lgd_cpu_philox_x8_avx2(blk, c1, c3, seed, out);
        return;
    }
#endif
    enum { L = LGD_CPU_PHILOX_LANES };
    uint32_t x0[L], x1[L], x2[L], x3[L];
    for (int l = 0; l < L; l++) {
        x0[l] = (uint32_t)(blk + (uint64_t)l);
        x1[l] = c1;
        x2[l] = (uint32_t)((blk + (uint64_t)l) >> 32);
        x3[l] = c3;
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int l = 0; l < L; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * x0[l], p1 = (uint64_t)0xCD9E8D57u * x2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ x1[l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ x3[l] ^ k1;
            x1[l] = (uint32_t)p1;
            x3[l] = (uint32_t)p0;
            x0[l] = n0;
            x2[l] = n2;
        }
    }
    for (int l = 0; l < L; l++) {
        out[0][l] = x0[l];
        out[1][l] = x1[l];
        out[2][l] = x2[l];
        out[3][l] = x3[l];
    }
}

/* The 32 normals of the group of blocks blk..blk+7: z[4 l + k] is element k of block
 * blk + l (lgd_box_muller on words 0, 1 and on words 2, 3, as lgd_philox_normal4). */
LGD_CPU_INLINE void lgd_cpu_normal_group(uint64_t blk, uint32_t row, uint32_t tag, uint64_t seed,
                                        float z[4 * LGD_CPU_PHILOX_LANES])
{
    enum { L = LGD_CPU_PHILOX_LANES };
    uint32_t w[4][L];
    lgd_cpu_philox_x8(blk, row, tag, seed, w);
    float a[L], b[L], c[L], d[L]; /* contiguous per element, so the transform vectorises */
    for (int l = 0; l < L; l++) {
        lgd_box_muller(w[0][l], w[1][l], &a[l], &b[l]);
        lgd_box_muller(w[2][l], w[3][l], &c[l], &d[l]);
    }
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    /* the 4 x 8 transpose in registers (unpack, then 128-bit lane moves): the same
     * values as the loop below, without 32 scalar stores */
    typedef float v8f __attribute__((vector_size(32)));
    v8f va, vb, vc, vd;
    memcpy(&va, a, sizeof va);
    memcpy(&vb, b, sizeof vb);
    memcpy(&vc, c, sizeof vc);
    memcpy(&vd, d, sizeof vd);
    v8f ab_lo = __builtin_shufflevector(va, vb, 0, 8, 1, 9, 4, 12, 5, 13);
    v8f ab_hi = __builtin_shufflevector(va, vb, 2, 10, 3, 11, 6, 14, 7, 15);
    v8f cd_lo = __builtin_shufflevector(vc, vd, 0, 8, 1, 9, 4, 12, 5, 13);
    v8f cd_hi = __builtin_shufflevector(vc, vd, 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t[4] = { __builtin_shufflevector(ab_lo, cd_lo, 0, 1, 8, 9, 2, 3, 10, 11),   /* l = 0, 1 */
                 __builtin_shufflevector(ab_hi, cd_hi, 0, 1, 8, 9, 2, 3, 10, 11),   /* l = 2, 3 */
                 __builtin_shufflevector(ab_lo, cd_lo, 4, 5, 12, 13, 6, 7, 14, 15), /* l = 4, 5 */
                 __builtin_shufflevector(ab_hi, cd_hi, 4, 5, 12, 13, 6, 7, 14, 15) }; /* 6, 7 */
    memcpy(z, t, sizeof t);
#else
    for (int l = 0; l < L; l++) {
        z[4 * l] = a[l];
        z[4 * l + 1] = b[l];
        z[4 * l + 2] = c[l];
        z[4 * l + 3] = d[l];
    }
#endif
}

/* Elements [f0, f0 + n) of row r's stream that fall in group g (g counts groups from
 * the one holding element f0): out[i] = mean[(f0 + i) % cols] + scale z_{f0 + i}, or
 * z_{f0 + i} when mean is NULL, for the part of i inside the group. */
LGD_CPU_INLINE void lgd_cpu_normal_stream_group(const lgd_rng_stream *s, size_t r, uint64_t f0,
                                               uint64_t n, uint64_t g, size_t cols,
                                               const float *mean_row, float scale, float *out)
{
    enum { L = LGD_CPU_PHILOX_LANES };
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    uint64_t blk1 = (f0 + n + 3) / 4; /* blocks touching [f0, f0 + n) end here */
    uint64_t blk = f0 / 4 + g * L;
    float z[4 * L];
    lgd_cpu_normal_group(blk, (uint32_t)(s->first_row + r), tag, s->seed, z);
    uint64_t fa = blk * 4, fb = (blk + L) * 4;
    fb = fb < blk1 * 4 ? fb : blk1 * 4;
    uint64_t lo = fa > f0 ? fa : f0, hi = fb < f0 + n ? fb : f0 + n;
    if (lo >= hi)
        return;
    float *o = out + (lo - f0);
    const float *zz = z + (lo - fa);
    size_t cnt = (size_t)(hi - lo);
    if (mean_row && cols == 1) {
        for (size_t i = 0; i < cnt; i++)
            o[i] = mean_row[0] + scale * zz[i];
    } else if (mean_row) {
        size_t c = (size_t)(lo % cols); /* one division per group, not per value */
        for (size_t i = 0; i < cnt;) { /* runs of consecutive columns: they vectorise */
            size_t run = cols - c < cnt - i ? cols - c : cnt - i;
            for (size_t k = 0; k < run; k++)
                o[i + k] = mean_row[c + k] + scale * zz[i + k];
            i += run;
            c = 0;
        }
    } else {
        memcpy(o, zz, cnt * sizeof *o);
    }
}

/* Groups that elements [f0, f0 + n) of a row touch. */
LGD_CPU_INLINE uint64_t lgd_cpu_normal_groups(uint64_t f0, uint64_t n)
{
    uint64_t per_row = (f0 + n + 3) / 4 - f0 / 4;
    return (per_row + LGD_CPU_PHILOX_LANES - 1) / LGD_CPU_PHILOX_LANES;
}

#endif
