/*
 * ms-capture: real acquisition. Opens a camera (GenICam through Aravis,
 * V4L2, or a recorded file replayed as a camera), applies the settings
 * given, and writes the frames as a frame stream on standard output or as
 * a TIFF stack. Frames come from a pool of buffers that is taken from and
 * given back to, so a slow reader makes the camera drop frames (counted)
 * rather than stall it. With --shm the frames go into a shared-memory
 * ring and the stream carries descriptors, so that a slow reader loses
 * frames (it counts them) and never holds the camera back. With --control
 * the camera takes commands while it runs: status, set and get of its
 * settings, acquisition on and off (ms-control(7)). With -v a statistics
 * line goes to standard error once a second. SIGINT, SIGTERM and SIGHUP end
 * the stream properly; a reader that goes away ends the program quietly.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "camera.h"
#include "cli.h"
#include "ctl.h"
#include "err.h"
#include "frame.h"
#include "frameout.h"
#include "tiffio.h"

#define WAIT_MS 100		/* longest wait for a frame before checking for signals */
#define CTL_WAIT_MS 20		/* the same with --control: commands wait no longer */
#define MAX_SETS 64
#define PIPE_SIZE (1 << 20)	/* Linux's default limit for an unprivileged pipe */

enum {
	OPT_DEVICE = 'd', OPT_FRAMES = 'n', OPT_OUTPUT = 'o',
	OPT_SET = MS_KEY_LONG, OPT_FPS, OPT_LOOP, OPT_FAST, OPT_NM_PER_PX, OPT_BUFFERS,
	OPT_SETTINGS, OPT_LIST, OPT_CONTROL,
};

static const struct ms_opt options[] = {
	{ "device", OPT_DEVICE, "DEVICE", "camera: replay:FILE, v4l2:/dev/videoN, aravis:NAME, aravis:, fake:",
	  "fake: aravis: v4l2: replay:" },
	{ "set", OPT_SET, "NAME=VALUE", "change a camera setting before acquiring (repeatable)", NULL },
	{ "frames", OPT_FRAMES, "N", "frames to write; 0: until stopped or the replay ends (0)", NULL },
	{ "fps", OPT_FPS, "F", "frame rate (--set fps=F)", NULL },
	{ "loop", OPT_LOOP, NULL, "replay: start the file again at its end (--set loop=1)", NULL },
	{ "fast", OPT_FAST, NULL, "replay: do not pace in real time (--set fast=1)", NULL },
	{ "nm-per-px", OPT_NM_PER_PX, "X", "pixel size for the stream header, nm (--set nm_per_px=X)", NULL },
	{ "buffers", OPT_BUFFERS, "N", "buffers in the acquisition pool (16)", NULL },
	{ "settings", OPT_SETTINGS, NULL, "print the camera's settings and values, then exit", NULL },
	{ "list", OPT_LIST, NULL, "list the cameras that can be opened, then exit", NULL },
	{ "output", OPT_OUTPUT, "FILE", "write a TIFF stack instead of a stream on stdout", "file:*.@(tif|tiff)" },
	{ "control", OPT_CONTROL, "PATH", "take control commands at this socket (or FIFO)", "file" },
	MS_FRAMEOUT_OPTS,
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-capture",
	.synopsis = "[-d DEVICE] [--set NAME=VALUE]... [-n N] [--fps F] [--loop] [--shm] [--control PATH]\n"
	            "[-d DEVICE] [--set NAME=VALUE]... [-n N] -o FILE.tif [-v]\n"
	            "[-d DEVICE] [--set NAME=VALUE]... --settings\n"
	            "--list",
	.summary = "Acquire frames from a camera (GenICam through Aravis, V4L2, or a file\n"
	           "replayed as a camera) and write them as a frame stream on standard output,\n"
	           "or as a TIFF stack with -o.",
	.opts = options,
	.epilog = "Without -d, the camera is $MS_CAMERA, else the first one --list finds.\n"
	          "Settings (exposure, gain, fps, roi, binning, format, ... as the device has\n"
	          "them) are listed with their values by --settings.",
};

struct config {
	const char *device;
	const char *sets[MAX_SETS];	/* NAME=VALUE, in command-line order */
	int nsets;
	char *owned[MAX_SETS];		/* the sets made from --fps and friends */
	uint64_t frames;
	bool frames_set;
	long buffers;
	bool settings, list;
	const char *output, *control;
	int verbose;			/* -1 quiet, 0 normal, 1 verbose */
	struct ms_frameout_opts out;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void add_set(struct config *c, const char *name, const char *value)
{
	if (c->nsets == MAX_SETS)
		ms_usage_error("more than %d settings", MAX_SETS);
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = ms_xmalloc(n);
	snprintf(s, n, "%s=%s", name, value);
	c->owned[c->nsets] = s;
	c->sets[c->nsets++] = s;
}

static void free_config(struct config *c)
{
	for (int i = 0; i < c->nsets; i++)
		free(c->owned[i]);
}

static void parse_args(struct config *c, int argc, char **argv)
{
	*c = (struct config){ .buffers = 16 };
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		if (ms_frameout_apply(&c->out, &cli, key, arg))
			continue;
		switch (key) {
		case OPT_DEVICE: c->device = arg; break;
		case OPT_SET:
			if (!strchr(arg, '=') || arg[0] == '=')
				ms_usage_error("invalid value '%s' for --set: expected NAME=VALUE", arg);
			if (c->nsets == MAX_SETS)
				ms_usage_error("more than %d settings", MAX_SETS);
			c->sets[c->nsets++] = arg;
			break;
		case OPT_FRAMES:
			c->frames = (uint64_t)ms_cli_long(&cli, arg, 0, LONG_MAX);
			c->frames_set = true;
			break;
		case OPT_FPS:
			ms_cli_double(&cli, arg, 1e-3, 1e6);
			add_set(c, "fps", arg);
			break;
		case OPT_LOOP: add_set(c, "loop", "1"); break;
		case OPT_FAST: add_set(c, "fast", "1"); break;
		case OPT_NM_PER_PX:
			ms_cli_double(&cli, arg, 0, 1e6);
			add_set(c, "nm_per_px", arg);
			break;
		case OPT_BUFFERS: c->buffers = ms_cli_long(&cli, arg, 2, 4096); break;
		case OPT_SETTINGS: c->settings = true; break;
		case OPT_LIST: c->list = true; break;
		case OPT_OUTPUT: c->output = arg; break;
		case OPT_CONTROL: c->control = arg; break;
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (optind < argc)
		ms_usage_error("unexpected operand '%s'", argv[optind]);
	if (c->list && (c->device || c->nsets || c->settings || c->output || c->control || c->out.shm))
		ms_usage_error("--list takes no other options");
	if (c->settings && (c->output || c->control || c->out.shm))
		ms_usage_error("--settings prints and exits: it takes no -o, --control or --shm");
	if (c->output && c->out.shm)
		ms_usage_error("--shm is for a frame stream on standard output, not a TIFF (-o)");
	if (!c->list && !c->settings && !c->output && isatty(STDOUT_FILENO))
		ms_usage_error("standard output is a terminal: redirect the frame stream or give -o FILE");
}

static void print_device(void *ctx, const char *device, const char *description)
{
	(*(int *)ctx)++;
	printf("%s\t%s\n", device, description);
}

struct first {
	char device[300];
};

static void take_first(void *ctx, const char *device, const char *description)
{
	struct first *f = ctx;
	(void)description;
	/* The fake camera is for tests: never the default. */
	if (!f->device[0] && strcmp(device, "fake:") != 0)
		snprintf(f->device, sizeof f->device, "%s", device);
}

/* -d, else $MS_CAMERA, else the first camera found. */
static const char *choose_device(const struct config *c, struct first *f)
{
	if (c->device)
		return c->device;
	const char *env = getenv("MS_CAMERA");
	if (env && *env)
		return env;
	ms_err e = { "" };
	f->device[0] = '\0';
	if (ms_camera_list(take_first, f, &e) < 0)
		ms_die("%s", e.msg);
	if (!f->device[0])
		ms_die("no camera found; give one with -d (replay:FILE, v4l2:/dev/videoN, aravis:NAME, "
		       "fake:) or set MS_CAMERA");
	return f->device;
}

static void print_settings(struct ms_camera *cam)
{
	ms_err e = { "" };
	for (size_t i = 0; i < ms_camera_nsettings(cam); i++) {
		const struct ms_cam_setting *s = ms_camera_setting(cam, i);
		char value[256];
		if (ms_camera_get(cam, s->name, value, sizeof value, &e) < 0)
			snprintf(value, sizeof value, "?");
		printf("%s\t%s\t%s%s%s\n", s->name, value, s->help,
		       s->flags & MS_CAM_RO ? " [read-only]" : "",
		       s->flags & MS_CAM_IDLE ? " [not while acquiring]" : "");
	}
}

/* The output, for the exit handler: whatever the way out, the ring goes. */
static struct ms_frameout *exit_out;

static void remove_ring_at_exit(void)
{
	ms_frameout_unlink(exit_out);
}

/* A running acquisition, as the control commands see and change it. */
struct live {
	struct ms_camera *cam;
	const char *device;
	struct ms_ctl_server *srv;
	struct ms_frame_info stream;	/* what the output's header promised */
	unsigned nbuffers;
	const char *ring;		/* the shared-memory ring, or NULL */
	bool quit;
	bool failed;			/* the camera would not start again */
	ms_err fail;
	uint64_t written;
	/*
	 * The camera counts frames from 0 at every start; the stream goes on
	 * counting across an "acquisition off" and on, from seq_base.
	 */
	uint64_t seq_base, next_seq;
	struct ms_ctl_rate rate;
};

static const struct ms_cam_setting *setting_named(struct ms_camera *cam, const char *name)
{
	for (size_t i = 0; i < ms_camera_nsettings(cam); i++)
		if (strcmp(ms_camera_setting(cam, i)->name, name) == 0)
			return ms_camera_setting(cam, i);
	return NULL;
}

static int setting_names(struct ms_camera *cam, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < ms_camera_nsettings(cam) && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
		                        ms_camera_setting(cam, i)->name);
	return 0;
}

/* Start acquiring again after a pause, the stream's sequence numbers going on. */
static int resume(struct live *l, ms_err *e)
{
	if (ms_camera_start(l->cam, l->nbuffers, e) < 0)
		return -1;
	l->seq_base = l->next_seq;
	return 0;
}

static bool same_stream(const struct ms_frame_info *a, const struct ms_frame_info *b)
{
	return a->width == b->width && a->height == b->height && a->fmt == b->fmt &&
	       a->nm_per_px == b->nm_per_px;
}

/*
 * One NAME=VALUE from a control command. A setting that can change only
 * while the camera is stopped (region, binning, format) is set between a
 * stop and a start, and only if the frames it makes still fit the stream
 * already going out; otherwise the old value is put back.
 */
static int set_one(struct live *l, const char *word, char *reply, size_t size)
{
	char name[64], names[1024];
	const char *value;
	if (!ms_ctl_kv(word, name, sizeof name, &value))
		return ms_ctl_err(reply, size, MS_CTL_USAGE, "'%s' is not NAME=VALUE", word), -1;
	const struct ms_cam_setting *s = setting_named(l->cam, name);
	if (!s) {
		setting_names(l->cam, names, sizeof names);
		return ms_ctl_err(reply, size, MS_CTL_USAGE, "no setting '%s' (settings: %s)", name,
		                  names), -1;
	}
	ms_err e = { "" };
	bool restart = (s->flags & MS_CAM_IDLE) && ms_camera_acquiring(l->cam);
	char old[256] = "";
	if (ms_camera_get(l->cam, name, old, sizeof old, &e) < 0)
		old[0] = '\0';
	if (restart && ms_camera_stop(l->cam, &e) < 0)
		return ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg), -1;
	int rc = 0;
	if (ms_camera_set(l->cam, name, value, &e) < 0) {
		ms_ctl_err(reply, size, MS_CTL_BAD_VALUE, "%s", e.msg);
		rc = -1;
	} else if (!same_stream(ms_camera_info(l->cam), &l->stream)) {
		const struct ms_frame_info *ni = ms_camera_info(l->cam);
		ms_ctl_err(reply, size, MS_CTL_BUSY, "%s=%s would make %ux%u %s frames of %g nm/px; "
		           "the stream going out is %ux%u %s of %g nm/px (give it with --set when "
		           "ms-capture starts)", name, value, ni->width, ni->height,
		           ms_pixfmt_name(ni->fmt), ni->nm_per_px, l->stream.width, l->stream.height,
		           ms_pixfmt_name(l->stream.fmt), l->stream.nm_per_px);
		rc = -1;
		ms_err ignore;
		if (old[0])
			ms_camera_set(l->cam, name, old, &ignore);
	}
	if (restart && resume(l, &e) < 0) {
		l->failed = true;
		l->fail = e;
		return ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg), -1;
	}
	return rc;
}

/* Append "name=value" for one setting to reply's text; -1 if it does not fit. */
static int append_setting(struct live *l, const char *name, char *text, size_t size, size_t *len,
                          ms_err *e)
{
	char value[256], word[400];
	if (ms_camera_get(l->cam, name, value, sizeof value, e) < 0)
		return -1;
	snprintf(word, sizeof word, "%s=%s", name, value);
	int n = ms_ctl_append_word(text, size, *len, word);
	if (n < 0)
		return ms_err_set(e, "the reply is too long");
	*len = (size_t)n;
	return 0;
}

static void on_command(void *ctx, struct ms_ctl_server *srv, struct ms_ctl_req *q)
{
	struct live *l = ctx;
	const struct ms_ctl_cmd *cmd = q->cmd;
	const char *verb = cmd->verb;
	char *reply = q->reply;
	size_t size = sizeof q->reply;
	(void)srv;
	if (strcmp(verb, "status") == 0) {
		struct ms_cam_health h;
		ms_camera_health(l->cam, &h);
		bool on = ms_camera_acquiring(l->cam);
		char text[MS_CTL_LINE_MAX], word[600];
		int n = snprintf(text, sizeof text, "state=%s frames=%" PRIu64 " fps=%.1f dropped=%"
		                 PRIu64 " timeouts=%" PRIu64 " acquisition=%s width=%u height=%u "
		                 "format=%s", on ? "running" : "paused", l->written,
		                 ms_ctl_rate_get(&l->rate, ms_ctl_now()), h.drops, h.timeouts,
		                 on ? "on" : "off", l->stream.width, l->stream.height,
		                 ms_pixfmt_name(l->stream.fmt));
		size_t len = (size_t)n;
		snprintf(word, sizeof word, "device=%s", l->device);
		int k = ms_ctl_append_word(text, sizeof text, len, word);
		if (k > 0 && l->ring) {
			snprintf(word, sizeof word, "shm=%s", l->ring);
			ms_ctl_append_word(text, sizeof text, (size_t)k, word);
		}
		ms_ctl_ok(reply, size, "%s", text);
	} else if (strcmp(verb, "set") == 0) {
		if (cmd->argc == 0) {
			ms_ctl_err(reply, size, MS_CTL_USAGE, "set NAME=VALUE...");
			return;
		}
		/* In order, as --set: the first that fails stops the rest. */
		for (int i = 0; i < cmd->argc; i++)
			if (set_one(l, cmd->argv[i], reply, size) < 0)
				return;
		/* Answer with what the camera made of them (it may round). */
		char text[MS_CTL_LINE_MAX] = "";
		size_t len = 0;
		ms_err e = { "" };
		for (int i = 0; i < cmd->argc; i++) {
			char name[64];
			const char *value;
			ms_ctl_kv(cmd->argv[i], name, sizeof name, &value);
			if (append_setting(l, name, text, sizeof text, &len, &e) < 0)
				break;
		}
		ms_ctl_ok(reply, size, "%s", text);
	} else if (strcmp(verb, "get") == 0) {
		char text[MS_CTL_LINE_MAX] = "", names[1024];
		size_t len = 0;
		ms_err e = { "" };
		if (cmd->argc == 0) {
			for (size_t i = 0; i < ms_camera_nsettings(l->cam); i++)
				if (append_setting(l, ms_camera_setting(l->cam, i)->name, text, sizeof text,
				                   &len, &e) < 0) {
					ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg);
					return;
				}
		}
		for (int i = 0; i < cmd->argc; i++) {
			if (!setting_named(l->cam, cmd->argv[i])) {
				setting_names(l->cam, names, sizeof names);
				ms_ctl_err(reply, size, MS_CTL_USAGE, "no setting '%s' (settings: %s)",
				           cmd->argv[i], names);
				return;
			}
			if (append_setting(l, cmd->argv[i], text, sizeof text, &len, &e) < 0) {
				ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg);
				return;
			}
		}
		ms_ctl_ok(reply, size, "%s", text);
	} else if (strcmp(verb, "acquisition") == 0) {
		bool on = ms_camera_acquiring(l->cam), want;
		int k = ms_ctl_switch_arg(cmd, &want, reply, size);
		if (k > 0 && want != on) {
			ms_err e = { "" };
			if (want ? resume(l, &e) < 0 : ms_camera_stop(l->cam, &e) < 0) {
				if (want) {
					l->failed = true;
					l->fail = e;
				}
				ms_ctl_err(reply, size, MS_CTL_FAILED, "%s", e.msg);
				return;
			}
			ms_ctl_server_event(l->srv, NULL, "acquisition state=%s", want ? "on" : "off");
		}
		if (k >= 0)
			ms_ctl_ok(reply, size, "acquisition=%s", (k ? want : on) ? "on" : "off");
	} else if (strcmp(verb, "quit") == 0) {
		l->quit = true;
		ms_ctl_ok(reply, size, "stopping");
	} else if (strcmp(verb, "help") == 0) {
		ms_ctl_ok(reply, size, "verbs: status, set NAME=VALUE..., get [NAME...], "
		          "acquisition [on|off], quit, subscribe, unsubscribe, help");
	} else {
		ms_ctl_err(reply, size, MS_CTL_UNKNOWN_VERB, "no verb '%s' (try help)", verb);
	}
}

int main(int argc, char **argv)
{
	struct config c;
	parse_args(&c, argc, argv);
	ms_err e = { "" };

	if (c.list) {
		int found = 0;
		if (ms_camera_list(print_device, &found, &e) < 0)
			ms_die("%s", e.msg);
		if (!found && c.verbose >= 0)
			ms_warn("no cameras found");
		ms_close_stdout();
		return MS_EXIT_OK;
	}

	struct first first;
	const char *device = choose_device(&c, &first);
	struct ms_camera *cam = ms_camera_open(device, &e);
	if (!cam)
		ms_die("%s", e.msg);
	for (int i = 0; i < c.nsets; i++)
		if (ms_camera_assign(cam, c.sets[i], &e) < 0)
			ms_die("%s", e.msg);
	if (c.settings) {
		print_settings(cam);
		ms_camera_close(cam);
		free_config(&c);
		ms_close_stdout();
		return MS_EXIT_OK;
	}

	const struct ms_frame_info info = *ms_camera_info(cam);
	if (c.verbose > 0)
		fprintf(stderr, "%s: %s: %ux%u %s\n", ms_progname(), ms_camera_description(cam),
		        info.width, info.height, ms_pixfmt_name(info.fmt));

	struct ms_frameout *fw = NULL;
	struct ms_tiff_writer *tw = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (c.output) {
		tw = ms_tiff_open_write(c.output, &info, c.frames, &e);
		if (!tw)
			ms_die("%s", e.msg);
	} else {
		/* A reader that goes away ends the run: see EPIPE below. */
		signal(SIGPIPE, SIG_IGN);
		/*
		 * A bigger pipe rides out more of the reader's hiccups and needs
		 * fewer wake-ups per frame; where it cannot grow, it stays as it is.
		 */
		struct stat st;
		if (!c.out.shm && fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
			fcntl(STDOUT_FILENO, F_SETPIPE_SZ, PIPE_SIZE);
		atexit(remove_ring_at_exit);
		fw = ms_frameout_open(STDOUT_FILENO, &info, &c.out, "capture", "standard output", &e);
		exit_out = fw;
		if (!fw) {
			if (errno == EPIPE) {
				ms_camera_close(cam);
				free_config(&c);
				return MS_EXIT_OK;
			}
			ms_die("%s", e.msg);
		}
		if (c.verbose > 0 && ms_frameout_ring(fw))
			fprintf(stderr, "%s: frames in shared-memory ring %s (%u slots)\n", ms_progname(),
			        ms_frameout_ring(fw), ms_frameout_slots(fw));
	}

	struct live l = {
		.cam = cam, .device = device, .stream = info, .nbuffers = (unsigned)c.buffers,
		.ring = fw ? ms_frameout_ring(fw) : NULL,
	};
	if (c.control) {
		const char *name = getenv("MS_STAGE");
		l.srv = ms_ctl_server_open(c.control, name && *name ? name : "camera", 0, &e);
		if (!l.srv)
			ms_die("%s", e.msg);
	}

	if (ms_camera_start(cam, (unsigned)c.buffers, &e) < 0)
		ms_die("%s", e.msg);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	double next_stats = 1.0, first_at = 0, last_at = 0;
	uint64_t warned = 0;
	bool broken_pipe = false, failed = false;
	ms_err cam_err = { "" };
	while ((c.frames == 0 || l.written < c.frames) && !stop_signal && !l.quit) {
		if (l.srv) {
			ms_ctl_server_dispatch(l.srv, on_command, &l);
			if (l.failed) {
				failed = true;
				cam_err = l.fail;
				break;
			}
			if (stop_signal || l.quit)
				break;
			/* Paused: no frames, only commands. */
			if (!ms_camera_acquiring(cam)) {
				ms_ctl_server_wait(l.srv, 0.25, on_command, &l);
				continue;
			}
		}
		struct ms_cam_buf *b;
		int rc = ms_camera_take(cam, &b, l.srv ? CTL_WAIT_MS : WAIT_MS, &cam_err);
		if (rc == MS_CAM_ERR) {
			/* Keep what was recorded: end the output properly, then fail. */
			failed = true;
			break;
		}
		if (rc == MS_CAM_END)
			break;
		if (rc == MS_CAM_FRAME) {
			struct ms_frame f = b->frame;
			f.seq += l.seq_base;
			int wr = tw ? ms_tiff_write(tw, f.pixels, f.t_ns, &e)
			            : ms_frameout_put(fw, &f, &e);
			ms_camera_give(cam, b);
			if (wr < 0) {
				if (fw && errno == EPIPE) {
					broken_pipe = true;
					break;
				}
				ms_die("%s", e.msg);
			}
			l.next_seq = f.seq + 1;
			last_at = ms_seconds_since(&t0);
			if (l.written++ == 0)
				first_at = last_at;
			ms_ctl_rate_add(&l.rate, 1, ms_ctl_now());
		} else if (c.verbose >= 0) {
			struct ms_cam_health h;
			ms_camera_health(cam, &h);
			/* Once per run of timeouts, not once per second of silence. */
			if (h.timeouts > warned && h.consecutive_timeouts == 1)
				ms_warn("no frame from %s within the timeout; still waiting", device);
			warned = h.timeouts;
		}
		if (c.verbose > 0 && ms_seconds_since(&t0) >= next_stats) {
			char line[256];
			ms_camera_stats_line(cam, line, sizeof line);
			fprintf(stderr, "%s: %s\n", ms_progname(), line);
			next_stats += 1.0;
		}
	}
	uint64_t n = l.written;
	double elapsed = ms_seconds_since(&t0);
	/* Stop taking commands before the stream ends: a consumer may go next. */
	ms_ctl_server_close(l.srv);
	if (ms_camera_stop(cam, &e) < 0)
		ms_warn("%s", e.msg);
	struct ms_cam_health h;
	ms_camera_health(cam, &h);

	if (tw) {
		/* An empty TIFF cannot exist: no frames, no file, and say so. */
		if (n == 0) {
			ms_tiff_close_write(tw, &e);
			if (failed)
				ms_die("%s", cam_err.msg);
			ms_die("no frames arrived from %s; %s not written", device, c.output);
		}
		if (ms_tiff_close_write(tw, &e) < 0)
			ms_die("%s", e.msg);
	}
	if (fw) {
		exit_out = NULL;
		if (ms_frameout_finish(fw, &broken_pipe, &e) < 0)
			ms_die("%s", e.msg);
	}
	if (failed)
		ms_die("%s (after %" PRIu64 " frames, which were written)", cam_err.msg, n);
	/* The rate between the first and the last frame, as ms-info reports it. */
	double rate = n > 1 && last_at > first_at ? (double)(n - 1) / (last_at - first_at) : 0.0;
	if (c.verbose >= 0 && !broken_pipe)
		fprintf(stderr, "%s: %" PRIu64 " frames in %.2f s (%.1f frames/s), %" PRIu64 " dropped, %"
		        PRIu64 " timeouts%s\n", ms_progname(), n, elapsed, rate, h.drops, h.timeouts,
		        stop_signal ? " (stopped by a signal)" : l.quit ? " (stopped by a quit command)" : "");
	ms_camera_close(cam);
	free_config(&c);
	ms_close_stdout();
	if (stop_signal)
		return 128 + stop_signal;
	return MS_EXIT_OK;
}
