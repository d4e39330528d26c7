/*
 * npy.c - the .npy reader and writer of npy.h.
 *
 * The format (numpy/lib/format.py, "NEP 1"): the magic "\x93NUMPY", a major and a minor
 * version byte, the header length (2 bytes little-endian in version 1.0, 4 bytes in 2.0
 * and 3.0), then the header: a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n', then the raw elements in the order the header
 * says. The header is parsed here by a small strict parser of exactly that grammar
 * (keys in any order, each once, nothing else), never evaluated.
 */
#ifndef _POSIX_C_SOURCE
#  define _POSIX_C_SOURCE 200809L /* fileno, fsync, fstat */
#endif

#include "npy.h"

#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header longer than this is refused before it is allocated (NumPy's own reader
 * refuses more than 10000 bytes unless told otherwise). */
#define NPY_MAX_HEADER_READ ((size_t)1 << 20)
/* Bytes read or written per chunk of data. A multiple of every element size. */
#define NPY_CHUNK ((size_t)1 << 16)

typedef enum npy_dtype { NPY_F4, NPY_F8, NPY_U1, NPY_B1 } npy_dtype;

typedef struct npy_header {
    npy_dtype dtype;
    size_t itemsize;
    int ndim;
    int64_t shape[LGD_NPY_MAX_NDIM];
    size_t count;      /* product of the shape */
    size_t data_bytes; /* count * itemsize */
    size_t data_offset;
} npy_header;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int mul_size(size_t a, size_t b, size_t *out)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_mul_overflow(a, b, out);
#else
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
#endif
}

static int add_size(size_t a, size_t b, size_t *out)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_add_overflow(a, b, out);
#else
    if (b > SIZE_MAX - a)
        return 1;
    *out = a + b;
    return 0;
#endif
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* The number of elements of a shape, checked: non-zero when a dimension is negative or
 * the product (or the product times itemsize) does not fit. */
static int shape_count(const int64_t *shape, int ndim, size_t itemsize, size_t *count,
                       size_t *bytes)
{
    size_t n = 1;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] < 0 || (uint64_t)shape[i] > (uint64_t)SIZE_MAX)
            return 1;
        if (mul_size(n, (size_t)shape[i], &n))
            return 1;
    }
    if (mul_size(n, itemsize, bytes))
        return 1;
    *count = n;
    return 0;
}

/* ---- the header dictionary ------------------------------------------------------- */

typedef struct hparse {
    const char *s;
    size_t n, i;
    const char *name;
    char *err;
    size_t errlen;
} hparse;

static void skip_ws(hparse *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

static int expect_char(hparse *p, char c, const char *what)
{
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != c) {
        set_err(p->err, p->errlen, "%s: malformed .npy header: expected '%c' %s at byte %zu",
                p->name, c, what, p->i);
        return 1;
    }
    p->i++;
    return 0;
}

/* A Python string literal without escapes, '...' or "...", into out (outlen bytes). */
static int parse_string(hparse *p, char *out, size_t outlen, const char *what)
{
    skip_ws(p);
    if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"')) {
        set_err(p->err, p->errlen, "%s: malformed .npy header: expected a quoted %s at byte %zu",
                p->name, what, p->i);
        return 1;
    }
    char q = p->s[p->i++];
    size_t len = 0;
    while (p->i < p->n && p->s[p->i] != q) {
        char c = p->s[p->i];
        if (c == '\\' || c == '\n' || (unsigned char)c < 0x20) {
            set_err(p->err, p->errlen,
                    "%s: malformed .npy header: unexpected character in the %s at byte %zu",
                    p->name, what, p->i);
            return 1;
        }
        if (len + 1 >= outlen) {
            set_err(p->err, p->errlen, "%s: malformed .npy header: the %s is too long",
                    p->name, what);
            return 1;
        }
        out[len++] = c;
        p->i++;
    }
    if (p->i >= p->n) {
        set_err(p->err, p->errlen, "%s: malformed .npy header: unterminated %s", p->name, what);
        return 1;
    }
    p->i++;
    out[len] = '\0';
    return 0;
}

static int parse_bool(hparse *p, int *out)
{
    skip_ws(p);
    if (p->n - p->i >= 4 && memcmp(p->s + p->i, "True", 4) == 0) {
        p->i += 4;
        *out = 1;
        return 0;
    }
    if (p->n - p->i >= 5 && memcmp(p->s + p->i, "False", 5) == 0) {
        p->i += 5;
        *out = 0;
        return 0;
    }
    set_err(p->err, p->errlen,
            "%s: malformed .npy header: 'fortran_order' must be True or False (byte %zu)",
            p->name, p->i);
    return 1;
}

/* A non-negative decimal integer (Python 2's files may end it with 'L'). */
static int parse_dim(hparse *p, int64_t *out)
{
    skip_ws(p);
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') {
        set_err(p->err, p->errlen, "%s: .npy header: negative dimension in 'shape'", p->name);
        return 1;
    }
    int64_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        int d = p->s[p->i] - '0';
        if (v > (INT64_MAX - d) / 10) {
            set_err(p->err, p->errlen,
                    "%s: .npy header: a dimension in 'shape' does not fit 64 bits", p->name);
            return 1;
        }
        v = v * 10 + d;
        p->i++;
    }
    if (p->i == start) {
        set_err(p->err, p->errlen,
                "%s: malformed .npy header: expected a dimension in 'shape' at byte %zu",
                p->name, p->i);
        return 1;
    }
    if (p->i < p->n && p->s[p->i] == 'L')
        p->i++;
    *out = v;
    return 0;
}

/* A tuple of dimensions: "()", "(3,)", "(3, 4)", "(3, 4,)". */
static int parse_shape(hparse *p, int64_t *shape, int *ndim)
{
    if (expect_char(p, '(', "to open 'shape' (a tuple)"))
        return 1;
    int nd = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ')') {
        p->i++;
        *ndim = 0;
        return 0;
    }
    for (;;) {
        int64_t d;
        if (parse_dim(p, &d))
            return 1;
        if (nd == LGD_NPY_MAX_NDIM) {
            set_err(p->err, p->errlen, "%s: .npy arrays of more than %d dimensions are not supported",
                    p->name, LGD_NPY_MAX_NDIM);
            return 1;
        }
        shape[nd++] = d;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ')') {
            if (nd == 1) {
                set_err(p->err, p->errlen,
                        "%s: malformed .npy header: 'shape' is not a tuple (a one-element "
                        "tuple needs a trailing comma)", p->name);
                return 1;
            }
            p->i++;
            break;
        }
        if (expect_char(p, ',', "between dimensions of 'shape'"))
            return 1;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ')') {
            p->i++;
            break;
        }
    }
    *ndim = nd;
    return 0;
}

static int parse_header_dict(const char *s, size_t n, const char *name, npy_header *h,
                             char *err, size_t errlen)
{
    hparse p = { s, n, 0, name, err, errlen };
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    char descr[32];
    if (expect_char(&p, '{', "at the start of the header"))
        return 1;
    for (;;) {
        skip_ws(&p);
        if (p.i < p.n && p.s[p.i] == '}') {
            p.i++;
            break;
        }
        char key[32];
        if (parse_string(&p, key, sizeof key, "key"))
            return 1;
        if (expect_char(&p, ':', "after a key"))
            return 1;
        if (strcmp(key, "descr") == 0) {
            if (have_descr++) {
                set_err(err, errlen, "%s: malformed .npy header: 'descr' given twice", name);
                return 1;
            }
            skip_ws(&p);
            if (p.i < p.n && p.s[p.i] == '[') {
                set_err(err, errlen, "%s: structured .npy arrays (a 'descr' list) are not "
                        "supported; expected '<f4', '<f8', '|u1' or '|b1'", name);
                return 1;
            }
            if (parse_string(&p, descr, sizeof descr, "'descr'"))
                return 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_order++) {
                set_err(err, errlen, "%s: malformed .npy header: 'fortran_order' given twice",
                        name);
                return 1;
            }
            if (parse_bool(&p, &fortran))
                return 1;
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape++) {
                set_err(err, errlen, "%s: malformed .npy header: 'shape' given twice", name);
                return 1;
            }
            if (parse_shape(&p, h->shape, &h->ndim))
                return 1;
        } else {
            set_err(err, errlen, "%s: malformed .npy header: unexpected key '%s'", name, key);
            return 1;
        }
        skip_ws(&p);
        if (p.i < p.n && p.s[p.i] == ',') {
            p.i++;
            continue;
        }
        if (expect_char(&p, '}', "or ',' after a value"))
            return 1;
        break;
    }
    skip_ws(&p);
    if (p.i != p.n) {
        set_err(err, errlen, "%s: malformed .npy header: unexpected text after the dictionary "
                "(byte %zu)", name, p.i);
        return 1;
    }
    if (!have_descr || !have_order || !have_shape) {
        set_err(err, errlen, "%s: malformed .npy header: missing key '%s'", name,
                !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
        return 1;
    }
    if (fortran) {
        set_err(err, errlen, "%s: fortran_order True is not supported: save the array in C "
                "order (numpy.ascontiguousarray)", name);
        return 1;
    }
    if (strcmp(descr, "<f4") == 0) {
        h->dtype = NPY_F4;
        h->itemsize = 4;
    } else if (strcmp(descr, "<f8") == 0) {
        h->dtype = NPY_F8;
        h->itemsize = 8;
    } else if (strcmp(descr, "|u1") == 0 || strcmp(descr, "<u1") == 0 ||
               strcmp(descr, ">u1") == 0) {
        h->dtype = NPY_U1;
        h->itemsize = 1;
    } else if (strcmp(descr, "|b1") == 0) {
        h->dtype = NPY_B1;
        h->itemsize = 1;
    } else {
        set_err(err, errlen, "%s: unsupported .npy dtype '%s': expected '<f4', '<f8', '|u1' "
                "or '|b1' (little-endian)", name, descr);
        return 1;
    }
    for (int i = h->ndim; i < LGD_NPY_MAX_NDIM; ++i)
        h->shape[i] = 0;
    if (shape_count(h->shape, h->ndim, h->itemsize, &h->count, &h->data_bytes)) {
        set_err(err, errlen, "%s: .npy 'shape' is too large: its size overflows", name);
        return 1;
    }
    return 0;
}

/* The preamble: magic and version in pre[0..7], then the length. Returns the number of
 * bytes of the length field (2 or 4), or 0 with a message. */
static size_t preamble_len_bytes(const unsigned char *pre, size_t have, const char *name,
                                 char *err, size_t errlen)
{
    static const unsigned char magic[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };
    if (have < 8 || memcmp(pre, magic, 6) != 0) {
        set_err(err, errlen, "%s: not a .npy file (no \\x93NUMPY magic)", name);
        return 0;
    }
    if (pre[6] == 1 && pre[7] == 0)
        return 2;
    if ((pre[6] == 2 || pre[6] == 3) && pre[7] == 0)
        return 4;
    set_err(err, errlen, "%s: unsupported .npy format version %u.%u (1.0, 2.0 and 3.0 are "
            "read)", name, (unsigned)pre[6], (unsigned)pre[7]);
    return 0;
}

static size_t read_le(const unsigned char *b, size_t n)
{
    size_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | b[i];
    return v;
}

/* Converts count elements at src (dtype h->dtype) into dst; first is the index of the
 * first one in the array, for messages. */
static int convert(const npy_header *h, const unsigned char *src, size_t count, float *dst,
                   size_t first, const char *name, char *err, size_t errlen)
{
    switch (h->dtype) {
    case NPY_F4:
        for (size_t i = 0; i < count; ++i) {
            const unsigned char *b = src + 4 * i;
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                         (uint32_t)b[3] << 24;
            memcpy(&dst[i], &u, 4);
        }
        return 0;
    case NPY_F8:
        for (size_t i = 0; i < count; ++i) {
            const unsigned char *b = src + 8 * i;
            uint64_t u = 0;
            for (int k = 7; k >= 0; --k)
                u = (u << 8) | b[k];
            double d;
            memcpy(&d, &u, 8);
            if ((d > FLT_MAX && d <= DBL_MAX) || (d < -FLT_MAX && d >= -DBL_MAX)) {
                set_err(err, errlen, "%s: element %zu (%g) is outside the float32 range",
                        name, first + i, d);
                return 1;
            }
            dst[i] = (float)d;
        }
        return 0;
    case NPY_U1:
        for (size_t i = 0; i < count; ++i)
            dst[i] = (float)src[i];
        return 0;
    case NPY_B1:
        for (size_t i = 0; i < count; ++i) {
            if (src[i] > 1) {
                set_err(err, errlen, "%s: element %zu of a bool array is %u, not 0 or 1", name,
                        first + i, (unsigned)src[i]);
                return 1;
            }
            dst[i] = (float)src[i];
        }
        return 0;
    }
    return 1;
}

static void fail_out(float **data, int64_t *shape, int *ndim)
{
    if (data != NULL)
        *data = NULL;
    if (ndim != NULL)
        *ndim = 0;
    if (shape != NULL)
        for (int i = 0; i < LGD_NPY_MAX_NDIM; ++i)
            shape[i] = 0;
}

static float *alloc_floats(size_t count, const char *name, char *err, size_t errlen)
{
    size_t bytes;
    if (mul_size(count == 0 ? 1 : count, sizeof(float), &bytes)) {
        set_err(err, errlen, "%s: the array is too large for this machine", name);
        return NULL;
    }
    float *p = malloc(bytes);
    if (p == NULL)
        set_err(err, errlen, "%s: out of memory for %zu elements", name, count);
    return p;
}

static int check_args(const void *data, const int64_t *shape, const int *ndim, char *err,
                      size_t errlen)
{
    if (data == NULL || shape == NULL || ndim == NULL) {
        set_err(err, errlen, "lgd_npy_read: data, shape and ndim must not be NULL");
        return 1;
    }
    return 0;
}

int lgd_npy_read_memory(const void *bytes, size_t size, const char *name, float **data,
                        int64_t shape[LGD_NPY_MAX_NDIM], int *ndim, char *err, size_t errlen)
{
    if (name == NULL)
        name = "<memory>";
    if (check_args(data, shape, ndim, err, errlen))
        return 1;
    fail_out(data, shape, ndim);
    if (bytes == NULL && size != 0) {
        set_err(err, errlen, "%s: NULL bytes", name);
        return 1;
    }
    const unsigned char *b = bytes;
    size_t lb = preamble_len_bytes(b, size, name, err, errlen);
    if (lb == 0)
        return 1;
    if (size < 8 + lb) {
        set_err(err, errlen, "%s: truncated .npy file (it ends inside the preamble)", name);
        return 1;
    }
    size_t hlen = read_le(b + 8, lb), start = 8 + lb;
    if (hlen > size - start) {
        set_err(err, errlen, "%s: truncated .npy file: the header is %zu bytes, the file has "
                "%zu after the preamble", name, hlen, size - start);
        return 1;
    }
    npy_header h;
    memset(&h, 0, sizeof h);
    if (parse_header_dict((const char *)b + start, hlen, name, &h, err, errlen))
        return 1;
    h.data_offset = start + hlen;
    size_t avail = size - h.data_offset;
    if (avail != h.data_bytes) {
        set_err(err, errlen, "%s: %s .npy file: the header says %zu bytes of data, the file "
                "has %zu", name, avail < h.data_bytes ? "truncated" : "malformed",
                h.data_bytes, avail);
        return 1;
    }
    float *out = alloc_floats(h.count, name, err, errlen);
    if (out == NULL)
        return 1;
    if (convert(&h, b + h.data_offset, h.count, out, 0, name, err, errlen)) {
        free(out);
        return 1;
    }
    *data = out;
    *ndim = h.ndim;
    memcpy(shape, h.shape, sizeof h.shape);
    return 0;
}

int lgd_npy_read(const char *path, float **data, int64_t shape[LGD_NPY_MAX_NDIM], int *ndim,
                 char *err, size_t errlen)
{
    if (check_args(data, shape, ndim, err, errlen))
        return 1;
    fail_out(data, shape, ndim);
    if (path == NULL) {
        set_err(err, errlen, "lgd_npy_read: path must not be NULL");
        return 1;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return 1;
    }
    int rc = 1;
    char *hdr = NULL;
    float *out = NULL;
    unsigned char *chunk = NULL;
    unsigned char pre[12];
    size_t got = fread(pre, 1, 8, f);
    size_t lb = preamble_len_bytes(pre, got, path, err, errlen);
    if (lb == 0)
        goto done;
    if (fread(pre + 8, 1, lb, f) != lb) {
        set_err(err, errlen, "%s: truncated .npy file (it ends inside the preamble)", path);
        goto done;
    }
    size_t hlen = read_le(pre + 8, lb);
    if (hlen > NPY_MAX_HEADER_READ) {
        set_err(err, errlen, "%s: .npy header of %zu bytes refused (at most %zu)", path, hlen,
                NPY_MAX_HEADER_READ);
        goto done;
    }
    hdr = malloc(hlen == 0 ? 1 : hlen);
    if (hdr == NULL) {
        set_err(err, errlen, "%s: out of memory for the header", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        set_err(err, errlen, "%s: truncated .npy file (it ends inside the header)", path);
        goto done;
    }
    npy_header h;
    memset(&h, 0, sizeof h);
    if (parse_header_dict(hdr, hlen, path, &h, err, errlen))
        goto done;
    h.data_offset = 8 + lb + hlen;
    /* a regular file's size is checked before the data is allocated */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        size_t total;
        if (add_size(h.data_offset, h.data_bytes, &total) || st.st_size < 0 ||
            (uint64_t)st.st_size != (uint64_t)total) {
            uint64_t have = (uint64_t)st.st_size >= (uint64_t)h.data_offset
                                ? (uint64_t)st.st_size - h.data_offset : 0;
            set_err(err, errlen, "%s: %s .npy file: the header says %zu bytes of data, the "
                    "file has %llu", path,
                    have < h.data_bytes ? "truncated" : "malformed", h.data_bytes,
                    (unsigned long long)have);
            goto done;
        }
    }
    out = alloc_floats(h.count, path, err, errlen);
    if (out == NULL)
        goto done;
    if (h.dtype == NPY_F4 && host_is_little_endian()) {
        if (fread(out, 4, h.count, f) != h.count) {
            set_err(err, errlen, "%s: truncated .npy file (it ends inside the data)", path);
            goto done;
        }
    } else {
        chunk = malloc(NPY_CHUNK);
        if (chunk == NULL) {
            set_err(err, errlen, "%s: out of memory", path);
            goto done;
        }
        size_t per = NPY_CHUNK / h.itemsize;
        for (size_t done_n = 0; done_n < h.count;) {
            size_t n = h.count - done_n < per ? h.count - done_n : per;
            if (fread(chunk, h.itemsize, n, f) != n) {
                set_err(err, errlen, "%s: truncated .npy file (it ends inside the data)", path);
                goto done;
            }
            if (convert(&h, chunk, n, out + done_n, done_n, path, err, errlen))
                goto done;
            done_n += n;
        }
    }
    if (fgetc(f) != EOF) {
        set_err(err, errlen, "%s: malformed .npy file: bytes after the %zu the header says",
                path, h.data_bytes);
        goto done;
    }
    if (ferror(f)) {
        set_err(err, errlen, "%s: read error", path);
        goto done;
    }
    *data = out;
    out = NULL;
    *ndim = h.ndim;
    memcpy(shape, h.shape, sizeof h.shape);
    rc = 0;
done:
    free(chunk);
    free(out);
    free(hdr);
    fclose(f);
    return rc;
}

int lgd_npy_header_f4(const int64_t *shape, int ndim, unsigned char *buf, size_t buflen,
                      size_t *header_len, char *err, size_t errlen)
{
    if ((shape == NULL && ndim != 0) || buf == NULL || header_len == NULL) {
        set_err(err, errlen, "lgd_npy_header_f4: shape, buf and header_len must not be NULL");
        return 1;
    }
    if (ndim < 0 || ndim > LGD_NPY_MAX_NDIM) {
        set_err(err, errlen, "lgd_npy_header_f4: ndim %d is outside 0..%d", ndim,
                LGD_NPY_MAX_NDIM);
        return 1;
    }
    size_t count, bytes;
    if (shape_count(shape, ndim, 4, &count, &bytes)) {
        set_err(err, errlen, "lgd_npy_header_f4: a dimension is negative or the array's size "
                "overflows");
        return 1;
    }
    char dict[LGD_NPY_MAX_HEADER];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; ++i)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%s%lld", i ? ", " : "",
                        (long long)shape[i]);
    len += snprintf(dict + len, sizeof dict - (size_t)len, "%s), }", ndim == 1 ? "," : "");
    /* preamble (10) + dict + padding + '\n' = a multiple of 64 */
    size_t total = 10 + (size_t)len + 1;
    total = (total + 63) / 64 * 64;
    if (total > LGD_NPY_MAX_HEADER || total > buflen) {
        set_err(err, errlen, "lgd_npy_header_f4: the header needs %zu bytes, the buffer has %zu",
                total, buflen);
        return 1;
    }
    size_t hlen = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)len);
    memset(buf + 10 + len, ' ', total - 10 - (size_t)len - 1);
    buf[total - 1] = '\n';
    *header_len = total;
    return 0;
}

int lgd_npy_write(const char *path, const float *data, const int64_t *shape, int ndim,
                  char *err, size_t errlen)
{
    if (path == NULL) {
        set_err(err, errlen, "lgd_npy_write: path must not be NULL");
        return 1;
    }
    unsigned char header[LGD_NPY_MAX_HEADER];
    size_t header_len;
    char sub[256];
    if (lgd_npy_header_f4(shape, ndim, header, sizeof header, &header_len, sub, sizeof sub)) {
        set_err(err, errlen, "%s: %s", path, sub);
        return 1;
    }
    size_t count = 0, bytes = 0;
    if (shape_count(shape, ndim, 4, &count, &bytes)) { /* checked above; kept for clarity */
        set_err(err, errlen, "%s: the array's size overflows", path);
        return 1;
    }
    if (data == NULL && count != 0) {
        set_err(err, errlen, "%s: data is NULL for an array of %zu elements", path, count);
        return 1;
    }
    size_t plen = strlen(path), tlen;
    if (add_size(plen, 5, &tlen)) {
        set_err(err, errlen, "%s: path too long", path);
        return 1;
    }
    char *tmp = malloc(tlen);
    if (tmp == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        return 1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return 1;
    }
    int ok = fwrite(header, 1, header_len, f) == header_len;
    if (ok && count != 0) {
        if (host_is_little_endian()) {
            ok = fwrite(data, 4, count, f) == count;
        } else {
            unsigned char chunk[4096];
            for (size_t i = 0; ok && i < count;) {
                size_t n = count - i < sizeof chunk / 4 ? count - i : sizeof chunk / 4;
                for (size_t k = 0; k < n; ++k) {
                    uint32_t u;
                    memcpy(&u, &data[i + k], 4);
                    chunk[4 * k] = (unsigned char)u;
                    chunk[4 * k + 1] = (unsigned char)(u >> 8);
                    chunk[4 * k + 2] = (unsigned char)(u >> 16);
                    chunk[4 * k + 3] = (unsigned char)(u >> 24);
                }
                ok = fwrite(chunk, 4, n, f) == n;
                i += n;
            }
        }
    }
    int saved = errno;
    if (ok && fflush(f) != 0) {
        ok = 0;
        saved = errno;
    }
    if (ok && fsync(fileno(f)) != 0 && errno != EINVAL && errno != EROFS) {
        ok = 0; /* EINVAL/EROFS: a file that cannot be synced (a pipe, /dev/...) */
        saved = errno;
    }
    if (fclose(f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        set_err(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(saved));
        remove(tmp);
        free(tmp);
        return 1;
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        set_err(err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror(saved));
        remove(tmp);
        free(tmp);
        return 1;
    }
    free(tmp);
    return 0;
}
