/*
 * ms-track: XYZ bead tracking. Reads frames (TIFF files or a frame
 * stream), cuts each bead's ROI out of every frame, finds x and y, the
 * radial profile and, with a Z-LUT, z; writes one row per bead per frame
 * as TSV on stdout and/or into a MagScope-schema HDF5 tracks file. ROIs
 * (not frames) are spread over worker threads, a batch of frames at a time.
 * With --control, a thread answers commands while it runs (ms-control(7)):
 * ROIs added, removed and moved, acquisition and saving switched, the data
 * mode, folder and Z-LUT changed; the main loop applies every change
 * between two batches, so a batch is always tracked with one consistent
 * set of ROIs, table and files. On a shared-memory stream, frames the
 * camera's ring overwrote before they were read are counted and reported
 * (a warning at most once a second, an event, the status and the
 * summary); --latency-log records, per frame, when its rows were written,
 * for the live benchmark.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "err.h"
#include "framesrc.h"
#include "pool.h"
#include "prefetch.h"
#include "recorder.h"
#include "rois.h"
#include "track/track.h"
#include "trackopts.h"
#include "tracks.h"
#include "zlut.h"

enum {
	OPT_ROIS = 'r', OPT_ZLUT = 'z', OPT_OUT = 'o', OPT_JOBS = 'j', OPT_FORCE = 'f',
	OPT_NM_PER_PX = MS_KEY_LONG, OPT_TSV, OPT_BATCH, OPT_NO_ROI_POS, OPT_CONTROL,
	OPT_DATA_DIR, OPT_MODE, OPT_ROTATE, OPT_LATENCY_LOG,
};

static const struct ms_opt options[] = {
	{ "rois", OPT_ROIS, "FILE", "bead ROI list: 'id x0 y0' per line (required)", "file" },
	{ "zlut", OPT_ZLUT, "FILE", "Z-LUT (mstk HDF5 or MagScope text); without it z is NaN", "file" },
	{ "output", OPT_OUT, "FILE.h5", "write tracks to this HDF5 file (MagScope schema)", "file:*.h5" },
	{ "force", OPT_FORCE, NULL, "overwrite an existing output file", NULL },
	{ "tsv", OPT_TSV, NULL, "write TSV to stdout too (the default without -o)", NULL },
	{ "nm-per-px", OPT_NM_PER_PX, "X", "camera nm per pixel (default: from the input, else 1)", NULL },
	{ "jobs", OPT_JOBS, "N", "worker threads (default: all cores)", NULL },
	{ "batch", OPT_BATCH, "N", "frames per batch, and per HDF5 append (32)", NULL },
	{ "no-roi-positions", OPT_NO_ROI_POS, NULL, "leave roi_positions_px out of the HDF5 file", NULL },
	{ "control", OPT_CONTROL, "PATH", "answer control commands at this socket (or FIFO)", "file" },
	{ "data-dir", OPT_DATA_DIR, "DIR", "save as MagScope does: dated, rotated files in DIR", "dir" },
	{ "mode", OPT_MODE, "MODE", "what --data-dir saves: track, track+roi-video, track+full-video, "
	  "roi-video, full-video (track)", MS_REC_MODE_WORDS },
	{ "rotate", OPT_ROTATE, "MIN", "with --data-dir, new files every MIN minutes (60; 0: never)", NULL },
	{ "latency-log", OPT_LATENCY_LOG, "FILE", "write each frame's t_ns and when its rows were written", "file" },
	MS_TRACK_OPTS,
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-track",
	.synopsis = "--rois FILE [--roi-size N] [--zlut FILE] [-o OUT.h5] [--tsv] [-j N] [INPUT...]\n"
	            "--rois FILE --data-dir DIR [--mode MODE] [--rotate MIN] [options] [INPUT...]",
	.summary = "Track beads in frames from TIFF files or a frame stream (INPUT '-' or none:\n"
	           "standard input). Writes frame, t_ns, bead, x_nm, y_nm, z_nm, roi_x0, roi_y0\n"
	           "per bead per frame: TSV on stdout, and/or HDF5 with -o, and/or MagScope's\n"
	           "dated tracks and video files in a folder with --data-dir.",
	.opts = options,
	.operands = "file:*.@(tif|tiff|frames)",
	.epilog = "Pipeline per ROI: centre of mass -> autoconvolution -> x/y by a fit of the bead's\n"
	          "own radial profile (radial-fit) -> radial profile -> z: Pearson match against the\n"
	          "Z-LUT interpolated along z. Methods, costs and accuracy: see ms-track(1).",
};

struct config {
	const char *rois_path, *zlut_path, *out_path, *control, *data_dir, *latency_log;
	int mode;		/* enum ms_rec_mode; -1: not given */
	long rotate;		/* -1: not given */
	bool force, tsv, roi_positions;
	bool weighting_given, oversample_given, roi_size_given;
	double nm_per_px;	/* 0: from the input */
	long jobs, batch;
	int verbose;		/* -1 quiet, 0 normal, 1 verbose */
	struct ms_track_params params;
	char **inputs;
	int ninputs;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void parse_args(struct config *c, int argc, char **argv)
{
	memset(c, 0, sizeof *c);
	c->roi_positions = true;
	c->batch = 32;
	c->mode = c->rotate = -1;
	ms_track_params_default(&c->params);
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		if (ms_trackopts_apply(&c->params, &cli, key, arg)) {
			c->weighting_given |= key == MS_KEY_TRACK_WEIGHTING;
			c->oversample_given |= key == MS_KEY_TRACK_OVERSAMPLE;
			c->roi_size_given |= key == MS_KEY_TRACK_ROI_SIZE;
			continue;
		}
		switch (key) {
		case OPT_ROIS: c->rois_path = arg; break;
		case OPT_ZLUT: c->zlut_path = arg; break;
		case OPT_OUT: c->out_path = arg; break;
		case OPT_FORCE: c->force = true; break;
		case OPT_TSV: c->tsv = true; break;
		case OPT_NM_PER_PX: c->nm_per_px = ms_cli_double(&cli, arg, 1e-6, 1e9); break;
		case OPT_JOBS: c->jobs = ms_cli_long(&cli, arg, 1, 1024); break;
		case OPT_BATCH: c->batch = ms_cli_long(&cli, arg, 1, 100000); break;
		case OPT_NO_ROI_POS: c->roi_positions = false; break;
		case OPT_CONTROL: c->control = arg; break;
		case OPT_DATA_DIR: c->data_dir = arg; break;
		case OPT_MODE: c->mode = ms_cli_choice(&cli, arg, ms_rec_mode_words); break;
		case OPT_ROTATE: c->rotate = ms_cli_long(&cli, arg, 0, MS_REC_ROTATION_MAX); break;
		case OPT_LATENCY_LOG: c->latency_log = arg; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (!c->rois_path)
		ms_usage_error("--rois FILE is required");
	if ((c->mode >= 0 || c->rotate >= 0) && !c->data_dir)
		ms_usage_error("--mode and --rotate go with --data-dir");
	if (!c->out_path && !c->data_dir)
		c->tsv = true;
	c->inputs = argv + optind;
	c->ninputs = argc - optind;
}

/*
 * What the main loop tracks with. It alone reads and writes this; the
 * control thread's requests reach it through struct shared.
 */
struct state {
	struct ms_frame_info info;
	size_t frame_bytes, maxf;
	int nthreads;
	struct ms_track_params params;
	struct ms_roilist rois;
	struct ms_zlut *lut;		/* NULL: no z */
	struct ms_tracker *tracker;
	struct ms_track_ws **ws;	/* one per pool thread */
	long *lut_bead;			/* per ROI: its table in lut, -1 none */
	double *z_prev;			/* per ROI: last valid z, for a local search */
	struct ms_xyz *xyz;		/* maxf * nrois */
	struct ms_track *rows;		/* maxf * nrois */
	/* the batch being tracked */
	const unsigned char **frame;	/* nframes: each frame's pixels */
	size_t nframes;
};

/*
 * Between the control thread and the main loop, under mu. Commands edit
 * the requested ROI list and table here and set the dirty flags; the main
 * loop takes them over between batches. The recorder is only ever used
 * under mu, by either side.
 */
struct shared {
	pthread_mutex_t mu;
	/* what status reports */
	uint64_t frames, invalid, skipped, dropped;
	struct ms_ctl_rate rate;
	/* requests */
	struct ms_roilist rois;
	bool rois_dirty;
	struct ms_tracker *new_tracker;	/* with new_lut (NULL: unload) */
	struct ms_zlut *new_lut;
	bool lut_dirty;
	char lut_path[1024];		/* "" when tracking without z */
	bool acquiring;
	struct ms_recorder *rec;	/* NULL: no saving (no --data-dir, no --control) */
	/* what commands check requests against */
	struct ms_frame_info info;
	struct ms_track_params params;
	struct ms_ctl_server *srv;
	const struct ms_framesrc *src;	/* for the fill of its ring or pipe */
};

/*
 * Frames the ring overwrote before the reader got to them, gathered by
 * the reader thread's callback and reported by the main loop.
 */
struct drops {
	pthread_mutex_t mu;
	uint64_t n;			/* since the last report */
	uint64_t total;			/* in all */
	uint64_t first_seq, last_seq, first_t, last_t;
	bool known;			/* seq and t of the first and last are known */
	double last_report;
};

static void on_drop(void *ctx, const struct ms_drop *d)
{
	struct drops *dr = ctx;
	pthread_mutex_lock(&dr->mu);
	if (dr->n == 0) {
		dr->known = d->known;
		dr->first_seq = d->seq;
		dr->first_t = d->t_ns;
	}
	dr->known = dr->known && d->known;
	dr->last_seq = d->seq;
	dr->last_t = d->t_ns;
	dr->n++;
	dr->total++;
	pthread_mutex_unlock(&dr->mu);
}

/*
 * Say what was missed since the last report: at most once a second (or
 * at the end), a warning and an event with the frames' sequence numbers
 * and the times the camera took them.
 */
static void report_drops(struct drops *dr, struct ms_ctl_server *srv, bool quiet, bool final)
{
	double now = ms_ctl_now();
	pthread_mutex_lock(&dr->mu);
	if (dr->n == 0 || (!final && now - dr->last_report < 1.0)) {
		pthread_mutex_unlock(&dr->mu);
		return;
	}
	struct drops d = *dr;
	uint64_t total = dr->total;
	dr->n = 0;
	dr->last_report = now;
	pthread_mutex_unlock(&dr->mu);
	if (d.known) {
		if (!quiet)
			ms_warn("missed %" PRIu64 " frames (seq %" PRIu64 "..%" PRIu64 ", taken %.3f..%.3f s "
			        "after the epoch; %" PRIu64 " in all): the camera's ring overwrote them "
			        "before they were read", d.n, d.first_seq, d.last_seq, (double)d.first_t / 1e9,
			        (double)d.last_t / 1e9, total);
		if (srv)
			ms_ctl_server_event(srv, NULL, "dropped n=%" PRIu64 " first-seq=%" PRIu64 " last-seq=%"
		                    PRIu64 " first-t-ns=%" PRIu64 " last-t-ns=%" PRIu64 " total=%" PRIu64,
		                    d.n, d.first_seq, d.last_seq, d.first_t, d.last_t, total);
	} else {
		if (!quiet)
			ms_warn("missed %" PRIu64 " frames (%" PRIu64 " in all): the camera's ring "
			        "overwrote them before they were read", d.n, total);
		if (srv)
			ms_ctl_server_event(srv, NULL, "dropped n=%" PRIu64 " total=%" PRIu64, d.n, total);
	}
}

static void track_one(void *ctx, size_t item, int worker)
{
	struct state *st = ctx;
	size_t nrois = st->rois.n;
	size_t f = item / nrois, r = item % nrois;
	const struct ms_roi *roi = &st->rois.roi[r];
	struct ms_roi_in in = {
		.frame = st->frame[f],
		.fmt = st->info.fmt,
		.stride = st->info.width,
		.x0 = roi->x0,
		.y0 = roi->y0,
		.lut_bead = st->lut_bead[r],
		.z_prev = st->z_prev[r],
	};
	/* the next item is most often this worker's next: its rows are on their way */
	if (item + 1 < st->nframes * nrois) {
		size_t f1 = (item + 1) / nrois, r1 = (item + 1) % nrois;
		struct ms_roi_in next = in;
		next.frame = st->frame[f1];
		next.x0 = st->rois.roi[r1].x0;
		next.y0 = st->rois.roi[r1].y0;
		ms_track_prefetch(st->tracker, &next);
	}
	ms_track_roi(st->tracker, st->ws[worker], &in, &st->xyz[item], NULL);
}

/*
 * A Z-LUT is only valid with the profile settings it was built with, so
 * what the table records wins over the defaults (not over an explicit
 * option: then the tracker refuses the mismatch with a clear message). A
 * MagScope text table records nothing; it was made with MagTrack's
 * nearest-bin profiles.
 */
static void adopt_lut_settings(struct config *c, const struct ms_zlut *lut)
{
	if (!c->weighting_given) {
		int w = lut->weighting[0] ? ms_track_name_index(ms_weighting_names, lut->weighting)
		                          : MS_PROFILE_NEAREST;
		if (w >= 0)
			c->params.weighting = w;
	}
	if (!c->oversample_given && lut->oversample > 0)
		c->params.oversample = lut->oversample;
	if (!c->roi_size_given && lut->roi_size > 0)
		c->params.roi_size = lut->roi_size;
}

/*
 * Which table of the LUT each bead uses: its own if there is one, else
 * the only one; -1 (z NaN) for a bead a per-bead table lacks. Returns how
 * many beads have no table.
 */
static size_t map_lut_beads(const struct ms_zlut *lut, const struct ms_roilist *rois, long *map)
{
	size_t missing = 0;
	for (size_t i = 0; i < rois->n; i++) {
		long k = -1;
		if (lut) {
			k = ms_zlut_find_bead(lut, rois->roi[i].id);
			if (k < 0 && lut->nbeads == 1)
				k = 0;
			missing += k < 0;
		}
		map[i] = k;
	}
	return missing;
}

/* Load a table and make the tracker for it; NULL with e set if it does not fit. */
static struct ms_tracker *load_tracker(const char *path, const struct ms_track_params *p,
                                       struct ms_zlut **lut_out, ms_err *e)
{
	struct ms_zlut *lut = ms_xcalloc(1, sizeof *lut);
	if (ms_zlut_load(path, lut, e) < 0) {
		free(lut);
		return NULL;
	}
	struct ms_tracker *t = ms_tracker_new(p, lut, e);
	if (!t) {
		ms_err_prefix(e, "%s", path);
		ms_zlut_free(lut);
		free(lut);
		return NULL;
	}
	*lut_out = lut;
	return t;
}

static void free_lut(struct ms_zlut *lut)
{
	if (lut) {
		ms_zlut_free(lut);
		free(lut);
	}
}

/* (Re)size the per-ROI arrays for st->rois, keeping each kept bead's last z. */
static void resize_per_roi(struct state *st, const struct ms_roilist *old, const double *old_z)
{
	size_t n = st->rois.n ? st->rois.n : 1;
	free(st->xyz);
	free(st->rows);
	free(st->lut_bead);
	st->xyz = ms_xcalloc(st->maxf * n, sizeof *st->xyz);
	st->rows = ms_xcalloc(st->maxf * n, sizeof *st->rows);
	st->lut_bead = ms_xcalloc(n, sizeof *st->lut_bead);
	double *z = ms_xcalloc(n, sizeof *z);
	for (size_t i = 0; i < st->rois.n; i++) {
		long k = old ? ms_rois_find(old, st->rois.roi[i].id) : -1;
		z[i] = k >= 0 ? old_z[k] : NAN;
	}
	free(st->z_prev);
	st->z_prev = z;
}

static void make_workspaces(struct state *st)
{
	ms_err e;
	for (int i = 0; i < st->nthreads; i++) {
		ms_track_ws_free(st->ws[i]);
		if (!(st->ws[i] = ms_track_ws_new(st->tracker, &e)))
			ms_die("%s", e.msg);
	}
}

/* Whether commands asked for anything since the last batch. */
static bool requests_pending(struct shared *sh)
{
	pthread_mutex_lock(&sh->mu);
	bool any = sh->lut_dirty || sh->rois_dirty;
	pthread_mutex_unlock(&sh->mu);
	return any;
}

/* Take over what commands asked for since the last batch. */
static void apply_requests(struct state *st, struct shared *sh)
{
	pthread_mutex_lock(&sh->mu);
	bool lut = sh->lut_dirty, rois = sh->rois_dirty;
	if (lut) {
		ms_tracker_free(st->tracker);
		free_lut(st->lut);
		st->tracker = sh->new_tracker;
		st->lut = sh->new_lut;
		sh->new_tracker = NULL;
		sh->new_lut = NULL;
		sh->lut_dirty = false;
		make_workspaces(st);
	}
	if (rois) {
		struct ms_roilist old = st->rois;
		double *old_z = st->z_prev;
		st->z_prev = NULL;
		st->rois.n = sh->rois.n;
		st->rois.roi = ms_xcalloc(sh->rois.n ? sh->rois.n : 1, sizeof *st->rois.roi);
		memcpy(st->rois.roi, sh->rois.roi, sh->rois.n * sizeof *st->rois.roi);
		resize_per_roi(st, &old, old_z);
		ms_rois_free(&old);
		free(old_z);
		sh->rois_dirty = false;
	}
	pthread_mutex_unlock(&sh->mu);
	if (lut || rois) {
		size_t missing = map_lut_beads(st->lut, &st->rois, st->lut_bead);
		if (missing)
			ms_warn("warning: the Z-LUT has no table for %zu bead%s; their z is NaN",
			        missing, missing == 1 ? "" : "s");
	}
}

/* ---- control commands (run in the control thread) ---- */

static bool word_is(const struct ms_ctl_cmd *c, int i, const char *w)
{
	return c->argc > i && strcmp(c->argv[i], w) == 0;
}

static int parse_roi_args(struct shared *sh, const struct ms_ctl_cmd *c, int from, bool corner,
                          struct ms_roi *r, char *reply, size_t size)
{
	long v[3];
	int need = corner ? 3 : 1;
	if (c->argc != from + need) {
		ms_ctl_err(reply, size, MS_CTL_USAGE, "roi %s takes %s", c->argv[0],
		           corner ? "ID X0 Y0" : "ID");
		return -1;
	}
	for (int i = 0; i < need; i++) {
		if (ms_parse_long(c->argv[from + i], &v[i]) < 0) {
			ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "'%s' is not an integer",
			           c->argv[from + i]);
			return -1;
		}
	}
	if (v[0] < 0 || v[0] > MS_BEAD_ID_MAX) {
		ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "bead id %ld is outside 0..%d", v[0],
		           MS_BEAD_ID_MAX);
		return -1;
	}
	r->id = (uint32_t)v[0];
	if (!corner)
		return 0;
	long side = sh->params.roi_size;
	if (v[1] < 0 || v[2] < 0 || v[1] + side > (long)sh->info.width ||
	    v[2] + side > (long)sh->info.height) {
		ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "an ROI of %ld px at (%ld, %ld) is "
		           "outside the %ux%u frame", side, v[1], v[2], sh->info.width,
		           sh->info.height);
		return -1;
	}
	r->x0 = (int32_t)v[1];
	r->y0 = (int32_t)v[2];
	return 0;
}

/* roi list | roi add ID X0 Y0 | roi remove ID | roi move ID X0 Y0 */
static void cmd_roi(struct shared *sh, const struct ms_ctl_cmd *c, char *reply, size_t size)
{
	struct ms_roilist *l = &sh->rois;
	struct ms_roi r;
	if (word_is(c, 0, "list") && c->argc == 1) {
		char text[MS_CTL_LINE_MAX];
		int len = snprintf(text, sizeof text, "n=%zu", l->n);
		for (size_t i = 0; i < l->n && len < (int)sizeof text - 32; i++)
			len += snprintf(text + len, sizeof text - (size_t)len, " %u=%d,%d",
			                l->roi[i].id, l->roi[i].x0, l->roi[i].y0);
		ms_ctl_ok(reply, size, "%s", text);
		return;
	}
	if (word_is(c, 0, "add")) {
		if (parse_roi_args(sh, c, 1, true, &r, reply, size) < 0)
			return;
		if (ms_rois_find(l, r.id) >= 0) {
			ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "bead %u exists; move it instead", r.id);
			return;
		}
		l->roi = ms_xrealloc(l->roi, (l->n + 1) * sizeof *l->roi);
		l->roi[l->n++] = r;
	} else if (word_is(c, 0, "remove") || word_is(c, 0, "move")) {
		bool move = word_is(c, 0, "move");
		if (parse_roi_args(sh, c, 1, move, &r, reply, size) < 0)
			return;
		long k = ms_rois_find(l, r.id);
		if (k < 0) {
			ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "there is no bead %u", r.id);
			return;
		}
		if (move)
			l->roi[k] = r;
		else
			memmove(&l->roi[k], &l->roi[k + 1], (l->n - (size_t)k - 1) * sizeof *l->roi);
		l->n -= !move;
	} else {
		ms_ctl_err(reply, size, MS_CTL_USAGE, "roi takes list, add, remove or move");
		return;
	}
	sh->rois_dirty = true;
	ms_ctl_ok(reply, size, "n=%zu", l->n);
	ms_ctl_server_event(sh->srv, NULL, "rois n=%zu", l->n);
}

/* saving on|off | saving folder DIR | saving mode MODE | saving rotate MIN | saving new-file */
static void cmd_saving(struct shared *sh, const struct ms_ctl_cmd *c, char *reply, size_t size)
{
	ms_err e;
	int rc = 0;
	if (!sh->rec) {
		ms_ctl_err(reply, size, MS_CTL_FAILED, "this ms-track saves no data (no recorder)");
		return;
	}
	if ((word_is(c, 0, "on") || word_is(c, 0, "off")) && c->argc == 1) {
		rc = ms_recorder_set_saving(sh->rec, word_is(c, 0, "on"), &e);
	} else if (word_is(c, 0, "folder") && c->argc == 2) {
		rc = ms_recorder_set_folder(sh->rec, c->argv[1], &e);
	} else if (word_is(c, 0, "mode") && c->argc == 2) {
		int m = ms_rec_mode_parse(c->argv[1]);
		if (m < 0) {
			ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "no data mode '%s' (%s)", c->argv[1],
			           MS_REC_MODE_WORDS);
			return;
		}
		rc = ms_recorder_set_mode(sh->rec, (enum ms_rec_mode)m, &e);
	} else if (word_is(c, 0, "rotate") && c->argc == 2) {
		long v;
		if (ms_parse_long(c->argv[1], &v) < 0 || v < 0 || v > MS_REC_ROTATION_MAX) {
			ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "rotation '%s' is not 0..%d minutes",
			           c->argv[1], MS_REC_ROTATION_MAX);
			return;
		}
		rc = ms_recorder_set_rotation(sh->rec, (unsigned)v, &e);
	} else if (word_is(c, 0, "new-file") && c->argc == 1) {
		rc = ms_recorder_new_file(sh->rec, &e);
	} else {
		ms_ctl_err(reply, size, MS_CTL_USAGE,
		           "saving takes on, off, folder DIR, mode MODE, rotate MIN or new-file");
		return;
	}
	if (rc < 0) {
		ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg);
		return;
	}
	struct ms_recorder_status rs;
	ms_recorder_status(sh->rec, &rs);
	ms_ctl_ok(reply, size, "saving=%s mode=%s folder=%s rotate=%u", rs.saving ? "on" : "off",
	          ms_rec_mode_word(rs.mode), rs.folder ? rs.folder : "-", rs.rotation_min);
	ms_ctl_server_event(sh->srv, NULL, "saving state=%s mode=%s", rs.saving ? "on" : "off",
	                    ms_rec_mode_word(rs.mode));
}

/* zlut load PATH | zlut unload; called without sh->mu held. */
static void cmd_zlut(struct shared *sh, const struct ms_ctl_cmd *c, char *reply, size_t size)
{
	ms_err e;
	struct ms_zlut *lut = NULL;
	struct ms_tracker *t;
	if (word_is(c, 0, "load") && c->argc == 2)
		t = load_tracker(c->argv[1], &sh->params, &lut, &e);
	else if (word_is(c, 0, "unload") && c->argc == 1)
		t = ms_tracker_new(&sh->params, NULL, &e);
	else {
		ms_ctl_err(reply, size, MS_CTL_USAGE, "zlut takes load PATH or unload");
		return;
	}
	if (!t) {
		ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg);
		return;
	}
	/* Loaded without the lock: reading a table must not hold up tracking. */
	pthread_mutex_lock(&sh->mu);
	/* A request not yet taken over is replaced. */
	ms_tracker_free(sh->new_tracker);
	free_lut(sh->new_lut);
	sh->new_tracker = t;
	sh->new_lut = lut;
	sh->lut_dirty = true;
	snprintf(sh->lut_path, sizeof sh->lut_path, "%s", lut ? c->argv[1] : "");
	pthread_mutex_unlock(&sh->mu);
	if (lut)
		ms_ctl_ok(reply, size, "planes=%zu beads=%zu", lut->nplanes, lut->nbeads);
	else
		ms_ctl_ok(reply, size, "z off");
}

static void on_command(void *ctx, struct ms_ctl_server *srv, struct ms_ctl_req *q)
{
	struct shared *sh = ctx;
	const struct ms_ctl_cmd *c = q->cmd;
	(void)srv;
	if (strcmp(c->verb, "zlut") == 0) {
		cmd_zlut(sh, c, q->reply, sizeof q->reply);
		return;
	}
	pthread_mutex_lock(&sh->mu);
	if (strcmp(c->verb, "status") == 0) {
		double now = ms_ctl_now(), fps = ms_ctl_rate_get(&sh->rate, now);
		struct ms_recorder_status rs = { 0 };
		if (sh->rec)
			ms_recorder_status(sh->rec, &rs);
		double fill;
		uint64_t overrun = 0;
		char fillw[16] = "-";
		if (ms_framesrc_fill(sh->src, &fill, &overrun) == 0)
			snprintf(fillw, sizeof fillw, "%.0f%%", 100 * fill);
		ms_ctl_ok(q->reply, sizeof q->reply,
		          "state=running frames=%llu fps=%.1f rois=%zu rois-per-s=%.0f invalid=%llu "
		          "dropped=%llu ring-fill=%s acquisition=%s skipped=%llu saving=%s mode=%s "
		          "zlut=%s",
		          (unsigned long long)sh->frames, fps, sh->rois.n, fps * (double)sh->rois.n,
		          (unsigned long long)sh->invalid,
		          (unsigned long long)(sh->dropped + overrun), fillw,
		          sh->acquiring ? "on" : "off",
		          (unsigned long long)sh->skipped, rs.saving ? "on" : "off",
		          ms_rec_mode_word(rs.mode), sh->lut_path[0] ? sh->lut_path : "-");
	} else if (strcmp(c->verb, "roi") == 0) {
		cmd_roi(sh, c, q->reply, sizeof q->reply);
	} else if (strcmp(c->verb, "acquisition") == 0) {
		bool on;
		int k = ms_ctl_switch_arg(c, &on, q->reply, sizeof q->reply);
		if (k > 0 && on != sh->acquiring) {
			sh->acquiring = on;
			ms_ctl_server_event(sh->srv, NULL, "acquisition state=%s", on ? "on" : "off");
		}
		if (k >= 0)
			ms_ctl_ok(q->reply, sizeof q->reply, "acquisition=%s", sh->acquiring ? "on" : "off");
	} else if (strcmp(c->verb, "saving") == 0) {
		cmd_saving(sh, c, q->reply, sizeof q->reply);
	} else if (strcmp(c->verb, "help") == 0) {
		ms_ctl_ok(q->reply, sizeof q->reply, "verbs: status, roi list|add|remove|move, "
		          "acquisition on|off, saving on|off|folder|mode|rotate|new-file, "
		          "zlut load|unload, subscribe, unsubscribe, help");
	} else {
		ms_ctl_err(q->reply, sizeof q->reply, MS_CTL_UNKNOWN_VERB, "no verb '%s' (try help)",
		           c->verb);
	}
	pthread_mutex_unlock(&sh->mu);
}

/*
 * The recorder: saving on from the start with --data-dir; with only
 * --control, one that waits for "saving folder" and "saving on".
 */
static struct ms_recorder *start_recorder(const struct config *c, size_t nrois)
{
	struct ms_recorder_opts o;
	ms_recorder_opts_default(&o);
	o.folder = c->data_dir;
	o.saving = c->data_dir != NULL;
	o.include_roi_positions = c->roi_positions;
	if (c->mode >= 0)
		o.mode = (enum ms_rec_mode)c->mode;
	if (c->rotate >= 0)
		o.rotation_min = (unsigned)c->rotate;
	if (ms_rec_mode_roi_video(o.mode) && nrois > 65535)
		ms_die("%zu ROIs: ROI video holds at most 65535", nrois);
	ms_err e;
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	if (!r)
		ms_die("%s", e.msg);
	return r;
}

static void stop_recorder(const struct config *c, struct ms_recorder *r)
{
	struct ms_recorder_status s;
	ms_recorder_status(r, &s);
	ms_err e;
	if (ms_recorder_close(r, &e) < 0)
		ms_die("%s", e.msg);
	if (c->verbose > 0)
		fprintf(stderr, "%s: saved %llu frames (%s) in %llu files in %s\n", ms_progname(),
		        (unsigned long long)s.frames_saved, ms_rec_mode_word(s.mode),
		        (unsigned long long)s.files, c->data_dir);
}

static void progress(const struct config *c, int64_t done, int64_t total, double elapsed, size_t nrois)
{
	if (c->verbose < 0 || total <= 0 || !isatty(STDERR_FILENO))
		return;
	double rate = elapsed > 0 ? (double)done * (double)nrois / elapsed : 0;
	fprintf(stderr, "\r%s: %lld/%lld frames (%3.0f%%), %.0f ROIs/s ", ms_progname(),
	        (long long)done, (long long)total, 100.0 * (double)done / (double)total, rate);
}

/* Turn one tracked batch into rows, and count what is invalid. */
static size_t make_rows(struct state *st, const uint64_t *t_ns, uint64_t first_frame,
                        double nm_per_px, size_t *offsets, uint64_t *invalid)
{
	size_t n = 0;
	offsets[0] = 0;
	for (size_t f = 0; f < st->nframes; f++) {
		for (size_t r = 0; r < st->rois.n; r++, n++) {
			const struct ms_xyz *p = &st->xyz[n];
			const struct ms_roi *roi = &st->rois.roi[r];
			st->rows[n] = (struct ms_track){
				.frame = first_frame + f,
				.t_ns = t_ns[f],
				.bead = roi->id,
				.x_nm = (p->x + roi->x0) * nm_per_px,
				.y_nm = (p->y + roi->y0) * nm_per_px,
				.z_nm = p->z,
				.roi_x0 = roi->x0,
				.roi_y0 = roi->y0,
			};
			if (isnan(p->x) || isnan(p->y) || (st->lut && isnan(p->z)))
				(*invalid)++;
			if (!isnan(p->z))
				st->z_prev[r] = p->z;
		}
		offsets[f + 1] = n;
	}
	return n;
}

/* Where tracked batches go, and what the main loop counts. */
struct out {
	const struct config *c;
	struct state *st;
	struct shared *sh;
	struct ms_h5tracks *h5;		/* NULL: no -o */
	FILE *latency;			/* NULL: no --latency-log */
	struct ms_frame *frames;	/* maxf, for the recorder (NULL: none) */
	struct ms_frame_info vinfo;	/* the video's scale: what we were told, not a guess */
	size_t *offsets;		/* of the rows in st->rows, per frame */
	size_t nrows;			/* rows made of the batch not yet written */
	uint64_t frame_index, invalid;	/* frames tracked, rows with a NaN */
	uint64_t written;		/* frames written */
	int64_t total;
	struct timespec t0;
	double last_progress;
};

/* Write out a tracked batch whose rows make_rows made (st->rows, o->offsets). */
static void write_batch(struct out *o, const struct ms_frame_batch *fb)
{
	const struct config *c = o->c;
	struct state *st = o->st;
	struct shared *sh = o->sh;
	ms_err e;
	size_t nf = fb->nframes;
	o->written += nf;
	/* Live rows go on at once: a consumer downstream must not wait for a full buffer. */
	if (c->tsv && (ms_tracks_tsv_write(stdout, st->rows, o->nrows) < 0 ||
	               (o->total < 0 && fflush(stdout) != 0)))
		ms_die("error writing standard output:");
	struct ms_track_batch tb = { nf, fb->t_ns, o->offsets, st->rows };
	if (o->h5 && ms_h5tracks_append(o->h5, &tb, &e) < 0)
		ms_die("%s", e.msg);
	pthread_mutex_lock(&sh->mu);
	sh->frames = o->written;
	sh->invalid = o->invalid;
	ms_ctl_rate_add(&sh->rate, nf, ms_ctl_now());
	if (sh->rec) {
		for (size_t f = 0; f < nf; f++)
			o->frames[f] = (struct ms_frame){ .t_ns = fb->t_ns[f], .info = o->vinfo,
			                                  .pixels = fb->frame[f] };
		struct ms_rec_batch rb = { nf, o->frames, st->rois.roi, st->rois.n,
		                           (uint32_t)st->params.roi_size, &tb };
		/* The recorder carries on in new files after a failure. */
		if (ms_recorder_put(sh->rec, &rb, &e) < 0)
			ms_warn("%s", e.msg);
	}
	pthread_mutex_unlock(&sh->mu);
	if (o->latency) {
		/* The rows are in the file (flushed) or on standard output now. */
		uint64_t now = ms_now_ns();
		for (size_t f = 0; f < nf; f++)
			fprintf(o->latency, "%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%zu\n", fb->seq[f],
			        fb->t_ns[f], now, nf);
	}
	double el = ms_seconds_since(&o->t0);
	if (el - o->last_progress > 0.25) {
		progress(c, (int64_t)o->written, o->total, el, st->rois.n);
		o->last_progress = el;
	}
}

/* Write the batch in hand, if any, and give it back to the reader. */
static void flush_batch(struct out *o, struct ms_prefetch *pf, struct ms_frame_batch **pending)
{
	if (*pending) {
		write_batch(o, *pending);
		ms_prefetch_release(pf, *pending);
		*pending = NULL;
	}
}

int main(int argc, char **argv)
{
	struct config c;
	parse_args(&c, argc, argv);
	ms_err e;

	/*
	 * Open the input before reading the ROI list: a producer such as
	 * `ms-simulate --rois-out r.tsv | ms-track --rois r.tsv` writes the
	 * list before its stream header, so waiting for the header first
	 * closes the race.
	 */
	struct ms_framesrc *src = ms_framesrc_open(c.inputs, c.ninputs, &e);
	if (!src)
		ms_die("%s", e.msg);
	struct state st = { .info = *ms_framesrc_info(src) };
	st.frame_bytes = ms_frame_bytes(&st.info);
	if (ms_rois_load(c.rois_path, &st.rois, &e) < 0)
		ms_die("%s", e.msg);
	if (c.zlut_path) {
		st.lut = ms_xcalloc(1, sizeof *st.lut);
		if (ms_zlut_load(c.zlut_path, st.lut, &e) < 0)
			ms_die("%s", e.msg);
		adopt_lut_settings(&c, st.lut);
	}
	st.params = c.params;
	st.tracker = ms_tracker_new(&st.params, st.lut, &e);
	if (!st.tracker)
		ms_die("%s%s%s", c.zlut_path ? c.zlut_path : "", c.zlut_path ? ": " : "", e.msg);
	if (ms_rois_check(&st.rois, st.params.roi_size, st.info.width, st.info.height, &e) < 0)
		ms_die("%s: %s", c.rois_path, e.msg);
	double nm_per_px = c.nm_per_px;
	if (nm_per_px <= 0)
		nm_per_px = st.info.nm_per_px;
	if (nm_per_px <= 0) {
		nm_per_px = 1;
		if (c.verbose >= 0)
			ms_warn("warning: %s does not say its pixel size; assuming 1 nm per pixel "
			        "(give --nm-per-px)", ms_framesrc_name(src));
	}

	struct ms_pool *pool = ms_pool_new((int)c.jobs, &e);
	if (!pool)
		ms_die("%s", e.msg);
	st.nthreads = ms_pool_threads(pool);
	st.ws = ms_xcalloc((size_t)st.nthreads, sizeof *st.ws);
	make_workspaces(&st);
	/* Three batches in flight, each under 8 MiB whatever the frame size: then
	 * a batch is still in the processor's last-level cache when it is tracked. */
	st.maxf = ms_prefetch_batch_frames((size_t)c.batch, st.frame_bytes, 8u << 20);
	resize_per_roi(&st, NULL, NULL);
	if (map_lut_beads(st.lut, &st.rois, st.lut_bead))
		ms_die("%s: has tables for %zu beads but not for every bead of %s", c.zlut_path,
		       st.lut->nbeads, c.rois_path);
	size_t *offsets = ms_xcalloc(st.maxf + 1, sizeof *offsets);

	struct shared sh = {
		.mu = PTHREAD_MUTEX_INITIALIZER,
		.acquiring = true,
		.info = st.info,
		.params = st.params,
	};
	if (c.data_dir || c.control)
		sh.rec = start_recorder(&c, st.rois.n);
	struct ms_frame *frames = sh.rec ? ms_xcalloc(st.maxf, sizeof *frames) : NULL;
	struct ms_frame_info vinfo = st.info;	/* the video's scale: what we were told, not a guess */
	vinfo.nm_per_px = c.nm_per_px > 0 ? c.nm_per_px : st.info.nm_per_px;
	snprintf(sh.lut_path, sizeof sh.lut_path, "%s", c.zlut_path ? c.zlut_path : "");
	sh.rois.n = st.rois.n;
	sh.rois.roi = ms_xcalloc(st.rois.n ? st.rois.n : 1, sizeof *sh.rois.roi);
	memcpy(sh.rois.roi, st.rois.roi, st.rois.n * sizeof *st.rois.roi);

	struct ms_h5tracks *h5 = NULL;
	if (c.out_path) {
		struct ms_h5tracks_opts ho = { .include_roi_positions = c.roi_positions };
		h5 = ms_h5tracks_create(c.out_path, &ho, c.force, &e);
		if (!h5)
			ms_die("%s", e.msg);
	}
	if (c.tsv && ms_tracks_tsv_header(stdout) < 0)
		ms_die("error writing standard output:");

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (c.control) {
		const char *name = getenv("MS_STAGE");
		sh.src = src;
		sh.srv = ms_ctl_server_open(c.control, name && *name ? name : "track", 0, &e);
		if (!sh.srv || ms_ctl_server_start(sh.srv, on_command, &sh, &e) < 0)
			ms_die("%s", e.msg);
	}

	FILE *latency = NULL;
	if (c.latency_log) {
		latency = fopen(c.latency_log, "w");
		if (!latency)
			ms_die("cannot create '%s':", c.latency_log);
		fprintf(latency, "# seq\tt_ns\twritten_ns\tbatch\n");
	}
	struct drops drops = { .mu = PTHREAD_MUTEX_INITIALIZER };
	ms_framesrc_on_drop(src, on_drop, &drops);
	bool shm = strcmp(ms_framesrc_transport(src), "shm") == 0;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int64_t total = ms_framesrc_total(src);
	uint64_t dropped = 0;
	struct ms_prefetch *pf = ms_prefetch_start(src, st.maxf, 3, &stop_signal, &e);
	if (!pf)
		ms_die("%s", e.msg);
	struct out o = {
		.c = &c, .st = &st, .sh = &sh, .h5 = h5, .latency = latency, .frames = frames,
		.vinfo = vinfo, .offsets = offsets, .total = total, .t0 = t0,
	};
	/*
	 * A batch is tracked, then its rows are made at once (they carry each
	 * bead's z into the next batch's search) but written while the next
	 * batch is tracked, if that one is already read: the worker threads
	 * never wait for the files. On a live stream that keeps up the rows go
	 * out before waiting for more frames.
	 */
	struct ms_frame_batch *fb, *pending = NULL;
	int rc = 0;
	for (;;) {
		if (pending && !ms_prefetch_ready(pf))
			flush_batch(&o, pf, &pending);
		if (stop_signal || (rc = ms_prefetch_next(pf, &fb, &e)) <= 0)
			break;
		if (sh.srv && requests_pending(&sh)) {
			/* The rows in hand belong to the ROIs and files they were tracked with. */
			flush_batch(&o, pf, &pending);
			apply_requests(&st, &sh);
		}
		dropped = fb->dropped;
		if (shm)
			report_drops(&drops, sh.srv, c.verbose < 0, false);
		pthread_mutex_lock(&sh.mu);
		sh.dropped = dropped;
		bool acquiring = sh.acquiring;
		if (!acquiring)
			sh.skipped += fb->nframes;
		pthread_mutex_unlock(&sh.mu);
		if (!acquiring) {
			flush_batch(&o, pf, &pending);
			ms_prefetch_release(pf, fb);
			continue;
		}
		st.nframes = fb->nframes;
		st.frame = fb->frame;
		ms_pool_start(pool, st.nframes * st.rois.n, track_one, &st);
		flush_batch(&o, pf, &pending);
		ms_pool_wait(pool);
		o.nrows = make_rows(&st, fb->t_ns, o.frame_index, nm_per_px, offsets, &o.invalid);
		o.frame_index += st.nframes;
		pending = fb;
	}
	flush_batch(&o, pf, &pending);
	uint64_t frame_index = o.frame_index;
	if (stop_signal)
		rc = 0;
	ms_prefetch_stop(pf);
	double elapsed = ms_seconds_since(&t0);
	/* The reader thread is gone: the source's count is final and ours to read. */
	if (shm) {
		dropped = ms_framesrc_dropped(src);
		report_drops(&drops, sh.srv, c.verbose < 0, true);
	}
	if (latency && (ferror(latency) | (fclose(latency) != 0)))
		ms_die("error writing '%s':", c.latency_log);
	ms_ctl_server_close(sh.srv);
	if (total > 0 && c.verbose >= 0 && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (h5 && ms_h5tracks_close(h5, &e) < 0)
		ms_die("%s", e.msg);
	if (sh.rec)
		stop_recorder(&c, sh.rec);
	free(frames);
	if (rc < 0)
		ms_die("%s (tracks up to frame %llu were written)", e.msg,
		       (unsigned long long)frame_index);
	if (c.verbose >= 0) {
		uint64_t nroi = frame_index * st.rois.n;
		char missed[96] = "";
		if (shm)
			snprintf(missed, sizeof missed, ", %llu dropped (overwritten in the ring)",
			         (unsigned long long)dropped);
		fprintf(stderr, "%s: %llu frames, %llu ROIs in %.2f s (%.0f ROIs/s, %d thread%s), "
		        "%llu invalid (NaN)%s%s\n", ms_progname(), (unsigned long long)frame_index,
		        (unsigned long long)nroi, elapsed, elapsed > 0 ? (double)nroi / elapsed : 0.0,
		        st.nthreads, st.nthreads == 1 ? "" : "s", (unsigned long long)o.invalid, missed,
		        stop_signal ? " (stopped by a signal)" : "");
	}

	for (int i = 0; i < st.nthreads; i++)
		ms_track_ws_free(st.ws[i]);
	free(st.ws);
	free(st.xyz);
	free(st.rows);
	free(st.z_prev);
	free(st.lut_bead);
	free(offsets);
	ms_pool_free(pool);
	ms_tracker_free(st.tracker);
	free_lut(st.lut);
	ms_tracker_free(sh.new_tracker);
	free_lut(sh.new_lut);
	ms_rois_free(&st.rois);
	ms_rois_free(&sh.rois);
	ms_framesrc_close(src);
	ms_close_stdout();
	if (stop_signal)
		return 128 + stop_signal;
	return 0;
}
