/*
 * safetensors.c - the strict safetensors parser (safetensors.h): the file's framing,
 * the layout of the tensor data, reading a file, lookups.
 *
 * Two passes over the header. lgd_json_check() (json.c) validates it as JSON (RFC 8259:
 * UTF-8, escapes, numbers) with a depth limit and without allocating; then the schema
 * pass (st_header_parse, safetensors_header.c) walks the now well-formed object, decodes
 * every string into one arena and collects tensors and metadata, and finish() checks
 * sizes, offsets and names. Nothing here reads outside [data, data + size).
 */
#include "nn/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/checked.h"
#include "nn/safetensors_header.h"

static lgd_status set_error(char *err, size_t err_len, lgd_status st, const char *fmt, ...)
    LGD_JSON_PRINTF(4, 5);
static lgd_status set_error(char *err, size_t err_len, lgd_status st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        if (vsnprintf(err, err_len, fmt, ap) < 0)
            err[0] = '\0';
        va_end(ap);
    }
    return st;
}

/* The header is one JSON object, padded after it with spaces (0x20) only. */
static int check_json(lgd_json *j)
{
    if (j->s[0] != '{')
        return lgd_json_syntax(j, "the header does not begin with '{'");
    if (lgd_json_check(j))
        return -1;
    for (; j->i < j->n; j->i++)
        if (j->s[j->i] != ' ')
            return lgd_json_syntax(j, "trailing bytes after the header object (only spaces may "
                                   "pad it)");
    return 0;
}

/* ------------------------------------------------------------------ checks */

static int cmp_offsets(const void *a, const void *b)
{
    const lgd_st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_ptr(const void *a, const void *b)
{
    const lgd_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_meta_ptr(const void *a, const void *b)
{
    const lgd_st_meta *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* Sizes and offsets of each tensor against a data region of dsize bytes at data. */
static int check_tensor(st_header *p, lgd_st_tensor *t, const unsigned char *data, size_t dsize)
{
    char q[ST_QNAME], qs[ST_QSHAPE];
    if (t->begin > t->end)
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                       "] are reversed", st_qname(q, sizeof q, t->name), t->begin, t->end);
    if (t->end > (uint64_t)dsize)
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                       "] run past the end of the data (%zu bytes)",
                       st_qname(q, sizeof q, t->name), t->begin, t->end, dsize);
    int64_t numel = 1, bytes;
    int overflow = 0;
    for (int d = 0; d < t->ndim && !overflow; d++)
        overflow = lgd_mul_i64(numel, t->shape[d], &numel);
    if (overflow || lgd_mul_i64(numel, (int64_t)lgd_st_dtype_size(t->dtype), &bytes))
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: shape %s has too many elements (overflow)",
                       st_qname(q, sizeof q, t->name), st_qshape(qs, sizeof qs, t));
    uint64_t nbytes = (uint64_t)bytes;
    if (t->end - t->begin != nbytes)
        return st_fail(p, LGD_ERR_FORMAT, "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                       "] hold %" PRIu64 " bytes but %s %s needs %" PRIu64,
                       st_qname(q, sizeof q, t->name), t->begin, t->end, t->end - t->begin,
                       lgd_st_dtype_name(t->dtype), st_qshape(qs, sizeof qs, t), nbytes);
    t->numel = numel;
    t->nbytes = (size_t)nbytes; /* <= dsize */
    t->data = data + t->begin;
    return 0;
}

static int finish(st_header *p, lgd_st_file *out, const unsigned char *data, size_t dsize)
{
    char q[ST_QNAME], q2[ST_QNAME];
    size_t bytes;
    for (size_t k = 0; k < p->n_tensors; k++)
        if (check_tensor(p, &p->tensors[k], data, dsize))
            return -1;
    if (p->n_tensors) {
        qsort(p->tensors, p->n_tensors, sizeof *p->tensors, cmp_offsets);
        out->by_name = lgd_mul_size(p->n_tensors, sizeof *out->by_name, &bytes)
                           ? NULL : malloc(bytes);
        if (!out->by_name)
            return st_fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        for (size_t k = 0; k < p->n_tensors; k++)
            out->by_name[k] = &p->tensors[k];
        qsort(out->by_name, p->n_tensors, sizeof *out->by_name, cmp_tensor_ptr);
        for (size_t k = 1; k < p->n_tensors; k++)
            if (strcmp(out->by_name[k - 1]->name, out->by_name[k]->name) == 0)
                return st_fail(p, LGD_ERR_FORMAT, "duplicate tensor name %s",
                               st_qname(q, sizeof q, out->by_name[k]->name));
    }
    if (p->n_meta) {
        out->meta_by_key = lgd_mul_size(p->n_meta, sizeof *out->meta_by_key, &bytes)
                               ? NULL : malloc(bytes);
        if (!out->meta_by_key)
            return st_fail(p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        for (size_t k = 0; k < p->n_meta; k++)
            out->meta_by_key[k] = &p->meta[k];
        qsort(out->meta_by_key, p->n_meta, sizeof *out->meta_by_key, cmp_meta_ptr);
        for (size_t k = 1; k < p->n_meta; k++)
            if (strcmp(out->meta_by_key[k - 1]->key, out->meta_by_key[k]->key) == 0)
                return st_fail(p, LGD_ERR_FORMAT, "duplicate metadata key %s",
                               st_qname(q, sizeof q, out->meta_by_key[k]->key));
    }
    /* The tensors, in offset order, tile [0, dsize) exactly. */
    uint64_t at = 0;
    for (size_t k = 0; k < p->n_tensors; k++) {
        const lgd_st_tensor *t = &p->tensors[k];
        if (t->begin > at)
            return st_fail(p, LGD_ERR_FORMAT, "hole in the data: no tensor holds bytes [%" PRIu64
                           ", %" PRIu64 ") before tensor %s", at, t->begin,
                           st_qname(q, sizeof q, t->name));
        if (t->begin < at)
            return st_fail(p, LGD_ERR_FORMAT, "tensors %s and %s overlap: data_offsets [%" PRIu64
                           ", %" PRIu64 "] and [%" PRIu64 ", %" PRIu64 "]",
                           st_qname(q, sizeof q, p->tensors[k - 1].name),
                           st_qname(q2, sizeof q2, t->name),
                           p->tensors[k - 1].begin, p->tensors[k - 1].end, t->begin, t->end);
        at = t->end;
    }
    if (at != (uint64_t)dsize)
        return st_fail(p, LGD_ERR_FORMAT, "the tensors cover %" PRIu64 " of the %zu data bytes "
                       "(no tensor holds bytes [%" PRIu64 ", %zu))", at, dsize, at, dsize);
    return 0;
}

/* ------------------------------------------------------------------ API */

lgd_status lgd_st_parse(const void *data, size_t size, lgd_st_file *out, char *err,
                        size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!out || (!data && size))
        return set_error(err, err_len, LGD_ERR_INVALID_ARGUMENT, "lgd_st_parse: %s is NULL",
                         out ? "data" : "out");
    const unsigned char *b = data;
    if (size < 8)
        return set_error(err, err_len, LGD_ERR_FORMAT,
                         "safetensors: a file of %zu bytes is too short (it begins with an "
                         "8-byte header length)", size);
    uint64_t n = lgd_st_le64(b);
    if (n == 0)
        return set_error(err, err_len, LGD_ERR_FORMAT, "safetensors: header length is 0");
    if (n > LGD_ST_MAX_HEADER)
        return set_error(err, err_len, LGD_ERR_FORMAT,
                         "safetensors: header length %" PRIu64 " is over the limit of %" PRIu64
                         " bytes (100 MiB)", n, LGD_ST_MAX_HEADER);
    if (n > (uint64_t)(size - 8))
        return set_error(err, err_len, LGD_ERR_FORMAT,
                         "safetensors: header length %" PRIu64 " runs past the end of the file "
                         "(%zu bytes after the length)", n, size - 8);
    st_header p;
    memset(&p, 0, sizeof p);
    p.j.s = b + 8;
    p.j.n = (size_t)n;
    p.j.max_depth = LGD_ST_MAX_DEPTH;
    p.j.err = err;
    p.j.err_len = err_len;
    if (check_json(&p.j))
        goto failed;
    p.arena = malloc(p.j.n + 1);
    if (!p.arena) {
        st_fail(&p, LGD_ERR_OUT_OF_MEMORY, "safetensors: out of memory (%zu-byte header)", p.j.n);
        goto failed;
    }
    if (st_header_parse(&p) || finish(&p, out, b + 8 + p.j.n, size - 8 - p.j.n))
        goto failed;
    out->bytes = b;
    out->size = size;
    out->tensors = p.tensors;
    out->n_tensors = p.n_tensors;
    out->meta = p.meta;
    out->n_meta = p.n_meta;
    out->strings = p.arena;
    return LGD_OK;
failed:
    free(p.arena);
    free(p.tensors);
    free(p.meta);
    free(out->by_name);
    free(out->meta_by_key);
    memset(out, 0, sizeof *out);
    return p.j.st != LGD_OK ? p.j.st : LGD_ERR_INTERNAL;
}

lgd_status lgd_st_read_file(const char *path, lgd_st_file *out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !out)
        return set_error(err, err_len, LGD_ERR_INVALID_ARGUMENT, "lgd_st_read_file: %s is NULL",
                         path ? "out" : "path");
    FILE *f = fopen(path, "rb");
    if (!f) {
        char why[128];
        if (strerror_r(errno, why, sizeof why) != 0)
            snprintf(why, sizeof why, "error %d", errno);
        return set_error(err, err_len, LGD_ERR_IO, "%s: cannot open: %s", path, why);
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_IO, "%s: cannot stat", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 0 || (uintmax_t)sb.st_size >= (uintmax_t)SIZE_MAX) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_IO, "%s: too large to read", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return set_error(err, err_len, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory (%zu bytes)",
                         path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int bad = got != size || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return set_error(err, err_len, LGD_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    /* Parse errors read "PATH: message". */
    size_t k = 0;
    if (err && err_len) {
        snprintf(err, err_len, "%s: ", path);
        k = strlen(err);
    }
    lgd_status st = lgd_st_parse(buf, size, out, err ? err + k : NULL, err ? err_len - k : 0);
    if (st != LGD_OK) {
        free(buf);
        return st;
    }
    if (err && err_len)
        err[0] = '\0';
    out->owned = buf;
    return LGD_OK;
}

void lgd_st_free(lgd_st_file *f)
{
    if (!f)
        return;
    free(f->owned);
    free(f->tensors);
    free(f->meta);
    free(f->strings);
    free(f->by_name);
    free(f->meta_by_key);
    memset(f, 0, sizeof *f);
}

static int find_tensor(const void *key, const void *elem)
{
    const lgd_st_tensor *const *t = elem;
    return strcmp(key, (*t)->name);
}

static int find_meta(const void *key, const void *elem)
{
    const lgd_st_meta *const *m = elem;
    return strcmp(key, (*m)->key);
}

const lgd_st_tensor *lgd_st_find(const lgd_st_file *f, const char *name)
{
    if (!f || !name || !f->n_tensors || !f->by_name)
        return NULL;
    lgd_st_tensor *const *t = bsearch(name, f->by_name, f->n_tensors, sizeof *f->by_name,
                                      find_tensor);
    return t ? *t : NULL;
}

const char *lgd_st_meta_get(const lgd_st_file *f, const char *key)
{
    if (!f || !key || !f->n_meta || !f->meta_by_key)
        return NULL;
    lgd_st_meta *const *m = bsearch(key, f->meta_by_key, f->n_meta, sizeof *f->meta_by_key,
                                    find_meta);
    return m ? (*m)->value : NULL;
}

void lgd_st_to_f32(const lgd_st_tensor *t, float *out)
{
    if (!t || !out || !t->data)
        return;
    lgd_st_convert_f32(t->dtype, t->data, (size_t)t->numel, out);
}
