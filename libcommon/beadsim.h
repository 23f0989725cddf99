/*
 * beadsim: the bead image model behind ms-simulate, plus the small seeded
 * random number generator, the camera (shot and read noise, quantisation)
 * and the tethered-bead dynamics it needs. The optics are MagTrack's: a
 * bead is a scalar brightfield thin phase object, T = A e^{i phi} inside
 * the projection of a sphere (phi = 2 pi (n_sphere - n_medium) t / lambda,
 * A = e^{-alpha t}, t the chord length) and 1 outside, imaged by angular-
 * spectrum propagation over a distance z in the medium (e^{i z k_z},
 * k = 2 pi n_medium / lambda) through a hard pupil |f| <= NA / lambda; the
 * image is |U|^2, scaled so that |U|^2 = 1 far from the bead shows as the
 * background level, and clipped to [0, 1]. Because the bead is radially
 * symmetric the propagation is done with Hankel transforms (the object
 * spectrum by quadrature over the bead, the unscattered "1" analytically)
 * and tabulated once, as I(r, z) on a fine radial and z grid; a bead is then
 * rendered by interpolating that table (linear in r and in z) at
 * Gauss-Legendre points inside each pixel. One deliberate difference from
 * MagTrack: pixel integration is applied to the INTENSITY (the image is the
 * average of |U|^2 over the pixel area, as a sensor integrates it), where
 * MagTrack multiplies the field's spectrum by a pixel MTF. Placement is
 * exact: the rendered image of a bead at (cx, cy) is the continuous image
 * shifted by exactly (cx, cy) and integrated over each pixel, with no
 * resampling of a pre-rendered pixel image. Pixel centres follow the
 * mstk contract: the centre of pixel (row r, column c) is at x = c, y = r.
 * Cost on one 2.5 GHz core: the table takes 0.01 s for a few z planes,
 * 0.15 s for z over +-5 um and 0.4 s over +-10 um (10 nm planes); a bead
 * with a 48 px render radius (ROI 64) renders in about 0.17 ms, with 24 px
 * in 0.04 ms (with supersample 1, one sample per pixel, about 0.01 ms).
 * The camera adds about 25 ns per pixel.
 */
#ifndef MS_BEADSIM_H
#define MS_BEADSIM_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"
#include "rng.h"

/* ---- the optical model ------------------------------------------------- */

struct ms_beadsim_params {
	double nm_per_px;	/* 100 */
	double radius_nm;	/* bead radius: 1500 */
	double wavelength_nm;	/* vacuum wavelength: 550 */
	double n_sphere;	/* 1.59 (polystyrene) */
	double n_medium;	/* 1.33 (water) */
	double na;		/* 1.3 */
	double absorption_per_nm;	/* 0 */
	double background;	/* image level where |U|^2 = 1: 0.4 */
	double render_radius_px;	/* a bead's deviation is drawn out to here: 48 */
	double taper_px;	/* cosine taper to 0 at the render radius; 0: radius / 4 */
	double z_min_nm, z_max_nm;	/* z range the table must cover: 0, 0 */
	double dz_nm;		/* z step of the table: 10 */
	double dr_px;		/* radial step of the table; 0: automatic (<= 0.025 px) */
	int supersample;	/* Gauss-Legendre points per pixel side: 4 */
};

/* The defaults above. */
void ms_beadsim_defaults(struct ms_beadsim_params *p);

struct ms_beadsim;

/*
 * Check the parameters (naming any bad value) and build the I(r, z) table.
 * The cost grows with the z range (one plane per dz) and the render radius.
 */
struct ms_beadsim *ms_beadsim_new(const struct ms_beadsim_params *p, ms_err *e);
void ms_beadsim_free(struct ms_beadsim *s);
/* The parameters in use (dr_px and taper_px resolved). */
const struct ms_beadsim_params *ms_beadsim_params(const struct ms_beadsim *s);
/* The z range the table covers, in nm; renders outside it fail. */
void ms_beadsim_zrange(const struct ms_beadsim *s, double *z_min, double *z_max);
/* Radial samples and z planes in the table. */
void ms_beadsim_table_size(const struct ms_beadsim *s, size_t *nr, size_t *nz);

/*
 * |U(r, z)|^2 evaluated directly by quadrature, without the table, the
 * taper or the background (1 far from the bead). Slow; for tests and
 * reference profiles.
 */
double ms_beadsim_intensity_exact(const struct ms_beadsim *s, double r_px, double z_nm);
/*
 * The tabulated deviation background * (|U|^2 - 1) * taper(r) at (r, z),
 * interpolated exactly as the renderer does (NaN outside the z range).
 */
double ms_beadsim_deviation(const struct ms_beadsim *s, double r_px, double z_nm);

/* Fill a float image with the background level. */
void ms_beadsim_fill(const struct ms_beadsim *s, float *img, size_t n);
/*
 * Add the deviation of a bead centred at (cx, cy) (pixels, full-frame
 * coordinates) at defocus z_nm to a width x height float image, each
 * pixel getting the average over its area. Beads add; clip afterwards
 * (ms_beadsim_camera does). Safe to call from several threads on disjoint
 * images.
 */
int ms_beadsim_add(const struct ms_beadsim *s, float *img, int width, int height,
                   double cx, double cy, double z_nm, ms_err *e);

/*
 * The camera: for each pixel, value = clip(in, 0, 1); electrons =
 * Poisson(value * photons) + Normal(0, read_noise_e); out = round(clip(
 * electrons / photons, 0, 1) * full scale), full scale 255 (u8) or 65535
 * (u16). photons = 0 means an ideal camera (no noise, only quantisation).
 */
void ms_beadsim_camera(const float *in, size_t n, double photons, double read_noise_e,
                       enum ms_pixfmt fmt, void *out, struct ms_rng *rng);

/* ---- the Cramer-Rao bound ----------------------------------------------- */

/* What the bound assumes about the camera; photons > 0. */
struct ms_crlb_camera {
	double photons;		/* photo-electrons per unit intensity */
	double read_noise_e;	/* read noise, electrons RMS */
	double adu_e;		/* electrons per output count (quantisation), 0: none */
};

/* The bound, standard deviations: x and y in pixels, z in nm. */
struct ms_crlb {
	double x_px, y_px, z_nm;
};

/*
 * The Cramer-Rao lower bound on x, y and z of one bead centred at (cx, cy)
 * (pixels) of a w x w ROI at defocus z_nm, seen through the camera of
 * ms_beadsim_camera. The expected count of pixel i is mu_i = photons *
 * clip(I_i, 0, 1), I the rendered image. Each pixel is taken as Gaussian
 * with variance mu_i + read_noise^2 + adu^2 / 12 (Poisson plus read noise
 * plus quantisation, the usual approximation for a camera that adds read
 * noise to shot noise), clipped as the camera clips its output: it reads
 * full scale from photons - adu/2 electrons up and 0 below adu/2. So the
 * Fisher information is F_jk = sum_i c_i (d mu_i / d theta_j)(d mu_i /
 * d theta_k) / var_i, c_i = ms_clipped_gauss_info(mu_i, sqrt(var_i), adu/2,
 * photons - adu/2): 1 for a pixel well inside the range, falling to about
 * 0.8 at full scale. The parameters are x, y, z and, as nuisances, the
 * image's gain and offset (a tracker knows neither: Pearson matching
 * ignores both); the bound is sqrt(diag(F^-1)). Derivatives are central
 * differences of the rendered model (0.02 px, 2 nm), which is smooth at
 * those steps. A pixel whose image is clipped before the noise (I >= 1)
 * reads the same whatever the parameters, and so adds nothing. Returns 0,
 * or -1 when z is outside the model's table or F is singular.
 */
/*
 * The Fisher information about mu of one observation of a Gaussian of mean
 * mu and standard deviation sd that is clipped to [lo, hi] (a value beyond
 * an end reads as that end; either may be infinite), as a fraction of the
 * unclipped 1 / sd^2. With a = (hi - mu) / sd, b = (lo - mu) / sd, phi and
 * Phi the standard normal density and distribution:
 *   Phi(a) - Phi(b) - a phi(a) + b phi(b) + phi(a)^2 / (1 - Phi(a))
 *     + phi(b)^2 / Phi(b),
 * the first four terms from the values inside, the last two from the
 * probability of reading an end. 1 far inside, 0 far beyond an end.
 */
double ms_clipped_gauss_info(double mu, double sd, double lo, double hi);

int ms_beadsim_crlb(const struct ms_beadsim *s, int w, double cx, double cy, double z_nm,
                    const struct ms_crlb_camera *cam, struct ms_crlb *out, ms_err *e);

/*
 * The camera for speed (ms-simulate --fast-render): the same clipping and
 * quantisation, but the shot and read noise drawn as a Gaussian of the
 * same variance (value + sqrt(value / photons + (read_noise_e /
 * photons)^2) N(0, 1); at the photon counts of a brightfield camera,
 * thousands per pixel, Poisson and Gaussian are indistinguishable), its
 * deviates read from bank (nbank >= width standard normal deviates that
 * the caller drew once) from a random place for each row of width pixels.
 * About 1 ns per pixel rather than 25; rows share deviates, so the noise
 * is not independent from row to row over many frames: for live rigs and
 * benchmarks, not for tests of precision.
 */
void ms_beadsim_camera_approx(const float *in, size_t width, size_t height, double photons,
                              double read_noise_e, enum ms_pixfmt fmt, void *out,
                              const float *bank, size_t nbank, struct ms_rng *rng);

/*
 * One Euler step of an Ornstein-Uhlenbeck process, as MagScope's dummy
 * camera does: x + theta (mu - x) dt + sigma sqrt(dt) N(0, 1).
 */
double ms_ou_step(double x, double mu, double theta, double sigma, double dt, struct ms_rng *r);
/* The stationary standard deviation of that Euler scheme. */
double ms_ou_stationary_sd(double theta, double sigma, double dt);

#endif
