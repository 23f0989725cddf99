/* beadfind: NCC bead search with greedy selection; see beadfind.h. */
#include "beadfind.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <kissfft/kiss_fft.h>
#include <kissfft/kiss_fftr.h>

/*
 * Seedless search: an object must carry this many times the background's
 * high-pass energy to count as bead-like, and a template bead at least
 * this fraction of the strongest one's.
 */
#define AUTO_MIN_CONTRAST 3.0
#define AUTO_TEMPLATE_FRACTION 0.5
/*
 * After a round, objects left must reach this fraction of the median
 * selected bead's energy: the outer rings of selected beads (drawn out to
 * 48 px in ms-simulate, past a 64 px ROI) carry about 1% of it.
 */
#define LATER_FRACTION 0.1
/* The background energy reference is this quantile of the energy map. */
#define AUTO_BACKGROUND_QUANTILE 0.2
/*
 * A window whose standard deviation is below this fraction of the whole
 * image's scores 0: its denominator would only amplify the float FFT's
 * rounding (about 1e-5 of the image's scale) into a meaningless score.
 */
#define NCC_FLAT_WINDOW 1e-3
/*
 * The default threshold is never below the NCC map's median plus this
 * many robust standard deviations: white noise in a 64 px window gives
 * NCC values of sd 1/64, and the best of the ~1e6 windows of a 1024 px
 * frame reaches about 5 sd.
 */
#define NOISE_FLOOR_SIGMAS 8.0

void ms_find_opts_default(struct ms_find_opts *o)
{
	o->roi_size = 64;
	o->threshold = NAN;
	o->min_sep = 0;
	o->max = 0;
	o->templates = 4;
}

int32_t ms_find_roi_corner(double c, int size, uint32_t extent)
{
	/* nearbyint rounds half to even, like Python's round() in MagScope. */
	double x0 = nearbyint(c - size / 2.0);
	double hi = (double)extent - size;
	if (x0 > hi)
		x0 = hi;
	if (x0 < 0)
		x0 = 0;
	return (int32_t)x0;
}

/* The smallest even size >= n that KissFFT transforms quickly. */
static int fft_size(int n)
{
	int m = kiss_fft_next_fast_size(n);
	while (m % 2)
		m = kiss_fft_next_fast_size(m + 1);
	return m;
}

/* Summed-area table of v (or v squared): (w+1) x (h+1), zero first row and column. */
static double *sat_new(const float *v, int w, int h, bool squared)
{
	size_t sw = (size_t)w + 1;
	double *s = calloc(sw * ((size_t)h + 1), sizeof *s);
	if (!s)
		return NULL;
	for (int y = 0; y < h; y++) {
		const float *row = v + (size_t)y * (size_t)w;
		double run = 0;
		double *above = s + (size_t)y * sw, *cur = above + sw;
		for (int x = 0; x < w; x++) {
			double p = row[x];
			run += squared ? p * p : p;
			cur[x + 1] = above[x + 1] + run;
		}
	}
	return s;
}

/* Sum over columns [x0, x1) and rows [y0, y1) from a table of width w. */
static double sat_sum(const double *s, int w, int x0, int y0, int x1, int y1)
{
	size_t sw = (size_t)w + 1;
	return s[(size_t)y1 * sw + (size_t)x1] - s[(size_t)y0 * sw + (size_t)x1] -
	       s[(size_t)y1 * sw + (size_t)x0] + s[(size_t)y0 * sw + (size_t)x0];
}

/*
 * A 2-D real FFT of ph x pw (pw even): real transforms along the rows, then
 * complex ones down the pw/2+1 columns. (The packaged kiss_fftndr_alloc
 * of KissFFT 131.1.0 refuses every 2-D size through a faulty overflow
 * check, so the two passes are done here.)
 */
struct fft2 {
	int ph, pw, nb;
	kiss_fftr_cfg rf, ri;
	kiss_fft_cfg cf, ci;
	kiss_fft_cpx *col;
};

static void fft2_free(struct fft2 *f)
{
	kiss_fftr_free(f->rf);
	kiss_fftr_free(f->ri);
	kiss_fft_free(f->cf);
	kiss_fft_free(f->ci);
	free(f->col);
}

static int fft2_init(struct fft2 *f, int ph, int pw)
{
	f->ph = ph;
	f->pw = pw;
	f->nb = pw / 2 + 1;
	f->rf = kiss_fftr_alloc(pw, 0, NULL, NULL);
	f->ri = kiss_fftr_alloc(pw, 1, NULL, NULL);
	f->cf = kiss_fft_alloc(ph, 0, NULL, NULL);
	f->ci = kiss_fft_alloc(ph, 1, NULL, NULL);
	f->col = malloc((size_t)ph * sizeof *f->col);
	if (f->rf && f->ri && f->cf && f->ci && f->col)
		return 0;
	fft2_free(f);
	return -1;
}

/* Transform a column in place: gather, transform, scatter back. */
static void fft2_columns(struct fft2 *f, kiss_fft_cfg cfg, kiss_fft_cpx *data)
{
	size_t nb = (size_t)f->nb;
	for (size_t k = 0; k < nb; k++) {
		kiss_fft_stride(cfg, data + k, f->col, f->nb);
		for (size_t r = 0; r < (size_t)f->ph; r++)
			data[r * nb + k] = f->col[r];
	}
}

/* in: ph x pw reals, of which only the first rows rows are not zero. */
static void fft2_forward(struct fft2 *f, const float *in, int rows, kiss_fft_cpx *out)
{
	size_t nb = (size_t)f->nb;
	for (int r = 0; r < f->ph; r++) {
		if (r < rows)
			kiss_fftr(f->rf, in + (size_t)r * (size_t)f->pw, out + (size_t)r * nb);
		else
			memset(out + (size_t)r * nb, 0, nb * sizeof *out);
	}
	fft2_columns(f, f->cf, out);
}

/* Unscaled inverse of the first rows rows; in is overwritten. */
static void fft2_inverse(struct fft2 *f, kiss_fft_cpx *in, int rows, float *out)
{
	fft2_columns(f, f->ci, in);
	for (int r = 0; r < rows; r++)
		kiss_fftri(f->ri, in + (size_t)r * (size_t)f->nb, out + (size_t)r * (size_t)f->pw);
}

int ms_ncc_map(const float *img, int width, int height, const float *tmpl, int tw, int th,
               float *score, ms_err *e)
{
	if (tw < 1 || th < 1 || width < tw || height < th)
		return ms_err_set(e, "a %dx%d template does not fit a %dx%d image", tw, th,
		                  width, height);
	size_t tn = (size_t)tw * (size_t)th, npix = (size_t)width * (size_t)height;
	double tmean = 0;
	float tmin = tmpl[0], tmax = tmpl[0];
	for (size_t i = 0; i < tn; i++) {
		tmean += tmpl[i];
		tmin = fminf(tmin, tmpl[i]);
		tmax = fmaxf(tmax, tmpl[i]);
	}
	tmean /= (double)tn;
	if (!(tmax > tmin))
		return ms_err_set(e, "the template is flat (zero variance)");
	double tnorm = 0;
	for (size_t i = 0; i < tn; i++)
		tnorm += (tmpl[i] - tmean) * (tmpl[i] - tmean);
	tnorm = sqrt(tnorm);

	/* Centre the image on its mean so that float sums keep their digits. */
	double mean = 0;
	for (size_t i = 0; i < npix; i++)
		mean += img[i];
	mean /= (double)npix;

	int ph = fft_size(height), pw = fft_size(width);
	size_t nreal = (size_t)ph * (size_t)pw, ncpx = (size_t)ph * (size_t)(pw / 2 + 1);
	float *buf = calloc(nreal, sizeof *buf);
	kiss_fft_cpx *fi = malloc(ncpx * sizeof *fi), *ft = malloc(ncpx * sizeof *ft);
	struct fft2 f;
	bool have_fft = fft2_init(&f, ph, pw) == 0;
	double *s1 = NULL, *s2 = NULL;
	int rc = -1;
	if (!buf || !fi || !ft || !have_fft) {
		ms_err_set(e, "out of memory for a %dx%d correlation", pw, ph);
		goto out;
	}
	for (int y = 0; y < height; y++)
		for (int x = 0; x < width; x++)
			buf[(size_t)y * (size_t)pw + (size_t)x] =
				(float)(img[(size_t)y * (size_t)width + (size_t)x] - mean);
	s1 = sat_new(buf, pw, height, false);
	s2 = sat_new(buf, pw, height, true);
	if (!s1 || !s2) {
		ms_err_set(e, "out of memory for a %dx%d correlation", pw, ph);
		goto out;
	}
	double gvar = sat_sum(s2, pw, 0, 0, width, height) / (double)npix;
	fft2_forward(&f, buf, height, fi);
	memset(buf, 0, nreal * sizeof *buf);
	for (int y = 0; y < th; y++)
		for (int x = 0; x < tw; x++)
			buf[(size_t)y * (size_t)pw + (size_t)x] =
				(float)(tmpl[(size_t)y * (size_t)tw + (size_t)x] - tmean);
	fft2_forward(&f, buf, th, ft);
	/* Correlation: the image spectrum times the template's conjugate. */
	for (size_t i = 0; i < ncpx; i++) {
		float ar = fi[i].r, ai = fi[i].i, br = ft[i].r, bi = ft[i].i;
		fi[i].r = ar * br + ai * bi;
		fi[i].i = ai * br - ar * bi;
	}
	fft2_inverse(&f, fi, height - th + 1, buf);

	int ow = width - tw + 1, oh = height - th + 1;
	double scale = 1.0 / (double)nreal;
	double floor_var = NCC_FLAT_WINDOW * NCC_FLAT_WINDOW * gvar;
	for (int y = 0; y < oh; y++) {
		for (int x = 0; x < ow; x++) {
			double s = sat_sum(s1, pw, x, y, x + tw, y + th);
			double q = sat_sum(s2, pw, x, y, x + tw, y + th);
			double var = (q - s * s / (double)tn) / (double)tn;
			double v = 0;
			if (var > floor_var && var > 0) {
				v = buf[(size_t)y * (size_t)pw + (size_t)x] * scale /
				    (sqrt(var * (double)tn) * tnorm);
				v = v > 1 ? 1 : v < -1 ? -1 : v;
			}
			score[(size_t)y * (size_t)ow + (size_t)x] = (float)v;
		}
	}
	rc = 0;
out:
	free(buf);
	free(fi);
	free(ft);
	if (have_fft)
		fft2_free(&f);
	free(s1);
	free(s2);
	return rc;
}

/* numpy.percentile(x, q) with linear interpolation, on x sorted descending. */
static double percentile_desc(const double *desc, size_t n, double q)
{
	double pos = q / 100.0 * (double)(n - 1);	/* index in ascending order */
	size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
	double a = desc[n - 1 - lo], b = desc[n - 1 - hi];
	return a + (b - a) * (pos - (double)lo);
}

double ms_find_default_threshold(const double *desc, size_t n)
{
	if (n == 0)
		return INFINITY;
	if (n == 1)
		return desc[0];
	if (n < 5)
		return percentile_desc(desc, n, 75);
	size_t best = 0;
	double gap = -1;
	for (size_t i = 0; i + 1 < n; i++) {
		double g = desc[i] - desc[i + 1];
		if (g > gap) {
			gap = g;
			best = i;
		}
	}
	if (gap <= 0)
		return percentile_desc(desc, n, 75);
	return desc[best];
}

struct cand {
	float s;
	uint32_t i;
};

/*
 * Sort candidates by descending score, ties in ascending index, as qsort
 * with that order would, but in linear time: an LSD radix sort over the
 * bits of the (positive) float scores, stable, from index order. tmp has
 * room for n.
 */
static void sort_candidates(struct cand *c, struct cand *tmp, size_t n)
{
	for (int shift = 0; shift < 32; shift += 8) {
		size_t count[257] = { 0 };
		for (size_t i = 0; i < n; i++) {
			uint32_t k;
			memcpy(&k, &c[i].s, sizeof k);
			count[((~k >> shift) & 0xff) + 1]++;
		}
		for (int b = 0; b < 256; b++)
			count[b + 1] += count[b];
		for (size_t i = 0; i < n; i++) {
			uint32_t k;
			memcpy(&k, &c[i].s, sizeof k);
			tmp[count[(~k >> shift) & 0xff]++] = c[i];
		}
		struct cand *t = c;
		c = tmp;
		tmp = t;
	}
	/* Four passes: the sorted run is back in the caller's array. */
}

/* Block every corner within sep-1 of (x0, y0) in both directions. */
static void block(unsigned char *blocked, int ow, int oh, int x0, int y0, int sep)
{
	int xa = x0 - sep + 1, xb = x0 + sep, ya = y0 - sep + 1, yb = y0 + sep;
	xa = xa < 0 ? 0 : xa;
	ya = ya < 0 ? 0 : ya;
	xb = xb > ow ? ow : xb;
	yb = yb > oh ? oh : yb;
	for (int y = ya; y < yb; y++)
		memset(blocked + (size_t)y * (size_t)ow + (size_t)xa, 1, (size_t)(xb - xa));
}

/* The state of a whole search: the frame, the corners taken, the selection. */
struct search {
	const float *img;
	int width, height, w, ow, oh, sep;
	size_t npos;
	const struct ms_find_opts *o;
	unsigned char *taken;	/* corners too near a selected ROI */
	unsigned char *mask;	/* scratch: taken plus this round's picks */
	struct cand *cand, *cand2;	/* scratch: candidates of a round */
	float *score;		/* scratch: the NCC map */
	float *tmpl;		/* this round's template, w x w */
	/* For templates from objects: high-pass image, energy per corner. */
	float *hp, *energy;
	float bg;		/* the background's energy */
	struct ms_find_result *r;
	size_t cap;
};

static int add_bead(struct search *s, int x0, int y0, double score, int ri)
{
	struct ms_find_result *r = s->r;
	if (r->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct ms_find_bead *nb = realloc(r->bead, cap * sizeof *nb);
		if (!nb)
			return -1;
		r->bead = nb;
		s->cap = cap;
	}
	r->bead[r->n++] = (struct ms_find_bead){ x0, y0, score, ri };
	block(s->taken, s->ow, s->oh, x0, y0, s->sep);
	return 0;
}

static int float_cmp(const void *pa, const void *pb)
{
	float a = *(const float *)pa, b = *(const float *)pb;
	return (a > b) - (a < b);
}

/* The q-quantile of v (n values), from at most about 65536 evenly spaced samples. */
static int quantile(const float *v, size_t n, double q, float *out)
{
	size_t step = n / 65536 + 1, m = (n + step - 1) / step;
	float *s = malloc(m * sizeof *s);
	if (!s)
		return -1;
	for (size_t i = 0, k = 0; k < m; i += step, k++)
		s[k] = v[i];
	qsort(s, m, sizeof *s, float_cmp);
	*out = s[(size_t)(q * (double)(m - 1))];
	free(s);
	return 0;
}

/*
 * The score a background window reaches by chance: the map's median plus
 * NOISE_FLOOR_SIGMAS robust standard deviations (1.4826 MAD). Nearly all
 * corners are away from any bead centre, so the map's spread is the
 * background's.
 */
static int noise_floor(const float *score, size_t n, double *floor)
{
	float med, mad;
	if (quantile(score, n, 0.5, &med) < 0)
		return -1;
	size_t step = n / 65536 + 1, m = (n + step - 1) / step;
	float *dev = malloc(m * sizeof *dev);
	if (!dev)
		return -1;
	for (size_t i = 0, k = 0; k < m; i += step, k++)
		dev[k] = fabsf(score[i] - med);
	int rc = quantile(dev, m, 0.5, &mad);
	free(dev);
	*floor = med + NOISE_FLOOR_SIGMAS * 1.4826 * mad;
	return rc;
}

/*
 * One round as MagScope's selection: every candidate not near a bead
 * already selected, in descending score, taken greedily, each blocking its
 * neighbourhood; those at or above the threshold join the selection. The
 * default threshold is MagScope's rule, but never below the noise floor:
 * with few beads the largest gap can fall among background picks.
 */
static int select_round(struct search *s, int ri, ms_err *e)
{
	struct ms_find_round *k = &s->r->round[ri];
	memcpy(s->mask, s->taken, s->npos);
	size_t nc = 0;
	for (size_t i = 0; i < s->npos; i++)
		if (s->score[i] > DBL_EPSILON && !s->mask[i])
			s->cand[nc++] = (struct cand){ s->score[i], (uint32_t)i };
	sort_candidates(s->cand, s->cand2, nc);
	size_t np = 0;
	for (size_t j = 0; j < nc; j++) {
		size_t i = s->cand[j].i;
		if (s->mask[i])
			continue;
		block(s->mask, s->ow, s->oh, (int)(i % (size_t)s->ow), (int)(i / (size_t)s->ow),
		      s->sep);
		s->cand[np++] = s->cand[j];	/* np <= j: the picks overwrite the front */
	}
	double *desc = malloc((np + 1) * sizeof *desc);
	if (!desc || noise_floor(s->score, s->npos, &k->floor) < 0) {
		free(desc);
		return ms_err_set(e, "out of memory selecting candidates");
	}
	for (size_t j = 0; j < np; j++)
		desc[j] = s->cand[j].s;
	k->threshold = s->o->threshold;
	if (isnan(k->threshold))
		k->threshold = fmax(ms_find_default_threshold(desc, np), k->floor);
	free(desc);
	k->npicks = np;
	k->nsel = 0;
	k->best_left = NAN;
	for (size_t j = 0; j < np; j++) {
		if (s->cand[j].s < k->threshold) {
			k->best_left = s->cand[j].s;
			break;
		}
		size_t i = s->cand[j].i;
		if (add_bead(s, (int)(i % (size_t)s->ow), (int)(i / (size_t)s->ow), s->cand[j].s,
		             ri) < 0)
			return ms_err_set(e, "out of memory selecting candidates");
		k->nsel++;
	}
	return 0;
}

/*
 * The bead-likeness map: the image minus its local mean over twice the
 * ROI, squared and summed over half an ROI around every possible bead
 * centre (indexed by ROI corner), and the background's level of it.
 */
static int energy_map(struct search *s)
{
	const float *img = s->img;
	int width = s->width, height = s->height, w = s->w, half = w / 2;
	size_t npix = (size_t)width * (size_t)height;
	s->hp = malloc(npix * sizeof *s->hp);
	s->energy = malloc(s->npos * sizeof *s->energy);
	double *sat = sat_new(img, width, height, false), *sat2 = NULL;
	int rc = -1;
	if (!s->hp || !s->energy || !sat)
		goto out;
	for (int y = 0; y < height; y++) {
		int ya = y - w < 0 ? 0 : y - w, yb = y + w + 1 > height ? height : y + w + 1;
		for (int x = 0; x < width; x++) {
			int xa = x - w < 0 ? 0 : x - w, xb = x + w + 1 > width ? width : x + w + 1;
			double m = sat_sum(sat, width, xa, ya, xb, yb) / ((double)(xb - xa) * (yb - ya));
			size_t i = (size_t)y * (size_t)width + (size_t)x;
			s->hp[i] = (float)(img[i] - m);
		}
	}
	sat2 = sat_new(s->hp, width, height, true);
	if (!sat2)
		goto out;
	int b = half / 2;
	for (int y0 = 0; y0 < s->oh; y0++)
		for (int x0 = 0; x0 < s->ow; x0++) {
			int cx = x0 + half, cy = y0 + half;
			int xa = cx - b < 0 ? 0 : cx - b, xb = cx + b + 1 > width ? width : cx + b + 1;
			int ya = cy - b < 0 ? 0 : cy - b, yb = cy + b + 1 > height ? height : cy + b + 1;
			s->energy[(size_t)y0 * (size_t)s->ow + (size_t)x0] =
				(float)sat_sum(sat2, width, xa, ya, xb, yb);
		}
	rc = quantile(s->energy, s->npos, AUTO_BACKGROUND_QUANTILE, &s->bg);
out:
	free(sat);
	free(sat2);
	return rc;
}

/*
 * Point-symmetry of hp about (cx, cy): the correlation of the patch within
 * r of the centre with its point reflection. A radially symmetric bead
 * image scores 1 at its centre and less anywhere else.
 */
static double symmetry(const float *hp, int width, int height, int cx, int cy, int r)
{
	double num = 0, den = 0;
	for (int dy = -r; dy <= r; dy++) {
		int ya = cy + dy, yb = cy - dy;
		if (ya < 0 || yb < 0 || ya >= height || yb >= height)
			continue;
		const float *ra = hp + (size_t)ya * (size_t)width;
		const float *rb = hp + (size_t)yb * (size_t)width;
		for (int dx = -r; dx <= r; dx++) {
			int xa = cx + dx, xb = cx - dx;
			if (xa < 0 || xb < 0 || xa >= width || xb >= width)
				continue;
			num += (double)ra[xa] * rb[xb];
			den += (double)ra[xa] * ra[xa];
		}
	}
	return den > 0 ? num / den : 0;
}

/* Move (*cx, *cy) to the most point-symmetric centre nearby. */
static void recentre(const float *hp, int width, int height, int w, int *cx, int *cy)
{
	int s = w / 8 > 2 ? w / 8 : 2, r = w / 2 - 1;
	for (int iter = 0; iter < 4; iter++) {
		double best = -INFINITY;
		int bx = *cx, by = *cy;
		for (int dy = -s; dy <= s; dy++)
			for (int dx = -s; dx <= s; dx++) {
				double v = symmetry(hp, width, height, *cx + dx, *cy + dy, r);
				if (v > best) {
					best = v;
					bx = *cx + dx;
					by = *cy + dy;
				}
			}
		bool edge = abs(bx - *cx) == s || abs(by - *cy) == s;
		*cx = bx;
		*cy = by;
		if (!edge)
			break;
	}
}

/*
 * A template from the bead-like objects away from every selected bead:
 * the strongest energy maxima that stand out from the background (and
 * reach a fraction of the strongest one), re-centred by symmetry, their
 * ROIs normalised and averaged. Returns 1 with s->tmpl filled, 0 if
 * nothing bead-like is left (*contrast: the strongest one's energy over
 * the background's), -1 out of memory.
 */
static int object_template(struct search *s, struct ms_find_round *k, double *contrast)
{
	int w = s->w, half = w / 2, width = s->width;
	size_t nt = (size_t)w * (size_t)w;
	double *acc = calloc(nt, sizeof *acc);
	if (!acc)
		return -1;
	memcpy(s->mask, s->taken, s->npos);
	float top = 0;
	*contrast = 0;
	k->ntemplate = 0;
	/*
	 * Once beads are selected, their outer rings reach past their ROIs and
	 * stand out from the background too; an object must carry a good
	 * fraction of a selected bead's energy to count.
	 */
	float floor = AUTO_MIN_CONTRAST * s->bg;
	if (s->r->n > 0) {
		float *eb = malloc(s->r->n * sizeof *eb), ref;
		if (!eb) {
			free(acc);
			return -1;
		}
		for (size_t i = 0; i < s->r->n; i++)
			eb[i] = s->energy[(size_t)s->r->bead[i].y0 * (size_t)s->ow +
			                  (size_t)s->r->bead[i].x0];
		int rc = quantile(eb, s->r->n, 0.5, &ref);
		free(eb);
		if (rc < 0) {
			free(acc);
			return -1;
		}
		floor = fmaxf(floor, (float)(LATER_FRACTION * ref));
	}
	for (int n = 0; n < MS_FIND_TEMPLATE_BEADS; n++) {
		size_t im = s->npos;
		float em = -1;
		for (size_t i = 0; i < s->npos; i++)
			if (!s->mask[i] && s->energy[i] > em) {
				em = s->energy[i];
				im = i;
			}
		if (im == s->npos)
			break;
		if (n == 0) {
			top = em;
			*contrast = s->bg > 0 ? em / s->bg : em > 0 ? INFINITY : 0;
		}
		if (!(em > floor) || em < AUTO_TEMPLATE_FRACTION * top)
			break;
		int x0 = (int)(im % (size_t)s->ow), y0 = (int)(im / (size_t)s->ow);
		block(s->mask, s->ow, s->oh, x0, y0, w);
		int cx = x0 + half, cy = y0 + half;
		recentre(s->hp, width, s->height, w, &cx, &cy);
		x0 = cx - half;
		y0 = cy - half;
		/* A bead too near the edge for a centred ROI would skew the average. */
		if (x0 < 0 || y0 < 0 || x0 >= s->ow || y0 >= s->oh)
			continue;
		double m = 0, ss = 0;
		for (int y = 0; y < w; y++)
			for (int x = 0; x < w; x++)
				m += s->img[(size_t)(y0 + y) * (size_t)width + (size_t)(x0 + x)];
		m /= (double)nt;
		for (int y = 0; y < w; y++)
			for (int x = 0; x < w; x++) {
				double d = s->img[(size_t)(y0 + y) * (size_t)width + (size_t)(x0 + x)] - m;
				ss += d * d;
			}
		if (!(ss > 0))
			continue;
		double g = 1 / sqrt(ss);
		for (int y = 0; y < w; y++)
			for (int x = 0; x < w; x++)
				acc[(size_t)y * (size_t)w + (size_t)x] +=
					(s->img[(size_t)(y0 + y) * (size_t)width + (size_t)(x0 + x)] - m) * g;
		k->template_x[k->ntemplate] = cx;
		k->template_y[k->ntemplate] = cy;
		k->ntemplate++;
	}
	for (size_t i = 0; i < nt; i++)
		s->tmpl[i] = (float)acc[i];
	free(acc);
	return k->ntemplate > 0;
}

static int check_geometry(int width, int height, const struct ms_find_opts *o, ms_err *e)
{
	if (o->roi_size < 1 || o->roi_size > width || o->roi_size > height)
		return ms_err_set(e, "a %d px ROI does not fit the %dx%d frame", o->roi_size,
		                  width, height);
	if ((uint64_t)(width - o->roi_size + 1) * (uint64_t)(height - o->roi_size + 1) > UINT32_MAX)
		return ms_err_set(e, "a %dx%d frame is too large to search", width, height);
	if (o->min_sep < 0)
		return ms_err_set(e, "minimum separation %d is negative", o->min_sep);
	if (o->templates < 1 || o->templates > MS_FIND_MAX_ROUNDS)
		return ms_err_set(e, "%d search rounds: must be from 1 to %d", o->templates,
		                  MS_FIND_MAX_ROUNDS);
	return 0;
}

static int bead_cmp(const void *pa, const void *pb)
{
	const struct ms_find_bead *a = pa, *b = pb;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	if (a->y0 != b->y0)
		return a->y0 < b->y0 ? -1 : 1;
	return (a->x0 > b->x0) - (a->x0 < b->x0);
}

/*
 * The rounds: the seed's ROI (seed_x >= 0) or the strongest objects make
 * the first template; each later round's template comes from the objects
 * left, until nothing bead-like is left or o->templates rounds are done.
 */
static int search_all(const float *img, int width, int height, int seed_x, int seed_y,
                      const struct ms_find_opts *o, struct ms_find_result *r, ms_err *e)
{
	struct search s = {
		.img = img, .width = width, .height = height, .w = o->roi_size,
		.ow = width - o->roi_size + 1, .oh = height - o->roi_size + 1,
		.sep = o->min_sep > 0 ? o->min_sep : o->roi_size, .o = o, .r = r,
	};
	s.npos = (size_t)s.ow * (size_t)s.oh;
	s.taken = calloc(s.npos, 1);
	s.mask = malloc(s.npos);
	s.cand = malloc(s.npos * sizeof *s.cand);
	s.cand2 = malloc(s.npos * sizeof *s.cand2);
	s.score = malloc(s.npos * sizeof *s.score);
	s.tmpl = malloc((size_t)s.w * (size_t)s.w * sizeof *s.tmpl);
	int rc = -1;
	if (!s.taken || !s.mask || !s.cand || !s.cand2 || !s.score || !s.tmpl) {
		ms_err_set(e, "out of memory for a %dx%d frame", width, height);
		goto out;
	}
	bool seeded = seed_x >= 0;
	if (seeded) {
		for (int y = 0; y < s.w; y++)
			memcpy(s.tmpl + (size_t)y * (size_t)s.w,
			       img + (size_t)(seed_y + y) * (size_t)width + (size_t)seed_x,
			       (size_t)s.w * sizeof *s.tmpl);
		if (add_bead(&s, seed_x, seed_y, 1.0, 0) < 0) {
			ms_err_set(e, "out of memory");
			goto out;
		}
	}
	if ((!seeded || o->templates > 1) && energy_map(&s) < 0) {
		ms_err_set(e, "out of memory for a %dx%d frame", width, height);
		goto out;
	}
	for (int ri = 0; ri < o->templates; ri++) {
		struct ms_find_round *k = &r->round[ri];
		if (ri > 0 || !seeded) {
			double contrast;
			int got = object_template(&s, k, &contrast);
			if (got < 0) {
				ms_err_set(e, "out of memory");
				goto out;
			}
			if (got == 0 && ri == 0) {
				ms_err_set(e, "nothing bead-like stands out from the background (the "
				           "strongest object has %.2f times its energy, less than "
				           "%.1f); give --seed", contrast, AUTO_MIN_CONTRAST);
				goto out;
			}
			if (got == 0)
				break;
		}
		if (ms_ncc_map(img, width, height, s.tmpl, s.w, s.w, s.score, e) < 0 ||
		    select_round(&s, ri, e) < 0)
			goto out;
		r->nrounds++;
		if (k->nsel == 0)
			break;	/* the next round would see the same objects */
	}
	qsort(r->bead + seeded, r->n - seeded, sizeof *r->bead, bead_cmp);
	if (o->max > 0 && r->n > o->max)
		r->n = o->max;
	rc = 0;
out:
	if (rc < 0)
		ms_find_result_free(r);
	free(s.taken);
	free(s.mask);
	free(s.cand);
	free(s.cand2);
	free(s.score);
	free(s.tmpl);
	free(s.hp);
	free(s.energy);
	return rc;
}

int ms_find_seed(const float *img, int width, int height, double cx, double cy,
                 const struct ms_find_opts *o, struct ms_find_result *r, ms_err *e)
{
	memset(r, 0, sizeof *r);
	if (check_geometry(width, height, o, e) < 0)
		return -1;
	if (!(cx >= -0.5 && cx < width - 0.5 && cy >= -0.5 && cy < height - 0.5))
		return ms_err_set(e, "seed %g,%g lies outside the %dx%d frame", cx, cy, width,
		                  height);
	int w = o->roi_size;
	int32_t x0 = ms_find_roi_corner(cx, w, (uint32_t)width);
	int32_t y0 = ms_find_roi_corner(cy, w, (uint32_t)height);
	float v0 = img[(size_t)y0 * (size_t)width + (size_t)x0];
	bool flat = true;
	for (int y = 0; y < w && flat; y++)
		for (int x = 0; x < w && flat; x++)
			flat = img[(size_t)(y0 + y) * (size_t)width + (size_t)(x0 + x)] == v0;
	if (flat)
		return ms_err_set(e, "the seed's ROI (x0 %d, y0 %d, %d px) is flat (zero "
		                  "variance): no bead there", x0, y0, w);
	return search_all(img, width, height, x0, y0, o, r, e);
}

int ms_find_auto(const float *img, int width, int height, const struct ms_find_opts *o,
                 struct ms_find_result *r, ms_err *e)
{
	memset(r, 0, sizeof *r);
	if (check_geometry(width, height, o, e) < 0)
		return -1;
	return search_all(img, width, height, -1, -1, o, r, e);
}

void ms_find_result_free(struct ms_find_result *r)
{
	free(r->bead);
	r->bead = NULL;
	r->n = 0;
}

float *ms_find_frame_float(const void *pixels, const struct ms_frame_info *info)
{
	size_t n = (size_t)info->width * info->height;
	float *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return NULL;
	if (info->fmt == MS_PIX_U8) {
		const uint8_t *p = pixels;
		for (size_t i = 0; i < n; i++)
			v[i] = p[i];
	} else {
		const uint16_t *p = pixels;
		for (size_t i = 0; i < n; i++)
			v[i] = p[i];
	}
	return v;
}
