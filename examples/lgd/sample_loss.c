/*
 * sample_loss.c - lgd sample's loss: one --loss SPEC per term, each with its
 * --loss-weight, summed (lgd_loss_create_sum) when there are several or a weight is not 1.
 *
 *   sqerr:TARGET.npy[:WEIGHTS.npy]       sum_j w_j (x_j - y_j)^2
 *   linear:H.npy:Y.npy:SIGMA             |y - H x|^2 / (2 SIGMA^2), H [m][dim]
 *   logistic:A.npy:B                     -log sigmoid(a . x + B)
 *   path:PATH.npy[:KEY=V,...]            the trajectory path loss, PATH [frames][2]
 *   obstacle:GOAL.npy:OBST.npy[:KEY=V,...]
 *                                        obstacle avoidance, GOAL [2] or none, OBST [K][3]
 *                                        (centre x, y, radius) or none
 *   mixture1d[:K]                        the paper's 1-D loss -log p(y = K | x0), K 0 or 1
 *   plugin:PATH:NAME[:CONFIG]            a plugin's loss (lgd_loss_load_plugin)
 *
 * Targets (sqerr's TARGET, linear's Y, path's PATH, obstacle's GOAL) are shared by every
 * row, or given per row of the run with a first axis of --samples rows: such a loss is
 * built for each batch from its rows (row r of the run gets target row r, whatever the
 * batch, --rows or rank). Trajectory keys: frames, stride, offset, velocities (0/1),
 * vscale; obstacle also sharpness, weight (the obstacle weight), goal_weight.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "tool_util.h"

typedef enum term_kind {
    TERM_SQERR,
    TERM_LINEAR,
    TERM_LOGISTIC,
    TERM_PATH,
    TERM_OBSTACLE,
    TERM_PLUGIN    /* and mixture1d: a loss made once */
} term_kind;

struct sample_term {
    term_kind kind;
    float weight;
    sample_array a, b;      /* sqerr: target, weights; linear: H, y; logistic: a;
                               path: path; obstacle: goal, obstacles */
    int per_row;            /* the target has one row per sample of the run */
    int64_t row_len;        /* floats of one target row */
    int64_t m;              /* linear: rows of H */
    float number;           /* linear: sigma; logistic: b */
    lgd_trajectory_layout layout;
    lgd_obstacle_options obstacle;
    int64_t nobs;
    lgd_loss *fixed;        /* a loss made once (shared targets, plugins, mixture1d) */
};

/* The fields of a spec after its kind, split at ':' (the last one takes the rest). */
typedef struct spec_fields {
    char buf[4096];
    char *f[4];
    int n;
} spec_fields;

static void split(const char *rest, int max, spec_fields *s)
{
    snprintf(s->buf, sizeof s->buf, "%s", rest);
    s->n = 0;
    char *p = s->buf;
    while (s->n < max) {
        s->f[s->n++] = p;
        char *colon = s->n < max ? strchr(p, ':') : NULL;
        if (!colon)
            break;
        *colon = '\0';
        p = colon + 1;
    }
}

/* A target array of `row_len` floats per row: shared (row_len floats) or per row of the
 * run ([samples][...]). 0 or TOOL_EXIT_ERROR naming `what` and what was expected. */
static int target_rows(const sample_config *cfg, struct sample_term *t, const sample_array *a,
                       int64_t row_len, const char *what, const char *path, const char *expect)
{
    char s1[128];
    t->row_len = row_len;
    if (a->numel == row_len) {
        t->per_row = 0;
        return 0;
    }
    if (a->ndim >= 2 && a->shape[0] == cfg->samples && a->numel / cfg->samples == row_len &&
        a->numel % cfg->samples == 0) {
        t->per_row = 1;
        return 0;
    }
    return sample_run_error("%s %s has shape %s: expected %s (shared by every row) or a "
                            "first axis of %" PRId64 " rows (--samples), one per sample",
                            what, path, sample_shape_text(a->shape, a->ndim, s1, sizeof s1),
                            expect, cfg->samples);
}

static int parse_sqerr(const sample_config *cfg, const char *rest, int64_t dim,
                       struct sample_term *t)
{
    spec_fields s;
    char s1[128], expect[64];
    split(rest, 2, &s);
    if (!rest[0] || !*s.f[0] || (s.n == 2 && !*s.f[1]))
        return sample_usage_error("sqerr needs sqerr:TARGET.npy[:WEIGHTS.npy]");
    if (sample_array_load(s.f[0], "sqerr target", &t->a) ||
        (s.n == 2 && sample_array_load(s.f[1], "sqerr weights", &t->b)))
        return TOOL_EXIT_ERROR;
    snprintf(expect, sizeof expect, "%" PRId64 " values", dim);
    if (target_rows(cfg, t, &t->a, dim, "sqerr target", s.f[0], expect))
        return TOOL_EXIT_ERROR;
    if (s.n == 2 && t->b.numel != dim)
        return sample_run_error("sqerr weights %s has shape %s: expected %" PRId64 " values "
                                "(the model's dim)", s.f[1],
                                sample_shape_text(t->b.shape, t->b.ndim, s1, sizeof s1), dim);
    return 0;
}

static int parse_linear(const sample_config *cfg, const char *rest, int64_t dim,
                        struct sample_term *t)
{
    spec_fields s;
    char s1[128], expect[64];
    double sigma;
    split(rest, 3, &s);
    if (s.n != 3 || !*s.f[0] || !*s.f[1])
        return sample_usage_error("linear needs linear:H.npy:Y.npy:SIGMA");
    if (sample_parse_number(s.f[2], &sigma) || !(sigma > 0.0) || !(sigma < 3.4e38))
        return sample_usage_error("linear: SIGMA needs a number > 0, not '%s'", s.f[2]);
    t->number = (float)sigma;
    if (sample_array_load(s.f[0], "linear H", &t->a) ||
        sample_array_load(s.f[1], "linear y", &t->b))
        return TOOL_EXIT_ERROR;
    if (!((t->a.ndim == 2 && t->a.shape[1] == dim) || (t->a.ndim == 1 && t->a.shape[0] == dim)))
        return sample_run_error("linear H %s has shape %s: expected [m][%" PRId64 "] (the "
                                "model's dim)", s.f[0],
                                sample_shape_text(t->a.shape, t->a.ndim, s1, sizeof s1), dim);
    t->m = t->a.ndim == 2 ? t->a.shape[0] : 1;
    snprintf(expect, sizeof expect, "%" PRId64 " values (H's rows)", t->m);
    return target_rows(cfg, t, &t->b, t->m, "linear y", s.f[1], expect);
}

static int parse_logistic(const char *rest, int64_t dim, struct sample_term *t)
{
    spec_fields s;
    char s1[128];
    double b;
    split(rest, 2, &s);
    if (s.n != 2 || !*s.f[0])
        return sample_usage_error("logistic needs logistic:A.npy:B");
    if (sample_parse_number(s.f[1], &b) || !(b < 3.4e38 && b > -3.4e38))
        return sample_usage_error("logistic: B needs a finite number, not '%s'", s.f[1]);
    t->number = (float)b;
    if (sample_array_load(s.f[0], "logistic a", &t->a))
        return TOOL_EXIT_ERROR;
    if (t->a.numel != dim)
        return sample_run_error("logistic a %s has shape %s: expected %" PRId64 " values (the "
                                "model's dim)", s.f[0],
                                sample_shape_text(t->a.shape, t->a.ndim, s1, sizeof s1), dim);
    return 0;
}

/* KEY=V,... of a trajectory loss into t's layout and obstacle options; *frames gets the
 * frames key (0 when absent). */
static int parse_keys(char *keys, struct sample_term *t, int obstacle, int64_t *frames)
{
    *frames = 0;
    char *save = NULL;
    for (char *kv = strtok_r(keys, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        double v;
        if (!eq || sample_parse_number(eq + 1, &v))
            return sample_usage_error("%s: '%s' is not KEY=NUMBER", obstacle ? "obstacle" : "path",
                                      kv);
        *eq = '\0';
        const char *k = kv;
        int whole = v == (double)(int64_t)v && v >= 0 && v < 1e15;
        if (!strcmp(k, "frames") && whole && v >= 1)
            *frames = (int64_t)v;
        else if (!strcmp(k, "stride") && whole)
            t->layout.frame_stride = (int64_t)v;
        else if (!strcmp(k, "offset") && whole)
            t->layout.root_offset = (int64_t)v;
        else if (!strcmp(k, "velocities") && (v == 0 || v == 1))
            t->layout.velocities = (int32_t)v;
        else if (!strcmp(k, "vscale"))
            t->layout.velocity_scale = (float)v;
        else if (obstacle && !strcmp(k, "sharpness"))
            t->obstacle.sharpness = (float)v;
        else if (obstacle && !strcmp(k, "weight"))
            t->obstacle.obstacle_weight = (float)v;
        else if (obstacle && !strcmp(k, "goal_weight"))
            t->obstacle.goal_weight = (float)v;
        else
            return sample_usage_error("%s: unknown key or bad value '%s=%s' (keys: frames, stride, "
                                      "offset, velocities, vscale%s)",
                                      obstacle ? "obstacle" : "path", k, eq + 1,
                                      obstacle ? ", sharpness, weight, goal_weight" : "");
    }
    return 0;
}

static int parse_path(const sample_config *cfg, const char *rest, struct sample_term *t)
{
    spec_fields s;
    char s1[128];
    int64_t frames;
    split(rest, 2, &s);
    if (!rest[0] || !*s.f[0])
        return sample_usage_error("path needs path:PATH.npy[:KEY=V,...]");
    if (s.n == 2 && parse_keys(s.f[1], t, 0, &frames))
        return TOOL_EXIT_USAGE;
    if (sample_array_load(s.f[0], "path", &t->a))
        return TOOL_EXIT_ERROR;
    const sample_array *a = &t->a;
    if (a->ndim == 2 && a->shape[1] == 2) {
        t->layout.frames = a->shape[0];
    } else if (a->ndim == 3 && a->shape[2] == 2 && a->shape[0] == cfg->samples) {
        t->layout.frames = a->shape[1];
    } else {
        return sample_run_error("path %s has shape %s: expected [frames][2] (shared) or "
                                "[%" PRId64 "][frames][2] (one per sample, --samples)", s.f[0],
                                sample_shape_text(a->shape, a->ndim, s1, sizeof s1),
                                cfg->samples);
    }
    t->row_len = 2 * t->layout.frames;
    t->per_row = a->ndim == 3;
    return 0;
}

static int parse_obstacle(const sample_config *cfg, const char *rest, int64_t dim,
                          struct sample_term *t)
{
    spec_fields s;
    char s1[128];
    int64_t frames = 0;
    split(rest, 3, &s);
    if (s.n < 2 || !*s.f[0] || !*s.f[1])
        return sample_usage_error("obstacle needs obstacle:GOAL.npy|none:OBSTACLES.npy|none"
                                  "[:KEY=V,...]");
    if (s.n == 3 && parse_keys(s.f[2], t, 1, &frames))
        return TOOL_EXIT_USAGE;
    int goal = strcmp(s.f[0], "none") != 0, obs = strcmp(s.f[1], "none") != 0;
    if (!goal && !obs)
        return sample_usage_error("obstacle needs a goal or obstacles (both are 'none')");
    if ((goal && sample_array_load(s.f[0], "obstacle goal", &t->a)) ||
        (obs && sample_array_load(s.f[1], "obstacles", &t->b)))
        return TOOL_EXIT_ERROR;
    if (goal && target_rows(cfg, t, &t->a, 2, "obstacle goal", s.f[0], "2 values (x, y)"))
        return TOOL_EXIT_ERROR;
    if (obs) {
        if (t->b.numel % 3 || t->b.ndim > 2 || (t->b.ndim == 2 && t->b.shape[1] != 3))
            return sample_run_error("obstacles %s has shape %s: expected [K][3] (centre x, "
                                    "centre y, radius per obstacle)", s.f[1],
                                    sample_shape_text(t->b.shape, t->b.ndim, s1, sizeof s1));
        t->nobs = t->b.numel / 3;
    }
    if (frames == 0) {
        /* as many frames as fit: offset + (frames - 1) stride + 2 <= dim */
        int64_t room = dim - t->layout.root_offset - 2;
        frames = room >= 0 && t->layout.frame_stride > 0 ? room / t->layout.frame_stride + 1 : 1;
    }
    t->layout.frames = frames;
    return 0;
}

/* mixture1d[:K]: lgd mixture's loss -log p(y = K | x0) for 0.5 N(-1, 0.2^2) + 0.5 N(1,
 * 0.2^2): logistic with a = (m_K - m_other) / s^2 = -50 (K = 0) or 50, b = 0. */
static int make_mixture1d(lgd_context *ctx, const char *rest, int64_t dim,
                          struct sample_term *t)
{
    long long k = 0;
    if (rest && tool_parse_int(rest, 0, 1, &k))
        return sample_usage_error("mixture1d:K needs K = 0 or 1, not '%s'", rest);
    if (dim != 1)
        return sample_run_error("the mixture1d loss is 1-D, but the model's dim is %" PRId64, dim);
    float a = k == 0 ? -50.0f : 50.0f;
    return CK(ctx, lgd_loss_create_logistic(ctx, 1, &a, 0.0f, &t->fixed));
}

/* plugin:PATH:NAME[:CONFIG] */
static int make_plugin(lgd_context *ctx, const char *rest, int64_t dim, struct sample_term *t)
{
    spec_fields s;
    split(rest, 3, &s);
    if (s.n < 2 || !*s.f[0] || !*s.f[1])
        return sample_usage_error("plugin needs plugin:PATH:NAME[:CONFIG]");
    return CK(ctx, lgd_loss_load_plugin(ctx, s.f[0], s.f[1], dim, s.n == 3 ? s.f[2] : "",
                                        &t->fixed));
}

/* One --loss SPEC into t. */
static int parse_term(lgd_context *ctx, const sample_config *cfg, const char *spec, int64_t dim,
                      struct sample_term *t)
{
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *rest = colon ? colon + 1 : "";
    if (strlen(spec) >= sizeof(((spec_fields *)0)->buf))
        return sample_usage_error("--loss: the spec is too long");
#define IS(name) (n == strlen(name) && !strncmp(spec, name, n))
    if (IS("sqerr")) {
        t->kind = TERM_SQERR;
        return parse_sqerr(cfg, rest, dim, t);
    }
    if (IS("linear")) {
        t->kind = TERM_LINEAR;
        return parse_linear(cfg, rest, dim, t);
    }
    if (IS("logistic")) {
        t->kind = TERM_LOGISTIC;
        return parse_logistic(rest, dim, t);
    }
    if (IS("path")) {
        t->kind = TERM_PATH;
        return parse_path(cfg, rest, t);
    }
    if (IS("obstacle")) {
        t->kind = TERM_OBSTACLE;
        return parse_obstacle(cfg, rest, dim, t);
    }
    if (IS("mixture1d")) {
        t->kind = TERM_PLUGIN;
        return make_mixture1d(ctx, colon ? rest : NULL, dim, t);
    }
    if (IS("plugin")) {
        t->kind = TERM_PLUGIN;
        return make_plugin(ctx, rest, dim, t);
    }
#undef IS
    return sample_usage_error("unknown loss '%.*s' in '%s' (sqerr, linear, logistic, path, "
                              "obstacle, mixture1d, plugin)", (int)n, spec, spec);
}

/* Term t for rows [row0, row0 + rows) (its own rows of a per-row target) into *out. */
static int make_term(const struct sample_term *t, lgd_context *ctx, int64_t dim, int64_t row0,
                     int64_t rows, lgd_loss **out)
{
    if (t->fixed) {
        *out = lgd_loss_retain(t->fixed);
        return 0;
    }
    const int64_t trows = t->per_row ? rows : 1;
    const float *target = t->a.data ? t->a.data + (t->per_row ? row0 * t->row_len : 0) : NULL;
    switch (t->kind) {
    case TERM_SQERR:
        return CK(ctx, lgd_loss_create_squared_error(ctx, dim, target, trows, t->b.data, out));
    case TERM_LINEAR:
        return CK(ctx, lgd_loss_create_linear(ctx, dim, t->m, t->a.data,
                                              t->b.data + (t->per_row ? row0 * t->row_len : 0),
                                              trows, t->number, out));
    case TERM_LOGISTIC:
        return CK(ctx, lgd_loss_create_logistic(ctx, dim, t->a.data, t->number, out));
    case TERM_PATH:
        return CK(ctx, lgd_loss_create_path(ctx, dim, &t->layout, target, trows, out));
    case TERM_OBSTACLE:
        return CK(ctx, lgd_loss_create_obstacle_avoidance(ctx, dim, &t->layout, target, trows,
                                                          t->b.data, t->nobs, &t->obstacle,
                                                          out));
    default:
        return TOOL_EXIT_ERROR;
    }
}

int sample_loss_build(const sample_loss *L, lgd_context *ctx, int64_t row0, int64_t rows,
                      lgd_loss **out)
{
    lgd_loss *terms[SAMPLE_MAX_LOSSES] = { NULL };
    float weights[SAMPLE_MAX_LOSSES];
    int rc = 0, plain = L->nterms == 1 && L->terms[0].weight == 1.0f;
    *out = NULL;
    for (int k = 0; k < L->nterms && !rc; k++) {
        rc = make_term(&L->terms[k], ctx, L->dim, row0, rows, &terms[k]);
        weights[k] = L->terms[k].weight;
    }
    if (!rc && plain) {
        *out = terms[0];
        return 0;
    }
    if (!rc)
        rc = CK(ctx, lgd_loss_create_sum(ctx, L->nterms, terms, weights, out));
    for (int k = 0; k < L->nterms; k++)
        lgd_loss_destroy(terms[k]);
    return rc ? TOOL_EXIT_ERROR : 0;
}

int sample_loss_open(lgd_context *ctx, const sample_config *cfg, int64_t dim, sample_loss *L)
{
    memset(L, 0, sizeof *L);
    L->dim = dim;
    if (cfg->nloss == 0)
        return 0;
    L->terms = calloc((size_t)cfg->nloss, sizeof *L->terms);
    if (!L->terms)
        return tool_out_of_memory(CMD);
    size_t used = 0;
    for (int k = 0; k < cfg->nloss; k++) {
        struct sample_term *t = &L->terms[k];
        t->weight = cfg->loss_weights[k];
        t->layout = (lgd_trajectory_layout)LGD_TRAJECTORY_LAYOUT_INIT;
        t->obstacle = (lgd_obstacle_options)LGD_OBSTACLE_OPTIONS_INIT;
        L->nterms = k + 1;
        int rc = parse_term(ctx, cfg, cfg->loss_specs[k], dim, t);
        if (rc)
            return rc;
        L->per_row |= t->per_row;
        if (used < sizeof L->what)
            used += (size_t)snprintf(L->what + used, sizeof L->what - used, "%s%g * %s",
                                     k ? " + " : "", (double)t->weight, cfg->loss_specs[k]);
    }
    /* Make every term once now (the first row alone), so that a bad layout, value or
     * plugin fails before any sampling; the shared ones are kept. */
    for (int k = 0; k < L->nterms; k++) {
        struct sample_term *t = &L->terms[k];
        lgd_loss *probe = NULL;
        if (make_term(t, ctx, dim, cfg->row_begin, 1, &probe))
            return TOOL_EXIT_ERROR;
        if (!t->per_row && !t->fixed)
            t->fixed = probe;
        else
            lgd_loss_destroy(probe);
    }
    return 0;
}

void sample_loss_close(sample_loss *L)
{
    for (int k = 0; k < L->nterms; k++) {
        sample_array_free(&L->terms[k].a);
        sample_array_free(&L->terms[k].b);
        lgd_loss_destroy(L->terms[k].fixed);
    }
    free(L->terms);
    L->terms = NULL;
    L->nterms = 0;
}
