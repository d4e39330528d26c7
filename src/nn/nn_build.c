/*
 * nn_build.c - builds a network graph from a parsed network file: checks lgd.format,
 * dispatches by lgd.architecture to its builder (nn_arch_*.c, which lay out the layers
 * of nn_layers.c from the hyperparameters read by nn_metadata.c), refuses tensors the
 * architecture did not ask for, and loads the weights into one backend buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked.h"
#include "nn/nn_build.h"
#include "nn/nn_builder.h"

/* the architectures by their lgd.architecture name */
static const struct {
    const char *name;
    int (*build)(nn_builder *b, int64_t *dim);
} archs[] = {
    { "mlp", nnb_arch_mlp },
    { "unet", nnb_arch_unet },
    { "temporal_unet", nnb_arch_temporal_unet },
    { "layer", nnb_arch_layer },
};

int nnb_fail(nn_builder *b, lgd_status st, const char *fmt, ...)
{
    if (b->st)
        return -1;
    char msg[LGD_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->st = lgd_error(b->ctx, st, "network file: %s", msg);
    return -1;
}

lgd_status nn_build(lgd_context *ctx, const lgd_st_file *file, nn_graph *g, int64_t *out_dim,
                    int64_t *out_out_dim)
{
    nn_builder b;
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    b.g = g;
    b.file = file;
    b.act = LGD_ACT_SILU;
    memset(g, 0, sizeof *g);
    g->input = g->output = -1;
    b.used = calloc(file->n_tensors ? file->n_tensors : 1, 1);
    if (!b.used)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network file: out of memory");

    const char *format = nnb_meta(&b, "lgd.format");
    const char *arch = nnb_meta(&b, "lgd.architecture");
    const char *act = nnb_meta(&b, "lgd.act");
    int64_t dim = 0;
    int out = -1;
    if (!format || strcmp(format, "1"))
        nnb_fail(&b, LGD_ERR_FORMAT,
                 "metadata lgd.format = %s%.20s%s (this liblgd reads format 1)",
                 format ? "\"" : "", format ? format : "(missing)", format ? "\"" : "");
    else if (!arch)
        nnb_fail(&b, LGD_ERR_FORMAT, "metadata key lgd.architecture is required");
    else if (act && strcmp(act, "silu") && strcmp(act, "gelu"))
        nnb_fail(&b, LGD_ERR_FORMAT, "unknown lgd.act \"%.20s\" (silu or gelu)", act);
    else {
        if (act && !strcmp(act, "gelu"))
            b.act = LGD_ACT_GELU;
        size_t k = 0;
        while (k < sizeof archs / sizeof archs[0] && strcmp(arch, archs[k].name))
            k++;
        if (k < sizeof archs / sizeof archs[0])
            out = archs[k].build(&b, &dim);
        else
            nnb_fail(&b, LGD_ERR_FORMAT, "unknown lgd.architecture \"%.40s\"", arch);
    }
    if (!b.st && out < 0)
        nnb_fail(&b, LGD_ERR_INTERNAL, "the network builder produced no output");
    if (!b.st)
        g->output = out;
    /* every tensor must be one the architecture asked for */
    for (size_t i = 0; !b.st && i < file->n_tensors; i++)
        if (!b.used[i] && strcmp(file->tensors[i].name, "lgd.alphas_cumprod"))
            nnb_fail(&b, LGD_ERR_FORMAT, "tensor %s is not part of this %s network (was the file "
                     "converted from a different configuration?)", file->tensors[i].name, arch);
    if (!b.st) {
        if (nn_graph_plan(g))
            nnb_fail(&b, LGD_ERR_FORMAT, "the network's activations are too large (a size "
                     "overflows)");
        /* one backend allocation for the weights, converted on the host */
        size_t bytes;
        float *host = NULL;
        if (!b.st && lgd_mul_size(g->n_weights ? g->n_weights : 1, sizeof *host, &bytes))
            nnb_fail(&b, LGD_ERR_FORMAT, "the weights' total size overflows");
        if (!b.st && !(host = malloc(bytes)))
            nnb_fail(&b, LGD_ERR_OUT_OF_MEMORY, "out of memory for %zu weights", g->n_weights);
        for (size_t i = 0; !b.st && i < b.n_req; i++)
            lgd_st_to_f32(b.req[i].t, host + b.req[i].off);
        if (!b.st) {
            lgd_status st = lgd_buffer_from_host(ctx, &g->weights, host,
                                                 g->n_weights ? g->n_weights : 1,
                                                 "network weights");
            if (st)
                b.st = st;
        }
        free(host);
    }
    free(b.used);
    free(b.req);
    if (b.st) {
        nn_graph_free(ctx, g);
        return b.st;
    }
    *out_dim = dim;
    *out_out_dim = (int64_t)nn_value_numel(&g->values[g->output]);
    return LGD_OK;
}
