/*
 * lgd classcond - the LGD paper's label-conditional generation from an unconditional model
 * (Song et al., ICML 2023: Sec. 6.4, Table 4, App. B.4) on the project's own trained
 * models and real data.
 *
 * The paper samples label-conditioned ImageNet 256x256 images from an unconditional
 * model, guided by a classifier's cross-entropy l(x0) = -log p(y | x0) (LGD-DPS and
 * LGD-MC, the noise-aware classifier at t = 1e-3) or by classifier guidance (CG, the
 * noise-aware classifier at each step's noise level); the stochastic Heun sampler of EDM
 * with 71 network evaluations; metrics FID and the classifier loss. Here: every label
 * 0..9 of the 8x8 handwritten digits, the unconditional denoiser
 * models/digits_unet.safetensors, the clean classifier models/digits_classifier.safetensors
 * as the loss of DPS and LGD-MC (<lgd/network_loss.h>, INPUT_CLEAN, t = 0) and the
 * noise-aware classifier models/digits_noisy_classifier.safetensors for CG
 * (lgd_model_create_classifier_guided). D-PnP is not run.
 *
 * Methods: Baseline (unguided; row r gets a target label all the same), CG, DPS, LGD-MC
 * n = 1, 5, 20 and LGD-MC from loss values only (LGD_GUIDANCE_MC_GRADIENT_FREE, n =
 * 100); r(sigma) = sigma / sqrt(1 + sigma^2). The step rule is the score rule (score +
 * scale * g, Bayes-consistent at 1), and CG's weight w has the same meaning (score + w
 * grad log p(y | x)), so one grid of scales serves every guided method. Each method's
 * scale is tuned on tuning samples (seed S) by the mean over labels of the Frechet
 * distance of the samples' classifier logits to the tune split's images of their label,
 * then evaluated with seeds S + 1 ... against the held-out test split. The best scale
 * depends on the number of steps: a step of the sampler moves x by about
 * scale * (1 - sigma_next / sigma) times the guidance's own step, so few large steps
 * overshoot at scales that many small ones integrate well (8 steps: 1 is best, 10 fails;
 * 36 steps: 10-30; docs/reproduction.md).
 *
 * Sampler: EDM's stochastic Heun (Algorithm 2), 36 steps = 71 network evaluations (the
 * paper's count), S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003 (EDM's ImageNet-64
 * settings), Karras sigmas 80 -> 0.002.
 *
 * Metrics (samples clipped to [-1, 1]): the alignment loss (mean cross-entropy of the
 * guiding clean classifier w.r.t. the target labels, in nats: the objective DPS and
 * LGD-MC optimise); the judge's (models/digits_judge.safetensors, a clean classifier
 * trained apart with another seed and width; the guiding one when that file is missing)
 * cross-entropy and accuracy; the accuracy of the noise-aware classifier at sigma 0.002
 * (a third opinion; it guides CG); the Frechet distance of the judge's logits (10-D: the
 * network API gives a network's output only) to the real test images of the same label,
 * averaged over labels, and to all test images pooled (sample covariances, no
 * regularisation: the symmetric form of the trace term needs no inverse, so the rank-
 * deficient covariance of a few samples per label is fine, but the distance of so few
 * samples is biased upwards: compare methods at the same counts only).
 *
 * Uses only the public API of liblgd. This file holds the command (usage, options, the
 * header it prints, the order of the parts); classcond.h lists the others.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "classcond.h"
#include "commands.h"
#include "tool_util.h"

/* The choices of --select, in the order of CC_SELECT_FD, CC_SELECT_LOSS. */
static const char *const select_names[] = { "fd", "loss", NULL };

/* The default grid of scales (score rule: score + scale * g; CG: score + w grad log p). */
static const double default_grid[] = { 1.0, 3.0, 10.0, 30.0, 100.0 };

void lgd_classcond_usage(FILE *f)
{
    fprintf(f,
            "usage: lgd classcond [options]\n"
            "\n"
            "The LGD paper's label-conditional generation from an unconditional model (Sec.\n"
            "6.4, Table 4, App. B.4) on the shipped 8x8 digits models: samples of every label\n"
            "0..9 from the unconditional denoiser, guided by the clean classifier's\n"
            "cross-entropy (DPS, LGD-MC n = 1, 5, 20, gradient-free LGD-MC n = 100) or by\n"
            "classifier guidance with the noise-aware classifier (CG), beside the unguided\n"
            "Baseline. EDM's stochastic Heun sampler, 36 steps (71 network evaluations, the\n"
            "paper's). Each guided method's scale (score + scale * g; CG's weight w alike) is\n"
            "tuned on one shared grid on tuning samples (seed S) against the tune split,\n"
            "then evaluated with seeds S + 1 .. S + k against the held-out test split.\n"
            "Metrics: the guiding classifier's loss (mean cross-entropy: the objective); the\n"
            "judge's (models/digits_judge.safetensors, a classifier trained apart) loss and\n"
            "accuracy; the noise-aware classifier's accuracy; the Frechet distance of the\n"
            "judge's logits to the test images of the same label (mean over labels) and\n"
            "pooled. Prints the tables beside the paper's Table 4, writes CSV files and a PNG\n"
            "grid. The best scale depends on --steps (fewer, larger steps overshoot at large\n"
            "scales): tune the grid again when changing it.\n"
            "\n"
            "options (--opt VALUE or --opt=VALUE):\n"
            "  --per-label N  evaluation samples per label and seed (default 10)\n"
            "  --tune N       tuning samples per label at each scale (default 3)\n"
            "  --seeds N      evaluation seeds (default 2, at most %d)\n"
            "  --steps N      Heun steps, 2 N - 1 network evaluations (default 36)\n"
            "  --churn C      EDM's S_churn (default 40; 0: the deterministic Heun sampler)\n"
            "  --scales LIST  the grid of scales, the same for every guided method (default\n"
            "                 1,3,10,30,100)\n"
            "  --select S     how a scale is chosen on the tuning samples: fd (default; the\n"
            "                 lowest mean per-label Frechet distance to the tune split) or\n"
            "                 loss (the lowest mean cross-entropy)\n"
            "  --methods LIST methods to run, comma-separated (default all): baseline, cg,\n"
            "                 dps, mc1, mc5, mc20, gf100\n"
            "  --seed S       tuning seed (default 0); evaluation seeds S + 1 .. S + N\n"
            "  --batch B      rows per sampler run (default 64)\n"
            "  --png-cols N   samples per label and method in the PNG grid (default 4; 0: no\n"
            "                 PNG)\n"
            "  --data DIR     the digits split (default: $LGD_DATA_DIR, ./data/digits, or the\n"
            "                 source tree's data/digits)\n"
            "  --models DIR   the models (default: $LGD_MODEL_DIR, ./models, or the source\n"
            "                 tree's models)\n"
            "  --threads N    CPU threads (default 1: the networks run at batch sizes where a\n"
            "                 second thread gains little and costs much on a busy machine;\n"
            "                 0: OpenMP's default)\n"
            "  --backend B    cpu (default), cuda or auto\n"
            "  --out DIR      output directory, created if missing (default lgd-classcond-out)\n"
            "  --quiet        no progress indicator\n"
            "  --help         this message\n"
            "\n"
            "Output files: classcond_tuning.csv (per method and scale), classcond_results.csv\n"
            "(per method and seed), classcond_summary.csv (mean and spread over seeds),\n"
            "classcond_grid.png (rows: labels; blocks of columns: real test images, then each\n"
            "method's samples of the first seed).\n"
            "Exit status: 0 done, 1 error (e.g. models or data not found), 2 bad usage.\n",
            CC_MAX_SEEDS);
}

static int parse_args(int argc, char **argv, cc_config *cfg)
{
    const char *methods = NULL;
    const tool_option opts[] = {
        tool_option_quiet(&cfg->quiet),
        { .name = "per-label", .kind = TOOL_OPT_INT32, .dest = &cfg->per_label, .min = 2,
          .max = 100000 },
        { .name = "tune", .kind = TOOL_OPT_INT32, .dest = &cfg->tune, .min = 2, .max = 100000 },
        { .name = "seeds", .kind = TOOL_OPT_INT32, .dest = &cfg->seeds, .min = 1,
          .max = CC_MAX_SEEDS },
        { .name = "steps", .kind = TOOL_OPT_INT32, .dest = &cfg->steps, .min = 1,
          .max = 100000 },
        { .name = "churn", .kind = TOOL_OPT_FLOAT, .dest = &cfg->churn, .fmin = 0.0,
          .fmax = 1e6 },
        { .name = "scales", .kind = TOOL_OPT_DOUBLE_LIST, .dest = cfg->scales,
          .count = &cfg->nscales, .capacity = CC_MAX_SCALES, .fmin = 0.0, .fmin_open = 1,
          .fmax = 1e30, .needs = "positive numbers, comma-separated (e.g. 0.1,1,10)" },
        { .name = "select", .kind = TOOL_OPT_CHOICE, .dest = &cfg->select_choice,
          .choices = select_names, .what = "selection rule" },
        { .name = "methods", .kind = TOOL_OPT_STRING, .dest = &methods,
          .needs = "method names, comma-separated" },
        { .name = "seed", .kind = TOOL_OPT_UINT64, .dest = &cfg->seed,
          .umax = UINT64_MAX - CC_MAX_SEEDS - 1,
          .needs = "a non-negative integer below 2^64 - 33" },
        { .name = "batch", .kind = TOOL_OPT_INT32, .dest = &cfg->batch, .min = 1,
          .max = 100000 },
        { .name = "png-cols", .kind = TOOL_OPT_INT32, .dest = &cfg->png_cols, .min = 0,
          .max = 100 },
        { .name = "data", .kind = TOOL_OPT_STRING, .dest = &cfg->data_opt,
          .needs = "a directory" },
        { .name = "models", .kind = TOOL_OPT_STRING, .dest = &cfg->models_opt,
          .needs = "a directory" },
        tool_option_threads(&cfg->threads),
        tool_option_backend(&cfg->backend_choice),
        tool_option_out(&cfg->out),
    };
    int st = tool_parse_options(CC_CMD, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                                lgd_classcond_usage);
    if (st != TOOL_CONTINUE)
        return st;
    const char *keys[CC_NMETHODS];
    for (int k = 0; k < CC_NMETHODS; k++)
        keys[k] = cc_methods[k].key;
    if (img_parse_methods(CC_CMD, methods, keys, CC_NMETHODS, cfg->use))
        return TOOL_EXIT_USAGE;
    if (cfg->nscales == 0) {
        cfg->nscales = (int)(sizeof default_grid / sizeof default_grid[0]);
        memcpy(cfg->scales, default_grid, sizeof default_grid);
    }
    if (cfg->png_cols > 0 && !img_png_available()) {
        fprintf(stderr, "lgd %s: note: this lgd was built without libpng: no PNG grid\n",
                CC_CMD);
        cfg->png_cols = 0;
    }
    return TOOL_CONTINUE;
}

static void print_header(const cc_config *cfg, const cc_problem *pb)
{
    printf("lgd classcond: label-conditional generation (Sec. 6.4, Table 4, App. B.4) on 8x8 "
           "digits\n");
    tool_print_library(pb->ctx);
    printf("model  %s (%s, %lld parameters)\n", pb->models.unet_path, pb->models.unet_desc,
           (long long)pb->models.unet_params);
    printf("loss   %s (clean classifier, %lld parameters, t = 0): -log softmax(f(x0))[y] for "
           "DPS and LGD-MC\n",
           pb->models.clf_path, (long long)pb->models.clf_params);
    printf("judge  %s (%s, %lld parameters, t = 0): accuracy, judge CE and the Frechet "
           "features (logits)\n",
           pb->models.judge_path,
           pb->models.judge_is_clf ? "the guiding classifier: no digits_judge.safetensors"
                                   : "a clean classifier trained apart",
           (long long)pb->models.judge_params);
    if (pb->models.noisy)
        printf("CG     %s (noise-aware classifier, %lld parameters, its file's adapter); also "
               "the second judge at sigma %g\n",
               pb->models.noisy_path, (long long)pb->models.noisy_params,
               (double)CC_JUDGE_SIGMA);
    printf("data   %s: reference images: tune split (%lld, tuning), test split (%lld, "
           "evaluation)\n",
           cfg->data_dir, (long long)pb->tune_real.n, (long long)pb->test_real.n);
    printf("sampler EDM stochastic Heun, %d steps (%d network evaluations), S_churn %g, S_tmin "
           "%g, S_tmax %g, S_noise %g; Karras sigmas %g -> %g (rho 7)\n",
           (int)cfg->steps, 2 * (int)cfg->steps - 1, (double)cfg->churn, (double)CC_S_TMIN,
           (double)CC_S_TMAX, (double)CC_S_NOISE, (double)pb->models.sigma_max,
           (double)pb->models.sigma_min);
    printf("guidance score rule (score + scale * g), LGD-MC r(sigma) = sigma / sqrt(1 + "
           "sigma^2); CG: score + w grad log p(y | x); grid:");
    for (int si = 0; si < cfg->nscales; si++)
        printf(" %g", cfg->scales[si]);
    printf("\nselection: per method, the lowest mean %s on %d tuning samples per label (seed "
           "%" PRIu64 ") among the scales without failed samples\n",
           cfg->select_choice == CC_SELECT_FD
               ? "per-label Frechet distance (judge's logits) to the tune split"
               : "cross-entropy",
           (int)cfg->tune, cfg->seed);
    printf("evaluation: %d samples per label x %d seeds (%" PRIu64 "..%" PRIu64
           "), the same seeds for every method; samples clipped to [-1, 1]\n\n",
           (int)cfg->per_label, (int)cfg->seeds, cfg->seed + 1, cfg->seed + (uint64_t)cfg->seeds);
}

static double total_units(const cc_config *cfg, int64_t rows, int tuning)
{
    double total = 0.0;
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const cc_method *m = &cc_methods[mi];
        int reps = tuning ? (m->kind == CC_BASELINE ? 1 : cfg->nscales) : cfg->seeds;
        total += m->cost * reps;
    }
    return total * (2.0 * cfg->steps - 1.0) * (double)rows;
}

static int run_experiment(cc_config *cfg)
{
    int rc = TOOL_EXIT_ERROR;
    cc_problem pb;
    memset(&pb, 0, sizeof pb);
    cc_grid *gr = calloc(1, sizeof *gr);
    cc_eval *ev = calloc(1, sizeof *ev);
    progress pr;
    progress_idle(&pr);
    double t_start = tool_now_ms();
    if (!gr || !ev) {
        tool_out_of_memory(CC_CMD);
        goto done;
    }
    if (img_find_dirs(CC_CMD, cfg->data_opt, cfg->models_opt, cfg->data_dir, cfg->models_dir) ||
        tool_make_out_dir(CC_CMD, cfg->out) || cc_problem_create(cfg, &pb))
        goto done;
    print_header(cfg, &pb);
    fflush(stdout);

    double t0 = tool_now_ms();
    progress_start(&pr, "lgd classcond: tuning",
                   total_units(cfg, (int64_t)cfg->tune * IMG_CLASSES, 1), cfg->quiet);
    if (cc_run_tuning(cfg, &pb, gr, &pr))
        goto done;
    progress_end(&pr);
    cc_print_grid(cfg, gr);
    printf("tuning took %.1f s\n\n", (tool_now_ms() - t0) / 1e3);
    fflush(stdout);

    t0 = tool_now_ms();
    progress_start(&pr, "lgd classcond: evaluation",
                   total_units(cfg, (int64_t)cfg->per_label * IMG_CLASSES, 0), cfg->quiet);
    if (cc_run_evaluation(cfg, &pb, gr, ev, &pr))
        goto done;
    progress_end(&pr);
    cc_print_table(cfg, &pb, ev);
    printf("evaluation took %.1f s\n", (tool_now_ms() - t0) / 1e3);
    if (cc_write_csv(cfg, gr, ev) || cc_write_png(cfg, &pb, ev))
        goto done;
    printf("\ntotal %.1f s; wrote classcond_tuning.csv, classcond_results.csv, "
           "classcond_summary.csv%s to %s/\n",
           (tool_now_ms() - t_start) / 1e3, cfg->png_cols > 0 ? " and classcond_grid.png" : "",
           cfg->out);
    rc = TOOL_EXIT_OK;
done:
    progress_end(&pr);
    if (ev)
        cc_eval_free(ev);
    free(ev);
    free(gr);
    cc_problem_destroy(&pb);
    return rc;
}

int lgd_classcond_main(int argc, char **argv)
{
    cc_config cfg = { .per_label = 10, .tune = 3, .seeds = 2, .steps = 36, .churn = 40.0f,
                      .select_choice = CC_SELECT_FD, .batch = 64, .png_cols = 4, .threads = 1,
                      .out = "lgd-classcond-out" };
    int st = parse_args(argc, argv, &cfg);
    if (st != TOOL_CONTINUE)
        return st;
    return run_experiment(&cfg);
}
