/*
 * test_nn_fused.c - the 'nn_fused' suite: the fused network layers of the graph executor
 * (src/nn/nn_graph.c, issue 16) and their CPU kernels.
 *
 * - group_norm_act (+ the per-channel addend) against add_channel_bias, group_norm and
 *   activation run one after the other: bit-identical outputs and saved statistics; its
 *   backward against activation_backward then group_norm_backward: bit-identical, with
 *   beta 0 (NaN garbage in dx ignored) and 1; SiLU and GELU, layer norm (s = 1) and group
 *   norm, addend none / per row / shared; the same bits with 1 and 2 threads.
 * - the fused forward against a double-precision reference, and its backward against
 *   central finite differences of that reference (random directions, and element by
 *   element on small cases).
 * - whole networks (the committed fixtures): forward and VJP with the executor's fusions
 *   on and off give the same bytes, with 1 and 2 threads; the fusions happen (norm +
 *   activation, channel adds, residual adds absorbed) and the activation arena shrinks.
 */
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/hd_math.h"
#include "core/internal.h"
#include "nn/network_internal.h"
#include "nn/nn_graph.h"
#include "nn/nn_kernels.h"

#ifndef LGD_FIXTURE_DIR
#error "LGD_FIXTURE_DIR must name tests/fixtures/nn"
#endif

/* ------------------------------------------------------------------ helpers */

/* (tu_quick(), the valgrind pass: no U-Net sized kernel case, fewer networks) */
typedef struct cpu_be {
    lgd_backend *be;
    const lgd_backend_ops *ops;
} cpu_be;

static cpu_be cpu_open(int threads)
{
    cpu_be c = { NULL, NULL };
    ck_assert_int_eq(lgd_cpu_backend_open(threads, &c.be, &c.ops), 0);
    ck_assert_ptr_nonnull(c.be);
    return c;
}

static void cpu_close(cpu_be *c) { c->ops->destroy(c->be); }

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static void check_bytes_eq(const char *what, const void *a, const void *b, size_t bytes)
{
    ck_assert_msg(memcmp(a, b, bytes) == 0, "%s: results differ bitwise", what);
}

/* ------------------------------------------------------------------ kernel cases */

typedef struct fcase {
    size_t n, c, s, groups;
    int e_mode; /* 0 none, 1 per row, 2 shared */
    lgd_activation f;
    float offset;
} fcase;

static const fcase cases[] = {
    { 2, 4, 3, 2, 1, LGD_ACT_SILU, 0.0f },      /* small: element-wise finite differences */
    { 3, 12, 25, 3, 1, LGD_ACT_SILU, 0.0f },    /* odd spatial size, several groups */
    { 2, 16, 64, 4, 2, LGD_ACT_SILU, 0.0f },    /* shared addend (one embedding row) */
    { 2, 8, 49, 8, 0, LGD_ACT_SILU, 0.0f },     /* no addend, one channel per group */
    { 2, 8, 49, 4, 1, LGD_ACT_GELU, 0.0f },     /* GELU */
    { 5, 32, 1, 1, 0, LGD_ACT_SILU, 0.0f },     /* layer norm of rows (the MLP's) */
    { 3, 24, 1, 1, 0, LGD_ACT_GELU, 0.0f },     /* layer norm, GELU */
    { 1, 16, 130, 2, 1, LGD_ACT_SILU, -300.0f },/* a large mean */
    { 3, 64, 256, 32, 1, LGD_ACT_SILU, 0.0f },  /* U-Net sized: parallel groups (last) */
};
#define N_CASES (sizeof cases / sizeof cases[0])

typedef struct fdata {
    size_t numel, ng, e_stride;
    float *x, *e, *gamma, *beta, *dy, *dx0;
} fdata;

static void fdata_make(const fcase *k, tu_rng *r, fdata *d)
{
    d->numel = k->n * k->c * k->s;
    d->ng = k->n * k->groups;
    d->x = tu_randn(r, d->numel, 1.5f);
    for (size_t i = 0; i < d->numel; i++)
        d->x[i] += k->offset;
    d->e = k->e_mode ? tu_randn(r, (k->e_mode == 1 ? k->n : 1) * k->c, 0.7f) : NULL;
    d->e_stride = k->e_mode == 1 ? k->c : 0;
    d->gamma = tu_randn(r, k->c, 1.0f);
    d->beta = tu_randn(r, k->c, 1.0f);
    d->dy = tu_randn(r, d->numel, 1.0f);
    d->dx0 = tu_randn(r, d->numel, 1.0f);
}

static void fdata_free(fdata *d)
{
    free(d->x);
    free(d->e);
    free(d->gamma);
    free(d->beta);
    free(d->dy);
    free(d->dx0);
}

/* The layers one by one: u = x (+ e), z = group_norm(u), y = f(z); backward
 * dz = f'(z) dy, dx = group_norm_backward(dz) + beta dx. u and z are returned. */
static void unfused(cpu_be *c, const fcase *k, const fdata *d, float *u, float *z, float *y,
                    float *mean, float *rstd)
{
    memcpy(u, d->x, d->numel * sizeof *u);
    if (d->e)
        lgd_nn_kernels_cpu.add_channel_bias(c->be, k->n, k->c, k->s, d->e, d->e_stride, u);
    lgd_nn_kernels_cpu.group_norm(c->be, k->n, k->c, k->s, k->groups, 1e-5f, u, d->gamma,
                                  d->beta, z, mean, rstd);
    lgd_nn_kernels_cpu.activation(c->be, k->f, d->numel, z, y);
}

static void unfused_backward(cpu_be *c, const fcase *k, const fdata *d, const float *u,
                             const float *z, const float *mean, const float *rstd, float beta,
                             float *dx)
{
    float *dz = tu_fvec(d->numel);
    fill_const(dz, d->numel, NAN);
    lgd_nn_kernels_cpu.activation_backward(c->be, k->f, d->numel, z, d->dy, 0.0f, dz);
    lgd_nn_kernels_cpu.group_norm_backward(c->be, k->n, k->c, k->s, k->groups, u, d->gamma, mean,
                                           rstd, dz, beta, dx);
    free(dz);
}

START_TEST(fused_kernel_bits)
{
    const fcase *k = &cases[_i];
    if (tu_quick() && _i == (int)N_CASES - 1)
        return;
    tu_rng r = { 1600 + (uint64_t)_i };
    fdata d;
    fdata_make(k, &r, &d);
    const size_t N = d.numel, ns = LGD_NN_NORM_ACT_STATS * d.ng;
    float *u = tu_fvec(N), *z = tu_fvec(N), *y = tu_fvec(N), *mean = tu_fvec(d.ng), *rstd = tu_fvec(d.ng);
    float *dxu = tu_fvec(N), *dxf = tu_fvec(N);
    /* [threads - 1], [beta], [f'(z) kept by the forward pass or recomputed] */
    float *yf[2], *st[2], *da[2], *y0 = tu_fvec(N), *gf[2][2][2];
    cpu_be c1 = cpu_open(1);
    unfused(&c1, k, &d, u, z, y, mean, rstd);
    for (int t = 0; t < 2; t++) {
        cpu_be c = t ? cpu_open(2) : c1;
        yf[t] = tu_fvec(N);
        st[t] = tu_fvec(ns);
        da[t] = tu_fvec(N);
        fill_const(yf[t], N, NAN);
        ck_assert_int_eq(lgd_nn_kernels_cpu.group_norm_act(c.be, k->n, k->c, k->s, k->groups,
                                                           1e-5f, d.x, d.e, d.e_stride,
                                                           d.gamma, d.beta, k->f, yf[t], st[t],
                                                           da[t]),
                         0);
        if (!t) {
            /* without f'(z): the same outputs and statistics */
            float *st0 = tu_fvec(ns);
            ck_assert_int_eq(lgd_nn_kernels_cpu.group_norm_act(c.be, k->n, k->c, k->s,
                                                               k->groups, 1e-5f, d.x, d.e,
                                                               d.e_stride, d.gamma, d.beta,
                                                               k->f, y0, st0, NULL),
                             0);
            check_bytes_eq("forward without f'(z)", y0, yf[0], N * sizeof *y0);
            check_bytes_eq("statistics without f'(z)", st0, st[0], ns * sizeof *st0);
            free(st0);
        }
        for (int b = 0; b < 2; b++)
            for (int kept = 0; kept < 2; kept++) {
                float *g = gf[t][b][kept] = tu_fvec(N);
                if (b)
                    memcpy(g, d.dx0, N * sizeof(float));
                else
                    fill_const(g, N, NAN);
                ck_assert_int_eq(lgd_nn_kernels_cpu.group_norm_act_backward(
                                     c.be, k->n, k->c, k->s, k->groups, d.x, d.e, d.e_stride,
                                     d.gamma, d.beta, k->f, st[t], kept ? da[t] : NULL, d.dy,
                                     (float)b, g),
                                 0);
            }
        if (t)
            cpu_close(&c);
    }
    char what[96];
    snprintf(what, sizeof what, "case %d forward", _i);
    check_bytes_eq(what, yf[0], y, N * sizeof *y);
    check_bytes_eq(what, st[0], mean, d.ng * sizeof *mean);
    check_bytes_eq(what, st[0] + d.ng, rstd, d.ng * sizeof *rstd);
    for (int b = 0; b < 2; b++) {
        if (b)
            memcpy(dxu, d.dx0, N * sizeof(float));
        else
            fill_const(dxu, N, NAN);
        unfused_backward(&c1, k, &d, u, z, mean, rstd, (float)b, dxu);
        for (int kept = 0; kept < 2; kept++) {
            snprintf(what, sizeof what, "case %d backward, beta %d, f'(z) %s", _i, b,
                     kept ? "kept" : "recomputed");
            check_bytes_eq(what, gf[0][b][kept], dxu, N * sizeof *dxu);
            snprintf(what, sizeof what, "case %d backward, beta %d, f'(z) %s, 2 threads", _i, b,
                     kept ? "kept" : "recomputed");
            check_bytes_eq(what, gf[1][b][kept], gf[0][b][kept], N * sizeof *dxu);
        }
    }
    snprintf(what, sizeof what, "case %d forward, 2 threads", _i);
    check_bytes_eq(what, yf[1], yf[0], N * sizeof *y);
    check_bytes_eq(what, st[1], st[0], ns * sizeof(float));
    cpu_close(&c1);
    for (int t = 0; t < 2; t++) {
        free(yf[t]);
        free(st[t]);
        free(da[t]);
        for (int b = 0; b < 2; b++)
            for (int kept = 0; kept < 2; kept++)
                free(gf[t][b][kept]);
    }
    free(y0);
    free(u);
    free(z);
    free(y);
    free(mean);
    free(rstd);
    free(dxu);
    free(dxf);
    fdata_free(&d);
}
END_TEST

/* ------------------------------------------------------------------ double reference */

typedef struct ref_ctx {
    const fcase *k;
    const fdata *d;
} ref_ctx;

static double ref_act(lgd_activation f, double z)
{
    if (f == LGD_ACT_GELU)
        return 0.5 * z * erfc(-z / sqrt(2.0));
    return z / (1.0 + exp(-z));
}

/* y = f(group_norm(x + e)) in double (two-pass statistics) */
static void ref_forward(const void *vctx, const double *x, double *y)
{
    const ref_ctx *rc = vctx;
    const fcase *k = rc->k;
    const fdata *d = rc->d;
    const size_t cpg = k->c / k->groups, gs = cpg * k->s;
    double *u = tu_dvec(gs);
    for (size_t i = 0; i < k->n; i++)
        for (size_t g = 0; g < k->groups; g++) {
            const size_t base = (i * k->groups + g) * gs;
            for (size_t cc = 0; cc < cpg; cc++) {
                size_t ch = g * cpg + cc;
                double ev = d->e ? (double)d->e[i * d->e_stride + ch] : 0.0;
                for (size_t q = 0; q < k->s; q++)
                    u[cc * k->s + q] = x[base + cc * k->s + q] + ev;
            }
            double m = 0.0, v = 0.0;
            for (size_t q = 0; q < gs; q++)
                m += u[q];
            m /= (double)gs;
            for (size_t q = 0; q < gs; q++)
                v += (u[q] - m) * (u[q] - m);
            v /= (double)gs;
            const double rs = 1.0 / sqrt(v + 1e-5);
            for (size_t cc = 0; cc < cpg; cc++) {
                size_t ch = g * cpg + cc;
                for (size_t q = 0; q < k->s; q++) {
                    double zz = (u[cc * k->s + q] - m) * rs * (double)d->gamma[ch] +
                                (double)d->beta[ch];
                    y[base + cc * k->s + q] = ref_act(k->f, zz);
                }
            }
        }
    free(u);
}

START_TEST(fused_against_reference)
{
    const fcase *k = &cases[_i];
    if (k->offset != 0.0f || (tu_quick() && _i == (int)N_CASES - 1))
        return; /* finite differences of a large-mean input measure rounding */
    tu_rng r = { 1700 + (uint64_t)_i };
    fdata d;
    fdata_make(k, &r, &d);
    const size_t N = d.numel;
    cpu_be c = cpu_open(2);
    float *y = tu_fvec(N), *st = tu_fvec(LGD_NN_NORM_ACT_STATS * d.ng), *dx = tu_fvec(N);
    float *da = tu_fvec(N);
    ck_assert_int_eq(lgd_nn_kernels_cpu.group_norm_act(c.be, k->n, k->c, k->s, k->groups, 1e-5f,
                                                       d.x, d.e, d.e_stride, d.gamma, d.beta,
                                                       k->f, y, st, da),
                     0);
    fill_const(dx, N, NAN);
    ck_assert_int_eq(lgd_nn_kernels_cpu.group_norm_act_backward(c.be, k->n, k->c, k->s,
                                                                k->groups, d.x, d.e, d.e_stride,
                                                                d.gamma, d.beta, k->f, st, da,
                                                                d.dy, 0.0f, dx),
                     0);
    ref_ctx rc = { k, &d };
    double *xd = tu_dvec(N), *yd = tu_dvec(N), *xp = tu_dvec(N), *dyd = tu_dvec(N);
    for (size_t i = 0; i < N; i++) {
        xd[i] = d.x[i];
        dyd[i] = d.dy[i];
    }
    ref_forward(&rc, xd, yd);
    double ymax = 0.0, err = 0.0;
    for (size_t i = 0; i < N; i++) {
        ymax = fmax(ymax, fabs(yd[i]));
        err = fmax(err, fabs((double)y[i] - yd[i]));
    }
    ck_assert_msg(err <= 2e-6 * ymax, "case %d: forward error %.3g (max |y| %.3g)", _i, err, ymax);
    /* <dx, v> against the directional derivative of <dy, f(x)> */
    const double h = 1e-4;
    for (int dir = 0; dir < 4; dir++) {
        double an = 0.0, mag = 0.0;
        double *v = tu_dvec(N);
        for (size_t i = 0; i < N; i++) {
            v[i] = tu_normal(&r);
            an += (double)dx[i] * v[i];
            mag += fabs((double)dx[i] * v[i]);
        }
        double fp = 0.0, fm = 0.0;
        for (size_t i = 0; i < N; i++)
            xp[i] = xd[i] + h * v[i];
        ref_forward(&rc, xp, yd);
        for (size_t i = 0; i < N; i++)
            fp += dyd[i] * yd[i];
        for (size_t i = 0; i < N; i++)
            xp[i] = xd[i] - h * v[i];
        ref_forward(&rc, xp, yd);
        for (size_t i = 0; i < N; i++)
            fm += dyd[i] * yd[i];
        double fd = (fp - fm) / (2.0 * h);
        ck_assert_msg(fabs(fd - an) <= 5e-5 * (mag + fabs(fd)),
                      "case %d: direction %d: <dx, v> = %.10g, finite difference %.10g", _i, dir,
                      an, fd);
        free(v);
    }
    if (N <= 200) {
        /* element by element */
        memcpy(xp, xd, N * sizeof *xp);
        for (size_t i = 0; i < N; i++) {
            double fp = 0.0, fm = 0.0;
            xp[i] = xd[i] + h;
            ref_forward(&rc, xp, yd);
            for (size_t j = 0; j < N; j++)
                fp += dyd[j] * yd[j];
            xp[i] = xd[i] - h;
            ref_forward(&rc, xp, yd);
            for (size_t j = 0; j < N; j++)
                fm += dyd[j] * yd[j];
            xp[i] = xd[i];
            double fd = (fp - fm) / (2.0 * h);
            ck_assert_msg(fabs(fd - (double)dx[i]) <= 1e-4 * (fabs(fd) + 1.0),
                          "case %d: dx[%zu] = %.9g, finite difference %.9g", _i, i,
                          (double)dx[i], fd);
        }
    }
    cpu_close(&c);
    free(y);
    free(st);
    free(dx);
    free(da);
    free(xd);
    free(yd);
    free(xp);
    free(dyd);
    fdata_free(&d);
}
END_TEST

/* ------------------------------------------------------------------ whole networks */

static const char *const nets[] = {
    "resblock", "resblock_scale_shift", "attention", "mlp", "mlp_cond", "unet",
    "unet_cond_ss", "temporal_unet", "unet_head_channels", "time_embedding",
};
#define N_NETS (sizeof nets / sizeof nets[0])

static char *fixture_path(const char *name)
{
    static const char dir[] = LGD_FIXTURE_DIR;
    size_t n = strlen(dir) + strlen(name) + 16;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/%s.safetensors", dir, name);
    return p;
}

typedef struct net_result {
    float *out, *vjp;
    size_t fused_norms, channel_adds, residuals, arena_per_row;
} net_result;

static void run_net(const char *name, int threads, unsigned fuse, net_result *res)
{
    lgd_context *ctx = tu_context(threads);
    lgd_network *net;
    char *path = fixture_path(name);
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    free(path);
    nn_graph *g = lgd_network_graph(net);
    ck_assert_ptr_nonnull(g);
    nn_graph_set_fusion(g, fuse);
    const int64_t B = 3, D = lgd_network_dim(net), O = lgd_network_out_dim(net);
    const int64_t K = lgd_network_cond_dim(net);
    tu_rng r = { 1800 };
    float *x = tu_fvec((size_t)(B * D)), *v = tu_fvec((size_t)(B * O));
    tu_fill_normal(&r, x, (size_t)(B * D), 1.0f);
    tu_fill_normal(&r, v, (size_t)(B * O), 1.0f);
    float *cond = NULL;
    if (K > 0) {
        /* one-hot labels (a class-conditional network) or values */
        cond = tu_fvec((size_t)(B * K));
        fill_const(cond, (size_t)(B * K), 0.0f);
        for (int64_t i = 0; i < B; i++)
            cond[i * K + i % K] = 1.0f;
    }
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tv = tu_tensor(ctx, B, O, v);
    lgd_tensor *tc = cond ? tu_tensor(ctx, B, K, cond) : NULL;
    lgd_tensor *to = tu_tensor(ctx, B, O, NULL), *tg = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_network_forward(net, tx, 41.0f, tc, to));
    TU_OK(ctx, lgd_network_vjp(net, tx, 41.0f, tc, tv, tg, NULL));
    res->out = tu_download(to);
    res->vjp = tu_download(tg);
    res->fused_norms = res->channel_adds = res->residuals = 0;
    for (size_t i = 0; i < g->n_ops; i++) {
        const nn_op *op = &g->ops[i];
        res->fused_norms += op->kind == NN_NORM && op->fused_act;
        res->channel_adds += op->kind == NN_NORM && op->fused_act && op->in[1] >= 0;
        res->residuals += op->kind == NN_ADD && op->accumulate;
    }
    res->arena_per_row = g->arena_per_row;
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(tc);
    lgd_tensor_destroy(to);
    lgd_tensor_destroy(tg);
    lgd_network_destroy(net);
    lgd_context_destroy(ctx);
    free(x);
    free(v);
    free(cond);
}

START_TEST(network_fused_equals_unfused)
{
    const char *name = nets[_i];
    const int quick = tu_quick();
    if (quick && strcmp(name, "resblock") && strcmp(name, "mlp") && strcmp(name, "unet"))
        return;
    lgd_context *ctx = tu_context(1);
    lgd_network *net;
    char *path = fixture_path(name);
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    free(path);
    const size_t no = (size_t)(3 * lgd_network_out_dim(net));
    const size_t ni = (size_t)(3 * lgd_network_dim(net));
    lgd_network_destroy(net);
    lgd_context_destroy(ctx);
    /* every fusion alone, norm + activation with the channel add, and all */
    static const unsigned masks[] = { NN_FUSE_NORM_ACT, NN_FUSE_RESIDUAL,
                                      NN_FUSE_NORM_ACT | NN_FUSE_CHANNEL_ADD, NN_FUSE_ALL };
    for (int threads = 1; threads <= 2; threads++) {
        net_result plain;
        run_net(name, threads, 0, &plain);
        ck_assert_uint_eq(plain.fused_norms + plain.residuals, 0);
        for (size_t m = quick ? 3 : 0; m < sizeof masks / sizeof masks[0]; m++) {
            net_result fused;
            run_net(name, threads, masks[m], &fused);
            char what[128];
            snprintf(what, sizeof what, "%s (%d threads, fusions %u): forward", name, threads,
                     masks[m]);
            check_bytes_eq(what, fused.out, plain.out, no * sizeof(float));
            snprintf(what, sizeof what, "%s (%d threads, fusions %u): VJP", name, threads,
                     masks[m]);
            check_bytes_eq(what, fused.vjp, plain.vjp, ni * sizeof(float));
            if (!(masks[m] & NN_FUSE_NORM_ACT))
                ck_assert_uint_eq(fused.fused_norms, 0);
            if (!(masks[m] & NN_FUSE_CHANNEL_ADD))
                ck_assert_uint_eq(fused.channel_adds, 0);
            if (!(masks[m] & NN_FUSE_RESIDUAL))
                ck_assert_uint_eq(fused.residuals, 0);
            /* the fusions this architecture allows happen */
            int has_all = !strcmp(name, "unet") || !strcmp(name, "resblock") ||
                          !strcmp(name, "mlp") || !strcmp(name, "temporal_unet");
            if (has_all && (masks[m] & NN_FUSE_NORM_ACT))
                ck_assert_msg(fused.fused_norms > 0, "%s: no norm + activation fused", name);
            if (has_all && (masks[m] & NN_FUSE_RESIDUAL))
                ck_assert_msg(fused.residuals > 0, "%s: no residual add fused", name);
            if (has_all)
                ck_assert_msg(fused.arena_per_row < plain.arena_per_row,
                              "%s: the arena did not shrink (%zu vs %zu floats per row)", name,
                              fused.arena_per_row, plain.arena_per_row);
            if ((!strcmp(name, "unet") || !strcmp(name, "resblock")) &&
                (masks[m] & NN_FUSE_CHANNEL_ADD))
                ck_assert_msg(fused.channel_adds > 0, "%s: no channel add fused", name);
            free(fused.out);
            free(fused.vjp);
        }
        free(plain.out);
        free(plain.vjp);
    }
}
END_TEST

/* Fusion switched off and on again on one network: the executor lays out its arenas again
 * and the results do not change. */
START_TEST(fusion_toggle_on_one_network)
{
    lgd_context *ctx = tu_context(2);
    lgd_network *net;
    char *path = fixture_path("unet");
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    free(path);
    nn_graph *g = lgd_network_graph(net);
    const int64_t B = 2, D = lgd_network_dim(net);
    tu_rng r = { 1900 };
    float *x = tu_fvec((size_t)(B * D));
    tu_fill_normal(&r, x, (size_t)(B * D), 1.0f);
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tv = tu_tensor(ctx, B, D, x);
    lgd_tensor *tg = tu_tensor(ctx, B, D, NULL);
    float *ref = NULL;
    for (int k = 0; k < 4; k++) {
        nn_graph_set_fusion(g, k % 2 ? NN_FUSE_ALL : 0);
        TU_OK(ctx, lgd_network_vjp(net, tx, 12.0f, NULL, tv, tg, NULL));
        float *got = tu_download(tg);
        if (!ref)
            ref = got;
        else {
            check_bytes_eq("toggled fusion", got, ref, (size_t)(B * D) * sizeof(float));
            free(got);
        }
    }
    /* the adapters' path (forward, then the VJP on the same input and tape): the fusions
     * switched in between, the VJP runs the forward pass of the new list first */
    float *v = tu_fvec((size_t)(B * D)), *dx = tu_fvec((size_t)(B * D));
    memcpy(v, x, (size_t)(B * D) * sizeof *v);
    TU_OK(ctx, lgd_network_forward_raw(net, x, 12.0f, NULL, (size_t)B, NULL));
    nn_graph_set_fusion(g, 0);
    TU_OK(ctx, lgd_network_vjp_raw(net, x, 12.0f, NULL, (size_t)B, v, dx));
    check_bytes_eq("fusion switched between forward and VJP", dx, ref,
                   (size_t)(B * D) * sizeof(float));
    free(v);
    free(dx);
    free(ref);
    free(x);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(tg);
    lgd_network_destroy(net);
    lgd_context_destroy(ctx);
}
END_TEST

/* The executor's profile adds up every layer of a pass, and counts the FLOPs of the
 * convolutions exactly (bench-network --profile). */
START_TEST(profile_counts)
{
    lgd_context *ctx = tu_context(1);
    lgd_network *net;
    char *path = fixture_path("conv2d");
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    free(path);
    nn_graph *g = lgd_network_graph(net);
    nn_profile p;
    memset(&p, 0, sizeof p);
    nn_graph_set_profile(g, &p);
    const int64_t B = 2, D = lgd_network_dim(net), O = lgd_network_out_dim(net);
    lgd_tensor *tx = tu_tensor(ctx, B, D, NULL), *tv = tu_tensor(ctx, B, O, NULL);
    lgd_tensor *tg = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_network_vjp(net, tx, 1.0f, NULL, tv, tg, NULL));
    nn_graph_set_profile(g, NULL);
    /* Conv2d 3 -> 4, k 3, 6x6, batch 2: 2 * 2 * 4 * 36 * 3 * 9 FLOPs each way */
    const double flops = 2.0 * 2 * 4 * 36 * 3 * 9;
    ck_assert_uint_eq(p.e[0][NN_PROF_CONV].calls, 1);
    ck_assert_uint_eq(p.e[1][NN_PROF_CONV].calls, 1);
    ck_assert(p.e[0][NN_PROF_CONV].flops == flops);
    ck_assert(p.e[1][NN_PROF_CONV].flops == flops);
    /* forward: the input and output copies; VJP: the cotangent in, the VJP out */
    ck_assert_uint_eq(p.e[0][NN_PROF_COPY].calls, 1);
    ck_assert_uint_eq(p.e[1][NN_PROF_COPY].calls, 2);
    for (int k = 0; k < NN_PROF_KINDS; k++) {
        ck_assert(p.e[0][k].wall_ms >= 0.0 && p.e[1][k].wall_ms >= 0.0);
        ck_assert_ptr_nonnull(nn_prof_kind_name(k));
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(tg);
    lgd_network_destroy(net);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_fused");
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 300);
    tcase_add_loop_test(tk, fused_kernel_bits, 0, (int)N_CASES);
    tcase_add_loop_test(tk, fused_against_reference, 0, (int)N_CASES);
    suite_add_tcase(s, tk);
    TCase *tn = tcase_create("networks");
    tcase_set_timeout(tn, 300);
    tcase_add_loop_test(tn, network_fused_equals_unfused, 0, (int)N_NETS);
    tcase_add_test(tn, fusion_toggle_on_one_network);
    tcase_add_test(tn, profile_counts);
    suite_add_tcase(s, tn);
    return tu_run(s);
}
