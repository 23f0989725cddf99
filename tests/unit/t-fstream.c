/*
 * t-fstream: the frame stream's inline transport (the shm transport is in
 * t-shmring.c). The writer's bytes are compared with the layout of
 * ms-formats(5) built here byte by byte; frames make a round trip through
 * a pipe between two processes; and the reader is fed streams cut at every
 * byte and streams broken one field at a time, each of which must fail
 * with its own message after handing on exactly the complete frames.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fstream.h"
#include "../lib/tap.h"

#define T0 UINT64_C(1700000000123456789)

static bool host_little(void)
{
	const uint16_t one = 1;
	return *(const unsigned char *)&one == 1;
}

/* An explicitly little-endian record header, as ms-formats(5) lays it out. */
static size_t put_rec(unsigned char *p, uint32_t kind, uint64_t seq, uint64_t t_ns, uint64_t payload)
{
	memcpy(p, "MSFR", 4);
	for (int i = 0; i < 4; i++)
		p[4 + i] = (unsigned char)(kind >> (8 * i));
	for (int i = 0; i < 8; i++) {
		p[8 + i] = (unsigned char)(seq >> (8 * i));
		p[16 + i] = (unsigned char)(t_ns >> (8 * i));
		p[24 + i] = (unsigned char)(payload >> (8 * i));
	}
	return 32;
}

static void fill(void *px, const struct ms_frame_info *info, uint64_t seq)
{
	size_t n = (size_t)info->width * info->height;
	for (size_t i = 0; i < n; i++) {
		if (info->fmt == MS_PIX_U16)
			((uint16_t *)px)[i] = (uint16_t)(seq * 7919u + i * 3u);
		else
			((uint8_t *)px)[i] = (uint8_t)(seq * 31u + i);
	}
}

/* Whole contents of a file descriptor (read to EOF); *n its length. */
static unsigned char *slurp(int fd, size_t *n)
{
	size_t cap = 1 << 16, len = 0;
	unsigned char *buf = malloc(cap);
	for (;;) {
		if (len == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	*n = len;
	return buf;
}

/* A pipe holding exactly these bytes, its write end closed: returns the read end. */
static int pipe_of(const void *buf, size_t n)
{
	int p[2];
	if (pipe(p) < 0)
		abort();
	if (n > 0 && write(p[1], buf, n) != (ssize_t)n)
		abort();
	close(p[1]);
	return p[0];
}

/* The stream a writer makes of nframes frames, through a temporary file. */
static unsigned char *make_stream(const struct ms_frame_info *info, int nframes, size_t *n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/stream-%d", tap_tmpdir(), nframes);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ms_err e = { { 0 } };
	struct ms_fwriter *w = ms_fwriter_open(fd, info, path, &e);
	unsigned char *px = malloc(ms_frame_bytes(info));
	for (int i = 0; i < nframes; i++) {
		fill(px, info, (uint64_t)i * 3 + 1);
		struct ms_frame f = { (uint64_t)i * 3 + 1, T0 + (uint64_t)i * 1000, *info, px };
		ms_fwriter_put(w, &f, &e);
	}
	ms_fwriter_close(w, &e);
	free(px);
	lseek(fd, 0, SEEK_SET);
	unsigned char *buf = slurp(fd, n);
	close(fd);
	return buf;
}

/*
 * Read everything from fd: returns the last ms_freader_next result (or -2
 * if the open failed), the frames delivered in *frames, the message in e.
 */
static int read_all(int fd, int *frames, ms_err *e)
{
	*frames = 0;
	e->msg[0] = '\0';
	struct ms_freader *r = ms_freader_open(fd, "s", e);
	if (!r)
		return -2;
	struct ms_frame f;
	int rc;
	while ((rc = ms_freader_next(r, &f, e)) == 1)
		(*frames)++;
	ms_freader_close(r);
	return rc;
}

static int read_bytes(const void *buf, size_t n, int *frames, ms_err *e)
{
	int fd = pipe_of(buf, n);
	int rc = read_all(fd, frames, e);
	close(fd);
	return rc;
}

static void test_header_bytes(void)
{
	if (!host_little()) {
		tap_diag("big-endian host: the byte layout checks assume little-endian");
		return;
	}
	struct ms_frame_info info = { 3, 2, MS_PIX_U16, 100 };
	size_t n;
	unsigned char *got = make_stream(&info, 1, &n);
	unsigned char want[512];
	const char *hdr = "MSFRAMES 1\nWIDTH 3\nHEIGHT 2\nFORMAT u16\nNM_PER_PX 100\n"
	                  "ENDIAN little\nTRANSPORT inline\nENDHDR\n";
	size_t m = strlen(hdr);
	memcpy(want, hdr, m);
	m += put_rec(want + m, 1, 1, T0, 12);
	uint16_t px[6];
	fill(px, &info, 1);
	for (int i = 0; i < 6; i++) {
		want[m++] = (unsigned char)(px[i] & 0xff);
		want[m++] = (unsigned char)(px[i] >> 8);
	}
	m += put_rec(want + m, 2, 1, T0, 0);
	tap_int((long long)n, (long long)m, "a one-frame 3x2 u16 stream is %zu bytes", m);
	tap_ok(n == m && memcmp(got, want, m) == 0,
	       "header, frame record (u16 little-endian pixels) and end record are byte-exact");
	free(got);

	/* No frames: the end record's count and time are 0. */
	info = (struct ms_frame_info){ 512, 256, MS_PIX_U8, 0.1 };
	got = make_stream(&info, 0, &n);
	hdr = "MSFRAMES 1\nWIDTH 512\nHEIGHT 256\nFORMAT u8\nNM_PER_PX 0.10000000000000001\n"
	      "ENDIAN little\nTRANSPORT inline\nENDHDR\n";
	m = strlen(hdr);
	memcpy(want, hdr, m);
	m += put_rec(want + m, 2, 0, 0, 0);
	tap_ok(n == m && memcmp(got, want, m) == 0,
	       "an empty stream: header with 17 digits of NM_PER_PX, then an end record of 0, 0");
	if (n != m || memcmp(got, want, m))
		tap_diag("got %.*s", (int)n, (const char *)got);
	free(got);

	/* Equal inputs give equal streams: the end record does not read the clock. */
	info = (struct ms_frame_info){ 4, 3, MS_PIX_U8, 0 };
	size_t n1, n2;
	unsigned char *a = make_stream(&info, 3, &n1);
	unsigned char *b = make_stream(&info, 3, &n2);
	tap_ok(n1 == n2 && memcmp(a, b, n1) == 0, "two writes of the same frames are byte-identical");
	unsigned char end[32];
	put_rec(end, 2, 3, T0 + 2000, 0);
	tap_ok(n1 >= 32 && memcmp(a + n1 - 32, end, 32) == 0,
	       "the end record holds the frame count and the last frame's time");
	free(a);
	free(b);
}

/* The writer half of the round trip: runs in a child, on the pipe's write end. */
static void write_frames(int fd, const struct ms_frame_info *info, int nframes)
{
	ms_err e = { { 0 } };
	struct ms_fwriter *w = ms_fwriter_open(fd, info, "pipe", &e);
	if (!w)
		_exit(3);
	void *px = malloc(ms_frame_bytes(info));
	for (int i = 0; i < nframes; i++) {
		uint64_t seq = (uint64_t)i * 3 + 1;
		fill(px, info, seq);
		struct ms_frame f = { seq, T0 + seq * 1000, *info, px };
		if (ms_fwriter_put(w, &f, &e) < 0)
			_exit(4);
	}
	free(px);
	_exit(ms_fwriter_close(w, &e) < 0 ? 5 : 0);
}

static void test_round_trip(enum ms_pixfmt fmt, uint32_t width, uint32_t height, int nframes)
{
	struct ms_frame_info info = { width, height, fmt, 65.5 };
	int p[2];
	if (pipe(p) < 0)
		abort();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		write_frames(p[1], &info, nframes);
	}
	close(p[1]);
	ms_err e = { { 0 } };
	struct ms_freader *r = ms_freader_open(p[0], "pipe", &e);
	const char *fn = ms_pixfmt_name(fmt);
	if (!tap_ok(r != NULL, "%s: reader opens the pipe", fn)) {
		tap_diag("%s", e.msg);
		close(p[0]);
		waitpid(pid, NULL, 0);
		return;
	}
	const struct ms_frame_info *ri = ms_freader_info(r);
	tap_ok(ri->width == width && ri->height == height && ri->fmt == fmt && ri->nm_per_px == 65.5,
	       "%s: header gives %ux%u %s at 65.5 nm/px", fn, width, height, fn);
	tap_str(ms_freader_transport(r), "inline", "%s: transport is inline", fn);
	void *want = malloc(ms_frame_bytes(&info));
	int i = 0, bad = 0, rc;
	struct ms_frame f;
	while ((rc = ms_freader_next(r, &f, &e)) == 1) {
		uint64_t seq = (uint64_t)i * 3 + 1;
		fill(want, &info, seq);
		if (f.seq != seq || f.t_ns != T0 + seq * 1000 || f.info.width != width ||
		    f.info.height != height || f.info.fmt != fmt ||
		    memcmp(f.pixels, want, ms_frame_bytes(&info)) != 0)
			bad++;
		i++;
	}
	tap_int(rc, 0, "%s: the stream ends properly", fn);
	tap_int(i, nframes, "%s: every frame arrives", fn);
	tap_int(bad, 0, "%s: every frame has its seq, t_ns and pixels", fn);
	tap_int((long long)ms_freader_count(r), nframes, "%s: ms_freader_count", fn);
	tap_int((long long)ms_freader_dropped(r), 0, "%s: nothing dropped", fn);
	tap_int(ms_freader_next(r, &f, &e), 0, "%s: after the end, next keeps returning 0", fn);
	ms_freader_close(r);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the writer process succeeded", fn);
	free(want);
}

static void test_truncation(void)
{
	struct ms_frame_info info = { 4, 3, MS_PIX_U8, 0 };
	size_t n;
	unsigned char *s = make_stream(&info, 2, &n);
	size_t hdr = (size_t)((unsigned char *)memmem(s, n, "ENDHDR\n", 7) - s) + 7;
	size_t rec = 32 + 12;
	tap_int((long long)n, (long long)(hdr + 2 * rec + 32), "the small stream is header + 2 frames + end");
	int bad = 0, wrong_frames = 0, wrong_msg = 0;
	for (size_t cut = 0; cut < n; cut++) {
		int frames;
		ms_err e;
		int rc = read_bytes(s, cut, &frames, &e);
		int complete = cut < hdr ? 0 : (int)((cut - hdr) / rec);
		if (complete > 2)
			complete = 2;
		if (rc >= 0 || !e.msg[0]) {
			bad++;
			tap_diag("cut at %zu: rc %d, message '%s'", cut, rc, e.msg);
		}
		if (frames != complete) {
			wrong_frames++;
			tap_diag("cut at %zu: %d frames, want %d", cut, frames, complete);
		}
		/* Every message names the input and says what is wrong. */
		if (strncmp(e.msg, "s: ", 3) != 0 || (!strstr(e.msg, "truncated") &&
		    !strstr(e.msg, "not a frame stream") && !strstr(e.msg, "cut short"))) {
			wrong_msg++;
			tap_diag("cut at %zu: '%s'", cut, e.msg);
		}
	}
	tap_int(bad, 0, "a stream cut at any of its %zu bytes is an error, never a success", n);
	tap_int(wrong_frames, 0, "a cut stream first hands on exactly its complete frames");
	tap_int(wrong_msg, 0, "every cut gives a message naming the input and the truncation");

	int frames;
	ms_err e;
	tap_int(read_bytes(s, n, &frames, &e), 0, "the whole stream reads to a proper end");
	tap_int(frames, 2, "with its 2 frames");

	read_bytes(s, 0, &frames, &e);
	tap_str(e.msg, "s: empty input, not a frame stream", "cut at 0: empty input");
	read_bytes(s, hdr - 3, &frames, &e);
	tap_str(e.msg, "s: truncated frame stream header", "cut inside the header");
	read_bytes(s, hdr, &frames, &e);
	tap_str(e.msg, "s: truncated frame stream: it ends after 0 frames without an end record",
	        "cut right after the header");
	read_bytes(s, hdr + 10, &frames, &e);
	tap_str(e.msg, "s: truncated frame stream: record 0 is cut short", "cut inside a record header");
	read_bytes(s, hdr + 32 + 5, &frames, &e);
	tap_str(e.msg, "s: truncated frame stream: frame 0 has 5 of 12 bytes", "cut inside the pixels");
	read_bytes(s, hdr + 2 * rec, &frames, &e);
	tap_str(e.msg, "s: truncated frame stream: it ends after 2 frames without an end record",
	        "cut before the end record");
	read_bytes(s, n - 1, &frames, &e);
	tap_str(e.msg, "s: truncated frame stream: record 2 is cut short", "cut inside the end record");

	/* An abandoned writer leaves a truncated stream. */
	int p[2];
	if (pipe(p) < 0)
		abort();
	struct ms_fwriter *w = ms_fwriter_open(p[1], &info, "pipe", &e);
	unsigned char px[12] = { 0 };
	struct ms_frame f = { 0, 0, info, px };
	ms_fwriter_put(w, &f, &e);
	ms_fwriter_abandon(w);
	close(p[1]);
	tap_int(read_all(p[0], &frames, &e), -1, "an abandoned stream reads as an error");
	tap_int(frames, 1, "after its one frame");
	close(p[0]);
	free(s);
}

/* The small stream with one byte range replaced. */
static int read_patched(const unsigned char *s, size_t n, size_t at, const void *with, size_t len,
                        int *frames, ms_err *e)
{
	unsigned char *c = malloc(n);
	memcpy(c, s, n);
	memcpy(c + at, with, len);
	int rc = read_bytes(c, n, frames, e);
	free(c);
	return rc;
}

static void test_corrupt(void)
{
	struct ms_frame_info info = { 4, 3, MS_PIX_U8, 0 };
	size_t n;
	unsigned char *s = make_stream(&info, 2, &n);
	size_t hdr = (size_t)((unsigned char *)memmem(s, n, "ENDHDR\n", 7) - s) + 7;
	size_t rec = 32 + 12;
	int frames;
	ms_err e;
	unsigned char r[32];

	tap_int(read_patched(s, n, hdr, "MSFX", 4, &frames, &e), -1, "a broken first marker fails");
	tap_str(e.msg, "s: corrupt frame stream: no record marker after 0 frames", "and says where");
	read_patched(s, n, hdr + rec, "XSFR", 4, &frames, &e);
	tap_str(e.msg, "s: corrupt frame stream: no record marker after 1 frames",
	        "a broken second marker fails at frame 1");
	tap_int(frames, 1, "after handing on the first frame");

	if (host_little()) {
		put_rec(r, 1, 1, T0, 11);
		tap_int(read_patched(s, n, hdr, r, 32, &frames, &e), -1, "a wrong payload size fails");
		tap_str(e.msg, "s: corrupt frame stream: record 0 has kind 1 and 11 bytes (a frame has 12)",
		        "and gives both sizes");
		put_rec(r, 3, 1, T0, 12);
		read_patched(s, n, hdr, r, 32, &frames, &e);
		tap_str(e.msg, "s: corrupt frame stream: record 0 has kind 3 and 12 bytes (a frame has 12)",
		        "an unknown record kind fails");
		put_rec(r, 2, 3, T0, 0);
		tap_int(read_patched(s, n, n - 32, r, 32, &frames, &e), -1, "an end count too high fails");
		tap_str(e.msg, "s: frame stream ended with a count of 3 but 2 frames arrived",
		        "and gives both counts");
		tap_int(frames, 2, "after both frames");
		put_rec(r, 2, 1, T0, 0);
		read_patched(s, n, n - 32, r, 32, &frames, &e);
		tap_str(e.msg, "s: frame stream ended with a count of 1 but 2 frames arrived",
		        "an end count too low fails");
		/* An end record where the second frame should be. */
		put_rec(r, 2, 1, T0, 0);
		unsigned char *c = malloc(hdr + rec + 32);
		memcpy(c, s, hdr + rec);
		memcpy(c + hdr + rec, r, 32);
		tap_int(read_bytes(c, hdr + rec + 32, &frames, &e), 0, "a one-frame stream with its end record ends");
		tap_int(frames, 1, "after its frame");
		free(c);
	}
	free(s);
}

/* Read a stream made of this header text and a proper 1-frame 2x2 u8 body. */
static int read_header(const char *text, ms_err *e)
{
	unsigned char buf[8192];
	size_t m = strlen(text);
	memcpy(buf, text, m);
	m += put_rec(buf + m, 1, 0, 0, 4);
	memset(buf + m, 7, 4);
	m += 4;
	m += put_rec(buf + m, 2, 1, 0, 0);
	int frames;
	int rc = read_bytes(buf, m, &frames, e);
	return rc == 0 && frames == 1 ? 0 : rc == -2 ? -2 : -1;
}

#define H1 "MSFRAMES 1\n"
#define HW "WIDTH 2\n"
#define HH "HEIGHT 2\n"
#define HF "FORMAT u8\n"
#define HT "TRANSPORT inline\n"
#define HE "ENDHDR\n"

static void test_header_parse(void)
{
	ms_err e;
	if (!host_little())
		return;
	tap_int(read_header(H1 HW HH HF HT HE, &e), 0, "a minimal header (no NM_PER_PX, no ENDIAN) reads");
	tap_int(read_header(H1 "COLOUR blue\n" HW "X_FUTURE 1 2 3\n" HH HF "NM_PER_PX 80\nENDIAN little\n"
	                    HT "ZZZ_LATER yes\n" HE, &e), 0, "unknown keys are ignored");
	tap_int(read_header(H1 HW "\n" HH HF HT HE, &e), 0, "an empty line in the header is skipped");

	struct {
		const char *hdr, *msg, *what;
	} bad[] = {
		{ "MSFRAMES 2\n" HW HH HF HT HE,
		  "s: frame stream version '2' is not supported (this reader knows version 1)", "version 2" },
		{ "MSFRAMES x\n" HW HH HF HT HE,
		  "s: frame stream version 'x' is not supported (this reader knows version 1)", "version x" },
		{ H1 HW HH HF "ENDIAN big\n" HT HE,
		  "s: stream is big-endian; this machine reads only its own order", "the other byte order" },
		{ H1 HH HF HT HE, "s: header lacks WIDTH", "no WIDTH" },
		{ H1 HW HF HT HE, "s: header lacks HEIGHT", "no HEIGHT" },
		{ H1 HW HH HT HE, "s: header lacks FORMAT", "no FORMAT" },
		{ H1 HW HH HF HE, "s: header lacks TRANSPORT", "no TRANSPORT" },
		{ H1 "WIDTH 0\n" HH HF HT HE, "s: bad WIDTH '0' in header", "WIDTH 0" },
		{ H1 "WIDTH 65537\n" HH HF HT HE, "s: bad WIDTH '65537' in header", "WIDTH above 65536" },
		{ H1 HW "HEIGHT -2\n" HF HT HE, "s: bad HEIGHT '-2' in header", "negative HEIGHT" },
		{ H1 HW "HEIGHT 2x\n" HF HT HE, "s: bad HEIGHT '2x' in header", "HEIGHT with junk" },
		{ H1 HW HH "FORMAT u32\n" HT HE, "s: unknown pixel format 'u32' in header", "FORMAT u32" },
		{ H1 HW HH HF "NM_PER_PX -1\n" HT HE, "s: bad NM_PER_PX '-1' in header", "negative NM_PER_PX" },
		{ H1 HW HH HF "NM_PER_PX nan\n" HT HE, "s: bad NM_PER_PX 'nan' in header", "NM_PER_PX nan" },
		{ H1 HW HH HF "TRANSPORT pigeon\n" HE,
		  "s: transport 'pigeon' is not supported by this reader", "an unknown transport" },
		{ H1 HW "HEIGHT\n" HH HF HT HE, "s: header line 3 is not 'KEY VALUE': 'HEIGHT'",
		  "a key without a value" },
		{ "MSFRAMES1\n" HW HH HF HT HE, "s: not a frame stream", "no space after MSFRAMES" },
		{ "P5\n2 2\n255\n" HE, "s: not a frame stream", "a PGM file" },
		{ "MSFRAMES 1\nWIDTH 2\0\n" HH HF HT HE, "s: not a frame stream (binary data in the header)",
		  "a NUL byte in the header" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc;
		if (strstr(bad[i].what, "NUL")) {
			/* strlen would stop at the NUL: build this one by hand. */
			static const char t[] = "MSFRAMES 1\nWIDTH 2\0\nHEIGHT 2\nFORMAT u8\nTRANSPORT inline\nENDHDR\n";
			int frames;
			rc = read_bytes(t, sizeof t - 1, &frames, &e);
		} else {
			rc = read_header(bad[i].hdr, &e);
		}
		tap_ok(rc == -2, "%s: the reader refuses the header", bad[i].what);
		tap_str(e.msg, bad[i].msg, "%s: message", bad[i].what);
	}

	/* The 4096-byte limit, including the ENDHDR line: exactly at it reads, one more fails. */
	char big[5000];
	const char *head = H1 HW HH HF HT;
	for (int extra = 0; extra <= 1; extra++) {
		size_t target = MS_FSTREAM_HEADER_MAX + (size_t)extra;
		size_t len = strlen(head);
		memcpy(big, head, len);
		size_t pad = target - len - strlen(HE) - strlen("PAD \n");
		memcpy(big + len, "PAD ", 4);
		memset(big + len + 4, 'x', pad);
		len += 4 + pad;
		big[len++] = '\n';
		strcpy(big + len, HE);
		tap_int((long long)strlen(big), (long long)target, "padded header is %zu bytes", target);
		int rc = read_header(big, &e);
		if (extra == 0) {
			tap_int(rc, 0, "a header of exactly %d bytes is read", MS_FSTREAM_HEADER_MAX);
			if (rc)
				tap_diag("%s", e.msg);
		} else {
			tap_int(rc, -2, "a header of %d bytes is refused", MS_FSTREAM_HEADER_MAX + 1);
			tap_str(e.msg, "s: frame stream header has no ENDHDR line", "with a message");
		}
	}
	/* A long header that never ends, larger than any buffer: refused, not read forever. */
	{
		static char huge[20000];
		size_t len = strlen(H1);
		memcpy(huge, H1, len);
		while (len + 8 < sizeof huge) {
			memcpy(huge + len, "PAD xxx\n", 8);
			len += 8;
		}
		int frames;
		int p[2];
		if (pipe(p) < 0)
			abort();
		fcntl(p[1], F_SETFL, O_NONBLOCK);
		ssize_t k = write(p[1], huge, len);	/* fills the pipe as far as it goes */
		(void)k;
		int rc = read_all(p[0], &frames, &e);
		tap_int(rc, -2, "an endless header is refused after %d bytes", MS_FSTREAM_HEADER_MAX);
		tap_str(e.msg, "s: frame stream header has no ENDHDR line", "an endless header's message");
		close(p[0]);
		close(p[1]);
	}
}

static void test_ready(void)
{
	struct ms_frame_info info = { 4, 3, MS_PIX_U8, 0 };
	int p[2];
	if (pipe(p) < 0)
		abort();
	ms_err e = { { 0 } };
	struct ms_fwriter *w = ms_fwriter_open(p[1], &info, "pipe", &e);
	struct ms_freader *r = ms_freader_open(p[0], "pipe", &e);
	tap_ok(r != NULL, "reader opens after the header alone");
	tap_ok(!ms_freader_ready(r), "ready: false on an empty pipe");
	unsigned char px[12];
	fill(px, &info, 5);
	struct ms_frame f = { 5, T0, info, px };
	double fl0 = -2, fl1 = -2, fl2 = -2;
	uint64_t over = 0;
	ms_freader_fill(r, &fl0, &over);
	ms_fwriter_put(w, &f, &e);
	tap_ok(ms_freader_ready(r), "ready: true once a frame is in the pipe");
	/* a 12-byte frame is 44 bytes of a 64 KiB pipe */
	int frc = ms_freader_fill(r, &fl1, &over);
	struct ms_frame got;
	tap_int(ms_freader_next(r, &got, &e), 1, "that frame reads");
	tap_ok(!ms_freader_ready(r), "ready: false again when the pipe is drained");
	ms_freader_fill(r, &fl2, &over);
	tap_ok(frc == 0 && fl0 == 0 && fl1 > 0.5 * 44 / 65536 && fl1 < 2.0 * 44 / 65536 && fl2 == 0,
	       "fill: the pipe's share in use, %g empty, %g with one frame, %g drained", fl0, fl1,
	       fl2);
	ms_fwriter_close(w, &e);
	tap_ok(ms_freader_ready(r), "ready: true when the end record is waiting");
	tap_int(ms_freader_next(r, &got, &e), 0, "the end reads");
	tap_ok(ms_freader_ready(r), "ready: true after the end (next returns at once)");
	ms_freader_close(r);
	close(p[0]);
	close(p[1]);

	/*
	 * Frames that came in the same read as the header wait in the reader's
	 * buffer; the writer stays open, so the pipe itself is empty and not
	 * at end of file: only that buffer can make the reader ready.
	 */
	size_t n;
	unsigned char *s = make_stream(&info, 2, &n);
	if (pipe(p) < 0)
		abort();
	if (write(p[1], s, n - 32) != (ssize_t)(n - 32))
		abort();
	r = ms_freader_open(p[0], "s", &e);
	tap_ok(ms_freader_ready(r), "ready: true with frames read along with the header");
	tap_int(ms_freader_next(r, &got, &e), 1, "first buffered frame");
	tap_ok(ms_freader_ready(r), "ready: true with one more buffered frame");
	tap_int(ms_freader_next(r, &got, &e), 1, "second buffered frame");
	tap_ok(!ms_freader_ready(r), "ready: false once the buffer is used up");
	if (write(p[1], s + n - 32, 32) != 32)
		abort();
	tap_ok(ms_freader_ready(r), "ready: true when the end record arrives");
	tap_int(ms_freader_next(r, &got, &e), 0, "the end");
	ms_freader_close(r);
	close(p[0]);
	close(p[1]);

	/* A pipe with header only, writer still open: ready must not be fooled by buffering. */
	if (pipe(p) < 0)
		abort();
	w = ms_fwriter_open(p[1], &info, "pipe", &e);
	ms_fwriter_put(w, &f, &e);
	r = ms_freader_open(p[0], "pipe", &e);
	tap_int(ms_freader_next(r, &got, &e), 1, "a frame read with the header");
	tap_ok(!ms_freader_ready(r), "ready: false when the buffer is used up and the pipe is empty");
	ms_fwriter_abandon(w);
	close(p[1]);
	tap_ok(ms_freader_ready(r), "ready: true at end of file (next returns at once)");
	tap_int(ms_freader_next(r, &got, &e), -1, "and that is a truncation");
	ms_freader_close(r);
	close(p[0]);
	free(s);
}

static void test_writer_errors(void)
{
	ms_err e = { { 0 } };
	int p[2];
	if (pipe(p) < 0)
		abort();
	struct ms_frame_info bad = { 0, 3, MS_PIX_U8, 0 };
	tap_ok(ms_fwriter_open(p[1], &bad, "standard output", &e) == NULL, "width 0 is refused");
	tap_str(e.msg, "standard output: bad frame geometry 0x3 u8", "with the geometry");
	bad = (struct ms_frame_info){ 4, 3, MS_PIX_NONE, 0 };
	tap_ok(ms_fwriter_open(p[1], &bad, "out", &e) == NULL, "no pixel format is refused");
	tap_str(e.msg, "out: bad frame geometry 4x3 none", "with the format");

	struct ms_frame_info info = { 4, 3, MS_PIX_U8, 0 };
	struct ms_fwriter *w = ms_fwriter_open(p[1], &info, "out", &e);
	unsigned char px[30] = { 0 };
	struct ms_frame f = { 9, 0, { 5, 3, MS_PIX_U8, 0 }, px };
	tap_int(ms_fwriter_put(w, &f, &e), -1, "a frame of another size is refused");
	tap_str(e.msg, "out: frame 9 is 5x3 u8, the stream is 4x3 u8", "with both geometries");
	f.info = (struct ms_frame_info){ 4, 3, MS_PIX_U16, 0 };
	tap_int(ms_fwriter_put(w, &f, &e), -1, "a frame of another format is refused");

	/* The reader goes away: the write fails (SIGPIPE ignored, as a program would handle it). */
	close(p[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	f.info = info;
	tap_int(ms_fwriter_put(w, &f, &e), -1, "writing to a pipe without a reader fails");
	tap_str(e.msg, "cannot write to out: Broken pipe", "with the system's reason");
	tap_int(ms_fwriter_close(w, &e), -1, "closing it fails too");
	signal(SIGPIPE, old);
	close(p[1]);

	int fd = open("/dev/full", O_WRONLY);
	if (fd >= 0) {
		tap_ok(ms_fwriter_open(fd, &info, "full", &e) == NULL, "a header to /dev/full fails");
		tap_str(e.msg, "cannot write to full: No space left on device", "with the system's reason");
		close(fd);
	}
}

static void test_sniff(void)
{
	tap_ok(ms_fstream_sniff("MSFRAMES 1\n", 11), "sniff: 'MSFRAMES 1'");
	tap_ok(ms_fstream_sniff("MSFRAMES ", 9), "sniff: the 9 bytes 'MSFRAMES ' are enough");
	tap_ok(!ms_fstream_sniff("MSFRAMES", 8), "sniff: 8 bytes are not");
	tap_ok(!ms_fstream_sniff("MSFRAMES\n1", 10), "sniff: a newline after MSFRAMES is not");
	tap_ok(!ms_fstream_sniff("II*\0\x08\0\0\0\0\0", 10), "sniff: a TIFF is not");
	tap_ok(!ms_fstream_sniff("", 0), "sniff: nothing is not");
}

int main(void)
{
	signal(SIGPIPE, SIG_DFL);
	test_header_bytes();
	test_round_trip(MS_PIX_U8, 5, 3, 7);
	test_round_trip(MS_PIX_U16, 5, 3, 7);
	/* Frames larger than a pipe holds: the reader must assemble partial reads. */
	test_round_trip(MS_PIX_U16, 301, 129, 20);
	test_truncation();
	test_corrupt();
	test_header_parse();
	test_ready();
	test_writer_errors();
	test_sniff();
	return tap_done();
}
