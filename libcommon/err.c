/* err: messages, exit codes and checked allocation; see err.h. */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ms_progname(void)
{
	/* glibc keeps the name for us: no global of our own is needed. */
	return program_invocation_short_name;
}

int ms_err_vset(ms_err *e, const char *fmt, va_list ap)
{
	int saved = errno;
	if (!e)
		return -1;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	size_t n = strlen(e->msg);
	if (n > 0 && e->msg[n - 1] == ':')
		snprintf(e->msg + n, sizeof e->msg - n, " %s", strerror(saved));
	errno = saved;
	return -1;
}

int ms_err_set(ms_err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ms_err_vset(e, fmt, ap);
	va_end(ap);
	return -1;
}

int ms_err_prefix(ms_err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char old[sizeof e->msg];
	memcpy(old, e->msg, sizeof old);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof e->msg) {
		size_t room = sizeof e->msg - (size_t)n;
		/* Cut the old message to what fits rather than overflow. */
		snprintf(e->msg + n, room, ": %.*s", (int)(room > 3 ? room - 3 : 0), old);
	}
	return -1;
}

static void vmessage(const char *fmt, va_list ap)
{
	int saved = errno;
	fflush(stdout);
	fprintf(stderr, "%s: ", ms_progname());
	vfprintf(stderr, fmt, ap);
	size_t n = strlen(fmt);
	if (n > 0 && fmt[n - 1] == ':')
		fprintf(stderr, " %s", strerror(saved));
	fputc('\n', stderr);
}

void ms_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	exit(MS_EXIT_FAIL);
}

void ms_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
}

void ms_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", ms_progname());
	exit(MS_EXIT_USAGE);
}

void *ms_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		ms_die("out of memory allocating %zu bytes", n);
	return p;
}

void *ms_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		ms_die("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *ms_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		ms_die("out of memory allocating %zu bytes", n);
	return p;
}

char *ms_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		ms_die("out of memory");
	return d;
}

void ms_close_stdout(void)
{
	/*
	 * fclose reports only its own flush: a write that failed earlier (and
	 * whose data stdio dropped) leaves nothing but the error flag. Check
	 * both while stdout is still open, since ms_die flushes it.
	 */
	if (fflush(stdout) != 0)
		ms_die("error writing standard output:");
	if (ferror(stdout))
		ms_die("error writing standard output: an earlier write failed");
	if (fclose(stdout) != 0) {
		/* Not ms_die: it would flush the stdout just closed. */
		int saved = errno;
		fprintf(stderr, "%s: error writing standard output: %s\n", ms_progname(),
		        strerror(saved));
		exit(MS_EXIT_FAIL);
	}
}
