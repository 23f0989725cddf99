/*
 * com: getting a ROI into floats and its coarse centre: the copy out of a
 * u8/u16 frame (with the median taken from a histogram of the integer
 * pixels on the way, which costs two cheap passes instead of a sort), the
 * float median and mean, and the centre of mass with MagTrack's
 * |I - background| weights. See kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <string.h>

#include "track/vec.h"

/*
 * Histogram medians. A u8 ROI is counted directly; a u16 ROI is counted by
 * (v - min) >> s, with s the smallest shift that fits its range into the
 * coarse bins, which is exact in one pass whenever the range fits and
 * otherwise leaves one or two coarse bins to resolve in a second pass.
 * The coarse bins number an eighth of the pixels (256 to U16_BINS): the
 * bins are cleared and scanned for every ROI, and more bins than that
 * cost more than the narrower second pass they save. Counters are kept
 * in interleaved copies (pixel c counts in copy c % copies): ROI pixels
 * cluster in a few bins, and a single set of counters would make each
 * increment wait for the previous one.
 */
#define U16_BINS 2048
#define FINE_MAX 512		/* values per fine pass: two coarse bins of <= 256 */

/* Bin holding 0-based rank k of an nb-bin histogram; *below gets the count
 * in the bins before it. */
static size_t hist_rank(const uint32_t *h, size_t nb, size_t k, size_t *below)
{
	size_t acc = 0, b;
	for (b = 0; b + 1 < nb; b++) {
		if (acc + h[b] > k)
			break;
		acc += h[b];
	}
	if (below)
		*below = acc;
	return b;
}

static double median_u8(const uint8_t *p, size_t stride, int w, uint32_t *hist)
{
	int w4 = w & ~3;
	memset(hist, 0, 4 * 256 * sizeof *hist);
	for (int r = 0; r < w; r++) {
		const uint8_t *row = p + r * stride;
		int c = 0;
		for (; c < w4; c += 4) {
			hist[row[c]]++;
			hist[256 + row[c + 1]]++;
			hist[512 + row[c + 2]]++;
			hist[768 + row[c + 3]]++;
		}
		for (; c < w; c++)
			hist[row[c]]++;
	}
	for (int b = 0; b < 256; b++)
		hist[b] += hist[256 + b] + hist[512 + b] + hist[768 + b];
	size_t k = (size_t)w * w / 2;
	return 0.5 * ((double)hist_rank(hist, 256, k - 1, NULL) + hist_rank(hist, 256, k, NULL));
}

/* Smallest or largest value of p in [lo, hi]; for the rare median that
 * straddles empty coarse bins. */
static unsigned extreme_in(const uint16_t *p, size_t stride, int w, unsigned lo, unsigned hi,
			   int want_max)
{
	unsigned best = want_max ? lo : hi;
	for (int r = 0; r < w; r++)
		for (int c = 0; c < w; c++) {
			unsigned v = p[r * stride + c];
			if (v >= lo && v <= hi && (want_max ? v > best : v < best))
				best = v;
		}
	return best;
}

static double median_u16(const uint16_t *p, size_t stride, int w, unsigned vmin, unsigned vmax,
			 uint32_t *hist)
{
	unsigned s = 0, bins = (unsigned)(w * w / 8);
	bins = bins < 256 ? 256 : bins > U16_BINS ? U16_BINS : bins;
	while ((vmax - vmin) >> s >= bins)
		s++;
	size_t nb = ((vmax - vmin) >> s) + 1;
	uint32_t *h0 = hist, *h1 = hist + U16_BINS;
	memset(h0, 0, nb * sizeof *hist);
	memset(h1, 0, nb * sizeof *hist);
	for (int r = 0; r < w; r++) {
		const uint16_t *row = p + r * stride;
		for (int c = 0; c < w; c += 2) {	/* w is even */
			h0[(row[c] - vmin) >> s]++;
			h1[(row[c + 1] - vmin) >> s]++;
		}
	}
	for (size_t b = 0; b < nb; b++)
		h0[b] += h1[b];
	size_t n = (size_t)w * w, k2 = n / 2, k1 = k2 - 1, below1, below2;
	size_t b1 = hist_rank(h0, nb, k1, &below1), b2 = hist_rank(h0, nb, k2, &below2);
	if (s == 0)
		return vmin + 0.5 * ((double)b1 + b2);
	unsigned base = vmin + ((unsigned)b1 << s);
	if (b2 > b1 + 1) {
		/* empty bins between the two middle ranks: k1 is the largest value
		 * of bin b1, k2 the smallest of bin b2 */
		unsigned v1 = extreme_in(p, stride, w, base, base + (1u << s) - 1, 1);
		unsigned l2 = vmin + ((unsigned)b2 << s);
		unsigned v2 = extreme_in(p, stride, w, l2, l2 + (1u << s) - 1, 0);
		return 0.5 * ((double)v1 + v2);
	}
	/* fine counts of the values base .. base + 2^(s+1) - 1; a pixel outside
	 * adds 0 to some counter, which keeps the loop free of branches */
	unsigned span = 2u << s, mask = span - 1;
	uint32_t *f0 = hist + 2 * U16_BINS, *f1 = f0 + FINE_MAX;
	memset(f0, 0, 2 * FINE_MAX * sizeof *hist);
	for (int r = 0; r < w; r++) {
		const uint16_t *row = p + r * stride;
		for (int c = 0; c < w; c += 2) {
			unsigned d0 = row[c] - base, d1 = row[c + 1] - base;
			f0[d0 & mask] += d0 < span;
			f1[d1 & mask] += d1 < span;
		}
	}
	for (unsigned b = 0; b < span; b++)
		f0[b] += f1[b];
	unsigned v1 = base + (unsigned)hist_rank(f0, span, k1 - below1, NULL);
	unsigned v2 = base + (unsigned)hist_rank(f0, span, k2 - below1, NULL);
	return 0.5 * ((double)v1 + v2);
}

int ms_roi_load(const void *frame, enum ms_pixfmt fmt, size_t stride, int x0, int y0, int w,
		float *dst, double *median, uint32_t *hist)
{
	int w4 = w & ~3;
	if (fmt == MS_PIX_U8) {
		const uint8_t *p = (const uint8_t *)frame + (size_t)y0 * stride + x0;
		for (int r = 0; r < w; r++) {
			const uint8_t *row = p + r * stride;
			float *d = dst + (size_t)r * w;
			int c = 0;
			for (; c < w4; c += 4)
				ms_v4_store(d + c, ms_v4_from_u8(row + c));
			for (; c < w; c++)
				d[c] = row[c];
		}
		if (median)
			*median = median_u8(p, stride, w, hist);
		return 0;
	}
	if (fmt == MS_PIX_U16) {
		const uint16_t *p = (const uint16_t *)frame + (size_t)y0 * stride + x0;
		ms_v4f lo = ms_v4_set1(65535), hi = ms_v4_set1(0);
		float tlo = 65535, thi = 0;
		for (int r = 0; r < w; r++) {
			const uint16_t *row = p + r * stride;
			float *d = dst + (size_t)r * w;
			int c = 0;
			for (; c < w4; c += 4) {
				ms_v4f v = ms_v4_from_u16(row + c);
				lo = ms_v4_min(lo, v);
				hi = ms_v4_max(hi, v);
				ms_v4_store(d + c, v);
			}
			for (; c < w; c++) {
				d[c] = row[c];
				tlo = d[c] < tlo ? d[c] : tlo;
				thi = d[c] > thi ? d[c] : thi;
			}
		}
		if (median) {
			for (int j = 0; j < 4; j++) {
				tlo = lo[j] < tlo ? lo[j] : tlo;
				thi = hi[j] > thi ? hi[j] : thi;
			}
			*median = median_u16(p, stride, w, (unsigned)tlo, (unsigned)thi, hist);
		}
		return 0;
	}
	return -1;
}

/* Hoare-partition quickselect: afterwards a[k] holds rank k, smaller left. */
static void select_k(float *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		/* median of three as pivot, so sorted input stays linear */
		float x = a[lo], y = a[mid], z = a[hi];
		float piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		size_t i = lo, j = hi;
		for (;;) {
			while (a[i] < piv)
				i++;
			while (a[j] > piv)
				j--;
			if (i >= j)
				break;
			float t = a[i];
			a[i] = a[j];
			a[j] = t;
			i++;
			j--;
		}
		if (k <= j)
			hi = j;
		else
			lo = j + 1;
	}
}

double ms_median_f32(const float *v, size_t n, float *scratch)
{
	if (n == 0)
		return NAN;
	for (size_t i = 0; i < n; i++)
		if (isnan(v[i]))
			return NAN;
	memcpy(scratch, v, n * sizeof *v);
	size_t k = n / 2;
	select_k(scratch, n, k);
	double hi = scratch[k];
	if (n % 2)
		return hi;
	float lo = scratch[0];
	for (size_t i = 1; i < k; i++)
		if (scratch[i] > lo)
			lo = scratch[i];
	return 0.5 * (lo + hi);
}

double ms_mean_f32(const float *v, size_t n)
{
	if (n == 0)
		return NAN;
	/* float partial sums over short runs keep the vector loop exact enough
	 * (<= 64 values of <= 65535 per lane) before each goes into a double */
	double s = 0;
	size_t i = 0;
	while (i + 4 <= n) {
		ms_v4f acc = {0, 0, 0, 0};
		size_t end = i + 256 <= n ? i + 256 : n & ~(size_t)3;
		for (; i < end; i += 4)
			acc += ms_v4_load(v + i);
		s += (double)acc[0] + acc[1] + acc[2] + acc[3];
	}
	for (; i < n; i++)
		s += v[i];
	return s / n;
}

int ms_roi_flat(const float *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (!(v[i] == v[0]))
			return 0;
	return 1;
}

static inline ms_v4f v4_abs(ms_v4f v)
{
	const ms_v4i m = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
	return (ms_v4f)((ms_v4i)v & m);
}

int ms_com(const float *roi, int w, enum ms_com_bg mode, double bg, double *x, double *y,
	   double *mass)
{
	/* Column sums in float (at most 256 rows of at most 65535 each: well
	 * inside float's exact range for this purpose), the moments in double. */
	float col[256 + 4];
	int w4 = w & ~3, use_abs = mode != MS_COM_BG_NONE;
	float b = use_abs ? (float)bg : 0.0f;
	ms_v4f vb = ms_v4_set1(b);
	double m = 0, my = 0, mx = 0;
	memset(col, 0, sizeof col);
	for (int r = 0; r < w; r++) {
		const float *row = roi + (size_t)r * w;
		ms_v4f acc = {0, 0, 0, 0};
		float tail = 0;
		int c = 0;
		for (; c < w4; c += 4) {
			ms_v4f v = ms_v4_load(row + c) - vb;
			if (use_abs)
				v = v4_abs(v);
			ms_v4_store(col + c, ms_v4_load(col + c) + v);
			acc += v;
		}
		for (; c < w; c++) {
			float v = row[c] - b;
			if (use_abs)
				v = fabsf(v);
			col[c] += v;
			tail += v;
		}
		double rs = (double)ms_v4_hsum(acc) + tail;
		m += rs;
		my += rs * r;
	}
	for (int c = 0; c < w; c++)
		mx += (double)col[c] * c;
	if (mass)
		*mass = m;
	if (!(m > 0) || !isfinite(m) || !isfinite(mx) || !isfinite(my)) {
		*x = *y = NAN;
		return -1;
	}
	*x = mx / m;
	*y = my / m;
	return 0;
}
