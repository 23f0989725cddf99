/*
 * pool: a fixed set of worker threads that runs one function over many
 * items (ROIs, not frames, so one frame with many beads uses every core).
 * The calling thread works too, as worker 0; items are handed out in
 * chunks from an atomic counter, shrinking to single items as the run
 * nears its end, so uneven items balance themselves; idle
 * workers sleep on a condition variable. One ms_pool_run at a time per
 * pool (it is not reentrant); a pool may be reused for any number of runs.
 */
#ifndef MS_POOL_H
#define MS_POOL_H

#include <stddef.h>

#include "err.h"

struct ms_pool;

/* fn(ctx, item, worker): worker is 0..ms_pool_threads()-1, so it can index
 * per-thread workspaces. */
typedef void (*ms_pool_fn)(void *ctx, size_t item, int worker);

/* nthreads <= 0: one per online core. */
struct ms_pool *ms_pool_new(int nthreads, ms_err *e);
int ms_pool_threads(const struct ms_pool *p);
/* Run fn on items 0..nitems-1; returns when every item is done. */
void ms_pool_run(struct ms_pool *p, size_t nitems, ms_pool_fn fn, void *ctx);
/*
 * The same in two halves, so the caller can do other work on its own
 * core while the other threads take items: ms_pool_start sets them
 * going and returns at once; ms_pool_wait (required, once per start)
 * makes the caller take items too, as worker 0, and returns when every
 * item is done. Between the two the caller must leave ctx alone as far as
 * fn uses it. With one thread every item runs in ms_pool_wait.
 */
void ms_pool_start(struct ms_pool *p, size_t nitems, ms_pool_fn fn, void *ctx);
void ms_pool_wait(struct ms_pool *p);
void ms_pool_free(struct ms_pool *p);

#endif
