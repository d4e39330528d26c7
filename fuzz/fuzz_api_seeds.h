/*
 * fuzz_api_seeds.h - the seed inputs of fuzz_api (written by fuzz/make_seeds.c): op
 * sequences that build each kind of model and loss, guidance of each estimator and a
 * run of each sampler, in the byte format fuzz_api.c decodes (fuzz_api_ops.h; each
 * operation's arguments are listed in fuzz/README.md). FZ_API_TRACE=1 makes fuzz_api
 * print each call and its status: every seed's runs end in "ok".
 */
#ifndef LGD_FUZZ_API_SEEDS_H
#define LGD_FUZZ_API_SEEDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_api_ops.h"

/* sizes: the input's D and B, k (1..64) */
#define D_ SZ_D
#define B_ SZ_B
#define K_(k) (SZ_SMALL + (k) - 1)
/* float codes of fz_float(): 0 -> 0, 1 -> 1, 2 -> 0.5, 3 -> 2, 8 -> 80 */
#define F1 1
#define FHALF 2
/* prelude: D code, B code, context flags, destroy order */
#define PRELUDE(d, b, flags, order) (d) - 1, (b) - 1, (flags), (order)

/* tensors: slot 0 x [B][D], slot 1 [B] (loss values), slot 2 [B][D] (grad / out) */
#define XT(slot, k) OP_TENSOR, (slot), 2, B_, (k), F1
#define STD_TENSORS(k) XT(0, k), OP_TENSOR, 1, 1, B_, F1, XT(2, k)
#define EVAL(l) OP_LOSS_EVAL, (l), 0, 1, 2
/* guidance term into slot 2 with a full report of B rows (all four arrays) */
#define TERM(g) OP_GUIDANCE_CALL, (g), 1, 0, 2, 0xFF, F1, 0, K_(1) + 64, 0x64, 0x1E
#define DENOISE(g) OP_GUIDANCE_CALL, (g), 0, 0, 2, 0xFF, FHALF, 1, B_, 0

static const uint8_t fz_api_seed0[] = { /* GMM diagonal, squared error, LGD-MC, Euler */
    PRELUDE(2, 2, 0, 0), STD_TENSORS(D_),
    OP_MODEL_GMM, 0, D_, 1, 1, 0, 0, 0,
    OP_LOSS_SQ, 0, D_, K_(1), 1, 0,
    EVAL(0),
    OP_GUIDANCE, 0, 0, 0, 0x22, 3, 0, 0, 0, 0,
    TERM(0),
    OP_SAMPLER, 0, 0, 0x10, 3, 0, 0, 0,
    OP_SAMPLER_RUN, 0, 0, 3, 5, 0,
    OP_MODEL_CALL, 0, 0, 0, 2, 2, 0xFF, F1,
    OP_MODEL_CALL, 0, 3, 0, 1, 2, 0xFF, F1,
};

static const uint8_t fz_api_seed1[] = { /* GMM full, logistic, DPS, DDIM, init + steps */
    PRELUDE(3, 1, 1, 3), STD_TENSORS(D_),
    OP_TENSOR, 3, 3, B_, K_(2), D_, F1, /* [B][2][D]: posterior draws */
    OP_MODEL_GMM, 1, D_, 2, 0, 0, 0, 0,
    OP_LOSS_LOGISTIC, 1, D_, FHALF, 0,
    EVAL(1),
    OP_GUIDANCE, 1, 1, 1, 0x21, 0, 0, 0, 0, 0,
    DENOISE(1),
    OP_SAMPLER, 1, 1, 0x11, 4, 0, 8, FHALF, 0,
    OP_SAMPLER_RUN, 1, 0, 0, 9, K_(1) + 63,
    OP_SAMPLER_RUN, 1, 0, 2, 9, 2, 0,
    OP_SAMPLER_MISC, 1, 0,
    OP_SAMPLER_MISC, 1, 1,
    OP_MODEL_CALL, 1, 4, 0, 3, 2, 0xFF, F1, 3, 0,
};

static const uint8_t fz_api_seed2[] = { /* trajectory prior, path, obstacles, sum, Heun */
    PRELUDE(1, 2, 0, 5), STD_TENSORS(K_(8)),
    OP_MODEL_TRAJ, 2, 3, 1, 0, 0, 0,
    OP_LOSS_PATH, 2, K_(8), K_(1), 0, 0, 0, 1, 0, 0,
    OP_LOSS_OBSTACLE, 3, K_(8), K_(1), 0, 0, 0, 1, 0, 2, 0, 0,
    OP_LOSS_SUM, 4, 2, 2, 3,
    EVAL(2), EVAL(3), EVAL(4),
    OP_GUIDANCE, 2, 2, 4, 0x22, 5, 2, 0, 0, 0,
    TERM(2),
    OP_SAMPLER, 2, 2, 0x12, 2, 0, 16, 1, 0, 8, 1, 0,
    OP_SAMPLER_RUN, 2, 0, 3, 1, 0,
};

static const uint8_t fz_api_seed3[] = { /* callback model and loss, DPS, DPM++(2M) */
    PRELUDE(4, 3, 2, 0), STD_TENSORS(D_),
    OP_MODEL_CB, 3, D_, 0, 0, 0,
    OP_LOSS_CB, 5, D_, 0, 0, 0,
    OP_LOSS_CB, 4, D_, 2, 0, 0,
    EVAL(5), EVAL(4),
    OP_MODEL_CALL, 3, 1, 0, 2, 0, 0xFF, FHALF,
    OP_GUIDANCE, 0, 3, 5, 0x21, 0, 0, 0, 0, 0,
    DENOISE(0),
    OP_GUIDANCE, 1, 3, 4, 0x22, 7, 3, 0, 0, 0,
    TERM(1),
    OP_SAMPLER, 0, 0, 0x13, 5, 0, 0, 0,
    OP_SAMPLER_RUN, 0, 0, 3, 2, 0,
};

static const uint8_t fz_api_seed4[] = { /* GMM isotropic, linear loss, exact, user grid */
    PRELUDE(2, 2, 0, 0x81), STD_TENSORS(D_),
    OP_MODEL_GMM, 0, D_, 2, 2, 0, 0, 0,
    OP_LOSS_LINEAR, 0, D_, K_(1), K_(1), FHALF, 0, 0,
    EVAL(0),
    OP_GUIDANCE, 0, 0, 0, 0x23, 7, 0, 0, 0, 0,
    TERM(0),
    OP_SAMPLER, 0, 0, 0x10, 0, 3, 0, 0x87, 0,
    OP_SAMPLER_RUN, 0, 0, 3, 3, 0,
    OP_SAMPLER_MISC, 0, 0,
};

static const uint8_t fz_api_seed5[] = { /* network callbacks (EDM), squared error, run_from */
    PRELUDE(3, 2, 0, 2), STD_TENSORS(D_),
    OP_MODEL_NETCB, 1, D_, 0, 0, 0x13, 0, 0, 0,
    OP_LOSS_SQ, 1, D_, B_, 1, 0,
    OP_GUIDANCE, 1, 1, 1, 0x22, 3, 0, 0, 0, 0,
    OP_SAMPLER, 1, 1, 0x10, 5, 0, 0, 0,
    OP_SAMPLER_RUN, 1, 0, 4, 4, 1, 2,
    OP_MODEL_CALL, 1, 5, 0, 2, 2, 0xFF, FHALF,
};

static const uint8_t fz_api_seed6[] = { /* a network file as a model, MC, steps + report */
    PRELUDE(3, 2, 1, 4), STD_TENSORS(D_),
    OP_MODEL_NET, 2, 0, D_, 0,
    OP_LOSS_SQ, 2, D_, K_(1), 1, 0,
    OP_GUIDANCE, 2, 2, 2, 0x22, 3, 2, 0, 0, 0,
    OP_SAMPLER, 2, 2, 0x10, 4, 0, 0, 0,
    OP_SAMPLER_RUN, 2, 0, 0, 1, K_(1) + 63,
    OP_SAMPLER_RUN, 2, 0, 2, 1, 2, 0x64, 0x1E,
    OP_DESTROY, 5, 0,
    OP_SAMPLER_RUN, 2, 0, 2, 1, 0, 0,
};

static const uint8_t fz_api_seed7[] = { /* schedules, init functions, cancellation */
    PRELUDE(2, 1, 0, 0), STD_TENSORS(D_),
    OP_SCHEDULE, 0x11, 4, 3, 0,
    OP_SCHEDULE, 0x02, 3,
    OP_SCHEDULE, 0x80, 5, 9, 8, 10,
    OP_INIT, 0, 0, OP_INIT, 4, 0x90, OP_INIT, 6, 0x90, OP_INIT, 7, 0xA0,
    OP_MODEL_GMM, 0, D_, 1, 1, 0, 0, 0,
    OP_LOSS_SQ, 0, D_, K_(1), 1, 0,
    OP_GUIDANCE, 0, 0, 0, 0x22, 3, 0, 0, 0, 0,
    OP_SAMPLER, 0, 0, 0x10, 5, 0, 0, 0,
    OP_SAMPLER_RUN, 0, 0, 3, 1, 0xC9,
    OP_CANCEL, 0,
    OP_SAMPLER_RUN, 0, 0, 3, 1, 0x82,
    OP_CONTEXT_MISC, 0,
};

static const struct {
    const uint8_t *p;
    size_t n;
} fz_api_seeds[] = {
    { fz_api_seed0, sizeof fz_api_seed0 }, { fz_api_seed1, sizeof fz_api_seed1 },
    { fz_api_seed2, sizeof fz_api_seed2 }, { fz_api_seed3, sizeof fz_api_seed3 },
    { fz_api_seed4, sizeof fz_api_seed4 }, { fz_api_seed5, sizeof fz_api_seed5 },
    { fz_api_seed6, sizeof fz_api_seed6 }, { fz_api_seed7, sizeof fz_api_seed7 },
};
#define FZ_API_N_SEEDS (sizeof fz_api_seeds / sizeof fz_api_seeds[0])

static inline size_t fz_api_seed(int i, uint8_t *out, size_t cap)
{
    if (i < 0 || (size_t)i >= FZ_API_N_SEEDS || fz_api_seeds[i].n > cap)
        return 0;
    memcpy(out, fz_api_seeds[i].p, fz_api_seeds[i].n);
    return fz_api_seeds[i].n;
}

#endif
