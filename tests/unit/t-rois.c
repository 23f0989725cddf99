/*
 * t-rois: bead/ROI list files. Parsing (comments, blank lines, tabs, CRLF,
 * a last line without a newline), every refusal with its exact
 * "file:line: ..." message, duplicate and out-of-range ids, the frame
 * bounds check at its inclusive edge, the ROI size rule, and a write ->
 * read round trip through a real file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rois.h"
#include "../lib/tap.h"

/* Parse text as the file "f.tsv"; returns ms_rois_read's result. */
static int parse(const char *text, struct ms_roilist *l, ms_err *e)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	e->msg[0] = '\0';
	int rc = ms_rois_read(f, "f.tsv", l, e);
	fclose(f);
	return rc;
}

static void test_parse_good(void)
{
	struct ms_roilist l;
	ms_err e;
	const char *text =
		"# id x0 y0\n"
		"0 120 36\n"
		"\n"
		"1\t301\t150\t# a bead near the magnet\n"
		"   \t  \n"
		"  2   5  7  \r\n"
		"# 3 4 5 is commented out\n"
		"65535 0 2147483647#no space before the comment\r\n"
		"17 9 8";
	int rc = parse(text, &l, &e);
	tap_int(rc, 0, "a list with comments, blank lines, tabs, CRLF and no final newline reads");
	if (rc)
		tap_diag("%s", e.msg);
	tap_int((long long)l.n, 5, "5 beads");
	struct ms_roi want[] = { { 0, 120, 36 }, { 1, 301, 150 }, { 2, 5, 7 },
	                         { 65535, 0, 2147483647 }, { 17, 9, 8 } };
	int same = l.n == 5;
	for (size_t i = 0; same && i < 5; i++)
		same = l.roi[i].id == want[i].id && l.roi[i].x0 == want[i].x0 && l.roi[i].y0 == want[i].y0;
	tap_ok(same, "ids and corners in file order, the largest id and corner included");
	tap_int(ms_rois_find(&l, 65535), 3, "find: id 65535 is at index 3");
	tap_int(ms_rois_find(&l, 0), 0, "find: id 0 is at index 0");
	tap_int(ms_rois_find(&l, 17), 4, "find: the last one");
	tap_int(ms_rois_find(&l, 3), -1, "find: a commented-out id is not there");
	ms_rois_free(&l);
	tap_ok(l.roi == NULL && l.n == 0, "ms_rois_free empties the list");
	ms_rois_free(&l);	/* twice is harmless */

	tap_int(parse("", &l, &e), 0, "an empty stream reads as an empty list");
	tap_int((long long)l.n, 0, "with no beads");
	ms_rois_free(&l);

	/* Many beads: the list grows past its first allocation. */
	size_t cap = 1 << 16, len = 0;
	char *big = malloc(cap);
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(big + len, cap - len, "%d %d %d\n", 999 - i, i, 2 * i);
	rc = parse(big, &l, &e);
	int ok = rc == 0 && l.n == 1000;
	for (size_t i = 0; ok && i < l.n; i++)
		ok = l.roi[i].id == 999 - i && l.roi[i].x0 == (int32_t)i && l.roi[i].y0 == 2 * (int32_t)i;
	tap_ok(ok, "1000 beads read in order");
	tap_int(ms_rois_find(&l, 0), 999, "find in a long list");
	ms_rois_free(&l);
	free(big);
}

static void test_parse_bad(void)
{
	struct {
		const char *text, *msg, *what;
	} bad[] = {
		{ "# ok\n0 1 2\n3 4\n", "f.tsv:3: expected 'id x0 y0', found 2 fields", "two fields" },
		{ "7\n", "f.tsv:1: expected 'id x0 y0', found 1 field", "one field" },
		{ "0 1 2 3\n", "f.tsv:1: expected 'id x0 y0', found 4 fields", "four fields" },
		{ "0 1 2 3 4 5\n", "f.tsv:1: expected 'id x0 y0', found 6 fields", "six fields" },
		{ "\n\r\n\n0 1 2 x # why\n", "f.tsv:4: expected 'id x0 y0', found 4 fields",
		  "line numbers count blank lines (CRLF too)" },
		{ "a 1 2\n", "f.tsv:1: 'a' is not an integer (expected 'id x0 y0')", "a word for the id" },
		{ "1 2.5 3\n", "f.tsv:1: '2.5' is not an integer (expected 'id x0 y0')", "a decimal x0" },
		{ "1 2 3x\n", "f.tsv:1: '3x' is not an integer (expected 'id x0 y0')", "junk after y0" },
		{ "1 2 99999999999999999999\n",
		  "f.tsv:1: '99999999999999999999' is not an integer (expected 'id x0 y0')", "an overflowing y0" },
		{ "-1 0 0\n", "f.tsv:1: bead id -1 is outside 0..65535", "a negative id" },
		{ "0 0 0\n65536 0 0\n", "f.tsv:2: bead id 65536 is outside 0..65535", "id 65536" },
		{ "1 -1 0\n", "f.tsv:1: ROI corner (-1, 0) is negative or too large", "a negative x0" },
		{ "1 0 -5\n", "f.tsv:1: ROI corner (0, -5) is negative or too large", "a negative y0" },
		{ "1 2147483648 0\n", "f.tsv:1: ROI corner (2147483648, 0) is negative or too large",
		  "x0 past 32 bits" },
		{ "5 0 0\n6 1 1\n5 2 2\n", "f.tsv: bead id 5 appears more than once", "a duplicate id" },
		{ "9 0 0\n1 0 0\n4 0 0\n0 0 0\n1 5 5\n", "f.tsv: bead id 1 appears more than once",
		  "a duplicate id out of order" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct ms_roilist l = { (struct ms_roi *)1, 99 };
		ms_err e;
		int rc = parse(bad[i].text, &l, &e);
		tap_ok(rc == -1 && l.roi == NULL && l.n == 0, "%s: refused, list left empty", bad[i].what);
		tap_str(e.msg, bad[i].msg, "%s: message", bad[i].what);
	}
}

static void test_load(void)
{
	char path[512];
	struct ms_roilist l;
	ms_err e;
	snprintf(path, sizeof path, "%s/none.tsv", tap_tmpdir());
	tap_int(ms_rois_load(path, &l, &e), -1, "a missing file fails");
	char want[700];
	snprintf(want, sizeof want, "cannot open '%s': No such file or directory", path);
	tap_str(e.msg, want, "with the path and the reason");

	snprintf(path, sizeof path, "%s/empty.tsv", tap_tmpdir());
	FILE *f = fopen(path, "w");
	fputs("# id x0 y0\n\n# nothing\n", f);
	fclose(f);
	tap_int(ms_rois_load(path, &l, &e), -1, "a list without beads fails to load");
	snprintf(want, sizeof want, "%s: no beads in the ROI list", path);
	tap_str(e.msg, want, "saying so");
	ms_rois_free(&l);

	snprintf(path, sizeof path, "%s/bad.tsv", tap_tmpdir());
	f = fopen(path, "w");
	fputs("# id x0 y0\n0 1 2\n1 2\n", f);
	fclose(f);
	tap_int(ms_rois_load(path, &l, &e), -1, "a malformed file fails to load");
	snprintf(want, sizeof want, "%s:3: expected 'id x0 y0', found 2 fields", path);
	tap_str(e.msg, want, "with its path and line number");
}

static void test_check(void)
{
	struct ms_roi r[] = { { 0, 0, 0 }, { 7, 10, 20 } };
	struct ms_roilist l = { r, 2 };
	ms_err e = { { 0 } };
	tap_int(ms_rois_check(&l, 64, 74, 84, &e), 0, "a ROI whose last column and row are the frame's fits");
	tap_int(ms_rois_check(&l, 64, 73, 84, &e), -1, "one column short fails");
	tap_str(e.msg, "ROI of bead 7 at (10, 20), size 64, lies outside the 73x84 frame",
	        "naming the bead, its corner, the size and the frame");
	tap_int(ms_rois_check(&l, 64, 74, 83, &e), -1, "one row short fails");
	tap_int(ms_rois_check(&l, 8, 8, 8, &e), -1, "the frame must hold every ROI");
	tap_str(e.msg, "ROI of bead 7 at (10, 20), size 8, lies outside the 8x8 frame", "the second one here");
	struct ms_roi one[] = { { 3, 0, 0 } };
	struct ms_roilist l1 = { one, 1 };
	tap_int(ms_rois_check(&l1, 8, 8, 8, &e), 0, "a ROI the size of the frame fits");
	struct ms_roi far[] = { { 4, INT32_MAX, INT32_MAX } };
	struct ms_roilist lf = { far, 1 };
	tap_int(ms_rois_check(&lf, 256, (uint32_t)INT32_MAX + 100, (uint32_t)INT32_MAX + 100, &e), -1,
	        "a corner near 2^31 is checked without overflow");
	struct ms_roilist none = { NULL, 0 };
	tap_int(ms_rois_check(&none, 64, 1, 1, &e), 0, "an empty list fits anything");

	long ok[] = { 8, 10, 64, 254, 256 };
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		tap_int(ms_roi_size_check(ok[i], &e), 0, "ROI size %ld is allowed", ok[i]);
	long no[] = { 6, 7, 9, 63, 257, 258, 0, -8, 1L << 40 };
	for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
		char want[128];
		snprintf(want, sizeof want, "ROI size %ld is not an even number from 8 to 256", no[i]);
		tap_int(ms_roi_size_check(no[i], &e), -1, "ROI size %ld is refused", no[i]);
		tap_str(e.msg, want, "ROI size %ld message", no[i]);
	}
}

static void test_write(void)
{
	struct ms_roi r[] = { { 0, 120, 36 }, { 1, 301, 150 }, { 65535, 0, 7 } };
	struct ms_roilist l = { r, 3 };
	const char *comment[] = { NULL, "a bead near the magnet", "score 0.93" };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	tap_int(ms_rois_write(f, &l, comment), 0, "ms_rois_write succeeds");
	fclose(f);
	tap_str(text, "# id x0 y0\n0 120 36\n1 301 150 # a bead near the magnet\n65535 0 7 # score 0.93\n",
	        "the written list: header line, single spaces, comments after '#'");
	free(text);

	f = open_memstream(&text, &len);
	ms_rois_write(f, &l, NULL);
	fclose(f);
	tap_str(text, "# id x0 y0\n0 120 36\n1 301 150\n65535 0 7\n", "without comments");
	free(text);

	char path[512];
	snprintf(path, sizeof path, "%s/rt.tsv", tap_tmpdir());
	f = fopen(path, "w");
	ms_rois_write(f, &l, comment);
	fclose(f);
	struct ms_roilist back;
	ms_err e;
	int rc = ms_rois_load(path, &back, &e);
	tap_int(rc, 0, "the written file loads");
	int same = rc == 0 && back.n == 3;
	for (size_t i = 0; same && i < 3; i++)
		same = back.roi[i].id == r[i].id && back.roi[i].x0 == r[i].x0 && back.roi[i].y0 == r[i].y0;
	tap_ok(same, "write -> read gives the same list, in order");
	ms_rois_free(&back);

	struct ms_roilist empty = { NULL, 0 };
	f = open_memstream(&text, &len);
	ms_rois_write(f, &empty, NULL);
	fclose(f);
	tap_str(text, "# id x0 y0\n", "an empty list is the header line alone");
	free(text);
}

int main(void)
{
	tap_int(MS_ROI_SIZE_MIN, 8, "smallest ROI 8");
	tap_int(MS_ROI_SIZE_MAX, 256, "largest ROI 256");
	tap_int(MS_BEAD_ID_MAX, 65535, "largest bead id 65535");
	test_parse_good();
	test_parse_bad();
	test_load();
	test_check();
	test_write();
	return tap_done();
}
