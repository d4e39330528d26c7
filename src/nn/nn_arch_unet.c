/*
 * nn_arch_unet.c - architectures "unet" (ADM U-Net on images) and "temporal_unet" (the
 * same in 1-D on trajectories) of docs/network-format.md. One builder serves both: the
 * temporal U-Net is the 2-D one with 1-D convolutions, a horizon for the image size and
 * a transpose at each end (time-major data), and the rest of the layout is shared.
 */
#include <stdio.h>

#include "core/checked.h"
#include "nn/nn_builder.h"

#define MAX_LEVELS 8

/* An AttentionBlock of the U-Net: with head_ch > 0 (lgd.num_head_channels) it has
 * C / head_ch heads, else u->heads; groups > 0 is its GroupNorm's group count, 0 means no
 * GroupNorm at all (qkv of x itself: diffusers' scale-shift middle attention). */
static int attention(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix,
                     int32_t head_ch, int32_t groups)
{
    nn_unet_cfg a = *u;
    const nn_value *vx = nnb_val(b, x);
    int32_t C = vx->c;
    if (b->st)
        return -1;
    if (head_ch > 0) {
        if (C % head_ch)
            return nnb_fail(b, LGD_ERR_FORMAT, "%s: %d channels do not split into heads of "
                            "lgd.num_head_channels = %d", prefix, (int)C, (int)head_ch);
        a.heads = C / head_ch;
    }
    if (groups > 0) {
        a.groups = groups;
        return nnb_attention(b, &a, x, prefix);
    }
    /* nnb_attention without its GroupNorm */
    if (C % a.heads)
        return nnb_fail(b, LGD_ERR_FORMAT, "%s: %d channels do not split into %d heads", prefix,
                        (int)C, (int)a.heads);
    char name[192];
    int32_t hh = vx->h, ww = vx->w;
    nnb_join(name, sizeof name, prefix, "qkv");
    int qkv = nnb_conv(b, x, 3 * C, 1, 1, 0, name, 1, 1);
    if (b->st)
        return -1;
    const nn_value *vq = nnb_val(b, qkv);
    int att = nnb_value(b, C, hh, ww, vq->shared, vq->needs_grad);
    nn_op *o = nnb_op(b, NN_ATTENTION, qkv, -1, att);
    if (!o)
        return -1;
    size_t S = (size_t)hh * (size_t)ww, scratch;
    if (lgd_mul3_size((size_t)a.heads, S, S, &scratch) || scratch > ((size_t)1 << 40))
        return nnb_fail(b, LGD_ERR_FORMAT, "%s: attention over %zu positions with %d heads is "
                        "too large", prefix, S, (int)a.heads);
    o->heads = a.heads;
    o->scratch = scratch;
    nnb_join(name, sizeof name, prefix, "proj_out");
    int p = nnb_conv(b, att, C, 1, 1, 0, name, 1, 1);
    return nnb_add(b, x, p);
}

static int build_unet(nn_builder *b, int temporal, int64_t *dim)
{
    nn_unet_cfg u;
    int32_t in_ch = nnb_meta_int(b, "lgd.in_channels", 0, 0, 1, 1 << 16);
    int32_t out_ch = nnb_meta_int(b, "lgd.out_channels", 0, 0, 1, 1 << 16);
    int32_t C0 = nnb_meta_int(b, "lgd.model_channels", 0, 0, 1, 1 << 16);
    int32_t R = nnb_meta_int(b, "lgd.num_res_blocks", 0, 0, 1, 64);
    u.heads = nnb_meta_int(b, "lgd.num_heads", 1, 1, 1, 1024);
    u.groups = nnb_meta_int(b, "lgd.num_groups", 1, 32, 1, 1 << 16);
    /* since 0.5.0 (diffusers' per-level heads, its norm-free middle attention) */
    int32_t head_ch = nnb_meta_int(b, "lgd.num_head_channels", 1, 0, 0, 1 << 16);
    int32_t mid_groups = nnb_meta_int(b, "lgd.middle_attention_groups", 1, u.groups, 0, 1 << 16);
    int32_t classes = nnb_meta_int(b, "lgd.num_classes", 1, 0, 0, 1 << 20);
    u.conv_resample = nnb_meta_int(b, "lgd.conv_resample", 1, 1, 0, 1);
    u.scale_shift = nnb_meta_int(b, "lgd.use_scale_shift_norm", 1, 0, 0, 1);
    u.kernel = nnb_meta_int(b, "lgd.kernel_size", 1, temporal ? 5 : 3, 1, 31);
    int32_t E = nnb_meta_int(b, "lgd.time_embed_dim", 1, 4 * C0, 1, 1 << 18);
    int32_t side = temporal ? nnb_meta_int(b, "lgd.horizon", 0, 0, 1, 1 << 20)
                            : nnb_meta_int(b, "lgd.image_size", 0, 0, 1, 1 << 14);
    int32_t mult[MAX_LEVELS], att[MAX_LEVELS];
    int levels = nnb_meta_list(b, "lgd.channel_mult", mult, MAX_LEVELS, 1, 64);
    int n_att = nnb_meta_list(b, "lgd.attention_levels", att, MAX_LEVELS, 0, MAX_LEVELS - 1);
    if (b->st)
        return -1;
    if (levels == 0)
        return nnb_fail(b, LGD_ERR_FORMAT, "lgd.channel_mult is empty");
    if (head_ch > 0 && nnb_meta(b, "lgd.num_heads"))
        return nnb_fail(b, LGD_ERR_FORMAT, "give lgd.num_heads or lgd.num_head_channels, not both");
    if (u.kernel % 2 == 0)
        return nnb_fail(b, LGD_ERR_FORMAT, "lgd.kernel_size = %d must be odd", (int)u.kernel);
    if (side % (1 << (levels - 1)))
        return nnb_fail(b, LGD_ERR_FORMAT, "the %s %d is not divisible by 2^(levels - 1) = %d",
                        temporal ? "horizon" : "image size", (int)side, 1 << (levels - 1));
    int has_att[MAX_LEVELS] = { 0 };
    for (int i = 0; i < n_att; i++) {
        if (att[i] >= levels)
            return nnb_fail(b, LGD_ERR_FORMAT, "lgd.attention_levels names level %d of %d",
                            (int)att[i], levels);
        has_att[att[i]] = 1;
    }
    b->dims = temporal ? 1 : 2;
    b->g->cond_dim = classes;
    int x, h;
    if (temporal) {
        *dim = (int64_t)side * in_ch;
        x = nnb_value(b, side, 1, in_ch, 0, 1);
        h = nnb_transpose(b, x, side, in_ch); /* [T][C] -> [C][T] */
    } else {
        *dim = (int64_t)in_ch * side * side;
        x = nnb_value(b, in_ch, side, side, 0, 1);
        h = x;
    }
    b->g->input = x;
    int emb = nnb_time_mlp(b, C0, E, "time_embed");
    if (classes > 0) {
        int c = nnb_value(b, classes, 1, 1, 0, 0);
        if (!nnb_op(b, NN_COND, -1, -1, c))
            return -1;
        emb = nnb_add(b, emb, nnb_linear(b, c, E, "label_emb", 0, 1));
    }
    int emb_act = nnb_activation(b, emb);
    /* guided diffusion: the first conv gives channel_mult[0] * C0 channels */
    h = nnb_conv(b, h, mult[0] * C0, u.kernel, 1, u.kernel / 2, "input_blocks.0.0", b->dims, 1);
    int hs[MAX_LEVELS * 66];
    int n_hs = 0, block = 1;
    hs[n_hs++] = h;
    char p[96], q[128];
    for (int level = 0; level < levels && !b->st; level++) {
        for (int32_t r = 0; r < R && !b->st; r++) {
            snprintf(p, sizeof p, "input_blocks.%d", block++);
            nnb_join(q, sizeof q, p, "0");
            h = nnb_resblock(b, &u, h, emb_act, mult[level] * C0, q);
            if (has_att[level]) {
                nnb_join(q, sizeof q, p, "1");
                h = attention(b, &u, h, q, head_ch, u.groups);
            }
            hs[n_hs++] = h;
        }
        if (level != levels - 1) {
            snprintf(p, sizeof p, "input_blocks.%d", block++);
            nnb_join(q, sizeof q, p, "0");
            h = nnb_downsample(b, &u, h, q);
            hs[n_hs++] = h;
        }
    }
    h = nnb_resblock(b, &u, h, emb_act, nnb_val(b, h)->c, "middle_block.0");
    h = attention(b, &u, h, "middle_block.1", head_ch, mid_groups);
    h = nnb_resblock(b, &u, h, emb_act, nnb_val(b, h)->c, "middle_block.2");
    block = 0;
    for (int level = levels - 1; level >= 0 && !b->st; level--) {
        for (int32_t r = 0; r <= R && !b->st; r++) {
            snprintf(p, sizeof p, "output_blocks.%d", block++);
            h = nnb_concat(b, h, hs[--n_hs]);
            nnb_join(q, sizeof q, p, "0");
            h = nnb_resblock(b, &u, h, emb_act, mult[level] * C0, q);
            int sub = 1;
            if (has_att[level]) {
                nnb_join(q, sizeof q, p, "%d", sub++);
                h = attention(b, &u, h, q, head_ch, u.groups);
            }
            if (level > 0 && r == R) {
                nnb_join(q, sizeof q, p, "%d", sub++);
                h = nnb_upsample(b, &u, h, q);
            }
        }
    }
    h = nnb_norm(b, h, u.groups, 1e-5f, "out.0");
    h = nnb_activation(b, h);
    h = nnb_conv(b, h, out_ch, u.kernel, 1, u.kernel / 2, "out.2", b->dims, 1);
    if (temporal)
        h = nnb_transpose(b, h, out_ch, side); /* [C][T] -> [T][C] */
    return h;
}

int nnb_arch_unet(nn_builder *b, int64_t *dim) { return build_unet(b, 0, dim); }

int nnb_arch_temporal_unet(nn_builder *b, int64_t *dim) { return build_unet(b, 1, dim); }
