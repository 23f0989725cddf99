/*
 * tracks: the TSV form of track rows and the HDF5 tracks file in
 * MagScope's schema (reference/magscope-behaviour.md §10): the writer
 * (create, append a batch with rollback on failure, close), the reader
 * (schema validation, bounded-memory iteration frame by frame) and the
 * summary ms-info prints. HDF5's own error printing is switched off around
 * every call into it (and restored after), and its innermost message is
 * put into the ms_err after the file name.
 *
 * SWMR (checked with HDF5 1.10.8): everything, the timestamp-range
 * attributes included, is created before H5Fstart_swmr_write; after it
 * the writer only extends datasets and rewrites the two range attributes
 * in place (a fixed-size value in an existing attribute: HDF5 allows it,
 * a reader that opens the file afterwards sees the new value, and one
 * that keeps the file open sees it after H5Orefresh on the group;
 * creating an attribute then is not part of the SWMR contract, so it is
 * never done). HDF5 orders the metadata of one object for SWMR readers,
 * not the raw data across datasets, so a batch goes out in dependency
 * order with a flush of each dataset in between: records, then frames,
 * then the batch_* rows with batch_frame_count last. A batch whose
 * batch_frame_count a reader sees as non-zero (never zero for a written
 * batch; zero is the fill value) is therefore complete on disk, and a
 * SWMR reader takes the batches up to the last such one.
 */
#include "tracks.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h5util.h"

/* ---------------------------------------------------------------- TSV */

static void put_nm(FILE *f, double v, char sep)
{
	/* printf gives "-nan" for a NaN with its sign bit set; awk and
	 * numpy both want plain "nan". */
	if (isnan(v))
		fputs("nan", f);
	else
		fprintf(f, "%.3f", v);
	fputc(sep, f);
}

int ms_tracks_tsv_header(FILE *f)
{
	fputs(MS_TRACKS_TSV_HEADER, f);
	return ferror(f) ? -1 : 0;
}

int ms_tracks_tsv_write(FILE *f, const struct ms_track *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct ms_track *r = &rows[i];
		fprintf(f, "%llu\t%llu\t%u\t", (unsigned long long)r->frame,
		        (unsigned long long)r->t_ns, (unsigned)r->bead);
		put_nm(f, r->x_nm, '\t');
		put_nm(f, r->y_nm, '\t');
		put_nm(f, r->z_nm, '\t');
		fprintf(f, "%d\t%d\n", (int)r->roi_x0, (int)r->roi_y0);
		if (ferror(f))
			return -1;
	}
	return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------ HDF5 plumbing */

/* ------------------------------------------------------------- schema */

enum kind { K_U64, K_U16, K_F64 };

enum {
	D_BSEQ, D_BFSTART, D_BFCOUNT, D_BRSTART, D_BRCOUNT,
	D_FTS, D_FOFF, D_FBSEQ,
	D_BEAD, D_POS, D_ROI,
	ND
};

/* In MagScope's creation order; chunk sizes as MagScope sets them. */
static const struct dsdef {
	const char *name;
	enum kind kind;
	int cols;		/* 0: 1-D */
	hsize_t chunk;
} dsdefs[ND] = {
	[D_BSEQ] = {"batch_sequence", K_U64, 0, 1024},
	[D_BFSTART] = {"batch_frame_start", K_U64, 0, 1024},
	[D_BFCOUNT] = {"batch_frame_count", K_U64, 0, 1024},
	[D_BRSTART] = {"batch_record_start", K_U64, 0, 1024},
	[D_BRCOUNT] = {"batch_record_count", K_U64, 0, 1024},
	[D_FTS] = {"frame_timestamps_ns", K_U64, 0, 4096},
	[D_FOFF] = {"frame_offsets", K_U64, 0, 4097},
	[D_FBSEQ] = {"frame_batch_sequence", K_U64, 0, 4096},
	[D_BEAD] = {"bead_ids", K_U16, 0, 65536},
	[D_POS] = {"positions_nm", K_F64, 3, 65536},
	[D_ROI] = {"roi_positions_px", K_U16, 2, 65536},
};

static hid_t file_type(enum kind k)
{
	return k == K_U64 ? H5T_STD_U64LE : k == K_U16 ? H5T_STD_U16LE : H5T_IEEE_F64LE;
}

static hid_t mem_type(enum kind k)
{
	return k == K_U64 ? H5T_NATIVE_UINT64 : k == K_U16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_DOUBLE;
}

static const char *kind_name(enum kind k)
{
	return k == K_U64 ? "uint64" : k == K_U16 ? "uint16" : "float64";
}

/* Records and frames are read this many at a time. */
#define READ_BLOCK 65536

/* ------------------------------------------------------------- writer */

struct ms_h5tracks {
	char *path;
	hid_t file, group, ds[ND];
	bool roi;
	bool swmr;
	uint64_t nbatch, nframes, nrec;
	uint64_t seq;		/* next batch_sequence */
	bool have_t;		/* min_t/max_t hold frames' times */
	bool attrs_exist;	/* min/max_frame_timestamp_ns exist (always with SWMR) */
	uint64_t min_t, max_t;
};

/* Create or overwrite a scalar attribute. */
static int attr_put(struct ms_h5tracks *w, const char *name, hid_t ftype, hid_t mtype,
                    const void *buf, ms_err *e)
{
	hid_t sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
	int rc = -1;
	htri_t ex = H5Aexists(w->group, name);
	if (ex < 0) {
		ms_h5_fail(e, "'%s': cannot look up attribute %s", w->path, name);
		goto out;
	}
	if (ex) {
		a = H5Aopen(w->group, name, H5P_DEFAULT);
	} else {
		sp = H5Screate(H5S_SCALAR);
		a = sp < 0 ? H5I_INVALID_HID
		           : H5Acreate2(w->group, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
	}
	if (a < 0 || H5Awrite(a, mtype, buf) < 0) {
		ms_h5_fail(e, "'%s': cannot write attribute %s", w->path, name);
		goto out;
	}
	rc = 0;
out:
	ms_h5_close(&a, H5Aclose);
	ms_h5_close(&sp, H5Sclose);
	return rc;
}

static int attr_u64(struct ms_h5tracks *w, const char *name, uint64_t v, ms_err *e)
{
	return attr_put(w, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, e);
}

/* A Python str attribute as h5py stores it: variable-length UTF-8. */
static int attr_str(struct ms_h5tracks *w, const char *name, const char *s, ms_err *e)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
		ms_h5_fail(e, "'%s': cannot make a string type", w->path);
		ms_h5_close(&t, H5Tclose);
		return -1;
	}
	int rc = attr_put(w, name, t, t, &s, e);
	H5Tclose(t);
	return rc;
}

static int attr_delete(struct ms_h5tracks *w, const char *name)
{
	htri_t ex = H5Aexists(w->group, name);
	if (ex > 0)
		return H5Adelete(w->group, name) < 0 ? -1 : 0;
	return ex < 0 ? -1 : 0;
}

static hid_t ds_create(struct ms_h5tracks *w, int i, ms_err *e)
{
	const struct dsdef *d = &dsdefs[i];
	int rank = d->cols ? 2 : 1;
	/* frame_offsets starts as [0], everything else empty. */
	hsize_t dims[2] = {i == D_FOFF ? 1 : 0, (hsize_t)d->cols};
	hsize_t maxd[2] = {H5S_UNLIMITED, (hsize_t)d->cols};
	hsize_t chunk[2] = {d->chunk, (hsize_t)d->cols};
	hid_t sp = H5Screate_simple(rank, dims, maxd);
	hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
	hid_t ds = H5I_INVALID_HID;
	/* The creation properties h5py uses: no object times (which also
	 * makes two runs over the same data give the same bytes) and chunks
	 * filled when allocated. */
	if (sp >= 0 && pl >= 0 && H5Pset_chunk(pl, rank, chunk) >= 0 &&
	    H5Pset_obj_track_times(pl, 0) >= 0 && H5Pset_fill_time(pl, H5D_FILL_TIME_ALLOC) >= 0)
		ds = H5Dcreate2(w->group, d->name, file_type(d->kind), sp, H5P_DEFAULT, pl,
		                H5P_DEFAULT);
	if (ds < 0)
		ms_h5_fail(e, "'%s': cannot create dataset /tracking/%s", w->path, d->name);
	ms_h5_close(&sp, H5Sclose);
	ms_h5_close(&pl, H5Pclose);
	if (ds >= 0 && i == D_FOFF) {
		uint64_t zero = 0;
		if (H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &zero) < 0) {
			ms_h5_fail(e, "'%s': cannot write /tracking/frame_offsets", w->path);
			H5Dclose(ds);
			return H5I_INVALID_HID;
		}
	}
	return ds;
}

static void writer_close_ids(struct ms_h5tracks *w)
{
	for (int i = 0; i < ND; i++)
		ms_h5_close(&w->ds[i], H5Dclose);
	ms_h5_close(&w->group, H5Gclose);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct ms_h5tracks *writer_new(const char *path, ms_err *e)
{
	struct ms_h5tracks *w = calloc(1, sizeof *w);
	char *p = strdup(path);
	if (!w || !p) {
		free(w);
		free(p);
		ms_err_set(e, "'%s': out of memory", path);
		return NULL;
	}
	w->path = p;
	w->file = w->group = H5I_INVALID_HID;
	for (int i = 0; i < ND; i++)
		w->ds[i] = H5I_INVALID_HID;
	return w;
}

static void writer_free(struct ms_h5tracks *w)
{
	writer_close_ids(w);
	ms_h5_close(&w->file, H5Fclose);
	free(w->path);
	free(w);
}

/* The range attributes with their current values (0 before any frame). */
static int range_attrs_put(struct ms_h5tracks *w, ms_err *e)
{
	if (attr_u64(w, "min_frame_timestamp_ns", w->min_t, e) ||
	    attr_u64(w, "max_frame_timestamp_ns", w->max_t, e))
		return -1;
	w->attrs_exist = true;
	return 0;
}

/*
 * From here on readers may have the file open: only datasets grow and the
 * range attributes change (see the header comment).
 */
static int start_swmr(struct ms_h5tracks *w, ms_err *e)
{
	if (!w->attrs_exist && range_attrs_put(w, e))
		return -1;
	if (H5Fstart_swmr_write(w->file) < 0)
		return ms_h5_fail(e, "'%s': cannot start SWMR writing", w->path);
	return 0;
}

struct ms_h5tracks *ms_h5tracks_create(const char *path, const struct ms_h5tracks_opts *o,
                                       bool overwrite, ms_err *e)
{
	static const struct ms_h5tracks_opts defaults = {0};
	if (!o)
		o = &defaults;
	struct stat st;
	if (!overwrite && lstat(path, &st) == 0) {
		ms_err_set(e, "'%s' already exists (refusing to overwrite it)", path);
		return NULL;
	}
	struct ms_h5tracks *w = writer_new(path, e);
	if (!w)
		return NULL;
	w->roi = o->include_roi_positions;
	w->swmr = o->swmr;
	w->seq = o->first_batch_sequence;

	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	/*
	 * Without SWMR, the library-version bounds h5py uses by default
	 * (earliest, v110), i.e. the files MagScope writes: a version-0
	 * superblock keeps no "open for writing" flag, so a writer that is
	 * killed leaves a file that every reader opens as it is, valid up to
	 * the last flushed batch. SWMR needs the 1.10 format throughout
	 * (superblock 3, the chunk indexes SWMR readers can follow); such a
	 * file is read after a crash with H5F_ACC_SWMR_READ, which the reader
	 * below falls back to.
	 */
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0 || H5Pset_libver_bounds(fapl, w->swmr ? H5F_LIBVER_V110 : H5F_LIBVER_EARLIEST,
	                                     H5F_LIBVER_V110) < 0) {
		ms_h5_fail(e, "'%s': cannot set up file access", path);
		ms_h5_close(&fapl, H5Pclose);
		goto fail;
	}
	w->file = H5Fcreate(path, overwrite ? H5F_ACC_TRUNC : H5F_ACC_EXCL, H5P_DEFAULT, fapl);
	if (w->file < 0)
		ms_h5_fail(e, "cannot create '%s'", path);
	H5Pclose(fapl);
	if (w->file < 0)
		goto fail;
	w->group = H5Gcreate2(w->file, "tracking", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (w->group < 0) {
		ms_h5_fail(e, "'%s': cannot create group /tracking", path);
		goto fail_file;
	}

	/* Attributes in MagScope's order and with the types h5py gives:
	 * a Python int is int64, np.uint8/np.uint64 stay as they are. */
	int64_t schema = 1;
	uint8_t roi = w->roi;
	uint64_t rec_start = o->recording_start_ns ? o->recording_start_ns : now_ns();
	uint64_t file_start = o->file_start_ns ? o->file_start_ns : rec_start;
	if (attr_put(w, "schema_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &schema, e) ||
	    attr_put(w, "include_roi_positions", H5T_STD_U8LE, H5T_NATIVE_UINT8, &roi, e) ||
	    attr_str(w, "record_order", "writer_append_order", e) ||
	    attr_str(w, "batch_sequence_order", "video_task_enqueue_order", e) ||
	    attr_u64(w, "recording_id", o->recording_id, e) ||
	    attr_u64(w, "recording_start_ns", rec_start, e) ||
	    attr_u64(w, "file_start_ns", file_start, e) ||
	    attr_u64(w, "rotation_interval_ns", o->rotation_interval_ns, e))
		goto fail_file;
	/*
	 * min_frame_timestamp_ns / max_frame_timestamp_ns are absent until
	 * the first batch, as in MagScope: a file with no frames has no
	 * timestamp range (readers, ms_h5tracks_summary included, treat
	 * absence as "no frames yet"). SWMR cannot create them later, so
	 * there they exist from the start, 0 until the first batch.
	 */
	for (int i = 0; i < ND; i++) {
		if (i == D_ROI && !w->roi)
			continue;
		if ((w->ds[i] = ds_create(w, i, e)) < 0)
			goto fail_file;
	}
	if (w->swmr && start_swmr(w, e))
		goto fail_file;
	if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
		ms_h5_fail(e, "'%s': cannot flush", path);
		goto fail_file;
	}
	ms_h5_quiet_off(&q);
	return w;

fail_file:
	writer_close_ids(w);
	ms_h5_close(&w->file, H5Fclose);
	/* Whatever we managed to create is not a tracks file: remove it. */
	unlink(path);
fail:
	ms_h5_quiet_off(&q);
	writer_free(w);
	return NULL;
}

/* Grow dataset i to n rows and write buf into rows [start, n). */
static int ds_append(struct ms_h5tracks *w, int i, uint64_t start, uint64_t n, const void *buf,
                     ms_err *e)
{
	const struct dsdef *d = &dsdefs[i];
	int rank = d->cols ? 2 : 1;
	hsize_t ext[2] = {n, (hsize_t)d->cols};
	hsize_t off[2] = {start, 0}, cnt[2] = {n - start, (hsize_t)d->cols};
	hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
	int rc = -1;
	if (H5Dset_extent(w->ds[i], ext) < 0) {
		ms_h5_fail(e, "'%s': cannot extend /tracking/%s to %llu rows", w->path, d->name,
		       (unsigned long long)n);
		return -1;
	}
	if (n == start)
		return 0;
	fs = H5Dget_space(w->ds[i]);
	ms = H5Screate_simple(rank, cnt, NULL);
	if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
	    H5Dwrite(w->ds[i], mem_type(d->kind), ms, fs, H5P_DEFAULT, buf) < 0) {
		ms_h5_fail(e, "'%s': cannot write /tracking/%s", w->path, d->name);
		goto out;
	}
	rc = 0;
out:
	ms_h5_close(&fs, H5Sclose);
	ms_h5_close(&ms, H5Sclose);
	return rc;
}

/*
 * With SWMR, push dataset i's raw data and metadata out now, so that what
 * follows cannot reach a reader before it.
 */
static int ds_flush(struct ms_h5tracks *w, int i, ms_err *e)
{
	if (!w->swmr || H5Dflush(w->ds[i]) >= 0)
		return 0;
	return ms_h5_fail(e, "'%s': cannot flush /tracking/%s", w->path, dsdefs[i].name);
}

/* Put every dataset and the timestamp range back as they were. */
static int rollback(struct ms_h5tracks *w)
{
	int rc = 0;
	for (int i = 0; i < ND; i++) {
		if (w->ds[i] < 0)
			continue;
		uint64_t n = i <= D_BRCOUNT ? w->nbatch
		           : i == D_FOFF   ? w->nframes + 1
		           : i <= D_FBSEQ  ? w->nframes
		                           : w->nrec;
		hsize_t ext[2] = {n, (hsize_t)dsdefs[i].cols};
		if (H5Dset_extent(w->ds[i], ext) < 0)
			rc = -1;
	}
	if (w->attrs_exist) {
		ms_err ignore;
		if (range_attrs_put(w, &ignore))
			rc = -1;
	} else if (attr_delete(w, "min_frame_timestamp_ns") || attr_delete(w, "max_frame_timestamp_ns")) {
		rc = -1;
	}
	if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
		rc = -1;
	return rc;
}

static int check_batch(const struct ms_h5tracks *w, const struct ms_track_batch *b, ms_err *e)
{
	if (!b->t_ns || !b->offsets)
		return ms_err_set(e, "'%s': batch without timestamps or offsets", w->path);
	if (b->offsets[0] != 0)
		return ms_err_set(e, "'%s': batch offsets start at %zu, not 0", w->path, b->offsets[0]);
	for (size_t i = 0; i < b->nframes; i++)
		if (b->offsets[i + 1] < b->offsets[i])
			return ms_err_set(e, "'%s': batch offsets decrease at frame %zu (%zu after %zu)",
			                  w->path, i + 1, b->offsets[i + 1], b->offsets[i]);
	size_t n = b->offsets[b->nframes];
	if (n && !b->rows)
		return ms_err_set(e, "'%s': batch of %zu records without rows", w->path, n);
	for (size_t i = 0; i < n; i++) {
		const struct ms_track *r = &b->rows[i];
		if (r->bead > 65535)
			return ms_err_set(e, "'%s': bead id %u out of range 0..65535 (batch record %zu)",
			                  w->path, (unsigned)r->bead, i);
		if (w->roi && (r->roi_x0 < 0 || r->roi_x0 > 65535 || r->roi_y0 < 0 || r->roi_y0 > 65535))
			return ms_err_set(e, "'%s': ROI position (%d, %d) of bead %u out of range 0..65535 "
			                  "(batch record %zu)", w->path, (int)r->roi_x0, (int)r->roi_y0,
			                  (unsigned)r->bead, i);
	}
	return 0;
}

int ms_h5tracks_append(struct ms_h5tracks *w, const struct ms_track_batch *b, ms_err *e)
{
	/* MagScope never writes a batch without frames; there is nothing
	 * to append and no batch_sequence is used up. */
	if (!b || b->nframes == 0)
		return 0;
	if (check_batch(w, b, e))
		return -1;
	size_t nf = b->nframes, nr = b->offsets[nf];
	uint64_t *off = malloc(nf * sizeof *off);
	uint64_t *fseq = malloc(nf * sizeof *fseq);
	uint16_t *bead = malloc((nr ? nr : 1) * sizeof *bead);
	double *pos = malloc((nr ? nr : 1) * 3 * sizeof *pos);
	uint16_t *roi = w->roi ? malloc((nr ? nr : 1) * 2 * sizeof *roi) : NULL;
	int rc = -1;
	if (!off || !fseq || !bead || !pos || (w->roi && !roi)) {
		ms_err_set(e, "'%s': out of memory for a batch of %zu records", w->path, nr);
		goto out;
	}
	uint64_t tmin = b->t_ns[0], tmax = b->t_ns[0];
	for (size_t i = 0; i < nf; i++) {
		off[i] = w->nrec + b->offsets[i + 1];
		fseq[i] = w->seq;
		if (b->t_ns[i] < tmin)
			tmin = b->t_ns[i];
		if (b->t_ns[i] > tmax)
			tmax = b->t_ns[i];
	}
	for (size_t i = 0; i < nr; i++) {
		const struct ms_track *r = &b->rows[i];
		bead[i] = (uint16_t)r->bead;
		pos[3 * i] = r->x_nm;
		pos[3 * i + 1] = r->y_nm;
		pos[3 * i + 2] = r->z_nm;
		if (roi) {
			roi[2 * i] = (uint16_t)r->roi_x0;
			roi[2 * i + 1] = (uint16_t)r->roi_y0;
		}
	}
	if (w->have_t) {
		if (w->min_t < tmin)
			tmin = w->min_t;
		if (w->max_t > tmax)
			tmax = w->max_t;
	}
	uint64_t nb = w->nbatch, fs0 = w->nframes, rs0 = w->nrec;
	uint64_t nf64 = nf, nr64 = nr;

	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	/* Records before the frames that point at them, frames before the
	 * batch rows, batch_frame_count last: see the header comment. */
	if (ds_append(w, D_BEAD, rs0, rs0 + nr, bead, e) ||
	    ds_append(w, D_POS, rs0, rs0 + nr, pos, e) ||
	    (roi && ds_append(w, D_ROI, rs0, rs0 + nr, roi, e)) ||
	    ds_flush(w, D_BEAD, e) || ds_flush(w, D_POS, e) || (roi && ds_flush(w, D_ROI, e)) ||
	    ds_append(w, D_FTS, fs0, fs0 + nf, b->t_ns, e) ||
	    ds_append(w, D_FBSEQ, fs0, fs0 + nf, fseq, e) ||
	    ds_append(w, D_FOFF, fs0 + 1, fs0 + nf + 1, off, e) ||
	    ds_flush(w, D_FTS, e) || ds_flush(w, D_FBSEQ, e) || ds_flush(w, D_FOFF, e) ||
	    attr_u64(w, "min_frame_timestamp_ns", tmin, e) ||
	    attr_u64(w, "max_frame_timestamp_ns", tmax, e) ||
	    ds_append(w, D_BSEQ, nb, nb + 1, &w->seq, e) ||
	    ds_append(w, D_BFSTART, nb, nb + 1, &fs0, e) ||
	    ds_append(w, D_BRSTART, nb, nb + 1, &rs0, e) ||
	    ds_append(w, D_BRCOUNT, nb, nb + 1, &nr64, e) ||
	    ds_flush(w, D_BSEQ, e) || ds_flush(w, D_BFSTART, e) || ds_flush(w, D_BRSTART, e) ||
	    ds_flush(w, D_BRCOUNT, e) ||
	    ds_append(w, D_BFCOUNT, nb, nb + 1, &nf64, e)) {
		goto fail;
	}
	if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
		ms_h5_fail(e, "'%s': cannot flush", w->path);
		goto fail;
	}
	ms_h5_quiet_off(&q);
	w->nbatch++;
	w->nframes += nf;
	w->nrec += nr;
	w->seq++;
	w->have_t = true;
	w->attrs_exist = true;
	w->min_t = tmin;
	w->max_t = tmax;
	rc = 0;
	goto out;
fail:
	if (rollback(w) && e) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof e->msg - n, "; rolling back the batch failed as well");
	}
	ms_h5_quiet_off(&q);
out:
	free(off);
	free(fseq);
	free(bead);
	free(pos);
	free(roi);
	return rc;
}

int ms_h5tracks_close(struct ms_h5tracks *w, ms_err *e)
{
	if (!w)
		return 0;
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	int rc = 0;
	writer_close_ids(w);
	if (w->file >= 0 && H5Fclose(w->file) < 0)
		rc = ms_h5_fail(e, "'%s': cannot close", w->path);
	ms_h5_quiet_off(&q);
	free(w->path);
	free(w);
	return rc;
}

/* ------------------------------------------------------------- reader */

struct rd {
	const char *path;
	hid_t file, group, ds[ND];
	bool swmr;		/* opened for SWMR reading: a writer may be at work */
	uint64_t nframes, nrec, nbatch;
};

static void rd_close(struct rd *r)
{
	for (int i = 0; i < ND; i++)
		ms_h5_close(&r->ds[i], H5Dclose);
	ms_h5_close(&r->group, H5Gclose);
	ms_h5_close(&r->file, H5Fclose);
}

/* Open path read-only; a file that a SWMR writer has open, or left
 * behind when it was killed, opens only for SWMR reading, so that is
 * tried second (and *swmr says which). */
static hid_t open_h5(const char *path, bool *swmr, ms_err *e)
{
	*swmr = false;
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		ms_err_set(e, "cannot open '%s':", path);
		return H5I_INVALID_HID;
	}
	close(fd);
	htri_t is = H5Fis_hdf5(path);
	if (is <= 0) {
		if (is == 0)
			ms_err_set(e, "'%s' is not an HDF5 file", path);
		else
			ms_h5_fail(e, "cannot read '%s'", path);
		return H5I_INVALID_HID;
	}
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0) {
		ms_h5_fail(e, "cannot open '%s'", path);
		f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
		*swmr = f >= 0;
	}
	return f;
}

static const char *type_desc(hid_t t, char *buf, size_t n)
{
	H5T_class_t c = H5Tget_class(t);
	size_t sz = H5Tget_size(t);
	if (c == H5T_INTEGER)
		snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8);
	else if (c == H5T_FLOAT)
		snprintf(buf, n, "float%zu", sz * 8);
	else if (c == H5T_STRING)
		snprintf(buf, n, "string");
	else
		snprintf(buf, n, "class %d", (int)c);
	return buf;
}

/* Check dataset i's type and shape: rows x cols; returns rows in *n. */
static int rd_check(struct rd *r, int i, uint64_t *n, ms_err *e)
{
	const struct dsdef *d = &dsdefs[i];
	hid_t t = H5Dget_type(r->ds[i]);
	hid_t sp = H5Dget_space(r->ds[i]);
	int rc = -1;
	if (t < 0 || sp < 0) {
		ms_h5_fail(e, "'%s': cannot read /tracking/%s", r->path, d->name);
		goto out;
	}
	H5T_class_t c = H5Tget_class(t);
	size_t sz = H5Tget_size(t);
	bool ok = d->kind == K_F64 ? c == H5T_FLOAT && sz == 8
	        : c == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE && sz == (d->kind == K_U64 ? 8u : 2u);
	if (!ok) {
		char buf[32];
		ms_err_set(e, "'%s': /tracking/%s is %s, expected %s", r->path, d->name,
		           type_desc(t, buf, sizeof buf), kind_name(d->kind));
		goto out;
	}
	int rank = H5Sget_simple_extent_ndims(sp);
	hsize_t dims[2] = {0, 0};
	int want = d->cols ? 2 : 1;
	if (rank != want || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
	    (d->cols && dims[1] != (hsize_t)d->cols)) {
		if (d->cols)
			ms_err_set(e, "'%s': /tracking/%s is not an N x %d array", r->path, d->name, d->cols);
		else
			ms_err_set(e, "'%s': /tracking/%s is not one-dimensional", r->path, d->name);
		goto out;
	}
	*n = dims[0];
	rc = 0;
out:
	ms_h5_close(&t, H5Tclose);
	ms_h5_close(&sp, H5Sclose);
	return rc;
}

/* Read rows [start, start+n) of dataset i into buf (memory type of its kind). */
static int rd_rows(struct rd *r, int i, uint64_t start, size_t n, void *buf, ms_err *e)
{
	const struct dsdef *d = &dsdefs[i];
	if (n == 0)
		return 0;
	int rank = d->cols ? 2 : 1;
	hsize_t off[2] = {start, 0}, cnt[2] = {n, (hsize_t)d->cols};
	hid_t fs = H5Dget_space(r->ds[i]);
	hid_t ms = H5Screate_simple(rank, cnt, NULL);
	int rc = 0;
	if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
	    H5Dread(r->ds[i], mem_type(d->kind), ms, fs, H5P_DEFAULT, buf) < 0)
		rc = ms_h5_fail(e, "'%s': cannot read /tracking/%s rows %llu..%llu", r->path, d->name,
		            (unsigned long long)start, (unsigned long long)(start + n - 1));
	ms_h5_close(&fs, H5Sclose);
	ms_h5_close(&ms, H5Sclose);
	return rc;
}

static bool is_required(int i)
{
	/* The first MagScope releases wrote no batch_* or
	 * frame_batch_sequence datasets; their files read all the same. */
	return i == D_FTS || i == D_FOFF || i == D_BEAD || i == D_POS;
}

/* A finished file: every dataset's length agrees with the others. */
static int rd_sizes(struct rd *r, const uint64_t *rows, ms_err *e)
{
	uint64_t nf = rows[D_FTS], nr = rows[D_BEAD];
	const char *path = r->path;
	r->nframes = nf;
	r->nrec = nr;
	if (rows[D_FOFF] != nf + 1) {
		ms_err_set(e, "'%s': /tracking/frame_offsets has %llu entries for %llu frames "
		           "(expected frames + 1)", path, (unsigned long long)rows[D_FOFF],
		           (unsigned long long)nf);
		return -1;
	}
	for (int i = 0; i < ND; i++) {
		if (r->ds[i] < 0)
			continue;
		uint64_t want = i <= D_BRCOUNT ? rows[D_BSEQ] : i == D_FBSEQ ? nf
		              : i >= D_BEAD ? nr : rows[i];
		if (rows[i] != want) {
			ms_err_set(e, "'%s': /tracking/%s has %llu rows, expected %llu", path,
			           dsdefs[i].name, (unsigned long long)rows[i], (unsigned long long)want);
			return -1;
		}
	}
	r->nbatch = r->ds[D_BSEQ] >= 0 ? rows[D_BSEQ] : 0;
	return 0;
}

static bool has_batches(const struct rd *r)
{
	for (int i = D_BSEQ; i <= D_BRCOUNT; i++)
		if (r->ds[i] < 0)
			return false;
	return true;
}

/*
 * A file being written (or left by a killed SWMR writer): the complete
 * batches are those up to the last non-zero batch_frame_count, and their
 * frames and records are on disk (the writer's order, see the header
 * comment). The datasets are refreshed after that is read, so that their
 * lengths are at least as recent.
 */
static int rd_committed(struct rd *r, uint64_t *rows, ms_err *e)
{
	if (!has_batches(r))
		return rd_sizes(r, rows, e);
	uint64_t nb = rows[D_BSEQ];
	for (int i = D_BFSTART; i <= D_BRCOUNT; i++)
		if (rows[i] < nb)
			nb = rows[i];
	uint64_t buf[64];
	while (nb > 0) {
		size_t n = nb < 64 ? (size_t)nb : 64, k;
		if (rd_rows(r, D_BFCOUNT, nb - n, n, buf, e))
			return -1;
		for (k = n; k > 0 && buf[k - 1] == 0; k--)
			;
		if (k > 0) {
			nb = nb - n + k;
			break;
		}
		nb -= n;
	}
	uint64_t fstart = 0, fcount = 0, rstart = 0, rcount = 0;
	if (nb && (rd_rows(r, D_BFSTART, nb - 1, 1, &fstart, e) ||
	           rd_rows(r, D_BFCOUNT, nb - 1, 1, &fcount, e) ||
	           rd_rows(r, D_BRSTART, nb - 1, 1, &rstart, e) ||
	           rd_rows(r, D_BRCOUNT, nb - 1, 1, &rcount, e)))
		return -1;
	r->nbatch = nb;
	r->nframes = fstart + fcount;
	r->nrec = rstart + rcount;
	for (int i = 0; i < ND; i++) {
		if (r->ds[i] < 0)
			continue;
		if (H5Drefresh(r->ds[i]) < 0)
			return ms_h5_fail(e, "'%s': cannot refresh /tracking/%s", r->path, dsdefs[i].name);
		if (rd_check(r, i, &rows[i], e))
			return -1;
		uint64_t need = i <= D_BRCOUNT ? nb : i == D_FOFF ? r->nframes + 1
		              : i <= D_FBSEQ ? r->nframes : r->nrec;
		if (rows[i] < need)
			return ms_err_set(e, "'%s' is being written, and its batch %llu reaches past the "
			                  "end of /tracking/%s (%llu rows, %llu needed)", r->path,
			                  (unsigned long long)(nb - 1), dsdefs[i].name,
			                  (unsigned long long)rows[i], (unsigned long long)need);
	}
	return 0;
}

/* Open and validate: group, datasets, dtypes, shapes, frame_offsets. */
static int rd_open(struct rd *r, const char *path, ms_err *e)
{
	r->path = path;
	r->file = r->group = H5I_INVALID_HID;
	for (int i = 0; i < ND; i++)
		r->ds[i] = H5I_INVALID_HID;
	r->nframes = r->nrec = r->nbatch = 0;
	uint64_t *buf = NULL;

	if ((r->file = open_h5(path, &r->swmr, e)) < 0)
		return -1;
	htri_t has = H5Lexists(r->file, "tracking", H5P_DEFAULT);
	if (has > 0)
		r->group = H5Gopen2(r->file, "tracking", H5P_DEFAULT);
	if (r->group < 0) {
		ms_err_set(e, "'%s' has no /tracking group (not a MagScope tracks file)", path);
		goto fail;
	}
	if (H5Aexists(r->group, "schema_version") > 0) {
		int64_t v = 0;
		hid_t a = H5Aopen(r->group, "schema_version", H5P_DEFAULT);
		herr_t ok = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_INT64, &v);
		ms_h5_close(&a, H5Aclose);
		if (ok < 0 || v != 1) {
			ms_err_set(e, "'%s': /tracking schema_version %lld is not supported (expected 1)",
			           path, (long long)v);
			goto fail;
		}
	}
	uint64_t rows[ND] = {0};
	for (int i = 0; i < ND; i++) {
		htri_t ex = H5Lexists(r->group, dsdefs[i].name, H5P_DEFAULT);
		if (ex > 0)
			r->ds[i] = H5Dopen2(r->group, dsdefs[i].name, H5P_DEFAULT);
		if (r->ds[i] < 0) {
			if (!is_required(i) && ex == 0)
				continue;
			ms_err_set(e, "'%s': dataset /tracking/%s is missing", path, dsdefs[i].name);
			goto fail;
		}
		if (rd_check(r, i, &rows[i], e))
			goto fail;
	}
	if (r->swmr ? rd_committed(r, rows, e) : rd_sizes(r, rows, e))
		goto fail;
	uint64_t nf = r->nframes, nr = r->nrec;

	/* frame_offsets: 0, non-decreasing, ending at the record count;
	 * checked in blocks before any row is handed out. */
	buf = malloc(READ_BLOCK * sizeof *buf);
	if (!buf) {
		ms_err_set(e, "'%s': out of memory", path);
		goto fail;
	}
	uint64_t prev = 0;
	for (uint64_t s = 0; s < nf + 1; s += READ_BLOCK) {
		size_t n = nf + 1 - s < READ_BLOCK ? (size_t)(nf + 1 - s) : READ_BLOCK;
		if (rd_rows(r, D_FOFF, s, n, buf, e))
			goto fail;
		for (size_t j = 0; j < n; j++) {
			if ((s == 0 && j == 0 && buf[0] != 0) || buf[j] < prev || buf[j] > nr) {
				ms_err_set(e, "'%s': /tracking/frame_offsets[%llu] = %llu is inconsistent "
				           "(previous %llu, %llu records)", path,
				           (unsigned long long)(s + j), (unsigned long long)buf[j],
				           (unsigned long long)prev, (unsigned long long)nr);
				goto fail;
			}
			prev = buf[j];
		}
	}
	if (prev != nr) {
		ms_err_set(e, "'%s': /tracking/frame_offsets ends at %llu but there are %llu records",
		           path, (unsigned long long)prev, (unsigned long long)nr);
		goto fail;
	}
	free(buf);
	return 0;
fail:
	free(buf);
	rd_close(r);
	return -1;
}

/* The record window of the reader: records [start, end) in memory. */
struct win {
	uint64_t start, end;
	size_t cap;
	uint16_t *bead;
	double *pos;
	uint16_t *roi;
};

static int win_load(struct rd *r, struct win *w, uint64_t a, size_t need, ms_err *e)
{
	size_t n = need > READ_BLOCK ? need : READ_BLOCK;
	if (n > r->nrec - a)
		n = (size_t)(r->nrec - a);
	if (n > w->cap) {
		uint16_t *b = realloc(w->bead, n * sizeof *b);
		if (b)
			w->bead = b;
		double *p = realloc(w->pos, n * 3 * sizeof *p);
		if (p)
			w->pos = p;
		bool roi_ok = true;
		if (r->ds[D_ROI] >= 0) {
			uint16_t *q = realloc(w->roi, n * 2 * sizeof *q);
			if (q)
				w->roi = q;
			roi_ok = q != NULL;
		}
		if (!b || !p || !roi_ok)
			return ms_err_set(e, "'%s': out of memory for %zu records", r->path, n);
		w->cap = n;
	}
	if (rd_rows(r, D_BEAD, a, n, w->bead, e) || rd_rows(r, D_POS, a, n, w->pos, e) ||
	    (r->ds[D_ROI] >= 0 && rd_rows(r, D_ROI, a, n, w->roi, e)))
		return -1;
	w->start = a;
	w->end = a + n;
	return 0;
}

int ms_h5tracks_read(const char *path, ms_tracks_fn fn, void *ctx, ms_err *e)
{
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	struct rd r;
	if (rd_open(&r, path, e)) {
		ms_h5_quiet_off(&q);
		return -1;
	}
	int rc = -1;
	struct win w = {0};
	size_t rcap = 1;
	struct ms_track *rows = malloc(rcap * sizeof *rows);
	uint64_t *ts = malloc(READ_BLOCK * sizeof *ts);
	uint64_t *off = malloc((READ_BLOCK + 1) * sizeof *off);
	if (!rows || !ts || !off) {
		ms_err_set(e, "'%s': out of memory", path);
		goto out;
	}
	for (uint64_t f0 = 0; f0 < r.nframes; f0 += READ_BLOCK) {
		size_t nf = r.nframes - f0 < READ_BLOCK ? (size_t)(r.nframes - f0) : READ_BLOCK;
		if (rd_rows(&r, D_FTS, f0, nf, ts, e) || rd_rows(&r, D_FOFF, f0, nf + 1, off, e))
			goto out;
		for (size_t j = 0; j < nf; j++) {
			uint64_t a = off[j], b = off[j + 1];
			size_t n = (size_t)(b - a);
			if (n && (a < w.start || b > w.end) && win_load(&r, &w, a, n, e))
				goto out;
			if (n > rcap) {
				struct ms_track *p = realloc(rows, n * sizeof *p);
				if (!p) {
					ms_err_set(e, "'%s': out of memory for a frame of %zu records", path, n);
					goto out;
				}
				rows = p;
				rcap = n;
			}
			for (size_t k = 0; k < n; k++) {
				size_t x = (size_t)(a - w.start) + k;
				rows[k] = (struct ms_track){
					.frame = f0 + j,
					.t_ns = ts[j],
					.bead = w.bead[x],
					.x_nm = w.pos[3 * x],
					.y_nm = w.pos[3 * x + 1],
					.z_nm = w.pos[3 * x + 2],
					.roi_x0 = w.roi ? w.roi[2 * x] : -1,
					.roi_y0 = w.roi ? w.roi[2 * x + 1] : -1,
				};
			}
			/* The callback may call HDF5 itself and expect its own
			 * error printing; give it back for the call. */
			ms_h5_quiet_off(&q);
			int v = fn(ctx, rows, n);
			ms_h5_quiet_on(&q);
			if (v) {
				rc = v;
				goto out;
			}
		}
	}
	rc = 0;
out:
	free(ts);
	free(off);
	free(rows);
	free(w.bead);
	free(w.pos);
	free(w.roi);
	rd_close(&r);
	ms_h5_quiet_off(&q);
	return rc;
}

/* A scalar attribute as uint64; false if it is absent or unreadable. */
static bool attr_get_u64(hid_t obj, const char *name, uint64_t *v)
{
	if (H5Aexists(obj, name) <= 0)
		return false;
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
	bool ok = a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, v) >= 0;
	ms_h5_close(&a, H5Aclose);
	return ok;
}

int ms_h5tracks_summary(const char *path, struct ms_h5tracks_summary *s, ms_err *e)
{
	memset(s, 0, sizeof *s);
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	struct rd r;
	if (rd_open(&r, path, e)) {
		ms_h5_quiet_off(&q);
		return -1;
	}
	int rc = -1;
	uint8_t *seen = calloc(65536 / 8, 1);
	uint16_t *ids = malloc(READ_BLOCK * sizeof *ids);
	uint64_t *ts = malloc(READ_BLOCK * sizeof *ts);
	if (!seen || !ids || !ts) {
		ms_err_set(e, "'%s': out of memory", path);
		goto out;
	}
	s->frames = r.nframes;
	s->records = r.nrec;
	s->batches = r.nbatch;
	uint64_t v;
	s->recording_id = attr_get_u64(r.group, "recording_id", &v) ? v : 0;
	s->recording_start_ns = attr_get_u64(r.group, "recording_start_ns", &v) ? v : 0;
	s->file_start_ns = attr_get_u64(r.group, "file_start_ns", &v) ? v : 0;
	s->rotation_interval_ns = attr_get_u64(r.group, "rotation_interval_ns", &v) ? v : 0;
	s->include_roi_positions = attr_get_u64(r.group, "include_roi_positions", &v)
	                           ? v != 0 : r.ds[D_ROI] >= 0;
	uint64_t lo, hi;
	/* While a SWMR writer is at work the attributes may be a batch
	 * ahead of the complete batches read here: scan those instead. */
	if (!r.swmr && attr_get_u64(r.group, "min_frame_timestamp_ns", &lo) &&
	    attr_get_u64(r.group, "max_frame_timestamp_ns", &hi)) {
		s->min_t_ns = lo;
		s->max_t_ns = hi;
	} else if (r.nframes) {
		/* Files from before the range attributes, and files being
		 * written: scan. */
		s->min_t_ns = UINT64_MAX;
		for (uint64_t f0 = 0; f0 < r.nframes; f0 += READ_BLOCK) {
			size_t n = r.nframes - f0 < READ_BLOCK ? (size_t)(r.nframes - f0) : READ_BLOCK;
			if (rd_rows(&r, D_FTS, f0, n, ts, e))
				goto out;
			for (size_t j = 0; j < n; j++) {
				if (ts[j] < s->min_t_ns)
					s->min_t_ns = ts[j];
				if (ts[j] > s->max_t_ns)
					s->max_t_ns = ts[j];
			}
		}
	}
	for (uint64_t a = 0; a < r.nrec; a += READ_BLOCK) {
		size_t n = r.nrec - a < READ_BLOCK ? (size_t)(r.nrec - a) : READ_BLOCK;
		if (rd_rows(&r, D_BEAD, a, n, ids, e))
			goto out;
		for (size_t j = 0; j < n; j++) {
			uint8_t bit = (uint8_t)(1u << (ids[j] & 7));
			if (!(seen[ids[j] >> 3] & bit)) {
				seen[ids[j] >> 3] |= bit;
				s->nbeads++;
			}
		}
	}
	rc = 0;
out:
	free(seen);
	free(ids);
	free(ts);
	rd_close(&r);
	ms_h5_quiet_off(&q);
	return rc;
}

bool ms_h5tracks_is_tracks(const char *path)
{
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	ms_err ignore;
	bool yes = false, swmr;
	hid_t f = open_h5(path, &swmr, &ignore);
	if (f >= 0 && H5Lexists(f, "tracking", H5P_DEFAULT) > 0) {
		hid_t g = H5Gopen2(f, "tracking", H5P_DEFAULT);
		yes = g >= 0;
		ms_h5_close(&g, H5Gclose);
	}
	ms_h5_close(&f, H5Fclose);
	ms_h5_quiet_off(&q);
	return yes;
}

/* ------------------------------------------------------------- append */

void ms_h5tracks_counts(const struct ms_h5tracks *w, uint64_t *frames, uint64_t *records,
                        uint64_t *batches)
{
	if (frames)
		*frames = w->nframes;
	if (records)
		*records = w->nrec;
	if (batches)
		*batches = w->nbatch;
}

/* What the writer needs to know of a file it appends to. */
static int append_state(struct ms_h5tracks *w, ms_err *e)
{
	struct rd r;
	if (rd_open(&r, w->path, e))
		return -1;
	int rc = -1;
	uint64_t *buf = NULL;
	if (r.swmr) {
		ms_err_set(e, "'%s' is open in a writer, or its writer was killed (`h5clear -s` "
		           "clears the mark it left); cannot append", w->path);
		goto out;
	}
	if (!has_batches(&r) || r.ds[D_FBSEQ] < 0) {
		ms_err_set(e, "'%s' has no batch datasets (an early MagScope file); cannot append",
		           w->path);
		goto out;
	}
	if (!(buf = malloc(READ_BLOCK * sizeof *buf))) {
		ms_err_set(e, "'%s': out of memory", w->path);
		goto out;
	}
	/* Batches may have been appended out of order: one past the largest. */
	for (uint64_t a = 0; a < r.nbatch; a += READ_BLOCK) {
		size_t n = r.nbatch - a < READ_BLOCK ? (size_t)(r.nbatch - a) : READ_BLOCK;
		if (rd_rows(&r, D_BSEQ, a, n, buf, e))
			goto out;
		for (size_t j = 0; j < n; j++)
			if (buf[j] + 1 > w->seq)
				w->seq = buf[j] + 1;
	}
	w->nbatch = r.nbatch;
	w->nframes = r.nframes;
	w->nrec = r.nrec;
	w->roi = r.ds[D_ROI] >= 0;
	uint64_t lo, hi;
	w->attrs_exist = attr_get_u64(r.group, "min_frame_timestamp_ns", &lo) &&
	                 attr_get_u64(r.group, "max_frame_timestamp_ns", &hi);
	if (w->attrs_exist && r.nframes) {
		w->have_t = true;
		w->min_t = lo;
		w->max_t = hi;
	}
	rc = 0;
out:
	free(buf);
	rd_close(&r);
	return rc;
}

struct ms_h5tracks *ms_h5tracks_open_append(const char *path, bool swmr, ms_err *e)
{
	struct ms_h5tracks *w = writer_new(path, e);
	if (!w)
		return NULL;
	w->swmr = swmr;
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	hid_t fapl = H5I_INVALID_HID;
	if (append_state(w, e))
		goto fail;
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0 || (swmr && H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0)) {
		ms_h5_fail(e, "'%s': cannot set up file access", path);
		goto fail;
	}
	if ((w->file = H5Fopen(path, H5F_ACC_RDWR, fapl)) < 0) {
		ms_h5_fail(e, "cannot open '%s' for appending", path);
		goto fail;
	}
	if (swmr) {
		H5F_info2_t fi;
		if (H5Fget_info2(w->file, &fi) < 0) {
			ms_h5_fail(e, "'%s': cannot read the superblock", path);
			goto fail;
		}
		if (fi.super.version < 3) {
			ms_err_set(e, "'%s' is in the HDF5 1.8 format (superblock version %u), which "
			           "SWMR cannot write; append without SWMR", path, fi.super.version);
			goto fail;
		}
	}
	if ((w->group = H5Gopen2(w->file, "tracking", H5P_DEFAULT)) < 0) {
		ms_h5_fail(e, "'%s': cannot open group /tracking", path);
		goto fail;
	}
	for (int i = 0; i < ND; i++) {
		if (i == D_ROI && !w->roi)
			continue;
		if ((w->ds[i] = H5Dopen2(w->group, dsdefs[i].name, H5P_DEFAULT)) < 0) {
			ms_h5_fail(e, "'%s': cannot open /tracking/%s", path, dsdefs[i].name);
			goto fail;
		}
	}
	if (swmr && start_swmr(w, e))
		goto fail;
	H5Pclose(fapl);
	ms_h5_quiet_off(&q);
	return w;
fail:
	ms_h5_close(&fapl, H5Pclose);
	ms_h5_quiet_off(&q);
	writer_free(w);
	return NULL;
}
