/*
 * checked.h - size arithmetic on untrusted numbers, with overflow detection.
 *
 * Every size, count or offset that is computed from numbers the library did not choose
 * (a weights file's header and metadata, tensor shapes, option structs, trajectory
 * layouts, batch and draw counts) goes through these helpers: each returns non-zero
 * when the exact result does not fit the type (or, for the int64 forms, is negative
 * where a size is meant), and then leaves *out unspecified. The caller turns that into
 * a status with a message; it never goes on with a wrapped value. docs/reliability.md
 * lists the sites.
 *
 * With GCC and Clang these are the __builtin_*_overflow intrinsics (one instruction
 * and a flag test); elsewhere a portable division-based check.
 */
#ifndef LGD_CHECKED_H
#define LGD_CHECKED_H

#include <stddef.h>
#include <stdint.h>

/* The sites' arguments rely on a 64-bit size_t: an int32 count times an int32 count
 * times sizeof(double) can still overflow it, and is checked, but one int32 count
 * times a small constant cannot. */
_Static_assert(SIZE_MAX >= UINT64_MAX, "liblgd needs a 64-bit size_t");

#if defined(__GNUC__) || defined(__clang__)
#  define LGD_HAVE_OVERFLOW_BUILTINS 1
#endif

/* *out = a * b; non-zero on overflow. */
static inline int lgd_mul_size(size_t a, size_t b, size_t *out)
{
#ifdef LGD_HAVE_OVERFLOW_BUILTINS
    return __builtin_mul_overflow(a, b, out);
#else
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
#endif
}

/* *out = a + b; non-zero on overflow. */
static inline int lgd_add_size(size_t a, size_t b, size_t *out)
{
#ifdef LGD_HAVE_OVERFLOW_BUILTINS
    return __builtin_add_overflow(a, b, out);
#else
    if (b > SIZE_MAX - a)
        return 1;
    *out = a + b;
    return 0;
#endif
}

/* *out = a * b * c; non-zero on overflow. */
static inline int lgd_mul3_size(size_t a, size_t b, size_t c, size_t *out)
{
    size_t ab;
    return lgd_mul_size(a, b, &ab) || lgd_mul_size(ab, c, out);
}

/* *out = a * b for sizes held in int64_t: non-zero when a or b is negative or the
 * product overflows. */
static inline int lgd_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return 1;
#ifdef LGD_HAVE_OVERFLOW_BUILTINS
    return __builtin_mul_overflow(a, b, out);
#else
    if (a != 0 && b > INT64_MAX / a)
        return 1;
    *out = a * b;
    return 0;
#endif
}

/* *out = a + b for sizes held in int64_t: non-zero when a or b is negative or the sum
 * overflows. */
static inline int lgd_add_i64(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return 1;
#ifdef LGD_HAVE_OVERFLOW_BUILTINS
    return __builtin_add_overflow(a, b, out);
#else
    if (b > INT64_MAX - a)
        return 1;
    *out = a + b;
    return 0;
#endif
}

/* *out = a * b * c for sizes held in int64_t (see lgd_mul_i64). */
static inline int lgd_mul3_i64(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab;
    return lgd_mul_i64(a, b, &ab) || lgd_mul_i64(ab, c, out);
}

/* *out = a * b + c for sizes held in int64_t (an offset past the last element of a
 * strided layout, e.g. root_offset + (frames - 1) * frame_stride + 2). */
static inline int lgd_muladd_i64(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab;
    return lgd_mul_i64(a, b, &ab) || lgd_add_i64(ab, c, out);
}

#endif
