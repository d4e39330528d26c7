/*
 * host_call.c - calling users' callbacks: running a host callback on backend
 * buffers, the message a callback leaves with lgd_context_set_callback_error(), and
 * the check that a callback wrote its outputs (check_callback_outputs).
 *
 * A callback that asked for LGD_MEMORY_HOST gets host pointers. On a backend
 * whose memory is host memory (the CPU) they are passed straight through; on a
 * device backend the inputs are downloaded into a staging area owned by the
 * calling object, and the output is uploaded back after the callback.
 */
#include <stdio.h>
#include <string.h>

#include "core/checked.h"
#include "core/internal.h"

/* ---- the callback's message ---- */

/* (lgd_context_set_callback_error, which sets it, is in context.c) */

void lgd_callback_begin(lgd_context *ctx) { ctx->callback_error[0] = '\0'; }

lgd_status lgd_callback_failed(lgd_context *ctx, const char *fmt, ...)
{
    char what[LGD_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    lgd_status st;
    if (ctx->callback_error[0])
        st = lgd_error(ctx, LGD_ERR_CALLBACK, "%s: %s", what, ctx->callback_error);
    else
        st = lgd_error(ctx, LGD_ERR_CALLBACK, "%s", what);
    ctx->callback_error[0] = '\0';
    return st;
}

/* ---- check_callback_outputs ---- */

/* A quiet NaN with a payload of liblgd's own: on host memory an entry that still holds
 * exactly these bits was not written, while a NaN the callback wrote (NAN, 0.0 / 0.0,
 * numpy's nan: other payloads) is told apart and reported as non-finite as usual. */
#define UNWRITTEN_BITS 0x7fc0ca11u

static float unwritten_value(void)
{
    uint32_t bits = UNWRITTEN_BITS;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

void lgd_callback_poison(lgd_context *ctx, int host, float *p, size_t count)
{
    if (!p || count == 0)
        return;
    if (!host) {
        ctx->ops->fill(ctx->be, p, count, unwritten_value());
        return;
    }
    uint32_t bits = UNWRITTEN_BITS;
    for (size_t i = 0; i < count; i++)
        memcpy(p + i, &bits, sizeof bits);
}

lgd_status lgd_callback_check_output(lgd_context *ctx, int host, const float *p, size_t count,
                                     const char *who, const char *name)
{
    if (!p || count == 0)
        return LGD_OK;
    if (!host) {
        if (ctx->ops->all_finite(ctx->be, p, count))
            return LGD_OK;
        return lgd_error(ctx, LGD_ERR_CALLBACK,
                         "%s returned 0 but left %s non-finite (some of its %zu values are NaN "
                         "or Inf: unwritten, or written non-finite; check_callback_outputs is "
                         "on)",
                         who, name, count);
    }
    size_t first = count, unwritten = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, p + i, sizeof bits);
        if (bits == UNWRITTEN_BITS) {
            if (!unwritten)
                first = i;
            unwritten++;
        }
    }
    if (!unwritten)
        return LGD_OK;
    return lgd_error(ctx, LGD_ERR_CALLBACK,
                     "%s returned 0 but left %s[%zu] unwritten (NaN; %zu of %zu values "
                     "unwritten; check_callback_outputs is on)",
                     who, name, first, unwritten, count);
}

/* ---- host callbacks on backend buffers ---- */

lgd_status lgd_host_call(lgd_context *ctx, lgd_staging *stage, lgd_memory memory, int n_in,
                         const float *const *in, const size_t *in_count, float *out,
                         size_t out_count, lgd_host_thunk fn, void *closure, const char *who,
                         const char *out_name, int32_t *rc)
{
    int check = ctx->check_callback_outputs;
    int host = memory == LGD_MEMORY_HOST;
    if (memory == LGD_MEMORY_DEVICE || ctx->ops->host_memory) {
        if (check)
            lgd_callback_poison(ctx, host, out, out_count);
        lgd_callback_begin(ctx);
        *rc = fn(closure, in, out);
        if (*rc != 0)
            return LGD_OK; /* the caller reports it, with the callback's message */
        lgd_callback_begin(ctx);
        return check ? lgd_callback_check_output(ctx, host, out, out_count, who, out_name)
                     : LGD_OK;
    }
    size_t total = out_count;
    for (int i = 0; i < n_in; i++)
        if (in[i] && lgd_add_size(total, in_count[i], &total))
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: the host staging size overflows",
                             who);
    lgd_status st = lgd_staging_reserve(ctx, stage, total);
    if (st)
        return st;
    const float *host_in[LGD_HOST_CALL_MAX_INPUTS];
    float *p = stage->host;
    for (int i = 0; i < n_in; i++) {
        host_in[i] = NULL;
        if (!in[i])
            continue;
        if (ctx->ops->download(ctx->be, p, in[i], in_count[i] * sizeof(float)) != 0)
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "staging a callback input failed");
        host_in[i] = p;
        p += in_count[i];
    }
    if (check)
        lgd_callback_poison(ctx, 1, p, out_count);
    lgd_callback_begin(ctx);
    *rc = fn(closure, host_in, p);
    if (*rc != 0)
        return LGD_OK;
    lgd_callback_begin(ctx);
    if (check && (st = lgd_callback_check_output(ctx, 1, p, out_count, who, out_name)))
        return st;
    if (ctx->ops->upload(ctx->be, out, p, out_count * sizeof(float)) != 0)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "staging a callback output failed");
    return LGD_OK;
}
