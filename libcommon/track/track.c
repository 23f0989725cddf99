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
const char *const ms_xy_names[] = {"com", "autoconv", "autoconv-fine", NULL};
const char *const ms_weighting_names[] = {"nearest", "linear", "cubic", NULL};
const char *const ms_z_names[] = {"pearson", "ssd", NULL};

struct ms_tracker {
	struct ms_track_params p;
	int w, half_lines;
	size_t plen, zstride, nplanes, nbeads;
	double *z_nm;		/* [nplanes] */
	float *planes;		/* [nbeads][nplanes][zstride], normalised */
};

struct ms_track_ws {
	const struct ms_tracker *t;
	float *roi;		/* w*w */
	float *tmp;		/* w*w: the float median's copy */
	float *ac;		/* autoconvolution scratch */
	float *ps;		/* radial profile scratch */
	float *prof;		/* plen */
	float *pn;		/* zstride: the normalised profile */
	float *scores;		/* nplanes */
	uint32_t *hist;		/* MS_ROI_HIST_LEN */
	struct ms_acfine *acf;	/* AUTOCONV_FINE's FFT plans, else NULL */
	void *block;
};

void ms_track_params_default(struct ms_track_params *p)
{
	p->roi_size = 64;
	p->com_bg = MS_COM_BG_MEDIAN;
	p->xy = MS_XY_AUTOCONV;
	p->autoconv_iters = 5;
	p->line_ratio = 0.1;
	p->xy_n_local = 5;
	p->oversample = 1;
	p->weighting = MS_PROFILE_CUBIC;
	p->z = MS_Z_PEARSON;
	p->z_n_local = 7;
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
	if ((unsigned)p->xy > MS_XY_AUTOCONV_FINE)
		return ms_err_set(e, "unknown x/y method %d", (int)p->xy);
	if (p->autoconv_iters < 0 || p->autoconv_iters > 100)
		return ms_err_set(e, "autoconvolution iterations %d not in 0..100", p->autoconv_iters);
	if (!(p->line_ratio >= 0 && p->line_ratio <= 1))
		return ms_err_set(e, "line ratio %g not in 0..1", p->line_ratio);
	if (p->xy_n_local < 3 || p->xy_n_local % 2 == 0 || p->xy_n_local > p->roi_size - 2)
		return ms_err_set(e, "x/y fit points %d: need an odd number from 3 to %d",
				  p->xy_n_local, p->roi_size - 3);
	if (p->oversample < 1 || p->oversample > 16)
		return ms_err_set(e, "profile oversample %d not in 1..16", p->oversample);
	if ((unsigned)p->weighting > MS_PROFILE_CUBIC)
		return ms_err_set(e, "unknown profile weighting %d", (int)p->weighting);
	if ((unsigned)p->z > MS_Z_SSD)
		return ms_err_set(e, "unknown z method %d", (int)p->z);
	if (p->z_n_local < 3 || p->z_n_local % 2 == 0)
		return ms_err_set(e, "z fit points %d: need an odd number >= 3", p->z_n_local);
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
	if (lut->nplanes < (size_t)p->z_n_local + 2)
		return ms_err_set(e, "Z-LUT has %zu planes; a %d-point z fit needs at least %d",
				  lut->nplanes, p->z_n_local, p->z_n_local + 2);
	for (size_t k = 0; k < lut->nplanes; k++)
		if (!isfinite(lut->z_nm[k]))
			return ms_err_set(e, "Z-LUT plane %zu has no finite z", k);
	return 0;
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
	if (!t->z_nm || !t->planes) {
		ms_tracker_free(t);
		ms_err_set(e, "cannot allocate a %zu-bead, %zu-plane Z-LUT:", lut->nbeads,
			   lut->nplanes);
		return NULL;
	}
	memcpy(t->z_nm, lut->z_nm, t->nplanes * sizeof *t->z_nm);
	/* a flat or empty plane normalises to zeros and so scores 0: it can
	 * never win against a real match, and needs no special case later */
	for (size_t b = 0; b < t->nbeads; b++)
		for (size_t k = 0; k < t->nplanes; k++)
			ms_z_normalise(ms_zlut_profile(lut, b, k), plen,
				       t->planes + (b * t->nplanes + k) * t->zstride);
	return t;
}

void ms_tracker_free(struct ms_tracker *t)
{
	if (!t)
		return;
	free(t->z_nm);
	free(t->planes);
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

struct ms_track_ws *ms_track_ws_new(const struct ms_tracker *t, ms_err *e)
{
	size_t w2 = (size_t)t->w * t->w, f = sizeof(float);
	size_t sizes[] = {
		w2 * f, w2 * f, ms_autoconv_scratch_len(t->w) * f,
		ms_profile_scratch_len(t->w, t->p.oversample) * f, ms_pad4(t->plen) * f,
		t->zstride * f, (t->nplanes + 1) * f, MS_ROI_HIST_LEN * sizeof(uint32_t),
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		total += (sizes[i] + 63) & ~(size_t)63;
	struct ms_track_ws *ws = calloc(1, sizeof *ws);
	void *block = aligned_alloc(64, total);
	struct ms_acfine *acf = t->p.xy == MS_XY_AUTOCONV_FINE ? ms_acfine_new(t->w) : NULL;
	if (!ws || !block || (t->p.xy == MS_XY_AUTOCONV_FINE && !acf)) {
		free(ws);
		free(block);
		ms_acfine_free(acf);
		ms_err_set(e, "cannot allocate a tracking workspace:");
		return NULL;
	}
	memset(block, 0, total);
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
	return ws;
}

void ms_track_ws_free(struct ms_track_ws *ws)
{
	if (!ws)
		return;
	ms_acfine_free(ws->acf);
	free(ws->block);
	free(ws);
}

static void fail_profile(const struct ms_tracker *t, float *profile)
{
	if (profile)
		for (size_t b = 0; b < t->plen; b++)
			profile[b] = NAN;
}

/* The pipeline after the ROI is in floats and its background is known. */
static void track_core(const struct ms_tracker *t, struct ms_track_ws *ws, const float *roi,
		       double bg, long bead, struct ms_xyz *out, float *profile)
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
	for (int i = 0; i < p->autoconv_iters && !bad && p->xy != MS_XY_COM; i++)
		bad = (p->xy == MS_XY_AUTOCONV_FINE
		       ? ms_autoconv_fine(roi, w, x, y, t->half_lines, ws->acf, &x, &y)
		       : ms_autoconv(roi, w, x, y, t->half_lines, p->xy_n_local, ws->ac, &x, &y)) < 0;
	/* negative float pixels can put a plain centre of mass outside */
	bad |= !(x >= 0 && x <= w - 1 && y >= 0 && y <= w - 1);
	if (bad) {
		out->flags = MS_TRK_XY_BAD | zbad;
		fail_profile(t, profile);
		return;
	}
	out->x = x;
	out->y = y;
	if (!profile && !t->nplanes)
		return;
	ms_radial_profile(roi, w, x, y, p->oversample, p->weighting, ws->prof, ws->ps);
	if (profile)
		memcpy(profile, ws->prof, t->plen * sizeof *profile);
	if (!t->nplanes)
		return;
	if (bead < 0 || (size_t)bead >= t->nbeads || ms_z_normalise(ws->prof, t->plen, ws->pn) < 0) {
		out->flags |= MS_TRK_Z_BAD;
		return;
	}
	const float *planes = t->planes + (size_t)bead * t->nplanes * t->zstride;
	ms_z_scores(ws->pn, planes, t->nplanes, t->zstride, p->z, ws->scores);
	out->z = ms_z_fit(ws->scores, t->nplanes, p->z_n_local, t->z_nm, &out->flags, NULL);
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
	track_core(t, ws, ws->roi, bg, in->lut_bead, out, profile);
}

void ms_track_roi_f32(const struct ms_tracker *t, struct ms_track_ws *ws, const float *roi,
		      long lut_bead, double z_prev, struct ms_xyz *out, float *profile)
{
	size_t n = (size_t)t->w * t->w;
	double bg = 0;
	(void)z_prev;
	if (t->p.com_bg == MS_COM_BG_MEDIAN)
		bg = ms_median_f32(roi, n, ws->tmp);
	else if (t->p.com_bg == MS_COM_BG_MEAN)
		bg = ms_mean_f32(roi, n);
	track_core(t, ws, roi, bg, lut_bead, out, profile);
}
