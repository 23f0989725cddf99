/*
 * t-tiffio: TIFF video read and write. Round trips (u8, u16, BigTIFF),
 * the fixtures made by tests/fixtures/make-tiff-fixtures.py with tifffile
 * (MagScope's ImageJ form, big-endian, BigTIFF, deflate tiles, ImageJ's
 * one-IFD stack), the files that must be refused, and tifffile reading what
 * ms_tiff_write wrote. Live writers: ImageJ hyperstacks (TCYX, one label
 * per frame), files that a killed writer leaves (readable up to the last
 * sync), BigTIFF on demand, pages that are not whole frames. libtiff must
 * print nothing: stderr is captured.
 */
#include "tiffio.h"
#include "../lib/tap.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

static char fixdir[512];

static const char *fixture(const char *name)
{
	static char buf[4][600];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", fixdir, name);
	return buf[k];
}

static const char *tmpfile_path(const char *name)
{
	static char buf[4][600];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tap_tmpdir(), name);
	return buf[k];
}

/* The fixture script's pixel formulas. */
static unsigned px_u8(unsigned t, unsigned y, unsigned x)
{
	return (7 * t + 3 * y + x) % 256;
}

static unsigned px_u16(unsigned t, unsigned y, unsigned x)
{
	return 40000 + 1000 * t + 37 * y + 5 * x;
}

/* Read every frame of a fixture and compare with the formula. */
static void check_fixture(const char *name, size_t frames, uint32_t w, uint32_t h,
			  enum ms_pixfmt fmt, double nm, double nm_tol, const uint64_t *ts)
{
	ms_err e = {{0}};
	struct ms_tiff_reader *r = ms_tiff_open_read(fixture(name), &e);
	if (!tap_ok(r != NULL, "%s: opens (%s)", name, e.msg))
		return;
	const struct ms_frame_info *in = ms_tiff_info(r);
	tap_int((long long)ms_tiff_frames(r), (long long)frames, "%s: frame count", name);
	tap_ok(in->width == w && in->height == h && in->fmt == fmt,
	       "%s: geometry %ux%u %s", name, in->width, in->height, ms_pixfmt_name(in->fmt));
	tap_near(in->nm_per_px, nm, nm_tol, "%s: nm per pixel", name);
	tap_int(ms_tiff_has_timestamps(r), ts != NULL, "%s: has timestamps", name);
	size_t bytes = ms_frame_bytes(in), bad = 0, tbad = 0;
	unsigned char *buf = malloc(bytes);
	for (size_t t = 0; t < frames; t++) {
		uint64_t tn = 1;
		if (ms_tiff_read(r, t, buf, &tn, &e) < 0) {
			tap_ok(0, "%s: read frame %zu: %s", name, t, e.msg);
			bad++;
			break;
		}
		for (uint32_t y = 0; y < h; y++)
			for (uint32_t x = 0; x < w; x++) {
				unsigned want = fmt == MS_PIX_U8 ? px_u8(t, y, x) : px_u16(t, y, x);
				unsigned got = fmt == MS_PIX_U8 ? buf[y * w + x]
								: ((uint16_t *)buf)[y * w + x];
				bad += got != want;
			}
		if (tn != (ts ? ts[t] : 0)) {
			tbad++;
			tap_diag("%s frame %zu: t_ns %" PRIu64 ", want %" PRIu64, name, t, tn,
				 ts ? ts[t] : 0);
		}
	}
	tap_int((long long)bad, 0, "%s: every pixel of every frame matches", name);
	tap_int((long long)tbad, 0, "%s: every timestamp matches", name);
	free(buf);
	ms_tiff_close_read(r);
}

/* Expect open (or, when it opens, reading every frame) to fail mentioning both. */
static void check_reject(const char *path, const char *label, const char *needle)
{
	ms_err e = {{0}};
	struct ms_tiff_reader *r = ms_tiff_open_read(path, &e);
	if (r) {
		size_t bytes = ms_frame_bytes(ms_tiff_info(r));
		void *buf = malloc(bytes);
		int rc = 0;
		for (size_t t = 0; t < ms_tiff_frames(r) && rc == 0; t++)
			rc = ms_tiff_read(r, t, buf, NULL, &e);
		free(buf);
		ms_tiff_close_read(r);
		if (rc == 0) {
			tap_ok(0, "%s: refused", label);
			return;
		}
	}
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	tap_ok(strstr(e.msg, base) && strstr(e.msg, needle), "%s: refused naming the file and "
	       "'%s': %s", label, needle, e.msg);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	void *b = malloc(*n ? *n : 1);
	if (fread(b, 1, *n, f) != *n)
		exit(1);
	fclose(f);
	return b;
}

/* A copy of src cut to keep bytes. */
static const char *cut_copy(const char *src, const char *dst, size_t keep)
{
	size_t n;
	void *b = slurp(src, &n);
	write_file(dst, b, keep < n ? keep : n);
	free(b);
	return dst;
}

static void fill(void *buf, const struct ms_frame_info *in, unsigned t)
{
	size_t n = (size_t)in->width * in->height;
	for (size_t i = 0; i < n; i++) {
		if (in->fmt == MS_PIX_U8)
			((uint8_t *)buf)[i] = (uint8_t)(i * 13 + t * 29 + (i >> 7));
		else
			((uint16_t *)buf)[i] = (uint16_t)(i * 977 + t * 4099 + (i >> 5));
	}
}

/*
 * Write frames with ms_tiff_write and read them back: pixels, timestamps
 * and nm per pixel must come back exactly. Returns the sum of all pixels.
 */
static uint64_t round_trip(const char *label, const char *path, const struct ms_frame_info *in,
			   unsigned frames, uint64_t expected, const uint64_t *ts,
			   const char *magic)
{
	ms_err e = {{0}};
	size_t bytes = ms_frame_bytes(in);
	unsigned char *buf = malloc(bytes), *back = malloc(bytes);
	uint64_t sum = 0;
	struct ms_tiff_writer *w = ms_tiff_open_write(path, in, expected, &e);
	if (!tap_ok(w != NULL, "%s: open for writing (%s)", label, e.msg))
		goto out;
	int rc = 0;
	for (unsigned t = 0; t < frames && rc == 0; t++) {
		fill(buf, in, t);
		rc = ms_tiff_write(w, buf, ts ? ts[t] : 0, &e);
	}
	rc |= ms_tiff_close_write(w, &e);
	if (!tap_ok(rc == 0, "%s: write %u frames (%s)", label, frames, e.msg))
		goto out;
	size_t n;
	unsigned char *file = slurp(path, &n);
	tap_ok(n >= 4 && memcmp(file, magic, 4) == 0, "%s: file starts with %s", label,
	       magic[2] == '+' ? "II+ (BigTIFF)" : "II* (classic)");
	free(file);

	struct ms_tiff_reader *r = ms_tiff_open_read(path, &e);
	if (!tap_ok(r != NULL, "%s: reads back (%s)", label, e.msg))
		goto out;
	const struct ms_frame_info *ri = ms_tiff_info(r);
	tap_ok(ri->width == in->width && ri->height == in->height && ri->fmt == in->fmt,
	       "%s: same geometry", label);
	tap_ok(ri->nm_per_px == in->nm_per_px, "%s: nm per pixel exactly %.17g (got %.17g)", label,
	       in->nm_per_px, ri->nm_per_px);
	tap_int((long long)ms_tiff_frames(r), frames, "%s: frame count", label);
	tap_int(ms_tiff_has_timestamps(r), ts != NULL, "%s: has timestamps", label);
	size_t bad = 0, tbad = 0;
	for (unsigned t = 0; t < frames; t++) {
		uint64_t tn = 12345;
		fill(buf, in, t);
		if (ms_tiff_read(r, t, back, &tn, &e) < 0) {
			tap_diag("read %u: %s", t, e.msg);
			bad++;
			break;
		}
		bad += memcmp(buf, back, bytes) != 0;
		tbad += tn != (ts ? ts[t] : 0);
		size_t np = (size_t)in->width * in->height;
		for (size_t i = 0; i < np; i++)
			sum += in->fmt == MS_PIX_U8 ? back[i] : ((uint16_t *)back)[i];
	}
	tap_int((long long)bad, 0, "%s: every frame reads back identical", label);
	tap_int((long long)tbad, 0, "%s: every timestamp reads back to the ns", label);

	/* Any order works: backwards, then a jump forward. */
	bad = 0;
	for (unsigned k = 0; k < frames; k++) {
		unsigned t = k == frames - 1 ? frames - 1 : frames - 2 - k;
		fill(buf, in, t);
		bad += ms_tiff_read(r, t, back, NULL, &e) < 0 || memcmp(buf, back, bytes) != 0;
	}
	tap_int((long long)bad, 0, "%s: random-order reads match", label);
	tap_ok(ms_tiff_read(r, frames, back, NULL, &e) < 0 && strstr(e.msg, "past the end"),
	       "%s: reading past the end fails: %s", label, e.msg);
	ms_tiff_close_read(r);
out:
	free(buf);
	free(back);
	return sum;
}

/* tifffile reads a file ms_tiff_write made: shape, dtype, sum, labels, scale, layout. */
static void tifffile_check(const char *label, const char *path, const char *want)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, PY " -c '"
		 "import sys, tifffile\n"
		 "t = tifffile.TiffFile(sys.argv[1])\n"
		 "a = t.asarray(); m = t.imagej_metadata or {}; p = t.pages[0]\n"
		 "xr = p.tags[\"XResolution\"].value if \"XResolution\" in p.tags else (0, 1)\n"
		 "lab = m.get(\"Labels\", [\"-\"])\n"
		 "offs = [q.dataoffsets[0] for q in t.pages]\n"
		 "contig = all(o == offs[0] + k * a[0].nbytes for k, o in enumerate(offs))\n"
		 "print(a.shape, a.dtype, int(a.sum(dtype=\"uint64\")), m.get(\"images\"), len(lab), "
		 "lab[0], lab[-1], \"%%d/%%d\" %% (xr[1], xr[0]), m.get(\"unit\"), t.is_bigtiff, "
		 "len(offs), contig)' '%s' 2>&1", path);
	char out[1024];
	tap_str(tap_capture(cmd, out, sizeof out), want, "%s: tifffile reads it back", label);
}

static bool have_tifffile(void)
{
	return system(PY " -c 'import tifffile' >/dev/null 2>&1") == 0;
}

/* ------------------------------------------------------------ live */

#define LT0 UINT64_C(1700000000000000000)

/* Page (frame f, channel c) of the live tests: every pixel distinct. */
static void live_fill(uint16_t *px, size_t np, unsigned f, unsigned c)
{
	for (size_t i = 0; i < np; i++)
		px[i] = (uint16_t)(f * 1000 + c * 100 + i);
}

/* Write frames [0, nf) of `channels` pages, syncing after `sync_at` frames. */
static int live_write(struct ms_tiff_writer *w, const struct ms_frame_info *in, unsigned channels,
		      unsigned nf, unsigned extra_pages, ms_err *e)
{
	size_t np = (size_t)in->width * in->height;
	uint16_t *px = malloc(np * 2);
	int rc = 0;
	for (unsigned f = 0; f < nf && rc == 0; f++)
		for (unsigned c = 0; c < channels && rc == 0; c++) {
			live_fill(px, np, f, c);
			rc = ms_tiff_write(w, px, LT0 + f * UINT64_C(1000000), e);
		}
	for (unsigned k = 0; k < extra_pages && rc == 0; k++) {
		live_fill(px, np, nf, k);
		rc = ms_tiff_write(w, px, LT0 + nf * UINT64_C(1000000), e);
	}
	free(px);
	return rc;
}

/* Our reader: n pages of `channels` per frame, each as live_fill made it. */
static void live_read(const char *label, const char *path, const struct ms_frame_info *in,
		      unsigned channels, unsigned pages, bool times)
{
	ms_err e = {{0}};
	struct ms_tiff_reader *r = ms_tiff_open_read(path, &e);
	if (!tap_ok(r != NULL, "%s: ms_tiff_open_read opens it (%s)", label, e.msg))
		return;
	tap_int((long long)ms_tiff_frames(r), pages, "%s: %u pages", label, pages);
	tap_int(ms_tiff_has_timestamps(r), times, "%s: timestamps %s", label, times ? "present" :
		"absent");
	size_t np = (size_t)in->width * in->height, bad = 0, tbad = 0;
	uint16_t *px = malloc(np * 2), *want = malloc(np * 2);
	for (unsigned p = 0; p < pages && p < ms_tiff_frames(r); p++) {
		uint64_t t = 1;
		live_fill(want, np, p / channels, p % channels);
		bad += ms_tiff_read(r, p, px, &t, &e) < 0 || memcmp(px, want, np * 2) != 0;
		tbad += t != (times ? LT0 + p / channels * UINT64_C(1000000) : 0);
	}
	tap_int((long long)bad, 0, "%s: every page's pixels", label);
	tap_int((long long)tbad, 0, "%s: every page has its frame's time%s", label,
		times ? "" : " (none)");
	free(px);
	free(want);
	ms_tiff_close_read(r);
}

/*
 * tifffile's view: series shape and axes, ImageJ channels/frames/images,
 * label count, first and last label, BigTIFF, and the pixels equal to
 * live_fill's.
 */
static void live_tifffile(const char *label, const char *path, const char *want)
{
	char cmd[3000];
	snprintf(cmd, sizeof cmd, PY " - '%s' 2>&1 <<'EOF'\n"
		 "import sys, tifffile, numpy as np\n"
		 "t = tifffile.TiffFile(sys.argv[1]); s = t.series[0]; a = s.asarray()\n"
		 "m = t.imagej_metadata or {}\n"
		 "lab = m.get('Labels', ['-'])\n"
		 "a4 = a.reshape((a.shape[0], -1) + a.shape[-2:])\n"
		 "f, c = np.meshgrid(np.arange(a4.shape[0]), np.arange(a4.shape[1]), indexing='ij')\n"
		 "i = np.arange(a4.shape[2] * a4.shape[3]).reshape(a4.shape[2:])\n"
		 "want = (f[..., None, None] * 1000 + c[..., None, None] * 100 + i).astype(np.uint16)\n"
		 "print(s.shape, s.axes, a.dtype, m.get('images'), m.get('channels'), m.get('frames'), "
		 "len(lab), lab[0], lab[-1], t.is_bigtiff, np.array_equal(a4, want))\n"
		 "EOF\n", path);
	char out[1024];
	tap_str(tap_capture(cmd, out, sizeof out), want, "%s: tifffile", label);
}

/* A child writes, syncs after `synced` frames, writes more, and is killed. */
static bool live_killed(const char *path, const struct ms_frame_info *in, unsigned channels,
			unsigned synced, unsigned more_pages)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		ms_err e;
		struct ms_tiff_wopts o = {.channels = channels, .live = true};
		struct ms_tiff_writer *w = ms_tiff_open_write_opts(path, in, &o, &e);
		if (!w || live_write(w, in, channels, synced, 0, &e) || ms_tiff_sync(w, &e) ||
		    live_write(w, in, channels, 0, more_pages, &e) || fflush(NULL))
			_exit(3);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static void test_live(void)
{
	struct ms_frame_info in = {.width = 10, .height = 8, .fmt = MS_PIX_U16, .nm_per_px = 100};
	ms_err e = {{0}};
	const char *path = tmpfile_path("hyper.tif");
	struct ms_tiff_wopts o = {.channels = 3, .live = true};
	struct ms_tiff_writer *w = ms_tiff_open_write_opts(path, &in, &o, &e);
	int rc = !w || live_write(w, &in, 3, 2, 0, &e) || ms_tiff_sync(w, &e);
	if (w) {
		/* frames 2, 3 after a sync */
		size_t np = 80;
		uint16_t px[80];
		for (unsigned f = 2; f < 4 && !rc; f++)
			for (unsigned c = 0; c < 3 && !rc; c++) {
				live_fill(px, np, f, c);
				rc = ms_tiff_write(w, px, LT0 + f * UINT64_C(1000000), &e);
			}
		tap_int((long long)ms_tiff_written(w), 12, "hyperstack: 12 pages written");
		rc |= ms_tiff_close_write(w, &e);
	}
	tap_int(rc, 0, "hyperstack: live, 4 frames of 3 channels, a sync half-way %s", e.msg);
	size_t n;
	unsigned char *file = slurp(path, &n);
	tap_ok(n > 4 && memcmp(file, "II*\0", 4) == 0, "hyperstack: a small live file is classic");
	free(file);
	live_read("hyperstack", path, &in, 3, 12, true);
	if (have_tifffile())
		live_tifffile("hyperstack", path, "(4, 3, 8, 10) TCYX uint16 12 3 4 4 "
			      "1700000000.000000000 1700000000.003000000 False True");

	path = tmpfile_path("killed.tif");
	tap_ok(live_killed(path, &in, 1, 3, 2), "killed: writer killed after 3 synced frames and 2 "
	       "more");
	live_read("killed", path, &in, 1, 3, false);
	if (have_tifffile())
		live_tifffile("killed", path, "(3, 8, 10) TYX uint16 3 None 3 1 - - False True");

	path = tmpfile_path("killed-hyper.tif");
	tap_ok(live_killed(path, &in, 3, 2, 1), "killed hyperstack: 2 frames of 3 synced, one "
	       "page more");
	live_read("killed hyperstack", path, &in, 3, 6, false);
	if (have_tifffile())
		live_tifffile("killed hyperstack", path, "(2, 3, 8, 10) TCYX uint16 6 3 2 1 - - False True");

	path = tmpfile_path("live-big.tif");
	o = (struct ms_tiff_wopts){.live = true, .bigtiff = true};
	w = ms_tiff_open_write_opts(path, &in, &o, &e);
	rc = !w || live_write(w, &in, 1, 3, 0, &e) || ms_tiff_sync(w, &e);
	rc |= w ? ms_tiff_close_write(w, &e) : -1;
	tap_int(rc, 0, "live BigTIFF on demand: 3 frames %s", e.msg);
	file = slurp(path, &n);
	tap_ok(n > 4 && memcmp(file, "II+\0", 4) == 0, "live BigTIFF: header II+");
	free(file);
	live_read("live BigTIFF", path, &in, 1, 3, true);
	if (have_tifffile())
		live_tifffile("live BigTIFF", path, "(3, 8, 10) TYX uint16 3 None 3 3 "
			      "1700000000.000000000 1700000000.002000000 True True");

	path = tmpfile_path("ragged.tif");
	o = (struct ms_tiff_wopts){.channels = 3, .live = true};
	w = ms_tiff_open_write_opts(path, &in, &o, &e);
	rc = !w || live_write(w, &in, 3, 2, 1, &e);
	e.msg[0] = 0;
	rc = w ? ms_tiff_close_write(w, &e) : 0;
	tap_ok(rc == -1 && strstr(e.msg, "not whole frames") && strstr(e.msg, "ragged.tif"),
	       "7 pages of 3 channels: close says so: %s", e.msg);
	live_read("ragged", path, &in, 3, 7, true);

	/* No frames: no file. */
	path = tmpfile_path("empty-live.tif");
	w = ms_tiff_open_write_opts(path, &in, &o, &e);
	tap_ok(w && ms_tiff_sync(w, &e) == 0, "sync with nothing written is fine");
	tap_ok(ms_tiff_close_write(w, &e) == -1 && access(path, F_OK) != 0,
	       "closing a live file without frames removes it");
}

int main(void)
{
	const char *src = getenv("MS_SRC");
	snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures", src ? src : ".");
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Everything libtiff might print goes to this file, which must stay empty. */
	char errpath[600];
	snprintf(errpath, sizeof errpath, "%s", tmpfile_path("stderr.txt"));
	fflush(stderr);
	int saved_stderr = dup(2);
	int errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(errfd, 2);
	close(errfd);

	/* sniff */
	tap_ok(ms_tiff_sniff("II*\0", 4) && ms_tiff_sniff("MM\0*", 4) && ms_tiff_sniff("II+\0", 4) &&
	       ms_tiff_sniff("MM\0+", 4), "sniff: the four TIFF and BigTIFF headers");
	tap_ok(!ms_tiff_sniff("II*", 3) && !ms_tiff_sniff("MM*\0", 4) && !ms_tiff_sniff("\x89PNG", 4) &&
	       !ms_tiff_sniff("II\0*", 4) && !ms_tiff_sniff("", 0), "sniff: short or other headers");

	/* round trips */
	uint64_t ts[9];
	for (unsigned t = 0; t < 9; t++)
		ts[t] = UINT64_C(1700000000123456789) + t * UINT64_C(1000000001);
	ts[4] = 0;	/* a frame without a time */
	struct ms_frame_info u8 = {.width = 37, .height = 23, .fmt = MS_PIX_U8, .nm_per_px = 107.5};
	struct ms_frame_info u16 = {.width = 64, .height = 48, .fmt = MS_PIX_U16, .nm_per_px = 65.3};
	struct ms_frame_info big = {.width = 31, .height = 17, .fmt = MS_PIX_U16, .nm_per_px = 80};
	struct ms_frame_info plain = {.width = 16, .height = 9, .fmt = MS_PIX_U8, .nm_per_px = 0};
	uint64_t sum8 = round_trip("u8", tmpfile_path("u8.tif"), &u8, 9, 9, ts, "II*\0");
	uint64_t sum16 = round_trip("u16", tmpfile_path("u16.tif"), &u16, 6, 6, ts, "II*\0");
	uint64_t sumbig = round_trip("bigtiff", tmpfile_path("big.tif"), &big, 5, 0, ts, "II+\0");
	round_trip("one frame bigtiff", tmpfile_path("one.tif"), &big, 1, 0, ts, "II+\0");
	round_trip("no scale, no times", tmpfile_path("plain.tif"), &plain, 3, 3, NULL, "II*\0");

	/* fixtures written by tifffile (and ImageJ's one-IFD stack) */
	const uint64_t ts_ij8[] = {UINT64_C(1700000000123456700), UINT64_C(1700000000223456700),
				   UINT64_C(1700000000323456700), UINT64_C(1700000000423456700)};
	const uint64_t ts_ij16[] = {UINT64_C(1700000001000000000), UINT64_C(1700000001250000000),
				    UINT64_C(1700000001500000000), UINT64_C(1700000001750000000), 0};
	const uint64_t ts_be[] = {UINT64_C(1700000100000000000), UINT64_C(1700000100100000000),
				  UINT64_C(1700000100200000000)};
	const uint64_t ts_contig[] = {UINT64_C(1700000200500000000), UINT64_C(1700000201000000000),
				      UINT64_C(1700000202000000001)};
	/*
	 * tifffile stores 1/107.5 as 39953184/4294967295 (107.5 + 3.8e-7) and
	 * 1/65 as 66076420/4294967295 (65 - 7.6e-8); the others are exact.
	 */
	check_fixture("ij-u8.tif", 4, 32, 24, MS_PIX_U8, 107.5, 5e-7, ts_ij8);
	check_fixture("ij-u16.tif", 5, 30, 20, MS_PIX_U16, 65.0, 1e-7, ts_ij16);
	check_fixture("be-u16.tif", 3, 20, 16, MS_PIX_U16, 80.0, 0, ts_be);
	check_fixture("bigtiff-u16.tif", 3, 19, 17, MS_PIX_U16, 1000.0, 0, NULL);
	check_fixture("deflate-u8.tif", 3, 40, 36, MS_PIX_U8, 0, 0, NULL);
	check_fixture("ij-contig-be.tif", 3, 12, 10, MS_PIX_U16, 65.0, 0, ts_contig);

	/* files that must be refused, with the file named */
	check_reject(fixture("rgb.tif"), "RGB", "samples per pixel");
	check_reject(fixture("float.tif"), "float", "floating-point");
	check_reject(fixture("sizes.tif"), "pages of two sizes", "page 1 is 12x10");
	const char *txt = tmpfile_path("notes.tif");
	write_file(txt, "this is not an image\n", 21);
	check_reject(txt, "text file", "not a TIFF");
	const char *empty = tmpfile_path("empty.tif");
	write_file(empty, "", 0);
	check_reject(empty, "empty file", "not a TIFF");
	check_reject(tmpfile_path("missing.tif"), "missing file", "No such file");
	size_t n;
	free(slurp(fixture("ij-u16.tif"), &n));
	check_reject(cut_copy(fixture("ij-u16.tif"), tmpfile_path("cut-ij.tif"), n * 6 / 10),
		     "tifffile stack cut at 60%", "truncated");
	check_reject(cut_copy(fixture("ij-u16.tif"), tmpfile_path("cut-head.tif"), 100),
		     "tifffile stack cut at 100 bytes", "truncated");
	free(slurp(fixture("ij-contig-be.tif"), &n));
	check_reject(cut_copy(fixture("ij-contig-be.tif"), tmpfile_path("cut-contig.tif"), n - 7),
		     "ImageJ one-IFD stack missing 7 bytes", "truncated");
	free(slurp(tmpfile_path("u16.tif"), &n));
	check_reject(cut_copy(tmpfile_path("u16.tif"), tmpfile_path("cut-own.tif"), n - 300),
		     "own file missing its last 300 bytes", "truncated");
	check_reject(fixture("bad-deflate.tif"), "deflate tile with garbled bytes", "corrupt");

	/* writer refusals */
	ms_err e = {{0}};
	struct ms_frame_info none = {.width = 4, .height = 4, .fmt = MS_PIX_NONE};
	tap_ok(!ms_tiff_open_write(tmpfile_path("x.tif"), &none, 1, &e) && strstr(e.msg, "x.tif"),
	       "writer: refuses an unknown pixel format: %s", e.msg);
	struct ms_tiff_writer *w0 = ms_tiff_open_write(tmpfile_path("zero.tif"), &u8, 1, &e);
	struct stat st;
	tap_ok(w0 && ms_tiff_close_write(w0, &e) < 0 && strstr(e.msg, "zero.tif") &&
	       stat(tmpfile_path("zero.tif"), &st) < 0, "writer: zero frames fail and leave no file: %s",
	       e.msg);
	tap_ok(!ms_tiff_open_write("/nonexistent-dir/x.tif", &u8, 1, &e) &&
	       strstr(e.msg, "/nonexistent-dir/x.tif"), "writer: unwritable path: %s", e.msg);

	/* Sequential reading is O(1) a frame: 4000 pages read in order. */
	{
		struct ms_frame_info tiny = {.width = 8, .height = 8, .fmt = MS_PIX_U8, .nm_per_px = 100};
		const char *path = tmpfile_path("many.tif");
		struct ms_tiff_writer *w = ms_tiff_open_write(path, &tiny, 4000, &e);
		unsigned char px[64];
		int rc = w ? 0 : -1;
		for (unsigned t = 0; t < 4000 && rc == 0; t++) {
			memset(px, (int)(t & 0xff), sizeof px);
			rc = ms_tiff_write(w, px, UINT64_C(1600000000000000000) + t * UINT64_C(1000000), &e);
		}
		if (w)
			rc |= ms_tiff_close_write(w, &e);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		struct ms_tiff_reader *r = rc == 0 ? ms_tiff_open_read(path, &e) : NULL;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double open_s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
		size_t bad = r ? 0 : 1;
		uint64_t tn = 0;
		/*
		 * CPU seconds of this process (not wall time, which other
		 * processes on a shared machine stretch) for frames 0-499 and
		 * 3500-3999, the least of three passes.
		 */
		double span[2] = {1e9, 1e9};
		for (int pass = 0; pass < 3; pass++) {
			for (unsigned t = 0; r && t < 4000; t++) {
				if (t == 0 || t == 3500)
					clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
				bad += ms_tiff_read(r, t, px, &tn, &e) < 0 || px[63] != (t & 0xff) ||
				       tn != UINT64_C(1600000000000000000) + t * UINT64_C(1000000);
				if (t == 499 || t == 3999) {
					clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
					double d = (double)(t1.tv_sec - t0.tv_sec) +
						   (t1.tv_nsec - t0.tv_nsec) * 1e-9;
					if (d < span[t == 3999])
						span[t == 3999] = d;
				}
			}
		}
		if (bad)
			tap_diag("%s", e.msg);
		tap_int((long long)bad, 0, "4000 pages: all read in order");
		tap_diag("4000 pages: open %.1f ms; reading frames 0-499 %.2f us/frame, 3500-3999 "
			 "%.2f us/frame", open_s * 1e3, span[0] * 1e6 / 500, span[1] * 1e6 / 500);
		/* Walking from page 0 for every frame makes the late frames ~15x dearer. */
		tap_ok(span[1] < 3 * span[0] + 1e-3, "4000 pages: late frames cost what early ones do "
		       "(ratio %.2f < 3)", span[0] > 0 ? span[1] / span[0] : 0);
		ms_tiff_close_read(r);
	}

	test_live();

	/* libtiff stayed quiet through all of the above */
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	size_t errn;
	char *errtxt = slurp(errpath, &errn);
	tap_int((long long)errn, 0, "nothing was printed on stderr%s%.200s", errn ? ": " : "",
		errn ? errtxt : "");
	free(errtxt);

	/* tifffile reads what ms_tiff_write wrote */
	if (have_tifffile()) {
		char want[512];
		snprintf(want, sizeof want, "(9, 23, 37) uint8 %" PRIu64 " 9 9 1700000000.123456789 "
			 "1700000008.123456797 215/2 nm False 9 True", sum8);
		tifffile_check("u8", tmpfile_path("u8.tif"), want);
		snprintf(want, sizeof want, "(6, 48, 64) uint16 %" PRIu64 " 6 6 1700000000.123456789 "
			 "1700000005.123456794 653/10 nm False 6 True", sum16);
		tifffile_check("u16", tmpfile_path("u16.tif"), want);
		snprintf(want, sizeof want, "(5, 17, 31) uint16 %" PRIu64 " 5 5 1700000000.123456789 "
			 "0.000000000 80/1 nm True 5 True", sumbig);
		tifffile_check("bigtiff", tmpfile_path("big.tif"), want);
	} else {
		tap_ok(1, "# SKIP no tifffile under " PY);
	}
	return tap_done();
}
