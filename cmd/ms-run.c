/*
 * ms-run: the supervisor. It reads a pipeline (stages, each a command
 * line, and the pipes between them; with no file, the demo rig of a
 * simulated camera feeding the tracker), makes the rig's runtime
 * directory, starts the stages consumers first, and then sits in one poll
 * loop that does everything else: it relays frames from each producer to
 * its consumers (frame streams over FIFOs in the runtime directory; a slow
 * or restarting consumer loses frames, counted, and never holds the camera
 * back), gives each stage a control socket and routes "STAGE VERB ..."
 * lines from its own socket (ctl.sock, for ms-ctl) to it, answers "rig"
 * commands and aggregated status itself, relays events, logs every
 * stage's standard error line by line under its name, restarts stages
 * that fail (bounded, with back-off) or stops the rig, runs control
 * scripts, and shuts everything down in order: the sources first, then
 * whatever has drained, SIGKILL only after a timeout. Nothing is left in
 * the runtime directory or /dev/shm, and a directory left by a crashed
 * ms-run is cleaned at the next start.
 *
 * Frames go through ms-run as records: it keeps each producer's stream
 * header, checks record framing, and writes whole records to each
 * consumer, so that a restarted consumer starts at a record boundary with
 * the header. It does not look inside the payload, so a stream whose
 * TRANSPORT is a shared-memory ring (descriptors only) is relayed the same
 * way; only the inline transport's end record, which counts the frames
 * delivered, is rewritten per consumer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "err.h"
#include "fstream.h"

#define MAX_STAGES 32
#define STAGE_NAME_MAX 32
#define PENDING_MAX 64
#define CTL_OUT_MAX 65536
#define JOBS_MAX 8
#define RECORD_HDR 32
#define RECORD_MAX ((uint64_t)1 << 30)
#define RELAY_QUEUE_MIN ((size_t)16 << 20)	/* bytes a consumer may lag behind */
#define BACKOFF_MAX 10.0
#define STATUS_TIMEOUT 2.0
#define WAIT_TIMEOUT 30.0
#define WAIT_POLL 0.1
#define SCRIPT_MAX (1 << 20)
#define STARTUP_WARN 10.0

enum {
	OPT_DRY_RUN = 'n',
	OPT_DATA_DIR = MS_KEY_LONG, OPT_DIR, OPT_SCRIPT, OPT_DRAIN, OPT_KILL, OPT_TIMEOUT,
};

static const struct ms_opt options[] = {
	{ "data-dir", OPT_DATA_DIR, "DIR", "where tracks, ROI lists and the log go (./ms-data)", "dir" },
	{ "dir", OPT_DIR, "DIR", "runtime directory (default: one per rig, see ms-run(1))", "dir" },
	{ "script", OPT_SCRIPT, "FILE", "run this control script once every stage is up", "file" },
	{ "drain-timeout", OPT_DRAIN, "S", "on shutdown, seconds for consumers to drain (5)", NULL },
	{ "kill-timeout", OPT_KILL, "S", "seconds from SIGTERM to SIGKILL (3)", NULL },
	{ "timeout", OPT_TIMEOUT, "S", "seconds a stage has to answer a command (5)", NULL },
	{ "dry-run", OPT_DRY_RUN, NULL, "print the stages as they would start, and exit", NULL },
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-run",
	.synopsis = "[--data-dir DIR] [--dir DIR] [--script FILE] [PIPELINE]",
	.summary = "Run a rig: start the stages of PIPELINE (default: a simulated camera feeding\n"
	           "ms-track), relay frames, route control commands (ms-ctl), restart failed\n"
	           "stages, run scripts, and stop everything in order on SIGINT, SIGTERM or quit.",
	.opts = options,
	.operands = "file",
	.epilog = "Pipeline lines: 'stage NAME COMMAND...', 'pipe NAME -> NAME...' (live: a\n"
	          "slow consumer loses frames) or 'pipe NAME => NAME...' (lossless: the\n"
	          "producer waits), 'restart NAME COUNT [DELAY]'. See ms-run(1), ms-control(7).",
};

static const char demo_pipeline[] =
	"# the demo rig: a simulated camera feeding the tracker\n"
	"stage camera ms-simulate --fps 100 --shm --rois-out {data}/{time}-rois.tsv\n"
	"stage track ms-track --rois {data}/{time}-rois.tsv -o {data}/{time}-tracks-{n}.h5\n"
	"pipe camera -> track\n"
	"restart camera 3\n"
	"restart track 3\n";

struct config {
	const char *data_dir, *dir, *script, *pipeline;
	double drain_s, kill_s, timeout_s;
	bool dry_run;
	int verbose;
};

/* ---- types -------------------------------------------------------------- */

enum st_state { ST_NEW, ST_STARTING, ST_RUNNING, ST_BACKOFF, ST_DONE, ST_FAILED };
static const char *const state_names[] = {
	[ST_NEW] = "new", [ST_STARTING] = "starting", [ST_RUNNING] = "running",
	[ST_BACKOFF] = "restarting", [ST_DONE] = "exited", [ST_FAILED] = "failed",
};

/* Where the answer to a routed line goes. */
enum sink_kind { SINK_NONE, SINK_CLIENT, SINK_STATUS, SINK_SCRIPT, SINK_WAIT };
struct sink {
	enum sink_kind kind;
	uint64_t id;		/* client id, job generation or script id */
	int slot;		/* job slot and stage index for SINK_STATUS */
};

struct pending {
	struct sink sink;
	double deadline, timeout;
	bool dead;		/* answered by a timeout: drop the late reply */
};

/* Bytes in [off, len) of p. */
struct bytes {
	unsigned char *p;
	size_t cap, off, len;
};

struct stage {
	char name[STAGE_NAME_MAX + 1];
	int line;		/* in the pipeline file */
	int argc;
	char **argv;		/* as written, placeholders unexpanded */
	bool control;		/* it gets a control socket */
	bool explicit_control;	/* ... where {control} says */
	int restart_max;
	double restart_delay;
	struct stage *producer;
	bool lossless;		/* its producer waits for it ("=>"), never drops */
	int nconsumers;
	struct stage *consumers[MAX_STAGES];
	int depth;		/* pipes from a source */

	enum st_state state;
	pid_t pid;
	pid_t pgid;		/* its process group, kept after it ends */
	double ended_at;
	int starts, restarts;
	bool term_sent, kill_sent, restart_now;
	double term_at, kill_at, restart_at, started_at;
	bool warned_slow;
	char exit_text[96];	/* how it last ended */
	int exit_code, exit_signal;

	int err_fd;
	char errbuf[4096];
	size_t errlen;

	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int ctl_fd;
	bool ctl_up;
	double ctl_retry_at;
	struct ms_ctl_lines *ctl_in;
	char *ctl_out;
	size_t ctl_outlen;
	struct pending pend[PENDING_MAX];
	int pend_head, pend_n;

	char fifo_in[PATH_MAX], fifo_out[PATH_MAX];
	/* As a producer: */
	int src_fd;
	struct bytes src;
	bool src_hdr;		/* this run's header has been read */
	char hdr[MS_FSTREAM_HEADER_MAX];
	size_t hdr_len;
	bool have_hdr, inline_tr, ended;
	unsigned char end_rec[RECORD_HDR];
	uint64_t frames_sent;
	uint64_t shm_next;	/* shm transport: ring position after the last descriptor */
	struct ms_ctl_rate rate_sent;
	/* As a consumer: */
	int dst_fd;
	struct bytes dst;
	bool dst_hdr, dst_closing, dst_finished;
	uint64_t dst_run_frames, frames_received, frames_dropped;
	size_t dst_frame_bytes;	/* the last frame record's size: what dst_limit allows */
};

struct job {
	bool used;
	uint64_t gen;
	struct sink to;
	int waiting;
	double deadline;
	char *reply[MAX_STAGES];
};

enum sc_state { SC_READY, SC_REPLY, SC_SLEEP, SC_WAIT_ASK, SC_WAIT_PAUSE };
enum cond_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct script {
	bool active, pending_start, from_cli;
	uint64_t id;
	char path[PATH_MAX];
	char *text;
	char **lines;
	int nlines, next, lineno;
	enum sc_state st;
	double until, deadline;
	char target[STAGE_NAME_MAX + 1], key[128], val[256];
	enum cond_op op;
	double timeout;
	char seen[512];
};

struct rig {
	struct config cfg;
	char base[PATH_MAX / 2], dir[PATH_MAX / 2], id[64], data[PATH_MAX / 2], timestr[32];
	char shm_prefix[96], ctl_path[PATH_MAX], log_path[PATH_MAX];
	const char *pipeline_name;
	int lock_fd, sfd;
	FILE *log;
	struct ms_ctl_server *srv;
	struct stage *st[MAX_STAGES];
	int n;
	pid_t pid;
	double t_start;
	bool up;		/* every stage has been running */
	bool stopping, done;
	double stop_at;
	int exit_status;
	int signals;
	uint64_t job_gen;
	struct job jobs[JOBS_MAX];
	struct script sc;
	uint64_t script_ids;
	bool own_last;
};

static double now_s(void)
{
	return ms_ctl_now();
}

/* ---- messages ----------------------------------------------------------- */

/* One line from who ("ms-run" or a stage) to standard error and the log. */
static void log_line(struct rig *r, const char *who, bool show, const char *text)
{
	if (show)
		fprintf(stderr, "%s: %s\n", who, text);
	if (r->log) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		struct tm tm;
		localtime_r(&ts.tv_sec, &tm);
		char when[32];
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(r->log, "%s.%03ld %s: %s\n", when, ts.tv_nsec / 1000000, who, text);
		fflush(r->log);
	}
}

/* ms-run's own messages; level 1: only with -v, 0: unless -q, -1: always. */
static void say(struct rig *r, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct rig *r, int level, const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	bool show = level < 0 || (level == 0 && r->cfg.verbose >= 0) || (level > 0 && r->cfg.verbose > 0);
	log_line(r, ms_progname(), show, text);
}

static void event(struct rig *r, const char *stage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void event(struct rig *r, const char *stage, const char *fmt, ...)
{
	if (!r->srv)
		return;
	char head[64], line[MS_CTL_LINE_MAX];
	snprintf(head, sizeof head, "event %s", stage);
	va_list ap;
	va_start(ap, fmt);
	ms_ctl_vformat(line, sizeof line, head, fmt, ap);
	va_end(ap);
	ms_ctl_server_event_line(r->srv, line);
}

/* ---- options and the pipeline file ------------------------------------- */

static void parse_args(struct config *c, int argc, char **argv)
{
	*c = (struct config){ .drain_s = 5, .kill_s = 3, .timeout_s = 5 };
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		switch (key) {
		case OPT_DATA_DIR: c->data_dir = arg; break;
		case OPT_DIR: c->dir = arg; break;
		case OPT_SCRIPT: c->script = arg; break;
		case OPT_DRAIN: c->drain_s = ms_cli_double(&cli, arg, 0, 3600); break;
		case OPT_KILL: c->kill_s = ms_cli_double(&cli, arg, 0, 3600); break;
		case OPT_TIMEOUT: c->timeout_s = ms_cli_double(&cli, arg, 0.01, 3600); break;
		case OPT_DRY_RUN: c->dry_run = true; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (argc - optind > 1)
		ms_usage_error("unexpected operand '%s' (one PIPELINE file at most)", argv[optind + 1]);
	if (optind < argc)
		c->pipeline = argv[optind];
}

static struct stage *find_stage(struct rig *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->st[i]->name, name) == 0)
			return r->st[i];
	return NULL;
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > STAGE_NAME_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_'))
			return false;
	return strcmp(s, "rig") != 0 && strcmp(s, "script") != 0;
}

static noreturn void file_error(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static noreturn void file_error(const char *file, int line, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	ms_die("%s:%d: %s", file, line, text);
}

/* The pipeline, from text (a file's contents, or the demo). */
static void parse_pipeline(struct rig *r, const char *name, char *text)
{
	int lineno = 0;
	char *next = text;
	while (next) {
		char *line = next;
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		next = nl ? nl + 1 : NULL;
		if (!nl && !*line)
			break;
		lineno++;
		const char *p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\0')
			continue;
		char store[MS_CTL_LINE_MAX + 1];
		const char *w[MS_CTL_WORDS_MAX];
		ms_err e;
		int nw = ms_ctl_split(line, strlen(line), store, sizeof store, w, MS_CTL_WORDS_MAX, &e);
		if (nw < 0)
			file_error(name, lineno, "%s", e.msg);
		if (nw == 0)
			continue;
		if (strcmp(w[0], "stage") == 0) {
			if (nw < 3)
				file_error(name, lineno, "'stage' needs a NAME and a COMMAND");
			if (!valid_name(w[1]))
				file_error(name, lineno, "bad stage name '%s': letters, digits, '-' and '_', "
				           "at most %d, not 'rig' or 'script'", w[1], STAGE_NAME_MAX);
			if (find_stage(r, w[1]))
				file_error(name, lineno, "stage '%s' is defined twice", w[1]);
			if (r->n == MAX_STAGES)
				file_error(name, lineno, "more than %d stages", MAX_STAGES);
			struct stage *st = ms_xcalloc(1, sizeof *st);
			snprintf(st->name, sizeof st->name, "%s", w[1]);
			st->line = lineno;
			st->argc = nw - 2;
			st->argv = ms_xcalloc((size_t)st->argc + 1, sizeof *st->argv);
			for (int i = 0; i < st->argc; i++) {
				st->argv[i] = ms_xstrdup(w[i + 2]);
				if (strstr(st->argv[i], "{control}"))
					st->explicit_control = true;
			}
			st->restart_delay = 0.5;
			st->err_fd = st->ctl_fd = st->src_fd = st->dst_fd = -1;
			r->st[r->n++] = st;
		} else if (strcmp(w[0], "pipe") == 0) {
			if (nw < 4 || (strcmp(w[2], "->") != 0 && strcmp(w[2], "=>") != 0))
				file_error(name, lineno, "expected 'pipe PRODUCER -> CONSUMER...' "
				           "or 'pipe PRODUCER => CONSUMER...'");
			struct stage *from = find_stage(r, w[1]);
			if (!from)
				file_error(name, lineno, "no stage '%s' (define stages before their pipes)", w[1]);
			for (int i = 3; i < nw; i++) {
				struct stage *to = find_stage(r, w[i]);
				if (!to)
					file_error(name, lineno, "no stage '%s' (define stages before their pipes)", w[i]);
				if (to == from)
					file_error(name, lineno, "stage '%s' cannot read its own frames", w[i]);
				if (to->producer)
					file_error(name, lineno, "stage '%s' already reads the frames of '%s'",
					           w[i], to->producer->name);
				to->producer = from;
				to->lossless = w[2][0] == '=';
				from->consumers[from->nconsumers++] = to;
			}
		} else if (strcmp(w[0], "restart") == 0) {
			long count;
			double delay = 0.5;
			if (nw < 3 || nw > 4)
				file_error(name, lineno, "expected 'restart NAME COUNT [DELAY]'");
			struct stage *st = find_stage(r, w[1]);
			if (!st)
				file_error(name, lineno, "no stage '%s'", w[1]);
			if (ms_parse_long(w[2], &count) < 0 || count < 0 || count > 1000000)
				file_error(name, lineno, "bad restart COUNT '%s': 0 to 1000000", w[2]);
			if (nw == 4 && (ms_parse_double(w[3], &delay) < 0 || delay < 0 || delay > 3600))
				file_error(name, lineno, "bad restart DELAY '%s': 0 to 3600 s", w[3]);
			st->restart_max = (int)count;
			st->restart_delay = delay;
		} else {
			file_error(name, lineno, "unknown directive '%s' (stage, pipe, restart)", w[0]);
		}
	}
	if (r->n == 0)
		file_error(name, lineno, "no stages");
	/* Depths: a stage is one deeper than its producer; a loop never ends. */
	for (int i = 0; i < r->n; i++) {
		int d = 0;
		for (struct stage *p = r->st[i]->producer; p; p = p->producer)
			if (++d > MAX_STAGES)
				file_error(name, r->st[i]->line, "the pipes through stage '%s' form a loop",
				           r->st[i]->name);
		r->st[i]->depth = d;
	}
}

/* Whether a program takes --control: ms-* programs say so in --list-options. */
static bool takes_control(const char *prog)
{
	const char *base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	if (strncmp(base, "ms-", 3) != 0)
		return false;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return false;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, STDIN_FILENO);
			dup2(dn, STDERR_FILENO);
		}
		execlp(prog, prog, "--list-options", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	bool found = false;
	if (pid > 0) {
		FILE *f = fdopen(p[0], "r");
		char line[1024];
		while (f && fgets(line, sizeof line, f))
			if (strncmp(line, "opt\t", 4) == 0 && strstr(line, "\t--control\t"))
				found = true;
		if (f)
			fclose(f);
		else
			close(p[0]);
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	} else {
		close(p[0]);
	}
	return found;
}

/* Whether prog can be run: a path to an executable, or found in PATH. */
static bool findable(const char *prog)
{
	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		char full[PATH_MAX];
		snprintf(full, sizeof full, "%.*s/%s", (int)(n ? n : 1), n ? path : ".", prog);
		if (access(full, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* ---- placeholders ------------------------------------------------------- */

/* word with {data} {run} {rig} {time} {stage} {n} {control} {in} {out} expanded. */
static char *expand(struct rig *r, struct stage *st, const char *word, int n)
{
	char nbuf[16];
	snprintf(nbuf, sizeof nbuf, "%d", n);
	const char *keys[][2] = {
		{ "{data}", r->data }, { "{run}", r->dir }, { "{rig}", r->id }, { "{time}", r->timestr },
		{ "{stage}", st->name }, { "{n}", nbuf }, { "{control}", st->sock },
		{ "{in}", st->producer ? st->fifo_in : "/dev/null" },
		{ "{out}", st->nconsumers ? st->fifo_out : "/dev/null" },
	};
	size_t cap = strlen(word) + 1, len = 0;
	for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
		for (const char *p = word; (p = strstr(p, keys[k][0])); p++)
			cap += strlen(keys[k][1]);
	char *out = ms_xmalloc(cap);
	for (const char *p = word; *p;) {
		size_t k;
		for (k = 0; k < sizeof keys / sizeof *keys; k++) {
			size_t kl = strlen(keys[k][0]);
			if (strncmp(p, keys[k][0], kl) == 0) {
				size_t vl = strlen(keys[k][1]);
				memcpy(out + len, keys[k][1], vl);
				len += vl;
				p += kl;
				break;
			}
		}
		if (k == sizeof keys / sizeof *keys)
			out[len++] = *p++;
	}
	out[len] = '\0';
	return out;
}

/* The argv a stage starts with (its n-th start): placeholders expanded,
 * --control inserted after the program name when it takes one. */
static char **stage_argv(struct rig *r, struct stage *st, int n)
{
	char **av = ms_xcalloc((size_t)st->argc + 3, sizeof *av);
	int k = 0;
	av[k++] = expand(r, st, st->argv[0], n);
	if (st->control && !st->explicit_control) {
		av[k++] = ms_xstrdup("--control");
		av[k++] = ms_xstrdup(st->sock);
	}
	for (int i = 1; i < st->argc; i++)
		av[k++] = expand(r, st, st->argv[i], n);
	av[k] = NULL;
	return av;
}

static void free_argv(char **av)
{
	for (char **p = av; p && *p; p++)
		free(*p);
	free(av);
}

static void argv_text(char *out, size_t size, char **av)
{
	size_t len = 0;
	out[0] = '\0';
	for (char **p = av; *p; p++) {
		int k = ms_ctl_append_word(out, size, len, *p);
		if (k < 0)
			break;
		len = (size_t)k;
	}
}

/* A path from a format; one too long for its buffer is an error. */
static void xpath(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void xpath(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		ms_die("path '%s...' is too long", out);
}

/* ---- the runtime directory ---------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static void runtime_base(char *out, size_t size)
{
	if (ms_ctl_runtime_base(out, size) < 0)
		ms_die("the runtime base directory name is too long");
}

static void check_private_dir(const char *path)
{
	struct stat st;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		ms_die("cannot create '%s':", path);
	if (lstat(path, &st) < 0)
		ms_die("cannot use '%s':", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid())
		ms_die("'%s' is not a directory of this user's: refusing to use it", path);
	if ((st.st_mode & 077) && chmod(path, 0700) < 0)
		ms_die("cannot make '%s' private:", path);
}

/* Remove POSIX shared-memory segments whose names start with prefix. */
static int remove_shm(const char *prefix)
{
	if (!prefix || !*prefix)
		return 0;
	DIR *d = opendir("/dev/shm");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			char name[300];
			snprintf(name, sizeof name, "/dev/shm/%s", de->d_name);
			n += unlink(name) == 0;
		}
	closedir(d);
	return n;
}

/* Empty and remove a runtime directory (one level: it holds no subdirectories). */
static void remove_rundir(const char *dir)
{
	char prefix[128] = "";
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/shm-prefix", dir);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(prefix, sizeof prefix, f))
			prefix[strcspn(prefix, "\n")] = '\0';
		fclose(f);
	}
	remove_shm(prefix);
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
				unlink(path);
			}
		closedir(d);
	}
	rmdir(dir);
}

/*
 * Whether a runtime directory belongs to no live ms-run: its lock is
 * free (a live ms-run holds it as long as it runs) and, for rig-PID
 * directories, that process is gone (a rig being made has no lock yet).
 */
static bool rundir_stale(const char *dir, const char *name)
{
	char path[PATH_MAX];
	long pid;
	if (strncmp(name, "rig-", 4) == 0 && ms_parse_long(name + 4, &pid) == 0 && pid > 0 &&
	    (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		return false;
	snprintf(path, sizeof path, "%s/lock", dir);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	bool stale = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return stale;
}

/* Clean what crashed rigs left in the base directory. */
static void clean_stale(struct rig *r)
{
	DIR *d = opendir(r->base);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "rig-", 4) != 0)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", r->base, de->d_name);
		struct stat st;
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (rundir_stale(path, de->d_name)) {
			remove_rundir(path);
			say(r, 0, "removed the stale runtime directory %s", path);
		}
	}
	closedir(d);
}

/* Name the runtime directory (--dir, or BASE/rig-PID) and its sockets. */
static void name_rundir(struct rig *r)
{
	runtime_base(r->base, sizeof r->base);
	if (r->cfg.dir) {
		xpath(r->dir, sizeof r->dir, "%s", r->cfg.dir);
		const char *b = strrchr(r->dir, '/');
		snprintf(r->id, sizeof r->id, "%.63s", b && b[1] ? b + 1 : r->dir);
	} else {
		snprintf(r->id, sizeof r->id, "rig-%ld", (long)r->pid);
		xpath(r->dir, sizeof r->dir, "%s/%s", r->base, r->id);
	}
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		if ((size_t)snprintf(st->sock, sizeof st->sock, "%s/%s.sock", r->dir, st->name) >= sizeof st->sock)
			ms_die("runtime directory '%s' is too long for a socket path; give a shorter --dir",
			       r->dir);
		xpath(st->fifo_in, sizeof st->fifo_in, "%s/%s.in", r->dir, st->name);
		xpath(st->fifo_out, sizeof st->fifo_out, "%s/%s.out", r->dir, st->name);
	}
	xpath(r->ctl_path, sizeof r->ctl_path, "%s/ctl.sock", r->dir);
	if (strlen(r->ctl_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		ms_die("runtime directory '%s' is too long for a socket path; give a shorter --dir",
		       r->dir);
}

static void make_rundir(struct rig *r)
{
	if (!r->cfg.dir)
		check_private_dir(r->base);
	struct stat st;
	if (access(r->base, F_OK) == 0)
		clean_stale(r);
	if (lstat(r->dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			ms_die("runtime directory '%s' exists and is not a directory", r->dir);
		if (!rundir_stale(r->dir, r->id))
			ms_die("runtime directory '%s' is in use by another ms-run", r->dir);
		remove_rundir(r->dir);
		say(r, 0, "removed the stale runtime directory %s", r->dir);
	}
	if (mkdir_p(r->dir, 0700) < 0)
		ms_die("cannot create the runtime directory '%s':", r->dir);
	chmod(r->dir, 0700);
	char path[PATH_MAX];
	xpath(path, sizeof path, "%s/lock", r->dir);
	r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->lock_fd < 0 || flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0)
		ms_die("cannot lock '%s':", path);
	char pidtext[32];
	int k = snprintf(pidtext, sizeof pidtext, "%ld\n", (long)r->pid);
	if (ftruncate(r->lock_fd, 0) < 0 || write(r->lock_fd, pidtext, (size_t)k) != k)
		ms_die("cannot write '%s':", path);
	snprintf(r->shm_prefix, sizeof r->shm_prefix, "mstk-%s-", r->id);
	xpath(path, sizeof path, "%s/shm-prefix", r->dir);
	FILE *f = fopen(path, "w");
	if (!f || fprintf(f, "%s\n", r->shm_prefix) < 0 || fclose(f) != 0)
		ms_die("cannot write '%s':", path);
	/* "last" names the rig started last, for ms-ctl without --dir. */
	if (access(r->base, F_OK) == 0) {
		char link[PATH_MAX], tmp[PATH_MAX + 32];
		snprintf(link, sizeof link, "%s/last", r->base);
		snprintf(tmp, sizeof tmp, "%s/.last-%ld", r->base, (long)r->pid);
		const char *target = r->dir;
		if (strncmp(r->dir, r->base, strlen(r->base)) == 0 && r->dir[strlen(r->base)] == '/')
			target = r->dir + strlen(r->base) + 1;
		unlink(tmp);
		if (symlink(target, tmp) == 0 && rename(tmp, link) == 0)
			r->own_last = true;
		else
			unlink(tmp);
	}
}

/* Remove everything the rig made in the runtime directory, and "last" if ours. */
static void cleanup_rundir(struct rig *r)
{
	remove_shm(r->shm_prefix);
	for (int i = 0; i < r->n; i++) {
		unlink(r->st[i]->sock);
		unlink(r->st[i]->fifo_in);
		unlink(r->st[i]->fifo_out);
	}
	if (r->own_last) {
		char link[PATH_MAX], target[PATH_MAX];
		snprintf(link, sizeof link, "%s/last", r->base);
		ssize_t k = readlink(link, target, sizeof target - 1);
		if (k > 0) {
			target[k] = '\0';
			if (strcmp(target, r->id) == 0 || strcmp(target, r->dir) == 0)
				unlink(link);
		}
	}
	remove_rundir(r->dir);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
}

/* ---- frame relay -------------------------------------------------------- */

static void bytes_need(struct bytes *b, size_t need)
{
	if (b->off > 0 && (b->off == b->len || b->cap - b->len < need)) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len < need) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap - b->len < need)
			cap *= 2;
		b->p = ms_xrealloc(b->p, cap);
		b->cap = cap;
	}
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	*b = (struct bytes){ 0 };
}

static void dst_close(struct stage *c)
{
	if (c->dst_fd >= 0)
		close(c->dst_fd);
	c->dst_fd = -1;
	c->dst.off = c->dst.len = 0;
	c->dst_closing = false;
}

static void dst_flush(struct stage *c)
{
	while (c->dst_fd >= 0 && c->dst.off < c->dst.len) {
		ssize_t k = write(c->dst_fd, c->dst.p + c->dst.off, c->dst.len - c->dst.off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			/* The consumer is gone (EPIPE): what it did not read is lost. */
			dst_close(c);
			return;
		}
		c->dst.off += (size_t)k;
	}
	if (c->dst.off == c->dst.len) {
		c->dst.off = c->dst.len = 0;
		if (c->dst_closing)
			dst_close(c);
	}
}

static bool stage_final(const struct stage *st);

/* How much may wait for consumer c, when its records are n bytes. */
static size_t dst_limit(size_t n)
{
	return RELAY_QUEUE_MIN > 3 * n ? RELAY_QUEUE_MIN : 3 * n;
}

/* Whether a consumer that its producer waits for has all it may hold. */
static bool dst_full(const struct stage *c)
{
	return c->lossless && c->dst_fd >= 0 && c->dst.len - c->dst.off >= dst_limit(0);
}

/* Whether producer p must wait: one of its "=>" consumers is full. */
static bool src_blocked(const struct stage *p)
{
	for (int i = 0; i < p->nconsumers; i++)
		if (dst_full(p->consumers[i]))
			return true;
	return false;
}

/*
 * Queue bytes for consumer c. A frame is dropped when c is down or, on a
 * "->" pipe, lags too far; on a "=>" pipe the producer is not read while
 * c is full (src_blocked), so it never lags further.
 */
static void dst_put(struct stage *c, const void *p, size_t n, bool frame)
{
	if (frame) {
		c->dst_frame_bytes = n;
		if (c->dst_fd < 0 || !c->dst_hdr || c->dst_closing ||
		    (!c->lossless && c->dst.len - c->dst.off + n > dst_limit(n))) {
			/* A consumer that has ended for good misses nothing. */
			if (!stage_final(c))
				c->frames_dropped++;
			return;
		}
		c->dst_run_frames++;
		c->frames_received++;
	}
	if (c->dst_fd < 0)
		return;
	bytes_need(&c->dst, n);
	memcpy(c->dst.p + c->dst.len, p, n);
	c->dst.len += n;
	dst_flush(c);
}

/* The end record for consumer c: the producer's, counting what c got. */
static void dst_finish(struct stage *c)
{
	struct stage *p = c->producer;
	if (c->dst_fd < 0 || c->dst_finished)
		return;
	if (!c->dst_hdr) {
		/* No stream ever started: closing says so well enough. */
		c->dst_closing = true;
		c->dst_finished = true;
		dst_flush(c);
		if (c->dst.off == c->dst.len)
			dst_close(c);
		return;
	}
	unsigned char rec[RECORD_HDR];
	if (p->ended) {
		memcpy(rec, p->end_rec, sizeof rec);
	} else {
		memset(rec, 0, sizeof rec);
		memcpy(rec, "MSFR", 4);
		uint32_t kind = MS_REC_END;
		memcpy(rec + 4, &kind, 4);
	}
	/*
	 * Inline end records count the frames this consumer was given; a
	 * shared-memory stream's count ring positions, which its reader
	 * checks against the descriptors' own.
	 */
	if (p->inline_tr || !p->ended) {
		uint64_t count = p->inline_tr ? c->dst_run_frames : p->shm_next;
		memcpy(rec + 8, &count, 8);
	}
	dst_put(c, rec, sizeof rec, false);
	c->dst_finished = true;
	c->dst_closing = true;
	dst_flush(c);
}

static bool stage_final(const struct stage *st)
{
	return st->state == ST_DONE || st->state == ST_FAILED;
}

/* When a producer is gone for good and its output is drained, end its consumers' streams. */
static void src_check_done(struct stage *p)
{
	if (p->src_fd >= 0 || !stage_final(p))
		return;
	for (int i = 0; i < p->nconsumers; i++)
		dst_finish(p->consumers[i]);
}

static void src_close(struct stage *p)
{
	if (p->src_fd >= 0)
		close(p->src_fd);
	p->src_fd = -1;
	p->src.off = p->src.len = 0;
	src_check_done(p);
}

static void stage_signal(struct rig *r, struct stage *st, int sig);

static void src_header(struct rig *r, struct stage *p, const char *h, size_t n)
{
	if (p->have_hdr && (n != p->hdr_len || memcmp(h, p->hdr, n) != 0)) {
		/* A different stream (new geometry, say): consumers must start over. */
		say(r, 0, "%s: its new stream differs from the last one: restarting its consumers",
		    p->name);
		for (int i = 0; i < p->nconsumers; i++) {
			struct stage *c = p->consumers[i];
			dst_close(c);
			if (c->pid > 0 && !r->stopping) {
				c->restart_now = true;
				stage_signal(r, c, SIGTERM);
			}
		}
	}
	memcpy(p->hdr, h, n);
	p->hdr_len = n;
	p->have_hdr = true;
	p->ended = false;
	p->inline_tr = memmem(h, n, "\nTRANSPORT inline\n", 18) != NULL;
	p->shm_next = 0;
	for (int i = 0; i < p->nconsumers; i++) {
		struct stage *c = p->consumers[i];
		if (c->dst_fd >= 0 && !c->dst_hdr) {
			c->dst_hdr = true;
			dst_put(c, p->hdr, p->hdr_len, false);
		}
	}
}

static void src_record(struct stage *p, const unsigned char *rec, size_t n)
{
	uint32_t kind;
	memcpy(&kind, rec + 4, 4);
	if (kind == MS_REC_END) {
		/* Held back: the producer may be restarted, and the stream go on. */
		p->ended = true;
		memcpy(p->end_rec, rec, RECORD_HDR);
		return;
	}
	if (kind == MS_REC_FRAME) {
		uint64_t pos;
		if (!p->inline_tr && n >= RECORD_HDR + 8) {
			memcpy(&pos, rec + RECORD_HDR, 8);
			if (pos + 1 > p->shm_next)
				p->shm_next = pos + 1;
		}
		p->frames_sent++;
		ms_ctl_rate_add(&p->rate_sent, 1, now_s());
	}
	for (int i = 0; i < p->nconsumers; i++)
		dst_put(p->consumers[i], rec, n, kind == MS_REC_FRAME);
}

static void src_parse(struct rig *r, struct stage *p)
{
	for (;;) {
		struct bytes *b = &p->src;
		const unsigned char *q = b->p + b->off;
		size_t avail = b->len - b->off;
		if (!p->src_hdr) {
			size_t look = avail < MS_FSTREAM_HEADER_MAX ? avail : MS_FSTREAM_HEADER_MAX;
			const unsigned char *end = memmem(q, look, "\nENDHDR\n", 8);
			if ((avail >= 9 && !ms_fstream_sniff(q, avail)) ||
			    (!end && avail >= MS_FSTREAM_HEADER_MAX)) {
				say(r, -1, "%s: its output is not a frame stream: no longer reading it", p->name);
				src_close(p);
				return;
			}
			if (!end)
				return;
			size_t n = (size_t)(end - q) + 8;
			src_header(r, p, (const char *)q, n);
			b->off += n;
			p->src_hdr = true;
			continue;
		}
		if (avail < RECORD_HDR)
			return;
		uint64_t payload;
		memcpy(&payload, q + 24, 8);
		if (memcmp(q, "MSFR", 4) != 0 || payload > RECORD_MAX) {
			say(r, -1, "%s: corrupt frame stream after %" PRIu64 " frames: no longer reading it",
			    p->name, p->frames_sent);
			src_close(p);
			return;
		}
		size_t total = RECORD_HDR + (size_t)payload;
		if (avail < total) {
			bytes_need(b, total - avail);
			return;
		}
		src_record(p, q, total);
		b->off += total;
	}
}

static void src_read(struct rig *r, struct stage *p)
{
	/* A budget per turn, so a fast camera cannot starve the control socket. */
	for (int rounds = 0; rounds < 32 && p->src_fd >= 0 && !src_blocked(p); rounds++) {
		bytes_need(&p->src, 65536);
		ssize_t k = read(p->src_fd, p->src.p + p->src.len, p->src.cap - p->src.len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			/* A record cut short by a crash is dropped here. */
			src_close(p);
			return;
		}
		p->src.len += (size_t)k;
		src_parse(r, p);
	}
}

/* A FIFO at path: parent_reads says which end ms-run keeps (non-blocking). */
static int fifo_pair(const char *path, bool parent_reads, int *pfd, int *cfd, ms_err *e)
{
	unlink(path);
	if (mkfifo(path, 0600) < 0)
		return ms_err_set(e, "cannot make the FIFO '%s':", path);
	if (parent_reads) {
		*pfd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		*cfd = *pfd >= 0 ? open(path, O_WRONLY | O_CLOEXEC) : -1;
	} else {
		*cfd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		*pfd = *cfd >= 0 ? open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC) : -1;
		if (*cfd >= 0)
			fcntl(*cfd, F_SETFL, fcntl(*cfd, F_GETFL) & ~O_NONBLOCK);
	}
	if (*pfd < 0 || *cfd < 0) {
		ms_err_set(e, "cannot open the FIFO '%s':", path);
		if (*pfd >= 0)
			close(*pfd);
		if (*cfd >= 0)
			close(*cfd);
		return -1;
	}
	/* Fewer, larger writes; the limit may refuse it, which is fine. */
	fcntl(*pfd, F_SETPIPE_SZ, 1 << 20);
	return 0;
}

/* ---- control connections to stages ------------------------------------- */

static void deliver(struct rig *r, struct sink s, const char *reply);

static void ctl_down(struct rig *r, struct stage *st, const char *why)
{
	if (st->ctl_fd >= 0)
		close(st->ctl_fd);
	st->ctl_fd = -1;
	st->ctl_up = false;
	st->ctl_outlen = 0;
	if (st->ctl_in)
		memset(st->ctl_in, 0, sizeof *st->ctl_in);
	/* Nothing more will come: answer whoever still waits. */
	while (st->pend_n > 0) {
		struct pending pd = st->pend[st->pend_head];
		st->pend_head = (st->pend_head + 1) % PENDING_MAX;
		st->pend_n--;
		if (!pd.dead) {
			char reply[MS_CTL_LINE_MAX];
			ms_ctl_err(reply, sizeof reply, MS_CTL_FAILED, "stage '%s' %s", st->name, why);
			deliver(r, pd.sink, reply);
		}
	}
}

static void ctl_flush(struct rig *r, struct stage *st)
{
	size_t done = 0;
	while (done < st->ctl_outlen) {
		ssize_t k = send(st->ctl_fd, st->ctl_out + done, st->ctl_outlen - done,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k <= 0) {
			ctl_down(r, st, "closed its control connection");
			return;
		}
		done += (size_t)k;
	}
	memmove(st->ctl_out, st->ctl_out + done, st->ctl_outlen - done);
	st->ctl_outlen -= done;
}

/* Send line to a stage; its answer goes to sink. Returns -1 (reply set) if it cannot. */
static int forward(struct rig *r, struct stage *st, const char *line, struct sink sink,
                   double timeout, char *reply, size_t size)
{
	size_t n = strlen(line);
	if (!st->ctl_up) {
		if (st->state == ST_RUNNING)
			ms_ctl_err(reply, size, MS_CTL_BUSY, "stage '%s' has closed its control socket",
			           st->name);
		else
			ms_ctl_err(reply, size, MS_CTL_BUSY, "stage '%s' is %s", st->name,
			           state_names[st->state]);
		return -1;
	}
	if (st->pend_n == PENDING_MAX || st->ctl_outlen + n + 1 > CTL_OUT_MAX) {
		ms_ctl_err(reply, size, MS_CTL_BUSY, "stage '%s' has %d commands unanswered", st->name,
		           st->pend_n);
		return -1;
	}
	memcpy(st->ctl_out + st->ctl_outlen, line, n);
	st->ctl_out[st->ctl_outlen + n] = '\n';
	st->ctl_outlen += n + 1;
	int k = (st->pend_head + st->pend_n) % PENDING_MAX;
	st->pend[k] = (struct pending){ sink, now_s() + timeout, timeout, false };
	st->pend_n++;
	ctl_flush(r, st);
	return 0;
}

static void set_running(struct rig *r, struct stage *st)
{
	st->state = ST_RUNNING;
	say(r, 1, "%s: running (pid %ld)", st->name, (long)st->pid);
	event(r, "rig", "stage=%s state=running pid=%ld start=%d", st->name, (long)st->pid, st->starts);
}

static void ctl_try_connect(struct rig *r, struct stage *st)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", st->sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		st->ctl_retry_at = now_s() + 0.05;
		return;
	}
	st->ctl_fd = fd;
	st->ctl_up = true;
	char reply[MS_CTL_LINE_MAX];
	/* Its events come to ms-run on this connection, to be passed on. */
	forward(r, st, "subscribe", (struct sink){ SINK_NONE, 0, 0 }, r->cfg.timeout_s, reply,
	        sizeof reply);
	if (st->state == ST_STARTING)
		set_running(r, st);
}

static void ctl_read(struct rig *r, struct stage *st)
{
	int k = ms_ctl_lines_fill(st->ctl_in, st->ctl_fd);
	char *line;
	long n;
	while ((n = ms_ctl_lines_next(st->ctl_in, &line)) != -1) {
		if (n == -2)
			continue;
		enum ms_ctl_code code;
		const char *text;
		int kind = ms_ctl_classify(line, &code, &text);
		if (kind == 2) {
			ms_ctl_server_event_line(r->srv, line);
			continue;
		}
		if (kind < 0 || st->pend_n == 0) {
			say(r, 1, "%s: unexpected on its control connection: %.200s", st->name, line);
			continue;
		}
		struct pending pd = st->pend[st->pend_head];
		st->pend_head = (st->pend_head + 1) % PENDING_MAX;
		st->pend_n--;
		if (!pd.dead)
			deliver(r, pd.sink, line);
	}
	if (k <= 0)
		ctl_down(r, st, "closed its control connection");
}

/* ---- starting and stopping stages --------------------------------------- */

static void stage_signal(struct rig *r, struct stage *st, int sig)
{
	(void)r;
	if (st->pid <= 0)
		return;
	/* The whole process group: a stage may be a shell with children. */
	if (kill(-st->pid, sig) < 0)
		kill(st->pid, sig);
	if (sig == SIGTERM && !st->term_sent) {
		st->term_sent = true;
		st->kill_at = now_s() + r->cfg.kill_s;
	}
	if (sig == SIGKILL)
		st->kill_sent = true;
}

static void begin_shutdown(struct rig *r, const char *why);

static int start_stage(struct rig *r, struct stage *st)
{
	ms_err e;
	int in_c = -1, out_c = -1, err_p[2] = { -1, -1 };
	st->starts++;
	char **av = stage_argv(r, st, st->starts);
	if (st->control)
		unlink(st->sock);
	if (st->producer) {
		if (fifo_pair(st->fifo_in, false, &st->dst_fd, &in_c, &e) < 0)
			goto fail;
		st->dst.off = st->dst.len = 0;
		st->dst_hdr = st->dst_closing = st->dst_finished = false;
		st->dst_run_frames = 0;
		struct stage *p = st->producer;
		if (p->have_hdr) {
			st->dst_hdr = true;
			dst_put(st, p->hdr, p->hdr_len, false);
		}
		if (stage_final(p) && p->src_fd < 0)
			dst_finish(st);
	}
	if (st->nconsumers > 0) {
		if (fifo_pair(st->fifo_out, true, &st->src_fd, &out_c, &e) < 0)
			goto fail;
		st->src.off = st->src.len = 0;
		st->src_hdr = false;
	}
	if (pipe2(err_p, O_CLOEXEC) < 0) {
		ms_err_set(&e, "cannot make a pipe:");
		goto fail;
	}
	char text[2048];
	argv_text(text, sizeof text, av);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		ms_err_set(&e, "cannot fork:");
		goto fail;
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* If ms-run dies, so do its stages. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		int dn = open("/dev/null", O_RDWR);
		dup2(in_c >= 0 ? in_c : dn, STDIN_FILENO);
		dup2(out_c >= 0 ? out_c : dn, STDOUT_FILENO);
		dup2(err_p[1], STDERR_FILENO);
		setenv("MS_STAGE", st->name, 1);
		setenv("MS_RUNTIME_DIR", r->dir, 1);
		setenv("MS_DATA_DIR", r->data, 1);
		setenv("MS_SHM_PREFIX", r->shm_prefix, 1);
		execvp(av[0], av);
		dprintf(STDERR_FILENO, "cannot run '%s': %s\n", av[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	st->pgid = pid;
	if (in_c >= 0)
		close(in_c);
	if (out_c >= 0)
		close(out_c);
	close(err_p[1]);
	st->err_fd = err_p[0];
	fcntl(st->err_fd, F_SETFL, O_NONBLOCK);
	st->errlen = 0;
	st->pid = pid;
	st->term_sent = st->kill_sent = st->restart_now = false;
	st->warned_slow = false;
	st->started_at = now_s();
	say(r, 1, "%s: started (pid %ld): %s", st->name, (long)pid, text);
	if (st->control) {
		st->state = ST_STARTING;
		st->ctl_retry_at = now_s();
	} else {
		st->pid = pid;
		set_running(r, st);
	}
	free_argv(av);
	return 0;
fail:
	if (in_c >= 0)
		close(in_c);
	if (out_c >= 0)
		close(out_c);
	if (err_p[0] >= 0)
		close(err_p[0]);
	if (err_p[1] >= 0)
		close(err_p[1]);
	free_argv(av);
	say(r, -1, "%s: cannot start: %s", st->name, e.msg);
	st->state = ST_FAILED;
	snprintf(st->exit_text, sizeof st->exit_text, "could not start");
	r->exit_status = MS_EXIT_FAIL;
	begin_shutdown(r, "a stage could not start");
	return -1;
}

/* Stage stderr, line by line, under its name. */
static void err_emit(struct rig *r, struct stage *st, const char *p, size_t n)
{
	char line[4200];
	snprintf(line, sizeof line, "%.*s", (int)n, p);
	log_line(r, st->name, r->cfg.verbose >= 0, line);
}

static void err_read(struct rig *r, struct stage *st)
{
	for (;;) {
		ssize_t k = read(st->err_fd, st->errbuf + st->errlen, sizeof st->errbuf - st->errlen);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			if (st->errlen > 0)
				err_emit(r, st, st->errbuf, st->errlen);
			st->errlen = 0;
			close(st->err_fd);
			st->err_fd = -1;
			return;
		}
		st->errlen += (size_t)k;
		size_t start = 0;
		for (size_t i = 0; i < st->errlen; i++)
			if (st->errbuf[i] == '\n') {
				err_emit(r, st, st->errbuf + start, i - start);
				start = i + 1;
			}
		if (start == 0 && st->errlen == sizeof st->errbuf) {
			err_emit(r, st, st->errbuf, st->errlen);	/* an overlong line, in pieces */
			start = st->errlen;
		}
		memmove(st->errbuf, st->errbuf + start, st->errlen - start);
		st->errlen -= start;
	}
}

static void describe_status(char *out, size_t size, int status, int *code, int *sig)
{
	*code = -1;
	*sig = 0;
	if (WIFEXITED(status)) {
		*code = WEXITSTATUS(status);
		snprintf(out, size, "exited with status %d", *code);
	} else if (WIFSIGNALED(status)) {
		*sig = WTERMSIG(status);
		snprintf(out, size, "killed by signal %d (SIG%s)%s", *sig, sigabbrev_np(*sig) ? sigabbrev_np(*sig) : "?",
		         WCOREDUMP(status) ? ", core dumped" : "");
	} else {
		snprintf(out, size, "ended with wait status 0x%x", status);
	}
}

static void stage_exited(struct rig *r, struct stage *st, int status)
{
	/* Its last words first, then what became of it. */
	if (st->err_fd >= 0)
		err_read(r, st);
	describe_status(st->exit_text, sizeof st->exit_text, status, &st->exit_code, &st->exit_signal);
	long pid = (long)st->pid;
	st->pid = 0;
	st->ended_at = now_s();
	ctl_down(r, st, "exited");
	unlink(st->sock);
	/*
	 * The frame ring a producer names PREFIX-STAGE-PID (see --shm in
	 * ms-simulate(1)); one that crashed left it behind, and a restart
	 * makes another: free it now rather than when the rig ends. Readers
	 * that have it mapped keep what they have.
	 */
	char ring[PATH_MAX];
	if ((size_t)snprintf(ring, sizeof ring, "/dev/shm/%s%s-%ld", r->shm_prefix, st->name, pid) <
	    sizeof ring)
		unlink(ring);
	/* Its input is closed; what was queued for it is lost. */
	dst_close(st);
	bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	bool asked = st->term_sent || r->stopping;
	double now = now_s();
	const char *action;
	if (st->restart_now && !r->stopping) {
		st->state = ST_BACKOFF;
		st->restart_at = now;
		action = "restart";
		say(r, 0, "%s: %s; restarting", st->name, st->exit_text);
	} else if (clean || (asked && !st->restart_now)) {
		st->state = ST_DONE;
		action = "none";
		if (clean)
			say(r, 1, "%s: %s", st->name, st->exit_text);
		else
			say(r, 0, "%s: stopped (%s)", st->name, st->exit_text);
	} else if (st->restarts < st->restart_max) {
		st->restarts++;
		double delay = st->restart_delay * pow(2, st->restarts - 1);
		if (delay > BACKOFF_MAX)
			delay = BACKOFF_MAX;
		st->state = ST_BACKOFF;
		st->restart_at = now + delay;
		action = "restart";
		say(r, -1, "%s: %s; restarting in %.1f s (restart %d of %d)", st->name, st->exit_text,
		    delay, st->restarts, st->restart_max);
	} else {
		st->state = ST_FAILED;
		action = "stop";
		if (st->restart_max > 0)
			say(r, -1, "%s: %s; it was restarted %d times already: stopping the rig", st->name,
			    st->exit_text, st->restarts);
		else
			say(r, -1, "%s: %s: stopping the rig", st->name, st->exit_text);
		r->exit_status = MS_EXIT_FAIL;
	}
	if (st->exit_signal)
		event(r, "rig", "stage=%s state=%s pid=%ld signal=%d action=%s", st->name,
		      state_names[st->state], pid, st->exit_signal, action);
	else
		event(r, "rig", "stage=%s state=%s pid=%ld status=%d action=%s", st->name,
		      state_names[st->state], pid, st->exit_code, action);
	src_check_done(st);
	if (st->state == ST_FAILED)
		begin_shutdown(r, "a stage failed");
}

static void reap(struct rig *r)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		for (int i = 0; i < r->n; i++)
			if (r->st[i]->pid == pid)
				stage_exited(r, r->st[i], status);
	}
}

static void abort_script(struct rig *r, const char *why);

static void begin_shutdown(struct rig *r, const char *why)
{
	double now = now_s();
	if (r->stopping)
		return;
	r->stopping = true;
	r->stop_at = now;
	say(r, 0, "stopping (%s)", why);
	event(r, "rig", "state=stopping reason=\"%s\"", why);
	if (r->sc.active)
		abort_script(r, why);
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		if (st->state == ST_BACKOFF || st->state == ST_NEW) {
			st->state = ST_DONE;
			src_check_done(st);
		}
		if (st->pid <= 0)
			continue;
		/* Sources stop now; the others once their input ends, or at the drain timeout. */
		if (!st->producer)
			stage_signal(r, st, SIGTERM);
		else
			st->term_at = now + r->cfg.drain_s;
	}
}

/* ---- status ------------------------------------------------------------- */

static void rig_status_text(struct rig *r, struct job *j, char *out, size_t size)
{
	double now = now_s();
	char names[MAX_STAGES * (STAGE_NAME_MAX + 1) + 1] = "";
	for (int i = 0; i < r->n; i++) {
		strcat(names, i ? "," : "");
		strcat(names, r->st[i]->name);
	}
	const char *state = r->stopping ? "stopping" : r->up ? "running" : "starting";
	char script[64] = "none";
	if (r->sc.active)
		snprintf(script, sizeof script, "running:%d", r->sc.lineno);
	int len = snprintf(out, size, "rig=%s state=%s pid=%ld uptime=%.1f stages=%s subscribers=%d script=%s",
	                   r->id, state, (long)r->pid, now - r->t_start, names,
	                   ms_ctl_server_subscribers(r->srv), script);
	if (len < 0 || (size_t)len >= size)
		return;
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		char w[512];
		const char *n = st->name;
		int k = snprintf(w, sizeof w, "%s.state=%s %s.pid=%ld %s.restarts=%d", n,
		                 state_names[st->state], n, (long)st->pid, n, st->restarts);
		if (st->nconsumers)
			k += snprintf(w + k, sizeof w - (size_t)k, " %s.frames-sent=%" PRIu64 " %s.fps-sent=%.1f",
			              n, st->frames_sent, n, ms_ctl_rate_get(&st->rate_sent, now));
		if (st->producer) {
			/* How much of what the relay may hold for this stage it holds. */
			double q = st->dst_fd >= 0 ? (double)(st->dst.len - st->dst.off) /
			                             (double)dst_limit(st->dst_frame_bytes) : 0;
			k += snprintf(w + k, sizeof w - (size_t)k,
			              " %s.frames-received=%" PRIu64 " %s.frames-dropped=%" PRIu64
			              " %s.queue-fill=%.0f%%", n, st->frames_received, n,
			              st->frames_dropped, n, 100 * (q > 1 ? 1 : q));
		}
		if (st->exit_text[0] && st->state != ST_RUNNING && st->state != ST_STARTING)
			k += snprintf(w + k, sizeof w - (size_t)k, " %s.%s=%d", n,
			              st->exit_signal ? "signal" : "status",
			              st->exit_signal ? st->exit_signal : st->exit_code);
		if ((size_t)len + 1 + strlen(w) >= size)
			break;
		len += snprintf(out + len, size - (size_t)len, " %s", w);
		/* Then what the stage says of itself, each key under its name. */
		const char *rep = j ? j->reply[i] : NULL;
		if (!rep) {
			/* Asked, but no answer came in time. */
			if (j && st->control && st->ctl_up) {
				char word[128];
				snprintf(word, sizeof word, "%s.control=timeout", n);
				int m = ms_ctl_append_word(out, size, (size_t)len, word);
				if (m > 0)
					len = m;
			}
			continue;
		}
		enum ms_ctl_code code;
		const char *text;
		if (ms_ctl_classify(rep, &code, &text) != 0) {
			char word[128];
			snprintf(word, sizeof word, "%s.control=%s", n, rep[0] ? ms_ctl_code_name(code) : "timeout");
			int m = ms_ctl_append_word(out, size, (size_t)len, word);
			if (m > 0)
				len = m;
			continue;
		}
		char store[MS_CTL_LINE_MAX + 1];
		const char *ws[MS_CTL_WORDS_MAX];
		ms_err e;
		int nw = ms_ctl_split(text, strlen(text), store, sizeof store, ws, MS_CTL_WORDS_MAX, &e);
		for (int q = 0; q < nw; q++) {
			char key[96], word[MS_CTL_LINE_MAX];
			const char *val;
			if (!ms_ctl_kv(ws[q], key, sizeof key, &val) || strcmp(key, "state") == 0)
				continue;
			snprintf(word, sizeof word, "%s.%s=%s", n, key, val);
			int m = ms_ctl_append_word(out, size, (size_t)len, word);
			if (m < 0)
				break;
			len = m;
		}
	}
}

static void job_finish(struct rig *r, struct job *j)
{
	char text[MS_CTL_LINE_MAX], reply[MS_CTL_LINE_MAX];
	rig_status_text(r, j, text, sizeof text - 3);
	ms_ctl_ok(reply, sizeof reply, "%s", text);
	struct sink to = j->to;
	for (int i = 0; i < MAX_STAGES; i++)
		free(j->reply[i]);
	memset(j, 0, sizeof *j);
	deliver(r, to, reply);
}

/* Ask every stage that can answer for its status, then answer to. */
static bool start_status(struct rig *r, struct sink to, char *reply, size_t size)
{
	int k;
	for (k = 0; k < JOBS_MAX && r->jobs[k].used; k++)
		;
	if (k == JOBS_MAX) {
		ms_ctl_err(reply, size, MS_CTL_BUSY, "too many status queries at once");
		return false;
	}
	struct job *j = &r->jobs[k];
	*j = (struct job){ .used = true, .gen = ++r->job_gen, .to = to,
	                   .deadline = now_s() + STATUS_TIMEOUT };
	char line[STAGE_NAME_MAX + 16], dummy[MS_CTL_LINE_MAX];
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		if (!st->ctl_up)
			continue;
		snprintf(line, sizeof line, "%s status", st->name);
		if (forward(r, st, line, (struct sink){ SINK_STATUS, j->gen, k * MAX_STAGES + i },
		            STATUS_TIMEOUT, dummy, sizeof dummy) == 0)
			j->waiting++;
		else
			j->reply[i] = ms_xstrdup(dummy);
	}
	if (j->waiting == 0)
		job_finish(r, j);
	return true;
}

static void job_collect(struct rig *r, struct sink s, const char *reply)
{
	int k = s.slot / MAX_STAGES, i = s.slot % MAX_STAGES;
	struct job *j = &r->jobs[k];
	if (!j->used || j->gen != s.id)
		return;
	free(j->reply[i]);
	j->reply[i] = ms_xstrdup(reply);
	if (--j->waiting == 0)
		job_finish(r, j);
}

/* ---- routing ------------------------------------------------------------ */

static bool route(struct rig *r, const struct ms_ctl_cmd *c, const char *line, struct sink sink,
                  char *reply, size_t size);

static void script_reply(struct rig *r, uint64_t id, const char *reply);
static void script_wait_reply(struct rig *r, uint64_t id, const char *reply);

static void deliver(struct rig *r, struct sink s, const char *reply)
{
	switch (s.kind) {
	case SINK_CLIENT:
		ms_ctl_server_answer(r->srv, s.id, reply);
		break;
	case SINK_STATUS:
		job_collect(r, s, reply);
		break;
	case SINK_SCRIPT:
		script_reply(r, s.id, reply);
		break;
	case SINK_WAIT:
		script_wait_reply(r, s.id, reply);
		break;
	case SINK_NONE:
		if (strncmp(reply, "err", 3) == 0)
			say(r, 1, "a command of ms-run's own was refused: %s", reply);
		break;
	}
}

static void start_script(struct rig *r, const char *path, bool from_cli, char *reply, size_t size);
static void script_finish(struct rig *r, const char *how);

static bool rig_verb(struct rig *r, const struct ms_ctl_cmd *c, struct sink sink, char *reply,
                     size_t size)
{
	const char *v = c->verb;
	if (strcmp(v, "status") == 0) {
		if (c->argc)
			return ms_ctl_err(reply, size, MS_CTL_USAGE, "status takes no arguments"), false;
		return start_status(r, sink, reply, size);
	}
	if (strcmp(v, "quit") == 0) {
		ms_ctl_ok(reply, size, "stopping");
		/* A script that says quit has ended well, here. */
		if (sink.kind == SINK_SCRIPT && r->sc.active && r->sc.id == sink.id)
			script_finish(r, "quit");
		begin_shutdown(r, "asked to quit");
		return false;
	}
	if (strcmp(v, "run") == 0) {
		if (c->argc != 1)
			return ms_ctl_err(reply, size, MS_CTL_USAGE, "run FILE"), false;
		start_script(r, c->argv[0], false, reply, size);
		return false;
	}
	if (strcmp(v, "abort") == 0) {
		if (!r->sc.active)
			return ms_ctl_err(reply, size, MS_CTL_FAILED, "no script is running"), false;
		abort_script(r, "aborted");
		return ms_ctl_ok(reply, size, "aborted"), false;
	}
	if (strcmp(v, "message") == 0) {
		char text[MS_CTL_LINE_MAX] = "";
		size_t len = 0;
		for (int i = 0; i < c->argc; i++)
			len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? " " : "", c->argv[i]);
		say(r, 0, "message: %s", text);
		char q[MS_CTL_LINE_MAX] = "";
		ms_ctl_append_word(q, sizeof q, 0, text);
		event(r, "rig", "message text=%s", q);
		return ms_ctl_ok(reply, size, "%s", ""), false;
	}
	if (strcmp(v, "restart") == 0) {
		struct stage *st = c->argc == 1 ? find_stage(r, c->argv[0]) : NULL;
		if (c->argc != 1)
			return ms_ctl_err(reply, size, MS_CTL_USAGE, "restart STAGE"), false;
		if (!st)
			return ms_ctl_err(reply, size, MS_CTL_UNKNOWN_TARGET, "no stage '%s'", c->argv[0]), false;
		if (r->stopping)
			return ms_ctl_err(reply, size, MS_CTL_BUSY, "the rig is stopping"), false;
		if (st->pid > 0) {
			st->restart_now = true;
			stage_signal(r, st, SIGTERM);
		} else {
			st->state = ST_BACKOFF;
			st->restart_at = now_s();
		}
		return ms_ctl_ok(reply, size, "restarting %s", st->name), false;
	}
	if (strcmp(v, "help") == 0)
		return ms_ctl_ok(reply, size, "rig verbs: status, quit, run FILE, abort, message TEXT, "
		                 "restart STAGE, subscribe [STAGE...], unsubscribe, help; "
		                 "STAGE VERB... goes to that stage"), false;
	ms_ctl_err(reply, size, MS_CTL_UNKNOWN_VERB, "no rig verb '%s' (try help)", v);
	return false;
}

/* Route one command: true if its answer will come later through sink. */
static bool route(struct rig *r, const struct ms_ctl_cmd *c, const char *line, struct sink sink,
                  char *reply, size_t size)
{
	if (!*c->target || strcmp(c->target, "rig") == 0)
		return rig_verb(r, c, sink, reply, size);
	struct stage *st = find_stage(r, c->target);
	if (!st) {
		char names[MAX_STAGES * (STAGE_NAME_MAX + 2) + 1] = "";
		for (int i = 0; i < r->n; i++) {
			strcat(names, i ? ", " : "");
			strcat(names, r->st[i]->name);
		}
		ms_ctl_err(reply, size, MS_CTL_UNKNOWN_TARGET, "no stage '%s' (stages: %s; or rig)",
		           c->target, names);
		return false;
	}
	/* Subscriptions are to the rig, which passes the stages' events on:
	 * a stage's own subscribers would be ms-run's connection to it. */
	if (strcmp(c->verb, "subscribe") == 0) {
		if (sink.kind != SINK_CLIENT)
			ms_ctl_err(reply, size, MS_CTL_USAGE, "only a connection can subscribe");
		else if (ms_ctl_server_subscribe(r->srv, sink.id, st->name) == 0)
			ms_ctl_ok(reply, size, "subscribed");
		else
			ms_ctl_err(reply, size, MS_CTL_FAILED, "that connection is gone");
		return false;
	}
	if (strcmp(c->verb, "unsubscribe") == 0) {
		ms_ctl_err(reply, size, MS_CTL_USAGE, "'unsubscribe' (to the rig) ends every subscription");
		return false;
	}
	if (!st->control) {
		ms_ctl_err(reply, size, MS_CTL_FAILED, "stage '%s' takes no commands (its program has no "
		           "--control)", st->name);
		return false;
	}
	return forward(r, st, line, sink, r->cfg.timeout_s, reply, size) == 0;
}

static void on_client(void *ctx, struct ms_ctl_server *s, struct ms_ctl_req *q)
{
	struct rig *r = ctx;
	(void)s;
	if (route(r, q->cmd, q->line, (struct sink){ SINK_CLIENT, q->client, 0 }, q->reply,
	          sizeof q->reply))
		q->defer = true;
}

/* ---- scripts ------------------------------------------------------------ */

static void script_free(struct script *sc)
{
	free(sc->text);
	free(sc->lines);
	sc->text = NULL;
	sc->lines = NULL;
	sc->active = false;
}

static void script_fail(struct rig *r, const char *why)
{
	struct script *sc = &r->sc;
	char q[MS_CTL_LINE_MAX] = "";
	ms_ctl_append_word(q, sizeof q, 0, why);
	say(r, -1, "script %s:%d: %s", sc->path, sc->lineno, why);
	event(r, "script", "id=%" PRIu64 " state=error line=%d reason=%s", sc->id, sc->lineno, q);
	bool cli = sc->from_cli;
	script_free(sc);
	if (cli) {
		r->exit_status = MS_EXIT_FAIL;
		begin_shutdown(r, "the script failed");
	}
}

static void script_finish(struct rig *r, const char *how)
{
	struct script *sc = &r->sc;
	if (*how)
		say(r, 0, "script %s: finished by '%s' at line %d", sc->path, how, sc->lineno);
	else
		say(r, 0, "script %s: finished", sc->path);
	event(r, "script", "id=%" PRIu64 " state=finished line=%d lines=%d", sc->id, sc->lineno,
	      sc->nlines);
	script_free(sc);
}

static void abort_script(struct rig *r, const char *why)
{
	struct script *sc = &r->sc;
	char q[MS_CTL_LINE_MAX] = "";
	ms_ctl_append_word(q, sizeof q, 0, why);
	say(r, 0, "script %s: stopped at line %d (%s)", sc->path, sc->lineno, why);
	event(r, "script", "id=%" PRIu64 " state=aborted line=%d reason=%s", sc->id, sc->lineno, q);
	script_free(sc);
}

static void start_script(struct rig *r, const char *path, bool from_cli, char *reply, size_t size)
{
	struct script *sc = &r->sc;
	if (sc->active || sc->pending_start) {
		ms_ctl_err(reply, size, MS_CTL_BUSY, "script %s is running (line %d)", sc->path, sc->lineno);
		return;
	}
	if (r->stopping) {
		ms_ctl_err(reply, size, MS_CTL_BUSY, "the rig is stopping");
		return;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		ms_ctl_err(reply, size, MS_CTL_FAILED, "cannot open script '%s': %s", path, strerror(errno));
		return;
	}
	char *text = ms_xmalloc(SCRIPT_MAX + 1);
	size_t n = fread(text, 1, SCRIPT_MAX + 1, f);
	bool bad = ferror(f);
	fclose(f);
	if (bad || n > SCRIPT_MAX) {
		free(text);
		ms_ctl_err(reply, size, MS_CTL_FAILED, "cannot read script '%s': %s", path,
		           bad ? "read error" : "larger than 1 MiB");
		return;
	}
	text[n] = '\0';
	*sc = (struct script){ .active = true, .from_cli = from_cli, .id = ++r->script_ids, .text = text };
	snprintf(sc->path, sizeof sc->path, "%s", path);
	for (size_t i = 0; i < n; i++)
		sc->nlines += text[i] == '\n';
	sc->nlines += n > 0 && text[n - 1] != '\n';
	sc->lines = ms_xcalloc((size_t)sc->nlines + 1, sizeof *sc->lines);
	char *p = text;
	for (int i = 0; i < sc->nlines; i++) {
		sc->lines[i] = p;
		char *nl = strchr(p, '\n');
		if (nl) {
			*nl = '\0';
			p = nl + 1;
		}
	}
	say(r, 0, "script %s: started (%d lines)", path, sc->nlines);
	event(r, "script", "id=%" PRIu64 " state=running lines=%d", sc->id, sc->nlines);
	ms_ctl_ok(reply, size, "id=%" PRIu64 " lines=%d", sc->id, sc->nlines);
}

static bool number(const char *s, double *v)
{
	return ms_parse_double(s, v) == 0;
}

/* "key OP value" in one word: OP one of = == != < <= > >=. */
static int parse_cond(struct script *sc, const char *w, char *why, size_t size)
{
	size_t k = strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
	if (k == 0 || k >= sizeof sc->key)
		return snprintf(why, size, "bad condition '%s': expected KEY=VALUE, KEY>=VALUE, ...", w), -1;
	static const struct {
		const char *s;
		enum cond_op op;
	} ops[] = { { "==", OP_EQ }, { "!=", OP_NE }, { "<=", OP_LE }, { ">=", OP_GE },
	            { "=", OP_EQ }, { "<", OP_LT }, { ">", OP_GT } };
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
		size_t ol = strlen(ops[i].s);
		if (strncmp(w + k, ops[i].s, ol) == 0) {
			const char *val = w + k + ol;
			double d;
			if (ops[i].op != OP_EQ && ops[i].op != OP_NE && !number(val, &d))
				return snprintf(why, size, "bad condition '%s': '%s' is not a number", w, val), -1;
			if (strlen(val) >= sizeof sc->val)
				return snprintf(why, size, "bad condition '%s': value too long", w), -1;
			snprintf(sc->key, sizeof sc->key, "%.*s", (int)k, w);
			snprintf(sc->val, sizeof sc->val, "%s", val);
			sc->op = ops[i].op;
			return 0;
		}
	}
	return snprintf(why, size, "bad condition '%s': no operator (= != < <= > >=)", w), -1;
}

static const char *const op_names[] = {
	[OP_EQ] = "=", [OP_NE] = "!=", [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=",
};

static bool cond_holds(const struct script *sc, const char *have)
{
	double a, b;
	bool num = number(have, &a) && number(sc->val, &b);
	int cmp = num ? (a < b ? -1 : a > b ? 1 : 0) : strcmp(have, sc->val);
	switch (sc->op) {
	case OP_EQ: return cmp == 0;
	case OP_NE: return cmp != 0;
	case OP_LT: return num && cmp < 0;
	case OP_LE: return num && cmp <= 0;
	case OP_GT: return num && cmp > 0;
	case OP_GE: return num && cmp >= 0;
	}
	return false;
}

static void script_ask(struct rig *r)
{
	struct script *sc = &r->sc;
	char reply[MS_CTL_LINE_MAX];
	sc->st = SC_WAIT_ASK;
	struct sink sink = { SINK_WAIT, sc->id, 0 };
	struct stage *st = strcmp(sc->target, "rig") == 0 ? NULL : find_stage(r, sc->target);
	if (!st) {
		if (!start_status(r, sink, reply, sizeof reply))
			script_wait_reply(r, sc->id, reply);
		return;
	}
	char line[STAGE_NAME_MAX + 16];
	snprintf(line, sizeof line, "%s status", st->name);
	if (forward(r, st, line, sink, STATUS_TIMEOUT, reply, sizeof reply) < 0)
		script_wait_reply(r, sc->id, reply);
}

static void script_wait_reply(struct rig *r, uint64_t id, const char *reply)
{
	struct script *sc = &r->sc;
	if (!sc->active || sc->id != id || sc->st != SC_WAIT_ASK)
		return;
	enum ms_ctl_code code;
	const char *text;
	char have[256];
	if (ms_ctl_classify(reply, &code, &text) == 0) {
		if (ms_ctl_get(text, sc->key, have, sizeof have)) {
			snprintf(sc->seen, sizeof sc->seen, "%s=%s", sc->key, have);
			if (cond_holds(sc, have)) {
				sc->st = SC_READY;
				return;
			}
		} else {
			snprintf(sc->seen, sizeof sc->seen, "no %s in its status", sc->key);
		}
	} else {
		snprintf(sc->seen, sizeof sc->seen, "%.200s", reply);
	}
	double now = now_s();
	if (now >= sc->deadline) {
		char why[1280];
		snprintf(why, sizeof why, "wait: %s %s%s%s did not come within %g s (last: %s)",
		         sc->target, sc->key, op_names[sc->op], sc->val, sc->timeout, sc->seen);
		script_fail(r, why);
		return;
	}
	sc->st = SC_WAIT_PAUSE;
	sc->until = now + WAIT_POLL;
}

static void script_reply(struct rig *r, uint64_t id, const char *reply)
{
	struct script *sc = &r->sc;
	if (!sc->active || sc->id != id || sc->st != SC_REPLY)
		return;
	if (strncmp(reply, "ok", 2) != 0) {
		script_fail(r, reply);
		return;
	}
	sc->st = SC_READY;
}

/* Run the script as far as it can go now. */
static void script_step(struct rig *r)
{
	struct script *sc = &r->sc;
	while (sc->active) {
		double now = now_s();
		switch (sc->st) {
		case SC_REPLY:
		case SC_WAIT_ASK:
			return;
		case SC_SLEEP:
			if (now < sc->until)
				return;
			sc->st = SC_READY;
			break;
		case SC_WAIT_PAUSE:
			if (now < sc->until)
				return;
			script_ask(r);
			break;
		case SC_READY: {
			if (sc->next >= sc->nlines) {
				script_finish(r, "");
				return;
			}
			char *line = sc->lines[sc->next++];
			sc->lineno = sc->next;
			const char *p = line + strspn(line, " \t");
			if (*p == '#' || *p == '\0' || *p == '\r')
				break;
			char store[MS_CTL_LINE_MAX + 1], why[MS_CTL_LINE_MAX + 64];
			const char *w[MS_CTL_WORDS_MAX];
			ms_err e;
			int nw = ms_ctl_split(line, strlen(line), store, sizeof store, w, MS_CTL_WORDS_MAX, &e);
			if (nw < 0) {
				snprintf(why, sizeof why, "err usage %s", e.msg);
				script_fail(r, why);
				return;
			}
			char q[MS_CTL_LINE_MAX] = "";
			ms_ctl_append_word(q, sizeof q, 0, p);
			event(r, "script", "id=%" PRIu64 " line=%d command=%s", sc->id, sc->lineno, q);
			if (strcmp(w[0], "sleep") == 0) {
				double s;
				if (nw != 2 || !number(w[1], &s) || s < 0 || s > 1e7) {
					script_fail(r, "err usage sleep SECONDS (a number, 0 or more)");
					return;
				}
				sc->st = SC_SLEEP;
				sc->until = now + s;
				break;
			}
			if (strcmp(w[0], "wait") == 0) {
				double t = WAIT_TIMEOUT;
				if (nw < 3 || nw > 4 || (nw == 4 && (!number(w[3], &t) || t < 0))) {
					script_fail(r, "err usage wait TARGET CONDITION [TIMEOUT]");
					return;
				}
				if (strcmp(w[1], "rig") != 0 && !find_stage(r, w[1])) {
					snprintf(why, sizeof why, "err unknown-target no stage '%s'", w[1]);
					script_fail(r, why);
					return;
				}
				char cw[512];
				if (parse_cond(sc, w[2], cw, sizeof cw) < 0) {
					snprintf(why, sizeof why, "err usage %s", cw);
					script_fail(r, why);
					return;
				}
				snprintf(sc->target, sizeof sc->target, "%s", w[1]);
				sc->timeout = t;
				sc->deadline = now + t;
				sc->seen[0] = '\0';
				script_ask(r);
				break;
			}
			struct ms_ctl_cmd c;
			if (ms_ctl_parse(&c, line, strlen(line), &e) < 0) {
				snprintf(why, sizeof why, "err usage %s", e.msg);
				script_fail(r, why);
				return;
			}
			if ((!*c.target || strcmp(c.target, "rig") == 0) &&
			    (strcmp(c.verb, "run") == 0 || strcmp(c.verb, "subscribe") == 0 ||
			     strcmp(c.verb, "unsubscribe") == 0)) {
				snprintf(why, sizeof why, "err usage '%s' cannot be used in a script", c.verb);
				script_fail(r, why);
				return;
			}
			sc->st = SC_REPLY;
			char reply[MS_CTL_LINE_MAX];
			uint64_t id = sc->id;
			if (!route(r, &c, line, (struct sink){ SINK_SCRIPT, id, 0 }, reply, sizeof reply))
				script_reply(r, id, reply);
			break;
		}
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */

enum fdkind { FD_SIGNAL, FD_CTL, FD_ERR, FD_STAGECTL, FD_SRC, FD_DST };

static bool all_final(struct rig *r)
{
	for (int i = 0; i < r->n; i++)
		if (!stage_final(r->st[i]) || r->st[i]->pid > 0 || r->st[i]->err_fd >= 0 ||
		    r->st[i]->src_fd >= 0)
			return false;
	return true;
}

/*
 * A stage that ended may have left a child holding its output or its
 * standard error: what is in them is read, but the rig does not wait
 * for them more than a moment.
 */
#define LINGER 2.0
static void close_lingering(struct rig *r, struct stage *st, double now)
{
	if (st->pid > 0 || st->ended_at == 0 || now - st->ended_at < LINGER)
		return;
	if (st->src_fd >= 0) {
		say(r, 0, "%s: its output is still open %.0f s after it ended (a child of it?): "
		    "closing it", st->name, LINGER);
		src_close(st);
	}
	if (st->err_fd >= 0) {
		close(st->err_fd);
		st->err_fd = -1;
	}
}

static void timers(struct rig *r)
{
	double now = now_s();
	bool all_running = true;
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		if (st->state == ST_BACKOFF && now >= st->restart_at && !r->stopping)
			start_stage(r, st);
		if (st->state == ST_STARTING && !st->ctl_up && now >= st->ctl_retry_at && st->pid > 0)
			ctl_try_connect(r, st);
		if (st->state == ST_STARTING && !st->warned_slow && now - st->started_at > STARTUP_WARN) {
			say(r, 0, "%s: still no control socket after %.0f s", st->name, STARTUP_WARN);
			st->warned_slow = true;
		}
		if (st->pid > 0 && !st->term_sent && st->term_at > 0 && now >= st->term_at) {
			say(r, 0, "%s: still running %.1f s after its input ended: SIGTERM", st->name,
			    r->cfg.drain_s);
			stage_signal(r, st, SIGTERM);
		}
		if (st->pid > 0 && st->term_sent && !st->kill_sent && now >= st->kill_at) {
			say(r, -1, "%s: still running %.1f s after SIGTERM: SIGKILL", st->name, r->cfg.kill_s);
			stage_signal(r, st, SIGKILL);
		}
		/* Answers that did not come in time. */
		for (int k = 0; k < st->pend_n; k++) {
			struct pending *pd = &st->pend[(st->pend_head + k) % PENDING_MAX];
			if (!pd->dead && now >= pd->deadline) {
				char reply[MS_CTL_LINE_MAX];
				ms_ctl_err(reply, sizeof reply, MS_CTL_TIMEOUT, "stage '%s' did not answer "
				           "within %g s", st->name, pd->timeout);
				pd->dead = true;
				deliver(r, pd->sink, reply);
			}
		}
		if (st->state != ST_RUNNING)
			all_running = false;
		close_lingering(r, st, now);
	}
	for (int k = 0; k < JOBS_MAX; k++)
		if (r->jobs[k].used && now >= r->jobs[k].deadline)
			job_finish(r, &r->jobs[k]);
	if (all_running && !r->up && !r->stopping) {
		r->up = true;
		say(r, 0, "rig %s up: %d stage%s; control socket %s", r->id, r->n, r->n == 1 ? "" : "s",
		    r->ctl_path);
		event(r, "rig", "state=running");
	}
	if (r->up && r->sc.pending_start && !r->stopping) {
		r->sc.pending_start = false;
		char reply[MS_CTL_LINE_MAX];
		start_script(r, r->cfg.script, true, reply, sizeof reply);
		r->sc.from_cli = true;
		if (!r->sc.active) {
			say(r, -1, "%s", reply + 4 + strcspn(reply + 4, " ") + 1);
			r->exit_status = MS_EXIT_FAIL;
			begin_shutdown(r, "the script could not start");
		}
	}
	if (r->sc.pending_start && !r->up && !r->stopping && now - r->t_start > 30) {
		r->sc.pending_start = false;
		say(r, -1, "script %s: the rig did not come up within 30 s", r->cfg.script);
		r->exit_status = MS_EXIT_FAIL;
		begin_shutdown(r, "the rig did not come up");
	}
	script_step(r);
}

static double next_wakeup(struct rig *r)
{
	double now = now_s(), t = now + 0.25;
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		if (st->state == ST_BACKOFF)
			t = fmin(t, st->restart_at);
		if (st->state == ST_STARTING)
			t = fmin(t, st->ctl_retry_at);
		if (st->pid > 0 && !st->term_sent && st->term_at > 0)
			t = fmin(t, st->term_at);
		if (st->pid > 0 && st->term_sent && !st->kill_sent)
			t = fmin(t, st->kill_at);
		for (int k = 0; k < st->pend_n; k++)
			t = fmin(t, st->pend[(st->pend_head + k) % PENDING_MAX].deadline);
		if (st->pid <= 0 && st->ended_at > 0 && (st->src_fd >= 0 || st->err_fd >= 0))
			t = fmin(t, st->ended_at + LINGER);
	}
	if (r->sc.active && (r->sc.st == SC_SLEEP || r->sc.st == SC_WAIT_PAUSE))
		t = fmin(t, r->sc.until);
	if (r->sc.active && r->sc.st == SC_READY)
		t = now;
	return t < now ? 0 : t - now;
}

static void handle_signals(struct rig *r)
{
	struct signalfd_siginfo si;
	while (read(r->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGCHLD)
			continue;	/* reaped below */
		r->signals++;
		if (r->signals == 1) {
			r->exit_status = 128 + sig;
			char why[64];
			snprintf(why, sizeof why, "SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
			begin_shutdown(r, why);
		} else {
			/* Asked again: do not wait for draining; a third time, kill. */
			int s = r->signals == 2 ? SIGTERM : SIGKILL;
			say(r, -1, "signalled again: %s every stage", s == SIGTERM ? "SIGTERM to" : "SIGKILL to");
			for (int i = 0; i < r->n; i++)
				if (r->st[i]->pid > 0)
					stage_signal(r, r->st[i], s);
		}
	}
	reap(r);
}

static void loop(struct rig *r)
{
	struct pollfd pfd[2 + 4 * MAX_STAGES];
	struct {
		enum fdkind kind;
		struct stage *st;
	} what[2 + 4 * MAX_STAGES];
	while (!r->done) {
		int n = 0;
		pfd[n] = (struct pollfd){ r->sfd, POLLIN, 0 };
		what[n++].kind = FD_SIGNAL;
		pfd[n] = (struct pollfd){ ms_ctl_server_fd(r->srv), POLLIN, 0 };
		what[n++].kind = FD_CTL;
		for (int i = 0; i < r->n; i++) {
			struct stage *st = r->st[i];
			if (st->err_fd >= 0) {
				pfd[n] = (struct pollfd){ st->err_fd, POLLIN, 0 };
				what[n].kind = FD_ERR;
				what[n++].st = st;
			}
			if (st->ctl_fd >= 0) {
				pfd[n] = (struct pollfd){ st->ctl_fd, (short)(POLLIN | (st->ctl_outlen ? POLLOUT : 0)), 0 };
				what[n].kind = FD_STAGECTL;
				what[n++].st = st;
			}
			if (st->src_fd >= 0 && !src_blocked(st)) {
				pfd[n] = (struct pollfd){ st->src_fd, POLLIN, 0 };
				what[n].kind = FD_SRC;
				what[n++].st = st;
			}
			if (st->dst_fd >= 0 && st->dst.off < st->dst.len) {
				pfd[n] = (struct pollfd){ st->dst_fd, POLLOUT, 0 };
				what[n].kind = FD_DST;
				what[n++].st = st;
			}
		}
		double wait = next_wakeup(r);
		int rc = poll(pfd, (nfds_t)n, (int)ceil(wait * 1000));
		if (rc < 0 && errno != EINTR)
			ms_die("poll:");
		for (int k = 0; rc > 0 && k < n; k++) {
			if (!pfd[k].revents)
				continue;
			struct stage *st = what[k].st;
			switch (what[k].kind) {
			case FD_SIGNAL:
				handle_signals(r);
				break;
			case FD_CTL:
				ms_ctl_server_dispatch(r->srv, on_client, r);
				break;
			case FD_ERR:
				if (st->err_fd == pfd[k].fd)
					err_read(r, st);
				break;
			case FD_STAGECTL:
				if (st->ctl_fd != pfd[k].fd)
					break;
				if (pfd[k].revents & POLLOUT)
					ctl_flush(r, st);
				if (st->ctl_fd >= 0 && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
					ctl_read(r, st);
				break;
			case FD_SRC:
				if (st->src_fd == pfd[k].fd)
					src_read(r, st);
				break;
			case FD_DST:
				if (st->dst_fd == pfd[k].fd)
					dst_flush(st);
				break;
			}
		}
		reap(r);
		timers(r);
		if (all_final(r)) {
			if (!r->stopping) {
				bool ok = true;
				for (int i = 0; i < r->n; i++)
					ok = ok && r->st[i]->state == ST_DONE;
				say(r, 0, "every stage has ended");
				if (!ok)
					r->exit_status = MS_EXIT_FAIL;
			}
			r->done = true;
		}
	}
}

/* ---- main --------------------------------------------------------------- */

static char *read_pipeline(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		ms_die("cannot open '%s':", path);
	char *text = ms_xmalloc(SCRIPT_MAX + 1);
	size_t n = fread(text, 1, SCRIPT_MAX + 1, f);
	if (ferror(f))
		ms_die("cannot read '%s':", path);
	fclose(f);
	if (n > SCRIPT_MAX)
		ms_die("%s: larger than 1 MiB: not a pipeline", path);
	text[n] = '\0';
	if (memchr(text, '\0', n))
		ms_die("%s: binary data: not a pipeline", path);
	return text;
}

static void free_rig(struct rig *r)
{
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		free_argv(st->argv);
		free(st->ctl_in);
		free(st->ctl_out);
		bytes_free(&st->src);
		bytes_free(&st->dst);
		free(st);
	}
	r->n = 0;
	for (int k = 0; k < JOBS_MAX; k++)
		for (int i = 0; i < MAX_STAGES; i++)
			free(r->jobs[k].reply[i]);
	script_free(&r->sc);
}

int main(int argc, char **argv)
{
	struct rig rig = { .lock_fd = -1, .sfd = -1 };
	struct rig *r = &rig;
	parse_args(&r->cfg, argc, argv);
	r->pid = getpid();
	r->t_start = now_s();
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(r->timestr, sizeof r->timestr, "%Y%m%d-%H%M%S", &tm);

	char *text = r->cfg.pipeline ? read_pipeline(r->cfg.pipeline) : ms_xstrdup(demo_pipeline);
	r->pipeline_name = r->cfg.pipeline ? r->cfg.pipeline : "(demo rig)";
	parse_pipeline(r, r->pipeline_name, text);
	free(text);
	for (int i = 0; i < r->n; i++) {
		struct stage *st = r->st[i];
		if (!findable(st->argv[0]))
			ms_die("%s:%d: stage '%s': program '%s' not found", r->pipeline_name, st->line,
			       st->name, st->argv[0]);
		st->control = st->explicit_control || takes_control(st->argv[0]);
	}
	if (r->cfg.script && access(r->cfg.script, R_OK) < 0)
		ms_die("cannot read script '%s':", r->cfg.script);

	/* Absolute paths: stages may change directory, scripts run from here. */
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		ms_die("cannot find the current directory:");
	const char *data = r->cfg.data_dir ? r->cfg.data_dir : "ms-data";
	if (data[0] == '/')
		xpath(r->data, sizeof r->data, "%s", data);
	else
		xpath(r->data, sizeof r->data, "%s/%s", cwd, data);

	name_rundir(r);
	if (!r->cfg.dry_run) {
		if (mkdir_p(r->data, 0777) < 0)
			ms_die("cannot create the data directory '%s':", r->data);
		make_rundir(r);
	}
	for (int i = 0; i < r->n; i++) {
		r->st[i]->ctl_in = ms_xcalloc(1, sizeof *r->st[i]->ctl_in);
		r->st[i]->ctl_out = ms_xmalloc(CTL_OUT_MAX);
	}
	/* Consumers first, so that a producer's first frame has somewhere to go. */
	struct stage *order[MAX_STAGES];
	int no = 0;
	for (int d = MAX_STAGES; d >= 0; d--)
		for (int i = 0; i < r->n; i++)
			if (r->st[i]->depth == d)
				order[no++] = r->st[i];

	if (r->cfg.dry_run) {
		printf("# %s: runtime directory %s, data directory %s\n", r->pipeline_name, r->dir, r->data);
		for (int i = 0; i < no; i++) {
			char **av = stage_argv(r, order[i], 1);
			char line[4096];
			argv_text(line, sizeof line, av);
			printf("stage %s %s\n", order[i]->name, line);
			free_argv(av);
		}
		for (int i = 0; i < r->n; i++) {
			struct stage *st = r->st[i];
			for (int lossless = 0; lossless < 2; lossless++) {
				int k, any = 0;
				for (k = 0; k < st->nconsumers; k++)
					any += st->consumers[k]->lossless == lossless;
				if (!any)
					continue;
				printf("pipe %s %s", st->name, lossless ? "=>" : "->");
				for (k = 0; k < st->nconsumers; k++)
					if (st->consumers[k]->lossless == lossless)
						printf(" %s", st->consumers[k]->name);
				printf("\n");
			}
		}
		for (int i = 0; i < r->n; i++)
			printf("restart %s %d %g\n", r->st[i]->name, r->st[i]->restart_max,
			       r->st[i]->restart_delay);
		free_rig(r);
		ms_close_stdout();
		return 0;
	}

	xpath(r->log_path, sizeof r->log_path, "%s/%s-rig.log", r->data, r->timestr);
	r->log = fopen(r->log_path, "ae");
	if (!r->log)
		ms_warn("cannot open the log '%s': %s", r->log_path, strerror(errno));

	ms_err e;
	r->srv = ms_ctl_server_open(r->ctl_path, "rig", MS_CTL_ROUTER, &e);
	if (!r->srv) {
		cleanup_rundir(r);
		ms_die("%s", e.msg);
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (r->sfd < 0) {
		cleanup_rundir(r);
		ms_die("cannot watch signals:");
	}
	signal(SIGPIPE, SIG_IGN);

	say(r, 1, "rig %s: pipeline %s, runtime directory %s, data directory %s, log %s", r->id,
	    r->pipeline_name, r->dir, r->data, r->log_path);
	if (r->cfg.script)
		r->sc.pending_start = true;
	for (int i = 0; i < no && !r->stopping; i++)
		start_stage(r, order[i]);
	loop(r);

	say(r, r->exit_status == 0 ? 1 : 0, "rig %s stopped%s", r->id,
	    r->exit_status == MS_EXIT_FAIL ? " after a failure" : "");
	ms_ctl_server_close(r->srv);
	/* Whatever the stages left running in their process groups goes too. */
	for (int i = 0; i < r->n; i++)
		if (r->st[i]->pgid > 0)
			kill(-r->st[i]->pgid, SIGTERM);
	cleanup_rundir(r);
	close(r->sfd);
	free_rig(r);
	if (r->log)
		fclose(r->log);
	return r->exit_status;
}
