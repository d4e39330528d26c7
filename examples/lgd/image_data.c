/*
 * image_data.c - the image experiments' directories, data splits, models and classifier
 * scores (image.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "image.h"
#include "npy.h"

#ifndef LGD_TOOL_SOURCE_ROOT
#define LGD_TOOL_SOURCE_ROOT ""
#endif

/* Rows per classifier call. */
#define IMG_EVAL_ROWS 256

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* One directory by the rule of img_find_dirs(): option, env, cwd-relative, source tree. */
static int find_dir(const char *cmd, const char *opt, const char *env, const char *rel,
                    const char *option_name, char out[IMG_PATH_MAX])
{
    const char *v = opt ? opt : getenv(env);
    if (v && *v) {
        if (snprintf(out, IMG_PATH_MAX, "%s", v) >= IMG_PATH_MAX) {
            fprintf(stderr, "lgd %s: path too long: %s\n", cmd, v);
            return 1;
        }
        if (!is_dir(out)) {
            fprintf(stderr, "lgd %s: %s is not a directory (%s)\n", cmd, out,
                    opt ? option_name : env);
            return 1;
        }
        return 0;
    }
    if (is_dir(rel)) {
        snprintf(out, IMG_PATH_MAX, "%s", rel);
        return 0;
    }
    if (LGD_TOOL_SOURCE_ROOT[0]) {
        int n = snprintf(out, IMG_PATH_MAX, "%s/%s", LGD_TOOL_SOURCE_ROOT, rel);
        if (n > 0 && n < IMG_PATH_MAX && is_dir(out))
            return 0;
    }
    fprintf(stderr,
            "lgd %s: cannot find the directory %s (not under the current directory%s%s); "
            "give %s DIR or set %s\n",
            cmd, rel, LGD_TOOL_SOURCE_ROOT[0] ? " nor under " : "", LGD_TOOL_SOURCE_ROOT,
            option_name, env);
    return 1;
}

int img_context_create(const char *cmd, int backend_choice, int32_t threads, lgd_context **ctx)
{
#if defined(_OPENMP)
    /* OpenBLAS and oneDNN take OpenMP's thread count, not the context's (as lgd sample
     * does): without this, one --threads 1 run still wakes a team of OpenMP threads per
     * network call, which spin against each other on a busy machine */
    if (threads > 0)
        omp_set_num_threads(threads);
#endif
    return tool_context_create(cmd, tool_backend_kind(backend_choice), threads, ctx);
}

int img_find_dirs(const char *cmd, const char *data_opt, const char *models_opt,
                  char data[IMG_PATH_MAX], char models[IMG_PATH_MAX])
{
    return find_dir(cmd, data_opt, "LGD_DATA_DIR", "data/digits", "--data", data) ||
           find_dir(cmd, models_opt, "LGD_MODEL_DIR", "models", "--models", models);
}

void img_set_free(img_set *s)
{
    free(s->x);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

int img_load_split(const char *cmd, const char *dir, const char *split, img_set *s)
{
    char path[IMG_PATH_MAX + 64], err[512];
    float *img = NULL, *lab = NULL;
    int64_t shi[LGD_NPY_MAX_NDIM], shl[LGD_NPY_MAX_NDIM];
    int ndi = 0, ndl = 0;
    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/%s_images.npy", dir, split);
    if (lgd_npy_read(path, &img, shi, &ndi, err, sizeof err)) {
        fprintf(stderr, "lgd %s: %s\n", cmd, err);
        return 1;
    }
    int64_t per_row = 1;
    for (int k = 1; k < ndi; k++)
        per_row *= shi[k];
    if (ndi < 2 || per_row != IMG_DIM || shi[0] < 1) {
        fprintf(stderr, "lgd %s: %s: expected images [N][64] or [N][1][8][8]\n", cmd, path);
        free(img);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s_labels.npy", dir, split);
    if (lgd_npy_read(path, &lab, shl, &ndl, err, sizeof err)) {
        fprintf(stderr, "lgd %s: %s\n", cmd, err);
        free(img);
        return 1;
    }
    if (ndl != 1 || shl[0] != shi[0]) {
        fprintf(stderr, "lgd %s: %s: expected %lld labels [N]\n", cmd, path,
                (long long)shi[0]);
        free(img);
        free(lab);
        return 1;
    }
    s->n = shi[0];
    s->x = img;
    s->labels = malloc((size_t)s->n * sizeof *s->labels);
    if (!s->labels) {
        free(lab);
        img_set_free(s);
        return tool_out_of_memory(cmd);
    }
    for (int64_t i = 0; i < s->n; i++) {
        float v = lab[i];
        if (!(v >= 0.0f && v < (float)IMG_CLASSES) || v != floorf(v)) {
            fprintf(stderr, "lgd %s: %s: label %lld is %g, not an integer in 0..9\n", cmd,
                    path, (long long)i, (double)v);
            free(lab);
            img_set_free(s);
            return 1;
        }
        s->labels[i] = (int32_t)v;
    }
    free(lab);
    for (int64_t i = 0; i < s->n * IMG_DIM; i++) {
        if (!isfinite(s->x[i])) {
            fprintf(stderr, "lgd %s: %s_images.npy holds a non-finite value\n", cmd, split);
            img_set_free(s);
            return 1;
        }
    }
    return 0;
}

int img_set_per_label(const char *cmd, const img_set *s, int64_t count, img_set *out)
{
    memset(out, 0, sizeof *out);
    int64_t taken[IMG_CLASSES] = { 0 }, n = 0;
    for (int64_t i = 0; i < s->n; i++)
        if (taken[s->labels[i]] < count)
            taken[s->labels[i]]++, n++;
    out->x = malloc((size_t)(n > 0 ? n : 1) * IMG_DIM * sizeof *out->x);
    out->labels = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->labels);
    if (!out->x || !out->labels) {
        img_set_free(out);
        return tool_out_of_memory(cmd);
    }
    memset(taken, 0, sizeof taken);
    for (int64_t i = 0; i < s->n; i++) {
        int32_t y = s->labels[i];
        if (taken[y] >= count)
            continue;
        taken[y]++;
        memcpy(out->x + out->n * IMG_DIM, s->x + i * IMG_DIM, IMG_DIM * sizeof *out->x);
        out->labels[out->n++] = y;
    }
    return 0;
}

void img_models_free(img_models *m)
{
    lgd_model_destroy(m->unet);
    lgd_network_destroy(m->clf);
    lgd_network_destroy(m->noisy);
    if (!m->judge_is_clf)
        lgd_network_destroy(m->judge);
    m->unet = NULL;
    m->clf = m->noisy = m->judge = NULL;
    m->judge_is_clf = 0;
}

/* Loads DIR/NAME as a network into *net and its path into path; checks dim / out_dim. */
static int load_network(const char *cmd, lgd_context *ctx, const char *dir, const char *name,
                        int64_t out_dim, char path[IMG_PATH_MAX], lgd_network **net)
{
    if (snprintf(path, IMG_PATH_MAX, "%s/%s", dir, name) >= IMG_PATH_MAX) {
        fprintf(stderr, "lgd %s: path too long: %s/%s\n", cmd, dir, name);
        return 1;
    }
    lgd_status st = lgd_network_load(ctx, path, net);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd %s: cannot load %s: %s: %s\n", cmd, path, lgd_status_string(st),
                lgd_context_last_error(ctx));
        return 1;
    }
    if (lgd_network_dim(*net) != IMG_DIM || lgd_network_out_dim(*net) != out_dim ||
        lgd_network_cond_dim(*net) != 0) {
        fprintf(stderr,
                "lgd %s: %s maps %lld values to %lld (condition %lld): expected an "
                "unconditional network from %d to %lld\n",
                cmd, path, (long long)lgd_network_dim(*net),
                (long long)lgd_network_out_dim(*net), (long long)lgd_network_cond_dim(*net),
                IMG_DIM, (long long)out_dim);
        return 1;
    }
    return 0;
}

static const char *prediction_name(lgd_prediction p)
{
    switch (p) {
    case LGD_PREDICT_EPS:
        return "eps";
    case LGD_PREDICT_X0:
        return "x0";
    case LGD_PREDICT_V:
        return "v";
    case LGD_PREDICT_EDM:
        return "edm";
    }
    return "?";
}

int img_models_load(const char *cmd, lgd_context *ctx, const char *dir, int need_noisy,
                    float clf_t, img_models *m)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->clf_t = clf_t;
    m->sigma_min = 0.002f;
    m->sigma_max = 80.0f;
    lgd_network *unet = NULL;
    if (load_network(cmd, ctx, dir, "digits_unet.safetensors", IMG_DIM, m->unet_path, &unet))
        goto fail;
    lgd_adapter_options ad = LGD_ADAPTER_OPTIONS_INIT;
    if (TOOL_CHECK(cmd, ctx, lgd_network_adapter_options(unet, &ad)))
        goto fail;
    if ((ad.time_input == LGD_TIME_DISCRETE || ad.time_input == LGD_TIME_DISCRETE_ROUND) &&
        ad.alphas_cumprod && ad.num_timesteps >= 2) {
        /* the schedule's own sigma range, within the library's default one */
        double a0 = ad.alphas_cumprod[0], a1 = ad.alphas_cumprod[ad.num_timesteps - 1];
        m->sigma_min = (float)fmax(0.002, sqrt((1.0 - a0) / a0));
        m->sigma_max = (float)fmin(80.0, sqrt((1.0 - a1) / a1));
    }
    static const char *const time_names[] = { "discrete", "discrete_round", "log_sigma",
                                              "sigma" };
    snprintf(m->unet_desc, sizeof m->unet_desc, "%s prediction, %s time input",
             prediction_name(ad.prediction),
             (unsigned)ad.time_input < 4 ? time_names[ad.time_input] : "?");
    m->unet_params = lgd_network_parameter_count(unet);
    if (TOOL_CHECK(cmd, ctx, lgd_model_create_from_network(ctx, unet, NULL, &m->unet)))
        goto fail;
    lgd_network_destroy(unet);
    unet = NULL;
    if (load_network(cmd, ctx, dir, "digits_classifier.safetensors", IMG_CLASSES, m->clf_path,
                     &m->clf))
        goto fail;
    m->clf_params = lgd_network_parameter_count(m->clf);
    struct stat st;
    char probe[IMG_PATH_MAX + 64];
    if (need_noisy == 2) { /* optional: only when the file is there */
        snprintf(probe, sizeof probe, "%s/digits_noisy_classifier.safetensors", dir);
        need_noisy = stat(probe, &st) == 0;
    }
    if (need_noisy && load_network(cmd, ctx, dir, "digits_noisy_classifier.safetensors",
                                   IMG_CLASSES, m->noisy_path, &m->noisy))
        goto fail;
    m->noisy_params = lgd_network_parameter_count(m->noisy);
    /* the judge: when its file is missing, the clean classifier judges (said in the
     * tools' headers) */
    snprintf(probe, sizeof probe, "%s/digits_judge.safetensors", dir);
    if (stat(probe, &st) == 0) {
        if (load_network(cmd, ctx, dir, "digits_judge.safetensors", IMG_CLASSES,
                         m->judge_path, &m->judge))
            goto fail;
    } else {
        m->judge = m->clf;
        m->judge_is_clf = 1;
        snprintf(m->judge_path, IMG_PATH_MAX, "%s", m->clf_path);
    }
    m->judge_params = lgd_network_parameter_count(m->judge);
    return 0;
fail:
    lgd_network_destroy(unet);
    img_models_free(m);
    return 1;
}

int img_logits(const char *cmd, img_models *m, lgd_network *net, const float *x, int64_t n,
               float *logits)
{
    lgd_context *ctx = m->ctx;
    int rc = 1;
    for (int64_t r0 = 0; r0 < n; r0 += IMG_EVAL_ROWS) {
        int64_t nb = n - r0 < IMG_EVAL_ROWS ? n - r0 : IMG_EVAL_ROWS;
        lgd_tensor *xt = NULL, *ft = NULL;
        if (TOOL_CHECK(cmd, ctx, lgd_tensor_create_2d(ctx, nb, IMG_DIM, &xt)) ||
            TOOL_CHECK(cmd, ctx, lgd_tensor_create_2d(ctx, nb, IMG_CLASSES, &ft)) ||
            TOOL_CHECK(cmd, ctx, lgd_tensor_upload(xt, x + r0 * IMG_DIM, nb * IMG_DIM)) ||
            TOOL_CHECK(cmd, ctx, lgd_network_forward(net, xt, m->clf_t, NULL, ft)) ||
            TOOL_CHECK(cmd, ctx, lgd_tensor_download(ft, logits + r0 * IMG_CLASSES,
                                                     nb * IMG_CLASSES))) {
            lgd_tensor_destroy(xt);
            lgd_tensor_destroy(ft);
            goto done;
        }
        lgd_tensor_destroy(xt);
        lgd_tensor_destroy(ft);
    }
    rc = 0;
done:
    return rc;
}

int img_noisy_logprobs(const char *cmd, img_models *m, const float *x, int64_t n, float sigma,
                       float *logp)
{
    lgd_context *ctx = m->ctx;
    lgd_loss *loss = NULL;
    lgd_tensor *xt = NULL, *lt = NULL;
    float *ce = malloc((size_t)(n < IMG_EVAL_ROWS ? n : IMG_EVAL_ROWS) * sizeof *ce);
    int rc = 1;
    lgd_network_loss_options lo = LGD_NETWORK_LOSS_OPTIONS_INIT;
    lo.kind = LGD_NETWORK_LOSS_CROSS_ENTROPY;
    lo.input = LGD_NETWORK_INPUT_NOISY;
    lo.sigma = sigma;
    if (!ce) {
        tool_out_of_memory(cmd);
        goto done;
    }
    if (TOOL_CHECK(cmd, ctx, lgd_loss_create_network(ctx, m->noisy, &lo, &loss)))
        goto done;
    for (int64_t r0 = 0; r0 < n; r0 += IMG_EVAL_ROWS) {
        int64_t nb = n - r0 < IMG_EVAL_ROWS ? n - r0 : IMG_EVAL_ROWS;
        lgd_tensor_destroy(xt);
        lgd_tensor_destroy(lt);
        xt = lt = NULL;
        if (TOOL_CHECK(cmd, ctx, lgd_tensor_create_2d(ctx, nb, IMG_DIM, &xt)) ||
            TOOL_CHECK(cmd, ctx, lgd_tensor_create(ctx, 1, &nb, &lt)) ||
            TOOL_CHECK(cmd, ctx, lgd_tensor_upload(xt, x + r0 * IMG_DIM, nb * IMG_DIM)))
            goto done;
        for (int32_t k = 0; k < IMG_CLASSES; k++) {
            if (TOOL_CHECK(cmd, ctx, lgd_loss_network_set_labels(loss, &k, 1)) ||
                TOOL_CHECK(cmd, ctx, lgd_loss_eval(loss, xt, lt, NULL)) ||
                TOOL_CHECK(cmd, ctx, lgd_tensor_download(lt, ce, nb)))
                goto done;
            for (int64_t r = 0; r < nb; r++)
                logp[(r0 + r) * IMG_CLASSES + k] = -ce[r];
        }
    }
    rc = 0;
done:
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(lt);
    lgd_loss_destroy(loss);
    free(ce);
    return rc;
}

void img_clip(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (x[i] > 1.0f)
            x[i] = 1.0f;
        else if (x[i] < -1.0f)
            x[i] = -1.0f;
    }
}

int img_parse_methods(const char *cmd, const char *list, const char *const *keys, int nkeys,
                      int *use)
{
    for (int k = 0; k < nkeys; k++)
        use[k] = list == NULL;
    if (!list)
        return 0;
    const char *p = list;
    int any = 0;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int k = 0; k < nkeys && found < 0; k++)
            if (strlen(keys[k]) == len && !strncmp(keys[k], p, len))
                found = k;
        if (found < 0) {
            char names[256] = "";
            size_t used = 0;
            for (int k = 0; k < nkeys && used < sizeof names; k++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                         k ? ", " : "", keys[k]);
            return tool_usage_error(cmd, "unknown method '%.*s' in --methods (%s)", (int)len, p,
                                    names);
        }
        use[found] = 1;
        any = 1;
        if (!end)
            break;
        p = end + 1;
    }
    if (!any)
        return tool_usage_error(cmd, "--methods needs method names, comma-separated");
    return 0;
}
