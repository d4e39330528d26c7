/*
 * fault_alloc.c - the allocation interposer of fault_alloc.h (see there).
 *
 * Compiled with -fno-builtin (tests/meson.build): the compiler must not turn the
 * bodies below into calls of the functions they define (calloc's zeroing into calloc).
 *
 * Forwarding: the real functions come from dlsym(RTLD_NEXT, ...), the next definition
 * after the executable in the lookup order: glibc's, whose entry points valgrind
 * redirects to its own allocator, so memcheck still sees every block. dlsym may
 * allocate while it resolves them; those few bytes come from a static bootstrap arena
 * (never freed, never passed on).
 *
 * Compiled with ASan or TSan instrumentation, the interposer is left out (their
 * runtimes intercept malloc themselves): fa_init() returns -2 and the test skips.
 * tests/meson.build compiles this file with -fno-sanitize=address, so that it works
 * over an ASan build: dlsym(RTLD_NEXT) then finds ASan's allocator. Nothing here takes
 * a pthread lock: ASan's pthread interceptors are not ready during its own start-up,
 * when the first allocations already come here.
 */
#define _GNU_SOURCE
#include "fault_alloc.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FA_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FA_OFF 1
#endif
#endif

#ifdef FA_OFF

int fa_init(void) { return -2; }
const char *fa_unavailable(void)
{
    return "fault_alloc.c was compiled with a sanitizer's instrumentation (ASan or TSan), "
           "whose runtime must keep malloc: the interposer is left out";
}
void fa_arm(uint64_t fail_at) { (void)fail_at; }
void fa_disarm(void) {}
uint64_t fa_count(void) { return 0; }
int fa_fired(const void **site, const char **what)
{
    if (site)
        *site = NULL;
    if (what)
        *what = "";
    return 0;
}
size_t fa_live(void) { return 0; }
int fa_overflowed(void) { return 0; }
char *fa_describe(const void *addr, char *buf, size_t cap)
{
    snprintf(buf, cap, "%p", addr);
    return buf;
}
char *fa_function(const void *addr, char *buf, size_t cap)
{
    (void)addr;
    if (cap)
        buf[0] = '\0';
    return buf;
}

#else /* the interposer */

/* ---- the real functions ---- */

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef void *(*align_fn)(size_t, size_t);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);

static struct {
    malloc_fn malloc;
    calloc_fn calloc;
    realloc_fn realloc;
    free_fn free;
    align_fn aligned_alloc;
    align_fn memalign;
    posix_memalign_fn posix_memalign;
} real;
static int resolving; /* the first allocation of the process: single-threaded */

/* The bootstrap arena for what dlsym allocates while the real functions are looked up. */
static _Alignas(64) unsigned char boot[1 << 16];
static size_t boot_used;

static int in_boot(const void *p)
{
    return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + sizeof boot;
}

static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    size_t at = (boot_used + align - 1) & ~(align - 1);
    if (at > sizeof boot || n > sizeof boot - at)
        return NULL;
    boot_used = at + n;
    return boot + at; /* zero: the arena is never reused */
}

static void *lookup(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

#define RESOLVE(field, name)                                                               \
    do {                                                                                   \
        void *sym_ = lookup(name);                                                         \
        memcpy(&real.field, &sym_, sizeof sym_);                                           \
    } while (0)

static void resolve(void)
{
    resolving = 1;
    RESOLVE(free, "free");
    RESOLVE(calloc, "calloc");
    RESOLVE(realloc, "realloc");
    RESOLVE(aligned_alloc, "aligned_alloc");
    RESOLVE(memalign, "memalign");
    RESOLVE(posix_memalign, "posix_memalign");
    RESOLVE(malloc, "malloc"); /* last: it marks the table complete */
    resolving = 0;
    if (!real.malloc || !real.free || !real.calloc || !real.realloc || !real.aligned_alloc ||
        !real.memalign || !real.posix_memalign) {
        static const char msg[] = "fault_alloc: dlsym(RTLD_NEXT) found no allocator\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        abort();
    }
}

/* ---- liblgd's code ---- */

#define MAX_RANGES 8
static struct {
    uintptr_t lo, hi;
} ranges[MAX_RANGES];
static int n_ranges;
static uintptr_t lgd_base;
static char lgd_path[4096];

static int from_lgd(const void *ra)
{
    uintptr_t a = (uintptr_t)ra;
    for (int i = 0; i < n_ranges; i++)
        if (a >= ranges[i].lo && a < ranges[i].hi)
            return 1;
    return 0;
}

static int find_lgd(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    if (strncmp(base, "liblgd.so", 9) != 0)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && n_ranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            ranges[n_ranges].lo = info->dlpi_addr + ph->p_vaddr;
            ranges[n_ranges].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
            n_ranges++;
        }
    }
    lgd_base = info->dlpi_addr;
    snprintf(lgd_path, sizeof lgd_path, "%s", name);
    return 1;
}

/* ---- counting, injection and tracking (under one lock) ---- */

/* A spin lock of C11 atomics rather than a pthread mutex: the allocator runs before
 * everything else, even while a sanitizer's runtime sets up its pthread interceptors. */
static atomic_flag lock_flag = ATOMIC_FLAG_INIT;

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&lock_flag, memory_order_acquire)) {
    }
}

static void unlock(void)
{
    atomic_flag_clear_explicit(&lock_flag, memory_order_release);
}
static int armed;
static uint64_t count, fail_at;
static int fired;
static const void *fired_site;
static const char *fired_what;

#define TABLE_BITS 16
#define TABLE_SIZE ((size_t)1 << TABLE_BITS)
static void *table[TABLE_SIZE];
static size_t live;
static int overflow;

static size_t slot_of(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> (64 - TABLE_BITS));
}

static void track_locked(void *p)
{
    if (live >= TABLE_SIZE / 2) {
        overflow = 1;
        return;
    }
    size_t i = slot_of(p);
    while (table[i])
        i = (i + 1) & (TABLE_SIZE - 1);
    table[i] = p;
    live++;
}

/* Removes p when tracked (linear probing, backward-shift deletion); 1 when it was. */
static int untrack_locked(const void *p)
{
    if (!live)
        return 0;
    size_t i = slot_of(p);
    while (table[i] && table[i] != p)
        i = (i + 1) & (TABLE_SIZE - 1);
    if (!table[i])
        return 0;
    table[i] = NULL;
    live--;
    for (size_t j = (i + 1) & (TABLE_SIZE - 1); table[j]; j = (j + 1) & (TABLE_SIZE - 1)) {
        size_t home = slot_of(table[j]);
        /* table[j] may move to the hole at i when its home is not in (i, j] cyclically */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            table[i] = table[j];
            table[j] = NULL;
            i = j;
        }
    }
    return 1;
}

/* An allocation by liblgd is about to happen: 1 when it is the one to fail. */
static int inject(const void *ra, const char *what)
{
    lock();
    int fail = 0;
    if (armed) {
        count++;
        if (fail_at && count == fail_at) {
            fired = 1;
            fired_site = ra;
            fired_what = what;
            fail = 1;
        }
    }
    unlock();
    return fail;
}

static void track(void *p)
{
    lock();
    track_locked(p);
    unlock();
}

static int untrack(const void *p)
{
    lock();
    int was = untrack_locked(p);
    unlock();
    return was;
}

/* ---- the interposed functions ---- */

void *malloc(size_t n)
{
    const void *ra = __builtin_return_address(0);
    if (!real.malloc) {
        if (resolving)
            return boot_alloc(n, 16);
        resolve();
    }
    int lgd = from_lgd(ra);
    if (lgd && inject(ra, "malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real.malloc(n);
    if (p && lgd)
        track(p);
    return p;
}

void *calloc(size_t n, size_t size)
{
    const void *ra = __builtin_return_address(0);
    if (!real.malloc) {
        if (resolving)
            return size && n > SIZE_MAX / size ? NULL : boot_alloc(n * size, 16);
        resolve();
    }
    int lgd = from_lgd(ra);
    if (lgd && inject(ra, "calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real.calloc(n, size);
    if (p && lgd)
        track(p);
    return p;
}

void free(void *p)
{
    if (!p || in_boot(p))
        return;
    if (!real.malloc) {
        if (resolving)
            return; /* a block of the loader's, freed while the real free is looked up:
                     * left alone (leaked once) */
        resolve();
    }
    untrack(p);
    real.free(p);
}

void *realloc(void *p, size_t n)
{
    const void *ra = __builtin_return_address(0);
    if (!real.malloc) {
        if (resolving) /* (growing a block while the lookup runs: not seen; refused) */
            return p ? NULL : boot_alloc(n, 16);
        resolve();
    }
    if (p && in_boot(p)) { /* a bootstrap block grows into a real one (size unknown:
                            * copy what the arena can hold past it) */
        void *q = real.malloc(n);
        if (q) {
            size_t avail = (size_t)(boot + sizeof boot - (unsigned char *)p);
            memcpy(q, p, n < avail ? n : avail);
        }
        return q;
    }
    if (p && n == 0) { /* glibc: frees p and returns NULL */
        free(p);
        return NULL;
    }
    int lgd = from_lgd(ra);
    if (lgd && inject(ra, "realloc")) {
        errno = ENOMEM;
        return NULL; /* p stays valid and tracked */
    }
    /* untracked before the call: once realloc frees p, another thread may get its address */
    int was = p ? untrack(p) : 0;
    void *q = real.realloc(p, n);
    if (!q) {
        if (was)
            track(p);
        return NULL;
    }
    if (lgd || was)
        track(q);
    return q;
}

static void *aligned_common(align_fn fn, const char *what, const void *ra, size_t align,
                            size_t n)
{
    int lgd = from_lgd(ra);
    if (lgd && inject(ra, what)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = fn(align, n);
    if (p && lgd)
        track(p);
    return p;
}

void *aligned_alloc(size_t align, size_t n)
{
    const void *ra = __builtin_return_address(0);
    if (!real.malloc) {
        if (resolving)
            return boot_alloc(n, align);
        resolve();
    }
    return aligned_common(real.aligned_alloc, "aligned_alloc", ra, align, n);
}

void *memalign(size_t align, size_t n)
{
    const void *ra = __builtin_return_address(0);
    if (!real.malloc) {
        if (resolving)
            return boot_alloc(n, align);
        resolve();
    }
    return aligned_common(real.memalign, "memalign", ra, align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    const void *ra = __builtin_return_address(0);
    if (!real.malloc) {
        if (resolving) {
            *out = boot_alloc(n, align);
            return *out ? 0 : ENOMEM;
        }
        resolve();
    }
    int lgd = from_lgd(ra);
    if (lgd && inject(ra, "posix_memalign"))
        return ENOMEM; /* *out untouched, as glibc leaves it */
    int rc = real.posix_memalign(out, align, n);
    if (rc == 0 && lgd)
        track(*out);
    return rc;
}

/* ---- the API of fault_alloc.h ---- */

int fa_init(void)
{
    if (!real.malloc)
        resolve();
    lock();
    n_ranges = 0;
    unlock();
    dl_iterate_phdr(find_lgd, NULL);
    return n_ranges > 0 ? 0 : -1;
}

const char *fa_unavailable(void)
{
    return n_ranges > 0 ? NULL
                        : "liblgd.so is not loaded (the test must link the shared library)";
}

void fa_arm(uint64_t k)
{
    lock();
    armed = 1;
    count = 0;
    fail_at = k;
    fired = 0;
    fired_site = NULL;
    fired_what = "";
    unlock();
}

void fa_disarm(void)
{
    lock();
    armed = 0;
    unlock();
}

uint64_t fa_count(void)
{
    lock();
    uint64_t c = count;
    unlock();
    return c;
}

int fa_fired(const void **site, const char **what)
{
    lock();
    int f = fired;
    if (site)
        *site = fired_site;
    if (what)
        *what = fired_what ? fired_what : "";
    unlock();
    return f;
}

size_t fa_live(void)
{
    lock();
    size_t n = live;
    unlock();
    return n;
}

int fa_overflowed(void)
{
    lock();
    int o = overflow;
    unlock();
    return o;
}

#if __SIZEOF_POINTER__ == 8
#define SYM_TYPE(info) ELF64_ST_TYPE(info)
#else
#define SYM_TYPE(info) ELF32_ST_TYPE(info)
#endif

/* The function of liblgd.so's symbol table (.symtab, else .dynsym) that contains the
 * link-time address off; *start receives its start. The file is read whole (a few MB). */
static int symbol_at(uintptr_t off, char *name, size_t cap, uintptr_t *start)
{
    int fd = open(lgd_path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat sb;
    unsigned char *img = NULL;
    int found = -1;
    if (fstat(fd, &sb) != 0 || sb.st_size < (off_t)sizeof(ElfW(Ehdr)))
        goto out;
    size_t size = (size_t)sb.st_size;
    img = malloc(size);
    if (!img)
        goto out;
    for (size_t got = 0; got < size;) {
        ssize_t r = read(fd, img + got, size - got);
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    const ElfW(Ehdr) *eh = (const void *)img;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff > size || (size - eh->e_shoff) / sizeof(ElfW(Shdr)) < eh->e_shnum)
        goto out;
    const ElfW(Shdr) *sh = (const void *)(img + eh->e_shoff);
    for (int pass = 0; pass < 2 && found < 0; pass++) {
        uint32_t want = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
        for (size_t s = 0; s < eh->e_shnum && found < 0; s++) {
            if (sh[s].sh_type != want || sh[s].sh_link >= eh->e_shnum ||
                sh[s].sh_offset > size || sh[s].sh_size > size - sh[s].sh_offset)
                continue;
            const ElfW(Shdr) *strs = &sh[sh[s].sh_link];
            if (strs->sh_offset > size || strs->sh_size > size - strs->sh_offset)
                continue;
            const ElfW(Sym) *sym = (const void *)(img + sh[s].sh_offset);
            size_t n = sh[s].sh_size / sizeof *sym;
            for (size_t i = 0; i < n; i++) {
                if (SYM_TYPE(sym[i].st_info) != STT_FUNC || sym[i].st_value > off ||
                    off - sym[i].st_value >= (sym[i].st_size ? sym[i].st_size : 1) ||
                    sym[i].st_name >= strs->sh_size)
                    continue;
                const char *nm = (const char *)img + strs->sh_offset + sym[i].st_name;
                size_t len = strnlen(nm, strs->sh_size - sym[i].st_name);
                snprintf(name, cap, "%.*s", (int)len, nm);
                *start = sym[i].st_value;
                found = 0;
                break;
            }
        }
    }
out:
    free(img);
    close(fd);
    return found;
}

char *fa_function(const void *addr, char *buf, size_t cap)
{
    uintptr_t start = 0;
    if (cap)
        buf[0] = '\0';
    if (!from_lgd(addr) || symbol_at((uintptr_t)addr - lgd_base, buf, cap, &start) != 0) {
        if (cap)
            buf[0] = '\0';
    }
    return buf;
}

char *fa_describe(const void *addr, char *buf, size_t cap)
{
    if (!from_lgd(addr)) {
        snprintf(buf, cap, "%p (outside liblgd)", addr);
        return buf;
    }
    uintptr_t off = (uintptr_t)addr - lgd_base, start = 0;
    char fn[256];
    if (symbol_at(off, fn, sizeof fn, &start) == 0)
        snprintf(buf, cap, "%s+0x%lx (liblgd.so offset 0x%lx)", fn,
                 (unsigned long)(off - start), (unsigned long)off);
    else
        snprintf(buf, cap, "? (liblgd.so offset 0x%lx)", (unsigned long)off);
    return buf;
}

#endif /* FA_OFF */
