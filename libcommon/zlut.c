/*
 * zlut: Z look-up tables in memory and their two file forms (see zlut.h):
 * mstk's HDF5 group /zlut and MagScope's text matrix, read the way
 * np.loadtxt reads it and written byte for byte as np.savetxt writes it.
 * Saving goes through a temporary file in the target's directory that is
 * synced and renamed over the target, so a reader sees the old table or
 * the new one, never a part. HDF5's error printing is off around every
 * call into it; its innermost message ends up in the ms_err.
 */
#include "zlut.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h5util.h"

#ifndef MS_VERSION
#define MS_VERSION "unknown"
#endif

static const unsigned char h5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* ------------------------------------------------------------ memory */

int ms_zlut_alloc(struct ms_zlut *z, size_t nplanes, size_t plen, size_t nbeads, ms_err *e)
{
	memset(z, 0, sizeof *z);
	size_t n;
	if (!nplanes || !plen || !nbeads)
		return ms_err_set(e, "empty Z-LUT (%zu planes, %zu bins, %zu beads)", nplanes, plen,
		                  nbeads);
	if (__builtin_mul_overflow(nplanes, plen, &n) || __builtin_mul_overflow(n, nbeads, &n) ||
	    n > SIZE_MAX / sizeof(float))
		return ms_err_set(e, "Z-LUT too large (%zu planes, %zu bins, %zu beads)", nplanes,
		                  plen, nbeads);
	z->z_nm = calloc(nplanes, sizeof *z->z_nm);
	z->profiles = calloc(n, sizeof *z->profiles);
	z->bead_ids = calloc(nbeads, sizeof *z->bead_ids);
	if (!z->z_nm || !z->profiles || !z->bead_ids) {
		ms_zlut_free(z);
		return ms_err_set(e, "out of memory for a Z-LUT of %zu planes x %zu bins x %zu beads",
		                  nplanes, plen, nbeads);
	}
	z->nplanes = nplanes;
	z->plen = plen;
	z->nbeads = nbeads;
	return 0;
}

void ms_zlut_free(struct ms_zlut *z)
{
	if (!z)
		return;
	free(z->z_nm);
	free(z->profiles);
	free(z->bead_ids);
	memset(z, 0, sizeof *z);
}

long ms_zlut_find_bead(const struct ms_zlut *z, uint32_t id)
{
	for (size_t i = 0; i < z->nbeads; i++)
		if (z->bead_ids[i] == id)
			return (long)i;
	return -1;
}

/*
 * The weighting is a method name the tracker checks against its own list;
 * here it need only be a plain word, so new methods need no change here.
 */
static bool weighting_ok(const char *w)
{
	for (const char *p = w; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
			return false;
	return true;
}

/* What every table must satisfy, whichever form it came from or goes to. */
static int validate(const struct ms_zlut *z, const char *path, ms_err *e)
{
	if (z->nplanes < 2)
		return ms_err_set(e, "'%s': %zu z plane(s); a Z-LUT needs at least 2", path, z->nplanes);
	if (z->plen < 1)
		return ms_err_set(e, "'%s': profiles have no bins", path);
	if (z->nbeads < 1)
		return ms_err_set(e, "'%s': no beads", path);
	for (size_t k = 0; k < z->nplanes; k++)
		if (!isfinite(z->z_nm[k]))
			return ms_err_set(e, "'%s': z of plane %zu is %g (must be finite)", path, k,
			                  z->z_nm[k]);
	for (size_t i = 0; i < z->nbeads; i++)
		for (size_t j = 0; j < i; j++)
			if (z->bead_ids[i] == z->bead_ids[j])
				return ms_err_set(e, "'%s': bead id %u appears twice", path,
				                  (unsigned)z->bead_ids[i]);
	if (!weighting_ok(z->weighting))
		return ms_err_set(e, "'%s': profile weighting '%s' is not a method name", path,
		                  z->weighting);
	return 0;
}

/* ---------------------------------------------------------- text form */

/* One number as Python's float() takes it: decimal, inf, nan; no hex. */
static bool parse_number(const char *s, double *v)
{
	if (strpbrk(s, "xX(_"))
		return false;
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	/* Overflow gives inf, as in Python; underflow gives a denormal or 0. */
	return end != s && *end == '\0';
}

static int load_text(const char *path, struct ms_zlut *z, ms_err *e)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return ms_err_set(e, "cannot open '%s':", path);
	double *v = NULL;
	size_t nv = 0, cap = 0, ncols = 0, nrows = 0, first = 0, lineno = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	int rc = -1;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		if (memchr(line, '\0', (size_t)len)) {
			ms_err_set(e, "'%s' line %zu: binary data (not a Z-LUT text matrix)", path, lineno);
			goto out;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		size_t n = 0;
		char *p = line;
		for (;;) {
			while (isspace((unsigned char)*p))
				p++;
			if (!*p)
				break;
			char *tok = p;
			while (*p && !isspace((unsigned char)*p))
				p++;
			char c = *p;
			*p = '\0';
			double d;
			if (!parse_number(tok, &d)) {
				ms_err_set(e, "'%s' line %zu: '%.40s' is not a number", path, lineno, tok);
				goto out;
			}
			if (nrows == 0 && !isfinite(d)) {
				ms_err_set(e, "'%s' line %zu: z value '%.40s' in column %zu is not finite "
				           "(the first row holds the z positions in nm)", path, lineno, tok,
				           n + 1);
				goto out;
			}
			*p = c;
			if (nv == cap) {
				size_t nc = cap ? 2 * cap : 1024;
				double *q = realloc(v, nc * sizeof *q);
				if (!q) {
					ms_err_set(e, "'%s': out of memory", path);
					goto out;
				}
				v = q;
				cap = nc;
			}
			v[nv++] = d;
			n++;
		}
		if (n == 0)
			continue;
		if (nrows == 0) {
			ncols = n;
			first = lineno;
		} else if (n != ncols) {
			ms_err_set(e, "'%s' line %zu: %zu values, but line %zu has %zu (all rows must have "
			           "the same length)", path, lineno, n, first, ncols);
			goto out;
		}
		nrows++;
	}
	if (ferror(f)) {
		ms_err_set(e, "cannot read '%s':", path);
		goto out;
	}
	if (nrows < 2) {
		ms_err_set(e, "'%s': %zu row(s) of numbers; a Z-LUT needs a row of z values and at "
		           "least one profile row", path, nrows);
		goto out;
	}
	if (ncols < 2) {
		ms_err_set(e, "'%s': %zu column(s); a Z-LUT needs at least 2 z planes", path, ncols);
		goto out;
	}
	if (ms_zlut_alloc(z, ncols, nrows - 1, 1, e)) {
		ms_err_prefix(e, "'%s'", path);
		goto out;
	}
	memcpy(z->z_nm, v, ncols * sizeof *v);
	/* The file holds bin i of every plane in row 1+i; memory holds
	 * each plane's profile contiguously. */
	for (size_t k = 0; k < ncols; k++)
		for (size_t i = 0; i < z->plen; i++)
			z->profiles[k * z->plen + i] = (float)v[(1 + i) * ncols + k];
	z->bead_ids[0] = 0;
	rc = 0;
out:
	free(v);
	free(line);
	fclose(f);
	return rc;
}

/* A value as np.savetxt writes it with fmt='%.18e'. */
static void put_e(FILE *f, double v, char sep)
{
	if (isnan(v))
		fputs("nan", f);
	else if (isinf(v))
		fputs(v > 0 ? "inf" : "-inf", f);
	else
		fprintf(f, "%.18e", v);
	fputc(sep, f);
}

struct text_job {
	const struct ms_zlut *z;
	size_t bead;
};

static int write_text(const char *tmp, const char *path, const void *arg, ms_err *e)
{
	const struct text_job *j = arg;
	const struct ms_zlut *z = j->z;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return ms_err_set(e, "cannot write '%s':", tmp);
	for (size_t k = 0; k < z->nplanes; k++)
		put_e(f, z->z_nm[k], k + 1 < z->nplanes ? ' ' : '\n');
	for (size_t i = 0; i < z->plen; i++)
		for (size_t k = 0; k < z->nplanes; k++)
			put_e(f, ms_zlut_profile(z, j->bead, k)[i], k + 1 < z->nplanes ? ' ' : '\n');
	if (ferror(f)) {
		int saved = errno;
		fclose(f);
		errno = saved;
		return ms_err_set(e, "cannot write '%s':", path);
	}
	if (fclose(f) != 0)
		return ms_err_set(e, "cannot write '%s':", path);
	return 0;
}

/* ---------------------------------------------------------- atomicity */

/* The process umask, read without changing it (umask() would race with
 * other threads creating files). */
static mode_t current_umask(void)
{
	mode_t m = 022;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return m;
	char buf[256];
	while (fgets(buf, sizeof buf, f)) {
		unsigned v;
		if (sscanf(buf, "Umask: %o", &v) == 1) {
			m = (mode_t)v;
			break;
		}
	}
	fclose(f);
	return m;
}

static void sync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

typedef int (*write_fn)(const char *tmp, const char *path, const void *arg, ms_err *e);

/* Write path through "<path>.tmp.XXXXXX" and rename(2). */
static int atomic_save(const char *path, write_fn wr, const void *arg, ms_err *e)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
	if (!tmp)
		return ms_err_set(e, "'%s': out of memory", path);
	memcpy(tmp, path, n);
	memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
	int fd = mkstemp(tmp);
	if (fd < 0) {
		ms_err_set(e, "cannot create a temporary file for '%s':", path);
		free(tmp);
		return -1;
	}
	/* mkstemp makes the file 0600; a table is as readable as any file
	 * the user creates. */
	fchmod(fd, 0666 & ~current_umask());
	close(fd);
	if (wr(tmp, path, arg, e))
		goto fail;
	fd = open(tmp, O_RDONLY);
	if (fd < 0 || fsync(fd) != 0) {
		ms_err_set(e, "cannot sync '%s':", tmp);
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		ms_err_set(e, "cannot rename '%s' to '%s':", tmp, path);
		goto fail;
	}
	sync_dir_of(path);
	free(tmp);
	return 0;
fail:
	unlink(tmp);
	free(tmp);
	return -1;
}

int ms_zlut_save_text(const char *path, const struct ms_zlut *z, size_t bead, ms_err *e)
{
	if (validate(z, path, e))
		return -1;
	if (bead >= z->nbeads)
		return ms_err_set(e, "'%s': bead index %zu out of range (the table has %zu beads)", path,
		                  bead, z->nbeads);
	struct text_job j = {z, bead};
	return atomic_save(path, write_text, &j, e);
}

/* ------------------------------------------------------------ HDF5 form */

static void iso_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	char off[8];
	localtime_r(&t, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	/* ISO 8601 extended offset, +hh:mm, where strftime gives +hhmm. */
	if (k && strftime(off, sizeof off, "%z", &tm) == 5)
		snprintf(buf + k, n - k, "%.3s:%.2s", off, off + 3);
}

static int put_attr(hid_t g, const char *name, hid_t ftype, hid_t mtype, const void *buf,
                    const char *path, ms_err *e)
{
	hid_t sp = H5Screate(H5S_SCALAR);
	hid_t a = sp < 0 ? H5I_INVALID_HID : H5Acreate2(g, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
	int rc = 0;
	if (a < 0 || H5Awrite(a, mtype, buf) < 0)
		rc = ms_h5_fail(e, "cannot write '%s': attribute %s", path, name);
	ms_h5_close(&a, H5Aclose);
	ms_h5_close(&sp, H5Sclose);
	return rc;
}

static int put_str(hid_t g, const char *name, const char *s, const char *path, ms_err *e)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
		ms_h5_fail(e, "cannot write '%s': string type", path);
		ms_h5_close(&t, H5Tclose);
		return -1;
	}
	int rc = put_attr(g, name, t, t, &s, path, e);
	H5Tclose(t);
	return rc;
}

static int put_ds(hid_t g, const char *name, hid_t ftype, hid_t mtype, int rank,
                  const hsize_t *dims, const void *buf, const char *path, ms_err *e)
{
	hid_t sp = H5Screate_simple(rank, dims, NULL);
	hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
	hid_t d = H5I_INVALID_HID;
	int rc = -1;
	/* No object times: the same table gives the same bytes. */
	if (sp >= 0 && pl >= 0 && H5Pset_obj_track_times(pl, 0) >= 0)
		d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
	if (d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
		ms_h5_fail(e, "cannot write '%s': dataset /zlut/%s", path, name);
	else
		rc = 0;
	ms_h5_close(&d, H5Dclose);
	ms_h5_close(&pl, H5Pclose);
	ms_h5_close(&sp, H5Sclose);
	return rc;
}

static int write_h5(const char *tmp, const char *path, const void *arg, ms_err *e)
{
	const struct ms_zlut *z = arg;
	hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	if (f < 0)
		return ms_h5_fail(e, "cannot create '%s'", tmp);
	hid_t g = H5Gcreate2(f, "zlut", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	int rc = -1;
	if (g < 0) {
		ms_h5_fail(e, "cannot write '%s': group /zlut", path);
		goto out;
	}
	hsize_t zd[1] = {z->nplanes}, pd[3] = {z->nbeads, z->nplanes, z->plen}, bd[1] = {z->nbeads};
	int32_t roi = z->roi_size, over = z->oversample;
	char created[sizeof z->created];
	if (z->created[0])
		snprintf(created, sizeof created, "%s", z->created);
	else
		iso_now(created, sizeof created);
	if (put_ds(g, "z_nm", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, zd, z->z_nm, path, e) ||
	    put_ds(g, "profiles", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, pd, z->profiles, path, e) ||
	    put_ds(g, "bead_ids", H5T_STD_U32LE, H5T_NATIVE_UINT32, 1, bd, z->bead_ids, path, e) ||
	    put_attr(g, "roi_size", H5T_STD_I32LE, H5T_NATIVE_INT32, &roi, path, e) ||
	    put_attr(g, "nm_per_px", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &z->nm_per_px, path, e) ||
	    put_attr(g, "profile_oversample", H5T_STD_I32LE, H5T_NATIVE_INT32, &over, path, e) ||
	    put_str(g, "profile_weighting", z->weighting, path, e) ||
	    put_str(g, "created", created, path, e) ||
	    put_str(g, "mstk_version", MS_VERSION, path, e))
		goto out;
	rc = 0;
out:
	ms_h5_close(&g, H5Gclose);
	if (H5Fclose(f) < 0 && rc == 0)
		rc = ms_h5_fail(e, "cannot write '%s'", path);
	return rc;
}

int ms_zlut_save_h5(const char *path, const struct ms_zlut *z, ms_err *e)
{
	if (validate(z, path, e))
		return -1;
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	int rc = atomic_save(path, write_h5, z, e);
	ms_h5_quiet_off(&q);
	return rc;
}

/* Open a dataset of /zlut, check its class and rank; dims out. */
static hid_t get_ds(hid_t g, const char *name, H5T_class_t cls, int rank, hsize_t *dims,
                    const char *path, ms_err *e)
{
	if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
		ms_err_set(e, "'%s': dataset /zlut/%s is missing", path, name);
		return H5I_INVALID_HID;
	}
	hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
	if (d < 0) {
		ms_h5_fail(e, "'%s': cannot open /zlut/%s", path, name);
		return H5I_INVALID_HID;
	}
	hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
	bool ok = t >= 0 && sp >= 0 && H5Tget_class(t) == cls &&
	          H5Sget_simple_extent_ndims(sp) == rank &&
	          H5Sget_simple_extent_dims(sp, dims, NULL) == rank;
	ms_h5_close(&t, H5Tclose);
	ms_h5_close(&sp, H5Sclose);
	if (!ok) {
		ms_err_set(e, "'%s': /zlut/%s is not a %d-dimensional %s array", path, name, rank,
		           cls == H5T_FLOAT ? "floating-point" : "integer");
		H5Dclose(d);
		return H5I_INVALID_HID;
	}
	return d;
}

static int get_ds_data(hid_t d, hid_t mtype, void *buf, const char *path, const char *name,
                       ms_err *e)
{
	if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
		return ms_h5_fail(e, "'%s': cannot read /zlut/%s", path, name);
	return 0;
}

/* An optional scalar attribute converted to mtype; absent leaves buf. */
static int get_attr(hid_t g, const char *name, hid_t mtype, void *buf, const char *path, ms_err *e)
{
	if (H5Aexists(g, name) <= 0)
		return 0;
	hid_t a = H5Aopen(g, name, H5P_DEFAULT);
	int rc = 0;
	if (a < 0 || H5Aread(a, mtype, buf) < 0)
		rc = ms_h5_fail(e, "'%s': cannot read attribute %s of /zlut", path, name);
	ms_h5_close(&a, H5Aclose);
	return rc;
}

/* An optional string attribute, variable- or fixed-length. */
static int get_str(hid_t g, const char *name, char *out, size_t n, const char *path, ms_err *e)
{
	if (H5Aexists(g, name) <= 0)
		return 0;
	hid_t a = H5Aopen(g, name, H5P_DEFAULT);
	hid_t t = a < 0 ? H5I_INVALID_HID : H5Aget_type(a);
	hid_t mt = H5I_INVALID_HID;
	int rc = -1;
	if (t < 0 || H5Tget_class(t) != H5T_STRING) {
		ms_err_set(e, "'%s': attribute %s of /zlut is not a string", path, name);
		goto out;
	}
	mt = H5Tcopy(t);
	if (mt < 0) {
		ms_h5_fail(e, "'%s': cannot read attribute %s of /zlut", path, name);
		goto out;
	}
	if (H5Tis_variable_str(t) > 0) {
		char *s = NULL;
		if (H5Aread(a, mt, &s) < 0) {
			ms_h5_fail(e, "'%s': cannot read attribute %s of /zlut", path, name);
			goto out;
		}
		snprintf(out, n, "%s", s ? s : "");
		H5free_memory(s);
	} else {
		size_t sz = H5Tget_size(t);
		char *s = calloc(sz + 1, 1);
		if (!s) {
			ms_err_set(e, "'%s': out of memory", path);
			goto out;
		}
		if (H5Aread(a, mt, s) < 0) {
			ms_h5_fail(e, "'%s': cannot read attribute %s of /zlut", path, name);
			free(s);
			goto out;
		}
		snprintf(out, n, "%s", s);
		free(s);
	}
	rc = 0;
out:
	ms_h5_close(&mt, H5Tclose);
	ms_h5_close(&t, H5Tclose);
	ms_h5_close(&a, H5Aclose);
	return rc;
}

static int load_h5(const char *path, struct ms_zlut *z, ms_err *e)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0)
		return ms_h5_fail(e, "cannot open '%s' as HDF5", path);
	hid_t g = H5I_INVALID_HID, dz = H5I_INVALID_HID, dp = H5I_INVALID_HID, db = H5I_INVALID_HID;
	int rc = -1;
	if (H5Lexists(f, "zlut", H5P_DEFAULT) > 0)
		g = H5Gopen2(f, "zlut", H5P_DEFAULT);
	if (g < 0) {
		ms_err_set(e, "'%s' has no /zlut group (not an mstk Z-LUT file)", path);
		goto out;
	}
	hsize_t zd[1], pd[3], bd[1];
	if ((dz = get_ds(g, "z_nm", H5T_FLOAT, 1, zd, path, e)) < 0 ||
	    (dp = get_ds(g, "profiles", H5T_FLOAT, 3, pd, path, e)) < 0 ||
	    (db = get_ds(g, "bead_ids", H5T_INTEGER, 1, bd, path, e)) < 0)
		goto out;
	if (pd[1] != zd[0] || pd[0] != bd[0]) {
		ms_err_set(e, "'%s': /zlut/profiles is %llu x %llu x %llu, but there are %llu planes "
		           "and %llu beads", path, (unsigned long long)pd[0], (unsigned long long)pd[1],
		           (unsigned long long)pd[2], (unsigned long long)zd[0],
		           (unsigned long long)bd[0]);
		goto out;
	}
	if (zd[0] < 2 || pd[2] < 1 || bd[0] < 1) {
		ms_err_set(e, "'%s': %llu planes, %llu bins, %llu beads; a Z-LUT needs at least 2 "
		           "planes, 1 bin and 1 bead", path, (unsigned long long)zd[0],
		           (unsigned long long)pd[2], (unsigned long long)bd[0]);
		goto out;
	}
	if (ms_zlut_alloc(z, (size_t)zd[0], (size_t)pd[2], (size_t)bd[0], e)) {
		ms_err_prefix(e, "'%s'", path);
		goto out;
	}
	int32_t roi = 0, over = 0;
	if (get_ds_data(dz, H5T_NATIVE_DOUBLE, z->z_nm, path, "z_nm", e) ||
	    get_ds_data(dp, H5T_NATIVE_FLOAT, z->profiles, path, "profiles", e) ||
	    get_ds_data(db, H5T_NATIVE_UINT32, z->bead_ids, path, "bead_ids", e) ||
	    get_attr(g, "roi_size", H5T_NATIVE_INT32, &roi, path, e) ||
	    get_attr(g, "nm_per_px", H5T_NATIVE_DOUBLE, &z->nm_per_px, path, e) ||
	    get_attr(g, "profile_oversample", H5T_NATIVE_INT32, &over, path, e) ||
	    get_str(g, "profile_weighting", z->weighting, sizeof z->weighting, path, e) ||
	    get_str(g, "created", z->created, sizeof z->created, path, e))
		goto out;
	z->roi_size = roi;
	z->oversample = over;
	if (validate(z, path, e))
		goto out;
	rc = 0;
out:
	ms_h5_close(&dz, H5Dclose);
	ms_h5_close(&dp, H5Dclose);
	ms_h5_close(&db, H5Dclose);
	ms_h5_close(&g, H5Gclose);
	/* A truncated file can fail only at close, when the library reads
	 * what it had deferred. */
	if (H5Fclose(f) < 0 && rc == 0)
		rc = ms_h5_fail(e, "cannot read '%s'", path);
	if (rc)
		ms_zlut_free(z);
	return rc;
}

int ms_zlut_load(const char *path, struct ms_zlut *z, ms_err *e)
{
	memset(z, 0, sizeof *z);
	FILE *f = fopen(path, "rb");
	if (!f)
		return ms_err_set(e, "cannot open '%s':", path);
	unsigned char sig[8];
	size_t n = fread(sig, 1, sizeof sig, f);
	bool err = ferror(f);
	fclose(f);
	if (err)
		return ms_err_set(e, "cannot read '%s'", path);
	if (n == sizeof sig && !memcmp(sig, h5_signature, sizeof sig)) {
		struct ms_h5_quiet q;
		ms_h5_quiet_on(&q);
		int rc = load_h5(path, z, e);
		ms_h5_quiet_off(&q);
		return rc;
	}
	return load_text(path, z, e);
}

int ms_zlut_is_h5(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	unsigned char sig[8];
	size_t n = fread(sig, 1, sizeof sig, f);
	fclose(f);
	if (n != sizeof sig || memcmp(sig, h5_signature, sizeof sig))
		return 0;
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	int yes = 0;
	hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (h >= 0 && H5Lexists(h, "zlut", H5P_DEFAULT) > 0) {
		hid_t g = H5Gopen2(h, "zlut", H5P_DEFAULT);
		yes = g >= 0;
		ms_h5_close(&g, H5Gclose);
	}
	ms_h5_close(&h, H5Fclose);
	ms_h5_quiet_off(&q);
	return yes;
}
