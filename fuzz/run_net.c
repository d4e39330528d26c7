/*
 * run_net.c - load a network file's bytes and run it (run_net.h), checking the
 * contract of include/lgd/network.h on the way.
 */
#define _GNU_SOURCE /* memfd_create */
#include "run_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fz_common.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* a sentinel that a failing create call must replace by NULL */
#define SENTINEL ((void *)(uintptr_t)0x1)

static lgd_context *make_context(void)
{
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    o.backend = LGD_BACKEND_CPU;
    o.num_threads = 1;
    lgd_context *ctx = NULL;
    const char *err = NULL;
    lgd_status st = lgd_context_create(&o, &ctx, &err);
    FZ_CHECK(st == LGD_OK && ctx, "lgd_context_create: %d %s", (int)st, err ? err : "");
    return ctx;
}

static lgd_tensor *tensor(lgd_context *ctx, int64_t rows, int64_t cols, float base)
{
    lgd_tensor *t = NULL;
    lgd_status st = lgd_tensor_create_2d(ctx, rows, cols, &t);
    FZ_CHECK(st == LGD_OK, "lgd_tensor_create_2d(%lld, %lld): %s", (long long)rows,
             (long long)cols, lgd_context_last_error(ctx));
    float *p = lgd_tensor_data(t);
    for (int64_t i = 0; i < rows * cols; i++)
        p[i] = base * sinf(0.37f * (float)i + base);
    return t;
}

/* Known deviation (fuzz/README.md): a `layer` file whose resblock has an even
 * lgd.kernel_size, or whose time_embedding input is not one value per channel, loads
 * as LGD_ERR_INTERNAL ("adding values of different sizes") where LGD_ERR_FORMAT is
 * meant. Tolerated unless LGD_FUZZ_STRICT=1, so that the fuzzer looks for new ones. */
static int known_internal(lgd_context *ctx)
{
    return !getenv("LGD_FUZZ_STRICT") &&
           strstr(lgd_context_last_error(ctx), "adding values of different sizes");
}

/* a failed call: a known status and a message (the context's rules, lgd/lgd.h) */
static void check_failure(lgd_context *ctx, lgd_status st, const char *call)
{
    FZ_CHECK(fz_status_known(st), "%s returned %d, not an lgd_status", call, (int)st);
    FZ_CHECK(st != LGD_ERR_INTERNAL || known_internal(ctx), "%s: LGD_ERR_INTERNAL (a liblgd bug): %s",
             call, lgd_context_last_error(ctx));
    FZ_CHECK(lgd_context_last_error(ctx)[0] != '\0', "%s failed (%s) without a message", call,
             lgd_status_string(st));
}

/* lgd_model_load() of the same bytes, from a memory file (no disk) */
static lgd_status model_load_bytes(lgd_context *ctx, const unsigned char *file, size_t size,
                                   lgd_model **out)
{
    int fd = memfd_create("lgd-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return LGD_ERR_IO;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, file + done, size - done);
        if (w <= 0) {
            close(fd);
            return LGD_ERR_IO;
        }
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lgd_status st = lgd_model_load(ctx, path, out);
    close(fd);
    return st;
}

static void run_model(lgd_context *ctx, lgd_network *net, const unsigned char *file,
                      size_t size, lgd_tensor *x, lgd_tensor *cond, int batch)
{
    int64_t dim = lgd_network_dim(net);
    lgd_model *model = SENTINEL;
    lgd_context_clear_error(ctx);
    lgd_status st = lgd_model_create_from_network(ctx, net, NULL, &model);
    if (st) {
        check_failure(ctx, st, "lgd_model_create_from_network");
        FZ_CHECK(model == NULL, "failed lgd_model_create_from_network left *out_model set");
        /* the file's adapter is refused: lgd_model_load refuses it too */
        lgd_model *m2 = SENTINEL;
        lgd_status st2 = model_load_bytes(ctx, file, size, &m2);
        if (st2 != LGD_ERR_IO) {
            FZ_CHECK(st2 != LGD_OK && m2 == NULL,
                     "lgd_model_load accepted what lgd_model_create_from_network refused");
        }
        return;
    }
    FZ_CHECK(model && lgd_model_dim(model) == dim, "model dim %lld, network dim %lld",
             (long long)lgd_model_dim(model), (long long)dim);
    lgd_tensor *xhat = tensor(ctx, batch, dim, 0.0f), *v = tensor(ctx, batch, dim, 0.5f);
    lgd_tensor *jv = tensor(ctx, batch, dim, 0.0f);
    static const float sigmas[] = { 0.5f, 80.0f, 0.002f };
    float sigma = sigmas[(size_t)dim % 3];
    st = lgd_model_denoise(model, x, sigma, cond, xhat);
    if (getenv("FZ_TRACE"))
        fprintf(stderr, "model: denoise %s\n", lgd_status_string(st));
    if (st) {
        check_failure(ctx, st, "lgd_model_denoise");
        FZ_CHECK(st == LGD_ERR_NON_FINITE || st == LGD_ERR_OUT_OF_MEMORY,
                 "lgd_model_denoise on a loaded network: %s: %s", lgd_status_string(st),
                 lgd_context_last_error(ctx));
    }
    st = lgd_model_vjp(model, x, sigma, cond, v, jv);
    if (st) {
        check_failure(ctx, st, "lgd_model_vjp");
        FZ_CHECK(st == LGD_ERR_NON_FINITE || st == LGD_ERR_OUT_OF_MEMORY,
                 "lgd_model_vjp on a loaded network: %s: %s", lgd_status_string(st),
                 lgd_context_last_error(ctx));
    }
    /* lgd_model_load of the same bytes gives the same model */
    lgd_model *m2 = SENTINEL;
    lgd_status st2 = model_load_bytes(ctx, file, size, &m2);
    if (st2 != LGD_ERR_IO) {
        FZ_CHECK(st2 == LGD_OK && m2 && lgd_model_dim(m2) == dim &&
                     lgd_model_cond_dim(m2) == lgd_model_cond_dim(model),
                 "lgd_model_load of bytes that lgd_model_create_from_network took: %s: %s",
                 lgd_status_string(st2), lgd_context_last_error(ctx));
        lgd_model_destroy(m2);
    }
    lgd_tensor_destroy(xhat);
    lgd_tensor_destroy(v);
    lgd_tensor_destroy(jv);
    lgd_model_destroy(model);
}

void fz_run_network(const unsigned char *file, size_t size, float t, int batch)
{
    lgd_context *ctx = make_context();
    lgd_network *net = SENTINEL;
    lgd_status st = lgd_network_load_memory(ctx, file, size, &net);
    int trace = getenv("FZ_TRACE") != NULL;
    if (trace)
        fprintf(stderr, "load: %s%s%s\n", lgd_status_string(st), st ? ": " : "",
                st ? lgd_context_last_error(ctx) : "");
    if (st) {
        check_failure(ctx, st, "lgd_network_load_memory");
        FZ_CHECK(st == LGD_ERR_FORMAT || st == LGD_ERR_UNSUPPORTED || st == LGD_ERR_OUT_OF_MEMORY ||
                     (st == LGD_ERR_INTERNAL && known_internal(ctx)),
                 "lgd_network_load_memory: status %s is not one it documents for a bad file",
                 lgd_status_string(st));
        FZ_CHECK(net == NULL, "a failed load left *out_network set");
        lgd_context_destroy(ctx);
        return;
    }
    FZ_CHECK(net != NULL, "lgd_network_load_memory succeeded without a network");
    int64_t dim = lgd_network_dim(net), out_dim = lgd_network_out_dim(net);
    int64_t cond_dim = lgd_network_cond_dim(net), params = lgd_network_parameter_count(net);
    FZ_CHECK(dim > 0 && out_dim > 0 && cond_dim >= 0 && params >= 0,
             "a loaded network with dim %lld, out_dim %lld, cond_dim %lld, %lld parameters",
             (long long)dim, (long long)out_dim, (long long)cond_dim, (long long)params);
    FZ_CHECK(lgd_network_metadata(net, "lgd.architecture") != NULL,
             "a loaded network without lgd.architecture");
    lgd_adapter_options ao;
    memset(&ao, 0xA5, sizeof ao);
    ao.struct_size = sizeof ao; /* the implementation reads it (src/nn/network.c) */
    FZ_CHECK(lgd_network_adapter_options(net, &ao) == LGD_OK &&
                 ao.struct_size == sizeof ao,
             "lgd_network_adapter_options");

    /* run it only when that is quick (the work caps of run_net.h) */
    if (dim > FZ_NET_MAX_DIM || out_dim > FZ_NET_MAX_OUT_DIM || cond_dim > FZ_NET_MAX_COND_DIM ||
        params > FZ_NET_MAX_PARAMS || (double)params * (double)dim > FZ_NET_MAX_WORK) {
        lgd_network_destroy(net);
        lgd_context_destroy(ctx);
        return;
    }
    if (trace)
        fprintf(stderr, "run: dim %lld, out_dim %lld, cond_dim %lld, %lld parameters\n",
                (long long)dim, (long long)out_dim, (long long)cond_dim, (long long)params);
    lgd_tensor *x = tensor(ctx, batch, dim, 1.0f), *out = tensor(ctx, batch, out_dim, 0.0f);
    lgd_tensor *cond = cond_dim ? tensor(ctx, batch, cond_dim, 0.25f) : NULL;
    lgd_context_clear_error(ctx);
    double t0 = now_ms();
    st = lgd_network_forward(net, x, t, cond, out);
    int slow = now_ms() - t0 > FZ_NET_MAX_FORWARD_MS;
    if (!isfinite(t)) {
        FZ_CHECK(st == LGD_ERR_INVALID_ARGUMENT, "forward with t = %g: %s", (double)t,
                 lgd_status_string(st));
    } else if (st) {
        check_failure(ctx, st, "lgd_network_forward");
        FZ_CHECK(st == LGD_ERR_OUT_OF_MEMORY, "lgd_network_forward on a loaded network: %s: %s",
                 lgd_status_string(st), lgd_context_last_error(ctx));
    }
    if (slow) { /* one pass was slow: the rest would be too (a large attention) */
        lgd_tensor_destroy(x);
        lgd_tensor_destroy(out);
        lgd_tensor_destroy(cond);
        lgd_network_destroy(net);
        lgd_context_destroy(ctx);
        return;
    }
    lgd_tensor *v = tensor(ctx, batch, out_dim, 0.5f), *dx = tensor(ctx, batch, dim, 0.0f);
    lgd_tensor *fw = tensor(ctx, batch, out_dim, 0.0f);
    st = lgd_network_vjp(net, x, t, cond, v, dx, fw);
    if (st && isfinite(t)) {
        check_failure(ctx, st, "lgd_network_vjp");
        FZ_CHECK(st == LGD_ERR_OUT_OF_MEMORY, "lgd_network_vjp on a loaded network: %s: %s",
                 lgd_status_string(st), lgd_context_last_error(ctx));
    }
    /* wrong shapes and a missing / extra condition are refused, not run */
    lgd_tensor *bad = tensor(ctx, batch, out_dim + 1, 0.0f);
    FZ_CHECK(lgd_network_forward(net, x, 1.0f, cond, bad) == LGD_ERR_SHAPE_MISMATCH,
             "forward into a [B][out_dim + 1] tensor was not refused");
    if (cond_dim) {
        FZ_CHECK(lgd_network_forward(net, x, 1.0f, NULL, out) == LGD_ERR_INVALID_ARGUMENT,
                 "forward of a conditional network without cond was not refused");
    } else {
        FZ_CHECK(lgd_network_forward(net, x, 1.0f, x, out) == LGD_ERR_INVALID_ARGUMENT,
                 "forward of an unconditional network with cond was not refused");
    }
    if (trace)
        fprintf(stderr, "forward / vjp: %s\n", lgd_status_string(st));
    if (out_dim == dim && isfinite(t))
        run_model(ctx, net, file, size, x, cond, batch);
    lgd_tensor_destroy(bad);
    lgd_tensor_destroy(v);
    lgd_tensor_destroy(dx);
    lgd_tensor_destroy(fw);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(out);
    lgd_tensor_destroy(cond);
    lgd_network_destroy(net);
    lgd_context_destroy(ctx);
}
