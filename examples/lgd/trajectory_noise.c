/*
 * trajectory_noise.c - lgd trajectory --gradient-free: how noisy each estimator of the
 * guidance term g = grad_x log p_sigma(y | x) is, against its n -> infinity limit.
 *
 * At x = x0 + sigma z, x0 the straight walk at the prior's speed from the origin at
 * NOISE_HEADING degrees (it grazes layout A's obstacle: closest approach 0.78 from the
 * centre, radius 1) and z a fixed standard normal draw, every estimator computes g for
 * NOISE_ROWS copies of x; the copies are rows with their own draws, so they are
 * independent estimates. Against a reference g_ref, the table gives the relative RMS
 * error sqrt(mean_r |g_r - g_ref|^2) / |g_ref| (noise and bias together) and the
 * relative bias |mean_r g_r - g_ref| / |g_ref|, on three losses: path following (the
 * 20 degree path), layout A's smooth loss (Eq. 15 + 20) and its hard one.
 *
 * The references: on the smooth losses gradient LGD-MC and gradient-free LGD-MC have the
 * same limit (Gaussian integration by parts), taken as gradient LGD-MC with --noise-draws
 * draws (default 16384) averaged over the rows; on the hard loss only the gradient-free
 * estimator converges to grad log E[exp(-l)] (the gradient one misses the indicator's
 * jump on the obstacle's rim), so the reference is gradient-free LGD-MC with as many
 * draws averaged over the rows. Each reference is computed twice, with two seeds; their
 * relative difference (the "ref." column) says how far it can be trusted. DPS has no
 * draws: its error is all bias.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool_util.h"
#include "trajectory.h"

#define NOISE_ROWS 64
#define NOISE_HEADING 15.0
#define NOISE_NLOSS 3
static const char *const noise_loss_key[NOISE_NLOSS] = { "path", "smooth", "hard" };
static const char *const noise_task_key[NOISE_NLOSS] = { "path_20", "obstacle_A",
                                                         "obstacle_A_hard" };
#define NOISE_NSIGMA 4
static const double noise_sigmas[NOISE_NSIGMA] = { 2.0, 0.5, 0.1, 0.02 };

/* The estimators of the table: kind and draws (DPS: n = 1, no draws). */
#define NOISE_NEST 6
static const struct {
    const char *name;
    lgd_guidance_kind kind;
    int32_t n;
} noise_est[NOISE_NEST] = {
    { "DPS", LGD_GUIDANCE_DPS, 1 },
    { "LGD-MC n=10", LGD_GUIDANCE_MC, 10 },
    { "LGD-MC n=100", LGD_GUIDANCE_MC, 100 },
    { "GF n=100", LGD_GUIDANCE_MC_GRADIENT_FREE, 100 },
    { "GF n=1000", LGD_GUIDANCE_MC_GRADIENT_FREE, 1000 },
    { "GF n=10000", LGD_GUIDANCE_MC_GRADIENT_FREE, 10000 },
};

/* A standard normal draw from a splitmix64 stream (*state), by Box-Muller. */
static double normal_draw(uint64_t *state)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        u[i] = ((double)(z >> 11) + 0.5) * 0x1.0p-53; /* in (0, 1) */
    }
    return sqrt(-2.0 * log(u[0])) * cos(2.0 * PI * u[1]);
}

/* g of every row of x (NOISE_ROWS copies) with estimator (kind, n) on loss, into g
 * [NOISE_ROWS][DIM]; the batch mean of the effective sample size into *ess. */
static int estimate(traj_problem *pb, lgd_loss *loss, lgd_guidance_kind kind, int32_t n,
                    uint64_t seed, const lgd_tensor *x, float sigma, lgd_tensor *gt, float *g,
                    double *ess)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    go.n_samples = n;
    go.sigma_data = 1.0f;
    go.seed = seed;
    lgd_guidance *gd = NULL;
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    int bad = CK(ctx, lgd_guidance_create(ctx, pb->prior, loss, &go, &gd)) ||
              CK(ctx, lgd_guidance_term(gd, x, sigma, 0, 0, gt, NULL, &rep)) ||
              CK(ctx, lgd_tensor_download(gt, g, (size_t)NOISE_ROWS * DIM));
    *ess = rep.mean_ess;
    lgd_guidance_destroy(gd);
    return bad;
}

/* |a - b| over one row of DIM floats (b in double). */
static double dist(const float *a, const double *b)
{
    double s = 0.0;
    for (int j = 0; j < DIM; j++)
        s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return sqrt(s);
}

/* The row mean of g into mean [DIM]. */
static void row_mean(const float *g, double *mean)
{
    for (int j = 0; j < DIM; j++) {
        double s = 0.0;
        for (int r = 0; r < NOISE_ROWS; r++)
            s += g[r * DIM + j];
        mean[j] = s / NOISE_ROWS;
    }
}

/* One cell: the estimator's relative RMS error and bias against ref (|ref| = rn). */
static void cell_errors(const float *g, const double *ref, double rn, double *rms,
                        double *bias)
{
    double mean[DIM], s = 0.0, b = 0.0;
    for (int r = 0; r < NOISE_ROWS; r++) {
        double d = dist(g + r * DIM, ref);
        s += d * d;
    }
    row_mean(g, mean);
    for (int j = 0; j < DIM; j++)
        b += (mean[j] - ref[j]) * (mean[j] - ref[j]);
    *rms = sqrt(s / NOISE_ROWS) / rn;
    *bias = sqrt(b) / rn;
}

/* The table's cells, computed before anything is printed (the progress line is live). */
typedef struct noise_table {
    double ref_norm[NOISE_NLOSS][NOISE_NSIGMA], ref_spread[NOISE_NLOSS][NOISE_NSIGMA];
    double rms[NOISE_NLOSS][NOISE_NSIGMA][NOISE_NEST];
    double bias[NOISE_NLOSS][NOISE_NSIGMA][NOISE_NEST];
    double ess[NOISE_NLOSS][NOISE_NSIGMA][NOISE_NEST];
} noise_table;

/* The cells of loss li (its task t) at every sigma into nt. */
static int noise_cells(const traj_config *cfg, traj_problem *pb, const task *t, int li,
                       const float *z, lgd_tensor *x, lgd_tensor *gt, float *g, float *xs,
                       noise_table *nt, progress *pr)
{
    lgd_context *ctx = pb->ctx;
    const int hard = t->def->fam == FAM_HARD;
    const double a = NOISE_HEADING * PI / 180.0, u[2] = { cos(a), sin(a) };
    double ref[DIM], ref2[DIM];
    for (int si = 0; si < NOISE_NSIGMA; si++) {
        const double sigma = noise_sigmas[si];
        for (int r = 0; r < NOISE_ROWS; r++)
            for (int j = 0; j < DIM; j++)
                xs[r * DIM + j] = (float)(u[j % 2] + sigma * z[j]);
        if (CK(ctx, lgd_tensor_upload(x, xs, (size_t)NOISE_ROWS * DIM)))
            return 1;
        double ess;
        /* two references, from draws of other seeds than the estimates' */
        const lgd_guidance_kind rk = hard ? LGD_GUIDANCE_MC_GRADIENT_FREE : LGD_GUIDANCE_MC;
        if (estimate(pb, t->loss, rk, cfg->noise_draws, cfg->seed + 7, x, (float)sigma, gt, g,
                     &ess))
            return 1;
        row_mean(g, ref);
        if (estimate(pb, t->loss, rk, cfg->noise_draws, cfg->seed + 8, x, (float)sigma, gt, g,
                     &ess))
            return 1;
        row_mean(g, ref2);
        double rn = 0.0, d2 = 0.0;
        for (int j = 0; j < DIM; j++) {
            rn += ref[j] * ref[j];
            d2 += (ref[j] - ref2[j]) * (ref[j] - ref2[j]);
        }
        rn = sqrt(rn);
        nt->ref_norm[li][si] = rn;
        nt->ref_spread[li][si] = sqrt(d2) / rn;
        progress_advance(pr, 2.0 * cfg->noise_draws);
        for (int e = 0; e < NOISE_NEST; e++) {
            if (estimate(pb, t->loss, noise_est[e].kind, noise_est[e].n, cfg->seed, x,
                         (float)sigma, gt, g, &nt->ess[li][si][e]))
                return 1;
            progress_advance(pr, noise_est[e].n);
            cell_errors(g, ref, rn, &nt->rms[li][si][e], &nt->bias[li][si][e]);
        }
    }
    return 0;
}

/* The table on stdout and its rows into f. */
static void noise_print(const traj_config *cfg, const noise_table *nt, FILE *f)
{
    printf("Estimator noise (beyond the paper): g = grad_x log p_sigma(y | x) at x = x0 + "
           "sigma z, x0 the straight walk at %g degrees (it grazes layout A's obstacle), z a "
           "fixed normal draw; %d independent estimates per cell. Each cell: relative RMS "
           "error / relative bias, |g - g_ref| / |g_ref|. g_ref: on the smooth losses (path, "
           "smooth) gradient LGD-MC with n = %d, on the hard loss gradient-free LGD-MC with n "
           "= %d (the gradient estimators miss the indicator's jump), averaged over the "
           "estimates; ref. = |g_ref - g_ref'| / |g_ref| for a second reference from other "
           "draws (large: the reference is itself unconverged); GF = gradient-free LGD-MC\n",
           NOISE_HEADING, NOISE_ROWS, (int)cfg->noise_draws, (int)cfg->noise_draws);
    printf("%-6s %6s %10s %7s", "loss", "sigma", "|g_ref|", "ref.");
    for (int e = 0; e < NOISE_NEST; e++)
        printf(" %17s", noise_est[e].name);
    printf("\n");
    for (int li = 0; li < NOISE_NLOSS; li++)
        for (int si = 0; si < NOISE_NSIGMA; si++) {
            printf("%-6s %6g %10.4g %7.3g", noise_loss_key[li], noise_sigmas[si],
                   nt->ref_norm[li][si], nt->ref_spread[li][si]);
            for (int e = 0; e < NOISE_NEST; e++) {
                char cell[40];
                snprintf(cell, sizeof cell, "%.3g/%.3g", nt->rms[li][si][e],
                         nt->bias[li][si][e]);
                printf(" %17s", cell);
                fprintf(f, "%s,%s,%d,%.9g,%d,%.9g,%.9g,%.9g,%.9g,%.9g\n", noise_loss_key[li],
                        noise_est[e].kind == LGD_GUIDANCE_DPS ? "dps"
                        : noise_est[e].kind == LGD_GUIDANCE_MC ? "mc" : "gf",
                        (int)noise_est[e].n, noise_sigmas[si], NOISE_ROWS, nt->ref_norm[li][si],
                        nt->ref_spread[li][si], nt->rms[li][si][e], nt->bias[li][si][e],
                        nt->ess[li][si][e]);
            }
            printf("\n");
        }
    printf("\n");
}

int traj_estimator_noise(const traj_config *cfg, traj_problem *pb, progress *pr)
{
    lgd_context *ctx = pb->ctx;
    const task *tasks[NOISE_NLOSS] = { NULL, NULL, NULL };
    for (int li = 0; li < NOISE_NLOSS; li++) {
        for (int k = 0; k < NTASKS; k++)
            if (!strcmp(task_defs[k].key, noise_task_key[li]))
                tasks[li] = &pb->tasks[k];
        if (!tasks[li] || !tasks[li]->loss) {
            fprintf(stderr, "lgd " CMD ": internal error: no task %s\n", noise_task_key[li]);
            return 1;
        }
    }
    int rc = 1;
    lgd_tensor *x = NULL, *gt = NULL;
    float *g = malloc((size_t)NOISE_ROWS * DIM * sizeof *g);
    float *xs = malloc((size_t)NOISE_ROWS * DIM * sizeof *xs);
    noise_table *nt = calloc(1, sizeof *nt);
    float z[DIM];
    uint64_t state = cfg->seed ^ 0x6E6F697365ULL; /* "noise" */
    for (int j = 0; j < DIM; j++)
        z[j] = (float)normal_draw(&state);
    tool_file out;
    memset(&out, 0, sizeof out);
    if (!g || !xs || !nt) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (CK(ctx, lgd_tensor_create_2d(ctx, NOISE_ROWS, DIM, &x)) ||
        CK(ctx, lgd_tensor_create_2d(ctx, NOISE_ROWS, DIM, &gt)))
        goto done;
    double units = 2.0 * cfg->noise_draws;
    for (int e = 0; e < NOISE_NEST; e++)
        units += noise_est[e].n;
    progress_start(pr, "lgd trajectory: estimator noise",
                   (double)NOISE_NLOSS * NOISE_NSIGMA * units, cfg->quiet);
    for (int li = 0; li < NOISE_NLOSS; li++)
        if (noise_cells(cfg, pb, tasks[li], li, z, x, gt, g, xs, nt, pr))
            goto done;
    progress_end(pr);
    if (tool_file_open(&out, CMD, cfg->out, "noise.csv",
                       "loss,estimator,n,sigma,estimates,ref_norm,ref_spread,rel_rms_error,"
                       "rel_bias,mean_ess"))
        goto done;
    noise_print(cfg, nt, out.f);
    rc = tool_file_close(&out);
done:
    progress_end(pr);
    if (rc)
        tool_file_abandon(&out);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(gt);
    free(g);
    free(xs);
    free(nt);
    return rc;
}
