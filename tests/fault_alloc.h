/*
 * fault_alloc.h - an allocation interposer for fault-injection tests (test_faults.c).
 *
 * fault_alloc.c defines malloc, calloc, realloc, free, aligned_alloc, posix_memalign,
 * memalign, valloc and pvalloc in the test executable. The dynamic linker binds every
 * library's calls to these (ELF interposition, as glibc documents for a replacement
 * malloc), and they forward to the next definition (dlsym(RTLD_NEXT): glibc's, or
 * valgrind's replacement of it). An allocation counts as liblgd's when the caller
 * (__builtin_return_address(0)) lies in an executable segment of liblgd.so, so the
 * test must link the shared library, not liblgd.a. Allocations made by OpenMP,
 * OpenBLAS, oneDNN, libc or the test itself are neither counted nor failed.
 *
 * What it offers:
 *  - counting: the liblgd allocations since fa_arm();
 *  - injection: fa_arm(k) fails the k-th of them (one failure; later ones succeed);
 *  - tracking: every block liblgd allocated and has not freed (fa_live()), whatever
 *    thread frees it, so a test can check that nothing leaked;
 *  - naming: fa_describe() names the liblgd function at an address (from the ELF
 *    symbol table of liblgd.so, which holds the hidden functions too).
 * The interposer's state is process-wide (it is a test tool, not library code).
 *
 * Sanitizers: fault_alloc.c is compiled without AddressSanitizer instrumentation
 * (-fno-sanitize=address, tests/meson.build), and then works over an ASan build of
 * liblgd: its forwarding reaches ASan's allocator, which checks every block. Should it
 * be compiled with ASan or TSan instrumentation anyway, the interposer is left out
 * (their runtimes must own malloc) and fa_init() says so.
 */
#ifndef LGD_FAULT_ALLOC_H
#define LGD_FAULT_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Finds liblgd.so's executable segments. 0 on success, -1 when liblgd.so is not loaded
 * (a static build of the test), -2 when the interposer is not compiled in (a
 * sanitizer's instrumentation; see above). fa_unavailable() then says why. Call once,
 * before any liblgd call. */
int fa_init(void);
/* NULL when the interposer is usable; else why not (a constant string). */
const char *fa_unavailable(void);

/* Starts counting liblgd's allocations from zero; fail_at >= 1 fails the fail_at-th of
 * them, 0 fails none. Clears the record of the last failure. */
void fa_arm(uint64_t fail_at);
/* Stops counting and failing (tracking goes on). */
void fa_disarm(void);
/* liblgd allocations since the last fa_arm() (while armed). */
uint64_t fa_count(void);
/* 1 when the armed failure happened; *site (may be NULL) receives the return address of
 * the failed call, *what its function name ("malloc", "calloc", ...). */
int fa_fired(const void **site, const char **what);
/* Blocks allocated by liblgd that are still live. */
size_t fa_live(void);
/* 1 when the tracking table overflowed (the live count is then not reliable). */
int fa_overflowed(void);
/* Writes "function+0xOFF (liblgd.so offset 0xADDR)" for an address inside liblgd into
 * buf (cap bytes); the function name is "?" when the symbol table is not available
 * (a stripped library). Returns buf. */
char *fa_describe(const void *addr, char *buf, size_t cap);
/* The name of the liblgd function that contains addr into buf ("" when unknown);
 * returns buf. */
char *fa_function(const void *addr, char *buf, size_t cap);

#endif
