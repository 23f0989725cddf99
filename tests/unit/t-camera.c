/*
 * t-camera: the camera layer. The replay backend fully: frames and
 * timestamps from the replay clock, crop, loop, pacing, drops when the
 * caller holds every buffer, timeouts, streams from a FIFO; the generic
 * settings and their messages; the device-clock conversion; the errors a
 * missing or wrong device gives (V4L2 included, which needs no hardware
 * for that); and, when Aravis is built in, its fake GenICam camera:
 * settings set and read back, frames with the known pattern, the region,
 * the pixel format, statistics.
 */
#include "camera.h"
#include "fstream.h"
#include "tiffio.h"
#include "../lib/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define W 16
#define H 12
#define NFRAMES 8

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint16_t px(unsigned k, unsigned y, unsigned x)
{
	return (uint16_t)(1000 * k + 40 * y + x);
}

/* A u16 TIFF of NFRAMES frames with known pixels. */
static const char *make_tiff(void)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/in.tif", tap_tmpdir());
	struct ms_frame_info info = { W, H, MS_PIX_U16, 250 };
	ms_err e = { "" };
	struct ms_tiff_writer *w = ms_tiff_open_write(path, &info, NFRAMES, &e);
	uint16_t buf[W * H];
	for (unsigned k = 0; k < NFRAMES; k++) {
		for (unsigned y = 0; y < H; y++)
			for (unsigned x = 0; x < W; x++)
				buf[y * W + x] = px(k, y, x);
		ms_tiff_write(w, buf, 0, &e);
	}
	if (ms_tiff_close_write(w, &e) < 0)
		tap_diag("cannot write %s: %s", path, e.msg);
	return path;
}

static struct ms_camera *open_cam(const char *dev)
{
	ms_err e = { "" };
	struct ms_camera *c = ms_camera_open(dev, &e);
	if (!c)
		tap_diag("cannot open %s: %s", dev, e.msg);
	return c;
}

static void set(struct ms_camera *c, const char *assignment)
{
	ms_err e = { "" };
	if (ms_camera_assign(c, assignment, &e) < 0)
		tap_diag("%s: %s", assignment, e.msg);
}

static const char *get(struct ms_camera *c, const char *name)
{
	static char buf[256];
	ms_err e = { "" };
	if (ms_camera_get(c, name, buf, sizeof buf, &e) < 0)
		snprintf(buf, sizeof buf, "error: %s", e.msg);
	return buf;
}

/* Whether f holds TIFF frame k, cropped at (x0, y0). */
static bool frame_is(const struct ms_frame *f, unsigned k, unsigned x0, unsigned y0)
{
	const uint16_t *p = f->pixels;
	for (unsigned y = 0; y < f->info.height; y++)
		for (unsigned x = 0; x < f->info.width; x++)
			if (p[y * f->info.width + x] != px(k, y + y0, x + x0))
				return false;
	return true;
}

static void test_replay_basic(const char *tif)
{
	char dev[700];
	snprintf(dev, sizeof dev, "replay:%s", tif);
	struct ms_camera *c = open_cam(dev);
	if (!tap_ok(c != NULL, "replay: opens a TIFF"))
		return;
	const struct ms_frame_info *info = ms_camera_info(c);
	tap_ok(info->width == W && info->height == H && info->fmt == MS_PIX_U16 && info->nm_per_px == 250,
	       "replay: geometry, format and pixel size from the file (%ux%u %s %g)", info->width,
	       info->height, ms_pixfmt_name(info->fmt), info->nm_per_px);
	tap_str(get(c, "frames"), "8", "replay: frames in the file");
	tap_str(get(c, "fps"), "30", "replay: default rate 30 frames/s");
	char names[256] = "";
	for (size_t i = 0; i < ms_camera_nsettings(c); i++) {
		strcat(names, ms_camera_setting(c, i)->name);
		strcat(names, " ");
	}
	tap_str(names, "fps fast loop roi frames nm_per_px timeout ", "replay: the settings, generic last");

	set(c, "fps=50");
	set(c, "fast=1");
	ms_err e = { "" };
	tap_ok(ms_camera_start(c, 4, &e) == 0, "replay: starts (%s)", e.msg);
	struct ms_cam_buf *b;
	uint64_t t_first = 0, t_prev = 0;
	bool pixels_ok = true, seq_ok = true, dt_ok = true;
	int n = 0, rc;
	uint64_t wall0 = ms_now_ns();
	while ((rc = ms_camera_take(c, &b, 1000, &e)) == MS_CAM_FRAME) {
		pixels_ok &= frame_is(&b->frame, (unsigned)n, 0, 0);
		seq_ok &= b->frame.seq == (uint64_t)n;
		if (n == 0)
			t_first = b->frame.t_ns;
		else
			dt_ok &= b->frame.t_ns - t_prev == 20000000u;
		t_prev = b->frame.t_ns;
		ms_camera_give(c, b);
		n++;
	}
	tap_int(rc, MS_CAM_END, "replay: the end of the file is MS_CAM_END (%s)", e.msg);
	tap_int(n, NFRAMES, "replay: every frame once");
	tap_ok(pixels_ok, "replay: pixels as written");
	tap_ok(seq_ok, "replay: sequence numbers 0..7");
	tap_ok(dt_ok, "replay: timestamps exactly 1/fps apart (the replay clock)");
	tap_ok(t_first >= wall0 - 1000000000u && t_first <= wall0 + 1000000000u,
	       "replay: the first timestamp is the epoch time of the start");
	struct ms_cam_health h;
	ms_camera_health(c, &h);
	tap_ok(h.frames == NFRAMES && h.drops == 0 && h.timeouts == 0,
	       "replay: health 8 frames, 0 drops, 0 timeouts (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
	       h.frames, h.drops, h.timeouts);
	tap_ok(ms_camera_stop(c, &e) == 0, "replay: stops");

	/* A restart rewinds the file. */
	tap_ok(ms_camera_start(c, 2, &e) == 0 && ms_camera_take(c, &b, 1000, &e) == MS_CAM_FRAME &&
	       b->frame.seq == 0 && frame_is(&b->frame, 0, 0, 0), "replay: a restart begins again at frame 0");
	ms_camera_give(c, b);
	tap_ok(ms_camera_set(c, "roi", "0,0,4,4", &e) < 0 && strstr(e.msg, "while acquiring"),
	       "replay: roi cannot change while acquiring (%s)", e.msg);
	ms_camera_stop(c, &e);

	set(c, "roi=3,2,5,7");
	info = ms_camera_info(c);
	tap_ok(info->width == 5 && info->height == 7, "replay: roi sets the geometry (%ux%u)", info->width,
	       info->height);
	tap_str(get(c, "roi"), "3,2,5,7", "replay: roi reads back");
	set(c, "loop=1");
	ms_camera_start(c, 3, &e);
	bool crop_ok = true;
	for (n = 0; n < 20; n++) {
		if (ms_camera_take(c, &b, 1000, &e) != MS_CAM_FRAME)
			break;
		crop_ok &= b->frame.info.width == 5 && frame_is(&b->frame, (unsigned)n % NFRAMES, 3, 2) &&
		           b->frame.seq == (uint64_t)n;
		ms_camera_give(c, b);
	}
	tap_int(n, 20, "replay: loop goes past the end of the file");
	tap_ok(crop_ok, "replay: looped frames are cropped, in order, numbered on");
	ms_camera_close(c);	/* while acquiring: close stops it */
}

static void test_replay_pacing(const char *tif)
{
	char dev[700];
	snprintf(dev, sizeof dev, "replay:%s", tif);
	struct ms_camera *c = open_cam(dev);
	if (!c)
		return;
	ms_err e = { "" };
	set(c, "loop=1");
	set(c, "fps=200");
	struct ms_cam_health hs;
	ms_camera_health(c, &hs);
	double t0 = now_s();
	ms_camera_start(c, 8, &e);
	struct ms_cam_buf *b;
	int n;
	for (n = 0; n < 41; n++) {
		if (ms_camera_take(c, &b, 1000, &e) != MS_CAM_FRAME)
			break;
		ms_camera_give(c, b);
	}
	double dt = now_s() - t0;
	/* Frame 40 is due 200 ms after the start; a loaded machine may deliver late, never early. */
	tap_ok(n == 41 && dt >= 0.200 && dt < 0.290, "replay: paced at 200 frames/s: frame 40 after %.3f s",
	       dt);

	/* Hold every buffer: frames that come due meanwhile are dropped. */
	set(c, "fps=1000");
	struct ms_cam_buf *held[8];
	int nh = 0;
	while (nh < 8 && ms_camera_take(c, &held[nh], 1000, &e) == MS_CAM_FRAME)
		nh++;
	uint64_t last_seq = held[nh - 1]->frame.seq;
	struct ms_cam_health h0, h1;
	ms_camera_health(c, &h0);
	double held_from = now_s();
	struct timespec pause = { 0, 60000000 };
	nanosleep(&pause, NULL);
	double held_s = now_s() - held_from;
	for (int i = 0; i < nh; i++)
		ms_camera_give(c, held[i]);
	ms_camera_take(c, &b, 1000, &e);
	ms_camera_health(c, &h1);
	uint64_t dropped = h1.drops - h0.drops;
	/* One frame comes due per ms held, and none has anywhere to go. */
	double want_drops = held_s * 1000;
	tap_near((double)dropped, want_drops, fmax(5, 0.1 * want_drops),
	         "replay: holding all 8 buffers for %.1f ms at 1000 frames/s drops a frame a ms (%" PRIu64 ")",
	         held_s * 1e3, dropped);
	/* Every frame before this one was either delivered or dropped. */
	uint64_t before = (h1.frames - hs.frames - 1) + (h1.drops - hs.drops);
	tap_ok(b->frame.seq == before && b->frame.seq > last_seq + 1,
	       "replay: the sequence number skips the dropped frames (%" PRIu64 " after %" PRIu64
	       ", %" PRIu64 " delivered or dropped before)", b->frame.seq, last_seq, before);
	ms_camera_give(c, b);
	char line[256];
	ms_camera_stats_line(c, line, sizeof line);
	char want[64];
	snprintf(want, sizeof want, "%" PRIu64 " dropped, 0 timeouts", h1.drops);
	tap_ok(strstr(line, " frames/s, ") && strstr(line, want), "replay: statistics line '%s'", line);
	ms_camera_stop(c, &e);

	/* Holding every buffer in fast mode starves the caller: timeouts. */
	set(c, "fast=1");
	set(c, "timeout=0.1");
	ms_camera_start(c, 2, &e);
	ms_camera_take(c, &held[0], 1000, &e);
	ms_camera_take(c, &held[1], 1000, &e);
	ms_camera_health(c, &h0);
	double t1 = now_s();
	int waits = 0;
	while (now_s() - t1 < 0.35)
		waits += ms_camera_take(c, &b, 50, &e) == MS_CAM_WAIT;
	ms_camera_health(c, &h1);
	tap_ok(h1.timeouts - h0.timeouts >= 3 && h1.timeouts - h0.timeouts <= 4 &&
	       h1.consecutive_timeouts == h1.timeouts - h0.timeouts,
	       "replay: 0.35 s without a frame at timeout=0.1 counts 3 timeouts (%" PRIu64 ", %d waits)",
	       h1.timeouts - h0.timeouts, waits);
	ms_camera_give(c, held[0]);
	ms_camera_give(c, held[1]);
	tap_int(ms_camera_take(c, &b, 1000, &e), MS_CAM_FRAME, "replay: frames flow again once given back");
	ms_camera_give(c, b);
	ms_camera_health(c, &h1);
	tap_int((long long)h1.consecutive_timeouts, 0, "replay: a frame ends the run of timeouts");
	ms_camera_close(c);
}

/* A frame stream through a FIFO, written by a child. */
static void test_replay_fifo(void)
{
	char path[600], dev[700];
	snprintf(path, sizeof path, "%s/fifo", tap_tmpdir());
	snprintf(dev, sizeof dev, "replay:%s", path);
	if (mkfifo(path, 0600) < 0) {
		tap_ok(false, "mkfifo %s: %s", path, strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY);
		struct ms_frame_info info = { W, H, MS_PIX_U8, 0 };
		ms_err e;
		struct ms_fwriter *w = ms_fwriter_open(fd, &info, "fifo", &e);
		uint8_t pix[W * H];
		for (unsigned k = 0; k < 3; k++) {
			memset(pix, (int)(10 + k), sizeof pix);
			struct ms_frame f = { k, 1000 + k, info, pix };
			ms_fwriter_put(w, &f, &e);
		}
		ms_fwriter_close(w, &e);
		_exit(0);
	}
	struct ms_camera *c = open_cam(dev);
	if (!tap_ok(c != NULL, "replay: opens a FIFO")) {
		waitpid(pid, NULL, 0);
		return;
	}
	ms_err e = { "" };
	tap_ok(ms_camera_set(c, "loop", "1", &e) < 0 && strstr(e.msg, "read only once"),
	       "replay: no loop over a pipe (%s)", e.msg);
	tap_str(get(c, "frames"), "unknown", "replay: a stream's length is unknown");
	set(c, "fast=1");
	e.msg[0] = '\0';
	ms_camera_start(c, 2, &e);
	struct ms_cam_buf *b;
	int n = 0, rc;
	bool ok = true;
	while ((rc = ms_camera_take(c, &b, 2000, &e)) == MS_CAM_FRAME) {
		ok &= ((const uint8_t *)b->frame.pixels)[5] == 10 + n && b->frame.info.fmt == MS_PIX_U8;
		ms_camera_give(c, b);
		n++;
	}
	tap_ok(rc == MS_CAM_END && n == 3 && ok, "replay: the FIFO's 3 frames, then the end (%d, %s)", n,
	       e.msg);
	ms_camera_stop(c, &e);
	tap_ok(ms_camera_start(c, 2, &e) < 0 && strstr(e.msg, "only once"),
	       "replay: a stream cannot be started twice (%s)", e.msg);
	ms_camera_close(c);
	waitpid(pid, NULL, 0);
}

static void expect_open_error(const char *dev, const char *want)
{
	ms_err e = { "" };
	struct ms_camera *c = ms_camera_open(dev, &e);
	tap_ok(!c && strstr(e.msg, want), "open '%s' fails: %s", dev, e.msg);
	ms_camera_close(c);
}

static void test_errors(const char *tif)
{
	expect_open_error("replay:/no/such.tif", "cannot open '/no/such.tif': No such file");
	expect_open_error("replay:", "needs a file");
	expect_open_error("gopro:1", "unknown device 'gopro:1': expected one of replay:FILE");
	expect_open_error("v4l2:/dev/video97", "cannot open '/dev/video97': No such file");
	expect_open_error("v4l2:97", "cannot open '/dev/video97'");
	expect_open_error("v4l2:/dev/null", "'/dev/null' is not a V4L2 device");
	char notimg[600];
	snprintf(notimg, sizeof notimg, "replay:%s/x.txt", tap_tmpdir());
	FILE *f = fopen(notimg + 7, "w");
	fputs("hello\n", f);
	fclose(f);
	expect_open_error(notimg, "neither a TIFF nor a frame stream");
	if (!ms_camera_have_aravis())
		expect_open_error("fake:", "built without it");

	char dev[700];
	snprintf(dev, sizeof dev, "replay:%s", tif);
	struct ms_camera *c = open_cam(dev);
	if (!c)
		return;
	ms_err e = { "" };
	tap_ok(ms_camera_set(c, "exposure", "100", &e) < 0 &&
	       strstr(e.msg, "unknown setting 'exposure'") &&
	       strstr(e.msg, "fps, fast, loop, roi, frames, nm_per_px, timeout"),
	       "an unknown setting lists the known ones: %s", e.msg);
	tap_ok(ms_camera_get(c, "exposure", (char[8]){ 0 }, 8, &e) < 0 && strstr(e.msg, "it has: fps"),
	       "getting an unknown setting says the same");
	tap_ok(ms_camera_assign(c, "fps", &e) < 0 && strstr(e.msg, "expected NAME=VALUE"),
	       "an assignment needs '=' (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "=3", &e) < 0, "an assignment needs a name");
	tap_ok(ms_camera_assign(c, "fps=fast", &e) < 0 && strstr(e.msg, "invalid value 'fast' for fps"),
	       "a bad value is quoted (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "fps=-2", &e) < 0 && strstr(e.msg, "must be from"),
	       "an out-of-range value says the range (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "roi=0,0,17,12", &e) < 0 && strstr(e.msg, "the frames are 16x12"),
	       "a crop larger than the frame is refused (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "roi=0,0,0,12", &e) < 0 && strstr(e.msg, "X,Y,WIDTH,HEIGHT"),
	       "a crop of zero width is refused (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "frames=3", &e) < 0 && strstr(e.msg, "read-only"),
	       "a read-only setting is refused (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "loop=perhaps", &e) < 0 && strstr(e.msg, "expected 1 or 0"),
	       "a flag wants 1 or 0 (%s)", e.msg);
	tap_ok(ms_camera_assign(c, "nm_per_px=80", &e) == 0 && ms_camera_info(c)->nm_per_px == 80,
	       "nm_per_px overrides the file's pixel size");
	tap_ok(ms_camera_assign(c, "nm_per_px=0", &e) == 0 && ms_camera_info(c)->nm_per_px == 250,
	       "nm_per_px=0 gives the file's back");
	struct ms_cam_buf *b;
	tap_ok(ms_camera_take(c, &b, 0, &e) == MS_CAM_ERR && strstr(e.msg, "not acquiring"),
	       "take before start is an error (%s)", e.msg);
	tap_ok(ms_camera_start(c, 1, &e) < 0 && strstr(e.msg, "2 to 4096"), "a pool needs 2 buffers");
	ms_camera_close(c);
}

/*
 * The device clock: 100 ppm fast, 1 to 3 ms of transfer latency. The
 * converted times must sit 1 ms (the least latency) after the truth, to
 * within what the drift adds over one 2 s window.
 */
static void test_clock(void)
{
	struct ms_cam_clock k;
	ms_cam_clock_init(&k, 2000000000u);
	const uint64_t epoch0 = UINT64_C(1700000000000000000), dev0 = 5000000000u;
	uint64_t seed = 12345;
	double worst = 0, worst_late = 0;
	uint64_t prev = 0;
	bool monotonic = true;
	for (int i = 0; i < 6000; i++) {
		double t = i * 0.01;	/* true seconds */
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		double lat = 1e-3 + 2e-3 * (double)(seed >> 11) / 9007199254740992.0;
		uint64_t dev = dev0 + (uint64_t)(t * 1.0001 * 1e9);
		uint64_t host = epoch0 + (uint64_t)((t + lat) * 1e9);
		uint64_t conv = ms_cam_clock_convert(&k, dev, host);
		double err = ((double)conv - (double)epoch0) / 1e9 - t - 1e-3;
		if (fabs(err) > worst)
			worst = fabs(err);
		if (i > 300 && fabs(err) > worst_late)
			worst_late = fabs(err);
		monotonic &= conv > prev;
		prev = conv;
	}
	/* 100 ppm over a 2 s window is 0.2 ms. */
	tap_ok(worst_late < 0.22e-3, "clock: follows a 100 ppm drift within %.3f ms after the first window",
	       worst_late * 1e3);
	tap_ok(worst < 0.36e-3, "clock: at most the first frame's extra latency off (%.3f ms)", worst * 1e3);
	tap_ok(monotonic, "clock: converted times increase");
	uint64_t d = 77;
	ms_cam_clock_init(&k, 1000000000u);
	tap_ok(ms_cam_clock_convert(&k, d, epoch0) == epoch0, "clock: the first frame gets its arrival time");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void test_fake(void)
{
	if (!ms_camera_have_aravis()) {
		tap_diag("built without Aravis: no fake GenICam camera tests");
		return;
	}
	struct ms_camera *c = open_cam("fake:");
	if (!tap_ok(c != NULL, "fake: opens Aravis' fake camera"))
		return;
	tap_ok(strstr(ms_camera_description(c), "Aravis Fake") != NULL, "fake: description '%s'",
	       ms_camera_description(c));
	const char *sets[][2] = {
		{ "exposure", "2000" }, { "gain", "3" }, { "fps", "200" }, { "binning", "2" },
		{ "binning", "1,1" }, { "roi", "8,4,64,32" }, { "format", "u16" },
	};
	const char *want[] = { "2000", "3", "200", "2,2", "1,1", "8,4,64,32", "Mono16" };
	ms_err e = { "" };
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		int rc = ms_camera_set(c, sets[i][0], sets[i][1], &e);
		tap_ok(rc == 0, "fake: set %s=%s (%s)", sets[i][0], sets[i][1], rc ? e.msg : "ok");
		tap_str(get(c, sets[i][0]), want[i], "fake: %s reads back", sets[i][0]);
	}
	const struct ms_frame_info *info = ms_camera_info(c);
	tap_ok(info->width == 64 && info->height == 32 && info->fmt == MS_PIX_U16,
	       "fake: geometry follows roi and format (%ux%u %s)", info->width, info->height,
	       ms_pixfmt_name(info->fmt));
	tap_ok(ms_camera_set(c, "exposure", "1e9", &e) < 0 && strstr(e.msg, "takes 10 to 1e+07 us"),
	       "fake: exposure out of range gives the range (%s)", e.msg);
	tap_ok(ms_camera_set(c, "roi", "2000,0,100,10", &e) < 0 && strstr(e.msg, "the sensor is 2048x2048"),
	       "fake: a region off the sensor is refused (%s)", e.msg);
	tap_ok(ms_camera_set(c, "format", "Mono12", &e) < 0 && strstr(e.msg, "has no Mono12"),
	       "fake: a format the camera lacks is refused (%s)", e.msg);
	tap_ok(ms_camera_set(c, "shutter", "1", &e) < 0 &&
	       strstr(e.msg, "exposure, gain, fps, roi, binning, format, sensor, nm_per_px, timeout"),
	       "fake: an unknown setting lists the camera's (%s)", e.msg);

	e.msg[0] = '\0';
	/* 64 buffers: 320 ms for a loaded machine to come back to us before a drop. */
	tap_ok(ms_camera_start(c, 64, &e) == 0, "fake: starts (%s)", e.msg);
	tap_ok(ms_camera_set(c, "roi", "0,0,32,32", &e) < 0 && strstr(e.msg, "while acquiring"),
	       "fake: no region change while acquiring");
	tap_ok(ms_camera_set(c, "exposure", "3000", &e) == 0, "fake: exposure changes while acquiring");
	e.msg[0] = '\0';
	struct ms_cam_buf *b;
	int n = 0;
	bool pattern = true, seq = true, mono = true;
	uint64_t tprev = 0, last_seq = 0;
	double wall0 = 0, wall1 = 0, dts[40];
	for (; n < 40; n++) {
		if (ms_camera_take(c, &b, 2000, &e) != MS_CAM_FRAME)
			break;
		const uint16_t *p = b->frame.pixels;
		for (unsigned y = 0; y < 32; y++)
			for (unsigned x = 0; x < 64; x++)
				pattern &= p[y * 64 + x] == (uint16_t)(37 * (x + 8 + 2 * (y + 4)));
		seq &= b->frame.seq == (uint64_t)n;
		last_seq = b->frame.seq;
		if (n == 0) {
			wall0 = now_s();
		} else {
			mono &= b->frame.t_ns > tprev;
			dts[n - 1] = (double)(b->frame.t_ns - tprev) / 1e6;
		}
		tprev = b->frame.t_ns;
		wall1 = now_s();
		ms_camera_give(c, b);
	}
	tap_int(n, 40, "fake: 40 frames arrive (%s)", e.msg);
	tap_ok(pattern, "fake: every pixel is the pattern at sensor coordinates (u16)");
	tap_ok(seq, "fake: sequence numbers 0..39 (last %" PRIu64 ")", last_seq);
	tap_ok(mono, "fake: timestamps increase");
	/* The median interval: a loaded machine may make the fake camera skip a period. */
	qsort(dts, 39, sizeof dts[0], cmp_double);
	tap_near(dts[19], 5.0, 0.5, "fake: timestamps 5 ms apart at 200 frames/s (median %.3f ms)", dts[19]);
	tap_ok(wall1 - wall0 > 0.18, "fake: 39 periods took %.3f s, not less", wall1 - wall0);
	uint64_t now = ms_now_ns();
	tap_ok(tprev <= now && tprev > now - 1000000000u, "fake: timestamps are epoch time");
	struct ms_cam_health h;
	ms_camera_health(c, &h);
	tap_ok(h.frames == 40 && h.drops == 0 && h.timeouts == 0 && h.last_frame_ns > 0,
	       "fake: health 40 frames, 0 drops, 0 timeouts (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
	       h.frames, h.drops, h.timeouts);
	char line[256];
	ms_camera_stats_line(c, line, sizeof line);
	tap_ok(strstr(line, "40 frames, 0 dropped, 0 timeouts") != NULL, "fake: statistics '%s'", line);
	tap_ok(ms_camera_stop(c, &e) == 0, "fake: stops");

	set(c, "format=u8");
	set(c, "roi=0,0,40,20");
	tap_ok(ms_camera_start(c, 4, &e) == 0 && ms_camera_take(c, &b, 2000, &e) == MS_CAM_FRAME,
	       "fake: restarts with a new geometry");
	const uint8_t *p8 = b->frame.pixels;
	tap_ok(b->frame.info.fmt == MS_PIX_U8 && b->frame.info.width == 40 && p8[3 * 40 + 5] == 11 &&
	       b->frame.seq == 0, "fake: u8 frames of the pattern, sequence from 0 again");
	ms_camera_give(c, b);
	ms_camera_close(c);

	c = open_cam("aravis:Fake_1");
	tap_ok(c != NULL, "fake: aravis:Fake_1 is the same camera");
	ms_camera_close(c);
}

int main(void)
{
	const char *tif = make_tiff();
	test_replay_basic(tif);
	test_replay_pacing(tif);
	test_replay_fifo();
	test_errors(tif);
	test_clock();
	test_fake();
	return tap_done();
}
