/*
 * err: how mstk reports failure. Programs die or warn with their own name
 * in front ("ms-track: cannot open 'x.tif': No such file or directory") and
 * the exit codes every program shares. Library code never prints and never
 * exits: it fills an ms_err that the caller owns and returns -1 (or NULL),
 * so that the program decides what a failure means.
 */
#ifndef MS_ERR_H
#define MS_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdnoreturn.h>

enum {
	MS_EXIT_OK = 0,
	MS_EXIT_FAIL = 1,	/* a runtime failure: bad file, I/O error */
	MS_EXIT_USAGE = 2,	/* the command line was wrong */
};

/* A message filled in by library calls; empty when nothing failed. */
typedef struct ms_err {
	char msg[1024];
} ms_err;

/*
 * Set e (if not NULL) from a printf format and return -1. A format that
 * ends in ':' gets ": " and strerror(errno) appended, as in sbase's eprintf.
 */
int ms_err_set(ms_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ms_err_vset(ms_err *e, const char *fmt, va_list ap);
/* Put "prefix: " in front of the message already in e; returns -1. */
int ms_err_prefix(ms_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The short name of the running program, e.g. "ms-track". */
const char *ms_progname(void);

noreturn void ms_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ms_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: one line, a hint to --help, exit 2. */
noreturn void ms_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that dies on failure, for programs and for set-up code. */
void *ms_xmalloc(size_t n);
void *ms_xcalloc(size_t n, size_t size);
void *ms_xrealloc(void *p, size_t n);
char *ms_xstrdup(const char *s);

/*
 * Close stdout and die if anything written to it was lost (a full disk, a
 * closed pipe): a program must never exit 0 after losing output.
 */
void ms_close_stdout(void);

#endif
