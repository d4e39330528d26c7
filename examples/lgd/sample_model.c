/*
 * sample_model.c - lgd sample's model and condition rows:
 *
 *   --model FILE                      a network file (lgd_network_load; its adapter)
 *   --model gmm:MEANS.npy:VARS.npy[:WEIGHTS.npy]
 *                                     a Gaussian mixture: means [K][dim] (or [K]: 1-D),
 *                                     variances [K] (isotropic), [K][dim] (diagonal) or
 *                                     [K][dim][dim] (full), weights [K] (default equal)
 *   --model mixture1d                 the paper's 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)
 *   --model trajectory[:FRAMES]       the trajectory prior (lgd_model_create_trajectory_prior)
 *   --model plugin:PATH:NAME[:CONFIG] a plugin's model (lgd_model_load_plugin)
 *
 *   --class K        one label for every row: one-hot K into cond_dim
 *   --cond FILE.npy  [N][cond_dim] or [1][cond_dim] rows, or [N] / [1] integer labels
 *
 * and the .npy arrays every spec reads (through examples/npy).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "sample.h"
#include "tool_util.h"

int sample_run_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lgd %s: ", CMD);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_EXIT_ERROR;
}

/* ---- arrays ---- */

int sample_array_load(const char *path, const char *what, sample_array *a)
{
    char err[512] = "";
    memset(a, 0, sizeof *a);
    if (lgd_npy_read(path, &a->data, a->shape, &a->ndim, err, sizeof err) != 0) {
        a->data = NULL;
        return sample_run_error("cannot read %s %s: %s", what, path,
                                err[0] ? err : "unknown error");
    }
    a->numel = 1;
    for (int i = 0; i < a->ndim; i++)
        a->numel *= a->shape[i];
    return 0;
}

void sample_array_free(sample_array *a)
{
    free(a->data);
    a->data = NULL;
}

const char *sample_shape_text(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    if (ndim == 0)
        snprintf(buf, size, "[] (a scalar)");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "[%" PRId64 "]", shape[i]);
    return buf;
}

int sample_parse_number(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* ---- model specs ---- */

/* The paper's mixture (lgd mixture): 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2). */
static int open_mixture1d(lgd_context *ctx, sample_model *m)
{
    const float w[2] = { 0.5f, 0.5f }, mu[2] = { -1.0f, 1.0f }, var[2] = { 0.04f, 0.04f };
    snprintf(m->what, sizeof m->what, "mixture1d: 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)");
    return CK(ctx, lgd_model_create_gmm(ctx, 1, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC,
                                        &m->model));
}

/* gmm:MEANS.npy:VARS.npy[:WEIGHTS.npy] with the file names in f[0..n). */
static int open_gmm(lgd_context *ctx, char **f, int n, sample_model *m)
{
    sample_array mu = { 0 }, var = { 0 }, w = { 0 };
    char s1[128], s2[128];
    int rc = TOOL_EXIT_ERROR;
    float *weights = NULL;
    if (sample_array_load(f[0], "gmm means", &mu) || sample_array_load(f[1], "gmm variances",
                                                                         &var) ||
        (n == 3 && sample_array_load(f[2], "gmm weights", &w)))
        goto done;
    if (mu.ndim != 1 && mu.ndim != 2) {
        sample_run_error("gmm means %s has shape %s: expected [K][dim] (or [K] for 1-D)", f[0],
                         sample_shape_text(mu.shape, mu.ndim, s1, sizeof s1));
        goto done;
    }
    const int64_t K = mu.shape[0], dim = mu.ndim == 2 ? mu.shape[1] : 1;
    lgd_covariance layout;
    if (var.numel == K && var.ndim <= 2 && (var.ndim < 2 || var.shape[1] == 1 || dim == 1))
        layout = LGD_COVARIANCE_ISOTROPIC;
    else if (var.ndim == 2 && var.shape[0] == K && var.shape[1] == dim)
        layout = LGD_COVARIANCE_DIAGONAL;
    else if (var.ndim == 3 && var.shape[0] == K && var.shape[1] == dim && var.shape[2] == dim)
        layout = LGD_COVARIANCE_FULL;
    else {
        sample_run_error("gmm variances %s has shape %s: expected [%" PRId64 "] (isotropic), "
                         "[%" PRId64 "][%" PRId64 "] (diagonal) or [%" PRId64 "][%" PRId64
                         "][%" PRId64 "] (full) for means %s",
                         f[1], sample_shape_text(var.shape, var.ndim, s1, sizeof s1), K, K, dim,
                         K, dim, dim, sample_shape_text(mu.shape, mu.ndim, s2, sizeof s2));
        goto done;
    }
    if (n == 3 && (w.numel != K || w.ndim > 1)) {
        sample_run_error("gmm weights %s has shape %s: expected [%" PRId64 "] (one per "
                         "component)", f[2], sample_shape_text(w.shape, w.ndim, s1, sizeof s1),
                         K);
        goto done;
    }
    weights = malloc((size_t)K * sizeof *weights);
    if (!weights) {
        tool_out_of_memory(CMD);
        goto done;
    }
    for (int64_t k = 0; k < K; k++)
        weights[k] = n == 3 ? w.data[k] : 1.0f;
    static const char *const layouts[] = { "full", "diagonal", "isotropic" };
    snprintf(m->what, sizeof m->what, "gmm: %" PRId64 " components in %" PRId64 " dimensions, "
             "%s covariances", K, dim, layouts[layout]);
    if (CK(ctx, lgd_model_create_gmm(ctx, dim, K, weights, mu.data, var.data, layout,
                                     &m->model)))
        goto done;
    rc = 0;
done:
    free(weights);
    sample_array_free(&mu);
    sample_array_free(&var);
    sample_array_free(&w);
    return rc;
}

/* trajectory[:FRAMES] */
static int open_trajectory(lgd_context *ctx, const char *frames, sample_model *m)
{
    lgd_trajectory_prior_options o = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    long long t;
    if (frames) {
        if (tool_parse_int(frames, 1, 4096, &t))
            return sample_usage_error("--model trajectory:FRAMES needs FRAMES in [1, 4096], "
                                      "not '%s'", frames);
        o.frames = (int32_t)t;
    }
    m->row_shape[0] = o.frames;
    m->row_shape[1] = 2;
    m->row_ndim = 2;
    snprintf(m->what, sizeof m->what, "trajectory prior: %d frames of 2-D velocities",
             (int)o.frames);
    return CK(ctx, lgd_model_create_trajectory_prior(ctx, &o, &m->model));
}

/* An integer metadata value of the network, or -1. */
static int64_t meta_int(const lgd_network *net, const char *key)
{
    long long v;
    const char *s = lgd_network_metadata(net, key);
    return s && !tool_parse_int(s, 1, INT32_MAX, &v) ? (int64_t)v : -1;
}

/* One sample's shape from the network's metadata: [C][H][W] for an image U-Net, [T][C] for
 * a temporal U-Net, lgd.input_shape for a layer; [dim] otherwise. */
static void network_row_shape(sample_model *m)
{
    const lgd_network *net = m->network;
    const char *arch = lgd_network_metadata(net, "lgd.architecture");
    int64_t s[4] = { 0 };
    int nd = 0;
    if (arch && !strcmp(arch, "unet")) {
        s[0] = meta_int(net, "lgd.in_channels");
        s[1] = s[2] = meta_int(net, "lgd.image_size");
        nd = 3;
    } else if (arch && !strcmp(arch, "temporal_unet")) {
        s[0] = meta_int(net, "lgd.horizon");
        s[1] = meta_int(net, "lgd.in_channels");
        nd = 2;
    } else if (arch && !strcmp(arch, "layer")) {
        const char *p = lgd_network_metadata(net, "lgd.input_shape");
        int ok = p != NULL;
        while (ok && *p) {
            char *end = NULL;
            long long v = strtoll(p, &end, 10);
            if (nd == 4 || end == p || v < 1 || (*end != ',' && *end != '\0'))
                ok = 0;
            else {
                s[nd++] = v;
                p = *end ? end + 1 : end;
            }
        }
        if (!ok)
            nd = 0;
    }
    int64_t prod = nd ? 1 : 0;
    for (int i = 0; i < nd; i++)
        prod = s[i] > 0 && prod <= m->dim / s[i] ? prod * s[i] : -1;
    if (nd == 0 || prod != m->dim) {
        m->row_shape[0] = m->dim;
        m->row_ndim = 1;
        return;
    }
    memcpy(m->row_shape, s, sizeof s);
    m->row_ndim = nd;
    m->image = nd == 3;
}

/* A network file. */
static int open_network(lgd_context *ctx, const char *path, sample_model *m)
{
    if (CK(ctx, lgd_network_load(ctx, path, &m->network)))
        return TOOL_EXIT_ERROR;
    if (CK(ctx, lgd_model_create_from_network(ctx, m->network, NULL, &m->model)))
        return TOOL_EXIT_ERROR;
    const char *arch = lgd_network_metadata(m->network, "lgd.architecture");
    const char *pred = lgd_network_metadata(m->network, "lgd.prediction");
    snprintf(m->what, sizeof m->what, "network %s: %s, %s prediction, %" PRId64
             " parameters", path, arch ? arch : "?", pred ? pred : "eps",
             lgd_network_parameter_count(m->network));
    return 0;
}

/* Splits a copy of spec at ':' into at most max fields (the last takes the rest);
 * returns the number of fields. buf holds the copy. */
static int split_spec(const char *spec, char *buf, size_t size, char **f, int max)
{
    snprintf(buf, size, "%s", spec);
    int n = 0;
    char *p = buf;
    while (n < max) {
        f[n++] = p;
        char *colon = n < max ? strchr(p, ':') : NULL;
        if (!colon)
            break;
        *colon = '\0';
        p = colon + 1;
    }
    return n;
}

int sample_model_open(lgd_context *ctx, const sample_config *cfg, sample_model *m)
{
    const char *spec = cfg->model_spec;
    char buf[4096];
    char *f[4];
    int rc;
    memset(m, 0, sizeof *m);
    if (strlen(spec) >= sizeof buf)
        return sample_usage_error("--model: the spec is too long");
    if (!strcmp(spec, "mixture1d")) {
        rc = open_mixture1d(ctx, m);
    } else if (!strcmp(spec, "trajectory") || !strncmp(spec, "trajectory:", 11)) {
        rc = open_trajectory(ctx, spec[10] ? spec + 11 : NULL, m);
    } else if (!strncmp(spec, "gmm:", 4)) {
        int n = split_spec(spec + 4, buf, sizeof buf, f, 4);
        if (n < 2 || n > 3 || !*f[0] || !*f[1] || (n == 3 && !*f[2]))
            return sample_usage_error("--model gmm needs gmm:MEANS.npy:VARS.npy[:WEIGHTS.npy], "
                                      "not '%s'", spec);
        rc = open_gmm(ctx, f, n, m);
    } else if (!strncmp(spec, "plugin:", 7)) {
        int n = split_spec(spec + 7, buf, sizeof buf, f, 3);
        if (n < 2 || !*f[0] || !*f[1])
            return sample_usage_error("--model plugin needs plugin:PATH:NAME[:CONFIG], not '%s'",
                                      spec);
        snprintf(m->what, sizeof m->what, "plugin %.120s: model %.80s", f[0], f[1]);
        rc = CK(ctx, lgd_model_load_plugin(ctx, f[0], f[1], n == 3 ? f[2] : "", &m->model));
    } else {
        rc = open_network(ctx, !strncmp(spec, "net:", 4) ? spec + 4 : spec, m);
    }
    if (rc)
        return rc;
    m->dim = lgd_model_dim(m->model);
    m->cond_dim = lgd_model_cond_dim(m->model);
    if (m->network)
        network_row_shape(m);
    else if (m->row_ndim == 0 || m->row_shape[0] * (m->row_ndim == 2 ? m->row_shape[1] : 1) !=
                                     m->dim) {
        m->row_shape[0] = m->dim;
        m->row_ndim = 1;
    }
    return 0;
}

void sample_model_close(sample_model *m)
{
    lgd_model_destroy(m->model);
    lgd_network_destroy(m->network);
    m->model = NULL;
    m->network = NULL;
}

/* ---- condition rows ---- */

/* One-hot rows of labels[n] (checked: integers in [0, cond_dim)) into c. */
static int labels_to_rows(const float *labels, int64_t n, const char *path, sample_cond *c)
{
    for (int64_t i = 0; i < n; i++) {
        float v = labels[i];
        if (!(v >= 0.0f && v < (float)c->cond_dim && v == floorf(v)))
            return sample_run_error("--cond %s: label %g of row %" PRId64 " is not a class in "
                                    "[0, %" PRId64 ") (the model's cond_dim)", path, (double)v,
                                    i, c->cond_dim);
    }
    c->rows = n;
    c->data = calloc((size_t)n * (size_t)c->cond_dim, sizeof *c->data);
    if (!c->data)
        return tool_out_of_memory(CMD);
    for (int64_t i = 0; i < n; i++)
        c->data[i * c->cond_dim + (int64_t)labels[i]] = 1.0f;
    return 0;
}

/* --cond FILE.npy */
static int load_cond(const sample_config *cfg, sample_cond *c)
{
    sample_array a;
    char s1[128];
    if (sample_array_load(cfg->cond_file, "--cond", &a))
        return TOOL_EXIT_ERROR;
    int rc = 0;
    if (a.ndim == 1 && (a.shape[0] == 1 || a.shape[0] == cfg->samples)) {
        rc = labels_to_rows(a.data, a.shape[0], cfg->cond_file, c);
    } else if (a.ndim == 2 && a.shape[1] == c->cond_dim &&
               (a.shape[0] == 1 || a.shape[0] == cfg->samples)) {
        for (int64_t i = 0; i < a.numel && !rc; i++)
            if (!isfinite(a.data[i]))
                rc = sample_run_error("--cond %s: entry %" PRId64 " is not finite",
                                      cfg->cond_file, i);
        if (!rc) {
            c->rows = a.shape[0];
            c->data = a.data;
            a.data = NULL;
        }
    } else {
        rc = sample_run_error("--cond %s has shape %s: expected labels [%" PRId64 "] or [1], "
                              "or condition rows [%" PRId64 "][%" PRId64 "] or [1][%" PRId64
                              "] (--samples %" PRId64 ", the model's cond_dim %" PRId64 ")",
                              cfg->cond_file, sample_shape_text(a.shape, a.ndim, s1, sizeof s1),
                              cfg->samples, cfg->samples, c->cond_dim, c->cond_dim,
                              cfg->samples, c->cond_dim);
    }
    sample_array_free(&a);
    return rc;
}

int sample_cond_prepare(const sample_config *cfg, const sample_model *m, sample_cond *c)
{
    memset(c, 0, sizeof *c);
    c->cond_dim = m->cond_dim;
    int given = cfg->class_label >= 0 || cfg->cond_file;
    if (m->cond_dim == 0) {
        if (given)
            return sample_usage_error("the model is unconditional: --%s does not apply",
                                      cfg->cond_file ? "cond" : "class");
        return 0;
    }
    if (!given)
        return sample_usage_error("the model is conditional (cond_dim %" PRId64 "): give "
                                  "--class K or --cond FILE.npy", m->cond_dim);
    if (cfg->cond_file)
        return load_cond(cfg, c);
    if (cfg->class_label >= m->cond_dim)
        return sample_usage_error("--class %d is out of range: the model has %" PRId64
                                  " classes (cond_dim)", (int)cfg->class_label, m->cond_dim);
    float label = (float)cfg->class_label;
    return labels_to_rows(&label, 1, "--class", c);
}

void sample_cond_rows(const sample_cond *c, int64_t row0, int64_t n, float *out)
{
    const size_t row = (size_t)c->cond_dim * sizeof *out;
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * c->cond_dim, c->data + (c->rows == 1 ? 0 : (row0 + i) * c->cond_dim),
               row);
}

void sample_cond_free(sample_cond *c)
{
    free(c->data);
    c->data = NULL;
}
