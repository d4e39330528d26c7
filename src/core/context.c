/*
 * context.c - contexts: backend selection, errors, logging, memory accounting.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked.h"
#include "core/internal.h"
#include "lgd_config.h"

uint32_t lgd_version(void) { return LGD_VERSION_NUMBER; }

const char *lgd_version_string(void) { return LGD_VERSION_STRING; }

const char *lgd_status_string(lgd_status status)
{
    switch (status) {
    case LGD_OK: return "ok";
    case LGD_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LGD_ERR_OUT_OF_MEMORY: return "out of memory";
    case LGD_ERR_SHAPE_MISMATCH: return "shape mismatch";
    case LGD_ERR_NON_FINITE: return "non-finite value";
    case LGD_ERR_CALLBACK: return "callback failed";
    case LGD_ERR_UNSUPPORTED: return "unsupported";
    case LGD_ERR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case LGD_ERR_ABORTED: return "aborted";
    case LGD_ERR_STATE: return "invalid state";
    case LGD_ERR_IO: return "i/o error";
    case LGD_ERR_FORMAT: return "malformed data";
    case LGD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

static void vlog(lgd_context *ctx, lgd_log_level level, const char *fmt, va_list ap)
{
    if (!ctx || !ctx->log || level > ctx->log_level)
        return;
    char msg[LGD_ERROR_CAP];
    vsnprintf(msg, sizeof msg, fmt, ap);
    ctx->log(ctx->log_user, level, msg);
}

void lgd_log(lgd_context *ctx, lgd_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, fmt, ap);
    va_end(ap);
}

lgd_status lgd_error(lgd_context *ctx, lgd_status status, const char *fmt, ...)
{
    if (!ctx)
        return status;
    /* format into a local buffer first: the arguments may include ctx->error itself
     * (re-labelling a message with where it happened) */
    char msg[LGD_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(ctx->error, msg, sizeof msg);
    if (ctx->log && ctx->log_level >= LGD_LOG_ERROR)
        ctx->log(ctx->log_user, LGD_LOG_ERROR, ctx->error);
    return status;
}

lgd_status lgd_backend_error(lgd_context *ctx, lgd_status status, const char *fmt, ...)
{
    if (!ctx)
        return status;
    char msg[LGD_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *why = ctx->ops->last_error ? ctx->ops->last_error(ctx->be) : NULL;
    if (why && why[0])
        return lgd_error(ctx, status, "%s: %s", msg, why);
    return lgd_error(ctx, status, "%s", msg);
}

int lgd_is_finite(float v) { return isfinite(v); }

lgd_status lgd_context_options_init(lgd_context_options *o, uint32_t struct_size)
{
    const lgd_context_options defaults = LGD_CONTEXT_OPTIONS_INIT;
    return lgd_init_struct(o, struct_size, &defaults, sizeof defaults, offsetof(lgd_context_options, cuda_module_path));
}

/* The reason the CUDA backend could not be opened, for lgd_context_create's
 * *out_error: the module's own precise message when it gave one. The buffer is the
 * calling thread's (like dlerror()'s), so the message stays valid after the failed
 * context is freed and until this thread's next lgd_context_create. */
static _Thread_local char cuda_open_error[LGD_ERROR_CAP];

static const char *open_cuda(lgd_context *ctx, const lgd_context_options *o)
{
    const char *names[] = { o->cuda_module_path ? o->cuda_module_path : "",
                            o->cuda_module_path ? "" : LGD_CUDA_MODULE_PATH,
                            o->cuda_module_path ? "" : "liblgd-cuda.so." LGD_SOVERSION_STR,
                            o->cuda_module_path ? "" : "liblgd-cuda.so" };
    void *h = NULL;
    /* the first candidate's reason, the most specific one; copied at once, since the
     * next dlopen frees dlerror()'s string */
    char why_not[LGD_ERROR_CAP / 2] = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) {
        if (!names[i][0] || (h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL)))
            continue;
        const char *why = dlerror();
        if (!why_not[0] && why)
            snprintf(why_not, sizeof why_not, "%s", why);
    }
    if (!h) {
        snprintf(cuda_open_error, sizeof cuda_open_error,
                 "the CUDA backend module liblgd-cuda.so is not installed or cannot be loaded"
                 "%s%s", why_not[0] ? ": " : "", why_not);
        return cuda_open_error;
    }
    lgd_backend_open_fn open_fn;
    void *sym = dlsym(h, "lgd_cuda_backend_open");
    memcpy(&open_fn, &sym, sizeof open_fn);
    if (!open_fn) {
        dlclose(h);
        return "liblgd-cuda.so has no entry point lgd_cuda_backend_open";
    }
    char reason[LGD_ERROR_CAP] = "";
    if (open_fn(LGD_BACKEND_ABI_VERSION, o->device_index, &ctx->be, &ctx->ops, reason,
                sizeof reason) != 0) {
        dlclose(h);
        snprintf(cuda_open_error, sizeof cuda_open_error, "no usable CUDA device: %s",
                 reason[0] ? reason : "the module gave no reason");
        return cuda_open_error;
    }
    const char *bad = lgd_backend_ops_check(ctx->ops);
    if (bad) {
        ctx->ops->destroy(ctx->be);
        ctx->be = NULL;
        ctx->ops = NULL;
        dlclose(h);
        snprintf(cuda_open_error, sizeof cuda_open_error, "liblgd-cuda.so is unusable: %s", bad);
        return cuda_open_error;
    }
    ctx->module = h;
    ctx->kind = LGD_BACKEND_CUDA;
    return NULL;
}

lgd_status lgd_context_create(const lgd_context_options *options, lgd_context **out,
                              const char **out_error)
{
    const char *dummy;
    if (!out_error)
        out_error = &dummy;
    *out_error = "";
    if (!out) {
        *out_error = "out_context is NULL";
        return LGD_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    lgd_context_options o, defaults = LGD_CONTEXT_OPTIONS_INIT;
    memcpy(&o, &defaults, sizeof o);
    if (options) {
        /* no context yet to hold a formatted message: the reasons are static */
        const char *problem = lgd_struct_size_problem(
            options, sizeof o, offsetof(lgd_context_options, cuda_module_path));
        if (problem) {
            *out_error = options->struct_size < offsetof(lgd_context_options, cuda_module_path)
                             ? "options->struct_size is smaller than the first published "
                               "lgd_context_options (use LGD_CONTEXT_OPTIONS_INIT or "
                               "lgd_context_options_init)"
                             : "options->struct_size is larger than this library's "
                               "lgd_context_options and the fields it does not know are not "
                               "zero (built against a newer liblgd?)";
            return LGD_ERR_INVALID_ARGUMENT;
        }
        memcpy(&o, options, options->struct_size < sizeof o ? options->struct_size : sizeof o);
    }
    if (o.backend != LGD_BACKEND_AUTO && o.backend != LGD_BACKEND_CPU &&
        o.backend != LGD_BACKEND_CUDA) {
        *out_error = "options->backend is not a known lgd_backend_kind";
        return LGD_ERR_INVALID_ARGUMENT;
    }
    if (o.num_threads < 0 || o.device_index < 0) {
        *out_error = "options->num_threads and options->device_index must be >= 0";
        return LGD_ERR_INVALID_ARGUMENT;
    }
    lgd_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        *out_error = "out of memory allocating the context";
        return LGD_ERR_OUT_OF_MEMORY;
    }
    lgd_ref_init(&ctx->refs);
    atomic_init(&ctx->mem_current, 0);
    atomic_init(&ctx->mem_peak, 0);
    atomic_init(&ctx->cancel, 0);
    atomic_init(&ctx->deferred.pending, 0);
    if (pthread_mutex_init(&ctx->deferred.lock, NULL) != 0) {
        free(ctx);
        *out_error = "cannot create the context's lock";
        return LGD_ERR_OUT_OF_MEMORY;
    }
    ctx->log = o.log;
    ctx->log_user = o.log_user;
    ctx->log_level = o.log_level;
    ctx->check_callback_outputs = o.check_callback_outputs != 0;
    if (o.backend == LGD_BACKEND_CUDA || o.backend == LGD_BACKEND_AUTO) {
        const char *why = open_cuda(ctx, &o);
        if (why && o.backend == LGD_BACKEND_CUDA) {
            pthread_mutex_destroy(&ctx->deferred.lock);
            free(ctx);
            *out_error = why;
            return LGD_ERR_BACKEND_UNAVAILABLE;
        }
        if (why)
            lgd_log(ctx, LGD_LOG_INFO, "AUTO backend: %s; using the CPU", why);
    }
    if (!ctx->be) {
        if (lgd_cpu_backend_open(o.num_threads, &ctx->be, &ctx->ops) != 0) {
            pthread_mutex_destroy(&ctx->deferred.lock);
            free(ctx);
            *out_error = "out of memory opening the CPU backend";
            return LGD_ERR_OUT_OF_MEMORY;
        }
        const char *bad = lgd_backend_ops_check(ctx->ops);
        if (bad) { /* a build error: the CPU table is ours */
            ctx->ops->destroy(ctx->be);
            pthread_mutex_destroy(&ctx->deferred.lock);
            free(ctx);
            *out_error = bad;
            return LGD_ERR_INTERNAL;
        }
        ctx->kind = LGD_BACKEND_CPU;
    }
    /* the CPU backend's free is free(); a device backend's caching allocator is used
     * by one thread at a time, so frees from elsewhere are deferred (lgd_backend_free) */
    ctx->free_anywhere = ctx->kind == LGD_BACKEND_CPU;
    ctx->error[0] = '\0';
    snprintf(ctx->backend_name, sizeof ctx->backend_name, "%s", ctx->ops->name(ctx->be));
    *out = ctx;
    return LGD_OK;
}

lgd_context *lgd_context_retain(lgd_context *ctx)
{
    if (ctx)
        lgd_ref_take(&ctx->refs);
    return ctx;
}

static void run_deferred_frees(lgd_context *ctx);

void lgd_context_release(lgd_context *ctx)
{
    if (!ctx || !lgd_ref_drop(&ctx->refs))
        return;
    run_deferred_frees(ctx);
    ctx->ops->destroy(ctx->be);
    if (ctx->module)
        dlclose(ctx->module);
    free(ctx->deferred.ptrs);
    pthread_mutex_destroy(&ctx->deferred.lock);
    free(ctx);
}

void lgd_context_destroy(lgd_context *ctx) { lgd_context_release(ctx); }

const char *lgd_context_last_error(const lgd_context *ctx)
{
    return ctx ? ctx->error : "context is NULL";
}

void lgd_context_clear_error(lgd_context *ctx)
{
    if (ctx)
        ctx->error[0] = '\0';
}

void lgd_context_set_callback_error(lgd_context *ctx, const char *message)
{
    /* read by lgd_callback_failed (host_call.c) when the callback returns non-zero */
    if (ctx && message != ctx->callback_error)
        snprintf(ctx->callback_error, sizeof ctx->callback_error, "%s", message ? message : "");
}

lgd_backend_kind lgd_context_backend(const lgd_context *ctx)
{
    return ctx ? ctx->kind : LGD_BACKEND_CPU;
}

const char *lgd_context_backend_name(const lgd_context *ctx)
{
    return ctx ? ctx->backend_name : "";
}

void *lgd_context_native_stream(const lgd_context *ctx)
{
    return ctx && ctx->ops->native_stream ? ctx->ops->native_stream(ctx->be) : NULL;
}

lgd_status lgd_context_synchronize(lgd_context *ctx)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (ctx->ops->synchronize(ctx->be) != 0)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "lgd_context_synchronize: the backend "
                                 "failed");
    return LGD_OK;
}

/* The counters are atomic (relaxed: they order nothing else): an object's last release,
 * which frees its memory, may run on another thread than the one using the context. */
void lgd_context_memory_usage(const lgd_context *ctx, size_t *current, size_t *peak)
{
    if (current)
        *current = ctx ? atomic_load_explicit(&ctx->mem_current, memory_order_relaxed) : 0;
    if (peak)
        *peak = ctx ? atomic_load_explicit(&ctx->mem_peak, memory_order_relaxed) : 0;
}

void lgd_context_cancel(lgd_context *ctx)
{
    if (ctx)
        atomic_store_explicit(&ctx->cancel, 1, memory_order_relaxed);
}

void lgd_context_reset_cancel(lgd_context *ctx)
{
    if (ctx)
        atomic_store_explicit(&ctx->cancel, 0, memory_order_relaxed);
}

lgd_status lgd_check_cancel(lgd_context *ctx, const char *fn)
{
    if (!atomic_load_explicit(&ctx->cancel, memory_order_relaxed))
        return LGD_OK;
    return lgd_error(ctx, LGD_ERR_ABORTED,
                     "%s: cancelled (lgd_context_cancel was called on this context)", fn);
}

void lgd_context_reset_peak_memory(lgd_context *ctx)
{
    if (ctx)
        atomic_store_explicit(&ctx->mem_peak,
                              atomic_load_explicit(&ctx->mem_current, memory_order_relaxed),
                              memory_order_relaxed);
}

/* ---- accounted backend memory ---- */

/* Hands the deferred frees to the backend. Runs on the thread that uses the context
 * (at an allocation) or at the context's last release, never beside the backend's
 * other work; the lock only orders it with the queueing threads. */
static void run_deferred_frees(lgd_context *ctx)
{
    lgd_deferred_frees *d = &ctx->deferred;
    if (!atomic_load_explicit(&d->pending, memory_order_acquire))
        return;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->count; i++)
        ctx->ops->free(ctx->be, d->ptrs[i]);
    d->count = 0;
    atomic_store_explicit(&d->pending, 0, memory_order_relaxed);
    pthread_mutex_unlock(&d->lock);
}

void *lgd_backend_alloc(lgd_context *ctx, size_t bytes)
{
    run_deferred_frees(ctx); /* first: the backend may reuse those blocks */
    void *p = ctx->ops->alloc(ctx->be, bytes);
    if (p) {
        size_t cur = atomic_fetch_add_explicit(&ctx->mem_current, bytes, memory_order_relaxed) +
                     bytes;
        size_t peak = atomic_load_explicit(&ctx->mem_peak, memory_order_relaxed);
        while (cur > peak && !atomic_compare_exchange_weak_explicit(
                                 &ctx->mem_peak, &peak, cur, memory_order_relaxed,
                                 memory_order_relaxed)) {
        }
    }
    return p;
}

/* May run on any thread (an object's last release). On a backend whose free is not
 * thread-safe the block is queued for run_deferred_frees; should the queue not grow
 * (out of host memory), it is freed at once, the one case left to the contract's
 * "one thread at a time". */
void lgd_backend_free(lgd_context *ctx, void *p, size_t bytes)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&ctx->mem_current, bytes, memory_order_relaxed);
    if (ctx->free_anywhere) {
        ctx->ops->free(ctx->be, p);
        return;
    }
    lgd_deferred_frees *d = &ctx->deferred;
    pthread_mutex_lock(&d->lock);
    if (d->count == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        void **grown = realloc(d->ptrs, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&d->lock);
            ctx->ops->free(ctx->be, p);
            return;
        }
        d->ptrs = grown;
        d->cap = cap;
    }
    d->ptrs[d->count++] = p;
    atomic_store_explicit(&d->pending, 1, memory_order_release);
    pthread_mutex_unlock(&d->lock);
}

lgd_status lgd_buffer_reserve(lgd_context *ctx, lgd_buffer *buf, size_t count, const char *what)
{
    if (buf->data && buf->count >= count)
        return LGD_OK;
    size_t bytes;
    if (lgd_mul_size(count, sizeof(float), &bytes))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: %zu floats is too large", what, count);
    float *p = lgd_backend_alloc(ctx, bytes);
    if (!p)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", what,
                         bytes);
    lgd_buffer_release(ctx, buf);
    buf->data = p;
    buf->count = count;
    return LGD_OK;
}

void lgd_buffer_release(lgd_context *ctx, lgd_buffer *buf)
{
    if (buf->data)
        lgd_backend_free(ctx, buf->data, buf->count * sizeof(float));
    buf->data = NULL;
    buf->count = 0;
}

lgd_status lgd_buffer_from_host(lgd_context *ctx, lgd_buffer *buf, const float *host,
                                size_t count, const char *what)
{
    lgd_status st = lgd_buffer_reserve(ctx, buf, count, what);
    if (st)
        return st;
    if (ctx->ops->upload(ctx->be, buf->data, host, count * sizeof(float)) != 0)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "%s: upload failed", what);
    return LGD_OK;
}

lgd_status lgd_staging_reserve(lgd_context *ctx, lgd_staging *st, size_t count)
{
    if (st->host && st->count >= count)
        return LGD_OK;
    size_t bytes;
    float *p = lgd_mul_size(count ? count : 1, sizeof(float), &bytes) ? NULL : malloc(bytes);
    if (!p)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "cannot allocate a %zu-float staging buffer",
                         count);
    free(st->host);
    st->host = p;
    st->count = count;
    return LGD_OK;
}

void lgd_staging_free(lgd_staging *st)
{
    free(st->host);
    st->host = NULL;
    st->count = 0;
}
