/*
 * trajectory_tables.c - lgd trajectory's tables on stdout: the tuning grid, the
 * analogues of the paper's Table 2 (path following) and Table 3 (obstacle avoidance)
 * beside the paper's numbers, the hard-indicator table (--gradient-free; no paper
 * numbers), and the reading of the obstacle-avoidance results.
 */
#include <inttypes.h>
#include <stdio.h>

#include "trajectory.h"

/* The paper's Tables 2 and 3 (Objective column), for the first PAPER_METHODS methods
 * (Baseline, DPS, LGD-MC n = 10 and 100; the paper has no gradient-free rows). */
#define PAPER_METHODS 4
static const char *const paper_t2_prompts[4] = { "(i)", "(ii)", "(iii)", "(iv)" };
static const double paper_t2[PAPER_METHODS][4] = {
    { 11.583, 1.024, 5.831, 7.080 },
    { 2.168, 0.388, 3.521, 2.954 },
    { 2.150, 0.395, 3.505, 2.857 },
    { 2.126, 0.402, 3.458, 2.800 },
};
static const double paper_t3[PAPER_METHODS][2] = {
    { 43.736, 42.933 },
    { 7.040, 5.307 },
    { 3.902, 3.921 },
    { 3.666, 4.160 },
};

/* The method column's width: the default run's 13, or 16 for the gradient-free methods'
 * longer names (--gradient-free), so that the default output stays as it was. */
static int name_width(const traj_config *cfg)
{
    return cfg->gradient_free ? 16 : 13;
}

/* One row of the tuning table: method mi's cells for family fam, block 0 (mean
 * Objective, failed and implausible counts) or 1 (success rate), with their marks. */
static void print_grid_row(const traj_config *cfg, const grid *gr, int mi, int fam, int block)
{
    const method_def *m = &method_defs[mi];
    printf("%-9s %-*s", "", name_width(cfg), m->name);
    for (int si = 0; si < traj_nscales_of(cfg, m); si++) {
        const metrics *mt = &gr->fam[mi][si][fam];
        char cell[48];
        if (block == 1)
            snprintf(cell, sizeof cell, "%.2f", mt->success);
        else if (mt->failed || mt->implausible)
            snprintf(cell, sizeof cell, "%.4g (%" PRId64 ",%" PRId64 ")", mt->obj_mean,
                     mt->failed, mt->implausible);
        else
            snprintf(cell, sizeof cell, "%.4g", mt->obj_mean);
        char mark = m->kind == LGD_GUIDANCE_NONE ? ' '
                    : gr->best[mi][fam] == si   ? '*'
                    : !gr->eligible[mi][si][fam] ? 'x' : ' ';
        printf(" %15s%c", cell, mark);
    }
    if (m->kind == LGD_GUIDANCE_NONE)
        printf("   (no guidance: one run)");
    printf("\n");
}

void traj_print_grid(const traj_config *cfg, const grid *gr)
{
    printf("Tuning (seed %" PRIu64 ", %d samples per task), per family and scale: mean "
           "Objective; (f,i) = failed (non-finite) and implausible (a frame faster than %g) "
           "samples; * = selected, x = not eligible (%s)\n",
           cfg->seed + 1, (int)cfg->tune, SPEED_LIMIT,
           cfg->select_plausible ? "--select plausible: a failed or implausible sample"
                                 : "--select objective: a failed sample");
    for (int fam = 0; fam < NFAM; fam++) {
        if (!traj_family_on(cfg, fam))
            continue;
        for (int block = 0; block < 2; block++) {
            printf("%-9s %-*s", block == 0 ? family_key[fam] : "", name_width(cfg),
                   block == 0 ? "Objective" : "success");
            for (int si = 0; si < cfg->nscales; si++)
                printf(" %15g ", cfg->scales[si]);
            printf("\n");
            for (int mi = 0; mi < NMETHODS; mi++)
                if (traj_method_on(cfg, mi))
                    print_grid_row(cfg, gr, mi, fam, block);
        }
    }
    printf("(success: final position within %g of the target, no collision, plausible)\n\n",
           REACH_RADIUS);
}

static void print_fail_note(const metrics *mt)
{
    if (mt->failed)
        printf("  [%" PRId64 " failed: non-finite]", mt->failed);
}

static void print_method_scale(const traj_config *cfg, const method_def *m, double scale)
{
    if (m->kind == LGD_GUIDANCE_NONE)
        printf("%-*s %6s", name_width(cfg), m->name, "-");
    else
        printf("%-*s %6g", name_width(cfg), m->name, scale);
}

/* Whether the captions name the prior: with --prior learned and --compare (the default
 * run's captions stay as they were). */
static int prior_named(const traj_config *cfg)
{
    return cfg->prior == PRIOR_LEARNED || cfg->compare;
}

/* "learned prior FILE; " or "exact prior; " for the captions (nothing when the run is
 * the default one, with the exact prior). */
static void print_prior(const traj_config *cfg)
{
    if (cfg->prior == PRIOR_LEARNED)
        printf("learned prior %s; ", cfg->model_path);
    else if (prior_named(cfg))
        printf("exact prior; ");
}

/* The prior the NLL is measured under, for the captions. */
static const char *nll_prior(const traj_config *cfg)
{
    return prior_named(cfg) ? "the exact prior" : "the prior";
}

void traj_print_table2(const traj_config *cfg, const evaluation *ev, int p)
{
    int64_t rows = p == 0 ? cfg->seeds : cfg->large;
    printf("Table 2 analogue, path following (");
    print_prior(cfg);
    printf("%s: %" PRId64 " samples per direction).\n"
           "Objective = path loss / %d frames per direction and over all; final distance "
           "|p_T - y_T|; NLL = median -log p0(x0) / frame under %s\n",
           p == 0 ? "the paper's protocol" : "large estimate", rows, FRAMES, nll_prior(cfg));
    printf("%-*s %6s", name_width(cfg), "method", "scale");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == FAM_PATH)
            printf(" %9s", task_defs[k].key);
    printf(" | %19s %8s %7s %6s", "all: mean +- sd", "median", "dist", "NLL");
    if (p == 0) {
        printf(" | paper");
        for (int j = 0; j < 4; j++)
            printf(" %6s", paper_t2_prompts[j]);
    }
    printf("\n");
    for (int mi = 0; mi < NMETHODS; mi++) {
        if (!traj_method_on(cfg, mi))
            continue;
        const metrics *fm = &ev->fam_m[p][mi][FAM_PATH];
        print_method_scale(cfg, &method_defs[mi], ev->scale[mi][FAM_PATH]);
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == FAM_PATH)
                printf(" %9.4f", ev->task_m[p][mi][k].obj_mean);
        printf(" | %8.4f +- %7.4f %8.4f %7.3f %6.2f", fm->obj_mean, fm->obj_sd, fm->obj_median,
               fm->fd_mean, fm->nll_median);
        if (p == 0 && mi < PAPER_METHODS) {
            printf(" |      ");
            for (int j = 0; j < 4; j++)
                printf(" %6.3f", paper_t2[mi][j]);
        } else if (p == 0) {
            printf(" |      ");
            for (int j = 0; j < 4; j++)
                printf(" %6s", "-");
        }
        print_fail_note(fm);
        printf("\n");
    }
    printf("\n");
}

/* The obstacle table's caption (family fam: Table 3, or the hard family) and the two
 * header lines of its columns. */
static void print_table3_head(const traj_config *cfg, int p, int fam)
{
    int64_t rows = p == 0 ? cfg->seeds : cfg->large;
    const int paper = p == 0 && fam == FAM_OBSTACLE;
    if (fam == FAM_OBSTACLE)
        printf("Table 3 analogue, obstacle avoidance (");
    else
        printf("Obstacle avoidance with the hard 0/1 collision indicator, beyond the paper (");
    print_prior(cfg);
    printf("%s: %" PRId64 " samples per layout).\n",
           p == 0 ? "the paper's protocol" : "large estimate", rows);
    if (fam == FAM_OBSTACLE)
        printf("Obj. = loss (Eq. 15, 20) / %d frames; ", FRAMES);
    else
        printf("Obj. = (|p_T - goal|^2 + %g * 1[some frame inside an obstacle]) / %d frames; "
               "DPS and LGD-MC use its gradient (the goal term's: the indicator's is 0), the "
               "gradient-free methods only its values; ",
               HARD_WEIGHT, FRAMES);
    printf("coll. = collision rate; dist = |p_T - goal|; NLL = median -log p0(x0) / frame%s; "
           "impl. = rate of implausible samples (a frame faster than %g); success = within %g "
           "of the goal, no collision, plausible\n",
           prior_named(cfg) ? " under the exact prior" : "", SPEED_LIMIT, REACH_RADIUS);
    printf("%-*s %6s", name_width(cfg), "", "");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == (family)fam)
            printf(" | %-24s", task_defs[k].label);
    printf(" | %-70s", "both layouts");
    if (paper)
        printf(" | paper Obj.");
    printf("\n");
    printf("%-*s %6s", name_width(cfg), "method", "scale");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == (family)fam)
            printf(" | %8s %6s %8s", "Obj.", "coll.", "dist");
    printf(" | %20s %8s %6s %7s %6s %6s %7s", "Obj. mean +- sd", "median", "coll.", "dist",
           "NLL", "impl.", "success");
    if (paper)
        printf(" | %6s %6s", "(v)", "(vi)");
    printf("\n");
}

/* The obstacle table of family fam (FAM_OBSTACLE: Table 3; FAM_HARD) for protocol p. */
static void print_obstacle_table(const traj_config *cfg, const evaluation *ev, int p, int fam)
{
    print_table3_head(cfg, p, fam);
    for (int mi = 0; mi < NMETHODS; mi++) {
        if (!traj_method_on(cfg, mi))
            continue;
        const metrics *fm = &ev->fam_m[p][mi][fam];
        print_method_scale(cfg, &method_defs[mi], ev->scale[mi][fam]);
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == (family)fam) {
                const metrics *tm = &ev->task_m[p][mi][k];
                printf(" | %8.3f %6.2f %8.3f", tm->obj_mean, tm->collision, tm->fd_mean);
            }
        printf(" | %8.3f +- %8.3f %8.3f %6.2f %7.3f %6.2f %6.2f %7.2f", fm->obj_mean,
               fm->obj_sd, fm->obj_median, fm->collision, fm->fd_mean, fm->nll_median,
               (double)fm->implausible / (double)(fm->n - fm->failed), fm->success);
        if (p == 0 && fam == FAM_OBSTACLE) {
            if (mi < PAPER_METHODS)
                printf(" | %6.3f %6.3f", paper_t3[mi][0], paper_t3[mi][1]);
            else
                printf(" | %6s %6s", "-", "-");
        }
        print_fail_note(fm);
        printf("\n");
    }
    printf("\n");
}

void traj_print_table3(const traj_config *cfg, const evaluation *ev, int p)
{
    print_obstacle_table(cfg, ev, p, FAM_OBSTACLE);
    if (traj_family_on(cfg, FAM_HARD))
        print_obstacle_table(cfg, ev, p, FAM_HARD);
}

/* Per obstacle family, the guided methods' Objective, collision rate, implausible rate and
 * success side by side (the larger protocol run): gradient-free LGD-MC beside the others. */
static void print_gradient_free_reading(const traj_config *cfg, const evaluation *ev)
{
    const int p = cfg->large > 0 ? 1 : 0;
    for (int fam = FAM_OBSTACLE; fam <= FAM_HARD; fam++) {
        if (!traj_family_on(cfg, fam))
            continue;
        printf("%s (%s), Objective / collision / implausible / success:",
               fam == FAM_OBSTACLE ? "smooth collision term" : "hard 0/1 indicator",
               p == 1 ? "large estimate" : "paper protocol");
        for (int mi = 1; mi < NMETHODS; mi++) {
            if (!traj_method_on(cfg, mi))
                continue;
            const metrics *m = &ev->fam_m[p][mi][fam];
            printf("%s %s %.4g / %.2f / %.2f / %.2f", mi > 1 ? ";" : "", method_defs[mi].name,
                   m->obj_mean, m->collision,
                   (double)m->implausible / (double)(m->n - m->failed), m->success);
        }
        printf("\n");
    }
}

/* The target, stated as numbers: LGD-MC (n = 100) below DPS, both far below the
 * Baseline, on obstacle avoidance. */
void traj_print_reading(const traj_config *cfg, const evaluation *ev, const grid *gr)
{
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        const metrics *b = &ev->fam_m[p][0][FAM_OBSTACLE], *d = &ev->fam_m[p][1][FAM_OBSTACLE],
                      *m = &ev->fam_m[p][3][FAM_OBSTACLE];
        printf("obstacle avoidance, %s (%" PRId64 " samples per method): Objective Baseline "
               "%.4g, DPS %.4g, LGD-MC n=100 %.4g (DPS / LGD-MC = %.3g, Baseline / DPS = %.3g, "
               "Baseline / LGD-MC = %.3g); success Baseline %.2f, DPS %.2f, LGD-MC n=100 %.2f\n",
               p == 0 ? "paper protocol" : "large estimate", m->n, b->obj_mean, d->obj_mean,
               m->obj_mean, d->obj_mean / m->obj_mean, b->obj_mean / d->obj_mean,
               b->obj_mean / m->obj_mean, b->success, d->success, m->success);
    }
    printf("paper, Table 3: DPS / LGD-MC n=100 = %.2f (v) and %.2f (vi); Baseline / DPS = %.1f "
           "and %.1f\n",
           paper_t3[1][0] / paper_t3[3][0], paper_t3[1][1] / paper_t3[3][1],
           paper_t3[0][0] / paper_t3[1][0], paper_t3[0][1] / paper_t3[1][1]);
    if (cfg->gradient_free)
        print_gradient_free_reading(cfg, ev);
    int ntasks = 0;
    for (int k = 0; k < NTASKS; k++)
        ntasks += traj_task_on(cfg, k);
    printf("\ntimes (s): method, tuning runs (all scales), evaluation runs, evaluation per "
           "sample (%d steps)\n", (int)cfg->steps);
    for (int mi = 0; mi < NMETHODS; mi++)
        if (traj_method_on(cfg, mi))
            printf("  %-*s %9.2f %9.2f %9.4f\n", name_width(cfg), method_defs[mi].name, gr->seconds[mi],
                   ev->seconds[mi], ev->seconds[mi] / (double)(ev->rows * ntasks));
}

/* One prior's cells of a comparison row. */
static void print_compare_cells(const method_def *m, double scale, const metrics *mt, int fam)
{
    if (m->kind == LGD_GUIDANCE_NONE)
        printf(" | %6s", "-");
    else
        printf(" | %6g", scale);
    printf(" %9.4g", mt->obj_mean);
    if (fam != FAM_PATH)
        printf(" %6.2f", mt->collision);
    printf(" %7.3f %6.2f %6.2f %7.2f", mt->fd_mean, mt->nll_median,
           (double)mt->implausible / (double)(mt->n - mt->failed), mt->success);
    if (mt->failed)
        printf(" [%" PRId64 " failed]", mt->failed);
}

void traj_print_comparison(const traj_config *cfg, const evaluation *const ev[2])
{
    const int p = cfg->large > 0 ? 1 : 0;
    const int64_t rows = p == 1 ? cfg->large : cfg->seeds;
    printf("Exact prior vs learned prior (%s), %s: %" PRId64 " samples per task, each method "
           "at the scale tuned with that prior. Obj. = loss / %d frames (mean); coll. = "
           "collision rate; dist = final distance; NLL = median -log p0(x0) / frame under the "
           "exact prior; impl. = rate of implausible samples; success as in Table 3 (paths: "
           "within %g of y_T and plausible)\n",
           cfg->model_path, p == 1 ? "large estimate" : "the paper's protocol", rows, FRAMES,
           REACH_RADIUS);
    for (int fam = 0; fam < NFAM; fam++) {
        if (!traj_family_on(cfg, fam))
            continue;
        const char *coll = fam != FAM_PATH ? " coll." : "";
        printf("%-8s %-16s | %-6s %9s%s %7s %6s %6s %7s | %-6s %9s%s %7s %6s %6s %7s\n",
               family_key[fam], "method", "exact", "Obj.", coll, "dist", "NLL", "impl.",
               "success", "learn.", "Obj.", coll, "dist", "NLL", "impl.", "success");
        for (int mi = 0; mi < NMETHODS; mi++) {
            if (!traj_method_on(cfg, mi))
                continue;
            printf("%-8s %-16s", "", method_defs[mi].name);
            for (int i = 0; i < 2; i++)
                print_compare_cells(&method_defs[mi], ev[i]->scale[mi][fam],
                                    &ev[i]->fam_m[p][mi][fam], fam);
            printf("\n");
        }
    }
    printf("(scale: each prior's own selection on the grid; the columns under 'exact' and "
           "'learn.' are the scale, then the metrics)\n");
}
