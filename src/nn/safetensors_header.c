/*
 * safetensors_header.c - the schema pass over a safetensors header
 * (safetensors_header.h): tensors and metadata collected from the JSON object, with
 * strings decoded into one arena. Sizes, offsets and names are checked afterwards, in
 * safetensors.c.
 */
#include "nn/safetensors_header.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int st_fail(st_header *p, lgd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lgd_json_vfail(&p->j, st, fmt, ap);
    va_end(ap);
    return -1;
}

static int peek(const st_header *p) { return lgd_json_peek(&p->j); }

static void skip_ws(st_header *p) { lgd_json_skip_ws(&p->j); }

/* ------------------------------------------------------------------ messages */

/* 'name', with control characters, quotes and backslashes escaped and a long name
 * shortened (at a character boundary) to fit buf. Names are valid UTF-8, kept as is. */
const char *st_qname(char *buf, size_t len, const char *s)
{
    size_t o = 0;
    buf[o++] = '\'';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (o + 10 > len) { /* room for an escape, then "...'" and the NUL */
            while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
                o--; /* drop a cut UTF-8 sequence's continuation bytes */
            if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0)
                o--; /* and its lead byte */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*c < 0x20 || *c == 0x7F || *c == '\\' || *c == '\'') {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *c);
        } else {
            buf[o++] = (char)*c;
        }
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

const char *st_qshape(char *buf, size_t len, const lgd_st_tensor *t)
{
    size_t o = 0;
    buf[o++] = '[';
    buf[o] = '\0';
    for (int d = 0; d < t->ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
    if (o + 2 <= len) {
        buf[o++] = ']';
        buf[o] = '\0';
    }
    return buf;
}

/* ------------------------------------------------------------------ the schema */

/* Pass 1 proved the header well-formed; these guard that belief anyway. */
static int expect(st_header *p, int c)
{
    if (peek(p) != c)
        return st_fail(p, LGD_ERR_INTERNAL,
                       "safetensors parser: '%c' expected at header byte %zu", c, p->j.i);
    p->j.i++;
    return 0;
}

/* Decodes the string at p->j.i into the arena. */
static char *decode(st_header *p)
{
    if (peek(p) != '"' || p->arena_used > p->j.i) {
        st_fail(p, LGD_ERR_INTERNAL, "safetensors parser: string expected at header byte %zu",
                p->j.i);
        return NULL;
    }
    char *out = p->arena + p->arena_used;
    if (lgd_json_string(&p->j, out))
        return NULL;
    p->arena_used += strlen(out) + 1; /* stays <= p->j.i: no longer than the quoted form */
    return out;
}

/* arr with room for n + 1 elements (realloc'd when *cap is n), or NULL (arr kept). */
static void *grow(st_header *p, void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap : 16;
    while (nc <= n) {
        if (nc > SIZE_MAX / 2 / elem) {
            st_fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory (too many entries)");
            return NULL;
        }
        nc *= 2;
    }
    void *q = realloc(arr, nc * elem);
    if (!q) {
        st_fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        return NULL;
    }
    *cap = nc;
    return q;
}

/* The field/value separator and the ',' or closing bracket after a value: returns 1
 * when the container goes on, 0 at its end, -1 on error. */
static int next_member(st_header *p, int close)
{
    skip_ws(p);
    if (peek(p) == ',') {
        p->j.i++;
        skip_ws(p);
        return 1;
    }
    return expect(p, close) ? -1 : 0;
}

static int colon(st_header *p)
{
    skip_ws(p);
    if (expect(p, ':'))
        return -1;
    skip_ws(p);
    return 0;
}

static int parse_meta(st_header *p, size_t key_at)
{
    if (p->seen_meta)
        return st_fail(p, LGD_ERR_FORMAT, "duplicate \"__metadata__\" at header byte %zu", key_at);
    p->seen_meta = 1;
    if (peek(p) != '{')
        return st_fail(p, LGD_ERR_FORMAT, "\"__metadata__\" is not an object (header byte %zu)",
                       p->j.i);
    p->j.i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->j.i++;
        return 0;
    }
    for (;;) {
        char *key = decode(p);
        if (!key || colon(p))
            return -1;
        if (peek(p) != '"') {
            char q[ST_QNAME];
            return st_fail(p, LGD_ERR_FORMAT,
                           "metadata value of key %s is not a string (header byte %zu)",
                           st_qname(q, sizeof q, key), p->j.i);
        }
        char *value = decode(p);
        if (!value)
            return -1;
        lgd_st_meta *m = grow(p, p->meta, &p->cap_meta, p->n_meta, sizeof *p->meta);
        if (!m)
            return -1;
        p->meta = m;
        p->meta[p->n_meta].key = key;
        p->meta[p->n_meta].value = value;
        p->n_meta++;
        int more = next_member(p, '}');
        if (more <= 0)
            return more;
    }
}

/* A non-negative integer that fits in int64 (no sign, fraction or exponent). */
static int parse_int(st_header *p, const char *name, const char *field, int idx, uint64_t *v)
{
    char q[ST_QNAME];
    int c = peek(p);
    if (c == '-')
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: %s[%d] is negative (header byte %zu)",
                       st_qname(q, sizeof q, name), field, idx, p->j.i);
    if (!lgd_json_is_digit(c))
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: %s[%d] is not an integer (header byte %zu)",
                       st_qname(q, sizeof q, name), field, idx, p->j.i);
    size_t at = p->j.i;
    uint64_t x = 0;
    while (lgd_json_is_digit(peek(p))) {
        uint64_t d = (uint64_t)(peek(p) - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return st_fail(p, LGD_ERR_FORMAT,
                           "tensor %s: %s[%d] is too large for int64 (header byte %zu)",
                           st_qname(q, sizeof q, name), field, idx, at);
        x = x * 10 + d;
        p->j.i++;
    }
    c = peek(p);
    if (c == '.' || c == 'e' || c == 'E')
        return st_fail(p, LGD_ERR_FORMAT,
                       "tensor %s: %s[%d] is not an integer (fraction or exponent at header "
                       "byte %zu)",
                       st_qname(q, sizeof q, name), field, idx, p->j.i);
    *v = x;
    return 0;
}

static int parse_dtype(st_header *p, lgd_st_tensor *t)
{
    char q[ST_QNAME], qd[ST_QNAME];
    if (peek(p) != '"')
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: dtype is not a string (header byte %zu)",
                       st_qname(q, sizeof q, t->name), p->j.i);
    size_t at = p->j.i;
    const char *d = decode(p);
    if (!d)
        return -1;
    lgd_status st = lgd_st_dtype_from_name(d, &t->dtype);
    if (st == LGD_ERR_UNSUPPORTED)
        return st_fail(p, LGD_ERR_UNSUPPORTED,
                       "tensor %s: dtype %s is not supported (liblgd reads F32, F16, BF16, F64)",
                       st_qname(q, sizeof q, t->name), st_qname(qd, sizeof qd, d));
    if (st != LGD_OK)
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: unknown dtype %s (header byte %zu)",
                       st_qname(q, sizeof q, t->name), st_qname(qd, sizeof qd, d), at);
    return 0;
}

static int parse_shape(st_header *p, lgd_st_tensor *t)
{
    char q[ST_QNAME];
    if (peek(p) != '[')
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: shape is not an array (header byte %zu)",
                       st_qname(q, sizeof q, t->name), p->j.i);
    p->j.i++;
    skip_ws(p);
    if (peek(p) == ']') {
        p->j.i++;
        return 0;
    }
    for (;;) {
        if (t->ndim == LGD_ST_MAX_DIMS)
            return st_fail(p, LGD_ERR_FORMAT,
                           "tensor %s: shape has more than %d dimensions (header byte %zu)",
                           st_qname(q, sizeof q, t->name), LGD_ST_MAX_DIMS, p->j.i);
        uint64_t v;
        if (parse_int(p, t->name, "shape", t->ndim, &v))
            return -1;
        t->shape[t->ndim++] = (int64_t)v;
        int more = next_member(p, ']');
        if (more <= 0)
            return more;
    }
}

static int parse_offsets(st_header *p, lgd_st_tensor *t)
{
    char q[ST_QNAME];
    if (peek(p) != '[')
        return st_fail(p, LGD_ERR_FORMAT,
                       "tensor %s: data_offsets is not an array (header byte %zu)",
                       st_qname(q, sizeof q, t->name), p->j.i);
    size_t at = p->j.i;
    p->j.i++;
    skip_ws(p);
    uint64_t v[2];
    int k = 0;
    if (peek(p) == ']') {
        p->j.i++;
    } else {
        for (;;) {
            if (k == 2)
                return st_fail(p, LGD_ERR_FORMAT,
                               "tensor %s: data_offsets has more than 2 entries (header byte %zu)",
                               st_qname(q, sizeof q, t->name), at);
            if (parse_int(p, t->name, "data_offsets", k, &v[k]))
                return -1;
            k++;
            int more = next_member(p, ']');
            if (more < 0)
                return -1;
            if (more == 0)
                break;
        }
    }
    if (k != 2)
        return st_fail(p, LGD_ERR_FORMAT,
                       "tensor %s: data_offsets has %d entries, not 2 (header byte %zu)",
                       st_qname(q, sizeof q, t->name), k, at);
    t->begin = v[0];
    t->end = v[1];
    return 0;
}

static int parse_tensor(st_header *p, char *name)
{
    char q[ST_QNAME], qf[ST_QNAME];
    lgd_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    if (peek(p) != '{')
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: entry is not an object (header byte %zu)",
                       st_qname(q, sizeof q, name), p->j.i);
    size_t at = p->j.i;
    int has_dtype = 0, has_shape = 0, has_offsets = 0;
    p->j.i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->j.i++;
    } else {
        for (;;) {
            size_t field_at = p->j.i;
            const char *field = decode(p);
            if (!field || colon(p))
                return -1;
            int *seen = NULL, r = -1;
            if (strcmp(field, "dtype") == 0) {
                seen = &has_dtype;
            } else if (strcmp(field, "shape") == 0) {
                seen = &has_shape;
            } else if (strcmp(field, "data_offsets") == 0) {
                seen = &has_offsets;
            } else {
                return st_fail(p, LGD_ERR_FORMAT,
                               "tensor %s: unknown field %s (header byte %zu; a tensor has "
                               "exactly dtype, shape and data_offsets)",
                               st_qname(q, sizeof q, name), st_qname(qf, sizeof qf, field),
                               field_at);
            }
            if (*seen)
                return st_fail(p, LGD_ERR_FORMAT, "tensor %s: duplicate field %s (header byte %zu)",
                               st_qname(q, sizeof q, name), field, field_at);
            *seen = 1;
            if (seen == &has_dtype)
                r = parse_dtype(p, &t);
            else if (seen == &has_shape)
                r = parse_shape(p, &t);
            else
                r = parse_offsets(p, &t);
            if (r)
                return -1;
            int more = next_member(p, '}');
            if (more < 0)
                return -1;
            if (more == 0)
                break;
        }
    }
    if (!has_dtype || !has_shape || !has_offsets)
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: no %s (header byte %zu)",
                       st_qname(q, sizeof q, name),
                       !has_dtype ? "dtype" : !has_shape ? "shape" : "data_offsets", at);
    lgd_st_tensor *ts = grow(p, p->tensors, &p->cap_tensors, p->n_tensors, sizeof *p->tensors);
    if (!ts)
        return -1;
    p->tensors = ts;
    p->tensors[p->n_tensors++] = t;
    return 0;
}

int st_header_parse(st_header *p)
{
    p->j.i = 0;
    if (expect(p, '{'))
        return -1;
    skip_ws(p);
    if (peek(p) == '}')
        return 0;
    for (;;) {
        size_t key_at = p->j.i;
        char *key = decode(p);
        if (!key || colon(p))
            return -1;
        int r = strcmp(key, "__metadata__") == 0 ? parse_meta(p, key_at) : parse_tensor(p, key);
        if (r)
            return -1;
        int more = next_member(p, '}');
        if (more <= 0)
            return more;
    }
}
