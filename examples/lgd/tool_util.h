/*
 * tool_util.h - helpers shared by the lgd tool and the benchmark programs (bench/
 * includes this folder), not part of liblgd's API.
 *
 * Header-only (static inline functions, C11 with POSIX clock_gettime):
 *   tool_parse_int   a whole decimal integer in [lo, hi]
 *   tool_parse_u64   a whole non-negative decimal integer that fits in uint64_t
 *   tool_now_ms      a monotonic clock in milliseconds
 *   tool_parse_backend_arg  --backend cpu|cuda and --module PATH of the benchmarks
 *   tool_rng         a small deterministic generator (splitmix64 + Box-Muller) whose
 *                    state lives in the caller's struct, not in a global: start it with
 *                    tool_rng r = { TOOL_RNG_SEED } to get the benchmarks' problems.
 */
#ifndef LGD_TOOL_UTIL_H
#define LGD_TOOL_UTIL_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lgd/context.h>

/* Parses a whole decimal integer in [lo, hi] into *out; returns 0 on success, -1 (and
 * leaves *out alone) on NULL, an empty string, trailing characters, overflow or a value
 * out of range. */
static inline int tool_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Parses a whole non-negative decimal integer into *out; returns 0 on success, -1 on
 * NULL, an empty string, a leading '-', trailing characters or overflow. */
static inline int tool_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline double tool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* The deterministic generator: splitmix64 for uniforms, Box-Muller for normals. */
typedef struct tool_rng {
    uint64_t s;
} tool_rng;

/* The seed the benchmarks build their problems from. */
#define TOOL_RNG_SEED 0x853c49e6748fea9bULL

/* A uniform double in (0, 1), never 0 or 1. */
static inline double tool_uniform01(tool_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* A standard normal draw; uses two uniforms, the first for the radius. */
static inline double tool_normal01(tool_rng *r)
{
    double u1 = tool_uniform01(r);
    double u2 = tool_uniform01(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* The benchmarks' --backend cpu|cuda and --module PATH: when `flag` is one of them, sets
 * *backend or *module from `val` (the next argument, NULL at the end of the line) and
 * returns 1 (the caller skips val); returns 0 for another flag, and -1 after a message on
 * stderr when the value is missing or not cpu / cuda. */
static inline int tool_parse_backend_arg(const char *prog, const char *flag, const char *val,
                                         lgd_backend_kind *backend, const char **module)
{
    if (!strcmp(flag, "--backend")) {
        if (val && !strcmp(val, "cpu")) {
            *backend = LGD_BACKEND_CPU;
        } else if (val && !strcmp(val, "cuda")) {
            *backend = LGD_BACKEND_CUDA;
        } else {
            fprintf(stderr, "%s: --backend needs cpu or cuda\n", prog);
            return -1;
        }
        return 1;
    }
    if (!strcmp(flag, "--module")) {
        if (!val) {
            fprintf(stderr, "%s: --module needs a path\n", prog);
            return -1;
        }
        *module = val;
        return 1;
    }
    return 0;
}

#endif /* LGD_TOOL_UTIL_H */
