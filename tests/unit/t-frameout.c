/*
 * t-frameout: a producer's frame output. Ring names with and without a
 * rig's $MS_SHM_PREFIX; the default ring size; rings of dead producers
 * removed and live ones left alone; the ring removed by close, abandon and
 * unlink while a reader that has it mapped reads on; and a reader that
 * joins a running shared-memory stream (as behind ms-run's relay) starting
 * at the first descriptor it is sent, without counting earlier frames as
 * missed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frameout.h"
#include "fstream.h"
#include "../lib/tap.h"

#define T0 UINT64_C(1700000000000000000)
#define REC 48		/* a descriptor record: 32-byte header, 16-byte descriptor */

static const struct ms_frame_info info = { 40, 30, MS_PIX_U8, 125 };

static bool shm_exists(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static void put_frames(struct ms_frameout *o, uint64_t from, uint64_t n)
{
	uint8_t px[40 * 30];
	ms_err e = { "" };
	for (uint64_t s = from; s < from + n; s++) {
		memset(px, (int)(s & 0xff), sizeof px);
		struct ms_frame f = { s, T0 + s * 1000, info, px };
		if (ms_frameout_put(o, &f, &e) < 0)
			tap_diag("put %" PRIu64 ": %s", s, e.msg);
	}
}

/* Read a stream to its end: frames, whether each frame's pixels match its seq, the last next(). */
static int drain(struct ms_freader *r, uint64_t *got, uint64_t *first, bool *good, ms_err *e)
{
	struct ms_frame f;
	int rc;
	*got = 0;
	*good = true;
	while ((rc = ms_freader_next(r, &f, e)) > 0) {
		if (*got == 0)
			*first = f.seq;
		const uint8_t *p = f.pixels;
		if (p[0] != (uint8_t)f.seq || p[40 * 30 - 1] != (uint8_t)f.seq || f.t_ns != T0 + f.seq * 1000)
			*good = false;
		++*got;
	}
	return rc;
}

static void test_names(void)
{
	char buf[256], want[256];
	ms_err e = { "" };
	unsetenv("MS_SHM_PREFIX");
	unsetenv("MS_STAGE");
	snprintf(want, sizeof want, "/mstk-simulate-%ld", (long)getpid());
	tap_ok(ms_frameout_default_name(buf, sizeof buf, "simulate", &e) == 0 && strcmp(buf, want) == 0,
	       "alone, the ring is /mstk-TAG-PID: %s", buf);
	setenv("MS_SHM_PREFIX", "mstk-rig-77-", 1);
	setenv("MS_STAGE", "cam2", 1);
	snprintf(want, sizeof want, "/mstk-rig-77-cam2-%ld", (long)getpid());
	tap_ok(ms_frameout_default_name(buf, sizeof buf, "simulate", &e) == 0 && strcmp(buf, want) == 0,
	       "in a rig, PREFIX STAGE-PID, which ms-run frees: %s", buf);
	unsetenv("MS_STAGE");
	snprintf(want, sizeof want, "/mstk-rig-77-capture-%ld", (long)getpid());
	tap_ok(ms_frameout_default_name(buf, sizeof buf, "capture", &e) == 0 && strcmp(buf, want) == 0,
	       "in a rig without $MS_STAGE, PREFIX TAG-PID: %s", buf);
	setenv("MS_SHM_PREFIX", "a/b", 1);
	tap_ok(ms_frameout_default_name(buf, sizeof buf, "capture", &e) < 0 && strstr(e.msg, "'a/b'"),
	       "a prefix that cannot be in a name is refused: %s", e.msg);
	unsetenv("MS_SHM_PREFIX");
}

static void test_slots(void)
{
	struct ms_frame_info a = { 512, 512, MS_PIX_U8, 0 };
	struct ms_frame_info b = { 4096, 4096, MS_PIX_U16, 0 };
	struct ms_frame_info c = { 16384, 16384, MS_PIX_U16, 0 };
	tap_int(ms_frameout_default_slots(&a), 128, "512x512 u8: 128 slots");
	tap_int(ms_frameout_default_slots(&b), 7, "4096x4096 u16: 7 slots, within 256 MiB");
	tap_int(ms_frameout_default_slots(&c), 4, "16384x16384 u16: never fewer than 4");
}

static void test_stale(void)
{
	/* A pid that certainly belongs to no process: a child, reaped. */
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	char tag[32], dead[128], live[128], other[128];
	snprintf(tag, sizeof tag, "tfo%ld", (long)getpid());
	snprintf(dead, sizeof dead, "/mstk-%s-%ld", tag, (long)child);
	snprintf(live, sizeof live, "/mstk-%s-%ld", tag, (long)getppid());
	snprintf(other, sizeof other, "/mstk-%sx-%ld", tag, (long)child);
	int fds[3] = { shm_open(dead, O_CREAT | O_RDWR, 0600), shm_open(live, O_CREAT | O_RDWR, 0600),
	               shm_open(other, O_CREAT | O_RDWR, 0600) };
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	tap_int(ms_frameout_clean_stale(tag), 1, "one stale ring removed");
	tap_ok(!shm_exists(dead), "the ring of the dead pid %ld is gone", (long)child);
	tap_ok(shm_exists(live), "the ring of a live process stays");
	tap_ok(shm_exists(other), "another tag's ring stays");
	shm_unlink(live);
	shm_unlink(other);
}

/* A writer on a pipe, and a reader on its other end, in one process. */
static void test_lifetime(void)
{
	int p[2];
	if (pipe(p) < 0)
		return;
	ms_err e = { "" };
	struct ms_frameout_opts o = { .shm = true, .slots = 16 };
	char name[64];
	snprintf(name, sizeof name, "tfo-life-%ld", (long)getpid());
	o.name = name;
	struct ms_frameout *out = ms_frameout_open(p[1], &info, &o, "t", "the pipe", &e);
	if (!tap_ok(out != NULL, "open a 16-slot shm output (%s)", e.msg))
		return;
	char slash[80];
	snprintf(slash, sizeof slash, "/%s", name);
	tap_str(ms_frameout_ring(out), slash, "the ring has the name given, with a '/'");
	tap_int(ms_frameout_slots(out), 16, "and 16 slots");
	put_frames(out, 0, 10);
	struct ms_freader *r = ms_freader_open(p[0], "the pipe", &e);
	tap_ok(r != NULL, "a reader opens the stream (%s)", e.msg);
	tap_ok(ms_frameout_close(out, &e) == 0, "close writes the end record (%s)", e.msg);
	tap_ok(!shm_exists(slash), "close removed the ring's name");
	uint64_t got = 0, first = 0;
	bool good = false;
	int rc = r ? drain(r, &got, &first, &good, &e) : -1;
	tap_ok(rc == 0 && got == 10 && good && first == 0,
	       "the reader, which had it mapped, still reads all 10 frames (%s)", rc ? e.msg : "ok");
	ms_freader_close(r);
	close(p[0]);
	close(p[1]);

	/* Abandoned: no end record, and the ring gone all the same. */
	if (pipe(p) < 0)
		return;
	out = ms_frameout_open(p[1], &info, &o, "t", "the pipe", &e);
	put_frames(out, 0, 3);
	r = ms_freader_open(p[0], "the pipe", &e);
	ms_frameout_abandon(out);
	close(p[1]);
	tap_ok(!shm_exists(slash), "abandon removed the ring's name");
	rc = r ? drain(r, &got, &first, &good, &e) : -1;
	tap_ok(rc < 0 && got == 3 && strstr(e.msg, "truncated"),
	       "the reader gets the 3 frames, then a truncated stream: %s", e.msg);
	ms_freader_close(r);
	close(p[0]);

	/* unlink alone, as an exit handler does it. */
	if (pipe(p) < 0)
		return;
	out = ms_frameout_open(p[1], &info, &o, "t", "the pipe", &e);
	ms_frameout_unlink(out);
	tap_ok(out && !shm_exists(slash), "unlink removes the name at once");
	put_frames(out, 0, 2);
	ms_frameout_abandon(out);
	close(p[0]);
	close(p[1]);

	/* An inline output has no ring. */
	if (pipe(p) < 0)
		return;
	struct ms_frameout_opts none = { 0 };
	out = ms_frameout_open(p[1], &info, &none, "t", "the pipe", &e);
	tap_ok(out && !ms_frameout_ring(out) && ms_frameout_slots(out) == 0,
	       "without --shm the output is inline, with no ring");
	ms_frameout_unlink(out);
	ms_frameout_abandon(out);
	close(p[0]);
	close(p[1]);
}

/*
 * finish: a reader that left before (reader_gone set) or during the close
 * (EPIPE) is a normal end; the ring goes either way. An inline output, so
 * that the header is all in the pipe and closing its read end is enough.
 */
static void test_finish(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct ms_frameout_opts none = { 0 };
	ms_err e = { { 0 } };
	int p[2];
	if (pipe(p) < 0)
		return;
	struct ms_frameout *out = ms_frameout_open(p[1], &info, &none, "t", "the pipe", &e);
	put_frames(out, 0, 1);
	close(p[0]);
	bool gone = false;
	tap_ok(out && ms_frameout_finish(out, &gone, &e) == 0 && gone,
	       "finish: a reader gone during the close is a normal end, and said (%s)", e.msg);
	close(p[1]);

	if (pipe(p) < 0)
		return;
	out = ms_frameout_open(p[1], &info, &none, "t", "the pipe", &e);
	close(p[0]);
	gone = true;
	tap_ok(out && ms_frameout_finish(out, &gone, &e) == 0 && gone,
	       "finish: a reader known to be gone gets no end record");
	close(p[1]);

	/* a real write error stays one */
	int fd = open("/dev/full", O_WRONLY);
	out = fd >= 0 ? ms_frameout_open(fd, &info, &none, "t", "/dev/full", &e) : NULL;
	gone = false;
	tap_ok(fd < 0 || (!out && errno == ENOSPC) ||
	       (out && ms_frameout_finish(out, &gone, &e) < 0 && !gone),
	       "finish: a full disk is an error, not a reader gone (%s)", e.msg);
	if (fd >= 0)
		close(fd);
}

/* Read from fd until "ENDHDR\n" and the n bytes after it are in buf; returns the header length. */
static size_t read_header(int fd, char *buf, size_t size)
{
	size_t have = 0;
	char *end = NULL;
	while (!end && have < size) {
		ssize_t k = read(fd, buf + have, 1);
		if (k <= 0)
			return 0;
		have += (size_t)k;
		if (have >= 8 && memcmp(buf + have - 8, "\nENDHDR\n", 8) == 0)
			end = buf + have;
	}
	return end ? have : 0;
}

static bool read_exact(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, (char *)buf + got, n - got);
		if (k <= 0)
			return false;
		got += (size_t)k;
	}
	return true;
}

/*
 * A relay that drops the first `skip` descriptors: what a consumer that
 * ms-run restarts sees, the header and then records from some frame on.
 */
static void test_late_join(void)
{
	int a[2], b[2];
	if (pipe(a) < 0 || pipe(b) < 0)
		return;
	ms_err e = { "" };
	char name[64];
	snprintf(name, sizeof name, "tfo-late-%ld", (long)getpid());
	struct ms_frameout_opts o = { .shm = true, .name = name, .slots = 64 };
	struct ms_frameout *out = ms_frameout_open(a[1], &info, &o, "t", "the pipe", &e);
	if (!tap_ok(out != NULL, "late join: open the output (%s)", e.msg))
		return;
	put_frames(out, 100, 20);
	char hdr[4096];
	size_t hl = read_header(a[0], hdr, sizeof hdr);
	unsigned char recs[20 * REC];
	bool ok = hl > 0 && read_exact(a[0], recs, sizeof recs);
	/* Forward the header and descriptors 12..19 only. */
	ok = ok && write(b[1], hdr, hl) == (ssize_t)hl &&
	     write(b[1], recs + 12 * REC, 8 * REC) == 8 * REC;
	struct ms_freader *r = ok ? ms_freader_open(b[0], "the relay", &e) : NULL;
	tap_ok(r != NULL, "late join: the reader opens the relayed stream (%s)", e.msg);
	ms_frameout_close(out, &e);
	unsigned char end[32];
	ok = read_exact(a[0], end, sizeof end) && write(b[1], end, sizeof end) == (ssize_t)sizeof end;
	close(b[1]);
	uint64_t got = 0, first = 0;
	bool good = false;
	int rc = r && ok ? drain(r, &got, &first, &good, &e) : -1;
	tap_ok(rc == 0, "late join: the stream ends properly, the end count checked from the join "
	       "(%s)", rc ? e.msg : "ok");
	tap_ok(got == 8 && first == 112 && good, "late join: the 8 frames from the first descriptor "
	       "sent, seq 112 on, intact (got %" PRIu64 " from %" PRIu64 ")", got, first);
	tap_int((long long)(r ? ms_freader_dropped(r) : 99), 0,
	        "late join: the 12 frames before it are not counted as missed");
	ms_freader_close(r);
	close(a[0]);
	close(a[1]);
	close(b[0]);

	/* Joined after the last frame: only the end record comes. */
	if (pipe(a) < 0 || pipe(b) < 0)
		return;
	out = ms_frameout_open(a[1], &info, &o, "t", "the pipe", &e);
	put_frames(out, 0, 5);
	hl = read_header(a[0], hdr, sizeof hdr);
	ok = hl > 0 && read_exact(a[0], recs, 5 * REC) && write(b[1], hdr, hl) == (ssize_t)hl;
	r = ok ? ms_freader_open(b[0], "the relay", &e) : NULL;
	ms_frameout_close(out, &e);
	ok = ok && read_exact(a[0], end, sizeof end) && write(b[1], end, sizeof end) == (ssize_t)sizeof end;
	close(b[1]);
	rc = r && ok ? drain(r, &got, &first, &good, &e) : -1;
	tap_ok(rc == 0 && got == 0 && r && ms_freader_dropped(r) == 0,
	       "a reader sent no frame ends cleanly with none read and none missed (%s)",
	       rc ? e.msg : "ok");
	ms_freader_close(r);
	close(a[0]);
	close(a[1]);
	close(b[0]);
}

int main(void)
{
	test_names();
	test_slots();
	test_stale();
	test_lifetime();
	test_late_join();
	test_finish();
	return tap_done();
}
