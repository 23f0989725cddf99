/* h5util: shared HDF5 error handling; see h5util.h. */
#include "h5util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ms_h5_quiet_on(struct ms_h5_quiet *q)
{
	q->fn = NULL;
	q->data = NULL;
	H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ms_h5_quiet_off(const struct ms_h5_quiet *q)
{
	H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/*
 * The most specific message, shortened: HDF5's low-level descriptions run
 * "file write failed: time = ..., filename = ..., errno = 27, error
 * message = 'File too large', ..." over several lines; keep the words
 * before the first "key = value" and the system's error message.
 */
static herr_t innermost_cb(unsigned n, const H5E_error2_t *err, void *data)
{
	char *out = data;
	if (n != 0 || !err->desc)
		return 0;
	const char *d = err->desc, *eq = strstr(d, " = ");
	size_t len = strcspn(d, "\n");
	if (eq) {
		const char *colon = NULL;
		for (const char *p = d; p < eq; p++)
			if (*p == ':')
				colon = p;
		if (colon && (size_t)(colon - d) < len)
			len = (size_t)(colon - d);
	}
	const char *sys = strstr(d, "error message = '");
	if (sys) {
		sys += strlen("error message = '");
		snprintf(out, 256, "%.*s: %.*s", (int)len, d, (int)strcspn(sys, "'"), sys);
	} else {
		snprintf(out, 256, "%.*s", (int)len, d);
	}
	return 0;
}

int ms_h5_fail(ms_err *e, const char *fmt, ...)
{
	char why[256] = "";
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, why);
	char msg[sizeof e->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (why[0])
		return ms_err_set(e, "%s (HDF5: %s)", msg, why);
	return ms_err_set(e, "%s", msg);
}

void ms_h5_close(hid_t *id, herr_t (*fn)(hid_t))
{
	if (*id >= 0)
		fn(*id);
	*id = H5I_INVALID_HID;
}

