/*
 * sample_output.c - lgd sample's output files. Each is written under a temporary name
 * (NAME.tmp) and renamed when complete, so that a failed run leaves nothing half-written
 * under an output name:
 *   --out FILE.npy          [rows][row shape] float32 (the npy module: lgd_npy_write)
 *   --diagnostics FILE.csv  one line per sampler step, summed over every row of the run
 *   --png FILE.png          a grid of the first samples of an image model
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "sample.h"

int sample_tmp_path(const char *path, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s.tmp", path);
    if (n < 0 || (size_t)n >= size)
        return sample_usage_error("output path too long: %s", path);
    return 0;
}

int sample_commit(const char *tmp, const char *path)
{
    if (rename(tmp, path) == 0)
        return 0;
    int e = errno;
    unlink(tmp);
    return sample_run_error("cannot rename %s to %s: %s", tmp, path, strerror(e));
}

/* [rows] + the model's row shape into shape; returns ndim. */
static int output_shape(const sample_model *m, int64_t rows, int64_t *shape)
{
    shape[0] = rows;
    for (int i = 0; i < m->row_ndim; i++)
        shape[1 + i] = m->row_shape[i];
    return 1 + m->row_ndim;
}

int sample_write_npy(const char *path, const sample_model *m, int64_t rows, const float *x)
{
    int64_t shape[8];
    char err[512] = "";
    int nd = output_shape(m, rows, shape);
    if (lgd_npy_write(path, x, shape, nd, err, sizeof err) != 0)
        return sample_run_error("cannot write %s: %s", path, err[0] ? err : "unknown error");
    return 0;
}

int sample_npy_header(const sample_model *m, int64_t rows, char **header, size_t *len)
{
    int64_t shape[8];
    char err[512] = "";
    int nd = output_shape(m, rows, shape);
    unsigned char *buf = malloc(LGD_NPY_MAX_HEADER);
    if (!buf)
        return tool_out_of_memory(CMD);
    if (lgd_npy_header_f4(shape, nd, buf, LGD_NPY_MAX_HEADER, len, err, sizeof err) != 0) {
        free(buf);
        return sample_run_error("cannot make the .npy header: %s", err);
    }
    *header = (char *)buf;
    return 0;
}

/* Closes f (opened on tmp_path) and reports a write error; removes tmp_path on error. */
static int close_tmp(FILE *f, const char *tmp_path)
{
    int bad = ferror(f);
    int e = errno;
    if (fclose(f) != 0) {
        bad = 1;
        e = errno;
    }
    if (!bad)
        return 0;
    unlink(tmp_path);
    return sample_run_error("error writing %s: %s", tmp_path, strerror(e));
}

int sample_write_diagnostics(const char *tmp_path, const sample_diag *d)
{
    FILE *f = fopen(tmp_path, "w");
    if (!f)
        return sample_run_error("cannot write %s: %s", tmp_path, strerror(errno));
    fprintf(f, "step,sigma,sigma_next,rows,active_rows,mean_loss,mean_ess,min_ess,"
               "mean_grad_norm,mean_lambda\n");
    for (int32_t i = 0; i < d->steps; i++) {
        const double r = d->rows[i] > 0.0 ? d->rows[i] : 1.0;
        fprintf(f, "%d,%.9g,%.9g,%.0f,%.0f,%.9g,%.9g,%.9g,%.9g,%.9g\n", (int)i,
                (double)d->sigmas[i], (double)d->sigmas[i + 1], d->rows[i], d->active_rows[i],
                d->sum_loss[i] / r, d->sum_ess[i] / r,
                isfinite(d->min_ess[i]) ? d->min_ess[i] : 0.0, d->sum_grad_norm[i] / r,
                d->sum_lambda[i] / r);
    }
    return close_tmp(f, tmp_path);
}

/* A value in [-1, 1] (the usual range of image diffusion models) as a byte, clipped. */
static unsigned char to_byte(float v)
{
    if (!(v > -1.0f))
        return 0;
    if (v >= 1.0f)
        return 255;
    return (unsigned char)lrintf((v + 1.0f) * 127.5f);
}

int sample_write_png(const char *tmp_path, const sample_model *m, int64_t n, const float *x)
{
    const int C = (int)m->row_shape[0], H = (int)m->row_shape[1], W = (int)m->row_shape[2];
    const int out_ch = C >= 3 ? 3 : 1, gap = 2;
    const int zoom = H < 64 && W < 64 ? 64 / (H > W ? H : W) : 1;
    const int th = H * zoom, tw = W * zoom;
    int cols = 1;
    while ((int64_t)cols * cols < n)
        cols++;
    const int rows = (int)((n + cols - 1) / cols);
    const int width = cols * (tw + gap) + gap, height = rows * (th + gap) + gap;
    unsigned char *px = malloc((size_t)width * (size_t)height * (size_t)out_ch);
    char err[256] = "";
    if (!px)
        return tool_out_of_memory(CMD);
    memset(px, 40, (size_t)width * (size_t)height * (size_t)out_ch); /* dark grey gaps */
    const int64_t plane = (int64_t)H * W;
    for (int64_t s = 0; s < n; s++) {
        const float *img = x + s * C * plane;
        const int ox = gap + (int)(s % cols) * (tw + gap), oy = gap + (int)(s / cols) * (th + gap);
        for (int y = 0; y < th; y++)
            for (int xx = 0; xx < tw; xx++) {
                unsigned char *p = px + ((size_t)(oy + y) * (size_t)width + (size_t)(ox + xx)) *
                                            (size_t)out_ch;
                const int64_t at = (int64_t)(y / zoom) * W + xx / zoom;
                for (int k = 0; k < out_ch; k++)
                    p[k] = to_byte(img[k * plane + at]);
            }
    }
    int rc = sample_png_write(tmp_path, px, width, height, out_ch, err, sizeof err);
    free(px);
    if (rc) {
        unlink(tmp_path);
        return sample_run_error("cannot write %s: %s", tmp_path, err);
    }
    return 0;
}
