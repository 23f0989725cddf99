/*
 * tracks: one row per bead per frame, and the two places rows go. The
 * text form is TSV with a '#' header line naming the columns
 *   frame t_ns bead x_nm y_nm z_nm roi_x0 roi_y0
 * (NaN printed as "nan"). The file form is HDF5 in exactly the schema
 * MagScope writes (group /tracking, reference/magscope-behaviour.md §10):
 * a batch of frames is appended to every dataset, the running attributes
 * are updated and the file is flushed (H5F_SCOPE_GLOBAL), so a killed
 * writer leaves a file that is valid up to its last batch. With SWMR on,
 * other processes read the file while it grows (ms-info, h5py with
 * swmr=True), and the reader here reads such a file up to its last
 * complete batch.
 */
#ifndef MS_TRACKS_H
#define MS_TRACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct ms_track {
	uint64_t frame;		/* frame index within the run (0-based) */
	uint64_t t_ns;		/* frame timestamp, ns since the epoch */
	uint32_t bead;		/* bead id, 0..65535 */
	double x_nm, y_nm, z_nm;	/* NaN: not measured / invalid */
	int32_t roi_x0, roi_y0;	/* ROI top-left corner, camera pixels */
};

/*
 * A batch: nframes frames; the rows of frame i are
 * rows[offsets[i] .. offsets[i+1]) (offsets has nframes+1 entries,
 * offsets[0] == 0), all with that frame's t_ns.
 */
struct ms_track_batch {
	size_t nframes;
	const uint64_t *t_ns;
	const size_t *offsets;
	const struct ms_track *rows;
};

#define MS_TRACKS_TSV_HEADER "# frame\tt_ns\tbead\tx_nm\ty_nm\tz_nm\troi_x0\troi_y0\n"

/* TSV: the header line, then rows. Return -1 if the stream has an error. */
int ms_tracks_tsv_header(FILE *f);
int ms_tracks_tsv_write(FILE *f, const struct ms_track *rows, size_t n);

/* Attributes of a recording, as MagScope keeps them. */
struct ms_h5tracks_opts {
	bool include_roi_positions;	/* write roi_positions_px */
	uint64_t recording_id;
	uint64_t recording_start_ns;	/* 0: now */
	uint64_t file_start_ns;		/* 0: recording_start_ns */
	uint64_t rotation_interval_ns;	/* 0: no rotation */
	uint64_t first_batch_sequence;	/* batch_sequence of the first batch */
	/*
	 * Single writer, multiple readers: readers open the file while it is
	 * written. The file is then in the HDF5 1.10 format (HDF5 1.8
	 * readers cannot open it), min_frame_timestamp_ns and
	 * max_frame_timestamp_ns exist from the start (0 while there are no
	 * frames), and a killed writer leaves a file that only a SWMR reader
	 * opens (h5py: swmr=True; this module's reader does so by itself)
	 * until `h5clear -s` clears its "open for writing" mark.
	 */
	bool swmr;
};

struct ms_h5tracks;

/*
 * Create path (fails if it exists, unless overwrite) with group /tracking,
 * its attributes and empty resizable datasets, as h5py creates them for
 * MagScope (library-version bounds earliest..v110, so a killed writer
 * leaves a file any reader opens; v110..v110 with o->swmr, which then
 * starts SWMR writing before it returns). As in MagScope, the attributes
 * min_frame_timestamp_ns and max_frame_timestamp_ns are absent until
 * the first batch (unless o->swmr: see there).
 */
struct ms_h5tracks *ms_h5tracks_create(const char *path, const struct ms_h5tracks_opts *o,
                                       bool overwrite, ms_err *e);
/*
 * Append a batch (batch_sequence counts up from 0) and flush globally. A
 * batch without frames is a no-op. Bead ids, and ROI corners when the
 * file keeps them, must lie in 0..65535, or nothing is written. If a
 * write fails, every dataset and the timestamp range are rolled back to
 * their state before the batch.
 */
int ms_h5tracks_append(struct ms_h5tracks *w, const struct ms_track_batch *b, ms_err *e);
int ms_h5tracks_close(struct ms_h5tracks *w, ms_err *e);

/*
 * Open an existing tracks file to append to it (MagScope's open_existing):
 * the file must be in the schema, with the batch datasets, and closed by
 * its writer. The next batch_sequence is one past the largest in the
 * file. With swmr, the file must be in the 1.10 format (made with swmr);
 * missing timestamp-range attributes are created first.
 */
struct ms_h5tracks *ms_h5tracks_open_append(const char *path, bool swmr, ms_err *e);

/* Counts so far (frames, records and batches appended, by any writer). */
void ms_h5tracks_counts(const struct ms_h5tracks *w, uint64_t *frames, uint64_t *records,
                        uint64_t *batches);

/*
 * Read every row of a tracks file, in file order, with frame numbered by
 * its index in the file; calls fn once per frame with that frame's rows
 * (n may be 0; roi_x0/roi_y0 are -1 without roi_positions_px). Memory is
 * bounded: records are read in blocks of 65536 (or one frame, if larger).
 * A file that is not in the schema fails, before any call of fn, with a
 * message naming what is wrong; files of the first MagScope releases,
 * without the batch_* datasets, are read. fn returning non-zero stops the
 * read (and is returned). A file that a SWMR writer has open (or left
 * behind when it was killed) is read up to its last complete batch.
 */
typedef int (*ms_tracks_fn)(void *ctx, const struct ms_track *rows, size_t n);
int ms_h5tracks_read(const char *path, ms_tracks_fn fn, void *ctx, ms_err *e);

/* Summary for ms-info. */
struct ms_h5tracks_summary {
	uint64_t frames, records, batches;
	uint64_t min_t_ns, max_t_ns;
	uint64_t recording_id, recording_start_ns, file_start_ns, rotation_interval_ns;
	bool include_roi_positions;
	size_t nbeads;		/* distinct bead ids */
};
int ms_h5tracks_summary(const char *path, struct ms_h5tracks_summary *s, ms_err *e);

/* Whether an HDF5 file at path has the /tracking group. */
bool ms_h5tracks_is_tracks(const char *path);

#endif
