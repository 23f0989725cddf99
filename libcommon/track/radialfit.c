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
 * reads 16 contiguous bytes. See kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "track/vec.h"

/* Scratch layout: coefficient quads [4 (nb + 4)], filled bins [nb + 4],
 * then doubles for the spline solve: 3 x [nb + 4]. */
size_t ms_radial_fit_scratch_len(int w, int oversample)
{
	size_t nb = ms_profile_max_len(w, oversample);
	return 4 * (nb + 4) + (nb + 4) + 2 * 3 * (nb + 4) + 4;
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
 * Four pixels of a Gauss-Newton pass: px at x offsets dx (x - cx) on a row
 * at offset dy (vdy, its square vdy2). The radius and template are
 * computed in lanes and the template's coefficients gathered per lane
 * (one 16-byte load each); lanes outside in count nothing. Inlined with
 * constant weighted and masked, so that the common case (unweighted, no
 * core, a whole vector) carries neither.
 */
static inline __attribute__((always_inline)) void gn4(ms_v4f px, ms_v4f dx, ms_v4f vdy,
						      ms_v4f vdy2, float os, const float *coef,
						      int b0, int ni, int weighted, ms_v4i in,
						      int masked, struct gnv *v)
{
	const ms_v4f vos = ms_v4_set1(os);
	ms_v4f r2 = ms_v4_max(dx * dx + vdy2, ms_v4_set1(1e-12f));
	ms_v4f ri = ms_v4_rsqrt(r2), s = vos * (r2 * ri);
	if (masked) {
		in &= s >= ms_v4_set1((float)b0);
		s = ms_v4_max(s, ms_v4_set1((float)b0));
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
	if (weighted) {
		ms_v4f wt = ms_v4_set1(1) / ms_v4_max(T, ms_v4_set1(1e-6f));
		wjx *= wt;
		wjy *= wt;
	}
	v->hxx += wjx * jx;
	v->hxy += wjx * jy;
	v->hyy += wjy * jy;
	v->bx += wjx * e;
	v->by += wjy * e;
}

/* One row: n pixels from x offset x0, whole vectors, then the tail. */
static inline __attribute__((always_inline)) void gn_row(const float *row, int n, float x0,
							 float dy, float os, const float *coef,
							 int b0, int ni, int weighted, int masked,
							 struct gnv *v)
{
	const ms_v4f lane = {0, 1, 2, 3};
	const ms_v4i all = {-1, -1, -1, -1};
	ms_v4f vdy = ms_v4_set1(dy), vdy2 = vdy * vdy, dx = ms_v4_set1(x0) + lane;
	int i = 0;
	for (; i + 4 <= n; i += 4) {
		gn4(ms_v4_load(row + i), dx, vdy, vdy2, os, coef, b0, ni, weighted, all, masked,
		    v);
		dx += ms_v4_set1(4);
	}
	if (i < n) {
		ms_v4f px = {0, 0, 0, 0};
		for (int j = 0; j < n - i; j++)
			px[j] = row[i + j];
		ms_v4i in = lane < ms_v4_set1((float)(n - i));
		gn4(px, dx, vdy, vdy2, os, coef, b0, ni, weighted, in, 1, v);
	}
}

/*
 * J^T W J and J^T W e over the pixels at b0 <= s < ni about (x, y). Per-
 * row sums are float, the totals double. The ROI must be finite (the
 * pipeline has flagged any other before this).
 */
static void gn_pass(const float *roi, int w, double x, double y, float os, const float *coef,
		    int b0, int ni, int weighted, struct gn *g)
{
	memset(g, 0, sizeof *g);
	double rmax = (ni - 1e-3) / os, rmax2 = rmax * rmax;
	/* only the rectangle centred on (x, y) that fits the ROI: a pixel set
	 * symmetric about the centre, so that what the template gets wrong
	 * (a radial error) pulls every way equally */
	double hx = fmin(x + 0.5, w - 0.5 - x), hy = fmin(y + 0.5, w - 0.5 - y);
	int rlo = (int)ceil(y - fmin(rmax, hy)), rhi = (int)floor(y + fmin(rmax, hy));
	if (rlo < 0)
		rlo = 0;
	if (rhi > w - 1)
		rhi = w - 1;
	for (int r = rlo; r <= rhi; r++) {
		double dy = r - y, rest = rmax2 - dy * dy;
		if (rest < 0)
			continue;
		double half = fmin(sqrt(rest), hx);
		int clo = (int)ceil(x - half), chi = (int)floor(x + half);
		if (clo < 0)
			clo = 0;
		if (chi > w - 1)
			chi = w - 1;
		if (clo > chi)
			continue;
		int n = chi - clo + 1;
		const float *row = roi + (size_t)r * w + clo;
		struct gnv v;
		memset(&v, 0, sizeof v);
		float x0 = (float)(clo - x), fdy = (float)dy;
		/* a row that can reach inside bin b0 needs the mask */
		int masked = b0 > 0 && fabs(dy) < (b0 + 1.0) / os;
		if (weighted)
			if (masked)
				gn_row(row, n, x0, fdy, os, coef, b0, ni, 1, 1, &v);
			else
				gn_row(row, n, x0, fdy, os, coef, b0, ni, 1, 0, &v);
		else if (masked)
			gn_row(row, n, x0, fdy, os, coef, b0, ni, 0, 1, &v);
		else
			gn_row(row, n, x0, fdy, os, coef, b0, ni, 0, 0, &v);
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
	*nx = *ny = NAN;
	if (nb < 1 || (size_t)nb > ms_profile_max_len(w, oversample))
		return -1;
	if (!isfinite(x) || !isfinite(y) || x < 0 || x > w - 1 || y < 0 || y > w - 1)
		return -1;
	float *coef = scratch, *fill = coef + 4 * (nb + 4);
	uintptr_t wa = (uintptr_t)(fill + nb + 4);
	double *work = (double *)((wa + 7) & ~(uintptr_t)7);
	int b0 = rmin > 0 ? (int)ceil(oversample * rmin - 1e-9) : 0;
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
		gn_pass(roi, w, cx, cy, os, coef, b0, nu, weighted, &g);
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
