/* prefetch: a reader thread filling batch buffers; see prefetch.h. */
#include "prefetch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

/* Bytes a batch's window allows per frame beyond its pixels. */
#define WINDOW_SLACK 4096u

enum slot_state { SLOT_EMPTY, SLOT_FILLING, SLOT_FULL, SLOT_TAKEN };

struct slot {
	struct ms_frame_batch batch;
	unsigned char *buf;		/* max_frames * frame_bytes: copied frames */
	struct ms_framemap map;		/* mapped frames */
	enum slot_state state;
};

struct ms_prefetch {
	struct ms_framesrc *src;
	size_t max_frames, frame_bytes;
	size_t window;			/* bytes mapped per batch */
	int nbuf;
	bool copy;			/* MS_PREFETCH_COPY */
	struct slot *slots;
	int next_fill, next_take;	/* slots are used round-robin, in order */
	bool done;			/* the reader has finished (end or error) */
	bool stopping;			/* the caller wants the reader gone */
	const volatile sig_atomic_t *interrupt;
	int result;			/* 0 end, -1 error, once done */
	ms_err err;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pthread_t thread;
	bool thread_started;
	int wake[2];			/* a byte in wake[1] aborts a blocked read */
};

size_t ms_prefetch_batch_frames(size_t want, size_t frame_bytes, size_t limit_bytes)
{
	size_t n = frame_bytes ? limit_bytes / frame_bytes : want;
	if (n > want)
		n = want;
	return n ? n : 1;
}

/*
 * Read one batch into s: frames mapped in place while they fit the
 * batch's window, others copied into its buffer. Returns what the source
 * last returned (1: more to come).
 */
static int fill(struct ms_prefetch *p, struct slot *s, ms_err *e)
{
	struct ms_frame_batch *b = &s->batch;
	ms_framemap_release(&s->map);
	b->nframes = 0;
	int rc = 1;
	while (b->nframes < p->max_frames) {
		if (b->nframes > 0 && !ms_framesrc_ready(p->src))
			break;
		struct ms_frame f;
		rc = p->copy ? 2 : ms_framesrc_next_mapped(p->src, &f, &s->map, p->window, e);
		if (rc == 2) {
			/* Not in this batch's window: the next batch maps a new one. */
			if (s->map.base) {
				rc = 1;
				break;
			}
			rc = ms_framesrc_next_into(p->src, &f, s->buf + b->nframes * p->frame_bytes, e);
		}
		if (rc <= 0)
			break;
		b->frame[b->nframes] = f.pixels;
		b->t_ns[b->nframes] = f.t_ns;
		b->seq[b->nframes] = f.seq;
		b->nframes++;
	}
	b->dropped = ms_framesrc_dropped(p->src);
	return rc;
}

static void *reader(void *arg)
{
	struct ms_prefetch *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		struct slot *s = &p->slots[p->next_fill];
		while (s->state != SLOT_EMPTY && !p->stopping)
			pthread_cond_wait(&p->changed, &p->lock);
		if (p->stopping) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		s->state = SLOT_FILLING;
		pthread_mutex_unlock(&p->lock);

		ms_err e = { "" };
		int rc = fill(p, s, &e);

		pthread_mutex_lock(&p->lock);
		if (s->batch.nframes > 0) {
			s->state = SLOT_FULL;
			p->next_fill = (p->next_fill + 1) % p->nbuf;
		} else {
			s->state = SLOT_EMPTY;
		}
		if (rc <= 0) {
			p->done = true;
			p->result = rc;
			p->err = e;
		}
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
		if (rc <= 0)
			return NULL;
	}
}

static void free_slots(struct ms_prefetch *p)
{
	for (int i = 0; p->slots && i < p->nbuf; i++) {
		ms_framemap_release(&p->slots[i].map);
		free(p->slots[i].buf);
		free(p->slots[i].batch.frame);
		free(p->slots[i].batch.t_ns);
		free(p->slots[i].batch.seq);
	}
	free(p->slots);
}

struct ms_prefetch *ms_prefetch_start(struct ms_framesrc *src, size_t max_frames, int nbuf,
                                      const volatile sig_atomic_t *interrupt, ms_err *e)
{
	return ms_prefetch_start_flags(src, max_frames, nbuf, interrupt, 0, e);
}

struct ms_prefetch *ms_prefetch_start_flags(struct ms_framesrc *src, size_t max_frames, int nbuf,
                                            const volatile sig_atomic_t *interrupt, int flags,
                                            ms_err *e)
{
	struct ms_prefetch *p = calloc(1, sizeof *p);
	if (!p) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	p->src = src;
	p->interrupt = interrupt;
	p->max_frames = max_frames ? max_frames : 1;
	p->nbuf = nbuf < 2 ? 2 : nbuf;
	p->frame_bytes = ms_frame_bytes(ms_framesrc_info(src));
	p->copy = flags & MS_PREFETCH_COPY;
	/*
	 * A batch's frames back to back, with room for the directories that
	 * tifffile and libtiff write between the pages: a frame beyond it
	 * starts the next batch.
	 */
	p->window = p->max_frames * (p->frame_bytes + WINDOW_SLACK);
	p->slots = calloc((size_t)p->nbuf, sizeof *p->slots);
	if (!p->slots)
		goto oom;
	for (int i = 0; i < p->nbuf; i++) {
		struct ms_frame_batch *b = &p->slots[i].batch;
		b->frame_bytes = p->frame_bytes;
		/* Pages of the buffer never written (all frames mapped) cost no memory. */
		p->slots[i].buf = malloc(p->max_frames * p->frame_bytes);
		b->frame = malloc(p->max_frames * sizeof *b->frame);
		b->t_ns = malloc(p->max_frames * sizeof *b->t_ns);
		b->seq = malloc(p->max_frames * sizeof *b->seq);
		if (!p->slots[i].buf || !b->frame || !b->t_ns || !b->seq)
			goto oom;
	}
	if (pipe2(p->wake, O_CLOEXEC) != 0) {
		ms_err_set(e, "cannot make the reader's wake-up pipe:");
		free_slots(p);
		free(p);
		return NULL;
	}
	ms_framesrc_set_wake_fd(src, p->wake[0]);
	pthread_mutex_init(&p->lock, NULL);
	/* Timed waits measure on the monotonic clock: a clock step must not stall them. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->changed, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, reader, p) != 0) {
		ms_err_set(e, "cannot start the reader thread:");
		ms_prefetch_stop(p);	/* with no thread, only the teardown */
		return NULL;
	}
	p->thread_started = true;
	return p;
oom:
	ms_err_set(e, "out of memory for %d batches of %zu frames of %zu bytes", p->nbuf,
	           p->max_frames, p->frame_bytes);
	free_slots(p);
	free(p);
	return NULL;
}

int ms_prefetch_next(struct ms_prefetch *p, struct ms_frame_batch **b, ms_err *e)
{
	pthread_mutex_lock(&p->lock);
	struct slot *s = &p->slots[p->next_take];
	while (s->state != SLOT_FULL && !(p->done && s->state != SLOT_FILLING)) {
		if (p->interrupt && *p->interrupt) {
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_nsec += 100000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->changed, &p->lock, &t);
	}
	int rc;
	if (s->state == SLOT_FULL) {
		s->state = SLOT_TAKEN;
		p->next_take = (p->next_take + 1) % p->nbuf;
		*b = &s->batch;
		rc = 1;
	} else {
		rc = p->result;
		if (rc < 0 && e)
			*e = p->err;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void ms_prefetch_release(struct ms_prefetch *p, struct ms_frame_batch *b)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->nbuf; i++) {
		if (&p->slots[i].batch == b) {
			p->slots[i].state = SLOT_EMPTY;
			break;
		}
	}
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

bool ms_prefetch_ready(struct ms_prefetch *p)
{
	pthread_mutex_lock(&p->lock);
	enum slot_state st = p->slots[p->next_take].state;
	bool ready = st == SLOT_FULL || (p->done && st != SLOT_FILLING);
	pthread_mutex_unlock(&p->lock);
	return ready;
}

void ms_prefetch_stop(struct ms_prefetch *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
		/* A reader blocked on a quiet pipe would never see the flag: wake it. */
		/* One byte into an empty pipe cannot fail. */
		ssize_t k = write(p->wake[1], "", 1);
		(void)k;
		pthread_join(p->thread, NULL);
	}
	ms_framesrc_set_wake_fd(p->src, -1);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->changed);
	free_slots(p);
	free(p);
}
