/*
 * test_network.c - networks loaded from files (issue 6): every layer and
 * architecture against the PyTorch references committed in tests/fixtures/nn
 * (forward and VJP), the VJPs against finite differences, the adapters on a loaded
 * network, guided sampling with one, the loader on corrupt files, and bad input.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "nn/safetensors.h"

#ifndef LGD_FIXTURE_DIR
#error "LGD_FIXTURE_DIR must name tests/fixtures/nn"
#endif

/* every fixture the converter writes (tools/make_fixtures.py); a missing one fails */
static const char *const expected_fixtures[] = {
    "linear", "conv1d", "conv2d", "conv2d_stride2", "group_norm", "layer_norm", "silu",
    "gelu", "attention", "attention_1d", "resblock", "resblock_scale_shift", "upsample",
    "downsample", "downsample_avgpool", "concat", "time_embedding", "mlp", "mlp_cond",
    "mlp_f16", "mlp_bf16", "unet", "unet_cond_ss", "temporal_unet", "unet_head_channels",
};
#define N_FIXTURES (sizeof expected_fixtures / sizeof expected_fixtures[0])

static char *fixture_path(const char *name, const char *suffix)
{
    static const char dir[] = LGD_FIXTURE_DIR;
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 3;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

/* A fixture: its network and the reference tensors (host floats). */
typedef struct fixture {
    lgd_network *net;
    int64_t batch, dim, out_dim, cond_dim;
    float t;
    float *x, *cond, *out, *cot, *vjp;
} fixture;

static float *ref_tensor(const lgd_st_file *f, const char *name, int64_t rows, int64_t cols,
                         const char *fixture_name)
{
    const lgd_st_tensor *t = lgd_st_find(f, name);
    ck_assert_msg(t != NULL, "%s.ref: tensor %s missing", fixture_name, name);
    ck_assert_msg(t->numel == rows * cols, "%s.ref: %s has %lld values, expected %lld x %lld",
                  fixture_name, name, (long long)t->numel, (long long)rows, (long long)cols);
    float *h = malloc((size_t)t->numel * sizeof *h);
    ck_assert_ptr_nonnull(h);
    lgd_st_to_f32(t, h);
    return h;
}

static void fixture_load(lgd_context *ctx, const char *name, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    char *path = fixture_path(name, ".safetensors");
    TU_OK(ctx, lgd_network_load(ctx, path, &fx->net));
    free(path);
    fx->dim = lgd_network_dim(fx->net);
    fx->out_dim = lgd_network_out_dim(fx->net);
    fx->cond_dim = lgd_network_cond_dim(fx->net);
    path = fixture_path(name, ".ref.safetensors");
    lgd_st_file f;
    char err[256];
    ck_assert_msg(lgd_st_read_file(path, &f, err, sizeof err) == LGD_OK, "%s: %s", path, err);
    free(path);
    const lgd_st_tensor *x = lgd_st_find(&f, "x_in");
    ck_assert_msg(x && x->ndim == 2 && x->shape[1] == fx->dim,
                  "%s.ref: x_in must be [B][%lld]", name, (long long)fx->dim);
    fx->batch = x->shape[0];
    float t;
    const lgd_st_tensor *tt = lgd_st_find(&f, "t");
    ck_assert_msg(tt && tt->numel == 1, "%s.ref: t missing", name);
    lgd_st_to_f32(tt, &t);
    fx->t = t;
    fx->x = ref_tensor(&f, "x_in", fx->batch, fx->dim, name);
    fx->out = ref_tensor(&f, "out", fx->batch, fx->out_dim, name);
    fx->cot = ref_tensor(&f, "cotangent", fx->batch, fx->out_dim, name);
    fx->vjp = ref_tensor(&f, "vjp", fx->batch, fx->dim, name);
    if (fx->cond_dim > 0)
        fx->cond = ref_tensor(&f, "cond", fx->batch, fx->cond_dim, name);
    lgd_st_free(&f);
}

static void fixture_free(fixture *fx)
{
    lgd_network_destroy(fx->net);
    free(fx->x);
    free(fx->cond);
    free(fx->out);
    free(fx->cot);
    free(fx->vjp);
}

static double max_abs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    double s = max_abs(b, n);
    return m / (s > 0.0 ? s : 1.0);
}

/* F(x) and (dF/dx)^T cot of a fixture's network on the given context */
static void run_fixture(lgd_context *ctx, fixture *fx, const float *x, float *out, float *vjp)
{
    lgd_tensor *tx = tu_tensor(ctx, fx->batch, fx->dim, x);
    lgd_tensor *tc = fx->cond ? tu_tensor(ctx, fx->batch, fx->cond_dim, fx->cond) : NULL;
    lgd_tensor *to = tu_tensor(ctx, fx->batch, fx->out_dim, NULL);
    TU_OK(ctx, lgd_network_forward(fx->net, tx, fx->t, tc, to));
    if (out)
        TU_OK(ctx, lgd_tensor_download(to, out, (size_t)(fx->batch * fx->out_dim)));
    if (vjp) {
        lgd_tensor *tv = tu_tensor(ctx, fx->batch, fx->out_dim, fx->cot);
        lgd_tensor *tg = tu_tensor(ctx, fx->batch, fx->dim, NULL);
        lgd_tensor *tf = tu_tensor(ctx, fx->batch, fx->out_dim, NULL);
        TU_OK(ctx, lgd_network_vjp(fx->net, tx, fx->t, tc, tv, tg, tf));
        TU_OK(ctx, lgd_tensor_download(tg, vjp, (size_t)(fx->batch * fx->dim)));
        /* the forward pass inside the VJP is the forward pass */
        if (out) {
            float *f2 = tu_download(tf);
            for (int64_t i = 0; i < fx->batch * fx->out_dim; i++)
                ck_assert_msg(f2[i] == out[i], "out_forward differs from forward at %lld",
                              (long long)i);
            free(f2);
        }
        lgd_tensor_destroy(tv);
        lgd_tensor_destroy(tg);
        lgd_tensor_destroy(tf);
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tc);
    lgd_tensor_destroy(to);
}

/* Forward and VJP against PyTorch. The references are float64 computations from the
 * float32 weights, so the only error is liblgd's float32 rounding: relative to the
 * largest output, 2e-5 for a layer and 1e-4 for a whole network. */
START_TEST(parity_with_pytorch)
{
    const char *name = expected_fixtures[_i];
    lgd_context *ctx = tu_context(0);
    fixture fx;
    fixture_load(ctx, name, &fx);
    size_t no = (size_t)(fx.batch * fx.out_dim), ni = (size_t)(fx.batch * fx.dim);
    float *out = malloc(no * sizeof *out), *vjp = malloc(ni * sizeof *vjp);
    run_fixture(ctx, &fx, fx.x, out, vjp);
    const char *arch = lgd_network_metadata(fx.net, "lgd.architecture");
    ck_assert_ptr_nonnull(arch);
    double tol = strcmp(arch, "layer") ? 1e-4 : 2e-5;
    double e_out = rel_err(out, fx.out, no), e_vjp = rel_err(vjp, fx.vjp, ni);
    ck_assert_msg(max_abs(fx.out, no) > 1e-3, "%s: reference output is ~0", name);
    ck_assert_msg(max_abs(fx.vjp, ni) > 1e-3, "%s: reference VJP is ~0", name);
    ck_assert_msg(e_out < tol, "%s: forward relative error %.3g (tolerance %.1g)", name, e_out,
                  tol);
    ck_assert_msg(e_vjp < tol, "%s: VJP relative error %.3g (tolerance %.1g)", name, e_vjp, tol);
    free(out);
    free(vjp);
    fixture_free(&fx);
    lgd_context_destroy(ctx);
}
END_TEST

/* <v, J d> by central differences of the float network vs <J^T v, d>, along random
 * directions d; the step balances float rounding against curvature. */
START_TEST(vjp_matches_finite_differences)
{
    const char *name = expected_fixtures[_i];
    lgd_context *ctx = tu_context(0);
    fixture fx;
    fixture_load(ctx, name, &fx);
    size_t no = (size_t)(fx.batch * fx.out_dim), ni = (size_t)(fx.batch * fx.dim);
    float *vjp = malloc(ni * sizeof *vjp), *xp = malloc(ni * sizeof *xp);
    float *xm = malloc(ni * sizeof *xm), *fp = malloc(no * sizeof *fp);
    float *fm = malloc(no * sizeof *fm), *d = malloc(ni * sizeof *d);
    run_fixture(ctx, &fx, fx.x, NULL, vjp);
    tu_rng rng = { 1234u + (uint64_t)_i };
    double xs = fmax(max_abs(fx.x, ni), 1e-3);
    for (int trial = 0; trial < 3; trial++) {
        tu_fill_normal(&rng, d, ni, 1.0f);
        double h = 1e-2 * xs;
        for (size_t i = 0; i < ni; i++) {
            xp[i] = fx.x[i] + (float)h * d[i];
            xm[i] = fx.x[i] - (float)h * d[i];
        }
        run_fixture(ctx, &fx, xp, fp, NULL);
        run_fixture(ctx, &fx, xm, fm, NULL);
        double fd = 0.0, an = 0.0, scale = 0.0;
        for (size_t i = 0; i < no; i++) {
            fd += (double)fx.cot[i] * ((double)fp[i] - (double)fm[i]) / (2.0 * h);
            scale += fabs((double)fx.cot[i] * ((double)fp[i] - (double)fm[i]) / (2.0 * h));
        }
        for (size_t i = 0; i < ni; i++)
            an += (double)vjp[i] * d[i];
        ck_assert_msg(fabs(fd - an) <= 2e-3 * scale + 1e-4,
                      "%s: <v, J d> = %.6g by differences, %.6g by the VJP (scale %.3g)", name,
                      fd, an, scale);
    }
    free(vjp);
    free(xp);
    free(xm);
    free(fp);
    free(fm);
    free(d);
    fixture_free(&fx);
    lgd_context_destroy(ctx);
}
END_TEST

/* Same results at batch 1 row by row, with 1 and 2 threads (bitwise), and on a second
 * call (the arena reused). */
START_TEST(rows_threads_and_reuse)
{
    static const char *const names[] = { "mlp", "unet", "temporal_unet", "unet_cond_ss" };
    const char *name = names[_i];
    lgd_context *c1 = tu_context(1), *c2 = tu_context(2);
    fixture f1, f2;
    fixture_load(c1, name, &f1);
    fixture_load(c2, name, &f2);
    size_t no = (size_t)(f1.batch * f1.out_dim), ni = (size_t)(f1.batch * f1.dim);
    float *o1 = malloc(no * sizeof *o1), *o2 = malloc(no * sizeof *o2);
    float *g1 = malloc(ni * sizeof *g1), *g2 = malloc(ni * sizeof *g2);
    run_fixture(c1, &f1, f1.x, o1, g1);
    run_fixture(c2, &f2, f2.x, o2, g2);
    ck_assert_msg(memcmp(o1, o2, no * sizeof *o1) == 0, "%s: 1 vs 2 threads differ", name);
    ck_assert_msg(memcmp(g1, g2, ni * sizeof *g1) == 0, "%s: VJP 1 vs 2 threads differ", name);
    size_t used, used2;
    lgd_context_memory_usage(c1, &used, NULL);
    run_fixture(c1, &f1, f1.x, o2, g2);
    ck_assert_msg(memcmp(o1, o2, no * sizeof *o1) == 0, "%s: second call differs", name);
    ck_assert_msg(memcmp(g1, g2, ni * sizeof *g1) == 0, "%s: second VJP differs", name);
    lgd_context_memory_usage(c1, &used2, NULL);
    ck_assert_msg(used2 == used, "%s: memory grew on reuse (%zu -> %zu bytes)", name, used,
                  used2);
    /* row by row: a different batch, same per-row results */
    fixture one = f1;
    one.batch = 1;
    float *orow = malloc((size_t)f1.out_dim * sizeof *orow);
    for (int64_t r = 0; r < f1.batch; r++) {
        one.cond = f1.cond ? f1.cond + r * f1.cond_dim : NULL;
        run_fixture(c1, &one, f1.x + r * f1.dim, orow, NULL);
        double e = rel_err(orow, o1 + r * f1.out_dim, (size_t)f1.out_dim);
        ck_assert_msg(e < 1e-5, "%s: row %lld alone differs by %.3g", name, (long long)r, e);
    }
    free(orow);
    free(o1);
    free(o2);
    free(g1);
    free(g2);
    fixture_free(&f1);
    fixture_free(&f2);
    lgd_context_destroy(c1);
    lgd_context_destroy(c2);
}
END_TEST

/* ---- the adapters on a loaded network ---- */

START_TEST(model_from_network_matches_adapter_formula)
{
    lgd_context *ctx = tu_context(0);
    fixture fx;
    fixture_load(ctx, "mlp", &fx);
    static const float alphas[] = { 0.999f, 0.99f, 0.95f, 0.8f, 0.5f, 0.2f, 0.05f, 0.01f };
    lgd_adapter_options ao = LGD_ADAPTER_OPTIONS_INIT;
    ao.prediction = LGD_PREDICT_EPS;
    ao.time_input = LGD_TIME_DISCRETE;
    ao.alphas_cumprod = alphas;
    ao.num_timesteps = 8;
    lgd_model *m;
    TU_OK(ctx, lgd_model_create_from_network(ctx, fx.net, &ao, &m));
    ck_assert_int_eq(lgd_model_dim(m), fx.dim);
    size_t n = (size_t)(fx.batch * fx.dim);
    float sigma = 1.7f, t;
    TU_OK(ctx, lgd_model_network_time(m, sigma, &t));
    float c_in = 1.0f / sqrtf(1.0f + sigma * sigma);
    /* D(x) = x - sigma F(c_in x, t) */
    float *xin = malloc(n * sizeof *xin);
    for (size_t i = 0; i < n; i++)
        xin[i] = c_in * fx.x[i];
    lgd_tensor *tx = tu_tensor(ctx, fx.batch, fx.dim, fx.x);
    lgd_tensor *txin = tu_tensor(ctx, fx.batch, fx.dim, xin);
    lgd_tensor *tf = tu_tensor(ctx, fx.batch, fx.dim, NULL);
    lgd_tensor *td = tu_tensor(ctx, fx.batch, fx.dim, NULL);
    TU_OK(ctx, lgd_network_forward(fx.net, txin, t, NULL, tf));
    TU_OK(ctx, lgd_model_denoise(m, tx, sigma, NULL, td));
    float *F = tu_download(tf), *D = tu_download(td);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(D[i] - (fx.x[i] - sigma * F[i])) <= 1e-5f * (1.0f + fabsf(D[i])),
                      "D[%zu] = %g, expected %g", i, (double)D[i],
                      (double)(fx.x[i] - sigma * F[i]));
    /* J^T v = v - sigma c_in (dF/dx_in)^T v */
    lgd_tensor *tv = tu_tensor(ctx, fx.batch, fx.dim, fx.cot);
    lgd_tensor *tg = tu_tensor(ctx, fx.batch, fx.dim, NULL);
    lgd_tensor *tj = tu_tensor(ctx, fx.batch, fx.dim, NULL);
    TU_OK(ctx, lgd_network_vjp(fx.net, txin, t, NULL, tv, tg, NULL));
    TU_OK(ctx, lgd_model_vjp(m, tx, sigma, NULL, tv, tj));
    float *G = tu_download(tg), *J = tu_download(tj);
    for (size_t i = 0; i < n; i++) {
        float want = fx.cot[i] - sigma * c_in * G[i];
        ck_assert_msg(fabsf(J[i] - want) <= 1e-5f * (1.0f + fabsf(want)), "J^T v [%zu] = %g, "
                      "expected %g", i, (double)J[i], (double)want);
    }
    free(xin);
    free(F);
    free(D);
    free(G);
    free(J);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(txin);
    lgd_tensor_destroy(tf);
    lgd_tensor_destroy(td);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(tj);
    /* the model keeps the network alive */
    fixture_free(&fx);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* lgd_model_load takes the adapter from the file; guided sampling with DPS and LGD-MC
 * on a loaded U-Net runs, is finite, deterministic for a seed, and guidance moves the
 * samples toward the loss's target. */
START_TEST(guided_sampling_with_loaded_unet)
{
    lgd_context *ctx = tu_context(0);
    char *path = fixture_path("unet", ".safetensors");
    lgd_model *m;
    TU_OK(ctx, lgd_model_load(ctx, path, &m));
    free(path);
    int64_t D = lgd_model_dim(m), B = 3;
    float *target = calloc((size_t)D, sizeof *target);
    for (int64_t i = 0; i < D; i++)
        target[i] = 0.5f;
    lgd_loss *loss;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, D, target, 1, NULL, &loss));
    double dist[3];
    for (int kind = 0; kind < 3; kind++) {
        lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
        go.kind = kind == 0 ? LGD_GUIDANCE_NONE : kind == 1 ? LGD_GUIDANCE_DPS : LGD_GUIDANCE_MC;
        go.n_samples = 8;
        go.scale = 1.0f;
        go.step_rule = LGD_STEP_X0;
        lgd_guidance *g;
        TU_OK(ctx, lgd_guidance_create(ctx, m, kind ? loss : NULL, &go, &g));
        float out[2][3 * 192];
        ck_assert_int_le(B * D, 3 * 192);
        lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
        so.kind = LGD_SAMPLER_DDIM;
        so.steps = 6;
        so.sigma_max = 20.0f;
        so.sigma_min = 0.05f;
        lgd_sampler *smp;
        TU_OK(ctx, lgd_sampler_create(g, &so, &smp));
        for (int rep = 0; rep < 2; rep++) {
            lgd_tensor *x = tu_tensor(ctx, B, D, NULL);
            TU_OK(ctx, lgd_sampler_run(smp, x, 77, 0, NULL, NULL));
            TU_OK(ctx, lgd_tensor_download(x, out[rep], (size_t)(B * D)));
            lgd_tensor_destroy(x);
        }
        ck_assert_msg(memcmp(out[0], out[1], (size_t)(B * D) * sizeof(float)) == 0,
                      "sampling is not deterministic for guidance kind %d", kind);
        double acc = 0.0;
        for (int64_t i = 0; i < B * D; i++) {
            ck_assert_msg(isfinite(out[0][i]), "non-finite sample");
            acc += (out[0][i] - 0.5) * (out[0][i] - 0.5);
        }
        dist[kind] = sqrt(acc / (double)(B * D));
        lgd_sampler_destroy(smp);
        lgd_guidance_destroy(g);
    }
    ck_assert_msg(dist[1] < dist[0] && dist[2] < dist[0],
                  "guidance did not move samples toward the target: RMS distance none %.3f, "
                  "DPS %.3f, LGD-MC %.3f", dist[0], dist[1], dist[2]);
    free(target);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* A class-conditional U-Net through the guidance's condition rows: sampling runs for
 * each class, the class changes the samples, and the rows of a mixed-class batch equal
 * the rows of single-class batches (the condition reaches each row, nothing leaks). */
START_TEST(conditional_unet_sampling)
{
    lgd_context *ctx = tu_context(0);
    char *path = fixture_path("unet_cond_ss", ".safetensors");
    lgd_model *m;
    TU_OK(ctx, lgd_model_load(ctx, path, &m));
    free(path);
    int64_t D = lgd_model_dim(m), K = lgd_model_cond_dim(m), B = 2;
    ck_assert_int_eq(K, 4);
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_NONE;
    lgd_guidance *g;
    TU_OK(ctx, lgd_guidance_create(ctx, m, NULL, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = 4;
    so.sigma_max = 10.0f;
    so.sigma_min = 0.1f;
    lgd_sampler *smp;
    TU_OK(ctx, lgd_sampler_create(g, &so, &smp));
    float *out[3];
    /* batches: both rows class 0; both rows class 2; row 0 class 0 and row 1 class 2 */
    static const int classes[3][2] = { { 0, 0 }, { 2, 2 }, { 0, 2 } };
    for (int k = 0; k < 3; k++) {
        float c[2 * 4] = { 0 };
        for (int b = 0; b < 2; b++)
            c[b * 4 + classes[k][b]] = 1.0f;
        lgd_tensor *tc = tu_tensor(ctx, B, K, c), *x = tu_tensor(ctx, B, D, NULL);
        TU_OK(ctx, lgd_guidance_set_condition(g, tc));
        TU_OK(ctx, lgd_sampler_run(smp, x, 5, 0, NULL, NULL));
        out[k] = tu_download(x);
        for (int64_t i = 0; i < B * D; i++)
            ck_assert_msg(isfinite(out[k][i]), "non-finite sample");
        lgd_tensor_destroy(tc);
        lgd_tensor_destroy(x);
    }
    ck_assert_msg(memcmp(out[0], out[1], (size_t)(B * D) * sizeof(float)) != 0,
                  "the class does not change the samples");
    double e0 = rel_err(out[2], out[0], (size_t)D);
    double e1 = rel_err(out[2] + D, out[1] + D, (size_t)D);
    ck_assert_msg(e0 < 1e-5 && e1 < 1e-5, "mixed-class rows differ from single-class rows "
                  "(%.3g, %.3g)", e0, e1);
    for (int k = 0; k < 3; k++)
        free(out[k]);
    lgd_sampler_destroy(smp);
    lgd_guidance_destroy(g);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- the loader on corrupt and mismatched files ---- */

/* A copy of the file with `from` replaced by `to` in its JSON header (length fixed). */
static unsigned char *edit_header(const unsigned char *b, size_t size, const char *from,
                                  const char *to, size_t *out_size)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    ck_assert(8 + n <= size);
    char *hdr = malloc(n + 1);
    memcpy(hdr, b + 8, n);
    hdr[n] = 0;
    char *at = strstr(hdr, from);
    ck_assert_msg(at != NULL, "\"%s\" not in the header", from);
    size_t nn = n - strlen(from) + strlen(to);
    unsigned char *o = malloc(8 + nn + (size - 8 - n));
    for (int i = 0; i < 8; i++)
        o[i] = (unsigned char)(nn >> (8 * i));
    size_t pre = (size_t)(at - hdr);
    memcpy(o + 8, hdr, pre);
    memcpy(o + 8 + pre, to, strlen(to));
    memcpy(o + 8 + pre + strlen(to), at + strlen(from), n - pre - strlen(from));
    memcpy(o + 8 + nn, b + 8 + n, size - 8 - n);
    *out_size = 8 + nn + (size - 8 - n);
    free(hdr);
    return o;
}

static void expect_load_error(lgd_context *ctx, const unsigned char *b, size_t size,
                              lgd_status want, const char *needle)
{
    lgd_network *net = (lgd_network *)0x1;
    lgd_context_clear_error(ctx);
    lgd_status st = lgd_network_load_memory(ctx, b, size, &net);
    ck_assert_msg(st == want, "status %d, expected %d (%s)", (int)st, (int)want,
                  lgd_context_last_error(ctx));
    ck_assert_ptr_null(net);
    ck_assert_msg(strstr(lgd_context_last_error(ctx), needle) != NULL,
                  "message \"%s\" does not mention \"%s\"", lgd_context_last_error(ctx), needle);
}

/* A network file with no tensors, only the metadata members given (JSON, no braces). */
static unsigned char *metadata_only_file(const char *members, size_t *size)
{
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr, "{\"__metadata__\":{%s}}", members);
    ck_assert(n > 0 && (size_t)n < sizeof hdr);
    unsigned char *b = malloc(8 + (size_t)n);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, hdr, (size_t)n);
    *size = 8 + (size_t)n;
    return b;
}

/* Regression (hardening issue, finding 1): a `layer` network whose lgd.input_shape has
 * parts each within range but a product that overflows int64 loaded with a small (here
 * wrapped to 0 or garbage) dim, and the first forward pass wrote past a heap buffer
 * (nearest upsampling; group norm the same). It must be refused at load. */
START_TEST(input_shape_product_overflow_is_refused)
{
    lgd_context *ctx = tu_context(0);
    const char *shapes[] = { "16777216,16777216,65536", /* 2^64: wraps to 0 */
                             "16777215,16777215,16777215", "65537,65537,65537",
                             "16777216,16777216" /* C,T: 2^48 is just too large */ };
    const char *layers[] = {
        "\"lgd.layer\":\"upsample\",\"lgd.conv_resample\":\"0\"",
        "\"lgd.layer\":\"group_norm\",\"lgd.num_groups\":\"1\"",
        "\"lgd.layer\":\"silu\"",
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t j = 0; j < sizeof layers / sizeof layers[0]; j++) {
            char members[512];
            snprintf(members, sizeof members,
                     "\"lgd.format\":\"1\",\"lgd.architecture\":\"layer\",%s,"
                     "\"lgd.input_shape\":\"%s\"", layers[j], shapes[i]);
            size_t size;
            unsigned char *b = metadata_only_file(members, &size);
            expect_load_error(ctx, b, size, LGD_ERR_FORMAT, "too large");
            free(b);
        }
    /* found by fuzz_weights_structured: refused as malformed files (LGD_ERR_FORMAT), not
     * as internal errors: a resblock with an even kernel, a time embedding over a
     * spatial input */
    {
        const char *bad[][2] = {
            { "\"lgd.layer\":\"resblock\",\"lgd.out_channels\":\"4\",\"lgd.time_embed_dim\":\"8\","
              "\"lgd.num_groups\":\"1\",\"lgd.kernel_size\":\"2\",\"lgd.input_shape\":\"4,4,4\"",
              "must be odd" },
            { "\"lgd.layer\":\"time_embedding\",\"lgd.time_embed_dim\":\"8\",\"lgd.hidden\":\"8\","
              "\"lgd.input_shape\":\"4,2,2\"",
              "one value per channel" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char members[512];
            snprintf(members, sizeof members,
                     "\"lgd.format\":\"1\",\"lgd.architecture\":\"layer\",%s", bad[i][0]);
            size_t sz;
            unsigned char *f = metadata_only_file(members, &sz);
            expect_load_error(ctx, f, sz, LGD_ERR_FORMAT, bad[i][1]);
            free(f);
        }
    }
    /* the same file with a sane shape loads and runs: 2 x 3 x 4 upsampled to 2 x 6 x 8 */
    size_t size;
    unsigned char *b = metadata_only_file(
        "\"lgd.format\":\"1\",\"lgd.architecture\":\"layer\",\"lgd.layer\":\"upsample\","
        "\"lgd.conv_resample\":\"0\",\"lgd.input_shape\":\"2,3,4\"", &size);
    lgd_network *net = NULL;
    TU_OK(ctx, lgd_network_load_memory(ctx, b, size, &net));
    ck_assert_int_eq(lgd_network_dim(net), 24);
    ck_assert_int_eq(lgd_network_out_dim(net), 96);
    float xin[24], yout[96];
    for (int i = 0; i < 24; i++)
        xin[i] = (float)i;
    lgd_tensor *x = tu_tensor(ctx, 1, 24, xin), *y = tu_tensor(ctx, 1, 96, NULL);
    TU_OK(ctx, lgd_network_forward(net, x, 0.5f, NULL, y));
    TU_OK(ctx, lgd_tensor_download(y, yout, 96));
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 6; h++)
            for (int w = 0; w < 8; w++)
                ck_assert_float_eq(yout[(c * 6 + h) * 8 + w], xin[(c * 3 + h / 2) * 4 + w / 2]);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(y);
    lgd_network_destroy(net);
    free(b);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(loader_refuses_bad_files)
{
    lgd_context *ctx = tu_context(0);
    size_t size, es;
    char *path = fixture_path("unet", ".safetensors");
    unsigned char *b = read_all(path, &size), *e;
    lgd_network *net;
    size_t before, after;
    lgd_context_memory_usage(ctx, &before, NULL);
    TU_OK(ctx, lgd_network_load_memory(ctx, b, size, &net));
    int64_t params = lgd_network_parameter_count(net);
    ck_assert_int_gt(params, 1000);
    /* loading holds one backend buffer: the weights, as floats */
    lgd_context_memory_usage(ctx, &after, NULL);
    ck_assert_msg(after - before == (size_t)params * sizeof(float),
                  "loading holds %zu bytes, the weights are %zu", after - before,
                  (size_t)params * sizeof(float));
    lgd_network_destroy(net);
    lgd_context_memory_usage(ctx, &after, NULL);
    ck_assert_msg(after == before, "destroying the network left %zu bytes", after - before);

    /* truncated anywhere: a clean format error */
    size_t stride = size / 97 + 1;
    for (size_t cut = 0; cut < size; cut += stride)
        expect_load_error(ctx, b, cut, LGD_ERR_FORMAT, "");
    /* a weight renamed: missing and unexpected */
    e = edit_header(b, size, "\"out.2.weight\"", "\"out.9.weight\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "out.2.weight");
    free(e);
    /* a hyperparameter that changes the shapes */
    e = edit_header(b, size, "\"lgd.model_channels\":\"16\"", "\"lgd.model_channels\":\"8\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "the architecture needs");
    free(e);
    e = edit_header(b, size, "\"lgd.channel_mult\":\"1,2\"", "\"lgd.channel_mult\":\"1,x\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "lgd.channel_mult");
    free(e);
    e = edit_header(b, size, "\"lgd.architecture\":\"unet\"", "\"lgd.architecture\":\"vit\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "unknown lgd.architecture");
    free(e);
    e = edit_header(b, size, "\"lgd.format\":\"1\"", "\"lgd.format\":\"7\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "lgd.format");
    free(e);
    e = edit_header(b, size, "\"lgd.num_heads\":\"2\"", "\"lgd.num_heads\":\"3\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "heads");
    free(e);
    e = edit_header(b, size, "\"lgd.image_size\":\"8\"", "\"lgd.image_size\":\"7\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "divisible");
    free(e);
    e = edit_header(b, size, "\"lgd.prediction\":\"eps\"", "\"lgd.prediction\":\"flow\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_FORMAT, "lgd.prediction");
    free(e);
    /* a dtype the loader does not read */
    e = edit_header(b, size, "\"dtype\":\"F32\"", "\"dtype\":\"I32\"", &es);
    expect_load_error(ctx, e, es, LGD_ERR_UNSUPPORTED, "I32");
    free(e);
    /* a byte flipped in every 1/50 of the header: never a crash */
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    for (size_t at = 8; at < 8 + n; at += n / 50 + 1) {
        unsigned char keep = b[at];
        b[at] ^= 0x5a;
        lgd_network *nn = NULL;
        lgd_status st = lgd_network_load_memory(ctx, b, size, &nn);
        if (st == LGD_OK)
            lgd_network_destroy(nn);
        else
            ck_assert_ptr_null(nn);
        b[at] = keep;
    }
    /* missing file */
    TU_FAILS(ctx, LGD_ERR_IO, lgd_network_load(ctx, "/nonexistent/x.safetensors", &net));
    free(b);
    free(path);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(bad_calls)
{
    lgd_context *ctx = tu_context(0);
    fixture fx, cx, lx;
    fixture_load(ctx, "mlp", &fx);
    fixture_load(ctx, "mlp_cond", &cx);
    fixture_load(ctx, "conv2d_stride2", &lx);
    lgd_tensor *x = tu_tensor(ctx, 2, fx.dim, NULL), *o = tu_tensor(ctx, 2, fx.dim, NULL);
    lgd_tensor *wrong = tu_tensor(ctx, 2, fx.dim + 1, NULL), *o3 = tu_tensor(ctx, 3, fx.dim, NULL);
    lgd_tensor *c = tu_tensor(ctx, 2, cx.cond_dim, NULL);
    lgd_network *net = NULL;
    lgd_model *m = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_load(ctx, NULL, &net));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_load_memory(ctx, NULL, 10, &net));
    ck_assert_int_eq(lgd_network_load(NULL, "x", &net), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_network_forward(fx.net, wrong, 1.0f, NULL, o));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_network_forward(fx.net, x, 1.0f, NULL, o3));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_forward(fx.net, x, NAN, NULL, o));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_forward(fx.net, x, 1.0f, c, o));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_forward(cx.net, x, 1.0f, NULL, o));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_forward(fx.net, NULL, 1.0f, NULL, o));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_network_vjp(fx.net, x, 1.0f, NULL, wrong, o, NULL));
    ck_assert_int_eq(lgd_network_forward(NULL, x, 1.0f, NULL, o), LGD_ERR_INVALID_ARGUMENT);
    /* a layer whose output size differs cannot be a denoiser */
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_model_create_from_network(ctx, lx.net, NULL, &m));
    ck_assert_ptr_null(m);
    /* a discrete-time file without a schedule: the adapter refuses it */
    lgd_adapter_options ao = LGD_ADAPTER_OPTIONS_INIT;
    ck_assert_int_eq(lgd_network_adapter_options(fx.net, &ao), LGD_OK);
    if (ao.time_input <= LGD_TIME_DISCRETE_ROUND && !ao.alphas_cumprod) {
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_from_network(ctx, fx.net, NULL, &m));
    }
    /* another context's network */
    lgd_context *other = tu_context(0);
    TU_FAILS(other, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_from_network(other, fx.net, NULL, &m));
    lgd_context_destroy(other);
    ck_assert_ptr_null(lgd_network_metadata(fx.net, "no.such.key"));
    ck_assert_str_eq(lgd_network_metadata(fx.net, "lgd.architecture"), "mlp");
    lgd_network_destroy(NULL);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(o);
    lgd_tensor_destroy(o3);
    lgd_tensor_destroy(wrong);
    lgd_tensor_destroy(c);
    fixture_free(&fx);
    fixture_free(&cx);
    fixture_free(&lx);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(all_fixtures_present)
{
    DIR *d = opendir(LGD_FIXTURE_DIR);
    ck_assert_msg(d != NULL, "no fixture directory %s", LGD_FIXTURE_DIR);
    closedir(d);
    for (size_t i = 0; i < N_FIXTURES; i++) {
        char *a = fixture_path(expected_fixtures[i], ".safetensors");
        char *b = fixture_path(expected_fixtures[i], ".ref.safetensors");
        FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
        ck_assert_msg(fa && fb, "fixture %s is missing (tools/make_fixtures.py)",
                      expected_fixtures[i]);
        fclose(fa);
        fclose(fb);
        free(a);
        free(b);
    }
}
END_TEST

/* A conditional network called without its condition: an error, not a crash; and the
 * adapter getter writes only the caller's struct. */
START_TEST(conditional_network_without_condition)
{
    lgd_context *ctx = tu_context(1);
    char *path = fixture_path("mlp_cond", ".safetensors");
    lgd_model *m = NULL;
    lgd_network *net = NULL;
    TU_OK(ctx, lgd_model_load(ctx, path, &m));
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    free(path);
    ck_assert_int_gt(lgd_model_cond_dim(m), 0);
    int64_t dim = lgd_model_dim(m);
    lgd_tensor *x = tu_tensor(ctx, 2, dim, NULL), *out = tu_tensor(ctx, 2, dim, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, x, 1.0f, NULL, out));
    ck_assert(strstr(lgd_context_last_error(ctx), "conditional") != NULL);
    float t = 0.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_network_time(m, 1.0f, NULL));
    TU_OK(ctx, lgd_model_network_time(m, 1.0f, &t));
    lgd_adapter_options small;
    memset(&small, 0, sizeof small);
    small.struct_size = 8;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_adapter_options(net, &small));
    lgd_adapter_options ao = LGD_ADAPTER_OPTIONS_INIT;
    TU_OK(ctx, lgd_network_adapter_options(net, &ao));
    ck_assert_uint_eq(ao.struct_size, sizeof ao);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_network_adapter_options(net, NULL));
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(out);
    lgd_network_destroy(net);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("network");
    TCase *tp = tcase_create("parity");
    tcase_set_timeout(tp, 300);
    tcase_add_test(tp, all_fixtures_present);
    tcase_add_loop_test(tp, parity_with_pytorch, 0, (int)N_FIXTURES);
    tcase_add_loop_test(tp, vjp_matches_finite_differences, 0, (int)N_FIXTURES);
    tcase_add_loop_test(tp, rows_threads_and_reuse, 0, 4);
    suite_add_tcase(s, tp);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 300);
    tcase_add_test(tm, model_from_network_matches_adapter_formula);
    tcase_add_test(tm, guided_sampling_with_loaded_unet);
    tcase_add_test(tm, conditional_unet_sampling);
    tcase_add_test(tm, conditional_network_without_condition);
    suite_add_tcase(s, tm);
    TCase *tb = tcase_create("bad_input");
    tcase_set_timeout(tb, 300);
    tcase_add_test(tb, loader_refuses_bad_files);
    tcase_add_test(tb, input_shape_product_overflow_is_refused);
    tcase_add_test(tb, bad_calls);
    suite_add_tcase(s, tb);
    return tu_run(s);
}
