/*
 * test_network_loss.c - the 'network_loss' suite: a loaded network as a loss and the
 * classifier-guided model (include/lgd/network_loss.h).
 *
 * The networks are written here as safetensors files from random weights: an `mlp` with
 * lgd.out_dim (a time-conditioned classifier, out_dim 3 or 1) and a `layer` linear map.
 * Every value is compared with a float64 reference computed here from the same float
 * weights (the MLP's forward pass written out: sinusoidal time embedding, linears, SiLU,
 * LayerNorm), every gradient with central finite differences of that reference, and the
 * LGD-MC guidance over the network loss with the same guidance over a host callback loss
 * that computes the linear classifier's cross-entropy in double. Chunking (max_rows) is
 * checked against one call (to rounding: OpenBLAS rounds a row by the row count of its
 * GEMM even on one thread) and for repeatable bytes, memory against n, and every bad
 * argument for its status, its message and *out = NULL.
 */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ network files */

typedef struct wparam {
    char name[64];
    int ndim;
    int64_t shape[2];
    float *data;
    size_t n;
} wparam;

typedef struct wfile {
    char meta[1024]; /* JSON members of __metadata__, without braces */
    wparam p[64];
    int np;
} wfile;

static float *add_param(wfile *f, const char *name, int64_t rows, int64_t cols, tu_rng *r,
                        double scale, double offset)
{
    ck_assert_int_lt(f->np, 64);
    wparam *p = &f->p[f->np++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->n = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    p->data = malloc(p->n * sizeof *p->data);
    ck_assert_ptr_nonnull(p->data);
    for (size_t i = 0; i < p->n; i++)
        p->data[i] = (float)(offset + scale * tu_normal(r));
    return p->data;
}

static const float *param(const wfile *f, const char *name)
{
    for (int i = 0; i < f->np; i++)
        if (!strcmp(f->p[i].name, name))
            return f->p[i].data;
    ck_abort_msg("no parameter %s", name);
    return NULL;
}

static void wfile_free(wfile *f)
{
    for (int i = 0; i < f->np; i++)
        free(f->p[i].data);
    f->np = 0;
}

static void meta_add(wfile *f, const char *fmt, ...)
{
    size_t len = strlen(f->meta);
    char item[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    int n = snprintf(f->meta + len, sizeof f->meta - len, "%s%s", len ? "," : "", item);
    ck_assert(n > 0 && (size_t)n < sizeof f->meta - len);
}

/* The safetensors bytes of f (F32 tensors in order, header padded to 8 bytes). */
static unsigned char *wfile_bytes(const wfile *f, size_t *size)
{
    char *h = malloc(65536);
    ck_assert_ptr_nonnull(h);
    size_t off = 0, hl = 0;
    hl += (size_t)snprintf(h + hl, 65536 - hl, "{\"__metadata__\":{%s}", f->meta);
    for (int i = 0; i < f->np; i++) {
        const wparam *p = &f->p[i];
        size_t bytes = p->n * sizeof(float);
        if (p->ndim == 2)
            hl += (size_t)snprintf(h + hl, 65536 - hl,
                                   ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   p->name, (long long)p->shape[0], (long long)p->shape[1], off,
                                   off + bytes);
        else
            hl += (size_t)snprintf(h + hl, 65536 - hl,
                                   ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   p->name, (long long)p->shape[0], off, off + bytes);
        off += bytes;
    }
    hl += (size_t)snprintf(h + hl, 65536 - hl, "}");
    ck_assert(hl < 65000);
    while (hl % 8)
        h[hl++] = ' ';
    unsigned char *b = malloc(8 + hl + off);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, h, hl);
    size_t at = 8 + hl;
    for (int i = 0; i < f->np; i++) {
        memcpy(b + at, f->p[i].data, f->p[i].n * sizeof(float));
        at += f->p[i].n * sizeof(float);
    }
    free(h);
    *size = at;
    return b;
}

static lgd_network *wfile_load(lgd_context *ctx, const wfile *f)
{
    size_t size;
    unsigned char *b = wfile_bytes(f, &size);
    lgd_network *net = NULL;
    TU_OK(ctx, lgd_network_load_memory(ctx, b, size, &net));
    free(b);
    return net;
}

/* ---- the `mlp` classifier: D inputs, H hidden, L blocks, E time embedding, K outputs */

typedef struct mlp {
    int D, H, L, E, K, C; /* C: cond_dim */
    wfile f;
} mlp;

static void mlp_make(mlp *m, int D, int H, int L, int E, int K, int C, uint64_t seed,
                     const char *extra_meta)
{
    memset(m, 0, sizeof *m);
    m->D = D, m->H = H, m->L = L, m->E = E, m->K = K, m->C = C;
    tu_rng r = { seed };
    wfile *f = &m->f;
    meta_add(f, "\"lgd.format\":\"1\",\"lgd.architecture\":\"mlp\"");
    meta_add(f, "\"lgd.dim\":\"%d\",\"lgd.hidden\":\"%d\",\"lgd.depth\":\"%d\"", D, H, L);
    meta_add(f, "\"lgd.time_embed_dim\":\"%d\",\"lgd.cond_dim\":\"%d\"", E, C);
    meta_add(f, "\"lgd.out_dim\":\"%d\"", K);
    if (extra_meta)
        meta_add(f, "%s", extra_meta);
    double sh = 1.0 / sqrt((double)H);
    add_param(f, "time_embed.0.weight", H, E, &r, 1.0 / sqrt((double)E), 0.0);
    add_param(f, "time_embed.0.bias", H, 0, &r, 0.1, 0.0);
    add_param(f, "time_embed.2.weight", H, H, &r, sh, 0.0);
    add_param(f, "time_embed.2.bias", H, 0, &r, 0.1, 0.0);
    add_param(f, "input.weight", H, D, &r, 1.0 / sqrt((double)D), 0.0);
    add_param(f, "input.bias", H, 0, &r, 0.1, 0.0);
    if (C > 0)
        add_param(f, "cond_proj.weight", H, C, &r, 0.5, 0.0);
    for (int i = 0; i < L; i++) {
        char n[64];
        snprintf(n, sizeof n, "blocks.%d.norm.weight", i);
        add_param(f, n, H, 0, &r, 0.1, 1.0);
        snprintf(n, sizeof n, "blocks.%d.norm.bias", i);
        add_param(f, n, H, 0, &r, 0.1, 0.0);
        snprintf(n, sizeof n, "blocks.%d.fc1.weight", i);
        add_param(f, n, H, H, &r, sh, 0.0);
        snprintf(n, sizeof n, "blocks.%d.fc1.bias", i);
        add_param(f, n, H, 0, &r, 0.1, 0.0);
        snprintf(n, sizeof n, "blocks.%d.fc2.weight", i);
        add_param(f, n, H, H, &r, sh, 0.0);
        snprintf(n, sizeof n, "blocks.%d.fc2.bias", i);
        add_param(f, n, H, 0, &r, 0.1, 0.0);
    }
    add_param(f, "out_norm.weight", H, 0, &r, 0.1, 1.0);
    add_param(f, "out_norm.bias", H, 0, &r, 0.1, 0.0);
    add_param(f, "output.weight", K, H, &r, 2.0 * sh, 0.0);
    add_param(f, "output.bias", K, 0, &r, 0.3, 0.0);
}

static void ref_linear(const float *W, const float *b, int out, int in, const double *x,
                       double *y)
{
    for (int o = 0; o < out; o++) {
        double acc = b ? (double)b[o] : 0.0;
        for (int i = 0; i < in; i++)
            acc += (double)W[o * in + i] * x[i];
        y[o] = acc;
    }
}

static double silu(double v) { return v / (1.0 + exp(-v)); }

static void ref_layer_norm(const float *g, const float *b, int n, const double *x, double *y)
{
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    double inv = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < n; i++)
        y[i] = (x[i] - mean) * inv * (double)g[i] + (double)b[i];
}

/* out[K] = F(x, t) in double from the float weights (docs/network-format.md, `mlp`) */
static void mlp_ref(const mlp *m, const double *x, double t, double *out)
{
    const wfile *f = &m->f;
    int H = m->H, E = m->E, half = E / 2;
    double emb[64], a[64], temb[64], h[64], r1[64], r2[64];
    ck_assert(E <= 64 && H <= 64);
    for (int i = 0; i < half; i++) {
        double fr = exp(-log(10000.0) * i / half);
        emb[i] = cos(t * fr);
        emb[half + i] = sin(t * fr);
    }
    ref_linear(param(f, "time_embed.0.weight"), param(f, "time_embed.0.bias"), H, E, emb, a);
    for (int i = 0; i < H; i++)
        a[i] = silu(a[i]);
    ref_linear(param(f, "time_embed.2.weight"), param(f, "time_embed.2.bias"), H, H, a, temb);
    ref_linear(param(f, "input.weight"), param(f, "input.bias"), H, m->D, x, h);
    for (int i = 0; i < H; i++)
        h[i] += temb[i];
    for (int l = 0; l < m->L; l++) {
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "blocks.%d.norm.weight", l);
        snprintf(n2, sizeof n2, "blocks.%d.norm.bias", l);
        ref_layer_norm(param(f, n1), param(f, n2), H, h, r1);
        for (int i = 0; i < H; i++)
            r1[i] = silu(r1[i]);
        snprintf(n1, sizeof n1, "blocks.%d.fc1.weight", l);
        snprintf(n2, sizeof n2, "blocks.%d.fc1.bias", l);
        ref_linear(param(f, n1), param(f, n2), H, H, r1, r2);
        for (int i = 0; i < H; i++)
            r2[i] = silu(r2[i]);
        snprintf(n1, sizeof n1, "blocks.%d.fc2.weight", l);
        snprintf(n2, sizeof n2, "blocks.%d.fc2.bias", l);
        ref_linear(param(f, n1), param(f, n2), H, H, r2, r1);
        for (int i = 0; i < H; i++)
            h[i] += r1[i];
    }
    ref_layer_norm(param(f, "out_norm.weight"), param(f, "out_norm.bias"), H, h, r1);
    for (int i = 0; i < H; i++)
        r1[i] = silu(r1[i]);
    ref_linear(param(f, "output.weight"), param(f, "output.bias"), m->K, H, r1, out);
}

/* ---- the reference losses ---- */

typedef enum { REF_CE, REF_SCALAR, REF_SQ } ref_kind;

typedef struct ref_loss {
    const mlp *m;
    ref_kind kind;
    double scale;
    int label;          /* REF_CE */
    const float *target; /* REF_SQ, [K] or NULL */
    double c_in, t;     /* x_in = c_in x */
} ref_loss;

static double ce_of(const double *f, int K, int y)
{
    double mx = f[0];
    for (int k = 1; k < K; k++)
        mx = f[k] > mx ? f[k] : mx;
    double s = 0.0;
    for (int k = 0; k < K; k++)
        s += exp(f[k] - mx);
    return mx + log(s) - f[y];
}

static double ref_value(const ref_loss *r, const double *x, double *max_abs_f)
{
    const mlp *m = r->m;
    double xin[64], f[64];
    for (int i = 0; i < m->D; i++)
        xin[i] = r->c_in * x[i];
    mlp_ref(m, xin, r->t, f);
    if (max_abs_f) {
        *max_abs_f = 0.0;
        for (int k = 0; k < m->K; k++)
            *max_abs_f = fabs(f[k]) > *max_abs_f ? fabs(f[k]) : *max_abs_f;
    }
    switch (r->kind) {
    case REF_CE: return r->scale * ce_of(f, m->K, r->label);
    case REF_SCALAR: return r->scale * f[0];
    default: {
        double s = 0.0;
        for (int k = 0; k < m->K; k++) {
            double d = f[k] - (r->target ? (double)r->target[k] : 0.0);
            s += d * d;
        }
        return 0.5 * r->scale * s;
    }
    }
}

/* central differences of ref_value at x[D] (float point, double arithmetic) */
static void ref_grad_fd(const ref_loss *r, const float *xf, double *g)
{
    const int D = r->m->D;
    double x[64];
    for (int i = 0; i < D; i++)
        x[i] = xf[i];
    for (int i = 0; i < D; i++) {
        double h = 1e-5 * (1.0 + fabs(x[i])), xi = x[i];
        x[i] = xi + h;
        double lp = ref_value(r, x, NULL);
        x[i] = xi - h;
        double lm = ref_value(r, x, NULL);
        x[i] = xi;
        g[i] = (lp - lm) / (2.0 * h);
    }
}

/* Checks loss[rows] and grad[rows][D] of an evaluation against the reference, row r
 * taking setup(r) (label / target). */
typedef void (*row_setup_fn)(ref_loss *r, size_t row, const void *user);

static void check_against_ref(const char *what, ref_loss *r, const float *x, size_t rows,
                              const float *loss, const float *grad, row_setup_fn setup,
                              const void *user)
{
    const int D = r->m->D;
    double worst_l = 0.0, worst_g = 0.0;
    size_t at_l = 0, at_g = 0;
    for (size_t row = 0; row < rows; row++) {
        if (setup)
            setup(r, row, user);
        double xd[64], mf;
        for (int i = 0; i < D; i++)
            xd[i] = x[row * D + i];
        double want = ref_value(r, xd, &mf);
        /* float network: errors relative to the logits' magnitude */
        double tol = 2e-5 * (1.0 + fabs(want) + fabs(r->scale) * mf);
        double e = fabs((double)loss[row] - want) / tol;
        if (!(e <= worst_l)) {
            worst_l = e;
            at_l = row;
        }
        if (grad) {
            double g[64], rms = 0.0;
            ref_grad_fd(r, x + row * D, g);
            for (int i = 0; i < D; i++)
                rms += g[i] * g[i];
            rms = sqrt(rms / D);
            for (int i = 0; i < D; i++) {
                double eg = fabs((double)grad[row * D + i] - g[i]) /
                            (1e-3 * (fabs(g[i]) + rms) + 1e-6);
                if (!(eg <= worst_g)) {
                    worst_g = eg;
                    at_g = row;
                }
            }
        }
    }
    ck_assert_msg(worst_l <= 1.0, "%s: loss of row %zu off by %.3g tolerances", what, at_l,
                  worst_l);
    ck_assert_msg(worst_g <= 1.0, "%s: gradient of row %zu off by %.3g tolerances", what, at_g,
                  worst_g);
}

typedef struct labels_of_rows {
    const int32_t *labels;
    size_t n; /* rows per sample */
    size_t label_rows;
} labels_of_rows;

static void setup_label(ref_loss *r, size_t row, const void *user)
{
    const labels_of_rows *u = user;
    r->label = u->labels[u->label_rows == 1 ? 0 : row / u->n];
}

typedef struct targets_of_rows {
    const float *targets;
    size_t n, K, target_rows;
} targets_of_rows;

static void setup_target(ref_loss *r, size_t row, const void *user)
{
    const targets_of_rows *u = user;
    r->target = u->targets ? u->targets + (u->target_rows == 1 ? 0 : row / u->n) * u->K : NULL;
}

static float *random_x(tu_rng *r, size_t n)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    tu_fill_normal(r, x, n, 1.0f);
    return x;
}

/* loss and grad of x [batch][n][D] (host), downloaded into new arrays */
static lgd_status eval_host(lgd_context *ctx, lgd_loss *loss, const float *x, int64_t batch,
                            int64_t n, int64_t D, float **out_l, float **out_g)
{
    int64_t shape[3] = { batch, n, D };
    lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, x);
    lgd_tensor *tl = tu_tensor(ctx, batch, n, NULL);
    lgd_tensor *tg = out_g ? tu_tensor_nd(ctx, 3, shape, NULL) : NULL;
    lgd_status st = lgd_loss_eval(loss, tx, tl, tg);
    if (st == LGD_OK) {
        *out_l = tu_download(tl);
        if (out_g)
            *out_g = tu_download(tg);
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
    return st;
}

static lgd_loss *make_loss(lgd_context *ctx, lgd_network *net, lgd_network_loss_kind kind,
                           float scale, int64_t max_rows)
{
    lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.kind = kind;
    o.scale = scale;
    o.max_rows = max_rows;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &l));
    return l;
}

/* ------------------------------------------------------------------ tests */

START_TEST(mlp_out_dim_loads)
{
    lgd_context *ctx = tu_context(1);
    mlp m;
    mlp_make(&m, 5, 8, 1, 4, 3, 0, 11, NULL);
    lgd_network *net = wfile_load(ctx, &m.f);
    ck_assert_int_eq(lgd_network_dim(net), 5);
    ck_assert_int_eq(lgd_network_out_dim(net), 3);
    /* the forward pass against the double reference, at two times */
    tu_rng r = { 5 };
    float *x = random_x(&r, 4 * 5);
    lgd_tensor *tx = tu_tensor(ctx, 4, 5, x), *to = tu_tensor(ctx, 4, 3, NULL);
    const float ts[2] = { 0.0f, 3.5f };
    for (int k = 0; k < 2; k++) {
        TU_OK(ctx, lgd_network_forward(net, tx, ts[k], NULL, to));
        float *o = tu_download(to);
        for (int b = 0; b < 4; b++) {
            double xd[5], want[3];
            for (int i = 0; i < 5; i++)
                xd[i] = x[b * 5 + i];
            mlp_ref(&m, xd, ts[k], want);
            for (int j = 0; j < 3; j++)
                ck_assert_msg(fabs(o[b * 3 + j] - want[j]) <= 1e-5 * (1.0 + fabs(want[j])),
                              "t %g row %d out %d: %.9g, want %.9g", (double)ts[k], b, j,
                              (double)o[b * 3 + j], want[j]);
        }
        free(o);
    }
    /* a model needs out_dim == dim */
    lgd_model *model = NULL;
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_model_create_from_network(ctx, net, NULL, &model));
    ck_assert_ptr_null(model);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_network_destroy(net);
    free(x);
    /* lgd.out_dim out of range */
    wfile bad = m.f;
    snprintf(bad.meta, sizeof bad.meta,
             "\"lgd.format\":\"1\",\"lgd.architecture\":\"mlp\",\"lgd.dim\":\"5\","
             "\"lgd.hidden\":\"8\",\"lgd.depth\":\"1\",\"lgd.time_embed_dim\":\"4\","
             "\"lgd.out_dim\":\"0\"");
    size_t size;
    unsigned char *b = wfile_bytes(&bad, &size);
    lgd_network *n2 = (lgd_network *)&size; /* not NULL: must be cleared */
    TU_FAILS(ctx, LGD_ERR_FORMAT, lgd_network_load_memory(ctx, b, size, &n2));
    ck_assert_ptr_null(n2);
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "lgd.out_dim"));
    free(b);
    wfile_free(&m.f);
    lgd_context_destroy(ctx);
}
END_TEST

/* Cross-entropy with per-row labels: batch 4 x n 3 rows, against the double reference
 * and finite differences; one label for all; a scale. */
START_TEST(cross_entropy_matches_reference)
{
    lgd_context *ctx = tu_context(0);
    mlp m;
    mlp_make(&m, 5, 8, 2, 4, 3, 0, 21, NULL);
    lgd_network *net = wfile_load(ctx, &m.f);
    const int64_t B = 4, N = 3, D = 5;
    tu_rng r = { 7 };
    float *x = random_x(&r, (size_t)(B * N * D));
    const int32_t labels[4] = { 2, 0, 1, 2 };
    const float scales[2] = { 1.0f, -0.75f };
    for (int s = 0; s < 2; s++) {
        lgd_loss *loss = make_loss(ctx, net, LGD_NETWORK_LOSS_CROSS_ENTROPY, scales[s], 256);
        ck_assert_int_eq(lgd_loss_dim(loss), D);
        for (int shared = 0; shared < 2; shared++) {
            int64_t rows = shared ? 1 : B;
            TU_OK(ctx, lgd_loss_network_set_labels(loss, shared ? labels + 1 : labels, rows));
            float *l = NULL, *g = NULL;
            TU_OK(ctx, eval_host(ctx, loss, x, B, N, D, &l, &g));
            ref_loss rl = { &m, REF_CE, scales[s], 0, NULL, 1.0, 0.0 };
            labels_of_rows u = { shared ? labels + 1 : labels, (size_t)N, (size_t)rows };
            check_against_ref("cross-entropy", &rl, x, (size_t)(B * N), l, g, setup_label, &u);
            /* values only: the same values */
            float *l2 = NULL;
            TU_OK(ctx, eval_host(ctx, loss, x, B, N, D, &l2, NULL));
            ck_assert_mem_eq(l, l2, (size_t)(B * N) * sizeof *l);
            free(l);
            free(l2);
            free(g);
        }
        lgd_loss_destroy(loss);
    }
    free(x);
    lgd_network_destroy(net);
    wfile_free(&m.f);
    lgd_context_destroy(ctx);
}
END_TEST

/* The clean input with another t; the scalar and squared-error reductions. */
START_TEST(scalar_and_squared_error_match_reference)
{
    lgd_context *ctx = tu_context(0);
    const int64_t B = 3, N = 2, D = 4, K = 3;
    tu_rng r = { 8 };
    float *x = random_x(&r, (size_t)(B * N * D));
    /* scalar: out_dim 1, t = 2.5 */
    mlp m1;
    mlp_make(&m1, (int)D, 8, 1, 6, 1, 0, 31, NULL);
    lgd_network *n1 = wfile_load(ctx, &m1.f);
    lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.kind = LGD_NETWORK_LOSS_SCALAR;
    o.scale = 1.5f;
    o.t = 2.5f;
    lgd_loss *ls = NULL;
    TU_OK(ctx, lgd_loss_create_network(ctx, n1, &o, &ls));
    lgd_network_destroy(n1); /* the loss keeps its own reference */
    float *l = NULL, *g = NULL;
    TU_OK(ctx, eval_host(ctx, ls, x, B, N, D, &l, &g));
    ref_loss rs = { &m1, REF_SCALAR, 1.5, 0, NULL, 1.0, 2.5 };
    check_against_ref("scalar", &rs, x, (size_t)(B * N), l, g, NULL, NULL);
    free(l);
    free(g);
    lgd_loss_destroy(ls);
    /* squared error: no target (the squared norm), one shared target, per-sample targets */
    mlp m3;
    mlp_make(&m3, (int)D, 8, 1, 4, (int)K, 0, 32, NULL);
    lgd_network *n3 = wfile_load(ctx, &m3.f);
    o.kind = LGD_NETWORK_LOSS_SQUARED_ERROR;
    o.scale = 0.8f;
    o.t = 0.0f;
    o.max_rows = 4;
    lgd_loss *lq = NULL;
    TU_OK(ctx, lgd_loss_create_network(ctx, n3, &o, &lq));
    float targets[3 * 3];
    tu_fill_normal(&r, targets, 9, 1.0f);
    for (int c = 0; c < 4; c++) {
        int64_t rows = c == 2 ? 1 : B;
        const float *tg = c == 0 || c == 3 ? NULL : targets;
        if (c == 3) /* set, then cleared: the squared norm again */
            TU_OK(ctx, lgd_loss_network_set_targets(lq, targets, B, K));
        TU_OK(ctx, lgd_loss_network_set_targets(lq, tg, rows, K));
        TU_OK(ctx, eval_host(ctx, lq, x, B, N, D, &l, &g));
        ref_loss rq = { &m3, REF_SQ, 0.8, 0, NULL, 1.0, 0.0 };
        targets_of_rows u = { tg, (size_t)N, (size_t)K, (size_t)rows };
        check_against_ref("squared error", &rq, x, (size_t)(B * N), l, g, setup_target, &u);
        free(l);
        free(g);
    }
    lgd_loss_destroy(lq);
    lgd_network_destroy(n3);
    wfile_free(&m1.f);
    wfile_free(&m3.f);
    free(x);
    lgd_context_destroy(ctx);
}
END_TEST

/* INPUT_NOISY: x_in = c_in(sigma) x and t(sigma) by the file's adapter (sigma), an EDM
 * adapter (log sigma) and a discrete one given in the options; eval_sigma and the
 * options' sigma. */
START_TEST(noisy_input_matches_reference)
{
    lgd_context *ctx = tu_context(0);
    const int64_t B = 2, N = 3, D = 5;
    mlp m;
    mlp_make(&m, (int)D, 8, 1, 4, 3, 0, 41, "\"lgd.time_input\":\"sigma\"");
    lgd_network *net = wfile_load(ctx, &m.f);
    tu_rng r = { 9 };
    float *x = random_x(&r, (size_t)(B * N * D));
    for (size_t i = 0; i < (size_t)(B * N * D); i++)
        x[i] *= 2.0f;
    const int32_t labels[2] = { 1, 2 };
    labels_of_rows u = { labels, (size_t)N, 2 };
    int64_t shape[3] = { B, N, D };
    lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, x), *tl = tu_tensor(ctx, B, N, NULL);
    lgd_tensor *tg = tu_tensor_nd(ctx, 3, shape, NULL);

    /* the file's adapter: eps prediction (c_in = 1/sqrt(1+s^2)), t = sigma */
    lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.input = LGD_NETWORK_INPUT_NOISY;
    o.sigma = 0.3f;
    o.max_rows = 4;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &loss));
    TU_OK(ctx, lgd_loss_network_set_labels(loss, labels, 2));
    const float sigmas[3] = { 0.3f, 1.7f, 12.0f };
    for (int k = 0; k < 3; k++) {
        if (k == 0)
            TU_OK(ctx, lgd_loss_eval(loss, tx, tl, tg)); /* options.sigma */
        else
            TU_OK(ctx, lgd_loss_network_eval_sigma(loss, tx, sigmas[k], tl, tg));
        float *l = tu_download(tl), *g = tu_download(tg);
        double s = sigmas[k];
        ref_loss rl = { &m, REF_CE, 1.0, 0, NULL, (double)(float)(1.0 / sqrt(1.0 + s * s)),
                        (double)sigmas[k] };
        check_against_ref("noisy, file adapter", &rl, x, (size_t)(B * N), l, g, setup_label, &u);
        free(l);
        free(g);
    }
    /* after eval_sigma, lgd_loss_eval is back at options.sigma */
    {
        TU_OK(ctx, lgd_loss_eval(loss, tx, tl, tg));
        float *l = tu_download(tl);
        ref_loss rl = { &m, REF_CE, 1.0, 0, NULL, (double)(float)(1.0 / sqrt(1.09)), 0.3 };
        check_against_ref("noisy, back at options.sigma", &rl, x, (size_t)(B * N), l, NULL,
                          setup_label, &u);
        free(l);
    }
    lgd_loss_destroy(loss);

    /* an EDM adapter from the options: c_in = 1/sqrt(s^2 + sd^2), t = ln(s)/4 */
    lgd_adapter_options ad = LGD_ADAPTER_OPTIONS_INIT;
    ad.prediction = LGD_PREDICT_EDM;
    ad.time_input = LGD_TIME_LOG_SIGMA;
    ad.sigma_data = 0.5f;
    o.adapter = &ad;
    o.scale = 2.0f;
    TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &loss));
    TU_OK(ctx, lgd_loss_network_set_labels(loss, labels, 2));
    TU_OK(ctx, lgd_loss_network_eval_sigma(loss, tx, 0.9f, tl, tg));
    {
        float *l = tu_download(tl), *g = tu_download(tg);
        ref_loss rl = { &m, REF_CE, 2.0, 0, NULL, (double)(float)(1.0 / sqrt(0.81 + 0.25)),
                        (double)(0.25f * logf(0.9f)) };
        check_against_ref("noisy, EDM adapter", &rl, x, (size_t)(B * N), l, g, setup_label, &u);
        free(l);
        free(g);
    }
    lgd_loss_destroy(loss);

    /* a discrete adapter: t as an adapted model maps sigma (lgd_model_network_time) */
    static const float alphas[] = { 0.999f, 0.99f, 0.95f, 0.8f, 0.5f, 0.2f, 0.05f };
    lgd_adapter_options dd = LGD_ADAPTER_OPTIONS_INIT;
    dd.alphas_cumprod = alphas;
    dd.num_timesteps = 7;
    o.adapter = &dd;
    o.scale = 1.0f;
    o.sigma = 0.6f;
    TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &loss));
    TU_OK(ctx, lgd_loss_network_set_labels(loss, labels, 2));
    TU_OK(ctx, lgd_loss_eval(loss, tx, tl, tg));
    {
        lgd_network *n2 = NULL;
        mlp dm; /* a denoiser-shaped network, only for the time rule */
        mlp_make(&dm, 3, 4, 0, 2, 3, 0, 1, NULL);
        n2 = wfile_load(ctx, &dm.f);
        lgd_model *tm = NULL;
        TU_OK(ctx, lgd_model_create_from_network(ctx, n2, &dd, &tm));
        float t = -1.0f;
        TU_OK(ctx, lgd_model_network_time(tm, 0.6f, &t));
        ck_assert(t > 1.0f && t < 4.0f); /* a fractional step between the schedule's */
        float *l = tu_download(tl), *g = tu_download(tg);
        ref_loss rl = { &m, REF_CE, 1.0, 0, NULL, (double)(float)(1.0 / sqrt(1.36)), (double)t };
        check_against_ref("noisy, discrete adapter", &rl, x, (size_t)(B * N), l, g, setup_label,
                          &u);
        free(l);
        free(g);
        lgd_model_destroy(tm);
        lgd_network_destroy(n2);
        wfile_free(&dm.f);
    }
    lgd_loss_destroy(loss);

    /* the file without an adapter: the default (discrete) needs alphas_cumprod */
    {
        mlp bare;
        mlp_make(&bare, (int)D, 8, 1, 4, 3, 0, 41, NULL);
        lgd_network *nb = wfile_load(ctx, &bare.f);
        o.adapter = NULL;
        loss = (lgd_loss *)&o;
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_network(ctx, nb, &o, &loss));
        ck_assert_ptr_null(loss);
        ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "alphas_cumprod"));
        /* a clean loss of the same network takes t as it is */
        o.input = LGD_NETWORK_INPUT_CLEAN;
        TU_OK(ctx, lgd_loss_create_network(ctx, nb, &o, &loss));
        lgd_loss_destroy(loss);
        lgd_network_destroy(nb);
        wfile_free(&bare.f);
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
    lgd_network_destroy(net);
    wfile_free(&m.f);
    free(x);
    lgd_context_destroy(ctx);
}
END_TEST

/* max_rows splits the rows into pieces (whole samples, or ranges of one sample's draws):
 * every split gives one call's values to the GEMMs' rounding, and a repeated evaluation the
 * same bytes. */
START_TEST(chunking_gives_the_same_bits)
{
    lgd_context *ctx = tu_context(1);
    mlp m;
    mlp_make(&m, 6, 16, 2, 8, 4, 0, 51, "\"lgd.time_input\":\"sigma\"");
    lgd_network *net = wfile_load(ctx, &m.f);
    const int64_t B = 5, N = 7, D = 6;
    tu_rng r = { 10 };
    float *x = random_x(&r, (size_t)(B * N * D));
    const int32_t labels[5] = { 3, 0, 1, 2, 3 };
    float targets[5 * 4];
    tu_fill_normal(&r, targets, 20, 1.0f);
    const int64_t max_rows[] = { 1, 2, 3, 6, 7, 8, 13, 14, 34, 35, 36, 100000 };
    for (int kind = 0; kind < 2; kind++)
        for (int input = 0; input < 2; input++) {
            float *l0 = NULL, *g0 = NULL;
            for (size_t k = 0; k < sizeof max_rows / sizeof max_rows[0]; k++) {
                lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;
                o.kind = kind ? LGD_NETWORK_LOSS_SQUARED_ERROR : LGD_NETWORK_LOSS_CROSS_ENTROPY;
                o.input = input ? LGD_NETWORK_INPUT_NOISY : LGD_NETWORK_INPUT_CLEAN;
                o.sigma = 0.4f;
                o.t = 1.0f;
                o.max_rows = max_rows[k];
                lgd_loss *loss = NULL;
                TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &loss));
                if (kind)
                    TU_OK(ctx, lgd_loss_network_set_targets(loss, targets, B, 4));
                else
                    TU_OK(ctx, lgd_loss_network_set_labels(loss, labels, B));
                float *l = NULL, *g = NULL;
                TU_OK(ctx, eval_host(ctx, loss, x, B, N, D, &l, &g));
                if (k == 0) {
                    l0 = l;
                    g0 = g;
                    /* and it is right */
                    ref_loss rl = { &m, kind ? REF_SQ : REF_CE, 1.0, 0, NULL,
                                    input ? (double)(float)(1.0 / sqrt(1.16)) : 1.0,
                                    input ? (double)0.4f : 1.0 };
                    labels_of_rows ul = { labels, (size_t)N, (size_t)B };
                    targets_of_rows ut = { targets, (size_t)N, 4, (size_t)B };
                    check_against_ref("chunking reference", &rl, x, (size_t)(B * N), l, g,
                                      kind ? setup_target : setup_label,
                                      kind ? (const void *)&ut : (const void *)&ul);
                } else {
                    /* the network's GEMMs round a row by the row count of the call (OpenBLAS
                     * does even on one thread), so splits agree to rounding, not bitwise */
                    double el = 0.0, eg = 0.0, rms = 0.0;
                    for (int64_t i = 0; i < B * N * D; i++)
                        rms += (double)g0[i] * g0[i];
                    rms = sqrt(rms / (double)(B * N * D));
                    for (int64_t i = 0; i < B * N; i++)
                        el = fmax(el, fabs(l[i] - l0[i]) / (fabs(l0[i]) + 1e-3));
                    for (int64_t i = 0; i < B * N * D; i++)
                        eg = fmax(eg, fabs(g[i] - g0[i]) / (fabs(g0[i]) + rms));
                    ck_assert_msg(el <= 1e-5 && eg <= 1e-5,
                                  "kind %d input %d max_rows %lld: loss %.3g, gradient %.3g off",
                                  kind, input, (long long)max_rows[k], el, eg);
                    /* the same options and shapes: the same bytes */
                    float *l2 = NULL, *g2 = NULL;
                    TU_OK(ctx, eval_host(ctx, loss, x, B, N, D, &l2, &g2));
                    ck_assert_mem_eq(l, l2, (size_t)(B * N) * sizeof *l);
                    ck_assert_mem_eq(g, g2, (size_t)(B * N * D) * sizeof *g);
                    free(l);
                    free(g);
                    free(l2);
                    free(g2);
                }
                lgd_loss_destroy(loss);
            }
            free(l0);
            free(g0);
        }
    free(x);
    lgd_network_destroy(net);
    wfile_free(&m.f);
    lgd_context_destroy(ctx);
}
END_TEST

/* The backend memory of an evaluation does not grow with n past max_rows rows. */
START_TEST(memory_is_bounded_by_max_rows)
{
    lgd_context *ctx = tu_context(1);
    mlp m;
    mlp_make(&m, 8, 32, 2, 8, 10, 0, 61, NULL);
    lgd_network *net = wfile_load(ctx, &m.f);
    lgd_loss *loss = make_loss(ctx, net, LGD_NETWORK_LOSS_CROSS_ENTROPY, 1.0f, 16);
    const int32_t label = 7;
    TU_OK(ctx, lgd_loss_network_set_labels(loss, &label, 1));
    const int64_t ns[] = { 16, 64, 1024, 4096 };
    size_t current_after_first = 0;
    for (int k = 0; k < 4; k++) {
        int64_t shape[3] = { 2, ns[k], 8 };
        lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, NULL), *tl = tu_tensor(ctx, 2, ns[k], NULL);
        lgd_tensor *tg = tu_tensor_nd(ctx, 3, shape, NULL);
        size_t cur0 = 0, peak0 = 0, cur1 = 0, peak1 = 0;
        lgd_context_reset_peak_memory(ctx);
        lgd_context_memory_usage(ctx, &cur0, &peak0);
        TU_OK(ctx, lgd_loss_eval(loss, tx, tl, tg));
        lgd_context_memory_usage(ctx, &cur1, &peak1);
        if (k == 0) {
            ck_assert_uint_gt(cur1, cur0); /* the first call sizes the scratch */
            current_after_first = cur1 - cur0;
        } else {
            ck_assert_msg(cur1 == cur0 && peak1 == cur0,
                          "n = %lld: the evaluation allocated %llu bytes (peak %llu) beyond "
                          "what n = 16 sized", (long long)ns[k],
                          (unsigned long long)(cur1 - cur0), (unsigned long long)(peak1 - cur0));
        }
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(tl);
        lgd_tensor_destroy(tg);
    }
    ck_assert_uint_gt(current_after_first, 0);
    lgd_loss_destroy(loss);
    lgd_network_destroy(net);
    wfile_free(&m.f);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- LGD-MC guidance with the network loss, against a host callback loss ---- */

typedef struct linear_classifier {
    const float *W, *b; /* [K][D], [K] */
    int D, K;
    const int32_t *labels; /* [batch] */
} linear_classifier;

static int32_t linear_ce_loss(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                              float *loss, float *grad)
{
    const linear_classifier *c = user;
    (void)dim;
    for (int64_t row = 0; row < batch * n; row++) {
        const float *xr = x + row * c->D;
        int y = c->labels[row / n];
        double f[16], mx = -1e300, s = 0.0;
        for (int k = 0; k < c->K; k++) {
            double acc = c->b[k];
            for (int i = 0; i < c->D; i++)
                acc += (double)c->W[k * c->D + i] * xr[i];
            f[k] = acc;
            mx = acc > mx ? acc : mx;
        }
        for (int k = 0; k < c->K; k++)
            s += exp(f[k] - mx);
        loss[row] = (float)(mx + log(s) - f[y]);
        if (grad)
            for (int i = 0; i < c->D; i++) {
                double gi = 0.0;
                for (int k = 0; k < c->K; k++)
                    gi += c->W[k * c->D + i] * (exp(f[k] - mx) / s - (k == y ? 1.0 : 0.0));
                grad[row * c->D + i] = (float)gi;
            }
    }
    return 0;
}

static void linear_file(wfile *f, int D, int K, uint64_t seed, double wscale)
{
    memset(f, 0, sizeof *f);
    tu_rng r = { seed };
    meta_add(f, "\"lgd.format\":\"1\",\"lgd.architecture\":\"layer\",\"lgd.layer\":\"linear\"");
    meta_add(f, "\"lgd.input_shape\":\"%d\",\"lgd.out_features\":\"%d\"", D, K);
    add_param(f, "weight", K, D, &r, wscale, 0.0);
    add_param(f, "bias", K, 0, &r, 0.5, 0.0);
}

static float *guidance_g(lgd_context *ctx, lgd_model *model, lgd_loss *loss, int32_t n,
                         int32_t chunk, const float *x, int64_t B, int64_t D, float sigma)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = n == 0 ? LGD_GUIDANCE_DPS : LGD_GUIDANCE_MC;
    go.n_samples = n ? n : 1;
    go.chunk_size = chunk;
    go.seed = 99;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, model, loss, &go, &g));
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tg = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_guidance_term(g, tx, sigma, 3, 0, tg, NULL, NULL));
    float *out = tu_download(tg);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_guidance_destroy(g);
    return out;
}

START_TEST(lgd_mc_guidance_matches_callback_loss)
{
    lgd_context *ctx = tu_context(1);
    const int D = 4, K = 3;
    const int64_t B = 3;
    wfile f;
    linear_file(&f, D, K, 71, 1.5);
    lgd_network *net = wfile_load(ctx, &f);
    /* the prior N(0, I): D(x) = x / (1 + sigma^2) */
    const float w1 = 1.0f, mean0[4] = { 0 }, var1 = 1.0f;
    lgd_model *model = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, D, 1, &w1, mean0, &var1, LGD_COVARIANCE_ISOTROPIC,
                                    &model));
    const int32_t labels[3] = { 2, 0, 1 };
    lgd_loss *small = make_loss(ctx, net, LGD_NETWORK_LOSS_CROSS_ENTROPY, 1.0f, 2);
    lgd_loss *big = make_loss(ctx, net, LGD_NETWORK_LOSS_CROSS_ENTROPY, 1.0f, 100000);
    TU_OK(ctx, lgd_loss_network_set_labels(small, labels, B));
    TU_OK(ctx, lgd_loss_network_set_labels(big, labels, B));
    linear_classifier lc = { param(&f, "weight"), param(&f, "bias"), D, K, labels };
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = D;
    cb.eval = linear_ce_loss;
    cb.user = &lc;
    lgd_loss *ref = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &ref));
    tu_rng r = { 12 };
    float x[3 * 4];
    tu_fill_normal(&r, x, 12, 1.5f);
    double worst = 0.0;
    int worst_n = -1;
    for (int32_t n = 0; n <= 64; n++) { /* n = 0: DPS */
        const float sigma = 0.8f;
        float *gs = guidance_g(ctx, model, small, n, 3, x, B, D, sigma);
        float *gb = guidance_g(ctx, model, big, n, 3, x, B, D, sigma);
        float *gr = guidance_g(ctx, model, ref, n, 3, x, B, D, sigma);
        /* another chunk size: the same draws, a different split */
        float *gc = guidance_g(ctx, model, small, n, 7, x, B, D, sigma);
        double scale = 0.0;
        for (int i = 0; i < 12; i++)
            scale = fabs(gr[i]) > scale ? fabs(gr[i]) : scale;
        /* pieces of 2 rows and one call: the same to the GEMMs' rounding */
        ck_assert_msg(tu_max_scaled_err(gs, gb, 12, 1e-6 * scale, 1e-6) <= 1.0,
                      "n = %d: max_rows 2 and one call differ", (int)n);
        double e = tu_max_scaled_err(gs, gr, 12, 2e-5 * scale + 1e-7, 1e-4);
        double ec = tu_max_scaled_err(gc, gr, 12, 2e-5 * scale + 1e-7, 1e-4);
        if (ec > e)
            e = ec;
        if (e > worst) {
            worst = e;
            worst_n = n;
        }
        ck_assert(scale > 1e-3); /* the term is not trivially zero */
        free(gs);
        free(gb);
        free(gr);
        free(gc);
    }
    ck_assert_msg(worst <= 1.0, "the guidance term differs from the callback loss's: %.3g "
                  "tolerances at n = %d", worst, worst_n);
    lgd_loss_destroy(small);
    lgd_loss_destroy(big);
    lgd_loss_destroy(ref);
    lgd_model_destroy(model);
    lgd_network_destroy(net);
    wfile_free(&f);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- classifier guidance ---- */

START_TEST(classifier_guided_model_is_d_minus_sigma2_grad)
{
    lgd_context *ctx = tu_context(0);
    const int64_t B = 3, D = 5;
    mlp m;
    mlp_make(&m, (int)D, 8, 1, 4, 3, 0, 81, "\"lgd.time_input\":\"log_sigma\"");
    lgd_network *net = wfile_load(ctx, &m.f);
    lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.input = LGD_NETWORK_INPUT_NOISY;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &loss));
    const int32_t labels[3] = { 0, 2, 1 };
    TU_OK(ctx, lgd_loss_network_set_labels(loss, labels, B));
    float w[2] = { 0.3f, 0.7f }, means[2 * 5], vars[2] = { 0.5f, 1.2f };
    tu_rng r = { 13 };
    tu_fill_normal(&r, means, 10, 1.0f);
    lgd_model *base = NULL, *cg = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, D, 2, w, means, vars, LGD_COVARIANCE_ISOTROPIC, &base));
    TU_OK(ctx, lgd_model_create_classifier_guided(ctx, base, loss, 1.7f, &cg));
    ck_assert_int_eq(lgd_model_dim(cg), D);
    ck_assert_int_eq(lgd_model_cond_dim(cg), 0);
    float x[3 * 5];
    tu_fill_normal(&r, x, 15, 2.0f);
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *td = tu_tensor(ctx, B, D, NULL);
    lgd_tensor *tc = tu_tensor(ctx, B, D, NULL), *tl = tu_tensor(ctx, B, 1, NULL);
    lgd_tensor *tg = tu_tensor(ctx, B, D, NULL);
    const float sigmas[3] = { 0.05f, 1.0f, 9.0f };
    for (int k = 0; k < 3; k++) {
        float s = sigmas[k];
        TU_OK(ctx, lgd_model_denoise(cg, tx, s, NULL, tc));
        TU_OK(ctx, lgd_model_denoise(base, tx, s, NULL, td));
        TU_OK(ctx, lgd_loss_network_eval_sigma(loss, tx, s, tl, tg));
        float *c = tu_download(tc), *d = tu_download(td), *g = tu_download(tg);
        float want[15];
        double lam = -1.7 * (double)s * (double)s, mx = 0.0;
        for (int i = 0; i < 15; i++) {
            want[i] = (float)(d[i] + lam * g[i]);
            mx = fabs(lam * g[i]) > mx ? fabs(lam * g[i]) : mx;
        }
        ck_assert(mx > 1e-4); /* the classifier moves D */
        double e = tu_max_scaled_err(c, want, 15, 1e-6 * (1.0 + mx), 1e-6);
        ck_assert_msg(e <= 1.0, "sigma %g: D_cg is off by %.3g tolerances", (double)s, e);
        /* the loss's gradient there is the reference's (noisy input, t = ln(s)/4) */
        float *l = tu_download(tl);
        ref_loss rl = { &m, REF_CE, 1.0, 0, NULL,
                        (double)(float)(1.0 / sqrt(1.0 + (double)s * s)),
                        (double)(0.25f * logf(s)) };
        labels_of_rows u = { labels, 1, 3 };
        check_against_ref("CG loss", &rl, x, 3, l, g, setup_label, &u);
        free(l);
        free(c);
        free(d);
        free(g);
    }
    /* no VJP */
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_model_vjp(cg, tx, 1.0f, NULL, tx, tc));
    /* with DPS guidance the VJP is needed */
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_DPS;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, cg, loss, &go, &g));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_guidance_term(g, tx, 1.0f, 0, 0, tg, NULL, NULL));
    lgd_guidance_destroy(g);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(td);
    lgd_tensor_destroy(tc);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
    lgd_model_destroy(cg);
    lgd_model_destroy(base);
    lgd_loss_destroy(loss);
    lgd_network_destroy(net);
    wfile_free(&m.f);
    lgd_context_destroy(ctx);
}
END_TEST

/* fraction of rows with x[0] > 0 after sampling `model` unguided (LGD_GUIDANCE_NONE) */
static double positive_fraction(lgd_context *ctx, lgd_model *model, int64_t B)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_NONE;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, model, NULL, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_HEUN;
    so.steps = 25;
    so.sigma_max = 20.0f;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &so, &s));
    lgd_tensor *x = tu_tensor(ctx, B, 2, NULL);
    TU_OK(ctx, lgd_sampler_run(s, x, 5, 0, NULL, NULL));
    float *h = tu_download(x);
    int pos = 0;
    for (int64_t b = 0; b < B; b++)
        pos += h[b * 2] > 0.0f;
    free(h);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    return (double)pos / (double)B;
}

/* End to end: a mixture of two Gaussians at x0 = +-3, a linear classifier whose class 0
 * is x0 > 0; CG towards class 0 moves the samples there, towards class 1 away. */
START_TEST(classifier_guidance_samples_the_class)
{
    lgd_context *ctx = tu_context(0);
    const int64_t B = 400;
    const float w[2] = { 0.5f, 0.5f }, means[4] = { 3.0f, 0.0f, -3.0f, 0.0f };
    const float vars[2] = { 0.25f, 0.25f };
    lgd_model *base = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 2, 2, w, means, vars, LGD_COVARIANCE_ISOTROPIC, &base));
    wfile f;
    memset(&f, 0, sizeof f);
    meta_add(&f, "\"lgd.format\":\"1\",\"lgd.architecture\":\"layer\",\"lgd.layer\":\"linear\"");
    meta_add(&f, "\"lgd.input_shape\":\"2\",\"lgd.out_features\":\"2\"");
    tu_rng r = { 1 };
    float *W = add_param(&f, "weight", 2, 2, &r, 0.0, 0.0), *bias = add_param(&f, "bias", 2, 0, &r, 0.0, 0.0);
    W[0] = 1.0f;  /* logit 0 = x0 */
    W[2] = -1.0f; /* logit 1 = -x0 */
    (void)bias;
    lgd_network *net = wfile_load(ctx, &f);
    lgd_loss *loss = make_loss(ctx, net, LGD_NETWORK_LOSS_CROSS_ENTROPY, 1.0f, 64);
    lgd_model *cg = NULL;
    TU_OK(ctx, lgd_model_create_classifier_guided(ctx, base, loss, 1.0f, &cg));
    double baseline = positive_fraction(ctx, base, B);
    int32_t label = 0;
    TU_OK(ctx, lgd_loss_network_set_labels(loss, &label, 1));
    double to0 = positive_fraction(ctx, cg, B);
    label = 1;
    TU_OK(ctx, lgd_loss_network_set_labels(loss, &label, 1));
    double to1 = positive_fraction(ctx, cg, B);
    printf("classifier guidance: x0 > 0 in %.3f of the samples unguided, %.3f guided to class "
           "0, %.3f guided to class 1\n", baseline, to0, to1);
    ck_assert_msg(baseline > 0.35 && baseline < 0.65, "baseline: %.3f with x0 > 0", baseline);
    ck_assert_msg(to0 > 0.95, "CG to class 0: only %.3f with x0 > 0", to0);
    ck_assert_msg(to1 < 0.05, "CG to class 1: still %.3f with x0 > 0", to1);
    lgd_model_destroy(cg);
    lgd_model_destroy(base);
    lgd_loss_destroy(loss);
    lgd_network_destroy(net);
    wfile_free(&f);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(bad_arguments)
{
    lgd_context *ctx = tu_context(1), *other = tu_context(1);
    mlp m;
    mlp_make(&m, 5, 8, 1, 4, 3, 0, 91, NULL);
    lgd_network *net = wfile_load(ctx, &m.f), *net_other = wfile_load(other, &m.f);
    mlp mc;
    mlp_make(&mc, 5, 8, 1, 4, 3, 2, 92, NULL);
    lgd_network *net_cond = wfile_load(ctx, &mc.f);
    mlp m1;
    mlp_make(&m1, 5, 8, 1, 4, 1, 0, 93, NULL);
    lgd_network *net1 = wfile_load(ctx, &m1.f);
    lgd_loss *l = NULL;
    lgd_loss *const sentinel = (lgd_loss *)&m;
    lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;

    /* options_init */
    ck_assert_int_eq(lgd_network_loss_options_init(NULL, sizeof o), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_network_loss_options_init(&o, 4), LGD_ERR_INVALID_ARGUMENT);
    memset(&o, 0x5a, sizeof o);
    ck_assert_int_eq(lgd_network_loss_options_init(&o, sizeof o), LGD_OK);
    {
        lgd_network_loss_options d = LGD_NETWORK_LOSS_OPTIONS_INIT;
        ck_assert_mem_eq(&o, &d, offsetof(lgd_network_loss_options, adapter));
        ck_assert_ptr_null(o.adapter);
        ck_assert_int_eq(o.max_rows, 256);
        ck_assert_int_eq(o.kind, LGD_NETWORK_LOSS_CROSS_ENTROPY);
        ck_assert_int_eq(o.input, LGD_NETWORK_INPUT_CLEAN);
    }

    /* creation */
    ck_assert_int_eq(lgd_loss_create_network(NULL, net, NULL, &l), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_network(ctx, net, NULL, NULL));
#define EXPECT_CREATE(status, netw, opts, needle)                                            \
    do {                                                                                     \
        l = sentinel;                                                                        \
        TU_FAILS(ctx, status, lgd_loss_create_network(ctx, netw, opts, &l));                 \
        ck_assert_ptr_null(l);                                                               \
        ck_assert_msg(strstr(lgd_context_last_error(ctx), needle) != NULL,                   \
                      "message \"%s\" does not mention \"%s\"", lgd_context_last_error(ctx), \
                      needle);                                                               \
    } while (0)
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, NULL, NULL, "network is NULL");
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net_other, NULL, "another context");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.struct_size = 8;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "struct_size");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.kind = (lgd_network_loss_kind)7;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "kind");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.input = (lgd_network_input)-1;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "input");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.scale = NAN;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "scale");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.t = INFINITY;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "options->t");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.input = LGD_NETWORK_INPUT_NOISY;
    o.sigma = 0.0f;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "sigma");
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.max_rows = 0;
    EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "max_rows");
    {
        lgd_adapter_options bad = LGD_ADAPTER_OPTIONS_INIT; /* discrete, no schedule */
        o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
        o.input = LGD_NETWORK_INPUT_NOISY;
        o.adapter = &bad;
        EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "alphas_cumprod");
        bad.time_input = LGD_TIME_SIGMA;
        bad.prediction = LGD_PREDICT_EDM;
        bad.sigma_data = -1.0f;
        EXPECT_CREATE(LGD_ERR_INVALID_ARGUMENT, net, &o, "sigma_data");
    }
    /* output dims that do not fit the kind */
    o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
    o.kind = LGD_NETWORK_LOSS_SCALAR;
    EXPECT_CREATE(LGD_ERR_SHAPE_MISMATCH, net, &o, "out_dim 1");
    o.kind = LGD_NETWORK_LOSS_CROSS_ENTROPY;
    EXPECT_CREATE(LGD_ERR_SHAPE_MISMATCH, net1, &o, "out_dim >= 2");
    EXPECT_CREATE(LGD_ERR_UNSUPPORTED, net_cond, NULL, "conditional");

    /* labels */
    lgd_loss *ce = make_loss(ctx, net, LGD_NETWORK_LOSS_CROSS_ENTROPY, 1.0f, 4);
    lgd_loss *sc = make_loss(ctx, net1, LGD_NETWORK_LOSS_SCALAR, 1.0f, 4);
    lgd_loss *sq = make_loss(ctx, net, LGD_NETWORK_LOSS_SQUARED_ERROR, 1.0f, 4);
    const float tgt[5] = { 0 };
    lgd_loss *builtin = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 5, tgt, 1, NULL, &builtin));
    int32_t labels[3] = { 0, 1, 2 };
    ck_assert_int_eq(lgd_loss_network_set_labels(NULL, labels, 3), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_set_labels(ce, NULL, 3));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_set_labels(ce, labels, 0));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_loss_network_set_labels(sc, labels, 3));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_loss_network_set_labels(sq, labels, 3));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_loss_network_set_labels(builtin, labels, 3));
    /* evaluation before labels */
    tu_rng r = { 14 };
    float x[3 * 2 * 5];
    tu_fill_normal(&r, x, 30, 1.0f);
    float *lv = NULL, *gv = NULL;
    TU_FAILS(ctx, LGD_ERR_STATE, eval_host(ctx, ce, x, 3, 2, 5, &lv, &gv));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "lgd_loss_network_set_labels"));
    TU_OK(ctx, lgd_loss_network_set_labels(ce, labels, 3));
    float *l_ok = NULL;
    TU_OK(ctx, eval_host(ctx, ce, x, 3, 2, 5, &l_ok, NULL));
    /* out of range: refused, naming the index; the labels before stay */
    int32_t bad_labels[3] = { 0, 3, 1 };
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_set_labels(ce, bad_labels, 3));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "labels[1] = 3"));
    bad_labels[1] = -1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_set_labels(ce, bad_labels, 3));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "labels[1] = -1"));
    TU_OK(ctx, eval_host(ctx, ce, x, 3, 2, 5, &lv, NULL));
    ck_assert_mem_eq(lv, l_ok, 6 * sizeof *lv);
    free(lv);
    free(l_ok);
    /* label rows that are not the batch */
    TU_OK(ctx, lgd_loss_network_set_labels(ce, labels, 2));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, eval_host(ctx, ce, x, 3, 2, 5, &lv, &gv));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "2 label rows"));
    TU_OK(ctx, lgd_loss_network_set_labels(ce, labels, 1));

    /* targets */
    float targets[3 * 3] = { 0 };
    ck_assert_int_eq(lgd_loss_network_set_targets(NULL, targets, 3, 3), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_network_set_targets(sq, targets, 3, 4));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_set_targets(sq, targets, 0, 3));
    targets[4] = NAN;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_set_targets(sq, targets, 3, 3));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "targets[4]"));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_loss_network_set_targets(ce, NULL, 0, 0));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_loss_network_set_targets(builtin, NULL, 0, 0));

    /* wrong input dim: evaluation and guidance */
    {
        lgd_tensor *tx = tu_tensor(ctx, 2, 6, NULL), *tl = tu_tensor(ctx, 2, 1, NULL);
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(ce, tx, tl, NULL));
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(tl);
        const float w1 = 1.0f, mu[6] = { 0 }, var1 = 1.0f;
        lgd_model *m6 = NULL;
        lgd_guidance *g = (lgd_guidance *)&m;
        TU_OK(ctx, lgd_model_create_gmm(ctx, 6, 1, &w1, mu, &var1, LGD_COVARIANCE_ISOTROPIC, &m6));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_mc(ctx, m6, ce, 4, &g));
        ck_assert_ptr_null(g);
        lgd_model *cgm = (lgd_model *)&m;
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH,
                 lgd_model_create_classifier_guided(ctx, m6, ce, 1.0f, &cgm));
        ck_assert_ptr_null(cgm);
        lgd_model_destroy(m6);
    }

    /* eval_sigma */
    {
        lgd_tensor *tx = tu_tensor(ctx, 2, 5, NULL), *tl = tu_tensor(ctx, 2, 1, NULL);
        ck_assert_int_eq(lgd_loss_network_eval_sigma(NULL, tx, 1.0f, tl, NULL),
                         LGD_ERR_INVALID_ARGUMENT);
        TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_loss_network_eval_sigma(ce, tx, 1.0f, tl, NULL));
        ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "LGD_NETWORK_INPUT_NOISY"));
        TU_FAILS(ctx, LGD_ERR_UNSUPPORTED,
                 lgd_loss_network_eval_sigma(builtin, tx, 1.0f, tl, NULL));
        lgd_adapter_options ad = LGD_ADAPTER_OPTIONS_INIT;
        ad.time_input = LGD_TIME_SIGMA;
        o = (lgd_network_loss_options)LGD_NETWORK_LOSS_OPTIONS_INIT;
        o.input = LGD_NETWORK_INPUT_NOISY;
        o.adapter = &ad;
        lgd_loss *noisy = NULL;
        TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &noisy));
        TU_OK(ctx, lgd_loss_network_set_labels(noisy, labels, 1));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_loss_network_eval_sigma(noisy, tx, 0.0f, tl, NULL));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_loss_network_eval_sigma(noisy, tx, NAN, tl, NULL));
        TU_OK(ctx, lgd_loss_network_eval_sigma(noisy, tx, 2.0f, tl, NULL));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_network_eval_sigma(noisy, tx, 2.0f, tl, tx));
        lgd_loss_destroy(noisy);
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(tl);
    }

    /* the classifier-guided model */
    {
        const float w1 = 1.0f, mu[5] = { 0 }, var1 = 1.0f;
        lgd_model *m5 = NULL, *m5o = NULL, *cgm = NULL;
        TU_OK(ctx, lgd_model_create_gmm(ctx, 5, 1, &w1, mu, &var1, LGD_COVARIANCE_ISOTROPIC, &m5));
        TU_OK(other, lgd_model_create_gmm(other, 5, 1, &w1, mu, &var1, LGD_COVARIANCE_ISOTROPIC,
                                          &m5o));
        ck_assert_int_eq(lgd_model_create_classifier_guided(NULL, m5, ce, 1.0f, &cgm),
                         LGD_ERR_INVALID_ARGUMENT);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_model_create_classifier_guided(ctx, m5, ce, 1.0f, NULL));
#define EXPECT_CG(status, mm, ll, s, needle)                                                  \
    do {                                                                                      \
        cgm = (lgd_model *)&m;                                                                \
        TU_FAILS(ctx, status, lgd_model_create_classifier_guided(ctx, mm, ll, s, &cgm));      \
        ck_assert_ptr_null(cgm);                                                              \
        ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), needle));                   \
    } while (0)
        EXPECT_CG(LGD_ERR_INVALID_ARGUMENT, NULL, ce, 1.0f, "model is NULL");
        EXPECT_CG(LGD_ERR_INVALID_ARGUMENT, m5, NULL, 1.0f, "loss is NULL");
        EXPECT_CG(LGD_ERR_INVALID_ARGUMENT, m5o, ce, 1.0f, "another context");
        EXPECT_CG(LGD_ERR_INVALID_ARGUMENT, m5, ce, INFINITY, "scale");
        /* a call whose loss fails reports the loss's status */
        TU_OK(ctx, lgd_model_create_classifier_guided(ctx, m5, ce, 1.0f, &cgm));
        TU_OK(ctx, lgd_loss_network_set_labels(ce, labels, 3));
        lgd_tensor *tx = tu_tensor(ctx, 2, 5, NULL), *to = tu_tensor(ctx, 2, 5, NULL);
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_model_denoise(cgm, tx, 1.0f, NULL, to));
        TU_OK(ctx, lgd_loss_network_set_labels(ce, labels, 2));
        TU_OK(ctx, lgd_model_denoise(cgm, tx, 1.0f, NULL, to));
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(to);
        lgd_model_destroy(cgm);
        lgd_model_destroy(m5);
        lgd_model_destroy(m5o);
    }

    lgd_loss_destroy(ce);
    lgd_loss_destroy(sc);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(builtin);
    lgd_network_destroy(net);
    lgd_network_destroy(net_other);
    lgd_network_destroy(net_cond);
    lgd_network_destroy(net1);
    wfile_free(&m.f);
    wfile_free(&mc.f);
    wfile_free(&m1.f);
    lgd_context_destroy(ctx);
    lgd_context_destroy(other);
}
END_TEST

static Suite *network_loss_suite(void)
{
    Suite *s = suite_create("network_loss");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, mlp_out_dim_loads);
    tcase_add_test(tc, cross_entropy_matches_reference);
    tcase_add_test(tc, scalar_and_squared_error_match_reference);
    tcase_add_test(tc, noisy_input_matches_reference);
    tcase_add_test(tc, chunking_gives_the_same_bits);
    tcase_add_test(tc, memory_is_bounded_by_max_rows);
    tcase_add_test(tc, lgd_mc_guidance_matches_callback_loss);
    tcase_add_test(tc, classifier_guided_model_is_d_minus_sigma2_grad);
    tcase_add_test(tc, classifier_guidance_samples_the_class);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(network_loss_suite()); }
