/*
 * t-tracks: the TSV form, and the HDF5 tracks file written in MagScope's
 * schema: read back with ms_h5tracks_read and checked independently with
 * h5py (every attribute, dataset, dtype, shape, chunk size and value), a
 * writer killed after three batches, rollback of a failed append, input
 * validation, schema validation of foreign files, and reading in bounded
 * blocks across block boundaries. SWMR: a writer process (this program
 * run again with --swmr-writer) appends while ms-info, h5py (swmr=True,
 * fresh and long-lived) and ms_h5tracks_read read the file, in lock-step
 * and free-running, and is then killed in mid-write; appending to an
 * existing file, with and without SWMR.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include "tracks.h"

#define T0 1700000000000000000ull

/* ------------------------------------------------------- the data set */

/*
 * Three batches: frames with 3, 2 | 0, 4, 1 | 3 rows. The second batch's
 * timestamps are earlier than the first's (parallel workers append out of
 * order), so the running min/max attributes are exercised.
 */
static const size_t rows_per_frame[] = {3, 2, 0, 4, 1, 3};
static const size_t batch_frames[] = {2, 3, 1};
#define NFRAMES 6
#define NBATCH 3
#define NREC 13

struct data {
	uint64_t t_ns[NFRAMES];
	size_t off[NFRAMES + 1];	/* global offsets */
	struct ms_track rows[NREC];
};

static void make_data(struct data *d)
{
	static const int64_t dt_ms[NFRAMES] = {0, 10, -30, -20, -10, 50};
	size_t r = 0;
	for (size_t f = 0; f < NFRAMES; f++) {
		d->t_ns[f] = T0 + (uint64_t)(dt_ms[f] * 1000000 + 1000000000);
		d->off[f] = r;
		for (size_t k = 0; k < rows_per_frame[f]; k++, r++) {
			d->rows[r] = (struct ms_track){
				.frame = f,
				.t_ns = d->t_ns[f],
				.bead = r == 5 ? 65535 : (uint32_t)((r * 7 + 3) % 12),
				.x_nm = 1000.5 + 0.25 * (double)r,
				.y_nm = -200.125 - (double)r,
				.z_nm = r % 4 == 1 ? NAN : 3.5 * (double)r - 10.0 + 1e-7,
				.roi_x0 = (int32_t)(10 * r),
				.roi_y0 = (int32_t)(65535 - r),
			};
		}
	}
	d->off[NFRAMES] = r;
}

static const struct ms_h5tracks_opts opts_roi = {
	.include_roi_positions = true,
	.recording_id = 7,
	.recording_start_ns = T0 - 5000000000ull,
	.file_start_ns = 0,
	.rotation_interval_ns = 3600000000000ull,
};

/* Append batches [0, nb) of d; returns 0 or -1 with e set. */
/* Append batch b of d. */
static int append_one(struct ms_h5tracks *w, const struct data *d, size_t b, ms_err *e)
{
	size_t f0 = 0;
	for (size_t i = 0; i < b; i++)
		f0 += batch_frames[i];
	size_t nf = batch_frames[b];
	size_t off[8];
	for (size_t i = 0; i <= nf; i++)
		off[i] = d->off[f0 + i] - d->off[f0];
	struct ms_track_batch batch = {
		.nframes = nf, .t_ns = &d->t_ns[f0], .offsets = off, .rows = &d->rows[d->off[f0]],
	};
	return ms_h5tracks_append(w, &batch, e);
}

static int append_batches(struct ms_h5tracks *w, const struct data *d, size_t nb, ms_err *e)
{
	for (size_t b = 0; b < nb; b++)
		if (append_one(w, d, b, e))
			return -1;
	return 0;
}

static int write_file(const char *path, const struct data *d, const struct ms_h5tracks_opts *o,
                      size_t nb, ms_err *e)
{
	struct ms_h5tracks *w = ms_h5tracks_create(path, o, false, e);
	if (!w)
		return -1;
	if (append_batches(w, d, nb, e)) {
		ms_h5tracks_close(w, NULL);
		return -1;
	}
	return ms_h5tracks_close(w, e);
}

/* ------------------------------------------------ reading it back (C) */

struct check {
	const struct data *d;
	bool roi;
	size_t frames, rows, bad;
	char first_bad[200];
};

static bool same(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

static int check_fn(void *ctx, const struct ms_track *rows, size_t n)
{
	struct check *c = ctx;
	size_t f = c->frames++;
	if (f >= NFRAMES || n != c->d->off[f + 1] - c->d->off[f]) {
		if (!c->bad++)
			snprintf(c->first_bad, sizeof c->first_bad, "frame %zu has %zu rows", f, n);
		return 0;
	}
	for (size_t k = 0; k < n; k++) {
		const struct ms_track *w = &c->d->rows[c->d->off[f] + k], *g = &rows[k];
		bool ok = g->frame == f && g->t_ns == c->d->t_ns[f] && g->bead == w->bead &&
		          same(g->x_nm, w->x_nm) && same(g->y_nm, w->y_nm) && same(g->z_nm, w->z_nm) &&
		          g->roi_x0 == (c->roi ? w->roi_x0 : -1) && g->roi_y0 == (c->roi ? w->roi_y0 : -1);
		if (!ok && !c->bad++)
			snprintf(c->first_bad, sizeof c->first_bad,
			         "frame %zu row %zu: frame %llu t %llu bead %u x %g y %g z %g roi %d,%d", f, k,
			         (unsigned long long)g->frame, (unsigned long long)g->t_ns, g->bead, g->x_nm,
			         g->y_nm, g->z_nm, g->roi_x0, g->roi_y0);
		c->rows++;
	}
	return 0;
}

static void check_read(const char *path, const struct data *d, bool roi, const char *what)
{
	struct check c = {.d = d, .roi = roi};
	ms_err e = {""};
	int rc = ms_h5tracks_read(path, check_fn, &c, &e);
	tap_int(rc, 0, "%s: ms_h5tracks_read succeeds", what);
	if (rc)
		tap_diag("%s", e.msg);
	tap_int((long long)c.frames, NFRAMES, "%s: one call per frame", what);
	tap_int((long long)c.rows, NREC, "%s: every row", what);
	tap_int((long long)c.bad, 0, "%s: every value as written (NaN z, ROI, t_ns, frame index)", what);
	if (c.bad)
		tap_diag("%s", c.first_bad);
}

/* ------------------------------------------------ h5py cross-check */

static void py_list_u64(FILE *f, const char *name, const uint64_t *v, size_t n)
{
	fprintf(f, "%s = [", name);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)v[i]);
	fprintf(f, "]\n");
}

static void py_double(FILE *f, double v)
{
	if (isnan(v))
		fprintf(f, "nan");
	else
		fprintf(f, "%.17g", v);
}

/*
 * Write a Python script asserting the exact schema and contents of a
 * file holding batches [0, nb) of d, and run it with h5py.
 */
static bool py_check(const char *h5, const struct data *d, const struct ms_h5tracks_opts *o,
                     size_t nb)
{
	char script[512];
	snprintf(script, sizeof script, "%s/check.py", tap_tmpdir());
	FILE *f = fopen(script, "w");
	if (!f)
		return false;
	size_t nf = 0;
	for (size_t b = 0; b < nb; b++)
		nf += batch_frames[b];
	size_t nr = d->off[nf];
	uint64_t off[NFRAMES + 1], fbseq[NFRAMES], bseq[NBATCH], bfs[NBATCH], bfc[NBATCH], brs[NBATCH],
	    brc[NBATCH];
	for (size_t i = 0; i <= nf; i++)
		off[i] = d->off[i];
	size_t f0 = 0;
	for (size_t b = 0; b < nb; b++) {
		bseq[b] = b;
		bfs[b] = f0;
		bfc[b] = batch_frames[b];
		brs[b] = d->off[f0];
		brc[b] = d->off[f0 + batch_frames[b]] - d->off[f0];
		for (size_t i = 0; i < batch_frames[b]; i++)
			fbseq[f0 + i] = b;
		f0 += batch_frames[b];
	}
	uint64_t tmin = UINT64_MAX, tmax = 0;
	for (size_t i = 0; i < nf; i++) {
		tmin = d->t_ns[i] < tmin ? d->t_ns[i] : tmin;
		tmax = d->t_ns[i] > tmax ? d->t_ns[i] : tmax;
	}
	fprintf(f, "import sys, h5py, numpy as np\nnan = float('nan')\n");
	fprintf(f, "NB, NF, NR, ROI = %zu, %zu, %zu, %s\n", nb, nf, nr,
	        o->include_roi_positions ? "True" : "False");
	py_list_u64(f, "TS", d->t_ns, nf);
	py_list_u64(f, "OFF", off, nf + 1);
	py_list_u64(f, "FBSEQ", fbseq, nf);
	py_list_u64(f, "BSEQ", bseq, nb);
	py_list_u64(f, "BFS", bfs, nb);
	py_list_u64(f, "BFC", bfc, nb);
	py_list_u64(f, "BRS", brs, nb);
	py_list_u64(f, "BRC", brc, nb);
	fprintf(f, "BEAD = [");
	for (size_t i = 0; i < nr; i++)
		fprintf(f, "%s%u", i ? ", " : "", d->rows[i].bead);
	fprintf(f, "]\nPOS = [");
	for (size_t i = 0; i < nr; i++) {
		fprintf(f, "%s[", i ? ", " : "");
		py_double(f, d->rows[i].x_nm);
		fprintf(f, ", ");
		py_double(f, d->rows[i].y_nm);
		fprintf(f, ", ");
		py_double(f, d->rows[i].z_nm);
		fprintf(f, "]");
	}
	fprintf(f, "]\nROIPX = [");
	for (size_t i = 0; i < nr; i++)
		fprintf(f, "%s[%d, %d]", i ? ", " : "", d->rows[i].roi_x0, d->rows[i].roi_y0);
	fprintf(f, "]\n");
	fprintf(f, "ATTRS = {\n"
	        "  'schema_version': (1, 'int64'),\n"
	        "  'include_roi_positions': (%d, 'uint8'),\n"
	        "  'record_order': ('writer_append_order', 'str'),\n"
	        "  'batch_sequence_order': ('video_task_enqueue_order', 'str'),\n"
	        "  'recording_id': (%llu, 'uint64'),\n"
	        "  'recording_start_ns': (%llu, 'uint64'),\n"
	        "  'file_start_ns': (%llu, 'uint64'),\n"
	        "  'rotation_interval_ns': (%llu, 'uint64'),\n",
	        o->include_roi_positions, (unsigned long long)o->recording_id,
	        (unsigned long long)o->recording_start_ns,
	        (unsigned long long)(o->file_start_ns ? o->file_start_ns : o->recording_start_ns),
	        (unsigned long long)o->rotation_interval_ns);
	/* SWMR files have the range from the start, 0 until a frame. */
	if (nb || o->swmr)
		fprintf(f, "  'min_frame_timestamp_ns': (%llu, 'uint64'),\n"
		        "  'max_frame_timestamp_ns': (%llu, 'uint64'),\n",
		        nb ? (unsigned long long)tmin : 0ull, nb ? (unsigned long long)tmax : 0ull);
	fprintf(f, "}\n");
	fputs(
	    "fails = []\n"
	    "def check(c, m):\n"
	    "    if not c: fails.append(m)\n"
	    "f = h5py.File(sys.argv[1], 'r')\n"
	    "check(list(f.keys()) == ['tracking'], 'root holds %r' % list(f.keys()))\n"
	    "check(len(f.attrs) == 0, 'root attributes %r' % list(f.attrs))\n"
	    "g = f['tracking']\n"
	    "check(isinstance(g, h5py.Group), '/tracking is not a group')\n"
	    "check(sorted(g.attrs.keys()) == sorted(ATTRS), 'attributes %r' % sorted(g.attrs.keys()))\n"
	    "for k, (v, dt) in ATTRS.items():\n"
	    "    if k not in g.attrs: continue\n"
	    "    a = g.attrs.get_id(k)\n"
	    "    check(a.shape == (), '%s is not scalar: %r' % (k, a.shape))\n"
	    "    if dt == 'str':\n"
	    "        si = h5py.check_string_dtype(a.dtype)\n"
	    "        check(si is not None and si.encoding == 'utf-8' and si.length is None,\n"
	    "              '%s is not a variable-length UTF-8 string: %r' % (k, si))\n"
	    "        check(g.attrs[k] == v, '%s = %r, want %r' % (k, g.attrs[k], v))\n"
	    "    else:\n"
	    "        check(a.dtype == np.dtype(dt), '%s dtype %s, want %s' % (k, a.dtype, dt))\n"
	    "        check(g.attrs[k] == v, '%s = %r, want %r' % (k, g.attrs[k], v))\n"
	    "DS = {\n"
	    "  'batch_sequence': ('uint64', (NB,), (1024,)),\n"
	    "  'batch_frame_start': ('uint64', (NB,), (1024,)),\n"
	    "  'batch_frame_count': ('uint64', (NB,), (1024,)),\n"
	    "  'batch_record_start': ('uint64', (NB,), (1024,)),\n"
	    "  'batch_record_count': ('uint64', (NB,), (1024,)),\n"
	    "  'frame_timestamps_ns': ('uint64', (NF,), (4096,)),\n"
	    "  'frame_offsets': ('uint64', (NF + 1,), (4097,)),\n"
	    "  'frame_batch_sequence': ('uint64', (NF,), (4096,)),\n"
	    "  'bead_ids': ('uint16', (NR,), (65536,)),\n"
	    "  'positions_nm': ('float64', (NR, 3), (65536, 3)),\n"
	    "}\n"
	    "if ROI: DS['roi_positions_px'] = ('uint16', (NR, 2), (65536, 2))\n"
	    "check(sorted(g.keys()) == sorted(DS), 'datasets %r' % sorted(g.keys()))\n"
	    "for k, (dt, shape, chunks) in DS.items():\n"
	    "    if k not in g: continue\n"
	    "    d = g[k]\n"
	    "    check(d.dtype == np.dtype(dt), '%s dtype %s, want %s' % (k, d.dtype, dt))\n"
	    "    check(d.shape == shape, '%s shape %r, want %r' % (k, d.shape, shape))\n"
	    "    check(d.chunks == chunks, '%s chunks %r, want %r' % (k, d.chunks, chunks))\n"
	    "    check(d.maxshape == (None,) + shape[1:], '%s maxshape %r' % (k, d.maxshape))\n"
	    "    check(d.compression is None, '%s is compressed' % k)\n"
	    "def eq(k, want, dt):\n"
	    "    if k not in g: return\n"
	    "    got = g[k][()]\n"
	    "    w = np.array(want, dtype=dt)\n"
	    "    if w.size == 0 and got.size == 0: w = w.reshape(got.shape)\n"
	    "    check(got.shape == w.shape and np.array_equal(got, w, equal_nan=(dt == 'float64')),\n"
	    "          '%s = %r, want %r' % (k, got, w))\n"
	    "eq('frame_timestamps_ns', TS, 'uint64')\n"
	    "eq('frame_offsets', OFF, 'uint64')\n"
	    "eq('frame_batch_sequence', FBSEQ, 'uint64')\n"
	    "eq('batch_sequence', BSEQ, 'uint64')\n"
	    "eq('batch_frame_start', BFS, 'uint64')\n"
	    "eq('batch_frame_count', BFC, 'uint64')\n"
	    "eq('batch_record_start', BRS, 'uint64')\n"
	    "eq('batch_record_count', BRC, 'uint64')\n"
	    "eq('bead_ids', BEAD, 'uint16')\n"
	    "eq('positions_nm', POS, 'float64')\n"
	    "if ROI: eq('roi_positions_px', ROIPX, 'uint16')\n"
	    "# records of frame i are [frame_offsets[i], frame_offsets[i+1])\n"
	    "o = g['frame_offsets'][()]\n"
	    "check(o[0] == 0 and all(o[1:] >= o[:-1]) and o[-1] == g['bead_ids'].shape[0], 'offsets %r' % o)\n"
	    "for m in fails: print('#   h5py: ' + m)\n"
	    "sys.exit(1 if fails else 0)\n",
	    f);
	if (fclose(f) != 0)
		return false;
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, h5);
	fflush(stdout);
	return system(cmd) == 0;
}

/* Run a short Python snippet with argv[1] = path; true if it exits 0. */
static bool py_run(const char *code, const char *path)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 - '%s' <<'EOF'\nimport sys, h5py, numpy as np\n%s\nEOF\n",
	         path, code);
	fflush(stdout);
	return system(cmd) == 0;
}

static void tpath(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tap_tmpdir(), name);
}

/* ------------------------------------------------------------- tests */

static void test_tsv(void)
{
	struct ms_track rows[3] = {
		{0, 1700000000123456789ull, 3, 1.23449, -2.5, NAN, 10, 20},
		{1, 18446744073709551615ull, 65535, -0.0004, 1e6, -NAN, -1, -1},
		{2, 0, 0, 2.0005, 0, 5.25, 0, 0},
	};
	char path[512];
	tpath(path, sizeof path, "t.tsv");
	FILE *f = fopen(path, "w");
	tap_int(ms_tracks_tsv_header(f), 0, "tsv header written");
	tap_int(ms_tracks_tsv_write(f, rows, 3), 0, "tsv rows written");
	fclose(f);
	f = fopen(path, "r");
	char buf[1024] = "";
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	tap_str(buf,
	        "# frame\tt_ns\tbead\tx_nm\ty_nm\tz_nm\troi_x0\troi_y0\n"
	        "0\t1700000000123456789\t3\t1.234\t-2.500\tnan\t10\t20\n"
	        "1\t18446744073709551615\t65535\t-0.000\t1000000.000\tnan\t-1\t-1\n"
	        "2\t0\t0\t2.001\t0.000\t5.250\t0\t0\n",
	        "tsv text exact (NaN and -NaN as nan)");
	/* A stream that cannot be written. */
	f = fopen(path, "r");
	tap_int(ms_tracks_tsv_write(f, rows, 3), -1, "tsv write to a read-only stream fails");
	tap_int(ms_tracks_tsv_header(f), -1, "tsv header to a read-only stream fails");
	fclose(f);
}

/*
 * The same data written by h5py the way MagScope's writer does it (create
 * the group, attributes and empty datasets, then per batch resize, write
 * and update the range): `h5dump -p` of both files, which shows types,
 * shapes, chunking, fill and allocation properties, attributes and data,
 * must be identical.
 */
static void test_h5py_reference(const char *ours)
{
	char ref[512], cmd[2048];
	tpath(ref, sizeof ref, "reference.h5");
	bool made = py_run(
	    "src = h5py.File(sys.argv[1], 'r')['tracking']\n"
	    "f = h5py.File(sys.argv[1].replace('run.h5', 'reference.h5'), 'w')\n"
	    "g = f.create_group('tracking')\n"
	    "a = src.attrs\n"
	    "g.attrs['schema_version'] = 1\n"
	    "g.attrs['include_roi_positions'] = np.uint8(a['include_roi_positions'])\n"
	    "g.attrs['record_order'] = 'writer_append_order'\n"
	    "g.attrs['batch_sequence_order'] = 'video_task_enqueue_order'\n"
	    "for k in ('recording_id', 'recording_start_ns', 'file_start_ns', 'rotation_interval_ns'):\n"
	    "    g.attrs[k] = np.uint64(a[k])\n"
	    "u8 = np.uint64\n"
	    "for k in ('batch_sequence', 'batch_frame_start', 'batch_frame_count', 'batch_record_start',\n"
	    "          'batch_record_count'):\n"
	    "    g.create_dataset(k, shape=(0,), maxshape=(None,), chunks=(1024,), dtype=u8)\n"
	    "g.create_dataset('frame_timestamps_ns', shape=(0,), maxshape=(None,), chunks=(4096,), dtype=u8)\n"
	    "g.create_dataset('frame_offsets', data=np.zeros((1,), dtype=u8), maxshape=(None,), chunks=(4097,))\n"
	    "g.create_dataset('frame_batch_sequence', shape=(0,), maxshape=(None,), chunks=(4096,), dtype=u8)\n"
	    "g.create_dataset('bead_ids', shape=(0,), maxshape=(None,), chunks=(65536,), dtype=np.uint16)\n"
	    "g.create_dataset('positions_nm', shape=(0, 3), maxshape=(None, 3), chunks=(65536, 3), dtype=np.float64)\n"
	    "g.create_dataset('roi_positions_px', shape=(0, 2), maxshape=(None, 2), chunks=(65536, 2), dtype=np.uint16)\n"
	    "def app(k, v):\n"
	    "    d = g[k]; n = d.shape[0]; d.resize((n + len(v),) + d.shape[1:]); d[n:] = v\n"
	    "lo = hi = None\n"
	    "for b in range(src['batch_sequence'].shape[0]):\n"
	    "    fs, fc = int(src['batch_frame_start'][b]), int(src['batch_frame_count'][b])\n"
	    "    rs, rc = int(src['batch_record_start'][b]), int(src['batch_record_count'][b])\n"
	    "    for k in ('batch_sequence', 'batch_frame_start', 'batch_frame_count', 'batch_record_start',\n"
	    "              'batch_record_count'):\n"
	    "        app(k, src[k][b:b + 1])\n"
	    "    ts = src['frame_timestamps_ns'][fs:fs + fc]\n"
	    "    app('frame_timestamps_ns', ts)\n"
	    "    app('frame_offsets', src['frame_offsets'][fs + 1:fs + fc + 1])\n"
	    "    app('frame_batch_sequence', src['frame_batch_sequence'][fs:fs + fc])\n"
	    "    for k in ('bead_ids', 'positions_nm', 'roi_positions_px'):\n"
	    "        app(k, src[k][rs:rs + rc])\n"
	    "    lo = ts.min() if lo is None else min(lo, ts.min())\n"
	    "    hi = ts.max() if hi is None else max(hi, ts.max())\n"
	    "    g.attrs['min_frame_timestamp_ns'] = np.uint64(lo)\n"
	    "    g.attrs['max_frame_timestamp_ns'] = np.uint64(hi)\n"
	    "f.close()\n",
	    ours);
	tap_ok(made, "h5py writes a reference file the way MagScope does");
	snprintf(cmd, sizeof cmd,
	         "cd '%s' && h5dump -p run.h5 | sed 1d > run.dump && h5dump -p reference.h5 | sed 1d > ref.dump"
	         " && diff ref.dump run.dump | head -20 | sed 's/^/#   /'; cmp -s ref.dump run.dump",
	         tap_tmpdir());
	fflush(stdout);
	tap_ok(made && system(cmd) == 0, "h5dump -p: ours identical to the h5py/MagScope reference");
}

static void test_roundtrip(const struct data *d)
{
	char path[512];
	ms_err e = {""};
	tpath(path, sizeof path, "run.h5");
	tap_int(write_file(path, d, &opts_roi, NBATCH, &e), 0, "write 3 batches with ROI positions");
	if (e.msg[0])
		tap_diag("%s", e.msg);
	check_read(path, d, true, "roi file");
	tap_ok(py_check(path, d, &opts_roi, NBATCH), "h5py: exact MagScope schema and values (roi)");
	test_h5py_reference(path);

	struct ms_h5tracks_opts o = opts_roi;
	o.include_roi_positions = false;
	o.file_start_ns = T0 - 1000;
	tpath(path, sizeof path, "noroi.h5");
	tap_int(write_file(path, d, &o, NBATCH, &e), 0, "write 3 batches without ROI positions");
	check_read(path, d, false, "no-roi file");
	tap_ok(py_check(path, d, &o, NBATCH), "h5py: exact MagScope schema and values (no roi)");

	struct ms_h5tracks_summary s;
	tap_int(ms_h5tracks_summary(path, &s, &e), 0, "summary");
	tap_int((long long)s.frames, NFRAMES, "summary frames");
	tap_int((long long)s.records, NREC, "summary records");
	tap_int((long long)s.batches, NBATCH, "summary batches");
	tap_ok(s.min_t_ns == d->t_ns[2] && s.max_t_ns == d->t_ns[5],
	       "summary timestamp range is the running min/max (%llu..%llu)",
	       (unsigned long long)s.min_t_ns, (unsigned long long)s.max_t_ns);
	tap_ok(s.recording_id == 7 && s.recording_start_ns == T0 - 5000000000ull &&
	       s.file_start_ns == T0 - 1000 && s.rotation_interval_ns == 3600000000000ull &&
	       !s.include_roi_positions, "summary attributes");
	size_t distinct = 0;
	for (size_t i = 0; i < NREC; i++) {
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			seen |= d->rows[j].bead == d->rows[i].bead;
		distinct += !seen;
	}
	tap_int((long long)s.nbeads, (long long)distinct, "summary distinct beads");
	tap_ok(ms_h5tracks_is_tracks(path), "is_tracks: tracks file");
}

static void test_killed_writer(const struct data *d)
{
	char path[512];
	tpath(path, sizeof path, "killed.h5");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		ms_err e;
		struct ms_h5tracks *w = ms_h5tracks_create(path, &opts_roi, false, &e);
		if (!w || append_batches(w, d, NBATCH, &e))
			_exit(3);
		/* Die without closing: what is on disk is what the flushes
		 * after each batch put there. */
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "writer child killed by SIGKILL (status %#x)",
	       st);
	check_read(path, d, true, "killed writer");
	tap_ok(py_check(path, d, &opts_roi, NBATCH), "h5py reads the killed writer's file: all 3 batches");
}

static int count_fn(void *ctx, const struct ms_track *rows, size_t n)
{
	(void)rows;
	(void)n;
	int *c = ctx;
	return ++*c == 3 ? 42 : 0;
}

static void test_validation(const struct data *d)
{
	char path[512];
	ms_err e = {""};
	tpath(path, sizeof path, "valid.h5");
	struct ms_h5tracks *w = ms_h5tracks_create(path, &opts_roi, false, &e);
	tap_ok(w != NULL, "create");
	tap_int(append_batches(w, d, 1, &e), 0, "first batch");

	struct ms_track bad[2] = {d->rows[0], d->rows[1]};
	bad[1].bead = 70000;
	size_t off[2] = {0, 2};
	uint64_t t = T0 + 999;
	struct ms_track_batch b = {1, &t, off, bad};
	e.msg[0] = '\0';
	tap_int(ms_h5tracks_append(w, &b, &e), -1, "bead id 70000 rejected");
	tap_ok(strstr(e.msg, "70000") && strstr(e.msg, path), "message names the value and file: %s", e.msg);

	bad[1] = d->rows[1];
	bad[0].roi_x0 = -1;
	tap_int(ms_h5tracks_append(w, &b, &e), -1, "ROI x0 -1 rejected");
	tap_ok(strstr(e.msg, "-1") != NULL, "message names the ROI position: %s", e.msg);
	bad[0].roi_x0 = 0;
	bad[0].roi_y0 = 65536;
	tap_int(ms_h5tracks_append(w, &b, &e), -1, "ROI y0 65536 rejected");
	tap_ok(strstr(e.msg, "65536") != NULL, "message names the ROI position: %s", e.msg);

	size_t badoff[3] = {0, 2, 1};
	uint64_t t2[2] = {T0, T0};
	struct ms_track_batch b2 = {2, t2, badoff, bad};
	tap_int(ms_h5tracks_append(w, &b2, &e), -1, "decreasing offsets rejected");

	/* Nothing of the rejected batches reached the file, and the next
	 * good batch continues the sequence. */
	tap_int(append_batches(w, d, 1, &e), 0, "a good batch after the rejected ones");
	tap_int(ms_h5tracks_close(w, &e), 0, "close");
	tap_ok(py_run("g = h5py.File(sys.argv[1], 'r')['tracking']\n"
	              "assert list(g['batch_sequence'][()]) == [0, 1], g['batch_sequence'][()]\n"
	              "assert g['bead_ids'].shape == (10,), g['bead_ids'].shape\n"
	              "assert 70000 % 65536 not in g['bead_ids'][()]\n"
	              "assert list(g['batch_record_start'][()]) == [0, 5]\n",
	              path),
	       "h5py: rejected batches left no trace, batch_sequence 0, 1");

	/* Overwrite semantics. */
	e.msg[0] = '\0';
	w = ms_h5tracks_create(path, &opts_roi, false, &e);
	tap_ok(w == NULL, "existing file refused without overwrite");
	tap_ok(strstr(e.msg, path) && strstr(e.msg, "exists"), "message: %s", e.msg);
	struct ms_h5tracks_summary s;
	int src = ms_h5tracks_summary(path, &s, &e);
	tap_ok(src == 0 && s.frames == 4, "refused file untouched (%llu frames)",
	       (unsigned long long)s.frames);

	struct ms_h5tracks_opts o = {0};
	struct timespec a, z;
	clock_gettime(CLOCK_REALTIME, &a);
	w = ms_h5tracks_create(path, &o, true, &e);
	clock_gettime(CLOCK_REALTIME, &z);
	tap_ok(w != NULL, "overwrite allowed when asked");
	tap_int(ms_h5tracks_close(w, &e), 0, "close empty file");
	tap_int(ms_h5tracks_summary(path, &s, &e), 0, "summary of an empty file");
	uint64_t lo = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
	uint64_t hi = (uint64_t)z.tv_sec * 1000000000u + (uint64_t)z.tv_nsec;
	tap_ok(s.frames == 0 && s.records == 0 && s.batches == 0 && s.min_t_ns == 0 && s.max_t_ns == 0 &&
	       s.nbeads == 0, "empty: no frames, no range");
	tap_ok(s.recording_start_ns >= lo && s.recording_start_ns <= hi && s.file_start_ns == s.recording_start_ns,
	       "recording_start_ns 0 means now; file_start_ns defaults to it");
	tap_ok(py_run("g = h5py.File(sys.argv[1], 'r')['tracking']\n"
	              "assert 'min_frame_timestamp_ns' not in g.attrs and 'max_frame_timestamp_ns' not in g.attrs\n"
	              "assert list(g['frame_offsets'][()]) == [0]\n"
	              "assert 'roi_positions_px' not in g\n",
	              path),
	       "h5py: empty file has frame_offsets [0] and no timestamp range yet");
	int calls = 0;
	tap_int(ms_h5tracks_read(path, count_fn, &calls, &e), 0, "empty file reads");
	tap_int(calls, 0, "empty file: no frames handed out");
}

static void test_stop_and_foreign(const struct data *d)
{
	char path[512], other[512];
	ms_err e = {""};
	tpath(path, sizeof path, "run.h5");
	int calls = 0;
	tap_int(ms_h5tracks_read(path, count_fn, &calls, &e), 42, "callback's non-zero return is returned");
	tap_int(calls, 3, "and stops the read");
	(void)d;

	struct {
		const char *name, *py, *want;
	} cases[] = {
		{"nogroup.h5", "f = h5py.File(sys.argv[1], 'w'); f.create_group('other')", "/tracking"},
		{"int32.h5",
		 "import shutil\n"
		 "shutil.copy(sys.argv[1].replace('int32.h5', 'run.h5'), sys.argv[1])\n"
		 "g = h5py.File(sys.argv[1], 'r+')['tracking']\n"
		 "del g['bead_ids']; g['bead_ids'] = np.zeros(13, np.int32)",
		 "bead_ids"},
		{"offsets.h5",
		 "import shutil\n"
		 "shutil.copy(sys.argv[1].replace('offsets.h5', 'run.h5'), sys.argv[1])\n"
		 "g = h5py.File(sys.argv[1], 'r+')['tracking']\n"
		 "g['frame_offsets'][6] = 12",
		 "frame_offsets"},
		{"decr.h5",
		 "import shutil\n"
		 "shutil.copy(sys.argv[1].replace('decr.h5', 'run.h5'), sys.argv[1])\n"
		 "g = h5py.File(sys.argv[1], 'r+')['tracking']\n"
		 "g['frame_offsets'][2] = 1",
		 "frame_offsets[2]"},
		{"nopos.h5",
		 "import shutil\n"
		 "shutil.copy(sys.argv[1].replace('nopos.h5', 'run.h5'), sys.argv[1])\n"
		 "g = h5py.File(sys.argv[1], 'r+')['tracking']\n"
		 "del g['positions_nm']",
		 "positions_nm"},
		{"short.h5",
		 "import shutil\n"
		 "shutil.copy(sys.argv[1].replace('short.h5', 'run.h5'), sys.argv[1])\n"
		 "g = h5py.File(sys.argv[1], 'r+')['tracking']\n"
		 "g['positions_nm'].resize((12, 3))",
		 "positions_nm"},
		{"schema2.h5",
		 "import shutil\n"
		 "shutil.copy(sys.argv[1].replace('schema2.h5', 'run.h5'), sys.argv[1])\n"
		 "g = h5py.File(sys.argv[1], 'r+')['tracking']\n"
		 "g.attrs['schema_version'] = 2",
		 "schema_version"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tpath(other, sizeof other, cases[i].name);
		if (!py_run(cases[i].py, other)) {
			tap_ok(false, "make %s", cases[i].name);
			continue;
		}
		calls = 0;
		e.msg[0] = '\0';
		int rc = ms_h5tracks_read(other, count_fn, &calls, &e);
		tap_ok(rc == -1 && calls == 0 && strstr(e.msg, cases[i].want) && strstr(e.msg, other),
		       "%s rejected before any row: %s", cases[i].name, e.msg);
	}
	tpath(other, sizeof other, "nogroup.h5");
	tap_ok(!ms_h5tracks_is_tracks(other), "is_tracks: HDF5 without /tracking");
	tpath(other, sizeof other, "t.tsv");
	tap_ok(!ms_h5tracks_is_tracks(other), "is_tracks: text file");
	tap_int(ms_h5tracks_read(other, count_fn, &calls, &e), -1, "text file rejected");
	tap_ok(strstr(e.msg, "not an HDF5 file") != NULL, "message: %s", e.msg);
	tpath(other, sizeof other, "missing.h5");
	tap_ok(!ms_h5tracks_is_tracks(other), "is_tracks: missing file");
	tap_int(ms_h5tracks_read(other, count_fn, &calls, &e), -1, "missing file rejected");
	tap_ok(strstr(e.msg, "No such file") && strstr(e.msg, other), "message: %s", e.msg);
}

/* A file larger than the reader's blocks: 70000 frames of 2 rows, one
 * frame of 100000 rows, 3 frames of 1 row. */
struct big {
	uint64_t frame, rec;
	size_t bad;
	char first_bad[160];
};

static void big_row(uint64_t r, uint64_t f, struct ms_track *t)
{
	*t = (struct ms_track){
		.frame = f, .t_ns = T0 + f * 1000, .bead = (uint32_t)(r % 50000),
		.x_nm = 0.5 * (double)r, .y_nm = (double)f, .z_nm = r % 1000 == 0 ? NAN : -(double)r,
		.roi_x0 = -1, .roi_y0 = -1,
	};
}

static int big_fn(void *ctx, const struct ms_track *rows, size_t n)
{
	struct big *b = ctx;
	size_t want = b->frame < 70000 ? 2 : b->frame == 70000 ? 100000 : 1;
	if (n != want && !b->bad++)
		snprintf(b->first_bad, sizeof b->first_bad, "frame %llu: %zu rows",
		         (unsigned long long)b->frame, n);
	for (size_t k = 0; k < n; k++) {
		struct ms_track t;
		big_row(b->rec + k, b->frame, &t);
		if ((rows[k].frame != t.frame || rows[k].t_ns != t.t_ns || rows[k].bead != t.bead ||
		     !same(rows[k].x_nm, t.x_nm) || !same(rows[k].y_nm, t.y_nm) ||
		     !same(rows[k].z_nm, t.z_nm) || rows[k].roi_x0 != -1) && !b->bad++)
			snprintf(b->first_bad, sizeof b->first_bad, "frame %llu row %zu",
			         (unsigned long long)b->frame, k);
	}
	b->rec += n;
	b->frame++;
	return 0;
}

static void test_big(void)
{
	char path[512];
	ms_err e = {""};
	tpath(path, sizeof path, "big.h5");
	struct ms_h5tracks_opts o = {.recording_id = 1, .recording_start_ns = T0};
	struct ms_h5tracks *w = ms_h5tracks_create(path, &o, false, &e);
	const size_t nf[3] = {70000, 1, 3};
	uint64_t f = 0, r = 0;
	int rc = w ? 0 : -1;
	for (int bi = 0; bi < 3 && !rc; bi++) {
		size_t per = bi == 0 ? 2 : bi == 1 ? 100000 : 1, n = nf[bi] * per;
		uint64_t *t = malloc(nf[bi] * sizeof *t);
		size_t *off = malloc((nf[bi] + 1) * sizeof *off);
		struct ms_track *rows = malloc(n * sizeof *rows);
		for (size_t i = 0; i <= nf[bi]; i++)
			off[i] = i * per;
		for (size_t i = 0; i < nf[bi]; i++) {
			t[i] = T0 + (f + i) * 1000;
			for (size_t k = 0; k < per; k++)
				big_row(r + i * per + k, f + i, &rows[i * per + k]);
		}
		struct ms_track_batch b = {nf[bi], t, off, rows};
		rc = ms_h5tracks_append(w, &b, &e);
		f += nf[bi];
		r += n;
		free(t);
		free(off);
		free(rows);
	}
	tap_int(rc, 0, "big file written (%llu frames, %llu records)", (unsigned long long)f,
	        (unsigned long long)r);
	tap_int(ms_h5tracks_close(w, &e), 0, "big file closed");
	struct big b = {0};
	tap_int(ms_h5tracks_read(path, big_fn, &b, &e), 0, "big file read");
	tap_int((long long)b.frame, 70004, "big: every frame");
	tap_int((long long)b.rec, 240003, "big: every record");
	tap_int((long long)b.bad, 0, "big: every value across block boundaries");
	if (b.bad)
		tap_diag("%s", b.first_bad);
	struct ms_h5tracks_summary s;
	int src = ms_h5tracks_summary(path, &s, &e);
	tap_ok(src == 0 && s.nbeads == 50000 && s.batches == 3 &&
	       s.min_t_ns == T0 && s.max_t_ns == T0 + 70003 * 1000ull,
	       "big: summary (%zu beads)", s.nbeads);
}

/*
 * A failing append is rolled back. A child lowers its soft file-size
 * limit (RLIMIT_FSIZE) so that writing a large batch fails with EFBIG,
 * raises it again (as when space is freed on a full disk) and closes:
 * the file must hold exactly the first batch, with nothing of the failed
 * one, not even its timestamp in the range attributes. (A further append
 * would hide a missing rollback: it sets every extent anew.)
 */
static void test_rollback(const struct data *d)
{
	char path[512], msg[512];
	tpath(path, sizeof path, "rollback.h5");
	tpath(msg, sizeof msg, "rollback.msg");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		ms_err e = {""};
		struct ms_h5tracks *w = ms_h5tracks_create(path, &opts_roi, false, &e);
		if (!w || append_batches(w, d, 1, &e))
			_exit(3);
		struct stat st;
		struct rlimit old;
		stat(path, &st);
		getrlimit(RLIMIT_FSIZE, &old);
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {(rlim_t)st.st_size + 65536, old.rlim_max};
		setrlimit(RLIMIT_FSIZE, &rl);
		size_t n = 300000;
		struct ms_track *rows = calloc(n, sizeof *rows);
		size_t off[2] = {0, n};
		uint64_t t = T0 - 1000000000000ull;
		for (size_t i = 0; i < n; i++)
			rows[i].x_nm = (double)i;
		struct ms_track_batch b = {1, &t, off, rows};
		int rc = ms_h5tracks_append(w, &b, &e);
		free(rows);
		FILE *f = fopen(msg, "w");
		fprintf(f, "%s", e.msg);
		fclose(f);
		setrlimit(RLIMIT_FSIZE, &old);
		if (ms_h5tracks_close(w, &e))
			_exit(6);
		_exit(rc == -1 ? 0 : 5);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "append beyond RLIMIT_FSIZE fails, close succeeds (status %#x)", st);
	char buf[512] = "";
	FILE *f = fopen(msg, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	tap_ok(strstr(buf, path) && strstr(buf, "positions_nm") && strstr(buf, "File too large"),
	       "failure message names the file, dataset and cause: %s", buf);
	tap_ok(py_check(path, d, &opts_roi, 1), "h5py: failed batch rolled back (datasets and attributes)");
}

/* --------------------------------------------------------------- SWMR */

/*
 * The SWMR writer's data: batch k has SW_NF frames of SW_NB beads; every
 * value follows from (batch, frame, bead), so any reader can check any
 * prefix of the file on its own.
 */
#define SW_NF 4
#define SW_NB 3

static void sw_batch(uint64_t k, uint64_t *ts, size_t *off, struct ms_track *rows)
{
	for (size_t j = 0; j < SW_NF; j++) {
		uint64_t f = k * SW_NF + j;
		ts[j] = T0 + f * 1000000u;
		off[j] = j * SW_NB;
		for (size_t b = 0; b < SW_NB; b++) {
			double x = (double)f * 10.0 + (double)b;
			rows[j * SW_NB + b] = (struct ms_track){
				.frame = f, .t_ns = ts[j], .bead = (uint32_t)(b + 1),
				.x_nm = x, .y_nm = -x, .z_nm = 0.5 * (double)b,
				.roi_x0 = (int32_t)(b * 10), .roi_y0 = (int32_t)(f % 1000),
			};
		}
	}
	off[SW_NF] = SW_NF * SW_NB;
}

/*
 * The writer process: argv = --swmr-writer PATH NBATCH step|free. It
 * prints the number of batches on disk after creating the file and after
 * each batch. In step mode it waits for a byte on stdin before each batch;
 * in free mode it appends every millisecond, forever when NBATCH is 0.
 */
static int swmr_writer(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	const char *path = argv[2];
	long nbatch = atol(argv[3]);
	bool step = strcmp(argv[4], "step") == 0;
	struct ms_h5tracks_opts o = {
		.include_roi_positions = true, .recording_id = 3, .recording_start_ns = T0,
		.swmr = true,
	};
	ms_err e;
	struct ms_h5tracks *w = ms_h5tracks_create(path, &o, false, &e);
	if (!w) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	printf("0\n");
	fflush(stdout);
	uint64_t ts[SW_NF];
	size_t off[SW_NF + 1];
	struct ms_track rows[SW_NF * SW_NB];
	for (uint64_t k = 0; nbatch == 0 || k < (uint64_t)nbatch; k++) {
		char c;
		if (step && read(0, &c, 1) != 1)
			break;
		if (!step)
			usleep(1000);
		sw_batch(k, ts, off, rows);
		struct ms_track_batch b = {SW_NF, ts, off, rows};
		if (ms_h5tracks_append(w, &b, &e)) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
		printf("%llu\n", (unsigned long long)k + 1);
		fflush(stdout);
	}
	return ms_h5tracks_close(w, &e) ? 1 : 0;
}

struct proc {
	pid_t pid;
	int in, out;		/* its stdin (we write), its stdout (we read) */
	FILE *outf;
};

/* Start argv with pipes to its stdin and from its stdout. */
static bool spawn(struct proc *p, char *const argv[])
{
	int a[2], b[2];
	if (pipe(a) || pipe(b))
		return false;
	fflush(stdout);
	p->pid = fork();
	if (p->pid == 0) {
		dup2(a[0], 0);
		dup2(b[1], 1);
		close(a[0]), close(a[1]), close(b[0]), close(b[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(a[0]);
	close(b[1]);
	p->in = a[1];
	p->out = b[0];
	p->outf = fdopen(p->out, "r");
	return p->pid > 0 && p->outf;
}

static int finish(struct proc *p)
{
	close(p->in);
	fclose(p->outf);
	int st = 0;
	waitpid(p->pid, &st, 0);
	return st;
}

/* The next line from p, without its newline; false at end of file. */
static bool get_line(struct proc *p, char *buf, size_t n)
{
	if (!fgets(buf, (int)n, p->outf))
		return false;
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

/* A checker that reads any prefix of the SWMR writer's file. */
struct swc {
	uint64_t frames, bad;
	char first_bad[160];
};

static int swc_fn(void *ctx, const struct ms_track *rows, size_t n)
{
	struct swc *c = ctx;
	uint64_t f = c->frames++;
	uint64_t ts[SW_NF];
	size_t off[SW_NF + 1];
	struct ms_track want[SW_NF * SW_NB];
	sw_batch(f / SW_NF, ts, off, want);
	const struct ms_track *w = &want[(f % SW_NF) * SW_NB];
	bool ok = n == SW_NB;
	for (size_t b = 0; ok && b < n; b++)
		ok = rows[b].frame == f && rows[b].t_ns == w[b].t_ns && rows[b].bead == w[b].bead &&
		     rows[b].x_nm == w[b].x_nm && rows[b].y_nm == w[b].y_nm && rows[b].z_nm == w[b].z_nm &&
		     rows[b].roi_x0 == w[b].roi_x0 && rows[b].roi_y0 == w[b].roi_y0;
	if (!ok && !c->bad++)
		snprintf(c->first_bad, sizeof c->first_bad, "frame %llu: %zu rows, first x %g",
		         (unsigned long long)f, n, n ? rows[0].x_nm : 0.0);
	return 0;
}

/*
 * Python for the SWMR file: check(f) refreshes the datasets in the order
 * that makes a consistent snapshot (batch_frame_count, the other batch
 * rows, frames, records: the reverse of the writer's), takes the batches up to the last non-zero batch_frame_count
 * and checks every value of them; returns the batch count or raises.
 */
static const char py_swmr_check[] =
	"import sys, time, h5py, numpy as np\n"
	"T0, NF, NB = 1700000000000000000, 4, 3\n"
	"BATCH = ('batch_sequence', 'batch_frame_start', 'batch_record_start',\n"
	"         'batch_record_count')\n"
	"FRAME = ('frame_timestamps_ns', 'frame_offsets', 'frame_batch_sequence')\n"
	"REC = ('bead_ids', 'positions_nm', 'roi_positions_px')\n"
	"def check(f, refresh):\n"
	"    g = f['tracking']\n"
	"    def grp(names):\n"
	"        if refresh:\n"
	"            for k in names: g[k].refresh()\n"
	"        return {k: g[k][()] for k in names}\n"
	"    b = grp(('batch_frame_count',))\n"
	"    b.update(grp(BATCH))\n"
	"    nz = np.nonzero(b['batch_frame_count'])[0]\n"
	"    nb = int(nz[-1]) + 1 if len(nz) else 0\n"
	"    k = np.arange(nb, dtype=np.uint64)\n"
	"    assert (b['batch_sequence'][:nb] == k).all(), 'batch_sequence'\n"
	"    assert (b['batch_frame_count'][:nb] == NF).all(), 'batch_frame_count'\n"
	"    assert (b['batch_frame_start'][:nb] == k * NF).all(), 'batch_frame_start'\n"
	"    assert (b['batch_record_start'][:nb] == k * NF * NB).all(), 'batch_record_start'\n"
	"    nf, nr = nb * NF, nb * NF * NB\n"
	"    fr = grp(FRAME)\n"
	"    fi = np.arange(nf, dtype=np.uint64)\n"
	"    assert (fr['frame_timestamps_ns'][:nf] == T0 + fi * 1000000).all(), 'timestamps'\n"
	"    assert (fr['frame_offsets'][:nf + 1] == np.arange(nf + 1) * NB).all(), 'offsets'\n"
	"    assert (fr['frame_batch_sequence'][:nf] == fi // NF).all(), 'frame_batch_sequence'\n"
	"    r = grp(REC)\n"
	"    ff = np.repeat(np.arange(nf), NB); bb = np.tile(np.arange(NB), nf)\n"
	"    x = ff * 10.0 + bb\n"
	"    assert (r['bead_ids'][:nr] == bb + 1).all(), 'bead_ids'\n"
	"    p = r['positions_nm'][:nr]\n"
	"    assert (p[:, 0] == x).all() and (p[:, 1] == -x).all() and (p[:, 2] == 0.5 * bb).all(), 'positions'\n"
	"    q = r['roi_positions_px'][:nr]\n"
	"    assert (q[:, 0] == bb * 10).all() and (q[:, 1] == ff % 1000).all(), 'roi_positions_px'\n"
	"    return nb\n"
	"def check_range(f, nb):\n"
	"    a = f['tracking'].attrs\n"
	"    lo, hi = (T0, T0 + (nb * NF - 1) * 1000000) if nb else (0, 0)\n"
	"    assert (a['min_frame_timestamp_ns'], a['max_frame_timestamp_ns']) == (lo, hi), \\\n"
	"        ('range', a['min_frame_timestamp_ns'], a['max_frame_timestamp_ns'], lo, hi)\n";

static char *ms_info_path(void)
{
	static char buf[600];
	const char *bin = getenv("MS_BIN");
	snprintf(buf, sizeof buf, "%s/ms-info", bin ? bin : "bin");
	return access(buf, X_OK) == 0 ? buf : NULL;
}

/* ms-info on path (a separate process): its frames and batches lines. */
static bool ms_info_counts(const char *path, long *frames, long *batches, long *records)
{
	const char *info = ms_info_path();
	if (!info)
		return false;
	char cmd[1200], line[256];
	snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", info, path);
	fflush(stdout);
	FILE *f = popen(cmd, "r");
	if (!f)
		return false;
	*frames = *batches = *records = -1;
	while (fgets(line, sizeof line, f)) {
		sscanf(line, "frames\t%ld", frames);
		sscanf(line, "batches\t%ld", batches);
		sscanf(line, "records\t%ld", records);
		if (strncmp(line, "ms-info:", 8) == 0)
			tap_diag("%s", line);
	}
	return pclose(f) == 0;
}

/*
 * A fresh h5py process with swmr=True: the batch count it checked, or -1.
 * With range, also the timestamp attributes (exact only when the writer
 * is between batches: a killed one may have updated them for a batch it
 * did not finish).
 */
static long py_fresh_batches(const char *path, bool range)
{
	char script[512], cmd[1200];
	snprintf(script, sizeof script, "%s/swmr_fresh.py", tap_tmpdir());
	FILE *f = fopen(script, "w");
	if (!f)
		return -1;
	fprintf(f, "%s", py_swmr_check);
	fprintf(f, "h = h5py.File(sys.argv[1], 'r', swmr=True); nb = check(h, False)\n"
	           "%sprint(nb)\n", range ? "check_range(h, nb)\n" : "");
	fclose(f);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, path);
	fflush(stdout);
	FILE *p = popen(cmd, "r");
	long n = -1;
	if (!p || fscanf(p, "%ld", &n) != 1)
		n = -1;
	if (p && pclose(p) != 0)
		n = -1;
	return n;
}

static const char *self_exe(void)
{
	static char buf[600];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/*
 * Lock-step: after the file is made and after each of 4 batches, with the
 * writer waiting, ms-info, a fresh h5py and a long-lived h5py (the same
 * handle all along, datasets refreshed) all see exactly the batches
 * written, and every value of them.
 */
static void test_swmr_step(void)
{
	char path[512], script[512], line[64];
	tpath(path, sizeof path, "swmr-step.h5");
	tpath(script, sizeof script, "swmr_long.py");
	FILE *f = fopen(script, "w");
	fprintf(f, "%s", py_swmr_check);
	fprintf(f, "h = None\n"
	           "for line in sys.stdin:\n"
	           "    if h is None: h = h5py.File(sys.argv[1], 'r', swmr=True)\n"
	           "    print(check(h, True), flush=True)\n");
	fclose(f);

	struct proc w, py;
	char *wargv[] = {(char *)self_exe(), "--swmr-writer", path, "4", "step", NULL};
	char *pargv[] = {"/usr/bin/python3", script, path, NULL};
	bool ok = spawn(&w, wargv) && get_line(&w, line, sizeof line) && strcmp(line, "0") == 0;
	tap_ok(ok, "SWMR writer process created the file (said '%s')", line);
	ok = ok && spawn(&py, pargv);
	long k = 0;
	bool info_ok = true, fresh_ok = true, long_ok = true;
	for (k = 0; ok && k <= 4; k++) {
		if (k > 0 && (write(w.in, "x", 1) != 1 || !get_line(&w, line, sizeof line) ||
		              atol(line) != k)) {
			ok = false;
			break;
		}
		long fr, nb, nr;
		bool r = ms_info_counts(path, &fr, &nb, &nr);
		if (!r || fr != k * SW_NF || nb != k || nr != k * SW_NF * SW_NB) {
			if (info_ok)
				tap_diag("after %ld batches ms-info says frames %ld batches %ld records %ld "
				         "(exit %s)", k, fr, nb, nr, r ? "0" : "non-zero");
			info_ok = false;
		}
		long pf = py_fresh_batches(path, true);
		if (pf != k) {
			if (fresh_ok)
				tap_diag("after %ld batches a fresh h5py (swmr=True) checked %ld", k, pf);
			fresh_ok = false;
		}
		char got[64] = "";
		if (write(py.in, "go\n", 3) != 3 || !get_line(&py, got, sizeof got) || atol(got) != k) {
			if (long_ok)
				tap_diag("after %ld batches the long-lived h5py says '%s'", k, got);
			long_ok = false;
		}
		struct swc c = {0};
		ms_err e = {""};
		if (ms_h5tracks_read(path, swc_fn, &c, &e) || c.frames != (uint64_t)k * SW_NF || c.bad) {
			tap_ok(false, "after %ld batches ms_h5tracks_read: %llu frames, %llu bad %s %s", k,
			       (unsigned long long)c.frames, (unsigned long long)c.bad, c.first_bad, e.msg);
		}
	}
	tap_ok(ok && k == 5, "writer appended 4 batches in lock-step");
	tap_ok(info_ok && ms_info_path(), "ms-info (another process) sees 0, 1, 2, 3, 4 batches as they "
	       "are written%s", ms_info_path() ? "" : " (no ms-info: set MS_BIN)");
	tap_ok(fresh_ok, "h5py swmr=True, a fresh process each time, reads 0..4 batches, every value "
	       "and the timestamp range (attributes rewritten under SWMR)");
	tap_ok(long_ok, "h5py swmr=True, one handle kept open and refreshed, sees the file grow 0..4");
	int st = finish(&w);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer closed the file (status %#x)", st);
	finish(&py);
	struct swc c = {0};
	ms_err e = {""};
	int rc = ms_h5tracks_read(path, swc_fn, &c, &e);
	tap_ok(rc == 0 && c.frames == 4 * SW_NF && !c.bad, "closed SWMR file reads normally (%llu "
	       "frames)", (unsigned long long)c.frames);
	tap_ok(py_run("f = h5py.File(sys.argv[1], 'r'); assert f['tracking/batch_sequence'].shape == (4,)",
	              path),
	       "closed SWMR file opens in plain h5py (no swmr flag)");
}

/*
 * Free-running: the writer appends a batch every millisecond while this
 * process reads with ms_h5tracks_read and a long-lived h5py checks
 * refreshed snapshots, for about a second; every snapshot is a complete
 * prefix and the counts never go back. Then the writer is killed in the
 * middle of its work: the file reads, with SWMR, up to at least the last
 * batch it reported.
 */
static void test_swmr_free_and_kill(void)
{
	char path[512], script[512], line[64];
	tpath(path, sizeof path, "swmr-free.h5");
	tpath(script, sizeof script, "swmr_loop.py");
	FILE *f = fopen(script, "w");
	fprintf(f, "%s", py_swmr_check);
	fprintf(f, "h = h5py.File(sys.argv[1], 'r', swmr=True)\n"
	           "n, last, grew, t = 0, 0, 0, time.time()\n"
	           "while time.time() - t < 1.0:\n"
	           "    nb = check(h, True)\n"
	           "    assert nb >= last, 'went back from %%d to %%d' %% (last, nb)\n"
	           "    grew += nb > last\n"
	           "    last = nb; n += 1\n"
	           "print(n, grew, last, flush=True)\n");
	fclose(f);

	struct proc w, py;
	char *wargv[] = {(char *)self_exe(), "--swmr-writer", path, "0", "free", NULL};
	char *pargv[] = {"/usr/bin/python3", script, path, NULL};
	bool ok = spawn(&w, wargv) && get_line(&w, line, sizeof line) && strcmp(line, "0") == 0;
	tap_ok(ok, "free-running SWMR writer started");
	if (!ok)
		return;
	ok = spawn(&py, pargv);
	/* Our own reader meanwhile (this process did not fork the writer's
	 * HDF5 state: the writer was exec'ed). */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long reads = 0, grew = 0, bad = 0;
	uint64_t last = 0;
	char why[300] = "";
	do {
		struct swc c = {0};
		ms_err e = {""};
		int rc = ms_h5tracks_read(path, swc_fn, &c, &e);
		if (rc || c.bad || c.frames % SW_NF || c.frames < last) {
			if (!bad++)
				snprintf(why, sizeof why, "rc %d, %llu frames after %llu: %s %s", rc,
				         (unsigned long long)c.frames, (unsigned long long)last, c.first_bad,
				         e.msg);
		} else {
			grew += c.frames > last;
			last = c.frames;
		}
		reads++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) < 1.0);
	tap_ok(bad == 0 && grew >= 5, "ms_h5tracks_read while the writer runs: %ld reads, saw it grow "
	       "%ld times, every read a complete prefix %s", reads, grew, why);
	char got[128] = "";
	long pn = 0, pgrew = 0, plast = 0;
	bool pok = ok && get_line(&py, got, sizeof got) && sscanf(got, "%ld %ld %ld", &pn, &pgrew, &plast) == 3;
	tap_ok(pok && pgrew >= 5, "long-lived h5py swmr=True while the writer runs: %ld snapshots, grew "
	       "%ld times, to %ld batches, all complete and consistent ('%s')", pn, pgrew, plast, got);
	finish(&py);

	/* Kill it while it writes; what it reported is on disk. */
	long reported = 0;
	while (reported < (long)(last / SW_NF) + 20 && get_line(&w, line, sizeof line))
		reported = atol(line);
	kill(w.pid, SIGKILL);
	while (get_line(&w, line, sizeof line))
		reported = atol(line);
	int st = finish(&w);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "writer killed by SIGKILL after reporting %ld "
	       "batches", reported);
	long pf = py_fresh_batches(path, false);
	tap_ok(pf >= reported && pf <= reported + 1, "h5py swmr=True reads the killed writer's file: %ld "
	       "complete batches (reported %ld), every value", pf, reported);
	struct swc c = {0};
	ms_err e = {""};
	int rc = ms_h5tracks_read(path, swc_fn, &c, &e);
	tap_ok(rc == 0 && !c.bad && c.frames == (uint64_t)pf * SW_NF,
	       "ms_h5tracks_read reads the same %llu frames", (unsigned long long)c.frames);
	if (rc || c.bad)
		tap_diag("%s %s", e.msg, c.first_bad);
	long fr, nb, nr;
	bool info = ms_info_counts(path, &fr, &nb, &nr);
	tap_ok(info && nb == pf && fr == pf * SW_NF,
	       "ms-info on the killed writer's file: %ld batches, %ld frames", nb, fr);
	tap_ok(!py_run("import os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 2)\n"
	               "h5py.File(sys.argv[1], 'r')", path),
	       "(plain h5py without swmr=True refuses the file until `h5clear -s`, as documented)");
}

/* The 3 batches of d written as 2, then reopened for the third. */
static void test_append(const struct data *d)
{
	char path[512];
	ms_err e = {""};
	for (int swmr = 0; swmr <= 1; swmr++) {
		struct ms_h5tracks_opts o = opts_roi;
		o.swmr = swmr;
		tpath(path, sizeof path, swmr ? "append-swmr.h5" : "append.h5");
		tap_int(write_file(path, d, &o, 2, &e), 0, "%s: 2 batches, closed", path);
		struct ms_h5tracks *w = ms_h5tracks_open_append(path, swmr, &e);
		tap_ok(w != NULL, "reopened to append%s %s", swmr ? " with SWMR" : "", w ? "" : e.msg);
		if (!w)
			continue;
		uint64_t fr, rec, nb;
		ms_h5tracks_counts(w, &fr, &rec, &nb);
		tap_ok(fr == 5 && rec == d->off[5] && nb == 2, "counts carried over: %llu frames, "
		       "%llu records, %llu batches", (unsigned long long)fr, (unsigned long long)rec,
		       (unsigned long long)nb);
		tap_int(append_one(w, d, 2, &e), 0, "third batch appended");
		tap_int(ms_h5tracks_close(w, &e), 0, "closed");
		check_read(path, d, true, swmr ? "appended with SWMR" : "appended");
		tap_ok(py_check(path, d, &o, NBATCH), "h5py: same as writing 3 batches at once (sequence, "
		       "offsets, range)");
	}
	tpath(path, sizeof path, "append.h5");
	e.msg[0] = '\0';
	tap_ok(!ms_h5tracks_open_append(path, true, &e) && strstr(e.msg, "1.8 format") &&
	       strstr(e.msg, path), "SWMR append to a 1.8-format file refused: %s", e.msg);
	tpath(path, sizeof path, "nogroup.h5");
	tap_ok(!ms_h5tracks_open_append(path, false, &e) && strstr(e.msg, "/tracking"),
	       "append to a file that is not a tracks file refused: %s", e.msg);
}

/* A SWMR file written and closed reads like any other. */
static void test_swmr_roundtrip(const struct data *d)
{
	char path[512];
	ms_err e = {""};
	struct ms_h5tracks_opts o = opts_roi;
	o.swmr = true;
	tpath(path, sizeof path, "swmr.h5");
	tap_int(write_file(path, d, &o, NBATCH, &e), 0, "SWMR: write 3 batches %s", e.msg);
	check_read(path, d, true, "SWMR file");
	tap_ok(py_check(path, d, &o, NBATCH), "h5py: SWMR file in the exact schema");
	unsigned char sb[9] = {0};
	int fd = open(path, O_RDONLY);
	tap_ok(fd >= 0 && read(fd, sb, 9) == 9 && sb[8] == 3, "SWMR file has superblock version 3 "
	       "(got %d)", sb[8]);
	if (fd >= 0)
		close(fd);
	tpath(path, sizeof path, "swmr-empty.h5");
	tap_int(write_file(path, d, &o, 0, &e), 0, "SWMR: empty file");
	tap_ok(py_check(path, d, &o, 0), "h5py: empty SWMR file has the range attributes at 0");
	struct ms_h5tracks_summary s;
	tap_ok(ms_h5tracks_summary(path, &s, &e) == 0 && s.frames == 0 && s.min_t_ns == 0 &&
	       s.max_t_ns == 0, "summary of the empty SWMR file: no frames, range 0");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--swmr-writer") == 0)
		return swmr_writer(argc, argv);
	struct data d;
	make_data(&d);
	test_tsv();
	test_killed_writer(&d);
	test_roundtrip(&d);
	test_validation(&d);
	test_stop_and_foreign(&d);
	test_big();
	test_rollback(&d);
	test_swmr_roundtrip(&d);
	test_append(&d);
	test_swmr_step();
	test_swmr_free_and_kill();
	return tap_done();
}
