/*
 * nn_metadata.c - the values of a network file's lgd.* metadata keys, as the
 * architectures read them: integers (and true/false), numbers, lists of integers
 * (docs/network-format.md, "Common metadata").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_builder.h"

const char *nnb_meta(const nn_builder *b, const char *key)
{
    return lgd_st_meta_get(b->file, key);
}

static int parse_int(const char *s, long long *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* An integer key in [lo, hi]; def when absent and def_ok. */
int32_t nnb_meta_int(nn_builder *b, const char *key, int def_ok, int32_t def, int32_t lo,
                     int32_t hi)
{
    const char *s = nnb_meta(b, key);
    if (!s) {
        if (def_ok)
            return def;
        nnb_fail(b, LGD_ERR_FORMAT, "metadata key %s is required", key);
        return def;
    }
    long long v;
    if (!strcmp(s, "true") || !strcmp(s, "True"))
        v = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False"))
        v = 0;
    else if (parse_int(s, &v)) {
        nnb_fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.40s\" is not an integer", key, s);
        return def;
    }
    if (v < lo || v > hi) {
        nnb_fail(b, LGD_ERR_FORMAT, "metadata %s = %lld is out of range [%d, %d]", key, v, (int)lo,
                 (int)hi);
        return def;
    }
    return (int32_t)v;
}

float nnb_meta_float(nn_builder *b, const char *key, float def, float lo, float hi)
{
    const char *s = nnb_meta(b, key);
    if (!s)
        return def;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        nnb_fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.40s\" is not a number in [%g, %g]", key, s,
                 (double)lo, (double)hi);
        return def;
    }
    return (float)v;
}

/* A comma-separated list of integers in [lo, hi]; returns the count (0 for "") */
int nnb_meta_list(nn_builder *b, const char *key, int32_t *out, int max, int32_t lo, int32_t hi)
{
    const char *s = nnb_meta(b, key);
    if (!s) {
        nnb_fail(b, LGD_ERR_FORMAT, "metadata key %s is required", key);
        return 0;
    }
    int n = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    if (!*p)
        return 0;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || n == max) {
            nnb_fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.60s\" is not a list of at most %d "
                     "integers in [%d, %d]", key, s, max, (int)lo, (int)hi);
            return 0;
        }
        out[n++] = (int32_t)v;
        p = end;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p != ',') {
            nnb_fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.60s\" is not a comma-separated list",
                     key, s);
            return 0;
        }
        p++;
    }
    return n;
}
