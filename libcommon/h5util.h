/*
 * h5util: the HDF5 plumbing the file modules share (tracks, zlut): HDF5's
 * own error printing switched off around our calls and restored after, the
 * most specific message of its error stack turned into an ms_err, and
 * closing handles that may never have been opened.
 */
#ifndef MS_H5UTIL_H
#define MS_H5UTIL_H

#include <hdf5.h>

#include "err.h"

/* HDF5's automatic error printing, saved on entry and restored on exit. */
struct ms_h5_quiet {
	H5E_auto2_t fn;
	void *data;
};

void ms_h5_quiet_on(struct ms_h5_quiet *q);
void ms_h5_quiet_off(const struct ms_h5_quiet *q);

/*
 * Set e from fmt and append the most specific message on HDF5's error
 * stack; returns -1. Call it before any other HDF5 call: each API call
 * clears the stack.
 */
int ms_h5_fail(ms_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Close *id with fn if it is open, and mark it closed. */
void ms_h5_close(hid_t *id, herr_t (*fn)(hid_t));

#endif
