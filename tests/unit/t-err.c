/*
 * t-err: the error plumbing every program relies on. ms_err messages (the
 * strerror suffix, prefixes, truncation without overflow) are checked in
 * process; ms_die, ms_warn, ms_usage_error and ms_close_stdout print and
 * exit, so they run in forked children whose stderr, stdout and exit
 * status are captured and compared exactly.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "../lib/child.h"
#include "../lib/tap.h"

/* An ms_err with guard bytes after it, to see an overflow even without ASan. */
struct guarded {
	ms_err e;
	unsigned char guard[64];
};

static void guard_init(struct guarded *g)
{
	memset(g, 0x5a, sizeof *g);
}

static int guard_ok(const struct guarded *g)
{
	for (size_t i = 0; i < sizeof g->guard; i++)
		if (g->guard[i] != 0x5a)
			return 0;
	return 1;
}

static void test_set(void)
{
	ms_err e = { { 0 } };
	errno = 0;
	tap_int(ms_err_set(&e, "bad value '%s' for %s", "abc", "--n"), -1, "ms_err_set returns -1");
	tap_str(e.msg, "bad value 'abc' for --n", "ms_err_set formats the message");

	errno = ENOENT;
	ms_err_set(&e, "cannot open '%s':", "x.tif");
	tap_str(e.msg, "cannot open 'x.tif': No such file or directory",
	        "a trailing ':' appends strerror(errno)");
	tap_int(errno, ENOENT, "ms_err_set leaves errno as it was");

	/* The ':' must come from the format's end, not from the arguments' middle. */
	errno = EACCES;
	ms_err_set(&e, "%s", "key: value");
	tap_str(e.msg, "key: value", "a ':' inside the message adds nothing");
	errno = EACCES;
	ms_err_set(&e, "%s:", "out");
	tap_str(e.msg, "out: Permission denied", "a ':' at the very end from an argument appends strerror");

	errno = EIO;
	tap_int(ms_err_set(NULL, "ignored:"), -1, "ms_err_set(NULL) returns -1");
	tap_int(errno, EIO, "ms_err_set(NULL) leaves errno");

	struct guarded g;
	guard_init(&g);
	char big[3000];
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ms_err_set(&g.e, "%s", big);
	tap_int((long long)strnlen(g.e.msg, sizeof g.e.msg), sizeof g.e.msg - 1,
	        "an overlong message is cut to %zu bytes", sizeof g.e.msg - 1);
	tap_ok(guard_ok(&g), "an overlong message does not write past the ms_err");
	/* A cut message that ends in ':' has no room for strerror; it must still not overflow. */
	guard_init(&g);
	big[sizeof g.e.msg - 2] = ':';
	big[sizeof g.e.msg - 1] = '\0';
	errno = ENOENT;
	ms_err_set(&g.e, "%s", big);
	tap_ok(strlen(g.e.msg) == sizeof g.e.msg - 1 && guard_ok(&g),
	       "a full message ending in ':' stays inside the ms_err");
}

static void test_prefix(void)
{
	ms_err e = { { 0 } };
	ms_err_set(&e, "cannot open");
	tap_int(ms_err_prefix(&e, "%s", "tracks.h5"), -1, "ms_err_prefix returns -1");
	tap_str(e.msg, "tracks.h5: cannot open", "ms_err_prefix puts 'prefix: ' in front");
	ms_err_prefix(&e, "frame %d", 7);
	tap_str(e.msg, "frame 7: tracks.h5: cannot open", "prefixes nest, outermost first");

	/* The old message is the format's argument in spirit, not a format. */
	ms_err_set(&e, "100%% sure");
	ms_err_prefix(&e, "x");
	tap_str(e.msg, "x: 100% sure", "the old message is copied, not re-formatted");

	tap_int(ms_err_prefix(NULL, "x"), -1, "ms_err_prefix(NULL) returns -1");

	struct guarded g;
	guard_init(&g);
	memset(g.e.msg, 'a', sizeof g.e.msg - 1);
	g.e.msg[sizeof g.e.msg - 1] = '\0';
	ms_err_prefix(&g.e, "pre");
	size_t n = strnlen(g.e.msg, sizeof g.e.msg);
	tap_int((long long)n, sizeof g.e.msg - 1, "a prefixed overlong message is cut to %zu bytes",
	        sizeof g.e.msg - 1);
	tap_ok(strncmp(g.e.msg, "pre: aaaa", 9) == 0, "the cut message keeps the prefix and the old text's start");
	size_t na = 0;
	for (size_t i = 5; i < n; i++)
		na += g.e.msg[i] == 'a';
	tap_int((long long)na, (long long)(n - 5), "after 'pre: ' only the old text follows");
	tap_ok(guard_ok(&g), "prefixing an overlong message does not write past the ms_err");

	/* A prefix that alone fills the buffer. */
	guard_init(&g);
	ms_err_set(&g.e, "old");
	char big[2000];
	memset(big, 'p', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ms_err_prefix(&g.e, "%s", big);
	tap_ok(strnlen(g.e.msg, sizeof g.e.msg) == sizeof g.e.msg - 1 && g.e.msg[0] == 'p' &&
	       guard_ok(&g), "an overlong prefix is cut and does not overflow");

	/* A prefix that leaves room for ": " and part of the old message. */
	ms_err_set(&e, "0123456789");
	memset(big, 'p', sizeof big);
	big[sizeof e.msg - 8] = '\0';	/* prefix of 1016 chars: room for ": " and 5 more */
	ms_err_prefix(&e, "%s", big);
	tap_str(e.msg + sizeof e.msg - 8, ": 01234", "the old message is cut to what fits after the prefix");
}

/* Children: each prints through err.c and exits, or returns. */
static void child_die(void *ctx)
{
	(void)ctx;
	ms_die("something %d went wrong", 42);
}

static void child_die_errno(void *ctx)
{
	(void)ctx;
	errno = EACCES;
	ms_die("cannot open '%s':", "x.tif");
}

static void child_die_flushes(void *ctx)
{
	(void)ctx;
	/* stdout into the stderr pipe: its buffered text must come out before the message. */
	dup2(STDERR_FILENO, STDOUT_FILENO);
	printf("partial output\n");
	ms_die("failed");
}

static void child_warn(void *ctx)
{
	(void)ctx;
	errno = ENOSPC;
	ms_warn("disk:");
	ms_warn("careful with %s", "that");
}

static void child_usage(void *ctx)
{
	(void)ctx;
	ms_usage_error("unknown option '%s'", "-x");
}

static void child_close_full(void *ctx)
{
	(void)ctx;
	int fd = open("/dev/full", O_WRONLY);
	if (fd < 0)
		_exit(90);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	printf("hello\n");
	ms_close_stdout();
	_exit(0);
}

/* A write that failed earlier, its data dropped, and later writes that work. */
static void child_close_lost(void *ctx)
{
	(void)ctx;
	int p[2];
	if (pipe(p) < 0)
		_exit(90);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	dup2(p[1], STDOUT_FILENO);
	close(p[1]);
	static char big[3 * BUFSIZ];
	memset(big, 'x', sizeof big);
	fwrite(big, 1, sizeof big, stdout);	/* fails: nobody reads */
	int fd = open("/dev/null", O_WRONLY);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	ms_close_stdout();
	_exit(0);
}

static void child_close_ok(void *ctx)
{
	(void)ctx;
	printf("all of it\n");
	ms_close_stdout();
	_exit(0);
}

#if !defined(__SANITIZE_ADDRESS__)
/* Under ASan an impossible malloc aborts in ASan itself, so this runs only without. */
static void child_xmalloc_huge(void *ctx)
{
	(void)ctx;
	volatile size_t n = SIZE_MAX / 2;
	void *p = ms_xmalloc(n);
	free(p);
}
#endif

static void test_children(void)
{
	struct child_out o;

	child_run(child_die, NULL, &o);
	tap_int(o.status, 1, "ms_die exits 1");
	tap_str(o.err, "t-err: something 42 went wrong\n", "ms_die prints 'program: message'");
	tap_str(o.out, "", "ms_die writes nothing to stdout");

	child_run(child_die_errno, NULL, &o);
	tap_int(o.status, MS_EXIT_FAIL, "ms_die with errno exits MS_EXIT_FAIL");
	tap_str(o.err, "t-err: cannot open 'x.tif': Permission denied\n",
	        "ms_die with a trailing ':' appends strerror");

	child_run(child_die_flushes, NULL, &o);
	tap_str(o.err, "partial output\nt-err: failed\n", "ms_die flushes stdout before its message");

	child_run(child_warn, NULL, &o);
	tap_int(o.status, CHILD_RETURNED, "ms_warn returns");
	tap_str(o.err, "t-err: disk: No space left on device\nt-err: careful with that\n",
	        "ms_warn prints 'program: message', with strerror after ':'");

	child_run(child_usage, NULL, &o);
	tap_int(o.status, 2, "ms_usage_error exits 2");
	tap_str(o.err, "t-err: unknown option '-x'\nTry 't-err --help' for more information.\n",
	        "ms_usage_error prints the message and the --help hint");
	tap_str(o.out, "", "ms_usage_error writes nothing to stdout");

	child_run(child_close_full, NULL, &o);
	tap_int(o.status, 1, "ms_close_stdout on /dev/full exits 1");
	tap_str(o.err, "t-err: error writing standard output: No space left on device\n",
	        "ms_close_stdout on /dev/full says why");

	child_run(child_close_lost, NULL, &o);
	tap_int(o.status, 1, "ms_close_stdout after an earlier lost write exits 1");
	tap_str(o.err, "t-err: error writing standard output: an earlier write failed\n",
	        "ms_close_stdout after an earlier lost write says so");

	child_run(child_close_ok, NULL, &o);
	tap_int(o.status, 0, "ms_close_stdout on a working pipe returns");
	tap_str(o.out, "all of it\n", "ms_close_stdout delivers buffered output");
	tap_str(o.err, "", "ms_close_stdout on success is silent");

#if defined(__SANITIZE_ADDRESS__)
	tap_diag("skipping the out-of-memory child under AddressSanitizer");
#else
	child_run(child_xmalloc_huge, NULL, &o);
	tap_int(o.status, 1, "ms_xmalloc of an impossible size exits 1");
	char want[128];
	snprintf(want, sizeof want, "t-err: out of memory allocating %zu bytes\n", SIZE_MAX / 2);
	tap_str(o.err, want, "ms_xmalloc says how much it could not allocate");
#endif
}

static void test_alloc(void)
{
	void *p = ms_xmalloc(0);
	tap_ok(p != NULL, "ms_xmalloc(0) returns a pointer");
	free(p);
	unsigned char *z = ms_xcalloc(100, 3);
	int zero = 1;
	for (int i = 0; i < 300; i++)
		zero &= z[i] == 0;
	tap_ok(zero, "ms_xcalloc zeroes");
	z = ms_xrealloc(z, 1000);
	z[999] = 1;
	tap_int(z[299], 0, "ms_xrealloc keeps the old contents");
	free(z);
	char *s = ms_xstrdup("abc");
	tap_str(s, "abc", "ms_xstrdup copies");
	free(s);
	tap_str(ms_progname(), "t-err", "ms_progname is the program's short name");
	tap_int(MS_EXIT_OK * 100 + MS_EXIT_FAIL * 10 + MS_EXIT_USAGE, 12, "exit codes are 0, 1, 2");
}

int main(void)
{
	test_set();
	test_prefix();
	test_alloc();
	test_children();
	return tap_done();
}
