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

#if defined(_WIN32)
#  if defined(LGD_BUILDING_LIBRARY)
#    define LGD_API __declspec(dllexport)
#  elif defined(LGD_STATIC)
#    define LGD_API
#  else
#    define LGD_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define LGD_API __attribute__((visibility("default")))
#else
#  define LGD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* LGD_VERSION_MAJOR, _MINOR, _PATCH and LGD_VERSION_NUMBER (lgd/version.h, generated
 * from meson.build's project version) are included above. */

/** Run-time version of the loaded library, as LGD_VERSION_NUMBER computes it. */
LGD_API uint32_t lgd_version(void);
/** Run-time version as a string, "MAJOR.MINOR.PATCH". Never NULL. */
LGD_API const char *lgd_version_string(void);

/**
 * Status of every fallible call. 0 is success; errors are stable negative
 * numbers that are never renumbered or reused. After an error,
 * lgd_context_last_error() names the argument or the step at fault.
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
    LGD_ERR_ABORTED = -8,            /**< the progress callback asked to stop */
    LGD_ERR_STATE = -9,              /**< call out of order (sampler not initialised, finished) */
    LGD_ERR_IO = -10,                /**< a file could not be read or written */
    LGD_ERR_FORMAT = -11,            /**< a file or buffer is malformed */
    LGD_ERR_INTERNAL = -12           /**< a bug in liblgd; please report it */
} lgd_status;

/** A short constant description of a status code. Never NULL. */
LGD_API const char *lgd_status_string(lgd_status status);

/** Where a callback wants its buffers. */
typedef enum lgd_memory {
    LGD_MEMORY_HOST = 0,    /**< host pointers; the library stages copies on GPU backends */
    LGD_MEMORY_DEVICE = 1   /**< the backend's own memory (host memory on the CPU backend) */
} lgd_memory;

/** Opaque handles. Each has a create and a destroy; destroy(NULL) is a no-op. */
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
