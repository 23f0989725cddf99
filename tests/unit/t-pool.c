/* t-pool: the worker pool runs every item exactly once, on valid worker
 * indices, over many runs, with one thread and with several; a run split
 * in start and wait lets the caller work while the others take items, and
 * the last items of a run are handed out one by one (no chunk of slow
 * items left to one thread while the others idle). */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "../lib/tap.h"

#define MAXN 5000

struct ctx {
	atomic_int count[MAXN];
	atomic_int bad_worker;
	atomic_int used[64];	/* items run per worker */
	int nthreads;
	long sleep_ns;
};

static void fn(void *p, size_t item, int worker)
{
	struct ctx *c = p;
	if (item >= MAXN || worker < 0 || worker >= c->nthreads) {
		atomic_fetch_add(&c->bad_worker, 1);
		return;
	}
	atomic_fetch_add(&c->count[item], 1);
	atomic_fetch_add(&c->used[worker], 1);
	if (c->sleep_ns) {
		struct timespec ts = {0, c->sleep_ns};
		nanosleep(&ts, NULL);
	}
}

static void reset(struct ctx *c)
{
	for (int i = 0; i < MAXN; i++)
		atomic_store(&c->count[i], 0);
	for (int i = 0; i < 64; i++)
		atomic_store(&c->used[i], 0);
	atomic_store(&c->bad_worker, 0);
}

/* Run nruns runs of varying sizes; returns the number of runs in which an
 * item ran other than exactly once or a worker index was out of range. */
static int many_runs(struct ms_pool *p, struct ctx *c, int nruns)
{
	int bad = 0;
	for (int r = 0; r < nruns; r++) {
		size_t n = (size_t)((r * 7919) % 300);
		if (r % 50 == 0)
			n = MAXN;
		reset(c);
		ms_pool_run(p, n, fn, c);
		int ok = atomic_load(&c->bad_worker) == 0;
		for (size_t i = 0; i < MAXN; i++)
			ok &= atomic_load(&c->count[i]) == (i < n ? 1 : 0);
		bad += !ok;
	}
	return bad;
}

/* many_runs through ms_pool_start and ms_pool_wait. */
static int many_runs_split(struct ms_pool *p, struct ctx *c, int nruns)
{
	int bad = 0;
	for (int r = 0; r < nruns; r++) {
		size_t n = (size_t)((r * 7919) % 300);
		reset(c);
		ms_pool_start(p, n, fn, c);
		ms_pool_wait(p);
		int ok = atomic_load(&c->bad_worker) == 0;
		for (size_t i = 0; i < MAXN; i++)
			ok &= atomic_load(&c->count[i]) == (i < n ? 1 : 0);
		bad += !ok;
	}
	return bad;
}

/*
 * The run's last two items on two threads: item n-2 waits for item n-1.
 * That ends only if they are handed out singly, so that the other thread
 * can take n-1; in one chunk, n-1 would wait behind n-2 for ever (here,
 * until the time-out). A run whose tail is one chunk of several slow
 * items leaves the other threads idle in the same way.
 */
struct tail {
	size_t n;
	atomic_int last_done, timed_out;
};

static void wait_for_last(void *p, size_t item, int worker)
{
	struct tail *t = p;
	(void)worker;
	if (item == t->n - 1)
		atomic_store(&t->last_done, 1);
	if (item != t->n - 2)
		return;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!atomic_load(&t->last_done)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 5) {
			atomic_store(&t->timed_out, 1);
			return;
		}
		sched_yield();
	}
}

int main(void)
{
	static struct ctx c;
	ms_err e;

	struct ms_pool *p1 = ms_pool_new(1, &e);
	tap_ok(p1 != NULL, "a one-thread pool starts");
	tap_int(ms_pool_threads(p1), 1, "it has one thread");
	c.nthreads = 1;
	tap_int(many_runs(p1, &c, 300), 0, "1 thread: every item exactly once in 300 runs");
	ms_pool_free(p1);

	for (int nt = 2; nt <= 5; nt += 3) {
		struct ms_pool *p = ms_pool_new(nt, &e);
		tap_ok(p != NULL, "a %d-thread pool starts", nt);
		tap_int(ms_pool_threads(p), nt, "it has %d threads", nt);
		c.nthreads = nt;
		tap_int(many_runs(p, &c, 1000), 0,
			"%d threads: every item exactly once, workers in range, in 1000 runs", nt);

		/* slow items leave time for every thread to wake and take some */
		reset(&c);
		c.sleep_ns = 2000000;
		ms_pool_run(p, 40, fn, &c);
		c.sleep_ns = 0;
		int nused = 0, total = 0;
		for (int w = 0; w < nt; w++) {
			nused += atomic_load(&c.used[w]) > 0;
			total += atomic_load(&c.used[w]);
		}
		tap_int(total, 40, "%d threads: 40 slow items all ran", nt);
		tap_ok(nused >= 2, "%d threads: slow items spread over %d workers", nt, nused);
		tap_ok(atomic_load(&c.used[0]) > 0, "%d threads: the caller works as worker 0", nt);

		/* start, other work, wait: the others take items meanwhile */
		reset(&c);
		c.sleep_ns = 1000000;
		ms_pool_start(p, 60, fn, &c);
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int taken = 0;
		do {
			for (int i = 0; i < 60; i++)
				taken += atomic_load(&c.count[i]);
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (!taken && t.tv_sec - t0.tv_sec < 10);
		tap_ok(taken > 0, "%d threads: items are taken between start and wait", nt);
		ms_pool_wait(p);
		c.sleep_ns = 0;
		int once = 1;
		total = 0;
		for (int i = 0; i < MAXN; i++)
			once &= atomic_load(&c.count[i]) == (i < 60 ? 1 : 0);
		tap_ok(once && atomic_load(&c.bad_worker) == 0,
		       "%d threads: after wait, every item ran exactly once", nt);
		tap_int(many_runs_split(p, &c, 300), 0,
			"%d threads: start/wait, every item exactly once in 300 runs", nt);

		reset(&c);
		ms_pool_run(p, 0, fn, &c);
		int any = 0;
		for (int i = 0; i < MAXN; i++)
			any += atomic_load(&c.count[i]);
		tap_int(any, 0, "%d threads: a run of no items runs nothing", nt);
		ms_pool_free(p);
	}

	struct ms_pool *p2 = ms_pool_new(2, &e);
	int stuck = 0;
	for (size_t n = 2; n <= 400 && !stuck; n += n < 40 ? 1 : 37) {
		struct tail t = { .n = n };
		ms_pool_run(p2, n, wait_for_last, &t);
		stuck += atomic_load(&t.timed_out);
	}
	tap_int(stuck, 0, "2 threads: a run's last items are handed out one by one");
	ms_pool_free(p2);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct ms_pool *pa = ms_pool_new(0, &e);
	tap_ok(pa != NULL, "a pool of all cores starts");
	tap_int(ms_pool_threads(pa), ncpu > 0 ? ncpu : 1, "0 threads means one per online core");
	c.nthreads = ms_pool_threads(pa);
	tap_int(many_runs(pa, &c, 200), 0, "all cores: every item exactly once in 200 runs");
	ms_pool_free(pa);

	tap_ok(ms_pool_new(100000, &e) == NULL && strstr(e.msg, "100000") != NULL,
	       "an absurd thread count is refused: %s", e.msg);

	/* a pool made and freed without ever running must not hang */
	ms_pool_free(ms_pool_new(3, &e));
	tap_ok(1, "an unused pool frees");
	return tap_done();
}
