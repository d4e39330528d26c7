/*
 * test_sample_tool.c - the `lgd sample` subcommand, run small as a child process ($LGD_TOOL,
 * set by meson) in a temporary directory:
 *   - every guidance kind on a fixture network (tests/fixtures/nn), byte for byte equal to
 *     the same run made here through the library (the reference), and exact guidance on a
 *     Gaussian mixture;
 *   - the paper's 1-D mixture: unguided samples have the prior's moments, exact guidance
 *     gives the target N(-1, 0.2^2) (App. B.1);
 *   - a weighted sum of losses equals lgd_loss_create_sum's; per-row targets and
 *     condition rows;
 *   - .npy round trip: the output's header is the npy module's, its shape the model's;
 *   - --rows: two halves concatenated are the whole run's bytes, with batches smaller than
 *     the rows, on networks whose rows depend on the batch (U-Nets);
 *   - the diagnostics CSV (one line per step, the sampler's grid, ESS in [1, n]) and the
 *     PNG grid of an image model;
 *   - a plugin loss (plugins/inpainting) equal to the library's own loading of it, and a
 *     plugin that fails;
 *   - bad input: each case's exit status (1 run-time, 2 usage) and message, and nothing
 *     left under the output name (nor its temporary).
 *
 * The reference runs use the shared liblgd (a plugin needs the host's copy). The tool and
 * the references use one thread each (OMP_NUM_THREADS=1 from meson, --threads 1), since
 * OpenBLAS and oneDNN may round differently with another thread count. The child is not
 * traced by the valgrind pass; LGD_TEST_QUICK=1 (that pass) shrinks the statistical test.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"
#include "testutil.h"
#include "tooltest.h"

#ifndef LGD_FIXTURE_DIR
#error "LGD_FIXTURE_DIR must name tests/fixtures/nn"
#endif

#define FIX(name) LGD_FIXTURE_DIR "/" name

/* ---- the temporary directory and files ---- */

typedef struct scratch {
    char dir[256];
    char log[512];
} scratch;

static void scratch_open(scratch *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/lgd-sample-test.XXXXXX");
    ck_assert_msg(mkdtemp(s->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(s->log, sizeof s->log, "%s/log.txt", s->dir);
}

static void scratch_close(scratch *s)
{
    tt_remove_dir(s->dir);
}

/* dir/name into a static-free buffer of the caller */
static const char *path_in(const scratch *s, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", s->dir, name);
    return buf;
}

static void write_npy(const char *path, const float *data, const int64_t *shape, int ndim)
{
    char err[256] = "";
    ck_assert_msg(lgd_npy_write(path, data, shape, ndim, err, sizeof err) == 0, "%s", err);
}

/* A 1-D array of n floats: start, start + step, ... */
static void write_ramp(const char *path, int64_t n, float start, float step)
{
    float *v = malloc((size_t)n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; i < n; i++)
        v[i] = start + step * (float)i;
    write_npy(path, v, &n, 1);
    free(v);
}

typedef struct array {
    float *data;
    int64_t shape[LGD_NPY_MAX_NDIM];
    int ndim;
    int64_t numel;
} array;

static array read_npy(const char *path)
{
    array a;
    char err[256] = "";
    ck_assert_msg(lgd_npy_read(path, &a.data, a.shape, &a.ndim, err, sizeof err) == 0, "%s",
                  err);
    a.numel = 1;
    for (int i = 0; i < a.ndim; i++)
        a.numel *= a.shape[i];
    return a;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs the tool with args (NULL-terminated, after "lgd sample"); returns its status and
 * leaves its output in s->log. */
static int run_sample(const scratch *s, const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = tt_tool_path();
    argv[n++] = "sample";
    for (int i = 0; args[i]; i++) {
        ck_assert_int_lt(n, 62);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return tt_run_tool(s->log, (char *const *)argv);
}

/* As run_sample, and asserts success (showing the log otherwise). */
static void run_ok(const scratch *s, const char *const *args)
{
    int rc = run_sample(s, args);
    if (rc != 0) {
        char *text = tt_slurp(s->log, NULL);
        ck_abort_msg("lgd sample exited %d:\n%s", rc, text);
    }
}

/* ---- the reference: the same run through the library ---- */

typedef struct ref_run {
    lgd_guidance_kind kind;
    int32_t draws;
    int64_t samples, batch;   /* the run's grid */
    int32_t steps;
    float sigma_max;
    uint64_t seed;
    const float *cond;        /* [samples][cond_dim] or NULL */
} ref_run;

/* Rows [0, samples) of the run with model and loss (loss NULL for none), in the tool's
 * grid of batches; malloc'd [samples][dim]. */
static float *reference(lgd_context *ctx, lgd_model *model, lgd_loss *loss, const ref_run *r)
{
    const int64_t dim = lgd_model_dim(model), cdim = lgd_model_cond_dim(model);
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = r->kind;
    if (r->kind == LGD_GUIDANCE_MC || r->kind == LGD_GUIDANCE_EXACT)
        go.n_samples = r->draws;
    go.seed = r->seed;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, model, r->kind == LGD_GUIDANCE_NONE ? NULL : loss, &go,
                                   &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.steps = r->steps;
    so.sigma_max = r->sigma_max;
    lgd_sampler *smp = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &so, &smp));
    float *out = malloc((size_t)(r->samples * dim) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int64_t r0 = 0; r0 < r->samples; r0 += r->batch) {
        int64_t b = r->samples - r0 < r->batch ? r->samples - r0 : r->batch;
        lgd_tensor *x = tu_tensor(ctx, b, dim, NULL), *c = NULL;
        if (r->cond) {
            c = tu_tensor(ctx, b, cdim, r->cond + r0 * cdim);
            TU_OK(ctx, lgd_guidance_set_condition(g, c));
        }
        TU_OK(ctx, lgd_sampler_run(smp, x, r->seed, (uint64_t)r0, NULL, NULL));
        TU_OK(ctx, lgd_tensor_download(x, out + r0 * dim, b * dim));
        lgd_tensor_destroy(x);
        lgd_tensor_destroy(c);
    }
    lgd_sampler_destroy(smp);
    lgd_guidance_destroy(g);
    return out;
}

/* Asserts that the tool's output file holds exactly ref's rows [rows][dim]. */
static void assert_same(const char *path, const float *ref, int64_t rows, int64_t dim,
                        const char *what)
{
    array a = read_npy(path);
    ck_assert_msg(a.shape[0] == rows && a.numel == rows * dim,
                  "%s: %lld rows, %lld values; expected %lld x %lld", what,
                  (long long)a.shape[0], (long long)a.numel, (long long)rows, (long long)dim);
    for (int64_t i = 0; i < a.numel; i++)
        ck_assert_msg(memcmp(&a.data[i], &ref[i], sizeof(float)) == 0,
                      "%s: value %lld is %.9g, the library's %.9g", what, (long long)i,
                      (double)a.data[i], (double)ref[i]);
    free(a.data);
}

static lgd_model *load_model(lgd_context *ctx, const char *path)
{
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_load(ctx, path, &m));
    return m;
}

/* ---- tests ---- */

/* none, DPS and LGD-MC on the MLP fixture: the library's bytes; exact is refused. */
START_TEST(guidance_kinds_on_network)
{
    scratch s;
    scratch_open(&s);
    char target[512], out[512];
    path_in(&s, "target.npy", target, sizeof target);
    path_in(&s, "out.npy", out, sizeof out);
    write_ramp(target, 8, -0.5f, 0.125f);
    char loss_spec[600];
    snprintf(loss_spec, sizeof loss_spec, "sqerr:%s", target);

    lgd_context *ctx = tu_context(1);
    lgd_model *model = load_model(ctx, FIX("mlp.safetensors"));
    float y[8];
    for (int i = 0; i < 8; i++)
        y[i] = -0.5f + 0.125f * (float)i;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 8, y, 1, NULL, &loss));

    const char *kinds[] = { "none", "dps", "mc:3" };
    const lgd_guidance_kind kk[] = { LGD_GUIDANCE_NONE, LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC };
    for (int k = 0; k < 3; k++) {
        const char *args[] = { "--model", FIX("mlp.safetensors"), "--loss", loss_spec,
                               "--guidance", kinds[k], "--samples", "5", "--batch", "3",
                               "--steps", "4", "--sigma-max", "5", "--seed", "7",
                               "--threads", "1", "--out", out, NULL };
        run_ok(&s, args);
        ref_run r = { kk[k], 3, 5, 3, 4, 5.0f, 7, NULL };
        float *ref = reference(ctx, model, loss, &r);
        assert_same(out, ref, 5, 8, kinds[k]);
        free(ref);
        char *text = tt_slurp(s.log, NULL);
        ck_assert_msg(strstr(text, "wrote ") && strstr(text, "[5][8] float32"),
                      "no summary:\n%s", text);
        free(text);
    }
    /* exact needs an exact posterior: a run-time error naming it, nothing written */
    unlink(out);
    const char *exact[] = { "--model", FIX("mlp.safetensors"), "--loss", loss_spec,
                            "--guidance", "exact:4", "--samples", "2", "--steps", "2",
                            "--out", out, NULL };
    ck_assert_int_eq(run_sample(&s, exact), 1);
    char *text = tt_slurp(s.log, NULL);
    ck_assert_msg(strstr(text, "exact posterior"), "no reason:\n%s", text);
    free(text);
    ck_assert(!exists(out));
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    scratch_close(&s);
}
END_TEST

/* gmm:MEANS:VARS:WEIGHTS with exact and LGD-MC guidance, against the library. */
START_TEST(gmm_exact_and_mc)
{
    scratch s;
    scratch_open(&s);
    char mu_p[512], var_p[512], w_p[512], a_p[512], out[512], model_spec[2048], loss_spec[600];
    const float mu[6] = { -1.0f, 0.5f, 0.0f, 1.0f, 1.0f, -0.5f };  /* [3][2] */
    const float var[6] = { 0.04f, 0.09f, 0.25f, 0.01f, 0.04f, 0.04f }; /* [3][2] diagonal */
    const float w[3] = { 0.2f, 0.3f, 0.5f };
    const float a[2] = { 2.0f, -1.0f };
    const int64_t s32[2] = { 3, 2 }, s3 = 3, s2 = 2;
    write_npy(path_in(&s, "mu.npy", mu_p, sizeof mu_p), mu, s32, 2);
    write_npy(path_in(&s, "var.npy", var_p, sizeof var_p), var, s32, 2);
    write_npy(path_in(&s, "w.npy", w_p, sizeof w_p), w, &s3, 1);
    write_npy(path_in(&s, "a.npy", a_p, sizeof a_p), a, &s2, 1);
    path_in(&s, "out.npy", out, sizeof out);
    snprintf(model_spec, sizeof model_spec, "gmm:%s:%s:%s", mu_p, var_p, w_p);
    snprintf(loss_spec, sizeof loss_spec, "logistic:%s:0.5", a_p);

    lgd_context *ctx = tu_context(1);
    lgd_model *model = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 2, 3, w, mu, var, LGD_COVARIANCE_DIAGONAL, &model));
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 2, a, 0.5f, &loss));
    const char *kinds[] = { "exact:6", "mc:6" };
    const lgd_guidance_kind kk[] = { LGD_GUIDANCE_EXACT, LGD_GUIDANCE_MC };
    for (int k = 0; k < 2; k++) {
        const char *args[] = { "--model", model_spec, "--loss", loss_spec, "--guidance",
                               kinds[k], "--samples", "7", "--batch", "4", "--steps", "5",
                               "--threads", "1", "--out", out, NULL };
        run_ok(&s, args);
        ref_run r = { kk[k], 6, 7, 4, 5, 80.0f, 0, NULL };
        float *ref = reference(ctx, model, loss, &r);
        assert_same(out, ref, 7, 2, kinds[k]);
        free(ref);
    }
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    scratch_close(&s);
}
END_TEST

/* Mean and standard deviation of the n values of an output file. */
static void moments(const char *path, int64_t n, double *mean, double *sd)
{
    array a = read_npy(path);
    ck_assert_int_eq(a.numel, n);
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += a.data[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += (a.data[i] - *mean) * (a.data[i] - *mean);
    *sd = sqrt(s2 / (double)(n - 1));
    free(a.data);
}

/* The paper's mixture: the prior's moments unguided, the target N(-1, 0.2^2) with exact
 * guidance (App. B.1). Tolerances are about 4 standard errors. */
START_TEST(mixture1d_statistics)
{
    scratch s;
    scratch_open(&s);
    char out[512];
    path_in(&s, "m.npy", out, sizeof out);
    const char *q = getenv("LGD_TEST_QUICK");
    const int quick = q && *q && strcmp(q, "0");
    const char *n_text = quick ? "1000" : "4000";
    const int64_t n = quick ? 1000 : 4000;
    double mean, sd;
    const char *prior[] = { "--model", "mixture1d", "--guidance", "none", "--samples", n_text,
                            "--batch", "500", "--steps", "30", "--out", out, NULL };
    run_ok(&s, prior);
    moments(out, n, &mean, &sd);
    /* 0.5 N(-1, 0.04) + 0.5 N(1, 0.04): mean 0, sd sqrt(1.04) */
    ck_assert_msg(fabs(mean) < 4.0 * 1.02 / sqrt((double)n), "unguided mean %g", mean);
    ck_assert_msg(fabs(sd - sqrt(1.04)) < 0.06, "unguided sd %g", sd);
    const char *guided[] = { "--model", "mixture1d", "--loss", "mixture1d", "--guidance",
                             "exact:32", "--samples", n_text, "--batch", "500", "--steps",
                             "30", "--out", out, NULL };
    run_ok(&s, guided);
    moments(out, n, &mean, &sd);
    /* measured here: mean -0.987, sd 0.216 (4000 samples, 30 Euler steps) */
    ck_assert_msg(fabs(mean + 1.0) < 0.05, "guided mean %g, target -1", mean);
    ck_assert_msg(sd > 0.15 && sd < 0.3, "guided sd %g, target 0.2", sd);
    scratch_close(&s);
}
END_TEST

/* --loss A --loss-weight 0.5 --loss B --loss-weight 2 is lgd_loss_create_sum's loss; a
 * per-row target ([samples][dim]) gives each row its own. */
START_TEST(loss_sum_and_per_row_targets)
{
    scratch s;
    scratch_open(&s);
    char t1[512], t2[512], rows_p[512], out[512], l1[600], l2[600], lr[600];
    write_ramp(path_in(&s, "t1.npy", t1, sizeof t1), 8, 0.25f, 0.0f);
    write_ramp(path_in(&s, "t2.npy", t2, sizeof t2), 8, -1.0f, 0.25f);
    float per_row[6 * 8];
    for (int i = 0; i < 48; i++)
        per_row[i] = 0.05f * (float)(i % 13) - 0.3f;
    const int64_t rs[2] = { 6, 8 };
    write_npy(path_in(&s, "rows.npy", rows_p, sizeof rows_p), per_row, rs, 2);
    path_in(&s, "out.npy", out, sizeof out);
    snprintf(l1, sizeof l1, "sqerr:%s", t1);
    snprintf(l2, sizeof l2, "sqerr:%s", t2);
    snprintf(lr, sizeof lr, "sqerr:%s", rows_p);

    lgd_context *ctx = tu_context(1);
    lgd_model *model = load_model(ctx, FIX("mlp.safetensors"));
    float y1[8], y2[8];
    for (int i = 0; i < 8; i++) {
        y1[i] = 0.25f;
        y2[i] = -1.0f + 0.25f * (float)i;
    }
    lgd_loss *a = NULL, *b = NULL, *sum = NULL, *rowloss = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 8, y1, 1, NULL, &a));
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 8, y2, 1, NULL, &b));
    lgd_loss *terms[2] = { a, b };
    const float weights[2] = { 0.5f, 2.0f };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, weights, &sum));
    const char *args[] = { "--model", FIX("mlp.safetensors"), "--loss", l1, "--loss-weight",
                           "0.5", "--loss", l2, "--loss-weight=2", "--guidance", "mc:2",
                           "--samples", "6", "--batch", "4", "--steps", "3", "--sigma-max", "3",
                           "--threads", "1", "--out", out, NULL };
    run_ok(&s, args);
    ref_run r = { LGD_GUIDANCE_MC, 2, 6, 4, 3, 3.0f, 0, NULL };
    float *ref = reference(ctx, model, sum, &r);
    assert_same(out, ref, 6, 8, "weighted sum");
    free(ref);
    /* per-row target, one batch of all 6 rows (the reference's loss holds 6 rows) */
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 8, per_row, 6, NULL, &rowloss));
    const char *rargs[] = { "--model", FIX("mlp.safetensors"), "--loss", lr, "--guidance",
                            "dps", "--samples", "6", "--batch", "6", "--steps", "3",
                            "--sigma-max", "3", "--threads", "1", "--out", out, NULL };
    run_ok(&s, rargs);
    ref_run rr = { LGD_GUIDANCE_DPS, 1, 6, 6, 3, 3.0f, 0, NULL };
    ref = reference(ctx, model, rowloss, &rr);
    assert_same(out, ref, 6, 8, "per-row target");
    free(ref);
    lgd_loss_destroy(a);
    lgd_loss_destroy(b);
    lgd_loss_destroy(sum);
    lgd_loss_destroy(rowloss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    scratch_close(&s);
}
END_TEST

/* Condition rows: --class K and --cond labels on the conditional MLP, against the library. */
START_TEST(condition_rows)
{
    scratch s;
    scratch_open(&s);
    char labels_p[512], out[512];
    const float labels[5] = { 2, 0, 1, 1, 2 };
    const int64_t n5 = 5;
    write_npy(path_in(&s, "labels.npy", labels_p, sizeof labels_p), labels, &n5, 1);
    path_in(&s, "out.npy", out, sizeof out);
    lgd_context *ctx = tu_context(1);
    lgd_model *model = load_model(ctx, FIX("mlp_cond.safetensors"));
    float onehot[5 * 3] = { 0 }, same[5 * 3] = { 0 };
    for (int i = 0; i < 5; i++) {
        onehot[i * 3 + (int)labels[i]] = 1.0f;
        same[i * 3 + 1] = 1.0f;
    }
    const char *cond_args[] = { "--model", FIX("mlp_cond.safetensors"), "--guidance", "none",
                                "--cond", labels_p, "--samples", "5", "--batch", "2",
                                "--steps", "3", "--sigma-max", "3", "--threads", "1", "--out",
                                out, NULL };
    run_ok(&s, cond_args);
    ref_run r = { LGD_GUIDANCE_NONE, 0, 5, 2, 3, 3.0f, 0, onehot };
    float *ref = reference(ctx, model, NULL, &r);
    assert_same(out, ref, 5, 8, "--cond labels");
    free(ref);
    const char *class_args[] = { "--model", FIX("mlp_cond.safetensors"), "--guidance", "none",
                                 "--class", "1", "--samples", "5", "--batch", "2", "--steps",
                                 "3", "--sigma-max", "3", "--threads", "1", "--out", out,
                                 NULL };
    run_ok(&s, class_args);
    r.cond = same;
    ref = reference(ctx, model, NULL, &r);
    assert_same(out, ref, 5, 8, "--class 1");
    free(ref);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    scratch_close(&s);
}
END_TEST

/* The file's bytes: header (the npy module's for its shape) and data. */
static unsigned char *file_bytes(const char *path, size_t *n)
{
    return (unsigned char *)tt_slurp(path, n);
}

/* The data bytes of a float32 .npy file of `values` floats (after its header). */
static const unsigned char *npy_data(const unsigned char *bytes, size_t n, int64_t values)
{
    ck_assert_uint_ge(n, (size_t)values * 4);
    return bytes + n - (size_t)values * 4;
}

/* --rows halves concatenated are the whole run, on U-Nets (whose rows depend on the batch
 * they are computed in), with --batch below the rows; a per-row target and labels too. */
START_TEST(rows_split_is_the_whole)
{
    scratch s;
    scratch_open(&s);
    char target[512], labels_p[512], whole[512], h1[512], h2[512], mid[512], spec[600];
    const int64_t N = 7, D = 192; /* unet: [3][8][8] */
    float *rows = malloc((size_t)(N * D) * sizeof *rows);
    ck_assert_ptr_nonnull(rows);
    for (int64_t i = 0; i < N * D; i++)
        rows[i] = 0.01f * (float)(i % 37) - 0.2f;
    const int64_t ts[2] = { N, D };
    write_npy(path_in(&s, "target.npy", target, sizeof target), rows, ts, 2);
    free(rows);
    const float labels[7] = { 0, 1, 2, 3, 3, 2, 1 };
    write_npy(path_in(&s, "labels.npy", labels_p, sizeof labels_p), labels, &N, 1);
    path_in(&s, "whole.npy", whole, sizeof whole);
    path_in(&s, "h1.npy", h1, sizeof h1);
    path_in(&s, "h2.npy", h2, sizeof h2);
    path_in(&s, "mid.npy", mid, sizeof mid);
    snprintf(spec, sizeof spec, "sqerr:%s", target);

    const char *models[] = { FIX("unet.safetensors"), FIX("unet_cond_ss.safetensors") };
    for (int k = 0; k < 2; k++) {
        /* two threads: OpenBLAS and oneDNN then split a batch's work by its size, so a
         * row's bytes depend on the batch it is computed in */
        const char *base[] = { "--model", models[k], "--loss", spec, "--guidance", "mc:2",
                               "--samples", "7", "--batch", "3", "--steps", "3",
                               "--sigma-max", "5", "--threads", "2", "--seed", "11",
                               k ? "--cond" : "--quiet", k ? labels_p : "--quiet" };
        const char *parts[4][4] = { { "0:7", whole }, { "0:4", h1 }, { "4:7", h2 },
                                    { "2:5", mid } };
        for (int p = 0; p < 4; p++) {
            const char *args[32];
            int n = 0;
            for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
                args[n++] = base[i];
            args[n++] = "--rows";
            args[n++] = parts[p][0];
            args[n++] = "--out";
            args[n++] = parts[p][1];
            args[n] = NULL;
            run_ok(&s, args);
        }
        array a = read_npy(h1), b = read_npy(h2), w = read_npy(whole), m = read_npy(mid);
        ck_assert_msg(a.ndim == 4 && a.shape[0] == 4 && a.shape[1] == 3 && a.shape[2] == 8 &&
                          a.shape[3] == 8 && b.shape[0] == 3 && w.shape[0] == 7 &&
                          m.shape[0] == 3, "shapes of the parts");
        size_t nw, na, nb, nm;
        unsigned char *bw = file_bytes(whole, &nw), *ba = file_bytes(h1, &na),
                      *bb = file_bytes(h2, &nb), *bm = file_bytes(mid, &nm);
        const unsigned char *dw = npy_data(bw, nw, N * D);
        ck_assert_msg(memcmp(npy_data(ba, na, 4 * D), dw, (size_t)(4 * D) * 4) == 0 &&
                          memcmp(npy_data(bb, nb, 3 * D), dw + 4 * D * 4, (size_t)(3 * D) * 4) ==
                              0,
                      "%s: rows 0:4 + 4:7 are not the whole run's bytes", models[k]);
        ck_assert_msg(memcmp(npy_data(bm, nm, 3 * D), dw + 2 * D * 4, (size_t)(3 * D) * 4) == 0,
                      "%s: rows 2:5 are not the whole run's rows 2..4", models[k]);
        free(bw);
        free(ba);
        free(bb);
        free(bm);
        free(a.data);
        free(b.data);
        free(w.data);
        free(m.data);
    }
    scratch_close(&s);
}
END_TEST

/* The output header is the npy module's for [rows][row shape]; a temporal U-Net's rows are
 * [T][C]; the output reads back with every value finite. */
START_TEST(npy_round_trip)
{
    scratch s;
    scratch_open(&s);
    char out[512];
    path_in(&s, "out.npy", out, sizeof out);
    const char *args[] = { "--model", FIX("temporal_unet.safetensors"), "--guidance", "none",
                           "--samples", "3", "--steps", "2", "--sigma-max", "5", "--out", out,
                           NULL };
    run_ok(&s, args);
    size_t n = 0;
    unsigned char *bytes = file_bytes(out, &n);
    const int64_t shape[3] = { 3, 16, 2 };
    unsigned char header[LGD_NPY_MAX_HEADER];
    size_t len = 0;
    char err[256] = "";
    ck_assert_msg(lgd_npy_header_f4(shape, 3, header, sizeof header, &len, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_uint_eq(n, len + 3 * 16 * 2 * 4);
    ck_assert_msg(memcmp(bytes, header, len) == 0, "the header is not [3][16][2] <f4");
    free(bytes);
    array a = read_npy(out);
    ck_assert_int_eq(a.ndim, 3);
    for (int64_t i = 0; i < a.numel; i++)
        ck_assert_msg(isfinite(a.data[i]), "value %lld not finite", (long long)i);
    free(a.data);
    ck_assert(!exists(path_in(&s, "out.npy.tmp", out, sizeof out)));
    scratch_close(&s);
}
END_TEST

/* One line of the diagnostics CSV into v[10]; 1 when a line was read. */
static int csv_line(char **cursor, double *v)
{
    char *line = strtok_r(NULL, "\n", cursor);
    if (!line)
        return 0;
    int k = 0;
    for (char *f = strtok(line, ","); f && k < 10; f = strtok(NULL, ","))
        v[k++] = strtod(f, NULL);
    ck_assert_int_eq(k, 10);
    return 1;
}

/* --diagnostics: one line per step, the sampler's grid, ESS in [1, n]; unguided: zeros. */
START_TEST(diagnostics_csv)
{
    scratch s;
    scratch_open(&s);
    char target[512], out[512], csv[512], spec[600];
    write_ramp(path_in(&s, "t.npy", target, sizeof target), 8, 0.1f, 0.0f);
    path_in(&s, "out.npy", out, sizeof out);
    path_in(&s, "diag.csv", csv, sizeof csv);
    snprintf(spec, sizeof spec, "sqerr:%s", target);
    lgd_context *ctx = tu_context(1);
    lgd_model *model = load_model(ctx, FIX("mlp.safetensors"));
    lgd_guidance *g = NULL;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_NONE;
    TU_OK(ctx, lgd_guidance_create(ctx, model, NULL, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.steps = 6;
    so.sigma_max = 5.0f;
    lgd_sampler *smp = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &so, &smp));
    float grid[7];
    TU_OK(ctx, lgd_sampler_sigmas(smp, grid, 7));
    const char *kinds[] = { "mc:4", "none" };
    for (int k = 0; k < 2; k++) {
        const char *args[] = { "--model", FIX("mlp.safetensors"), "--loss", spec, "--guidance",
                               kinds[k], "--samples", "5", "--batch", "2", "--steps", "6",
                               "--sigma-max", "5", "--out", out, "--diagnostics", csv, NULL };
        run_ok(&s, args);
        char *text = tt_slurp(csv, NULL), *cursor = NULL;
        char *head = strtok_r(text, "\n", &cursor);
        ck_assert_str_eq(head, "step,sigma,sigma_next,rows,active_rows,mean_loss,mean_ess,"
                               "min_ess,mean_grad_norm,mean_lambda");
        double v[10];
        int lines = 0;
        while (csv_line(&cursor, v)) {
            ck_assert_double_eq(v[0], lines);
            ck_assert_msg(fabs(v[1] - grid[lines]) <= 1e-6 * grid[lines] &&
                              fabs(v[2] - grid[lines + 1]) <= 1e-6 * grid[lines],
                          "step %d: sigma %g -> %g, grid %g -> %g", lines, v[1], v[2],
                          (double)grid[lines], (double)grid[lines + 1]);
            ck_assert_double_eq(v[3], 5);
            if (k == 0) {
                ck_assert_double_eq(v[4], 5);
                ck_assert_msg(v[5] > 0 && v[6] >= 1.0 && v[6] <= 4.0 && v[7] >= 1.0 &&
                                  v[7] <= v[6] + 1e-9 && v[8] > 0 && v[9] > 0,
                              "step %d: loss %g ess %g (min %g) |g| %g lambda %g", lines, v[5],
                              v[6], v[7], v[8], v[9]);
            } else {
                for (int c = 4; c < 10; c++)
                    ck_assert_double_eq(v[c], 0);
            }
            lines++;
        }
        ck_assert_int_eq(lines, 6);
        free(text);
    }
    lgd_sampler_destroy(smp);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    scratch_close(&s);
}
END_TEST

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* --png on the image U-Net: a PNG of the grid's size (5 samples of 8x8 shown at 64x64 in 3
 * columns with 2-pixel gaps: 200 x 134, RGB); refused on a non-image model. */
START_TEST(png_grid)
{
    scratch s;
    scratch_open(&s);
    char out[512], png[512];
    path_in(&s, "out.npy", out, sizeof out);
    path_in(&s, "grid.png", png, sizeof png);
    const char *args[] = { "--model", FIX("unet.safetensors"), "--guidance", "none",
                           "--samples", "5", "--steps", "2", "--sigma-max", "5", "--out", out,
                           "--png", png, NULL };
#if LGD_TOOL_HAVE_PNG
    run_ok(&s, args);
    size_t n = 0;
    unsigned char *b = file_bytes(png, &n);
    static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    ck_assert_msg(n > 33 && memcmp(b, sig, 8) == 0 && memcmp(b + 12, "IHDR", 4) == 0,
                  "not a PNG");
    ck_assert_uint_eq(be32(b + 16), 200);
    ck_assert_uint_eq(be32(b + 20), 134);
    ck_assert_uint_eq(b[24], 8); /* bit depth */
    ck_assert_uint_eq(b[25], 2); /* RGB */
    free(b);
    const char *flat[] = { "--model", "mixture1d", "--samples", "2", "--out", out, "--png",
                           png, NULL };
    ck_assert_int_eq(run_sample(&s, flat), 2);
    char *text = tt_slurp(s.log, NULL);
    ck_assert_msg(strstr(text, "--png needs an image model"), "no reason:\n%s", text);
    free(text);
#else
    ck_assert_int_eq(run_sample(&s, args), 2);
    char *text = tt_slurp(s.log, NULL);
    ck_assert_msg(strstr(text, "without libpng"), "no reason:\n%s", text);
    free(text);
#endif
    scratch_close(&s);
}
END_TEST

#ifdef LGD_INPAINTING_PLUGIN
/* plugin:PATH:inpainting:mask=..,known=..,sigma=.. against the library's own loading of
 * the plugin; a failing plugin is a run-time error with the plugin's reason. */
START_TEST(plugin_loss)
{
    scratch s;
    scratch_open(&s);
    char mask_p[512], known_p[512], out[512], spec[2048], config[1200];
    const float mask[8] = { 1, 1, 0, 0, 1, 0, 1, 0 };
    const int64_t n8 = 8;
    write_npy(path_in(&s, "mask.npy", mask_p, sizeof mask_p), mask, &n8, 1);
    write_ramp(path_in(&s, "known.npy", known_p, sizeof known_p), 8, 0.5f, -0.1f);
    path_in(&s, "out.npy", out, sizeof out);
    snprintf(config, sizeof config, "mask=%s,known=%s,sigma=0.5", mask_p, known_p);
    snprintf(spec, sizeof spec, "plugin:%s:inpainting:%s", LGD_INPAINTING_PLUGIN, config);
    const char *args[] = { "--model", FIX("mlp.safetensors"), "--loss", spec, "--guidance",
                           "mc:3", "--samples", "4", "--batch", "3", "--steps", "3",
                           "--sigma-max", "3", "--threads", "1", "--out", out, NULL };
    run_ok(&s, args);
    lgd_context *ctx = tu_context(1);
    lgd_model *model = load_model(ctx, FIX("mlp.safetensors"));
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_load_plugin(ctx, LGD_INPAINTING_PLUGIN, "inpainting", 8, config, &loss));
    ref_run r = { LGD_GUIDANCE_MC, 3, 4, 3, 3, 3.0f, 0, NULL };
    float *ref = reference(ctx, model, loss, &r);
    assert_same(out, ref, 4, 8, "plugin loss");
    free(ref);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    /* the plugin refuses its configuration: exit 1, its reason, no output */
    unlink(out);
    snprintf(spec, sizeof spec, "plugin:%s:inpainting:mask=%s/none.npy,known=%s",
             LGD_INPAINTING_PLUGIN, s.dir, known_p);
    args[3] = spec;
    ck_assert_int_eq(run_sample(&s, args), 1);
    char *text = tt_slurp(s.log, NULL);
    ck_assert_msg(strstr(text, "inpainting") && strstr(text, "none.npy"), "no reason:\n%s",
                  text);
    free(text);
    ck_assert(!exists(out));
    scratch_close(&s);
}
END_TEST
#endif

/* Bad input: the exit status, a message that names the problem, and no output file. */
START_TEST(bad_input)
{
    scratch s;
    scratch_open(&s);
    char t8[512], t5[512], bad[512], out[512], tmp[600];
    write_ramp(path_in(&s, "t8.npy", t8, sizeof t8), 8, 0.0f, 0.1f);
    write_ramp(path_in(&s, "t5.npy", t5, sizeof t5), 5, 0.0f, 0.1f);
    FILE *f = fopen(path_in(&s, "bad.npy", bad, sizeof bad), "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a npy file", f);
    fclose(f);
    path_in(&s, "out.npy", out, sizeof out);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    char sq8[600], sq5[600], sqbad[600], sqmissing[600], lin_nan[1200], gmm_bad[1200];
    snprintf(sq8, sizeof sq8, "sqerr:%s", t8);
    snprintf(sq5, sizeof sq5, "sqerr:%s", t5);
    snprintf(sqbad, sizeof sqbad, "sqerr:%s", bad);
    snprintf(sqmissing, sizeof sqmissing, "sqerr:%s/missing.npy", s.dir);
    snprintf(lin_nan, sizeof lin_nan, "linear:%s:%s:nan", t8, t8);
    snprintf(gmm_bad, sizeof gmm_bad, "gmm:%s:%s", t8, t5);
    const char *mlp = FIX("mlp.safetensors");
    struct {
        int rc;
        const char *needle;
        const char *args[12];
    } cases[] = {
        { 1, "missing.safetensors", { "--model", "missing.safetensors" } },
        { 1, "missing.npy", { "--model", mlp, "--loss", sqmissing, "--guidance", "dps" } },
        { 1, "has shape [5]", { "--model", mlp, "--loss", sq5, "--guidance", "dps" } },
        { 1, "bad.npy", { "--model", mlp, "--loss", sqbad, "--guidance", "dps" } },
        { 1, "gmm variances", { "--model", gmm_bad } },
        { 1, "exact posterior", { "--model", mlp, "--loss", sq8, "--guidance", "exact:2" } },
        { 1, "non-finite", { "--model", mlp, "--loss", sq8, "--guidance", "dps", "--scale",
                             "1e30" } },
        { 2, "unknown loss 'bogus'", { "--model", mlp, "--loss", "bogus:x", "--guidance",
                                       "dps" } },
        { 2, "SIGMA needs a number", { "--model", mlp, "--loss", lin_nan, "--guidance",
                                       "dps" } },
        { 2, "unknown guidance", { "--model", mlp, "--guidance", "magic" } },
        { 2, "mc:N needs N", { "--model", mlp, "--loss", sq8, "--guidance", "mc:0" } },
        { 2, "--steps needs", { "--model", mlp, "--steps", "0" } },
        { 2, "--samples needs", { "--model", mlp, "--samples", "-3" } },
        { 2, "goes past", { "--model", mlp, "--samples", "4", "--rows", "2:9" } },
        { 2, "--rows 3:3 is empty", { "--model", mlp, "--rows", "3:3" } },
        { 2, "--loss needs --guidance", { "--model", mlp, "--loss", sq8 } },
        { 2, "needs a --loss", { "--model", mlp, "--guidance", "dps" } },
        { 2, "--loss-weight", { "--model", mlp, "--loss-weight", "2", "--loss", sq8,
                                "--guidance", "dps" } },
        { 2, "unconditional", { "--model", mlp, "--class", "1" } },
        { 2, "conditional (cond_dim 3)", { "--model", FIX("mlp_cond.safetensors") } },
        { 2, "--model is required", { "--guidance", "none" } },
        { 2, "unknown argument", { "--model", mlp, "--bogus" } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[20];
        int n = 0, samples = 0;
        for (int k = 0; cases[i].args[k]; k++) {
            samples |= !strcmp(cases[i].args[k], "--samples");
            args[n++] = cases[i].args[k];
        }
        if (!samples) {
            args[n++] = "--samples";
            args[n++] = "3";
        }
        args[n++] = "--steps";
        args[n++] = "3";
        args[n++] = "--out";
        args[n++] = out;
        args[n] = NULL;
        int rc = run_sample(&s, args);
        char *text = tt_slurp(s.log, NULL);
        ck_assert_msg(rc == cases[i].rc, "case %zu (%s): exit %d, expected %d:\n%s", i,
                      cases[i].needle, rc, cases[i].rc, text);
        ck_assert_msg(strstr(text, cases[i].needle) != NULL,
                      "case %zu: no '%s' in the message:\n%s", i, cases[i].needle, text);
        ck_assert_msg(!exists(out) && !exists(tmp), "case %zu (%s) left %s behind", i,
                      cases[i].needle, exists(out) ? out : tmp);
        free(text);
    }
    /* a failed run leaves an existing output as it was */
    f = fopen(out, "w");
    ck_assert_ptr_nonnull(f);
    fputs("old", f);
    fclose(f);
    const char *fails[] = { "--model", mlp, "--loss", sq8, "--guidance", "dps", "--scale",
                            "1e30", "--samples", "3", "--out", out, NULL };
    ck_assert_int_eq(run_sample(&s, fails), 1);
    size_t n = 0;
    char *text = tt_slurp(out, &n);
    ck_assert_str_eq(text, "old");
    free(text);
    ck_assert(!exists(tmp));
    scratch_close(&s);
}
END_TEST

/* help, and the subcommand in the tool's list */
START_TEST(help_and_usage)
{
    scratch s;
    scratch_open(&s);
    char *help[] = { (char *)tt_tool_path(), "help", "sample", NULL };
    ck_assert_int_eq(tt_run_tool(s.log, help), 0);
    char *text = tt_slurp(s.log, NULL);
    ck_assert_msg(strstr(text, "usage: lgd sample") && strstr(text, "--rows A:B") &&
                      strstr(text, "plugin:PATH:NAME"), "usage:\n%s", text);
    free(text);
    char *list[] = { (char *)tt_tool_path(), "help", NULL };
    ck_assert_int_eq(tt_run_tool(s.log, list), 0);
    text = tt_slurp(s.log, NULL);
    ck_assert_msg(strstr(text, "  sample "), "not in the command list:\n%s", text);
    free(text);
    scratch_close(&s);
}
END_TEST

static Suite *sample_tool_suite(void)
{
    Suite *s = suite_create("sample_tool");
    TCase *tc = tcase_create("tool");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, help_and_usage);
    tcase_add_test(tc, guidance_kinds_on_network);
    tcase_add_test(tc, gmm_exact_and_mc);
    tcase_add_test(tc, mixture1d_statistics);
    tcase_add_test(tc, loss_sum_and_per_row_targets);
    tcase_add_test(tc, condition_rows);
    tcase_add_test(tc, rows_split_is_the_whole);
    tcase_add_test(tc, npy_round_trip);
    tcase_add_test(tc, diagnostics_csv);
    tcase_add_test(tc, png_grid);
#ifdef LGD_INPAINTING_PLUGIN
    tcase_add_test(tc, plugin_loss);
#endif
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(sample_tool_suite());
}
