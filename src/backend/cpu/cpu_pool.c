/*
 * cpu_pool.c - the CPU backend's parking worker threads (cpu_pool.h).
 *
 * A run publishes (fn, arg, units) under the mutex with a new generation number and
 * wakes the workers; everyone takes units from one atomic counter. A worker joins the
 * run (under the mutex) only while it is open; the caller closes it when the counter
 * is exhausted and waits for the workers that joined, each of which reports once it
 * finds the counter exhausted (so fn's arguments may live on the caller's stack). A
 * worker that the scheduler has not run by then (a busy machine) skips that run
 * instead of delaying the caller. Workers wait on a condition variable between runs:
 * no spinning.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "backend/cpu/cpu_pool.h"

struct lgd_cpu_pool {
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    pthread_t *workers;
    int n_workers;
    /* the current run, published under lock */
    unsigned long generation;
    int quit;
    void (*fn)(void *arg, size_t unit);
    void *arg;
    size_t units;
    atomic_size_t next;
    int open; /* workers may still join the current run */
    int busy; /* workers that joined the current run and are still in it */
};

static void take_units(lgd_cpu_pool *p, void (*fn)(void *, size_t), void *arg, size_t units)
{
    for (;;) {
        size_t u = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (u >= units)
            return;
        fn(arg, u);
    }
}

static void *worker_main(void *vp)
{
    lgd_cpu_pool *p = vp;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->generation == seen && !p->quit)
            pthread_cond_wait(&p->start, &p->lock);
        if (p->quit)
            break;
        seen = p->generation;
        if (!p->open)
            continue; /* woken too late: the caller has done this run without us */
        p->busy++;
        void (*fn)(void *, size_t) = p->fn;
        void *arg = p->arg;
        size_t units = p->units;
        pthread_mutex_unlock(&p->lock);
        take_units(p, fn, arg, units);
        pthread_mutex_lock(&p->lock);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void stop_workers(lgd_cpu_pool *p, int started)
{
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < started; i++)
        pthread_join(p->workers[i], NULL);
}

lgd_cpu_pool *lgd_cpu_pool_create(int threads)
{
    if (threads < 2)
        return NULL;
    lgd_cpu_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->workers = calloc((size_t)(threads - 1), sizeof *p->workers);
    if (!p->workers || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->workers);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->start, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p->workers);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->start);
        pthread_mutex_destroy(&p->lock);
        free(p->workers);
        free(p);
        return NULL;
    }
    atomic_init(&p->next, 0);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            stop_workers(p, i); /* fewer threads: no pool rather than a partial one */
            pthread_cond_destroy(&p->done);
            pthread_cond_destroy(&p->start);
            pthread_mutex_destroy(&p->lock);
            free(p->workers);
            free(p);
            return NULL;
        }
        p->n_workers++;
    }
    return p;
}

void lgd_cpu_pool_destroy(lgd_cpu_pool *p)
{
    if (!p)
        return;
    stop_workers(p, p->n_workers);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->start);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

void lgd_cpu_pool_run(lgd_cpu_pool *p, size_t units, void (*fn)(void *arg, size_t unit),
                      void *arg)
{
    if (!p || units < 2) {
        for (size_t u = 0; u < units; u++)
            fn(arg, u);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->units = units;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->open = 1;
    p->busy = 0;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    take_units(p, fn, arg, units);
    pthread_mutex_lock(&p->lock);
    p->open = 0; /* every unit is taken: no worker joins from now on */
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
