/* rng: xoshiro256**, normal and Poisson deviates; see rng.h. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void ms_rng_seed(struct ms_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	r->has_spare = 0;
	r->spare = 0;
}

uint64_t ms_rng_next(struct ms_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double ms_rng_uniform(struct ms_rng *r)
{
	return (double)(ms_rng_next(r) >> 11) * 0x1.0p-53;
}

double ms_rng_normal(struct ms_rng *r)
{
	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	/* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
	double u = 1.0 - ms_rng_uniform(r);
	double v = ms_rng_uniform(r);
	double m = sqrt(-2.0 * log(u));
	r->spare = m * sin(2.0 * M_PI * v);
	r->has_spare = 1;
	return m * cos(2.0 * M_PI * v);
}

/* log(k!) for integer k >= 0: a table, then Stirling's series for Gamma(k + 1). */
static double log_factorial(double k)
{
	static const double small[10] = {
		0.0, 0.0, 0.69314718055994531, 1.79175946922805500, 3.17805383034794562,
		4.78749174278204599, 6.57925121201010100, 8.52516136106541430,
		10.60460290274525023, 12.80182748008146961,
	};
	if (k < 10)
		return small[(int)k];
	double x = k + 1, x2 = x * x;
	return (x - 0.5) * log(x) - x + 0.91893853320467274 +
	       (1.0 / 12 - (1.0 / 360 - 1.0 / (1260 * x2)) / x2) / x;
}

static void ptrs_setup(struct ms_poisson *c, double mean)
{
	c->mean = mean;
	c->slam = sqrt(mean);
	c->loglam = log(mean);
	c->b = 0.931 + 2.53 * c->slam;
	c->a = -0.059 + 0.02483 * c->b;
	c->invalpha = 1.1239 + 1.1328 / (c->b - 3.4);
	c->vr = 0.9277 - 3.6224 / (c->b - 2.0);
}

/*
 * Hoermann (1993), "The transformed rejection method for generating
 * Poisson random variables": a squeeze accepts most draws at the cost of
 * two uniforms; the rest are decided against the exact log-probability.
 */
static double poisson_ptrs(struct ms_rng *r, const struct ms_poisson *c)
{
	for (;;) {
		double u = ms_rng_uniform(r) - 0.5;
		double v = ms_rng_uniform(r);
		double us = 0.5 - fabs(u);
		/* floor() without the libm call; the argument is > -2^62. */
		double x = (2.0 * c->a / us + c->b) * u + c->mean + 0.43;
		double k = (double)(int64_t)x;
		if (k > x)
			k -= 1;
		if (us >= 0.07 && v <= c->vr)
			return k;
		if (k < 0 || (us < 0.013 && v > us))
			continue;
		if (log(v * c->invalpha / (c->a / (us * us) + c->b)) <=
		    -c->mean + k * c->loglam - log_factorial(k))
			return k;
	}
}

static double poisson_small(struct ms_rng *r, double mean)
{
	/* Inversion by sequential search; the mean is below 10, so it is short. */
	double u = ms_rng_uniform(r);
	double p = exp(-mean), f = p;
	double k = 0;
	while (u > f && k < 1000) {
		k += 1;
		p *= mean / k;
		f += p;
	}
	return k;
}

double ms_rng_poisson(struct ms_rng *r, double mean)
{
	if (!(mean > 0))
		return 0;
	if (mean < 10)
		return poisson_small(r, mean);
	struct ms_poisson c;
	ptrs_setup(&c, mean);
	return poisson_ptrs(r, &c);
}

void ms_poisson_prepare(struct ms_poisson *c, double mean)
{
	if (c->mean != mean)
		ptrs_setup(c, mean);
}

double ms_rng_poisson_prepared(struct ms_rng *r, const struct ms_poisson *c)
{
	if (!(c->mean > 0))
		return 0;
	return c->mean < 10 ? poisson_small(r, c->mean) : poisson_ptrs(r, c);
}

