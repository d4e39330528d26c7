/*
 * lgd - the liblgd command-line tool: a table of subcommands.
 *
 *   lgd mixture [options]   the paper's 1-D Gaussian-mixture experiment
 *   lgd trajectory [options] the paper's controllable trajectory synthesis (Tables 2, 3)
 *   lgd help [COMMAND]      usage of the tool or of one subcommand
 *   lgd --version           versions of the tool and of the loaded liblgd
 *
 * Uses only the public API of liblgd. See lgd_tool.h for how to add a subcommand.
 */
#include "lgd_tool.h"
#include "svg_plot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct lgd_command {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
    void (*usage)(FILE *out);
} lgd_command;

static const lgd_command commands[] = {
    { "mixture",
      "the paper's 1-D Gaussian-mixture experiment: guidance curves (Fig. 4, 8), "
      "samples, histograms and KL (Fig. 6, App. B.1)",
      lgd_mixture_main, lgd_mixture_usage },
    { "trajectory",
      "controllable trajectory synthesis (Sec. 6.3): path following and obstacle "
      "avoidance, Tables 2 and 3, Fig. 2 and 10",
      lgd_trajectory_main, lgd_trajectory_usage },
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const lgd_command *find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: lgd COMMAND [options]\n"
                 "       lgd help [COMMAND]\n"
                 "       lgd --version\n"
                 "\n"
                 "Loss-guided diffusion (Song et al., ICML 2023) with liblgd.\n"
                 "\n"
                 "commands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "this message, or a command's options");
    fprintf(out, "\nExit status: 0 success, 1 error, 2 bad usage.\n");
}

int lgd_tool_option(const char *cmd, int argc, char **argv, int *i, const char *name,
                    const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, "--", 2) || strncmp(a + 2, name, n))
        return 0;
    if (a[2 + n] == '=') {
        *value = a + 3 + n;
        return 1;
    }
    if (a[2 + n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        lgd_tool_usage_error(cmd, "option --%s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int lgd_tool_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lgd%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'lgd help%s%s'.\n", cmd ? " " : "", cmd ? cmd : "");
    return LGD_TOOL_EXIT_USAGE;
}

int lgd_tool_failed(const char *cmd, const lgd_context *ctx, lgd_status st, const char *what)
{
    if (st == LGD_OK)
        return 0;
    const char *msg = ctx ? lgd_context_last_error(ctx) : "";
    fprintf(stderr, "lgd %s: %s failed: %s (%d)%s%s\n", cmd, what, lgd_status_string(st),
            (int)st, msg[0] ? ": " : "", msg);
    return 1;
}

int lgd_tool_mkdirs(const char *path)
{
    size_t n = strlen(path);
    if (n == 0) {
        errno = ENOENT;
        return -1;
    }
    char *buf = malloc(n + 1);
    if (!buf)
        return -1;
    memcpy(buf, path, n + 1);
    int rc = 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0) {
            int e = errno;
            if (e != EEXIST || stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                errno = e == EEXIST ? ENOTDIR : e;
                rc = -1;
            }
        }
        buf[i] = c;
    }
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LGD_TOOL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("lgd %d.%d.%d (liblgd %s)\n", LGD_VERSION_MAJOR, LGD_VERSION_MINOR,
               LGD_VERSION_PATCH, lgd_version_string());
        return LGD_TOOL_EXIT_OK;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2) {
            const lgd_command *c = find_command(argv[2]);
            if (!c)
                return lgd_tool_usage_error(NULL, "no command '%s'", argv[2]);
            c->usage(stdout);
        } else {
            usage(stdout);
        }
        return LGD_TOOL_EXIT_OK;
    }
    const lgd_command *c = find_command(cmd);
    if (!c)
        return lgd_tool_usage_error(NULL, "no command '%s'", cmd);
    /* Headers and library must agree on the major version and be at least as new. */
    if (lgd_version() / 10000 != LGD_VERSION_MAJOR || lgd_version() < LGD_VERSION_NUMBER) {
        fprintf(stderr, "lgd: liblgd %s does not match the headers the tool was built with "
                        "(%d.%d.%d)\n",
                lgd_version_string(), LGD_VERSION_MAJOR, LGD_VERSION_MINOR, LGD_VERSION_PATCH);
        return LGD_TOOL_EXIT_ERROR;
    }
    return c->main(argc - 1, argv + 1);
}

/* DIR/NAME into buf; 0, or -1 with a message when it does not fit. */
static int out_path(const char *cmd, char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "lgd %s: output path too long: %s/%s\n", cmd, dir, name);
        return -1;
    }
    return 0;
}

FILE *lgd_tool_open_out(const char *cmd, const char *dir, const char *name, char *path,
                        size_t size)
{
    if (out_path(cmd, path, size, dir, name))
        return NULL;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "lgd %s: cannot write %s: %s\n", cmd, path, strerror(errno));
    return f;
}

int lgd_tool_close_out(const char *cmd, FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "lgd %s: error writing %s\n", cmd, path);
    return bad;
}

int lgd_tool_write_svg(const char *cmd, const char *dir, const struct svg_figure *fig,
                       const char *name)
{
    char path[4096];
    if (out_path(cmd, path, sizeof path, dir, name))
        return 1;
    if (svg_figure_write(fig, path)) {
        fprintf(stderr, "lgd %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    return 0;
}
