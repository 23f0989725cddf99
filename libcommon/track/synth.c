/*
 * synth: analytic ring beads and a small seeded RNG (xoshiro256**) for
 * tests and the benchmark. See synth.h.
 */
#include "track/synth.h"

#include <math.h>

static void ring_params(double z_nm, double *k, double *s2)
{
	double zu = z_nm / 1000.0;
	double period = 5.0 + 0.4 * (zu + 6.0);	/* 5.0 .. 9.8 px */
	double sig = 9.0 + 0.6 * (zu + 6.0);	/* 9 .. 16.2 px */
	*k = 2 * M_PI / period;
	*s2 = sig * sig;
}

double ms_synth_ring(double r, double z_nm)
{
	double k, s2;
	ring_params(z_nm, &k, &s2);
	return 1.0 + 0.8 * cos(k * r) * exp(-r * r / s2);
}

void ms_synth_bead(float *img, int w, int h, size_t stride, double cx, double cy, double z_nm,
		   int ss)
{
	double k, s2;
	ring_params(z_nm, &k, &s2);
	if (ss < 1)
		ss = 1;
	for (int r = 0; r < h; r++)
		for (int c = 0; c < w; c++) {
			double acc = 0;
			for (int i = 0; i < ss; i++)
				for (int j = 0; j < ss; j++) {
					double dy = r - cy + (i + 0.5) / ss - 0.5;
					double dx = c - cx + (j + 0.5) / ss - 0.5;
					double rr = sqrt(dx * dx + dy * dy);
					acc += 1.0 + 0.8 * cos(k * rr) * exp(-rr * rr / s2);
				}
			img[r * stride + c] = (float)(acc / (ss * ss));
		}
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void ms_rng_seed(struct ms_rng *g, uint64_t seed)
{
	/* splitmix64 spreads any seed over the whole state */
	for (int i = 0; i < 4; i++) {
		uint64_t z = (seed += 0x9e3779b97f4a7c15u);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
		g->s[i] = z ^ (z >> 31);
	}
}

uint64_t ms_rng_next(struct ms_rng *g)
{
	uint64_t *s = g->s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

double ms_rng_uniform(struct ms_rng *g)
{
	return (ms_rng_next(g) >> 11) * 0x1.0p-53;
}

double ms_rng_normal(struct ms_rng *g)
{
	double u = 1.0 - ms_rng_uniform(g), v = ms_rng_uniform(g);
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

double ms_rng_poisson(struct ms_rng *g, double lambda)
{
	if (!(lambda > 0))
		return 0;
	if (lambda > 50) {
		/* normal approximation; exact enough for tests at these counts */
		double v = nearbyint(lambda + sqrt(lambda) * ms_rng_normal(g));
		return v < 0 ? 0 : v;
	}
	double l = exp(-lambda), p = 1;
	int k = 0;
	do {
		k++;
		p *= ms_rng_uniform(g);
	} while (p > l);
	return k - 1;
}

void ms_synth_quantise(const float *img, int w, int h, size_t stride, double scale,
		       struct ms_rng *g, enum ms_pixfmt fmt, void *out, size_t out_stride)
{
	double max = fmt == MS_PIX_U8 ? 255 : 65535;
	for (int r = 0; r < h; r++)
		for (int c = 0; c < w; c++) {
			double v = img[r * stride + c] * scale;
			if (g)
				v = ms_rng_poisson(g, v);
			else if (fmt != MS_PIX_NONE)
				v = nearbyint(v);
			size_t o = r * out_stride + c;
			if (fmt == MS_PIX_NONE) {
				((float *)out)[o] = (float)v;
				continue;
			}
			v = v < 0 ? 0 : v > max ? max : v;
			if (fmt == MS_PIX_U8)
				((uint8_t *)out)[o] = (uint8_t)v;
			else
				((uint16_t *)out)[o] = (uint16_t)v;
		}
}
