/*
 * cam_aravis: GenICam cameras (GigE Vision, USB3 Vision) through Aravis
 * 0.8, and Aravis' own fake camera for tests (device aravis:NAME, aravis:
 * for the first camera found, fake: or aravis:fake). Acquisition is
 * Aravis' model itself: the pool is a set of ArvBuffers pushed into the
 * stream, popped when filled and pushed back when given. Mono8 gives u8;
 * Mono10, Mono12, Mono14 and Mono16 (unpacked, little-endian) give u16
 * with the values unscaled; packed and colour formats are refused, or
 * replaced at open by Mono8 or Mono16 when the camera has them.
 * Timestamps are the camera's, moved to the epoch by ms_cam_clock against
 * the host time of arrival; drops are Aravis' failed buffers (incomplete
 * frames) plus its underruns (a frame with no free buffer). Settings are
 * range-checked here, because Aravis passes out-of-range values through.
 *
 * The fake camera draws a known pattern (arv_fake_camera_set_fill_pattern),
 * so tests can check pixels, the region and the pixel format: the pixel at
 * sensor column X and row Y is (X + 2Y) mod 256 in Mono8 and
 * (37 (X + 2Y)) mod 65536 in Mono16.
 *
 * Built only when pkg-config finds aravis-0.8 (MS_HAVE_ARAVIS); otherwise
 * the devices are refused with a message that says how to get them.
 */
#include "cam_backend.h"

#include <string.h>

#ifdef MS_HAVE_ARAVIS

#include <arv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define MAX_SETTINGS 10
/* A device clock is re-measured against the host every this many ns. */
#define CLOCK_WINDOW_NS UINT64_C(10000000000)

struct aravis {
	ArvCamera *cam;
	ArvStream *stream;
	bool fake;
	ArvPixelFormat pf;
	int x, y, w, h;			/* the region; read by the fake fill thread */
	bool has_exposure, has_gain, has_fps, has_binning;
	struct ms_cam_setting settings[MAX_SETTINGS];
	unsigned nbuf;
	struct ms_cam_buf *bufs;
	struct ms_cam_clock clock;
	uint64_t delivered, dropped;	/* this acquisition */
	uint64_t counted;		/* Aravis' failures + underruns already counted */
	size_t payload;			/* bytes per buffer */
};

static struct aravis *A(struct ms_camera *c)
{
	return c->priv;
}

/* Move a GError into e; returns -1. */
static int gerr(GError **ge, ms_err *e, const char *what)
{
	ms_err_set(e, "%s: %s", what, *ge && (*ge)->message ? (*ge)->message : "unknown error");
	g_clear_error(ge);
	return -1;
}

static bool pixfmt_ok(ArvPixelFormat pf, enum ms_pixfmt *out)
{
	switch (pf) {
	case ARV_PIXEL_FORMAT_MONO_8:
		*out = MS_PIX_U8;
		return true;
	case ARV_PIXEL_FORMAT_MONO_10:
	case ARV_PIXEL_FORMAT_MONO_12:
	case ARV_PIXEL_FORMAT_MONO_14:
	case ARV_PIXEL_FORMAT_MONO_16:
		*out = MS_PIX_U16;
		return true;
	default:
		return false;
	}
}

/* Region, pixel format and geometry as the camera has them now. */
static int refresh(struct ms_camera *c, ms_err *e)
{
	struct aravis *a = A(c);
	GError *ge = NULL;
	arv_camera_get_region(a->cam, &a->x, &a->y, &a->w, &a->h, &ge);
	if (ge)
		return gerr(&ge, e, "cannot read the region");
	a->pf = arv_camera_get_pixel_format(a->cam, &ge);
	if (ge)
		return gerr(&ge, e, "cannot read the pixel format");
	enum ms_pixfmt fmt = MS_PIX_NONE;
	pixfmt_ok(a->pf, &fmt);
	c->info.width = (uint32_t)a->w;
	c->info.height = (uint32_t)a->h;
	c->info.fmt = fmt;
	return 0;
}

/* The fake camera's pattern: a ramp over sensor coordinates. */
static void fake_fill(ArvBuffer *buf, void *data, guint32 exposure_us, guint32 gain,
                      ArvPixelFormat pf)
{
	const struct aravis *a = data;
	(void)exposure_us;
	(void)gain;
	int w = arv_buffer_get_image_width(buf), h = arv_buffer_get_image_height(buf);
	void *px = (void *)arv_buffer_get_data(buf, NULL);
	if (!px || w <= 0 || h <= 0)
		return;
	for (int r = 0; r < h; r++)
		for (int col = 0; col < w; col++) {
			unsigned v = (unsigned)(a->x + col + 2 * (a->y + r));
			if (pf == ARV_PIXEL_FORMAT_MONO_8)
				((uint8_t *)px)[(size_t)r * (size_t)w + (size_t)col] = (uint8_t)v;
			else if (pf == ARV_PIXEL_FORMAT_MONO_16)
				((uint16_t *)px)[(size_t)r * (size_t)w + (size_t)col] = (uint16_t)(37 * v);
		}
}

static bool is_fake_name(const char *arg)
{
	return g_ascii_strcasecmp(arg, "fake") == 0 || strncmp(arg, "Fake_", 5) == 0;
}

static void add_setting(struct aravis *a, size_t *n, const char *name, const char *help, unsigned fl)
{
	a->settings[(*n)++] = (struct ms_cam_setting){ name, help, fl };
}

static int aravis_open(struct ms_camera *c, const char *arg, ms_err *e)
{
	struct aravis *a = calloc(1, sizeof *a);
	if (!a)
		return ms_err_set(e, "out of memory");
	c->priv = a;
	GError *ge = NULL;
	a->fake = is_fake_name(arg);
	const char *id = *arg ? arg : NULL;
	if (a->fake) {
		/* Process-wide in Aravis, and harmless to repeat. */
		arv_enable_interface("Fake");
		id = g_ascii_strcasecmp(arg, "fake") == 0 ? "Fake_1" : arg;
	}
	a->cam = arv_camera_new(id, &ge);
	if (!a->cam) {
		if (id)
			ms_err_set(e, "cannot open GenICam camera '%s': %s (ms-capture --list shows the cameras)",
			           id, ge ? ge->message : "not found");
		else
			ms_err_set(e, "no GenICam camera found (%s)", ge ? ge->message : "none");
		g_clear_error(&ge);
		goto fail;
	}
	if (a->fake) {
		ArvDevice *dev = arv_camera_get_device(a->cam);
		if (ARV_IS_FAKE_DEVICE(dev))
			arv_fake_camera_set_fill_pattern(arv_fake_device_get_fake_camera(ARV_FAKE_DEVICE(dev)),
			                                 fake_fill, a);
	}
	const char *vendor = arv_camera_get_vendor_name(a->cam, NULL);
	const char *model = arv_camera_get_model_name(a->cam, NULL);
	const char *serial = arv_camera_get_device_serial_number(a->cam, NULL);
	snprintf(c->desc, sizeof c->desc, "%s %s (serial %s, %s)", vendor ? vendor : "?",
	         model ? model : "?", serial ? serial : "?",
	         a->fake ? "Aravis fake camera" : arv_camera_is_gv_device(a->cam) ? "GigE Vision"
	         : arv_camera_is_uv_device(a->cam) ? "USB3 Vision" : "GenICam");
	if (refresh(c, e) < 0)
		goto fail;
	if (c->info.fmt == MS_PIX_NONE) {
		/* A colour or packed default: take a plain mono format if there is one. */
		arv_camera_set_pixel_format(a->cam, ARV_PIXEL_FORMAT_MONO_8, &ge);
		g_clear_error(&ge);
		if (refresh(c, e) < 0)
			goto fail;
		if (c->info.fmt == MS_PIX_NONE) {
			arv_camera_set_pixel_format(a->cam, ARV_PIXEL_FORMAT_MONO_16, &ge);
			g_clear_error(&ge);
			if (refresh(c, e) < 0)
				goto fail;
		}
		if (c->info.fmt == MS_PIX_NONE) {
			guint n = 0;
			const char **names = arv_camera_dup_available_pixel_formats_as_strings(a->cam, &n, NULL);
			char have[256] = "";
			size_t len = 0;
			for (guint i = 0; names && i < n && len < sizeof have; i++)
				len += (size_t)snprintf(have + len, sizeof have - len, "%s%s", i ? ", " : "", names[i]);
			g_free(names);
			ms_err_set(e, "camera '%s' has no pixel format mstk reads (Mono8, Mono10, Mono12, "
			           "Mono14, Mono16); it has: %s", c->desc, have);
			goto fail;
		}
	}
	size_t n = 0;
	a->has_exposure = arv_camera_is_exposure_time_available(a->cam, NULL);
	a->has_gain = arv_camera_is_gain_available(a->cam, NULL);
	a->has_fps = arv_camera_is_frame_rate_available(a->cam, NULL);
	a->has_binning = arv_camera_is_binning_available(a->cam, NULL);
	if (a->has_exposure)
		add_setting(a, &n, "exposure", "exposure time, us", 0);
	if (a->has_gain)
		add_setting(a, &n, "gain", "gain, in the camera's units (dB for most)", 0);
	if (a->has_fps)
		add_setting(a, &n, "fps", "frames per second", 0);
	add_setting(a, &n, "roi", "X,Y,WIDTH,HEIGHT: the sensor region read out", MS_CAM_IDLE);
	if (a->has_binning)
		add_setting(a, &n, "binning", "N or NX,NY: pixels summed per output pixel", MS_CAM_IDLE);
	add_setting(a, &n, "format", "pixel format: Mono8, Mono10, Mono12, Mono14, Mono16, "
	            "or u8 / u16 for the deepest the camera has", MS_CAM_IDLE);
	add_setting(a, &n, "sensor", "full sensor size, WIDTH,HEIGHT", MS_CAM_RO);
	if (ms_cam_set_settings(c, a->settings, n, e) < 0)
		goto fail;
	return 0;
fail:
	if (a->cam)
		g_object_unref(a->cam);
	free(a);
	c->priv = NULL;
	return -1;
}

static void aravis_close(struct ms_camera *c)
{
	struct aravis *a = A(c);
	if (a->fake) {
		/* The fake camera outlives us inside Aravis: take our callback back. */
		ArvDevice *dev = arv_camera_get_device(a->cam);
		if (ARV_IS_FAKE_DEVICE(dev))
			arv_fake_camera_set_fill_pattern(arv_fake_device_get_fake_camera(ARV_FAKE_DEVICE(dev)),
			                                 NULL, NULL);
	}
	g_object_unref(a->cam);
	free(a);
}

static int aravis_get(struct ms_camera *c, const char *name, char *buf, size_t n, ms_err *e)
{
	struct aravis *a = A(c);
	GError *ge = NULL;
	if (strcmp(name, "exposure") == 0) {
		double v = arv_camera_get_exposure_time(a->cam, &ge);
		snprintf(buf, n, "%.6g", v);
	} else if (strcmp(name, "gain") == 0) {
		double v = arv_camera_get_gain(a->cam, &ge);
		snprintf(buf, n, "%.6g", v);
	} else if (strcmp(name, "fps") == 0) {
		double v = arv_camera_get_frame_rate(a->cam, &ge);
		snprintf(buf, n, "%.6g", v);
	} else if (strcmp(name, "roi") == 0) {
		int x, y, w, h;
		arv_camera_get_region(a->cam, &x, &y, &w, &h, &ge);
		snprintf(buf, n, "%d,%d,%d,%d", x, y, w, h);
	} else if (strcmp(name, "binning") == 0) {
		int bx, by;
		arv_camera_get_binning(a->cam, &bx, &by, &ge);
		snprintf(buf, n, "%d,%d", bx, by);
	} else if (strcmp(name, "format") == 0) {
		const char *s = arv_camera_get_pixel_format_as_string(a->cam, &ge);
		snprintf(buf, n, "%s", s ? s : "?");
	} else {
		int w, h;
		arv_camera_get_sensor_size(a->cam, &w, &h, &ge);
		snprintf(buf, n, "%d,%d", w, h);
	}
	if (ge) {
		char what[80];
		snprintf(what, sizeof what, "cannot read %s", name);
		return gerr(&ge, e, what);
	}
	return 0;
}

/* A float feature through its bounds, which Aravis does not enforce. */
static int set_bounded(struct aravis *a, const char *name, const char *value, const char *unit,
                       void (*bounds)(ArvCamera *, double *, double *, GError **),
                       void (*set)(ArvCamera *, double, GError **), ms_err *e)
{
	GError *ge = NULL;
	double lo = 0, hi = 0, v;
	bounds(a->cam, &lo, &hi, &ge);
	if (ge)
		return gerr(&ge, e, "cannot read the bounds");
	if (ms_parse_double(value, &v) < 0 || !isfinite(v))
		return ms_err_set(e, "invalid value '%s' for %s: not a number", value, name);
	if (v < lo || v > hi)
		return ms_err_set(e, "invalid value '%s' for %s: this camera takes %g to %g%s%s", value, name,
		                  lo, hi, *unit ? " " : "", unit);
	set(a->cam, v, &ge);
	if (ge) {
		char what[80];
		snprintf(what, sizeof what, "cannot set %s to '%s'", name, value);
		return gerr(&ge, e, what);
	}
	return 0;
}

/* Whether v lies in [lo, hi] on the grid lo + k * inc. */
static bool on_grid(long v, long lo, long hi, long inc)
{
	return v >= lo && v <= hi && (inc <= 1 || (v - lo) % inc == 0);
}

static int set_roi(struct ms_camera *c, const char *value, ms_err *e)
{
	struct aravis *a = A(c);
	long r[4];
	if (ms_cam_parse_roi("roi", value, r, e) < 0)
		return -1;
	GError *ge = NULL;
	int sw, sh, bx = 1, by = 1, wlo, whi, hlo, hhi;
	arv_camera_get_sensor_size(a->cam, &sw, &sh, &ge);
	if (!ge && a->has_binning)
		arv_camera_get_binning(a->cam, &bx, &by, &ge);
	if (!ge)
		arv_camera_get_width_bounds(a->cam, &wlo, &whi, &ge);
	if (!ge)
		arv_camera_get_height_bounds(a->cam, &hlo, &hhi, &ge);
	if (ge)
		return gerr(&ge, e, "cannot read the region bounds");
	long maxw = sw / (bx > 0 ? bx : 1), maxh = sh / (by > 0 ? by : 1);
	long winc = arv_camera_get_width_increment(a->cam, NULL);
	long hinc = arv_camera_get_height_increment(a->cam, NULL);
	long xinc = 1, yinc = 1;
	if (arv_camera_is_region_offset_available(a->cam, NULL)) {
		xinc = arv_camera_get_x_offset_increment(a->cam, NULL);
		yinc = arv_camera_get_y_offset_increment(a->cam, NULL);
	} else if (r[0] || r[1]) {
		return ms_err_set(e, "invalid value '%s' for roi: this camera has no region offset, "
		                  "so X and Y must be 0", value);
	}
	if (r[0] + r[2] > maxw || r[1] + r[3] > maxh)
		return ms_err_set(e, "invalid value '%s' for roi: the sensor is %ldx%ld (at this binning)",
		                  value, maxw, maxh);
	if (!on_grid(r[2], wlo, whi, winc) || !on_grid(r[3], hlo, hhi, hinc) ||
	    !on_grid(r[0], 0, maxw, xinc) || !on_grid(r[1], 0, maxh, yinc))
		return ms_err_set(e, "invalid value '%s' for roi: width %d to %d in steps of %ld, height %d "
		                  "to %d in steps of %ld, X in steps of %ld, Y in steps of %ld", value, wlo,
		                  whi, winc, hlo, hhi, hinc, xinc, yinc);
	arv_camera_set_region(a->cam, (gint)r[0], (gint)r[1], (gint)r[2], (gint)r[3], &ge);
	if (ge)
		return gerr(&ge, e, "cannot set the region");
	if (refresh(c, e) < 0)
		return -1;
	if (a->x != r[0] || a->y != r[1] || a->w != r[2] || a->h != r[3])
		return ms_err_set(e, "invalid value '%s' for roi: the camera chose %d,%d,%d,%d", value, a->x,
		                  a->y, a->w, a->h);
	return 0;
}

static int set_format(struct ms_camera *c, const char *value, ms_err *e)
{
	struct aravis *a = A(c);
	static const char *const deep[] = { "Mono16", "Mono14", "Mono12", "Mono10" };
	GError *ge = NULL;
	const char *want = value;
	if (strcmp(value, "u8") == 0) {
		want = "Mono8";
	} else if (strcmp(value, "u16") == 0) {
		want = NULL;
		for (size_t i = 0; i < 4 && !want; i++)
			if (arv_camera_is_enumeration_entry_available(a->cam, "PixelFormat", deep[i], NULL))
				want = deep[i];
		if (!want)
			return ms_err_set(e, "invalid value 'u16' for format: the camera has no 16-bit mono format");
	} else {
		static const char *const ok[] = { "Mono8", "Mono10", "Mono12", "Mono14", "Mono16" };
		size_t i;
		for (i = 0; i < 5; i++)
			if (strcmp(value, ok[i]) == 0)
				break;
		if (i == 5)
			return ms_err_set(e, "invalid value '%s' for format: expected Mono8, Mono10, Mono12, "
			                  "Mono14, Mono16, u8 or u16", value);
	}
	if (!arv_camera_is_enumeration_entry_available(a->cam, "PixelFormat", want, NULL))
		return ms_err_set(e, "invalid value '%s' for format: the camera has no %s", value, want);
	arv_camera_set_pixel_format_from_string(a->cam, want, &ge);
	if (ge)
		return gerr(&ge, e, "cannot set the pixel format");
	return refresh(c, e);
}

static int aravis_set(struct ms_camera *c, const char *name, const char *value, ms_err *e)
{
	struct aravis *a = A(c);
	if (strcmp(name, "exposure") == 0)
		return set_bounded(a, name, value, "us", arv_camera_get_exposure_time_bounds,
		                   arv_camera_set_exposure_time, e);
	if (strcmp(name, "gain") == 0)
		return set_bounded(a, name, value, "", arv_camera_get_gain_bounds, arv_camera_set_gain, e);
	if (strcmp(name, "fps") == 0)
		return set_bounded(a, name, value, "frames/s", arv_camera_get_frame_rate_bounds,
		                   arv_camera_set_frame_rate, e);
	if (strcmp(name, "roi") == 0)
		return set_roi(c, value, e);
	if (strcmp(name, "format") == 0)
		return set_format(c, value, e);
	long bin[2];
	if (ms_cam_parse_binning(name, value, bin, e) < 0)
		return -1;
	GError *ge = NULL;
	int lo = 1, hi = 1;
	arv_camera_get_x_binning_bounds(a->cam, &lo, &hi, &ge);
	if (ge)
		return gerr(&ge, e, "cannot read the binning bounds");
	if (bin[0] < lo || bin[0] > hi || bin[1] < lo || bin[1] > hi)
		return ms_err_set(e, "invalid value '%s' for binning: this camera bins %d to %d", value, lo, hi);
	arv_camera_set_binning(a->cam, (gint)bin[0], (gint)bin[1], &ge);
	if (ge)
		return gerr(&ge, e, "cannot set the binning");
	return refresh(c, e);
}

static void free_pool(struct aravis *a)
{
	free(a->bufs);
	a->bufs = NULL;
	a->nbuf = 0;
}

static int aravis_start(struct ms_camera *c, unsigned nbuffers, ms_err *e)
{
	struct aravis *a = A(c);
	GError *ge = NULL;
	if (refresh(c, e) < 0)
		return -1;
	guint payload = arv_camera_get_payload(a->cam, &ge);
	if (ge)
		return gerr(&ge, e, "cannot read the payload size");
	size_t need = ms_frame_bytes(&c->info);
	if (payload < need)
		payload = (guint)need;
	/* GigE Vision: the largest packet the path carries, or frames arrive incomplete. */
	if (!a->fake && arv_camera_is_gv_device(a->cam)) {
		arv_camera_gv_auto_packet_size(a->cam, &ge);
		g_clear_error(&ge);
	}
	a->stream = arv_camera_create_stream(a->cam, NULL, NULL, &ge);
	if (!a->stream)
		return gerr(&ge, e, "cannot open the stream");
	a->payload = payload;
	a->bufs = calloc(nbuffers, sizeof *a->bufs);
	if (!a->bufs) {
		g_clear_object(&a->stream);
		return ms_err_set(e, "out of memory");
	}
	a->nbuf = nbuffers;
	for (unsigned i = 0; i < nbuffers; i++) {
		a->bufs[i].index = i;
		ArvBuffer *ab = arv_buffer_new_full(payload, NULL, &a->bufs[i], NULL);
		a->bufs[i].priv = ab;
		arv_stream_push_buffer(a->stream, ab);
	}
	ms_cam_clock_init(&a->clock, CLOCK_WINDOW_NS);
	a->delivered = a->dropped = a->counted = 0;
	arv_camera_set_acquisition_mode(a->cam, ARV_ACQUISITION_MODE_CONTINUOUS, &ge);
	if (!ge)
		arv_camera_start_acquisition(a->cam, &ge);
	if (ge) {
		gerr(&ge, e, "cannot start acquisition");
		g_clear_object(&a->stream);
		free_pool(a);
		return -1;
	}
	/*
	 * Drops count from here: the fake stream's thread runs from the
	 * stream's creation and counts an underrun if it wakes before the
	 * buffers are pushed.
	 */
	guint64 done = 0, failures = 0, underruns = 0;
	arv_stream_get_statistics(a->stream, &done, &failures, &underruns);
	a->counted = failures + underruns;
	return 0;
}

/* Aravis' own count of lost frames, into the health counters. */
static void count_drops(struct ms_camera *c, struct aravis *a)
{
	guint64 done = 0, failures = 0, underruns = 0;
	arv_stream_get_statistics(a->stream, &done, &failures, &underruns);
	uint64_t lost = failures + underruns;
	if (lost > a->counted) {
		c->health.drops += lost - a->counted;
		a->dropped += lost - a->counted;
		a->counted = lost;
	}
}

static int aravis_take(struct ms_camera *c, struct ms_cam_buf **buf, int timeout_ms, ms_err *e)
{
	struct aravis *a = A(c);
	for (;;) {
		ArvBuffer *ab = timeout_ms > 0
		                ? arv_stream_timeout_pop_buffer(a->stream, (guint64)timeout_ms * 1000u)
		                : arv_stream_try_pop_buffer(a->stream);
		count_drops(c, a);
		if (!ab)
			return MS_CAM_WAIT;
		struct ms_cam_buf *cb = (struct ms_cam_buf *)arv_buffer_get_user_data(ab);
		if (arv_buffer_get_status(ab) != ARV_BUFFER_STATUS_SUCCESS) {
			/* Counted by Aravis as a failure: back into the stream. */
			arv_stream_push_buffer(a->stream, ab);
			timeout_ms = 0;
			continue;
		}
		size_t size = 0;
		const void *px = arv_buffer_get_image_data(ab, &size);
		/* The fake stream leaves the received size at 0: the buffer is full size. */
		if (size == 0 && a->fake)
			size = a->payload;
		enum ms_pixfmt fmt;
		if (!pixfmt_ok(arv_buffer_get_image_pixel_format(ab), &fmt) || fmt != c->info.fmt ||
		    arv_buffer_get_image_width(ab) != a->w || arv_buffer_get_image_height(ab) != a->h ||
		    size < ms_frame_bytes(&c->info)) {
			arv_stream_push_buffer(a->stream, ab);
			return ms_err_set(e, "a frame of %dx%d, %zu bytes, does not match the %dx%d %s set",
			                  arv_buffer_get_image_width(ab), arv_buffer_get_image_height(ab), size,
			                  a->w, a->h, ms_pixfmt_name(c->info.fmt));
		}
		uint64_t host = arv_buffer_get_system_timestamp(ab);
		uint64_t dev = arv_buffer_get_timestamp(ab);
		if (!host)
			host = ms_now_ns();
		cb->frame.t_ns = dev ? ms_cam_clock_convert(&a->clock, dev, host) : host;
		cb->frame.seq = a->delivered + a->dropped;
		cb->frame.pixels = px;
		a->delivered++;
		*buf = cb;
		return MS_CAM_FRAME;
	}
}

static void aravis_give(struct ms_camera *c, struct ms_cam_buf *buf)
{
	arv_stream_push_buffer(A(c)->stream, buf->priv);
}

static int aravis_stop(struct ms_camera *c, ms_err *e)
{
	struct aravis *a = A(c);
	GError *ge = NULL;
	count_drops(c, a);
	arv_camera_stop_acquisition(a->cam, &ge);
	/* Unref stops the stream thread and frees every buffer it holds. */
	g_clear_object(&a->stream);
	free_pool(a);
	if (ge)
		return gerr(&ge, e, "cannot stop acquisition");
	return 0;
}

static double aravis_fps(struct ms_camera *c)
{
	struct aravis *a = A(c);
	return a->has_fps ? arv_camera_get_frame_rate(a->cam, NULL) : 0;
}

int ms_cam_aravis_list(ms_cam_list_fn *fn, void *ctx, ms_err *e)
{
	(void)e;
	arv_update_device_list();
	unsigned n = arv_get_n_devices();
	for (unsigned i = 0; i < n; i++) {
		const char *id = arv_get_device_id(i);
		if (!id)
			continue;
		char name[300], desc[300];
		snprintf(name, sizeof name, "aravis:%s", id);
		const char *vendor = arv_get_device_vendor(i), *model = arv_get_device_model(i);
		const char *proto = arv_get_device_protocol(i), *addr = arv_get_device_address(i);
		snprintf(desc, sizeof desc, "%s %s (%s%s%s)", vendor ? vendor : "?", model ? model : "?",
		         proto ? proto : "GenICam", addr ? " at " : "", addr ? addr : "");
		fn(ctx, name, desc);
	}
	fn(ctx, "fake:", "Aravis' fake GenICam camera, for tests (see ms-capture(1))");
	return 0;
}

const struct ms_cam_ops ms_cam_aravis_ops = {
	.scheme = "aravis",
	.open = aravis_open,
	.close = aravis_close,
	.get = aravis_get,
	.set = aravis_set,
	.start = aravis_start,
	.take = aravis_take,
	.give = aravis_give,
	.stop = aravis_stop,
	.nominal_fps = aravis_fps,
};

#else /* !MS_HAVE_ARAVIS */

static int aravis_open(struct ms_camera *c, const char *arg, ms_err *e)
{
	(void)arg;
	return ms_err_set(e, "device '%s' needs Aravis (GenICam), and this mstk was built without it "
	                  "(install libaravis-dev and rebuild)", c->device);
}

int ms_cam_aravis_list(ms_cam_list_fn *fn, void *ctx, ms_err *e)
{
	(void)fn;
	(void)ctx;
	(void)e;
	return 0;
}

const struct ms_cam_ops ms_cam_aravis_ops = {
	.scheme = "aravis",
	.open = aravis_open,
};

#endif
