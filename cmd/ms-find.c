/*
 * ms-find: automatic bead selection on one frame, as MagScope's auto bead
 * selection. From a seed bead (a centre in camera pixels) the seed's ROI
 * is correlated (NCC) over the whole frame, non-overlapping candidates
 * are picked greedily in descending score, and those above MagScope's
 * default threshold (or --threshold) are written as an ROI list, the seed
 * first. Without a seed the template is built from the strongest
 * bead-like objects in the frame. The search itself is libcommon/beadfind.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beadfind.h"
#include "cli.h"
#include "err.h"
#include "framesrc.h"
#include "rois.h"

enum {
	OPT_OUT = 'o',
	OPT_SEED = MS_KEY_LONG, OPT_ROI_SIZE, OPT_THRESHOLD, OPT_MAX, OPT_MIN_SEP, OPT_FRAME,
	OPT_TEMPLATES,
};

static const struct ms_opt options[] = {
	{ "seed", OPT_SEED, "X,Y", "a bead's centre in camera pixels (default: find one)", NULL },
	{ "roi-size", OPT_ROI_SIZE, "N", "ROI side in pixels, even, 8..256 (64)", NULL },
	{ "threshold", OPT_THRESHOLD, "S", "keep candidates scoring >= S (default: above the largest gap)", NULL },
	{ "max", OPT_MAX, "N", "write at most N beads, the seed included", NULL },
	{ "min-separation", OPT_MIN_SEP, "PX", "ROI corners at least PX apart in x or y (default: the ROI size)", NULL },
	{ "templates", OPT_TEMPLATES, "N", "search rounds at most, 1..8; 1: only the first template (4)", NULL },
	{ "frame", OPT_FRAME, "K", "search frame K of the input, from 0 (0)", NULL },
	{ "output", OPT_OUT, "FILE", "write the ROI list to FILE instead of standard output", "file" },
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-find",
	.synopsis = "[--seed X,Y] [--roi-size N] [--threshold S] [--max N] [--min-separation PX] [--templates N] "
	            "[--frame K] [-o FILE] [INPUT]",
	.summary = "Find beads in one frame of a TIFF or a frame stream (INPUT '-' or none:\n"
	           "standard input) and write an ROI list, 'id x0 y0 # score=S' per bead, ids\n"
	           "in descending score, the seed first.",
	.opts = options,
	.operands = "file:*.@(tif|tiff|frames)",
	.epilog = "With --seed the seed's ROI is the first template; without, it is the average\n"
	          "of the strongest bead-like objects (local contrast at the bead scale,\n"
	          "re-centred by symmetry). Scores are normalised cross-correlations; the\n"
	          "default threshold is the score just above the largest gap between\n"
	          "consecutive candidate scores, as MagScope's auto bead selection, but not\n"
	          "below the map's noise floor. Bead-like objects that no template matched\n"
	          "(beads at another focus) make the next template, up to --templates.",
};

struct config {
	bool seeded;
	double seed_x, seed_y;
	long frame;
	const char *out_path;
	int verbose;
	struct ms_find_opts find;
	char **inputs;
	int ninputs;
};

static void parse_seed(const struct ms_cli *cli, const char *arg, struct config *c)
{
	const char *comma = strchr(arg, ',');
	char x[64];
	size_t n = comma ? (size_t)(comma - arg) : 0;
	if (!comma || n >= sizeof x)
		ms_usage_error("invalid value '%s' for --%s: not 'X,Y'", arg, cli->opt_name);
	memcpy(x, arg, n);
	x[n] = '\0';
	if (ms_parse_double(x, &c->seed_x) < 0 || ms_parse_double(comma + 1, &c->seed_y) < 0 ||
	    !isfinite(c->seed_x) || !isfinite(c->seed_y))
		ms_usage_error("invalid value '%s' for --%s: not 'X,Y'", arg, cli->opt_name);
	c->seeded = true;
}

static void parse_args(struct config *c, int argc, char **argv)
{
	memset(c, 0, sizeof *c);
	ms_find_opts_default(&c->find);
	c->find.roi_size = MS_ROI_SIZE_DEFAULT;
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	ms_err e;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		switch (key) {
		case OPT_SEED: parse_seed(&cli, arg, c); break;
		case OPT_ROI_SIZE: {
			long v = ms_cli_long(&cli, arg, MS_ROI_SIZE_MIN, MS_ROI_SIZE_MAX);
			if (ms_roi_size_check(v, &e) < 0)
				ms_usage_error("invalid value '%s' for --roi-size: %s", arg, e.msg);
			c->find.roi_size = (int)v;
			break;
		}
		case OPT_THRESHOLD: c->find.threshold = ms_cli_double(&cli, arg, -1, 1); break;
		case OPT_MAX: c->find.max = (size_t)ms_cli_long(&cli, arg, 1, MS_BEAD_ID_MAX + 1L); break;
		case OPT_MIN_SEP: c->find.min_sep = (int)ms_cli_long(&cli, arg, 1, 1 << 20); break;
		case OPT_TEMPLATES: c->find.templates = (int)ms_cli_long(&cli, arg, 1, MS_FIND_MAX_ROUNDS); break;
		case OPT_FRAME: c->frame = ms_cli_long(&cli, arg, 0, 1L << 40); break;
		case OPT_OUT: c->out_path = arg; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	c->inputs = argv + optind;
	c->ninputs = argc - optind;
	if (c->ninputs > 1)
		ms_usage_error("one input at most, got %d", c->ninputs);
}

/* Frame c->frame of the input as floats; *info gets its geometry. */
static float *read_frame(const struct config *c, struct ms_frame_info *info)
{
	ms_err e;
	struct ms_framesrc *src = ms_framesrc_open(c->inputs, c->ninputs, &e);
	if (!src)
		ms_die("%s", e.msg);
	*info = *ms_framesrc_info(src);
	struct ms_frame f;
	float *img = NULL;
	for (long k = 0;; k++) {
		int rc = ms_framesrc_next(src, &f, &e);
		if (rc == 0)
			ms_err_set(&e, "%s: has %ld frame%s, no frame %ld", ms_framesrc_name(src), k,
			           k == 1 ? "" : "s", c->frame);
		if (rc <= 0)
			break;
		if (k == c->frame) {
			if (!(img = ms_find_frame_float(f.pixels, info)))
				ms_err_set(&e, "out of memory");
			break;
		}
	}
	ms_framesrc_close(src);
	if (!img)
		ms_die("%s", e.msg);
	return img;
}

/* Write the list; 0, or -1 with errno set and *what naming the failure. */
static int write_rois(const struct config *c, const struct ms_find_result *r, const char **what)
{
	struct ms_roilist list = { ms_xcalloc(r->n + 1, sizeof *list.roi), r->n };
	char **comment = ms_xcalloc(r->n + 1, sizeof *comment);
	for (size_t i = 0; i < r->n; i++) {
		const struct ms_find_bead *b = &r->bead[i];
		list.roi[i] = (struct ms_roi){ (uint32_t)i, b->x0, b->y0 };
		comment[i] = ms_xmalloc(64);
		char tag[24] = "";
		if (r->nrounds > 1)
			snprintf(tag, sizeof tag, " template=%d", b->round);
		snprintf(comment[i], 64, "score=%.3f%s%s", b->score,
		         c->seeded && i == 0 ? " seed" : "", tag);
	}
	FILE *f = c->out_path ? fopen(c->out_path, "w") : stdout;
	int rc = f ? ms_rois_write(f, &list, (const char *const *)comment) : -1;
	if (f && c->out_path && fclose(f) != 0)
		rc = -1;
	*what = !f ? "cannot create" : "error writing";
	int err = errno;
	for (size_t i = 0; i < r->n; i++)
		free(comment[i]);
	free(comment);
	ms_rois_free(&list);
	errno = err;
	return rc < 0 ? -1 : 0;
}

/* What each round did, for -v. */
static void report_rounds(const struct config *c, const struct ms_find_result *r)
{
	for (size_t k = 0; k < r->nrounds; k++) {
		const struct ms_find_round *kd = &r->round[k];
		fprintf(stderr, "%s: template %zu: ", ms_progname(), k);
		if (kd->ntemplate == 0 && c->seeded && k == 0)
			fprintf(stderr, "the seed's ROI");
		else
			fprintf(stderr, "%zu bead%s centred at", kd->ntemplate,
			        kd->ntemplate == 1 ? "" : "s");
		for (size_t j = 0; j < kd->ntemplate; j++)
			fprintf(stderr, " %.0f,%.0f", kd->template_x[j], kd->template_y[j]);
		fprintf(stderr, "; %zu candidates, threshold %.3f", kd->npicks, kd->threshold);
		if (isnan(c->find.threshold))
			fprintf(stderr, " (noise floor %.3f)", kd->floor);
		fprintf(stderr, ", %zu kept", kd->nsel);
		if (!isnan(kd->best_left))
			fprintf(stderr, ", highest left out %.3f", kd->best_left);
		fputc('\n', stderr);
	}
}

int main(int argc, char **argv)
{
	struct config c;
	parse_args(&c, argc, argv);
	struct ms_frame_info info;
	float *img = read_frame(&c, &info);
	int w = (int)info.width, h = (int)info.height;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct ms_find_result r;
	ms_err e;
	int rc = c.seeded ? ms_find_seed(img, w, h, c.seed_x, c.seed_y, &c.find, &r, &e)
	                  : ms_find_auto(img, w, h, &c.find, &r, &e);
	double elapsed = ms_seconds_since(&t0);
	free(img);
	if (rc < 0)
		ms_die("%s", e.msg);
	if (r.n > MS_BEAD_ID_MAX + 1u) {
		if (c.verbose >= 0)
			ms_warn("warning: %zu beads found, keeping the first %u (bead ids are 16-bit)",
			        r.n, MS_BEAD_ID_MAX + 1u);
		r.n = MS_BEAD_ID_MAX + 1u;
	}
	const char *what;
	if (write_rois(&c, &r, &what) < 0) {
		int err = errno;
		ms_find_result_free(&r);
		errno = err;
		if (c.out_path)
			ms_die("%s '%s':", what, c.out_path);
		ms_die("error writing standard output:");
	}

	if (c.verbose > 0)
		report_rounds(&c, &r);
	if (c.verbose >= 0)
		fprintf(stderr, "%s: %zu bead%s with %zu template%s in a %dx%d frame, %.3f s\n",
		        ms_progname(), r.n, r.n == 1 ? "" : "s", r.nrounds, r.nrounds == 1 ? "" : "s",
		        w, h, elapsed);
	ms_find_result_free(&r);
	ms_close_stdout();
	return 0;
}
