/*
 * cli: the command-line conventions every ms-* program shares. A program
 * describes its options once, in a table of struct ms_opt; from that one
 * table come getopt_long parsing, the --help text and the shell
 * completions (through the hidden --list-options), so the three never
 * drift apart. -h/--help prints usage to stdout and exits 0, --version
 * prints the version, an unknown option or a bad value is a one-line usage
 * error with exit status 2, and number parsing checks range and quotes the
 * offending text. Also the elapsed time programs report on their work.
 */
#ifndef MS_CLI_H
#define MS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* Keys for options that have no short letter start here. */
#define MS_KEY_LONG 256

struct ms_opt {
	const char *name;	/* long name, without the dashes */
	int key;		/* short letter, or MS_KEY_LONG + n */
	const char *arg;	/* argument name for --help ("N"); NULL: a flag */
	const char *help;	/* one line */
	/*
	 * Completion hint for the argument: "file", "dir", "file:*.tif"
	 * (files with that pattern), or a space-separated list of words.
	 * NULL: no completion.
	 */
	const char *complete;
};

/* The options every program has; end a table with MS_OPTS_END. */
#define MS_OPT_HELP    { "help", 'h', NULL, "print this help and exit", NULL }
#define MS_OPT_VERSION { "version", MS_KEY_LONG + 255, NULL, "print the version and exit", NULL }
#define MS_OPT_VERBOSE { "verbose", 'v', NULL, "say more on standard error", NULL }
#define MS_OPT_QUIET   { "quiet", 'q', NULL, "say nothing but errors", NULL }
#define MS_OPTS_END    { NULL, 0, NULL, NULL, NULL }

struct ms_cmd {
	const char *name;	/* "ms-track" or "ms-zlut build" */
	const char *synopsis;	/* usage lines after the name, '\n'-separated */
	const char *summary;	/* what it does, one or a few lines */
	const struct ms_opt *opts;
	const char *operands;	/* completion hint for operands, as above */
	const struct ms_cmd *const *subcmds;	/* NULL-terminated, or NULL */
	const char *epilog;	/* printed after the options; may be NULL */
};

#define MS_CLI_MAXOPTS 64

struct ms_cli {
	const struct ms_cmd *cmd;
	int argc;
	char **argv;
	const char *opt_name;	/* the option being handled, for messages */
	struct option longopts[MS_CLI_MAXOPTS + 2];
	char shortopts[3 * MS_CLI_MAXOPTS + 2];
};

/* Prepare to parse argv against cmd; resets getopt. */
void ms_cli_init(struct ms_cli *c, const struct ms_cmd *cmd, int argc, char **argv);
/*
 * The next option's key, with its argument in *arg, or -1 when the options
 * end (then optind indexes the first operand). Handles --help, --version
 * and --list-options itself; an unknown option or a missing argument is a
 * usage error (exit 2).
 */
int ms_cli_next(struct ms_cli *c, const char **arg);

/* Print the usage text to f. */
void ms_cli_usage(const struct ms_cmd *cmd, FILE *f);

/*
 * Parse the current option's argument as a number in [min, max]; a bad
 * value is a usage error that quotes it ("invalid value 'abc' for
 * --roi-size: not an integer").
 */
long ms_cli_long(const struct ms_cli *c, const char *arg, long min, long max);
double ms_cli_double(const struct ms_cli *c, const char *arg, double min, double max);
/* One of the words in a NULL-terminated list; returns its index. */
int ms_cli_choice(const struct ms_cli *c, const char *arg, const char *const *words);

/* Plain parsers: 0 on success, -1 if s is not entirely a number. */
int ms_parse_long(const char *s, long *out);
int ms_parse_double(const char *s, double *out);

/*
 * Find the subcommand named argv[1] in cmd->subcmds; a missing or unknown
 * one is a usage error. Handles "-h", "--help" and "--version" before it.
 */
const struct ms_cmd *ms_cli_subcmd(const struct ms_cmd *cmd, int argc, char **argv);

/* Seconds from t0 (CLOCK_MONOTONIC) to now: a program's elapsed time. */
double ms_seconds_since(const struct timespec *t0);

#endif
