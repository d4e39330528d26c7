/*
 * tool_output.c - the shared module's output files (tool.h): the output directory,
 * CSV (or any text) files and SVG figures, each failure reported once on stderr.
 */
#include "tool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "svg_plot.h"

/* Creates directory `path` and its missing parents (like mkdir -p). 0 or -1 (errno). */
static int make_dirs(const char *path)
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

int tool_make_out_dir(const char *cmd, const char *dir)
{
    if (make_dirs(dir) == 0)
        return 0;
    fprintf(stderr, "lgd %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
    return 1;
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

int tool_file_open(tool_file *file, const char *cmd, const char *dir, const char *name,
                   const char *header)
{
    file->f = NULL;
    file->cmd = cmd;
    if (out_path(cmd, file->path, sizeof file->path, dir, name))
        return 1;
    file->f = fopen(file->path, "w");
    if (!file->f) {
        fprintf(stderr, "lgd %s: cannot write %s: %s\n", cmd, file->path, strerror(errno));
        return 1;
    }
    if (header)
        fprintf(file->f, "%s\n", header);
    return 0;
}

int tool_file_close(tool_file *file)
{
    int bad = ferror(file->f);
    if (fclose(file->f) != 0)
        bad = 1;
    file->f = NULL;
    if (bad)
        fprintf(stderr, "lgd %s: error writing %s\n", file->cmd, file->path);
    return bad;
}

void tool_file_abandon(tool_file *file)
{
    if (file->f)
        fclose(file->f);
    file->f = NULL;
}

int tool_write_svg(const char *cmd, const char *dir, const struct svg_figure *fig,
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
