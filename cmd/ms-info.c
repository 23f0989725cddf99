/*
 * ms-info: say what an mstk file holds, whatever kind it is: a frame
 * stream, a TIFF stack, an HDF5 tracks file or a Z-LUT (HDF5 or MagScope
 * text); and export tracks as TSV or CSV.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "fstream.h"
#include "tiffio.h"
#include "tracks.h"
#include "zlut.h"

enum { OPT_TSV = MS_KEY_LONG, OPT_CSV };

static const struct ms_opt options[] = {
	{ "tsv", OPT_TSV, NULL, "export a tracks file as TSV on stdout", NULL },
	{ "csv", OPT_CSV, NULL, "export a tracks file as CSV on stdout", NULL },
	MS_OPT_HELP, MS_OPT_VERSION, MS_OPTS_END,
};

static const struct ms_cmd cmd = {
	.name = "ms-info",
	.synopsis = "FILE...\n--tsv|--csv TRACKS.h5",
	.summary = "Describe frame streams ('-': standard input), TIFF stacks, tracks files and\n"
	           "Z-LUTs; export tracks as TSV or CSV.",
	.opts = options,
	.operands = "file",
};

static const unsigned char hdf5_sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };

static void print_time(const char *key, uint64_t t_ns)
{
	if (!t_ns) {
		printf("%s\tunknown\n", key);
		return;
	}
	time_t s = (time_t)(t_ns / 1000000000u);
	struct tm tm;
	char buf[64];
	localtime_r(&s, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s\t%s.%09" PRIu64 " (%" PRIu64 " ns)\n", key, buf, t_ns % 1000000000u, t_ns);
}

static void print_geometry(const struct ms_frame_info *info)
{
	printf("width\t%u\nheight\t%u\nformat\t%s\n", info->width, info->height,
	       ms_pixfmt_name(info->fmt));
	if (info->nm_per_px > 0)
		printf("nm_per_px\t%.6g\n", info->nm_per_px);
	else
		printf("nm_per_px\tunknown\n");
}

static int info_stream(int fd, const char *name)
{
	ms_err e;
	struct ms_freader *r = ms_freader_open(fd, name, &e);
	if (!r) {
		ms_warn("%s", e.msg);
		return -1;
	}
	printf("file\t%s\nkind\tframe stream\n", name);
	print_geometry(ms_freader_info(r));
	struct ms_frame f;
	uint64_t first = 0, last = 0, first_seq = 0, last_seq = 0, n = 0;
	int rc;
	while ((rc = ms_freader_next(r, &f, &e)) > 0) {
		if (n == 0) {
			first = f.t_ns;
			first_seq = f.seq;
		}
		last = f.t_ns;
		last_seq = f.seq;
		n++;
	}
	printf("frames\t%" PRIu64 "\n", n);
	bool shm = strcmp(ms_freader_transport(r), "shm") == 0;
	printf("transport\t%s\n", ms_freader_transport(r));
	/* Frames the ring overwrote before this reader got to them: seq gaps that are ours. */
	uint64_t dropped = ms_freader_dropped(r);
	if (shm)
		printf("dropped\t%" PRIu64 "\n", dropped);
	if (n) {
		printf("seq\t%" PRIu64 "..%" PRIu64 "%s\n", first_seq, last_seq,
		       last_seq - first_seq + 1 == n ? "" :
		       last_seq - first_seq + 1 == n + dropped ? " (gaps: frames this reader missed)" :
		       " (gaps: frames were dropped upstream)");
		print_time("first_frame", first);
		print_time("last_frame", last);
		if (n > 1 && last > first)
			printf("frame_rate_hz\t%.3f\n", (double)(n - 1) * 1e9 / (double)(last - first));
	}
	ms_freader_close(r);
	if (rc < 0) {
		ms_warn("%s", e.msg);
		return -1;
	}
	printf("complete\tyes\n");
	return 0;
}

static int info_tiff(const char *path)
{
	ms_err e;
	struct ms_tiff_reader *r = ms_tiff_open_read(path, &e);
	if (!r) {
		ms_warn("%s", e.msg);
		return -1;
	}
	printf("file\t%s\nkind\tTIFF stack\n", path);
	print_geometry(ms_tiff_info(r));
	size_t n = ms_tiff_frames(r);
	printf("frames\t%zu\n", n);
	printf("timestamps\t%s\n", ms_tiff_has_timestamps(r) ? "yes" : "no");
	if (ms_tiff_has_timestamps(r) && n > 0) {
		void *px = ms_xmalloc(ms_frame_bytes(ms_tiff_info(r)));
		uint64_t t0, t1;
		if (ms_tiff_read(r, 0, px, &t0, &e) < 0 || ms_tiff_read(r, n - 1, px, &t1, &e) < 0) {
			ms_warn("%s", e.msg);
			free(px);
			ms_tiff_close_read(r);
			return -1;
		}
		print_time("first_frame", t0);
		print_time("last_frame", t1);
		if (n > 1 && t1 > t0)
			printf("frame_rate_hz\t%.3f\n", (double)(n - 1) * 1e9 / (double)(t1 - t0));
		free(px);
	}
	ms_tiff_close_read(r);
	return 0;
}

static int info_tracks(const char *path)
{
	ms_err e;
	struct ms_h5tracks_summary s;
	if (ms_h5tracks_summary(path, &s, &e) < 0) {
		ms_warn("%s", e.msg);
		return -1;
	}
	printf("file\t%s\nkind\ttracks (HDF5, MagScope schema)\n", path);
	printf("frames\t%" PRIu64 "\nrecords\t%" PRIu64 "\nbatches\t%" PRIu64 "\nbeads\t%zu\n",
	       s.frames, s.records, s.batches, s.nbeads);
	printf("roi_positions\t%s\n", s.include_roi_positions ? "yes" : "no");
	printf("recording_id\t%" PRIu64 "\n", s.recording_id);
	print_time("recording_start", s.recording_start_ns);
	print_time("file_start", s.file_start_ns);
	printf("rotation_interval_s\t%.0f\n", (double)s.rotation_interval_ns / 1e9);
	if (s.frames) {
		print_time("first_frame", s.min_t_ns);
		print_time("last_frame", s.max_t_ns);
	}
	return 0;
}

static int info_zlut(const char *path)
{
	ms_err e;
	struct ms_zlut z;
	if (ms_zlut_load(path, &z, &e) < 0) {
		ms_warn("%s", e.msg);
		return -1;
	}
	double zmin = INFINITY, zmax = -INFINITY;
	for (size_t k = 0; k < z.nplanes; k++) {
		zmin = fmin(zmin, z.z_nm[k]);
		zmax = fmax(zmax, z.z_nm[k]);
	}
	printf("file\t%s\nkind\tZ-LUT (%s)\n", path, ms_zlut_is_h5(path) == 1 ? "mstk HDF5" : "MagScope text");
	printf("planes\t%zu\nz_min_nm\t%.6g\nz_max_nm\t%.6g\nprofile_length\t%zu\nbeads\t%zu\n",
	       z.nplanes, zmin, zmax, z.plen, z.nbeads);
	if (z.roi_size)
		printf("roi_size\t%d\n", z.roi_size);
	ms_zlut_free(&z);
	return 0;
}

static int info_file(const char *path)
{
	if (strcmp(path, "-") == 0)
		return info_stream(STDIN_FILENO, "standard input");
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		ms_warn("cannot open '%s':", path);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* A FIFO or a device cannot be sniffed and rewound: only a stream fits. */
		int rc = info_stream(fd, path);
		close(fd);
		return rc;
	}
	unsigned char buf[16];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0) {
		ms_warn("cannot read '%s':", path);
		close(fd);
		return -1;
	}
	int rc;
	if (ms_fstream_sniff(buf, (size_t)n)) {
		lseek(fd, 0, SEEK_SET);
		rc = info_stream(fd, path);
	} else if (ms_tiff_sniff(buf, (size_t)n)) {
		rc = info_tiff(path);
	} else if (n >= 8 && memcmp(buf, hdf5_sig, 8) == 0) {
		if (ms_h5tracks_is_tracks(path))
			rc = info_tracks(path);
		else if (ms_zlut_is_h5(path) == 1)
			rc = info_zlut(path);
		else {
			ms_warn("%s: an HDF5 file with neither /tracking nor /zlut", path);
			rc = -1;
		}
	} else {
		/* Text: the only text form mstk describes here is a MagScope Z-LUT. */
		rc = info_zlut(path);
	}
	close(fd);
	return rc;
}

struct export_ctx {
	char sep;
};

static int export_rows(void *vctx, const struct ms_track *rows, size_t n)
{
	const struct export_ctx *ctx = vctx;
	if (ctx->sep == '\t')
		return ms_tracks_tsv_write(stdout, rows, n) < 0 ? -1 : 0;
	for (size_t i = 0; i < n; i++) {
		const struct ms_track *t = &rows[i];
		printf("%" PRIu64 ",%" PRIu64 ",%u,%.3f,%.3f,%.3f,%d,%d\n", t->frame, t->t_ns,
		       t->bead, t->x_nm, t->y_nm, t->z_nm, t->roi_x0, t->roi_y0);
	}
	return ferror(stdout) ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct ms_cli cli;
	ms_cli_init(&cli, &cmd, argc, argv);
	const char *arg;
	int key;
	char sep = 0;
	while ((key = ms_cli_next(&cli, &arg)) != -1) {
		if (key == OPT_TSV)
			sep = '\t';
		else if (key == OPT_CSV)
			sep = ',';
	}
	int nfiles = argc - optind;
	if (nfiles < 1)
		ms_usage_error("no file given");
	if (sep) {
		if (nfiles != 1)
			ms_usage_error("--tsv and --csv export one tracks file");
		const char *path = argv[optind];
		if (!ms_h5tracks_is_tracks(path))
			ms_die("%s: not an HDF5 tracks file", path);
		if (sep == '\t')
			ms_tracks_tsv_header(stdout);
		else
			printf("frame,t_ns,bead,x_nm,y_nm,z_nm,roi_x0,roi_y0\n");
		struct export_ctx ctx = { sep };
		ms_err e = { "" };
		int rc = ms_h5tracks_read(path, export_rows, &ctx, &e);
		if (rc < 0 && e.msg[0])
			ms_die("%s", e.msg);
		if (rc != 0)
			ms_die("error writing standard output:");
		ms_close_stdout();
		return 0;
	}
	int failed = 0;
	for (int i = optind; i < argc; i++) {
		if (i > optind)
			printf("\n");
		if (info_file(argv[i]) < 0)
			failed = 1;
	}
	ms_close_stdout();
	return failed;
}
