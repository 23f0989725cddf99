/*
 * zlookup: z from a radial profile and a bead's Z-LUT planes. Both sides
 * are normalised once (the LUT planes at tracker creation), so a Pearson
 * coefficient is one dot product per plane and qtrk's negative SSD one
 * difference-square sum; the sub-plane position is MagTrack's weighted
 * 7-point parabola over plane index, mapped linearly into the plane z
 * values (which need not be evenly spaced). See kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <string.h>

#include "track/vec.h"

size_t ms_z_stride(size_t plen)
{
	return ms_pad4(plen > 1 ? plen - 1 : 1);
}

int ms_z_normalise(const float *prof, size_t plen, float *out)
{
	return ms_z_normalise_from(prof, plen, 1, NULL, out);
}

void ms_z_bin_weights(size_t plen, enum ms_z_weights zw, float *sw)
{
	size_t stride = ms_z_stride(plen);
	for (size_t i = 0; i < stride; i++)
		sw[i] = i + 1 < plen ? (zw == MS_ZW_RADIUS ? sqrtf((float)(i + 1)) : 1.0f) : 0.0f;
}

int ms_z_normalise_from(const float *prof, size_t plen, size_t first, const float *sw,
			float *out)
{
	size_t n = plen - 1, stride = ms_z_stride(plen);
	double mean = 0, ss = 0, wsum = 0;
	memset(out, 0, stride * sizeof *out);
	size_t i0 = first > 1 ? first - 1 : 0;
	if (i0 >= n)
		return -1;
	/* the weighted mean, then sqrt(w) (p - mean) scaled to unit norm */
	for (size_t i = i0; i < n; i++)
		if (isfinite(prof[i + 1])) {
			double wi = sw ? (double)sw[i] * sw[i] : 1;
			mean += wi * prof[i + 1];
			wsum += wi;
		}
	if (!(wsum > 0))
		return -1;
	mean /= wsum;
	for (size_t i = i0; i < n; i++)
		if (isfinite(prof[i + 1])) {
			double d = (prof[i + 1] - mean) * (sw ? sw[i] : 1);
			ss += d * d;
		}
	if (!(ss > 0) || !isfinite(ss))
		return -1;
	double inv = 1 / sqrt(ss);
	for (size_t i = i0; i < n; i++)
		out[i] = isfinite(prof[i + 1])
			? (float)((prof[i + 1] - mean) * (sw ? sw[i] : 1) * inv) : 0.0f;
	return 0;
}

/*
 * A stored plane v (weighted-centred over all bins, unit norm) re-centred
 * over bins i0.. is v - c sqrt(w) with c = sum sqrt(w) v / sum w there;
 * its squared norm is sum v^2 - c sum sqrt(w) v. stats gets c and the
 * inverse norm.
 */
static void sub_stats(const float *v, const float *sw, size_t i0, size_t n, float *c,
		      float *inv)
{
	double sv = 0, vv = 0, ww = 0;
	for (size_t i = i0; i < n; i++) {
		double s = sw ? sw[i] : 1;
		sv += s * v[i];
		vv += (double)v[i] * v[i];
		ww += s * s;
	}
	double cc = sv / ww, var = vv - cc * sv;
	*c = (float)cc;
	*inv = var > 1e-20 ? (float)(1 / sqrt(var)) : 0.0f;
}

size_t ms_z_prefix_len(size_t plen)
{
	return 2 * plen;
}

void ms_z_prefix(const float *planes, size_t nplanes, size_t plen, const float *sw,
		 double *prefix)
{
	size_t stride = ms_z_stride(plen), n = plen - 1, len = ms_z_prefix_len(plen);
	for (size_t k = 0; k < nplanes; k++) {
		const float *v = planes + k * stride;
		double *p1 = prefix + k * len, *p2 = p1 + plen, a = 0, b = 0;
		for (size_t i = 0; i < n; i++) {
			p1[i] = a;
			p2[i] = b;
			a += (sw ? sw[i] : 1) * (double)v[i];
			b += (double)v[i] * v[i];
		}
		p1[n] = a;
		p2[n] = b;
	}
}

void ms_z_scores_from(const float *pn, const float *planes, size_t nplanes, size_t plen,
		      size_t first, const float *sw, const double *prefix, enum ms_z_method m,
		      float *scores, float *stats)
{
	size_t stride = ms_z_stride(plen), n = plen - 1, i0 = first > 1 ? first - 1 : 0;
	double ww = 0;
	for (size_t i = i0; i < n; i++)
		ww += sw ? (double)sw[i] * sw[i] : 1;
	for (size_t k = 0; k < nplanes; k++) {
		const float *pl = planes + k * stride;
		if (prefix) {
			/* the sums over bins i0.. from the plane's prefix sums */
			const double *p1 = prefix + k * ms_z_prefix_len(plen), *p2 = p1 + plen;
			double sv = p1[n] - p1[i0], vv = p2[n] - p2[i0], cc = sv / ww;
			double var = vv - cc * sv;
			stats[2 * k] = (float)cc;
			stats[2 * k + 1] = var > 1e-20 ? (float)(1 / sqrt(var)) : 0.0f;
		} else {
			sub_stats(pl, sw, i0, n, &stats[2 * k], &stats[2 * k + 1]);
		}
		/* pn is zero below i0 and weighted-centred above it, so the
		 * plane's re-centring term drops out of the dot product */
		double r = ms_dot(pn, pl, stride) * stats[2 * k + 1];
		scores[k] = (float)(m == MS_Z_SSD ? 2 * r - 2 : r);
	}
}

void ms_z_gram_from(const float *planes, size_t nplanes, size_t plen, size_t first,
		    const float *sw, const float *stats, size_t lo, size_t hi, float *gram)
{
	size_t stride = ms_z_stride(plen), n = plen - 1, i0 = first > 1 ? first - 1 : 0;
	double W = 0;
	for (size_t i = i0; i < n; i++)
		W += sw ? (double)sw[i] * sw[i] : 1;
	for (size_t k = lo; k < hi && k < nplanes; k++)
		for (size_t d = 0; d < 4; d++) {
			if (k + d >= nplanes) {
				gram[4 * k + d] = 0;
				continue;
			}
			const float *a = planes + k * stride, *b = planes + (k + d) * stride;
			double dot = 0;
			for (size_t i = i0; i < n; i++)
				dot += (double)a[i] * b[i];
			dot -= W * stats[2 * k] * stats[2 * (k + d)];
			gram[4 * k + d] = (float)(dot * stats[2 * k + 1] * stats[2 * (k + d) + 1]);
		}
}

static float neg_ssd(const float *a, const float *b, size_t n)
{
	ms_v4f s = {0, 0, 0, 0};
	for (size_t i = 0; i < n; i += 4) {
		ms_v4f d = ms_v4_load(a + i) - ms_v4_load(b + i);
		s += d * d;
	}
	return -ms_v4_hsum(s);
}

void ms_z_scores(const float *pn, const float *planes, size_t nplanes, size_t stride,
		 enum ms_z_method m, float *scores)
{
	/* stride is a multiple of 4 with zero padding on both sides, so the
	 * lanes past the last bin add nothing */
	for (size_t k = 0; k < nplanes; k++) {
		const float *pl = planes + k * stride;
		scores[k] = m == MS_Z_SSD ? neg_ssd(pn, pl, stride) : ms_dot(pn, pl, stride);
	}
}

double ms_z_fit(const float *scores, size_t nplanes, int n_local, const double *z_nm,
		unsigned *flags, double *plane)
{
	return ms_z_fit_parabola(scores, nplanes, ms_z_argmax(scores, 0, nplanes), n_local, z_nm,
				 flags, plane);
}

double ms_z_fit_parabola(const float *scores, size_t nplanes, size_t best, int n_local,
			 const double *z_nm, unsigned *flags, double *plane)
{
	int n = (int)nplanes, h = n_local / 2;
	if (plane)
		*plane = NAN;
	if (!isfinite(scores[best])) {
		*flags |= MS_TRK_Z_BAD;
		return NAN;
	}
	if ((int)best <= h || (int)best >= n - h - 1) {
		*flags |= MS_TRK_Z_EDGE;
		return NAN;
	}
	double v = ms_parabolic_vertex(scores, n, (double)best, n_local);
	if (!isfinite(v)) {
		*flags |= MS_TRK_Z_BAD;
		return NAN;
	}
	if (v < 0 || v > n - 1) {
		*flags |= MS_TRK_Z_EDGE;
		return NAN;
	}
	if (plane)
		*plane = v;
	size_t j = (size_t)v;
	if (j >= nplanes - 1)
		return z_nm[nplanes - 1];
	double f = v - j;
	return z_nm[j] + f * (z_nm[j + 1] - z_nm[j]);
}

size_t ms_z_argmax(const float *scores, size_t lo, size_t hi)
{
	size_t best = lo;
	for (size_t k = lo + 1; k < hi; k++)
		if (scores[k] > scores[best])
			best = k;
	return best;
}

void ms_z_gram(const float *planes, size_t nplanes, size_t stride, float *gram)
{
	for (size_t k = 0; k < nplanes; k++)
		for (size_t d = 0; d < 4; d++)
			gram[4 * k + d] = k + d < nplanes
				? ms_dot(planes + k * stride, planes + (k + d) * stride, stride) : 0.0f;
}

/* Catmull-Rom weights of planes k-1 .. k+2 at t in [0, 1] past plane k. */
static void cr_weights(double t, double c[4])
{
	double t2 = t * t, t3 = t2 * t;
	c[0] = 0.5 * (-t3 + 2 * t2 - t);
	c[1] = 0.5 * (3 * t3 - 5 * t2 + 2);
	c[2] = 0.5 * (-3 * t3 + 4 * t2 + t);
	c[3] = 0.5 * (t3 - t2);
}

struct zcurve {
	const float *s, *g;
	size_t kmax;		/* last interval start allowed (u = kmax + 1 is its end) */
	enum ms_z_method m;
};

/* The match of the interpolated plane at fractional index u in [1, n-2]. */
static double zmatch(const struct zcurve *zc, double u)
{
	size_t k = (size_t)u;
	if (k > zc->kmax)
		k = zc->kmax;
	double c[4];
	cr_weights(u - (double)k, c);
	const float *s = zc->s + k - 1, *g = zc->g + 4 * (k - 1);
	double sp = c[0] * s[0] + c[1] * s[1] + c[2] * s[2] + c[3] * s[3];
	/* c^T G c with G symmetric: diagonal plus twice the band above it */
	double q = 0;
	for (int a = 0; a < 4; a++) {
		const float *ga = g + 4 * a;
		q += c[a] * (c[a] * ga[0] + 2 * (a + 1 < 4 ? c[a + 1] * ga[1] : 0) +
			     2 * (a + 2 < 4 ? c[a + 2] * ga[2] : 0) + 2 * (a + 3 < 4 ? c[a + 3] * ga[3] : 0));
	}
	if (zc->m == MS_Z_SSD)
		return 2 * sp - q - 1;
	return q > 0 ? sp / sqrt(q) : -INFINITY;
}

#define ZGRID 16		/* trial points per plane interval */

double ms_z_fit_cubic(const float *scores, const float *gram, size_t nplanes, size_t best,
		      enum ms_z_method m, const double *z_nm, unsigned *flags, double *plane)
{
	if (plane)
		*plane = NAN;
	if (!isfinite(scores[best])) {
		*flags |= MS_TRK_Z_BAD;
		return NAN;
	}
	if (nplanes < 4 || best < 1 || best > nplanes - 2) {
		*flags |= MS_TRK_Z_EDGE;
		return NAN;
	}
	/* u = best + 1 is evaluated at the end of interval best, so that no
	 * score beyond best + 2 is read */
	struct zcurve zc = {scores, gram, best < nplanes - 3 ? best : nplanes - 3, m};
	double lo = best > 1 ? (double)best - 1 : 1;
	double hi = best + 1 < nplanes - 2 ? (double)best + 1 : (double)nplanes - 2;
	double ub = best, fb = zmatch(&zc, ub);
	int steps = (int)lround((hi - lo) * ZGRID);
	for (int i = 0; i <= steps; i++) {
		double u = lo + (double)i / ZGRID, f = zmatch(&zc, u);
		if (f > fb) {
			fb = f;
			ub = u;
		}
	}
	if (!isfinite(fb)) {
		*flags |= MS_TRK_Z_BAD;
		return NAN;
	}
	/* golden section inside the grid cell pair around the best trial */
	const double gr = 0.5 * (sqrt(5.0) - 1);
	double a = fmax(ub - 1.0 / ZGRID, lo), b = fmin(ub + 1.0 / ZGRID, hi);
	double x1 = b - gr * (b - a), x2 = a + gr * (b - a);
	double f1 = zmatch(&zc, x1), f2 = zmatch(&zc, x2);
	while (b - a > 1e-4) {
		if (f1 >= f2) {
			b = x2;
			x2 = x1;
			f2 = f1;
			x1 = b - gr * (b - a);
			f1 = zmatch(&zc, x1);
		} else {
			a = x1;
			x1 = x2;
			f1 = f2;
			x2 = a + gr * (b - a);
			f2 = zmatch(&zc, x2);
		}
	}
	double u = 0.5 * (a + b);
	/* pinned against the usable range: the true match lies beyond it */
	if (u <= 1 + 1e-3 || u >= (double)nplanes - 2 - 1e-3) {
		*flags |= MS_TRK_Z_EDGE;
		return NAN;
	}
	if (plane)
		*plane = u;
	size_t j = (size_t)u;
	return z_nm[j] + (u - (double)j) * (z_nm[j + 1] - z_nm[j]);
}
