/* t-pool: the worker pool runs every item exactly once, on valid worker
 * indices, over many runs, with one thread and with several. */
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

		reset(&c);
		ms_pool_run(p, 0, fn, &c);
		int any = 0;
		for (int i = 0; i < MAXN; i++)
			any += atomic_load(&c.count[i]);
		tap_int(any, 0, "%d threads: a run of no items runs nothing", nt);
		ms_pool_free(p);
	}

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
