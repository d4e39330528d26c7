/*
 * tooltest.h - helpers of the tests that run the `lgd` tool ($LGD_TOOL, set by meson).
 */
#ifndef LGD_TOOLTEST_H
#define LGD_TOOLTEST_H

#include <stddef.h>

/* The built tool's path from $LGD_TOOL (fails the test when unset). */
const char *tt_tool_path(void);
/* Runs args (NULL-terminated, args[0] the tool) with stdout and stderr to log; returns
 * its exit status (fails the test if it cannot run or does not exit normally). */
int tt_run_tool(const char *log, char *const *args);
/* A whole file as a malloc'd string (caller frees); its length into *size if not NULL. */
char *tt_slurp(const char *path, size_t *size);
/* Asserts dir/name is a non-trivial SVG document. */
void tt_check_svg(const char *dir, const char *name);
/* Removes dir and the plain files in it. */
void tt_remove_dir(const char *dir);

#endif
