/*
 * child: run a function in a forked child and capture what it writes to
 * standard output and standard error and how it ends, for the unit tests
 * of code that prints and exits (err, cli, trackopts). Header-only, so a
 * test that needs it just includes it.
 */
#ifndef MS_TEST_CHILD_H
#define MS_TEST_CHILD_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct child_out {
	int status;		/* exit status, or 128 + signal number */
	char out[16384];	/* standard output, NUL-terminated (cut if longer) */
	char err[16384];	/* standard error, likewise */
};

/* What the child returns with when fn returns instead of exiting. */
#define CHILD_RETURNED 77

/*
 * Run fn(ctx) in a child whose stdout and stderr are pipes; if fn returns,
 * the child exits (flushing stdio) with CHILD_RETURNED. Returns 0, or -1
 * if the child could not be started.
 */
static inline int child_run(void (*fn)(void *), void *ctx, struct child_out *o)
{
	int po[2], pe[2];
	memset(o, 0, sizeof *o);
	if (pipe(po) < 0)
		return -1;
	if (pipe(pe) < 0) {
		close(po[0]);
		close(po[1]);
		return -1;
	}
	/* The child inherits stdio buffers: empty them, or TAP lines come out twice. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		close(po[0]);
		close(po[1]);
		close(pe[0]);
		close(pe[1]);
		fn(ctx);
		exit(CHILD_RETURNED);
	}
	close(po[1]);
	close(pe[1]);
	struct pollfd p[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
	char *buf[2] = { o->out, o->err };
	size_t len[2] = { 0, 0 };
	int open_fds = 2;
	while (open_fds > 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			char tmp[4096];
			ssize_t k = read(p[i].fd, tmp, sizeof tmp);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
				continue;
			}
			size_t room = sizeof o->out - 1 - len[i];
			size_t m = (size_t)k < room ? (size_t)k : room;
			memcpy(buf[i] + len[i], tmp, m);
			len[i] += m;
		}
	}
	for (int i = 0; i < 2; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

#endif
