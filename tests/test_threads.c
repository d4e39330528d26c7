/*
 * test_threads.c - the thread contract of <lgd/lgd.h> under load, small enough for
 * ThreadSanitizer (tests/check_tsan.sh builds it with -fsanitize=thread; the normal
 * build runs it as the 'threads' test).
 *
 *  - rule 3: several threads drop references (tensors created and wrapped, a used
 *    model / loss / guidance / sampler, a network, the context itself) and take and
 *    drop references to the objects the owner is using, while the owner samples,
 *    allocates and frees on the same context;
 *  - rule 1: INDEPENDENT other threads each use a context of their own at the same
 *    time (sampling and a network's forward pass), and get bit-identical results to the
 *    same work done one at a time on the owner's context before the threads started;
 *  - rule 2: every thread calls lgd_version*, lgd_status_string and the *_init functions.
 * The owner's samples must equal a run made before the threads started, the wrapped
 * tensors' release callbacks must each run once, and the context's memory accounting
 * must return to zero. Exit status 0 on success, 1 on a failure (with a message).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lgd/lgd.h"

#ifndef LGD_FIXTURE_DIR
#error "LGD_FIXTURE_DIR must name tests/fixtures/nn"
#endif

#define DIM 3
#define BATCH 6
#define RELEASERS 3
#define TENSORS 48  /* per releaser */
#define ROUNDS 6    /* owner's sampling rounds */
#define INDEPENDENT 4 /* threads with a context each */

static atomic_int failures;

#define FAIL(...)                                                                          \
    do {                                                                                   \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fputc('\n', stderr);                                                               \
        atomic_fetch_add(&failures, 1);                                                    \
    } while (0)

#define OK(ctx, call)                                                                      \
    do {                                                                                   \
        lgd_status st_ = (call);                                                           \
        if (st_ != LGD_OK)                                                                 \
            FAIL("%s -> %s: %s", #call, lgd_status_string(st_), lgd_context_last_error(ctx)); \
    } while (0)

static lgd_context *new_context(void)
{
    lgd_context_options o;
    lgd_context_options_init(&o, sizeof o);
    o.backend = LGD_BACKEND_CPU;
    o.num_threads = 1;
    lgd_context *ctx = NULL;
    const char *err = NULL;
    if (lgd_context_create(&o, &ctx, &err) != LGD_OK) {
        fprintf(stderr, "FAIL: lgd_context_create: %s\n", err);
        exit(1);
    }
    return ctx;
}

typedef struct problem {
    lgd_model *m;
    lgd_loss *l;
    lgd_guidance *g;
    lgd_sampler *s;
} problem;

static problem problem_make(lgd_context *ctx)
{
    static const float w[2] = { 0.4f, 0.6f };
    static const float mu[2 * DIM] = { -1.0f, 0.5f, 0.0f, 1.0f, -0.5f, 0.25f };
    static const float var[2] = { 0.3f, 0.5f };
    static const float target[DIM] = { 0.5f, 0.5f, -0.5f };
    problem p = { NULL, NULL, NULL, NULL };
    OK(ctx, lgd_model_create_gmm(ctx, DIM, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC, &p.m));
    OK(ctx, lgd_loss_create_squared_error(ctx, DIM, target, 1, NULL, &p.l));
    OK(ctx, lgd_guidance_mc(ctx, p.m, p.l, 8, &p.g));
    lgd_sampler_options so;
    lgd_sampler_options_init(&so, sizeof so);
    so.kind = LGD_SAMPLER_DDIM;
    so.eta = 1.0f;
    so.steps = 5;
    OK(ctx, lgd_sampler_create(p.g, &so, &p.s));
    return p;
}

static void problem_free(problem *p)
{
    lgd_sampler_destroy(p->s);
    lgd_guidance_destroy(p->g);
    lgd_loss_destroy(p->l);
    lgd_model_destroy(p->m);
}

/* Samples into a new host array (caller frees). */
static float *sample(lgd_context *ctx, lgd_sampler *s, lgd_tensor *x, uint64_t seed)
{
    float *h = calloc((size_t)BATCH * DIM, sizeof *h);
    if (!h) {
        FAIL("out of memory");
        exit(1);
    }
    OK(ctx, lgd_sampler_run(s, x, seed, 0, NULL, NULL));
    OK(ctx, lgd_tensor_download(x, h, (int64_t)BATCH * DIM));
    return h;
}

/* The calls of rule 2, from any thread. */
static void anywhere_calls(void)
{
    if (lgd_version() != LGD_VERSION_NUMBER || !lgd_version_string()[0] ||
        strcmp(lgd_status_string(LGD_OK), "ok") != 0)
        FAIL("version or status string");
    lgd_guidance_options go;
    lgd_sampler_options so;
    if (lgd_guidance_options_init(&go, sizeof go) != LGD_OK ||
        lgd_sampler_options_init(&so, sizeof so) != LGD_OK)
        FAIL("*_init");
}

typedef struct releaser {
    lgd_tensor *tensors[TENSORS];
    float wrapped_mem[TENSORS][4];
    atomic_int released;    /* release callbacks run for this releaser's wrapped tensors */
    problem used;           /* used once by the owner, then released here */
    problem owners;         /* extra references to the owner's live objects */
    lgd_network *net;
    lgd_context *ctx_refs[4];
    atomic_int *go;
} releaser;

static void on_release(void *user) { atomic_fetch_add((atomic_int *)user, 1); }

static void *releaser_main(void *arg)
{
    releaser *r = arg;
    while (!atomic_load(r->go))
        sched_yield();
    anywhere_calls();
    for (int i = 0; i < TENSORS; i++) {
        lgd_tensor_destroy(r->tensors[i]);
        /* take and drop references to what the owner is using */
        lgd_sampler_destroy(lgd_sampler_retain(r->owners.s));
        lgd_model_destroy(lgd_model_retain(r->owners.m));
        if (i == TENSORS / 2) {
            problem_free(&r->used);
            lgd_network_destroy(r->net);
        }
        if (i % 4 == 0)
            sched_yield();
    }
    problem_free(&r->owners);
    for (int i = 0; i < 4; i++)
        lgd_context_destroy(r->ctx_refs[i]);
    return NULL;
}

/* The MLP fixture's output for a fixed input, on ctx (a new host array of `*n` floats). */
static float *network_output(lgd_context *ctx, int64_t *n)
{
    lgd_network *net = NULL;
    OK(ctx, lgd_network_load(ctx, LGD_FIXTURE_DIR "/mlp.safetensors", &net));
    if (!net)
        exit(1);
    int64_t dim = lgd_network_dim(net), out_dim = lgd_network_out_dim(net);
    float *in = calloc((size_t)(4 * dim), sizeof *in);
    float *out = calloc((size_t)(4 * out_dim), sizeof *out);
    if (!in || !out)
        exit(1);
    for (int64_t i = 0; i < 4 * dim; i++)
        in[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    lgd_tensor *x = NULL, *y = NULL;
    OK(ctx, lgd_tensor_create_2d(ctx, 4, dim, &x));
    OK(ctx, lgd_tensor_create_2d(ctx, 4, out_dim, &y));
    OK(ctx, lgd_tensor_upload(x, in, 4 * dim));
    OK(ctx, lgd_network_forward(net, x, 0.25f, NULL, y));
    OK(ctx, lgd_tensor_download(y, out, 4 * out_dim));
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(y);
    lgd_network_destroy(net);
    free(in);
    *n = 4 * out_dim;
    return out;
}

/* Rule 1: a context of its own, used at the same time as the owner's; its results must
 * equal the same work done before, one at a time, on the owner's context. */
typedef struct independent {
    atomic_int *go;
    uint64_t seed;
    const float *want;     /* [BATCH][DIM] */
    const float *want_net; /* net_n floats */
    int64_t net_n;
} independent;

static void *independent_main(void *arg)
{
    independent *in = arg;
    while (!atomic_load(in->go))
        sched_yield();
    anywhere_calls();
    lgd_context *ctx = new_context();
    problem p = problem_make(ctx);
    lgd_tensor *x = NULL;
    OK(ctx, lgd_tensor_create_2d(ctx, BATCH, DIM, &x));
    float *a = sample(ctx, p.s, x, in->seed), *b = sample(ctx, p.s, x, in->seed);
    if (memcmp(a, b, (size_t)BATCH * DIM * sizeof(float)) != 0)
        FAIL("an independent context's runs differ");
    if (memcmp(a, in->want, (size_t)BATCH * DIM * sizeof(float)) != 0)
        FAIL("seed %llu: a context on its own thread samples differently from the owner's "
             "context alone", (unsigned long long)in->seed);
    int64_t n = 0;
    float *net = network_output(ctx, &n);
    if (n != in->net_n || memcmp(net, in->want_net, (size_t)n * sizeof(float)) != 0)
        FAIL("a network's output on a context of its own thread differs");
    free(net);
    free(a);
    free(b);
    lgd_tensor_destroy(x);
    problem_free(&p);
    lgd_context_destroy(ctx);
    return NULL;
}

int main(void)
{
    lgd_context *ctx = new_context();
    problem own = problem_make(ctx);
    lgd_tensor *x = NULL;
    OK(ctx, lgd_tensor_create_2d(ctx, BATCH, DIM, &x));
    float *want[ROUNDS];
    for (int k = 0; k < ROUNDS; k++)
        want[k] = sample(ctx, own.s, x, 100 + (uint64_t)k);
    /* the independent threads' work, one at a time, on this context */
    float *want_indep[INDEPENDENT];
    for (int k = 0; k < INDEPENDENT; k++)
        want_indep[k] = sample(ctx, own.s, x, 200 + (uint64_t)k);
    int64_t net_n = 0;
    float *want_net = network_output(ctx, &net_n);

    atomic_int go;
    atomic_init(&go, 0);
    releaser *rel = calloc(RELEASERS, sizeof *rel);
    if (!rel)
        return 1;
    for (int t = 0; t < RELEASERS; t++) {
        releaser *r = &rel[t];
        atomic_init(&r->released, 0);
        r->go = &go;
        int64_t shape[1] = { 4 };
        for (int i = 0; i < TENSORS; i++) {
            if (i % 2)
                OK(ctx, lgd_tensor_wrap(ctx, LGD_MEMORY_HOST, 1, shape, r->wrapped_mem[i],
                                        on_release, &r->released, &r->tensors[i]));
            else
                OK(ctx, lgd_tensor_create_2d(ctx, 8, 8 + i, &r->tensors[i]));
        }
        r->used = problem_make(ctx);
        lgd_tensor *y = NULL;
        OK(ctx, lgd_tensor_create_2d(ctx, BATCH, DIM, &y));
        free(sample(ctx, r->used.s, y, 1)); /* the guidance's scratch is allocated */
        lgd_tensor_destroy(y);
        r->owners.m = lgd_model_retain(own.m);
        r->owners.l = lgd_loss_retain(own.l);
        r->owners.g = lgd_guidance_retain(own.g);
        r->owners.s = lgd_sampler_retain(own.s);
        OK(ctx, lgd_network_load(ctx, LGD_FIXTURE_DIR "/mlp.safetensors", &r->net));
        for (int i = 0; i < 4; i++)
            r->ctx_refs[i] = lgd_context_retain(ctx);
    }

    pthread_t th[RELEASERS + INDEPENDENT];
    independent ind[INDEPENDENT];
    for (int t = 0; t < RELEASERS; t++)
        if (pthread_create(&th[t], NULL, releaser_main, &rel[t]) != 0)
            return 1;
    for (int k = 0; k < INDEPENDENT; k++) {
        ind[k] = (independent){ &go, 200 + (uint64_t)k, want_indep[k], want_net, net_n };
        if (pthread_create(&th[RELEASERS + k], NULL, independent_main, &ind[k]) != 0)
            return 1;
    }
    atomic_store(&go, 1);
    for (int k = 0; k < ROUNDS; k++) { /* the owner keeps working on the same context */
        lgd_tensor *tmp = NULL;
        OK(ctx, lgd_tensor_create_2d(ctx, 16, 16 + k, &tmp));
        float *got = sample(ctx, own.s, x, 100 + (uint64_t)k);
        if (memcmp(got, want[k], (size_t)BATCH * DIM * sizeof(float)) != 0)
            FAIL("round %d: the samples differ from the run without the other threads", k);
        free(got);
        lgd_tensor_destroy(tmp);
        size_t cur = 0, peak = 0;
        lgd_context_memory_usage(ctx, &cur, &peak);
        if (cur > peak)
            FAIL("memory in use %zu above the peak %zu", cur, peak);
    }
    for (int t = 0; t < RELEASERS + INDEPENDENT; t++)
        pthread_join(th[t], NULL);

    for (int t = 0; t < RELEASERS; t++)
        if (atomic_load(&rel[t].released) != TENSORS / 2)
            FAIL("releaser %d: %d release callbacks, expected %d", t,
                 atomic_load(&rel[t].released), TENSORS / 2);
    lgd_tensor_destroy(x);
    problem_free(&own);
    size_t cur = 1;
    lgd_context_memory_usage(ctx, &cur, NULL);
    if (cur != 0)
        FAIL("%zu bytes still accounted after every object was released", cur);
    lgd_context_destroy(ctx);
    for (int k = 0; k < ROUNDS; k++)
        free(want[k]);
    for (int k = 0; k < INDEPENDENT; k++)
        free(want_indep[k]);
    free(want_net);
    free(rel);
    int n = atomic_load(&failures);
    if (n)
        fprintf(stderr, "%d failure(s)\n", n);
    else
        printf("ok: %d threads released handles while the owner sampled; %d independent "
               "contexts ran beside them with the same results as one at a time\n", RELEASERS,
               INDEPENDENT);
    return n ? 1 : 0;
}
