/*
 * plugin_internal.h - the plugin loader's private interface (lgd/plugin.h is the public
 * one): opening a plugin and checking its description (plugin_open.c), and the dlopen
 * reference that every loss and model made by a plugin holds (struct lgd_loss's and
 * struct lgd_model's `plugin` field), dropped by the object's final release after its
 * own destroy callbacks have run.
 */
#ifndef LGD_PLUGIN_INTERNAL_H
#define LGD_PLUGIN_INTERNAL_H

#include "core/internal.h"

/* An open plugin: its dlopen handle (one reference) and its checked description. */
typedef struct lgd_plugin {
    void *handle;
    const lgd_plugin_info *info;
} lgd_plugin;

/* dlopen()s path (RTLD_NOW | RTLD_LOCAL), calls its entry point and checks the
 * description: the versions, one copy of liblgd, the loss and model tables (every entry
 * named, uniquely, with a create function). Messages begin with fn (the public
 * function) and name the path and, once known, the plugin's name. On failure nothing
 * stays open. Statuses: those of lgd_loss_load_plugin() but LGD_ERR_CALLBACK. */
lgd_status lgd_plugin_open(lgd_context *ctx, const char *fn, const char *path,
                           lgd_plugin *out);

/* Drops one dlopen reference (dlclose); NULL is a no-op. Any thread. */
void lgd_plugin_handle_release(void *handle);

/* "a, b, c" (the names of the plugin's losses, or of its models), or "none", into buf. */
void lgd_plugin_list_names(const lgd_plugin_info *info, int models, char *buf, size_t size);

#endif
