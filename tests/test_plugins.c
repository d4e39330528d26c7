/*
 * test_plugins.c - losses and models from plugins (lgd/plugin.h, src/plugins/).
 *
 * Loads the example plugins (plugins/inpainting, plugins/cxx_example) and the test
 * plugins of tests/plugins (test_plugin.c, one shared module per variant) and checks:
 *  - the inpainting loss against the built-in squared error with the equivalent
 *    weights mask / (2 sigma^2) (the same values to float rounding) and its gradient
 *    against central finite differences; its config errors (missing and malformed
 *    files, wrong shapes, bad values), each a message naming the plugin and the file;
 *  - the C++ plugin's Huber loss and Gaussian model against closed forms, and configs
 *    that make its C++ code throw: LGD_ERR_CALLBACK with the exception's text;
 *  - every status of the loader: arguments, a file that cannot be loaded (dlerror's
 *    text), no entry point, malformed descriptions, another plugin ABI, a plugin built
 *    for a newer liblgd, an unknown name (the names are listed), create functions that
 *    fail (with, without a message, with a liblgd error) or return no loss, a loss of
 *    another dimension or context; the plugin is unloaded after every failure;
 *  - lifetime: a loss outlives every reference but its own (two loads, one destroyed,
 *    the other used; a retained reference) and the shared object is unloaded
 *    (RTLD_NOLOAD) after the last destroy, never before;
 *  - a model plugin (a Gaussian through lgd_model_create_gmm) against the closed form;
 *  - two threads, each with its own context, loading and failing at the same time
 *    (each failure names its own file: dlerror() is per thread).
 * Built a second time linked with the STATIC liblgd (TP_STATIC_HOST): loading a plugin
 * (which links liblgd.so) must fail with LGD_ERR_UNSUPPORTED, naming the second copy.
 */
#define _GNU_SOURCE /* RTLD_NOLOAD, dladdr */

#include <dlfcn.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#ifndef TP_STATIC_HOST
#  include "npy.h"
#endif

#ifndef TEST_PLUGIN_DIR
#  error "TEST_PLUGIN_DIR (the folder of tests/plugins' modules) must be defined"
#endif

static void tp_path(char *buf, size_t size, const char *variant)
{
    snprintf(buf, size, "%s/tp_%s.so", TEST_PLUGIN_DIR, variant);
}

/* 1 when the shared object at path is loaded in this process (without loading it). */
static int is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return 0;
    dlclose(h);
    return 1;
}

static void assert_msg_has(lgd_context *ctx, const char *needle)
{
    const char *msg = lgd_context_last_error(ctx);
    ck_assert_msg(strstr(msg, needle) != NULL, "error message \"%s\" lacks \"%s\"", msg, needle);
}

#ifdef TP_STATIC_HOST

/* ---- a host linked with the static liblgd: the second-copy check ---- */

START_TEST(static_host_refuses_plugins)
{
    lgd_context *ctx = tu_context(1);
    char path[512];
    tp_path(path, sizeof path, "good");
    lgd_loss *loss = (lgd_loss *)&loss;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED,
             lgd_loss_load_plugin(ctx, path, "sqerr", 4, "", &loss));
    ck_assert_ptr_null(loss);
    assert_msg_has(ctx, "lgd_loss_load_plugin: plugin '");
    assert_msg_has(ctx, "(testplug) uses another copy of liblgd (");
    assert_msg_has(ctx, "liblgd.so");
    assert_msg_has(ctx, "link it with the shared liblgd");
    lgd_model *model = (lgd_model *)&model;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED,
             lgd_model_load_plugin(ctx, path, "gaussian", "dim=2,mean=0,var=1", &model));
    ck_assert_ptr_null(model);
    assert_msg_has(ctx, "uses another copy of liblgd");
    ck_assert(!is_loaded(path));
    lgd_context_destroy(ctx);
}
END_TEST

static Suite *plugins_suite(void)
{
    Suite *s = suite_create("plugins_static");
    TCase *tc = tcase_create("second_copy");
    tcase_add_test(tc, static_host_refuses_plugins);
    suite_add_tcase(s, tc);
    return s;
}

#else /* a host linked with the shared liblgd */

/* ---- files for the inpainting plugin ---- */

static char g_dir[64];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/lgd-plugins-XXXXXX");
    ck_assert_msg(mkdtemp(g_dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes data of the given shape to g_dir/name; the full path into out. */
static void write_npy(char *out, size_t size, const char *name, const float *data,
                      const int64_t *shape, int ndim)
{
    snprintf(out, size, "%s/%s", g_dir, name);
    char err[512];
    ck_assert_msg(lgd_npy_write(out, data, shape, ndim, err, sizeof err) == 0, "%s", err);
}

/* The inpainting problem of the tests: dim = 2 x 3 x 4 = 24, a mask of zeros, ones and
 * one soft weight, known pixels ~ N(0, 1). */
#define IP_DIM 24
static const int64_t ip_shape[3] = { 2, 3, 4 };

static void ip_arrays(float *mask, float *known)
{
    tu_rng r = { 77 };
    for (int j = 0; j < IP_DIM; ++j) {
        mask[j] = tu_uniform(&r) < 0.5 ? 0.0f : 1.0f;
        known[j] = (float)tu_normal(&r);
    }
    mask[5] = 0.25f;
    mask[0] = 1.0f;
}

/* Evaluates loss on x[batch][dim] into loss[batch] and grad[batch][dim]. */
static void eval_loss(lgd_context *ctx, lgd_loss *l, const float *x, int64_t batch, int64_t dim,
                      float *loss, float *grad)
{
    lgd_tensor *tx = tu_tensor(ctx, batch, dim, x);
    lgd_tensor *tl = tu_tensor(ctx, batch, 1, NULL);
    lgd_tensor *tg = grad ? tu_tensor(ctx, batch, dim, NULL) : NULL;
    TU_OK(ctx, lgd_loss_eval(l, tx, tl, tg));
    TU_OK(ctx, lgd_tensor_download(tl, loss, (size_t)batch));
    if (grad)
        TU_OK(ctx, lgd_tensor_download(tg, grad, (size_t)(batch * dim)));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
}

/* The plugin loss and the built-in squared error with weights mask / (2 sigma^2) give
 * the same values and gradients (to float rounding) on random batches. */
static void compare_with_builtin(lgd_context *ctx, lgd_loss *plugin, const float *mask,
                                 const float *known, double sigma)
{
    float w[IP_DIM];
    for (int j = 0; j < IP_DIM; ++j)
        w[j] = (float)(mask[j] / (2.0 * sigma * sigma));
    lgd_loss *ref = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, IP_DIM, known, 1, w, &ref));
    enum { B = 5 };
    float x[B * IP_DIM], la[B], lb[B], ga[B * IP_DIM], gb[B * IP_DIM];
    tu_rng r = { 5 };
    tu_fill_normal(&r, x, B * IP_DIM, 2.0f);
    eval_loss(ctx, plugin, x, B, IP_DIM, la, ga);
    eval_loss(ctx, ref, x, B, IP_DIM, lb, gb);
    ck_assert_msg(tu_max_scaled_err(la, lb, B, 1e-6, 1e-5) <= 1.0, "loss %g vs built-in %g",
                  (double)la[0], (double)lb[0]);
    ck_assert_msg(tu_max_scaled_err(ga, gb, B * IP_DIM, 1e-6, 1e-5) <= 1.0,
                  "gradient differs from the built-in's");
    /* and both against the formula, in double */
    for (int b = 0; b < B; ++b) {
        double s = 0.0;
        for (int j = 0; j < IP_DIM; ++j) {
            double d = (double)x[b * IP_DIM + j] - known[j];
            s += mask[j] * d * d / (2.0 * sigma * sigma);
            double g = mask[j] * d / (sigma * sigma);
            ck_assert_msg(fabs(ga[b * IP_DIM + j] - g) <= 1e-6 * (1.0 + fabs(g)),
                          "grad[%d][%d] %.9g, formula %.9g", b, j, (double)ga[b * IP_DIM + j],
                          g);
        }
        ck_assert_msg(fabs(la[b] - s) <= 1e-6 * (1.0 + s), "loss[%d] %.9g, formula %.9g", b,
                      (double)la[b], s);
    }
    lgd_loss_destroy(ref);
}

START_TEST(inpainting_matches_builtin)
{
    lgd_context *ctx = tu_context(1);
    float mask[IP_DIM], known[IP_DIM];
    ip_arrays(mask, known);
    char mpath[256], kpath[256], config[600];
    write_npy(mpath, sizeof mpath, "mask.npy", mask, ip_shape, 3);
    write_npy(kpath, sizeof kpath, "known.npy", known, ip_shape, 3);

    snprintf(config, sizeof config, "mask=%s,known=%s,sigma=0.3", mpath, kpath);
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_load_plugin(ctx, INPAINTING_PLUGIN, "inpainting", IP_DIM, config, &loss));
    ck_assert_int_eq(lgd_loss_dim(loss), IP_DIM);
    ck_assert_ptr_eq(lgd_loss_context(loss), ctx);
    compare_with_builtin(ctx, loss, mask, known, 0.3);
    lgd_loss_destroy(loss);

    /* sigma defaults to 1; spaces around keys and values are ignored */
    snprintf(config, sizeof config, " known = %s , mask=%s ", kpath, mpath);
    TU_OK(ctx, lgd_loss_load_plugin(ctx, INPAINTING_PLUGIN, "inpainting", IP_DIM, config, &loss));
    compare_with_builtin(ctx, loss, mask, known, 1.0);
    lgd_loss_destroy(loss);
    ck_assert(!is_loaded(INPAINTING_PLUGIN));
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(inpainting_finite_differences)
{
    lgd_context *ctx = tu_context(1);
    float mask[IP_DIM], known[IP_DIM];
    ip_arrays(mask, known);
    char mpath[256], kpath[256], config[600];
    write_npy(mpath, sizeof mpath, "mask.npy", mask, ip_shape, 3);
    write_npy(kpath, sizeof kpath, "known.npy", known, ip_shape, 3);
    snprintf(config, sizeof config, "mask=%s,known=%s,sigma=0.5", mpath, kpath);
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_load_plugin(ctx, INPAINTING_PLUGIN, "inpainting", IP_DIM, config, &loss));
    enum { B = 2 };
    float x[B * IP_DIM], l0[B], g[B * IP_DIM], lp[B], lm[B];
    tu_rng r = { 11 };
    tu_fill_normal(&r, x, B * IP_DIM, 1.0f);
    eval_loss(ctx, loss, x, B, IP_DIM, l0, g);
    const double h = 1e-2;
    for (int i = 0; i < B * IP_DIM; ++i) {
        int row = i / IP_DIM;
        float xi = x[i], xp = (float)(xi + h), xm = (float)(xi - h);
        x[i] = xp;
        eval_loss(ctx, loss, x, B, IP_DIM, lp, NULL);
        x[i] = xm;
        eval_loss(ctx, loss, x, B, IP_DIM, lm, NULL);
        x[i] = xi;
        ck_assert(lp[1 - row] == l0[1 - row] && lm[1 - row] == l0[1 - row]);
        double step = (double)xp - (double)xm;
        double fd = ((double)lp[row] - (double)lm[row]) / step;
        /* a quadratic: central differences are exact but for the float rounding of
         * the loss values, amplified by 1 / step */
        double tol = 1e-4 * (1.0 + fabs(g[i])) + 8.0 * FLT_EPSILON * (1.0 + fabs(l0[row])) / step;
        ck_assert_msg(fabs(fd - g[i]) <= tol, "coordinate %d: FD %.7g, gradient %.7g", i, fd,
                      (double)g[i]);
        /* entries outside the mask have no gradient */
        if (mask[i % IP_DIM] == 0.0f)
            ck_assert(g[i] == 0.0f);
    }
    lgd_loss_destroy(loss);
    lgd_context_destroy(ctx);
}
END_TEST

/* Loading the inpainting loss with config fails with LGD_ERR_CALLBACK and a message
 * that holds the loader's prefix and each of the needles. */
static void inpainting_refuses(lgd_context *ctx, int64_t dim, const char *config,
                               const char *needle1, const char *needle2)
{
    lgd_loss *loss = (lgd_loss *)&loss;
    TU_FAILS(ctx, LGD_ERR_CALLBACK,
             lgd_loss_load_plugin(ctx, INPAINTING_PLUGIN, "inpainting", dim, config, &loss));
    ck_assert_ptr_null(loss);
    char prefix[512];
    snprintf(prefix, sizeof prefix,
             "lgd_loss_load_plugin: plugin '%s' (inpainting), loss 'inpainting': inpainting: ",
             INPAINTING_PLUGIN);
    assert_msg_has(ctx, prefix);
    assert_msg_has(ctx, needle1);
    if (needle2)
        assert_msg_has(ctx, needle2);
    ck_assert(!is_loaded(INPAINTING_PLUGIN));
}

START_TEST(inpainting_config_errors)
{
    lgd_context *ctx = tu_context(1);
    float mask[IP_DIM], known[IP_DIM];
    ip_arrays(mask, known);
    char mpath[256], kpath[256], flat[256], shortp[256], badmask[256], nanp[256], garbage[256];
    char missing[256], config[1200];
    write_npy(mpath, sizeof mpath, "mask.npy", mask, ip_shape, 3);
    write_npy(kpath, sizeof kpath, "known.npy", known, ip_shape, 3);
    const int64_t flat_shape[1] = { IP_DIM }, short_shape[1] = { 5 };
    write_npy(flat, sizeof flat, "flat.npy", known, flat_shape, 1);
    write_npy(shortp, sizeof shortp, "short.npy", known, short_shape, 1);
    float bad[IP_DIM];
    memcpy(bad, mask, sizeof bad);
    bad[7] = 2.0f;
    write_npy(badmask, sizeof badmask, "badmask.npy", bad, ip_shape, 3);
    float withnan[IP_DIM];
    memcpy(withnan, known, sizeof withnan);
    withnan[3] = NAN;
    write_npy(nanp, sizeof nanp, "nan.npy", withnan, ip_shape, 3);
    snprintf(garbage, sizeof garbage, "%s/garbage.npy", g_dir);
    FILE *f = fopen(garbage, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a numpy file\n", f);
    fclose(f);
    snprintf(missing, sizeof missing, "%s/missing.npy", g_dir);

    snprintf(config, sizeof config, "mask=%s,known=%s", missing, kpath);
    inpainting_refuses(ctx, IP_DIM, config, missing, "cannot open");
    snprintf(config, sizeof config, "mask=%s,known=%s", mpath, garbage);
    inpainting_refuses(ctx, IP_DIM, config, "known: ", "not a .npy file");
    snprintf(config, sizeof config, "mask=%s,known=%s", mpath, shortp);
    inpainting_refuses(ctx, IP_DIM, config, "has shape (5,), 5 elements; the model's dim is 24",
                       shortp);
    snprintf(config, sizeof config, "mask=%s,known=%s", mpath, kpath);
    inpainting_refuses(ctx, 25, config, "has shape (2, 3, 4), 24 elements; the model's dim is 25",
                       NULL);
    snprintf(config, sizeof config, "mask=%s,known=%s", mpath, flat);
    inpainting_refuses(ctx, IP_DIM, config, "has shape (2, 3, 4) but known", "(24,)");
    snprintf(config, sizeof config, "mask=%s,known=%s", badmask, kpath);
    inpainting_refuses(ctx, IP_DIM, config, "element 7 is 2; mask values must be in [0, 1]",
                       NULL);
    snprintf(config, sizeof config, "mask=%s,known=%s", mpath, nanp);
    inpainting_refuses(ctx, IP_DIM, config, "element 3 is not finite", NULL);
    snprintf(config, sizeof config, "mask=%s,known=%s,sigma=-1", mpath, kpath);
    inpainting_refuses(ctx, IP_DIM, config, "sigma '-1' is not a finite number > 0", NULL);
    snprintf(config, sizeof config, "mask=%s,known=%s,sigma=1e-200", mpath, kpath);
    inpainting_refuses(ctx, IP_DIM, config, "too small", NULL);
    snprintf(config, sizeof config, "mask=%s,known=%s,sigma=abc", mpath, kpath);
    inpainting_refuses(ctx, IP_DIM, config, "sigma 'abc'", NULL);
    snprintf(config, sizeof config, "mask=%s", mpath);
    inpainting_refuses(ctx, IP_DIM, config, "known is missing",
                       "mask=PATH,known=PATH[,sigma=S]");
    inpainting_refuses(ctx, IP_DIM, "", "mask is missing", NULL);
    snprintf(config, sizeof config, "mask=%s,known=%s,color=red", mpath, kpath);
    inpainting_refuses(ctx, IP_DIM, config, "unknown key 'color'", NULL);
    snprintf(config, sizeof config, "mask=%s,mask=%s,known=%s", mpath, mpath, kpath);
    inpainting_refuses(ctx, IP_DIM, config, "mask is given twice", NULL);
    inpainting_refuses(ctx, IP_DIM, "mask", "'mask' is not KEY=VALUE", NULL);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- the loader's statuses ---- */

START_TEST(argument_errors)
{
    lgd_context *ctx = tu_context(1);
    char path[512];
    tp_path(path, sizeof path, "good");
    lgd_loss *loss = (lgd_loss *)&loss;
    lgd_model *model = (lgd_model *)&model;
    ck_assert_int_eq(lgd_loss_load_plugin(NULL, path, "sqerr", 4, "", &loss),
                     LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(loss);
    ck_assert_int_eq(lgd_model_load_plugin(NULL, path, "gaussian", "", &model),
                     LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(model);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_load_plugin(ctx, NULL, "sqerr", 4, "", &loss));
    assert_msg_has(ctx, "lgd_loss_load_plugin: path is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_load_plugin(ctx, path, NULL, 4, "", &loss));
    assert_msg_has(ctx, "name is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_load_plugin(ctx, path, "sqerr", 4, "", NULL));
    assert_msg_has(ctx, "out_loss is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_load_plugin(ctx, path, "sqerr", 0, "", &loss));
    assert_msg_has(ctx, "dim is 0");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_load_plugin(ctx, path, "gaussian", "", NULL));
    assert_msg_has(ctx, "lgd_model_load_plugin: out_model is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_load_plugin(ctx, NULL, "gaussian", "", &model));
    ck_assert(!is_loaded(path));
    /* a NULL config is "" */
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "sqerr", 4, NULL, &loss));
    lgd_loss_destroy(loss);
    lgd_context_destroy(ctx);
}
END_TEST

/* Loading fails with expected and a message holding the needles; nothing stays loaded. */
static void load_refused(lgd_context *ctx, const char *path, const char *name, lgd_status expected,
                         const char *needle1, const char *needle2)
{
    lgd_loss *loss = (lgd_loss *)&loss;
    TU_FAILS(ctx, expected, lgd_loss_load_plugin(ctx, path, name, 4, "x=1", &loss));
    ck_assert_ptr_null(loss);
    assert_msg_has(ctx, "lgd_loss_load_plugin: ");
    assert_msg_has(ctx, path);
    assert_msg_has(ctx, needle1);
    if (needle2)
        assert_msg_has(ctx, needle2);
    if (strchr(path, '/'))
        ck_assert_msg(!is_loaded(path), "%s stays loaded after a failed load", path);
}

START_TEST(load_failures)
{
    lgd_context *ctx = tu_context(1);
    char path[512];
    /* files that cannot be loaded: dlerror()'s reason */
    load_refused(ctx, "/nonexistent/plugin.so", "x", LGD_ERR_IO, "cannot load plugin",
                 "No such file or directory");
    load_refused(ctx, "lgd-no-such-plugin.so", "x", LGD_ERR_IO, "cannot load plugin",
                 "lgd-no-such-plugin.so");
    char text[256];
    make_dir();
    snprintf(text, sizeof text, "%s/text.so", g_dir);
    FILE *f = fopen(text, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not an ELF file, but long enough to have a header of sixty-four bytes or so.\n", f);
    fclose(f);
    load_refused(ctx, text, "x", LGD_ERR_IO, "cannot load plugin", "invalid ELF header");
    remove_dir();
    /* shared objects that are not valid plugins */
    tp_path(path, sizeof path, "no_entry");
    load_refused(ctx, path, "sqerr", LGD_ERR_FORMAT, "is not a liblgd plugin",
                 "exports no lgd_plugin_entry");
    tp_path(path, sizeof path, "null_info");
    load_refused(ctx, path, "sqerr", LGD_ERR_FORMAT, "its lgd_plugin_entry() returned NULL", NULL);
    tp_path(path, sizeof path, "no_create");
    load_refused(ctx, path, "sqerr", LGD_ERR_FORMAT, "(testplug): malformed description",
                 "loss 'no_create' has no create function");
    tp_path(path, sizeof path, "dup_names");
    load_refused(ctx, path, "sqerr", LGD_ERR_FORMAT, "two loss entries named 'sqerr'", NULL);
    tp_path(path, sizeof path, "no_version_fn");
    load_refused(ctx, path, "sqerr", LGD_ERR_FORMAT, "lgd_version_fn is NULL",
                 "LGD_PLUGIN_INFO_INIT");
    tp_path(path, sizeof path, "short_struct");
    load_refused(ctx, path, "sqerr", LGD_ERR_FORMAT, "malformed description (struct_size 8",
                 NULL);
    /* versions */
    char want[128];
    tp_path(path, sizeof path, "abi_next");
    snprintf(want, sizeof want, "was built for plugin ABI version %d; liblgd %s loads version %d",
             LGD_PLUGIN_ABI_VERSION + 1, lgd_version_string(), LGD_PLUGIN_ABI_VERSION);
    load_refused(ctx, path, "sqerr", LGD_ERR_UNSUPPORTED, want, NULL);
    tp_path(path, sizeof path, "future");
    snprintf(want, sizeof want, "was built for liblgd %d.%d.%d, newer than this liblgd %s",
             LGD_VERSION_MAJOR, LGD_VERSION_MINOR + 1, LGD_VERSION_PATCH, lgd_version_string());
    load_refused(ctx, path, "sqerr", LGD_ERR_UNSUPPORTED, want, NULL);
    /* an unknown name: the plugin's names are listed */
    tp_path(path, sizeof path, "good");
    load_refused(ctx, path, "nope", LGD_ERR_UNSUPPORTED,
                 "(testplug) has no loss named 'nope'; its losses: sqerr, callback, fails, "
                 "fails_silent, null_loss, wrong_dim, other_context, self_load (its models: "
                 "gaussian)",
                 NULL);
    load_refused(ctx, INPAINTING_PLUGIN, "inpaint", LGD_ERR_UNSUPPORTED,
                 "(inpainting) has no loss named 'inpaint'; its losses: inpainting (its models: "
                 "none)", NULL);
    lgd_model *model = (lgd_model *)&model;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED,
             lgd_model_load_plugin(ctx, INPAINTING_PLUGIN, "inpainting", "", &model));
    ck_assert_ptr_null(model);
    assert_msg_has(ctx, "lgd_model_load_plugin: plugin '");
    assert_msg_has(ctx, "(inpainting) has no model named 'inpainting'; its models: none (its "
                        "losses: inpainting)");
    ck_assert(!is_loaded(INPAINTING_PLUGIN));
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(create_failures)
{
    lgd_context *ctx = tu_context(1);
    char path[512], prefix[1024];
    tp_path(path, sizeof path, "good");
    snprintf(prefix, sizeof prefix, "lgd_loss_load_plugin: plugin '%s' (testplug), loss ", path);
    load_refused(ctx, path, "fails", LGD_ERR_CALLBACK, prefix,
                 "loss 'fails': testplug: fails on purpose (config 'x=1')");
    load_refused(ctx, path, "fails_silent", LGD_ERR_CALLBACK,
                 "loss 'fails_silent': create returned 3 and gave no message "
                 "(lgd_context_set_callback_error)", NULL);
    load_refused(ctx, path, "null_loss", LGD_ERR_CALLBACK,
                 "loss 'null_loss': create returned 0 but no loss", NULL);
    load_refused(ctx, path, "wrong_dim", LGD_ERR_CALLBACK,
                 "loss 'wrong_dim': create returned a loss of dim 5 for dim 4", NULL);
    load_refused(ctx, path, "other_context", LGD_ERR_CALLBACK,
                 "loss 'other_context': create returned a loss of another context", NULL);
    /* a create that fails in a liblgd call: the context's error is quoted */
    lgd_loss *loss = (lgd_loss *)&loss;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_loss_load_plugin(ctx, path, "sqerr", 4, "target=nan", &loss));
    ck_assert_ptr_null(loss);
    assert_msg_has(ctx, "loss 'sqerr': create returned 1 without a message; the context's last "
                        "error: lgd_loss_create_squared_error");
    ck_assert(!is_loaded(path));
    /* a success leaves the context's last error alone: none, or an earlier one */
    lgd_context_clear_error(ctx);
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "callback", 4, "", &loss));
    ck_assert_str_eq(lgd_context_last_error(ctx), "");
    lgd_loss_destroy(loss);
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_loss_load_plugin(ctx, path, "fails", 4, "", &loss));
    char before[600];
    snprintf(before, sizeof before, "%s", lgd_context_last_error(ctx));
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "callback", 4, "", &loss));
    ck_assert_str_eq(lgd_context_last_error(ctx), before);
    lgd_loss_destroy(loss);
    /* models: the same checks */
    lgd_model *model = (lgd_model *)&model;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_model_load_plugin(ctx, path, "gaussian", "dim=0", &model));
    ck_assert_ptr_null(model);
    snprintf(prefix, sizeof prefix,
             "lgd_model_load_plugin: plugin '%s' (testplug), model 'gaussian': testplug: "
             "gaussian: config must be", path);
    assert_msg_has(ctx, prefix);
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_model_load_plugin(ctx, path, "sqerr", "", &model));
    assert_msg_has(ctx, "has no model named 'sqerr'; its models: gaussian (its losses: sqerr, ");
    ck_assert(!is_loaded(path));
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- lifetime ---- */

static float half_norm_at(lgd_context *ctx, lgd_loss *l)
{
    const float x[4] = { 1.0f, -2.0f, 0.5f, 3.0f }; /* sum x^2 / 2 = 7.125 */
    float v, g[4];
    eval_loss(ctx, l, x, 1, 4, &v, g);
    for (int j = 0; j < 4; ++j)
        ck_assert(g[j] == x[j]);
    return v;
}

START_TEST(plugin_stays_loaded_while_used)
{
    lgd_context *ctx = tu_context(1);
    char path[512];
    tp_path(path, sizeof path, "good");
    ck_assert(!is_loaded(path));
    lgd_loss *a = NULL, *b = NULL;
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "callback", 4, "", &a));
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "callback", 4, "", &b));
    ck_assert(is_loaded(path));
    /* the loader kept no reference of its own: dropping a leaves b's */
    lgd_loss_destroy(a);
    ck_assert(is_loaded(path));
    ck_assert(half_norm_at(ctx, b) == 7.125f); /* b's eval is the plugin's code */
    /* another reference to b (as a guidance holds one) keeps it, and the plugin, alive */
    lgd_loss *c = lgd_loss_retain(b);
    lgd_loss_destroy(b);
    ck_assert(is_loaded(path));
    ck_assert(half_norm_at(ctx, c) == 7.125f);
    /* the last destroy runs the plugin's destroy callback, then unloads it */
    lgd_loss_destroy(c);
    ck_assert_msg(!is_loaded(path), "the plugin stays loaded after its last loss is freed");

    /* a model and a loss of the same plugin: unloaded after the later of the two */
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_load_plugin(ctx, path, "gaussian", "dim=4,mean=0,var=1", &m));
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "callback", 4, "", &a));
    lgd_model_destroy(m);
    ck_assert(is_loaded(path));
    ck_assert(half_norm_at(ctx, a) == 7.125f);
    lgd_loss_destroy(a);
    ck_assert(!is_loaded(path));

    /* a loss the plugin got from a load of itself already holds the plugin: one
     * reference, not two, and not none */
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "self_load", 4, "", &a));
    ck_assert(is_loaded(path));
    ck_assert(half_norm_at(ctx, a) == 7.125f);
    lgd_loss_destroy(a);
    ck_assert_msg(!is_loaded(path), "a reference to the plugin leaked");

    /* a loss that outlives its context handle (the loss keeps the context) */
    TU_OK(ctx, lgd_loss_load_plugin(ctx, path, "callback", 4, "", &a));
    lgd_context *ctx2 = tu_context(1);
    lgd_context_destroy(ctx);
    ck_assert(is_loaded(path));
    lgd_loss_destroy(a);
    ck_assert(!is_loaded(path));
    lgd_context_destroy(ctx2);
}
END_TEST

/* ---- models ---- */

/* The model is N(mean 1, var I) in dim dimensions: D(x, sigma) = mean + var / (var +
 * sigma^2) (x - mean), checked at a few sigmas. */
static void check_gaussian_model(lgd_context *ctx, lgd_model *m, int64_t dim, double mean,
                                 double var)
{
    ck_assert_int_eq(lgd_model_dim(m), dim);
    ck_assert_int_eq(lgd_model_cond_dim(m), 0);
    enum { B = 3 };
    float *x = malloc((size_t)(B * dim) * sizeof *x), *d = malloc((size_t)(B * dim) * sizeof *d);
    ck_assert(x && d);
    tu_rng r = { 3 };
    tu_fill_normal(&r, x, (size_t)(B * dim), 2.0f);
    lgd_tensor *tx = tu_tensor(ctx, B, dim, x), *td = tu_tensor(ctx, B, dim, NULL);
    const float sigmas[3] = { 0.1f, 1.0f, 7.5f };
    for (int k = 0; k < 3; ++k) {
        TU_OK(ctx, lgd_model_denoise(m, tx, sigmas[k], NULL, td));
        TU_OK(ctx, lgd_tensor_download(td, d, (size_t)(B * dim)));
        double s2 = (double)sigmas[k] * sigmas[k];
        for (int64_t i = 0; i < B * dim; ++i) {
            double want = mean + var / (var + s2) * ((double)x[i] - mean);
            ck_assert_msg(fabs(d[i] - want) <= 2e-6 * (1.0 + fabs(want)),
                          "sigma %g, [%lld]: D = %.9g, closed form %.9g", (double)sigmas[k],
                          (long long)i, (double)d[i], want);
        }
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(td);
    free(x);
    free(d);
}

START_TEST(model_plugin)
{
    lgd_context *ctx = tu_context(1);
    char path[512];
    tp_path(path, sizeof path, "good");
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_load_plugin(ctx, path, "gaussian", "dim=5,mean=0.5,var=2", &m));
    ck_assert_ptr_eq(lgd_model_context(m), ctx);
    ck_assert(lgd_model_has_exact_posterior(m));
    check_gaussian_model(ctx, m, 5, 0.5, 2.0);
    lgd_model_destroy(m);
    ck_assert(!is_loaded(path));
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- the C++ plugin ---- */

#ifdef CXX_PLUGIN
START_TEST(cxx_plugin)
{
    lgd_context *ctx = tu_context(1);
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_load_plugin(ctx, CXX_PLUGIN, "huber", 3, "target=0.5,delta=1", &loss));
    /* residuals -3.5 (linear part), 0.25 and -1 (quadratic; |r| = delta), 2.5 (linear) */
    const float x[6] = { -3.0f, 0.75f, -0.5f, 3.0f, 0.5f, 0.5f };
    float v[2], g[6];
    eval_loss(ctx, loss, x, 2, 3, v, g);
    const double want0 = (3.5 - 0.5) + 0.5 * 0.0625 + 0.5 * 1.0, want1 = 2.5 - 0.5;
    ck_assert_msg(fabs(v[0] - want0) <= 1e-6 && fabs(v[1] - want1) <= 1e-6, "huber %g %g",
                  (double)v[0], (double)v[1]);
    const float want_g[6] = { -1.0f, 0.25f, -1.0f, 1.0f, 0.0f, 0.0f };
    for (int j = 0; j < 6; ++j)
        ck_assert_msg(g[j] == want_g[j], "grad[%d] %g", j, (double)g[j]);
    lgd_loss_destroy(loss);

    /* configs that make the C++ code throw: LGD_ERR_CALLBACK with what() */
    char prefix[600];
    snprintf(prefix, sizeof prefix, "lgd_loss_load_plugin: plugin '%s' (cxx_example), loss "
             "'huber': ", CXX_PLUGIN);
    static const char *const bad[][2] = {
        { "delta=abc", "huber: delta 'abc' is not a finite number" },
        { "delta=-1", "huber: delta must be > 0, not -1" },
        { "target=1,color=red", "huber: unknown key 'color'" },
        { "target", "huber: 'target' is not KEY=VALUE" },
        { "delta=1,delta=2", "huber: delta is given twice" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
        loss = (lgd_loss *)&loss;
        TU_FAILS(ctx, LGD_ERR_CALLBACK,
                 lgd_loss_load_plugin(ctx, CXX_PLUGIN, "huber", 3, bad[k][0], &loss));
        ck_assert_ptr_null(loss);
        assert_msg_has(ctx, prefix);
        assert_msg_has(ctx, bad[k][1]);
    }
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_load_plugin(ctx, CXX_PLUGIN, "gaussian", "dim=4,mean=-1,var=0.5", &m));
    check_gaussian_model(ctx, m, 4, -1.0, 0.5);
    lgd_model_destroy(m);
    m = (lgd_model *)&m;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_model_load_plugin(ctx, CXX_PLUGIN, "gaussian", "", &m));
    ck_assert_ptr_null(m);
    assert_msg_has(ctx, "model 'gaussian': gaussian: dim=N is required");
    /* a liblgd error inside the C++ code, rethrown as an exception */
    TU_FAILS(ctx, LGD_ERR_CALLBACK,
             lgd_model_load_plugin(ctx, CXX_PLUGIN, "gaussian", "dim=70000", &m));
    assert_msg_has(ctx, "model 'gaussian': gaussian: lgd_model_create_gmm");
    ck_assert_msg(!is_loaded(CXX_PLUGIN), "the C++ plugin stays loaded after its last object");
    lgd_context_destroy(ctx);
}
END_TEST
#endif

/* ---- threads ---- */

typedef struct thread_arg {
    int id;
    int failures; /* checks that failed (Check's asserts are not for other threads) */
    char why[256];
} thread_arg;

static void *loader_thread(void *p)
{
    thread_arg *a = p;
    lgd_context *ctx = NULL;
    const char *err = NULL;
    if (lgd_context_create(NULL, &ctx, &err) != LGD_OK) {
        a->failures++;
        snprintf(a->why, sizeof a->why, "context: %s", err);
        return NULL;
    }
    char good[512], missing[128];
    tp_path(good, sizeof good, "good");
    snprintf(missing, sizeof missing, "/nonexistent/thread-%d.so", a->id);
    for (int i = 0; i < 20; ++i) {
        lgd_loss *l = NULL;
        if (lgd_loss_load_plugin(ctx, good, "callback", 2, "", &l) != LGD_OK) {
            a->failures++;
            snprintf(a->why, sizeof a->why, "load: %s", lgd_context_last_error(ctx));
            break;
        }
        lgd_loss_destroy(l);
        lgd_status st = lgd_loss_load_plugin(ctx, missing, "callback", 2, "", &l);
        const char *msg = lgd_context_last_error(ctx);
        /* dlerror() is per thread: the message names this thread's file */
        if (st != LGD_ERR_IO || strstr(msg, missing) == NULL ||
            strstr(msg, "No such file") == NULL) {
            a->failures++;
            snprintf(a->why, sizeof a->why, "failure %d: %s", (int)st, msg);
            break;
        }
    }
    lgd_context_destroy(ctx);
    return NULL;
}

START_TEST(threads_load_at_once)
{
    thread_arg args[2] = { { 0, 0, "" }, { 1, 0, "" } };
    pthread_t t[2];
    for (int i = 0; i < 2; ++i)
        ck_assert_int_eq(pthread_create(&t[i], NULL, loader_thread, &args[i]), 0);
    for (int i = 0; i < 2; ++i)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; ++i)
        ck_assert_msg(args[i].failures == 0, "thread %d: %s", i, args[i].why);
    char good[512];
    tp_path(good, sizeof good, "good");
    ck_assert(!is_loaded(good));
}
END_TEST

static Suite *plugins_suite(void)
{
    Suite *s = suite_create("plugins");
    TCase *ip = tcase_create("inpainting");
    tcase_add_checked_fixture(ip, make_dir, remove_dir);
    tcase_add_test(ip, inpainting_matches_builtin);
    tcase_add_test(ip, inpainting_finite_differences);
    tcase_add_test(ip, inpainting_config_errors);
    suite_add_tcase(s, ip);
    TCase *ld = tcase_create("loader");
    tcase_add_test(ld, argument_errors);
    tcase_add_test(ld, load_failures);
    tcase_add_test(ld, create_failures);
    tcase_add_test(ld, plugin_stays_loaded_while_used);
    tcase_add_test(ld, model_plugin);
#ifdef CXX_PLUGIN
    tcase_add_test(ld, cxx_plugin);
#endif
    tcase_add_test(ld, threads_load_at_once);
    suite_add_tcase(s, ld);
    return s;
}

#endif /* TP_STATIC_HOST */

int main(void) { return tu_run(plugins_suite()); }
