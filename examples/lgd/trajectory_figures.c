/*
 * trajectory_figures.c - lgd trajectory's figures (the paper's Fig. 2 and 10): the
 * paper-protocol samples of every method, fig_path.svg (the three target paths in one
 * panel per method), fig_obstacle.svg (one panel per method and layout) and, with
 * --gradient-free, fig_hard.svg (the same for the hard-indicator loss).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "svg_plot.h"
#include "trajectory.h"

#define VIEW 7.5 /* the figures show [-VIEW, VIEW]^2: every path of a non-diverged walk */
/* Square plot areas: the panel less svg_plot's margins (70 + 14 wide, 26 + 44 high). */
#define PANEL_W 404.0
#define PANEL_H 390.0

/* A path of task k, row r of b: the origin, then p_0 .. p_{T-1}. */
static int add_path(svg_figure *fig, int p, const float *v, const char *color, double width,
                    const char *label)
{
    double xs[FRAMES + 1], ys[FRAMES + 1], ax = 0.0, ay = 0.0;
    xs[0] = ys[0] = 0.0;
    for (int f = 0; f < FRAMES; f++) {
        xs[f + 1] = traj_path_pos(v, f, 0, &ax);
        ys[f + 1] = traj_path_pos(v, f, 1, &ay);
    }
    return svg_panel_line(fig, p, xs, ys, FRAMES + 1, color, width, SVG_SOLID, label);
}

static int add_circle(svg_figure *fig, int p, double cx, double cy, double r, const char *color,
                      double width, svg_dash dash, const char *label)
{
    enum { N = 73 };
    double xs[N], ys[N];
    for (int i = 0; i < N; i++) {
        double a = 2.0 * PI * i / (N - 1);
        xs[i] = cx + r * cos(a);
        ys[i] = cy + r * sin(a);
    }
    return svg_panel_line(fig, p, xs, ys, N, color, width, dash, label);
}

/* A cross marker of half-size h. */
static int add_cross(svg_figure *fig, int p, double cx, double cy, double h, const char *color,
                     const char *label)
{
    double x1[2] = { cx - h, cx + h }, y1[2] = { cy - h, cy + h };
    double x2[2] = { cx - h, cx + h }, y2[2] = { cy + h, cy - h };
    return svg_panel_line(fig, p, x1, y1, 2, color, 3.0, SVG_SOLID, label) ||
           svg_panel_line(fig, p, x2, y2, 2, color, 3.0, SVG_SOLID, NULL);
}

static int panel_frame(svg_figure *fig, int p, const char *title)
{
    return svg_panel_axes(fig, p, title, "x", "y") || svg_panel_xrange(fig, p, -VIEW, VIEW) ||
           svg_panel_yrange(fig, p, -VIEW, VIEW) ||
           add_cross(fig, p, 0.0, 0.0, 0.12, "#000000", NULL); /* the start */
}

/* The panel title of method mi: its name, and its scale for family fam when guided;
 * prefix (a layout's label) or NULL. */
static void method_label(char *buf, size_t size, const char *prefix, const evaluation *ev,
                         int mi, family fam)
{
    const method_def *m = &method_defs[mi];
    const char *sep = prefix ? ": " : "";
    if (!prefix)
        prefix = "";
    if (m->kind == LGD_GUIDANCE_NONE)
        snprintf(buf, size, "%s%s%s", prefix, sep, m->name);
    else
        snprintf(buf, size, "%s%s%s, scale %g", prefix, sep, m->name, ev->scale[mi][fam]);
}

/* Panel col of fig_path.svg: method mi's samples of the three directions and the target
 * paths. */
static int path_panel(svg_figure *fp, const traj_config *cfg, const evaluation *ev,
                      const traj_problem *pb, int mi, int col)
{
    const method_def *m = &method_defs[mi];
    char lab[64], note[96];
    method_label(lab, sizeof lab, NULL, ev, mi, FAM_PATH);
    if (panel_frame(fp, col, lab) || svg_panel_legend(fp, col, SVG_BOTTOM_RIGHT))
        return 1;
    int first = 1;
    for (int k = 0; k < NTASKS; k++) {
        if (task_defs[k].fam != FAM_PATH)
            continue;
        const batch *b = &ev->b[mi][k];
        for (int64_t r = 0; r < cfg->seeds; r++) {
            if (b->o[r].failed)
                continue;
            if (add_path(fp, col, b->x + r * DIM, m->color, 1.1, first ? "samples" : NULL))
                return 1;
            first = 0;
        }
    }
    first = 1;
    for (int k = 0; k < NTASKS; k++) {
        if (task_defs[k].fam != FAM_PATH)
            continue;
        double xs[FRAMES + 1], ys[FRAMES + 1];
        xs[0] = ys[0] = 0.0;
        for (int f = 0; f < FRAMES; f++) {
            xs[f + 1] = pb->tasks[k].path[2 * f];
            ys[f + 1] = pb->tasks[k].path[2 * f + 1];
        }
        if (svg_panel_line(fp, col, xs, ys, FRAMES + 1, "#000000", 2.0, SVG_DASHED,
                           first ? "target paths" : NULL))
            return 1;
        first = 0;
    }
    snprintf(note, sizeof note, "Objective %.3g (mean of %d)",
             ev->fam_m[0][mi][FAM_PATH].obj_mean, (int)ev->fam_m[0][mi][FAM_PATH].n);
    return svg_panel_note(fp, col, note);
}

/* The notes of an obstacle panel: Objective, collisions, final distance, implausible and
 * failed samples. */
static int obstacle_notes(svg_figure *fo, int p, const metrics *mt)
{
    char note[96];
    snprintf(note, sizeof note, "Objective %.3g", mt->obj_mean);
    if (svg_panel_note(fo, p, note))
        return 1;
    snprintf(note, sizeof note, "collisions %.0f of %" PRId64,
             mt->collision * (double)(mt->n - mt->failed), mt->n);
    if (svg_panel_note(fo, p, note))
        return 1;
    snprintf(note, sizeof note, "final distance %.2f", mt->fd_mean);
    if (svg_panel_note(fo, p, note))
        return 1;
    snprintf(note, sizeof note, "implausible %" PRId64 " of %" PRId64, mt->implausible, mt->n);
    if (svg_panel_note(fo, p, note))
        return 1;
    if (mt->failed) {
        snprintf(note, sizeof note, "%" PRId64 " failed (non-finite)", mt->failed);
        if (svg_panel_note(fo, p, note))
            return 1;
    }
    return 0;
}

/* Panel p of fig_obstacle.svg: method mi's samples of obstacle task k, the straight path,
 * the obstacles and the goal. */
static int obstacle_panel(svg_figure *fo, int p, const traj_config *cfg, const evaluation *ev,
                          const traj_problem *pb, int mi, int k)
{
    const method_def *m = &method_defs[mi];
    const task *t = &pb->tasks[k];
    const batch *b = &ev->b[mi][k];
    char lab[80];
    method_label(lab, sizeof lab, t->def->label, ev, mi, t->def->fam);
    if (panel_frame(fo, p, lab) || svg_panel_legend(fo, p, SVG_BOTTOM_RIGHT))
        return 1;
    double sx[2] = { 0.0, t->target[0] }, sy[2] = { 0.0, t->target[1] };
    if (svg_panel_line(fo, p, sx, sy, 2, "#999999", 1.2, SVG_DOTTED, "straight path"))
        return 1;
    int first_s = 1;
    for (int64_t r = 0; r < cfg->seeds; r++) {
        if (b->o[r].failed)
            continue;
        if (add_path(fo, p, b->x + r * DIM, m->color, 1.1, first_s ? "samples" : NULL))
            return 1;
        first_s = 0;
    }
    for (int o = 0; o < t->nobs; o++)
        if (add_circle(fo, p, t->obs[3 * o], t->obs[3 * o + 1], t->obs[3 * o + 2], "#000000",
                       2.2, SVG_SOLID, o == 0 ? "obstacle" : NULL))
            return 1;
    if (add_cross(fo, p, t->target[0], t->target[1], 0.25, "#ff7f0e", "goal"))
        return 1;
    return obstacle_notes(fo, p, &ev->task_m[0][mi][k]);
}

/* Method mi's panels (column col) of the figures: one in fig_path.svg, one per layout
 * (row) in fig_obstacle.svg and, when fh is not NULL, in fig_hard.svg. */
static int method_panels(svg_figure *fp, svg_figure *fo, svg_figure *fh, int ncols,
                         const traj_config *cfg, const evaluation *ev, const traj_problem *pb,
                         int mi, int col)
{
    if (path_panel(fp, cfg, ev, pb, mi, col))
        return 1;
    int row_o = 0, row_h = 0;
    for (int k = 0; k < NTASKS; k++) {
        if (task_defs[k].fam == FAM_OBSTACLE) {
            if (obstacle_panel(fo, row_o * ncols + col, cfg, ev, pb, mi, k))
                return 1;
            row_o++;
        } else if (task_defs[k].fam == FAM_HARD && fh) {
            if (obstacle_panel(fh, row_h * ncols + col, cfg, ev, pb, mi, k))
                return 1;
            row_h++;
        }
    }
    return 0;
}

int traj_write_figures(const traj_config *cfg, const evaluation *ev, const traj_problem *pb)
{
    int rc = 1;
    int64_t shown = cfg->seeds; /* the paper-protocol samples */
    int ncols = 0;
    for (int mi = 0; mi < NMETHODS; mi++)
        ncols += traj_method_on(cfg, mi);
    /* the titles name the prior, except in the default run (whose figures stay as they
     * were) */
    const char *prior = cfg->prior == PRIOR_LEARNED ? ", learned prior"
                        : cfg->compare || cfg->gradient_free ? ", exact prior" : "";
    char title[224];
    snprintf(title, sizeof title,
             "Path following (Table 2%s): %d samples per direction; dashed: the target paths",
             prior, (int)shown);
    svg_figure *fp = svg_figure_create(1, ncols, PANEL_W, PANEL_H, title);
    snprintf(title, sizeof title,
             "Obstacle avoidance (Table 3%s): %d samples per layout; circles: obstacles "
             "(r = 1), x: goal; long straight segments: jumps (implausible)",
             prior, (int)shown);
    svg_figure *fo = svg_figure_create(2, ncols, PANEL_W, PANEL_H, title);
    svg_figure *fh = NULL;
    if (cfg->gradient_free) {
        snprintf(title, sizeof title,
                 "Obstacle avoidance with the hard 0/1 collision indicator (%s): %d samples "
                 "per layout; circles: obstacles (r = 1), x: goal",
                 prior + 2, (int)shown); /* gradient_free: prior is ", ... prior" */
        fh = svg_figure_create(2, ncols, PANEL_W, PANEL_H, title);
    }
    if (!fp || !fo || (cfg->gradient_free && !fh)) {
        tool_out_of_memory(CMD);
        goto done;
    }
    for (int mi = 0, col = 0; mi < NMETHODS; mi++)
        if (traj_method_on(cfg, mi) &&
            method_panels(fp, fo, fh, ncols, cfg, ev, pb, mi, col++))
            goto done;
    if (tool_write_svg(CMD, cfg->out, fp, "fig_path.svg") ||
        tool_write_svg(CMD, cfg->out, fo, "fig_obstacle.svg") ||
        (fh && tool_write_svg(CMD, cfg->out, fh, "fig_hard.svg")))
        goto done;
    rc = 0;
done:
    svg_figure_destroy(fp);
    svg_figure_destroy(fo);
    svg_figure_destroy(fh);
    return rc;
}
