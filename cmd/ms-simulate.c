/*
 * ms-simulate: the synthetic bead camera. Fixed beads (stuck to the
 * surface) and tethered beads (Brownian: Ornstein-Uhlenbeck in x, y and
 * z, as in MagScope's DummyCameraBeads) are drawn with the beadsim optical
 * model at the current focus, through a camera with shot and read noise,
 * and written as a frame stream on standard output or as a TIFF stack
 * (-o). Side files carry the ground truth (every bead in every frame), the
 * ROI list and the z of every frame, which is what ms-track and
 * ms-zlut build are tested against. The output is a function of the
 * options alone (--seed included), so a run can be repeated exactly.
 * With --control it is also a live camera: focus, acquisition and the
 * simulator settings change while it runs (ms-control(7)).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beadsim.h"
#include "cli.h"
#include "ctl.h"
#include "err.h"
#include "frame.h"
#include "frameout.h"
#include "fstream.h"
#include "rois.h"
#include "tiffio.h"

#define THETA_XY 1.5		/* 1/s: MagScope's tethered-bead relaxation rates */
#define THETA_Z 2.0
/* With --fast, time starts here (2023-11-14 22:13:20 UTC), so runs repeat. */
#define FAST_START_NS UINT64_C(1700000000000000000)
#define Z_LIMIT 50000.0		/* nm: the largest |z| an option may ask for */
#define Z_SPAN_MAX 40000.0	/* nm: the widest z range one run may need */
#define PLACE_TRIES 20000	/* darts per bead before starting over */
#define PLACE_ROUNDS 200	/* start-overs before giving up */

enum {
	OPT_FRAMES = 'n', OPT_OUTPUT = 'o',
	OPT_WIDTH = MS_KEY_LONG, OPT_HEIGHT, OPT_NM_PER_PX, OPT_FIXED, OPT_TETHERED,
	OPT_FIXED_Z, OPT_TETHERED_Z, OPT_TETHERED_Z_SIGMA, OPT_TETHERED_XY_SIGMA,
	OPT_FOCUS, OPT_PHOTONS, OPT_READ_NOISE, OPT_FORMAT, OPT_FPS, OPT_FAST, OPT_START,
	OPT_SEED, OPT_ROI_SIZE, OPT_MIN_SEP, OPT_TRUTH, OPT_ROIS_OUT, OPT_SWEEP, OPT_FRAMES_PER_STEP,
	OPT_ZFILE, OPT_CONTROL, OPT_FAST_RENDER, OPT_CRLB,
};

#define NOISE_BANK (1u << 20)	/* normal deviates for --fast-render's camera */

static const struct ms_opt options[] = {
	{ "width", OPT_WIDTH, "N", "frame width in pixels (512)", NULL },
	{ "height", OPT_HEIGHT, "N", "frame height in pixels (256)", NULL },
	{ "nm-per-px", OPT_NM_PER_PX, "X", "pixel size in the sample, nm (100)", NULL },
	{ "fixed", OPT_FIXED, "N", "fixed beads (5)", NULL },
	{ "tethered", OPT_TETHERED, "N", "tethered beads (3)", NULL },
	{ "fixed-z", OPT_FIXED_Z, "NM", "z of the fixed beads (0)", NULL },
	{ "tethered-z", OPT_TETHERED_Z, "NM", "mean z of the tethered beads (0)", NULL },
	{ "tethered-z-sigma", OPT_TETHERED_Z_SIGMA, "NM", "OU noise of tethered z, nm/sqrt(s) (0.3)", NULL },
	{ "tethered-xy-sigma", OPT_TETHERED_XY_SIGMA, "PX", "OU noise of tethered x/y, px/sqrt(s) (3.0)", NULL },
	{ "focus", OPT_FOCUS, "NM", "focus offset added to every bead's z (0)", NULL },
	{ "photons", OPT_PHOTONS, "N", "photons per unit intensity; 0: no noise (25000)", NULL },
	{ "read-noise", OPT_READ_NOISE, "E", "read noise, electrons RMS (0)", NULL },
	{ "format", OPT_FORMAT, "FMT", "pixel format, u8 or u16 (u8)", "u8 u16" },
	{ "fps", OPT_FPS, "F", "frames per second (30)", NULL },
	{ "fast", OPT_FAST, NULL, "do not pace: write frames as fast as possible", NULL },
	{ "start-ns", OPT_START, "NS", "first timestamp, ns since the epoch (now; --fast: 1.7e18)", NULL },
	{ "frames", OPT_FRAMES, "N", "frames to write; 0: until stopped (0)", NULL },
	{ "seed", OPT_SEED, "N", "random seed: placement, motion and noise (1)", NULL },
	{ "roi-size", OPT_ROI_SIZE, "N", "ROI size: bead spacing, margins, --rois-out (64)", NULL },
	{ "min-separation", OPT_MIN_SEP, "PX", "bead centres at least PX apart in x or y (ROI size + 8)", NULL },
	{ "truth", OPT_TRUTH, "FILE", "write every bead's true position per frame (TSV)", "file" },
	{ "rois-out", OPT_ROIS_OUT, "FILE", "write the ROI list ('id x0 y0')", "file" },
	{ "sweep", OPT_SWEEP, "A:B:S", "step the focus from A to B by S nm, then stop", NULL },
	{ "frames-per-step", OPT_FRAMES_PER_STEP, "N", "frames at each sweep step (10)", NULL },
	{ "zfile", OPT_ZFILE, "FILE", "write the fixed beads' z per frame, one per line", "file" },
	{ "output", OPT_OUTPUT, "FILE", "write a TIFF stack instead of a stream on stdout", "file:*.@(tif|tiff)" },
	{ "control", OPT_CONTROL, "PATH", "take control commands at this socket (or FIFO)", "file" },
	{ "fast-render", OPT_FAST_RENDER, NULL, "render for speed, not accuracy: for live rigs and benchmarks", NULL },
	MS_FRAMEOUT_OPTS,
	{ "crlb", OPT_CRLB, NULL, "print the Cramer-Rao bound on x, y, z of one bead (per sweep step) and exit", NULL },
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-simulate",
	.synopsis = "[-n N] [--fast] [--fixed N] [--tethered N] [--truth FILE] [--rois-out FILE] [-o FILE.tif]\n"
	            "--sweep START:STOP:STEP [--frames-per-step N] [--zfile FILE] [-o FILE.tif]\n"
	            "--crlb [--fixed-z NM | --sweep START:STOP:STEP] [--photons N] [--read-noise E]",
	.summary = "A simulated bead camera: fixed and tethered beads in brightfield (MagTrack's\n"
	           "optical model), shot and read noise; a frame stream on standard output,\n"
	           "or a TIFF stack with -o.",
	.opts = options,
	.epilog = "Bead z is its defocus: fixed beads sit at --fixed-z + focus, tethered beads\n"
	          "move about --tethered-z + focus (theta 2/s in z, 1.5/s in x/y). --truth rows:\n"
	          "frame, t_ns, bead, x_nm, y_nm, z_nm, roi_x0, roi_y0 (x = column * nm-per-px).",
};

struct config {
	long width, height, roi_size;
	double min_sep;		/* 0: roi_size + 8, so ROIs never overlap */
	double nm_per_px;
	long nfixed, ntethered;
	double fixed_z, tethered_z, z_sigma, xy_sigma, focus;
	double photons, read_noise;
	enum ms_pixfmt fmt;
	double fps;
	bool fast;
	bool start_set;
	uint64_t start_ns;
	uint64_t frames;
	bool frames_set;
	uint64_t seed;
	const char *truth, *rois_out, *zfile, *output, *control;
	bool sweep;
	double sw_start, sw_step;
	long sw_steps;		/* positions: START + STEP * [0, sw_steps) */
	long per_step;
	bool per_step_set, focus_set;
	bool crlb;
	int verbose;		/* -1 quiet, 0 normal, 1 verbose */
	bool fast_render;
	struct ms_frameout_opts out;
};

struct bead {
	double cx, cy;		/* rest position, full-frame pixels */
	bool tethered;
	double ox, oy, oz;	/* OU offsets from rest (px, px, nm) */
	struct ms_roi roi;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* The output, for the exit handler: whatever the way out, the ring goes. */
static struct ms_frameout *exit_out;

static void remove_ring_at_exit(void)
{
	ms_frameout_unlink(exit_out);
}

/* START:STOP:STEP, with MagScope's rules for a Z-LUT sweep. */
static void parse_sweep(struct config *c, const char *arg)
{
	char buf[256];
	double v[3];
	if (strlen(arg) >= sizeof buf)
		ms_usage_error("invalid value '%.40s...' for --sweep: too long", arg);
	strcpy(buf, arg);
	int ncolon = 0;
	for (const char *q = arg; *q; q++)
		ncolon += *q == ':';
	if (ncolon != 2)
		ms_usage_error("invalid value '%s' for --sweep: expected START:STOP:STEP (nm)", arg);
	char *p = buf;
	for (int i = 0; i < 3; i++) {
		char *colon = strchr(p, ':');
		if (colon)
			*colon = '\0';
		if (ms_parse_double(p, &v[i]) < 0 || fabs(v[i]) > Z_LIMIT)
			ms_usage_error("invalid value '%s' for --sweep: '%s' is not a z from %g to %g nm",
			               arg, p, -Z_LIMIT, Z_LIMIT);
		p = colon ? colon + 1 : p;
	}
	double start = v[0], stop = v[1], step = v[2];
	if (step == 0)
		ms_usage_error("invalid value '%s' for --sweep: STEP must not be 0", arg);
	if (start == stop)
		ms_usage_error("invalid value '%s' for --sweep: START and STOP must differ", arg);
	if ((stop - start > 0) != (step > 0))
		ms_usage_error("invalid value '%s' for --sweep: STEP must go from START towards STOP", arg);
	double n = round((stop - start) / step);
	if (fabs(start + n * step - stop) > 1e-6 * fabs(step))
		ms_usage_error("invalid value '%s' for --sweep: STOP is not START plus a whole number of STEPs",
		               arg);
	if (n + 1 > 1e6)
		ms_usage_error("invalid value '%s' for --sweep: more than a million steps", arg);
	c->sweep = true;
	c->sw_start = start;
	c->sw_step = step;
	c->sw_steps = (long)n + 1;
}

static void parse_args(struct config *c, int argc, char **argv)
{
	*c = (struct config){
		.width = 512, .height = 256, .roi_size = MS_ROI_SIZE_DEFAULT,
		.nm_per_px = 100, .nfixed = 5, .ntethered = 3,
		.z_sigma = 0.3, .xy_sigma = 3.0,
		.photons = 25000, .fmt = MS_PIX_U8, .fps = 30, .seed = 1, .per_step = 10,
	};
	static const char *const formats[] = { "u8", "u16", NULL };
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		if (ms_frameout_apply(&c->out, &cli, key, arg))
			continue;
		switch (key) {
		case OPT_WIDTH: c->width = ms_cli_long(&cli, arg, 8, MS_FRAME_MAX_SIDE); break;
		case OPT_HEIGHT: c->height = ms_cli_long(&cli, arg, 8, MS_FRAME_MAX_SIDE); break;
		case OPT_NM_PER_PX: c->nm_per_px = ms_cli_double(&cli, arg, 1, 10000); break;
		case OPT_FIXED: c->nfixed = ms_cli_long(&cli, arg, 0, 5000); break;
		case OPT_TETHERED: c->ntethered = ms_cli_long(&cli, arg, 0, 5000); break;
		case OPT_FIXED_Z: c->fixed_z = ms_cli_double(&cli, arg, -Z_LIMIT, Z_LIMIT); break;
		case OPT_TETHERED_Z: c->tethered_z = ms_cli_double(&cli, arg, -Z_LIMIT, Z_LIMIT); break;
		case OPT_TETHERED_Z_SIGMA: c->z_sigma = ms_cli_double(&cli, arg, 0, 10000); break;
		case OPT_TETHERED_XY_SIGMA: c->xy_sigma = ms_cli_double(&cli, arg, 0, 100); break;
		case OPT_FOCUS:
			c->focus = ms_cli_double(&cli, arg, -Z_LIMIT, Z_LIMIT);
			c->focus_set = true;
			break;
		case OPT_PHOTONS: c->photons = ms_cli_double(&cli, arg, 0, 1e12); break;
		case OPT_READ_NOISE: c->read_noise = ms_cli_double(&cli, arg, 0, 1e9); break;
		case OPT_FORMAT: c->fmt = ms_cli_choice(&cli, arg, formats) ? MS_PIX_U16 : MS_PIX_U8; break;
		case OPT_FPS: c->fps = ms_cli_double(&cli, arg, 1e-3, 1e6); break;
		case OPT_FAST: c->fast = true; break;
		case OPT_START:
			c->start_ns = (uint64_t)ms_cli_long(&cli, arg, 1, LONG_MAX);
			c->start_set = true;
			break;
		case OPT_FRAMES:
			c->frames = (uint64_t)ms_cli_long(&cli, arg, 0, LONG_MAX);
			c->frames_set = true;
			break;
		case OPT_SEED: c->seed = (uint64_t)ms_cli_long(&cli, arg, 0, LONG_MAX); break;
		case OPT_MIN_SEP:
			c->min_sep = ms_cli_double(&cli, arg, 1, 10000);
			break;
		case OPT_ROI_SIZE:
			c->roi_size = ms_cli_long(&cli, arg, MS_ROI_SIZE_MIN, MS_ROI_SIZE_MAX);
			if (c->roi_size % 2)
				ms_usage_error("invalid value '%s' for --roi-size: must be even", arg);
			break;
		case OPT_TRUTH: c->truth = arg; break;
		case OPT_ROIS_OUT: c->rois_out = arg; break;
		case OPT_SWEEP: parse_sweep(c, arg); break;
		case OPT_FRAMES_PER_STEP:
			c->per_step = ms_cli_long(&cli, arg, 1, 1000000);
			c->per_step_set = true;
			break;
		case OPT_ZFILE: c->zfile = arg; break;
		case OPT_OUTPUT: c->output = arg; break;
		case OPT_CONTROL: c->control = arg; break;
		case OPT_FAST_RENDER: c->fast_render = true; break;
		case OPT_CRLB: c->crlb = true; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (optind < argc)
		ms_usage_error("unexpected operand '%s'", argv[optind]);
	if (c->per_step_set && !c->sweep)
		ms_usage_error("--frames-per-step needs --sweep");
	if (c->sweep && c->focus_set)
		ms_usage_error("--focus and --sweep both set the focus; give one");
	if (c->sweep && !c->frames_set)
		c->frames = (uint64_t)c->sw_steps * (uint64_t)c->per_step;
	if (c->crlb && !(c->photons > 0))
		ms_usage_error("--crlb needs --photons above 0: without noise there is no bound");
	if (c->crlb && (c->output || c->truth || c->rois_out || c->zfile))
		ms_usage_error("--crlb prints a table and writes no frames or side files");
	if (c->output && c->out.shm)
		ms_usage_error("--shm is for a frame stream on standard output, not a TIFF (-o)");
	if (!c->crlb && !c->output && isatty(STDOUT_FILENO))
		ms_usage_error("standard output is a terminal: redirect the frame stream or give -o FILE");
}

/* The focus during frame i: a sweep holds its last position once done. */
static double focus_at(const struct config *c, uint64_t i)
{
	if (!c->sweep)
		return c->focus;
	uint64_t k = i / (uint64_t)c->per_step;
	if (k > (uint64_t)c->sw_steps - 1)
		k = (uint64_t)c->sw_steps - 1;
	return c->sw_start + (double)k * c->sw_step;
}

/*
 * Seeded dart throwing: uniform (so sub-pixel) centres, kept off the
 * edges and apart in x or y (Chebyshev distance) by the ROI size plus a
 * gap, so that no two square ROIs overlap, not even diagonally; a jammed
 * layout starts over. Beads are
 * never silently squeezed closer: if no layout is found, that is an error.
 */
static void place_beads(const struct config *c, struct bead *b, size_t n, double sd_xy,
                        struct ms_rng *r)
{
	double sep = c->min_sep > 0 ? c->min_sep : (double)c->roi_size + 8;
	double mfix = (double)c->roi_size / 2 + 2, mteth = mfix + 3 * sd_xy;
	for (int round = 0; round < PLACE_ROUNDS; round++) {
		size_t placed = 0;
		while (placed < n) {
			double m = b[placed].tethered ? mteth : mfix;
			double w = (double)c->width - 1 - 2 * m, h = (double)c->height - 1 - 2 * m;
			if (w < 0 || h < 0)
				goto fail;
			int t;
			for (t = 0; t < PLACE_TRIES; t++) {
				double x = m + w * ms_rng_uniform(r), y = m + h * ms_rng_uniform(r);
				size_t j;
				for (j = 0; j < placed; j++)
					if (fmax(fabs(x - b[j].cx), fabs(y - b[j].cy)) < sep)
						break;
				if (j == placed) {
					b[placed].cx = x;
					b[placed].cy = y;
					break;
				}
			}
			if (t == PLACE_TRIES)
				break;
			placed++;
		}
		if (placed == n)
			return;
	}
fail:
	ms_die("cannot place %ld fixed and %ld tethered beads in a %ldx%ld frame: centres must be "
	       "%.0f px apart in x or y and %.0f px (tethered %.1f px) from the edges for --roi-size %ld; "
	       "use a larger frame, fewer beads or a smaller --roi-size",
	       c->nfixed, c->ntethered, c->width, c->height, sep, mfix, mteth, c->roi_size);
}

/* Open a side file for writing, or die naming it. */
static FILE *xfopen(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		ms_die("cannot create '%s':", path);
	return f;
}

static void xfclose(FILE *f, const char *path)
{
	if (ferror(f) | (fclose(f) != 0))
		ms_die("error writing '%s':", path);
}

/* What a live run can change, and what it counts. */
struct run {
	struct config c;
	size_t n;			/* beads: c.nfixed fixed, then tethered */
	struct ms_beadsim *sim;
	double zmin, zmax;		/* the z range the table covers */
	double still_z;			/* z of the cached fixed-bead image */
	double dt;
	bool paused, quit;
	bool rebase;			/* fps changed: restart the schedule */
	uint64_t frames;
	struct ms_ctl_rate rate;
	struct ms_ctl_server *srv;
	double setup_s;
};

/* The z every bead may reach with these settings, for the table. */
static void z_needed(const struct config *c, size_t n, double *lo, double *hi)
{
	double flo = c->focus, fhi = c->focus;
	if (c->sweep) {
		double last = c->sw_start + (double)(c->sw_steps - 1) * c->sw_step;
		flo = fmin(c->sw_start, last);
		fhi = fmax(c->sw_start, last);
	}
	double zlo = INFINITY, zhi = -INFINITY;
	if (c->nfixed > 0 || n == 0) {
		zlo = c->fixed_z + flo;
		zhi = c->fixed_z + fhi;
	}
	double sd_z = ms_ou_stationary_sd(THETA_Z, c->z_sigma, 1 / c->fps);
	if (c->ntethered > 0) {
		zlo = fmin(zlo, c->tethered_z + flo - 6 * sd_z);
		zhi = fmax(zhi, c->tethered_z + fhi + 6 * sd_z);
	}
	*lo = zlo;
	*hi = zhi;
}

/*
 * Build the bead table for z in [lo, hi], plus margin nm each side when
 * that fits (a live camera's focus then moves without a rebuild).
 */
static struct ms_beadsim *build_table(const struct config *c, double lo, double hi,
                                      double margin, ms_err *e)
{
	struct ms_beadsim_params bp;
	ms_beadsim_defaults(&bp);
	bp.nm_per_px = c->nm_per_px;
	bp.render_radius_px = 0.75 * (double)c->roi_size;
	/* --fast-render: the intensity at each pixel's centre, not its average over 4x4 points. */
	if (c->fast_render)
		bp.supersample = 1;
	if (hi - lo + 2 * margin + 4 * bp.dz_nm > Z_SPAN_MAX)
		margin = 0;
	/* Planes on multiples of dz, so round z values fall on them. */
	bp.z_min_nm = floor((lo - margin) / bp.dz_nm) * bp.dz_nm - 2 * bp.dz_nm;
	bp.z_max_nm = ceil((hi + margin) / bp.dz_nm) * bp.dz_nm + 2 * bp.dz_nm;
	if (bp.z_max_nm - bp.z_min_nm > Z_SPAN_MAX) {
		ms_err_set(e, "the beads would span z %g..%g nm, more than the %g um one run may; "
		           "narrow the sweep or the z options", lo, hi, Z_SPAN_MAX / 1000);
		return NULL;
	}
	return ms_beadsim_new(&bp, e);
}

#define LIVE_MARGIN 2000.0	/* nm of focus travel a live table allows for */

/* Make the table cover what settings c need: rebuild it if it does not. */
static int ensure_table(struct run *r, const struct config *c, ms_err *e)
{
	double lo, hi;
	z_needed(c, r->n, &lo, &hi);
	if (r->sim && lo >= r->zmin && hi <= r->zmax)
		return 0;
	struct ms_beadsim *sim = build_table(c, lo, hi, LIVE_MARGIN, e);
	if (!sim)
		return -1;
	ms_beadsim_free(r->sim);
	r->sim = sim;
	ms_beadsim_zrange(sim, &r->zmin, &r->zmax);
	r->still_z = NAN;
	return 0;
}

/* ---- control ------------------------------------------------------------ */

/* The settings "set" and "get" know, with the ranges of their options. */
enum setting { S_FPS, S_FIXED_Z, S_TETHERED_Z, S_Z_SIGMA, S_XY_SIGMA, S_PHOTONS, S_READ_NOISE, S_FOCUS, NSET };

static const struct {
	const char *name;
	double min, max;
} settings[NSET] = {
	[S_FPS] = { "fps", 1e-3, 1e6 },
	[S_FIXED_Z] = { "fixed-z", -Z_LIMIT, Z_LIMIT },
	[S_TETHERED_Z] = { "tethered-z", -Z_LIMIT, Z_LIMIT },
	[S_Z_SIGMA] = { "tethered-z-sigma", 0, 10000 },
	[S_XY_SIGMA] = { "tethered-xy-sigma", 0, 100 },
	[S_PHOTONS] = { "photons", 0, 1e12 },
	[S_READ_NOISE] = { "read-noise", 0, 1e9 },
	[S_FOCUS] = { "focus", -Z_LIMIT, Z_LIMIT },
};

static double *setting_ptr(struct config *c, enum setting k)
{
	switch (k) {
	case S_FPS: return &c->fps;
	case S_FIXED_Z: return &c->fixed_z;
	case S_TETHERED_Z: return &c->tethered_z;
	case S_Z_SIGMA: return &c->z_sigma;
	case S_XY_SIGMA: return &c->xy_sigma;
	case S_PHOTONS: return &c->photons;
	case S_READ_NOISE: return &c->read_noise;
	case S_FOCUS: return &c->focus;
	case NSET: break;
	}
	return NULL;
}

static int find_setting(const char *name)
{
	for (int k = 0; k < NSET; k++)
		if (strcmp(settings[k].name, name) == 0)
			return k;
	return -1;
}

/*
 * Apply a new configuration: check it whole, build a table if it needs
 * one, and only then change anything, so a refused command changes
 * nothing. Answers into reply on failure.
 */
static int apply(struct run *r, const struct config *nc, char *reply, size_t size)
{
	if (r->c.sweep && (nc->focus != r->c.focus))
		return ms_ctl_err(reply, size, MS_CTL_BUSY, "a --sweep drives the focus"), -1;
	if (r->c.ntethered > 0 && (THETA_Z / nc->fps >= 2 || THETA_XY / nc->fps >= 2))
		return ms_ctl_err(reply, size, MS_CTL_BAD_VALUE,
		                  "fps %g is too low for tethered beads: it must be above %g",
		                  nc->fps, THETA_Z / 2), -1;
	ms_err e;
	if (ensure_table(r, nc, &e) < 0)
		return ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg), -1;
	bool focus_moved = nc->focus != r->c.focus;
	r->rebase = r->rebase || nc->fps != r->c.fps;
	r->c = *nc;
	r->dt = 1 / r->c.fps;
	if (focus_moved)
		ms_ctl_server_event(r->srv, NULL, "focus position=%.10g", r->c.focus);
	return 0;
}

static int parse_value(const char *name, const char *text, double *v, char *reply, size_t size)
{
	int k = find_setting(name);
	if (k < 0)
		return ms_ctl_err(reply, size, MS_CTL_USAGE, "no setting '%s' (settings: fps, fixed-z, "
		                  "tethered-z, tethered-z-sigma, tethered-xy-sigma, photons, read-noise, "
		                  "focus)", name), -1;
	if (ms_parse_double(text, v) < 0)
		return ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "%s '%s' is not a number", name, text), -1;
	if (*v < settings[k].min || *v > settings[k].max)
		return ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "%s %s is out of range: %g to %g", name,
		                  text, settings[k].min, settings[k].max), -1;
	return k;
}

static void status_reply(struct run *r, char *reply, size_t size)
{
	double now = ms_ctl_now();
	ms_ctl_ok(reply, size,
	          "state=%s frames=%" PRIu64 " fps=%.1f acquisition=%s focus=%.10g fps-set=%.10g "
	          "fixed-z=%.10g tethered-z=%.10g tethered-z-sigma=%.10g tethered-xy-sigma=%.10g "
	          "photons=%.10g read-noise=%.10g width=%ld height=%ld fixed=%ld tethered=%ld "
	          "zmin=%.10g zmax=%.10g",
	          r->paused ? "paused" : "running", r->frames, ms_ctl_rate_get(&r->rate, now),
	          r->paused ? "off" : "on", r->c.focus, r->c.fps, r->c.fixed_z, r->c.tethered_z,
	          r->c.z_sigma, r->c.xy_sigma, r->c.photons, r->c.read_noise, r->c.width,
	          r->c.height, r->c.nfixed, r->c.ntethered, r->zmin, r->zmax);
}

static void on_command(void *ctx, struct ms_ctl_server *srv, struct ms_ctl_req *q)
{
	struct run *r = ctx;
	const struct ms_ctl_cmd *cmd = q->cmd;
	const char *verb = cmd->verb;
	char *reply = q->reply;
	size_t size = sizeof q->reply;
	(void)srv;
	if (strcmp(verb, "status") == 0) {
		status_reply(r, reply, size);
	} else if (strcmp(verb, "focus") == 0) {
		const char *sub = cmd->argc > 0 ? cmd->argv[0] : "";
		if (strcmp(sub, "get") == 0 && cmd->argc == 1) {
			ms_ctl_ok(reply, size, "position=%.10g", r->c.focus);
		} else if (strcmp(sub, "set") == 0 && cmd->argc == 2) {
			double v;
			if (parse_value("focus", cmd->argv[1], &v, reply, size) < 0)
				return;
			struct config nc = r->c;
			nc.focus = v;
			if (apply(r, &nc, reply, size) == 0)
				ms_ctl_ok(reply, size, "position=%.10g", r->c.focus);
		} else {
			ms_ctl_err(reply, size, MS_CTL_USAGE, "focus get | focus set NM");
		}
	} else if (strcmp(verb, "set") == 0) {
		if (cmd->argc == 0) {
			ms_ctl_err(reply, size, MS_CTL_USAGE, "set KEY=VALUE...");
			return;
		}
		struct config nc = r->c;
		for (int i = 0; i < cmd->argc; i++) {
			char key[64];
			const char *val;
			double v;
			if (!ms_ctl_kv(cmd->argv[i], key, sizeof key, &val)) {
				ms_ctl_err(reply, size, MS_CTL_USAGE, "'%s' is not KEY=VALUE", cmd->argv[i]);
				return;
			}
			int k = parse_value(key, val, &v, reply, size);
			if (k < 0)
				return;
			*setting_ptr(&nc, (enum setting)k) = v;
		}
		if (apply(r, &nc, reply, size) == 0)
			ms_ctl_ok(reply, size, "%s", "");
	} else if (strcmp(verb, "get") == 0) {
		char text[MS_CTL_LINE_MAX] = "";
		size_t len = 0;
		for (int k = 0; k < NSET; k++) {
			bool want = cmd->argc == 0;
			for (int i = 0; i < cmd->argc; i++)
				want = want || strcmp(cmd->argv[i], settings[k].name) == 0;
			if (want)
				len += (size_t)snprintf(text + len, sizeof text - len, "%s%s=%.10g",
				                        len ? " " : "", settings[k].name,
				                        *setting_ptr(&r->c, (enum setting)k));
		}
		for (int i = 0; i < cmd->argc; i++)
			if (find_setting(cmd->argv[i]) < 0) {
				ms_ctl_err(reply, size, MS_CTL_USAGE, "no setting '%s'", cmd->argv[i]);
				return;
			}
		ms_ctl_ok(reply, size, "%s", text);
	} else if (strcmp(verb, "acquisition") == 0) {
		bool on;
		int k = ms_ctl_switch_arg(cmd, &on, reply, size);
		if (k > 0 && on == r->paused) {
			r->paused = !on;
			ms_ctl_server_event(r->srv, NULL, "acquisition state=%s", on ? "on" : "off");
		}
		if (k >= 0)
			ms_ctl_ok(reply, size, "acquisition=%s", r->paused ? "off" : "on");
	} else if (strcmp(verb, "quit") == 0) {
		r->quit = true;
		ms_ctl_ok(reply, size, "stopping");
	} else if (strcmp(verb, "help") == 0) {
		ms_ctl_ok(reply, size, "verbs: status, focus get, focus set NM, set KEY=VALUE..., "
		          "get [KEY...], acquisition [on|off], quit, subscribe, unsubscribe, help");
	} else {
		ms_ctl_err(reply, size, MS_CTL_UNKNOWN_VERB, "no verb '%s' (try help)", verb);
	}
}

/*
 * Wait until t0 + ns on the monotonic clock; a signal or a quit cuts it
 * short. With a control endpoint, commands are served meanwhile.
 */
static void wait_until(struct run *r, const struct timespec *t0, double ns)
{
	for (;;) {
		double left = ns / 1e9 - ms_seconds_since(t0);
		if (stop_signal || r->quit || r->paused)
			return;
		if (!r->srv) {
			if (left <= 0)
				return;
			double s = (double)t0->tv_sec + floor(ns / 1e9);
			double rest = (double)t0->tv_nsec + fmod(ns, 1e9);
			struct timespec t = { (time_t)s, 0 };
			if (rest >= 1e9) {
				t.tv_sec++;
				rest -= 1e9;
			}
			t.tv_nsec = (long)rest;
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
			return;
		}
		ms_ctl_server_wait(r->srv, left > 0 ? left : 0, on_command, r);
		if (left <= 0)
			return;
	}
}

/*
 * --crlb: the Cramer-Rao bound for one bead at the centre of a ROI, at
 * the z of each sweep step (or the one z), with this run's camera.
 */
static int run_crlb(const struct config *c)
{
	double z0 = c->fixed_z + (c->sweep ? c->sw_start : c->focus);
	double z1 = c->fixed_z + (c->sweep ? c->sw_start + (double)(c->sw_steps - 1) * c->sw_step
	                                   : c->focus);
	struct ms_beadsim_params bp;
	ms_beadsim_defaults(&bp);
	bp.nm_per_px = c->nm_per_px;
	bp.render_radius_px = 0.75 * (double)c->roi_size;
	bp.z_min_nm = floor(fmin(z0, z1) / bp.dz_nm) * bp.dz_nm - 2 * bp.dz_nm;
	bp.z_max_nm = ceil(fmax(z0, z1) / bp.dz_nm) * bp.dz_nm + 2 * bp.dz_nm;
	if (bp.z_max_nm - bp.z_min_nm > Z_SPAN_MAX)
		ms_usage_error("the bound would span z %g..%g nm, more than the %g um one run may",
		               fmin(z0, z1), fmax(z0, z1), Z_SPAN_MAX / 1000);
	ms_err e = { "" };
	struct ms_beadsim *sim = ms_beadsim_new(&bp, &e);
	if (!sim)
		ms_die("%s", e.msg);
	struct ms_crlb_camera cam = {
		.photons = c->photons, .read_noise_e = c->read_noise,
		.adu_e = c->photons / ms_pixfmt_max(c->fmt),
	};
	double w2 = (double)(c->roi_size / 2);
	printf("# z_nm\tcrlb_x_px\tcrlb_y_px\tcrlb_z_nm\n");
	long steps = c->sweep ? c->sw_steps : 1;
	for (long k = 0; k < steps; k++) {
		double z = c->fixed_z + (c->sweep ? c->sw_start + (double)k * c->sw_step : c->focus);
		struct ms_crlb b;
		if (ms_beadsim_crlb(sim, (int)c->roi_size, w2, w2, z, &cam, &b, &e) < 0)
			ms_die("%s", e.msg);
		printf("%.6g\t%.6g\t%.6g\t%.6g\n", z, b.x_px, b.y_px, b.z_nm);
	}
	ms_beadsim_free(sim);
	ms_close_stdout();
	return MS_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct run r = { .still_z = NAN };
	parse_args(&r.c, argc, argv);
	struct config *cp = &r.c;
	if (cp->crlb)
		return run_crlb(cp);
	ms_err e = { "" };
	struct timespec t_setup;
	clock_gettime(CLOCK_MONOTONIC, &t_setup);

	/* Independent streams, so that no option changes another's draws. */
	struct ms_rng rplace, rmove, rnoise;
	ms_rng_seed(&rplace, cp->seed * 4 + 1);
	ms_rng_seed(&rmove, cp->seed * 4 + 2);
	ms_rng_seed(&rnoise, cp->seed * 4 + 3);

	r.dt = 1 / cp->fps;
	if (cp->ntethered > 0 && (THETA_Z * r.dt >= 2 || THETA_XY * r.dt >= 2))
		ms_usage_error("invalid value '%g' for --fps: tethered-bead motion needs more than %g frames/s",
		               cp->fps, THETA_Z / 2);
	double sd_xy = ms_ou_stationary_sd(THETA_XY, cp->xy_sigma, r.dt);
	double sd_z = ms_ou_stationary_sd(THETA_Z, cp->z_sigma, r.dt);
	/*
	 * Margins use the continuous-time SD, so that the layout depends on
	 * the seed, counts, frame, ROI size and xy sigma only: a one-frame
	 * run at any --fps gives the ROI list of a longer one.
	 */
	double sd_xy_margin = cp->xy_sigma / sqrt(2 * THETA_XY);

	size_t n = (size_t)(cp->nfixed + cp->ntethered);
	r.n = n;
	struct bead *beads = ms_xcalloc(n ? n : 1, sizeof *beads);
	for (size_t i = (size_t)cp->nfixed; i < n; i++)
		beads[i].tethered = true;
	place_beads(cp, beads, n, sd_xy_margin, &rplace);
	struct ms_roilist rois = { ms_xcalloc(n ? n : 1, sizeof *rois.roi), n };
	for (size_t i = 0; i < n; i++) {
		struct bead *b = &beads[i];
		b->roi = (struct ms_roi){ (uint32_t)i, (int32_t)lround(b->cx - (double)cp->roi_size / 2),
		                          (int32_t)lround(b->cy - (double)cp->roi_size / 2) };
		rois.roi[i] = b->roi;
		if (b->tethered) {
			/* Start in the stationary state, so statistics need no burn-in. */
			b->ox = sd_xy * ms_rng_normal(&rmove);
			b->oy = sd_xy * ms_rng_normal(&rmove);
			b->oz = sd_z * ms_rng_normal(&rmove);
		}
	}

	/* The table covers every z the run can reach (and, live, some more). */
	double zlo, zhi;
	z_needed(cp, n, &zlo, &zhi);
	r.sim = build_table(cp, zlo, zhi, cp->control ? LIVE_MARGIN : 0, &e);
	if (!r.sim) {
		if (strstr(e.msg, "would span"))
			ms_usage_error("%s", e.msg);
		ms_die("%s", e.msg);
	}
	ms_beadsim_zrange(r.sim, &r.zmin, &r.zmax);
	r.setup_s = ms_seconds_since(&t_setup);
	if (cp->verbose > 0) {
		size_t nr, nz;
		ms_beadsim_table_size(r.sim, &nr, &nz);
		fprintf(stderr, "%s: bead model: %zu z planes (%g..%g nm) x %zu radii, built in %.3f s\n",
		        ms_progname(), nz, r.zmin, r.zmax, nr, r.setup_s);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "%s: bead %zu %s at (%.3f, %.3f), ROI (%d, %d)\n", ms_progname(), i,
			        beads[i].tethered ? "tethered" : "fixed", beads[i].cx, beads[i].cy,
			        beads[i].roi.x0, beads[i].roi.y0);
	}

	if (cp->control) {
		const char *name = getenv("MS_STAGE");
		r.srv = ms_ctl_server_open(cp->control, name && *name ? name : "camera", 0, &e);
		if (!r.srv)
			ms_die("%s", e.msg);
	}

	if (cp->rois_out) {
		FILE *f = xfopen(cp->rois_out);
		const char **comment = ms_xcalloc(n ? n : 1, sizeof *comment);
		for (size_t i = 0; i < n; i++)
			comment[i] = beads[i].tethered ? "tethered" : "fixed";
		ms_rois_write(f, &rois, comment);
		xfclose(f, cp->rois_out);
		free(comment);
	}
	FILE *truth = cp->truth ? xfopen(cp->truth) : NULL;
	FILE *zfile = cp->zfile ? xfopen(cp->zfile) : NULL;
	if (truth)
		fprintf(truth, "# frame\tt_ns\tbead\tx_nm\ty_nm\tz_nm\troi_x0\troi_y0\n");

	struct ms_frame_info info = {
		.width = (uint32_t)cp->width, .height = (uint32_t)cp->height,
		.fmt = cp->fmt, .nm_per_px = cp->nm_per_px,
	};
	size_t npx = (size_t)cp->width * (size_t)cp->height;
	float *still = ms_xmalloc(npx * sizeof *still);
	float *work = ms_xmalloc(npx * sizeof *work);
	void *pixels = ms_xmalloc(ms_frame_bytes(&info));

	struct ms_frameout *fw = NULL;
	struct ms_tiff_writer *tw = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* --fast-render's camera draws its normal deviates once. */
	float *bank = NULL;
	if (cp->fast_render && cp->photons > 0) {
		bank = ms_xmalloc(NOISE_BANK * sizeof *bank);
		for (size_t k = 0; k < NOISE_BANK; k++)
			bank[k] = (float)ms_rng_normal(&rnoise);
	}
	if (cp->output) {
		tw = ms_tiff_open_write(cp->output, &info, cp->frames, &e);
		if (!tw)
			ms_die("%s", e.msg);
	} else {
		/* A reader that goes away ends the run: see EPIPE below. */
		signal(SIGPIPE, SIG_IGN);
		atexit(remove_ring_at_exit);
		fw = ms_frameout_open(STDOUT_FILENO, &info, &cp->out, "simulate", "standard output", &e);
		exit_out = fw;
		if (fw && cp->verbose > 0 && ms_frameout_ring(fw))
			fprintf(stderr, "%s: frames in shared-memory ring %s (%u slots)\n", ms_progname(),
			        ms_frameout_ring(fw), ms_frameout_slots(fw));
		if (!fw) {
			ms_ctl_server_close(r.srv);
			if (errno == EPIPE)
				return MS_EXIT_OK;
			if (errno == EINTR && stop_signal)
				return 128 + stop_signal;
			ms_die("%s", e.msg);
		}
	}

	uint64_t start_ns = cp->start_set ? cp->start_ns : cp->fast ? FAST_START_NS : ms_now_ns();
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/*
	 * Frame i is due base_ns + (i - base_i) / fps after t0, and its
	 * timestamp is start_ns plus that; a change of rate or a pause starts
	 * the schedule afresh from the frame it affects.
	 */
	double base_ns = 0, prev_ns = 0;
	uint64_t base_i = 0;
	uint64_t i;
	bool broken_pipe = false;
	double max_late_ns = 0;
	uint64_t late_frames = 0;
	for (i = 0; (cp->frames == 0 || i < cp->frames) && !stop_signal && !r.quit; i++) {
		if (r.srv) {
			ms_ctl_server_dispatch(r.srv, on_command, &r);
			/* Paused, the camera takes no frames: time runs on without them. */
			bool was_paused = r.paused;
			while (r.paused && !stop_signal && !r.quit)
				ms_ctl_server_wait(r.srv, 0.25, on_command, &r);
			if (stop_signal || r.quit)
				break;
			if (r.rebase && i > 0) {
				base_ns = prev_ns + 1e9 / cp->fps;
				base_i = i;
			}
			r.rebase = false;
			if (was_paused && !cp->fast) {
				base_ns = fmax(ms_seconds_since(&t0) * 1e9, prev_ns + 1e9 / cp->fps);
				base_i = i;
			}
		}
		double sched_ns = base_ns + (double)(i - base_i) * 1e9 / cp->fps;
		double focus = focus_at(cp, i);
		double fz = cp->fixed_z + focus;
		/* Fixed beads share one z: draw them once per focus position. */
		if (!(fz == r.still_z)) {
			ms_beadsim_fill(r.sim, still, npx);
			for (size_t k = 0; k < (size_t)cp->nfixed; k++)
				if (ms_beadsim_add(r.sim, still, (int)cp->width, (int)cp->height, beads[k].cx,
				                   beads[k].cy, fz, &e) < 0)
					ms_die("%s", e.msg);
			r.still_z = fz;
		}
		memcpy(work, still, npx * sizeof *work);
		for (size_t k = (size_t)cp->nfixed; k < n; k++) {
			struct bead *b = &beads[k];
			double z = fmin(fmax(cp->tethered_z + focus + b->oz, r.zmin), r.zmax);
			if (ms_beadsim_add(r.sim, work, (int)cp->width, (int)cp->height, b->cx + b->ox,
			                   b->cy + b->oy, z, &e) < 0)
				ms_die("%s", e.msg);
		}
		if (cp->fast_render)
			ms_beadsim_camera_approx(work, (size_t)cp->width, (size_t)cp->height, cp->photons,
			                         cp->read_noise, cp->fmt, pixels, bank, NOISE_BANK, &rnoise);
		else
			ms_beadsim_camera(work, npx, cp->photons, cp->read_noise, cp->fmt, pixels, &rnoise);

		uint64_t t_ns = start_ns + (uint64_t)llround(sched_ns);
		if (!cp->fast) {
			wait_until(&r, &t0, sched_ns);
			if (stop_signal || r.quit)
				break;
			/* Paused while it waited: this frame is never taken. */
			if (r.paused) {
				i--;
				continue;
			}
			/* How late the frame goes out: the camera's own lag, for -v. */
			double late = ms_seconds_since(&t0) * 1e9 - sched_ns;
			if (late > max_late_ns)
				max_late_ns = late;
			late_frames += late > 1e9 / cp->fps;
		}
		if (tw) {
			if (ms_tiff_write(tw, pixels, t_ns, &e) < 0)
				ms_die("%s", e.msg);
		} else {
			struct ms_frame f = { .seq = i, .t_ns = t_ns, .info = info, .pixels = pixels };
			if (ms_frameout_put(fw, &f, &e) < 0) {
				if (errno == EPIPE) {
					broken_pipe = true;
					break;
				}
				if (errno == EINTR && stop_signal)
					break;
				ms_die("%s", e.msg);
			}
		}
		r.frames = i + 1;
		ms_ctl_rate_add(&r.rate, 1, ms_ctl_now());
		if (truth)
			for (size_t k = 0; k < n; k++) {
				const struct bead *b = &beads[k];
				double z = b->tethered ? fmin(fmax(cp->tethered_z + focus + b->oz, r.zmin), r.zmax) : fz;
				fprintf(truth, "%" PRIu64 "\t%" PRIu64 "\t%zu\t%.4f\t%.4f\t%.4f\t%d\t%d\n", i,
				        t_ns, k, (b->cx + b->ox) * cp->nm_per_px, (b->cy + b->oy) * cp->nm_per_px,
				        z, b->roi.x0, b->roi.y0);
			}
		if (zfile)
			fprintf(zfile, "%.10g\n", fz);
		for (size_t k = (size_t)cp->nfixed; k < n; k++) {
			struct bead *b = &beads[k];
			b->ox = ms_ou_step(b->ox, 0, THETA_XY, cp->xy_sigma, r.dt, &rmove);
			b->oy = ms_ou_step(b->oy, 0, THETA_XY, cp->xy_sigma, r.dt, &rmove);
			b->oz = ms_ou_step(b->oz, 0, THETA_Z, cp->z_sigma, r.dt, &rmove);
		}
		prev_ns = sched_ns;
	}
	double elapsed = ms_seconds_since(&t0);
	/* Stop taking commands before the stream ends: a consumer may go next. */
	ms_ctl_server_close(r.srv);

	if (tw && ms_tiff_close_write(tw, &e) < 0)
		ms_die("%s", e.msg);
	if (fw) {
		exit_out = NULL;
		if (ms_frameout_finish(fw, &broken_pipe, &e) < 0)
			ms_die("%s", e.msg);
	}
	if (truth)
		xfclose(truth, cp->truth);
	if (zfile)
		xfclose(zfile, cp->zfile);
	/* A reader that stops reading is a normal end of a camera's stream. */
	if (cp->verbose >= 0 && !broken_pipe)
		fprintf(stderr, "%s: %" PRIu64 " frames in %.2f s (%.1f frames/s; set-up %.2f s)%s\n",
		        ms_progname(), i, elapsed, elapsed > 0 ? (double)i / elapsed : 0.0, r.setup_s,
		        stop_signal ? " (stopped by a signal)" : r.quit ? " (stopped by a quit command)" : "");

	if (cp->verbose > 0 && !cp->fast && i > 0)
		fprintf(stderr, "%s: frames went out at most %.2f ms after their time; %" PRIu64
		        " more than a frame period late\n", ms_progname(), max_late_ns / 1e6, late_frames);
	ms_beadsim_free(r.sim);
	ms_rois_free(&rois);
	free(beads);
	free(still);
	free(work);
	free(pixels);
	free(bank);
	ms_close_stdout();
	if (stop_signal)
		return 128 + stop_signal;
	return MS_EXIT_OK;
}
