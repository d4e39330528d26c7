/*
 * fuzz_api_ops.h - the operations of fuzz_api.c, by their code (the first byte of each
 * operation in the input; fuzz/README.md gives each one's arguments). Shared with the
 * seed encoder (fuzz_api_seeds.h).
 */
#ifndef LGD_FUZZ_API_OPS_H
#define LGD_FUZZ_API_OPS_H

enum {
    OP_TENSOR,        /* lgd_tensor_create */
    OP_TENSOR_WRAP,   /* lgd_tensor_wrap with a release callback */
    OP_TENSOR_DATA,   /* fill / upload / download / copy / getters / retain */
    OP_MODEL_GMM,     /* lgd_model_create_gmm */
    OP_MODEL_TRAJ,    /* lgd_model_create_trajectory_prior */
    OP_MODEL_CB,      /* lgd_model_create_callbacks */
    OP_MODEL_NETCB,   /* lgd_model_create_network_callbacks with adapter options */
    OP_MODEL_NET,     /* a small mlp file: lgd_network_load_memory, _create_from_network */
    OP_MODEL_CALL,    /* denoise / vjp / score / log_density / sample_posterior / time */
    OP_LOSS_SQ,       /* lgd_loss_create_squared_error */
    OP_LOSS_LINEAR,   /* lgd_loss_create_linear */
    OP_LOSS_LOGISTIC, /* lgd_loss_create_logistic */
    OP_LOSS_SUM,      /* lgd_loss_create_sum */
    OP_LOSS_PATH,     /* lgd_loss_create_path */
    OP_LOSS_OBSTACLE, /* lgd_loss_create_obstacle_avoidance */
    OP_LOSS_CB,       /* lgd_loss_create_callbacks (eval or eval_draws) */
    OP_LOSS_EVAL,     /* lgd_loss_eval */
    OP_GUIDANCE,      /* lgd_guidance_create / lgd_guidance_mc */
    OP_GUIDANCE_MISC, /* set_condition / set_seed / radius */
    OP_GUIDANCE_CALL, /* lgd_guidance_term / lgd_guidance_denoise with a report */
    OP_SAMPLER,       /* lgd_sampler_create */
    OP_SAMPLER_RUN,   /* init / start / step / run / run_from */
    OP_SAMPLER_MISC,  /* num_steps / sigmas / getters */
    OP_DESTROY,       /* destroy (or retain + destroy) a handle */
    OP_CANCEL,        /* lgd_context_cancel / lgd_context_reset_cancel */
    OP_SCHEDULE,      /* lgd_vp_alphas_cumprod / lgd_schedule_karras / lgd_schedule_vp */
    OP_INIT,          /* the *_init functions with fuzzed struct sizes */
    OP_CONTEXT_MISC,  /* getters, synchronize, memory usage */
    OP_COUNT
};

/* size codes (fz_api size()): the input's own dim and batch, small values, edges */
#define SZ_D 0       /* 0..95: the input's dim D */
#define SZ_B 96      /* 96..127: the input's batch B */
#define SZ_SMALL 128 /* 128 + k - 1: k in 1..64 */
#define SZ_EDGE 224  /* 224..255: an edge value (fz_edge_i64[code - 224]) */

#endif
