/*
 * options.c - option structs across versions: reading a caller's struct of any
 * published size, and the *_init functions that never write past it.
 *
 * A struct begins with uint32_t struct_size and only grows at the end. A caller
 * built against an older header passes a smaller struct: the library reads what it
 * covers and defaults the rest. A caller built against a newer header passes a larger
 * one: accepted only when every byte the library does not know is zero (the newer
 * fields left at their "off" value), as Linux's copy_struct_from_user() does, so a
 * request this library cannot honour is refused rather than ignored.
 */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

const char *lgd_struct_size_problem(const void *src, size_t dst_size, size_t min_size)
{
    uint32_t size;
    memcpy(&size, src, sizeof size);
    if (size < min_size)
        return "is smaller than the first published layout of the struct (set it with the "
               "*_INIT macro or the *_init function)";
    if (size > dst_size) {
        const unsigned char *tail = (const unsigned char *)src + dst_size;
        for (size_t i = 0; i < size - dst_size; i++)
            if (tail[i])
                return "is larger than this library's struct and the fields it does not "
                       "know are not zero (built against a newer liblgd?)";
    }
    return NULL;
}

lgd_status lgd_read_struct(lgd_context *ctx, const char *fn, const char *name, void *dst,
                           size_t dst_size, size_t min_size, const void *src,
                           const void *defaults)
{
    memcpy(dst, defaults, dst_size);
    if (!src)
        return LGD_OK;
    const char *problem = lgd_struct_size_problem(src, dst_size, min_size);
    if (problem) {
        uint32_t size;
        memcpy(&size, src, sizeof size);
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s->struct_size = %u %s", fn, name,
                         (unsigned)size, problem);
    }
    uint32_t size;
    memcpy(&size, src, sizeof size);
    memcpy(dst, src, size < dst_size ? size : dst_size);
    uint32_t own = (uint32_t)dst_size;
    memcpy(dst, &own, sizeof own);
    return LGD_OK;
}

lgd_status lgd_init_struct(void *dst, uint32_t struct_size, const void *defaults,
                           size_t size, size_t min_size)
{
    if (!dst || struct_size < min_size)
        return LGD_ERR_INVALID_ARGUMENT;
    size_t n = struct_size < size ? struct_size : size;
    memcpy(dst, defaults, n);
    if (struct_size > size) /* a newer header's fields: zero, i.e. off */
        memset((unsigned char *)dst + size, 0, struct_size - size);
    memcpy(dst, &struct_size, sizeof struct_size);
    return LGD_OK;
}
