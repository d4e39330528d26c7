/*
 * test_contention.c - the CPU backend's contention guard (src/backend/cpu/
 * cpu_contention.h): off with LGD_CPU_ADAPTIVE=0; on a machine made busier than its
 * CPUs by this test's own spinning threads it reports contention; and sampling with 2
 * threads gives the same bits with and without the guard while those threads spin
 * (the loops it makes serial compute every element on one thread in a fixed order).
 * And the backend's worker pool (cpu_pool.h) runs every unit exactly once per run,
 * run after run, also while its workers wake late on an oversubscribed machine (a
 * worker that wakes after the run is closed must skip it, not run or wait for it).
 * The timing cases are left out with LGD_TEST_QUICK (the valgrind pass runs one thread
 * at a time, so no thread waits on a run queue there).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_contention.h"
#include "backend/cpu/cpu_pool.h"
#include "lgd/lgd.h"
#include "testutil.h"

/* ------------------------------------------------------------ busy threads */

typedef struct spinners {
    int count;
    pthread_t *threads;
    atomic_int stop;
} spinners;

static void *spin(void *arg)
{
    spinners *s = arg;
    volatile unsigned long x = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed))
        x++;
    return NULL;
}

/* Starts 3 spinning threads per online CPU (at least 6): every thread of the process,
 * the test's included, then waits for a CPU most of the time. */
static void spinners_start(spinners *s)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->count = (int)(cpus > 2 ? 3 * cpus : 6);
    s->threads = calloc((size_t)s->count, sizeof *s->threads);
    ck_assert(s->threads != NULL);
    atomic_init(&s->stop, 0);
    for (int i = 0; i < s->count; i++)
        ck_assert_int_eq(pthread_create(&s->threads[i], NULL, spin, s), 0);
}

static void spinners_stop(spinners *s)
{
    atomic_store(&s->stop, 1);
    for (int i = 0; i < s->count; i++)
        pthread_join(s->threads[i], NULL);
    free(s->threads);
}

static void busy_work_ms(int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile double x = 0.0;
    do {
        for (int i = 0; i < 10000; i++)
            x += i;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000.0 + (t.tv_nsec - t0.tv_nsec) / 1e6 < ms);
}

static lgd_backend *open_cpu(int threads, const lgd_backend_ops **ops)
{
    lgd_backend *be = NULL;
    ck_assert_int_eq(lgd_cpu_backend_open(threads, &be, ops), 0);
    return be;
}

/* ------------------------------------------------------------ the guard */

START_TEST(off_by_environment_and_one_thread)
{
    const lgd_backend_ops *ops;
    setenv("LGD_CPU_ADAPTIVE", "0", 1);
    lgd_backend *be = open_cpu(2, &ops);
    unsetenv("LGD_CPU_ADAPTIVE");
    ck_assert_int_eq(be->contention.enabled, 0);
    ck_assert_int_eq(lgd_cpu_contended(be), 0);
    ops->destroy(be);
    be = open_cpu(1, &ops); /* one thread: nothing to guard */
    ck_assert_int_eq(be->contention.enabled, 0);
    ck_assert_int_eq(lgd_cpu_contended(be), 0);
    ops->destroy(be);
}
END_TEST

START_TEST(reports_a_busy_machine)
{
    if (getenv("LGD_TEST_QUICK"))
        return;
    const lgd_backend_ops *ops;
    unsetenv("LGD_CPU_ADAPTIVE");
    lgd_backend *be = open_cpu(2, &ops);
    if (!be->contention.enabled) { /* no /proc/thread-self/schedstat here */
        ops->destroy(be);
        return;
    }
    (void)lgd_cpu_contended(be); /* the first measurement: the base */
    spinners s;
    spinners_start(&s);
    int seen = 0;
    for (int i = 0; i < 100 && !seen; i++) { /* up to 100 periods of 20 ms */
        busy_work_ms(20);
        seen = lgd_cpu_contended(be);
    }
    spinners_stop(&s);
    ck_assert_msg(seen, "3 spinning threads per CPU and the guard saw no contention");
    ops->destroy(be);
}
END_TEST

/* ------------------------------------------------------------ same bits */

#define D 64
#define K 4
#define B 2304 /* B x D = 147456 values: above LGD_CPU_PAR_MIN_WORK, the loops split */

static void run_sampling(float *out)
{
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = LGD_BACKEND_CPU;
    co.num_threads = 2;
    lgd_context *ctx = NULL;
    ck_assert_int_eq(lgd_context_create(&co, &ctx, NULL), LGD_OK);
    float w[K], mu[K * D], var[K * D], target[D];
    tu_rng r = { 77 };
    tu_fill_normal(&r, mu, K * D, 2.0f);
    tu_fill_normal(&r, target, D, 1.0f);
    for (int k = 0; k < K; k++)
        w[k] = 1.0f + 0.5f * (float)k;
    for (int i = 0; i < K * D; i++)
        var[i] = 0.1f + 0.002f * (float)(i % 97);
    lgd_model *model = NULL;
    lgd_loss *loss = NULL;
    lgd_guidance *g = NULL;
    lgd_sampler *smp = NULL;
    lgd_tensor *x = NULL;
    ck_assert_int_eq(lgd_model_create_gmm(ctx, D, K, w, mu, var, LGD_COVARIANCE_DIAGONAL, &model),
                     LGD_OK);
    ck_assert_int_eq(lgd_loss_create_squared_error(ctx, D, target, 1, NULL, &loss), LGD_OK);
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_MC;
    go.n_samples = 8;
    ck_assert_int_eq(lgd_guidance_create(ctx, model, loss, &go, &g), LGD_OK);
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_EULER;
    so.steps = 4;
    ck_assert_int_eq(lgd_sampler_create(g, &so, &smp), LGD_OK);
    ck_assert_int_eq(lgd_tensor_create_2d(ctx, B, D, &x), LGD_OK);
    ck_assert_int_eq(lgd_sampler_init(smp, x, 5, 0), LGD_OK);
    for (int i = 0; i < so.steps; i++)
        ck_assert_int_eq(lgd_sampler_step(smp, x, NULL), LGD_OK);
    ck_assert_int_eq(lgd_tensor_download(x, out, (int64_t)B * D), LGD_OK);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(smp);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}

START_TEST(same_bits_with_and_without_the_guard)
{
    float *off = malloc(sizeof(float) * B * D), *on = malloc(sizeof(float) * B * D);
    ck_assert(off && on);
    spinners s;
    int timing = !getenv("LGD_TEST_QUICK");
    if (timing)
        spinners_start(&s); /* so that the guard has something to see */
    setenv("LGD_CPU_ADAPTIVE", "0", 1);
    run_sampling(off);
    unsetenv("LGD_CPU_ADAPTIVE");
    run_sampling(on);
    if (timing)
        spinners_stop(&s);
    ck_assert_msg(memcmp(off, on, sizeof(float) * B * D) == 0,
                  "the samples differ with the contention guard on");
    free(off);
    free(on);
}
END_TEST

/* ------------------------------------------------------------ the pool */

#define POOL_UNITS 97
typedef struct pool_run {
    atomic_int hits[POOL_UNITS];
    int round;
    int *values; /* on the caller's stack frame of the run: must not be touched later */
} pool_run;

static void pool_unit(void *vp, size_t u)
{
    pool_run *r = vp;
    atomic_fetch_add_explicit(&r->hits[u], 1, memory_order_relaxed);
    r->values[u] = r->round * 1000 + (int)u;
}

static void pool_rounds(lgd_cpu_pool *pool, int rounds)
{
    for (int k = 0; k < rounds; k++) {
        int values[POOL_UNITS];
        pool_run r;
        for (int u = 0; u < POOL_UNITS; u++)
            atomic_init(&r.hits[u], 0);
        r.round = k;
        r.values = values;
        size_t units = (size_t)(k % 7 == 0 ? 1 : POOL_UNITS - k % 5);
        lgd_cpu_pool_run(pool, units, pool_unit, &r);
        for (size_t u = 0; u < POOL_UNITS; u++) {
            int want = u < units ? 1 : 0;
            ck_assert_msg(atomic_load(&r.hits[u]) == want, "round %d unit %zu ran %d times", k,
                          u, atomic_load(&r.hits[u]));
            if (want)
                ck_assert_int_eq(values[u], k * 1000 + (int)u);
        }
    }
}

START_TEST(pool_runs_every_unit_once)
{
    ck_assert_ptr_null(lgd_cpu_pool_create(1)); /* one thread: no pool */
    lgd_cpu_pool_run(NULL, 0, pool_unit, NULL);  /* no units: nothing is called */
    lgd_cpu_pool *pool = lgd_cpu_pool_create(4);
    ck_assert_ptr_nonnull(pool);
    pool_rounds(pool, getenv("LGD_TEST_QUICK") ? 50 : 2000);
    if (!getenv("LGD_TEST_QUICK")) { /* workers that wake late, runs that end first */
        spinners s;
        spinners_start(&s);
        pool_rounds(pool, 2000);
        spinners_stop(&s);
    }
    lgd_cpu_pool_destroy(pool);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("contention");
    TCase *tc = tcase_create("guard");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, off_by_environment_and_one_thread);
    tcase_add_test(tc, reports_a_busy_machine);
    tcase_add_test(tc, same_bits_with_and_without_the_guard);
    tcase_add_test(tc, pool_runs_every_unit_once);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
