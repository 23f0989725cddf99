/*
 * camera: the device-independent half of the camera interface (see
 * camera.h): picking the backend from the device name, the settings every
 * camera has (nm_per_px, timeout), the health counters and statistics
 * window, and the device-clock conversion the backends share.
 */
#include "camera.h"
#include "cam_backend.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DEFAULT_TIMEOUT_S 1.0
/* Timeouts are never counted sooner than this many frame periods. */
#define TIMEOUT_PERIODS 2.5

static const struct ms_cam_setting generic_settings[] = {
	{ "nm_per_px", "pixel size in the sample, nm, for the stream header (0: unknown)", MS_CAM_IDLE },
	{ "timeout", "seconds without a frame that count as one timeout (1)", 0 },
};
#define NGENERIC (sizeof generic_settings / sizeof generic_settings[0])

uint64_t ms_cam_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char device_forms[] =
	"one of replay:FILE, v4l2:/dev/videoN, aravis:NAME, aravis: (the first camera) "
	"or fake: (Aravis' fake camera)";

/* The backend for a device name, and the argument after the scheme. */
static const struct ms_cam_ops *pick_backend(const char *device, const char **arg, ms_err *e)
{
	static const struct {
		const char *prefix;
		const struct ms_cam_ops *ops;
	} schemes[] = {
		{ "replay:", &ms_cam_replay_ops },
		{ "v4l2:", &ms_cam_v4l2_ops },
		{ "aravis:", &ms_cam_aravis_ops },
		{ "fake:", &ms_cam_aravis_ops },
	};
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncmp(device, schemes[i].prefix, n) == 0) {
			/* fake: is Aravis' fake camera whatever follows. */
			*arg = strcmp(schemes[i].prefix, "fake:") == 0 ? "fake" : device + n;
			return schemes[i].ops;
		}
	}
	ms_err_set(e, "unknown device '%s': expected %s", device, device_forms);
	return NULL;
}

struct ms_camera *ms_camera_open(const char *device, ms_err *e)
{
	const char *arg;
	const struct ms_cam_ops *ops = pick_backend(device, &arg, e);
	if (!ops)
		return NULL;
	struct ms_camera *c = calloc(1, sizeof *c);
	if (!c || !(c->device = strdup(device))) {
		free(c);
		ms_err_set(e, "out of memory");
		return NULL;
	}
	c->ops = ops;
	c->timeout_s = DEFAULT_TIMEOUT_S;
	if (ops->open(c, arg, e) < 0) {
		free(c->settings);
		free(c->device);
		free(c);
		return NULL;
	}
	c->dev_nm_per_px = c->info.nm_per_px;
	/* A backend without settings of its own still has the generic ones. */
	if (!c->settings && ms_cam_set_settings(c, NULL, 0, e) < 0) {
		ms_camera_close(c);
		return NULL;
	}
	return c;
}

void ms_camera_close(struct ms_camera *c)
{
	if (!c)
		return;
	if (c->acquiring)
		ms_camera_stop(c, NULL);
	c->ops->close(c);
	free(c->settings);
	free(c->device);
	free(c);
}

const char *ms_camera_device(const struct ms_camera *c)
{
	return c->device;
}

const char *ms_camera_description(const struct ms_camera *c)
{
	return c->desc;
}

const struct ms_frame_info *ms_camera_info(const struct ms_camera *c)
{
	return &c->info;
}

int ms_cam_set_settings(struct ms_camera *c, const struct ms_cam_setting *s, size_t n, ms_err *e)
{
	struct ms_cam_setting *all = calloc(n + NGENERIC, sizeof *all);
	if (!all)
		return ms_err_set(e, "out of memory");
	if (n)
		memcpy(all, s, n * sizeof *s);
	memcpy(all + n, generic_settings, sizeof generic_settings);
	free(c->settings);
	c->settings = all;
	c->nsettings = n + NGENERIC;
	return 0;
}

size_t ms_camera_nsettings(const struct ms_camera *c)
{
	return c->nsettings;
}

const struct ms_cam_setting *ms_camera_setting(const struct ms_camera *c, size_t i)
{
	return i < c->nsettings ? &c->settings[i] : NULL;
}

static const struct ms_cam_setting *find_setting(const struct ms_camera *c, const char *name,
                                                 ms_err *e)
{
	for (size_t i = 0; i < c->nsettings; i++)
		if (strcmp(c->settings[i].name, name) == 0)
			return &c->settings[i];
	char known[512] = "";
	size_t len = 0;
	for (size_t i = 0; i < c->nsettings && len < sizeof known; i++)
		len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
		                        c->settings[i].name);
	ms_err_set(e, "unknown setting '%s' for '%s'; it has: %s", name, c->device, known);
	return NULL;
}

static bool is_generic(const struct ms_camera *c, const struct ms_cam_setting *s)
{
	return s >= c->settings + (c->nsettings - NGENERIC);
}

int ms_camera_get(struct ms_camera *c, const char *name, char *buf, size_t n, ms_err *e)
{
	const struct ms_cam_setting *s = find_setting(c, name, e);
	if (!s)
		return -1;
	if (!is_generic(c, s))
		return c->ops->get(c, name, buf, n, e);
	if (strcmp(name, "nm_per_px") == 0)
		snprintf(buf, n, "%.6g", c->info.nm_per_px);
	else
		snprintf(buf, n, "%.6g", c->timeout_s);
	return 0;
}

int ms_camera_set(struct ms_camera *c, const char *name, const char *value, ms_err *e)
{
	const struct ms_cam_setting *s = find_setting(c, name, e);
	if (!s)
		return -1;
	if (s->flags & MS_CAM_RO)
		return ms_err_set(e, "'%s': setting '%s' is read-only", c->device, name);
	if ((s->flags & MS_CAM_IDLE) && c->acquiring)
		return ms_err_set(e, "'%s': setting '%s' cannot change while acquiring "
		                  "(the frame geometry is fixed until the camera stops)", c->device, name);
	if (!is_generic(c, s)) {
		if (c->ops->set(c, name, value, e) < 0)
			return ms_err_prefix(e, "'%s'", c->device);
		if (c->nm_per_px > 0)
			c->info.nm_per_px = c->nm_per_px;
		return 0;
	}
	double v;
	if (strcmp(name, "nm_per_px") == 0) {
		if (ms_cam_parse_double(name, value, 0, 1e6, &v, e) < 0)
			return ms_err_prefix(e, "'%s'", c->device);
		c->nm_per_px = v;
		c->info.nm_per_px = v > 0 ? v : c->dev_nm_per_px;
		return 0;
	}
	if (ms_cam_parse_double(name, value, 0.001, 3600, &v, e) < 0)
		return ms_err_prefix(e, "'%s'", c->device);
	c->timeout_s = v;
	return 0;
}

int ms_camera_assign(struct ms_camera *c, const char *assignment, ms_err *e)
{
	const char *eq = strchr(assignment, '=');
	if (!eq || eq == assignment)
		return ms_err_set(e, "invalid setting '%s': expected NAME=VALUE", assignment);
	char name[64];
	size_t n = (size_t)(eq - assignment);
	if (n >= sizeof name)
		return ms_err_set(e, "invalid setting '%s': name too long", assignment);
	memcpy(name, assignment, n);
	name[n] = '\0';
	return ms_camera_set(c, name, eq + 1, e);
}

int ms_camera_start(struct ms_camera *c, unsigned nbuffers, ms_err *e)
{
	if (c->acquiring)
		return ms_err_set(e, "'%s': already acquiring", c->device);
	if (nbuffers < 2 || nbuffers > 4096)
		return ms_err_set(e, "'%s': %u buffers: the pool needs 2 to 4096", c->device, nbuffers);
	if (c->ops->start(c, nbuffers, e) < 0)
		return ms_err_prefix(e, "'%s'", c->device);
	c->acquiring = true;
	c->taken = 0;
	c->health.consecutive_timeouts = 0;
	c->wait_since_ns = c->stats_mono_ns = ms_cam_mono_ns();
	c->stats_frames = c->health.frames;
	return 0;
}

/* How long without a frame counts as a timeout, in ns. */
static uint64_t timeout_ns(struct ms_camera *c)
{
	double limit = c->timeout_s;
	double fps = c->ops->nominal_fps ? c->ops->nominal_fps(c) : 0;
	if (fps > 0 && TIMEOUT_PERIODS / fps > limit)
		limit = TIMEOUT_PERIODS / fps;
	return (uint64_t)(limit * 1e9);
}

int ms_camera_take(struct ms_camera *c, struct ms_cam_buf **buf, int timeout_ms, ms_err *e)
{
	if (!c->acquiring)
		return ms_err_set(e, "'%s': not acquiring", c->device);
	uint64_t now = ms_cam_mono_ns();
	uint64_t deadline = now + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	/* Wait in pieces that end at each timeout, so that every one is counted. */
	for (;;) {
		uint64_t due = c->wait_since_ns + timeout_ns(c);
		uint64_t until = due < deadline ? due : deadline;
		int ms = until > now ? (int)((until - now + 999999) / 1000000) : 0;
		int rc = c->ops->take(c, buf, ms, e);
		now = ms_cam_mono_ns();
		if (rc == MS_CAM_FRAME) {
			c->taken++;
			c->health.frames++;
			c->health.consecutive_timeouts = 0;
			c->health.last_frame_ns = ms_now_ns();
			c->wait_since_ns = now;
			(*buf)->frame.info = c->info;
			return rc;
		}
		if (rc == MS_CAM_ERR)
			return ms_err_prefix(e, "'%s'", c->device);
		if (rc != MS_CAM_WAIT)
			return rc;
		if (now >= due) {
			c->health.timeouts++;
			c->health.consecutive_timeouts++;
			c->wait_since_ns = now;
		}
		if (now >= deadline)
			return MS_CAM_WAIT;
	}
}

void ms_camera_give(struct ms_camera *c, struct ms_cam_buf *buf)
{
	if (!buf)
		return;
	c->taken--;
	c->ops->give(c, buf);
}

int ms_camera_stop(struct ms_camera *c, ms_err *e)
{
	if (!c->acquiring)
		return 0;
	c->acquiring = false;
	if (c->ops->stop(c, e) < 0)
		return ms_err_prefix(e, "'%s'", c->device);
	return 0;
}

bool ms_camera_acquiring(const struct ms_camera *c)
{
	return c->acquiring;
}

void ms_camera_health(const struct ms_camera *c, struct ms_cam_health *h)
{
	*h = c->health;
}

void ms_camera_stats_line(struct ms_camera *c, char *buf, size_t n)
{
	uint64_t now = ms_cam_mono_ns();
	double dt = (double)(now - c->stats_mono_ns) / 1e9;
	uint64_t frames = c->health.frames - c->stats_frames;
	snprintf(buf, n, "%.1f frames/s, %" PRIu64 " frames, %" PRIu64 " dropped, %" PRIu64 " timeouts",
	         dt > 0 ? (double)frames / dt : 0.0, c->health.frames, c->health.drops,
	         c->health.timeouts);
	c->stats_mono_ns = now;
	c->stats_frames = c->health.frames;
}

int ms_camera_list(ms_cam_list_fn *fn, void *ctx, ms_err *e)
{
	if (ms_cam_aravis_list(fn, ctx, e) < 0)
		return -1;
	return ms_cam_v4l2_list(fn, ctx, e);
}

void ms_cam_clock_init(struct ms_cam_clock *k, uint64_t window_ns)
{
	*k = (struct ms_cam_clock){ .window_ns = window_ns };
}

uint64_t ms_cam_clock_convert(struct ms_cam_clock *k, uint64_t device_ns, uint64_t host_ns)
{
	int64_t d = (int64_t)(host_ns - device_ns);
	if (!k->valid) {
		k->valid = true;
		k->offset = k->wmin = d;
		k->wstart = host_ns;
	} else {
		/* Less latency than any frame so far: a better offset at once. */
		if (d < k->offset)
			k->offset = d;
		if (d < k->wmin)
			k->wmin = d;
		/* A window's best follows a drifting device clock either way. */
		if (host_ns - k->wstart >= k->window_ns) {
			k->offset = k->wmin;
			k->wmin = d;
			k->wstart = host_ns;
		}
	}
	int64_t t = (int64_t)device_ns + k->offset;
	return t > 0 ? (uint64_t)t : host_ns;
}

int ms_cam_parse_double(const char *name, const char *v, double min, double max, double *out,
                        ms_err *e)
{
	double x;
	if (ms_parse_double(v, &x) < 0 || !isfinite(x))
		return ms_err_set(e, "invalid value '%s' for %s: not a number", v, name);
	if (x < min || x > max)
		return ms_err_set(e, "invalid value '%s' for %s: must be from %g to %g", v, name, min, max);
	*out = x;
	return 0;
}

int ms_cam_parse_bool(const char *name, const char *v, bool *out, ms_err *e)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return ms_err_set(e, "invalid value '%s' for %s: expected 1 or 0 (yes/no, true/false, on/off)",
	                  v, name);
}

/* Up to max comma-separated integers in [lo, hi]; returns how many. */
static int parse_ints(const char *v, long *out, int max, long lo, long hi)
{
	char buf[128];
	if (strlen(v) >= sizeof buf)
		return -1;
	strcpy(buf, v);
	int n = 0;
	for (char *p = buf, *comma;; p = comma + 1) {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (n == max || ms_parse_long(p, &out[n]) < 0 || out[n] < lo || out[n] > hi)
			return -1;
		n++;
		if (!comma)
			return n;
	}
}

int ms_cam_parse_roi(const char *name, const char *v, long roi[4], ms_err *e)
{
	if (parse_ints(v, roi, 4, 0, MS_FRAME_MAX_SIDE) != 4 || roi[2] < 1 || roi[3] < 1)
		return ms_err_set(e, "invalid value '%s' for %s: expected X,Y,WIDTH,HEIGHT in pixels "
		                  "(X, Y from 0; WIDTH, HEIGHT from 1)", v, name);
	return 0;
}

int ms_cam_parse_binning(const char *name, const char *v, long bin[2], ms_err *e)
{
	int n = parse_ints(v, bin, 2, 1, 64);
	if (n < 1)
		return ms_err_set(e, "invalid value '%s' for %s: expected N or NX,NY, from 1 to 64", v, name);
	if (n == 1)
		bin[1] = bin[0];
	return 0;
}

bool ms_camera_have_aravis(void)
{
#ifdef MS_HAVE_ARAVIS
	return true;
#else
	return false;
#endif
}
