/*
 * radialfit: the bead's centre refined by fitting it with its own radial
 * profile. A bead image is I(p) = T(|p - c|) + noise for some radial
 * function T; the radial profile measured about a centre near c is an
 * estimate of T (an average over hundreds of pixels, so nearly noiseless),
 * and the centre is then the least-squares fit of the model T(|p - c|) to
 * the pixels, by Gauss-Newton steps. The profile's bins are nuisance
 * parameters whose information is orthogonal to the centre's (a radial
 * change is even about the centre, a shift odd), so a fit with a measured
 * T loses nothing against one with the true T, and the estimate uses every
 * pixel with its proper weight: it comes within 1.05 to 1.3 times the
 * Cramer-Rao bound, where the autoconvolution's band of lines falls short
 * by 3 to 5 times and QI's quadrant sums by up to 2. Only the rectangle
 * centred on the bead that fits the ROI takes part, a pixel set symmetric
 * about the centre, so that the template's errors (radial ones) cancel.
 * T between bins is the interpolating cubic spline through them (C2),
 * stored as one power-basis quadruple per bin interval so that a pixel
 * reads 16 contiguous bytes. A saturated bead is fitted with a template
 * from the pixels themselves (the least-squares spline, which follows the
 * sharp bend beside a clipped core) and with the core weighed down by a
 * ramp rather than cut. See kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "track/vec.h"

/* The least-squares template's moments: MSETS interleaved sets of MLEN
 * per interval (see lsq_moments). */
#define MSETS 2
#define MLEN 12		/* t^0..t^6, v t^0..t^3, a pad */

/* Scratch layout of the fit: coefficient quads [4 (nb + 4)], filled bins
 * [nb + 4], then doubles for the spline solve: 3 x [nb + 4]. The least-
 * squares template's is larger: MSETS MLEN (nb + 4) floats of moments,
 * then 6 (nb + 4) doubles. */
size_t ms_radial_fit_scratch_len(int w, int oversample)
{
	size_t nb = ms_profile_max_len(w, oversample);
	return (MSETS * MLEN + 12) * (nb + 4) + 4;
}

/*
 * The template from bins b0 .. nb-1: the interpolating cubic B-spline
 * through them, (a_{b-1} + 4 a_b + a_{b+1}) / 6 = v_b, solved as a
 * tridiagonal system. At b0 = 0 the spline is even (a_-1 = a_1); at an
 * inner start and at the outer end it runs straight (a_{b0-1} = 2 a_b0 -
 * a_{b0+1}, so a_b0 = v_b0). For SPLINE profiles this returns the least-
 * squares spline they were sampled from. Bins that are NaN (nothing fell
 * in them) take the nearest finite bin. Stored per interval i (s in [i,
 * i+1)) as power-basis quads coef[4i ..] = (a, b, c, d), T(i + t) = ((a t
 * + b) t + c) t + d, for i = b0 .. nb-3. Returns 0, or -1 with fewer than
 * 4 intervals or finite bins.
 */
static int template_coefs(const float *prof, int nb, int b0, float *coef, float *fill,
			  double *work)
{
	int finite = 0;
	for (int b = b0; b < nb; b++)
		finite += isfinite(prof[b]) != 0;
	if (finite < 4 || nb - 2 - b0 < 4)
		return -1;
	for (int b = b0; b < nb; b++) {
		if (isfinite(prof[b])) {
			fill[b] = prof[b];
			continue;
		}
		float v = NAN;
		for (int d = 1; d < nb && isnan(v); d++) {
			if (b - d >= b0 && isfinite(prof[b - d]))
				v = prof[b - d];
			else if (b + d < nb && isfinite(prof[b + d]))
				v = prof[b + d];
		}
		fill[b] = v;
	}
	double *cp = work, *dp = cp + nb + 4, *an = dp + nb + 4;
	for (int b = b0; b < nb; b++) {
		double lo = 1, di = 4, up = 1, rhs = 6.0 * fill[b];
		if (b == nb - 1 || (b == b0 && b0 > 0)) {
			lo = up = 0;
			di = 1;
			rhs = fill[b];
		} else if (b == 0) {
			lo = 0;
			up = 2;
		}
		double m = di - (b > b0 ? lo * cp[b - 1] : 0);
		cp[b] = up / m;
		dp[b] = (rhs - (b > b0 ? lo * dp[b - 1] : 0)) / m;
	}
	an[nb - 1] = dp[nb - 1];
	for (int b = nb - 2; b >= b0; b--)
		an[b] = dp[b] - cp[b] * an[b + 1];
	for (int i = b0; i <= nb - 3; i++) {
		double a0 = i > b0 ? an[i - 1] : (b0 == 0 ? an[1] : 2 * an[i] - an[i + 1]);
		double a1 = an[i], a2 = an[i + 1], a3 = an[i + 2];
		coef[4 * i + 0] = (float)((-a0 + 3 * a1 - 3 * a2 + a3) / 6);
		coef[4 * i + 1] = (float)((a0 - 2 * a1 + a2) / 2);
		coef[4 * i + 2] = (float)((a2 - a0) / 2);
		coef[4 * i + 3] = (float)((a0 + 4 * a1 + a2) / 6);
	}
	return 0;
}

/*
 * The least-squares template: the cubic B-spline with knots at the bins
 * and the end conditions of template_coefs (straight at an inner start
 * b0, even about 0 at b0 = 0) fitted to the pixels at s0 <= s < nb - 2,
 * s0 >= b0. Within interval i a pixel at i + t touches coefficients i-1
 * .. i+2 through the four B-spline weights, cubics in t, so the normal
 * equations need only each interval's moments sum t^k (k = 0..6) and sum
 * v t^k (k = 0..3): the pixel loop gathers those (four pixels at a time,
 * in float, into MSETS interleaved sets so that neighbours falling in one
 * interval do not wait on each other), and the banded system is built
 * from them per interval and solved by Cholesky in double.
 */

/* The B-spline weights of a_{i-1} .. a_{i+2} as cubics in t (powers 0..3). */
static const double bspline_poly[4][4] = {
	{1.0 / 6, -3.0 / 6, 3.0 / 6, -1.0 / 6},
	{4.0 / 6, 0, -6.0 / 6, 3.0 / 6},
	{1.0 / 6, 3.0 / 6, 3.0 / 6, -3.0 / 6},
	{0, 0, 0, 1.0 / 6},
};

/* 36 times the t^k coefficients (k = 0..6) of weight p times weight q,
 * p <= q, at row pq_index[p][q]. */
static const signed char bspline_pq[10][7] = {
	{1, -6, 15, -20, 15, -6, 1},
	{4, -12, 6, 17, -27, 15, -3},
	{1, 0, -3, -4, 15, -12, 3},
	{0, 0, 0, 1, -3, 3, -1},
	{16, 0, -48, 24, 36, -36, 9},
	{4, 12, 6, -27, -9, 27, -9},
	{0, 0, 0, 4, 0, -6, 3},
	{1, 6, 15, 12, -9, -18, 9},
	{0, 0, 0, 1, 3, 3, -3},
	{0, 0, 0, 0, 0, 0, 1},
};
static const unsigned char pq_index[4][4] = {
	{0, 1, 2, 3}, {1, 4, 5, 6}, {2, 5, 7, 8}, {3, 6, 8, 9},
};

/* Transpose four lanes of four quantities into four per-lane quads. */
static inline void transpose4(ms_v4f a, ms_v4f b, ms_v4f c, ms_v4f d, ms_v4f out[4])
{
	ms_v4f t0 = __builtin_shuffle(a, b, (ms_v4i){0, 4, 1, 5});
	ms_v4f t1 = __builtin_shuffle(a, b, (ms_v4i){2, 6, 3, 7});
	ms_v4f t2 = __builtin_shuffle(c, d, (ms_v4i){0, 4, 1, 5});
	ms_v4f t3 = __builtin_shuffle(c, d, (ms_v4i){2, 6, 3, 7});
	out[0] = __builtin_shuffle(t0, t2, (ms_v4i){0, 1, 4, 5});
	out[1] = __builtin_shuffle(t0, t2, (ms_v4i){2, 3, 6, 7});
	out[2] = __builtin_shuffle(t1, t3, (ms_v4i){0, 1, 4, 5});
	out[3] = __builtin_shuffle(t1, t3, (ms_v4i){2, 3, 6, 7});
}

/* Floats of the moment sets. */
static size_t moments_len(int nb)
{
	return (size_t)MSETS * MLEN * (nb + 4);
}

/* The moments of the pixels at s0 <= s < nb - 2 about (x, y), per interval. */
static void lsq_moments(const float *roi, int w, double x, double y, float os, double s0,
			int nb, float *mom)
{
	size_t ml = (size_t)MLEN * (nb + 4);
	memset(mom, 0, MSETS * ml * sizeof *mom);
	double rmax = (nb - 2 - 1e-3) / os;
	const ms_v4f lane = {0, 1, 2, 3}, vos = ms_v4_set1(os), zero = ms_v4_set1(0);
	const ms_v4f lo = ms_v4_set1((float)s0), hi = ms_v4_set1((float)(nb - 2));
	int rlo, rhi, clo, chi;
	ms_disc_rows(w, y, rmax, &rlo, &rhi);
	for (int r = rlo; r <= rhi; r++) {
		double dy = r - y;
		if (!ms_disc_row(w, x, dy, rmax * rmax, INFINITY, &clo, &chi))
			continue;
		int n = chi - clo + 1;
		const float *row = roi + (size_t)r * w + clo;
		ms_v4f vdy2 = ms_v4_set1((float)(dy * dy));
		for (int c = 0; c < n; c += 4) {
			ms_v4f dx = ms_v4_set1((float)(clo + c - x)) + lane;
			ms_v4f sv = vos * ms_v4_sqrt(dx * dx + vdy2);
			ms_v4f v = zero;
			if (c + 4 <= n)
				v = ms_v4_load(row + c);
			else
				for (int j = 0; c + j < n; j++)
					v[j] = row[c + j];
			/* lanes past the row or outside [s0, nb - 2) weigh 0 */
			ms_v4i in = (sv >= lo) & (sv < hi) & (lane < ms_v4_set1((float)(n - c)));
			sv = ms_v4_min(ms_v4_max(sv, lo), hi - ms_v4_set1(1e-3f));
			ms_v4i k = __builtin_convertvector(sv, ms_v4i);
			ms_v4f t = sv - __builtin_convertvector(k, ms_v4f);
			ms_v4f m0 = (ms_v4f)((ms_v4i)ms_v4_set1(1) & in);
			v = (ms_v4f)((ms_v4i)v & in);
			ms_v4f m1 = m0 * t, m2 = m1 * t, m3 = m2 * t, m4 = m3 * t, m5 = m4 * t;
			ms_v4f m6 = m5 * t, v1 = v * t, v2 = v1 * t, v3 = v2 * t;
			ms_v4f q0[4], q1[4], q2[4];
			transpose4(m0, m1, m2, m3, q0);
			transpose4(m4, m5, m6, v, q1);
			transpose4(v1, v2, v3, zero, q2);
			int ks[4];
			ms_v4i_store(ks, k);
			for (int j = 0; j < 4; j++) {
				float *a = mom + (size_t)((c + j) & (MSETS - 1)) * ml + (size_t)MLEN * ks[j];
				ms_v4_store(a, ms_v4_load(a) + q0[j]);
				ms_v4_store(a + 4, ms_v4_load(a + 4) + q1[j]);
				ms_v4_store(a + 8, ms_v4_load(a + 8) + q2[j]);
			}
		}
	}
}

/*
 * Solve for the coefficients a[0 .. nb-b0-1] (bins b0 .. nb-1) from the
 * moments; work holds 5 (nb + 4) doubles. -1 when singular.
 */
static int lsq_solve(const float *mom, int b0, int nb, double *work, double *a)
{
	int n = nb - b0;
	size_t ml = (size_t)MLEN * (nb + 4);
	double *band = work, *rhs = work + 4 * (size_t)(nb + 4);
	/* band[4 j + d]: row j, column j + d (d = 0..3), j from 0 (bin b0) */
	memset(band, 0, 4 * (size_t)(nb + 4) * sizeof *band);
	memset(rhs, 0, (size_t)(nb + 4) * sizeof *rhs);
	for (int i = b0; i <= nb - 3; i++) {
		ms_v4f v0 = {0, 0, 0, 0}, v1 = v0, v2 = v0;
		for (int st = 0; st < MSETS; st++) {
			const float *ms = mom + (size_t)st * ml + (size_t)MLEN * i;
			v0 += ms_v4_load(ms);
			v1 += ms_v4_load(ms + 4);
			v2 += ms_v4_load(ms + 8);
		}
		double m[MLEN];
		for (int k = 0; k < 4; k++) {
			m[k] = v0[k];
			m[4 + k] = v1[k];
			m[8 + k] = v2[k];
		}
		if (!(m[0] > 0))
			continue;
		int j0 = i - 1 - b0;
		if (i > b0) {
			for (int p = 0; p < 4; p++) {
				double r = 0;
				for (int k = 0; k < 4; k++)
					r += bspline_poly[p][k] * m[7 + k];
				rhs[j0 + p] += r;
				for (int q = p; q < 4; q++) {
					const signed char *c36 = bspline_pq[pq_index[p][q]];
					double g = 0;
					for (int k = 0; k < 7; k++)
						g += c36[k] * m[k];
					band[4 * (j0 + p) + (q - p)] += g / 36;
				}
			}
			continue;
		}
		/* the first interval: a_{b0-1} folded into its neighbours by the
		 * end condition (straight: 2 a_b0 - a_b0+1; even: a_1) */
		double c[4][4];
		memcpy(c, bspline_poly, sizeof c);
		for (int k = 0; k < 4; k++) {
			if (b0 > 0) {
				c[1][k] += 2 * c[0][k];
				c[2][k] -= c[0][k];
			} else {
				c[2][k] += c[0][k];
			}
		}
		for (int p = 1; p < 4; p++) {
			double r = 0;
			for (int k = 0; k < 4; k++)
				r += c[p][k] * m[7 + k];
			rhs[j0 + p] += r;
			for (int q = p; q < 4; q++) {
				double g = 0;
				for (int k = 0; k < 4; k++)
					for (int l = 0; l < 4; l++)
						g += c[p][k] * c[q][l] * m[k + l];
				band[4 * (j0 + p) + (q - p)] += g;
			}
		}
	}
	/* a whisper of ridge keeps bins that no pixel reaches determined */
	double tr = 0;
	for (int j = 0; j < n; j++)
		tr += band[4 * j];
	if (!(tr > 0))
		return -1;
	for (int j = 0; j < n; j++)
		band[4 * j] += 1e-9 * tr / n;
	/* banded Cholesky: U (U^T U = the matrix) over the band, row by row */
	for (int j = 0; j < n; j++) {
		double d = band[4 * j];
		for (int k = j - 3 < 0 ? 0 : j - 3; k < j; k++) {
			double l = band[4 * k + (j - k)];
			d -= l * l;
		}
		if (!(d > 1e-12 * tr / n))
			return -1;
		d = sqrt(d);
		band[4 * j] = d;
		for (int m = 1; m <= 3 && j + m < n; m++) {
			double v = band[4 * j + m];
			for (int k = j + m - 3 < 0 ? 0 : j + m - 3; k < j; k++)
				v -= band[4 * k + (j - k)] * band[4 * k + (j + m - k)];
			band[4 * j + m] = v / d;
		}
	}
	for (int j = 0; j < n; j++) {
		double v = rhs[j];
		for (int k = j - 3 < 0 ? 0 : j - 3; k < j; k++)
			v -= band[4 * k + (j - k)] * a[k];
		a[j] = v / band[4 * j];
	}
	for (int j = n - 1; j >= 0; j--) {
		double v = a[j];
		for (int m = 1; m <= 3 && j + m < n; m++)
			v -= band[4 * j + m] * a[j + m];
		a[j] = v / band[4 * j];
	}
	return 0;
}

int ms_radial_template(const float *roi, int w, double x, double y, int oversample, double rmin,
		       int nb, float *prof, float *scratch)
{
	for (int b = 0; b < nb; b++)
		prof[b] = NAN;
	if (nb < 1 || (size_t)nb > ms_profile_max_len(w, oversample) || !isfinite(x) ||
	    !isfinite(y) || !(rmin < w))
		return -1;
	double s0 = oversample * fmax(rmin, 0);
	int b0 = (int)floor(s0);
	if (nb - 2 - b0 < 4)
		return -1;
	/* scratch: the moment sets, then (8-byte aligned) the solver's doubles */
	float *mom = scratch;
	uintptr_t wa = (uintptr_t)(mom + moments_len(nb));
	double *work = (double *)((wa + 7) & ~(uintptr_t)7), *a = work + 5 * (size_t)(nb + 4);
	lsq_moments(roi, w, x, y, (float)oversample, s0, nb, mom);
	if (lsq_solve(mom, b0, nb, work, a) < 0)
		return -1;
	/* the bin values whose interpolating spline (template_coefs, with the
	 * same end conditions) is this one */
	int n = nb - b0;
	for (int j = 0; j < n; j++) {
		double lo = j > 0 ? a[j - 1] : b0 > 0 ? 2 * a[0] - a[1] : a[1];
		double v = j == n - 1 || (j == 0 && b0 > 0) ? a[j] : (lo + 4 * a[j] + a[j + 1]) / 6;
		prof[b0 + j] = (float)v;
	}
	return 0;
}

/* Sums of one Gauss-Newton step: J^T W J (xx, xy, yy) and J^T W e (x, y). */
struct gn {
	double hxx, hxy, hyy, bx, by;
};

/* Four coefficient quads, one per lane, turned into a, b, c, d vectors. */
static inline void gather_coefs(const float *coef, const int k[4], ms_v4f *a, ms_v4f *b,
				ms_v4f *c, ms_v4f *d)
{
	ms_v4f r0 = ms_v4_load(coef + 4 * k[0]), r1 = ms_v4_load(coef + 4 * k[1]);
	ms_v4f r2 = ms_v4_load(coef + 4 * k[2]), r3 = ms_v4_load(coef + 4 * k[3]);
	ms_v4f t0 = __builtin_shuffle(r0, r1, (ms_v4i){0, 4, 1, 5});
	ms_v4f t1 = __builtin_shuffle(r0, r1, (ms_v4i){2, 6, 3, 7});
	ms_v4f t2 = __builtin_shuffle(r2, r3, (ms_v4i){0, 4, 1, 5});
	ms_v4f t3 = __builtin_shuffle(r2, r3, (ms_v4i){2, 6, 3, 7});
	*a = __builtin_shuffle(t0, t2, (ms_v4i){0, 1, 4, 5});
	*b = __builtin_shuffle(t0, t2, (ms_v4i){2, 3, 6, 7});
	*c = __builtin_shuffle(t1, t3, (ms_v4i){0, 1, 4, 5});
	*d = __builtin_shuffle(t1, t3, (ms_v4i){2, 3, 6, 7});
}

/* The five sums of one row, four lanes each. */
struct gnv {
	ms_v4f hxx, hxy, hyy, bx, by;
};

/*
 * The core: pixels near the centre weigh clamp((s - s0) ih, 0, 1) (a ramp
 * from s0 over 1/ih bins), or with ih = 0 nothing below bin b0 and 1 from
 * it; the template is read from bin b0 up. Rows that reach below bin shi
 * need the weights.
 */
struct core {
	float s0, ih;
	int b0;
	double shi;
};

/*
 * Four pixels of a Gauss-Newton pass: px at x offsets dx (x - cx) on a row
 * at offset dy (vdy, its square vdy2). The radius and template are
 * computed in lanes and the template's coefficients gathered per lane
 * (one 16-byte load each); lanes outside in count nothing. masked: the
 * lanes and the core apply (a hard cut, or with ramp the core's weights);
 * inlined with constant weighted, masked and ramp, so that the common
 * case (unweighted, no core, a whole vector) carries none of them.
 */
static inline __attribute__((always_inline)) void gn4(ms_v4f px, ms_v4f dx, ms_v4f vdy,
						      ms_v4f vdy2, float os, const float *coef,
						      const struct core *k0, int ni, int weighted,
						      ms_v4i in, int masked, int ramp, struct gnv *v)
{
	const ms_v4f vos = ms_v4_set1(os), one = ms_v4_set1(1);
	ms_v4f r2 = ms_v4_max(dx * dx + vdy2, ms_v4_set1(1e-12f));
	ms_v4f ri = ms_v4_rsqrt(r2), s = vos * (r2 * ri);
	ms_v4f cw = one;
	if (masked) {
		if (ramp)
			cw = ms_v4_min(ms_v4_max((s - ms_v4_set1(k0->s0)) * ms_v4_set1(k0->ih),
						 ms_v4_set1(0)), one);
		else
			in &= s >= ms_v4_set1((float)k0->b0);
		s = ms_v4_max(s, ms_v4_set1((float)k0->b0));
	}
	ms_v4i k = __builtin_convertvector(ms_v4_min(s, ms_v4_set1((float)(ni - 1))), ms_v4i);
	ms_v4f t = s - __builtin_convertvector(k, ms_v4f);
	int ks[4];
	ms_v4i_store(ks, k);
	ms_v4f a, b, c, d;
	gather_coefs(coef, ks, &a, &b, &c, &d);
	ms_v4f T = ((a * t + b) * t + c) * t + d;
	ms_v4f at = a * t;
	ms_v4f gr = (((at + at + at) + (b + b)) * t + c) * (vos * ri);
	ms_v4f e = px - T, jx = gr * dx, jy = gr * vdy;
	if (masked) {
		jx = (ms_v4f)((ms_v4i)jx & in);
		jy = (ms_v4f)((ms_v4i)jy & in);
	}
	ms_v4f wjx = jx, wjy = jy;
	if (masked && ramp) {
		wjx *= cw;
		wjy *= cw;
	}
	if (weighted) {
		ms_v4f wt = one / ms_v4_max(T, ms_v4_set1(1e-6f));
		wjx *= wt;
		wjy *= wt;
	}
	v->hxx += wjx * jx;
	v->hxy += wjx * jy;
	v->hyy += wjy * jy;
	v->bx += wjx * e;
	v->by += wjy * e;
}

/* One row: n pixels from x offset x0, whole vectors, then the tail (whose
 * lanes need the mask; a row far from the core passes the cut anyway). */
static inline __attribute__((always_inline)) void gn_row(const float *row, int n, float x0,
							 float dy, float os, const float *coef,
							 const struct core *k0, int ni, int weighted,
							 int masked, int ramp, struct gnv *v)
{
	const ms_v4f lane = {0, 1, 2, 3};
	const ms_v4i all = {-1, -1, -1, -1};
	ms_v4f vdy = ms_v4_set1(dy), vdy2 = vdy * vdy, dx = ms_v4_set1(x0) + lane;
	int i = 0;
	for (; i + 4 <= n; i += 4) {
		gn4(ms_v4_load(row + i), dx, vdy, vdy2, os, coef, k0, ni, weighted, all, masked,
		    ramp, v);
		dx += ms_v4_set1(4);
	}
	if (i < n) {
		ms_v4f px = {0, 0, 0, 0};
		for (int j = 0; j < n - i; j++)
			px[j] = row[i + j];
		ms_v4i in = lane < ms_v4_set1((float)(n - i));
		gn4(px, dx, vdy, vdy2, os, coef, k0, ni, weighted, in, 1, masked && ramp, v);
	}
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(MS_RADIALFIT_4WIDE)
#include <immintrin.h>

/*
 * The common row (unweighted, clear of any core) eight pixels at a time,
 * for CPUs with AVX2, which most that run a rig have: the same arithmetic
 * as gn4, twice as wide, with the eight coefficient quads transposed in
 * the two 128-bit halves. Returns the pixels done (a multiple of 8); the
 * rest is gn_row's. Its sums add to v's lanes in another order than
 * gn4's, so results differ from the 4-wide path's in the last bits only.
 */
__attribute__((target("avx2"))) static int gn_row8(const float *row, int n, float x0, float dy,
						    float os, const float *coef, int ni,
						    struct gnv *v)
{
	const __m256 vos = _mm256_set1_ps(os), vdy = _mm256_set1_ps(dy);
	const __m256 vdy2 = vdy * vdy, tiny = _mm256_set1_ps(1e-12f);
	const __m256 kmax = _mm256_set1_ps((float)(ni - 1));
	const __m256 half = _mm256_set1_ps(0.5f), three_halves = _mm256_set1_ps(1.5f);
	__m256 dx = _mm256_set1_ps(x0) + _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
	__m256 hxx = _mm256_setzero_ps(), hxy = hxx, hyy = hxx, bx = hxx, by = hxx;
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 px = _mm256_loadu_ps(row + i);
		__m256 r2 = _mm256_max_ps(dx * dx + vdy2, tiny);
		__m256 y0 = _mm256_rsqrt_ps(r2);
		__m256 ri = y0 * (three_halves - half * r2 * y0 * y0);
		__m256 s = vos * (r2 * ri);
		__m256i k = _mm256_cvttps_epi32(_mm256_min_ps(s, kmax));
		__m256 t = s - _mm256_cvtepi32_ps(k);
		int ks[8];
		_mm256_storeu_si256((__m256i *)ks, k);
		/* lane j's quad (a, b, c, d) is coef + 4 ks[j]; halves hold lanes 0-3, 4-7 */
		__m256 q0 = _mm256_loadu2_m128(coef + 4 * ks[4], coef + 4 * ks[0]);
		__m256 q1 = _mm256_loadu2_m128(coef + 4 * ks[5], coef + 4 * ks[1]);
		__m256 q2 = _mm256_loadu2_m128(coef + 4 * ks[6], coef + 4 * ks[2]);
		__m256 q3 = _mm256_loadu2_m128(coef + 4 * ks[7], coef + 4 * ks[3]);
		__m256 t0 = _mm256_unpacklo_ps(q0, q1), t1 = _mm256_unpackhi_ps(q0, q1);
		__m256 t2 = _mm256_unpacklo_ps(q2, q3), t3 = _mm256_unpackhi_ps(q2, q3);
		__m256 a = _mm256_shuffle_ps(t0, t2, 0x44), b = _mm256_shuffle_ps(t0, t2, 0xEE);
		__m256 c = _mm256_shuffle_ps(t1, t3, 0x44), d = _mm256_shuffle_ps(t1, t3, 0xEE);
		__m256 T = ((a * t + b) * t + c) * t + d;
		__m256 at = a * t;
		__m256 gr = (((at + at + at) + (b + b)) * t + c) * (vos * ri);
		__m256 e = px - T, jx = gr * dx, jy = gr * vdy;
		hxx += jx * jx;
		hxy += jx * jy;
		hyy += jy * jy;
		bx += jx * e;
		by += jy * e;
		dx += _mm256_set1_ps(8);
	}
	v->hxx += (ms_v4f)(_mm256_castps256_ps128(hxx) + _mm256_extractf128_ps(hxx, 1));
	v->hxy += (ms_v4f)(_mm256_castps256_ps128(hxy) + _mm256_extractf128_ps(hxy, 1));
	v->hyy += (ms_v4f)(_mm256_castps256_ps128(hyy) + _mm256_extractf128_ps(hyy, 1));
	v->bx += (ms_v4f)(_mm256_castps256_ps128(bx) + _mm256_extractf128_ps(bx, 1));
	v->by += (ms_v4f)(_mm256_castps256_ps128(by) + _mm256_extractf128_ps(by, 1));
	return i;
}
#endif

/* The common row: eight lanes where the CPU has them, then four. */
static void gn_row_plain(const float *row, int n, float x0, float dy, float os,
			 const float *coef, const struct core *k0, int ni, struct gnv *v)
{
	int i = 0;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(MS_RADIALFIT_4WIDE)
	if (__builtin_cpu_supports("avx2"))
		i = gn_row8(row, n, x0, dy, os, coef, ni, v);
#endif
	gn_row(row + i, n - i, x0 + (float)i, dy, os, coef, k0, ni, 0, 0, 0, v);
}

/*
 * J^T W J and J^T W e over the pixels at s < ni about (x, y), weighed
 * about the core as k0 says. Per-row sums are float, the totals double.
 * The ROI must be finite (the pipeline has flagged any other before this).
 */
static void gn_pass(const float *roi, int w, double x, double y, float os, const float *coef,
		    const struct core *core, int ni, int weighted, struct gn *g)
{
	/* a local copy, which the stores to g cannot alias */
	const struct core kc = *core, *k0 = &kc;
	double shi = kc.shi > 0 ? (kc.shi + 1.0) / os : -1;
	memset(g, 0, sizeof *g);
	double rmax = (ni - 1e-3) / os, rmax2 = rmax * rmax;
	/* only the rectangle centred on (x, y) that fits the ROI: a pixel set
	 * symmetric about the centre, so that what the template gets wrong
	 * (a radial error) pulls every way equally */
	double hx = fmin(x + 0.5, w - 0.5 - x), hy = fmin(y + 0.5, w - 0.5 - y);
	int rlo, rhi, clo, chi;
	ms_disc_rows(w, y, fmin(rmax, hy), &rlo, &rhi);
	for (int r = rlo; r <= rhi; r++) {
		double dy = r - y;
		if (!ms_disc_row(w, x, dy, rmax2, hx, &clo, &chi))
			continue;
		int n = chi - clo + 1;
		const float *row = roi + (size_t)r * w + clo;
		struct gnv v;
		memset(&v, 0, sizeof v);
		float x0 = (float)(clo - x), fdy = (float)dy;
		/* a row that can reach inside the core needs the mask */
		int masked = fabs(dy) < shi;
		if (!masked) {
			if (weighted)
				gn_row(row, n, x0, fdy, os, coef, k0, ni, 1, 0, 0, &v);
			else
				gn_row_plain(row, n, x0, fdy, os, coef, k0, ni, &v);
		} else if (k0->ih > 0) {
			if (weighted)
				gn_row(row, n, x0, fdy, os, coef, k0, ni, 1, 1, 1, &v);
			else
				gn_row(row, n, x0, fdy, os, coef, k0, ni, 0, 1, 1, &v);
		} else {
			if (weighted)
				gn_row(row, n, x0, fdy, os, coef, k0, ni, 1, 1, 0, &v);
			else
				gn_row(row, n, x0, fdy, os, coef, k0, ni, 0, 1, 0, &v);
		}
		g->hxx += ms_v4_hsum(v.hxx);
		g->hxy += ms_v4_hsum(v.hxy);
		g->hyy += ms_v4_hsum(v.hyy);
		g->bx += ms_v4_hsum(v.bx);
		g->by += ms_v4_hsum(v.by);
	}
}

int ms_radial_fit(const float *roi, int w, double x, double y, const float *prof, int nb,
		  int oversample, double rmin, int iters, int weighted, float *scratch, double *nx,
		  double *ny)
{
	return ms_radial_fit_taper(roi, w, x, y, prof, nb, oversample, rmin, 0, iters, weighted,
				   scratch, nx, ny);
}

int ms_radial_fit_taper(const float *roi, int w, double x, double y, const float *prof, int nb,
			int oversample, double rmin, double taper, int iters, int weighted,
			float *scratch, double *nx, double *ny)
{
	*nx = *ny = NAN;
	if (nb < 1 || (size_t)nb > ms_profile_max_len(w, oversample))
		return -1;
	if (!isfinite(x) || !isfinite(y) || x < 0 || x > w - 1 || y < 0 || y > w - 1)
		return -1;
	if (!(rmin < w) || !(taper >= 0 && taper < w))
		return -1;
	float *coef = scratch, *fill = coef + 4 * (nb + 4);
	uintptr_t wa = (uintptr_t)(fill + nb + 4);
	double *work = (double *)((wa + 7) & ~(uintptr_t)7);
	struct core k0 = {0, 0, 0, 0};
	if (taper > 0) {
		/* the ramp starts inside the template: from the bin below it */
		double s0 = oversample * fmax(rmin, 0);
		k0 = (struct core){(float)s0, (float)(1 / (oversample * taper)), (int)floor(s0),
				   s0 + oversample * taper};
	} else if (rmin > 0) {
		int b0 = (int)ceil(oversample * rmin - 1e-9);
		k0 = (struct core){(float)b0, 0, b0, b0};
	}
	int b0 = k0.b0;
	if (template_coefs(prof, nb, b0, coef, fill, work) < 0)
		return -1;
	int ni = nb - 2;
	float os = (float)oversample;
	double cx = x, cy = y;
	for (int it = 0; it < iters; it++) {
		struct gn g;
		/* every step but the last only brings the centre close, and the
		 * inner half of the radius (a quarter of the pixels) does that */
		int nu = it + 1 < iters ? (ni + b0) / 2 : ni;
		if (nu < b0 + 4)
			nu = ni;
		gn_pass(roi, w, cx, cy, os, coef, &k0, nu, weighted, &g);
		double det = g.hxx * g.hyy - g.hxy * g.hxy;
		if (!(det > 0) || !isfinite(det) || !isfinite(g.bx) || !isfinite(g.by))
			return -1;
		/* delta = -H^-1 b, since the model's derivative in c is -J */
		double ddx = -(g.hyy * g.bx - g.hxy * g.by) / det;
		double ddy = -(g.hxx * g.by - g.hxy * g.bx) / det;
		/* a step beyond a pixel means the template does not fit */
		if (!(fabs(ddx) <= 1 && fabs(ddy) <= 1))
			return -1;
		cx += ddx;
		cy += ddy;
	}
	if (!(cx >= 0 && cx <= w - 1 && cy >= 0 && cy <= w - 1))
		return -1;
	*nx = cx;
	*ny = cy;
	return 0;
}
