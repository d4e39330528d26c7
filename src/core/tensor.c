/*
 * tensor.c - float32 tensors on a context's backend.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

lgd_status lgd_tensor_create(lgd_context *ctx, int ndim, const int64_t *shape, lgd_tensor **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_tensor_create: out_tensor is NULL");
    *out = NULL;
    if (ndim < 1 || ndim > LGD_TENSOR_MAX_DIMS || !shape)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_tensor_create: ndim must be 1..%d and shape non-NULL (ndim=%d)",
                         LGD_TENSOR_MAX_DIMS, ndim);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "lgd_tensor_create: shape[%d] = %lld must be positive", i,
                             (long long)shape[i]);
        if (numel > INT64_MAX / shape[i] || numel * shape[i] > (int64_t)(SIZE_MAX / 8))
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "lgd_tensor_create: shape too large");
        numel *= shape[i];
    }
    lgd_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "lgd_tensor_create: out of memory");
    lgd_status st = lgd_buffer_reserve(ctx, &t->buf, (size_t)numel, "lgd_tensor_create");
    if (st) {
        free(t);
        return st;
    }
    ctx->ops->fill(ctx->be, t->buf.data, (size_t)numel, 0.0f);
    t->ctx = lgd_context_retain(ctx);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    *out = t;
    return LGD_OK;
}

lgd_status lgd_tensor_create_2d(lgd_context *ctx, int64_t batch, int64_t dim, lgd_tensor **out)
{
    int64_t shape[2] = { batch, dim };
    return lgd_tensor_create(ctx, 2, shape, out);
}

void lgd_tensor_destroy(lgd_tensor *t)
{
    if (!t)
        return;
    lgd_buffer_release(t->ctx, &t->buf);
    lgd_context_release(t->ctx);
    free(t);
}

int lgd_tensor_ndim(const lgd_tensor *t) { return t ? t->ndim : 0; }

int64_t lgd_tensor_dim(const lgd_tensor *t, int axis)
{
    return (t && axis >= 0 && axis < t->ndim) ? t->shape[axis] : 0;
}

int64_t lgd_tensor_numel(const lgd_tensor *t) { return t ? t->numel : 0; }

float *lgd_tensor_data(lgd_tensor *t) { return t ? t->buf.data : NULL; }

lgd_status lgd_tensor_upload(lgd_tensor *t, const float *host, size_t count)
{
    if (!t)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!host)
        return lgd_error(t->ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_tensor_upload: host is NULL");
    if (count != (size_t)t->numel)
        return lgd_error(t->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_tensor_upload: count %zu != tensor size %lld", count,
                         (long long)t->numel);
    if (t->ctx->ops->upload(t->ctx->be, t->buf.data, host, count * sizeof(float)) != 0)
        return lgd_backend_error(t->ctx, LGD_ERR_INTERNAL, "lgd_tensor_upload: copy failed");
    return LGD_OK;
}

lgd_status lgd_tensor_download(const lgd_tensor *t, float *host, size_t count)
{
    if (!t)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!host)
        return lgd_error(t->ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_tensor_download: host is NULL");
    if (count != (size_t)t->numel)
        return lgd_error(t->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_tensor_download: count %zu != tensor size %lld", count,
                         (long long)t->numel);
    if (t->ctx->ops->download(t->ctx->be, host, t->buf.data, count * sizeof(float)) != 0)
        return lgd_backend_error(t->ctx, LGD_ERR_INTERNAL, "lgd_tensor_download: copy failed");
    return LGD_OK;
}

lgd_status lgd_tensor_copy(lgd_tensor *dst, const lgd_tensor *src)
{
    if (!dst || !src)
        return dst ? lgd_error(dst->ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_tensor_copy: src is NULL")
                   : LGD_ERR_INVALID_ARGUMENT;
    if (dst->ctx != src->ctx)
        return lgd_error(dst->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_tensor_copy: tensors belong to different contexts");
    if (dst->numel != src->numel)
        return lgd_error(dst->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_tensor_copy: sizes differ (%lld vs %lld)", (long long)dst->numel,
                         (long long)src->numel);
    if (dst->ctx->ops->copy(dst->ctx->be, dst->buf.data, src->buf.data,
                            (size_t)src->numel * sizeof(float)) != 0)
        return lgd_backend_error(dst->ctx, LGD_ERR_INTERNAL, "lgd_tensor_copy: copy failed");
    return LGD_OK;
}

lgd_status lgd_tensor_fill(lgd_tensor *t, float value)
{
    if (!t)
        return LGD_ERR_INVALID_ARGUMENT;
    t->ctx->ops->fill(t->ctx->be, t->buf.data, (size_t)t->numel, value);
    return LGD_OK;
}

lgd_status lgd_check_tensor(lgd_context *ctx, const lgd_tensor *t, const char *name)
{
    if (!t)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s is NULL", name);
    if (t->ctx != ctx)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s belongs to a different context", name);
    return LGD_OK;
}

lgd_status lgd_tensor_as_rows(lgd_context *ctx, const lgd_tensor *t, const char *name,
                              int64_t dim, int64_t *out_batch)
{
    lgd_status st = lgd_check_tensor(ctx, t, name);
    if (st)
        return st;
    int64_t last = t->shape[t->ndim - 1];
    if (t->ndim < 2 || last != dim || t->numel % dim != 0)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s must be [batch][%lld] (got %d dims, last %lld)", name,
                         (long long)dim, t->ndim, (long long)last);
    *out_batch = t->shape[0];
    if (t->numel != t->shape[0] * dim)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s must be [batch][%lld]; got %lld elements for batch %lld", name,
                         (long long)dim, (long long)t->numel, (long long)t->shape[0]);
    return LGD_OK;
}
