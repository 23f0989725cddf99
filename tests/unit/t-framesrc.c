/*
 * t-framesrc: the one reader behind every frame-consuming program. Several
 * TIFFs (written with tiffio) read as one run with continuous sequence
 * numbers and their own timestamps; inputs of different geometry refused
 * up front; a frame stream read from a file, from standard input ("-" or
 * no input, through a pipe put on fd 0), and from a FIFO fed by a forked
 * writer; the mixtures that must be refused, each with its message.
 * Frames in place (ms_framesrc_next_mapped): byte for byte what reading
 * gives, for u8 and u16, classic and BigTIFF, mstk's, tifffile's and
 * hand-laid layouts; the files that cannot be mapped (compressed,
 * big-endian u16, odd offsets) say so and read as before; windows end at
 * file boundaries; a file cut short after opening is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "framesrc.h"
#include "fstream.h"
#include "tiffio.h"
#include "../lib/craft-tiff.h"
#include "../lib/tap.h"

#define T0 UINT64_C(1741944413589793238)

static char *tmp_path(const char *name)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s/%s", tap_tmpdir(), name);
	return strdup(buf);
}

/* The pattern of the frame with this (run-wide) index. */
static void fill(void *px, const struct ms_frame_info *info, uint64_t k)
{
	size_t n = (size_t)info->width * info->height;
	for (size_t i = 0; i < n; i++) {
		if (info->fmt == MS_PIX_U16)
			((uint16_t *)px)[i] = (uint16_t)(k * 1000u + i);
		else
			((uint8_t *)px)[i] = (uint8_t)(k * 17u + i);
	}
}

/* A TIFF of n frames numbered first, first+1, ... with timestamps T0 + 1000 * number. */
static int write_tiff(const char *path, const struct ms_frame_info *info, int n, int first)
{
	ms_err e = { { 0 } };
	struct ms_tiff_writer *w = ms_tiff_open_write(path, info, (uint64_t)n, &e);
	if (!w) {
		tap_diag("%s", e.msg);
		return -1;
	}
	void *px = malloc(ms_frame_bytes(info));
	for (int i = 0; i < n; i++) {
		fill(px, info, (uint64_t)(first + i));
		ms_tiff_write(w, px, T0 + 1000u * (uint64_t)(first + i), &e);
	}
	free(px);
	return ms_tiff_close_write(w, &e);
}

/* Write a frame stream of n frames (camera seq 10 + 3k) to fd. */
static int write_stream(int fd, const struct ms_frame_info *info, int n, int end)
{
	ms_err e = { { 0 } };
	struct ms_fwriter *w = ms_fwriter_open(fd, info, "out", &e);
	if (!w)
		return -1;
	void *px = malloc(ms_frame_bytes(info));
	for (int k = 0; k < n; k++) {
		fill(px, info, (uint64_t)k);
		struct ms_frame f = { 10 + 3 * (uint64_t)k, T0 + (uint64_t)k, *info, px };
		ms_fwriter_put(w, &f, &e);
	}
	free(px);
	if (!end) {
		ms_fwriter_abandon(w);
		return 0;
	}
	return ms_fwriter_close(w, &e);
}

/* Read a stream source to its end; check frames against write_stream's. */
static void check_stream(struct ms_framesrc *s, const struct ms_frame_info *info, int n,
                         const char *what)
{
	const struct ms_frame_info *si = ms_framesrc_info(s);
	tap_ok(si->width == info->width && si->height == info->height && si->fmt == info->fmt,
	       "%s: geometry from the stream header", what);
	tap_int(ms_framesrc_total(s), -1, "%s: a stream's total is unknown", what);
	void *want = malloc(ms_frame_bytes(info));
	struct ms_frame f;
	ms_err e = { { 0 } };
	int k = 0, bad = 0, rc;
	while ((rc = ms_framesrc_next(s, &f, &e)) == 1) {
		fill(want, info, (uint64_t)k);
		if (f.seq != 10 + 3 * (uint64_t)k || f.t_ns != T0 + (uint64_t)k ||
		    memcmp(f.pixels, want, ms_frame_bytes(info)) != 0)
			bad++;
		k++;
	}
	tap_int(rc, 0, "%s: ends properly", what);
	if (rc)
		tap_diag("%s", e.msg);
	tap_int(k, n, "%s: every frame", what);
	tap_int(bad, 0, "%s: camera seq, t_ns and pixels kept", what);
	free(want);
}

static void test_tiffs(void)
{
	struct ms_frame_info info = { 5, 4, MS_PIX_U16, 0 };
	char *a = tmp_path("a.tif"), *b = tmp_path("b.tif"), *c = tmp_path("c.tif");
	int nper[3] = { 2, 3, 1 };
	tap_ok(write_tiff(a, &info, 2, 0) == 0 && write_tiff(b, &info, 3, 2) == 0 &&
	       write_tiff(c, &info, 1, 5) == 0, "three TIFFs of 2, 3 and 1 frames written");
	char *paths[] = { a, b, c };
	ms_err e = { { 0 } };
	struct ms_framesrc *s = ms_framesrc_open(paths, 3, &e);
	if (!tap_ok(s != NULL, "three TIFFs open as one source")) {
		tap_diag("%s", e.msg);
		return;
	}
	tap_int(ms_framesrc_total(s), 6, "total is the sum of the files' frames");
	const struct ms_frame_info *si = ms_framesrc_info(s);
	tap_ok(si->width == 5 && si->height == 4 && si->fmt == MS_PIX_U16, "geometry is 5x4 u16");
	tap_ok(ms_framesrc_ready(s), "a file source is always ready");
	struct ms_frame f;
	uint16_t want[20];
	int k = 0, bad = 0, bad_name = 0, rc;
	while ((rc = ms_framesrc_next(s, &f, &e)) == 1) {
		fill(want, &info, (uint64_t)k);
		if (f.seq != (uint64_t)k || f.t_ns != T0 + 1000u * (uint64_t)k ||
		    f.info.width != 5 || f.info.height != 4 || memcmp(f.pixels, want, sizeof want) != 0) {
			bad++;
			tap_diag("frame %d: seq %llu t_ns %llu", k, (unsigned long long)f.seq,
			         (unsigned long long)f.t_ns);
		}
		const char *file = k < nper[0] ? a : k < nper[0] + nper[1] ? b : c;
		if (strcmp(ms_framesrc_name(s), file) != 0)
			bad_name++;
		k++;
	}
	tap_int(rc, 0, "the run ends with 0");
	tap_int(k, 6, "6 frames across the files");
	tap_int(bad, 0, "seq counts 0..5 across files; each frame has its own time and pixels");
	tap_int(bad_name, 0, "ms_framesrc_name names the file each frame came from");
	tap_int(ms_framesrc_next(s, &f, &e), 0, "after the end, 0 again");
	ms_framesrc_close(s);

	/* The same file twice is a run of twice the frames. */
	char *twice[] = { b, b };
	s = ms_framesrc_open(twice, 2, &e);
	tap_int(s ? ms_framesrc_total(s) : -2, 6, "the same file twice counts twice");
	k = 0;
	while (s && ms_framesrc_next(s, &f, &e) == 1)
		k++;
	tap_int(k, 6, "and reads twice");
	ms_framesrc_close(s);

	/* Mixed geometry is refused before any frame is read. */
	struct ms_frame_info wide = { 6, 4, MS_PIX_U16, 0 }, u8 = { 5, 4, MS_PIX_U8, 0 };
	char *d = tmp_path("wide.tif"), *g = tmp_path("u8.tif");
	write_tiff(d, &wide, 1, 0);
	write_tiff(g, &u8, 1, 0);
	char *mixed[] = { a, d };
	tap_ok(ms_framesrc_open(mixed, 2, &e) == NULL, "a wider second TIFF is refused");
	char msg[2048];
	snprintf(msg, sizeof msg, "%s: frames are 6x4 u16, but %s has 5x4 u16", d, a);
	tap_str(e.msg, msg, "naming both files and both geometries");
	char *mixed2[] = { a, b, g };
	tap_ok(ms_framesrc_open(mixed2, 3, &e) == NULL, "a third TIFF of another pixel format is refused");
	snprintf(msg, sizeof msg, "%s: frames are 5x4 u8, but %s has 5x4 u16", g, a);
	tap_str(e.msg, msg, "naming the formats");

	/* One bad file among good ones fails at open, not hours later. */
	char *broken = tmp_path("broken.tif");
	FILE *fp = fopen(broken, "w");
	fwrite("II*\0\x08\0\0\0", 1, 8, fp);	/* a TIFF header pointing at nothing */
	fclose(fp);
	char *withbad[] = { a, b, broken };
	tap_ok(ms_framesrc_open(withbad, 3, &e) == NULL, "a broken last TIFF fails the open");
	tap_ok(strstr(e.msg, broken) != NULL, "the message names it: %s", e.msg);
	free(broken);
	free(a);
	free(b);
	free(c);
	free(d);
	free(g);
}

static void test_stream_file(void)
{
	struct ms_frame_info info = { 7, 3, MS_PIX_U8, 0 };
	char *p = tmp_path("run.msf");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	write_stream(fd, &info, 4, 1);
	close(fd);
	char *paths[] = { p };
	ms_err e = { { 0 } };
	struct ms_framesrc *s = ms_framesrc_open(paths, 1, &e);
	if (tap_ok(s != NULL, "a frame stream file opens by path")) {
		tap_str(ms_framesrc_name(s), p, "its name is its path");
		check_stream(s, &info, 4, "stream file");
		ms_framesrc_close(s);
	} else {
		tap_diag("%s", e.msg);
	}

	/* A truncated stream file: the frames, then an error. */
	char *q = tmp_path("cut.msf");
	fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	write_stream(fd, &info, 2, 0);
	close(fd);
	char *cut[] = { q };
	s = ms_framesrc_open(cut, 1, &e);
	struct ms_frame f;
	int k = 0, rc;
	while ((rc = ms_framesrc_next(s, &f, &e)) == 1)
		k++;
	tap_int(rc, -1, "a truncated stream file ends in an error");
	tap_int(k, 2, "after its 2 frames");
	char want[1024];
	snprintf(want, sizeof want, "%s: truncated frame stream: it ends after 2 frames without an end record", q);
	tap_str(e.msg, want, "the message names the file");
	ms_framesrc_close(s);

	/* A stream must be the only input, in either position. */
	char *tif = tmp_path("one.tif");
	struct ms_frame_info t = { 7, 3, MS_PIX_U8, 0 };
	write_tiff(tif, &t, 1, 0);
	char *mix1[] = { tif, p }, *mix2[] = { p, tif };
	tap_ok(ms_framesrc_open(mix1, 2, &e) == NULL, "a TIFF then a stream is refused");
	snprintf(want, sizeof want, "%s: a frame stream must be the only input", p);
	tap_str(e.msg, want, "saying the stream must be alone");
	tap_ok(ms_framesrc_open(mix2, 2, &e) == NULL, "a stream then a TIFF is refused");
	tap_str(e.msg, want, "saying the same");
	free(tif);
	free(p);
	free(q);
}

static void test_stdin(void)
{
	struct ms_frame_info info = { 4, 4, MS_PIX_U16, 0 };
	int saved = dup(STDIN_FILENO);
	for (int variant = 0; variant < 2; variant++) {
		int p[2];
		if (pipe(p) < 0)
			abort();
		write_stream(p[1], &info, 3, 1);	/* 3 small frames fit in the pipe */
		close(p[1]);
		dup2(p[0], STDIN_FILENO);
		close(p[0]);
		char *dash[] = { "-" };
		ms_err e = { { 0 } };
		struct ms_framesrc *s = variant == 0 ? ms_framesrc_open(dash, 1, &e)
		                                     : ms_framesrc_open(NULL, 0, &e);
		const char *what = variant == 0 ? "'-'" : "no input";
		if (tap_ok(s != NULL, "%s reads standard input", what)) {
			tap_str(ms_framesrc_name(s), "standard input", "%s: named 'standard input'", what);
			check_stream(s, &info, 3, what);
			ms_framesrc_close(s);
		} else {
			tap_diag("%s", e.msg);
		}
		dup2(saved, STDIN_FILENO);
	}
	close(saved);

	char *tif = tmp_path("s.tif");
	write_tiff(tif, &info, 1, 0);
	char *a[] = { tif, "-" }, *b[] = { "-", tif }, *c[] = { "-", "-" };
	ms_err e;
	tap_ok(ms_framesrc_open(a, 2, &e) == NULL, "a TIFF and '-' are refused");
	tap_str(e.msg, "standard input ('-') must be the only input", "'-' must be alone");
	tap_ok(ms_framesrc_open(b, 2, &e) == NULL, "'-' and a TIFF are refused");
	tap_str(e.msg, "standard input ('-') must be the only input", "'-' must be alone, first too");
	tap_ok(ms_framesrc_open(c, 2, &e) == NULL, "'-' twice is refused");
	free(tif);
}

static void test_fifo(void)
{
	struct ms_frame_info info = { 64, 48, MS_PIX_U16, 0 };
	char *fifo = tmp_path("frames.fifo");
	if (mkfifo(fifo, 0600) < 0) {
		tap_ok(0, "mkfifo: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(fifo, O_WRONLY);
		/* 20 frames of 6 KB: more than a pipe holds, so the two really take turns. */
		_exit(fd < 0 || write_stream(fd, &info, 20, 1) < 0 ? 3 : 0);
	}
	char *paths[] = { fifo };
	ms_err e = { { 0 } };
	struct ms_framesrc *s = ms_framesrc_open(paths, 1, &e);
	if (tap_ok(s != NULL, "a FIFO path is read as a frame stream")) {
		check_stream(s, &info, 20, "FIFO");
		tap_ok(ms_framesrc_ready(s), "after the end, ready");
		ms_framesrc_close(s);
	} else {
		tap_diag("%s", e.msg);
		kill(pid, SIGKILL);
	}
	int st;
	waitpid(pid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the FIFO writer succeeded");
	free(fifo);
}

static void test_unknown(void)
{
	ms_err e;
	char want[1024];
	char *txt = tmp_path("notes.txt");
	FILE *f = fopen(txt, "w");
	fputs("hello, these are not frames\n", f);
	fclose(f);
	char *p1[] = { txt };
	tap_ok(ms_framesrc_open(p1, 1, &e) == NULL, "a text file is refused");
	snprintf(want, sizeof want, "%s: neither a TIFF nor a frame stream", txt);
	tap_str(e.msg, want, "as neither a TIFF nor a frame stream");

	char *empty = tmp_path("empty");
	f = fopen(empty, "w");
	fclose(f);
	char *p2[] = { empty };
	tap_ok(ms_framesrc_open(p2, 1, &e) == NULL, "an empty file is refused");
	snprintf(want, sizeof want, "%s: empty file, neither a TIFF nor a frame stream", empty);
	tap_str(e.msg, want, "as empty");

	char *missing = tmp_path("missing.tif");
	char *tif = tmp_path("u.tif");
	struct ms_frame_info info = { 4, 4, MS_PIX_U8, 0 };
	write_tiff(tif, &info, 1, 0);
	char *p3[] = { tif, missing };
	tap_ok(ms_framesrc_open(p3, 2, &e) == NULL, "a missing second file is refused at open");
	snprintf(want, sizeof want, "cannot open '%s': No such file or directory", missing);
	tap_str(e.msg, want, "with the path and the reason");

	char *p4[] = { (char *)tap_tmpdir() };
	tap_ok(ms_framesrc_open(p4, 1, &e) == NULL, "a directory is refused");
	snprintf(want, sizeof want, "%s: is a directory, neither a TIFF nor a frame stream", tap_tmpdir());
	tap_str(e.msg, want, "as a directory");
	char *p5[] = { tif, (char *)tap_tmpdir() };
	tap_ok(ms_framesrc_open(p5, 2, &e) == NULL, "a directory after a TIFF is refused");
	tap_str(e.msg, want, "as a directory, not as a stream that must be alone");
	free(txt);
	free(empty);
	free(missing);
	free(tif);
}

/*
 * Read paths twice, by ms_framesrc_next_into and by ms_framesrc_next_mapped
 * with windows of `window` frames (falling back to reading what cannot be
 * mapped), and compare every frame, seq and t_ns, including the frames of
 * each window once it is full (they must stay valid while the source
 * moves on). Returns how many frames came mapped, or -1.
 */
static long compare_mapped(char **paths, int npaths, size_t window, const char *what)
{
	ms_err e = { { 0 } };
	struct ms_framesrc *a = ms_framesrc_open(paths, npaths, &e);
	struct ms_framesrc *b = a ? ms_framesrc_open(paths, npaths, &e) : NULL;
	if (!tap_ok(a && b, "%s: opens (%s)", what, e.msg)) {
		ms_framesrc_close(a);
		return -1;
	}
	size_t fb = ms_frame_bytes(ms_framesrc_info(a));
	int64_t total = ms_framesrc_total(a);
	unsigned char *want = malloc((size_t)total * fb);
	unsigned char *copy = malloc(fb);
	const unsigned char **held = calloc(window, sizeof *held);
	size_t *held_k = calloc(window, sizeof *held_k);
	struct ms_framemap m = { 0 };
	size_t nheld = 0;
	long mapped = 0, bad = 0, k = 0;
	int ra, rb = 1;
	struct ms_frame fa, fbm;
	while ((ra = ms_framesrc_next_into(a, &fa, want + (size_t)k * fb, &e)) == 1) {
		rb = ms_framesrc_next_mapped(b, &fbm, &m, window * fb, &e);
		if (rb == 2 && m.base) {
			/* a full window: its frames are still there */
			for (size_t i = 0; i < nheld; i++)
				bad += memcmp(held[i], want + held_k[i] * fb, fb) != 0;
			ms_framemap_release(&m);
			nheld = 0;
			rb = ms_framesrc_next_mapped(b, &fbm, &m, window * fb, &e);
		}
		if (rb == 2) {
			rb = ms_framesrc_next_into(b, &fbm, copy, &e);
		} else if (rb == 1) {
			mapped++;
			if (nheld < window) {
				held[nheld] = fbm.pixels;
				held_k[nheld++] = (size_t)k;
			} else {
				bad++;	/* more frames in a window than it was made for */
			}
		}
		if (rb != 1)
			break;
		bad += memcmp(fbm.pixels, want + (size_t)k * fb, fb) != 0 || fbm.seq != fa.seq ||
		       fbm.t_ns != fa.t_ns;
		k++;
	}
	for (size_t i = 0; i < nheld; i++)
		bad += memcmp(held[i], want + held_k[i] * fb, fb) != 0;
	tap_ok(ra == 0 && rb == 1 && k == total, "%s: all %ld frames both ways (%s)", what, k, e.msg);
	tap_int(bad, 0, "%s: mapped frames are byte for byte what reading gives", what);
	ms_framemap_release(&m);
	tap_ok(m.base == NULL, "%s: a released window is empty", what);
	tap_int(ms_framesrc_next_mapped(b, &fbm, &m, fb, &e), 0, "%s: 0 at the end", what);
	free(want);
	free(copy);
	free(held);
	free(held_k);
	ms_framesrc_close(a);
	ms_framesrc_close(b);
	return mapped;
}

static void test_mapped(void)
{
	const char *src = getenv("MS_SRC");
	char fix[512];
	snprintf(fix, sizeof fix, "%s/tests/fixtures", src ? src : ".");
	static const struct {
		const char *name;
		long frames, mapped;	/* mapped: -1 all */
	} fixtures[] = {
		{ "ij-u8.tif", 4, -1 },		/* tifffile, ImageJ form */
		{ "ij-u16.tif", 5, -1 },
		{ "bigtiff-u16.tif", 3, -1 },	/* several strips per page */
		{ "be-u16.tif", 3, 0 },		/* big-endian: must be swapped */
		{ "ij-contig-be.tif", 3, 0 },
		{ "deflate-u8.tif", 3, 0 },	/* compressed tiles */
	};
	for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
		char path[600];
		snprintf(path, sizeof path, "%s/%s", fix, fixtures[i].name);
		char *paths[] = { path };
		long got = compare_mapped(paths, 1, 2, fixtures[i].name);
		long want = fixtures[i].mapped < 0 ? fixtures[i].frames : fixtures[i].mapped;
		tap_int(got, want, "%s: %ld of %ld frames mapped", fixtures[i].name, want,
		        fixtures[i].frames);
	}

	/* mstk's writer: classic u8 and u16, BigTIFF u16; two files as one run */
	struct ms_frame_info i8 = { 33, 17, MS_PIX_U8, 0 }, i16 = { 40, 30, MS_PIX_U16, 0 };
	char *m8 = tmp_path("m8.tif"), *m16a = tmp_path("m16a.tif"), *m16b = tmp_path("m16b.tif");
	char *mbig = tmp_path("mbig.tif");
	write_tiff(m8, &i8, 9, 0);
	write_tiff(m16a, &i16, 7, 0);
	write_tiff(m16b, &i16, 5, 7);
	ms_err e = { { 0 } };
	struct ms_tiff_wopts o = { .bigtiff = true };
	struct ms_tiff_writer *w = ms_tiff_open_write_opts(mbig, &i16, &o, &e);
	uint16_t px[40 * 30];
	for (int k = 0; k < 6; k++) {
		fill(px, &i16, (uint64_t)k);
		ms_tiff_write(w, px, T0 + (uint64_t)k, &e);
	}
	tap_ok(ms_tiff_close_write(w, &e) == 0, "a BigTIFF written (%s)", e.msg);
	char *p8[] = { m8 }, *p16[] = { m16a, m16b }, *pbig[] = { mbig };
	tap_int(compare_mapped(p8, 1, 4, "mstk u8"), 9, "mstk u8: every frame mapped");
	tap_int(compare_mapped(p16, 2, 3, "mstk u16, two files"), 12,
	        "mstk u16, two files: every frame mapped");
	tap_int(compare_mapped(p16, 2, 100, "two files, one big window"), 12,
	        "a window never spans two files");
	tap_int(compare_mapped(pbig, 1, 2, "mstk BigTIFF"), 6, "mstk BigTIFF: every frame mapped");

	/* hand-laid: directories between the pages, odd offsets, ImageJ's one-directory stack */
	char *c16 = tmp_path("c16.tif"), *c16odd = tmp_path("c16odd.tif");
	char *c8odd = tmp_path("c8odd.tif"), *cij = tmp_path("cij.tif");
	craft_tiff(c16, 24, 10, 16, 8, 0, 0);
	craft_tiff(c16odd, 24, 10, 16, 8, 0x2c, 0);
	craft_tiff(c8odd, 24, 10, 8, 8, 0xff, 0);
	craft_tiff(cij, 24, 10, 16, 8, 0, 1);
	char *pc16[] = { c16 }, *pc16odd[] = { c16odd }, *pc8odd[] = { c8odd }, *pcij[] = { cij };
	tap_int(compare_mapped(pc16, 1, 3, "directories between pages"), 8,
	        "directories between pages: every frame mapped");
	tap_int(compare_mapped(pc16odd, 1, 3, "u16 at odd offsets"), 5,
	        "u16 at odd offsets: those 3 read, the other 5 mapped");
	tap_int(compare_mapped(pc8odd, 1, 3, "u8 at odd offsets"), 8,
	        "u8 at odd offsets: every frame mapped");
	tap_int(compare_mapped(pcij, 1, 3, "ImageJ one-directory stack"), 8,
	        "ImageJ one-directory stack: every frame mapped");
	tap_int(compare_mapped(pc16, 1, 1, "windows of one frame"), 8,
	        "windows of one frame: every frame mapped");

	/* the craft's pixels are what its formula says */
	struct ms_framesrc *s = ms_framesrc_open(pc16odd, 1, &e);
	struct ms_frame f;
	struct ms_framemap m = { 0 };
	int bad = 0;
	for (unsigned t = 0; s && t < 8; t++) {
		int rc = ms_framesrc_next_mapped(s, &f, &m, 1u << 20, &e);
		if (rc == 2)
			rc = ms_framesrc_next_into(s, &f, px, &e);
		for (unsigned y = 0; rc == 1 && y < 10; y++)
			for (unsigned x = 0; x < 24; x++)
				bad += ((const uint16_t *)f.pixels)[y * 24 + x] != craft_px(t, y, x);
		bad += rc != 1;
	}
	tap_int(bad, 0, "a hand-laid file reads as laid, mapped or not");
	ms_framemap_release(&m);
	ms_framesrc_close(s);

	/*
	 * No address space left for a window: the frame is read instead. In a
	 * child, whose address space is capped at what it has.
	 */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct ms_framesrc *cs = ms_framesrc_open(p16, 1, &e);
		static uint16_t buf[40 * 30], want0[40 * 30];
		fill(want0, &i16, 0);
		struct ms_framemap cm = { 0 };
		FILE *st = fopen("/proc/self/status", "r");
		char line[256];
		long vm = 0;
		while (st && fgets(line, sizeof line, st))
			if (sscanf(line, "VmSize: %ld kB", &vm) == 1)
				break;
		fclose(st);
		struct rlimit rl = { (rlim_t)vm * 1024, (rlim_t)vm * 1024 };
		if (!cs || vm <= 0 || setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(3);
		int r2 = ms_framesrc_next_mapped(cs, &f, &cm, 1u << 20, &e);
		int r1 = ms_framesrc_next_into(cs, &f, buf, &e);
		_exit(r2 == 2 && cm.base == NULL && r1 == 1 && !memcmp(buf, want0, sizeof buf) ? 0 : 1);
	}
	int wst = 0;
	waitpid(pid, &wst, 0);
	tap_ok(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
	       "a file that cannot be mapped is read instead (status %d)", WEXITSTATUS(wst));

	/* a stream cannot be mapped */
	char *sp = tmp_path("m.frames");
	int fd = open(sp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write_stream(fd, &i8, 2, 1);
	close(fd);
	char *ps[] = { sp };
	s = ms_framesrc_open(ps, 1, &e);
	tap_int(s ? ms_framesrc_next_mapped(s, &f, &m, 1u << 20, &e) : -9, 2,
	        "a frame stream's frames are not mapped");
	tap_int(s ? ms_framesrc_next_into(s, &f, px, &e) : -9, 1, "and read as before");
	ms_framesrc_close(s);

	/* cut short after opening: an error, as for a read, not a SIGBUS */
	s = ms_framesrc_open(p16, 1, &e);
	int rc1 = s ? ms_framesrc_next_mapped(s, &f, &m, 7 * 2400, &e) : -9;
	struct ms_tiff_reader *r = ms_tiff_open_read(m16a, &e);
	uint64_t off0 = r ? ms_tiff_frame_offset(r, 0) : 0;
	ms_tiff_close_read(r);
	/* the pixels are back to back: cut in the middle of frame 3 */
	tap_ok(rc1 == 1 && off0 > 0 && truncate(m16a, (off_t)(off0 + 3 * 2400 + 1000)) == 0,
	       "a file mapped, then cut short");
	int rc = 1, k = 1;
	while (rc == 1 && k < 7) {
		rc = ms_framesrc_next_mapped(s, &f, &m, 7 * 2400, &e);
		k += rc == 1;
	}
	tap_int(rc, -1, "the frame cut short is an error");
	tap_int(k, 3, "after the frames before it");
	tap_ok(strstr(e.msg, "truncated") && strstr(e.msg, m16a), "naming the file: %s", e.msg);
	ms_framemap_release(&m);
	ms_framesrc_close(s);
	free(m8);
	free(m16a);
	free(m16b);
	free(mbig);
	free(c16);
	free(c16odd);
	free(c8odd);
	free(cij);
	free(sp);
}

int main(void)
{
	test_mapped();
	test_tiffs();
	test_stream_file();
	test_stdin();
	test_fifo();
	test_unknown();
	return tap_done();
}
