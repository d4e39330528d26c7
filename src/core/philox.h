/*
 * philox.h - Philox4x32-10 counter-based generator and our uniform/normal maps.
 *
 * Header-only so that the CPU backend and the CUDA kernels share the exact same
 * code (compiled as __host__ __device__ under nvcc). Known answer (Random123
 * kat_vectors): key {0, 0}, counter {0, 0, 0, 0} -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
 */
#ifndef LGD_PHILOX_H
#define LGD_PHILOX_H

#include <stdint.h>
#include <math.h>

#include "core/hd_math.h" /* LGD_HD */

typedef struct lgd_philox_block {
    uint32_t v[4];
} lgd_philox_block;

LGD_HD uint32_t lgd_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds. */
LGD_HD lgd_philox_block lgd_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                          uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t hi0, hi1;
        uint32_t lo0 = lgd_mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = lgd_mulhilo32(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    lgd_philox_block out = { { c0, c1, c2, c3 } };
    return out;
}

/* Uniform in (0, 1) from the top 23 bits: (k + 0.5) / 2^23 needs 24 significant
 * bits, so it is exact in float; the range is [2^-24, 1 - 2^-24], never 0 or 1.
 * (With 24 bits, k + 0.5 is not representable for k >= 2^23 and rounds, up to
 * exactly 1.0f for k = 2^24 - 1.) */
LGD_HD float lgd_u32_to_uniform_open(uint32_t a)
{
    return ((float)(a >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

/* Box-Muller on (a, b) -> two standard normals: r = sqrt(-2 log u1), (r cos 2 pi u2,
 * r sin 2 pi u2). The log and sincos are hd_math.h's branch-free polynomials, not libm's
 * opaque calls, so the CPU's loops over lanes vectorise (and the CUDA device computes
 * the same operations: IEEE sqrt, no contracted FMAs). */
LGD_HD void lgd_box_muller(uint32_t a, uint32_t b, float *z0, float *z1)
{
    float u1 = ((float)(int32_t)(a >> 8) + 1.0f) * (1.0f / 16777216.0f); /* (0, 1] */
    float u2 = (float)(int32_t)(b >> 8) * (1.0f / 16777216.0f);          /* [0, 1) */
    float r = sqrtf(-2.0f * lgd_log_pos(u1));
    float s, c;
    lgd_sincos_turn(u2, &s, &c);
    *z0 = r * c;
    *z1 = r * s;
}

/* Four normals from one Philox block. */
LGD_HD void lgd_philox_normal4(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                               uint64_t seed, float out[4])
{
    lgd_philox_block b =
        lgd_philox4x32_10(c0, c1, c2, c3, (uint32_t)seed, (uint32_t)(seed >> 32));
    lgd_box_muller(b.v[0], b.v[1], &out[0], &out[1]);
    lgd_box_muller(b.v[2], b.v[3], &out[2], &out[3]);
}

/* The fourth counter word: purpose in the top 8 bits, step in the low 24. */
LGD_HD uint32_t lgd_rng_tag(uint32_t purpose, uint32_t step)
{
    return (purpose << 24) | (step & 0x00FFFFFFu);
}

#endif
