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
    { (uint32_t)sizeof(lgd_loss_callbacks), LGD_MEMORY_HOST, 0, NULL, NULL, NULL }
LGD_API void lgd_loss_callbacks_init(lgd_loss_callbacks *callbacks);

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

/**
 * Where a trajectory's root lives in a sample of `dim` floats: frame t's root is the
 * pair (x, y) at x[root_offset + t * frame_stride + {0, 1}]. With `velocities` (the
 * default) those are root velocities and the positions are their running sum,
 * p_t = velocity_scale * sum_{s <= t} v_s, starting at the origin (as a motion model's
 * root is integrated); otherwise they are the positions themselves.
 */
typedef struct lgd_trajectory_layout {
    uint32_t struct_size;
    int64_t frames;          /**< T >= 1 (required) */
    int64_t frame_stride;    /**< floats from one frame to the next, >= 2 (default 2) */
    int64_t root_offset;     /**< index of frame 0's root x (default 0) */
    int32_t velocities;      /**< 1 (default): velocities, integrated; 0: positions */
    float velocity_scale;    /**< default 1 */
} lgd_trajectory_layout;

#define LGD_TRAJECTORY_LAYOUT_INIT { (uint32_t)sizeof(lgd_trajectory_layout), 0, 2, 0, 1, 1.0f }
LGD_API void lgd_trajectory_layout_init(lgd_trajectory_layout *layout);

/**
 * Path following (the paper's Eq. 14): l(x) = sum_t |y_t - p_t|^2 with p_t the root
 * position of frame t. path is [target_rows][frames][2] (copied), target_rows 1 or the
 * batch at evaluation. The paper's "Objective" is this loss divided by the frames.
 */
LGD_API lgd_status lgd_loss_create_path(lgd_context *context, int64_t dim,
                                        const lgd_trajectory_layout *layout, const float *path,
                                        int64_t target_rows, lgd_loss **out_loss);

/** Options of lgd_loss_create_obstacle_avoidance(); the defaults are the paper's Eq. 20. */
typedef struct lgd_obstacle_options {
    uint32_t struct_size;
    float sharpness;         /**< default 50 */
    float obstacle_weight;   /**< default 100 */
    float goal_weight;       /**< default 1 */
} lgd_obstacle_options;

#define LGD_OBSTACLE_OPTIONS_INIT { (uint32_t)sizeof(lgd_obstacle_options), 50.0f, 100.0f, 1.0f }
LGD_API void lgd_obstacle_options_init(lgd_obstacle_options *options);

/**
 * Obstacle avoidance (the paper's Eq. 15 with the collision term of Eq. 20):
 *   l(x) = goal_weight |g - p_{T-1}|^2
 *        + sum_t sum_o obstacle_weight sigmoid(-(|p_t - c_o|^2 - r_o^2) sharpness).
 * goal is [target_rows][2] or NULL (no goal term); obstacles is [count][3] (centre x,
 * centre y, radius > 0), count >= 0 (the paper: radius 1). All copied. options NULL =
 * the paper's constants.
 */
LGD_API lgd_status lgd_loss_create_obstacle_avoidance(lgd_context *context, int64_t dim,
                                                      const lgd_trajectory_layout *layout,
                                                      const float *goal, int64_t target_rows,
                                                      const float *obstacles, int64_t count,
                                                      const lgd_obstacle_options *options,
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
