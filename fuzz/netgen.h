/*
 * netgen.h - network files from descriptions, for the structure-aware weights fuzzer
 * (fuzz_weights_structured.c) and the API fuzzer's networks (fuzz_api.c).
 *
 * A description is what a network file says: its lgd.* metadata (as strings, the
 * way the file carries them), the weight dtype, the schedule tensor, and a list of
 * mutations of the tensor table and of the file's bytes. netgen_build() writes the
 * safetensors file: it derives the tensor table that the architecture named in the
 * metadata needs from the hyperparameters (an independent implementation of
 * docs/network-format.md: names and shapes), fills the weights with small
 * deterministic values, applies the mutations (a misshaped, missing, renamed, extra
 * or duplicated tensor; a dtype liblgd does not read; broken data offsets; a poisoned
 * weight; a broken schedule; header padding, a wrong header length, truncation) and
 * serializes a well-formed file unless a mutation asks to break it.
 *
 * The fuzz input decodes into a description (netgen_decode(); the byte format is in
 * fuzz/README.md); netgen_encode() writes the bytes of a description (the seeds, made
 * by fuzz/make_seeds.c, are valid descriptions of each architecture and of the
 * fixtures of tests/fixtures/nn).
 */
#ifndef LGD_FUZZ_NETGEN_H
#define LGD_FUZZ_NETGEN_H

#include <stddef.h>
#include <stdint.h>

#include "fz_common.h"

#define NG_MAX_META 48
#define NG_KEY_CAP 64
#define NG_VAL_CAP 160
#define NG_MAX_MUT 32
#define NG_MAX_TENSORS 2048
#define NG_MAX_DIMS 9 /* one more than the parser accepts */
/* the most weight bytes a generated file carries (bigger descriptions are skipped) */
#define NG_MAX_DATA_BYTES ((size_t)1 << 22)

/* metadata value kinds of the known keys */
enum { NG_INT, NG_LIST, NG_FLOAT, NG_ENUM };

typedef struct ng_key {
    const char *name;
    int kind;
    const char *const *names; /* NG_ENUM: the valid values, NULL-terminated */
} ng_key;

extern const ng_key ng_keys[];
extern const int ng_n_keys;

typedef struct ng_meta {
    char key[NG_KEY_CAP];
    char value[NG_VAL_CAP];
    int raw_json;  /* value is written as is (not as a JSON string): a non-string value */
    int duplicate; /* the key is written twice */
} ng_meta;

/* mutations of the tensor table and of the bytes */
enum {
    NG_MUT_DTYPE,        /* tensor idx gets dtype arg (table, incl. unsupported/unknown) */
    NG_MUT_SHAPE_DELTA,  /* dim (arg & 7) of tensor idx += zigzag(arg >> 3) */
    NG_MUT_SHAPE_APPEND, /* a dim of size arg appended */
    NG_MUT_SHAPE_POP,    /* the last dim removed */
    NG_MUT_DROP,         /* tensor removed */
    NG_MUT_DUPLICATE,    /* tensor written twice (same name) */
    NG_MUT_RENAME,       /* a character of the name changed / a suffix added */
    NG_MUT_EXTRA,        /* an unexpected tensor of arg elements */
    NG_MUT_OFFSETS,      /* data_offsets begin/end moved by zigzag(arg) */
    NG_MUT_SWAP_OFFSETS, /* data_offsets of tensors idx and arg swapped */
    NG_MUT_POISON,       /* weight arg of tensor idx set to NaN, Inf, -Inf or 1e30 */
    NG_MUT_HEADER,       /* header padding / length / truncation / trailing bytes */
    NG_MUT_SCHEDULE,     /* lgd.alphas_cumprod broken (order, range, shape, removed) */
    NG_MUT_SCALAR,       /* tensor idx gets shape [] */
    NG_MUT_BIG_SHAPE,    /* dim (arg & 7) of tensor idx set to an edge value */
    NG_MUT_REORDER,      /* tensors written in reverse order, metadata last */
    NG_MUT_COUNT
};

typedef struct ng_mut {
    uint8_t op;
    uint32_t idx;
    uint64_t arg;
} ng_mut;

typedef struct ng_desc {
    ng_meta meta[NG_MAX_META];
    int n_meta;
    int dtype;         /* weights: 0 F32, 1 F16, 2 BF16, 3 F64 */
    int alphas_len;    /* lgd.alphas_cumprod entries, 0 = none */
    int batch;         /* rows of the forward pass: 1 or 2 */
    float t;           /* network time */
    uint8_t seed;      /* weight values */
    ng_mut mut[NG_MAX_MUT];
    int n_mut;
} ng_desc;

/* The input bytes into a description (always succeeds). */
void netgen_decode(const uint8_t *data, size_t size, ng_desc *d);
/* The description's bytes (the seeds): returns the length, or 0 when cap is too
 * small. Values are written as raw strings unless they are plain integers. */
size_t netgen_encode(const ng_desc *d, uint8_t *out, size_t cap);

/* Sets (or adds) metadata key = value. */
void netgen_set(ng_desc *d, const char *key, const char *value);
const char *netgen_get(const ng_desc *d, const char *key);

/* The file: *out (malloc'd, free it) of *out_size bytes. Returns 0, or -1 when the
 * description is too large to write (more than NG_MAX_DATA_BYTES of weights or too
 * many tensors) or out of memory: the caller skips the input. */
int netgen_build(const ng_desc *d, unsigned char **out, size_t *out_size);

#endif
