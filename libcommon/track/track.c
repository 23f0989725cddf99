/*
 * track: the tracker (checked parameters plus the normalised Z-LUT,
 * immutable and shared by threads), the per-thread workspace, and the
 * per-ROI pipeline that strings the kernels together and turns every
 * failure into flags and NaN. See track.h.
 */
#include "track/track.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "track/vec.h"

const char *const ms_com_bg_names[] = {"none", "mean", "median", NULL};
const char *const ms_xy_names[] = {"com", "autoconv", "autoconv-fine", "radial-fit", "qi", NULL};
const char *const ms_weighting_names[] = {"nearest", "linear", "cubic", "bilinear", "area", NULL};
const char *const ms_z_names[] = {"pearson", "ssd", NULL};
const char *const ms_z_fit_names[] = {"cubic", "parabola", NULL};
const char *const ms_z_weights_names[] = {"radius", "uniform", NULL};

struct ms_tracker {
	struct ms_track_params p;
	int w, half_lines;
	size_t plen, zstride, nplanes, nbeads;
	double *z_nm;		/* [nplanes] */
	int z_rising;		/* z_nm strictly increasing: a local search can find z_prev */
	float *planes;		/* [nbeads][nplanes][zstride], normalised */
	float *gram;		/* [nbeads][nplanes][4]: ms_z_gram of each bead's planes */
	float *sw;		/* [zstride]: sqrt of the bin weights */
	double *prefix;		/* [nbeads][nplanes][ms_z_prefix_len]: ms_z_prefix of the planes */
	float *zaccept;		/* [nbeads][nplanes] or NULL: find_z's window test (see there) */
};

struct ms_track_ws {
	const struct ms_tracker *t;
	float *roi;		/* w*w */
	float *tmp;		/* w*w: the float median's copy */
	float *ac;		/* autoconvolution scratch */
	float *ps;		/* radial profile scratch */
	float *rf;		/* radial fit scratch */
	float *fprof;		/* the fit's profile, out to the ROI's corners */
	float *prof;		/* plen */
	float *pn;		/* zstride: the normalised profile */
	float *scores;		/* nplanes */
	float *zstats;		/* 2 nplanes: ms_z_scores_from's plane statistics */
	float *zgram;		/* 4 nplanes: the Gram band over a saturated profile's bins */
	size_t zscored;		/* planes scored for the last ROI's z */
	int *satlo, *sathi;	/* w: per row, the first and last saturated column */
	uint32_t *hist;		/* MS_ROI_HIST_LEN */
	struct ms_acfine *acf;	/* AUTOCONV_FINE's and RADIAL_FIT's FFT plans, else NULL */
	struct ms_qi *qi;	/* QI's tables and plans, else NULL */
	void *block;
};

void ms_track_params_default(struct ms_track_params *p)
{
	p->roi_size = 64;
	p->com_bg = MS_COM_BG_MEDIAN;
	p->xy = MS_XY_RADIAL_FIT;
	p->autoconv_iters = 5;
	p->line_ratio = 0.1;
	p->xy_n_local = 5;
	p->fit_iters = 2;
	p->fit_weighted = 0;
	p->qi_iters = 4;
	p->qi_radial = 0;
	p->qi_angular = 0;
	p->qi_rmin = 1;
	p->qi_rmax = 0;
	p->oversample = 1;
	p->weighting = MS_PROFILE_LINEAR;
	p->z = MS_Z_PEARSON;
	p->z_fit = MS_ZFIT_CUBIC;
	p->z_weights = MS_ZW_RADIUS;
	p->z_n_local = 7;
	p->z_search = 8;
}

int ms_track_name_index(const char *const names[], const char *word)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], word) == 0)
			return i;
	return -1;
}

static int check_params(const struct ms_track_params *p, ms_err *e)
{
	if (p->roi_size < 8 || p->roi_size > 256 || p->roi_size % 2)
		return ms_err_set(e, "ROI size %d is not an even number from 8 to 256", p->roi_size);
	if ((unsigned)p->com_bg > MS_COM_BG_MEDIAN)
		return ms_err_set(e, "unknown centre-of-mass background %d", (int)p->com_bg);
	if ((unsigned)p->xy > MS_XY_QI)
		return ms_err_set(e, "unknown x/y method %d", (int)p->xy);
	if (p->autoconv_iters < 0 || p->autoconv_iters > 100)
		return ms_err_set(e, "autoconvolution iterations %d not in 0..100", p->autoconv_iters);
	if (!(p->line_ratio >= 0 && p->line_ratio <= 1))
		return ms_err_set(e, "line ratio %g not in 0..1", p->line_ratio);
	if (p->xy_n_local < 3 || p->xy_n_local % 2 == 0 || p->xy_n_local > p->roi_size - 2)
		return ms_err_set(e, "x/y fit points %d: need an odd number from 3 to %d",
				  p->xy_n_local, p->roi_size - 3);
	if (p->fit_iters < 1 || p->fit_iters > 20)
		return ms_err_set(e, "radial fit iterations %d not in 1..20", p->fit_iters);
	if (p->qi_iters < 1 || p->qi_iters > 100)
		return ms_err_set(e, "QI iterations %d not in 1..100", p->qi_iters);
	if (p->qi_radial != 0 && (p->qi_radial < 4 || p->qi_radial > 128))
		return ms_err_set(e, "QI radial steps %d not in 4..128", p->qi_radial);
	if (p->qi_angular < 0 || p->qi_angular > 1024)
		return ms_err_set(e, "QI angular steps %d not in 1..1024", p->qi_angular);
	if (!(p->qi_rmin >= 0 && p->qi_rmax >= 0 && p->qi_rmax <= p->roi_size &&
	      (p->qi_rmax == 0 || p->qi_rmax > p->qi_rmin)))
		return ms_err_set(e, "QI radius range %g..%g px: need 0 <= min < max <= %d",
				  p->qi_rmin, p->qi_rmax, p->roi_size);
	if (p->oversample < 1 || p->oversample > 16)
		return ms_err_set(e, "profile oversample %d not in 1..16", p->oversample);
	if ((unsigned)p->weighting > MS_PROFILE_AREA)
		return ms_err_set(e, "unknown profile weighting %d", (int)p->weighting);
	if ((unsigned)p->z > MS_Z_SSD)
		return ms_err_set(e, "unknown z method %d", (int)p->z);
	if ((unsigned)p->z_fit > MS_ZFIT_PARABOLA)
		return ms_err_set(e, "unknown z fit %d", (int)p->z_fit);
	if ((unsigned)p->z_weights > MS_ZW_UNIFORM)
		return ms_err_set(e, "unknown z bin weights %d", (int)p->z_weights);
	if (p->z_n_local < 3 || p->z_n_local % 2 == 0)
		return ms_err_set(e, "z fit points %d: need an odd number >= 3", p->z_n_local);
	if (p->z_search < 0 || p->z_search > 100000)
		return ms_err_set(e, "z search window %d planes not in 0..100000", p->z_search);
	return 0;
}

static int check_lut(const struct ms_track_params *p, size_t plen, const struct ms_zlut *lut,
		     ms_err *e)
{
	if (lut->plen != plen)
		return ms_err_set(e, "Z-LUT profile length %zu does not fit ROI size %d with "
				  "oversample %d (expects %zu)", lut->plen, p->roi_size,
				  p->oversample, plen);
	if (lut->roi_size && lut->roi_size != p->roi_size)
		return ms_err_set(e, "Z-LUT was made for ROI size %d, not %d", lut->roi_size,
				  p->roi_size);
	if (lut->oversample && lut->oversample != p->oversample)
		return ms_err_set(e, "Z-LUT was made with profile oversample %d, not %d",
				  lut->oversample, p->oversample);
	/* a table that does not say (MagScope's text form) holds MagScope's
	 * nearest-bin profiles: matching it with other profiles would give a
	 * plausible but wrong z, so that is an error too */
	if (!lut->weighting[0] && p->weighting != MS_PROFILE_NEAREST)
		return ms_err_set(e, "Z-LUT does not say its profile weighting, so it is taken "
				  "to be MagScope's 'nearest', not '%s'",
				  ms_weighting_names[p->weighting]);
	if (lut->weighting[0] && strcmp(lut->weighting, ms_weighting_names[p->weighting]))
		return ms_err_set(e, "Z-LUT was made with '%.16s' profile weighting, not '%s'",
				  lut->weighting, ms_weighting_names[p->weighting]);
	if (lut->nbeads < 1)
		return ms_err_set(e, "Z-LUT has no beads");
	if (p->z_fit == MS_ZFIT_PARABOLA && lut->nplanes < (size_t)p->z_n_local + 2)
		return ms_err_set(e, "Z-LUT has %zu planes; a %d-point z fit needs at least %d",
				  lut->nplanes, p->z_n_local, p->z_n_local + 2);
	if (p->z_fit == MS_ZFIT_CUBIC && lut->nplanes < 5)
		return ms_err_set(e, "Z-LUT has %zu planes; the cubic z fit needs at least 5",
				  lut->nplanes);
	for (size_t k = 0; k < lut->nplanes; k++)
		if (!isfinite(lut->z_nm[k]))
			return ms_err_set(e, "Z-LUT plane %zu has no finite z", k);
	return 0;
}

/*
 * find_z's test for a windowed search. For plane j, let c be the largest
 * overlap (cosine) between it and any plane more than z_search planes
 * away, theta = acos(c) their smallest angle. All vectors are unit (or
 * zero), so if the profile p is within theta/2 of j, every such distant
 * plane k is farther from p than j is (angle(p, k) >= angle(j, k) -
 * angle(p, j) > angle(p, j)): j beats them all without scoring them.
 * zaccept[j] is the cosine of theta/2, raised a little for float rounding.
 * It costs nplanes^2 dot products per bead, so a table too big for that
 * (thousands of planes and beads) goes without, and is always scored whole.
 */
static void set_window_test(struct ms_tracker *t)
{
	size_t n = t->nplanes, W = (size_t)t->p.z_search;
	if (W == 0 || !t->z_rising || n <= 2 * W + 1 ||
	    (double)t->nbeads * n * n * t->zstride > 4e9)
		return;
	if (!(t->zaccept = malloc(t->nbeads * n * sizeof *t->zaccept)))
		return;		/* only a shortcut: the whole table is scored */
	for (size_t b = 0; b < t->nbeads; b++) {
		const float *pl = t->planes + b * n * t->zstride;
		float *acc = t->zaccept + b * n;
		for (size_t j = 0; j < n; j++)
			acc[j] = -1;
		for (size_t j = 0; j < n; j++)
			for (size_t k = j + W + 1; k < n; k++) {
				float c = ms_dot(pl + j * t->zstride, pl + k * t->zstride, t->zstride);
				if (c > acc[j])
					acc[j] = c;
				if (c > acc[k])
					acc[k] = c;
			}
		for (size_t j = 0; j < n; j++) {
			double c = acc[j] > 1 ? 1 : acc[j] < -1 ? -1 : acc[j];
			acc[j] = (float)(sqrt(0.5 * (1 + c)) + 1e-5);
		}
	}
}

struct ms_tracker *ms_tracker_new(const struct ms_track_params *p, const struct ms_zlut *lut,
				  ms_err *e)
{
	if (check_params(p, e) < 0)
		return NULL;
	size_t plen = ms_profile_len(p->roi_size, p->oversample);
	if (lut && check_lut(p, plen, lut, e) < 0)
		return NULL;
	struct ms_tracker *t = calloc(1, sizeof *t);
	if (!t) {
		ms_err_set(e, "cannot allocate a tracker:");
		return NULL;
	}
	t->p = *p;
	t->w = p->roi_size;
	t->half_lines = ms_autoconv_half_lines(t->w, p->line_ratio);
	t->plen = plen;
	t->zstride = ms_z_stride(plen);
	if (!lut)
		return t;
	t->nplanes = lut->nplanes;
	t->nbeads = lut->nbeads;
	t->z_nm = malloc(t->nplanes * sizeof *t->z_nm);
	t->planes = malloc(t->nbeads * t->nplanes * t->zstride * sizeof *t->planes);
	t->gram = malloc(t->nbeads * t->nplanes * 4 * sizeof *t->gram);
	t->sw = malloc(t->zstride * sizeof *t->sw);
	t->prefix = malloc(t->nbeads * t->nplanes * ms_z_prefix_len(plen) * sizeof *t->prefix);
	if (!t->z_nm || !t->planes || !t->gram || !t->sw || !t->prefix) {
		ms_tracker_free(t);
		ms_err_set(e, "cannot allocate a %zu-bead, %zu-plane Z-LUT:", lut->nbeads,
			   lut->nplanes);
		return NULL;
	}
	memcpy(t->z_nm, lut->z_nm, t->nplanes * sizeof *t->z_nm);
	t->z_rising = 1;
	for (size_t k = 1; k < t->nplanes; k++)
		t->z_rising &= t->z_nm[k] > t->z_nm[k - 1];
	/* a flat or empty plane normalises to zeros and so scores 0: it can
	 * never win against a real match, and needs no special case later */
	ms_z_bin_weights(plen, p->z_weights, t->sw);
	for (size_t b = 0; b < t->nbeads; b++)
		for (size_t k = 0; k < t->nplanes; k++)
			ms_z_normalise_from(ms_zlut_profile(lut, b, k), plen, 1, t->sw,
					    t->planes + (b * t->nplanes + k) * t->zstride);
	for (size_t b = 0; b < t->nbeads; b++) {
		const float *pl = t->planes + b * t->nplanes * t->zstride;
		ms_z_gram(pl, t->nplanes, t->zstride, t->gram + b * t->nplanes * 4);
		ms_z_prefix(pl, t->nplanes, plen, t->sw,
			    t->prefix + b * t->nplanes * ms_z_prefix_len(plen));
	}
	set_window_test(t);
	return t;
}

void ms_tracker_free(struct ms_tracker *t)
{
	if (!t)
		return;
	free(t->z_nm);
	free(t->planes);
	free(t->gram);
	free(t->sw);
	free(t->prefix);
	free(t->zaccept);
	free(t);
}

size_t ms_tracker_plen(const struct ms_tracker *t)
{
	return t->plen;
}

const struct ms_track_params *ms_tracker_params(const struct ms_tracker *t)
{
	return &t->p;
}

size_t ms_tracker_nbeads(const struct ms_tracker *t)
{
	return t->nbeads;
}

size_t ms_tracker_nplanes(const struct ms_tracker *t)
{
	return t->nplanes;
}

/* Carve 64-byte-aligned pieces out of one block. */
static void *carve(char **cur, size_t bytes)
{
	void *p = *cur;
	*cur += (bytes + 63) & ~(size_t)63;
	return p;
}

/* The oversample of a saturated bead's fit template (fit_xy). */
static int sat_oversample(int os);

struct ms_track_ws *ms_track_ws_new(const struct ms_tracker *t, ms_err *e)
{
	size_t w2 = (size_t)t->w * t->w, f = sizeof(float);
	size_t sizes[] = {
		w2 * f, w2 * f, ms_autoconv_scratch_len(t->w) * f,
		ms_profile_scratch_len(t->w, t->p.oversample) * f, ms_pad4(t->plen) * f,
		t->zstride * f, (t->nplanes + 1) * f, MS_ROI_HIST_LEN * sizeof(uint32_t),
		ms_radial_fit_scratch_len(t->w, sat_oversample(t->p.oversample)) * f,
		ms_pad4(ms_profile_max_len(t->w, sat_oversample(t->p.oversample))) * f,
		2 * (t->nplanes + 1) * f, 4 * (t->nplanes + 1) * f,
		(size_t)t->w * sizeof(int), (size_t)t->w * sizeof(int),
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		total += (sizes[i] + 63) & ~(size_t)63;
	struct ms_track_ws *ws = calloc(1, sizeof *ws);
	void *block = aligned_alloc(64, total);
	int want_acf = t->p.xy == MS_XY_AUTOCONV_FINE || t->p.xy == MS_XY_RADIAL_FIT;
	struct ms_acfine *acf = want_acf ? ms_acfine_new(t->w) : NULL;
	if (!ws || !block || (want_acf && !acf)) {
		free(ws);
		free(block);
		ms_acfine_free(acf);
		ms_err_set(e, "cannot allocate a tracking workspace:");
		return NULL;
	}
	struct ms_qi *qi = NULL;
	if (ws && block && t->p.xy == MS_XY_QI) {
		const struct ms_track_params *p = &t->p;
		int nr = p->qi_radial ? p->qi_radial : t->w / 2;
		int na = p->qi_angular ? p->qi_angular : t->w / 2;
		double rmax = p->qi_rmax > 0 ? p->qi_rmax : t->w / 2.0 - 2;
		if (!(qi = ms_qi_new(nr, na, p->qi_rmin, rmax))) {
			free(ws);
			free(block);
			ms_acfine_free(acf);
			ms_err_set(e, "cannot allocate QI tables (%d radii from %g to %g px):", nr,
				   p->qi_rmin, rmax);
			return NULL;
		}
	}
	memset(block, 0, total);
	ws->qi = qi;
	char *cur = block;
	ws->t = t;
	ws->block = block;
	ws->acf = acf;
	ws->roi = carve(&cur, sizes[0]);
	ws->tmp = carve(&cur, sizes[1]);
	ws->ac = carve(&cur, sizes[2]);
	ws->ps = carve(&cur, sizes[3]);
	ws->prof = carve(&cur, sizes[4]);
	ws->pn = carve(&cur, sizes[5]);
	ws->scores = carve(&cur, sizes[6]);
	ws->hist = carve(&cur, sizes[7]);
	ws->rf = carve(&cur, sizes[8]);
	ws->fprof = carve(&cur, sizes[9]);
	ws->zstats = carve(&cur, sizes[10]);
	ws->zgram = carve(&cur, sizes[11]);
	ws->satlo = carve(&cur, sizes[12]);
	ws->sathi = carve(&cur, sizes[13]);
	return ws;
}

void ms_track_ws_free(struct ms_track_ws *ws)
{
	if (!ws)
		return;
	ms_acfine_free(ws->acf);
	ms_qi_free(ws->qi);
	free(ws->block);
	free(ws);
}

static void fail_profile(const struct ms_tracker *t, float *profile)
{
	if (profile)
		for (size_t b = 0; b < t->plen; b++)
			profile[b] = NAN;
}

static double find_z(const struct ms_tracker *t, struct ms_track_ws *ws, size_t bead,
		     double z_prev, size_t first, unsigned *flags);

/*
 * Where the saturated pixels (at or above level) are: per row r, the first
 * and last saturated column in ws->satlo[r], ws->sathi[r] (-1 when none).
 * One vector pass finds the rows that have any; most ROIs have none, and
 * then this is all it costs. Returns the number of such rows.
 */
static int saturated_rows(struct ms_track_ws *ws, const float *roi, int w, float level)
{
	int rows = 0, w4 = w & ~3;
	ms_v4f vl = ms_v4_set1(level);
	for (int r = 0; r < w; r++) {
		const float *row = roi + (size_t)r * w;
		ms_v4i any = {0, 0, 0, 0};
		int c = 0;
		for (; c < w4; c += 4)
			any |= (ms_v4i)(ms_v4_load(row + c) >= vl);
		int hit = (any[0] | any[1] | any[2] | any[3]) != 0;
		for (; c < w; c++)
			hit |= row[c] >= level;
		ws->satlo[r] = ws->sathi[r] = -1;
		if (!hit)
			continue;
		rows++;
		for (c = 0; row[c] < level; c++)
			;
		ws->satlo[r] = c;
		for (c = w - 1; row[c] < level; c--)
			;
		ws->sathi[r] = c;
	}
	return rows;
}

/* The radius of the saturated core about (x, y): its farthest pixel (in a
 * row, the first or the last saturated one), or -1 when there is none. */
static double saturated_radius(const struct ms_track_ws *ws, int w, int rows, double x, double y)
{
	if (rows == 0)
		return -1;
	double r2 = 0;
	for (int r = 0; r < w; r++) {
		if (ws->satlo[r] < 0)
			continue;
		double dx = fmax(fabs(ws->satlo[r] - x), fabs(ws->sathi[r] - x)), dy = r - y;
		r2 = fmax(r2, dx * dx + dy * dy);
	}
	return sqrt(r2);
}

/*
 * The radius of a saturated core seen in the profile prof (nb bins, bin
 * b at radius b / os) about the centre: where the profile last falls
 * through CORE_LEVEL of full scale, interpolated between bins. The bins
 * average hundreds of pixels, so this moves little with the noise, where
 * the farthest saturated pixel (rsat) jumps by tenths of a pixel as
 * pixels at the core's edge clip or not. rsat when the profile never
 * reaches that level (a core smaller than a bin).
 */
#define CORE_LEVEL 0.9
static double core_radius(const float *prof, int nb, int os, float sat, double rsat)
{
	float level = (float)(CORE_LEVEL * sat);
	int bk = -1;
	for (int b = 0; b + 1 < nb; b++)
		if (prof[b] >= level && prof[b + 1] < level)
			bk = b;
	if (bk < 0)
		return rsat;
	return (bk + (prof[bk] - level) / (prof[bk] - prof[bk + 1])) / os;
}

/*
 * How a saturated core is left out of the x/y fit (radii in px beyond
 * core_radius): pixels weigh nothing up to SAT_GAP beyond it and rise
 * linearly to full weight over SAT_RAMP. The pixels just outside a core
 * are the steepest and brightest unclipped ones, the most informative of
 * the bead; a ramp lets them in without a pixel's entering or leaving the
 * fit at once as the centre or the core moves with the noise, and its
 * template is the least-squares spline through the pixels themselves
 * (ms_radial_template), which follows the sharp bend beside the core
 * that bins average away. Chosen by measurement on the simulator's beads
 * (64 px, 10^4 photons, z from 0.5 to 3.5 um): nearer the core or
 * steeper, the template's errors there bias x and y by more; farther,
 * the precision falls back towards twice the bound.
 */
#define SAT_GAP 0.5
#define SAT_RAMP 1.0
/* The least-squares template reaches this far (px) beyond the ramp's
 * start; farther out, where the profile is gentle, bins serve as well
 * (measured: the same precision and accuracy) at a fraction of the cost. */
#define SAT_LSQ 4.0
/* The z match's bins begin this far (px) beyond core_radius. */
#define Z_GAP 1.0

/*
 * The saturated fit's template has a knot every half pixel (every bin
 * from an oversample of 2): the profile beside a core bends within a
 * pixel, and a spline with knots a pixel apart misses the bend by enough
 * to bias x and y by 0.0013 px RMS over sub-pixel positions (noiseless
 * beads 2 um above focus, where the bend is sharpest); half-pixel knots
 * leave 0.0008 (quarter-pixel ones, with too few pixels each, lose more
 * at other heights than they gain there).
 */
static int sat_oversample(int os)
{
	return os > 2 ? os : 2;
}

/*
 * dst[from .. to-1], bins of oversample so, from src[0 .. n-1], bins of
 * oversample os <= so, by Catmull-Rom interpolation (ends held).
 */
static void resample(const float *src, int n, int os, float *dst, int from, int to, int so)
{
	for (int b = from; b < to; b++) {
		double u = (double)b * os / so;
		int i = (int)u;
		double f = u - i;
		float p[4];
		for (int k = 0; k < 4; k++) {
			int j = i - 1 + k;
			p[k] = src[j < 0 ? 0 : j > n - 1 ? n - 1 : j];
		}
		dst[b] = (float)(p[1] + 0.5 * f * (p[2] - p[0] + f * (2 * p[0] - 5 * p[1] + 4 * p[2] -
								      p[3] + f * (3 * (p[1] - p[2]) +
										  p[3] - p[0]))));
	}
}

/*
 * RADIAL_FIT's x/y from the autoconvolution's (x, y); *rsat gets the
 * radius of the saturated core (-1: none). The profile about the centre
 * reaches the ROI's corners (their pixels inform x and y too), and z
 * reads its first plen bins, in ws->prof; on an unsaturated bead it is
 * the fit's template. A template taken about a centre a few hundredths of
 * a pixel off is blurred enough to bias the fit, and the autoconvolution
 * is that far off on a saturated bead (a clipped flat top is not band-
 * limited), so there a quick step over the inner half of the profile,
 * outside the core, comes first, bringing the centre within a few
 * thousandths; then the fit leaves the core out by SAT_GAP and SAT_RAMP,
 * with the least-squares template of sat_oversample.
 */
static int fit_xy(const struct ms_tracker *t, struct ms_track_ws *ws, const float *roi, float sat,
		  double *x, double *y, double *rsat)
{
	const struct ms_track_params *p = &t->p;
	int w = t->w, nb = (int)t->plen, os = p->oversample, nb1 = nb / 2;
	/* bins reach up to 2 bins either side: those that see the core go */
	double margin = 2.0 / os;
	int srows = saturated_rows(ws, roi, w, sat);
	*rsat = saturated_radius(ws, w, srows, *x, *y);
	/* (a core too big for the inner half skips the quick step, and a
	 * step that fails, on too thin an annulus, is simply not taken) */
	if (*rsat >= 0 && os * *rsat + 2 < nb1 - 6) {
		double qx, qy;
		ms_radial_profile_n(roi, w, *x, *y, os, MS_PROFILE_LINEAR, nb1, ws->prof, ws->ps);
		if (ms_radial_fit(roi, w, *x, *y, ws->prof, nb1, os, *rsat + margin, 1,
				  p->fit_weighted, ws->rf, &qx, &qy) == 0) {
			*x = qx;
			*y = qy;
			*rsat = saturated_radius(ws, w, srows, *x, *y);
		}
	}
	double dx = fmax(*x, w - 1 - *x), dy = fmax(*y, w - 1 - *y);
	int nbx = (int)ceil(os * sqrt(dx * dx + dy * dy)) + 3;
	int nbm = (int)ms_profile_max_len(w, os);
	nbx = nbx > nbm ? nbm : nbx < nb ? nb : nbx;
	ms_radial_profile_n(roi, w, *x, *y, os, p->weighting, nbx, ws->fprof, ws->ps);
	memcpy(ws->prof, ws->fprof, t->plen * sizeof *ws->prof);
	if (*rsat < 0)
		return ms_radial_fit(roi, w, *x, *y, ws->fprof, nbx, os, 0, p->fit_iters,
				     p->fit_weighted, ws->rf, x, y);
	double r0 = core_radius(ws->fprof, nbx, os, sat, *rsat) + SAT_GAP;
	int so = sat_oversample(os);
	int nbs = (int)ceil(so * sqrt(dx * dx + dy * dy)) + 3, nbsm = (int)ms_profile_max_len(w, so);
	nbs = nbs > nbsm ? nbsm : nbs;
	/* the template: the least-squares spline out to SAT_LSQ beyond r0
	 * (its last two bins, held by the end condition, not kept), the
	 * profile resampled beyond; the profile waits in ws->ps, which its
	 * own computation no longer needs */
	int nbl = (int)ceil(so * (r0 + SAT_LSQ)) + 3;
	nbl = nbl > nbs ? nbs : nbl;
	memcpy(ws->ps, ws->fprof, (size_t)nbx * sizeof *ws->ps);
	if (ms_radial_template(roi, w, *x, *y, so, r0, nbl, ws->fprof, ws->rf) < 0)
		return -1;
	resample(ws->ps, nbx, os, ws->fprof, nbl < nbs ? nbl - 2 : nbs, nbs, so);
	return ms_radial_fit_taper(roi, w, *x, *y, ws->fprof, nbs, so, r0, SAT_RAMP, p->fit_iters,
				   p->fit_weighted, ws->rf, x, y);
}

/* The pipeline after the ROI is in floats and its background is known;
 * pixels at or above sat are saturated. */
static void track_core(const struct ms_tracker *t, struct ms_track_ws *ws, const float *roi,
		       double bg, float sat, long bead, double z_prev, struct ms_xyz *out,
		       float *profile)
{
	const struct ms_track_params *p = &t->p;
	int w = t->w;
	unsigned zbad = t->nplanes ? MS_TRK_Z_BAD : 0;
	double x, y;
	out->x = out->y = out->z = NAN;
	out->flags = 0;
	if (ws->t != t) {	/* a workspace's buffers are sized for its own tracker */
		out->flags = MS_TRK_XY_BAD | zbad;
		fail_profile(t, profile);
		return;
	}
	if (ms_roi_flat(roi, (size_t)w * w)) {
		out->flags = MS_TRK_EMPTY | MS_TRK_XY_BAD | zbad;
		fail_profile(t, profile);
		return;
	}
	int bad = ms_com(roi, w, p->com_bg, bg, &x, &y, NULL) < 0;
	if (!bad && p->xy != MS_XY_COM)
		bad = ms_autoconv(roi, w, x, y, 0, 0, ws->ac, &x, &y) < 0;
	/* the radial fit starts from one exact-peak step (unbiased on an
	 * unsaturated bead, and close enough for its template), or, where
	 * that fails (a clipped flat top is not band-limited, and Newton can
	 * lose its peak), from the half-pixel step, which its first fit step
	 * mends; QI starts from the half-pixel step */
	if (!bad && p->xy == MS_XY_RADIAL_FIT) {
		double fx, fy;
		if (ms_autoconv_fine(roi, w, x, y, t->half_lines, ws->acf, &fx, &fy) == 0) {
			x = fx;
			y = fy;
		}
	}
	int acn = p->xy == MS_XY_RADIAL_FIT || p->xy == MS_XY_QI ? 0 : p->autoconv_iters;
	for (int i = 0; i < acn && !bad && p->xy != MS_XY_COM; i++)
		bad = (p->xy == MS_XY_AUTOCONV_FINE
		       ? ms_autoconv_fine(roi, w, x, y, t->half_lines, ws->acf, &x, &y)
		       : ms_autoconv(roi, w, x, y, t->half_lines, p->xy_n_local, ws->ac, &x, &y)) < 0;
	if (!bad && p->xy == MS_XY_QI)
		bad = ms_qi(roi, w, x, y, p->qi_iters, ws->qi, &x, &y) < 0;
	/* negative float pixels can put a plain centre of mass outside */
	bad |= !(x >= 0 && x <= w - 1 && y >= 0 && y <= w - 1);
	if (bad) {
		out->flags = MS_TRK_XY_BAD | zbad;
		fail_profile(t, profile);
		return;
	}
	double rsat = -1;
	if (p->xy == MS_XY_RADIAL_FIT)
		bad = fit_xy(t, ws, roi, sat, &x, &y, &rsat) < 0;
	else if (t->nplanes)
		rsat = saturated_radius(ws, w, saturated_rows(ws, roi, w, sat), x, y);
	if (bad) {
		out->flags = MS_TRK_XY_BAD | zbad;
		fail_profile(t, profile);
		return;
	}
	unsigned sflags = rsat >= 0 ? MS_TRK_SATURATED : 0;
	out->x = x;
	out->y = y;
	out->flags |= sflags;
	if (!profile && !t->nplanes)
		return;
	if (p->xy != MS_XY_RADIAL_FIT)
		ms_radial_profile(roi, w, x, y, p->oversample, p->weighting, ws->prof, ws->ps);
	if (profile)
		memcpy(profile, ws->prof, t->plen * sizeof *profile);
	if (!t->nplanes)
		return;
	/* a saturated core is left out of the z match as it is out of the
	 * fit: its clipped bins depend on where the centre falls in a pixel,
	 * not only on z; so are the bins within Z_GAP of it, whose weights
	 * reach into it (measured: nearer costs accuracy, farther precision;
	 * from 2 bins past the farthest clipped pixel, as before, both) */
	size_t first = 1;
	if (rsat >= 0) {
		double rk = core_radius(ws->prof, (int)t->plen, p->oversample, sat, rsat);
		first = (size_t)ceil(p->oversample * (rk + Z_GAP));
		first = first < 1 ? 1 : first;
	}
	if (bead < 0 || (size_t)bead >= t->nbeads || first + 5 > t->plen ||
	    ms_z_normalise_from(ws->prof, t->plen, first, t->sw, ws->pn) < 0) {
		out->flags |= MS_TRK_Z_BAD;
		return;
	}
	out->z = find_z(t, ws, (size_t)bead, z_prev, first, &out->flags);
}

/* The first plane whose z is not below z (z_nm rising). */
static size_t plane_at(const struct ms_tracker *t, double z)
{
	size_t lo = 0, hi = t->nplanes;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->z_nm[mid] < z)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Score planes lo .. hi-1 of a bead against ws->pn (no saturated core). */
static void score_planes(const struct ms_tracker *t, struct ms_track_ws *ws, const float *planes,
			 size_t lo, size_t hi)
{
	if (lo < hi)
		ms_z_scores(ws->pn, planes + lo * t->zstride, hi - lo, t->zstride, t->p.z,
			    ws->scores + lo);
	ws->zscored += hi - lo;
}

/*
 * The search near the previous z: score the planes within z_search of
 * the plane at z_prev, and keep widening the scored range until it holds
 * the best plane's own z_search neighbours (and the fit's). If the
 * profile is then close enough to that plane (zaccept), no plane outside
 * the range can beat it, so it is the best of the whole table, found for
 * a fraction of the cost. Returns it, or n when the whole table has to be
 * scored (the bead moved far, or the match is too poor to tell); *lo and
 * *hi get the range scored.
 */
static size_t window_search(const struct ms_tracker *t, struct ms_track_ws *ws, size_t bead,
			    const float *planes, double z_prev, size_t *lo, size_t *hi)
{
	const struct ms_track_params *p = &t->p;
	size_t n = t->nplanes, W = (size_t)p->z_search;
	size_t fit = p->z_fit == MS_ZFIT_CUBIC ? 2 : (size_t)p->z_n_local / 2;
	size_t reach = W > fit ? W : fit, c = plane_at(t, z_prev);
	if (c >= n)
		c = n - 1;
	size_t a = c > W ? c - W : 0, b = c + W + 1 < n ? c + W + 1 : n, best;
	score_planes(t, ws, planes, a, b);
	for (;;) {
		best = ms_z_argmax(ws->scores, a, b);
		size_t na = best > reach ? best - reach : 0;
		size_t nb = best + reach + 1 < n ? best + reach + 1 : n;
		if (na >= a && nb <= b)
			break;
		if (na < a) {
			score_planes(t, ws, planes, na, a);
			a = na;
		}
		if (nb > b) {
			score_planes(t, ws, planes, b, nb);
			b = nb;
		}
	}
	*lo = a;
	*hi = b;
	/* the cosine of the profile and the plane; SSD of unit vectors is 2r - 2 */
	double r = p->z == MS_Z_SSD ? 0.5 * ws->scores[best] + 1 : ws->scores[best];
	return r > t->zaccept[bead * n + best] ? best : n;
}

/*
 * z of the normalised profile in ws->pn, from bins first.. (a saturated
 * core below them). The search starts at the previous z (window_search)
 * and falls back to scoring every plane, which costs about a microsecond
 * for 121. It cannot settle on a spurious local match when the bead has
 * moved beyond the window (as it does between batches of a fast focus
 * sweep): the window's answer is taken only when no plane outside it can
 * be better. The previous z also decides between near-equal matches: the
 * best plane within z_search of it is taken when it is interior to that
 * window and no worse than the best overall by more than half the best's
 * own distance from a perfect match (the size of a score's noise), so
 * that a bead whose profile resembles two distant planes does not jump
 * between them, and a clearly better match anywhere always wins.
 */
static double find_z(const struct ms_tracker *t, struct ms_track_ws *ws, size_t bead,
		     double z_prev, size_t first, unsigned *flags)
{
	const struct ms_track_params *p = &t->p;
	size_t n = t->nplanes, best = n;
	const float *planes = t->planes + bead * n * t->zstride;
	const float *gram = t->gram + bead * n * 4;
	int local = p->z_search > 0 && t->z_rising && isfinite(z_prev);
	ws->zscored = 0;
	if (first > 1) {
		/* every plane, re-normalised over the bins outside the core */
		ms_z_scores_from(ws->pn, planes, n, t->plen, first, t->sw,
				 t->prefix + bead * n * ms_z_prefix_len(t->plen), p->z, ws->scores,
				 ws->zstats);
		ws->zscored = n;
	} else {
		size_t lo = 0, hi = 0;
		if (local && t->zaccept)
			best = window_search(t, ws, bead, planes, z_prev, &lo, &hi);
		if (best == n) {
			score_planes(t, ws, planes, 0, lo);
			score_planes(t, ws, planes, hi, n);
		}
	}
	if (best == n)
		best = ms_z_argmax(ws->scores, 0, n);
	if (local) {
		/* every score in this window is known: it lies inside the
		 * window_search's first range */
		size_t c = plane_at(t, z_prev), W = (size_t)p->z_search;
		size_t margin = p->z_fit == MS_ZFIT_CUBIC ? 2 : (size_t)p->z_n_local / 2;
		size_t lo = c > W ? c - W : 0, hi = c + W + 1 < n ? c + W + 1 : n;
		if (lo < hi) {
			size_t loc = ms_z_argmax(ws->scores, lo, hi);
			/* scores in Pearson's units: SSD on unit vectors is 2r - 2 */
			double k = p->z == MS_Z_SSD ? 0.5 : 1;
			double sb = ws->scores[best] * k + (p->z == MS_Z_SSD ? 1 : 0);
			double sl = ws->scores[loc] * k + (p->z == MS_Z_SSD ? 1 : 0);
			int interior = (loc >= lo + margin || lo == 0) && (loc + margin < hi || hi == n);
			if (loc != best && interior && sb - sl <= 0.5 * (1 - sb))
				best = loc;
		}
	}
	if (first > 1 && p->z_fit == MS_ZFIT_CUBIC) {
		size_t glo = best > 2 ? best - 2 : 0;
		ms_z_gram_from(planes, n, t->plen, first, t->sw, ws->zstats, glo, best + 3,
			       ws->zgram);
		gram = ws->zgram;
	}
	if (p->z_fit == MS_ZFIT_CUBIC)
		return ms_z_fit_cubic(ws->scores, gram, n, best, p->z, t->z_nm, flags, NULL);
	return ms_z_fit_parabola(ws->scores, n, best, p->z_n_local, t->z_nm, flags, NULL);
}

size_t ms_track_ws_zscored(const struct ms_track_ws *ws)
{
	return ws->zscored;
}

void ms_track_roi(const struct ms_tracker *t, struct ms_track_ws *ws, const struct ms_roi_in *in,
		  struct ms_xyz *out, float *profile)
{
	int w = t->w;
	double bg = 0;
	int want_median = t->p.com_bg == MS_COM_BG_MEDIAN;
	if (ws->t != t || ms_roi_load(in->frame, in->fmt, in->stride, in->x0, in->y0, w, ws->roi,
				      want_median ? &bg : NULL, ws->hist) < 0) {
		out->x = out->y = out->z = NAN;
		out->flags = MS_TRK_XY_BAD | (t->nplanes ? MS_TRK_Z_BAD : 0);
		fail_profile(t, profile);
		return;
	}
	if (t->p.com_bg == MS_COM_BG_MEAN)
		bg = ms_mean_f32(ws->roi, (size_t)w * w);
	track_core(t, ws, ws->roi, bg, (float)ms_pixfmt_max(in->fmt), in->lut_bead, in->z_prev, out,
		   profile);
}

void ms_track_prefetch(const struct ms_tracker *t, const struct ms_roi_in *in)
{
	size_t bpp = in->fmt == MS_PIX_U16 ? 2 : 1, rowb = (size_t)t->w * bpp;
	const char *base = (const char *)in->frame + ((size_t)in->y0 * in->stride + in->x0) * bpp;
	for (int r = 0; r < t->w; r++) {
		const char *row = base + (size_t)r * in->stride * bpp;
		for (size_t o = 0; o < rowb; o += 64)
			__builtin_prefetch(row + o);
		__builtin_prefetch(row + rowb - 1);
	}
}

void ms_track_roi_f32(const struct ms_tracker *t, struct ms_track_ws *ws, const float *roi,
		      long lut_bead, double z_prev, struct ms_xyz *out, float *profile)
{
	size_t n = (size_t)t->w * t->w;
	double bg = 0;
	if (t->p.com_bg == MS_COM_BG_MEDIAN)
		bg = ms_median_f32(roi, n, ws->tmp);
	else if (t->p.com_bg == MS_COM_BG_MEAN)
		bg = ms_mean_f32(roi, n);
	track_core(t, ws, roi, bg, INFINITY, lut_bead, z_prev, out, profile);
}
