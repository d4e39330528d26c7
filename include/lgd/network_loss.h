/**
 * lgd/network_loss.h - a loaded network as a loss, and classifier guidance (CG).
 * (Since 0.5.0.)
 *
 * A network loss is l(x) = scale * R(f(x_in, t)): f is a network loaded with
 * lgd_network_load() (<lgd/network.h>; e.g. an `mlp` with lgd.out_dim classes, see
 * docs/network-format.md) and R reduces its output row f (out_dim values) to a number:
 *
 *   LGD_NETWORK_LOSS_CROSS_ENTROPY  R(f) = log sum_k exp(f_k) - f_y = -log softmax(f)[y]
 *                                   with y the row's label (lgd_loss_network_set_labels):
 *                                   a classifier's negative log-likelihood -log p(y | x).
 *                                   dR/df = softmax(f) - onehot(y).
 *   LGD_NETWORK_LOSS_SCALAR         R(f) = f_0 for a network with out_dim 1: a learned
 *                                   energy or negative log-likelihood. dR/df = 1.
 *   LGD_NETWORK_LOSS_SQUARED_ERROR  R(f) = |f - y|^2 / 2 with y the row's target vector
 *                                   (lgd_loss_network_set_targets; 0 until one is set,
 *                                   i.e. the squared norm): a nonlinear inverse problem
 *                                   y = A(x0) + noise with a network forward operator A
 *                                   (scale = 1 / s^2 gives |y - A(x0)|^2 / (2 s^2), as
 *                                   lgd_loss_create_linear() for a matrix), or matching a
 *                                   network's features to a reference. dR/df = f - y.
 *
 * (A weighted sum of outputs w . f is not offered: with out_dim 1 it is SCALAR times a
 * scale, and over logits it rewards one logit without the normalisation that makes the
 * cross-entropy a likelihood; the squared error covers the vector outputs that have a
 * probabilistic reading.)
 *
 * The gradient is the network's input VJP of dR/df:
 *   grad l(x) = scale * c_in * (df/dx_in)^T dR/df
 * computed with the network's own forward and VJP passes and the backend's generic row
 * operations (log-sum-exp, softmax), so it runs wherever networks run (CPU, CUDA).
 * The value of the cross-entropy is computed as logsumexp(f) - f_y in float: at a
 * confident row it is accurate to about 1e-7 |max_k f_k|.
 *
 * What the network receives (lgd_network_loss_options.input):
 *   LGD_NETWORK_INPUT_CLEAN  x_in = x, t = options.t (c_in = 1): a classifier of clean
 *                            data x0, with the time input it was trained with.
 *   LGD_NETWORK_INPUT_NOISY  x_in = c_in(sigma) x, t = t(sigma), as a denoiser network
 *                            receives them (<lgd/network.h>: c_in = 1/sqrt(1 + sigma^2),
 *                            the VP scaling, or 1/sqrt(sigma^2 + sigma_data^2) for an EDM
 *                            adapter; t by the adapter's time input): a noise-aware
 *                            classifier p(y | x_sigma). sigma is options.sigma for
 *                            lgd_loss_eval() and guidance (e.g. the schedule's smallest
 *                            sigma, so that a noise-aware classifier scores x0 as the
 *                            nearly clean images it was trained on at t ~ 0), or the
 *                            sigma of lgd_loss_network_eval_sigma() and of the
 *                            classifier-guided model below.
 *
 * Rows and memory: the loss is evaluated on x[batch][n][dim] (guidance: `batch` samples
 * x `n` draws of one chunk; row b * n + i is draw i of sample b and takes sample b's
 * label or target). The rows are run through the network in pieces of at most
 * options.max_rows rows (whole samples when n <= max_rows, else pieces of one sample's
 * draws), so the activation memory is that of max_rows rows however large batch and n
 * are. Rows do not interact, but the network's GEMMs may round a row differently in a call
 * of another row count (OpenBLAS does, even on one thread), so another max_rows, or
 * another chunk size of the guidance, changes the results by rounding (up to 1e-6 of the
 * loss in the tests), not more; the same options and shapes give the same bytes.
 *
 * Classifier guidance (CG; Dhariwal & Nichol 2021, one of the paper's Table 4 methods):
 * with l(x; sigma) = -log p(y | x_sigma) the cross-entropy of a noise-aware classifier
 * (INPUT_NOISY, scale 1), grad log p(y | x) = -grad l(x; sigma), and the guided score
 * score(x) + w grad log p(y | x) is, through Tweedie's D = x + sigma^2 score, the denoiser
 *   D_cg(x, sigma) = D(x, sigma) - w sigma^2 grad_x l(x; sigma).
 * lgd_model_create_classifier_guided() makes D_cg a model that every sampler runs as it
 * is (with LGD_GUIDANCE_NONE: CG alone uses no VJP of D and no Monte Carlo draws). A
 * host with its own sampler loop computes the same term with
 * lgd_loss_network_eval_sigma() at the step's sigma and adds -w sigma^2 grad to D.
 *
 * A network loss holds a reference to its network. Like every handle it is used by one
 * thread at a time with its context (<lgd/lgd.h>); the network must not be run from
 * another thread during its evaluation.
 */
#ifndef LGD_NETWORK_LOSS_H
#define LGD_NETWORK_LOSS_H

#include "common.h"
#include "loss.h"
#include "network.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How a network's output row is reduced to the loss (see the top of this file).
 *  (Since 0.5.0.) */
typedef enum lgd_network_loss_kind {
    LGD_NETWORK_LOSS_CROSS_ENTROPY = 0, /**< -log softmax(f)[y], out_dim >= 2, labels */
    LGD_NETWORK_LOSS_SCALAR = 1,        /**< f_0, out_dim 1 */
    LGD_NETWORK_LOSS_SQUARED_ERROR = 2  /**< |f - y|^2 / 2, targets (default 0) */
} lgd_network_loss_kind;
LGD_ENUM_32_(lgd_network_loss_kind);

/** What the network receives (see the top of this file). (Since 0.5.0.) */
typedef enum lgd_network_input {
    LGD_NETWORK_INPUT_CLEAN = 0, /**< x_in = x, t = options.t */
    LGD_NETWORK_INPUT_NOISY = 1  /**< x_in = c_in(sigma) x, t = t(sigma) by the adapter */
} lgd_network_input;
LGD_ENUM_32_(lgd_network_input);

/** Options of lgd_loss_create_network(); read during the call (the first published
 *  layout is today's). (Since 0.5.0.) */
typedef struct lgd_network_loss_options {
    uint32_t struct_size;        /**< sizeof(lgd_network_loss_options) */
    lgd_network_loss_kind kind;  /**< default LGD_NETWORK_LOSS_CROSS_ENTROPY */
    float scale;                 /**< multiplies the loss and its gradient; finite,
                                      default 1 */
    lgd_network_input input;     /**< default LGD_NETWORK_INPUT_CLEAN */
    float t;                     /**< INPUT_CLEAN: the network's time input t, finite,
                                      default 0; ignored by INPUT_NOISY */
    float sigma;                 /**< INPUT_NOISY: the noise level of lgd_loss_eval() and
                                      of guidance, finite and > 0, default 0.002;
                                      ignored by INPUT_CLEAN */
    /** INPUT_NOISY: the adapter whose c_in (by its prediction: EDM or the VP scaling)
     *  and time input (with alphas_cumprod for the discrete ones) map sigma to x_in and
     *  t; read and copied, checked as lgd_model_create_network_callbacks() checks it.
     *  NULL (default): the network file's adapter (lgd_network_adapter_options()).
     *  Ignored by INPUT_CLEAN. */
    const lgd_adapter_options *adapter;
    int64_t max_rows;            /**< rows per network call, >= 1, default 256 */
} lgd_network_loss_options;

#define LGD_NETWORK_LOSS_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_network_loss_options, LGD_NETWORK_LOSS_CROSS_ENTROPY, 1.0f, \
        LGD_NETWORK_INPUT_CLEAN, 0.0f, 0.002f, NULL, 256)
/** Sets *options to LGD_NETWORK_LOSS_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_network_loss_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_network_loss_options) (the first published layout). Any thread.
 *  (Since 0.5.0.) */
LGD_API lgd_status lgd_network_loss_options_init(lgd_network_loss_options *options,
                                                 uint32_t struct_size);

/**
 * A loss from a loaded network (see the top of this file); its dim is the network's
 * lgd_network_dim(). The loss keeps a reference to the network (the caller may destroy
 * its own). options NULL: defaults (a cross-entropy of the clean input at t = 0). A
 * cross-entropy needs its labels (lgd_loss_network_set_labels()) before it is
 * evaluated (an evaluation without them fails with LGD_ERR_STATE). Statuses: LGD_ERR_INVALID_ARGUMENT (context, network or out_loss NULL; the
 * network of another context; a bad struct_size; kind or input unknown; scale, t or
 * sigma out of range; max_rows < 1; an INPUT_NOISY adapter that
 * lgd_model_create_network_callbacks() would refuse), LGD_ERR_SHAPE_MISMATCH (the
 * network's out_dim does not fit the kind: 1 for SCALAR, at least 2 for CROSS_ENTROPY),
 * LGD_ERR_UNSUPPORTED (a conditional network: lgd_network_cond_dim() > 0),
 * LGD_ERR_OUT_OF_MEMORY. On failure *out_loss is NULL. A backend module without network
 * kernels fails at the first evaluation, not here. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_loss_create_network(lgd_context *context, lgd_network *network,
                                           const lgd_network_loss_options *options,
                                           lgd_loss **out_loss);

/**
 * Sets the labels of a cross-entropy network loss: labels[rows] (copied), each in
 * [0, out_dim), with rows 1 (one label for every sample) or the batch of each later
 * evaluation (label b for sample b, i.e. for rows b * n .. b * n + n - 1 of
 * x[batch][n][dim]; another batch then fails that evaluation with
 * LGD_ERR_SHAPE_MISMATCH). Replaces the labels set before; on failure they stay.
 * Statuses: LGD_ERR_INVALID_ARGUMENT (loss NULL, without a message; labels NULL, rows <
 * 1, a label out of range, naming its index), LGD_ERR_UNSUPPORTED (not a network loss,
 * or not a cross-entropy), LGD_ERR_OUT_OF_MEMORY (also rows * out_dim too large), and
 * LGD_ERR_INTERNAL on a backend failure. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_loss_network_set_labels(lgd_loss *loss, const int32_t *labels,
                                               int64_t rows);

/**
 * Sets the targets of a squared-error network loss: targets[rows][cols] (copied,
 * finite) with cols the network's out_dim and rows 1 or the batch of each later
 * evaluation (as the labels above); targets NULL (with rows and cols ignored) goes back
 * to the zero target, the squared norm |f|^2 / 2. Replaces the targets set before; on
 * failure they stay. Statuses: LGD_ERR_INVALID_ARGUMENT (loss NULL, without a message;
 * rows < 1; a non-finite target), LGD_ERR_SHAPE_MISMATCH (cols is not out_dim),
 * LGD_ERR_UNSUPPORTED (not a network loss, or not a squared error),
 * LGD_ERR_OUT_OF_MEMORY, and LGD_ERR_INTERNAL on a backend failure. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_loss_network_set_targets(lgd_loss *loss, const float *targets,
                                                int64_t rows, int64_t cols);

/**
 * Evaluates an INPUT_NOISY network loss at noise level sigma (finite, > 0) instead of
 * its options.sigma: l(x; sigma) and, when out_grad is not NULL, grad_x l(x; sigma).
 * For classifier guidance by hand: grad log p(y | x_sigma) = -out_grad with a
 * cross-entropy of scale 1 (see the top of this file). x, out_loss and out_grad as
 * lgd_loss_eval(), with its statuses (its messages name lgd_loss_eval), and
 * LGD_ERR_INVALID_ARGUMENT (sigma out of range), LGD_ERR_UNSUPPORTED (not a network
 * loss, or an INPUT_CLEAN one), LGD_ERR_STATE (a cross-entropy without labels).
 * (Since 0.5.0.)
 */
LGD_API lgd_status lgd_loss_network_eval_sigma(lgd_loss *loss, const lgd_tensor *x, float sigma,
                                               lgd_tensor *out_loss, lgd_tensor *out_grad);

/**
 * The classifier-guided denoiser D_cg(x, sigma) = D(x, sigma) - scale * sigma^2 *
 * grad_x l(x; sigma) (see the top of this file) of `model` and `loss`, both of the
 * context with the same dim; the new model keeps references to both and has the
 * model's cond_dim (a condition goes to D). An INPUT_NOISY network loss is evaluated at
 * each call's sigma; any other loss at x as it is. Use it with LGD_GUIDANCE_NONE (CG);
 * it has no VJP, so DPS and LGD-MC guidance on it fail with LGD_ERR_UNSUPPORTED. A
 * cross-entropy's labels are those set on the loss at each call (one per sample, or
 * one for all). scale is CG's guidance weight w, finite (1: the Bayes-consistent
 * posterior score). Statuses of the creation: LGD_ERR_INVALID_ARGUMENT (context, model,
 * loss or out_model NULL; model or loss of another context; scale not finite),
 * LGD_ERR_SHAPE_MISMATCH (the dims differ), LGD_ERR_OUT_OF_MEMORY. Calls of the model
 * add the statuses of the loss's evaluation. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_model_create_classifier_guided(lgd_context *context, lgd_model *model,
                                                      lgd_loss *loss, float scale,
                                                      lgd_model **out_model);

#ifdef __cplusplus
}
#endif

#endif
