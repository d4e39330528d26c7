/*
 * tensor.c - float32 tensors on a context's backend.
 */
#include <stdlib.h>
#include <string.h>

#include "core/checked.h"
#include "core/internal.h"

/* Checks ndim and shape (messages name fn); *numel receives the element count. */
static lgd_status check_shape(lgd_context *ctx, const char *fn, int32_t ndim,
                              const int64_t *shape, int64_t *numel_out)
{
    if (ndim < 1 || ndim > LGD_TENSOR_MAX_DIMS || !shape)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: ndim must be 1..%d and shape non-NULL (ndim=%d)", fn,
                         LGD_TENSOR_MAX_DIMS, (int)ndim);
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: shape[%d] = %lld must be positive",
                             fn, (int)i, (long long)shape[i]);
        int64_t next, bytes;
        if (lgd_mul_i64(numel, shape[i], &next) || lgd_mul_i64(next, 8, &bytes))
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: shape too large", fn);
        numel = next;
    }
    *numel_out = numel;
    return LGD_OK;
}

/* A new tensor record holding a context reference; its buffer is the caller's to set. */
static lgd_tensor *new_tensor(lgd_context *ctx, int32_t ndim, const int64_t *shape,
                              int64_t numel)
{
    lgd_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    lgd_ref_init(&t->refs);
    t->ctx = lgd_context_retain(ctx);
    t->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    return t;
}

lgd_status lgd_tensor_create(lgd_context *ctx, int32_t ndim, const int64_t *shape,
                             lgd_tensor **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_tensor_create: out_tensor is NULL");
    *out = NULL;
    int64_t numel = 0;
    lgd_status st = check_shape(ctx, "lgd_tensor_create", ndim, shape, &numel);
    if (st)
        return st;
    lgd_buffer buf = { NULL, 0 };
    st = lgd_buffer_reserve(ctx, &buf, (size_t)numel, "lgd_tensor_create");
    if (st)
        return st;
    lgd_tensor *t = new_tensor(ctx, ndim, shape, numel);
    if (!t) {
        lgd_buffer_release(ctx, &buf);
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "lgd_tensor_create: out of memory");
    }
    ctx->ops->fill(ctx->be, buf.data, (size_t)numel, 0.0f);
    t->buf = buf;
    *out = t;
    return LGD_OK;
}

lgd_status lgd_tensor_create_2d(lgd_context *ctx, int64_t batch, int64_t dim, lgd_tensor **out)
{
    int64_t shape[2] = { batch, dim };
    return lgd_tensor_create(ctx, 2, shape, out);
}

lgd_status lgd_tensor_wrap(lgd_context *ctx, lgd_memory memory, int32_t ndim,
                           const int64_t *shape, float *data, lgd_tensor_release_fn release,
                           void *user, lgd_tensor **out)
{
    const char *fn = "lgd_tensor_wrap";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_tensor is NULL", fn);
    *out = NULL;
    if (memory != LGD_MEMORY_HOST && memory != LGD_MEMORY_DEVICE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: memory = %d is not a known lgd_memory", fn, (int)memory);
    int64_t numel = 0;
    lgd_status st = check_shape(ctx, fn, ndim, shape, &numel);
    if (st)
        return st;
    if (!data)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: data is NULL", fn);
    if ((uintptr_t)data % _Alignof(float) != 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: data = %p is not aligned to a float (%zu bytes)", fn, (void *)data,
                         (size_t)_Alignof(float));
    if (memory == LGD_MEMORY_HOST && !ctx->ops->host_memory)
        return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                         "%s: host memory cannot be wrapped on the %s backend (its tensors "
                         "live in device memory): wrap memory allocated on the device "
                         "(LGD_MEMORY_DEVICE), or create a tensor and lgd_tensor_upload() "
                         "the data", fn, ctx->backend_name);
    lgd_tensor *t = new_tensor(ctx, ndim, shape, numel);
    if (!t)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    t->buf.data = data;
    t->buf.count = (size_t)numel;
    t->wrapped = 1;
    t->release = release;
    t->release_user = user;
    *out = t;
    return LGD_OK;
}

lgd_tensor *lgd_tensor_retain(lgd_tensor *t)
{
    if (t)
        lgd_ref_take(&t->refs);
    return t;
}

void lgd_tensor_destroy(lgd_tensor *t)
{
    if (!t || !lgd_ref_drop(&t->refs))
        return;
    lgd_context *ctx = t->ctx;
    if (t->wrapped) {
        if (t->release)
            t->release(t->release_user);
    } else {
        lgd_buffer_release(ctx, &t->buf);
    }
    free(t);
    lgd_context_release(ctx);
}

lgd_context *lgd_tensor_context(const lgd_tensor *t) { return t ? t->ctx : NULL; }

int32_t lgd_tensor_ndim(const lgd_tensor *t) { return t ? t->ndim : 0; }

int64_t lgd_tensor_dim(const lgd_tensor *t, int32_t axis)
{
    return (t && axis >= 0 && axis < t->ndim) ? t->shape[axis] : 0;
}

int64_t lgd_tensor_numel(const lgd_tensor *t) { return t ? t->numel : 0; }

float *lgd_tensor_data(lgd_tensor *t) { return t ? t->buf.data : NULL; }

/* The checks of upload and download: host non-NULL, count == numel. */
static lgd_status check_count(const lgd_tensor *t, const char *fn, const float *host,
                              int64_t count)
{
    if (!host)
        return lgd_error(t->ctx, LGD_ERR_INVALID_ARGUMENT, "%s: host is NULL", fn);
    if (count < 0)
        return lgd_error(t->ctx, LGD_ERR_INVALID_ARGUMENT, "%s: count = %lld is negative", fn,
                         (long long)count);
    if (count != t->numel)
        return lgd_error(t->ctx, LGD_ERR_SHAPE_MISMATCH, "%s: count %lld != tensor size %lld",
                         fn, (long long)count, (long long)t->numel);
    return LGD_OK;
}

lgd_status lgd_tensor_upload(lgd_tensor *t, const float *host, int64_t count)
{
    if (!t)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_status st = check_count(t, "lgd_tensor_upload", host, count);
    if (st)
        return st;
    if (t->ctx->ops->upload(t->ctx->be, t->buf.data, host, (size_t)count * sizeof(float)) != 0)
        return lgd_backend_error(t->ctx, LGD_ERR_INTERNAL, "lgd_tensor_upload: copy failed");
    return LGD_OK;
}

lgd_status lgd_tensor_download(const lgd_tensor *t, float *host, int64_t count)
{
    if (!t)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_status st = check_count(t, "lgd_tensor_download", host, count);
    if (st)
        return st;
    if (t->ctx->ops->download(t->ctx->be, host, t->buf.data, (size_t)count * sizeof(float)) != 0)
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
