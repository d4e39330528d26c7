/*
 * nn_arch_layer.c - architecture "layer": one layer alone, named by lgd.layer, for the
 * parity tests against PyTorch (docs/network-format.md).
 */
#include <string.h>

#include "nn/nn_builder.h"

/* lgd.input_shape "C,H,W" | "C,T" | "F" */
static int layer_input(nn_builder *b, int *out_x)
{
    int32_t s[3];
    int n = nnb_meta_list(b, "lgd.input_shape", s, 3, 1, 1 << 24);
    if (b->st)
        return -1;
    if (n == 0)
        return nnb_fail(b, LGD_ERR_FORMAT, "lgd.input_shape is empty");
    b->dims = n == 3 ? 2 : 1;
    *out_x = n == 3 ? nnb_value(b, s[0], s[1], s[2], 0, 1)
                    : n == 2 ? nnb_value(b, s[0], 1, s[1], 0, 1) : nnb_value(b, s[0], 1, 1, 0, 1);
    return n;
}

static int build_layer(nn_builder *b)
{
    const char *kind = nnb_meta(b, "lgd.layer");
    if (!kind)
        return nnb_fail(b, LGD_ERR_FORMAT, "metadata key lgd.layer is required");
    int x = -1;
    int rank = layer_input(b, &x);
    if (rank < 0)
        return -1;
    b->g->input = x;
    const nn_value *vx = nnb_val(b, x);
    int32_t C = vx->c;
    nn_unet_cfg u;
    u.groups = nnb_meta_int(b, "lgd.num_groups", 1, 1, 1, 1 << 16);
    u.heads = nnb_meta_int(b, "lgd.num_heads", 1, 1, 1, 1024);
    u.kernel = nnb_meta_int(b, "lgd.kernel_size", 1, 3, 1, 31);
    u.conv_resample = nnb_meta_int(b, "lgd.conv_resample", 1, 1, 0, 1);
    u.scale_shift = nnb_meta_int(b, "lgd.use_scale_shift_norm", 1, 0, 0, 1);
    float eps = nnb_meta_float(b, "lgd.eps", 1e-5f, 0.0f, 1.0f);
    if (b->st)
        return -1;
    if (!strcmp(kind, "linear")) {
        int32_t out = nnb_meta_int(b, "lgd.out_features", 0, 0, 1, 1 << 24);
        int bias = nnb_meta_int(b, "lgd.bias", 1, 1, 0, 1);
        return nnb_linear(b, x, out, "", bias, 0);
    }
    if (!strcmp(kind, "conv1d") || !strcmp(kind, "conv2d")) {
        int want = !strcmp(kind, "conv2d") ? 3 : 2;
        if (rank != want)
            return nnb_fail(b, LGD_ERR_FORMAT, "%s needs a %s lgd.input_shape", kind,
                            want == 3 ? "C,H,W" : "C,T");
        int32_t out = nnb_meta_int(b, "lgd.out_channels", 0, 0, 1, 1 << 16);
        int32_t k = nnb_meta_int(b, "lgd.kernel_size", 0, 0, 1, 31);
        int32_t stride = nnb_meta_int(b, "lgd.stride", 1, 1, 1, 16);
        int32_t pad = nnb_meta_int(b, "lgd.padding", 1, 0, 0, 15);
        int bias = nnb_meta_int(b, "lgd.bias", 1, 1, 0, 1);
        return nnb_conv(b, x, out, k, stride, pad, "", b->dims, bias);
    }
    if (!strcmp(kind, "group_norm"))
        return nnb_norm(b, x, u.groups, eps, "");
    if (!strcmp(kind, "layer_norm"))
        return nnb_norm(b, x, 1, eps, "");
    if (!strcmp(kind, "silu") || !strcmp(kind, "gelu")) {
        b->act = kind[0] == 's' ? LGD_ACT_SILU : LGD_ACT_GELU;
        return nnb_activation(b, x);
    }
    if (!strcmp(kind, "attention"))
        return nnb_attention(b, &u, x, "");
    if (!strcmp(kind, "resblock")) {
        int32_t out = nnb_meta_int(b, "lgd.out_channels", 0, 0, 1, 1 << 16);
        int32_t E = nnb_meta_int(b, "lgd.time_embed_dim", 0, 0, 2, 1 << 16);
        if (b->st)
            return -1;
        if (u.kernel % 2 == 0) /* as the unet builder: "same" padding needs an odd kernel */
            return nnb_fail(b, LGD_ERR_FORMAT, "lgd.kernel_size = %d must be odd",
                            (int)u.kernel);
        int emb_act = nnb_activation(b, nnb_time_embed(b, E));
        return nnb_resblock(b, &u, x, emb_act, out, "");
    }
    if (!strcmp(kind, "upsample"))
        return nnb_upsample(b, &u, x, "");
    if (!strcmp(kind, "downsample"))
        return nnb_downsample(b, &u, x, "");
    if (!strcmp(kind, "concat")) {
        b->act = LGD_ACT_SILU;
        return nnb_concat(b, x, nnb_activation(b, x));
    }
    if (!strcmp(kind, "time_embedding")) {
        int32_t E = nnb_meta_int(b, "lgd.time_embed_dim", 0, 0, 2, 1 << 16);
        if (b->st)
            return -1;
        if ((int64_t)vx->h * vx->w != 1) /* the MLP gives one value per channel */
            return nnb_fail(b, LGD_ERR_FORMAT, "time_embedding needs one value per channel "
                            "(lgd.input_shape \"F\" or \"C,1,1\"), not %d x %d x %d",
                            (int)C, (int)vx->h, (int)vx->w);
        return nnb_add(b, x, nnb_time_mlp(b, E, C, "time_embed"));
    }
    return nnb_fail(b, LGD_ERR_FORMAT, "unknown lgd.layer \"%.40s\"", kind);
}

int nnb_arch_layer(nn_builder *b, int64_t *dim)
{
    int y = build_layer(b);
    if (!b->st)
        *dim = (int64_t)nn_value_numel(&b->g->values[b->g->input]);
    return y;
}
