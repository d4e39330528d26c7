/*
 * test_loss.c - losses: exact values of the built-ins, gradients against central
 * finite differences, the paper's mixture classifier, callbacks (layout, staging,
 * failures, non-finite output, older option structs, messages from callbacks, unwritten
 * outputs, draw indices), bad input and lifetimes.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

/* Evaluates l on host x laid out [batch][n][dim] (2-D tensor when n == 1). grad may
 * be NULL. Returns the status; the outputs are written only on success. */
static lgd_status eval_host(lgd_context *ctx, lgd_loss *l, const float *x, int64_t batch,
                            int64_t n, int64_t dim, float *loss, float *grad)
{
    int64_t shape[3] = { batch, n, dim };
    lgd_tensor *tx = n == 1 ? tu_tensor(ctx, batch, dim, x) : tu_tensor_nd(ctx, 3, shape, x);
    lgd_tensor *tl = tu_tensor(ctx, batch, n, NULL);
    lgd_tensor *tg = NULL;
    if (grad)
        tg = n == 1 ? tu_tensor(ctx, batch, dim, NULL) : tu_tensor_nd(ctx, 3, shape, NULL);
    lgd_status st = lgd_loss_eval(l, tx, tl, tg);
    if (st == LGD_OK) {
        TU_OK(ctx, lgd_tensor_download(tl, loss, (size_t)(batch * n)));
        if (grad)
            TU_OK(ctx, lgd_tensor_download(tg, grad, (size_t)(batch * n * dim)));
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
    return st;
}

static void assert_close(double got, double want, double atol, double rtol, const char *what)
{
    ck_assert_msg(fabs(got - want) <= atol + rtol * fabs(want), "%s: got %.9g, want %.9g", what,
                  got, want);
}

static void assert_msg_contains(lgd_context *ctx, const char *needle)
{
    const char *msg = lgd_context_last_error(ctx);
    ck_assert_msg(strstr(msg, needle) != NULL, "error message \"%s\" lacks \"%s\"", msg, needle);
}

/*
 * Central finite differences of the loss at a random x ~ scale N(0, 1) laid out
 * [batch][n][dim]: for every coordinate, (l(x + h e) - l(x - h e)) / (actual step),
 * in double from float evaluations with h = 1e-2 * scale. Returns the worst of
 * |fd - g| / (atol + round + rtol |g|) with atol = 2e-3 (1 + max |g|), round the
 * float rounding of the loss divided by the step, and rtol = 5e-3 (<= 1 means the
 * gradient is right), and checks that perturbing one row leaves the other
 * rows' losses unchanged and that the value-only evaluation agrees.
 */
static double fd_grad_error(lgd_context *ctx, lgd_loss *l, int64_t batch, int64_t n,
                            int64_t dim, float scale, uint64_t seed)
{
    size_t rows = (size_t)(batch * n), count = rows * (size_t)dim;
    int64_t shape[3] = { batch, n, dim };
    float *x = malloc(count * sizeof *x), *g = malloc(count * sizeof *g);
    float *l0 = malloc(rows * sizeof *l0), *lv = malloc(rows * sizeof *lv);
    float *lp = malloc(rows * sizeof *lp), *lm = malloc(rows * sizeof *lm);
    ck_assert(x && g && l0 && lv && lp && lm);
    tu_rng rng = { seed };
    tu_fill_normal(&rng, x, count, scale);

    lgd_tensor *tx = n == 1 ? tu_tensor(ctx, batch, dim, x) : tu_tensor_nd(ctx, 3, shape, x);
    lgd_tensor *tg = n == 1 ? tu_tensor(ctx, batch, dim, NULL) : tu_tensor_nd(ctx, 3, shape, NULL);
    lgd_tensor *tl = tu_tensor(ctx, batch, n, NULL);
    TU_OK(ctx, lgd_loss_eval(l, tx, tl, tg));
    TU_OK(ctx, lgd_tensor_download(tl, l0, rows));
    TU_OK(ctx, lgd_tensor_download(tg, g, count));
    /* values without the gradient are the same values */
    TU_OK(ctx, lgd_tensor_fill(tl, -1.0f));
    TU_OK(ctx, lgd_loss_eval(l, tx, tl, NULL));
    TU_OK(ctx, lgd_tensor_download(tl, lv, rows));
    ck_assert_msg(tu_max_scaled_err(lv, l0, rows, 1e-6, 1e-6) <= 1.0,
                  "value without gradient differs from value with gradient");

    double gmax = 0.0;
    for (size_t i = 0; i < count; i++)
        gmax = fmax(gmax, fabs(g[i]));
    double atol = 2e-3 * (1.0 + gmax), rtol = 5e-3, worst = 0.0;
    double h = 1e-2 * scale;
    for (size_t i = 0; i < count; i++) {
        size_t row = i / (size_t)dim;
        float xi = x[i];
        float xp = (float)(xi + h), xm = (float)(xi - h);
        x[i] = xp;
        TU_OK(ctx, lgd_tensor_upload(tx, x, count));
        TU_OK(ctx, lgd_loss_eval(l, tx, tl, NULL));
        TU_OK(ctx, lgd_tensor_download(tl, lp, rows));
        x[i] = xm;
        TU_OK(ctx, lgd_tensor_upload(tx, x, count));
        TU_OK(ctx, lgd_loss_eval(l, tx, tl, NULL));
        TU_OK(ctx, lgd_tensor_download(tl, lm, rows));
        x[i] = xi;
        for (size_t r = 0; r < rows; r++)
            if (r != row) {
                assert_close(lp[r], l0[r], 1e-6, 1e-6, "other row after +h");
                assert_close(lm[r], l0[r], 1e-6, 1e-6, "other row after -h");
            }
        double step = (double)xp - (double)xm;
        double fd = ((double)lp[row] - (double)lm[row]) / step;
        /* plus the float rounding of the two loss values, amplified by 1 / step */
        double round = 8.0 * FLT_EPSILON * (fabs((double)l0[row]) + 1.0) / step;
        double e = fabs(fd - (double)g[i]) / (atol + round + rtol * fabs((double)g[i]));
        if (!(e <= worst))
            worst = e;
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(tl);
    free(x);
    free(g);
    free(l0);
    free(lv);
    free(lp);
    free(lm);
    return worst;
}

static void check_fd(lgd_context *ctx, lgd_loss *l, int64_t batch, int64_t n, int64_t dim,
                     float scale, uint64_t seed, const char *what)
{
    double e = fd_grad_error(ctx, l, batch, n, dim, scale, seed);
    ck_assert_msg(e <= 1.0, "%s (batch %lld, n %lld, dim %lld): gradient vs FD scaled error %g",
                  what, (long long)batch, (long long)n, (long long)dim, e);
}

static float *random_array(uint64_t seed, size_t count, float scale)
{
    float *a = malloc((count ? count : 1) * sizeof *a);
    ck_assert_ptr_nonnull(a);
    tu_rng rng = { seed };
    tu_fill_normal(&rng, a, count, scale);
    return a;
}

static const int64_t fd_dims[] = { 1, 3, 16, 64 };
#define N_FD_DIMS (sizeof fd_dims / sizeof fd_dims[0])

/* --------------------------------------------------- a test callback loss */

/* l(x_row) = sum_j logcosh(x_j - c_b) + 0.25 (sum_j x_j)^2 with c_b the condition of
 * the row's batch element b; records what it was called with. */
typedef struct cb_state {
    const float *cond; /* [cond_len] */
    int64_t cond_len;
    int fail_with;     /* return this when non-zero */
    int write_nan;     /* 1: NaN in a loss value, 2: Inf in a gradient entry */
    int calls;
    int64_t batch, n, dim;
    const float *x;
    float *loss, *grad;
    int destroyed;
    int bad_layout;    /* set when the callback saw a batch index out of range */
} cb_state;

static double logcosh(double t)
{
    double a = fabs(t);
    return a + log1p(exp(-2.0 * a)) - log(2.0);
}

static int cb_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim, float *loss,
                   float *grad)
{
    cb_state *s = user;
    s->calls++;
    s->batch = batch;
    s->n = n;
    s->dim = dim;
    s->x = x;
    s->loss = loss;
    s->grad = grad;
    if (s->fail_with)
        return s->fail_with;
    for (int64_t b = 0; b < batch; b++) {
        float c = 0.0f;
        if (s->cond) {
            if (b >= s->cond_len) {
                s->bad_layout = 1;
                return -1;
            }
            c = s->cond[b];
        }
        for (int64_t i = 0; i < n; i++) {
            const float *xr = x + (b * n + i) * dim;
            double sum = 0.0, l = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                sum += xr[j];
                l += logcosh((double)xr[j] - c);
            }
            loss[b * n + i] = (float)(l + 0.25 * sum * sum);
            if (grad)
                for (int64_t j = 0; j < dim; j++)
                    grad[(b * n + i) * dim + j] = (float)(tanh((double)xr[j] - c) + 0.5 * sum);
        }
    }
    if (s->write_nan == 1)
        loss[batch * n - 1] = NAN;
    if (s->write_nan == 2 && grad)
        grad[0] = INFINITY;
    return 0;
}

static void cb_destroy(void *user) { ((cb_state *)user)->destroyed++; }

static lgd_loss *make_cb_loss(lgd_context *ctx, cb_state *s, int64_t dim)
{
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = dim;
    cb.eval = cb_eval;
    cb.destroy = cb_destroy;
    cb.user = s;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    return l;
}

/* ------------------------------------------------------ exact values */

START_TEST(test_sqerr_exact)
{
    lgd_context *ctx = tu_context(1);
    const float target[3] = { 1, 2, 3 }, w[3] = { 1, 0.5f, 0 }, x[3] = { 2, 0, 10 };
    float loss, grad[3];
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, target, 1, w, &l));
    ck_assert_int_eq(lgd_loss_dim(l), 3);
    TU_OK(ctx, eval_host(ctx, l, x, 1, 1, 3, &loss, grad));
    /* 1 * 1^2 + 0.5 * (-2)^2 + 0 * 7^2 = 3 ; grad = 2 w (x - y) */
    ck_assert_float_eq(loss, 3.0f);
    ck_assert_float_eq(grad[0], 2.0f);
    ck_assert_float_eq(grad[1], -2.0f);
    ck_assert_float_eq(grad[2], 0.0f);
    lgd_loss_destroy(l);

    /* unweighted: 1 + 4 + 49 */
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, target, 1, NULL, &l));
    TU_OK(ctx, eval_host(ctx, l, x, 1, 1, 3, &loss, grad));
    ck_assert_float_eq(loss, 54.0f);
    ck_assert_float_eq(grad[2], 14.0f);
    lgd_loss_destroy(l);

    /* per-batch targets with n = 2: row (b, i) uses target row b */
    const float t2[4] = { 0, 0, 1, -1 };
    const float x2[8] = { 1, 0, 0, 2, /* b = 0 */ 1, -1, 3, 1 /* b = 1 */ };
    float l2[4], g2[8];
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, t2, 2, NULL, &l));
    TU_OK(ctx, eval_host(ctx, l, x2, 2, 2, 2, l2, g2));
    ck_assert_float_eq(l2[0], 1.0f);
    ck_assert_float_eq(l2[1], 4.0f);
    ck_assert_float_eq(l2[2], 0.0f);
    ck_assert_float_eq(l2[3], 8.0f);
    ck_assert_float_eq(g2[6], 4.0f);
    ck_assert_float_eq(g2[7], 4.0f);
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_linear_exact)
{
    lgd_context *ctx = tu_context(1);
    /* H = [[1, 2], [0, 1], [1, -1]], y = (1, 0, 2), s = 0.5, x = (1, 1):
     * Hx - y = (2, 1, -2), loss = 9 / (2 * 0.25) = 18, grad = H^T r / s^2 = (0, 28) */
    const float H[6] = { 1, 2, 0, 1, 1, -1 }, y[3] = { 1, 0, 2 }, x[2] = { 1, 1 };
    float loss, grad[2];
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_linear(ctx, 2, 3, H, y, 1, 0.5f, &l));
    TU_OK(ctx, eval_host(ctx, l, x, 1, 1, 2, &loss, grad));
    assert_close(loss, 18.0, 0, 1e-6, "linear loss");
    assert_close(grad[0], 0.0, 1e-5, 0, "linear grad[0]");
    assert_close(grad[1], 28.0, 0, 1e-6, "linear grad[1]");
    lgd_loss_destroy(l);

    /* two targets, batch 2, n 2: batch 1 uses y2 = (3, 1, 0) -> Hx - y = (0, 0, 0) */
    const float y2[6] = { 1, 0, 2, 3, 1, 0 };
    const float x2[8] = { 1, 1, 1, 1, 1, 1, 0, 0 };
    float l2[4], g2[8];
    TU_OK(ctx, lgd_loss_create_linear(ctx, 2, 3, H, y2, 2, 0.5f, &l));
    TU_OK(ctx, eval_host(ctx, l, x2, 2, 2, 2, l2, g2));
    assert_close(l2[0], 18.0, 0, 1e-6, "row 0");
    assert_close(l2[1], 18.0, 0, 1e-6, "row 1");
    assert_close(l2[2], 0.0, 1e-6, 0, "row 2");
    /* row 3: x = 0, r = -y2 = (-3, -1, 0): 10 / 0.5 = 20; grad = H^T r / s^2 = (-3, -7) * 4 */
    assert_close(l2[3], 20.0, 0, 1e-6, "row 3");
    assert_close(g2[6], -12.0, 0, 1e-6, "row 3 grad[0]");
    assert_close(g2[7], -28.0, 0, 1e-6, "row 3 grad[1]");
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_logistic_exact)
{
    lgd_context *ctx = tu_context(1);
    /* a = (1, -2), b = 0.5, x = (1, 1): z = -0.5, loss = log(1 + e^0.5),
     * grad = -sigmoid(0.5) a */
    const float a[2] = { 1, -2 }, x[2] = { 1, 1 };
    const double loss_want = 0.97407698418010669, sig = 0.62245933120185459;
    float loss, grad[2];
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 2, a, 0.5f, &l));
    TU_OK(ctx, eval_host(ctx, l, x, 1, 1, 2, &loss, grad));
    assert_close(loss, loss_want, 0, 2e-7, "logistic loss");
    assert_close(grad[0], -sig, 0, 2e-7, "logistic grad[0]");
    assert_close(grad[1], 2 * sig, 0, 2e-7, "logistic grad[1]");
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_sum_exact)
{
    lgd_context *ctx = tu_context(1);
    const float zero[2] = { 0, 0 }, a[2] = { 1, -2 }, x[2] = { 1, 1 };
    lgd_loss *terms[2] = { NULL, NULL }, *sum = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, zero, 1, NULL, &terms[0]));
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 2, a, 0.5f, &terms[1]));
    const float w[2] = { 2.0f, 3.0f };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, w, &sum));
    float loss, grad[2];
    TU_OK(ctx, eval_host(ctx, sum, x, 1, 1, 2, &loss, grad));
    /* 2 * |x|^2 + 3 * softplus(0.5); grad = 2 * 2x - 3 sigmoid(0.5) a */
    const double sp = 0.97407698418010669, sig = 0.62245933120185459;
    assert_close(loss, 4.0 + 3.0 * sp, 0, 2e-7, "sum loss");
    assert_close(grad[0], 4.0 - 3.0 * sig, 0, 2e-7, "sum grad[0]");
    assert_close(grad[1], 4.0 + 6.0 * sig, 0, 2e-7, "sum grad[1]");
    lgd_loss_destroy(sum);

    /* NULL weights: all ones; the same term twice counts twice */
    lgd_loss *twice[3] = { terms[0], terms[1], terms[0] };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 3, twice, NULL, &sum));
    TU_OK(ctx, eval_host(ctx, sum, x, 1, 1, 2, &loss, grad));
    assert_close(loss, 4.0 + sp, 0, 2e-7, "sum of ones");
    assert_close(grad[1], 4.0 + 2.0 * sig, 0, 2e-7, "sum of ones grad[1]");
    lgd_loss_destroy(sum);

    /* a single term with a weight: scaled in place */
    const float half = 0.5f;
    TU_OK(ctx, lgd_loss_create_sum(ctx, 1, terms, &half, &sum));
    TU_OK(ctx, eval_host(ctx, sum, x, 1, 1, 2, &loss, grad));
    ck_assert_float_eq(loss, 1.0f);
    ck_assert_float_eq(grad[0], 1.0f);
    lgd_loss_destroy(sum);

    lgd_loss_destroy(terms[0]);
    lgd_loss_destroy(terms[1]);
    lgd_context_destroy(ctx);
}
END_TEST

/* ----------------------------------------------- the paper's mixture classifier */

/* -log p(y = k | x) for the mixture sum_c pi_c N(mu_c, s^2 I) in `dim` dimensions,
 * computed in double from the component densities, and its gradient. */
static double mixture_nll(int dim, const double *mu0, const double *mu1, double pi0, double s,
                          int k, const float *x, double *grad)
{
    double q0 = 0.0, q1 = 0.0;
    for (int j = 0; j < dim; j++) {
        q0 += (x[j] - mu0[j]) * (x[j] - mu0[j]);
        q1 += (x[j] - mu1[j]) * (x[j] - mu1[j]);
    }
    /* log pi_c N(x; mu_c, s^2 I) up to the shared normaliser */
    double lp0 = log(pi0) - 0.5 * q0 / (s * s), lp1 = log(1.0 - pi0) - 0.5 * q1 / (s * s);
    double m = fmax(lp0, lp1), lse = m + log(exp(lp0 - m) + exp(lp1 - m));
    double p0 = exp(lp0 - lse), p1 = exp(lp1 - lse);
    if (grad)
        for (int j = 0; j < dim; j++) {
            /* d/dx [-log pi_k N_k + log p(x)] */
            const double *mk = k == 0 ? mu0 : mu1;
            double dk = (x[j] - mk[j]) / (s * s);
            double dmix = (p0 * (x[j] - mu0[j]) + p1 * (x[j] - mu1[j])) / (s * s);
            grad[j] = dk - dmix;
        }
    return -((k == 0 ? lp0 : lp1) - lse);
}

START_TEST(test_logistic_mixture_paper)
{
    lgd_context *ctx = tu_context(1);
    /* 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2): log-odds of component 0 vs 1 is
     * log N0 - log N1 = a x + b with a = (mu0 - mu1) / s^2 = -50, b = (mu1^2 - mu0^2) /
     * (2 s^2) + log(pi0 / pi1) = 0, so -log p(y = 0 | x) = softplus(-(a x + b)). */
    const double mu0 = -1.0, mu1 = 1.0, s = 0.2;
    float a = (float)((mu0 - mu1) / (s * s));
    float b = (float)((mu1 * mu1 - mu0 * mu0) / (2 * s * s));
    ck_assert_float_eq_tol(a, -50.0f, 1e-4f);
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 1, &a, b, &l));
    enum { N = 101 };
    float x[N], loss[N], grad[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)(-2.5 + 5.0 * i / (N - 1));
    TU_OK(ctx, eval_host(ctx, l, x, N, 1, 1, loss, grad));
    for (int i = 0; i < N; i++) {
        double g;
        double want = mixture_nll(1, &mu0, &mu1, 0.5, s, 0, &x[i], &g);
        assert_close(loss[i], want, 1e-6, 2e-6, "paper mixture -log p(y=0|x)");
        assert_close(grad[i], g, 1e-5, 2e-6, "paper mixture gradient");
    }
    /* at x = mu1 = 1 the label is very unlikely: loss ~ 50 */
    ck_assert(loss[70] > 49.0f && loss[70] < 51.0f);
    lgd_loss_destroy(l);

    /* 3-D, unequal weights and the other label: a = (mu1 - mu0) / s^2 for y = 1 */
    const double m0[3] = { 0.5, -1.0, 0.0 }, m1[3] = { -0.5, 1.0, 2.0 }, pi0 = 0.3, s3 = 0.7;
    float a3[3];
    double b3 = log((1.0 - pi0) / pi0);
    for (int j = 0; j < 3; j++) {
        a3[j] = (float)((m1[j] - m0[j]) / (s3 * s3));
        b3 += (m0[j] * m0[j] - m1[j] * m1[j]) / (2 * s3 * s3);
    }
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 3, a3, (float)b3, &l));
    enum { B = 20 };
    float *x3 = random_array(11, B * 3, 1.5f), l3[B], g3[B * 3];
    TU_OK(ctx, eval_host(ctx, l, x3, B, 1, 3, l3, g3));
    for (int r = 0; r < B; r++) {
        double g[3];
        double want = mixture_nll(3, m0, m1, pi0, s3, 1, x3 + 3 * r, g);
        assert_close(l3[r], want, 1e-5, 1e-5, "3-D mixture -log p(y=1|x)");
        for (int j = 0; j < 3; j++)
            assert_close(g3[3 * r + j], g[j], 1e-5, 1e-5, "3-D mixture gradient");
    }
    free(x3);
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_logistic_stable)
{
    lgd_context *ctx = tu_context(1);
    const float a[3] = { 100.0f, -50.0f, 25.0f };
    /* z = a . x + b = +-200 and +-1000 */
    const float x[12] = { 2, 0, 0, -2, 0, 0, 0, 4, 0, 0, 0, 40 };
    float loss[4], grad[12];
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 3, a, 0.0f, &l));
    TU_OK(ctx, eval_host(ctx, l, x, 4, 1, 3, loss, grad));
    /* z = 200: loss = softplus(-200) ~ 1e-87, grad ~ 0 */
    ck_assert(isfinite(loss[0]) && loss[0] >= 0.0f && loss[0] < 1e-30f);
    for (int j = 0; j < 3; j++)
        ck_assert(isfinite(grad[j]) && fabsf(grad[j]) < 1e-30f);
    /* z = -200: loss = 200, grad = -a */
    assert_close(loss[1], 200.0, 0, 1e-6, "softplus(200)");
    for (int j = 0; j < 3; j++)
        assert_close(grad[3 + j], -a[j], 0, 1e-6, "grad at z = -200");
    /* z = -200 again (second coordinate) and z = 1000 */
    assert_close(loss[2], 200.0, 0, 1e-6, "softplus(200), coordinate 2");
    ck_assert(isfinite(loss[3]) && loss[3] < 1e-30f);
    for (int i = 0; i < 12; i++)
        ck_assert(isfinite(grad[i]));
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------ gradients by FD */

/* a loss with a wrong gradient: value sum x^2, gradient 2.1 x */
static int wrong_grad_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                           float *loss, float *grad)
{
    (void)user;
    for (int64_t r = 0; r < batch * n; r++) {
        double acc = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            acc += (double)x[r * dim + j] * x[r * dim + j];
            if (grad)
                grad[r * dim + j] = 2.1f * x[r * dim + j];
        }
        loss[r] = (float)acc;
    }
    return 0;
}

START_TEST(test_fd_detects_wrong_gradient)
{
    lgd_context *ctx = tu_context(1);
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = 8;
    cb.eval = wrong_grad_eval;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    double e = fd_grad_error(ctx, l, 2, 2, 8, 1.0f, 9);
    ck_assert_msg(e > 1.0, "a 5%% gradient error went unnoticed (scaled error %g)", e);
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_sqerr_grad_fd)
{
    lgd_context *ctx = tu_context(0);
    for (size_t di = 0; di < N_FD_DIMS; di++) {
        int64_t dim = fd_dims[di];
        float *target = random_array(100 + di, (size_t)(3 * dim), 1.0f);
        float *w = random_array(200 + di, (size_t)dim, 1.0f);
        for (int64_t j = 0; j < dim; j++)
            w[j] = fabsf(w[j]);
        w[0] = 0.0f; /* a masked entry */
        lgd_loss *shared = NULL, *per_batch = NULL;
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, dim, target, 1, w, &shared));
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, dim, target, 3, NULL, &per_batch));
        check_fd(ctx, shared, 2, 1, dim, 1.0f, 1 + di, "squared error, shared target");
        check_fd(ctx, shared, 2, 3, dim, 1.0f, 2 + di, "squared error, shared target");
        check_fd(ctx, per_batch, 3, 1, dim, 1.0f, 3 + di, "squared error, per-batch target");
        check_fd(ctx, per_batch, 3, 2, dim, 1.0f, 4 + di, "squared error, per-batch target");
        lgd_loss_destroy(shared);
        lgd_loss_destroy(per_batch);
        free(target);
        free(w);
    }
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_linear_grad_fd)
{
    lgd_context *ctx = tu_context(0);
    for (size_t di = 0; di < N_FD_DIMS; di++) {
        int64_t dim = fd_dims[di], m = dim > 4 ? dim / 2 : 3;
        float *H = random_array(300 + di, (size_t)(m * dim), (float)(1.0 / sqrt((double)dim)));
        float *y = random_array(400 + di, (size_t)(2 * m), 1.0f);
        lgd_loss *shared = NULL, *per_batch = NULL;
        TU_OK(ctx, lgd_loss_create_linear(ctx, dim, m, H, y, 1, 0.7f, &shared));
        TU_OK(ctx, lgd_loss_create_linear(ctx, dim, m, H, y, 2, 0.7f, &per_batch));
        check_fd(ctx, shared, 2, 1, dim, 1.0f, 10 + di, "linear, shared target");
        check_fd(ctx, shared, 1, 3, dim, 1.0f, 11 + di, "linear, shared target");
        check_fd(ctx, per_batch, 2, 1, dim, 1.0f, 12 + di, "linear, per-batch target");
        check_fd(ctx, per_batch, 2, 3, dim, 1.0f, 13 + di, "linear, per-batch target");
        lgd_loss_destroy(shared);
        lgd_loss_destroy(per_batch);
        free(H);
        free(y);
    }
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_logistic_grad_fd)
{
    lgd_context *ctx = tu_context(0);
    for (size_t di = 0; di < N_FD_DIMS; di++) {
        int64_t dim = fd_dims[di];
        float *a = random_array(500 + di, (size_t)dim, (float)(2.0 / sqrt((double)dim)));
        lgd_loss *l = NULL;
        TU_OK(ctx, lgd_loss_create_logistic(ctx, dim, a, 0.3f, &l));
        check_fd(ctx, l, 3, 1, dim, 1.0f, 20 + di, "logistic");
        check_fd(ctx, l, 2, 3, dim, 1.0f, 21 + di, "logistic");
        lgd_loss_destroy(l);
        free(a);
    }
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_grad_fd)
{
    lgd_context *ctx = tu_context(0);
    const float cond[3] = { 0.5f, -1.0f, 2.0f };
    for (size_t di = 0; di < N_FD_DIMS; di++) {
        int64_t dim = fd_dims[di];
        cb_state s = { .cond = cond, .cond_len = 3 };
        lgd_loss *l = make_cb_loss(ctx, &s, dim);
        check_fd(ctx, l, 3, 1, dim, 1.0f, 30 + di, "callback");
        check_fd(ctx, l, 3, 2, dim, 1.0f, 31 + di, "callback");
        ck_assert(!s.bad_layout);
        lgd_loss_destroy(l);
        ck_assert_int_eq(s.destroyed, 1);
    }
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_sum_grad_fd)
{
    lgd_context *ctx = tu_context(0);
    for (size_t di = 0; di < N_FD_DIMS; di++) {
        int64_t dim = fd_dims[di], m = 3;
        float *target = random_array(600 + di, (size_t)(2 * dim), 1.0f);
        float *H = random_array(700 + di, (size_t)(m * dim), (float)(1.0 / sqrt((double)dim)));
        float *y = random_array(800 + di, (size_t)m, 1.0f);
        float *a = random_array(900 + di, (size_t)dim, (float)(1.0 / sqrt((double)dim)));
        cb_state s = { 0 };
        lgd_loss *t[4];
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, dim, target, 2, NULL, &t[0]));
        TU_OK(ctx, lgd_loss_create_linear(ctx, dim, m, H, y, 1, 1.5f, &t[1]));
        TU_OK(ctx, lgd_loss_create_logistic(ctx, dim, a, -0.2f, &t[2]));
        t[3] = make_cb_loss(ctx, &s, dim);
        const float w[4] = { 0.5f, 2.0f, 1.5f, 0.25f };
        lgd_loss *sum = NULL, *nested = NULL;
        TU_OK(ctx, lgd_loss_create_sum(ctx, 4, t, w, &sum));
        check_fd(ctx, sum, 2, 1, dim, 1.0f, 40 + di, "sum");
        check_fd(ctx, sum, 2, 3, dim, 1.0f, 41 + di, "sum");
        /* a sum of sums */
        lgd_loss *outer[2] = { sum, t[2] };
        const float w2[2] = { -0.5f, 3.0f };
        TU_OK(ctx, lgd_loss_create_sum(ctx, 2, outer, w2, &nested));
        check_fd(ctx, nested, 2, 2, dim, 1.0f, 42 + di, "nested sum");
        lgd_loss_destroy(nested);
        lgd_loss_destroy(sum);
        for (int k = 0; k < 4; k++)
            lgd_loss_destroy(t[k]);
        ck_assert_int_eq(s.destroyed, 1);
        free(target);
        free(H);
        free(y);
        free(a);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------ callbacks */

START_TEST(test_callback_receives_layout)
{
    lgd_context *ctx = tu_context(1);
    const float cond[2] = { 0.0f, 1.0f };
    cb_state s = { .cond = cond, .cond_len = 2 };
    lgd_loss *l = make_cb_loss(ctx, &s, 5);
    int64_t shape[3] = { 2, 3, 5 };
    float *xh = random_array(1, 30, 1.0f);
    lgd_tensor *x = tu_tensor_nd(ctx, 3, shape, xh);
    lgd_tensor *loss = tu_tensor(ctx, 2, 3, NULL);
    lgd_tensor *grad = tu_tensor_nd(ctx, 3, shape, NULL);
    TU_OK(ctx, lgd_loss_eval(l, x, loss, grad));
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(s.batch, 2);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.dim, 5);
    /* host memory on the CPU backend: no copies */
    ck_assert_ptr_eq(s.x, lgd_tensor_data(x));
    ck_assert_ptr_eq(s.loss, lgd_tensor_data(loss));
    ck_assert_ptr_eq(s.grad, lgd_tensor_data(grad));
    /* the values arrive in the right rows: row (b, i) uses cond[b] */
    float *lh = tu_download(loss);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++) {
            const float *xr = xh + (b * 3 + i) * 5;
            double sum = 0.0, want = 0.0;
            for (int j = 0; j < 5; j++) {
                sum += xr[j];
                want += logcosh((double)xr[j] - cond[b]);
            }
            want += 0.25 * sum * sum;
            assert_close(lh[b * 3 + i], want, 1e-6, 1e-6, "callback row value");
        }
    free(lh);

    /* values only: grad is NULL; a [batch][dim] x gives n = 1; out_loss may be 1-D */
    lgd_tensor *x2 = tu_tensor(ctx, 2, 5, xh);
    int64_t two = 2;
    lgd_tensor *l1 = tu_tensor_nd(ctx, 1, &two, NULL);
    TU_OK(ctx, lgd_loss_eval(l, x2, l1, NULL));
    ck_assert_int_eq(s.calls, 2);
    ck_assert_int_eq(s.batch, 2);
    ck_assert_int_eq(s.n, 1);
    ck_assert_ptr_null(s.grad);
    lgd_tensor_destroy(x2);
    lgd_tensor_destroy(l1);

    lgd_tensor_destroy(x);
    lgd_tensor_destroy(loss);
    lgd_tensor_destroy(grad);
    free(xh);
    ck_assert_int_eq(s.destroyed, 0);
    lgd_loss_destroy(l);
    ck_assert_int_eq(s.destroyed, 1);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_staging)
{
    /* Pretend the backend memory is not host memory: a host callback must then get
     * host copies, and its results must come back into the tensors. */
    lgd_context *ctx = tu_context(1);
    lgd_backend_ops fake = *ctx->ops;
    fake.host_memory = 0;
    const lgd_backend_ops *real = ctx->ops;
    ctx->ops = &fake;

    cb_state s = { 0 };
    lgd_loss *l = make_cb_loss(ctx, &s, 4);
    float *xh = random_array(2, 24, 1.0f);
    int64_t shape[3] = { 2, 3, 4 };
    lgd_tensor *x = tu_tensor_nd(ctx, 3, shape, xh);
    lgd_tensor *loss = tu_tensor(ctx, 2, 3, NULL), *grad = tu_tensor_nd(ctx, 3, shape, NULL);
    TU_OK(ctx, lgd_loss_eval(l, x, loss, grad));
    ck_assert_ptr_ne(s.x, lgd_tensor_data(x));
    ck_assert_ptr_ne(s.loss, lgd_tensor_data(loss));
    ck_assert_ptr_nonnull(s.grad);
    ck_assert_ptr_ne(s.grad, lgd_tensor_data(grad));
    ck_assert_int_eq(memcmp(s.x, xh, 24 * sizeof(float)), 0);
    /* the staged results equal a direct evaluation */
    float *ls = tu_download(loss), *gs = tu_download(grad);
    ctx->ops = real;
    float ld[6], gd[24];
    TU_OK(ctx, eval_host(ctx, l, xh, 2, 3, 4, ld, gd));
    ck_assert_int_eq(memcmp(ls, ld, sizeof ld), 0);
    ck_assert_int_eq(memcmp(gs, gd, sizeof gd), 0);
    ctx->ops = &fake;
    /* values only under staging: no gradient buffer */
    TU_OK(ctx, lgd_loss_eval(l, x, loss, NULL));
    ck_assert_ptr_null(s.grad);
    lgd_loss_destroy(l);

    /* a device-memory callback gets the backend pointers themselves */
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.memory = LGD_MEMORY_DEVICE;
    cb.dim = 4;
    cb.eval = cb_eval;
    cb.user = &s;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    TU_OK(ctx, lgd_loss_eval(l, x, loss, grad));
    ck_assert_ptr_eq(s.x, lgd_tensor_data(x));
    ck_assert_ptr_eq(s.grad, lgd_tensor_data(grad));
    lgd_loss_destroy(l);

    lgd_tensor_destroy(x);
    lgd_tensor_destroy(loss);
    lgd_tensor_destroy(grad);
    ctx->ops = real;
    free(xh);
    free(ls);
    free(gs);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_failure)
{
    lgd_context *ctx = tu_context(1);
    cb_state s = { .fail_with = 7 };
    lgd_loss *l = make_cb_loss(ctx, &s, 2);
    const float x[4] = { 0.1f, 0.2f, -0.3f, 0.4f };
    float loss[2], grad[4];
    TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 2, loss, grad));
    assert_msg_contains(ctx, "7");
    s.fail_with = -3;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 2, loss, NULL));
    assert_msg_contains(ctx, "-3");
    /* the loss remains usable */
    s.fail_with = 0;
    TU_OK(ctx, eval_host(ctx, l, x, 2, 1, 2, loss, grad));
    double sum = 0.1 + 0.2;
    assert_close(loss[0], logcosh(0.1) + logcosh(0.2) + 0.25 * sum * sum, 1e-6, 1e-6,
                 "value after a failure");

    /* inside a sum the error names the term */
    lgd_loss *sq = NULL, *sum_l = NULL;
    const float zero[2] = { 0, 0 };
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, zero, 1, NULL, &sq));
    lgd_loss *terms[2] = { sq, l };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, NULL, &sum_l));
    s.fail_with = 9;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, sum_l, x, 2, 1, 2, loss, grad));
    assert_msg_contains(ctx, "term 1");
    assert_msg_contains(ctx, "9");
    s.fail_with = 0;
    TU_OK(ctx, eval_host(ctx, sum_l, x, 2, 1, 2, loss, grad));
    lgd_loss_destroy(sum_l);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(l);
    ck_assert_int_eq(s.destroyed, 1);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_non_finite)
{
    lgd_context *ctx = tu_context(1);
    cb_state s = { .write_nan = 1 };
    lgd_loss *l = make_cb_loss(ctx, &s, 3);
    const float x[6] = { 0, 1, 2, 3, 4, 5 };
    float loss[2], grad[6];
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, eval_host(ctx, l, x, 2, 1, 3, loss, grad));
    assert_msg_contains(ctx, "callback");
    assert_msg_contains(ctx, "value");
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, eval_host(ctx, l, x, 1, 2, 3, loss, NULL));
    /* Inf in the gradient */
    s.write_nan = 2;
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, eval_host(ctx, l, x, 2, 1, 3, loss, grad));
    assert_msg_contains(ctx, "gradient");
    /* ... which is not looked at when no gradient is asked for */
    TU_OK(ctx, eval_host(ctx, l, x, 2, 1, 3, loss, NULL));
    s.write_nan = 0;
    TU_OK(ctx, eval_host(ctx, l, x, 2, 1, 3, loss, grad));

    /* a built-in fed an Inf is caught the same way */
    lgd_loss *sq = NULL;
    const float zero[3] = { 0, 0, 0 }, xinf[3] = { INFINITY, 0, 0 };
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, zero, 1, NULL, &sq));
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, eval_host(ctx, sq, xinf, 1, 1, 3, loss, grad));
    assert_msg_contains(ctx, "squared_error");
    /* and a float overflow of a finite input */
    const float xbig[3] = { 3e38f, 3e38f, 0 };
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, eval_host(ctx, sq, xbig, 1, 1, 3, loss, NULL));
    lgd_loss_destroy(sq);
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_options)
{
    lgd_context *ctx = tu_context(1);
    lgd_loss_callbacks cb;
    memset(&cb, 0xAB, sizeof cb);
    ck_assert_int_eq(lgd_loss_callbacks_init(&cb, sizeof cb), LGD_OK);
    ck_assert_uint_eq(cb.struct_size, sizeof cb);
    ck_assert_int_eq(cb.memory, LGD_MEMORY_HOST);
    ck_assert_int_eq(cb.dim, 0);
    ck_assert(cb.eval == NULL && cb.destroy == NULL && cb.user == NULL);
    ck_assert_int_eq(lgd_loss_callbacks_init(NULL, sizeof cb), LGD_ERR_INVALID_ARGUMENT);

    /* smaller than the first published layout: refused, and nothing is called */
    cb_state s = { 0 };
    cb.dim = 2;
    cb.eval = wrong_grad_eval; /* ignores user */
    cb.destroy = cb_destroy;
    cb.user = &s;
    cb.struct_size = (uint32_t)offsetof(lgd_loss_callbacks, destroy);
    lgd_loss *l = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    ck_assert_ptr_null(l);
    ck_assert_int_eq(s.destroyed, 0);
    cb.struct_size = sizeof cb;
    cb.destroy = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    cb.destroy = cb_destroy;
    const float x[2] = { 1, 2 };
    float loss;
    TU_OK(ctx, eval_host(ctx, l, x, 1, 1, 2, &loss, NULL));
    ck_assert_float_eq(loss, 5.0f);
    lgd_loss_destroy(l);
    ck_assert_int_eq(s.destroyed, 0);

    /* a newer caller with a larger struct: its unknown field must be zero */
    struct {
        lgd_loss_callbacks cb;
        int64_t future_field;
    } newer;
    ck_assert_int_eq(lgd_loss_callbacks_init(&newer.cb, (uint32_t)sizeof newer), LGD_OK);
    ck_assert_int_eq(newer.future_field, 0);
    newer.cb.dim = 2;
    newer.cb.eval = cb_eval;
    newer.cb.destroy = cb_destroy;
    newer.cb.user = &s;
    newer.future_field = 42;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &newer.cb, &l));
    ck_assert_ptr_null(l);
    newer.future_field = 0;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &newer.cb, &l));
    TU_OK(ctx, eval_host(ctx, l, x, 1, 1, 2, &loss, NULL));
    ck_assert_int_eq(s.calls, 1);
    lgd_loss_destroy(l);
    ck_assert_int_eq(s.destroyed, 1);

    /* struct_size 0 (uninitialised) is rejected, and destroy is not called */
    ck_assert_int_eq(lgd_loss_callbacks_init(&cb, sizeof cb), LGD_OK);
    cb.dim = 2;
    cb.eval = cb_eval;
    cb.destroy = cb_destroy;
    cb.user = &s;
    cb.struct_size = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "struct_size");
    ck_assert_ptr_null(l);
    /* a struct too short to hold eval: smaller than the first published layout */
    cb.struct_size = (uint32_t)offsetof(lgd_loss_callbacks, eval);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "first published layout");
    cb.struct_size = (uint32_t)sizeof cb;
    /* bad fields */
    cb.dim = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "dim");
    cb.dim = -4;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    cb.dim = 2;
    cb.eval = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "eval");
    cb.eval = cb_eval;
    cb.memory = (lgd_memory)5;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "memory");
    cb.memory = LGD_MEMORY_HOST;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, NULL));
    ck_assert_int_eq(lgd_loss_create_callbacks(NULL, &cb, &l), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(s.destroyed, 1); /* no failed creation called destroy */
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------- callbacks that report errors */

/* l(x_row) = sum_j x_j^2 (+ draw_weight * the draw index with eval_draws); misbehaves
 * on request: sets a message, returns rc, leaves an output entry unwritten. */
typedef struct report_loss {
    lgd_context *ctx;
    const char *message; /* lgd_context_set_callback_error(ctx, message) when not NULL */
    int32_t rc;          /* returned */
    int64_t skip_loss;   /* loss[skip_loss] left unwritten when >= 0 */
    int64_t skip_grad;   /* grad[skip_grad] left unwritten when >= 0 */
    int calls;
    int64_t first_draw, total_draws; /* what eval_draws last received */
} report_loss;

static int32_t report_fill(report_loss *r, const float *x, int64_t rows, int64_t dim,
                           float *loss, float *grad)
{
    r->calls++;
    if (r->message)
        lgd_context_set_callback_error(r->ctx, r->message);
    if (r->rc)
        return r->rc;
    for (int64_t k = 0; k < rows; k++) {
        double l = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            l += (double)x[k * dim + j] * x[k * dim + j];
            if (grad && k * dim + j != r->skip_grad)
                grad[k * dim + j] = 2.0f * x[k * dim + j];
        }
        if (k != r->skip_loss)
            loss[k] = (float)l;
    }
    return 0;
}

static int32_t report_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                           float *loss, float *grad)
{
    return report_fill(user, x, batch * n, dim, loss, grad);
}

static int32_t report_eval_draws(void *user, const float *x, int64_t batch, int64_t n,
                                 int64_t dim, int64_t first_draw, int64_t total_draws,
                                 float *loss, float *grad)
{
    report_loss *r = user;
    r->first_draw = first_draw;
    r->total_draws = total_draws;
    return report_fill(r, x, batch * n, dim, loss, grad);
}

static lgd_loss *report_loss_create(lgd_context *ctx, report_loss *r, lgd_memory memory,
                                    int draws)
{
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.memory = memory;
    cb.dim = 3;
    if (draws)
        cb.eval_draws = report_eval_draws;
    else
        cb.eval = report_eval;
    cb.user = r;
    r->ctx = ctx;
    r->skip_loss = r->skip_grad = -1;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    return l;
}

static void assert_msg_lacks(lgd_context *ctx, const char *needle)
{
    const char *msg = lgd_context_last_error(ctx);
    ck_assert_msg(strstr(msg, needle) == NULL, "error message \"%s\" has \"%s\"", msg, needle);
}

START_TEST(test_callback_error_message)
{
    lgd_context *ctx = tu_context(1);
    lgd_backend_ops fake = *ctx->ops;
    fake.host_memory = 0;
    const lgd_backend_ops *real = ctx->ops;
    const float x[6] = { 1, 2, 3, -1, 0, 1 };
    float loss[2], grad[6];
    /* eval and eval_draws; direct host pointers, staged host copies, device memory */
    for (int draws = 0; draws < 2; draws++)
        for (int mode = 0; mode < 3; mode++) {
            report_loss r = { 0 };
            lgd_loss *l =
                report_loss_create(ctx, &r, mode == 2 ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST, draws);
            if (mode == 1)
                ctx->ops = &fake;
            /* the callback's message ends the error, after the library's description */
            r.message = "label 7 is out of range";
            r.rc = 1;
            TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 3, loss, grad));
            assert_msg_contains(ctx, draws ? "callback loss: eval_draws returned 1"
                                           : "callback loss: eval returned 1");
            assert_msg_contains(ctx, "): label 7 is out of range");
            /* a message set by a callback that then returns 0 is discarded ... */
            r.rc = 0;
            r.message = "a warning nobody asked for";
            TU_OK(ctx, eval_host(ctx, l, x, 2, 1, 3, loss, grad));
            ck_assert_float_eq(loss[1], 2.0f);
            /* ... and does not reach a later failure that sets none */
            r.message = NULL;
            r.rc = -2;
            TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 3, loss, NULL));
            assert_msg_contains(ctx, "returned -2");
            assert_msg_lacks(ctx, "nobody");
            /* a message set outside any callback is cleared before the next call */
            lgd_context_set_callback_error(ctx, "stale");
            TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 3, loss, NULL));
            assert_msg_lacks(ctx, "stale");
            /* the last call wins; NULL clears */
            r.message = "second";
            lgd_context_set_callback_error(ctx, "first");
            TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 3, loss, NULL));
            assert_msg_contains(ctx, ": second");
            assert_msg_lacks(ctx, "first");
            ctx->ops = real;
            lgd_loss_destroy(l);
        }

    /* inside a sum the term is named and the message kept */
    report_loss r = { 0 };
    lgd_loss *l = report_loss_create(ctx, &r, LGD_MEMORY_HOST, 0), *sq = NULL, *sum = NULL;
    const float zero[3] = { 0, 0, 0 };
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, zero, 1, NULL, &sq));
    lgd_loss *terms[2] = { sq, l };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, NULL, &sum));
    r.message = "no target loaded";
    r.rc = 4;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, sum, x, 2, 1, 3, loss, grad));
    assert_msg_contains(ctx, "term 1");
    assert_msg_contains(ctx, "returned 4");
    assert_msg_contains(ctx, ": no target loaded");
    lgd_loss_destroy(sum);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(l);

    /* harmless without a context; a long message is truncated, not overflowed */
    lgd_context_set_callback_error(NULL, "nowhere");
    lgd_context_set_callback_error(ctx, NULL);
    char longmsg[2000];
    memset(longmsg, 'z', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    report_loss r2 = { 0 };
    l = report_loss_create(ctx, &r2, LGD_MEMORY_HOST, 0);
    r2.message = longmsg;
    r2.rc = 1;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 1, 3, loss, NULL));
    assert_msg_contains(ctx, "callback loss: eval returned 1");
    assert_msg_contains(ctx, "zzzz");
    ck_assert_uint_lt(strlen(lgd_context_last_error(ctx)), LGD_ERROR_CAP);
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_unwritten_outputs)
{
    lgd_context *ctx = tu_context(1); /* check_callback_outputs = 1 (testutil.c) */
    lgd_backend_ops fake = *ctx->ops;
    fake.host_memory = 0;
    const lgd_backend_ops *real = ctx->ops;
    const float x[12] = { 1, 2, 3, -1, 0, 1, 0.5f, 0.5f, 0.5f, 2, 2, 2 };
    float loss[4], grad[12];
    for (int mode = 0; mode < 3; mode++) { /* direct host, staged host, device memory */
        report_loss r = { 0 };
        lgd_loss *l =
            report_loss_create(ctx, &r, mode == 2 ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST, 0);
        if (mode == 1)
            ctx->ops = &fake;
        TU_OK(ctx, eval_host(ctx, l, x, 2, 2, 3, loss, grad));
        ck_assert_float_eq(loss[3], 12.0f);
        /* a loss value left unwritten: named with its index on host memory */
        r.skip_loss = 3;
        TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 2, 3, loss, grad));
        if (mode < 2) {
            assert_msg_contains(ctx, "callback loss: eval returned 0 but left loss[3] "
                                     "unwritten (NaN; 1 of 4 values unwritten; "
                                     "check_callback_outputs is on)");
        } else {
            assert_msg_contains(ctx, "callback loss: eval returned 0 but left loss non-finite");
            assert_msg_contains(ctx, "check_callback_outputs is on");
        }
        TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 2, 3, loss, NULL));
        r.skip_loss = -1;
        /* a gradient entry left unwritten; not looked at when no gradient is asked for */
        r.skip_grad = 7;
        TU_FAILS(ctx, LGD_ERR_CALLBACK, eval_host(ctx, l, x, 2, 2, 3, loss, grad));
        assert_msg_contains(ctx, mode < 2 ? "left grad[7] unwritten" : "left grad non-finite");
        TU_OK(ctx, eval_host(ctx, l, x, 2, 2, 3, loss, NULL));
        r.skip_grad = -1;
        TU_OK(ctx, eval_host(ctx, l, x, 2, 2, 3, loss, grad));
        ctx->ops = real;
        lgd_loss_destroy(l);
    }
    /* on host memory a NaN the callback did write is still a non-finite value, not an
     * unwritten one (liblgd's fill has a payload of its own) */
    cb_state s = { .write_nan = 1 };
    lgd_loss *l = make_cb_loss(ctx, &s, 3);
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, eval_host(ctx, l, x, 2, 1, 3, loss, grad));
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);

    /* off (the default): nothing is filled or checked; the entry keeps what was there */
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    ck_assert_int_eq(o.check_callback_outputs, 0);
    ctx = NULL;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_OK);
    for (int mode = 0; mode < 2; mode++) {
        report_loss r = { 0 };
        l = report_loss_create(ctx, &r, mode ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST, 0);
        int64_t shape[3] = { 2, 2, 3 };
        lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, x);
        const float before[4] = { -5, -6, -7, -8 };
        lgd_tensor *tl = tu_tensor(ctx, 2, 2, before);
        r.skip_loss = 2;
        TU_OK(ctx, lgd_loss_eval(l, tx, tl, NULL));
        TU_OK(ctx, lgd_tensor_download(tl, loss, 4));
        ck_assert_float_eq(loss[1], 2.0f);
        ck_assert_float_eq(loss[2], -7.0f);
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(tl);
        lgd_loss_destroy(l);
    }
    /* an older lgd_context_options without the field: off */
    o.struct_size = (uint32_t)offsetof(lgd_context_options, check_callback_outputs);
    lgd_context *old = NULL;
    ck_assert_int_eq(lgd_context_create(&o, &old, NULL), LGD_OK);
    ck_assert_int_eq(old->check_callback_outputs, 0);
    lgd_context_destroy(old);
    ck_assert_int_eq(lgd_context_options_init(&o, sizeof o), LGD_OK);
    ck_assert_int_eq(o.check_callback_outputs, 0);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_callback_eval_draws)
{
    lgd_context *ctx = tu_context(1);
    report_loss r = { 0 };
    lgd_loss *l = report_loss_create(ctx, &r, LGD_MEMORY_HOST, 1);
    const float x[12] = { 1, 2, 3, -1, 0, 1, 0.5f, 0.5f, 0.5f, 2, 2, 2 };
    float loss[4], grad[12];
    /* outside guidance: the whole call is draws 0 .. n - 1 of n */
    r.first_draw = r.total_draws = -1;
    TU_OK(ctx, eval_host(ctx, l, x, 2, 2, 3, loss, grad));
    ck_assert_int_eq(r.first_draw, 0);
    ck_assert_int_eq(r.total_draws, 2);
    ck_assert_float_eq(loss[1], 2.0f);
    /* the internal entry points the guidance and sums use pass them on */
    TU_OK(ctx, lgd_loss_eval_draws(l, x, 1, 4, 16, 37, loss, NULL));
    ck_assert_int_eq(r.first_draw, 16);
    ck_assert_int_eq(r.total_draws, 37);
    lgd_loss *sq = NULL, *sum = NULL;
    const float zero[3] = { 0, 0, 0 };
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, zero, 1, NULL, &sq));
    lgd_loss *terms[2] = { sq, l };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, NULL, &sum));
    TU_OK(ctx, lgd_loss_eval_draws(sum, x, 2, 2, 32, 37, loss, grad));
    ck_assert_int_eq(r.first_draw, 32);
    ck_assert_int_eq(r.total_draws, 37);
    ck_assert_float_eq(loss[3], 24.0f);
    TU_OK(ctx, lgd_loss_eval_raw(sum, x, 4, 1, loss, NULL));
    ck_assert_int_eq(r.first_draw, 0);
    ck_assert_int_eq(r.total_draws, 1);
    lgd_loss_destroy(sum);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(l);

    /* exactly one of eval and eval_draws */
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    ck_assert_ptr_null((void *)cb.eval_draws);
    cb.dim = 3;
    cb.eval = report_eval;
    cb.eval_draws = report_eval_draws;
    cb.user = &r;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "exactly one");
    ck_assert_ptr_null(l);
    cb.eval = NULL;
    cb.eval_draws = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_callbacks(ctx, &cb, &l));
    assert_msg_contains(ctx, "eval_draws");

    /* the first published layout (without eval_draws) is still accepted, and _init
     * writes no further than it */
    cb.eval = report_eval;
    cb.struct_size = (uint32_t)offsetof(lgd_loss_callbacks, eval_draws);
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    TU_OK(ctx, eval_host(ctx, l, x, 2, 2, 3, loss, NULL));
    lgd_loss_destroy(l);
    lgd_loss_callbacks small;
    memset(&small, 0xAB, sizeof small);
    ck_assert_int_eq(lgd_loss_callbacks_init(&small, (uint32_t)offsetof(lgd_loss_callbacks,
                                                                        eval_draws)),
                     LGD_OK);
    unsigned char tail[sizeof small - offsetof(lgd_loss_callbacks, eval_draws)];
    memset(tail, 0xAB, sizeof tail);
    ck_assert_int_eq(memcmp((unsigned char *)&small + offsetof(lgd_loss_callbacks, eval_draws),
                            tail, sizeof tail),
                     0);
    ck_assert_int_eq(lgd_loss_callbacks_init(&small, (uint32_t)offsetof(lgd_loss_callbacks,
                                                                        eval_draws) - 1),
                     LGD_ERR_INVALID_ARGUMENT);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------ bad input */

START_TEST(test_create_bad_input)
{
    lgd_context *ctx = tu_context(1);
    const float t[4] = { 0, 1, 2, 3 }, wneg[2] = { 1, -1 }, wnan[2] = { 1, NAN };
    const float tnan[2] = { 0, NAN };
    lgd_loss *l = (lgd_loss *)&l; /* must be reset to NULL on failure */

    /* squared error */
    ck_assert_int_eq(lgd_loss_create_squared_error(NULL, 2, t, 1, NULL, &l),
                     LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, t, 1, NULL, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 0, t, 1, NULL, &l));
    assert_msg_contains(ctx, "dim");
    ck_assert_ptr_null(l);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, -1, t, 1, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, NULL, 1, NULL, &l));
    assert_msg_contains(ctx, "target");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, t, 0, NULL, &l));
    assert_msg_contains(ctx, "target_rows");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, t, -2, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, tnan, 1, NULL, &l));
    assert_msg_contains(ctx, "target[1]");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, t, 1, wneg, &l));
    assert_msg_contains(ctx, "weights[1]");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_squared_error(ctx, 2, t, 1, wnan, &l));
    assert_msg_contains(ctx, "weights[1]");

    /* linear */
    const float H[4] = { 1, 0, 0, 1 }, Hinf[4] = { 1, 0, INFINITY, 1 };
    ck_assert_int_eq(lgd_loss_create_linear(NULL, 2, 2, H, t, 1, 1.0f, &l),
                     LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, 1.0f, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 0, 2, H, t, 1, 1.0f, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 0, H, t, 1, 1.0f, &l));
    assert_msg_contains(ctx, "m = 0");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, NULL, t, 1, 1.0f, &l));
    assert_msg_contains(ctx, "H is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, NULL, 1, 1.0f, &l));
    assert_msg_contains(ctx, "y is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 0, 1.0f, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, 0.0f, &l));
    assert_msg_contains(ctx, "noise_sigma");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, -1.0f, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, NAN, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, INFINITY, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, 1e-30f, &l));
    assert_msg_contains(ctx, "too small");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, Hinf, t, 1, 1.0f, &l));
    assert_msg_contains(ctx, "H[2]");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_linear(ctx, 2, 2, H, tnan, 1, 1.0f, &l));
    assert_msg_contains(ctx, "y[1]");

    /* logistic */
    ck_assert_int_eq(lgd_loss_create_logistic(NULL, 2, t, 0.0f, &l), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_logistic(ctx, 2, t, 0.0f, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_logistic(ctx, 0, t, 0.0f, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_logistic(ctx, 2, NULL, 0.0f, &l));
    assert_msg_contains(ctx, "a is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_logistic(ctx, 2, tnan, 0.0f, &l));
    assert_msg_contains(ctx, "a[1]");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_logistic(ctx, 2, t, INFINITY, &l));
    assert_msg_contains(ctx, "b = ");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_logistic(ctx, 2, t, NAN, &l));

    /* sum */
    lgd_loss *a2 = NULL, *a3 = NULL, *other = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, t, 1, NULL, &a2));
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, t, 1, NULL, &a3));
    lgd_context *ctx2 = tu_context(1);
    TU_OK(ctx2, lgd_loss_create_squared_error(ctx2, 2, t, 1, NULL, &other));
    lgd_loss *ok_terms[2] = { a2, a2 }, *null_terms[2] = { a2, NULL };
    lgd_loss *dim_terms[2] = { a2, a3 }, *ctx_terms[2] = { a2, other };
    const float wbad[2] = { 1.0f, NAN };
    ck_assert_int_eq(lgd_loss_create_sum(NULL, 2, ok_terms, NULL, &l), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, 2, ok_terms, NULL, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, 0, ok_terms, NULL, &l));
    assert_msg_contains(ctx, "count");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, -1, ok_terms, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, 2, NULL, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, 2, null_terms, NULL, &l));
    assert_msg_contains(ctx, "terms[1]");
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_create_sum(ctx, 2, dim_terms, NULL, &l));
    assert_msg_contains(ctx, "dim");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, 2, ctx_terms, NULL, &l));
    assert_msg_contains(ctx, "context");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_sum(ctx, 2, ok_terms, wbad, &l));
    assert_msg_contains(ctx, "weights[1]");
    ck_assert_ptr_null(l);

    /* the terms are untouched by the failed creations */
    float loss;
    const float x[2] = { 1, 1 };
    TU_OK(ctx, eval_host(ctx, a2, x, 1, 1, 2, &loss, NULL));
    ck_assert_float_eq(loss, 1.0f);
    lgd_loss_destroy(a2);
    lgd_loss_destroy(a3);
    lgd_loss_destroy(other);
    lgd_context_destroy(ctx2);

    /* destroy(NULL) and dim(NULL) */
    lgd_loss_destroy(NULL);
    ck_assert_int_eq(lgd_loss_dim(NULL), 0);
    /* no leaked backend memory from all of the above */
    size_t cur = 1;
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, 0);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_eval_bad_input)
{
    lgd_context *ctx = tu_context(1), *ctx2 = tu_context(1);
    const float t[3] = { 0, 0, 0 };
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, t, 1, NULL, &l));
    lgd_tensor *x = tu_tensor(ctx, 2, 3, NULL), *loss = tu_tensor(ctx, 2, 1, NULL);
    lgd_tensor *grad = tu_tensor(ctx, 2, 3, NULL);

    ck_assert_int_eq(lgd_loss_eval(NULL, x, loss, grad), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_eval(l, NULL, loss, grad));
    assert_msg_contains(ctx, "x is NULL");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_eval(l, x, NULL, grad));
    assert_msg_contains(ctx, "out_loss");

    /* wrong last dimension */
    lgd_tensor *x4 = tu_tensor(ctx, 2, 4, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, x4, loss, NULL));
    assert_msg_contains(ctx, "x");
    /* 1-D and 4-D x */
    int64_t s1 = 3, s4[4] = { 1, 2, 1, 3 };
    lgd_tensor *x1 = tu_tensor_nd(ctx, 1, &s1, NULL), *x4d = tu_tensor_nd(ctx, 4, s4, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, x1, loss, NULL));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, x4d, loss, NULL));
    /* out_loss of the wrong size: 3 elements for batch 2 */
    lgd_tensor *loss3 = tu_tensor(ctx, 3, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, x, loss3, NULL));
    assert_msg_contains(ctx, "out_loss");
    /* a [2][2][3] x needs 4 losses */
    int64_t s3[3] = { 2, 2, 3 };
    lgd_tensor *x3 = tu_tensor_nd(ctx, 3, s3, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, x3, loss, NULL));
    assert_msg_contains(ctx, "out_loss");
    /* out_grad of the wrong size ([2][3] for a [2][2][3] x) */
    lgd_tensor *loss4 = tu_tensor(ctx, 4, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, x3, loss4, grad));
    assert_msg_contains(ctx, "out_grad");
    /* aliasing */
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_eval(l, x, loss, x));
    /* tensors of another context */
    lgd_tensor *xo = tu_tensor(ctx2, 2, 3, NULL), *lo = tu_tensor(ctx2, 2, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_eval(l, xo, loss, NULL));
    assert_msg_contains(ctx, "context");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_eval(l, x, lo, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_eval(l, x, loss, xo));

    /* still usable; a [2][2][3] x with a [4] out_loss works */
    float xh[12];
    for (int i = 0; i < 12; i++)
        xh[i] = (float)i;
    TU_OK(ctx, lgd_tensor_upload(x3, xh, 12));
    lgd_tensor *g3 = tu_tensor_nd(ctx, 3, s3, NULL);
    TU_OK(ctx, lgd_loss_eval(l, x3, loss4, g3));
    float *lh = tu_download(loss4);
    ck_assert_float_eq(lh[3], 81.0f + 100.0f + 121.0f);
    free(lh);

    lgd_tensor *all[] = { x, loss, grad, x4, x1, x4d, loss3, x3, loss4, xo, lo, g3 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lgd_tensor_destroy(all[i]);
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
    lgd_context_destroy(ctx2);
}
END_TEST

START_TEST(test_wrong_target_rows)
{
    lgd_context *ctx = tu_context(1);
    const float t[6] = { 0, 0, 1, 1, 2, 2 }, H[4] = { 1, 0, 0, 1 };
    lgd_loss *sq = NULL, *lin = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, t, 3, NULL, &sq));
    TU_OK(ctx, lgd_loss_create_linear(ctx, 2, 2, H, t, 3, 1.0f, &lin));
    float x[12] = { 0 }, loss[6], grad[12];
    /* batch 2 (n 3 gives 6 rows, still batch 2) does not fit 3 target rows */
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, eval_host(ctx, sq, x, 2, 1, 2, loss, grad));
    assert_msg_contains(ctx, "target rows");
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, eval_host(ctx, sq, x, 2, 3, 2, loss, grad));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, eval_host(ctx, lin, x, 1, 3, 2, loss, NULL));
    assert_msg_contains(ctx, "linear");
    /* batch 3 fits */
    TU_OK(ctx, eval_host(ctx, sq, x, 3, 2, 2, loss, grad));
    ck_assert_float_eq(loss[0], 0.0f);
    ck_assert_float_eq(loss[2], 2.0f);
    ck_assert_float_eq(loss[5], 8.0f);
    TU_OK(ctx, eval_host(ctx, lin, x, 3, 1, 2, loss, grad));
    ck_assert_float_eq(loss[2], 4.0f);
    /* inside a sum the term's error surfaces */
    lgd_loss *sum = NULL;
    lgd_loss *terms[2] = { sq, lin };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, NULL, &sum));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, eval_host(ctx, sum, x, 2, 1, 2, loss, grad));
    assert_msg_contains(ctx, "term 0");
    TU_OK(ctx, eval_host(ctx, sum, x, 3, 1, 2, loss, grad));
    ck_assert_float_eq(loss[2], 8.0f + 4.0f);
    lgd_loss_destroy(sum);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(lin);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------ lifetimes and memory */

START_TEST(test_sum_outlives_terms)
{
    lgd_context *ctx = tu_context(1);
    const float t[2] = { 1, 1 }, a[2] = { 1, 1 };
    cb_state s = { 0 };
    lgd_loss *terms[3] = { NULL, NULL, NULL }, *sum = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, t, 1, NULL, &terms[0]));
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 2, a, 0.0f, &terms[1]));
    terms[2] = make_cb_loss(ctx, &s, 2);
    TU_OK(ctx, lgd_loss_create_sum(ctx, 3, terms, NULL, &sum));
    float want, got;
    const float x[2] = { 0.5f, -0.5f };
    TU_OK(ctx, eval_host(ctx, sum, x, 1, 1, 2, &want, NULL));
    for (int k = 0; k < 3; k++)
        lgd_loss_destroy(terms[k]);
    ck_assert_int_eq(s.destroyed, 0); /* still held by the sum */
    TU_OK(ctx, eval_host(ctx, sum, x, 1, 1, 2, &got, NULL));
    ck_assert_float_eq(got, want);
    lgd_loss_destroy(sum);
    ck_assert_int_eq(s.destroyed, 1);
    size_t cur = 1;
    lgd_context_memory_usage(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, 0);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_loss_outlives_context)
{
    lgd_context *ctx = tu_context(1);
    const float t[2] = { 1, 2 }, H[4] = { 1, 0, 0, 2 };
    cb_state s = { 0 };
    lgd_loss *sq = NULL, *lin = NULL, *sum = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, t, 1, NULL, &sq));
    TU_OK(ctx, lgd_loss_create_linear(ctx, 2, 2, H, t, 1, 1.0f, &lin));
    lgd_loss *cbl = make_cb_loss(ctx, &s, 2);
    lgd_loss *terms[3] = { sq, lin, cbl };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 3, terms, NULL, &sum));
    lgd_tensor *x = tu_tensor(ctx, 1, 2, t), *loss = tu_tensor(ctx, 1, 1, NULL);
    lgd_tensor *grad = tu_tensor(ctx, 1, 2, NULL);
    lgd_context_destroy(ctx); /* the losses and tensors keep it alive */
    ck_assert_int_eq(lgd_loss_eval(sq, x, loss, grad), LGD_OK);
    float v;
    ck_assert_int_eq(lgd_tensor_download(loss, &v, 1), LGD_OK);
    ck_assert_float_eq(v, 0.0f);
    ck_assert_int_eq(lgd_loss_eval(sum, x, loss, grad), LGD_OK);
    ck_assert_int_eq(lgd_loss_eval(lin, x, loss, NULL), LGD_OK);
    ck_assert_int_eq(lgd_tensor_download(loss, &v, 1), LGD_OK);
    ck_assert_float_eq(v, 0.5f * (0.0f + 4.0f)); /* Hx - y = (0, 2) */
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(loss);
    lgd_tensor_destroy(grad);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(cbl);
    lgd_loss_destroy(lin);
    ck_assert_int_eq(s.destroyed, 0);
    lgd_loss_destroy(sum); /* the last reference: frees the context too */
    ck_assert_int_eq(s.destroyed, 1);
}
END_TEST

START_TEST(test_scratch_steady_state)
{
    /* scratch memory grows with the batch only, never per call */
    lgd_context *ctx = tu_context(1);
    enum { D = 6, M = 4 };
    float *H = random_array(1, M * D, 0.5f), *y = random_array(2, M, 1.0f);
    float *a = random_array(3, D, 1.0f);
    lgd_loss *lin = NULL, *lg = NULL, *sum = NULL;
    TU_OK(ctx, lgd_loss_create_linear(ctx, D, M, H, y, 1, 1.0f, &lin));
    TU_OK(ctx, lgd_loss_create_logistic(ctx, D, a, 0.0f, &lg));
    lgd_loss *terms[2] = { lin, lg };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, NULL, &sum));
    lgd_tensor *x8 = tu_tensor(ctx, 8, D, NULL), *l8 = tu_tensor(ctx, 8, 1, NULL);
    lgd_tensor *g8 = tu_tensor(ctx, 8, D, NULL);
    lgd_tensor *x4 = tu_tensor(ctx, 4, D, NULL), *l4 = tu_tensor(ctx, 4, 1, NULL);
    lgd_tensor *g4 = tu_tensor(ctx, 4, D, NULL);
    size_t c0, c1, c2, c3;
    lgd_context_memory_usage(ctx, &c0, NULL);
    TU_OK(ctx, lgd_loss_eval(sum, x4, l4, g4));
    lgd_context_memory_usage(ctx, &c1, NULL);
    ck_assert_uint_gt(c1, c0);
    for (int i = 0; i < 3; i++) {
        TU_OK(ctx, lgd_loss_eval(sum, x4, l4, g4));
        TU_OK(ctx, lgd_loss_eval(sum, x4, l4, NULL));
    }
    lgd_context_memory_usage(ctx, &c2, NULL);
    ck_assert_uint_eq(c2, c1);
    TU_OK(ctx, lgd_loss_eval(sum, x8, l8, g8));
    lgd_context_memory_usage(ctx, &c3, NULL);
    ck_assert_uint_gt(c3, c2);
    TU_OK(ctx, lgd_loss_eval(sum, x4, l4, g4));
    TU_OK(ctx, lgd_loss_eval(sum, x8, l8, g8));
    lgd_context_memory_usage(ctx, &c2, NULL);
    ck_assert_uint_eq(c2, c3);
    lgd_tensor *all[] = { x8, l8, g8, x4, l4, g4 };
    for (size_t i = 0; i < 6; i++)
        lgd_tensor_destroy(all[i]);
    lgd_loss_destroy(sum);
    lgd_loss_destroy(lin);
    lgd_loss_destroy(lg);
    lgd_context_memory_usage(ctx, &c2, NULL);
    ck_assert_uint_eq(c2, 0);
    free(H);
    free(y);
    free(a);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(test_eval_raw)
{
    /* the internal entry point the guidance uses: raw backend memory */
    lgd_context *ctx = tu_context(1);
    const float t[2] = { 1, -1 };
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 2, t, 1, NULL, &l));
    float x[6] = { 1, -1, 2, -1, 1, 1 }, loss[3], grad[6];
    TU_OK(ctx, lgd_loss_eval_raw(l, x, 1, 3, loss, grad));
    ck_assert_float_eq(loss[0], 0.0f);
    ck_assert_float_eq(loss[1], 1.0f);
    ck_assert_float_eq(loss[2], 4.0f);
    ck_assert_float_eq(grad[5], 4.0f);
    x[3] = NAN;
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_loss_eval_raw(l, x, 3, 1, loss, NULL));
    ck_assert_ptr_eq(lgd_loss_retain(l), l);
    lgd_loss_release(l);
    lgd_loss_release(l);
    ck_assert_ptr_null(lgd_loss_retain(NULL));
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loss");
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, test_sqerr_exact);
    tcase_add_test(unit, test_linear_exact);
    tcase_add_test(unit, test_logistic_exact);
    tcase_add_test(unit, test_sum_exact);
    tcase_add_test(unit, test_logistic_mixture_paper);
    tcase_add_test(unit, test_logistic_stable);
    tcase_add_test(unit, test_callback_receives_layout);
    tcase_add_test(unit, test_callback_staging);
    tcase_add_test(unit, test_callback_failure);
    tcase_add_test(unit, test_callback_non_finite);
    tcase_add_test(unit, test_callback_options);
    tcase_add_test(unit, test_callback_error_message);
    tcase_add_test(unit, test_callback_unwritten_outputs);
    tcase_add_test(unit, test_callback_eval_draws);
    tcase_add_test(unit, test_create_bad_input);
    tcase_add_test(unit, test_eval_bad_input);
    tcase_add_test(unit, test_wrong_target_rows);
    tcase_add_test(unit, test_sum_outlives_terms);
    tcase_add_test(unit, test_loss_outlives_context);
    tcase_add_test(unit, test_scratch_steady_state);
    tcase_add_test(unit, test_eval_raw);
    suite_add_tcase(s, unit);

    TCase *grad = tcase_create("grad");
    tcase_set_timeout(grad, 600);
    tcase_add_test(grad, test_fd_detects_wrong_gradient);
    tcase_add_test(grad, test_sqerr_grad_fd);
    tcase_add_test(grad, test_linear_grad_fd);
    tcase_add_test(grad, test_logistic_grad_fd);
    tcase_add_test(grad, test_callback_grad_fd);
    tcase_add_test(grad, test_sum_grad_fd);
    suite_add_tcase(s, grad);
    return tu_run(s);
}
