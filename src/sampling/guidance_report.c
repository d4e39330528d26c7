/*
 * guidance_report.c - the guidance's diagnostics report: checking a caller's report
 * (any published size; per-row arrays with room for the batch), and filling it from
 * the call's per-row values without writing past the caller's struct_size.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "models/model_internal.h"
#include "sampling/guidance_impl.h"
#include "sampling/guidance_internal.h"

lgd_status lgd_guidance_report_init(lgd_guidance_report *report, uint32_t struct_size)
{
    const lgd_guidance_report defaults = LGD_GUIDANCE_REPORT_INIT;
    return lgd_init_struct(report, struct_size, &defaults, sizeof defaults,
                           offsetof(lgd_guidance_report, rows));
}

static float host_mean(const float *h, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++)
        acc += h[i];
    return n ? (float)(acc / (double)n) : 0.0f;
}

/* The caller's report as this library's struct: the bytes its struct_size covers, the
 * rest at their defaults (no per-row request), so fields past an older caller's
 * struct are never read. */
static void read_report(const lgd_guidance_report *rep, lgd_guidance_report *r)
{
    const lgd_guidance_report defaults = LGD_GUIDANCE_REPORT_INIT;
    *r = defaults;
    size_t n = rep->struct_size < sizeof *r ? rep->struct_size : sizeof *r;
    memcpy(r, rep, n);
}

static int wants_rows(const lgd_guidance_report *r)
{
    return r->row_loss || r->row_ess || r->row_grad_norm || r->row_lambda;
}

lgd_status lgd_guidance_check_report(lgd_context *ctx, const char *fn,
                                     const lgd_guidance_report *rep, int64_t batch)
{
    if (!rep)
        return LGD_OK;
    /* the first published layout ends at rows: as lgd_guidance_report_init requires */
    if (rep->struct_size < offsetof(lgd_guidance_report, rows))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: report->struct_size = %u is below the first published layout "
                         "(%zu bytes; use LGD_GUIDANCE_REPORT_INIT or lgd_guidance_report_init)",
                         fn, (unsigned)rep->struct_size, offsetof(lgd_guidance_report, rows));
    lgd_guidance_report r;
    read_report(rep, &r);
    if (wants_rows(&r) && r.rows < batch)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: report->rows = %lld is less than the batch %lld (the per-row "
                         "arrays need one entry per row)",
                         fn, (long long)r.rows, (long long)batch);
    return LGD_OK;
}

/* Downloads `bytes` of the backend buffer src into the host array dst; a failure (a
 * device error) is the call's status, not a report of stale values. */
#define REPORT_DOWNLOAD(dst, src)                                                         \
    do {                                                                                  \
        if (ops->download(ctx->be, (dst), (src), bytes) != 0)                             \
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL,                               \
                                     "guidance report: reading the diagnostics failed");  \
    } while (0)

static void put_rows(float *dst, const float *src, size_t batch)
{
    if (dst)
        memcpy(dst, src, batch * sizeof(float));
}

lgd_status lgd_guidance_fill_report(lgd_guidance *g, float sigma, size_t batch, int active,
                                    int have_lambda, lgd_guidance_report *rep)
{
    if (!rep)
        return LGD_OK;
    lgd_guidance_report req;
    read_report(rep, &req);
    int rows = wants_rows(&req) && req.rows >= (int64_t)batch;
    lgd_guidance_report r = LGD_GUIDANCE_REPORT_INIT;
    lgd_context *ctx = g->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    size_t D = (size_t)g->model->dim, bytes = batch * sizeof(float);
    float *h = g->host;
    r.sigma = sigma;
    r.active = active;
    if (active && g->opt.kind != LGD_GUIDANCE_NONE && g->loss) {
        /* row loss = the mean of the row's n losses */
        REPORT_DOWNLOAD(h, g->st_lsum.data);
        for (size_t i = 0; i < batch; i++)
            h[i] /= (float)g->opt.n_samples;
        r.mean_loss = host_mean(h, batch);
        if (rows)
            put_rows(req.row_loss, h, batch);
        REPORT_DOWNLOAD(h, g->ess.data);
        r.mean_ess = host_mean(h, batch);
        r.min_ess = h[0];
        for (size_t i = 1; i < batch; i++)
            r.min_ess = h[i] < r.min_ess ? h[i] : r.min_ess;
        if (rows)
            put_rows(req.row_ess, h, batch);
        ops->row_dot(ctx->be, batch, D, g->gvec.data, g->gvec.data, g->norms.data, 1);
        REPORT_DOWNLOAD(h, g->norms.data);
        for (size_t i = 0; i < batch; i++)
            h[i] = (float)sqrt((double)h[i]);
        r.mean_grad_norm = host_mean(h, batch);
        if (rows)
            put_rows(req.row_grad_norm, h, batch);
        if (have_lambda) {
            REPORT_DOWNLOAD(h, g->lambda.data);
            r.mean_lambda = host_mean(h, batch);
            if (rows)
                put_rows(req.row_lambda, h, batch);
        } else if (rows && req.row_lambda) {
            memset(req.row_lambda, 0, bytes);
        }
    } else if (rows) {
        float *arrays[] = { req.row_loss, req.row_ess, req.row_grad_norm, req.row_lambda };
        for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++)
            if (arrays[a])
                memset(arrays[a], 0, bytes);
    }
    /* the request stays as the caller set it */
    r.rows = req.rows;
    r.row_loss = req.row_loss;
    r.row_ess = req.row_ess;
    r.row_grad_norm = req.row_grad_norm;
    r.row_lambda = req.row_lambda;
    size_t n = rep->struct_size < sizeof r ? rep->struct_size : sizeof r;
    uint32_t caller_size = rep->struct_size;
    memcpy(rep, &r, n);
    rep->struct_size = caller_size;
    return LGD_OK;
}

