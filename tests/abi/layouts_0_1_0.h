/*
 * layouts_0_1_0.h - the option structs exactly as liblgd 0.1.0 published them
 * (include/lgd/ at commit 99e32a9^; lgd_context_options as first landed, before
 * d4b847b), frozen under other names: a program built
 * against the oldest headers, as tests/test_abi_layouts.c plays it. Do not edit:
 * this file is the ABI promise. Generated from git history; field types are those of
 * 0.1.0 (the enums were int-sized, which common.h now asserts).
 */
#ifndef LGD_LAYOUTS_0_1_0_H
#define LGD_LAYOUTS_0_1_0_H

#include <lgd/lgd.h>

typedef struct lgd_v010_context_options {
    uint32_t struct_size;
    lgd_backend_kind backend;
    int32_t device_index;
    int32_t num_threads;
    lgd_log_fn log;
    void *log_user;
    lgd_log_level log_level;
    /* the first published layout ended here; cuda_module_path came in 0.1.0's
     * second landing (d4b847b), and is the library's oldest appended field */
} lgd_v010_context_options;

typedef struct lgd_v010_guidance_options {
    uint32_t struct_size;
    lgd_guidance_kind kind;
    int32_t n_samples;
    int32_t chunk_size;
    float sigma_data;
    lgd_radius_fn radius;
    void *radius_user;
    lgd_step_rule step_rule;
    float scale;
    float sigma_min_active;
    float sigma_max_active;
    uint64_t seed;
} lgd_v010_guidance_options;

typedef struct lgd_v010_guidance_report {
    uint32_t struct_size;
    float sigma;
    float mean_loss;
    float mean_ess;
    float min_ess;
    float mean_grad_norm;
    float mean_lambda;
    int32_t active;
} lgd_v010_guidance_report;

typedef struct lgd_v010_loss_callbacks {
    uint32_t struct_size;
    lgd_memory memory;
    int64_t dim;
    lgd_loss_fn eval;
    void (*destroy)(void *user);
    void *user;
} lgd_v010_loss_callbacks;

typedef struct lgd_v010_trajectory_layout {
    uint32_t struct_size;
    int64_t frames;
    int64_t frame_stride;
    int64_t root_offset;
    int32_t velocities;
    float velocity_scale;
} lgd_v010_trajectory_layout;

typedef struct lgd_v010_obstacle_options {
    uint32_t struct_size;
    float sharpness;
    float obstacle_weight;
    float goal_weight;
} lgd_v010_obstacle_options;

typedef struct lgd_v010_model_callbacks {
    uint32_t struct_size;
    lgd_memory memory;
    int64_t dim;
    int64_t cond_dim;
    lgd_denoise_fn denoise;
    lgd_vjp_fn vjp;
    void (*destroy)(void *user);
    void *user;
} lgd_v010_model_callbacks;

typedef struct lgd_v010_network_callbacks {
    uint32_t struct_size;
    lgd_memory memory;
    int64_t dim;
    int64_t cond_dim;
    lgd_network_forward_fn forward;
    lgd_network_vjp_fn vjp;
    void (*destroy)(void *user);
    void *user;
} lgd_v010_network_callbacks;

typedef struct lgd_v010_adapter_options {
    uint32_t struct_size;
    lgd_prediction prediction;
    lgd_time_input time_input;
    /** alphas_cumprod[num_timesteps] of the discrete VP schedule the network was
     *  trained with (copied). Required for LGD_TIME_DISCRETE*; values strictly
     *  decreasing in (0, 1). lgd_vp_alphas_cumprod() makes the usual ones. */
    const float *alphas_cumprod;
    int32_t num_timesteps;
    float sigma_data;
} lgd_v010_adapter_options;

typedef struct lgd_v010_trajectory_prior_options {
    uint32_t struct_size;
    int32_t frames;
    int32_t headings;
    int32_t turns;
    float max_turn;
    float speed;
    float gp_std;
    float gp_length;
    float jitter;
} lgd_v010_trajectory_prior_options;

typedef struct lgd_v010_sampler_options {
    uint32_t struct_size;
    lgd_sampler_kind kind;
    int32_t steps;
    lgd_schedule_kind schedule;
    float sigma_min;
    float sigma_max;
    float rho;
    float eta;
    float s_churn;
    float s_tmin;
    float s_tmax;
    float s_noise;
    int32_t vp_timesteps;
    float vp_beta_start;
    float vp_beta_end;
    const float *sigmas;
    int32_t n_sigmas;
} lgd_v010_sampler_options;

#endif
