/*
 * inpainting.c - an example loss plugin (docs/plugins.md): inpainting with known pixels.
 *
 *   l(x0) = sum_j mask_j (x0_j - y_j)^2 / (2 sigma^2),  dl/dx0_j = mask_j (x0_j - y_j) / sigma^2
 *
 * mask (weights in [0, 1]: 1 where the pixel is known) and y (the known pixels) come
 * from .npy files named in the configuration string
 *
 *   mask=PATH,known=PATH[,sigma=S]        (sigma > 0, default 1)
 *
 * read with the example .npy module (examples/npy, float32/float64/uint8/bool arrays);
 * both must hold `dim` elements (any shape, C order: e.g. [C][H][W] for an image model)
 * and have the same shape. The loss is made with lgd_loss_create_callbacks(): its eval
 * and destroy callbacks are this plugin's code, which liblgd keeps loaded until the
 * loss is freed. Values are accumulated in double.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "npy.h"

#define INPAINTING_DEFAULT_SIGMA 1.0

typedef struct inpainting {
    int64_t dim;
    float *mask;  /* [dim] in [0, 1] */
    float *known; /* [dim] */
    double inv_s2; /* 1 / sigma^2 */
} inpainting;

static void inpainting_free(void *user)
{
    inpainting *p = user;
    if (p) {
        free(p->mask);
        free(p->known);
        free(p);
    }
}

static int32_t inpainting_eval(void *user, const float *x, int64_t batch, int64_t n,
                               int64_t dim, float *loss, float *grad)
{
    const inpainting *p = user;
    const int64_t rows = batch * n;
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * dim;
        float *gr = grad ? grad + r * dim : NULL;
        double sum = 0.0;
        for (int64_t j = 0; j < dim; ++j) {
            double d = (double)xr[j] - (double)p->known[j];
            double md = (double)p->mask[j] * d;
            sum += md * d;
            if (gr)
                gr[j] = (float)(md * p->inv_s2);
        }
        loss[r] = (float)(0.5 * sum * p->inv_s2);
    }
    return 0;
}

/* Sets the context's callback error to "inpainting: <formatted>" and returns 1. */
static int32_t fail(lgd_context *ctx, const char *fmt, ...)
{
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char full[512];
    snprintf(full, sizeof full, "inpainting: %s", msg);
    lgd_context_set_callback_error(ctx, full);
    return 1;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; ++i)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "%s)", ndim == 1 ? "," : "");
}

/* Reads one array of dim elements from path into *out (malloc'd). */
static int32_t read_array(lgd_context *ctx, const char *what, const char *path, int64_t dim,
                          float **out, int64_t shape[LGD_NPY_MAX_NDIM], int *ndim)
{
    char err[400];
    if (lgd_npy_read(path, out, shape, ndim, err, sizeof err) != 0)
        return fail(ctx, "%s: %s", what, err);
    int64_t count = 1;
    for (int i = 0; i < *ndim; ++i)
        count *= shape[i]; /* lgd_npy_read checked that the product fits */
    if (count != dim) {
        char s[200];
        shape_text(shape, *ndim, s, sizeof s);
        free(*out);
        *out = NULL;
        return fail(ctx, "%s '%s' has shape %s, %lld elements; the model's dim is %lld", what,
                    path, s, (long long)count, (long long)dim);
    }
    return 0;
}

/* The configuration: mask=PATH,known=PATH[,sigma=S]; paths point into buf. */
typedef struct config {
    const char *mask, *known;
    double sigma;
} config;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        ++s;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static int32_t parse_config(lgd_context *ctx, char *buf, config *c)
{
    static const char usage[] = "the config is mask=PATH,known=PATH[,sigma=S]";
    int have_sigma = 0;
    c->mask = c->known = NULL;
    c->sigma = INPAINTING_DEFAULT_SIGMA;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq)
            return fail(ctx, "'%s' is not KEY=VALUE; %s", trim(item), usage);
        *eq = '\0';
        char *key = trim(item), *value = trim(eq + 1);
        if (value[0] == '\0')
            return fail(ctx, "%s has no value; %s", key, usage);
        if (strcmp(key, "mask") == 0 || strcmp(key, "known") == 0) {
            const char **slot = key[0] == 'm' ? &c->mask : &c->known;
            if (*slot)
                return fail(ctx, "%s is given twice", key);
            *slot = value;
        } else if (strcmp(key, "sigma") == 0) {
            if (have_sigma++)
                return fail(ctx, "sigma is given twice");
            char *end;
            errno = 0;
            double s = strtod(value, &end);
            if (end == value || *end != '\0' || errno == ERANGE || !isfinite(s) || s <= 0.0)
                return fail(ctx, "sigma '%s' is not a finite number > 0", value);
            c->sigma = s;
        } else {
            return fail(ctx, "unknown key '%s'; %s", key, usage);
        }
    }
    if (!c->mask || !c->known)
        return fail(ctx, "%s is missing; %s", !c->mask ? "mask" : "known", usage);
    return 0;
}

static int32_t inpainting_create(lgd_context *ctx, int64_t dim, const char *config_text,
                                 lgd_loss **out_loss)
{
    *out_loss = NULL;
    size_t len = strlen(config_text);
    char *buf = malloc(len + 1);
    inpainting *p = calloc(1, sizeof *p);
    int32_t rc = 1;
    if (!buf || !p) {
        rc = fail(ctx, "out of memory");
        goto done;
    }
    memcpy(buf, config_text, len + 1);
    config c;
    if ((rc = parse_config(ctx, buf, &c)))
        goto done;
    int64_t mshape[LGD_NPY_MAX_NDIM], kshape[LGD_NPY_MAX_NDIM];
    int mndim, kndim;
    if ((rc = read_array(ctx, "mask", c.mask, dim, &p->mask, mshape, &mndim)) ||
        (rc = read_array(ctx, "known", c.known, dim, &p->known, kshape, &kndim)))
        goto done;
    if (mndim != kndim || memcmp(mshape, kshape, sizeof mshape) != 0) {
        char ms[200], ks[200];
        shape_text(mshape, mndim, ms, sizeof ms);
        shape_text(kshape, kndim, ks, sizeof ks);
        rc = fail(ctx, "mask '%s' has shape %s but known '%s' has shape %s", c.mask, ms,
                  c.known, ks);
        goto done;
    }
    for (int64_t j = 0; j < dim; ++j) {
        if (!(p->mask[j] >= 0.0f && p->mask[j] <= 1.0f)) {
            rc = fail(ctx, "mask '%s': element %lld is %g; mask values must be in [0, 1]",
                      c.mask, (long long)j, (double)p->mask[j]);
            goto done;
        }
        if (!isfinite(p->known[j])) {
            rc = fail(ctx, "known '%s': element %lld is not finite", c.known, (long long)j);
            goto done;
        }
    }
    p->dim = dim;
    p->inv_s2 = 1.0 / (c.sigma * c.sigma);
    if (!isfinite(p->inv_s2)) {
        rc = fail(ctx, "sigma %g is too small (1 / sigma^2 overflows)", c.sigma);
        goto done;
    }
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.memory = LGD_MEMORY_HOST;
    cb.dim = dim;
    cb.eval = inpainting_eval;
    cb.destroy = inpainting_free;
    cb.user = p;
    lgd_status st = lgd_loss_create_callbacks(ctx, &cb, out_loss);
    if (st != LGD_OK) {
        rc = fail(ctx, "%s", lgd_context_last_error(ctx));
        goto done;
    }
    p = NULL; /* the loss owns it now */
    rc = 0;
done:
    inpainting_free(p);
    free(buf);
    return rc;
}

static const lgd_plugin_loss inpainting_losses[] = {
    { "inpainting",
      "mask=PATH,known=PATH[,sigma=S]: sum_j mask_j (x_j - known_j)^2 / (2 sigma^2); "
      ".npy arrays of dim elements, mask in [0, 1], sigma 1 by default",
      inpainting_create },
};

static const lgd_plugin_info inpainting_info =
    LGD_PLUGIN_INFO_INIT("inpainting", inpainting_losses, 1, NULL, 0);

LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void) { return &inpainting_info; }
