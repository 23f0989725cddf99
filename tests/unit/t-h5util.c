/*
 * t-h5util: the HDF5 error plumbing of the file modules. quiet_on saves
 * whatever automatic error handler was installed and silences HDF5 (its
 * stack dump never reaches stderr), quiet_off restores exactly that
 * handler, also when nested; ms_h5_fail turns the innermost message of
 * HDF5's stack into our message, shortened to its words and the system's
 * reason; ms_h5_close closes only what is open.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5util.h"
#include "../lib/tap.h"

static int handler_calls;

static herr_t my_handler(hid_t stack, void *data)
{
	(void)stack;
	(void)data;
	handler_calls++;
	return 0;
}

/* Run fn with stderr sent to a file; returns how many bytes it wrote there. */
static long stderr_bytes(void (*fn)(void *), void *ctx)
{
	char path[512];
	snprintf(path, sizeof path, "%s/stderr", tap_tmpdir());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn(ctx);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	struct stat st;
	fstat(fd, &st);
	close(fd);
	return (long)st.st_size;
}

static void open_missing(void *ctx)
{
	hid_t f = H5Fopen(ctx, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f >= 0)
		H5Fclose(f);
}

static void open_missing_quiet(void *ctx)
{
	struct ms_h5_quiet q;
	ms_h5_quiet_on(&q);
	open_missing(ctx);
	ms_h5_quiet_off(&q);
}

static void test_quiet(void)
{
	char missing[512];
	snprintf(missing, sizeof missing, "%s/missing.h5", tap_tmpdir());

	/* HDF5's own default prints a stack dump: the reason for quiet_on. */
	tap_ok(stderr_bytes(open_missing, missing) > 0, "without quiet, HDF5 prints its error stack");
	tap_int(stderr_bytes(open_missing_quiet, missing), 0, "within quiet_on/off, nothing reaches stderr");
	tap_ok(stderr_bytes(open_missing, missing) > 0, "after quiet_off, HDF5's default printing is back");

	/* A handler of our own is saved and restored, data pointer included. */
	int token;
	H5Eset_auto2(H5E_DEFAULT, my_handler, &token);
	struct ms_h5_quiet q1, q2;
	ms_h5_quiet_on(&q1);
	tap_ok(q1.fn == my_handler && q1.data == &token, "quiet_on saves the installed handler and data");
	H5E_auto2_t fn = (H5E_auto2_t)1;
	void *data = (void *)1;
	H5Eget_auto2(H5E_DEFAULT, &fn, &data);
	tap_ok(fn == NULL, "quiet_on removes the handler");
	handler_calls = 0;
	open_missing(missing);
	tap_int(handler_calls, 0, "a failure while quiet calls no handler");

	ms_h5_quiet_on(&q2);	/* nested */
	tap_ok(q2.fn == NULL, "a nested quiet_on saves 'no handler'");
	ms_h5_quiet_off(&q2);
	H5Eget_auto2(H5E_DEFAULT, &fn, &data);
	tap_ok(fn == NULL, "the inner quiet_off leaves the outer quiet in force");
	ms_h5_quiet_off(&q1);
	H5Eget_auto2(H5E_DEFAULT, &fn, &data);
	tap_ok(fn == my_handler && data == &token, "the outer quiet_off restores the handler and its data");
	handler_calls = 0;
	open_missing(missing);
	tap_ok(handler_calls > 0, "the restored handler is called on the next failure");
}

static void test_fail(void)
{
	char missing[512], want[1024];
	snprintf(missing, sizeof missing, "%s/missing.h5", tap_tmpdir());
	ms_err e = { { 0 } };
	struct ms_h5_quiet q;

	ms_h5_quiet_on(&q);
	hid_t f = H5Fopen(missing, H5F_ACC_RDONLY, H5P_DEFAULT);
	int rc = ms_h5_fail(&e, "cannot open '%s'", missing);
	ms_h5_quiet_off(&q);
	tap_ok(f < 0, "opening a missing file fails");
	tap_int(rc, -1, "ms_h5_fail returns -1");
	snprintf(want, sizeof want,
	         "cannot open '%s' (HDF5: unable to open file: No such file or directory)", missing);
	tap_str(e.msg, want, "the innermost message, cut before its 'key = value' list, with the system's reason");

	/* A file that is not HDF5. */
	char text[512];
	snprintf(text, sizeof text, "%s/plain.txt", tap_tmpdir());
	FILE *fp = fopen(text, "w");
	fputs("not hdf5 at all\n", fp);
	fclose(fp);
	ms_h5_quiet_on(&q);
	f = H5Fopen(text, H5F_ACC_RDONLY, H5P_DEFAULT);
	ms_h5_fail(&e, "%s: not a tracks file", "plain.txt");
	ms_h5_quiet_off(&q);
	tap_str(e.msg, "plain.txt: not a tracks file (HDF5: file signature not found)",
	        "a message without 'key = value' is kept whole");

	/* An object that does not exist, in a file that does. */
	char path[512];
	snprintf(path, sizeof path, "%s/real.h5", tap_tmpdir());
	f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	ms_h5_quiet_on(&q);
	hid_t d = H5Dopen2(f, "nope", H5P_DEFAULT);
	ms_h5_fail(&e, "no dataset %s", "nope");
	ms_h5_quiet_off(&q);
	tap_ok(d < 0, "opening a missing dataset fails");
	tap_str(e.msg, "no dataset nope (HDF5: object 'nope' doesn't exist)", "HDF5's words for it");

	/* With nothing on the stack, the message alone. */
	H5Eclear2(H5E_DEFAULT);
	ms_h5_fail(&e, "plain %d", 7);
	tap_str(e.msg, "plain 7", "an empty error stack adds nothing");
	tap_int(ms_h5_fail(NULL, "x"), -1, "ms_h5_fail(NULL) returns -1");

	/* A long message is cut, not overflowed. */
	char big[2000];
	memset(big, 'm', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ms_h5_quiet_on(&q);
	H5Dopen2(f, "nope", H5P_DEFAULT);
	ms_h5_fail(&e, "%s", big);
	ms_h5_quiet_off(&q);
	tap_int((long long)strnlen(e.msg, sizeof e.msg), (long long)sizeof e.msg - 1,
	        "an overlong message is cut to the ms_err");

	/* ms_h5_close */
	hid_t s = H5Screate_simple(1, (hsize_t[]){ 4 }, NULL);
	ms_h5_close(&s, H5Sclose);
	tap_ok(s == H5I_INVALID_HID, "ms_h5_close marks the id closed");
	hid_t s2 = H5Screate_simple(1, (hsize_t[]){ 4 }, NULL);
	hid_t copy = s2;
	ms_h5_close(&s2, H5Sclose);
	tap_ok(H5Iis_valid(copy) <= 0, "ms_h5_close closed the dataspace");
	ms_h5_close(&s2, H5Sclose);	/* again: must not call H5Sclose(-1) */
	tap_ok(s2 == H5I_INVALID_HID, "closing a closed id is harmless");
	H5Fclose(f);
}

/* A closer that counts, for the not-open case. */
static int closes;
static herr_t count_close(hid_t id)
{
	(void)id;
	closes++;
	return 0;
}

int main(void)
{
	test_quiet();
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	test_fail();
	hid_t never = H5I_INVALID_HID;
	ms_h5_close(&never, count_close);
	tap_int(closes, 0, "ms_h5_close does not call the closer on a never-opened id");
	hid_t some = 12345;
	ms_h5_close(&some, count_close);
	tap_int(closes, 1, "and calls it once on an open one");
	return tap_done();
}
