/*
 * cpu_contention.c - the run-queue delay of the thread driving the CPU backend, and
 * the decision of cpu_contention.h drawn from it.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#endif

#include "backend/cpu/cpu_contention.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LGD_HAVE_SCHEDSTAT 1
#endif

#ifdef LGD_HAVE_SCHEDSTAT
/* The calling thread's run-queue wait in ns (field 2 of /proc/thread-self/schedstat:
 * "on-CPU ns, run-queue wait ns, time slices"), or -1. */
static long long thread_wait_ns(void)
{
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[96];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0)
        return -1;
    buf[got] = '\0';
    char *end;
    (void)strtoull(buf, &end, 10);
    if (end == buf || *end != ' ')
        return -1;
    const char *p = end + 1;
    unsigned long long wait = strtoull(p, &end, 10);
    if (end == p)
        return -1;
    return (long long)wait;
}

static long long now_ns(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) != 0)
        return -1;
    return (long long)t.tv_sec * 1000000000LL + (long long)t.tv_nsec;
}
#endif

void lgd_cpu_contention_init(lgd_backend *be)
{
    lgd_cpu_contention *c = &be->contention;
    const char *env = getenv("LGD_CPU_ADAPTIVE");
    c->enabled = be->threads > 1 && !(env && strcmp(env, "0") == 0);
#ifdef LGD_HAVE_SCHEDSTAT
    if (c->enabled && thread_wait_ns() < 0)
        c->enabled = 0;
#else
    c->enabled = 0;
#endif
    atomic_init(&c->contended, 0);
    atomic_init(&c->checked_ns, 0);
    atomic_init(&c->wait_ns, 0);
    atomic_init(&c->tid, 0);
}

int lgd_cpu_contended(lgd_backend *be)
{
    lgd_cpu_contention *c = &be->contention;
    if (!c->enabled)
        return 0;
#ifdef LGD_HAVE_SCHEDSTAT
    long long now = now_ns(), last = atomic_load_explicit(&c->checked_ns, memory_order_relaxed);
    int contended = atomic_load_explicit(&c->contended, memory_order_relaxed);
    if (now < 0 || (last != 0 && now - last < LGD_CPU_CONTENTION_PERIOD_NS))
        return contended;
    long long wait = thread_wait_ns(), tid = (long long)syscall(SYS_gettid);
    if (wait < 0)
        return contended;
    if (last != 0 && tid == atomic_load_explicit(&c->tid, memory_order_relaxed)) {
        /* the share of the period this thread spent runnable but not running */
        long long waited = wait - atomic_load_explicit(&c->wait_ns, memory_order_relaxed);
        long long permille = waited * 1000 / (now - last);
        if (permille > LGD_CPU_CONTENDED_WAIT_PERMILLE)
            contended = 1;
        else if (permille < LGD_CPU_CONTENDED_WAIT_PERMILLE / 2)
            contended = 0;
        atomic_store_explicit(&c->contended, contended, memory_order_relaxed);
    } /* else: a first measurement, or another thread drives the backend now: a new base */
    atomic_store_explicit(&c->tid, tid, memory_order_relaxed);
    atomic_store_explicit(&c->wait_ns, wait, memory_order_relaxed);
    atomic_store_explicit(&c->checked_ns, now, memory_order_relaxed);
    return contended;
#else
    return 0;
#endif
}
