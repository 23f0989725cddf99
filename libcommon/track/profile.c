/*
 * profile: the radial profile about a sub-pixel centre, MagTrack's
 * nearest-bin mean or a linear split between the two bins around each
 * pixel's radius. Per row, the bin index (and split fraction) of every
 * pixel inside the profile's disc is computed four lanes at a time
 * (sqrt and rounding vectorise; scattering into bins cannot), then the
 * pixels are scattered into interleaved sets of accumulators so that
 * neighbouring pixels landing in the same bin do not wait on each other's
 * store. Rows and columns outside the disc are never visited. See
 * kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "track/vec.h"

size_t ms_profile_len(int w, int oversample)
{
	return (size_t)(w / 2) * oversample;
}

/* Layout: idx row (ints), frac row, then 2 x (sum, weight) x (nb + 2) doubles. */
/* Pixels scatter into NSETS interleaved accumulator sets (pixel i of a row
 * into set i % NSETS): along a row near the top or bottom of the disc many
 * neighbours share a bin, and one set would chain every update on the
 * store before it. Each accumulator is a (sum, weight) pair of doubles,
 * updated with one 2-lane add. */
#define NSETS 8

typedef double v2d __attribute__((vector_size(16)));

/* Layout: idx row (ints), frac row, pad to 16 bytes, NSETS x (nb + 2) v2d. */
size_t ms_profile_scratch_len(int w, int oversample)
{
	size_t nb = ms_profile_len(w, oversample);
	return 2 * ms_pad4(w + 4) + 4 + NSETS * 4 * (nb + 2);
}

int ms_radial_profile(const float *roi, int w, double x, double y, int oversample,
		      enum ms_weighting wt, float *prof, float *scratch)
{
	int nb = (int)ms_profile_len(w, oversample);
	if (!isfinite(x) || !isfinite(y)) {
		for (int b = 0; b < nb; b++)
			prof[b] = NAN;
		return -1;
	}
	int *idx = (int *)scratch;
	float *frac = scratch + ms_pad4(w + 4);
	uintptr_t a = (uintptr_t)(scratch + 2 * ms_pad4(w + 4));
	v2d *acc = (v2d *)((a + 15) & ~(uintptr_t)15);
	size_t na = (size_t)nb + 2;
	memset(acc, 0, NSETS * na * sizeof *acc);

	float os = (float)oversample;
	/* pixels at s >= nb + 1 cannot reach bin nb-1 in either mode */
	double rmax = (nb + 1.0) / oversample, rmax2 = rmax * rmax;
	const ms_v4f lane = {0, 1, 2, 3}, vos = ms_v4_set1(os);
	const ms_v4f magic = ms_v4_set1(12582912.0f);	/* 1.5 * 2^23: round to even */
	const ms_v4f cap = ms_v4_set1((float)nb);
	int linear = wt == MS_PROFILE_LINEAR;

	int rlo = (int)ceil(y - rmax), rhi = (int)floor(y + rmax);
	if (rlo < 0)
		rlo = 0;
	if (rhi > w - 1)
		rhi = w - 1;
	for (int r = rlo; r <= rhi; r++) {
		double dy = r - y, rest = rmax2 - dy * dy;
		if (rest < 0)
			continue;
		double half = sqrt(rest);
		int clo = (int)ceil(x - half), chi = (int)floor(x + half);
		if (clo < 0)
			clo = 0;
		if (chi > w - 1)
			chi = w - 1;
		if (clo > chi)
			continue;
		ms_v4f vdy2 = ms_v4_set1((float)(dy * dy));
		int n = chi - clo + 1;
		for (int i = 0; i < n; i += 4) {
			ms_v4f dx = ms_v4_set1((float)(clo + i - x)) + lane;
			ms_v4f sv = vos * ms_v4_sqrt(dx * dx + vdy2);
			/* beyond-range pixels clamp to bin nb, which is dropped */
			ms_v4i big = sv > cap;
			sv = (ms_v4f)(((ms_v4i)sv & ~big) | ((ms_v4i)cap & big));
			if (linear) {
				ms_v4i k = __builtin_convertvector(sv, ms_v4i);
				ms_v4i_store(idx + i, k);
				ms_v4_store(frac + i, sv - __builtin_convertvector(k, ms_v4f));
			} else {
				ms_v4f k = (sv + magic) - magic;
				ms_v4i_store(idx + i, __builtin_convertvector(k, ms_v4i));
			}
		}
		const float *row = roi + (size_t)r * w + clo;
		if (linear) {
			for (int i = 0; i < n; i++) {
				v2d *set = acc + (size_t)(i & (NSETS - 1)) * na;
				double f = frac[i], v = row[i];
				set[idx[i]] += (v2d){(1 - f) * v, 1 - f};
				set[idx[i] + 1] += (v2d){f * v, f};
			}
		} else {
			for (int i = 0; i < n; i++) {
				v2d *set = acc + (size_t)(i & (NSETS - 1)) * na;
				set[idx[i]] += (v2d){row[i], 1};
			}
		}
	}
	for (int b = 0; b < nb; b++) {
		v2d t = acc[b];
		for (int j = 1; j < NSETS; j++)
			t += acc[(size_t)j * na + b];
		prof[b] = t[1] > 0 ? (float)(t[0] / t[1]) : NAN;
	}
	return 0;
}
