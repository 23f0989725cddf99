/*
 * t-recorder: the saving model. Mode names; bucket arithmetic; file names
 * in local time under fixed TZ rules (not MagScope's UTC-5); name
 * collisions; recordings (saving on, folder change, rotation change, new
 * file) and rotation with synthetic timestamps crossing buckets; each data
 * mode making exactly its files; the video files read back by tifffile
 * (full frames TYX, ROI video as an ImageJ hyperstack TCYX with one label
 * per frame) and the tracks files by h5py; files readable while the
 * recorder writes them (h5py swmr=True, ms-info, tifffile); failures that
 * close a file and continue in a suffixed one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/tap.h"
#include "recorder.h"

#define S0 UINT64_C(1700000000000000000)	/* 2023-11-14 22:13:20 UTC */
#define SEC UINT64_C(1000000000)
#define W 64
#define H 48
#define RS 16		/* ROI size */
#define NROI 3
#define NF 4		/* frames per batch */

/* ----------------------------------------------------------- fixtures */

static uint64_t fake_now(void *ctx)
{
	return *(uint64_t *)ctx;
}

static const struct ms_roi rois[NROI] = {{1, 0, 0}, {2, 40, 30}, {7, 56, 40}};	/* the last sticks out */

/* A batch of NF frames at t0, t0 + 10 ms, ...: pixels, ROIs, tracks. */
struct tb {
	uint16_t px[NF][W * H];
	struct ms_frame fr[NF];
	uint64_t t[NF];
	size_t off[NF + 1];
	struct ms_track rows[NF * NROI];
	struct ms_track_batch tracks;
	struct ms_rec_batch b;
};

/* Pixel (frame time t, y, x), recomputed in Python below. */
static uint16_t pix(uint64_t t, unsigned y, unsigned x)
{
	return (uint16_t)((t / 10000000u) * 7 + y * 64 + x);
}

static void make_batch(struct tb *b, uint64_t t0, size_t nrois, uint32_t bead_add)
{
	for (size_t f = 0; f < NF; f++) {
		b->t[f] = t0 + f * 10000000u;
		for (unsigned y = 0; y < H; y++)
			for (unsigned x = 0; x < W; x++)
				b->px[f][y * W + x] = pix(b->t[f], y, x);
		b->fr[f] = (struct ms_frame){
			.seq = f, .t_ns = b->t[f],
			.info = {.width = W, .height = H, .fmt = MS_PIX_U16, .nm_per_px = 100},
			.pixels = b->px[f],
		};
		b->off[f] = f * nrois;
		for (size_t k = 0; k < nrois; k++)
			b->rows[f * nrois + k] = (struct ms_track){
				.frame = f, .t_ns = b->t[f], .bead = rois[k].id + bead_add,
				.x_nm = (double)f, .y_nm = (double)k, .z_nm = 1.5,
				.roi_x0 = rois[k].x0, .roi_y0 = rois[k].y0,
			};
	}
	b->off[NF] = NF * nrois;
	b->tracks = (struct ms_track_batch){NF, b->t, b->off, b->rows};
	b->b = (struct ms_rec_batch){
		.nframes = NF, .frames = b->fr, .rois = rois, .nrois = nrois, .roi_size = RS,
		.tracks = &b->tracks,
	};
}

static int put_at(struct ms_recorder *r, uint64_t t0, ms_err *e)
{
	static struct tb b;
	make_batch(&b, t0, NROI, 0);
	return ms_recorder_put(r, &b.b, e);
}

static char *dir(const char *name)
{
	static char buf[4][600];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tap_tmpdir(), name);
	return buf[k];
}

/* The names in folder, sorted, joined by '|'. */
static char *listing(const char *folder)
{
	static char out[4096];
	struct dirent **ents;
	out[0] = '\0';
	int n = scandir(folder, &ents, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			if (out[0])
				strcat(out, "|");
			strncat(out, ents[i]->d_name, sizeof out - strlen(out) - 2);
		}
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
	return out;
}

/* Run Python (numpy, h5py, tifffile imported) with argv[1] = arg; its stdout. */
static char *py(const char *code, const char *arg)
{
	static char out[4096];
	char script[600], cmd[1400];
	snprintf(script, sizeof script, "%s/t.py", tap_tmpdir());
	FILE *f = fopen(script, "w");
	fprintf(f, "import sys, glob, os, h5py, tifffile, numpy as np\n%s", code);
	fclose(f);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' 2>&1", script, arg);
	tap_capture(cmd, out, sizeof out);
	return out;
}

/* The attributes and counts of every tracks file in a folder, one line each. */
static const char py_h5_summary[] =
	"for p in sorted(glob.glob(sys.argv[1] + '/*.h5')):\n"
	"    g = h5py.File(p, 'r', swmr=True)['tracking']; a = g.attrs\n"
	"    print(os.path.basename(p), int(a['recording_id']), (int(a['recording_start_ns']) - S0) // 10**9,\n"
	"          (int(a['file_start_ns']) - S0) // 10**9, int(a['rotation_interval_ns']) // 10**9,\n"
	"          g['frame_timestamps_ns'].shape[0], list(g['batch_sequence'][()]),\n"
	"          'roi' if 'roi_positions_px' in g else 'noroi')\n";

static char *h5_summary(const char *folder)
{
	char code[2048];
	snprintf(code, sizeof code, "S0 = %llu\n%s", (unsigned long long)S0, py_h5_summary);
	return py(code, folder);
}

/* ----------------------------------------------------------- the tests */

static void test_modes(void)
{
	static const char *const labels[] = {"Track", "Track and Video (ROIs)", "Track and Video (Full)",
	                                     "Video (ROIs)", "Video (Full)"};
	static const char *const words[] = {"track", "track+roi-video", "track+full-video", "roi-video",
	                                    "full-video"};
	static const int want[][3] = {{1, 0, 0}, {1, 1, 0}, {1, 0, 1}, {0, 1, 0}, {0, 0, 1}};
	int bad = 0;
	for (int m = 0; m < MS_REC_NMODES; m++) {
		bad += strcmp(ms_rec_mode_label(m), labels[m]) != 0;
		bad += strcmp(ms_rec_mode_word(m), words[m]) != 0 || strcmp(ms_rec_mode_words[m], words[m]);
		bad += ms_rec_mode_parse(words[m]) != m || ms_rec_mode_parse(labels[m]) != m;
		bad += ms_rec_mode_tracks(m) != want[m][0] || ms_rec_mode_roi_video(m) != want[m][1] ||
		       ms_rec_mode_full_video(m) != want[m][2];
	}
	tap_int(bad, 0, "modes: MagScope's labels, short words, parse both, what each saves");
	tap_ok(ms_rec_mode_words[MS_REC_NMODES] == NULL, "mode words are NULL-terminated");
	tap_ok(ms_rec_mode_parse("VIDEO (full)") == MS_REC_FULL_VIDEO && ms_rec_mode_parse("Track+ROI-Video") == 1,
	       "parse ignores case (MagScope 0.4 renamed lowercase values)");
	tap_ok(ms_rec_mode_parse("video") == -1 && ms_rec_mode_parse("") == -1 && ms_rec_mode_parse(NULL) == -1,
	       "parse refuses other words");
}

static void test_buckets(void)
{
	const uint64_t D = 60 * 60 * SEC;
	struct {
		uint64_t first, d, want;
	} c[] = {
		{S0, D, S0},
		{S0 + 1, D, S0},
		{S0 + D - 1, D, S0},
		{S0 + D, D, S0 + D},
		{S0 + 5 * D / 2, D, S0 + 2 * D},
		{S0 + 1000 * D + 7, D, S0 + 1000 * D},
		{S0 - 1, D, S0},		/* before the recording: its first bucket */
		{S0 - 3 * D, D, S0},
		{S0 + 7 * D, 0, S0},		/* rotation off */
		{S0 + 61 * SEC, 60 * SEC, S0 + 60 * SEC},
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		uint64_t got = ms_rec_bucket_start(S0, c[i].first, c[i].d);
		if (got != c[i].want) {
			bad++;
			tap_diag("bucket(%lld s after start, D %llu s) = %lld s, want %lld s",
			         (long long)(c[i].first - S0) / (long long)SEC,
			         (unsigned long long)(c[i].d / SEC), (long long)(got - S0) / (long long)SEC,
			         (long long)(c[i].want - S0) / (long long)SEC);
		}
	}
	tap_int(bad, 0, "bucket = start + floor((first - start) / D) * D; earlier frames and no "
	        "rotation: the start");
}

static void test_stamps(void)
{
	char b[128];
	const uint64_t t = S0 + 123456789;	/* 22:13:20.123456789 UTC */
	setenv("TZ", "UTC0", 1);
	tap_str(ms_rec_stamp(b, sizeof b, "Tracking Data", t, 6), "Tracking Data 2023-11-14 22-13-20.123456",
	        "UTC: tracks stamp with microseconds");
	tap_str(ms_rec_stamp(b, sizeof b, "Video", t, 3), "Video 2023-11-14 22-13-20.123", "UTC: video "
	        "stamp with milliseconds");
	setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1);
	tap_str(ms_rec_stamp(b, sizeof b, "Video", t, 3), "Video 2023-11-14 17-13-20.123",
	        "New York in November (EST, UTC-5)");
	/* 1690000000 = 2023-07-22 04:26:40 UTC: EDT is UTC-4, and MagScope's fixed
	 * UTC-5 would give 23-26-40 of the day before. */
	tap_str(ms_rec_stamp(b, sizeof b, "Video", UINT64_C(1690000000) * SEC, 3),
	        "Video 2023-07-22 00-26-40.000", "New York in July (EDT, UTC-4), not a fixed UTC-5");
	setenv("TZ", "JST-9", 1);
	tap_str(ms_rec_stamp(b, sizeof b, "Tracking Data", t, 6), "Tracking Data 2023-11-15 07-13-20.123456",
	        "Tokyo: the date is the frame's local date (already the 15th), not today's");
	tap_str(ms_rec_stamp(b, sizeof b, "Video", 0, 3), "Video 1970-01-01 09-00-00.000", "t = 0 in Tokyo");
	setenv("TZ", "UTC0", 1);
}

/* Saving into folder in mode, rotating every rotation_min minutes, on the
 * fake clock at *clock. */
static struct ms_recorder_opts saving_opts(const char *folder, enum ms_rec_mode mode,
					   unsigned rotation_min, uint64_t *clock)
{
	struct ms_recorder_opts o;
	ms_recorder_opts_default(&o);
	o.folder = folder;
	o.saving = true;
	o.mode = mode;
	o.rotation_min = rotation_min;
	o.now = fake_now;
	o.now_ctx = clock;
	return o;
}

/*
 * Rotation every minute, timestamps crossing buckets, a late batch, a
 * frame from before the start; then a new file, a change of rotation, a
 * folder change, saving off and on: the files, their recording ids,
 * starts, buckets, frames and batch sequences.
 */
static void test_rotation(void)
{
	uint64_t clock = S0;
	struct ms_recorder_opts o = saving_opts(dir("rot"), MS_REC_TRACK, 1, &clock);
	ms_err e = {""};
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	if (!tap_ok(r != NULL, "recorder: saving into %s %s", o.folder, e.msg))
		return;
	struct ms_recorder_status s;
	ms_recorder_status(r, &s);
	tap_ok(s.saving && s.recording_id == 1 && s.recording_start_ns == S0 && !s.tracks_path &&
	       s.file_start_ns == 0, "saving on at creation: recording 1 starts at the clock, no file yet");
	int rc = 0;
	rc |= put_at(r, S0 - 2 * SEC, &e);	/* before the start: first bucket */
	rc |= put_at(r, S0 + 50 * SEC, &e);
	ms_recorder_status(r, &s);
	tap_ok(s.tracks_path && strstr(s.tracks_path, "Tracking Data 2023-11-14 22-13-20.000000.h5") &&
	       s.tracks_frames == 2 * NF && s.tracks_rows == 2 * NF * NROI && s.file_start_ns == S0,
	       "status: file of bucket 0, %llu frames, %llu rows", (unsigned long long)s.tracks_frames,
	       (unsigned long long)s.tracks_rows);
	rc |= put_at(r, S0 + 61 * SEC, &e);	/* bucket 1 */
	rc |= put_at(r, S0 + 59 * SEC, &e);	/* late: the current file */
	rc |= put_at(r, S0 + 200 * SEC, &e);	/* bucket 3 */
	tap_int(rc, 0, "5 batches across buckets 0, 1, 3 %s", e.msg);

	clock = S0 + 1000 * SEC;
	tap_int(ms_recorder_new_file(r, &e), 0, "new file");
	rc = put_at(r, S0 + 1001 * SEC, &e);
	clock = S0 + 2000 * SEC;
	rc |= ms_recorder_set_rotation(r, 1, &e);	/* unchanged: same recording */
	rc |= put_at(r, S0 + 1030 * SEC, &e);
	rc |= ms_recorder_set_rotation(r, 0, &e);	/* changed: recording 3, no rotation */
	rc |= put_at(r, S0 + 2001 * SEC, &e);
	rc |= put_at(r, S0 + 5000 * SEC, &e);		/* no rotation: same file */
	tap_int(rc, 0, "new file, rotation unchanged then off %s", e.msg);

	tap_str(h5_summary(dir("rot")),
	        "Tracking Data 2023-11-14 22-13-20.000000.h5 1 0 0 60 8 [0, 1] roi\n"
	        "Tracking Data 2023-11-14 22-14-20.000000.h5 1 0 60 60 8 [2, 3] roi\n"
	        "Tracking Data 2023-11-14 22-16-20.000000.h5 1 0 180 60 4 [4] roi\n"
	        "Tracking Data 2023-11-14 22-30-00.000000.h5 2 1000 1000 60 8 [5, 6] roi\n"
	        "Tracking Data 2023-11-14 22-46-40.000000.h5 3 2000 2000 0 8 [7, 8] roi",
	        "h5py: file per bucket; names, recording id, start, bucket (s), rotation (s), "
	        "frames, batch sequence");

	/* Folder change and ROI-positions change while saving: new recordings. */
	clock = S0 + 3000 * SEC;
	rc = ms_recorder_set_folder(r, dir("rot2"), &e);
	rc |= put_at(r, S0 + 3000 * SEC, &e);
	clock = S0 + 3100 * SEC;
	rc |= ms_recorder_set_roi_positions(r, false, &e);
	rc |= put_at(r, S0 + 3100 * SEC, &e);
	/* Saving off: nothing is written, files are closed; on: a new recording. */
	rc |= ms_recorder_set_saving(r, false, &e);
	ms_recorder_status(r, &s);
	tap_ok(!s.saving && !s.tracks_path && s.file_start_ns == 0, "saving off closes the file");
	rc |= put_at(r, S0 + 3200 * SEC, &e);
	clock = S0 + 3300 * SEC;
	rc |= ms_recorder_set_saving(r, true, &e);
	rc |= put_at(r, S0 + 3301 * SEC, &e);
	tap_int(rc, 0, "folder change, ROI positions off, saving off and on %s", e.msg);
	tap_str(h5_summary(dir("rot2")),
	        "Tracking Data 2023-11-14 23-03-20.000000.h5 4 3000 3000 0 4 [9] roi\n"
	        "Tracking Data 2023-11-14 23-05-00.000000.h5 5 3100 3100 0 4 [10] noroi\n"
	        "Tracking Data 2023-11-14 23-08-20.000000.h5 6 3300 3300 0 4 [11] noroi",
	        "h5py: recordings 4, 5, 6 in the new folder; nothing saved while off");
	tap_int(ms_recorder_set_saving(r, false, &e), 0, "saving off");
	e.msg[0] = '\0';
	tap_ok(ms_recorder_new_file(r, &e) == -1 && strstr(e.msg, "saving is off"),
	       "new file while not saving is refused: %s", e.msg);
	ms_recorder_status(r, &s);
	tap_ok(s.files == 8 && s.frames_saved == 12 * NF && s.failures == 0 && s.bytes > 9 * 1000,
	       "status totals: %llu files, %llu frames, %llu bytes, %llu failures",
	       (unsigned long long)s.files, (unsigned long long)s.frames_saved,
	       (unsigned long long)s.bytes, (unsigned long long)s.failures);
	tap_int(ms_recorder_close(r, &e), 0, "close");
}

static void test_collisions(void)
{
	uint64_t clock = S0 + 123456789;
	const char *f = dir("coll");
	mkdir(f, 0755);
	char p[700];
	const char *names[] = {"Tracking Data 2023-11-14 22-13-20.123456.h5",
	                       "Tracking Data 2023-11-14 22-13-20.123456 (1).h5",
	                       "Video 2023-11-14 22-13-20.123.tif"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", f, names[i]);
		close(open(p, O_CREAT | O_WRONLY, 0644));
	}
	struct ms_recorder_opts o = saving_opts(f, MS_REC_TRACK_FULL_VIDEO, MS_REC_ROTATION_DEFAULT,
						  &clock);
	ms_err e = {""};
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	int rc = !r || put_at(r, S0 + 2 * SEC, &e) || ms_recorder_close(r, &e);
	tap_int(rc, 0, "recorder over existing names %s", e.msg);
	tap_str(listing(f),
	        "Tracking Data 2023-11-14 22-13-20.123456 (1).h5|"
	        "Tracking Data 2023-11-14 22-13-20.123456 (2).h5|"
	        "Tracking Data 2023-11-14 22-13-20.123456.h5|"
	        "Video 2023-11-14 22-13-20.123 (1).tif|"
	        "Video 2023-11-14 22-13-20.123.tif",
	        "collisions: ' (2)' after ' (1)', ' (1)' for the video; nothing overwritten");
	snprintf(p, sizeof p, "%s/%s", f, names[0]);
	struct stat st;
	tap_ok(stat(p, &st) == 0 && st.st_size == 0, "the existing file is untouched");
}

/*
 * Python check of a folder written by test_mode: every video file's shape,
 * axes, dtype, ImageJ channels/frames, labels and pixels against the
 * formulas of make_batch, and every tracks file's frame count.
 */
static const char py_mode_check[] =
	"def pix(t, y, x): return ((t // 10000000) * 7 + y * 64 + x).astype(np.uint16)\n"
	"rois = [(0, 0), (40, 30), (56, 40)]\n"
	"out = []\n"
	"for p in sorted(glob.glob(sys.argv[1] + '/*')):\n"
	"    n = os.path.basename(p)\n"
	"    if p.endswith('.h5'):\n"
	"        g = h5py.File(p, 'r')['tracking']\n"
	"        out.append('%s: %d frames, %d rows' % (n[:13], g['frame_timestamps_ns'].shape[0], g['bead_ids'].shape[0]))\n"
	"        continue\n"
	"    t = tifffile.TiffFile(p); s = t.series[0]; a = s.asarray(); m = t.imagej_metadata\n"
	"    ts = [int(l.split('.')[0]) * 10**9 + int(l.split('.')[1]) for l in m['Labels']]\n"
	"    y, x = np.mgrid[0:48, 0:64]\n"
	"    full = np.stack([pix(int(tt), y, x) for tt in ts])\n"
	"    if s.axes == 'TCYX':\n"
	"        pad = np.zeros((len(ts), 48 + 16, 64 + 16), np.uint16); pad[:, :48, :64] = full\n"
	"        want = np.stack([pad[:, y0:y0 + 16, x0:x0 + 16] for x0, y0 in rois], axis=1)\n"
	"    else:\n"
	"        want = full\n"
	"    ok = a.shape == want.shape and np.array_equal(a, want)\n"
	"    out.append('%s: %s %s %s channels=%s frames=%s labels=%d pixels=%s big=%s res=%s' % (n[:5], s.axes,\n"
	"        a.shape, a.dtype, m.get('channels'), m.get('frames'), len(ts), ok, t.is_bigtiff,\n"
	"        t.pages[0].tags['XResolution'].value))\n"
	"print('; '.join(out))\n";

static void test_mode(enum ms_rec_mode m, const char *want)
{
	uint64_t clock = S0;
	char name[64];
	snprintf(name, sizeof name, "mode-%s", ms_rec_mode_word(m));
	struct ms_recorder_opts o = saving_opts(dir(name), m, MS_REC_ROTATION_DEFAULT, &clock);
	ms_err e = {""};
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	int rc = !r || put_at(r, S0 + SEC, &e) || put_at(r, S0 + 2 * SEC, &e);
	struct ms_recorder_status s;
	if (r)
		ms_recorder_status(r, &s);
	rc |= ms_recorder_close(r, &e);
	tap_int(rc, 0, "%s: 2 batches %s", ms_rec_mode_word(m), e.msg);
	tap_ok(r && s.video_frames == (ms_rec_mode_tracks(m) && !ms_rec_mode_full_video(m) &&
	                               !ms_rec_mode_roi_video(m) ? 0 : 2 * NF),
	       "%s: status counts %llu video frames", ms_rec_mode_word(m),
	       (unsigned long long)s.video_frames);
	tap_str(py(py_mode_check, o.folder), want, "%s: exactly its files, read back", ms_rec_mode_word(m));
}

static void test_modes_files(void)
{
	const char *h5 = "Tracking Data: 8 frames, 24 rows";
	const char *full = "Video: TYX (8, 48, 64) uint16 channels=None frames=8 labels=8 pixels=True "
	                   "big=False res=(1, 100)";
	const char *roi = "Video: TCYX (8, 3, 16, 16) uint16 channels=3 frames=8 labels=8 pixels=True "
	                  "big=False res=(1, 100)";
	char want[512];
	test_mode(MS_REC_TRACK, h5);
	snprintf(want, sizeof want, "%s; %s", h5, roi);
	test_mode(MS_REC_TRACK_ROI_VIDEO, want);
	snprintf(want, sizeof want, "%s; %s", h5, full);
	test_mode(MS_REC_TRACK_FULL_VIDEO, want);
	test_mode(MS_REC_ROI_VIDEO, roi);
	test_mode(MS_REC_FULL_VIDEO, full);
}

/*
 * Video across buckets and geometry changes; a mode change mid-recording;
 * the video and tracks files read while the recorder still writes them.
 */
static void test_video_files(void)
{
	uint64_t clock = S0;
	struct ms_recorder_opts o = saving_opts(dir("vid"), MS_REC_TRACK_ROI_VIDEO, 1, &clock);
	ms_err e = {""};
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	static struct tb b;
	make_batch(&b, S0 + SEC, NROI, 0);
	int rc = !r || ms_recorder_put(r, &b.b, &e);
	make_batch(&b, S0 + 2 * SEC, NROI, 0);
	rc |= ms_recorder_put(r, &b.b, &e);

	/* Both files readable now, by other processes, while open here. */
	struct ms_recorder_status s;
	ms_recorder_status(r, &s);
	char code[1024];
	snprintf(code, sizeof code,
	         "g = h5py.File(glob.glob(sys.argv[1] + '/*.h5')[0], 'r', swmr=True)['tracking']\n"
	         "t = tifffile.TiffFile(glob.glob(sys.argv[1] + '/*.tif')[0]); s = t.series[0]\n"
	         "print(g['batch_sequence'].shape[0], g['frame_timestamps_ns'].shape[0], s.axes, s.shape)\n");
	tap_str(py(code, o.folder), "2 8 TCYX (8, 3, 16, 16)", "while recording: h5py (swmr=True) sees 2 "
	        "batches, tifffile 8 frames of 3 ROIs");
	char cmd[1200];
	const char *bin = getenv("MS_BIN");
	snprintf(cmd, sizeof cmd, "'%s/ms-info' '%s' | grep -x 'batches.2' >/dev/null",
	         bin ? bin : "bin", s.tracks_path);
	fflush(stdout);
	tap_ok(system(cmd) == 0, "while recording: ms-info reads the tracks file (2 batches)");
	make_batch(&b, S0 + 3 * SEC, NROI, 0);
	rc |= ms_recorder_put(r, &b.b, &e);
	tap_str(py(code, o.folder), "3 12 TCYX (12, 3, 16, 16)", "and sees the third batch");

	/* Two ROIs from now on: a new hyperstack in the same bucket. */
	make_batch(&b, S0 + 4 * SEC, 2, 0);
	rc |= ms_recorder_put(r, &b.b, &e);
	/* The next bucket. */
	make_batch(&b, S0 + 70 * SEC, 2, 0);
	rc |= ms_recorder_put(r, &b.b, &e);
	/* Full video from here: the ROI video closes, the tracks file goes on. */
	rc |= ms_recorder_set_mode(r, MS_REC_TRACK_FULL_VIDEO, &e);
	make_batch(&b, S0 + 80 * SEC, 2, 0);
	rc |= ms_recorder_put(r, &b.b, &e);
	rc |= ms_recorder_set_mode(r, MS_REC_TRACK, &e);
	make_batch(&b, S0 + 90 * SEC, 2, 0);
	rc |= ms_recorder_put(r, &b.b, &e);
	rc |= ms_recorder_close(r, &e);
	tap_int(rc, 0, "ROI count change, a new bucket, mode changes %s", e.msg);
	tap_str(py("for p in sorted(glob.glob(sys.argv[1] + '/*')):\n"
	           "    if p.endswith('.tif'):\n"
	           "        s = tifffile.TiffFile(p).series[0]; d = '%s %s' % (s.axes, s.shape)\n"
	           "    else:\n"
	           "        d = h5py.File(p, 'r')['tracking/frame_timestamps_ns'].shape[0]\n"
	           "    print(os.path.basename(p), d)\n", o.folder),
	        "Tracking Data 2023-11-14 22-13-20.000000.h5 16\n"
	        "Tracking Data 2023-11-14 22-14-20.000000.h5 12\n"
	        "Video 2023-11-14 22-13-20.000 (1).tif TCYX (4, 2, 16, 16)\n"
	        "Video 2023-11-14 22-13-20.000.tif TCYX (12, 3, 16, 16)\n"
	        "Video 2023-11-14 22-14-20.000 (1).tif TYX (4, 48, 64)\n"
	        "Video 2023-11-14 22-14-20.000.tif TCYX (4, 2, 16, 16)",
	        "files per bucket and per geometry, named by the bucket");
}

/*
 * Failures: a batch the tracks writer refuses (a bead id past 65535)
 * closes the file and the next batch opens ' (1)'; writes that fail for
 * real (RLIMIT_FSIZE, in a child) are reported, and once the disk
 * "has room" again the recorder goes on in new files.
 */
static void test_failures(void)
{
	uint64_t clock = S0;
	struct ms_recorder_opts o = saving_opts(dir("fail"), MS_REC_TRACK, MS_REC_ROTATION_DEFAULT,
						  &clock);
	ms_err e = {""};
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	static struct tb b;
	int rc = !r || put_at(r, S0 + SEC, &e);
	make_batch(&b, S0 + 2 * SEC, NROI, 70000);
	e.msg[0] = '\0';
	int bad = ms_recorder_put(r, &b.b, &e);
	tap_ok(bad == -1 && strstr(e.msg, "70001") && strstr(e.msg, "Tracking Data"),
	       "refused batch reported: %s", e.msg);
	rc |= put_at(r, S0 + 3 * SEC, &e);
	struct ms_recorder_status s;
	ms_recorder_status(r, &s);
	tap_ok(s.tracks_path && strstr(s.tracks_path, " (1).h5") && s.failures == 1,
	       "the next batch went to a new file: %s", s.tracks_path ? s.tracks_path : "none");
	rc |= ms_recorder_close(r, &e);
	tap_int(rc, 0, "the good batches were written %s", e.msg);
	tap_str(h5_summary(o.folder),
	        "Tracking Data 2023-11-14 22-13-20.000000 (1).h5 1 0 0 3600 4 [2] roi\n"
	        "Tracking Data 2023-11-14 22-13-20.000000.h5 1 0 0 3600 4 [0] roi",
	        "h5py: the first file kept its batch, the refused one used up sequence 1");

	char msg[600];
	snprintf(msg, sizeof msg, "%s/fsize.msg", tap_tmpdir());
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		clock = S0;
		o.folder = dir("efbig");
		o.mode = MS_REC_FULL_VIDEO;
		struct ms_recorder *c = ms_recorder_new(&o, &e);
		if (!c || put_at(c, S0 + SEC, &e))
			_exit(3);
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit old, rl;
		getrlimit(RLIMIT_FSIZE, &old);
		rl = old;
		rl.rlim_cur = 40000;	/* 1024 + 4 frames of 6144 bytes, short of 3 more */
		setrlimit(RLIMIT_FSIZE, &rl);
		e.msg[0] = '\0';
		int frc = put_at(c, S0 + 2 * SEC, &e);
		FILE *f = fopen(msg, "w");
		fprintf(f, "%d %s", frc, e.msg);
		fclose(f);
		setrlimit(RLIMIT_FSIZE, &old);
		if (put_at(c, S0 + 3 * SEC, &e) || ms_recorder_close(c, &e))
			_exit(4);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: failing writes, then on in new files "
	       "(status %#x)", st);
	char buf[600] = "";
	FILE *f = fopen(msg, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	tap_ok(strncmp(buf, "-1 ", 3) == 0 && strstr(buf, "File too large") && strstr(buf, "Video"),
	       "the failure names the video file and the cause: %s", buf + 3);
	tap_str(py("for p in sorted(glob.glob(sys.argv[1] + '/*')):\n"
	           "    if p.endswith('.tif'):\n"
	           "        d = tifffile.TiffFile(p).series[0].shape[0]\n"
	           "    else:\n"
	           "        d = h5py.File(p, 'r')['tracking/frame_timestamps_ns'].shape[0]\n"
	           "    print(os.path.basename(p), d)\n", dir("efbig")),
	        "Video 2023-11-14 22-13-20.000 (1).tif 4\n"
	        "Video 2023-11-14 22-13-20.000.tif 4",
	        "the video that failed reads up to its last good batch; the next batch is in ' (1)'");
}

/*
 * A video file whose closing fails (its directories do not fit under the
 * file-size limit): the closer thread's failure is reported by a later
 * call (the next put, or close), once, and the file still reads up to its
 * last batch.
 */
static void test_close_failure(void)
{
	char msg[600];
	snprintf(msg, sizeof msg, "%s/close.msg", tap_tmpdir());
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		uint64_t clock = S0;
		struct ms_recorder_opts o = saving_opts(dir("closefail"), MS_REC_FULL_VIDEO, 1, &clock);
		ms_err e = {""};
		struct ms_recorder *c = ms_recorder_new(&o, &e);
		if (!c || put_at(c, S0 + SEC, &e))
			_exit(3);
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit old, rl;
		getrlimit(RLIMIT_FSIZE, &old);
		rl = old;
		rl.rlim_cur = 26000;	/* 4 frames fit (25600 bytes), their directories do not */
		setrlimit(RLIMIT_FSIZE, &rl);
		int rc1 = put_at(c, S0 + 70 * SEC, &e);	/* the next bucket: the first file closes */
		usleep(100000);
		setrlimit(RLIMIT_FSIZE, &old);
		ms_err e2 = {""}, e3 = {""};
		int rc2 = put_at(c, S0 + 71 * SEC, &e2);
		int rc3 = ms_recorder_close(c, &e3);
		FILE *f = fopen(msg, "w");
		fprintf(f, "%d %d %d\n%s\n%s\n", rc1, rc2, rc3, e2.msg, e3.msg);
		fclose(f);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	char buf[2400] = "";
	FILE *f = fopen(msg, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	int rc1 = 9, rc2 = 9, rc3 = 9;
	sscanf(buf, "%d %d %d", &rc1, &rc2, &rc3);
	char *m = strchr(buf, '\n');
	for (char *q = buf; *q; q++)
		if (*q == '\n')
			*q = ' ';
	tap_ok(WIFEXITED(st) && rc1 == 0 && rc2 + rc3 == -1, "closing in the background: the put that "
	       "rotates returns at once (%d); the failure comes once, later (put %d, close %d)",
	       rc1, rc2, rc3);
	tap_ok(m && strstr(m, "Video 2023-11-14 22-13-20.000.tif") && strstr(m, "File too large"),
	       "it names the file and the cause:%s", m ? m : "");
	tap_str(py("for p in sorted(glob.glob(sys.argv[1] + '/*')):\n"
	           "    print(os.path.basename(p), tifffile.TiffFile(p).series[0].shape[0])\n",
	           dir("closefail")),
	        "Video 2023-11-14 22-13-20.000.tif 4\n"
	        "Video 2023-11-14 22-14-20.000.tif 8",
	        "the file that could not be finished reads up to its last batch; the next is whole");
}

static void test_errors(void)
{
	struct ms_recorder_opts o;
	ms_recorder_opts_default(&o);
	ms_err e = {""};
	o.saving = true;
	tap_ok(!ms_recorder_new(&o, &e) && strstr(e.msg, "no folder"), "saving without a folder: %s",
	       e.msg);
	o.saving = false;
	o.rotation_min = 20000;
	tap_ok(!ms_recorder_new(&o, &e) && strstr(e.msg, "20000"), "rotation too long: %s", e.msg);
	o.rotation_min = 60;
	struct ms_recorder *r = ms_recorder_new(&o, &e);
	tap_ok(r && put_at(r, S0, &e) == 0, "not saving: put does nothing");
	char f[700];
	snprintf(f, sizeof f, "%s/plainfile", tap_tmpdir());
	close(open(f, O_CREAT | O_WRONLY, 0644));
	strcat(f, "/sub");
	tap_int(ms_recorder_set_folder(r, f, &e), 0, "a folder is only checked when saving starts");
	tap_ok(ms_recorder_set_saving(r, true, &e) == -1 && strstr(e.msg, "plainfile"),
	       "a folder under a plain file: %s", e.msg);
	struct ms_recorder_status s;
	ms_recorder_status(r, &s);
	tap_ok(!s.saving && s.recording_id == 0, "and saving stays off");
	tap_ok(ms_recorder_set_mode(r, (enum ms_rec_mode)9, &e) == -1, "unknown mode refused");
	tap_int(ms_recorder_set_folder(r, dir("made/deep/er"), &e), 0, "folder");
	tap_int(ms_recorder_set_saving(r, true, &e), 0, "saving creates missing folders");
	struct stat st;
	tap_ok(stat(dir("made/deep/er"), &st) == 0 && S_ISDIR(st.st_mode), "made/deep/er exists");
	tap_int(ms_recorder_set_folder(r, NULL, &e), 0, "clearing the folder");
	ms_recorder_status(r, &s);
	tap_ok(!s.saving && !s.folder, "turns saving off");
	tap_int(ms_recorder_close(r, &e), 0, "close");
}

int main(void)
{
	setenv("TZ", "UTC0", 1);
	test_modes();
	test_buckets();
	test_stamps();
	test_rotation();
	test_collisions();
	test_modes_files();
	test_video_files();
	test_failures();
	test_close_failure();
	test_errors();
	return tap_done();
}
