/*
 * safetensors.h - a strict parser for safetensors files (private to liblgd).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
 * header (an object that maps tensor names to {"dtype", "shape", "data_offsets"} and
 * may hold "__metadata__", an object of string to string), then the tensor bytes
 * (docs/network-format.md). The parser accepts the dtypes F32, F16, BF16 and F64 and
 * refuses anything malformed with a status and a one-line message, never an
 * out-of-bounds read: it is meant for files from anywhere (and is fuzzed). The JSON
 * reader is json.c, the schema pass safetensors_header.c, the dtypes dtype.c.
 *
 * Rules, beyond JSON (RFC 8259, UTF-8, no NUL in strings, nesting <= 64):
 *   - 8 + N <= size, 1 <= N <= 100 MiB; the header begins with '{' and may be padded
 *     after the object with spaces (0x20) only;
 *   - "__metadata__" (at most once) is an object of string to string, keys unique;
 *   - every other key is a tensor (names unique after unescaping), an object with
 *     exactly "dtype" (a string), "shape" (at most LGD_ST_MAX_DIMS non-negative
 *     integers) and "data_offsets" ([begin, end], non-negative integers); integers
 *     fit in int64 and have no fraction or exponent;
 *   - numel = product of the shape (1 for []; every partial product fits in int64),
 *     end - begin = numel * itemsize, begin <= end <= data size;
 *   - the tensors, sorted by data offsets, tile the data region exactly: no hole, no
 *     overlap, no byte left over (as the reference implementation requires).
 *
 * Status codes: LGD_ERR_INVALID_ARGUMENT (NULL arguments), LGD_ERR_IO (a file that
 * cannot be opened or read, or is not a regular file), LGD_ERR_OUT_OF_MEMORY,
 * LGD_ERR_UNSUPPORTED (a dtype that safetensors defines but liblgd does not read, such
 * as I64, BOOL or F8_E4M3), LGD_ERR_FORMAT (everything else that is malformed).
 */
#ifndef LGD_SAFETENSORS_H
#define LGD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lgd/common.h"
#include "nn/dtype.h" /* lgd_st_dtype, lgd_st_dtype_size, lgd_st_dtype_name */

#define LGD_ST_MAX_DIMS 8
/* The largest header length accepted (the reference implementation's limit is 100 MB). */
#define LGD_ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)
/* The deepest JSON nesting accepted (a valid header nests 3 deep). */
#define LGD_ST_MAX_DEPTH 64

typedef struct lgd_st_tensor {
    char *name;                   /* UTF-8, NUL-terminated (no NUL inside) */
    lgd_st_dtype dtype;
    int ndim;                     /* 0 (a scalar) to LGD_ST_MAX_DIMS */
    int64_t shape[LGD_ST_MAX_DIMS];
    int64_t numel;                /* product of shape; 1 for a scalar */
    const unsigned char *data;    /* inside the file's bytes; little-endian, maybe unaligned */
    size_t nbytes;                /* numel * itemsize */
    uint64_t begin, end;          /* data_offsets, relative to the data region */
} lgd_st_tensor;

typedef struct lgd_st_meta {
    char *key, *value;
} lgd_st_meta;

typedef struct lgd_st_file {
    unsigned char *owned;         /* the file's bytes when read by lgd_st_read_file, else NULL */
    const unsigned char *bytes;
    size_t size;
    lgd_st_tensor *tensors;       /* in file order of data offsets (ties by name) */
    size_t n_tensors;
    lgd_st_meta *meta;            /* in header order */
    size_t n_meta;
    /* private */
    char *strings;                /* every decoded string (names, keys, values) */
    lgd_st_tensor **by_name;      /* tensors sorted by name, for lgd_st_find */
    lgd_st_meta **meta_by_key;    /* metadata sorted by key, for lgd_st_meta_get */
} lgd_st_file;

/* Parses size bytes (borrowed: must outlive *out). *out is overwritten, not freed. On
 * failure *out is empty (safe to lgd_st_free), the status is returned and err holds a
 * one-line message naming the problem (tensor name, offset...); on success err is "".
 * err may be NULL (err_len 0). */
lgd_status lgd_st_parse(const void *data, size_t size, lgd_st_file *out, char *err,
                        size_t err_len);
/* Reads the whole file (one allocation for the bytes, kept in out->owned) and parses it.
 * Messages begin with the path. */
lgd_status lgd_st_read_file(const char *path, lgd_st_file *out, char *err, size_t err_len);
/* Frees what *f holds and empties it. f may be NULL. */
void lgd_st_free(lgd_st_file *f);
/* The tensor of that name, or NULL. */
const lgd_st_tensor *lgd_st_find(const lgd_st_file *f, const char *name);
/* The metadata value of that key, or NULL. */
const char *lgd_st_meta_get(const lgd_st_file *f, const char *key);
/* Converts the tensor's numel values to float (lgd_st_convert_f32: f16/bf16 exactly incl.
 * subnormals, inf, nan; f64 rounded to nearest). Unaligned data is fine. */
void lgd_st_to_f32(const lgd_st_tensor *t, float *out);

#endif
