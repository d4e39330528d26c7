/*
 * sample_png.c - the PNG writer of lgd sample (--png), with libpng (Debian: libpng-dev).
 * A build without libpng (meson finds none) compiles the stub at the end, which says so;
 * lgd sample then refuses --png as bad usage.
 */
#include "sample.h"

#include <string.h>

#if defined(LGD_TOOL_HAVE_PNG) && LGD_TOOL_HAVE_PNG

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>

int sample_png_available(void)
{
    return 1;
}

/* libpng's errors: the message into the writer's buffer, then back to setjmp. */
typedef struct png_failure {
    char *err;
    size_t errlen;
} png_failure;

static void on_error(png_structp png, png_const_charp msg)
{
    png_failure *f = png_get_error_ptr(png);
    snprintf(f->err, f->errlen, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings are not errors: the file is still written */
}

int sample_png_write(const char *path, const unsigned char *pixels, int width, int height,
                     int channels, char *err, size_t errlen)
{
    png_failure failure = { err, errlen };
    FILE *volatile f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_error,
                                              on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        snprintf(err, errlen, "libpng: out of memory");
        png_destroy_write_struct(&png, NULL);
        fclose(f);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int bad = ferror(f);
    if (fclose(f) != 0)
        bad = 1;
    if (bad) {
        snprintf(err, errlen, "write error: %s", strerror(errno));
        return -1;
    }
    return 0;
}

#else /* no libpng */

int sample_png_available(void)
{
    return 0;
}

int sample_png_write(const char *path, const unsigned char *pixels, int width, int height,
                     int channels, char *err, size_t errlen)
{
    (void)path;
    (void)pixels;
    (void)width;
    (void)height;
    (void)channels;
    snprintf(err, errlen, "this lgd was built without libpng");
    return -1;
}

#endif
