/*
 * pool: worker threads, a generation counter that tells them a new run has
 * started, and an atomic item counter they take chunks from. See pool.h.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Beyond this many threads something is wrong with the request. */
#define POOL_MAX_THREADS 1024
/* A chunk is at most the remaining items over GUIDE per thread. */
#define GUIDE 2

struct worker {
	struct ms_pool *pool;
	pthread_t th;
	int id;
};

struct ms_pool {
	int n;			/* threads including the caller */
	struct worker *w;	/* [n]; w[0] is the caller, no thread */
	pthread_mutex_t mu;
	pthread_cond_t start, done;
	unsigned long gen;	/* bumped per run, under mu */
	int busy;		/* helper threads still in the current run */
	int stop;
	bool started;		/* helper threads were woken for the current run */
	/* the current run, written before gen is bumped */
	ms_pool_fn fn;
	void *ctx;
	size_t nitems, chunk;
	atomic_size_t next;
};

/*
 * Take chunks until none is left. A chunk is a share of what remains
 * (guided scheduling): large while much remains, so the counter is rarely
 * touched, and single items at the end, so no thread sits idle at the
 * barrier while another finishes a long chunk of slow items.
 */
static void work(struct ms_pool *p, int id)
{
	size_t i = atomic_load_explicit(&p->next, memory_order_relaxed);
	for (;;) {
		if (i >= p->nitems)
			return;
		size_t chunk = (p->nitems - i) / ((size_t)p->n * GUIDE);
		chunk = chunk < 1 ? 1 : chunk > p->chunk ? p->chunk : chunk;
		if (!atomic_compare_exchange_weak_explicit(&p->next, &i, i + chunk,
							   memory_order_relaxed, memory_order_relaxed))
			continue;	/* i is the counter's new value */
		size_t end = i + chunk;
		for (; i < end; i++)
			p->fn(p->ctx, i, id);
		i = atomic_load_explicit(&p->next, memory_order_relaxed);
	}
}

static void *thread_main(void *arg)
{
	struct worker *me = arg;
	struct ms_pool *p = me->pool;
	unsigned long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->stop)
			pthread_cond_wait(&p->start, &p->mu);
		if (p->stop)
			break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		work(p, me->id);
		pthread_mutex_lock(&p->mu);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct ms_pool *ms_pool_new(int nthreads, ms_err *e)
{
	if (nthreads <= 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = nc > 0 ? (int)(nc < POOL_MAX_THREADS ? nc : POOL_MAX_THREADS) : 1;
	}
	if (nthreads > POOL_MAX_THREADS) {
		ms_err_set(e, "%d threads is more than the %d a pool allows", nthreads,
			   POOL_MAX_THREADS);
		return NULL;
	}
	struct ms_pool *p = calloc(1, sizeof *p);
	struct worker *w = calloc((size_t)nthreads, sizeof *w);
	if (!p || !w) {
		free(p);
		free(w);
		ms_err_set(e, "cannot allocate a thread pool:");
		return NULL;
	}
	p->n = nthreads;
	p->w = w;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->start, NULL);
	pthread_cond_init(&p->done, NULL);
	atomic_init(&p->next, 0);
	for (int i = 1; i < nthreads; i++) {
		w[i].pool = p;
		w[i].id = i;
		int err = pthread_create(&w[i].th, NULL, thread_main, &w[i]);
		if (err) {
			p->n = i;	/* only threads 1..i-1 exist */
			ms_pool_free(p);
			errno = err;
			ms_err_set(e, "cannot start pool thread %d of %d:", i + 1, nthreads);
			return NULL;
		}
	}
	return p;
}

int ms_pool_threads(const struct ms_pool *p)
{
	return p->n;
}

void ms_pool_start(struct ms_pool *p, size_t nitems, ms_pool_fn fn, void *ctx)
{
	p->fn = fn;
	p->ctx = ctx;
	p->nitems = nitems;
	p->started = false;
	if (nitems == 0 || p->n == 1 || nitems == 1)
		return;	/* the caller does it all in ms_pool_wait */
	/* at most a few chunks per thread, never so many that the counter
	 * becomes the bottleneck on cheap items */
	size_t chunk = nitems / ((size_t)p->n * 8);
	p->chunk = chunk < 1 ? 1 : chunk > 16 ? 16 : chunk;
	atomic_store_explicit(&p->next, 0, memory_order_relaxed);
	pthread_mutex_lock(&p->mu);
	p->busy = p->n - 1;
	p->gen++;
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	p->started = true;
}

void ms_pool_wait(struct ms_pool *p)
{
	if (!p->started) {
		for (size_t i = 0; i < p->nitems; i++)
			p->fn(p->ctx, i, 0);
		p->nitems = 0;
		return;
	}
	work(p, 0);
	pthread_mutex_lock(&p->mu);
	while (p->busy > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	p->started = false;
	p->nitems = 0;
}

void ms_pool_run(struct ms_pool *p, size_t nitems, ms_pool_fn fn, void *ctx)
{
	ms_pool_start(p, nitems, fn, ctx);
	ms_pool_wait(p);
}

void ms_pool_free(struct ms_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->w[i].th, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->start);
	pthread_cond_destroy(&p->done);
	free(p->w);
	free(p);
}
