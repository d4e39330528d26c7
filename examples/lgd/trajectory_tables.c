/*
 * trajectory_tables.c - lgd trajectory's tables on stdout: the tuning grid, the
 * analogues of the paper's Table 2 (path following) and Table 3 (obstacle avoidance)
 * beside the paper's numbers, and the reading of the obstacle-avoidance results.
 */
#include <inttypes.h>
#include <stdio.h>

#include "trajectory.h"

/* The paper's Tables 2 and 3 (Objective column). */
static const char *const paper_t2_prompts[4] = { "(i)", "(ii)", "(iii)", "(iv)" };
static const double paper_t2[NMETHODS][4] = {
    { 11.583, 1.024, 5.831, 7.080 },
    { 2.168, 0.388, 3.521, 2.954 },
    { 2.150, 0.395, 3.505, 2.857 },
    { 2.126, 0.402, 3.458, 2.800 },
};
static const double paper_t3[NMETHODS][2] = {
    { 43.736, 42.933 },
    { 7.040, 5.307 },
    { 3.902, 3.921 },
    { 3.666, 4.160 },
};

/* One row of the tuning table: method mi's cells for family fam, block 0 (mean
 * Objective, failed and implausible counts) or 1 (success rate), with their marks. */
static void print_grid_row(const traj_config *cfg, const grid *gr, int mi, int fam, int block)
{
    const method_def *m = &method_defs[mi];
    printf("%-9s %-13s", "", m->name);
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
    for (int fam = 0; fam < NFAM; fam++)
        for (int block = 0; block < 2; block++) {
            printf("%-9s %-13s", block == 0 ? family_key[fam] : "",
                   block == 0 ? "Objective" : "success");
            for (int si = 0; si < cfg->nscales; si++)
                printf(" %15g ", cfg->scales[si]);
            printf("\n");
            for (int mi = 0; mi < NMETHODS; mi++)
                print_grid_row(cfg, gr, mi, fam, block);
        }
    printf("(success: final position within %g of the target, no collision, plausible)\n\n",
           REACH_RADIUS);
}

static void print_fail_note(const metrics *mt)
{
    if (mt->failed)
        printf("  [%" PRId64 " failed: non-finite]", mt->failed);
}

static void print_method_scale(const method_def *m, double scale)
{
    if (m->kind == LGD_GUIDANCE_NONE)
        printf("%-13s %6s", m->name, "-");
    else
        printf("%-13s %6g", m->name, scale);
}

void traj_print_table2(const traj_config *cfg, const evaluation *ev, int p)
{
    int64_t rows = p == 0 ? cfg->seeds : cfg->large;
    printf("Table 2 analogue, path following (%s: %" PRId64 " samples per direction).\n"
           "Objective = path loss / %d frames per direction and over all; final distance "
           "|p_T - y_T|; NLL = median -log p0(x0) / frame under the prior\n",
           p == 0 ? "the paper's protocol" : "large estimate", rows, FRAMES);
    printf("%-13s %6s", "method", "scale");
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
        const metrics *fm = &ev->fam_m[p][mi][FAM_PATH];
        print_method_scale(&method_defs[mi], ev->scale[mi][FAM_PATH]);
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == FAM_PATH)
                printf(" %9.4f", ev->task_m[p][mi][k].obj_mean);
        printf(" | %8.4f +- %7.4f %8.4f %7.3f %6.2f", fm->obj_mean, fm->obj_sd, fm->obj_median,
               fm->fd_mean, fm->nll_median);
        if (p == 0) {
            printf(" |      ");
            for (int j = 0; j < 4; j++)
                printf(" %6.3f", paper_t2[mi][j]);
        }
        print_fail_note(fm);
        printf("\n");
    }
    printf("\n");
}

/* Table 3's caption and the two header lines of its columns. */
static void print_table3_head(const traj_config *cfg, int p)
{
    int64_t rows = p == 0 ? cfg->seeds : cfg->large;
    printf("Table 3 analogue, obstacle avoidance (%s: %" PRId64 " samples per layout).\n"
           "Obj. = loss (Eq. 15, 20) / %d frames; coll. = collision rate; dist = |p_T - goal|; "
           "NLL = median -log p0(x0) / frame; impl. = rate of implausible samples (a frame "
           "faster than %g); success = within %g of the goal, no collision, plausible\n",
           p == 0 ? "the paper's protocol" : "large estimate", rows, FRAMES, SPEED_LIMIT,
           REACH_RADIUS);
    printf("%-13s %6s", "", "");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == FAM_OBSTACLE)
            printf(" | %-24s", task_defs[k].label);
    printf(" | %-70s", "both layouts");
    if (p == 0)
        printf(" | paper Obj.");
    printf("\n");
    printf("%-13s %6s", "method", "scale");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == FAM_OBSTACLE)
            printf(" | %8s %6s %8s", "Obj.", "coll.", "dist");
    printf(" | %20s %8s %6s %7s %6s %6s %7s", "Obj. mean +- sd", "median", "coll.", "dist",
           "NLL", "impl.", "success");
    if (p == 0)
        printf(" | %6s %6s", "(v)", "(vi)");
    printf("\n");
}

void traj_print_table3(const traj_config *cfg, const evaluation *ev, int p)
{
    print_table3_head(cfg, p);
    for (int mi = 0; mi < NMETHODS; mi++) {
        const metrics *fm = &ev->fam_m[p][mi][FAM_OBSTACLE];
        print_method_scale(&method_defs[mi], ev->scale[mi][FAM_OBSTACLE]);
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == FAM_OBSTACLE) {
                const metrics *tm = &ev->task_m[p][mi][k];
                printf(" | %8.3f %6.2f %8.3f", tm->obj_mean, tm->collision, tm->fd_mean);
            }
        printf(" | %8.3f +- %8.3f %8.3f %6.2f %7.3f %6.2f %6.2f %7.2f", fm->obj_mean,
               fm->obj_sd, fm->obj_median, fm->collision, fm->fd_mean, fm->nll_median,
               (double)fm->implausible / (double)(fm->n - fm->failed), fm->success);
        if (p == 0)
            printf(" | %6.3f %6.3f", paper_t3[mi][0], paper_t3[mi][1]);
        print_fail_note(fm);
        printf("\n");
    }
    printf("\n");
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
    printf("\ntimes (s): method, tuning runs (all scales), evaluation runs, evaluation per "
           "sample (%d steps)\n", (int)cfg->steps);
    for (int mi = 0; mi < NMETHODS; mi++)
        printf("  %-13s %9.2f %9.2f %9.4f\n", method_defs[mi].name, gr->seconds[mi],
               ev->seconds[mi], ev->seconds[mi] / (double)(ev->rows * NTASKS));
}
