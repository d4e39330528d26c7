/*
 * sample_run.c - lgd sample's run: the rows [begin, end) of this process in batches, with
 * the guidance and sampler the options describe, a progress indicator and the per-step
 * diagnostics.
 *
 * Byte-identical parts. Noise and Monte Carlo draws are keyed by (seed, step, row): each
 * batch starts its sampler with first_row = its first row of the run (lgd_sampler_init).
 * That alone does not make a row's bytes independent of the batch: a network's GEMMs and
 * convolutions (OpenBLAS, oneDNN) may round a row differently in a batch of another size.
 * So the batches are always those of the run's grid, rows [k B, min((k + 1) B, N)) for
 * --batch B and --samples N, whichever part of the run (--rows, a rank) computes them: a
 * part that starts or ends inside a grid batch computes that whole batch and keeps its
 * own rows (at most B - 1 extra rows at each end). With the same thread count
 * (--threads) every row is then computed exactly as in the whole run.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample.h"
#include "tool_util.h"

/* The progress shown: a bar on a terminal (tool.h's indicator), else a plain line at
 * every tenth of the work. */
typedef struct run_progress {
    progress bar;
    int plain;              /* plain lines (stderr is not a terminal) */
    int last_tenth;         /* the last tenth a plain line was printed for */
    double start_ms;
    double per_sample;      /* units (rows x steps) of one sample */
    char label[64];
} run_progress;

static void progress_begin(run_progress *rp, const char *label, double total, double steps,
                           int quiet)
{
    int show = label != NULL && !quiet;
    progress_start(&rp->bar, label ? label : "", total, !show);
    rp->plain = show && !isatty(STDERR_FILENO);
    rp->last_tenth = 0;
    rp->start_ms = tool_now_ms();
    rp->per_sample = steps;
    snprintf(rp->label, sizeof rp->label, "%s", label ? label : "");
}

/* "1:02:03" or "2:03" */
static void format_duration(double s, char *buf, size_t size)
{
    if (!(s >= 0.0) || s > 1e8) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

/* After `units` more units (rows x steps) are done. */
static void progress_update(run_progress *rp, double units)
{
    progress_advance(&rp->bar, units);
    if (!rp->bar.enabled && !rp->plain)
        return;
    const double done = rp->bar.done, total = rp->bar.total;
    const double secs = (tool_now_ms() - rp->start_ms) / 1e3;
    const double rate = secs > 0.0 ? done / rp->per_sample / secs : 0.0; /* samples/s */
    const double eta = done > 0.0 ? secs * (total - done) / done : -1.0;
    char eta_text[32], detail[160];
    format_duration(eta, eta_text, sizeof eta_text);
    if (rp->bar.enabled) {
        char bar[21];
        int filled = (int)(20.0 * done / total);
        for (int i = 0; i < 20; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[20] = '\0';
        snprintf(detail, sizeof detail, "[%s] %.0f/%.0f samples  %.3g samples/s  ETA %s", bar,
                 done / rp->per_sample, total / rp->per_sample, rate, eta_text);
        progress_show(&rp->bar, 0.0, detail);
        return;
    }
    int tenth = (int)(10.0 * done / total + 1e-9);
    if (tenth <= rp->last_tenth)
        return;
    rp->last_tenth = tenth;
    fprintf(stderr, "%s %3d%%  %.0f/%.0f samples  %.3g samples/s  ETA %s\n", rp->label,
            10 * tenth, done / rp->per_sample, total / rp->per_sample, rate, eta_text);
    fflush(stderr);
}

/* ---- diagnostics ---- */

static int diag_alloc(sample_diag *d, int32_t steps)
{
    d->steps = steps;
    d->sigmas = calloc((size_t)steps + 1, sizeof *d->sigmas);
    double **arrays[] = { &d->rows, &d->sum_loss, &d->sum_ess, &d->sum_grad_norm,
                          &d->sum_lambda, &d->active_rows, &d->min_ess };
    int bad = !d->sigmas;
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++) {
        *arrays[k] = calloc((size_t)steps, sizeof(double));
        bad |= !*arrays[k];
    }
    if (bad)
        return tool_out_of_memory(CMD);
    for (int32_t i = 0; i < steps; i++)
        d->min_ess[i] = INFINITY;
    return 0;
}

static void diag_free(sample_diag *d)
{
    free(d->sigmas);
    free(d->rows);
    free(d->sum_loss);
    free(d->sum_ess);
    free(d->sum_grad_norm);
    free(d->sum_lambda);
    free(d->active_rows);
    free(d->min_ess);
    memset(d, 0, sizeof *d);
}

/* Step i's report, rows [lo, hi) of its batch (the rows this process keeps), into the
 * sums (in row order, in double). */
static void diag_add(sample_diag *d, int32_t i, const lgd_guidance_report *r, int64_t lo,
                     int64_t hi)
{
    d->rows[i] += (double)(hi - lo);
    if (r->active)
        d->active_rows[i] += (double)(hi - lo);
    for (int64_t k = lo; k < hi; k++) {
        d->sum_loss[i] += r->row_loss[k];
        d->sum_ess[i] += r->row_ess[k];
        d->sum_grad_norm[i] += r->row_grad_norm[k];
        d->sum_lambda[i] += r->row_lambda[k];
        if (r->row_ess[k] < d->min_ess[i])
            d->min_ess[i] = r->row_ess[k];
    }
}

/* ---- the objects of a batch ---- */

/* What the guidance and sampler need; made once, or per batch for per-row targets. */
typedef struct run_objects {
    lgd_loss *loss;
    lgd_guidance *guidance;
    lgd_sampler *sampler;
} run_objects;

static void objects_free(run_objects *o)
{
    lgd_sampler_destroy(o->sampler);
    lgd_guidance_destroy(o->guidance);
    lgd_loss_destroy(o->loss);
    memset(o, 0, sizeof *o);
}

/* The sampler options of cfg; a sigmas:FILE schedule is read into *grid (freed by the
 * caller). */
static int sampler_options(const sample_config *cfg, lgd_sampler_options *so,
                           sample_array *grid)
{
    *so = (lgd_sampler_options)LGD_SAMPLER_OPTIONS_INIT;
    so->kind = cfg->sampler;
    so->steps = cfg->steps;
    so->eta = cfg->eta;
    so->sigma_min = cfg->sigma_min;
    so->sigma_max = cfg->sigma_max;
    so->rho = cfg->rho;
    so->vp_timesteps = cfg->vp_timesteps;
    switch (cfg->schedule) {
    case SCHEDULE_KARRAS:
        so->schedule = LGD_SCHEDULE_KARRAS;
        break;
    case SCHEDULE_VP_LINEAR:
        so->schedule = LGD_SCHEDULE_VP_LINEAR;
        break;
    case SCHEDULE_VP_COSINE:
        so->schedule = LGD_SCHEDULE_VP_COSINE;
        break;
    case SCHEDULE_FILE:
        if (sample_array_load(cfg->sigmas_file, "--schedule sigmas", grid))
            return TOOL_EXIT_ERROR;
        if (grid->ndim != 1 || grid->numel < 1 || grid->numel > (1 << 22)) {
            char s1[128];
            return sample_run_error("--schedule sigmas:%s has shape %s: expected a 1-D array "
                                    "of decreasing noise levels", cfg->sigmas_file,
                                    sample_shape_text(grid->shape, grid->ndim, s1, sizeof s1));
        }
        so->schedule = LGD_SCHEDULE_USER;
        so->sigmas = grid->data;
        so->n_sigmas = (int32_t)grid->numel;
        break;
    }
    return 0;
}

/* The loss (rows [row0, row0 + rows)), guidance and sampler into o. */
static int objects_make(const sample_config *cfg, lgd_context *ctx, const sample_model *m,
                        const sample_loss *L, const lgd_sampler_options *so, int64_t row0,
                        int64_t rows, run_objects *o)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = cfg->guidance;
    if (cfg->guidance == LGD_GUIDANCE_MC || cfg->guidance == LGD_GUIDANCE_EXACT ||
        cfg->guidance == LGD_GUIDANCE_MC_GRADIENT_FREE)
        go.n_samples = cfg->draws;
    go.step_rule = cfg->rule;
    go.scale = cfg->scale;
    go.sigma_data = cfg->sigma_data;
    go.seed = cfg->seed;
    if (cfg->guidance != LGD_GUIDANCE_NONE && sample_loss_build(L, ctx, row0, rows, &o->loss))
        return TOOL_EXIT_ERROR;
    if (CK(ctx, lgd_guidance_create(ctx, m->model, o->loss, &go, &o->guidance)) ||
        CK(ctx, lgd_sampler_create(o->guidance, so, &o->sampler)))
        return TOOL_EXIT_ERROR;
    return 0;
}

/* ---- the run ---- */

/* The tensors of a batch of b rows (re-made when b changes). */
typedef struct batch_tensors {
    lgd_tensor *x, *cond;
    int64_t rows;
} batch_tensors;

static int tensors_for(lgd_context *ctx, const sample_model *m, int64_t b, batch_tensors *t)
{
    if (t->rows == b)
        return 0;
    lgd_tensor_destroy(t->x);
    lgd_tensor_destroy(t->cond);
    t->x = t->cond = NULL;
    t->rows = 0;
    if (CK(ctx, lgd_tensor_create_2d(ctx, b, m->dim, &t->x)) ||
        (m->cond_dim > 0 && CK(ctx, lgd_tensor_create_2d(ctx, b, m->cond_dim, &t->cond))))
        return TOOL_EXIT_ERROR;
    t->rows = b;
    return 0;
}

/* One batch of the run's grid, and the rows of it this process keeps. */
typedef struct grid_batch {
    int64_t r0, b;          /* rows [r0, r0 + b) of the run */
    int64_t lo, hi;         /* kept: rows [r0 + lo, r0 + hi) */
} grid_batch;

/* The k-th batch of the grid that covers the job's rows. */
static grid_batch batch_of(const sample_config *cfg, const sample_job *job, int64_t k)
{
    grid_batch g;
    const int64_t first = job->begin / cfg->batch;
    g.r0 = (first + k) * cfg->batch;
    g.b = cfg->samples - g.r0 < cfg->batch ? cfg->samples - g.r0 : cfg->batch;
    g.lo = job->begin > g.r0 ? job->begin - g.r0 : 0;
    g.hi = job->end < g.r0 + g.b ? job->end - g.r0 : g.b;
    return g;
}

/* How many batches of the grid cover the job's rows. */
static int64_t batch_count(const sample_config *cfg, const sample_job *job)
{
    if (job->end <= job->begin)
        return 0;
    return (job->end - 1) / cfg->batch - job->begin / cfg->batch + 1;
}

/* Batch g of the grid; its kept rows into out (rows [g.r0 + g.lo, g.r0 + g.hi) of the
 * run), through host[b][dim]. */
static int run_batch(const sample_config *cfg, lgd_context *ctx, const sample_model *m,
                     const sample_cond *c, run_objects *o, batch_tensors *t, grid_batch g,
                     lgd_guidance_report *rep, float *cond_host, float *host, float *out,
                     sample_diag *d, run_progress *rp)
{
    char what[128];
    const int64_t r0 = g.r0, b = g.b;
    if (tensors_for(ctx, m, b, t))
        return TOOL_EXIT_ERROR;
    if (t->cond) {
        sample_cond_rows(c, r0, b, cond_host);
        if (CK(ctx, lgd_tensor_upload(t->cond, cond_host, b * m->cond_dim)) ||
            CK(ctx, lgd_guidance_set_condition(o->guidance, t->cond)))
            return TOOL_EXIT_ERROR;
    }
    snprintf(what, sizeof what, "sampler start of rows %" PRId64 "-%" PRId64, r0, r0 + b - 1);
    if (tool_failed(CMD, ctx, lgd_sampler_init(o->sampler, t->x, cfg->seed, (uint64_t)r0),
                    what))
        return TOOL_EXIT_ERROR;
    for (int32_t i = 0; i < d->steps; i++) {
        snprintf(what, sizeof what, "step %d of rows %" PRId64 "-%" PRId64, (int)i, r0,
                 r0 + b - 1);
        if (tool_failed(CMD, ctx, lgd_sampler_step(o->sampler, t->x, rep), what))
            return TOOL_EXIT_ERROR;
        diag_add(d, i, rep, g.lo, g.hi);
        progress_update(rp, (double)b);
    }
    if (CK(ctx, lgd_tensor_download(t->x, host, b * m->dim)))
        return TOOL_EXIT_ERROR;
    memcpy(out, host + g.lo * m->dim, (size_t)(g.hi - g.lo) * (size_t)m->dim * sizeof *out);
    return 0;
}

int sample_run(const sample_config *cfg, lgd_context *ctx, const sample_model *m,
               const sample_loss *L, const sample_cond *c, sample_job *job,
               const char *progress_label)
{
    /* a rank may have no rows (more ranks than rows): it still takes part */
    const int64_t n = job->end - job->begin, nbatches = batch_count(cfg, job);
    const int64_t B = cfg->batch < cfg->samples ? cfg->batch : cfg->samples;
    int rc = TOOL_EXIT_ERROR;
    run_objects o = { 0 };
    batch_tensors t = { 0 };
    sample_array grid = { 0 };
    lgd_sampler_options so;
    float *rowbuf = malloc(4 * (size_t)B * sizeof *rowbuf);
    float *host = malloc((size_t)B * (size_t)m->dim * sizeof *host);
    float *cond_host = m->cond_dim ? malloc((size_t)B * (size_t)m->cond_dim * sizeof(float))
                                   : NULL;
    run_progress rp;
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    progress_idle(&rp.bar);
    rp.plain = 0;
    job->x = malloc((size_t)(n > 0 ? n : 1) * (size_t)m->dim * sizeof *job->x);
    if (!job->x || !rowbuf || !host || (m->cond_dim && !cond_host)) {
        tool_out_of_memory(CMD);
        goto done;
    }
    rep.rows = B;
    rep.row_loss = rowbuf;
    rep.row_ess = rowbuf + B;
    rep.row_grad_norm = rowbuf + 2 * B;
    rep.row_lambda = rowbuf + 3 * B;
    if (sampler_options(cfg, &so, &grid))
        goto done;
    /* objects for the run's first row tell the grid (a rank without rows needs it too);
     * without per-row targets they serve every batch */
    if (objects_make(cfg, ctx, m, L, &so, cfg->row_begin, 1, &o) ||
        diag_alloc(&job->diag, lgd_sampler_num_steps(o.sampler)) ||
        CK(ctx, lgd_sampler_sigmas(o.sampler, job->diag.sigmas, job->diag.steps + 1)))
        goto done;
    double computed = 0.0;
    for (int64_t k = 0; k < nbatches; k++)
        computed += (double)batch_of(cfg, job, k).b;
    progress_begin(&rp, progress_label, computed * job->diag.steps, job->diag.steps,
                   cfg->quiet);
    const double t0 = tool_now_ms();
    for (int64_t k = 0; k < nbatches; k++) {
        const grid_batch g = batch_of(cfg, job, k);
        if (L->per_row) {
            objects_free(&o);
            if (objects_make(cfg, ctx, m, L, &so, g.r0, g.b, &o))
                goto done;
        }
        if (run_batch(cfg, ctx, m, c, &o, &t, g, &rep, cond_host, host,
                      job->x + (g.r0 + g.lo - job->begin) * m->dim, &job->diag, &rp))
            goto done;
    }
    job->seconds = (tool_now_ms() - t0) / 1e3;
    rc = 0;
done:
    progress_end(&rp.bar);
    objects_free(&o);
    lgd_tensor_destroy(t.x);
    lgd_tensor_destroy(t.cond);
    sample_array_free(&grid);
    free(rowbuf);
    free(host);
    free(cond_host);
    return rc;
}

void sample_job_free(sample_job *job)
{
    free(job->x);
    job->x = NULL;
    diag_free(&job->diag);
}
