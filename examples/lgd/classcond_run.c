/*
 * classcond_run.c - lgd classcond's problem (the models, the real images of the tune and
 * test splits), sampling one method for every label, the metrics of the samples, and the
 * two parts of the experiment: tuning each method's scale on the grid (seed S, judged
 * against the tune split) and evaluating at the selected scales (seeds S + 1 ..., judged
 * against the held-out test split).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classcond.h"
#include "image_metrics.h"
#include "tool_util.h"

#define CK(ctx, call) TOOL_CHECK(CC_CMD, (ctx), (call))

/* Tuning rows are numbered from here, evaluation rows from 0 (independent noise). */
#define CC_TUNE_ROWS 1000000ULL

const cc_method cc_methods[CC_NMETHODS] = {
    { "baseline", "Baseline (unguided)", CC_BASELINE, LGD_GUIDANCE_NONE, 0, 1.0, "37.28",
      "281.84" },
    { "cg", "CG (noise-aware clf)", CC_CG, LGD_GUIDANCE_NONE, 0, 1.3, "44.64", "25.47" },
    { "dps", "DPS", CC_LGD, LGD_GUIDANCE_DPS, 1, 2.0, "48.24", "31.95" },
    { "mc1", "LGD-MC n=1", CC_LGD, LGD_GUIDANCE_MC, 1, 2.0, "39.87", "33.73" },
    { "mc5", "LGD-MC n=5", CC_LGD, LGD_GUIDANCE_MC, 5, 2.1, "38.65", "32.80" },
    { "mc20", "LGD-MC n=20", CC_LGD, LGD_GUIDANCE_MC, 20, 2.3, NULL, NULL },
    { "gf100", "LGD-MC-GF n=100", CC_LGD, LGD_GUIDANCE_MC_GRADIENT_FREE, 100, 3.0, NULL,
      NULL },
};

/* Rows label-major: `per` rows of label 0, then of label 1, ... */
static int32_t *label_rows(int32_t per)
{
    int32_t *l = malloc((size_t)per * IMG_CLASSES * sizeof *l);
    if (l)
        for (int32_t r = 0; r < per * IMG_CLASSES; r++)
            l[r] = r / per;
    return l;
}

int cc_problem_create(cc_config *cfg, cc_problem *pb)
{
    memset(pb, 0, sizeof *pb);
    int need_cg = 0;
    for (int mi = 0; mi < CC_NMETHODS; mi++)
        need_cg |= cfg->use[mi] && cc_methods[mi].kind == CC_CG;
    if (img_context_create(CC_CMD, cfg->backend_choice, cfg->threads, &pb->ctx) ||
        img_models_load(CC_CMD, pb->ctx, cfg->models_dir, need_cg ? 1 : 2, 0.0f,
                        &pb->models) ||
        img_load_split(CC_CMD, cfg->data_dir, "tune", &pb->tune_real) ||
        img_load_split(CC_CMD, cfg->data_dir, "test", &pb->test_real))
        return 1;
    pb->tune_logits = malloc((size_t)pb->tune_real.n * IMG_CLASSES * sizeof *pb->tune_logits);
    pb->test_logits = malloc((size_t)pb->test_real.n * IMG_CLASSES * sizeof *pb->test_logits);
    pb->labels_tune = label_rows(cfg->tune);
    pb->labels_eval = label_rows(cfg->per_label);
    if (!pb->tune_logits || !pb->test_logits || !pb->labels_tune || !pb->labels_eval)
        return tool_out_of_memory(CC_CMD);
    /* the judge's logits: the Frechet distances' reference features */
    return img_logits(CC_CMD, &pb->models, pb->models.judge, pb->tune_real.x, pb->tune_real.n,
                      pb->tune_logits) ||
           img_logits(CC_CMD, &pb->models, pb->models.judge, pb->test_real.x, pb->test_real.n,
                      pb->test_logits);
}

void cc_problem_destroy(cc_problem *pb)
{
    img_models_free(&pb->models);
    img_set_free(&pb->tune_real);
    img_set_free(&pb->test_real);
    free(pb->tune_logits);
    free(pb->test_logits);
    free(pb->labels_tune);
    free(pb->labels_eval);
    lgd_context_destroy(pb->ctx);
    memset(pb, 0, sizeof *pb);
}

/* ---- sampling one method ---- */

typedef struct cc_build {
    const cc_config *cfg;
    cc_problem *pb;
    const cc_method *m;
    double scale;
    const int32_t *labels; /* of every row of the run */
} cc_build;

/* A cross-entropy loss of the clean classifier (LGD) or the noise-aware one (CG), with the
 * labels of rows first .. first + rows - 1. */
static int class_loss(const cc_build *b, int noisy, int64_t first, int64_t rows,
                      lgd_loss **loss)
{
    lgd_context *ctx = b->pb->ctx;
    lgd_network_loss_options lo = LGD_NETWORK_LOSS_OPTIONS_INIT;
    lo.kind = LGD_NETWORK_LOSS_CROSS_ENTROPY;
    lo.input = noisy ? LGD_NETWORK_INPUT_NOISY : LGD_NETWORK_INPUT_CLEAN;
    lo.t = b->pb->models.clf_t;
    return CK(ctx, lgd_loss_create_network(ctx, noisy ? b->pb->models.noisy : b->pb->models.clf,
                                           &lo, loss)) ||
           CK(ctx, lgd_loss_network_set_labels(*loss, b->labels + first, rows));
}

/* img_build_fn: the method's model and guidance on rows first .., and the Heun sampler. */
static int build_sampler(void *user, int64_t first, int64_t rows, lgd_sampler **out)
{
    const cc_build *b = user;
    lgd_context *ctx = b->pb->ctx;
    lgd_loss *loss = NULL;
    lgd_model *cg = NULL;
    lgd_guidance *g = NULL;
    int bad = 0;
    *out = NULL;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_NONE;
    go.sigma_data = 1.0f; /* r(sigma) = sigma / sqrt(1 + sigma^2), the paper's */
    go.step_rule = LGD_STEP_SCORE;
    switch (b->m->kind) {
    case CC_BASELINE:
        bad = CK(ctx, lgd_guidance_create(ctx, b->pb->models.unet, NULL, &go, &g));
        break;
    case CC_CG:
        /* D_cg = D - w sigma^2 grad l(x; sigma): the noise-aware classifier at each sigma */
        bad = class_loss(b, 1, first, rows, &loss) ||
              CK(ctx, lgd_model_create_classifier_guided(ctx, b->pb->models.unet, loss,
                                                         (float)b->scale, &cg)) ||
              CK(ctx, lgd_guidance_create(ctx, cg, NULL, &go, &g));
        break;
    case CC_LGD:
        go.kind = b->m->guidance;
        if (go.kind == LGD_GUIDANCE_MC || go.kind == LGD_GUIDANCE_MC_GRADIENT_FREE)
            go.n_samples = b->m->n;
        go.scale = (float)b->scale;
        bad = class_loss(b, 0, first, rows, &loss) ||
              CK(ctx, lgd_guidance_create(ctx, b->pb->models.unet, loss, &go, &g));
        break;
    }
    if (!bad) {
        lgd_sampler_options so;
        img_sampler_heun(&so, &b->pb->models, b->cfg->steps, b->cfg->churn, CC_S_TMIN,
                         CC_S_TMAX, CC_S_NOISE);
        bad = CK(ctx, lgd_sampler_create(g, &so, out));
    }
    lgd_guidance_destroy(g);
    lgd_model_destroy(cg);
    lgd_loss_destroy(loss);
    return bad;
}

/* The metrics of the n samples x (clipped; failed rows NaN) with target labels[n] against
 * the real images whose judge's logits are ref_logits[nref] and labels ref_labels: the
 * guiding classifier's cross-entropy (the objective), the judge's cross-entropy,
 * accuracy and logits (the Frechet features), the noise-aware classifier's accuracy. */
static int compute_metrics(cc_problem *pb, const float *x, const unsigned char *failed,
                           int64_t n, const int32_t *labels, const float *ref_logits,
                           const int32_t *ref_labels, int64_t nref, cc_metrics *out)
{
    int rc = 1;
    float *fx = malloc((size_t)n * IMG_DIM * sizeof *fx);
    float *lg = malloc((size_t)n * IMG_CLASSES * sizeof *lg);
    float *jl = malloc((size_t)n * IMG_CLASSES * sizeof *jl);
    float *lp = malloc((size_t)n * IMG_CLASSES * sizeof *lp);
    float *a = malloc((size_t)n * IMG_CLASSES * sizeof *a);
    float *b = malloc((size_t)nref * IMG_CLASSES * sizeof *b);
    int32_t *fl = malloc((size_t)n * sizeof *fl);
    memset(out, 0, sizeof *out);
    out->n = n;
    out->loss = out->loss_judge = out->accuracy = out->accuracy_noisy = out->fd =
        out->fd_pooled = NAN;
    if (!fx || !lg || !jl || !lp || !a || !b || !fl) {
        tool_out_of_memory(CC_CMD);
        goto done;
    }
    int64_t k = 0;
    for (int64_t r = 0; r < n; r++) {
        if (failed && failed[r]) {
            out->failed++;
            continue;
        }
        memcpy(fx + k * IMG_DIM, x + r * IMG_DIM, IMG_DIM * sizeof *fx);
        fl[k++] = labels[r];
    }
    if (k == 0) {
        out->accuracy = 0.0;
        rc = 0;
        goto done;
    }
    if (img_logits(CC_CMD, &pb->models, pb->models.clf, fx, k, lg) ||
        img_logits(CC_CMD, &pb->models, pb->models.judge, fx, k, jl))
        goto done;
    double ce = 0.0, ce_judge = 0.0;
    int64_t right = 0;
    for (int64_t i = 0; i < k; i++) {
        ce += img_cross_entropy(lg + i * IMG_CLASSES, IMG_CLASSES, fl[i]);
        ce_judge += img_cross_entropy(jl + i * IMG_CLASSES, IMG_CLASSES, fl[i]);
        right += img_argmax(jl + i * IMG_CLASSES, IMG_CLASSES) == fl[i];
    }
    out->loss = ce / (double)k;
    out->loss_judge = ce_judge / (double)k;
    out->accuracy = (double)right / (double)n;
    if (pb->models.noisy) {
        if (img_noisy_logprobs(CC_CMD, &pb->models, fx, k, CC_JUDGE_SIGMA, lp))
            goto done;
        right = 0;
        for (int64_t i = 0; i < k; i++)
            right += img_argmax(lp + i * IMG_CLASSES, IMG_CLASSES) == fl[i];
        out->accuracy_noisy = (double)right / (double)n;
    }
    /* per label: the samples of label c against the real images of label c */
    double fd = 0.0;
    int counted = 0;
    for (int32_t c = 0; c < IMG_CLASSES; c++) {
        int64_t na = 0, nb = 0;
        for (int64_t i = 0; i < k; i++)
            if (fl[i] == c)
                memcpy(a + na++ * IMG_CLASSES, jl + i * IMG_CLASSES, IMG_CLASSES * sizeof *a);
        for (int64_t i = 0; i < nref; i++)
            if (ref_labels[i] == c)
                memcpy(b + nb++ * IMG_CLASSES, ref_logits + i * IMG_CLASSES,
                       IMG_CLASSES * sizeof *b);
        double d = img_frechet(a, na, b, nb, IMG_CLASSES);
        if (isfinite(d)) {
            fd += d;
            counted++;
        }
    }
    out->fd = counted ? fd / counted : NAN;
    out->fd_pooled = img_frechet(jl, k, ref_logits, nref, IMG_CLASSES);
    rc = 0;
done:
    free(fx);
    free(lg);
    free(jl);
    free(lp);
    free(a);
    free(b);
    free(fl);
    return rc;
}

/* Samples method m at `scale`: `rows` rows with target labels (label-major), seed, rows
 * numbered from row_base; clips them and measures them against the real images ref. The
 * samples into *keep when keep is not NULL (malloc'd; the caller frees). */
static int run_method(const cc_config *cfg, cc_problem *pb, const cc_method *m, double scale,
                      int64_t rows, const int32_t *labels, uint64_t seed, uint64_t row_base,
                      const img_set *ref, const float *ref_logits, progress *pr,
                      cc_metrics *out, float **keep)
{
    int rc = 1;
    float *x = malloc((size_t)rows * IMG_DIM * sizeof *x);
    unsigned char *failed = malloc((size_t)rows);
    if (!x || !failed) {
        tool_out_of_memory(CC_CMD);
        goto done;
    }
    cc_build b = { cfg, pb, m, scale, labels };
    char detail[128];
    if (m->kind == CC_BASELINE)
        snprintf(detail, sizeof detail, "%s, seed %" PRIu64, m->name, seed);
    else
        snprintf(detail, sizeof detail, "%s, scale %g, seed %" PRIu64, m->name, scale, seed);
    double t0 = tool_now_ms();
    if (img_sample(CC_CMD, pb->ctx, build_sampler, &b, rows, cfg->batch, seed, row_base, pr,
                   m->cost * (2.0 * cfg->steps - 1.0) * (double)rows, detail, x, failed))
        goto done;
    double seconds = (tool_now_ms() - t0) / 1e3;
    img_clip(x, rows * IMG_DIM);
    if (compute_metrics(pb, x, failed, rows, labels, ref_logits, ref->labels, ref->n, out))
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

int cc_run_tuning(const cc_config *cfg, cc_problem *pb, cc_grid *gr, progress *pr)
{
    const int64_t rows = (int64_t)cfg->tune * IMG_CLASSES;
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        gr->best[mi] = -1;
        if (!cfg->use[mi])
            continue;
        const cc_method *m = &cc_methods[mi];
        int ns = m->kind == CC_BASELINE ? 1 : cfg->nscales;
        for (int si = 0; si < ns; si++) {
            double scale = m->kind == CC_BASELINE ? 0.0 : cfg->scales[si];
            if (run_method(cfg, pb, m, scale, rows, pb->labels_tune, cfg->seed, CC_TUNE_ROWS,
                           &pb->tune_real, pb->tune_logits, pr, &gr->m[mi][si], NULL))
                return 1;
            const cc_metrics *t = &gr->m[mi][si];
            double v = cfg->select_choice == CC_SELECT_FD ? t->fd : t->loss;
            double best = gr->best[mi] < 0 ? INFINITY
                          : cfg->select_choice == CC_SELECT_FD ? gr->m[mi][gr->best[mi]].fd
                                                               : gr->m[mi][gr->best[mi]].loss;
            if (t->failed == 0 && isfinite(v) && (gr->best[mi] < 0 || v < best))
                gr->best[mi] = si;
        }
    }
    return 0;
}

int cc_run_evaluation(const cc_config *cfg, cc_problem *pb, const cc_grid *gr, cc_eval *ev,
                      progress *pr)
{
    const int64_t rows = (int64_t)cfg->per_label * IMG_CLASSES;
    /* the floor: as many real tune-split images per label as samples, as if sampled */
    img_set real = { 0 };
    if (img_set_per_label(CC_CMD, &pb->tune_real, cfg->per_label, &real))
        return 1;
    int bad = compute_metrics(pb, real.x, NULL, real.n, real.labels, pb->test_logits,
                              pb->test_real.labels, pb->test_real.n, &ev->real);
    img_set_free(&real);
    if (bad)
        return 1;
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const cc_method *m = &cc_methods[mi];
        if (m->kind != CC_BASELINE && gr->best[mi] < 0) {
            fprintf(stderr, "lgd %s: note: %s has no scale without failed samples on the "
                            "grid; not evaluated\n", CC_CMD, m->name);
            continue;
        }
        ev->scale[mi] = m->kind == CC_BASELINE ? 0.0 : cfg->scales[gr->best[mi]];
        for (int k = 0; k < cfg->seeds; k++)
            if (run_method(cfg, pb, m, ev->scale[mi], rows, pb->labels_eval,
                           cfg->seed + 1 + (uint64_t)k, 0, &pb->test_real, pb->test_logits, pr,
                           &ev->m[mi][k], k == 0 ? &ev->first[mi] : NULL))
                return 1;
        ev->evaluated[mi] = 1;
    }
    return 0;
}

void cc_eval_free(cc_eval *ev)
{
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        free(ev->first[mi]);
        ev->first[mi] = NULL;
    }
}
