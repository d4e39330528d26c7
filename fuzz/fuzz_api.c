/*
 * fuzz_api.c - drives a sequence of public liblgd calls decoded from the input.
 *
 * The input picks a dim D and a batch B (most sizes in it are "D" or "B", so that the
 * objects fit together and the calls go deep), then a list of operations
 * (fuzz_api_ops.h): tensors of fuzzed shapes (wrapped ones too), models (Gaussian
 * mixtures with fuzzed K, dim and covariance type and values, the trajectory prior,
 * callback models, network callbacks with fuzzed adapters, a small network file),
 * every built-in loss with fuzzed sizes, options and trajectory layouts, callback
 * losses, guidance with fuzzed options and reports, samplers with fuzzed options and
 * grids, a few steps on a tiny batch, loss evaluations, cancellation, schedules, the
 * *_init functions, and destroys in fuzzed order.
 *
 * Beyond "no crash, no leak, no undefined behaviour" (ASan, LSan, UBSan), each call is
 * checked against the contract of the headers (FZ_CHECK aborts on a violation):
 *   - the status is an lgd_status, never LGD_ERR_INTERNAL;
 *   - a failed call on a context leaves a message in lgd_context_last_error();
 *   - arguments the headers say are invalid are refused (with some status: when an
 *     input breaks several rules, the one the library checks first decides which);
 *   - a failed create sets *out to NULL, a successful one to an object;
 *   - option structs are read only as far as struct_size says (each struct is passed
 *     in a buffer of exactly that size, so ASan sees a read past it), sizes below the
 *     first published layout and non-zero unknown tails are refused;
 *   - destroy / release callbacks run exactly once, and never after a failed create
 *     (the user data is freed by them: a second call is a double free, none a leak);
 *   - outputs the headers promise finite on LGD_OK are finite (denoise, score, loss
 *     values and gradients, guidance terms, sampler states);
 *   - valid small tensors are created; a sampler's grid is strictly decreasing to 0;
 *     a schedule function's output is valid.
 * Work is bounded: sizes that are valid but too large for a quick run are skipped, not
 * called (tensors up to 65536 floats, mixtures up to dim 16 and 8 components, at most
 * 16 draws, a dozen steps); sizes that the headers say are refused are passed with
 * small arrays, so that a size check that is missing shows as an out-of-bounds read.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_api_ops.h"
#include "fz_common.h"
#include "netgen.h"

FZ_SANITIZER_DEFAULTS

#define NT 8
#define NM 4
#define NL 6
#define NG 3
#define NS 3
#define NN 2
#define MAX_OPS 64
#define MAX_FLOATS 65536 /* the largest array or tensor made */
#define MAX_GMM_DIM 16
#define MAX_GMM_K 8
#define MAX_DRAWS 16
#define MAX_LOSS_LEAVES 64 /* leaf evaluations per evaluation of a sum */
#define SENTINEL ((void *)(uintptr_t)0x1)

typedef struct api {
    fz_reader r;
    lgd_context *ctx;
    int64_t D, B;
    lgd_tensor *t[NT];
    lgd_model *m[NM];
    lgd_loss *l[NL];
    lgd_guidance *g[NG];
    lgd_sampler *s[NS];
    lgd_network *n[NN];
    int64_t lcost[NL]; /* leaf losses one evaluation of the slot's loss runs (sums of
                          sums form a DAG whose cost grows exponentially with its depth) */
    void *keep[16]; /* user data of callbacks registered without a destroy */
    int n_keep;
    int trace;
} api;

/* ------------------------------------------------------------------ checks */

/* After every call: a known status, never LGD_ERR_INTERNAL, a message on failure. */
static lgd_status checked(api *a, lgd_status st, const char *call, int has_ctx)
{
    if (a->trace)
        fprintf(stderr, "  %-40s %s%s%s\n", call, lgd_status_string(st), st ? ": " : "",
                st ? lgd_context_last_error(a->ctx) : "");
    FZ_CHECK(fz_status_known(st), "%s returned %d", call, (int)st);
    FZ_CHECK(st != LGD_ERR_INTERNAL, "%s: LGD_ERR_INTERNAL: %s", call,
             lgd_context_last_error(a->ctx));
    if (st && has_ctx)
        FZ_CHECK(lgd_context_last_error(a->ctx)[0], "%s failed (%s) without a message", call,
                 lgd_status_string(st));
    return st;
}

#define CALL(a, has_ctx, expr) \
    (lgd_context_clear_error((a)->ctx), checked((a), (expr), #expr, (has_ctx)))

/* a create call's *out: NULL on failure, an object on success */
#define CHECK_OUT(st, out, call)                                                    \
    FZ_CHECK((st) ? (out) == NULL : (out) != NULL && (void *)(out) != SENTINEL,     \
             "%s: status %s with *out = %p", call, lgd_status_string(st), (void *)(out))
/* The same when the handle the call is made from (a guidance's model, a sampler's
 * guidance) is NULL: liblgd 0.4.0 returns LGD_ERR_INVALID_ARGUMENT there before it
 * clears *out (fuzz/README.md, "Known deviations"); LGD_FUZZ_STRICT=1 checks it too. */
#define CHECK_OUT_FROM(handle, st, out, call)                                      \
    do {                                                                            \
        if ((handle) || getenv("LGD_FUZZ_STRICT"))                                  \
            CHECK_OUT(st, out, call);                                               \
        else                                                                        \
            FZ_CHECK((st) != LGD_OK, "%s succeeded without its handle", call);      \
    } while (0)

static void check_finite(const float *p, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        FZ_CHECK(isfinite(p[i]), "%s[%lld] = %g after LGD_OK", what, (long long)i, (double)p[i]);
}

static void check_tensor_finite(lgd_tensor *t, const char *what)
{
    if (t)
        check_finite(lgd_tensor_data(t), lgd_tensor_numel(t), what);
}

/* ------------------------------------------------------------------ decoding */

static uint8_t u8(api *a) { return fz_u8(&a->r); }

/* a size: D, B, small, or an edge value (fuzz_api_ops.h) */
static int64_t size(api *a)
{
    uint8_t c = u8(a);
    if (c < SZ_B)
        return a->D;
    if (c < SZ_SMALL)
        return a->B;
    if (c < 192)
        return c - SZ_SMALL + 1;
    if (c < SZ_EDGE)
        return c - 192;
    return fz_edge_i64[(c - SZ_EDGE) % FZ_N_EDGE_I64];
}

/* an int32 count: small mostly, or an edge */
static int32_t count32(api *a, int small_max)
{
    uint8_t c = u8(a);
    if (c < 0xF0)
        return 1 + c % small_max;
    static const int32_t edges[] = { 0, -1, INT32_MAX, INT32_MIN, 1 << 22, (1 << 22) + 1,
                                     (1 << 24) + 1, 4097, 65537, 2, 3, 1, 1000, 0, -7, 1 << 30 };
    return edges[c - 0xF0];
}

static float flt(api *a) { return fz_float(&a->r); }

/* n floats: the first few from the input, the rest a smooth pattern */
static float *floats(api *a, int64_t n, float scale)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p)
        return NULL;
    uint8_t mode = u8(a);
    for (int64_t i = 0; i < (n > 0 ? n : 1); i++)
        p[i] = scale * sinf(0.7f * (float)i + (float)(mode & 7));
    if (mode >= 0xC0) /* one value from the input (maybe NaN, Inf, huge) */
        p[(mode & 0x3F) % (n > 0 ? n : 1)] = flt(a);
    return p;
}

/* the array length a size pair implies, or -1 when it is not worth allocating */
static int64_t array_len(int64_t x, int64_t y)
{
    if (x <= 0 || y <= 0)
        return 1;
    if (x > MAX_FLOATS || y > MAX_FLOATS || x * y > MAX_FLOATS)
        return -1;
    return x * y;
}

/* Copies an option struct into a buffer of the size the input picks (fz_api's struct
 * size rule): the struct, its first published layout, a larger one with a zero or a
 * non-zero tail, or one below the first layout. *expect_bad is set when the library
 * must refuse it. NULL on allocation failure. */
static void *opt_buffer(api *a, const void *s, size_t size, size_t first, int *expect_bad)
{
    uint8_t c = u8(a);
    size_t n = size;
    int tail = 0;
    *expect_bad = 0;
    if (c >= 0xC0 && c < 0xD0) {
        n = first;
    } else if (c >= 0xD0 && c < 0xE0) {
        n = size + 8;
    } else if (c >= 0xE0 && c < 0xF0) {
        n = size + 8;
        tail = 1;
        *expect_bad = 1;
    } else if (c >= 0xF0) {
        n = first > 4 ? first - 1 - (c & 3) : 4;
        *expect_bad = 1;
    }
    if (n < 4)
        n = 4;
    unsigned char *b = calloc(1, n);
    if (!b)
        return NULL;
    memcpy(b, s, n < size ? n : size);
    if (tail)
        b[n - 1] = 1;
    uint32_t sz = (uint32_t)n;
    memcpy(b, &sz, sizeof sz);
    return b;
}

/* ------------------------------------------------------------------ callbacks */

typedef struct cb_user {
    api *a;
    int64_t dim, cond_dim;
    int fail_mode; /* 0 none, 1 return 3, 2 message + -1, 3 NaN out, 4 an output unwritten */
    int fail_at;   /* the call (0-based) that fails */
    int calls;
    float value; /* radius callback's value */
} cb_user;

static cb_user *new_user(api *a, int64_t dim, int64_t cond_dim)
{
    cb_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->a = a;
    u->dim = dim;
    u->cond_dim = cond_dim;
    uint8_t f = u8(a);
    u->fail_mode = f < 0xC0 ? 0 : 1 + (f & 3);
    u->fail_at = (f >> 2) & 3;
    return u;
}

static void free_user(void *u) { free(u); }

/* Writes n outputs (all but the last when failing with mode 4); returns the status. */
static int32_t finish(cb_user *u, float *out, int64_t n)
{
    int call = u->calls++;
    if (!u->fail_mode || call != u->fail_at)
        return 0;
    switch (u->fail_mode) {
    case 1: return 3;
    case 2: lgd_context_set_callback_error(u->a->ctx, "fuzz: failing on purpose"); return -1;
    case 3: if (n > 0) out[0] = nanf(""); return 0;
    default: if (n > 0) out[n - 1] = nanf(""); return 0; /* as if left unwritten */
    }
}

static int32_t model_denoise(void *user, const float *x, float sigma, const float *cond,
                             int64_t batch, int64_t dim, float *xhat)
{
    cb_user *u = user;
    FZ_CHECK(dim == u->dim && batch > 0 && isfinite(sigma) && sigma > 0,
             "model callback: dim %lld (model %lld), batch %lld, sigma %g", (long long)dim,
             (long long)u->dim, (long long)batch, (double)sigma);
    for (int64_t i = 0; i < batch * dim; i++)
        xhat[i] = x[i] / (1.0f + sigma * sigma) +
                  (cond && u->cond_dim ? 0.1f * cond[(i / dim) * u->cond_dim] : 0.0f);
    return finish(u, xhat, batch * dim);
}

static int32_t model_vjp(void *user, const float *x, float sigma, const float *cond,
                         int64_t batch, int64_t dim, const float *v, float *out)
{
    (void)x;
    (void)cond;
    cb_user *u = user;
    for (int64_t i = 0; i < batch * dim; i++)
        out[i] = v[i] / (1.0f + sigma * sigma);
    return finish(u, out, batch * dim);
}

static int32_t net_forward(void *user, const float *x_in, float t, const float *cond,
                           int64_t batch, int64_t dim, float *out)
{
    cb_user *u = user;
    FZ_CHECK(isfinite(t), "network callback: t = %g", (double)t);
    for (int64_t i = 0; i < batch * dim; i++)
        out[i] = 0.5f * x_in[i] + (cond && u->cond_dim ? 0.1f * cond[(i / dim) * u->cond_dim] : 0.0f);
    return finish(u, out, batch * dim);
}

static int32_t net_vjp(void *user, const float *x_in, float t, const float *cond,
                       int64_t batch, int64_t dim, const float *v, float *out)
{
    (void)x_in;
    (void)t;
    (void)cond;
    for (int64_t i = 0; i < batch * dim; i++)
        out[i] = 0.5f * v[i];
    return finish(user, out, batch * dim);
}

/* l = 0.5 |x - 0.3|^2 per row */
static int32_t loss_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                         float *loss, float *grad)
{
    cb_user *u = user;
    FZ_CHECK(dim == u->dim && batch > 0 && n > 0, "loss callback: dim %lld (loss %lld)",
             (long long)dim, (long long)u->dim);
    for (int64_t r = 0; r < batch * n; r++) {
        double s = 0;
        for (int64_t j = 0; j < dim; j++) {
            float d = x[r * dim + j] - 0.3f;
            s += 0.5 * (double)d * d;
            if (grad)
                grad[r * dim + j] = d;
        }
        loss[r] = (float)s;
    }
    return finish(u, loss, batch * n);
}

static int32_t loss_eval_draws(void *user, const float *x, int64_t batch, int64_t n,
                               int64_t dim, int64_t first_draw, int64_t total_draws,
                               float *loss, float *grad)
{
    FZ_CHECK(first_draw >= 0 && n > 0 && first_draw + n <= total_draws,
             "eval_draws: draws %lld + %lld of %lld", (long long)first_draw, (long long)n,
             (long long)total_draws);
    return loss_eval(user, x, batch, n, dim, loss, grad);
}

static float radius_fn(void *user, float sigma)
{
    (void)sigma;
    return ((cb_user *)user)->value;
}

static void release_buffer(void *user) { free(user); }

typedef struct progress_user {
    api *a;
    int stop_at, cancel_at;
} progress_user;

static int32_t progress(void *user, int32_t step, int32_t num_steps, float sigma,
                        const lgd_guidance_report *report)
{
    (void)sigma;
    (void)report;
    progress_user *p = user;
    FZ_CHECK(step >= 1 && step <= num_steps, "progress: step %d of %d", (int)step,
             (int)num_steps);
    if (step == p->cancel_at)
        lgd_context_cancel(p->a->ctx);
    return step == p->stop_at;
}

/* ------------------------------------------------------------------ slots */

static lgd_tensor *T(api *a) { return a->t[u8(a) % NT]; }
static lgd_model *M(api *a) { return a->m[u8(a) % NM]; }
static lgd_loss *L(api *a) { return a->l[u8(a) % NL]; }

/* a slot, or NULL when the input's byte says so (0xFF) */
static lgd_tensor *T_or_null(api *a)
{
    uint8_t c = u8(a);
    return c == 0xFF ? NULL : a->t[c % NT];
}

/* ------------------------------------------------------------------ tensors */

static void fill_pattern(lgd_tensor *t, float base)
{
    float *p = lgd_tensor_data(t);
    int64_t n = lgd_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = base * sinf(0.3f * (float)i + 0.1f);
}

static void op_tensor(api *a)
{
    int slot = u8(a) % NT;
    int32_t ndim = u8(a) % 6;
    int64_t shape[5] = { 1, 1, 1, 1, 1 };
    int bad_ndim = ndim < 1 || ndim > LGD_TENSOR_MAX_DIMS, any_bad = bad_ndim, overflow = 0;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = size(a);
        if (shape[i] <= 0)
            any_bad = 1;
        else if (__builtin_mul_overflow(numel, shape[i], &numel))
            overflow = 1;
    }
    float base = flt(a);
    /* a tensor is made when small, refused when bad, and allocation fails (NULL from the
     * sanitizer's allocator) beyond 2^40 floats; sizes in between are not tried */
    int huge = !any_bad && (overflow || numel >= ((int64_t)1 << 40));
    if (!any_bad && !huge && numel > MAX_FLOATS)
        return;
    int64_t *sh = malloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1)); /* exactly ndim */
    if (!sh)
        return;
    memcpy(sh, shape, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    lgd_tensor *t = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_tensor_create(a->ctx, ndim, sh, &t));
    free(sh);
    CHECK_OUT(st, t, "lgd_tensor_create");
    /* a size <= 0 is LGD_ERR_INVALID_ARGUMENT; beside sizes whose product overflows, the
     * overflow's LGD_ERR_OUT_OF_MEMORY may come first */
    if (any_bad)
        FZ_CHECK(st == LGD_ERR_INVALID_ARGUMENT ||
                     (!bad_ndim && st == LGD_ERR_OUT_OF_MEMORY &&
                      (overflow || numel >= ((int64_t)1 << 40))),
                 "a bad shape gave %s", lgd_status_string(st));
    else if (huge)
        FZ_CHECK(st == LGD_ERR_OUT_OF_MEMORY, "a tensor of >= 2^40 floats gave %s",
                 lgd_status_string(st));
    else
        FZ_CHECK(st == LGD_OK, "a valid %lld-float tensor: %s", (long long)numel,
                 lgd_status_string(st));
    if (st)
        return;
    FZ_CHECK(lgd_tensor_ndim(t) == ndim && lgd_tensor_numel(t) == numel, "tensor shape");
    if (isfinite(base))
        fill_pattern(t, base);
    else
        lgd_tensor_fill(t, base);
    lgd_tensor_destroy(a->t[slot]);
    a->t[slot] = t;
}

static void op_tensor_wrap(api *a)
{
    int slot = u8(a) % NT;
    uint8_t c = u8(a);
    lgd_memory mem = (c & 3) == 0 ? LGD_MEMORY_HOST : (c & 3) == 1 ? LGD_MEMORY_DEVICE
                   : (c & 3) == 2 ? LGD_MEMORY_HOST : (lgd_memory)7;
    int misalign = (c >> 2) & 1, with_release = !((c >> 3) & 1);
    int32_t ndim = 1 + ((c >> 4) & 1);
    int64_t shape[2] = { size(a), ndim == 2 ? size(a) : 1 };
    int64_t n = array_len(shape[0], shape[1]);
    if (n < 0)
        return;
    unsigned char *buf = malloc((size_t)n * sizeof(float) + 1);
    if (!buf)
        return;
    float *data = (float *)(void *)(buf + misalign);
    lgd_tensor *t = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_tensor_wrap(a->ctx, mem, ndim, shape, data,
                                               with_release ? release_buffer : NULL, buf, &t));
    CHECK_OUT(st, t, "lgd_tensor_wrap");
    int bad = misalign || mem == (lgd_memory)7 || shape[0] <= 0 || shape[1] <= 0;
    /* as lgd_tensor_create: a size <= 0 beside one too large may give either status */
    int huge = shape[0] > MAX_FLOATS || shape[1] > MAX_FLOATS;
    FZ_CHECK(bad ? st == LGD_ERR_INVALID_ARGUMENT || (huge && st == LGD_ERR_OUT_OF_MEMORY)
                 : st == LGD_OK,
             "lgd_tensor_wrap: %s", lgd_status_string(st));
    if (st) {
        free(buf); /* the release callback must not have run */
        return;
    }
    fill_pattern(t, 0.5f);
    if (!with_release && a->n_keep < 16)
        a->keep[a->n_keep++] = buf;
    else if (!with_release) {
        lgd_tensor_destroy(t);
        free(buf);
        return;
    }
    lgd_tensor_destroy(a->t[slot]);
    a->t[slot] = t;
}

static void op_tensor_data(api *a)
{
    lgd_tensor *t = T(a);
    uint8_t sub = u8(a) % 6;
    int has_ctx = t != NULL;
    int64_t n = lgd_tensor_numel(t);
    switch (sub) {
    case 0: {
        float v = flt(a);
        CALL(a, has_ctx, lgd_tensor_fill(t, v));
        break;
    }
    case 1:
    case 2: {
        uint8_t c = u8(a) % 5;
        int64_t count = c == 0 ? n : c == 1 ? n + 1 : c == 2 ? n - 1 : c == 3 ? -1 : 0;
        float *host = floats(a, count > 0 ? count : 1, 1.0f);
        if (!host)
            return;
        lgd_status st = sub == 1 ? CALL(a, has_ctx, lgd_tensor_upload(t, host, count))
                                 : CALL(a, has_ctx, lgd_tensor_download(t, host, count));
        if (t)
            FZ_CHECK(count == n ? st == LGD_OK
                                : st == (count < 0 ? LGD_ERR_INVALID_ARGUMENT : LGD_ERR_SHAPE_MISMATCH),
                     "upload/download of %lld floats into %lld: %s", (long long)count,
                     (long long)n, lgd_status_string(st));
        free(host);
        break;
    }
    case 3: {
        lgd_tensor *src = T(a);
        lgd_status st = CALL(a, has_ctx, lgd_tensor_copy(t, src));
        if (t && src)
            FZ_CHECK((st == LGD_OK) == (lgd_tensor_numel(src) == n), "lgd_tensor_copy: %s",
                     lgd_status_string(st));
        break;
    }
    case 4: {
        int32_t axis = (int32_t)(int8_t)u8(a);
        int64_t d = lgd_tensor_dim(t, axis);
        FZ_CHECK(axis >= 0 && axis < lgd_tensor_ndim(t) ? d > 0 : d == 0, "lgd_tensor_dim");
        FZ_CHECK(!t || lgd_tensor_context(t) == a->ctx, "lgd_tensor_context");
        break;
    }
    default:
        lgd_tensor_destroy(lgd_tensor_retain(t));
        break;
    }
}

/* ------------------------------------------------------------------ models */

static void put_model(api *a, int slot, lgd_model *m)
{
    lgd_model_destroy(a->m[slot]);
    a->m[slot] = m;
}

static void op_model_gmm(api *a)
{
    int slot = u8(a) % NM;
    int64_t dim = size(a);
    uint8_t kc = u8(a);
    int64_t K = kc < 0xE0 ? 1 + kc % 4 : fz_edge_i64[kc % FZ_N_EDGE_I64];
    uint8_t lc = u8(a);
    lgd_covariance layout = lc < 0xF0 ? (lgd_covariance)(lc % 3) : (lgd_covariance)(3 + (lc & 3));
    int bad = dim <= 0 || dim > 65536 || K <= 0 || K > (1 << 20);
    if (!bad && (dim > MAX_GMM_DIM || K > MAX_GMM_K))
        return; /* valid, but too large for a quick run */
    int64_t D = bad ? 1 : dim, k = bad ? 1 : K;
    int64_t ncov = layout == LGD_COVARIANCE_FULL ? k * D * D
                 : layout == LGD_COVARIANCE_DIAGONAL ? k * D : k;
    float *w = floats(a, k, 1.0f), *mu = floats(a, k * D, 2.0f);
    float *cov = calloc((size_t)(ncov > 0 ? ncov : 1), sizeof *cov);
    if (!w || !mu || !cov)
        goto out;
    for (int64_t i = 0; i < k; i++)
        w[i] = fabsf(w[i]) + 0.1f;
    uint8_t cm = u8(a);
    if (layout == LGD_COVARIANCE_FULL) {
        for (int64_t c = 0; c < k; c++) { /* A A^T / D + 0.1 I */
            float *S = cov + c * D * D;
            for (int64_t i = 0; i < D; i++)
                for (int64_t j = 0; j < D; j++) {
                    double s = 0;
                    for (int64_t q = 0; q < D; q++)
                        s += sin(1.0 + (double)(i * D + q + c)) * sin(1.0 + (double)(j * D + q + c));
                    S[i * D + j] = (float)(s / (double)D) + (i == j ? 0.1f : 0.0f);
                }
        }
    } else {
        for (int64_t i = 0; i < ncov; i++)
            cov[i] = 0.5f + 0.25f * sinf((float)i);
    }
    switch (cm >> 5) { /* breaking the rules: the call must refuse them */
    case 1: w[cm % k] = -1.0f; break;
    case 2: cov[cm % ncov] = -0.5f; break;                      /* asymmetric / negative */
    case 3: cov[cm % ncov] = flt(a); break;                     /* any value, NaN too */
    case 4: mu[cm % (k * D)] = flt(a); break;
    case 5: cov[(cm % ncov)] = 0.0f; break;                     /* a zero variance */
    default: break;
    }
    lgd_model *m = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_model_create_gmm(a->ctx, dim, K, w, mu, cov, layout, &m));
    CHECK_OUT(st, m, "lgd_model_create_gmm");
    if (bad || (int)layout > 2)
        FZ_CHECK(st != LGD_OK, "a bad mixture was not refused: %s",
                 lgd_status_string(st));
    if (!st)
        put_model(a, slot, m);
out:
    free(w);
    free(mu);
    free(cov);
}

static void op_model_traj(api *a)
{
    int slot = u8(a) % NM;
    lgd_trajectory_prior_options o = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    o.frames = count32(a, 8);
    o.headings = count32(a, 3);
    o.turns = count32(a, 3);
    uint8_t fc = u8(a);
    if (fc & 1)
        o.max_turn = flt(a);
    if (fc & 2)
        o.speed = flt(a);
    if (fc & 4)
        o.gp_std = flt(a);
    if (fc & 8)
        o.gp_length = flt(a);
    if (fc & 16)
        o.jitter = flt(a);
    int valid_sizes = o.frames >= 1 && o.frames <= 4096 && o.headings >= 1 && o.turns >= 1 &&
                      (int64_t)o.headings * o.turns <= 4096;
    if (valid_sizes && (o.frames > 8 || (int64_t)o.headings * o.turns > 8))
        return;
    int bad;
    void *buf = opt_buffer(a, &o, sizeof o, sizeof o, &bad);
    if (!buf)
        return;
    lgd_model *m = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_model_create_trajectory_prior(a->ctx, buf, &m));
    CHECK_OUT(st, m, "lgd_model_create_trajectory_prior");
    if (bad || !valid_sizes)
        FZ_CHECK(st != LGD_OK, "bad prior options: %s", lgd_status_string(st));
    free(buf);
    if (!st)
        put_model(a, slot, m);
}

static void op_model_cb(api *a)
{
    int slot = u8(a) % NM;
    int64_t dim = size(a);
    uint8_t c = u8(a);
    int64_t cond_dim = (c & 3) == 3 ? -1 : (c & 3);
    lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
    cb.memory = (c & 4) ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST;
    cb.dim = dim;
    cb.cond_dim = cond_dim;
    cb.denoise = (c & 0x40) ? NULL : model_denoise;
    cb.vjp = (c & 8) ? NULL : model_vjp;
    int with_destroy = !(c & 16);
    cb_user *u = new_user(a, dim, cond_dim);
    if (!u)
        return;
    cb.destroy = with_destroy ? free_user : NULL;
    cb.user = u;
    int bad;
    void *buf = opt_buffer(a, &cb, sizeof cb, sizeof cb, &bad);
    if (!buf) {
        free(u);
        return;
    }
    lgd_model *m = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_model_create_callbacks(a->ctx, buf, &m));
    free(buf);
    CHECK_OUT(st, m, "lgd_model_create_callbacks");
    if (bad || dim <= 0 || cond_dim < 0 || !cb.denoise)
        FZ_CHECK(st != LGD_OK, "bad model callbacks: %s", lgd_status_string(st));
    if (st) {
        free(u); /* not called on failure */
        return;
    }
    if (!with_destroy) {
        if (a->n_keep == 16) {
            lgd_model_destroy(m);
            free(u);
            return;
        }
        a->keep[a->n_keep++] = u;
    }
    put_model(a, slot, m);
}

/* adapter options from the input; *alphas (malloc'd) is theirs, free it after the call */
static lgd_adapter_options adapter(api *a, float **alphas, int *bad)
{
    lgd_adapter_options o = LGD_ADAPTER_OPTIONS_INIT;
    uint8_t c = u8(a);
    o.prediction = (c & 7) < 4 ? (lgd_prediction)(c & 7) : (lgd_prediction)(c & 7) + 10;
    o.time_input = ((c >> 3) & 7) < 4 ? (lgd_time_input)((c >> 3) & 7)
                                      : (lgd_time_input)(((c >> 3) & 7) + 10);
    *bad = (c & 7) >= 4 || ((c >> 3) & 7) >= 4;
    uint8_t n = u8(a);
    int len = n % 17;
    *alphas = NULL;
    if (len) {
        *alphas = malloc((size_t)len * sizeof(float));
        if (*alphas) {
            for (int i = 0; i < len; i++)
                (*alphas)[i] = 0.99f - 0.9f * (float)i / (float)len;
            if (n >= 0xC0)
                (*alphas)[n % len] = flt(a); /* maybe out of order or range */
            o.alphas_cumprod = *alphas;
        }
    }
    o.num_timesteps = n >= 0xE0 ? -(int32_t)(n & 3) : len; /* never more than allocated */
    if (c & 0x40)
        o.sigma_data = flt(a);
    if (o.time_input <= LGD_TIME_DISCRETE_ROUND && (len < 2 || n >= 0xE0) && !*bad)
        *bad = 1; /* a discrete time input without a usable schedule */
    if (o.prediction == LGD_PREDICT_EDM && !(isfinite(o.sigma_data) && o.sigma_data > 0))
        *bad = 1;
    return o;
}

static void op_model_netcb(api *a)
{
    int slot = u8(a) % NM;
    int64_t dim = size(a);
    uint8_t c = u8(a);
    lgd_network_callbacks nc = LGD_NETWORK_CALLBACKS_INIT;
    nc.dim = dim;
    nc.cond_dim = (c & 3) == 3 ? -1 : (c & 3);
    nc.memory = (c & 4) ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST;
    nc.forward = net_forward;
    nc.vjp = (c & 8) ? NULL : net_vjp;
    cb_user *u = new_user(a, dim, nc.cond_dim);
    if (!u)
        return;
    nc.destroy = free_user;
    nc.user = u;
    float *alphas;
    int bad_adapter;
    lgd_adapter_options ao = adapter(a, &alphas, &bad_adapter);
    int bad_net, bad_ad;
    void *nbuf = opt_buffer(a, &nc, sizeof nc, sizeof nc, &bad_net);
    void *abuf = (c & 0x80) ? NULL : opt_buffer(a, &ao, sizeof ao, sizeof ao, &bad_ad);
    if (c & 0x80) {
        bad_ad = 0;
        bad_adapter = 1; /* NULL: defaults, which need alphas_cumprod */
    }
    lgd_model *m = SENTINEL;
    lgd_status st = LGD_ERR_OUT_OF_MEMORY;
    if (nbuf && (abuf || (c & 0x80))) {
        st = CALL(a, 1, lgd_model_create_network_callbacks(a->ctx, nbuf, abuf, &m));
        CHECK_OUT(st, m, "lgd_model_create_network_callbacks");
        if (bad_net || bad_ad || bad_adapter || dim <= 0 || nc.cond_dim < 0)
            FZ_CHECK(st != LGD_OK, "bad network callbacks / adapter: %s",
                     lgd_status_string(st));
    }
    free(nbuf);
    free(abuf);
    free(alphas);
    if (st) {
        free(u);
        return;
    }
    put_model(a, slot, m);
}

static void op_model_net(api *a)
{
    int slot = u8(a) % NM, nslot = u8(a) % NN;
    int64_t dim = size(a);
    if (dim < 1 || dim > 8)
        dim = 1 + (dim & 7);
    uint8_t c = u8(a);
    ng_desc d;
    memset(&d, 0, sizeof d);
    d.alphas_len = (c & 1) ? 0 : 10;
    d.seed = c;
    char v[32];
    netgen_set(&d, "lgd.format", "1");
    netgen_set(&d, "lgd.architecture", "mlp");
    snprintf(v, sizeof v, "%lld", (long long)dim);
    netgen_set(&d, "lgd.dim", v);
    netgen_set(&d, "lgd.hidden", "4");
    netgen_set(&d, "lgd.depth", (c & 2) ? "1" : "0");
    netgen_set(&d, "lgd.time_embed_dim", "2");
    netgen_set(&d, "lgd.cond_dim", (c & 4) ? "2" : "0");
    static const char *const preds[] = { "eps", "x0", "v", "edm" };
    static const char *const times[] = { "discrete", "discrete_round", "log_sigma", "sigma" };
    netgen_set(&d, "lgd.prediction", preds[(c >> 3) & 3]);
    netgen_set(&d, "lgd.time_input", times[(c >> 5) & 3]);
    unsigned char *file = NULL;
    size_t file_size = 0;
    if (netgen_build(&d, &file, &file_size))
        return;
    lgd_network *net = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_network_load_memory(a->ctx, file, file_size, &net));
    free(file);
    CHECK_OUT(st, net, "lgd_network_load_memory");
    FZ_CHECK(st == LGD_OK, "a valid generated mlp did not load: %s", lgd_context_last_error(a->ctx));
    lgd_network_destroy(a->n[nslot]);
    a->n[nslot] = net;
    float *alphas = NULL;
    int bad_adapter = 0, bad_ad = 0;
    void *abuf = NULL;
    if (c & 0x80) {
        lgd_adapter_options ao = adapter(a, &alphas, &bad_adapter);
        abuf = opt_buffer(a, &ao, sizeof ao, sizeof ao, &bad_ad);
        if (!abuf) {
            free(alphas);
            return;
        }
    }
    lgd_model *m = SENTINEL;
    st = CALL(a, 1, lgd_model_create_from_network(a->ctx, net, abuf, &m));
    CHECK_OUT(st, m, "lgd_model_create_from_network");
    if (abuf && (bad_adapter || bad_ad))
        FZ_CHECK(st != LGD_OK, "a bad adapter: %s", lgd_status_string(st));
    free(abuf);
    free(alphas);
    if (!st)
        put_model(a, slot, m);
}

static void op_model_call(api *a)
{
    lgd_model *m = M(a);
    uint8_t sub = u8(a) % 7;
    lgd_tensor *x = T(a), *out = T(a), *v = T(a), *cond = T_or_null(a);
    float sigma = flt(a);
    int has = m != NULL;
    lgd_status st;
    switch (sub) {
    case 0:
        st = CALL(a, has, lgd_model_denoise(m, x, sigma, cond, out));
        if (!st)
            check_tensor_finite(out, "lgd_model_denoise out");
        break;
    case 1:
        CALL(a, has, lgd_model_vjp(m, x, sigma, cond, v, out));
        break;
    case 2:
        st = CALL(a, has, lgd_model_score(m, x, sigma, cond, out));
        if (!st)
            check_tensor_finite(out, "lgd_model_score out");
        break;
    case 3:
        CALL(a, has, lgd_model_log_density(m, x, sigma, out));
        break;
    case 4: {
        uint64_t seed = u8(a);
        CALL(a, has, lgd_model_sample_posterior(m, x, sigma, seed, (uint64_t)size(a), out));
        break;
    }
    case 5: {
        float t = 0;
        st = CALL(a, has, lgd_model_network_time(m, sigma, &t));
        if (!st)
            FZ_CHECK(isfinite(t), "lgd_model_network_time gave %g", (double)t);
        break;
    }
    default:
        FZ_CHECK(!m || lgd_model_context(m) == a->ctx, "lgd_model_context");
        (void)lgd_model_has_exact_posterior(m);
        lgd_model_destroy(lgd_model_retain(m));
        break;
    }
}

/* ------------------------------------------------------------------ losses */

static void put_loss_cost(api *a, int slot, lgd_loss *l, int64_t cost)
{
    lgd_loss_destroy(a->l[slot]);
    a->l[slot] = l;
    a->lcost[slot] = cost;
}

static void put_loss(api *a, int slot, lgd_loss *l) { put_loss_cost(a, slot, l, 1); }

static void op_loss_sq(api *a)
{
    int slot = u8(a) % NL;
    int64_t dim = size(a), rows = size(a);
    int64_t n = array_len(dim, rows);
    uint8_t c = u8(a);
    if (n < 0)
        return;
    float *target = floats(a, n, 1.0f);
    float *w = (c & 1) ? NULL : floats(a, dim > 0 && dim <= MAX_FLOATS ? dim : 1, 1.0f);
    if (w)
        for (int64_t i = 0; i < (dim > 0 && dim <= MAX_FLOATS ? dim : 1); i++)
            w[i] = (c & 2) ? w[i] : fabsf(w[i]);
    lgd_loss *l = SENTINEL;
    if (target && (w || (c & 1))) {
        lgd_status st = CALL(a, 1, lgd_loss_create_squared_error(a->ctx, dim, target, rows, w, &l));
        CHECK_OUT(st, l, "lgd_loss_create_squared_error");
        if (dim <= 0 || rows < 1)
            FZ_CHECK(st != LGD_OK, "bad sizes: %s", lgd_status_string(st));
        if (!st)
            put_loss(a, slot, l);
    }
    free(target);
    free(w);
}

static void op_loss_linear(api *a)
{
    int slot = u8(a) % NL;
    int64_t dim = size(a), m = size(a), rows = size(a);
    float noise = flt(a);
    int64_t nh = array_len(m, dim), ny = array_len(rows, m);
    if (nh < 0 || ny < 0)
        return;
    float *H = floats(a, nh, 1.0f), *y = floats(a, ny, 1.0f);
    lgd_loss *l = SENTINEL;
    if (H && y) {
        lgd_status st = CALL(a, 1, lgd_loss_create_linear(a->ctx, dim, m, H, y, rows, noise, &l));
        CHECK_OUT(st, l, "lgd_loss_create_linear");
        if (dim <= 0 || m <= 0 || rows < 1 || !(noise > 0) || !isfinite(noise))
            FZ_CHECK(st != LGD_OK, "bad linear loss: %s", lgd_status_string(st));
        if (!st)
            put_loss(a, slot, l);
    }
    free(H);
    free(y);
}

static void op_loss_logistic(api *a)
{
    int slot = u8(a) % NL;
    int64_t dim = size(a);
    float b = flt(a);
    int64_t n = array_len(dim, 1);
    if (n < 0)
        return;
    float *w = floats(a, n, 1.0f);
    lgd_loss *l = SENTINEL;
    if (w) {
        lgd_status st = CALL(a, 1, lgd_loss_create_logistic(a->ctx, dim, w, b, &l));
        CHECK_OUT(st, l, "lgd_loss_create_logistic");
        if (dim <= 0 || !isfinite(b))
            FZ_CHECK(st != LGD_OK, "bad logistic loss: %s", lgd_status_string(st));
        if (!st)
            put_loss(a, slot, l);
    }
    free(w);
}

static void op_loss_sum(api *a)
{
    int slot = u8(a) % NL;
    uint8_t c = u8(a);
    int32_t count = (c & 7) < 6 ? (c & 7) : (c & 7) == 6 ? -1 : 0; /* 0..5, -1, 0 */
    lgd_loss **terms = malloc(sizeof *terms * (size_t)(count > 0 ? count : 1));
    float *w = (c & 8) ? floats(a, count > 0 ? count : 1, 1.0f) : NULL;
    if (!terms || ((c & 8) && !w)) {
        free(terms);
        free(w);
        return;
    }
    terms[0] = NULL;
    int64_t cost = 0;
    for (int i = 0; i < count; i++) {
        int k = u8(a) % NL;
        terms[i] = a->l[k];
        cost += a->l[k] ? a->lcost[k] : 0;
    }
    if (cost > MAX_LOSS_LEAVES) { /* valid, but too slow to evaluate */
        free(terms);
        free(w);
        return;
    }
    lgd_loss *l = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_loss_create_sum(a->ctx, count, terms, w, &l));
    CHECK_OUT(st, l, "lgd_loss_create_sum");
    if (count < 1)
        FZ_CHECK(st != LGD_OK, "a sum of %d terms: %s", (int)count,
                 lgd_status_string(st));
    free(terms);
    free(w);
    if (!st)
        put_loss_cost(a, slot, l, cost);
}

/* an int64 layout field: small mostly, or an edge */
static int64_t layout_field(api *a, int64_t dflt)
{
    uint8_t c = u8(a);
    if (c < 0x40)
        return dflt;
    if (c < 0xC0)
        return c % 16;
    return fz_edge_i64[c % FZ_N_EDGE_I64];
}

static void *layout_buffer(api *a, int64_t dim, lgd_trajectory_layout *lo, int *bad)
{
    *lo = (lgd_trajectory_layout)LGD_TRAJECTORY_LAYOUT_INIT;
    lo->frames = layout_field(a, dim / 2 > 0 ? dim / 2 : 1);
    lo->frame_stride = layout_field(a, 2);
    lo->root_offset = layout_field(a, 0);
    uint8_t c = u8(a);
    lo->velocities = (c & 1);
    if (c & 2)
        lo->velocity_scale = flt(a);
    int bad_size;
    void *buf = opt_buffer(a, lo, sizeof *lo, sizeof *lo, &bad_size);
    /* the layout rules of lgd/trajectory.h (the fit check in exact arithmetic) */
    __int128 end = (__int128)lo->root_offset + ((__int128)lo->frames - 1) * lo->frame_stride + 2;
    *bad = bad_size || dim <= 0 || lo->frames < 1 || lo->frame_stride < 2 || lo->root_offset < 0 ||
           !isfinite(lo->velocity_scale) || end > dim;
    return buf;
}

static void op_loss_path(api *a)
{
    int slot = u8(a) % NL;
    int64_t dim = size(a), rows = size(a);
    lgd_trajectory_layout lo;
    int bad;
    void *lbuf = layout_buffer(a, dim, &lo, &bad);
    if (!lbuf)
        return;
    int64_t n;
    if (lo.frames >= 1 && lo.frames <= MAX_FLOATS && rows >= 1 && rows <= MAX_FLOATS &&
        rows * 2 * lo.frames <= MAX_FLOATS)
        n = rows * 2 * lo.frames;
    else if (bad || rows < 1)
        n = 1; /* the call must refuse the layout or the rows before reading the path */
    else { /* a valid layout of too many frames or rows to make a path for: skipped */
        free(lbuf);
        return;
    }
    float *path = floats(a, n, 1.0f);
    lgd_loss *l = SENTINEL;
    if (path) {
        lgd_status st = CALL(a, 1, lgd_loss_create_path(a->ctx, dim, lbuf, path, rows, &l));
        CHECK_OUT(st, l, "lgd_loss_create_path");
        if (bad || rows < 1)
            FZ_CHECK(st != LGD_OK,
                     "a bad trajectory layout (frames %lld, stride %lld, offset %lld, dim %lld) "
                     "was accepted: %s", (long long)lo.frames, (long long)lo.frame_stride,
                     (long long)lo.root_offset, (long long)dim, lgd_status_string(st));
        if (!st)
            put_loss(a, slot, l);
    }
    free(path);
    free(lbuf);
}

static void op_loss_obstacle(api *a)
{
    int slot = u8(a) % NL;
    int64_t dim = size(a), rows = size(a);
    lgd_trajectory_layout lo;
    int bad;
    void *lbuf = layout_buffer(a, dim, &lo, &bad);
    if (!lbuf)
        return;
    uint8_t c = u8(a);
    int64_t count = (c & 7) < 5 ? (c & 7) : (c & 7) == 5 ? -1 : (c & 7) == 6 ? INT64_MAX / 2 : 0;
    int with_goal = !(c & 8), with_opts = (c & 16) != 0;
    int64_t ng = rows >= 1 && rows <= MAX_FLOATS ? 2 * rows : (bad || rows < 1 ? 2 : -1);
    if (ng < 0) {
        free(lbuf);
        return;
    }
    float *goal = with_goal ? floats(a, ng, 2.0f) : NULL;
    int64_t no = count > 0 && count <= 4 ? 3 * count : 3;
    float *obs = floats(a, no, 1.0f);
    for (int64_t i = 2; obs && i < no; i += 3)
        obs[i] = (c & 32) ? obs[i] : fabsf(obs[i]) + 0.5f; /* radii > 0 unless asked */
    lgd_obstacle_options oo = LGD_OBSTACLE_OPTIONS_INIT;
    int bad_opts = 0;
    void *obuf = NULL;
    if (with_opts) {
        uint8_t f = u8(a);
        if (f & 1)
            oo.sharpness = flt(a);
        if (f & 2)
            oo.obstacle_weight = flt(a);
        if (f & 4)
            oo.goal_weight = flt(a);
        obuf = opt_buffer(a, &oo, sizeof oo, sizeof oo, &bad_opts);
    }
    /* a count beyond the array is only passed when the call must refuse it */
    int count_bad = count < 0 || count > 4;
    lgd_loss *l = SENTINEL;
    if (obs && (goal || !with_goal) && (obuf || !with_opts) &&
        (!count_bad || count < 0 || bad || rows < 1 || count > INT64_MAX / 16)) {
        lgd_status st = CALL(a, 1, lgd_loss_create_obstacle_avoidance(
                                       a->ctx, dim, lbuf, goal, rows, obs, count, obuf, &l));
        CHECK_OUT(st, l, "lgd_loss_create_obstacle_avoidance");
        if (bad || rows < 1 || count < 0 || bad_opts || (!with_goal && count == 0))
            FZ_CHECK(st != LGD_OK,
                     "bad obstacle loss (frames %lld, stride %lld, offset %lld, dim %lld, count "
                     "%lld) was accepted: %s", (long long)lo.frames, (long long)lo.frame_stride,
                     (long long)lo.root_offset, (long long)dim, (long long)count,
                     lgd_status_string(st));
        if (!st)
            put_loss(a, slot, l);
    }
    free(goal);
    free(obs);
    free(obuf);
    free(lbuf);
}

static void op_loss_cb(api *a)
{
    int slot = u8(a) % NL;
    int64_t dim = size(a);
    uint8_t c = u8(a);
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.memory = (c & 1) ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST;
    cb.dim = dim;
    int which = (c >> 1) & 3; /* 0 eval, 1 eval_draws, 2 both, 3 neither */
    cb.eval = which == 0 || which == 2 ? loss_eval : NULL;
    cb.eval_draws = which == 1 || which == 2 ? loss_eval_draws : NULL;
    cb_user *u = new_user(a, dim, 0);
    if (!u)
        return;
    cb.destroy = free_user;
    cb.user = u;
    int bad;
    void *buf = opt_buffer(a, &cb, sizeof cb, offsetof(lgd_loss_callbacks, eval_draws), &bad);
    if (!buf) {
        free(u);
        return;
    }
    /* a first-layout struct has no eval_draws: then only eval counts */
    uint32_t given;
    memcpy(&given, buf, sizeof given);
    int has_draws = given >= sizeof cb && cb.eval_draws;
    int one = (cb.eval != NULL) + has_draws == 1;
    lgd_loss *l = SENTINEL;
    lgd_status st = CALL(a, 1, lgd_loss_create_callbacks(a->ctx, buf, &l));
    free(buf);
    CHECK_OUT(st, l, "lgd_loss_create_callbacks");
    if (bad || dim <= 0 || !one)
        FZ_CHECK(st != LGD_OK, "bad loss callbacks: %s", lgd_status_string(st));
    if (st) {
        free(u);
        return;
    }
    put_loss(a, slot, l);
}

static void op_loss_eval(api *a)
{
    lgd_loss *l = L(a);
    lgd_tensor *x = T(a), *out = T(a), *grad = T_or_null(a);
    lgd_status st = CALL(a, l != NULL, lgd_loss_eval(l, x, out, grad));
    if (!st) {
        check_tensor_finite(out, "lgd_loss_eval loss");
        check_tensor_finite(grad, "lgd_loss_eval grad");
    }
}

/* ------------------------------------------------------------------ guidance */

static void op_guidance(api *a)
{
    int slot = u8(a) % NG;
    lgd_model *m = M(a);
    lgd_loss *l = L(a);
    uint8_t c = u8(a);
    lgd_guidance *g = SENTINEL;
    lgd_status st;
    cb_user *ru = NULL;
    if (c < 0x20) {
        int32_t n = count32(a, MAX_DRAWS);
        if (n > MAX_DRAWS && n <= LGD_GUIDANCE_MAX_SAMPLES)
            return;
        st = CALL(a, 1, lgd_guidance_mc(a->ctx, m, l, n, &g));
        CHECK_OUT_FROM(m, st, g, "lgd_guidance_mc");
    } else {
        lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
        /* 0..3, the gradient-free kind 4 (0.5.0) and the invalid 5 */
        o.kind = (c & 3) == 0 && (c & 4) ? (lgd_guidance_kind)((c & 8) ? 5 : 4)
                                          : (lgd_guidance_kind)(c & 3);
        o.n_samples = count32(a, MAX_DRAWS);
        if (o.n_samples > MAX_DRAWS && o.n_samples <= LGD_GUIDANCE_MAX_SAMPLES)
            return;
        uint8_t k = u8(a);
        o.chunk_size = k < 0xF0 ? k % 20 : k == 0xF0 ? -1 : INT32_MAX;
        uint8_t f = u8(a);
        if (f & 1)
            o.sigma_data = flt(a);
        if (f & 2) {
            ru = calloc(1, sizeof *ru);
            if (!ru)
                return;
            ru->value = flt(a);
            o.radius = radius_fn;
            o.radius_user = ru;
        }
        o.step_rule = (lgd_step_rule)((f >> 2) & 3);
        if (f & 16)
            o.scale = flt(a);
        if (f & 32)
            o.sigma_min_active = flt(a);
        if (f & 64)
            o.sigma_max_active = flt(a);
        o.seed = u8(a);
        int bad;
        void *buf = opt_buffer(a, &o, sizeof o, sizeof o, &bad);
        if (!buf) {
            free(ru);
            return;
        }
        st = CALL(a, 1, lgd_guidance_create(a->ctx, m, l, buf, &g));
        free(buf);
        CHECK_OUT_FROM(m, st, g, "lgd_guidance_create");
        int bad_n = (o.kind == LGD_GUIDANCE_MC || o.kind == LGD_GUIDANCE_EXACT ||
                     o.kind == LGD_GUIDANCE_MC_GRADIENT_FREE) &&
                    (o.n_samples < 1 || o.n_samples > LGD_GUIDANCE_MAX_SAMPLES || o.chunk_size < 0);
        if (bad || o.kind > 4 || o.step_rule > 2 || !m || bad_n)
            FZ_CHECK(st != LGD_OK, "bad guidance options: %s",
                     lgd_status_string(st));
    }
    if (st) {
        free(ru);
        return;
    }
    if (ru) { /* the radius user data lives as long as the guidance: kept to the end */
        if (a->n_keep == 16) {
            lgd_guidance_destroy(g);
            free(ru);
            return;
        }
        a->keep[a->n_keep++] = ru;
    }
    lgd_guidance_destroy(a->g[slot]);
    a->g[slot] = g;
}

static void op_guidance_misc(api *a)
{
    lgd_guidance *g = a->g[u8(a) % NG];
    uint8_t sub = u8(a) % 4;
    if (sub == 0) {
        CALL(a, g != NULL, lgd_guidance_set_condition(g, T_or_null(a)));
    } else if (sub == 1) {
        lgd_guidance_set_seed(g, u8(a));
    } else if (sub == 2) {
        (void)lgd_guidance_radius(g, flt(a));
    } else {
        FZ_CHECK(!g || lgd_guidance_context(g) == a->ctx, "lgd_guidance_context");
        lgd_guidance_destroy(lgd_guidance_retain(g));
    }
}

static int tensor_finite(lgd_tensor *t)
{
    const float *p = lgd_tensor_data(t);
    for (int64_t i = 0, n = lgd_tensor_numel(t); i < n; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

/* lgd_guidance_denoise gave LGD_OK and a non-finite xhat_g. The headers promise finite
 * xhat and g (else LGD_ERR_NON_FINITE), not xhat + lambda g: lambda (scale sigma^2 with
 * the score rule) times a finite g can overflow. Known deviation (fuzz/README.md),
 * tolerated unless LGD_FUZZ_STRICT=1; the term of the same call is checked instead. */
static void check_denoise_overflow(api *a, lgd_guidance *g, lgd_tensor *x, float sigma,
                                   int32_t step, uint64_t first_row, lgd_tensor *out)
{
    FZ_CHECK(!getenv("LGD_FUZZ_STRICT"), "lgd_guidance_denoise: LGD_OK with a non-finite out "
             "(sigma %g)", (double)sigma);
    int64_t shape[LGD_TENSOR_MAX_DIMS];
    int32_t nd = lgd_tensor_ndim(out);
    for (int32_t i = 0; i < nd; i++)
        shape[i] = lgd_tensor_dim(out, i);
    lgd_tensor *gt = NULL, *xt = NULL;
    if (lgd_tensor_create(a->ctx, nd, shape, &gt) || lgd_tensor_create(a->ctx, nd, shape, &xt)) {
        lgd_tensor_destroy(gt);
        return;
    }
    /* a second call (callbacks may fail or write NaN on purpose on one call only: then
     * the term's status says nothing about the first call) */
    lgd_status st = lgd_guidance_term(g, x, sigma, step, first_row, gt, xt, NULL);
    FZ_CHECK(st != LGD_OK || (tensor_finite(gt) && tensor_finite(xt)),
             "lgd_guidance_term: LGD_OK with a non-finite g or xhat");
    lgd_tensor_destroy(gt);
    lgd_tensor_destroy(xt);
}

/* a report from the input: NULL, or of a fuzzed struct_size, with per-row arrays */
typedef struct report_buf {
    lgd_guidance_report *r;
    float *rows[4];
} report_buf;

static void report_make(api *a, report_buf *rb)
{
    memset(rb, 0, sizeof *rb);
    uint8_t c = u8(a);
    if (c < 0x40)
        return;
    static const uint32_t sizes[] = { sizeof(lgd_guidance_report),
                                      offsetof(lgd_guidance_report, rows), 4, 3,
                                      sizeof(lgd_guidance_report) + 8 };
    uint32_t sz = sizes[c % 5];
    size_t alloc = sz < sizeof(lgd_guidance_report) ? sizeof(lgd_guidance_report) : sz;
    /* the library writes only struct_size bytes: the buffer is that size exactly when
     * it covers the rows fields, else large enough to set them */
    rb->r = calloc(1, alloc);
    if (!rb->r)
        return;
    rb->r->struct_size = sz;
    if (sz >= sizeof(lgd_guidance_report) && (c & 0x20)) {
        /* rows B or B - 1 (refused when the call's batch is larger), or 0 (refused),
         * with arrays of exactly that many floats (one when rows is 0) */
        uint8_t rc = u8(a);
        int64_t rows = rc < 0xF0 ? a->B - (rc & 1) : 0;
        rb->r->rows = rows;
        for (int i = 0; i < 4; i++)
            if ((rc >> (1 + i)) & 1)
                rb->rows[i] = calloc((size_t)(rows > 0 ? rows : 1), sizeof(float));
        rb->r->row_loss = rb->rows[0];
        rb->r->row_ess = rb->rows[1];
        rb->r->row_grad_norm = rb->rows[2];
        rb->r->row_lambda = rb->rows[3];
    }
}

static void report_free(report_buf *rb)
{
    for (int i = 0; i < 4; i++)
        free(rb->rows[i]);
    free(rb->r);
}

static void op_guidance_call(api *a)
{
    lgd_guidance *g = a->g[u8(a) % NG];
    uint8_t sub = u8(a);
    lgd_tensor *x = T(a), *out = T(a), *xhat = T_or_null(a);
    float sigma = flt(a);
    int32_t step = (int32_t)u8(a);
    uint64_t first_row = (uint64_t)size(a);
    report_buf rb;
    report_make(a, &rb);
    if (a->trace)
        fprintf(stderr, "  (sigma %g, step %d)\n", (double)sigma, (int)step);
    lgd_status st;
    if (sub & 1) {
        st = CALL(a, g != NULL, lgd_guidance_term(g, x, sigma, step, first_row, out, xhat, rb.r));
        if (!st)
            check_tensor_finite(out, "lgd_guidance_term g");
    } else {
        st = CALL(a, g != NULL, lgd_guidance_denoise(g, x, sigma, step, first_row, out, rb.r));
        if (!st && !tensor_finite(out))
            check_denoise_overflow(a, g, x, sigma, step, first_row, out);
    }
    if (!st && rb.r && rb.r->struct_size >= offsetof(lgd_guidance_report, rows))
        FZ_CHECK(!isnan(rb.r->mean_ess) && !isnan(rb.r->min_ess) && rb.r->mean_ess >= 0 &&
                     rb.r->min_ess >= 0,
                 "report ess %g / %g", (double)rb.r->mean_ess, (double)rb.r->min_ess);
    report_free(&rb);
}

/* ------------------------------------------------------------------ samplers */

static void op_sampler(api *a)
{
    int slot = u8(a) % NS;
    lgd_guidance *g = a->g[u8(a) % NG];
    uint8_t c = u8(a);
    lgd_sampler *s = SENTINEL;
    lgd_status st;
    float *sig = NULL;
    if (c < 0x10) {
        st = CALL(a, g != NULL, lgd_sampler_create(g, NULL, &s)); /* 20 steps */
    } else {
        lgd_sampler_options o = LGD_SAMPLER_OPTIONS_INIT;
        o.kind = (lgd_sampler_kind)(c & 3);
        if ((c & 0xF0) == 0xF0)
            o.kind = (lgd_sampler_kind)4;
        o.steps = count32(a, 6);
        if (o.steps > 12 && o.steps <= (1 << 22))
            return;
        uint8_t sc = u8(a);
        o.schedule = (lgd_schedule_kind)(sc & 3);
        if (sc >= 0xF8)
            o.schedule = (lgd_schedule_kind)7;
        uint8_t f = u8(a);
        if (f & 1)
            o.sigma_min = flt(a);
        if (f & 2)
            o.sigma_max = flt(a);
        if (f & 4)
            o.rho = flt(a);
        if (f & 8)
            o.eta = flt(a);
        if (f & 16) {
            o.s_churn = flt(a);
            o.s_tmin = flt(a);
            o.s_tmax = flt(a);
            o.s_noise = flt(a);
        }
        if (f & 32) {
            static const int32_t vp[] = { 1, 2, 5, 10, 50, 100, 1000, 0, -1, 3, 7, 20 };
            o.vp_timesteps = vp[u8(a) % 12];
            o.vp_beta_start = flt(a);
            o.vp_beta_end = flt(a);
        }
        if (o.schedule == LGD_SCHEDULE_USER) {
            uint8_t n = u8(a);
            int len = n % 13;
            o.n_sigmas = n >= 0xF0 ? -1 : len;
            if (len) {
                sig = malloc((size_t)len * sizeof *sig);
                if (!sig)
                    return;
                for (int i = 0; i < len; i++)
                    sig[i] = 10.0f / (float)(1 + i * i);
                if (n & 0x80)
                    sig[len - 1] = 0.0f;
                if (n & 0x40)
                    sig[u8(a) % len] = flt(a);
                o.sigmas = sig;
            }
        }
        int bad;
        void *buf = opt_buffer(a, &o, sizeof o, sizeof o, &bad);
        if (!buf) {
            free(sig);
            return;
        }
        st = CALL(a, g != NULL, lgd_sampler_create(g, buf, &s));
        free(buf);
        if (g && (bad || o.kind > 3 || o.schedule > 3 ||
                  (o.schedule != LGD_SCHEDULE_USER && o.steps < 1)))
            FZ_CHECK(st != LGD_OK, "bad sampler options: %s",
                     lgd_status_string(st));
    }
    free(sig);
    CHECK_OUT_FROM(g, st, s, "lgd_sampler_create");
    if (st)
        return;
    /* the grid: steps + 1 strictly decreasing levels ending at 0 */
    int32_t n = lgd_sampler_num_steps(s);
    FZ_CHECK(n >= 1 && n <= (1 << 22), "num_steps %d", (int)n);
    float *grid = malloc(sizeof *grid * ((size_t)n + 1));
    if (grid && lgd_sampler_sigmas(s, grid, (int64_t)n + 1) == LGD_OK) {
        FZ_CHECK(grid[n] == 0.0f, "the grid ends at %g", (double)grid[n]);
        for (int32_t i = 0; i < n; i++)
            FZ_CHECK(isfinite(grid[i]) && grid[i] > grid[i + 1],
                     "grid[%d] = %g, grid[%d] = %g", (int)i, (double)grid[i], (int)i + 1,
                     (double)grid[i + 1]);
    }
    free(grid); /* a grid of more than 12 steps (the defaults: 20) is kept, not run whole */
    lgd_sampler_destroy(a->s[slot]);
    a->s[slot] = s;
}

static void op_sampler_run(api *a)
{
    lgd_sampler *s = a->s[u8(a) % NS];
    lgd_tensor *x = T(a);
    uint8_t sub = u8(a) % 5;
    uint64_t seed = u8(a);
    int has = s != NULL;
    lgd_status st;
    switch (sub) {
    case 0:
        CALL(a, has, lgd_sampler_init(s, x, seed, (uint64_t)size(a)));
        break;
    case 1: {
        int32_t start = (int32_t)(int8_t)u8(a);
        int32_t flags = (int32_t)(u8(a) % 3);
        CALL(a, has, lgd_sampler_start(s, x, start, flags, seed, 0));
        break;
    }
    case 2: {
        int k = 1 + u8(a) % 3;
        report_buf rb;
        report_make(a, &rb);
        for (int i = 0; i < k; i++) {
            st = CALL(a, has, lgd_sampler_step(s, x, rb.r));
            if (!st)
                check_tensor_finite(x, "lgd_sampler_step x");
            else
                break;
        }
        report_free(&rb);
        break;
    }
    case 3:
    case 4: {
        if (lgd_sampler_num_steps(s) > 12)
            return;
        progress_user pu = { a, 0, 0 };
        uint8_t p = u8(a);
        if (p & 0x80)
            pu.stop_at = 1 + (p & 7);
        if (p & 0x40)
            pu.cancel_at = 1 + ((p >> 3) & 7);
        if (sub == 3) {
            st = CALL(a, has, lgd_sampler_run(s, x, seed, 0, (p & 0xC0) ? progress : NULL, &pu));
        } else {
            int32_t start = (int32_t)(u8(a) % 4);
            st = CALL(a, has, lgd_sampler_run_from(s, x, start, (int32_t)(p & 1), seed, 0,
                                                   (p & 0xC0) ? progress : NULL, &pu));
        }
        if (!st) {
            check_tensor_finite(x, "lgd_sampler_run x");
            FZ_CHECK(lgd_sampler_done(s) == 1, "a finished run is not done");
        }
        break;
    }
    }
}

static void op_sampler_misc(api *a)
{
    lgd_sampler *s = a->s[u8(a) % NS];
    uint8_t c = u8(a);
    int32_t n = lgd_sampler_num_steps(s);
    if ((c & 3) == 0) {
        int64_t count = (int64_t)n + 1 - (c >> 7);
        float *out = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
        if (!out)
            return;
        lgd_status st = CALL(a, s != NULL, lgd_sampler_sigmas(s, out, count));
        if (s)
            FZ_CHECK(count >= n + 1 ? st == LGD_OK : st == LGD_ERR_SHAPE_MISMATCH,
                     "lgd_sampler_sigmas(%lld) of %d steps: %s", (long long)count, (int)n,
                     lgd_status_string(st));
        free(out);
    } else if ((c & 3) == 1) {
        int32_t i = lgd_sampler_step_index(s);
        float sg = lgd_sampler_sigma(s);
        FZ_CHECK(!s || (i >= 0 && i <= n && !(sg < 0)), "step index %d of %d, sigma %g", (int)i,
                 (int)n, (double)sg);
        (void)lgd_sampler_done(s);
    } else {
        FZ_CHECK(!s || lgd_sampler_context(s) == a->ctx, "lgd_sampler_context");
        lgd_sampler_destroy(lgd_sampler_retain(s));
    }
}

/* ------------------------------------------------------------------ the rest */

static void op_destroy(api *a)
{
    uint8_t c = u8(a);
    int i = u8(a);
    switch (c % 6) {
    case 0: lgd_tensor_destroy(a->t[i % NT]); a->t[i % NT] = NULL; break;
    case 1: lgd_model_destroy(a->m[i % NM]); a->m[i % NM] = NULL; break;
    case 2: put_loss_cost(a, i % NL, NULL, 0); break;
    case 3: lgd_guidance_destroy(a->g[i % NG]); a->g[i % NG] = NULL; break;
    case 4: lgd_sampler_destroy(a->s[i % NS]); a->s[i % NS] = NULL; break;
    default: lgd_network_destroy(a->n[i % NN]); a->n[i % NN] = NULL; break;
    }
}

static void op_schedule(api *a)
{
    uint8_t c = u8(a);
    lgd_schedule_kind kind = (lgd_schedule_kind)(c & 3);
    if (c & 0x80) {
        int32_t steps = count32(a, 16);
        if (steps > 64) /* any steps >= 1 is valid: a grid too large to make here */
            return;
        float smin = flt(a), smax = flt(a), rho = flt(a);
        float *out = malloc(sizeof(float) * (size_t)(steps > 0 && steps <= 64 ? steps + 1 : 1));
        if (!out)
            return;
        lgd_status st = CALL(a, 0, lgd_schedule_karras(steps, smin, smax, rho, out));
        if (!st)
            for (int32_t i = 0; i < steps; i++)
                FZ_CHECK(out[i] > out[i + 1], "karras grid not decreasing at %d", (int)i);
        if (!st)
            FZ_CHECK(out[steps] == 0.0f, "karras grid does not end at 0");
        free(out);
        return;
    }
    static const int32_t nts[] = { 1, 2, 10, 100, 1000, 0, -1, 7 };
    int32_t n = nts[u8(a) % 8];
    float b0 = (c & 0x20) ? flt(a) : 1e-4f, b1 = (c & 0x40) ? flt(a) : 0.02f;
    float *out = malloc(sizeof(float) * (size_t)(n > 0 ? n + 1 : 1));
    if (!out)
        return;
    if (c & 0x10) {
        int32_t steps = 1 + u8(a) % 8;
        if (u8(a) >= 0xF0)
            steps = -steps;
        if (n > 0 && steps > n)
            steps = n + 1; /* refused: steps > num_timesteps; out has room for n + 1 */
        lgd_status st = CALL(a, 0, lgd_schedule_vp(kind, n, b0, b1, steps, out));
        if (!st) {
            FZ_CHECK(steps >= 1 && steps <= n, "lgd_schedule_vp accepted %d steps of %d",
                     (int)steps, (int)n);
            for (int32_t i = 0; i < steps; i++)
                FZ_CHECK(out[i] > out[i + 1], "vp grid not decreasing at %d", (int)i);
        }
    } else {
        lgd_status st = CALL(a, 0, lgd_vp_alphas_cumprod(kind, n, b0, b1, out));
        if (!st)
            for (int32_t i = 0; i < n; i++)
                /* [0, 1] and non-increasing: 0 in float is possible (betas near 1) */
                FZ_CHECK(out[i] >= 0 && out[i] <= 1 && (i == 0 || out[i] <= out[i - 1]),
                         "alphas_cumprod[%d] = %g", (int)i, (double)out[i]);
    }
    free(out);
}

/* each *_init writes exactly struct_size bytes (the buffer is that large) */
static void op_init(api *a)
{
    uint8_t c = u8(a);
    static const struct {
        size_t size, first;
    } structs[] = {
        { sizeof(lgd_context_options), offsetof(lgd_context_options, cuda_module_path) },
        { sizeof(lgd_model_callbacks), sizeof(lgd_model_callbacks) },
        { sizeof(lgd_network_callbacks), sizeof(lgd_network_callbacks) },
        { sizeof(lgd_adapter_options), sizeof(lgd_adapter_options) },
        { sizeof(lgd_loss_callbacks), offsetof(lgd_loss_callbacks, eval_draws) },
        { sizeof(lgd_guidance_options), sizeof(lgd_guidance_options) },
        { sizeof(lgd_guidance_report), offsetof(lgd_guidance_report, rows) },
        { sizeof(lgd_sampler_options), sizeof(lgd_sampler_options) },
        { sizeof(lgd_trajectory_layout), sizeof(lgd_trajectory_layout) },
        { sizeof(lgd_obstacle_options), sizeof(lgd_obstacle_options) },
        { sizeof(lgd_trajectory_prior_options), sizeof(lgd_trajectory_prior_options) },
    };
    int k = c % 11;
    uint8_t sc = u8(a);
    size_t sz = sc < 0x80 ? structs[k].size : sc < 0xA0 ? structs[k].first
              : sc < 0xC0 ? structs[k].size + 16 : sc < 0xE0 ? structs[k].first - 1 : 0;
    void *buf = malloc(sz ? sz : 1);
    if (!buf)
        return;
    memset(buf, 0x5A, sz ? sz : 1);
    void *p = (c & 0x80) ? NULL : buf;
    uint32_t s32 = (uint32_t)sz;
    lgd_status st;
    switch (k) {
    case 0: st = lgd_context_options_init(p, s32); break;
    case 1: st = lgd_model_callbacks_init(p, s32); break;
    case 2: st = lgd_network_callbacks_init(p, s32); break;
    case 3: st = lgd_adapter_options_init(p, s32); break;
    case 4: st = lgd_loss_callbacks_init(p, s32); break;
    case 5: st = lgd_guidance_options_init(p, s32); break;
    case 6: st = lgd_guidance_report_init(p, s32); break;
    case 7: st = lgd_sampler_options_init(p, s32); break;
    case 8: st = lgd_trajectory_layout_init(p, s32); break;
    case 9: st = lgd_obstacle_options_init(p, s32); break;
    default: st = lgd_trajectory_prior_options_init(p, s32); break;
    }
    int ok = p && sz >= structs[k].first;
    FZ_CHECK(ok ? st == LGD_OK : st == LGD_ERR_INVALID_ARGUMENT,
             "init of struct %d with size %zu (first layout %zu): %s", k, sz, structs[k].first,
             lgd_status_string(st));
    if (!st) {
        uint32_t got;
        memcpy(&got, buf, sizeof got);
        FZ_CHECK(got == s32, "init wrote struct_size %u, asked %u", (unsigned)got, (unsigned)s32);
        for (size_t i = structs[k].size; i < sz; i++)
            FZ_CHECK(((unsigned char *)buf)[i] == 0, "init left byte %zu of the tail non-zero", i);
    }
    free(buf);
}

static void op_context_misc(api *a)
{
    uint8_t c = u8(a) % 5;
    size_t cur = 0, peak = 0;
    switch (c) {
    case 0:
        lgd_context_memory_usage(a->ctx, &cur, &peak);
        FZ_CHECK(cur <= peak, "memory usage %zu above the peak %zu", cur, peak);
        break;
    case 1: lgd_context_reset_peak_memory(a->ctx); break;
    case 2: CALL(a, 1, lgd_context_synchronize(a->ctx)); break;
    case 3:
        FZ_CHECK(lgd_context_backend(a->ctx) == LGD_BACKEND_CPU && lgd_context_backend_name(a->ctx),
                 "backend");
        break;
    default: FZ_CHECK(lgd_context_native_stream(a->ctx) == NULL, "a CPU context has a stream"); break;
    }
}

static void log_sink(void *user, lgd_log_level level, const char *message)
{
    (void)user;
    FZ_CHECK(level >= LGD_LOG_ERROR && level <= LGD_LOG_DEBUG && message, "log call");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size_)
{
    api a;
    memset(&a, 0, sizeof a);
    fz_init(&a.r, data, size_);
    a.trace = getenv("FZ_API_TRACE") != NULL;
    a.D = 1 + u8(&a) % 6;
    a.B = 1 + u8(&a) % 3;
    uint8_t cflags = u8(&a);
    uint8_t order = u8(&a);
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.backend = LGD_BACKEND_CPU;
    o.num_threads = 1;
    o.check_callback_outputs = cflags & 1;
    if (cflags & 2) {
        o.log = log_sink;
        o.log_level = (lgd_log_level)((cflags >> 2) & 3);
    }
    const char *err = NULL;
    lgd_status st = lgd_context_create(&o, &a.ctx, &err);
    FZ_CHECK(st == LGD_OK, "lgd_context_create: %s", err);
    if (a.trace)
        fprintf(stderr, "fuzz_api: D %lld, B %lld\n", (long long)a.D, (long long)a.B);
    for (int i = 0; i < MAX_OPS && fz_more(&a.r); i++) {
        uint8_t op = u8(&a) % OP_COUNT;
        if (a.trace)
            fprintf(stderr, "op %d\n", (int)op);
        switch (op) {
        case OP_TENSOR: op_tensor(&a); break;
        case OP_TENSOR_WRAP: op_tensor_wrap(&a); break;
        case OP_TENSOR_DATA: op_tensor_data(&a); break;
        case OP_MODEL_GMM: op_model_gmm(&a); break;
        case OP_MODEL_TRAJ: op_model_traj(&a); break;
        case OP_MODEL_CB: op_model_cb(&a); break;
        case OP_MODEL_NETCB: op_model_netcb(&a); break;
        case OP_MODEL_NET: op_model_net(&a); break;
        case OP_MODEL_CALL: op_model_call(&a); break;
        case OP_LOSS_SQ: op_loss_sq(&a); break;
        case OP_LOSS_LINEAR: op_loss_linear(&a); break;
        case OP_LOSS_LOGISTIC: op_loss_logistic(&a); break;
        case OP_LOSS_SUM: op_loss_sum(&a); break;
        case OP_LOSS_PATH: op_loss_path(&a); break;
        case OP_LOSS_OBSTACLE: op_loss_obstacle(&a); break;
        case OP_LOSS_CB: op_loss_cb(&a); break;
        case OP_LOSS_EVAL: op_loss_eval(&a); break;
        case OP_GUIDANCE: op_guidance(&a); break;
        case OP_GUIDANCE_MISC: op_guidance_misc(&a); break;
        case OP_GUIDANCE_CALL: op_guidance_call(&a); break;
        case OP_SAMPLER: op_sampler(&a); break;
        case OP_SAMPLER_RUN: op_sampler_run(&a); break;
        case OP_SAMPLER_MISC: op_sampler_misc(&a); break;
        case OP_DESTROY: op_destroy(&a); break;
        case OP_CANCEL:
            if (u8(&a) & 1)
                lgd_context_cancel(a.ctx);
            else
                lgd_context_reset_cancel(a.ctx);
            break;
        case OP_SCHEDULE: op_schedule(&a); break;
        case OP_INIT: op_init(&a); break;
        default: op_context_misc(&a); break;
        }
    }
    /* everything released, in the order the input's byte says (objects keep what they
     * use alive, so any order is valid) */
    if (order & 1)
        lgd_context_destroy(a.ctx);
    for (int k = 0; k < 6; k++) {
        int kind = (k + (order >> 1)) % 6;
        for (int i = 0; i < 8; i++) {
            int j = (order & 0x80) ? 7 - i : i;
            switch (kind) {
            case 0: if (j < NT) lgd_tensor_destroy(a.t[j]); break;
            case 1: if (j < NM) lgd_model_destroy(a.m[j]); break;
            case 2: if (j < NL) lgd_loss_destroy(a.l[j]); break;
            case 3: if (j < NG) lgd_guidance_destroy(a.g[j]); break;
            case 4: if (j < NS) lgd_sampler_destroy(a.s[j]); break;
            default: if (j < NN) lgd_network_destroy(a.n[j]); break;
            }
        }
    }
    if (!(order & 1))
        lgd_context_destroy(a.ctx);
    for (int i = 0; i < a.n_keep; i++)
        free(a.keep[i]);
    return 0;
}
