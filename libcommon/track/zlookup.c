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
	size_t n = plen - 1, stride = ms_z_stride(plen), nf = 0;
	double mean = 0, ss = 0;
	memset(out, 0, stride * sizeof *out);
	for (size_t i = 0; i < n; i++)
		if (isfinite(prof[i + 1])) {
			mean += prof[i + 1];
			nf++;
		}
	if (nf == 0)
		return -1;
	mean /= nf;
	for (size_t i = 0; i < n; i++)
		if (isfinite(prof[i + 1])) {
			double d = prof[i + 1] - mean;
			ss += d * d;
		}
	if (!(ss > 0) || !isfinite(ss))
		return -1;
	double inv = 1 / sqrt(ss);
	for (size_t i = 0; i < n; i++)
		out[i] = isfinite(prof[i + 1]) ? (float)((prof[i + 1] - mean) * inv) : 0.0f;
	return 0;
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
	int n = (int)nplanes, h = n_local / 2;
	if (plane)
		*plane = NAN;
	size_t best = 0;
	for (size_t k = 1; k < nplanes; k++)
		if (scores[k] > scores[best])
			best = k;
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
