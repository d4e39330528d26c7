/*
 * plugin_load.c - lgd_loss_load_plugin() and lgd_model_load_plugin(): open the plugin
 * (plugin_open.c), find the entry by name, call its create function, check what it
 * returned, and hand the object the plugin's dlopen reference: the object's final
 * release drops it after the object's own destroy callbacks have run (loss.c, model.c),
 * so the plugin's code stays mapped while anything it made is alive.
 *
 * The create function runs like a callback: a message it sets with
 * lgd_context_set_callback_error() is put after the plugin's and the entry's names.
 * A create that fails without one gets the context's last error (a liblgd call it made
 * that failed) or a message saying it gave none. A create that succeeds leaves the
 * context's last error as it was.
 */
#include <string.h>

#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "plugins/plugin_internal.h"

/* What the create function returned, as one status and message. rc its return value,
 * kind "loss" or "model", saved the context's last error before the call (restored on
 * success by the caller). */
static lgd_status create_failed(lgd_context *ctx, const char *fn, const char *path,
                                const lgd_plugin_info *info, const char *kind,
                                const char *name, int32_t rc)
{
    lgd_status st;
    if (ctx->callback_error[0])
        st = lgd_error(ctx, LGD_ERR_CALLBACK, "%s: plugin '%s' (%s), %s '%s': %s", fn, path,
                       info->name, kind, name, ctx->callback_error);
    else if (ctx->error[0])
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), %s '%s': create returned %d without a message; "
                       "the context's last error: %s", fn, path, info->name, kind, name,
                       (int)rc, ctx->error);
    else
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), %s '%s': create returned %d and gave no "
                       "message (lgd_context_set_callback_error)", fn, path, info->name, kind,
                       name, (int)rc);
    ctx->callback_error[0] = '\0';
    return st;
}

static lgd_status not_found(lgd_context *ctx, const char *fn, const char *path,
                            const lgd_plugin_info *info, int models, const char *name)
{
    char mine[256], other[256];
    lgd_plugin_list_names(info, models, mine, sizeof mine);
    lgd_plugin_list_names(info, !models, other, sizeof other);
    return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                     "%s: plugin '%s' (%s) has no %s named '%s'; its %s: %s (its %s: %s)", fn,
                     path, info->name, models ? "model" : "loss", name,
                     models ? "models" : "losses", mine, models ? "losses" : "models", other);
}

/* Common argument checks; sets *out NULL first. */
static lgd_status check_args(lgd_context *ctx, const char *fn, const char *path,
                             const char *name, const void *out, const char *out_name)
{
    if (path == NULL || name == NULL || out == NULL)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         path == NULL ? "path" : name == NULL ? "name" : out_name);
    return LGD_OK;
}

lgd_status lgd_loss_load_plugin(lgd_context *context, const char *path, const char *name,
                                int64_t dim, const char *config, lgd_loss **out_loss)
{
    static const char fn[] = "lgd_loss_load_plugin";
    if (out_loss)
        *out_loss = NULL;
    if (!context)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_context *ctx = context;
    lgd_status st = check_args(ctx, fn, path, name, out_loss, "out_loss");
    if (st)
        return st;
    if (dim <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: dim is %lld; it must be > 0", fn,
                         (long long)dim);
    lgd_plugin p;
    if ((st = lgd_plugin_open(ctx, fn, path, &p)))
        return st;
    const lgd_plugin_info *info = p.info;
    const lgd_plugin_loss *entry = NULL;
    for (int32_t i = 0; i < info->n_losses && !entry; ++i)
        if (strcmp(info->losses[i].name, name) == 0)
            entry = &info->losses[i];
    if (!entry) {
        st = not_found(ctx, fn, path, info, 0, name);
        lgd_plugin_handle_release(p.handle);
        return st;
    }

    char saved[LGD_ERROR_CAP];
    memcpy(saved, ctx->error, sizeof saved);
    ctx->error[0] = '\0';
    lgd_callback_begin(ctx);
    lgd_loss *loss = NULL;
    int32_t rc = entry->create(ctx, dim, config ? config : "", &loss);
    if (rc != 0) {
        /* a create that broke the contract (*out_loss set on failure) keeps its object:
         * it is not known to be valid */
        st = create_failed(ctx, fn, path, info, "loss", name, rc);
    } else if (loss == NULL) {
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), loss '%s': create returned 0 but no loss", fn,
                       path, info->name, name);
    } else if (loss->ctx != ctx) {
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), loss '%s': create returned a loss of another "
                       "context", fn, path, info->name, name);
    } else if (loss->dim != dim) {
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), loss '%s': create returned a loss of dim %lld "
                       "for dim %lld", fn, path, info->name, name, (long long)loss->dim,
                       (long long)dim);
    }
    lgd_callback_begin(ctx); /* a message left by a create that succeeded is dropped */
    if (st != LGD_OK) {
        if (rc == 0)
            lgd_loss_release(loss); /* runs the plugin's destroy: before the dlclose */
        lgd_plugin_handle_release(p.handle);
        return st;
    }
    memcpy(ctx->error, saved, sizeof saved);
    /* an object that already holds a reference to its plugin (one the plugin keeps
     * and returned again) needs no second one */
    if (loss->plugin == NULL)
        loss->plugin = p.handle;
    else
        lgd_plugin_handle_release(p.handle);
    *out_loss = loss;
    return LGD_OK;
}

lgd_status lgd_model_load_plugin(lgd_context *context, const char *path, const char *name,
                                 const char *config, lgd_model **out_model)
{
    static const char fn[] = "lgd_model_load_plugin";
    if (out_model)
        *out_model = NULL;
    if (!context)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_context *ctx = context;
    lgd_status st = check_args(ctx, fn, path, name, out_model, "out_model");
    if (st)
        return st;
    lgd_plugin p;
    if ((st = lgd_plugin_open(ctx, fn, path, &p)))
        return st;
    const lgd_plugin_info *info = p.info;
    const lgd_plugin_model *entry = NULL;
    for (int32_t i = 0; i < info->n_models && !entry; ++i)
        if (strcmp(info->models[i].name, name) == 0)
            entry = &info->models[i];
    if (!entry) {
        st = not_found(ctx, fn, path, info, 1, name);
        lgd_plugin_handle_release(p.handle);
        return st;
    }

    char saved[LGD_ERROR_CAP];
    memcpy(saved, ctx->error, sizeof saved);
    ctx->error[0] = '\0';
    lgd_callback_begin(ctx);
    lgd_model *model = NULL;
    int32_t rc = entry->create(ctx, config ? config : "", &model);
    if (rc != 0) {
        st = create_failed(ctx, fn, path, info, "model", name, rc);
    } else if (model == NULL) {
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), model '%s': create returned 0 but no model", fn,
                       path, info->name, name);
    } else if (model->ctx != ctx) {
        st = lgd_error(ctx, LGD_ERR_CALLBACK,
                       "%s: plugin '%s' (%s), model '%s': create returned a model of another "
                       "context", fn, path, info->name, name);
    }
    lgd_callback_begin(ctx);
    if (st != LGD_OK) {
        if (rc == 0)
            lgd_model_release(model);
        lgd_plugin_handle_release(p.handle);
        return st;
    }
    memcpy(ctx->error, saved, sizeof saved);
    if (model->plugin == NULL)
        model->plugin = p.handle;
    else
        lgd_plugin_handle_release(p.handle);
    *out_model = model;
    return LGD_OK;
}
