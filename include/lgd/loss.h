/*
 * lgd/loss.h - differentiable losses l(x0) that guidance steers samples to minimise.
 *
 * The target of guided sampling is p0(x0) exp(-l(x0)) / Z. A loss is evaluated on
 * a batch laid out [batch][n][dim]: `batch` samples being generated, and for each
 * `n` draws, so a callback can look up a per-sample condition by the batch index b of
 * row (b * n + i). In guidance, n is the number of draws in this call: a chunk of the
 * guidance's n_samples Monte Carlo draws (lgd_guidance_options.chunk_size, 16 by
 * default; n = 1 for DPS), so one guidance step may call the loss several times. A
 * loss that needs to know which draws it gets uses lgd_loss_draws_fn.
 *
 * Callbacks follow the rules of lgd/context.h ("Callbacks"): 0 is success and any
 * other return value fails the call with LGD_ERR_CALLBACK (say why with
 * lgd_context_set_callback_error()); they must not unwind (no C++ exception, Rust
 * panic or longjmp out of them); on the loss's context they may call only
 * lgd_context_set_callback_error() and pure getters; and they must write every
 * output element (checked with lgd_context_options.check_callback_outputs).
 */
#ifndef LGD_LOSS_H
#define LGD_LOSS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Loss callback: for x[batch][n][dim] writes loss[batch][n] and, when grad is not
 * NULL, grad[batch][n][dim] = d loss / d x. n is the number of draws of this call (in
 * guidance a chunk of n_samples, see the top of this file), not the total. Buffers
 * are host or backend memory as lgd_loss_callbacks.memory says; x is only valid
 * during the call. Returns 0 on success; any other value is a failure reported as
 * LGD_ERR_CALLBACK, with the value and the message of
 * lgd_context_set_callback_error() if the callback set one. Must not unwind (no C++
 * exception, Rust panic or longjmp out of it); may call on the loss's context only
 * lgd_context_set_callback_error() and pure getters (lgd/context.h, "Callbacks").
 * (Since 0.1.0; returns int32_t since 0.3.0, int before: the same ABI.)
 */
typedef int32_t (*lgd_loss_fn)(void *user, const float *x, int64_t batch, int64_t n,
                               int64_t dim, float *loss, float *grad);

/**
 * Loss callback that is told which draws it receives: as lgd_loss_fn, and row
 * (b * n + i) of x is draw (first_draw + i) of the total_draws draws that sample b's
 * call folds together (guidance: draws first_draw .. first_draw + n - 1 of
 * n_samples; over one guidance call the chunks cover 0 .. total_draws - 1 exactly
 * once, in order). Outside guidance (lgd_loss_eval) first_draw = 0 and total_draws
 * = n. For a loss that depends on the draw index, e.g. a per-draw random mask or
 * an importance weight: with it the result does not depend on the chunk size.
 * The same rules as lgd_loss_fn. (Since 0.3.0.)
 */
typedef int32_t (*lgd_loss_draws_fn)(void *user, const float *x, int64_t batch, int64_t n,
                                     int64_t dim, int64_t first_draw, int64_t total_draws,
                                     float *loss, float *grad);

/** A loss from a host callback. Copied by lgd_loss_create_callbacks(); the first
 *  published layout (0.1.0) ends at user. (Since 0.1.0; eval_draws since 0.3.0.) */
typedef struct lgd_loss_callbacks {
    uint32_t struct_size;       /**< sizeof(lgd_loss_callbacks) */
    lgd_memory memory;          /**< where eval wants its buffers: LGD_MEMORY_HOST
                                     (default) or LGD_MEMORY_DEVICE */
    int64_t dim;                /**< length of one sample (> 0) */
    lgd_loss_fn eval;           /**< exactly one of eval and eval_draws is required */
    /** Called once when the loss is freed (on the thread that drops the last
     *  reference); may be NULL. Must not unwind and must not call liblgd on the loss
     *  being freed. */
    void (*destroy)(void *user);
    void *user;                 /**< passed to every callback; owned by the caller */
    /* 0.3.0 (the first published layout ends above) */
    lgd_loss_draws_fn eval_draws; /**< used instead of eval when set, default NULL */
} lgd_loss_callbacks;

#define LGD_LOSS_CALLBACKS_INIT \
    LGD_STRUCT_INIT_(lgd_loss_callbacks, LGD_MEMORY_HOST, 0, NULL, NULL, NULL, NULL)
/** Sets *callbacks to LGD_LOSS_CALLBACKS_INIT, writing exactly struct_size bytes
 *  (lgd_loss_callbacks_init(&c, sizeof c); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when callbacks is NULL or struct_size is below
 *  the first published layout, offsetof(lgd_loss_callbacks, eval_draws). Any thread.
 *  (Since 0.1.0; signature changed in 0.3.0: takes struct_size and returns lgd_status,
 *  was void.) */
LGD_API lgd_status lgd_loss_callbacks_init(lgd_loss_callbacks *callbacks, uint32_t struct_size);

/** A loss from a host callback (the struct is copied; `user` is kept and passed back).
 *  Statuses: LGD_ERR_INVALID_ARGUMENT (context, callbacks or out_loss NULL; a bad
 *  struct_size; memory not an lgd_memory; dim <= 0; not exactly one of eval and
 *  eval_draws set), LGD_ERR_OUT_OF_MEMORY. On failure the destroy callback is NOT
 *  called. (Since 0.1.0; eval_draws since 0.3.0.) */
LGD_API lgd_status lgd_loss_create_callbacks(lgd_context *context,
                                             const lgd_loss_callbacks *callbacks,
                                             lgd_loss **out_loss);

/**
 * Weighted squared error l(x) = sum_j w_j (x_j - y_j)^2. target is [target_rows][dim]
 * (finite) with target_rows 1 (shared) or equal to the batch at evaluation (row b for
 * sample b; another batch fails that evaluation with LGD_ERR_SHAPE_MISMATCH).
 * weights[dim] finite and >= 0, or NULL for all ones; zeros mask entries out. Copied.
 * Statuses: LGD_ERR_INVALID_ARGUMENT (context, out_loss or target NULL, dim <= 0,
 * target_rows < 1, a non-finite target or weight, a negative weight),
 * LGD_ERR_UNSUPPORTED (the backend module has no loss kernels), LGD_ERR_OUT_OF_MEMORY
 * (also target_rows * dim too large), and LGD_ERR_INTERNAL on a backend failure.
 * (Since 0.1.0.)
 */
LGD_API lgd_status lgd_loss_create_squared_error(lgd_context *context, int64_t dim,
                                                 const float *target, int64_t target_rows,
                                                 const float *weights, lgd_loss **out_loss);

/**
 * Linear inverse problem l(x) = |y - H x|^2 / (2 s^2), H dense [m][dim] (row-major),
 * y [target_rows][m] with target_rows 1 or the batch (as lgd_loss_create_squared_error),
 * noise level s = noise_sigma finite and > 0 with 1 / s^2 finite in float. H and y
 * finite; copied. Statuses: LGD_ERR_INVALID_ARGUMENT (context, out_loss, H or y NULL,
 * dim or m <= 0, target_rows < 1, noise_sigma out of range, a non-finite entry),
 * LGD_ERR_UNSUPPORTED (no loss kernels), LGD_ERR_OUT_OF_MEMORY (also sizes too large),
 * and LGD_ERR_INTERNAL on a backend failure. (Since 0.1.0.)
 */
LGD_API lgd_status lgd_loss_create_linear(lgd_context *context, int64_t dim, int64_t m,
                                          const float *H, const float *y, int64_t target_rows,
                                          float noise_sigma, lgd_loss **out_loss);

/**
 * Logistic loss l(x) = -log sigmoid(a . x + b) = softplus(-(a . x + b)): the
 * negative log-likelihood of a binary label under a linear classifier. With a and
 * b from a two-component equal-covariance Gaussian mixture's log-odds it is
 * -log p(y = k | x0), the loss of the paper's mixture example. a[dim] (finite) is
 * copied; b finite. Statuses: LGD_ERR_INVALID_ARGUMENT (context, out_loss or a NULL,
 * dim <= 0, a non-finite entry or b), LGD_ERR_UNSUPPORTED (no loss kernels),
 * LGD_ERR_OUT_OF_MEMORY, and LGD_ERR_INTERNAL on a backend failure. (Since 0.1.0.)
 */
LGD_API lgd_status lgd_loss_create_logistic(lgd_context *context, int64_t dim, const float *a,
                                            float b, lgd_loss **out_loss);

/**
 * l(x) = sum_k weights[k] * terms[k](x), k < count (count >= 1). The sum keeps its own
 * references to the terms (the caller may destroy its own), which must all belong to
 * the context and have the same dim. weights[count] finite (any sign; copied), or NULL
 * for all ones. A term's failure at evaluation is reported with its index. Statuses:
 * LGD_ERR_INVALID_ARGUMENT (context, out_loss, terms or a term NULL, count < 1, a term
 * of another context, a non-finite weight), LGD_ERR_SHAPE_MISMATCH (terms of different
 * dims), LGD_ERR_OUT_OF_MEMORY. (Since 0.1.0.)
 */
LGD_API lgd_status lgd_loss_create_sum(lgd_context *context, int32_t count,
                                       lgd_loss *const *terms, const float *weights,
                                       lgd_loss **out_loss);

/** Releases the caller's reference (guidance objects and sums keep their own); the
 *  last one frees the loss and calls a callback loss's destroy. NULL is a no-op. Any
 *  thread. (Since 0.1.0.) */
LGD_API void lgd_loss_destroy(lgd_loss *loss);

/** Length of one sample (0 for NULL). A pure getter. (Since 0.1.0.) */
LGD_API int64_t lgd_loss_dim(const lgd_loss *loss);

/**
 * Evaluates the loss. x is [batch][dim] (n = 1) or [batch][n][dim]; out_loss has
 * batch * n elements (any shape); out_grad (as many elements as x) may be NULL for
 * values only. x, out_loss and out_grad are distinct tensors of the loss's context. A
 * callback loss's eval_draws gets first_draw = 0 and total_draws = n. Statuses:
 * LGD_ERR_INVALID_ARGUMENT (loss, x or out_loss NULL, tensors that alias),
 * LGD_ERR_SHAPE_MISMATCH (x not 2-D or 3-D with last dimension dim, output sizes that
 * do not fit, a built-in loss's target_rows neither 1 nor the batch),
 * LGD_ERR_NON_FINITE (a value or gradient is NaN or Inf), and those of running the loss
 * (<lgd/lgd.h>). (Since 0.1.0.)
 */
LGD_API lgd_status lgd_loss_eval(lgd_loss *loss, const lgd_tensor *x, lgd_tensor *out_loss,
                                 lgd_tensor *out_grad);

/** Takes a reference to the loss and returns it (NULL for NULL); each reference is
 *  dropped with lgd_loss_destroy(), the last one frees the loss. Any thread (see the
 *  thread contract in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_loss *lgd_loss_retain(lgd_loss *loss);
/** The context the loss was made from (NULL for NULL): borrowed, valid while the
 *  caller holds a reference to the loss; for lgd_context_last_error(). (Since 0.3.0.) */
LGD_API lgd_context *lgd_loss_context(const lgd_loss *loss);

#ifdef __cplusplus
}
#endif
#endif
