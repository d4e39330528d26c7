/*
 * safetensors.c - the strict safetensors parser (safetensors.h).
 *
 * Two passes over the header. check_header() validates it as JSON (RFC 8259: UTF-8,
 * escapes, numbers) with a depth limit and without allocating; then the schema pass
 * walks the now well-formed object, decodes every string into one arena and collects
 * tensors and metadata, and finish() checks sizes, offsets and names. A decoded string
 * and its NUL are never longer than its quoted form, so an arena of N + 1 bytes holds
 * every string of the header. Nothing here reads outside [data, data + size).
 */
#include "nn/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__GNUC__)
#  define ST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define ST_PRINTF(a, b)
#endif

/* Room for a quoted, escaped, shortened name in a message. */
#define ST_QNAME 96
/* Room for a formatted shape "[d0, d1, ...]". */
#define ST_QSHAPE (LGD_ST_MAX_DIMS * 22 + 4)

/* ------------------------------------------------------------------ dtypes */

typedef struct dtype_info {
    const char *name;
    lgd_st_dtype dtype;
    size_t size;
} dtype_info;

static const dtype_info dtypes[] = {
    { "F32", LGD_ST_F32, 4 },
    { "F16", LGD_ST_F16, 2 },
    { "BF16", LGD_ST_BF16, 2 },
    { "F64", LGD_ST_F64, 8 },
};

/* Dtypes that safetensors defines and liblgd does not read (LGD_ERR_UNSUPPORTED). */
static const char *const other_dtypes[] = {
    "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "C64",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
};

size_t lgd_st_dtype_size(lgd_st_dtype dtype)
{
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (dtypes[k].dtype == dtype)
            return dtypes[k].size;
    return 0;
}

const char *lgd_st_dtype_name(lgd_st_dtype dtype)
{
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (dtypes[k].dtype == dtype)
            return dtypes[k].name;
    return "?";
}

/* ------------------------------------------------------------------ messages */

static void vset_error(char *err, size_t err_len, const char *fmt, va_list ap)
{
    if (!err || err_len == 0)
        return;
    int k = vsnprintf(err, err_len, fmt, ap);
    if (k < 0)
        err[0] = '\0';
}

static lgd_status set_error(char *err, size_t err_len, lgd_status st, const char *fmt, ...)
    ST_PRINTF(4, 5);
static lgd_status set_error(char *err, size_t err_len, lgd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(err, err_len, fmt, ap);
    va_end(ap);
    return st;
}

/* 'name', with control characters, quotes and backslashes escaped and a long name
 * shortened (at a character boundary) to fit buf. Names are valid UTF-8, kept as is. */
static const char *qname(char *buf, size_t len, const char *s)
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

static const char *qshape(char *buf, size_t len, const lgd_st_tensor *t)
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

/* ------------------------------------------------------------------ parser state */

typedef struct parser {
    const unsigned char *s; /* the header */
    size_t n;               /* its length */
    size_t i;               /* position in it */
    char *err;
    size_t err_len;
    lgd_status st; /* the first error */
    /* schema pass */
    char *arena;
    size_t arena_used;
    lgd_st_tensor *tensors;
    size_t n_tensors, cap_tensors;
    lgd_st_meta *meta;
    size_t n_meta, cap_meta;
    int seen_meta;
} parser;

/* Records the first error; returns -1. */
static int fail(parser *p, lgd_status st, const char *fmt, ...) ST_PRINTF(3, 4);
static int fail(parser *p, lgd_status st, const char *fmt, ...)
{
    if (p->st == LGD_OK) {
        va_list ap;
        va_start(ap, fmt);
        vset_error(p->err, p->err_len, fmt, ap);
        va_end(ap);
        p->st = st;
    }
    return -1;
}

static int syntax(parser *p, const char *what)
{
    if (p->i >= p->n)
        return fail(p, LGD_ERR_FORMAT, "invalid JSON header: unexpected end at byte %zu (%s)",
                    p->n, what);
    return fail(p, LGD_ERR_FORMAT, "invalid JSON header at byte %zu: %s", p->i, what);
}

static int peek(const parser *p) { return p->i < p->n ? p->s[p->i] : -1; }

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static void skip_ws(parser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

/* ------------------------------------------------------------------ strings */

/* Length of the valid UTF-8 sequence (2 to 4 bytes) at s, or 0 (overlong, surrogate,
 * beyond U+10FFFF, truncated or a stray byte). s[0] >= 0x80. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (avail < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t j = 2; j < k; j++)
        if ((s[j] & 0xC0) != 0x80)
            return 0;
    return k;
}

/* Writes code point cp (not a surrogate, <= U+10FFFF) as UTF-8 to out (when not NULL);
 * returns its length. */
static size_t utf8_put(char *out, uint32_t cp)
{
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (out)
        memcpy(out, b, k);
    return k;
}

/* The four hex digits at header position pos, or -1. */
static long hex4(const parser *p, size_t pos)
{
    if (pos > p->n || p->n - pos < 4)
        return -1;
    long v = 0;
    for (size_t j = pos; j < pos + 4; j++) {
        int c = p->s[j], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Scans the string whose quote is at p->i, validating it; with out, writes the decoded
 * bytes and a NUL there (no more than the quoted length). Returns 0 or -1. */
static int scan_string(parser *p, char *out)
{
    size_t o = 0;
    p->i++;
    for (;;) {
        if (p->i >= p->n)
            return syntax(p, "unterminated string");
        unsigned c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20)
            return syntax(p, "control character in a string (escape it)");
        if (c >= 0x80) {
            size_t k = utf8_seq(p->s + p->i, p->n - p->i);
            if (k == 0)
                return syntax(p, "invalid UTF-8 in a string");
            if (out)
                memcpy(out + o, p->s + p->i, k);
            o += k;
            p->i += k;
            continue;
        }
        if (c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            p->i++;
            continue;
        }
        if (p->i + 1 >= p->n)
            return syntax(p, "unterminated string");
        char simple = 0;
        switch (p->s[p->i + 1]) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default: return syntax(p, "invalid escape in a string");
        }
        if (simple) {
            if (out)
                out[o] = simple;
            o++;
            p->i += 2;
            continue;
        }
        long cp = hex4(p, p->i + 2);
        if (cp < 0)
            return syntax(p, "invalid \\u escape (four hex digits expected)");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return syntax(p, "unpaired low surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            size_t j = p->i + 6;
            long lo = (j + 1 < p->n && p->s[j] == '\\' && p->s[j + 1] == 'u') ? hex4(p, j + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return syntax(p, "unpaired high surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p->i += 6;
        }
        if (cp == 0)
            return syntax(p, "\\u0000 (NUL) in a string");
        o += utf8_put(out ? out + o : NULL, (uint32_t)cp);
        p->i += 6;
    }
    if (out)
        out[o] = '\0';
    return 0;
}

/* ------------------------------------------------------------------ pass 1: JSON */

static int check_container(parser *p, int depth);

static int check_number(parser *p)
{
    if (peek(p) == '-')
        p->i++;
    if (!is_digit(peek(p)))
        return syntax(p, "invalid number");
    if (peek(p) == '0')
        p->i++;
    else
        while (is_digit(peek(p)))
            p->i++;
    if (peek(p) == '.') {
        p->i++;
        if (!is_digit(peek(p)))
            return syntax(p, "invalid number (digits expected after '.')");
        while (is_digit(peek(p)))
            p->i++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->i++;
        if (peek(p) == '+' || peek(p) == '-')
            p->i++;
        if (!is_digit(peek(p)))
            return syntax(p, "invalid number (digits expected in the exponent)");
        while (is_digit(peek(p)))
            p->i++;
    }
    return 0;
}

static int check_literal(parser *p, const char *word)
{
    size_t k = strlen(word);
    if (p->n - p->i < k || memcmp(p->s + p->i, word, k) != 0)
        return syntax(p, "invalid literal");
    p->i += k;
    return 0;
}

static int check_value(parser *p, int depth)
{
    int c = peek(p);
    switch (c) {
    case '{':
    case '[': return check_container(p, depth + 1);
    case '"': return scan_string(p, NULL);
    case 't': return check_literal(p, "true");
    case 'f': return check_literal(p, "false");
    case 'n': return check_literal(p, "null");
    case -1: return syntax(p, "a value expected");
    default:
        if (c == '-' || is_digit(c))
            return check_number(p);
        return syntax(p, "unexpected character (a value expected)");
    }
}

/* An object or array at p->i, itself at nesting level depth (the header is level 1). */
static int check_container(parser *p, int depth)
{
    if (depth > LGD_ST_MAX_DEPTH)
        return fail(p, LGD_ERR_FORMAT,
                    "invalid JSON header at byte %zu: nested deeper than %d levels", p->i,
                    LGD_ST_MAX_DEPTH);
    int obj = p->s[p->i] == '{';
    int close = obj ? '}' : ']';
    p->i++;
    skip_ws(p);
    if (peek(p) == close) {
        p->i++;
        return 0;
    }
    for (;;) {
        if (obj) {
            if (peek(p) != '"')
                return syntax(p, "a string key expected");
            if (scan_string(p, NULL))
                return -1;
            skip_ws(p);
            if (peek(p) != ':')
                return syntax(p, "':' expected");
            p->i++;
            skip_ws(p);
        }
        if (check_value(p, depth))
            return -1;
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            p->i++;
            skip_ws(p);
            continue;
        }
        if (c == close) {
            p->i++;
            return 0;
        }
        return syntax(p, obj ? "',' or '}' expected" : "',' or ']' expected");
    }
}

static int check_header(parser *p)
{
    if (p->s[0] != '{')
        return syntax(p, "the header does not begin with '{'");
    if (check_container(p, 1))
        return -1;
    for (; p->i < p->n; p->i++)
        if (p->s[p->i] != ' ')
            return syntax(p, "trailing bytes after the header object (only spaces may pad it)");
    return 0;
}

/* ------------------------------------------------------------------ pass 2: schema */

/* Pass 1 proved the header well-formed; these guard that belief anyway. */
static int expect(parser *p, int c)
{
    if (peek(p) != c)
        return fail(p, LGD_ERR_INTERNAL, "safetensors parser: '%c' expected at header byte %zu",
                    c, p->i);
    p->i++;
    return 0;
}

/* Decodes the string at p->i into the arena. */
static char *decode(parser *p)
{
    if (peek(p) != '"' || p->arena_used > p->i) {
        fail(p, LGD_ERR_INTERNAL, "safetensors parser: string expected at header byte %zu",
             p->i);
        return NULL;
    }
    char *out = p->arena + p->arena_used;
    if (scan_string(p, out))
        return NULL;
    p->arena_used += strlen(out) + 1; /* stays <= p->i: no longer than the quoted form */
    return out;
}

/* arr with room for n + 1 elements (realloc'd when *cap is n), or NULL (arr kept). */
static void *grow(parser *p, void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap : 16;
    while (nc <= n) {
        if (nc > SIZE_MAX / 2 / elem) {
            fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory (too many entries)");
            return NULL;
        }
        nc *= 2;
    }
    void *q = realloc(arr, nc * elem);
    if (!q) {
        fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        return NULL;
    }
    *cap = nc;
    return q;
}

/* The field/value separator and the ',' or closing bracket after a value: returns 1
 * when the container goes on, 0 at its end, -1 on error. */
static int next_member(parser *p, int close)
{
    skip_ws(p);
    if (peek(p) == ',') {
        p->i++;
        skip_ws(p);
        return 1;
    }
    return expect(p, close) ? -1 : 0;
}

static int colon(parser *p)
{
    skip_ws(p);
    if (expect(p, ':'))
        return -1;
    skip_ws(p);
    return 0;
}

static int parse_meta(parser *p, size_t key_at)
{
    if (p->seen_meta)
        return fail(p, LGD_ERR_FORMAT, "duplicate \"__metadata__\" at header byte %zu", key_at);
    p->seen_meta = 1;
    if (peek(p) != '{')
        return fail(p, LGD_ERR_FORMAT, "\"__metadata__\" is not an object (header byte %zu)",
                    p->i);
    p->i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->i++;
        return 0;
    }
    for (;;) {
        char *key = decode(p);
        if (!key || colon(p))
            return -1;
        if (peek(p) != '"') {
            char q[ST_QNAME];
            return fail(p, LGD_ERR_FORMAT,
                        "metadata value of key %s is not a string (header byte %zu)",
                        qname(q, sizeof q, key), p->i);
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
static int parse_int(parser *p, const char *name, const char *field, int idx, uint64_t *v)
{
    char q[ST_QNAME];
    int c = peek(p);
    if (c == '-')
        return fail(p, LGD_ERR_FORMAT, "tensor %s: %s[%d] is negative (header byte %zu)",
                    qname(q, sizeof q, name), field, idx, p->i);
    if (!is_digit(c))
        return fail(p, LGD_ERR_FORMAT, "tensor %s: %s[%d] is not an integer (header byte %zu)",
                    qname(q, sizeof q, name), field, idx, p->i);
    size_t at = p->i;
    uint64_t x = 0;
    while (is_digit(peek(p))) {
        uint64_t d = (uint64_t)(peek(p) - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return fail(p, LGD_ERR_FORMAT,
                        "tensor %s: %s[%d] is too large for int64 (header byte %zu)",
                        qname(q, sizeof q, name), field, idx, at);
        x = x * 10 + d;
        p->i++;
    }
    c = peek(p);
    if (c == '.' || c == 'e' || c == 'E')
        return fail(p, LGD_ERR_FORMAT,
                    "tensor %s: %s[%d] is not an integer (fraction or exponent at header byte %zu)",
                    qname(q, sizeof q, name), field, idx, p->i);
    *v = x;
    return 0;
}

static int parse_dtype(parser *p, lgd_st_tensor *t)
{
    char q[ST_QNAME], qd[ST_QNAME];
    if (peek(p) != '"')
        return fail(p, LGD_ERR_FORMAT, "tensor %s: dtype is not a string (header byte %zu)",
                    qname(q, sizeof q, t->name), p->i);
    size_t at = p->i;
    const char *d = decode(p);
    if (!d)
        return -1;
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (strcmp(d, dtypes[k].name) == 0) {
            t->dtype = dtypes[k].dtype;
            return 0;
        }
    for (size_t k = 0; k < sizeof other_dtypes / sizeof other_dtypes[0]; k++)
        if (strcmp(d, other_dtypes[k]) == 0)
            return fail(p, LGD_ERR_UNSUPPORTED,
                        "tensor %s: dtype %s is not supported (liblgd reads F32, F16, BF16, F64)",
                        qname(q, sizeof q, t->name), qname(qd, sizeof qd, d));
    return fail(p, LGD_ERR_FORMAT, "tensor %s: unknown dtype %s (header byte %zu)",
                qname(q, sizeof q, t->name), qname(qd, sizeof qd, d), at);
}

static int parse_shape(parser *p, lgd_st_tensor *t)
{
    char q[ST_QNAME];
    if (peek(p) != '[')
        return fail(p, LGD_ERR_FORMAT, "tensor %s: shape is not an array (header byte %zu)",
                    qname(q, sizeof q, t->name), p->i);
    p->i++;
    skip_ws(p);
    if (peek(p) == ']') {
        p->i++;
        return 0;
    }
    for (;;) {
        if (t->ndim == LGD_ST_MAX_DIMS)
            return fail(p, LGD_ERR_FORMAT,
                        "tensor %s: shape has more than %d dimensions (header byte %zu)",
                        qname(q, sizeof q, t->name), LGD_ST_MAX_DIMS, p->i);
        uint64_t v;
        if (parse_int(p, t->name, "shape", t->ndim, &v))
            return -1;
        t->shape[t->ndim++] = (int64_t)v;
        int more = next_member(p, ']');
        if (more <= 0)
            return more;
    }
}

static int parse_offsets(parser *p, lgd_st_tensor *t)
{
    char q[ST_QNAME];
    if (peek(p) != '[')
        return fail(p, LGD_ERR_FORMAT,
                    "tensor %s: data_offsets is not an array (header byte %zu)",
                    qname(q, sizeof q, t->name), p->i);
    size_t at = p->i;
    p->i++;
    skip_ws(p);
    uint64_t v[2];
    int k = 0;
    if (peek(p) == ']') {
        p->i++;
    } else {
        for (;;) {
            if (k == 2)
                return fail(p, LGD_ERR_FORMAT,
                            "tensor %s: data_offsets has more than 2 entries (header byte %zu)",
                            qname(q, sizeof q, t->name), at);
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
        return fail(p, LGD_ERR_FORMAT,
                    "tensor %s: data_offsets has %d entries, not 2 (header byte %zu)",
                    qname(q, sizeof q, t->name), k, at);
    t->begin = v[0];
    t->end = v[1];
    return 0;
}

static int parse_tensor(parser *p, char *name)
{
    char q[ST_QNAME], qf[ST_QNAME];
    lgd_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    if (peek(p) != '{')
        return fail(p, LGD_ERR_FORMAT, "tensor %s: entry is not an object (header byte %zu)",
                    qname(q, sizeof q, name), p->i);
    size_t at = p->i;
    int has_dtype = 0, has_shape = 0, has_offsets = 0;
    p->i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->i++;
    } else {
        for (;;) {
            size_t field_at = p->i;
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
                return fail(p, LGD_ERR_FORMAT,
                            "tensor %s: unknown field %s (header byte %zu; a tensor has "
                            "exactly dtype, shape and data_offsets)",
                            qname(q, sizeof q, name), qname(qf, sizeof qf, field), field_at);
            }
            if (*seen)
                return fail(p, LGD_ERR_FORMAT, "tensor %s: duplicate field %s (header byte %zu)",
                            qname(q, sizeof q, name), field, field_at);
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
        return fail(p, LGD_ERR_FORMAT, "tensor %s: no %s (header byte %zu)",
                    qname(q, sizeof q, name),
                    !has_dtype ? "dtype" : !has_shape ? "shape" : "data_offsets", at);
    lgd_st_tensor *ts = grow(p, p->tensors, &p->cap_tensors, p->n_tensors, sizeof *p->tensors);
    if (!ts)
        return -1;
    p->tensors = ts;
    p->tensors[p->n_tensors++] = t;
    return 0;
}

static int parse_schema(parser *p)
{
    p->i = 0;
    if (expect(p, '{'))
        return -1;
    skip_ws(p);
    if (peek(p) == '}')
        return 0;
    for (;;) {
        size_t key_at = p->i;
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

/* ------------------------------------------------------------------ checks */

static int cmp_offsets(const void *a, const void *b)
{
    const lgd_st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_ptr(const void *a, const void *b)
{
    const lgd_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_meta_ptr(const void *a, const void *b)
{
    const lgd_st_meta *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* Sizes and offsets of each tensor against a data region of dsize bytes at data. */
static int check_tensor(parser *p, lgd_st_tensor *t, const unsigned char *data, size_t dsize)
{
    char q[ST_QNAME], qs[ST_QSHAPE];
    if (t->begin > t->end)
        return fail(p, LGD_ERR_FORMAT, "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                    "] are reversed", qname(q, sizeof q, t->name), t->begin, t->end);
    if (t->end > (uint64_t)dsize)
        return fail(p, LGD_ERR_FORMAT, "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                    "] run past the end of the data (%zu bytes)",
                    qname(q, sizeof q, t->name), t->begin, t->end, dsize);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] != 0 && numel > INT64_MAX / t->shape[d])
            return fail(p, LGD_ERR_FORMAT, "tensor %s: shape %s has too many elements (overflow)",
                        qname(q, sizeof q, t->name), qshape(qs, sizeof qs, t));
        numel *= t->shape[d];
    }
    int64_t isz = (int64_t)lgd_st_dtype_size(t->dtype);
    if (numel > INT64_MAX / isz)
        return fail(p, LGD_ERR_FORMAT, "tensor %s: shape %s has too many elements (overflow)",
                    qname(q, sizeof q, t->name), qshape(qs, sizeof qs, t));
    uint64_t nbytes = (uint64_t)(numel * isz);
    if (t->end - t->begin != nbytes)
        return fail(p, LGD_ERR_FORMAT, "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                    "] hold %" PRIu64 " bytes but %s %s needs %" PRIu64,
                    qname(q, sizeof q, t->name), t->begin, t->end, t->end - t->begin,
                    lgd_st_dtype_name(t->dtype), qshape(qs, sizeof qs, t), nbytes);
    t->numel = numel;
    t->nbytes = (size_t)nbytes; /* <= dsize */
    t->data = data + t->begin;
    return 0;
}

static int finish(parser *p, lgd_st_file *out, const unsigned char *data, size_t dsize)
{
    char q[ST_QNAME], q2[ST_QNAME];
    for (size_t k = 0; k < p->n_tensors; k++)
        if (check_tensor(p, &p->tensors[k], data, dsize))
            return -1;
    if (p->n_tensors) {
        qsort(p->tensors, p->n_tensors, sizeof *p->tensors, cmp_offsets);
        out->by_name = malloc(p->n_tensors * sizeof *out->by_name);
        if (!out->by_name)
            return fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        for (size_t k = 0; k < p->n_tensors; k++)
            out->by_name[k] = &p->tensors[k];
        qsort(out->by_name, p->n_tensors, sizeof *out->by_name, cmp_tensor_ptr);
        for (size_t k = 1; k < p->n_tensors; k++)
            if (strcmp(out->by_name[k - 1]->name, out->by_name[k]->name) == 0)
                return fail(p, LGD_ERR_FORMAT, "duplicate tensor name %s",
                            qname(q, sizeof q, out->by_name[k]->name));
    }
    if (p->n_meta) {
        out->meta_by_key = malloc(p->n_meta * sizeof *out->meta_by_key);
        if (!out->meta_by_key)
            return fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        for (size_t k = 0; k < p->n_meta; k++)
            out->meta_by_key[k] = &p->meta[k];
        qsort(out->meta_by_key, p->n_meta, sizeof *out->meta_by_key, cmp_meta_ptr);
        for (size_t k = 1; k < p->n_meta; k++)
            if (strcmp(out->meta_by_key[k - 1]->key, out->meta_by_key[k]->key) == 0)
                return fail(p, LGD_ERR_FORMAT, "duplicate metadata key %s",
                            qname(q, sizeof q, out->meta_by_key[k]->key));
    }
    /* The tensors, in offset order, tile [0, dsize) exactly. */
    uint64_t at = 0;
    for (size_t k = 0; k < p->n_tensors; k++) {
        const lgd_st_tensor *t = &p->tensors[k];
        if (t->begin > at)
            return fail(p, LGD_ERR_FORMAT, "hole in the data: no tensor holds bytes [%" PRIu64
                        ", %" PRIu64 ") before tensor %s", at, t->begin,
                        qname(q, sizeof q, t->name));
        if (t->begin < at)
            return fail(p, LGD_ERR_FORMAT, "tensors %s and %s overlap: data_offsets [%" PRIu64
                        ", %" PRIu64 "] and [%" PRIu64 ", %" PRIu64 "]",
                        qname(q, sizeof q, p->tensors[k - 1].name), qname(q2, sizeof q2, t->name),
                        p->tensors[k - 1].begin, p->tensors[k - 1].end, t->begin, t->end);
        at = t->end;
    }
    if (at != (uint64_t)dsize)
        return fail(p, LGD_ERR_FORMAT, "the tensors cover %" PRIu64 " of the %zu data bytes "
                    "(no tensor holds bytes [%" PRIu64 ", %zu))", at, dsize, at, dsize);
    return 0;
}

/* ------------------------------------------------------------------ API */

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | b[k];
    return v;
}

lgd_status lgd_st_parse(const void *data, size_t size, lgd_st_file *out, char *err,
                        size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!out || (!data && size))
        return set_error(err, err_len, LGD_ERR_INVALID_ARGUMENT, "lgd_st_parse: %s is NULL",
                         out ? "data" : "out");
    const unsigned char *b = data;
    if (size < 8)
        return set_error(err, err_len, LGD_ERR_FORMAT,
                         "safetensors: a file of %zu bytes is too short (it begins with an "
                         "8-byte header length)", size);
    uint64_t n = le64(b);
    if (n == 0)
        return set_error(err, err_len, LGD_ERR_FORMAT, "safetensors: header length is 0");
    if (n > LGD_ST_MAX_HEADER)
        return set_error(err, err_len, LGD_ERR_FORMAT,
                         "safetensors: header length %" PRIu64 " is over the limit of %" PRIu64
                         " bytes (100 MiB)", n, LGD_ST_MAX_HEADER);
    if (n > (uint64_t)(size - 8))
        return set_error(err, err_len, LGD_ERR_FORMAT,
                         "safetensors: header length %" PRIu64 " runs past the end of the file "
                         "(%zu bytes after the length)", n, size - 8);
    parser p;
    memset(&p, 0, sizeof p);
    p.s = b + 8;
    p.n = (size_t)n;
    p.err = err;
    p.err_len = err_len;
    if (check_header(&p))
        goto failed;
    p.arena = malloc(p.n + 1);
    if (!p.arena) {
        fail(&p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory (%zu-byte header)", p.n);
        goto failed;
    }
    if (parse_schema(&p) || finish(&p, out, b + 8 + p.n, size - 8 - p.n))
        goto failed;
    out->bytes = b;
    out->size = size;
    out->tensors = p.tensors;
    out->n_tensors = p.n_tensors;
    out->meta = p.meta;
    out->n_meta = p.n_meta;
    out->strings = p.arena;
    return LGD_OK;
failed:
    free(p.arena);
    free(p.tensors);
    free(p.meta);
    free(out->by_name);
    free(out->meta_by_key);
    memset(out, 0, sizeof *out);
    return p.st != LGD_OK ? p.st : LGD_ERR_INTERNAL;
}

lgd_status lgd_st_read_file(const char *path, lgd_st_file *out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !out)
        return set_error(err, err_len, LGD_ERR_INVALID_ARGUMENT, "lgd_st_read_file: %s is NULL",
                         path ? "out" : "path");
    FILE *f = fopen(path, "rb");
    if (!f) {
        char why[128];
        if (strerror_r(errno, why, sizeof why) != 0)
            snprintf(why, sizeof why, "error %d", errno);
        return set_error(err, err_len, LGD_ERR_IO, "%s: cannot open: %s", path, why);
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_IO, "%s: cannot stat", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 0 || (uintmax_t)sb.st_size >= (uintmax_t)SIZE_MAX) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_IO, "%s: too large to read", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory (%zu bytes)",
                         path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int bad = got != size || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return set_error(err, err_len, LGD_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    /* Parse errors read "PATH: message". */
    size_t k = 0;
    if (err && err_len) {
        snprintf(err, err_len, "%s: ", path);
        k = strlen(err);
    }
    lgd_status st = lgd_st_parse(buf, size, out, err ? err + k : NULL, err ? err_len - k : 0);
    if (st != LGD_OK) {
        free(buf);
        return st;
    }
    if (err && err_len)
        err[0] = '\0';
    out->owned = buf;
    return LGD_OK;
}

void lgd_st_free(lgd_st_file *f)
{
    if (!f)
        return;
    free(f->owned);
    free(f->tensors);
    free(f->meta);
    free(f->strings);
    free(f->by_name);
    free(f->meta_by_key);
    memset(f, 0, sizeof *f);
}

static int find_tensor(const void *key, const void *elem)
{
    const lgd_st_tensor *const *t = elem;
    return strcmp(key, (*t)->name);
}

static int find_meta(const void *key, const void *elem)
{
    const lgd_st_meta *const *m = elem;
    return strcmp(key, (*m)->key);
}

const lgd_st_tensor *lgd_st_find(const lgd_st_file *f, const char *name)
{
    if (!f || !name || !f->n_tensors || !f->by_name)
        return NULL;
    lgd_st_tensor *const *t = bsearch(name, f->by_name, f->n_tensors, sizeof *f->by_name,
                                      find_tensor);
    return t ? *t : NULL;
}

const char *lgd_st_meta_get(const lgd_st_file *f, const char *key)
{
    if (!f || !key || !f->n_meta || !f->meta_by_key)
        return NULL;
    lgd_st_meta *const *m = bsearch(key, f->meta_by_key, f->n_meta, sizeof *f->meta_by_key,
                                    find_meta);
    return m ? (*m)->value : NULL;
}

/* ------------------------------------------------------------------ conversion */

static float bits_to_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float half_to_float(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0x1F) /* inf, nan (payload kept) */
        return bits_to_float(sign | 0x7F800000u | (man << 13));
    if (exp != 0)
        return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0)
        return bits_to_float(sign);
    /* subnormal: man 2^-24, normalised */
    uint32_t e = 113;
    while (!(man & 0x400u)) {
        man <<= 1;
        e--;
    }
    return bits_to_float(sign | (e << 23) | ((man & 0x3FFu) << 13));
}

void lgd_st_to_f32(const lgd_st_tensor *t, float *out)
{
    if (!t || !out || !t->data)
        return;
    const unsigned char *b = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case LGD_ST_F32:
        for (size_t i = 0; i < n; i++, b += 4)
            out[i] = bits_to_float((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                   (uint32_t)b[3] << 24);
        break;
    case LGD_ST_F16:
        for (size_t i = 0; i < n; i++, b += 2)
            out[i] = half_to_float((uint32_t)b[0] | (uint32_t)b[1] << 8);
        break;
    case LGD_ST_BF16:
        for (size_t i = 0; i < n; i++, b += 2)
            out[i] = bits_to_float(((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16);
        break;
    case LGD_ST_F64:
        for (size_t i = 0; i < n; i++, b += 8) {
            uint64_t u = le64(b);
            double d;
            memcpy(&d, &u, sizeof d);
            out[i] = (float)d;
        }
        break;
    }
}
