/*
 * t-beadfind: the NCC map against a direct double-precision sum, MagScope's
 * default threshold rule, the click-to-ROI rule, and whole searches (with a
 * seed and without) on frames synthesised here: ring-like beads of varied
 * contrast and ring period on a noisy background, where every bead must be
 * found within 3 px and nothing else.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beadfind.h"
#include "../lib/tap.h"

struct rng {
	uint64_t s;
};

static double uniform(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (double)(r->s >> 11) * (1.0 / 9007199254740992.0);
}

static double gauss(struct rng *r)
{
	double u = uniform(r), v = uniform(r);
	return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

struct truth {
	double cx, cy;
};

/*
 * A width x height frame of n beads on a jittered grid of 128 px cells,
 * background 1000 with Gaussian noise of sigma noise. Beads are rings of
 * period 8 px under a Gaussian envelope, contrast 250-450, centred at
 * random sub-pixel places; with phase != 0 every other bead has its rings
 * shifted by phase (another focus) under a wider envelope.
 */
static float *make_frame(int width, int height, int n, double noise, uint64_t seed,
                         double phase, struct truth *t)
{
	struct rng r = { seed };
	float *img = malloc((size_t)width * height * sizeof *img);
	for (size_t i = 0; i < (size_t)width * height; i++)
		img[i] = (float)(1000 + noise * gauss(&r));
	int cols = width / 128;
	for (int k = 0; k < n; k++) {
		double cx = 64 + 128 * (k % cols) + 40 * (uniform(&r) - 0.5);
		double cy = 64 + 128 * (k / cols) + 40 * (uniform(&r) - 0.5);
		double amp = 250 + 200 * uniform(&r), ph = k % 2 ? phase : 0;
		double sigma = k % 2 && phase != 0 ? 13 : 10;
		t[k] = (struct truth){ cx, cy };
		for (int y = (int)cy - 30; y <= (int)cy + 30; y++)
			for (int x = (int)cx - 30; x <= (int)cx + 30; x++) {
				double d = hypot(x - cx, y - cy);
				img[(size_t)y * width + x] += (float)(amp * cos(2 * M_PI * d / 8 + ph) *
				                                      exp(-d * d / (2 * sigma * sigma)));
			}
	}
	return img;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every true bead matched by one selected ROI within tol px, and no extra. */
static int matches(const struct ms_find_result *r, const struct truth *t, int n, int w,
                   double tol)
{
	int matched = 0;
	for (int k = 0; k < n; k++) {
		double x0 = t[k].cx - w / 2.0, y0 = t[k].cy - w / 2.0;
		int hits = 0;
		for (size_t i = 0; i < r->n; i++)
			if (fabs(r->bead[i].x0 - x0) <= tol && fabs(r->bead[i].y0 - y0) <= tol)
				hits++;
		if (hits == 1)
			matched++;
		else
			tap_diag("bead %d at %.1f,%.1f: %d hits", k, t[k].cx, t[k].cy, hits);
	}
	return matched;
}

static void test_threshold(void)
{
	tap_ok(isinf(ms_find_default_threshold(NULL, 0)), "no candidates: +inf");
	double one[] = { 0.4 };
	tap_near(ms_find_default_threshold(one, 1), 0.4, 0, "one candidate: its score");
	double three[] = { 0.9, 0.5, 0.1 };
	tap_near(ms_find_default_threshold(three, 3), 0.7, 1e-12,
	         "three: the 75th percentile, interpolated");
	double four[] = { 0.8, 0.6, 0.4, 0.2 };
	tap_near(ms_find_default_threshold(four, 4), 0.65, 1e-12, "four: the 75th percentile");
	double gap[] = { 0.95, 0.9, 0.88, 0.3, 0.2, 0.1 };
	tap_near(ms_find_default_threshold(gap, 6), 0.88, 0, "six: the score above the largest gap");
	double first[] = { 0.99, 0.5, 0.45, 0.4, 0.35 };
	tap_near(ms_find_default_threshold(first, 5), 0.99, 0, "the largest gap after the first");
	double flat[] = { 0.5, 0.5, 0.5, 0.5, 0.5, 0.5 };
	tap_near(ms_find_default_threshold(flat, 6), 0.5, 0, "no gap: the 75th percentile");
}

static void test_corner(void)
{
	tap_int(ms_find_roi_corner(100, 64, 1024), 68, "click at 100: x0 = 68");
	tap_int(ms_find_roi_corner(100.5, 64, 1024), 68, "68.5 rounds half to even: 68");
	tap_int(ms_find_roi_corner(101.5, 64, 1024), 70, "69.5 rounds half to even: 70");
	tap_int(ms_find_roi_corner(100.6, 64, 1024), 69, "68.6 rounds to 69");
	tap_int(ms_find_roi_corner(10, 64, 1024), 0, "clamped at the left edge");
	tap_int(ms_find_roi_corner(1020, 64, 1024), 960, "clamped at the right edge");
}

/* The FFT map against the definition, summed in double. */
static void test_ncc_direct(void)
{
	enum { W = 97, H = 83, TW = 16, TH = 12, TX = 40, TY = 30 };
	struct rng r = { 7 };
	float *img = malloc(W * H * sizeof *img);
	for (int i = 0; i < W * H; i++)
		img[i] = (float)(3000 + 500 * uniform(&r) + 200 * sin(i * 0.01));
	/* A flat patch: its windows must score 0, not noise over 0. */
	for (int y = 60; y < H; y++)
		for (int x = 60; x < W; x++)
			img[y * W + x] = 2500;
	float tmpl[TW * TH];
	for (int y = 0; y < TH; y++)
		for (int x = 0; x < TW; x++)
			tmpl[y * TW + x] = img[(TY + y) * W + TX + x];
	int ow = W - TW + 1, oh = H - TH + 1;
	float *score = malloc((size_t)ow * oh * sizeof *score);
	ms_err e = { "" };
	tap_int(ms_ncc_map(img, W, H, tmpl, TW, TH, score, &e), 0, "ncc map: %s", e.msg);
	double tm = 0, tn = 0;
	for (int i = 0; i < TW * TH; i++)
		tm += tmpl[i];
	tm /= TW * TH;
	for (int i = 0; i < TW * TH; i++)
		tn += (tmpl[i] - tm) * (tmpl[i] - tm);
	double maxdiff = 0;
	for (int v = 0; v < oh; v++)
		for (int u = 0; u < ow; u++) {
			double m = 0, num = 0, var = 0;
			for (int y = 0; y < TH; y++)
				for (int x = 0; x < TW; x++)
					m += img[(v + y) * W + u + x];
			m /= TW * TH;
			for (int y = 0; y < TH; y++)
				for (int x = 0; x < TW; x++) {
					double d = img[(v + y) * W + u + x] - m;
					num += d * (tmpl[y * TW + x] - tm);
					var += d * d;
				}
			double want = var > 0 ? num / sqrt(var * tn) : 0;
			double d = fabs(score[v * ow + u] - want);
			if (d > maxdiff)
				maxdiff = d;
		}
	tap_diag("ncc map vs direct double sum: max |difference| %.2g", maxdiff);
	tap_ok(maxdiff < 2e-5, "FFT map equals the direct sum within 2e-5 (%.2g)", maxdiff);
	tap_near(score[TY * ow + TX], 1, 1e-5, "the template scores 1 at its own place");
	tap_near(score[(oh - 1) * ow + ow - 1], 0, 0, "a flat window scores exactly 0");

	for (int i = 0; i < TW * TH; i++)
		tmpl[i] = 5;
	tap_int(ms_ncc_map(img, W, H, tmpl, TW, TH, score, &e), -1, "a flat template fails");
	tap_ok(strstr(e.msg, "flat") != NULL, "and says so: %s", e.msg);
	tap_int(ms_ncc_map(img, W, H, tmpl, 100, TH, score, &e), -1,
	        "a template wider than the image fails");
	free(score);
	free(img);
}

/* Whether the selection is sane: inside, apart, ids by descending score. */
static void check_layout(const struct ms_find_result *r, int W, int H, int w, int sep,
                         bool seeded, const char *what)
{
	bool desc = true, apart = true, inside = true;
	for (size_t i = seeded ? 2 : 1; i < r->n; i++)
		desc = desc && r->bead[i].score <= r->bead[i - 1].score;
	for (size_t i = 0; i < r->n; i++) {
		inside = inside && r->bead[i].x0 >= 0 && r->bead[i].y0 >= 0 &&
			 r->bead[i].x0 + w <= W && r->bead[i].y0 + w <= H;
		for (size_t j = i + 1; j < r->n; j++)
			if (abs(r->bead[i].x0 - r->bead[j].x0) < sep &&
			    abs(r->bead[i].y0 - r->bead[j].y0) < sep)
				apart = false;
	}
	tap_ok(desc, "%s: beads in descending score", what);
	tap_ok(apart, "%s: no two ROIs closer than %d px in both x and y", what, sep);
	tap_ok(inside, "%s: every ROI lies inside the frame", what);
}

/* Template beads lie within 1.5 px of true centres. */
static bool template_centred(const struct ms_find_round *k, const struct truth *t, int n)
{
	if (k->ntemplate == 0)
		return false;
	for (size_t j = 0; j < k->ntemplate; j++) {
		double best = INFINITY;
		for (int i = 0; i < n; i++)
			best = fmin(best, hypot(k->template_x[j] - t[i].cx, k->template_y[j] - t[i].cy));
		if (best > 1.5)
			return false;
	}
	return true;
}

static bool sanitized(void)
{
	const char *san = getenv("MS_SAN");
	return san && strcmp(san, "1") == 0;
}

static void test_search(void)
{
	enum { W = 1024, H = 1024, N = 50, ROI = 64 };
	struct truth t[N];
	float *img = make_frame(W, H, N, 30, 42, 0, t);
	struct ms_find_opts o;
	ms_find_opts_default(&o);
	struct ms_find_result r;
	ms_err e = { "" };

	double t0 = now();
	int rc = ms_find_seed(img, W, H, t[0].cx, t[0].cy, &o, &r, &e);
	double dt = now() - t0;
	tap_int(rc, 0, "seeded search: %s", e.msg);
	tap_diag("seeded, 1024x1024, 64 px: %.3f s, %zu selected in %zu round(s); round 0: "
	         "%zu picks, threshold %.3f, highest left out %.3f", dt, r.n, r.nrounds,
	         r.round[0].npicks, r.round[0].threshold, r.round[0].best_left);
	tap_int((long long)r.n, N, "seeded: %d beads selected", N);
	tap_int(matches(&r, t, N, ROI, 3), N, "seeded: every bead matched within 3 px");
	tap_int((long long)r.round[0].nsel, N - 1, "seeded: all found by the seed's template");
	tap_int(r.bead[0].x0, ms_find_roi_corner(t[0].cx, ROI, W), "the seed's ROI is bead 0 (x)");
	tap_int(r.bead[0].y0, ms_find_roi_corner(t[0].cy, ROI, H), "the seed's ROI is bead 0 (y)");
	tap_near(r.bead[0].score, 1, 0, "the seed scores 1");
	tap_ok(r.round[0].best_left < 0.2 && r.bead[r.n - 1].score > 0.7,
	       "seeded: a clear gap: lowest kept %.3f, highest left out %.3f",
	       r.bead[r.n - 1].score, r.round[0].best_left);
	check_layout(&r, W, H, ROI, ROI, true, "seeded");
	if (!sanitized())
		tap_ok(dt < 0.5, "a 1024x1024 seeded search takes under 0.5 s (%.3f s)", dt);
	ms_find_result_free(&r);

	o.threshold = 0.99;
	ms_find_seed(img, W, H, t[0].cx, t[0].cy, &o, &r, &e);
	tap_int((long long)r.n, 1, "threshold 0.99: only the seed");
	ms_find_result_free(&r);
	o.threshold = NAN;
	o.max = 5;
	ms_find_seed(img, W, H, t[0].cx, t[0].cy, &o, &r, &e);
	tap_int((long long)r.n, 5, "max 5: five beads");
	tap_int(r.bead[0].x0, ms_find_roi_corner(t[0].cx, ROI, W), "max 5: the seed first");
	ms_find_result_free(&r);
	o.max = 0;
	o.min_sep = 200;
	ms_find_seed(img, W, H, t[0].cx, t[0].cy, &o, &r, &e);
	tap_ok(r.n > 1 && r.n < N, "min separation 200: fewer beads (%zu)", r.n);
	check_layout(&r, W, H, ROI, 200, true, "min separation 200");
	ms_find_result_free(&r);
	o.min_sep = 0;

	t0 = now();
	rc = ms_find_auto(img, W, H, &o, &r, &e);
	dt = now() - t0;
	tap_int(rc, 0, "seedless search: %s", e.msg);
	tap_diag("seedless: %.3f s, %zu selected in %zu round(s); round 0: template from %zu "
	         "beads, threshold %.3f, highest left out %.3f", dt, r.n, r.nrounds,
	         r.round[0].ntemplate, r.round[0].threshold, r.round[0].best_left);
	tap_int((long long)r.n, N, "seedless: %d beads selected", N);
	tap_int(matches(&r, t, N, ROI, 3), N, "seedless: every bead matched within 3 px");
	check_layout(&r, W, H, ROI, ROI, false, "seedless");
	tap_ok(template_centred(&r.round[0], t, N),
	       "template beads re-centred within 1.5 px of a true centre");
	if (!sanitized())
		tap_ok(dt < 0.75, "a 1024x1024 seedless search takes under 0.75 s (%.3f s)", dt);
	ms_find_result_free(&r);

	/* Refusals. */
	rc = ms_find_seed(img, W, H, W + 5, 10, &o, &r, &e);
	tap_ok(rc == -1 && strstr(e.msg, "outside"), "a seed outside the frame: %s", e.msg);
	rc = ms_find_seed(img, W, H, NAN, 10, &o, &r, &e);
	tap_ok(rc == -1, "a NaN seed is refused");
	for (int y = 0; y < 100; y++)
		for (int x = 0; x < 100; x++)
			img[(size_t)(H - 100 + y) * W + (W - 100 + x)] = 77;
	rc = ms_find_seed(img, W, H, W - 50, H - 50, &o, &r, &e);
	tap_ok(rc == -1 && strstr(e.msg, "flat"), "a flat seed ROI: %s", e.msg);
	o.roi_size = 2048;
	rc = ms_find_seed(img, W, H, 500, 500, &o, &r, &e);
	tap_ok(rc == -1 && strstr(e.msg, "does not fit"), "an ROI larger than the frame: %s", e.msg);
	o.roi_size = 64;
	o.templates = 0;
	rc = ms_find_seed(img, W, H, 500, 500, &o, &r, &e);
	tap_ok(rc == -1 && strstr(e.msg, "rounds"), "zero rounds: %s", e.msg);
	free(img);
}

/*
 * Two looks: every other bead has its rings in antiphase (another focus),
 * so that a template of one look scores the other near 0.3, and the largest
 * gap falls between the looks. One round (MagScope) finds one look; the
 * second round's template from the beads left finds the other.
 */
static void test_two_looks(void)
{
	enum { W = 1024, H = 1024, N = 50, ROI = 64 };
	struct truth t[N];
	float *img = make_frame(W, H, N, 30, 43, M_PI, t);
	struct ms_find_opts o;
	ms_find_opts_default(&o);
	struct ms_find_result r;
	ms_err e = { "" };

	o.templates = 1;
	ms_find_seed(img, W, H, t[0].cx, t[0].cy, &o, &r, &e);
	tap_int((long long)r.n, N / 2, "one round from a seed: only the seed's look (%zu)", r.n);
	ms_find_result_free(&r);
	o.templates = 4;
	double t0 = now();
	int rc = ms_find_seed(img, W, H, t[0].cx, t[0].cy, &o, &r, &e);
	double dt = now() - t0;
	tap_int(rc, 0, "two looks, seeded: %s", e.msg);
	tap_diag("two looks, seeded: %.3f s, %zu selected in %zu rounds (%zu + %zu)", dt, r.n,
	         r.nrounds, r.round[0].nsel + 1, r.round[1].nsel);
	tap_int((long long)r.nrounds, 2, "two looks, seeded: two rounds");
	tap_int((long long)r.round[0].nsel, N / 2 - 1, "round 0: the seed's look");
	tap_int((long long)r.round[1].nsel, N / 2, "round 1: the other look");
	tap_int(matches(&r, t, N, ROI, 3), N, "two looks, seeded: every bead within 3 px");
	tap_int((long long)r.n, N, "two looks, seeded: nothing else");
	tap_ok(template_centred(&r.round[1], t, N), "round 1 template beads are centred");
	check_layout(&r, W, H, ROI, ROI, true, "two looks, seeded");
	ms_find_result_free(&r);

	rc = ms_find_auto(img, W, H, &o, &r, &e);
	tap_int(rc, 0, "two looks, seedless: %s", e.msg);
	tap_int(matches(&r, t, N, ROI, 3), N, "two looks, seedless: every bead within 3 px");
	tap_int((long long)r.n, N, "two looks, seedless: nothing else (%zu rounds)", r.nrounds);
	check_layout(&r, W, H, ROI, ROI, false, "two looks, seedless");
	ms_find_result_free(&r);
	free(img);
}

static void test_noise_only(void)
{
	struct truth t[1];
	float *img = make_frame(512, 512, 0, 30, 3, 0, t);
	struct ms_find_opts o;
	ms_find_opts_default(&o);
	struct ms_find_result r;
	ms_err e = { "" };
	int rc = ms_find_auto(img, 512, 512, &o, &r, &e);
	tap_ok(rc == -1 && strstr(e.msg, "bead-like"), "pure noise: nothing found: %s", e.msg);
	for (int i = 0; i < 512 * 512; i++)
		img[i] = 100;
	rc = ms_find_auto(img, 512, 512, &o, &r, &e);
	tap_ok(rc == -1, "a flat frame: nothing found: %s", e.msg);
	/* One bead: the seedless search finds it, and only it. */
	free(img);
	img = make_frame(512, 512, 1, 30, 4, 0, t);
	rc = ms_find_auto(img, 512, 512, &o, &r, &e);
	tap_ok(rc == 0 && r.n == 1 && matches(&r, t, 1, 64, 3) == 1,
	       "a single bead is found alone (%zu selected)", rc == 0 ? r.n : 0);
	if (rc == 0)
		ms_find_result_free(&r);
	rc = ms_find_seed(img, 512, 512, t[0].cx, t[0].cy, &o, &r, &e);
	tap_ok(rc == 0 && r.n == 1 && matches(&r, t, 1, 64, 3) == 1,
	       "seeded on a single bead: no background picks (%zu selected)", rc == 0 ? r.n : 0);
	if (rc == 0)
		ms_find_result_free(&r);
	free(img);
}

static void test_frame_float(void)
{
	uint16_t px[4] = { 0, 1, 65535, 300 };
	struct ms_frame_info info = { 2, 2, MS_PIX_U16, 0 };
	float *v = ms_find_frame_float(px, &info);
	tap_ok(v && v[2] == 65535 && v[3] == 300, "u16 pixels to float");
	free(v);
	uint8_t p8[4] = { 0, 1, 255, 30 };
	info.fmt = MS_PIX_U8;
	v = ms_find_frame_float(p8, &info);
	tap_ok(v && v[2] == 255 && v[3] == 30, "u8 pixels to float");
	free(v);
}

int main(void)
{
	test_threshold();
	test_corner();
	test_ncc_direct();
	test_search();
	test_two_looks();
	test_noise_only();
	test_frame_float();
	return tap_done();
}
