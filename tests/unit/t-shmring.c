/*
 * t-shmring: the shared-memory frame ring and the frame stream's shm
 * transport, with real segments and real processes: a forked writer, the
 * test process as reader. Every frame's pixels are a pattern derived from
 * its sequence number, so a reader can verify each pixel of each frame it
 * accepts and a torn frame cannot pass unnoticed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fstream.h"
#include "shmring.h"
#include "../lib/tap.h"

#define T0 UINT64_C(1700000000000000000)

/* The camera sequence number and timestamp of the frame at ring position pos. */
static uint64_t seq_of(uint64_t pos) { return 3 * pos + 1; }
static uint64_t t_of(uint64_t seq) { return T0 + seq * 1000; }

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&t, NULL);
}

/* A pattern that differs between any two frames less than 65536 apart, at every pixel. */
static void fill(void *px, const struct ms_frame_info *info, uint64_t seq)
{
	size_t n = (size_t)info->width * info->height;
	if (info->fmt == MS_PIX_U16)
		for (size_t i = 0; i < n; i++)
			((uint16_t *)px)[i] = (uint16_t)(seq * 7919u + i);
	else
		for (size_t i = 0; i < n; i++)
			((uint8_t *)px)[i] = (uint8_t)(seq * 31u + i);
}

/* Index of the first pixel that is not seq's pattern, or -1. */
static long check(const void *px, const struct ms_frame_info *info, uint64_t seq)
{
	size_t n = (size_t)info->width * info->height;
	for (size_t i = 0; i < n; i++) {
		unsigned want = info->fmt == MS_PIX_U16 ? (uint16_t)(seq * 7919u + i)
		                                        : (uint8_t)(seq * 31u + i);
		unsigned got = info->fmt == MS_PIX_U16 ? ((const uint16_t *)px)[i]
		                                       : ((const uint8_t *)px)[i];
		if (got != want)
			return (long)i;
	}
	return -1;
}

static void shm_name(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "/mstk-test-%ld-%s", (long)getpid(), tag);
}

static const char *shm_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "/dev/shm%s", name);
	return buf;
}

static bool shm_exists(const char *name)
{
	char path[300];
	return access(shm_path(path, sizeof path, name), F_OK) == 0;
}

/* Put frames [from, to) of the test pattern into ring; buf holds one frame. */
static int put_range(struct ms_shmring *ring, void *buf, uint64_t from, uint64_t to, ms_err *e)
{
	const struct ms_frame_info *info = ms_shmring_info(ring);
	for (uint64_t p = from; p < to; p++) {
		struct ms_frame f = { seq_of(p), t_of(seq_of(p)), *info, buf };
		fill(buf, info, f.seq);
		if (ms_shmring_put(ring, &f, NULL, e) < 0)
			return -1;
	}
	return 0;
}

/*
 * Every frame of the pattern at no cost: the frame of seq starts at element
 * (seq * mult) % period of a table whose element j is j itself, so a writer
 * can put frames back to back and race its readers as hard as it can.
 */
struct pattern {
	unsigned char *tab;
	size_t bpp;
	uint64_t period, mult;
};

static void pattern_init(struct pattern *pt, const struct ms_frame_info *info)
{
	size_t n = (size_t)info->width * info->height;
	pt->bpp = ms_pixfmt_bytes(info->fmt);
	pt->period = pt->bpp == 2 ? 65536 : 256;
	pt->mult = pt->bpp == 2 ? 7919 : 31;
	pt->tab = malloc((n + pt->period) * pt->bpp);
	for (size_t j = 0; j < n + pt->period; j++) {
		if (pt->bpp == 2)
			((uint16_t *)pt->tab)[j] = (uint16_t)j;
		else
			pt->tab[j] = (uint8_t)j;
	}
}

static int put_fast(struct ms_shmring *ring, const struct pattern *pt, uint64_t pos, ms_err *e)
{
	uint64_t seq = seq_of(pos);
	struct ms_frame f = { seq, t_of(seq), *ms_shmring_info(ring),
	                      pt->tab + (seq * pt->mult % pt->period) * pt->bpp };
	return ms_shmring_put(ring, &f, NULL, e);
}

static void test_single_process(void)
{
	char name[128];
	shm_name(name, sizeof name, "basic");
	const struct ms_frame_info info = { 40, 30, MS_PIX_U16, 100.0 };
	ms_err e = { { 0 } };
	/* The leading '/' is optional. */
	struct ms_shmring *w = ms_shmring_create(name + 1, &info, 8, &e);
	if (!tap_ok(w != NULL, "create a ring of 8 slots of 40x30 u16 (%s)", e.msg))
		return;
	tap_str(ms_shmring_name(w), name, "the name is normalised to start with '/'");
	struct stat st;
	char path[300];
	tap_ok(stat(shm_path(path, sizeof path, name), &st) == 0 &&
	       (size_t)st.st_size == ms_shmring_bytes(&info, 8),
	       "the segment exists under /dev/shm with the size ms_shmring_bytes says (%zu)",
	       ms_shmring_bytes(&info, 8));
	struct ms_shmring *r = ms_shmring_open(name, &e);
	if (!tap_ok(r != NULL, "a reader opens it (%s)", e.msg)) {
		ms_shmring_destroy(w);
		return;
	}
	const struct ms_frame_info *ri = ms_shmring_info(r);
	tap_ok(ri->width == 40 && ri->height == 30 && ri->fmt == MS_PIX_U16 &&
	       ri->nm_per_px == 100.0 && ms_shmring_nslots(r) == 8 &&
	       ms_shmring_id(r) == ms_shmring_id(w), "the reader sees the writer's geometry and id");
	uint16_t buf[40 * 30], out[40 * 30];
	struct ms_frame f;
	tap_int(ms_shmring_head(r), 0, "a new ring has no frames");
	tap_int(ms_shmring_read(r, 0, out, &f), 0, "reading position 0 of an empty ring says 'not yet'");

	put_range(w, buf, 0, 5, &e);
	tap_int(ms_shmring_head(r), 5, "after 5 puts the head is 5");
	int good = 0;
	for (uint64_t p = 0; p < 5; p++)
		good += ms_shmring_read(r, p, out, &f) == 1 && f.seq == seq_of(p) &&
		        f.t_ns == t_of(seq_of(p)) && f.pixels == out && f.info.width == 40 &&
		        check(out, &info, f.seq) < 0;
	tap_int(good, 5, "each of the 5 frames reads back with its seq, t_ns and pixels");
	tap_int(ms_shmring_read(r, 5, out, &f), 0, "position 5 is not written yet");

	put_range(w, buf, 5, 15, &e);
	int over = 0, ok = 0;
	for (uint64_t p = 0; p < 15; p++) {
		int rc = ms_shmring_read(r, p, out, &f);
		over += rc == -2;
		ok += rc == 1 && check(out, &info, f.seq) < 0 && f.seq == seq_of(p);
	}
	tap_ok(over == 7 && ok == 8, "after 15 puts into 8 slots, positions 0-6 read as "
	       "overwritten (%d) and 7-14 intact (%d)", over, ok);
	uint64_t seq = 0, t = 0;
	bool known = ms_shmring_meta(r, 0, &seq, &t);
	tap_ok(known && seq == seq_of(0) && t == t_of(seq_of(0)),
	       "the metadata ring still knows overwritten position 0 (seq %" PRIu64 ")", seq);
	tap_ok(!ms_shmring_meta(r, 15, &seq, &t), "and knows nothing of unwritten position 15");
	uint64_t pos = 0, missed = 0;
	int rc = ms_shmring_next(r, &pos, out, &f, &missed, &e);
	tap_ok(rc == 1 && pos == 15 && missed == 14 && f.seq == seq_of(14),
	       "a reader at position 0 skips to the newest frame (14), missing 14 (rc %d, pos %"
	       PRIu64 ", missed %" PRIu64 ")", rc, pos, missed);
	tap_int(ms_shmring_next(r, &pos, out, &f, &missed, &e), 0, "and then waits for the next");
	tap_int(ms_shmring_put(r, &f, NULL, &e), -1, "a reader cannot put");
	struct ms_frame bad = { 0, 0, { 41, 30, MS_PIX_U16, 0 }, buf };
	tap_ok(ms_shmring_put(w, &bad, NULL, &e) < 0 && strstr(e.msg, "41x30 u16") &&
	       strstr(e.msg, "40x30 u16"), "a frame of the wrong size is refused: %s", e.msg);
	tap_ok(!ms_shmring_finished(r), "the ring is not finished while its writer lives");
	ms_shmring_destroy(w);
	tap_ok(ms_shmring_finished(r), "after destroy a reader sees the ring finished");
	tap_ok(ms_shmring_read(r, 14, out, &f) == 1 && check(out, &info, f.seq) < 0,
	       "and still reads what is left in its mapping");
	ms_shmring_close(r);

	/* A frame whose size is not a multiple of 8 bytes. */
	const struct ms_frame_info odd = { 7, 3, MS_PIX_U8, 0 };
	e.msg[0] = 0;
	w = ms_shmring_create(name, &odd, 2, &e);
	r = w ? ms_shmring_open(name, &e) : NULL;
	if (tap_ok(r != NULL, "a ring of 21-byte frames (%s)", e.msg)) {
		uint8_t b8[21], o8[22];
		o8[21] = 0xA5;
		put_range(w, b8, 0, 3, &e);
		tap_ok(ms_shmring_read(r, 2, o8, &f) == 1 && check(o8, &odd, f.seq) < 0 &&
		       o8[21] == 0xA5, "copies exactly 21 bytes, tail included");
	}
	ms_shmring_close(r);
	ms_shmring_destroy(w);
}

static void test_errors(void)
{
	char name[128];
	shm_name(name, sizeof name, "collide");
	const struct ms_frame_info info = { 16, 16, MS_PIX_U8, 0 };
	ms_err e = { { 0 } };
	struct ms_shmring *a = ms_shmring_create(name, &info, 4, &e);
	tap_ok(a != NULL, "create '%s'", name);
	struct ms_shmring *b = ms_shmring_create(name, &info, 4, &e);
	tap_ok(b == NULL && strstr(e.msg, "already exists") && strstr(e.msg, name),
	       "a second ring of the same name is refused: %s", e.msg);
	uint8_t px[256];
	tap_ok(a && put_range(a, px, 0, 1, &e) == 0, "the first ring is unharmed");
	ms_shmring_destroy(b);
	ms_shmring_destroy(a);
	tap_ok(!shm_exists(name), "destroy removes /dev/shm%s", name);
	struct ms_shmring *r = ms_shmring_open(name, &e);
	tap_ok(r == NULL && strstr(e.msg, "no shared-memory segment"),
	       "opening a removed ring fails: %s", e.msg);

	tap_ok(!ms_shmring_create("/a/b", &info, 4, &e) && strstr(e.msg, "'/a/b'"),
	       "a name with a second '/' is refused: %s", e.msg);
	tap_ok(!ms_shmring_create(name, &info, 1, &e) && strstr(e.msg, "1 slots"),
	       "a ring of one slot is refused: %s", e.msg);
	const struct ms_frame_info none = { 0, 16, MS_PIX_U8, 0 };
	tap_ok(!ms_shmring_create(name, &none, 4, &e) && strstr(e.msg, "0x16"),
	       "a frame of width 0 is refused: %s", e.msg);

	/* More slots of 32 MiB frames than /dev/shm has room for. */
	struct statvfs vfs;
	if (statvfs("/dev/shm", &vfs) == 0) {
		const struct ms_frame_info big = { 4096, 4096, MS_PIX_U16, 0 };
		double fr = 4096.0 * 4096 * 2;
		double slots = (double)vfs.f_bavail * (double)vfs.f_frsize / fr + 2;
		uint32_t n = slots > MS_SHMRING_MAX_SLOTS ? MS_SHMRING_MAX_SLOTS : (uint32_t)slots;
		if (n * fr > (double)vfs.f_bavail * (double)vfs.f_frsize) {
			struct ms_shmring *c = ms_shmring_create(name, &big, n, &e);
			tap_ok(!c && strstr(e.msg, "no room in /dev/shm") && strstr(e.msg, "are free"),
			       "a ring that does not fit in /dev/shm fails clearly: %s", e.msg);
			tap_ok(!shm_exists(name), "and leaves nothing behind");
			ms_shmring_destroy(c);
		} else {
			tap_ok(true, "# SKIP /dev/shm too large to overfill with %u slots", n);
			tap_ok(true, "# SKIP");
		}
	}
}

/* What a writer child tells its parent when done. */
struct wstats {
	int ok;
	uint64_t puts;
	double elapsed_s, max_put_s;
	char err[sizeof(ms_err)];
};

/*
 * How a reader tells a writer that has no fixed frame count to stop: the
 * pressure tests run until the reader has seen enough races (however busy
 * the machine is), not for a fixed time.
 */
struct stopper {
	int fd;			/* a writer process: write a byte here */
	_Atomic int *flag;	/* a writer thread: set this */
	bool sent;
};

/*
 * The pressure tests stop when the reader has seen enough races or after
 * this long; on a machine busy with other work races are rarer, so the
 * tests then ask only that there were some.
 */
#define PRESSURE_MAX_S 5.0
#define PRESSURE_MIN_RACES 10

static void stop_writer(struct stopper *st)
{
	if (!st || st->sent)
		return;
	st->sent = true;
	if (st->fd >= 0 && write(st->fd, "s", 1) != 1)
		tap_diag("cannot tell the writer to stop");
	if (st->flag)
		atomic_store(st->flag, 1);
}

static bool stop_requested(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return fd >= 0 && poll(&p, 1, 0) > 0;
}

/*
 * A writer process: create the ring, say so on ready_fd, wait for a reader
 * to attach, put n frames, one every pace_us or as fast as it can (or, if
 * n is 0, as fast as it can until told on
 * stop_fd, at most `seconds`), send its statistics on stats_fd, destroy the
 * ring.
 */
static void writer_child(const char *name, const struct ms_frame_info *info, uint32_t nslots,
                         uint64_t n, long pace_us, double seconds, int ready_fd, int stop_fd,
                         int stats_fd)
{
	struct wstats s = { 0 };
	ms_err e = { { 0 } };
	struct ms_shmring *w = ms_shmring_create(name, info, nslots, &e);
	char c = w ? 'y' : 'n';
	if (write(ready_fd, &c, 1) != 1 || !w)
		_exit(1);
	if (!ms_shmring_wait_attached(w, 10000)) {
		ms_shmring_destroy(w);
		_exit(1);
	}
	struct pattern pt;
	pattern_init(&pt, info);
	double t0 = now_s();
	s.ok = 1;
	for (uint64_t p = 0; n ? p < n : now_s() - t0 < seconds && (p % 16 || !stop_requested(stop_fd)); p++) {
		while (now_s() - t0 < (double)p * (double)pace_us * 1e-6)
			;
		double t1 = now_s();
		if (put_fast(w, &pt, p, &e) < 0) {
			s.ok = 0;
			snprintf(s.err, sizeof s.err, "%s", e.msg);
			break;
		}
		double dt = now_s() - t1;
		if (dt > s.max_put_s)
			s.max_put_s = dt;
		s.puts = p + 1;
	}
	s.elapsed_s = now_s() - t0;
	ms_shmring_destroy(w);
	free(pt.tab);
	_exit(write(stats_fd, &s, sizeof s) == (ssize_t)sizeof s ? 0 : 1);
}

struct child {
	pid_t pid;
	int stats_fd;
	struct stopper stop;
};

static bool start_writer(struct child *ch, const char *name, const struct ms_frame_info *info,
                         uint32_t nslots, uint64_t n, long pace_us, double seconds)
{
	int ready[2], stats[2], stop[2];
	if (pipe(ready) < 0 || pipe(stats) < 0 || pipe(stop) < 0)
		return false;
	fflush(stdout);
	ch->pid = fork();
	if (ch->pid == 0) {
		close(ready[0]);
		close(stats[0]);
		close(stop[1]);
		writer_child(name, info, nslots, n, pace_us, seconds, ready[1], stop[0], stats[1]);
	}
	close(ready[1]);
	close(stats[1]);
	close(stop[0]);
	ch->stats_fd = stats[0];
	ch->stop = (struct stopper){ .fd = stop[1] };
	char c = 0;
	bool ok = ch->pid > 0 && read(ready[0], &c, 1) == 1 && c == 'y';
	close(ready[0]);
	return ok;
}

static bool finish_writer(struct child *ch, struct wstats *s)
{
	memset(s, 0, sizeof *s);
	bool got = read(ch->stats_fd, s, sizeof *s) == (ssize_t)sizeof *s;
	close(ch->stats_fd);
	close(ch->stop.fd);
	int status = 0;
	waitpid(ch->pid, &status, 0);
	return got && s->ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* What a sequential reader saw. */
struct rstats {
	uint64_t got, missed, bad, gaps;
	bool in_order, meta_ok;
	uint64_t torn;
};

/*
 * Read the ring in order until its writer has finished and every position
 * is accounted for, verifying every pixel; sleep delay_us after each frame.
 * Tell st's writer to stop once want_torn copies were caught torn.
 */
static void read_all(struct ms_shmring *r, long delay_us, struct rstats *s,
                     struct stopper *st, uint64_t want_torn)
{
	double t0 = now_s();
	memset(s, 0, sizeof *s);
	s->in_order = s->meta_ok = true;
	const struct ms_frame_info *info = ms_shmring_info(r);
	void *px = malloc(ms_frame_bytes(info));
	uint64_t pos = 0, prev = UINT64_MAX;
	ms_err e = { { 0 } };
	for (;;) {
		uint64_t from = pos, missed = 0;
		struct ms_frame f;
		int rc = ms_shmring_next(r, &pos, px, &f, &missed, &e);
		if (rc < 0) {
			tap_diag("read error: %s", e.msg);
			s->bad++;
			break;
		}
		if (rc == 0) {
			if (ms_shmring_finished(r) && pos == ms_shmring_head(r))
				break;
			sleep_us(20);
			continue;
		}
		for (uint64_t p = from; p < from + missed; p++) {
			uint64_t seq, t;
			if (!ms_shmring_meta(r, p, &seq, &t) || seq != seq_of(p) || t != t_of(seq))
				s->meta_ok = false;
		}
		s->got++;
		s->missed += missed;
		uint64_t fpos = (f.seq - 1) / 3;
		if (f.seq != seq_of(pos - 1) || f.t_ns != t_of(f.seq) ||
		    (prev != UINT64_MAX && fpos <= prev))
			s->in_order = false;
		s->gaps += prev == UINT64_MAX ? fpos : fpos - prev - 1;
		prev = fpos;
		if (check(px, info, f.seq) >= 0)
			s->bad++;
		if (delay_us)
			sleep_us(delay_us);
		if ((ms_shmring_torn(r) >= want_torn && s->got >= 100) || now_s() - t0 > PRESSURE_MAX_S)
			stop_writer(st);
	}
	s->torn = ms_shmring_torn(r);
	free(px);
}

static void test_in_order(void)
{
	char name[128];
	shm_name(name, sizeof name, "inorder");
	const struct ms_frame_info info = { 64, 64, MS_PIX_U16, 0 };
	struct child ch;
	if (!tap_ok(start_writer(&ch, name, &info, 600, 500, 0, 0), "writer process creates a 600-slot ring"))
		return;
	ms_err e = { { 0 } };
	struct ms_shmring *r = ms_shmring_open(name, &e);
	tap_ok(r != NULL, "reader process opens it (%s)", e.msg);
	struct rstats s = { 0 };
	if (r)
		read_all(r, 0, &s, NULL, 0);
	struct wstats ws;
	tap_ok(finish_writer(&ch, &ws), "the writer put its 500 frames (%s)", ws.err);
	tap_ok(s.got == 500 && s.missed == 0 && s.in_order && s.bad == 0,
	       "all 500 frames arrive intact, in order, none missed (got %" PRIu64 ", missed %"
	       PRIu64 ", bad %" PRIu64 ")", s.got, s.missed, s.bad);
	ms_shmring_close(r);
	tap_ok(!shm_exists(name), "the writer's destroy removed the segment");
}

static void test_slow_reader(void)
{
	char name[128];
	shm_name(name, sizeof name, "slow");
	const struct ms_frame_info info = { 64, 64, MS_PIX_U16, 0 };
	const uint64_t n = 20000;
	const long delay_us = 1000;
	struct child ch;
	/* A camera at 100 kHz for 0.2 s, a reader that takes 1 ms a frame. */
	if (!tap_ok(start_writer(&ch, name, &info, 8, n, 10, 0), "writer process creates an 8-slot ring"))
		return;
	ms_err e = { { 0 } };
	struct ms_shmring *r = ms_shmring_open(name, &e);
	tap_ok(r != NULL, "a slow reader (1 ms per frame) opens it (%s)", e.msg);
	struct rstats s = { 0 };
	double t0 = now_s();
	if (r)
		read_all(r, delay_us, &s, NULL, 0);
	double rt = now_s() - t0;
	struct wstats ws;
	bool wok = finish_writer(&ch, &ws);
	tap_ok(wok, "the writer put %" PRIu64 " frames (%s)", ws.puts, ws.err);
	tap_diag("writer: %" PRIu64 " frames in %.3f s, slowest put %.1f us; reader: %" PRIu64
	         " frames in %.3f s, %" PRIu64 " missed", ws.puts, ws.elapsed_s,
	         ws.max_put_s * 1e6, s.got, rt, s.missed);
	tap_int((long long)(s.got + s.missed), (long long)n,
	        "frames got + frames missed = frames written");
	tap_int((long long)s.gaps, (long long)s.missed,
	        "the missed count equals the gaps in the positions received");
	tap_ok(s.missed > n / 2 && s.got >= 20, "the reader really fell behind (missed %" PRIu64
	       ", got %" PRIu64 ")", s.missed, s.got);
	tap_ok(s.meta_ok, "every missed frame's seq and t_ns are known from the metadata ring");
	tap_ok(s.bad == 0 && s.in_order, "every frame received is intact and in order");
	/*
	 * Waiting for the reader would take n * 1 ms = 20 s; the pace alone
	 * is 0.2 s (some 2 s under ThreadSanitizer).
	 */
	double waiting_s = (double)n * (double)delay_us * 1e-6;
	tap_ok(ws.elapsed_s < waiting_s / 4, "the writer never waited for the reader: %" PRIu64
	       " puts took %.3f s (waiting would take %.0f s)", n, ws.elapsed_s, waiting_s);
	ms_shmring_close(r);
}

/*
 * The harshest reader: it always copies the oldest complete frame, the one
 * whose slot the writer fills next, so that its copies and the writer's
 * overlap all the time. Counts frames accepted, copies refused, and
 * accepted frames with a wrong pixel.
 */
struct harsh {
	uint64_t accepted, refused, bad;
};

static void read_oldest(struct ms_shmring *r, const _Atomic int *done, struct harsh *h,
                        struct stopper *st, uint64_t want)
{
	double t0 = now_s();
	memset(h, 0, sizeof *h);
	const struct ms_frame_info *info = ms_shmring_info(r);
	void *px = malloc(ms_frame_bytes(info));
	uint32_t nslots = ms_shmring_nslots(r);
	while (done ? !atomic_load(done) : !ms_shmring_finished(r)) {
		uint64_t head = ms_shmring_head(r);
		if (head < nslots)
			continue;
		/* The writer may be filling head's slot; head - nslots + 1 is next. */
		uint64_t pos = head - nslots + 1;
		struct ms_frame f;
		int rc = ms_shmring_read(r, pos, px, &f);
		if (rc == 1) {
			h->accepted++;
			if (f.seq != seq_of(pos) || check(px, info, f.seq) >= 0)
				h->bad++;
		} else if (rc == -2) {
			h->refused++;
		}
		if ((h->refused >= want && h->accepted >= want) || now_s() - t0 > PRESSURE_MAX_S)
			stop_writer(st);
	}
	free(px);
}

static void test_torn_processes(void)
{
	char name[128];
	shm_name(name, sizeof name, "oldest");
	const struct ms_frame_info info = { 256, 256, MS_PIX_U16, 0 };
	struct child ch;
	if (tap_ok(start_writer(&ch, name, &info, 3, 0, 0, 2 * PRESSURE_MAX_S),
	           "writer process puts 128 kB frames into 3 slots, back to back")) {
		ms_err e = { { 0 } };
		struct ms_shmring *r = ms_shmring_open(name, &e);
		struct harsh h = { 0 };
		if (tap_ok(r != NULL, "a reader of the oldest frame opens it (%s)", e.msg))
			read_oldest(r, NULL, &h, &ch.stop, 300);
		struct wstats ws;
		bool wok = finish_writer(&ch, &ws);
		tap_ok(wok, "the writer finished (%s)", ws.err);
		tap_diag("writer: %" PRIu64 " frames in %.2f s; oldest-frame reader accepted %"
		         PRIu64 ", refused %" PRIu64 " overwritten copies", ws.puts, ws.elapsed_s,
		         h.accepted, h.refused);
		tap_ok(h.accepted >= 100 && h.refused >= PRESSURE_MIN_RACES, "the reader raced the writer slot "
		       "for slot (%" PRIu64 " accepted, %" PRIu64 " refused)", h.accepted, h.refused);
		tap_int((long long)h.bad, 0, "no accepted frame has a single wrong pixel");
		ms_shmring_close(r);
	}

	shm_name(name, sizeof name, "torn");
	if (!tap_ok(start_writer(&ch, name, &info, 2, 0, 0, 2 * PRESSURE_MAX_S),
	            "writer process puts 128 kB frames into 2 slots, back to back"))
		return;
	ms_err e = { { 0 } };
	struct ms_shmring *r = ms_shmring_open(name, &e);
	tap_ok(r != NULL, "reader opens it (%s)", e.msg);
	struct rstats s = { 0 };
	if (r)
		read_all(r, 0, &s, &ch.stop, 100);
	struct wstats ws;
	tap_ok(finish_writer(&ch, &ws), "the writer finished (%s)", ws.err);
	tap_diag("writer: %" PRIu64 " frames in %.2f s; reader accepted %" PRIu64 ", missed %"
	         PRIu64 ", threw away %" PRIu64 " copies the writer overwrote mid-way",
	         ws.puts, ws.elapsed_s, s.got, s.missed, s.torn);
	tap_int((long long)(s.got + s.missed), (long long)ws.puts, "got + missed = written");
	tap_ok(s.got > 100, "the reader accepted frames under pressure (%" PRIu64 ")", s.got);
	tap_ok(s.torn >= PRESSURE_MIN_RACES, "the pressure was real: %" PRIu64 " copies were caught torn", s.torn);
	tap_int((long long)s.bad, 0, "no frame read in order has a single wrong pixel");
	ms_shmring_close(r);
}

/*
 * The same race between two threads of one process, for ThreadSanitizer.
 * The reader reads through the writer's own mapping: TSan knows memory by
 * address, and would not see that two mappings of one segment alias.
 */
struct thr {
	struct ms_shmring *w;
	_Atomic int stop, done;
	uint64_t puts;
};

static void *writer_thread(void *arg)
{
	struct thr *t = arg;
	ms_err e;
	struct pattern pt;
	pattern_init(&pt, ms_shmring_info(t->w));
	double t0 = now_s();
	while (!atomic_load(&t->stop) && now_s() - t0 < 2 * PRESSURE_MAX_S &&
	       put_fast(t->w, &pt, t->puts, &e) == 0)
		t->puts++;
	free(pt.tab);
	atomic_store(&t->done, 1);
	return NULL;
}

static void test_torn_threads(void)
{
	char name[128];
	shm_name(name, sizeof name, "threads");
	const struct ms_frame_info info = { 128, 64, MS_PIX_U16, 0 };
	ms_err e = { { 0 } };
	struct thr t = { .puts = 0 };
	t.w = ms_shmring_create(name, &info, 3, &e);
	if (!tap_ok(t.w != NULL, "threads: a 3-slot ring (%s)", e.msg))
		return;
	pthread_t th;
	pthread_create(&th, NULL, writer_thread, &t);
	struct harsh h;
	struct stopper st = { .fd = -1, .flag = &t.stop };
	read_oldest(t.w, &t.done, &h, &st, 300);
	pthread_join(th, NULL);
	tap_diag("threads: %" PRIu64 " put, %" PRIu64 " accepted, %" PRIu64 " refused",
	         t.puts, h.accepted, h.refused);
	tap_ok(h.accepted >= 100 && h.refused >= PRESSURE_MIN_RACES && h.bad == 0, "threads: the "
	       "oldest-frame reader accepted %" PRIu64 " frames, refused %" PRIu64 ", none torn (%"
	       PRIu64 " bad)", h.accepted, h.refused, h.bad);
	ms_shmring_destroy(t.w);
}

/* --- the frame stream's shm transport --- */

struct drops {
	uint64_t n, last_pos;
	bool ok;
};

static void on_drop(void *ctx, const struct ms_drop *d)
{
	struct drops *dr = ctx;
	if (!d->known || d->seq != seq_of(d->pos) || d->t_ns != t_of(d->seq) ||
	    (dr->n && d->pos <= dr->last_pos) || d->noticed_ns < T0)
		dr->ok = false;
	dr->last_pos = d->pos;
	dr->n++;
}

/*
 * A stream writer process: a ring of nslots, n frames through fd in shm
 * mode (or inline when nslots is 0), one every pace_us (a busy wait, as a
 * camera's frame clock), the put loop's time on stats_fd.
 */
static void stream_child(const char *name, int fd, uint32_t nslots, uint64_t n, long pace_us,
                         int stats_fd)
{
	const struct ms_frame_info info = { 48, 32, MS_PIX_U16, 80.5 };
	ms_err e = { { 0 } };
	struct wstats s = { 0 };
	struct ms_shmring *ring = nslots ? ms_shmring_create(name, &info, nslots, &e) : NULL;
	struct ms_fwriter *w = NULL;
	if (nslots && !ring)
		goto out;
	w = ring ? ms_fwriter_open_shm(fd, ring, "the pipe", &e) : ms_fwriter_open(fd, &info, "the pipe", &e);
	if (!w)
		goto out;
	uint16_t buf[48 * 32];
	double t0 = now_s();
	for (uint64_t p = 0; p < n; p++) {
		while (now_s() - t0 < (double)p * (double)pace_us * 1e-6)
			;
		struct ms_frame f = { seq_of(p), t_of(seq_of(p)), info, buf };
		fill(buf, &info, f.seq);
		double t1 = now_s();
		if (ms_fwriter_put(w, &f, &e) < 0)
			goto out;
		if (now_s() - t1 > s.max_put_s)
			s.max_put_s = now_s() - t1;
	}
	s.elapsed_s = now_s() - t0;
	s.puts = n;
	if (stats_fd >= 0 && write(stats_fd, &s, sizeof s) != (ssize_t)sizeof s)
		goto out;
	s.ok = ms_fwriter_close(w, &e) == 0;
	w = NULL;
out:
	if (w)
		ms_fwriter_abandon(w);
	ms_shmring_destroy(ring);
	if (!s.ok)
		fprintf(stderr, "stream writer: %s\n", e.msg);
	_exit(s.ok ? 0 : 1);
}

static pid_t start_stream(const char *name, uint32_t nslots, uint64_t n, long pace_us, int *rfd,
                          int *stats_rfd)
{
	int p[2], st[2] = { -1, -1 };
	if (pipe(p) < 0 || (stats_rfd && pipe(st) < 0))
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (st[0] >= 0)
			close(st[0]);
		stream_child(name, p[1], nslots, n, pace_us, st[1]);
	}
	close(p[1]);
	if (st[1] >= 0)
		close(st[1]);
	*rfd = p[0];
	if (stats_rfd)
		*stats_rfd = st[0];
	return pid;
}

static bool child_ok(pid_t pid)
{
	int status = 0;
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Read a stream to its end, verifying every frame; the return of the last next(). */
static int drain(struct ms_freader *r, long delay_us, uint64_t *got, bool *good, ms_err *e)
{
	struct ms_frame f;
	int rc;
	uint64_t prev = 0;
	*got = 0;
	*good = true;
	while ((rc = ms_freader_next(r, &f, e)) > 0) {
		if (f.t_ns != t_of(f.seq) || (f.seq - 1) % 3 || (*got && f.seq <= prev) ||
		    f.info.width != 48 || check(f.pixels, &f.info, f.seq) >= 0)
			*good = false;
		prev = f.seq;
		++*got;
		if (delay_us)
			sleep_us(delay_us);
	}
	return rc;
}

static void test_stream_pipe(void)
{
	char name[128];
	shm_name(name, sizeof name, "stream");
	int fd;
	pid_t pid = start_stream(name, 256, 200, 0, &fd, NULL);
	ms_err e = { { 0 } };
	struct ms_freader *r = ms_freader_open(fd, "the pipe", &e);
	if (!tap_ok(r != NULL, "stream: the reader opens a shm-mode stream from a pipe (%s)", e.msg)) {
		close(fd);
		child_ok(pid);
		return;
	}
	const struct ms_frame_info *info = ms_freader_info(r);
	tap_ok(info->width == 48 && info->height == 32 && info->fmt == MS_PIX_U16 &&
	       info->nm_per_px == 80.5, "stream: the header's geometry arrives");
	tap_str(ms_freader_transport(r), "shm", "stream: the transport is shm");
	uint64_t got;
	bool good;
	int rc = drain(r, 0, &got, &good, &e);
	tap_ok(rc == 0, "stream: it ends properly (%s)", rc ? e.msg : "end record");
	tap_ok(got == 200 && good, "stream: 200 frames arrive intact with seq and t_ns (%" PRIu64 ")", got);
	tap_int((long long)ms_freader_count(r), 200, "stream: ms_freader_count");
	tap_int((long long)ms_freader_dropped(r), 0, "stream: nothing dropped");
	struct ms_frame f;
	tap_int(ms_freader_next(r, &f, &e), 0, "stream: next after the end stays 0");
	ms_freader_close(r);
	close(fd);
	tap_ok(child_ok(pid), "stream: the writer process exits 0");
	tap_ok(!shm_exists(name), "stream: the writer removed its segment");
}

/*
 * A slow reader on a shm stream. With stall, the reader takes one frame and
 * then stops reading the pipe until the writer has put all n frames (at
 * most 5 s): the pipe fills up with descriptors, and a writer that waited
 * for room would never get there.
 */
static void stream_slow_case(const char *tag, uint64_t n, long pace_us, long delay_us, bool stall)
{
	char name[128];
	shm_name(name, sizeof name, tag);
	int fd, sfd;
	pid_t pid = start_stream(name, 8, n, pace_us, &fd, &sfd);
	ms_err e = { { 0 } };
	struct ms_freader *r = ms_freader_open(fd, "the pipe", &e);
	if (!tap_ok(r != NULL, "%s: reader opens (%s)", tag, e.msg)) {
		close(fd);
		child_ok(pid);
		return;
	}
	struct drops dr = { .ok = true };
	ms_freader_on_drop(r, on_drop, &dr);
	uint64_t got = 0;
	bool good = true;
	int rc = 1;
	struct wstats ws = { 0 };
	struct pollfd pfd = { .fd = sfd, .events = POLLIN };
	bool have_stats = false;
	if (stall) {
		struct ms_frame f;
		rc = ms_freader_next(r, &f, &e);
		/* Frame 0, or a later one if the writer already overwrote it. */
		good = rc == 1 && (f.seq - 1) % 3 == 0 && f.t_ns == t_of(f.seq) &&
		       check(f.pixels, &f.info, f.seq) < 0;
		got = rc == 1;
		have_stats = poll(&pfd, 1, 5000) == 1 &&
		             read(sfd, &ws, sizeof ws) == (ssize_t)sizeof ws;
	}
	if (rc == 1) {
		uint64_t more;
		bool good2;
		rc = drain(r, delay_us, &more, &good2, &e);
		got += more;
		good = good && good2;
	}
	if (!have_stats)
		have_stats = poll(&pfd, 1, 10000) == 1 &&
		             read(sfd, &ws, sizeof ws) == (ssize_t)sizeof ws;
	tap_ok(rc == 0, "%s: ends properly, the end count checked (%s)", tag, rc ? e.msg : "ok");
	uint64_t dropped = ms_freader_dropped(r);
	tap_diag("%s: writer put %" PRIu64 " frames in %.3f s (slowest put %.0f us); reader got %"
	         PRIu64 ", dropped %" PRIu64, tag, ws.puts, ws.elapsed_s, ws.max_put_s * 1e6,
	         got, dropped);
	tap_int((long long)(got + dropped), (long long)n, "%s: got + dropped = written", tag);
	tap_ok(dropped > n / 2, "%s: the reader fell far behind (%" PRIu64 " dropped)", tag, dropped);
	tap_ok(dr.n == dropped && dr.ok, "%s: the drop callback ran once per dropped frame "
	       "(%" PRIu64 "), in order, each with its seq and t_ns", tag, dr.n);
	tap_ok(good, "%s: every frame delivered is intact and in order", tag);
	tap_ok(have_stats && ws.elapsed_s < 1.0, "%s: the writer did not wait: %" PRIu64
	       " puts in %.3f s", tag, ws.puts, ws.elapsed_s);
	ms_freader_close(r);
	close(fd);
	close(sfd);
	tap_ok(child_ok(pid), "%s: the writer process exits 0", tag);
}

static void test_stream_slow(void)
{
	/* A camera at 50 kHz and a reader that takes 500 us a frame. */
	stream_slow_case("slow-stream", 5000, 20, 500, false);
	/* 20000 descriptors are 960 kB, 15 times what a pipe holds. */
	stream_slow_case("stalled-stream", 20000, 0, 0, true);
}

static void test_stream_linger(void)
{
	char name[128];
	shm_name(name, sizeof name, "linger");
	int fd;
	pid_t pid = start_stream(name, 4, 3, 0, &fd, NULL);
	/* The writer finishes long before this reader looks. */
	sleep_us(300000);
	ms_err e = { { 0 } };
	struct ms_freader *r = ms_freader_open(fd, "the pipe", &e);
	uint64_t got = 0;
	bool good = false;
	int rc = r ? drain(r, 0, &got, &good, &e) : -1;
	tap_ok(r && rc == 0 && got == 3 && good, "a short stream read 0.3 s late still arrives "
	       "whole (the writer waits for its reader to attach): %s", rc ? e.msg : "ok");
	ms_freader_close(r);
	close(fd);
	tap_ok(child_ok(pid), "linger: the writer exits 0 once the reader attached");
}

/*
 * A shm stream whose descriptors go to the file TAG.msf in the scratch
 * directory (its name in path), from a new ring named after TAG: the
 * writer, or NULL with e set; *ring and *fd get the ring and the file.
 */
static struct ms_fwriter *file_stream(const char *tag, const struct ms_frame_info *info,
				      uint32_t nslots, char *path, size_t psize,
				      struct ms_shmring **ring, int *fd, ms_err *e)
{
	char name[128];
	shm_name(name, sizeof name, tag);
	snprintf(path, psize, "%s/%s.msf", tap_tmpdir(), tag);
	*fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	*ring = ms_shmring_create(name, info, nslots, e);
	return *ring ? ms_fwriter_open_shm(*fd, *ring, path, e) : NULL;
}

/* Stream ring positions from .. to-1 (their seq and t_ns), each filled. */
static void stream_range(struct ms_fwriter *w, const struct ms_frame_info *info, void *buf,
		      uint64_t from, uint64_t to, ms_err *e)
{
	for (uint64_t p = from; w && p < to; p++) {
		struct ms_frame f = { seq_of(p), t_of(seq_of(p)), *info, buf };
		fill(buf, info, f.seq);
		ms_fwriter_put(w, &f, e);
	}
}

static void test_stream_gone(void)
{
	char name[128], path[512];
	shm_name(name, sizeof name, "gone");
	const struct ms_frame_info info = { 48, 32, MS_PIX_U16, 80.5 };
	ms_err e = { { 0 } };
	struct ms_shmring *ring;
	int fd;
	struct ms_fwriter *w = file_stream("gone", &info, 4, path, sizeof path, &ring, &fd, &e);
	uint16_t buf[48 * 32];
	stream_range(w, &info, buf, 0, 3, &e);
	double t0 = now_s();
	tap_ok(w && ms_fwriter_close(w, &e) == 0 && now_s() - t0 < 0.5,
	       "a shm stream written to a file closes at once (no reader to wait for)");
	close(fd);

	/* While the ring lives, the file reads like any stream. */
	fd = open(path, O_RDONLY);
	struct ms_freader *r = ms_freader_open(fd, path, &e);
	uint64_t got = 0;
	bool good = false;
	int rc = r ? drain(r, 0, &got, &good, &e) : -1;
	tap_ok(rc == 0 && got == 3 && good, "the file reads back while the ring lives (%s)",
	       rc ? e.msg : "ok");
	ms_freader_close(r);
	close(fd);

	ms_shmring_destroy(ring);
	fd = open(path, O_RDONLY);
	r = ms_freader_open(fd, path, &e);
	tap_ok(!r && strstr(e.msg, "is gone") && strstr(e.msg, name),
	       "once the ring is destroyed the stream fails clearly: %s", e.msg);
	ms_freader_close(r);
	close(fd);

	/* A new ring under the old name is not the stream's. */
	ring = ms_shmring_create(name, &info, 4, &e);
	fd = open(path, O_RDONLY);
	r = ms_freader_open(fd, path, &e);
	tap_ok(!r && strstr(e.msg, "another writer"), "a reused name is recognised: %s", e.msg);
	ms_freader_close(r);
	close(fd);
	ms_shmring_destroy(ring);

	/* A header that promises shm but names no segment. */
	snprintf(path, sizeof path, "%s/bad.msf", tap_tmpdir());
	FILE *fp = fopen(path, "w");
	fputs("MSFRAMES 1\nWIDTH 4\nHEIGHT 4\nFORMAT u8\nENDIAN little\nTRANSPORT shm\n"
	      "SLOTS 4\nENDHDR\n", fp);
	fclose(fp);
	fd = open(path, O_RDONLY);
	r = ms_freader_open(fd, path, &e);
	tap_ok(!r && strstr(e.msg, "lacks SHM"), "a shm header without SHM is refused: %s", e.msg);
	ms_freader_close(r);
	close(fd);
}

/* The fill a reader reports: frames in the ring it has not read, per slot. */
static void test_stream_fill(void)
{
	char path[512];
	const struct ms_frame_info info = { 16, 8, MS_PIX_U8, 0 };
	ms_err e = { { 0 } };
	struct ms_shmring *ring;
	int fd;
	struct ms_fwriter *w = file_stream("fill", &info, 8, path, sizeof path, &ring, &fd, &e);
	uint8_t buf[16 * 8];
	stream_range(w, &info, buf, 0, 2, &e);
	int rfd = open(path, O_RDONLY);
	struct ms_freader *r = w ? ms_freader_open(rfd, path, &e) : NULL;
	double f0 = -1, f1 = -1, f2 = -1, f3 = -1;
	uint64_t o1 = 9, o3 = 0;
	struct ms_frame got;
	if (r) {
		ms_freader_fill(r, &f0, &o1);
		ms_freader_next(r, &got, &e);
		ms_freader_fill(r, &f1, &o1);
		stream_range(w, &info, buf, 2, 7, &e);
		ms_freader_fill(r, &f2, &o1);
		stream_range(w, &info, buf, 7, 17, &e);
		ms_freader_fill(r, &f3, &o3);
	}
	tap_ok(r && f0 == 0 && f1 == 1.0 / 8 && f2 == 6.0 / 8 && o1 == 0 && f3 == 1 && o3 == 8,
	       "ring fill: %g before the first frame, %g with 1 of 8 slots unread, %g with 6, %g "
	       "when overrun, with %" PRIu64 " frames already lost", f0, f1, f2, f3, o3);
	ms_freader_close(r);
	close(rfd);
	if (w)
		ms_fwriter_close(w, &e);
	close(fd);
	ms_shmring_destroy(ring);
}

static void test_inline_unchanged(void)
{
	int fd;
	pid_t pid = start_stream("", 0, 50, 0, &fd, NULL);
	char hdr[200];
	const char *want = "MSFRAMES 1\nWIDTH 48\nHEIGHT 32\nFORMAT u16\nNM_PER_PX 80.5\n"
	                   "ENDIAN little\nTRANSPORT inline\nENDHDR\n";
	size_t len = strlen(want);
	ssize_t k = 0, m;
	while ((size_t)k < len && (m = read(fd, hdr + k, len - (size_t)k)) > 0)
		k += m;
	hdr[k] = 0;
	tap_str(hdr, want, "inline: the header is byte for byte what it was");
	/* Hand the rest to a reader through a second pipe, header first. */
	int p[2];
	if (pipe(p) < 0)
		return;
	fflush(stdout);
	pid_t fwd = fork();
	if (fwd == 0) {
		close(p[0]);
		char buf[65536];
		ssize_t n;
		bool ok = write(p[1], hdr, len) == (ssize_t)len;
		while (ok && (n = read(fd, buf, sizeof buf)) > 0)
			ok = write(p[1], buf, (size_t)n) == n;
		_exit(ok ? 0 : 1);
	}
	close(p[1]);
	close(fd);
	ms_err e = { { 0 } };
	struct ms_freader *r = ms_freader_open(p[0], "inline pipe", &e);
	uint64_t got = 0;
	bool good = false;
	int rc = r ? drain(r, 0, &got, &good, &e) : -1;
	tap_ok(rc == 0 && got == 50 && good && ms_freader_dropped(r) == 0 &&
	       strcmp(ms_freader_transport(r), "inline") == 0,
	       "inline: 50 frames round-trip, transport inline, nothing dropped (%s)",
	       rc ? e.msg : "ok");
	ms_freader_close(r);
	close(p[0]);
	tap_ok(child_ok(pid) && child_ok(fwd), "inline: writer and forwarder exit 0");
}

/*
 * An inline stream in a file: the reader's first read() brings binary
 * records along with the header, which must not be taken for a binary
 * header (it was, before the shm transport came).
 */
static void test_inline_file(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/inline.msf", tap_tmpdir());
	const struct ms_frame_info info = { 48, 32, MS_PIX_U16, 80.5 };
	ms_err e = { { 0 } };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	struct ms_fwriter *w = ms_fwriter_open(fd, &info, path, &e);
	uint16_t buf[48 * 32];
	for (uint64_t p = 0; w && p < 4; p++) {
		struct ms_frame f = { seq_of(p), t_of(seq_of(p)), info, buf };
		fill(buf, &info, f.seq);
		ms_fwriter_put(w, &f, &e);
	}
	tap_ok(w && ms_fwriter_close(w, &e) == 0, "inline file: written");
	close(fd);
	fd = open(path, O_RDONLY);
	struct ms_freader *r = ms_freader_open(fd, path, &e);
	uint64_t got = 0;
	bool good = false;
	int rc = r ? drain(r, 0, &got, &good, &e) : -1;
	tap_ok(rc == 0 && got == 4 && good, "inline file: 4 frames read back (%s)", rc ? e.msg : "ok");
	ms_freader_close(r);
	close(fd);
}

/* Nothing of ours may be left in /dev/shm, whatever failed. */
static void test_no_leftovers(void)
{
	char prefix[64];
	snprintf(prefix, sizeof prefix, "mstk-test-%ld-", (long)getpid());
	int left = 0;
	DIR *d = opendir("/dev/shm");
	for (struct dirent *de; d && (de = readdir(d));) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			char n[300];
			snprintf(n, sizeof n, "/%s", de->d_name);
			tap_diag("left over: %s", n);
			shm_unlink(n);
			left++;
		}
	}
	if (d)
		closedir(d);
	tap_int(left, 0, "no segment of this test is left in /dev/shm");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_single_process();
	test_errors();
	test_in_order();
	test_slow_reader();
	test_torn_processes();
	test_torn_threads();
	test_stream_pipe();
	test_stream_slow();
	test_stream_linger();
	test_stream_gone();
	test_stream_fill();
	test_inline_unchanged();
	test_inline_file();
	test_no_leftovers();
	return tap_done();
}
