/*
 * autoconv: MagTrack's autoconvolution centring (auto_conv and
 * auto_conv_multiline_sub_pixel) and the weighted parabola it and the Z
 * lookup share. A line profile symmetric about c convolved with itself
 * peaks at full lag 2c; only the W 'same' lags are needed, so the
 * convolution is computed directly as W dot products against the reversed,
 * zero-padded profile (no FFT, no bounds tests inside the loop). The
 * Gaussian window is made by a multiplicative recurrence: two exp() per
 * line instead of one per sample. The "fine" variant replaces the
 * parabola by the exact peak of the band-limited autoconvolution, computed
 * from the line's spectrum (KissFFT, plans per thread). See kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <kiss_fftr.h>

#include "track/vec.h"

double ms_parabolic_vertex(const float *data, int n, double est, int n_local)
{
	int h = n_local / 2;
	if (n_local < 3 || n < n_local || !isfinite(est))
		return NAN;
	double re = nearbyint(est);
	int i0 = re < h ? h : re > n - h - 1 ? n - h - 1 : (int)re;
	if (i0 == h || i0 == n - h - 1)
		return NAN;
	/* Symmetric abscissae t = -h..h make the odd moments vanish, so the
	 * normal equations split into b alone and a 2x2 system for a, c. */
	double s0 = 0, s2 = 0, s4 = 0, t0 = 0, t1 = 0, t2 = 0;
	for (int t = -h; t <= h; t++) {
		double wt = h - abs(t) + 1;
		double ww = wt * wt, v = data[i0 + t];
		s0 += ww;
		s2 += ww * t * t;
		s4 += ww * t * t * t * t;
		t0 += ww * v;
		t1 += ww * t * v;
		t2 += ww * t * t * v;
	}
	double a = (t2 * s0 - t0 * s2) / (s4 * s0 - s2 * s2);
	double b = t1 / s2;
	if (!(a < 0) || !isfinite(b))
		return NAN;
	return i0 - b / (2 * a);
}

int ms_autoconv_half_lines(int w, double line_ratio)
{
	double h = floor(w * line_ratio / 2);
	if (!(h >= 0))
		return 0;
	return h > w / 2 ? w / 2 : (int)h;
}

/* Layout of the scratch: y line, padded reversed line, convolution, x line. */
static size_t pad_len(int w)
{
	return ms_pad4((size_t)2 * w + 8);
}

size_t ms_autoconv_scratch_len(int w)
{
	return 3 * ms_pad4(w) + pad_len(w);
}

/* line[] *= exp(-(p - c0)^2 / (2 sigma^2)), p = 0..w-1. */
static void gauss_window(float *line, int w, double c0, double sigma)
{
	double k = 1.0 / (2 * sigma * sigma);
	double g = exp(-c0 * c0 * k);	/* g(0) */
	double q = exp((2 * c0 - 1) * k);	/* g(p+1)/g(p) at p = 0 */
	double rr = exp(-2 * k);	/* q(p+1)/q(p) */
	for (int p = 0; p < w; p++) {
		line[p] = (float)(line[p] * g);
		g *= q;
		q *= rr;
	}
}

/*
 * Centre of a prepared line[] (w samples) by autoconvolution; n_local = 0
 * for the half-pixel argmax. NaN on failure.
 */
static double line_centre(const float *line, int w, int n_local, float *rev, float *conv)
{
	/* full[m] = sum_i s[i] s[m-i] = sum_i s[i] rev[P + w-1-m + i] with
	 * rev[P + j] = s[w-1-j]; 'same' lag k is full lag m = k + R. */
	int R = (w - 1) / 2, P = w / 2;
	size_t plen = pad_len(w);
	memset(rev, 0, plen * sizeof *rev);
	for (int j = 0; j < w; j++)
		rev[P + j] = line[w - 1 - j];
	int best = 0;
	for (int k = 0; k < w; k++) {
		int m = k + R;
		conv[k] = ms_dot(line, rev + P + w - 1 - m, (size_t)w);
		if (conv[k] > conv[best])
			best = k;
	}
	if (!isfinite(conv[best]))
		return NAN;
	double ks = best;
	if (n_local > 0)
		ks = ms_parabolic_vertex(conv, w, best, n_local);
	return (ks + R) / 2;
}

/*
 * The two band profiles of MagTrack's multi-line step: ly[r] the mean of
 * columns round(x_old) +- half_lines (clipped) along the rows, lx[c] the
 * mean of as many rows along the columns. -1 when the old estimate is not
 * inside the ROI.
 */
static int band_lines(const float *roi, int w, double x_old, double y_old, int half_lines,
		      float *ly, float *lx)
{
	if (!isfinite(x_old) || !isfinite(y_old))
		return -1;
	double rx = nearbyint(x_old), ry = nearbyint(y_old);
	if (rx < 0 || rx > w - 1 || ry < 0 || ry > w - 1)
		return -1;
	int cx = (int)rx, cy = (int)ry;
	int c0 = cx - half_lines < 0 ? 0 : cx - half_lines;
	int c1 = cx + half_lines > w - 1 ? w - 1 : cx + half_lines;
	int r0 = cy - half_lines < 0 ? 0 : cy - half_lines;
	int r1 = cy + half_lines > w - 1 ? w - 1 : cy + half_lines;

	float inv = 1.0f / (c1 - c0 + 1);
	for (int r = 0; r < w; r++) {
		const float *row = roi + (size_t)r * w;
		float s = 0;
		for (int c = c0; c <= c1; c++)
			s += row[c];
		ly[r] = s * inv;
	}
	memset(lx, 0, ms_pad4(w) * sizeof *lx);
	int w4 = w & ~3;
	for (int r = r0; r <= r1; r++) {
		const float *row = roi + (size_t)r * w;
		int c = 0;
		for (; c < w4; c += 4)
			ms_v4_store(lx + c, ms_v4_load(lx + c) + ms_v4_load(row + c));
		for (; c < w; c++)
			lx[c] += row[c];
	}
	inv = 1.0f / (r1 - r0 + 1);
	for (int c = 0; c < w; c++)
		lx[c] *= inv;
	return 0;
}

/* Mean-subtract and window a band profile about c0. */
static void line_prep(float *line, int w, double c0)
{
	double mean = 0;
	for (int p = 0; p < w; p++)
		mean += line[p];
	mean /= w;
	for (int p = 0; p < w; p++)
		line[p] = (float)(line[p] - mean);
	gauss_window(line, w, c0, w / 6.0);
}

int ms_autoconv(const float *roi, int w, double x_old, double y_old, int half_lines, int n_local,
		float *scratch, double *x, double *y)
{
	float *line = scratch, *rev = line + ms_pad4(w), *conv = rev + pad_len(w);
	float *lx = conv + ms_pad4(w);
	*x = *y = NAN;
	if (band_lines(roi, w, x_old, y_old, half_lines, line, lx) < 0)
		return -1;
	line_prep(line, w, y_old);
	double ny = line_centre(line, w, n_local, rev, conv);
	line_prep(lx, w, x_old);
	double nx = line_centre(lx, w, n_local, rev, conv);
	if (!isfinite(nx) || !isfinite(ny) || nx < 0 || nx > w - 1 || ny < 0 || ny > w - 1)
		return -1;
	*x = nx;
	*y = ny;
	return 0;
}

/* ---- the band-limited peak ---- */

struct ms_acfine {
	int w, n;		/* ROI size, FFT length 2w */
	kiss_fftr_cfg fwd;
	float *ly, *lx, *t;	/* band profiles, FFT time buffer [n] */
	kiss_fft_cpx *f;	/* [n/2 + 1] */
};

struct ms_acfine *ms_acfine_new(int w)
{
	struct ms_acfine *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->w = w;
	a->n = 2 * w;
	a->fwd = kiss_fftr_alloc(a->n, 0, NULL, NULL);
	a->ly = calloc(ms_pad4(w), sizeof(float));
	a->lx = calloc(ms_pad4(w), sizeof(float));
	a->t = calloc((size_t)a->n, sizeof(float));
	a->f = calloc((size_t)a->n / 2 + 1, sizeof *a->f);
	if (!a->fwd || !a->ly || !a->lx || !a->t || !a->f) {
		ms_acfine_free(a);
		return NULL;
	}
	return a;
}

void ms_acfine_free(struct ms_acfine *a)
{
	if (!a)
		return;
	kiss_fftr_free(a->fwd);
	free(a->ly);
	free(a->lx);
	free(a->t);
	free(a->f);
	free(a);
}

/*
 * Centre of a prepared (mean-subtracted, windowed) line, starting from c0.
 * Its spectrum S, zero-padded to n = 2w so that the circular convolution
 * is the linear one, gives the autoconvolution C(tau) = sum_k wt_k
 * Re(S_k^2 e^{i w_k tau}) at every real lag: the band-limited interpolant
 * of the integer-lag values. For a line symmetric about c (band-limited,
 * as a sampled bead profile is) C is exactly symmetric about 2c, so its
 * peak has none of the parabola's pixel locking. Newton's method on
 * C'(tau) = 0 from tau = 2 c0 finds it; c0 comes from MagTrack's global
 * argmax (the half-pixel step) or a previous step, so it is within the
 * peak's concave core.
 */
double ms_symmetric_centre(struct ms_acfine *a, const float *line, double c0)
{
	int w = a->w, n = a->n, nh = n / 2, R = (w - 1) / 2;
	double s2r[257], s2i[257];	/* S^2; nh <= 256 */
	memcpy(a->t, line, (size_t)w * sizeof *line);
	memset(a->t + w, 0, (size_t)(n - w) * sizeof *a->t);
	kiss_fftr(a->fwd, a->t, a->f);
	for (int k = 0; k <= nh; k++) {
		double re = a->f[k].r, im = a->f[k].i;
		s2r[k] = re * re - im * im;
		s2i[k] = 2 * re * im;
	}
	double tau0 = 2 * c0, tau = tau0, dw = 2 * M_PI / n;
	for (int it = 0; it < 10; it++) {
		double c1 = cos(dw * tau), s1 = sin(dw * tau);
		double er = 1, ei = 0, d1 = 0, d2 = 0;	/* e = e^{i w_k tau} */
		for (int k = 1; k <= nh; k++) {
			double t = er * c1 - ei * s1;
			ei = er * s1 + ei * c1;
			er = t;
			double wk = dw * k, wt = k == nh ? 1 : 2;
			double pr = s2r[k] * er - s2i[k] * ei, pi = s2r[k] * ei + s2i[k] * er;
			d1 -= wt * wk * pi;
			d2 -= wt * wk * wk * pr;
		}
		if (!(d2 < 0))
			return NAN;
		double step = -d1 / d2;
		if (step > 0.5)	/* stay on the start's peak */
			step = 0.5;
		if (step < -0.5)
			step = -0.5;
		tau += step;
		if (fabs(step) < 1e-6)
			break;
	}
	/* a peak that wandered off, or (MagTrack's 5-point rule) within 2 lags
	 * of the 'same' range's ends, is not trusted */
	if (!(fabs(tau - tau0) <= 2) || tau - R <= 2 || tau - R >= w - 3)
		return NAN;
	return tau / 2;
}

int ms_autoconv_fine(const float *roi, int w, double x_old, double y_old, int half_lines,
		     struct ms_acfine *a, double *x, double *y)
{
	*x = *y = NAN;
	if (a->w != w || band_lines(roi, w, x_old, y_old, half_lines, a->ly, a->lx) < 0)
		return -1;
	line_prep(a->ly, w, y_old);
	line_prep(a->lx, w, x_old);
	double ny = ms_symmetric_centre(a, a->ly, y_old), nx = ms_symmetric_centre(a, a->lx, x_old);
	if (!isfinite(nx) || !isfinite(ny) || nx < 0 || nx > w - 1 || ny < 0 || ny > w - 1)
		return -1;
	*x = nx;
	*y = ny;
	return 0;
}
