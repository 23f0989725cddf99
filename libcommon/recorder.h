/*
 * recorder: the saving side of MagScope's acquisition model
 * (reference/magscope-behaviour.md §3.3-3.5): what is saved (the data
 * mode), whether (saving on or off), where (the folder), and how files are
 * cut (recordings and rotation buckets). A program hands it each batch of
 * frames with their ROIs and track rows; it routes them to the tracks file
 * (HDF5, MagScope's schema, written with SWMR so that ms-info and h5py read
 * it while it grows) and the video file (a live TIFF: full frames, or one
 * ImageJ hyperstack channel per ROI), opening, rotating and closing files
 * as the settings and the frame times say. It knows nothing of the control
 * protocol: the program maps commands onto the setters below. One thread
 * drives a recorder; it has no global state.
 *
 * Recordings and buckets. A new recording (recording_id + 1, its start the
 * clock's now) begins when saving is turned on, when the folder, the
 * rotation interval or the ROI-positions setting changes while saving, and
 * on ms_recorder_new_file while saving; the previous recording's files are
 * closed. A batch belongs to the bucket of its first frame:
 *   file_start = start + floor((t_first - start) / D) * D,
 * D the rotation interval (file_start = start when rotation is off). A
 * batch from a later bucket closes the current files and opens the next
 * ones. Two departures from MagScope, both about frames that are not
 * newer than what is being written: a frame from before the recording
 * start belongs to its first bucket (MagScope's floor would date the file
 * one interval before the recording began), and a batch from an earlier
 * bucket than the current one goes to the current files (MagScope reopens
 * the old file; here one writer appends in order, so only a clock stepping
 * back can cause it).
 *
 * Files, named from the local time of file_start (localtime_r: the TZ of
 * the process; MagScope's hard-coded UTC-5 is not reproduced):
 *   Tracking Data YYYY-MM-DD HH-MM-SS.ffffff.h5
 *   Video YYYY-MM-DD HH-MM-SS.mmm.tif
 * An existing name gets " (1)", " (2)", ... before the extension. One
 * video file per bucket, not MagScope's one per 40-frame stack (which makes
 * 9000 files an hour at 100 frames/s): its name matches the bucket's
 * tracks file, and since the TIFF is written live it is readable up to the
 * last batch even if the program dies. A second video file in the same
 * bucket (the frame size, the ROI count or the ROI size changed, or a
 * write failed) takes the next suffix.
 *
 * Failures never lose the recorder: a write that fails is reported, its
 * file is closed (the batch is dropped from it), and the next batch opens
 * a new file with the next free name, as MagScope's writer does.
 */
#ifndef MS_RECORDER_H
#define MS_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"
#include "rois.h"
#include "tracks.h"

/* The five data modes, in MagScope's order. */
enum ms_rec_mode {
	MS_REC_TRACK,			/* "Track" */
	MS_REC_TRACK_ROI_VIDEO,		/* "Track and Video (ROIs)" */
	MS_REC_TRACK_FULL_VIDEO,	/* "Track and Video (Full)" */
	MS_REC_ROI_VIDEO,		/* "Video (ROIs)" */
	MS_REC_FULL_VIDEO,		/* "Video (Full)" */
	MS_REC_NMODES
};

/* Short words for commands and options, NULL-terminated, in enum order:
 * track, track+roi-video, track+full-video, roi-video, full-video. */
extern const char *const ms_rec_mode_words[];
#define MS_REC_MODE_WORDS "track track+roi-video track+full-video roi-video full-video"

const char *ms_rec_mode_word(enum ms_rec_mode m);
/* MagScope's display label (the AcquisitionMode value). */
const char *ms_rec_mode_label(enum ms_rec_mode m);
/* A word or a label (any case); -1 if neither. */
int ms_rec_mode_parse(const char *s);
/* What a mode saves: tracks, ROI video, full-frame video. */
bool ms_rec_mode_tracks(enum ms_rec_mode m);
bool ms_rec_mode_roi_video(enum ms_rec_mode m);
bool ms_rec_mode_full_video(enum ms_rec_mode m);

#define MS_REC_ROTATION_DEFAULT 60	/* minutes */
#define MS_REC_ROTATION_MAX 10080	/* a week */

struct ms_recorder_opts {
	enum ms_rec_mode mode;
	bool saving;
	const char *folder;		/* NULL: none yet (saving needs one); created if missing */
	unsigned rotation_min;		/* 0: no rotation */
	bool include_roi_positions;	/* roi_positions_px in the tracks file */
	bool swmr;			/* tracks files readable while written */
	/* The clock of recording starts (ns since the epoch); NULL: ms_now_ns. */
	uint64_t (*now)(void *ctx);
	void *now_ctx;
};

/* Track, saving off, no folder, 60 min rotation, ROI positions on, SWMR on. */
void ms_recorder_opts_default(struct ms_recorder_opts *o);

struct ms_recorder;

/* With o->saving, the first recording starts now (a folder is needed). */
struct ms_recorder *ms_recorder_new(const struct ms_recorder_opts *o, ms_err *e);

/*
 * The setters return 0, or -1 with e set for a value that cannot be used
 * (nothing changes then); closing files they end can also fail, which is
 * reported while the change still happens.
 */
int ms_recorder_set_mode(struct ms_recorder *r, enum ms_rec_mode m, ms_err *e);
/* Turning saving on needs a folder. */
int ms_recorder_set_saving(struct ms_recorder *r, bool on, ms_err *e);
/* NULL or "" clears it (which turns saving off). */
int ms_recorder_set_folder(struct ms_recorder *r, const char *folder, ms_err *e);
int ms_recorder_set_rotation(struct ms_recorder *r, unsigned minutes, ms_err *e);
int ms_recorder_set_roi_positions(struct ms_recorder *r, bool on, ms_err *e);
/* A new recording, hence new files; only while saving (-1 otherwise). */
int ms_recorder_new_file(struct ms_recorder *r, ms_err *e);

/*
 * A batch: nframes frames (pixels needed only in the video modes), the
 * ROIs they were tracked in (for ROI video: squares of roi_size at x0, y0,
 * parts outside the frame are 0), and the track rows (NULL: none, e.g. in
 * the video-only modes). With tracks, its frames are the batch's frames.
 */
struct ms_rec_batch {
	size_t nframes;
	const struct ms_frame *frames;
	const struct ms_roi *rois;
	size_t nrois;
	uint32_t roi_size;
	const struct ms_track_batch *tracks;
};

/*
 * Save a batch as the mode says (nothing while saving is off). Returns 0,
 * or -1 with e saying which file failed and why (see the header comment:
 * the recorder stays usable).
 */
int ms_recorder_put(struct ms_recorder *r, const struct ms_rec_batch *b, ms_err *e);

struct ms_recorder_status {
	enum ms_rec_mode mode;
	bool saving;
	const char *folder;		/* NULL: none */
	unsigned rotation_min;
	bool include_roi_positions;
	uint64_t recording_id;		/* 0: no recording yet */
	uint64_t recording_start_ns;
	uint64_t file_start_ns;		/* the current bucket; 0: none */
	/* The files open now (NULL: none), valid until the next call. */
	const char *tracks_path, *video_path;
	uint64_t tracks_frames, tracks_rows, tracks_bytes;
	uint64_t video_frames, video_bytes;
	/* Since ms_recorder_new. */
	uint64_t files;			/* files opened */
	uint64_t frames_saved;		/* frames put while saving */
	uint64_t bytes;			/* in every file, closed or open */
	uint64_t failures;		/* writes that failed */
};
void ms_recorder_status(struct ms_recorder *r, struct ms_recorder_status *s);

/* Close the files and free r (even on failure). */
int ms_recorder_close(struct ms_recorder *r, ms_err *e);

/* The pieces, for tests and other writers. */
uint64_t ms_rec_bucket_start(uint64_t recording_start_ns, uint64_t first_frame_ns,
                             uint64_t rotation_ns);
/*
 * "PREFIX YYYY-MM-DD HH-MM-SS.<frac>" in local time, frac_digits 3
 * (milliseconds) or 6 (microseconds). Returns buf.
 */
char *ms_rec_stamp(char *buf, size_t n, const char *prefix, uint64_t t_ns, int frac_digits);

#endif
