/*
 * dtype.c - safetensors dtypes: names, sizes and conversion to float (dtype.h).
 */
#include "nn/dtype.h"

#include <string.h>

typedef struct dtype_info {
    const char *name;
    lgd_st_dtype dtype;
    size_t size;
} dtype_info;

static const dtype_info dtypes[] = {
    { "F32", LGD_ST_F32, 4 },
    { "F16", LGD_ST_F16, 2 },
    { "BF16", LGD_ST_BF16, 2 },
    { "F64", LGD_ST_F64, 8 },
};

/* Dtypes that safetensors defines and liblgd does not read (LGD_ERR_UNSUPPORTED). */
static const char *const other_dtypes[] = {
    "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "C64",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
};

size_t lgd_st_dtype_size(lgd_st_dtype dtype)
{
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (dtypes[k].dtype == dtype)
            return dtypes[k].size;
    return 0;
}

const char *lgd_st_dtype_name(lgd_st_dtype dtype)
{
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (dtypes[k].dtype == dtype)
            return dtypes[k].name;
    return "?";
}

lgd_status lgd_st_dtype_from_name(const char *name, lgd_st_dtype *out)
{
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (strcmp(name, dtypes[k].name) == 0) {
            *out = dtypes[k].dtype;
            return LGD_OK;
        }
    for (size_t k = 0; k < sizeof other_dtypes / sizeof other_dtypes[0]; k++)
        if (strcmp(name, other_dtypes[k]) == 0)
            return LGD_ERR_UNSUPPORTED;
    return LGD_ERR_FORMAT;
}

static float bits_to_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float half_to_float(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0x1F) /* inf, nan (payload kept) */
        return bits_to_float(sign | 0x7F800000u | (man << 13));
    if (exp != 0)
        return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0)
        return bits_to_float(sign);
    /* subnormal: man 2^-24, normalised */
    uint32_t e = 113;
    while (!(man & 0x400u)) {
        man <<= 1;
        e--;
    }
    return bits_to_float(sign | (e << 23) | ((man & 0x3FFu) << 13));
}

void lgd_st_convert_f32(lgd_st_dtype dtype, const unsigned char *data, size_t n, float *out)
{
    const unsigned char *b = data;
    switch (dtype) {
    case LGD_ST_F32:
        for (size_t i = 0; i < n; i++, b += 4)
            out[i] = bits_to_float((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                   (uint32_t)b[3] << 24);
        break;
    case LGD_ST_F16:
        for (size_t i = 0; i < n; i++, b += 2)
            out[i] = half_to_float((uint32_t)b[0] | (uint32_t)b[1] << 8);
        break;
    case LGD_ST_BF16:
        for (size_t i = 0; i < n; i++, b += 2)
            out[i] = bits_to_float(((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16);
        break;
    case LGD_ST_F64:
        for (size_t i = 0; i < n; i++, b += 8) {
            uint64_t u = lgd_st_le64(b);
            double d;
            memcpy(&d, &u, sizeof d);
            out[i] = (float)d;
        }
        break;
    }
}
