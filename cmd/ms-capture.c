/*
 * ms-capture: real acquisition. Opens a camera (GenICam through Aravis,
 * V4L2, or a recorded file replayed as a camera), applies the settings
 * given, and writes the frames as a frame stream on standard output or as
 * a TIFF stack. Frames come from a pool of buffers that is taken from and
 * given back to, so a slow reader makes the camera drop frames (counted)
 * rather than stall it. With -v a statistics line goes to standard error
 * once a second. SIGINT and SIGTERM end the stream properly; a reader
 * that goes away ends the program quietly.
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
#include "err.h"
#include "frame.h"
#include "fstream.h"
#include "tiffio.h"

#define WAIT_MS 100		/* longest wait for a frame before checking for signals */
#define MAX_SETS 64
#define PIPE_SIZE (1 << 20)	/* Linux's default limit for an unprivileged pipe */

enum {
	OPT_DEVICE = 'd', OPT_FRAMES = 'n', OPT_OUTPUT = 'o',
	OPT_SET = MS_KEY_LONG, OPT_FPS, OPT_LOOP, OPT_FAST, OPT_NM_PER_PX, OPT_BUFFERS,
	OPT_SETTINGS, OPT_LIST,
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
	MS_OPT_VERBOSE, MS_OPT_QUIET, MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-capture",
	.synopsis = "[-d DEVICE] [--set NAME=VALUE]... [-n N] [--fps F] [--loop] [-o FILE.tif] [-v]\n"
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
	const char *output;
	int verbose;			/* -1 quiet, 0 normal, 1 verbose */
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
		case 'v': c->verbose = 1; break;
		case 'q': c->verbose = -1; break;
		}
	}
	if (optind < argc)
		ms_usage_error("unexpected operand '%s'", argv[optind]);
	if (c->list && (c->device || c->nsets || c->settings || c->output))
		ms_usage_error("--list takes no other options");
	if (c->settings && c->output)
		ms_usage_error("--settings prints and exits: it takes no -o");
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

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
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

	struct ms_fwriter *fw = NULL;
	struct ms_tiff_writer *tw = NULL;
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
		if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
			fcntl(STDOUT_FILENO, F_SETPIPE_SZ, PIPE_SIZE);
		fw = ms_fwriter_open(STDOUT_FILENO, &info, "standard output", &e);
		if (!fw) {
			if (errno == EPIPE) {
				ms_camera_close(cam);
				free_config(&c);
				return MS_EXIT_OK;
			}
			ms_die("%s", e.msg);
		}
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (ms_camera_start(cam, (unsigned)c.buffers, &e) < 0)
		ms_die("%s", e.msg);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	double next_stats = 1.0, first_at = 0, last_at = 0;
	uint64_t n = 0, warned = 0;
	bool broken_pipe = false, failed = false;
	ms_err cam_err = { "" };
	while ((c.frames == 0 || n < c.frames) && !stop_signal) {
		struct ms_cam_buf *b;
		int rc = ms_camera_take(cam, &b, WAIT_MS, &cam_err);
		if (rc == MS_CAM_ERR) {
			/* Keep what was recorded: end the output properly, then fail. */
			failed = true;
			break;
		}
		if (rc == MS_CAM_END)
			break;
		if (rc == MS_CAM_FRAME) {
			int wr = tw ? ms_tiff_write(tw, b->frame.pixels, b->frame.t_ns, &e)
			            : ms_fwriter_put(fw, &b->frame, &e);
			ms_camera_give(cam, b);
			if (wr < 0) {
				if (fw && errno == EPIPE) {
					broken_pipe = true;
					break;
				}
				ms_die("%s", e.msg);
			}
			last_at = seconds_since(&t0);
			if (n++ == 0)
				first_at = last_at;
		} else if (c.verbose >= 0) {
			struct ms_cam_health h;
			ms_camera_health(cam, &h);
			/* Once per run of timeouts, not once per second of silence. */
			if (h.timeouts > warned && h.consecutive_timeouts == 1)
				ms_warn("no frame from %s within the timeout; still waiting", device);
			warned = h.timeouts;
		}
		if (c.verbose > 0 && seconds_since(&t0) >= next_stats) {
			char line[256];
			ms_camera_stats_line(cam, line, sizeof line);
			fprintf(stderr, "%s: %s\n", ms_progname(), line);
			next_stats += 1.0;
		}
	}
	double elapsed = seconds_since(&t0);
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
		if (broken_pipe) {
			ms_fwriter_abandon(fw);
		} else if (ms_fwriter_close(fw, &e) < 0) {
			if (errno != EPIPE)
				ms_die("%s", e.msg);
			broken_pipe = true;
		}
	}
	if (failed)
		ms_die("%s (after %" PRIu64 " frames, which were written)", cam_err.msg, n);
	/* The rate between the first and the last frame, as ms-info reports it. */
	double rate = n > 1 && last_at > first_at ? (double)(n - 1) / (last_at - first_at) : 0.0;
	if (c.verbose >= 0 && !broken_pipe)
		fprintf(stderr, "%s: %" PRIu64 " frames in %.2f s (%.1f frames/s), %" PRIu64 " dropped, %"
		        PRIu64 " timeouts%s\n", ms_progname(), n, elapsed, rate, h.drops, h.timeouts,
		        stop_signal ? " (stopped by a signal)" : "");
	ms_camera_close(cam);
	free_config(&c);
	ms_close_stdout();
	if (stop_signal)
		return 128 + stop_signal;
	return MS_EXIT_OK;
}
