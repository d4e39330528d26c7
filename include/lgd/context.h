/*
 * lgd/context.h - the context: one backend instance, logging, last error.
 *
 * Every other object is created from a context and keeps it alive (objects
 * hold a reference, so destroying the context before them is safe). A context
 * and the objects made from it are used from one thread at a time, except for the
 * calls that the thread contract in <lgd/lgd.h> allows on any thread (retain, destroy
 * and the *_context getters, lgd_context_create, the *_init functions, the version and
 * status strings); use one context per thread for parallel work. liblgd has no global
 * mutable state.
 */
#ifndef LGD_CONTEXT_H
#define LGD_CONTEXT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which tensor backend a context runs on. (Since 0.1.0.) */
typedef enum lgd_backend_kind {
    LGD_BACKEND_AUTO = 0, /**< CUDA when a usable device and liblgd-cuda are present, else CPU */
    LGD_BACKEND_CPU = 1,  /**< always available; the reference implementation */
    LGD_BACKEND_CUDA = 2  /**< NVIDIA GPU through the run-time loaded liblgd-cuda module */
} lgd_backend_kind;

/** Severity of a log message. (Since 0.1.0.) */
typedef enum lgd_log_level {
    LGD_LOG_ERROR = 0,
    LGD_LOG_WARNING = 1,
    LGD_LOG_INFO = 2,
    LGD_LOG_DEBUG = 3
} lgd_log_level;

/**
 * Receives log messages (the library never prints on its own). message is valid only
 * during the call. Called from inside liblgd calls (also while an error is being
 * recorded), so it follows the callback rules below: it must not unwind (no C++
 * exception, Rust panic or longjmp out of it) and may call on the same context only
 * lgd_context_set_callback_error() and the pure getters. (Since 0.1.0.)
 */
typedef void (*lgd_log_fn)(void *user, lgd_log_level level, const char *message);

/** Options for lgd_context_create(). Initialise with LGD_CONTEXT_OPTIONS_INIT or
 *  lgd_context_options_init(); fields are only ever appended. The first published
 *  layout ends at log_level. (Since 0.1.0.) */
typedef struct lgd_context_options {
    uint32_t struct_size;       /**< sizeof(lgd_context_options) as the caller knows it */
    lgd_backend_kind backend;   /**< an lgd_backend_kind, default LGD_BACKEND_CPU */
    int32_t device_index;       /**< CUDA device ordinal >= 0, default 0 (CPU: ignored) */
    int32_t num_threads;        /**< CPU threads >= 0; 0 (default) = OpenMP's default */
    lgd_log_fn log;             /**< optional log sink, default none (NULL) */
    void *log_user;             /**< passed to log, not touched by the library */
    lgd_log_level log_level;    /**< most verbose level passed to log, default LGD_LOG_WARNING */
    /** Path of the CUDA backend module to load; NULL (default) searches the install
     *  libdir, then the loader's path for liblgd-cuda.so. Read during
     *  lgd_context_create() only. (Since 0.1.0, appended after the first layout.) */
    const char *cuda_module_path;
    /** Non-zero: check that loss, model and network callbacks write every output.
     *  Before each call every output buffer is filled with NaN (a NaN of liblgd's own
     *  bit pattern on host memory); a call that returns 0 but leaves one of them
     *  unwritten fails with LGD_ERR_CALLBACK naming the callback and the output (on
     *  host memory the first unwritten entry, e.g. "callback loss: eval returned 0 but
     *  left loss[3] unwritten ..."; on LGD_MEMORY_DEVICE the output as a whole, which
     *  also catches values written as NaN or Inf). Catches e.g. numpy's `loss = ...`
     *  where `loss[:] = ...` was meant. Costs a fill and a scan per call: a debugging
     *  and testing aid. Default 0. (Since 0.3.0.) */
    int32_t check_callback_outputs;
} lgd_context_options;

#define LGD_CONTEXT_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_context_options, LGD_BACKEND_CPU, 0, 0, NULL, NULL, \
        LGD_LOG_WARNING, NULL, 0)

/**
 * Sets *options to LGD_CONTEXT_OPTIONS_INIT (for FFI users who cannot use the macro):
 * call it as lgd_context_options_init(&o, sizeof o). Writes exactly struct_size bytes:
 * the defaults over the fields the caller's struct has, zeros past this library's
 * struct when struct_size is larger (a newer header's fields, off), and struct_size
 * itself. Statuses: LGD_ERR_INVALID_ARGUMENT (no message: there is no context) when
 * options is NULL or struct_size is smaller than the first published layout
 * (offsetof(lgd_context_options, cuda_module_path)). Any thread. (Since 0.1.0;
 * signature changed in 0.3.0: it takes struct_size and returns lgd_status, it was
 * void lgd_context_options_init(lgd_context_options *).)
 */
LGD_API lgd_status lgd_context_options_init(lgd_context_options *options, uint32_t struct_size);

/**
 * Creates a context; *out_context receives the caller's reference (destroy it with
 * lgd_context_destroy()). options may be NULL for the defaults (CPU backend); it is
 * read during the call only. Since no context exists yet to hold the message,
 * *out_error (out_error may be NULL) receives a description of the failure ("" on
 * success): a static string, or, when the CUDA module could not be loaded or opened,
 * the module's or the loader's precise reason in a buffer of the calling thread, valid
 * until that thread's next lgd_context_create() (as dlerror() is). With AUTO, that
 * reason is logged (LGD_LOG_INFO) before falling back to the CPU. Statuses:
 * LGD_ERR_INVALID_ARGUMENT (out_context NULL; options->struct_size below the first
 * layout, or larger with a non-zero tail; backend not an lgd_backend_kind; num_threads
 * or device_index negative), LGD_ERR_BACKEND_UNAVAILABLE (CUDA asked for explicitly and
 * unusable: no module, no driver, no device; AUTO then falls back to the CPU),
 * LGD_ERR_OUT_OF_MEMORY, LGD_ERR_INTERNAL (the CPU backend is incomplete: a build
 * error). *out_context is NULL on failure. Any thread. (Since 0.1.0; precise reasons
 * since 0.3.0.)
 */
LGD_API lgd_status lgd_context_create(const lgd_context_options *options,
                                      lgd_context **out_context,
                                      const char **out_error);

/** Releases the caller's reference; the last reference (objects made from the context
 *  hold one each) frees it. NULL is a no-op. Any thread (see the thread contract in
 *  <lgd/lgd.h>). (Since 0.1.0.) */
LGD_API void lgd_context_destroy(lgd_context *context);

/** The message of the last error reported on this context ("" if none; "context is
 *  NULL" for NULL). Borrowed: valid until the next call that fails on the same context
 *  and while the caller holds a reference. Successful calls do not clear it. Never
 *  fails. (Since 0.1.0.) */
LGD_API const char *lgd_context_last_error(const lgd_context *context);

/** Clears the last error message (lgd_context_last_error() then gives ""). NULL is a
 *  no-op. (Since 0.1.0.) */
LGD_API void lgd_context_clear_error(lgd_context *context);

/**
 * Callbacks: the rules every callback of the API follows (loss, model and network
 * callbacks, progress, radius, log and destroy callbacks).
 *
 *  - Status: a callback returning int32_t returns 0 on success. Any other value is a
 *    failure: the liblgd call that ran it stops and returns LGD_ERR_CALLBACK (a
 *    progress callback's non-zero return stops the run with LGD_ERR_ABORTED). The
 *    return type is int32_t (it was int before 0.3.0; the same ABI on every
 *    supported platform).
 *  - No unwinding: a callback must not let a C++ exception, a Rust panic or a
 *    longjmp leave it; liblgd is C, so an exception through it calls std::terminate
 *    and a panic aborts. Catch everything inside the callback and return non-zero
 *    (with a message, see lgd_context_set_callback_error()). Bindings (ctypes, cffi)
 *    must do the same: a Python exception in a ctypes callback returns an undefined
 *    value unless the wrapper catches it.
 *  - Re-entrancy: while a callback runs, liblgd is in the middle of a call on its
 *    context. On that context and on the objects made from it the callback may call
 *    only lgd_context_set_callback_error() and pure getters (lgd_context_last_error,
 *    lgd_context_backend, lgd_context_backend_name, lgd_context_native_stream,
 *    lgd_context_memory_usage, lgd_*_dim, ...); any other call on them is undefined
 *    behaviour. Other contexts and their objects may be used freely (e.g. a loss that
 *    runs its own network on a context of its own).
 *  - Outputs: a callback that returns 0 must have written every element of its
 *    outputs; lgd_context_options.check_callback_outputs checks it.
 */

/**
 * From inside a loss, model or network callback (lgd_loss_fn, lgd_loss_draws_fn,
 * lgd_denoise_fn, lgd_vjp_fn, lgd_network_forward_fn, lgd_network_vjp_fn): says why
 * the callback is failing. The message is copied (NULL clears it; a second call
 * replaces the first; long messages are truncated). When the callback then returns
 * non-zero, lgd_context_last_error() reads the library's own description followed by
 * ": " and the message, e.g. "callback loss: eval returned 1 (batch 2, n 16, dim 3):
 * label 7 out of range", with status LGD_ERR_CALLBACK. A message set by a callback
 * that returns 0 is discarded, and the message is cleared before each callback call,
 * so a message never outlives the call that set it. Does nothing when context is
 * NULL. (Since 0.3.0.)
 *
 *     static int32_t my_loss(void *user, const float *x, int64_t batch, int64_t n,
 *                            int64_t dim, float *loss, float *grad)
 *     {
 *         my_state *s = user;   // holds the lgd_context * the loss was made with
 *         if (!s->ready) {
 *             lgd_context_set_callback_error(s->context, "my_loss: no target loaded");
 *             return 1;         // -> LGD_ERR_CALLBACK, message as above
 *         }
 *         ...
 *         return 0;
 *     }
 *
 * A binding keeps the context with the callback's closure and reports an exception
 * the same way, e.g. in Python: `except Exception as e: lib.lgd_context_set_callback_error(
 * ctx, str(e).encode()); return 1`.
 */
LGD_API void lgd_context_set_callback_error(lgd_context *context, const char *message);

/** The backend actually in use (never AUTO; LGD_BACKEND_CPU for NULL). A pure getter.
 *  (Since 0.1.0.) */
LGD_API lgd_backend_kind lgd_context_backend(const lgd_context *context);

/** A human-readable name of the backend and device, e.g. "cpu (openblas, 2 threads)"
 *  ("" for NULL); borrowed, valid while the context is. A pure getter. (Since 0.1.0.) */
LGD_API const char *lgd_context_backend_name(const lgd_context *context);

/** The backend's native stream (a cudaStream_t on CUDA) on which liblgd queues its
 *  work, for callbacks that asked for LGD_MEMORY_DEVICE and for memory given to
 *  lgd_tensor_wrap(); NULL on the CPU and for NULL. A pure getter. (Since 0.1.0.) */
LGD_API void *lgd_context_native_stream(const lgd_context *context);

/** Blocks until all work queued on the context's backend has finished (a no-op on the
 *  CPU). Statuses: LGD_ERR_INVALID_ARGUMENT (context NULL), LGD_ERR_INTERNAL (the
 *  backend reports a failure, e.g. a CUDA error of earlier queued work). (Since 0.1.0.) */
LGD_API lgd_status lgd_context_synchronize(lgd_context *context);

/** Bytes of backend memory currently held by live objects of this context, and the
 *  peak since creation or the last reset (wrapped tensors' memory is not counted).
 *  Either pointer may be NULL; a NULL context gives 0 and 0. A pure getter.
 *  (Since 0.1.0.) */
LGD_API void lgd_context_memory_usage(const lgd_context *context,
                                      size_t *current_bytes, size_t *peak_bytes);
/** Resets the peak to the current usage. NULL is a no-op. (Since 0.1.0.) */
LGD_API void lgd_context_reset_peak_memory(lgd_context *context);

/**
 * Asks the calls running on this context, and those made later, to stop: they return
 * LGD_ERR_ABORTED with a message saying so at their next check point. The check
 * points: before each sampler step (lgd_sampler_step, _run, _run_from; the run stays
 * usable and goes on from the same step once the request is reset), and between
 * chunks of Monte Carlo draws inside a guided call (lgd_guidance_term,
 * lgd_guidance_denoise, and the sampler steps that make them; a step cancelled there
 * leaves x half-updated, so its run fails as after any failed step: start a new one).
 * So a call stops within one model evaluation or one chunk of draws (see
 * lgd_guidance_options.chunk_size), however large n_samples, steps or the batch are.
 * The request stays until lgd_context_reset_cancel(). NULL is a no-op. Any thread,
 * including while another thread runs a call on the context, and from a signal
 * handler (one atomic store): e.g. a host's Ctrl-C handler or a watchdog thread.
 * (Since 0.4.0.)
 */
LGD_API void lgd_context_cancel(lgd_context *context);

/** Withdraws lgd_context_cancel()'s request: calls on the context run again. NULL is a
 *  no-op. Any thread, as lgd_context_cancel(). (Since 0.4.0.) */
LGD_API void lgd_context_reset_cancel(lgd_context *context);

/** Takes a reference to the context and returns it (NULL for NULL); drop it with
 *  lgd_context_destroy(), which releases one reference (the last one, including those
 *  objects made from the context hold, frees it). Any thread (see the thread contract
 *  in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_context *lgd_context_retain(lgd_context *context);

#ifdef __cplusplus
}
#endif
#endif
