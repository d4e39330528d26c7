/*
 * lgd/common.h - export macro, versions, status codes and shared enums.
 *
 * Part of liblgd, the loss-guided diffusion library. Include <lgd/lgd.h>
 * rather than this header directly.
 */
#ifndef LGD_COMMON_H
#define LGD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <lgd/version.h>

/* LGD_API marks the exported functions. A binding generator that cannot parse the
 * attribute (cffi's cdef) defines LGD_API as empty before including the headers. */
#ifndef LGD_API
#  if defined(_WIN32)
#    if defined(LGD_BUILDING_LIBRARY)
#      define LGD_API __declspec(dllexport)
#    elif defined(LGD_STATIC)
#      define LGD_API
#    else
#      define LGD_API __declspec(dllimport)
#    endif
#  elif defined(__GNUC__) && __GNUC__ >= 4
#    define LGD_API __attribute__((visibility("default")))
#  else
#    define LGD_API
#  endif
#endif

/*
 * Conventions at the boundary (for C, C++ and FFI callers alike):
 *  - element counts, dimensions, batch sizes and indices into data are int64_t;
 *  - byte sizes are size_t (the size of a file image in memory);
 *  - small numbers (ndim, axes, steps, step indices, struct_size) and flags are
 *    int32_t / uint32_t; a flag is 0 or 1;
 *  - every enum is 32 bits wide (checked below with a static assertion) and numbered
 *    explicitly; a binding may declare enum-typed fields and parameters as int32_t;
 *  - option structs begin with `uint32_t struct_size` and only grow at the end: the
 *    library reads only the bytes struct_size covers and refuses a larger struct
 *    unless the fields it does not know are zero (see the *_init functions).
 */

/* Internal helpers of the public macros: the *_INIT initialisers are a braced list in
 * C and a value of the struct type in C++, so both `T x = LGD_T_INIT;` and
 * `T x{LGD_T_INIT};` compile there, without old-style casts. */
#ifdef __cplusplus
#  define LGD_CAST_(T, v) static_cast<T>(v)
#  define LGD_STRUCT_INIT_(T, ...) T{ static_cast<uint32_t>(sizeof(T)), __VA_ARGS__ }
#  define LGD_STATIC_ASSERT_(cond, msg) static_assert(cond, msg)
#else
#  define LGD_CAST_(T, v) ((T)(v))
#  define LGD_STRUCT_INIT_(T, ...) { (uint32_t)sizeof(T), __VA_ARGS__ }
#  if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#    define LGD_STATIC_ASSERT_(cond, msg) _Static_assert(cond, msg)
#  else /* C99: a negative array size fails the build */
#    define LGD_STATIC_ASSERT_JOIN2_(a, b) a##b
#    define LGD_STATIC_ASSERT_JOIN_(a, b) LGD_STATIC_ASSERT_JOIN2_(a, b)
#    define LGD_STATIC_ASSERT_(cond, msg) \
         typedef char LGD_STATIC_ASSERT_JOIN_(lgd_static_assert_, __LINE__)[(cond) ? 1 : -1]
#  endif
#endif
/* +infinity as a float constant expression */
#define LGD_INFINITY_F_ LGD_CAST_(float, 1e30 * 1e30)
/* every enum of the API is 4 bytes (int-sized); -fshort-enums breaks the ABI */
#define LGD_ENUM_32_(E) LGD_STATIC_ASSERT_(sizeof(E) == 4, #E " must be 32 bits wide")

#ifdef __cplusplus
extern "C" {
#endif

/* LGD_VERSION_MAJOR, _MINOR, _PATCH and LGD_VERSION_NUMBER (lgd/version.h, generated
 * from meson.build's project version) are included above. */

/** Run-time version of the loaded library, as LGD_VERSION_NUMBER computes it:
 *  major * 10000 + minor * 100 + patch (300 for 0.3.0). Compare it with the headers'
 *  LGD_VERSION_NUMBER: the same major, and a run-time number at least the compile-time
 *  one. Never fails; any thread. (Since 0.1.0.) */
LGD_API uint32_t lgd_version(void);
/** Run-time version as a static string, "MAJOR.MINOR.PATCH". Never NULL, never fails;
 *  any thread. (Since 0.1.0.) */
LGD_API const char *lgd_version_string(void);

/**
 * Status of every fallible call. 0 is success; errors are stable negative
 * numbers that are never renumbered or reused. After an error,
 * lgd_context_last_error() names the argument or the step at fault. (Since 0.1.0; no
 * value has been added since.)
 */
typedef enum lgd_status {
    LGD_OK = 0,
    LGD_ERR_INVALID_ARGUMENT = -1,   /**< a NULL, a zero size, an out-of-range option */
    LGD_ERR_OUT_OF_MEMORY = -2,      /**< host or device allocation failed */
    LGD_ERR_SHAPE_MISMATCH = -3,     /**< tensors whose shapes do not fit together */
    LGD_ERR_NON_FINITE = -4,         /**< a model, loss or step produced NaN or Inf */
    LGD_ERR_CALLBACK = -5,           /**< a host callback returned non-zero */
    LGD_ERR_UNSUPPORTED = -6,        /**< the object cannot do this (e.g. exact posterior) */
    LGD_ERR_BACKEND_UNAVAILABLE = -7,/**< the backend asked for cannot be used here */
    LGD_ERR_ABORTED = -8,            /**< the progress callback asked to stop, or
                                          lgd_context_cancel() (0.4.0) */
    LGD_ERR_STATE = -9,              /**< call out of order (sampler not initialised, finished) */
    LGD_ERR_IO = -10,                /**< a file could not be read or written */
    LGD_ERR_FORMAT = -11,            /**< a file or buffer is malformed */
    LGD_ERR_INTERNAL = -12           /**< a bug in liblgd; please report it */
} lgd_status;

LGD_ENUM_32_(lgd_status);

/** A short constant description of a status code, e.g. "invalid argument"; any value
 *  is accepted ("unknown status" for one that is not an lgd_status). Never NULL, never
 *  fails; any thread. (Since 0.1.0.) */
LGD_API const char *lgd_status_string(lgd_status status);

/** Where a callback wants its buffers, or where a wrapped tensor's memory lives
 *  (lgd_tensor_wrap()). (Since 0.1.0.) */
typedef enum lgd_memory {
    LGD_MEMORY_HOST = 0,    /**< host pointers; the library stages copies on GPU backends */
    LGD_MEMORY_DEVICE = 1   /**< the backend's own memory (host memory on the CPU backend) */
} lgd_memory;
LGD_ENUM_32_(lgd_memory);

/** Opaque handles. Each has a create and a destroy; destroy(NULL) is a no-op. Reference
 *  counted (lgd_X_retain(), since 0.3.0); see <lgd/lgd.h>. (Since 0.1.0.) */
typedef struct lgd_context lgd_context;
typedef struct lgd_tensor lgd_tensor;
typedef struct lgd_model lgd_model;
typedef struct lgd_loss lgd_loss;
typedef struct lgd_guidance lgd_guidance;
typedef struct lgd_sampler lgd_sampler;

#ifdef __cplusplus
}
#endif
#endif
