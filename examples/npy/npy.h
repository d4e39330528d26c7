/*
 * npy.h - reading and writing NumPy .npy files as float32 arrays.
 *
 * A small, self-contained module shared by the `lgd sample` tool and the example
 * plugins (plugins/inpainting), built as the static library `lgd_npy`
 * (examples/npy/meson.build; position-independent, so a plugin can link it). It uses
 * the C standard library and POSIX only, never liblgd's private headers.
 *
 * Reading accepts the .npy format versions 1.0, 2.0 and 3.0, C order only, with the
 * element types '<f4' (float32), '<f8' (float64, converted; a finite value outside the
 * float32 range is an error), '|u1' (uint8) and '|b1' (bool, each byte 0 or 1),
 * converted to float32. Everything else (big-endian data, other types, structured
 * dtypes, fortran_order True, more than LGD_NPY_MAX_NDIM dimensions, a header that is not
 * a well-formed dictionary, a file shorter or longer than its header says) is refused
 * with a message. Every size is computed with overflow checks.
 *
 * Writing produces format 1.0, '<f4', C order, the header padded so that the data
 * starts at a multiple of 64 bytes (as NumPy writes it), to PATH.tmp first, then
 * renamed to PATH: a reader never sees a half-written file under PATH.
 *
 * Every function returns 0 on success and non-zero on failure, with a message (naming
 * the file) in err (at most errlen bytes, NUL-terminated; err may be NULL when errlen
 * is 0). No global state: any thread, on different files.
 */
#ifndef LGD_NPY_H
#define LGD_NPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The most dimensions an array read or written here may have. */
#define LGD_NPY_MAX_NDIM 8

/**
 * Reads the .npy file at path: on success *data is a malloc'd float32 array (C order;
 * the caller frees it; never NULL, even for an array of 0 elements), shape[0 .. *ndim-1]
 * its dimensions (*ndim 0 for a scalar: one element) and the rest of shape zero.
 * On failure *data is NULL and *ndim 0.
 */
int lgd_npy_read(const char *path, float **data, int64_t shape[LGD_NPY_MAX_NDIM], int *ndim,
                 char *err, size_t errlen);

/**
 * As lgd_npy_read() from the size bytes of a file image in memory (bytes may be NULL
 * when size is 0); name is used in messages (NULL: "<memory>").
 */
int lgd_npy_read_memory(const void *bytes, size_t size, const char *name, float **data,
                        int64_t shape[LGD_NPY_MAX_NDIM], int *ndim, char *err, size_t errlen);

/**
 * Writes the float32 array data of the given shape (ndim 0 .. LGD_NPY_MAX_NDIM, every
 * dimension >= 0; data may be NULL only when the array has no elements) to path, through
 * path.tmp and a rename. On failure path is left as it was and path.tmp is removed.
 */
int lgd_npy_write(const char *path, const float *data, const int64_t *shape, int ndim,
                  char *err, size_t errlen);

/**
 * The bytes lgd_npy_write() puts before the data (magic, version, header length and the
 * padded header for '<f4' of this shape), for a writer that fills the data itself (e.g.
 * several processes, each writing its rows at offset *header_len + row * row_bytes).
 * Writes at most buflen bytes into buf and sets *header_len (a multiple of 64; at most
 * LGD_NPY_MAX_HEADER bytes). Fails when the shape is invalid or buflen is too small.
 */
int lgd_npy_header_f4(const int64_t *shape, int ndim, unsigned char *buf, size_t buflen,
                      size_t *header_len, char *err, size_t errlen);

/** A buffer of this many bytes always holds lgd_npy_header_f4()'s output. */
#define LGD_NPY_MAX_HEADER 512

#ifdef __cplusplus
}
#endif

#endif
