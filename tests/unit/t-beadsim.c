/*
 * t-beadsim: the bead image model against an independent numerical
 * reference and its own invariants (radial symmetry, exact sub-pixel
 * placement, centre of mass), the table against direct quadrature, the
 * look through focus, the RNG, camera noise and OU statistics, and the
 * Cramer-Rao bound with its clipped-pixel information against numerical
 * integration.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beadsim.h"
#include "../lib/tap.h"

static struct ms_beadsim *model(double zmin, double zmax)
{
	struct ms_beadsim_params p;
	ms_beadsim_defaults(&p);
	p.z_min_nm = zmin;
	p.z_max_nm = zmax;
	ms_err e = { "" };
	struct ms_beadsim *s = ms_beadsim_new(&p, &e);
	if (!s) {
		tap_ok(0, "model builds: %s", e.msg);
		exit(tap_done());
	}
	return s;
}

/* The image's deviation from the background, rendered alone. */
static float *render(const struct ms_beadsim *s, int w, int h, double cx, double cy, double z)
{
	float *img = calloc((size_t)w * h, sizeof *img);
	ms_err e = { "" };
	if (ms_beadsim_add(s, img, w, h, cx, cy, z, &e) < 0)
		tap_diag("render: %s", e.msg);
	return img;
}

/*
 * |U|^2 at (r, z) from an independent method: a 2-D FFT angular-spectrum
 * computation of the same model in numpy, T sampled on a 10 nm grid of
 * 3072^2 points, U = 1 + IFFT(FFT(T - 1) e^{i z (k_z - k)} P), read along
 * the centre row. Grid and period effects make it good to about 0.3 %.
 */
static const double ref_z[] = { -2000, 0, 2000, 4000 };
static const double ref_r_px[] = { 0, 5, 10, 20, 30 };
static const double ref_I[4][5] = {
	{ 0.36261, 0.74216, 0.15057, 0.31777, 1.25081 },
	{ 2.06456, 1.28647, 1.24392, 0.99247, 1.03736 },
	{ 43.89146, 1.16051, 0.01079, 0.96190, 1.17599 },
	{ 4.08295, 2.19246, 0.04892, 1.07760, 1.01201 },
};

static void test_reference(const struct ms_beadsim *s)
{
	double worst = 0;
	int bad = 0;
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 5; j++) {
			double got = ms_beadsim_intensity_exact(s, ref_r_px[j], ref_z[i]);
			double d = fabs(got - ref_I[i][j]);
			if (d > 0.012 + 0.001 * ref_I[i][j]) {
				bad++;
				tap_diag("z %g r %g: %.5f, reference %.5f", ref_z[i], ref_r_px[j], got,
				         ref_I[i][j]);
			}
			if (d / (1 + ref_I[i][j]) > worst)
				worst = d / (1 + ref_I[i][j]);
		}
	tap_ok(bad == 0, "|U|^2 matches the FFT reference at 20 points (worst %.2g of 1+I)", worst);
}

static void test_table(const struct ms_beadsim *s)
{
	const struct ms_beadsim_params *p = ms_beadsim_params(s);
	double zmin, zmax;
	ms_beadsim_zrange(s, &zmin, &zmax);
	/* On the table's planes the only difference is float rounding. */
	double worst = 0;
	for (double z = -1000; z <= 3000; z += 500)
		for (double r = 0; r < p->render_radius_px; r += 0.85) {
			double R = p->render_radius_px, T = p->taper_px;
			double w = r <= R - T ? 1 : 0.5 + 0.5 * cos(M_PI * (r - (R - T)) / T);
			double want = p->background * (ms_beadsim_intensity_exact(s, r, z) - 1) * w;
			/* Radii on the grid, so r-interpolation adds nothing. */
			double rg = round(r / p->dr_px) * p->dr_px;
			want = p->background * (ms_beadsim_intensity_exact(s, rg, z) - 1) *
			       (rg <= R - T ? 1 : 0.5 + 0.5 * cos(M_PI * (rg - (R - T)) / T));
			double d = fabs(ms_beadsim_deviation(s, rg, z) - want);
			if (d > worst)
				worst = d;
		}
	tap_ok(worst < 1.6e-5, "table equals direct quadrature on its grid (worst %.2g)", worst);

	/* Between planes and radii: linear interpolation error. */
	double wz = 0, wr = 0;
	for (double z = -995; z <= 2995; z += 170)
		for (double r = 0.013; r < 30; r += 0.731) {
			double d = fabs(ms_beadsim_deviation(s, r, z) -
			                p->background * (ms_beadsim_intensity_exact(s, r, z) - 1));
			double rg = round(r / p->dr_px) * p->dr_px;
			double dzonly = fabs(ms_beadsim_deviation(s, rg, z) -
			                     p->background * (ms_beadsim_intensity_exact(s, rg, z) - 1));
			if (dzonly > wz)
				wz = dzonly;
			if (d > wr)
				wr = d;
		}
	tap_diag("interpolation: z only %.3g, z and r %.3g (intensity units)", wz, wr);
	tap_ok(wz < 1.4e-5, "cubic z interpolation error %.2g < 1.4e-5", wz);
	tap_ok(wr < 1.25e-3, "r and z interpolation error %.2g < 1.25e-3", wr);

	/* Continuity across a plane. */
	double z0 = zmin + 137 * p->dz_nm, jump = 0;
	for (double r = 0; r < 40; r += 0.37) {
		double d = fabs(ms_beadsim_deviation(s, r, z0 - 1e-6) -
		                ms_beadsim_deviation(s, r, z0 + 1e-6));
		if (d > jump)
			jump = d;
	}
	tap_ok(jump < 1e-7, "continuous across a z plane (jump %.2g)", jump);
	tap_ok(isnan(ms_beadsim_deviation(s, 0, zmax + 1)), "NaN outside the z range");
}

static double com_err(const struct ms_beadsim *s, double cx, double cy, double z)
{
	int w = 129, h = 129;
	float *img = render(s, w, h, cx, cy, z);
	double sw = 0, sx = 0, sy = 0;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			double v = img[y * w + x];
			sw += v;
			sx += v * x;
			sy += v * y;
		}
	free(img);
	return hypot(sx / sw - cx, sy / sw - cy);
}

static void test_render(const struct ms_beadsim *s)
{
	int w = 129, h = 129;
	/* Mirror symmetry about a centre on a pixel and on a pixel corner. */
	double asym[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		double c = 64 + 0.5 * k;
		float *img = render(s, w, h, c, c, 1500);
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++) {
				int mx = (int)(2 * c) - x, my = (int)(2 * c) - y;
				if (mx < 0 || my < 0 || mx >= w || my >= h)
					continue;
				double v = img[y * w + x];
				double d = fmax(fabs(v - img[y * w + mx]),
				                fmax(fabs(v - img[my * w + x]), fabs(v - img[x * w + y])));
				if (d > asym[k])
					asym[k] = d;
			}
		free(img);
	}
	tap_ok(asym[0] < 5e-6 && asym[1] < 5e-6,
	       "radially symmetric: mirror and transpose differences %.2g, %.2g", asym[0], asym[1]);

	/* A whole-pixel move gives exactly the shifted image. */
	float *a = render(s, w, h, 60.3125, 61.6875, 800);
	float *b = render(s, w, h, 63.3125, 59.6875, 800);
	double sh = 0;
	for (int y = 2; y < h; y++)
		for (int x = 0; x + 3 < w; x++)
			sh = fmax(sh, fabs(a[y * w + x] - b[(y - 2) * w + x + 3]));
	free(a);
	free(b);
	tap_ok(sh < 1e-6, "an integer move shifts the image exactly (%.2g)", sh);

	/* Pixels are the area average of the continuous image. */
	double cx = 64.37, cy = 63.81, z = 1200, worst = 0;
	float *img = render(s, w, h, cx, cy, z);
	const struct ms_beadsim_params *p = ms_beadsim_params(s);
	int px[][2] = { { 64, 64 }, { 66, 63 }, { 70, 70 }, { 75, 60 }, { 64, 80 }, { 52, 59 } };
	for (size_t i = 0; i < sizeof px / sizeof px[0]; i++) {
		double sum = 0;
		int n = 24;
		for (int u = 0; u < n; u++)
			for (int v = 0; v < n; v++) {
				double x = px[i][0] - 0.5 + (u + 0.5) / n, y = px[i][1] - 0.5 + (v + 0.5) / n;
				sum += p->background * (ms_beadsim_intensity_exact(s, hypot(x - cx, y - cy), z) - 1);
			}
		double d = fabs(img[px[i][1] * w + px[i][0]] - sum / (n * n));
		worst = fmax(worst, d);
	}
	free(img);
	tap_diag("render vs 24x24 midpoint integration of the exact image: %.3g", worst);
	tap_ok(worst < 1.3e-3, "pixels integrate the exact image (worst %.2g)", worst);

	/* Centre of mass at sub-pixel offsets. */
	struct ms_rng r;
	ms_rng_seed(&r, 7);
	double wc = 0;
	for (int i = 0; i < 20; i++) {
		double ox = 64 + ms_rng_uniform(&r) - 0.5, oy = 64 + ms_rng_uniform(&r) - 0.5;
		/* z <= 0: nothing saturates, and clipping is not the renderer's. */
		double zz = -2000 + 2000 * ms_rng_uniform(&r);
		wc = fmax(wc, com_err(s, ox, oy, zz));
	}
	tap_ok(wc < 8e-5, "centre of mass of I - bg is the centre at 20 sub-pixel offsets (worst %.2g px)", wc);

	/* Near an edge the bead is cut, not wrapped or refused. */
	float *edge = render(s, 40, 40, 2.3, 38.9, 0);
	ms_err e = { "" };
	tap_ok(ms_beadsim_add(s, edge, 40, 40, -500, -500, 0, &e) == 0, "a bead far outside draws nothing");
	free(edge);
	float one = 0;
	tap_ok(ms_beadsim_add(s, &one, 1, 1, 0, 0, 99999, &e) < 0 && strstr(e.msg, "99999"),
	       "z outside the table is refused: %s", e.msg);
}

/* Through focus: the look MagTrack's model has. */
static void test_look(const struct ms_beadsim *s)
{
	const struct ms_beadsim_params *p = ms_beadsim_params(s);
	double bg = p->background;
	/* The first and last z where the centre saturates (bg |U|^2 >= 1). */
	double first = NAN, last = NAN;
	for (double z = -5000; z <= 5000; z += 10) {
		int sat = bg * ms_beadsim_intensity_exact(s, 0, z) >= 1;
		if (sat && isnan(first))
			first = z;
		if (sat)
			last = z;
	}
	/* Saturated z must form one interval. */
	int holes = 0;
	for (double z = first; z <= last; z += 10)
		holes += bg * ms_beadsim_intensity_exact(s, 0, z) < 1;
	tap_diag("the centre saturates from z = %g to %g nm (%d gaps)", first, last, holes);
	tap_ok(first >= 300 && first <= 500 && last >= 4000 && last <= 4500 && holes == 0,
	       "bright central spot saturates for z in about 0.4..4.2 um");
	/* Contrast (RMS deviation over the bead's disc and first rings). */
	double rms[3], zs[3] = { 0, 2000, -2000 };
	for (int k = 0; k < 3; k++) {
		double s2 = 0, n = 0;
		for (double r = 0.05; r < 25; r += 0.1) {
			double d = bg * fmin(ms_beadsim_intensity_exact(s, r, zs[k]) - 1, 1 / bg - 1);
			s2 += d * d * r;
			n += r;
		}
		rms[k] = sqrt(s2 / n);
	}
	tap_diag("RMS contrast within 25 px: z=0 %.3f, z=+2 um %.3f, z=-2 um %.3f", rms[0], rms[1], rms[2]);
	tap_ok(rms[0] < 0.6 * rms[1] && rms[0] < 0.6 * rms[2], "in focus the contrast is weakest");
	/* z < 0: the centre alternates between dark and bright. */
	int flips = 0;
	double prev = bg * ms_beadsim_intensity_exact(s, 0, -100) - bg;
	for (double z = -200; z >= -5000; z -= 100) {
		double v = bg * ms_beadsim_intensity_exact(s, 0, z) - bg;
		flips += (v > 0) != (prev > 0);
		prev = v;
	}
	tap_diag("z < 0: the centre changes sign %d times down to -5 um", flips);
	tap_ok(flips >= 3, "for z < 0 the centre alternates dark and bright");
}

static void test_rng(void)
{
	struct ms_rng a, b, c;
	ms_rng_seed(&a, 42);
	ms_rng_seed(&b, 42);
	ms_rng_seed(&c, 43);
	int same = 1, differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = ms_rng_next(&a), y = ms_rng_next(&b), z = ms_rng_next(&c);
		same &= x == y;
		differ += x != z;
	}
	tap_ok(same && differ == 1000, "the RNG is a function of its seed");

	int n = 400000;
	double s1 = 0, s2 = 0, m1 = 0, m2 = 0;
	for (int i = 0; i < n; i++) {
		double u = ms_rng_uniform(&a), g = ms_rng_normal(&a);
		s1 += u;
		s2 += u * u;
		m1 += g;
		m2 += g * g;
	}
	tap_near(s1 / n, 0.5, 0.0025, "uniform mean");
	tap_near(s2 / n - (s1 / n) * (s1 / n), 1.0 / 12, 0.0012, "uniform variance");
	tap_near(m1 / n, 0, 0.008, "normal mean");
	tap_near(m2 / n - (m1 / n) * (m1 / n), 1, 0.012, "normal variance");

	/* Poisson: both algorithms and the switch between them. */
	const double means[] = { 0.3, 3, 9.9, 10, 37.5, 1000, 10000 };
	for (size_t k = 0; k < sizeof means / sizeof means[0]; k++) {
		double lam = means[k], t1 = 0, t2 = 0, t3 = 0;
		int m = 200000, at_mode = 0, mode = (int)floor(lam);
		for (int i = 0; i < m; i++) {
			double v = ms_rng_poisson(&a, lam);
			t1 += v;
			t2 += v * v;
			t3 += (v - lam) * (v - lam) * (v - lam);
			at_mode += v == mode;
		}
		double mean = t1 / m, var = t2 / m - mean * mean;
		/* Five standard errors: the mean's is sqrt(lam/m), the variance's
		 * sqrt((2 lam^2 + lam) / m). */
		tap_near(mean, lam, 5 * sqrt(lam / m), "Poisson(%g) mean", lam);
		tap_near(var, lam, 5 * sqrt((2 * lam * lam + lam) / m), "Poisson(%g) variance", lam);
		/* Skewness 1/sqrt(lam): the third central moment is lam. */
		tap_near(t3 / m, lam, 6 * sqrt((6 * lam * lam * lam + 22 * lam * lam + lam) / m),
		         "Poisson(%g) third moment", lam);
		double pmode = exp(-lam + mode * log(lam) - lgamma(mode + 1.0));
		tap_near((double)at_mode / m, pmode, 5 * sqrt(pmode / m), "Poisson(%g) P(k = %d)", lam, mode);
	}
	tap_ok(ms_rng_poisson(&a, 0) == 0 && ms_rng_poisson(&a, -1) == 0, "Poisson(0) is 0");
}

static void test_camera(void)
{
	float in[5] = { 0.4f, -0.1f, 1.3f, 1.0f, 0.5f / 255 + 1e-6f };
	uint8_t o8[5];
	uint16_t o16[5];
	struct ms_rng r;
	ms_rng_seed(&r, 1);
	ms_beadsim_camera(in, 5, 0, 0, MS_PIX_U8, o8, &r);
	tap_ok(o8[0] == 102 && o8[1] == 0 && o8[2] == 255 && o8[3] == 255 && o8[4] == 1,
	       "ideal u8 camera: 0.4 -> 102, clipped ends, rounding (%d %d %d %d %d)",
	       o8[0], o8[1], o8[2], o8[3], o8[4]);
	ms_beadsim_camera(in, 5, 0, 0, MS_PIX_U16, o16, &r);
	tap_ok(o16[0] == 26214 && o16[1] == 0 && o16[2] == 65535, "ideal u16 camera: 0.4 -> 26214");

	/* Shot and read noise: mean and variance in ADU. */
	size_t n = 200000;
	float *img = malloc(n * sizeof *img);
	uint16_t *out = malloc(n * sizeof *out);
	for (size_t i = 0; i < n; i++)
		img[i] = 0.4f;
	const double rn[] = { 0, 60 };
	for (int k = 0; k < 2; k++) {
		ms_beadsim_camera(img, n, 25000, rn[k], MS_PIX_U16, out, &r);
		double s1 = 0, s2 = 0;
		for (size_t i = 0; i < n; i++) {
			s1 += out[i];
			s2 += (double)out[i] * out[i];
		}
		double mean = s1 / n, var = s2 / n - mean * mean;
		double g = 65535.0 / 25000;	/* ADU per electron */
		double want = g * g * (10000 + rn[k] * rn[k]) + 1.0 / 12;
		tap_near(mean, 0.4 * 65535, 5 * sqrt(want / n), "camera mean, read noise %g e", rn[k]);
		tap_near(var, want, 5 * want * sqrt(2.0 / n), "camera variance, read noise %g e", rn[k]);
	}
	/* The same seed gives the same frame. */
	uint16_t *o2 = malloc(n * sizeof *o2);
	struct ms_rng r1, r2;
	ms_rng_seed(&r1, 9);
	ms_rng_seed(&r2, 9);
	ms_beadsim_camera(img, n, 25000, 3, MS_PIX_U16, out, &r1);
	ms_beadsim_camera(img, n, 25000, 3, MS_PIX_U16, o2, &r2);
	tap_ok(memcmp(out, o2, n * sizeof *out) == 0, "camera noise is a function of the seed");
	free(o2);
	free(img);
	free(out);
}

/* --fast-render's camera: the same quantisation, noise of the same mean and variance. */
static void test_camera_approx(void)
{
	struct ms_rng r;
	ms_rng_seed(&r, 3);
	/* Odd widths: the vector loop and the scalar tail both run. */
	enum { W = 13, H = 40 };
	float in[W * H];
	for (size_t i = 0; i < W * H; i++)
		in[i] = (float)(ms_rng_uniform(&r) * 1.4 - 0.2);
	in[0] = 0.4f;
	in[1] = 0.5f / 255 + 1e-6f;
	uint8_t a8[W * H], b8[W * H];
	uint16_t a16[W * H], b16[W * H];
	ms_beadsim_camera(in, W * H, 0, 0, MS_PIX_U8, a8, &r);
	ms_beadsim_camera_approx(in, W, H, 0, 0, MS_PIX_U8, b8, NULL, 0, &r);
	ms_beadsim_camera(in, W * H, 0, 0, MS_PIX_U16, a16, &r);
	ms_beadsim_camera_approx(in, W, H, 0, 0, MS_PIX_U16, b16, NULL, 0, &r);
	int d8 = 0, d16 = 0;
	for (size_t i = 0; i < W * H; i++) {
		d8 = abs(a8[i] - b8[i]) > d8 ? abs(a8[i] - b8[i]) : d8;
		d16 = abs(a16[i] - b16[i]) > d16 ? abs(a16[i] - b16[i]) : d16;
	}
	tap_ok(b8[0] == 102 && b8[1] == 1 && d8 == 0, "approximate camera, no noise, u8: the exact "
	       "camera's values (largest difference %d)", d8);
	/* float against double arithmetic may round a value on a .5 boundary the other way. */
	tap_ok(b16[0] == 26214 && d16 <= 1, "approximate camera, no noise, u16: within 1 of the "
	       "exact camera (largest difference %d)", d16);

	enum { NB = 1 << 16 };
	float *bank = malloc(NB * sizeof *bank);
	for (size_t i = 0; i < NB; i++)
		bank[i] = (float)ms_rng_normal(&r);
	size_t w = 509, h = 400, n = w * h;
	float *img = malloc(n * sizeof *img);
	uint16_t *out = malloc(n * sizeof *out);
	for (size_t i = 0; i < n; i++)
		img[i] = 0.4f;
	const double rn[] = { 0, 60 };
	for (int k = 0; k < 2; k++) {
		ms_beadsim_camera_approx(img, w, h, 25000, rn[k], MS_PIX_U16, out, bank, NB, &r);
		double s1 = 0, s2 = 0;
		for (size_t i = 0; i < n; i++) {
			s1 += out[i];
			s2 += (double)out[i] * out[i];
		}
		double mean = s1 / n, var = s2 / n - mean * mean;
		double g = 65535.0 / 25000;
		double want = g * g * (10000 + rn[k] * rn[k]) + 1.0 / 12;
		/* Rows share a bank of 65536 deviates: its own spread bounds the agreement. */
		tap_near(mean, 0.4 * 65535, 5 * sqrt(want / NB), "approximate camera mean, read noise %g e",
		         rn[k]);
		tap_near(var, want, 5 * want * sqrt(2.0 / NB), "approximate camera variance, read noise %g e",
		         rn[k]);
	}
	free(bank);
	free(img);
	free(out);
}

static void test_ou(void)
{
	struct ms_rng r;
	ms_rng_seed(&r, 3);
	double theta = 1.5, sigma = 3, dt = 1.0 / 30, x = 0, s1 = 0, s2 = 0;
	int n = 400000;
	for (int i = 0; i < n; i++) {
		x = ms_ou_step(x, 0, theta, sigma, dt, &r);
		s1 += x;
		s2 += x * x;
	}
	double sd = sqrt(s2 / n - (s1 / n) * (s1 / n)), want = ms_ou_stationary_sd(theta, sigma, dt);
	tap_near(want, sigma / sqrt(2 * theta), 0.03, "stationary SD near sigma / sqrt(2 theta)");
	/* About n theta dt / 2 independent samples: a 2 % standard error. */
	tap_near(sd, want, 0.04 * want, "OU series has the stationary SD (%.4f)", want);
}

/* A bead looks the same whatever z range the table was built for. */
static void test_range_independent(const struct ms_beadsim *s)
{
	struct ms_beadsim *t = model(1003, 1507);
	double worst = 0;
	for (double z = 1003; z <= 1507; z += 13.7)
		for (double r = 0; r < 40; r += 0.77)
			worst = fmax(worst, fabs(ms_beadsim_deviation(s, r, z) - ms_beadsim_deviation(t, r, z)));
	ms_beadsim_free(t);
	tap_ok(worst < 3e-5, "the image does not depend on the table's z range (%.2g)", worst);
}

static void test_params(void)
{
	struct ms_beadsim_params p;
	ms_beadsim_defaults(&p);
	p.na = 1.4;
	ms_err e = { "" };
	tap_ok(!ms_beadsim_new(&p, &e) && strstr(e.msg, "1.4") && strstr(e.msg, "1.33"),
	       "NA above the medium's index is refused: %s", e.msg);
	ms_beadsim_defaults(&p);
	p.z_min_nm = 10;
	p.z_max_nm = -10;
	tap_ok(!ms_beadsim_new(&p, &e) && strstr(e.msg, "10..-10"), "an inverted z range is refused: %s",
	       e.msg);
	ms_beadsim_defaults(&p);
	p.supersample = 9;
	tap_ok(!ms_beadsim_new(&p, &e) && strstr(e.msg, "9"), "supersampling 9 is refused: %s", e.msg);
}

/*
 * The Cramer-Rao bound. For a bead at a ROI's centre the x derivative is
 * odd about it and those of y, z, gain and offset are even in x, so x
 * decouples and its bound is 1/sqrt(F_xx): summed here directly, without
 * the library's matrix inverse. The bound falls as 1/sqrt(photons), rises
 * with read noise, is the same in x and y, and has no value without noise.
 */
static void test_crlb(const struct ms_beadsim *s)
{
	enum { W = 48 };
	struct ms_crlb_camera cam = { .photons = 10000, .read_noise_e = 0, .adu_e = 0 };
	struct ms_crlb b, b4, br;
	ms_err e = { "" };
	int rc = ms_beadsim_crlb(s, W, 24, 24, -1500, &cam, &b, &e);
	tap_ok(rc == 0 && b.x_px > 0 && b.z_nm > 0, "a bound at 1e4 photons: x %.3g px, y %.3g px, "
	       "z %.3g nm", b.x_px, b.y_px, b.z_nm);
	float *p = calloc(W * W, sizeof *p), *m = calloc(W * W, sizeof *m), *c = calloc(W * W, 4);
	ms_beadsim_fill(s, p, W * W);
	ms_beadsim_fill(s, m, W * W);
	ms_beadsim_fill(s, c, W * W);
	ms_beadsim_add(s, p, W, W, 24.02, 24, -1500, &e);
	ms_beadsim_add(s, m, W, W, 23.98, 24, -1500, &e);
	ms_beadsim_add(s, c, W, W, 24, 24, -1500, &e);
	double f = 0;
	for (int i = 0; i < W * W; i++) {
		double d = 1e4 * ((double)p[i] - m[i]) / 0.04;
		f += d * d / (1e4 * c[i]);
	}
	tap_near(b.x_px, 1 / sqrt(f), 1e-3 * b.x_px, "x bound is 1/sqrt(F_xx) (%.5g px)",
		 1 / sqrt(f));
	tap_near(b.y_px, b.x_px, 1e-3 * b.x_px, "y bound equals x bound for a centred bead");
	cam.photons = 40000;
	ms_beadsim_crlb(s, W, 24, 24, -1500, &cam, &b4, &e);
	tap_near(b4.x_px, b.x_px / 2, 1e-6, "4x the photons halve the x bound");
	tap_near(b4.z_nm, b.z_nm / 2, 1e-6 * b.z_nm, "and the z bound");
	cam.photons = 10000;
	cam.read_noise_e = 60;
	ms_beadsim_crlb(s, W, 24, 24, -1500, &cam, &br, &e);
	tap_ok(br.x_px > 1.05 * b.x_px && br.z_nm > 1.05 * b.z_nm, "read noise of 60 e- raises "
	       "the bound (x %.3g px, z %.3g nm)", br.x_px, br.z_nm);
	cam.photons = 0;
	tap_ok(ms_beadsim_crlb(s, W, 24, 24, -1500, &cam, &b, &e) < 0 && strstr(e.msg, "photons"),
	       "no photons, no bound: %s", e.msg);
	cam.photons = 1e4;
	tap_ok(ms_beadsim_crlb(s, W, 24, 24, 9000, &cam, &b, &e) < 0 && strstr(e.msg, "outside"),
	       "a z outside the model's table is refused: %s", e.msg);
	free(p);
	free(m);
	free(c);
}

/*
 * The information about mu in one reading of N(mu, sd^2) clipped to
 * [lo, hi], by brute force: the expected squared score, the score of a
 * reading inside being (y - mu) / sd^2 (Simpson's rule over the inside),
 * and of an end the mu-derivative of the log of its probability (central
 * differences of erfc). Shares nothing with the library's closed form.
 */
static double clipped_info_numeric(double mu, double sd, double lo, double hi)
{
	double a = fmax(lo, mu - 12 * sd), b = fmin(hi, mu + 12 * sd), f = 0;
	if (b > a) {
		int n = 20000;
		double h = (b - a) / n;
		for (int i = 0; i <= n; i++) {
			double y = a + h * i, u = (y - mu) / sd;
			double v = u * u / (sd * sd) * exp(-0.5 * u * u) / (sd * sqrt(2 * M_PI));
			f += v * (i == 0 || i == n ? 1 : i % 2 ? 4 : 2);
		}
		f *= h / 3;
	}
	double d = 1e-4 * sd;
	if (isfinite(hi)) {
		double p = 0.5 * erfc((hi - mu) / (sd * M_SQRT2));
		double dp = (0.5 * erfc((hi - mu - d) / (sd * M_SQRT2)) -
			     0.5 * erfc((hi - mu + d) / (sd * M_SQRT2))) / (2 * d);
		if (p > 0)
			f += dp * dp / p;
	}
	if (isfinite(lo)) {
		double p = 0.5 * erfc((mu - lo) / (sd * M_SQRT2));
		double dp = (0.5 * erfc((mu + d - lo) / (sd * M_SQRT2)) -
			     0.5 * erfc((mu - d - lo) / (sd * M_SQRT2))) / (2 * d);
		if (p > 0)
			f += dp * dp / p;
	}
	return f * sd * sd;
}

/*
 * A reading near full scale is censored: the camera clips it. Far inside
 * the range it tells all (1), far beyond an end nothing (0), right at an
 * end 1/2 + 1/pi (the half inside plus the probability of clipping); the
 * closed form agrees with brute force, and its tails stay finite. The
 * bound uses it: at 30 photons, where the clip at full scale and the one
 * at 0 cut into many pixels, the x bound of a centred bead (x decouples)
 * is 1/sqrt(F_xx) with each pixel's information so reduced, and rises
 * above the unclipped one.
 */
static void test_clipped_info(const struct ms_beadsim *s)
{
	tap_near(ms_clipped_gauss_info(0, 1, -INFINITY, INFINITY), 1, 1e-12, "unclipped: 1");
	tap_near(ms_clipped_gauss_info(0, 1, -40, 40), 1, 1e-12, "40 sd inside both ends: 1");
	tap_near(ms_clipped_gauss_info(100, 1, -INFINITY, 60), 0, 1e-12, "40 sd beyond the top: 0");
	tap_near(ms_clipped_gauss_info(-100, 1, -60, INFINITY), 0, 1e-12,
		 "40 sd below the bottom: 0");
	tap_near(ms_clipped_gauss_info(5, 2, -INFINITY, 5), 0.5 + 1 / M_PI, 1e-12,
		 "at the clip: 1/2 + 1/pi");
	int finite = 1, mono = 1;
	double prev = 1;
	for (double a = 45; a >= -45; a -= 0.25) {
		double f = ms_clipped_gauss_info(0, 1, -INFINITY, a);
		finite &= f >= 0 && f <= 1;
		mono &= f <= prev + 1e-12;
		prev = f;
	}
	tap_ok(finite && mono, "finite, and falling as the mean nears and passes the clip");
	static const double c[][4] = {
		{0, 1, -INFINITY, 1.3}, {0.9, 0.1, 0, 1}, {50, 20, 0, 60}, {3, 2, 0, 100},
		{0.2, 0.3, 0, 0.4}, {10, 1, -INFINITY, 7},
	};
	double worst = 0;
	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		double got = ms_clipped_gauss_info(c[i][0], c[i][1], c[i][2], c[i][3]);
		double want = clipped_info_numeric(c[i][0], c[i][1], c[i][2], c[i][3]);
		worst = fmax(worst, fabs(got - want));
		if (fabs(got - want) > 2.5e-9)
			tap_diag("mu %g sd %g [%g, %g]: %.8f, brute force %.8f", c[i][0], c[i][1],
				 c[i][2], c[i][3], got, want);
	}
	/* measured: 1.5e-9, the error of the central differences */
	tap_ok(worst < 2.5e-9, "the closed form is the expected squared score (worst %.1e)", worst);

	/* the bound at 30 photons against a direct sum */
	enum { W = 48 };
	const double ph = 30, z = 500;
	struct ms_crlb_camera cam = { .photons = ph, .read_noise_e = 0, .adu_e = 0 };
	struct ms_crlb b;
	ms_err e = { "" };
	int rc = ms_beadsim_crlb(s, W, 24, 24, z, &cam, &b, &e);
	float *p = calloc(W * W, sizeof *p), *m = calloc(W * W, sizeof *m), *o = calloc(W * W, 4);
	ms_beadsim_fill(s, p, W * W);
	ms_beadsim_fill(s, m, W * W);
	ms_beadsim_fill(s, o, W * W);
	ms_beadsim_add(s, p, W, W, 24.02, 24, z, &e);
	ms_beadsim_add(s, m, W, W, 23.98, 24, z, &e);
	ms_beadsim_add(s, o, W, W, 24, 24, z, &e);
	double f = 0, f1 = 0;
	int clipped = 0;
	for (int i = 0; i < W * W; i++) {
		double cp = fmin(fmax(p[i], 0), 1), cm = fmin(fmax(m[i], 0), 1);
		double co = fmin(fmax(o[i], 0), 1);
		if (co >= 1 || co <= 0)
			continue;
		clipped += co > 0.9;
		double d = ph * (cp - cm) / 0.04, var = ph * co;
		f += d * d / var * clipped_info_numeric(ph * co, sqrt(var), 0, ph);
		f1 += d * d / var;
	}
	tap_ok(rc == 0 && clipped > 10, "a bead at 0.5 um, 30 photons: x bound %.5f px, %d pixels "
	       "within 10%% of full scale", b.x_px, clipped);
	/* measured: 2.3e-7, float rounding of the images */
	tap_near(b.x_px, 1 / sqrt(f), 3.5e-7 * b.x_px, "x bound is 1/sqrt(F_xx) with clipped pixels' "
		 "information (%.7f px, %.1e relative)", 1 / sqrt(f), fabs(b.x_px * sqrt(f) - 1));
	/* measured: 0.5% above */
	tap_ok(b.x_px > 1.003 / sqrt(f1), "and above the bound that ignores the clip (%.5f px)",
	       1 / sqrt(f1));
	free(p);
	free(m);
	free(o);
}

int main(void)
{
	test_params();
	struct ms_beadsim *s = model(-5000, 5000);
	test_reference(s);
	test_table(s);
	test_render(s);
	test_look(s);
	test_range_independent(s);
	test_crlb(s);
	test_clipped_info(s);
	ms_beadsim_free(s);
	test_rng();
	test_camera();
	test_camera_approx();
	test_ou();
	return tap_done();
}
