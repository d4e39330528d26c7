/*
 * test_core.c - the 'core' suite: Philox and the normal map, every CPU backend
 * operation against a double-precision reference, the context API and tensors.
 *
 * Links the static library with src/ on the include path, so the private
 * headers (philox.h, backend.h, internal.h) are reachable.
 */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "lgd_config.h"
#include "core/philox.h"
#include "core/rng.h"
#include "losses/loss_kernels.h"
#include "models/gmm_kernels.h"
#include "sampling/mc_kernels.h"

/* ------------------------------------------------------------------ helpers */

/* LGD_TEST_QUICK=1 (the valgrind pass): smaller samples, same 5-sigma checks. */
typedef struct cpu_be {
    lgd_backend *be;
    const lgd_backend_ops *ops;
} cpu_be;

static cpu_be cpu_open(int threads)
{
    cpu_be c = { NULL, NULL };
    ck_assert_int_eq(lgd_cpu_backend_open(threads, &c.be, &c.ops), 0);
    ck_assert_ptr_nonnull(c.be);
    ck_assert_ptr_nonnull(c.ops);
    return c;
}

static void cpu_close(cpu_be *c)
{
    c->ops->destroy(c->be);
    c->be = NULL;
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

/* Fails unless |got - ref| <= atol + rtol |ref| everywhere (NaN fails). */
static void check_close(const char *what, const float *got, const double *ref, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        ck_assert_msg(e <= atol + rtol * fabs(ref[i]), "%s[%zu]: got %.9g, want %.9g (err %.3g)",
                      what, i, (double)got[i], ref[i], e);
    }
}

static void check_close_f(const char *what, const float *got, const float *want, size_t n,
                          double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        ck_assert_msg(e <= atol + rtol * fabs((double)want[i]),
                      "%s[%zu]: got %.9g, want %.9g", what, i, (double)got[i], (double)want[i]);
    }
}

static void check_bytes_eq(const char *what, const void *a, const void *b, size_t bytes)
{
    ck_assert_msg(memcmp(a, b, bytes) == 0, "%s: results differ bitwise", what);
}

static lgd_rng_stream stream(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t first_row,
                             uint32_t first_draw)
{
    lgd_rng_stream s;
    memset(&s, 0, sizeof s);
    s.seed = seed;
    s.purpose = purpose;
    s.step = step;
    s.first_row = first_row;
    s.first_draw = first_draw;
    return s;
}

/* ------------------------------------------------------------------ Philox */

START_TEST(philox_known_answers)
{
    /* Random123 kat_vectors, philox4x32_10: counter c0..c3, key k0 k1, expected. */
    static const struct {
        uint32_t c[4], k[2], want[4];
    } kat[] = {
        { { 0, 0, 0, 0 }, { 0, 0 }, { 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u } },
        { { 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu },
          { 0xffffffffu, 0xffffffffu },
          { 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu } },
        { { 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u },
          { 0xa4093822u, 0x299f31d0u },
          { 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u } },
    };
    for (size_t t = 0; t < sizeof kat / sizeof kat[0]; t++) {
        lgd_philox_block b = lgd_philox4x32_10(kat[t].c[0], kat[t].c[1], kat[t].c[2],
                                               kat[t].c[3], kat[t].k[0], kat[t].k[1]);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(b.v[i] == kat[t].want[i], "vector %zu word %d: got %08x, want %08x",
                          t, i, b.v[i], kat[t].want[i]);
    }
}
END_TEST

START_TEST(philox_maps)
{
    /* uniform in (0, 1): never 0 or 1, monotone in the input */
    ck_assert(lgd_u32_to_uniform_open(0u) > 0.0f);
    ck_assert_msg(lgd_u32_to_uniform_open(0xFFFFFFFFu) < 1.0f, "u(0xffffffff) = %.9g",
                  (double)lgd_u32_to_uniform_open(0xFFFFFFFFu));
    float prev = 0.0f;
    for (uint64_t a = 0; a <= 0xFFFFFFFFull; a += 0xFFFFull) {
        float u = lgd_u32_to_uniform_open((uint32_t)a);
        ck_assert_msg(u > 0.0f && u < 1.0f, "u(%08llx) = %.9g", (unsigned long long)a, (double)u);
        ck_assert_msg(u >= prev, "u not monotone at %08llx", (unsigned long long)a);
        prev = u;
    }
    for (uint32_t a = 0xFFFF0000u; a != 0; a++) /* the top 2^16 inputs, up to 0xffffffff */
        ck_assert_msg(lgd_u32_to_uniform_open(a) < 1.0f, "u(%08x) = 1", a);
    ck_assert(fabsf(lgd_u32_to_uniform_open(0x80000000u) - 0.5f) < 1e-6f);

    /* Box-Muller at the extremes of its inputs stays finite and bounded */
    static const uint32_t ext[] = { 0u, 1u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFF00u, 0xFFFFFFFFu };
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 6; j++) {
            float z0, z1;
            lgd_box_muller(ext[i], ext[j], &z0, &z1);
            ck_assert_msg(isfinite(z0) && isfinite(z1) && fabsf(z0) < 6.0f && fabsf(z1) < 6.0f,
                          "box_muller(%08x, %08x) = %g %g", ext[i], ext[j], (double)z0,
                          (double)z1);
        }
    ck_assert_uint_eq(lgd_rng_tag(5, 0x1234567u), 0x05234567u);
    ck_assert_uint_eq(lgd_rng_tag(0xFF, 0xFFFFFFFFu), 0xFFFFFFFFu);
}
END_TEST

/* hd_math.h's branch-free log, sincos of a turn and softplus/sigmoid (Box-Muller and the
 * logistic loss use them in vectorised loops) against double libm. */
static double ulp_of(double v)
{
    float f = (float)fabs(v);
    return f == 0.0f ? ldexp(1.0, -149) : (double)(nextafterf(f, INFINITY) - f);
}

START_TEST(branch_free_math)
{
    /* log: every 8th float of [1/2, 2) (where log is smallest relative to its input's
     * spacing), every 1024th of each binade down to 2^-24 (Box-Muller's smallest u1) */
    double worst = 0.0;
    for (int e = -24; e <= 0; e++) {
        uint32_t step = e >= -1 ? 8u : 1024u;
        for (uint32_t m = 0; m < (1u << 23); m += step) {
            float x = ldexpf(1.0f + (float)m / 8388608.0f, e);
            double ref = log((double)x);
            double err = fabs((double)lgd_log_pos(x) - ref) / ulp_of(ref);
            worst = err > worst ? err : worst;
        }
    }
    ck_assert_msg(worst <= 2.0, "lgd_log_pos: %.3f ulp", worst);
    ck_assert(lgd_log_pos(1.0f) == 0.0f);
    /* sin and cos of 2 pi u on Box-Muller's grid u = k / 2^24, every 64th */
    double abs_err = 0.0;
    for (uint32_t k = 0; k < (1u << 24); k += 64) {
        float u = (float)k * (1.0f / 16777216.0f), sn, cs;
        lgd_sincos_turn(u, &sn, &cs);
        double t = 6.283185307179586476925 * (double)u;
        double es = fabs(sn - sin(t)), ec = fabs(cs - cos(t));
        abs_err = es > abs_err ? es : abs_err;
        abs_err = ec > abs_err ? ec : abs_err;
    }
    ck_assert_msg(abs_err <= 1.5e-7, "lgd_sincos_turn: abs error %g", abs_err);
    /* softplus and sigmoid over [-120, 120], relative to double references */
    double sp_err = 0.0, sg_err = 0.0;
    for (int i = -120000; i <= 120000; i += 7) {
        float t = (float)i * 1e-3f, sp, sg;
        lgd_softplus_sigmoid(t, &sp, &sg);
        double td = t, rsp = fmax(td, 0.0) + log1p(exp(-fabs(td)));
        double rsg = td >= 0 ? 1.0 / (1.0 + exp(-td)) : exp(td) / (1.0 + exp(td));
        if (rsp > 1e-37)
            sp_err = fmax(sp_err, fabs(sp - rsp) / rsp);
        if (rsg > 1e-37)
            sg_err = fmax(sg_err, fabs(sg - rsg) / rsg);
    }
    ck_assert_msg(sp_err <= 4e-7 && sg_err <= 4e-7, "softplus %g sigmoid %g", sp_err, sg_err);
    float sp, sg;
    lgd_softplus_sigmoid(NAN, &sp, &sg);
    ck_assert(isnan(sp));
    lgd_softplus_sigmoid(-NAN, &sp, &sg);
    ck_assert(isnan(sp));
    lgd_softplus_sigmoid(INFINITY, &sp, &sg);
    ck_assert(sp == INFINITY && sg == 1.0f);
    lgd_softplus_sigmoid(-INFINITY, &sp, &sg);
    ck_assert(sp == 0.0f && sg == 0.0f);
}
END_TEST

START_TEST(normal_layout)
{
    /* out[r][j][e] is element f % 4 of the block at counter
     * (f / 4, first_row + r, f / 4 >> 32, purpose << 24 | step) keyed by the seed,
     * f = (first_draw + j) * cols + e: each row's draws are one flat stream */
    cpu_be c = cpu_open(1);
    const size_t rows = 3, draws = 2, cols = 7;
    lgd_rng_stream s = stream(0x0123456789ABCDEFull, LGD_RNG_MC_DRAW, 9, 5, 11);
    float out[3 * 2 * 7], u[3 * 2];
    c.ops->normal(c.be, &s, rows, draws, cols, out);
    c.ops->uniform(c.be, &s, rows, draws, u);
    uint32_t tag = (uint32_t)LGD_RNG_MC_DRAW << 24 | 9u;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < draws; j++) {
            for (size_t e = 0; e < cols; e++) {
                float z[4];
                uint64_t f = (uint64_t)(11 + j) * cols + e;
                lgd_philox_normal4((uint32_t)(f / 4), (uint32_t)(5 + r), (uint32_t)(f / 4 >> 32),
                                   tag, s.seed, z);
                ck_assert_msg(out[(r * draws + j) * cols + e] == z[f % 4], "normal[%zu][%zu][%zu]",
                              r, j, e);
            }
            lgd_philox_block b = lgd_philox4x32_10(0, (uint32_t)(5 + r), (uint32_t)(11 + j), tag,
                                                   0x89ABCDEFu, 0x01234567u);
            ck_assert(u[r * draws + j] == lgd_u32_to_uniform_open(b.v[0]));
        }
    /* a 1-column stream uses every element of each block: draws 0..7 of one row
     * are the two blocks at element counters 0 and 1 */
    lgd_rng_stream s1 = stream(42, LGD_RNG_MC_DRAW, 0, 0, 0);
    float one[8], z0[4], z1[4];
    c.ops->normal(c.be, &s1, 1, 8, 1, one);
    uint32_t tag1 = (uint32_t)LGD_RNG_MC_DRAW << 24;
    lgd_philox_normal4(0, 0, 0, tag1, 42, z0);
    lgd_philox_normal4(1, 0, 0, tag1, 42, z1);
    for (int i = 0; i < 4; i++) {
        ck_assert(one[i] == z0[i]);
        ck_assert(one[4 + i] == z1[i]);
    }
    cpu_close(&c);
}
END_TEST

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

START_TEST(normal_moments)
{
    cpu_be c = cpu_open(0);
    /* 10^6 normals (2 10^5 in quick mode); tolerances scale with sqrt(n) */
    const size_t rows = tu_quick() ? 50 : 250, draws = 4, cols = 1000;
    const size_t n = rows * draws * cols;
    float *z = tu_fvec(n);
    lgd_rng_stream s = stream(20260101u, LGD_RNG_INIT, 0, 0, 0);
    c.ops->normal(c.be, &s, rows, draws, cols, z);
    static const double xs[] = { -2.0, -1.0, 0.0, 1.0, 2.0 };
    size_t below[5] = { 0 }, tail3 = 0;
    double s1 = 0.0, lag = 0.0, zmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(z[i]), "normal %zu not finite", i);
        s1 += z[i];
        if (fabs(z[i]) > zmax)
            zmax = fabs(z[i]);
        if (fabs(z[i]) > 3.0)
            tail3++;
        for (int k = 0; k < 5; k++)
            below[k] += z[i] < xs[k];
        if (i > 0)
            lag += (double)z[i] * z[i - 1];
    }
    double mean = s1 / (double)n, m2 = 0.0, m3 = 0.0, m4 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = z[i] - mean, d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    m2 /= (double)n;
    m3 /= (double)n;
    m4 /= (double)n;
    double var = m2, skew = m3 / pow(m2, 1.5), exkurt = m4 / (m2 * m2) - 3.0;
    double rho = lag / (double)(n - 1);
    double p3 = (double)tail3 / (double)n, p3_true = 2.0 * normal_cdf(-3.0);
    double sn = sqrt((double)n);
    fprintf(stderr,
            "normal moments (n=%zu): mean %.5f var %.5f skew %.5f exkurt %.5f lag1 %.5f "
            "P(|z|>3) %.6f (exact %.6f) max|z| %.3f\n",
            n, mean, var, skew, exkurt, rho, p3, p3_true, zmax);
    /* all tolerances are 5 standard errors */
    ck_assert_msg(fabs(mean) < 5.0 / sn, "mean %g", mean);
    ck_assert_msg(fabs(var - 1.0) < 5.0 * sqrt(2.0) / sn, "variance %g", var);
    ck_assert_msg(fabs(skew) < 5.0 * sqrt(6.0) / sn, "skewness %g", skew);
    ck_assert_msg(fabs(exkurt) < 5.0 * sqrt(24.0) / sn, "excess kurtosis %g", exkurt);
    ck_assert_msg(fabs(rho) < 5.0 / sn, "lag-1 correlation %g", rho);
    ck_assert_msg(fabs(p3 - p3_true) < 5.0 * sqrt(p3_true * (1 - p3_true)) / sn, "P(|z|>3) %g", p3);
    for (int k = 0; k < 5; k++) {
        double p = (double)below[k] / (double)n, q = normal_cdf(xs[k]);
        ck_assert_msg(fabs(p - q) < 5.0 * sqrt(q * (1 - q)) / sn, "P(z < %g) = %g, want %g", xs[k],
                      p, q);
    }
    ck_assert(zmax < 6.0); /* sqrt(-2 log 2^-24) = 5.77 bounds float Box-Muller */
    free(z);
    cpu_close(&c);
}
END_TEST

START_TEST(uniform_moments)
{
    cpu_be c = cpu_open(0);
    const size_t rows = tu_quick() ? 200 : 1000, draws = 1000, n = rows * draws;
    float *u = tu_fvec(n);
    lgd_rng_stream s = stream(99, LGD_RNG_COMPONENT, 17, 0, 0);
    c.ops->uniform(c.be, &s, rows, draws, u);
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(u[i] > 0.0f && u[i] < 1.0f, "uniform %zu = %.9g", i, (double)u[i]);
        s1 += u[i];
    }
    double mean = s1 / (double)n;
    for (size_t i = 0; i < n; i++)
        s2 += (u[i] - mean) * (u[i] - mean);
    double var = s2 / (double)n, sn = sqrt((double)n);
    fprintf(stderr, "uniform moments (n=%zu): mean %.6f var %.6f (exact 0.5, %.6f)\n", n, mean,
            var, 1.0 / 12.0);
    ck_assert_msg(fabs(mean - 0.5) < 5.0 * sqrt(1.0 / 12.0) / sn, "mean %g", mean);
    ck_assert_msg(fabs(var - 1.0 / 12.0) < 5.0 * sqrt(1.0 / 180.0) / sn, "variance %g", var);
    free(u);
    cpu_close(&c);
}
END_TEST

/* The normal op gives the same bytes for any thread count and any split of the
 * rows or of the draws into calls. */
/* mc_draws = mean + scale * (the normal op's numbers), bitwise; scale 0 copies the mean */
START_TEST(backend_mc_draws)
{
    cpu_be c = cpu_open(2);
    const size_t rows = 9, draws = 5, cols = 11, n = rows * draws * cols;
    float *mean = tu_fvec(rows * cols), *z = tu_fvec(n), *want = tu_fvec(n), *got = tu_fvec(n);
    tu_rng r = { 8 };
    tu_fill_normal(&r, mean, rows * cols, 3.0f);
    lgd_rng_stream s = stream(77, LGD_RNG_MC_DRAW, 4, 100, 6);
    c.ops->normal(c.be, &s, rows, draws, cols, z);
    c.ops->broadcast_axpy(c.be, rows * draws, draws, cols, mean, 0.37f, z, want);
    c.ops->normal_around(c.be, &s, rows, draws, cols, mean, 0.37f, got);
    check_bytes_eq("mc_draws vs normal + broadcast_axpy", want, got, n * sizeof(float));
    c.ops->normal_around(c.be, &s, rows, draws, cols, mean, 0.0f, got);
    for (size_t rj = 0; rj < rows * draws; rj++)
        check_bytes_eq("mc_draws scale 0", mean + (rj / draws) * cols, got + rj * cols,
                       cols * sizeof(float));
    free(mean);
    free(z);
    free(want);
    free(got);
    cpu_close(&c);
}
END_TEST

START_TEST(normal_invariance)
{
    const size_t rows = 48, draws = 6, cols = 130; /* 37440 values: the parallel path */
    const size_t n = rows * draws * cols;
    const uint64_t row0 = 1000;
    cpu_be c1 = cpu_open(1), c2 = cpu_open(2), c3 = cpu_open(3);
    float *a = tu_fvec(n), *b = tu_fvec(n), *tmp = tu_fvec(n);
    lgd_rng_stream s = stream(7, LGD_RNG_MC_DRAW, 3, row0, 0);
    c1.ops->normal(c1.be, &s, rows, draws, cols, a);
    c2.ops->normal(c2.be, &s, rows, draws, cols, b);
    check_bytes_eq("normal, 1 vs 2 threads", a, b, n * sizeof(float));
    c3.ops->normal(c3.be, &s, rows, draws, cols, b);
    check_bytes_eq("normal, 1 vs 3 threads", a, b, n * sizeof(float));

    /* rows split 17 + 31 */
    fill_const(b, n, NAN);
    lgd_rng_stream s1 = stream(7, LGD_RNG_MC_DRAW, 3, row0, 0);
    lgd_rng_stream s2 = stream(7, LGD_RNG_MC_DRAW, 3, row0 + 17, 0);
    c2.ops->normal(c2.be, &s1, 17, draws, cols, b);
    c2.ops->normal(c2.be, &s2, rows - 17, draws, cols, b + 17 * draws * cols);
    check_bytes_eq("normal, rows split", a, b, n * sizeof(float));

    /* draws split 2 + 4: out is [rows][draws][cols], so scatter the chunks */
    fill_const(b, n, NAN);
    const size_t split[3] = { 0, 2, 6 };
    for (int k = 0; k < 2; k++) {
        size_t d0 = split[k], dn = split[k + 1] - split[k];
        lgd_rng_stream sd = stream(7, LGD_RNG_MC_DRAW, 3, row0, (uint32_t)d0);
        c1.ops->normal(c1.be, &sd, rows, dn, cols, tmp);
        for (size_t r = 0; r < rows; r++)
            memcpy(b + (r * draws + d0) * cols, tmp + r * dn * cols, dn * cols * sizeof(float));
    }
    check_bytes_eq("normal, draws split", a, b, n * sizeof(float));

    /* odd splits of a 1-column stream (draws straddling Philox blocks) */
    {
        const size_t nd = 23;
        float whole[2 * 23], parts[2 * 23], t2[2 * 23];
        lgd_rng_stream sw = stream(9, LGD_RNG_MC_DRAW, 1, 3, 0);
        c1.ops->normal(c1.be, &sw, 2, nd, 1, whole);
        const size_t cut[4] = { 0, 5, 6, 23 };
        for (int k = 0; k < 3; k++) {
            lgd_rng_stream sk = stream(9, LGD_RNG_MC_DRAW, 1, 3, (uint32_t)cut[k]);
            size_t dn = cut[k + 1] - cut[k];
            c2.ops->normal(c2.be, &sk, 2, dn, 1, t2);
            for (size_t r = 0; r < 2; r++)
                memcpy(parts + r * nd + cut[k], t2 + r * dn, dn * sizeof(float));
        }
        check_bytes_eq("normal, 1-column draws split 5 + 1 + 17", whole, parts, sizeof whole);
    }

    /* another seed, step or purpose gives other numbers */
    lgd_rng_stream other[3] = { stream(8, LGD_RNG_MC_DRAW, 3, row0, 0),
                                stream(7, LGD_RNG_MC_DRAW, 4, row0, 0),
                                stream(7, LGD_RNG_ANCESTRAL, 3, row0, 0) };
    for (int k = 0; k < 3; k++) {
        c1.ops->normal(c1.be, &other[k], rows, draws, cols, b);
        size_t same = 0;
        for (size_t i = 0; i < n; i++)
            same += a[i] == b[i];
        ck_assert_msg(same < n / 1000, "stream variant %d: %zu of %zu values equal", k, same, n);
    }

    /* uniform: threads and row split */
    const size_t ur = 200, ud = 200;
    float *ua = tu_fvec(ur * ud), *ub = tu_fvec(ur * ud);
    lgd_rng_stream us = stream(11, LGD_RNG_COMPONENT, 2, 0, 0);
    c1.ops->uniform(c1.be, &us, ur, ud, ua);
    c2.ops->uniform(c2.be, &us, ur, ud, ub);
    check_bytes_eq("uniform, 1 vs 2 threads", ua, ub, ur * ud * sizeof(float));
    lgd_rng_stream us2 = stream(11, LGD_RNG_COMPONENT, 2, 150, 0);
    c2.ops->uniform(c2.be, &us, 150, ud, ub);
    c2.ops->uniform(c2.be, &us2, ur - 150, ud, ub + 150 * ud);
    check_bytes_eq("uniform, rows split", ua, ub, ur * ud * sizeof(float));

    free(ua);
    free(ub);
    free(a);
    free(b);
    free(tmp);
    cpu_close(&c1);
    cpu_close(&c2);
    cpu_close(&c3);
}
END_TEST

/* ------------------------------------------------------------------ backend ops */

START_TEST(backend_memory)
{
    cpu_be c = cpu_open(1);
    ck_assert_uint_eq(c.ops->abi_version, LGD_BACKEND_ABI_VERSION);
    ck_assert(c.ops->host_memory != 0);
    const char *name = c.ops->name(c.be);
    ck_assert_ptr_nonnull(name);
    ck_assert(strstr(name, "cpu") != NULL);
    void *z = c.ops->alloc(c.be, 0);
    ck_assert_ptr_nonnull(z);
    c.ops->free(c.be, z);
    ck_assert_ptr_null(c.ops->alloc(c.be, SIZE_MAX));
    float *p = c.ops->alloc(c.be, 100 * sizeof(float));
    float *q = c.ops->alloc(c.be, 100 * sizeof(float));
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    float host[100], back[100];
    for (int i = 0; i < 100; i++)
        host[i] = (float)i * 0.5f - 7.0f;
    ck_assert_int_eq(c.ops->upload(c.be, p, host, sizeof host), 0);
    ck_assert_int_eq(c.ops->copy(c.be, q, p, sizeof host), 0);
    ck_assert_int_eq(c.ops->synchronize(c.be), 0);
    ck_assert_int_eq(c.ops->download(c.be, back, q, sizeof back), 0);
    check_bytes_eq("upload/copy/download", host, back, sizeof host);
    ck_assert_int_eq(c.ops->copy(c.be, q, p, 0), 0);
    c.ops->free(c.be, p);
    c.ops->free(c.be, q);
    c.ops->free(c.be, NULL);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_fill)
{
    cpu_be c = cpu_open(2);
    const size_t n = 70001;
    float *x = tu_fvec(n);
    fill_const(x, n, NAN);
    c.ops->fill(c.be, x, 37, 2.5f);
    for (size_t i = 0; i < 37; i++)
        ck_assert(x[i] == 2.5f);
    ck_assert(isnan(x[37]));
    c.ops->fill(c.be, x, n, -1.25f);
    for (size_t i = 0; i < n; i++)
        ck_assert(x[i] == -1.25f);
    c.ops->fill(c.be, x, 0, 9.0f); /* n = 0 writes nothing */
    ck_assert(x[0] == -1.25f);
    free(x);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_axpby)
{
    tu_rng r = { 101 };
    cpu_be c = cpu_open(2);
    static const size_t sizes[] = { 1, 1000, 50003 };
    for (size_t t = 0; t < 3; t++) {
        size_t n = sizes[t];
        float *x = tu_randn(&r, n, 1.0f), *y = tu_randn(&r, n, 1.0f);
        double *ref = tu_dvec(n);
        for (size_t i = 0; i < n; i++)
            ref[i] = 1.5 * x[i] - 0.25 * y[i];
        c.ops->axpby(c.be, n, 1.5f, x, -0.25f, y);
        check_close("axpby", y, ref, n, 1e-6, 1e-6);
        /* b = 0: y is not read (NaN in y must not leak into the result) */
        fill_const(y, n, NAN);
        for (size_t i = 0; i < n; i++)
            ref[i] = -3.0 * x[i];
        c.ops->axpby(c.be, n, -3.0f, x, 0.0f, y);
        check_close("axpby b=0", y, ref, n, 1e-6, 1e-6);
        free(x);
        free(y);
        free(ref);
    }
    cpu_close(&c);
}
END_TEST

START_TEST(backend_axpby_rows)
{
    tu_rng r = { 102 };
    cpu_be c = cpu_open(1);
    const size_t rows = 5, cols = 7, n = rows * cols;
    float *a = tu_randn(&r, rows * 3, 1.0f), *x = tu_randn(&r, n, 1.0f), *y = tu_randn(&r, n, 1.0f);
    double ref[35];
    static const size_t strides[] = { 3, 1, 0 };
    for (int t = 0; t < 3; t++) {
        size_t st = strides[t];
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++)
                ref[i * cols + j] = (double)a[i * st] * x[i * cols + j] + 0.5 * y[i * cols + j];
        c.ops->axpby_rows(c.be, rows, cols, a, st, x, 0.5f, y);
        check_close("axpby_rows", y, ref, n, 1e-6, 1e-6);
    }
    fill_const(y, n, NAN);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            ref[i * cols + j] = (double)a[i * 3] * x[i * cols + j];
    c.ops->axpby_rows(c.be, rows, cols, a, 3, x, 0.0f, y);
    check_close("axpby_rows b=0", y, ref, n, 1e-6, 1e-6);
    free(a);
    free(x);
    free(y);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_sub_row_broadcast)
{
    tu_rng r = { 103 };
    cpu_be c = cpu_open(1);
    const size_t rows = 6, cols = 5, n = rows * cols, repeat = 3;
    float *x = tu_randn(&r, n, 1.0f), *row = tu_randn(&r, cols, 1.0f), *out = tu_fvec(n);
    double ref[30];
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            ref[i * cols + j] = (double)x[i * cols + j] - row[j];
    c.ops->sub_row(c.be, rows, cols, x, row, out);
    check_close("sub_row", out, ref, n, 1e-6, 1e-6);

    /* broadcast_axpy: out[r] = xb[r / repeat] + a y[r]; xb has rows / repeat rows */
    float *xb = tu_randn(&r, (rows / repeat) * cols, 1.0f), *y = tu_randn(&r, n, 1.0f);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            ref[i * cols + j] = (double)xb[(i / repeat) * cols + j] - 0.75 * y[i * cols + j];
    c.ops->broadcast_axpy(c.be, rows, repeat, cols, xb, -0.75f, y, out);
    check_close("broadcast_axpy", out, ref, n, 1e-6, 1e-6);
    /* repeat = 1 is a plain axpy */
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)x[i] + 2.0 * y[i];
    c.ops->broadcast_axpy(c.be, rows, 1, cols, x, 2.0f, y, out);
    check_close("broadcast_axpy repeat=1", out, ref, n, 1e-6, 1e-6);
    free(x);
    free(row);
    free(out);
    free(xb);
    free(y);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_diag_filter)
{
    tu_rng r = { 104 };
    cpu_be c = cpu_open(1);
    const size_t rows = 4, cols = 9, n = rows * cols;
    float lam[9];
    for (size_t j = 0; j < cols; j++)
        lam[j] = (float)(0.05 + 3.0 * tu_uniform(&r));
    lam[0] = 0.0f; /* a degenerate direction */
    const float s2 = 0.7f;
    float *in = tu_randn(&r, n, 1.0f), *out = tu_fvec(n);
    double ref[36];
    static const lgd_diag_filter filters[] = { LGD_FILTER_SHRINK, LGD_FILTER_PRECISION,
                                               LGD_FILTER_POST_STD };
    for (int f = 0; f < 3; f++) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) {
                double l = lam[j], g;
                if (filters[f] == LGD_FILTER_SHRINK)
                    g = l / (l + s2);
                else if (filters[f] == LGD_FILTER_PRECISION)
                    g = 1.0 / (l + s2);
                else
                    g = sqrt(l * s2 / (l + s2));
                ref[i * cols + j] = g * in[i * cols + j];
            }
        lgd_gmm_kernels_cpu.diag_filter(c.be, filters[f], rows, cols, lam, s2, in, out);
        check_close("diag_filter", out, ref, n, 1e-6, 1e-5);
    }
    free(in);
    free(out);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_row_reductions)
{
    tu_rng r = { 105 };
    cpu_be c = cpu_open(1);
    const size_t rows = 5, cols = 33, n = rows * cols;
    float *x = tu_randn(&r, n, 1.0f), *y = tu_randn(&r, n, 2.0f);
    float out[5 * 3];
    double ref[5];
    for (size_t i = 0; i < rows; i++) {
        ref[i] = 0.0;
        for (size_t j = 0; j < cols; j++)
            ref[i] += (double)x[i * cols + j] * y[i * cols + j];
    }
    c.ops->row_dot(c.be, rows, cols, x, y, out, 1);
    check_close("row_dot", out, ref, rows, 1e-5, 1e-5);

    /* gaussian_logp with an output stride: the gaps stay untouched */
    float lam[33];
    for (size_t j = 0; j < cols; j++)
        lam[j] = (float)(0.1 + tu_uniform(&r));
    const float s2 = 0.3f, cst = -2.5f;
    fill_const(out, 15, 1234.0f);
    lgd_gmm_kernels_cpu.gaussian_logp(c.be, rows, cols, x, lam, s2, cst, out, 3);
    for (size_t i = 0; i < rows; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++)
            acc += (double)x[i * cols + j] * x[i * cols + j] / ((double)lam[j] + s2);
        double want = cst - 0.5 * acc;
        ck_assert_msg(fabs(out[i * 3] - want) <= 1e-5 + 1e-5 * fabs(want), "gaussian_logp[%zu]",
                      i);
        ck_assert(out[i * 3 + 1] == 1234.0f && out[i * 3 + 2] == 1234.0f);
    }
    free(x);
    free(y);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_row_dot_strided_mix)
{
    tu_rng r = { 114 };
    cpu_be c = cpu_open(1);
    const size_t rows = 4, cols = 9;
    float *x = tu_randn(&r, rows * cols, 1.0f), *y = tu_randn(&r, rows * cols, 1.0f);
    float out[4 * 3];
    fill_const(out, 12, 1234.0f);
    c.ops->row_dot(c.be, rows, cols, x, y, out, 3);
    for (size_t i = 0; i < rows; i++) {
        double want = 0.0;
        for (size_t j = 0; j < cols; j++)
            want += (double)x[i * cols + j] * y[i * cols + j];
        ck_assert_msg(fabs(out[i * 3] - want) <= 1e-5 + 1e-5 * fabs(want), "row_dot_strided[%zu]",
                      i);
        ck_assert(out[i * 3 + 1] == 1234.0f && out[i * 3 + 2] == 1234.0f);
    }

    /* mix_coeffs: out[r][k] = scale p[r][k] (d[r][k] - sum_j p[r][j] d[r][j]) */
    const size_t K = 5;
    float p[4 * 5], *d = tu_randn(&r, rows * K, 2.0f), mo[4 * 5];
    double ref[4 * 5];
    for (size_t i = 0; i < rows; i++) {
        double s = 0.0;
        for (size_t k = 0; k < K; k++)
            s += p[i * K + k] = (float)tu_uniform(&r);
        for (size_t k = 0; k < K; k++)
            p[i * K + k] = (float)(p[i * K + k] / s);
        double mean = 0.0;
        for (size_t k = 0; k < K; k++)
            mean += (double)p[i * K + k] * d[i * K + k];
        for (size_t k = 0; k < K; k++)
            ref[i * K + k] = -1.5 * p[i * K + k] * ((double)d[i * K + k] - mean);
    }
    c.ops->softmax_rows_backward(c.be, rows, K, p, d, -1.5f, mo);
    check_close("mix_coeffs", mo, ref, rows * K, 1e-6, 1e-5);
    for (size_t i = 0; i < rows; i++) { /* centred: the coefficients sum to 0 */
        double s = 0.0;
        for (size_t k = 0; k < K; k++)
            s += mo[i * K + k];
        ck_assert_msg(fabs(s) < 1e-5, "mix_coeffs row %zu sums to %g", i, s);
    }

    /* inv_sqrt_scale: out = w / sqrt(max(in, floor)), the floor guarding 0 and negatives */
    const float in[8] = { 4.0f, 1.0f, 0.25f, 1e-12f, 0.0f, -3.0f, 1e6f, 1e-4f };
    float io[8];
    double iref[8];
    const float w = 3.0f, floor_ = 1e-6f;
    for (size_t i = 0; i < 8; i++)
        iref[i] = w / sqrt(fmax((double)in[i], (double)floor_));
    c.ops->inv_sqrt_scale(c.be, 8, w, in, floor_, io);
    check_close("inv_sqrt_scale", io, iref, 8, 0.0, 1e-6);
    ck_assert_ptr_null(c.ops->native_stream); /* optional slot: no stream on the CPU */
    free(x);
    free(y);
    free(d);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_softmax_logsumexp)
{
    tu_rng r = { 106 };
    cpu_be c = cpu_open(1);
    const size_t rows = 4, cols = 6, n = rows * cols;
    float x[24] = {
        0, 0, 0, 0, 0, 0,                                 /* row 0: random, below */
        1000.0f, 999.0f, 998.0f, -1000.0f, 500.0f, 1000.0f, /* exp would overflow */
        -1000.0f, -1001.0f, -999.5f, -1003.0f, -1000.0f, -1000.25f, /* would underflow */
        88.0f, 89.0f, 90.0f, -90.0f, 0.0f, 3.0e4f,        /* one dominant value */
    };
    tu_fill_normal(&r, x, cols, 3.0f);
    double sm[24], lse[4];
    for (size_t i = 0; i < rows; i++) {
        double m = -INFINITY, s = 0.0;
        for (size_t j = 0; j < cols; j++)
            m = fmax(m, x[i * cols + j]);
        for (size_t j = 0; j < cols; j++)
            s += exp((double)x[i * cols + j] - m);
        for (size_t j = 0; j < cols; j++)
            sm[i * cols + j] = exp((double)x[i * cols + j] - m) / s;
        lse[i] = m + log(s);
    }
    float out[4];
    c.ops->logsumexp_rows(c.be, rows, cols, x, out);
    check_close("logsumexp_rows", out, lse, rows, 1e-5, 1e-6);
    c.ops->softmax_rows(c.be, rows, cols, x);
    check_close("softmax_rows", x, sm, n, 1e-7, 1e-5);
    for (size_t i = 0; i < rows; i++) {
        double s = 0.0;
        for (size_t j = 0; j < cols; j++)
            s += x[i * cols + j];
        ck_assert_msg(fabs(s - 1.0) < 1e-5, "softmax row %zu sums to %.9g", i, s);
    }
    cpu_close(&c);
}
END_TEST

START_TEST(backend_all_finite)
{
    cpu_be c = cpu_open(2);
    const size_t n = 70000;
    float *x = tu_fvec(n);
    fill_const(x, n, 1.0f);
    x[3] = FLT_MAX;
    x[4] = -FLT_MAX;
    x[5] = FLT_MIN / 4; /* denormal */
    ck_assert_int_eq(c.ops->all_finite(c.be, x, 100), 1);
    ck_assert_int_eq(c.ops->all_finite(c.be, x, n), 1);
    ck_assert_int_eq(c.ops->all_finite(c.be, x, 0), 1);
    static const size_t where[] = { 0, 57, 99 };
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (int b = 0; b < 3; b++)
        for (int w = 0; w < 3; w++) {
            float keep = x[where[w]];
            x[where[w]] = bad[b];
            ck_assert_msg(c.ops->all_finite(c.be, x, 100) == 0, "bad value %d at %zu missed", b,
                          where[w]);
            x[where[w]] = keep;
        }
    /* the parallel path */
    x[n - 1] = NAN;
    ck_assert_int_eq(c.ops->all_finite(c.be, x, n), 0);
    ck_assert_int_eq(c.ops->all_finite(c.be, x, n - 1), 1);
    x[n - 1] = 1.0f;
    x[n / 2] = -INFINITY;
    ck_assert_int_eq(c.ops->all_finite(c.be, x, n), 0);
    /* finite_flag: sets the flag on a non-finite value, never clears it */
    float flag = 0.0f;
    c.ops->finite_flag(c.be, x, n / 2, &flag);
    ck_assert_float_eq(flag, 0.0f);
    c.ops->finite_flag(c.be, x, n, &flag);
    ck_assert_float_eq(flag, 1.0f);
    c.ops->finite_flag(c.be, x, 10, &flag);
    ck_assert_float_eq(flag, 1.0f);
    free(x);
    cpu_close(&c);
}
END_TEST

static void gemm_case(cpu_be *c, tu_rng *r, int ta, int tb, size_t M, size_t N, size_t K,
                      size_t pad, float alpha, float beta)
{
    size_t arows = ta ? K : M, acols = ta ? M : K, lda = acols + pad;
    size_t brows = tb ? N : K, bcols = tb ? K : N, ldb = bcols + pad + 1;
    size_t ldc = N + pad;
    float *A = tu_randn(r, arows * lda, 1.0f), *B = tu_randn(r, brows * ldb, 1.0f);
    float *C = tu_randn(r, M * ldc, 1.0f);
    double *ref = tu_dvec(M * ldc);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++) {
            if (j >= N) {
                ref[i * ldc + j] = C[i * ldc + j]; /* padding: untouched */
                continue;
            }
            double acc = 0.0;
            for (size_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
            }
            ref[i * ldc + j] = alpha * acc + (beta == 0.0f ? 0.0 : beta * C[i * ldc + j]);
        }
    if (beta == 0.0f) /* beta = 0: C is not read */
        for (size_t i = 0; i < M; i++)
            fill_const(C + i * ldc, N, NAN);
    c->ops->gemm(c->be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    char what[64];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d %zux%zux%zu beta=%g", ta, tb, M, N, K,
             (double)beta);
    check_close(what, C, ref, M * ldc, 1e-5, 1e-4);
    free(A);
    free(B);
    free(C);
    free(ref);
}

START_TEST(backend_gemm)
{
    tu_rng r = { 107 };
    cpu_be c = cpu_open(2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(&c, &r, ta, tb, 5, 7, 3, 0, 1.0f, 0.0f);
            gemm_case(&c, &r, ta, tb, 5, 7, 3, 2, 1.5f, -0.5f);
            gemm_case(&c, &r, ta, tb, 4, 1, 6, 3, -1.0f, 0.0f);
            gemm_case(&c, &r, ta, tb, 67, 33, 45, 5, 0.75f, 1.0f);
        }
    /* M = 0 or N = 0: nothing happens */
    float C[4] = { 1, 2, 3, 4 }, A[4] = { 0 }, B[4] = { 0 };
    c.ops->gemm(c.be, 0, 0, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    c.ops->gemm(c.be, 0, 0, 2, 0, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    ck_assert(C[0] == 1 && C[1] == 2 && C[2] == 3 && C[3] == 4);
    cpu_close(&c);
}
END_TEST

/* Monte Carlo reduction: a direct double-precision softmax-weighted sum. */
typedef struct mc_ref {
    double *out, *ess, *wloss, *lsum, *max;
} mc_ref;

static mc_ref mc_reference(size_t rows, size_t draws, size_t cols, const float *loss,
                           const float *vec)
{
    mc_ref m = { tu_dvec(rows * cols), tu_dvec(rows), tu_dvec(rows), tu_dvec(rows), tu_dvec(rows) };
    for (size_t r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0.0, s2 = 0.0, wl = 0.0, ls = 0.0;
        for (size_t j = 0; j < draws; j++)
            mx = fmax(mx, -(double)loss[r * draws + j]);
        for (size_t j = 0; j < draws; j++) {
            double l = loss[r * draws + j], w = exp(-l - mx);
            s += w;
            s2 += w * w;
            wl += w * l;
            ls += l;
            for (size_t e = 0; e < cols; e++)
                m.out[r * cols + e] += w * vec[(r * draws + j) * cols + e];
        }
        for (size_t e = 0; e < cols; e++)
            m.out[r * cols + e] /= s;
        m.ess[r] = s * s / s2;
        m.wloss[r] = wl / s;
        m.lsum[r] = ls;
        m.max[r] = mx;
    }
    return m;
}

static void mc_ref_free(mc_ref *m)
{
    free(m->out);
    free(m->ess);
    free(m->wloss);
    free(m->lsum);
    free(m->max);
}

typedef struct mc_buf {
    lgd_mc_state st;
    float *out, *ess;
} mc_buf;

static mc_buf mc_buf_new(size_t rows, size_t cols)
{
    mc_buf b;
    b.st.max = tu_fvec(rows);
    b.st.sum = tu_fvec(rows);
    b.st.sum2 = tu_fvec(rows);
    b.st.wloss = tu_fvec(rows);
    b.st.lsum = tu_fvec(rows);
    b.st.vec = tu_fvec(rows * cols);
    b.out = tu_fvec(rows * cols);
    b.ess = tu_fvec(rows);
    fill_const(b.st.vec, rows * cols, NAN); /* mc_reset must clear everything */
    fill_const(b.st.sum, rows, NAN);
    return b;
}

static void mc_buf_free(mc_buf *b)
{
    free(b->st.max);
    free(b->st.sum);
    free(b->st.sum2);
    free(b->st.wloss);
    free(b->st.lsum);
    free(b->st.vec);
    free(b->out);
    free(b->ess);
}

/* Runs reset, accumulate over the chunks given by bounds[0..nb], finish. */
static void mc_run(cpu_be *c, size_t rows, size_t draws, size_t cols, const float *loss,
                   const float *vec, const size_t *bounds, int nb, mc_buf *b)
{
    lgd_mc_kernels_cpu.reset(c->be, rows, cols, &b->st);
    for (int k = 0; k < nb; k++) {
        size_t d0 = bounds[k], dn = bounds[k + 1] - bounds[k];
        float *lc = tu_fvec(rows * dn), *vc = tu_fvec(rows * dn * cols);
        for (size_t r = 0; r < rows; r++) {
            memcpy(lc + r * dn, loss + r * draws + d0, dn * sizeof(float));
            memcpy(vc + r * dn * cols, vec + (r * draws + d0) * cols, dn * cols * sizeof(float));
        }
        lgd_mc_kernels_cpu.accumulate(c->be, rows, dn, cols, lc, vc, &b->st);
        free(lc);
        free(vc);
    }
    lgd_mc_kernels_cpu.finish(c->be, rows, cols, &b->st, b->out, b->ess);
}

START_TEST(backend_mc_reduction)
{
    tu_rng r = { 108 };
    cpu_be c = cpu_open(1);
    const size_t rows = 4, draws = 40, cols = 5;
    float *loss = tu_fvec(rows * draws), *vec = tu_randn(&r, rows * draws * cols, 1.0f);
    for (size_t j = 0; j < draws; j++) {
        double u = tu_uniform(&r);
        /* row 0: near -500 and decreasing, so every chunk brings a new max of -l */
        loss[0 * draws + j] = (float)(-500.0 + 6.0 * (1.0 - (double)j / (draws - 1)) + 0.5 * u);
        /* row 1: near +500 (exp(-l) underflows) */
        loss[1 * draws + j] = (float)(500.0 - 3.0 * u);
        /* row 2: two clusters at -500 and +500 */
        loss[2 * draws + j] = (float)(j % 2 ? 500.0 - 3.0 * u : -500.0 + 3.0 * u);
        /* row 3: spread over [-500, 500] */
        loss[3 * draws + j] = (float)(-500.0 + 1000.0 * u);
    }
    mc_ref ref = mc_reference(rows, draws, cols, loss, vec);
    mc_buf one = mc_buf_new(rows, cols), many = mc_buf_new(rows, cols);
    const size_t b1[2] = { 0, 40 }, b3[4] = { 0, 7, 20, 40 };
    mc_run(&c, rows, draws, cols, loss, vec, b1, 1, &one);
    mc_run(&c, rows, draws, cols, loss, vec, b3, 3, &many);
    mc_buf *res[2] = { &one, &many };
    for (int k = 0; k < 2; k++) {
        mc_buf *b = res[k];
        check_close("mc out", b->out, ref.out, rows * cols, 1e-5, 1e-4);
        check_close("mc ess", b->ess, ref.ess, rows, 1e-5, 1e-4);
        check_close("mc wloss", b->st.wloss, ref.wloss, rows, 1e-3, 1e-5);
        check_close("mc lsum", b->st.lsum, ref.lsum, rows, 0.05, 1e-5);
        check_close("mc max", b->st.max, ref.max, rows, 0.0, 0.0);
    }
    check_close_f("mc chunks vs one", many.out, one.out, rows * cols, 1e-6, 1e-5);
    check_close_f("mc ess chunks vs one", many.ess, one.ess, rows, 1e-6, 1e-5);
    fprintf(stderr, "mc ess per row: %.4f %.4f %.4f %.4f\n", (double)one.ess[0],
            (double)one.ess[1], (double)one.ess[2], (double)one.ess[3]);
    mc_buf_free(&one);
    mc_buf_free(&many);
    mc_ref_free(&ref);
    free(loss);
    free(vec);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_mc_ess)
{
    cpu_be c = cpu_open(1);
    const size_t rows = 3, draws = 16, cols = 2;
    float loss[3 * 16], vec[3 * 16 * 2];
    for (size_t j = 0; j < draws; j++) {
        loss[j] = 123.0f;                      /* equal: ess = n */
        loss[draws + j] = j == 5 ? 0.0f : 100; /* one dominates: ess = 1 */
        loss[2 * draws + j] = (j == 2 || j == 9) ? -7.0f : 93.0f; /* two: ess = 2 */
    }
    for (size_t i = 0; i < rows * draws * cols; i++)
        vec[i] = (float)(i % 7);
    mc_buf b = mc_buf_new(rows, cols);
    const size_t bounds[3] = { 0, 9, 16 };
    mc_run(&c, rows, draws, cols, loss, vec, bounds, 2, &b);
    ck_assert_msg(fabsf(b.ess[0] - 16.0f) < 1e-4f, "ess equal = %g", (double)b.ess[0]);
    ck_assert_msg(fabsf(b.ess[1] - 1.0f) < 1e-4f, "ess one = %g", (double)b.ess[1]);
    ck_assert_msg(fabsf(b.ess[2] - 2.0f) < 1e-4f, "ess two = %g", (double)b.ess[2]);
    /* equal weights: the plain mean; one dominant: that draw's vector */
    for (size_t e = 0; e < cols; e++) {
        double mean = 0.0;
        for (size_t j = 0; j < draws; j++)
            mean += vec[j * cols + e] / (double)draws;
        ck_assert(fabs(b.out[e] - mean) < 1e-5);
        ck_assert(fabsf(b.out[cols + e] - vec[(draws + 5) * cols + e]) < 1e-5f);
    }
    ck_assert(fabsf(b.st.wloss[0] - 123.0f) < 1e-3f);
    ck_assert(fabsf(b.st.wloss[1]) < 1e-3f);
    ck_assert(fabsf(b.st.wloss[2] + 7.0f) < 1e-3f);
    mc_buf_free(&b);
    cpu_close(&c);
}
END_TEST

static int32_t categorical_ref(const float *p, size_t K, float u)
{
    float c = 0.0f;
    for (size_t i = 0; i < K; i++) {
        c += p[i];
        if (c > u)
            return (int32_t)i;
    }
    return (int32_t)K - 1;
}

START_TEST(backend_categorical_select)
{
    cpu_be c = cpu_open(1);
    const size_t K = 4, draws = 6;
    const float prob[3 * 4] = { 0.25f, 0.25f, 0.25f, 0.25f, /* */
                                0.0f,  0.5f,  0.0f,  0.5f,  /* zero-probability components */
                                0.1f,  0.2f,  0.3f,  0.3999f /* sums to < 1 */ };
    const float u[3 * 6] = { 0.0f, 0.2499f, 0.25f, 0.5f, 0.99f, 0.99999994f, /* */
                             0.0f, 0.3f,    0.5f,  0.7f, 0.49f, 0.999f,      /* */
                             0.05f, 0.1f,   0.15f, 0.35f, 0.7f, 0.99995f };
    const int32_t want[3 * 6] = { 0, 0, 1, 2, 3, 3, /* */
                                  1, 1, 3, 3, 1, 3, /* */
                                  0, 1, 1, 2, 3, 3 };
    int32_t idx[18];
    c.ops->categorical(c.be, 3, draws, K, prob, u, idx);
    for (size_t i = 0; i < 18; i++)
        ck_assert_msg(idx[i] == want[i], "categorical[%zu] = %d, want %d", i, idx[i], want[i]);

    /* random cases against the reference */
    tu_rng r = { 109 };
    enum { RR = 20, RD = 50, RK = 7 };
    float p[RR * RK], uu[RR * RD];
    int32_t got[RR * RD];
    for (size_t i = 0; i < RR; i++) {
        double s = 0.0;
        for (size_t k = 0; k < RK; k++)
            s += p[i * RK + k] = (float)(tu_uniform(&r) * (k % 3 ? 1.0 : 0.1));
        for (size_t k = 0; k < RK; k++)
            p[i * RK + k] = (float)(p[i * RK + k] / s);
    }
    for (size_t i = 0; i < RR * RD; i++)
        uu[i] = (float)tu_uniform(&r);
    c.ops->categorical(c.be, RR, RD, RK, p, uu, got);
    for (size_t i = 0; i < RR; i++)
        for (size_t j = 0; j < RD; j++)
            ck_assert_int_eq(got[i * RD + j], categorical_ref(p + i * RK, RK, uu[i * RD + j]));

    /* select_rows copies exactly the rows whose index is k */
    const size_t n = 6, cols = 3;
    const int32_t sel[6] = { 0, 1, 0, 2, 1, 0 };
    float src[18], dst[18];
    for (size_t i = 0; i < 18; i++)
        src[i] = (float)i + 0.5f;
    fill_const(dst, 18, -1.0f);
    c.ops->select_rows(c.be, n, cols, sel, 0, src, dst);
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < cols; e++)
            ck_assert(dst[i * cols + e] == (sel[i] == 0 ? src[i * cols + e] : -1.0f));
    c.ops->select_rows(c.be, n, cols, sel, 1, src, dst);
    c.ops->select_rows(c.be, n, cols, sel, 2, src, dst);
    check_bytes_eq("select_rows all k", src, dst, sizeof src);
    c.ops->select_rows(c.be, n, cols, sel, 5, src, dst); /* no row: nothing changes */
    check_bytes_eq("select_rows no match", src, dst, sizeof src);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_loss_sqerr)
{
    tu_rng r = { 110 };
    cpu_be c = cpu_open(1);
    const size_t rows = 12, cols = 5, trows = 2;
    float *x = tu_randn(&r, rows * cols, 1.0f), *tg = tu_randn(&r, trows * cols, 1.0f);
    float w[5], loss[12], loss2[12], *grad = tu_fvec(rows * cols);
    for (size_t j = 0; j < cols; j++)
        w[j] = (float)(0.5 + tu_uniform(&r));
    static const size_t per[] = { 1, 3, 6 };
    for (int p = 0; p < 3; p++)
        for (int weighted = 0; weighted < 2; weighted++) {
            double lref[12], gref[60];
            for (size_t i = 0; i < rows; i++) {
                const float *t = tg + ((i / per[p]) % trows) * cols;
                lref[i] = 0.0;
                for (size_t j = 0; j < cols; j++) {
                    double d = (double)x[i * cols + j] - t[j], ww = weighted ? w[j] : 1.0;
                    lref[i] += ww * d * d;
                    gref[i * cols + j] = 2.0 * ww * d;
                }
            }
            const float *wp = weighted ? w : NULL;
            lgd_loss_kernels_cpu.sqerr(c.be, rows, cols, x, tg, trows, per[p], wp, loss, grad);
            check_close("loss_sqerr", loss, lref, rows, 1e-5, 1e-5);
            check_close("loss_sqerr grad", grad, gref, rows * cols, 1e-5, 1e-5);
            lgd_loss_kernels_cpu.sqerr(c.be, rows, cols, x, tg, trows, per[p], wp, loss2, NULL);
            check_bytes_eq("loss_sqerr without grad", loss, loss2, sizeof loss);
        }
    free(x);
    free(tg);
    free(grad);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_loss_logistic)
{
    tu_rng r = { 111 };
    cpu_be c = cpu_open(1);
    const size_t rows = 8, cols = 6;
    float *x = tu_randn(&r, rows * cols, 1.0f), *a = tu_randn(&r, cols, 1.0f);
    float loss[8], loss2[8], *grad = tu_fvec(rows * cols);
    /* scale rows so that z spans [-200, 200]: softplus and sigmoid must not overflow */
    static const float zscale[8] = { 1, -1, 0.01f, 50, -50, 200, -200, 0 };
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            x[i * cols + j] *= zscale[i];
    const float b = 0.3f;
    double lref[8], gref[48];
    for (size_t i = 0; i < rows; i++) {
        double z = b;
        for (size_t j = 0; j < cols; j++)
            z += (double)a[j] * x[i * cols + j];
        /* softplus(-z) = max(-z, 0) + log1p(exp(-|z|)); sigmoid(-z) = 1 / (1 + exp(z)) */
        lref[i] = fmax(-z, 0.0) + log1p(exp(-fabs(z)));
        double sg = z >= 0 ? exp(-z) / (1.0 + exp(-z)) : 1.0 / (1.0 + exp(z));
        for (size_t j = 0; j < cols; j++)
            gref[i * cols + j] = -sg * a[j];
    }
    lgd_loss_kernels_cpu.logistic(c.be, rows, cols, x, a, b, loss, grad);
    /* z is rounded to float in the op: allow its rounding at |z| ~ 200 */
    check_close("loss_logistic", loss, lref, rows, 1e-6, 1e-4);
    check_close("loss_logistic grad", grad, gref, rows * cols, 1e-6, 1e-4);
    lgd_loss_kernels_cpu.logistic(c.be, rows, cols, x, a, b, loss2, NULL);
    check_bytes_eq("loss_logistic without grad", loss, loss2, sizeof loss);
    free(x);
    free(a);
    free(grad);
    cpu_close(&c);
}
END_TEST

START_TEST(backend_loss_residual)
{
    tu_rng r = { 112 };
    cpu_be c = cpu_open(1);
    const size_t rows = 6, m = 4, trows = 2, per = 3;
    const float inv_s2 = 4.0f;
    float *hx = tu_randn(&r, rows * m, 1.0f), *y = tu_randn(&r, trows * m, 1.0f), loss[6];
    double lref[6], rref[24];
    for (size_t i = 0; i < rows; i++) {
        const float *yt = y + ((i / per) % trows) * m;
        double acc = 0.0;
        for (size_t j = 0; j < m; j++) {
            double d = (double)hx[i * m + j] - yt[j];
            acc += d * d;
            rref[i * m + j] = d * inv_s2;
        }
        lref[i] = 0.5 * acc * inv_s2;
    }
    lgd_loss_kernels_cpu.residual(c.be, rows, m, y, trows, per, inv_s2, hx, loss);
    check_close("loss_residual", loss, lref, rows, 1e-5, 1e-5);
    check_close("loss_residual res", hx, rref, rows * m, 1e-5, 1e-5);
    free(hx);
    free(y);
    cpu_close(&c);
}
END_TEST

/* Results do not depend on the thread count (each output has one owner). */
START_TEST(backend_thread_invariance)
{
    tu_rng r = { 113 };
    cpu_be c1 = cpu_open(1), c3 = cpu_open(3);
    const size_t rows = 2048, cols = 96, n = rows * cols; /* > LGD_CPU_PAR_MIN_WORK */
    float *x = tu_randn(&r, n, 2.0f), *y = tu_randn(&r, n, 1.0f), *tg = tu_randn(&r, 3 * cols, 1.0f);
    float *o1 = tu_fvec(n), *o3 = tu_fvec(n), *g1 = tu_fvec(n), *g3 = tu_fvec(n);
    float lam[96];
    for (size_t j = 0; j < cols; j++)
        lam[j] = (float)(0.1 + tu_uniform(&r));

    c1.ops->row_dot(c1.be, rows, cols, x, y, o1, 1);
    c3.ops->row_dot(c3.be, rows, cols, x, y, o3, 1);
    check_bytes_eq("row_dot", o1, o3, rows * sizeof(float));
    fill_const(o1, 2 * rows, 0.0f);
    fill_const(o3, 2 * rows, 0.0f);
    c1.ops->row_dot(c1.be, rows, cols, x, y, o1, 2);
    c3.ops->row_dot(c3.be, rows, cols, x, y, o3, 2);
    check_bytes_eq("row_dot_strided", o1, o3, 2 * rows * sizeof(float));
    c1.ops->softmax_rows_backward(c1.be, rows, cols, x, y, 0.5f, o1);
    c3.ops->softmax_rows_backward(c3.be, rows, cols, x, y, 0.5f, o3);
    check_bytes_eq("mix_coeffs", o1, o3, n * sizeof(float));
    c1.ops->inv_sqrt_scale(c1.be, n, 2.0f, x, 1e-3f, o1);
    c3.ops->inv_sqrt_scale(c3.be, n, 2.0f, x, 1e-3f, o3);
    check_bytes_eq("inv_sqrt_scale", o1, o3, n * sizeof(float));
    lgd_gmm_kernels_cpu.gaussian_logp(c1.be, rows, cols, x, lam, 0.2f, 1.0f, o1, 1);
    lgd_gmm_kernels_cpu.gaussian_logp(c3.be, rows, cols, x, lam, 0.2f, 1.0f, o3, 1);
    check_bytes_eq("gaussian_logp", o1, o3, rows * sizeof(float));
    c1.ops->logsumexp_rows(c1.be, rows, cols, x, o1);
    c3.ops->logsumexp_rows(c3.be, rows, cols, x, o3);
    check_bytes_eq("logsumexp_rows", o1, o3, rows * sizeof(float));
    memcpy(o1, x, n * sizeof(float));
    memcpy(o3, x, n * sizeof(float));
    c1.ops->softmax_rows(c1.be, rows, cols, o1);
    c3.ops->softmax_rows(c3.be, rows, cols, o3);
    check_bytes_eq("softmax_rows", o1, o3, n * sizeof(float));
    lgd_gmm_kernels_cpu.diag_filter(c1.be, LGD_FILTER_POST_STD, rows, cols, lam, 0.4f, x, o1);
    lgd_gmm_kernels_cpu.diag_filter(c3.be, LGD_FILTER_POST_STD, rows, cols, lam, 0.4f, x, o3);
    check_bytes_eq("diag_filter", o1, o3, n * sizeof(float));
    lgd_loss_kernels_cpu.sqerr(c1.be, rows, cols, x, tg, 3, 2, lam, o1, g1);
    lgd_loss_kernels_cpu.sqerr(c3.be, rows, cols, x, tg, 3, 2, lam, o3, g3);
    check_bytes_eq("loss_sqerr", o1, o3, rows * sizeof(float));
    check_bytes_eq("loss_sqerr grad", g1, g3, n * sizeof(float));
    lgd_loss_kernels_cpu.logistic(c1.be, rows, cols, x, lam, 0.1f, o1, g1);
    lgd_loss_kernels_cpu.logistic(c3.be, rows, cols, x, lam, 0.1f, o3, g3);
    check_bytes_eq("loss_logistic", o1, o3, rows * sizeof(float));
    check_bytes_eq("loss_logistic grad", g1, g3, n * sizeof(float));

    /* MC reduction: rows 32, draws 32, cols 96 (both chunks on the parallel path) */
    const size_t mr = 32, md = 32;
    float *loss = tu_randn(&r, mr * md, 50.0f);
    mc_buf b1 = mc_buf_new(mr, cols), b3 = mc_buf_new(mr, cols);
    const size_t bounds[3] = { 0, 12, 32 };
    float *vec = tu_fvec(mr * md * cols);
    tu_fill_normal(&r, vec, mr * md * cols, 1.0f);
    mc_run(&c1, mr, md, cols, loss, vec, bounds, 2, &b1);
    mc_run(&c3, mr, md, cols, loss, vec, bounds, 2, &b3);
    check_bytes_eq("mc out", b1.out, b3.out, mr * cols * sizeof(float));
    check_bytes_eq("mc ess", b1.ess, b3.ess, mr * sizeof(float));
    mc_buf_free(&b1);
    mc_buf_free(&b3);
    free(vec);
    free(loss);
    free(x);
    free(y);
    free(tg);
    free(o1);
    free(o3);
    free(g1);
    free(g3);
    cpu_close(&c1);
    cpu_close(&c3);
}
END_TEST

/* ------------------------------------------------------------------ context */

typedef struct log_rec {
    int n, n_error, n_info;
    lgd_log_level last_level;
    char last[LGD_ERROR_CAP];
    char last_info[LGD_ERROR_CAP];
} log_rec;

static void log_collect(void *user, lgd_log_level level, const char *message)
{
    log_rec *r = user;
    r->n++;
    r->last_level = level;
    snprintf(r->last, sizeof r->last, "%s", message);
    if (level == LGD_LOG_ERROR)
        r->n_error++;
    if (level == LGD_LOG_INFO) {
        r->n_info++;
        snprintf(r->last_info, sizeof r->last_info, "%s", message);
    }
}

static lgd_status provoke_error(lgd_context *ctx)
{
    int64_t shape[1] = { 4 };
    lgd_tensor *t = NULL;
    lgd_status st = lgd_tensor_create(ctx, 0, shape, &t);
    ck_assert_ptr_null(t);
    return st;
}

START_TEST(context_create_backends)
{
    lgd_context *ctx = NULL;
    const char *err = NULL;
    /* NULL options: the CPU */
    ck_assert_int_eq(lgd_context_create(NULL, &ctx, &err), LGD_OK);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(lgd_context_backend(ctx), LGD_BACKEND_CPU);
    ck_assert(strstr(lgd_context_backend_name(ctx), "cpu") != NULL);
    ck_assert_str_eq(lgd_context_last_error(ctx), "");
    ck_assert_int_eq(lgd_context_synchronize(ctx), LGD_OK);
    lgd_context_destroy(ctx);

    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.backend = LGD_BACKEND_CPU;
    o.num_threads = 2;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_OK);
    ck_assert_int_eq(lgd_context_backend(ctx), LGD_BACKEND_CPU);
#ifdef _OPENMP
    ck_assert_msg(strstr(lgd_context_backend_name(ctx), "2 threads") != NULL, "name %s",
                  lgd_context_backend_name(ctx));
#endif
    lgd_context_destroy(ctx);

    /* CUDA: no device and no module here, so a clear failure and no context */
    o.backend = LGD_BACKEND_CUDA;
    ctx = (lgd_context *)&o; /* must be overwritten */
    err = NULL;
    lgd_status st = lgd_context_create(&o, &ctx, &err);
    int cuda_ok = st == LGD_OK;
    if (cuda_ok) { /* only on a machine with a GPU and liblgd-cuda installed */
        ck_assert_int_eq(lgd_context_backend(ctx), LGD_BACKEND_CUDA);
        lgd_context_destroy(ctx);
    } else {
        ck_assert_int_eq(st, LGD_ERR_BACKEND_UNAVAILABLE);
        ck_assert_ptr_null(ctx);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(err[0] != '\0', "CUDA failure without a message");
        ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_ERR_BACKEND_UNAVAILABLE);
        ck_assert_ptr_null(ctx);
    }

    /* an explicit module path that does not exist: unavailable, for CUDA and AUTO alike */
    lgd_context_options om = LGD_CONTEXT_OPTIONS_INIT;
    om.backend = LGD_BACKEND_CUDA;
    om.cuda_module_path = "/nonexistent/liblgd-cuda.so.0";
    err = NULL;
    ctx = (lgd_context *)&om;
    ck_assert_int_eq(lgd_context_create(&om, &ctx, &err), LGD_ERR_BACKEND_UNAVAILABLE);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(err && err[0], "no message for a missing module");
    /* the loader's precise reason reaches the caller (it names the path) */
    ck_assert_msg(strstr(err, "/nonexistent/liblgd-cuda.so.0") != NULL, "%s", err);
    om.backend = LGD_BACKEND_AUTO;
    ck_assert_int_eq(lgd_context_create(&om, &ctx, &err), LGD_OK);
    ck_assert_int_eq(lgd_context_backend(ctx), LGD_BACKEND_CPU);
    ck_assert_ptr_null(lgd_context_native_stream(ctx)); /* no stream on the CPU */
    lgd_context_destroy(ctx);
    ck_assert_ptr_null(lgd_context_native_stream(NULL));

    /* AUTO: falls back to the CPU when CUDA cannot be used */
    o.backend = LGD_BACKEND_AUTO;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_OK);
    ck_assert_int_eq(lgd_context_backend(ctx), cuda_ok ? LGD_BACKEND_CUDA : LGD_BACKEND_CPU);
    ck_assert_str_eq(lgd_context_last_error(ctx), "");
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(context_bad_options)
{
    lgd_context *ctx = NULL;
    const char *err = NULL;
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;

    static const int bad_backends[] = { 3, 7, -1, 1000 };
    for (int i = 0; i < 4; i++) {
        o.backend = (lgd_backend_kind)bad_backends[i];
        err = NULL;
        ctx = (lgd_context *)&o;
        ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(ctx);
        ck_assert_msg(err && err[0], "no message for backend %d", bad_backends[i]);
    }
    o.backend = LGD_BACKEND_CPU;

    static const uint32_t bad_sizes[] = { 0, 1, 3 };
    for (int i = 0; i < 3; i++) {
        o.struct_size = bad_sizes[i];
        err = NULL;
        ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(ctx);
        ck_assert_msg(err && err[0], "no message for struct_size %u", bad_sizes[i]);
    }
    o.struct_size = sizeof o;

    o.num_threads = -1;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_ERR_INVALID_ARGUMENT);
    ck_assert(err && err[0]);
    o.num_threads = 0;
    o.device_index = -2;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_ERR_INVALID_ARGUMENT);
    o.device_index = 0;

    err = NULL;
    ck_assert_int_eq(lgd_context_create(&o, NULL, &err), LGD_ERR_INVALID_ARGUMENT);
    ck_assert(err && err[0]);
    ck_assert_int_eq(lgd_context_create(&o, NULL, NULL), LGD_ERR_INVALID_ARGUMENT);

    /* NULL context everywhere is harmless */
    lgd_context_destroy(NULL);
    lgd_context_clear_error(NULL);
    lgd_context_reset_peak_memory(NULL);
    ck_assert_ptr_nonnull(lgd_context_last_error(NULL));
    ck_assert_ptr_nonnull(lgd_context_backend_name(NULL));
    ck_assert_int_eq(lgd_context_synchronize(NULL), LGD_ERR_INVALID_ARGUMENT);
    size_t cur = 1, peak = 1;
    lgd_context_memory_usage(NULL, &cur, &peak);
    ck_assert(cur == 0 && peak == 0);
}
END_TEST

START_TEST(context_struct_size)
{
    lgd_context *ctx = NULL;
    const char *err = NULL;

    /* a caller built against the first published layout (0.1.0, which ended before
     * cuda_module_path): the rest are defaults, and nothing past it is read */
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.struct_size = (uint32_t)offsetof(lgd_context_options, cuda_module_path);
    o.cuda_module_path = (const char *)(uintptr_t)1; /* beyond struct_size: not read */
    o.backend = LGD_BACKEND_CPU;
    o.num_threads = 3;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_OK);
#ifdef _OPENMP
    ck_assert_msg(strstr(lgd_context_backend_name(ctx), "3 threads") != NULL, "name %s",
                  lgd_context_backend_name(ctx));
#endif
    lgd_context_destroy(ctx);

    /* smaller than the first published layout: refused, with a reason */
    o.struct_size = sizeof(uint32_t);
    o.backend = LGD_BACKEND_CUDA;
    err = NULL;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &err), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(err && strstr(err, "smaller"), "%s", err ? err : "(null)");

    /* the first released layout ended before cuda_module_path */
    lgd_context_options o1 = LGD_CONTEXT_OPTIONS_INIT;
    o1.struct_size = (uint32_t)offsetof(lgd_context_options, cuda_module_path);
    o1.backend = LGD_BACKEND_AUTO;
    o1.cuda_module_path = (const char *)(uintptr_t)1; /* beyond struct_size: not read */
    ck_assert_int_eq(lgd_context_create(&o1, &ctx, &err), LGD_OK);
    lgd_context_destroy(ctx);

    /* a caller built against a newer, larger struct: accepted when the fields this
     * library does not know are zero (init zeroes them), refused otherwise */
    struct {
        lgd_context_options o;
        uint64_t future[4];
    } big;
    memset(&big, 0xA5, sizeof big);
    ck_assert_int_eq(lgd_context_options_init(&big.o, (uint32_t)sizeof big), LGD_OK);
    ck_assert_uint_eq(big.o.struct_size, sizeof big);
    ck_assert(big.future[0] == 0 && big.future[3] == 0);
    ck_assert_int_eq(lgd_context_create(&big.o, &ctx, &err), LGD_OK);
    ck_assert_int_eq(lgd_context_backend(ctx), LGD_BACKEND_CPU);
    lgd_context_destroy(ctx);
    big.future[2] = 1;
    err = NULL;
    ck_assert_int_eq(lgd_context_create(&big.o, &ctx, &err), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(err && strstr(err, "newer"), "%s", err ? err : "(null)");

    /* init never writes past the caller's size: an older, smaller struct */
    unsigned char older[sizeof(lgd_context_options) + 8];
    size_t old_size = offsetof(lgd_context_options, cuda_module_path);
    memset(older, 0xEE, sizeof older);
    ck_assert_int_eq(lgd_context_options_init((lgd_context_options *)(void *)older,
                                              (uint32_t)old_size),
                     LGD_OK);
    for (size_t i = old_size; i < sizeof older; i++)
        ck_assert_msg(older[i] == 0xEE, "byte %zu past the caller's struct was written", i);
    ck_assert_int_eq(lgd_context_options_init((lgd_context_options *)(void *)older, 4),
                     LGD_ERR_INVALID_ARGUMENT);

    /* the init function agrees with the macro */
    lgd_context_options a = LGD_CONTEXT_OPTIONS_INIT, b;
    memset(&b, 0x5A, sizeof b);
    ck_assert_int_eq(lgd_context_options_init(&b, sizeof b), LGD_OK);
    ck_assert_uint_eq(b.struct_size, sizeof(lgd_context_options));
    ck_assert_uint_eq(a.struct_size, b.struct_size);
    ck_assert_int_eq(a.backend, b.backend);
    ck_assert_int_eq(b.backend, LGD_BACKEND_CPU);
    ck_assert_int_eq(a.device_index, b.device_index);
    ck_assert_int_eq(a.num_threads, b.num_threads);
    ck_assert(a.log == NULL && b.log == NULL && b.log_user == NULL);
    ck_assert_int_eq(b.log_level, LGD_LOG_WARNING);
    ck_assert(a.cuda_module_path == NULL && b.cuda_module_path == NULL);
    ck_assert_int_eq(lgd_context_options_init(NULL, sizeof b), LGD_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(context_log_and_errors)
{
    log_rec rec;
    memset(&rec, 0, sizeof rec);
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.log = log_collect;
    o.log_user = &rec;
    o.log_level = LGD_LOG_ERROR;
    lgd_context *ctx = NULL;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_OK);
    ck_assert_int_eq(rec.n, 0);
    ck_assert_str_eq(lgd_context_last_error(ctx), "");

    ck_assert_int_eq(provoke_error(ctx), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rec.n_error, 1);
    ck_assert_int_eq(rec.last_level, LGD_LOG_ERROR);
    ck_assert(rec.last[0] != '\0');
    ck_assert_str_eq(rec.last, lgd_context_last_error(ctx));
    ck_assert(strstr(lgd_context_last_error(ctx), "ndim") != NULL);

    lgd_context_clear_error(ctx);
    ck_assert_str_eq(lgd_context_last_error(ctx), "");
    /* a successful call does not invent an error */
    lgd_tensor *t = NULL;
    ck_assert_int_eq(lgd_tensor_create_2d(ctx, 2, 3, &t), LGD_OK);
    ck_assert_str_eq(lgd_context_last_error(ctx), "");
    ck_assert_int_eq(lgd_tensor_upload(t, NULL, 6), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rec.n_error, 2);
    ck_assert(strstr(lgd_context_last_error(ctx), "host") != NULL);
    lgd_tensor_destroy(t);
    lgd_context_destroy(ctx);

    /* AUTO falling back to the CPU says so at INFO level, and only when asked */
    o.backend = LGD_BACKEND_AUTO;
    o.log_level = LGD_LOG_INFO;
    memset(&rec, 0, sizeof rec);
    ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_OK);
    if (lgd_context_backend(ctx) == LGD_BACKEND_CPU) {
        ck_assert_int_eq(rec.n_info, 1);
        ck_assert_msg(strstr(rec.last_info, "CPU") != NULL, "info: %s", rec.last_info);
    }
    ck_assert_int_eq(rec.n_error, 0);
    lgd_context_destroy(ctx);
    o.log_level = LGD_LOG_WARNING;
    memset(&rec, 0, sizeof rec);
    ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_OK);
    ck_assert_int_eq(rec.n_info, 0);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(context_memory_usage)
{
    lgd_context *ctx = tu_context(1);
    size_t cur0 = 99, peak0 = 99, cur, peak;
    lgd_context_memory_usage(ctx, &cur0, &peak0);
    ck_assert_uint_eq(cur0, 0);
    ck_assert_uint_eq(peak0, 0);
    lgd_tensor *a = tu_tensor(ctx, 10, 100, NULL);
    lgd_context_memory_usage(ctx, &cur, &peak);
    ck_assert_uint_ge(cur, cur0 + 1000 * sizeof(float));
    ck_assert_uint_ge(peak, cur);
    lgd_tensor *b = tu_tensor(ctx, 5, 100, NULL);
    size_t cur2, peak2;
    lgd_context_memory_usage(ctx, &cur2, &peak2);
    ck_assert_uint_eq(cur2, cur + 500 * sizeof(float));
    ck_assert_uint_eq(peak2, cur2);
    lgd_tensor_destroy(a);
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, cur2 - 1000 * sizeof(float));
    lgd_context_memory_usage(ctx, NULL, &peak);
    ck_assert_uint_eq(peak, peak2); /* the peak remains */
    lgd_context_reset_peak_memory(ctx);
    lgd_context_memory_usage(ctx, &cur, &peak);
    ck_assert_uint_eq(peak, cur);
    lgd_tensor_destroy(b);
    lgd_context_memory_usage(ctx, &cur, &peak);
    ck_assert_uint_eq(cur, cur0);
    ck_assert_uint_eq(peak, 500 * sizeof(float));
    lgd_context_memory_usage(ctx, NULL, NULL);

    /* internal buffers are accounted the same way */
    lgd_buffer buf = { NULL, 0 };
    ck_assert_int_eq(lgd_buffer_reserve(ctx, &buf, 10, "test"), LGD_OK);
    float *p = buf.data;
    ck_assert_int_eq(lgd_buffer_reserve(ctx, &buf, 5, "test"), LGD_OK);
    ck_assert_ptr_eq(buf.data, p); /* large enough: kept */
    ck_assert_int_eq(lgd_buffer_reserve(ctx, &buf, 20, "test"), LGD_OK);
    ck_assert_uint_ge(buf.count, 20);
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, buf.count * sizeof(float));
    lgd_buffer_release(ctx, &buf);
    ck_assert_ptr_null(buf.data);
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, 0);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(context_version_status)
{
    ck_assert_uint_eq(lgd_version(), LGD_VERSION_NUMBER);
    ck_assert_uint_eq(LGD_VERSION_NUMBER,
                      LGD_VERSION_MAJOR * 10000 + LGD_VERSION_MINOR * 100 + LGD_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", LGD_VERSION_MAJOR, LGD_VERSION_MINOR,
             LGD_VERSION_PATCH);
    ck_assert_ptr_nonnull(lgd_version_string());
    ck_assert_str_eq(lgd_version_string(), want);
    /* the headers agree with meson's project version */
    ck_assert_str_eq(LGD_VERSION_STRING, want);

    static const lgd_status all[] = {
        LGD_OK,           LGD_ERR_INVALID_ARGUMENT, LGD_ERR_OUT_OF_MEMORY,
        LGD_ERR_SHAPE_MISMATCH, LGD_ERR_NON_FINITE, LGD_ERR_CALLBACK,
        LGD_ERR_UNSUPPORTED, LGD_ERR_BACKEND_UNAVAILABLE, LGD_ERR_ABORTED,
        LGD_ERR_STATE,    LGD_ERR_IO,               LGD_ERR_FORMAT,
        LGD_ERR_INTERNAL,
    };
    const size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(all[i], -(int)i); /* stable numbering */
        const char *s = lgd_status_string(all[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_msg(s[0] != '\0', "empty string for %d", (int)all[i]);
        ck_assert_msg(strcmp(s, lgd_status_string((lgd_status)-999)) != 0,
                      "status %d has the unknown-status string", (int)all[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(s, lgd_status_string(all[j])) != 0, "%d and %d share '%s'",
                          (int)all[i], (int)all[j], s);
    }
    ck_assert_str_eq(lgd_status_string(LGD_OK), "ok");
    const char *unk = lgd_status_string((lgd_status)-13);
    ck_assert_ptr_nonnull(unk);
    ck_assert(unk[0] != '\0');
    ck_assert_ptr_nonnull(lgd_status_string((lgd_status)1));
}
END_TEST

/* ------------------------------------------------------------------ tensors */

START_TEST(tensor_basics)
{
    lgd_context *ctx = tu_context(1);
    for (int nd = 1; nd <= 4; nd++) {
        int64_t shape[4] = { 3, 2, 4, 5 };
        lgd_tensor *t = NULL;
        TU_OK(ctx, lgd_tensor_create(ctx, nd, shape, &t));
        ck_assert_int_eq(lgd_tensor_ndim(t), nd);
        int64_t numel = 1;
        for (int i = 0; i < nd; i++) {
            ck_assert_int_eq(lgd_tensor_dim(t, i), shape[i]);
            numel *= shape[i];
        }
        ck_assert_int_eq(lgd_tensor_dim(t, nd), 0);
        ck_assert_int_eq(lgd_tensor_dim(t, -1), 0);
        ck_assert_int_eq(lgd_tensor_numel(t), numel);
        float *h = tu_download(t);
        for (int64_t i = 0; i < numel; i++)
            ck_assert(h[i] == 0.0f); /* zero-filled */
        free(h);
        lgd_tensor_destroy(t);
    }
    ck_assert_int_eq(lgd_tensor_ndim(NULL), 0);
    ck_assert_int_eq(lgd_tensor_dim(NULL, 0), 0);
    ck_assert_int_eq(lgd_tensor_numel(NULL), 0);
    ck_assert_ptr_null(lgd_tensor_data(NULL));
    lgd_tensor_destroy(NULL);

    /* upload / download / copy / fill / data */
    float host[12], back[12];
    for (int i = 0; i < 12; i++)
        host[i] = (float)i * 1.5f - 4.0f;
    lgd_tensor *a = NULL, *b = NULL, *c = NULL;
    TU_OK(ctx, lgd_tensor_create_2d(ctx, 3, 4, &a));
    ck_assert_int_eq(lgd_tensor_ndim(a), 2);
    ck_assert_int_eq(lgd_tensor_dim(a, 0), 3);
    ck_assert_int_eq(lgd_tensor_dim(a, 1), 4);
    TU_OK(ctx, lgd_tensor_upload(a, host, 12));
    TU_OK(ctx, lgd_tensor_download(a, back, 12));
    check_bytes_eq("upload/download", host, back, sizeof host);
    ck_assert_ptr_nonnull(lgd_tensor_data(a));
    check_bytes_eq("data pointer", host, lgd_tensor_data(a), sizeof host); /* CPU: host memory */
    int64_t s3[3] = { 2, 3, 2 };
    TU_OK(ctx, lgd_tensor_create(ctx, 3, s3, &b)); /* same numel, other shape */
    TU_OK(ctx, lgd_tensor_copy(b, a));
    TU_OK(ctx, lgd_tensor_download(b, back, 12));
    check_bytes_eq("copy", host, back, sizeof host);
    TU_OK(ctx, lgd_tensor_fill(b, -2.25f));
    TU_OK(ctx, lgd_tensor_download(b, back, 12));
    for (int i = 0; i < 12; i++)
        ck_assert(back[i] == -2.25f);
    TU_OK(ctx, lgd_tensor_download(a, back, 12)); /* a is unaffected */
    check_bytes_eq("copy is deep", host, back, sizeof host);
    TU_OK(ctx, lgd_tensor_copy(a, a)); /* self copy */
    TU_OK(ctx, lgd_tensor_download(a, back, 12));
    check_bytes_eq("self copy", host, back, sizeof host);

    /* internal helpers used by the other objects */
    int64_t batch = 0;
    TU_OK(ctx, lgd_tensor_as_rows(ctx, a, "x", 4, &batch));
    ck_assert_int_eq(batch, 3);
    int64_t s31[3] = { 3, 1, 4 };
    TU_OK(ctx, lgd_tensor_create(ctx, 3, s31, &c));
    TU_OK(ctx, lgd_tensor_as_rows(ctx, c, "x", 4, &batch));
    ck_assert_int_eq(batch, 3);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_as_rows(ctx, a, "x", 3, &batch));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_as_rows(ctx, b, "x", 2, &batch));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_as_rows(ctx, NULL, "x", 4, &batch));
    TU_OK(ctx, lgd_check_tensor(ctx, a, "a"));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_check_tensor(ctx, NULL, "a"));
    ck_assert(strstr(lgd_context_last_error(ctx), "a is NULL") != NULL);
    lgd_tensor_destroy(a);
    lgd_tensor_destroy(b);
    lgd_tensor_destroy(c);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(tensor_bad_input)
{
    lgd_context *ctx = tu_context(1);
    lgd_tensor *t = (lgd_tensor *)&ctx;
    int64_t shape[5] = { 2, 3, 4, 5, 6 };

    ck_assert_int_eq(lgd_tensor_create(NULL, 2, shape, &t), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, 2, shape, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, 0, shape, &t));
    ck_assert_ptr_null(t);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, 5, shape, &t));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, -1, shape, &t));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, 2, NULL, &t));
    int64_t zero[2] = { 2, 0 }, neg[3] = { 4, -3, 2 };
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, 2, zero, &t));
    ck_assert(strstr(lgd_context_last_error(ctx), "shape[1]") != NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, 3, neg, &t));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create_2d(ctx, 0, 3, &t));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create_2d(ctx, 3, -1, &t));
    ck_assert_ptr_null(t);
    /* too large for the address space, and overflowing int64 */
    int64_t huge[2] = { (int64_t)1 << 25, (int64_t)1 << 25 };
    TU_FAILS(ctx, LGD_ERR_OUT_OF_MEMORY, lgd_tensor_create(ctx, 2, huge, &t));
    int64_t ovf[3] = { INT64_MAX / 2, 3, 5 };
    TU_FAILS(ctx, LGD_ERR_OUT_OF_MEMORY, lgd_tensor_create(ctx, 3, ovf, &t));
    ck_assert_ptr_null(t);
    size_t cur;
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, 0); /* failures hold nothing */

    float host[6] = { 1, 2, 3, 4, 5, 6 }, back[7];
    lgd_tensor *a = tu_tensor(ctx, 2, 3, host), *b = tu_tensor(ctx, 3, 3, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_upload(a, NULL, 6));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_upload(a, back, 5));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_upload(a, back, 7));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_download(a, NULL, 6));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_download(a, back, 7));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_download(a, back, 0));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_copy(b, a));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_copy(a, NULL));
    ck_assert_int_eq(lgd_tensor_copy(NULL, a), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_tensor_upload(NULL, host, 6), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_tensor_download(NULL, back, 6), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_tensor_fill(NULL, 1.0f), LGD_ERR_INVALID_ARGUMENT);
    /* the failures left a usable and unchanged */
    TU_OK(ctx, lgd_tensor_download(a, back, 6));
    check_bytes_eq("after failures", host, back, sizeof host);

    /* tensors of another context */
    lgd_context *ctx2 = tu_context(1);
    lgd_tensor *o = tu_tensor(ctx2, 2, 3, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_copy(a, o));
    ck_assert(strstr(lgd_context_last_error(ctx), "context") != NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_check_tensor(ctx, o, "o"));
    ck_assert_str_eq(lgd_context_last_error(ctx2), "");
    lgd_tensor_destroy(o);
    lgd_context_destroy(ctx2);

    lgd_tensor_destroy(a);
    lgd_tensor_destroy(b);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(tensor_outlives_context)
{
    lgd_context *ctx = tu_context(1);
    float host[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, back[8];
    lgd_tensor *a = tu_tensor(ctx, 2, 4, host), *b = tu_tensor(ctx, 4, 2, NULL);
    lgd_context_destroy(ctx); /* the tensors keep it alive */
    ck_assert_int_eq(lgd_tensor_copy(b, a), LGD_OK);
    ck_assert_int_eq(lgd_tensor_download(b, back, 8), LGD_OK);
    check_bytes_eq("after context destroy", host, back, sizeof host);
    ck_assert_int_eq(lgd_tensor_fill(a, 3.0f), LGD_OK);
    ck_assert_int_eq(lgd_tensor_upload(a, NULL, 8), LGD_ERR_INVALID_ARGUMENT);
    lgd_tensor_destroy(a);
    ck_assert_int_eq(lgd_tensor_download(b, back, 8), LGD_OK);
    lgd_tensor_destroy(b); /* the last reference frees the context (valgrind checks) */
}
END_TEST

/* ------------------------------------------------------------------ handles (issue 11) */

#ifndef LGD_FIXTURE_DIR
#error "LGD_FIXTURE_DIR must name tests/fixtures/nn"
#endif

#define H_DIM 3
#define H_BATCH 5

/* The objects of one small guided problem: a 2-component mixture, a squared error, LGD-MC
 * and DDIM (stochastic, so every random stream is used). */
typedef struct handles {
    lgd_model *m;
    lgd_loss *l;
    lgd_guidance *g;
    lgd_sampler *s;
} handles;

static handles handles_make(lgd_context *ctx)
{
    static const float w[2] = { 0.4f, 0.6f };
    static const float mu[2 * H_DIM] = { -1.0f, 0.5f, 0.0f, 1.0f, -0.5f, 0.25f };
    static const float var[2] = { 0.3f, 0.5f };
    static const float target[H_DIM] = { 0.5f, 0.5f, -0.5f };
    handles h = { NULL, NULL, NULL, NULL };
    TU_OK(ctx, lgd_model_create_gmm(ctx, H_DIM, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC, &h.m));
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, H_DIM, target, 1, NULL, &h.l));
    TU_OK(ctx, lgd_guidance_mc(ctx, h.m, h.l, 8, &h.g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.eta = 1.0f;
    so.steps = 6;
    TU_OK(ctx, lgd_sampler_create(h.g, &so, &h.s));
    return h;
}

static void handles_free(handles *h)
{
    lgd_sampler_destroy(h->s);
    lgd_guidance_destroy(h->g);
    lgd_loss_destroy(h->l);
    lgd_model_destroy(h->m);
}

static lgd_network *load_mlp(lgd_context *ctx)
{
    lgd_network *net = NULL;
    TU_OK(ctx, lgd_network_load(ctx, LGD_FIXTURE_DIR "/mlp.safetensors", &net));
    return net;
}

/* Every handle: retain returns its argument (NULL for NULL), each reference is dropped by
 * one destroy, the object stays usable until the last, and the last frees its memory. */
START_TEST(handles_retain_release)
{
    lgd_context *ctx = tu_context(1);
    ck_assert_ptr_eq(lgd_context_retain(ctx), ctx);
    lgd_context_destroy(ctx); /* one of the two references */
    ck_assert_ptr_null(lgd_context_retain(NULL));
    ck_assert_ptr_null(lgd_tensor_retain(NULL));
    ck_assert_ptr_null(lgd_model_retain(NULL));
    ck_assert_ptr_null(lgd_loss_retain(NULL));
    ck_assert_ptr_null(lgd_guidance_retain(NULL));
    ck_assert_ptr_null(lgd_sampler_retain(NULL));
    ck_assert_ptr_null(lgd_network_retain(NULL));

    size_t cur0, cur;
    lgd_context_memory_usage(ctx, &cur0, NULL);
    lgd_tensor *t = tu_tensor(ctx, 4, 8, NULL);
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, cur0 + 32 * sizeof(float));
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(lgd_tensor_retain(t), t);
    for (int i = 0; i < 3; i++) {
        lgd_tensor_destroy(t);
        TU_OK(ctx, lgd_tensor_fill(t, (float)i)); /* still alive */
        lgd_context_memory_usage(ctx, &cur, NULL);
        ck_assert_uint_eq(cur, cur0 + 32 * sizeof(float));
    }
    lgd_tensor_destroy(t); /* the last reference */
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, cur0);

    /* the objects: an extra reference each, dropped before the caller's own; the
     * sampler still runs after the first drops */
    handles h = handles_make(ctx);
    lgd_network *net = load_mlp(ctx);
    ck_assert_ptr_eq(lgd_model_retain(h.m), h.m);
    ck_assert_ptr_eq(lgd_loss_retain(h.l), h.l);
    ck_assert_ptr_eq(lgd_guidance_retain(h.g), h.g);
    ck_assert_ptr_eq(lgd_sampler_retain(h.s), h.s);
    ck_assert_ptr_eq(lgd_network_retain(net), net);
    lgd_sampler_destroy(h.s);
    lgd_guidance_destroy(h.g);
    lgd_loss_destroy(h.l);
    lgd_model_destroy(h.m);
    lgd_network_destroy(net);
    lgd_tensor *x = tu_tensor(ctx, H_BATCH, H_DIM, NULL);
    TU_OK(ctx, lgd_sampler_run(h.s, x, 7, 0, NULL, NULL));
    ck_assert_int_eq(lgd_network_dim(net) > 0, 1);
    lgd_tensor_destroy(x);
    handles_free(&h);
    lgd_network_destroy(net);
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, 0); /* the last references freed everything */
    lgd_context_destroy(ctx);  /* the last reference (valgrind checks) */
}
END_TEST

/* lgd_X_context: the context each object was made from; NULL for NULL. */
START_TEST(handles_context_getters)
{
    lgd_context *ctx = tu_context(1), *other = tu_context(1);
    handles h = handles_make(ctx);
    lgd_network *net = load_mlp(ctx);
    lgd_tensor *t = tu_tensor(ctx, 2, 2, NULL), *u = tu_tensor(other, 2, 2, NULL);
    ck_assert_ptr_eq(lgd_tensor_context(t), ctx);
    ck_assert_ptr_eq(lgd_tensor_context(u), other);
    ck_assert_ptr_eq(lgd_model_context(h.m), ctx);
    ck_assert_ptr_eq(lgd_loss_context(h.l), ctx);
    ck_assert_ptr_eq(lgd_guidance_context(h.g), ctx);
    ck_assert_ptr_eq(lgd_sampler_context(h.s), ctx);
    ck_assert_ptr_eq(lgd_network_context(net), ctx);
    ck_assert_ptr_null(lgd_tensor_context(NULL));
    ck_assert_ptr_null(lgd_model_context(NULL));
    ck_assert_ptr_null(lgd_loss_context(NULL));
    ck_assert_ptr_null(lgd_guidance_context(NULL));
    ck_assert_ptr_null(lgd_sampler_context(NULL));
    ck_assert_ptr_null(lgd_network_context(NULL));
    /* what a binding does after a failed call on an object: read its context's error */
    ck_assert_int_eq(lgd_tensor_copy(t, u), LGD_ERR_INVALID_ARGUMENT);
    ck_assert(strstr(lgd_context_last_error(lgd_tensor_context(t)), "context") != NULL);
    /* the getter's pointer is valid while the object is, after the caller's own
     * context reference is gone */
    lgd_context_destroy(ctx);
    ck_assert_str_eq(lgd_context_backend_name(lgd_tensor_context(t)),
                     lgd_context_backend_name(other));
    lgd_tensor_destroy(t);
    lgd_tensor_destroy(u);
    lgd_network_destroy(net);
    handles_free(&h);
    lgd_context_destroy(other);
}
END_TEST

START_TEST(tensor_int_boundary)
{
    lgd_context *ctx = tu_context(1);
    int64_t shape[3] = { 2, 3, 4 };
    lgd_tensor *t = NULL;
    TU_OK(ctx, lgd_tensor_create(ctx, (int32_t)3, shape, &t));
    int32_t nd = lgd_tensor_ndim(t);
    ck_assert_int_eq(nd, 3);
    ck_assert_int_eq(lgd_tensor_dim(t, (int32_t)2), 4);
    ck_assert_int_eq(lgd_tensor_dim(t, INT32_MAX), 0);
    ck_assert_int_eq(lgd_tensor_dim(t, INT32_MIN), 0);
    float host[24] = { 0 };
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_upload(t, host, -1));
    ck_assert(strstr(lgd_context_last_error(ctx), "negative") != NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_download(t, host, INT64_MIN));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_upload(t, host, INT64_MAX));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_tensor_download(t, host, 23));
    TU_OK(ctx, lgd_tensor_upload(t, host, (int64_t)24));
    lgd_tensor_destroy(t);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_tensor_create(ctx, INT32_MIN, shape, &t));
    ck_assert_ptr_null(t);
    lgd_context_destroy(ctx);
}
END_TEST

/* A wrapped tensor's release callback: counts its calls. */
typedef struct release_count {
    int calls;
} release_count;

static void count_release(void *user)
{
    release_count *rc = user;
    rc->calls++;
}

START_TEST(tensor_wrap_basics)
{
    lgd_context *ctx = tu_context(1);
    float mem[2 * 3 + 1];
    for (int i = 0; i < 7; i++)
        mem[i] = (float)i - 2.5f;
    int64_t shape[2] = { 2, 3 };
    release_count rc = { 0 };
    size_t cur0, cur;
    lgd_context_memory_usage(ctx, &cur0, NULL);
    lgd_tensor *t = NULL;
    /* both memory kinds are host memory on the CPU; a pointer aligned to a float only */
    for (int kind = 0; kind < 2; kind++) {
        lgd_memory memory = kind ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST;
        float *data = mem + 1;
        TU_OK(ctx, lgd_tensor_wrap(ctx, memory, 2, shape, data, count_release, &rc, &t));
        ck_assert_ptr_eq(lgd_tensor_data(t), data); /* zero-copy */
        ck_assert_ptr_eq(lgd_tensor_context(t), ctx);
        ck_assert_int_eq(lgd_tensor_ndim(t), 2);
        ck_assert_int_eq(lgd_tensor_dim(t, 1), 3);
        ck_assert_int_eq(lgd_tensor_numel(t), 6);
        lgd_context_memory_usage(ctx, &cur, NULL);
        ck_assert_uint_eq(cur, cur0); /* the caller's memory is not counted */
        float back[6];
        TU_OK(ctx, lgd_tensor_download(t, back, 6));
        check_bytes_eq("wrapped download", data, back, sizeof back);
        TU_OK(ctx, lgd_tensor_fill(t, 4.0f)); /* writes go to the caller's memory */
        for (int i = 0; i < 6; i++)
            ck_assert(data[i] == 4.0f);
        ck_assert(mem[0] == -2.5f); /* nothing outside */
        float up[6] = { 1, 2, 3, 4, 5, 6 };
        TU_OK(ctx, lgd_tensor_upload(t, up, 6));
        check_bytes_eq("wrapped upload", up, data, sizeof up);
        lgd_tensor *c = tu_tensor(ctx, 2, 3, NULL);
        TU_OK(ctx, lgd_tensor_copy(c, t));
        TU_OK(ctx, lgd_tensor_fill(c, -1.0f));
        TU_OK(ctx, lgd_tensor_copy(t, c));
        ck_assert(data[5] == -1.0f);
        lgd_tensor_destroy(c);
        /* release runs once, at the last reference */
        ck_assert_ptr_eq(lgd_tensor_retain(t), t);
        lgd_tensor_destroy(t);
        ck_assert_int_eq(rc.calls, kind);
        lgd_tensor_destroy(t);
        ck_assert_int_eq(rc.calls, kind + 1);
    }
    /* no release callback: nothing is called, nothing freed */
    TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, mem, NULL, NULL, &t));
    lgd_tensor_destroy(t);

    /* failures: *out NULL, a message, release not called */
    rc.calls = 0;
    lgd_tensor *bad = (lgd_tensor *)&rc;
    ck_assert_int_eq(lgd_tensor_wrap(NULL, LGD_MEMORY_HOST, 2, shape, mem, count_release, &rc,
                                     &bad),
                     LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, mem, count_release, &rc, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, NULL, count_release, &rc, &bad));
    ck_assert_ptr_null(bad);
    ck_assert(strstr(lgd_context_last_error(ctx), "data") != NULL);
    unsigned char *bytes = (unsigned char *)mem;
    void *odd = bytes + 2;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, odd, count_release, &rc, &bad));
    ck_assert(strstr(lgd_context_last_error(ctx), "aligned") != NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 0, shape, mem, count_release, &rc, &bad));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 5, shape, mem, count_release, &rc, &bad));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, NULL, mem, count_release, &rc, &bad));
    int64_t zero[2] = { 2, 0 }, huge[2] = { INT64_MAX / 2, 3 };
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, zero, mem, count_release, &rc, &bad));
    TU_FAILS(ctx, LGD_ERR_OUT_OF_MEMORY,
             lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, huge, mem, count_release, &rc, &bad));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_tensor_wrap(ctx, (lgd_memory)7, 2, shape, mem, count_release, &rc, &bad));
    ck_assert(strstr(lgd_context_last_error(ctx), "lgd_memory") != NULL);
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(rc.calls, 0);

    /* the tensor keeps the context alive, and runs release before freeing it */
    rc.calls = 0;
    TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, mem, count_release, &rc, &t));
    lgd_context_destroy(ctx);
    ck_assert_int_eq(lgd_tensor_fill(t, 1.0f), LGD_OK);
    lgd_tensor_destroy(t);
    ck_assert_int_eq(rc.calls, 1);
}
END_TEST

/* A wrapped tensor works everywhere a tensor does: sampling in place into the caller's
 * array (at an address aligned to a float only) gives the bytes of a run on a created
 * tensor, and so do the model, loss and guidance on wrapped inputs and outputs. */
START_TEST(tensor_wrap_sampling)
{
    lgd_context *ctx = tu_context(1);
    handles h = handles_make(ctx);
    const size_t n = (size_t)H_BATCH * H_DIM;
    int64_t shape[2] = { H_BATCH, H_DIM };

    lgd_tensor *x = tu_tensor(ctx, H_BATCH, H_DIM, NULL);
    TU_OK(ctx, lgd_sampler_run(h.s, x, 11, 3, NULL, NULL));
    float *want = tu_download(x);

    float *arr = calloc(n + 1, sizeof *arr); /* +1: data at arr + 1, not 8-byte aligned */
    ck_assert_ptr_nonnull(arr);
    release_count rc = { 0 };
    lgd_tensor *xw = NULL;
    TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, arr + 1, count_release, &rc, &xw));
    TU_OK(ctx, lgd_sampler_run(h.s, xw, 11, 3, NULL, NULL));
    check_bytes_eq("sampled in place", want, arr + 1, n * sizeof(float));
    ck_assert(arr[0] == 0.0f);

    /* model, loss and guidance with every input and output wrapped */
    float *o1 = calloc(n, sizeof *o1), *o2 = calloc(n, sizeof *o2), *l1 = calloc(H_BATCH, 4);
    ck_assert(o1 && o2 && l1);
    lgd_tensor *ow = NULL, *gw = NULL, *lw = NULL;
    int64_t lshape[1] = { H_BATCH };
    TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 2, shape, o1, NULL, NULL, &ow));
    TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_DEVICE, 2, shape, o2, NULL, NULL, &gw));
    TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 1, lshape, l1, NULL, NULL, &lw));
    lgd_tensor *o = tu_tensor(ctx, H_BATCH, H_DIM, NULL), *g = tu_tensor(ctx, H_BATCH, H_DIM, NULL);
    lgd_tensor *lt = tu_tensor_nd(ctx, 1, lshape, NULL);
    float *ref;

    TU_OK(ctx, lgd_model_denoise(h.m, x, 0.7f, NULL, o));
    TU_OK(ctx, lgd_model_denoise(h.m, xw, 0.7f, NULL, ow));
    ref = tu_download(o);
    check_bytes_eq("denoise", ref, o1, n * sizeof(float));
    free(ref);
    TU_OK(ctx, lgd_model_vjp(h.m, x, 0.7f, NULL, o, g));
    TU_OK(ctx, lgd_model_vjp(h.m, xw, 0.7f, NULL, ow, gw));
    ref = tu_download(g);
    check_bytes_eq("vjp", ref, o2, n * sizeof(float));
    free(ref);
    TU_OK(ctx, lgd_loss_eval(h.l, x, lt, g));
    TU_OK(ctx, lgd_loss_eval(h.l, xw, lw, gw));
    ref = tu_download(lt);
    check_bytes_eq("loss", ref, l1, H_BATCH * sizeof(float));
    free(ref);
    ref = tu_download(g);
    check_bytes_eq("loss gradient", ref, o2, n * sizeof(float));
    free(ref);
    TU_OK(ctx, lgd_guidance_term(h.g, x, 2.0f, 1, 0, g, o, NULL));
    TU_OK(ctx, lgd_guidance_term(h.g, xw, 2.0f, 1, 0, gw, ow, NULL));
    ref = tu_download(g);
    check_bytes_eq("guidance term", ref, o2, n * sizeof(float));
    free(ref);
    ref = tu_download(o);
    check_bytes_eq("guidance xhat", ref, o1, n * sizeof(float));
    free(ref);

    lgd_tensor_destroy(o);
    lgd_tensor_destroy(g);
    lgd_tensor_destroy(lt);
    lgd_tensor_destroy(ow);
    lgd_tensor_destroy(gw);
    lgd_tensor_destroy(lw);
    lgd_tensor_destroy(xw);
    ck_assert_int_eq(rc.calls, 1);
    lgd_tensor_destroy(x);
    free(want);
    free(arr);
    free(o1);
    free(o2);
    free(l1);
    handles_free(&h);
    lgd_context_destroy(ctx);
}
END_TEST

/* Releases from another thread while the owner keeps working on the same context
 * (the thread contract, rule 3): a second thread drops references to tensors, to a
 * used guidance and sampler (whose last release frees backend scratch), to a network
 * and to the context while the owner samples, allocates and frees. The owner's samples
 * equal a run without the other thread, and the memory accounting returns to zero. */
#define REL_TENSORS 64

typedef struct releaser {
    lgd_tensor *tensors[REL_TENSORS];
    handles h;          /* used once by the owner, released here */
    handles extra;      /* extra references to the owner's own objects */
    lgd_network *net;
    lgd_context *ctx_refs[8];
    atomic_int go;
    release_count rc;   /* the wrapped tensors' release calls, made on this thread */
} releaser;

static void *releaser_main(void *arg)
{
    releaser *r = arg;
    while (!atomic_load(&r->go))
        sched_yield();
    for (int i = 0; i < REL_TENSORS; i++) {
        lgd_tensor_destroy(r->tensors[i]);
        if (i % 8 == 0)
            sched_yield();
        if (i == REL_TENSORS / 2) {
            handles_free(&r->h);
            handles_free(&r->extra);
            lgd_network_destroy(r->net);
        }
    }
    for (int i = 0; i < 8; i++)
        lgd_context_destroy(r->ctx_refs[i]);
    return NULL;
}

START_TEST(handles_release_from_another_thread)
{
    lgd_context *ctx = tu_context(1);
    handles own = handles_make(ctx);
    const size_t n = (size_t)H_BATCH * H_DIM;
    lgd_tensor *x = tu_tensor(ctx, H_BATCH, H_DIM, NULL);
    float *want[4];
    for (int k = 0; k < 4; k++) {
        TU_OK(ctx, lgd_sampler_run(own.s, x, 100 + (uint64_t)k, 0, NULL, NULL));
        want[k] = tu_download(x);
    }

    releaser *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    static float wrapped_mem[REL_TENSORS / 2][8];
    int64_t shape[1] = { 8 };
    for (int i = 0; i < REL_TENSORS; i++) {
        if (i % 2)
            TU_OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 1, shape, wrapped_mem[i / 2],
                                       count_release, &r->rc, &r->tensors[i]));
        else
            r->tensors[i] = tu_tensor(ctx, 16, 16 + i, NULL);
    }
    r->h = handles_make(ctx);
    lgd_tensor *y = tu_tensor(ctx, H_BATCH, H_DIM, NULL);
    TU_OK(ctx, lgd_sampler_run(r->h.s, y, 1, 0, NULL, NULL)); /* scratch allocated */
    lgd_tensor_destroy(y);
    r->extra.m = lgd_model_retain(own.m);
    r->extra.l = lgd_loss_retain(own.l);
    r->extra.g = lgd_guidance_retain(own.g);
    r->extra.s = lgd_sampler_retain(own.s);
    r->net = load_mlp(ctx);
    for (int i = 0; i < 8; i++)
        r->ctx_refs[i] = lgd_context_retain(ctx);
    atomic_init(&r->go, 0);

    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, releaser_main, r), 0);
    atomic_store(&r->go, 1);
    for (int k = 0; k < 4; k++) { /* the owner keeps working meanwhile */
        lgd_tensor *tmp = tu_tensor(ctx, 32, 32 + k, NULL);
        TU_OK(ctx, lgd_sampler_run(own.s, x, 100 + (uint64_t)k, 0, NULL, NULL));
        lgd_tensor_destroy(tmp);
        float *got = tu_download(x);
        check_bytes_eq("samples while another thread releases", want[k], got,
                       n * sizeof(float));
        free(got);
    }
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(r->rc.calls, REL_TENSORS / 2);

    lgd_tensor_destroy(x);
    handles_free(&own);
    size_t cur, peak;
    lgd_context_memory_usage(ctx, &cur, &peak);
    ck_assert_uint_eq(cur, 0);
    ck_assert_uint_gt(peak, 0);
    for (int k = 0; k < 4; k++)
        free(want[k]);
    free(r);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------------------ suite */

/* ------------------------------------------------------------------ the interface */

/* The core refuses a backend table of another ABI version or with a mandatory slot
 * missing, and names the problem; the CPU's table passes. */
START_TEST(backend_ops_check)
{
    cpu_be c = cpu_open(1);
    ck_assert_ptr_null(lgd_backend_ops_check(c.ops));
    ck_assert_ptr_nonnull(lgd_backend_ops_check(NULL));
    lgd_backend_ops t = *c.ops;
    t.abi_version = LGD_BACKEND_ABI_VERSION - 1;
    const char *why = lgd_backend_ops_check(&t);
    ck_assert_msg(why && strstr(why, "older"), "%s", why ? why : "(null)");
    t.abi_version = LGD_BACKEND_ABI_VERSION + 1;
    why = lgd_backend_ops_check(&t);
    ck_assert_msg(why && strstr(why, "newer"), "%s", why ? why : "(null)");
    t = *c.ops;
    t.normal_around = NULL;
    why = lgd_backend_ops_check(&t);
    ck_assert_msg(why && strstr(why, "'normal_around'"), "%s", why ? why : "(null)");
    t = *c.ops; /* optional slots may be NULL */
    t.native_stream = NULL;
    t.last_error = NULL;
    t.gemm_batched = NULL;
    t.kernels = NULL;
    ck_assert_ptr_null(lgd_backend_ops_check(&t));
    cpu_close(&c);
}
END_TEST

/* A backend other than the CPU is asked for a module's kernels by name and version;
 * without them the module fails with a message naming the table. */
static const lgd_gmm_kernels *fake_gmm_table;
static const void *fake_kernels(lgd_backend *be, const char *name, uint32_t version)
{
    (void)be;
    if (strcmp(name, "gmm") == 0 && version == LGD_GMM_KERNELS_VERSION)
        return fake_gmm_table;
    return NULL;
}

START_TEST(kernel_table_lookup)
{
    lgd_context *ctx = tu_context(1);
    const void *k = NULL;
    TU_OK(ctx, lgd_kernels_find(ctx, &lgd_gmm_kernel_table, "test", &k));
    ck_assert_ptr_eq(k, &lgd_gmm_kernels_cpu); /* the CPU's comes with the descriptor */
    TU_OK(ctx, lgd_kernels_find(ctx, &lgd_mc_kernel_table, "test", &k));
    ck_assert_ptr_eq(k, &lgd_mc_kernels_cpu);

    /* pose as another backend (the kind is what the lookup keys on) */
    const lgd_backend_ops *cpu_ops = ctx->ops;
    lgd_backend_ops other = *cpu_ops;
    other.kernels = NULL;
    ctx->ops = &other;
    ctx->kind = LGD_BACKEND_CUDA;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_kernels_find(ctx, &lgd_gmm_kernel_table, "test", &k));
    ck_assert_ptr_null(k);
    ck_assert_msg(strstr(lgd_context_last_error(ctx), "'gmm' kernels (version 1)") != NULL,
                  "%s", lgd_context_last_error(ctx));
    /* a model created there fails cleanly, naming its creator */
    const float w = 1.0f, mu = 0.0f, var = 1.0f;
    lgd_model *m = NULL;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED,
             lgd_model_create_gmm(ctx, 1, 1, &w, &mu, &var, LGD_COVARIANCE_ISOTROPIC, &m));
    ck_assert_ptr_null(m);
    ck_assert(strncmp(lgd_context_last_error(ctx), "lgd_model_create_gmm: ", 22) == 0);

    fake_gmm_table = &lgd_gmm_kernels_cpu;
    other.kernels = fake_kernels;
    TU_OK(ctx, lgd_kernels_find(ctx, &lgd_gmm_kernel_table, "test", &k));
    ck_assert_ptr_eq(k, &lgd_gmm_kernels_cpu);
    lgd_kernel_table newer = lgd_gmm_kernel_table;
    newer.version = LGD_GMM_KERNELS_VERSION + 1;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_kernels_find(ctx, &newer, "test", &k));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_kernels_find(ctx, &lgd_loss_kernel_table, "test", &k));

    ctx->ops = cpu_ops;
    ctx->kind = LGD_BACKEND_CPU;
    lgd_context_destroy(ctx);
}
END_TEST

/* A failed backend operation's message carries the backend's own reason. */
static const char *fake_last_error(lgd_backend *be)
{
    (void)be;
    return "cudaMemcpyAsync: cudaErrorIllegalAddress (an illegal memory access)";
}

START_TEST(backend_error_carries_the_reason)
{
    lgd_context *ctx = tu_context(1);
    const lgd_backend_ops *cpu_ops = ctx->ops;
    lgd_backend_ops other = *cpu_ops;
    other.last_error = fake_last_error;
    ctx->ops = &other;
    ck_assert_int_eq(lgd_backend_error(ctx, LGD_ERR_INTERNAL, "lgd_tensor_upload: copy failed"),
                     LGD_ERR_INTERNAL);
    ck_assert_str_eq(lgd_context_last_error(ctx),
                     "lgd_tensor_upload: copy failed: cudaMemcpyAsync: cudaErrorIllegalAddress "
                     "(an illegal memory access)");
    ctx->ops = cpu_ops; /* no reason: the message alone */
    lgd_backend_error(ctx, LGD_ERR_INTERNAL, "x %d", 3);
    ck_assert_str_eq(lgd_context_last_error(ctx), "x 3");
    lgd_context_destroy(ctx);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");

    TCase *tc = tcase_create("philox");
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, philox_maps);
    tcase_add_test(tc, branch_free_math);
    tcase_add_test(tc, normal_layout);
    tcase_add_test(tc, normal_moments);
    tcase_add_test(tc, uniform_moments);
    tcase_add_test(tc, normal_invariance);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend");
    tcase_add_test(tc, backend_memory);
    tcase_add_test(tc, backend_fill);
    tcase_add_test(tc, backend_axpby);
    tcase_add_test(tc, backend_axpby_rows);
    tcase_add_test(tc, backend_sub_row_broadcast);
    tcase_add_test(tc, backend_diag_filter);
    tcase_add_test(tc, backend_row_reductions);
    tcase_add_test(tc, backend_row_dot_strided_mix);
    tcase_add_test(tc, backend_softmax_logsumexp);
    tcase_add_test(tc, backend_all_finite);
    tcase_add_test(tc, backend_mc_draws);
    tcase_add_test(tc, backend_gemm);
    tcase_add_test(tc, backend_mc_reduction);
    tcase_add_test(tc, backend_mc_ess);
    tcase_add_test(tc, backend_categorical_select);
    tcase_add_test(tc, backend_loss_sqerr);
    tcase_add_test(tc, backend_loss_logistic);
    tcase_add_test(tc, backend_loss_residual);
    tcase_add_test(tc, backend_thread_invariance);
    tcase_add_test(tc, backend_ops_check);
    tcase_add_test(tc, kernel_table_lookup);
    tcase_add_test(tc, backend_error_carries_the_reason);
    suite_add_tcase(s, tc);

    tc = tcase_create("context");
    tcase_add_test(tc, context_create_backends);
    tcase_add_test(tc, context_bad_options);
    tcase_add_test(tc, context_struct_size);
    tcase_add_test(tc, context_log_and_errors);
    tcase_add_test(tc, context_memory_usage);
    tcase_add_test(tc, context_version_status);
    suite_add_tcase(s, tc);

    tc = tcase_create("tensor");
    tcase_add_test(tc, tensor_basics);
    tcase_add_test(tc, tensor_bad_input);
    tcase_add_test(tc, tensor_outlives_context);
    tcase_add_test(tc, tensor_int_boundary);
    tcase_add_test(tc, tensor_wrap_basics);
    tcase_add_test(tc, tensor_wrap_sampling);
    suite_add_tcase(s, tc);

    tc = tcase_create("handles");
    tcase_add_test(tc, handles_retain_release);
    tcase_add_test(tc, handles_context_getters);
    tcase_add_test(tc, handles_release_from_another_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(core_suite()); }
