/*
 * netgen.c - network files from descriptions (netgen.h): the input decoder, the seed
 * encoder, the tensor tables of the architectures of docs/network-format.md, the
 * mutations and the safetensors writer.
 */
#include "netgen.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ keys */

static const char *const arch_names[] = { "mlp", "unet", "temporal_unet", "layer", NULL };
static const char *const pred_names[] = { "eps", "x0", "v", "edm", NULL };
static const char *const time_names[] = { "discrete", "discrete_round", "log_sigma", "sigma",
                                          NULL };
static const char *const act_names[] = { "silu", "gelu", NULL };
static const char *const layer_names[] = { "linear", "conv1d", "conv2d", "group_norm",
                                           "layer_norm", "silu", "gelu", "attention",
                                           "resblock", "upsample", "downsample", "concat",
                                           "time_embedding", NULL };

const ng_key ng_keys[] = {
    { "lgd.format", NG_INT, NULL },
    { "lgd.architecture", NG_ENUM, arch_names },
    { "lgd.prediction", NG_ENUM, pred_names },
    { "lgd.time_input", NG_ENUM, time_names },
    { "lgd.sigma_data", NG_FLOAT, NULL },
    { "lgd.act", NG_ENUM, act_names },
    { "lgd.dim", NG_INT, NULL },
    { "lgd.hidden", NG_INT, NULL },
    { "lgd.depth", NG_INT, NULL },
    { "lgd.time_embed_dim", NG_INT, NULL },
    { "lgd.cond_dim", NG_INT, NULL },
    { "lgd.in_channels", NG_INT, NULL },
    { "lgd.out_channels", NG_INT, NULL },
    { "lgd.model_channels", NG_INT, NULL },
    { "lgd.channel_mult", NG_LIST, NULL },
    { "lgd.num_res_blocks", NG_INT, NULL },
    { "lgd.attention_levels", NG_LIST, NULL },
    { "lgd.num_heads", NG_INT, NULL },
    { "lgd.num_groups", NG_INT, NULL },
    { "lgd.num_classes", NG_INT, NULL },
    { "lgd.conv_resample", NG_INT, NULL },
    { "lgd.use_scale_shift_norm", NG_INT, NULL },
    { "lgd.kernel_size", NG_INT, NULL },
    { "lgd.image_size", NG_INT, NULL },
    { "lgd.horizon", NG_INT, NULL },
    { "lgd.layer", NG_ENUM, layer_names },
    { "lgd.input_shape", NG_LIST, NULL },
    { "lgd.out_features", NG_INT, NULL },
    { "lgd.bias", NG_INT, NULL },
    { "lgd.stride", NG_INT, NULL },
    { "lgd.padding", NG_INT, NULL },
    { "lgd.eps", NG_FLOAT, NULL },
};
const int ng_n_keys = (int)(sizeof ng_keys / sizeof ng_keys[0]);

/* the record codes (fuzz/README.md) */
#define REC_TYPED 0                      /* [0, K): typed value of key k */
#define REC_RAW (ng_n_keys)              /* [K, 2K): raw string value */
#define REC_DELETE (2 * ng_n_keys)       /* [2K, 3K): key removed */
#define REC_DUP (3 * ng_n_keys)          /* [3K, 4K): raw value, key written twice */
#define REC_JSON 0xFD                    /* a non-string value for key (next byte) */
#define REC_CUSTOM 0xFE                  /* a key of the input's own, raw value */
#define REC_END 0xFF                     /* end of the metadata records */

static const char *const weird_ints[] = {
    "", " 5", "5 ", "0x10", "+3", "007", "1e3", "1.0", "2147483648", "99999999999999999999",
    "-0", "16777216", "16777217", "65536", "1048577", "4294967296", "-2147483649", "True",
    "False", "1,2",
};
static const char *const float_strs[] = {
    "1e-5", "0.5", "0", "1", "1e-6", "0.1", "2", "-1", "1e-30", "1e38", "3.5e38", "nan",
    "inf", "-inf", "1e-5x", "", "0.5 ", "1e-45", "0x1p-3", "0.99", "1.5", "1e308",
};
static const char *const weird_names[] = {
    "", "MLP", "mlp ", " unet", "temporal-unet", "layer\t", "Eps", "epsilon", "SiLU", "relu",
    "linear2", "conv3d", "x0 ", "unet\xc3\xa9", "\xff", "la\"yer", "mlp\\", "norm",
};
static const float t_values[] = { 37.5f, 0.0f, 999.0f, 0.7f, -1.0f, 1e6f, 0.5f, 1000.5f,
                                  1e30f, -0.0f, 3.0f, 500.0f, 1e-3f, 12.25f, 1e38f, 7.0f };
#define N_T_VALUES (int)(sizeof t_values / sizeof t_values[0])

/* ------------------------------------------------------------------ metadata map */

static int find_meta(const ng_desc *d, const char *key)
{
    for (int i = 0; i < d->n_meta; i++)
        if (!strcmp(d->meta[i].key, key))
            return i;
    return -1;
}

static ng_meta *set_meta(ng_desc *d, const char *key, const char *value)
{
    int i = find_meta(d, key);
    if (i < 0) {
        if (d->n_meta == NG_MAX_META)
            return NULL;
        i = d->n_meta++;
        snprintf(d->meta[i].key, sizeof d->meta[i].key, "%s", key);
    }
    snprintf(d->meta[i].value, sizeof d->meta[i].value, "%s", value);
    d->meta[i].raw_json = 0;
    d->meta[i].duplicate = 0;
    return &d->meta[i];
}

void netgen_set(ng_desc *d, const char *key, const char *value) { set_meta(d, key, value); }

const char *netgen_get(const ng_desc *d, const char *key)
{
    int i = find_meta(d, key);
    return i < 0 ? NULL : d->meta[i].value;
}

static void delete_meta(ng_desc *d, const char *key)
{
    int i = find_meta(d, key);
    if (i < 0)
        return;
    memmove(&d->meta[i], &d->meta[i + 1], (size_t)(d->n_meta - i - 1) * sizeof d->meta[0]);
    d->n_meta--;
}

/* ------------------------------------------------------------------ decoding */

static void read_raw(fz_reader *r, char *out, size_t cap)
{
    size_t len = fz_u8(r) % cap; /* < cap: room for the NUL */
    size_t k = 0;
    for (size_t i = 0; i < len && fz_more(r); i++) {
        uint8_t c = fz_u8(r);
        if (c)
            out[k++] = (char)c;
    }
    out[k] = '\0';
}

_Static_assert(0xA0 + FZ_N_EDGE_I64 <= 0xBF, "the edge values' codes run into 0xBF");

/* An integer value: one byte for the common cases (small values, the edge values of
 * fz_common.h, powers of two), so that one mutated byte moves a size to an edge. */
static void decode_int(fz_reader *r, char *out, size_t cap)
{
    uint8_t c = fz_u8(r);
    if (c < 0xA0)
        snprintf(out, cap, "%u", (unsigned)c);
    else if (c < 0xA0 + FZ_N_EDGE_I64)
        snprintf(out, cap, "%" PRId64, fz_edge_i64[c - 0xA0]);
    else if (c == 0xBF)
        snprintf(out, cap, "%" PRIu64, fz_varint(r));
    else if (c == 0xC0)
        snprintf(out, cap, "-%" PRIu64, fz_varint(r));
    else if (c == 0xC1)
        snprintf(out, cap, "true");
    else if (c == 0xC2)
        snprintf(out, cap, "false");
    else if (c == 0xC3)
        snprintf(out, cap, "%s", weird_ints[fz_u8(r) % (sizeof weird_ints / sizeof *weird_ints)]);
    else
        snprintf(out, cap, "%" PRId64, (int64_t)1 << (c - 0xC4)); /* 2^0 .. 2^59 */
}

/* A list: count (low 4 bits) values and a separator style (high 4 bits); style 7
 * repeats one value count times ("16777216,16777216,16777216"). */
static void decode_list(fz_reader *r, char *out, size_t cap)
{
    uint8_t c = fz_u8(r);
    int count = c & 15, sep = c >> 4;
    static const char *const seps[] = { ",", ", ", " , ", ",,", ";", "," };
    const char *s = sep < 6 ? seps[sep] : ",";
    size_t o = 0;
    out[0] = '\0';
    char v[48];
    for (int i = 0; i < count && o + 1 < cap; i++) {
        if (i == 0 || sep != 7)
            decode_int(r, v, sizeof v);
        int n = snprintf(out + o, cap - o, "%s%s", i ? s : "", v);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
    if (sep == 5 && o + 2 < cap) /* a trailing separator */
        snprintf(out + o, cap - o, ",");
}

static void decode_float(fz_reader *r, char *out, size_t cap)
{
    uint8_t c = fz_u8(r);
    if (c < 0xF0)
        snprintf(out, cap, "%s", float_strs[c % (sizeof float_strs / sizeof *float_strs)]);
    else
        snprintf(out, cap, "%.9g", (double)fz_f32(r));
}

static void decode_enum(fz_reader *r, const char *const *names, char *out, size_t cap)
{
    int n = 0;
    while (names[n])
        n++;
    uint8_t c = fz_u8(r);
    if (c < 0xC0)
        snprintf(out, cap, "%s", names[c % n]);
    else if (c < 0xF0)
        snprintf(out, cap, "%s", weird_names[c % (sizeof weird_names / sizeof *weird_names)]);
    else
        read_raw(r, out, cap);
}

static void decode_typed(fz_reader *r, const ng_key *key, char *v, size_t cap)
{
    switch (key->kind) {
    case NG_INT: decode_int(r, v, cap); break;
    case NG_LIST: decode_list(r, v, cap); break;
    case NG_FLOAT: decode_float(r, v, cap); break;
    default: decode_enum(r, key->names, v, cap); break;
    }
}

void netgen_decode(const uint8_t *data, size_t size, ng_desc *d)
{
    fz_reader r;
    fz_init(&r, data, size);
    memset(d, 0, sizeof *d);
    d->dtype = fz_u8(&r) & 3;
    uint8_t a = fz_u8(&r);
    d->alphas_len = a == 0 ? 0 : a == 255 ? 1000 : a == 254 ? 1 : a + 1;
    uint8_t bt = fz_u8(&r);
    d->batch = 1 + (bt & 1);
    d->t = t_values[(bt >> 1) % N_T_VALUES];
    d->seed = fz_u8(&r);
    while (fz_more(&r)) {
        int k = fz_u8(&r);
        if (k == REC_END)
            break;
        char v[NG_VAL_CAP];
        if (k < REC_RAW) {
            decode_typed(&r, &ng_keys[k], v, sizeof v);
            set_meta(d, ng_keys[k].name, v);
        } else if (k < REC_DELETE) {
            read_raw(&r, v, sizeof v);
            set_meta(d, ng_keys[k - REC_RAW].name, v);
        } else if (k < REC_DUP) {
            delete_meta(d, ng_keys[k - REC_DELETE].name);
        } else if (k < 4 * ng_n_keys) {
            read_raw(&r, v, sizeof v);
            ng_meta *m = set_meta(d, ng_keys[k - REC_DUP].name, v);
            if (m)
                m->duplicate = 1;
        } else if (k == REC_JSON) {
            static const char *const json_values[] = { "5", "true", "null", "[1,2]", "{}",
                                                       "-1", "1.5", "{\"a\":\"b\"}" };
            const char *key = ng_keys[fz_u8(&r) % ng_n_keys].name;
            ng_meta *m = set_meta(d, key, json_values[fz_u8(&r) % 8]);
            if (m)
                m->raw_json = 1;
        } else if (k == REC_CUSTOM) {
            char key[NG_KEY_CAP];
            read_raw(&r, key, sizeof key);
            read_raw(&r, v, sizeof v);
            set_meta(d, key, v);
        }
        else { /* codes between 4K and REC_JSON: typed values again */
            const ng_key *key = &ng_keys[(k - 4 * ng_n_keys) % ng_n_keys];
            decode_typed(&r, key, v, sizeof v);
            set_meta(d, key->name, v);
        }
    }
    while (fz_more(&r) && d->n_mut < NG_MAX_MUT) {
        ng_mut *m = &d->mut[d->n_mut++];
        m->op = (uint8_t)(fz_u8(&r) % NG_MUT_COUNT);
        m->idx = (uint32_t)fz_varint(&r);
        m->arg = fz_varint(&r);
    }
}

/* ------------------------------------------------------------------ encoding */

typedef struct bytes_out {
    uint8_t *p;
    size_t cap, n;
    int overflow;
} bytes_out;

static void put(bytes_out *o, uint8_t b)
{
    if (o->n < o->cap)
        o->p[o->n++] = b;
    else
        o->overflow = 1;
}

static void put_varint(bytes_out *o, uint64_t v)
{
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        put(o, (uint8_t)(b | (v ? 0x80 : 0)));
    } while (v);
}

static void put_raw(bytes_out *o, const char *s)
{
    size_t len = strlen(s);
    if (len >= NG_VAL_CAP)
        len = NG_VAL_CAP - 1;
    put(o, (uint8_t)len);
    for (size_t i = 0; i < len; i++)
        put(o, (uint8_t)s[i]);
}

/* a plain decimal in [0, 160): one byte */
static int small_int(const char *s, unsigned *v)
{
    if (!*s || strlen(s) > 3)
        return 0;
    unsigned x = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        x = x * 10 + (unsigned)(*c - '0');
    }
    if (x >= 0xA0 || (s[0] == '0' && s[1]))
        return 0;
    *v = x;
    return 1;
}

static int encode_list(bytes_out *o, int k, const char *s)
{
    unsigned v[8];
    int n = 0;
    char buf[NG_VAL_CAP];
    snprintf(buf, sizeof buf, "%s", s);
    if (*buf) {
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n == 8 || !small_int(tok, &v[n]))
                return 0;
            n++;
        }
        /* the decoder writes "a,b,c": only that form round-trips */
        char again[NG_VAL_CAP] = "";
        size_t w = 0;
        for (int i = 0; i < n; i++)
            w += (size_t)snprintf(again + w, sizeof again - w, "%s%u", i ? "," : "", v[i]);
        if (strcmp(again, s))
            return 0;
    }
    put(o, (uint8_t)k);
    put(o, (uint8_t)n);
    for (int i = 0; i < n; i++)
        put(o, (uint8_t)v[i]);
    return 1;
}

size_t netgen_encode(const ng_desc *d, uint8_t *out, size_t cap)
{
    bytes_out o = { out, cap, 0, 0 };
    put(&o, (uint8_t)(d->dtype & 3));
    uint8_t a = d->alphas_len == 0 ? 0 : d->alphas_len == 1000 ? 255
              : d->alphas_len == 1 ? 254 : d->alphas_len <= 240 ? (uint8_t)(d->alphas_len - 1) : 255;
    put(&o, a);
    int ti = 0;
    while (ti < N_T_VALUES - 1 && t_values[ti] != d->t)
        ti++;
    put(&o, (uint8_t)((d->batch == 2 ? 1 : 0) | (ti << 1)));
    put(&o, d->seed);
    for (int i = 0; i < d->n_meta; i++) {
        const ng_meta *m = &d->meta[i];
        int k = 0;
        while (k < ng_n_keys && strcmp(ng_keys[k].name, m->key))
            k++;
        if (k == ng_n_keys) {
            put(&o, REC_CUSTOM);
            put_raw(&o, m->key);
            put_raw(&o, m->value);
            continue;
        }
        unsigned v;
        if (ng_keys[k].kind == NG_INT && small_int(m->value, &v)) {
            put(&o, (uint8_t)k);
            put(&o, (uint8_t)v);
            continue;
        }
        if (ng_keys[k].kind == NG_LIST && encode_list(&o, k, m->value))
            continue;
        if (ng_keys[k].kind == NG_ENUM) {
            int e = 0;
            while (ng_keys[k].names[e] && strcmp(ng_keys[k].names[e], m->value))
                e++;
            if (ng_keys[k].names[e]) {
                put(&o, (uint8_t)k);
                put(&o, (uint8_t)e);
                continue;
            }
        }
        put(&o, (uint8_t)(REC_RAW + k));
        put_raw(&o, m->value);
    }
    put(&o, REC_END);
    for (int i = 0; i < d->n_mut; i++) {
        put(&o, d->mut[i].op);
        put_varint(&o, d->mut[i].idx);
        put_varint(&o, d->mut[i].arg);
    }
    return o.overflow ? 0 : o.n;
}

/* ------------------------------------------------------------------ hyperparameters */

/* The generator's view of a hyperparameter: liblgd refuses values beyond 2^24 anyway,
 * so clamping keeps the shape arithmetic below (products of three) inside int64. */
#define NG_CLAMP ((long long)1 << 26)
static long long clamp(long long v) { return v > NG_CLAMP ? NG_CLAMP : v < -NG_CLAMP ? -NG_CLAMP : v; }

/* An integer as liblgd reads it (nn_metadata.c), or def when absent or not one. */
static long long meta_int(const ng_desc *d, const char *key, long long def)
{
    const char *s = netgen_get(d, key);
    if (!s || !*s)
        return def;
    if (!strcmp(s, "true") || !strcmp(s, "True"))
        return 1;
    if (!strcmp(s, "false") || !strcmp(s, "False"))
        return 0;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    return errno || *end ? def : clamp(v);
}

/* A list as liblgd reads it; returns the count (at most max). */
static int meta_list(const ng_desc *d, const char *key, long long *out, int max)
{
    const char *p = netgen_get(d, key);
    if (!p)
        return 0;
    int n = 0;
    while (*p && n < max) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            break;
        out[n++] = clamp(v);
        p = end;
        while (*p == ' ' || *p == ',')
            p++;
    }
    return n;
}

/* ------------------------------------------------------------------ tensor tables */

enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_BOOL, DT_F8, DT_U8, DT_LOWER, DT_SPACE,
       DT_UNKNOWN, DT_COUNT };
static const char *const dtype_names[DT_COUNT] = { "F32", "F16", "BF16", "F64", "I64", "BOOL",
                                                   "F8_E4M3", "U8", "f32", "F32 ", "X" };
static const int dtype_sizes[DT_COUNT] = { 4, 2, 2, 8, 8, 1, 1, 1, 4, 4, 4 };

typedef struct ng_tensor {
    char name[200];
    int dtype;
    int ndim;
    int64_t shape[NG_MAX_DIMS];
    int schedule; /* lgd.alphas_cumprod */
    int duplicate;
    uint64_t begin, end; /* data offsets as written */
    size_t data_at, nbytes; /* where its bytes are in the data region, and how many */
    /* poisoned weights: index and value kind */
    int n_poison;
    uint64_t poison_at[4];
    int poison_kind[4];
} ng_tensor;

typedef struct gv { /* a value's per-row shape */
    int64_t c, h, w;
} gv;

typedef struct gen {
    const ng_desc *d;
    ng_tensor *t;
    int n, cap;
    int too_many;
    int dims;
    int64_t kernel, groups, heads, conv_resample, scale_shift, emb;
} gen;

static int64_t sat_mul(int64_t a, int64_t b)
{
    int64_t r;
    if (a < 0 || b < 0)
        return -1;
    if (__builtin_mul_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

static int64_t numel_of(const ng_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n = sat_mul(n, t->shape[i]);
    return n;
}

static ng_tensor *add_tensor(gen *g, const char *name, int ndim, const int64_t *shape)
{
    if (g->n == g->cap) {
        if (g->cap >= NG_MAX_TENSORS) {
            g->too_many = 1;
            return NULL;
        }
        int cap = g->cap ? 2 * g->cap : 64;
        ng_tensor *t = realloc(g->t, (size_t)cap * sizeof *t);
        if (!t) {
            g->too_many = 1;
            return NULL;
        }
        g->t = t;
        g->cap = cap;
    }
    ng_tensor *t = &g->t[g->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = g->d->dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    return t;
}

static void join(char *out, size_t cap, const char *prefix, const char *fmt, ...)
{
    int r = snprintf(out, cap, "%s%s", prefix, *prefix ? "." : "");
    if (r < 0 || (size_t)r >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + r, cap - (size_t)r, fmt, ap);
    va_end(ap);
}

static void w1(gen *g, const char *prefix, const char *suffix, int64_t a)
{
    char n[200];
    join(n, sizeof n, prefix, "%s", suffix);
    add_tensor(g, n, 1, (int64_t[]){ a });
}

static void w2(gen *g, const char *prefix, const char *suffix, int64_t a, int64_t b)
{
    char n[200];
    join(n, sizeof n, prefix, "%s", suffix);
    add_tensor(g, n, 2, (int64_t[]){ a, b });
}

static void wk(gen *g, const char *prefix, int ndim, int64_t a, int64_t b, int64_t k)
{
    char n[200];
    join(n, sizeof n, prefix, "weight");
    add_tensor(g, n, ndim, (int64_t[]){ a, b, k, k });
}

static int64_t numel(gv v) { return sat_mul(sat_mul(v.c, v.h), v.w); }

static gv g_linear(gen *g, gv x, int64_t out, const char *prefix, int bias, int transposed)
{
    int64_t in = numel(x);
    if (transposed)
        w2(g, prefix, "weight", in, out);
    else
        w2(g, prefix, "weight", out, in);
    if (bias)
        w1(g, prefix, "bias", out);
    return (gv){ out, 1, 1 };
}

static gv g_conv(gen *g, gv x, int64_t cout, int64_t k, int64_t stride, int64_t pad,
                 const char *prefix, int wdims, int bias)
{
    int two = g->dims == 2;
    int64_t kh = two ? k : 1, sh = two ? stride : 1, ph = two ? pad : 0;
    gv y = { cout, 1, 1 };
    if (sh > 0 && stride > 0 && x.h + 2 * ph >= kh && x.w + 2 * pad >= k) {
        y.h = (x.h + 2 * ph - kh) / sh + 1;
        y.w = (x.w + 2 * pad - k) / stride + 1;
    }
    wk(g, prefix, wdims == 2 ? 4 : 3, cout, x.c, k);
    if (bias)
        w1(g, prefix, "bias", cout);
    return y;
}

static gv g_norm(gen *g, gv x, const char *prefix)
{
    w1(g, prefix, "weight", x.c);
    w1(g, prefix, "bias", x.c);
    return x;
}

static void g_time_mlp(gen *g, int64_t e_in, int64_t hidden, const char *prefix)
{
    char n0[160], n2[160];
    join(n0, sizeof n0, prefix, "0");
    join(n2, sizeof n2, prefix, "2");
    gv e = g_linear(g, (gv){ e_in, 1, 1 }, hidden, n0, 1, 0);
    g_linear(g, e, hidden, n2, 1, 0);
}

static gv g_resblock(gen *g, gv x, int64_t cout, const char *prefix)
{
    char n[200];
    int64_t k = g->kernel;
    join(n, sizeof n, prefix, "in_layers.0");
    g_norm(g, x, n);
    join(n, sizeof n, prefix, "in_layers.2");
    gv h = g_conv(g, x, cout, k, 1, k / 2, n, g->dims, 1);
    join(n, sizeof n, prefix, "emb_layers.1");
    g_linear(g, (gv){ g->emb, 1, 1 }, g->scale_shift ? 2 * cout : cout, n, 1, 0);
    join(n, sizeof n, prefix, "out_layers.0");
    g_norm(g, h, n);
    join(n, sizeof n, prefix, "out_layers.3");
    h = g_conv(g, h, cout, k, 1, k / 2, n, g->dims, 1);
    if (x.c != cout) {
        join(n, sizeof n, prefix, "skip_connection");
        g_conv(g, x, cout, 1, 1, 0, n, g->dims, 1);
    }
    return h;
}

static gv g_attention(gen *g, gv x, const char *prefix)
{
    char n[200];
    join(n, sizeof n, prefix, "norm");
    g_norm(g, x, n);
    join(n, sizeof n, prefix, "qkv");
    g_conv(g, x, 3 * x.c, 1, 1, 0, n, 1, 1);
    join(n, sizeof n, prefix, "proj_out");
    g_conv(g, x, x.c, 1, 1, 0, n, 1, 1);
    return x;
}

static gv g_down(gen *g, gv x, const char *prefix)
{
    if (g->conv_resample) {
        char n[200];
        join(n, sizeof n, prefix, "op");
        return g_conv(g, x, x.c, 3, 2, 1, n, g->dims, 1);
    }
    return (gv){ x.c, g->dims == 2 ? x.h / 2 : x.h, x.w / 2 };
}

static gv g_up(gen *g, gv x, const char *prefix)
{
    gv y = { x.c, g->dims == 2 ? 2 * x.h : x.h, 2 * x.w };
    if (g->conv_resample) {
        char n[200];
        join(n, sizeof n, prefix, "conv");
        y = g_conv(g, y, y.c, g->kernel, 1, g->kernel / 2, n, g->dims, 1);
    }
    return y;
}

static void arch_mlp(gen *g)
{
    const ng_desc *d = g->d;
    int64_t D = meta_int(d, "lgd.dim", 0), H = meta_int(d, "lgd.hidden", 0);
    int64_t L = meta_int(d, "lgd.depth", 0), E = meta_int(d, "lgd.time_embed_dim", 0);
    int64_t K = meta_int(d, "lgd.cond_dim", 0);
    g->dims = 1;
    g_time_mlp(g, E, H, "time_embed");
    g_linear(g, (gv){ D, 1, 1 }, H, "input", 1, 0);
    if (K > 0)
        g_linear(g, (gv){ K, 1, 1 }, H, "cond_proj", 0, 0);
    for (int64_t i = 0; i < L && !g->too_many; i++) {
        char p[64], n[96];
        snprintf(p, sizeof p, "blocks.%lld", (long long)i);
        join(n, sizeof n, p, "norm");
        g_norm(g, (gv){ H, 1, 1 }, n);
        join(n, sizeof n, p, "fc1");
        g_linear(g, (gv){ H, 1, 1 }, H, n, 1, 0);
        join(n, sizeof n, p, "fc2");
        g_linear(g, (gv){ H, 1, 1 }, H, n, 1, 0);
    }
    g_norm(g, (gv){ H, 1, 1 }, "out_norm");
    g_linear(g, (gv){ H, 1, 1 }, D, "output", 1, 0);
}

#define MAX_LEVELS 8

static void arch_unet(gen *g, int temporal)
{
    const ng_desc *d = g->d;
    int64_t in_ch = meta_int(d, "lgd.in_channels", 0), out_ch = meta_int(d, "lgd.out_channels", 0);
    int64_t C0 = meta_int(d, "lgd.model_channels", 0);
    int64_t R = meta_int(d, "lgd.num_res_blocks", 0);
    int64_t classes = meta_int(d, "lgd.num_classes", 0);
    g->conv_resample = meta_int(d, "lgd.conv_resample", 1);
    g->scale_shift = meta_int(d, "lgd.use_scale_shift_norm", 0);
    g->kernel = meta_int(d, "lgd.kernel_size", temporal ? 5 : 3);
    g->emb = meta_int(d, "lgd.time_embed_dim", 4 * C0);
    int64_t side = temporal ? meta_int(d, "lgd.horizon", 0) : meta_int(d, "lgd.image_size", 0);
    long long mult[MAX_LEVELS], att[MAX_LEVELS];
    int levels = meta_list(d, "lgd.channel_mult", mult, MAX_LEVELS);
    int n_att = meta_list(d, "lgd.attention_levels", att, MAX_LEVELS);
    int has_att[MAX_LEVELS] = { 0 };
    for (int i = 0; i < n_att; i++)
        if (att[i] >= 0 && att[i] < MAX_LEVELS)
            has_att[att[i]] = 1;
    if (R > 64)
        R = 64;
    g->dims = temporal ? 1 : 2;
    gv h = temporal ? (gv){ in_ch, 1, side } : (gv){ in_ch, side, side };
    g_time_mlp(g, C0, g->emb, "time_embed");
    if (classes > 0)
        g_linear(g, (gv){ classes, 1, 1 }, g->emb, "label_emb", 0, 1);
    if (levels == 0)
        return;
    h = g_conv(g, h, mult[0] * C0, g->kernel, 1, g->kernel / 2, "input_blocks.0.0", g->dims, 1);
    gv hs[MAX_LEVELS * 66];
    int n_hs = 0, block = 1;
    hs[n_hs++] = h;
    char p[96], q[128];
    for (int level = 0; level < levels && !g->too_many; level++) {
        for (int64_t r = 0; r < R; r++) {
            snprintf(p, sizeof p, "input_blocks.%d", block++);
            join(q, sizeof q, p, "0");
            h = g_resblock(g, h, mult[level] * C0, q);
            if (has_att[level]) {
                join(q, sizeof q, p, "1");
                h = g_attention(g, h, q);
            }
            hs[n_hs++] = h;
        }
        if (level != levels - 1) {
            snprintf(p, sizeof p, "input_blocks.%d", block++);
            join(q, sizeof q, p, "0");
            h = g_down(g, h, q);
            hs[n_hs++] = h;
        }
    }
    h = g_resblock(g, h, h.c, "middle_block.0");
    h = g_attention(g, h, "middle_block.1");
    h = g_resblock(g, h, h.c, "middle_block.2");
    block = 0;
    for (int level = levels - 1; level >= 0 && !g->too_many; level--) {
        for (int64_t r = 0; r <= R && n_hs > 0; r++) {
            snprintf(p, sizeof p, "output_blocks.%d", block++);
            gv s = hs[--n_hs];
            h.c += s.c;
            join(q, sizeof q, p, "0");
            h = g_resblock(g, h, mult[level] * C0, q);
            int sub = 1;
            if (has_att[level]) {
                join(q, sizeof q, p, "%d", sub++);
                h = g_attention(g, h, q);
            }
            if (level > 0 && r == R) {
                join(q, sizeof q, p, "%d", sub++);
                h = g_up(g, h, q);
            }
        }
    }
    g_norm(g, h, "out.0");
    g_conv(g, h, out_ch, g->kernel, 1, g->kernel / 2, "out.2", g->dims, 1);
}

static void arch_layer(gen *g)
{
    const ng_desc *d = g->d;
    const char *kind = netgen_get(d, "lgd.layer");
    long long s[3] = { 1, 1, 1 };
    int n = meta_list(d, "lgd.input_shape", s, 3);
    if (!kind || n == 0)
        return;
    g->dims = n == 3 ? 2 : 1;
    gv x = n == 3 ? (gv){ s[0], s[1], s[2] } : n == 2 ? (gv){ s[0], 1, s[1] } : (gv){ s[0], 1, 1 };
    g->kernel = meta_int(d, "lgd.kernel_size", 3);
    g->conv_resample = meta_int(d, "lgd.conv_resample", 1);
    g->scale_shift = meta_int(d, "lgd.use_scale_shift_norm", 0);
    if (!strcmp(kind, "linear")) {
        g_linear(g, x, meta_int(d, "lgd.out_features", 0), "", (int)meta_int(d, "lgd.bias", 1), 0);
    } else if (!strcmp(kind, "conv1d") || !strcmp(kind, "conv2d")) {
        g_conv(g, x, meta_int(d, "lgd.out_channels", 0), meta_int(d, "lgd.kernel_size", 0),
               meta_int(d, "lgd.stride", 1), meta_int(d, "lgd.padding", 0), "", g->dims,
               (int)meta_int(d, "lgd.bias", 1));
    } else if (!strcmp(kind, "group_norm") || !strcmp(kind, "layer_norm")) {
        g_norm(g, x, "");
    } else if (!strcmp(kind, "attention")) {
        g_attention(g, x, "");
    } else if (!strcmp(kind, "resblock")) {
        g->emb = meta_int(d, "lgd.time_embed_dim", 0);
        g_resblock(g, x, meta_int(d, "lgd.out_channels", 0), "");
    } else if (!strcmp(kind, "upsample")) {
        g_up(g, x, "");
    } else if (!strcmp(kind, "downsample")) {
        g_down(g, x, "");
    } else if (!strcmp(kind, "time_embedding")) {
        g_time_mlp(g, meta_int(d, "lgd.time_embed_dim", 0), x.c, "time_embed");
    }
}

/* ------------------------------------------------------------------ values */

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static uint16_t to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t e = (int32_t)((u >> 23) & 0xFF) - 127 + 15;
    uint32_t m = u & 0x7FFFFF;
    if (((u >> 23) & 0xFF) == 0xFF)
        return (uint16_t)(sign | 0x7C00 | (m ? 0x200 : 0));
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        m |= 0x800000;
        return (uint16_t)(sign | (m >> (14 - e)));
    }
    return (uint16_t)(sign | ((uint32_t)e << 10) | (m >> 13));
}

static void put_value(unsigned char *p, int dtype, double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    switch (dtype) {
    case DT_F16: {
        uint16_t h = to_f16(f);
        p[0] = (unsigned char)h;
        p[1] = (unsigned char)(h >> 8);
        break;
    }
    case DT_BF16:
        p[0] = (unsigned char)(u >> 16);
        p[1] = (unsigned char)(u >> 24);
        break;
    case DT_F64:
    case DT_I64: {
        uint64_t q;
        memcpy(&q, &v, 8);
        for (int k = 0; k < 8; k++)
            p[k] = (unsigned char)(q >> (8 * k));
        break;
    }
    case DT_BOOL:
    case DT_F8:
    case DT_U8:
        p[0] = (unsigned char)u;
        break;
    default:
        for (int k = 0; k < 4; k++)
            p[k] = (unsigned char)(u >> (8 * k));
        break;
    }
}

/* ------------------------------------------------------------------ the writer */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *s, const char *str, size_t len)
{
    if (s->oom)
        return;
    if (s->n + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->n + len + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, str, len);
    s->n += len;
    s->p[s->n] = '\0';
}

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(s, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void sb_json_string(sbuf *s, const char *str)
{
    sb_add(s, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
        if (*c == '"')
            sb_add(s, "\\\"", 2);
        else if (*c == '\\')
            sb_add(s, "\\\\", 2);
        else if (*c < 0x20)
            sb_printf(s, "\\u%04x", *c);
        else
            sb_add(s, (const char *)c, 1);
    }
    sb_add(s, "\"", 1);
}

static void write_tensor_entry(sbuf *s, const ng_tensor *t)
{
    sb_json_string(s, t->name);
    sb_add(s, ":{\"dtype\":", 10);
    sb_json_string(s, dtype_names[t->dtype]);
    sb_add(s, ",\"shape\":[", 10);
    for (int i = 0; i < t->ndim; i++)
        sb_printf(s, "%s%" PRId64, i ? "," : "", t->shape[i]);
    sb_printf(s, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", t->begin, t->end);
}

static int64_t zigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* the DDPM linear schedule's alphas_cumprod over T steps: abar_i = abar_{i-1} (1 - beta_i) */
static double alphas_next(double prev, size_t i, size_t T)
{
    double beta = T > 1 ? 1e-4 + (0.02 - 1e-4) * (double)i / (double)(T - 1) : 1e-4;
    return prev * (1.0 - beta);
}

int netgen_build(const ng_desc *d, unsigned char **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    gen g;
    memset(&g, 0, sizeof g);
    g.d = d;
    g.dims = 1;
    g.kernel = 3;
    const char *arch = netgen_get(d, "lgd.architecture");
    if (arch && !strcmp(arch, "mlp"))
        arch_mlp(&g);
    else if (arch && !strcmp(arch, "unet"))
        arch_unet(&g, 0);
    else if (arch && !strcmp(arch, "temporal_unet"))
        arch_unet(&g, 1);
    else if (arch && !strcmp(arch, "layer"))
        arch_layer(&g);

    /* Too many or too large weights: a file without them (metadata only), which still
     * exercises the loader's checks of the hyperparameters. */
    size_t total = 0;
    int too_big = g.too_many;
    for (int i = 0; i < g.n && !too_big; i++) {
        int64_t n = numel_of(&g.t[i]);
        if (n < 0 || n > (int64_t)(NG_MAX_DATA_BYTES / 8))
            too_big = 1;
        else
            total += (size_t)n * (size_t)dtype_sizes[g.t[i].dtype];
    }
    if (too_big || total > NG_MAX_DATA_BYTES)
        g.n = 0;
    g.too_many = 0;
    if (d->alphas_len > 0) {
        ng_tensor *t = add_tensor(&g, "lgd.alphas_cumprod", 1, (int64_t[]){ d->alphas_len });
        if (t) {
            t->dtype = DT_F32;
            t->schedule = 1;
        }
    }

    /* the mutations of the tensor table */
    int header_op = -1;
    uint64_t header_arg = 0;
    int reorder = 0;
    int sched_op = -1;
    uint64_t sched_arg = 0;
    for (int m = 0; m < d->n_mut; m++) {
        const ng_mut *mu = &d->mut[m];
        if (mu->op == NG_MUT_HEADER) {
            header_op = (int)(mu->arg & 7);
            header_arg = mu->arg >> 3;
            continue;
        }
        if (mu->op == NG_MUT_REORDER) {
            reorder = 1;
            continue;
        }
        if (mu->op == NG_MUT_SCHEDULE) {
            sched_op = (int)(mu->arg % 7);
            sched_arg = mu->arg / 7;
            continue;
        }
        if (mu->op == NG_MUT_EXTRA) {
            char name[64];
            snprintf(name, sizeof name, "extra.%u", (unsigned)(mu->idx % 1000));
            add_tensor(&g, name, 1, (int64_t[]){ (int64_t)(mu->arg % 64) });
            continue;
        }
        if (g.n == 0)
            continue;
        ng_tensor *t = &g.t[mu->idx % (uint32_t)g.n];
        switch (mu->op) {
        case NG_MUT_DTYPE:
            t->dtype = (int)(mu->arg % DT_COUNT);
            break;
        case NG_MUT_SHAPE_DELTA:
            if (t->ndim > 0) {
                int k = (int)(mu->arg & 7) % t->ndim;
                if (__builtin_add_overflow(t->shape[k], zigzag(mu->arg >> 3), &t->shape[k]))
                    t->shape[k] = INT64_MAX;
                if (t->shape[k] < 0)
                    t->shape[k] = 0;
            }
            break;
        case NG_MUT_SHAPE_APPEND:
            if (t->ndim < NG_MAX_DIMS)
                t->shape[t->ndim++] = (int64_t)(mu->arg % 8);
            break;
        case NG_MUT_SHAPE_POP:
            if (t->ndim > 0)
                t->ndim--;
            break;
        case NG_MUT_DROP:
            *t = g.t[--g.n];
            break;
        case NG_MUT_DUPLICATE:
            t->duplicate = 1;
            break;
        case NG_MUT_RENAME: {
            size_t len = strlen(t->name);
            if (len && (mu->arg & 1))
                t->name[(mu->arg >> 1) % len] = (char)(' ' + (mu->arg >> 8) % 95);
            else if (len + 3 < sizeof t->name)
                strcat(t->name, (mu->arg & 2) ? ".x" : "_");
            break;
        }
        case NG_MUT_OFFSETS:
        case NG_MUT_SWAP_OFFSETS:
            break; /* after the layout, below */
        case NG_MUT_POISON:
            if (t->n_poison < 4) {
                t->poison_at[t->n_poison] = mu->arg >> 2;
                t->poison_kind[t->n_poison++] = (int)(mu->arg & 3);
            }
            break;
        case NG_MUT_SCALAR:
            t->ndim = 0;
            break;
        case NG_MUT_BIG_SHAPE:
            if (t->ndim > 0)
                t->shape[(mu->arg & 7) % (uint64_t)t->ndim] = fz_edge_i64[(mu->arg >> 3) %
                                                                          FZ_N_EDGE_I64];
            break;
        }
    }
    ng_tensor *sched = NULL;
    for (int i = 0; i < g.n; i++)
        if (g.t[i].schedule)
            sched = &g.t[i];
    if (sched && sched_op == 0)
        *sched = g.t[--g.n], sched = NULL;
    else if (sched && sched_op == 4 && sched->ndim == 1) {
        sched->shape[1] = sched->shape[0];
        sched->shape[0] = 1;
        sched->ndim = 2;
    }

    /* the data layout: each tensor's bytes (as its dtype and shape say) one after the
     * other; a tensor too large to write gets its claimed offsets and no bytes */
    size_t data_size = 0;
    for (int i = 0; i < g.n; i++) {
        ng_tensor *t = &g.t[i];
        int64_t n = numel_of(t);
        uint64_t want = n < 0 ? 0 : (uint64_t)n * (uint64_t)dtype_sizes[t->dtype];
        if (n < 0 || n > (int64_t)(NG_MAX_DATA_BYTES) || data_size + want > 2 * NG_MAX_DATA_BYTES) {
            t->begin = data_size;
            t->end = n < 0 ? (uint64_t)INT64_MAX
                           : (uint64_t)data_size + (uint64_t)sat_mul(n, dtype_sizes[t->dtype]);
            t->nbytes = 0;
            t->data_at = data_size;
            continue;
        }
        t->data_at = data_size;
        t->nbytes = (size_t)want;
        t->begin = data_size;
        t->end = data_size + want;
        data_size += (size_t)want;
    }
    for (int m = 0; m < d->n_mut && g.n > 0; m++) {
        const ng_mut *mu = &d->mut[m];
        ng_tensor *t = &g.t[mu->idx % (uint32_t)g.n];
        if (mu->op == NG_MUT_OFFSETS) {
            int64_t delta = zigzag(mu->arg >> 1);
            if (mu->arg & 1)
                t->end += (uint64_t)delta;
            else
                t->begin += (uint64_t)delta;
        } else if (mu->op == NG_MUT_SWAP_OFFSETS) {
            ng_tensor *u = &g.t[mu->arg % (uint64_t)g.n];
            uint64_t b = t->begin, e = t->end;
            t->begin = u->begin;
            t->end = u->end;
            u->begin = b;
            u->end = e;
        }
    }

    /* the header */
    sbuf s = { 0 };
    sb_add(&s, "{", 1);
    int first = 1;
    if (!reorder) {
        sb_add(&s, "\"__metadata__\":{", 16);
        for (int i = 0; i < d->n_meta; i++) {
            for (int twice = 0; twice <= d->meta[i].duplicate; twice++) {
                if (i || twice)
                    sb_add(&s, ",", 1);
                sb_json_string(&s, d->meta[i].key);
                sb_add(&s, ":", 1);
                if (d->meta[i].raw_json)
                    sb_add(&s, d->meta[i].value, strlen(d->meta[i].value));
                else
                    sb_json_string(&s, d->meta[i].value);
            }
        }
        sb_add(&s, "}", 1);
        first = 0;
    }
    for (int k = 0; k < g.n; k++) {
        const ng_tensor *t = &g.t[reorder ? g.n - 1 - k : k];
        for (int twice = 0; twice <= t->duplicate; twice++) {
            if (!first)
                sb_add(&s, ",", 1);
            first = 0;
            write_tensor_entry(&s, t);
        }
    }
    if (reorder) {
        sb_add(&s, first ? "\"__metadata__\":{" : ",\"__metadata__\":{", first ? 16 : 17);
        for (int i = 0; i < d->n_meta; i++) {
            if (i)
                sb_add(&s, ",", 1);
            sb_json_string(&s, d->meta[i].key);
            sb_add(&s, ":", 1);
            sb_json_string(&s, d->meta[i].value);
        }
        sb_add(&s, "}", 1);
    }
    sb_add(&s, "}", 1);
    if (header_op == 0) /* padding with spaces: still valid */
        for (uint64_t i = 0; i < header_arg % 64; i++)
            sb_add(&s, " ", 1);
    else if (header_op == 5) /* padding that is not spaces */
        sb_add(&s, "\n\t", 2);
    if (s.oom) {
        free(s.p);
        free(g.t);
        return -1;
    }

    uint64_t hlen = s.n;
    if (header_op == 1)
        hlen += (uint64_t)zigzag(header_arg % 64);
    else if (header_op == 4)
        hlen = (uint64_t)100 * 1024 * 1024 + 1 + header_arg % 4;
    else if (header_op == 6)
        hlen = 0;
    size_t trailing = header_op == 3 ? (size_t)(header_arg % 64) + 1 : 0;
    size_t size = 8 + s.n + data_size + trailing;
    unsigned char *f = calloc(size, 1);
    if (!f) {
        free(s.p);
        free(g.t);
        return -1;
    }
    for (int k = 0; k < 8; k++)
        f[k] = (unsigned char)(hlen >> (8 * k));
    memcpy(f + 8, s.p, s.n);
    unsigned char *data = f + 8 + s.n;
    for (int i = 0; i < g.n; i++) {
        const ng_tensor *t = &g.t[i];
        if (!t->nbytes)
            continue;
        int isz = dtype_sizes[t->dtype];
        size_t n = t->nbytes / (size_t)isz;
        int64_t fan_in = t->ndim >= 2 ? numel_of(t) / (t->shape[0] ? t->shape[0] : 1) : 1;
        double scale = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
        double abar = 1.0, abar_prev = 1.0;
        for (size_t j = 0; j < n; j++) {
            double v;
            if (t->schedule) {
                abar_prev = abar;
                abar = alphas_next(abar, j, n);
                v = abar;
                if (sched_op == 1 && j == sched_arg % n && j > 0)
                    v = abar_prev; /* equal to the one before: not strictly decreasing */
                else if (sched_op == 2 && j == 0)
                    v = 1.0;
                else if (sched_op == 3 && j == n - 1)
                    v = 0.0;
                else if (sched_op == 5 && j == sched_arg % n)
                    v = NAN;
                else if (sched_op == 6)
                    v = 1.0 - v; /* increasing */
            } else {
                uint32_t u = mix((uint32_t)(d->seed * 2654435761u) ^ (uint32_t)(i * 40503u) ^
                                 mix((uint32_t)j));
                v = ((double)u / 4294967296.0 - 0.5) * scale;
                if (strstr(t->name, "norm") && strstr(t->name, "weight"))
                    v += 1.0; /* normalisation scales near 1 */
            }
            put_value(data + t->data_at + j * (size_t)isz, t->dtype, v);
        }
        for (int p = 0; p < t->n_poison; p++) {
            static const double poison[4] = { NAN, INFINITY, -INFINITY, 1e30 };
            put_value(data + t->data_at + (t->poison_at[p] % n) * (size_t)isz, t->dtype,
                      poison[t->poison_kind[p]]);
        }
    }
    if (header_op == 2) /* truncated */
        size -= (size_t)(header_arg % (size < 64 ? size : 64));
    free(s.p);
    free(g.t);
    *out = f;
    *out_size = size;
    return 0;
}
