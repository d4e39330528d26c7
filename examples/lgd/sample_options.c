/*
 * sample_options.c - lgd sample's options: the table for the shared parser (tool.h), the
 * repeated --loss / --loss-weight pairs (taken out of argv first, since the table keeps one
 * value per option), the compound values (--guidance KIND[:N], --rows A:B, --schedule) and
 * the checks between options.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "tool_util.h"

/* The choices of --sampler, --rule and --backend, and what they mean. */
static const char *const sampler_names[] = { "euler", "ddim", "heun", "dpmpp2m", NULL };
static const lgd_sampler_kind sampler_kinds[] = { LGD_SAMPLER_EULER, LGD_SAMPLER_DDIM,
                                                  LGD_SAMPLER_HEUN, LGD_SAMPLER_DPMPP_2M };
static const char *const rule_names[] = { "score", "x0", "normalized", NULL };
static const lgd_step_rule rule_kinds[] = { LGD_STEP_SCORE, LGD_STEP_X0, LGD_STEP_NORMALIZED };

/* The largest --samples (rows of a run) and --batch. */
#define MAX_ROWS ((int64_t)1 << 40)

/* If arg is option `name` ("--name V" or "--name=V"): 1 with *value (NULL when the value
 * is the next argument); else 0. */
static int is_option(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    *value = NULL;
    if (strncmp(arg, "--", 2) || strncmp(arg + 2, name, n))
        return 0;
    if (arg[2 + n] == '=') {
        *value = arg + 3 + n;
        return 1;
    }
    return arg[2 + n] == '\0';
}

/*
 * Moves every --loss SPEC and --loss-weight W out of argv (into cfg) and the rest into
 * rest[] (argc entries; *nrest set). A --loss-weight applies to the --loss before it.
 * 0 or TOOL_EXIT_USAGE.
 */
static int take_losses(int argc, char **argv, sample_config *cfg, char **rest, int *nrest)
{
    int have_weight[SAMPLE_MAX_LOSSES] = { 0 };
    *nrest = 0;
    rest[(*nrest)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int loss = is_option(argv[i], "loss", &v);
        int weight = !loss && is_option(argv[i], "loss-weight", &v);
        if (!loss && !weight) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        const char *name = loss ? "loss" : "loss-weight";
        if (!v) {
            if (i + 1 >= argc)
                return sample_usage_error("option --%s needs a value", name);
            v = argv[++i];
        }
        if (loss) {
            if (cfg->nloss == SAMPLE_MAX_LOSSES)
                return sample_usage_error("at most %d --loss terms", SAMPLE_MAX_LOSSES);
            if (!*v)
                return sample_usage_error("--loss needs a loss spec (see lgd help sample)");
            cfg->loss_specs[cfg->nloss] = v;
            cfg->loss_weights[cfg->nloss] = 1.0f;
            cfg->nloss++;
            continue;
        }
        double w;
        if (cfg->nloss == 0)
            return sample_usage_error("--loss-weight %s comes before any --loss (it weights the "
                                      "--loss before it)", v);
        if (have_weight[cfg->nloss - 1])
            return sample_usage_error("two --loss-weight for the loss '%s'",
                                      cfg->loss_specs[cfg->nloss - 1]);
        if (sample_parse_number(v, &w) || !(w < 3.4e38 && w > -3.4e38))
            return sample_usage_error("--loss-weight needs a finite number, not '%s'", v);
        cfg->loss_weights[cfg->nloss - 1] = (float)w;
        have_weight[cfg->nloss - 1] = 1;
    }
    return 0;
}

/* --guidance none | dps | mc[:N] | exact[:N] | mc-gradient-free[:N] (N draws, default 10). */
static int parse_guidance(const char *v, sample_config *cfg)
{
    static const struct { const char *name; lgd_guidance_kind kind; int draws; } kinds[] = {
        { "none", LGD_GUIDANCE_NONE, 0 }, { "dps", LGD_GUIDANCE_DPS, 0 },
        { "mc", LGD_GUIDANCE_MC, 1 }, { "exact", LGD_GUIDANCE_EXACT, 1 },
        { "mc-gradient-free", LGD_GUIDANCE_MC_GRADIENT_FREE, 1 },
    };
    const char *colon = strchr(v, ':');
    size_t n = colon ? (size_t)(colon - v) : strlen(v);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (strlen(kinds[k].name) != n || strncmp(v, kinds[k].name, n))
            continue;
        cfg->guidance = kinds[k].kind;
        cfg->draws = 10;
        if (!colon)
            return 0;
        long long d;
        if (!kinds[k].draws)
            return sample_usage_error("--guidance %s takes no number of draws", kinds[k].name);
        if (tool_parse_int(colon + 1, 1, LGD_GUIDANCE_MAX_SAMPLES, &d))
            return sample_usage_error("--guidance %s:N needs N draws in [1, %d], not '%s'",
                                      kinds[k].name, LGD_GUIDANCE_MAX_SAMPLES, colon + 1);
        cfg->draws = (int32_t)d;
        return 0;
    }
    return sample_usage_error("unknown guidance '%s' (none, dps, mc:N, exact:N)", v);
}

/* --rows A:B: 0 <= A < B (checked against --samples later). */
static int parse_rows(const char *v, sample_config *cfg)
{
    const char *colon = strchr(v, ':');
    char a[32];
    long long lo, hi;
    if (!colon || (size_t)(colon - v) >= sizeof a)
        return sample_usage_error("--rows needs A:B (rows A to B-1), not '%s'", v);
    memcpy(a, v, (size_t)(colon - v));
    a[colon - v] = '\0';
    if (tool_parse_int(a, 0, MAX_ROWS, &lo) || tool_parse_int(colon + 1, 0, MAX_ROWS, &hi))
        return sample_usage_error("--rows needs A:B with whole numbers 0 <= A < B, not '%s'", v);
    if (lo >= hi)
        return sample_usage_error("--rows %s is empty: A must be below B", v);
    cfg->row_begin = lo;
    cfg->row_end = hi;
    return 0;
}

/* --schedule karras | vp-linear | vp-cosine | sigmas:FILE.npy */
static int parse_schedule(const char *v, sample_config *cfg)
{
    if (!strcmp(v, "karras"))
        cfg->schedule = SCHEDULE_KARRAS;
    else if (!strcmp(v, "vp-linear"))
        cfg->schedule = SCHEDULE_VP_LINEAR;
    else if (!strcmp(v, "vp-cosine"))
        cfg->schedule = SCHEDULE_VP_COSINE;
    else if (!strncmp(v, "sigmas:", 7) && v[7]) {
        cfg->schedule = SCHEDULE_FILE;
        cfg->sigmas_file = v + 7;
    } else
        return sample_usage_error("unknown schedule '%s' (karras, vp-linear, vp-cosine, "
                                  "sigmas:FILE.npy)", v);
    return 0;
}

/* The checks between options, once all are read. */
static int check_config(sample_config *cfg, const char *guidance, const char *rows,
                        const char *schedule)
{
    if (!guidance && cfg->nloss > 0)
        return sample_usage_error("--loss needs --guidance (dps, mc:N or exact:N; none for "
                                  "unguided samples)");
    if (guidance && parse_guidance(guidance, cfg))
        return TOOL_EXIT_USAGE;
    if (schedule && parse_schedule(schedule, cfg))
        return TOOL_EXIT_USAGE;
    if (!cfg->model_spec)
        return sample_usage_error("--model is required (a network file, gmm:..., mixture1d, "
                                  "trajectory[:FRAMES] or plugin:...)");
    if (!cfg->out)
        return sample_usage_error("--out FILE.npy is required");
    if (cfg->guidance != LGD_GUIDANCE_NONE && cfg->nloss == 0)
        return sample_usage_error("--guidance %s needs a --loss", guidance);
    if (cfg->guidance == LGD_GUIDANCE_NONE)
        cfg->draws = 0;
    if (rows) {
        if (parse_rows(rows, cfg))
            return TOOL_EXIT_USAGE;
        if (cfg->row_end > cfg->samples)
            return sample_usage_error("--rows %s goes past the run's %" PRId64 " samples "
                                      "(--samples)", rows, cfg->samples);
    } else {
        cfg->row_begin = 0;
        cfg->row_end = cfg->samples;
    }
    cfg->sampler = sampler_kinds[cfg->sampler_choice];
    cfg->rule = rule_kinds[cfg->rule_choice];
    if (cfg->eta != 0.0f && cfg->sampler != LGD_SAMPLER_DDIM)
        return sample_usage_error("--eta applies to the ddim sampler only");
    if (!(cfg->sigma_min < cfg->sigma_max))
        return sample_usage_error("--sigma-min %g must be below --sigma-max %g",
                                  (double)cfg->sigma_min, (double)cfg->sigma_max);
    if (cfg->class_label >= 0 && cfg->cond_file)
        return sample_usage_error("give --class or --cond, not both");
    if (cfg->png && !sample_png_available())
        return sample_usage_error("--png: this lgd was built without libpng (install "
                                  "libpng-dev and rebuild)");
    if (!strcmp(cfg->out, "-"))
        return sample_usage_error("--out needs a file name (not stdout)");
    return 0;
}

int sample_parse_args(int argc, char **argv, sample_config *cfg)
{
    char **rest = malloc((size_t)argc * sizeof *rest);
    if (!rest)
        return tool_out_of_memory(CMD);
    int nrest = 0;
    int st = take_losses(argc, argv, cfg, rest, &nrest);
    if (st) {
        free(rest);
        return st;
    }
    const char *guidance = NULL, *rows = NULL, *schedule = NULL;
    const tool_option opts[] = {
        { .name = "model", .kind = TOOL_OPT_STRING, .dest = &cfg->model_spec,
          .needs = "a model spec" },
        { .name = "guidance", .kind = TOOL_OPT_STRING, .dest = &guidance,
          .needs = "none, dps, mc:N or exact:N" },
        { .name = "rule", .kind = TOOL_OPT_CHOICE, .dest = &cfg->rule_choice,
          .choices = rule_names, .what = "step rule" },
        { .name = "scale", .kind = TOOL_OPT_FLOAT, .dest = &cfg->scale, .fmin = -1e30,
          .fmax = 1e30, .needs = "a finite number" },
        { .name = "sigma-data", .kind = TOOL_OPT_FLOAT, .dest = &cfg->sigma_data, .fmin = 0.0,
          .fmin_open = 1, .fmax = 1e30, .needs = "a number > 0" },
        { .name = "sampler", .kind = TOOL_OPT_CHOICE, .dest = &cfg->sampler_choice,
          .choices = sampler_names, .what = "sampler" },
        { .name = "steps", .kind = TOOL_OPT_INT32, .dest = &cfg->steps, .min = 1,
          .max = 1 << 22 },
        { .name = "schedule", .kind = TOOL_OPT_STRING, .dest = &schedule,
          .needs = "karras, vp-linear, vp-cosine or sigmas:FILE.npy" },
        { .name = "sigma-min", .kind = TOOL_OPT_FLOAT, .dest = &cfg->sigma_min, .fmin = 0.0,
          .fmin_open = 1, .fmax = 1e30, .needs = "a number > 0" },
        { .name = "sigma-max", .kind = TOOL_OPT_FLOAT, .dest = &cfg->sigma_max, .fmin = 0.0,
          .fmin_open = 1, .fmax = 1e30, .needs = "a number > 0" },
        { .name = "rho", .kind = TOOL_OPT_FLOAT, .dest = &cfg->rho, .fmin = 0.0,
          .fmin_open = 1, .fmax = 1e6, .needs = "a number > 0" },
        { .name = "vp-timesteps", .kind = TOOL_OPT_INT32, .dest = &cfg->vp_timesteps,
          .min = 1, .max = 1 << 22 },
        { .name = "eta", .kind = TOOL_OPT_FLOAT, .dest = &cfg->eta, .fmin = 0.0, .fmax = 1.0 },
        { .name = "samples", .kind = TOOL_OPT_INT64, .dest = &cfg->samples, .min = 1,
          .max = MAX_ROWS },
        { .name = "batch", .kind = TOOL_OPT_INT64, .dest = &cfg->batch, .min = 1,
          .max = MAX_ROWS },
        { .name = "seed", .kind = TOOL_OPT_UINT64, .dest = &cfg->seed, .umax = UINT64_MAX },
        { .name = "rows", .kind = TOOL_OPT_STRING, .dest = &rows, .needs = "A:B" },
        { .name = "class", .kind = TOOL_OPT_INT32, .dest = &cfg->class_label, .min = 0,
          .max = INT32_MAX, .needs = "a class label >= 0" },
        { .name = "cond", .kind = TOOL_OPT_STRING, .dest = &cfg->cond_file,
          .needs = "a .npy file" },
        tool_option_backend(&cfg->backend_choice),
        tool_option_threads(&cfg->threads),
        { .name = "device", .kind = TOOL_OPT_INT32, .dest = &cfg->device, .min = 0,
          .max = 4096 },
        { .name = "devices-per-node", .kind = TOOL_OPT_INT32, .dest = &cfg->devices_per_node,
          .min = 1, .max = 4096 },
        { .name = "out", .kind = TOOL_OPT_STRING, .dest = &cfg->out, .needs = "a .npy file" },
        { .name = "diagnostics", .kind = TOOL_OPT_STRING, .dest = &cfg->diagnostics,
          .needs = "a .csv file" },
        { .name = "png", .kind = TOOL_OPT_STRING, .dest = &cfg->png, .needs = "a .png file" },
        tool_option_quiet(&cfg->quiet),
    };
    st = tool_parse_options(CMD, nrest, rest, opts, (int)(sizeof opts / sizeof opts[0]),
                            lgd_sample_usage);
    free(rest);
    if (st != TOOL_CONTINUE)
        return st;
    st = check_config(cfg, guidance, rows, schedule);
    return st ? st : TOOL_CONTINUE;
}
