/*
 * autoconv: MagTrack's autoconvolution centring (auto_conv and
 * auto_conv_multiline_sub_pixel) and the weighted parabola it and the Z
 * lookup share. A line profile symmetric about c convolved with itself
 * peaks at full lag 2c; only the W 'same' lags are needed, so the
 * convolution is computed directly as W dot products against the reversed,
 * zero-padded profile (no FFT, no bounds tests inside the loop). The
 * Gaussian window is made by a multiplicative recurrence: two exp() per
 * line instead of one per sample. See kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <string.h>

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

/* Layout of the scratch: line, padded reversed line, convolution. */
static size_t pad_len(int w)
{
	return ms_pad4((size_t)2 * w + 8);
}

size_t ms_autoconv_scratch_len(int w)
{
	return ms_pad4(w) + pad_len(w) + ms_pad4(w);
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
 * Centre of the symmetric line[] (w samples) about position c0, by
 * autoconvolution; n_local = 0 for the half-pixel argmax. NaN on failure.
 */
static double line_centre(float *line, int w, double c0, int n_local, float *rev, float *conv)
{
	double mean = 0;
	for (int p = 0; p < w; p++)
		mean += line[p];
	mean /= w;
	for (int p = 0; p < w; p++)
		line[p] = (float)(line[p] - mean);
	gauss_window(line, w, c0, w / 6.0);

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

int ms_autoconv(const float *roi, int w, double x_old, double y_old, int half_lines, int n_local,
		float *scratch, double *x, double *y)
{
	float *line = scratch, *rev = line + ms_pad4(w), *conv = rev + pad_len(w);
	*x = *y = NAN;
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

	/* y: along the rows, mean of columns c0..c1 */
	float inv = 1.0f / (c1 - c0 + 1);
	for (int r = 0; r < w; r++) {
		const float *row = roi + (size_t)r * w;
		float s = 0;
		for (int c = c0; c <= c1; c++)
			s += row[c];
		line[r] = s * inv;
	}
	double ny = line_centre(line, w, y_old, n_local, rev, conv);

	/* x: along the columns, mean of rows r0..r1 */
	memset(line, 0, ms_pad4(w) * sizeof *line);
	int w4 = w & ~3;
	for (int r = r0; r <= r1; r++) {
		const float *row = roi + (size_t)r * w;
		int c = 0;
		for (; c < w4; c += 4)
			ms_v4_store(line + c, ms_v4_load(line + c) + ms_v4_load(row + c));
		for (; c < w; c++)
			line[c] += row[c];
	}
	inv = 1.0f / (r1 - r0 + 1);
	for (int c = 0; c < w; c++)
		line[c] *= inv;
	double nx = line_centre(line, w, x_old, n_local, rev, conv);

	if (!isfinite(nx) || !isfinite(ny) || nx < 0 || nx > w - 1 || ny < 0 || ny > w - 1)
		return -1;
	*x = nx;
	*y = ny;
	return 0;
}
