/*
 * ms-bench: tracking throughput, in ROIs per second, of each kernel and of
 * the whole XYZ pipeline (centre of mass, autoconvolution x(1+5), radial
 * profile, Pearson z on a 121-plane LUT, all at the default parameters:
 * "xyz-pipeline" with MagTrack's parabola, "xyz-fine" with the exact
 * autoconvolution peak; both with the default cubic profile), at 64 and 128
 * px, from u8 and u16 frames, on 1 and 2 threads through ms_pool. The frames hold a grid
 * of synthetic ring beads (libcommon/track/synth) at random sub-pixel
 * offsets and heights, with Poisson noise. Prints a table; --tsv FILE
 * also writes it as TSV. A measurement, not a test: it never fails on
 * speed.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "pool.h"
#include "track/synth.h"
#include "track/track.h"

#define NB_X 8		/* beads per frame: a NB_X x NB_Y grid of ROIs */
#define NB_Y 8
#define NPLANES 121

struct row {
	const char *kernel;
	int roi;
	const char *input;
	int threads;
	double rois_per_s;
};

struct bench {
	double cell_s;		/* seconds per measurement */
	struct row rows[160];
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
	struct ms_xyz *out;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void add_row(struct bench *b, const char *kernel, int roi, const char *input, int threads,
		    double rate)
{
	struct row *r = &b->rows[b->nrows++];
	r->kernel = kernel;
	r->roi = roi;
	r->input = input;
	r->threads = threads;
	r->rois_per_s = rate;
	printf("%-16s %4d  %-4s %7d  %12.0f  %9.2f\n", kernel, roi, input, threads, rate,
	       1e6 / rate);
	fflush(stdout);
}

static void job_roi(void *ctx, size_t i, int worker)
{
	struct frame_job *j = ctx;
	struct ms_roi_in in = {
		.frame = j->frame, .fmt = j->fmt, .stride = j->stride,
		.x0 = (int)(i % NB_X) * j->w, .y0 = (int)(i / NB_X) * j->w,
		.lut_bead = 0, .z_prev = NAN,
	};
	ms_track_roi(j->t, j->ws[worker], &in, &j->out[i], NULL);
}

/*
 * Kernel timing: run body over all ROIs until a slice of cell_s/SLICES has
 * passed, SLICES times, and keep the best slice's rate: on a shared
 * machine the best slice is the one least disturbed by other work.
 */
#define SLICES 5
#define TIME_LOOP(b, nroi, body)                                              \
	do {                                                                  \
		rate = 0;                                                     \
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
		}                                                             \
	} while (0)

static void bench_size(struct bench *b, int w)
{
	int nroi = NB_X * NB_Y, fw = NB_X * w, fh = NB_Y * w;
	size_t w2 = (size_t)w * w;
	ms_err e;
	struct ms_rng g;
	ms_rng_seed(&g, 42 + w);

	/* the frame as floats, then quantised into u8 and u16 with noise */
	float *img = ms_xmalloc(sizeof(float) * fw * fh);
	for (int i = 0; i < nroi; i++) {
		double cx = w / 2 + 4 * ms_rng_uniform(&g) - 2, cy = w / 2 + 4 * ms_rng_uniform(&g) - 2;
		double z = -5000 + 10000 * ms_rng_uniform(&g);
		float *roi = img + (size_t)(i / NB_X) * w * fw + (size_t)(i % NB_X) * w;
		ms_synth_bead(roi, w, w, fw, cx, cy, z, 2);
	}
	uint8_t *f8 = ms_xmalloc((size_t)fw * fh);
	uint16_t *f16 = ms_xmalloc(sizeof(uint16_t) * fw * fh);
	ms_synth_quantise(img, fw, fh, fw, 120, &g, MS_PIX_U8, f8, fw);
	ms_synth_quantise(img, fw, fh, fw, 20000, &g, MS_PIX_U16, f16, fw);

	/* a 121-plane LUT from clean centred beads */
	struct ms_track_params p;
	ms_track_params_default(&p);
	p.roi_size = w;
	size_t plen = ms_profile_len(w, p.oversample);
	struct ms_zlut lut = {.nplanes = NPLANES, .plen = plen, .nbeads = 1, .roi_size = w,
			      .oversample = p.oversample};
	snprintf(lut.weighting, sizeof lut.weighting, "%s", ms_weighting_names[p.weighting]);
	lut.z_nm = ms_xmalloc(NPLANES * sizeof *lut.z_nm);
	lut.profiles = ms_xmalloc(NPLANES * plen * sizeof *lut.profiles);
	float *one = ms_xmalloc(w2 * sizeof *one);
	float *ps = ms_xmalloc(ms_profile_scratch_len(w, p.oversample) * sizeof(float));
	for (int k = 0; k < NPLANES; k++) {
		lut.z_nm[k] = -6000 + 100.0 * k;
		ms_synth_bead(one, w, w, w, w / 2, w / 2, lut.z_nm[k], 2);
		ms_radial_profile(one, w, w / 2, w / 2, p.oversample, p.weighting,
				  lut.profiles + k * plen, ps);
	}
	struct ms_tracker *t = ms_tracker_new(&p, &lut, &e);
	if (!t)
		ms_die("%s", e.msg);

	/* the ROIs as floats for the kernels alone, with their centres */
	float *rois = ms_xmalloc(w2 * nroi * sizeof *rois);
	double *cx = ms_xmalloc(nroi * sizeof *cx), *cy = ms_xmalloc(nroi * sizeof *cy);
	double *bg = ms_xmalloc(nroi * sizeof *bg);
	uint32_t hist[MS_ROI_HIST_LEN];
	for (int i = 0; i < nroi; i++) {
		ms_roi_load(f16, MS_PIX_U16, fw, (i % NB_X) * w, (i / NB_X) * w, w, rois + i * w2,
			    &bg[i], hist);
		ms_com(rois + i * w2, w, MS_COM_BG_MEDIAN, bg[i], &cx[i], &cy[i], NULL);
	}
	float *ac = ms_xmalloc(ms_autoconv_scratch_len(w) * sizeof(float));
	float *prof = ms_xmalloc(plen * sizeof *prof), *pn = ms_xmalloc(ms_z_stride(plen) * 4);
	float *planes = ms_xmalloc(NPLANES * ms_z_stride(plen) * sizeof *planes);
	float *scores = ms_xmalloc(NPLANES * sizeof *scores);
	for (int k = 0; k < NPLANES; k++)
		ms_z_normalise(lut.profiles + k * plen, plen, planes + k * ms_z_stride(plen));
	float *gram = ms_xmalloc(NPLANES * 4 * sizeof *gram);
	ms_z_gram(planes, NPLANES, ms_z_stride(plen), gram);
	float **profs = ms_xmalloc(nroi * sizeof *profs);
	for (int i = 0; i < nroi; i++) {
		profs[i] = ms_xmalloc(plen * sizeof(float));
		ms_radial_profile(rois + i * w2, w, cx[i], cy[i], 1, p.weighting, profs[i], ps);
	}
	double rate, x, y, sink = 0;
	int hl = ms_autoconv_half_lines(w, p.line_ratio);

	TIME_LOOP(b, nroi, ms_roi_load(f8, MS_PIX_U8, fw, (i % NB_X) * w, (i / NB_X) * w, w,
				      rois + i * w2, &bg[i], hist));
	add_row(b, "load+median", w, "u8", 1, rate);
	TIME_LOOP(b, nroi, ms_roi_load(f16, MS_PIX_U16, fw, (i % NB_X) * w, (i / NB_X) * w, w,
				      rois + i * w2, &bg[i], hist));
	add_row(b, "load+median", w, "u16", 1, rate);
	TIME_LOOP(b, nroi, ms_com(rois + i * w2, w, MS_COM_BG_MEDIAN, bg[i], &x, &y, NULL);
		  sink += x);
	add_row(b, "com", w, "f32", 1, rate);
	TIME_LOOP(b, nroi, ms_autoconv(rois + i * w2, w, cx[i], cy[i], 0, 0, ac, &x, &y);
		  sink += x);
	add_row(b, "autoconv", w, "f32", 1, rate);
	TIME_LOOP(b, nroi, ms_autoconv(rois + i * w2, w, cx[i], cy[i], hl, 5, ac, &x, &y);
		  sink += x);
	add_row(b, "autoconv-multi", w, "f32", 1, rate);
	struct ms_acfine *acf = ms_acfine_new(w);
	TIME_LOOP(b, nroi, ms_autoconv_fine(rois + i * w2, w, cx[i], cy[i], hl, acf, &x, &y);
		  sink += x);
	add_row(b, "autoconv-fine", w, "f32", 1, rate);
	ms_acfine_free(acf);
	TIME_LOOP(b, nroi, ms_radial_profile(rois + i * w2, w, cx[i], cy[i], 1,
					     MS_PROFILE_NEAREST, prof, ps); sink += prof[3]);
	add_row(b, "profile-nearest", w, "f32", 1, rate);
	TIME_LOOP(b, nroi, ms_radial_profile(rois + i * w2, w, cx[i], cy[i], 1,
					     MS_PROFILE_LINEAR, prof, ps); sink += prof[3]);
	add_row(b, "profile-linear", w, "f32", 1, rate);
	TIME_LOOP(b, nroi, ms_radial_profile(rois + i * w2, w, cx[i], cy[i], 1,
					     MS_PROFILE_CUBIC, prof, ps); sink += prof[3]);
	add_row(b, "profile-cubic", w, "f32", 1, rate);
	float *rf = ms_xmalloc(ms_radial_fit_scratch_len(w, 1) * sizeof(float));
	TIME_LOOP(b, nroi, ms_radial_fit(rois + i * w2, w, cx[i], cy[i], profs[i], (int)plen, 1, -1,
					 1, 0, rf, &x, &y); sink += x);
	add_row(b, "radial-fit-step", w, "f32", 1, rate);
	free(rf);
	for (int m = MS_Z_PEARSON; m <= MS_Z_SSD; m++) {
		unsigned fl = 0;
		TIME_LOOP(b, nroi, ms_z_normalise(profs[i], plen, pn);
			  ms_z_scores(pn, planes, NPLANES, ms_z_stride(plen), m, scores);
			  sink += ms_z_fit(scores, NPLANES, 7, lut.z_nm, &fl, NULL));
		add_row(b, m == MS_Z_PEARSON ? "z-pearson-121" : "z-ssd-121", w, "f32", 1, rate);
		TIME_LOOP(b, nroi, ms_z_normalise(profs[i], plen, pn);
			  ms_z_scores(pn, planes, NPLANES, ms_z_stride(plen), m, scores);
			  sink += ms_z_fit_cubic(scores, gram, NPLANES,
						 ms_z_argmax(scores, 0, NPLANES), m, lut.z_nm, &fl,
						 NULL));
		add_row(b, m == MS_Z_PEARSON ? "z-pearson-cubic" : "z-ssd-cubic", w, "f32", 1, rate);
	}

	/* the whole pipeline, per frame of nroi ROIs, through the pool */
	struct ms_xyz *out = ms_xmalloc(nroi * sizeof *out);
	static const enum ms_xy_method methods[] = {MS_XY_RADIAL_FIT, MS_XY_AUTOCONV_FINE,
						     MS_XY_AUTOCONV};
	static const char *const names[] = {"xyz-radial-fit", "xyz-autoconv-fine",
					    "xyz-autoconv"};
	for (size_t mi = 0; mi < sizeof methods / sizeof *methods; mi++) {
		struct ms_track_params pm = p;
		pm.xy = methods[mi];
		struct ms_tracker *tp = ms_tracker_new(&pm, &lut, &e);
		if (!tp)
			ms_die("%s", e.msg);
		for (int nt = 1; nt <= 2; nt++) {
			struct ms_pool *pool = ms_pool_new(nt, &e);
			if (!pool)
				ms_die("%s", e.msg);
			struct ms_track_ws *ws[2];
			for (int k = 0; k < nt; k++)
				if (!(ws[k] = ms_track_ws_new(tp, &e)))
					ms_die("%s", e.msg);
			for (int f = 0; f < 2; f++) {
				struct frame_job j = {
					.t = tp, .ws = ws, .frame = f ? (const void *)f16 : f8,
					.fmt = f ? MS_PIX_U16 : MS_PIX_U8, .stride = (size_t)fw,
					.w = w, .out = out,
				};
				TIME_LOOP(b, 1, ms_pool_run(pool, (size_t)nroi, job_roi, &j));
				for (int i = 0; i < nroi; i++)
					sink += out[i].z;
				add_row(b, names[mi], w, f ? "u16" : "u8", nt, rate * nroi);
			}
			for (int k = 0; k < nt; k++)
				ms_track_ws_free(ws[k]);
			ms_pool_free(pool);
		}
		ms_tracker_free(tp);
	}
	if (sink == 12345.678)	/* keep the results alive */
		puts("");

	for (int i = 0; i < nroi; i++)
		free(profs[i]);
	free(profs);
	free(out);
	free(scores);
	free(gram);
	free(planes);
	free(pn);
	free(prof);
	free(ac);
	free(bg);
	free(cy);
	free(cx);
	free(rois);
	free(ps);
	free(one);
	ms_tracker_free(t);
	free(lut.profiles);
	free(lut.z_nm);
	free(f16);
	free(f8);
	free(img);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ms-bench [--tsv FILE] [--time SECONDS]\n"
		   "  --tsv FILE      also write the table as TSV\n"
		   "  --time SECONDS  time per measurement (default 0.4)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tsv", required_argument, NULL, 't'},
		{"time", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *tsv = NULL;
	struct bench b = {.cell_s = 0.4};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tsv = optarg;
			break;
		case 'T': {
			char *end;
			b.cell_s = strtod(optarg, &end);
			if (*end || !(b.cell_s > 0 && b.cell_s <= 60))
				ms_usage_error("bad --time '%s': want seconds in (0, 60]", optarg);
			break;
		}
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
	printf("%-16s %4s  %-4s %7s  %12s  %9s\n", "kernel", "roi", "in", "threads", "rois/s",
	       "us/roi");
	bench_size(&b, 64);
	bench_size(&b, 128);
	if (tsv) {
		FILE *f = fopen(tsv, "w");
		if (!f)
			ms_die("cannot open '%s':", tsv);
		fprintf(f, "kernel\troi\tinput\tthreads\trois_per_s\tus_per_roi\n");
		for (int i = 0; i < b.nrows; i++) {
			struct row *r = &b.rows[i];
			fprintf(f, "%s\t%d\t%s\t%d\t%.0f\t%.3f\n", r->kernel, r->roi, r->input,
				r->threads, r->rois_per_s, 1e6 / r->rois_per_s);
		}
		if (fclose(f) != 0)
			ms_die("cannot write '%s':", tsv);
	}
	ms_close_stdout();
	return 0;
}
