/*
 * lgd/loss.h - differentiable losses l(x0) that guidance steers samples to minimise.
 *
 * The target of guided sampling is p0(x0) exp(-l(x0)) / Z. A loss is evaluated on
 * a batch laid out [batch][n][dim]: `batch` samples being generated, `n` Monte Carlo
 * draws for each (n = 1 for DPS), so a callback can look up a per-sample condition
 * by the batch index b of row (b * n + i).
 */
#ifndef LGD_LOSS_H
#define LGD_LOSS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Host loss: for x[batch][n][dim] writes loss[batch][n] and, when grad is not
 * NULL, grad[batch][n][dim] = d loss / d x. Returns 0 on success; any other value
 * is reported as LGD_ERR_CALLBACK.
 */
typedef int (*lgd_loss_fn)(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                           float *loss, float *grad);

typedef struct lgd_loss_callbacks {
    uint32_t struct_size;       /**< sizeof(lgd_loss_callbacks) */
    lgd_memory memory;          /**< where eval wants its buffers */
    int64_t dim;                /**< length of one sample (> 0) */
    lgd_loss_fn eval;           /**< required */
    void (*destroy)(void *user);/**< called once when the loss is freed; may be NULL */
    void *user;
} lgd_loss_callbacks;

#define LGD_LOSS_CALLBACKS_INIT \
    LGD_STRUCT_INIT_(lgd_loss_callbacks, LGD_MEMORY_HOST, 0, NULL, NULL, NULL)
LGD_API lgd_status lgd_loss_callbacks_init(lgd_loss_callbacks *callbacks, uint32_t struct_size);

/** A loss from a host callback. On failure the destroy callback is NOT called. */
LGD_API lgd_status lgd_loss_create_callbacks(lgd_context *context,
                                             const lgd_loss_callbacks *callbacks,
                                             lgd_loss **out_loss);

/**
 * Weighted squared error l(x) = sum_j w_j (x_j - y_j)^2. target is [target_rows][dim]
 * with target_rows 1 (shared) or equal to the batch at evaluation (row b for sample
 * b). weights[dim] >= 0 or NULL for all ones; zeros mask entries out. Copied.
 */
LGD_API lgd_status lgd_loss_create_squared_error(lgd_context *context, int64_t dim,
                                                 const float *target, int64_t target_rows,
                                                 const float *weights, lgd_loss **out_loss);

/**
 * Linear inverse problem l(x) = |y - H x|^2 / (2 s^2), H dense [m][dim] (row-major),
 * y [target_rows][m] with target_rows 1 or the batch, noise level s > 0. Copied.
 */
LGD_API lgd_status lgd_loss_create_linear(lgd_context *context, int64_t dim, int64_t m,
                                          const float *H, const float *y, int64_t target_rows,
                                          float noise_sigma, lgd_loss **out_loss);

/**
 * Logistic loss l(x) = -log sigmoid(a . x + b) = softplus(-(a . x + b)): the
 * negative log-likelihood of a binary label under a linear classifier. With a and
 * b from a two-component equal-covariance Gaussian mixture's log-odds it is
 * -log p(y = k | x0), the loss of the paper's mixture example. a[dim] is copied.
 */
LGD_API lgd_status lgd_loss_create_logistic(lgd_context *context, int64_t dim, const float *a,
                                            float b, lgd_loss **out_loss);

/**
 * l(x) = sum_k weights[k] * terms[k](x). The sum keeps its own references to the
 * terms, which must all have the same dim. weights may be NULL for all ones.
 */
LGD_API lgd_status lgd_loss_create_sum(lgd_context *context, int count,
                                       lgd_loss *const *terms, const float *weights,
                                       lgd_loss **out_loss);

/** Releases the caller's reference. */
LGD_API void lgd_loss_destroy(lgd_loss *loss);

LGD_API int64_t lgd_loss_dim(const lgd_loss *loss);

/**
 * Evaluates the loss. x is [batch][dim] (n = 1) or [batch][n][dim]; out_loss has
 * batch * n elements; out_grad (same shape as x) may be NULL for values only.
 */
LGD_API lgd_status lgd_loss_eval(lgd_loss *loss, const lgd_tensor *x, lgd_tensor *out_loss,
                                 lgd_tensor *out_grad);

#ifdef __cplusplus
}
#endif
#endif
