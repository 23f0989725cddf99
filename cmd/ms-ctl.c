/*
 * ms-ctl: talk to a running rig. Sends one control line (its arguments,
 * quoted where needed) to the rig's socket and exits with the answer's
 * status, printing its text; knows a few commands of its own: "status"
 * prints the rig's status as a table, "watch" prints events as they
 * come, "quit" waits for the rig to be gone, "run FILE" has the rig run a
 * script and follows it to its end. The rig is the one --dir names, else
 * the one whose stage this is ($MS_RUNTIME_DIR), else the one started
 * last; --socket talks to one program's own control socket instead.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "err.h"

enum {
	OPT_TIMEOUT = 't', OPT_COUNT = 'n',
	OPT_DIR = MS_KEY_LONG, OPT_RAW, OPT_SOCKET,
};

static const struct ms_opt options[] = {
	{ "dir", OPT_DIR, "DIR", "the rig's runtime directory, or its name (rig-PID)", "dir" },
	{ "socket", OPT_SOCKET, "PATH", "talk to this control socket (a program run alone)", "file" },
	{ "timeout", OPT_TIMEOUT, "S", "seconds to wait for an answer (10; watch, run: none)", NULL },
	{ "count", OPT_COUNT, "N", "watch: stop after N events", NULL },
	{ "raw", OPT_RAW, NULL, "status: print the answer's key=value words as they are", NULL },
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-ctl",
	.synopsis = "[--dir DIR | --socket PATH] TARGET VERB [ARGS...]\n"
	            "[--dir DIR] [--raw] status\n"
	            "[--dir DIR] [-n N] watch [STAGE...]\n"
	            "[--dir DIR] quit\n"
	            "[--dir DIR] run FILE",
	.summary = "Send a control command to a running rig (ms-run) and print the answer;\n"
	           "exit 0 if it was ok, 1 if it was an error.",
	.opts = options,
	.operands = "status watch quit run",
	.epilog = "Commands are in ms-control(7); 'ms-ctl help' and 'ms-ctl STAGE help' list them.",
};

struct config {
	const char *dir, *socket;
	double timeout;
	bool timeout_set, raw;
	long count;
	int verbose;
};

static void parse_args(struct config *c, int argc, char **argv)
{
	*c = (struct config){ .timeout = 10 };
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		switch (key) {
		case OPT_DIR: c->dir = arg; break;
		case OPT_SOCKET: c->socket = arg; break;
		case OPT_TIMEOUT:
			c->timeout = ms_cli_double(&cli, arg, 0, 1e6);
			c->timeout_set = true;
			break;
		case OPT_COUNT: c->count = ms_cli_long(&cli, arg, 1, LONG_MAX); break;
		case OPT_RAW: c->raw = true; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (optind == argc)
		ms_usage_error("a command is needed: TARGET VERB [ARGS...], status, watch, quit or run FILE");
}

static struct ms_ctl_client *connect_rig(const struct config *c)
{
	char path[4096];
	ms_err e;
	if (c->socket)
		snprintf(path, sizeof path, "%s", c->socket);
	else if (ms_ctl_rig_socket(c->dir, path, sizeof path, &e) < 0)
		ms_die("%s", e.msg);
	struct ms_ctl_client *cl = ms_ctl_client_open(path, &e);
	if (!cl) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			ms_die("no rig answers at %s (is ms-run running?)", path);
		ms_die("%s", e.msg);
	}
	return cl;
}

/* Send line and return 0 (ok) or 1 (err, printed); reply gets the answer. */
static int request(struct ms_ctl_client *cl, const char *line, double timeout, char *reply,
                   size_t size)
{
	ms_err e;
	int r = ms_ctl_client_request(cl, line, reply, size, timeout, NULL, NULL, &e);
	if (r < 0)
		ms_die("%s", e.msg);
	if (r == 1)
		fprintf(stderr, "%s: %s\n", ms_progname(), reply);
	return r;
}

/* ---- status ------------------------------------------------------------- */

struct kv {
	char key[128];
	char val[256];
};

static int split_kv(const char *text, struct kv *kv, int max)
{
	static char store[MS_CTL_LINE_MAX + 1];
	const char *w[256];
	ms_err e;
	int n = ms_ctl_split(text, strlen(text), store, sizeof store, w, 256, &e), k = 0;
	for (int i = 0; i < n && k < max; i++) {
		const char *v;
		if (ms_ctl_kv(w[i], kv[k].key, sizeof kv[k].key, &v)) {
			snprintf(kv[k].val, sizeof kv[k].val, "%s", v);
			k++;
		}
	}
	return k;
}

static const char *get(const struct kv *kv, int n, const char *stage, const char *key)
{
	char full[200];
	snprintf(full, sizeof full, "%s%s%s", stage ? stage : "", stage ? "." : "", key);
	for (int i = 0; i < n; i++)
		if (strcmp(kv[i].key, full) == 0)
			return kv[i].val;
	return NULL;
}

static void print_status(const char *text, int verbose)
{
	static struct kv kv[256];
	int n = split_kv(text, kv, 256);
	const char *id = get(kv, n, NULL, "rig"), *state = get(kv, n, NULL, "state");
	const char *up = get(kv, n, NULL, "uptime"), *subs = get(kv, n, NULL, "subscribers");
	const char *script = get(kv, n, NULL, "script"), *stages = get(kv, n, NULL, "stages");
	printf("rig %s: %s, up %s s, %s subscriber%s, script %s\n", id ? id : "?", state ? state : "?",
	       up ? up : "?", subs ? subs : "0", subs && strcmp(subs, "1") == 0 ? "" : "s",
	       script ? script : "none");
	printf("%-12s %8s %-16s %8s %10s %8s %8s %5s\n", "STAGE", "PID", "STATE", "RESTARTS",
	       "FRAMES", "FPS", "DROPPED", "FILL");
	char list[1024];
	snprintf(list, sizeof list, "%s", stages ? stages : "");
	char *save = NULL;
	for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		const char *frames = get(kv, n, s, "frames");
		if (!frames)
			frames = get(kv, n, s, "frames-sent");
		if (!frames)
			frames = get(kv, n, s, "frames-received");
		const char *fps = get(kv, n, s, "fps");
		if (!fps)
			fps = get(kv, n, s, "fps-sent");
		const char *d1 = get(kv, n, s, "frames-dropped"), *d2 = get(kv, n, s, "dropped");
		char dropped[64] = "-";
		if (d1 || d2)
			snprintf(dropped, sizeof dropped, "%lld",
			         (d1 ? atoll(d1) : 0) + (d2 ? atoll(d2) : 0));
		/* Frames wait in the relay's queue, then in the stage's own pipe or
		 * ring: the fuller of the two is how close it is to dropping. */
		const char *rf = get(kv, n, s, "ring-fill"), *qf = get(kv, n, s, "queue-fill");
		char fill[16] = "-";
		if ((rf && isdigit((unsigned char)rf[0])) || qf)
			snprintf(fill, sizeof fill, "%d%%",
			         (rf && atoi(rf) > (qf ? atoi(qf) : -1)) ? atoi(rf) : atoi(qf));
		const char *pid = get(kv, n, s, "pid");
		const char *st = get(kv, n, s, "state");
		char stbuf[600];
		const char *sig = get(kv, n, s, "signal"), *code = get(kv, n, s, "status");
		const char *ctl = get(kv, n, s, "control");
		if (st && strcmp(st, "running") != 0 && strcmp(st, "starting") != 0 && (sig || code)) {
			snprintf(stbuf, sizeof stbuf, "%s(%s%s)", st, sig ? "sig " : "", sig ? sig : code);
			st = stbuf;
		} else if (st && ctl) {
			/* It runs, but did not answer: say so rather than show old numbers as its own. */
			snprintf(stbuf, sizeof stbuf, "%s(%s)", st, ctl);
			st = stbuf;
		}
		printf("%-12s %8s %-16s %8s %10s %8s %8s %5s\n", s,
		       pid && strcmp(pid, "0") ? pid : "-", st ? st : "?",
		       get(kv, n, s, "restarts") ? get(kv, n, s, "restarts") : "0",
		       frames ? frames : "-", fps ? fps : "-", dropped, fill);
		if (verbose > 0) {
			size_t pl = strlen(s);
			printf("  ");
			for (int i = 0; i < n; i++)
				if (strncmp(kv[i].key, s, pl) == 0 && kv[i].key[pl] == '.')
					printf(" %s=%s", kv[i].key + pl + 1, kv[i].val);
			printf("\n");
		}
	}
}

/* ---- watch and run ------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static int watch(const struct config *c, int argc, char **argv)
{
	struct ms_ctl_client *cl = connect_rig(c);
	char line[MS_CTL_LINE_MAX], reply[MS_CTL_LINE_MAX];
	size_t len = (size_t)snprintf(line, sizeof line, "%s", argc > 0 ? "rig subscribe" : "subscribe");
	for (int i = 0; i < argc; i++) {
		int k = ms_ctl_append_word(line, sizeof line, len, argv[i]);
		if (k < 0)
			ms_usage_error("too many stages to watch");
		len = (size_t)k;
	}
	if (request(cl, line, c->timeout, reply, sizeof reply) != 0) {
		ms_ctl_client_close(cl);
		return MS_EXIT_FAIL;
	}
	if (c->verbose > 0)
		fprintf(stderr, "%s: watching\n", ms_progname());
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	double deadline = c->timeout_set ? ms_ctl_now() + c->timeout : 0;
	long seen = 0;
	ms_err e;
	while (!interrupted && (c->count == 0 || seen < c->count)) {
		double left = -1;
		if (c->timeout_set) {
			left = deadline - ms_ctl_now();
			if (left <= 0)
				break;
		}
		int r = ms_ctl_client_recv(cl, line, sizeof line, left, &e);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == ETIMEDOUT || interrupted)
				break;
			ms_die("%s", e.msg);
		}
		if (ms_ctl_classify(line, NULL, NULL) != 2)
			continue;
		printf("%s\n", line);
		fflush(stdout);
		seen++;
	}
	ms_ctl_client_close(cl);
	if (c->count > 0 && seen < c->count) {
		fprintf(stderr, "%s: %ld of %ld events came\n", ms_progname(), seen, c->count);
		return MS_EXIT_FAIL;
	}
	return MS_EXIT_OK;
}

static int follow_script(const struct config *c, struct ms_ctl_client *cl, const char *file)
{
	char path[PATH_MAX];
	if (!realpath(file, path))
		ms_die("cannot open script '%s':", file);
	char line[MS_CTL_LINE_MAX], reply[MS_CTL_LINE_MAX];
	if (request(cl, "rig subscribe script", c->timeout, reply, sizeof reply) != 0)
		return MS_EXIT_FAIL;
	size_t len = (size_t)snprintf(line, sizeof line, "rig run");
	if (ms_ctl_append_word(line, sizeof line, len, path) < 0)
		ms_die("script path too long");
	if (request(cl, line, c->timeout, reply, sizeof reply) != 0)
		return MS_EXIT_FAIL;
	char id[32] = "";
	ms_ctl_get(reply + 2, "id", id, sizeof id);
	double deadline = c->timeout_set ? ms_ctl_now() + c->timeout : 0;
	ms_err e;
	for (;;) {
		double left = -1;
		if (c->timeout_set && (left = deadline - ms_ctl_now()) <= 0) {
			fprintf(stderr, "%s: %s: still running after %g s\n", ms_progname(), file, c->timeout);
			return MS_EXIT_FAIL;
		}
		int r = ms_ctl_client_recv(cl, line, sizeof line, left, &e);
		if (r == 0) {
			fprintf(stderr, "%s: %s: the rig stopped before the script ended\n", ms_progname(), file);
			return MS_EXIT_FAIL;
		}
		if (r < 0) {
			if (errno == ETIMEDOUT)
				continue;
			ms_die("%s", e.msg);
		}
		const char *text;
		if (ms_ctl_classify(line, NULL, &text) != 2 || strncmp(text, "script ", 7) != 0)
			continue;
		char v[MS_CTL_LINE_MAX], ln[32] = "?";
		if (!ms_ctl_get(text, "id", v, sizeof v) || strcmp(v, id) != 0)
			continue;
		ms_ctl_get(text, "line", ln, sizeof ln);
		if (ms_ctl_get(text, "command", v, sizeof v)) {
			if (c->verbose > 0)
				fprintf(stderr, "%s:%s: %s\n", file, ln, v);
			continue;
		}
		if (!ms_ctl_get(text, "state", v, sizeof v))
			continue;
		if (strcmp(v, "finished") == 0) {
			if (c->verbose >= 0)
				fprintf(stderr, "%s: %s: finished\n", ms_progname(), file);
			return MS_EXIT_OK;
		}
		if (strcmp(v, "error") == 0 || strcmp(v, "aborted") == 0) {
			char why[MS_CTL_LINE_MAX] = "";
			ms_ctl_get(text, "reason", why, sizeof why);
			fprintf(stderr, "%s: %s:%s: %s%s\n", ms_progname(), file, ln,
			        v[0] == 'a' ? "stopped: " : "", why);
			return MS_EXIT_FAIL;
		}
	}
}

static int run_script(const struct config *c, const char *file)
{
	struct ms_ctl_client *cl = connect_rig(c);
	int rc = follow_script(c, cl, file);
	ms_ctl_client_close(cl);
	return rc;
}

static int wait_quit(const struct config *c, struct ms_ctl_client *cl)
{
	char reply[MS_CTL_LINE_MAX], line[MS_CTL_LINE_MAX];
	if (request(cl, "quit", c->timeout, reply, sizeof reply) != 0)
		return MS_EXIT_FAIL;
	/* The rig closes every connection as it ends. */
	double deadline = ms_ctl_now() + c->timeout;
	ms_err e;
	for (;;) {
		double left = deadline - ms_ctl_now();
		if (left <= 0) {
			fprintf(stderr, "%s: the rig did not stop within %g s\n", ms_progname(), c->timeout);
			return MS_EXIT_FAIL;
		}
		int r = ms_ctl_client_recv(cl, line, sizeof line, left, &e);
		if (r == 0)
			return MS_EXIT_OK;
		if (r < 0 && errno != ETIMEDOUT)
			return MS_EXIT_OK;	/* reset: it is gone */
	}
}

static int quit(const struct config *c)
{
	struct ms_ctl_client *cl = connect_rig(c);
	int rc = wait_quit(c, cl);
	ms_ctl_client_close(cl);
	return rc;
}

int main(int argc, char **argv)
{
	struct config c;
	parse_args(&c, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	char **av = argv + optind;
	int ac = argc - optind;
	const char *first = av[0];
	if (ac == 1 && strcmp(first, "status") == 0) {
		struct ms_ctl_client *cl = connect_rig(&c);
		char reply[MS_CTL_LINE_MAX];
		if (request(cl, "status", c.timeout, reply, sizeof reply) != 0) {
			ms_ctl_client_close(cl);
			return MS_EXIT_FAIL;
		}
		if (c.raw || c.socket)
			printf("%s\n", reply[2] ? reply + 3 : "");
		else
			print_status(reply[2] ? reply + 3 : "", c.verbose);
		ms_ctl_client_close(cl);
		ms_close_stdout();
		return MS_EXIT_OK;
	}
	if (strcmp(first, "watch") == 0) {
		int rc = watch(&c, ac - 1, av + 1);
		ms_close_stdout();
		return rc;
	}
	if (strcmp(first, "run") == 0) {
		if (ac != 2)
			ms_usage_error("run needs one FILE");
		return run_script(&c, av[1]);
	}
	if (ac == 1 && strcmp(first, "quit") == 0)
		return quit(&c);

	char line[MS_CTL_LINE_MAX];
	if (ms_ctl_join(line, sizeof line, ac, (const char *const *)av) < 0)
		ms_usage_error("the command is longer than %d bytes", MS_CTL_LINE_MAX - 1);
	struct ms_ctl_client *cl = connect_rig(&c);
	char reply[MS_CTL_LINE_MAX];
	int r = request(cl, line, c.timeout, reply, sizeof reply);
	if (r == 0 && reply[2])
		printf("%s\n", reply + 3);
	ms_ctl_client_close(cl);
	ms_close_stdout();
	return r == 0 ? MS_EXIT_OK : MS_EXIT_FAIL;
}
