/*
 * make_seeds.c - writes the seed corpora of the fuzz targets (fuzz/README.md):
 *
 *   fuzz_make_seeds weights OUT_DIR FIXTURE_DIR
 *       descriptions for fuzz_weights_structured: a small valid network of every
 *       architecture and every layer kind (and variants: conditional, GELU, each
 *       prediction and time input, F16/BF16/F64 weights, scale-shift, average pooling),
 *       and one description per fixture FIXTURE_DIR/NAME.safetensors (its metadata
 *       read back with lgd_network_metadata(), the same dtype and schedule length);
 *   fuzz_make_seeds api OUT_DIR
 *       op sequences for fuzz_api (fuzz_api_seeds.h): a guided run of each sampler
 *       with each estimator and loss kind, and the calls around them.
 *
 * Every seed decodes to what it says (netgen_encode / the fuzz_api encoder), so
 * libFuzzer starts from inputs that load and run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netgen.h"
#include "fuzz_api_seeds.h"

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "fuzz_make_seeds: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f) ? -1 : 0;
}

static int write_desc(const char *dir, const char *name, const ng_desc *d)
{
    uint8_t buf[8192];
    size_t n = netgen_encode(d, buf, sizeof buf);
    if (!n) {
        fprintf(stderr, "fuzz_make_seeds: %s does not encode\n", name);
        return -1;
    }
    /* the seed must decode to the same description */
    ng_desc back;
    netgen_decode(buf, n, &back);
    int same = back.n_meta == d->n_meta && back.dtype == d->dtype &&
               back.alphas_len == d->alphas_len && back.batch == d->batch && back.t == d->t;
    for (int i = 0; same && i < d->n_meta; i++)
        same = !strcmp(back.meta[i].key, d->meta[i].key) &&
               !strcmp(back.meta[i].value, d->meta[i].value);
    if (!same) {
        fprintf(stderr, "fuzz_make_seeds: %s does not round-trip\n", name);
        return -1;
    }
    return write_file(dir, name, buf, n);
}

/* a description from "key=value;key=value" (keys without the "lgd." prefix) */
static void desc_from(ng_desc *d, int dtype, int alphas, const char *spec)
{
    memset(d, 0, sizeof *d);
    d->dtype = dtype;
    d->alphas_len = alphas;
    d->batch = 2;
    d->t = 37.5f;
    d->seed = 7;
    char buf[1024];
    snprintf(buf, sizeof buf, "format=1;%s", spec);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char key[64];
        snprintf(key, sizeof key, "lgd.%s", kv);
        netgen_set(d, key, eq + 1);
    }
}

static const struct {
    const char *name;
    int dtype, alphas;
    const char *spec;
} builtin[] = {
    { "mlp", 0, 20, "architecture=mlp;dim=3;hidden=8;depth=1;time_embed_dim=4" },
    { "mlp_depth0_gelu", 0, 20, "architecture=mlp;act=gelu;dim=2;hidden=4;depth=0;time_embed_dim=2" },
    { "mlp_cond_edm", 0, 0, "architecture=mlp;prediction=edm;time_input=log_sigma;sigma_data=0.5;dim=4;hidden=6;depth=1;time_embed_dim=4;cond_dim=2" },
    { "mlp_x0_sigma", 1, 0, "architecture=mlp;prediction=x0;time_input=sigma;dim=2;hidden=4;depth=2;time_embed_dim=2" },
    { "mlp_v_round_bf16", 2, 10, "architecture=mlp;prediction=v;time_input=discrete_round;dim=3;hidden=4;depth=1;time_embed_dim=4" },
    { "mlp_f64", 3, 5, "architecture=mlp;dim=1;hidden=2;depth=1;time_embed_dim=2" },
    { "unet", 0, 20, "architecture=unet;in_channels=1;out_channels=1;model_channels=4;channel_mult=1,2;num_res_blocks=1;attention_levels=1;num_heads=1;num_groups=2;image_size=4;kernel_size=3" },
    { "unet_ss_pool_cond", 0, 20, "architecture=unet;in_channels=2;out_channels=2;model_channels=4;channel_mult=1,1;num_res_blocks=1;attention_levels=;num_heads=2;num_groups=2;num_classes=3;conv_resample=0;use_scale_shift_norm=1;image_size=4;time_embed_dim=8" },
    { "unet_one_level", 1, 20, "architecture=unet;in_channels=1;out_channels=1;model_channels=2;channel_mult=1;num_res_blocks=1;attention_levels=0;num_heads=1;num_groups=1;image_size=2;kernel_size=1" },
    { "temporal_unet", 0, 20, "architecture=temporal_unet;in_channels=2;out_channels=2;model_channels=4;channel_mult=1,2;num_res_blocks=1;attention_levels=1;num_heads=2;num_groups=2;horizon=8;kernel_size=3" },
    { "temporal_unet_pool", 2, 20, "architecture=temporal_unet;in_channels=1;out_channels=1;model_channels=2;channel_mult=1,1,1;num_res_blocks=1;attention_levels=;num_heads=1;num_groups=1;horizon=4;conv_resample=0;use_scale_shift_norm=1" },
    { "layer_linear", 0, 0, "architecture=layer;layer=linear;input_shape=3;out_features=2" },
    { "layer_linear_nobias", 0, 0, "architecture=layer;layer=linear;input_shape=2,3;out_features=4;bias=false" },
    { "layer_conv1d", 0, 0, "architecture=layer;layer=conv1d;input_shape=2,5;out_channels=3;kernel_size=3;padding=1" },
    { "layer_conv2d_stride2", 0, 0, "architecture=layer;layer=conv2d;input_shape=2,4,4;out_channels=2;kernel_size=3;stride=2;padding=1" },
    { "layer_group_norm", 0, 0, "architecture=layer;layer=group_norm;input_shape=4,2,2;num_groups=2;eps=1e-5" },
    { "layer_layer_norm", 0, 0, "architecture=layer;layer=layer_norm;input_shape=5" },
    { "layer_silu", 0, 0, "architecture=layer;layer=silu;input_shape=2,3" },
    { "layer_gelu", 0, 0, "architecture=layer;layer=gelu;input_shape=4" },
    { "layer_attention", 0, 0, "architecture=layer;layer=attention;input_shape=4,2,2;num_heads=2;num_groups=2" },
    { "layer_attention_1d", 0, 0, "architecture=layer;layer=attention;input_shape=2,3;num_heads=1;num_groups=1" },
    { "layer_resblock", 0, 0, "architecture=layer;layer=resblock;input_shape=2,2,2;out_channels=4;time_embed_dim=4;num_groups=2;kernel_size=3" },
    { "layer_resblock_ss", 0, 0, "architecture=layer;layer=resblock;input_shape=2,4;out_channels=2;time_embed_dim=2;num_groups=1;kernel_size=1;use_scale_shift_norm=1" },
    { "layer_upsample", 0, 0, "architecture=layer;layer=upsample;input_shape=2,2,2;conv_resample=1;kernel_size=3" },
    { "layer_upsample_nearest", 0, 0, "architecture=layer;layer=upsample;input_shape=2,3,4;conv_resample=0" },
    { "layer_downsample", 0, 0, "architecture=layer;layer=downsample;input_shape=2,4,4;conv_resample=1" },
    { "layer_downsample_pool", 0, 0, "architecture=layer;layer=downsample;input_shape=2,4;conv_resample=0" },
    { "layer_concat", 0, 0, "architecture=layer;layer=concat;input_shape=2,2,2" },
    { "layer_time_embedding", 0, 0, "architecture=layer;layer=time_embedding;input_shape=4;time_embed_dim=4" },
};

static int weights_seeds(const char *out, const char *fixtures)
{
    int bad = 0, n = 0;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        ng_desc d;
        desc_from(&d, builtin[i].dtype, builtin[i].alphas, builtin[i].spec);
        bad |= write_desc(out, builtin[i].name, &d);
        n++;
    }
    DIR *dir = fixtures ? opendir(fixtures) : NULL;
    if (fixtures && !dir) {
        fprintf(stderr, "fuzz_make_seeds: cannot open %s\n", fixtures);
        return 1;
    }
    lgd_context *ctx = NULL;
    if (dir && lgd_context_create(NULL, &ctx, NULL)) {
        closedir(dir);
        return 1;
    }
    for (struct dirent *e; dir && (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len < 13 || strcmp(e->d_name + len - 12, ".safetensors") ||
            strstr(e->d_name, ".ref."))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", fixtures, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        static unsigned char head[65536];
        size_t got = fread(head, 1, sizeof head - 1, f);
        fclose(f);
        head[got] = 0;
        lgd_network *net = NULL;
        if (lgd_network_load(ctx, path, &net)) {
            fprintf(stderr, "fuzz_make_seeds: %s: %s\n", path, lgd_context_last_error(ctx));
            bad = 1;
            continue;
        }
        ng_desc d;
        memset(&d, 0, sizeof d);
        const char *hdr = (const char *)head + 8;
        d.dtype = strstr(hdr, "\"BF16\"") ? 2 : strstr(hdr, "\"F16\"") ? 1
                : strstr(hdr, "\"F64\"") ? 3 : 0;
        lgd_adapter_options ao = LGD_ADAPTER_OPTIONS_INIT;
        d.alphas_len = lgd_network_adapter_options(net, &ao) == LGD_OK && ao.alphas_cumprod
                           ? ao.num_timesteps : 0;
        d.batch = 2;
        d.t = 37.5f;
        d.seed = (uint8_t)len;
        for (int k = 0; k < ng_n_keys; k++) {
            const char *v = lgd_network_metadata(net, ng_keys[k].name);
            if (v)
                netgen_set(&d, ng_keys[k].name, v);
        }
        lgd_network_destroy(net);
        char name[300];
        snprintf(name, sizeof name, "fixture_%.*s", (int)(len - 12), e->d_name);
        bad |= write_desc(out, name, &d);
        n++;
    }
    if (dir)
        closedir(dir);
    lgd_context_destroy(ctx);
    printf("fuzz_make_seeds: %d weights seeds in %s\n", n, out);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "weights"))
        return weights_seeds(argv[2], argc > 3 ? argv[3] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "api")) {
        int n = 0;
        for (size_t i = 0; i < FZ_API_N_SEEDS; i++) {
            uint8_t buf[4096];
            size_t len = fz_api_seed((int)i, buf, sizeof buf);
            char name[64];
            snprintf(name, sizeof name, "api_seed_%02zu", i);
            if (!len || write_file(argv[2], name, buf, len))
                return 1;
            n++;
        }
        printf("fuzz_make_seeds: %d api seeds in %s\n", n, argv[2]);
        return 0;
    }
    fprintf(stderr, "usage: fuzz_make_seeds weights OUT_DIR [FIXTURE_DIR] | api OUT_DIR\n");
    return 2;
}
