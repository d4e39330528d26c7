/*
 * image_png.c - PNG grids of 8x8 images for the image experiments (image.h), written
 * with lgd sample's PNG writer (sample_png.c: libpng, or a stub that says it is absent).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "sample.h"

/* Pixels between tiles. */
#define IMG_GAP 2

int img_png_available(void)
{
    return sample_png_available();
}

int img_write_png_grid(const char *cmd, const char *dir, const char *name,
                       const float *const *tiles, int rows, int cols, int zoom)
{
    const int tile = IMG_SIDE * zoom;
    const int width = cols * tile + (cols + 1) * IMG_GAP;
    const int height = rows * tile + (rows + 1) * IMG_GAP;
    unsigned char *px = malloc((size_t)width * (size_t)height);
    if (!px)
        return tool_out_of_memory(cmd);
    memset(px, 255, (size_t)width * (size_t)height);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            const float *t = tiles[r * cols + c];
            if (!t)
                continue; /* no tile: background */
            int x0 = IMG_GAP + c * (tile + IMG_GAP), y0 = IMG_GAP + r * (tile + IMG_GAP);
            for (int i = 0; i < IMG_SIDE; i++) {
                for (int j = 0; j < IMG_SIDE; j++) {
                    float v = t[i * IMG_SIDE + j];
                    /* [-1, 1] -> 0..255; NaN (a failed sample): mid-grey */
                    unsigned char g = 128;
                    if (!isnan(v)) {
                        double u = (fmin(fmax((double)v, -1.0), 1.0) + 1.0) * 127.5;
                        g = (unsigned char)lround(u);
                    }
                    for (int a = 0; a < zoom; a++)
                        memset(px + (size_t)(y0 + i * zoom + a) * (size_t)width +
                                   (size_t)(x0 + j * zoom),
                               g, (size_t)zoom);
                }
            }
        }
    }
    char path[IMG_PATH_MAX + 256], err[512];
    int rc = 0;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, "lgd %s: output path too long: %s/%s\n", cmd, dir, name);
        rc = 1;
    } else if (sample_png_write(path, px, width, height, 1, err, sizeof err)) {
        fprintf(stderr, "lgd %s: cannot write %s: %s\n", cmd, path, err);
        rc = 1;
    }
    free(px);
    return rc;
}
