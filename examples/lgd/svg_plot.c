/*
 * svg_plot.c - the minimal SVG plotter of svg_plot.h: building a figure in memory, then
 * writing it panel by panel. Slightly over 600 lines, kept in one file: one small,
 * self-contained component whose parts make sense only together.
 */
#include "svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Panel layout in pixels: the plot area is the panel less these margins. */
#define MARGIN_LEFT 70.0
#define MARGIN_RIGHT 14.0
#define MARGIN_TOP 26.0
#define MARGIN_BOTTOM 44.0
#define FIGURE_TITLE_H 30.0
#define FONT "font-family=\"Helvetica, Arial, sans-serif\""

typedef struct series {
    int is_bars;
    double *x; /* bars: nbins + 1 edges */
    double *y; /* bars: nbins heights */
    size_t n;  /* points, or bins */
    char color[32];
    double width;
    svg_dash dash;
    char *label;
} series;

typedef struct panel {
    char *title, *xlabel, *ylabel;
    int fixed_x, fixed_y;
    double xmin, xmax, ymin, ymax;
    series *s;
    size_t ns, cap;
    char **notes;
    size_t nnotes;
    svg_corner legend;
} panel;

struct svg_figure {
    int rows, cols;
    double pw, ph;
    char *title;
    panel *panels;
};

static char *dup_str(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Replaces *dst by a copy of s (NULL clears); 0 or -1 on no memory. */
static int set_str(char **dst, const char *s)
{
    char *d = NULL;
    if (s && !(d = dup_str(s)))
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

svg_figure *svg_figure_create(int rows, int cols, double panel_w, double panel_h,
                              const char *title)
{
    if (rows < 1 || cols < 1 || !(panel_w > 0.0) || !(panel_h > 0.0))
        return NULL;
    svg_figure *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->rows = rows;
    f->cols = cols;
    f->pw = panel_w;
    f->ph = panel_h;
    f->panels = calloc((size_t)rows * (size_t)cols, sizeof *f->panels);
    if (!f->panels || set_str(&f->title, title)) {
        svg_figure_destroy(f);
        return NULL;
    }
    return f;
}

void svg_figure_destroy(svg_figure *f)
{
    if (!f)
        return;
    if (f->panels) {
        for (int p = 0; p < f->rows * f->cols; p++) {
            panel *pa = &f->panels[p];
            free(pa->title);
            free(pa->xlabel);
            free(pa->ylabel);
            for (size_t i = 0; i < pa->ns; i++) {
                free(pa->s[i].x);
                free(pa->s[i].y);
                free(pa->s[i].label);
            }
            free(pa->s);
            for (size_t i = 0; i < pa->nnotes; i++)
                free(pa->notes[i]);
            free(pa->notes);
        }
        free(f->panels);
    }
    free(f->title);
    free(f);
}

static panel *get_panel(svg_figure *f, int p)
{
    if (!f || p < 0 || p >= f->rows * f->cols)
        return NULL;
    return &f->panels[p];
}

int svg_panel_axes(svg_figure *f, int p, const char *title, const char *xlabel,
                   const char *ylabel)
{
    panel *pa = get_panel(f, p);
    if (!pa)
        return -1;
    if (set_str(&pa->title, title) || set_str(&pa->xlabel, xlabel) ||
        set_str(&pa->ylabel, ylabel))
        return -1;
    return 0;
}

int svg_panel_xrange(svg_figure *f, int p, double xmin, double xmax)
{
    panel *pa = get_panel(f, p);
    if (!pa || !(xmin < xmax) || !isfinite(xmin) || !isfinite(xmax))
        return -1;
    pa->fixed_x = 1;
    pa->xmin = xmin;
    pa->xmax = xmax;
    return 0;
}

int svg_panel_yrange(svg_figure *f, int p, double ymin, double ymax)
{
    panel *pa = get_panel(f, p);
    if (!pa || !(ymin < ymax) || !isfinite(ymin) || !isfinite(ymax))
        return -1;
    pa->fixed_y = 1;
    pa->ymin = ymin;
    pa->ymax = ymax;
    return 0;
}

/* Appends a series with copies of x[nx] and y[ny]. */
static int add_series(panel *pa, int is_bars, const double *x, size_t nx, const double *y,
                      size_t ny, size_t n, const char *color, double width, svg_dash dash,
                      const char *label)
{
    if (pa->ns == pa->cap) {
        size_t cap = pa->cap ? 2 * pa->cap : 8;
        series *s = realloc(pa->s, cap * sizeof *s);
        if (!s)
            return -1;
        pa->s = s;
        pa->cap = cap;
    }
    series sr;
    memset(&sr, 0, sizeof sr);
    sr.is_bars = is_bars;
    sr.n = n;
    sr.width = width;
    sr.dash = dash;
    snprintf(sr.color, sizeof sr.color, "%s", color ? color : "#000000");
    sr.x = malloc(nx * sizeof *sr.x);
    sr.y = malloc(ny * sizeof *sr.y);
    if (!sr.x || !sr.y || set_str(&sr.label, label)) {
        free(sr.x);
        free(sr.y);
        free(sr.label);
        return -1;
    }
    memcpy(sr.x, x, nx * sizeof *sr.x);
    memcpy(sr.y, y, ny * sizeof *sr.y);
    pa->s[pa->ns++] = sr;
    return 0;
}

int svg_panel_line(svg_figure *f, int p, const double *x, const double *y, size_t n,
                   const char *color, double width, svg_dash dash, const char *label)
{
    panel *pa = get_panel(f, p);
    if (!pa || !x || !y || n == 0 || !(width > 0.0))
        return -1;
    return add_series(pa, 0, x, n, y, n, n, color, width, dash, label);
}

int svg_panel_bars(svg_figure *f, int p, const double *edges, const double *h, size_t nbins,
                   const char *color, const char *label)
{
    panel *pa = get_panel(f, p);
    if (!pa || !edges || !h || nbins == 0)
        return -1;
    return add_series(pa, 1, edges, nbins + 1, h, nbins, nbins, color, 1.0, SVG_SOLID, label);
}

int svg_panel_legend(svg_figure *f, int p, svg_corner corner)
{
    panel *pa = get_panel(f, p);
    if (!pa || corner < SVG_TOP_RIGHT || corner > SVG_BOTTOM_LEFT)
        return -1;
    pa->legend = corner;
    return 0;
}

int svg_panel_note(svg_figure *f, int p, const char *text)
{
    panel *pa = get_panel(f, p);
    if (!pa || !text)
        return -1;
    char **notes = realloc(pa->notes, (pa->nnotes + 1) * sizeof *notes);
    if (!notes)
        return -1;
    pa->notes = notes;
    if (!(notes[pa->nnotes] = dup_str(text)))
        return -1;
    pa->nnotes++;
    return 0;
}

/* ---- writing ---- */

/* Writes s with XML's special characters escaped. */
static void put_text(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*s, out);
        }
    }
}

/* The data range of a panel's series along x (axis 0) or y (axis 1); 0 if none is finite. */
static int data_range(const panel *pa, int axis, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < pa->ns; i++) {
        const series *s = &pa->s[i];
        const double *v = axis == 0 ? s->x : s->y;
        size_t n = axis == 0 && s->is_bars ? s->n + 1 : s->n;
        for (size_t j = 0; j < n; j++) {
            if (!isfinite(v[j]))
                continue;
            if (v[j] < a)
                a = v[j];
            if (v[j] > b)
                b = v[j];
        }
        if (axis == 1 && s->is_bars && a > 0.0)
            a = 0.0;
    }
    if (!(a <= b))
        return 0;
    *lo = a;
    *hi = b;
    return 1;
}

/* A step of 1, 2 or 5 x 10^k giving about `target` intervals over [lo, hi]. */
static double nice_step(double lo, double hi, int target)
{
    double raw = (hi - lo) / target;
    double mag = pow(10.0, floor(log10(raw)));
    double norm = raw / mag;
    double m = norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0;
    return m * mag;
}

/* Formats a tick value: exact zero, otherwise %g of the value rounded to the step. */
static void tick_label(char *buf, size_t size, double v, double step)
{
    if (fabs(v) < 1e-9 * step)
        v = 0.0;
    snprintf(buf, size, "%g", v);
}

typedef struct frame {
    double x0, y0, w, h;       /* plot area in pixels */
    double xmin, xmax, ymin, ymax;
} frame;

static double px(const frame *fr, double x)
{
    return fr->x0 + (x - fr->xmin) / (fr->xmax - fr->xmin) * fr->w;
}

static double py(const frame *fr, double y)
{
    return fr->y0 + fr->h - (y - fr->ymin) / (fr->ymax - fr->ymin) * fr->h;
}

static const char *dash_attr(svg_dash d)
{
    return d == SVG_DASHED   ? " stroke-dasharray=\"7,4\""
           : d == SVG_DOTTED ? " stroke-dasharray=\"2,3\""
                             : "";
}

/* Coordinates far outside the plot are pulled in (the clip path hides them) so that
 * huge values do not produce unreadable numbers. */
static double clampc(double v)
{
    return v < -1e5 ? -1e5 : v > 1e5 ? 1e5 : v;
}

/* The plot area of a panel at (ox, oy) of size pw x ph, and its axis ranges: fixed, or
 * the data's (y padded by 5 %, bars kept on 0). */
static frame panel_frame(const panel *pa, double ox, double oy, double pw, double ph)
{
    frame fr = { ox + MARGIN_LEFT, oy + MARGIN_TOP, pw - MARGIN_LEFT - MARGIN_RIGHT,
                 ph - MARGIN_TOP - MARGIN_BOTTOM, 0.0, 1.0, 0.0, 1.0 };
    if (pa->fixed_x) {
        fr.xmin = pa->xmin;
        fr.xmax = pa->xmax;
    } else if (data_range(pa, 0, &fr.xmin, &fr.xmax) && fr.xmin == fr.xmax) {
        fr.xmin -= 1.0;
        fr.xmax += 1.0;
    }
    if (pa->fixed_y) {
        fr.ymin = pa->ymin;
        fr.ymax = pa->ymax;
    } else if (data_range(pa, 1, &fr.ymin, &fr.ymax)) {
        double span = fr.ymax - fr.ymin;
        if (span <= 0.0)
            span = fabs(fr.ymax) > 0.0 ? fabs(fr.ymax) : 1.0;
        int bars_at_zero = fr.ymin == 0.0;
        fr.ymax += 0.05 * span;
        if (!bars_at_zero)
            fr.ymin -= 0.05 * span;
    }
    return fr;
}

/* Grid lines, the zero line, ticks and tick labels. */
static void write_grid(FILE *out, const frame *fr)
{
    double xs = nice_step(fr->xmin, fr->xmax, 6), ys = nice_step(fr->ymin, fr->ymax, 5);
    char buf[64];
    fputs("<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n", out);
    for (double t = ceil(fr->xmin / xs - 1e-9) * xs; t <= fr->xmax + 1e-9 * xs; t += xs)
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px(fr, t),
                fr->y0, px(fr, t), fr->y0 + fr->h);
    for (double t = ceil(fr->ymin / ys - 1e-9) * ys; t <= fr->ymax + 1e-9 * ys; t += ys)
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr->x0,
                py(fr, t), fr->x0 + fr->w, py(fr, t));
    fputs("</g>\n", out);
    if (fr->ymin < 0.0 && fr->ymax > 0.0)
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#999\" "
                     "stroke-width=\"1\"/>\n",
                fr->x0, py(fr, 0.0), fr->x0 + fr->w, py(fr, 0.0));
    fputs("<g font-size=\"11\" " FONT " fill=\"#222\">\n", out);
    for (double t = ceil(fr->xmin / xs - 1e-9) * xs; t <= fr->xmax + 1e-9 * xs; t += xs) {
        tick_label(buf, sizeof buf, t, xs);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#222\"/>\n",
                px(fr, t), fr->y0 + fr->h, px(fr, t), fr->y0 + fr->h + 4);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                px(fr, t), fr->y0 + fr->h + 16, buf);
    }
    for (double t = ceil(fr->ymin / ys - 1e-9) * ys; t <= fr->ymax + 1e-9 * ys; t += ys) {
        tick_label(buf, sizeof buf, t, ys);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#222\"/>\n",
                fr->x0 - 4, py(fr, t), fr->x0, py(fr, t));
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", fr->x0 - 6,
                py(fr, t) + 4, buf);
    }
    fputs("</g>\n", out);
}

/* The panel's title, above the plot area; oy: the panel's top edge. */
static void write_title(FILE *out, const panel *pa, const frame *fr, double oy)
{
    if (pa->title) {
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\" " FONT
                     " font-weight=\"bold\">",
                fr->x0 + fr->w / 2, oy + 17.0);
        put_text(out, pa->title);
        fputs("</text>\n", out);
    }
}

/* The axis labels, below and left of the plot area; ox: the panel's left edge. */
static void write_axis_labels(FILE *out, const panel *pa, const frame *fr, double ox)
{
    if (pa->xlabel) {
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"12\" " FONT
                     ">",
                fr->x0 + fr->w / 2, fr->y0 + fr->h + 34);
        put_text(out, pa->xlabel);
        fputs("</text>\n", out);
    }
    if (pa->ylabel) {
        double lx = ox + 14, ly = fr->y0 + fr->h / 2;
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"12\" " FONT
                     " transform=\"rotate(-90 %.2f %.2f)\">",
                lx, ly, lx, ly);
        put_text(out, pa->ylabel);
        fputs("</text>\n", out);
    }
}

/* A histogram series: one rectangle per bin with a positive height. */
static void write_bars(FILE *out, const series *s, const frame *fr)
{
    fprintf(out, "<g fill=\"%s\" fill-opacity=\"0.45\" stroke=\"%s\" "
                 "stroke-opacity=\"0.8\" stroke-width=\"0.6\">\n",
            s->color, s->color);
    for (size_t j = 0; j < s->n; j++) {
        if (!isfinite(s->y[j]) || s->y[j] <= 0.0)
            continue;
        double xa = clampc(px(fr, s->x[j])), xb = clampc(px(fr, s->x[j + 1]));
        double yt = clampc(py(fr, s->y[j])), yb = clampc(py(fr, 0.0));
        fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", xa, yt,
                xb - xa, yb - yt);
    }
    fputs("</g>\n", out);
}

/* A line series: one path per run of finite points. */
static void write_line(FILE *out, const series *s, const frame *fr)
{
    int open = 0;
    for (size_t j = 0; j < s->n; j++) {
        if (!isfinite(s->x[j]) || !isfinite(s->y[j])) {
            if (open)
                fputs("\"/>\n", out);
            open = 0;
            continue;
        }
        if (!open)
            fprintf(out, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\" "
                         "stroke-linejoin=\"round\"%s d=\"M",
                    s->color, s->width, dash_attr(s->dash));
        else
            fputs(" L", out);
        fprintf(out, "%.1f %.1f", clampc(px(fr, s->x[j])), clampc(py(fr, s->y[j])));
        open = 1;
    }
    if (open)
        fputs("\"/>\n", out);
}

/* The series, clipped to the plot area: bars first, lines over them; then the frame. */
static void write_series(FILE *out, const panel *pa, const frame *fr, int id)
{
    fprintf(out, "<clipPath id=\"clip%d\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                 "height=\"%.2f\"/></clipPath>\n",
            id, fr->x0, fr->y0, fr->w, fr->h);
    fprintf(out, "<g clip-path=\"url(#clip%d)\">\n", id);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < pa->ns; i++) {
            const series *s = &pa->s[i];
            if (s->is_bars != (pass == 0))
                continue;
            if (s->is_bars)
                write_bars(out, s, fr);
            else
                write_line(out, s, fr);
        }
    fputs("</g>\n", out);
    fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                 "stroke=\"#222\" stroke-width=\"1\"/>\n",
            fr->x0, fr->y0, fr->w, fr->h);
}

/* Where the legend box goes: its corner, position and height. */
typedef struct legend_box {
    int right, bottom;
    double x, y, w, h;
    size_t entries;
} legend_box;

static legend_box place_legend(const panel *pa, const frame *fr)
{
    legend_box lb = { 0, 0, 0.0, 0.0, 0.0, 0.0, 0 };
    size_t maxc = 0;
    for (size_t i = 0; i < pa->ns; i++) {
        if (pa->s[i].label) {
            lb.entries++;
            size_t c = strlen(pa->s[i].label);
            if (c > maxc)
                maxc = c;
        }
    }
    lb.right = pa->legend == SVG_TOP_RIGHT || pa->legend == SVG_BOTTOM_RIGHT;
    lb.bottom = pa->legend == SVG_BOTTOM_RIGHT || pa->legend == SVG_BOTTOM_LEFT;
    lb.w = 40.0 + 6.6 * (double)maxc;
    lb.h = lb.entries ? 15.0 * (double)lb.entries + 6.0 : 0.0;
    lb.x = lb.right ? fr->x0 + fr->w - lb.w - 6 : fr->x0 + 6;
    lb.y = lb.bottom ? fr->y0 + fr->h - lb.h - 6 : fr->y0 + 6;
    return lb;
}

/* The legend: a box with a sample of each labelled series and its label. */
static void write_legend(FILE *out, const panel *pa, const legend_box *lb)
{
    if (!lb->entries)
        return;
    double lx = lb->x, ly = lb->y;
    fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#fff\" "
                 "fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
            lx, ly, lb->w, lb->h);
    size_t k = 0;
    for (size_t i = 0; i < pa->ns; i++) {
        const series *s = &pa->s[i];
        if (!s->label)
            continue;
        double yy = ly + 13.0 + 15.0 * (double)k++;
        if (s->is_bars)
            fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"20\" height=\"9\" fill=\"%s\" "
                         "fill-opacity=\"0.45\" stroke=\"%s\"/>\n",
                    lx + 6, yy - 8, s->color, s->color);
        else
            fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                         "stroke-width=\"%.2f\"%s/>\n",
                    lx + 6, yy - 4, lx + 26, yy - 4, s->color, s->width, dash_attr(s->dash));
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" " FONT ">", lx + 31, yy);
        put_text(out, s->label);
        fputs("</text>\n", out);
    }
}

/* Notes: stacked above a bottom legend, or in the other top corner. */
static void write_notes(FILE *out, const panel *pa, const frame *fr, const legend_box *lb)
{
    int right = lb->right;
    for (size_t i = 0; i < pa->nnotes; i++) {
        double nx, ny;
        const char *anchor;
        if (lb->bottom) {
            nx = right ? fr->x0 + fr->w - 8 : fr->x0 + 8;
            ny = lb->y - 6.0 - 14.0 * (double)(pa->nnotes - 1 - i);
            anchor = right ? "end" : "start";
        } else {
            nx = right ? fr->x0 + 6 : fr->x0 + fr->w - 6;
            ny = fr->y0 + 15.0 + 14.0 * (double)i;
            anchor = right ? "start" : "end";
        }
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" " FONT
                     " fill=\"#222\" text-anchor=\"%s\">",
                nx, ny, anchor);
        put_text(out, pa->notes[i]);
        fputs("</text>\n", out);
    }
}

/* Panel number id at (ox, oy), pw x ph pixels. */
static void write_panel(FILE *out, const panel *pa, int id, double ox, double oy, double pw,
                        double ph)
{
    frame fr = panel_frame(pa, ox, oy, pw, ph);
    write_title(out, pa, &fr, oy);
    write_grid(out, &fr);
    write_axis_labels(out, pa, &fr, ox);
    write_series(out, pa, &fr, id);
    legend_box lb = place_legend(pa, &fr);
    write_legend(out, pa, &lb);
    write_notes(out, pa, &fr, &lb);
}

int svg_figure_write(const svg_figure *f, const char *path)
{
    if (!f || !path)
        return -1;
    FILE *out = fopen(path, "w");
    if (!out)
        return -1;
    double top = f->title ? FIGURE_TITLE_H : 0.0;
    double w = f->cols * f->pw, h = f->rows * f->ph + top;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                 "viewBox=\"0 0 %.0f %.0f\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
            w, h, w, h);
    if (f->title) {
        fprintf(out, "<text x=\"%.2f\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" " FONT
                     " font-weight=\"bold\">",
                w / 2);
        put_text(out, f->title);
        fputs("</text>\n", out);
    }
    for (int r = 0; r < f->rows; r++)
        for (int c = 0; c < f->cols; c++) {
            int p = r * f->cols + c;
            fprintf(out, "<g>\n");
            write_panel(out, &f->panels[p], p, c * f->pw, top + r * f->ph, f->pw, f->ph);
            fprintf(out, "</g>\n");
        }
    fputs("</svg>\n", out);
    int bad = ferror(out);
    if (fclose(out) != 0)
        bad = 1;
    return bad ? -1 : 0;
}
