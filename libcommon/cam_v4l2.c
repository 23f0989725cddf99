/*
 * cam_v4l2: Video4Linux2 capture devices (device v4l2:/dev/videoN, or
 * v4l2:N), with memory-mapped streaming I/O: the driver's buffers are the
 * pool, dequeued when filled and queued again when given back. Monochrome
 * formats are taken as they are (GREY as u8; Y10, Y12, Y16 as u16, values
 * unscaled) and YUYV or UYVY give their luma as u8; a device offering none
 * of these is refused with the list of what it offers. Timestamps are the
 * driver's (monotonic clock, moved to the epoch at each frame) or the host
 * clock at dequeue; gaps in the driver's sequence numbers count as drops.
 * Settings are the controls the device has: exposure (us), gain (the
 * driver's units), fps (the frame interval), roi (the crop rectangle when
 * the driver can crop, else the size from 0,0) and format.
 */
#include "cam_backend.h"
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/videodev2.h>

#define MAX_SETTINGS 8

struct map {
	void *start;
	size_t len;
};

struct v4l2 {
	char *path;
	int fd;
	uint32_t pixfmt, width, height, bytesperline;
	uint32_t src_bpp;		/* bytes per pixel in the driver's buffer */
	bool has_exposure, has_gain, has_fps, can_crop, has_exposure_auto;
	struct v4l2_queryctrl exposure, gain;
	struct ms_cam_setting settings[MAX_SETTINGS];
	/* Streaming. */
	unsigned nbuf;
	struct map *maps;
	struct ms_cam_buf *bufs;
	unsigned char *conv;		/* converted frames, one per buffer; NULL: zero copy */
	bool have_seq;
	uint32_t last_seq;
	uint64_t seq;			/* frames since start, drops included */
};

static struct v4l2 *V(struct ms_camera *c)
{
	return c->priv;
}

/* ioctl that retries when a signal interrupts it. */
static int xioctl(int fd, unsigned long req, void *arg)
{
	int rc;
	do
		rc = ioctl(fd, req, arg);
	while (rc < 0 && errno == EINTR);
	return rc;
}

static const struct {
	uint32_t fourcc;
	const char *name;
	enum ms_pixfmt fmt;
} formats[] = {
	{ V4L2_PIX_FMT_GREY, "GREY", MS_PIX_U8 },
	{ V4L2_PIX_FMT_Y16, "Y16", MS_PIX_U16 },
	{ V4L2_PIX_FMT_Y12, "Y12", MS_PIX_U16 },
	{ V4L2_PIX_FMT_Y10, "Y10", MS_PIX_U16 },
	{ V4L2_PIX_FMT_YUYV, "YUYV", MS_PIX_U8 },
	{ V4L2_PIX_FMT_UYVY, "UYVY", MS_PIX_U8 },
};
#define NFORMATS (sizeof formats / sizeof formats[0])

static int format_index(uint32_t fourcc)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (formats[i].fourcc == fourcc)
			return (int)i;
	return -1;
}

static void fourcc_text(uint32_t f, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char ch = (char)((f >> (8 * i)) & 0xff);
		out[i] = ch > ' ' && ch < 127 ? ch : '?';
	}
	out[4] = '\0';
}

/* The formats the device offers, for a refusal message. */
static void offered_formats(int fd, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (uint32_t i = 0; len < n; i++) {
		struct v4l2_fmtdesc d = { .index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
		if (xioctl(fd, VIDIOC_ENUM_FMT, &d) < 0)
			break;
		char cc[5];
		fourcc_text(d.pixelformat, cc);
		len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", cc);
	}
	if (!buf[0])
		snprintf(buf, n, "none");
}

static void take_format(struct ms_camera *c, const struct v4l2_format *f)
{
	struct v4l2 *v = V(c);
	v->pixfmt = f->fmt.pix.pixelformat;
	v->width = f->fmt.pix.width;
	v->height = f->fmt.pix.height;
	v->bytesperline = f->fmt.pix.bytesperline;
	int i = format_index(v->pixfmt);
	v->src_bpp = v->pixfmt == V4L2_PIX_FMT_YUYV || v->pixfmt == V4L2_PIX_FMT_UYVY ? 2
	             : i >= 0 ? (uint32_t)ms_pixfmt_bytes(formats[i].fmt) : 1;
	if (v->bytesperline < v->width * v->src_bpp)
		v->bytesperline = v->width * v->src_bpp;
	c->info.width = v->width;
	c->info.height = v->height;
	c->info.fmt = i >= 0 ? formats[i].fmt : MS_PIX_NONE;
}

/* Ask for fourcc at w x h; 0 when the driver took exactly that format. */
static int try_format(struct ms_camera *c, uint32_t fourcc, uint32_t w, uint32_t h, ms_err *e)
{
	struct v4l2 *v = V(c);
	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	if (xioctl(v->fd, VIDIOC_G_FMT, &f) < 0)
		return ms_err_set(e, "%s: cannot read the format:", v->path);
	f.fmt.pix.pixelformat = fourcc;
	f.fmt.pix.width = w;
	f.fmt.pix.height = h;
	f.fmt.pix.field = V4L2_FIELD_NONE;
	if (xioctl(v->fd, VIDIOC_S_FMT, &f) < 0)
		return ms_err_set(e, "%s: cannot set the format:", v->path);
	take_format(c, &f);
	if (f.fmt.pix.pixelformat != fourcc) {
		char want[5], got[5];
		fourcc_text(fourcc, want);
		fourcc_text(f.fmt.pix.pixelformat, got);
		return ms_err_set(e, "%s: asked for %s, the driver chose %s", v->path, want, got);
	}
	return 0;
}

static bool query_ctrl(int fd, uint32_t id, struct v4l2_queryctrl *q)
{
	*q = (struct v4l2_queryctrl){ .id = id };
	return xioctl(fd, VIDIOC_QUERYCTRL, q) == 0 && !(q->flags & V4L2_CTRL_FLAG_DISABLED);
}

static void add_setting(struct v4l2 *v, size_t *n, const char *name, const char *help, unsigned fl)
{
	v->settings[(*n)++] = (struct ms_cam_setting){ name, help, fl };
}

static int v4l2_open(struct ms_camera *c, const char *arg, ms_err *e)
{
	char path[256];
	long num;
	if (!*arg)
		arg = "0";
	if (ms_parse_long(arg, &num) == 0 && num >= 0)
		snprintf(path, sizeof path, "/dev/video%ld", num);
	else
		snprintf(path, sizeof path, "%s", arg);
	struct v4l2 *v = calloc(1, sizeof *v);
	if (!v || !(v->path = strdup(path))) {
		free(v);
		return ms_err_set(e, "out of memory");
	}
	c->priv = v;
	v->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (v->fd < 0) {
		ms_err_set(e, "cannot open '%s':", path);
		goto fail;
	}
	struct v4l2_capability cap = { 0 };
	if (xioctl(v->fd, VIDIOC_QUERYCAP, &cap) < 0) {
		if (errno == ENOTTY || errno == EINVAL)
			ms_err_set(e, "'%s' is not a V4L2 device", path);
		else
			ms_err_set(e, "%s: cannot query the device:", path);
		goto fail;
	}
	uint32_t caps = cap.capabilities & V4L2_CAP_DEVICE_CAPS ? cap.device_caps : cap.capabilities;
	if (!(caps & V4L2_CAP_VIDEO_CAPTURE)) {
		ms_err_set(e, "%s (%s) is not a single-plane video capture device", path,
		           (const char *)cap.card);
		goto fail;
	}
	if (!(caps & V4L2_CAP_STREAMING)) {
		ms_err_set(e, "%s (%s) has no streaming I/O", path, (const char *)cap.card);
		goto fail;
	}
	snprintf(c->desc, sizeof c->desc, "%.120s (%.32s, V4L2 %.16s)", path, (const char *)cap.card,
	         (const char *)cap.driver);

	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	if (xioctl(v->fd, VIDIOC_G_FMT, &f) < 0) {
		ms_err_set(e, "%s: cannot read the format:", path);
		goto fail;
	}
	take_format(c, &f);
	if (format_index(v->pixfmt) < 0) {
		/* Prefer the deepest monochrome format, then luma from YUV. */
		static const uint32_t wanted[] = { V4L2_PIX_FMT_Y16, V4L2_PIX_FMT_GREY, V4L2_PIX_FMT_YUYV,
		                                   V4L2_PIX_FMT_UYVY };
		size_t i;
		for (i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
			if (try_format(c, wanted[i], v->width, v->height, NULL) == 0)
				break;
		if (i == sizeof wanted / sizeof wanted[0]) {
			char have[256];
			offered_formats(v->fd, have, sizeof have);
			ms_err_set(e, "%s offers no format mstk reads (GREY, Y10, Y12, Y16, YUYV, UYVY); "
			           "it has: %s", path, have);
			goto fail;
		}
	}

	size_t n = 0;
	v->has_exposure = query_ctrl(v->fd, V4L2_CID_EXPOSURE_ABSOLUTE, &v->exposure);
	struct v4l2_queryctrl q;
	v->has_exposure_auto = query_ctrl(v->fd, V4L2_CID_EXPOSURE_AUTO, &q);
	if (v->has_exposure)
		add_setting(v, &n, "exposure", "exposure time, us (in the driver's 100 us steps)", 0);
	v->has_gain = query_ctrl(v->fd, V4L2_CID_GAIN, &v->gain);
	if (v->has_gain)
		add_setting(v, &n, "gain", "gain, in the driver's units", 0);
	struct v4l2_streamparm parm = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	v->has_fps = xioctl(v->fd, VIDIOC_G_PARM, &parm) == 0 &&
	             (parm.parm.capture.capability & V4L2_CAP_TIMEPERFRAME);
	if (v->has_fps)
		add_setting(v, &n, "fps", "frames per second (the frame interval)", 0);
	struct v4l2_selection sel = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .target = V4L2_SEL_TGT_CROP };
	v->can_crop = xioctl(v->fd, VIDIOC_G_SELECTION, &sel) == 0;
	add_setting(v, &n, "roi", v->can_crop ? "X,Y,WIDTH,HEIGHT: the crop rectangle"
	                                     : "0,0,WIDTH,HEIGHT: the frame size (no cropping)",
	            MS_CAM_IDLE);
	add_setting(v, &n, "format", "pixel format: GREY, Y10, Y12, Y16, YUYV or UYVY", MS_CAM_IDLE);
	if (ms_cam_set_settings(c, v->settings, n, e) < 0)
		goto fail;
	return 0;
fail:
	if (v->fd >= 0)
		close(v->fd);
	free(v->path);
	free(v);
	c->priv = NULL;
	return -1;
}

static void v4l2_close(struct ms_camera *c)
{
	struct v4l2 *v = V(c);
	close(v->fd);
	free(v->path);
	free(v);
}

static int get_ctrl(struct v4l2 *v, uint32_t id, long *out, ms_err *e)
{
	struct v4l2_control ctl = { .id = id };
	if (xioctl(v->fd, VIDIOC_G_CTRL, &ctl) < 0)
		return ms_err_set(e, "%s: cannot read a control:", v->path);
	*out = ctl.value;
	return 0;
}

static int v4l2_get(struct ms_camera *c, const char *name, char *buf, size_t n, ms_err *e)
{
	struct v4l2 *v = V(c);
	long x = 0;
	if (strcmp(name, "exposure") == 0) {
		if (get_ctrl(v, V4L2_CID_EXPOSURE_ABSOLUTE, &x, e) < 0)
			return -1;
		snprintf(buf, n, "%ld", x * 100);
	} else if (strcmp(name, "gain") == 0) {
		if (get_ctrl(v, V4L2_CID_GAIN, &x, e) < 0)
			return -1;
		snprintf(buf, n, "%ld", x);
	} else if (strcmp(name, "fps") == 0) {
		struct v4l2_streamparm p = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
		if (xioctl(v->fd, VIDIOC_G_PARM, &p) < 0)
			return ms_err_set(e, "%s: cannot read the frame interval:", v->path);
		struct v4l2_fract t = p.parm.capture.timeperframe;
		snprintf(buf, n, "%.6g", t.numerator ? (double)t.denominator / t.numerator : 0.0);
	} else if (strcmp(name, "roi") == 0) {
		struct v4l2_selection s = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .target = V4L2_SEL_TGT_CROP };
		long x0 = 0, y0 = 0;
		if (v->can_crop && xioctl(v->fd, VIDIOC_G_SELECTION, &s) == 0) {
			x0 = s.r.left;
			y0 = s.r.top;
		}
		snprintf(buf, n, "%ld,%ld,%u,%u", x0, y0, v->width, v->height);
	} else {
		int i = format_index(v->pixfmt);
		snprintf(buf, n, "%s", i >= 0 ? formats[i].name : "?");
	}
	return 0;
}

static int set_ctrl(struct v4l2 *v, const struct v4l2_queryctrl *q, const char *name,
                    const char *value, double scale, ms_err *e)
{
	double x;
	if (ms_cam_parse_double(name, value, (double)q->minimum * scale, (double)q->maximum * scale, &x,
	                        e) < 0)
		return -1;
	struct v4l2_control ctl = { .id = q->id, .value = (int32_t)lround(x / scale) };
	if (xioctl(v->fd, VIDIOC_S_CTRL, &ctl) < 0)
		return ms_err_set(e, "cannot set %s to '%s':", name, value);
	return 0;
}

static int v4l2_set(struct ms_camera *c, const char *name, const char *value, ms_err *e)
{
	struct v4l2 *v = V(c);
	if (strcmp(name, "exposure") == 0) {
		/* A manual exposure needs the automatic one off; not every driver has it. */
		if (v->has_exposure_auto) {
			struct v4l2_control ctl = { .id = V4L2_CID_EXPOSURE_AUTO, .value = V4L2_EXPOSURE_MANUAL };
			xioctl(v->fd, VIDIOC_S_CTRL, &ctl);
		}
		return set_ctrl(v, &v->exposure, name, value, 100.0, e);
	}
	if (strcmp(name, "gain") == 0)
		return set_ctrl(v, &v->gain, name, value, 1.0, e);
	if (strcmp(name, "fps") == 0) {
		double fps;
		if (ms_cam_parse_double(name, value, 1e-3, 1e6, &fps, e) < 0)
			return -1;
		struct v4l2_streamparm p = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
		p.parm.capture.timeperframe.numerator = 1000;
		p.parm.capture.timeperframe.denominator = (uint32_t)lround(fps * 1000);
		if (xioctl(v->fd, VIDIOC_S_PARM, &p) < 0)
			return ms_err_set(e, "cannot set fps to '%s':", value);
		return 0;
	}
	if (strcmp(name, "roi") == 0) {
		long roi[4];
		if (ms_cam_parse_roi(name, value, roi, e) < 0)
			return -1;
		if (v->can_crop) {
			struct v4l2_selection s = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
			                            .target = V4L2_SEL_TGT_CROP,
			                            .r = { (int32_t)roi[0], (int32_t)roi[1], (uint32_t)roi[2],
			                                   (uint32_t)roi[3] } };
			if (xioctl(v->fd, VIDIOC_S_SELECTION, &s) < 0)
				return ms_err_set(e, "cannot crop to '%s':", value);
		} else if (roi[0] || roi[1]) {
			return ms_err_set(e, "invalid value '%s' for roi: this device cannot crop, "
			                  "so X and Y must be 0", value);
		}
		if (try_format(c, v->pixfmt, (uint32_t)roi[2], (uint32_t)roi[3], e) < 0)
			return -1;
		if (v->width != (uint32_t)roi[2] || v->height != (uint32_t)roi[3])
			return ms_err_set(e, "invalid value '%s' for roi: the driver chose %ux%u", value,
			                  v->width, v->height);
		return 0;
	}
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(value, formats[i].name) == 0)
			return try_format(c, formats[i].fourcc, v->width, v->height, e);
	return ms_err_set(e, "invalid value '%s' for format: expected GREY, Y10, Y12, Y16, YUYV or UYVY",
	                  value);
}

static void unmap_all(struct v4l2 *v)
{
	for (unsigned i = 0; i < v->nbuf; i++)
		if (v->maps[i].start && v->maps[i].start != MAP_FAILED)
			munmap(v->maps[i].start, v->maps[i].len);
	free(v->maps);
	free(v->bufs);
	free(v->conv);
	v->maps = NULL;
	v->bufs = NULL;
	v->conv = NULL;
	struct v4l2_requestbuffers req = { .count = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
	                                   .memory = V4L2_MEMORY_MMAP };
	xioctl(v->fd, VIDIOC_REQBUFS, &req);
	v->nbuf = 0;
}

static bool little_endian(void)
{
	const uint16_t one = 1;
	return *(const unsigned char *)&one == 1;
}

static int v4l2_start(struct ms_camera *c, unsigned nbuffers, ms_err *e)
{
	struct v4l2 *v = V(c);
	struct v4l2_requestbuffers req = { .count = nbuffers, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
	                                   .memory = V4L2_MEMORY_MMAP };
	if (xioctl(v->fd, VIDIOC_REQBUFS, &req) < 0)
		return ms_err_set(e, "cannot allocate %u streaming buffers:", nbuffers);
	if (req.count < 2) {
		unmap_all(v);
		return ms_err_set(e, "the driver gave %u streaming buffers; at least 2 are needed", req.count);
	}
	v->nbuf = req.count;
	v->maps = calloc(v->nbuf, sizeof *v->maps);
	v->bufs = calloc(v->nbuf, sizeof *v->bufs);
	size_t fb = ms_frame_bytes(&c->info);
	bool zero_copy = v->bytesperline == v->width * ms_pixfmt_bytes(c->info.fmt) &&
	                 (v->pixfmt == V4L2_PIX_FMT_GREY || (c->info.fmt == MS_PIX_U16 && little_endian()));
	if (!zero_copy)
		v->conv = malloc(fb * v->nbuf);
	if (!v->maps || !v->bufs || (!zero_copy && !v->conv)) {
		unmap_all(v);
		return ms_err_set(e, "out of memory for %u buffers", nbuffers);
	}
	for (unsigned i = 0; i < v->nbuf; i++) {
		struct v4l2_buffer b = { .index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		                         .memory = V4L2_MEMORY_MMAP };
		if (xioctl(v->fd, VIDIOC_QUERYBUF, &b) < 0) {
			unmap_all(v);
			return ms_err_set(e, "cannot query streaming buffer %u:", i);
		}
		v->maps[i].len = b.length;
		v->maps[i].start = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, b.m.offset);
		if (v->maps[i].start == MAP_FAILED) {
			unmap_all(v);
			return ms_err_set(e, "cannot map streaming buffer %u:", i);
		}
		if (b.length < (size_t)v->bytesperline * v->height) {
			unmap_all(v);
			return ms_err_set(e, "streaming buffer %u holds %u bytes, less than a frame", i, b.length);
		}
		v->bufs[i].index = i;
		v->bufs[i].frame.pixels = zero_copy ? v->maps[i].start : v->conv + (size_t)i * fb;
		if (xioctl(v->fd, VIDIOC_QBUF, &b) < 0) {
			unmap_all(v);
			return ms_err_set(e, "cannot queue streaming buffer %u:", i);
		}
	}
	enum v4l2_buf_type type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	if (xioctl(v->fd, VIDIOC_STREAMON, &type) < 0) {
		unmap_all(v);
		return ms_err_set(e, "cannot start streaming:");
	}
	v->have_seq = false;
	v->seq = 0;
	return 0;
}

/* The driver's frame into the tight u8/u16 frame mstk carries. */
static void convert(const struct v4l2 *v, const unsigned char *src, unsigned char *dst)
{
	uint32_t w = v->width;
	for (uint32_t y = 0; y < v->height; y++) {
		const unsigned char *s = src + (size_t)y * v->bytesperline;
		switch (v->pixfmt) {
		case V4L2_PIX_FMT_GREY:
			memcpy(dst + (size_t)y * w, s, w);
			break;
		case V4L2_PIX_FMT_YUYV:
		case V4L2_PIX_FMT_UYVY: {
			unsigned char *d = dst + (size_t)y * w;
			size_t off = v->pixfmt == V4L2_PIX_FMT_UYVY;
			for (uint32_t x = 0; x < w; x++)
				d[x] = s[2 * x + off];
			break;
		}
		default: {
			/* Y10/Y12/Y16: little-endian 16-bit words. */
			uint16_t *d = (uint16_t *)(void *)(dst + (size_t)y * w * 2);
			for (uint32_t x = 0; x < w; x++)
				d[x] = (uint16_t)(s[2 * x] | s[2 * x + 1] << 8);
			break;
		}
		}
	}
}

static int v4l2_take(struct ms_camera *c, struct ms_cam_buf **buf, int timeout_ms, ms_err *e)
{
	struct v4l2 *v = V(c);
	for (;;) {
		struct pollfd p = { .fd = v->fd, .events = POLLIN };
		int rc = poll(&p, 1, timeout_ms);
		if (rc < 0 && errno != EINTR)
			return ms_err_set(e, "%s: waiting for a frame:", v->path);
		if (rc <= 0)
			return MS_CAM_WAIT;
		if (p.revents & (POLLERR | POLLHUP) && !(p.revents & POLLIN))
			return ms_err_set(e, "%s: the device stopped streaming (disconnected?)", v->path);
		struct v4l2_buffer b = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP };
		if (xioctl(v->fd, VIDIOC_DQBUF, &b) < 0) {
			if (errno == EAGAIN)
				return MS_CAM_WAIT;
			return ms_err_set(e, "%s: cannot dequeue a frame:", v->path);
		}
		uint64_t host_real = ms_now_ns(), host_mono = ms_cam_mono_ns();
		/* Sequence numbers: gaps are frames the driver lost. */
		uint32_t gap = v->have_seq ? b.sequence - v->last_seq - 1 : 0;
		if (gap < 0x80000000u) {
			c->health.drops += gap;
			v->seq += gap;
		}
		v->have_seq = true;
		v->last_seq = b.sequence;
		if ((b.flags & V4L2_BUF_FLAG_ERROR) || b.index >= v->nbuf ||
		    b.bytesused < (size_t)v->bytesperline * (v->height - 1) + (size_t)v->width * v->src_bpp) {
			c->health.drops++;
			v->seq++;
			xioctl(v->fd, VIDIOC_QBUF, &b);
			timeout_ms = 0;
			continue;
		}
		struct ms_cam_buf *cb = &v->bufs[b.index];
		if (v->conv)
			convert(v, v->maps[b.index].start, (unsigned char *)cb->frame.pixels);
		uint64_t t = host_real;
		if ((b.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK) == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC &&
		    (b.timestamp.tv_sec || b.timestamp.tv_usec)) {
			uint64_t dev = (uint64_t)b.timestamp.tv_sec * 1000000000u +
			               (uint64_t)b.timestamp.tv_usec * 1000u;
			if (dev <= host_mono)
				t = host_real - (host_mono - dev);
		}
		cb->frame.seq = v->seq++;
		cb->frame.t_ns = t;
		*buf = cb;
		return MS_CAM_FRAME;
	}
}

static void v4l2_give(struct ms_camera *c, struct ms_cam_buf *buf)
{
	struct v4l2 *v = V(c);
	struct v4l2_buffer b = { .index = buf->index, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
	                         .memory = V4L2_MEMORY_MMAP };
	xioctl(v->fd, VIDIOC_QBUF, &b);
}

static int v4l2_stop(struct ms_camera *c, ms_err *e)
{
	struct v4l2 *v = V(c);
	enum v4l2_buf_type type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	int rc = xioctl(v->fd, VIDIOC_STREAMOFF, &type) < 0 ? ms_err_set(e, "cannot stop streaming:") : 0;
	unmap_all(v);
	return rc;
}

static double v4l2_fps(struct ms_camera *c)
{
	struct v4l2 *v = V(c);
	struct v4l2_streamparm p = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	if (!v->has_fps || xioctl(v->fd, VIDIOC_G_PARM, &p) < 0 || !p.parm.capture.timeperframe.numerator)
		return 0;
	return (double)p.parm.capture.timeperframe.denominator / p.parm.capture.timeperframe.numerator;
}

int ms_cam_v4l2_list(ms_cam_list_fn *fn, void *ctx, ms_err *e)
{
	(void)e;
	DIR *d = opendir("/dev");
	if (!d)
		return 0;
	/* Sorted by number, so that video10 follows video9. */
	long nums[256];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < sizeof nums / sizeof nums[0]) {
		long k;
		char tail;
		if (sscanf(de->d_name, "video%ld%c", &k, &tail) == 1 && k >= 0)
			nums[n++] = k;
	}
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
			long t = nums[j];
			nums[j] = nums[j - 1];
			nums[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		char path[64], name[80], desc[300];
		snprintf(path, sizeof path, "/dev/video%ld", nums[i]);
		int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct v4l2_capability cap = { 0 };
		if (xioctl(fd, VIDIOC_QUERYCAP, &cap) == 0) {
			uint32_t caps = cap.capabilities & V4L2_CAP_DEVICE_CAPS ? cap.device_caps
			                                                        : cap.capabilities;
			if ((caps & V4L2_CAP_VIDEO_CAPTURE) && (caps & V4L2_CAP_STREAMING)) {
				snprintf(name, sizeof name, "v4l2:%s", path);
				snprintf(desc, sizeof desc, "%s (V4L2 %s)", (const char *)cap.card,
				         (const char *)cap.driver);
				fn(ctx, name, desc);
			}
		}
		close(fd);
	}
	return 0;
}

const struct ms_cam_ops ms_cam_v4l2_ops = {
	.scheme = "v4l2",
	.open = v4l2_open,
	.close = v4l2_close,
	.get = v4l2_get,
	.set = v4l2_set,
	.start = v4l2_start,
	.take = v4l2_take,
	.give = v4l2_give,
	.stop = v4l2_stop,
	.nominal_fps = v4l2_fps,
};
