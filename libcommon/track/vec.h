/*
 * vec: the small set of 4-lane float operations the tracking kernels are
 * written in. gcc at -O2 vectorises almost no loop whose length is not a
 * known multiple of the vector width, never reorders a float reduction
 * without -ffast-math, and keeps an errno call behind sqrtf; writing the
 * hot loops in GCC vector extensions gets SIMD code at the project's
 * ordinary flags while IEEE semantics (NaN tests) stay intact. Also the
 * walk over the pixels of a disc that the radial kernels share. Internal
 * to libcommon/track.
 */
#ifndef MS_TRACK_VEC_H
#define MS_TRACK_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef float ms_v4f __attribute__((vector_size(16)));
typedef int ms_v4i __attribute__((vector_size(16)));

static inline ms_v4f ms_v4_load(const float *p)
{
	ms_v4f v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void ms_v4_store(float *p, ms_v4f v)
{
	memcpy(p, &v, sizeof v);
}

static inline void ms_v4i_store(int *p, ms_v4i v)
{
	memcpy(p, &v, sizeof v);
}

static inline ms_v4f ms_v4_set1(float x)
{
	return (ms_v4f){x, x, x, x};
}

static inline ms_v4f ms_v4_sqrt(ms_v4f v)
{
#ifdef __SSE2__
	return (ms_v4f)_mm_sqrt_ps((__m128)v);
#else
	return (ms_v4f){sqrtf(v[0]), sqrtf(v[1]), sqrtf(v[2]), sqrtf(v[3])};
#endif
}

/* 1/sqrt(v) to about 23 bits: the hardware estimate and one Newton step
 * (four multiplies instead of a square root and a division). v > 0. */
static inline ms_v4f ms_v4_rsqrt(ms_v4f v)
{
#ifdef __SSE2__
	ms_v4f y = (ms_v4f)_mm_rsqrt_ps((__m128)v);
	return y * (ms_v4_set1(1.5f) - ms_v4_set1(0.5f) * v * y * y);
#else
	return (ms_v4f){1 / sqrtf(v[0]), 1 / sqrtf(v[1]), 1 / sqrtf(v[2]), 1 / sqrtf(v[3])};
#endif
}

/* Four u16 / u8 pixels as floats (gcc scalarises __builtin_convertvector
 * from narrow integers, hence SSE2 where there is SSE2). */
static inline ms_v4f ms_v4_from_u16(const uint16_t *p)
{
#ifdef __SSE2__
	__m128i v = _mm_loadl_epi64((const __m128i *)(const void *)p);
	return (ms_v4f)_mm_cvtepi32_ps(_mm_unpacklo_epi16(v, _mm_setzero_si128()));
#else
	return (ms_v4f){p[0], p[1], p[2], p[3]};
#endif
}

static inline ms_v4f ms_v4_from_u8(const uint8_t *p)
{
#ifdef __SSE2__
	int32_t x;
	memcpy(&x, p, 4);
	__m128i v = _mm_cvtsi32_si128(x), z = _mm_setzero_si128();
	return (ms_v4f)_mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(v, z), z));
#else
	return (ms_v4f){p[0], p[1], p[2], p[3]};
#endif
}

static inline ms_v4f ms_v4_min(ms_v4f a, ms_v4f b)
{
#ifdef __SSE2__
	return (ms_v4f)_mm_min_ps((__m128)a, (__m128)b);
#else
	return (ms_v4f){a[0] < b[0] ? a[0] : b[0], a[1] < b[1] ? a[1] : b[1],
			a[2] < b[2] ? a[2] : b[2], a[3] < b[3] ? a[3] : b[3]};
#endif
}

static inline ms_v4f ms_v4_max(ms_v4f a, ms_v4f b)
{
#ifdef __SSE2__
	return (ms_v4f)_mm_max_ps((__m128)a, (__m128)b);
#else
	return (ms_v4f){a[0] > b[0] ? a[0] : b[0], a[1] > b[1] ? a[1] : b[1],
			a[2] > b[2] ? a[2] : b[2], a[3] > b[3] ? a[3] : b[3]};
#endif
}

static inline float ms_v4_hsum(ms_v4f v)
{
	return (v[0] + v[2]) + (v[1] + v[3]);
}

/* Sum of a[i]*b[i]; two accumulators hide the add latency. */
static inline float ms_dot(const float *a, const float *b, size_t n)
{
	ms_v4f s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		s0 += ms_v4_load(a + i) * ms_v4_load(b + i);
		s1 += ms_v4_load(a + i + 4) * ms_v4_load(b + i + 4);
	}
	for (; i + 4 <= n; i += 4)
		s0 += ms_v4_load(a + i) * ms_v4_load(b + i);
	float s = ms_v4_hsum(s0 + s1);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* The rows of a w x w ROI that a disc of radius rmax about row y reaches. */
static inline void ms_disc_rows(int w, double y, double rmax, int *rlo, int *rhi)
{
	*rlo = (int)ceil(y - rmax);
	*rhi = (int)floor(y + rmax);
	if (*rlo < 0)
		*rlo = 0;
	if (*rhi > w - 1)
		*rhi = w - 1;
}

/*
 * The columns clo..chi of ROI row r (dy = r - y) within the disc of radius
 * sqrt(rmax2) about (x, y) and within hx of x (INFINITY: no such limit);
 * 0 when there are none.
 */
static inline int ms_disc_row(int w, double x, double dy, double rmax2, double hx, int *clo,
			      int *chi)
{
	double rest = rmax2 - dy * dy;
	if (rest < 0)
		return 0;
	double half = fmin(sqrt(rest), hx);
	*clo = (int)ceil(x - half);
	*chi = (int)floor(x + half);
	if (*clo < 0)
		*clo = 0;
	if (*chi > w - 1)
		*chi = w - 1;
	return *clo <= *chi;
}

/* Round up to a multiple of 4 lanes, so that row buffers need no tail loop. */
static inline size_t ms_pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

#endif
