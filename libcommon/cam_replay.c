/*
 * cam_replay: a recorded file played back as a camera (device replay:FILE).
 * The file is a TIFF stack or a frame stream (a file, a FIFO, or "-" for
 * standard input). A producer thread stands in for the camera's hardware:
 * frame k comes due at start + k/fps on the monotonic clock, is read and
 * put into a free buffer of the pool, or, when the caller holds every
 * buffer, dropped and counted, as a camera would. With fast=1 nothing is
 * paced and nothing is dropped: each frame waits for a free buffer.
 * Timestamps come from the replay clock, not from the file: frame k is
 * stamped (epoch time at start) + k/fps, whatever the pacing, so a replay
 * reads as a camera running at exactly fps. loop=1 reopens the file at its
 * end (a pipe can be read only once); roi=X,Y,W,H crops every frame.
 */
#include "cam_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "framesrc.h"
#include "fstream.h"

#define DEFAULT_FPS 30.0

struct replay {
	char *path;			/* "-": standard input */
	char *paths[1];			/* for framesrc, which keeps the array */
	bool rewindable;		/* a regular file, so it can be read again */
	struct ms_framesrc *src;	/* a regular file */
	struct ms_freader *stream;	/* a pipe, FIFO or standard input */
	int stream_fd;
	bool used;			/* frames were read since the last open */
	struct ms_frame_info src_info;
	int64_t total;			/* frames in the file, -1: unknown */
	long roi[4];

	/* Everything below is shared with the producer thread: under mu. */
	pthread_mutex_t mu;
	pthread_cond_t avail;		/* a filled buffer or the end */
	pthread_cond_t wake;		/* the producer: a free buffer, a setting, stop */
	pthread_t thread;
	bool running, stopping, ended, failed;
	ms_err err;
	double fps;
	bool fast, loop;
	unsigned nbuf;
	struct ms_cam_buf *bufs;
	unsigned char *mem;
	unsigned *freelist, nfree;
	unsigned *queue, qhead, qlen;
	uint64_t k;			/* frames made (or dropped) since start */
	uint64_t base_k, base_mono, base_real;	/* the clock: frame base_k due at base_mono */
	uint64_t drops;
};

static const struct ms_cam_setting replay_settings[] = {
	{ "fps", "frames per second of the replay clock (30)", 0 },
	{ "fast", "1: do not pace, give frames as fast as they are taken (0)", 0 },
	{ "loop", "1: start the file again at its end (0)", 0 },
	{ "roi", "X,Y,WIDTH,HEIGHT: the part of each frame replayed (all)", MS_CAM_IDLE },
	{ "frames", "frames in the file (unknown for a stream)", MS_CAM_RO },
};

static struct replay *R(struct ms_camera *c)
{
	return c->priv;
}

static void close_source(struct replay *r)
{
	ms_framesrc_close(r->src);
	r->src = NULL;
	ms_freader_close(r->stream);
	r->stream = NULL;
	if (r->stream_fd > STDIN_FILENO)
		close(r->stream_fd);
	r->stream_fd = -1;
}

static int open_source(struct replay *r, ms_err *e)
{
	r->used = false;
	if (r->rewindable) {
		r->src = ms_framesrc_open(r->paths, 1, e);
		if (!r->src)
			return -1;
		r->src_info = *ms_framesrc_info(r->src);
		return 0;
	}
	/* A pipe is sniffed by nobody: its first bytes must reach the reader. */
	if (strcmp(r->path, "-") == 0) {
		r->stream_fd = STDIN_FILENO;
	} else {
		r->stream_fd = open(r->path, O_RDONLY);
		if (r->stream_fd < 0)
			return ms_err_set(e, "cannot open '%s':", r->path);
	}
	r->stream = ms_freader_open(r->stream_fd, strcmp(r->path, "-") ? r->path : "standard input", e);
	if (!r->stream)
		return -1;
	r->src_info = *ms_freader_info(r->stream);
	return 0;
}

static void set_geometry(struct ms_camera *c)
{
	struct replay *r = R(c);
	c->info = r->src_info;
	c->info.width = (uint32_t)r->roi[2];
	c->info.height = (uint32_t)r->roi[3];
}

static int replay_open(struct ms_camera *c, const char *arg, ms_err *e)
{
	if (!*arg)
		return ms_err_set(e, "device 'replay:' needs a file: replay:FILE (a TIFF stack or a frame "
		                  "stream; '-' for standard input)");
	struct replay *r = calloc(1, sizeof *r);
	if (!r || !(r->path = strdup(arg))) {
		free(r);
		return ms_err_set(e, "out of memory");
	}
	c->priv = r;
	r->paths[0] = r->path;
	r->stream_fd = -1;
	r->fps = DEFAULT_FPS;
	struct stat st;
	if (strcmp(arg, "-") != 0) {
		if (stat(arg, &st) < 0) {
			ms_err_set(e, "cannot open '%s':", arg);
			goto fail;
		}
		if (S_ISDIR(st.st_mode)) {
			ms_err_set(e, "cannot replay '%s': it is a directory", arg);
			goto fail;
		}
		r->rewindable = S_ISREG(st.st_mode);
	}
	if (open_source(r, e) < 0)
		goto fail;
	/* Only here: the producer reopens the file when looping, unlocked. */
	r->total = r->src ? ms_framesrc_total(r->src) : -1;
	r->roi[0] = r->roi[1] = 0;
	r->roi[2] = r->src_info.width;
	r->roi[3] = r->src_info.height;
	set_geometry(c);
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->avail, &ca);
	pthread_cond_init(&r->wake, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(c->desc, sizeof c->desc, "replay of %s (%ux%u %s, %s)",
	         strcmp(arg, "-") ? arg : "standard input", r->src_info.width, r->src_info.height,
	         ms_pixfmt_name(r->src_info.fmt), r->rewindable ? "file" : "stream");
	if (ms_cam_set_settings(c, replay_settings, sizeof replay_settings / sizeof replay_settings[0],
	                        e) < 0)
		goto fail;
	return 0;
fail:
	close_source(r);
	free(r->path);
	free(r);
	c->priv = NULL;
	return -1;
}

static void replay_close(struct ms_camera *c)
{
	struct replay *r = R(c);
	close_source(r);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->avail);
	pthread_cond_destroy(&r->wake);
	free(r->path);
	free(r);
}

static int replay_get(struct ms_camera *c, const char *name, char *buf, size_t n, ms_err *e)
{
	struct replay *r = R(c);
	(void)e;
	pthread_mutex_lock(&r->mu);
	if (strcmp(name, "fps") == 0)
		snprintf(buf, n, "%.6g", r->fps);
	else if (strcmp(name, "fast") == 0)
		snprintf(buf, n, "%d", r->fast);
	else if (strcmp(name, "loop") == 0)
		snprintf(buf, n, "%d", r->loop);
	else if (strcmp(name, "roi") == 0)
		snprintf(buf, n, "%ld,%ld,%ld,%ld", r->roi[0], r->roi[1], r->roi[2], r->roi[3]);
	else if (r->total >= 0)
		snprintf(buf, n, "%" PRId64, r->total);
	else
		snprintf(buf, n, "unknown");
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static double period_ns(const struct replay *r)
{
	return 1e9 / r->fps;
}

/* Due time and stamp of frame k on the current clock (under mu). */
static uint64_t due_mono(const struct replay *r, uint64_t k)
{
	return r->base_mono + (uint64_t)((double)(k - r->base_k) * period_ns(r));
}

static uint64_t stamp(const struct replay *r, uint64_t k)
{
	return r->base_real + (uint64_t)((double)(k - r->base_k) * period_ns(r) + 0.5);
}

/* Restart the clock at frame k so that a new rate takes over from there. */
static void rebase(struct replay *r, uint64_t now_mono)
{
	uint64_t k = r->k;
	uint64_t due = due_mono(r, k), st = stamp(r, k);
	r->base_k = k;
	r->base_mono = r->fast || due < now_mono ? now_mono : due;
	r->base_real = st;
}

static int replay_set(struct ms_camera *c, const char *name, const char *value, ms_err *e)
{
	struct replay *r = R(c);
	if (strcmp(name, "roi") == 0) {
		long roi[4];
		if (ms_cam_parse_roi(name, value, roi, e) < 0)
			return -1;
		if (roi[0] + roi[2] > (long)r->src_info.width || roi[1] + roi[3] > (long)r->src_info.height)
			return ms_err_set(e, "invalid value '%s' for roi: the frames are %ux%u", value,
			                  r->src_info.width, r->src_info.height);
		memcpy(r->roi, roi, sizeof roi);
		set_geometry(c);
		return 0;
	}
	double fps = 0;
	bool flag = false;
	if (strcmp(name, "fps") == 0) {
		if (ms_cam_parse_double(name, value, 1e-3, 1e6, &fps, e) < 0)
			return -1;
	} else if (ms_cam_parse_bool(name, value, &flag, e) < 0) {
		return -1;
	}
	if (strcmp(name, "loop") == 0 && flag && !r->rewindable)
		return ms_err_set(e, "cannot loop over %s: a pipe can be read only once",
		                  strcmp(r->path, "-") ? r->path : "standard input");
	pthread_mutex_lock(&r->mu);
	uint64_t now = ms_cam_mono_ns();
	/* The new rate or pacing takes over from the next frame (or from now). */
	if (r->running)
		rebase(r, now);
	if (strcmp(name, "fps") == 0)
		r->fps = fps;
	else if (strcmp(name, "fast") == 0)
		r->fast = flag;
	else
		r->loop = flag;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/*
 * The next frame of the file, at its end starting again when looping:
 * 1, 0 at the end, -1 on error. Only the producer thread reads.
 */
static int read_frame(struct replay *r, bool loop, struct ms_frame *f, ms_err *e)
{
	int rc = r->src ? ms_framesrc_next(r->src, f, e) : ms_freader_next(r->stream, f, e);
	if (rc == 0 && loop && r->rewindable && r->used) {
		close_source(r);
		if (open_source(r, e) < 0)
			return -1;
		if (r->src_info.width < (uint32_t)(r->roi[0] + r->roi[2]) ||
		    r->src_info.height < (uint32_t)(r->roi[1] + r->roi[3]))
			return ms_err_set(e, "%s: the file changed while replaying", r->path);
		rc = ms_framesrc_next(r->src, f, e);
	}
	if (rc > 0) {
		r->used = true;
		if (f->info.width != r->src_info.width || f->info.height != r->src_info.height ||
		    f->info.fmt != r->src_info.fmt)
			return ms_err_set(e, "%s: the frame geometry changed while replaying", r->path);
	}
	return rc;
}

static void crop(const struct replay *r, const struct ms_frame *f, unsigned char *dst)
{
	size_t bpp = ms_pixfmt_bytes(f->info.fmt);
	size_t row = (size_t)r->roi[2] * bpp, stride = (size_t)f->info.width * bpp;
	const unsigned char *src = (const unsigned char *)f->pixels + (size_t)r->roi[1] * stride +
	                           (size_t)r->roi[0] * bpp;
	for (long y = 0; y < r->roi[3]; y++)
		memcpy(dst + (size_t)y * row, src + (size_t)y * stride, row);
}

static void to_timespec(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

/* The camera's hardware: make frames on time, into free buffers. */
static void *producer(void *arg)
{
	struct replay *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->stopping) {
		if (r->fast) {
			if (r->nfree == 0) {
				pthread_cond_wait(&r->wake, &r->mu);
				continue;
			}
		} else {
			uint64_t due = due_mono(r, r->k), now = ms_cam_mono_ns();
			if (now < due) {
				struct timespec ts;
				to_timespec(due, &ts);
				pthread_cond_timedwait(&r->wake, &r->mu, &ts);
				continue;
			}
		}
		int slot = r->nfree ? (int)r->freelist[--r->nfree] : -1;
		/* Counted now, so that a frame taken after it never shows a gap not yet counted. */
		if (slot < 0)
			r->drops++;
		uint64_t k = r->k++;
		uint64_t t_ns = stamp(r, k);
		bool loop = r->loop;
		pthread_mutex_unlock(&r->mu);

		struct ms_frame f;
		ms_err e = { "" };
		int rc = read_frame(r, loop, &f, &e);
		if (rc > 0 && slot >= 0) {
			struct ms_cam_buf *b = &r->bufs[slot];
			crop(r, &f, (unsigned char *)b->priv);
			b->frame.seq = k;
			b->frame.t_ns = t_ns;
		}

		pthread_mutex_lock(&r->mu);
		if (rc <= 0) {
			if (slot >= 0)
				r->freelist[r->nfree++] = (unsigned)slot;
			else
				r->drops--;
			r->k--;
			r->ended = true;
			if (rc < 0) {
				r->failed = true;
				r->err = e;
			}
			pthread_cond_broadcast(&r->avail);
			break;
		}
		if (slot >= 0) {
			r->queue[(r->qhead + r->qlen++) % r->nbuf] = (unsigned)slot;
			pthread_cond_signal(&r->avail);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void free_pool(struct replay *r)
{
	free(r->bufs);
	free(r->mem);
	free(r->freelist);
	free(r->queue);
	r->bufs = NULL;
	r->mem = NULL;
	r->freelist = r->queue = NULL;
}

static int replay_start(struct ms_camera *c, unsigned nbuffers, ms_err *e)
{
	struct replay *r = R(c);
	if (r->used) {
		if (!r->rewindable)
			return ms_err_set(e, "a stream replays only once");
		close_source(r);
		if (open_source(r, e) < 0)
			return -1;
	}
	size_t fb = ms_frame_bytes(&c->info);
	r->nbuf = nbuffers;
	r->bufs = calloc(nbuffers, sizeof *r->bufs);
	r->mem = malloc(fb * nbuffers);
	r->freelist = calloc(nbuffers, sizeof *r->freelist);
	r->queue = calloc(nbuffers, sizeof *r->queue);
	if (!r->bufs || !r->mem || !r->freelist || !r->queue) {
		free_pool(r);
		return ms_err_set(e, "out of memory for %u buffers of %zu bytes", nbuffers, fb);
	}
	for (unsigned i = 0; i < nbuffers; i++) {
		r->bufs[i].index = i;
		r->bufs[i].priv = r->mem + (size_t)i * fb;
		r->bufs[i].frame.pixels = r->bufs[i].priv;
		r->freelist[i] = nbuffers - 1 - i;
	}
	r->nfree = nbuffers;
	r->qhead = r->qlen = 0;
	r->k = r->base_k = 0;
	r->base_mono = ms_cam_mono_ns();
	r->base_real = ms_now_ns();
	r->stopping = r->ended = r->failed = false;
	r->drops = 0;
	r->running = true;
	int err = pthread_create(&r->thread, NULL, producer, r);
	if (err) {
		r->running = false;
		free_pool(r);
		errno = err;
		return ms_err_set(e, "cannot start the replay thread:");
	}
	return 0;
}

/* Drops counted by the producer become the camera's (caller's thread). */
static void sync_drops(struct ms_camera *c, struct replay *r)
{
	c->health.drops += r->drops;
	r->drops = 0;
}

static int replay_take(struct ms_camera *c, struct ms_cam_buf **buf, int timeout_ms, ms_err *e)
{
	struct replay *r = R(c);
	struct timespec ts;
	to_timespec(ms_cam_mono_ns() + (uint64_t)timeout_ms * 1000000u, &ts);
	pthread_mutex_lock(&r->mu);
	int rc = MS_CAM_WAIT;
	for (;;) {
		if (r->qlen) {
			*buf = &r->bufs[r->queue[r->qhead]];
			r->qhead = (r->qhead + 1) % r->nbuf;
			r->qlen--;
			rc = MS_CAM_FRAME;
			break;
		}
		if (r->ended) {
			rc = r->failed ? ms_err_set(e, "%s", r->err.msg) : MS_CAM_END;
			break;
		}
		if (timeout_ms == 0)
			break;
		/* One more look after the deadline, then MS_CAM_WAIT. */
		if (pthread_cond_timedwait(&r->avail, &r->mu, &ts) == ETIMEDOUT)
			timeout_ms = 0;
	}
	sync_drops(c, r);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static void replay_give(struct ms_camera *c, struct ms_cam_buf *buf)
{
	struct replay *r = R(c);
	pthread_mutex_lock(&r->mu);
	r->freelist[r->nfree++] = buf->index;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->mu);
}

static int replay_stop(struct ms_camera *c, ms_err *e)
{
	struct replay *r = R(c);
	(void)e;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	r->running = false;
	sync_drops(c, r);
	free_pool(r);
	return 0;
}

static double replay_fps(struct ms_camera *c)
{
	struct replay *r = R(c);
	pthread_mutex_lock(&r->mu);
	double fps = r->fast ? 0 : r->fps;
	pthread_mutex_unlock(&r->mu);
	return fps;
}

const struct ms_cam_ops ms_cam_replay_ops = {
	.scheme = "replay",
	.open = replay_open,
	.close = replay_close,
	.get = replay_get,
	.set = replay_set,
	.start = replay_start,
	.take = replay_take,
	.give = replay_give,
	.stop = replay_stop,
	.nominal_fps = replay_fps,
};
