/*
 * safetensors_header.h - the schema pass over a safetensors header (private to
 * safetensors.c and safetensors_header.c).
 *
 * After lgd_json_check() has proved the header well-formed JSON, st_header_parse()
 * walks it once more and applies the schema of safetensors.h: "__metadata__" (at most
 * once) an object of string to string; every other key a tensor, an object of exactly
 * "dtype", "shape" and "data_offsets" with non-negative int64 integers. Every string is
 * decoded into p->arena: a decoded string and its NUL are never longer than its quoted
 * form, so an arena of n + 1 bytes (n the header length) holds them all.
 */
#ifndef LGD_NN_SAFETENSORS_HEADER_H
#define LGD_NN_SAFETENSORS_HEADER_H

#include "nn/json.h"
#include "nn/safetensors.h"

/* Room for a quoted, escaped, shortened name in a message. */
#define ST_QNAME 96
/* Room for a formatted shape "[d0, d1, ...]". */
#define ST_QSHAPE (LGD_ST_MAX_DIMS * 22 + 4)

typedef struct st_header {
    lgd_json j;           /* the header text, the position in it, the first error */
    char *arena;          /* n + 1 bytes for every decoded string */
    size_t arena_used;
    lgd_st_tensor *tensors; /* name, dtype, shape and offsets; the rest is finish()'s */
    size_t n_tensors, cap_tensors;
    lgd_st_meta *meta;
    size_t n_meta, cap_meta;
    int seen_meta;
} st_header;

/* Records the first error (on p->j); returns -1. */
int st_fail(st_header *p, lgd_status st, const char *fmt, ...) LGD_JSON_PRINTF(3, 4);
/* Walks the header from its start, filling tensors and meta. 0, or -1 with the error
 * recorded. The tensors' and metadata arrays are p's to free in either case. */
int st_header_parse(st_header *p);

/* 'name', with control characters, quotes and backslashes escaped and a long name
 * shortened to fit buf (for messages). */
const char *st_qname(char *buf, size_t len, const char *s);
/* "[d0, d1, ...]" of t's shape (for messages). */
const char *st_qshape(char *buf, size_t len, const lgd_st_tensor *t);

#endif
