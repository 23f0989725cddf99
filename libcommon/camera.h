/*
 * camera: one interface to every source of live frames, in the manner of
 * aravis. A camera is opened by a device name (replay:FILE, v4l2:/dev/videoN,
 * aravis:NAME, aravis: for the first GenICam camera, fake: for Aravis' fake
 * one), says its geometry and pixel format (u8 or u16), has named settings
 * that are read and written as text (exposure, gain, fps, roi, ... whatever
 * the device has), and acquires into a pool of buffers that the caller
 * takes, filled, and gives back. Every frame carries a sequence number and
 * an epoch timestamp. The camera keeps health counters (frames, drops,
 * timeouts) and formats the once-a-second statistics line.
 *
 * Settings are text on purpose: "--set exposure=2000" on a command line and
 * "set exposure=2000" on a control connection both end in ms_camera_assign,
 * and a get returns what a reply would carry. A camera belongs to one
 * thread; the backends may run threads of their own inside.
 */
#ifndef MS_CAMERA_H
#define MS_CAMERA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"

struct ms_camera;

/* What ms_camera_take returns. */
enum ms_cam_status {
	MS_CAM_ERR = -1,	/* e says what; acquisition cannot go on */
	MS_CAM_END = 0,		/* the source has no more frames (a replay) */
	MS_CAM_FRAME = 1,	/* *buf holds a frame */
	MS_CAM_WAIT = 2,	/* no frame within the wait; try again */
};

/* A buffer of the pool: filled by the camera, lent to the caller. */
struct ms_cam_buf {
	/*
	 * seq counts the camera's frames from 0 for each acquisition, so a
	 * dropped frame leaves a gap; t_ns is the epoch time of the exposure
	 * as well as the device tells it (see the backend notes in
	 * ms-capture(1)); pixels stay valid until the buffer is given back.
	 */
	struct ms_frame frame;
	unsigned index;		/* slot in the pool */
	void *priv;		/* the backend's */
};

/* Setting flags. */
enum {
	MS_CAM_RO = 1,		/* read-only */
	MS_CAM_IDLE = 2,	/* changes the geometry: only while not acquiring */
};

struct ms_cam_setting {
	const char *name;	/* "exposure" */
	const char *help;	/* "exposure time, us" */
	unsigned flags;
};

struct ms_cam_health {
	uint64_t frames;	/* frames delivered since the camera opened */
	/*
	 * Frames the camera made that never reached the caller: lost in
	 * transport, incomplete, or arrived when every buffer was taken.
	 */
	uint64_t drops;
	/* Waits longer than the frame timeout without a frame. */
	uint64_t timeouts;
	uint64_t consecutive_timeouts;	/* since the last frame */
	uint64_t last_frame_ns;		/* host clock at the last frame; 0: none */
};

/*
 * Open a camera by device name. A bad or missing device fails with a
 * message that names it and says what was expected.
 */
struct ms_camera *ms_camera_open(const char *device, ms_err *e);
/* Stops acquisition if needed and frees c (NULL is fine). */
void ms_camera_close(struct ms_camera *c);
/* The device name as opened ("fake:") and a description of the device. */
const char *ms_camera_device(const struct ms_camera *c);
const char *ms_camera_description(const struct ms_camera *c);
/* The geometry frames have now; changes with roi, binning and format. */
const struct ms_frame_info *ms_camera_info(const struct ms_camera *c);

/* The settings this camera has, the generic ones (nm_per_px, timeout) last. */
size_t ms_camera_nsettings(const struct ms_camera *c);
const struct ms_cam_setting *ms_camera_setting(const struct ms_camera *c, size_t i);
/*
 * Read a setting as text into buf. An unknown name fails with a message
 * that lists the names this camera knows.
 */
int ms_camera_get(struct ms_camera *c, const char *name, char *buf, size_t n, ms_err *e);
/* Write a setting; the message quotes a bad value and says what is allowed. */
int ms_camera_set(struct ms_camera *c, const char *name, const char *value, ms_err *e);
/* "NAME=VALUE", as on the command line or in a control command. */
int ms_camera_assign(struct ms_camera *c, const char *assignment, ms_err *e);

/*
 * Start acquiring into a pool of nbuffers buffers (at least 2). Health
 * counters keep counting across starts; sequence numbers restart at 0.
 */
int ms_camera_start(struct ms_camera *c, unsigned nbuffers, ms_err *e);
/*
 * Take the next filled buffer, waiting at most timeout_ms (0: do not
 * wait). Returns an enum ms_cam_status. A caller that holds every buffer
 * makes the camera drop frames, as a real camera does.
 */
int ms_camera_take(struct ms_camera *c, struct ms_cam_buf **buf, int timeout_ms, ms_err *e);
/* Give a taken buffer back to the pool. */
void ms_camera_give(struct ms_camera *c, struct ms_cam_buf *buf);
/* Stop acquiring; every taken buffer must have been given back. */
int ms_camera_stop(struct ms_camera *c, ms_err *e);
bool ms_camera_acquiring(const struct ms_camera *c);

void ms_camera_health(const struct ms_camera *c, struct ms_cam_health *h);
/*
 * The statistics line, without the program name or a newline:
 * "25.0 frames/s, 250 frames, 0 dropped, 0 timeouts" with the frame rate
 * over the time since the previous call (or the start).
 */
void ms_camera_stats_line(struct ms_camera *c, char *buf, size_t n);

/*
 * Call fn for every camera that can be opened here (device name and a
 * description), then for fake: when Aravis is built in.
 */
typedef void ms_cam_list_fn(void *ctx, const char *device, const char *description);
int ms_camera_list(ms_cam_list_fn *fn, void *ctx, ms_err *e);
/* Whether this build has the Aravis (GenICam) backend. */
bool ms_camera_have_aravis(void);

/*
 * Device clock to epoch, shared by the backends and tested on its own: a
 * device timestamp plus an offset, the offset being the smallest (host
 * arrival - device time) seen, re-measured every window so that a device
 * clock that drifts is followed. The smallest difference is the one with
 * the least transfer latency in it.
 */
struct ms_cam_clock {
	bool valid;
	int64_t offset;		/* epoch ns - device ns */
	int64_t wmin;		/* smallest difference in this window */
	uint64_t wstart;	/* host time the window began */
	uint64_t window_ns;
};
void ms_cam_clock_init(struct ms_cam_clock *k, uint64_t window_ns);
uint64_t ms_cam_clock_convert(struct ms_cam_clock *k, uint64_t device_ns, uint64_t host_ns);

#endif
