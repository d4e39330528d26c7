/*
 * mc_kernels_cpu.c - the Monte Carlo reductions' kernel table on the CPU
 * (mc_kernels.h): the online log-sum-exp over draws, and the fused LGD-MC loop.
 *
 * Both fold a row's draws with one function (fold_row), so the fused loop and the
 * unfused one (normal_around, the loss's eval, accumulate) give the same bits: the
 * fused loop draws with the backend's normal code (backend/cpu/cpu_normals.h) and
 * evaluates the loss with the same kernels (the loss's block evaluator), only in a
 * different order of rows, which no result depends on.
 */
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_normals.h"
#include "backend/cpu/cpu_parallel.h"
#include "backend/cpu/cpu_pool.h"
#include "core/hd_math.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "sampling/mc_kernels.h"

static void cpu_mc_reset(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st)
{
    for (size_t r = 0; r < rows; r++) {
        st->max[r] = -INFINITY;
        st->sum[r] = 0.0f;
        st->sum2[r] = 0.0f;
        st->wloss[r] = 0.0f;
        st->lsum[r] = 0.0f;
    }
    float *vec = st->vec;
    size_t n = rows * cols;
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        vec[i] = 0.0f;
}

/* exp(-a) for a >= 0 or NaN (a NaN or a > 104 gives exp(-104), about 0; a NaN loss is
 * flagged by the caller), branch-free so that the weights vectorise */
LGD_CPU_INLINE float exp_neg_clamped(float a)
{
    uint32_t ab = lgd_f32_bits(a) & 0x7fffffffu;
    ab = ab > 0x42d00000u ? 0x42d00000u : ab; /* 104.0f */
    return lgd_exp_neg(lgd_bits_f32(ab));
}

/* Eight floats as one value (GCC/clang vector extension): one AVX register, two SSE
 * ones; element-wise operations, so every target computes the same bits. */
typedef float mc_v8f __attribute__((vector_size(32)));
typedef int32_t mc_v8i __attribute__((vector_size(32)));

/* (pointers, not vector values, cross the helpers: no vector ABI question) */
LGD_CPU_INLINE void load8(mc_v8f *v, const float *p) { memcpy(v, p, sizeof *v); }

/* __builtin_shufflevector: GCC 12, clang */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define MC_HAVE_SHUFFLE 1
#else
LGD_CPU_INLINE float tree8(const mc_v8f *v)
{
    const mc_v8f p = *v;
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}
#endif

/* The five sums ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)) of a .. e at once: a pairwise
 * shuffle-and-add of two vectors gives (p0 + p1), (p2 + p3), ... of both (one vhaddps),
 * a second level the four-lane sums, and the two halves the totals. Addition is
 * commutative, so every sum is tree8's, bit for bit. */
LGD_CPU_INLINE void tree8x5(const mc_v8f *a, const mc_v8f *b, const mc_v8f *c, const mc_v8f *d,
                            const mc_v8f *e, float out[5])
{
#ifdef MC_HAVE_SHUFFLE
#define MC_EVEN(x, y) __builtin_shufflevector(x, y, 0, 2, 8, 10, 4, 6, 12, 14)
#define MC_ODD(x, y) __builtin_shufflevector(x, y, 1, 3, 9, 11, 5, 7, 13, 15)
    mc_v8f ab = MC_EVEN(*a, *b) + MC_ODD(*a, *b), cd = MC_EVEN(*c, *d) + MC_ODD(*c, *d);
    mc_v8f ee = MC_EVEN(*e, *e) + MC_ODD(*e, *e);
    mc_v8f abcd = MC_EVEN(ab, cd) + MC_ODD(ab, cd), e4 = MC_EVEN(ee, ee) + MC_ODD(ee, ee);
#undef MC_EVEN
#undef MC_ODD
    for (int k = 0; k < 4; k++)
        out[k] = abcd[k] + abcd[k + 4];
    out[4] = e4[0] + e4[4];
#else
    out[0] = tree8(a);
    out[1] = tree8(b);
    out[2] = tree8(c);
    out[3] = tree8(d);
    out[4] = tree8(e);
#endif
}

/* Folds the draws l[m], v[m][cols] of row r into its state: the new max, the running
 * sums rescaled to it, plus the chunk's sums. A chunk's sums over draws are eight
 * partial sums (draw j into sum j % 8, added in a fixed tree), which vectorise and
 * depend on nothing but the chunk; with cols > 1 the vector sum runs draw by draw,
 * vectorised over its elements. */
LGD_CPU_INLINE void fold_row(size_t r, size_t m, size_t cols, const float *l, const float *v,
                             lgd_mc_state *st)
{
    enum { BLK = 64 };
    /* the max of -l: eight partial maxima (a max is the same whatever the grouping,
     * and the sign of a zero max changes no weight) */
    float old = st->max[r];
    mc_v8f part = { old, old, old, old, old, old, old, old };
    size_t m8 = m / 8 * 8;
    for (size_t j = 0; j < m8; j += 8) {
        mc_v8f nl;
        load8(&nl, l + j);
        nl = -nl;
        mc_v8i gt = nl > part;
        part = (mc_v8f)(((mc_v8i)nl & gt) | ((mc_v8i)part & ~gt));
    }
    for (size_t j = m8; j < m; j++)
        part[0] = -l[j] > part[0] ? -l[j] : part[0];
#ifdef MC_HAVE_SHUFFLE
    { /* halves, quarters, pairs: no NaN in part, so the order gives the same max */
        mc_v8f q = __builtin_shufflevector(part, part, 4, 5, 6, 7, 0, 1, 2, 3);
        mc_v8i gt = q > part;
        part = (mc_v8f)(((mc_v8i)q & gt) | ((mc_v8i)part & ~gt));
        q = __builtin_shufflevector(part, part, 2, 3, 0, 1, 6, 7, 4, 5);
        gt = q > part;
        part = (mc_v8f)(((mc_v8i)q & gt) | ((mc_v8i)part & ~gt));
        q = __builtin_shufflevector(part, part, 1, 0, 3, 2, 5, 4, 7, 6);
        gt = q > part;
        part = (mc_v8f)(((mc_v8i)q & gt) | ((mc_v8i)part & ~gt));
    }
    float mx = part[0];
#else
    float mx = part[0];
    for (int k = 1; k < 8; k++)
        mx = part[k] > mx ? part[k] : mx;
#endif
    /* rescale the running sums to the new max (exp(old - mx), old <= mx) */
    float scale = old == -INFINITY ? 0.0f : exp_neg_clamped(mx - old);
    float *acc = st->vec + r * cols;
    if (scale != 1.0f)
        for (size_t e = 0; e < cols; e++)
            acc[e] *= scale;
    mc_v8f ps = { 0 }, ps2 = { 0 }, pwl = { 0 }, pls = { 0 }, pv = { 0 };
    for (size_t j0 = 0; j0 < m; j0 += BLK) {
        size_t nb = m - j0 < BLK ? m - j0 : BLK, n8 = nb / 8 * 8;
        float w[BLK];
        for (size_t j = 0; j < nb; j++) /* exp(-l - mx), -l - mx <= 0 */
            w[j] = exp_neg_clamped(l[j0 + j] + mx);
        /* j0 is a multiple of 8: draw j0 + j goes to partial sum j % 8 */
        for (size_t j = 0; j < n8; j += 8) {
            mc_v8f wv, lv, vv;
            load8(&wv, w + j);
            load8(&lv, l + j0 + j);
            ps += wv;
            ps2 += wv * wv;
            pwl += wv * lv;
            pls += lv;
            if (cols == 1) {
                load8(&vv, v + j0 + j);
                pv += wv * vv;
            }
        }
        for (size_t j = n8; j < nb; j++) {
            float lj = l[j0 + j], wj = w[j];
            ps[j % 8] += wj;
            ps2[j % 8] += wj * wj;
            pwl[j % 8] += wj * lj;
            pls[j % 8] += lj;
            if (cols == 1)
                pv[j % 8] += wj * v[j0 + j];
        }
        if (cols > 1)
            for (size_t j = 0; j < nb; j++) {
                const float *vj = v + (j0 + j) * cols;
                for (size_t e = 0; e < cols; e++)
                    acc[e] += w[j] * vj[e];
            }
    }
    float t[5];
    tree8x5(&ps, &ps2, &pwl, &pls, &pv, t);
    if (cols == 1)
        acc[0] += t[4];
    st->max[r] = mx;
    st->sum[r] = st->sum[r] * scale + t[0];
    st->sum2[r] = st->sum2[r] * scale * scale + t[1];
    st->wloss[r] = st->wloss[r] * scale + t[2];
    st->lsum[r] += t[3];
}

LGD_CPU_CLONES static void accumulate_rows(size_t r0, size_t r1, size_t draws, size_t cols,
                                           const float *loss, const float *vec,
                                           lgd_mc_state *st)
{
    for (size_t r = r0; r < r1; r++)
        fold_row(r, draws, cols, loss + r * draws, vec + r * draws * cols, st);
}

/* rows per unit of the row loops: enough values per unit to pay for scheduling it */
static size_t rows_per_unit(size_t rows, size_t values_per_row)
{
    size_t per = values_per_row ? 16384 / values_per_row : 64;
    per = per < 1 ? 1 : per > 64 ? 64 : per;
    return per < rows ? per : (rows ? rows : 1);
}

static void cpu_mc_accumulate(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                              const float *loss, const float *vec, lgd_mc_state *st)
{
    size_t per = rows_per_unit(rows, draws * cols), units = (rows + per - 1) / per;
    LGD_CPU_FOR(rows * draws * cols)
    for (size_t u = 0; u < units; u++) {
        size_t r0 = u * per, r1 = r0 + per < rows ? r0 + per : rows;
        accumulate_rows(r0, r1, draws, cols, loss, vec, st);
    }
}

static void cpu_mc_finish(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st,
                          float *out, float *ess)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float inv = 1.0f / st->sum[r];
        for (size_t e = 0; e < cols; e++)
            out[r * cols + e] = st->vec[r * cols + e] * inv;
        ess[r] = st->sum[r] * st->sum[r] / st->sum2[r];
        st->wloss[r] *= inv;
    }
}

/* ------------------------------------------------------------------ fused LGD-MC */

typedef struct fused_args {
    const lgd_loss *loss;
    const lgd_rng_stream *rng;
    size_t end, chunk, cols;
    const float *xhat;
    float radius;
    int values_only;
    float *draws, *grad, *losses;
    lgd_mc_state *st;
} fused_args;

/* Floats of the stack buffers of fused_rows: the draws, gradients and losses of a span
 * of several chunks of one row when they fit (normals are made 32 at a time: a span
 * uses them all where a chunk of 16 would leave half), else of one chunk in the row's
 * slices of the scratch. */
#define FUSED_SPAN_FLOATS 1024

/* Draws per span of a row (a multiple of chunk: spans start where the unfused loop's
 * chunks start), and whether a span's buffers fit on the stack. */
static inline size_t fused_span(size_t chunk, size_t cols, int *on_stack)
{
    size_t span = chunk;
    if (chunk * cols <= FUSED_SPAN_FLOATS / 2)
        span = FUSED_SPAN_FLOATS / (chunk * cols) * chunk;
    *on_stack = span * cols <= FUSED_SPAN_FLOATS;
    return span;
}

/* Rows [r0, r1): draws rng->first_draw .. end - 1 of each, span by span, folded chunk by
 * chunk. Returns nonzero when a loss value is not finite. */
LGD_CPU_CLONES static int fused_rows(const fused_args *a, size_t r0, size_t r1)
{
    const size_t cols = a->cols, chunk = a->chunk;
    int on_stack;
    const size_t span = fused_span(chunk, cols, &on_stack);
    float xs[FUSED_SPAN_FLOATS], gs[FUSED_SPAN_FLOATS], ls[FUSED_SPAN_FLOATS];
    int bad = 0;
    for (size_t r = r0; r < r1; r++) {
        const float *mean = a->xhat + r * cols;
        float *x = on_stack ? xs : a->draws + r * chunk * cols;
        float *g = on_stack ? gs : a->grad + r * chunk * cols;
        float *l = on_stack ? ls : a->losses + r * chunk;
        for (size_t d0 = a->rng->first_draw; d0 < a->end; d0 += span) {
            size_t sm = a->end - d0 < span ? a->end - d0 : span;
            if (a->radius != 0.0f) { /* x_i = xhat + r eps_i (normal_around's stream) */
                lgd_rng_stream s = *a->rng;
                s.first_draw = d0;
                uint64_t f0 = (uint64_t)d0 * cols, n = (uint64_t)sm * cols;
                uint64_t groups = lgd_cpu_normal_groups(f0, n);
                for (uint64_t gi = 0; gi < groups; gi++)
                    lgd_cpu_normal_stream_group(&s, r, f0, n, gi, cols, mean, a->radius, x);
            } else { /* DPS: every draw is xhat */
                for (size_t j = 0; j < sm; j++)
                    memcpy(x + j * cols, mean, cols * sizeof *x);
            }
            a->loss->block.eval(a->loss, r, sm, x, l, a->values_only ? NULL : g);
            if (a->values_only) /* the gradient-free fold: xhat - x_i = -r eps_i */
                for (size_t j = 0; j < sm; j++)
                    for (size_t e = 0; e < cols; e++)
                        g[j * cols + e] = mean[e] + -1.0f * x[j * cols + e];
            uint32_t nonfinite = 0;
            for (size_t j = 0; j < sm; j++) /* exponent all ones: Inf or NaN */
                nonfinite |= (uint32_t)((lgd_f32_bits(l[j]) & 0x7f800000u) == 0x7f800000u);
            bad |= (int)nonfinite;
            for (size_t done = 0; done < sm; done += chunk) {
                size_t m = sm - done < chunk ? sm - done : chunk;
                if (m == 16 && cols == 1) /* the default chunk of a 1-D problem, unrolled */
                    fold_row(r, 16, 1, l + done, g + done, a->st);
                else
                    fold_row(r, m, cols, l + done, g + done * cols, a->st);
            }
        }
    }
    return bad;
}

typedef struct fused_run {
    const fused_args *a;
    size_t rows, per;
    atomic_int bad;
} fused_run;

static void fused_unit(void *vp, size_t u)
{
    fused_run *fr = vp;
    size_t r0 = u * fr->per, r1 = r0 + fr->per < fr->rows ? r0 + fr->per : fr->rows;
    if (fused_rows(fr->a, r0, r1))
        atomic_fetch_or_explicit(&fr->bad, 1, memory_order_relaxed);
}

static int cpu_mc_fused(lgd_backend *be, const struct lgd_loss *loss, const lgd_rng_stream *rng,
                        size_t rows, size_t end, size_t chunk, size_t cols, const float *xhat,
                        float radius, int values_only, float *draws, float *grad,
                        float *losses, lgd_mc_state *st)
{
    fused_args a = { loss,   rng,        end,   chunk, cols, xhat, radius,
                     values_only, draws, grad, losses, st };
    size_t draws_per_row = end > rng->first_draw ? end - rng->first_draw : 0;
    size_t per = rows_per_unit(rows, draws_per_row * cols), units = (rows + per - 1) / per;
    fused_run fr = { &a, rows, per, 0 };
    /* the backend's parking workers, units taken one at a time (cpu_pool.h): a loop
     * on a shared machine neither spins nor waits for a slowed thread's fixed share;
     * every row is computed by one thread in a fixed order whichever thread takes it,
     * so results do not depend on the schedule or the thread count */
    int parallel = rows * draws_per_row * cols >= LGD_CPU_PAR_MIN_WORK && units > 1;
    lgd_cpu_pool_run(parallel ? lgd_cpu_pool_get(be) : NULL, units, fused_unit, &fr);
    return atomic_load_explicit(&fr.bad, memory_order_relaxed);
}

/* ------------------------------------------------------------------ fused exact */

typedef struct exact_args {
    const lgd_loss *loss;
    const lgd_posterior_sampler *ps;
    size_t first, end, chunk, cols;
    float *draws, *losses;
    lgd_mc_state *st;
    atomic_int bad;
    size_t rows, per;
} exact_args;

/* Rows [r0, r1) of the exact estimator: draws first .. end - 1 of each, span by span as
 * fused_rows takes them (the spans and chunks start where the unfused loop's chunks
 * start), drawn by the model's block sampler, valued by the loss's block evaluator and
 * folded, the draws being the folded vectors. Returns nonzero when a loss value is not
 * finite. */
LGD_CPU_CLONES static int fused_exact_rows(const exact_args *a, size_t r0, size_t r1)
{
    const size_t cols = a->cols, chunk = a->chunk;
    int on_stack;
    const size_t span = fused_span(chunk, cols, &on_stack);
    float xs[FUSED_SPAN_FLOATS], ls[FUSED_SPAN_FLOATS];
    int bad = 0;
    for (size_t r = r0; r < r1; r++) {
        float *x = on_stack ? xs : a->draws + r * chunk * cols;
        float *l = on_stack ? ls : a->losses + r * chunk;
        for (size_t d0 = a->first; d0 < a->end; d0 += span) {
            size_t sm = a->end - d0 < span ? a->end - d0 : span;
            a->ps->draw(a->ps->state, r, d0, sm, x);
            a->loss->block.eval(a->loss, r, sm, x, l, NULL);
            uint32_t nonfinite = 0;
            for (size_t j = 0; j < sm; j++) /* exponent all ones: Inf or NaN */
                nonfinite |= (uint32_t)((lgd_f32_bits(l[j]) & 0x7f800000u) == 0x7f800000u);
            bad |= (int)nonfinite;
            for (size_t done = 0; done < sm; done += chunk) {
                size_t m = sm - done < chunk ? sm - done : chunk;
                fold_row(r, m, cols, l + done, x + done * cols, a->st);
            }
        }
    }
    return bad;
}

static void fused_exact_unit(void *vp, size_t u)
{
    exact_args *a = vp;
    size_t r0 = u * a->per, r1 = r0 + a->per < a->rows ? r0 + a->per : a->rows;
    if (fused_exact_rows(a, r0, r1))
        atomic_fetch_or_explicit(&a->bad, 1, memory_order_relaxed);
}

static int cpu_mc_fused_exact(lgd_backend *be, const struct lgd_loss *loss,
                              const struct lgd_posterior_sampler *ps, size_t rows, size_t first,
                              size_t end, size_t chunk, size_t cols, float *draws,
                              float *losses, lgd_mc_state *st)
{
    size_t draws_per_row = end > first ? end - first : 0;
    exact_args a = { loss, ps, first, end, chunk, cols, draws, losses, st, 0, rows, 0 };
    a.per = rows_per_unit(rows, draws_per_row * cols);
    size_t units = (rows + a.per - 1) / a.per;
    /* the pool as cpu_mc_fused uses it: every row by one thread in a fixed order */
    int parallel = rows * draws_per_row * cols >= LGD_CPU_PAR_MIN_WORK && units > 1;
    lgd_cpu_pool_run(parallel ? lgd_cpu_pool_get(be) : NULL, units, fused_exact_unit, &a);
    return atomic_load_explicit(&a.bad, memory_order_relaxed);
}

const lgd_mc_kernels lgd_mc_kernels_cpu = {
    .reset = cpu_mc_reset,
    .accumulate = cpu_mc_accumulate,
    .finish = cpu_mc_finish,
    .fused = cpu_mc_fused,
    .fused_exact = cpu_mc_fused_exact,
};

const lgd_kernel_table lgd_mc_kernel_table = { "mc", LGD_MC_KERNELS_VERSION,
                                               &lgd_mc_kernels_cpu };
