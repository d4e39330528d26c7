/*
 * mixture_sampling.c - part 2 of lgd mixture (Fig. 6, App. B.1): sampling with every
 * method (unguided, exact, exact-IS, DPS, LGD-MC) for every seed, the same sampler,
 * schedule and score step rule at scale 1 for all; per run and per paper-protocol block
 * the mean, std and Gaussian KL to the target; every sample in samples.csv.
 *
 * Exact guidance adds the exact g to the mixture's score, which gives the score of
 * N0_sigma itself: sampling with exact guidance is unguided sampling of the 1-component
 * model N(-1, 0.2^2).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mixture.h"
#include "sample_stats.h"
#include "tool_util.h"

void mix_method_free(mix_method *m)
{
    lgd_sampler_destroy(m->sampler);
    lgd_guidance_destroy(m->guidance);
    free(m->run_mean);
    free(m->run_std);
    free(m->run_kl);
    free(m->run_sec);
    free(m->blk_mean);
    free(m->blk_std);
    free(m->blk_kl);
    free(m->first);
}

/* Creates the guidance and sampler of m and its result arrays. */
int mix_method_setup(const mix_config *cfg, mix_problem *pb, mix_method *m, int64_t blocks)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->n > 0)
        go.n_samples = m->n;
    /* Score step rule at scale 1: the guided score is score + g (Bayes-consistent). */
    go.step_rule = LGD_STEP_SCORE;
    go.scale = 1.0f;
    go.seed = cfg->seed;
    if (CK(ctx, lgd_guidance_create(ctx, m->on_target ? pb->target : pb->mix,
                                    m->kind == LGD_GUIDANCE_NONE ? NULL : pb->loss, &go,
                                    &m->guidance)))
        return 1;
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = cfg->sampler;
    so.steps = cfg->steps;
    so.schedule = LGD_SCHEDULE_KARRAS;
    so.sigma_max = 80.0f; /* the paper's largest sigma in Fig. 4 */
    so.sigma_min = 0.002f;
    so.rho = 7.0f;
    so.eta = cfg->eta;
    if (CK(ctx, lgd_sampler_create(m->guidance, &so, &m->sampler)))
        return 1;
    size_t ns = (size_t)cfg->seeds, nb = (size_t)cfg->seeds * (size_t)(blocks ? blocks : 1);
    m->run_mean = malloc(ns * sizeof(double));
    m->run_std = malloc(ns * sizeof(double));
    m->run_kl = malloc(ns * sizeof(double));
    m->run_sec = malloc(ns * sizeof(double));
    m->blk_mean = malloc(nb * sizeof(double));
    m->blk_std = malloc(nb * sizeof(double));
    m->blk_kl = malloc(nb * sizeof(double));
    m->first = malloc((size_t)cfg->samples * sizeof(float));
    if (!m->run_mean || !m->run_std || !m->run_kl || !m->run_sec || !m->blk_mean ||
        !m->blk_std || !m->blk_kl || !m->first) {
        return tool_out_of_memory(CMD);
    }
    return 0;
}

/* Fills ms[] in the order unguided, exact, exact-IS, DPS (index MIX_METHOD_DPS), then
 * LGD-MC for each n of --n. */
void mix_build_methods(const mix_config *cfg, mix_method *ms, int *count)
{
    int k = 0;
    memset(ms, 0, (size_t)(4 + cfg->nmc) * sizeof *ms);
    snprintf(ms[k].name, sizeof ms[k].name, "unguided");
    snprintf(ms[k].key, sizeof ms[k].key, "unguided");
    ms[k].kind = LGD_GUIDANCE_NONE;
    ms[k].color = C_OTHER;
    ms[k++].cost = 1.0;
    snprintf(ms[k].name, sizeof ms[k].name, "exact");
    snprintf(ms[k].key, sizeof ms[k].key, "exact");
    ms[k].kind = LGD_GUIDANCE_NONE;
    ms[k].on_target = 1;
    ms[k].color = C_EXACT;
    ms[k++].cost = 1.0;
    snprintf(ms[k].name, sizeof ms[k].name, "exact-IS n=%d", EXACT_IS_DRAWS);
    snprintf(ms[k].key, sizeof ms[k].key, "exact_is_n%d", EXACT_IS_DRAWS);
    ms[k].kind = LGD_GUIDANCE_EXACT;
    ms[k].n = EXACT_IS_DRAWS;
    ms[k].color = C_IS;
    ms[k++].cost = 1.0 + 1.4 * EXACT_IS_DRAWS;
    snprintf(ms[k].name, sizeof ms[k].name, "DPS");
    snprintf(ms[k].key, sizeof ms[k].key, "dps");
    ms[k].kind = LGD_GUIDANCE_DPS;
    ms[k].n = 1;
    ms[k].color = C_DPS;
    ms[k++].cost = 3.0;
    for (int j = 0; j < cfg->nmc; j++) {
        snprintf(ms[k].name, sizeof ms[k].name, "LGD-MC n=%d", (int)cfg->mc[j]);
        snprintf(ms[k].key, sizeof ms[k].key, "mc_n%d", (int)cfg->mc[j]);
        ms[k].kind = LGD_GUIDANCE_MC;
        ms[k].n = cfg->mc[j];
        ms[k].color = C_MC;
        ms[k++].cost = 3.0 + cfg->mc[j];
    }
    *count = k;
}

/* Statistics of run si of m from its samples host[cfg->samples]: the whole run and its
 * paper-protocol blocks. */
static void run_statistics(const mix_config *cfg, mix_method *m, int32_t si, const float *host,
                           int64_t blocks)
{
    const double m0 = mix_means[0], s0 = mix_std;
    stats_mean_std(host, cfg->samples, &m->run_mean[si], &m->run_std[si]);
    m->run_kl[si] = stats_kl_gauss(m0, s0, m->run_mean[si], m->run_std[si]);
    for (int64_t b = 0; b < blocks; b++) {
        size_t j = (size_t)si * (size_t)blocks + (size_t)b;
        stats_mean_std(host + b * cfg->paper_samples, cfg->paper_samples, &m->blk_mean[j],
                       &m->blk_std[j]);
        m->blk_kl[j] = stats_kl_gauss(m0, s0, m->blk_mean[j], m->blk_std[j]);
    }
}

/* Run si (seed cfg->seed + si) of method m into x and host; its time and statistics, and
 * its samples appended to samples.csv (f). */
static int run_one(const mix_config *cfg, mix_problem *pb, mix_method *m, int32_t si,
                   int64_t blocks, lgd_tensor *x, float *host, FILE *f, progress *pr)
{
    lgd_context *ctx = pb->ctx;
    const lgd_progress_fn on_step = progress_on_step;
    uint64_t seed = cfg->seed + (uint64_t)si;
    progress_run rp = { pr, m->cost * cfg->steps, "" };
    snprintf(rp.detail, sizeof rp.detail, "sampling: %.31s, seed %" PRIu64 " (%d/%d)", m->name,
             seed, (int)si + 1, (int)cfg->seeds);
    lgd_guidance_set_seed(m->guidance, seed);
    double t0 = tool_now_ms();
    if (CK(ctx, lgd_sampler_run(m->sampler, x, seed, 0, on_step, &rp)) ||
        CK(ctx, lgd_context_synchronize(ctx)))
        return 1;
    m->run_sec[si] = (tool_now_ms() - t0) / 1e3;
    progress_advance(pr, rp.units);
    if (CK(ctx, lgd_tensor_download(x, host, (size_t)cfg->samples)))
        return 1;
    run_statistics(cfg, m, si, host, blocks);
    if (si == 0)
        memcpy(m->first, host, (size_t)cfg->samples * sizeof *host);
    for (int64_t i = 0; i < cfg->samples; i++)
        fprintf(f, "%s,%" PRIu64 ",%.9g\n", m->key, seed, (double)host[i]);
    return 0;
}

int mix_run_sampling(const mix_config *cfg, mix_problem *pb, mix_method *ms, int nm,
                     int64_t blocks, progress *pr)
{
    lgd_context *ctx = pb->ctx;
    int rc = 1;
    tool_file out;
    lgd_tensor *x = NULL;
    float *host = malloc((size_t)cfg->samples * sizeof *host);
    if (tool_file_open(&out, CMD, cfg->out, "samples.csv", NULL))
        goto done;
    if (!host) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (CK(ctx, lgd_tensor_create_2d(ctx, cfg->samples, 1, &x)))
        goto done;
    fprintf(out.f, "method,seed,value\n");
    for (int32_t si = 0; si < cfg->seeds; si++)
        for (int k = 0; k < nm; k++)
            if (run_one(cfg, pb, &ms[k], si, blocks, x, host, out.f, pr))
                goto done;
    rc = 0;
done:
    if (out.f && tool_file_close(&out))
        rc = 1;
    lgd_tensor_destroy(x);
    free(host);
    return rc;
}
