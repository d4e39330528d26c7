/*
 * guidance_internal.h - what the sampler uses of the guidance: references, sizes and
 * the guided denoiser on raw backend memory.
 */
#ifndef LGD_GUIDANCE_INTERNAL_H
#define LGD_GUIDANCE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

lgd_guidance *lgd_guidance_retain(lgd_guidance *g);
void lgd_guidance_release(lgd_guidance *g);
lgd_context *lgd_guidance_context(const lgd_guidance *g);
int64_t lgd_guidance_dim(const lgd_guidance *g);
/* Guided denoiser on raw backend memory: out = xhat + lambda g. */
lgd_status lgd_guidance_denoise_raw(lgd_guidance *g, const float *x, float sigma, size_t batch,
                                    int32_t step, uint64_t first_row, float *out,
                                    lgd_guidance_report *report);

/* Checks a caller's report before a call does any work: a usable struct_size, and
 * per-row arrays with room for `batch` rows; only the bytes struct_size covers are
 * read. fn names the public function the caller called. (guidance_report.c) */
lgd_status lgd_guidance_check_report(lgd_context *ctx, const char *fn,
                                     const lgd_guidance_report *rep, int64_t batch);

#endif
