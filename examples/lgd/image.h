/*
 * image.h - what `lgd superres` and `lgd classcond` share: the digits data and the
 * shipped models (where they are, loading them), the classifier's scores on images,
 * sampling many rows in batches with a sampler built per batch, the samplers' grids,
 * and PNG grids of images.
 *
 * Not part of liblgd's API. The parts:
 *   image_data.c     the directories, the data splits, the models, the classifiers
 *   image_sample.c   sampling rows in batches (rerun row by row on divergence)
 *   image_png.c      PNG grids of 8x8 images
 *   image_metrics.c  PSNR, SSIM, Frechet distance (image_metrics.h; no liblgd)
 *
 * The data (data/digits/, tools/train/make_digits_split.py): scikit-learn's 8x8
 * handwritten digits, images [N][64] row-major in [-1, 1] and labels [N] (0..9), split
 * into train / tune / test. The models (models/, tools/train/): the unconditional
 * denoiser digits_unet.safetensors (1x8x8), the clean classifier
 * digits_classifier.safetensors (mlp 64 -> 10 logits, time input t = 0; the loss that
 * guides), the noise-aware classifier digits_noisy_classifier.safetensors (its file's
 * adapter maps sigma to its input, <lgd/network_loss.h> INPUT_NOISY; CG), and the judge
 * digits_judge.safetensors (another clean classifier, trained apart with another seed
 * and width: it scores the results - accuracy, Frechet features - so that no metric is
 * computed by the network the guidance optimised).
 */
#ifndef LGD_TOOL_IMAGE_H
#define LGD_TOOL_IMAGE_H

#include <stdint.h>

#include <lgd/lgd.h>

#include "tool.h"

#define IMG_SIDE 8
#define IMG_DIM 64
#define IMG_CLASSES 10
#define IMG_PATH_MAX 4096

/* ---- directories, data and models (image_data.c) ---- */

/*
 * The data and model directories: the option's value when given (data_opt, models_opt
 * non-NULL); else $LGD_DATA_DIR / $LGD_MODEL_DIR when set; else data/digits and models
 * under the current directory when they exist; else those of the source tree the tool
 * was built from (LGD_TOOL_SOURCE_ROOT, set by meson) when they exist. 0, or 1 with a
 * message naming the option to give.
 */
int img_find_dirs(const char *cmd, const char *data_opt, const char *models_opt,
                  char data[IMG_PATH_MAX], char models[IMG_PATH_MAX]);

/* The context of --backend and --threads (tool_context_create), with OpenMP's thread
 * count set to `threads` too when it is > 0. 0, or 1 with a message. */
int img_context_create(const char *cmd, int backend_choice, int32_t threads, lgd_context **ctx);

/* A split of the digits: n images [n][IMG_DIM] and their labels. */
typedef struct img_set {
    int64_t n;
    float *x;
    int32_t *labels;
} img_set;

/* Reads DIR/SPLIT_images.npy ([N][64], or [N][1][8][8]) and DIR/SPLIT_labels.npy ([N],
 * integers 0..9) into s; 0, or 1 with a message. */
int img_load_split(const char *cmd, const char *dir, const char *split, img_set *s);
void img_set_free(img_set *s);
/* The first `count` images of each label, in file order, into out (fewer when a label
 * has fewer): images and labels copied. 0, or 1 (out of memory). */
int img_set_per_label(const char *cmd, const img_set *s, int64_t count, img_set *out);

/* The shipped models, loaded on one context. */
typedef struct img_models {
    lgd_context *ctx;
    lgd_model *unet;       /* D(x, sigma) of digits_unet.safetensors, its file's adapter */
    lgd_network *clf;      /* the clean classifier (logits) */
    lgd_network *noisy;    /* the noise-aware classifier, or NULL when not asked for */
    lgd_network *judge;    /* the judge (digits_judge.safetensors); when that file is
                              missing, clf itself (judge_is_clf = 1, not owned) */
    int judge_is_clf;
    float clf_t;           /* the clean classifiers' time input */
    float sigma_min, sigma_max; /* the samplers' Karras range (img_models_load) */
    int64_t unet_params, clf_params, noisy_params, judge_params; /* weights of each */
    char unet_desc[96];    /* "edm prediction, log_sigma time input" etc. */
    char unet_path[IMG_PATH_MAX], clf_path[IMG_PATH_MAX], noisy_path[IMG_PATH_MAX];
    char judge_path[IMG_PATH_MAX];
} img_models;

/*
 * Loads DIR/digits_unet.safetensors, DIR/digits_classifier.safetensors,
 * DIR/digits_noisy_classifier.safetensors (need_noisy: 0 not, 1 required, 2 when the file
 * exists) and DIR/digits_judge.safetensors (when it exists; else the judge is the clean
 * classifier, judge_is_clf = 1) on ctx; checks their shapes (64 in, 64 / 10 out,
 * unconditional). The samplers' range: Karras 80 -> 0.002 (EDM's, the
 * library's defaults), narrowed to the model's own sigmas when its adapter is a discrete
 * VP schedule. 0, or 1 with a message.
 */
int img_models_load(const char *cmd, lgd_context *ctx, const char *dir, int need_noisy,
                    float clf_t, img_models *m);
void img_models_free(img_models *m);

/* The logits[n][IMG_CLASSES] of the images x[n][IMG_DIM] by the clean classifier net
 * (m->clf or m->judge) at time input m->clf_t. 0 or 1. */
int img_logits(const char *cmd, img_models *m, lgd_network *net, const float *x, int64_t n,
               float *logits);

/* The noise-aware classifier's log-probabilities logp[n][IMG_CLASSES] of x[n][IMG_DIM]
 * at noise level sigma (-CE of each label, by a network loss with INPUT_NOISY: the file's
 * adapter). 0 or 1. */
int img_noisy_logprobs(const char *cmd, img_models *m, const float *x, int64_t n, float sigma,
                       float *logp);

/* --methods LIST: use[k] = 1 for each of keys[nkeys] named in the comma-separated list
 * (every method when list is NULL). 0, or TOOL_EXIT_USAGE after a message. */
int img_parse_methods(const char *cmd, const char *list, const char *const *keys, int nkeys,
                      int *use);

/* Clips every value of x[n] to [-1, 1] (NaN stays NaN). */
void img_clip(float *x, int64_t n);

/* ---- sampling (image_sample.c) ---- */

/* Builds the sampler of rows first .. first + rows - 1 of a run (their losses' targets or
 * labels), into *out (the caller destroys it). 0, or 1 with a message. */
typedef int (*img_build_fn)(void *user, int64_t first, int64_t rows, lgd_sampler **out);

/*
 * Samples `rows` rows in batches of at most `batch`: for each batch a sampler from build,
 * run from sigma_max noise with seed `seed` and rows numbered from row_base + first (so a
 * row is the same sample whatever the batch). A batch that fails with LGD_ERR_NON_FINITE
 * is said on stderr and rerun row by row; rows that fail alone are marked failed[r] = 1
 * and their samples are NaN. out[rows][IMG_DIM]; failed[rows]. Progress: `units` over
 * the whole call, with the detail text. 0, or 1 on any other error (with a message).
 */
int img_sample(const char *cmd, lgd_context *ctx, img_build_fn build, void *user, int64_t rows,
               int64_t batch, uint64_t seed, uint64_t row_base, progress *pr, double units,
               const char *detail, float *out, unsigned char *failed);

/* The DDIM sampler (eta) and the EDM stochastic Heun sampler (churn, tmin, tmax, noise)
 * on the models' Karras grid (rho 7) of `steps` steps, into *so. */
void img_sampler_ddim(lgd_sampler_options *so, const img_models *m, int32_t steps, float eta);
void img_sampler_heun(lgd_sampler_options *so, const img_models *m, int32_t steps, float churn,
                      float tmin, float tmax, float noise);

/* ---- PNG grids (image_png.c) ---- */

/*
 * Writes DIR/NAME, a PNG of rows x cols tiles: tiles[r * cols + c] is an 8x8 image in
 * [-1, 1] (clipped; NaN pixels, a failed sample, mid-grey; NULL: no tile, the white
 * background), each pixel drawn as a zoom x zoom block, tiles 2 pixels apart. 0, or 1
 * with a message (also when the tool was built without libpng).
 */
int img_write_png_grid(const char *cmd, const char *dir, const char *name,
                       const float *const *tiles, int rows, int cols, int zoom);
/* 1 when PNG grids can be written (the tool was built with libpng). */
int img_png_available(void);

#endif /* LGD_TOOL_IMAGE_H */
