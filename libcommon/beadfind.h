/*
 * beadfind: automatic bead selection on one frame, as MagScope's auto
 * bead selection does it, extended to start without a seed and to catch
 * beads that look unlike the first template. The normalised
 * cross-correlation (NCC) of a template over every valid ROI position is
 * computed with a float FFT (KissFFT) for the numerator and double
 * summed-area tables for the window statistics; candidates are picked
 * greedily in descending score without overlap (or closer than a given
 * separation) and kept at or above MagScope's default threshold (the score
 * just above the largest gap), raised to the map's noise floor when the
 * gap falls among background picks, or at or above a given threshold.
 * Bead-like objects are found by their high-pass energy at the ROI scale
 * and re-centred by point symmetry: the average of the strongest few is
 * the template without a seed, and, once a round has taken its beads, the
 * template of a further round for the objects left (beads at another
 * focus), while any carry a good part of a selected bead's energy.
 * Images are float, row-major, width x height; positions are ROI top-left
 * corners (x the column, y the row).
 */
#ifndef MS_BEADFIND_H
#define MS_BEADFIND_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"

#define MS_FIND_MAX_ROUNDS 8	/* templates (search rounds) at most */
#define MS_FIND_TEMPLATE_BEADS 8	/* beads averaged into a template at most */

struct ms_find_opts {
	int roi_size;		/* the square ROI's side, px */
	double threshold;	/* NAN: MagScope's default rule, per round, but
				 * not below the round's noise floor */
	int min_sep;		/* ROI corners closer than this in both x and y
				 * exclude each other; 0: roi_size (no overlap) */
	size_t max;		/* at most this many beads, seed included; 0: all */
	int templates;		/* search rounds (templates) at most, 1..8; 1 is
				 * MagScope's single search */
};

void ms_find_opts_default(struct ms_find_opts *o);

struct ms_find_bead {
	int32_t x0, y0;		/* ROI top-left corner */
	double score;		/* NCC with its round's template, -1..1 */
	int round;		/* the round (template) that found it */
};

/* What one search round did. */
struct ms_find_round {
	double threshold;	/* the threshold used (+inf: no candidates) */
	double floor;		/* the noise floor of the round's NCC map */
	size_t npicks;		/* greedy picks, the seed not counted */
	size_t nsel;		/* of them kept (the seed not counted) */
	double best_left;	/* the highest pick left out; NAN: none */
	/* The beads averaged into the template; 0 for the seed's ROI. */
	size_t ntemplate;
	double template_x[MS_FIND_TEMPLATE_BEADS], template_y[MS_FIND_TEMPLATE_BEADS];
};

struct ms_find_result {
	/* The selection: the seed first (if any), then in descending score. */
	struct ms_find_bead *bead;
	size_t n;
	size_t nrounds;
	struct ms_find_round round[MS_FIND_MAX_ROUNDS];
};

/*
 * The NCC of tmpl (tw x th) over img (width x height) at every valid
 * top-left position: score is (width-tw+1) x (height-th+1), row-major.
 * A window with (nearly) no variance scores 0. Fails on a flat template
 * or a template larger than the image.
 */
int ms_ncc_map(const float *img, int width, int height, const float *tmpl, int tw, int th,
               float *score, ms_err *e);

/*
 * MagScope's default score threshold over scores sorted descending: +inf
 * with none, the score with one, the 75th percentile (linear) with fewer
 * than five, else the score just above the largest gap between
 * neighbours (the 75th percentile if that gap is 0).
 */
double ms_find_default_threshold(const double *desc, size_t n);

/* The ROI corner for a bead centred at c (a click): round(c - size/2), clamped. */
int32_t ms_find_roi_corner(double c, int size, uint32_t extent);

/*
 * Search img from a seed bead centred at (cx, cy): the seed's ROI is the
 * first round's template and bead 0. Later rounds (up to o->templates) take
 * their templates from bead-like objects that no earlier round selected,
 * so that beads of another look (another focus) are found too; they stop
 * when nothing bead-like is left. Fails (with a message) on a seed outside
 * the image, a flat seed ROI, or an ROI larger than the image.
 */
int ms_find_seed(const float *img, int width, int height, double cx, double cy,
                 const struct ms_find_opts *o, struct ms_find_result *r, ms_err *e);

/*
 * Search img without a seed: every round's template comes from the
 * strongest bead-like objects not yet selected. Fails if nothing stands
 * out from the background.
 */
int ms_find_auto(const float *img, int width, int height, const struct ms_find_opts *o,
                 struct ms_find_result *r, ms_err *e);

void ms_find_result_free(struct ms_find_result *r);

/* A frame's pixels as floats (width * height); NULL if out of memory. */
float *ms_find_frame_float(const void *pixels, const struct ms_frame_info *info);

#endif
