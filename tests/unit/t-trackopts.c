/*
 * t-trackopts: the tracking options ms-track and ms-zlut share. Every
 * option, parsed from a real argv through the shared table, lands in its
 * field of struct ms_track_params and nowhere else; a key that is not a
 * tracking option is left alone; each bad value is a usage error (exit 2,
 * in a child) with its message; and the completion words in the table
 * match the names the tracker knows.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "trackopts.h"
#include "../lib/child.h"
#include "../lib/tap.h"

enum { KEY_OTHER = MS_KEY_LONG + 1 };

static const struct ms_opt opts[] = {
	MS_TRACK_OPTS,
	{ "other", KEY_OTHER, "X", "not a tracking option", NULL },
	{ "threads", 'j', "N", "not a tracking option either", NULL },
	MS_OPT_HELP,
	MS_OPTS_END
};
static const struct ms_cmd cmd = { "t-trackopts", "[options]", NULL, opts, NULL, NULL, NULL };

#define TRY "Try 't-trackopts --help' for more information.\n"

/* Parse argv (after the program name) into p; keys not applied are counted in *other. */
static void parse(const char *const *args, struct ms_track_params *p, int *other)
{
	char *argv[16];
	int argc = 0;
	argv[argc++] = "t-trackopts";
	for (int i = 0; args[i]; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	struct ms_cli c;
	ms_cli_init(&c, &cmd, argc, argv);
	const char *arg;
	int key;
	*other = 0;
	while ((key = ms_cli_next(&c, &arg)) != -1)
		if (!ms_trackopts_apply(p, &c, key, arg))
			(*other)++;
}

/* One option applied to the defaults; returns the params. */
static struct ms_track_params one(const char *opt, const char *val)
{
	struct ms_track_params p;
	ms_track_params_default(&p);
	const char *args[] = { opt, val, NULL };
	int other;
	parse(args, &p, &other);
	return p;
}

static int same(const struct ms_track_params *a, const struct ms_track_params *b)
{
	return a->roi_size == b->roi_size && a->com_bg == b->com_bg && a->xy == b->xy &&
	       a->autoconv_iters == b->autoconv_iters && a->line_ratio == b->line_ratio &&
	       a->xy_n_local == b->xy_n_local && a->oversample == b->oversample &&
	       a->weighting == b->weighting && a->z == b->z && a->z_n_local == b->z_n_local;
}

static void test_apply(void)
{
	struct ms_track_params d;
	ms_track_params_default(&d);
	struct ms_track_params p, want;

	/* Each option changes its own field and nothing else. */
#define CHECK(opt, val, field, value)                                                   \
	do {                                                                            \
		p = one(opt, val);                                                      \
		want = d;                                                               \
		want.field = value;                                                     \
		tap_ok(same(&p, &want), "%s %s sets " #field " only", opt, val);       \
	} while (0)
	CHECK("--roi-size", "32", roi_size, 32);
	CHECK("--roi-size", "8", roi_size, 8);
	CHECK("--roi-size", "256", roi_size, 256);
	CHECK("--com-background", "none", com_bg, MS_COM_BG_NONE);
	CHECK("--com-background", "mean", com_bg, MS_COM_BG_MEAN);
	CHECK("--com-background", "median", com_bg, MS_COM_BG_MEDIAN);
	CHECK("--xy-method", "com", xy, MS_XY_COM);
	CHECK("--xy-method", "autoconv", xy, MS_XY_AUTOCONV);
	CHECK("--autoconv-iterations", "0", autoconv_iters, 0);
	CHECK("--autoconv-iterations", "100", autoconv_iters, 100);
	CHECK("--line-ratio", "0.25", line_ratio, 0.25);
	CHECK("--line-ratio", "1", line_ratio, 1.0);
	CHECK("--xy-fit-points", "3", xy_n_local, 3);
	CHECK("--xy-fit-points", "99", xy_n_local, 99);
	CHECK("--oversample", "16", oversample, 16);
	CHECK("--oversample", "1", oversample, 1);
	CHECK("--profile-weighting", "nearest", weighting, MS_PROFILE_NEAREST);
	CHECK("--profile-weighting", "linear", weighting, MS_PROFILE_LINEAR);
	CHECK("--z-method", "ssd", z, MS_Z_SSD);
	CHECK("--z-method", "pearson", z, MS_Z_PEARSON);
	CHECK("--z-fit-points", "11", z_n_local, 11);
#undef CHECK

	/* All at once, and the keys that are not tracking options. */
	ms_track_params_default(&p);
	const char *args[] = { "--roi-size=48", "--other", "x", "--com-background", "mean", "-j", "4",
	                       "--xy-method=com", "--oversample", "4", "--z-fit-points", "5", NULL };
	int other;
	parse(args, &p, &other);
	want = d;
	want.roi_size = 48;
	want.com_bg = MS_COM_BG_MEAN;
	want.xy = MS_XY_COM;
	want.oversample = 4;
	want.z_n_local = 5;
	tap_ok(same(&p, &want), "several options together");
	tap_int(other, 2, "ms_trackopts_apply returns 0 for the two other keys");
	ms_track_params_default(&p);
	const char *none[] = { "--other", "1", "-j", "2", NULL };
	parse(none, &p, &other);
	tap_ok(same(&p, &d), "other options leave the params alone");
	tap_int(ms_trackopts_apply(&p, NULL, 'x', "1"), 0, "an unrelated key is not applied");
	tap_int(ms_trackopts_apply(&p, NULL, MS_KEY_TRACK + 19, "1"), 0,
	        "the key after the last tracking option is not one");
	tap_int(ms_trackopts_apply(&p, NULL, MS_KEY_TRACK - 1, "1"), 0,
	        "the key before the first tracking option is not one");
}

/* The table's completion words must be the tracker's own names. */
static void test_words(void)
{
	struct {
		const char *name;
		const char *const *words;
	} lists[] = {
		{ "com-background", ms_com_bg_names }, { "xy-method", ms_xy_names },
		{ "profile-weighting", ms_weighting_names }, { "z-method", ms_z_names },
	};
	for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
		char joined[256] = "";
		for (int k = 0; lists[i].words[k]; k++) {
			size_t n = strlen(joined);
			snprintf(joined + n, sizeof joined - n, "%s%s", k ? " " : "", lists[i].words[k]);
		}
		const char *hint = NULL;
		for (const struct ms_opt *o = opts; o->name; o++)
			if (strcmp(o->name, lists[i].name) == 0)
				hint = o->complete;
		tap_str(hint, joined, "--%s completes to the tracker's names", lists[i].name);
	}
}

static void child_parse(void *ctx)
{
	const char *const *args = ctx;
	struct ms_track_params p;
	ms_track_params_default(&p);
	int other;
	parse(args, &p, &other);
}

static void expect_usage(const char *opt, const char *val, const char *msg)
{
	const char *args[] = { opt, val, NULL };
	struct child_out o;
	child_run(child_parse, args, &o);
	char want[512];
	snprintf(want, sizeof want, "t-trackopts: %s\n" TRY, msg);
	int ok = o.status == 2 && strcmp(o.err, want) == 0 && o.out[0] == '\0';
	tap_ok(ok, "%s '%s': exit 2 with '%s'", opt, val, msg);
	if (!ok)
		tap_diag("status %d, stderr '%s'", o.status, o.err);
}

static void test_bad(void)
{
	expect_usage("--roi-size", "9", "invalid value '9' for --roi-size: must be even");
	expect_usage("--roi-size", "6", "invalid value '6' for --roi-size: must be from 8 to 256");
	expect_usage("--roi-size", "258", "invalid value '258' for --roi-size: must be from 8 to 256");
	expect_usage("--roi-size", "64px", "invalid value '64px' for --roi-size: not an integer");
	expect_usage("--com-background", "avg",
	             "invalid value 'avg' for --com-background: must be one of none, mean, median");
	expect_usage("--xy-method", "gauss", "invalid value 'gauss' for --xy-method: must be one of com, autoconv, autoconv-fine, radial-fit, qi");
	expect_usage("--autoconv-iterations", "-1",
	             "invalid value '-1' for --autoconv-iterations: must be from 0 to 100");
	expect_usage("--autoconv-iterations", "101",
	             "invalid value '101' for --autoconv-iterations: must be from 0 to 100");
	expect_usage("--line-ratio", "1.5", "invalid value '1.5' for --line-ratio: must be from 0 to 1");
	expect_usage("--line-ratio", "-0.1", "invalid value '-0.1' for --line-ratio: must be from 0 to 1");
	expect_usage("--line-ratio", "nan", "invalid value 'nan' for --line-ratio: not a number");
	expect_usage("--xy-fit-points", "4", "invalid value '4' for --xy-fit-points: must be odd");
	expect_usage("--xy-fit-points", "1", "invalid value '1' for --xy-fit-points: must be from 3 to 99");
	expect_usage("--xy-fit-points", "101", "invalid value '101' for --xy-fit-points: must be from 3 to 99");
	expect_usage("--oversample", "0", "invalid value '0' for --oversample: must be from 1 to 16");
	expect_usage("--oversample", "17", "invalid value '17' for --oversample: must be from 1 to 16");
	expect_usage("--profile-weighting", "spline",
	             "invalid value 'spline' for --profile-weighting: must be one of nearest, linear, cubic, bilinear, area");
	expect_usage("--z-method", "l2", "invalid value 'l2' for --z-method: must be one of pearson, ssd");
	expect_usage("--z-fit-points", "8", "invalid value '8' for --z-fit-points: must be odd");
	expect_usage("--z-fit-points", "x", "invalid value 'x' for --z-fit-points: not an integer");
}

int main(void)
{
	struct ms_track_params d;
	ms_track_params_default(&d);
	tap_ok(d.roi_size == 64 && d.com_bg == MS_COM_BG_MEDIAN && d.xy == MS_XY_RADIAL_FIT &&
	       d.autoconv_iters == 5 && d.line_ratio == 0.1 && d.xy_n_local == 5 && d.oversample == 1 &&
	       d.weighting == MS_PROFILE_LINEAR && d.z == MS_Z_PEARSON && d.z_n_local == 7,
	       "the defaults are those the option help states");
	test_apply();
	test_words();
	test_bad();
	return tap_done();
}
