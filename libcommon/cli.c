/* cli: option tables, --help, number parsing; see cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define KEY_LIST_OPTIONS (MS_KEY_LONG + 254)
#define KEY_VERSION (MS_KEY_LONG + 255)

void ms_cli_init(struct ms_cli *c, const struct ms_cmd *cmd, int argc, char **argv)
{
	memset(c, 0, sizeof *c);
	c->cmd = cmd;
	c->argc = argc;
	c->argv = argv;
	/* '+': stop at the first operand, as POSIX asks; ':' lets us word errors. */
	char *s = c->shortopts;
	*s++ = '+';
	*s++ = ':';
	size_t n = 0;
	for (const struct ms_opt *o = cmd->opts; o && o->name; o++) {
		if (n == MS_CLI_MAXOPTS)
			ms_die("internal error: %s has too many options", cmd->name);
		c->longopts[n++] = (struct option){ o->name,
			o->arg ? required_argument : no_argument, NULL, o->key };
		if (o->key > 0 && o->key < MS_KEY_LONG) {
			*s++ = (char)o->key;
			if (o->arg)
				*s++ = ':';
		}
	}
	c->longopts[n++] = (struct option){ "list-options", no_argument, NULL, KEY_LIST_OPTIONS };
	c->longopts[n] = (struct option){ 0 };
	*s = '\0';
	optind = 0;	/* glibc: a full reset, so subcommands can parse again */
	opterr = 0;
}

static const struct ms_opt *find_opt(const struct ms_cmd *cmd, int key)
{
	for (const struct ms_opt *o = cmd->opts; o && o->name; o++)
		if (o->key == key)
			return o;
	return NULL;
}

void ms_cli_usage(const struct ms_cmd *cmd, FILE *f)
{
	const char *p = cmd->synopsis;
	const char *lead = "usage:";
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);
		fprintf(f, "%s %s %.*s\n", lead, cmd->name, len, p);
		lead = "      ";
		p = nl ? nl + 1 : p + len;
	}
	if (cmd->summary)
		fprintf(f, "\n%s\n", cmd->summary);
	if (cmd->subcmds) {
		fprintf(f, "\ncommands:\n");
		for (const struct ms_cmd *const *s = cmd->subcmds; *s; s++) {
			const char *sub = strrchr((*s)->name, ' ');
			const char *line = (*s)->summary ? (*s)->summary : "";
			int len = (int)strcspn(line, "\n");
			fprintf(f, "  %-12s %.*s\n", sub ? sub + 1 : (*s)->name, len, line);
		}
	}
	if (cmd->opts && cmd->opts->name) {
		fprintf(f, "\noptions:\n");
		for (const struct ms_opt *o = cmd->opts; o->name; o++) {
			char left[96];
			if (o->key > 0 && o->key < MS_KEY_LONG)
				snprintf(left, sizeof left, "-%c, --%s%s%s", o->key, o->name,
				         o->arg ? " " : "", o->arg ? o->arg : "");
			else
				snprintf(left, sizeof left, "    --%s%s%s", o->name,
				         o->arg ? " " : "", o->arg ? o->arg : "");
			if (strlen(left) > 26)
				fprintf(f, "  %s\n  %-26s %s\n", left, "", o->help);
			else
				fprintf(f, "  %-26s %s\n", left, o->help);
		}
	}
	if (cmd->epilog)
		fprintf(f, "\n%s\n", cmd->epilog);
}

/*
 * A machine-readable option list for tools/gen-completions: one line per
 * option, tab-separated: "opt", short ("-" if none), long, argument
 * ("-" if none), completion hint ("-" if none), help.
 */
static void list_options(const struct ms_cmd *cmd)
{
	for (const struct ms_opt *o = cmd->opts; o && o->name; o++) {
		char shrt[3] = "-";
		if (o->key > 0 && o->key < MS_KEY_LONG)
			snprintf(shrt, sizeof shrt, "-%c", o->key);
		printf("opt\t%s\t--%s\t%s\t%s\t%s\n", shrt, o->name, o->arg ? o->arg : "-",
		       o->complete ? o->complete : "-", o->help);
	}
	printf("operands\t%s\n", cmd->operands ? cmd->operands : "-");
	for (const struct ms_cmd *const *s = cmd->subcmds; s && *s; s++) {
		const char *sub = strrchr((*s)->name, ' ');
		printf("sub\t%s\n", sub ? sub + 1 : (*s)->name);
	}
}

static void print_version(const struct ms_cmd *cmd)
{
	int len = (int)strcspn(cmd->name, " ");
	printf("%.*s (mstk) %s\n", len, cmd->name, MS_VERSION);
}

/* Whether "--name" (or "--name=value") is a prefix of two or more long options. */
static bool ambiguous(const struct ms_cli *c, const char *text)
{
	if (strncmp(text, "--", 2) != 0)
		return false;
	text += 2;
	size_t len = strcspn(text, "=");
	int matches = 0;
	if (len == 0)
		return false;
	for (const struct option *l = c->longopts; l->name; l++)
		if (strncmp(l->name, text, len) == 0)
			matches++;
	return matches > 1;
}

int ms_cli_next(struct ms_cli *c, const char **arg)
{
	int key = getopt_long(c->argc, c->argv, c->shortopts, c->longopts, NULL);
	*arg = optarg;
	c->opt_name = NULL;
	switch (key) {
	case -1:
		return -1;
	case 'h':
		if (find_opt(c->cmd, 'h') && !find_opt(c->cmd, 'h')->arg) {
			ms_cli_usage(c->cmd, stdout);
			ms_close_stdout();
			exit(MS_EXIT_OK);
		}
		break;
	case KEY_VERSION:
		print_version(c->cmd);
		ms_close_stdout();
		exit(MS_EXIT_OK);
	case KEY_LIST_OPTIONS:
		list_options(c->cmd);
		ms_close_stdout();
		exit(MS_EXIT_OK);
	case '?':
		/*
		 * glibc sets optopt to a known option's key only for "--flag=x"
		 * on a flag; to 0 for an unknown or ambiguous long option.
		 */
		for (const struct option *l = c->longopts; optopt && l->name; l++)
			if (l->val == optopt)
				ms_usage_error("option --%s takes no argument", l->name);
		if (optopt > 0 && optopt < MS_KEY_LONG)
			ms_usage_error("unknown option '-%c'", optopt);
		if (ambiguous(c, c->argv[optind - 1]))
			ms_usage_error("option '%s' is ambiguous", c->argv[optind - 1]);
		ms_usage_error("unknown option '%s'", c->argv[optind - 1]);
	case ':': {
		const struct ms_opt *o = find_opt(c->cmd, optopt);
		if (o)
			ms_usage_error("option --%s needs an argument (%s)", o->name, o->arg);
		ms_usage_error("option '%s' needs an argument", c->argv[optind - 1]);
	}
	}
	const struct ms_opt *o = find_opt(c->cmd, key);
	c->opt_name = o ? o->name : "?";
	return key;
}

int ms_parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno == ERANGE)
		return -1;
	*out = v;
	return 0;
}

int ms_parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

long ms_cli_long(const struct ms_cli *c, const char *arg, long min, long max)
{
	long v;
	if (ms_parse_long(arg, &v) < 0)
		ms_usage_error("invalid value '%s' for --%s: not an integer", arg, c->opt_name);
	if (v < min || v > max)
		ms_usage_error("invalid value '%s' for --%s: must be from %ld to %ld",
		               arg, c->opt_name, min, max);
	return v;
}

double ms_cli_double(const struct ms_cli *c, const char *arg, double min, double max)
{
	double v;
	if (ms_parse_double(arg, &v) < 0)
		ms_usage_error("invalid value '%s' for --%s: not a number", arg, c->opt_name);
	if (v < min || v > max)
		ms_usage_error("invalid value '%s' for --%s: must be from %g to %g",
		               arg, c->opt_name, min, max);
	return v;
}

int ms_cli_choice(const struct ms_cli *c, const char *arg, const char *const *words)
{
	char list[512] = "";
	for (int i = 0; words[i]; i++) {
		if (strcmp(arg, words[i]) == 0)
			return i;
		size_t n = strlen(list);
		snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", words[i]);
	}
	ms_usage_error("invalid value '%s' for --%s: must be one of %s", arg, c->opt_name, list);
}

const struct ms_cmd *ms_cli_subcmd(const struct ms_cmd *cmd, int argc, char **argv)
{
	if (argc < 2)
		ms_usage_error("a command is needed (one of the commands in --help)");
	const char *a = argv[1];
	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		ms_cli_usage(cmd, stdout);
		ms_close_stdout();
		exit(MS_EXIT_OK);
	}
	if (strcmp(a, "--version") == 0) {
		print_version(cmd);
		ms_close_stdout();
		exit(MS_EXIT_OK);
	}
	if (strcmp(a, "--list-options") == 0) {
		list_options(cmd);
		ms_close_stdout();
		exit(MS_EXIT_OK);
	}
	for (const struct ms_cmd *const *s = cmd->subcmds; s && *s; s++) {
		const char *sub = strrchr((*s)->name, ' ');
		if (sub && strcmp(sub + 1, a) == 0)
			return *s;
	}
	ms_usage_error("unknown command '%s'", a);
}

double ms_seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}
