/*
 * test_trajectory_tool.c - the `lgd trajectory` subcommand (issue 4, the paper's Sec. 6.3;
 * issue 14: the learned prior and gradient-free LGD-MC): run small (3 + 4 samples per
 * task, 20 steps, a 2-point grid) into a temporary directory; its CSV files are well
 * formed (header, field counts, finite numbers, row counts), the selected scales come from
 * the grid, guidance beats the Baseline on path following, its SVG files are SVG, and its
 * exit statuses are 0 / 1 / 2 as documented. --gradient-free: the hard family's Objective
 * is its goal term plus W times its collision rate, and the noise table says that the
 * gradient-free estimator's error falls with n and that the gradient ones miss the
 * indicator's jump. --prior learned and --compare with the trained network
 * (models/trajectory_denoiser.safetensors, or $LGD_TRAJECTORY_MODEL; skipped when there
 * is none). The hard loss itself (examples/lgd/trajectory_hard.c, linked in) against the
 * library's obstacle loss.
 *
 * The tool runs as a child process ($LGD_TOOL, set by meson), which the valgrind pass does
 * not trace. The child gets OMP_NUM_THREADS=1 unless the environment sets it: on a
 * 2-core machine where another test keeps a core busy, OpenBLAS's OpenMP threads (which
 * the context's thread count does not reach) can make the prior's set-up very slow.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tooltest.h"
#include "trajectory_hard.h"



/* A parsed CSV file: the header's column count and every field of every row. */
typedef struct csv {
    char *text;
    int ncols;
    long nrows;
    char ***rows; /* rows[r][c] point into text */
} csv;

static void csv_free(csv *c)
{
    for (long r = 0; r < c->nrows; r++)
        free(c->rows[r]);
    free(c->rows);
    free(c->text);
}

/*
 * Reads and checks a CSV file: the header line is `header`; every row has as many
 * fields, none empty; the fields from column `first_numeric` on are finite numbers;
 * there are `rows` rows.
 */
static void check_csv(const char *dir, const char *name, const char *header, int first_numeric,
                      long rows, csv *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    csv c = { tt_slurp(path, NULL), 1, 0, NULL };
    for (const char *p = header; *p; p++)
        c.ncols += *p == ',';
    char *save = NULL;
    char *line = strtok_r(c.text, "\n", &save);
    ck_assert_msg(line != NULL, "%s is empty", name);
    ck_assert_msg(strcmp(line, header) == 0, "%s: header '%s', expected '%s'", name, line, header);
    long cap = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        int commas = 0;
        for (const char *p = line; *p; p++)
            commas += *p == ',';
        ck_assert_msg(commas + 1 == c.ncols, "%s row %ld: %d fields, expected %d", name,
                      c.nrows + 1, commas + 1, c.ncols);
        if (c.nrows == cap) {
            cap = cap ? 2 * cap : 256;
            c.rows = realloc(c.rows, (size_t)cap * sizeof *c.rows);
            ck_assert_ptr_nonnull(c.rows);
        }
        char **fields = malloc((size_t)c.ncols * sizeof *fields);
        ck_assert_ptr_nonnull(fields);
        char *p = line;
        for (int col = 0; col < c.ncols; col++) {
            fields[col] = p;
            char *comma = strchr(p, ',');
            if (comma) {
                *comma = '\0';
                p = comma + 1;
            }
            ck_assert_msg(*fields[col] != '\0', "%s row %ld: empty field %d", name, c.nrows + 1,
                          col);
            if (col >= first_numeric) {
                char *end = NULL;
                double v = strtod(fields[col], &end);
                ck_assert_msg(end != fields[col] && *end == '\0' && isfinite(v),
                              "%s row %ld column %d: '%s' is not a finite number", name,
                              c.nrows + 1, col, fields[col]);
            }
        }
        c.rows[c.nrows++] = fields;
    }
    ck_assert_msg(c.nrows == rows, "%s: %ld rows, expected %ld", name, c.nrows, rows);
    if (out)
        *out = c;
    else
        csv_free(&c);
}

/* The numeric field `col` of the first row whose first `nkeys` fields equal keys[]. */
static double csv_lookup(const csv *c, const char *const *keys, int nkeys, int col)
{
    for (long r = 0; r < c->nrows; r++) {
        int ok = 1;
        for (int k = 0; k < nkeys && ok; k++)
            ok = strcmp(c->rows[r][k], keys[k]) == 0;
        if (ok)
            return strtod(c->rows[r][col], NULL);
    }
    ck_abort_msg("no row %s,%s,...", keys[0], nkeys > 1 ? keys[1] : "");
    return NAN;
}


/* The finite evaluation samples of the large protocol's per-task rows of results.csv
 * (samples - failed: those trajectories.csv lists). */
static long finite_samples(const csv *res)
{
    long n = 0;
    for (long r = 0; r < res->nrows; r++)
        if (!strcmp(res->rows[r][0], "large") && strcmp(res->rows[r][3], "all") != 0)
            n += strtol(res->rows[r][5], NULL, 10) - strtol(res->rows[r][16], NULL, 10);
    return n;
}

#define METRICS                                                                               \
    "samples,objective,objective_sd,objective_median,collision,final_distance,"              \
    "final_distance_sd,success,nll_median,speed_median,speed_max,failed,implausible,seconds"

START_TEST(trajectory_output_is_well_formed)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char out[4096], log[4096];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(log, sizeof log, "%s/log.txt", tmp);

    /* 3 paper-protocol samples and 4 large-estimate samples per task, 2 tuning samples,
     * 20 steps, a grid of two scales */
    char *args[] = { (char *)tool, "trajectory", "--seeds", "3", "--large=4", "--tune", "2",
                     "--steps", "20", "--scales", "0.03,0.1", "--quiet", "--out", out, NULL };
    int rc = tt_run_tool(log, args);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(rc == 0, "lgd trajectory exited %d:\n%s", rc, text);
    ck_assert_msg(strstr(text, "Table 2 analogue") && strstr(text, "Table 3 analogue"),
                  "no tables:\n%s", text);
    ck_assert_msg(strstr(text, "Tuning (seed 1, 2 samples per task)"), "no tuning table:\n%s",
                  text);
    ck_assert_msg(strstr(text, "large estimate: 4 samples"), "no large-estimate table:\n%s",
                  text);
    ck_assert_msg(strstr(text, "LGD-MC-GF") == NULL && strstr(text, "hard 0/1") == NULL &&
                      strstr(text, "exact prior") == NULL && strstr(text, "learned") == NULL,
                  "the default run shows --gradient-free's methods or names the prior:\n%s",
                  text);
    free(text);

    /* the default run: the paper's four methods on five tasks (the gradient-free methods
     * and the hard family only with --gradient-free) */
    const long tasks = 5, families = 2, methods = 4, guided = 3, scales = 2, rows = 4;
    csv grid, res;
    check_csv(out, "grid.csv", "method,family,task,scale,selected," METRICS, 3,
              (1 + guided * scales) * (tasks + families), &grid);
    check_csv(out, "results.csv", "protocol,method,family,task,scale," METRICS, 4,
              2 * methods * (tasks + families), &res);
    /* every finite evaluation sample's 64 frames (a failed one is left out) */
    long finite = finite_samples(&res);
    ck_assert_msg(finite > methods * tasks * rows / 2, "%ld finite samples of %ld", finite,
                  methods * tasks * rows);
    check_csv(out, "trajectories.csv", "method,task,sample,frame,x,y", 2, finite * 64, NULL);
    /* one selected scale per guided method and family, taken from the grid */
    const char *fams[2] = { "path", "obstacle" };
    const char *guided_keys[3] = { "dps", "mc_n10", "mc_n100" };
    for (int m = 0; m < 3; m++)
        for (int f = 0; f < 2; f++) {
            int selected = 0;
            for (long r = 0; r < grid.nrows; r++)
                if (!strcmp(grid.rows[r][0], guided_keys[m]) && !strcmp(grid.rows[r][1], fams[f]) &&
                    !strcmp(grid.rows[r][2], "all") && !strcmp(grid.rows[r][4], "1"))
                    selected++;
            ck_assert_msg(selected == 1, "%s/%s: %d selected scales", guided_keys[m], fams[f],
                          selected);
            const char *key[4] = { "paper", guided_keys[m], fams[f], "all" };
            double s = csv_lookup(&res, key, 4, 4);
            ck_assert_msg(fabs(s - 0.03) < 1e-9 || fabs(s - 0.1) < 1e-9,
                          "%s/%s: scale %g is not on the grid", guided_keys[m], fams[f], s);
        }
    /* guidance follows the paths far better than no guidance (objective is column 6) */
    const char *kb[4] = { "large", "baseline", "path", "all" };
    const char *kd[4] = { "large", "dps", "path", "all" };
    const char *km[4] = { "large", "mc_n100", "path", "all" };
    double ob = csv_lookup(&res, kb, 4, 6), od = csv_lookup(&res, kd, 4, 6),
           om = csv_lookup(&res, km, 4, 6);
    ck_assert_msg(od < 0.5 * ob && om < 0.5 * ob,
                  "path following: Baseline %g, DPS %g, LGD-MC n=100 %g", ob, od, om);
    csv_free(&grid);
    csv_free(&res);
    tt_check_svg(out, "fig_path.svg");
    tt_check_svg(out, "fig_obstacle.svg");
    tt_remove_dir(out);
    unlink(log);
    rmdir(tmp);
}
END_TEST

START_TEST(trajectory_exit_statuses)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char log[4096], file[4096], under_file[4096];
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    snprintf(file, sizeof file, "%s/file", tmp);
    snprintf(under_file, sizeof under_file, "%s/file/out", tmp);
    FILE *fp = fopen(file, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);

    char *help[] = { (char *)tool, "help", "trajectory", NULL };
    ck_assert_int_eq(tt_run_tool(log, help), 0);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "lgd trajectory") != NULL, "no usage:\n%s", text);
    free(text);
    char *own_help[] = { (char *)tool, "trajectory", "--help", NULL };
    ck_assert_int_eq(tt_run_tool(log, own_help), 0);
    char *list[] = { (char *)tool, "help", NULL };
    ck_assert_int_eq(tt_run_tool(log, list), 0);
    text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "trajectory") != NULL, "not in the command list:\n%s", text);
    free(text);

    char *const bad[][6] = {
        { (char *)tool, "trajectory", "--bogus", NULL },
        { (char *)tool, "trajectory", "--seeds", "0", NULL },
        { (char *)tool, "trajectory", "--large", "-1", NULL },
        { (char *)tool, "trajectory", "--tune", "x", NULL },
        { (char *)tool, "trajectory", "--steps", NULL },
        { (char *)tool, "trajectory", "--scales", "0.1,,1", NULL },
        { (char *)tool, "trajectory", "--scales", "-1", NULL },
        { (char *)tool, "trajectory", "--scales", "nan", NULL },
        { (char *)tool, "trajectory", "--rule", "bogus", NULL },
        { (char *)tool, "trajectory", "--select", "bogus", NULL },
        { (char *)tool, "trajectory", "--threads", "-2", NULL },
        { (char *)tool, "trajectory", "--out=", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tt_run_tool(log, bad[i]);
        ck_assert_msg(rc == 2, "%s %s %s: exit %d, expected 2", bad[i][1], bad[i][2],
                      bad[i][3] ? bad[i][3] : "", rc);
    }
    /* An output directory that cannot be created: an error, not bad usage. */
    char *bad_out[] = { (char *)tool, "trajectory", "--quiet", "--out", under_file, NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_out), 1);
    text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "cannot create") != NULL, "no message:\n%s", text);
    free(text);
    unlink(file);
    unlink(log);
    rmdir(tmp);
}
END_TEST

/* ---- issue 14: the hard loss, gradient-free LGD-MC, the learned prior ---- */

/* The hard loss of layout A (goal (6, 0), obstacle (3, 0) of radius 1) on 64 frames, and
 * the library's smooth loss with the same goal and obstacle (weights as given). */
static traj_hard_params hard_layout_a(void)
{
    traj_hard_params p;
    memset(&p, 0, sizeof p);
    p.frames = 64;
    p.velocity_scale = 0.1f;
    p.goal[0] = 6.0f;
    p.goal[1] = 0.0f;
    p.goal_weight = 1.0f;
    p.weight = 100.0f;
    p.nobs = 1;
    p.obs[0] = 3.0f;
    p.obs[1] = 0.0f;
    p.obs[2] = 1.0f;
    return p;
}

static lgd_loss *library_obstacle_loss(lgd_context *ctx, const traj_hard_params *p,
                                       float sharpness, float obstacle_weight, float goal_weight)
{
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = p->frames;
    lo.velocity_scale = p->velocity_scale;
    lgd_obstacle_options oo = LGD_OBSTACLE_OPTIONS_INIT;
    oo.sharpness = sharpness;
    oo.obstacle_weight = obstacle_weight;
    oo.goal_weight = goal_weight;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_obstacle_avoidance(ctx, 2 * p->frames, &lo, p->goal, 1, p->obs,
                                                  p->nobs, &oo, &l));
    return l;
}

/* Loss values (and gradients when grad is not NULL) of rows x [rows][128]. */
static void eval_rows(lgd_context *ctx, lgd_loss *l, const float *x, int rows, float *val,
                      float *grad)
{
    lgd_tensor *xt = tu_tensor(ctx, rows, 128, x), *lt = tu_tensor(ctx, rows, 1, NULL);
    lgd_tensor *gt = grad ? tu_tensor(ctx, rows, 128, NULL) : NULL;
    TU_OK(ctx, lgd_loss_eval(l, xt, lt, gt));
    TU_OK(ctx, lgd_tensor_download(lt, val, (size_t)rows));
    if (grad)
        TU_OK(ctx, lgd_tensor_download(gt, grad, (size_t)rows * 128));
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(lt);
    lgd_tensor_destroy(gt);
}

/*
 * The hard loss = goal term + W * 1[some frame inside], against references from the
 * library: the goal term and its gradient are the library's obstacle loss with obstacle
 * weight 0 (bit for bit: positions are summed the same way), and the indicator is the
 * library's smooth collision term made a step (sharpness 1e6, weight 1, no goal: about
 * the number of frames inside). Hand-made rows: a straight walk through the obstacle
 * (inside from frame 20), one beside it (never), a stay at the origin with a last frame
 * that lands 1.001 and 0.999 from the centre; then random rows.
 */
START_TEST(trajectory_hard_loss_matches_library)
{
    enum { ROWS = 40, D = 128 };
    lgd_context *ctx = tu_context(1);
    traj_hard_params p = hard_layout_a();
    lgd_loss *hard = NULL;
    TU_OK(ctx, traj_hard_loss_create(ctx, &p, &hard));
    lgd_loss *goal = library_obstacle_loss(ctx, &p, 50.0f, 0.0f, 1.0f);
    lgd_loss *step = library_obstacle_loss(ctx, &p, 1e6f, 1.0f, 0.0f);
    static float x[ROWS * D], g_hard[ROWS * D], g_goal[ROWS * D];
    float v_hard[ROWS], v_goal[ROWS], v_step[ROWS], v_values[ROWS];
    for (int t = 0; t < 64; t++) {
        x[0 * D + 2 * t] = 1.0f; /* 0: straight through (3, 0) */
        x[1 * D + 2 * t + 1] = 1.0f; /* 1: straight up, never near it */
    }
    x[2 * D + 126] = 19.99f; /* 2: p_63 = (1.999, 0), 1.001 from the centre: outside */
    x[3 * D + 126] = 20.01f; /* 3: p_63 = (2.001, 0), 0.999 from it: inside */
    tu_rng rng = { 14 };
    for (int r = 4; r < ROWS; r++)
        for (int t = 0; t < 64; t++) { /* random walks toward the goal, many collide */
            x[r * D + 2 * t] = (float)(0.9 + 0.8 * tu_normal(&rng));
            x[r * D + 2 * t + 1] = (float)(0.3 * (r % 5 - 2) + 0.8 * tu_normal(&rng));
        }
    eval_rows(ctx, hard, x, ROWS, v_hard, g_hard);
    eval_rows(ctx, hard, x, ROWS, v_values, NULL); /* values only: as gradient-free calls it */
    eval_rows(ctx, goal, x, ROWS, v_goal, g_goal);
    eval_rows(ctx, step, x, ROWS, v_step, NULL);
    ck_assert_msg(memcmp(g_hard, g_goal, sizeof g_hard) == 0,
                  "the hard loss's gradient is not the goal term's");
    int expected[4] = { 1, 0, 0, 1 }, hits = 0;
    for (int r = 0; r < ROWS; r++) {
        int in = v_step[r] > 0.5f;
        if (r < 4)
            ck_assert_msg(in == expected[r], "row %d: expected %d, the library's step gives %g",
                          r, expected[r], (double)v_step[r]);
        ck_assert_int_eq(traj_hard_collides(&p, x + r * D), in);
        hits += in;
        float want = (float)((double)v_goal[r] + (in ? 100.0 : 0.0));
        ck_assert_msg(fabsf(v_hard[r] - want) <= 1e-6f * fabsf(want) + 1e-30f,
                      "row %d: hard loss %.9g, goal %.9g + 100 * %d", r, (double)v_hard[r],
                      (double)v_goal[r], in);
        if (!in)
            ck_assert_msg(v_hard[r] == v_goal[r], "row %d: %.9g != %.9g", r,
                          (double)v_hard[r], (double)v_goal[r]);
        ck_assert_msg(v_values[r] == v_hard[r], "row %d: values-only call differs", r);
        float gr[D];
        ck_assert_msg(traj_hard_eval(&p, x + r * D, gr) == v_hard[r], "row %d", r);
        ck_assert_msg(memcmp(gr, g_hard + r * D, sizeof gr) == 0, "row %d: gradient", r);
    }
    ck_assert_msg(hits > 6 && hits < ROWS - 6, "%d of %d random rows collide", hits, ROWS);

    /* refused parameters */
    lgd_loss *bad = NULL;
    traj_hard_params q = p;
    q.nobs = TRAJ_HARD_MAX_OBS + 1;
    ck_assert_int_eq(traj_hard_loss_create(ctx, &q, &bad), LGD_ERR_INVALID_ARGUMENT);
    q = p;
    q.weight = NAN;
    ck_assert_int_eq(traj_hard_loss_create(ctx, &q, &bad), LGD_ERR_INVALID_ARGUMENT);
    q = p;
    q.frames = 0;
    ck_assert_int_eq(traj_hard_loss_create(ctx, &q, &bad), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(bad);
    lgd_loss_destroy(hard);
    lgd_loss_destroy(goal);
    lgd_loss_destroy(step);
    lgd_context_destroy(ctx);
}
END_TEST

/* The first row whose fields at columns kcols[i] are keys[i], i < nkeys. */
static const char *const *csv_find(const csv *c, const int *kcols, const char *const *keys,
                                   int nkeys)
{
    for (long r = 0; r < c->nrows; r++) {
        int ok = 1;
        for (int k = 0; k < nkeys && ok; k++)
            ok = strcmp(c->rows[r][kcols[k]], keys[k]) == 0;
        if (ok)
            return (const char *const *)c->rows[r];
    }
    ck_abort_msg("no row %s,%s,%s...", keys[0], nkeys > 1 ? keys[1] : "",
                 nkeys > 2 ? keys[2] : "");
    return NULL;
}

/* Column col of noise.csv's row (loss, estimator, n, sigma). */
static double noise_value(const csv *noise, const char *loss, const char *est, const char *n,
                          const char *sigma, int col)
{
    const int kc[4] = { 0, 1, 2, 3 };
    const char *kv[4] = { loss, est, n, sigma };
    return strtod(csv_find(noise, kc, kv, 4)[col], NULL);
}

START_TEST(trajectory_gradient_free_run)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char out[4096], log[4096];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    char *args[] = { (char *)tool, "trajectory", "--gradient-free", "--seeds", "2", "--large",
                     "3", "--tune", "2", "--steps", "12", "--scales", "0.03,0.1",
                     "--noise-draws", "1024", "--quiet", "--out", out, NULL };
    int rc = tt_run_tool(log, args);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(rc == 0, "lgd trajectory --gradient-free exited %d:\n%s", rc, text);
    ck_assert_msg(strstr(text, "hard 0/1 collision indicator") && strstr(text, "LGD-MC-GF n=1000")
                      && strstr(text, "Estimator noise"),
                  "no hard-family table, GF n=1000 or noise table:\n%s", text);
    free(text);
    const long tasks = 7, families = 3, methods = 6, guided = 5, scales = 2;
    csv grid, res, noise;
    check_csv(out, "grid.csv", "method,family,task,scale,selected," METRICS, 3,
              (1 + guided * scales) * (tasks + families), &grid);
    check_csv(out, "results.csv", "protocol,method,family,task,scale," METRICS, 4,
              2 * methods * (tasks + families), &res);
    check_csv(out, "trajectories.csv", "method,task,sample,frame,x,y", 2,
              finite_samples(&res) * 64, NULL);
    check_csv(out, "noise.csv",
              "loss,estimator,n,sigma,estimates,ref_norm,ref_spread,rel_rms_error,rel_bias,"
              "mean_ess",
              2, 3 * 4 * 6, &noise);
    tt_check_svg(out, "fig_hard.svg");

    /* The hard family's Objective, over the finite samples of a task, is (mean |p_T -
     * goal|^2 + 100 * collision rate) / 64: the loss's indicator and the collision count
     * are the same function. mean(d^2) = mean(d)^2 + sd(d)^2 (k - 1) / k. */
    const char *const mkeys[6] = { "baseline", "dps", "mc_n10", "mc_n100", "gf_n100",
                                   "gf_n1000" };
    const char *const hard_tasks[2] = { "obstacle_A_hard", "obstacle_B_hard" };
    int checked = 0;
    for (int m = 0; m < 6; m++)
        for (int k = 0; k < 2; k++) {
            const int kc[3] = { 0, 1, 3 };
            const char *kv[3] = { "large", mkeys[m], hard_tasks[k] };
            const char *const *row = csv_find(&res, kc, kv, 3);
            double n = strtod(row[5], NULL) - strtod(row[16], NULL);
            if (n < 2)
                continue;
            double obj = strtod(row[6], NULL), coll = strtod(row[9], NULL);
            double fd = strtod(row[10], NULL), fsd = strtod(row[11], NULL);
            double goal = fd * fd + fsd * fsd * (n - 1) / n;
            double want = (goal + 100.0 * coll) / 64.0;
            ck_assert_msg(fabs(obj - want) <= 1e-5 * fabs(want) + 1e-7,
                          "%s %s: Objective %.9g, expected (%.9g + 100 * %g) / 64 = %.9g",
                          mkeys[m], hard_tasks[k], obj, goal, coll, want);
            checked++;
        }
    ck_assert_int_ge(checked, 10);

    /* The noise table (columns: 2 n, 3 sigma, 6 ref_spread, 7 rel_rms_error, 8 rel_bias),
     * where the two references agree (path at sigma 0.5 and 0.1, the obstacle losses at 2
     * and 0.5): gradient-free LGD-MC's error falls with its draws (n = 100 -> 10000); on the
     * path loss at low noise gradient LGD-MC n = 100 is far more accurate than gradient-free
     * n = 100 (its variance costs draws); on the hard loss the gradient estimators stay
     * biased (they miss the indicator's jump) and gradient-free n = 100 beats them. */
    const char *const losses[3] = { "path", "smooth", "hard" };
    const char *const sigmas[3][2] = { { "0.5", "0.1" }, { "2", "0.5" }, { "2", "0.5" } };
    for (int l = 0; l < 3; l++)
        for (int si = 0; si < 2; si++) {
            const char *sig = sigmas[l][si];
            double spread = noise_value(&noise, losses[l], "gf", "100", sig, 6);
            double e100 = noise_value(&noise, losses[l], "gf", "100", sig, 7);
            double e10k = noise_value(&noise, losses[l], "gf", "10000", sig, 7);
            ck_assert_msg(spread < 0.1, "%s, sigma %s: the references differ by %g", losses[l],
                          sig, spread);
            ck_assert_msg(e10k < 0.3 * e100, "%s, sigma %s: GF error %g at n = 100, %g at "
                          "n = 10000", losses[l], sig, e100, e10k);
        }
    for (int si = 0; si < 2; si++) {
        const char *sig = si == 0 ? "0.1" : "0.02";
        double mc = noise_value(&noise, "path", "mc", "100", sig, 7);
        double gf = noise_value(&noise, "path", "gf", "100", sig, 7);
        ck_assert_msg(mc < 0.2 * gf, "path, sigma %s: error LGD-MC n=100 %g, GF n=100 %g", sig,
                      mc, gf);
    }
    for (int si = 0; si < 2; si++) {
        const char *sig = sigmas[2][si];
        double bias_mc = noise_value(&noise, "hard", "mc", "100", sig, 8);
        double bias_gf = noise_value(&noise, "hard", "gf", "10000", sig, 8);
        double e_mc = noise_value(&noise, "hard", "mc", "100", sig, 7);
        double e_gf = noise_value(&noise, "hard", "gf", "100", sig, 7);
        ck_assert_msg(bias_mc > 0.5 && bias_gf < 0.25 && e_gf < 0.5 * e_mc,
                      "hard loss, sigma %s: relative bias LGD-MC n=100 %g, GF n=10000 %g; "
                      "error LGD-MC n=100 %g, GF n=100 %g",
                      sig, bias_mc, bias_gf, e_mc, e_gf);
    }
    csv_free(&grid);
    csv_free(&res);
    csv_free(&noise);
    tt_remove_dir(out);
    unlink(log);
    rmdir(tmp);
}
END_TEST

/* The learned prior's network file: $LGD_TRAJECTORY_MODEL, else the one the repository
 * ships; NULL (the test skips) when it is not there. */
static const char *learned_model(char *buf, size_t size)
{
    const char *env = getenv("LGD_TRAJECTORY_MODEL");
    if (env && *env)
        snprintf(buf, size, "%s", env);
    else
        snprintf(buf, size, "%s/models/trajectory_denoiser.safetensors", LGD_SOURCE_ROOT);
    if (access(buf, R_OK) != 0) {
        printf("trajectory_tool: skipped the learned-prior runs: no %s\n", buf);
        return NULL;
    }
    return buf;
}

/* --prior learned and --compare, small: the runs succeed, say which prior they used, and
 * --compare's table is the two runs' own results. */
START_TEST(trajectory_learned_prior)
{
    char model[4096];
    if (!learned_model(model, sizeof model))
        return;
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char out[4096], log[4096], sub[2][4200];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    char *learned[] = { (char *)tool, "trajectory", "--prior", "learned", "--model", model,
                        "--seeds", "2", "--large", "0", "--tune", "1", "--steps", "10",
                        "--scales", "0.1", "--quiet", "--out", out, NULL };
    int rc = tt_run_tool(log, learned);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(rc == 0, "lgd trajectory --prior learned exited %d:\n%s", rc, text);
    char want[4200];
    snprintf(want, sizeof want, "prior  learned: %s", model);
    ck_assert_msg(strstr(text, want) && strstr(text, "Table 3 analogue, obstacle avoidance "
                                                     "(learned prior"),
                  "the output does not say it used the learned prior:\n%s", text);
    free(text);
    const long tasks = 5, families = 2, methods = 4, guided = 3;
    check_csv(out, "grid.csv", "method,family,task,scale,selected," METRICS, 3,
              (1 + guided) * (tasks + families), NULL);
    check_csv(out, "results.csv", "protocol,method,family,task,scale," METRICS, 4,
              methods * (tasks + families), NULL);
    tt_remove_dir(out);

    char *compare[] = { (char *)tool, "trajectory", "--compare", "--model", model, "--seeds",
                        "2", "--large", "3", "--tune", "1", "--steps", "10", "--scales",
                        "0.1", "--quiet", "--out", out, NULL };
    rc = tt_run_tool(log, compare);
    text = tt_slurp(log, NULL);
    ck_assert_msg(rc == 0, "lgd trajectory --compare exited %d:\n%s", rc, text);
    ck_assert_msg(strstr(text, "Exact prior vs learned prior"), "no comparison:\n%s", text);
    free(text);
    csv cmp, res[2];
    check_csv(out, "compare.csv", "protocol,family,method,prior,scale," METRICS, 4,
              2 * families * methods * 2, &cmp);
    const char *priors[2] = { "exact", "learned" };
    for (int i = 0; i < 2; i++) {
        snprintf(sub[i], sizeof sub[i], "%s/%s", out, priors[i]);
        check_csv(sub[i], "results.csv", "protocol,method,family,task,scale," METRICS, 4,
                  2 * methods * (tasks + families), &res[i]);
    }
    /* each compare.csv row is its prior's family row of results.csv, field for field */
    for (long r = 0; r < cmp.nrows; r++) {
        char **c = cmp.rows[r];
        int i = strcmp(c[3], "exact") == 0 ? 0 : 1;
        ck_assert_str_eq(c[3], priors[i]);
        const int kc[4] = { 0, 1, 2, 3 };
        const char *kv[4] = { c[0], c[2], c[1], "all" };
        const char *const *row = csv_find(&res[i], kc, kv, 4);
        for (int col = 4; col < cmp.ncols; col++)
            ck_assert_msg(strcmp(c[col], row[col]) == 0, "compare.csv row %ld column %d: %s, "
                          "%s/results.csv: %s", r + 1, col, c[col], priors[i], row[col]);
    }
    /* the learned prior is not the exact one under another name: the Baseline's samples
     * (no guidance: the prior alone) differ */
    const int bk[4] = { 0, 1, 2, 3 };
    const char *be[4] = { "large", "path", "baseline", "exact" };
    const char *bl[4] = { "large", "path", "baseline", "learned" };
    const char *const *re = csv_find(&cmp, bk, be, 4), *const *rl = csv_find(&cmp, bk, bl, 4);
    ck_assert_msg(strcmp(re[6], rl[6]) != 0 && strcmp(re[10], rl[10]) != 0,
                  "the learned prior's Baseline has the exact prior's Objective %s and final "
                  "distance %s", re[6], re[10]);
    csv_free(&cmp);
    for (int i = 0; i < 2; i++) {
        csv_free(&res[i]);
        tt_remove_dir(sub[i]);
    }
    tt_remove_dir(out);
    unlink(log);
    rmdir(tmp);
}
END_TEST

/* The new options' errors: bad usage (2) and a network that is missing or not a
 * trajectory denoiser (1, with a message, before any sampling). */
START_TEST(trajectory_prior_errors)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char log[4096], missing[4096], out[4096];
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    snprintf(missing, sizeof missing, "%s/none.safetensors", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    char *const usage[][6] = {
        { (char *)tool, "trajectory", "--prior", "bogus", NULL },
        { (char *)tool, "trajectory", "--model", missing, NULL },
        { (char *)tool, "trajectory", "--noise-draws", "-1", NULL },
        { (char *)tool, "trajectory", "--sigma-min", "-0.1", NULL },
        { (char *)tool, "trajectory", "--gradient-free=1", NULL },
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        int rc = tt_run_tool(log, usage[i]);
        ck_assert_msg(rc == 2, "%s %s: exit %d, expected 2", usage[i][2],
                      usage[i][3] ? usage[i][3] : "", rc);
    }
    const char *wrong = LGD_FIXTURE_DIR "/temporal_unet.safetensors"; /* dim 32 */
    struct {
        const char *flag, *model, *message;
    } errs[] = {
        { "--prior=learned", missing, "cannot load the learned prior" },
        { "--prior=learned", wrong, "is not a trajectory denoiser" },
        { "--compare", missing, "cannot load the learned prior" },
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char *args[] = { (char *)tool, "trajectory", (char *)errs[i].flag, "--model",
                         (char *)errs[i].model, "--quiet", "--out", out, NULL };
        int rc = tt_run_tool(log, args);
        char *text = tt_slurp(log, NULL);
        ck_assert_msg(rc == 1 && strstr(text, errs[i].message), "%s --model %s: exit %d:\n%s",
                      errs[i].flag, errs[i].model, rc, text);
        ck_assert_msg(strstr(text, "Tuning") == NULL, "it sampled before failing:\n%s", text);
        free(text);
    }
    /* without --model: $LGD_MODEL_DIR/trajectory_denoiser.safetensors */
    char *dflt[] = { (char *)tool, "trajectory", "--prior", "learned", "--quiet", "--out", out,
                     NULL };
    char want[4200];
    snprintf(want, sizeof want, "cannot load the learned prior %s/trajectory_denoiser."
             "safetensors", tmp);
    setenv("LGD_MODEL_DIR", tmp, 1);
    int rc = tt_run_tool(log, dflt);
    unsetenv("LGD_MODEL_DIR");
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(rc == 1 && strstr(text, want), "LGD_MODEL_DIR=%s: exit %d:\n%s", tmp, rc,
                  text);
    free(text);
    unlink(log);
    rmdir(out); /* --compare creates it before it loads the network */
    rmdir(tmp);
}
END_TEST

static Suite *trajectory_tool_suite(void)
{
    Suite *s = suite_create("trajectory_tool");
    TCase *tc = tcase_create("tool");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, trajectory_output_is_well_formed);
    tcase_add_test(tc, trajectory_exit_statuses);
    tcase_add_test(tc, trajectory_hard_loss_matches_library);
    tcase_add_test(tc, trajectory_prior_errors);
    tcase_add_test(tc, trajectory_gradient_free_run);
    tcase_add_test(tc, trajectory_learned_prior);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(trajectory_tool_suite());
}
