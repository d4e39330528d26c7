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

#define LGD_TRAJECTORY_LAYOUT_INIT LGD_STRUCT_INIT_(lgd_trajectory_layout, 0, 2, 0, 1, 1.0f)
LGD_API lgd_status lgd_trajectory_layout_init(lgd_trajectory_layout *layout, uint32_t struct_size);

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

#define LGD_OBSTACLE_OPTIONS_INIT LGD_STRUCT_INIT_(lgd_obstacle_options, 50.0f, 100.0f, 1.0f)
LGD_API lgd_status lgd_obstacle_options_init(lgd_obstacle_options *options, uint32_t struct_size);

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
 */
typedef struct lgd_trajectory_prior_options {
    uint32_t struct_size;
    int32_t frames;      /**< T, default 64 */
    int32_t headings;    /**< initial headings, evenly spaced, default 8 */
    int32_t turns;       /**< turn rates per heading (1 or more), default 3 */
    float max_turn;      /**< largest total heading change over the clip, radians, default pi/2 */
    float speed;         /**< mean speed, normalised units per frame, default 1 */
    float gp_std;        /**< std of the smooth velocity variation, default 0.3 */
    float gp_length;     /**< its length scale in frames, default 10 */
    float jitter;        /**< white-noise variance on the diagonal, default 1e-4 */
} lgd_trajectory_prior_options;

#define LGD_TRAJECTORY_PRIOR_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_trajectory_prior_options, 64, 8, 3, 1.5707963267948966f, 1.0f, \
        0.3f, 10.0f, 1e-4f)
LGD_API lgd_status lgd_trajectory_prior_options_init(lgd_trajectory_prior_options *options, uint32_t struct_size);

/** Creates the trajectory prior as an exact Gaussian mixture (lgd_model_create_gmm with
 *  full covariances) of dim 2 * frames and headings * turns components. */
LGD_API lgd_status lgd_model_create_trajectory_prior(lgd_context *context,
                                                     const lgd_trajectory_prior_options *options,
                                                     lgd_model **out_model);

#ifdef __cplusplus
}
#endif

#endif
