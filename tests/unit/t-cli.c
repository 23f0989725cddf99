/*
 * t-cli: the shared command-line conventions. Option tables become
 * getopt_long parsing (checked in process, key by key), --help,
 * --version and --list-options (exact text, in children, since they
 * exit), usage errors with exit status 2 and their one-line messages, the
 * range-checked number and word parsers, and subcommand dispatch.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "err.h"
#include "../lib/child.h"
#include "../lib/tap.h"

enum { KEY_LONG_ONLY = MS_KEY_LONG + 1, KEY_VERY_LONG, KEY_LFLAG };

static const struct ms_opt opts[] = {
	{ "count", 'n', "N", "how many (1)", NULL },
	{ "scale", 's', "X", "scale factor", NULL },
	{ "mode", 'm', "MODE", "speed: fast, slow", "fast slow" },
	{ "output", 'o', "FILE", "write here", "file:*.h5" },
	{ "long-only", KEY_LONG_ONLY, "N", "an option with no letter", NULL },
	{ "flag", 'f', NULL, "a flag", NULL },
	{ "lflag", KEY_LFLAG, NULL, "a flag with no letter", NULL },
	{ "very-long-option-name", KEY_VERY_LONG, "ARGUMENT", "help on the next line", "dir" },
	MS_OPT_VERBOSE,
	MS_OPT_HELP,
	MS_OPT_VERSION,
	MS_OPTS_END
};

static const struct ms_cmd cmd = {
	"t-cli", "[options] [FILE...]\n--other", "Summary line.\nSecond line.", opts,
	"file:*.tif", NULL, "Epilog text.",
};

static const char help_text[] =
	"usage: t-cli [options] [FILE...]\n"
	"       t-cli --other\n"
	"\n"
	"Summary line.\n"
	"Second line.\n"
	"\n"
	"options:\n"
	"  -n, --count N              how many (1)\n"
	"  -s, --scale X              scale factor\n"
	"  -m, --mode MODE            speed: fast, slow\n"
	"  -o, --output FILE          write here\n"
	"      --long-only N          an option with no letter\n"
	"  -f, --flag                 a flag\n"
	"      --lflag                a flag with no letter\n"
	"      --very-long-option-name ARGUMENT\n"
	"                             help on the next line\n"
	"  -v, --verbose              say more on standard error\n"
	"  -h, --help                 print this help and exit\n"
	"      --version              print the version and exit\n"
	"\n"
	"Epilog text.\n";

static const char list_text[] =
	"opt\t-n\t--count\tN\t-\thow many (1)\n"
	"opt\t-s\t--scale\tX\t-\tscale factor\n"
	"opt\t-m\t--mode\tMODE\tfast slow\tspeed: fast, slow\n"
	"opt\t-o\t--output\tFILE\tfile:*.h5\twrite here\n"
	"opt\t-\t--long-only\tN\t-\tan option with no letter\n"
	"opt\t-f\t--flag\t-\t-\ta flag\n"
	"opt\t-\t--lflag\t-\t-\ta flag with no letter\n"
	"opt\t-\t--very-long-option-name\tARGUMENT\tdir\thelp on the next line\n"
	"opt\t-v\t--verbose\t-\t-\tsay more on standard error\n"
	"opt\t-h\t--help\t-\t-\tprint this help and exit\n"
	"opt\t-\t--version\t-\t-\tprint the version and exit\n"
	"operands\tfile:*.tif\n";

/* Subcommands: a parent with no options of its own. */
static const struct ms_opt build_opts[] = {
	{ "count", 'n', "N", "how many", NULL }, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END
};
static const struct ms_cmd cmd_build = {
	"t-cli build", "[options] FILE", "Build a thing.\nMore about building.", build_opts,
	"file", NULL, NULL,
};
static const struct ms_cmd cmd_show = {
	"t-cli show", "FILE", "Show a thing.", NULL, NULL, NULL, NULL,
};
static const struct ms_cmd *const subs[] = { &cmd_build, &cmd_show, NULL };
static const struct ms_cmd parent = {
	"t-cli", "COMMAND [options]", "Does things.", NULL, NULL, subs, NULL,
};

#define TRY "Try 't-cli --help' for more information.\n"

/* argv for a child: NULL-terminated list of strings after the program name. */
struct args {
	const struct ms_cmd *cmd;
	const char *argv[12];
	/* After parsing, what to do with the first option's argument. */
	enum { PARSE, LONG_1_10, DOUBLE_0_1, CHOICE, SUBCMD } then;
};

static int fill_argv(const struct args *a, char **argv)
{
	int argc = 0;
	argv[argc++] = (char *)"t-cli";
	for (int i = 0; a->argv[i]; i++)
		argv[argc++] = (char *)a->argv[i];
	argv[argc] = NULL;
	return argc;
}

static void child_parse(void *ctx)
{
	const struct args *a = ctx;
	char *argv[16];
	int argc = fill_argv(a, argv);
	if (a->then == SUBCMD) {
		const struct ms_cmd *sub = ms_cli_subcmd(a->cmd, argc, argv);
		printf("sub %s\n", sub->name);
		struct ms_cli c;
		ms_cli_init(&c, sub, argc - 1, argv + 1);
		const char *arg;
		int key;
		while ((key = ms_cli_next(&c, &arg)) != -1)
			printf("key %d %s\n", key, arg ? arg : "-");
		return;
	}
	struct ms_cli c;
	ms_cli_init(&c, a->cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&c, &arg)) != -1) {
		switch (a->then) {
		case LONG_1_10:
			printf("%ld\n", ms_cli_long(&c, arg, 1, 10));
			break;
		case DOUBLE_0_1:
			printf("%g\n", ms_cli_double(&c, arg, 0, 1));
			break;
		case CHOICE: {
			static const char *const words[] = { "fast", "slow", "medium-rare", NULL };
			printf("%d\n", ms_cli_choice(&c, arg, words));
			break;
		}
		default:
			printf("key %d %s\n", key, arg ? arg : "-");
		}
	}
}

/* Run argv in a child and check its exit status, stdout and stderr exactly. */
static void expect(const struct args *a, int status, const char *out, const char *err,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void expect(const struct args *a, int status, const char *out, const char *err,
                   const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	struct child_out o;
	if (child_run(child_parse, (void *)a, &o) < 0) {
		tap_ok(0, "%s: could not fork", what);
		return;
	}
	int ok = o.status == status && strcmp(o.out, out) == 0 && strcmp(o.err, err) == 0;
	tap_ok(ok, "%s", what);
	if (!ok)
		tap_diag("status %d (want %d)\n# stdout: '%s'\n# stderr: '%s'", o.status, status,
		         o.out, o.err);
}

static void test_parse(void)
{
	char *argv[] = { "t-cli", "-n", "5", "--scale=2.5", "-fv", "--long-only", "7", "-mfast",
	                 "--output", "x.h5", "--lflag", "--very", "d", "--cou", "3",
	                 "file1", "-n", "9", NULL };
	int argc = (int)(sizeof argv / sizeof *argv) - 1;
	struct {
		int key;
		const char *arg, *name;
	} want[] = {
		{ 'n', "5", "count" }, { 's', "2.5", "scale" }, { 'f', NULL, "flag" },
		{ 'v', NULL, "verbose" }, { KEY_LONG_ONLY, "7", "long-only" }, { 'm', "fast", "mode" },
		{ 'o', "x.h5", "output" }, { KEY_LFLAG, NULL, "lflag" },
		{ KEY_VERY_LONG, "d", "very-long-option-name" }, { 'n', "3", "count" },
	};
	int n = (int)(sizeof want / sizeof *want);
	for (int round = 0; round < 2; round++) {
		/* The second round checks that ms_cli_init resets getopt fully. */
		struct ms_cli c;
		ms_cli_init(&c, &cmd, argc, argv);
		int i = 0, bad = 0;
		const char *arg;
		int key;
		while ((key = ms_cli_next(&c, &arg)) != -1) {
			if (i >= n || key != want[i].key ||
			    (want[i].arg ? !arg || strcmp(arg, want[i].arg) : arg != NULL) ||
			    strcmp(c.opt_name, want[i].name) != 0) {
				tap_diag("option %d: key %d arg '%s' name '%s'", i, key, arg ? arg : "(null)",
				         c.opt_name);
				bad++;
			}
			i++;
		}
		tap_ok(!bad && i == n, "round %d: short, long, clustered, abbreviated, '=' and "
		       "separate arguments parse to the table's keys", round + 1);
		tap_int(optind, 15, "round %d: options stop at the first operand", round + 1);
	}

	char *argv2[] = { "t-cli", "-f", "--", "-n", NULL };
	struct ms_cli c;
	ms_cli_init(&c, &cmd, 4, argv2);
	const char *arg;
	tap_int(ms_cli_next(&c, &arg), 'f', "'-f' before '--'");
	tap_int(ms_cli_next(&c, &arg), -1, "'--' ends the options");
	tap_int(optind, 3, "the operand after '--' is '-n'");

	char *argv3[] = { "t-cli", NULL };
	ms_cli_init(&c, &cmd, 1, argv3);
	tap_int(ms_cli_next(&c, &arg), -1, "no arguments: no options");
	tap_int(optind, 1, "no arguments: optind is 1");

	/* A table may give -h to something else; then it is an ordinary option. */
	static const struct ms_opt hopts[] = {
		{ "height", 'h', "N", "rows", NULL }, MS_OPT_VERSION, MS_OPTS_END
	};
	static const struct ms_cmd hcmd = { "t-cli", "", NULL, hopts, NULL, NULL, NULL };
	char *argv4[] = { "t-cli", "-h", "12", NULL };
	ms_cli_init(&c, &hcmd, 3, argv4);
	tap_int(ms_cli_next(&c, &arg), 'h', "-h taken by the table is returned");
	tap_str(arg, "12", "with its argument");
}

static void test_exits(void)
{
	char version[64];
	snprintf(version, sizeof version, "t-cli (mstk) %s\n", MS_VERSION);
	char buf[4096];

	expect(&(struct args){ &cmd, { "--help" }, PARSE }, 0, help_text, "", "--help: usage on stdout, exit 0");
	expect(&(struct args){ &cmd, { "-h" }, PARSE }, 0, help_text, "", "-h: usage on stdout, exit 0");
	snprintf(buf, sizeof buf, "key 110 1\n%s", help_text);
	expect(&(struct args){ &cmd, { "-n", "1", "-h", "--bogus" }, PARSE }, 0, buf, "",
	       "-h after an option prints the usage and exits before later errors");
	expect(&(struct args){ &cmd, { "--version" }, PARSE }, 0, version, "", "--version: 'name (mstk) version', exit 0");
	expect(&(struct args){ &cmd, { "--list-options" }, PARSE }, 0, list_text, "",
	       "--list-options: one tab-separated line per option, then the operands");
	expect(&(struct args){ &cmd, { "--list-opt" }, PARSE }, 0, list_text, "",
	       "--list-options may be abbreviated like any long option");

	expect(&(struct args){ &cmd, { "-x" }, PARSE }, 2, "", "t-cli: unknown option '-x'\n" TRY,
	       "unknown short option: exit 2, one line and the hint");
	expect(&(struct args){ &cmd, { "-fx" }, PARSE }, 2, "key 102 -\n", "t-cli: unknown option '-x'\n" TRY,
	       "unknown short option inside a cluster");
	expect(&(struct args){ &cmd, { "--bogus" }, PARSE }, 2, "", "t-cli: unknown option '--bogus'\n" TRY,
	       "unknown long option");
	expect(&(struct args){ &cmd, { "--bogus=1" }, PARSE }, 2, "", "t-cli: unknown option '--bogus=1'\n" TRY,
	       "unknown long option with a value");
	expect(&(struct args){ &cmd, { "--ver" }, PARSE }, 2, "", "t-cli: option '--ver' is ambiguous\n" TRY,
	       "an ambiguous abbreviation is named as such");
	expect(&(struct args){ &cmd, { "--flag=1" }, PARSE }, 2, "", "t-cli: option --flag takes no argument\n" TRY,
	       "a value given to a flag with a short letter");
	expect(&(struct args){ &cmd, { "--lflag=1" }, PARSE }, 2, "", "t-cli: option --lflag takes no argument\n" TRY,
	       "a value given to a long-only flag");
	expect(&(struct args){ &cmd, { "-n" }, PARSE }, 2, "",
	       "t-cli: option --count needs an argument (N)\n" TRY, "missing argument of a short option");
	expect(&(struct args){ &cmd, { "--count" }, PARSE }, 2, "",
	       "t-cli: option --count needs an argument (N)\n" TRY, "missing argument of a long option");
	expect(&(struct args){ &cmd, { "-f", "--long-only" }, PARSE }, 2, "key 102 -\n",
	       "t-cli: option --long-only needs an argument (N)\n" TRY,
	       "missing argument of a long-only option");
	expect(&(struct args){ &cmd, { "file", "-x" }, PARSE }, CHILD_RETURNED, "", "",
	       "an option after the first operand is an operand");

	/* ms_cli_long: range and garbage, with the option's name in the message. */
	expect(&(struct args){ &cmd, { "-n", "1", "--count=10", "-n", "+7", "-n", "-0" }, LONG_1_10 },
	       2, "1\n10\n7\n", "t-cli: invalid value '-0' for --count: must be from 1 to 10\n" TRY,
	       "ms_cli_long accepts both ends of its range and '+7', refuses '-0'");
	expect(&(struct args){ &cmd, { "-n", "0" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value '0' for --count: must be from 1 to 10\n" TRY, "ms_cli_long below range");
	expect(&(struct args){ &cmd, { "--count", "11" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value '11' for --count: must be from 1 to 10\n" TRY, "ms_cli_long above range");
	expect(&(struct args){ &cmd, { "-n", "abc" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value 'abc' for --count: not an integer\n" TRY, "ms_cli_long on a word");
	expect(&(struct args){ &cmd, { "-n", "5x" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value '5x' for --count: not an integer\n" TRY, "ms_cli_long on trailing junk");
	expect(&(struct args){ &cmd, { "-n", "2.0" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value '2.0' for --count: not an integer\n" TRY, "ms_cli_long on a decimal");
	expect(&(struct args){ &cmd, { "--long-only=" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value '' for --long-only: not an integer\n" TRY,
	       "ms_cli_long on an empty value names the long-only option");
	expect(&(struct args){ &cmd, { "-n", "99999999999999999999" }, LONG_1_10 }, 2, "",
	       "t-cli: invalid value '99999999999999999999' for --count: not an integer\n" TRY,
	       "ms_cli_long on an overflowing number");

	/* ms_cli_double */
	expect(&(struct args){ &cmd, { "-s", "0.25", "-s", "0", "--scale", "1", "-s", "1e-1" }, DOUBLE_0_1 },
	       CHILD_RETURNED, "0.25\n0\n1\n0.1\n", "", "ms_cli_double accepts its range, ends included");
	expect(&(struct args){ &cmd, { "-s", "1.5" }, DOUBLE_0_1 }, 2, "",
	       "t-cli: invalid value '1.5' for --scale: must be from 0 to 1\n" TRY, "ms_cli_double above range");
	expect(&(struct args){ &cmd, { "-s", "-0.001" }, DOUBLE_0_1 }, 2, "",
	       "t-cli: invalid value '-0.001' for --scale: must be from 0 to 1\n" TRY, "ms_cli_double below range");
	const char *garbage[] = { "nan", "inf", "-inf", "1e999", "", "0.5x", "x", NULL };
	for (int i = 0; garbage[i]; i++) {
		snprintf(buf, sizeof buf, "t-cli: invalid value '%s' for --scale: not a number\n" TRY, garbage[i]);
		expect(&(struct args){ &cmd, { "-s", garbage[i] }, DOUBLE_0_1 }, 2, "", buf,
		       "ms_cli_double refuses '%s'", garbage[i]);
	}

	/* ms_cli_choice */
	expect(&(struct args){ &cmd, { "-m", "slow", "--mode=fast", "-m", "medium-rare" }, CHOICE },
	       CHILD_RETURNED, "1\n0\n2\n", "", "ms_cli_choice returns the word's index");
	expect(&(struct args){ &cmd, { "-m", "medium" }, CHOICE }, 2, "",
	       "t-cli: invalid value 'medium' for --mode: must be one of fast, slow, medium-rare\n" TRY,
	       "ms_cli_choice lists the words");
	expect(&(struct args){ &cmd, { "-m", "FAST" }, CHOICE }, 2, "",
	       "t-cli: invalid value 'FAST' for --mode: must be one of fast, slow, medium-rare\n" TRY,
	       "ms_cli_choice is case-sensitive");
	expect(&(struct args){ &cmd, { "-m", "" }, CHOICE }, 2, "",
	       "t-cli: invalid value '' for --mode: must be one of fast, slow, medium-rare\n" TRY,
	       "ms_cli_choice refuses an empty word");
}

static void test_subcmd(void)
{
	char version[64], buf[4096];
	snprintf(version, sizeof version, "t-cli (mstk) %s\n", MS_VERSION);
	static const char parent_help[] =
		"usage: t-cli COMMAND [options]\n"
		"\n"
		"Does things.\n"
		"\n"
		"commands:\n"
		"  build        Build a thing.\n"
		"  show         Show a thing.\n";
	static const char build_help[] =
		"usage: t-cli build [options] FILE\n"
		"\n"
		"Build a thing.\n"
		"More about building.\n"
		"\n"
		"options:\n"
		"  -n, --count N              how many\n"
		"  -h, --help                 print this help and exit\n"
		"      --version              print the version and exit\n";

	expect(&(struct args){ &parent, { NULL }, SUBCMD }, 2, "",
	       "t-cli: a command is needed (one of the commands in --help)\n" TRY, "no subcommand: exit 2");
	expect(&(struct args){ &parent, { "frob" }, SUBCMD }, 2, "", "t-cli: unknown command 'frob'\n" TRY,
	       "unknown subcommand: exit 2");
	expect(&(struct args){ &parent, { "-n", "build" }, SUBCMD }, 2, "", "t-cli: unknown command '-n'\n" TRY,
	       "an option before the subcommand is not a subcommand");
	expect(&(struct args){ &parent, { "--help" }, SUBCMD }, 0, parent_help, "",
	       "parent --help lists the commands with their first summary line");
	expect(&(struct args){ &parent, { "-h", "build" }, SUBCMD }, 0, parent_help, "", "parent -h");
	expect(&(struct args){ &parent, { "--version" }, SUBCMD }, 0, version, "", "parent --version");
	expect(&(struct args){ &parent, { "--list-options" }, SUBCMD }, 0, "operands\t-\nsub\tbuild\nsub\tshow\n",
	       "", "parent --list-options: no options, no operands, the subcommands");
	expect(&(struct args){ &parent, { "build", "-n", "3", "file", "-n", "4" }, SUBCMD }, CHILD_RETURNED,
	       "sub t-cli build\nkey 110 3\n", "", "subcommand dispatch, then its own options");
	expect(&(struct args){ &parent, { "show", "file" }, SUBCMD }, CHILD_RETURNED, "sub t-cli show\n", "",
	       "a subcommand without options");
	snprintf(buf, sizeof buf, "sub t-cli build\n%s", build_help);
	expect(&(struct args){ &parent, { "build", "--help" }, SUBCMD }, 0, buf, "", "subcommand --help");
	snprintf(buf, sizeof buf, "sub t-cli build\n%s", version);
	expect(&(struct args){ &parent, { "build", "--version" }, SUBCMD }, 0, buf, "",
	       "subcommand --version names the program, not the subcommand");
	expect(&(struct args){ &parent, { "build", "--list-options" }, SUBCMD }, 0,
	       "sub t-cli build\n"
	       "opt\t-n\t--count\tN\t-\thow many\n"
	       "opt\t-h\t--help\t-\t-\tprint this help and exit\n"
	       "opt\t-\t--version\t-\t-\tprint the version and exit\n"
	       "operands\tfile\n", "", "subcommand --list-options");
	expect(&(struct args){ &parent, { "build", "--bogus" }, SUBCMD }, 2, "sub t-cli build\n",
	       "t-cli: unknown option '--bogus'\n" TRY, "subcommand unknown option: exit 2");
	expect(&(struct args){ &parent, { "show", "-x" }, SUBCMD }, 2, "sub t-cli show\n",
	       "t-cli: unknown option '-x'\n" TRY, "a subcommand without options refuses options");
}

static void test_usage_direct(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ms_cli_usage(&cmd, f);
	fclose(f);
	tap_str(text, help_text, "ms_cli_usage writes the usage text to the given stream");
	free(text);
}

static void test_parse_numbers(void)
{
	struct {
		const char *s;
		int rc;
		long v;
	} longs[] = {
		{ "0", 0, 0 }, { "42", 0, 42 }, { "-17", 0, -17 }, { "+7", 0, 7 }, { "007", 0, 7 },
		{ "9223372036854775807", 0, LONG_MAX }, { "-9223372036854775808", 0, LONG_MIN },
		{ "9223372036854775808", -1, 0 }, { "-9223372036854775809", -1, 0 },
		{ "", -1, 0 }, { "-", -1, 0 }, { "12x", -1, 0 }, { "1.0", -1, 0 }, { "1e3", -1, 0 },
		{ "0x10", -1, 0 }, { "5 ", -1, 0 }, { "abc", -1, 0 },
	};
	for (size_t i = 0; i < sizeof longs / sizeof *longs; i++) {
		long v = 12345;
		int rc = ms_parse_long(longs[i].s, &v);
		tap_ok(rc == longs[i].rc && v == (longs[i].rc ? 12345 : longs[i].v),
		       "ms_parse_long('%s') -> %d, %ld", longs[i].s, rc, v);
	}
	struct {
		const char *s;
		int rc;
		double v;
	} doubles[] = {
		{ "0", 0, 0 }, { "1.5", 0, 1.5 }, { "-2.25e3", 0, -2250 }, { ".5", 0, 0.5 },
		{ "1e308", 0, 1e308 }, { "-0", 0, 0 }, { "3", 0, 3 },
		{ "", -1, 0 }, { "1.5x", -1, 0 }, { "1.5 ", -1, 0 }, { "e5", -1, 0 }, { ".", -1, 0 },
		{ "inf", -1, 0 }, { "-inf", -1, 0 }, { "infinity", -1, 0 }, { "nan", -1, 0 },
		{ "-nan", -1, 0 }, { "NAN(123)", -1, 0 }, { "1e309", -1, 0 }, { "-1e999", -1, 0 },
	};
	for (size_t i = 0; i < sizeof doubles / sizeof *doubles; i++) {
		double v = 12345;
		int rc = ms_parse_double(doubles[i].s, &v);
		tap_ok(rc == doubles[i].rc && v == (doubles[i].rc ? 12345 : doubles[i].v),
		       "ms_parse_double('%s') -> %d, %g", doubles[i].s, rc, v);
	}
}

/* Elapsed time on the monotonic clock: a start 1.5 s back, and a 20 ms nap. */
static void test_seconds_since(void)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct timespec back = t0;
	back.tv_sec -= 2;
	back.tv_nsec += 500000000L;
	if (back.tv_nsec >= 1000000000L) {
		back.tv_nsec -= 1000000000L;
		back.tv_sec++;
	}
	double s = ms_seconds_since(&back);
	/* the upper bounds only guard against a wrong unit, not a slow machine */
	tap_ok(s >= 1.5 && s < 60, "a start 1.5 s back is %.6f s ago", s);
	struct timespec nap = {0, 20000000L};
	nanosleep(&nap, NULL);
	s = ms_seconds_since(&t0);
	tap_ok(s >= 0.02 && s < 60, "after a 20 ms nap: %.6f s", s);
}

int main(void)
{
	test_parse();
	test_usage_direct();
	test_parse_numbers();
	test_exits();
	test_subcmd();
	test_seconds_since();
	return tap_done();
}
