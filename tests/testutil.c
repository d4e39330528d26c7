#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lgd_context *tu_context(int threads)
{
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.backend = LGD_BACKEND_CPU;
    o.num_threads = threads;
    o.check_callback_outputs = 1; /* every suite's callbacks must write all their outputs */
    lgd_context *ctx = NULL;
    const char *err = NULL;
    lgd_status st = lgd_context_create(&o, &ctx, &err);
    ck_assert_msg(st == LGD_OK, "context: %s", err);
    return ctx;
}

lgd_tensor *tu_tensor_nd(lgd_context *ctx, int ndim, const int64_t *shape, const float *host)
{
    lgd_tensor *t = NULL;
    TU_OK(ctx, lgd_tensor_create(ctx, ndim, shape, &t));
    if (host)
        TU_OK(ctx, lgd_tensor_upload(t, host, (size_t)lgd_tensor_numel(t)));
    return t;
}

lgd_tensor *tu_tensor(lgd_context *ctx, int64_t batch, int64_t dim, const float *host)
{
    int64_t shape[2] = { batch, dim };
    return tu_tensor_nd(ctx, 2, shape, host);
}

float *tu_download(const lgd_tensor *t)
{
    size_t n = (size_t)lgd_tensor_numel(t);
    float *h = malloc(n * sizeof *h);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(lgd_tensor_download(t, h, n), LGD_OK);
    return h;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double tu_uniform(tu_rng *r) { return (double)(splitmix(&r->s) >> 11) * (1.0 / 9007199254740992.0); }

double tu_normal(tu_rng *r)
{
    double u1 = tu_uniform(r), u2 = tu_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tu_fill_normal(tu_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * tu_normal(r));
}

float *tu_fvec(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

double *tu_dvec(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

float *tu_randn(tu_rng *r, size_t n, float scale)
{
    float *p = tu_fvec(n);
    tu_fill_normal(r, p, n, scale);
    return p;
}

int tu_quick(void)
{
    const char *q = getenv("LGD_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0;
}

double tu_max_scaled_err(const float *a, const float *b, size_t n, double atol, double rtol)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= worst))
            worst = e; /* NaN propagates as "worst" */
    }
    return worst;
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
