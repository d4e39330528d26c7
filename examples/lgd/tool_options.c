/*
 * tool_options.c - the shared module's option parser (tool.h): a table of rows, one
 * per option, matched against argv in order; values parsed and range-checked by kind.
 */
#include "tool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tool_util.h"

/* The longest item of a list, in characters (longer items are rejected). */
#define INT_ITEM_MAX 31
#define DOUBLE_ITEM_MAX 63

/*
 * Matches arg against row o. Returns 0 when it is another option; 1 when it matches,
 * with *value set to the text after "=" or NULL (the value is the next argument, or
 * there is none: a flag).
 */
static int matches(const tool_option *o, const char *arg, const char **value)
{
    *value = NULL;
    if (o->kind == TOOL_OPT_FLAG)
        return (arg[0] == '-' && arg[1] == '-' && !strcmp(arg + 2, o->name)) ||
               (o->alias && !strcmp(arg, o->alias));
    size_t n = strlen(o->name);
    if (strncmp(arg, "--", 2) || strncmp(arg + 2, o->name, n))
        return 0;
    if (arg[2 + n] == '=') {
        *value = arg + 3 + n;
        return 1;
    }
    return arg[2 + n] == '\0';
}

/* The number that is all of s, when it lies in [lo, hi] ((lo, hi] when lo_open); 0 or
 * -1. */
static int parse_double(const char *s, double lo, int lo_open, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(lo_open ? v > lo : v >= lo) || !(v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* Item number `count` of a list (len characters at s) into the row's array; 0 or -1. */
static int parse_list_item(const tool_option *o, const char *s, size_t len, int count)
{
    char buf[DOUBLE_ITEM_MAX + 1];
    size_t max = o->kind == TOOL_OPT_INT32_LIST ? INT_ITEM_MAX : DOUBLE_ITEM_MAX;
    if (len == 0 || len > max || count == o->capacity)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (o->kind == TOOL_OPT_INT32_LIST) {
        long long v;
        if (tool_parse_int(buf, o->min, o->max, &v))
            return -1;
        ((int32_t *)o->dest)[count] = (int32_t)v;
        return 0;
    }
    return parse_double(buf, o->fmin, o->fmin_open, o->fmax, (double *)o->dest + count);
}

/* "1,2,3": 1 to capacity items, no empty one; 0 or -1. */
static int parse_list(const tool_option *o, const char *s)
{
    int count = 0;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (parse_list_item(o, s, len, count++))
            return -1;
        if (!comma)
            break;
        s = comma + 1;
        if (!*s)
            return -1;
    }
    if (count == 0)
        return -1;
    *o->count = count;
    return 0;
}

/* The index of v in the row's choices, or -1. */
static int find_choice(const tool_option *o, const char *v)
{
    for (int i = 0; o->choices[i]; i++)
        if (!strcmp(o->choices[i], v))
            return i;
    return -1;
}

/* "unknown WHAT 'V' (NAME, NAME, ...)". */
static int bad_choice(const char *cmd, const tool_option *o, const char *v)
{
    char names[256] = "";
    size_t used = 0;
    for (int i = 0; o->choices[i] && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                 o->choices[i]);
    return tool_usage_error(cmd, "unknown %s '%s' (%s)", o->what, v, names);
}

/* "--NAME needs ...": the row's text, or one made from its kind and range. */
static int bad_value(const char *cmd, const tool_option *o)
{
    switch (o->kind) {
    case TOOL_OPT_INT32_LIST:
    case TOOL_OPT_DOUBLE_LIST:
        return tool_usage_error(cmd, "--%s needs 1 to %d %s", o->name, o->capacity, o->needs);
    default:
        break;
    }
    if (o->needs)
        return tool_usage_error(cmd, "--%s needs %s", o->name, o->needs);
    if (o->kind == TOOL_OPT_UINT64)
        return tool_usage_error(cmd, "--%s needs a non-negative integer", o->name);
    if (o->kind == TOOL_OPT_FLOAT)
        return tool_usage_error(cmd, "--%s needs a number in [%g, %g]", o->name, o->fmin,
                                o->fmax);
    return tool_usage_error(cmd, "--%s needs an integer in [%lld, %lld]", o->name, o->min,
                            o->max);
}

/* Stores value v of row o; 0, or -1 when v is not a value of the row's kind and range. */
static int store_value(const tool_option *o, const char *v)
{
    long long n;
    uint64_t u;
    double d;
    switch (o->kind) {
    case TOOL_OPT_INT32:
    case TOOL_OPT_INT64:
        if (tool_parse_int(v, o->min, o->max, &n))
            return -1;
        if (o->kind == TOOL_OPT_INT32)
            *(int32_t *)o->dest = (int32_t)n;
        else
            *(int64_t *)o->dest = (int64_t)n;
        return 0;
    case TOOL_OPT_UINT64:
        if (tool_parse_u64(v, &u) || u > o->umax)
            return -1;
        *(uint64_t *)o->dest = u;
        return 0;
    case TOOL_OPT_FLOAT:
        if (parse_double(v, o->fmin, o->fmin_open, o->fmax, &d))
            return -1;
        *(float *)o->dest = (float)d;
        return 0;
    case TOOL_OPT_STRING:
        if (!*v)
            return -1;
        *(const char **)o->dest = v;
        return 0;
    case TOOL_OPT_INT32_LIST:
    case TOOL_OPT_DOUBLE_LIST:
        return parse_list(o, v);
    default:
        return -1;
    }
}

/* Applies row o to argv[*i] (and its value); 0, or an exit status after a message. */
static int apply_option(const char *cmd, const tool_option *o, const char *value, int argc,
                        char **argv, int *i)
{
    if (o->kind == TOOL_OPT_FLAG) {
        *(int *)o->dest = 1;
        return 0;
    }
    if (!value) {
        if (*i + 1 >= argc)
            return tool_usage_error(cmd, "option --%s needs a value", o->name);
        value = argv[++*i];
    }
    if (o->kind == TOOL_OPT_CHOICE) {
        int c = find_choice(o, value);
        if (c < 0)
            return bad_choice(cmd, o, value);
        *(int *)o->dest = c;
        return 0;
    }
    return store_value(o, value) ? bad_value(cmd, o) : 0;
}

int tool_parse_options(const char *cmd, int argc, char **argv, const tool_option *opts, int n,
                       void (*usage)(FILE *out))
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return TOOL_EXIT_OK;
        }
        const tool_option *o = NULL;
        const char *value = NULL;
        for (int k = 0; k < n && !o; k++)
            if (matches(&opts[k], argv[i], &value))
                o = &opts[k];
        if (!o)
            return tool_usage_error(cmd, "unknown argument '%s'", argv[i]);
        int st = apply_option(cmd, o, value, argc, argv, &i);
        if (st)
            return st;
    }
    return TOOL_CONTINUE;
}

tool_option tool_option_threads(int32_t *threads)
{
    return (tool_option){ .name = "threads", .kind = TOOL_OPT_INT32, .dest = threads,
                          .min = 0, .max = 4096 };
}

tool_option tool_option_out(const char **dir)
{
    return (tool_option){ .name = "out", .kind = TOOL_OPT_STRING, .dest = dir,
                          .needs = "a directory" };
}

tool_option tool_option_quiet(int *quiet)
{
    return (tool_option){ .name = "quiet", .alias = "-q", .kind = TOOL_OPT_FLAG,
                          .dest = quiet };
}
