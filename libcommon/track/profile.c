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
size_t ms_profile_max_len(int w, int oversample)
{
	return (size_t)(3 * w / 4 + 4) * oversample;
}

size_t ms_profile_scratch_len(int w, int oversample)
{
	int nb = (int)ms_profile_max_len(w, oversample);
	return 5 * ms_pad4(w + 4) + 4 + NSETS * 2 * acc_len(nb);
}

/*
 * BILINEAR: qtrk's profile. Bin b is the mean of the image interpolated
 * bilinearly at radius b / oversample from the centre, at about one
 * sample per pixel of circumference (at least 8), evenly spaced in angle
 * (the first at half a step, so that no two bins share a ray); samples
 * outside the ROI are left out. No pixel is assigned to a bin, so the
 * profile is as smooth in the centre as the interpolation.
 */
static void polar_profile(const float *roi, int w, double x, double y, int os, int nb, float *prof)
{
	float lim = (float)(w - 1);
	for (int b = 0; b < nb; b++) {
		double r = (double)b / os;
		int na = b == 0 ? 1 : (int)ceil(2 * M_PI * r);
		if (na < 8 && b > 0)
			na = 8;
		/* the angle steps by rotation: one cos and sin per bin */
		double da = 2 * M_PI / na, ca = cos(da), sa = sin(da);
		double ux = cos(da / 2), uy = sin(da / 2);
		float sum = 0;
		int n = 0;
		for (int j = 0; j < na; j++) {
			float px = (float)(x + r * ux), py = (float)(y + r * uy);
			double t = ux * ca - uy * sa;
			uy = ux * sa + uy * ca;
			ux = t;
			if (!(px >= 0 && px <= lim && py >= 0 && py <= lim))
				continue;
			int ix = (int)px, iy = (int)py;
			ix = ix > w - 2 ? w - 2 : ix;
			iy = iy > w - 2 ? w - 2 : iy;
			float tx = px - ix, ty = py - iy;
			const float *p = roi + (size_t)iy * w + ix;
			float top = p[0] + tx * (p[1] - p[0]), bot = p[w] + tx * (p[w + 1] - p[w]);
			sum += top + ty * (bot - top);
			n++;
		}
		prof[b] = n ? sum / n : NAN;
	}
}

/*
 * AREA: MagTrack's nearest-bin rule applied to each pixel's area rather
 * than its centre: the pixel is split into 4 x 4 sub-pixels, each binned
 * by round(s) of its own centre, so a pixel straddling two annuli
 * contributes to both by the share of its area in each. Sixteen times the
 * work of NEAREST; a reference for what the other weightings approximate.
 */
#define AREA_SUB 4
static void area_profile(const float *roi, int w, double x, double y, int os, int nb, float *prof,
			 float *scratch)
{
	float *sum = scratch, *wsum = scratch + nb + 1;
	memset(scratch, 0, 2 * ((size_t)nb + 1) * sizeof *scratch);
	double rmax = (nb + 1.0) / os;
	int rlo = (int)floor(y - rmax), rhi = (int)ceil(y + rmax);
	int clo = (int)floor(x - rmax), chi = (int)ceil(x + rmax);
	rlo = rlo < 0 ? 0 : rlo;
	clo = clo < 0 ? 0 : clo;
	rhi = rhi > w - 1 ? w - 1 : rhi;
	chi = chi > w - 1 ? w - 1 : chi;
	const float sub = 1.0f / AREA_SUB, w16 = sub * sub;
	for (int r = rlo; r <= rhi; r++)
		for (int c = clo; c <= chi; c++) {
			float v = roi[(size_t)r * w + c];
			for (int i = 0; i < AREA_SUB; i++) {
				float dy = (float)(r - y) + (i + 0.5f) * sub - 0.5f;
				for (int j = 0; j < AREA_SUB; j++) {
					float dx = (float)(c - x) + (j + 0.5f) * sub - 0.5f;
					float sv = os * sqrtf(dx * dx + dy * dy);
					int k = (int)nearbyintf(sv);
					if (k < nb) {
						sum[k] += w16 * v;
						wsum[k] += w16;
					}
				}
			}
		}
	for (int b = 0; b < nb; b++)
		prof[b] = wsum[b] > 0 ? sum[b] / wsum[b] : NAN;
}

int ms_radial_profile(const float *roi, int w, double x, double y, int oversample,
		      enum ms_weighting wt, float *prof, float *scratch)
{
	return ms_radial_profile_n(roi, w, x, y, oversample, wt, (int)ms_profile_len(w, oversample),
				   prof, scratch);
}

int ms_radial_profile_n(const float *roi, int w, double x, double y, int oversample,
			enum ms_weighting wt, int nb, float *prof, float *scratch)
{
	if (!isfinite(x) || !isfinite(y)) {
		for (int b = 0; b < nb; b++)
			prof[b] = NAN;
		return -1;
	}
	if (wt == MS_PROFILE_BILINEAR) {
		polar_profile(roi, w, x, y, oversample, nb, prof);
		return 0;
	}
	if (wt == MS_PROFILE_AREA) {
		area_profile(roi, w, x, y, oversample, nb, prof, scratch);
		return 0;
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

	int rlo, rhi, clo, chi;
	ms_disc_rows(w, y, rmax, &rlo, &rhi);
	for (int r = rlo; r <= rhi; r++) {
		double dy = r - y;
		if (!ms_disc_row(w, x, dy, rmax2, INFINITY, &clo, &chi))
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
