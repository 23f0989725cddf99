/* tap: TAP output for the unit tests; see tap.h. */
#include "tap.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Test-harness state: a test program is its own main, so this is allowed. */
static int ntests, nfailed;
static char tmpdir[256];

static bool report(bool cond, const char *fmt, va_list ap)
{
	ntests++;
	if (!cond)
		nfailed++;
	printf("%s %d - ", cond ? "ok" : "not ok", ntests);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

bool tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	return cond;
}

bool tap_near(double got, double want, double tol, const char *fmt, ...)
{
	bool cond = fabs(got - want) <= tol;
	va_list ap;
	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	if (!cond)
		printf("#   got %.9g, want %.9g +- %.3g\n", got, want, tol);
	return cond;
}

bool tap_int(long long got, long long want, const char *fmt, ...)
{
	bool cond = got == want;
	va_list ap;
	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	if (!cond)
		printf("#   got %lld, want %lld\n", got, want);
	return cond;
}

bool tap_str(const char *got, const char *want, const char *fmt, ...)
{
	bool cond = got && want && strcmp(got, want) == 0;
	va_list ap;
	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	if (!cond)
		printf("#   got '%s', want '%s'\n", got ? got : "(null)", want ? want : "(null)");
	return cond;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
}

const char *tap_capture(const char *cmd, char *out, size_t size)
{
	/* our own buffered lines first, so that the child's cannot come between */
	fflush(stdout);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, size - 1, p) : 0;
	out[n] = '\0';
	while (n && out[n - 1] == '\n')
		out[--n] = '\0';
	if (p)
		pclose(p);
	return out;
}

const char *tap_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof tmpdir, "%s/ms-unit-XXXXXX", base ? base : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(1);
		}
	}
	return tmpdir;
}

int tap_done(void)
{
	printf("1..%d\n", ntests);
	if (tmpdir[0]) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return nfailed ? 1 : 0;
}
