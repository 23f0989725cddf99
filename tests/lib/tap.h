/*
 * tap: a very small TAP producer for the C unit tests, read by prove.
 * Each check prints "ok N - name" or "not ok N - name" with the values
 * that differed; tap_done() prints the plan and returns the exit status.
 */
#ifndef MS_TAP_H
#define MS_TAP_H

#include <stdbool.h>
#include <stddef.h>

bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* |got - want| <= tol, with both numbers shown on failure. */
bool tap_near(double got, double want, double tol, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool tap_int(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool tap_str(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A note on standard output, as a TAP comment. */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Run the shell command cmd and return what it printed (up to size - 1
 * bytes, trailing newlines removed) in out; "" if it could not start. For
 * asking an independent reader (python3 with h5py, tifffile) about a file.
 */
const char *tap_capture(const char *cmd, char *out, size_t size);
/* A scratch directory for this test, removed by tap_done(). */
const char *tap_tmpdir(void);
int tap_done(void);

#endif
