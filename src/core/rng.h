/*
 * rng.h - the library's random streams: what each Philox purpose key is for.
 *
 * The backend draws numbers for a (seed, purpose, step, row, draw) stream
 * (backend/backend.h, lgd_rng_stream) without knowing what they are used for; the
 * purposes are named here, once, for the layers that draw them. Numbers are part of
 * the reproducibility promise: never renumber or reuse one.
 */
#ifndef LGD_RNG_H
#define LGD_RNG_H

enum {
    LGD_RNG_INIT = 1,        /* sampling: initial noise x = sigma_max z */
    LGD_RNG_MC_DRAW = 2,     /* guidance: LGD-MC draws x_i = xhat + r eps_i */
    LGD_RNG_ANCESTRAL = 3,   /* sampling: DDIM(eta) / ancestral noise */
    LGD_RNG_CHURN = 4,       /* sampling: Heun churn noise */
    LGD_RNG_POSTERIOR = 5,   /* models: exact posterior draws, the normals */
    LGD_RNG_COMPONENT = 6    /* models: exact posterior draws, the mixture component */
};

#endif
