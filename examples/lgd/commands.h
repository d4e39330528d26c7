/*
 * commands.h - the subcommands of the `lgd` command-line tool.
 *
 * Not part of liblgd's API. The tool is a table of subcommands (main.c); each one
 * lives in files of its own (mixture*.c, trajectory*.c) and provides
 *   int  lgd_NAME_main(int argc, char **argv);   argv[0] is the subcommand's name
 *   void lgd_NAME_usage(FILE *out);
 * and returns the exit statuses of tool.h (0 success, 1 error, 2 bad usage). To add
 * one: write its files on the shared module (tool.h), declare the two functions
 * below, add a row to the table in main.c and the files to examples/lgd/meson.build.
 */
#ifndef LGD_TOOL_COMMANDS_H
#define LGD_TOOL_COMMANDS_H

#include <stdio.h>

/* lgd mixture: the paper's 1-D Gaussian-mixture experiment (mixture.c). */
int lgd_mixture_main(int argc, char **argv);
void lgd_mixture_usage(FILE *out);

/* lgd trajectory: the paper's controllable trajectory synthesis, Sec. 6.3
 * (trajectory.c). */
int lgd_trajectory_main(int argc, char **argv);
void lgd_trajectory_usage(FILE *out);

/* lgd sample: guided sampling of any model with any loss, .npy in and out, MPI scale-out
 * (sample.c). */
int lgd_sample_main(int argc, char **argv);
void lgd_sample_usage(FILE *out);

/* lgd superres: the paper's image super-resolution, Sec. 6.2, on the shipped digits
 * models (superres.c). */
int lgd_superres_main(int argc, char **argv);
void lgd_superres_usage(FILE *out);

/* lgd classcond: the paper's label-conditional generation, Sec. 6.4, on the shipped
 * digits models (classcond.c). */
int lgd_classcond_main(int argc, char **argv);
void lgd_classcond_usage(FILE *out);

#endif /* LGD_COMMANDS_H */
