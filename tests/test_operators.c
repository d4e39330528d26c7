/*
 * test_operators.c - the matrix-free linear operators and their loss (lgd/operator.h):
 * every kind against a dense float64 matrix built here from the header's formulas (H and
 * H^T), adjointness <H x, z> = <x, H^T z>, the bicubic weights against PyTorch's, the
 * loss against finite differences and against lgd_loss_create_linear() with the dense H,
 * a guided DPS / LGD-MC step with either loss, the paper's s^2 factor as the step
 * rule's scale, thread-count independence, bad arguments, and (with $LGD_CUDA_MODULE and
 * a device) the CUDA kernels against the CPU's bits.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ------------------------------------------------------------------ the reference */

static double ref_keys(double t) /* the Keys cubic, a = -0.5, written out */
{
    t = fabs(t);
    if (t < 1.0)
        return 1.5 * t * t * t - 2.5 * t * t + 1.0;
    if (t < 2.0)
        return -0.5 * t * t * t + 2.5 * t * t - 4.0 * t + 2.0;
    return 0.0;
}

/* reflect without repeating the edge, by repeated mirroring */
static int ref_reflect(int p, int n)
{
    if (n == 1)
        return 0;
    while (p < 0 || p >= n)
        p = p < 0 ? -p : 2 * (n - 1) - p;
    return p;
}

static int ref_radius(const lgd_operator_options *o)
{
    return o->blur_radius ? o->blur_radius : (int)ceil(3.0 * (double)o->blur_sigma);
}

/* The 1-D matrix A[n_out][n] of one axis (avg pool, bicubic, blur). */
static double *ref_axis(const lgd_operator_options *o, int n, int *n_out)
{
    int f = o->factor;
    int no = o->kind == LGD_OPERATOR_BLUR ? n : n / f;
    double *A = calloc((size_t)no * (size_t)n, sizeof *A);
    ck_assert_ptr_nonnull(A);
    for (int i = 0; i < no; i++) {
        double *a = A + (size_t)i * (size_t)n;
        if (o->kind == LGD_OPERATOR_AVG_POOL) {
            for (int p = f * i; p < f * (i + 1); p++)
                a[p] = 1.0 / f;
        } else if (o->kind == LGD_OPERATOR_BICUBIC_DOWN) {
            double c = f * (i + 0.5), total = 0.0;
            for (int p = 0; p < n; p++) {
                a[p] = ref_keys((p + 0.5 - c) / f);
                total += a[p];
            }
            for (int p = 0; p < n; p++)
                a[p] /= total;
        } else {
            int r = ref_radius(o);
            double s = o->blur_sigma, total = 0.0;
            for (int k = -r; k <= r; k++)
                total += exp(-(double)k * k / (2.0 * s * s));
            for (int k = -r; k <= r; k++)
                a[ref_reflect(i + k, n)] += exp(-(double)k * k / (2.0 * s * s)) / total;
        }
    }
    *n_out = no;
    return A;
}

/* The dense H [m][dim] of an operator, in double. */
static double *ref_dense(const lgd_operator_options *o, int64_t *out_m, int64_t *out_dim)
{
    int C = (int)o->channels, H = (int)o->height, W = (int)o->width;
    size_t dim = (size_t)C * H * W;
    if (o->kind == LGD_OPERATOR_MASK) {
        double *D = calloc(dim * dim, sizeof *D);
        ck_assert_ptr_nonnull(D);
        for (size_t j = 0; j < dim; j++)
            D[j * dim + j] = o->mask[j];
        *out_m = (int64_t)dim;
        *out_dim = (int64_t)dim;
        return D;
    }
    int oh, ow;
    double *Ah = ref_axis(o, H, &oh), *Aw = ref_axis(o, W, &ow);
    size_t m = (size_t)C * oh * ow;
    double *D = calloc(m * dim, sizeof *D);
    ck_assert_ptr_nonnull(D);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
                for (int p = 0; p < H; p++)
                    for (int q = 0; q < W; q++)
                        D[(((size_t)c * oh + i) * ow + j) * dim + ((size_t)c * H + p) * W + q] =
                            Ah[(size_t)i * H + p] * Aw[(size_t)j * W + q];
    free(Ah);
    free(Aw);
    *out_m = (int64_t)m;
    *out_dim = (int64_t)dim;
    return D;
}

/* out[r] = D in[r] (adjoint 0) or D^T in[r] (adjoint 1), in double */
static double *ref_apply(const double *D, int64_t m, int64_t dim, int adjoint, const float *in,
                         int64_t rows)
{
    int64_t in_len = adjoint ? m : dim, out_len = adjoint ? dim : m;
    double *out = calloc((size_t)(rows * out_len), sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t a = 0; a < m; a++)
            for (int64_t b = 0; b < dim; b++) {
                double h = D[a * dim + b];
                if (adjoint)
                    out[r * out_len + b] += h * in[r * in_len + a];
                else
                    out[r * out_len + a] += h * in[r * in_len + b];
            }
    return out;
}

/* ------------------------------------------------------------------ helpers */

static lgd_operator_options op_opts(lgd_operator_kind kind, int64_t C, int64_t H, int64_t W)
{
    lgd_operator_options o = LGD_OPERATOR_OPTIONS_INIT;
    o.kind = kind;
    o.channels = C;
    o.height = H;
    o.width = W;
    return o;
}

/* lgd_operator_apply on host rows; returns the output (malloc'd) */
static float *apply_host(lgd_context *ctx, const lgd_operator_options *o, int adjoint,
                         const float *in, int64_t rows)
{
    int64_t dim = 0, m = 0;
    TU_OK(ctx, lgd_operator_dims(ctx, o, &dim, &m));
    lgd_tensor *tx = tu_tensor(ctx, rows, adjoint ? m : dim, in);
    lgd_tensor *to = tu_tensor(ctx, rows, adjoint ? dim : m, NULL);
    TU_OK(ctx, lgd_tensor_fill(to, NAN)); /* every output must be written */
    TU_OK(ctx, lgd_operator_apply(ctx, o, adjoint, tx, to));
    float *out = tu_download(to);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    return out;
}

static float *random_floats(size_t n, uint64_t seed)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    tu_rng rng = { seed };
    tu_fill_normal(&rng, x, n, 1.0f);
    return x;
}

/* |got - want| <= tol * (sum_b |D_ab| |in_b| + 1e-30) for every output: the float
 * rounding of the weights and of the result, relative to the terms of the sum */
static void assert_matches_ref(const float *got, const double *want, const double *D,
                               int64_t m, int64_t dim, int adjoint, const float *in,
                               int64_t rows, double tol, const char *what)
{
    int64_t in_len = adjoint ? m : dim, out_len = adjoint ? dim : m;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t a = 0; a < out_len; a++) {
            double scale = 0.0;
            for (int64_t b = 0; b < in_len; b++) {
                double h = adjoint ? D[b * dim + a] : D[a * dim + b];
                scale += fabs(h) * fabs((double)in[r * in_len + b]);
            }
            double g = got[r * out_len + a], w = want[r * out_len + a];
            ck_assert_msg(fabs(g - w) <= tol * scale + 1e-30,
                          "%s: row %lld, output %lld: got %.9g, want %.9g (scale %.3g)", what,
                          (long long)r, (long long)a, g, w, scale);
        }
}

static void assert_msg_contains(lgd_context *ctx, const char *needle)
{
    const char *msg = lgd_context_last_error(ctx);
    ck_assert_msg(strstr(msg, needle) != NULL, "error message \"%s\" lacks \"%s\"", msg, needle);
}

/* The operators every numerical test runs over. mask_store holds the masks. */
enum { N_CASES = 12 };
static float mask_store[2][3 * 7 * 5];

static lgd_operator_options test_case(int k)
{
    lgd_operator_options o;
    switch (k) {
    case 0: o = op_opts(LGD_OPERATOR_AVG_POOL, 2, 8, 6); break;  /* factor 2 */
    case 1: o = op_opts(LGD_OPERATOR_AVG_POOL, 1, 9, 12); o.factor = 3; break;
    case 2: o = op_opts(LGD_OPERATOR_AVG_POOL, 3, 4, 4); o.factor = 1; break; /* identity */
    case 3: o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 2, 8, 6); break;
    case 4: o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 1, 12, 9); o.factor = 3; break;
    case 5: o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 1, 8, 16); o.factor = 4; break;
    case 6: /* a 0/1 inpainting mask */
        o = op_opts(LGD_OPERATOR_MASK, 3, 7, 5);
        for (int j = 0; j < 3 * 7 * 5; j++)
            mask_store[0][j] = (j * 7) % 5 < 3 ? 1.0f : 0.0f;
        o.mask = mask_store[0];
        break;
    case 7: /* per-pixel weights of any sign */
        o = op_opts(LGD_OPERATOR_MASK, 1, 7, 5);
        for (int j = 0; j < 7 * 5; j++)
            mask_store[1][j] = (float)(0.25 * ((j * 3) % 7) - 0.5);
        o.mask = mask_store[1];
        break;
    case 8: o = op_opts(LGD_OPERATOR_BLUR, 2, 7, 9); o.blur_sigma = 1.2f; break; /* r = 4 */
    case 9: o = op_opts(LGD_OPERATOR_BLUR, 1, 4, 3); o.blur_sigma = 2.0f; o.blur_radius = 9;
        break; /* the radius folds over the image several times */
    case 10: o = op_opts(LGD_OPERATOR_BLUR, 2, 1, 6); o.blur_sigma = 0.7f; break; /* height 1 */
    default: o = op_opts(LGD_OPERATOR_BLUR, 1, 5, 5); o.blur_sigma = 3.0f; o.blur_radius = 1;
        break;
    }
    return o;
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_options_init_and_dims)
{
    lgd_context *ctx = tu_context(1);
    lgd_operator_options o, want = LGD_OPERATOR_OPTIONS_INIT;
    memset(&o, 0xAB, sizeof o);
    ck_assert_int_eq(lgd_operator_options_init(&o, sizeof o), LGD_OK);
    ck_assert_int_eq(o.struct_size, sizeof o);
    ck_assert_int_eq(want.struct_size, sizeof o);
    ck_assert_int_eq(o.kind, LGD_OPERATOR_AVG_POOL);
    ck_assert_int_eq(o.factor, 2);
    ck_assert(o.blur_sigma == 1.0f && o.blur_radius == 0 && o.mask == NULL);
    ck_assert(o.channels == 0 && o.height == 0 && o.width == 0);
    ck_assert_int_eq(lgd_operator_options_init(NULL, sizeof o), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_operator_options_init(&o, sizeof o - 1), LGD_ERR_INVALID_ARGUMENT);
    /* a newer caller's larger struct: the tail is zeroed */
    struct { lgd_operator_options o; unsigned char tail[16]; } big;
    memset(&big, 0xCD, sizeof big);
    ck_assert_int_eq(lgd_operator_options_init(&big.o, sizeof big), LGD_OK);
    ck_assert_int_eq(big.o.struct_size, sizeof big);
    ck_assert_int_eq(big.o.factor, 2);
    for (size_t i = 0; i < sizeof big.tail; i++)
        ck_assert_int_eq(big.tail[i], 0);

    static const struct { int k; int64_t dim, m; } want_dims[] = {
        { 0, 96, 24 }, { 1, 108, 12 }, { 2, 48, 48 }, { 3, 96, 24 }, { 4, 108, 12 },
        { 5, 128, 8 }, { 6, 105, 105 }, { 8, 126, 126 }, { 10, 12, 12 },
    };
    for (size_t i = 0; i < sizeof want_dims / sizeof want_dims[0]; i++) {
        lgd_operator_options c = test_case(want_dims[i].k);
        int64_t dim = -1, m = -1;
        TU_OK(ctx, lgd_operator_dims(ctx, &c, &dim, &m));
        ck_assert_int_eq(dim, want_dims[i].dim);
        ck_assert_int_eq(m, want_dims[i].m);
        TU_OK(ctx, lgd_operator_dims(ctx, &c, NULL, NULL));
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* H and H^T of every case against the dense float64 matrix */
START_TEST(test_against_dense)
{
    lgd_context *ctx = tu_context(2);
    for (int k = 0; k < N_CASES; k++) {
        lgd_operator_options o = test_case(k);
        int64_t m, dim;
        double *D = ref_dense(&o, &m, &dim);
        const int64_t rows = 3;
        for (int adjoint = 0; adjoint <= 1; adjoint++) {
            int64_t in_len = adjoint ? m : dim;
            float *in = random_floats((size_t)(rows * in_len), 100 + (uint64_t)k);
            float *got = apply_host(ctx, &o, adjoint, in, rows);
            double *want = ref_apply(D, m, dim, adjoint, in, rows);
            char what[64];
            snprintf(what, sizeof what, "case %d, %s", k, adjoint ? "H^T" : "H");
            /* weights rounded to float (2^-24), two passes rounded once each */
            assert_matches_ref(got, want, D, m, dim, adjoint, in, rows, 3e-7, what);
            free(in);
            free(got);
            free(want);
        }
        free(D);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* <H x, z> = <x, H^T z> in double, to the float rounding of the two sides */
START_TEST(test_adjointness)
{
    lgd_context *ctx = tu_context(2);
    for (int k = 0; k < N_CASES; k++) {
        lgd_operator_options o = test_case(k);
        int64_t dim, m;
        TU_OK(ctx, lgd_operator_dims(ctx, &o, &dim, &m));
        const int64_t rows = 4;
        float *x = random_floats((size_t)(rows * dim), 7 + (uint64_t)k);
        float *z = random_floats((size_t)(rows * m), 70 + (uint64_t)k);
        float *hx = apply_host(ctx, &o, 0, x, rows);
        float *htz = apply_host(ctx, &o, 1, z, rows);
        for (int64_t r = 0; r < rows; r++) {
            double a = 0.0, b = 0.0, sa = 0.0, sb = 0.0;
            for (int64_t i = 0; i < m; i++) {
                a += (double)hx[r * m + i] * z[r * m + i];
                sa += fabs((double)hx[r * m + i] * z[r * m + i]);
            }
            for (int64_t j = 0; j < dim; j++) {
                b += (double)x[r * dim + j] * htz[r * dim + j];
                sb += fabs((double)x[r * dim + j] * htz[r * dim + j]);
            }
            /* each output of either side is within ~3 float roundings of the exact value
             * relative to its terms; 1e-6 of the absolute sums covers it */
            ck_assert_msg(fabs(a - b) <= 1e-6 * (sa + sb),
                          "case %d row %lld: <Hx, z> = %.12g but <x, H^T z> = %.12g", k,
                          (long long)r, a, b);
        }
        free(x);
        free(z);
        free(hx);
        free(htz);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/*
 * PyTorch's antialiased bicubic weights, computed once with torch 2.15.0 in float64:
 *   A = F.interpolate(torch.eye(N, dtype=torch.float64).reshape(N, 1, 1, N),
 *                     size=(1, N // f), mode='bicubic', antialias=True,
 *                     align_corners=False).reshape(N, N // f).T
 * (the 1-D matrix [N/f][N] from delta rows), and for the image
 * x[i][j] = ((7 i + 3 j) % 11) / 10 - 0.5 of 8 x 6,
 *   F.interpolate(x.reshape(1, 1, 8, 6), scale_factor=0.5, mode='bicubic',
 *                 antialias=True, align_corners=False)
 * (python3 with torch imported as above and torch.nn.functional as F; every value
 * printed with "%.17g").
 */
static const double torch_a8_2[4][8] = {
    { 0.46443514644351463, 0.46443514644351463, 0.12133891213389121, -0.037656903765690378,
      -0.012552301255230125, 0, 0, 0 },
    { -0.034749034749034749, 0.11196911196911197, 0.42857142857142855, 0.42857142857142855,
      0.11196911196911197, -0.034749034749034749, -0.011583011583011582, 0 },
    { 0, -0.011583011583011582, -0.034749034749034749, 0.11196911196911197,
      0.42857142857142855, 0.42857142857142855, 0.11196911196911197, -0.034749034749034749 },
    { 0, 0, 0, -0.012552301255230125, -0.037656903765690378, 0.12133891213389121,
      0.46443514644351463, 0.46443514644351463 },
};
static const double torch_a12_3[4][12] = {
    { 0.28000000000000003, 0.35999999999999999, 0.28000000000000003, 0.12000000000000002, 0,
      -0.026666666666666637, -0.013333333333333327, 0, 0, 0, 0, 0 },
    { -0.024390243902438994, 0, 0.10975609756097561, 0.25609756097560976, 0.32926829268292679,
      0.25609756097560976, 0.10975609756097561, 0, -0.024390243902438994,
      -0.012195121951219506, 0, 0 },
    { 0, 0, -0.012195121951219506, -0.024390243902438994, 0, 0.10975609756097561,
      0.25609756097560976, 0.32926829268292679, 0.25609756097560976, 0.10975609756097561, 0,
      -0.024390243902438994 },
    { 0, 0, 0, 0, 0, -0.013333333333333327, -0.026666666666666637, 0, 0.12000000000000002,
      0.28000000000000003, 0.35999999999999999, 0.28000000000000003 },
};
static const double torch_a8_4[2][8] = {
    { 0.19441544885177453, 0.25756784968684759, 0.25756784968684759, 0.19441544885177453,
      0.1041231732776618, 0.024269311064718163, -0.01278705636743215, -0.019572025052192066 },
    { -0.019572025052192066, -0.01278705636743215, 0.024269311064718163, 0.1041231732776618,
      0.19441544885177453, 0.25756784968684759, 0.25756784968684759, 0.19441544885177453 },
};
static const double torch_img_8x6[12] = {
    -0.021079813028483385, 0.065013254974607942, -0.12225801369023651, 0.11251837611670248,
    -0.012521736567538081, -0.0945945945945946, 0.044333694124489106, -0.095680686138701398,
    0.063792184294276313, 0.0094326079725495122, -0.10656839886294676, 0.13911171022916263,
};

/* The dense H of an N x N image (one channel) by applying the operator to the N^2
 * delta images, against A (x) A with A PyTorch's 1-D matrix [N/f][N]. */
static void check_torch_matrix(lgd_context *ctx, int N, int f, const double *A)
{
    lgd_operator_options o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 1, N, N);
    o.factor = f;
    int n = N / f, dim = N * N;
    float *deltas = calloc((size_t)dim * dim, sizeof *deltas);
    ck_assert_ptr_nonnull(deltas);
    for (int k = 0; k < dim; k++)
        deltas[(size_t)k * dim + k] = 1.0f;
    float *cols = apply_host(ctx, &o, 0, deltas, dim); /* row k: H e_k, [n][n] */
    for (int k = 0; k < dim; k++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double want = A[i * N + k / N] * A[j * N + k % N];
                double got = cols[(size_t)k * n * n + (size_t)i * n + j];
                ck_assert_msg(fabs(got - want) <= 1e-7,
                              "N %d f %d: H[(%d, %d)][(%d, %d)] = %.9g, PyTorch %.9g", N, f, i,
                              j, k / N, k % N, got, want);
            }
    free(deltas);
    free(cols);
}

START_TEST(test_bicubic_torch)
{
    lgd_context *ctx = tu_context(1);
    check_torch_matrix(ctx, 8, 2, &torch_a8_2[0][0]);
    check_torch_matrix(ctx, 12, 3, &torch_a12_3[0][0]);
    check_torch_matrix(ctx, 8, 4, &torch_a8_4[0][0]);
    /* and the reference of this file agrees with PyTorch too (it checks the others) */
    lgd_operator_options o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 1, 12, 12);
    o.factor = 3;
    int n_out;
    double *A = ref_axis(&o, 12, &n_out);
    ck_assert_int_eq(n_out, 4);
    for (int i = 0; i < 4 * 12; i++)
        ck_assert_msg(fabs(A[i] - (&torch_a12_3[0][0])[i]) <= 1e-15, "reference weight %d", i);
    free(A);
    /* an 8 x 6 image downsampled by 2, as PyTorch does it */
    float img[48];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 6; j++)
            img[i * 6 + j] = (float)(((i * 7 + j * 3) % 11) / 10.0 - 0.5);
    o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 1, 8, 6);
    float *y = apply_host(ctx, &o, 0, img, 1);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(fabs(y[i] - torch_img_8x6[i]) <= 2e-7, "8x6 output %d: %.9g vs %.9g", i,
                      (double)y[i], torch_img_8x6[i]);
    free(y);
    lgd_context_destroy(ctx);
}
END_TEST

/* known values by hand: a 2 x 2 average, a blur of a delta, the reflection */
START_TEST(test_known_values)
{
    lgd_context *ctx = tu_context(1);
    lgd_operator_options o = op_opts(LGD_OPERATOR_AVG_POOL, 1, 2, 4);
    float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    float *y = apply_host(ctx, &o, 0, x, 1);
    ck_assert(y[0] == 3.5f && y[1] == 5.5f); /* (1+2+5+6)/4, (3+4+7+8)/4 */
    free(y);
    float z[2] = { 4, 8 };
    y = apply_host(ctx, &o, 1, z, 1); /* H^T spreads z / 4 over each block */
    float want_t[8] = { 1, 1, 2, 2, 1, 1, 2, 2 };
    ck_assert(memcmp(y, want_t, sizeof want_t) == 0);
    free(y);

    /* 1-D blur, sigma 1, radius 1: weights (e, 1, e) / (1 + 2e), e = exp(-1/2); a delta
     * at the edge pixel 0 of 5 reflects: y0 = w0 (centre), y1 = w1 and the mirrored
     * tap of y1 is pixel 0 only once; with a delta at pixel 1, y0 = 2 w1 (-1 -> 1) */
    o = op_opts(LGD_OPERATOR_BLUR, 1, 1, 5);
    o.blur_radius = 1;
    double e = exp(-0.5), w0 = 1.0 / (1.0 + 2.0 * e), w1 = e / (1.0 + 2.0 * e);
    float d1[5] = { 0, 1, 0, 0, 0 };
    y = apply_host(ctx, &o, 0, d1, 1);
    ck_assert_msg(fabs(y[0] - 2.0 * w1) < 1e-7 && fabs(y[1] - w0) < 1e-7 &&
                      fabs(y[2] - w1) < 1e-7 && y[3] == 0.0f && y[4] == 0.0f,
                  "blur of a delta: %g %g %g %g %g", (double)y[0], (double)y[1], (double)y[2],
                  (double)y[3], (double)y[4]);
    free(y);
    /* a constant image stays constant under any blur (the rows sum to 1) */
    o = op_opts(LGD_OPERATOR_BLUR, 2, 6, 5);
    o.blur_sigma = 1.7f;
    float ones[60];
    for (int i = 0; i < 60; i++)
        ones[i] = 1.0f;
    y = apply_host(ctx, &o, 0, ones, 1);
    for (int i = 0; i < 60; i++)
        ck_assert_msg(fabs(y[i] - 1.0f) < 1e-6, "blurred constant[%d] = %.9g", i, (double)y[i]);
    free(y);
    /* bicubic with factor 1 is the identity */
    o = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 1, 2, 4);
    o.factor = 1;
    y = apply_host(ctx, &o, 0, x, 1);
    ck_assert(memcmp(y, x, sizeof x) == 0);
    free(y);
    lgd_context_destroy(ctx);
}
END_TEST

/* 4-D tensors, x == out in place, and results independent of the thread count */
START_TEST(test_shapes_inplace_threads)
{
    lgd_context *c1 = tu_context(1), *c4 = tu_context(4);
    /* large enough for the kernels to run on several threads */
    lgd_operator_options cases[3];
    cases[0] = op_opts(LGD_OPERATOR_BICUBIC_DOWN, 3, 64, 48);
    cases[1] = op_opts(LGD_OPERATOR_BLUR, 3, 64, 48);
    cases[1].blur_sigma = 2.5f;
    cases[2] = op_opts(LGD_OPERATOR_AVG_POOL, 3, 64, 48);
    cases[2].factor = 4;
    for (int k = 0; k < 3; k++) {
        int64_t dim, m;
        TU_OK(c1, lgd_operator_dims(c1, &cases[k], &dim, &m));
        const int64_t rows = 8;
        float *x = random_floats((size_t)(rows * dim), 900 + (uint64_t)k);
        float *z = random_floats((size_t)(rows * m), 990 + (uint64_t)k);
        for (int adjoint = 0; adjoint <= 1; adjoint++) {
            float *a = apply_host(c1, &cases[k], adjoint, adjoint ? z : x, rows);
            float *b = apply_host(c4, &cases[k], adjoint, adjoint ? z : x, rows);
            ck_assert_msg(memcmp(a, b, (size_t)(rows * (adjoint ? dim : m)) * sizeof *a) == 0,
                          "case %d adjoint %d: 1 and 4 threads differ", k, adjoint);
            /* a 4-D [rows][C][H][W] tensor gives the same */
            if (!adjoint) {
                int64_t shape[4] = { rows, 3, 64, 48 };
                lgd_tensor *tx = tu_tensor_nd(c4, 4, shape, x);
                lgd_tensor *to = tu_tensor(c4, rows, m, NULL);
                TU_OK(c4, lgd_operator_apply(c4, &cases[k], 0, tx, to));
                float *c = tu_download(to);
                ck_assert(memcmp(a, c, (size_t)(rows * m) * sizeof *a) == 0);
                free(c);
                if (m == dim) { /* in place */
                    TU_OK(c4, lgd_operator_apply(c4, &cases[k], 0, tx, tx));
                    c = tu_download(tx);
                    ck_assert(memcmp(a, c, (size_t)(rows * m) * sizeof *a) == 0);
                    free(c);
                }
                lgd_tensor_destroy(tx);
                lgd_tensor_destroy(to);
            }
            free(a);
            free(b);
        }
        free(x);
        free(z);
    }
    lgd_context_destroy(c1);
    lgd_context_destroy(c4);
}
END_TEST

/* ---- the loss ---- */

static lgd_loss *make_loss(lgd_context *ctx, const lgd_operator_options *o, const float *y,
                           int64_t target_rows, float s2)
{
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_operator(ctx, o, y, target_rows, s2, &l));
    ck_assert_ptr_nonnull(l);
    return l;
}

/* lgd_loss_eval on host x [batch][n][dim] */
static void eval_host(lgd_context *ctx, lgd_loss *l, const float *x, int64_t batch, int64_t n,
                      int64_t dim, float *loss, float *grad)
{
    int64_t shape[3] = { batch, n, dim };
    lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, x);
    lgd_tensor *tl = tu_tensor(ctx, batch, n, NULL);
    lgd_tensor *tg = grad ? tu_tensor_nd(ctx, 3, shape, NULL) : NULL;
    TU_OK(ctx, lgd_loss_eval(l, tx, tl, tg));
    TU_OK(ctx, lgd_tensor_download(tl, loss, batch * n));
    if (grad)
        TU_OK(ctx, lgd_tensor_download(tg, grad, batch * n * dim));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
}

/* value and gradient against the dense formula in double, against central finite
 * differences, and against lgd_loss_create_linear with the dense H in float */
START_TEST(test_loss_reference_fd_linear)
{
    lgd_context *ctx = tu_context(2);
    const float s2 = 0.3f;
    for (int k = 0; k < N_CASES; k++) {
        lgd_operator_options o = test_case(k);
        int64_t m, dim;
        double *D = ref_dense(&o, &m, &dim);
        const int64_t batch = 3, n = 2, rows = batch * n;
        for (int64_t target_rows = 1; target_rows <= batch; target_rows += batch - 1) {
            float *y = random_floats((size_t)(target_rows * m), 300 + (uint64_t)k);
            float *x = random_floats((size_t)(rows * dim), 400 + (uint64_t)k);
            lgd_loss *l = make_loss(ctx, &o, y, target_rows, s2);
            ck_assert_int_eq(lgd_loss_dim(l), dim);
            float *loss = malloc((size_t)rows * sizeof *loss);
            float *grad = malloc((size_t)(rows * dim) * sizeof *grad);
            ck_assert(loss && grad);
            eval_host(ctx, l, x, batch, n, dim, loss, grad);

            /* the formula in double: row r's target is (r / n) % target_rows */
            double *hx = ref_apply(D, m, dim, 0, x, rows);
            float *res = malloc((size_t)(rows * m) * sizeof *res);
            ck_assert_ptr_nonnull(res);
            for (int64_t r = 0; r < rows; r++) {
                const float *yt = y + ((r / n) % target_rows) * m;
                double acc = 0.0;
                for (int64_t i = 0; i < m; i++) {
                    double d = hx[r * m + i] - yt[i];
                    acc += d * d;
                    res[r * m + i] = (float)(d / s2);
                }
                double want = acc / (2.0 * s2);
                ck_assert_msg(fabs(loss[r] - want) <= 1e-5 * want + 1e-6,
                              "case %d row %lld: loss %.9g, want %.9g", k, (long long)r,
                              (double)loss[r], want);
            }
            double *gref = ref_apply(D, m, dim, 1, res, rows);
            double gmax = 0.0;
            for (int64_t i = 0; i < rows * dim; i++)
                gmax = fmax(gmax, fabs(gref[i]));
            for (int64_t i = 0; i < rows * dim; i++)
                ck_assert_msg(fabs(grad[i] - gref[i]) <= 1e-5 * gmax,
                              "case %d: grad[%lld] = %.9g, want %.9g", k, (long long)i,
                              (double)grad[i], gref[i]);

            /* central differences on the first row's coordinates (the loss is quadratic:
             * exact up to the float rounding of the two values) */
            const double h = 1e-2;
            float *xp = malloc((size_t)(rows * dim) * sizeof *xp);
            float *lp = malloc((size_t)rows * sizeof *lp), *lm = malloc((size_t)rows * sizeof *lm);
            ck_assert(xp && lp && lm);
            for (int64_t j = 0; j < dim; j++) {
                memcpy(xp, x, (size_t)(rows * dim) * sizeof *xp);
                float a = (float)(x[j] + h), b = (float)(x[j] - h);
                xp[j] = a;
                eval_host(ctx, l, xp, batch, n, dim, lp, NULL);
                xp[j] = b;
                eval_host(ctx, l, xp, batch, n, dim, lm, NULL);
                double fd = ((double)lp[0] - lm[0]) / ((double)a - b);
                double round = 8.0 * FLT_EPSILON * (fabs((double)loss[0]) + 1.0) / ((double)a - b);
                ck_assert_msg(fabs(fd - grad[j]) <= round + 1e-3 * (fabs(grad[j]) + 1e-2 * gmax),
                              "case %d: d loss / d x[%lld]: fd %.9g, grad %.9g", k,
                              (long long)j, fd, (double)grad[j]);
                ck_assert_msg(lp[1] == loss[1] && lm[1] == loss[1], "other rows changed");
            }

            /* the dense linear loss with the same H (in float) and noise_sigma = sqrt(s2) */
            float *Hf = malloc((size_t)(m * dim) * sizeof *Hf);
            ck_assert_ptr_nonnull(Hf);
            for (int64_t i = 0; i < m * dim; i++)
                Hf[i] = (float)D[i];
            lgd_loss *lin = NULL;
            TU_OK(ctx, lgd_loss_create_linear(ctx, dim, m, Hf, y, target_rows,
                                              (float)sqrt((double)s2), &lin));
            float *loss2 = malloc((size_t)rows * sizeof *loss2);
            float *grad2 = malloc((size_t)(rows * dim) * sizeof *grad2);
            ck_assert(loss2 && grad2);
            eval_host(ctx, lin, x, batch, n, dim, loss2, grad2);
            for (int64_t r = 0; r < rows; r++)
                ck_assert_msg(fabs(loss[r] - loss2[r]) <= 1e-5 * fabs(loss2[r]) + 1e-6,
                              "case %d row %lld: operator %.9g, linear %.9g", k, (long long)r,
                              (double)loss[r], (double)loss2[r]);
            ck_assert_msg(tu_max_scaled_err(grad, grad2, (size_t)(rows * dim), 1e-5 * gmax,
                                            1e-5) <= 1.0,
                          "case %d: gradients of the operator and linear losses differ", k);
            lgd_loss_destroy(lin);
            free(Hf);
            free(loss2);
            free(grad2);
            free(xp);
            free(lp);
            free(lm);
            free(hx);
            free(res);
            free(gref);
            free(loss);
            free(grad);
            free(x);
            free(y);
            lgd_loss_destroy(l);
        }
        free(D);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* exact values: a 0/1 mask with y = 0 gives |m x|^2 / (2 s2); an average over a constant
 * image equals the constant */
START_TEST(test_loss_exact)
{
    lgd_context *ctx = tu_context(1);
    float mask[6] = { 1, 0, 1, 1, 0, 0 }, x[6] = { 1, 2, 3, 4, 5, 6 }, y[6] = { 0 };
    lgd_operator_options o = op_opts(LGD_OPERATOR_MASK, 1, 2, 3);
    o.mask = mask;
    lgd_loss *l = make_loss(ctx, &o, y, 1, 0.5f);
    float loss, grad[6];
    eval_host(ctx, l, x, 1, 1, 6, &loss, grad);
    ck_assert_msg(loss == 26.0f, "loss %g", (double)loss); /* (1 + 9 + 16) / (2 * 0.5) */
    float want_g[6] = { 2, 0, 6, 8, 0, 0 };                /* m (m x - y) / s2 */
    ck_assert(memcmp(grad, want_g, sizeof grad) == 0);
    lgd_loss_destroy(l);

    o = op_opts(LGD_OPERATOR_AVG_POOL, 1, 4, 4);
    float c[16], yc[4] = { 1.5f, 1.5f, 1.5f, 0.5f };
    for (int i = 0; i < 16; i++)
        c[i] = 1.5f;
    l = make_loss(ctx, &o, yc, 1, 2.0f);
    eval_host(ctx, l, c, 1, 1, 16, &loss, NULL);
    ck_assert_msg(loss == 0.25f, "loss %g", (double)loss); /* 1^2 / (2 * 2) */
    lgd_loss_destroy(l);
    lgd_context_destroy(ctx);
}
END_TEST

/* a guided DPS and LGD-MC step: the operator loss and the dense linear loss give the same
 * guided denoiser; and the paper's s^2 factor is the step rule's scale */
static float *guided(lgd_context *ctx, lgd_model *model, lgd_loss *loss,
                     lgd_guidance_kind kind, float scale, const float *x, int64_t B,
                     int64_t D, float sigma)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    go.n_samples = 8;
    go.chunk_size = 3;
    go.scale = scale;
    go.seed = 11;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, model, loss, &go, &g));
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *to = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_guidance_denoise(g, tx, sigma, 3, 0, to, NULL));
    float *out = tu_download(to);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_guidance_destroy(g);
    return out;
}

START_TEST(test_guided_step)
{
    lgd_context *ctx = tu_context(2);
    const int kinds[4] = { 0, 3, 6, 8 }; /* avg pool, bicubic, mask, blur */
    for (int kk = 0; kk < 4; kk++) {
        lgd_operator_options o = test_case(kinds[kk]);
        int64_t m, dim;
        double *Dd = ref_dense(&o, &m, &dim);
        float *Hf = malloc((size_t)(m * dim) * sizeof *Hf);
        ck_assert_ptr_nonnull(Hf);
        for (int64_t i = 0; i < m * dim; i++)
            Hf[i] = (float)Dd[i];
        /* a two-component isotropic Gaussian mixture prior on the images */
        float w[2] = { 0.4f, 0.6f }, var[2] = { 0.3f, 0.5f };
        float *mu = random_floats((size_t)(2 * dim), 55);
        lgd_model *model = NULL;
        TU_OK(ctx, lgd_model_create_gmm(ctx, dim, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC,
                                        &model));
        const int64_t B = 2;
        float *y = random_floats((size_t)(B * m), 66);
        float *x = random_floats((size_t)(B * dim), 77);
        const float s2 = 0.0625f; /* s = 0.25, the paper's App. B.2 */
        lgd_loss *op = make_loss(ctx, &o, y, B, s2), *lin = NULL;
        TU_OK(ctx, lgd_loss_create_linear(ctx, dim, m, Hf, y, B, 0.25f, &lin));
        for (int kind = LGD_GUIDANCE_DPS; kind <= LGD_GUIDANCE_MC; kind++) {
            float *a = guided(ctx, model, op, (lgd_guidance_kind)kind, 1.0f, x, B, dim, 0.8f);
            float *b = guided(ctx, model, lin, (lgd_guidance_kind)kind, 1.0f, x, B, dim, 0.8f);
            double amax = 0.0;
            for (int64_t i = 0; i < B * dim; i++)
                amax = fmax(amax, fabs(b[i]));
            ck_assert_msg(tu_max_scaled_err(a, b, (size_t)(B * dim), 1e-5 * amax, 1e-5) <= 1.0,
                          "case %d, guidance %d: operator and dense linear losses differ",
                          kinds[kk], kind);
            free(a);
            free(b);
        }
        /* DPS: the loss with s2 and the score rule's scale = s2 is the loss with s2 = 1 and
         * scale 1, which is what multiplying the guidance term by s2 means */
        lgd_loss *op1 = make_loss(ctx, &o, y, B, 1.0f);
        float *a = guided(ctx, model, op, LGD_GUIDANCE_DPS, s2, x, B, dim, 0.8f);
        float *b = guided(ctx, model, op1, LGD_GUIDANCE_DPS, 1.0f, x, B, dim, 0.8f);
        ck_assert_msg(tu_max_scaled_err(a, b, (size_t)(B * dim), 1e-6, 1e-5) <= 1.0,
                      "case %d: the s^2 factor as the step scale", kinds[kk]);
        free(a);
        free(b);
        lgd_loss_destroy(op1);
        lgd_loss_destroy(op);
        lgd_loss_destroy(lin);
        lgd_model_destroy(model);
        free(mu);
        free(y);
        free(x);
        free(Hf);
        free(Dd);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(test_bad_arguments)
{
    lgd_context *ctx = tu_context(1), *other = tu_context(1);
    lgd_operator_options good = op_opts(LGD_OPERATOR_AVG_POOL, 1, 4, 4);
    float y[16] = { 0 };
    lgd_loss *l = (lgd_loss *)(void *)&good; /* must be set to NULL on failure */
    int64_t dim = -7, m = -7;

    /* NULLs */
    ck_assert_int_eq(lgd_operator_dims(NULL, &good, &dim, &m), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_loss_create_operator(NULL, &good, y, 1, 1.0f, &l),
                     LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_dims(ctx, NULL, &dim, &m));
    ck_assert(dim == -7 && m == -7);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, &good, y, 1, 1.0f, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, NULL, y, 1, 1.0f, &l));
    ck_assert_ptr_null(l);
    l = (lgd_loss *)(void *)&good;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, &good, NULL, 1, 1.0f, &l));
    ck_assert_ptr_null(l);

    /* the options, one bad field at a time */
    lgd_operator_options o;
#define BAD(field_assignments, needle)                                                     \
    do {                                                                                   \
        o = good;                                                                          \
        field_assignments;                                                                 \
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_dims(ctx, &o, &dim, &m));     \
        assert_msg_contains(ctx, needle);                                                  \
        l = (lgd_loss *)(void *)&good;                                                     \
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, &o, y, 1, 1.0f, &l)); \
        ck_assert_ptr_null(l);                                                             \
    } while (0)
    BAD(o.struct_size = 8, "struct_size");
    BAD(o.kind = (lgd_operator_kind)4, "kind");
    BAD(o.kind = (lgd_operator_kind)-1, "kind");
    BAD(o.channels = 0, "channels");
    BAD(o.height = -3, "height");
    BAD(o.width = (int64_t)INT32_MAX + 1, "width");
    BAD((o.channels = INT32_MAX, o.height = INT32_MAX, o.width = INT32_MAX), "too large");
    BAD(o.factor = 0, "factor");
    BAD(o.factor = 3, "divide");
    BAD((o.kind = LGD_OPERATOR_BICUBIC_DOWN, o.width = 5), "divide");
    BAD(o.kind = LGD_OPERATOR_MASK, "mask");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_sigma = 0.0f), "blur_sigma");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_sigma = -1.0f), "blur_sigma");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_sigma = NAN), "blur_sigma");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_sigma = INFINITY), "blur_sigma");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_radius = -1), "blur_radius");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_radius = 4097), "blur_radius");
    BAD((o.kind = LGD_OPERATOR_BLUR, o.blur_sigma = 2000.0f), "automatic blur radius");
    /* larger structs only with a zero tail */
    struct { lgd_operator_options o; uint64_t tail; } big = { good, 0 };
    big.o.struct_size = sizeof big;
    TU_OK(ctx, lgd_operator_dims(ctx, &big.o, &dim, &m));
    ck_assert(dim == 16 && m == 4);
    big.tail = 1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_dims(ctx, &big.o, &dim, &m));
    /* the largest radius and a radius over the image are fine */
    o = good;
    o.kind = LGD_OPERATOR_BLUR;
    o.blur_radius = 4096;
    TU_OK(ctx, lgd_operator_dims(ctx, &o, &dim, &m));

    /* values */
    float mask[16];
    for (int i = 0; i < 16; i++)
        mask[i] = 1.0f;
    mask[5] = NAN;
    o = good;
    o.kind = LGD_OPERATOR_MASK;
    o.mask = mask;
    TU_OK(ctx, lgd_operator_dims(ctx, &o, &dim, &m)); /* values are not read here */
    l = (lgd_loss *)(void *)&good;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, &o, y, 1, 1.0f, &l));
    assert_msg_contains(ctx, "mask[5]");
    ck_assert_ptr_null(l);
    float ybad[8] = { 0, 0, 0, 0, 0, 0, 0, INFINITY };
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, &good, ybad, 2, 1.0f, &l));
    assert_msg_contains(ctx, "y[7]");
    const float bad_s2[] = { 0.0f, -1.0f, NAN, INFINITY, 1e-39f };
    for (size_t i = 0; i < sizeof bad_s2 / sizeof bad_s2[0]; i++) {
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_loss_create_operator(ctx, &good, y, 1, bad_s2[i], &l));
        assert_msg_contains(ctx, "s2");
        ck_assert_ptr_null(l);
    }
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_operator(ctx, &good, y, 0, 1.0f, &l));
    TU_FAILS(ctx, LGD_ERR_OUT_OF_MEMORY,
             lgd_loss_create_operator(ctx, &good, y, INT64_MAX / 2, 1.0f, &l));
    ck_assert_ptr_null(l);
    /* tables of H beyond int32 indices: 2^20 outputs x 8193 taps on the height axis */
    {
        o = op_opts(LGD_OPERATOR_BLUR, 1, 1 << 20, 1);
        o.blur_radius = 4096;
        float *ybig = calloc((size_t)1 << 20, sizeof *ybig);
        ck_assert_ptr_nonnull(ybig);
        TU_OK(ctx, lgd_operator_dims(ctx, &o, &dim, &m));
        ck_assert(dim == 1 << 20 && m == 1 << 20);
        TU_FAILS(ctx, LGD_ERR_OUT_OF_MEMORY, lgd_loss_create_operator(ctx, &o, ybig, 1, 1.0f, &l));
        assert_msg_contains(ctx, "too large");
        ck_assert_ptr_null(l);
        free(ybig);
    }

    /* evaluation: target rows neither 1 nor the batch */
    l = make_loss(ctx, &good, y, 2, 1.0f);
    float x[3 * 16] = { 0 }, loss[3];
    lgd_tensor *tx = tu_tensor(ctx, 3, 16, x), *tl = tu_tensor(ctx, 3, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l, tx, tl, NULL));
    assert_msg_contains(ctx, "target rows");
    lgd_loss_destroy(l);
    l = make_loss(ctx, &good, y, 1, 1.0f);
    TU_OK(ctx, lgd_loss_eval(l, tx, tl, NULL));
    TU_OK(ctx, lgd_tensor_download(tl, loss, 3));
    ck_assert(loss[0] == 0.0f && loss[2] == 0.0f);
    lgd_loss_destroy(l);

    /* apply */
    lgd_tensor *t16 = tu_tensor(ctx, 2, 16, NULL), *t4 = tu_tensor(ctx, 2, 4, NULL);
    lgd_tensor *t15 = tu_tensor(ctx, 1, 15, NULL), *t5 = tu_tensor(ctx, 2, 5, NULL);
    lgd_tensor *to = tu_tensor(other, 2, 4, NULL);
    ck_assert_int_eq(lgd_operator_apply(NULL, &good, 0, t16, t4), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, NULL, 0, t16, t4));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, &good, 2, t16, t4));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, &good, -1, t16, t4));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, &good, 0, NULL, t4));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, &good, 0, t16, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, &good, 0, t16, to));
    assert_msg_contains(ctx, "different context");
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_operator_apply(ctx, &good, 0, t15, t4));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_operator_apply(ctx, &good, 0, t16, t5));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_operator_apply(ctx, &good, 1, t16, t4));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_operator_apply(ctx, &good, 1, t5, t16));
    TU_OK(ctx, lgd_operator_apply(ctx, &good, 1, t4, t16));
    o = good;
    o.kind = LGD_OPERATOR_MASK;
    o.mask = mask;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_operator_apply(ctx, &o, 0, t16, t16));
    assert_msg_contains(ctx, "mask[5]");
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(t16);
    lgd_tensor_destroy(t4);
    lgd_tensor_destroy(t15);
    lgd_tensor_destroy(t5);
    lgd_tensor_destroy(to);
    lgd_context_destroy(ctx);
    lgd_context_destroy(other);
}
END_TEST

/* ---- CUDA against the CPU, bit for bit (needs $LGD_CUDA_MODULE and a device) ---- */

START_TEST(test_cuda_matches_cpu)
{
    const char *module = getenv("LGD_CUDA_MODULE");
    if (!module || !module[0])
        return; /* registered with the module only in a CUDA build (tests/meson.build) */
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = LGD_BACKEND_CUDA;
    co.cuda_module_path = module;
    lgd_context *gpu = NULL;
    const char *err = NULL;
    if (lgd_context_create(&co, &gpu, &err) != LGD_OK)
        return; /* no usable device here */
    lgd_context *cpu = tu_context(2);
    for (int k = 0; k < N_CASES; k++) {
        lgd_operator_options o = test_case(k);
        int64_t dim, m;
        TU_OK(cpu, lgd_operator_dims(cpu, &o, &dim, &m));
        const int64_t batch = 3, n = 2, rows = batch * n;
        float *x = random_floats((size_t)(rows * dim), 500 + (uint64_t)k);
        float *z = random_floats((size_t)(rows * m), 600 + (uint64_t)k);
        for (int adjoint = 0; adjoint <= 1; adjoint++) {
            float *a = apply_host(cpu, &o, adjoint, adjoint ? z : x, rows);
            float *b = apply_host(gpu, &o, adjoint, adjoint ? z : x, rows);
            ck_assert_msg(memcmp(a, b, (size_t)(rows * (adjoint ? dim : m)) * sizeof *a) == 0,
                          "case %d adjoint %d: CUDA differs from the CPU", k, adjoint);
            free(a);
            free(b);
        }
        float *y = random_floats((size_t)(batch * m), 700 + (uint64_t)k);
        lgd_loss *lc = make_loss(cpu, &o, y, batch, 0.5f), *lg = make_loss(gpu, &o, y, batch, 0.5f);
        float *l1 = malloc((size_t)rows * sizeof *l1), *l2 = malloc((size_t)rows * sizeof *l2);
        float *g1 = malloc((size_t)(rows * dim) * sizeof *g1);
        float *g2 = malloc((size_t)(rows * dim) * sizeof *g2);
        eval_host(cpu, lc, x, batch, n, dim, l1, g1);
        eval_host(gpu, lg, x, batch, n, dim, l2, g2);
        /* the loss value's row sum is a reduction of another order on the device */
        ck_assert(tu_max_scaled_err(l2, l1, (size_t)rows, 0.0, 1e-6) <= 1.0);
        ck_assert_msg(memcmp(g1, g2, (size_t)(rows * dim) * sizeof *g1) == 0,
                      "case %d: CUDA gradient differs from the CPU's", k);
        lgd_loss_destroy(lc);
        lgd_loss_destroy(lg);
        free(l1);
        free(l2);
        free(g1);
        free(g2);
        free(x);
        free(y);
        free(z);
    }
    lgd_context_destroy(cpu);
    lgd_context_destroy(gpu);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("operators");
    TCase *tc = tcase_create("operators");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_options_init_and_dims);
    tcase_add_test(tc, test_against_dense);
    tcase_add_test(tc, test_adjointness);
    tcase_add_test(tc, test_bicubic_torch);
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_shapes_inplace_threads);
    tcase_add_test(tc, test_loss_reference_fd_linear);
    tcase_add_test(tc, test_loss_exact);
    tcase_add_test(tc, test_guided_step);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_cuda_matches_cpu);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
