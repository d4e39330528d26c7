/*
 * lgd superres - the LGD paper's image super-resolution (Song et al., ICML 2023: Sec. 6.2,
 * Table 1, App. B.2) on the project's own trained models and real data.
 *
 * The paper recovers ImageNet 256x256 images from 64x64 bicubic downsamplings with an
 * unconditional diffusion model and the loss l(x0) = |y - H x0|^2 / (2 s^2), s = 0.25,
 * the guidance multiplied by s^2; DDIM with eta = 1 (DDPM), 100 steps; metrics FID and a
 * ResNet-50's accuracy. Here: the 8x8 handwritten digits of scikit-learn (data/digits/,
 * held-out test split), downsampled by 2 (4x4) with the library's matrix-free operators
 * (<lgd/operator.h>: antialiased bicubic, as PyTorch's, or average pooling), the
 * unconditional denoiser models/digits_unet.safetensors, and as the judge (the paper's
 * ResNet-50) the clean classifier models/digits_judge.safetensors (trained apart from
 * the others; models/digits_classifier.safetensors judges when it is missing). The
 * guidance here uses no classifier, so the judge is independent of it either way.
 *
 * Methods: Baseline (unguided), DPS, LGD-MC n = 1, 10, 100 and LGD-MC from loss values
 * only (LGD_GUIDANCE_MC_GRADIENT_FREE, n = 100), r(sigma) = sigma / sqrt(1 + sigma^2).
 * The step rule is the score rule: guided score = score + scale * g; the paper's choice is
 * scale = s^2 (<lgd/operator.h>); --rule normalized takes the DPS paper's step instead. Each guided method's scale is tuned on one shared grid
 * by the mean PSNR on the tune split (seed S), then the methods are evaluated on the test
 * split at the selected scales with seeds S + 1 .. S + k (the same seeds, hence the same
 * initial noise, for every method).
 *
 * Metrics (results clipped to [-1, 1]): PSNR (data range 2), SSIM (3x3 uniform window,
 * scikit-image's definition; an 8x8 image has room for no larger useful window), the
 * judge's accuracy on the results with the originals' labels, the Frechet distance
 * between the judge's logits (10-D: the network API gives a network's output only, not
 * its penultimate layer) of the results and of the originals (sample covariances, no
 * regularisation: the symmetric form of the trace term needs no inverse), and the data
 * consistency RMS(H x - y).
 *
 * Uses only the public API of liblgd. This file holds the command (usage, options, the
 * header it prints, the order of the parts); superres.h lists the others.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "commands.h"
#include "superres.h"
#include "tool_util.h"

static const char *const operator_names[] = { "avgpool", "bicubic", NULL };

/* The step rules of --rule and their kinds, in the same order. */
static const char *const rule_names[] = { "score", "normalized", NULL };
static const lgd_step_rule rule_kinds[] = { LGD_STEP_SCORE, LGD_STEP_NORMALIZED };

/* The default grids of scales: the score rule (guided score = score + scale * g) and the
 * normalized rule (lambda = scale / sqrt(loss), the DPS paper's step). */
static const double default_grid[] = { 1.0, 3.0, 10.0, 30.0, 100.0 };
static const double default_grid_normalized[] = { 0.1, 0.3, 1.0, 3.0, 10.0 };
#define SR_DEFAULT_SCALES 5
_Static_assert(sizeof default_grid == SR_DEFAULT_SCALES * sizeof(double) &&
                   sizeof default_grid_normalized == SR_DEFAULT_SCALES * sizeof(double),
               "parse_args copies SR_DEFAULT_SCALES scales");

void lgd_superres_usage(FILE *f)
{
    fprintf(f,
            "usage: lgd superres [options]\n"
            "\n"
            "The LGD paper's image super-resolution (Sec. 6.2, Table 1, App. B.2) on the\n"
            "shipped 8x8 digits models: test images downsampled by 2 (8x8 -> 4x4), recovered\n"
            "with the unconditional denoiser guided by l(x0) = |y - H x0|^2 / (2 s^2). Methods:\n"
            "Baseline (unguided), DPS, LGD-MC n = 1, 10, 100, gradient-free LGD-MC n = 100;\n"
            "DDIM eta 1 (DDPM), 100 steps, Karras sigmas 80 -> 0.002. Each guided method's\n"
            "scale (score rule: score + scale * g; the paper's is s^2) is tuned on one shared\n"
            "grid by the mean PSNR on tune-split images (seed S), then evaluated on test-split\n"
            "images with seeds S + 1 .. S + k. Metrics: PSNR, SSIM (3x3 window), the judge's\n"
            "accuracy (models/digits_judge.safetensors, a classifier trained apart), the\n"
            "Frechet distance of its logits to the originals', RMS(H x - y). Prints the\n"
            "tables beside the paper's Table 1, writes CSV files and a PNG grid. The best\n"
            "scale depends on --steps: tune the grid again when changing it.\n"
            "\n"
            "options (--opt VALUE or --opt=VALUE):\n"
            "  --test K       test images per label (default 5, i.e. 50 images; 0: all 450)\n"
            "  --tune K       tuning images per label, from the tune split (default 2)\n"
            "  --seeds N      evaluation seeds (default 3, at most %d)\n"
            "  --steps N      DDIM steps (default 100, the paper's)\n"
            "  --eta E        DDIM eta in [0, 1] (default 1, the paper's)\n"
            "  --operator O   bicubic (default, the paper's; antialiased, as PyTorch's) or avgpool\n"
            "  --factor F     downsampling factor, 2, 4 or 8 (default 2)\n"
            "  --loss-s S     the loss's s in |y - H x|^2 / (2 s^2) (default 0.25, the paper's)\n"
            "  --noise S      measurement noise standard deviation added to y (default 0)\n"
            "  --rule R       step rule: score (default; guided score = score + scale * g)\n"
            "                 or normalized (lambda = scale / sqrt(loss): the step of the DPS\n"
            "                 paper, Chung et al., whose DPS the paper's Table 1 cites)\n"
            "  --scales LIST  the grid of scales, the same for every guided method (default\n"
            "                 score: 1,3,10,30,100; normalized: 0.1,0.3,1,3,10)\n"
            "  --methods LIST methods to run, comma-separated (default all): baseline, dps,\n"
            "                 mc1, mc10, mc100, gf100\n"
            "  --seed S       tuning seed (default 0); evaluation seeds S + 1 .. S + N\n"
            "  --batch B      rows per sampler run (default 64)\n"
            "  --png-rows N   test images in the PNG grid (default 10; 0: no PNG)\n"
            "  --data DIR     the digits split (default: $LGD_DATA_DIR, ./data/digits, or the\n"
            "                 source tree's data/digits)\n"
            "  --models DIR   the models (default: $LGD_MODEL_DIR, ./models, or the source\n"
            "                 tree's models)\n"
            "  --threads N    CPU threads (default 1: the networks run at batch sizes where a\n"
            "                 second thread gains little and costs much on a busy machine;\n"
            "                 0: OpenMP's default)\n"
            "  --backend B    cpu (default), cuda or auto\n"
            "  --out DIR      output directory, created if missing (default lgd-superres-out)\n"
            "  --quiet        no progress indicator\n"
            "  --help         this message\n"
            "\n"
            "Output files: superres_tuning.csv (per method and scale), superres_results.csv\n"
            "(per method and seed), superres_summary.csv (mean and spread over seeds),\n"
            "superres_grid.png (rows: test images; columns: y upsampled, original, the\n"
            "methods' results of the first seed).\n"
            "Exit status: 0 done, 1 error (e.g. models or data not found), 2 bad usage.\n",
            SR_MAX_SEEDS);
}

static int parse_args(int argc, char **argv, sr_config *cfg)
{
    const char *methods = NULL;
    const tool_option opts[] = {
        tool_option_quiet(&cfg->quiet),
        { .name = "test", .kind = TOOL_OPT_INT32, .dest = &cfg->test, .min = 0, .max = 100000 },
        { .name = "tune", .kind = TOOL_OPT_INT32, .dest = &cfg->tune, .min = 1, .max = 100000 },
        { .name = "seeds", .kind = TOOL_OPT_INT32, .dest = &cfg->seeds, .min = 1,
          .max = SR_MAX_SEEDS },
        { .name = "steps", .kind = TOOL_OPT_INT32, .dest = &cfg->steps, .min = 1,
          .max = 100000 },
        { .name = "eta", .kind = TOOL_OPT_FLOAT, .dest = &cfg->eta, .fmin = 0.0, .fmax = 1.0 },
        { .name = "operator", .kind = TOOL_OPT_CHOICE, .dest = &cfg->op_choice,
          .choices = operator_names, .what = "operator" },
        { .name = "factor", .kind = TOOL_OPT_INT32, .dest = &cfg->factor, .min = 2, .max = 8,
          .needs = "2, 4 or 8" },
        { .name = "loss-s", .kind = TOOL_OPT_FLOAT, .dest = &cfg->s, .fmin = 1e-3, .fmax = 1e3 },
        { .name = "noise", .kind = TOOL_OPT_FLOAT, .dest = &cfg->noise, .fmin = 0.0,
          .fmax = 10.0 },
        { .name = "scales", .kind = TOOL_OPT_DOUBLE_LIST, .dest = cfg->scales,
          .count = &cfg->nscales, .capacity = SR_MAX_SCALES, .fmin = 0.0, .fmin_open = 1,
          .fmax = 1e30, .needs = "positive numbers, comma-separated (e.g. 0.1,1,10)" },
        { .name = "rule", .kind = TOOL_OPT_CHOICE, .dest = &cfg->rule_choice,
          .choices = rule_names, .what = "step rule" },
        { .name = "methods", .kind = TOOL_OPT_STRING, .dest = &methods,
          .needs = "method names, comma-separated" },
        { .name = "seed", .kind = TOOL_OPT_UINT64, .dest = &cfg->seed,
          .umax = UINT64_MAX - SR_MAX_SEEDS - 1,
          .needs = "a non-negative integer below 2^64 - 33" },
        { .name = "batch", .kind = TOOL_OPT_INT32, .dest = &cfg->batch, .min = 1,
          .max = 100000 },
        { .name = "png-rows", .kind = TOOL_OPT_INT32, .dest = &cfg->png_rows, .min = 0,
          .max = 1000 },
        { .name = "data", .kind = TOOL_OPT_STRING, .dest = &cfg->data_opt,
          .needs = "a directory" },
        { .name = "models", .kind = TOOL_OPT_STRING, .dest = &cfg->models_opt,
          .needs = "a directory" },
        tool_option_threads(&cfg->threads),
        tool_option_backend(&cfg->backend_choice),
        tool_option_out(&cfg->out),
    };
    int st = tool_parse_options(SR_CMD, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                                lgd_superres_usage);
    if (st != TOOL_CONTINUE)
        return st;
    if (cfg->factor != 2 && cfg->factor != 4 && cfg->factor != 8)
        return tool_usage_error(SR_CMD, "--factor needs 2, 4 or 8");
    const char *keys[SR_NMETHODS];
    for (int k = 0; k < SR_NMETHODS; k++)
        keys[k] = sr_methods[k].key;
    if (img_parse_methods(SR_CMD, methods, keys, SR_NMETHODS, cfg->use))
        return TOOL_EXIT_USAGE;
    cfg->rule = rule_kinds[cfg->rule_choice];
    if (cfg->nscales == 0) {
        const double *g = cfg->rule == LGD_STEP_SCORE ? default_grid : default_grid_normalized;
        cfg->nscales = SR_DEFAULT_SCALES;
        memcpy(cfg->scales, g, SR_DEFAULT_SCALES * sizeof *g);
    }
    if (cfg->png_rows > 0 && !img_png_available()) {
        fprintf(stderr, "lgd %s: note: this lgd was built without libpng: no PNG grid\n",
                SR_CMD);
        cfg->png_rows = 0;
    }
    return TOOL_CONTINUE;
}

static void print_header(const sr_config *cfg, const sr_problem *pb)
{
    printf("lgd superres: image super-resolution (Sec. 6.2, Table 1, App. B.2) on 8x8 digits\n");
    tool_print_library(pb->ctx);
    printf("model  %s (%s, %lld parameters)\n", pb->models.unet_path, pb->models.unet_desc,
           (long long)pb->models.unet_params);
    printf("judge  %s (%s, %lld parameters, t = 0): accuracy %.1f%% on these test "
           "originals\n",
           pb->models.judge_path,
           pb->models.judge_is_clf ? "the clean classifier: no digits_judge.safetensors"
                                   : "a clean classifier trained apart",
           (long long)pb->models.judge_params, 100.0 * pb->orig_accuracy);
    char test[48];
    if (cfg->test > 0)
        snprintf(test, sizeof test, "up to %d per label", (int)cfg->test);
    else
        snprintf(test, sizeof test, "the whole split");
    printf("data   %s: %lld tune images (up to %d per label), %lld test images (%s)\n",
           cfg->data_dir, (long long)pb->tune.n, (int)cfg->tune, (long long)pb->test.n, test);
    char noise[48];
    if (cfg->noise > 0.0f)
        snprintf(noise, sizeof noise, "plus noise of sd %g", (double)cfg->noise);
    else
        snprintf(noise, sizeof noise, "noise-free");
    printf("task   y = H x, H = %s downsampling by %d (8x8 -> %dx%d), %s; loss |y - H x0|^2 / "
           "(2 s^2), s = %g\n",
           cfg->op_choice == 0 ? "average-pool" : "antialiased bicubic", (int)cfg->factor,
           IMG_SIDE / cfg->factor, IMG_SIDE / cfg->factor, noise, (double)cfg->s);
    printf("sampler DDIM (eta %g), %d steps, Karras sigmas %g -> %g (rho 7); LGD-MC r(sigma) = "
           "sigma / sqrt(1 + sigma^2)\n",
           (double)cfg->eta, (int)cfg->steps, (double)pb->models.sigma_max,
           (double)pb->models.sigma_min);
    if (cfg->rule == LGD_STEP_SCORE)
        printf("guidance score rule (score + scale * g; the paper's scale is s^2 = %g); grid:",
               (double)(cfg->s * cfg->s));
    else
        printf("guidance normalized rule (lambda = scale / sqrt(loss), the DPS paper's step); "
               "grid:");
    for (int si = 0; si < cfg->nscales; si++)
        printf(" %g", cfg->scales[si]);
    printf("\nselection: per method, the highest mean PSNR on the tune images (seed %" PRIu64
           ") among the scales without failed samples\n",
           cfg->seed);
    printf("evaluation: %lld test images x %d seeds (%" PRIu64 "..%" PRIu64
           "), the same seeds for every method; results clipped to [-1, 1]\n\n",
           (long long)pb->test.n, (int)cfg->seeds, cfg->seed + 1,
           cfg->seed + (uint64_t)cfg->seeds);
}

static double total_units(const sr_config *cfg, int64_t rows, int tuning)
{
    double total = 0.0;
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const sr_method *m = &sr_methods[mi];
        int reps = tuning ? (m->kind == LGD_GUIDANCE_NONE ? 1 : cfg->nscales) : cfg->seeds;
        total += m->cost * reps;
    }
    return total * cfg->steps * (double)rows;
}

static int run_experiment(sr_config *cfg)
{
    int rc = TOOL_EXIT_ERROR;
    sr_problem pb;
    memset(&pb, 0, sizeof pb);
    sr_grid *gr = calloc(1, sizeof *gr);
    sr_eval *ev = calloc(1, sizeof *ev);
    progress pr;
    progress_idle(&pr);
    double t_start = tool_now_ms();
    if (!gr || !ev) {
        tool_out_of_memory(SR_CMD);
        goto done;
    }
    if (img_find_dirs(SR_CMD, cfg->data_opt, cfg->models_opt, cfg->data_dir, cfg->models_dir) ||
        tool_make_out_dir(SR_CMD, cfg->out) || sr_problem_create(cfg, &pb))
        goto done;
    print_header(cfg, &pb);
    fflush(stdout);

    double t0 = tool_now_ms();
    progress_start(&pr, "lgd superres: tuning", total_units(cfg, pb.tune.n, 1), cfg->quiet);
    if (sr_run_tuning(cfg, &pb, gr, &pr))
        goto done;
    progress_end(&pr);
    sr_print_grid(cfg, gr);
    printf("tuning took %.1f s\n\n", (tool_now_ms() - t0) / 1e3);
    fflush(stdout);

    t0 = tool_now_ms();
    progress_start(&pr, "lgd superres: evaluation", total_units(cfg, pb.test.n, 0), cfg->quiet);
    if (sr_run_evaluation(cfg, &pb, gr, ev, &pr))
        goto done;
    progress_end(&pr);
    sr_print_table(cfg, &pb, ev);
    printf("evaluation took %.1f s\n", (tool_now_ms() - t0) / 1e3);
    if (sr_write_csv(cfg, gr, ev) || sr_write_png(cfg, &pb, ev))
        goto done;
    printf("\ntotal %.1f s; wrote superres_tuning.csv, superres_results.csv, "
           "superres_summary.csv%s to %s/\n",
           (tool_now_ms() - t_start) / 1e3, cfg->png_rows > 0 ? " and superres_grid.png" : "",
           cfg->out);
    rc = TOOL_EXIT_OK;
done:
    progress_end(&pr);
    if (ev)
        sr_eval_free(ev);
    free(ev);
    free(gr);
    sr_problem_destroy(&pb);
    return rc;
}

int lgd_superres_main(int argc, char **argv)
{
    sr_config cfg = { .test = 5, .tune = 2, .seeds = 3, .steps = 100, .eta = 1.0f,
                      .op_choice = 1, .factor = 2, .s = 0.25f, .noise = 0.0f, .batch = 64,
                      .png_rows = 10, .threads = 1, .out = "lgd-superres-out" };
    int st = parse_args(argc, argv, &cfg);
    if (st != TOOL_CONTINUE)
        return st;
    return run_experiment(&cfg);
}
