/*
 * sampler_grid.h - the noise-level grid a sampler steps through, from its options.
 */
#ifndef LGD_SAMPLER_GRID_H
#define LGD_SAMPLER_GRID_H

#include <stdint.h>

#include "core/internal.h"

/* Validates the grid options of `o` (schedule, steps, the schedule's parameters, a
 * USER array) and builds the decreasing grid of steps + 1 noise levels ending in 0
 * into a new host array *out_sigmas (freed by the caller), with *out_steps. At most
 * max_steps steps. On failure nothing is allocated and the message names
 * lgd_sampler_create and the option at fault. */
lgd_status lgd_sampler_grid(lgd_context *ctx, const lgd_sampler_options *o, int32_t max_steps,
                            float **out_sigmas, int32_t *out_steps);

#endif
