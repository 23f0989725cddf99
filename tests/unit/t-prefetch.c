/* Unit tests for prefetch: every frame once, in order, in bounded batches;
 * a quiet input can be interrupted and stopped. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fstream.h"
#include "framesrc.h"
#include "prefetch.h"
#include "tap.h"

/* Write n 16x8 u8 frames whose pixels all equal the frame's index. */
static void write_stream(int fd, int n, int end)
{
	struct ms_frame_info info = { 16, 8, MS_PIX_U8, 100 };
	ms_err e;
	struct ms_fwriter *w = ms_fwriter_open(fd, &info, "test", &e);
	unsigned char px[128];
	for (int i = 0; i < n; i++) {
		memset(px, i & 0xff, sizeof px);
		struct ms_frame f = { (uint64_t)i, 1000u * (uint64_t)i, info, px };
		ms_fwriter_put(w, &f, &e);
	}
	if (end)
		ms_fwriter_close(w, &e);
	else
		ms_fwriter_abandon(w);
}

static void test_order(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/s.frames", tap_tmpdir());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write_stream(fd, 1000, 1);
	close(fd);
	char *paths[] = { path };
	ms_err e;
	struct ms_framesrc *src = ms_framesrc_open(paths, 1, &e);
	struct ms_prefetch *p = ms_prefetch_start(src, 7, 3, NULL, &e);
	struct ms_frame_batch *b;
	int rc, expect = 0, bad = 0, batches = 0, over = 0;
	while ((rc = ms_prefetch_next(p, &b, &e)) > 0) {
		batches++;
		if (b->nframes > 7)
			over++;
		for (size_t i = 0; i < b->nframes; i++, expect++)
			if (b->seq[i] != (uint64_t)expect || b->pixels[i * 128 + 5] != (expect & 0xff))
				bad++;
		ms_prefetch_release(p, b);
	}
	tap_int(rc, 0, "a finished stream ends with 0");
	tap_int(expect, 1000, "every frame arrives once");
	tap_int(bad, 0, "in order, with its own pixels");
	tap_int(over, 0, "no batch holds more than asked");
	tap_ok(batches >= 143, "frames come in batches of at most 7 (%d batches)", batches);
	ms_prefetch_stop(p);
	ms_framesrc_close(src);
}

static void test_truncated(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/t.frames", tap_tmpdir());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write_stream(fd, 10, 0);
	close(fd);
	char *paths[] = { path };
	ms_err e;
	struct ms_framesrc *src = ms_framesrc_open(paths, 1, &e);
	struct ms_prefetch *p = ms_prefetch_start(src, 4, 2, NULL, &e);
	struct ms_frame_batch *b;
	int rc, n = 0;
	while ((rc = ms_prefetch_next(p, &b, &e)) > 0) {
		n += (int)b->nframes;
		ms_prefetch_release(p, b);
	}
	tap_int(rc, -1, "a truncated stream ends with an error");
	tap_int(n, 10, "after every frame before the cut");
	tap_ok(strstr(e.msg, "truncated") != NULL, "and says so: %s", e.msg);
	ms_prefetch_stop(p);
	ms_framesrc_close(src);
}

static void test_interrupt(void)
{
	/* A pipe that delivers 3 frames, then nothing, and is never closed. */
	int fds[2];
	if (pipe(fds) != 0)
		return;
	write_stream(fds[1], 3, 0);
	int saved = dup(STDIN_FILENO);
	dup2(fds[0], STDIN_FILENO);
	ms_err e;
	struct ms_framesrc *src = ms_framesrc_open(NULL, 0, &e);
	volatile sig_atomic_t stop = 0;
	struct ms_prefetch *p = ms_prefetch_start(src, 2, 2, &stop, &e);
	struct ms_frame_batch *b;
	int n = 0;
	for (int k = 0; k < 2; k++) {
		if (ms_prefetch_next(p, &b, &e) > 0) {
			n += (int)b->nframes;
			ms_prefetch_release(p, b);
		}
	}
	tap_int(n, 3, "frames of a live stream arrive before it ends");
	stop = 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = ms_prefetch_next(p, &b, &e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
	tap_int(rc, 0, "an interrupt ends the wait on a quiet input");
	tap_ok(dt < 2.0, "promptly (%.3f s)", dt);
	ms_prefetch_stop(p);	/* must not hang on the blocked reader */
	tap_ok(1, "stop returns with the reader blocked in read()");
	ms_framesrc_close(src);
	dup2(saved, STDIN_FILENO);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	tap_int((long long)ms_prefetch_batch_frames(32, 1 << 20, 32u << 20), 32, "batch size as asked when it fits");
	tap_int((long long)ms_prefetch_batch_frames(32, 8u << 20, 32u << 20), 4, "batch size bounded by memory");
	tap_int((long long)ms_prefetch_batch_frames(32, 64u << 20, 32u << 20), 1, "at least one frame");
	test_order();
	test_truncated();
	test_interrupt();
	return tap_done();
}
