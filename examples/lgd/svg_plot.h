/*
 * svg_plot.h - a minimal SVG plotter for the lgd tool: a figure is a grid of panels,
 * each with axes, ticks, labels, a legend, line series and histogram bars.
 *
 * Not part of liblgd's API. Everything is kept in memory until svg_figure_write(),
 * which computes automatic axis ranges, "nice" ticks (1, 2, 5 x 10^k) and clips every
 * series to its panel. Strings are copied; arrays are copied.
 *
 *   svg_figure *f = svg_figure_create(1, 2, 420, 300, "title");
 *   svg_panel_axes(f, 0, "sigma = 1", "x", "g(x)");
 *   svg_panel_line(f, 0, x, y, n, "#1f77b4", 2.0, SVG_SOLID, "exact");
 *   svg_figure_write(f, "out.svg");
 *   svg_figure_destroy(f);
 *
 * Fallible calls return 0 on success and -1 on a bad argument or no memory
 * (svg_figure_write: also when the file cannot be written; errno is kept).
 */
#ifndef LGD_TOOL_SVG_PLOT_H
#define LGD_TOOL_SVG_PLOT_H

#include <stddef.h>

typedef struct svg_figure svg_figure;

/** Line styles. */
typedef enum svg_dash { SVG_SOLID = 0, SVG_DASHED = 1, SVG_DOTTED = 2 } svg_dash;

/** A figure of rows x cols panels, each panel_w x panel_h pixels (axes included);
 *  title may be NULL. NULL when out of memory or a size is not positive. */
svg_figure *svg_figure_create(int rows, int cols, double panel_w, double panel_h,
                              const char *title);
void svg_figure_destroy(svg_figure *figure);

/** Titles and axis labels of panel `panel` (row-major index); any may be NULL. */
int svg_panel_axes(svg_figure *figure, int panel, const char *title, const char *xlabel,
                   const char *ylabel);
/** Fixes the x range (default: the data's range). */
int svg_panel_xrange(svg_figure *figure, int panel, double xmin, double xmax);
/** Fixes the y range (default: the data's range, padded by 5 %, 0 included for bars). */
int svg_panel_yrange(svg_figure *figure, int panel, double ymin, double ymax);

/** A polyline through n points (non-finite points break the line); label may be
 *  NULL (no legend entry). color is an SVG color such as "#1f77b4". */
int svg_panel_line(svg_figure *figure, int panel, const double *x, const double *y, size_t n,
                   const char *color, double width, svg_dash dash, const char *label);
/** A histogram: nbins bars between edges[0..nbins] with heights h[0..nbins-1]. */
int svg_panel_bars(svg_figure *figure, int panel, const double *edges, const double *h,
                   size_t nbins, const char *color, const char *label);
/** Lines of text in the plot area (e.g. statistics), in the corner opposite the legend. */
int svg_panel_note(svg_figure *figure, int panel, const char *text);

/** Where the legend goes; notes go to the other top corner (default SVG_TOP_RIGHT). */
typedef enum svg_corner { SVG_TOP_RIGHT = 0, SVG_TOP_LEFT = 1, SVG_BOTTOM_RIGHT = 2,
                          SVG_BOTTOM_LEFT = 3 } svg_corner;
int svg_panel_legend(svg_figure *figure, int panel, svg_corner corner);

/** Writes the figure to path. */
int svg_figure_write(const svg_figure *figure, const char *path);

#endif /* LGD_SVG_PLOT_H */
