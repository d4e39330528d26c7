/*
 * test_plugin.c - the plugins that tests/test_plugins.c loads, one source built as
 * several shared modules (tests/plugins/meson.build), each with TP_VARIANT set:
 *
 *   TP_GOOD          "testplug": well-formed; its entries exercise the loader's checks
 *                    of what a create function returns (see the tables at the end)
 *   TP_ABI_NEXT      abi_version LGD_PLUGIN_ABI_VERSION + 1
 *   TP_FUTURE        built "for" the next minor version of liblgd
 *   TP_NO_ENTRY      exports no lgd_plugin_entry
 *   TP_NULL_INFO     lgd_plugin_entry returns NULL
 *   TP_NO_CREATE     a loss entry without a create function
 *   TP_DUP_NAMES     two loss entries of the same name
 *   TP_NO_VERSION_FN lgd_version_fn NULL
 *   TP_SHORT_STRUCT  struct_size 8 (shorter than the version fields)
 */
#define _GNU_SOURCE /* dladdr */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#define TP_GOOD 1
#define TP_ABI_NEXT 2
#define TP_FUTURE 3
#define TP_NO_ENTRY 4
#define TP_NULL_INFO 5
#define TP_NO_CREATE 6
#define TP_DUP_NAMES 7
#define TP_NO_VERSION_FN 8
#define TP_SHORT_STRUCT 9

#ifndef TP_VARIANT
#  error "TP_VARIANT must be defined"
#endif

/* "target=T" -> T (default 0.5); the squared error toward T in every coordinate */
static int32_t sqerr_create(lgd_context *ctx, int64_t dim, const char *config, lgd_loss **out)
{
    double t = 0.5;
    if (config[0] != '\0' && sscanf(config, "target=%lf", &t) != 1) {
        lgd_context_set_callback_error(ctx, "testplug: sqerr: config must be target=T");
        return 1;
    }
    float *target = malloc((size_t)dim * sizeof *target);
    if (!target) {
        lgd_context_set_callback_error(ctx, "testplug: out of memory");
        return 1;
    }
    for (int64_t j = 0; j < dim; ++j)
        target[j] = (float)t;
    lgd_status st = lgd_loss_create_squared_error(ctx, dim, target, 1, NULL, out);
    free(target);
    return st == LGD_OK ? 0 : 1; /* the loader quotes the context's last error */
}

/* l(x) = sum_j x_j^2 / 2 through callbacks: every evaluation and the destroy callback
 * run this plugin's code, so a loss used or freed after the plugin was unloaded crashes */
static int32_t half_norm_eval(void *user, const float *x, int64_t batch, int64_t n,
                              int64_t dim, float *loss, float *grad)
{
    const int64_t *dim_check = user;
    if (*dim_check != dim)
        return 1;
    for (int64_t r = 0; r < batch * n; ++r) {
        double s = 0.0;
        for (int64_t j = 0; j < dim; ++j) {
            s += 0.5 * (double)x[r * dim + j] * (double)x[r * dim + j];
            if (grad)
                grad[r * dim + j] = x[r * dim + j];
        }
        loss[r] = (float)s;
    }
    return 0;
}

static void half_norm_destroy(void *user)
{
    int64_t *dim_check = user;
    *dim_check = -1; /* writes the plugin's data: fails loudly if it is unmapped */
    free(dim_check);
}

static int32_t callback_create(lgd_context *ctx, int64_t dim, const char *config, lgd_loss **out)
{
    (void)config;
    int64_t *state = malloc(sizeof *state);
    if (!state) {
        lgd_context_set_callback_error(ctx, "testplug: out of memory");
        return 1;
    }
    *state = dim;
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = dim;
    cb.eval = half_norm_eval;
    cb.destroy = half_norm_destroy;
    cb.user = state;
    if (lgd_loss_create_callbacks(ctx, &cb, out) != LGD_OK) {
        free(state);
        return 1;
    }
    return 0;
}

static int32_t fails_create(lgd_context *ctx, int64_t dim, const char *config, lgd_loss **out)
{
    (void)dim;
    (void)out;
    char msg[256];
    snprintf(msg, sizeof msg, "testplug: fails on purpose (config '%s')", config);
    lgd_context_set_callback_error(ctx, msg);
    return 7;
}

static int32_t fails_silent_create(lgd_context *ctx, int64_t dim, const char *config,
                                   lgd_loss **out)
{
    (void)ctx;
    (void)dim;
    (void)config;
    (void)out;
    return 3;
}

static int32_t null_loss_create(lgd_context *ctx, int64_t dim, const char *config,
                                lgd_loss **out)
{
    (void)ctx;
    (void)dim;
    (void)config;
    *out = NULL;
    return 0;
}

static int32_t wrong_dim_create(lgd_context *ctx, int64_t dim, const char *config,
                                lgd_loss **out)
{
    (void)config;
    return callback_create(ctx, dim + 1, "", out);
}

static int32_t other_context_create(lgd_context *ctx, int64_t dim, const char *config,
                                    lgd_loss **out)
{
    (void)config;
    lgd_context *mine = NULL;
    const char *err = NULL;
    if (lgd_context_create(NULL, &mine, &err) != LGD_OK) {
        lgd_context_set_callback_error(ctx, "testplug: no context");
        return 1;
    }
    int32_t rc = callback_create(mine, dim, "", out);
    lgd_context_destroy(mine); /* the loss keeps its context alive */
    return rc;
}

/* Returns the "callback" loss of a load of this very file: an object that already holds
 * a reference to the plugin when the outer load gets it (the loader must not add a
 * second one, nor lose the first). */
static int32_t self_load_create(lgd_context *ctx, int64_t dim, const char *config,
                                lgd_loss **out)
{
    (void)config;
    int32_t (*self)(lgd_context *, int64_t, const char *, lgd_loss **) = self_load_create;
    void *addr;
    memcpy(&addr, &self, sizeof addr);
    Dl_info di;
    if (!dladdr(addr, &di) || !di.dli_fname) {
        lgd_context_set_callback_error(ctx, "testplug: self_load: dladdr failed");
        return 1;
    }
    return lgd_loss_load_plugin(ctx, di.dli_fname, "callback", dim, "", out) == LGD_OK ? 0 : 1;
}

/* "dim=N,mean=M,var=V" -> the Gaussian N(M 1, V I) as a one-component mixture */
static int32_t gaussian_create(lgd_context *ctx, const char *config, lgd_model **out)
{
    long long dim = 0;
    double mean = 0.0, var = 1.0;
    if (sscanf(config, "dim=%lld,mean=%lf,var=%lf", &dim, &mean, &var) != 3 || dim < 1 ||
        dim > 4096) {
        lgd_context_set_callback_error(ctx, "testplug: gaussian: config must be "
                                            "dim=N,mean=M,var=V with 1 <= N <= 4096");
        return 1;
    }
    float *means = malloc((size_t)dim * sizeof *means);
    if (!means) {
        lgd_context_set_callback_error(ctx, "testplug: out of memory");
        return 1;
    }
    for (long long j = 0; j < dim; ++j)
        means[j] = (float)mean;
    const float w = 1.0f, v = (float)var;
    lgd_status st = lgd_model_create_gmm(ctx, (int64_t)dim, 1, &w, means, &v,
                                         LGD_COVARIANCE_ISOTROPIC, out);
    free(means);
    return st == LGD_OK ? 0 : 1;
}

static const lgd_plugin_loss tp_losses[] = {
    { "sqerr", "target=T: sum_j (x_j - T)^2", sqerr_create },
    { "callback", "sum_j x_j^2 / 2 through callbacks", callback_create },
    { "fails", "fails with a message", fails_create },
    { "fails_silent", "fails without a message", fails_silent_create },
    { "null_loss", "returns 0 and no loss", null_loss_create },
    { "wrong_dim", "returns a loss of dim + 1", wrong_dim_create },
    { "other_context", "returns a loss of another context", other_context_create },
    { "self_load", "the callback loss of a load of itself", self_load_create },
#if TP_VARIANT == TP_NO_CREATE
    { "no_create", NULL, NULL },
#elif TP_VARIANT == TP_DUP_NAMES
    { "sqerr", "again", sqerr_create },
#endif
};

static const lgd_plugin_model tp_models[] = {
    { "gaussian", "dim=N,mean=M,var=V", gaussian_create },
};

#define N_LOSSES ((int32_t)(sizeof tp_losses / sizeof tp_losses[0]))

#if TP_VARIANT == TP_GOOD || TP_VARIANT == TP_NO_CREATE || TP_VARIANT == TP_DUP_NAMES || \
    TP_VARIANT == TP_NO_ENTRY || TP_VARIANT == TP_NULL_INFO
static const lgd_plugin_info tp_info =
    LGD_PLUGIN_INFO_INIT("testplug", tp_losses, N_LOSSES, tp_models, 1);
#else
/* LGD_PLUGIN_INFO_INIT with one field changed */
#  define TP_SIZE ((uint32_t)sizeof(lgd_plugin_info))
#  define TP_ABI LGD_PLUGIN_ABI_VERSION
#  define TP_LGD LGD_VERSION_NUMBER
#  define TP_VERSION_FN lgd_version
#  if TP_VARIANT == TP_ABI_NEXT
#    undef TP_ABI
#    define TP_ABI (LGD_PLUGIN_ABI_VERSION + 1)
#  elif TP_VARIANT == TP_FUTURE
#    undef TP_LGD
#    define TP_LGD (LGD_VERSION_NUMBER + 100)
#  elif TP_VARIANT == TP_NO_VERSION_FN
#    undef TP_VERSION_FN
#    define TP_VERSION_FN NULL
#  elif TP_VARIANT == TP_SHORT_STRUCT
#    undef TP_SIZE
#    define TP_SIZE 8u
#  endif
static const lgd_plugin_info tp_info = {
    .struct_size = TP_SIZE,
    .abi_version = TP_ABI,
    .lgd_version = TP_LGD,
    .name = "testplug",
    .n_losses = N_LOSSES,
    .losses = tp_losses,
    .n_models = 1,
    .models = tp_models,
    .lgd_version_fn = TP_VERSION_FN,
};
#endif

#if TP_VARIANT == TP_NO_ENTRY
/* exported, but not the entry point */
LGD_PLUGIN_EXPORT const lgd_plugin_info *tp_not_an_entry(void);
LGD_PLUGIN_EXPORT const lgd_plugin_info *tp_not_an_entry(void) { return &tp_info; }
#elif TP_VARIANT == TP_NULL_INFO
LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void);
LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void)
{
    return tp_info.n_losses < 0 ? &tp_info : NULL; /* always NULL */
}
#else
LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void);
LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void) { return &tp_info; }
#endif
