/*
 * nn_arch_mlp.c - architecture "mlp": a time-conditioned residual MLP on vectors
 * (docs/network-format.md); lgd.out_dim (0.5.0) makes it a classifier or any map to
 * another width.
 */
#include <stdio.h>

#include "nn/nn_builder.h"

int nnb_arch_mlp(nn_builder *b, int64_t *dim)
{
    int32_t D = nnb_meta_int(b, "lgd.dim", 0, 0, 1, 1 << 24);
    int32_t H = nnb_meta_int(b, "lgd.hidden", 0, 0, 1, 1 << 16);
    int32_t L = nnb_meta_int(b, "lgd.depth", 0, 0, 0, 1024);
    int32_t E = nnb_meta_int(b, "lgd.time_embed_dim", 0, 0, 2, 1 << 16);
    int32_t K = nnb_meta_int(b, "lgd.cond_dim", 1, 0, 0, 1 << 20);
    /* 0.5.0: the output width (a classifier's logits); the input's by default */
    int32_t O = nnb_meta_int(b, "lgd.out_dim", 1, D > 0 ? D : 1, 1, 1 << 24);
    if (b->st)
        return -1;
    b->dims = 1;
    *dim = D;
    b->g->cond_dim = K;
    int x = nnb_value(b, D, 1, 1, 0, 1);
    b->g->input = x;
    int temb = nnb_time_mlp(b, E, H, "time_embed");
    int h = nnb_linear(b, x, H, "input", 1, 0);
    h = nnb_add(b, h, temb);
    if (K > 0) {
        int c = nnb_value(b, K, 1, 1, 0, 0);
        if (!nnb_op(b, NN_COND, -1, -1, c))
            return -1;
        h = nnb_add(b, h, nnb_linear(b, c, H, "cond_proj", 0, 0));
    }
    for (int32_t i = 0; i < L && !b->st; i++) {
        char p[64], n[96];
        snprintf(p, sizeof p, "blocks.%d", (int)i);
        nnb_join(n, sizeof n, p, "norm");
        int r = nnb_norm(b, h, 1, 1e-5f, n);
        r = nnb_activation(b, r);
        nnb_join(n, sizeof n, p, "fc1");
        r = nnb_linear(b, r, H, n, 1, 0);
        r = nnb_activation(b, r);
        nnb_join(n, sizeof n, p, "fc2");
        r = nnb_linear(b, r, H, n, 1, 0);
        h = nnb_add(b, h, r);
    }
    h = nnb_norm(b, h, 1, 1e-5f, "out_norm");
    h = nnb_activation(b, h);
    return nnb_linear(b, h, O, "output", 1, 0);
}
