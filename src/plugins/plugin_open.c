/*
 * plugin_open.c - opening a plugin (lgd/plugin.h): dlopen(), the entry point, and every
 * check of the description it returns before any of its code is trusted further:
 *  1. the plugin ABI version (the first three fields of lgd_plugin_info keep their place
 *     in every ABI version, so they can be read before the rest is known);
 *  2. the liblgd version it was built for: the same major version, not newer than this
 *     library (a newer plugin may call functions this one lacks);
 *  3. the layout: a struct_size that covers this ABI's fields, a name;
 *  4. one copy of liblgd: the plugin's lgd_version_fn (the address of lgd_version as the
 *     plugin's references resolve) must be this library's own lgd_version; a host linked
 *     with the static liblgd.a loading a plugin linked with liblgd.so gets a second copy,
 *     whose objects this copy cannot use;
 *  5. the tables: counts >= 0, every entry named (uniquely) and with a create function.
 * dlerror() is per thread on glibc (and POSIX.1-2024): it is read right after the call
 * that failed, on the same thread. Nothing here is global.
 */
#define _GNU_SOURCE /* dladdr */

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "plugins/plugin_internal.h"

_Static_assert(sizeof(lgd_plugin_entry_fn) == sizeof(void *),
               "dlsym's object pointer must hold a function pointer");

/* The offset up to which every ABI version's lgd_plugin_info agrees. */
#define VERSION_FIELDS_END (offsetof(lgd_plugin_info, lgd_version) + sizeof(uint32_t))

void lgd_plugin_handle_release(void *handle)
{
    if (handle)
        dlclose(handle);
}

/* The file a function lives in, for messages ("?" when the loader cannot tell). */
static const char *file_of(uint32_t (*fn)(void))
{
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    Dl_info di;
    if (addr && dladdr(addr, &di) && di.dli_fname && di.dli_fname[0])
        return di.dli_fname;
    return "?";
}

static void version_text(uint32_t v, char *buf, size_t size)
{
    snprintf(buf, size, "%u.%u.%u", (unsigned)(v / 10000), (unsigned)(v / 100 % 100),
             (unsigned)(v % 100));
}

void lgd_plugin_list_names(const lgd_plugin_info *info, int models, char *buf, size_t size)
{
    int32_t n = models ? info->n_models : info->n_losses;
    size_t used = 0;
    buf[0] = '\0';
    if (n <= 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (int32_t i = 0; i < n && used + 1 < size; ++i) {
        const char *name = models ? info->models[i].name : info->losses[i].name;
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Checks one table: the entries' names (set, unique) and create functions. */
static lgd_status check_table(lgd_context *ctx, const char *fn, const char *path,
                              const lgd_plugin_info *info, int models)
{
    const char *kind = models ? "model" : "loss";
    int32_t n = models ? info->n_models : info->n_losses;
    const void *table = models ? (const void *)info->models : (const void *)info->losses;
    if (n < 0 || (n > 0 && table == NULL))
        return lgd_error(ctx, LGD_ERR_FORMAT,
                         "%s: plugin '%s' (%s): malformed description: %d %s entries at %p",
                         fn, path, info->name, (int)n, kind, table);
    for (int32_t i = 0; i < n; ++i) {
        const char *name = models ? info->models[i].name : info->losses[i].name;
        int has_create = models ? info->models[i].create != NULL
                                : info->losses[i].create != NULL;
        if (name == NULL || name[0] == '\0')
            return lgd_error(ctx, LGD_ERR_FORMAT,
                             "%s: plugin '%s' (%s): malformed description: %s entry %d has "
                             "no name", fn, path, info->name, kind, (int)i);
        if (!has_create)
            return lgd_error(ctx, LGD_ERR_FORMAT,
                             "%s: plugin '%s' (%s): malformed description: %s '%s' has no "
                             "create function", fn, path, info->name, kind, name);
        for (int32_t j = 0; j < i; ++j) {
            const char *other = models ? info->models[j].name : info->losses[j].name;
            if (strcmp(name, other) == 0)
                return lgd_error(ctx, LGD_ERR_FORMAT,
                                 "%s: plugin '%s' (%s): malformed description: two %s "
                                 "entries named '%s'", fn, path, info->name, kind, name);
        }
    }
    return LGD_OK;
}

/* The checks 1-5 above on a description; the message names fn and path. */
static lgd_status check_info(lgd_context *ctx, const char *fn, const char *path,
                             const lgd_plugin_info *info)
{
    if (info == NULL)
        return lgd_error(ctx, LGD_ERR_FORMAT, "%s: plugin '%s': its %s() returned NULL", fn,
                         path, LGD_PLUGIN_ENTRY_SYMBOL);
    if (info->struct_size < VERSION_FIELDS_END)
        return lgd_error(ctx, LGD_ERR_FORMAT,
                         "%s: plugin '%s': malformed description (struct_size %u; fill it "
                         "with LGD_PLUGIN_INFO_INIT)", fn, path, (unsigned)info->struct_size);
    if (info->abi_version != LGD_PLUGIN_ABI_VERSION)
        return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                         "%s: plugin '%s' was built for plugin ABI version %u; liblgd %s "
                         "loads version %d: rebuild the plugin with this liblgd's headers",
                         fn, path, (unsigned)info->abi_version, lgd_version_string(),
                         LGD_PLUGIN_ABI_VERSION);
    uint32_t host = lgd_version();
    if (info->lgd_version / 10000 != host / 10000 || info->lgd_version > host) {
        char built[32];
        version_text(info->lgd_version, built, sizeof built);
        return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                         "%s: plugin '%s' was built for liblgd %s, %s than this liblgd %s: "
                         "rebuild it with this liblgd's headers%s", fn, path, built,
                         info->lgd_version / 10000 != host / 10000
                             ? "another major version"
                             : "newer",
                         lgd_version_string(),
                         info->lgd_version > host ? " (or update liblgd)" : "");
    }
    if (info->struct_size < sizeof(lgd_plugin_info))
        return lgd_error(ctx, LGD_ERR_FORMAT,
                         "%s: plugin '%s': malformed description: struct_size %u, plugin ABI "
                         "%d's is %zu (fill it with LGD_PLUGIN_INFO_INIT)", fn, path,
                         (unsigned)info->struct_size, LGD_PLUGIN_ABI_VERSION,
                         sizeof(lgd_plugin_info));
    if (info->name == NULL || info->name[0] == '\0')
        return lgd_error(ctx, LGD_ERR_FORMAT,
                         "%s: plugin '%s': malformed description: no name", fn, path);
    if (info->lgd_version_fn == NULL)
        return lgd_error(ctx, LGD_ERR_FORMAT,
                         "%s: plugin '%s' (%s): malformed description: lgd_version_fn is "
                         "NULL (fill it with LGD_PLUGIN_INFO_INIT)", fn, path, info->name);
    uint32_t (*own)(void) = lgd_version;
    if (info->lgd_version_fn != own)
        return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                         "%s: plugin '%s' (%s) uses another copy of liblgd (%s) than this "
                         "program (%s): a program linked with the static liblgd cannot load "
                         "plugins; link it with the shared liblgd (pkg-config --libs lgd)",
                         fn, path, info->name, file_of(info->lgd_version_fn), file_of(own));
    lgd_status st = check_table(ctx, fn, path, info, 0);
    if (st == LGD_OK)
        st = check_table(ctx, fn, path, info, 1);
    return st;
}

lgd_status lgd_plugin_open(lgd_context *ctx, const char *fn, const char *path,
                           lgd_plugin *out)
{
    out->handle = NULL;
    out->info = NULL;
    (void)dlerror(); /* forget an earlier failure of this thread */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        return lgd_error(ctx, LGD_ERR_IO, "%s: cannot load plugin '%s': %s", fn, path,
                         why ? why : "dlopen failed without a reason");
    }
    (void)dlerror();
    void *sym = dlsym(h, LGD_PLUGIN_ENTRY_SYMBOL);
    if (sym == NULL) {
        const char *why = dlerror();
        lgd_status st = lgd_error(ctx, LGD_ERR_FORMAT,
                                  "%s: '%s' is not a liblgd plugin: it exports no %s (%s)", fn,
                                  path, LGD_PLUGIN_ENTRY_SYMBOL,
                                  why ? why : "the symbol's value is NULL");
        dlclose(h);
        return st;
    }
    lgd_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const lgd_plugin_info *info = entry();
    lgd_status st = check_info(ctx, fn, path, info);
    if (st != LGD_OK) {
        dlclose(h); /* after the message: it may quote the plugin's strings */
        return st;
    }
    out->handle = h;
    out->info = info;
    return LGD_OK;
}
