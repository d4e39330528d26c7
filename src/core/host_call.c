/*
 * host_call.c - running a host callback on backend buffers.
 *
 * A callback that asked for LGD_MEMORY_HOST gets host pointers. On a backend
 * whose memory is host memory (the CPU) they are passed straight through; on a
 * device backend the inputs are downloaded into a staging area owned by the
 * calling object, and the output is uploaded back after the callback.
 */
#include "core/internal.h"

lgd_status lgd_host_call(lgd_context *ctx, lgd_staging *stage, lgd_memory memory, int n_in,
                         const float *const *in, const size_t *in_count, float *out,
                         size_t out_count, lgd_host_thunk fn, void *closure, int *rc)
{
    if (memory == LGD_MEMORY_DEVICE || ctx->ops->host_memory) {
        *rc = fn(closure, in, out);
        return LGD_OK;
    }
    size_t total = out_count;
    for (int i = 0; i < n_in; i++)
        total += in[i] ? in_count[i] : 0;
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
    *rc = fn(closure, host_in, p);
    if (*rc == 0 && ctx->ops->upload(ctx->be, out, p, out_count * sizeof(float)) != 0)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "staging a callback output failed");
    return LGD_OK;
}
