/*
 * recorder: owns the saving state of an acquisition (mode, saving switch,
 * folder, rotation, recordings and buckets; see recorder.h) and the files
 * it implies: at most one tracks file (tracks.c, SWMR) and one full-frame
 * and one ROI video file (tiffio.c, live TIFF) open at a time, all of the
 * current bucket. File names are reserved with O_EXCL before a writer
 * opens them, so two recorders (or a recorder and anything else) never
 * write into the same name. Closing a video file writes a directory per
 * page (about 1 us and 100 bytes each: seconds for an hour of ROI video),
 * so a thread of the recorder's own does it, in order, while the caller
 * goes on with the next file; what fails there is reported by the next
 * call, and ms_recorder_close waits for it.
 */
#include "recorder.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tiffio.h"

const char *const ms_rec_mode_words[] = {
	"track", "track+roi-video", "track+full-video", "roi-video", "full-video", NULL,
};

static const char *const mode_labels[] = {
	"Track", "Track and Video (ROIs)", "Track and Video (Full)", "Video (ROIs)", "Video (Full)",
};

const char *ms_rec_mode_word(enum ms_rec_mode m)
{
	return (unsigned)m < MS_REC_NMODES ? ms_rec_mode_words[m] : "?";
}

const char *ms_rec_mode_label(enum ms_rec_mode m)
{
	return (unsigned)m < MS_REC_NMODES ? mode_labels[m] : "?";
}

int ms_rec_mode_parse(const char *s)
{
	for (int i = 0; s && i < MS_REC_NMODES; i++)
		if (strcasecmp(s, ms_rec_mode_words[i]) == 0 || strcasecmp(s, mode_labels[i]) == 0)
			return i;
	return -1;
}

bool ms_rec_mode_tracks(enum ms_rec_mode m)
{
	return m == MS_REC_TRACK || m == MS_REC_TRACK_ROI_VIDEO || m == MS_REC_TRACK_FULL_VIDEO;
}

bool ms_rec_mode_roi_video(enum ms_rec_mode m)
{
	return m == MS_REC_TRACK_ROI_VIDEO || m == MS_REC_ROI_VIDEO;
}

bool ms_rec_mode_full_video(enum ms_rec_mode m)
{
	return m == MS_REC_TRACK_FULL_VIDEO || m == MS_REC_FULL_VIDEO;
}

uint64_t ms_rec_bucket_start(uint64_t recording_start_ns, uint64_t first_frame_ns,
                             uint64_t rotation_ns)
{
	if (rotation_ns == 0 || first_frame_ns <= recording_start_ns)
		return recording_start_ns;
	return recording_start_ns + (first_frame_ns - recording_start_ns) / rotation_ns * rotation_ns;
}

char *ms_rec_stamp(char *buf, size_t n, const char *prefix, uint64_t t_ns, int frac_digits)
{
	time_t sec = (time_t)(t_ns / 1000000000u);
	unsigned frac = (unsigned)(t_ns % 1000000000u);
	struct tm tm;
	char date[64] = "?";
	/* localtime_r need not look at TZ again; tzset makes a changed TZ count. */
	tzset();
	if (localtime_r(&sec, &tm))
		strftime(date, sizeof date, "%Y-%m-%d %H-%M-%S", &tm);
	if (frac_digits == 3)
		snprintf(buf, n, "%s %s.%03u", prefix, date, frac / 1000000u);
	else
		snprintf(buf, n, "%s %s.%06u", prefix, date, frac / 1000u);
	return buf;
}

void ms_recorder_opts_default(struct ms_recorder_opts *o)
{
	*o = (struct ms_recorder_opts){
		.mode = MS_REC_TRACK,
		.rotation_min = MS_REC_ROTATION_DEFAULT,
		.include_roi_positions = true,
		.swmr = true,
	};
}

/* A video file being written. */
struct vid {
	struct ms_tiff_writer *w;
	char *path;
	struct ms_frame_info info;	/* of a page */
	uint32_t channels;		/* pages per frame: ROIs, or 1 */
};

/* Video writers being closed by the closer thread, oldest first. */
struct closing {
	struct ms_tiff_writer *w;
	char *path;
	struct closing *next;
};

struct closer {
	pthread_t thread;
	bool running, quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct closing *head, *tail;
	ms_err err;			/* failures since the last report */
	bool failed;
	uint64_t bytes;			/* of the files it closed */
};

struct ms_recorder {
	enum ms_rec_mode mode;
	bool saving;
	char *folder;
	unsigned rotation_min;
	bool roi_pos;
	bool swmr;
	uint64_t (*now)(void *ctx);
	void *now_ctx;

	uint64_t rec_id, rec_start;
	bool have_bucket;
	uint64_t bucket;
	uint64_t seq;			/* batch_sequence of the next tracks batch */

	struct ms_h5tracks *h5;
	char *h5_path;
	struct vid full, roi;

	unsigned char *crop;
	size_t crop_cap;
	uint64_t files, frames_saved, bytes_closed, failures;
	struct closer closer;
};

/* ------------------------------------------------------------ errors */

static void append_msg(ms_err *e, const char *m)
{
	size_t n = strlen(e->msg);
	if (n + 3 < sizeof e->msg)
		snprintf(e->msg + n, sizeof e->msg - n, "; %.*s", (int)(sizeof e->msg - n - 3), m);
}

/* Keep the first failure in e and add the later ones after it. */
static void collect(ms_err *e, int *rc, const ms_err *x)
{
	if (e && *rc == 0)
		*e = *x;
	else if (e)
		append_msg(e, x->msg);
	*rc = -1;
}

/* ------------------------------------------------------------- files */

/* mkdir -p */
static int make_dirs(const char *dir, ms_err *e)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
		return ms_err_set(e, "folder name too long: '%.80s...'", dir);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		struct stat st;
		if (mkdir(p, 0777) < 0 && errno != EEXIST)
			return ms_err_set(e, "cannot create folder '%s':", p);
		if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return ms_err_set(e, "cannot use folder '%s':", p);
		}
		*s = c;
		if (c == '\0')
			return 0;
	}
}

/*
 * Claim "<folder>/<stem><ext>", or the first free "<stem> (k)<ext>", by
 * creating it empty with O_EXCL; the writer then overwrites it.
 */
static char *reserve(const char *folder, const char *stem, const char *ext, ms_err *e)
{
	if (make_dirs(folder, e))
		return NULL;
	char p[PATH_MAX];
	for (unsigned k = 0; k < 100000; k++) {
		int len = k ? snprintf(p, sizeof p, "%s/%s (%u)%s", folder, stem, k, ext)
		            : snprintf(p, sizeof p, "%s/%s%s", folder, stem, ext);
		if (len >= (int)sizeof p) {
			ms_err_set(e, "file name too long in folder '%.80s'", folder);
			return NULL;
		}
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			close(fd);
			char *s = strdup(p);
			if (!s) {
				unlink(p);
				ms_err_set(e, "out of memory");
			}
			return s;
		}
		if (errno != EEXIST) {
			ms_err_set(e, "cannot create '%s':", p);
			return NULL;
		}
	}
	ms_err_set(e, "'%s/%s%s' and 99999 numbered variants exist", folder, stem, ext);
	return NULL;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t rotation_ns(const struct ms_recorder *r)
{
	return (uint64_t)r->rotation_min * 60u * 1000000000u;
}

static int close_tracks(struct ms_recorder *r, ms_err *e)
{
	if (!r->h5)
		return 0;
	int rc = ms_h5tracks_close(r->h5, e);
	r->h5 = NULL;
	r->bytes_closed += file_size(r->h5_path);
	free(r->h5_path);
	r->h5_path = NULL;
	return rc;
}

static void *closer_main(void *arg)
{
	struct closer *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->head && !c->quit)
			pthread_cond_wait(&c->cv, &c->mu);
		struct closing *k = c->head;
		if (!k)
			break;
		c->head = k->next;
		if (!c->head)
			c->tail = NULL;
		pthread_mutex_unlock(&c->mu);
		ms_err x;
		int rc = ms_tiff_close_write(k->w, &x);
		uint64_t size = file_size(k->path);
		pthread_mutex_lock(&c->mu);
		c->bytes += size;
		if (rc) {
			int frc = c->failed ? -1 : 0;
			collect(&c->err, &frc, &x);
			c->failed = true;
		}
		free(k->path);
		free(k);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Report (once) what the closer thread failed to do since last time. */
static int closer_report(struct ms_recorder *r, ms_err *e, int *rc)
{
	struct closer *c = &r->closer;
	if (!c->running)
		return 0;
	pthread_mutex_lock(&c->mu);
	if (c->failed) {
		collect(e, rc, &c->err);
		c->failed = false;
		r->failures++;
	}
	pthread_mutex_unlock(&c->mu);
	return *rc;
}

/* Wait for every pending close and stop the thread. */
static int closer_stop(struct ms_recorder *r, ms_err *e, int *rc)
{
	struct closer *c = &r->closer;
	if (!c->running)
		return *rc;
	pthread_mutex_lock(&c->mu);
	c->quit = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	closer_report(r, e, rc);
	c->running = false;
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	return *rc;
}

/* now: here and now (a failed writer has no directories to write). */
static int close_video(struct ms_recorder *r, struct vid *v, bool now, ms_err *e)
{
	if (!v->w)
		return 0;
	struct closer *c = &r->closer;
	struct closing *k = now ? NULL : malloc(sizeof *k);
	if (k && !c->running) {
		bool mu = pthread_mutex_init(&c->mu, NULL) == 0;
		bool cv = mu && pthread_cond_init(&c->cv, NULL) == 0;
		if (cv && pthread_create(&c->thread, NULL, closer_main, c) == 0) {
			c->running = true;
		} else {
			/* No thread to spare: close it here. */
			if (cv)
				pthread_cond_destroy(&c->cv);
			if (mu)
				pthread_mutex_destroy(&c->mu);
			free(k);
			k = NULL;
		}
	}
	int rc = 0;
	if (k) {
		*k = (struct closing){.w = v->w, .path = v->path};
		pthread_mutex_lock(&c->mu);
		if (c->tail)
			c->tail->next = k;
		else
			c->head = k;
		c->tail = k;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
	} else {
		rc = ms_tiff_close_write(v->w, e);
		r->bytes_closed += file_size(v->path);
		free(v->path);
	}
	v->w = NULL;
	v->path = NULL;
	return rc;
}

static int close_all(struct ms_recorder *r, ms_err *e)
{
	int rc = 0;
	ms_err x;
	if (close_tracks(r, &x))
		collect(e, &rc, &x);
	if (close_video(r, &r->full, false, &x))
		collect(e, &rc, &x);
	if (close_video(r, &r->roi, false, &x))
		collect(e, &rc, &x);
	return rc;
}

static int open_tracks(struct ms_recorder *r, uint64_t seq, ms_err *e)
{
	char stem[128];
	ms_rec_stamp(stem, sizeof stem, "Tracking Data", r->bucket, 6);
	char *path = reserve(r->folder, stem, ".h5", e);
	if (!path)
		return -1;
	struct ms_h5tracks_opts o = {
		.include_roi_positions = r->roi_pos,
		.recording_id = r->rec_id,
		.recording_start_ns = r->rec_start,
		.file_start_ns = r->bucket,
		.rotation_interval_ns = rotation_ns(r),
		.first_batch_sequence = seq,
		.swmr = r->swmr,
	};
	r->h5 = ms_h5tracks_create(path, &o, true, e);
	if (!r->h5) {
		unlink(path);
		free(path);
		return -1;
	}
	r->h5_path = path;
	r->files++;
	return 0;
}

static int open_video(struct ms_recorder *r, struct vid *v, const struct ms_frame_info *info,
                      uint32_t channels, ms_err *e)
{
	char stem[128];
	ms_rec_stamp(stem, sizeof stem, "Video", r->bucket, 3);
	char *path = reserve(r->folder, stem, ".tif", e);
	if (!path)
		return -1;
	struct ms_tiff_wopts o = {.channels = channels, .live = true};
	v->w = ms_tiff_open_write_opts(path, info, &o, e);
	if (!v->w) {
		unlink(path);
		free(path);
		return -1;
	}
	v->path = path;
	v->info = *info;
	v->channels = channels;
	r->files++;
	return 0;
}

static bool same_info(const struct ms_frame_info *a, const struct ms_frame_info *b)
{
	return a->width == b->width && a->height == b->height && a->fmt == b->fmt &&
	       a->nm_per_px == b->nm_per_px;
}

/* ----------------------------------------------------------- setters */

static uint64_t clock_now(const struct ms_recorder *r)
{
	return r->now ? r->now(r->now_ctx) : ms_now_ns();
}

/* End the current recording's files and start the next recording. */
static int new_recording(struct ms_recorder *r, ms_err *e)
{
	int rc = close_all(r, e);
	r->rec_id++;
	r->rec_start = clock_now(r);
	r->have_bucket = false;
	return rc;
}

struct ms_recorder *ms_recorder_new(const struct ms_recorder_opts *o, ms_err *e)
{
	struct ms_recorder_opts d;
	if (!o) {
		ms_recorder_opts_default(&d);
		o = &d;
	}
	if ((unsigned)o->mode >= MS_REC_NMODES) {
		ms_err_set(e, "data mode %d does not exist", (int)o->mode);
		return NULL;
	}
	if (o->rotation_min > MS_REC_ROTATION_MAX) {
		ms_err_set(e, "rotation interval %u min is longer than a week (%u)", o->rotation_min,
		           MS_REC_ROTATION_MAX);
		return NULL;
	}
	struct ms_recorder *r = calloc(1, sizeof *r);
	if (!r || (o->folder && o->folder[0] && !(r->folder = strdup(o->folder)))) {
		free(r);
		ms_err_set(e, "out of memory");
		return NULL;
	}
	r->mode = o->mode;
	r->rotation_min = o->rotation_min;
	r->roi_pos = o->include_roi_positions;
	r->swmr = o->swmr;
	r->now = o->now;
	r->now_ctx = o->now_ctx;
	if (o->saving && ms_recorder_set_saving(r, true, e)) {
		free(r->folder);
		free(r);
		return NULL;
	}
	return r;
}

int ms_recorder_set_mode(struct ms_recorder *r, enum ms_rec_mode m, ms_err *e)
{
	if ((unsigned)m >= MS_REC_NMODES)
		return ms_err_set(e, "data mode %d does not exist", (int)m);
	r->mode = m;
	/* Files the new mode does not write are done; new ones open with the next batch. */
	int rc = 0;
	ms_err x;
	if (!ms_rec_mode_tracks(m) && close_tracks(r, &x))
		collect(e, &rc, &x);
	if (!ms_rec_mode_full_video(m) && close_video(r, &r->full, false, &x))
		collect(e, &rc, &x);
	if (!ms_rec_mode_roi_video(m) && close_video(r, &r->roi, false, &x))
		collect(e, &rc, &x);
	return rc;
}

int ms_recorder_set_saving(struct ms_recorder *r, bool on, ms_err *e)
{
	if (on == r->saving)
		return 0;
	if (!on) {
		r->saving = false;
		r->have_bucket = false;
		return close_all(r, e);
	}
	if (!r->folder)
		return ms_err_set(e, "no folder to save in: set one first");
	if (make_dirs(r->folder, e))
		return -1;
	r->saving = true;
	return new_recording(r, e);
}

int ms_recorder_set_folder(struct ms_recorder *r, const char *folder, ms_err *e)
{
	if (!folder || !folder[0]) {
		int rc = ms_recorder_set_saving(r, false, e);
		free(r->folder);
		r->folder = NULL;
		return rc;
	}
	if (r->folder && strcmp(folder, r->folder) == 0)
		return 0;
	if (r->saving && make_dirs(folder, e))
		return -1;
	char *f = strdup(folder);
	if (!f)
		return ms_err_set(e, "out of memory");
	free(r->folder);
	r->folder = f;
	return r->saving ? new_recording(r, e) : 0;
}

int ms_recorder_set_rotation(struct ms_recorder *r, unsigned minutes, ms_err *e)
{
	if (minutes > MS_REC_ROTATION_MAX)
		return ms_err_set(e, "rotation interval %u min is longer than a week (%u)", minutes,
		                  MS_REC_ROTATION_MAX);
	if (minutes == r->rotation_min)
		return 0;
	r->rotation_min = minutes;
	return r->saving ? new_recording(r, e) : 0;
}

int ms_recorder_set_roi_positions(struct ms_recorder *r, bool on, ms_err *e)
{
	if (on == r->roi_pos)
		return 0;
	r->roi_pos = on;
	return r->saving ? new_recording(r, e) : 0;
}

int ms_recorder_new_file(struct ms_recorder *r, ms_err *e)
{
	if (!r->saving)
		return ms_err_set(e, "saving is off: there is no file to start anew");
	return new_recording(r, e);
}

/* ------------------------------------------------------------ saving */

static int put_tracks(struct ms_recorder *r, const struct ms_track_batch *tb, ms_err *e)
{
	/* MagScope numbers batches as they are handed over, failed ones included. */
	uint64_t seq = r->seq++;
	if (!r->h5 && open_tracks(r, seq, e))
		return -1;
	if (ms_h5tracks_append(r->h5, tb, e) == 0)
		return 0;
	ms_err x;
	if (close_tracks(r, &x))
		append_msg(e, x.msg);
	return -1;
}

/* Copy the roi_size square at (x0, y0) out of f; outside the frame is 0. */
static void crop(const struct ms_frame *f, int32_t x0, int32_t y0, uint32_t s, unsigned char *out)
{
	size_t bpp = ms_pixfmt_bytes(f->info.fmt);
	const unsigned char *px = f->pixels;
	memset(out, 0, (size_t)s * s * bpp);
	int64_t xa = x0 < 0 ? 0 : x0, xb = (int64_t)x0 + s;
	if (xb > (int64_t)f->info.width)
		xb = f->info.width;
	if (xa >= xb)
		return;
	for (uint32_t row = 0; row < s; row++) {
		int64_t y = (int64_t)y0 + row;
		if (y < 0 || y >= (int64_t)f->info.height)
			continue;
		memcpy(out + ((size_t)row * s + (size_t)(xa - x0)) * bpp,
		       px + ((size_t)y * f->info.width + (size_t)xa) * bpp, (size_t)(xb - xa) * bpp);
	}
}

/* One frame's pages: the frame itself, or its ROIs. */
static int put_pages(struct ms_recorder *r, struct vid *v, const struct ms_rec_batch *b, size_t i,
                     ms_err *e)
{
	const struct ms_frame *f = &b->frames[i];
	if (v == &r->full)
		return ms_tiff_write(v->w, f->pixels, f->t_ns, e);
	for (size_t k = 0; k < b->nrois; k++) {
		crop(f, b->rois[k].x0, b->rois[k].y0, b->roi_size, r->crop);
		if (ms_tiff_write(v->w, r->crop, f->t_ns, e))
			return -1;
	}
	return 0;
}

static int put_video(struct ms_recorder *r, struct vid *v, const struct ms_rec_batch *b, ms_err *e)
{
	const struct ms_frame_info *fi = &b->frames[0].info;
	for (size_t i = 0; i < b->nframes; i++)
		if (!b->frames[i].pixels || !same_info(&b->frames[i].info, fi))
			return ms_err_set(e, "%s video: frame %zu of the batch %s",
			                  v == &r->full ? "full" : "ROI",
			                  i, b->frames[i].pixels ? "differs in size or format from frame 0"
			                                         : "has no pixels");
	struct ms_frame_info page = *fi;
	uint32_t channels = 1;
	if (v == &r->roi) {
		if (b->roi_size == 0 || b->roi_size > MS_FRAME_MAX_SIDE)
			return ms_err_set(e, "ROI video: ROI size %u", (unsigned)b->roi_size);
		if (b->nrois > 65535)
			return ms_err_set(e, "ROI video: %zu ROIs, more than 65535", b->nrois);
		page.width = page.height = b->roi_size;
		channels = (uint32_t)b->nrois;
		size_t need = (size_t)b->roi_size * b->roi_size * ms_pixfmt_bytes(fi->fmt);
		if (need > r->crop_cap) {
			unsigned char *c = realloc(r->crop, need);
			if (!c)
				return ms_err_set(e, "out of memory for a %u-pixel ROI", (unsigned)b->roi_size);
			r->crop = c;
			r->crop_cap = need;
		}
	}
	int rc = 0;
	ms_err x;
	/* A different geometry is a different stack: the next file of the bucket. */
	if (v->w && (!same_info(&v->info, &page) || v->channels != channels) &&
	    close_video(r, v, false, &x))
		collect(e, &rc, &x);
	if (!v->w && open_video(r, v, &page, channels, &x)) {
		collect(e, &rc, &x);
		return rc;
	}
	for (size_t i = 0; i < b->nframes; i++) {
		if (put_pages(r, v, b, i, &x)) {
			collect(e, &rc, &x);
			break;
		}
	}
	/* Every batch ends readable (a killed program leaves a good file). */
	if (rc == 0 && ms_tiff_sync(v->w, &x))
		collect(e, &rc, &x);
	if (rc && v->w && close_video(r, v, true, &x))
		collect(e, &rc, &x);
	return rc;
}

int ms_recorder_put(struct ms_recorder *r, const struct ms_rec_batch *b, ms_err *e)
{
	int rc = 0;
	closer_report(r, e, &rc);
	const struct ms_track_batch *tb = b && b->tracks && b->tracks->nframes ? b->tracks : NULL;
	if (!r->saving || !b || (b->nframes == 0 && !tb))
		return rc;
	uint64_t t0 = b->nframes ? b->frames[0].t_ns : tb->t_ns[0];
	uint64_t bucket = ms_rec_bucket_start(r->rec_start, t0, rotation_ns(r));
	ms_err x;
	if (!r->have_bucket) {
		r->bucket = bucket;
		r->have_bucket = true;
	} else if (bucket > r->bucket) {
		if (close_all(r, &x))
			collect(e, &rc, &x);
		r->bucket = bucket;
	}
	r->frames_saved += b->nframes ? b->nframes : tb->nframes;
	int fails = 0;
	if (ms_rec_mode_tracks(r->mode) && tb && put_tracks(r, tb, &x)) {
		collect(e, &rc, &x);
		fails++;
	}
	if (ms_rec_mode_full_video(r->mode) && b->nframes && put_video(r, &r->full, b, &x)) {
		collect(e, &rc, &x);
		fails++;
	}
	if (ms_rec_mode_roi_video(r->mode) && b->nframes && b->nrois &&
	    put_video(r, &r->roi, b, &x)) {
		collect(e, &rc, &x);
		fails++;
	}
	r->failures += (uint64_t)fails;
	return rc;
}

void ms_recorder_status(struct ms_recorder *r, struct ms_recorder_status *s)
{
	*s = (struct ms_recorder_status){
		.mode = r->mode,
		.saving = r->saving,
		.folder = r->folder,
		.rotation_min = r->rotation_min,
		.include_roi_positions = r->roi_pos,
		.recording_id = r->rec_id,
		.recording_start_ns = r->rec_start,
		.file_start_ns = r->saving && r->have_bucket ? r->bucket : 0,
		.tracks_path = r->h5_path,
		.files = r->files,
		.frames_saved = r->frames_saved,
		.failures = r->failures,
	};
	if (r->h5) {
		ms_h5tracks_counts(r->h5, &s->tracks_frames, &s->tracks_rows, NULL);
		s->tracks_bytes = file_size(r->h5_path);
	}
	/* The one video file of the mode (both cannot be open). */
	const struct vid *v = r->full.w ? &r->full : r->roi.w ? &r->roi : NULL;
	if (v) {
		s->video_path = v->path;
		s->video_frames = ms_tiff_written(v->w) / v->channels;
		s->video_bytes = ms_tiff_bytes(v->w);
	}
	uint64_t bg = 0;
	if (r->closer.running) {
		pthread_mutex_lock(&r->closer.mu);
		bg = r->closer.bytes;
		pthread_mutex_unlock(&r->closer.mu);
	}
	s->bytes = r->bytes_closed + bg + s->tracks_bytes + s->video_bytes;
}

int ms_recorder_close(struct ms_recorder *r, ms_err *e)
{
	if (!r)
		return 0;
	int rc = close_all(r, e);
	closer_stop(r, e, &rc);
	free(r->crop);
	free(r->folder);
	free(r);
	return rc;
}
