/*
 * ms-bench: tracking throughput, in ROIs per second, of each kernel and of
 * the whole XYZ pipeline with each x/y method (radial-fit, the default;
 * QI; autoconv-fine; MagTrack's autoconv; the centre of mass alone), all
 * else at the defaults (linear profile, radius-weighted Pearson z with the
 * cubic fit on a 121-plane LUT), at 64 and 128 px, from u8 and u16 frames,
 * on 1 and 2 threads through ms_pool. The frames hold a grid of synthetic
 * ring beads (libcommon/track/synth) at random sub-pixel offsets within
 * +-2 px and heights within +-5 um, with Poisson noise. Each cell runs for
 * --time seconds in 5 slices and keeps the best slice's rate (on a shared
 * machine the least disturbed); it also reports the CPU time per ROI over
 * the whole cell, which other processes disturb less, and for 2 threads
 * the speed-up over 1. Prints a table; --tsv FILE also writes it as TSV.
 * A measurement, not a test: it never fails on speed.
 *
 * With --frames FILE.tif --rois ROIS [--zlut LUT] it measures the whole
 * pipeline on real frames instead: the first --count of them held in
 * memory, each ROI with its bead's table (by id, as ms-track maps them)
 * and its previous z, all frames tracked in turn through the pool: what
 * ms-track could do on that data if reading cost nothing. Synthetic beads
 * repeated over and over flatter the kernels a little (the branch
 * predictor learns their few ROIs); this does not.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "framesrc.h"
#include "pool.h"
#include "rois.h"
#include "track/synth.h"
#include "track/track.h"
#include "zlut.h"

#define NB_X 8		/* beads per frame: a NB_X x NB_Y grid of ROIs */
#define NB_Y 8
#define NPLANES 121
#define MAX_ROWS 200

struct row {
	char kernel[32];
	int roi;
	const char *input;
	int threads;
	double rois_per_s, cpu_us, speedup;
};

struct bench {
	double cell_s;		/* seconds per measurement */
	int only_roi;		/* 0: 64 and 128 */
	struct row rows[MAX_ROWS];
	int nrows;
};

/* One frame's worth of work for the pool. */
struct frame_job {
	const struct ms_tracker *t;
	struct ms_track_ws **ws;	/* one per worker */
	const void *frame;
	enum ms_pixfmt fmt;
	size_t stride;
	int w;
	const double *z_prev;	/* per ROI: its bead's z, as a tracked bead's last z */
	struct ms_xyz *out;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void print_row(const struct row *r)
{
	printf("%-22s %4d  %-4s %7d  %10.0f  %8.2f  %8.2f", r->kernel, r->roi, r->input,
	       r->threads, r->rois_per_s, 1e6 / r->rois_per_s, r->cpu_us);
	if (r->speedup > 0)
		printf("  %5.2fx", r->speedup);
	printf("\n");
	fflush(stdout);
}

static void add_row(struct bench *b, const char *kernel, int roi, const char *input, int threads,
		    double rate, double cpu_us)
{
	if (b->nrows == MAX_ROWS)
		ms_die("too many rows");
	struct row *r = &b->rows[b->nrows++];
	snprintf(r->kernel, sizeof r->kernel, "%s", kernel);
	r->roi = roi;
	r->input = input;
	r->threads = threads;
	r->rois_per_s = rate;
	r->cpu_us = cpu_us;
	r->speedup = 0;
	for (int i = 0; threads > 1 && i < b->nrows - 1; i++) {
		const struct row *o = &b->rows[i];
		if (o->threads == 1 && o->roi == roi && !strcmp(o->kernel, kernel) &&
		    !strcmp(o->input, input))
			r->speedup = rate / o->rois_per_s;
	}
	print_row(r);
}

/* A pool run covers REPS passes over the frame's ROIs, as ms-track hands
 * the pool a batch of frames: one frame's work alone can end before a
 * sleeping worker thread has woken on a busy machine. */
#define REPS 4

static void job_roi(void *ctx, size_t item, int worker)
{
	struct frame_job *j = ctx;
	size_t i = item % (NB_X * NB_Y);
	struct ms_roi_in in = {
		.frame = j->frame, .fmt = j->fmt, .stride = j->stride,
		.x0 = (int)(i % NB_X) * j->w, .y0 = (int)(i / NB_X) * j->w,
		.lut_bead = 0, .z_prev = j->z_prev[i],
	};
	ms_track_roi(j->t, j->ws[worker], &in, &j->out[item], NULL);
}

/*
 * Run body over all ROIs until a slice of cell_s/SLICES has passed, SLICES
 * times; rate gets the best slice's ROIs/s, cpu the CPU microseconds per
 * ROI over all slices.
 */
#define SLICES 5
#define TIME_LOOP(b, nroi, body)                                              \
	do {                                                                  \
		rate = 0;                                                     \
		double c0_ = cpu_s();                                         \
		long total_ = 0;                                              \
		for (int s_ = 0; s_ < SLICES; s_++) {                         \
			double t0_ = now_s(), t1_;                            \
			long n_ = 0;                                          \
			do {                                                  \
				for (int i = 0; i < (nroi); i++) {            \
					body;                                 \
				}                                             \
				n_ += (nroi);                                 \
				t1_ = now_s();                                \
			} while (t1_ - t0_ < (b)->cell_s / SLICES);           \
			if (n_ / (t1_ - t0_) > rate)                          \
				rate = n_ / (t1_ - t0_);                      \
			total_ += n_;                                         \
		}                                                             \
		cpu = 1e6 * (cpu_s() - c0_) / total_;                         \
	} while (0)

/* A pool of n threads and a workspace of t's for each. */
static struct ms_pool *pool_for(const struct ms_tracker *t, int n, struct ms_track_ws ***ws)
{
	ms_err e;
	struct ms_pool *pool = ms_pool_new(n, &e);
	if (!pool)
		ms_die("%s", e.msg);
	*ws = ms_xcalloc((size_t)n, sizeof **ws);
	for (int k = 0; k < n; k++)
		if (!((*ws)[k] = ms_track_ws_new(t, &e)))
			ms_die("%s", e.msg);
	return pool;
}

static void pool_free(struct ms_pool *pool, struct ms_track_ws **ws, int n)
{
	for (int k = 0; k < n; k++)
		ms_track_ws_free(ws[k]);
	free(ws);
	ms_pool_free(pool);
}

/* A 121-plane LUT from clean centred beads, with the default profile. */
static void make_lut(struct ms_zlut *lut, const struct ms_track_params *p, int w)
{
	size_t plen = ms_profile_len(w, p->oversample);
	*lut = (struct ms_zlut){.nplanes = NPLANES, .plen = plen, .nbeads = 1, .roi_size = w,
				.oversample = p->oversample};
	snprintf(lut->weighting, sizeof lut->weighting, "%s", ms_weighting_names[p->weighting]);
	lut->z_nm = ms_xmalloc(NPLANES * sizeof *lut->z_nm);
	lut->profiles = ms_xmalloc(NPLANES * plen * sizeof *lut->profiles);
	lut->bead_ids = ms_xcalloc(1, sizeof *lut->bead_ids);
	float *one = ms_xmalloc((size_t)w * w * sizeof *one);
	float *ps = ms_xmalloc(ms_profile_scratch_len(w, p->oversample) * sizeof(float));
	for (int k = 0; k < NPLANES; k++) {
		lut->z_nm[k] = -6000 + 100.0 * k;
		ms_synth_bead(one, w, w, w, w / 2, w / 2, lut->z_nm[k], 2);
		ms_radial_profile(one, w, w / 2, w / 2, p->oversample, p->weighting,
				  lut->profiles + k * plen, ps);
	}
	free(ps);
	free(one);
}

static void bench_size(struct bench *b, int w, int max_threads)
{
	int nroi = NB_X * NB_Y, fw = NB_X * w, fh = NB_Y * w;
	size_t w2 = (size_t)w * w;
	ms_err e;
	struct ms_rng g;
	ms_rng_seed(&g, 42 + w);

	/* the frame as floats, then quantised into u8 and u16 with noise */
	float *img = ms_xmalloc(sizeof(float) * fw * fh);
	double *zs = ms_xmalloc(nroi * sizeof *zs);
	for (int i = 0; i < nroi; i++) {
		double cx = w / 2 + 4 * ms_rng_uniform(&g) - 2, cy = w / 2 + 4 * ms_rng_uniform(&g) - 2;
		double z = zs[i] = -5000 + 10000 * ms_rng_uniform(&g);
		float *roi = img + (size_t)(i / NB_X) * w * fw + (size_t)(i % NB_X) * w;
		ms_synth_bead(roi, w, w, fw, cx, cy, z, 2);
	}
	uint8_t *f8 = ms_xmalloc((size_t)fw * fh);
	uint16_t *f16 = ms_xmalloc(sizeof(uint16_t) * fw * fh);
	ms_synth_quantise(img, fw, fh, fw, 120, &g, MS_PIX_U8, f8, fw);
	ms_synth_quantise(img, fw, fh, fw, 20000, &g, MS_PIX_U16, f16, fw);

	struct ms_track_params p;
	ms_track_params_default(&p);
	p.roi_size = w;
	struct ms_zlut lut;
	make_lut(&lut, &p, w);
	size_t plen = ms_profile_len(w, p.oversample), st = ms_z_stride(plen);
	int nbm = (int)ms_profile_max_len(w, 1);

	/* the ROIs as floats for the kernels alone, with their centres */
	float *rois = ms_xmalloc(w2 * nroi * sizeof *rois);
	double *cx = ms_xmalloc(nroi * sizeof *cx), *cy = ms_xmalloc(nroi * sizeof *cy);
	double *bg = ms_xmalloc(nroi * sizeof *bg);
	uint32_t hist[MS_ROI_HIST_LEN];
	float *ac = ms_xmalloc(ms_autoconv_scratch_len(w) * sizeof(float));
	float *ps = ms_xmalloc(ms_profile_scratch_len(w, 1) * sizeof(float));
	for (int i = 0; i < nroi; i++) {
		ms_roi_load(f16, MS_PIX_U16, fw, (i % NB_X) * w, (i / NB_X) * w, w, rois + i * w2,
			    &bg[i], hist);
		ms_com(rois + i * w2, w, MS_COM_BG_MEDIAN, bg[i], &cx[i], &cy[i], NULL);
		ms_autoconv(rois + i * w2, w, cx[i], cy[i], 0, 0, ac, &cx[i], &cy[i]);
	}
	float *prof = ms_xmalloc(nbm * sizeof *prof), *pn = ms_xmalloc(st * sizeof *pn);
	float *planes = ms_xmalloc(NPLANES * st * sizeof *planes);
	float *scores = ms_xmalloc(NPLANES * sizeof *scores);
	float *gram = ms_xmalloc(NPLANES * 4 * sizeof *gram), *sw = ms_xmalloc(st * sizeof *sw);
	ms_z_bin_weights(plen, MS_ZW_RADIUS, sw);
	for (int k = 0; k < NPLANES; k++)
		ms_z_normalise_from(lut.profiles + k * plen, plen, 1, sw, planes + k * st);
	ms_z_gram(planes, NPLANES, st, gram);
	float **profs = ms_xmalloc(nroi * sizeof *profs);
	for (int i = 0; i < nroi; i++) {
		profs[i] = ms_xmalloc(nbm * sizeof(float));
		ms_radial_profile_n(rois + i * w2, w, cx[i], cy[i], 1, MS_PROFILE_LINEAR, nbm,
				    profs[i], ps);
	}
	double rate, cpu, x, y, sink = 0;
	int hl = ms_autoconv_half_lines(w, p.line_ratio);

	TIME_LOOP(b, nroi, ms_roi_load(f8, MS_PIX_U8, fw, (i % NB_X) * w, (i / NB_X) * w, w,
				      rois + i * w2, &bg[i], hist));
	add_row(b, "load+median", w, "u8", 1, rate, cpu);
	TIME_LOOP(b, nroi, ms_roi_load(f16, MS_PIX_U16, fw, (i % NB_X) * w, (i / NB_X) * w, w,
				      rois + i * w2, &bg[i], hist));
	add_row(b, "load+median", w, "u16", 1, rate, cpu);
	TIME_LOOP(b, nroi, ms_com(rois + i * w2, w, MS_COM_BG_MEDIAN, bg[i], &x, &y, NULL);
		  sink += x);
	add_row(b, "com", w, "f32", 1, rate, cpu);
	TIME_LOOP(b, nroi, ms_autoconv(rois + i * w2, w, cx[i], cy[i], 0, 0, ac, &x, &y);
		  sink += x);
	add_row(b, "autoconv-half", w, "f32", 1, rate, cpu);
	TIME_LOOP(b, nroi, ms_autoconv(rois + i * w2, w, cx[i], cy[i], hl, 5, ac, &x, &y);
		  sink += x);
	add_row(b, "autoconv-multi", w, "f32", 1, rate, cpu);
	struct ms_acfine *acf = ms_acfine_new(w);
	TIME_LOOP(b, nroi, ms_autoconv_fine(rois + i * w2, w, cx[i], cy[i], hl, acf, &x, &y);
		  sink += x);
	add_row(b, "autoconv-fine", w, "f32", 1, rate, cpu);
	ms_acfine_free(acf);
	struct ms_qi *qi = ms_qi_new(w / 2, w / 2, 1, w / 2.0 - 2);
	TIME_LOOP(b, nroi, ms_qi(rois + i * w2, w, cx[i], cy[i], 1, qi, &x, &y); sink += x);
	add_row(b, "qi-step", w, "f32", 1, rate, cpu);
	ms_qi_free(qi);
	float *rf = ms_xmalloc(ms_radial_fit_scratch_len(w, 1) * sizeof(float));
	TIME_LOOP(b, nroi, ms_radial_fit(rois + i * w2, w, cx[i], cy[i], profs[i], nbm, 1, 0, 1, 0,
					 rf, &x, &y); sink += x);
	add_row(b, "radial-fit-step", w, "f32", 1, rate, cpu);
	free(rf);
	for (int wt = MS_PROFILE_NEAREST; wt <= MS_PROFILE_AREA; wt++) {
		char name[32];
		snprintf(name, sizeof name, "profile-%s", ms_weighting_names[wt]);
		TIME_LOOP(b, nroi, ms_radial_profile(rois + i * w2, w, cx[i], cy[i], 1, wt, prof,
						     ps); sink += prof[3]);
		add_row(b, name, w, "f32", 1, rate, cpu);
	}
	for (int m = MS_Z_PEARSON; m <= MS_Z_SSD; m++) {
		unsigned fl = 0;
		const char *mn = ms_z_names[m];
		char name[32];
		TIME_LOOP(b, nroi, ms_z_normalise_from(profs[i], plen, 1, sw, pn);
			  ms_z_scores(pn, planes, NPLANES, st, m, scores);
			  sink += ms_z_fit(scores, NPLANES, 7, lut.z_nm, &fl, NULL));
		snprintf(name, sizeof name, "z-%s-parabola-121", mn);
		add_row(b, name, w, "f32", 1, rate, cpu);
		TIME_LOOP(b, nroi, ms_z_normalise_from(profs[i], plen, 1, sw, pn);
			  ms_z_scores(pn, planes, NPLANES, st, m, scores);
			  sink += ms_z_fit_cubic(scores, gram, NPLANES,
						 ms_z_argmax(scores, 0, NPLANES), m, lut.z_nm, &fl,
						 NULL));
		snprintf(name, sizeof name, "z-%s-cubic-121", mn);
		add_row(b, name, w, "f32", 1, rate, cpu);
	}

	/* the whole pipeline, per frame of nroi ROIs, through the pool */
	struct ms_xyz *out = ms_xmalloc(REPS * nroi * sizeof *out);
	static const enum ms_xy_method methods[] = {MS_XY_RADIAL_FIT, MS_XY_QI,
						     MS_XY_AUTOCONV_FINE, MS_XY_AUTOCONV, MS_XY_COM};
	for (size_t mi = 0; mi < sizeof methods / sizeof *methods; mi++) {
		struct ms_track_params pm = p;
		pm.xy = methods[mi];
		struct ms_tracker *tp = ms_tracker_new(&pm, &lut, &e);
		if (!tp)
			ms_die("%s", e.msg);
		char name[32];
		snprintf(name, sizeof name, "xyz-%s", ms_xy_names[methods[mi]]);
		for (int nt = 1; nt <= max_threads; nt++) {
			struct ms_track_ws **ws;
			struct ms_pool *pool = pool_for(tp, nt, &ws);
			for (int f = 0; f < 2; f++) {
				struct frame_job j = {
					.t = tp, .ws = ws, .frame = f ? (const void *)f16 : f8,
					.fmt = f ? MS_PIX_U16 : MS_PIX_U8, .stride = (size_t)fw,
					.w = w, .z_prev = zs, .out = out,
				};
				TIME_LOOP(b, 1, ms_pool_run(pool, (size_t)REPS * nroi, job_roi, &j));
				for (int i = 0; i < nroi; i++)
					sink += out[i].z;
				add_row(b, name, w, f ? "u16" : "u8", nt, rate * REPS * nroi,
					cpu / (REPS * nroi));
			}
			pool_free(pool, ws, nt);
		}
		ms_tracker_free(tp);
	}
	if (sink == 12345.678)	/* keep the results alive */
		puts("");

	for (int i = 0; i < nroi; i++)
		free(profs[i]);
	free(profs);
	free(out);
	free(zs);
	free(sw);
	free(gram);
	free(scores);
	free(planes);
	free(pn);
	free(prof);
	free(ps);
	free(ac);
	free(bg);
	free(cy);
	free(cx);
	free(rois);
	ms_zlut_free(&lut);
	free(f16);
	free(f8);
	free(img);
}

/* Frames from a file, held in memory, and their ROIs' tracking state. */
struct file_job {
	const struct ms_tracker *t;
	struct ms_track_ws **ws;
	const unsigned char *frames;	/* count frames of frame_bytes */
	size_t frame_bytes;
	struct ms_frame_info info;
	const struct ms_roilist *rois;
	const long *lut_bead;
	double *z_prev;			/* per ROI; written between passes only */
	struct ms_xyz *out;		/* count * rois->n */
};

static void job_file_roi(void *ctx, size_t item, int worker)
{
	struct file_job *j = ctx;
	size_t n = j->rois->n, f = item / n, r = item % n;
	struct ms_roi_in in = {
		.frame = j->frames + f * j->frame_bytes, .fmt = j->info.fmt,
		.stride = j->info.width, .x0 = j->rois->roi[r].x0, .y0 = j->rois->roi[r].y0,
		.lut_bead = j->lut_bead[r], .z_prev = j->z_prev[r],
	};
	ms_track_roi(j->t, j->ws[worker], &in, &j->out[item], NULL);
}

/* The default pipeline, with a table's profile settings, on count frames of path. */
static void bench_file(struct bench *b, const char *path, const char *rois_path,
		       const char *zlut_path, long count, int max_threads)
{
	ms_err e;
	char *paths[] = {(char *)path};
	struct ms_framesrc *src = ms_framesrc_open(paths, 1, &e);
	if (!src)
		ms_die("%s", e.msg);
	struct ms_frame_info info = *ms_framesrc_info(src);
	size_t fb = ms_frame_bytes(&info);
	unsigned char *frames = ms_xmalloc(fb * (size_t)count);
	long got = 0;
	for (; got < count; got++) {
		struct ms_frame f;
		int rc = ms_framesrc_next_into(src, &f, frames + fb * (size_t)got, &e);
		if (rc < 0)
			ms_die("%s", e.msg);
		if (rc == 0)
			break;
	}
	ms_framesrc_close(src);
	if (got == 0)
		ms_die("'%s' has no frames", path);
	struct ms_roilist rois;
	if (ms_rois_load(rois_path, &rois, &e) < 0)
		ms_die("%s", e.msg);
	struct ms_track_params p;
	ms_track_params_default(&p);
	struct ms_zlut lut = {0}, *lp = NULL;
	if (zlut_path) {
		if (ms_zlut_load(zlut_path, &lut, &e) < 0)
			ms_die("%s", e.msg);
		lp = &lut;
		/* as ms-track does: the table's own profile settings */
		int wt = lut.weighting[0] ? ms_track_name_index(ms_weighting_names, lut.weighting)
					  : MS_PROFILE_NEAREST;
		if (wt >= 0)
			p.weighting = wt;
		if (lut.oversample > 0)
			p.oversample = lut.oversample;
		if (lut.roi_size > 0)
			p.roi_size = lut.roi_size;
	}
	if (ms_rois_check(&rois, p.roi_size, info.width, info.height, &e) < 0)
		ms_die("%s", e.msg);
	struct ms_tracker *t = ms_tracker_new(&p, lp, &e);
	if (!t)
		ms_die("%s", e.msg);
	size_t n = rois.n, items = n * (size_t)got;
	long *lut_bead = ms_xmalloc(n * sizeof *lut_bead);
	double *z_prev = ms_xmalloc(n * sizeof *z_prev);
	for (size_t r = 0; r < n; r++) {
		long k = lp ? ms_zlut_find_bead(lp, rois.roi[r].id) : -1;
		lut_bead[r] = k < 0 && lp && lp->nbeads == 1 ? 0 : k;
		z_prev[r] = NAN;
	}
	struct ms_xyz *out = ms_xmalloc(items * sizeof *out);
	printf("# %s: %ld frames of %ux%u %s in memory, %zu ROIs of %d px, %s\n", path, got,
	       info.width, info.height, ms_pixfmt_name(info.fmt), n, p.roi_size,
	       zlut_path ? zlut_path : "no Z-LUT");
	for (int nt = 1; nt <= max_threads; nt++) {
		struct ms_track_ws **ws;
		struct ms_pool *pool = pool_for(t, nt, &ws);
		struct file_job j = {
			.t = t, .ws = ws, .frames = frames, .frame_bytes = fb, .info = info,
			.rois = &rois, .lut_bead = lut_bead, .z_prev = z_prev, .out = out,
		};
		double rate, cpu;
		/* each pass tracks every frame; z carries over as in ms-track */
		TIME_LOOP(b, 1, ms_pool_run(pool, items, job_file_roi, &j);
			  for (size_t r = 0; r < n; r++) {
				  double z = out[items - n + r].z;
				  if (isfinite(z))
					  z_prev[r] = z;
			  });
		add_row(b, "xyz-frames", p.roi_size, ms_pixfmt_name(info.fmt), nt,
			rate * (double)items, cpu / (double)items);
		pool_free(pool, ws, nt);
	}
	free(out);
	free(z_prev);
	free(lut_bead);
	ms_tracker_free(t);
	if (lp)
		ms_zlut_free(&lut);
	ms_rois_free(&rois);
	free(frames);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ms-bench [--tsv FILE] [--time SECONDS] [--roi N] [--threads N]\n"
		   "       ms-bench --frames FILE.tif --rois FILE [--zlut FILE] [--count N] ...\n"
		   "  --tsv FILE      also write the table as TSV\n"
		   "  --time SECONDS  time per measurement (default 0.4)\n"
		   "  --roi N         only this ROI size, 64 or 128 (default both)\n"
		   "  --threads N     pipelines on 1 .. N threads (default 2)\n"
		   "  --frames FILE   the whole pipeline on this file's frames, in memory\n"
		   "  --rois FILE     its ROI list; --zlut FILE its Z-LUT (default none)\n"
		   "  --count N       frames of it to hold (default 40)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tsv", required_argument, NULL, 't'},
		{"time", required_argument, NULL, 'T'},
		{"roi", required_argument, NULL, 'r'},
		{"threads", required_argument, NULL, 'j'},
		{"frames", required_argument, NULL, 'f'},
		{"rois", required_argument, NULL, 'R'},
		{"zlut", required_argument, NULL, 'z'},
		{"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *tsv = NULL, *frames = NULL, *rois = NULL, *zlut = NULL;
	long count = 40;
	struct bench b = {.cell_s = 0.4};
	int c, max_threads = 2;
	char *end;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tsv = optarg;
			break;
		case 'T':
			b.cell_s = strtod(optarg, &end);
			if (*end || !(b.cell_s > 0 && b.cell_s <= 60))
				ms_usage_error("bad --time '%s': want seconds in (0, 60]", optarg);
			break;
		case 'r':
			b.only_roi = (int)strtol(optarg, &end, 10);
			if (*end || (b.only_roi != 64 && b.only_roi != 128))
				ms_usage_error("bad --roi '%s': want 64 or 128", optarg);
			break;
		case 'j':
			max_threads = (int)strtol(optarg, &end, 10);
			if (*end || max_threads < 1 || max_threads > 64)
				ms_usage_error("bad --threads '%s': want 1 to 64", optarg);
			break;
		case 'f':
			frames = optarg;
			break;
		case 'R':
			rois = optarg;
			break;
		case 'z':
			zlut = optarg;
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end || count < 1 || count > 100000)
				ms_usage_error("bad --count '%s': want 1 to 100000 frames", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return MS_EXIT_USAGE;
		}
	}
	if (optind < argc)
		ms_usage_error("unexpected argument '%s'", argv[optind]);
	printf("%-22s %4s  %-4s %7s  %10s  %8s  %8s  %s\n", "kernel", "roi", "in", "threads",
	       "rois/s", "us/roi", "cpu-us", "speed-up");
	if (frames) {
		if (!rois)
			ms_usage_error("--frames needs --rois");
		bench_file(&b, frames, rois, zlut, count, max_threads);
	} else {
		if (rois || zlut)
			ms_usage_error("--rois and --zlut go with --frames");
		if (b.only_roi != 128)
			bench_size(&b, 64, max_threads);
		if (b.only_roi != 64)
			bench_size(&b, 128, max_threads);
	}
	printf("# xyz-METHOD: the whole pipeline; radial-fit is the default; xyz-frames: on a\n"
	       "# file's frames. us/roi is wall time per ROI (best of 5 slices), cpu-us the CPU\n"
	       "# time per ROI over all threads.\n");
	if (tsv) {
		FILE *f = fopen(tsv, "w");
		if (!f)
			ms_die("cannot open '%s':", tsv);
		fprintf(f, "kernel\troi\tinput\tthreads\trois_per_s\tus_per_roi\tcpu_us_per_roi\t"
			   "speedup\n");
		for (int i = 0; i < b.nrows; i++) {
			struct row *r = &b.rows[i];
			fprintf(f, "%s\t%d\t%s\t%d\t%.0f\t%.3f\t%.3f\t%.2f\n", r->kernel, r->roi,
				r->input, r->threads, r->rois_per_s, 1e6 / r->rois_per_s, r->cpu_us,
				r->speedup);
		}
		if (fclose(f) != 0)
			ms_die("cannot write '%s':", tsv);
	}
	ms_close_stdout();
	return 0;
}
