/*
 * reference.c - fixed runs through liblgd's C API whose results the Python package must
 * reproduce bit for bit (tests/test_reference.py runs the same scenarios through `lgd`).
 *
 * Each scenario prints lines "NAME INDEX BITS" with BITS the float's bit pattern in hex,
 * so the comparison is exact. Scenarios: the trajectory prior with the path loss (LGD-MC,
 * Heun with churn), with the obstacle loss (DPS, DPM-Solver++(2M)), a full-covariance
 * mixture with the linear loss (LGD-MC, normalized step rule, DDIM with eta, first_row),
 * a diagonal mixture with a weighted sum of losses (exact guidance, VP schedule),
 * posterior draws, an SDEdit start (lgd_sampler_run_from), a guidance term with its
 * per-row report, and a user grid. Exit status 0, or 1 naming the failed call.
 *
 * Build: cc -std=c11 reference.c -I<include dirs> -L<libdir> -llgd -lm
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

static lgd_context *ctx;

#define CK(call)                                                                          \
    do {                                                                                  \
        lgd_status st_ = (call);                                                          \
        if (st_ != LGD_OK) {                                                              \
            fprintf(stderr, "reference: %s failed: %s (%s)\n", #call,                     \
                    lgd_status_string(st_), lgd_context_last_error(ctx));                 \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static void print_floats(const char *name, const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], sizeof b);
        printf("%s %" PRId64 " %08" PRIx32 "\n", name, i, b);
    }
}

static void print_tensor(const char *name, lgd_tensor *t)
{
    int64_t n = lgd_tensor_numel(t);
    float *h = malloc((size_t)n * sizeof *h);
    if (!h)
        exit(1);
    CK(lgd_tensor_download(t, h, n));
    print_floats(name, h, n);
    free(h);
}

/* A deterministic pattern in [-1, 1): the inputs of several scenarios (the Python test
 * computes the same values). */
static float pattern(int64_t i) { return (float)((i * 37 + 11) % 101) / 50.5f - 1.0f; }

static void trajectory_path(void)
{
    lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    po.frames = 16;
    po.headings = 4;
    po.turns = 3;
    lgd_model *prior;
    CK(lgd_model_create_trajectory_prior(ctx, &po, &prior));
    int64_t dim = 2 * po.frames;
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = po.frames;
    float path[32];
    for (int t = 0; t < 16; t++) {
        path[2 * t] = 0.5f * (float)(t + 1);
        path[2 * t + 1] = 0.25f * (float)t;
    }
    lgd_loss *loss;
    CK(lgd_loss_create_path(ctx, dim, &lo, path, 1, &loss));
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_MC;
    go.n_samples = 8;
    go.scale = 0.02f;
    lgd_guidance *g;
    CK(lgd_guidance_create(ctx, prior, loss, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_HEUN;
    so.steps = 10;
    so.s_churn = 0.5f;
    so.sigma_max = 20.0f;
    lgd_sampler *s;
    CK(lgd_sampler_create(g, &so, &s));
    lgd_tensor *x;
    CK(lgd_tensor_create_2d(ctx, 6, dim, &x));
    CK(lgd_sampler_run(s, x, 3, 0, NULL, NULL));
    print_tensor("trajectory_path", x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(prior);
}

static void trajectory_obstacle(void)
{
    lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    po.frames = 12;
    lgd_model *prior;
    CK(lgd_model_create_trajectory_prior(ctx, &po, &prior));
    int64_t dim = 2 * po.frames;
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = po.frames;
    const float goal[2] = { 6.0f, 3.0f };
    const float obstacles[6] = { 3.0f, 1.0f, 1.0f, 5.0f, 4.0f, 0.5f };
    lgd_obstacle_options oo = LGD_OBSTACLE_OPTIONS_INIT;
    oo.sharpness = 10.0f;
    lgd_loss *loss;
    CK(lgd_loss_create_obstacle_avoidance(ctx, dim, &lo, goal, 1, obstacles, 2, &oo, &loss));
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_DPS;
    go.step_rule = LGD_STEP_X0;
    go.scale = 0.05f;
    lgd_guidance *g;
    CK(lgd_guidance_create(ctx, prior, loss, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DPMPP_2M;
    so.steps = 8;
    so.sigma_max = 10.0f;
    lgd_sampler *s;
    CK(lgd_sampler_create(g, &so, &s));
    lgd_tensor *x;
    CK(lgd_tensor_create_2d(ctx, 5, dim, &x));
    CK(lgd_sampler_run(s, x, 5, 0, NULL, NULL));
    print_tensor("trajectory_obstacle", x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(prior);
}

/* The full-covariance mixture of scenarios 3 and 7: 3 components in 3-D. */
static lgd_model *full_mixture(void)
{
    const float w[3] = { 0.2f, 0.5f, 0.3f };
    const float mu[9] = { -1.0f, 0.0f, 1.0f, 1.0f, 1.0f, -0.5f, 0.0f, -1.5f, 0.5f };
    float cov[27];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                cov[k * 9 + i * 3 + j] =
                    (i == j ? 0.3f + 0.1f * (float)k : 0.05f * (float)(k + 1));
    lgd_model *m;
    CK(lgd_model_create_gmm(ctx, 3, 3, w, mu, cov, LGD_COVARIANCE_FULL, &m));
    return m;
}

static lgd_loss *linear_loss(void)
{
    const float H[6] = { 1.0f, 0.5f, 0.0f, 0.0f, -1.0f, 2.0f };
    const float y[2] = { 0.7f, -0.3f };
    lgd_loss *l;
    CK(lgd_loss_create_linear(ctx, 3, 2, H, y, 1, 0.3f, &l));
    return l;
}

static void mixture_linear(void)
{
    lgd_model *m = full_mixture();
    lgd_loss *l = linear_loss();
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_MC;
    go.n_samples = 20;
    go.chunk_size = 7;
    go.step_rule = LGD_STEP_NORMALIZED;
    go.scale = 0.5f;
    go.sigma_data = 0.8f;
    lgd_guidance *g;
    CK(lgd_guidance_create(ctx, m, l, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.eta = 0.7f;
    so.steps = 12;
    lgd_sampler *s;
    CK(lgd_sampler_create(g, &so, &s));
    lgd_tensor *x;
    CK(lgd_tensor_create_2d(ctx, 16, 3, &x));
    CK(lgd_sampler_run(s, x, 7, 3, NULL, NULL));
    print_tensor("mixture_linear", x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
}

static void mixture_sum_exact(void)
{
    const float w[2] = { 1.0f, 3.0f };
    const float mu[4] = { -1.0f, 2.0f, 1.5f, -0.5f };
    const float var[4] = { 0.2f, 0.5f, 0.3f, 0.1f };
    lgd_model *m;
    CK(lgd_model_create_gmm(ctx, 2, 2, w, mu, var, LGD_COVARIANCE_DIAGONAL, &m));
    const float target[2] = { 0.5f, 0.5f }, sw[2] = { 1.0f, 0.25f };
    lgd_loss *sq, *lg, *sum;
    CK(lgd_loss_create_squared_error(ctx, 2, target, 1, sw, &sq));
    const float a[2] = { 2.0f, -1.0f };
    CK(lgd_loss_create_logistic(ctx, 2, a, 0.5f, &lg));
    lgd_loss *terms[2] = { sq, lg };
    const float tw[2] = { 0.8f, 1.5f };
    CK(lgd_loss_create_sum(ctx, 2, terms, tw, &sum));
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_EXACT;
    go.n_samples = 16;
    lgd_guidance *g;
    CK(lgd_guidance_create(ctx, m, sum, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_EULER;
    so.schedule = LGD_SCHEDULE_VP_LINEAR;
    so.steps = 10;
    lgd_sampler *s;
    CK(lgd_sampler_create(g, &so, &s));
    lgd_tensor *x;
    CK(lgd_tensor_create_2d(ctx, 8, 2, &x));
    CK(lgd_sampler_run(s, x, 11, 0, NULL, NULL));
    print_tensor("mixture_sum_exact", x);
    /* posterior draws of the same mixture at sigma 0.7, from the pattern */
    lgd_tensor *xp, *draws;
    float hp[10];
    for (int i = 0; i < 10; i++)
        hp[i] = 2.0f * pattern(i);
    int64_t shape[3] = { 5, 3, 2 };
    CK(lgd_tensor_create_2d(ctx, 5, 2, &xp));
    CK(lgd_tensor_upload(xp, hp, 10));
    CK(lgd_tensor_create(ctx, 3, shape, &draws));
    CK(lgd_model_sample_posterior(m, xp, 0.7f, 2, 4, draws));
    print_tensor("posterior", draws);
    lgd_tensor_destroy(draws);
    lgd_tensor_destroy(xp);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(sum);
    lgd_loss_destroy(lg);
    lgd_loss_destroy(sq);
    lgd_model_destroy(m);
}

static void sdedit_and_term(void)
{
    lgd_model *m = full_mixture();
    lgd_loss *l = linear_loss();
    lgd_guidance *g;
    CK(lgd_guidance_mc(ctx, m, l, 12, &g));
    /* SDEdit from x0 = the pattern, at grid index 3 of a Karras grid of 9 steps */
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.steps = 9;
    lgd_sampler *s;
    CK(lgd_sampler_create(g, &so, &s));
    float h[12];
    for (int i = 0; i < 12; i++)
        h[i] = pattern(i);
    lgd_tensor *x;
    CK(lgd_tensor_create_2d(ctx, 4, 3, &x));
    CK(lgd_tensor_upload(x, h, 12));
    CK(lgd_sampler_run_from(s, x, 3, LGD_START_ADD_NOISE, 9, 0, NULL, NULL));
    print_tensor("sdedit", x);
    /* a guidance term at sigma 1.3 with the per-row report */
    lgd_tensor *gt, *xh;
    CK(lgd_tensor_upload(x, h, 12));
    CK(lgd_tensor_create_2d(ctx, 4, 3, &gt));
    CK(lgd_tensor_create_2d(ctx, 4, 3, &xh));
    float rl[4], re[4], rg[4], rlam[4];
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    rep.rows = 4;
    rep.row_loss = rl;
    rep.row_ess = re;
    rep.row_grad_norm = rg;
    rep.row_lambda = rlam;
    lgd_guidance_set_seed(g, 21);
    CK(lgd_guidance_term(g, x, 1.3f, 2, 5, gt, xh, &rep));
    print_tensor("term_g", gt);
    print_tensor("term_xhat", xh);
    const float means[6] = { rep.sigma, rep.mean_loss, rep.mean_ess, rep.min_ess,
                             rep.mean_grad_norm, rep.mean_lambda };
    print_floats("term_report", means, 6);
    print_floats("term_row_loss", rl, 4);
    print_floats("term_row_ess", re, 4);
    print_floats("term_row_grad_norm", rg, 4);
    lgd_tensor_destroy(gt);
    lgd_tensor_destroy(xh);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
}

static void user_grid(void)
{
    const float w[1] = { 1.0f }, mu[2] = { 0.5f, -0.5f }, var[1] = { 0.25f };
    lgd_model *m;
    CK(lgd_model_create_gmm(ctx, 2, 1, w, mu, var, LGD_COVARIANCE_ISOTROPIC, &m));
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_NONE;
    lgd_guidance *g;
    CK(lgd_guidance_create(ctx, m, NULL, &go, &g));
    const float sig[5] = { 10.0f, 3.0f, 1.0f, 0.3f, 0.05f };
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_HEUN;
    so.schedule = LGD_SCHEDULE_USER;
    so.sigmas = sig;
    so.n_sigmas = 5;
    lgd_sampler *s;
    CK(lgd_sampler_create(g, &so, &s));
    lgd_tensor *x;
    CK(lgd_tensor_create_2d(ctx, 7, 2, &x));
    CK(lgd_sampler_run(s, x, 13, 100, NULL, NULL));
    print_tensor("user_grid", x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_model_destroy(m);
}

int main(void)
{
    const char *err = NULL;
    if (lgd_context_create(NULL, &ctx, &err) != LGD_OK) {
        fprintf(stderr, "reference: no context: %s\n", err);
        return 1;
    }
    trajectory_path();
    trajectory_obstacle();
    mixture_linear();
    mixture_sum_exact();
    sdedit_and_term();
    user_grid();
    lgd_context_destroy(ctx);
    return 0;
}
