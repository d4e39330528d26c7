/*
 * test_cancel.c - the 'cancel' part of the 'unit' suite: lgd_context_cancel() stops
 * sampler runs between steps and guided calls between chunks of draws, from the
 * calling thread (inside a callback) and from another thread; a run stopped between
 * steps goes on after lgd_context_reset_cancel() to the same bytes as an uninterrupted
 * one; and n_samples is bounded (LGD_GUIDANCE_MAX_SAMPLES).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The paper's 1-D mixture 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), dim 1. */
static lgd_model *mixture(lgd_context *ctx)
{
    const float w[2] = { 0.5f, 0.5f }, mu[2] = { -1.0f, 1.0f }, var[2] = { 0.04f, 0.04f };
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 1, 2, w, mu, var, LGD_COVARIANCE_DIAGONAL, &m));
    return m;
}

static lgd_guidance *mc_guidance(lgd_context *ctx, lgd_model *m, lgd_loss *l, int32_t n,
                                 int32_t chunk)
{
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = LGD_GUIDANCE_MC;
    o.n_samples = n;
    o.chunk_size = chunk;
    o.seed = 11;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, l, &o, &g));
    return g;
}

static lgd_sampler *ddim(lgd_context *ctx, lgd_guidance *g, int32_t steps)
{
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = steps;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &so, &s));
    return s;
}

static void assert_aborted_message(lgd_context *ctx)
{
    ck_assert_msg(strstr(lgd_context_last_error(ctx), "cancelled") != NULL, "message: %s",
                  lgd_context_last_error(ctx));
}

/* A squared-error loss from callbacks that counts its calls and cancels the context on
 * call number cancel_at (lgd_context_cancel is allowed inside a callback). */
typedef struct counting_loss {
    lgd_context *ctx;
    int calls, cancel_at;
} counting_loss;

static int32_t counting_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                         float *loss, float *grad)
{
    counting_loss *c = user;
    if (++c->calls == c->cancel_at)
        lgd_context_cancel(c->ctx);
    for (int64_t r = 0; r < batch * n; r++) {
        double s = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            double d = x[r * dim + j] + 1.0;
            s += 0.5 * d * d;
            if (grad)
                grad[r * dim + j] = (float)d;
        }
        loss[r] = (float)s;
    }
    return 0;
}

static lgd_loss *counting(lgd_context *ctx, counting_loss *c)
{
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = 1;
    cb.eval = counting_eval;
    cb.user = c;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    return l;
}

START_TEST(cancel_between_steps_then_resume_is_bit_identical)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture(ctx);
    const float y = 0.0f;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 1, (const float[]){ 4.0f }, y, &l));
    lgd_guidance *g = mc_guidance(ctx, m, l, 32, 0);
    lgd_sampler *s = ddim(ctx, g, 10);
    lgd_tensor *ref = tu_tensor(ctx, 64, 1, NULL), *x = tu_tensor(ctx, 64, 1, NULL);
    TU_OK(ctx, lgd_sampler_run(s, ref, 5, 0, NULL, NULL));
    float *want = tu_download(ref);

    TU_OK(ctx, lgd_sampler_init(s, x, 5, 0));
    for (int i = 0; i < 4; i++)
        TU_OK(ctx, lgd_sampler_step(s, x, NULL));
    lgd_context_cancel(ctx);
    /* refused before the step: nothing changes, twice in a row */
    for (int i = 0; i < 2; i++) {
        TU_FAILS(ctx, LGD_ERR_ABORTED, lgd_sampler_step(s, x, NULL));
        assert_aborted_message(ctx);
        ck_assert_int_eq(lgd_sampler_step_index(s), 4);
    }
    /* a direct guided call is refused too */
    lgd_tensor *gt = tu_tensor(ctx, 64, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_ABORTED, lgd_guidance_term(g, x, 1.0f, 0, 0, gt, NULL, NULL));
    lgd_context_reset_cancel(ctx);
    while (!lgd_sampler_done(s))
        TU_OK(ctx, lgd_sampler_step(s, x, NULL));
    float *got = tu_download(x);
    ck_assert_mem_eq(got, want, 64 * sizeof(float));
    free(got);
    free(want);
    lgd_tensor_destroy(gt);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(ref);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(cancel_inside_a_guided_call_stops_at_the_next_chunk)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture(ctx);
    counting_loss c = { ctx, 0, 3 };
    lgd_loss *l = counting(ctx, &c);
    /* 1000 draws in chunks of 10: 100 loss calls per guided call if not stopped */
    lgd_guidance *g = mc_guidance(ctx, m, l, 1000, 10);
    lgd_tensor *x = tu_tensor(ctx, 4, 1, NULL), *gt = tu_tensor(ctx, 4, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_ABORTED, lgd_guidance_term(g, x, 2.0f, 0, 0, gt, NULL, NULL));
    assert_aborted_message(ctx);
    ck_assert_int_eq(c.calls, 3); /* the chunk after the third call never ran */
    /* the same inside a sampler run: the run fails (x may be half-updated) */
    lgd_context_reset_cancel(ctx);
    lgd_sampler *s = ddim(ctx, g, 5);
    c.calls = 0;
    c.cancel_at = 250; /* inside the third step */
    TU_FAILS(ctx, LGD_ERR_ABORTED, lgd_sampler_run(s, x, 1, 0, NULL, NULL));
    ck_assert_int_eq(c.calls, 250);
    ck_assert_int_eq(lgd_sampler_step_index(s), 2);
    lgd_context_reset_cancel(ctx);
    TU_FAILS(ctx, LGD_ERR_STATE, lgd_sampler_step(s, x, NULL));
    /* after a reset a new run completes and equals a fresh context's */
    c.cancel_at = -1;
    TU_OK(ctx, lgd_sampler_run(s, x, 1, 0, NULL, NULL));
    float *got = tu_download(x);
    lgd_context *fresh = tu_context(1);
    lgd_model *m2 = mixture(fresh);
    counting_loss c2 = { fresh, 0, -1 };
    lgd_loss *l2 = counting(fresh, &c2);
    lgd_guidance *g2 = mc_guidance(fresh, m2, l2, 1000, 10);
    lgd_sampler *s2 = ddim(fresh, g2, 5);
    lgd_tensor *x2 = tu_tensor(fresh, 4, 1, NULL);
    TU_OK(fresh, lgd_sampler_run(s2, x2, 1, 0, NULL, NULL));
    float *want = tu_download(x2);
    ck_assert_mem_eq(got, want, 4 * sizeof(float));
    free(got);
    free(want);
    lgd_tensor_destroy(x2);
    lgd_sampler_destroy(s2);
    lgd_guidance_destroy(g2);
    lgd_loss_destroy(l2);
    lgd_model_destroy(m2);
    lgd_context_destroy(fresh);
    lgd_sampler_destroy(s);
    lgd_tensor_destroy(gt);
    lgd_tensor_destroy(x);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* Another thread cancels a call that would otherwise run for a long time: 2^24 draws
 * per row of a 256-row batch at every step of 1000 steps (about 4e12 draws). The call
 * returns only because of the cancel; if cancellation did not reach inside the guided
 * call, this test would run into meson's timeout and fail. */
typedef struct canceller {
    lgd_context *ctx;
    atomic_int *loss_calls;
} canceller;

static int32_t slow_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                     float *loss, float *grad)
{
    atomic_int *calls = user;
    atomic_fetch_add(calls, 1);
    for (int64_t r = 0; r < batch * n * dim; r++) {
        loss[r] = 0.5f * x[r] * x[r];
        if (grad)
            grad[r] = x[r];
    }
    return 0;
}

static void *cancel_when_running(void *arg)
{
    canceller *c = arg;
    /* wait until the guided call is inside its chunk loop, then cancel */
    while (atomic_load(c->loss_calls) < 5)
        sched_yield();
    lgd_context_cancel(c->ctx);
    return NULL;
}

START_TEST(cancel_from_another_thread)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture(ctx);
    atomic_int calls;
    atomic_init(&calls, 0);
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = 1;
    cb.eval = slow_eval;
    cb.user = &calls;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    lgd_guidance *g = mc_guidance(ctx, m, l, LGD_GUIDANCE_MAX_SAMPLES, 64);
    lgd_sampler *s = ddim(ctx, g, 1000);
    lgd_tensor *x = tu_tensor(ctx, 256, 1, NULL);
    canceller c = { ctx, &calls };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cancel_when_running, &c), 0);
    TU_FAILS(ctx, LGD_ERR_ABORTED, lgd_sampler_run(s, x, 3, 0, NULL, NULL));
    pthread_join(th, NULL);
    assert_aborted_message(ctx);
    /* stopped inside the first step's guided call, a few chunks in */
    ck_assert_int_eq(lgd_sampler_step_index(s), 0);
    ck_assert_int_lt(atomic_load(&calls), 1000);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(n_samples_is_bounded_and_failed_creates_leave_null)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture(ctx);
    counting_loss c = { ctx, 0, -1 };
    lgd_loss *l = counting(ctx, &c);
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    lgd_guidance *g = NULL;
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    for (int k = 0; k < 2; k++) {
        o.kind = kinds[k];
        o.n_samples = LGD_GUIDANCE_MAX_SAMPLES + 1;
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, l, &o, &g));
        ck_assert_ptr_null(g);
        o.n_samples = INT32_MAX;
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, l, &o, &g));
        o.n_samples = LGD_GUIDANCE_MAX_SAMPLES;
        TU_OK(ctx, lgd_guidance_create(ctx, m, l, &o, &g));
        lgd_guidance_destroy(g);
        g = NULL;
    }
    lgd_context_cancel(NULL);
    lgd_context_reset_cancel(NULL);
    /* a failed create leaves *out NULL whatever fails, a NULL model or guidance included
     * (found by fuzz_api) */
    g = (lgd_guidance *)(uintptr_t)1;
    ck_assert_int_eq(lgd_guidance_create(ctx, NULL, l, NULL, &g), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(g);
    g = (lgd_guidance *)(uintptr_t)1;
    ck_assert_int_eq(lgd_guidance_mc(NULL, m, l, 4, &g), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(g);
    lgd_sampler *s = (lgd_sampler *)(uintptr_t)1;
    ck_assert_int_eq(lgd_sampler_create(NULL, NULL, &s), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(s);
    lgd_model *mm = (lgd_model *)(uintptr_t)1;
    ck_assert_int_eq(lgd_model_create_callbacks(ctx, NULL, &mm), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(mm);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cancel");
    TCase *tc = tcase_create("cancel");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, cancel_between_steps_then_resume_is_bit_identical);
    tcase_add_test(tc, cancel_inside_a_guided_call_stops_at_the_next_chunk);
    tcase_add_test(tc, cancel_from_another_thread);
    tcase_add_test(tc, n_samples_is_bounded_and_failed_creates_leave_null);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
