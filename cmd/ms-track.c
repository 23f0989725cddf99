/*
 * ms-track: XYZ bead tracking. Reads frames (TIFF files or a frame
 * stream), cuts each bead's ROI out of every frame, finds x and y, the
 * radial profile and, with a Z-LUT, z; writes one row per bead per frame
 * as TSV on stdout and/or into a MagScope-schema HDF5 tracks file. ROIs
 * (not frames) are spread over worker threads, a batch of frames at a time.
 * With --control, a thread answers status queries while it runs. On a
 * shared-memory stream, frames the camera's ring overwrote before they
 * were read are counted and reported (a warning at most once a second,
 * an event, the status and the summary); --latency-log records, per
 * frame, when its rows were written, for the live benchmark.
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
#include "rois.h"
#include "track/track.h"
#include "trackopts.h"
#include "tracks.h"
#include "zlut.h"

enum {
	OPT_ROIS = 'r', OPT_ZLUT = 'z', OPT_OUT = 'o', OPT_JOBS = 'j', OPT_FORCE = 'f',
	OPT_NM_PER_PX = MS_KEY_LONG, OPT_TSV, OPT_BATCH, OPT_NO_ROI_POS, OPT_CONTROL, OPT_LATENCY_LOG,
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
	{ "control", OPT_CONTROL, "PATH", "answer status queries at this socket (or FIFO)", "file" },
	{ "latency-log", OPT_LATENCY_LOG, "FILE", "write each frame's t_ns and when its rows were written", "file" },
	MS_TRACK_OPTS,
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-track",
	.synopsis = "--rois FILE [--roi-size N] [--zlut FILE] [-o OUT.h5] [--tsv] [-j N] [INPUT...]",
	.summary = "Track beads in frames from TIFF files or a frame stream (INPUT '-' or none:\n"
	           "standard input). Writes frame, t_ns, bead, x_nm, y_nm, z_nm, roi_x0, roi_y0\n"
	           "per bead per frame: TSV on stdout, and/or HDF5 with -o.",
	.opts = options,
	.operands = "file:*.@(tif|tiff|frames)",
	.epilog = "Pipeline per ROI: centre of mass -> autoconvolution sub-pixel x/y -> radial\n"
	          "profile -> Z-LUT match (Pearson) with a weighted parabola. See ms-track(1).",
};

struct config {
	const char *rois_path, *zlut_path, *out_path, *control, *latency_log;
	bool force, tsv, roi_positions;
	bool weighting_given, oversample_given, roi_size_given;
	double nm_per_px;	/* 0: from the input */
	long jobs, batch;
	int verbose;		/* -1 quiet, 0 normal, 1 verbose */
	struct ms_track_params params;
	char **inputs;
	int ninputs;
};

/* One unit of pool work is one ROI of one frame of the batch. */
struct batch {
	const struct ms_tracker *tracker;
	struct ms_track_ws **ws;
	const struct ms_roilist *rois;
	const long *lut_bead;		/* per ROI */
	struct ms_frame_info info;
	const unsigned char *frames;	/* nframes * frame_bytes, from the prefetcher */
	size_t frame_bytes;
	size_t nframes;
	const uint64_t *t_ns;
	struct ms_xyz *xyz;		/* nframes * nrois */
	double *z_prev;			/* per ROI: last valid z, for a local search */
};

/* What the control thread reports; the main loop updates it per batch. */
struct live {
	pthread_mutex_t mu;
	uint64_t frames, invalid, dropped;
	size_t nrois;
	struct ms_ctl_rate rate;
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

static void on_command(void *ctx, struct ms_ctl_server *srv, struct ms_ctl_req *q)
{
	struct live *l = ctx;
	(void)srv;
	if (strcmp(q->cmd->verb, "status") == 0) {
		pthread_mutex_lock(&l->mu);
		double now = ms_ctl_now(), fps = ms_ctl_rate_get(&l->rate, now);
		ms_ctl_ok(q->reply, sizeof q->reply,
		          "state=running frames=%llu fps=%.1f rois=%zu rois-per-s=%.0f invalid=%llu "
		          "dropped=%llu", (unsigned long long)l->frames, fps, l->nrois,
		          fps * (double)l->nrois, (unsigned long long)l->invalid,
		          (unsigned long long)l->dropped);
		pthread_mutex_unlock(&l->mu);
	} else if (strcmp(q->cmd->verb, "help") == 0) {
		ms_ctl_ok(q->reply, sizeof q->reply, "verbs: status, subscribe, unsubscribe, help");
	} else {
		ms_ctl_err(q->reply, sizeof q->reply, MS_CTL_UNKNOWN_VERB, "no verb '%s' (try help)",
		           q->cmd->verb);
	}
}

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
		case OPT_LATENCY_LOG: c->latency_log = arg; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (!c->rois_path)
		ms_usage_error("--rois FILE is required");
	if (!c->out_path)
		c->tsv = true;
	c->inputs = argv + optind;
	c->ninputs = argc - optind;
}

static void track_one(void *ctx, size_t item, int worker)
{
	struct batch *b = ctx;
	size_t nrois = b->rois->n;
	size_t f = item / nrois, r = item % nrois;
	const struct ms_roi *roi = &b->rois->roi[r];
	struct ms_roi_in in = {
		.frame = b->frames + f * b->frame_bytes,
		.fmt = b->info.fmt,
		.stride = b->info.width,
		.x0 = roi->x0,
		.y0 = roi->y0,
		.lut_bead = b->lut_bead[r],
		.z_prev = b->z_prev[r],
	};
	ms_track_roi(b->tracker, b->ws[worker], &in, &b->xyz[item], NULL);
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

/* Which table of the LUT each bead uses: its own if there is one, else the only one. */
static long *map_lut_beads(const struct ms_zlut *lut, const struct ms_roilist *rois, const char *path)
{
	long *map = ms_xcalloc(rois->n, sizeof *map);
	for (size_t i = 0; i < rois->n; i++) {
		if (!lut)
			continue;
		long k = ms_zlut_find_bead(lut, rois->roi[i].id);
		if (k < 0 && lut->nbeads == 1)
			k = 0;
		if (k < 0)
			ms_die("%s: has tables for %zu beads but none for bead %u", path,
			       lut->nbeads, rois->roi[i].id);
		map[i] = k;
	}
	return map;
}

static void progress(const struct config *c, int64_t done, int64_t total, double elapsed, size_t nrois)
{
	if (c->verbose < 0 || total <= 0 || !isatty(STDERR_FILENO))
		return;
	double rate = elapsed > 0 ? (double)done * (double)nrois / elapsed : 0;
	fprintf(stderr, "\r%s: %lld/%lld frames (%3.0f%%), %.0f ROIs/s ", ms_progname(),
	        (long long)done, (long long)total, 100.0 * (double)done / (double)total, rate);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
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
	struct ms_frame_info info = *ms_framesrc_info(src);
	struct ms_roilist rois;
	if (ms_rois_load(c.rois_path, &rois, &e) < 0)
		ms_die("%s", e.msg);
	struct ms_zlut lut, *lutp = NULL;
	if (c.zlut_path) {
		if (ms_zlut_load(c.zlut_path, &lut, &e) < 0)
			ms_die("%s", e.msg);
		lutp = &lut;
		adopt_lut_settings(&c, &lut);
	}
	struct ms_tracker *tracker = ms_tracker_new(&c.params, lutp, &e);
	if (!tracker)
		ms_die("%s%s%s", c.zlut_path ? c.zlut_path : "", c.zlut_path ? ": " : "", e.msg);
	long *lut_bead = map_lut_beads(lutp, &rois, c.zlut_path);

	if (ms_rois_check(&rois, c.params.roi_size, info.width, info.height, &e) < 0)
		ms_die("%s: %s", c.rois_path, e.msg);
	double nm_per_px = c.nm_per_px;
	if (nm_per_px <= 0)
		nm_per_px = info.nm_per_px;
	if (nm_per_px <= 0) {
		nm_per_px = 1;
		if (c.verbose >= 0)
			ms_warn("warning: %s does not say its pixel size; assuming 1 nm per pixel "
			        "(give --nm-per-px)", ms_framesrc_name(src));
	}

	struct ms_pool *pool = ms_pool_new((int)c.jobs, &e);
	if (!pool)
		ms_die("%s", e.msg);
	int nthreads = ms_pool_threads(pool);
	struct batch b = {
		.tracker = tracker,
		.rois = &rois,
		.lut_bead = lut_bead,
		.info = info,
		.frame_bytes = ms_frame_bytes(&info),
	};
	b.ws = ms_xcalloc((size_t)nthreads, sizeof *b.ws);
	for (int i = 0; i < nthreads; i++)
		if (!(b.ws[i] = ms_track_ws_new(tracker, &e)))
			ms_die("%s", e.msg);
	/* Three batches in flight: keep each under 32 MiB whatever the frame size. */
	size_t maxf = ms_prefetch_batch_frames((size_t)c.batch, b.frame_bytes, 32u << 20);
	b.xyz = ms_xcalloc(maxf * rois.n, sizeof *b.xyz);
	b.z_prev = ms_xcalloc(rois.n, sizeof *b.z_prev);
	for (size_t i = 0; i < rois.n; i++)
		b.z_prev[i] = NAN;
	struct ms_track *rows = ms_xcalloc(maxf * rois.n, sizeof *rows);
	size_t *offsets = ms_xcalloc(maxf + 1, sizeof *offsets);

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

	struct live live = { .mu = PTHREAD_MUTEX_INITIALIZER, .nrois = rois.n };
	struct ms_ctl_server *srv = NULL;
	if (c.control) {
		const char *name = getenv("MS_STAGE");
		srv = ms_ctl_server_open(c.control, name && *name ? name : "track", 0, &e);
		if (!srv || ms_ctl_server_start(srv, on_command, &live, &e) < 0)
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
	/* A live stream's rows go out per batch, for whoever acts on them. */
	bool live_input = ms_framesrc_total(src) < 0;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int64_t total = ms_framesrc_total(src);
	uint64_t frame_index = 0, invalid = 0, dropped = 0;
	double last_progress = 0;
	struct ms_prefetch *pf = ms_prefetch_start(src, maxf, 3, &stop_signal, &e);
	if (!pf)
		ms_die("%s", e.msg);
	struct ms_frame_batch *fb;
	int rc = 0;
	while (!stop_signal && (rc = ms_prefetch_next(pf, &fb, &e)) > 0) {
		b.nframes = fb->nframes;
		b.frames = fb->pixels;
		b.t_ns = fb->t_ns;
		ms_pool_run(pool, b.nframes * rois.n, track_one, &b);

		size_t n = 0;
		offsets[0] = 0;
		for (size_t f = 0; f < b.nframes; f++) {
			for (size_t r = 0; r < rois.n; r++, n++) {
				const struct ms_xyz *p = &b.xyz[n];
				const struct ms_roi *roi = &rois.roi[r];
				rows[n] = (struct ms_track){
					.frame = frame_index + f,
					.t_ns = b.t_ns[f],
					.bead = roi->id,
					.x_nm = (p->x + roi->x0) * nm_per_px,
					.y_nm = (p->y + roi->y0) * nm_per_px,
					.z_nm = p->z,
					.roi_x0 = roi->x0,
					.roi_y0 = roi->y0,
				};
				if (isnan(p->x) || isnan(p->y) || (lutp && isnan(p->z)))
					invalid++;
				if (!isnan(p->z))
					b.z_prev[r] = p->z;
			}
			offsets[f + 1] = n;
		}
		frame_index += b.nframes;
		dropped = fb->dropped;
		if (srv) {
			pthread_mutex_lock(&live.mu);
			live.frames = frame_index;
			live.invalid = invalid;
			live.dropped = dropped;
			ms_ctl_rate_add(&live.rate, b.nframes, ms_ctl_now());
			pthread_mutex_unlock(&live.mu);
		}
		if (c.tsv && (ms_tracks_tsv_write(stdout, rows, n) < 0 ||
		              (live_input && fflush(stdout) != 0)))
			ms_die("error writing standard output:");
		if (h5) {
			struct ms_track_batch tb = { b.nframes, b.t_ns, offsets, rows };
			if (ms_h5tracks_append(h5, &tb, &e) < 0)
				ms_die("%s", e.msg);
		}
		if (latency) {
			/* The rows are in the file (flushed) or on standard output now. */
			uint64_t now = ms_now_ns();
			for (size_t f = 0; f < b.nframes; f++)
				fprintf(latency, "%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%zu\n", fb->seq[f],
				        b.t_ns[f], now, b.nframes);
		}
		if (shm)
			report_drops(&drops, srv, c.verbose < 0, false);
		ms_prefetch_release(pf, fb);
		double el = seconds_since(&t0);
		if (el - last_progress > 0.25) {
			progress(&c, (int64_t)frame_index, total, el, rois.n);
			last_progress = el;
		}
	}
	if (stop_signal)
		rc = 0;
	ms_prefetch_stop(pf);
	/* The reader thread is gone: the source's count is final and ours to read. */
	if (shm) {
		dropped = ms_framesrc_dropped(src);
		report_drops(&drops, srv, c.verbose < 0, true);
	}
	if (latency && (ferror(latency) | (fclose(latency) != 0)))
		ms_die("error writing '%s':", c.latency_log);
	double elapsed = seconds_since(&t0);
	ms_ctl_server_close(srv);
	if (total > 0 && c.verbose >= 0 && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (h5 && ms_h5tracks_close(h5, &e) < 0)
		ms_die("%s", e.msg);
	if (rc < 0)
		ms_die("%s (tracks up to frame %llu were written)", e.msg,
		       (unsigned long long)frame_index);
	if (c.verbose >= 0) {
		uint64_t nroi = frame_index * rois.n;
		char missed[96] = "";
		if (shm)
			snprintf(missed, sizeof missed, ", %llu dropped (overwritten in the ring)",
			         (unsigned long long)dropped);
		fprintf(stderr, "%s: %llu frames, %llu ROIs in %.2f s (%.0f ROIs/s, %d thread%s), "
		        "%llu invalid (NaN)%s%s\n", ms_progname(), (unsigned long long)frame_index,
		        (unsigned long long)nroi, elapsed, elapsed > 0 ? (double)nroi / elapsed : 0.0,
		        nthreads, nthreads == 1 ? "" : "s", (unsigned long long)invalid, missed,
		        stop_signal ? " (stopped by a signal)" : "");
	}

	for (int i = 0; i < nthreads; i++)
		ms_track_ws_free(b.ws[i]);
	free(b.ws);
	free(b.xyz);
	free(b.z_prev);
	free(rows);
	free(offsets);
	free(lut_bead);
	ms_pool_free(pool);
	ms_tracker_free(tracker);
	if (lutp)
		ms_zlut_free(lutp);
	ms_rois_free(&rois);
	ms_framesrc_close(src);
	ms_close_stdout();
	if (stop_signal)
		return 128 + stop_signal;
	return 0;
}
