/*
 * rng: seeded random numbers for the simulator, the tests and the
 * benchmark. xoshiro256** seeded through splitmix64; the caller owns the
 * state, so every stream is reproducible from its seed and nothing is
 * global. Normal deviates by Box-Muller, Poisson deviates exact (inversion
 * below a mean of 10, Hoermann's PTRS above).
 */
#ifndef MS_RNG_H
#define MS_RNG_H

#include <stdint.h>

/*
 * xoshiro256** seeded through splitmix64. The caller owns the state, so
 * every stream is reproducible from its seed and nothing is global.
 */
struct ms_rng {
	uint64_t s[4];
	double spare;		/* the second normal of a Box-Muller pair */
	int has_spare;
};

void ms_rng_seed(struct ms_rng *r, uint64_t seed);
uint64_t ms_rng_next(struct ms_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double ms_rng_uniform(struct ms_rng *r);
/* Standard normal. */
double ms_rng_normal(struct ms_rng *r);
/*
 * Poisson with this mean (<= 0 gives 0): inversion for means below 10,
 * Hoermann's transformed rejection (PTRS) above; both exact.
 */
double ms_rng_poisson(struct ms_rng *r, double mean);

/*
 * The per-mean constants of the Poisson draw, kept so that a run of equal
 * means (flat background pixels) sets them up once.
 */
struct ms_poisson {
	double mean, slam, loglam, a, b, invalpha, vr;
};
/* Prepare c for this mean, if it is not already prepared for it. */
void ms_poisson_prepare(struct ms_poisson *c, double mean);
/* A draw with the mean c was prepared for. */
double ms_rng_poisson_prepared(struct ms_rng *r, const struct ms_poisson *c);

#endif
