// test_cxx_api.cpp - the public headers from C++ (issue 11): every *_INIT macro in
// both initialisation forms, compiled with -Wold-style-cast -Werror (meson adds the
// flags), and a small run through the API so the program also links and works.
#include <lgd/lgd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <type_traits>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                    \
        }                                                                                \
    } while (0)

// Both forms, for every struct: `T x = LGD_T_INIT;` and `T x{LGD_T_INIT};`.
#define BOTH_FORMS(T, INIT)                                                              \
    do {                                                                                 \
        T a = INIT;                                                                      \
        T b{INIT};                                                                       \
        CHECK(a.struct_size == sizeof(T) && b.struct_size == sizeof(T));                 \
        static_assert(std::is_standard_layout<T>::value, #T " is a C struct");            \
    } while (0)

static int init_forms()
{
    BOTH_FORMS(lgd_context_options, LGD_CONTEXT_OPTIONS_INIT);
    BOTH_FORMS(lgd_guidance_options, LGD_GUIDANCE_OPTIONS_INIT);
    BOTH_FORMS(lgd_guidance_report, LGD_GUIDANCE_REPORT_INIT);
    BOTH_FORMS(lgd_sampler_options, LGD_SAMPLER_OPTIONS_INIT);
    BOTH_FORMS(lgd_loss_callbacks, LGD_LOSS_CALLBACKS_INIT);
    BOTH_FORMS(lgd_model_callbacks, LGD_MODEL_CALLBACKS_INIT);
    BOTH_FORMS(lgd_network_callbacks, LGD_NETWORK_CALLBACKS_INIT);
    BOTH_FORMS(lgd_adapter_options, LGD_ADAPTER_OPTIONS_INIT);
    BOTH_FORMS(lgd_trajectory_layout, LGD_TRAJECTORY_LAYOUT_INIT);
    BOTH_FORMS(lgd_obstacle_options, LGD_OBSTACLE_OPTIONS_INIT);
    BOTH_FORMS(lgd_trajectory_prior_options, LGD_TRAJECTORY_PRIOR_OPTIONS_INIT);
    BOTH_FORMS(lgd_operator_options, LGD_OPERATOR_OPTIONS_INIT);
    BOTH_FORMS(lgd_network_loss_options, LGD_NETWORK_LOSS_OPTIONS_INIT);
    // the macro and the init function agree
    lgd_sampler_options m = LGD_SAMPLER_OPTIONS_INIT, f;
    CHECK(lgd_sampler_options_init(&f, sizeof f) == LGD_OK);
    CHECK(m.steps == f.steps && m.sigma_max == f.sigma_max && std::isinf(f.s_tmax));
    return 0;
}

int main()
{
    if (init_forms() != 0)
        return 1;
    lgd_context *ctx = nullptr;
    const char *err = nullptr;
    lgd_context_options co{LGD_CONTEXT_OPTIONS_INIT};
    CHECK(lgd_context_create(&co, &ctx, &err) == LGD_OK);
    const float w[2] = { 0.5f, 0.5f }, mu[2] = { -1.0f, 1.0f }, var[2] = { 0.04f, 0.04f };
    lgd_model *model = nullptr;
    CHECK(lgd_model_create_gmm(ctx, 1, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC, &model) ==
          LGD_OK);
    const float a = -50.0f;
    lgd_loss *loss = nullptr;
    CHECK(lgd_loss_create_logistic(ctx, 1, &a, 0.0f, &loss) == LGD_OK);
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.n_samples = 32;
    lgd_guidance *g = nullptr;
    CHECK(lgd_guidance_create(ctx, model, loss, &go, &g) == LGD_OK);
    lgd_sampler_options so{LGD_SAMPLER_OPTIONS_INIT};
    lgd_sampler *s = nullptr;
    CHECK(lgd_sampler_create(g, &so, &s) == LGD_OK);
    lgd_tensor *x = nullptr;
    CHECK(lgd_tensor_create_2d(ctx, 256, 1, &x) == LGD_OK);
    CHECK(lgd_sampler_run(s, x, 1, 0, nullptr, nullptr) == LGD_OK);
    float host[256];
    CHECK(lgd_tensor_download(x, host, 256) == LGD_OK);
    double mean = 0.0;
    for (float v : host)
        mean += v;
    mean /= 256.0;
    CHECK(mean < -0.8 && mean > -1.2); // guided to the component at -1
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    std::printf("C++ API: ok (mean %.3f)\n", mean);
    return 0;
}
