/*
 * beadsim: the bead image model (Hankel-transform optics tabulated as
 * I(r, z), rendered by Gauss-Legendre pixel integration), the seeded RNG,
 * the camera noise model and the OU step; see beadsim.h.
 */
#include "beadsim.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#define GL_PANEL 8		/* Gauss-Legendre points per quadrature panel */
#define ZBLOCK 8		/* z planes computed per pass over the J0 matrix */
#define RCHUNK 256		/* radii per pass, so that sums stay in cache */
#define SS_MAX 8		/* most pixel sub-samples per side */
/*
 * Quadrature panels per period of the fastest oscillation over the pupil
 * (an upper bound). 0.3 already agrees with 3.0 to 5e-6 in |U|^2 and 0.45
 * to 1e-6 (z up to +-10 um, ROI 64); 0.6 leaves a margin.
 */
#define PANELS_PER_PERIOD 0.6

struct ms_beadsim {
	struct ms_beadsim_params p;
	double qc;		/* pupil cut-off, 1/nm */
	double k;		/* wavenumber in the medium, rad/nm */
	/* The image-side quadrature: nodes q_j, with 2 pi q_j w_j D(q_j) folded in. */
	size_t nq;
	double *q, *cre, *cim, *kzk;	/* kzk = k_z(q) - k */
	/*
	 * The table: tab[k][i] = background (|U|^2 - 1) taper(r) at r = i dr,
	 * z = z0 + (k - 1) dz: nz planes cover [z0, z0 + (nz - 1) dz], and
	 * one more at each end serves the cubic interpolation in z.
	 */
	size_t nr, nz, ntab;
	double dr, z0, dz;
	float *tab;
	/* Sub-pixel sample offsets in [-1/2, 1/2] and their weights (sum 1). */
	int ns;
	double soff[SS_MAX], sw[SS_MAX];
};

/* ---- quadrature -------------------------------------------------------- */

/* n-point Gauss-Legendre nodes and weights on [-1, 1], by Newton's method. */
static void gauss_legendre(int n, double *x, double *w)
{
	for (int i = 0; i < n; i++) {
		double t = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1;
		for (int it = 0; it < 100; it++) {
			double p0 = 1, p1 = t;
			for (int j = 2; j <= n; j++) {
				double p2 = ((2 * j - 1) * t * p1 - (j - 1) * p0) / j;
				p0 = p1;
				p1 = p2;
			}
			if (n == 1) {
				p1 = t;
				p0 = 1;
			}
			dp = n * (t * p1 - p0) / (t * t - 1);
			double dt = p1 / dp;
			t -= dt;
			if (fabs(dt) < 1e-15)
				break;
		}
		x[i] = t;
		w[i] = 2 / ((1 - t * t) * dp * dp);
	}
}

/* Panels x GL_PANEL nodes over [a, b]: nodes in x, weights in w. */
static void panel_nodes(double a, double b, size_t panels, double *x, double *w)
{
	double gx[GL_PANEL], gw[GL_PANEL];
	gauss_legendre(GL_PANEL, gx, gw);
	double h = (b - a) / (double)panels;
	for (size_t p = 0; p < panels; p++) {
		double mid = a + h * ((double)p + 0.5);
		for (int i = 0; i < GL_PANEL; i++) {
			x[p * GL_PANEL + i] = mid + 0.5 * h * gx[i];
			w[p * GL_PANEL + i] = 0.5 * h * gw[i];
		}
	}
}

/* ---- the model --------------------------------------------------------- */

void ms_beadsim_defaults(struct ms_beadsim_params *p)
{
	*p = (struct ms_beadsim_params){
		.nm_per_px = 100,
		.radius_nm = 1500,
		.wavelength_nm = 550,
		.n_sphere = 1.59,
		.n_medium = 1.33,
		.na = 1.3,
		.absorption_per_nm = 0,
		.background = 0.4,
		.render_radius_px = 48,
		.taper_px = 0,
		.z_min_nm = 0,
		.z_max_nm = 0,
		.dz_nm = 10,
		.dr_px = 0,
		.supersample = 4,
	};
}

static int check_params(const struct ms_beadsim_params *p, ms_err *e)
{
#define POS(f) if (!(p->f > 0) || !isfinite(p->f)) \
	return ms_err_set(e, "bead model: " #f " must be a positive number, not %g", p->f)
	POS(nm_per_px);
	POS(radius_nm);
	POS(wavelength_nm);
	POS(n_sphere);
	POS(n_medium);
	POS(na);
	POS(render_radius_px);
	POS(dz_nm);
#undef POS
	if (!(p->absorption_per_nm >= 0) || !isfinite(p->absorption_per_nm))
		return ms_err_set(e, "bead model: absorption_per_nm must be >= 0, not %g",
		                  p->absorption_per_nm);
	if (!(p->background >= 0 && p->background <= 1))
		return ms_err_set(e, "bead model: background must be from 0 to 1, not %g",
		                  p->background);
	if (p->na >= p->n_medium)
		return ms_err_set(e, "bead model: NA %g must be below the medium's index %g",
		                  p->na, p->n_medium);
	if (!(p->taper_px >= 0 && p->taper_px <= p->render_radius_px))
		return ms_err_set(e, "bead model: taper %g px must be from 0 to the render radius %g px",
		                  p->taper_px, p->render_radius_px);
	if (!(p->dr_px >= 0 && p->dr_px <= 0.5))
		return ms_err_set(e, "bead model: radial step %g px must be from 0 to 0.5", p->dr_px);
	if (p->supersample < 1 || p->supersample > SS_MAX)
		return ms_err_set(e, "bead model: supersampling %d must be from 1 to %d",
		                  p->supersample, SS_MAX);
	if (!isfinite(p->z_min_nm) || !isfinite(p->z_max_nm) || p->z_max_nm < p->z_min_nm)
		return ms_err_set(e, "bead model: bad z range %g..%g nm", p->z_min_nm, p->z_max_nm);
	if ((p->z_max_nm - p->z_min_nm) / p->dz_nm > 1e6)
		return ms_err_set(e, "bead model: z range %g..%g nm in %g nm steps is too many planes",
		                  p->z_min_nm, p->z_max_nm, p->dz_nm);
	if (p->render_radius_px > 4096)
		return ms_err_set(e, "bead model: render radius %g px is too large", p->render_radius_px);
	return 0;
}

static double kz_minus_k(const struct ms_beadsim *s, double q)
{
	double kt = 2 * M_PI * q;
	double kz2 = s->k * s->k - kt * kt;
	return sqrt(kz2 > 0 ? kz2 : 0) - s->k;
}

/*
 * The object spectrum D(q) = 2 pi int_0^a (T(rho) - 1) J0(2 pi q rho) rho
 * drho, for every image-side node. With u = sqrt(a^2 - rho^2) (half the
 * chord), rho drho = -u du and the phase is linear in u, so the integrand
 * is smooth and Gauss-Legendre converges fast despite the sphere's edge.
 */
static int object_spectrum(struct ms_beadsim *s, ms_err *e)
{
	const struct ms_beadsim_params *p = &s->p;
	double a = p->radius_nm;
	double phase_per_u = 2 * M_PI * (p->n_sphere - p->n_medium) * 2 / p->wavelength_nm;
	double periods = fabs(phase_per_u) * a / (2 * M_PI) + s->qc * a;
	size_t panels = (size_t)ceil(2 * periods) + 8;
	size_t nu = panels * GL_PANEL;
	double *u = malloc(nu * sizeof *u), *w = malloc(nu * sizeof *w);
	double *gre = malloc(nu * sizeof *gre), *gim = malloc(nu * sizeof *gim);
	double *rho = malloc(nu * sizeof *rho);
	if (!u || !w || !gre || !gim || !rho) {
		free(u), free(w), free(gre), free(gim), free(rho);
		return ms_err_set(e, "bead model: out of memory");
	}
	panel_nodes(0, a, panels, u, w);
	for (size_t i = 0; i < nu; i++) {
		double amp = exp(-p->absorption_per_nm * 2 * u[i]);
		double ph = phase_per_u * u[i];
		gre[i] = (amp * cos(ph) - 1) * u[i] * w[i];
		gim[i] = amp * sin(ph) * u[i] * w[i];
		rho[i] = sqrt(a * a - u[i] * u[i]);
	}
	for (size_t j = 0; j < s->nq; j++) {
		double re = 0, im = 0, kr = 2 * M_PI * s->q[j];
		for (size_t i = 0; i < nu; i++) {
			double b = j0(kr * rho[i]);
			re += gre[i] * b;
			im += gim[i] * b;
		}
		s->cre[j] *= 2 * M_PI * re;
		s->cim[j] *= 2 * M_PI * im;
	}
	free(u), free(w), free(gre), free(gim), free(rho);
	return 0;
}

static double taper(const struct ms_beadsim *s, double r)
{
	double R = s->p.render_radius_px, T = s->p.taper_px;
	if (r >= R)
		return 0;
	if (r <= R - T)
		return 1;
	return 0.5 + 0.5 * cos(M_PI * (r - (R - T)) / T);
}

/* y += a x; the table's inner loop, written out for SSE (see radii). */
static void axpy(float *restrict y, const float *restrict x, size_t n, float a)
{
	size_t i = 0;
#ifdef __SSE2__
	__m128 va = _mm_set1_ps(a);
	for (; i + 4 <= n; i += 4)
		_mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_mul_ps(va, _mm_loadu_ps(x + i))));
#endif
	for (; i < n; i++)
		y[i] += a * x[i];
}

/* y += sum_k a[k] x[k * stride + i], four rows at a time. */
static void axpy4(float *restrict y, const float *restrict x, size_t stride, size_t n,
                  const float *restrict a)
{
	const float *x0 = x, *x1 = x + stride, *x2 = x1 + stride, *x3 = x2 + stride;
	size_t i = 0;
#ifdef __SSE2__
	__m128 a0 = _mm_set1_ps(a[0]), a1 = _mm_set1_ps(a[1]);
	__m128 a2 = _mm_set1_ps(a[2]), a3 = _mm_set1_ps(a[3]);
	for (; i + 4 <= n; i += 4) {
		__m128 t = _mm_add_ps(_mm_mul_ps(a0, _mm_loadu_ps(x0 + i)),
		                      _mm_mul_ps(a1, _mm_loadu_ps(x1 + i)));
		__m128 u = _mm_add_ps(_mm_mul_ps(a2, _mm_loadu_ps(x2 + i)),
		                      _mm_mul_ps(a3, _mm_loadu_ps(x3 + i)));
		_mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_add_ps(t, u)));
	}
#endif
	for (; i < n; i++)
		y[i] += (a[0] * x0[i] + a[1] * x1[i]) + (a[2] * x2[i] + a[3] * x3[i]);
}

/*
 * The table: per z plane, S(r) = 2 pi int_0^qc D(q) e^{i z (k_z - k)}
 * J0(2 pi q r) q dq, and |U|^2 - 1 = 2 Re S + |S|^2 (the unscattered wave
 * is 1 after taking out the common phase e^{i k z}). The sum over q is a
 * real matrix (J0) times complex vectors; planes go in blocks so that each
 * row of the matrix is reused from cache.
 */
static int build_table(struct ms_beadsim *s, ms_err *e)
{
	size_t nq = s->nq, nr = s->nr;
	float *J = malloc(nq * nr * sizeof *J);
	float *acc = malloc(2 * ZBLOCK * nr * sizeof *acc);
	float *c = malloc(2 * ZBLOCK * nq * sizeof *c);
	double *tw = malloc(nr * sizeof *tw);
	if (!J || !acc || !c || !tw) {
		free(J), free(acc), free(c), free(tw);
		return ms_err_set(e, "bead model: out of memory for a %zu x %zu table", nq, nr);
	}
	double nm = s->p.nm_per_px;
	for (size_t j = 0; j < nq; j++) {
		double kr = 2 * M_PI * s->q[j] * nm * s->dr;
		for (size_t i = 0; i < nr; i++)
			J[j * nr + i] = (float)j0(kr * (double)i);
	}
	for (size_t i = 0; i < nr; i++)
		tw[i] = s->p.background * taper(s, (double)i * s->dr);
	for (size_t z0 = 0; z0 < s->ntab; z0 += ZBLOCK) {
		size_t nb = s->ntab - z0 < ZBLOCK ? s->ntab - z0 : ZBLOCK;
		for (size_t b = 0; b < nb; b++) {
			double z = s->z0 + ((double)(z0 + b) - 1) * s->dz;
			for (size_t j = 0; j < nq; j++) {
				double ph = z * s->kzk[j], cs = cos(ph), sn = sin(ph);
				c[(2 * b) * nq + j] = (float)(s->cre[j] * cs - s->cim[j] * sn);
				c[(2 * b + 1) * nq + j] = (float)(s->cre[j] * sn + s->cim[j] * cs);
			}
		}
		/* Chunks of radii small enough that the sums stay in L1. */
		for (size_t r0 = 0; r0 < nr; r0 += RCHUNK) {
			size_t n = nr - r0 < RCHUNK ? nr - r0 : RCHUNK;
			for (size_t b = 0; b < 2 * nb; b++)
				memset(acc + b * nr + r0, 0, n * sizeof *acc);
			size_t j = 0;
			for (; j + 4 <= nq; j += 4)
				for (size_t b = 0; b < 2 * nb; b++)
					axpy4(acc + b * nr + r0, J + j * nr + r0, nr, n, c + b * nq + j);
			for (; j < nq; j++)
				for (size_t b = 0; b < 2 * nb; b++)
					axpy(acc + b * nr + r0, J + j * nr + r0, n, c[b * nq + j]);
		}
		for (size_t b = 0; b < nb; b++) {
			const float *re = acc + 2 * b * nr, *im = re + nr;
			float *t = s->tab + (z0 + b) * nr;
			for (size_t i = 0; i < nr; i++) {
				double sr = re[i], si = im[i];
				t[i] = (float)(tw[i] * (2 * sr + sr * sr + si * si));
			}
		}
	}
	free(J), free(acc), free(c), free(tw);
	return 0;
}

struct ms_beadsim *ms_beadsim_new(const struct ms_beadsim_params *params, ms_err *e)
{
	if (check_params(params, e) < 0)
		return NULL;
	struct ms_beadsim *s = calloc(1, sizeof *s);
	if (!s) {
		ms_err_set(e, "bead model: out of memory");
		return NULL;
	}
	s->p = *params;
	struct ms_beadsim_params *p = &s->p;
	if (p->taper_px == 0)
		p->taper_px = p->render_radius_px / 4;
	s->qc = p->na / p->wavelength_nm;
	s->k = 2 * M_PI * p->n_medium / p->wavelength_nm;
	if (p->dr_px == 0) {
		/*
		 * The intensity holds no period shorter than lambda / (2 NA);
		 * 80 steps per period keep linear interpolation in r within
		 * 1e-3 of the background (measured in t-beadsim).
		 */
		double period_px = p->wavelength_nm / (2 * p->na) / p->nm_per_px;
		p->dr_px = fmin(0.025, period_px / 80);
	}
	s->dr = p->dr_px;
	/* Beyond the render radius the table holds zeros, so lookups can clamp. */
	s->nr = (size_t)ceil(p->render_radius_px / s->dr) + 3;
	s->z0 = p->z_min_nm;
	s->dz = p->dz_nm;
	s->nz = (size_t)ceil((p->z_max_nm - p->z_min_nm) / p->dz_nm - 1e-9) + 1;
	if (s->nz < 2)
		s->nz = 2;
	s->ntab = s->nz + 2;

	/*
	 * Image-side nodes: enough panels for every oscillation of the
	 * integrand over [0, qc]: J0 over the render radius, the object's
	 * spectrum over the bead radius, and the defocus phase, steepest at
	 * the pupil edge (d/dq of z k_z is z (2 pi)^2 q / k_z).
	 */
	double zabs = fmax(fabs(s->z0 - s->dz), fabs(s->z0 + (double)s->nz * s->dz));
	double kzc = s->k + kz_minus_k(s, s->qc);
	double periods = s->qc * (p->render_radius_px * p->nm_per_px + p->radius_nm +
	                          zabs * 2 * M_PI * s->qc / kzc);
	size_t panels = (size_t)ceil(PANELS_PER_PERIOD * periods) + 4;
	s->nq = panels * GL_PANEL;
	s->q = malloc(s->nq * sizeof *s->q);
	s->cre = malloc(s->nq * sizeof *s->cre);
	s->cim = malloc(s->nq * sizeof *s->cim);
	s->kzk = malloc(s->nq * sizeof *s->kzk);
	s->tab = malloc(s->ntab * s->nr * sizeof *s->tab);
	if (!s->q || !s->cre || !s->cim || !s->kzk || !s->tab) {
		ms_err_set(e, "bead model: out of memory for %zu z planes of %zu radii", s->nz, s->nr);
		ms_beadsim_free(s);
		return NULL;
	}
	panel_nodes(0, s->qc, panels, s->q, s->cre);
	for (size_t j = 0; j < s->nq; j++) {
		s->cre[j] *= 2 * M_PI * s->q[j];	/* weight x Jacobian of the inverse transform */
		s->cim[j] = s->cre[j];
		s->kzk[j] = kz_minus_k(s, s->q[j]);
	}
	if (object_spectrum(s, e) < 0 || build_table(s, e) < 0) {
		ms_beadsim_free(s);
		return NULL;
	}

	s->ns = p->supersample;
	double gx[SS_MAX], gw[SS_MAX];
	gauss_legendre(s->ns, gx, gw);
	for (int i = 0; i < s->ns; i++) {
		s->soff[i] = 0.5 * gx[i];
		s->sw[i] = 0.5 * gw[i];
	}
	return s;
}

void ms_beadsim_free(struct ms_beadsim *s)
{
	if (!s)
		return;
	free(s->q), free(s->cre), free(s->cim), free(s->kzk), free(s->tab);
	free(s);
}

const struct ms_beadsim_params *ms_beadsim_params(const struct ms_beadsim *s)
{
	return &s->p;
}

void ms_beadsim_zrange(const struct ms_beadsim *s, double *z_min, double *z_max)
{
	*z_min = s->z0;
	*z_max = s->z0 + (double)(s->nz - 1) * s->dz;
}

void ms_beadsim_table_size(const struct ms_beadsim *s, size_t *nr, size_t *nz)
{
	*nr = s->nr;
	*nz = s->nz;
}

double ms_beadsim_intensity_exact(const struct ms_beadsim *s, double r_px, double z_nm)
{
	double re = 0, im = 0, rn = 2 * M_PI * fabs(r_px) * s->p.nm_per_px;
	for (size_t j = 0; j < s->nq; j++) {
		double ph = z_nm * s->kzk[j], cs = cos(ph), sn = sin(ph);
		double b = j0(rn * s->q[j]);
		re += (s->cre[j] * cs - s->cim[j] * sn) * b;
		im += (s->cre[j] * sn + s->cim[j] * cs) * b;
	}
	return (1 + re) * (1 + re) + im * im;
}

/*
 * Where z falls: the interval [iz, iz + 1] of covered planes and the
 * Catmull-Rom weights of the stored planes iz .. iz + 3 (covered planes
 * iz - 1 .. iz + 2). Cubic rather than linear in z because the bright
 * focal spot changes fast with z; the result is C1 in z and exact for
 * quadratics. Returns -1 outside the covered range.
 */
static int zplane(const struct ms_beadsim *s, double z, size_t *iz, float w[4])
{
	double t = (z - s->z0) / s->dz;
	double last = (double)(s->nz - 1);
	if (!(t >= -1e-9 && t <= last + 1e-9))
		return -1;
	t = fmin(fmax(t, 0), last);
	size_t i = (size_t)t;
	if (i > s->nz - 2)
		i = s->nz - 2;
	double f = t - (double)i, f2 = f * f, f3 = f2 * f;
	w[0] = (float)(0.5 * (-f3 + 2 * f2 - f));
	w[1] = (float)(0.5 * (3 * f3 - 5 * f2 + 2));
	w[2] = (float)(0.5 * (-3 * f3 + 4 * f2 + f));
	w[3] = (float)(0.5 * (f3 - f2));
	*iz = i;
	return 0;
}

/* prof[i] = the table at z (weights from zplane), for radii 0..nr-1. */
static void zprofile(const struct ms_beadsim *s, size_t iz, const float w[4], float *prof)
{
	size_t nr = s->nr;
	const float *a = s->tab + iz * nr, *b = a + nr, *c = b + nr, *d = c + nr;
	for (size_t i = 0; i < nr; i++)
		prof[i] = (w[0] * a[i] + w[1] * b[i]) + (w[2] * c[i] + w[3] * d[i]);
}

double ms_beadsim_deviation(const struct ms_beadsim *s, double r_px, double z_nm)
{
	size_t iz;
	float w[4];
	if (zplane(s, z_nm, &iz, w) < 0)
		return NAN;
	/* The same float arithmetic as the renderer. */
	size_t nr = s->nr;
	const float *a = s->tab + iz * nr, *b = a + nr, *c = b + nr, *d = c + nr;
	float rr = fminf((float)fabs(r_px) * (float)(1.0 / s->dr), (float)(nr - 1));
	size_t i = (size_t)rr;
	float fr = rr - (float)i;
	float p0 = (w[0] * a[i] + w[1] * b[i]) + (w[2] * c[i] + w[3] * d[i]);
	float p1 = 0;
	if (i + 1 < nr)
		p1 = (w[0] * a[i + 1] + w[1] * b[i + 1]) + (w[2] * c[i + 1] + w[3] * d[i + 1]);
	return p0 + fr * (p1 - p0);
}

void ms_beadsim_fill(const struct ms_beadsim *s, float *img, size_t n)
{
	float bg = (float)s->p.background;
	for (size_t i = 0; i < n; i++)
		img[i] = bg;
}

/*
 * r = min(sqrt(dx2 + dy2), rmax) over a row of samples: the renderer's hot
 * loop. The compiler will not vectorise sqrtf (it may set errno), so on
 * x86 the SSE form says directly what is meant; results are identical,
 * both being correctly rounded square roots.
 */
static void radii(float *restrict r, const float *restrict dx2, size_t n, float dy2, float rmax)
{
	size_t j = 0;
#ifdef __SSE2__
	__m128 vy = _mm_set1_ps(dy2), vmax = _mm_set1_ps(rmax);
	for (; j + 4 <= n; j += 4) {
		__m128 v = _mm_sqrt_ps(_mm_add_ps(_mm_loadu_ps(dx2 + j), vy));
		_mm_storeu_ps(r + j, _mm_min_ps(v, vmax));
	}
#endif
	for (; j < n; j++) {
		float v = sqrtf(dx2[j] + dy2);
		r[j] = v < rmax ? v : rmax;
	}
}

/* acc += w * (the profile linearly interpolated at fractional index r). */
static void lerp_add(float *restrict acc, const float *restrict r, size_t n,
                     const float *restrict prof, float w)
{
	size_t j = 0;
#ifdef __SSE2__
	__m128 vw = _mm_set1_ps(w);
	for (; j + 4 <= n; j += 4) {
		__m128 x = _mm_loadu_ps(r + j);
		__m128i i = _mm_cvttps_epi32(x);
		__m128 f = _mm_sub_ps(x, _mm_cvtepi32_ps(i));
		int k[4];
		_mm_storeu_si128((__m128i *)k, i);
		__m128 a = _mm_setr_ps(prof[k[0]], prof[k[1]], prof[k[2]], prof[k[3]]);
		__m128 b = _mm_setr_ps(prof[k[0] + 1], prof[k[1] + 1], prof[k[2] + 1], prof[k[3] + 1]);
		__m128 v = _mm_add_ps(a, _mm_mul_ps(f, _mm_sub_ps(b, a)));
		_mm_storeu_ps(acc + j, _mm_add_ps(_mm_loadu_ps(acc + j), _mm_mul_ps(vw, v)));
	}
#endif
	for (; j < n; j++) {
		int i = (int)r[j];
		float f = r[j] - (float)i;
		acc[j] += w * (prof[i] + f * (prof[i + 1] - prof[i]));
	}
}

int ms_beadsim_add(const struct ms_beadsim *s, float *img, int width, int height,
                   double cx, double cy, double z_nm, ms_err *e)
{
	size_t iz;
	float zw[4];
	if (zplane(s, z_nm, &iz, zw) < 0) {
		double lo, hi;
		ms_beadsim_zrange(s, &lo, &hi);
		return ms_err_set(e, "bead model: z %g nm is outside the table's range %g..%g nm",
		                  z_nm, lo, hi);
	}
	if (!isfinite(cx) || !isfinite(cy))
		return ms_err_set(e, "bead model: bad bead centre (%g, %g)", cx, cy);
	double R = s->p.render_radius_px;
	/* Pixels whose area meets the render disc. */
	long x0 = (long)floor(cx - R - 0.5), x1 = (long)ceil(cx + R + 0.5);
	long y0 = (long)floor(cy - R - 0.5), y1 = (long)ceil(cy + R + 0.5);
	if (x0 < 0) x0 = 0;
	if (y0 < 0) y0 = 0;
	if (x1 > width - 1) x1 = width - 1;
	if (y1 > height - 1) y1 = height - 1;
	if (x0 > x1 || y0 > y1)
		return 0;

	/* This bead's radial profile, interpolated once in z; padded with a 0. */
	size_t nr = s->nr, nx = (size_t)(x1 - x0 + 1);
	int ns = s->ns;
	/* One allocation: profile, squared x offsets, radii, weighted sums. */
	size_t nsx = nx * (size_t)ns;
	float *prof = malloc((nr + 1 + 3 * nsx) * sizeof *prof);
	if (!prof)
		return ms_err_set(e, "bead model: out of memory");
	float *dx2 = prof + nr + 1, *rr = dx2 + nsx, *val = rr + nsx;
	float wx[SS_MAX];
	for (int k = 0; k < ns; k++)
		wx[k] = (float)s->sw[k];
	zprofile(s, iz, zw, prof);
	prof[nr] = 0;
	/* Squared offsets in table steps, so the radius comes out in index units. */
	double inv = 1.0 / s->dr;
	for (size_t i = 0; i < nx; i++)
		for (int k = 0; k < ns; k++) {
			double d = ((double)x0 + (double)i + s->soff[k] - cx) * inv;
			dx2[i * (size_t)ns + (size_t)k] = (float)(d * d);
		}
	float rmax = (float)(nr - 1);

	for (long y = y0; y <= y1; y++) {
		double dmin = fabs((double)y - cy) - 0.5;
		if (dmin > R)
			continue;
		/* Only the chord of the disc on this row. */
		double half = dmin > 0 ? sqrt(R * R - dmin * dmin) : R;
		long xa = (long)floor(cx - half - 0.5), xb = (long)ceil(cx + half + 0.5);
		if (xa < x0) xa = x0;
		if (xb > x1) xb = x1;
		size_t ja = (size_t)(xa - x0) * (size_t)ns, jb = (size_t)(xb - x0 + 1) * (size_t)ns;
		size_t np = (size_t)(xb - xa + 1);
		float *row = img + (size_t)y * (size_t)width + xa;
		if (ns == 1) {
			/* One sample per pixel (--fast-render): straight into the image. */
			double d = ((double)y - cy) * inv;
			radii(rr + ja, dx2 + ja, np, (float)(d * d), rmax);
			lerp_add(row, rr + ja, np, prof, 1.0f);
			continue;
		}
		memset(val + ja, 0, (jb - ja) * sizeof *val);
		for (int a = 0; a < ns; a++) {
			double d = ((double)y + s->soff[a] - cy) * inv;
			radii(rr + ja, dx2 + ja, jb - ja, (float)(d * d), rmax);
			lerp_add(val + ja, rr + ja, jb - ja, prof, (float)s->sw[a]);
		}
		for (size_t x = 0; x < np; x++) {
			const float *v = val + ja + x * (size_t)ns;
			float sum = 0;
			for (int k = 0; k < ns; k++)
				sum += wx[k] * v[k];
			row[x] += sum;
		}
	}
	free(prof);
	return 0;
}

/* ---- the camera -------------------------------------------------------- */

void ms_beadsim_camera(const float *in, size_t n, double photons, double read_noise_e,
                       enum ms_pixfmt fmt, void *out, struct ms_rng *rng)
{
	double full = ms_pixfmt_max(fmt);
	uint8_t *o8 = out;
	uint16_t *o16 = out;
	struct ms_poisson c = { .mean = -1 };
	double inv_photons = photons > 0 ? 1 / photons : 0;
	for (size_t i = 0; i < n; i++) {
		double v = in[i];
		if (!(v > 0))
			v = 0;
		else if (v > 1)
			v = 1;
		if (photons > 0) {
			ms_poisson_prepare(&c, v * photons);
			double el = ms_rng_poisson_prepared(rng, &c);
			if (read_noise_e > 0)
				el += read_noise_e * ms_rng_normal(rng);
			v = el * inv_photons;
			if (v < 0)
				v = 0;
			else if (v > 1)
				v = 1;
		}
		/* v is in [0, 1]: truncation after + 0.5 rounds. */
		unsigned q = (unsigned)(v * full + 0.5);
		if (fmt == MS_PIX_U16)
			o16[i] = (uint16_t)q;
		else
			o8[i] = (uint8_t)q;
	}
}

/* One row of the approximate camera; bank holds n deviates for it. */
static void camera_row_approx(const float *restrict in, size_t n, float inv_ph, float rn2,
                              float full, bool noise, enum ms_pixfmt fmt, void *out,
                              const float *restrict g)
{
	uint8_t *o8 = out;
	uint16_t *o16 = out;
	size_t i = 0;
#ifdef __SSE2__
	const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1), vfull = _mm_set1_ps(full);
	const __m128 vinv = _mm_set1_ps(inv_ph), vrn2 = _mm_set1_ps(rn2), half = _mm_set1_ps(0.5f);
	const __m128 tiny = _mm_set1_ps(1e-30f);
	for (; i + 8 <= n; i += 8) {
		__m128i q[2];
		for (int h = 0; h < 2; h++) {
			__m128 v = _mm_min_ps(_mm_max_ps(_mm_loadu_ps(in + i + 4 * h), zero), one);
			if (noise) {
				/* The noise's amplitude needs no more than rsqrt's 12 bits. */
				__m128 var = _mm_max_ps(_mm_add_ps(_mm_mul_ps(v, vinv), vrn2), tiny);
				__m128 sd = _mm_mul_ps(var, _mm_rsqrt_ps(var));
				v = _mm_add_ps(v, _mm_mul_ps(sd, _mm_loadu_ps(g + i + 4 * h)));
				v = _mm_min_ps(_mm_max_ps(v, zero), one);
			}
			q[h] = _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(v, vfull), half));
		}
		/* Values are 0..65535: the signed packs would clip, so mask and pack down. */
		__m128i w = _mm_packs_epi32(_mm_sub_epi32(q[0], _mm_set1_epi32(32768)),
		                            _mm_sub_epi32(q[1], _mm_set1_epi32(32768)));
		w = _mm_xor_si128(w, _mm_set1_epi16((short)0x8000));
		if (fmt == MS_PIX_U16) {
			_mm_storeu_si128((__m128i *)(o16 + i), w);
		} else {
			__m128i b = _mm_packus_epi16(w, w);
			_mm_storel_epi64((__m128i *)(o8 + i), b);
		}
	}
#endif
	for (; i < n; i++) {
		float v = in[i];
		v = v > 0 ? (v < 1 ? v : 1) : 0;
		if (noise) {
			v += sqrtf(v * inv_ph + rn2) * g[i];
			v = v > 0 ? (v < 1 ? v : 1) : 0;
		}
		unsigned q = (unsigned)(v * full + 0.5f);
		if (fmt == MS_PIX_U16)
			o16[i] = (uint16_t)q;
		else
			o8[i] = (uint8_t)q;
	}
}

void ms_beadsim_camera_approx(const float *in, size_t width, size_t height, double photons,
                              double read_noise_e, enum ms_pixfmt fmt, void *out,
                              const float *bank, size_t nbank, struct ms_rng *rng)
{
	bool noise = photons > 0 && bank && nbank >= width;
	float inv_ph = noise ? (float)(1 / photons) : 0;
	float rn2 = noise ? (float)(read_noise_e * read_noise_e / (photons * photons)) : 0;
	float full = (float)ms_pixfmt_max(fmt);
	size_t bpp = ms_pixfmt_bytes(fmt);
	for (size_t y = 0; y < height; y++) {
		const float *g = NULL;
		if (noise)
			g = bank + ms_rng_next(rng) % (nbank - width + 1);
		camera_row_approx(in + y * width, width, inv_ph, rn2, full, noise, fmt,
		                  (unsigned char *)out + y * width * bpp, g);
	}
}

/* ---- dynamics ---------------------------------------------------------- */

double ms_ou_step(double x, double mu, double theta, double sigma, double dt, struct ms_rng *r)
{
	return x + theta * (mu - x) * dt + sigma * sqrt(dt) * ms_rng_normal(r);
}

double ms_ou_stationary_sd(double theta, double sigma, double dt)
{
	/* Var = sigma^2 dt / (1 - (1 - theta dt)^2) for the Euler recursion. */
	double d = theta * (2 - theta * dt);
	return d > 0 ? sigma / sqrt(d) : INFINITY;
}

/* ---- the Cramer-Rao bound ---------------------------------------------- */

#define CRLB_NP 5		/* x, y, z, gain, offset */

/*
 * One clip of the censored Gaussian's information: phi(a)^2 / Q(a) with Q
 * the upper tail beyond a. Q = erfc(a / sqrt 2) / 2 has no cancellation;
 * far out (where Q underflows) phi / Q -> a, and the term vanishes anyway.
 */
static double clip_term(double a)
{
	double phi = exp(-0.5 * a * a) / sqrt(2 * M_PI);
	double q = 0.5 * erfc(a / M_SQRT2);
	return q > 0 ? phi * (phi / q) : phi * a;
}

double ms_clipped_gauss_info(double mu, double sd, double lo, double hi)
{
	if (!(sd > 0))
		return mu > lo && mu < hi ? 1 : 0;
	double a = (hi - mu) / sd, b = (lo - mu) / sd;
	/* the unclipped part: int_b^a t^2 phi(t) dt = [Phi(t) - t phi(t)]_b^a,
	 * with Phi(a) - Phi(b) taken from the two tails, as erfc keeps them */
	double phia = exp(-0.5 * a * a) / sqrt(2 * M_PI), phib = exp(-0.5 * b * b) / sqrt(2 * M_PI);
	double inner = 1 - 0.5 * erfc(a / M_SQRT2) - 0.5 * erfc(-b / M_SQRT2);
	inner -= (isfinite(a) ? a * phia : 0) - (isfinite(b) ? b * phib : 0);
	/* each clipped end reads one value, whose probability tells of mu:
	 * its score is phi / Q per sd, so it adds phi^2 / Q */
	double f = inner + (isfinite(a) ? clip_term(a) : 0) + (isfinite(b) ? clip_term(-b) : 0);
	return f < 0 ? 0 : f > 1 ? 1 : f;
}

/* The w x w image of one bead, clipped as the camera clips it. */
static int crlb_render(const struct ms_beadsim *s, float *img, int w, double cx, double cy,
                       double z, ms_err *e)
{
	size_t n = (size_t)w * (size_t)w;
	ms_beadsim_fill(s, img, n);
	if (ms_beadsim_add(s, img, w, w, cx, cy, z, e) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		img[i] = img[i] < 0 ? 0 : img[i] > 1 ? 1 : img[i];
	return 0;
}

/* Invert a symmetric positive definite matrix in place (Gauss-Jordan with
 * partial pivoting); -1 when singular. */
static int invert(double a[CRLB_NP][CRLB_NP], int n)
{
	double inv[CRLB_NP][CRLB_NP] = { { 0 } };
	for (int i = 0; i < n; i++)
		inv[i][i] = 1;
	for (int c = 0; c < n; c++) {
		int piv = c;
		for (int r = c + 1; r < n; r++)
			if (fabs(a[r][c]) > fabs(a[piv][c]))
				piv = r;
		if (!(fabs(a[piv][c]) > 1e-300))
			return -1;
		for (int k = 0; k < n; k++) {
			double t = a[c][k]; a[c][k] = a[piv][k]; a[piv][k] = t;
			t = inv[c][k]; inv[c][k] = inv[piv][k]; inv[piv][k] = t;
		}
		double d = a[c][c];
		for (int k = 0; k < n; k++) {
			a[c][k] /= d;
			inv[c][k] /= d;
		}
		for (int r = 0; r < n; r++) {
			if (r == c)
				continue;
			double f = a[r][c];
			for (int k = 0; k < n; k++) {
				a[r][k] -= f * a[c][k];
				inv[r][k] -= f * inv[c][k];
			}
		}
	}
	memcpy(a, inv, sizeof inv);
	return 0;
}

int ms_beadsim_crlb(const struct ms_beadsim *s, int w, double cx, double cy, double z_nm,
                    const struct ms_crlb_camera *cam, struct ms_crlb *out, ms_err *e)
{
	const double dxy = 0.02, dz = 2.0;
	if (!(cam->photons > 0) || !(cam->read_noise_e >= 0) || !(cam->adu_e >= 0))
		return ms_err_set(e, "Cramer-Rao bound: needs photons > 0 (not %g) and a read noise "
		                  ">= 0", cam->photons);
	if (w < 2 || w > 4096)
		return ms_err_set(e, "Cramer-Rao bound: bad ROI size %d", w);
	size_t n = (size_t)w * (size_t)w;
	float *buf = malloc(7 * n * sizeof *buf);
	if (!buf)
		return ms_err_set(e, "Cramer-Rao bound: out of memory");
	float *img = buf, *d[6];
	for (int k = 0; k < 6; k++)
		d[k] = buf + (size_t)(k + 1) * n;
	/* d[2k], d[2k+1]: the image at theta_k + and - its step */
	int rc = crlb_render(s, img, w, cx, cy, z_nm, e);
	if (rc == 0)
		rc = crlb_render(s, d[0], w, cx + dxy, cy, z_nm, e);
	if (rc == 0)
		rc = crlb_render(s, d[1], w, cx - dxy, cy, z_nm, e);
	if (rc == 0)
		rc = crlb_render(s, d[2], w, cx, cy + dxy, z_nm, e);
	if (rc == 0)
		rc = crlb_render(s, d[3], w, cx, cy - dxy, z_nm, e);
	if (rc == 0)
		rc = crlb_render(s, d[4], w, cx, cy, z_nm + dz, e);
	if (rc == 0)
		rc = crlb_render(s, d[5], w, cx, cy, z_nm - dz, e);
	if (rc < 0) {
		free(buf);
		return -1;
	}
	double F[CRLB_NP][CRLB_NP] = { { 0 } };
	double ph = cam->photons;
	double extra = cam->read_noise_e * cam->read_noise_e + cam->adu_e * cam->adu_e / 12;
	/* the output rounds to counts: it reads 0 below half a count and full
	 * scale (photons electrons) above full scale less half a count */
	double lo = cam->adu_e / 2, hi = ph - cam->adu_e / 2;
	for (size_t i = 0; i < n; i++) {
		double mu = ph * img[i];
		double var = mu + extra;
		if (!(var > 0))
			continue;
		/* d mu / d theta: x, y, z by differences; gain mu/g at g = 1; offset 1 */
		double g[CRLB_NP] = {
			ph * ((double)d[0][i] - d[1][i]) / (2 * dxy),
			ph * ((double)d[2][i] - d[3][i]) / (2 * dxy),
			ph * ((double)d[4][i] - d[5][i]) / (2 * dz),
			mu,
			ph,
		};
		/* a pixel clipped before the noise reads full scale or noise
		 * about it whatever the parameters; one near full scale is
		 * censored by the clip after the noise, and tells less */
		if (img[i] >= 1)
			continue;
		double info = ms_clipped_gauss_info(mu, sqrt(var), lo, hi) / var;
		for (int a = 0; a < CRLB_NP; a++)
			for (int b = 0; b < CRLB_NP; b++)
				F[a][b] += g[a] * g[b] * info;
	}
	free(buf);
	if (invert(F, CRLB_NP) < 0 || !(F[0][0] > 0 && F[1][1] > 0 && F[2][2] > 0))
		return ms_err_set(e, "Cramer-Rao bound: the Fisher information is singular at z %g nm "
		                  "(no contrast?)", z_nm);
	out->x_px = sqrt(F[0][0]);
	out->y_px = sqrt(F[1][1]);
	out->z_nm = sqrt(F[2][2]);
	return 0;
}
