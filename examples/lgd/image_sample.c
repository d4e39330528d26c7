/*
 * image_sample.c - the image experiments' sampling of many rows in batches, a sampler
 * built per batch (its loss's targets or labels are those rows'), rerun row by row when a
 * batch diverges (image.h); and the samplers' options.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

void img_sampler_ddim(lgd_sampler_options *so, const img_models *m, int32_t steps, float eta)
{
    lgd_sampler_options_init(so, sizeof *so);
    so->kind = LGD_SAMPLER_DDIM;
    so->eta = eta;
    so->steps = steps;
    so->schedule = LGD_SCHEDULE_KARRAS;
    so->sigma_min = m->sigma_min;
    so->sigma_max = m->sigma_max;
    so->rho = 7.0f;
}

void img_sampler_heun(lgd_sampler_options *so, const img_models *m, int32_t steps, float churn,
                      float tmin, float tmax, float noise)
{
    lgd_sampler_options_init(so, sizeof *so);
    so->kind = LGD_SAMPLER_HEUN;
    so->steps = steps;
    so->schedule = LGD_SCHEDULE_KARRAS;
    so->sigma_min = m->sigma_min;
    so->sigma_max = m->sigma_max;
    so->rho = 7.0f;
    so->s_churn = churn;
    so->s_tmin = tmin;
    so->s_tmax = tmax;
    so->s_noise = noise;
}

/* Row by row after a batch diverged: each row alone (rows are keyed by their index, so
 * a row alone is the same sample as in the batch); the rows that fail are marked. */
static int rerun_rows(const char *cmd, lgd_context *ctx, img_build_fn build, void *user,
                      int64_t first, int64_t rows, uint64_t seed, uint64_t row_base,
                      float *out, unsigned char *failed)
{
    lgd_tensor *x1 = NULL;
    if (TOOL_CHECK(cmd, ctx, lgd_tensor_create_2d(ctx, 1, IMG_DIM, &x1)))
        return 1;
    for (int64_t r = first; r < first + rows; r++) {
        lgd_sampler *s = NULL;
        if (build(user, r, 1, &s)) {
            lgd_tensor_destroy(x1);
            return 1;
        }
        lgd_context_clear_error(ctx);
        lgd_status st = lgd_sampler_run(s, x1, seed, row_base + (uint64_t)r, NULL, NULL);
        lgd_sampler_destroy(s);
        if (st == LGD_ERR_NON_FINITE) {
            failed[r] = 1;
            for (int j = 0; j < IMG_DIM; j++)
                out[r * IMG_DIM + j] = NAN;
        } else if (TOOL_CHECK(cmd, ctx, st) ||
                   TOOL_CHECK(cmd, ctx, lgd_tensor_download(x1, out + r * IMG_DIM, IMG_DIM))) {
            lgd_tensor_destroy(x1);
            return 1;
        }
    }
    lgd_tensor_destroy(x1);
    return 0;
}

int img_sample(const char *cmd, lgd_context *ctx, img_build_fn build, void *user, int64_t rows,
               int64_t batch, uint64_t seed, uint64_t row_base, progress *pr, double units,
               const char *detail, float *out, unsigned char *failed)
{
    memset(failed, 0, (size_t)rows);
    for (int64_t first = 0; first < rows; first += batch) {
        int64_t nb = rows - first < batch ? rows - first : batch;
        lgd_sampler *s = NULL;
        lgd_tensor *x = NULL;
        progress_run rp = { pr, units * (double)nb / (double)rows, "" };
        snprintf(rp.detail, sizeof rp.detail, "%s", detail);
        if (build(user, first, nb, &s))
            return 1;
        if (TOOL_CHECK(cmd, ctx, lgd_tensor_create_2d(ctx, nb, IMG_DIM, &x))) {
            lgd_sampler_destroy(s);
            return 1;
        }
        lgd_context_clear_error(ctx);
        lgd_status st = lgd_sampler_run(s, x, seed, row_base + (uint64_t)first,
                                        progress_on_step, &rp);
        lgd_sampler_destroy(s);
        int bad = 0;
        if (st == LGD_OK) {
            bad = TOOL_CHECK(cmd, ctx, lgd_tensor_download(x, out + first * IMG_DIM,
                                                           nb * IMG_DIM));
        } else if (st == LGD_ERR_NON_FINITE) {
            fprintf(stderr,
                    "lgd %s: note: %s (seed %" PRIu64 ", rows %" PRId64 "..%" PRId64
                    ") diverged: %s; rerunning the rows one at a time\n",
                    cmd, detail, seed, first, first + nb - 1, lgd_context_last_error(ctx));
            bad = rerun_rows(cmd, ctx, build, user, first, nb, seed, row_base, out, failed);
        } else {
            bad = TOOL_CHECK(cmd, ctx, st);
        }
        lgd_tensor_destroy(x);
        if (bad)
            return 1;
        progress_advance(pr, rp.units);
    }
    return 0;
}
