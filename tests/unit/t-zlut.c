/*
 * t-zlut: Z-LUT tables in both file forms: HDF5 and text round trips
 * (bit-exact floats, attributes), h5 -> text -> h5, the text written
 * byte for byte as numpy's savetxt writes it, MagScope's own simulation
 * table checked against np.loadtxt, malformed text and truncated HDF5
 * rejected with the file (and line) named, and saves that leave no
 * temporary file behind and never clobber a good table on failure.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/tap.h"
#include "zlut.h"

static void tpath(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tap_tmpdir(), name);
}

static void put_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "wb");
	fwrite(text, 1, n, f);
	fclose(f);
}

static bool py_run(const char *code, const char *a1, const char *a2)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 - '%s' '%s' <<'EOF'\nimport sys, h5py, numpy as np\n%s\nEOF\n", a1,
	         a2 ? a2 : "", code);
	fflush(stdout);
	return system(cmd) == 0;
}

/* No "<name>.tmp.*" left in the scratch directory. */
static int count_temps(void)
{
	DIR *d = opendir(tap_tmpdir());
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

static void make_table(struct ms_zlut *z)
{
	ms_err e;
	if (ms_zlut_alloc(z, 7, 5, 3, &e))
		abort();
	static const uint32_t ids[3] = {5, 17, 2};
	for (size_t k = 0; k < 7; k++)
		z->z_nm[k] = -300.0 + 100.1 * (double)k + 1.0 / 3.0;
	for (size_t b = 0; b < 3; b++) {
		z->bead_ids[b] = ids[b];
		for (size_t k = 0; k < 7; k++)
			for (size_t i = 0; i < 5; i++)
				z->profiles[(b * 7 + k) * 5 + i] = (float)sin((double)(i + 7 * k + 13 * b));
	}
	z->profiles[3] = NAN;
	z->profiles[4] = -0.0f;
	z->profiles[40] = 1e-40f;	/* subnormal */
	z->profiles[41] = 3.4e38f;
	z->roi_size = 50;
	z->nm_per_px = 107.5;
	z->oversample = 4;
	snprintf(z->weighting, sizeof z->weighting, "linear");
	snprintf(z->created, sizeof z->created, "2024-05-01T12:34:56+02:00");
}

static bool same_floats(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof *a) == 0;
}

static void test_h5(void)
{
	struct ms_zlut z, r;
	ms_err e = {""};
	char path[512];
	make_table(&z);
	tpath(path, sizeof path, "lut.h5");
	tap_int(ms_zlut_save_h5(path, &z, &e), 0, "save h5");
	if (e.msg[0])
		tap_diag("%s", e.msg);
	tap_int(ms_zlut_is_h5(path), 1, "is_h5: saved table");
	tap_int(ms_zlut_load(path, &r, &e), 0, "load h5");
	tap_ok(r.nplanes == 7 && r.plen == 5 && r.nbeads == 3, "h5 shape %zu x %zu x %zu", r.nplanes,
	       r.plen, r.nbeads);
	tap_ok(r.nplanes == 7 && memcmp(r.z_nm, z.z_nm, 7 * sizeof(double)) == 0, "h5 z exact");
	tap_ok(r.nbeads == 3 && same_floats(r.profiles, z.profiles, 105),
	       "h5 profiles bit-exact (NaN, -0, subnormal, 3.4e38)");
	tap_ok(r.nbeads == 3 && memcmp(r.bead_ids, z.bead_ids, 3 * sizeof(uint32_t)) == 0, "h5 bead ids");
	tap_ok(r.roi_size == 50 && r.nm_per_px == 107.5 && r.oversample == 4, "h5 numeric attributes");
	tap_str(r.weighting, "linear", "h5 weighting");
	tap_str(r.created, "2024-05-01T12:34:56+02:00", "h5 created");
	tap_int(ms_zlut_find_bead(&r, 17), 1, "find_bead(17)");
	tap_int(ms_zlut_find_bead(&r, 2), 2, "find_bead(2)");
	tap_int(ms_zlut_find_bead(&r, 99), -1, "find_bead(99) absent");
	ms_zlut_free(&r);
	tap_ok(r.z_nm == NULL && r.nplanes == 0, "free clears the table");

	/* The layout documented in zlut.h, seen by h5py. */
	tap_ok(py_run("f = h5py.File(sys.argv[1], 'r')\n"
	              "assert list(f.keys()) == ['zlut'], list(f.keys())\n"
	              "g = f['zlut']\n"
	              "assert sorted(g.keys()) == ['bead_ids', 'profiles', 'z_nm'], list(g.keys())\n"
	              "assert g['z_nm'].dtype == np.float64 and g['z_nm'].shape == (7,)\n"
	              "assert g['profiles'].dtype == np.float32 and g['profiles'].shape == (3, 7, 5)\n"
	              "assert g['bead_ids'].dtype == np.uint32 and list(g['bead_ids'][()]) == [5, 17, 2]\n"
	              "z = -300.0 + 100.1 * np.arange(7) + 1.0 / 3.0\n"
	              "assert np.array_equal(g['z_nm'][()], z), g['z_nm'][()]\n"
	              "p = np.sin(np.arange(5)[None, None, :] + 7 * np.arange(7)[None, :, None]\n"
	              "           + 13 * np.arange(3)[:, None, None]).astype(np.float32)\n"
	              "p.flat[3] = np.nan; p.flat[4] = -0.0; p.flat[40] = 1e-40; p.flat[41] = 3.4e38\n"
	              "q = g['profiles'][()]\n"
	              "assert q.tobytes() == p.tobytes(), np.argwhere(q != p)\n"
	              "a = g.attrs\n"
	              "assert sorted(a.keys()) == ['created', 'mstk_version', 'nm_per_px', "
	              "'profile_oversample', 'profile_weighting', 'roi_size'], list(a.keys())\n"
	              "assert a['roi_size'] == 50 and a['profile_oversample'] == 4 and a['nm_per_px'] == 107.5\n"
	              "assert a['profile_weighting'] == 'linear' and a['created'] == '2024-05-01T12:34:56+02:00'\n"
	              "assert a['mstk_version'] == '" MS_VERSION "', a['mstk_version']\n",
	              path, NULL),
	       "h5py: /zlut layout, dtypes, values and attributes");

	/* An empty "created" is filled with the time of saving. */
	z.created[0] = '\0';
	tap_int(ms_zlut_save_h5(path, &z, &e), 0, "save h5 over the old one");
	tap_int(ms_zlut_load(path, &r, &e), 0, "load");
	size_t n = strlen(r.created);
	tap_ok(n == 25 && r.created[4] == '-' && r.created[10] == 'T' && r.created[19] != '\0' &&
	       (r.created[19] == '+' || r.created[19] == '-') && r.created[22] == ':',
	       "created filled in as ISO 8601 with offset: '%s'", r.created);
	ms_zlut_free(&r);
	ms_zlut_free(&z);
	tap_int(count_temps(), 0, "no temporary files left by h5 saves");
}

static void test_text(void)
{
	struct ms_zlut z, r, r2;
	ms_err e = {""};
	char h5[512], txt[512], h5b[512];
	make_table(&z);
	tpath(txt, sizeof txt, "bead17.txt");
	tap_int(ms_zlut_save_text(txt, &z, 1, &e), 0, "save text (bead index 1)");
	tap_int(ms_zlut_is_h5(txt), 0, "is_h5: text");
	tap_int(ms_zlut_load(txt, &r, &e), 0, "load text");
	tap_ok(r.nplanes == 7 && r.plen == 5 && r.nbeads == 1 && r.bead_ids[0] == 0,
	       "text: 7 planes, 5 bins, one bead with id 0");
	tap_ok(r.nplanes == 7 && memcmp(r.z_nm, z.z_nm, 7 * sizeof(double)) == 0, "text z exact");
	tap_ok(r.nbeads == 1 && same_floats(r.profiles, ms_zlut_profile(&z, 1, 0), 35),
	       "text profiles bit-exact");
	tap_ok(r.roi_size == 0 && r.nm_per_px == 0 && r.oversample == 0 && !r.weighting[0] &&
	       !r.created[0], "text: attributes unknown");
	tap_ok(py_run("a = np.loadtxt(sys.argv[1])\n"
	              "assert a.shape == (6, 7), a.shape\n"
	              "np.savetxt(sys.argv[1] + '.np', a)\n"
	              "mine, theirs = open(sys.argv[1], 'rb').read(), open(sys.argv[1] + '.np', 'rb').read()\n"
	              "assert mine == theirs, (mine[:200], theirs[:200])\n",
	              txt, NULL),
	       "text is byte-identical to np.savetxt of what np.loadtxt reads (NaN included)");

	/* h5 -> text -> h5 */
	tpath(h5, sizeof h5, "three.h5");
	tpath(txt, sizeof txt, "bead2.txt");
	tpath(h5b, sizeof h5b, "bead2.h5");
	tap_ok(ms_zlut_save_h5(h5, &z, &e) == 0 && ms_zlut_load(h5, &r2, &e) == 0, "h5 saved and loaded");
	tap_int(ms_zlut_save_text(txt, &r2, 2, &e), 0, "its bead index 2 saved as text");
	ms_zlut_free(&r);
	tap_int(ms_zlut_load(txt, &r, &e), 0, "text loaded");
	r.bead_ids[0] = 2;
	r.roi_size = 50;
	snprintf(r.weighting, sizeof r.weighting, "nearest");
	tap_int(ms_zlut_save_h5(h5b, &r, &e), 0, "saved as h5 again");
	ms_zlut_free(&r);
	tap_int(ms_zlut_load(h5b, &r, &e), 0, "and loaded");
	tap_ok(r.nbeads == 1 && r.bead_ids[0] == 2 && r.roi_size == 50 && !strcmp(r.weighting, "nearest") &&
	       same_floats(r.profiles, ms_zlut_profile(&z, 2, 0), 35) &&
	       memcmp(r.z_nm, z.z_nm, 7 * sizeof(double)) == 0,
	       "h5 -> text -> h5 keeps z and profiles exactly");
	ms_zlut_free(&r);
	ms_zlut_free(&r2);

	tap_int(ms_zlut_save_text(txt, &z, 3, &e), -1, "bead index 3 of 3 rejected");
	ms_zlut_free(&z);
	tap_int(count_temps(), 0, "no temporary files left by text saves");
}

static void fixture_path(char *buf, size_t n)
{
	const char *shared = getenv("MS_SHARED"), *src = getenv("MS_SRC");
	if (shared)
		snprintf(buf, n, "%s/fixtures/magscope-simulation-zlut.txt", shared);
	else if (src)
		snprintf(buf, n, "%s/../shared/fixtures/magscope-simulation-zlut.txt", src);
	if ((!shared && !src) || access(buf, R_OK) != 0)
		snprintf(buf, n, "/work/shared/fixtures/magscope-simulation-zlut.txt");
}

static void test_fixture(void)
{
	char path[512], out[512];
	struct ms_zlut z;
	ms_err e = {""};
	fixture_path(path, sizeof path);
	int rc = ms_zlut_load(path, &z, &e);
	tap_int(rc, 0, "MagScope's simulation Z-LUT loads");
	if (rc) {
		tap_diag("%s", e.msg);
		return;
	}
	tap_int((long long)z.nplanes, 100, "100 planes");
	tap_int((long long)z.plen, 25, "profile length 25");
	tap_int((long long)z.nbeads, 1, "one bead");
	tap_ok(z.z_nm[0] == -5000.0 && z.z_nm[99] == 5000.0, "z from -5000 to 5000 nm");
	tap_ok(z.z_nm[1] == -4.898989898989899302e+03, "z[1] as written");
	tap_near((z.z_nm[99] - z.z_nm[0]) / 99, 101.0101010101, 1e-9, "step 101.0101 nm");
	tap_ok(ms_zlut_profile(&z, 0, 0)[0] == (float)7.275980726703767942e-01 &&
	       ms_zlut_profile(&z, 0, 1)[1] == (float)4.898765435736698315e-01 &&
	       ms_zlut_profile(&z, 0, 3)[2] == (float)1.680098057789531640e-01,
	       "spot values: row 1 col 0, row 2 col 1, row 3 col 3");
	tpath(out, sizeof out, "fixture.txt");
	tap_int(ms_zlut_save_text(out, &z, 0, &e), 0, "saved again as text");
	tap_ok(py_run("a = np.loadtxt(sys.argv[1]); b = np.loadtxt(sys.argv[2])\n"
	              "assert a.shape == b.shape == (26, 100), (a.shape, b.shape)\n"
	              "assert np.array_equal(a[0], b[0])\n"
	              "assert np.array_equal(a[1:], b[1:].astype(np.float32).astype(np.float64))\n"
	              "assert 0 <= b[1:].min() and b[1:].max() <= 1\n",
	              out, path),
	       "every value equals np.loadtxt's (z exact, profiles as float32)");
	ms_zlut_free(&z);
}

static void test_malformed(void)
{
	static const struct {
		const char *name, *text, *want1, *want2;
	} cases[] = {
		{"ragged.txt", "1 2 3\n4 5 6\n7 8\n", "line 3", "same length"},
		{"ragged2.txt", "# header\n1 2 3\n\n4 5 6 # note\n7 8 9 10\n", "line 5", "line 2 has 3"},
		{"word.txt", "1 2 3\n4 abc 6\n", "line 2", "'abc' is not a number"},
		{"hex.txt", "1 2 3\n4 0x10 6\n", "line 2", "'0x10'"},
		{"nanz.txt", "# z\n1 nan 3\n4 5 6\n", "line 2", "not finite"},
		{"infz.txt", "1 2 -inf\n4 5 6\n", "line 1", "column 3"},
		{"onerow.txt", "1 2 3\n", "1 row", "profile row"},
		{"onecol.txt", "1\n2\n3\n", "1 column", "2 z planes"},
		{"empty.txt", "", "0 row", "profile row"},
		{"comments.txt", "# nothing\n\n   \n", "0 row", "profile row"},
	};
	char path[512];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tpath(path, sizeof path, cases[i].name);
		put_file(path, cases[i].text, strlen(cases[i].text));
		struct ms_zlut z;
		ms_err e = {""};
		int rc = ms_zlut_load(path, &z, &e);
		tap_ok(rc == -1 && strstr(e.msg, path) && strstr(e.msg, cases[i].want1) &&
		       strstr(e.msg, cases[i].want2) && z.z_nm == NULL,
		       "%s rejected: %s", cases[i].name, e.msg);
		if (rc == 0)
			ms_zlut_free(&z);
	}

	/* What np.loadtxt accepts: NaN profiles, comments, CRLF, tabs. */
	struct ms_zlut z;
	ms_err e = {""};
	tpath(path, sizeof path, "ok.txt");
	const char *ok = "# MagScope Z-LUT\r\n-10\t10 # z\r\n\r\nnan 0.5\r\n1e-3 -inf\r\n";
	put_file(path, ok, strlen(ok));
	int rc = ms_zlut_load(path, &z, &e);
	tap_ok(rc == 0 && z.nplanes == 2 && z.plen == 2 && z.z_nm[0] == -10 && z.z_nm[1] == 10 &&
	       isnan(z.profiles[0]) && z.profiles[1] == 1e-3f && z.profiles[2] == 0.5f &&
	       isinf(z.profiles[3]) && z.profiles[3] < 0,
	       "NaN/inf profiles, comments, CRLF and tabs accepted %s", e.msg);
	if (rc == 0)
		ms_zlut_free(&z);
	tap_ok(py_run("a = np.loadtxt(sys.argv[1]); assert a.shape == (3, 2)", path, NULL),
	       "np.loadtxt agrees that file is a 3 x 2 table");

	tpath(path, sizeof path, "missing.txt");
	rc = ms_zlut_load(path, &z, &e);
	tap_ok(rc == -1 && strstr(e.msg, "No such file") && strstr(e.msg, path), "missing file: %s", e.msg);
}

static void test_truncated(void)
{
	struct ms_zlut z;
	ms_err e = {""};
	char path[512], cut[512];
	make_table(&z);
	tpath(path, sizeof path, "whole.h5");
	ms_zlut_save_h5(path, &z, &e);
	ms_zlut_free(&z);
	FILE *f = fopen(path, "rb");
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	tap_ok(n > 1000 && n < sizeof buf, "h5 table is %zu bytes", n);
	size_t lens[] = {8, 100, n / 2, n - 200};
	for (size_t i = 0; i < 4; i++) {
		snprintf(cut, sizeof cut, "%s/cut%zu.h5", tap_tmpdir(), lens[i]);
		put_file(cut, buf, lens[i]);
		e.msg[0] = '\0';
		int rc = ms_zlut_load(cut, &z, &e);
		tap_ok(rc == -1 && strstr(e.msg, cut) && z.z_nm == NULL, "h5 cut to %zu bytes rejected: %s",
		       lens[i], e.msg);
		if (rc == 0)
			ms_zlut_free(&z);
		tap_int(ms_zlut_is_h5(cut), 0, "is_h5: cut to %zu bytes", lens[i]);
	}

	/* HDF5 files that are not tables. */
	tpath(cut, sizeof cut, "other.h5");
	tap_ok(py_run("h5py.File(sys.argv[1], 'w').create_group('tracking')", cut, NULL), "make other.h5");
	tap_ok(ms_zlut_load(cut, &z, &e) == -1 && strstr(e.msg, "no /zlut group"), "no /zlut: %s", e.msg);
	tap_int(ms_zlut_is_h5(cut), 0, "is_h5: HDF5 without /zlut");
	tpath(cut, sizeof cut, "shape.h5");
	tap_ok(py_run("g = h5py.File(sys.argv[1], 'w').create_group('zlut')\n"
	              "g['z_nm'] = np.arange(5.0); g['profiles'] = np.zeros((1, 4, 3), np.float32)\n"
	              "g['bead_ids'] = np.zeros(1, np.uint32)",
	              cut, NULL),
	       "make shape.h5");
	tap_ok(ms_zlut_load(cut, &z, &e) == -1 && strstr(e.msg, "5 planes"), "profiles/z mismatch: %s",
	       e.msg);
	tpath(cut, sizeof cut, "nanz.h5");
	tap_ok(py_run("g = h5py.File(sys.argv[1], 'w').create_group('zlut')\n"
	              "g['z_nm'] = np.array([0, np.nan, 2.0]); g['profiles'] = np.zeros((2, 3, 3), np.float32)\n"
	              "g['bead_ids'] = np.array([4, 4], np.uint32)",
	              cut, NULL),
	       "make nanz.h5");
	tap_ok(ms_zlut_load(cut, &z, &e) == -1 && strstr(e.msg, "plane 1") && strstr(e.msg, "finite"),
	       "non-finite z in h5: %s", e.msg);
}

static void test_atomic(void)
{
	struct ms_zlut z, bad, r;
	ms_err e = {""};
	char path[512], dir[512];
	make_table(&z);
	tpath(path, sizeof path, "keep.h5");
	umask(022);
	tap_int(ms_zlut_save_h5(path, &z, &e), 0, "save");
	struct stat st;
	stat(path, &st);
	tap_int(st.st_mode & 0777, 0644, "saved with 0666 & ~umask, not mkstemp's 0600");

	/* A failing save leaves the old table and no temporary file. */
	ms_zlut_alloc(&bad, 1, 5, 1, &e);
	e.msg[0] = '\0';
	tap_int(ms_zlut_save_h5(path, &bad, &e), -1, "one-plane table refused");
	tap_ok(strstr(e.msg, path) && strstr(e.msg, "at least 2"), "message: %s", e.msg);
	ms_zlut_free(&bad);
	snprintf(z.weighting, sizeof z.weighting, "Cubic Spline");
	tap_int(ms_zlut_save_h5(path, &z, &e), -1, "a weighting that is not a method name is refused: %s", e.msg);
	snprintf(z.weighting, sizeof z.weighting, "linear");
	tap_ok(ms_zlut_load(path, &r, &e) == 0 && r.nbeads == 3 && same_floats(r.profiles, z.profiles, 105),
	       "old table intact");
	ms_zlut_free(&r);

	/* rename() fails when the target is a directory: no temp left. */
	tpath(dir, sizeof dir, "adir");
	mkdir(dir, 0755);
	tap_int(ms_zlut_save_h5(dir, &z, &e), -1, "save over a directory fails");
	tap_ok(strstr(e.msg, "rename") != NULL, "message: %s", e.msg);
	tap_int(ms_zlut_save_text(dir, &z, 0, &e), -1, "text save over a directory fails");
	tpath(dir, sizeof dir, "nodir/x.h5");
	tap_int(ms_zlut_save_h5(dir, &z, &e), -1, "save into a missing directory fails");
	tap_ok(strstr(e.msg, dir) && strstr(e.msg, "No such file"), "message: %s", e.msg);
	tap_int(count_temps(), 0, "no temporary files after failed saves");
	ms_zlut_free(&z);

	tap_int(ms_zlut_alloc(&z, 0, 5, 1, &e), -1, "alloc of 0 planes refused");
	tap_int(ms_zlut_alloc(&z, SIZE_MAX / 2, 4, 2, &e), -1, "alloc overflow refused: %s", e.msg);
}

int main(void)
{
	test_h5();
	test_text();
	test_fixture();
	test_malformed();
	test_truncated();
	test_atomic();
	return tap_done();
}
