/*
 * test_cuda.c - the CUDA backend (cuda/, liblgd-cuda.so) against the CPU reference.
 *
 * Suite 'cuda'. The module comes from $LGD_CUDA_MODULE (set by tests/meson.build to
 * the built module) through lgd_context_options.cuda_module_path. Without a usable
 * device (no driver, no GPU, no module) the program prints why and exits 77, which
 * meson counts as a skip. Runs with CK_FORK=no: CUDA must not be initialised in a
 * process that then forks (the suite is forced to CK_NOFORK as well).
 *
 * With a device:
 *  - every backend operation and every kernel of the module kernel tables (gmm,
 *    loss_builtin, loss_trajectory, mc, nn) on random inputs, CUDA vs CPU: normalised error
 *    max|a - b| / (max|b| + eps) < 1e-5 (GEMM 1e-4); Philox normals and uniforms
 *    within 1e-5 absolute; categorical indices equal;
 *  - end to end: Euler, DDIM(eta = 1), Heun and DPM++(2M) x no guidance, DPS,
 *    LGD-MC (n = 10) and exact guidance on a 16-D, 4-component full-covariance
 *    Gaussian mixture with a squared-error loss, batch 64, 20 steps: CUDA samples
 *    equal the CPU samples within a normalised error of 1e-3, and the same seed
 *    twice on the GPU gives identical bytes;
 *  - host callbacks (LGD_MEMORY_HOST model and loss) are staged and receive host
 *    pointers; LGD_MEMORY_DEVICE callbacks receive device pointers
 *    (cudaPointerGetAttributes) and lgd_context_native_stream() is not NULL;
 *  - bad input (NULLs, mismatched shapes, NaN from a model or loss callback, a
 *    failing callback) gives the same status as on the CPU, and the objects stay
 *    usable;
 *  - memory: after a warm-up step, further sampler steps do not raise the
 *    context's peak memory, nor call cudaMalloc (counted by interposing
 *    cudaMalloc: the executable exports its own, which forwards to cudart's);
 *  - opening errors (ABI version, device index), the sticky error state and the
 *    backend's last_error (a failed cudaMalloc, a bad convolution shape, a sticky
 *    failure), and the kernel tables: the CUDA module returns each one for the version
 *    of this build's headers and refuses other versions and unknown names;
 *  - networks from files (tests/fixtures/nn): forward and VJP of ten fixture networks
 *    CUDA vs CPU (normalised error < 1e-4), guided DPS / LGD-MC terms with a loaded
 *    U-Net CUDA vs CPU (< 1e-3) and no cudaMalloc in a warm guided step;
 *  - the network loss (<lgd/network_loss.h>): cross-entropies (clean and noisy input) and a
 *    squared error over the mlp fixture in pieces of 5 rows, the classifier-guided model
 *    and an LGD-MC term with the loss, CUDA vs CPU (1e-4; the MC term 1e-3), and no
 *    cudaMalloc in a warm guided step;
 *  - network layers ("nn" table): every op against the CPU (1e-5, reductions 1e-4),
 *    backward ops with beta 0 over a NaN-filled dx and with beta 1; convolutions
 *    (strides 1/2, padding 0/1/2, kernels 1/3/5, 1-D, batch 1 and 3) through cuDNN
 *    and through the im2col fallback (a second backend opened with
 *    LGD_CUDA_CONV=im2col), and no cudaMalloc in repeated convolutions after a
 *    warm-up.
 *
 * The test reaches the backends through the private struct lgd_context
 * (src/core/internal.h): ctx->ops and ctx->be of a CPU and a CUDA context, and the
 * kernel tables: the CPU's from the modules (lgd_gmm_kernels_cpu, ...), CUDA's through
 * ops->kernels(be, name, version).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "core/kernels.h"
#include "core/rng.h"
#include "losses/loss_kernels.h"
#include "losses/trajectory_kernels.h"
#include "models/gmm_kernels.h"
#include "nn/nn_kernels.h"
#include "sampling/mc_kernels.h"
#include "testutil.h"

static const char *module_path; /* $LGD_CUDA_MODULE or NULL (default search) */
static lgd_context *gpu, *cpu;

/* ---- cudaMalloc interposer: counts the CUDA module's device allocations ---- */

static size_t cuda_malloc_calls;
typedef cudaError_t (*cuda_malloc_fn)(void **, size_t);

cudaError_t CUDARTAPI cudaMalloc(void **ptr, size_t size)
{
    static cuda_malloc_fn real;
    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "cudaMalloc");
        memcpy(&real, &sym, sizeof real);
    }
    if (!real || real == cudaMalloc)
        return cudaErrorInitializationError;
    cuda_malloc_calls++;
    return real(ptr, size);
}

/* ---- helpers ---- */

/* A backend: its tensor operations and the module kernel tables (core/kernels.h) */
typedef struct backend {
    lgd_backend *be;
    const lgd_backend_ops *ops;
    const lgd_gmm_kernels *gmm;
    const lgd_loss_kernels *loss;
    const lgd_trajectory_kernels *traj;
    const lgd_mc_kernels *mc;
    const lgd_nn_kernels *nn;
} backend;

/* The tables of a backend: the CPU's are the modules' own (the CPU backend has no
 * `kernels` slot); the CUDA module's come from its `kernels` slot, by name and by the
 * version of the module's header, as lgd_kernels_find() asks for them. */
static backend backend_of(lgd_backend *be, const lgd_backend_ops *ops)
{
    backend b = { be, ops, NULL, NULL, NULL, NULL, NULL };
    if (!ops->kernels) {
        b.gmm = &lgd_gmm_kernels_cpu;
        b.loss = &lgd_loss_kernels_cpu;
        b.traj = &lgd_trajectory_kernels_cpu;
        b.mc = &lgd_mc_kernels_cpu;
        b.nn = &lgd_nn_kernels_cpu;
        return b;
    }
    b.gmm = ops->kernels(be, "gmm", LGD_GMM_KERNELS_VERSION);
    b.loss = ops->kernels(be, "loss_builtin", LGD_LOSS_KERNELS_VERSION);
    b.traj = ops->kernels(be, "loss_trajectory", LGD_TRAJECTORY_KERNELS_VERSION);
    b.mc = ops->kernels(be, "mc", LGD_MC_KERNELS_VERSION);
    b.nn = ops->kernels(be, "nn", LGD_NN_KERNELS_VERSION);
    ck_assert_msg(b.gmm && b.loss && b.traj && b.mc && b.nn,
                  "backend %s lacks a module kernel table (gmm %d, loss_builtin %d, "
                  "loss_trajectory %d, mc %d, nn %d)", ops->name(be), b.gmm != NULL,
                  b.loss != NULL, b.traj != NULL, b.mc != NULL, b.nn != NULL);
    return b;
}

static backend G(void) { return backend_of(gpu->be, gpu->ops); }
static backend C(void) { return backend_of(cpu->be, cpu->ops); }

/* max |a - b| / (max |b| + eps); NaN anywhere gives +inf */
static double nerr(const float *a, const float *b, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d))
            return INFINITY;
        diff = d > diff ? d : diff;
        scale = fabs((double)b[i]) > scale ? fabs((double)b[i]) : scale;
    }
    return diff / (scale + 1e-30);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double diff = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d))
            return INFINITY;
        diff = d > diff ? d : diff;
    }
    return diff;
}

/* The same float array on the CPU backend (c, host memory) and the GPU (g). */
typedef struct pair {
    float *c, *g;
    size_t n;
} pair;

static pair pair_new(const float *host, size_t n)
{
    pair p = { NULL, NULL, n };
    size_t bytes = (n ? n : 1) * sizeof(float);
    p.c = C().ops->alloc(C().be, bytes);
    p.g = G().ops->alloc(G().be, bytes);
    ck_assert_ptr_nonnull(p.c);
    ck_assert_ptr_nonnull(p.g);
    if (host && n) {
        memcpy(p.c, host, n * sizeof(float));
        ck_assert_int_eq(G().ops->upload(G().be, p.g, host, n * sizeof(float)), 0);
    }
    return p;
}

static pair pair_random(tu_rng *r, size_t n, float scale)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    tu_fill_normal(r, h, n, scale);
    pair p = pair_new(h, n);
    free(h);
    return p;
}

static float *pair_gpu_host(pair p)
{
    float *h = malloc((p.n ? p.n : 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    ck_assert_msg(G().ops->download(G().be, h, p.g, p.n * sizeof(float)) == 0,
                  "download failed");
    return h;
}

/* Asserts nerr(gpu, cpu) < tol. */
static void pair_check(pair p, double tol, const char *what)
{
    float *h = pair_gpu_host(p);
    double e = nerr(h, p.c, p.n);
    ck_assert_msg(e < tol, "%s: normalised error %.3g >= %.3g (n = %zu)", what, e, tol, p.n);
    free(h);
}

static void pair_free(pair p)
{
    C().ops->free(C().be, p.c);
    G().ops->free(G().be, p.g);
}

#define OP_TOL 1e-5
#define GEMM_TOL 1e-4

static const size_t shapes[][2] = { { 1, 1 }, { 7, 3 }, { 64, 16 }, { 33, 100 },
                                    { 5, 513 }, { 3, 4099 }, { 1000, 2 } };
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* ---- elementwise ---- */

START_TEST(test_elementwise)
{
    tu_rng r = { 11 };
    for (size_t s = 0; s < NSHAPES; s++) {
        size_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        char what[128];
        backend b[2] = { C(), G() };

        /* fill: +0 (memset path), -0 and a value (kernel path) */
        const float values[] = { 0.0f, -0.0f, 2.5f };
        for (size_t v = 0; v < 3; v++) {
            pair x = pair_random(&r, n, 1.0f);
            for (int k = 0; k < 2; k++)
                b[k].ops->fill(b[k].be, k ? x.g : x.c, n, values[v]);
            float *h = pair_gpu_host(x);
            ck_assert_msg(memcmp(h, x.c, n * sizeof(float)) == 0, "fill %g (%zu x %zu)",
                          (double)values[v], rows, cols);
            free(h);
            pair_free(x);
        }

        /* axpby with b = 0 and b != 0 */
        for (int bz = 0; bz < 2; bz++) {
            pair x = pair_random(&r, n, 1.0f), y = pair_random(&r, n, 1.0f);
            for (int k = 0; k < 2; k++)
                b[k].ops->axpby(b[k].be, n, 0.75f, k ? x.g : x.c, bz ? 0.0f : -1.25f,
                                k ? y.g : y.c);
            snprintf(what, sizeof what, "axpby b%s0 (%zu x %zu)", bz ? "=" : "!=", rows, cols);
            pair_check(y, OP_TOL, what);
            pair_free(x);
            pair_free(y);
        }

        /* axpby_rows: strided a, separate y and in place (x == y) with b = 0 */
        {
            size_t stride = 3;
            pair a = pair_random(&r, rows * stride, 1.0f);
            pair x = pair_random(&r, n, 1.0f), y = pair_random(&r, n, 1.0f);
            for (int k = 0; k < 2; k++) {
                b[k].ops->axpby_rows(b[k].be, rows, cols, k ? a.g : a.c, stride, k ? x.g : x.c,
                                     0.5f, k ? y.g : y.c);
                b[k].ops->axpby_rows(b[k].be, rows, cols, k ? a.g + 1 : a.c + 1, stride,
                                     k ? x.g : x.c, 0.0f, k ? x.g : x.c);
            }
            snprintf(what, sizeof what, "axpby_rows (%zu x %zu)", rows, cols);
            pair_check(y, OP_TOL, what);
            pair_check(x, OP_TOL, what);
            pair_free(a);
            pair_free(x);
            pair_free(y);
        }

        /* sub_row */
        {
            pair x = pair_random(&r, n, 1.0f), row = pair_random(&r, cols, 1.0f);
            pair out = pair_new(NULL, n);
            for (int k = 0; k < 2; k++)
                b[k].ops->sub_row(b[k].be, rows, cols, k ? x.g : x.c, k ? row.g : row.c,
                                  k ? out.g : out.c);
            snprintf(what, sizeof what, "sub_row (%zu x %zu)", rows, cols);
            pair_check(out, OP_TOL, what);
            pair_free(x);
            pair_free(row);
            pair_free(out);
        }

        /* broadcast_axpy: repeat 1 and 4 (rows must divide), in place y == out */
        for (size_t rep = 1; rep <= 4; rep += 3) {
            size_t brows = rows * rep;
            pair x = pair_random(&r, rows * cols, 1.0f), y = pair_random(&r, brows * cols, 1.0f);
            pair out = pair_new(NULL, brows * cols);
            for (int k = 0; k < 2; k++) {
                b[k].ops->broadcast_axpy(b[k].be, brows, rep, cols, k ? x.g : x.c, -0.3f,
                                         k ? y.g : y.c, k ? out.g : out.c);
                b[k].ops->broadcast_axpy(b[k].be, brows, rep, cols, k ? x.g : x.c, 2.0f,
                                         k ? y.g : y.c, k ? y.g : y.c);
            }
            snprintf(what, sizeof what, "broadcast_axpy repeat %zu (%zu x %zu)", rep, rows, cols);
            pair_check(out, OP_TOL, what);
            pair_check(y, OP_TOL, what);
            pair_free(x);
            pair_free(y);
            pair_free(out);
        }

        /* diag_filter: the three filters; some eigenvalues 0 */
        for (int f = 0; f < 3; f++) {
            float *lh = malloc(cols * sizeof *lh);
            for (size_t j = 0; j < cols; j++)
                lh[j] = j % 5 == 4 ? 0.0f : (float)(0.1 + 3.0 * tu_uniform(&r));
            pair lam = pair_new(lh, cols);
            free(lh);
            pair in = pair_random(&r, n, 2.0f), out = pair_new(NULL, n);
            for (int k = 0; k < 2; k++)
                b[k].gmm->diag_filter(b[k].be, (lgd_diag_filter)f, rows, cols,
                                      k ? lam.g : lam.c, 0.7f, k ? in.g : in.c,
                                      k ? out.g : out.c);
            snprintf(what, sizeof what, "diag_filter %d (%zu x %zu)", f, rows, cols);
            pair_check(out, OP_TOL, what);
            pair_free(lam);
            pair_free(in);
            pair_free(out);
        }

        /* inv_sqrt_scale: values below the floor and negative */
        {
            pair in = pair_random(&r, n, 1.0f), out = pair_new(NULL, n);
            for (int k = 0; k < 2; k++)
                b[k].ops->inv_sqrt_scale(b[k].be, n, 1.5f, k ? in.g : in.c, 1e-3f,
                                         k ? out.g : out.c);
            snprintf(what, sizeof what, "inv_sqrt_scale (%zu)", n);
            pair_check(out, OP_TOL, what);
            pair_free(in);
            pair_free(out);
        }

        /* select_rows */
        {
            int32_t *ih = malloc(rows * sizeof *ih);
            for (size_t i = 0; i < rows; i++)
                ih[i] = (int32_t)(i % 3);
            int32_t *ic = C().ops->alloc(C().be, rows * sizeof(int32_t));
            int32_t *ig = G().ops->alloc(G().be, rows * sizeof(int32_t));
            memcpy(ic, ih, rows * sizeof(int32_t));
            ck_assert_int_eq(G().ops->upload(G().be, ig, ih, rows * sizeof(int32_t)), 0);
            free(ih);
            pair src = pair_random(&r, n, 1.0f), dst = pair_random(&r, n, 1.0f);
            for (int k = 0; k < 2; k++)
                b[k].ops->select_rows(b[k].be, rows, cols, k ? ig : ic, 1, k ? src.g : src.c,
                                      k ? dst.g : dst.c);
            snprintf(what, sizeof what, "select_rows (%zu x %zu)", rows, cols);
            pair_check(dst, OP_TOL, what);
            C().ops->free(C().be, ic);
            G().ops->free(G().be, ig);
            pair_free(src);
            pair_free(dst);
        }
    }
}
END_TEST

/* ---- row reductions ---- */

START_TEST(test_rows)
{
    tu_rng r = { 12 };
    backend b[2] = { C(), G() };
    for (size_t s = 0; s < NSHAPES; s++) {
        size_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        char what[128];

        /* row_dot, dense (out_stride 1) and strided (3) */
        {
            pair x = pair_random(&r, n, 1.0f), y = pair_random(&r, n, 1.0f);
            pair out = pair_new(NULL, rows), outs = pair_random(&r, rows * 3, 1.0f);
            for (int k = 0; k < 2; k++) {
                b[k].ops->row_dot(b[k].be, rows, cols, k ? x.g : x.c, k ? y.g : y.c,
                                  k ? out.g : out.c, 1);
                b[k].ops->row_dot(b[k].be, rows, cols, k ? x.g : x.c, k ? y.g : y.c,
                                  k ? outs.g + 1 : outs.c + 1, 3);
            }
            snprintf(what, sizeof what, "row_dot (%zu x %zu)", rows, cols);
            pair_check(out, OP_TOL, what);
            pair_check(outs, OP_TOL, what);
            pair_free(x);
            pair_free(y);
            pair_free(out);
            pair_free(outs);
        }

        /* softmax_rows_backward, in place (d == out) and not */
        {
            float *ph = malloc(n * sizeof *ph);
            for (size_t i = 0; i < n; i++)
                ph[i] = (float)tu_uniform(&r);
            pair p = pair_new(ph, n);
            free(ph);
            pair d = pair_random(&r, n, 2.0f), out = pair_new(NULL, n);
            for (int k = 0; k < 2; k++) {
                b[k].ops->softmax_rows_backward(b[k].be, rows, cols, k ? p.g : p.c,
                                                k ? d.g : d.c, 0.3f, k ? out.g : out.c);
                b[k].ops->softmax_rows_backward(b[k].be, rows, cols, k ? p.g : p.c,
                                                k ? d.g : d.c, 2.0f, k ? d.g : d.c);
            }
            snprintf(what, sizeof what, "softmax_rows_backward (%zu x %zu)", rows, cols);
            pair_check(out, OP_TOL, what);
            pair_check(d, OP_TOL, what);
            pair_free(p);
            pair_free(d);
            pair_free(out);
        }

        /* the mixture's gaussian_logp (gmm table), strided output */
        {
            float *lh = malloc(cols * sizeof *lh);
            for (size_t j = 0; j < cols; j++)
                lh[j] = (float)(0.01 + 2.0 * tu_uniform(&r));
            pair lam = pair_new(lh, cols);
            free(lh);
            pair x = pair_random(&r, n, 1.5f), out = pair_random(&r, rows * 4, 1.0f);
            for (int k = 0; k < 2; k++)
                b[k].gmm->gaussian_logp(b[k].be, rows, cols, k ? x.g : x.c, k ? lam.g : lam.c,
                                        0.25f, -3.5f, k ? out.g + 2 : out.c + 2, 4);
            snprintf(what, sizeof what, "gaussian_logp (%zu x %zu)", rows, cols);
            pair_check(out, OP_TOL, what);
            pair_free(lam);
            pair_free(x);
            pair_free(out);
        }

        /* softmax_rows and logsumexp_rows, with large offsets */
        {
            pair x = pair_random(&r, n, 8.0f), out = pair_new(NULL, rows);
            for (int k = 0; k < 2; k++) {
                b[k].ops->axpby(b[k].be, n, 1.0f, k ? x.g : x.c, 1.0f, k ? x.g : x.c);
                b[k].ops->logsumexp_rows(b[k].be, rows, cols, k ? x.g : x.c, k ? out.g : out.c);
                b[k].ops->softmax_rows(b[k].be, rows, cols, k ? x.g : x.c);
            }
            snprintf(what, sizeof what, "logsumexp_rows (%zu x %zu)", rows, cols);
            pair_check(out, OP_TOL, what);
            snprintf(what, sizeof what, "softmax_rows (%zu x %zu)", rows, cols);
            pair_check(x, OP_TOL, what);
            pair_free(x);
            pair_free(out);
        }
    }
}
END_TEST

START_TEST(test_all_finite)
{
    const size_t sizes[] = { 1, 1000, (1u << 20) + 3 };
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *h = malloc(n * sizeof *h);
        tu_rng r = { 13 };
        tu_fill_normal(&r, h, n, 1e30f); /* large but finite */
        for (size_t i = 0; i < n; i++)
            if (!isfinite(h[i]))
                h[i] = 1.0f;
        pair x = pair_new(h, n);
        ck_assert_int_eq(G().ops->all_finite(G().be, x.g, n), 1);
        ck_assert_int_eq(C().ops->all_finite(C().be, x.c, n), 1);
        const size_t pos[] = { 0, n / 2, n - 1 };
        for (size_t p = 0; p < 3; p++)
            for (size_t v = 0; v < 3; v++) {
                float saved = h[pos[p]];
                h[pos[p]] = bad[v];
                ck_assert_int_eq(G().ops->upload(G().be, x.g, h, n * sizeof(float)), 0);
                ck_assert_msg(G().ops->all_finite(G().be, x.g, n) == 0,
                              "all_finite missed %g at %zu of %zu", (double)bad[v], pos[p], n);
                h[pos[p]] = saved;
            }
        /* a prefix that excludes the bad value */
        h[n - 1] = NAN;
        ck_assert_int_eq(G().ops->upload(G().be, x.g, h, n * sizeof(float)), 0);
        if (n > 1)
            ck_assert_int_eq(G().ops->all_finite(G().be, x.g, n - 1), 1);
        ck_assert_int_eq(G().ops->all_finite(G().be, x.g, 0), 1);
        /* finite_flag: queued, sets a device flag, never clears it */
        float *flag = G().ops->alloc(G().be, sizeof(float)), hf = -1.0f;
        G().ops->fill(G().be, flag, 1, 0.0f);
        if (n > 1)
            G().ops->finite_flag(G().be, x.g, n - 1, flag);
        ck_assert_int_eq(G().ops->download(G().be, &hf, flag, sizeof hf), 0);
        ck_assert_msg(hf == 0.0f, "finite_flag set on finite data (%g)", (double)hf);
        G().ops->finite_flag(G().be, x.g, n, flag);
        G().ops->finite_flag(G().be, x.g, 0, flag);
        ck_assert_int_eq(G().ops->download(G().be, &hf, flag, sizeof hf), 0);
        ck_assert_msg(hf == 1.0f, "finite_flag missed a NaN (%g)", (double)hf);
        G().ops->free(G().be, flag);
        pair_free(x);
        free(h);
    }
}
END_TEST

/* ---- GEMM ---- */

START_TEST(test_gemm)
{
    static const size_t dims[][3] = { { 1, 1, 1 },   { 7, 5, 3 },    { 64, 16, 16 },
                                      { 100, 37, 129 }, { 300, 300, 300 }, { 5, 4, 0 } };
    tu_rng r = { 14 };
    backend b[2] = { C(), G() };
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bz = 0; bz < 2; bz++) {
                    size_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
                    size_t a_rows = ta ? K : M, a_cols = ta ? M : K;
                    size_t b_rows = tb ? N : K, b_cols = tb ? K : N;
                    size_t lda = a_cols + 3, ldb = b_cols + 1, ldc = N + 2;
                    pair A = pair_random(&r, a_rows * lda + 1, 1.0f);
                    pair B = pair_random(&r, b_rows * ldb + 1, 1.0f);
                    pair Cm = pair_random(&r, M * ldc, 1.0f);
                    float beta = bz ? 0.0f : 0.5f;
                    for (int k = 0; k < 2; k++)
                        b[k].ops->gemm(b[k].be, ta, tb, M, N, K, 1.25f, k ? A.g : A.c, lda,
                                       k ? B.g : B.c, ldb, beta, k ? Cm.g : Cm.c, ldc);
                    char what[128];
                    snprintf(what, sizeof what, "gemm %zux%zux%zu ta=%d tb=%d beta=%g", M, N, K,
                             ta, tb, (double)beta);
                    pair_check(Cm, GEMM_TOL, what);
                    pair_free(A);
                    pair_free(B);
                    pair_free(Cm);
                }
}
END_TEST

/* ---- random numbers ---- */

START_TEST(test_random)
{
    static const size_t cases[][3] = { { 3, 5, 7 }, { 64, 1, 16 }, { 10, 16, 128 },
                                       { 2, 3, 1 }, { 1, 1, 5 },   { 129, 2, 33 } };
    const lgd_rng_stream streams[] = {
        { 0, LGD_RNG_INIT, 0, 0, 0 },
        { 0x123456789abcdef0ull, LGD_RNG_MC_DRAW, 17, 1000, 32 },
        { 42, LGD_RNG_ANCESTRAL, 0x00FFFFFFu, (1ull << 32) - 3, 0xFFFFFFF0u },
    };
    backend b[2] = { C(), G() };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t s = 0; s < sizeof streams / sizeof streams[0]; s++) {
            size_t rows = cases[c][0], draws = cases[c][1], cols = cases[c][2];
            size_t n = rows * draws * cols;
            /* offset 1 float: the unaligned (scalar store) path */
            for (int off = 0; off < 2; off++) {
                pair z = pair_new(NULL, n + 1);
                for (int k = 0; k < 2; k++)
                    b[k].ops->normal(b[k].be, &streams[s], rows, draws, cols,
                                     (k ? z.g : z.c) + off);
                float *h = pair_gpu_host(z);
                double e = max_abs_diff(h + off, z.c + off, n);
                ck_assert_msg(e < 1e-5, "normal %zux%zux%zu stream %zu: max |diff| %.3g", rows,
                              draws, cols, s, e);
                free(h);
                pair_free(z);
            }
            /* normal_around: mean + scale z (scale 0: copies of the mean) */
            for (int sc = 0; sc < 2; sc++) {
                tu_rng rm = { 21 };
                pair mean = pair_random(&rm, rows * cols, 2.0f), d = pair_new(NULL, n);
                for (int k = 0; k < 2; k++)
                    b[k].ops->normal_around(b[k].be, &streams[s], rows, draws, cols,
                                            k ? mean.g : mean.c, sc ? 0.7f : 0.0f,
                                            k ? d.g : d.c);
                float *hd = pair_gpu_host(d);
                double ed = max_abs_diff(hd, d.c, n);
                ck_assert_msg(ed < 1e-5,
                              "normal_around %zux%zux%zu stream %zu scale %d: max |diff| %.3g",
                              rows, draws, cols, s, sc, ed);
                free(hd);
                pair_free(mean);
                pair_free(d);
            }
            pair u = pair_new(NULL, rows * draws);
            for (int k = 0; k < 2; k++)
                b[k].ops->uniform(b[k].be, &streams[s], rows, draws, k ? u.g : u.c);
            float *h = pair_gpu_host(u);
            double e = max_abs_diff(h, u.c, rows * draws);
            ck_assert_msg(e < 1e-5, "uniform %zux%zu stream %zu: max |diff| %.3g", rows, draws, s,
                          e);
            for (size_t i = 0; i < rows * draws; i++)
                ck_assert_msg(h[i] > 0.0f && h[i] < 1.0f, "uniform out of (0, 1): %g",
                              (double)h[i]);
            free(h);
            pair_free(u);
        }
}
END_TEST

START_TEST(test_categorical)
{
    tu_rng r = { 15 };
    backend b[2] = { C(), G() };
    const size_t Ks[] = { 1, 4, 16 };
    for (size_t kk = 0; kk < 3; kk++) {
        size_t rows = 200, draws = 7, K = Ks[kk];
        pair p = pair_random(&r, rows * K, 2.0f), u = pair_new(NULL, rows * draws);
        lgd_rng_stream s = { 9, LGD_RNG_COMPONENT, 3, 0, 0 };
        int32_t *ic = C().ops->alloc(C().be, rows * draws * sizeof(int32_t));
        int32_t *ig = G().ops->alloc(G().be, rows * draws * sizeof(int32_t));
        for (int k = 0; k < 2; k++) {
            /* identical probabilities on both sides: softmax on the CPU, uploaded */
            if (k == 0)
                C().ops->softmax_rows(C().be, rows, K, p.c);
            else
                ck_assert_int_eq(G().ops->upload(G().be, p.g, p.c, rows * K * sizeof(float)), 0);
            b[k].ops->uniform(b[k].be, &s, rows, draws, k ? u.g : u.c);
        }
        /* identical uniforms too (they are exact, but do not depend on it here) */
        ck_assert_int_eq(G().ops->upload(G().be, u.g, u.c, rows * draws * sizeof(float)), 0);
        for (int k = 0; k < 2; k++)
            b[k].ops->categorical(b[k].be, rows, draws, K, k ? p.g : p.c, k ? u.g : u.c,
                                  k ? ig : ic);
        int32_t *h = malloc(rows * draws * sizeof *h);
        ck_assert_int_eq(G().ops->download(G().be, h, ig, rows * draws * sizeof(int32_t)), 0);
        for (size_t i = 0; i < rows * draws; i++)
            ck_assert_msg(h[i] == ic[i], "categorical K=%zu [%zu]: gpu %d cpu %d", K, i,
                          (int)h[i], (int)ic[i]);
        free(h);
        C().ops->free(C().be, ic);
        G().ops->free(G().be, ig);
        pair_free(p);
        pair_free(u);
    }
}
END_TEST

/* ---- Monte Carlo reductions ---- */

START_TEST(test_mc)
{
    tu_rng r = { 16 };
    backend b[2] = { C(), G() };
    const size_t colss[] = { 1, 16, 300 };
    const size_t chunks[][3] = { { 5, 7, 1 }, { 1, 1, 1 }, { 300, 20, 3 } };
    for (size_t ci = 0; ci < 3; ci++)
        for (size_t ch = 0; ch < 3; ch++) {
            size_t rows = 37, cols = colss[ci];
            pair mx = pair_new(NULL, rows), sm = pair_new(NULL, rows), s2 = pair_new(NULL, rows);
            pair wl = pair_new(NULL, rows), ls = pair_new(NULL, rows);
            pair vec = pair_new(NULL, rows * cols);
            lgd_mc_state stc = { mx.c, sm.c, s2.c, wl.c, ls.c, vec.c };
            lgd_mc_state stg = { mx.g, sm.g, s2.g, wl.g, ls.g, vec.g };
            for (int k = 0; k < 2; k++)
                b[k].mc->reset(b[k].be, rows, cols, k ? &stg : &stc);
            for (size_t c = 0; c < 3; c++) {
                size_t draws = chunks[ch][c];
                /* losses around 50 - 10 c: the max moves with each chunk */
                float *lh = malloc(rows * draws * sizeof *lh);
                for (size_t i = 0; i < rows * draws; i++)
                    lh[i] = (float)(50.0 - 10.0 * (double)c + 3.0 * tu_normal(&r));
                pair loss = pair_new(lh, rows * draws);
                free(lh);
                pair v = pair_random(&r, rows * draws * cols, 1.0f);
                for (int k = 0; k < 2; k++)
                    b[k].mc->accumulate(b[k].be, rows, draws, cols, k ? loss.g : loss.c,
                                        k ? v.g : v.c, k ? &stg : &stc);
                pair_free(loss);
                pair_free(v);
            }
            char what[128];
            snprintf(what, sizeof what, "mc accumulate cols %zu chunks %zu", cols, ch);
            pair_check(mx, OP_TOL, what);
            pair_check(sm, OP_TOL, what);
            pair_check(s2, OP_TOL, what);
            pair_check(ls, OP_TOL, what);
            pair_check(vec, OP_TOL, what);
            pair out = pair_new(NULL, rows * cols), ess = pair_new(NULL, rows);
            for (int k = 0; k < 2; k++)
                b[k].mc->finish(b[k].be, rows, cols, k ? &stg : &stc, k ? out.g : out.c,
                                k ? ess.g : ess.c);
            snprintf(what, sizeof what, "mc finish cols %zu chunks %zu", cols, ch);
            pair_check(out, OP_TOL, what);
            pair_check(ess, OP_TOL, what);
            pair_check(wl, OP_TOL, what);
            pair_free(out);
            pair_free(ess);
            pair_free(mx);
            pair_free(sm);
            pair_free(s2);
            pair_free(wl);
            pair_free(ls);
            pair_free(vec);
        }
}
END_TEST

/* ---- built-in losses ---- */

START_TEST(test_losses)
{
    tu_rng r = { 17 };
    backend b[2] = { C(), G() };
    for (size_t s = 0; s < NSHAPES; s++) {
        size_t rows = shapes[s][0] * 6, cols = shapes[s][1], n = rows * cols;
        char what[128];
        /* squared error: 1 shared target or 2 targets x per_target 3; weights or not */
        for (int variant = 0; variant < 4; variant++) {
            size_t target_rows = variant & 1 ? 2 : 1, per_target = variant & 1 ? 3 : 1;
            int weighted = variant & 2;
            pair x = pair_random(&r, n, 1.0f), t = pair_random(&r, target_rows * cols, 1.0f);
            float *wh = malloc(cols * sizeof *wh);
            for (size_t j = 0; j < cols; j++)
                wh[j] = j % 3 == 2 ? 0.0f : (float)tu_uniform(&r);
            pair w = pair_new(wh, cols);
            free(wh);
            pair loss = pair_new(NULL, rows), grad = pair_new(NULL, n);
            pair loss2 = pair_new(NULL, rows);
            for (int k = 0; k < 2; k++) {
                b[k].loss->sqerr(b[k].be, rows, cols, k ? x.g : x.c, k ? t.g : t.c,
                                 target_rows, per_target, weighted ? (k ? w.g : w.c) : NULL,
                                 k ? loss.g : loss.c, k ? grad.g : grad.c);
                b[k].loss->sqerr(b[k].be, rows, cols, k ? x.g : x.c, k ? t.g : t.c,
                                 target_rows, per_target, weighted ? (k ? w.g : w.c) : NULL,
                                 k ? loss2.g : loss2.c, NULL);
            }
            snprintf(what, sizeof what, "loss_sqerr variant %d (%zu x %zu)", variant, rows, cols);
            pair_check(loss, OP_TOL, what);
            pair_check(grad, OP_TOL, what);
            pair_check(loss2, OP_TOL, what);
            pair_free(x);
            pair_free(t);
            pair_free(w);
            pair_free(loss);
            pair_free(grad);
            pair_free(loss2);
        }
        /* logistic, with values of z across a wide range */
        {
            pair x = pair_random(&r, n, 3.0f), a = pair_random(&r, cols, 1.0f);
            pair loss = pair_new(NULL, rows), grad = pair_new(NULL, n);
            pair loss2 = pair_new(NULL, rows);
            for (int k = 0; k < 2; k++) {
                b[k].loss->logistic(b[k].be, rows, cols, k ? x.g : x.c, k ? a.g : a.c, 0.3f,
                                    k ? loss.g : loss.c, k ? grad.g : grad.c);
                b[k].loss->logistic(b[k].be, rows, cols, k ? x.g : x.c, k ? a.g : a.c, -2.0f,
                                    k ? loss2.g : loss2.c, NULL);
            }
            snprintf(what, sizeof what, "loss_logistic (%zu x %zu)", rows, cols);
            pair_check(loss, OP_TOL, what);
            pair_check(grad, OP_TOL, what);
            pair_check(loss2, OP_TOL, what);
            pair_free(x);
            pair_free(a);
            pair_free(loss);
            pair_free(grad);
            pair_free(loss2);
        }
        /* residual: 2 targets, per_target 3 */
        {
            pair hx = pair_random(&r, n, 1.0f), y = pair_random(&r, 2 * cols, 1.0f);
            pair loss = pair_new(NULL, rows);
            for (int k = 0; k < 2; k++)
                b[k].loss->residual(b[k].be, rows, cols, k ? y.g : y.c, 2, 3, 4.0f,
                                    k ? hx.g : hx.c, k ? loss.g : loss.c);
            snprintf(what, sizeof what, "loss_residual (%zu x %zu)", rows, cols);
            pair_check(loss, OP_TOL, what);
            pair_check(hx, OP_TOL, what);
            pair_free(hx);
            pair_free(y);
            pair_free(loss);
        }
    }
    /* trajectory losses: velocities in a wider frame, a path, a goal and 2 obstacles */
    {
        const size_t T = 64, cols = 3 * T + 1, rows = 300;
        pair x = pair_random(&r, rows * cols, 0.5f), path = pair_random(&r, 2 * T * 2, 3.0f);
        pair goal = pair_random(&r, 2 * 2, 3.0f);
        float oh[6] = { 1.0f, 0.5f, 1.0f, -2.0f, 1.0f, 0.8f };
        pair obs = pair_new(oh, 6);
        pair loss = pair_new(NULL, rows), grad = pair_new(NULL, rows * cols);
        for (int k = 0; k < 2; k++) {
            lgd_traj_params p = { T, 3, 1, 1, 0.1f, k ? path.g : path.c, 1.0f,
                                  k ? goal.g : goal.c, 0.7f, k ? obs.g : obs.c, 2,
                                  50.0f, 100.0f, 2, 150 };
            b[k].traj->loss(b[k].be, rows, cols, k ? x.g : x.c, &p, k ? loss.g : loss.c,
                            k ? grad.g : grad.c);
        }
        pair_check(loss, OP_TOL, "loss_trajectory");
        pair_check(grad, OP_TOL, "loss_trajectory (gradient)");
        pair_free(x);
        pair_free(path);
        pair_free(goal);
        pair_free(obs);
        pair_free(loss);
        pair_free(grad);
    }
}
END_TEST

/* ---- memory, copies, stream, name ---- */

START_TEST(test_copies)
{
    backend g = G();
    size_t n = 100000;
    float *h = malloc(n * sizeof *h), *back = malloc(n * sizeof *back);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)i;
    float *a = g.ops->alloc(g.be, n * sizeof(float)), *c = g.ops->alloc(g.be, n * sizeof(float));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(g.ops->upload(g.be, a, h, n * sizeof(float)), 0);
    ck_assert_int_eq(g.ops->copy(g.be, c, a, n * sizeof(float)), 0);
    ck_assert_int_eq(g.ops->download(g.be, back, c, n * sizeof(float)), 0);
    ck_assert(memcmp(back, h, n * sizeof(float)) == 0);
    /* overlapping copies behave as memmove, both directions */
    ck_assert_int_eq(g.ops->copy(g.be, a + 3, a, (n - 3) * sizeof(float)), 0);
    memmove(h + 3, h, (n - 3) * sizeof(float));
    ck_assert_int_eq(g.ops->download(g.be, back, a, n * sizeof(float)), 0);
    ck_assert(memcmp(back, h, n * sizeof(float)) == 0);
    ck_assert_int_eq(g.ops->copy(g.be, a, a + 5, (n - 5) * sizeof(float)), 0);
    memmove(h, h + 5, (n - 5) * sizeof(float));
    ck_assert_int_eq(g.ops->download(g.be, back, a, n * sizeof(float)), 0);
    ck_assert(memcmp(back, h, n * sizeof(float)) == 0);
    ck_assert_int_eq(g.ops->copy(g.be, a, a, n * sizeof(float)), 0);
    ck_assert_int_eq(g.ops->synchronize(g.be), 0);
    ck_assert_ptr_nonnull(g.ops->native_stream(g.be));
    ck_assert_ptr_eq(lgd_context_native_stream(gpu), g.ops->native_stream(g.be));
    ck_assert_ptr_null(lgd_context_native_stream(cpu));
    ck_assert_int_eq(g.ops->host_memory, 0);
    /* tensors through the public API */
    lgd_tensor *t = tu_tensor(gpu, 10, 10, h);
    float *th = tu_download(t);
    ck_assert(memcmp(th, h, 100 * sizeof(float)) == 0);
    free(th);
    TU_OK(gpu, lgd_tensor_fill(t, 3.0f));
    th = tu_download(t);
    for (int i = 0; i < 100; i++)
        ck_assert(th[i] == 3.0f);
    free(th);
    lgd_tensor_destroy(t);
    TU_OK(gpu, lgd_context_synchronize(gpu));
    g.ops->free(g.be, a);
    g.ops->free(g.be, c);
    g.ops->free(g.be, NULL);
    free(h);
    free(back);
}
END_TEST

START_TEST(test_name)
{
    const char *name = lgd_context_backend_name(gpu);
    ck_assert_msg(strncmp(name, "cuda (", 6) == 0 && strstr(name, ", cc ") != NULL,
                  "backend name \"%s\"", name);
    ck_assert_int_eq(lgd_context_backend(gpu), LGD_BACKEND_CUDA);
    printf("CUDA backend: %s\n", name);
}
END_TEST

/* ---- opening errors and the sticky error state (own backend instances) ---- */

static lgd_backend_open_fn module_entry(void **handle)
{
    const char *path = module_path ? module_path : "liblgd-cuda.so.0";
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*handle)
        return NULL;
    void *sym = dlsym(*handle, "lgd_cuda_backend_open");
    lgd_backend_open_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    return fn;
}

START_TEST(test_open_errors)
{
    void *h = NULL;
    lgd_backend_open_fn open_fn = module_entry(&h);
    ck_assert_msg(open_fn != NULL, "cannot load the module: %s", dlerror());
    lgd_backend *be = NULL;
    const lgd_backend_ops *ops = NULL;
    char err[512];
    ck_assert_int_ne(open_fn(LGD_BACKEND_ABI_VERSION + 1, 0, &be, &ops, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "ABI") != NULL, "message: %s", err);
    ck_assert_ptr_null(be);
    ck_assert_int_ne(open_fn(LGD_BACKEND_ABI_VERSION, 100000, &be, &ops, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "out of range") != NULL, "message: %s", err);
    ck_assert_int_ne(open_fn(LGD_BACKEND_ABI_VERSION, -1, &be, &ops, err, sizeof err), 0);
    ck_assert_int_ne(open_fn(LGD_BACKEND_ABI_VERSION, 0, NULL, &ops, err, sizeof err), 0);
    ck_assert_int_ne(open_fn(LGD_BACKEND_ABI_VERSION + 1, 0, &be, &ops, NULL, 0), 0);

    /* through a context */
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.backend = LGD_BACKEND_CUDA;
    o.cuda_module_path = module_path;
    o.device_index = 100000;
    lgd_context *ctx = NULL;
    const char *why = NULL;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &why), LGD_ERR_BACKEND_UNAVAILABLE);
    ck_assert_ptr_null(ctx);
    ck_assert(why && why[0]);
    o.device_index = 0;
    o.cuda_module_path = "/nonexistent/liblgd-cuda.so";
    ck_assert_int_eq(lgd_context_create(&o, &ctx, &why), LGD_ERR_BACKEND_UNAVAILABLE);
    o.backend = LGD_BACKEND_AUTO; /* falls back to the CPU */
    TU_OK(NULL, lgd_context_create(&o, &ctx, &why));
    ck_assert_int_eq(lgd_context_backend(ctx), LGD_BACKEND_CPU);
    lgd_context_destroy(ctx);

    /* a second instance on the same device works independently and is destroyed */
    ck_assert_int_eq(open_fn(LGD_BACKEND_ABI_VERSION, 0, &be, &ops, err, sizeof err), 0);
    ck_assert_ptr_nonnull(be);
    ck_assert_ptr_ne(ops->native_stream(be), G().ops->native_stream(G().be));
    /* last_error: nothing to report yet */
    ck_assert_ptr_nonnull(ops->last_error);
    ck_assert_str_eq(ops->last_error(be), "");
    /* allocations the device cannot serve: NULL with the reason, and not sticky */
    ck_assert_ptr_null(ops->alloc(be, (size_t)1 << 60));
    ck_assert_msg(strstr(ops->last_error(be), "cudaMalloc") != NULL &&
                      strstr(ops->last_error(be), "cudaErrorMemoryAllocation") != NULL,
                  "last_error after a failed cudaMalloc: \"%s\"", ops->last_error(be));
    ck_assert_ptr_null(ops->alloc(be, SIZE_MAX));
    ck_assert_msg(strstr(ops->last_error(be), "alloc") != NULL,
                  "last_error after an impossible allocation: \"%s\"", ops->last_error(be));
    ck_assert_int_eq(ops->synchronize(be), 0);
    float *p = ops->alloc(be, 64);
    ck_assert_ptr_nonnull(p);
    /* a convolution of an inconsistent shape: refused with the reason, not sticky */
    const lgd_nn_kernels *nn = ops->kernels(be, "nn", LGD_NN_KERNELS_VERSION);
    ck_assert_ptr_nonnull(nn);
    lgd_conv_shape bad = { 1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0, 5, 5 }; /* h_out, w_out are 2 */
    ck_assert_int_ne(nn->conv2d_forward(be, &bad, p, p, NULL, p), 0);
    ck_assert_msg(strstr(ops->last_error(be), "conv2d_forward") != NULL,
                  "last_error after a bad convolution shape: \"%s\"", ops->last_error(be));
    ck_assert_int_ne(nn->conv2d_backward_data(be, &bad, p, p, 0.0f, p), 0);
    ck_assert_msg(strstr(ops->last_error(be), "conv2d_backward_data") != NULL,
                  "last_error after a bad convolution shape: \"%s\"", ops->last_error(be));
    ck_assert_int_eq(ops->synchronize(be), 0);
    /* the sticky error state: a failure in a void operation is reported by the next
     * synchronising call, and every one after it, and last_error names it */
    ops->free(be, (char *)p + 4); /* not a block of this backend: recorded */
    ck_assert_int_ne(ops->synchronize(be), 0);
    ck_assert_msg(strstr(ops->last_error(be), "free") != NULL &&
                      strstr(ops->last_error(be), "cudaErrorInvalidDevicePointer") != NULL,
                  "last_error after a sticky failure: \"%s\"", ops->last_error(be));
    ck_assert_ptr_null(ops->alloc(be, (size_t)1 << 60)); /* a later note does not hide it */
    ck_assert_msg(strstr(ops->last_error(be), "cudaErrorInvalidDevicePointer") != NULL,
                  "last_error after a sticky failure and a failed alloc: \"%s\"",
                  ops->last_error(be));
    ck_assert_int_eq(ops->all_finite(be, p, 1), 0);
    float tmp = 0.0f;
    ck_assert_int_ne(ops->download(be, &tmp, p, sizeof tmp), 0);
    ck_assert_int_ne(ops->upload(be, p, &tmp, sizeof tmp), 0);
    ops->free(be, p);
    ops->destroy(be);
    dlclose(h);
}
END_TEST

/* ---- the module kernel tables (core/kernels.h) ---- */

START_TEST(test_kernel_tables)
{
    backend g = G(), c = C();
    ck_assert_ptr_nonnull(g.ops->kernels);
    ck_assert_ptr_null(c.ops->kernels); /* the CPU's tables come with the modules */
    const lgd_kernel_table *tables[] = { &lgd_gmm_kernel_table, &lgd_loss_kernel_table,
                                         &lgd_trajectory_kernel_table, &lgd_mc_kernel_table,
                                         &lgd_nn_kernel_table };
    static const char *names[] = { "gmm", "loss_builtin", "loss_trajectory", "mc", "nn" };
    const uint32_t versions[] = { LGD_GMM_KERNELS_VERSION, LGD_LOSS_KERNELS_VERSION,
                                  LGD_TRAJECTORY_KERNELS_VERSION, LGD_MC_KERNELS_VERSION,
                                  LGD_NN_KERNELS_VERSION };
    const void *cuda[] = { g.gmm, g.loss, g.traj, g.mc, g.nn };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        const lgd_kernel_table *t = tables[i];
        ck_assert_str_eq(t->name, names[i]);
        ck_assert_uint_eq(t->version, versions[i]);
        /* the CUDA module has every table, at the version of this build's headers */
        const void *k = g.ops->kernels(g.be, t->name, t->version);
        ck_assert_msg(k != NULL, "the CUDA backend has no '%s' table version %u", t->name,
                      (unsigned)t->version);
        ck_assert_ptr_eq(k, cuda[i]);
        ck_assert_ptr_ne(k, t->cpu);
        ck_assert_ptr_eq(g.ops->kernels(g.be, t->name, t->version), k); /* stable */
        /* and refuses every other version */
        ck_assert_ptr_null(g.ops->kernels(g.be, t->name, t->version + 1));
        ck_assert_ptr_null(g.ops->kernels(g.be, t->name, t->version - 1));
        ck_assert_ptr_null(g.ops->kernels(g.be, t->name, UINT32_MAX));
        /* what a module finds through the core: CUDA's table on the GPU, the CPU's on the
         * CPU */
        const void *found = NULL;
        TU_OK(gpu, lgd_kernels_find(gpu, t, "test_kernel_tables", &found));
        ck_assert_ptr_eq(found, k);
        TU_OK(cpu, lgd_kernels_find(cpu, t, "test_kernel_tables", &found));
        ck_assert_ptr_eq(found, t->cpu);
        /* a module built for another version of its table is refused with a message */
        lgd_kernel_table other = { t->name, t->version + 1, t->cpu };
        found = &other;
        TU_FAILS(gpu, LGD_ERR_UNSUPPORTED, lgd_kernels_find(gpu, &other, "test", &found));
        ck_assert_ptr_null(found);
        ck_assert_msg(strstr(lgd_context_last_error(gpu), t->name) != NULL, "message: %s",
                      lgd_context_last_error(gpu));
    }
    /* unknown names: none, whatever the version */
    static const char *unknown[] = { "", "no_such_module", "GMM", "gm", "gmm ", "nn2",
                                     "loss", "loss_builtin_v2" };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        for (uint32_t v = 0; v < 3; v++)
            ck_assert_msg(g.ops->kernels(g.be, unknown[i], v) == NULL,
                          "the CUDA backend returned a table for '%s' version %u", unknown[i],
                          (unsigned)v);
    lgd_kernel_table none = { "no_such_module", 1, NULL };
    const void *found = NULL;
    TU_FAILS(gpu, LGD_ERR_UNSUPPORTED, lgd_kernels_find(gpu, &none, "test", &found));
    ck_assert_ptr_null(found);
    /* every slot of the CUDA tables is filled */
    ck_assert(g.gmm->diag_filter && g.gmm->gaussian_logp);
    ck_assert(g.loss->sqerr && g.loss->logistic && g.loss->residual);
    ck_assert(g.traj->loss);
    ck_assert(g.mc->reset && g.mc->accumulate && g.mc->finish);
    ck_assert(g.nn->conv2d_forward && g.nn->conv2d_backward_data && g.nn->add_channel_bias &&
              g.nn->scale_shift && g.nn->scale_shift_backward && g.nn->activation &&
              g.nn->activation_backward && g.nn->group_norm && g.nn->group_norm_backward &&
              g.nn->upsample_nearest && g.nn->upsample_nearest_backward && g.nn->avg_pool &&
              g.nn->avg_pool_backward && g.nn->time_embedding);
    /* and the backend table's optional slots that the CUDA module fills */
    ck_assert(g.ops->last_error && g.ops->native_stream && g.ops->gemm_batched);
    ck_assert_ptr_null(lgd_backend_ops_check(g.ops));
}
END_TEST

/* ---- end to end ---- */

#define E2E_DIM 16
#define E2E_K 4
#define E2E_BATCH 64
#define E2E_STEPS 20
#define E2E_TOL 1e-3

typedef struct gmm_params {
    float weights[E2E_K];
    float means[E2E_K * E2E_DIM];
    float cov[E2E_K * E2E_DIM * E2E_DIM];
    float target[E2E_DIM];
} gmm_params;

static void make_gmm(gmm_params *p)
{
    tu_rng r = { 2024 };
    for (int k = 0; k < E2E_K; k++) {
        p->weights[k] = 0.1f * (float)(k + 1);
        for (int j = 0; j < E2E_DIM; j++)
            p->means[k * E2E_DIM + j] = (float)(3.0 * tu_normal(&r));
        double A[E2E_DIM * E2E_DIM];
        for (int i = 0; i < E2E_DIM * E2E_DIM; i++)
            A[i] = tu_normal(&r);
        for (int i = 0; i < E2E_DIM; i++)
            for (int j = 0; j < E2E_DIM; j++) {
                double s = 0.0;
                for (int m = 0; m < E2E_DIM; m++)
                    s += A[i * E2E_DIM + m] * A[j * E2E_DIM + m];
                p->cov[(k * E2E_DIM + i) * E2E_DIM + j] =
                    (float)(s / E2E_DIM + (i == j ? 0.05 : 0.0));
            }
    }
    for (int j = 0; j < E2E_DIM; j++)
        p->target[j] = p->means[E2E_DIM + j] + 0.5f;
}

static const lgd_sampler_kind e2e_samplers[] = { LGD_SAMPLER_EULER, LGD_SAMPLER_DDIM,
                                                 LGD_SAMPLER_HEUN, LGD_SAMPLER_DPMPP_2M };
static const char *e2e_sampler_names[] = { "Euler", "DDIM(eta=1)", "Heun", "DPM++2M" };
static const lgd_guidance_kind e2e_guidance[] = { LGD_GUIDANCE_NONE, LGD_GUIDANCE_DPS,
                                                  LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
static const char *e2e_guidance_names[] = { "none", "DPS", "MC(n=10)", "exact(n=10)" };

/* One run; returns the samples (malloc'd). */
static float *e2e_run(lgd_context *ctx, const gmm_params *p, int si, int gi, uint64_t seed)
{
    lgd_model *m = NULL;
    lgd_loss *l = NULL;
    lgd_guidance *g = NULL;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, E2E_DIM, E2E_K, p->weights, p->means, p->cov,
                                    LGD_COVARIANCE_FULL, &m));
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, E2E_DIM, p->target, 1, NULL, &l));
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = e2e_guidance[gi];
    go.n_samples = 10;
    go.scale = 0.5f;
    TU_OK(ctx, lgd_guidance_create(ctx, m, l, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = e2e_samplers[si];
    so.steps = E2E_STEPS;
    so.eta = so.kind == LGD_SAMPLER_DDIM ? 1.0f : 0.0f;
    TU_OK(ctx, lgd_sampler_create(g, &so, &s));
    lgd_tensor *x = tu_tensor(ctx, E2E_BATCH, E2E_DIM, NULL);
    TU_OK(ctx, lgd_sampler_run(s, x, seed, 0, NULL, NULL));
    float *out = tu_download(x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    return out;
}

START_TEST(test_end_to_end)
{
    int si = _i / 4, gi = _i % 4;
    gmm_params p;
    make_gmm(&p);
    size_t n = (size_t)E2E_BATCH * E2E_DIM;
    float *c = e2e_run(cpu, &p, si, gi, 7);
    float *g1 = e2e_run(gpu, &p, si, gi, 7);
    float *g2 = e2e_run(gpu, &p, si, gi, 7);
    double e = nerr(g1, c, n);
    /* rows that differ by more than the tolerance (diagnostics for the log) */
    int bad_rows = 0;
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fabs(c[i]) > scale ? fabs(c[i]) : scale;
    for (size_t b = 0; b < E2E_BATCH; b++) {
        double d = max_abs_diff(g1 + b * E2E_DIM, c + b * E2E_DIM, E2E_DIM);
        bad_rows += d > E2E_TOL * scale;
    }
    printf("end-to-end %-12s %-12s: normalised error %.3g (%d of %d rows above %.0e)\n",
           e2e_sampler_names[si], e2e_guidance_names[gi], e, bad_rows, E2E_BATCH, E2E_TOL);
    fflush(stdout);
    ck_assert_msg(e < E2E_TOL, "%s + %s: CUDA vs CPU normalised error %.3g (%d rows differ)",
                  e2e_sampler_names[si], e2e_guidance_names[gi], e, bad_rows);
    ck_assert_msg(memcmp(g1, g2, n * sizeof(float)) == 0,
                  "%s + %s: the same seed twice on the GPU gave different bytes",
                  e2e_sampler_names[si], e2e_guidance_names[gi]);
    free(c);
    free(g1);
    free(g2);
}
END_TEST

/* ---- callbacks ---- */

/* Prior N(mu, s0^2 I): D(x) = (s0^2 x + s2 mu) / (s0^2 + s2), J = s0^2 / (s0^2 + s2) I. */
#define CB_DIM 8
#define CB_BATCH 32
#define CB_S0 1.5f

typedef struct cb_state {
    lgd_context *ctx;   /* for the native stream (device callbacks) */
    int expect_device;  /* pointers must be device memory */
    int calls, wrong_memory;
    int nan_at_call;    /* write a NaN in the output at this call (0: never) */
    int fail_at_call;   /* return non-zero at this call (0: never) */
    float mu;
} cb_state;

static int is_device_ptr(const void *p)
{
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeDevice;
}

/* Brings device inputs to the host (on the context's stream) and back. */
static void to_host(cb_state *st, float *dst, const float *src, size_t n)
{
    cudaStream_t stream = (cudaStream_t)lgd_context_native_stream(st->ctx);
    ck_assert(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream) ==
              cudaSuccess);
    ck_assert(cudaStreamSynchronize(stream) == cudaSuccess);
}

static void to_device(cb_state *st, float *dst, const float *src, size_t n)
{
    cudaStream_t stream = (cudaStream_t)lgd_context_native_stream(st->ctx);
    ck_assert(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, stream) ==
              cudaSuccess);
    ck_assert(cudaStreamSynchronize(stream) == cudaSuccess);
}

static int cb_check_ptrs(cb_state *st, const float *a, const float *b)
{
    int dev = is_device_ptr(a) && is_device_ptr(b);
    int host = !is_device_ptr(a) && !is_device_ptr(b);
    if (st->expect_device ? !dev : !host)
        st->wrong_memory++;
    return st->expect_device && lgd_context_backend(st->ctx) == LGD_BACKEND_CUDA;
}

static int cb_denoise(void *user, const float *x, float sigma, const float *cond, int64_t batch,
                      int64_t dim, float *xhat)
{
    (void)cond;
    cb_state *st = user;
    st->calls++;
    if (st->fail_at_call && st->calls == st->fail_at_call)
        return 3;
    size_t n = (size_t)(batch * dim);
    int staged = cb_check_ptrs(st, x, xhat);
    float *hx = malloc(n * sizeof *hx), *ho = malloc(n * sizeof *ho);
    if (staged)
        to_host(st, hx, x, n);
    else
        memcpy(hx, x, n * sizeof *hx);
    float s02 = CB_S0 * CB_S0, s2 = sigma * sigma;
    for (size_t i = 0; i < n; i++)
        ho[i] = (s02 * hx[i] + s2 * st->mu) / (s02 + s2);
    if (st->nan_at_call && st->calls == st->nan_at_call)
        ho[n / 2] = NAN;
    if (staged)
        to_device(st, xhat, ho, n);
    else
        memcpy(xhat, ho, n * sizeof *ho);
    free(hx);
    free(ho);
    return 0;
}

static int cb_vjp(void *user, const float *x, float sigma, const float *cond, int64_t batch,
                  int64_t dim, const float *v, float *out)
{
    (void)cond;
    (void)x;
    cb_state *st = user;
    size_t n = (size_t)(batch * dim);
    int staged = cb_check_ptrs(st, v, out);
    float *hv = malloc(n * sizeof *hv);
    if (staged)
        to_host(st, hv, v, n);
    else
        memcpy(hv, v, n * sizeof *hv);
    float s02 = CB_S0 * CB_S0, j = s02 / (s02 + sigma * sigma);
    for (size_t i = 0; i < n; i++)
        hv[i] *= j;
    if (staged)
        to_device(st, out, hv, n);
    else
        memcpy(out, hv, n * sizeof *hv);
    free(hv);
    return 0;
}

/* loss = 0.5 |x - 1|^2 per row */
static int cb_loss(void *user, const float *x, int64_t batch, int64_t nd, int64_t dim,
                   float *loss, float *grad)
{
    cb_state *st = user;
    st->calls++;
    if (st->fail_at_call && st->calls == st->fail_at_call)
        return 5;
    size_t rows = (size_t)(batch * nd), n = rows * (size_t)dim;
    int staged = cb_check_ptrs(st, x, loss);
    float *hx = malloc(n * sizeof *hx), *hl = malloc(rows * sizeof *hl);
    float *hg = malloc(n * sizeof *hg);
    if (staged)
        to_host(st, hx, x, n);
    else
        memcpy(hx, x, n * sizeof *hx);
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < (size_t)dim; j++) {
            float d = hx[r * (size_t)dim + j] - 1.0f;
            acc += 0.5 * (double)d * d;
            hg[r * (size_t)dim + j] = d;
        }
        hl[r] = (float)acc;
    }
    if (st->nan_at_call && st->calls == st->nan_at_call)
        hl[rows - 1] = NAN;
    if (staged) {
        to_device(st, loss, hl, rows);
        if (grad)
            to_device(st, grad, hg, n);
    } else {
        memcpy(loss, hl, rows * sizeof *hl);
        if (grad)
            memcpy(grad, hg, n * sizeof *hg);
    }
    free(hx);
    free(hl);
    free(hg);
    return 0;
}

typedef struct cb_run {
    cb_state model, loss;
    lgd_model *m;
    lgd_loss *l;
    lgd_guidance *g;
    lgd_sampler *s;
    lgd_tensor *x;
} cb_run;

static void cb_setup(cb_run *run, lgd_context *ctx, lgd_memory memory, lgd_guidance_kind kind)
{
    memset(run, 0, sizeof *run);
    run->model.ctx = run->loss.ctx = ctx;
    run->model.expect_device = run->loss.expect_device =
        memory == LGD_MEMORY_DEVICE && lgd_context_backend(ctx) == LGD_BACKEND_CUDA;
    run->model.mu = 0.25f;
    lgd_model_callbacks mc = LGD_MODEL_CALLBACKS_INIT;
    mc.memory = memory;
    mc.dim = CB_DIM;
    mc.denoise = cb_denoise;
    mc.vjp = cb_vjp;
    mc.user = &run->model;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &mc, &run->m));
    lgd_loss_callbacks lc = LGD_LOSS_CALLBACKS_INIT;
    lc.memory = memory;
    lc.dim = CB_DIM;
    lc.eval = cb_loss;
    lc.user = &run->loss;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &lc, &run->l));
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    go.n_samples = 4;
    TU_OK(ctx, lgd_guidance_create(ctx, run->m, run->l, &go, &run->g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.steps = 10;
    TU_OK(ctx, lgd_sampler_create(run->g, &so, &run->s));
    run->x = tu_tensor(ctx, CB_BATCH, CB_DIM, NULL);
}

static void cb_teardown(cb_run *run)
{
    lgd_tensor_destroy(run->x);
    lgd_sampler_destroy(run->s);
    lgd_guidance_destroy(run->g);
    lgd_loss_destroy(run->l);
    lgd_model_destroy(run->m);
}

static float *cb_sample(lgd_context *ctx, lgd_memory memory, lgd_guidance_kind kind, int *calls,
                        int *wrong)
{
    cb_run run;
    cb_setup(&run, ctx, memory, kind);
    TU_OK(ctx, lgd_sampler_run(run.s, run.x, 5, 0, NULL, NULL));
    float *out = tu_download(run.x);
    *calls = run.model.calls + run.loss.calls;
    *wrong = run.model.wrong_memory + run.loss.wrong_memory;
    cb_teardown(&run);
    return out;
}

START_TEST(test_callbacks)
{
    const lgd_memory mems[] = { LGD_MEMORY_HOST, LGD_MEMORY_DEVICE };
    const lgd_guidance_kind kinds[] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC };
    ck_assert_ptr_nonnull(lgd_context_native_stream(gpu));
    for (int mi = 0; mi < 2; mi++)
        for (int ki = 0; ki < 2; ki++) {
            int calls_c, wrong_c, calls_g, wrong_g;
            float *c = cb_sample(cpu, mems[mi], kinds[ki], &calls_c, &wrong_c);
            float *g = cb_sample(gpu, mems[mi], kinds[ki], &calls_g, &wrong_g);
            double e = nerr(g, c, (size_t)CB_BATCH * CB_DIM);
            const char *mem = mems[mi] == LGD_MEMORY_HOST ? "host" : "device";
            ck_assert_msg(e < E2E_TOL, "%s callbacks, guidance %d: normalised error %.3g", mem,
                          (int)kinds[ki], e);
            ck_assert_int_gt(calls_g, 0);
            ck_assert_int_eq(calls_g, calls_c);
            ck_assert_msg(wrong_g == 0, "%s callbacks on CUDA got the wrong kind of pointer "
                          "(%d calls)", mem, wrong_g);
            ck_assert_int_eq(wrong_c, 0);
            free(c);
            free(g);
        }
}
END_TEST

/* ---- bad input: same status on both backends ---- */

typedef struct bad_case {
    const char *name;
    lgd_status expect;
} bad_case;

/* Runs case `which` on ctx and returns the status. */
static lgd_status bad_input_case(lgd_context *ctx, int which)
{
    cb_run run;
    cb_setup(&run, ctx, LGD_MEMORY_HOST, LGD_GUIDANCE_DPS);
    lgd_status st = LGD_OK;
    lgd_tensor *wrong = tu_tensor(ctx, CB_BATCH, CB_DIM + 1, NULL);
    float host[CB_BATCH * CB_DIM] = { 0 };
    lgd_loss *l2 = NULL;
    lgd_guidance *g2 = NULL;
    lgd_context_clear_error(ctx);
    switch (which) {
    case 0: st = lgd_sampler_step(NULL, run.x, NULL); break;
    case 1: st = lgd_sampler_init(run.s, NULL, 1, 0); break;
    case 2: st = lgd_sampler_init(run.s, wrong, 1, 0); break;
    case 3: st = lgd_tensor_upload(run.x, host, CB_BATCH * CB_DIM - 1); break;
    case 4: st = lgd_tensor_upload(run.x, NULL, CB_BATCH * CB_DIM); break;
    case 5: st = lgd_tensor_download(run.x, host, CB_BATCH * CB_DIM + 1); break;
    case 6: st = lgd_tensor_copy(run.x, wrong); break;
    case 7: st = lgd_guidance_create(ctx, run.m, NULL, NULL, &g2); break;
    case 8:
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, CB_DIM + 1, host, 1, NULL, &l2));
        st = lgd_guidance_create(ctx, run.m, l2, NULL, &g2);
        break;
    case 9: st = lgd_sampler_step(run.s, run.x, NULL); break; /* not initialised */
    case 10: /* NaN from the model at its 2nd call */
        run.model.nan_at_call = 2;
        TU_OK(ctx, lgd_sampler_init(run.s, run.x, 1, 0));
        st = lgd_sampler_step(run.s, run.x, NULL);
        if (!st)
            st = lgd_sampler_step(run.s, run.x, NULL);
        break;
    case 11: /* NaN from the loss at its 1st call */
        run.loss.nan_at_call = 1;
        st = lgd_sampler_run(run.s, run.x, 1, 0, NULL, NULL);
        break;
    case 12: /* the model callback fails at its 3rd call */
        run.model.fail_at_call = 3;
        st = lgd_sampler_run(run.s, run.x, 1, 0, NULL, NULL);
        break;
    case 13: /* the loss callback fails at its 1st call */
        run.loss.fail_at_call = 1;
        st = lgd_sampler_run(run.s, run.x, 1, 0, NULL, NULL);
        break;
    case 14: st = lgd_loss_eval(run.l, run.x, NULL, NULL); break;
    default: break;
    }
    /* (case 0 has no object to hold a message) */
    if (st != LGD_OK && which != 0)
        ck_assert_msg(lgd_context_last_error(ctx)[0] != '\0', "case %d: no error message", which);
    /* the objects stay usable: a clean run afterwards */
    run.model.nan_at_call = run.model.fail_at_call = 0;
    run.loss.nan_at_call = run.loss.fail_at_call = 0;
    TU_OK(ctx, lgd_sampler_run(run.s, run.x, 1, 0, NULL, NULL));
    lgd_guidance_destroy(g2);
    lgd_loss_destroy(l2);
    lgd_tensor_destroy(wrong);
    cb_teardown(&run);
    return st;
}

START_TEST(test_bad_input)
{
    static const lgd_status expected[] = {
        LGD_ERR_INVALID_ARGUMENT, LGD_ERR_INVALID_ARGUMENT, LGD_ERR_SHAPE_MISMATCH,
        LGD_ERR_SHAPE_MISMATCH,   LGD_ERR_INVALID_ARGUMENT, LGD_ERR_SHAPE_MISMATCH,
        LGD_ERR_SHAPE_MISMATCH,   LGD_ERR_INVALID_ARGUMENT, LGD_ERR_SHAPE_MISMATCH,
        LGD_ERR_STATE,            LGD_ERR_NON_FINITE,       LGD_ERR_NON_FINITE,
        LGD_ERR_CALLBACK,         LGD_ERR_CALLBACK,         LGD_ERR_INVALID_ARGUMENT,
    };
    for (int i = 0; i < (int)(sizeof expected / sizeof expected[0]); i++) {
        lgd_status sc = bad_input_case(cpu, i), sg = bad_input_case(gpu, i);
        ck_assert_msg(sg == sc, "bad input case %d: CUDA gives %d (%s), CPU %d (%s)", i, (int)sg,
                      lgd_context_last_error(gpu), (int)sc, lgd_context_last_error(cpu));
        if (sc != expected[i])
            printf("note: bad input case %d gives %d on both backends (test expected %d)\n", i,
                   (int)sc, (int)expected[i]);
        ck_assert_int_ne(sg, LGD_OK);
    }
    TU_OK(gpu, lgd_context_synchronize(gpu));
}
END_TEST

/* ---- memory: steady state ---- */

START_TEST(test_memory_steady)
{
    gmm_params p;
    make_gmm(&p);
    struct {
        lgd_sampler_kind s;
        lgd_guidance_kind g;
    } runs[] = { { LGD_SAMPLER_EULER, LGD_GUIDANCE_MC },
                 { LGD_SAMPLER_HEUN, LGD_GUIDANCE_EXACT },
                 { LGD_SAMPLER_DPMPP_2M, LGD_GUIDANCE_DPS },
                 { LGD_SAMPLER_DDIM, LGD_GUIDANCE_NONE } };
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        lgd_model *m = NULL;
        lgd_loss *l = NULL;
        lgd_guidance *g = NULL;
        lgd_sampler *s = NULL;
        TU_OK(gpu, lgd_model_create_gmm(gpu, E2E_DIM, E2E_K, p.weights, p.means, p.cov,
                                        LGD_COVARIANCE_FULL, &m));
        TU_OK(gpu, lgd_loss_create_squared_error(gpu, E2E_DIM, p.target, 1, NULL, &l));
        lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
        go.kind = runs[k].g;
        go.n_samples = 40; /* 3 chunks of 16 */
        TU_OK(gpu, lgd_guidance_create(gpu, m, l, &go, &g));
        lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
        so.kind = runs[k].s;
        so.steps = 8;
        so.eta = 1.0f;
        TU_OK(gpu, lgd_sampler_create(g, &so, &s));
        lgd_tensor *x = tu_tensor(gpu, 512, E2E_DIM, NULL);
        TU_OK(gpu, lgd_sampler_init(s, x, 3, 0));
        lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
        TU_OK(gpu, lgd_sampler_step(s, x, &rep)); /* warm-up */
        TU_OK(gpu, lgd_context_synchronize(gpu));
        size_t cur0, peak0, cur1, peak1;
        lgd_context_memory_usage(gpu, &cur0, &peak0);
        size_t mallocs0 = cuda_malloc_calls;
        while (!lgd_sampler_done(s))
            TU_OK(gpu, lgd_sampler_step(s, x, &rep));
        TU_OK(gpu, lgd_context_synchronize(gpu));
        lgd_context_memory_usage(gpu, &cur1, &peak1);
        size_t mallocs = cuda_malloc_calls - mallocs0;
        ck_assert_msg(peak1 == peak0, "run %zu: peak memory rose from %zu to %zu after warm-up",
                      k, peak0, peak1);
        ck_assert_msg(cur1 == cur0, "run %zu: memory in use changed from %zu to %zu", k, cur0,
                      cur1);
        ck_assert_msg(mallocs == 0, "run %zu: %zu cudaMalloc calls after the warm-up step", k,
                      mallocs);
        lgd_tensor_destroy(x);
        lgd_sampler_destroy(s);
        lgd_guidance_destroy(g);
        lgd_loss_destroy(l);
        lgd_model_destroy(m);
    }
    /* the interposer saw the module's allocations at all (else the check above is void) */
    ck_assert_msg(cuda_malloc_calls > 0, "the cudaMalloc interposer was never called: the "
                  "executable must be linked with --export-dynamic");
}
END_TEST

/* ---- network layers (the "nn" kernel table): CUDA vs the CPU reference ---- */

#define NN_TOL 1e-4 /* reductions over many terms: GEMM, convolution, group norm */

/* Both backends' "nn" kernel tables must have the kernel (the CPU's in
 * src/backend/cpu/cpu_layers.c and cpu_conv.c, CUDA's in cuda/kernels_nn.cu). */
#define NN_NEED(op)                                                                     \
    ck_assert_msg(C().nn->op != NULL && G().nn->op != NULL,                             \
                  "nn kernel " #op " missing (CPU %s, CUDA %s)", C().nn->op ? "yes" : "no", \
                  G().nn->op ? "yes" : "no")

/* Both backend tables must have the (optional) op. */
#define OPS_NEED(op)                                                                    \
    ck_assert_msg(C().ops->op != NULL && G().ops->op != NULL,                           \
                  "backend op " #op " missing (CPU %s, CUDA %s)", C().ops->op ? "yes" : "no", \
                  G().ops->op ? "yes" : "no")

/* dx before a backward op: all NaN for beta 0 (the old contents must be ignored),
 * random for beta 1 (they are added to) */
static pair pair_dx(tu_rng *r, size_t n, float beta)
{
    pair p = pair_random(r, n, 1.0f);
    if (beta == 0.0f) {
        for (size_t i = 0; i < n; i++)
            p.c[i] = NAN;
        G().ops->fill(G().be, p.g, n, NAN);
    }
    return p;
}

START_TEST(test_nn_gemm_batched)
{
    OPS_NEED(gemm_batched);
    /* M, N, K, count */
    static const size_t dims[][4] = { { 1, 1, 1, 1 },     { 7, 5, 3, 3 },    { 64, 16, 16, 2 },
                                      { 33, 65, 129, 3 }, { 5, 4, 0, 2 },    { 128, 96, 64, 4 } };
    tu_rng r = { 31 };
    backend b[2] = { C(), G() };
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int variant = 0; variant < 3; variant++) {
                    /* 0: beta 0 (C NaN where written); 1: beta 0.5; 2: A shared (stride 0) */
                    size_t M = dims[d][0], N = dims[d][1], K = dims[d][2], cnt = dims[d][3];
                    size_t a_rows = ta ? K : M, a_cols = ta ? M : K;
                    size_t b_rows = tb ? N : K, b_cols = tb ? K : N;
                    size_t lda = a_cols + 1, ldb = b_cols + 2, ldc = N + 1;
                    size_t sa = variant == 2 ? 0 : a_rows * lda + 3, sb = b_rows * ldb + 1;
                    size_t sc = M * ldc + 2;
                    pair A = pair_random(&r, sa * cnt + a_rows * lda + 1, 1.0f);
                    pair B = pair_random(&r, sb * cnt + b_rows * ldb + 1, 1.0f);
                    pair Cm = pair_random(&r, sc * cnt, 1.0f);
                    float beta = variant == 1 ? 0.5f : 0.0f;
                    if (variant == 0) { /* NaN in every C entry the op writes */
                        float *h = malloc(sc * cnt * sizeof *h);
                        memcpy(h, Cm.c, sc * cnt * sizeof *h);
                        for (size_t i = 0; i < cnt; i++)
                            for (size_t m = 0; m < M; m++)
                                for (size_t n = 0; n < N; n++)
                                    h[i * sc + m * ldc + n] = NAN;
                        memcpy(Cm.c, h, sc * cnt * sizeof *h);
                        ck_assert_int_eq(G().ops->upload(G().be, Cm.g, h, sc * cnt * sizeof *h), 0);
                        free(h);
                    }
                    for (int k = 0; k < 2; k++)
                        b[k].ops->gemm_batched(b[k].be, ta, tb, M, N, K, 1.25f, k ? A.g : A.c,
                                               lda, sa, k ? B.g : B.c, ldb, sb, beta,
                                               k ? Cm.g : Cm.c, ldc, sc, cnt);
                    char what[160];
                    snprintf(what, sizeof what,
                             "gemm_batched %zux%zux%zu x%zu ta=%d tb=%d variant %d", M, N, K,
                             cnt, ta, tb, variant);
                    pair_check(Cm, GEMM_TOL, what);
                    pair_free(A);
                    pair_free(B);
                    pair_free(Cm);
                }
}
END_TEST

/* ---- convolutions ---- */

typedef struct conv_case {
    int n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw;
} conv_case;

static const conv_case conv_cases[] = {
    { 1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1 },      /* 3x3, stride 1, pad 1 */
    { 3, 4, 9, 7, 6, 3, 3, 2, 2, 1, 1 },      /* stride 2, odd sizes */
    { 3, 4, 12, 12, 8, 3, 3, 1, 1, 0, 0 },    /* pad 0 */
    { 1, 2, 6, 6, 3, 3, 3, 2, 2, 2, 2 },      /* pad 2, kernel 3 */
    { 1, 5, 11, 13, 3, 5, 5, 1, 1, 2, 2 },    /* 5x5, pad 2 */
    { 3, 6, 10, 10, 4, 5, 5, 2, 2, 2, 2 },    /* 5x5, stride 2 */
    { 3, 8, 16, 16, 8, 1, 1, 1, 1, 0, 0 },    /* pointwise */
    { 3, 6, 8, 8, 4, 1, 1, 2, 2, 0, 0 },      /* 1x1, stride 2 */
    { 1, 16, 32, 32, 32, 3, 3, 1, 1, 1, 1 },  /* larger */
    { 3, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1 },  /* downsampling */
    { 3, 8, 1, 50, 16, 1, 5, 1, 1, 0, 2 },    /* 1-D, kernel 5, pad 2 */
    { 1, 4, 1, 33, 4, 1, 3, 1, 2, 0, 1 },     /* 1-D, stride 2 */
    { 3, 4, 1, 20, 6, 1, 1, 1, 1, 0, 0 },     /* 1-D pointwise */
    { 3, 5, 1, 17, 7, 1, 3, 1, 1, 0, 0 },     /* 1-D, pad 0 */
};

static lgd_conv_shape conv_shape(const conv_case *c)
{
    lgd_conv_shape s = { c->n, c->c_in, c->h, c->w, c->c_out, c->kh, c->kw, c->sh, c->sw,
                         c->ph, c->pw, 0, 0 };
    s.h_out = (s.h + 2 * s.pad_h - s.kh) / s.stride_h + 1;
    s.w_out = (s.w + 2 * s.pad_w - s.kw) / s.stride_w + 1;
    return s;
}

/* A second CUDA backend opened with LGD_CUDA_CONV=im2col: the convolutions without
 * cuDNN (the fallback of a module built without it). */
static backend open_im2col_backend(void **handle)
{
    lgd_backend *be = NULL;
    const lgd_backend_ops *ops = NULL;
    lgd_backend_open_fn fn = module_entry(handle);
    ck_assert_msg(fn != NULL, "cannot load the module: %s", dlerror());
    char err[512];
    setenv("LGD_CUDA_CONV", "im2col", 1);
    int rc = fn(LGD_BACKEND_ABI_VERSION, 0, &be, &ops, err, sizeof err);
    unsetenv("LGD_CUDA_CONV");
    ck_assert_msg(rc == 0, "opening a second CUDA backend: %s", err);
    return backend_of(be, ops);
}

/* n floats of host memory into a new buffer of backend g */
static float *dev_new(backend g, const float *h, size_t n)
{
    float *p = g.ops->alloc(g.be, (n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    if (h && n)
        ck_assert_int_eq(g.ops->upload(g.be, p, h, n * sizeof(float)), 0);
    return p;
}

static void dev_check(backend g, const float *p, const float *ref, size_t n, double tol,
                      const char *what)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    ck_assert_msg(g.ops->download(g.be, h, p, n * sizeof(float)) == 0, "%s: download failed",
                  what);
    double e = nerr(h, ref, n);
    ck_assert_msg(e < tol, "%s: normalised error %.3g >= %.3g (n = %zu)", what, e, tol, n);
    free(h);
}

static float *host_random(tu_rng *r, size_t n, float scale)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    tu_fill_normal(r, h, n, scale);
    return h;
}

/* One convolution case on the CPU and on each CUDA backend in gs: forward with and
 * without bias, backward data with beta 0 (dx NaN before) and beta 1. */
static void conv_compare(const conv_case *cc, const backend *gs, int ngs, const char *const *names)
{
    tu_rng r = { 41 + (uint64_t)cc->c_in * 7 + (uint64_t)cc->kw };
    lgd_conv_shape s = conv_shape(cc);
    size_t nx = (size_t)s.n * s.c_in * s.h * s.w, nw = (size_t)s.c_out * s.c_in * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.c_out * s.h_out * s.w_out;
    float *x = host_random(&r, nx, 1.0f);
    float *w = host_random(&r, nw, (float)(1.0 / sqrt((double)s.c_in * s.kh * s.kw)));
    float *bias = host_random(&r, (size_t)s.c_out, 0.5f);
    float *dy = host_random(&r, ny, 1.0f);
    float *dx1 = host_random(&r, nx, 1.0f); /* dx before the beta = 1 call */
    backend c = C();
    /* the CPU reference */
    float *cx = dev_new(c, x, nx), *cw = dev_new(c, w, nw), *cb = dev_new(c, bias, s.c_out);
    float *cdy = dev_new(c, dy, ny);
    float *ry = dev_new(c, NULL, ny), *ryb = dev_new(c, NULL, ny);
    float *rdx0 = dev_new(c, NULL, nx), *rdx1 = dev_new(c, dx1, nx);
    for (size_t i = 0; i < nx; i++)
        rdx0[i] = NAN;
    ck_assert_int_eq(c.nn->conv2d_forward(c.be, &s, cx, cw, NULL, ry), 0);
    ck_assert_int_eq(c.nn->conv2d_forward(c.be, &s, cx, cw, cb, ryb), 0);
    ck_assert_int_eq(c.nn->conv2d_backward_data(c.be, &s, cdy, cw, 0.0f, rdx0), 0);
    ck_assert_int_eq(c.nn->conv2d_backward_data(c.be, &s, cdy, cw, 1.0f, rdx1), 0);
    for (int k = 0; k < ngs; k++) {
        backend g = gs[k];
        float *gx = dev_new(g, x, nx), *gw = dev_new(g, w, nw), *gb = dev_new(g, bias, s.c_out);
        float *gdy = dev_new(g, dy, ny);
        float *gy = dev_new(g, NULL, ny), *gyb = dev_new(g, NULL, ny);
        float *gdx0 = dev_new(g, NULL, nx), *gdx1 = dev_new(g, dx1, nx);
        g.ops->fill(g.be, gy, ny, NAN); /* the forward writes every output */
        g.ops->fill(g.be, gdx0, nx, NAN);
        ck_assert_int_eq(g.nn->conv2d_forward(g.be, &s, gx, gw, NULL, gy), 0);
        ck_assert_int_eq(g.nn->conv2d_forward(g.be, &s, gx, gw, gb, gyb), 0);
        ck_assert_int_eq(g.nn->conv2d_backward_data(g.be, &s, gdy, gw, 0.0f, gdx0), 0);
        ck_assert_int_eq(g.nn->conv2d_backward_data(g.be, &s, gdy, gw, 1.0f, gdx1), 0);
        char what[200];
        int len = snprintf(what, sizeof what,
                           "%s: conv n%d c%d->%d %dx%d k%dx%d s%d,%d p%d,%d", names[k], s.n,
                           s.c_in, s.c_out, s.h, s.w, s.kh, s.kw, s.stride_h, s.stride_w,
                           s.pad_h, s.pad_w);
        size_t room = sizeof what - (size_t)len;
        snprintf(what + len, room, " forward");
        dev_check(g, gy, ry, ny, NN_TOL, what);
        snprintf(what + len, room, " forward+bias");
        dev_check(g, gyb, ryb, ny, NN_TOL, what);
        snprintf(what + len, room, " backward_data beta 0");
        dev_check(g, gdx0, rdx0, nx, NN_TOL, what);
        snprintf(what + len, room, " backward_data beta 1");
        dev_check(g, gdx1, rdx1, nx, NN_TOL, what);
        float *gp[] = { gx, gw, gb, gdy, gy, gyb, gdx0, gdx1 };
        for (size_t i = 0; i < sizeof gp / sizeof gp[0]; i++)
            g.ops->free(g.be, gp[i]);
    }
    float *cp[] = { cx, cw, cb, cdy, ry, ryb, rdx0, rdx1 };
    for (size_t i = 0; i < sizeof cp / sizeof cp[0]; i++)
        c.ops->free(c.be, cp[i]);
    free(x);
    free(w);
    free(bias);
    free(dy);
    free(dx1);
}

START_TEST(test_nn_conv)
{
    NN_NEED(conv2d_forward);
    NN_NEED(conv2d_backward_data);
    void *h = NULL;
    backend gs[2] = { G(), open_im2col_backend(&h) };
    const char *names[2] = { "cuda", "cuda (im2col)" };
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        conv_compare(&conv_cases[i], gs, 2, names);
    ck_assert_int_eq(gs[1].ops->synchronize(gs[1].be), 0);
    gs[1].ops->destroy(gs[1].be);
    dlclose(h);
    ck_assert_int_eq(G().ops->synchronize(G().be), 0);
}
END_TEST

/* After a warm-up call per shape, convolutions call cudaMalloc no more (cuDNN's
 * workspace and the im2col buffers come from the pool), on both paths. */
START_TEST(test_nn_conv_steady)
{
    NN_NEED(conv2d_forward);
    NN_NEED(conv2d_backward_data);
    void *h = NULL;
    backend gs[2] = { G(), open_im2col_backend(&h) };
    static const conv_case cases[] = { { 3, 16, 32, 32, 32, 3, 3, 1, 1, 1, 1 },
                                       { 3, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1 },
                                       { 3, 8, 1, 50, 16, 1, 5, 1, 1, 0, 2 } };
    tu_rng r = { 43 };
    for (int k = 0; k < 2; k++) {
        backend g = gs[k];
        float *bufs[3][5];
        for (int c = 0; c < 3; c++) {
            lgd_conv_shape s = conv_shape(&cases[c]);
            size_t nx = (size_t)s.n * s.c_in * s.h * s.w, nw = (size_t)s.c_out * s.c_in * s.kh * s.kw;
            size_t ny = (size_t)s.n * s.c_out * s.h_out * s.w_out;
            float *hx = host_random(&r, nx, 1.0f), *hw = host_random(&r, nw, 0.1f);
            float *hb = host_random(&r, (size_t)s.c_out, 1.0f), *hy = host_random(&r, ny, 1.0f);
            bufs[c][0] = dev_new(g, hx, nx);
            bufs[c][1] = dev_new(g, hw, nw);
            bufs[c][2] = dev_new(g, hb, (size_t)s.c_out);
            bufs[c][3] = dev_new(g, hy, ny);
            bufs[c][4] = dev_new(g, hx, nx);
            free(hx);
            free(hw);
            free(hb);
            free(hy);
        }
        size_t mallocs0 = 0;
        for (int rep = 0; rep < 4; rep++) {
            if (rep == 1) { /* after the warm-up round */
                ck_assert_int_eq(g.ops->synchronize(g.be), 0);
                mallocs0 = cuda_malloc_calls;
            }
            for (int c = 0; c < 3; c++) {
                lgd_conv_shape s = conv_shape(&cases[c]);
                float **b = bufs[c];
                ck_assert_int_eq(g.nn->conv2d_forward(g.be, &s, b[0], b[1], b[2], b[3]), 0);
                ck_assert_int_eq(g.nn->conv2d_backward_data(g.be, &s, b[3], b[1], 0.0f, b[4]), 0);
                ck_assert_int_eq(g.nn->conv2d_backward_data(g.be, &s, b[3], b[1], 1.0f, b[4]), 0);
            }
        }
        ck_assert_int_eq(g.ops->synchronize(g.be), 0);
        size_t mallocs = cuda_malloc_calls - mallocs0;
        ck_assert_msg(mallocs == 0, "%s: %zu cudaMalloc calls in repeated convolutions after "
                      "the warm-up", k ? "cuda (im2col)" : "cuda", mallocs);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 5; i++)
                g.ops->free(g.be, bufs[c][i]);
    }
    gs[1].ops->destroy(gs[1].be);
    dlclose(h);
}
END_TEST

/* ---- elementwise layers ---- */

static const size_t ncs_shapes[][3] = { { 1, 1, 1 }, { 3, 4, 17 }, { 2, 64, 256 }, { 5, 3, 1000 } };
#define NCS_SHAPES (sizeof ncs_shapes / sizeof ncs_shapes[0])

START_TEST(test_nn_channel_ops)
{
    NN_NEED(add_channel_bias);
    NN_NEED(scale_shift);
    NN_NEED(scale_shift_backward);
    tu_rng r = { 51 };
    backend b[2] = { C(), G() };
    for (size_t sh = 0; sh < NCS_SHAPES; sh++) {
        size_t n = ncs_shapes[sh][0], c = ncs_shapes[sh][1], s = ncs_shapes[sh][2];
        size_t total = n * c * s;
        char what[160];
        /* add_channel_bias: one shared bias (stride 0) and one per sample (stride c + 2) */
        for (int per = 0; per < 2; per++) {
            size_t stride = per ? c + 2 : 0;
            pair bias = pair_random(&r, per ? n * stride : c, 1.0f);
            pair y = pair_random(&r, total, 1.0f);
            for (int k = 0; k < 2; k++)
                b[k].nn->add_channel_bias(b[k].be, n, c, s, k ? bias.g : bias.c, stride,
                                          k ? y.g : y.c);
            snprintf(what, sizeof what, "add_channel_bias stride %zu (%zu x %zu x %zu)", stride,
                     n, c, s);
            pair_check(y, OP_TOL, what);
            pair_free(bias);
            pair_free(y);
        }
        /* scale_shift: stride c and c + 3; in place too */
        for (int st = 0; st < 2; st++) {
            size_t stride = st ? c + 3 : c;
            pair scale = pair_random(&r, n * stride, 0.5f), shift = pair_random(&r, n * stride, 1.0f);
            pair x = pair_random(&r, total, 1.0f), y = pair_new(NULL, total);
            for (int k = 0; k < 2; k++) {
                b[k].nn->scale_shift(b[k].be, n, c, s, k ? x.g : x.c, k ? scale.g : scale.c,
                                     k ? shift.g : shift.c, stride, k ? y.g : y.c);
                b[k].nn->scale_shift(b[k].be, n, c, s, k ? x.g : x.c, k ? scale.g : scale.c,
                                     k ? shift.g : shift.c, stride, k ? x.g : x.c);
            }
            snprintf(what, sizeof what, "scale_shift stride %zu (%zu x %zu x %zu)", stride, n, c, s);
            pair_check(y, OP_TOL, what);
            pair_check(x, OP_TOL, what);
            /* backward, beta 0 (dx NaN) and 1 */
            for (int bi = 0; bi < 2; bi++) {
                float beta = (float)bi;
                pair dy = pair_random(&r, total, 1.0f), dx = pair_dx(&r, total, beta);
                for (int k = 0; k < 2; k++)
                    b[k].nn->scale_shift_backward(b[k].be, n, c, s, k ? dy.g : dy.c,
                                                  k ? scale.g : scale.c, stride, beta,
                                                  k ? dx.g : dx.c);
                snprintf(what, sizeof what, "scale_shift_backward stride %zu beta %d (%zu x %zu x %zu)",
                         stride, bi, n, c, s);
                pair_check(dx, OP_TOL, what);
                pair_free(dy);
                pair_free(dx);
            }
            pair_free(scale);
            pair_free(shift);
            pair_free(x);
            pair_free(y);
        }
    }
}
END_TEST

START_TEST(test_nn_activation)
{
    NN_NEED(activation);
    NN_NEED(activation_backward);
    tu_rng r = { 52 };
    backend b[2] = { C(), G() };
    static const float extremes[] = { -100.0f, -30.0f, -10.0f, -3.0f, -1.0f, -1e-3f, 0.0f,
                                      1e-3f,   1.0f,   3.0f,   10.0f, 30.0f, 100.0f };
    const size_t sizes[] = { 1, 13, 1000, 100003 };
    static const char *names[] = { "SiLU", "GELU" };
    for (int f = 0; f < 2; f++)
        for (size_t si = 0; si < 4; si++) {
            size_t n = sizes[si];
            char what[128];
            float *h = host_random(&r, n, 3.0f);
            if (n == 13)
                memcpy(h, extremes, sizeof extremes);
            pair x = pair_new(h, n), y = pair_new(NULL, n);
            free(h);
            for (int k = 0; k < 2; k++)
                b[k].nn->activation(b[k].be, (lgd_activation)f, n, k ? x.g : x.c,
                                    k ? y.g : y.c);
            snprintf(what, sizeof what, "activation %s (%zu)", names[f], n);
            pair_check(y, OP_TOL, what);
            for (int bi = 0; bi < 2; bi++) {
                float beta = (float)bi;
                pair dy = pair_random(&r, n, 1.0f), dx = pair_dx(&r, n, beta);
                for (int k = 0; k < 2; k++)
                    b[k].nn->activation_backward(b[k].be, (lgd_activation)f, n, k ? x.g : x.c,
                                                 k ? dy.g : dy.c, beta, k ? dx.g : dx.c);
                snprintf(what, sizeof what, "activation_backward %s beta %d (%zu)", names[f], bi,
                         n);
                pair_check(dx, OP_TOL, what);
                pair_free(dy);
                pair_free(dx);
            }
            /* in place: y = f(y) */
            for (int k = 0; k < 2; k++)
                b[k].nn->activation(b[k].be, (lgd_activation)f, n, k ? y.g : y.c,
                                    k ? y.g : y.c);
            snprintf(what, sizeof what, "activation %s in place (%zu)", names[f], n);
            pair_check(y, OP_TOL, what);
            pair_free(x);
            pair_free(y);
        }
}
END_TEST

START_TEST(test_nn_group_norm)
{
    NN_NEED(group_norm);
    NN_NEED(group_norm_backward);
    /* n, c, s, groups: a warp per group (short) and a block (long rows > 512), instance
     * norm (groups = c) and layer norm (s = 1, groups = 1) */
    static const size_t cases[][4] = { { 1, 8, 16, 1 },  { 3, 8, 16, 4 },   { 3, 32, 100, 4 },
                                       { 2, 12, 7, 12 }, { 5, 700, 1, 1 },  { 3, 64, 1, 1 },
                                       { 3, 16, 300, 4 }, { 1, 4, 1, 1 } };
    tu_rng r = { 53 };
    backend b[2] = { C(), G() };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        size_t n = cases[ci][0], c = cases[ci][1], s = cases[ci][2], groups = cases[ci][3];
        size_t total = n * c * s;
        char what[160];
        /* values around 5: the mean must not cancel the variance */
        float *hx = host_random(&r, total, 2.0f);
        for (size_t i = 0; i < total; i++)
            hx[i] += 5.0f;
        pair x = pair_new(hx, total);
        free(hx);
        float *hg = host_random(&r, c, 0.3f);
        for (size_t i = 0; i < c; i++)
            hg[i] += 1.0f;
        pair gamma = pair_new(hg, c), beta_ = pair_random(&r, c, 0.5f);
        free(hg);
        pair y = pair_new(NULL, total), mean = pair_new(NULL, n * groups);
        pair rstd = pair_new(NULL, n * groups);
        for (int k = 0; k < 2; k++)
            b[k].nn->group_norm(b[k].be, n, c, s, groups, 1e-5f, k ? x.g : x.c,
                                k ? gamma.g : gamma.c, k ? beta_.g : beta_.c, k ? y.g : y.c,
                                k ? mean.g : mean.c, k ? rstd.g : rstd.c);
        snprintf(what, sizeof what, "group_norm (%zu x %zu x %zu, %zu groups)", n, c, s, groups);
        pair_check(y, NN_TOL, what);
        pair_check(mean, NN_TOL, what);
        pair_check(rstd, NN_TOL, what);
        for (int bi = 0; bi < 2; bi++) {
            float beta = (float)bi;
            pair dy = pair_random(&r, total, 1.0f), dx = pair_dx(&r, total, beta);
            for (int k = 0; k < 2; k++)
                b[k].nn->group_norm_backward(b[k].be, n, c, s, groups, k ? x.g : x.c,
                                             k ? gamma.g : gamma.c, k ? mean.g : mean.c,
                                             k ? rstd.g : rstd.c, k ? dy.g : dy.c, beta,
                                             k ? dx.g : dx.c);
            snprintf(what, sizeof what, "group_norm_backward beta %d (%zu x %zu x %zu, %zu groups)",
                     bi, n, c, s, groups);
            pair_check(dx, NN_TOL, what);
            pair_free(dy);
            pair_free(dx);
        }
        pair_free(x);
        pair_free(gamma);
        pair_free(beta_);
        pair_free(y);
        pair_free(mean);
        pair_free(rstd);
    }
}
END_TEST

START_TEST(test_nn_resample)
{
    NN_NEED(upsample_nearest);
    NN_NEED(upsample_nearest_backward);
    NN_NEED(avg_pool);
    NN_NEED(avg_pool_backward);
    /* planes, h, w, fh, fw (h, w: the small side) */
    static const size_t cases[][5] = { { 1, 4, 4, 2, 2 }, { 6, 3, 5, 1, 2 }, { 6, 8, 6, 2, 3 },
                                       { 4, 1, 16, 1, 2 }, { 2, 32, 32, 2, 2 }, { 1, 1, 1, 1, 1 } };
    tu_rng r = { 54 };
    backend b[2] = { C(), G() };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        size_t p = cases[ci][0], h = cases[ci][1], w = cases[ci][2], fh = cases[ci][3],
               fw = cases[ci][4];
        size_t small = p * h * w, big = p * h * fh * w * fw;
        char what[160];
        /* upsample [p][h][w] -> [p][h fh][w fw], and its VJP */
        {
            pair x = pair_random(&r, small, 1.0f), y = pair_new(NULL, big);
            for (int k = 0; k < 2; k++)
                b[k].nn->upsample_nearest(b[k].be, p, h, w, fh, fw, k ? x.g : x.c,
                                          k ? y.g : y.c);
            snprintf(what, sizeof what, "upsample_nearest %zu x %zux%zu by %zux%zu", p, h, w, fh,
                     fw);
            pair_check(y, OP_TOL, what);
            for (int bi = 0; bi < 2; bi++) {
                float beta = (float)bi;
                pair dy = pair_random(&r, big, 1.0f), dx = pair_dx(&r, small, beta);
                for (int k = 0; k < 2; k++)
                    b[k].nn->upsample_nearest_backward(b[k].be, p, h, w, fh, fw,
                                                       k ? dy.g : dy.c, beta, k ? dx.g : dx.c);
                snprintf(what, sizeof what, "upsample_nearest_backward beta %d %zu x %zux%zu by "
                         "%zux%zu", bi, p, h, w, fh, fw);
                pair_check(dx, OP_TOL, what);
                pair_free(dy);
                pair_free(dx);
            }
            pair_free(x);
            pair_free(y);
        }
        /* average pooling [p][h fh][w fw] -> [p][h][w], and its VJP */
        {
            size_t H = h * fh, W = w * fw;
            pair x = pair_random(&r, big, 1.0f), y = pair_new(NULL, small);
            for (int k = 0; k < 2; k++)
                b[k].nn->avg_pool(b[k].be, p, H, W, fh, fw, k ? x.g : x.c, k ? y.g : y.c);
            snprintf(what, sizeof what, "avg_pool %zu x %zux%zu by %zux%zu", p, H, W, fh, fw);
            pair_check(y, OP_TOL, what);
            for (int bi = 0; bi < 2; bi++) {
                float beta = (float)bi;
                pair dy = pair_random(&r, small, 1.0f), dx = pair_dx(&r, big, beta);
                for (int k = 0; k < 2; k++)
                    b[k].nn->avg_pool_backward(b[k].be, p, H, W, fh, fw, k ? dy.g : dy.c, beta,
                                               k ? dx.g : dx.c);
                snprintf(what, sizeof what, "avg_pool_backward beta %d %zu x %zux%zu by %zux%zu",
                         bi, p, H, W, fh, fw);
                pair_check(dx, OP_TOL, what);
                pair_free(dy);
                pair_free(dx);
            }
            pair_free(x);
            pair_free(y);
        }
    }
}
END_TEST

/* the sinusoidal time embedding, CUDA vs CPU: both round t f_i in float, but expf and
 * cosf / sinf differ by a few ulp between libdevice and libm, so the arguments (up to
 * t = 999) may differ by a few ulp of t: tolerance 2e-6 + 1e-6 t */
START_TEST(test_nn_time_embedding)
{
    NN_NEED(time_embedding);
    static const float ts[] = { 0.0f, 0.7f, 37.5f, 999.0f };
    for (int a = 0; a < 4; a++) {
        pair p = pair_new(NULL, 320);
        C().nn->time_embedding(C().be, ts[a], 320, p.c);
        G().nn->time_embedding(G().be, ts[a], 320, p.g);
        char what[64];
        snprintf(what, sizeof what, "time_embedding t = %g", (double)ts[a]);
        pair_check(p, 2e-6 + 1e-6 * (double)ts[a], what);
        pair_free(p);
    }
}
END_TEST

START_TEST(test_nn_copy_transpose)
{
    OPS_NEED(copy_rows);
    OPS_NEED(transpose);
    tu_rng r = { 55 };
    backend b[2] = { C(), G() };
    for (size_t sh = 0; sh < NSHAPES; sh++) {
        size_t rows = shapes[sh][0], cols = shapes[sh][1];
        char what[160];
        /* copy_rows: beta 0 into a dense NaN dst; beta 1 into a strided dst (its gaps must
         * stay); a strided source and a broadcast row (lds = 0) */
        for (int bi = 0; bi < 2; bi++)
            for (int bc = 0; bc < 2; bc++) {
                float beta = (float)bi;
                size_t lds = bc ? 0 : cols + 1, ldd = bi ? cols + 2 : cols;
                pair src = pair_random(&r, bc ? cols : rows * lds, 1.0f);
                pair dst = bi ? pair_random(&r, rows * ldd, 1.0f) : pair_dx(&r, rows * ldd, 0.0f);
                for (int k = 0; k < 2; k++)
                    b[k].ops->copy_rows(b[k].be, rows, cols, k ? src.g : src.c, lds, beta,
                                        k ? dst.g : dst.c, ldd);
                snprintf(what, sizeof what, "copy_rows beta %d lds %zu ldd %zu (%zu x %zu)", bi,
                         lds, ldd, rows, cols);
                pair_check(dst, OP_TOL, what);
                pair_free(src);
                pair_free(dst);
            }
        /* transpose, batch 1 and 3, beta 0 (NaN) and 1 */
        for (size_t batch = 1; batch <= 3; batch += 2)
            for (int bi = 0; bi < 2; bi++) {
                float beta = (float)bi;
                size_t n = batch * rows * cols;
                pair x = pair_random(&r, n, 1.0f), y = pair_dx(&r, n, beta);
                for (int k = 0; k < 2; k++)
                    b[k].ops->transpose(b[k].be, batch, rows, cols, k ? x.g : x.c, beta,
                                        k ? y.g : y.c);
                snprintf(what, sizeof what, "transpose beta %d (%zu x %zu x %zu)", bi, batch,
                         rows, cols);
                pair_check(y, OP_TOL, what);
                pair_free(x);
                pair_free(y);
            }
    }
}
END_TEST

/* ---- main ---- */

/* Loads the module directly to get its own explanation (the context's message is
 * a fixed string). */
static void explain(char *buf, size_t len)
{
    buf[0] = '\0';
    void *h = NULL;
    lgd_backend_open_fn fn = module_entry(&h);
    if (!h) {
        snprintf(buf, len, "dlopen: %s", dlerror());
        return;
    }
    if (!fn) {
        snprintf(buf, len, "the module has no lgd_cuda_backend_open");
    } else {
        lgd_backend *be = NULL;
        const lgd_backend_ops *ops = NULL;
        if (fn(LGD_BACKEND_ABI_VERSION, 0, &be, &ops, buf, len) == 0) {
            snprintf(buf, len, "(the module opens device 0 when called directly)");
            ops->destroy(be);
        }
    }
    dlclose(h);
}

/* ---- networks from files (issue 6): every fixture network on CUDA vs CPU ---- */

static const char *const net_fixtures[] = { "mlp", "mlp_cond", "unet", "unet_cond_ss",
                                            "temporal_unet", "attention", "resblock_scale_shift",
                                            "conv2d_stride2", "downsample_avgpool", "gelu" };
#define N_NET_FIXTURES ((int)(sizeof net_fixtures / sizeof net_fixtures[0]))

/* F and (dF/dx)^T v of a fixture network on ctx for the given host inputs */
static void net_run(lgd_context *ctx, const char *path, int64_t batch, const float *x,
                    const float *cond, const float *v, float t, float **out_f, float **out_g,
                    int64_t *dims)
{
    lgd_network *net;
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    int64_t D = lgd_network_dim(net), O = lgd_network_out_dim(net), K = lgd_network_cond_dim(net);
    dims[0] = D;
    dims[1] = O;
    dims[2] = K;
    lgd_tensor *tx = tu_tensor(ctx, batch, D, x);
    lgd_tensor *tc = K ? tu_tensor(ctx, batch, K, cond) : NULL;
    lgd_tensor *tv = tu_tensor(ctx, batch, O, v);
    lgd_tensor *tf = tu_tensor(ctx, batch, O, NULL), *tg = tu_tensor(ctx, batch, D, NULL);
    TU_OK(ctx, lgd_network_vjp(net, tx, t, tc, tv, tg, tf));
    *out_f = tu_download(tf);
    *out_g = tu_download(tg);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tc);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(tf);
    lgd_tensor_destroy(tg);
    lgd_network_destroy(net);
}

START_TEST(test_network_parity)
{
    const char *name = net_fixtures[_i];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", LGD_FIXTURE_DIR, name);
    /* shapes from a CPU load */
    lgd_network *probe;
    TU_OK(cpu, lgd_network_load(cpu, path, &probe));
    int64_t D = lgd_network_dim(probe), O = lgd_network_out_dim(probe);
    int64_t K = lgd_network_cond_dim(probe), B = 5;
    lgd_network_destroy(probe);
    tu_rng r = { 99u + (uint64_t)_i };
    float *x = malloc((size_t)(B * D) * sizeof *x), *v = malloc((size_t)(B * O) * sizeof *v);
    float *c = K ? calloc((size_t)(B * K), sizeof *c) : NULL;
    tu_fill_normal(&r, x, (size_t)(B * D), 1.0f);
    tu_fill_normal(&r, v, (size_t)(B * O), 1.0f);
    for (int64_t b = 0; b < B && K; b++)
        c[b * K + b % K] = 1.0f;
    float *fc, *gc, *fg, *gg;
    int64_t dims[3];
    net_run(cpu, path, B, x, c, v, 37.5f, &fc, &gc, dims);
    net_run(gpu, path, B, x, c, v, 37.5f, &fg, &gg, dims);
    double ef = nerr(fg, fc, (size_t)(B * O)), eg = nerr(gg, gc, (size_t)(B * D));
    printf("network %s: CUDA vs CPU normalised error forward %.2e, VJP %.2e\n", name, ef, eg);
    ck_assert_msg(ef < 1e-4 && eg < 1e-4, "%s: CUDA vs CPU forward %.3g, VJP %.3g", name, ef, eg);
    free(x);
    free(v);
    free(c);
    free(fc);
    free(gc);
    free(fg);
    free(gg);
}
END_TEST

/* guided steps (DPS and LGD-MC) with a loaded U-Net: CUDA vs CPU, and no cudaMalloc
 * once warm */
START_TEST(test_network_guided_steps)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/unet.safetensors", LGD_FIXTURE_DIR);
    lgd_context *ctxs[2] = { cpu, gpu };
    float *res[2][2];
    int64_t B = 4, D = 0;
    size_t mallocs_before = 0;
    for (int k = 0; k < 2; k++) {
        lgd_context *ctx = ctxs[k];
        lgd_model *m;
        TU_OK(ctx, lgd_model_load(ctx, path, &m));
        D = lgd_model_dim(m);
        float *target = malloc((size_t)D * sizeof *target);
        for (int64_t j = 0; j < D; j++)
            target[j] = 0.3f;
        lgd_loss *loss;
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, D, target, 1, NULL, &loss));
        tu_rng r = { 5 };
        float *hx = malloc((size_t)(B * D) * sizeof *hx);
        tu_fill_normal(&r, hx, (size_t)(B * D), 2.0f);
        lgd_tensor *x = tu_tensor(ctx, B, D, hx), *g = tu_tensor(ctx, B, D, NULL);
        for (int e = 0; e < 2; e++) {
            lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
            go.kind = e ? LGD_GUIDANCE_MC : LGD_GUIDANCE_DPS;
            go.n_samples = 32;
            lgd_guidance *gd;
            TU_OK(ctx, lgd_guidance_create(ctx, m, loss, &go, &gd));
            for (int rep = 0; rep < 3; rep++) {
                if (k == 1 && e == 1 && rep == 2)
                    mallocs_before = cuda_malloc_calls;
                TU_OK(ctx, lgd_guidance_term(gd, x, 2.0f, 0, 0, g, NULL, NULL));
            }
            if (k == 1 && e == 1)
                ck_assert_msg(cuda_malloc_calls == mallocs_before,
                              "a warm guided step on a network called cudaMalloc");
            res[k][e] = tu_download(g);
            lgd_guidance_destroy(gd);
        }
        free(target);
        free(hx);
        lgd_tensor_destroy(x);
        lgd_tensor_destroy(g);
        lgd_loss_destroy(loss);
        lgd_model_destroy(m);
    }
    for (int e = 0; e < 2; e++) {
        double err = nerr(res[1][e], res[0][e], (size_t)(B * D));
        printf("network U-Net guided term (%s): CUDA vs CPU normalised error %.2e\n",
               e ? "LGD-MC n=32" : "DPS", err);
        ck_assert_msg(err < 1e-3, "guided term %d: CUDA vs CPU %.3g", e, err);
        free(res[0][e]);
        free(res[1][e]);
    }
}
END_TEST

/* The network loss (issue 14, <lgd/network_loss.h>) on CUDA vs CPU, over the mlp
 * fixture's 8 outputs: cross-entropies with per-sample labels on the clean and the noisy
 * input (the file's discrete adapter) and a squared error to targets, each in pieces of
 * 5 rows (batch 4 x n 7); the classifier-guided model; an LGD-MC term (n = 32) with the
 * network loss, and no cudaMalloc in a warm guided step. */
enum { NL_B = 4, NL_N = 7, NL_D = 8, NL_RUNS = 6 };

static void netloss_runs(lgd_context *ctx, const char *path, const float *x, float **res,
                         size_t *counts, size_t *mallocs)
{
    lgd_network *net;
    TU_OK(ctx, lgd_network_load(ctx, path, &net));
    ck_assert_int_eq(lgd_network_dim(net), NL_D);
    ck_assert_int_eq(lgd_network_out_dim(net), NL_D);
    const int32_t labels[NL_B] = { 3, 0, 7, 5 };
    float targets[NL_B * NL_D];
    tu_rng r = { 17 };
    tu_fill_normal(&r, targets, NL_B * NL_D, 1.0f);
    int64_t shape[3] = { NL_B, NL_N, NL_D };
    lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, x), *tg = tu_tensor_nd(ctx, 3, shape, NULL);
    lgd_tensor *tl = tu_tensor(ctx, NL_B, NL_N, NULL);
    lgd_loss *losses[3];
    for (int k = 0; k < 3; k++) { /* CE clean, CE noisy, squared error */
        lgd_network_loss_options o = LGD_NETWORK_LOSS_OPTIONS_INIT;
        o.kind = k == 2 ? LGD_NETWORK_LOSS_SQUARED_ERROR : LGD_NETWORK_LOSS_CROSS_ENTROPY;
        o.input = k == 1 ? LGD_NETWORK_INPUT_NOISY : LGD_NETWORK_INPUT_CLEAN;
        o.sigma = 0.5f;
        o.t = 3.0f;
        o.max_rows = 5;
        TU_OK(ctx, lgd_loss_create_network(ctx, net, &o, &losses[k]));
        if (k == 2)
            TU_OK(ctx, lgd_loss_network_set_targets(losses[k], targets, NL_B, NL_D));
        else
            TU_OK(ctx, lgd_loss_network_set_labels(losses[k], labels, NL_B));
        TU_OK(ctx, lgd_loss_eval(losses[k], tx, tl, tg));
        float *l = tu_download(tl), *g = tu_download(tg);
        /* one array: NL_B * NL_N losses then the gradient */
        res[k] = malloc((size_t)(NL_B * NL_N * (1 + NL_D)) * sizeof(float));
        memcpy(res[k], l, (size_t)(NL_B * NL_N) * sizeof(float));
        memcpy(res[k] + NL_B * NL_N, g, (size_t)(NL_B * NL_N * NL_D) * sizeof(float));
        counts[k] = (size_t)(NL_B * NL_N * (1 + NL_D));
        free(l);
        free(g);
    }
    /* the classifier-guided model over N(0, I) with the noisy cross-entropy */
    const float w1 = 1.0f, mu[NL_D] = { 0 }, var1 = 1.0f;
    lgd_model *base, *cg;
    TU_OK(ctx, lgd_model_create_gmm(ctx, NL_D, 1, &w1, mu, &var1, LGD_COVARIANCE_ISOTROPIC,
                                    &base));
    TU_OK(ctx, lgd_model_create_classifier_guided(ctx, base, losses[1], 2.0f, &cg));
    lgd_tensor *xb = tu_tensor(ctx, NL_B, NL_D, x), *ob = tu_tensor(ctx, NL_B, NL_D, NULL);
    for (int k = 0; k < 2; k++) {
        TU_OK(ctx, lgd_model_denoise(k ? cg : base, xb, 1.3f, NULL, ob));
        res[3 + k] = tu_download(ob);
        counts[3 + k] = NL_B * NL_D;
    }
    /* the difference CG makes, compared on its own */
    for (int i = 0; i < NL_B * NL_D; i++)
        res[4][i] -= res[3][i];
    /* LGD-MC with the clean cross-entropy */
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_MC;
    go.n_samples = 32;
    lgd_guidance *gd;
    TU_OK(ctx, lgd_guidance_create(ctx, base, losses[0], &go, &gd));
    for (int rep = 0; rep < 3; rep++) {
        if (rep == 2)
            *mallocs = cuda_malloc_calls;
        TU_OK(ctx, lgd_guidance_term(gd, xb, 0.8f, 0, 0, ob, NULL, NULL));
    }
    *mallocs = cuda_malloc_calls - *mallocs;
    res[5] = tu_download(ob);
    counts[5] = NL_B * NL_D;
    lgd_guidance_destroy(gd);
    lgd_tensor_destroy(xb);
    lgd_tensor_destroy(ob);
    lgd_model_destroy(cg);
    lgd_model_destroy(base);
    for (int k = 0; k < 3; k++)
        lgd_loss_destroy(losses[k]);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(tl);
    lgd_network_destroy(net);
}

START_TEST(test_network_loss_parity)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/mlp.safetensors", LGD_FIXTURE_DIR);
    float x[NL_B * NL_N * NL_D];
    tu_rng r = { 23 };
    tu_fill_normal(&r, x, NL_B * NL_N * NL_D, 1.5f);
    float *rc[NL_RUNS], *rg[NL_RUNS];
    size_t counts[NL_RUNS], mallocs_cpu = 0, mallocs_gpu = 0;
    netloss_runs(cpu, path, x, rc, counts, &mallocs_cpu);
    netloss_runs(gpu, path, x, rg, counts, &mallocs_gpu);
    static const char *const names[NL_RUNS] = { "cross-entropy (clean)", "cross-entropy (noisy)",
                                                "squared error", "D", "CG term", "LGD-MC term" };
    for (int k = 0; k < NL_RUNS; k++) {
        double e = nerr(rg[k], rc[k], counts[k]);
        printf("network loss, %s: CUDA vs CPU normalised error %.2e\n", names[k], e);
        ck_assert_msg(e < (k == 5 ? 1e-3 : 1e-4), "network loss, %s: CUDA vs CPU %.3g", names[k],
                      e);
        free(rc[k]);
        free(rg[k]);
    }
    ck_assert_msg(mallocs_gpu == 0, "a warm guided step with a network loss called cudaMalloc "
                  "%zu times", mallocs_gpu);
}
END_TEST

static Suite *cuda_suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *ops = tcase_create("ops");
    tcase_set_timeout(ops, 600);
    tcase_add_test(ops, test_name);
    tcase_add_test(ops, test_copies);
    tcase_add_test(ops, test_elementwise);
    tcase_add_test(ops, test_rows);
    tcase_add_test(ops, test_all_finite);
    tcase_add_test(ops, test_gemm);
    tcase_add_test(ops, test_random);
    tcase_add_test(ops, test_categorical);
    tcase_add_test(ops, test_mc);
    tcase_add_test(ops, test_losses);
    suite_add_tcase(s, ops);
    TCase *nn = tcase_create("nn");
    tcase_set_timeout(nn, 600);
    tcase_add_test(nn, test_nn_gemm_batched);
    tcase_add_test(nn, test_nn_conv);
    tcase_add_test(nn, test_nn_conv_steady);
    tcase_add_test(nn, test_nn_channel_ops);
    tcase_add_test(nn, test_nn_activation);
    tcase_add_test(nn, test_nn_group_norm);
    tcase_add_test(nn, test_nn_resample);
    tcase_add_test(nn, test_nn_copy_transpose);
    tcase_add_test(nn, test_nn_time_embedding);
    suite_add_tcase(s, nn);
    TCase *net = tcase_create("network");
    tcase_set_timeout(net, 600);
    tcase_add_loop_test(net, test_network_parity, 0, N_NET_FIXTURES);
    tcase_add_test(net, test_network_guided_steps);
    tcase_add_test(net, test_network_loss_parity);
    suite_add_tcase(s, net);
    TCase *e2e = tcase_create("end_to_end");
    tcase_set_timeout(e2e, 600);
    tcase_add_loop_test(e2e, test_end_to_end, 0, 16);
    suite_add_tcase(s, e2e);
    TCase *api = tcase_create("api");
    tcase_set_timeout(api, 600);
    tcase_add_test(api, test_callbacks);
    tcase_add_test(api, test_bad_input);
    tcase_add_test(api, test_memory_steady);
    tcase_add_test(api, test_open_errors);
    tcase_add_test(api, test_kernel_tables);
    suite_add_tcase(s, api);
    return s;
}

int main(void)
{
    module_path = getenv("LGD_CUDA_MODULE");
    if (module_path && !module_path[0])
        module_path = NULL;
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.backend = LGD_BACKEND_CUDA;
    o.cuda_module_path = module_path;
    const char *why = NULL;
    lgd_status st = lgd_context_create(&o, &gpu, &why);
    if (st == LGD_ERR_BACKEND_UNAVAILABLE) {
        char detail[512];
        explain(detail, sizeof detail);
        if (why && detail[0] && strstr(why, detail)) /* the context said it already */
            detail[0] = '\0';
        printf("SKIP: no usable CUDA backend (module %s): %s%s%s\n",
               module_path ? module_path : "from the default search path", why,
               detail[0] ? ": " : "", detail);
        return 77;
    }
    if (st != LGD_OK) {
        fprintf(stderr, "creating the CUDA context failed: %s (%s)\n", lgd_status_string(st),
                why);
        return EXIT_FAILURE;
    }
    o.backend = LGD_BACKEND_CPU;
    st = lgd_context_create(&o, &cpu, &why);
    if (st != LGD_OK) {
        fprintf(stderr, "creating the CPU context failed: %s\n", why);
        lgd_context_destroy(gpu);
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(cuda_suite());
    srunner_set_fork_status(sr, CK_NOFORK); /* CUDA is initialised in this process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lgd_context_destroy(cpu);
    lgd_context_destroy(gpu);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
