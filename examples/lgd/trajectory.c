/*
 * lgd trajectory - the LGD paper's controllable trajectory synthesis (Song et al., ICML 2023:
 * Sec. 6.3, Tables 2 and 3, Fig. 2 and 10, App. B.3, Eq. 14, 15 and 20) on a prior of our own.
 *
 * The paper guides a text-to-motion diffusion model (MDM) whose root trajectory is the
 * running sum of root velocities. That model cannot be had here, so the prior is the
 * library's trajectory prior (lgd_model_create_trajectory_prior, defaults): 64 frames of
 * normalised 2-D root velocities (dim 128), an exact 24-component Gaussian mixture
 * (8 headings x 3 turn rates, smooth Gaussian-process variation), with positions
 * p_t = 0.1 * sum_{s <= t} v_s: a straight walk at the prior's speed covers 6.4 units.
 *
 * Tasks (the losses are the library's built-ins, lgd_loss_create_path and
 * lgd_loss_create_obstacle_avoidance with the paper's constants):
 *  - path following (Table 2): straight target paths y_t = 0.1 (t + 1) (cos a, sin a) from the
 *    origin at a = 20, 110 and 235 degrees (none is one of the prior's 8 headings);
 *  - obstacle avoidance (Table 3): two layouts where the straight path to the goal collides
 *    with an obstacle of radius 1 (Eq. 20).
 * Methods: Baseline (no guidance), DPS, LGD-MC with n = 10 and n = 100 (r(sigma) =
 * sigma / sqrt(1 + sigma^2)); 100-step DDIM (eta 0) on the Karras grid 80 -> 0.002.
 *
 * --prior learned samples from a trained network instead (lgd_network_load: a denoiser
 * trained on samples of the exact prior, default models/trajectory_denoiser.safetensors),
 * everything else the same; the NLL and plausibility metrics stay those of the exact
 * prior, the distribution the network learned. --compare runs both priors and prints
 * them side by side.
 *
 * --gradient-free adds, beyond the paper, gradient-free LGD-MC
 * (LGD_GUIDANCE_MC_GRADIENT_FREE: loss values only) with n = 100 and n = 1000, a third
 * task family, obstacle avoidance with a hard 0/1 collision indicator (trajectory_hard.h:
 * the gradient methods see only its goal term's gradient), and a table of each
 * estimator's noise against its n -> infinity limit.
 *
 * Fair tuning: every guided method gets the same grid of guidance scales for the chosen
 * step rule; each method's scale is chosen per task family by its mean Objective on tuning
 * samples (seed S + 1), then evaluated at that scale on separate evaluation samples
 * (seed S): the first --seeds rows per task (the paper's 10 seeds per direction) and
 * --large rows per task for a stable estimate.
 *
 * Metrics: Objective (loss / frames, the paper's), collision rate, final distance to the
 * target, and, as a stand-in for the paper's Embedding column (is the motion still a
 * plausible one?), the exact prior's -log p0(x0) / frame and the rate of implausible
 * samples (a frame faster than 3, three times the prior's speed: a path that jumps).
 * --select plausible restricts the selection to scales whose tuning samples are all
 * plausible.
 *
 * A run that produces non-finite values (LGD_ERR_NON_FINITE) is rerun one row at a time,
 * so that the rows that diverge are counted (and rank their scale last) instead of
 * hiding the run; any other library error ends the command with exit status 1.
 *
 * Uses only the public API of liblgd. This file holds the command itself (usage,
 * options, the header it prints, the order of the parts); trajectory.h lists the others.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "commands.h"
#include "tool_util.h"
#include "trajectory.h"

/* The step rules of --rule and their kinds, in the same order. */
static const char *const rule_names[] = { "x0", "score", "normalized", NULL };
static const lgd_step_rule rule_kinds[] = { LGD_STEP_X0, LGD_STEP_SCORE, LGD_STEP_NORMALIZED };
/* The choices of --select, in the order of SELECT_PLAUSIBLE, SELECT_OBJECTIVE. */
static const char *const select_names[] = { "plausible", "objective", NULL };

/* Default grids of scales per step rule. */
static const double grid_x0[] = { 0.03, 0.1, 0.3, 1.0, 3.0, 10.0 };
static const double grid_score[] = { 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0 };
static const double grid_normalized[] = { 0.1, 0.3, 1.0, 3.0, 10.0, 30.0 };

void lgd_trajectory_usage(FILE *f)
{
    fprintf(f,
            "usage: lgd trajectory [options]\n"
            "\n"
            "The LGD paper's controllable trajectory synthesis (Sec. 6.3, Tables 2 and 3) on\n"
            "liblgd's trajectory prior: 64 frames of root velocities (dim 128, 24 components),\n"
            "positions 0.1 * cumsum(v). Path following to straight lines at 20, 110 and 235\n"
            "degrees (Table 2) and obstacle avoidance in two layouts whose straight path\n"
            "collides (Table 3); Baseline, DPS, LGD-MC n = 10 and n = 100; DDIM (eta 0) on the\n"
            "Karras grid 80 -> 0.002.\n"
            "Each guided method's scale is tuned on one fixed grid (the same for all) by its\n"
            "mean Objective on tuning samples, then evaluated on separate samples. Prints the\n"
            "tables beside the paper's and writes CSV files and SVG figures.\n"
            "\n"
            "options (--opt VALUE or --opt=VALUE):\n"
            "  --prior P      exact (default: the library's trajectory prior, an exact Gaussian\n"
            "                 mixture) or learned (a denoiser network trained on its samples,\n"
            "                 from --model); the NLL and plausibility metrics are the exact\n"
            "                 prior's either way\n"
            "  --model FILE   the learned prior's network file (default:\n"
            "                 " DEFAULT_MODEL_NAME " in $LGD_MODEL_DIR if set,\n"
            "                 else in models/ under the current directory, else in the\n"
            "                 source tree's models/)\n"
            "  --compare      run the experiment with the exact prior (into DIR/exact), then\n"
            "                 with the learned one (DIR/learned), and print their results side\n"
            "                 by side (DIR/compare.csv); --prior is then ignored\n"
            "  --gradient-free\n"
            "                 also run gradient-free LGD-MC (loss values only) with n = 100 and\n"
            "                 n = 1000, a third task family (the two obstacle layouts with a\n"
            "                 hard 0/1 collision indicator: |p_T - goal|^2 + 100 * 1[some\n"
            "                 frame inside]; DPS and LGD-MC see only the goal term's\n"
            "                 gradient), and measure each estimator's noise (noise.csv);\n"
            "                 about 3 times the default run's time\n"
            "  --noise-draws N\n"
            "                 --gradient-free: draws of each of the noise table's two\n"
            "                 references (default 16384; 0: no noise table)\n"
            "  --seeds N      evaluation samples per task, the paper's protocol (default 10)\n"
            "  --large N      evaluation samples per task for a stable estimate (default 100;\n"
            "                 0: off); the first --seeds of them are the paper-protocol ones\n"
            "  --tune N       tuning samples per task, from another seed (default 20)\n"
            "  --steps N      DDIM steps (default 100)\n"
            "  --seed S       evaluation seed (default 0); tuning uses S + 1\n"
            "  --rule R       step rule: x0 (default; lambda = scale), score (lambda =\n"
            "                 scale * sigma^2) or normalized (lambda = scale / sqrt(loss))\n"
            "  --scales LIST  the grid of scales, comma-separated, the same for every guided\n"
            "                 method (default for x0: 0.03,0.1,0.3,1,3,10; score:\n"
            "                 0.0003,0.001,...,1; normalized: 0.1,0.3,...,30)\n"
            "  --select S     how a method's scale is chosen per task family on the tuning\n"
            "                 samples: objective (default; the lowest mean Objective among the\n"
            "                 scales without failed (non-finite) samples) or plausible (the\n"
            "                 same among the scales whose samples are also all plausible: no\n"
            "                 frame faster than 3, three times the prior's speed)\n"
            "  --sigma-min S  turn guidance off below the noise level S (the guidance\n"
            "                 window's lower end, the same for every method; default 0)\n"
            "  --threads N    CPU threads (default 0: OpenMP's default)\n"
            "  --out DIR      output directory, created if missing (default\n"
            "                 lgd-trajectory-out)\n"
            "  --quiet        no progress indicator\n"
            "  --help         this message\n"
            "\n"
            "Output files: grid.csv, results.csv, trajectories.csv, fig_path.svg,\n"
            "fig_obstacle.svg; with --gradient-free also fig_hard.svg and noise.csv; with\n"
            "--compare the two runs' files in DIR/exact and DIR/learned, and compare.csv.\n");
}


/* The default grid of scales of cfg->rule, when --scales was not given. */
static void default_scales(traj_config *cfg)
{
    const double *g = cfg->rule == LGD_STEP_X0 ? grid_x0
                      : cfg->rule == LGD_STEP_SCORE ? grid_score : grid_normalized;
    size_t n = cfg->rule == LGD_STEP_X0 ? sizeof grid_x0 / sizeof grid_x0[0]
               : cfg->rule == LGD_STEP_SCORE ? sizeof grid_score / sizeof grid_score[0]
                                             : sizeof grid_normalized / sizeof grid_normalized[0];
    for (size_t k = 0; k < n; k++)
        cfg->scales[k] = g[k];
    cfg->nscales = (int)n;
}

/* The option table of lgd trajectory, into cfg; TOOL_CONTINUE or an exit status. */
static int parse_args(int argc, char **argv, traj_config *cfg)
{
    const tool_option opts[] = {
        tool_option_quiet(&cfg->quiet),
        { .name = "seeds", .kind = TOOL_OPT_INT32, .dest = &cfg->seeds, .min = 1,
          .max = 100000 },
        { .name = "large", .kind = TOOL_OPT_INT32, .dest = &cfg->large, .min = 0,
          .max = 100000 },
        { .name = "tune", .kind = TOOL_OPT_INT32, .dest = &cfg->tune, .min = 1,
          .max = 100000 },
        { .name = "steps", .kind = TOOL_OPT_INT32, .dest = &cfg->steps, .min = 1,
          .max = 100000 },
        /* tuning uses seed + 1 */
        { .name = "seed", .kind = TOOL_OPT_UINT64, .dest = &cfg->seed, .umax = UINT64_MAX - 1,
          .needs = "a non-negative integer below 2^64 - 1" },
        tool_option_threads(&cfg->threads),
        { .name = "scales", .kind = TOOL_OPT_DOUBLE_LIST, .dest = cfg->scales,
          .count = &cfg->nscales, .capacity = MAX_SCALES, .fmin = 0.0, .fmin_open = 1,
          .fmax = 1e30, .needs = "positive numbers, comma-separated (e.g. 0.1,1,10)" },
        { .name = "rule", .kind = TOOL_OPT_CHOICE, .dest = &cfg->rule_choice,
          .choices = rule_names, .what = "step rule" },
        { .name = "select", .kind = TOOL_OPT_CHOICE, .dest = &cfg->select_choice,
          .choices = select_names, .what = "selection rule" },
        { .name = "sigma-min", .kind = TOOL_OPT_FLOAT, .dest = &cfg->sigma_min, .fmin = 0.0,
          .fmax = 1e4, .needs = "a noise level >= 0" },
        { .name = "prior", .kind = TOOL_OPT_CHOICE, .dest = &cfg->prior,
          .choices = prior_names, .what = "prior" },
        { .name = "model", .kind = TOOL_OPT_STRING, .dest = &cfg->model },
        { .name = "compare", .kind = TOOL_OPT_FLAG, .dest = &cfg->compare },
        { .name = "gradient-free", .kind = TOOL_OPT_FLAG, .dest = &cfg->gradient_free },
        { .name = "noise-draws", .kind = TOOL_OPT_INT32, .dest = &cfg->noise_draws, .min = 0,
          .max = 1 << 20 },
        tool_option_out(&cfg->out),
    };
    int st = tool_parse_options(CMD, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                                lgd_trajectory_usage);
    if (st != TOOL_CONTINUE)
        return st;
    cfg->rule = rule_kinds[cfg->rule_choice];
    cfg->rule_name = rule_names[cfg->rule_choice];
    cfg->select_plausible = cfg->select_choice == SELECT_PLAUSIBLE;
    if (cfg->nscales == 0)
        default_scales(cfg);
    return TOOL_CONTINUE;
}

static const char *rule_formula(lgd_step_rule r)
{
    return r == LGD_STEP_X0 ? "lambda = scale"
           : r == LGD_STEP_SCORE ? "lambda = scale * sigma^2" : "lambda = scale / sqrt(loss)";
}

/* The learned prior's line of the header: the file and what its metadata say. */
static void print_learned_prior(const traj_config *cfg, const traj_problem *pb)
{
    const char *arch = lgd_network_metadata(pb->net, "lgd.architecture");
    const char *pred = lgd_network_metadata(pb->net, "lgd.prediction");
    const char *tin = lgd_network_metadata(pb->net, "lgd.time_input");
    printf("prior  learned: %s (%s, %" PRId64 " parameters, prediction %s, time input %s), "
           "loaded with lgd_network_load and the file's adapter; NLL and plausibility are "
           "measured under the exact prior (lgd_model_create_trajectory_prior, defaults), the "
           "distribution it was trained on\n",
           cfg->model_path, arch ? arch : "?", lgd_network_parameter_count(pb->net),
           pred ? pred : "eps (default)", tin ? tin : "discrete (default)");
}

static void print_header(const traj_config *cfg, const traj_problem *pb)
{
    printf("lgd trajectory: controllable trajectory synthesis (Sec. 6.3, Tables 2 and 3)\n");
    tool_print_library(pb->ctx);
    if (cfg->prior == PRIOR_LEARNED)
        print_learned_prior(cfg, pb);
    else
        printf("prior  %slgd_model_create_trajectory_prior (defaults): %d frames of root "
               "velocities (dim %d), 8 headings x 3 turns = 24 components; positions = %g * "
               "cumsum(v)\n",
               cfg->compare ? "exact: " : "", FRAMES, DIM, VELOCITY_SCALE);
    printf("tasks ");
    for (int k = 0; k < NTASKS; k++) {
        const task *t = &pb->tasks[k];
        if (!traj_task_on(cfg, k))
            continue;
        if (t->def->fam == FAM_PATH) {
            printf(" %s: line to (%.2f, %.2f);", t->def->key, t->target[0], t->target[1]);
        } else {
            printf(" %s: goal (%.2f, %.2f), obstacles", t->def->key, t->target[0], t->target[1]);
            for (int o = 0; o < t->nobs; o++)
                printf(" (%.2f, %.2f, r %g)", (double)t->obs[3 * o], (double)t->obs[3 * o + 1],
                       (double)t->obs[3 * o + 2]);
            printf("%s", t->def->fam == FAM_HARD ? " (hard 0/1 indicator)" : "");
            printf("%s", k + 1 < NTASKS && traj_task_on(cfg, k + 1) ? ";" : "");
        }
    }
    printf("\n");
    if (cfg->gradient_free) { /* the default run's methods are those of the paper */
        printf("methods");
        for (int mi = 0; mi < NMETHODS; mi++)
            printf(" %s%s", method_defs[mi].name, mi + 1 < NMETHODS ? ";" : "");
        printf(" (GF: gradient-free, loss values only)\n");
    }
    printf("sampler DDIM (eta 0), %d steps, Karras sigmas 80 -> 0.002 (rho 7); LGD-MC r(sigma) = "
           "sigma / sqrt(1 + sigma^2)\n",
           (int)cfg->steps);
    printf("guidance step rule %s (%s)", cfg->rule_name, rule_formula(cfg->rule));
    if (cfg->sigma_min > 0.0f)
        printf(", off below sigma = %g (--sigma-min)", (double)cfg->sigma_min);
    printf("; grid of scales:");
    for (int si = 0; si < cfg->nscales; si++)
        printf(" %g", cfg->scales[si]);
    printf("\n");
    printf("selection: per method and task family, %s\n",
           cfg->select_plausible
               ? "the lowest mean Objective among the scales whose tuning samples are all finite "
                 "and plausible (--select plausible)"
               : "the lowest mean Objective among the scales whose tuning samples are all finite "
                 "(--select objective)");
    printf("tuning seed %" PRIu64 " (%d samples per task); evaluation seed %" PRIu64
           " (%d samples per task, the paper's protocol",
           cfg->seed + 1, (int)cfg->tune, cfg->seed, (int)cfg->seeds);
    if (cfg->large > 0)
        printf("; and %d for the large estimate", (int)cfg->large);
    printf(")\n\n");
}

/* The progress units of one sample of every method that takes part on every task that
 * does (of the scales grid when tuning). */
static double units_per_sample(const traj_config *cfg, int tuning)
{
    double total = 0.0;
    int ntasks = 0;
    for (int k = 0; k < NTASKS; k++)
        ntasks += traj_task_on(cfg, k);
    for (int mi = 0; mi < NMETHODS; mi++)
        if (traj_method_on(cfg, mi))
            total += method_defs[mi].cost *
                     (tuning ? traj_nscales_of(cfg, &method_defs[mi]) : 1);
    return total * (double)cfg->steps * ntasks;
}

/* 1. Tuning on the grid (seed + 1): grid.csv and the tuning table. */
static int tuning_part(const traj_config *cfg, traj_problem *pb, grid *gr, progress *pr)
{
    progress_start(pr, "lgd trajectory: tuning", units_per_sample(cfg, 1) * cfg->tune,
                   cfg->quiet);
    int bad = traj_run_tuning(cfg, pb, gr, pr);
    progress_end(pr);
    if (bad || traj_write_grid_csv(cfg, gr))
        return 1;
    traj_print_grid(cfg, gr);
    fflush(stdout);
    return 0;
}

/* 2. Evaluation at the selected scales (seed): Tables 2 and 3 and the reading. */
static int evaluation_part(const traj_config *cfg, traj_problem *pb, const grid *gr,
                           evaluation *ev, progress *pr)
{
    int64_t rows = cfg->large > cfg->seeds ? cfg->large : cfg->seeds;
    progress_start(pr, "lgd trajectory: evaluation", units_per_sample(cfg, 0) * (double)rows,
                   cfg->quiet);
    int bad = traj_run_evaluation(cfg, pb, gr, ev, pr);
    progress_end(pr);
    if (bad)
        return 1;
    traj_print_table2(cfg, ev, 0);
    traj_print_table3(cfg, ev, 0);
    if (cfg->large > 0) {
        traj_print_table2(cfg, ev, 1);
        traj_print_table3(cfg, ev, 1);
    }
    traj_print_reading(cfg, ev, gr);
    return 0;
}

/* The whole experiment with the prior of pb (created for cfg): tables and files in
 * cfg->out; ev keeps the evaluation. 0 or 1. */
static int run_one(const traj_config *cfg, traj_problem *pb, evaluation *ev)
{
    int rc = 1;
    grid *gr = calloc(1, sizeof *gr);
    progress pr;
    progress_idle(&pr);
    double t_start = tool_now_ms();
    if (!gr) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (tool_make_out_dir(CMD, cfg->out))
        goto done;
    print_header(cfg, pb);
    fflush(stdout);
    if (tuning_part(cfg, pb, gr, &pr) || evaluation_part(cfg, pb, gr, ev, &pr))
        goto done;
    if (cfg->gradient_free && cfg->noise_draws > 0 && traj_estimator_noise(cfg, pb, &pr))
        goto done;
    if (traj_write_results_csv(cfg, ev) || traj_write_trajectories_csv(cfg, ev) ||
        traj_write_figures(cfg, ev, pb))
        goto done;
    printf("\ntotal %.1f s; wrote grid.csv, results.csv, trajectories.csv, fig_path.svg%s%s "
           "to %s/\n",
           (tool_now_ms() - t_start) / 1e3, cfg->gradient_free ? ", fig_obstacle.svg" :
           " and fig_obstacle.svg",
           !cfg->gradient_free ? ""
           : cfg->noise_draws > 0 ? ", fig_hard.svg and noise.csv" : " and fig_hard.svg", cfg->out);
    rc = 0;
done:
    progress_end(&pr);
    free(gr);
    return rc;
}

/* DIR/NAME into buf; 1 (reported) when it does not fit. */
static int sub_dir(char *buf, size_t size, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size) {
        fprintf(stderr, "lgd " CMD ": the output directory name %s is too long\n", dir);
        return 1;
    }
    return 0;
}

/* --compare: both priors (each problem created before either runs, so that a missing
 * network file fails at once), then the comparison. An exit status. */
static int run_compare(const traj_config *cfg)
{
    int rc = TOOL_EXIT_ERROR;
    traj_config c[2] = { *cfg, *cfg };
    char dirs[2][4096];
    traj_problem pb[2];
    evaluation *ev[2] = { calloc(1, sizeof *ev[0]), calloc(1, sizeof *ev[1]) };
    memset(pb, 0, sizeof pb);
    double t_start = tool_now_ms();
    if (!ev[0] || !ev[1]) {
        tool_out_of_memory(CMD);
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        c[i].prior = i == 0 ? PRIOR_EXACT : PRIOR_LEARNED;
        if (sub_dir(dirs[i], sizeof dirs[i], cfg->out, prior_names[i]))
            goto done;
        c[i].out = dirs[i];
    }
    if (tool_make_out_dir(CMD, cfg->out) || traj_problem_create(&pb[0], &c[0]) ||
        traj_problem_create(&pb[1], &c[1]))
        goto done;
    for (int i = 0; i < 2; i++) {
        if (i > 0)
            printf("\n");
        if (run_one(&c[i], &pb[i], ev[i]))
            goto done;
        fflush(stdout);
    }
    const evaluation *const evs[2] = { ev[0], ev[1] };
    printf("\n");
    traj_print_comparison(cfg, evs);
    if (traj_write_compare_csv(cfg, evs))
        goto done;
    printf("\ncompare: total %.1f s; wrote compare.csv to %s/ and each prior's files to %s/ "
           "and %s/\n",
           (tool_now_ms() - t_start) / 1e3, cfg->out, dirs[0], dirs[1]);
    rc = TOOL_EXIT_OK;
done:
    for (int i = 0; i < 2; i++) {
        if (ev[i])
            traj_evaluation_free(ev[i]);
        free(ev[i]);
        traj_problem_destroy(&pb[i]);
    }
    return rc;
}

/* The whole experiment; an exit status. */
static int run_experiment(const traj_config *cfg)
{
    if (cfg->compare)
        return run_compare(cfg);
    int rc = TOOL_EXIT_ERROR;
    traj_problem pb;
    memset(&pb, 0, sizeof pb);
    evaluation *ev = calloc(1, sizeof *ev);
    if (!ev) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (traj_problem_create(&pb, cfg) || run_one(cfg, &pb, ev))
        goto done;
    rc = TOOL_EXIT_OK;
done:
    if (ev)
        traj_evaluation_free(ev);
    free(ev);
    traj_problem_destroy(&pb);
    return rc;
}

int lgd_trajectory_main(int argc, char **argv)
{
    /* defaults; the choices' index 0 is x0 for --rule */
    traj_config cfg = { .seeds = 10, .large = 100, .tune = 20, .steps = 100,
                        .noise_draws = 16384,
                        .select_choice = SELECT_OBJECTIVE, .out = "lgd-trajectory-out" };
    int st = parse_args(argc, argv, &cfg);
    if (st != TOOL_CONTINUE)
        return st;
    if (cfg.model && cfg.prior != PRIOR_LEARNED && !cfg.compare)
        return tool_usage_error(CMD, "--model needs --prior learned or --compare");
    if (traj_model_path(&cfg, cfg.model_path, sizeof cfg.model_path))
        return tool_usage_error(CMD, "the --model path is too long");
    return run_experiment(&cfg);
}
