/*
 * lgd/operator.h - matrix-free linear operators H for image inverse problems, and the
 * loss |y - H x|^2 / (2 s^2) over them (since 0.5.0).
 *
 * An image is a row of the batch laid out as the networks lay out images
 * (lgd/network.h): [channels][height][width], flat and row-major (CHW), so
 * dim = channels * height * width. H maps it to a measurement of m values:
 *
 *  - LGD_OPERATOR_AVG_POOL: the means of non-overlapping factor x factor blocks,
 *    y[c][i][j] = sum_{a,b < f} x[c][f i + a][f j + b] / f^2; y is
 *    [channels][height / f][width / f].
 *  - LGD_OPERATOR_BICUBIC_DOWN: antialiased bicubic downsampling by the factor f, as
 *    PyTorch's F.interpolate(x, scale_factor=1/f, mode='bicubic', antialias=True,
 *    align_corners=False) computes it; y is [channels][height / f][width / f]. Separable: along an axis of n pixels, output i is centred at
 *    c = f (i + 1/2) (pixel p spans [p, p + 1)) and is sum_p w_p x_p over the pixels
 *    0 <= p < n with w_p = k((p + 1/2 - c) / f) / sum_q k((q + 1/2 - c) / f), k the
 *    Keys cubic with a = -0.5 (k(t) = 1.5|t|^3 - 2.5|t|^2 + 1 for |t| < 1,
 *    -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2 for 1 <= |t| < 2, else 0), i.e. the kernel
 *    stretched by f. Edges: the taps that would fall outside the image are dropped and
 *    the remaining weights renormalised to sum 1 (PyTorch's rule; no padding).
 *  - LGD_OPERATOR_MASK: y = mask * x elementwise (inpainting with a 0/1 mask, or any
 *    per-pixel weights); y is [channels][height][width] like x, and H^T = H.
 *  - LGD_OPERATOR_BLUR: a separable Gaussian blur with standard deviation blur_sigma
 *    (pixels) and radius r = blur_radius: along each axis y_i = sum_{|k| <= r} w_k
 *    x_{i + k} with w_k = exp(-k^2 / (2 sigma^2)) / sum_{|j| <= r} exp(-j^2 /
 *    (2 sigma^2)). Edges: reflect padding, mirrored about the edge pixels without
 *    repeating them (index -1 reads 1, index n reads n - 2, as
 *    torch.nn.ReflectionPad2d and numpy.pad(mode='reflect') do, folded again when the
 *    radius exceeds the image; a one-pixel axis reads its pixel); y is
 *    [channels][height][width].
 *
 * The four kinds act on every channel alike and never mix channels. AVG_POOL and
 * BICUBIC_DOWN need height and width to be multiples of the factor.
 *
 * The paper's super-resolution loss (App. B.2) is |y - H x0|^2 / (2 s_t^2) with
 * s_t = 0.25, and the paper multiplies the guidance term by s_t^2 "to prevent large
 * gradient values towards the end of the sampling process". With a constant s_t that factor is
 * the step rule's weight: lgd_guidance_options.step_rule = LGD_STEP_SCORE with
 * scale = s2 gives the guided score score + s2 * g, exactly the paper's (the loss, and
 * with it LGD-MC's weights softmax(-l(x_i)), keeps the 1 / (2 s^2) of Eq. 19).
 */
#ifndef LGD_OPERATOR_H
#define LGD_OPERATOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which linear operator H an lgd_operator_options describes (see the top of this
 *  file). (Since 0.5.0.) */
typedef enum lgd_operator_kind {
    LGD_OPERATOR_AVG_POOL = 0,     /**< non-overlapping factor x factor means */
    LGD_OPERATOR_BICUBIC_DOWN = 1, /**< antialiased bicubic (Keys, a = -0.5) by factor */
    LGD_OPERATOR_MASK = 2,         /**< y = mask * x elementwise */
    LGD_OPERATOR_BLUR = 3          /**< separable Gaussian blur, reflect padding */
} lgd_operator_kind;
LGD_ENUM_32_(lgd_operator_kind);

/** A linear operator on images [channels][height][width] (read during the call that
 *  takes it; the first published layout is today's). The fields a kind does not use are
 *  ignored. (Since 0.5.0.) */
typedef struct lgd_operator_options {
    uint32_t struct_size;     /**< sizeof(lgd_operator_options) */
    lgd_operator_kind kind;   /**< default LGD_OPERATOR_AVG_POOL */
    int64_t channels;         /**< image layout, each >= 1 and <= INT32_MAX, with */
    int64_t height;           /**<   channels * height * width the row length dim; */
    int64_t width;            /**<   required (default 0) */
    int32_t factor;           /**< AVG_POOL, BICUBIC_DOWN: >= 1, dividing height and
                                   width; default 2 */
    float blur_sigma;         /**< BLUR: standard deviation in pixels, finite and > 0;
                                   default 1 */
    int32_t blur_radius;      /**< BLUR: taps each side, 1 to 4096, or 0 (default) for
                                   ceil(3 blur_sigma), which must then be <= 4096 */
    /** MASK: dim finite values laid out like x, [channels][height][width] (a mask
     *  shared by the channels is repeated per channel); copied. */
    const float *mask;
} lgd_operator_options;

#define LGD_OPERATOR_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_operator_options, LGD_OPERATOR_AVG_POOL, 0, 0, 0, 2, 1.0f, 0, NULL)
/** Sets *options to LGD_OPERATOR_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_operator_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_operator_options) (the first published layout). Any thread.
 *  (Since 0.5.0.) */
LGD_API lgd_status lgd_operator_options_init(lgd_operator_options *options,
                                             uint32_t struct_size);

/**
 * Checks an operator and gives its sizes: *out_dim = channels * height * width (the
 * length of x) and *out_m (the length of y = H x: dim / factor^2 for AVG_POOL and
 * BICUBIC_DOWN, dim for MASK and BLUR). Either output may be NULL; both are written
 * only on success. Statuses: LGD_ERR_INVALID_ARGUMENT (options NULL or a bad
 * struct_size; kind not an lgd_operator_kind; channels, height or width < 1 or above
 * INT32_MAX; factor < 1 or not dividing height and width; blur_sigma not finite and
 * > 0; blur_radius outside [0, 4096] or an automatic radius above 4096; mask NULL for
 * MASK; dim * sizeof(float) overflowing int64). The mask's values, and whether the
 * tables of H fit (int32 indices: at most 2^31 - 1 taps per axis), are checked by
 * lgd_operator_apply() and lgd_loss_create_operator(), not here. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_operator_dims(lgd_context *context, const lgd_operator_options *options,
                                     int64_t *out_dim, int64_t *out_m);

/**
 * Applies H (adjoint = 0) or its transpose H^T (adjoint = 1) to every row of x:
 * out = H x with x rows of dim and out rows of m values, or out = H^T x with x rows
 * of m and out rows of dim (lgd_operator_dims()). x and out may have any shape: x
 * holds a whole number of rows (numel a positive multiple of the input length, e.g.
 * [batch][channels][height][width] or [batch][dim]) and out exactly as many rows of
 * the output length. For making measurements y = H x (add the noise yourself) with the
 * same H that lgd_loss_create_operator() uses, and for H^T y (a back-projection).
 * x and out may be the same tensor (when m = dim), but must not otherwise overlap.
 * Every output is a sum of float products accumulated in double in a fixed order, so
 * the result does not depend on the thread count (the CUDA kernels sum in the same
 * order). The operator's tables are built on each call (O(height + width) work for
 * AVG_POOL and BICUBIC_DOWN, O((height + width) * radius) for BLUR) and freed before it
 * returns. Statuses: those of lgd_operator_dims(), and LGD_ERR_INVALID_ARGUMENT
 * (x or out NULL or of another context, adjoint not 0 or 1, a non-finite mask value),
 * LGD_ERR_SHAPE_MISMATCH (x's numel not a multiple of the input length, out's numel
 * not the rows times the output length), LGD_ERR_UNSUPPORTED (the backend module has
 * no operator kernels), LGD_ERR_OUT_OF_MEMORY (also tables of H beyond 2^31 - 1 taps
 * per axis), LGD_ERR_INTERNAL on a backend failure. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_operator_apply(lgd_context *context, const lgd_operator_options *options,
                                      int32_t adjoint, const lgd_tensor *x, lgd_tensor *out);

/**
 * The inverse-problem loss l(x) = |y_t - H x|^2 / (2 s2) with H the operator of
 * options (matrix-free: no dense H is formed), gradient H^T (H x - y_t) / s2. dim (the
 * loss's) is channels * height * width; y is [target_rows][m] (finite; copied) with
 * target_rows 1 (shared) or the batch at evaluation (row t for sample t, for all its
 * draws; another batch fails that evaluation with LGD_ERR_SHAPE_MISMATCH), as
 * lgd_loss_create_linear(). s2 is the noise variance s^2 (not s: compare
 * lgd_loss_create_linear()'s noise_sigma), finite and > 0 with 1 / s2 finite in float.
 * The values equal lgd_loss_create_linear()'s with the dense matrix of H and
 * noise_sigma = sqrt(s2) up to float rounding. For the paper's s^2 factor on the
 * guidance see the top of this file. Statuses: those of lgd_operator_dims() (options
 * NULL included), LGD_ERR_INVALID_ARGUMENT (context, out_loss or y NULL, target_rows
 * < 1, s2 out of range, a non-finite y or mask value), LGD_ERR_UNSUPPORTED (the
 * backend module has no operator or loss kernels), LGD_ERR_OUT_OF_MEMORY (also
 * target_rows * m too large, or tables of H beyond 2^31 - 1 taps per axis),
 * LGD_ERR_INTERNAL on a backend failure. (Since 0.5.0.)
 */
LGD_API lgd_status lgd_loss_create_operator(lgd_context *context,
                                            const lgd_operator_options *options,
                                            const float *y, int64_t target_rows, float s2,
                                            lgd_loss **out_loss);

#ifdef __cplusplus
}
#endif
#endif
