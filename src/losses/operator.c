/*
 * operator.c - matrix-free linear operators on images (lgd/operator.h): average
 * pooling, antialiased bicubic downsampling, masks and Gaussian blur, applied to
 * tensors (lgd_operator_apply) and as the loss |y - H x|^2 / (2 s^2)
 * (lgd_loss_create_operator).
 *
 * The separable kinds are H = A_h (x) A_w: a 1-D matrix along the height and one along
 * the width, each built here on the host in double as a CSR matrix (rows sorted by
 * input index, duplicate taps of the reflect padding merged, exact zeros dropped),
 * together with its transpose in the same form, and uploaded once (weights rounded to
 * float). H x is then two passes of the operator kernel table's apply_axis (width, then
 * height) and H^T z the transposed passes in the reverse order; a mask is one
 * elementwise pass. The loss's residual (H x - y) / s^2 and its value are the linear
 * loss's kernel (loss_kernels.h "residual").
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked.h"
#include "core/internal.h"
#include "losses/loss_internal.h"
#include "losses/loss_kernels.h"
#include "losses/operator_kernels.h"

/* the largest blur radius (lgd/operator.h) */
#define OP_MAX_RADIUS 4096

lgd_status lgd_operator_options_init(lgd_operator_options *options, uint32_t struct_size)
{
    const lgd_operator_options defaults = LGD_OPERATOR_OPTIONS_INIT;
    return lgd_init_struct(options, struct_size, &defaults, sizeof defaults,
                           sizeof(lgd_operator_options));
}

/* ---- the operator's geometry, checked ---- */

typedef struct op_geom {
    lgd_operator_kind kind;
    size_t C, H, W;   /* the image */
    size_t oh, ow;    /* the measurement's height and width (H, W for mask and blur) */
    size_t dim, m;    /* C H W and C oh ow */
    size_t factor;    /* avg pool, bicubic */
    double sigma;     /* blur */
    size_t radius;    /* blur, resolved */
    const float *mask;/* the caller's, mask only */
} op_geom;

static lgd_status read_geom(lgd_context *ctx, const char *fn,
                            const lgd_operator_options *options, op_geom *g)
{
    if (!options)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: options is NULL", fn);
    lgd_operator_options o, defaults = LGD_OPERATOR_OPTIONS_INIT;
    lgd_status st = lgd_read_struct(ctx, fn, "options", &o, sizeof o, sizeof o, options,
                                    &defaults);
    if (st)
        return st;
    memset(g, 0, sizeof *g);
    if (o.kind != LGD_OPERATOR_AVG_POOL && o.kind != LGD_OPERATOR_BICUBIC_DOWN &&
        o.kind != LGD_OPERATOR_MASK && o.kind != LGD_OPERATOR_BLUR)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->kind = %d is not an lgd_operator_kind", fn, (int)o.kind);
    g->kind = o.kind;
    const int64_t sizes[3] = { o.channels, o.height, o.width };
    static const char *const names[3] = { "channels", "height", "width" };
    for (int i = 0; i < 3; i++)
        if (sizes[i] < 1 || sizes[i] > INT32_MAX)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->%s = %lld must be in [1, %d]", fn, names[i],
                             (long long)sizes[i], INT32_MAX);
    int64_t dim, bytes;
    if (lgd_mul3_i64(o.channels, o.height, o.width, &dim) ||
        lgd_mul_i64(dim, (int64_t)sizeof(float), &bytes))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: %lld x %lld x %lld images are too large", fn,
                         (long long)o.channels, (long long)o.height, (long long)o.width);
    g->C = (size_t)o.channels;
    g->H = (size_t)o.height;
    g->W = (size_t)o.width;
    g->dim = (size_t)dim;
    g->oh = g->H;
    g->ow = g->W;
    switch (o.kind) {
    case LGD_OPERATOR_AVG_POOL:
    case LGD_OPERATOR_BICUBIC_DOWN:
        if (o.factor < 1)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->factor = %d must be >= 1", fn, (int)o.factor);
        if (o.height % o.factor != 0 || o.width % o.factor != 0)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->factor = %d must divide the height (%lld) and the "
                             "width (%lld)",
                             fn, (int)o.factor, (long long)o.height, (long long)o.width);
        g->factor = (size_t)o.factor;
        g->oh = g->H / g->factor;
        g->ow = g->W / g->factor;
        break;
    case LGD_OPERATOR_MASK:
        if (!o.mask)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->mask is NULL (LGD_OPERATOR_MASK needs one)", fn);
        g->mask = o.mask;
        break;
    case LGD_OPERATOR_BLUR: {
        if (!isfinite(o.blur_sigma) || !(o.blur_sigma > 0.0f))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->blur_sigma = %g must be finite and > 0", fn,
                             (double)o.blur_sigma);
        if (o.blur_radius < 0 || o.blur_radius > OP_MAX_RADIUS)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->blur_radius = %d must be in [0, %d] (0: ceil(3 "
                             "sigma))",
                             fn, (int)o.blur_radius, OP_MAX_RADIUS);
        g->sigma = (double)o.blur_sigma;
        if (o.blur_radius == 0) {
            double r = ceil(3.0 * g->sigma);
            if (!(r <= OP_MAX_RADIUS))
                return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                                 "%s: the automatic blur radius ceil(3 * %g) is above %d; give "
                                 "options->blur_radius",
                                 fn, g->sigma, OP_MAX_RADIUS);
            g->radius = r < 1.0 ? 1 : (size_t)r;
        } else {
            g->radius = (size_t)o.blur_radius;
        }
        break;
    }
    }
    g->m = g->C * g->oh * g->ow; /* <= dim */
    return LGD_OK;
}

/* ---- 1-D matrices on the host ---- */

/* A sparse [n_out][n_in] matrix, CSR: row i is entries off[i] .. off[i + 1] - 1 */
typedef struct csr_host {
    size_t n_out, n_in, nnz;
    int32_t *off; /* [n_out + 1] */
    int32_t *idx; /* [nnz] */
    float *w;     /* [nnz] */
} csr_host;

static void csr_free(csr_host *a)
{
    free(a->off);
    free(a->idx);
    free(a->w);
    memset(a, 0, sizeof *a);
}

/* Allocates a matrix with room for n_out * taps entries (refused beyond what int32
 * offsets index). */
static lgd_status csr_alloc(lgd_context *ctx, const char *fn, csr_host *a, size_t n_out,
                            size_t n_in, size_t taps)
{
    memset(a, 0, sizeof *a);
    size_t cap, off_count;
    if (lgd_mul_size(n_out, taps, &cap) || cap > INT32_MAX || cap > SIZE_MAX / sizeof(double) ||
        lgd_add_size(n_out, 1, &off_count))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                         "%s: an axis of %zu outputs with up to %zu taps each is too large", fn,
                         n_out, taps);
    a->n_out = n_out;
    a->n_in = n_in;
    a->off = malloc(off_count * sizeof *a->off);
    a->idx = malloc((cap ? cap : 1) * sizeof *a->idx);
    a->w = malloc((cap ? cap : 1) * sizeof *a->w);
    if (!a->off || !a->idx || !a->w) {
        csr_free(a);
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory for the operator", fn);
    }
    a->off[0] = 0;
    return LGD_OK;
}

/* Row accumulator: taps added in any order, duplicates summed, emitted sorted. */
typedef struct row_acc {
    double *v;   /* [n_in], zero between rows */
    size_t lo, hi; /* touched range, lo > hi when empty */
} row_acc;

static void acc_add(row_acc *r, size_t p, double w)
{
    r->v[p] += w;
    if (r->lo > r->hi) {
        r->lo = r->hi = p;
    } else {
        if (p < r->lo)
            r->lo = p;
        if (p > r->hi)
            r->hi = p;
    }
}

/* Emits the accumulated row i (times scale, rounded to float; exact zeros dropped) and
 * clears the accumulator. */
static void acc_emit(row_acc *r, csr_host *a, size_t i, double scale)
{
    size_t e = (size_t)a->off[i];
    if (r->lo <= r->hi)
        for (size_t p = r->lo; p <= r->hi; p++) {
            double w = r->v[p] * scale;
            r->v[p] = 0.0;
            if (w != 0.0) {
                a->idx[e] = (int32_t)p;
                a->w[e] = (float)w;
                e++;
            }
        }
    a->off[i + 1] = (int32_t)e;
    r->lo = 1;
    r->hi = 0;
}

/* The Keys cubic with a = -0.5 (PyTorch's antialiased bicubic filter). */
static double keys_cubic(double t)
{
    const double a = -0.5;
    t = fabs(t);
    if (t < 1.0)
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    if (t < 2.0)
        return (((t - 5.0) * t + 8.0) * t - 4.0) * a;
    return 0.0;
}

/* reflect padding without repeating the edge (-1 -> 1, n -> n - 2), folded again as
 * often as needed */
static size_t reflect_index(int64_t p, int64_t n)
{
    if (n == 1)
        return 0;
    int64_t period = 2 * (n - 1);
    p %= period;
    if (p < 0)
        p += period;
    return (size_t)(p < n ? p : period - p);
}

/* The 1-D matrix of one axis of n pixels (n_out outputs) for the geometry's kind. */
static lgd_status build_axis(lgd_context *ctx, const char *fn, const op_geom *g, size_t n,
                             size_t n_out, csr_host *a)
{
    size_t taps;
    switch (g->kind) {
    case LGD_OPERATOR_AVG_POOL:
        taps = g->factor;
        break;
    case LGD_OPERATOR_BICUBIC_DOWN:
        taps = 4 * g->factor + 3; /* the window |t| <= 2 spans at most 4f + 2 pixels */
        break;
    default: /* blur */
        taps = 2 * g->radius + 1;
        break;
    }
    if (taps > n)
        taps = n; /* taps are merged per input pixel */
    lgd_status st = csr_alloc(ctx, fn, a, n_out, n, taps);
    if (st)
        return st;
    row_acc r = { calloc(n, sizeof(double)), 1, 0 };
    double *gauss = NULL;
    if (g->kind == LGD_OPERATOR_BLUR)
        gauss = malloc((2 * g->radius + 1) * sizeof *gauss);
    if (!r.v || (g->kind == LGD_OPERATOR_BLUR && !gauss)) {
        free(r.v);
        free(gauss);
        csr_free(a);
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory for the operator", fn);
    }
    double gsum = 0.0;
    if (gauss) {
        for (size_t k = 0; k <= 2 * g->radius; k++) {
            double t = ((double)k - (double)g->radius) / g->sigma; /* 0 at the centre */
            gauss[k] = exp(-0.5 * t * t);
        }
        for (size_t k = 0; k <= 2 * g->radius; k++)
            gsum += gauss[k];
    }
    const double f = (double)g->factor;
    for (size_t i = 0; i < n_out; i++) {
        double scale = 1.0;
        switch (g->kind) {
        case LGD_OPERATOR_AVG_POOL:
            for (size_t p = i * g->factor; p < (i + 1) * g->factor; p++)
                acc_add(&r, p, 1.0);
            scale = 1.0 / f;
            break;
        case LGD_OPERATOR_BICUBIC_DOWN: {
            double c = f * ((double)i + 0.5), total = 0.0;
            double lo = floor(c - 2.0 * f - 0.5), hi = ceil(c + 2.0 * f - 0.5);
            if (lo < 0.0)
                lo = 0.0;
            if (hi > (double)n - 1.0)
                hi = (double)n - 1.0;
            for (size_t p = (size_t)lo; p <= (size_t)hi; p++) {
                double w = keys_cubic(((double)p + 0.5 - c) / f);
                acc_add(&r, p, w);
                total += w;
            }
            scale = 1.0 / total; /* > 0: the nearest pixel's weight dominates */
            break;
        }
        default:
            for (size_t k = 0; k <= 2 * g->radius; k++)
                acc_add(&r,
                        reflect_index((int64_t)i + (int64_t)k - (int64_t)g->radius,
                                      (int64_t)n),
                        gauss[k]);
            scale = 1.0 / gsum;
            break;
        }
        acc_emit(&r, a, i, scale);
    }
    a->nnz = (size_t)a->off[n_out];
    free(r.v);
    free(gauss);
    return LGD_OK;
}

/* t = a^T in the same CSR form (rows sorted by a's row index). */
static lgd_status transpose_axis(lgd_context *ctx, const char *fn, const csr_host *a,
                                 csr_host *t)
{
    memset(t, 0, sizeof *t);
    t->n_out = a->n_in;
    t->n_in = a->n_out;
    t->nnz = a->nnz;
    t->off = calloc(a->n_in + 1, sizeof *t->off);
    t->idx = malloc((a->nnz ? a->nnz : 1) * sizeof *t->idx);
    t->w = malloc((a->nnz ? a->nnz : 1) * sizeof *t->w);
    size_t *fill = calloc(a->n_in + 1, sizeof *fill);
    if (!t->off || !t->idx || !t->w || !fill) {
        free(fill);
        csr_free(t);
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory for the operator", fn);
    }
    for (size_t e = 0; e < a->nnz; e++)
        fill[(size_t)a->idx[e] + 1]++;
    for (size_t p = 0; p < a->n_in; p++)
        fill[p + 1] += fill[p];
    for (size_t p = 0; p <= a->n_in; p++)
        t->off[p] = (int32_t)fill[p]; /* <= nnz <= INT32_MAX */
    for (size_t i = 0; i < a->n_out; i++)
        for (size_t e = (size_t)a->off[i]; e < (size_t)a->off[i + 1]; e++) {
            size_t p = (size_t)a->idx[e], dst = fill[p]++;
            t->idx[dst] = (int32_t)i;
            t->w[dst] = a->w[e];
        }
    free(fill);
    return LGD_OK;
}

/* ---- the operator on the backend ---- */

typedef struct op_csr {
    const int32_t *off, *idx;
    const float *w;
} op_csr;

typedef struct image_op {
    op_geom g;
    const lgd_operator_kernels *kern;
    int32_t *ints;       /* the four matrices' offsets and indices (backend memory) */
    size_t ints_bytes;
    lgd_buffer floats;   /* their weights, or the mask */
    op_csr fw_w, tr_w, fw_h, tr_h; /* width and height maps and their transposes */
    const float *mask;   /* in floats (mask only) */
    lgd_buffer scratch;  /* [rows][C][H][ow] between the two passes */
} image_op;

static void op_free(lgd_context *ctx, image_op *op)
{
    lgd_backend_free(ctx, op->ints, op->ints_bytes);
    op->ints = NULL;
    lgd_buffer_release(ctx, &op->floats);
    lgd_buffer_release(ctx, &op->scratch);
}

static lgd_status check_mask(lgd_context *ctx, const char *fn, const op_geom *g)
{
    for (size_t j = 0; j < g->dim; j++)
        if (!isfinite(g->mask[j]))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->mask[%zu] is not finite", fn, j);
    return LGD_OK;
}

/* Builds the operator of g on the context's backend (op zeroed by the caller). */
static lgd_status op_build(lgd_context *ctx, const char *fn, const op_geom *g, image_op *op)
{
    op->g = *g;
    op->g.mask = NULL; /* the caller's pointer is not kept */
    lgd_status st;
    const void *kern = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_operator_kernel_table, fn, &kern)))
        return st;
    op->kern = kern;
    if (g->kind == LGD_OPERATOR_MASK) {
        if ((st = check_mask(ctx, fn, g)) ||
            (st = lgd_buffer_from_host(ctx, &op->floats, g->mask, g->dim, "operator mask")))
            return st;
        op->mask = op->floats.data;
        return LGD_OK;
    }
    /* host matrices: [0] width, [1] its transpose, [2] height, [3] its transpose */
    csr_host m[4];
    memset(m, 0, sizeof m);
    if ((st = build_axis(ctx, fn, g, g->W, g->ow, &m[0])) ||
        (st = transpose_axis(ctx, fn, &m[0], &m[1])) ||
        (st = build_axis(ctx, fn, g, g->H, g->oh, &m[2])) ||
        (st = transpose_axis(ctx, fn, &m[2], &m[3])))
        goto done;
    size_t n_ints = 0, n_floats = 0; /* each term < 2^31: no overflow in 64 bits */
    for (int k = 0; k < 4; k++) {
        n_ints += m[k].n_out + 1 + m[k].nnz;
        n_floats += m[k].nnz;
    }
    if (n_floats == 0)
        n_floats = 1;
    op->ints_bytes = n_ints * sizeof(int32_t);
    op->ints = lgd_backend_alloc(ctx, op->ints_bytes);
    if (!op->ints) {
        st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", fn,
                       op->ints_bytes);
        goto done;
    }
    if ((st = lgd_buffer_reserve(ctx, &op->floats, n_floats, "operator weights")))
        goto done;
    op_csr *dst[4] = { &op->fw_w, &op->tr_w, &op->fw_h, &op->tr_h };
    size_t io = 0, fo = 0;
    for (int k = 0; k < 4; k++) {
        int32_t *off = op->ints + io, *idx = off + m[k].n_out + 1;
        float *w = op->floats.data + fo;
        if (ctx->ops->upload(ctx->be, off, m[k].off, (m[k].n_out + 1) * sizeof(int32_t)) ||
            (m[k].nnz &&
             (ctx->ops->upload(ctx->be, idx, m[k].idx, m[k].nnz * sizeof(int32_t)) ||
              ctx->ops->upload(ctx->be, w, m[k].w, m[k].nnz * sizeof(float))))) {
            st = lgd_backend_error(ctx, LGD_ERR_INTERNAL, "%s: uploading the operator failed",
                                   fn);
            goto done;
        }
        *dst[k] = (op_csr){ off, idx, w };
        io += m[k].n_out + 1 + m[k].nnz;
        fo += m[k].nnz;
    }
done:
    for (int k = 0; k < 4; k++)
        csr_free(&m[k]);
    return st;
}

/* the scratch of the separable passes for `rows` images */
static lgd_status op_reserve(lgd_context *ctx, image_op *op, size_t rows)
{
    size_t count;
    if (lgd_mul3_size(rows, op->g.C * op->g.H, op->g.ow, &count))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "operator: %zu rows is too large", rows);
    return lgd_buffer_reserve(ctx, &op->scratch, count ? count : 1, "operator scratch");
}

/* out[rows][m] = H x[rows][dim] */
static lgd_status op_forward(lgd_context *ctx, image_op *op, size_t rows, const float *x,
                             float *out)
{
    const op_geom *g = &op->g;
    if (g->kind == LGD_OPERATOR_MASK) {
        op->kern->mul_rows(ctx->be, rows, g->dim, op->mask, x, out);
        return LGD_OK;
    }
    lgd_status st = op_reserve(ctx, op, rows);
    if (st)
        return st;
    float *t = op->scratch.data;
    op->kern->apply_axis(ctx->be, rows * g->C * g->H, g->W, g->ow, 1, op->fw_w.off,
                         op->fw_w.idx, op->fw_w.w, x, t);
    op->kern->apply_axis(ctx->be, rows * g->C, g->H, g->oh, g->ow, op->fw_h.off, op->fw_h.idx,
                         op->fw_h.w, t, out);
    return LGD_OK;
}

/* out[rows][dim] = H^T z[rows][m] */
static lgd_status op_adjoint(lgd_context *ctx, image_op *op, size_t rows, const float *z,
                             float *out)
{
    const op_geom *g = &op->g;
    if (g->kind == LGD_OPERATOR_MASK) {
        op->kern->mul_rows(ctx->be, rows, g->dim, op->mask, z, out);
        return LGD_OK;
    }
    lgd_status st = op_reserve(ctx, op, rows);
    if (st)
        return st;
    float *t = op->scratch.data;
    op->kern->apply_axis(ctx->be, rows * g->C, g->oh, g->H, g->ow, op->tr_h.off, op->tr_h.idx,
                         op->tr_h.w, z, t);
    op->kern->apply_axis(ctx->be, rows * g->C * g->H, g->ow, g->W, 1, op->tr_w.off,
                         op->tr_w.idx, op->tr_w.w, t, out);
    return LGD_OK;
}

/* ---- public: sizes and application ---- */

lgd_status lgd_operator_dims(lgd_context *ctx, const lgd_operator_options *options,
                             int64_t *out_dim, int64_t *out_m)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    op_geom g;
    lgd_status st = read_geom(ctx, "lgd_operator_dims", options, &g);
    if (st)
        return st;
    if (out_dim)
        *out_dim = (int64_t)g.dim;
    if (out_m)
        *out_m = (int64_t)g.m;
    return LGD_OK;
}

lgd_status lgd_operator_apply(lgd_context *ctx, const lgd_operator_options *options,
                              int32_t adjoint, const lgd_tensor *x, lgd_tensor *out)
{
    static const char fn[] = "lgd_operator_apply";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    op_geom g;
    lgd_status st = read_geom(ctx, fn, options, &g);
    if (st)
        return st;
    if (adjoint != 0 && adjoint != 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: adjoint = %d must be 0 or 1", fn,
                         (int)adjoint);
    if ((st = lgd_check_tensor(ctx, x, "lgd_operator_apply: x")) ||
        (st = lgd_check_tensor(ctx, out, "lgd_operator_apply: out")))
        return st;
    size_t in_len = adjoint ? g.m : g.dim, out_len = adjoint ? g.dim : g.m;
    size_t numel = (size_t)x->numel; /* >= 1 */
    if (numel % in_len != 0)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: x has %zu elements, not a whole number of rows of %zu (%s)", fn,
                         numel, in_len, adjoint ? "m, for H^T" : "dim, for H");
    size_t rows = numel / in_len, want;
    if (lgd_mul_size(rows, out_len, &want) || (size_t)out->numel != want)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: out has %lld elements; %zu rows of %zu need %zu", fn,
                         (long long)out->numel, rows, out_len, rows * out_len);
    image_op op;
    memset(&op, 0, sizeof op);
    if (!(st = op_build(ctx, fn, &g, &op))) {
        st = adjoint ? op_adjoint(ctx, &op, rows, x->buf.data, out->buf.data)
                     : op_forward(ctx, &op, rows, x->buf.data, out->buf.data);
        /* the scratch is freed below: wait for the passes, and report their failure */
        if (!st && ctx->ops->synchronize(ctx->be) != 0)
            st = lgd_backend_error(ctx, LGD_ERR_INTERNAL, "%s: the backend failed", fn);
    }
    op_free(ctx, &op);
    return st;
}

/* ---- the loss |y - H x|^2 / (2 s^2) ---- */

typedef struct operator_loss {
    image_op op;
    const lgd_loss_kernels *lk; /* the residual kernel of the linear loss */
    lgd_buffer y;               /* [target_rows][m] */
    lgd_buffer hx;              /* scratch [rows][m]: H x, then the scaled residual */
    size_t target_rows;
    float inv_s2;
} operator_loss;

static lgd_status operator_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                                size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    (void)first_draw; /* the draw index does not change this loss */
    (void)total_draws;
    operator_loss *s = l->impl;
    lgd_context *ctx = l->ctx;
    if (s->target_rows != 1 && s->target_rows != batch)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s loss: it has %zu target rows, which must be 1 or the batch (%zu)",
                         l->vt->name, s->target_rows, batch);
    size_t rows = batch * n, m = s->op.g.m, count; /* rows <= x's numel */
    if (lgd_mul_size(rows, m, &count))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "operator loss: batch %zu is too large",
                         rows);
    lgd_status st;
    if ((st = lgd_buffer_reserve(ctx, &s->hx, count, "operator loss scratch")) ||
        (st = op_forward(ctx, &s->op, rows, x, s->hx.data)))
        return st;
    /* hx <- (H x - y) / s^2, loss = |H x - y|^2 / (2 s^2) */
    s->lk->residual(ctx->be, rows, m, s->y.data, s->target_rows, n, s->inv_s2, s->hx.data,
                    loss);
    if (grad)
        return op_adjoint(ctx, &s->op, rows, s->hx.data, grad);
    return LGD_OK;
}

static void operator_free(lgd_context *ctx, operator_loss *s)
{
    op_free(ctx, &s->op);
    lgd_buffer_release(ctx, &s->y);
    lgd_buffer_release(ctx, &s->hx);
    free(s);
}

static void operator_destroy(lgd_loss *l) { operator_free(l->ctx, l->impl); }

static const lgd_loss_vtable operator_vtable = {
    .name = "operator",
    .eval = operator_eval,
    .destroy = operator_destroy,
};

lgd_status lgd_loss_create_operator(lgd_context *ctx, const lgd_operator_options *options,
                                    const float *y, int64_t target_rows, float s2,
                                    lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_operator";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    op_geom g;
    lgd_status st = read_geom(ctx, fn, options, &g);
    if (st)
        return st;
    if (!y)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: y is NULL", fn);
    if (target_rows < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: target_rows = %lld must be 1 or the batch size", fn,
                         (long long)target_rows);
    if (!isfinite(s2) || !(s2 > 0.0f))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: s2 = %g must be finite and > 0",
                         fn, (double)s2);
    double inv_s2 = 1.0 / (double)s2;
    if (!isfinite((float)inv_s2))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: s2 = %g is too small (1 / s2 overflows float)", fn, (double)s2);
    size_t ycount;
    if (lgd_mul_size((size_t)target_rows, g.m, &ycount) || ycount > SIZE_MAX / sizeof(float))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: %lld target rows of %zu is too large",
                         fn, (long long)target_rows, g.m);
    for (size_t i = 0; i < ycount; i++)
        if (!isfinite(y[i]))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: y[%zu] is not finite", fn, i);
    const void *lk = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_loss_kernel_table, fn, &lk)))
        return st;
    operator_loss *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->lk = lk;
    s->target_rows = (size_t)target_rows;
    s->inv_s2 = (float)inv_s2;
    if ((st = op_build(ctx, fn, &g, &s->op)) ||
        (st = lgd_buffer_from_host(ctx, &s->y, y, ycount, "operator loss y")) ||
        (st = lgd_loss_new(ctx, &operator_vtable, (int64_t)g.dim, s, out))) {
        operator_free(ctx, s);
        return st;
    }
    return LGD_OK;
}
