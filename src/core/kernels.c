/*
 * kernels.c - finding a module's kernel table on the context's backend (kernels.h).
 */
#include "core/kernels.h"
#include "core/internal.h"

int lgd_kernels_find(lgd_context *ctx, const lgd_kernel_table *table, const char *what,
                     const void **out)
{
    *out = NULL;
    if (ctx->kind == LGD_BACKEND_CPU)
        *out = table->cpu;
    else if (ctx->ops->kernels)
        *out = ctx->ops->kernels(ctx->be, table->name, table->version);
    if (*out)
        return LGD_OK;
    return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                     "%s: the %s backend has no '%s' kernels (version %u); the module was "
                     "built without them or for another version",
                     what, ctx->backend_name, table->name, (unsigned)table->version);
}
