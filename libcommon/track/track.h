/*
 * track: the XYZ tracking pipeline on one ROI, the thing ms-track and
 * ms-zlut call per bead per frame. A tracker is made once per ROI size and
 * Z-LUT: it checks the parameters, precomputes what depends only on them
 * (the normalised LUT planes) and is immutable afterwards, so any number of
 * threads share it. Each thread owns a workspace holding every scratch
 * buffer, so tracking a ROI allocates nothing.
 *
 * The default pipeline: centre of mass with |I - median| weights, a
 * half-pixel and one exact-peak autoconvolution step, then RADIAL_FIT (the
 * bead's own radial profile fitted to its pixels, two Gauss-Newton steps),
 * the radial profile (linear weights), and z where the radius-weighted
 * Pearson match is maximised over the LUT interpolated along z. MagTrack's
 * stack_to_xyzp (AUTOCONV, NEAREST, the 7-point parabola over plane index,
 * uniform weights) is a choice of parameters. Unlike MagTrack every index
 * is checked, so a bad ROI gives flagged NaN, never a crash.
 */
#ifndef MS_TRACK_H
#define MS_TRACK_H

#include <stddef.h>

#include "err.h"
#include "frame.h"
#include "track/kernels.h"
#include "zlut.h"

/*
 * x/y methods, each after the centre of mass and a half-pixel
 * autoconvolution. COM: the centre of mass alone. AUTOCONV: MagTrack's
 * (autoconv_iters multi-line sub-pixel steps with an xy_n_local-point
 * parabola). AUTOCONV_FINE: the same steps with the exact band-limited
 * autoconvolution peak instead of the parabola (ms_autoconv_fine): no
 * pixel-locking bias. RADIAL_FIT: one AUTOCONV_FINE step, then
 * ms_radial_fit with the bead's profile as template (fit_iters steps, the
 * first over the inner half; saturated cores left out): within 1.05 to
 * 1.3 times the Cramer-Rao bound on the physical simulator. QI: ms_qi,
 * qi_iters steps.
 */
enum ms_xy_method { MS_XY_COM, MS_XY_AUTOCONV, MS_XY_AUTOCONV_FINE, MS_XY_RADIAL_FIT, MS_XY_QI };

struct ms_track_params {
	int roi_size;		/* even, 8..256; default 64 */
	enum ms_com_bg com_bg;	/* default MEDIAN (MagTrack) */
	enum ms_xy_method xy;	/* default RADIAL_FIT */
	int autoconv_iters;	/* AUTOCONV(_FINE) multi-line passes, 0..100; default 5 */
	double line_ratio;	/* lines averaged = 2*floor(w*ratio/2)+1; default 0.1 */
	int xy_n_local;		/* odd, >= 3: parabola points; default 5 */
	int fit_iters;		/* RADIAL_FIT Gauss-Newton steps, 1..20; default 2 */
	int fit_weighted;	/* RADIAL_FIT: weigh pixels 1/T (Poisson); default 0 */
	int qi_iters;		/* QI steps, 1..100; default 4 */
	int qi_radial;		/* QI radial samples, 4..128; 0: roi_size / 2 */
	int qi_angular;		/* QI angles per quadrant, 1..1024; 0: roi_size / 2 */
	double qi_rmin, qi_rmax;	/* QI radius range in px; rmax 0: roi_size / 2 - 2; default 1, 0 */
	int oversample;		/* radial profile bins per pixel, 1..16; default 1 */
	enum ms_weighting weighting;	/* default LINEAR (see ms_track_params_default) */
	enum ms_z_method z;	/* default PEARSON */
	enum ms_z_fit z_fit;	/* default CUBIC */
	enum ms_z_weights z_weights;	/* default RADIUS */
	int z_n_local;		/* PARABOLA: odd, >= 3 (LUT needs z_n_local+2 planes); default 7 */
	int z_search;		/* the search starts within this many planes of z_prev, and a near-tie goes there; default 8, 0: whole table */
};

/*
 * The defaults above, chosen by measurement on the physical simulator
 * (tests/cli/t0410-accuracy.sh: 64 px, 100 nm pixels, +-2 px offsets, z
 * over +-5 um, a 121-plane LUT from a simulated sweep, 1e4 photons):
 * RADIAL_FIT x/y 0.0017 px RMS against MagTrack's AUTOCONV 0.011 at about
 * twice the cost (40 against 20 us per ROI); LINEAR profiles z 0.9 nm,
 * CUBIC 1.2, NEAREST 5.6 (on the analytic beads of tests/unit/t-track.c,
 * whose rings are sharper, CUBIC does best); the cubic z fit removes the
 * parabola's up to 90 nm error between planes, and RADIUS weights make z
 * precision 1.2-1.8x the bound where UNIFORM reaches 3.4x. A LUT must be
 * built with the weighting it is tracked with; MagScope's text LUTs are
 * NEAREST.
 */
void ms_track_params_default(struct ms_track_params *p);

/* The words for each option value, indexed by the enum, NULL-terminated. */
extern const char *const ms_com_bg_names[];	/* none mean median */
extern const char *const ms_xy_names[];		/* com autoconv autoconv-fine radial-fit qi */
extern const char *const ms_weighting_names[];	/* nearest linear cubic bilinear area */
extern const char *const ms_z_names[];		/* pearson ssd */
extern const char *const ms_z_fit_names[];	/* cubic parabola */
extern const char *const ms_z_weights_names[];	/* radius uniform */
/* Index of word in names, or -1. */
int ms_track_name_index(const char *const names[], const char *word);

struct ms_tracker;
struct ms_track_ws;

/*
 * Make a tracker. lut may be NULL (no z). The LUT must have profiles of
 * (roi_size/2)*oversample bins; a LUT that records its ROI size,
 * oversampling or weighting must agree with p too, and one that does not
 * record its weighting (a MagScope text LUT) is taken to be NEAREST. The
 * LUT is copied (its planes normalised), so the caller may free it
 * afterwards.
 */
struct ms_tracker *ms_tracker_new(const struct ms_track_params *p, const struct ms_zlut *lut,
				  ms_err *e);
void ms_tracker_free(struct ms_tracker *t);
/* Radial profile length: (roi_size/2)*oversample. */
size_t ms_tracker_plen(const struct ms_tracker *t);
const struct ms_track_params *ms_tracker_params(const struct ms_tracker *t);
/* Number of beads and planes of the LUT (0 without one). */
size_t ms_tracker_nbeads(const struct ms_tracker *t);
size_t ms_tracker_nplanes(const struct ms_tracker *t);

/* Per-thread scratch for one tracker (use it only with that tracker: with
 * another, every ROI comes back XY_BAD). */
struct ms_track_ws *ms_track_ws_new(const struct ms_tracker *t, ms_err *e);
void ms_track_ws_free(struct ms_track_ws *ws);
/* How many LUT planes the workspace's last ROI had scored: fewer than the
 * table when the search near its previous z sufficed. */
size_t ms_track_ws_zscored(const struct ms_track_ws *ws);

struct ms_roi_in {
	const void *frame;	/* the whole frame */
	enum ms_pixfmt fmt;
	size_t stride;		/* pixels per frame row */
	int x0, y0;		/* ROI top-left in the frame; the ROI must lie inside it */
	long lut_bead;		/* index of this bead's table in the LUT (0 for one bead) */
	double z_prev;		/* this bead's previous z (nm), or NaN: where the z search starts */
};

struct ms_xyz {
	double x, y;		/* ROI pixel coordinates; the caller adds x0, y0 */
	double z;		/* nm; NaN if no LUT or flagged */
	unsigned flags;		/* MS_TRK_* */
};

/*
 * Track one ROI. profile (ms_tracker_plen floats, or NULL) receives the
 * radial profile z was read from, raw (not normalised), all NaN when x/y
 * failed: the one at the found centre (RADIAL_FIT: at the centre before
 * its last step, a few thousandths of a pixel away). z is NaN and flags
 * say why when anything fails.
 */
void ms_track_roi(const struct ms_tracker *t, struct ms_track_ws *ws, const struct ms_roi_in *in,
		  struct ms_xyz *out, float *profile);
/*
 * Ask the memory system for the ROI in (the rows of its frame) ahead of
 * ms_track_roi: a frame streamed from disk is rarely in cache, and a ROI's
 * rows are far apart in it, so calling this for the next ROI before
 * tracking the current one hides the misses behind the work.
 */
void ms_track_prefetch(const struct ms_tracker *t, const struct ms_roi_in *in);

/* The same on a float ROI (roi_size^2 values, row-major). NaN pixels make
 * the result flagged. */
void ms_track_roi_f32(const struct ms_tracker *t, struct ms_track_ws *ws, const float *roi,
		      long lut_bead, double z_prev, struct ms_xyz *out, float *profile);

#endif
