/*
 * profile: the radial profile about a sub-pixel centre: MagTrack's
 * nearest-bin mean, or each pixel spread over the bins around its radius
 * with linear or cubic B-spline weights. Per row, the bin index and
 * weights of every pixel inside the profile's disc are computed four lanes
 * at a time (sqrt and rounding vectorise; scattering into bins cannot),
 * then the pixels are scattered into interleaved sets of accumulators so
 * that neighbouring pixels landing in the same bin do not wait on each
 * other's store. Rows and columns outside the disc are never visited. See
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

/* Pixels scatter into NSETS interleaved accumulator sets (pixel i of a row
 * into set i % NSETS): along a row near the top or bottom of the disc many
 * neighbours share a bin, and one set would chain every update on the
 * store before it. A set is (sum, weight) float pairs, bin after bin, so
 * one 4-lane add updates two neighbouring bins: one per pixel for linear,
 * two for cubic. Float sums are exact enough here: a bin holds at most a
 * few thousand pixels. */
#define NSETS 8

typedef float v2f __attribute__((vector_size(8)));

/* Accumulators per set: bins -1 .. nb+3, stored from index 0 (the cubic
 * kernel reaches one bin below floor(s) and two above, and s is capped at
 * nb+1). */
static size_t acc_len(int nb)
{
	return (size_t)nb + 5;
}

/* Layout: idx row (ints), 4 weight rows, pad to 16 bytes, NSETS accumulator
 * sets of (sum, weight) pairs. */
size_t ms_profile_scratch_len(int w, int oversample)
{
	int nb = (int)ms_profile_len(w, oversample);
	return 5 * ms_pad4(w + 4) + 4 + NSETS * 2 * acc_len(nb);
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
	size_t rl = ms_pad4(w + 4);
	int *idx = (int *)scratch;
	float *w0 = scratch + rl, *w1 = w0 + rl, *w2 = w1 + rl, *w3 = w2 + rl;
	uintptr_t a = (uintptr_t)(scratch + 5 * rl);
	float *acc = (float *)((a + 15) & ~(uintptr_t)15);
	size_t na = 2 * acc_len(nb);	/* floats per set */
	memset(acc, 0, NSETS * na * sizeof *acc);

	float os = (float)oversample;
	/* Only pixels at s < nb + 1 can reach bin nb-1 (the cubic kernel's
	 * reach); farther ones are capped at a radius whose weights all land
	 * in dropped bins: nb for nearest and linear, nb + 1 for cubic. */
	double rmax = (nb + 1.0) / oversample, rmax2 = rmax * rmax;
	const ms_v4f lane = {0, 1, 2, 3}, vos = ms_v4_set1(os);
	const ms_v4f magic = ms_v4_set1(12582912.0f);	/* 1.5 * 2^23: round to even */
	const ms_v4f cap = ms_v4_set1((float)(wt == MS_PROFILE_CUBIC ? nb + 1 : nb));
	const ms_v4f one = ms_v4_set1(1), sixth = ms_v4_set1(1.0f / 6);

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
			/* idx is stored +1: accumulator j holds bin j-1 */
			if (wt == MS_PROFILE_NEAREST) {
				ms_v4f k = (sv + magic) - magic;
				ms_v4i_store(idx + i, __builtin_convertvector(k, ms_v4i) + 1);
				continue;
			}
			ms_v4i k = __builtin_convertvector(sv, ms_v4i);
			ms_v4f t = sv - __builtin_convertvector(k, ms_v4f), u = one - t;
			ms_v4i_store(idx + i, k + 1);
			if (wt == MS_PROFILE_LINEAR) {
				ms_v4_store(w0 + i, u);
				ms_v4_store(w1 + i, t);
			} else {
				/* uniform cubic B-spline at distances 1+t, t, 1-t, 2-t */
				ms_v4f t2 = t * t, t3 = t2 * t;
				ms_v4_store(w0 + i, u * u * u * sixth);
				ms_v4_store(w1 + i, (3 * t3 - 6 * t2 + 4) * sixth);
				ms_v4_store(w2 + i, (-3 * t3 + 3 * t2 + 3 * t + 1) * sixth);
				ms_v4_store(w3 + i, t3 * sixth);
			}
		}
		const float *row = roi + (size_t)r * w + clo;
		if (wt == MS_PROFILE_NEAREST) {
			for (int i = 0; i < n; i++) {
				float *set = acc + (size_t)(i & (NSETS - 1)) * na + 2 * idx[i];
				v2f t;
				memcpy(&t, set, sizeof t);
				t += (v2f){row[i], 1};
				memcpy(set, &t, sizeof t);
			}
		} else if (wt == MS_PROFILE_LINEAR) {
			for (int i = 0; i < n; i++) {
				float *set = acc + (size_t)(i & (NSETS - 1)) * na + 2 * idx[i];
				float v = row[i], f0 = w0[i], f1 = w1[i];
				ms_v4_store(set, ms_v4_load(set) + (ms_v4f){f0 * v, f0, f1 * v, f1});
			}
		} else {
			for (int i = 0; i < n; i++) {
				float *set = acc + (size_t)(i & (NSETS - 1)) * na + 2 * idx[i];
				float v = row[i], f0 = w0[i], f1 = w1[i], f2 = w2[i], f3 = w3[i];
				ms_v4_store(set - 2, ms_v4_load(set - 2) + (ms_v4f){f0 * v, f0, f1 * v, f1});
				ms_v4_store(set + 2, ms_v4_load(set + 2) + (ms_v4f){f2 * v, f2, f3 * v, f3});
			}
		}
	}
	for (int b = 0; b < nb; b++) {
		double sum = 0, wsum = 0;
		for (int j = 0; j < NSETS; j++) {
			sum += acc[(size_t)j * na + 2 * (b + 1)];
			wsum += acc[(size_t)j * na + 2 * (b + 1) + 1];
		}
		prof[b] = wsum > 0 ? (float)(sum / wsum) : NAN;
	}
	return 0;
}
