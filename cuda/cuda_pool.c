/*
 * cuda_pool.c - the backend's caching device allocator.
 *
 * Requests are rounded up to a size class (512 bytes, then four classes per
 * power of two: at most 25% rounding waste) and served from that class's free
 * list when a block is cached there; otherwise from cudaMalloc. Freed blocks go
 * back to their class's list, not to CUDA, so a sampling loop that releases and
 * re-acquires scratch of the same sizes stops calling cudaMalloc after its first
 * step. Blocks are only ever used on the backend's one stream, so a block freed
 * while kernels that use it are still queued can be handed out again at once:
 * the next user's work is queued after them.
 *
 * When cudaMalloc runs out of memory the cached blocks are released and the
 * allocation is retried once. Everything is released at destroy.
 */
#include <stdint.h>
#include <stdlib.h>

#include "cuda_backend.h"

#define MIN_CLASS_BYTES 512u

/* Class index and class size of a request. */
static int size_class(size_t bytes, size_t *class_bytes)
{
    if (bytes <= MIN_CLASS_BYTES) {
        *class_bytes = MIN_CLASS_BYTES;
        return 0;
    }
    size_t b = bytes - 1;
    int octave = 63 - __builtin_clzll((unsigned long long)b); /* >= 9 */
    size_t base = (size_t)1 << octave, quarter = base >> 2;
    size_t q = (b - base) / quarter; /* 0..3 */
    *class_bytes = base + (q + 1) * quarter;
    return (octave - 9) * 4 + (int)q + 1;
}

static size_t hash_ptr(const void *p)
{
    uint64_t v = (uint64_t)(uintptr_t)p >> 8; /* cudaMalloc aligns to 256 */
    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 40) & (LGD_POOL_HASH - 1);
}

void lgd_pool_init(lgd_pool *pool)
{
    for (int i = 0; i < LGD_POOL_CLASSES; i++)
        pool->free_list[i] = NULL;
    for (int i = 0; i < LGD_POOL_HASH; i++)
        pool->live[i] = NULL;
    pool->spare = NULL;
    pool->reserved = 0;
    pool->in_use = 0;
    pool->mallocs = 0;
}

static lgd_pool_block *new_record(lgd_pool *pool)
{
    lgd_pool_block *b = pool->spare;
    if (b) {
        pool->spare = b->next;
        return b;
    }
    return malloc(sizeof *b);
}

static void release_list(lgd_pool *pool, lgd_pool_block **head)
{
    while (*head) {
        lgd_pool_block *b = *head;
        *head = b->next;
        cudaFree(b->ptr);
        pool->reserved -= b->size;
        b->next = pool->spare;
        pool->spare = b;
    }
}

void lgd_pool_trim(lgd_backend *be)
{
    lgd_pool *pool = &be->pool;
    for (int i = 0; i < LGD_POOL_CLASSES; i++)
        release_list(pool, &pool->free_list[i]);
}

void *lgd_pool_alloc(lgd_backend *be, size_t bytes)
{
    lgd_pool *pool = &be->pool;
    size_t size;
    int cls = size_class(bytes, &size);
    if (cls < 0 || cls >= LGD_POOL_CLASSES || size < bytes) {
        lgd_cuda_note(be, "alloc: %zu bytes is more than the device allocator serves", bytes);
        return NULL;
    }
    lgd_pool_block *b = pool->free_list[cls];
    if (b) {
        pool->free_list[cls] = b->next;
    } else {
        b = new_record(pool);
        if (!b) {
            lgd_cuda_note(be, "alloc: out of host memory (allocator record)");
            return NULL;
        }
        void *p = NULL;
        cudaError_t e = cudaMalloc(&p, size);
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError(); /* out of memory is not sticky: clear it */
            lgd_pool_trim(be);        /* cudaFree waits for the queued work */
            e = cudaMalloc(&p, size);
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            lgd_cuda_note(be, "cudaMalloc (%zu bytes, %zu reserved): %s (%s)", size,
                          pool->reserved, cudaGetErrorName(e), cudaGetErrorString(e));
            b->next = pool->spare;
            pool->spare = b;
            return NULL; /* the core reports LGD_ERR_OUT_OF_MEMORY */
        }
        pool->mallocs++;
        pool->reserved += size;
        b->ptr = p;
        b->size = size;
        b->cls = cls;
    }
    size_t h = hash_ptr(b->ptr);
    b->next = pool->live[h];
    pool->live[h] = b;
    pool->in_use += b->size;
    return b->ptr;
}

void lgd_pool_free(lgd_backend *be, void *p)
{
    if (!p)
        return;
    lgd_pool *pool = &be->pool;
    lgd_pool_block **link = &pool->live[hash_ptr(p)];
    while (*link && (*link)->ptr != p)
        link = &(*link)->next;
    lgd_pool_block *b = *link;
    if (!b) {
        lgd_cuda_check(be, cudaErrorInvalidDevicePointer,
                       "free: the pointer was not allocated by this backend");
        return;
    }
    *link = b->next;
    pool->in_use -= b->size;
    b->next = pool->free_list[b->cls];
    pool->free_list[b->cls] = b;
}

void lgd_pool_release_all(lgd_backend *be)
{
    lgd_pool *pool = &be->pool;
    lgd_pool_trim(be);
    for (int i = 0; i < LGD_POOL_HASH; i++)
        release_list(pool, &pool->live[i]);
    pool->in_use = 0;
    while (pool->spare) {
        lgd_pool_block *b = pool->spare;
        pool->spare = b->next;
        free(b);
    }
}
