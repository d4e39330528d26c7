/*
 * lgd_tool.h - what the subcommands of the `lgd` command-line tool share.
 *
 * Not part of liblgd's API. The tool is a table of subcommands (lgd_tool.c); each
 * subcommand lives in its own file (lgd_mixture.c, ...) and provides
 *   int  lgd_NAME_main(int argc, char **argv);   argv[0] is the subcommand's name
 *   void lgd_NAME_usage(FILE *out);
 * To add one: write the file, declare the two functions below, add a row to the
 * table in lgd_tool.c and the file to examples/meson.build.
 *
 * Exit statuses, for every subcommand: 0 success, 1 a library or I/O error (the
 * message, with lgd_context_last_error(), is on stderr), 2 bad usage.
 */
#ifndef LGD_TOOL_H
#define LGD_TOOL_H

#include <stdio.h>

#include <lgd/lgd.h>

#define LGD_TOOL_EXIT_OK 0
#define LGD_TOOL_EXIT_ERROR 1
#define LGD_TOOL_EXIT_USAGE 2

/* ---- subcommands ---- */

/* lgd mixture: the paper's 1-D Gaussian-mixture experiment (lgd_mixture.c). */
int lgd_mixture_main(int argc, char **argv);
void lgd_mixture_usage(FILE *out);

/* lgd trajectory: the paper's controllable trajectory synthesis, Sec. 6.3
 * (lgd_trajectory.c). */
int lgd_trajectory_main(int argc, char **argv);
void lgd_trajectory_usage(FILE *out);

/* ---- helpers (lgd_tool.c) ---- */

/*
 * Matches argv[*i] against the option "--name", given as "--name VALUE" or
 * "--name=VALUE". Returns 0 when it is another argument; 1 when it matches, with
 * *value set and *i moved past the value; -1 when it matches but the value is
 * missing (a message is printed to stderr).
 */
int lgd_tool_option(const char *cmd, int argc, char **argv, int *i, const char *name,
                    const char **value);

/* Prints "lgd CMD: MESSAGE" and a pointer to the help on stderr; returns
 * LGD_TOOL_EXIT_USAGE. */
int lgd_tool_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * When st is not LGD_OK, prints "lgd CMD: WHAT failed: STATUS: LAST_ERROR" on
 * stderr and returns 1; returns 0 otherwise. ctx may be NULL.
 */
int lgd_tool_failed(const char *cmd, const lgd_context *ctx, lgd_status st, const char *what);

/* Opens DIR/NAME for writing; its path goes into path[size]. NULL (with a message
 * "lgd CMD: ..." on stderr) when the path is too long or the file cannot be opened. */
FILE *lgd_tool_open_out(const char *cmd, const char *dir, const char *name, char *path,
                        size_t size);

/* Closes f; returns 1 (with a message) if writing or closing failed, else 0. */
int lgd_tool_close_out(const char *cmd, FILE *f, const char *path);

/* Writes the SVG figure to DIR/NAME; returns 1 (with a message) on failure, else 0. */
struct svg_figure;
int lgd_tool_write_svg(const char *cmd, const char *dir, const struct svg_figure *fig,
                       const char *name);

/* Creates directory `path` and its missing parents (like mkdir -p). 0 or -1 (errno). */
int lgd_tool_mkdirs(const char *path);

#endif /* LGD_TOOL_H */
