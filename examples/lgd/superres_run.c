/*
 * superres_run.c - lgd superres's problem (the images, their measurements y = H x, the
 * models), sampling one method on a set of images, the metrics of the results, and the
 * two parts of the experiment: tuning each method's scale on the grid (tune images,
 * seed S) and evaluating at the selected scales (test images, seeds S + 1 ...).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_metrics.h"
#include "superres.h"
#include "tool_util.h"

#define CK(ctx, call) TOOL_CHECK(SR_CMD, (ctx), (call))

/* Rows of different sets are independent: the test images are rows 0.., the tune images
 * rows SR_TUNE_ROWS.. of the same seeds. */
#define SR_TUNE_ROWS 1000000ULL

const sr_method sr_methods[SR_NMETHODS] = {
    { "baseline", "Baseline (unguided)", LGD_GUIDANCE_NONE, 0, 1.0, NULL, NULL },
    { "dps", "DPS", LGD_GUIDANCE_DPS, 1, 2.0, "74.11", "25.84%" },
    { "mc1", "LGD-MC n=1", LGD_GUIDANCE_MC, 1, 2.0, "5.42", "71.98%" },
    { "mc10", "LGD-MC n=10", LGD_GUIDANCE_MC, 10, 2.1, "5.32", "72.07%" },
    { "mc100", "LGD-MC n=100", LGD_GUIDANCE_MC, 100, 2.6, "5.21", "72.03%" },
    { "gf100", "LGD-MC-GF n=100", LGD_GUIDANCE_MC_GRADIENT_FREE, 100, 2.5, NULL, NULL },
};

/* y = H x (+ noise) for the n images of s into *y (malloc'd [n][m]). The noise, when
 * asked for, is N(0, noise^2) per value from a generator seeded by `stream`. */
static int measure(const sr_config *cfg, sr_problem *pb, const img_set *s, uint64_t stream,
                   float **y)
{
    lgd_context *ctx = pb->ctx;
    lgd_tensor *xt = NULL, *yt = NULL;
    int rc = 1;
    *y = malloc((size_t)s->n * (size_t)pb->m * sizeof **y);
    if (!*y)
        return tool_out_of_memory(SR_CMD);
    if (CK(ctx, lgd_tensor_create_2d(ctx, s->n, IMG_DIM, &xt)) ||
        CK(ctx, lgd_tensor_create_2d(ctx, s->n, pb->m, &yt)) ||
        CK(ctx, lgd_tensor_upload(xt, s->x, s->n * IMG_DIM)) ||
        CK(ctx, lgd_operator_apply(ctx, &pb->op, 0, xt, yt)) ||
        CK(ctx, lgd_tensor_download(yt, *y, s->n * pb->m)))
        goto done;
    if (cfg->noise > 0.0f) {
        tool_rng r = { TOOL_RNG_SEED ^ stream };
        for (int64_t i = 0; i < s->n * pb->m; i++)
            (*y)[i] += (float)(cfg->noise * tool_normal01(&r));
    }
    rc = 0;
done:
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(yt);
    return rc;
}

int sr_problem_create(sr_config *cfg, sr_problem *pb)
{
    memset(pb, 0, sizeof *pb);
    img_set tune_all = { 0 }, test_all = { 0 };
    int rc = 1;
    if (img_context_create(SR_CMD, cfg->backend_choice, cfg->threads, &pb->ctx) ||
        img_models_load(SR_CMD, pb->ctx, cfg->models_dir, 0, 0.0f, &pb->models) ||
        img_load_split(SR_CMD, cfg->data_dir, "tune", &tune_all) ||
        img_load_split(SR_CMD, cfg->data_dir, "test", &test_all) ||
        img_set_per_label(SR_CMD, &tune_all, cfg->tune, &pb->tune) ||
        img_set_per_label(SR_CMD, &test_all, cfg->test > 0 ? cfg->test : INT64_MAX, &pb->test))
        goto done;
    lgd_operator_options_init(&pb->op, sizeof pb->op);
    pb->op.kind = cfg->op_choice == 0 ? LGD_OPERATOR_AVG_POOL : LGD_OPERATOR_BICUBIC_DOWN;
    pb->op.channels = 1;
    pb->op.height = IMG_SIDE;
    pb->op.width = IMG_SIDE;
    pb->op.factor = cfg->factor;
    if (CK(pb->ctx, lgd_operator_dims(pb->ctx, &pb->op, NULL, &pb->m)) ||
        measure(cfg, pb, &pb->tune, 1, &pb->y_tune) || measure(cfg, pb, &pb->test, 2, &pb->y_test))
        goto done;
    /* the measurement shown at 8x8: each value repeated over its f x f block */
    pb->up_test = malloc((size_t)pb->test.n * IMG_DIM * sizeof *pb->up_test);
    pb->orig_logits = malloc((size_t)pb->test.n * IMG_CLASSES * sizeof *pb->orig_logits);
    if (!pb->up_test || !pb->orig_logits) {
        tool_out_of_memory(SR_CMD);
        goto done;
    }
    const int f = cfg->factor, side = IMG_SIDE / f;
    for (int64_t r = 0; r < pb->test.n; r++)
        for (int i = 0; i < IMG_SIDE; i++)
            for (int j = 0; j < IMG_SIDE; j++)
                pb->up_test[r * IMG_DIM + i * IMG_SIDE + j] =
                    pb->y_test[r * pb->m + (i / f) * side + j / f];
    if (img_logits(SR_CMD, &pb->models, pb->models.judge, pb->test.x, pb->test.n, pb->orig_logits))
        goto done;
    int64_t right = 0;
    for (int64_t r = 0; r < pb->test.n; r++)
        right += img_argmax(pb->orig_logits + r * IMG_CLASSES, IMG_CLASSES) ==
                 pb->test.labels[r];
    pb->orig_accuracy = (double)right / (double)pb->test.n;
    rc = 0;
done:
    img_set_free(&tune_all);
    img_set_free(&test_all);
    return rc;
}

void sr_problem_destroy(sr_problem *pb)
{
    img_models_free(&pb->models);
    img_set_free(&pb->tune);
    img_set_free(&pb->test);
    free(pb->y_tune);
    free(pb->y_test);
    free(pb->up_test);
    free(pb->orig_logits);
    lgd_context_destroy(pb->ctx);
    memset(pb, 0, sizeof *pb);
}

/* ---- sampling one method on a set ---- */

typedef struct sr_build {
    const sr_config *cfg;
    sr_problem *pb;
    const sr_method *m;
    double scale;
    const float *y; /* the set's measurements [n][m] */
} sr_build;

/* img_build_fn: the method's guidance (its loss on rows first ..) and the DDIM sampler. */
static int build_sampler(void *user, int64_t first, int64_t rows, lgd_sampler **out)
{
    const sr_build *b = user;
    lgd_context *ctx = b->pb->ctx;
    lgd_loss *loss = NULL;
    lgd_guidance *g = NULL;
    int bad = 0;
    *out = NULL;
    if (b->m->kind != LGD_GUIDANCE_NONE)
        bad = CK(ctx, lgd_loss_create_operator(ctx, &b->pb->op, b->y + first * b->pb->m, rows,
                                               b->cfg->s * b->cfg->s, &loss));
    if (!bad) {
        lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
        go.kind = b->m->kind;
        if (b->m->kind == LGD_GUIDANCE_MC || b->m->kind == LGD_GUIDANCE_MC_GRADIENT_FREE)
            go.n_samples = b->m->n;
        go.sigma_data = 1.0f; /* r(sigma) = sigma / sqrt(1 + sigma^2), the paper's */
        go.step_rule = b->cfg->rule;
        go.scale = (float)b->scale;
        bad = CK(ctx, lgd_guidance_create(ctx, b->pb->models.unet, loss, &go, &g));
    }
    if (!bad) {
        lgd_sampler_options so;
        img_sampler_ddim(&so, &b->pb->models, b->cfg->steps, b->cfg->eta);
        bad = CK(ctx, lgd_sampler_create(g, &so, out));
    }
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    return bad;
}

/* The metrics of results x[n][IMG_DIM] (clipped; NaN rows failed) against the set s and
 * its measurements y. */
static int compute_metrics(sr_problem *pb, const img_set *s, const float *y, const float *x,
                           const unsigned char *failed, sr_metrics *out)
{
    lgd_context *ctx = pb->ctx;
    const int64_t n = s->n, m = pb->m;
    int rc = 1;
    float *fx = malloc((size_t)n * IMG_DIM * sizeof *fx);
    float *fo = malloc((size_t)n * IMG_CLASSES * sizeof *fo);
    float *lg = malloc((size_t)n * IMG_CLASSES * sizeof *lg);
    float *hx = malloc((size_t)n * (size_t)m * sizeof *hx);
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    lgd_tensor *xt = NULL, *yt = NULL;
    memset(out, 0, sizeof *out);
    out->n = n;
    if (!fx || !fo || !lg || !hx || !idx) {
        tool_out_of_memory(SR_CMD);
        goto done;
    }
    int64_t k = 0;
    for (int64_t r = 0; r < n; r++) {
        if (failed[r]) {
            out->failed++;
            continue;
        }
        memcpy(fx + k * IMG_DIM, x + r * IMG_DIM, IMG_DIM * sizeof *fx);
        idx[k++] = r;
    }
    out->psnr = out->ssim = out->accuracy = out->fd = out->meas_rmse = NAN;
    if (k == 0) {
        out->accuracy = 0.0;
        rc = 0;
        goto done;
    }
    double psnr = 0.0, ssim = 0.0, se = 0.0;
    for (int64_t i = 0; i < k; i++) {
        const float *orig = s->x + idx[i] * IMG_DIM;
        psnr += img_psnr(fx + i * IMG_DIM, orig, IMG_DIM, 2.0);
        ssim += img_ssim(fx + i * IMG_DIM, orig, IMG_SIDE, IMG_SIDE, 3, 2.0);
    }
    out->psnr = psnr / (double)k;
    out->ssim = ssim / (double)k;
    if (img_logits(SR_CMD, &pb->models, pb->models.judge, fx, k, lg) ||
        img_logits(SR_CMD, &pb->models, pb->models.judge, s->x, n, fo))
        goto done;
    int64_t right = 0;
    for (int64_t i = 0; i < k; i++)
        right += img_argmax(lg + i * IMG_CLASSES, IMG_CLASSES) == s->labels[idx[i]];
    out->accuracy = (double)right / (double)n;
    out->fd = img_frechet(lg, k, fo, n, IMG_CLASSES);
    if (CK(ctx, lgd_tensor_create_2d(ctx, k, IMG_DIM, &xt)) ||
        CK(ctx, lgd_tensor_create_2d(ctx, k, m, &yt)) ||
        CK(ctx, lgd_tensor_upload(xt, fx, k * IMG_DIM)) ||
        CK(ctx, lgd_operator_apply(ctx, &pb->op, 0, xt, yt)) ||
        CK(ctx, lgd_tensor_download(yt, hx, k * m)))
        goto done;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < m; j++) {
            double d = (double)hx[i * m + j] - (double)y[idx[i] * m + j];
            se += d * d;
        }
    out->meas_rmse = sqrt(se / (double)(k * m));
    rc = 0;
done:
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(yt);
    free(fx);
    free(fo);
    free(lg);
    free(hx);
    free(idx);
    return rc;
}

/* Samples method m at `scale` on the set s (measurements y; rows from row_base) with
 * `seed`, clips the results, and measures them; the results into *keep when keep is not
 * NULL (malloc'd; the caller frees). */
static int run_method(const sr_config *cfg, sr_problem *pb, const sr_method *m, double scale,
                      const img_set *s, const float *y, uint64_t seed, uint64_t row_base,
                      progress *pr, sr_metrics *out, float **keep)
{
    int rc = 1;
    float *x = malloc((size_t)s->n * IMG_DIM * sizeof *x);
    unsigned char *failed = malloc((size_t)s->n);
    if (!x || !failed) {
        tool_out_of_memory(SR_CMD);
        goto done;
    }
    sr_build b = { cfg, pb, m, scale, y };
    char detail[128];
    if (m->kind == LGD_GUIDANCE_NONE)
        snprintf(detail, sizeof detail, "%s, seed %" PRIu64, m->name, seed);
    else
        snprintf(detail, sizeof detail, "%s, scale %g, seed %" PRIu64, m->name, scale, seed);
    double t0 = tool_now_ms();
    if (img_sample(SR_CMD, pb->ctx, build_sampler, &b, s->n, cfg->batch, seed, row_base, pr,
                   m->cost * cfg->steps * (double)s->n, detail, x, failed))
        goto done;
    double seconds = (tool_now_ms() - t0) / 1e3;
    img_clip(x, s->n * IMG_DIM);
    if (compute_metrics(pb, s, y, x, failed, out))
        goto done;
    out->seconds = seconds;
    if (keep) {
        *keep = x;
        x = NULL;
    }
    rc = 0;
done:
    free(x);
    free(failed);
    return rc;
}

/* ---- tuning and evaluation ---- */

int sr_run_tuning(const sr_config *cfg, sr_problem *pb, sr_grid *gr, progress *pr)
{
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        gr->best[mi] = -1;
        if (!cfg->use[mi])
            continue;
        const sr_method *m = &sr_methods[mi];
        int ns = m->kind == LGD_GUIDANCE_NONE ? 1 : cfg->nscales;
        for (int si = 0; si < ns; si++) {
            double scale = m->kind == LGD_GUIDANCE_NONE ? 0.0 : cfg->scales[si];
            if (run_method(cfg, pb, m, scale, &pb->tune, pb->y_tune, cfg->seed, SR_TUNE_ROWS,
                           pr, &gr->m[mi][si], NULL))
                return 1;
            const sr_metrics *t = &gr->m[mi][si];
            /* the highest mean PSNR among the scales without failed samples */
            if (t->failed == 0 && isfinite(t->psnr) &&
                (gr->best[mi] < 0 || t->psnr > gr->m[mi][gr->best[mi]].psnr))
                gr->best[mi] = si;
        }
    }
    return 0;
}

int sr_run_evaluation(const sr_config *cfg, sr_problem *pb, const sr_grid *gr, sr_eval *ev,
                      progress *pr)
{
    unsigned char *none = calloc((size_t)pb->test.n, 1);
    if (!none)
        return tool_out_of_memory(SR_CMD);
    int bad = compute_metrics(pb, &pb->test, pb->y_test, pb->up_test, none, &ev->upsampled);
    free(none);
    if (bad)
        return 1;
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const sr_method *m = &sr_methods[mi];
        if (m->kind != LGD_GUIDANCE_NONE && gr->best[mi] < 0) {
            fprintf(stderr, "lgd %s: note: %s has no scale without failed samples on the "
                            "grid; not evaluated\n", SR_CMD, m->name);
            continue;
        }
        ev->scale[mi] = m->kind == LGD_GUIDANCE_NONE ? 0.0 : cfg->scales[gr->best[mi]];
        for (int k = 0; k < cfg->seeds; k++)
            if (run_method(cfg, pb, m, ev->scale[mi], &pb->test, pb->y_test,
                           cfg->seed + 1 + (uint64_t)k, 0, pr, &ev->m[mi][k],
                           k == 0 ? &ev->first[mi] : NULL))
                return 1;
        ev->evaluated[mi] = 1;
    }
    return 0;
}

void sr_eval_free(sr_eval *ev)
{
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        free(ev->first[mi]);
        ev->first[mi] = NULL;
    }
}
