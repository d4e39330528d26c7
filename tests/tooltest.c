/*
 * tooltest.c - running the `lgd` tool as a child process and checking its files, for
 * the tool tests (test_reproduction.c, test_trajectory_tool.c).
 */
#include "tooltest.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The child gets OMP_NUM_THREADS=1 unless the environment sets it: on a 2-core machine
 * where another test keeps a core busy, OpenBLAS's OpenMP threads (which the context's
 * thread count does not reach) can make the tool very slow. */
const char *tt_tool_path(void)
{
    const char *p = getenv("LGD_TOOL");
    ck_assert_msg(p && *p, "LGD_TOOL is not set (meson test sets it to the built lgd)");
    return p;
}

/* Runs the tool with args (NULL-terminated, args[0] the tool), stdout and stderr to log;
 * returns its exit status. */
int tt_run_tool(const char *log, char *const *args)
{
    setenv("OMP_NUM_THREADS", "1", 0);
    posix_spawn_file_actions_t fa;
    ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
    ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC,
                                                      0644), 0);
    ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, args[0], &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_msg(rc == 0, "cannot run %s: %s", args[0], strerror(rc));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    ck_assert_msg(WIFEXITED(status), "%s did not exit normally", args[0]);
    return WEXITSTATUS(status);
}

/* Reads a whole file into a malloc'd string (caller frees). */
char *tt_slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (size)
        *size = (size_t)n;
    return buf;
}

void tt_check_svg(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    char *text = tt_slurp(path, &n);
    ck_assert_msg(n > 100, "%s is nearly empty", name);
    ck_assert_msg(!strncmp(text, "<?xml", 5) || !strncmp(text, "<svg", 4), "%s: not SVG", name);
    ck_assert_msg(strstr(text, "<svg") && strstr(text, "</svg>"), "%s: no <svg> element", name);
    free(text);
}

/* Removes dir and the plain files in it. */
void tt_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[8192];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int n = snprintf(path, sizeof path, "%.4095s/%.255s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof path)
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}
