/*
 * cam_backend: what camera.c and the backends (cam_replay.c, cam_v4l2.c,
 * cam_aravis.c) share and nothing else sees. camera.c owns the generic
 * part (names, the settings every camera has, health counters, the
 * statistics window, argument checks); a backend owns its device, fills
 * in c->info and c->desc, and answers to the operations below. Backends
 * return -1 with e set on failure, as library code does everywhere.
 */
#ifndef MS_CAM_BACKEND_H
#define MS_CAM_BACKEND_H

#include "camera.h"

struct ms_cam_ops {
	const char *scheme;	/* "replay", "v4l2", "aravis" */
	/* arg: what follows "scheme:" in the device name. */
	int (*open)(struct ms_camera *c, const char *arg, ms_err *e);
	void (*close)(struct ms_camera *c);
	/* Called with a name from c->settings only. */
	int (*get)(struct ms_camera *c, const char *name, char *buf, size_t n, ms_err *e);
	int (*set)(struct ms_camera *c, const char *name, const char *value, ms_err *e);
	int (*start)(struct ms_camera *c, unsigned nbuffers, ms_err *e);
	/* An enum ms_cam_status; timeout_ms >= 0. */
	int (*take)(struct ms_camera *c, struct ms_cam_buf **buf, int timeout_ms, ms_err *e);
	void (*give)(struct ms_camera *c, struct ms_cam_buf *buf);
	int (*stop)(struct ms_camera *c, ms_err *e);
	/* Frames per second the device is set to, 0 if unknown (timeouts). */
	double (*nominal_fps)(struct ms_camera *c);
};

struct ms_camera {
	const struct ms_cam_ops *ops;
	void *priv;			/* the backend's state */
	char *device;
	char desc[256];
	struct ms_frame_info info;
	double nm_per_px;		/* the generic setting; 0: the device's */
	double dev_nm_per_px;		/* what the backend said at open */
	double timeout_s;		/* frame timeout */
	/* The backend's settings, then the generic ones: built at open. */
	struct ms_cam_setting *settings;
	size_t nsettings;
	bool acquiring;
	unsigned taken;			/* buffers lent out now */
	struct ms_cam_health health;
	uint64_t wait_since_ns;		/* monotonic: last frame or timeout */
	/* Statistics window. */
	uint64_t stats_mono_ns, stats_frames;
};

/* Backends: set the backend's settings (copied after the generic ones). */
int ms_cam_set_settings(struct ms_camera *c, const struct ms_cam_setting *s, size_t n, ms_err *e);

/* Value parsers shared by backends; each quotes the value on failure. */
int ms_cam_parse_double(const char *name, const char *v, double min, double max, double *out,
                        ms_err *e);
int ms_cam_parse_bool(const char *name, const char *v, bool *out, ms_err *e);
/* "X,Y,W,H": integers, W and H at least 1. */
int ms_cam_parse_roi(const char *name, const char *v, long roi[4], ms_err *e);
/* "N" or "NX,NY", each 1..64. */
int ms_cam_parse_binning(const char *name, const char *v, long bin[2], ms_err *e);

/* Monotonic clock, ns. */
uint64_t ms_cam_mono_ns(void);

extern const struct ms_cam_ops ms_cam_replay_ops;
extern const struct ms_cam_ops ms_cam_v4l2_ops;
extern const struct ms_cam_ops ms_cam_aravis_ops;

/* Listing, one per backend that can enumerate. */
int ms_cam_v4l2_list(ms_cam_list_fn *fn, void *ctx, ms_err *e);
int ms_cam_aravis_list(ms_cam_list_fn *fn, void *ctx, ms_err *e);

#endif
