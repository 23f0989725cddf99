/*
 * qi: quadrant interpolation, van Loenhout, Kerssemakers, De Vlaminck and
 * Dekker (Biophys. J. 2012), in the form qtrk uses (reference:
 * tracking-algorithms.md, Part 2): four quadrant profiles sampled by
 * bilinear interpolation, the x and y profiles made of their half-plane
 * sums, and the shift read from the symmetry of each. The sampling
 * offsets are tabulated once per ms_qi (nang cos/sin pairs, nr radii), so
 * a ROI costs only the interpolation: 4 nr nang samples per step. See
 * kernels.h.
 */
#include "track/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ms_qi {
	int nr, nang;
	double rmin, dr;
	float *cs, *sn;		/* [nang]: cos, sin of (pi/2)(j + 1/2)/nang */
	float *win;		/* [nr]: the radial window */
	float *q;		/* [4][nr] quadrant profiles */
	float *px, *py;		/* [2 nr] */
	struct ms_acfine *acf;	/* for lines of 2 nr */
};

/* qtrk's radial bin window: zero at both ends of the radius range. */
static double qi_window(double x)
{
	double v = (1 - exp(-(1 - x) * (1 - x) / 0.05)) * (1 - exp(-x * x / 0.01)) * 2 * x;
	return v > 0 ? sqrt(v) : 0;
}

struct ms_qi *ms_qi_new(int nr, int nang, double rmin, double rmax)
{
	if (nr < 4 || nr > 128 || nang < 1 || nang > 4096 || !(rmin >= 0) || !(rmax > rmin))
		return NULL;
	struct ms_qi *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->nr = nr;
	q->nang = nang;
	q->rmin = rmin;
	q->dr = (rmax - rmin) / nr;
	q->cs = malloc((size_t)nang * sizeof *q->cs);
	q->sn = malloc((size_t)nang * sizeof *q->sn);
	q->win = malloc((size_t)nr * sizeof *q->win);
	q->q = malloc(4 * (size_t)nr * sizeof *q->q);
	q->px = malloc(2 * (size_t)nr * sizeof *q->px);
	q->py = malloc(2 * (size_t)nr * sizeof *q->py);
	q->acf = ms_acfine_new(2 * nr);
	if (!q->cs || !q->sn || !q->win || !q->q || !q->px || !q->py || !q->acf) {
		ms_qi_free(q);
		return NULL;
	}
	for (int j = 0; j < nang; j++) {
		double th = M_PI / 2 * (j + 0.5) / nang;
		q->cs[j] = (float)cos(th);
		q->sn[j] = (float)sin(th);
	}
	for (int i = 0; i < nr; i++)
		q->win[i] = (float)qi_window((i + 0.5) / nr);
	return q;
}

void ms_qi_free(struct ms_qi *q)
{
	if (!q)
		return;
	free(q->cs);
	free(q->sn);
	free(q->win);
	free(q->q);
	free(q->px);
	free(q->py);
	ms_acfine_free(q->acf);
	free(q);
}

/*
 * The four quadrant profiles about (x, y): quadrant k has signs (sx, sy) =
 * (+,+), (-,+), (-,-), (+,-) on (cos, sin). A bin with no sample inside
 * the ROI takes the ROI's mean, as qtrk's does.
 */
static void quadrants(const float *roi, int w, double x, double y, const struct ms_qi *q,
		      float mean)
{
	static const int sx[4] = {1, -1, -1, 1}, sy[4] = {1, 1, -1, -1};
	float fx = (float)x, fy = (float)y, lim = (float)(w - 1);
	for (int k = 0; k < 4; k++)
		for (int i = 0; i < q->nr; i++) {
			float r = (float)(q->rmin + (i + 0.5) * q->dr), sum = 0;
			int n = 0;
			for (int j = 0; j < q->nang; j++) {
				float px = fx + sx[k] * r * q->cs[j], py = fy + sy[k] * r * q->sn[j];
				if (!(px >= 0 && px < lim && py >= 0 && py < lim))
					continue;
				int ix = (int)px, iy = (int)py;
				float tx = px - ix, ty = py - iy;
				const float *p = roi + (size_t)iy * w + ix;
				float top = p[0] + tx * (p[1] - p[0]);
				float bot = p[w] + tx * (p[w + 1] - p[w]);
				sum += top + ty * (bot - top);
				n++;
			}
			q->q[k * q->nr + i] = n ? sum / n : mean;
		}
}

/* Mean-subtract and window (by radius, on both halves) a 2 nr profile. */
static void qi_prep(const struct ms_qi *q, float *p)
{
	int n = 2 * q->nr;
	double m = 0;
	for (int i = 0; i < n; i++)
		m += p[i];
	m /= n;
	for (int i = 0; i < q->nr; i++) {
		p[q->nr + i] = (float)((p[q->nr + i] - m) * q->win[i]);
		p[q->nr - 1 - i] = (float)((p[q->nr - 1 - i] - m) * q->win[i]);
	}
}

int ms_qi(const float *roi, int w, double x, double y, int iters, struct ms_qi *q, double *nx,
	  double *ny)
{
	*nx = *ny = NAN;
	if (!isfinite(x) || !isfinite(y) || x < 0 || x > w - 1 || y < 0 || y > w - 1)
		return -1;
	float mean = (float)ms_mean_f32(roi, (size_t)w * w);
	int nr = q->nr;
	const float *q0 = q->q, *q1 = q0 + nr, *q2 = q1 + nr, *q3 = q2 + nr;
	double c0 = nr - 0.5, scale = q->dr * M_PI / 2;
	for (int it = 0; it < iters; it++) {
		quadrants(roi, w, x, y, q, mean);
		for (int i = 0; i < nr; i++) {
			q->px[nr + i] = q0[i] + q3[i];		/* +x */
			q->px[nr - 1 - i] = q1[i] + q2[i];	/* -x */
			q->py[nr + i] = q0[i] + q1[i];		/* +y */
			q->py[nr - 1 - i] = q2[i] + q3[i];	/* -y */
		}
		qi_prep(q, q->px);
		qi_prep(q, q->py);
		double cx = ms_symmetric_centre(q->acf, q->px, c0);
		double cy = ms_symmetric_centre(q->acf, q->py, c0);
		if (!isfinite(cx) || !isfinite(cy))
			return -1;
		x += (cx - c0) * scale;
		y += (cy - c0) * scale;
		if (!(x >= 0 && x <= w - 1 && y >= 0 && y <= w - 1))
			return -1;
	}
	*nx = x;
	*ny = y;
	return 0;
}
