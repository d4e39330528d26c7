/*
 * lgd/plugin.h - losses and models from shared objects (plugins), loaded at run time.
 *
 * A plugin is a shared object that exports one C function, named by
 * LGD_PLUGIN_ENTRY_SYMBOL ("lgd_plugin_entry"), of type lgd_plugin_entry_fn. It returns
 * a static description of the plugin: the plugin ABI version and the liblgd version it
 * was built against, its name, and tables of the losses and models it provides, each
 * made from a configuration string (the plugin defines its syntax, e.g.
 * "mask=mask.npy,known=y.npy,sigma=0.05"). A host loads one with
 * lgd_loss_load_plugin() / lgd_model_load_plugin(), which dlopen() the file, check the
 * versions (a mismatch is a clear error, not a crash), find the entry by name, call its
 * create function and keep the shared object loaded until the last object it created is
 * destroyed (each object holds its own dlopen reference, dropped after the object's own
 * destroy callbacks have run), so a host can never unload code that is still in use.
 *
 * A plugin builds its objects with the public API (lgd_loss_create_callbacks(), the
 * built-in losses, lgd_model_create_callbacks(), ...), so it links against liblgd
 * (`pkg-config --libs lgd`). Host and plugin must therefore share ONE copy of the
 * library: a host linked with the static liblgd.a cannot load plugins (the loader
 * detects a second copy through lgd_plugin_info.lgd_version_fn and refuses with
 * LGD_ERR_UNSUPPORTED). A create function must not unwind (a C++ plugin catches every
 * exception at its extern "C" boundary and returns a non-zero status); it reports why it
 * failed with lgd_context_set_callback_error(), whose message the loader puts after the
 * plugin's and the entry's names. Unlike a callback, a create function may call any
 * liblgd function on the context. Only the loss or model the loader returns holds the
 * plugin: the plugin must not hand the host anything else that calls back into its code
 * (e.g. a tensor wrapped with a release callback of its own) and must not rely on
 * process-wide state that outlives its objects (it is unloaded after the last one).
 * docs/plugins.md shows how to write, build and load one.
 *
 * (Since 0.4.0.)
 */
#ifndef LGD_PLUGIN_H
#define LGD_PLUGIN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The plugin ABI version this header describes. Incremented when lgd_plugin_info or the
 *  entry types change incompatibly; the loader refuses a plugin built for another
 *  version. (Since 0.4.0.) */
#define LGD_PLUGIN_ABI_VERSION 1

/** The name of the function a plugin exports. (Since 0.4.0.) */
#define LGD_PLUGIN_ENTRY_SYMBOL "lgd_plugin_entry"

/** Creates a loss of dimension dim (the model's; the plugin may refuse a dim it cannot
 *  serve) from config (never NULL; "" when the user gave none) on context, into
 *  *out_loss. Returns 0 on success, non-zero on failure (then *out_loss must be NULL,
 *  nothing is leaked, and a message set with lgd_context_set_callback_error() says why).
 *  (Since 0.4.0.) */
typedef int32_t (*lgd_plugin_loss_create_fn)(lgd_context *context, int64_t dim,
                                             const char *config, lgd_loss **out_loss);

/** Creates a model (a denoiser) from config on context, into *out_model; returns as
 *  lgd_plugin_loss_create_fn. (Since 0.4.0.) */
typedef int32_t (*lgd_plugin_model_create_fn)(lgd_context *context, const char *config,
                                              lgd_model **out_model);

/** One loss a plugin provides. (Since 0.4.0.) */
typedef struct lgd_plugin_loss {
    const char *name;                  /**< unique within the plugin, e.g. "inpainting" */
    const char *description;           /**< one line, with the config syntax; may be NULL */
    lgd_plugin_loss_create_fn create;  /**< required */
} lgd_plugin_loss;

/** One model a plugin provides. (Since 0.4.0.) */
typedef struct lgd_plugin_model {
    const char *name;
    const char *description;
    lgd_plugin_model_create_fn create;
} lgd_plugin_model;

/** What a plugin's entry point returns: static data, valid while the shared object is
 *  loaded. Fill it with LGD_PLUGIN_INFO_INIT so that the versions are those of the
 *  headers the plugin is built with. Its first three fields keep their place in every
 *  plugin ABI version (the loader reads them before it knows the rest); a struct_size
 *  below this layout's size is refused, a larger one (later fields of the same ABI
 *  version) accepted. Entry names must be unique within each table. (Since 0.4.0.) */
typedef struct lgd_plugin_info {
    uint32_t struct_size;     /**< sizeof(lgd_plugin_info) */
    uint32_t abi_version;     /**< LGD_PLUGIN_ABI_VERSION at build time */
    uint32_t lgd_version;     /**< LGD_VERSION_NUMBER at build time: the loader refuses a
                                   plugin built for a newer liblgd than the host's */
    const char *name;         /**< the plugin's name, for messages */
    int32_t n_losses;         /**< entries in losses (>= 0) */
    const lgd_plugin_loss *losses;
    int32_t n_models;         /**< entries in models (>= 0) */
    const lgd_plugin_model *models;
    /** &lgd_version as the plugin resolves it: the loader compares it with its own to
     *  detect a plugin bound to a second copy of liblgd. */
    uint32_t (*lgd_version_fn)(void);
} lgd_plugin_info;

/** The entry point's type: returns the plugin's description (never NULL for a valid
 *  plugin). Declare it in a plugin as
 *  `LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void)`. (Since 0.4.0.) */
typedef const lgd_plugin_info *(*lgd_plugin_entry_fn)(void);

#if defined(_WIN32)
#  define LGD_PLUGIN_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#  define LGD_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#  define LGD_PLUGIN_EXPORT
#endif

/** Initialiser of lgd_plugin_info with this header's versions: name, the loss table and
 *  its length, the model table and its length. (Since 0.4.0.) */
#define LGD_PLUGIN_INFO_INIT(name, losses, n_losses, models, n_models)                     \
    { LGD_CAST_(uint32_t, sizeof(lgd_plugin_info)), LGD_PLUGIN_ABI_VERSION,                \
      LGD_VERSION_NUMBER, (name), (n_losses), (losses), (n_models), (models), lgd_version }

/**
 * Loads the plugin at path (a file name as dlopen() takes it, with RTLD_NOW |
 * RTLD_LOCAL: with a '/', a file; without, the loader's search path) and creates its
 * loss `name` of dimension dim from config (NULL = "") on context. The loss keeps the
 * plugin loaded until its last reference is dropped (a plugin loaded several times is
 * unloaded after the last object of any of the loads is freed). Statuses:
 * LGD_ERR_INVALID_ARGUMENT (context, path, name or out_loss NULL, dim <= 0), LGD_ERR_IO
 * (the file cannot be loaded: dlerror()'s reason), LGD_ERR_FORMAT (no entry point, a
 * NULL or malformed description: struct_size, no name, no lgd_version_fn, a negative
 * count, an entry without a name or create function, two entries of one name),
 * LGD_ERR_UNSUPPORTED (another plugin ABI version, a plugin built for a newer liblgd or
 * another major version, a second copy of liblgd, no loss of that name: the message
 * lists the plugin's losses and models), LGD_ERR_CALLBACK (the plugin's create failed:
 * its message; without one, the context's last error when a liblgd call inside failed,
 * else a message saying it gave none; also when it returned 0 with no loss, or a loss
 * of another context or dimension, which is destroyed). Every message begins
 * "lgd_loss_load_plugin: plugin 'PATH'" and names the plugin ("(NAME)") and the entry
 * once known. On success the context's last error is left as it was. On failure the
 * plugin is not left loaded. Thread-safe as every call on a context (one thread at a
 * time per context; any number of contexts at once: dlerror() is read on the calling
 * thread). (Since 0.4.0.)
 */
LGD_API lgd_status lgd_loss_load_plugin(lgd_context *context, const char *path,
                                        const char *name, int64_t dim, const char *config,
                                        lgd_loss **out_loss);

/** As lgd_loss_load_plugin() for the plugin's model `name` (no dim: the model says its
 *  own; LGD_ERR_CALLBACK for a model of another context). Messages begin
 *  "lgd_model_load_plugin: plugin 'PATH'". (Since 0.4.0.) */
LGD_API lgd_status lgd_model_load_plugin(lgd_context *context, const char *path,
                                         const char *name, const char *config,
                                         lgd_model **out_model);

#ifdef __cplusplus
}
#endif

#endif
