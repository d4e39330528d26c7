/*
 * main.c - lgd, the liblgd command-line tool: the table of subcommands, `lgd help`
 * and `lgd --version`.
 *
 *   lgd mixture [options]    the paper's 1-D Gaussian-mixture experiment
 *   lgd trajectory [options] the paper's controllable trajectory synthesis (Tables 2, 3)
 *   lgd sample [options]     guided sampling of any model with any loss (.npy in and out)
 *   lgd superres [options]   the paper's super-resolution (Table 1) on the digits models
 *   lgd classcond [options]  the paper's label-conditional generation (Table 4), digits
 *   lgd help [COMMAND]       usage of the tool or of one subcommand
 *   lgd --version            versions of the tool and of the loaded liblgd
 *
 * Uses only the public API of liblgd. See commands.h for how to add a subcommand.
 */
#include <string.h>

#include <lgd/lgd.h>

#include "commands.h"
#include "tool.h"

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
    { "sample",
      "guided sampling of any model (network file, mixture, plugin) with any loss; "
      ".npy in and out, --rows splits, MPI",
      lgd_sample_main, lgd_sample_usage },
    { "superres",
      "image super-resolution (Sec. 6.2, Table 1) on the shipped 8x8 digits models",
      lgd_superres_main, lgd_superres_usage },
    { "classcond",
      "label-conditional generation from the unconditional digits model with a "
      "classifier's loss (Sec. 6.4, Table 4)",
      lgd_classcond_main, lgd_classcond_usage },
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

static int is_help(const char *arg)
{
    return !strcmp(arg, "help") || !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

static int is_version(const char *arg)
{
    return !strcmp(arg, "--version") || !strcmp(arg, "version");
}

static int print_version(void)
{
    printf("lgd %d.%d.%d (liblgd %s)\n", LGD_VERSION_MAJOR, LGD_VERSION_MINOR,
           LGD_VERSION_PATCH, lgd_version_string());
    return TOOL_EXIT_OK;
}

/* lgd help [COMMAND]: argv[0] is "help". */
static int print_help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return TOOL_EXIT_OK;
    }
    const lgd_command *c = find_command(argv[1]);
    if (!c)
        return tool_usage_error(NULL, "no command '%s'", argv[1]);
    c->usage(stdout);
    return TOOL_EXIT_OK;
}

/* Headers and library must agree on the major version and be at least as new. */
static int library_matches_headers(void)
{
    if (lgd_version() / 10000 == LGD_VERSION_MAJOR && lgd_version() >= LGD_VERSION_NUMBER)
        return 1;
    fprintf(stderr, "lgd: liblgd %s does not match the headers the tool was built with "
                    "(%d.%d.%d)\n",
            lgd_version_string(), LGD_VERSION_MAJOR, LGD_VERSION_MINOR, LGD_VERSION_PATCH);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TOOL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (is_version(cmd))
        return print_version();
    if (is_help(cmd))
        return print_help(argc - 1, argv + 1);
    const lgd_command *c = find_command(cmd);
    if (!c)
        return tool_usage_error(NULL, "no command '%s'", cmd);
    if (!library_matches_headers())
        return TOOL_EXIT_ERROR;
    return c->main(argc - 1, argv + 1);
}
