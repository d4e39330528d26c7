/*
 * lgd sample - guided sampling of any model with any loss from the command line
 * (docs/sample.md): a model (a network file, a Gaussian mixture, the trajectory prior or a
 * plugin), a loss (built-in losses on .npy arrays, their weighted sum, or a plugin), an
 * estimator (none, DPS, LGD-MC, exact) and a sampler; the samples are written as one .npy
 * file, with optional per-step diagnostics (CSV) and a PNG grid of image samples.
 *
 * --rows A:B samples rows A..B-1 of the run only: noise and Monte Carlo draws are keyed by
 * the row, so the parts of a split run concatenate to the bytes of the whole. Started by an
 * MPI launcher (mpirun -n P lgd sample ...), a build with MPI splits the rows into P
 * contiguous blocks and writes one file (docs/scale-out.md).
 *
 * This file holds the command: usage, the phases (set-up, sampling, output) with their
 * agreement between ranks, and the summary; sample.h lists the other files.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "commands.h"
#include "sample.h"

void lgd_sample_usage(FILE *f)
{
    fprintf(f,
            "usage: lgd sample --model MODEL [--loss LOSS [--loss-weight W] ...]\n"
            "                  --guidance none|dps|mc:N|exact:N|mc-gradient-free:N --out FILE.npy [options]\n"
            "\n"
            "Guided sampling of a model with a loss (loss-guided diffusion): writes the samples\n"
            "as float32 .npy [rows][sample shape]. See docs/sample.md.\n"
            "\n"
            "models (--model):\n"
            "  FILE                           a network file (.safetensors, lgd_model_load)\n"
            "  gmm:MEANS.npy:VARS.npy[:W.npy] Gaussian mixture: means [K][dim]; variances [K],\n"
            "                                 [K][dim] or [K][dim][dim]; weights [K]\n"
            "  mixture1d                      the paper's 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)\n"
            "  trajectory[:FRAMES]            the trajectory prior (default 64 frames)\n"
            "  plugin:PATH:NAME[:CONFIG]      a plugin's model\n"
            "losses (--loss, repeatable; each --loss-weight W weights the --loss before it,\n"
            "default 1; several are summed):\n"
            "  sqerr:TARGET.npy[:WEIGHTS.npy] sum_j w_j (x_j - y_j)^2\n"
            "  linear:H.npy:Y.npy:SIGMA       |y - H x|^2 / (2 SIGMA^2), H [m][dim]\n"
            "  logistic:A.npy:B               -log sigmoid(a . x + B)\n"
            "  path:PATH.npy[:KEY=V,...]      trajectory path following, PATH [frames][2]\n"
            "  obstacle:GOAL.npy:OBST.npy[:KEY=V,...]\n"
            "                                 obstacle avoidance; GOAL [2] or none, OBST [K][3]\n"
            "                                 or none (keys: frames, stride, offset, velocities,\n"
            "                                 vscale, sharpness, weight, goal_weight)\n"
            "  mixture1d[:K]                  the paper's -log p(y = K | x0) (1-D, K 0 or 1)\n"
            "  plugin:PATH:NAME[:CONFIG]      a plugin's loss\n"
            "  Targets (TARGET, Y, PATH, GOAL) are shared, or one row per sample with a first\n"
            "  axis of --samples rows.\n"
            "\n"
            "guidance:\n"
            "  --guidance G       none, dps, mc:N (LGD-MC, N draws), exact:N (importance\n"
            "                     sampling from the exact posterior: Gaussian mixtures) or\n"
            "                     mc-gradient-free:N (LGD-MC from loss values only);\n"
            "                     mc, exact and mc-gradient-free alone take N = 10\n"
            "  --rule R           score (default), x0 or normalized\n"
            "  --scale W          the step rule's scale (default 1)\n"
            "  --sigma-data S     LGD-MC radius r = sigma S / sqrt(sigma^2 + S^2) (default 1)\n"
            "sampler:\n"
            "  --sampler K        euler (default), ddim, heun or dpmpp2m\n"
            "  --steps N          steps (default 20)\n"
            "  --schedule S       karras (default), vp-linear, vp-cosine or sigmas:FILE.npy\n"
            "  --sigma-min S, --sigma-max S, --rho R\n"
            "                     the Karras grid (default 0.002, 80, 7)\n"
            "  --vp-timesteps T   training timesteps of the VP schedules (default 1000)\n"
            "  --eta E            DDIM stochasticity in [0, 1] (ddim only; default 0)\n"
            "rows:\n"
            "  --samples N        samples of the whole run (default 16)\n"
            "  --rows A:B         sample rows A..B-1 of the run only (default 0:N); the parts\n"
            "                     of a split run concatenate to the whole, byte for byte\n"
            "  --batch B          rows per batch (default 64)\n"
            "  --seed S           seed (default 0)\n"
            "  --class K          condition: class K for every row (one-hot into cond_dim)\n"
            "  --cond FILE.npy    condition rows [N][cond_dim] or [1][cond_dim], or labels [N]\n"
            "                     or [1]\n"
            "run:\n"
            "  --backend B        cpu (default), cuda or auto\n"
            "  --device N         CUDA device (default 0; under MPI the rank's local rank)\n"
            "  --devices-per-node G\n"
            "                     under MPI: device = local rank mod G\n"
            "  --threads N        CPU threads, OpenBLAS's and oneDNN's too (default 0:\n"
            "                     OpenMP's default); parts of a run need the same N\n"
            "  --quiet            no progress (a bar on a terminal, else a line per 10%%)\n"
            "output:\n"
            "  --out FILE.npy     the samples (required)\n"
            "  --diagnostics F    per-step CSV: sigma, mean loss, ESS, guidance norm, lambda\n"
            "  --png FILE.png     a grid of the first %d samples of an image model%s\n"
            "  --help             this message\n"
            "\n"
            "MPI: %s.\n"
            "Exit status: 0 success, 1 error (files, the library), 2 bad usage.\n",
            SAMPLE_PNG_MAX, sample_png_available() ? "" : " (not built: no libpng)",
            sample_par_built() ? "built in: mpirun -n P lgd sample ... splits the rows\n"
                                 "into P blocks and writes one file (docs/scale-out.md)"
                               : "not built in (meson -Dmpi=enabled with libopenmpi-dev)");
}

int sample_par_launched(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                        "MPI_LOCALNRANKS" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return 1;
    }
    return 0;
}

/* ---- the phases ---- */

/* What a run holds. */
typedef struct sample_state {
    lgd_context *ctx;
    sample_model model;
    sample_cond cond;
    sample_loss loss;
    sample_job job;
} sample_state;

/* The context on --backend with the device of this rank. */
/* Ctrl-C (SIGINT) and SIGTERM during a run: the handler asks the context to stop
 * (lgd_context_cancel is one atomic store, safe in a signal handler), so the sampler
 * returns LGD_ERR_ABORTED within one chunk of draws and the command cleans up its
 * temporary files and exits 1 like any failed run. The context the handler may touch is
 * the one process-wide variable of the command: set after the context is created,
 * cleared (with the default handlers back) before it is destroyed. */
static lgd_context *volatile interrupt_context;

static void on_interrupt(int signo)
{
    (void)signo;
    lgd_context *ctx = interrupt_context;
    if (ctx)
        lgd_context_cancel(ctx);
}

static void catch_interrupts(lgd_context *ctx)
{
    interrupt_context = ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ctx ? on_interrupt : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int create_context(const sample_config *cfg, const sample_par *par, lgd_context **ctx)
{
    const char *cerr = NULL;
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = tool_backend_kind(cfg->backend_choice);
    co.num_threads = cfg->threads;
    if (cfg->device >= 0)
        co.device_index = cfg->device;
    else if (par->mpi)
        co.device_index = cfg->devices_per_node > 0 ? par->local_rank % cfg->devices_per_node
                                                    : par->local_rank;
#if defined(_OPENMP)
    /* OpenBLAS and oneDNN take OpenMP's thread count, not the context's, and may round
     * differently with another: --threads sets both, so that runs with the same --threads
     * give the same bytes (under mpirun, each rank's default would follow its binding) */
    if (cfg->threads > 0)
        omp_set_num_threads(cfg->threads);
#endif
    lgd_status st = lgd_context_create(&co, ctx, &cerr);
    if (st == LGD_OK) {
        catch_interrupts(*ctx);
        return 0;
    }
    static const char *const names[] = { "cpu", "cuda", "auto" }; /* tool_option_backend's */
    return sample_run_error("lgd_context_create failed (backend %s, device %d): %s (%d): %s",
                            names[cfg->backend_choice], (int)co.device_index,
                            lgd_status_string(st), (int)st, cerr ? cerr : "");
}

/* Set-up: context, model, condition rows, loss; this rank's rows. */
static int setup(const sample_config *cfg, const sample_par *par, sample_state *s)
{
    int rc;
    if ((rc = create_context(cfg, par, &s->ctx)) ||
        (rc = sample_model_open(s->ctx, cfg, &s->model)) ||
        (rc = sample_cond_prepare(cfg, &s->model, &s->cond)) ||
        (rc = sample_loss_open(s->ctx, cfg, s->model.dim, &s->loss)))
        return rc;
    if (cfg->png && !s->model.image)
        return sample_usage_error("--png needs an image model (a network whose samples are "
                                  "[C][H][W]); this model's samples have %" PRId64 " floats",
                                  s->model.dim);
    /* whole batches of the run's grid per rank (sample_run.c: a part that cuts a batch
     * computes all of it), contiguous, as even as the batches allow; the first ranks get
     * the larger shares (rank 0, which shows the progress, is never idle) */
    const int64_t B = cfg->batch, k0 = cfg->row_begin / B, k1 = (cfg->row_end - 1) / B + 1;
    const int64_t nb = k1 - k0, P = par->size;
    const int64_t kb = k0 + (nb * par->rank + P - 1) / P;
    const int64_t ke = k0 + (nb * (par->rank + 1) + P - 1) / P;
    s->job.begin = kb * B > cfg->row_begin ? kb * B : cfg->row_begin;
    s->job.end = ke * B < cfg->row_end ? ke * B : cfg->row_end;
    if (s->job.begin > s->job.end)
        s->job.begin = s->job.end; /* no batch for this rank */
    return 0;
}

static void print_setup(const sample_config *cfg, const sample_par *par, const sample_state *s)
{
    static const char *const guidance[] = { "none", "DPS", "LGD-MC", "exact" };
    printf("lgd sample: liblgd %s, backend %s", lgd_version_string(),
           lgd_context_backend_name(s->ctx));
    if (par->mpi)
        printf(", %d MPI ranks", par->size);
    printf("\nmodel  %s\n", s->model.what);
    if (cfg->guidance != LGD_GUIDANCE_NONE) {
        printf("loss   %s\n", s->loss.what);
        printf("guidance %s", guidance[cfg->guidance]);
        if (cfg->guidance == LGD_GUIDANCE_MC || cfg->guidance == LGD_GUIDANCE_EXACT ||
        cfg->guidance == LGD_GUIDANCE_MC_GRADIENT_FREE)
            printf(" (%d draws)", (int)cfg->draws);
        printf(", scale %g\n", (double)cfg->scale);
    } else {
        printf("guidance none\n");
    }
    printf("rows   %" PRId64 ":%" PRId64 " of %" PRId64 ", batch %" PRId64 ", seed %" PRIu64
           ", %d steps\n", cfg->row_begin, cfg->row_end, cfg->samples, cfg->batch, cfg->seed,
           (int)cfg->steps);
    if (par->mpi && cfg->threads == 0)
        printf("note   no --threads: each rank takes OpenMP's default thread count; give "
               "--threads N for the bytes of a one-process run with --threads N\n");
    fflush(stdout);
}

/* The PNG grid's samples: the first rows of the output, gathered on rank 0 (malloc'd
 * into *head, rank 0 only). */
static int png_head(const sample_config *cfg, const sample_par *par, const sample_state *s,
                    float **head, int64_t *n)
{
    const int64_t rows = cfg->row_end - cfg->row_begin;
    *n = rows < SAMPLE_PNG_MAX ? rows : SAMPLE_PNG_MAX;
    *head = NULL;
    if (par->rank == 0) {
        *head = malloc((size_t)*n * (size_t)s->model.dim * sizeof **head);
        if (!*head)
            tool_out_of_memory(CMD);
    }
    if (sample_par_agree(par, par->rank != 0 || *head) >= 0)
        return TOOL_EXIT_ERROR;
    return sample_par_gather_head(par, s->job.x, s->job.begin - cfg->row_begin,
                                  s->job.end - s->job.begin, s->model.dim, *n, *head);
}

/* Rank 0's side files (diagnostics, PNG) under their temporary names. */
static int write_side_files(const sample_config *cfg, const sample_par *par, sample_state *s,
                            const char *diag_tmp, const char *png_tmp)
{
    float *head = NULL;
    int64_t n = 0;
    int rc = 0;
    if (cfg->diagnostics) {
        rc = sample_par_reduce_diag(par, &s->job.diag);
        if (!rc && par->rank == 0)
            rc = sample_write_diagnostics(diag_tmp, &s->job.diag);
        if (sample_par_agree(par, rc == 0) >= 0)
            return TOOL_EXIT_ERROR;
    }
    if (cfg->png) {
        rc = png_head(cfg, par, s, &head, &n);
        if (!rc && par->rank == 0)
            rc = sample_write_png(png_tmp, &s->model, n, head);
        free(head);
        if (sample_par_agree(par, rc == 0) >= 0)
            return TOOL_EXIT_ERROR;
    }
    return 0;
}

/* The output: the side files under temporary names, then the .npy (complete or absent),
 * then the side files renamed. */
static int write_output(const sample_config *cfg, const sample_par *par, sample_state *s)
{
    char diag_tmp[4096] = "", png_tmp[4096] = "", npy_tmp[4096] = "";
    int rc;
    if ((cfg->diagnostics && (rc = sample_tmp_path(cfg->diagnostics, diag_tmp,
                                                   sizeof diag_tmp))) ||
        (cfg->png && (rc = sample_tmp_path(cfg->png, png_tmp, sizeof png_tmp))) ||
        (rc = sample_tmp_path(cfg->out, npy_tmp, sizeof npy_tmp)))
        return rc;
    if (write_side_files(cfg, par, s, diag_tmp, png_tmp))
        goto failed;
    const int64_t rows = cfg->row_end - cfg->row_begin;
    if (!par->mpi) {
        rc = sample_write_npy(cfg->out, &s->model, rows, s->job.x);
    } else {
        char *header = NULL;
        size_t len = 0;
        rc = par->rank == 0 ? sample_npy_header(&s->model, rows, &header, &len) : 0;
        if (sample_par_agree(par, rc == 0) < 0)
            rc = sample_par_write_npy(par, npy_tmp, header, len, s->job.x,
                                      s->job.begin - cfg->row_begin,
                                      s->job.end - s->job.begin,
                                      (size_t)s->model.dim * sizeof(float));
        else
            rc = TOOL_EXIT_ERROR;
        free(header);
        if (!rc && par->rank == 0)
            rc = sample_commit(npy_tmp, cfg->out);
        if (sample_par_agree(par, rc == 0) >= 0)
            rc = TOOL_EXIT_ERROR;
    }
    if (rc)
        goto failed;
    if (par->rank == 0) {
        if (cfg->diagnostics)
            rc |= sample_commit(diag_tmp, cfg->diagnostics);
        if (cfg->png)
            rc |= sample_commit(png_tmp, cfg->png);
    }
    return sample_par_agree(par, rc == 0) < 0 ? 0 : TOOL_EXIT_ERROR;
failed:
    if (par->rank == 0) {
        if (cfg->diagnostics)
            unlink(diag_tmp);
        if (cfg->png)
            unlink(png_tmp);
    }
    return TOOL_EXIT_ERROR;
}

/* After a phase: 0 when every rank succeeded; else the exit status (this rank's own, or 1
 * with a note from rank 0 that another rank failed). */
static int phase_status(const sample_par *par, int rc)
{
    int failed = sample_par_agree(par, rc == 0);
    if (failed < 0)
        return 0;
    if (rc == 0 && par->rank == 0)
        sample_run_error("rank %d of %d failed (its message is above)", failed, par->size);
    return rc ? rc : TOOL_EXIT_ERROR;
}

static int run_command(const sample_config *cfg, const sample_par *par)
{
    sample_state s;
    memset(&s, 0, sizeof s);
    int rc = phase_status(par, setup(cfg, par, &s));
    if (!rc) {
        if (par->rank == 0)
            print_setup(cfg, par, &s);
        char label[64];
        if (par->mpi)
            snprintf(label, sizeof label, "lgd sample (rank 0 of %d):", par->size);
        else
            snprintf(label, sizeof label, "lgd sample:");
        rc = phase_status(par, sample_run(cfg, s.ctx, &s.model, &s.loss, &s.cond, &s.job,
                                          par->rank == 0 ? label : NULL));
    }
    if (!rc)
        rc = phase_status(par, write_output(cfg, par, &s));
    const double seconds = rc ? 0.0 : sample_par_max(par, s.job.seconds);
    if (!rc && par->rank == 0) {
        char shape[128];
        int64_t full[5] = { cfg->row_end - cfg->row_begin };
        memcpy(full + 1, s.model.row_shape, (size_t)s.model.row_ndim * sizeof *full);
        printf("wrote %s: %s float32, rows %" PRId64 ":%" PRId64 ", sampled in %.3g s "
               "(%.3g samples/s)\n", cfg->out,
               sample_shape_text(full, 1 + s.model.row_ndim, shape, sizeof shape),
               cfg->row_begin, cfg->row_end, seconds,
               seconds > 0 ? (double)(cfg->row_end - cfg->row_begin) / seconds : 0.0);
        if (cfg->diagnostics)
            printf("wrote %s\n", cfg->diagnostics);
        if (cfg->png)
            printf("wrote %s\n", cfg->png);
    }
    sample_job_free(&s.job);
    sample_loss_close(&s.loss);
    sample_cond_free(&s.cond);
    sample_model_close(&s.model);
    catch_interrupts(NULL);
    lgd_context_destroy(s.ctx);
    return rc;
}

/* Silences stdout and stderr on ranks other than 0 while the options are parsed (they
 * would print the same usage message P times); returns what to restore. */
static void mute(int on, int saved[2])
{
    if (on) {
        fflush(stdout);
        fflush(stderr);
        saved[0] = dup(STDOUT_FILENO);
        saved[1] = dup(STDERR_FILENO);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            close(null);
        }
        return;
    }
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < 2; k++)
        if (saved[k] >= 0) {
            dup2(saved[k], k ? STDERR_FILENO : STDOUT_FILENO);
            close(saved[k]);
        }
}

int lgd_sample_main(int argc, char **argv)
{
    sample_config cfg = { .guidance = LGD_GUIDANCE_NONE, .scale = 1.0f, .sigma_data = 1.0f,
                          .steps = 20, .schedule = SCHEDULE_KARRAS, .sigma_min = 0.002f,
                          .sigma_max = 80.0f, .rho = 7.0f, .vp_timesteps = 1000,
                          .samples = 16, .batch = 64, .class_label = -1, .device = -1 };
    sample_par par;
    if (sample_par_init(&par, &argc, &argv))
        return TOOL_EXIT_ERROR;
    int saved[2] = { -1, -1 };
    if (par.rank > 0)
        mute(1, saved);
    int st = sample_parse_args(argc, argv, &cfg);
    if (par.rank > 0)
        mute(0, saved);
    if (st == TOOL_CONTINUE)
        st = run_command(&cfg, &par);
    sample_par_finalize(&par);
    return st;
}
