/*
 * test_npy.c - the .npy module (examples/npy/npy.h): files NumPy wrote (every dtype,
 * format versions 1.0, 2.0 and 3.0, a scalar) read to their exact values, write/read
 * round trips bit for bit, the written header byte for byte, and refusals: malformed
 * headers, unsupported dtypes and orders, truncated and overlong files (every prefix of
 * a valid file), shapes whose size overflows, values outside float32, write failures
 * that leave the destination untouched.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"

/* Written by NumPy 2.4.6 (np.save / np.lib.format.write_array), byte for byte. */
static const unsigned char np_f4_v1[152] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x20,
    0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x50, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x6f, 0x12, 0x83, 0x3a, 0x00, 0x00, 0xe0, 0xc0,
};
static const unsigned char np_f8_v1[176] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x38, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x20,
    0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xe0, 0x4d, 0x62, 0x50, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1c, 0xc0,
};
static const unsigned char np_u1_v1[132] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x7c, 0x75, 0x31, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x34, 0x2c, 0x29,
    0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x01, 0xff, 0x07,
};
static const unsigned char np_b1_v1[131] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x7c, 0x62, 0x31, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x33, 0x2c, 0x29,
    0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x01, 0x00, 0x01,
};
static const unsigned char np_f4_v2[152] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x02, 0x00, 0x74, 0x00, 0x00, 0x00, 0x7b, 0x27, 0x64, 0x65,
    0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f,
    0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61,
    0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32,
    0x2c, 0x20, 0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x50, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x6f, 0x12, 0x83, 0x3a, 0x00, 0x00, 0xe0, 0xc0,
};
static const unsigned char np_f4_v3[152] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x03, 0x00, 0x74, 0x00, 0x00, 0x00, 0x7b, 0x27, 0x64, 0x65,
    0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f,
    0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61,
    0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32,
    0x2c, 0x20, 0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x50, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x6f, 0x12, 0x83, 0x3a, 0x00, 0x00, 0xe0, 0xc0,
};
static const unsigned char np_scalar_f4[132] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x29, 0x2c, 0x20,
    0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0x20, 0x40,
};

/* The values all the NumPy images above hold (the f4 and f8 ones, as float32). */
static const float np_values[6] = { 1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f };

static char g_dir[64];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/lgd-npy-XXXXXX");
    ck_assert_msg(mkdtemp(g_dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path_in_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    if (n) /* fwrite's buffer must not be NULL, even for 0 bytes */
        ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *n = len;
    return buf;
}

/* Reads an image both from memory and from a file; both must agree. Returns the
 * memory read's status; on success *data (caller frees) / shape / ndim are set. */
static int read_both(const unsigned char *img, size_t n, float **data, int64_t *shape,
                     int *ndim, char *err, size_t errlen)
{
    char path[128];
    path_in_dir(path, sizeof path, "img.npy");
    write_file(path, img, n);
    float *fd = NULL;
    int64_t fshape[LGD_NPY_MAX_NDIM];
    int fndim = -1;
    char ferr[512] = "";
    int frc = lgd_npy_read(path, &fd, fshape, &fndim, ferr, sizeof ferr);
    int mrc = lgd_npy_read_memory(img, n, "img", data, shape, ndim, err, errlen);
    ck_assert_msg((frc == 0) == (mrc == 0), "file read %d (%s), memory read %d (%s)", frc,
                  ferr, mrc, err);
    if (frc == 0) {
        ck_assert_int_eq(fndim, *ndim);
        size_t count = 1;
        for (int i = 0; i < LGD_NPY_MAX_NDIM; ++i) {
            ck_assert_int_eq(fshape[i], shape[i]);
            if (i < *ndim)
                count *= (size_t)shape[i];
        }
        ck_assert_int_eq(memcmp(fd, *data, count * sizeof(float)), 0);
        free(fd);
    } else {
        ck_assert_ptr_null(fd);
        ck_assert_int_eq(fndim, 0);
        ck_assert_msg(strstr(ferr, path) != NULL, "file message does not name the file: %s",
                      ferr);
        ck_assert_msg(strstr(err, "img") != NULL, "memory message has no name: %s", err);
    }
    return mrc;
}

START_TEST(reads_numpy_files)
{
    static const struct {
        const unsigned char *img;
        size_t n;
        const char *what;
    } imgs[] = {
        { np_f4_v1, sizeof np_f4_v1, "<f4 v1.0" },
        { np_f8_v1, sizeof np_f8_v1, "<f8 v1.0" },
        { np_f4_v2, sizeof np_f4_v2, "<f4 v2.0" },
        { np_f4_v3, sizeof np_f4_v3, "<f4 v3.0" },
    };
    for (size_t k = 0; k < sizeof imgs / sizeof imgs[0]; ++k) {
        float *d;
        int64_t shape[LGD_NPY_MAX_NDIM];
        int ndim;
        char err[512] = "";
        ck_assert_msg(read_both(imgs[k].img, imgs[k].n, &d, shape, &ndim, err, sizeof err) == 0,
                      "%s: %s", imgs[k].what, err);
        ck_assert_int_eq(ndim, 2);
        ck_assert_int_eq(shape[0], 2);
        ck_assert_int_eq(shape[1], 3);
        for (int i = 2; i < LGD_NPY_MAX_NDIM; ++i)
            ck_assert_int_eq(shape[i], 0);
        for (int i = 0; i < 6; ++i)
            ck_assert_msg(d[i] == np_values[i], "%s [%d]: %.9g != %.9g", imgs[k].what, i,
                          (double)d[i], (double)np_values[i]);
        free(d);
    }
}
END_TEST

START_TEST(reads_u1_b1_and_scalars)
{
    float *d;
    int64_t shape[LGD_NPY_MAX_NDIM];
    int ndim;
    char err[512] = "";
    ck_assert_msg(read_both(np_u1_v1, sizeof np_u1_v1, &d, shape, &ndim, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 4);
    ck_assert(d[0] == 0.0f && d[1] == 1.0f && d[2] == 255.0f && d[3] == 7.0f);
    free(d);
    ck_assert_msg(read_both(np_b1_v1, sizeof np_b1_v1, &d, shape, &ndim, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 3);
    ck_assert(d[0] == 1.0f && d[1] == 0.0f && d[2] == 1.0f);
    free(d);
    ck_assert_msg(read_both(np_scalar_f4, sizeof np_scalar_f4, &d, shape, &ndim, err,
                            sizeof err) == 0, "%s", err);
    ck_assert_int_eq(ndim, 0);
    ck_assert_int_eq(shape[0], 0);
    ck_assert(d[0] == 2.5f);
    free(d);
}
END_TEST

/* An image of the given version with this header text (padded as NumPy pads it) and
 * data bytes; returns its malloc'd bytes and length. */
static unsigned char *make_image(int major, const char *dict, const void *data, size_t nbytes,
                                 size_t *len)
{
    size_t lb = major == 1 ? 2 : 4, pre = 8 + lb, dlen = strlen(dict);
    size_t total = (pre + dlen + 1 + 63) / 64 * 64, hlen = total - pre;
    unsigned char *img = malloc(total + nbytes + 1);
    ck_assert_ptr_nonnull(img);
    memcpy(img, "\x93NUMPY", 6);
    img[6] = (unsigned char)major;
    img[7] = 0;
    for (size_t i = 0; i < lb; ++i)
        img[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(img + pre, dict, dlen);
    memset(img + pre + dlen, ' ', hlen - dlen - 1);
    img[total - 1] = '\n';
    if (nbytes)
        memcpy(img + total, data, nbytes);
    *len = total + nbytes;
    return img;
}

/* Reads an image; asserts failure with a message containing want. */
static void expect_refused(const unsigned char *img, size_t n, const char *want)
{
    float *d = (float *)1;
    int64_t shape[LGD_NPY_MAX_NDIM];
    int ndim = 5;
    char err[512] = "";
    int rc = read_both(img, n, &d, shape, &ndim, err, sizeof err);
    ck_assert_msg(rc != 0, "accepted; expected a refusal with \"%s\"", want);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(ndim, 0);
    ck_assert_msg(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
}

static void expect_dict_refused(const char *dict, size_t nbytes, const char *want)
{
    unsigned char zeros[64] = { 0 };
    ck_assert_uint_le(nbytes, sizeof zeros);
    size_t n;
    unsigned char *img = make_image(1, dict, zeros, nbytes, &n);
    expect_refused(img, n, want);
    free(img);
}

static void expect_dict_accepted(const char *dict, size_t nbytes, int want_ndim)
{
    unsigned char zeros[64] = { 0 };
    size_t n;
    unsigned char *img = make_image(1, dict, zeros, nbytes, &n);
    float *d;
    int64_t shape[LGD_NPY_MAX_NDIM];
    int ndim;
    char err[512] = "";
    ck_assert_msg(read_both(img, n, &d, shape, &ndim, err, sizeof err) == 0, "%s: %s", dict,
                  err);
    ck_assert_int_eq(ndim, want_ndim);
    free(d);
    free(img);
}

START_TEST(header_grammar)
{
    /* accepted spellings: key order, double quotes, trailing commas, Python 2's 'L' */
    expect_dict_accepted("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", 8, 1);
    expect_dict_accepted("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1, 2,), }",
                         8, 2);
    expect_dict_accepted("{'descr':'<f8','fortran_order':False,'shape':(1L, 1L)}", 8, 2);
    expect_dict_accepted("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0, 2);
    expect_dict_accepted("{'descr': '<f4', 'fortran_order': False, "
                         "'shape': (1, 1, 1, 1, 1, 1, 1, 2), }", 8, 8);
    /* refusals, each with its reason */
    expect_dict_refused("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8,
                        "fortran_order True is not supported");
    expect_dict_refused("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
                        "unsupported .npy dtype '>f4'");
    expect_dict_refused("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8,
                        "unsupported .npy dtype '<i4'");
    expect_dict_refused("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
                        "structured");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False}", 8, "missing key 'shape'");
    expect_dict_refused("{'fortran_order': False, 'shape': (2,)}", 8, "missing key 'descr'");
    expect_dict_refused("{'descr': '<f4', 'shape': (2,)}", 8, "missing key 'fortran_order'");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8,
                        "unexpected key 'x'");
    expect_dict_refused("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2,)}", 8, "'descr' given twice");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", 8,
                        "not a tuple");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", 8,
                        "expected '('");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", 8,
                        "negative dimension");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a')}", 8,
                        "expected a dimension");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 8,
                        "must be True or False");
    expect_dict_refused("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", 8,
                        "expected '}' or ','");
    expect_dict_refused("{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", 8,
                        "expected ':'");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8,
                        "unexpected text after the dictionary");
    expect_dict_refused("{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", 8,
                        "expected '}'");
    expect_dict_refused("['descr', '<f4']", 8, "expected '{'");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 2), }", 8,
                        "more than 8 dimensions");
    /* sizes that overflow: a dimension beyond int64, products beyond size_t */
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (99999999999999999999,)}", 8, "does not fit 64 bits");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (4294967296, 4294967296)}", 8, "overflows");
    expect_dict_refused("{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (2305843009213693952,)}", 8, "overflows");
    /* a size that fits but is not in the file: refused before any allocation */
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (1000000000000,)}", 8, "truncated");
}
END_TEST

START_TEST(bad_preambles)
{
    unsigned char img[sizeof np_f4_v1];
    memcpy(img, np_f4_v1, sizeof img);
    img[1] = 'X';
    expect_refused(img, sizeof img, "not a .npy file");
    memcpy(img, np_f4_v1, sizeof img);
    img[6] = 4;
    expect_refused(img, sizeof img, "unsupported .npy format version 4.0");
    memcpy(img, np_f4_v1, sizeof img);
    img[7] = 1;
    expect_refused(img, sizeof img, "unsupported .npy format version 1.1");
    /* a header length beyond the file */
    memcpy(img, np_f4_v1, sizeof img);
    img[8] = 0xff;
    img[9] = 0xff;
    expect_refused(img, sizeof img, "truncated");
    /* a version 2.0 header length of 4 GiB - 1: refused before it is allocated */
    unsigned char v2[sizeof np_f4_v2];
    memcpy(v2, np_f4_v2, sizeof v2);
    v2[8] = v2[9] = v2[10] = v2[11] = 0xff;
    expect_refused(v2, sizeof v2, "");
    expect_refused(NULL, 0, "not a .npy file");
}
END_TEST

START_TEST(truncated_and_overlong)
{
    /* every proper prefix of valid files is refused, from memory and from a file */
    const unsigned char *imgs[] = { np_f4_v1, np_f8_v1, np_u1_v1, np_f4_v2, np_scalar_f4 };
    const size_t lens[] = { sizeof np_f4_v1, sizeof np_f8_v1, sizeof np_u1_v1, sizeof np_f4_v2,
                            sizeof np_scalar_f4 };
    for (size_t k = 0; k < 5; ++k) {
        for (size_t n = 0; n < lens[k]; ++n)
            expect_refused(imgs[k], n, n < 8 ? "not a .npy file" : "");
        unsigned char *longer = malloc(lens[k] + 1);
        ck_assert_ptr_nonnull(longer);
        memcpy(longer, imgs[k], lens[k]);
        longer[lens[k]] = 0;
        expect_refused(longer, lens[k] + 1, "malformed .npy file");
        free(longer);
    }
    expect_refused(np_f4_v1, sizeof np_f4_v1 - 1, "truncated .npy file");
}
END_TEST

START_TEST(bad_values)
{
    double big[2] = { 1.0, 1e39 };
    unsigned char bytes[16];
    for (int i = 0; i < 2; ++i) {
        uint64_t u;
        memcpy(&u, &big[i], 8);
        for (int b = 0; b < 8; ++b)
            bytes[8 * i + b] = (unsigned char)(u >> (8 * b));
    }
    size_t n;
    unsigned char *img = make_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                    bytes, 16, &n);
    expect_refused(img, n, "element 1 (1e+39) is outside the float32 range");
    free(img);
    /* infinities and NaN are carried over, not refused */
    double special[3] = { INFINITY, -INFINITY, NAN };
    for (int i = 0; i < 3; ++i) {
        uint64_t u;
        memcpy(&u, &special[i], 8);
        for (int b = 0; b < 8; ++b)
            bytes[b] = (unsigned char)(u >> (8 * b));
        img = make_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", bytes, 8,
                         &n);
        float *d;
        int64_t shape[LGD_NPY_MAX_NDIM];
        int ndim;
        char err[256] = "";
        ck_assert_msg(read_both(img, n, &d, shape, &ndim, err, sizeof err) == 0, "%s", err);
        ck_assert(i == 2 ? isnan(d[0]) : d[0] == (float)special[i]);
        free(d);
        free(img);
    }
    unsigned char b1[3] = { 1, 0, 2 };
    img = make_image(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b1, 3, &n);
    expect_refused(img, n, "element 2 of a bool array is 2, not 0 or 1");
    free(img);
}
END_TEST

/* Writes and reads back; asserts the bits and shape survive. */
static void round_trip(const int64_t *shape, int ndim, const float *data, size_t count)
{
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "rt.npy");
    ck_assert_msg(lgd_npy_write(path, data, shape, ndim, err, sizeof err) == 0, "%s", err);
    float *back;
    int64_t bshape[LGD_NPY_MAX_NDIM];
    int bndim;
    ck_assert_msg(lgd_npy_read(path, &back, bshape, &bndim, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(bndim, ndim);
    for (int i = 0; i < ndim; ++i)
        ck_assert_int_eq(bshape[i], shape[i]);
    ck_assert_ptr_nonnull(back);
    for (size_t i = 0; i < count; ++i) {
        uint32_t a, b;
        memcpy(&a, &back[i], 4);
        memcpy(&b, &data[i], 4);
        ck_assert_msg(a == b, "element %zu of %zu: bits %08x read back, %08x written", i, count,
                      (unsigned)a, (unsigned)b);
    }
    free(back);
    /* the file's size is the header (a multiple of 64) plus the data */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(((size_t)st.st_size - count * 4) % 64, 0);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_msg(access(tmp, F_OK) != 0, "%s left behind", tmp);
}

START_TEST(write_round_trips)
{
    float vals[4096];
    uint32_t s = 12345u;
    for (size_t i = 0; i < 4096; ++i) {
        s = s * 1664525u + 1013904223u;
        uint32_t bits = s;
        if ((bits & 0x7f800000u) == 0x7f800000u)
            bits &= 0xbfffffffu; /* no NaN payload games: NaNs are tested below */
        memcpy(&vals[i], &bits, 4);
    }
    vals[0] = INFINITY;
    vals[1] = -0.0f;
    vals[2] = FLT_MIN / 4; /* subnormal */
    vals[3] = FLT_MAX;
    const int64_t s0[1] = { 0 };
    const int64_t s1[1] = { 4096 };
    const int64_t s3[3] = { 4, 32, 32 };
    const int64_t s8[8] = { 2, 2, 2, 2, 2, 2, 2, 32 };
    const int64_t sz[2] = { 3, 0 };
    round_trip(NULL, 0, vals, 1);
    round_trip(s0, 1, vals, 0);
    round_trip(sz, 2, NULL, 0);
    round_trip(s1, 1, vals, 4096);
    round_trip(s3, 3, vals, 4096);
    round_trip(s8, 8, vals, 4096);
    float nan = NAN;
    round_trip(NULL, 0, &nan, 1);
}
END_TEST

static int has_text(const unsigned char *buf, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; ++i)
        if (memcmp(buf + i, text, n) == 0)
            return 1;
    return 0;
}

START_TEST(written_header_bytes)
{
    /* the file NumPy writes for this array, byte for byte (NumPy 2 pads its headers for
     * growth; for this shape both pad to 128 bytes) */
    const int64_t shape[2] = { 2, 3 };
    unsigned char hdr[LGD_NPY_MAX_HEADER];
    size_t len = 0;
    char err[256] = "";
    ck_assert_msg(lgd_npy_header_f4(shape, 2, hdr, sizeof hdr, &len, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_uint_eq(len, 128);
    ck_assert_int_eq(memcmp(hdr, np_f4_v1, 128), 0);
    char path[128];
    path_in_dir(path, sizeof path, "same.npy");
    ck_assert_msg(lgd_npy_write(path, np_values, shape, 2, err, sizeof err) == 0, "%s", err);
    size_t n;
    unsigned char *bytes = slurp(path, &n);
    ck_assert_uint_eq(n, sizeof np_f4_v1);
    ck_assert_int_eq(memcmp(bytes, np_f4_v1, n), 0);
    free(bytes);
    /* the same for a scalar */
    path_in_dir(path, sizeof path, "scalar.npy");
    const float two_and_half = 2.5f;
    ck_assert_msg(lgd_npy_write(path, &two_and_half, NULL, 0, err, sizeof err) == 0, "%s", err);
    bytes = slurp(path, &n);
    ck_assert_uint_eq(n, sizeof np_scalar_f4);
    ck_assert_int_eq(memcmp(bytes, np_scalar_f4, n), 0);
    free(bytes);
    /* a short header: padded to 64 bytes, ending in '\n' */
    const int64_t five[1] = { 5 };
    ck_assert_int_eq(lgd_npy_header_f4(five, 1, hdr, sizeof hdr, &len, err, sizeof err), 0);
    ck_assert_uint_eq(len, 128);
    ck_assert_int_eq(hdr[8] + 256 * hdr[9], 118);
    ck_assert_int_eq(hdr[127], '\n');
    /* one dimension: "(5,)"; none: "()" */
    const int64_t one[1] = { 5 };
    ck_assert_int_eq(lgd_npy_header_f4(one, 1, hdr, sizeof hdr, &len, err, sizeof err), 0);
    ck_assert(has_text(hdr, len, "'shape': (5,), }"));
    ck_assert_int_eq(lgd_npy_header_f4(NULL, 0, hdr, sizeof hdr, &len, err, sizeof err), 0);
    ck_assert(has_text(hdr, len, "'shape': (), }"));
    /* the largest header fits LGD_NPY_MAX_HEADER */
    const int64_t huge[8] = { 1, 1, 1, 1, 1, 1, 1, INT64_MAX };
    ck_assert_int_eq(lgd_npy_header_f4(huge, 8, hdr, sizeof hdr, &len, err, sizeof err), 1);
    ck_assert_ptr_nonnull(strstr(err, "overflows"));
    const int64_t wide[8] = { 1000000000000000, 1, 1, 1, 1, 1, 1, 1 };
    ck_assert_int_eq(lgd_npy_header_f4(wide, 8, hdr, sizeof hdr, &len, err, sizeof err), 0);
    ck_assert_uint_le(len, LGD_NPY_MAX_HEADER);
    ck_assert_int_eq(len % 64, 0);
    /* a buffer too small */
    ck_assert_int_eq(lgd_npy_header_f4(shape, 2, hdr, 127, &len, err, sizeof err), 1);
    ck_assert_ptr_nonnull(strstr(err, "needs 128 bytes"));
}
END_TEST

START_TEST(write_refusals)
{
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "keep.npy");
    const float v[2] = { 1.0f, 2.0f };
    const int64_t s2[1] = { 2 };
    ck_assert_int_eq(lgd_npy_write(path, v, s2, 1, err, sizeof err), 0);
    size_t n0;
    unsigned char *before = slurp(path, &n0);

    const int64_t neg[1] = { -1 };
    const int64_t over[2] = { INT64_MAX, 2 };
    const int64_t nine[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    ck_assert_int_ne(lgd_npy_write(path, v, neg, 1, err, sizeof err), 0);
    ck_assert_msg(strstr(err, path) && strstr(err, "negative"), "%s", err);
    ck_assert_int_ne(lgd_npy_write(path, v, over, 2, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "overflows"), "%s", err);
    ck_assert_int_ne(lgd_npy_write(path, v, nine, 9, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "ndim 9"), "%s", err);
    ck_assert_int_ne(lgd_npy_write(path, NULL, s2, 1, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "data is NULL"), "%s", err);
    ck_assert_int_ne(lgd_npy_write(NULL, v, s2, 1, err, sizeof err), 0);
    /* the destination is untouched by the refusals */
    size_t n1;
    unsigned char *after = slurp(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_int_eq(memcmp(before, after, n0), 0);
    free(after);
    free(before);
    /* a directory that does not exist: the message names the file and the reason */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.npy", g_dir);
    ck_assert_int_ne(lgd_npy_write(bad, v, s2, 1, err, sizeof err), 0);
    ck_assert_msg(strstr(err, bad) && strstr(err, strerror(ENOENT)), "%s", err);
    /* reading: a missing file, NULL outputs, a small err buffer */
    float *d = NULL;
    int64_t shape[LGD_NPY_MAX_NDIM];
    int ndim;
    ck_assert_int_ne(lgd_npy_read(bad, &d, shape, &ndim, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "cannot open") && strstr(err, strerror(ENOENT)), "%s", err);
    ck_assert_int_ne(lgd_npy_read(path, NULL, shape, &ndim, err, sizeof err), 0);
    char small[8];
    ck_assert_int_ne(lgd_npy_read(bad, &d, shape, &ndim, small, sizeof small), 0);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_ne(lgd_npy_read(bad, &d, shape, &ndim, NULL, 0), 0);
}
END_TEST

static Suite *npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, reads_numpy_files);
    tcase_add_test(tc, reads_u1_b1_and_scalars);
    tcase_add_test(tc, header_grammar);
    tcase_add_test(tc, bad_preambles);
    tcase_add_test(tc, truncated_and_overlong);
    tcase_add_test(tc, bad_values);
    tcase_add_test(tc, write_round_trips);
    tcase_add_test(tc, written_header_bytes);
    tcase_add_test(tc, write_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(npy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
