/*
 * t-track: the tracking kernels and pipeline against analytic ring beads
 * rendered at exact sub-pixel centres (libcommon/track/synth): medians and
 * centre of mass, the weighted parabola, the radial profile against a
 * brute-force reference, x/y accuracy over +-2 px offsets at 64 and 128
 * px from u8 and u16 frames with and without Poisson noise, z lookup on
 * synthetic LUTs, the LUT checks, and robustness on NaN, flat and
 * edge-of-ROI input. Tolerances sit at about 1.5x the RMS values measured
 * when the test was written (printed as diagnostics).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/tap.h"
#include "pool.h"
#include "beadsim.h"
#include "track/synth.h"
#include "track/track.h"

static void *xcalloc(size_t n, size_t s)
{
	void *p = calloc(n, s);
	if (!p)
		abort();
	return p;
}

/* ---- a Z-LUT built the way ms-zlut would: clean beads at the ROI centre ---- */

static void lut_make(struct ms_zlut *lut, int w, int os, enum ms_weighting wt, int nplanes,
		     double z0, double dz, int nbeads, double bead_dz)
{
	size_t plen = ms_profile_len(w, os);
	memset(lut, 0, sizeof *lut);
	lut->nplanes = (size_t)nplanes;
	lut->plen = plen;
	lut->nbeads = (size_t)nbeads;
	lut->z_nm = xcalloc((size_t)nplanes, sizeof *lut->z_nm);
	lut->profiles = xcalloc((size_t)nbeads * nplanes * plen, sizeof(float));
	lut->roi_size = w;
	lut->oversample = os;
	strcpy(lut->weighting, ms_weighting_names[wt]);
	float *img = xcalloc((size_t)w * w, sizeof *img);
	float *ps = xcalloc(ms_profile_scratch_len(w, os), sizeof(float));
	for (int k = 0; k < nplanes; k++)
		lut->z_nm[k] = z0 + dz * k;
	for (int b = 0; b < nbeads; b++)
		for (int k = 0; k < nplanes; k++) {
			/* bead b's table is the common one shifted by b * bead_dz */
			ms_synth_bead(img, w, w, w, w / 2, w / 2, lut->z_nm[k] + b * bead_dz, 3);
			ms_radial_profile(img, w, w / 2, w / 2, os, wt,
					  lut->profiles + ((size_t)b * nplanes + k) * plen, ps);
		}
	free(ps);
	free(img);
}

static void lut_free(struct ms_zlut *lut)
{
	free(lut->z_nm);
	free(lut->profiles);
}

/* The default tracker (64 px) on a clean 121-plane table from -6 um in
 * 100 nm steps: lut gets the table (lut_free it after the tracker), p the
 * parameters. */
static struct ms_tracker *default_tracker(struct ms_zlut *lut, struct ms_track_params *p)
{
	lut_make(lut, 64, 1, MS_PROFILE_LINEAR, 121, -6000, 100, 1, 0);
	ms_track_params_default(p);
	ms_err e;
	struct ms_tracker *t = ms_tracker_new(p, lut, &e);
	if (!t)
		tap_diag("default tracker: %s", e.msg);
	return t;
}

/* ---- medians, mean, COM ---- */

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static double sorted_median(uint16_t *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_u16);
	return 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
}

/* The histogram medians of ROIs cut from a wider frame at an offset. */
static void test_medians(void)
{
	struct ms_rng g;
	ms_rng_seed(&g, 11);
	uint32_t hist[MS_ROI_HIST_LEN];
	int bad8 = 0, bad16 = 0, badf = 0, cases = 0;
	/* value spreads: narrow (one-pass exact), wide (coarse + fine pass),
	 * bimodal extremes (the median straddles empty coarse bins) */
	for (int kind = 0; kind < 4; kind++)
		for (int w = 8; w <= 130; w += 26) {
			int fw = w + 13, fh = w + 5, x0 = 7, y0 = 3;
			uint16_t *f16 = xcalloc((size_t)fw * fh, 2), *v = xcalloc((size_t)w * w, 2);
			uint8_t *f8 = xcalloc((size_t)fw * fh, 1);
			for (int i = 0; i < fw * fh; i++) {
				double u = ms_rng_uniform(&g);
				unsigned x = kind == 0 ? 20000 + (unsigned)(300 * u) :
					     kind == 1 ? (unsigned)(65535 * u) :
					     kind == 2 ? (u < 0.5 ? (unsigned)(50 * u) : 65000 + (unsigned)(500 * u)) :
					     1000 + (unsigned)(ms_rng_normal(&g) * 40 + 3000 * u * u);
				f16[i] = (uint16_t)(x > 65535 ? 65535 : x);
				f8[i] = (uint8_t)(f16[i] >> 8);
			}
			float *dst = xcalloc((size_t)w * w, sizeof *dst), *tmp = xcalloc((size_t)w * w, 4);
			double m16, m8, want;
			ms_roi_load(f16, MS_PIX_U16, fw, x0, y0, w, dst, &m16, hist);
			for (int r = 0; r < w; r++)
				for (int c = 0; c < w; c++)
					v[r * w + c] = f16[(r + y0) * fw + c + x0];
			int copy_ok = 1;
			for (int i = 0; i < w * w; i++)
				copy_ok &= dst[i] == v[i];
			want = sorted_median(v, (size_t)w * w);
			bad16 += m16 != want || !copy_ok;
			badf += ms_median_f32(dst, (size_t)w * w, tmp) != want;
			ms_roi_load(f8, MS_PIX_U8, fw, x0, y0, w, dst, &m8, hist);
			for (int r = 0; r < w; r++)
				for (int c = 0; c < w; c++)
					v[r * w + c] = f8[(r + y0) * fw + c + x0];
			copy_ok = 1;
			for (int i = 0; i < w * w; i++)
				copy_ok &= dst[i] == v[i];
			bad8 += m8 != sorted_median(v, (size_t)w * w) || !copy_ok;
			cases++;
			free(tmp);
			free(dst);
			free(f8);
			free(v);
			free(f16);
		}
	tap_int(bad16, 0, "u16 ROI copy and histogram median equal a sort's, %d cases", cases);
	tap_int(bad8, 0, "u8 ROI copy and histogram median equal a sort's, %d cases", cases);
	tap_int(badf, 0, "float quickselect median equals a sort's, %d cases", cases);

	float odd[5] = {5, 1, 4, 2, 3}, nanv[4] = {1, NAN, 2, 3}, tmp[5];
	tap_near(ms_median_f32(odd, 5, tmp), 3, 0, "median of an odd count is the middle value");
	tap_ok(isnan(ms_median_f32(nanv, 4, tmp)), "median with a NaN is NaN (as numpy's)");
	tap_near(ms_mean_f32(odd, 5), 3, 1e-12, "mean");
	static const uint8_t frame[64];
	float roi[64];
	tap_ok(ms_roi_load(frame, MS_PIX_NONE, 8, 0, 0, 8, roi, NULL, hist) < 0,
	       "ms_roi_load refuses an unknown pixel format");
}

static void test_com(void)
{
	float img[16 * 16] = {0};
	double x, y, m;
	img[5 * 16 + 9] = 7;
	tap_ok(ms_com(img, 16, MS_COM_BG_NONE, 0, &x, &y, &m) == 0 && x == 9 && y == 5 && m == 7,
	       "COM of one lit pixel is its centre (x = column 9, y = row 5)");
	img[5 * 16 + 9] = 0;
	img[3 * 16 + 2] = 1;
	img[3 * 16 + 6] = 3;
	ms_com(img, 16, MS_COM_BG_NONE, 0, &x, &y, NULL);
	tap_ok(x == 5 && y == 3, "COM weights by value: (2*1 + 6*3)/4 = 5");
	ms_com(img, 16, MS_COM_BG_MEDIAN, 0, &x, &y, NULL);
	tap_ok(x == 5 && y == 3, "COM with a zero background is the same");

	/* |I - bg| weights against a double-precision brute force */
	struct ms_rng g;
	ms_rng_seed(&g, 5);
	float r[40 * 40];
	for (int i = 0; i < 40 * 40; i++)
		r[i] = (float)(1000 * ms_rng_uniform(&g));
	double bg = ms_mean_f32(r, 40 * 40), sx = 0, sy = 0, sm = 0;
	for (int i = 0; i < 40 * 40; i++) {
		double v = fabs(r[i] - (float)bg);
		sm += v;
		sx += v * (i % 40);
		sy += v * (i / 40);
	}
	ms_com(r, 40, MS_COM_BG_MEAN, bg, &x, &y, NULL);
	tap_ok(fabs(x - sx / sm) < 1e-4 && fabs(y - sy / sm) < 1e-4,
	       "COM with |I - mean| matches a brute force (%.6f,%.6f) vs (%.6f,%.6f)", x, y,
	       sx / sm, sy / sm);

	float flat[8 * 8];
	for (int i = 0; i < 64; i++)
		flat[i] = 3;
	tap_ok(ms_com(flat, 8, MS_COM_BG_MEDIAN, 3, &x, &y, NULL) < 0 && isnan(x) && isnan(y),
	       "COM of a flat ROI less its median fails with NaN");
	tap_ok(ms_roi_flat(flat, 64) && !ms_roi_flat(r, 64), "flat ROIs are recognised");
}

/* polyfit(t, y, 2, w) with t = 0..n-1 by normal equations, for reference */
static double ref_vertex(const float *d, int i0, int nl)
{
	int h = nl / 2;
	double A[3][4] = {{0}};
	for (int t = 0; t < nl; t++) {
		double w = h - abs(t - h) + 1, ww = w * w, b[3] = {(double)t * t, t, 1};
		for (int i = 0; i < 3; i++) {
			for (int j = 0; j < 3; j++)
				A[i][j] += ww * b[i] * b[j];
			A[i][3] += ww * b[i] * d[i0 - h + t];
		}
	}
	for (int i = 0; i < 3; i++)	/* Gauss-Jordan */
		for (int k = 0; k < 3; k++)
			if (k != i) {
				double f = A[k][i] / A[i][i];
				for (int j = 0; j < 4; j++)
					A[k][j] -= f * A[i][j];
			}
	double a = A[0][3] / A[0][0], b = A[1][3] / A[1][1];
	return -b / (2 * a) + i0 - h;
}

static void test_parabola(void)
{
	float d[16];
	for (int i = 0; i < 16; i++)
		d[i] = (float)(5 - 0.7 * (i - 7.3) * (i - 7.3));
	tap_near(ms_parabolic_vertex(d, 16, 7, 5), 7.3, 1e-5, "5-point vertex of a parabola");
	tap_near(ms_parabolic_vertex(d, 16, 7.4, 7), 7.3, 1e-5, "7-point vertex of a parabola");
	for (int i = 0; i < 16; i++)
		d[i] = (float)exp(-(i - 6.8) * (i - 6.8) / 6.0) + 0.01f * (i % 3);
	double worst = 0;
	for (int nl = 3; nl <= 9; nl += 2) {
		double got = ms_parabolic_vertex(d, 16, 7, nl), want = ref_vertex(d, 7, nl);
		worst = fmax(worst, fabs(got - want));
	}
	tap_ok(worst < 1e-9, "weights are polyfit's w = h-|t|+1 (effective w^2): max diff %.2g",
	       worst);
	tap_ok(isnan(ms_parabolic_vertex(d, 16, 2, 5)), "window at the low clamp limit: NaN");
	tap_ok(isnan(ms_parabolic_vertex(d, 16, 0, 5)), "window clamped from below: NaN");
	tap_ok(isnan(ms_parabolic_vertex(d, 16, 13, 5)), "window at the high clamp limit: NaN");
	tap_ok(isnan(ms_parabolic_vertex(d, 16, NAN, 5)), "NaN estimate: NaN");
	for (int i = 0; i < 16; i++)
		d[i] = (float)(5 - 0.7 * (i - 3.2) * (i - 3.2));
	tap_near(ms_parabolic_vertex(d, 16, 3, 5), 3.2, 1e-5, "window one in from the limit: "
		 "a value");
	for (int i = 0; i < 16; i++)
		d[i] = (float)((i - 7.3) * (i - 7.3));
	tap_ok(isnan(ms_parabolic_vertex(d, 16, 7, 5)), "a minimum is not a peak: NaN");
}

/* ---- radial profile against a brute force ---- */

static void ref_profile(const float *img, int w, double x, double y, int os,
			enum ms_weighting wt, double *prof)
{
	int nb = (w / 2) * os;
	double s[600] = {0}, n[600] = {0};
	if (wt == MS_PROFILE_BILINEAR) {
		/* circles of radius b / os, direct cos and sin, doubles */
		for (int b = 0; b < nb; b++) {
			double r = (double)b / os;
			int na = b == 0 ? 1 : (int)ceil(2 * M_PI * r);
			na = b > 0 && na < 8 ? 8 : na;
			for (int j = 0; j < na; j++) {
				double a = 2 * M_PI * (j + 0.5) / na;
				float px = (float)(x + r * cos(a)), py = (float)(y + r * sin(a));
				if (!(px >= 0 && px <= w - 1 && py >= 0 && py <= w - 1))
					continue;
				int ix = (int)px < w - 2 ? (int)px : w - 2;
				int iy = (int)py < w - 2 ? (int)py : w - 2;
				double tx = px - ix, ty = py - iy;
				const float *q = img + iy * w + ix;
				s[b] += (1 - ty) * ((1 - tx) * q[0] + tx * q[1]) +
					ty * ((1 - tx) * q[w] + tx * q[w + 1]);
				n[b] += 1;
			}
		}
		for (int b = 0; b < nb; b++)
			prof[b] = n[b] > 0 ? s[b] / n[b] : NAN;
		return;
	}
	if (wt == MS_PROFILE_AREA) {
		/* 4 x 4 sub-pixels, each by its own nearest bin (float radii,
		 * as the kernel's, so that ties round the same way) */
		for (int r = 0; r < w; r++)
			for (int c = 0; c < w; c++)
				for (int i = 0; i < 4; i++)
					for (int j = 0; j < 4; j++) {
						float dy = (float)(r - y) + (i + 0.5f) / 4 - 0.5f;
						float dx = (float)(c - x) + (j + 0.5f) / 4 - 0.5f;
						int k = (int)nearbyintf(os * sqrtf(dx * dx + dy * dy));
						if (k < nb) {
							s[k] += img[r * w + c];
							n[k] += 1;
						}
					}
		for (int b = 0; b < nb; b++)
			prof[b] = n[b] > 0 ? s[b] / n[b] : NAN;
		return;
	}
	for (int r = 0; r < w; r++)
		for (int c = 0; c < w; c++) {
			double sv = os * hypot(c - x, r - y);
			if (wt == MS_PROFILE_NEAREST) {
				double k = nearbyint(sv);
				if (k < nb) {
					s[(int)k] += img[r * w + c];
					n[(int)k] += 1;
				}
			} else if (wt == MS_PROFILE_CUBIC) {
				for (int k = (int)floor(sv) - 1; k <= (int)floor(sv) + 2; k++) {
					double d = fabs(sv - k), b3 = d < 1 ? 2.0 / 3 - d * d + d * d * d / 2
						: d < 2 ? (2 - d) * (2 - d) * (2 - d) / 6 : 0;
					if (k >= 0 && k < nb) {
						s[k] += b3 * img[r * w + c];
						n[k] += b3;
					}
				}
			} else {
				int k = (int)floor(sv);
				double f = sv - k;
				if (k < nb) {
					s[k] += (1 - f) * img[r * w + c];
					n[k] += 1 - f;
				}
				if (k + 1 < nb) {
					s[k + 1] += f * img[r * w + c];
					n[k + 1] += f;
				}
			}
		}
	for (int b = 0; b < nb; b++)
		prof[b] = n[b] > 0 ? s[b] / n[b] : NAN;
}

/* Whether some pixel's oversampled radius lies within eps of a rounding
 * boundary k + 0.5, where float and double may bin it differently. */
static int near_tie(int w, double x, double y, int os)
{
	for (int r = 0; r < w; r++)
		for (int c = 0; c < w; c++) {
			double sv = os * hypot(c - x, r - y);
			if (fabs(sv - floor(sv) - 0.5) < 1e-4)
				return 1;
		}
	return 0;
}

static void test_profile(void)
{
	struct ms_rng g;
	ms_rng_seed(&g, 3);
	int cases = 0, bad = 0, nan_ok = 1;
	double worst = 0;
	for (int w = 16; w <= 96; w += 40)
		for (int os = 1; os <= 3; os++)
			for (int wt = 0; wt < 5; wt++)
				for (int rep = 0; rep < 4; rep++) {
					float *img = xcalloc((size_t)w * w, 4);
					float *ps = xcalloc(ms_profile_scratch_len(w, os), 4);
					int nb = (w / 2) * os;
					float *prof = xcalloc((size_t)nb, 4);
					double ref[600], x, y;
					do {	/* centres anywhere, edges and corners included */
						x = rep == 3 ? 1.3 : w * ms_rng_uniform(&g) - 0.5;
						y = rep == 3 ? w - 2.2 : w * ms_rng_uniform(&g) - 0.5;
					} while (wt == 0 && near_tie(w, x, y, os) && rep != 3);
					for (int i = 0; i < w * w; i++)
						img[i] = (float)(100 + 900 * ms_rng_uniform(&g));
					ms_radial_profile(img, w, x, y, os, wt, prof, ps);
					ref_profile(img, w, x, y, os, wt, ref);
					for (int b = 0; b < nb; b++) {
						if (isnan(ref[b]) || isnan(prof[b])) {
							nan_ok &= isnan(ref[b]) && isnan(prof[b]);
							continue;
						}
						double d = fabs(prof[b] - ref[b]) / ref[b];
						worst = fmax(worst, d);
						bad += d > 2e-5;
					}
					cases++;
					free(prof);
					free(ps);
					free(img);
				}
	tap_int(bad, 0, "radial profile equals a brute force (nearest, linear, cubic, bilinear, "
		"area, oversample 1-3, %d centres incl. edges; worst relative diff %.2g)", cases,
		worst);
	tap_ok(nan_ok, "empty bins are NaN exactly where the brute force has none");

	float img[64], prof[8], *ps = xcalloc(ms_profile_scratch_len(8, 2), 4);
	for (int i = 0; i < 64; i++)
		img[i] = 1;
	ms_radial_profile(img, 8, 3.5, 3.5, 2, MS_PROFILE_NEAREST, prof, ps);
	tap_ok(isnan(prof[0]) && prof[1] == 1, "nearest: no pixel within 0.25 px of a "
	       "between-pixel centre, so oversampled bin 0 is empty");
	tap_ok(ms_radial_profile(img, 8, NAN, 3, 1, MS_PROFILE_LINEAR, prof, ps) < 0 &&
	       isnan(prof[0]) && isnan(prof[3]), "a NaN centre gives an all-NaN profile");
	free(ps);
}

/* ---- x/y accuracy ---- */

/* A frame (fw x fh) with one bead rendered into the ROI at (x0, y0). */
struct scene {
	int w, fw, fh, x0, y0;
	enum ms_pixfmt fmt;
	void *frame;
	float *img;		/* fw x fh floats */
};

static void scene_init(struct scene *s, int w, enum ms_pixfmt fmt)
{
	s->w = w;
	s->fw = w + 37;
	s->fh = w + 11;
	s->x0 = 29;
	s->y0 = 6;
	s->fmt = fmt;
	s->frame = xcalloc((size_t)s->fw * s->fh, 2);
	s->img = xcalloc((size_t)s->fw * s->fh, sizeof(float));
}

static void scene_free(struct scene *s)
{
	free(s->frame);
	free(s->img);
}

/* Bead at ROI coordinates (cx, cy); scale: counts per unit intensity;
 * g: Poisson noise or NULL. */
static void scene_bead(struct scene *s, double cx, double cy, double z, double scale,
		       struct ms_rng *g)
{
	ms_synth_bead(s->img, s->fw, s->fh, s->fw, s->x0 + cx, s->y0 + cy, z, 3);
	ms_synth_quantise(s->img, s->fw, s->fh, s->fw, scale, g, s->fmt, s->frame, s->fw);
}

static struct ms_roi_in scene_in(const struct scene *s, long bead)
{
	struct ms_roi_in in = {
		.frame = s->frame, .fmt = s->fmt, .stride = (size_t)s->fw,
		.x0 = s->x0, .y0 = s->y0, .lut_bead = bead, .z_prev = NAN,
	};
	return in;
}

struct acc {
	double se, max;
	int n, bad;
};

static void acc_add(struct acc *a, double err)
{
	if (!isfinite(err)) {
		a->bad++;
		return;
	}
	a->se += err * err;
	a->max = fmax(a->max, fabs(err));
	a->n++;
}

static double acc_rms(const struct acc *a)
{
	return a->n ? sqrt(a->se / a->n) : INFINITY;
}

/*
 * Track n beads at offsets U(-2, 2) px from the ROI centre and heights
 * U(z0, z0 + zspan) nm, each error added to xy (x and y) and z when given.
 */
static void bead_run(const struct ms_tracker *t, enum ms_pixfmt fmt, double scale, int noisy,
		     int n, uint64_t seed, double z0, double zspan, struct acc *xy, struct acc *za)
{
	int w = ms_tracker_params(t)->roi_size;
	ms_err e;
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	struct scene sc;
	scene_init(&sc, w, fmt);
	struct ms_rng g;
	ms_rng_seed(&g, seed);
	for (int i = 0; i < n; i++) {
		double cx = w / 2 + 4 * ms_rng_uniform(&g) - 2, cy = w / 2 + 4 * ms_rng_uniform(&g) - 2;
		double z = z0 + zspan * ms_rng_uniform(&g);
		scene_bead(&sc, cx, cy, z, scale, noisy ? &g : NULL);
		struct ms_roi_in in = scene_in(&sc, 0);
		struct ms_xyz o;
		ms_track_roi(t, ws, &in, &o, NULL);
		if (za)
			acc_add(za, o.z - z);
		if (xy) {
			acc_add(xy, o.x - cx);
			acc_add(xy, o.y - cy);
		}
	}
	scene_free(&sc);
	ms_track_ws_free(ws);
}

/* x/y RMS per axis over n beads at offsets U(-2, 2) px from the ROI centre. */
static struct acc xy_run(int w, enum ms_pixfmt fmt, double scale, int noisy, int n,
			 const struct ms_track_params *pp, uint64_t seed)
{
	struct ms_track_params p;
	ms_track_params_default(&p);
	if (pp)
		p = *pp;
	p.roi_size = w;
	ms_err e;
	struct ms_tracker *t = ms_tracker_new(&p, NULL, &e);
	struct acc a = {0};
	bead_run(t, fmt, scale, noisy, n, seed, -4000, 8000, &a, NULL);
	ms_tracker_free(t);
	return a;
}

/* measured radial-fit and QI x/y RMS (px) on the analytic beads */
#define RF_64_U8 4.8e-4
#define RF_64_U16 7.2e-5
#define RF_64_U8N 0.0177
#define RF_64_U16N 0.00134
#define RF_128_U16 7.9e-5
#define RF_128_U16N 0.00128
#define QI_64_U16 1.84e-4
#define QI_64_U16N 0.0017
#define QI_128_U16N 0.00222

static void test_xy(void)
{
	/* measured RMS (px per axis) when written. MagTrack's autoconv on
	 * clean beads is limited by the estimator itself (the parabola's pixel
	 * locking); autoconv-fine and radial-fit on clean u16 beads by float
	 * rounding and quantisation; u8 with noise (120 counts background) by
	 * shot noise and the 8-bit steps */
	static const struct {
		enum ms_xy_method xy;
		int w;
		enum ms_pixfmt fmt;
		int noisy;
		double scale, measured;
	} cfg[] = {
		{MS_XY_AUTOCONV, 64, MS_PIX_U8, 0, 120, 0.0064},
		{MS_XY_AUTOCONV, 64, MS_PIX_U16, 0, 20000, 0.0069},
		{MS_XY_AUTOCONV, 64, MS_PIX_U8, 1, 120, 0.0265},
		{MS_XY_AUTOCONV, 64, MS_PIX_U16, 1, 20000, 0.0064},
		{MS_XY_AUTOCONV, 128, MS_PIX_U8, 0, 120, 0.0055},
		{MS_XY_AUTOCONV, 128, MS_PIX_U16, 0, 20000, 0.0061},
		{MS_XY_AUTOCONV, 128, MS_PIX_U8, 1, 120, 0.0264},
		{MS_XY_AUTOCONV, 128, MS_PIX_U16, 1, 20000, 0.0061},
		{MS_XY_AUTOCONV_FINE, 64, MS_PIX_U16, 0, 20000, 3.8e-6},
		{MS_XY_AUTOCONV_FINE, 64, MS_PIX_U16, 1, 20000, 0.00191},
		{MS_XY_AUTOCONV_FINE, 64, MS_PIX_U8, 1, 120, 0.0270},
		{MS_XY_AUTOCONV_FINE, 128, MS_PIX_U16, 0, 20000, 4.6e-6},
		{MS_XY_AUTOCONV_FINE, 128, MS_PIX_U16, 1, 20000, 0.00184},
		{MS_XY_RADIAL_FIT, 64, MS_PIX_U8, 0, 120, RF_64_U8},
		{MS_XY_RADIAL_FIT, 64, MS_PIX_U16, 0, 20000, RF_64_U16},
		{MS_XY_RADIAL_FIT, 64, MS_PIX_U8, 1, 120, RF_64_U8N},
		{MS_XY_RADIAL_FIT, 64, MS_PIX_U16, 1, 20000, RF_64_U16N},
		{MS_XY_RADIAL_FIT, 128, MS_PIX_U16, 0, 20000, RF_128_U16},
		{MS_XY_RADIAL_FIT, 128, MS_PIX_U16, 1, 20000, RF_128_U16N},
		{MS_XY_QI, 64, MS_PIX_U16, 0, 20000, QI_64_U16},
		{MS_XY_QI, 64, MS_PIX_U16, 1, 20000, QI_64_U16N},
		{MS_XY_QI, 128, MS_PIX_U16, 1, 20000, QI_128_U16N},
	};
	for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
		struct ms_track_params pm;
		ms_track_params_default(&pm);
		pm.xy = cfg[i].xy;
		int n = cfg[i].w == 64 ? 80 : 40;
		struct acc a = xy_run(cfg[i].w, cfg[i].fmt, cfg[i].scale, cfg[i].noisy, n, &pm,
				      100 + i);
		tap_diag("x/y %-13s %3d px %-3s %-5s: RMS %.2e px, max %.2e, %d flagged",
			 ms_xy_names[cfg[i].xy], cfg[i].w, ms_pixfmt_name(cfg[i].fmt),
			 cfg[i].noisy ? "noisy" : "clean", acc_rms(&a), a.max, a.bad);
		tap_ok(a.bad == 0 && acc_rms(&a) <= 1.5 * cfg[i].measured,
		       "%s x/y at %d px, %s, %s: RMS %.2e <= 1.5 x %.2e", ms_xy_names[cfg[i].xy],
		       cfg[i].w, ms_pixfmt_name(cfg[i].fmt),
		       cfg[i].noisy ? "Poisson noise" : "no noise", acc_rms(&a), cfg[i].measured);
	}

	/* the same through COM alone: MagTrack's coarse estimate */
	struct ms_track_params p;
	ms_track_params_default(&p);
	p.xy = MS_XY_COM;
	struct acc a = xy_run(64, MS_PIX_U16, 20000, 0, 60, &p, 7);
	tap_diag("x/y  64 px u16 clean, COM only: RMS %.4f px", acc_rms(&a));
	/* measured 0.0177 */
	tap_ok(a.bad == 0 && acc_rms(&a) <= 1.5 * 0.0177, "COM alone on a clean symmetric bead: "
	       "RMS %.4f px", acc_rms(&a));

	/* half-pixel autoconvolution only */
	p.xy = MS_XY_AUTOCONV;
	p.autoconv_iters = 0;
	a = xy_run(64, MS_PIX_U16, 20000, 0, 60, &p, 8);
	tap_ok(a.bad == 0 && a.max <= 0.26, "half-pixel autoconvolution is within a quarter "
	       "pixel (max %.3f)", a.max);
}

/* The coordinate contract, and x and y not swapped: a bead well off the
 * ROI centre in a ROI cut from a wider frame. */
static void test_coords(void)
{
	struct ms_track_params p;
	ms_track_params_default(&p);
	ms_err e;
	struct ms_tracker *t = ms_tracker_new(&p, NULL, &e);
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	struct scene sc;
	scene_init(&sc, 64, MS_PIX_U16);
	scene_bead(&sc, 35.25, 28.5, 0, 20000, NULL);
	struct ms_roi_in in = scene_in(&sc, 0);
	struct ms_xyz o;
	ms_track_roi(t, ws, &in, &o, NULL);
	tap_ok(o.flags == 0 && fabs(o.x - 35.25) < 0.02 && fabs(o.y - 28.5) < 0.02,
	       "bead at column 35.25, row 28.5 of the ROI tracks to x %.4f, y %.4f", o.x, o.y);
	tap_ok(isnan(o.z), "no LUT: z is NaN (and not flagged: flags %u)", o.flags);

	/* the coarse estimate alone must agree on the axes too */
	double x, y;
	float *roi = xcalloc(64 * 64, 4);
	for (int r = 0; r < 64; r++)
		for (int c = 0; c < 64; c++)
			roi[r * 64 + c] = ((uint16_t *)sc.frame)[(r + sc.y0) * sc.fw + c + sc.x0];
	ms_com(roi, 64, MS_COM_BG_NONE, 0, &x, &y, NULL);
	float *ac = xcalloc(ms_autoconv_scratch_len(64), 4);
	ms_autoconv(roi, 64, 34, 29, 0, 0, ac, &x, &y);
	tap_ok(fmod(x * 2, 1) == 0 && fmod(y * 2, 1) == 0 && fabs(x - 35.25) <= 0.25 &&
	       fabs(y - 28.5) <= 0.25, "half-pixel autoconvolution: (%.1f, %.1f)", x, y);
	free(ac);
	free(roi);
	scene_free(&sc);
	ms_track_ws_free(ws);
	ms_tracker_free(t);
}

/* ---- z lookup ---- */

static double norm2(const float *v, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)v[i] * v[i];
	return s;
}

static void test_z_kernels(void)
{
	enum { NP = 121, PLEN = 32 };
	size_t st = ms_z_stride(PLEN);
	float *planes = xcalloc(NP * st, 4), q[PLEN], pn[64], sc[NP], sc2[NP];
	double z_nm[NP];
	for (int k = 0; k < NP; k++) {
		float prof[PLEN];
		z_nm[k] = -6000 + 100.0 * k;
		for (int b = 0; b < PLEN; b++)
			prof[b] = (float)(300 * ms_synth_ring(b, z_nm[k]));
		ms_z_normalise(prof, PLEN, planes + k * st);
	}
	struct ms_rng g;
	ms_rng_seed(&g, 9);
	struct acc a = {0};
	double worst_ssd = 0;
	for (int i = 0; i < 200; i++) {
		double z = -5500 + 11000 * ms_rng_uniform(&g);
		for (int b = 0; b < PLEN; b++)	/* other units and offset: Pearson ignores them */
			q[b] = (float)(7 + 0.01 * ms_synth_ring(b, z));
		ms_z_normalise(q, PLEN, pn);
		ms_z_scores(pn, planes, NP, st, MS_Z_PEARSON, sc);
		ms_z_scores(pn, planes, NP, st, MS_Z_SSD, sc2);
		unsigned f = 0, f2 = 0;
		double zp = ms_z_fit(sc, NP, 7, z_nm, &f, NULL);
		double zs = ms_z_fit(sc2, NP, 7, z_nm, &f2, NULL);
		acc_add(&a, f ? NAN : zp - z);
		worst_ssd = fmax(worst_ssd, fabs(zs - zp));
	}
	tap_diag("z from exact profiles between 100 nm planes: RMS %.2f nm, max %.2f", acc_rms(&a),
		 a.max);
	/* measured: RMS 1.46 nm, max 2.12 nm */
	tap_ok(a.bad == 0 && acc_rms(&a) <= 1.5 * 1.46 && a.max <= 1.5 * 2.12,
	       "Pearson z between planes: RMS %.2f nm, max %.2f nm", acc_rms(&a), a.max);
	tap_ok(worst_ssd < 0.05, "negative SSD on normalised profiles gives Pearson's z "
	       "(max diff %.3g nm)", worst_ssd);

	/* the fractional plane index maps linearly into uneven z steps */
	double zu[NP];
	for (int k = 0; k < NP; k++) {
		zu[k] = 10.0 * k + 0.5 * k * k;
		sc[k] = (float)(1 - 0.001 * (k - 50.3) * (k - 50.3));
	}
	unsigned f = 0;
	double plane, z = ms_z_fit(sc, NP, 7, zu, &f, &plane);
	tap_near(plane, 50.3, 1e-4, "fractional plane index of a parabolic score");
	tap_near(z, zu[50] + 0.3 * (zu[51] - zu[50]), 0.02, "z interpolates linearly between "
		 "uneven planes");

	/* edges: MagTrack's rule, NaN once the 7-point window hits an end */
	for (int k = 0; k < NP; k++)
		sc[k] = (float)(1 - 0.001 * (k - 3.0) * (k - 3.0));
	f = 0;
	z = ms_z_fit(sc, NP, 7, z_nm, &f, NULL);
	tap_ok(isnan(z) && f == MS_TRK_Z_EDGE, "peak at plane 3 (window at the end): NaN, Z_EDGE");
	for (int k = 0; k < NP; k++)
		sc[k] = (float)(1 - 0.001 * (k - 4.0) * (k - 4.0));
	f = 0;
	z = ms_z_fit(sc, NP, 7, z_nm, &f, NULL);
	tap_ok(!isnan(z) && f == 0, "peak at plane 4: a value (%.1f nm)", z);
	for (int k = 0; k < NP; k++)
		sc[k] = (float)k;
	f = 0;
	z = ms_z_fit(sc, NP, 7, z_nm, &f, NULL);
	tap_ok(isnan(z) && f == MS_TRK_Z_EDGE, "best match at the last plane: NaN, Z_EDGE");

	for (int b = 0; b < PLEN; b++)
		q[b] = NAN;
	tap_ok(ms_z_normalise(q, PLEN, pn) < 0, "an all-NaN profile cannot be normalised");
	for (int b = 0; b < PLEN; b++)
		q[b] = 4;
	tap_ok(ms_z_normalise(q, PLEN, pn) < 0, "nor can a flat one");
	for (int b = 0; b < PLEN; b++)
		q[b] = (float)b;
	q[0] = NAN;
	q[5] = NAN;
	tap_ok(ms_z_normalise(q, PLEN, pn) == 0 && pn[4] == 0 && fabs(norm2(pn, st) - 1) < 1e-5,
	       "NaN bins count as zero after centring; the result has unit norm");
	free(planes);
}

/* z through the whole pipeline: LUT from clean centred beads, beads at
 * random offsets and heights. */
static struct acc z_run(int w, enum ms_weighting wt, int os, enum ms_pixfmt fmt, double scale,
			int noisy, int n, uint64_t seed, struct acc *xy)
{
	struct ms_zlut lut;
	lut_make(&lut, w, os, wt, 121, -6000, 100, 1, 0);
	struct ms_track_params p;
	ms_track_params_default(&p);
	p.roi_size = w;
	p.weighting = wt;
	p.oversample = os;
	ms_err e;
	struct ms_tracker *t = ms_tracker_new(&p, &lut, &e);
	struct acc a = {0};
	bead_run(t, fmt, scale, noisy, n, seed, -5000, 10000, xy, &a);
	ms_tracker_free(t);
	lut_free(&lut);
	return a;
}

/* measured cubic z RMS (nm): 64 px, oversample 2, Poisson, 128 px */
#define CUB1 0.64
#define CUB2 2.40
#define CUBN 1.90
#define CUBB 0.67

static void test_z_pipeline(void)
{
	struct acc xy = {0};
	struct acc cub = z_run(64, MS_PROFILE_CUBIC, 1, MS_PIX_U16, 20000, 0, 100, 21, &xy);
	struct acc cub2 = z_run(64, MS_PROFILE_CUBIC, 2, MS_PIX_U16, 20000, 0, 100, 21, NULL);
	struct acc cubn = z_run(64, MS_PROFILE_CUBIC, 1, MS_PIX_U16, 20000, 1, 100, 22, NULL);
	struct acc cubb = z_run(128, MS_PROFILE_CUBIC, 1, MS_PIX_U16, 20000, 0, 40, 23, NULL);
	struct acc lin = z_run(64, MS_PROFILE_LINEAR, 1, MS_PIX_U16, 20000, 0, 100, 21, NULL);
	struct acc nea = z_run(64, MS_PROFILE_NEAREST, 1, MS_PIX_U16, 20000, 0, 100, 21, NULL);
	struct acc lin2 = z_run(64, MS_PROFILE_LINEAR, 2, MS_PIX_U16, 20000, 0, 100, 21, NULL);
	struct acc nea2 = z_run(64, MS_PROFILE_NEAREST, 2, MS_PIX_U16, 20000, 0, 100, 21, NULL);
	struct acc noisy = z_run(64, MS_PROFILE_LINEAR, 1, MS_PIX_U16, 20000, 1, 100, 22, NULL);
	struct acc big = z_run(128, MS_PROFILE_LINEAR, 1, MS_PIX_U16, 20000, 0, 40, 23, NULL);
	tap_diag("z 64 px clean, linear: RMS %.2f nm (max %.1f); nearest: %.2f nm (max %.1f)",
		 acc_rms(&lin), lin.max, acc_rms(&nea), nea.max);
	tap_diag("z 64 px clean, oversample 2: linear %.2f nm, nearest %.2f nm", acc_rms(&lin2),
		 acc_rms(&nea2));
	tap_diag("z 64 px Poisson (20000 counts), linear: %.2f nm; 128 px clean linear: %.2f nm",
		 acc_rms(&noisy), acc_rms(&big));
	tap_diag("z cubic: 64 px clean %.2f nm (max %.1f), oversample 2 %.2f nm, Poisson %.2f nm, "
		 "128 px %.2f nm", acc_rms(&cub), cub.max, acc_rms(&cub2), acc_rms(&cubn),
		 acc_rms(&cubb));
	/* measured with the cubic z fit (the LUT interpolated along z) and
	 * radius weights: linear 8.04, nearest 120, linear os2 8.78, nearest
	 * os2 33.8, noisy 8.06, 128 px 8.38 (nm RMS). These analytic beads
	 * (5-10 px ring period, 0.8 contrast, LUT from beads at pixel
	 * centres) make a linear profile's dependence on the sub-pixel centre
	 * show; on the physical simulator's beads linear gives 0.94 nm and
	 * cubic 1.16 (tests/cli/t0410-accuracy.sh), hence linear's default. */
	tap_ok(lin.bad == 0 && acc_rms(&lin) <= 1.5 * 8.04, "z with linear profiles: RMS %.2f nm",
	       acc_rms(&lin));
	tap_ok(nea.bad == 0 && acc_rms(&nea) <= 1.5 * 120, "z with nearest profiles: RMS %.1f nm",
	       acc_rms(&nea));
	tap_ok(acc_rms(&lin) * 5 < acc_rms(&nea) && acc_rms(&cub) * 1.5 < acc_rms(&lin),
	       "cubic beats linear, which beats nearest (the default's reason)");
	tap_ok(cub.bad == 0 && acc_rms(&cub) <= 1.5 * CUB1, "z with cubic profiles: RMS %.2f nm",
	       acc_rms(&cub));
	tap_ok(cub2.bad == 0 && acc_rms(&cub2) <= 1.5 * CUB2, "z, cubic, oversample 2: %.2f nm",
	       acc_rms(&cub2));
	tap_ok(cubn.bad == 0 && acc_rms(&cubn) <= 1.5 * CUBN, "z, cubic, Poisson noise: %.2f nm",
	       acc_rms(&cubn));
	tap_ok(cubb.bad == 0 && acc_rms(&cubb) <= 1.5 * CUBB, "z, cubic, 128 px: %.2f nm",
	       acc_rms(&cubb));
	tap_ok(lin2.bad == 0 && acc_rms(&lin2) <= 1.5 * 8.78, "z, linear, oversample 2: %.2f nm",
	       acc_rms(&lin2));
	tap_ok(noisy.bad == 0 && acc_rms(&noisy) <= 1.5 * 8.06, "z with Poisson noise: %.2f nm",
	       acc_rms(&noisy));
	tap_ok(big.bad == 0 && acc_rms(&big) <= 1.5 * 8.38, "z at 128 px: %.2f nm", acc_rms(&big));
	tap_ok(xy.bad == 0 && acc_rms(&xy) <= 1.5 * 7.1e-5, "x/y alongside z: %.2e px",
	       acc_rms(&xy));
}

/* A two-bead LUT: each bead is matched against its own table. */
static void test_multibead(void)
{
	struct ms_zlut lut;
	lut_make(&lut, 64, 1, MS_PROFILE_LINEAR, 121, -6000, 100, 2, 500);
	struct ms_track_params p;
	ms_track_params_default(&p);
	ms_err e;
	struct ms_tracker *t = ms_tracker_new(&p, &lut, &e);
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	tap_ok(ms_tracker_nbeads(t) == 2 && ms_tracker_nplanes(t) == 121,
	       "the tracker knows the LUT's 2 beads and 121 planes");
	struct scene sc;
	scene_init(&sc, 64, MS_PIX_U16);
	scene_bead(&sc, 32, 32, 1000, 20000, NULL);
	struct ms_xyz o0, o1, o2;
	struct ms_roi_in in = scene_in(&sc, 0);
	ms_track_roi(t, ws, &in, &o0, NULL);
	in.lut_bead = 1;
	ms_track_roi(t, ws, &in, &o1, NULL);
	in.lut_bead = 2;
	ms_track_roi(t, ws, &in, &o2, NULL);
	tap_ok(fabs(o0.z - 1000) < 5 && fabs(o1.z - 500) < 5, "bead 0's table gives %.1f nm, "
	       "bead 1's (shifted by 500 nm) %.1f nm", o0.z, o1.z);
	tap_ok(isnan(o2.z) && o2.flags == MS_TRK_Z_BAD && fabs(o2.x - 32) < 0.02,
	       "a bead index past the LUT: x/y tracked, z NaN, Z_BAD");
	scene_free(&sc);
	ms_track_ws_free(ws);
	ms_tracker_free(t);
	lut_free(&lut);
}

static void test_lut_checks(void)
{
	struct ms_zlut lut;
	struct ms_track_params p;
	ms_err e;
	lut_make(&lut, 50, 1, MS_PROFILE_NEAREST, 20, 0, 100, 1, 0);
	lut.roi_size = 0;
	lut.oversample = 0;
	lut.weighting[0] = 0;
	ms_track_params_default(&p);
	p.weighting = MS_PROFILE_NEAREST;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL, "a LUT of 25-bin profiles is refused at 64 px");
	tap_str(e.msg, "Z-LUT profile length 25 does not fit ROI size 64 with oversample 1 "
		"(expects 32)", "the message says why");
	p.roi_size = 50;
	struct ms_tracker *t = ms_tracker_new(&p, &lut, &e);
	tap_ok(t != NULL && ms_tracker_plen(t) == 25, "it fits a 50 px ROI (as MagScope's 25 bins)");
	ms_tracker_free(t);
	p.weighting = MS_PROFILE_CUBIC;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL && strstr(e.msg, "MagScope's 'nearest', not "
	       "'cubic'"), "a LUT that does not say its weighting is taken as nearest: %s", e.msg);
	p.weighting = MS_PROFILE_LINEAR;
	strcpy(lut.weighting, "nearest");
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL &&
	       strcmp(e.msg, "Z-LUT was made with 'nearest' profile weighting, not 'linear'") == 0,
	       "a weighting mismatch is refused: %s", e.msg);
	p.weighting = MS_PROFILE_NEAREST;
	lut.roi_size = 25;
	p.roi_size = 50;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL && strstr(e.msg, "ROI size 25"),
	       "a ROI size mismatch is refused: %s", e.msg);
	lut.roi_size = 50;
	lut.oversample = 2;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL && strstr(e.msg, "oversample 2"),
	       "an oversample mismatch is refused: %s", e.msg);
	lut.oversample = 1;
	lut.nplanes = 4;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL && strstr(e.msg, "4 planes"),
	       "too few planes for the cubic z fit are refused: %s", e.msg);
	lut.nplanes = 8;
	p.z_fit = MS_ZFIT_PARABOLA;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL && strstr(e.msg, "8 planes"),
	       "too few planes for the 7-point parabola are refused: %s", e.msg);
	p.z_fit = MS_ZFIT_CUBIC;
	struct ms_tracker *t8 = ms_tracker_new(&p, &lut, &e);
	tap_ok(t8 != NULL, "the cubic z fit takes 8 planes");
	ms_tracker_free(t8);
	lut.nplanes = 20;
	lut.z_nm[3] = NAN;
	tap_ok(ms_tracker_new(&p, &lut, &e) == NULL && strstr(e.msg, "plane 3"),
	       "a plane without a finite z is refused: %s", e.msg);
	lut_free(&lut);

	static const struct {
		int field, value;
		const char *needle;
	} bad[] = {
		{0, 63, "63"}, {0, 6, "6"}, {0, 258, "258"}, {1, -1, "iterations"},
		{2, 4, "fit points 4"}, {3, 0, "oversample 0"}, {4, 2, "z fit points 2"},
		{5, 9, "background 9"}, {6, 9, "method 9"},
	};
	int ok = 1;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ms_track_params_default(&p);
		switch (bad[i].field) {
		case 0: p.roi_size = bad[i].value; break;
		case 1: p.autoconv_iters = bad[i].value; break;
		case 2: p.xy_n_local = bad[i].value; break;
		case 3: p.oversample = bad[i].value; break;
		case 4: p.z_n_local = bad[i].value; break;
		case 5: p.com_bg = (enum ms_com_bg)bad[i].value; break;
		case 6: p.xy = (enum ms_xy_method)bad[i].value; break;
		}
		struct ms_tracker *bt = ms_tracker_new(&p, NULL, &e);
		if (bt || !strstr(e.msg, bad[i].needle)) {
			ok = 0;
			tap_diag("parameter case %zu: %s", i, bt ? "accepted" : e.msg);
		}
		ms_tracker_free(bt);
	}
	tap_ok(ok, "bad parameters are refused with the bad value quoted");
	ms_track_params_default(&p);
	p.line_ratio = NAN;
	tap_ok(ms_tracker_new(&p, NULL, &e) == NULL, "a NaN line ratio is refused: %s", e.msg);
}

/* ---- robustness: never a crash, never a silent garbage value ---- */

static int all_nan(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			return 0;
	return 1;
}

/* Track beads near and past the ROI's edges and corners, and pure noise;
 * count results that are neither flagged NaN nor inside the ROI. */
static int robust_sweep(const struct ms_tracker *t, struct ms_track_ws *ws, float *roi,
			float *prof, int *nflagged)
{
	struct ms_rng g;
	ms_rng_seed(&g, 77);
	struct ms_xyz o;
	int inconsistent = 0, flagged = 0;
	for (int i = 0; i < 300; i++) {
		if (i < 200) {
			double cx = -8 + 80 * ms_rng_uniform(&g), cy = i % 2 ? 2 : 61;
			if (i % 3 == 0)
				cx = 1.5, cy = -8 + 80 * ms_rng_uniform(&g);
			ms_synth_bead(roi, 64, 64, 64, cx, cy, -3000 + 30 * i, 1);
		} else {
			for (int k = 0; k < 64 * 64; k++)
				roi[k] = (float)(i % 2 ? 1000 * ms_rng_uniform(&g)
						       : ms_rng_poisson(&g, 3));
		}
		ms_track_roi_f32(t, ws, roi, 0, NAN, &o, prof);
		int xy_bad = (o.flags & MS_TRK_XY_BAD) != 0;
		flagged += o.flags != 0;
		if (xy_bad != (isnan(o.x) || isnan(o.y)) || (!xy_bad && !(o.x >= 0 && o.x <= 63 &&
		    o.y >= 0 && o.y <= 63)) || (isnan(o.z) != ((o.flags & (MS_TRK_Z_BAD |
		    MS_TRK_Z_EDGE | MS_TRK_XY_BAD)) != 0)) || (xy_bad && !all_nan(prof, 32)))
			inconsistent++;
	}
	*nflagged = flagged;
	return inconsistent;
}

static void test_robust(void)
{
	struct ms_zlut lut;
	struct ms_track_params p;
	ms_err e;
	struct ms_tracker *t = default_tracker(&lut, &p);
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	size_t plen = ms_tracker_plen(t);
	float *prof = xcalloc(plen, 4), *roi = xcalloc(64 * 64, 4);
	struct ms_xyz o;

	ms_synth_bead(roi, 64, 64, 64, 31.6, 32.2, 0, 2);
	roi[64 * 20 + 17] = NAN;
	ms_track_roi_f32(t, ws, roi, 0, NAN, &o, prof);
	tap_ok(o.flags == (MS_TRK_XY_BAD | MS_TRK_Z_BAD) && isnan(o.x) && isnan(o.y) &&
	       isnan(o.z) && all_nan(prof, plen), "a NaN pixel: XY_BAD|Z_BAD, all NaN");
	roi[64 * 20 + 17] = INFINITY;
	ms_track_roi_f32(t, ws, roi, 0, NAN, &o, prof);
	tap_ok((o.flags & MS_TRK_XY_BAD) && isnan(o.x), "an infinite pixel: XY_BAD");

	static uint8_t flat8[64 * 64];
	static uint16_t zero16[64 * 64];
	memset(flat8, 100, sizeof flat8);
	struct ms_roi_in in = {.frame = flat8, .fmt = MS_PIX_U8, .stride = 64, .z_prev = NAN};
	ms_track_roi(t, ws, &in, &o, prof);
	tap_ok(o.flags == (MS_TRK_EMPTY | MS_TRK_XY_BAD | MS_TRK_Z_BAD) && isnan(o.x) &&
	       all_nan(prof, plen), "a flat u8 ROI: EMPTY, NaN");
	in.frame = zero16;
	in.fmt = MS_PIX_U16;
	ms_track_roi(t, ws, &in, &o, NULL);
	tap_ok(o.flags & MS_TRK_EMPTY, "an all-zero u16 ROI: EMPTY");
	int flat_bad = 0;
	for (int bg = 0; bg < 3; bg++)
		for (int xy = 0; xy <= MS_XY_QI; xy++) {
			struct ms_track_params q = p;
			q.com_bg = (enum ms_com_bg)bg;
			q.xy = (enum ms_xy_method)xy;
			struct ms_tracker *tq = ms_tracker_new(&q, NULL, &e);
			struct ms_track_ws *wq = ms_track_ws_new(tq, &e);
			in.frame = flat8;
			in.fmt = MS_PIX_U8;
			ms_track_roi(tq, wq, &in, &o, NULL);
			flat_bad += o.flags != (MS_TRK_EMPTY | MS_TRK_XY_BAD) || !isnan(o.x);
			if (o.flags != (MS_TRK_EMPTY | MS_TRK_XY_BAD))
				tap_diag("flat ROI, background %s, %s: flags %u",
					 ms_com_bg_names[bg], ms_xy_names[xy], o.flags);
			ms_track_ws_free(wq);
			ms_tracker_free(tq);
		}
	tap_int(flat_bad, 0, "a flat ROI is EMPTY whatever the background and x/y method");

	in.fmt = MS_PIX_NONE;
	ms_track_roi(t, ws, &in, &o, NULL);
	tap_ok(o.flags == (MS_TRK_XY_BAD | MS_TRK_Z_BAD), "an unknown pixel format: XY_BAD|Z_BAD");

	struct ms_track_params p32 = p;
	p32.roi_size = 32;
	struct ms_tracker *t32 = ms_tracker_new(&p32, NULL, &e);
	ms_synth_bead(roi, 64, 64, 64, 31.6, 32.2, 0, 2);
	ms_track_roi_f32(t32, ws, roi, 0, NAN, &o, NULL);
	tap_ok(o.flags == MS_TRK_XY_BAD && isnan(o.x), "a workspace of another tracker: XY_BAD");
	ms_tracker_free(t32);

	/* negative pixels, no background: a plain centre of mass may leave the ROI */
	struct ms_track_params pc = p;
	pc.com_bg = MS_COM_BG_NONE;
	pc.xy = MS_XY_COM;
	struct ms_tracker *tc = ms_tracker_new(&pc, NULL, &e);
	struct ms_track_ws *wc = ms_track_ws_new(tc, &e);
	for (int k = 0; k < 64 * 64; k++)
		roi[k] = k % 64 < 10 ? -5.0f : 1.0f;
	ms_track_roi_f32(tc, wc, roi, 0, NAN, &o, NULL);
	tap_ok(o.flags == MS_TRK_XY_BAD && isnan(o.x), "a centre of mass outside the ROI: XY_BAD");
	ms_track_ws_free(wc);
	ms_tracker_free(tc);

	/* beads near and past the ROI's edges and corners, and pure noise:
	 * whatever comes out is flagged NaN or a position inside the ROI */
	int flagged, bad = robust_sweep(t, ws, roi, prof, &flagged);
	tap_int(bad, 0, "300 edge, corner and noise ROIs: every result either flagged NaN or "
		"inside the ROI (%d flagged)", flagged);
	struct ms_track_params pf = p;
	pf.xy = MS_XY_AUTOCONV_FINE;
	struct ms_tracker *tf = ms_tracker_new(&pf, &lut, &e);
	struct ms_track_ws *wf = ms_track_ws_new(tf, &e);
	bad = robust_sweep(tf, wf, roi, prof, &flagged);
	tap_int(bad, 0, "the same with autoconv-fine (%d flagged)", flagged);
	ms_track_ws_free(wf);
	ms_tracker_free(tf);
	for (int m = MS_XY_AUTOCONV; m <= MS_XY_QI; m += MS_XY_QI - MS_XY_AUTOCONV) {
		pf.xy = (enum ms_xy_method)m;
		tf = ms_tracker_new(&pf, &lut, &e);
		wf = ms_track_ws_new(tf, &e);
		bad = robust_sweep(tf, wf, roi, prof, &flagged);
		tap_int(bad, 0, "the same with %s (%d flagged)", ms_xy_names[m], flagged);
		ms_track_ws_free(wf);
		ms_tracker_free(tf);
	}

	/* a bead sitting at a corner breaks the autoconvolution's parabola */
	ms_synth_bead(roi, 64, 64, 64, 0, 0, 0, 1);
	ms_track_roi_f32(t, ws, roi, 0, NAN, &o, prof);
	tap_ok((o.flags & MS_TRK_XY_BAD) || (o.x >= 0 && o.x <= 63),
	       "a bead centred on the corner pixel: flags %u, x %.2f", o.flags, o.x);

	/* beyond the table: z NaN with Z_EDGE, x/y still good */
	ms_synth_bead(roi, 64, 64, 64, 32.3, 31.8, 6500, 3);
	ms_track_roi_f32(t, ws, roi, 0, NAN, &o, prof);
	tap_ok(o.flags == MS_TRK_Z_EDGE && isnan(o.z) && fabs(o.x - 32.3) < 0.02,
	       "a bead above the LUT's top: z NaN, Z_EDGE only (flags %u)", o.flags);
	free(roi);
	free(prof);
	ms_track_ws_free(ws);
	ms_tracker_free(t);
	lut_free(&lut);
}

/* ---- radial fit and QI kernels ---- */

static void test_fit_kernels(void)
{
	enum { W = 64 };
	float *img = xcalloc(W * W, 4), *ps = xcalloc(ms_profile_scratch_len(W, 1), 4);
	float *rf = xcalloc(ms_radial_fit_scratch_len(W, 1), 4), prof[64];
	int nb = (int)ms_profile_max_len(W, 1);
	struct ms_rng g;
	ms_rng_seed(&g, 41);
	double worst = 0, worst_qi = 0;
	int fails = 0;
	struct ms_qi *q = ms_qi_new(32, 32, 1, 30);
	for (int i = 0; i < 20; i++) {
		double cx = 30 + 4 * ms_rng_uniform(&g), cy = 30 + 4 * ms_rng_uniform(&g);
		double z = -4000 + 8000 * ms_rng_uniform(&g), x, y;
		ms_synth_bead(img, W, W, W, cx, cy, z, 3);
		/* a start 0.05 px off: the template about it, two steps */
		double x0 = cx + 0.05, y0 = cy - 0.04;
		ms_radial_profile_n(img, W, x0, y0, 1, MS_PROFILE_LINEAR, nb, prof, ps);
		if (ms_radial_fit(img, W, x0, y0, prof, nb, 1, 0, 2, 0, rf, &x, &y) < 0) {
			fails++;
			continue;
		}
		worst = fmax(worst, fmax(fabs(x - cx), fabs(y - cy)));
		if (ms_qi(img, W, cx + 0.4, cy - 0.3, 4, q, &x, &y) < 0) {
			fails++;
			continue;
		}
		worst_qi = fmax(worst_qi, fmax(fabs(x - cx), fabs(y - cy)));
	}
	/* measured: radial fit 6.8e-4 px from a template 0.06 px off (a
	 * second-order blur), QI 3.6e-4 px from 0.5 px off */
	tap_ok(fails == 0 && worst < 1.5 * 6.8e-4, "radial fit from 0.05 px off: worst %.2e px",
	       worst);
	tap_ok(fails == 0 && worst_qi < 1.5 * 3.6e-4, "QI from 0.5 px off: worst %.2e px",
	       worst_qi);

	/* a template from the right centre: the fit stays put */
	ms_synth_bead(img, W, W, W, 31.37, 32.81, 1500, 3);
	double x, y;
	ms_radial_profile_n(img, W, 31.37, 32.81, 1, MS_PROFILE_LINEAR, nb, prof, ps);
	ms_radial_fit(img, W, 31.37, 32.81, prof, nb, 1, 0, 3, 0, rf, &x, &y);
	tap_ok(fabs(x - 31.37) < 5e-4 && fabs(y - 32.81) < 5e-4,
	       "radial fit at the true centre stays there: (%.5f, %.5f)", x, y);
	/* Poisson weights give the same centre on clean data */
	double xw, yw;
	ms_radial_fit(img, W, 31.37, 32.81, prof, nb, 1, 0, 3, 1, rf, &xw, &yw);
	tap_ok(fabs(xw - x) < 5e-4 && fabs(yw - y) < 5e-4, "weighted fit agrees: (%.5f, %.5f)",
	       xw, yw);
	/* leaving out a core keeps the centre */
	ms_radial_fit(img, W, 31.37, 32.81, prof, nb, 1, 6.0, 3, 0, rf, &xw, &yw);
	tap_ok(fabs(xw - 31.37) < 1e-3 && fabs(yw - 32.81) < 1e-3,
	       "a fit without the inner 6 px: (%.5f, %.5f)", xw, yw);
	/* a template that does not fit the image: a refused step, not a number */
	for (int k = 0; k < W * W; k++)
		img[k] = (float)(1000 * ms_rng_uniform(&g));
	int rc = ms_radial_fit(img, W, 31.37, 32.81, prof, nb, 1, 0, 3, 0, rf, &x, &y);
	tap_ok(rc < 0 ? isnan(x) && isnan(y) : (fabs(x - 31.37) <= 3 && fabs(y - 32.81) <= 3),
	       "noise against a bead's template: refused or within the step limits (rc %d)", rc);
	tap_ok(ms_radial_fit(img, W, NAN, 3, prof, nb, 1, 0, 2, 0, rf, &x, &y) < 0 && isnan(x),
	       "a NaN start is refused");
	tap_ok(ms_radial_fit(img, W, 31, 31, prof, nb + 400, 1, 0, 2, 0, rf, &x, &y) < 0,
	       "more bins than the scratch holds are refused");
	tap_ok(ms_qi(img, W, -1, 3, 2, q, &x, &y) < 0 && isnan(x), "QI from outside the ROI: NaN");
	for (int k = 0; k < W * W; k++)
		img[k] = 7;
	tap_ok(ms_qi(img, W, 31, 31, 2, q, &x, &y) < 0 && isnan(y), "QI on a flat ROI: NaN");
	tap_ok(ms_qi_new(2, 8, 1, 30) == NULL && ms_qi_new(32, 8, 5, 5) == NULL,
	       "QI refuses too few radii and an empty radius range");
	ms_qi_free(q);
	free(rf);
	free(ps);
	free(img);
}

/* ---- the LUT interpolated along z ---- */

static void test_z_cubic(void)
{
	enum { NP = 121, PLEN = 32 };
	size_t st = ms_z_stride(PLEN);
	float *planes = xcalloc(NP * st, 4), *gram = xcalloc(NP * 4, 4), q[PLEN], pn[64];
	float sc[NP], sc2[NP];
	double z_nm[NP];
	for (int k = 0; k < NP; k++) {
		float prof[PLEN];
		z_nm[k] = -6000 + 100.0 * k;
		for (int b = 0; b < PLEN; b++)
			prof[b] = (float)(300 * ms_synth_ring(b, z_nm[k]));
		ms_z_normalise(prof, PLEN, planes + k * st);
	}
	ms_z_gram(planes, NP, st, gram);
	tap_ok(fabs(gram[4 * 10] - 1) < 1e-5 && gram[4 * 10 + 1] < 1 && gram[4 * (NP - 1) + 1] == 0,
	       "Gram band: unit diagonal, neighbours below 1, nothing past the end");
	struct ms_rng g;
	ms_rng_seed(&g, 9);
	struct acc a = {0}, par = {0};
	double worst_ssd = 0;
	for (int i = 0; i < 200; i++) {
		double z = -5500 + 11000 * ms_rng_uniform(&g);
		for (int b = 0; b < PLEN; b++)
			q[b] = (float)(7 + 0.01 * ms_synth_ring(b, z));
		ms_z_normalise(q, PLEN, pn);
		ms_z_scores(pn, planes, NP, st, MS_Z_PEARSON, sc);
		ms_z_scores(pn, planes, NP, st, MS_Z_SSD, sc2);
		unsigned f = 0, f2 = 0, f3 = 0;
		double zc = ms_z_fit_cubic(sc, gram, NP, ms_z_argmax(sc, 0, NP), MS_Z_PEARSON, z_nm,
					   &f, NULL);
		double zs = ms_z_fit_cubic(sc2, gram, NP, ms_z_argmax(sc2, 0, NP), MS_Z_SSD, z_nm,
					   &f2, NULL);
		double zp = ms_z_fit(sc, NP, 7, z_nm, &f3, NULL);
		acc_add(&a, f ? NAN : zc - z);
		acc_add(&par, f3 ? NAN : zp - z);
		worst_ssd = fmax(worst_ssd, fabs(zs - zc));
	}
	tap_diag("z between 100 nm planes, cubic: RMS %.3f nm (max %.3f); parabola %.2f nm",
		 acc_rms(&a), a.max, acc_rms(&par));
	/* measured: cubic RMS 0.032 nm, max 0.096; the parabola's 1.46 */
	tap_ok(a.bad == 0 && acc_rms(&a) <= 1.5 * 0.032 && a.max <= 1.5 * 0.096,
	       "cubic z between planes: RMS %.3f nm, max %.3f nm", acc_rms(&a), a.max);
	tap_ok(acc_rms(&a) * 20 < acc_rms(&par), "twenty times closer than the 7-point parabola");
	tap_ok(worst_ssd < 0.35, "SSD's cubic z is Pearson's to %.2f nm", worst_ssd);

	/* edges: NaN with Z_EDGE at and against the table ends */
	unsigned f = 0;
	for (int k = 0; k < NP; k++)
		sc[k] = (float)k;
	double z = ms_z_fit_cubic(sc, gram, NP, NP - 1, MS_Z_PEARSON, z_nm, &f, NULL);
	tap_ok(isnan(z) && f == MS_TRK_Z_EDGE, "best match at the last plane: NaN, Z_EDGE");
	f = 0;
	z = ms_z_fit_cubic(sc, gram, NP, 0, MS_Z_PEARSON, z_nm, &f, NULL);
	tap_ok(isnan(z) && f == MS_TRK_Z_EDGE, "best match at the first plane: NaN, Z_EDGE");
	/* a profile half way between planes 0 and 1 is out of reach */
	for (int b = 0; b < PLEN; b++)
		q[b] = (float)ms_synth_ring(b, -5950);
	ms_z_normalise(q, PLEN, pn);
	ms_z_scores(pn, planes, NP, st, MS_Z_PEARSON, sc);
	f = 0;
	z = ms_z_fit_cubic(sc, gram, NP, ms_z_argmax(sc, 0, NP), MS_Z_PEARSON, z_nm, &f, NULL);
	tap_ok(isnan(z) && f == MS_TRK_Z_EDGE, "z in the first interval: NaN, Z_EDGE (%g)", z);
	for (int b = 0; b < PLEN; b++)
		q[b] = (float)ms_synth_ring(b, -5830);
	ms_z_normalise(q, PLEN, pn);
	ms_z_scores(pn, planes, NP, st, MS_Z_PEARSON, sc);
	f = 0;
	double plane;
	z = ms_z_fit_cubic(sc, gram, NP, ms_z_argmax(sc, 0, NP), MS_Z_PEARSON, z_nm, &f, &plane);
	tap_ok(f == 0 && fabs(z + 5830) < 1, "z in the second interval: %.2f nm (plane %.3f)", z,
	       plane);
	sc[40] = NAN;
	f = 0;
	z = ms_z_fit_cubic(sc, gram, NP, 40, MS_Z_PEARSON, z_nm, &f, NULL);
	tap_ok(isnan(z) && f == MS_TRK_Z_BAD, "a NaN best score: NaN, Z_BAD");

	/* uneven planes: the fractional index maps linearly between them */
	double zu[NP];
	for (int k = 0; k < NP; k++)
		zu[k] = 10.0 * k + 0.5 * k * k;
	for (int b = 0; b < PLEN; b++)
		q[b] = (float)ms_synth_ring(b, z_nm[50] + 30);
	ms_z_normalise(q, PLEN, pn);
	ms_z_scores(pn, planes, NP, st, MS_Z_PEARSON, sc);
	f = 0;
	z = ms_z_fit_cubic(sc, gram, NP, 50, MS_Z_PEARSON, zu, &f, &plane);
	tap_ok(f == 0 && fabs(plane - 50.3) < 0.01 &&
	       fabs(z - (zu[50] + (plane - 50) * (zu[51] - zu[50]))) < 1e-9,
	       "uneven planes: plane %.4f maps to %.3f nm", plane, z);

	/* a saturated core left out: the bins from 'first' alone, planes re-
	 * normalised over them, match as the whole profile did */
	float stats[2 * NP], zg[4 * NP], sw[64];
	ms_z_bin_weights(PLEN, MS_ZW_RADIUS, sw);
	for (int k = 0; k < NP; k++) {
		float prof[PLEN];
		for (int b = 0; b < PLEN; b++)
			prof[b] = (float)(300 * ms_synth_ring(b, z_nm[k]));
		ms_z_normalise_from(prof, PLEN, 1, sw, planes + k * st);
	}
	double *prefix = xcalloc(NP * ms_z_prefix_len(PLEN), sizeof *prefix);
	ms_z_prefix(planes, NP, PLEN, sw, prefix);
	struct acc sub = {0};
	for (int i = 0; i < 50; i++) {
		double zt = -5000 + 10000 * ms_rng_uniform(&g);
		for (int b = 0; b < PLEN; b++)	/* a clipped core: garbage in bins 0..5 */
			q[b] = b < 6 ? 1e4f : (float)(3 + ms_synth_ring(b, zt));
		ms_z_normalise_from(q, PLEN, 6, sw, pn);
		ms_z_scores_from(pn, planes, NP, PLEN, 6, sw, i % 2 ? prefix : NULL, MS_Z_PEARSON,
				 sc, stats);
		size_t best = ms_z_argmax(sc, 0, NP);
		ms_z_gram_from(planes, NP, PLEN, 6, sw, stats, best - 2, best + 3, zg);
		f = 0;
		z = ms_z_fit_cubic(sc, zg, NP, best, MS_Z_PEARSON, z_nm, &f, NULL);
		acc_add(&sub, f ? NAN : z - zt);
	}
	/* measured 0.008 nm */
	tap_ok(sub.bad == 0 && acc_rms(&sub) < 1.5 * 0.008, "z from the bins outside a saturated "
	       "core (plane sums direct and from prefix sums): RMS %.4f nm", acc_rms(&sub));
	free(prefix);
	free(gram);
	free(planes);
}

/* The previous z: never a worse match than the whole table's, the
 * decider between equal ones. */
static void test_z_search(void)
{
	struct ms_zlut lut;
	struct ms_track_params p;
	ms_err e;
	struct ms_tracker *t = default_tracker(&lut, &p);
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	struct scene sc;
	scene_init(&sc, 64, MS_PIX_U16);
	scene_bead(&sc, 32.2, 31.7, 1234, 20000, NULL);
	struct ms_roi_in in = scene_in(&sc, 0);
	struct ms_xyz o0, o1, o2, o3;
	ms_track_roi(t, ws, &in, &o0, NULL);
	size_t n0 = ms_track_ws_zscored(ws);
	in.z_prev = 1300;
	ms_track_roi(t, ws, &in, &o1, NULL);
	size_t n1 = ms_track_ws_zscored(ws);
	in.z_prev = -4000;	/* the bead has moved far: the window misses, the table finds */
	ms_track_roi(t, ws, &in, &o2, NULL);
	size_t n2 = ms_track_ws_zscored(ws);
	in.z_prev = 5990;	/* a window at the table's end */
	ms_track_roi(t, ws, &in, &o3, NULL);
	tap_ok(fabs(o0.z - 1234) < 15 && o1.z == o0.z && o2.z == o0.z && o3.z == o0.z,
	       "z from the whole table %.2f, near the previous z %.2f, from a wrong previous z "
	       "%.2f and %.2f", o0.z, o1.z, o2.z, o3.z);
	/* 17 planes about z_prev, and the best's neighbours; from 52 planes
	 * away the range widens towards the match, plane by plane */
	tap_ok(n0 == 121 && n1 <= 21 && n2 > 52 && n2 < 121,
	       "planes scored: %zu without a previous z, %zu near it, %zu far from it", n0, n1,
	       n2);
	scene_bead(&sc, 32.2, 31.7, 5950, 20000, NULL);
	in.z_prev = 5900;
	ms_track_roi(t, ws, &in, &o1, NULL);
	tap_ok(isnan(o1.z) && (o1.flags & MS_TRK_Z_EDGE), "past the usable table with a previous "
	       "z beside it: NaN, Z_EDGE (flags %u)", o1.flags);

	/* noisy beads anywhere in the table, with a previous z near the true
	 * one or anywhere: the same z as the whole table's, to the bit, and
	 * most of the near ones found from the window alone */
	struct ms_rng g;
	ms_rng_seed(&g, 77);
	int same = 0, total = 0, windowed = 0, near = 0;
	for (int i = 0; i < 400; i++) {
		double z = -5000 + 10000 * ms_rng_uniform(&g);
		double scale = i % 2 ? 20000 : 2000;
		scene_bead(&sc, 30 + 4 * ms_rng_uniform(&g), 30 + 4 * ms_rng_uniform(&g), z, scale, &g);
		in = scene_in(&sc, 0);
		ms_track_roi(t, ws, &in, &o0, NULL);
		int is_near = i % 4 < 2;
		in.z_prev = is_near ? z + 100 * ms_rng_normal(&g) : -6000 + 12000 * ms_rng_uniform(&g);
		ms_track_roi(t, ws, &in, &o1, NULL);
		total++;
		same += o1.z == o0.z || (isnan(o1.z) && isnan(o0.z));
		near += is_near;
		windowed += is_near && ms_track_ws_zscored(ws) < 121;
	}
	tap_ok(same == total && windowed >= 0.95 * near,
	       "a search from the previous z gives the whole table's z (%d of %d), and the window "
	       "alone sufficed for %d of %d near ones", same, total, windowed, near);

	/* an ambiguous table: planes 60.. repeat planes 0.. (at z 6000 nm
	 * higher), so a bead matches two places equally; the previous z
	 * chooses, and without one the first wins */
	size_t plen = lut.plen;
	for (int k = 60; k < 121; k++)
		memcpy(lut.profiles + (size_t)k * plen, lut.profiles + (size_t)(k - 60) * plen,
		       plen * sizeof *lut.profiles);
	struct ms_tracker *ta = ms_tracker_new(&p, &lut, &e);
	struct ms_track_ws *wa = ms_track_ws_new(ta, &e);
	scene_bead(&sc, 32.2, 31.7, -3000, 20000, NULL);
	in = scene_in(&sc, 0);
	ms_track_roi(ta, wa, &in, &o0, NULL);
	in.z_prev = 3100;
	ms_track_roi(ta, wa, &in, &o1, NULL);
	size_t na = ms_track_ws_zscored(wa);
	in.z_prev = -2900;
	ms_track_roi(ta, wa, &in, &o2, NULL);
	tap_ok(na == 121 && ms_track_ws_zscored(wa) == 121, "a table whose distant planes look "
	       "alike is always scored whole (%zu, %zu planes)", na, ms_track_ws_zscored(wa));
	tap_ok(fabs(o0.z + 3000) < 15 && fabs(o1.z - o0.z - 6000) < 1e-6 && o2.z == o0.z,
	       "a tie between two planes goes to the previous z's side: %.1f, %.1f, %.1f", o0.z,
	       o1.z, o2.z);
	ms_track_ws_free(wa);
	ms_tracker_free(ta);
	scene_free(&sc);
	ms_track_ws_free(ws);
	ms_tracker_free(t);
	lut_free(&lut);
}

/*
 * The physical model's bright focal spot, clipped at full scale: from 0.4
 * to 4.3 um above focus 10 to 120 pixels saturate, and the flat top
 * defeats the exact autoconvolution step (a clipped top is not band-
 * limited); the radial fit must still find the centre from the half-pixel
 * one, and its ramp and least-squares template beside the core must not
 * bias it (noiseless images: what is left is bias).
 */
static void test_saturated_model(void)
{
	struct ms_beadsim_params bp;
	ms_beadsim_defaults(&bp);
	bp.z_min_nm = 0;
	bp.z_max_nm = 4500;
	ms_err e;
	struct ms_beadsim *s = ms_beadsim_new(&bp, &e);
	struct ms_track_params p;
	ms_track_params_default(&p);
	struct ms_tracker *t = ms_tracker_new(&p, NULL, &e);
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	float *img = xcalloc(64 * 64, sizeof *img);
	uint16_t *u = xcalloc(64 * 64, sizeof *u);
	double worst = 0;
	int bad = 0, sat = 0;
	for (double z = 0; z <= 4500; z += 125) {
		double cx = 32.056, cy = 31.681;
		ms_beadsim_fill(s, img, 64 * 64);
		ms_beadsim_add(s, img, 64, 64, cx, cy, z, &e);
		ms_beadsim_camera(img, 64 * 64, 0, 0, MS_PIX_U16, u, NULL);
		struct ms_roi_in in = {.frame = u, .fmt = MS_PIX_U16, .stride = 64, .z_prev = NAN};
		struct ms_xyz o;
		ms_track_roi(t, ws, &in, &o, NULL);
		bad += (o.flags & MS_TRK_XY_BAD) != 0;
		sat += (o.flags & MS_TRK_SATURATED) != 0;
		if (!(o.flags & MS_TRK_XY_BAD))
			worst = fmax(worst, fmax(fabs(o.x - cx), fabs(o.y - cy)));
	}
	/* measured: 32 of 37 saturated, worst 0.00050 px (with the core cut
	 * 2 px beyond its farthest pixel and binned templates: 0.0024) */
	tap_ok(bad == 0 && sat == 32 && worst < 1.5 * 0.00050, "the model's saturated focal spot: "
	       "%d of 37 saturated, none lost, worst error %.5f px", sat, worst);
	free(u);
	free(img);
	ms_track_ws_free(ws);
	ms_tracker_free(t);
	ms_beadsim_free(s);
}

/*
 * The saturated fit's kernels. ms_radial_template is a least-squares fit,
 * so an image that is exactly a cubic spline in the radius (knots at the
 * bins, straight from the first one) comes back exactly, as the bin
 * values that spline interpolates, and ms_radial_fit_taper with that
 * template stays at the true centre; the ramp's weights change nothing
 * there. A template from a clipped bead's own pixels follows the bend
 * beside the clip that a binned profile rounds off.
 */
static double spline_at(const double *a, int na, double s)
{
	int i = (int)s;
	double t = s - i, u = 1 - t, b[4] = {u * u * u / 6, (3 * t * t * t - 6 * t * t + 4) / 6,
					     (-3 * t * t * t + 3 * t * t + 3 * t + 1) / 6,
					     t * t * t / 6};
	double v = 0;
	for (int k = 0; k < 4; k++) {
		int j = i - 1 + k;
		v += b[k] * a[j < 0 ? 0 : j >= na ? na - 1 : j];
	}
	return v;
}

static void test_fit_core(void)
{
	enum { W = 64, OS = 2 };
	int nb = (int)ms_profile_max_len(W, OS);
	float *img = xcalloc(W * W, 4), *prof = xcalloc((size_t)nb, 4);
	float *rf = xcalloc(ms_radial_fit_scratch_len(W, OS), 4);
	/* coefficients a_j of bins j (a[0] is bin b0 - 1), a damped ring,
	 * straight at the start: a_{b0-1} = 2 a_b0 - a_{b0+1} */
	const double cx = 31.62, cy = 32.27, rmin = 3.3;
	int b0 = (int)floor(OS * rmin);
	double a[200];
	int na = nb - b0 + 1;
	for (int j = 1; j < na; j++) {
		double r = (double)(b0 + j - 1) / OS;
		a[j] = 1000 + 800 * cos(2 * M_PI * r / 5.3) * exp(-r / 14);
	}
	a[0] = 2 * a[1] - a[2];
	for (int r = 0; r < W; r++)
		for (int c = 0; c < W; c++) {
			double s = OS * hypot(c - cx, r - cy) - (b0 - 1);
			img[r * W + c] = (float)(s < 1 ? 0 : spline_at(a, na, s));
		}
	int nt = nb - 20;
	int rc = ms_radial_template(img, W, cx, cy, OS, rmin, nt, prof, rf);
	double worst = 0;
	for (int b = b0; b < nt - 1; b++) {
		int j = b - b0 + 1;
		double want = b == b0 ? a[j] : (a[j - 1] + 4 * a[j] + a[j + 1]) / 6;
		worst = fmax(worst, fabs(prof[b] - want));
	}
	/* measured: 0.0022 (float moments) */
	tap_ok(rc == 0 && isnan(prof[b0 - 1]) && worst < 1.5 * 0.0022,
	       "a spline image's least-squares template is that spline: worst bin %.2g of 1000",
	       worst);
	double x, y;
	rc = ms_radial_fit_taper(img, W, cx + 0.03, cy - 0.02, prof, nt, OS, rmin, 1.0, 3, 0, rf,
				 &x, &y);
	/* measured: 2e-7 px, float rounding */
	tap_ok(rc == 0 && fabs(x - cx) < 1e-5 && fabs(y - cy) < 1e-5,
	       "the tapered fit with it from 0.03 px off: (%.7f, %.7f)", x, y);
	/* a hard cut reads the template from the next bin up, where the
	 * straight start bends it a little: measured 1.3e-4 px */
	rc = ms_radial_fit_taper(img, W, cx + 0.03, cy - 0.02, prof, nt, OS, rmin, 0, 3, 0, rf,
				 &x, &y);
	double xh, yh;
	rc |= ms_radial_fit(img, W, cx + 0.03, cy - 0.02, prof, nt, OS, rmin, 3, 0, rf, &xh, &yh);
	tap_ok(rc == 0 && x == xh && y == yh && fabs(x - cx) < 2e-4 && fabs(y - cy) < 2e-4,
	       "taper 0 is ms_radial_fit's hard cut: (%.7f, %.7f)", x, y);
	tap_ok(ms_radial_template(img, W, cx, cy, OS, 40, nt, prof, rf) < 0 && isnan(prof[70]),
	       "a template with too few bins beyond its start is refused");
	tap_ok(ms_radial_template(img, W, NAN, cy, OS, rmin, nt, prof, rf) < 0 &&
	       ms_radial_fit_taper(img, W, cx, cy, prof, nt, OS, rmin, -1, 2, 0, rf, &x, &y) < 0 &&
	       isnan(x), "a NaN centre and a negative ramp are refused");
	tap_ok(ms_radial_template(img, W, cx, cy, OS, 46, nb, prof, rf) < 0,
	       "a template beyond the ROI's corners, with no pixels, is refused");

	/* the physical model's bead at 1.9 um, clipped: the bend beside the
	 * core in a least-squares template and in binned profiles */
	struct ms_beadsim_params bp;
	ms_beadsim_defaults(&bp);
	bp.z_min_nm = 1800;
	bp.z_max_nm = 2000;
	ms_err e;
	struct ms_beadsim *sim = ms_beadsim_new(&bp, &e);
	ms_beadsim_fill(sim, img, W * W);
	ms_beadsim_add(sim, img, W, W, 32.056, 31.681, 1900, &e);
	for (int k = 0; k < W * W; k++)
		img[k] = img[k] > 1 ? 1 : img[k];
	ms_radial_template(img, W, 32.056, 31.681, OS, 2.5, 24, prof, rf);
	float *lin = xcalloc((size_t)nb, 4), *ps = xcalloc(ms_profile_scratch_len(W, OS), 4);
	ms_radial_profile_n(img, W, 32.056, 31.681, OS, MS_PROFILE_LINEAR, 24, lin, ps);
	/* the least-squares spline's residual over the pixels at 2.5..9 px */
	double sl = 0, sb = 0;
	int n = 0;
	for (int r = 0; r < W; r++)
		for (int c = 0; c < W; c++) {
			double d = hypot(c - 32.056, r - 31.681), s = OS * d;
			if (d < 3 || d >= 9)
				continue;
			/* Catmull-Rom through each profile's bins (near enough to the
			 * fit's spline to tell them apart by an order of magnitude) */
			int i = (int)s;
			double t = s - i;
			double q[2];
			for (int m = 0; m < 2; m++) {
				const float *pp = m ? lin : prof;
				double p0 = pp[i - 1], p1 = pp[i], p2 = pp[i + 1], p3 = pp[i + 2];
				q[m] = p1 + 0.5 * t * (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 +
								    t * (3 * (p1 - p2) + p3 - p0)));
			}
			sl += (img[r * W + c] - q[0]) * (img[r * W + c] - q[0]);
			sb += (img[r * W + c] - q[1]) * (img[r * W + c] - q[1]);
			n++;
		}
	tap_diag("residual beside a clipped core (3..9 px): least squares %.4f, binned %.4f",
		 sqrt(sl / n), sqrt(sb / n));
	/* measured: 0.0066 and 0.0222 */
	tap_ok(sqrt(sl / n) < 1.5 * 0.0066 && sqrt(sb / n) > 2 * sqrt(sl / n),
	       "beside a clipped core the least-squares template fits the pixels better than bins "
	       "(%.4f vs %.4f)", sqrt(sl / n), sqrt(sb / n));
	ms_beadsim_free(sim);
	free(lin);
	free(ps);
	free(rf);
	free(prof);
	free(img);
}

/* A saturated bead: flagged as such, x/y and z unharmed. */
static void test_saturation(void)
{
	struct ms_zlut lut;
	struct ms_track_params p;
	ms_err e;
	struct ms_tracker *t = default_tracker(&lut, &p);
	struct ms_track_ws *ws = ms_track_ws_new(t, &e);
	struct scene sc;
	scene_init(&sc, 64, MS_PIX_U16);
	struct ms_rng g;
	ms_rng_seed(&g, 61);
	struct acc axy = {0}, az = {0};
	int sat = 0;
	for (int i = 0; i < 30; i++) {
		double cx = 30 + 4 * ms_rng_uniform(&g), cy = 30 + 4 * ms_rng_uniform(&g);
		double z = -3000 + 6000 * ms_rng_uniform(&g);
		/* the bright centre (1.8) clips at 65535 */
		scene_bead(&sc, cx, cy, z, 65535 / 1.5, NULL);
		struct ms_roi_in in = scene_in(&sc, 0);
		struct ms_xyz o;
		ms_track_roi(t, ws, &in, &o, NULL);
		sat += (o.flags & MS_TRK_SATURATED) != 0;
		acc_add(&axy, (o.flags & MS_TRK_XY_BAD) ? NAN : o.x - cx);
		acc_add(&axy, (o.flags & MS_TRK_XY_BAD) ? NAN : o.y - cy);
		acc_add(&az, o.z - z);
	}
	tap_diag("saturated analytic beads: x/y RMS %.2e px, z RMS %.2f nm, %d of 30 saturated",
		 acc_rms(&axy), acc_rms(&az), sat);
	/* measured: x/y 2.05e-4 px (1.0e-3 with the core cut 2 px beyond
	 * its farthest pixel), z 7.4 nm (as unsaturated analytic beads with
	 * linear profiles: see test_z_pipeline) */
	tap_ok(sat == 30 && axy.bad == 0 && acc_rms(&axy) < 1.5 * 2.05e-4 && az.bad == 0 &&
	       acc_rms(&az) < 1.5 * 7.4, "saturated beads: flagged SATURATED, x/y %.2e px, z %.2f "
	       "nm", acc_rms(&axy), acc_rms(&az));
	scene_free(&sc);
	ms_track_ws_free(ws);
	ms_tracker_free(t);
	lut_free(&lut);
}

/* ---- the pipeline's pieces agree, and threads change nothing ---- */

struct mt {
	const struct ms_tracker *t;
	struct ms_track_ws *ws[4];
	const float *rois;
	struct ms_xyz *out;
	float *prof;
	size_t plen;
};

static void mt_one(void *ctx, size_t i, int worker)
{
	struct mt *m = ctx;
	ms_track_roi_f32(m->t, m->ws[worker], m->rois + i * 64 * 64, 0, NAN, &m->out[i],
			 m->prof + i * m->plen);
}

static void test_consistency(void)
{
	enum { N = 48 };
	struct ms_zlut lut;
	struct ms_track_params p;
	ms_err e;
	struct ms_tracker *t = default_tracker(&lut, &p);
	size_t plen = ms_tracker_plen(t);
	float *rois = xcalloc((size_t)N * 64 * 64, 4);
	struct ms_rng g;
	ms_rng_seed(&g, 31);
	for (int i = 0; i < N; i++) {
		ms_synth_bead(rois + i * 64 * 64, 64, 64, 64, 30 + 4 * ms_rng_uniform(&g),
			      30 + 4 * ms_rng_uniform(&g), -5000 + 10000 * ms_rng_uniform(&g), 1);
		for (int k = 0; k < 64 * 64; k++)
			rois[i * 64 * 64 + k] = (float)ms_rng_poisson(&g, 500 * rois[i * 64 * 64 + k]);
	}
	struct mt one = {.t = t, .rois = rois, .plen = plen}, two = one;
	one.out = xcalloc(N, sizeof *one.out);
	two.out = xcalloc(N, sizeof *two.out);
	one.prof = xcalloc(N * plen, 4);
	two.prof = xcalloc(N * plen, 4);
	struct ms_pool *p1 = ms_pool_new(1, &e), *p3 = ms_pool_new(3, &e);
	for (int k = 0; k < 3; k++) {
		one.ws[k] = ms_track_ws_new(t, &e);
		two.ws[k] = ms_track_ws_new(t, &e);
	}
	ms_pool_run(p1, N, mt_one, &one);
	ms_pool_run(p3, N, mt_one, &two);
	tap_ok(memcmp(one.out, two.out, N * sizeof *one.out) == 0 &&
	       memcmp(one.prof, two.prof, N * plen * 4) == 0,
	       "3 threads sharing one tracker give bit-identical results to 1");

	/* the profile handed out is the one at the reported centre (for
	 * radial-fit, the one about the centre before the last step, which
	 * is within a few thousandths of a pixel of it) */
	float *ps = xcalloc(ms_profile_scratch_len(64, 1), 4), *ref = xcalloc(plen, 4);
	struct ms_track_params pf = p;
	pf.xy = MS_XY_AUTOCONV_FINE;
	struct ms_tracker *tf = ms_tracker_new(&pf, &lut, &e);
	struct ms_track_ws *wf = ms_track_ws_new(tf, &e);
	struct ms_xyz of;
	float *pof = xcalloc(plen, 4);
	ms_track_roi_f32(tf, wf, rois, 0, NAN, &of, pof);
	ms_radial_profile(rois, 64, of.x, of.y, 1, MS_PROFILE_LINEAR, ref, ps);
	tap_ok(memcmp(ref, pof, plen * 4) == 0, "the profile output is the radial profile "
	       "at the found centre");
	ms_radial_profile(rois, 64, one.out[0].x, one.out[0].y, 1, MS_PROFILE_LINEAR, ref, ps);
	double worst = 0;
	for (size_t b = 1; b < plen; b++)
		worst = fmax(worst, fabs(ref[b] - one.prof[b]) / fabs(ref[b]));
	tap_ok(worst < 2e-3, "radial-fit's profile output is the profile at its centre to %.1e",
	       worst);
	free(pof);
	ms_track_ws_free(wf);
	ms_tracker_free(tf);

	/* the float and the integer entry points agree on integer data */
	uint16_t *f16 = xcalloc(64 * 64, 2);
	for (int k = 0; k < 64 * 64; k++)
		f16[k] = (uint16_t)rois[k];
	struct ms_roi_in in = {.frame = f16, .fmt = MS_PIX_U16, .stride = 64, .z_prev = NAN};
	struct ms_xyz o;
	ms_track_roi(t, one.ws[0], &in, &o, NULL);
	tap_ok(o.x == one.out[0].x && o.y == one.out[0].y && o.z == one.out[0].z,
	       "u16 and float input give the same result");

	/* COM-only x/y is the centre of mass itself */
	p.xy = MS_XY_COM;
	struct ms_tracker *tc = ms_tracker_new(&p, NULL, &e);
	struct ms_track_ws *wc = ms_track_ws_new(tc, &e);
	float *tmp = xcalloc(64 * 64, 4);
	double x, y, med = ms_median_f32(rois, 64 * 64, tmp);
	free(tmp);
	ms_com(rois, 64, MS_COM_BG_MEDIAN, med, &x, &y, NULL);
	ms_track_roi_f32(tc, wc, rois, 0, NAN, &o, NULL);
	tap_ok(o.x == x && o.y == y && isnan(o.z), "x/y method 'com' returns the centre of mass");
	ms_track_ws_free(wc);
	ms_tracker_free(tc);

	free(f16);
	free(ref);
	free(ps);
	for (int k = 0; k < 3; k++) {
		ms_track_ws_free(one.ws[k]);
		ms_track_ws_free(two.ws[k]);
	}
	ms_pool_free(p1);
	ms_pool_free(p3);
	free(one.out);
	free(two.out);
	free(one.prof);
	free(two.prof);
	free(rois);
	ms_tracker_free(t);
	lut_free(&lut);
}

static void test_params(void)
{
	struct ms_track_params p;
	ms_track_params_default(&p);
	tap_ok(p.roi_size == 64 && p.com_bg == MS_COM_BG_MEDIAN && p.autoconv_iters == 5 &&
	       p.line_ratio == 0.1 && p.xy_n_local == 5 && p.oversample == 1 &&
	       p.z == MS_Z_PEARSON && p.z_n_local == 7, "MagTrack's defaults where they apply");
	tap_ok(p.xy == MS_XY_RADIAL_FIT && p.fit_iters == 2 && !p.fit_weighted &&
	       p.weighting == MS_PROFILE_LINEAR && p.z_fit == MS_ZFIT_CUBIC &&
	       p.z_weights == MS_ZW_RADIUS && p.z_search == 8 && p.qi_iters == 4,
	       "mstk's defaults: radial-fit, linear profiles, cubic z fit, radius weights");
	tap_int(ms_track_name_index(ms_weighting_names, "cubic"), MS_PROFILE_CUBIC, "'cubic'");
	tap_int(ms_track_name_index(ms_weighting_names, "bilinear"), MS_PROFILE_BILINEAR,
		"'bilinear'");
	tap_int(ms_track_name_index(ms_weighting_names, "area"), MS_PROFILE_AREA, "'area'");
	tap_int(ms_track_name_index(ms_xy_names, "radial-fit"), MS_XY_RADIAL_FIT, "'radial-fit'");
	tap_int(ms_track_name_index(ms_xy_names, "qi"), MS_XY_QI, "'qi'");
	tap_int(ms_track_name_index(ms_z_fit_names, "parabola"), MS_ZFIT_PARABOLA, "'parabola'");
	tap_int(ms_track_name_index(ms_z_weights_names, "uniform"), MS_ZW_UNIFORM, "'uniform'");
	tap_int(ms_track_name_index(ms_xy_names, "autoconv-fine"), MS_XY_AUTOCONV_FINE,
		"'autoconv-fine'");
	tap_int(ms_track_name_index(ms_com_bg_names, "median"), MS_COM_BG_MEDIAN, "'median'");
	tap_int(ms_track_name_index(ms_xy_names, "autoconv"), MS_XY_AUTOCONV, "'autoconv'");
	tap_int(ms_track_name_index(ms_weighting_names, "nearest"), MS_PROFILE_NEAREST, "'nearest'");
	tap_int(ms_track_name_index(ms_z_names, "ssd"), MS_Z_SSD, "'ssd'");
	tap_int(ms_track_name_index(ms_z_names, "bogus"), -1, "an unknown word is -1");
	tap_int(ms_autoconv_half_lines(64, 0.1), 3, "0.1 at 64 px averages 7 lines");
	tap_int(ms_autoconv_half_lines(128, 0.1), 6, "0.1 at 128 px averages 13 lines");
	tap_int(ms_autoconv_half_lines(256, 0.1), 12, "0.1 at 256 px averages 25 lines");
	tap_int(ms_autoconv_half_lines(64, 0.05), 1, "0.05 at 64 px averages 3 lines");
}

int main(void)
{
	test_params();
	test_medians();
	test_com();
	test_parabola();
	test_profile();
	test_coords();
	test_xy();
	test_fit_kernels();
	test_z_kernels();
	test_z_cubic();
	test_z_pipeline();
	test_z_search();
	test_fit_core();
	test_saturation();
	test_saturated_model();
	test_multibead();
	test_lut_checks();
	test_robust();
	test_consistency();
	return tap_done();
}
