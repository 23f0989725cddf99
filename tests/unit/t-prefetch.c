/* Unit tests for prefetch: every frame once, in order, in bounded batches;
 * a quiet input can be interrupted and stopped. TIFF frames come mapped
 * from the file, the same bytes as copied ones (MS_PREFETCH_COPY), in
 * batches that mix both where a file does, with a resident size that does
 * not grow with the file. */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fstream.h"
#include "framesrc.h"
#include "prefetch.h"
#include "tiffio.h"
#include "craft-tiff.h"
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
			if (b->seq[i] != (uint64_t)expect || b->frame[i][5] != (expect & 0xff))
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

/* Whether p lies in a mapping of the file path (from /proc/self/maps). */
static bool in_file_mapping(const void *p, const char *path)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	bool yes = false;
	while (f && !yes && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		int at = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &at) < 2 || !at)
			continue;
		line[strcspn(line, "\n")] = 0;
		yes = (uintptr_t)p >= lo && (uintptr_t)p < hi && strcmp(line + at, path) == 0;
	}
	if (f)
		fclose(f);
	return yes;
}

/*
 * Every frame of paths through prefetch (batches of at most max), mapped
 * and copied, compared; *nmapped counts the frames that lay in a mapping
 * of their file, *nbatches the batches.
 */
static void compare_prefetch(char **paths, int npaths, size_t max, const char *what,
                             long *nmapped, long *nbatches)
{
	ms_err e = { { 0 } };
	struct ms_framesrc *a = ms_framesrc_open(paths, npaths, &e);
	struct ms_framesrc *b = a ? ms_framesrc_open(paths, npaths, &e) : NULL;
	if (!tap_ok(a && b, "%s: opens (%s)", what, e.msg))
		return;
	size_t fb = ms_frame_bytes(ms_framesrc_info(a));
	struct ms_prefetch *pa = ms_prefetch_start_flags(a, max, 3, NULL, MS_PREFETCH_COPY, &e);
	struct ms_prefetch *pb = ms_prefetch_start(b, max, 3, NULL, &e);
	struct ms_frame_batch *ba = NULL, *bb = NULL;
	size_t ia = 0, ib = 0;
	long n = 0, bad = 0, over = 0;
	int ra = 1, rb = 1;
	*nmapped = *nbatches = 0;
	for (;;) {
		if (ba && ia == ba->nframes) {
			ms_prefetch_release(pa, ba);
			ba = NULL;
		}
		if (bb && ib == bb->nframes) {
			ms_prefetch_release(pb, bb);
			bb = NULL;
		}
		if (!ba) {
			if ((ra = ms_prefetch_next(pa, &ba, &e)) <= 0)
				ba = NULL;
			ia = 0;
		}
		if (!bb) {
			if ((rb = ms_prefetch_next(pb, &bb, &e)) <= 0)
				bb = NULL;
			else
				++*nbatches, over += bb->nframes > max;
			ib = 0;
		}
		if (!ba || !bb)
			break;
		bad += memcmp(ba->frame[ia], bb->frame[ib], fb) != 0 || ba->seq[ia] != bb->seq[ib] ||
		       ba->t_ns[ia] != bb->t_ns[ib];
		for (int k = 0; k < npaths; k++)
			*nmapped += in_file_mapping(bb->frame[ib], paths[k]);
		for (int k = 0; k < npaths; k++)
			bad += in_file_mapping(ba->frame[ia], paths[k]);	/* COPY maps nothing */
		ia++;
		ib++;
		n++;
	}
	bad += ba != NULL || bb != NULL;	/* one ended before the other */
	tap_ok(ra == 0 && rb == 0, "%s: both end (%s)", what, e.msg);
	tap_int(n, ms_framesrc_total(a), "%s: every frame once", what);
	tap_int(bad, 0, "%s: mapped and copied frames, seq and t_ns are the same", what);
	tap_int(over, 0, "%s: no batch holds more than %zu frames", what, max);
	ms_prefetch_stop(pa);
	ms_prefetch_stop(pb);
	ms_framesrc_close(a);
	ms_framesrc_close(b);
}

static void test_tiff(void)
{
	char p16[512], podd[512], p8[512];
	snprintf(p16, sizeof p16, "%s/c16.tif", tap_tmpdir());
	snprintf(podd, sizeof podd, "%s/codd.tif", tap_tmpdir());
	snprintf(p8, sizeof p8, "%s/c8.tif", tap_tmpdir());
	craft_tiff(p16, 50, 40, 16, 23, 0, 0);
	/* pages 5..9 and 20 at odd offsets: read, not mapped */
	craft_tiff(podd, 50, 40, 16, 23, 0x1003e0, 0);
	craft_tiff(p8, 50, 40, 8, 23, 0, 1);
	long mapped, batches;
	char *one[] = { p16 };
	compare_prefetch(one, 1, 4, "u16", &mapped, &batches);
	tap_int(mapped, 23, "u16: every frame mapped");
	tap_int(batches, 6, "u16: in 6 batches of at most 4");
	char *odd[] = { podd };
	compare_prefetch(odd, 1, 4, "mixed", &mapped, &batches);
	tap_int(mapped, 17, "mixed: the 17 frames that can be mapped are");
	char *two[] = { p16, podd };
	compare_prefetch(two, 2, 5, "two files", &mapped, &batches);
	tap_int(mapped, 40, "two files: 40 frames mapped");
	char *ij[] = { p8 };
	compare_prefetch(ij, 1, 7, "u8 ImageJ stack", &mapped, &batches);
	tap_int(mapped, 23, "u8 ImageJ stack: every frame mapped");
	tap_int(batches, 4, "u8 ImageJ stack: in 4 batches of at most 7");
}

/* VmRSS of this process, in bytes. */
static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* A file ten times what is in flight: the resident size stays at what is in flight. */
static void test_rss(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/big.tif", tap_tmpdir());
	struct ms_frame_info info = { 1024, 1024, MS_PIX_U8, 0 };
	ms_err e = { { 0 } };
	struct ms_tiff_writer *w = ms_tiff_open_write(path, &info, 96, &e);
	unsigned char *px = malloc(1u << 20);
	for (int k = 0; k < 96 && w; k++) {
		memset(px, k + 1, 1u << 20);
		ms_tiff_write(w, px, 0, &e);
	}
	free(px);
	if (!tap_ok(w && ms_tiff_close_write(w, &e) == 0, "a 96 MiB TIFF written (%s)", e.msg))
		return;
	char *paths[] = { path };
	struct ms_framesrc *src = ms_framesrc_open(paths, 1, &e);
	long rss0 = rss_bytes(), peak = rss0;
	struct ms_prefetch *p = ms_prefetch_start(src, 3, 3, NULL, &e);
	struct ms_frame_batch *b;
	long sum = 0, want = 0, n = 0, mapped = 0;
	while (ms_prefetch_next(p, &b, &e) > 0) {
		/* touch every page, as a tracker might */
		for (size_t i = 0; i < b->nframes; i++, n++) {
			for (size_t o = 0; o < (1u << 20); o += 4096)
				sum += b->frame[i][o];
			want += (n + 1) * 256;
			mapped += in_file_mapping(b->frame[i], path);
		}
		long r = rss_bytes();
		peak = r > peak ? r : peak;
		ms_prefetch_release(p, b);
	}
	ms_prefetch_stop(p);
	ms_framesrc_close(src);
	tap_int(n, 96, "every frame of the big file");
	tap_int(mapped, 96, "all mapped");
	tap_int(sum, want, "with its pixels");
	/* 3 batches of 3 frames in flight: 9 MiB, and a little more while a window is replaced */
	tap_ok(peak - rss0 < (14L << 20), "resident size grew by %.1f MiB for a 96 MiB file "
	       "(3 batches of 3 MiB in flight)", (double)(peak - rss0) / (1 << 20));
}

static void test_ready(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/r.tif", tap_tmpdir());
	craft_tiff(path, 16, 16, 8, 5, 0, 0);
	char *paths[] = { path };
	ms_err e;
	struct ms_framesrc *src = ms_framesrc_open(paths, 1, &e);
	struct ms_prefetch *p = ms_prefetch_start(src, 2, 2, NULL, &e);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool ready = false;
	do {
		ready = ms_prefetch_ready(p);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!ready && t.tv_sec - t0.tv_sec < 10);
	tap_ok(ready, "a file's first batch is soon ready");
	struct ms_frame_batch *b, *b2;
	int n = 0, rc;
	while ((rc = ms_prefetch_next(p, &b, &e)) > 0) {
		n += (int)b->nframes;
		ms_prefetch_release(p, b);
	}
	tap_ok(ms_prefetch_ready(p), "after the end, ready (next returns at once)");
	tap_int(ms_prefetch_next(p, &b2, &e), 0, "with 0");
	tap_int(n, 5, "all 5 frames");
	ms_prefetch_stop(p);
	ms_framesrc_close(src);

	/* a live stream with nothing waiting is not ready */
	int fds[2];
	if (pipe(fds) != 0)
		return;
	write_stream(fds[1], 1, 0);
	int saved = dup(STDIN_FILENO);
	dup2(fds[0], STDIN_FILENO);
	src = ms_framesrc_open(NULL, 0, &e);
	p = ms_prefetch_start(src, 2, 2, NULL, &e);
	rc = ms_prefetch_next(p, &b, &e);
	tap_ok(rc == 1 && b->nframes == 1, "a quiet stream's one frame arrives");
	ms_prefetch_release(p, b);
	struct timespec d = { 0, 50000000 };
	nanosleep(&d, NULL);
	tap_ok(!ms_prefetch_ready(p), "then nothing is ready");
	ms_prefetch_stop(p);
	ms_framesrc_close(src);
	dup2(saved, STDIN_FILENO);
	close(saved);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	tap_int((long long)ms_prefetch_batch_frames(32, 1 << 20, 32u << 20), 32, "batch size as asked when it fits");
	tap_int((long long)ms_prefetch_batch_frames(32, 8u << 20, 32u << 20), 4, "batch size bounded by memory");
	tap_int((long long)ms_prefetch_batch_frames(32, 64u << 20, 32u << 20), 1, "at least one frame");
	test_order();
	test_tiff();
	test_rss();
	test_ready();
	test_truncated();
	test_interrupt();
	return tap_done();
}
