/*
 * tool_context.c - the shared module's error messages and context set-up (tool.h):
 * usage errors, failed library calls, the backend of --backend, context creation.
 */
#include "tool.h"

#include <stdarg.h>

int tool_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lgd%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'lgd help%s%s'.\n", cmd ? " " : "", cmd ? cmd : "");
    return TOOL_EXIT_USAGE;
}

int tool_failed(const char *cmd, const lgd_context *ctx, lgd_status st, const char *what)
{
    if (st == LGD_OK)
        return 0;
    const char *msg = ctx ? lgd_context_last_error(ctx) : "";
    fprintf(stderr, "lgd %s: %s failed: %s (%d)%s%s\n", cmd, what, lgd_status_string(st),
            (int)st, msg[0] ? ": " : "", msg);
    return 1;
}

int tool_out_of_memory(const char *cmd)
{
    fprintf(stderr, "lgd %s: out of memory\n", cmd);
    return 1;
}

/* The names of --backend and their backends, in the same order. */
static const char *const backend_names[] = { "cpu", "cuda", "auto", NULL };
static const lgd_backend_kind backend_kinds[] = { LGD_BACKEND_CPU, LGD_BACKEND_CUDA,
                                                  LGD_BACKEND_AUTO };

tool_option tool_option_backend(int *choice)
{
    return (tool_option){ .name = "backend", .kind = TOOL_OPT_CHOICE, .dest = choice,
                          .choices = backend_names, .what = "backend" };
}

lgd_backend_kind tool_backend_kind(int choice)
{
    return backend_kinds[choice];
}

int tool_context_create(const char *cmd, lgd_backend_kind backend, int32_t threads,
                        lgd_context **ctx)
{
    const char *cerr = NULL;
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = backend;
    co.num_threads = threads;
    lgd_status st = lgd_context_create(&co, ctx, &cerr);
    if (st == LGD_OK)
        return 0;
    fprintf(stderr, "lgd %s: lgd_context_create failed: %s (%d): %s\n", cmd,
            lgd_status_string(st), (int)st, cerr ? cerr : "");
    return 1;
}

void tool_print_library(const lgd_context *ctx)
{
    printf("liblgd %s, backend %s\n", lgd_version_string(), lgd_context_backend_name(ctx));
}
