/*
 * tool.h - the shared module of the `lgd` command-line tool: what every subcommand
 * uses, so that no subcommand writes it again.
 *
 * Not part of liblgd's API. Sections, and the file that implements each:
 *   exit statuses and error messages            tool_context.c
 *   options: a small table-driven parser        tool_options.c
 *   progress: a one-line indicator on stderr    tool_progress.c
 *   output files: directory, CSV and SVG files  tool_output.c
 *   context set-up: backend and threads         tool_context.c
 *
 * Every message goes to stderr as "lgd CMD: ...", CMD being the subcommand's name.
 */
#ifndef LGD_TOOL_H
#define LGD_TOOL_H

#include <stdint.h>
#include <stdio.h>

#include <lgd/lgd.h>

/* ---- exit statuses and error messages ---- */

/* Exit statuses, for every subcommand: 0 success, 1 a library or I/O error (the
 * message, with lgd_context_last_error(), is on stderr), 2 bad usage. */
#define TOOL_EXIT_OK 0
#define TOOL_EXIT_ERROR 1
#define TOOL_EXIT_USAGE 2

/* Prints "lgd[ CMD]: MESSAGE" and a pointer to the help on stderr; returns
 * TOOL_EXIT_USAGE. cmd may be NULL (the tool itself). */
int tool_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* When st is not LGD_OK, prints "lgd CMD: WHAT failed: STATUS (CODE): LAST_ERROR" on
 * stderr and returns 1; returns 0 otherwise. ctx may be NULL. */
int tool_failed(const char *cmd, const lgd_context *ctx, lgd_status st, const char *what);

/* Runs a library call and reports its failure with the call's text; non-zero on error. */
#define TOOL_CHECK(cmd, ctx, call) tool_failed((cmd), (ctx), (call), #call)

/* Prints "lgd CMD: out of memory" on stderr; returns 1. */
int tool_out_of_memory(const char *cmd);

/* ---- options ---- */

/* The kinds of value an option takes. */
typedef enum tool_option_kind {
    TOOL_OPT_FLAG,        /* no value: sets *(int *)dest to 1 */
    TOOL_OPT_INT32,       /* int32_t in [min, max] */
    TOOL_OPT_INT64,       /* int64_t in [min, max] */
    TOOL_OPT_UINT64,      /* uint64_t in [0, umax] */
    TOOL_OPT_FLOAT,       /* float, checked as a double in [fmin, fmax] */
    TOOL_OPT_STRING,      /* a non-empty string: const char * (points into argv) */
    TOOL_OPT_CHOICE,      /* one of choices[]: its index, into an int */
    TOOL_OPT_INT32_LIST,  /* 1 to capacity int32_t in [min, max], comma-separated */
    TOOL_OPT_DOUBLE_LIST  /* 1 to capacity doubles in [fmin, fmax], comma-separated */
} tool_option_kind;

/*
 * One row of an option table. An option is given as "--name VALUE" or "--name=VALUE"
 * (a flag as "--name" or its alias alone). Rows are written with designated
 * initializers; the fields a kind does not use stay zero.
 */
typedef struct tool_option {
    const char *name;            /* the long name, without "--" */
    const char *alias;           /* a short form such as "-q" (flags), or NULL */
    tool_option_kind kind;
    void *dest;                  /* where the value goes (the type the kind says) */
    long long min, max;          /* integer kinds: the accepted range, inclusive */
    uint64_t umax;               /* TOOL_OPT_UINT64: the largest accepted value (set it) */
    double fmin, fmax;           /* floating kinds: the accepted range, inclusive ... */
    int fmin_open;               /* ... except fmin itself when this is 1 */
    int capacity;                /* list kinds: the most values dest holds */
    int *count;                  /* list kinds: how many were given */
    const char *const *choices;  /* TOOL_OPT_CHOICE: the names, NULL-terminated */
    const char *what;            /* TOOL_OPT_CHOICE: what the names name ("sampler") */
    /* Bad values are reported as "--name needs NEEDS" (lists: "--name needs 1 to
     * CAPACITY NEEDS"); NULL: "an integer in [min, max]", "a number in [fmin, fmax]"
     * or "a non-negative integer" by kind. A bad choice reads "unknown WHAT 'VALUE'
     * (NAME, NAME, ...)". */
    const char *needs;
} tool_option;

/* Returned by tool_parse_options when the command should run. */
#define TOOL_CONTINUE (-1)

/*
 * Parses argv[1..argc-1] (argv[0] is the subcommand's name) against opts[n], in order;
 * "--help" and "-h" print usage(stdout). Returns TOOL_CONTINUE to run the command, or
 * the exit status to return at once: TOOL_EXIT_OK after --help, TOOL_EXIT_USAGE after
 * an unknown argument, a missing value or a bad one (the message is on stderr).
 */
int tool_parse_options(const char *cmd, int argc, char **argv, const tool_option *opts, int n,
                       void (*usage)(FILE *out));

/* The rows the subcommands share: --threads N (0 to 4096), --out DIR (non-empty),
 * --quiet (-q); and --backend cpu|cuda|auto (an index for tool_backend_kind, in
 * tool_context.c with the backends). */
tool_option tool_option_threads(int32_t *threads);
tool_option tool_option_out(const char **dir);
tool_option tool_option_quiet(int *quiet);
tool_option tool_option_backend(int *choice);

/* ---- progress ---- */

/*
 * A one-line progress indicator on stderr. Active only when stderr is a terminal and
 * the caller did not ask for quiet; then it redraws one line ("label  42%  detail") at
 * most ten times a second and erases it when done, so that the tool's stdout and any
 * redirected stderr stay clean.
 */
typedef struct progress {
    int enabled;        /* 1 when drawing */
    double last_ms;     /* time of the last redraw (tool_now_ms) */
    int drawn;          /* a line is on the screen */
    double total;       /* work units of the whole task */
    double done;        /* units of the finished parts */
    char label[64];
} progress;

/* Starts a task of `total` units (> 0) named label; enabled when stderr is a terminal
 * and quiet is 0. */
void progress_start(progress *p, const char *label, double total, int quiet);
/* A silent indicator, to be started when a task begins (progress_end is safe on it). */
void progress_idle(progress *p);
/* Reports that `units` more units are finished (a finished part of the task). */
void progress_advance(progress *p, double units);
/* Redraws with done + partial units finished and an optional detail text (NULL for
 * none), unless the last redraw was under 100 ms ago. */
void progress_show(progress *p, double partial, const char *detail);
/* Erases the line. */
void progress_end(progress *p);

/* One sampler run as a part of a task: its units and the detail text to show. */
typedef struct progress_run {
    progress *p;
    double units;
    char detail[128];
} progress_run;

/* The step callback of lgd_sampler_run (user: a progress_run): shows the run's
 * progress in proportion to its steps. Never stops the run. */
int progress_on_step(void *user, int32_t step, int32_t num_steps, float sigma,
                     const lgd_guidance_report *report);

/* ---- output files ---- */

/* Creates the output directory and its missing parents (like mkdir -p); 0, or 1 with
 * "lgd CMD: cannot create DIR: REASON" on stderr. */
int tool_make_out_dir(const char *cmd, const char *dir);

/* An output file being written: DIR/NAME. */
typedef struct tool_file {
    FILE *f;
    const char *cmd;
    char path[4096];
} tool_file;

/* Opens DIR/NAME for writing and writes `header` and a newline when header is not
 * NULL (a CSV file's column names); 0, or 1 (file->f NULL, message on stderr) when the
 * path is too long or the file cannot be opened. */
int tool_file_open(tool_file *file, const char *cmd, const char *dir, const char *name,
                   const char *header);
/* Closes the file; 1 (with a message) if writing or closing failed, else 0. */
int tool_file_close(tool_file *file);
/* Closes the file without a word, after another error; safe when it is not open. */
void tool_file_abandon(tool_file *file);

/* Writes the SVG figure to DIR/NAME; 1 (with a message) on failure, else 0. */
struct svg_figure;
int tool_write_svg(const char *cmd, const char *dir, const struct svg_figure *fig,
                   const char *name);

/* ---- context set-up ---- */

/* The backend of a --backend choice (tool_option_backend). */
lgd_backend_kind tool_backend_kind(int choice);

/* Creates *ctx on `backend` with `threads` CPU threads (0: OpenMP's default); 0, or 1
 * with "lgd CMD: lgd_context_create failed: ..." on stderr. */
int tool_context_create(const char *cmd, lgd_backend_kind backend, int32_t threads,
                        lgd_context **ctx);

/* Prints the line "liblgd VERSION, backend NAME" on stdout. */
void tool_print_library(const lgd_context *ctx);

#endif /* LGD_TOOL_H */
