/*
 * test_abi_layouts.c - a program written against liblgd's oldest published option
 * structs (tests/abi/layouts_0_1_0.h, frozen copies of 0.1.0's) runs against today's
 * library (issue 11):
 *  - every create function accepts each old struct and reads only its bytes (fields
 *    appended since take their defaults; guard bytes after the struct are poisoned);
 *  - every *_init function, given the old size, writes the old struct's bytes and not
 *    one byte more;
 *  - today's sizes are the old ones or larger, never smaller (fields only appended).
 * Plain C with its own checks (no Check), so it reads as a user's program would.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi/layouts_0_1_0.h"

static int failures;
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

#define GUARD 64
/* An old struct followed by poisoned guard bytes, as laid out in a caller's memory. */
#define OLD_BOX(T) struct { T s; unsigned char guard[GUARD]; }

static int guard_intact(const unsigned char *g)
{
    for (int i = 0; i < GUARD; i++)
        if (g[i] != 0xC3)
            return 0;
    return 1;
}

/* init with the old size: the defaults over the old bytes, nothing past them. */
#define CHECK_INIT(OLD, NEW, fn)                                                           \
    do {                                                                                   \
        OLD_BOX(OLD) box;                                                                  \
        memset(&box, 0xC3, sizeof box);                                                    \
        CHECK(fn((NEW *)(void *)&box.s, (uint32_t)sizeof(OLD)) == LGD_OK);                 \
        CHECK(box.s.struct_size == sizeof(OLD));                                           \
        CHECK(guard_intact(box.guard));                                                    \
        CHECK(sizeof(NEW) >= sizeof(OLD));                                                 \
    } while (0)

static int check_init_functions(void)
{
    CHECK_INIT(lgd_v010_guidance_options, lgd_guidance_options, lgd_guidance_options_init);
    CHECK_INIT(lgd_v010_sampler_options, lgd_sampler_options, lgd_sampler_options_init);
    CHECK_INIT(lgd_v010_loss_callbacks, lgd_loss_callbacks, lgd_loss_callbacks_init);
    CHECK_INIT(lgd_v010_model_callbacks, lgd_model_callbacks, lgd_model_callbacks_init);
    CHECK_INIT(lgd_v010_network_callbacks, lgd_network_callbacks, lgd_network_callbacks_init);
    CHECK_INIT(lgd_v010_adapter_options, lgd_adapter_options, lgd_adapter_options_init);
    CHECK_INIT(lgd_v010_trajectory_layout, lgd_trajectory_layout, lgd_trajectory_layout_init);
    CHECK_INIT(lgd_v010_obstacle_options, lgd_obstacle_options, lgd_obstacle_options_init);
    CHECK_INIT(lgd_v010_trajectory_prior_options, lgd_trajectory_prior_options,
               lgd_trajectory_prior_options_init);
    CHECK_INIT(lgd_v010_context_options, lgd_context_options, lgd_context_options_init);
    CHECK_INIT(lgd_v010_guidance_report, lgd_guidance_report, lgd_guidance_report_init);
    /* the old values are today's defaults */
    lgd_v010_sampler_options so;
    lgd_sampler_options_init((lgd_sampler_options *)(void *)&so, sizeof so);
    CHECK(so.steps == 20 && so.sigma_max == 80.0f && so.rho == 7.0f);
    return 0;
}

static int loss_half(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                     float *loss, float *grad)
{
    (void)user;
    for (int64_t i = 0; i < batch * n; i++) {
        loss[i] = 0.5f * x[i * dim] * x[i * dim];
        if (grad)
            for (int64_t j = 0; j < dim; j++)
                grad[i * dim + j] = j == 0 ? x[i * dim] : 0.0f;
    }
    return 0;
}

/* A 0.1.0 program: every object from old structs, one guided run. */
static int run_old_program(void)
{
    OLD_BOX(lgd_v010_context_options) co;
    memset(&co, 0xC3, sizeof co);
    lgd_context_options_init((lgd_context_options *)(void *)&co.s, sizeof co.s);
    co.s.num_threads = 1;
    lgd_context *ctx = NULL;
    const char *err = NULL;
    CHECK(lgd_context_create((const lgd_context_options *)(const void *)&co.s, &ctx, &err) ==
          LGD_OK);
    if (!ctx) {
        fprintf(stderr, "context: %s\n", err ? err : "?");
        return 1;
    }
    const float w[2] = { 0.5f, 0.5f }, mu[4] = { -1.0f, 0.0f, 1.0f, 0.0f };
    const float var[2] = { 0.04f, 0.04f };
    lgd_model *model = NULL;
    CHECK(lgd_model_create_gmm(ctx, 2, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC, &model) ==
          LGD_OK);

    OLD_BOX(lgd_v010_loss_callbacks) lc;
    memset(&lc, 0xC3, sizeof lc);
    lgd_loss_callbacks_init((lgd_loss_callbacks *)(void *)&lc.s, sizeof lc.s);
    lc.s.dim = 2;
    lc.s.eval = loss_half;
    lgd_loss *loss = NULL;
    CHECK(lgd_loss_create_callbacks(ctx, (const lgd_loss_callbacks *)(const void *)&lc.s,
                                    &loss) == LGD_OK);

    OLD_BOX(lgd_v010_guidance_options) go;
    memset(&go, 0xC3, sizeof go);
    lgd_guidance_options_init((lgd_guidance_options *)(void *)&go.s, sizeof go.s);
    go.s.n_samples = 8;
    lgd_guidance *g = NULL;
    CHECK(lgd_guidance_create(ctx, model, loss, (const lgd_guidance_options *)(const void *)&go.s,
                              &g) == LGD_OK);

    OLD_BOX(lgd_v010_sampler_options) so;
    memset(&so, 0xC3, sizeof so);
    lgd_sampler_options_init((lgd_sampler_options *)(void *)&so.s, sizeof so.s);
    so.s.steps = 10;
    lgd_sampler *s = NULL;
    CHECK(lgd_sampler_create(g, (const lgd_sampler_options *)(const void *)&so.s, &s) == LGD_OK);

    lgd_tensor *x = NULL;
    CHECK(lgd_tensor_create_2d(ctx, 4, 2, &x) == LGD_OK);
    if (s && x)
        CHECK(lgd_sampler_run(s, x, 5, 0, NULL, NULL) == LGD_OK);

    /* the old report: the library writes its old fields, nothing past them */
    OLD_BOX(lgd_v010_guidance_report) rep;
    memset(&rep, 0xC3, sizeof rep);
    rep.s.struct_size = sizeof rep.s;
    if (g && x) {
        CHECK(lgd_guidance_denoise(g, x, 1.0f, 0, 0, x,
                                   (lgd_guidance_report *)(void *)&rep.s) == LGD_OK);
        CHECK(rep.s.active == 1 && rep.s.sigma == 1.0f);
        CHECK(guard_intact(rep.guard));
    }

    /* trajectory structs */
    OLD_BOX(lgd_v010_trajectory_layout) lo;
    memset(&lo, 0xC3, sizeof lo);
    lgd_trajectory_layout_init((lgd_trajectory_layout *)(void *)&lo.s, sizeof lo.s);
    lo.s.frames = 4;
    const float path[8] = { 0 };
    lgd_loss *pl = NULL;
    CHECK(lgd_loss_create_path(ctx, 8, (const lgd_trajectory_layout *)(const void *)&lo.s, path,
                               1, &pl) == LGD_OK);
    OLD_BOX(lgd_v010_trajectory_prior_options) po;
    memset(&po, 0xC3, sizeof po);
    lgd_trajectory_prior_options_init((lgd_trajectory_prior_options *)(void *)&po.s,
                                      sizeof po.s);
    po.s.frames = 4;
    po.s.headings = 2;
    po.s.turns = 1;
    lgd_model *prior = NULL;
    CHECK(lgd_model_create_trajectory_prior(
              ctx, (const lgd_trajectory_prior_options *)(const void *)&po.s, &prior) == LGD_OK);

    lgd_model_destroy(prior);
    lgd_loss_destroy(pl);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    return 0;
}

int main(void)
{
    check_init_functions();
    run_old_program();
    if (failures) {
        printf("abi layouts: %d checks failed\n", failures);
        return 1;
    }
    printf("abi layouts: a 0.1.0 program runs against liblgd %s\n", lgd_version_string());
    return 0;
}
