/*
 * test_safetensors.c - the 'safetensors' suite: the strict safetensors parser of
 * src/safetensors.c. Valid files built in memory by a tiny writer round-trip exactly
 * (every dtype, scalars, empty tensors, metadata, escaped names); a table of hand-made
 * bad files each fails with its status and message; every prefix of a valid file
 * fails; a fixed-seed mutation fuzz never crashes (valgrind checks reads and leaks);
 * lgd_st_read_file on real, missing and non-regular paths.
 *
 * Every buffer handed to the parser is allocated at exactly its size, so that a read
 * past the end shows under valgrind.
 */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/safetensors.h"

#define ERRCAP 512

/* LGD_TEST_QUICK=1 (the valgrind pass): fewer fuzz iterations. */
static int quick_mode(void)
{
    const char *q = getenv("LGD_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0;
}

/* ------------------------------------------------------------------ a growable string */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const void *d, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        ck_assert_ptr_nonnull(q);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ck_assert(k >= 0 && (size_t)k < sizeof tmp);
    sb_put(b, tmp, (size_t)k);
}

/* ------------------------------------------------------------------ the writer */

/* 8-byte little-endian length, then the header bytes, then the data; allocated at
 * exactly its size (at least 1 byte). */
static unsigned char *make_file(uint64_t hlen_field, const void *header, size_t hlen,
                                const void *data, size_t dlen, size_t *size)
{
    *size = 8 + hlen + dlen;
    unsigned char *f = malloc(*size);
    ck_assert_ptr_nonnull(f);
    for (int k = 0; k < 8; k++)
        f[k] = (unsigned char)(hlen_field >> (8 * k));
    if (hlen)
        memcpy(f + 8, header, hlen);
    if (dlen)
        memcpy(f + 8 + hlen, data, dlen);
    return f;
}

typedef struct wtensor {
    const char *json_name; /* the name as JSON source (escapes allowed), no quotes */
    const char *dtype;
    int ndim;
    int64_t shape[LGD_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wtensor;

/* A valid file: the header lists ts in order (after "__metadata__" when meta_members,
 * JSON members without braces, is not NULL) and is padded with spaces to a multiple
 * of 8, as the reference writer does; with reverse_data the data lies in the reverse
 * order of the header. */
static unsigned char *write_file(const wtensor *ts, size_t n, const char *meta_members,
                                 int reverse_data, size_t *size)
{
    uint64_t *begin = calloc(n ? n : 1, sizeof *begin);
    ck_assert_ptr_nonnull(begin);
    size_t total = 0;
    for (size_t j = 0; j < n; j++) {
        size_t k = reverse_data ? n - 1 - j : j;
        begin[k] = total;
        total += ts[k].nbytes;
    }
    sbuf h = { 0 };
    sb_put(&h, "{", 1);
    if (meta_members)
        sb_printf(&h, "\"__metadata__\":{%s}%s", meta_members, n ? "," : "");
    for (size_t k = 0; k < n; k++) {
        sb_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", k ? "," : "", ts[k].json_name,
                  ts[k].dtype);
        for (int d = 0; d < ts[k].ndim; d++)
            sb_printf(&h, "%s%lld", d ? "," : "", (long long)ts[k].shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)begin[k],
                  (unsigned long long)(begin[k] + ts[k].nbytes));
    }
    sb_put(&h, "}", 1);
    while (h.n % 8)
        sb_put(&h, " ", 1);
    unsigned char *data = malloc(total ? total : 1);
    ck_assert_ptr_nonnull(data);
    for (size_t k = 0; k < n; k++)
        if (ts[k].nbytes)
            memcpy(data + begin[k], ts[k].data, ts[k].nbytes);
    unsigned char *f = make_file(h.n, h.p, h.n, data, total, size);
    free(data);
    free(h.p);
    free(begin);
    return f;
}

/* ------------------------------------------------------------------ value helpers */

static uint32_t fbits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float ffrom(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

/* Asserts that *f is empty (all fields zero), as after a failed parse. */
static void assert_empty(const lgd_st_file *f, const char *what)
{
    ck_assert_msg(f->owned == NULL && f->bytes == NULL && f->size == 0 && f->tensors == NULL &&
                      f->n_tensors == 0 && f->meta == NULL && f->n_meta == 0 &&
                      f->strings == NULL && f->by_name == NULL && f->meta_by_key == NULL,
                  "%s: the output is not empty after a failure", what);
}

/* A message is one non-empty line. */
static void assert_message(const char *err, const char *what)
{
    ck_assert_msg(err[0] != '\0', "%s: no error message", what);
    ck_assert_msg(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL,
                  "%s: message is not one line: %s", what, err);
}

/* The tensors of a parsed file lie inside its data region, in order, tiling it. */
static void assert_consistent(const lgd_st_file *f, const unsigned char *buf, size_t size)
{
    ck_assert_ptr_eq(f->bytes, buf);
    ck_assert_uint_eq(f->size, size);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = (hlen << 8) | buf[k];
    ck_assert(hlen >= 1 && hlen <= size - 8);
    const unsigned char *data = buf + 8 + hlen, *end = buf + size;
    const unsigned char *at = data;
    for (size_t k = 0; k < f->n_tensors; k++) {
        const lgd_st_tensor *t = &f->tensors[k];
        ck_assert(t->ndim >= 0 && t->ndim <= LGD_ST_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert(t->shape[d] >= 0);
            numel *= t->shape[d];
        }
        ck_assert_int_eq(t->numel, numel);
        ck_assert_uint_eq(t->nbytes, (size_t)numel * lgd_st_dtype_size(t->dtype));
        ck_assert_msg(t->data >= data && t->data <= end && t->nbytes <= (size_t)(end - t->data),
                      "tensor %zu lies outside the data region", k);
        ck_assert_msg(t->data == at, "tensor %zu does not follow the previous one", k);
        at = t->data + t->nbytes;
        ck_assert_ptr_eq(lgd_st_find(f, t->name), t);
    }
    ck_assert_msg(at == end, "the tensors do not reach the end of the file");
    for (size_t k = 0; k < f->n_meta; k++)
        ck_assert_ptr_nonnull(lgd_st_meta_get(f, f->meta[k].key));
}

/* ------------------------------------------------------------------ round trip */

/* f16 reference: the fields scaled by ldexp. */
static float half_ref(uint32_t h)
{
    int sign = (h >> 15) & 1, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    float v;
    if (e == 31)
        v = m ? ffrom(0x7F800000u | ((uint32_t)m << 13)) : INFINITY;
    else if (e == 0)
        v = (float)ldexp((double)m, -24);
    else
        v = (float)ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

START_TEST(roundtrip_values)
{
    /* f16 (odd count: the tensors after it are unaligned) */
    static const uint16_t h16[] = { 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x7C00,
                                    0xFC00, 0x7E00, 0x8000, 0x3555, 0x7D01, 0x8001 };
    const float h16_want[] = { 1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x3FFp-24f, 0x1p-14f,
                               INFINITY, -INFINITY, NAN, -0.0f, 0x1.554p-2f, NAN, -0x1p-24f };
    const size_t nh = sizeof h16 / sizeof h16[0];
    unsigned char h16b[sizeof h16];
    for (size_t i = 0; i < nh; i++)
        put_le(h16b + 2 * i, h16[i], 2);
    /* f32 [2][3] */
    const float f32[6] = { 1.5f, -0.0f, INFINITY, 0x1p-149f, 3.14159274f, -1e30f };
    unsigned char f32b[sizeof f32];
    for (size_t i = 0; i < 6; i++)
        put_le(f32b + 4 * i, fbits(f32[i]), 4);
    /* bf16 [2][2] */
    static const uint16_t bf[] = { 0x3F80, 0xC040, 0x7F80, 0x0001 };
    const float bf_want[] = { 1.0f, -3.0f, INFINITY, 0x1p-133f };
    unsigned char bfb[sizeof bf];
    for (size_t i = 0; i < 4; i++)
        put_le(bfb + 2 * i, bf[i], 2);
    /* f64 -> f32, round to nearest even */
    const double f64[] = { 0.1, 1.0 + 0x1p-24, 1.0 + 0x3p-24, 1.0 + 0x1p-24 + 0x1p-40, 1e300,
                           -1e300, 1e-50, 0x1p-149, 0x1p-150, 0x3p-151, -2.5, NAN };
    const float f64_want[] = { 0.1f, 1.0f, 1.0f + 0x1p-22f, 1.0f + 0x1p-23f, INFINITY,
                               -INFINITY, 0.0f, 0x1p-149f, 0.0f, 0x1p-149f, -2.5f, NAN };
    const size_t nd = sizeof f64 / sizeof f64[0];
    unsigned char f64b[sizeof f64];
    for (size_t i = 0; i < nd; i++) {
        uint64_t u;
        memcpy(&u, &f64[i], sizeof u);
        put_le(f64b + 8 * i, u, 8);
    }
    const float scalar = 42.0f;
    unsigned char scb[4];
    put_le(scb, fbits(scalar), 4);
    const float eight[2] = { 7.0f, -7.0f };
    unsigned char eightb[8];
    put_le(eightb, fbits(eight[0]), 4);
    put_le(eightb + 4, fbits(eight[1]), 4);
    unsigned char emoji_b[4];
    put_le(emoji_b, fbits(-1.0f), 4);

    const wtensor ts[] = {
        { "half", "F16", 1, { (int64_t)nh }, h16b, sizeof h16b },
        { "w", "F32", 2, { 2, 3 }, f32b, sizeof f32b },
        { "caf\\u00e9.bias", "BF16", 2, { 2, 2 }, bfb, sizeof bfb },
        { "a\\\"b\\\\c\\/d\\n", "F64", 1, { (int64_t)nd }, f64b, sizeof f64b },
        { "scalar", "F32", 0, { 0 }, scb, 4 },
        { "empty", "F32", 2, { 3, 0 }, NULL, 0 },
        { "empty16", "F16", 1, { 0 }, NULL, 0 },
        { "eight", "F32", 8, { 1, 1, 1, 1, 1, 1, 1, 2 }, eightb, 8 },
        { "\\ud83d\\ude00", "F32", 1, { 1 }, emoji_b, 4 },
    };
    const size_t nt = sizeof ts / sizeof ts[0];
    const char *meta = "\"lgd.format\":\"1\",\"lgd.architecture\":\"mlp\","
                       "\"k\\u00e9y\":\"v\\u00e4l \\\"q\\\" \\ud83d\\ude00\",\"empty\":\"\"";

    for (int reverse = 0; reverse <= 1; reverse++) {
        size_t size;
        unsigned char *buf = write_file(ts, nt, meta, reverse, &size);
        lgd_st_file f;
        char err[ERRCAP];
        lgd_status st = lgd_st_parse(buf, size, &f, err, sizeof err);
        ck_assert_msg(st == LGD_OK, "parse -> %d: %s", (int)st, err);
        ck_assert_str_eq(err, "");
        ck_assert_ptr_null(f.owned);
        ck_assert_uint_eq(f.n_tensors, nt);
        assert_consistent(&f, buf, size);

        /* file order of data offsets: the header order, or its reverse */
        const char *order[] = { "half", "w", "caf\xc3\xa9.bias", "a\"b\\c/d\n", "scalar",
                                "empty", "empty16", "eight", "\xf0\x9f\x98\x80" };
        for (size_t k = 0; k < nt; k++) {
            /* zero-size tensors at one offset sort by name: compare as a set there */
            const lgd_st_tensor *t = lgd_st_find(&f, order[k]);
            ck_assert_msg(t != NULL, "tensor %s not found", order[k]);
            if (t->nbytes)
                ck_assert_str_eq(f.tensors[reverse ? nt - 1 - k : k].name, order[k]);
        }
        ck_assert_ptr_null(lgd_st_find(&f, "nope"));
        ck_assert_ptr_null(lgd_st_find(&f, "caf\\u00e9.bias"));

        const lgd_st_tensor *t = lgd_st_find(&f, "half");
        ck_assert_int_eq(t->dtype, LGD_ST_F16);
        ck_assert_int_eq(t->ndim, 1);
        ck_assert_int_eq(t->shape[0], (int64_t)nh);
        float out[64];
        lgd_st_to_f32(t, out);
        for (size_t i = 0; i < nh; i++) {
            if (isnan(h16_want[i]))
                ck_assert_msg(isnan(out[i]) && fbits(out[i]) == (uint32_t)(0x7F800000u | ((h16[i] & 0x3FFu) << 13)),
                              "f16 %04x: NaN payload lost: %08x", h16[i], fbits(out[i]));
            else
                ck_assert_msg(fbits(out[i]) == fbits(h16_want[i]), "f16 %04x -> %a, want %a",
                              h16[i], (double)out[i], (double)h16_want[i]);
        }

        t = lgd_st_find(&f, "w");
        ck_assert_int_eq(t->dtype, LGD_ST_F32);
        ck_assert_int_eq(t->ndim, 2);
        ck_assert_int_eq(t->shape[0], 2);
        ck_assert_int_eq(t->shape[1], 3);
        ck_assert_int_eq(t->numel, 6);
        ck_assert_uint_eq(t->nbytes, 24);
        lgd_st_to_f32(t, out);
        for (size_t i = 0; i < 6; i++)
            ck_assert_uint_eq(fbits(out[i]), fbits(f32[i]));

        t = lgd_st_find(&f, "caf\xc3\xa9.bias");
        ck_assert_int_eq(t->dtype, LGD_ST_BF16);
        lgd_st_to_f32(t, out);
        for (size_t i = 0; i < 4; i++)
            ck_assert_msg(fbits(out[i]) == fbits(bf_want[i]), "bf16 %04x -> %a", bf[i],
                          (double)out[i]);

        t = lgd_st_find(&f, "a\"b\\c/d\n");
        ck_assert_int_eq(t->dtype, LGD_ST_F64);
        lgd_st_to_f32(t, out);
        for (size_t i = 0; i < nd; i++) {
            if (isnan(f64_want[i]))
                ck_assert(isnan(out[i]));
            else
                ck_assert_msg(fbits(out[i]) == fbits(f64_want[i]), "f64 %a -> %a, want %a",
                              f64[i], (double)out[i], (double)f64_want[i]);
        }

        t = lgd_st_find(&f, "scalar");
        ck_assert_int_eq(t->ndim, 0);
        ck_assert_int_eq(t->numel, 1);
        ck_assert_uint_eq(t->nbytes, 4);
        lgd_st_to_f32(t, out);
        ck_assert(out[0] == 42.0f);

        t = lgd_st_find(&f, "empty");
        ck_assert_int_eq(t->ndim, 2);
        ck_assert_int_eq(t->numel, 0);
        ck_assert_uint_eq(t->nbytes, 0);
        out[0] = 5.0f;
        lgd_st_to_f32(t, out);
        ck_assert(out[0] == 5.0f);
        ck_assert_int_eq(lgd_st_find(&f, "empty16")->numel, 0);

        t = lgd_st_find(&f, "eight");
        ck_assert_int_eq(t->ndim, 8);
        ck_assert_int_eq(t->numel, 2);
        lgd_st_to_f32(t, out);
        ck_assert(out[0] == 7.0f && out[1] == -7.0f);

        t = lgd_st_find(&f, "\xf0\x9f\x98\x80");
        lgd_st_to_f32(t, out);
        ck_assert(out[0] == -1.0f);

        ck_assert_uint_eq(f.n_meta, 4);
        ck_assert_str_eq(f.meta[0].key, "lgd.format"); /* header order */
        ck_assert_str_eq(f.meta[3].key, "empty");
        ck_assert_str_eq(lgd_st_meta_get(&f, "lgd.format"), "1");
        ck_assert_str_eq(lgd_st_meta_get(&f, "lgd.architecture"), "mlp");
        ck_assert_str_eq(lgd_st_meta_get(&f, "k\xc3\xa9y"), "v\xc3\xa4l \"q\" \xf0\x9f\x98\x80");
        ck_assert_str_eq(lgd_st_meta_get(&f, "empty"), "");
        ck_assert_ptr_null(lgd_st_meta_get(&f, "lgd.missing"));

        lgd_st_free(&f);
        assert_empty(&f, "after lgd_st_free");
        lgd_st_free(&f); /* twice is fine */
        free(buf);
    }
}
END_TEST

START_TEST(f16_exhaustive)
{
    const size_t n = 65536;
    unsigned char *b = malloc(2 * n);
    float *out = malloc(n * sizeof *out);
    ck_assert(b && out);
    for (size_t h = 0; h < n; h++)
        put_le(b + 2 * h, h, 2);
    wtensor t = { "all", "F16", 1, { (int64_t)n }, b, 2 * n };
    size_t size;
    unsigned char *buf = write_file(&t, 1, NULL, 0, &size);
    lgd_st_file f;
    char err[ERRCAP];
    ck_assert_msg(lgd_st_parse(buf, size, &f, err, sizeof err) == LGD_OK, "%s", err);
    lgd_st_to_f32(&f.tensors[0], out);
    for (uint32_t h = 0; h < n; h++) {
        float want = half_ref(h);
        ck_assert_msg(fbits(out[h]) == fbits(want), "f16 %04x -> %08x, want %08x", h,
                      fbits(out[h]), fbits(want));
    }
    /* bf16: the same bits are the upper half of a float */
    lgd_st_tensor bt = f.tensors[0];
    bt.dtype = LGD_ST_BF16;
    lgd_st_to_f32(&bt, out);
    for (uint32_t h = 0; h < n; h++)
        ck_assert_uint_eq(fbits(out[h]), h << 16);
    lgd_st_free(&f);
    free(buf);
    free(out);
    free(b);
}
END_TEST

/* Valid corner cases: empty headers, padding, whitespace, escaped field names, zero-size
 * tensors at shared offsets, a header of exactly 100 MiB is not refused for its length. */
typedef struct good_case {
    const char *what;
    const char *header; /* single quotes stand for double quotes */
    size_t dlen;
    size_t n_tensors, n_meta;
} good_case;

static char *dequote(const char *s, size_t n)
{
    char *h = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(h);
    for (size_t k = 0; k < n; k++)
        h[k] = s[k] == '\'' ? '"' : s[k];
    return h;
}

START_TEST(valid_corner_cases)
{
    static const good_case cases[] = {
        { "empty header", "{}", 0, 0, 0 },
        { "empty header padded", "{}      ", 0, 0, 0 },
        { "empty metadata", "{'__metadata__':{}}", 0, 0, 0 },
        { "whitespace", "{ 'a' :\t{ 'dtype' : 'F32' ,\n'shape':[ 1 ] ,\r\n'data_offsets':[ 0 , 4 ] } }  ",
          4, 1, 0 },
        { "escaped field names",
          "{'a':{'dt\\u0079pe':'F32','\\u0073hape':[1],'data\\u005foffsets':[0,4]}}", 4, 1, 0 },
        { "field order", "{'a':{'data_offsets':[0,4],'shape':[1],'dtype':'F32'}}", 4, 1, 0 },
        { "escaped __metadata__", "{'__metadata\\u005f_':{'k':'v'}}", 0, 0, 1 },
        { "zero-size tensors share offsets",
          "{'z1':{'dtype':'F32','shape':[0],'data_offsets':[0,0]},"
          "'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
          "'z2':{'dtype':'F64','shape':[0,5],'data_offsets':[4,4]},"
          "'z3':{'dtype':'BF16','shape':[7,0],'data_offsets':[4,4]}}",
          4, 4, 0 },
        { "only zero-size tensors", "{'z':{'dtype':'F16','shape':[0],'data_offsets':[0,0]}}", 0, 1, 0 },
        { "empty name", "{'':{'dtype':'F32','shape':[],'data_offsets':[0,4]}}", 4, 1, 0 },
        { "huge dims with a zero", "{'z':{'dtype':'F32','shape':[0,9223372036854775807],'data_offsets':[0,0]}}",
          0, 1, 0 },
        { "JSON in a metadata string",
          "{'__metadata__':{'a':'[[{}]]'},'t':{'dtype':'F64','shape':[1],'data_offsets':[0,8]}}",
          8, 1, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const good_case *g = &cases[c];
        size_t hlen = strlen(g->header), size;
        char *h = dequote(g->header, hlen);
        unsigned char *zeros = calloc(g->dlen ? g->dlen : 1, 1);
        unsigned char *buf = make_file(hlen, h, hlen, zeros, g->dlen, &size);
        lgd_st_file f;
        char err[ERRCAP];
        lgd_status st = lgd_st_parse(buf, size, &f, err, sizeof err);
        ck_assert_msg(st == LGD_OK, "%s: -> %d: %s", g->what, (int)st, err);
        ck_assert_msg(f.n_tensors == g->n_tensors && f.n_meta == g->n_meta,
                      "%s: %zu tensors, %zu metadata", g->what, f.n_tensors, f.n_meta);
        assert_consistent(&f, buf, size);
        lgd_st_free(&f);
        free(buf);
        free(zeros);
        free(h);
    }
}
END_TEST

/* ------------------------------------------------------------------ bad files */

typedef struct bad_case {
    const char *what;
    const char *header; /* single quotes stand for double quotes */
    size_t hlen;        /* 0: strlen(header) */
    size_t dlen;        /* zero bytes of data */
    lgd_status st;
    const char *msg; /* a substring of the message */
} bad_case;

#define T4 "{'dtype':'F32','shape':[1],'data_offsets':[0,4]}"

static const bad_case bad_cases[] = {
    /* JSON */
    { "unterminated key", "{'a", 0, 0, LGD_ERR_FORMAT, "unterminated string" },
    { "unterminated value", "{'a':{'dtype':'F32", 0, 0, LGD_ERR_FORMAT, "unterminated string" },
    { "missing brace", "{'a':" T4, 0, 4, LGD_ERR_FORMAT, "unexpected end" },
    { "missing brace, padded", "{'a':" T4 "    ", 0, 4, LGD_ERR_FORMAT, "unexpected end" },
    { "only a brace", "{", 0, 0, LGD_ERR_FORMAT, "unexpected end" },
    { "leading space", " {}", 0, 0, LGD_ERR_FORMAT, "does not begin with '{'" },
    { "top-level array", "[]", 0, 0, LGD_ERR_FORMAT, "does not begin with '{'" },
    { "top-level string", "'{}'", 0, 0, LGD_ERR_FORMAT, "does not begin with '{'" },
    { "trailing garbage", "{} x", 0, 0, LGD_ERR_FORMAT, "trailing bytes" },
    { "trailing object", "{}{}", 0, 0, LGD_ERR_FORMAT, "trailing bytes" },
    { "trailing newline", "{}\n", 0, 0, LGD_ERR_FORMAT, "trailing bytes" },
    { "trailing tab", "{} \t", 0, 0, LGD_ERR_FORMAT, "trailing bytes" },
    { "trailing NUL", "{}\0", 3, 0, LGD_ERR_FORMAT, "trailing bytes" },
    { "NUL inside", "{\0}", 3, 0, LGD_ERR_FORMAT, "a string key expected" },
    { "trailing comma", "{'__metadata__':{'a':'b',}}", 0, 0, LGD_ERR_FORMAT, "a string key expected" },
    { "trailing comma in array", "{'a':{'dtype':'F32','shape':[1,],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "a value expected" },
    { "missing colon", "{'a' 1}", 0, 0, LGD_ERR_FORMAT, "':' expected" },
    { "missing comma", "{'a':1 'b':2}", 0, 0, LGD_ERR_FORMAT, "',' or '}' expected" },
    { "unquoted key", "{a:1}", 0, 0, LGD_ERR_FORMAT, "a string key expected" },
    { "bad escape", "{'a\\x':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid escape" },
    { "escape at end", "{'a\\", 0, 0, LGD_ERR_FORMAT, "unterminated string" },
    { "short \\u", "{'\\u12':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid \\u escape" },
    { "\\u at end", "{'\\u12", 0, 0, LGD_ERR_FORMAT, "invalid \\u escape" },
    { "non-hex \\u", "{'\\u12G4':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid \\u escape" },
    { "lone high surrogate", "{'\\ud800':" T4 "}", 0, 4, LGD_ERR_FORMAT, "unpaired high surrogate" },
    { "high surrogate at end", "{'\\ud800", 0, 0, LGD_ERR_FORMAT, "unpaired high surrogate" },
    { "high then BMP", "{'\\ud800\\u0041':" T4 "}", 0, 4, LGD_ERR_FORMAT, "unpaired high surrogate" },
    { "high then high", "{'\\ud800\\ud800':" T4 "}", 0, 4, LGD_ERR_FORMAT, "unpaired high surrogate" },
    { "lone low surrogate", "{'\\udc00':" T4 "}", 0, 4, LGD_ERR_FORMAT, "unpaired low surrogate" },
    { "\\u0000", "{'a\\u0000b':" T4 "}", 0, 4, LGD_ERR_FORMAT, "NUL" },
    { "control character", "{'a\x01" "b':" T4 "}", 0, 4, LGD_ERR_FORMAT, "control character" },
    { "raw newline in string", "{'a\nb':" T4 "}", 0, 4, LGD_ERR_FORMAT, "control character" },
    { "raw tab in string", "{'__metadata__':{'k':'a\tb'}}", 0, 0, LGD_ERR_FORMAT, "control character" },
    { "overlong UTF-8", "{'\xc0\x80':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "overlong 3-byte UTF-8", "{'\xe0\x80\xaf':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "UTF-8 surrogate", "{'\xed\xa0\x80':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "UTF-8 beyond U+10FFFF", "{'\xf4\x90\x80\x80':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "truncated UTF-8", "{'\xe2\x82':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "UTF-8 cut by the header end", "{'\xe2\x82", 0, 0, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "stray continuation byte", "{'\x80':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "0xFF byte", "{'\xff':" T4 "}", 0, 4, LGD_ERR_FORMAT, "invalid UTF-8" },
    { "non-ASCII outside strings", "{\xc3\xa9}", 0, 0, LGD_ERR_FORMAT, "a string key expected" },
    { "leading zero", "{'a':{'dtype':'F32','shape':[01],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "',' or ']' expected" },
    { "bare minus", "{'a':{'dtype':'F32','shape':[-],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "invalid number" },
    { "dot without digits", "{'a':{'dtype':'F32','shape':[1.],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "invalid number" },
    { "exponent without digits", "{'a':{'dtype':'F32','shape':[1e],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "invalid number" },
    { "plus sign", "{'a':{'dtype':'F32','shape':[+1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "a value expected" },
    { "bad literal", "{'a':tru}", 0, 0, LGD_ERR_FORMAT, "invalid literal" },
    { "literal cut", "{'a':nul", 0, 0, LGD_ERR_FORMAT, "invalid literal" },
    { "NaN literal", "{'a':NaN}", 0, 0, LGD_ERR_FORMAT, "a value expected" },
    /* header layout */
    { "zero-length data, value cut", "{'a':", 0, 0, LGD_ERR_FORMAT, "a value expected" },
    /* dtypes */
    { "dtype I64", "{'a':{'dtype':'I64','shape':[1],'data_offsets':[0,8]}}", 0, 8,
      LGD_ERR_UNSUPPORTED, "dtype 'I64' is not supported" },
    { "dtype BOOL", "{'a':{'dtype':'BOOL','shape':[1],'data_offsets':[0,1]}}", 0, 1,
      LGD_ERR_UNSUPPORTED, "'BOOL'" },
    { "dtype F8_E4M3", "{'a':{'dtype':'F8_E4M3','shape':[1],'data_offsets':[0,1]}}", 0, 1,
      LGD_ERR_UNSUPPORTED, "'F8_E4M3'" },
    { "dtype U8", "{'x':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}", 0, 1,
      LGD_ERR_UNSUPPORTED, "tensor 'x': dtype 'U8'" },
    { "dtype f32 (case)", "{'a':{'dtype':'f32','shape':[1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "unknown dtype 'f32'" },
    { "dtype empty", "{'a':{'dtype':'','shape':[1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "unknown dtype ''" },
    { "dtype F32 with a NUL escape", "{'a':{'dtype':'F32\\u0000','shape':[1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "NUL" },
    { "dtype a number", "{'a':{'dtype':32,'shape':[1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "dtype is not a string" },
    /* shapes */
    { "negative dim", "{'a':{'dtype':'F32','shape':[-1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "tensor 'a': shape[0] is negative" },
    { "minus zero dim", "{'a':{'dtype':'F32','shape':[1,-0],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape[1] is negative" },
    { "fractional dim", "{'a':{'dtype':'F32','shape':[1.5],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape[0] is not an integer" },
    { "integral fraction dim", "{'a':{'dtype':'F32','shape':[1.0],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape[0] is not an integer" },
    { "exponent dim", "{'a':{'dtype':'F32','shape':[1e0],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "not an integer" },
    { "Exponent dim", "{'a':{'dtype':'F32','shape':[1E+0],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "not an integer" },
    { "string dim", "{'a':{'dtype':'F32','shape':['1'],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape[0] is not an integer" },
    { "null dim", "{'a':{'dtype':'F32','shape':[null],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape[0] is not an integer" },
    { "nested dim", "{'a':{'dtype':'F32','shape':[[1]],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape[0] is not an integer" },
    { "dim 2^63", "{'a':{'dtype':'F32','shape':[9223372036854775808],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "too large for int64" },
    { "dim of 30 digits", "{'a':{'dtype':'F32','shape':[123456789012345678901234567890],'data_offsets':[0,4]}}",
      0, 4, LGD_ERR_FORMAT, "too large for int64" },
    { "numel overflow", "{'a':{'dtype':'F32','shape':[4294967296,4294967296],'data_offsets':[0,4]}}",
      0, 4, LGD_ERR_FORMAT, "too many elements" },
    { "numel overflow, max dim", "{'a':{'dtype':'F32','shape':[9223372036854775807,2],'data_offsets':[0,4]}}",
      0, 4, LGD_ERR_FORMAT, "too many elements" },
    { "partial product overflow before a 0",
      "{'a':{'dtype':'F32','shape':[4611686018427387904,2,0],'data_offsets':[0,0]}}", 0, 0,
      LGD_ERR_FORMAT, "too many elements" },
    { "byte count overflow", "{'a':{'dtype':'F64','shape':[2305843009213693952],'data_offsets':[0,8]}}",
      0, 8, LGD_ERR_FORMAT, "too many elements" },
    { "product wraps to a small number",
      "{'a':{'dtype':'F32','shape':[4294967296,4294967296,4294967296,4294967296],'data_offsets':[0,0]}}",
      0, 0, LGD_ERR_FORMAT, "too many elements" },
    { "shape not an array", "{'a':{'dtype':'F32','shape':1,'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape is not an array" },
    { "shape an object", "{'a':{'dtype':'F32','shape':{},'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "shape is not an array" },
    { "nine dims", "{'a':{'dtype':'F32','shape':[1,1,1,1,1,1,1,1,1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "more than 8 dimensions" },
    /* offsets */
    { "past the end", "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 0, 4,
      LGD_ERR_FORMAT, "tensor 'a': data_offsets [0, 8] run past the end of the data (4 bytes)" },
    { "far past the end", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[9223372036854775803,9223372036854775807]}}",
      0, 4, LGD_ERR_FORMAT, "run past the end" },
    { "offset 2^64-1", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,18446744073709551615]}}",
      0, 4, LGD_ERR_FORMAT, "data_offsets[1] is too large for int64" },
    { "negative offset", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[-4,0]}}", 0, 4,
      LGD_ERR_FORMAT, "data_offsets[0] is negative" },
    { "fractional offset", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4.0]}}", 0, 4,
      LGD_ERR_FORMAT, "data_offsets[1] is not an integer" },
    { "reversed", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[4,0]}}", 0, 4,
      LGD_ERR_FORMAT, "tensor 'a': data_offsets [4, 0] are reversed" },
    { "size mismatch", "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "hold 4 bytes but F32 [2] needs 8" },
    { "size mismatch (itemsize)", "{'a':{'dtype':'F16','shape':[2,1],'data_offsets':[0,8]}}", 0, 8,
      LGD_ERR_FORMAT, "hold 8 bytes but F16 [2, 1] needs 4" },
    { "scalar of 0 bytes", "{'a':{'dtype':'F32','shape':[],'data_offsets':[0,0]}}", 0, 0,
      LGD_ERR_FORMAT, "needs 4" },
    { "overlap",
      "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}",
      0, 12, LGD_ERR_FORMAT, "tensors 'a' and 'b' overlap" },
    { "same offsets",
      "{'b':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}",
      0, 4, LGD_ERR_FORMAT, "overlap" },
    { "zero-size tensor inside another",
      "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'z':{'dtype':'F32','shape':[0],'data_offsets':[4,4]}}",
      0, 8, LGD_ERR_FORMAT, "overlap" },
    { "hole",
      "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},'b':{'dtype':'F32','shape':[1],'data_offsets':[8,12]}}",
      0, 12, LGD_ERR_FORMAT, "hole in the data: no tensor holds bytes [4, 8) before tensor 'b'" },
    { "hole at the start", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}", 0, 8,
      LGD_ERR_FORMAT, "no tensor holds bytes [0, 4)" },
    { "bytes left over", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 0, 8,
      LGD_ERR_FORMAT, "the tensors cover 4 of the 8 data bytes" },
    { "data but no tensors", "{}", 0, 4, LGD_ERR_FORMAT, "cover 0 of the 4" },
    { "one offset", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0]}}", 0, 4,
      LGD_ERR_FORMAT, "data_offsets has 1 entries, not 2" },
    { "no offsets", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[]}}", 0, 4,
      LGD_ERR_FORMAT, "data_offsets has 0 entries" },
    { "three offsets", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4,4]}}", 0, 4,
      LGD_ERR_FORMAT, "more than 2 entries" },
    { "offsets an object", "{'a':{'dtype':'F32','shape':[1],'data_offsets':{}}}", 0, 4,
      LGD_ERR_FORMAT, "data_offsets is not an array" },
    /* tensor entries */
    { "no dtype", "{'a':{'shape':[1],'data_offsets':[0,4]}}", 0, 4, LGD_ERR_FORMAT, "tensor 'a': no dtype" },
    { "no shape", "{'a':{'dtype':'F32','data_offsets':[0,4]}}", 0, 4, LGD_ERR_FORMAT, "no shape" },
    { "no offsets field", "{'a':{'dtype':'F32','shape':[1]}}", 0, 4, LGD_ERR_FORMAT, "no data_offsets" },
    { "empty entry", "{'a':{}}", 0, 0, LGD_ERR_FORMAT, "no dtype" },
    { "unknown field", "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4],'foo':1}}", 0, 4,
      LGD_ERR_FORMAT, "unknown field 'foo'" },
    { "duplicate field", "{'a':{'dtype':'F32','dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 0, 4,
      LGD_ERR_FORMAT, "duplicate field dtype" },
    { "duplicate escaped field", "{'a':{'shape':[1],'dtype':'F32','\\u0073hape':[1],'data_offsets':[0,4]}}",
      0, 4, LGD_ERR_FORMAT, "duplicate field shape" },
    { "entry an array", "{'a':[1]}", 0, 0, LGD_ERR_FORMAT, "tensor 'a': entry is not an object" },
    { "entry a string", "{'a':'F32'}", 0, 0, LGD_ERR_FORMAT, "entry is not an object" },
    { "entry null", "{'a':null}", 0, 0, LGD_ERR_FORMAT, "entry is not an object" },
    { "duplicate names",
      "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},'a':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}",
      0, 8, LGD_ERR_FORMAT, "duplicate tensor name 'a'" },
    { "duplicate names after unescaping",
      "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},'\\u0061':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}",
      0, 8, LGD_ERR_FORMAT, "duplicate tensor name 'a'" },
    /* metadata */
    { "metadata number value", "{'__metadata__':{'k':1}}", 0, 0, LGD_ERR_FORMAT,
      "metadata value of key 'k' is not a string" },
    { "metadata null value", "{'__metadata__':{'k':null}}", 0, 0, LGD_ERR_FORMAT, "is not a string" },
    { "metadata object value", "{'__metadata__':{'k':{}}}", 0, 0, LGD_ERR_FORMAT, "is not a string" },
    { "metadata array value", "{'__metadata__':{'k':['v']}}", 0, 0, LGD_ERR_FORMAT, "is not a string" },
    { "metadata a string", "{'__metadata__':'x'}", 0, 0, LGD_ERR_FORMAT, "\"__metadata__\" is not an object" },
    { "metadata null", "{'__metadata__':null}", 0, 0, LGD_ERR_FORMAT, "is not an object" },
    { "metadata an array", "{'__metadata__':[]}", 0, 0, LGD_ERR_FORMAT, "is not an object" },
    { "duplicate metadata key", "{'__metadata__':{'k':'1','j':'2','k':'3'}}", 0, 0, LGD_ERR_FORMAT,
      "duplicate metadata key 'k'" },
    { "duplicate metadata key after unescaping", "{'__metadata__':{'k':'1','\\u006b':'3'}}", 0, 0,
      LGD_ERR_FORMAT, "duplicate metadata key 'k'" },
    { "duplicate __metadata__", "{'__metadata__':{},'__metadata__':{}}", 0, 0, LGD_ERR_FORMAT,
      "duplicate \"__metadata__\"" },
};

/* Parses header (quotes converted) + dlen zero bytes; checks status, message, emptiness. */
static void expect_bad(const char *what, const char *header, size_t hlen, size_t dlen,
                       lgd_status want, const char *msg)
{
    if (hlen == 0)
        hlen = strlen(header);
    char *h = dequote(header, hlen);
    unsigned char *zeros = calloc(dlen ? dlen : 1, 1);
    ck_assert_ptr_nonnull(zeros);
    size_t size;
    unsigned char *buf = make_file(hlen, h, hlen, zeros, dlen, &size);
    lgd_st_file f;
    memset(&f, 0xA5, sizeof f); /* garbage in: the parser must empty it */
    char err[ERRCAP];
    lgd_status st = lgd_st_parse(buf, size, &f, err, sizeof err);
    ck_assert_msg(st == want, "%s: -> %d (%s), expected %d", what, (int)st, err, (int)want);
    assert_message(err, what);
    ck_assert_msg(strstr(err, msg) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err, msg);
    assert_empty(&f, what);
    lgd_st_free(&f);
    free(buf);
    free(zeros);
    free(h);
}

START_TEST(bad_files)
{
    for (size_t c = 0; c < sizeof bad_cases / sizeof bad_cases[0]; c++) {
        const bad_case *b = &bad_cases[c];
        expect_bad(b->what, b->header, b->hlen, b->dlen, b->st, b->msg);
    }
}
END_TEST

START_TEST(deep_nesting)
{
    /* {"a": [[[...]]] }: 64 levels in all are valid JSON (then not a tensor), 65 and
     * 10000 are not. */
    const int levels[] = { 63, 64, 10000 };
    for (size_t k = 0; k < 3; k++) {
        int n = levels[k];
        sbuf h = { 0 };
        sb_put(&h, "{'a':", 5);
        for (int i = 0; i < n; i++)
            sb_put(&h, "[", 1);
        for (int i = 0; i < n; i++)
            sb_put(&h, "]", 1);
        sb_put(&h, "}", 1);
        char what[64];
        snprintf(what, sizeof what, "%d arrays deep", n);
        if (n + 1 <= LGD_ST_MAX_DEPTH)
            expect_bad(what, h.p, 0, 0, LGD_ERR_FORMAT, "tensor 'a': entry is not an object");
        else
            expect_bad(what, h.p, 0, 0, LGD_ERR_FORMAT, "nested deeper than 64 levels");
        free(h.p);
    }
    /* objects too, inside the metadata */
    sbuf h = { 0 };
    sb_put(&h, "{'__metadata__':", 16);
    for (int i = 0; i < 10000; i++)
        sb_put(&h, "{'k':", 5);
    sb_put(&h, "'v'", 3);
    for (int i = 0; i < 10000; i++)
        sb_put(&h, "}", 1);
    sb_put(&h, "}", 1);
    expect_bad("10000 objects deep", h.p, 0, 0, LGD_ERR_FORMAT, "nested deeper");
    free(h.p);
    /* unterminated deep nesting */
    sbuf u = { 0 };
    sb_put(&u, "{'a':", 5);
    for (int i = 0; i < 10000; i++)
        sb_put(&u, "[", 1);
    expect_bad("10000 open arrays", u.p, 0, 0, LGD_ERR_FORMAT, "nested deeper");
    free(u.p);
}
END_TEST

/* A raw file (length prefix given as is). */
static void expect_bad_raw(const char *what, const unsigned char *bytes, size_t size,
                           lgd_status want, const char *msg)
{
    unsigned char *buf = malloc(size ? size : 1);
    ck_assert_ptr_nonnull(buf);
    if (size)
        memcpy(buf, bytes, size);
    lgd_st_file f;
    char err[ERRCAP];
    lgd_status st = lgd_st_parse(size ? buf : NULL, size, &f, err, sizeof err);
    ck_assert_msg(st == want, "%s: -> %d (%s), expected %d", what, (int)st, err, (int)want);
    assert_message(err, what);
    ck_assert_msg(strstr(err, msg) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err, msg);
    assert_empty(&f, what);
    free(buf);
}

START_TEST(header_length)
{
    unsigned char b[64];
    memset(b, ' ', sizeof b);
    expect_bad_raw("empty file", b, 0, LGD_ERR_FORMAT, "a file of 0 bytes is too short");
    put_le(b, 2, 8);
    expect_bad_raw("7 bytes", b, 7, LGD_ERR_FORMAT, "7 bytes is too short");
    put_le(b, 0, 8);
    expect_bad_raw("length 0, nothing after", b, 8, LGD_ERR_FORMAT, "header length is 0");
    expect_bad_raw("length 0, bytes after", b, 20, LGD_ERR_FORMAT, "header length is 0");
    memcpy(b + 8, "{}", 2);
    put_le(b, 3, 8);
    expect_bad_raw("length one past the file", b, 10, LGD_ERR_FORMAT,
                   "header length 3 runs past the end of the file (2 bytes after the length)");
    put_le(b, 100, 8);
    expect_bad_raw("length past the file", b, 10, LGD_ERR_FORMAT, "runs past the end");
    put_le(b, (uint64_t)1 << 63, 8);
    expect_bad_raw("length 2^63", b, 10, LGD_ERR_FORMAT,
                   "header length 9223372036854775808 is over the limit");
    put_le(b, UINT64_MAX, 8);
    expect_bad_raw("length 2^64-1", b, 10, LGD_ERR_FORMAT, "is over the limit");
    put_le(b, UINT64_MAX - 7, 8); /* 8 + N wraps to 0 */
    expect_bad_raw("length 2^64-8", b, 10, LGD_ERR_FORMAT, "is over the limit");
    put_le(b, LGD_ST_MAX_HEADER + 1, 8);
    expect_bad_raw("length 100 MiB + 1", b, 10, LGD_ERR_FORMAT, "over the limit of 104857600");
    put_le(b, LGD_ST_MAX_HEADER, 8); /* not over the limit: refused for the file size */
    expect_bad_raw("length 100 MiB", b, 10, LGD_ERR_FORMAT, "runs past the end");
    put_le(b, 2, 8);
    memcpy(b + 8, "{}", 2);
    lgd_st_file f;
    char err[ERRCAP];
    unsigned char *ok = malloc(10);
    memcpy(ok, b, 10);
    ck_assert_int_eq(lgd_st_parse(ok, 10, &f, err, sizeof err), LGD_OK);
    ck_assert_uint_eq(f.n_tensors, 0);
    lgd_st_free(&f);
    free(ok);
}
END_TEST

/* A valid file with several tensors and metadata, for truncation and fuzzing. */
static unsigned char *sample_file(size_t *size)
{
    static float w[12], bias[3];
    static uint16_t h[5] = { 0x3C00, 0x0001, 0x7C00, 0xFE00, 0x8400 };
    static double d[3] = { 0.1, -1e300, 2.0 };
    unsigned char wb[48], bb[12], hb[10], db[24], bf[4];
    for (int i = 0; i < 12; i++) {
        w[i] = (float)i - 5.5f;
        put_le(wb + 4 * i, fbits(w[i]), 4);
    }
    for (int i = 0; i < 3; i++) {
        bias[i] = 0.25f * (float)i;
        put_le(bb + 4 * i, fbits(bias[i]), 4);
        uint64_t u;
        memcpy(&u, &d[i], 8);
        put_le(db + 8 * i, u, 8);
    }
    for (int i = 0; i < 5; i++)
        put_le(hb + 2 * i, h[i], 2);
    put_le(bf, 0x3F80, 2);
    put_le(bf + 2, 0xBF80, 2);
    const wtensor ts[] = {
        { "layer.0.weight", "F32", 2, { 3, 4 }, wb, sizeof wb },
        { "layer.0.bias", "F32", 1, { 3 }, bb, sizeof bb },
        { "h\\u00e9", "F16", 1, { 5 }, hb, sizeof hb },
        { "d", "F64", 2, { 1, 3 }, db, sizeof db },
        { "s", "BF16", 1, { 2 }, bf, sizeof bf },
        { "empty", "F32", 2, { 0, 4 }, NULL, 0 },
        { "t", "F32", 0, { 0 }, bb, 4 },
    };
    return write_file(ts, sizeof ts / sizeof ts[0],
                      "\"lgd.format\":\"1\",\"lgd.architecture\":\"mlp\",\"lgd.dim\":\"12\"", 1,
                      size);
}

START_TEST(every_prefix_fails)
{
    size_t size;
    unsigned char *full = sample_file(&size);
    lgd_st_file f;
    char err[ERRCAP];
    ck_assert_int_eq(lgd_st_parse(full, size, &f, err, sizeof err), LGD_OK);
    ck_assert_uint_eq(f.n_tensors, 7);
    lgd_st_free(&f);
    for (size_t len = 0; len < size; len++) {
        unsigned char *p = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(p);
        memcpy(p, full, len);
        lgd_status st = lgd_st_parse(p, len, &f, err, sizeof err);
        char what[64];
        snprintf(what, sizeof what, "prefix of %zu of %zu bytes", len, size);
        ck_assert_msg(st == LGD_ERR_FORMAT, "%s: -> %d (%s)", what, (int)st, err);
        assert_message(err, what);
        assert_empty(&f, what);
        free(p);
    }
    /* a shorter header length over the same bytes fails too (the JSON is cut) */
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = (hlen << 8) | full[k];
    for (uint64_t n = 1; n < hlen; n++) {
        unsigned char *p = malloc(size);
        memcpy(p, full, size);
        put_le(p, n, 8);
        lgd_status st = lgd_st_parse(p, size, &f, err, sizeof err);
        ck_assert_msg(st == LGD_ERR_FORMAT, "header length %llu: -> %d (%s)",
                      (unsigned long long)n, (int)st, err);
        free(p);
    }
    free(full);
}
END_TEST

START_TEST(messages)
{
    /* names in messages are escaped (one line) and shortened */
    sbuf h = { 0 };
    sb_str(&h, "{'line\\nbreak\\u0001");
    for (int i = 0; i < 300; i++)
        sb_put(&h, "x", 1);
    sb_str(&h, "':{'dtype':'F32','shape':[1],'data_offsets':[4,0]}}");
    char *hd = dequote(h.p, h.n);
    size_t size;
    unsigned char *zeros = calloc(4, 1);
    unsigned char *buf = make_file(h.n, hd, h.n, zeros, 4, &size);
    lgd_st_file f;
    char err[ERRCAP];
    ck_assert_int_eq(lgd_st_parse(buf, size, &f, err, sizeof err), LGD_ERR_FORMAT);
    assert_message(err, "long name");
    ck_assert_msg(strstr(err, "'line\\x0abreak\\x01xxx") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "...'") != NULL && strstr(err, "reversed") != NULL, "%s", err);
    ck_assert_msg(strlen(err) < 200, "message of %zu chars", strlen(err));

    /* a short buffer is truncated, NUL-terminated, never overrun */
    char small[16];
    memset(small, 'Z', sizeof small);
    ck_assert_int_eq(lgd_st_parse(buf, size, &f, small, 8), LGD_ERR_FORMAT);
    ck_assert_uint_eq(strlen(small), 7);
    for (size_t k = 8; k < sizeof small; k++)
        ck_assert_int_eq(small[k], 'Z');
    /* err may be NULL or of length 0 */
    ck_assert_int_eq(lgd_st_parse(buf, size, &f, NULL, 0), LGD_ERR_FORMAT);
    small[0] = 'Q';
    ck_assert_int_eq(lgd_st_parse(buf, size, &f, small, 0), LGD_ERR_FORMAT);
    ck_assert_int_eq(small[0], 'Q');
    free(buf);
    free(zeros);
    free(hd);
    free(h.p);

    /* a long name shortened at a character boundary (é is 2 bytes) */
    sbuf u = { 0 };
    sb_put(&u, "{'", 2);
    for (int i = 0; i < 200; i++)
        sb_put(&u, "\xc3\xa9", 2);
    sb_str(&u, "':{'dtype':'F32','shape':[1],'data_offsets':[4,0]}}");
    hd = dequote(u.p, u.n);
    zeros = calloc(4, 1);
    buf = make_file(u.n, hd, u.n, zeros, 4, &size);
    ck_assert_int_eq(lgd_st_parse(buf, size, &f, err, sizeof err), LGD_ERR_FORMAT);
    const char *q = strstr(err, "...'");
    ck_assert_ptr_nonnull(q);
    ck_assert_msg((unsigned char)q[-2] == 0xC3 && (unsigned char)q[-1] == 0xA9,
                  "cut inside a character: %s", err);
    free(buf);
    free(zeros);
    free(hd);
    free(u.p);
}
END_TEST

START_TEST(arguments)
{
    lgd_st_file f;
    char err[ERRCAP];
    unsigned char b[10] = { 2, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
    ck_assert_int_eq(lgd_st_parse(NULL, 10, &f, err, sizeof err), LGD_ERR_INVALID_ARGUMENT);
    assert_message(err, "NULL data");
    assert_empty(&f, "NULL data");
    ck_assert_int_eq(lgd_st_parse(b, 10, NULL, err, sizeof err), LGD_ERR_INVALID_ARGUMENT);
    assert_message(err, "NULL out");
    ck_assert_int_eq(lgd_st_parse(NULL, 0, &f, err, sizeof err), LGD_ERR_FORMAT);
    ck_assert_int_eq(lgd_st_read_file(NULL, &f, err, sizeof err), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_st_read_file("x", NULL, err, sizeof err), LGD_ERR_INVALID_ARGUMENT);
    lgd_st_free(NULL);
    ck_assert_ptr_null(lgd_st_find(NULL, "a"));
    ck_assert_ptr_null(lgd_st_meta_get(NULL, "a"));
    ck_assert_int_eq(lgd_st_parse(b, 10, &f, err, sizeof err), LGD_OK);
    ck_assert_ptr_null(lgd_st_find(&f, NULL));
    ck_assert_ptr_null(lgd_st_find(&f, "a"));
    ck_assert_ptr_null(lgd_st_meta_get(&f, NULL));
    ck_assert_ptr_null(lgd_st_meta_get(&f, "a"));
    lgd_st_free(&f);
    ck_assert_uint_eq(lgd_st_dtype_size(LGD_ST_F32), 4);
    ck_assert_uint_eq(lgd_st_dtype_size(LGD_ST_F16), 2);
    ck_assert_uint_eq(lgd_st_dtype_size(LGD_ST_BF16), 2);
    ck_assert_uint_eq(lgd_st_dtype_size(LGD_ST_F64), 8);
    ck_assert_str_eq(lgd_st_dtype_name(LGD_ST_BF16), "BF16");
}
END_TEST

/* ------------------------------------------------------------------ mutation fuzz */

typedef struct prng {
    uint64_t s;
} prng;

/* xorshift64* */
static uint64_t prng_next(prng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

static size_t prng_below(prng *r, size_t n) { return n ? (size_t)(prng_next(r) % n) : 0; }

static uint64_t get_hlen(const unsigned char *b, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | b[k];
    return v;
}

/* A position in the header part of b (clamped to the buffer), or in the whole buffer. */
static size_t header_pos(prng *r, const unsigned char *b, size_t size)
{
    uint64_t n = get_hlen(b, size);
    if (size <= 8)
        return prng_below(r, size);
    if (n == 0 || n > size - 8)
        n = size - 8;
    return 8 + prng_below(r, (size_t)n);
}

/* One random mutation of the size bytes at b (capacity cap). */
static void mutate(prng *r, unsigned char *b, size_t *size, size_t cap)
{
    static const char interesting[] = "{}[]\":,\\-+.0123456789eEu \t\nIFBx";
    static const unsigned char raw[] = { 0x00, 0x01, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC3,
                                         0xE0, 0xED, 0xF0, 0xF4, 0xFF };
    size_t n = *size;
    switch (prng_below(r, 9)) {
    case 0: /* flip a header byte */
        if (n) {
            size_t p = header_pos(r, b, n);
            b[p] ^= (unsigned char)(1 + prng_below(r, 255));
        }
        break;
    case 1: /* a header byte becomes a JSON-significant character */
        if (n) {
            size_t p = header_pos(r, b, n);
            b[p] = (unsigned char)interesting[prng_below(r, sizeof interesting - 1)];
        }
        break;
    case 2: /* a header byte becomes a UTF-8 edge byte */
        if (n) {
            size_t p = header_pos(r, b, n);
            b[p] = raw[prng_below(r, sizeof raw)];
        }
        break;
    case 3: { /* the length prefix */
        if (n < 8)
            break;
        uint64_t v = get_hlen(b, n);
        switch (prng_below(r, 5)) {
        case 0: v += (uint64_t)prng_below(r, 7) - 3; break;
        case 1: v = prng_next(r); break;
        case 2: v = (uint64_t)1 << prng_below(r, 64); break;
        case 3: v = n - 8 - prng_below(r, 3); break;
        default: v ^= (uint64_t)0xFF << (8 * prng_below(r, 8)); break;
        }
        put_le(b, v, 8);
        break;
    }
    case 4: /* truncate */
        *size = prng_below(r, n + 1);
        break;
    case 5: { /* insert digits into the header, usually fixing the length */
        size_t k = 1 + prng_below(r, 3);
        if (n + k > cap || n < 9)
            break;
        size_t p = header_pos(r, b, n);
        memmove(b + p + k, b + p, n - p);
        for (size_t j = 0; j < k; j++)
            b[p + j] = (unsigned char)('0' + prng_below(r, 10));
        *size = n + k;
        if (prng_below(r, 4))
            put_le(b, get_hlen(b, n) + k, 8);
        break;
    }
    case 6: { /* delete a header byte, usually fixing the length */
        if (n < 9)
            break;
        size_t p = header_pos(r, b, n);
        memmove(b + p, b + p + 1, n - p - 1);
        *size = n - 1;
        if (prng_below(r, 4))
            put_le(b, get_hlen(b, n) - 1, 8);
        break;
    }
    case 7: /* a data byte (the header stays valid) */
        if (n)
            b[n - 1 - prng_below(r, n < 64 ? n : 64)] ^= (unsigned char)(1 + prng_below(r, 255));
        break;
    default: { /* swap two header bytes */
        if (n < 9)
            break;
        size_t p = header_pos(r, b, n), q = header_pos(r, b, n);
        unsigned char t = b[p];
        b[p] = b[q];
        b[q] = t;
        break;
    }
    }
}

START_TEST(mutation_fuzz)
{
    size_t base_size;
    unsigned char *base = sample_file(&base_size);
    const size_t cap = base_size + 64;
    unsigned char *work = malloc(cap);
    ck_assert_ptr_nonnull(work);
    const int iters = quick_mode() ? 500 : 20000;
    prng r = { 0x9E3779B97F4A7C15ull };
    int n_ok = 0, n_err = 0;
    char err[ERRCAP];
    for (int it = 0; it < iters; it++) {
        memcpy(work, base, base_size);
        size_t size = base_size;
        int muts = 1 + (int)prng_below(&r, 3);
        for (int m = 0; m < muts; m++)
            mutate(&r, work, &size, cap);
        unsigned char *buf = malloc(size ? size : 1); /* exactly sized */
        ck_assert_ptr_nonnull(buf);
        memcpy(buf, work, size);
        lgd_st_file f;
        lgd_status st = lgd_st_parse(buf, size, &f, err, sizeof err);
        char what[64];
        snprintf(what, sizeof what, "fuzz iteration %d", it);
        if (st == LGD_OK) {
            n_ok++;
            assert_consistent(&f, buf, size);
            for (size_t k = 0; k < f.n_tensors; k++) {
                const lgd_st_tensor *t = &f.tensors[k];
                float *out = malloc(t->numel ? (size_t)t->numel * sizeof *out : 1);
                ck_assert_ptr_nonnull(out);
                lgd_st_to_f32(t, out);
                free(out);
            }
        } else {
            n_err++;
            ck_assert_msg(st == LGD_ERR_FORMAT || st == LGD_ERR_UNSUPPORTED,
                          "%s: status %d (%s)", what, (int)st, err);
            assert_message(err, what);
            assert_empty(&f, what);
        }
        lgd_st_free(&f);
        free(buf);
    }
    ck_assert_msg(n_ok > 0 && n_err > 0, "fuzz: %d parsed, %d refused", n_ok, n_err);
    free(work);
    free(base);
}
END_TEST

/* ------------------------------------------------------------------ files */

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(b, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(read_file)
{
    char tmpl[] = "/tmp/lgd-safetensors-test.XXXXXX";
    char *dir = mkdtemp(tmpl);
    ck_assert_msg(dir != NULL, "mkdtemp: %s", strerror(errno));
    char good[512], empty[512], cut[512], missing[512];
    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    snprintf(empty, sizeof empty, "%s/empty.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
    size_t size;
    unsigned char *bytes = sample_file(&size);
    write_bytes(good, bytes, size);
    write_bytes(empty, bytes, 0);
    write_bytes(cut, bytes, size - 1);

    lgd_st_file f;
    char err[ERRCAP];
    lgd_status st = lgd_st_read_file(good, &f, err, sizeof err);
    ck_assert_msg(st == LGD_OK, "%s", err);
    ck_assert_str_eq(err, "");
    ck_assert_ptr_nonnull(f.owned);
    ck_assert_ptr_eq(f.bytes, f.owned);
    ck_assert_uint_eq(f.size, size);
    ck_assert_int_eq(memcmp(f.bytes, bytes, size), 0);
    assert_consistent(&f, f.owned, size);
    ck_assert_uint_eq(f.n_tensors, 7);
    ck_assert_str_eq(lgd_st_meta_get(&f, "lgd.dim"), "12");
    const lgd_st_tensor *w = lgd_st_find(&f, "layer.0.weight");
    ck_assert_ptr_nonnull(w);
    float out[12];
    lgd_st_to_f32(w, out);
    for (int i = 0; i < 12; i++)
        ck_assert(out[i] == (float)i - 5.5f);
    const lgd_st_tensor *h = lgd_st_find(&f, "h\xc3\xa9");
    ck_assert_ptr_nonnull(h);
    lgd_st_to_f32(h, out);
    ck_assert(out[0] == 1.0f && out[1] == 0x1p-24f && isinf(out[2]) && isnan(out[3]) &&
              out[4] == -0x1p-14f);
    lgd_st_free(&f);
    assert_empty(&f, "after lgd_st_free");

    struct {
        const char *path;
        lgd_status st;
        const char *msg;
    } bad[] = {
        { missing, LGD_ERR_IO, "cannot open" },
        { dir, LGD_ERR_IO, "not a regular file" },
        { empty, LGD_ERR_FORMAT, "too short" },
        { cut, LGD_ERR_FORMAT, "run past the end of the data" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memset(&f, 0x5A, sizeof f);
        st = lgd_st_read_file(bad[k].path, &f, err, sizeof err);
        ck_assert_msg(st == bad[k].st, "%s: -> %d (%s)", bad[k].path, (int)st, err);
        assert_message(err, bad[k].path);
        ck_assert_msg(strncmp(err, bad[k].path, strlen(bad[k].path)) == 0,
                      "message does not begin with the path: %s", err);
        ck_assert_msg(strstr(err, bad[k].msg) != NULL, "%s lacks %s", err, bad[k].msg);
        assert_empty(&f, bad[k].path);
        lgd_st_free(&f);
    }
    /* a message buffer shorter than the path */
    char tiny[6];
    ck_assert_int_eq(lgd_st_read_file(cut, &f, tiny, sizeof tiny), LGD_ERR_FORMAT);
    ck_assert_uint_eq(strlen(tiny), 5);

    ck_assert_int_eq(unlink(good), 0);
    ck_assert_int_eq(unlink(empty), 0);
    ck_assert_int_eq(unlink(cut), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    free(bytes);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");

    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, roundtrip_values);
    tcase_add_test(tc, f16_exhaustive);
    tcase_add_test(tc, valid_corner_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad");
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, deep_nesting);
    tcase_add_test(tc, header_length);
    tcase_add_test(tc, every_prefix_fails);
    tcase_add_test(tc, messages);
    tcase_add_test(tc, arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz");
    tcase_add_test(tc, mutation_fuzz);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_test(tc, read_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(safetensors_suite()); }
