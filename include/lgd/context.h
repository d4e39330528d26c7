/*
 * lgd/context.h - the context: one backend instance, logging, last error.
 *
 * Every other object is created from a context and keeps it alive (objects
 * hold a reference, so destroying the context before them is safe). A context
 * and the objects made from it must be used from one thread at a time; use one
 * context per thread. liblgd has no global mutable state.
 */
#ifndef LGD_CONTEXT_H
#define LGD_CONTEXT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which tensor backend a context runs on. */
typedef enum lgd_backend_kind {
    LGD_BACKEND_AUTO = 0, /**< CUDA when a usable device and liblgd-cuda are present, else CPU */
    LGD_BACKEND_CPU = 1,  /**< always available; the reference implementation */
    LGD_BACKEND_CUDA = 2  /**< NVIDIA GPU through the run-time loaded liblgd-cuda module */
} lgd_backend_kind;

/** Severity of a log message. */
typedef enum lgd_log_level {
    LGD_LOG_ERROR = 0,
    LGD_LOG_WARNING = 1,
    LGD_LOG_INFO = 2,
    LGD_LOG_DEBUG = 3
} lgd_log_level;

/** Receives log messages (the library never prints on its own). */
typedef void (*lgd_log_fn)(void *user, lgd_log_level level, const char *message);

/** Options for lgd_context_create(). Initialise with LGD_CONTEXT_OPTIONS_INIT or
 *  lgd_context_options_init(); fields are only ever appended. */
typedef struct lgd_context_options {
    uint32_t struct_size;       /**< sizeof(lgd_context_options) as the caller knows it */
    lgd_backend_kind backend;   /**< default LGD_BACKEND_CPU */
    int32_t device_index;       /**< CUDA device ordinal, default 0 */
    int32_t num_threads;        /**< CPU threads; 0 (default) = OpenMP's default */
    lgd_log_fn log;             /**< optional log sink, default none */
    void *log_user;             /**< passed to log */
    lgd_log_level log_level;    /**< most verbose level passed to log, default LGD_LOG_WARNING */
    /** Path of the CUDA backend module to load; NULL (default) searches the install
     *  libdir, then the loader's path for liblgd-cuda.so. */
    const char *cuda_module_path;
} lgd_context_options;

#define LGD_CONTEXT_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_context_options, LGD_BACKEND_CPU, 0, 0, NULL, NULL, \
        LGD_LOG_WARNING, NULL)

/** Fills *options with the defaults (for FFI users who cannot use the macro). */
LGD_API lgd_status lgd_context_options_init(lgd_context_options *options, uint32_t struct_size);

/**
 * Creates a context. options may be NULL for the defaults (CPU backend).
 * Returns LGD_ERR_BACKEND_UNAVAILABLE when CUDA is asked for explicitly and
 * cannot be used (no module, no driver, no device); AUTO then falls back to
 * the CPU. Since no context exists yet to hold the message, *out_error (if not
 * NULL) receives a description of the failure: a static string, or, when the
 * CUDA module could not be loaded or opened, the module's or the loader's precise
 * reason in a buffer of the calling thread, valid until that thread's next
 * lgd_context_create() (as dlerror() is). With AUTO, that reason is logged
 * (LGD_LOG_INFO) before falling back to the CPU. (Since 0.1.0; precise reasons
 * since 0.3.0.)
 */
LGD_API lgd_status lgd_context_create(const lgd_context_options *options,
                                      lgd_context **out_context,
                                      const char **out_error);

/** Releases the caller's reference. Objects made from the context keep it alive. */
LGD_API void lgd_context_destroy(lgd_context *context);

/** The message of the last error reported on this context ("" if none). Valid
 *  until the next call that fails on the same context. */
LGD_API const char *lgd_context_last_error(const lgd_context *context);

/** Clears the last error message. */
LGD_API void lgd_context_clear_error(lgd_context *context);

/** The backend actually in use (never AUTO). */
LGD_API lgd_backend_kind lgd_context_backend(const lgd_context *context);

/** A human-readable name of the backend and device, e.g. "cpu (openblas, 2 threads)". */
LGD_API const char *lgd_context_backend_name(const lgd_context *context);

/** The backend's native stream (a cudaStream_t on CUDA) on which liblgd queues its
 *  work, for callbacks that asked for LGD_MEMORY_DEVICE; NULL on the CPU. */
LGD_API void *lgd_context_native_stream(const lgd_context *context);

/** Blocks until all work queued on the context's backend has finished. */
LGD_API lgd_status lgd_context_synchronize(lgd_context *context);

/** Bytes of backend memory currently held by live objects of this context, and the
 *  peak since creation or the last reset. Either pointer may be NULL. */
LGD_API void lgd_context_memory_usage(const lgd_context *context,
                                      size_t *current_bytes, size_t *peak_bytes);
/** Resets the peak to the current usage. */
LGD_API void lgd_context_reset_peak_memory(lgd_context *context);

#ifdef __cplusplus
}
#endif
#endif
