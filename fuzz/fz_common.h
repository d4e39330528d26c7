/*
 * fz_common.h - what the libFuzzer targets in fuzz/ share: a reader that decodes the
 * fuzz input into fields (every byte string decodes to something; reads past the end
 * give zeros), tables of "interesting" numbers, the check that a status is one of
 * lgd_status's values, and the sanitizer defaults of the targets.
 *
 * Private to the fuzz targets (fuzz/README.md); not part of liblgd.
 */
#ifndef LGD_FZ_COMMON_H
#define LGD_FZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lgd/lgd.h"

/* ---- the input reader ---- */

typedef struct fz_reader {
    const uint8_t *p;
    size_t n, i;
} fz_reader;

static inline void fz_init(fz_reader *r, const uint8_t *p, size_t n)
{
    r->p = p;
    r->n = n;
    r->i = 0;
}

static inline int fz_more(const fz_reader *r) { return r->i < r->n; }

static inline uint8_t fz_u8(fz_reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }

static inline uint32_t fz_u32(fz_reader *r)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++)
        v |= (uint32_t)fz_u8(r) << (8 * k);
    return v;
}

static inline uint64_t fz_u64(fz_reader *r)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v |= (uint64_t)fz_u8(r) << (8 * k);
    return v;
}

/* LEB128, at most 10 bytes (64 bits). */
static inline uint64_t fz_varint(fz_reader *r)
{
    uint64_t v = 0;
    for (int k = 0; k < 10; k++) {
        uint8_t b = fz_u8(r);
        v |= (uint64_t)(b & 0x7F) << (7 * k);
        if (!(b & 0x80))
            break;
    }
    return v;
}

static inline float fz_f32(fz_reader *r)
{
    uint32_t u = fz_u32(r);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- interesting numbers ---- */

/* int64 values at the edges of the checks liblgd makes (sizes, products, offsets). */
static const int64_t fz_edge_i64[] = {
    0, 1, 2, 3, -1, -2, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MAX / 2, INT64_MAX / 2 + 1,
    INT64_MAX / 3 + 1, (INT64_MAX / 3) * 2, (int64_t)1 << 62, ((int64_t)1 << 62) - 1,
    (int64_t)1 << 32, ((int64_t)1 << 32) + 1, (int64_t)1 << 31, ((int64_t)1 << 31) - 1,
    (int64_t)1 << 40, (int64_t)1 << 24, ((int64_t)1 << 24) + 1, 65536, 65537, 1 << 20,
    (1 << 20) + 1, 4096, 4097, (int64_t)1 << 52, (int64_t)1 << 61, (int64_t)3 << 61,
};
#define FZ_N_EDGE_I64 (sizeof fz_edge_i64 / sizeof fz_edge_i64[0])

static inline int64_t fz_edge(fz_reader *r) { return fz_edge_i64[fz_u8(r) % FZ_N_EDGE_I64]; }

/* floats: ordinary values, the edges of ranges liblgd checks, non-finite values */
static const float fz_edge_f32[] = {
    0.0f, 1.0f, 0.5f, 2.0f, -1.0f, 1e-3f, 1e-5f, 10.0f, 80.0f, 0.002f, 7.0f,
    -0.0f, 1e-30f, 1e30f, 3.4e38f, -3.4e38f, 1e-45f, 1e-20f, 1e20f, 0.999f, 1.0001f,
    0.25f, 100.0f, 50.0f,
};
#define FZ_N_EDGE_F32 (sizeof fz_edge_f32 / sizeof fz_edge_f32[0])

/* A float: mostly from the table, sometimes NaN or an infinity, sometimes raw bits. */
static inline float fz_float(fz_reader *r)
{
    uint8_t c = fz_u8(r);
    if (c < 0xE0)
        return fz_edge_f32[c % FZ_N_EDGE_F32];
    if (c < 0xF0)
        return fz_f32(r);
    if (c < 0xF6)
        return (float)(1e30 * 1e30) * (c & 1 ? -1.0f : 1.0f);
    if (c < 0xFC) {
        float z = 0.0f;
        return z / z * (float)(c - 0xF5); /* NaN */
    }
    return (float)(int8_t)fz_u8(r) / 16.0f;
}

/* ---- checks ---- */

/* Reports a broken contract: prints what and aborts (libFuzzer keeps the input). */
#define FZ_CHECK(cond, ...)                                                              \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz contract violated at %s:%d: %s\n  ", __FILE__, __LINE__, \
                    #cond);                                                              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* Every status liblgd returns is one of lgd_status's values. */
static inline int fz_status_known(lgd_status st)
{
    return st <= LGD_OK && st >= LGD_ERR_INTERNAL;
}

/* ---- sanitizer defaults (the run script, tests/check_fuzz.sh, sets them too) ----
 * allocator_may_return_null: a huge tensor's allocation must come back as NULL (and
 * LGD_ERR_OUT_OF_MEMORY) instead of killing the run; leaks are errors. */
#define FZ_SANITIZER_DEFAULTS                                                             \
    const char *__asan_default_options(void);                                              \
    const char *__asan_default_options(void)                                               \
    {                                                                                      \
        return "allocator_may_return_null=1:detect_leaks=1";                               \
    }                                                                                      \
    const char *__ubsan_default_options(void);                                             \
    const char *__ubsan_default_options(void)                                              \
    {                                                                                      \
        return "halt_on_error=1:print_stacktrace=1";                                       \
    }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
