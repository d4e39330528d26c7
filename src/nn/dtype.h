/*
 * dtype.h - the element types of network files (safetensors dtypes) and their
 * conversion to float (private to liblgd).
 *
 * liblgd reads F32, F16, BF16 and F64; the other dtypes that safetensors defines (I64,
 * BOOL, F8_E4M3...) are known by name so that a file holding one is refused as
 * unsupported rather than malformed.
 */
#ifndef LGD_NN_DTYPE_H
#define LGD_NN_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "lgd/common.h"

typedef enum lgd_st_dtype { LGD_ST_F32, LGD_ST_F16, LGD_ST_BF16, LGD_ST_F64 } lgd_st_dtype;

/* Size in bytes of one element of dtype. */
size_t lgd_st_dtype_size(lgd_st_dtype dtype);
/* The dtype's name in the file ("F32", ...). */
const char *lgd_st_dtype_name(lgd_st_dtype dtype);
/* The dtype of that name: LGD_OK with *out set; LGD_ERR_UNSUPPORTED for a dtype that
 * safetensors defines and liblgd does not read; LGD_ERR_FORMAT for any other name. */
lgd_status lgd_st_dtype_from_name(const char *name, lgd_st_dtype *out);
/* Converts n values of dtype, little-endian and maybe unaligned at data, to float:
 * f16 and bf16 exactly (subnormals, inf and nan included), f64 rounded to nearest. */
void lgd_st_convert_f32(lgd_st_dtype dtype, const unsigned char *data, size_t n, float *out);

/* The little-endian 64-bit unsigned integer at b. */
static inline uint64_t lgd_st_le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | b[k];
    return v;
}

#endif
