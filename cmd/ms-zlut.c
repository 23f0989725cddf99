/*
 * ms-zlut: Z look-up tables. `build` makes one from a recorded focus sweep
 * (frames plus the z of every frame): each bead is located, its radial
 * profile taken, and the profiles of frames at the same z averaged into
 * one plane. `show` summarises a table; `convert` moves it between the
 * mstk HDF5 form and MagScope's text matrix.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "framesrc.h"
#include "pool.h"
#include "rois.h"
#include "track/track.h"
#include "trackopts.h"
#include "zlut.h"

enum {
	OPT_ROIS = 'r', OPT_Z = 'z', OPT_OUT = 'o', OPT_JOBS = 'j', OPT_FORCE = 'f',
	OPT_BEAD = MS_KEY_LONG, OPT_PER_BEAD, OPT_NM_PER_PX, OPT_TO,
};

static const struct ms_opt build_options[] = {
	{ "rois", OPT_ROIS, "FILE", "bead ROI list (required)", "file" },
	{ "z", OPT_Z, "ZFILE", "z in nm of every frame, one per line (required)", "file" },
	{ "output", OPT_OUT, "LUT", "the Z-LUT to write: .h5 (mstk) or .txt (MagScope) (required)", "file" },
	{ "bead", OPT_BEAD, "ID", "use this bead only (default: average all beads)", NULL },
	{ "per-bead", OPT_PER_BEAD, NULL, "one table per bead, in one HDF5 file", NULL },
	{ "nm-per-px", OPT_NM_PER_PX, "X", "record this pixel size (default: from the input)", NULL },
	{ "jobs", OPT_JOBS, "N", "worker threads (default: all cores)", NULL },
	{ "force", OPT_FORCE, NULL, "overwrite an existing output file", NULL },
	MS_TRACK_OPTS,
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_opt show_options[] = {
	MS_OPT_VERBOSE, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_opt convert_options[] = {
	{ "to", OPT_TO, "FORM", "output form: h5 or text (default: from OUT's name)", "h5 text" },
	{ "bead", OPT_BEAD, "ID", "the bead to write as text, from a per-bead table", NULL },
	{ "force", OPT_FORCE, NULL, "overwrite an existing output file", NULL },
	MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd build_cmd = {
	.name = "ms-zlut build",
	.synopsis = "--rois FILE [--roi-size N] --z ZFILE -o LUT [--bead ID | --per-bead] INPUT...",
	.summary = "Build a Z-LUT from a recorded focus sweep (TIFF files or a frame stream).",
	.opts = build_options,
	.operands = "file:*.@(tif|tiff|frames)",
	.epilog = "Frames with equal z are averaged into one plane; planes are sorted by z.",
};
static const struct ms_cmd show_cmd = {
	.name = "ms-zlut show",
	.synopsis = "LUT",
	.summary = "Summarise a Z-LUT: planes, z range and step, profile length, beads.",
	.opts = show_options,
	.operands = "file",
};
static const struct ms_cmd convert_cmd = {
	.name = "ms-zlut convert",
	.synopsis = "[--to h5|text] [--bead ID] IN OUT",
	.summary = "Convert a Z-LUT between the mstk HDF5 form and MagScope's text matrix.",
	.opts = convert_options,
	.operands = "file",
};
static const struct ms_cmd *const subcmds[] = { &build_cmd, &show_cmd, &convert_cmd, NULL };
static const struct ms_cmd cmd = {
	.name = "ms-zlut",
	.synopsis = "build --rois FILE --z ZFILE -o LUT INPUT...\nshow LUT\nconvert IN OUT",
	.summary = "Build, inspect and convert Z look-up tables.",
	.subcmds = subcmds,
};

/* Whether a file name asks for MagScope's text form. */
static bool wants_text(const char *path)
{
	const char *dot = strrchr(path, '.');
	return dot && (strcmp(dot, ".txt") == 0 || strcmp(dot, ".tsv") == 0 ||
	               strcmp(dot, ".dat") == 0 || strcmp(dot, ".csv") == 0);
}

static void refuse_existing(const char *path, bool force)
{
	if (!force && access(path, F_OK) == 0)
		ms_die("'%s' exists; give --force to overwrite it", path);
}

/* ---- build ---- */

struct build_config {
	const char *rois_path, *z_path, *out_path;
	long bead;		/* -1: all */
	bool per_bead, force;
	double nm_per_px;
	long jobs;
	int verbose;
	struct ms_track_params params;
	char **inputs;
	int ninputs;
};

/* Read ZFILE: one z (nm) per line; '#' comments and blank lines skipped. */
static double *read_zfile(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		ms_die("cannot open '%s':", path);
	size_t cap = 1024, len = 0;
	double *z = ms_xmalloc(cap * sizeof *z);
	char *line = NULL;
	size_t linecap = 0;
	long lineno = 0;
	while (getline(&line, &linecap, f) >= 0) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *tok = strtok(line, " \t\r\n");
		if (!tok)
			continue;
		double v;
		if (ms_parse_double(tok, &v) < 0)
			ms_die("%s:%ld: '%s' is not a z in nm", path, lineno, tok);
		if (strtok(NULL, " \t\r\n"))
			ms_die("%s:%ld: expected one number per line", path, lineno);
		if (len == cap)
			z = ms_xrealloc(z, (cap *= 2) * sizeof *z);
		z[len++] = v;
	}
	if (ferror(f))
		ms_die("cannot read '%s':", path);
	fclose(f);
	free(line);
	if (len == 0)
		ms_die("%s: no z values", path);
	*n = len;
	return z;
}

struct profile_job {
	const struct ms_tracker *tracker;
	struct ms_track_ws **ws;
	const struct ms_roilist *rois;
	struct ms_frame_info info;
	const void *pixels;
	float *profiles;	/* nrois * plen */
	struct ms_xyz *xyz;
	size_t plen;
};

static void profile_one(void *ctx, size_t r, int worker)
{
	struct profile_job *j = ctx;
	struct ms_roi_in in = {
		.frame = j->pixels, .fmt = j->info.fmt, .stride = j->info.width,
		.x0 = j->rois->roi[r].x0, .y0 = j->rois->roi[r].y0, .lut_bead = -1, .z_prev = NAN,
	};
	ms_track_roi(j->tracker, j->ws[worker], &in, &j->xyz[r], j->profiles + r * j->plen);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static long plane_of(const double *planes, size_t n, double z)
{
	const double *p = bsearch(&z, planes, n, sizeof *planes, cmp_double);
	return p ? p - planes : -1;
}

static int run_build(int argc, char **argv)
{
	struct build_config c = { .bead = -1 };
	ms_track_params_default(&c.params);
	struct ms_cli cli;
	ms_cli_init(&cli, &build_cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		if (ms_trackopts_apply(&c.params, &cli, key, arg))
			continue;
		switch (key) {
		case OPT_ROIS: c.rois_path = arg; break;
		case OPT_Z: c.z_path = arg; break;
		case OPT_OUT: c.out_path = arg; break;
		case OPT_BEAD: c.bead = ms_cli_long(&cli, arg, 0, MS_BEAD_ID_MAX); break;
		case OPT_PER_BEAD: c.per_bead = true; break;
		case OPT_NM_PER_PX: c.nm_per_px = ms_cli_double(&cli, arg, 1e-6, 1e9); break;
		case OPT_JOBS: c.jobs = ms_cli_long(&cli, arg, 1, 1024); break;
		case OPT_FORCE: c.force = true; break;
		case 'v': c.verbose = 1; break;
		case 'q': c.verbose = -1; break;
		}
	}
	if (!c.rois_path || !c.z_path || !c.out_path)
		ms_usage_error("build needs --rois FILE, --z ZFILE and -o LUT");
	if (c.per_bead && c.bead >= 0)
		ms_usage_error("--bead and --per-bead exclude each other");
	if (c.per_bead && wants_text(c.out_path))
		ms_usage_error("--per-bead writes HDF5; '%s' names a text file", c.out_path);
	c.inputs = argv + optind;
	c.ninputs = argc - optind;
	refuse_existing(c.out_path, c.force);

	ms_err e;
	struct ms_roilist rois;
	if (ms_rois_load(c.rois_path, &rois, &e) < 0)
		ms_die("%s", e.msg);
	if (c.bead >= 0) {
		long k = ms_rois_find(&rois, (uint32_t)c.bead);
		if (k < 0)
			ms_die("%s: has no bead %ld", c.rois_path, c.bead);
		rois.roi[0] = rois.roi[k];
		rois.n = 1;
	}
	size_t nz;
	double *zs = read_zfile(c.z_path, &nz);

	struct ms_tracker *tracker = ms_tracker_new(&c.params, NULL, &e);
	if (!tracker)
		ms_die("%s", e.msg);
	size_t plen = ms_tracker_plen(tracker);
	struct ms_framesrc *src = ms_framesrc_open(c.inputs, c.ninputs, &e);
	if (!src)
		ms_die("%s", e.msg);
	struct ms_frame_info info = *ms_framesrc_info(src);
	if (ms_rois_check(&rois, c.params.roi_size, info.width, info.height, &e) < 0)
		ms_die("%s: %s", c.rois_path, e.msg);
	int64_t total = ms_framesrc_total(src);
	if (total >= 0 && (size_t)total != nz)
		ms_die("%s has %zu z values but the input has %lld frames", c.z_path, nz,
		       (long long)total);

	/* The distinct z values, sorted, are the planes. */
	double *planes = ms_xmalloc(nz * sizeof *planes);
	memcpy(planes, zs, nz * sizeof *planes);
	qsort(planes, nz, sizeof *planes, cmp_double);
	size_t nplanes = 0;
	for (size_t i = 0; i < nz; i++)
		if (nplanes == 0 || planes[i] != planes[nplanes - 1])
			planes[nplanes++] = planes[i];
	if (nplanes < 2)
		ms_die("%s: a Z-LUT needs at least 2 distinct z values, found %zu", c.z_path, nplanes);

	struct ms_pool *pool = ms_pool_new((int)c.jobs, &e);
	if (!pool)
		ms_die("%s", e.msg);
	int nthreads = ms_pool_threads(pool);
	struct profile_job job = { .tracker = tracker, .rois = &rois, .info = info, .plen = plen };
	job.ws = ms_xcalloc((size_t)nthreads, sizeof *job.ws);
	for (int i = 0; i < nthreads; i++)
		if (!(job.ws[i] = ms_track_ws_new(tracker, &e)))
			ms_die("%s", e.msg);
	job.profiles = ms_xmalloc(rois.n * plen * sizeof *job.profiles);
	job.xyz = ms_xmalloc(rois.n * sizeof *job.xyz);

	/* Sums and counts per bead, plane and bin: a NaN bin does not poison the mean. */
	size_t cells = rois.n * nplanes * plen;
	double *sum = ms_xcalloc(cells, sizeof *sum);
	uint32_t *count = ms_xcalloc(cells, sizeof *count);
	size_t nframes = 0, lost = 0;
	struct ms_frame f;
	int rc;
	while ((rc = ms_framesrc_next(src, &f, &e)) > 0) {
		if (nframes >= nz)
			ms_die("the input has more frames than %s has z values (%zu)", c.z_path, nz);
		long k = plane_of(planes, nplanes, zs[nframes]);
		job.pixels = f.pixels;
		ms_pool_run(pool, rois.n, profile_one, &job);
		for (size_t r = 0; r < rois.n; r++) {
			if (job.xyz[r].flags & MS_TRK_XY_BAD) {
				lost++;
				continue;
			}
			const float *p = job.profiles + r * plen;
			size_t base = (r * nplanes + (size_t)k) * plen;
			for (size_t i = 0; i < plen; i++) {
				if (!isnan(p[i])) {
					sum[base + i] += p[i];
					count[base + i]++;
				}
			}
		}
		nframes++;
	}
	if (rc < 0)
		ms_die("%s", e.msg);
	if (nframes != nz)
		ms_die("%s has %zu z values but the input has %zu frames", c.z_path, nz, nframes);

	size_t nbeads = c.per_bead ? rois.n : 1;
	struct ms_zlut lut;
	if (ms_zlut_alloc(&lut, nplanes, plen, nbeads, &e) < 0)
		ms_die("%s", e.msg);
	memcpy(lut.z_nm, planes, nplanes * sizeof *planes);
	lut.roi_size = c.params.roi_size;
	lut.nm_per_px = c.nm_per_px > 0 ? c.nm_per_px : info.nm_per_px;
	lut.oversample = c.params.oversample;
	snprintf(lut.weighting, sizeof lut.weighting, "%s", ms_weighting_names[c.params.weighting]);
	size_t empty = 0;
	for (size_t b = 0; b < nbeads; b++) {
		lut.bead_ids[b] = c.per_bead ? rois.roi[b].id : (c.bead >= 0 ? (uint32_t)c.bead : 0);
		for (size_t k = 0; k < nplanes; k++) {
			float *dst = lut.profiles + (b * nplanes + k) * plen;
			for (size_t i = 0; i < plen; i++) {
				double s = 0;
				uint64_t n = 0;
				/* Averaged tables pool every bead; per-bead tables take their own. */
				for (size_t r = c.per_bead ? b : 0; r < (c.per_bead ? b + 1 : rois.n); r++) {
					size_t idx = (r * nplanes + k) * plen + i;
					s += sum[idx];
					n += count[idx];
				}
				dst[i] = n ? (float)(s / (double)n) : NAN;
				if (!n && i > 0)
					empty++;
			}
		}
	}
	if (empty && c.verbose >= 0)
		ms_warn("warning: %zu profile bins had no valid measurement and are NaN", empty);
	if (lost && c.verbose >= 0)
		ms_warn("warning: %zu bead images could not be located and were left out", lost);

	if (wants_text(c.out_path))
		rc = ms_zlut_save_text(c.out_path, &lut, 0, &e);
	else
		rc = ms_zlut_save_h5(c.out_path, &lut, &e);
	if (rc < 0)
		ms_die("%s", e.msg);
	if (c.verbose >= 0)
		fprintf(stderr, "%s: %s: %zu planes from %g to %g nm, %zu bins, %zu table%s from "
		        "%zu frames of %zu bead%s\n", ms_progname(), c.out_path, nplanes, planes[0],
		        planes[nplanes - 1], plen, nbeads, nbeads == 1 ? "" : "s", nframes, rois.n,
		        rois.n == 1 ? "" : "s");

	ms_zlut_free(&lut);
	free(sum);
	free(count);
	for (int i = 0; i < nthreads; i++)
		ms_track_ws_free(job.ws[i]);
	free(job.ws);
	free(job.profiles);
	free(job.xyz);
	ms_pool_free(pool);
	ms_framesrc_close(src);
	ms_tracker_free(tracker);
	free(planes);
	free(zs);
	ms_rois_free(&rois);
	return 0;
}

/* ---- show ---- */

static int run_show(int argc, char **argv)
{
	struct ms_cli cli;
	ms_cli_init(&cli, &show_cmd, argc, argv);
	const char *arg;
	int key, verbose = 0;
	while ((key = ms_cli_next(&cli, &arg)) != -1)
		if (key == 'v')
			verbose = 1;
	if (argc - optind != 1)
		ms_usage_error("show takes one Z-LUT file");
	const char *path = argv[optind];
	ms_err e;
	struct ms_zlut z;
	if (ms_zlut_load(path, &z, &e) < 0)
		ms_die("%s", e.msg);
	double zmin = z.z_nm[0], zmax = z.z_nm[0];
	for (size_t k = 1; k < z.nplanes; k++) {
		zmin = fmin(zmin, z.z_nm[k]);
		zmax = fmax(zmax, z.z_nm[k]);
	}
	double step = (z.z_nm[z.nplanes - 1] - z.z_nm[0]) / (double)(z.nplanes - 1);
	double maxdev = 0;
	for (size_t k = 1; k < z.nplanes; k++)
		maxdev = fmax(maxdev, fabs(z.z_nm[k] - z.z_nm[k - 1] - step));
	printf("file\t%s\n", path);
	printf("form\t%s\n", ms_zlut_is_h5(path) == 1 ? "mstk HDF5" : "MagScope text");
	printf("planes\t%zu\n", z.nplanes);
	printf("z_min_nm\t%.6g\n", zmin);
	printf("z_max_nm\t%.6g\n", zmax);
	printf("z_step_nm\t%.6g%s\n", step, maxdev > 1e-6 * fabs(step) ? " (mean; uneven)" : "");
	printf("profile_length\t%zu\n", z.plen);
	printf("beads\t%zu\n", z.nbeads);
	printf("bead_ids\t");
	for (size_t b = 0; b < z.nbeads; b++)
		printf("%s%u", b ? "," : "", z.bead_ids[b]);
	printf("\n");
	if (z.roi_size)
		printf("roi_size\t%d\n", z.roi_size);
	if (z.nm_per_px > 0)
		printf("nm_per_px\t%.6g\n", z.nm_per_px);
	if (z.oversample)
		printf("oversample\t%d\n", z.oversample);
	if (z.weighting[0])
		printf("weighting\t%s\n", z.weighting);
	if (z.created[0])
		printf("created\t%s\n", z.created);
	if (verbose) {
		printf("# plane\tz_nm\tprofile (bead %u)\n", z.bead_ids[0]);
		for (size_t k = 0; k < z.nplanes; k++) {
			printf("%zu\t%.6g", k, z.z_nm[k]);
			const float *p = ms_zlut_profile(&z, 0, k);
			for (size_t i = 0; i < z.plen; i++)
				printf("\t%.5g", p[i]);
			printf("\n");
		}
	}
	ms_zlut_free(&z);
	return 0;
}

/* ---- convert ---- */

static int run_convert(int argc, char **argv)
{
	struct ms_cli cli;
	ms_cli_init(&cli, &convert_cmd, argc, argv);
	const char *arg;
	int key, to = -1;	/* 0 h5, 1 text */
	long bead = -1;
	bool force = false;
	static const char *const forms[] = { "h5", "text", NULL };
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		switch (key) {
		case OPT_TO: to = ms_cli_choice(&cli, arg, forms); break;
		case OPT_BEAD: bead = ms_cli_long(&cli, arg, 0, MS_BEAD_ID_MAX); break;
		case OPT_FORCE: force = true; break;
		}
	}
	if (argc - optind != 2)
		ms_usage_error("convert takes two files: IN OUT");
	const char *in = argv[optind], *out = argv[optind + 1];
	if (to < 0)
		to = wants_text(out) ? 1 : 0;
	refuse_existing(out, force);
	ms_err e;
	struct ms_zlut z;
	if (ms_zlut_load(in, &z, &e) < 0)
		ms_die("%s", e.msg);
	int rc;
	if (to == 1) {
		long b = 0;
		if (bead >= 0) {
			b = ms_zlut_find_bead(&z, (uint32_t)bead);
			if (b < 0)
				ms_die("%s: has no table for bead %ld", in, bead);
		} else if (z.nbeads > 1) {
			ms_die("%s holds %zu beads' tables; the text form holds one: give --bead ID",
			       in, z.nbeads);
		}
		rc = ms_zlut_save_text(out, &z, (size_t)b, &e);
	} else {
		rc = ms_zlut_save_h5(out, &z, &e);
	}
	if (rc < 0)
		ms_die("%s", e.msg);
	ms_zlut_free(&z);
	return 0;
}

int main(int argc, char **argv)
{
	const struct ms_cmd *sub = ms_cli_subcmd(&cmd, argc, argv);
	int rc;
	if (sub == &build_cmd)
		rc = run_build(argc - 1, argv + 1);
	else if (sub == &show_cmd)
		rc = run_show(argc - 1, argv + 1);
	else
		rc = run_convert(argc - 1, argv + 1);
	ms_close_stdout();
	return rc;
}
