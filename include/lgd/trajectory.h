/*
 * lgd/trajectory.h - the paper's controllable-trajectory experiment (Sec. 6.3):
 * a multimodal trajectory prior and the path-following and obstacle-avoidance losses,
 * on root trajectories laid out in a sample as lgd_trajectory_layout says.
 *
 * Part of liblgd; included by <lgd/lgd.h>. Moved here from model.h and loss.h in
 * 0.3.0 (the functions are unchanged).
 */
#ifndef LGD_TRAJECTORY_H
#define LGD_TRAJECTORY_H

#include "common.h"
#include "loss.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the root trajectory inside a sample ---- */

/**
 * Where a trajectory's root lives in a sample of `dim` floats: frame t's root is the
 * pair (x, y) at x[root_offset + t * frame_stride + {0, 1}]. With `velocities` (the
 * default) those are root velocities and the positions are their running sum,
 * p_t = velocity_scale * sum_{s <= t} v_s, starting at the origin (as a motion model's
 * root is integrated); otherwise they are the positions themselves. The frames must
 * fit: root_offset + (frames - 1) * frame_stride + 2 <= dim. Read during the create
 * call. (Since 0.1.0; in loss.h before 0.3.0.)
 */
typedef struct lgd_trajectory_layout {
    uint32_t struct_size;    /**< sizeof(lgd_trajectory_layout) */
    int64_t frames;          /**< T >= 1 (required; 0 in the defaults) */
    int64_t frame_stride;    /**< floats from one frame to the next, >= 2 (default 2) */
    int64_t root_offset;     /**< index of frame 0's root x, >= 0 (default 0) */
    int32_t velocities;      /**< 1 (default): velocities, integrated; 0: positions */
    float velocity_scale;    /**< finite, default 1 */
} lgd_trajectory_layout;

#define LGD_TRAJECTORY_LAYOUT_INIT LGD_STRUCT_INIT_(lgd_trajectory_layout, 0, 2, 0, 1, 1.0f)
/** Sets *layout to LGD_TRAJECTORY_LAYOUT_INIT, writing exactly struct_size bytes
 *  (lgd_trajectory_layout_init(&l, sizeof l); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when layout is NULL or struct_size is below
 *  sizeof(lgd_trajectory_layout) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_trajectory_layout_init(lgd_trajectory_layout *layout, uint32_t struct_size);

/**
 * Path following (the paper's Eq. 14): l(x) = sum_t |y_t - p_t|^2 with p_t the root
 * position of frame t. path is [target_rows][frames][2] (copied), target_rows 1 or the
 * batch at evaluation (another batch fails that evaluation with
 * LGD_ERR_SHAPE_MISMATCH); finite. The paper's "Objective" is this loss divided by the
 * frames. layout is required (not NULL). Statuses: LGD_ERR_INVALID_ARGUMENT (context,
 * layout, path or out_loss NULL; a bad layout struct_size; dim <= 0; a layout field
 * out of range; target_rows < 1; a non-finite path entry), LGD_ERR_SHAPE_MISMATCH (the
 * frames do not fit in dim), LGD_ERR_UNSUPPORTED (the backend module has no trajectory
 * kernels), LGD_ERR_OUT_OF_MEMORY, and LGD_ERR_INTERNAL on a backend failure.
 * (Since 0.1.0; in loss.h before 0.3.0.)
 */
LGD_API lgd_status lgd_loss_create_path(lgd_context *context, int64_t dim,
                                        const lgd_trajectory_layout *layout, const float *path,
                                        int64_t target_rows, lgd_loss **out_loss);

/** Options of lgd_loss_create_obstacle_avoidance(); the defaults are the paper's Eq. 20.
 *  All finite. (Since 0.1.0; in loss.h before 0.3.0.) */
typedef struct lgd_obstacle_options {
    uint32_t struct_size;    /**< sizeof(lgd_obstacle_options) */
    float sharpness;         /**< > 0, default 50 */
    float obstacle_weight;   /**< >= 0, default 100 */
    float goal_weight;       /**< >= 0, default 1 */
} lgd_obstacle_options;

#define LGD_OBSTACLE_OPTIONS_INIT LGD_STRUCT_INIT_(lgd_obstacle_options, 50.0f, 100.0f, 1.0f)
/** Sets *options to LGD_OBSTACLE_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_obstacle_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_obstacle_options) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_obstacle_options_init(lgd_obstacle_options *options, uint32_t struct_size);

/**
 * Obstacle avoidance (the paper's Eq. 15 with the collision term of Eq. 20):
 *   l(x) = goal_weight |g - p_{T-1}|^2
 *        + sum_t sum_o obstacle_weight sigmoid(-(|p_t - c_o|^2 - r_o^2) sharpness).
 * goal is [target_rows][2] or NULL (no goal term); obstacles is [count][3] (centre x,
 * centre y, radius > 0), count >= 0 (the paper: radius 1); at least a goal or one
 * obstacle. All finite and copied. layout and target_rows as lgd_loss_create_path().
 * options NULL = the paper's constants. Statuses: LGD_ERR_INVALID_ARGUMENT (as
 * lgd_loss_create_path(), and: a bad options struct_size, an option out of range,
 * count < 0, obstacles NULL with count > 0, neither goal nor obstacles, a non-finite
 * entry, a radius <= 0), LGD_ERR_SHAPE_MISMATCH, LGD_ERR_UNSUPPORTED,
 * LGD_ERR_OUT_OF_MEMORY and LGD_ERR_INTERNAL as lgd_loss_create_path().
 * (Since 0.1.0; in loss.h before 0.3.0.)
 */
LGD_API lgd_status lgd_loss_create_obstacle_avoidance(lgd_context *context, int64_t dim,
                                                      const lgd_trajectory_layout *layout,
                                                      const float *goal, int64_t target_rows,
                                                      const float *obstacles, int64_t count,
                                                      const lgd_obstacle_options *options,
                                                      lgd_loss **out_loss);

/* ---- the trajectory prior ---- */

/**
 * Options of lgd_model_create_trajectory_prior(): a multimodal prior over a root
 * trajectory's normalised 2-D velocities, laid out [frames][2] (vx, vy per frame, the
 * layout LGD_TRAJECTORY_LAYOUT_INIT describes). Component (h, k) walks at `speed` with a
 * heading that starts at 2 pi h / headings and turns at a constant rate to
 * theta_k = -max_turn + 2 max_turn k / (turns - 1) over the clip (straight when turns
 * is 1); around that mean, each velocity axis varies as a Gaussian process with a
 * squared-exponential kernel gp_std^2 exp(-(t - s)^2 / (2 gp_length^2)) plus jitter on
 * the diagonal. So many directions and smoothly curved paths are plausible and the
 * mixture (headings x turns equally weighted components) is strongly multimodal.
 * (Since 0.1.0; in model.h before 0.3.0.)
 */
typedef struct lgd_trajectory_prior_options {
    uint32_t struct_size; /**< sizeof(lgd_trajectory_prior_options) */
    int32_t frames;      /**< T, 1 to 4096, default 64 */
    int32_t headings;    /**< initial headings >= 1, evenly spaced, default 8 */
    int32_t turns;       /**< turn rates per heading (1 or more), default 3;
                              headings * turns <= 4096 */
    float max_turn;      /**< largest total heading change over the clip, radians, finite,
                              default pi/2 */
    float speed;         /**< mean speed, normalised units per frame, finite, default 1 */
    float gp_std;        /**< std of the smooth velocity variation, >= 0, default 0.3 */
    float gp_length;     /**< its length scale in frames, > 0, default 10 */
    float jitter;        /**< white-noise variance on the diagonal, > 0, default 1e-4 */
} lgd_trajectory_prior_options;

#define LGD_TRAJECTORY_PRIOR_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_trajectory_prior_options, 64, 8, 3, 1.5707963267948966f, 1.0f, \
        0.3f, 10.0f, 1e-4f)
/** Sets *options to LGD_TRAJECTORY_PRIOR_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_trajectory_prior_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_trajectory_prior_options) (the first published layout). Any thread.
 *  (Since 0.1.0; signature changed in 0.3.0: takes struct_size and returns lgd_status,
 *  was void.) */
LGD_API lgd_status lgd_trajectory_prior_options_init(lgd_trajectory_prior_options *options, uint32_t struct_size);

/** Creates the trajectory prior as an exact Gaussian mixture (lgd_model_create_gmm with
 *  full covariances) of dim 2 * frames and headings * turns components. options NULL =
 *  defaults. Statuses: LGD_ERR_INVALID_ARGUMENT (context or out_model NULL, a bad
 *  struct_size, an option out of range), LGD_ERR_OUT_OF_MEMORY, and those of
 *  lgd_model_create_gmm() (LGD_ERR_UNSUPPORTED, LGD_ERR_INTERNAL). (Since 0.1.0; in
 *  model.h before 0.3.0.) */
LGD_API lgd_status lgd_model_create_trajectory_prior(lgd_context *context,
                                                     const lgd_trajectory_prior_options *options,
                                                     lgd_model **out_model);

#ifdef __cplusplus
}
#endif

#endif
