/* ctl: the control protocol, its server endpoint and its client; see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FILTERS_MAX 8
#define FILTER_LEN 64
#define KEY_LISTEN UINT64_MAX
#define KEY_WAKE (UINT64_MAX - 1)

static const char *const code_names[] = {
	[MS_CTL_OK] = "ok",
	[MS_CTL_USAGE] = "usage",
	[MS_CTL_UNKNOWN_TARGET] = "unknown-target",
	[MS_CTL_UNKNOWN_VERB] = "unknown-verb",
	[MS_CTL_BAD_VALUE] = "bad-value",
	[MS_CTL_FAILED] = "failed",
	[MS_CTL_BUSY] = "busy",
	[MS_CTL_TIMEOUT] = "timeout",
};

const char *ms_ctl_code_name(enum ms_ctl_code c)
{
	if ((unsigned)c < sizeof code_names / sizeof *code_names)
		return code_names[c];
	return "failed";
}

double ms_ctl_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- words and lines ---------------------------------------------------- */

/* Length of the UTF-8 sequence at p (n bytes available), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	unsigned cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int ms_ctl_split(const char *line, size_t len, char *store, size_t storesize,
                 const char **words, int maxwords, ms_err *e)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len >= MS_CTL_LINE_MAX)
		return ms_err_set(e, "line longer than %d bytes", MS_CTL_LINE_MAX - 1);
	if (storesize < len + 1)
		return ms_err_set(e, "line too long for its buffer");
	const unsigned char *p = (const unsigned char *)line, *end = p + len;
	char *out = store;
	int n = 0;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		if (n == maxwords)
			return ms_err_set(e, "more than %d words", maxwords);
		words[n++] = out;
		bool quoted = false;
		while (p < end) {
			unsigned c = *p;
			if (!quoted && (c == ' ' || c == '\t'))
				break;
			if (c < 0x20 && c != '\t')
				return ms_err_set(e, "control character 0x%02x at byte %zu", c,
				                  (size_t)(p - (const unsigned char *)line) + 1);
			if (c == 0x7f)
				return ms_err_set(e, "control character 0x7f at byte %zu",
				                  (size_t)(p - (const unsigned char *)line) + 1);
			if (c == '"') {
				quoted = !quoted;
				p++;
				continue;
			}
			if (quoted && c == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\')) {
				*out++ = (char)p[1];
				p += 2;
				continue;
			}
			size_t k = utf8_len(p, (size_t)(end - p));
			if (k == 0)
				return ms_err_set(e, "byte 0x%02x at byte %zu is not UTF-8 text", c,
				                  (size_t)(p - (const unsigned char *)line) + 1);
			memcpy(out, p, k);
			out += k;
			p += k;
		}
		if (quoted)
			return ms_err_set(e, "unterminated quote");
		*out++ = '\0';
	}
	return n;
}

int ms_ctl_parse(struct ms_ctl_cmd *c, const char *line, size_t len, ms_err *e)
{
	const char *w[MS_CTL_WORDS_MAX + 2];
	int n = ms_ctl_split(line, len, c->store, sizeof c->store, w, MS_CTL_WORDS_MAX + 2, e);
	if (n < 0)
		return -1;
	if (n == 0)
		return ms_err_set(e, "empty command");
	if (n == 1) {
		c->target = "";
		c->verb = w[0];
		c->argc = 0;
	} else {
		c->target = w[0];
		c->verb = w[1];
		c->argc = n - 2;
		if (c->argc > MS_CTL_WORDS_MAX)
			return ms_err_set(e, "more than %d words", MS_CTL_WORDS_MAX);
		for (int i = 0; i < c->argc; i++)
			c->argv[i] = w[i + 2];
	}
	if (!*c->verb)
		return ms_err_set(e, "empty verb");
	return 0;
}

static bool key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '.';
}

int ms_ctl_kv(const char *word, char *key, size_t keysize, const char **value)
{
	const char *eq = strchr(word, '=');
	if (!eq || eq == word)
		return 0;
	for (const char *q = word; q < eq; q++)
		if (!key_char(*q))
			return 0;
	size_t n = (size_t)(eq - word);
	if (n + 1 > keysize)
		return 0;
	memcpy(key, word, n);
	key[n] = '\0';
	*value = eq + 1;
	return 1;
}

int ms_ctl_switch_arg(const struct ms_ctl_cmd *c, bool *on, char *reply, size_t size)
{
	if (c->argc == 0)
		return 0;
	if (c->argc == 1 && (strcmp(c->argv[0], "on") == 0 || strcmp(c->argv[0], "off") == 0)) {
		*on = c->argv[0][1] == 'n';
		return 1;
	}
	ms_ctl_err(reply, size, MS_CTL_USAGE, "%s [on|off]", c->verb);
	return -1;
}

int ms_ctl_get(const char *text, const char *key, char *val, size_t size)
{
	char store[MS_CTL_LINE_MAX + 1];
	const char *w[256];
	ms_err e;
	int n = ms_ctl_split(text, strlen(text), store, sizeof store, w, 256, &e);
	for (int i = 0; i < n; i++) {
		char k[128];
		const char *v;
		if (ms_ctl_kv(w[i], k, sizeof k, &v) && strcmp(k, key) == 0) {
			snprintf(val, size, "%s", v);
			return 1;
		}
	}
	return 0;
}

int ms_ctl_append_word(char *out, size_t size, size_t len, const char *word)
{
	bool quote = !*word || strpbrk(word, " \t\"\\") != NULL;
	size_t need = len + (len > 0) + strlen(word) + 1;
	if (quote) {
		need += 2;
		for (const char *q = word; *q; q++)
			need += *q == '"' || *q == '\\';
	}
	if (need > size)
		return -1;
	char *p = out + len;
	if (len > 0)
		*p++ = ' ';
	if (quote)
		*p++ = '"';
	for (const char *q = word; *q; q++) {
		if (quote && (*q == '"' || *q == '\\'))
			*p++ = '\\';
		*p++ = *q;
	}
	if (quote)
		*p++ = '"';
	*p = '\0';
	return (int)(p - out);
}

int ms_ctl_join(char *out, size_t size, int n, const char *const *words)
{
	if (size == 0)
		return -1;
	out[0] = '\0';
	int len = 0;
	for (int i = 0; i < n; i++) {
		len = ms_ctl_append_word(out, size, (size_t)len, words[i]);
		if (len < 0)
			return -1;
	}
	return len;
}

/* ---- replies ------------------------------------------------------------ */

int ms_ctl_vformat(char *buf, size_t size, const char *head, const char *fmt, va_list ap)
{
	if (size == 0)
		return 0;
	if (size > MS_CTL_LINE_MAX)
		size = MS_CTL_LINE_MAX;
	int n = snprintf(buf, size, "%s", head);
	if (n < 0)
		n = 0;
	if ((size_t)n >= size)
		n = (int)size - 1;
	if (fmt && *fmt && (size_t)n + 1 < size) {
		buf[n++] = ' ';
		buf[n] = '\0';
		int k = vsnprintf(buf + n, size - (size_t)n, fmt, ap);
		if (k < 0)
			k = 0;
		n += k;
		if ((size_t)n >= size)
			n = (int)size - 1;
		/* A cut may split a UTF-8 sequence: drop its lead bytes. */
		if (k > 0 && (size_t)n == size - 1) {
			int i = n;
			while (i > 0 && ((unsigned char)buf[i - 1] & 0xc0) == 0x80)
				i--;
			if (i > 0 && (unsigned char)buf[i - 1] >= 0xc0 &&
			    utf8_len((unsigned char *)buf + i - 1, (size_t)(n - i + 1)) == 0)
				n = i - 1;
		}
	}
	buf[n] = '\0';
	for (int i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = ' ';
	/* "ok " with nothing after it is just "ok". */
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return n;
}

int ms_ctl_ok(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = ms_ctl_vformat(buf, size, "ok", fmt, ap);
	va_end(ap);
	return n;
}

int ms_ctl_err(char *buf, size_t size, enum ms_ctl_code code, const char *fmt, ...)
{
	char head[32];
	snprintf(head, sizeof head, "err %s", ms_ctl_code_name(code == MS_CTL_OK ? MS_CTL_FAILED : code));
	va_list ap;
	va_start(ap, fmt);
	int n = ms_ctl_vformat(buf, size, head, fmt, ap);
	va_end(ap);
	return n;
}

int ms_ctl_classify(const char *line, enum ms_ctl_code *code, const char **text)
{
	static const char *const empty = "";
	if (strncmp(line, "ok", 2) == 0 && (line[2] == '\0' || line[2] == ' ')) {
		if (code)
			*code = MS_CTL_OK;
		if (text)
			*text = line[2] ? line + 3 : empty;
		return 0;
	}
	if (strncmp(line, "err ", 4) == 0) {
		const char *c = line + 4;
		size_t n = strcspn(c, " ");
		enum ms_ctl_code k = MS_CTL_FAILED;
		for (size_t i = 1; i < sizeof code_names / sizeof *code_names; i++)
			if (strlen(code_names[i]) == n && strncmp(code_names[i], c, n) == 0)
				k = (enum ms_ctl_code)i;
		if (code)
			*code = k;
		if (text)
			*text = c[n] ? c + n + 1 : empty;
		return 1;
	}
	if (strncmp(line, "event ", 6) == 0) {
		if (text)
			*text = line + 6;
		return 2;
	}
	return -1;
}

/* ---- reading lines ------------------------------------------------------ */

int ms_ctl_lines_fill(struct ms_ctl_lines *l, int fd)
{
	if (l->off > 0) {
		memmove(l->buf, l->buf + l->off, l->len - l->off);
		l->len -= l->off;
		l->off = 0;
	}
	/* A full buffer holds no newline (next() would have taken the line):
	 * it is the start of an overlong line, which next() throws away. */
	if (l->len == sizeof l->buf)
		return 1;
	for (;;) {
		ssize_t k = read(fd, l->buf + l->len, sizeof l->buf - l->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (k < 0)
			return -1;
		if (k == 0)
			return 0;
		l->len += (size_t)k;
		return 1;
	}
}

long ms_ctl_lines_next(struct ms_ctl_lines *l, char **line)
{
	for (;;) {
		char *start = l->buf + l->off;
		size_t avail = l->len - l->off;
		char *nl = memchr(start, '\n', avail);
		if (l->skipping) {
			if (!nl) {
				l->off = l->len = 0;
				return -1;
			}
			l->off += (size_t)(nl - start) + 1;
			l->skipping = false;
			continue;
		}
		if (!nl) {
			if (avail >= MS_CTL_LINE_MAX) {
				l->skipping = true;
				l->off = l->len = 0;
				return -2;
			}
			return -1;
		}
		size_t n = (size_t)(nl - start);
		l->off += n + 1;
		if (n + 1 > MS_CTL_LINE_MAX)
			return -2;
		*nl = '\0';
		*line = start;
		return (long)n;
	}
}

size_t ms_ctl_lines_pending(const struct ms_ctl_lines *l)
{
	return l->len - l->off;
}

/* ---- the server --------------------------------------------------------- */

struct client {
	int fd;			/* -1: a free slot */
	uint64_t id;
	struct ms_ctl_lines in;
	char *out;
	size_t outlen, outcap;
	bool sub_all;
	int nfilters;
	char filters[FILTERS_MAX][FILTER_LEN];
	bool waiting;		/* a deferred answer is outstanding */
	bool eof;		/* the peer sent its last line */
	bool dead;		/* close at the next dispatch */
	bool registered;	/* in the epoll set, with these events: */
	uint32_t events;
};

struct ms_ctl_server {
	char *path, *name;
	int flags;
	bool fifo;
	int lfd;		/* listening socket, or the FIFO */
	int epfd, wakefd;
	dev_t dev;
	ino_t ino;
	pthread_mutex_t mu;	/* recursive: handlers may send events */
	struct client cl[MS_CTL_CLIENTS_MAX];
	uint64_t next_id;
	struct ms_ctl_lines fifo_in;
	bool thread_on;
	pthread_t thread;
	atomic_bool stopping;
	ms_ctl_handler *th_handler;
	void *th_ctx;
};

static void wake(struct ms_ctl_server *s)
{
	uint64_t one = 1;
	ssize_t k = write(s->wakefd, &one, sizeof one);
	(void)k;
}

/*
 * Keep the epoll interest in step with what the client needs: input only
 * while its lines are wanted (not at end of file, not while an answer is
 * deferred, not with a full buffer), output while some is queued. A
 * level-triggered descriptor nobody reads would otherwise wake the loop
 * without end.
 */
static void set_interest(struct ms_ctl_server *s, int i)
{
	struct client *c = &s->cl[i];
	if (c->fd < 0 || c->dead)
		return;
	uint32_t want = 0;
	if (!c->eof && !c->waiting && ms_ctl_lines_pending(&c->in) < sizeof c->in.buf)
		want |= EPOLLIN;
	if (c->outlen > 0)
		want |= EPOLLOUT;
	if (c->registered && want == c->events)
		return;
	if (want == 0) {
		if (c->registered)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->registered = false;
		c->events = 0;
		return;
	}
	struct epoll_event ev = { .events = want, .data.u64 = (uint64_t)i };
	if (epoll_ctl(s->epfd, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0) {
		c->registered = true;
		c->events = want;
	} else {
		c->dead = true;
	}
}

/* Write what is queued; on a broken connection mark the client dead. */
static void flush_client(struct ms_ctl_server *s, int i)
{
	struct client *c = &s->cl[i];
	size_t done = 0;
	while (done < c->outlen && !c->dead) {
		ssize_t k = send(c->fd, c->out + done, c->outlen - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k <= 0) {
			c->dead = true;
			break;
		}
		done += (size_t)k;
	}
	if (done > 0) {
		memmove(c->out, c->out + done, c->outlen - done);
		c->outlen -= done;
	}
	if (c->dead)
		c->outlen = 0;
	set_interest(s, i);
}

/* Queue line + "\n" for a client and try to send it. */
static void client_send(struct ms_ctl_server *s, int i, const char *line)
{
	struct client *c = &s->cl[i];
	if (c->fd < 0 || c->dead)
		return;
	size_t n = strlen(line);
	if (c->outlen + n + 1 > MS_CTL_OUTBUF_MAX) {
		/* A client that does not read its answers or events is dropped,
		 * so that it cannot make the program hold unbounded memory. */
		c->dead = true;
		c->outlen = 0;
		wake(s);
		return;
	}
	if (c->outlen + n + 1 > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		while (cap < c->outlen + n + 1)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			c->dead = true;
			wake(s);
			return;
		}
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, line, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	flush_client(s, i);
	if (c->dead)
		wake(s);
}

static void fifo_reply(const char *line)
{
	char buf[MS_CTL_LINE_MAX + 128];
	int n = snprintf(buf, sizeof buf, "%s: %s\n", ms_progname(), line);
	if (n > (int)sizeof buf - 1)
		n = (int)sizeof buf - 1;
	ssize_t k = write(STDERR_FILENO, buf, (size_t)n);
	(void)k;
}

static void close_client(struct ms_ctl_server *s, int i)
{
	struct client *c = &s->cl[i];
	if (c->fd < 0)
		return;
	if (c->registered)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static int find_client(const struct ms_ctl_server *s, uint64_t id)
{
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++)
		if (s->cl[i].fd >= 0 && s->cl[i].id == id && !s->cl[i].dead)
			return i;
	return -1;
}

static void do_subscribe(struct client *c, const char *filter)
{
	if (!filter) {
		c->sub_all = true;
		return;
	}
	for (int k = 0; k < c->nfilters; k++)
		if (strcmp(c->filters[k], filter) == 0)
			return;
	if (c->nfilters < FILTERS_MAX)
		snprintf(c->filters[c->nfilters++], FILTER_LEN, "%s", filter);
	else
		c->sub_all = true;	/* more filters than we keep: send everything */
}

/*
 * One line from client i (i < 0: the FIFO). The answer goes back to the
 * client, or to standard error for the FIFO, unless the handler defers it.
 */
static void handle_line(struct ms_ctl_server *s, int i, const char *line, size_t len,
                        ms_ctl_handler *handler, void *ctx)
{
	struct ms_ctl_cmd cmd;
	struct ms_ctl_req req = { .cmd = &cmd, .line = line };
	ms_err e;
	if (ms_ctl_parse(&cmd, line, len, &e) < 0) {
		ms_ctl_err(req.reply, sizeof req.reply, MS_CTL_USAGE, "%s", e.msg);
	} else {
		bool mine = !*cmd.target || strcmp(cmd.target, s->name) == 0;
		bool sub = strcmp(cmd.verb, "subscribe") == 0, unsub = strcmp(cmd.verb, "unsubscribe") == 0;
		if (!mine && !(s->flags & MS_CTL_ROUTER)) {
			ms_ctl_err(req.reply, sizeof req.reply, MS_CTL_UNKNOWN_TARGET,
			           "no target '%s' here (this is '%s')", cmd.target, s->name);
		} else if (mine && (sub || unsub)) {
			if (i < 0) {
				ms_ctl_err(req.reply, sizeof req.reply, MS_CTL_USAGE,
				           "events need a socket connection, not a FIFO");
			} else if (sub) {
				struct client *c = &s->cl[i];
				if (cmd.argc == 0)
					do_subscribe(c, NULL);
				for (int k = 0; k < cmd.argc; k++)
					do_subscribe(c, cmd.argv[k]);
				ms_ctl_ok(req.reply, sizeof req.reply, "subscribed");
			} else {
				s->cl[i].sub_all = false;
				s->cl[i].nfilters = 0;
				ms_ctl_ok(req.reply, sizeof req.reply, "unsubscribed");
			}
		} else {
			req.client = i >= 0 ? s->cl[i].id : 0;
			if (handler)
				handler(ctx, s, &req);
			if (req.defer && i >= 0) {
				s->cl[i].waiting = true;
				return;
			}
			if (req.defer)	/* nobody can be answered later on a FIFO */
				ms_ctl_err(req.reply, sizeof req.reply, MS_CTL_FAILED,
				           "cannot answer later on a FIFO");
			if (!req.reply[0])
				ms_ctl_err(req.reply, sizeof req.reply, MS_CTL_FAILED, "no answer");
		}
	}
	if (i < 0)
		fifo_reply(req.reply);
	else
		client_send(s, i, req.reply);
}

static int handle_lines(struct ms_ctl_server *s, int i, struct ms_ctl_lines *in,
                        ms_ctl_handler *handler, void *ctx)
{
	int handled = 0;
	char *line;
	long n;
	while (!(i >= 0 && (s->cl[i].waiting || s->cl[i].dead)) && (n = ms_ctl_lines_next(in, &line)) != -1) {
		char reply[MS_CTL_LINE_MAX];
		if (n == -2) {
			ms_ctl_err(reply, sizeof reply, MS_CTL_USAGE, "line longer than %d bytes",
			           MS_CTL_LINE_MAX - 1);
			if (i < 0)
				fifo_reply(reply);
			else
				client_send(s, i, reply);
		} else {
			handle_line(s, i, line, (size_t)n, handler, ctx);
		}
		handled++;
	}
	return handled;
}

static void accept_clients(struct ms_ctl_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;	/* EAGAIN, or out of descriptors: try later */
		}
		int i;
		for (i = 0; i < MS_CTL_CLIENTS_MAX; i++)
			if (s->cl[i].fd < 0)
				break;
		if (i == MS_CTL_CLIENTS_MAX) {
			char reply[128];
			int n = ms_ctl_err(reply, sizeof reply, MS_CTL_BUSY, "too many clients (%d)",
			                   MS_CTL_CLIENTS_MAX);
			reply[n++] = '\n';
			ssize_t k = send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)k;
			close(fd);
			continue;
		}
		struct client *c = &s->cl[i];
		memset(c, 0, sizeof *c);
		c->fd = fd;
		c->id = ++s->next_id;
		set_interest(s, i);
		if (c->dead)
			close_client(s, i);
	}
}

int ms_ctl_server_dispatch(struct ms_ctl_server *s, ms_ctl_handler *handler, void *ctx)
{
	struct epoll_event evs[MS_CTL_CLIENTS_MAX + 2];
	int handled = 0;
	pthread_mutex_lock(&s->mu);
	int n = epoll_wait(s->epfd, evs, (int)(sizeof evs / sizeof *evs), 0);
	for (int k = 0; k < n; k++) {
		uint64_t key = evs[k].data.u64;
		if (key == KEY_WAKE) {
			uint64_t v;
			ssize_t r = read(s->wakefd, &v, sizeof v);
			(void)r;
		} else if (key == KEY_LISTEN && s->fifo) {
			/* Opened read-write, so the FIFO never reads end-of-file. */
			if (ms_ctl_lines_fill(&s->fifo_in, s->lfd) > 0)
				handled += handle_lines(s, -1, &s->fifo_in, handler, ctx);
		} else if (key == KEY_LISTEN) {
			accept_clients(s);
		} else if (key < MS_CTL_CLIENTS_MAX) {
			int i = (int)key;
			struct client *c = &s->cl[i];
			if (c->fd < 0 || c->dead)
				continue;
			if (evs[k].events & EPOLLOUT)
				flush_client(s, i);
			if ((evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->eof) {
				int r = ms_ctl_lines_fill(&c->in, c->fd);
				if (r == 0)
					c->eof = true;
				else if (r < 0)
					c->dead = true;
			}
		}
	}
	/* Every client with lines to handle, also those a deferred answer released. */
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++) {
		struct client *c = &s->cl[i];
		if (c->fd < 0)
			continue;
		if (!c->dead && !c->waiting)
			handled += handle_lines(s, i, &c->in, handler, ctx);
		/* At end of input, a partial last line is dropped; the client
		 * is closed once its answers are out. */
		if (c->eof && !c->waiting && c->outlen == 0)
			c->dead = true;
		if (c->dead)
			close_client(s, i);
		else
			set_interest(s, i);
	}
	pthread_mutex_unlock(&s->mu);
	return handled;
}

int ms_ctl_server_wait(struct ms_ctl_server *s, double timeout_s, ms_ctl_handler *handler,
                       void *ctx)
{
	struct pollfd p = { .fd = s->epfd, .events = POLLIN };
	struct timespec ts, *tp = NULL;
	if (timeout_s >= 0) {
		ts.tv_sec = (time_t)timeout_s;
		ts.tv_nsec = (long)((timeout_s - (double)ts.tv_sec) * 1e9);
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_nsec = 999999999L;
		tp = &ts;
	}
	int r = ppoll(&p, 1, tp, NULL);
	if (r <= 0)
		return 0;
	return ms_ctl_server_dispatch(s, handler, ctx);
}

int ms_ctl_server_answer(struct ms_ctl_server *s, uint64_t client, const char *reply)
{
	pthread_mutex_lock(&s->mu);
	int i = find_client(s, client);
	if (i >= 0) {
		s->cl[i].waiting = false;
		client_send(s, i, reply);
		/* Its queued lines are handled at the next dispatch. */
		wake(s);
	}
	pthread_mutex_unlock(&s->mu);
	return i >= 0 ? 0 : -1;
}

int ms_ctl_server_subscribe(struct ms_ctl_server *s, uint64_t client, const char *filter)
{
	pthread_mutex_lock(&s->mu);
	int i = find_client(s, client);
	if (i >= 0)
		do_subscribe(&s->cl[i], filter);
	pthread_mutex_unlock(&s->mu);
	return i >= 0 ? 0 : -1;
}

void ms_ctl_server_event_line(struct ms_ctl_server *s, const char *line)
{
	/* The STAGE word decides which filtered subscribers get it. */
	const char *stage = line + (strncmp(line, "event ", 6) == 0 ? 6 : 0);
	size_t slen = strcspn(stage, " ");
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++) {
		struct client *c = &s->cl[i];
		if (c->fd < 0 || c->dead)
			continue;
		bool want = c->sub_all;
		for (int k = 0; k < c->nfilters && !want; k++)
			want = strlen(c->filters[k]) == slen && strncmp(c->filters[k], stage, slen) == 0;
		if (want)
			client_send(s, i, line);
	}
	pthread_mutex_unlock(&s->mu);
}

void ms_ctl_server_event(struct ms_ctl_server *s, const char *stage, const char *fmt, ...)
{
	char head[FILTER_LEN + 16];
	snprintf(head, sizeof head, "event %s", stage ? stage : s->name);
	char line[MS_CTL_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	ms_ctl_vformat(line, sizeof line, head, fmt, ap);
	va_end(ap);
	ms_ctl_server_event_line(s, line);
}

int ms_ctl_server_clients(struct ms_ctl_server *s)
{
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++)
		n += s->cl[i].fd >= 0 && !s->cl[i].dead;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int ms_ctl_server_subscribers(struct ms_ctl_server *s)
{
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++)
		n += s->cl[i].fd >= 0 && !s->cl[i].dead && (s->cl[i].sub_all || s->cl[i].nfilters > 0);
	pthread_mutex_unlock(&s->mu);
	return n;
}

int ms_ctl_server_fd(const struct ms_ctl_server *s)
{
	return s->epfd;
}

const char *ms_ctl_server_name(const struct ms_ctl_server *s)
{
	return s->name;
}

bool ms_ctl_server_is_fifo(const struct ms_ctl_server *s)
{
	return s->fifo;
}

static int fill_addr(struct sockaddr_un *a, const char *path, ms_err *e)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a->sun_path)
		return ms_err_set(e, "control socket path '%s' is longer than %zu bytes", path,
		                  sizeof a->sun_path - 1);
	strcpy(a->sun_path, path);
	return 0;
}

/* Open the socket or FIFO at path into s->lfd. */
static int open_endpoint(struct ms_ctl_server *s, const char *path, ms_err *e)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
		/* Read-write: open does not wait for a writer, and the last
		 * writer closing does not make every poll report end-of-file. */
		s->lfd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (s->lfd < 0)
			return ms_err_set(e, "cannot open control FIFO '%s':", path);
		s->fifo = true;
		return 0;
	}
	struct sockaddr_un a;
	if (fill_addr(&a, path, e) < 0)
		return -1;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return ms_err_set(e, "'%s' exists and is neither a socket nor a FIFO", path);
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return ms_err_set(e, "cannot create a socket:");
		int r = connect(probe, (struct sockaddr *)&a, sizeof a);
		int err = errno;
		close(probe);
		if (r == 0)
			return ms_err_set(e, "control socket '%s' is in use by another program", path);
		if (err == ECONNREFUSED && unlink(path) < 0 && errno != ENOENT)
			return ms_err_set(e, "cannot remove the stale socket '%s':", path);
	}
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return ms_err_set(e, "cannot create a socket:");
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0)
		return ms_err_set(e, "cannot create control socket '%s':", path);
	if (chmod(path, 0600) < 0 || listen(s->lfd, 16) < 0) {
		ms_err_set(e, "cannot listen on control socket '%s':", path);
		unlink(path);
		return -1;
	}
	if (stat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	return 0;
}

struct ms_ctl_server *ms_ctl_server_open(const char *path, const char *name, int flags,
                                         ms_err *e)
{
	if (!name || !*name || strlen(name) >= FILTER_LEN || strpbrk(name, " \t\"")) {
		ms_err_set(e, "bad control endpoint name '%s'", name ? name : "");
		return NULL;
	}
	struct ms_ctl_server *s = calloc(1, sizeof *s);
	if (!s) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	s->lfd = s->epfd = s->wakefd = -1;
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++)
		s->cl[i].fd = -1;
	s->flags = flags;
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	s->path = strdup(path);
	s->name = strdup(name);
	if (!s->path || !s->name) {
		ms_err_set(e, "out of memory");
		goto fail;
	}
	if (open_endpoint(s, path, e) < 0)
		goto fail;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->epfd < 0 || s->wakefd < 0) {
		ms_err_set(e, "cannot set up the control endpoint:");
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = KEY_LISTEN };
	struct epoll_event wev = { .events = EPOLLIN, .data.u64 = KEY_WAKE };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &wev) < 0) {
		ms_err_set(e, "cannot set up the control endpoint:");
		goto fail;
	}
	return s;
fail:
	ms_ctl_server_close(s);
	return NULL;
}

static void *server_thread(void *p)
{
	struct ms_ctl_server *s = p;
	while (!atomic_load(&s->stopping))
		ms_ctl_server_wait(s, -1, s->th_handler, s->th_ctx);
	return NULL;
}

int ms_ctl_server_start(struct ms_ctl_server *s, ms_ctl_handler *handler, void *ctx, ms_err *e)
{
	s->th_handler = handler;
	s->th_ctx = ctx;
	/* The program's signals must reach its main thread, which may be
	 * blocked in a read that a signal is meant to interrupt. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&s->thread, NULL, server_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		return ms_err_set(e, "cannot start the control thread:");
	}
	s->thread_on = true;
	return 0;
}

void ms_ctl_server_close(struct ms_ctl_server *s)
{
	if (!s)
		return;
	if (s->thread_on) {
		atomic_store(&s->stopping, true);
		wake(s);
		pthread_join(s->thread, NULL);
	}
	for (int i = 0; i < MS_CTL_CLIENTS_MAX; i++)
		if (s->cl[i].fd >= 0) {
			flush_client(s, i);
			close_client(s, i);
		}
	if (s->lfd >= 0) {
		close(s->lfd);
		/* Remove only our own socket, not one a successor created. */
		struct stat st;
		if (!s->fifo && s->path && lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    st.st_dev == s->dev && st.st_ino == s->ino)
			unlink(s->path);
	}
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s->name);
	free(s);
}

/* ---- the client --------------------------------------------------------- */

struct ms_ctl_client {
	int fd;
	struct ms_ctl_lines in;
};

struct ms_ctl_client *ms_ctl_client_open(const char *path, ms_err *e)
{
	struct sockaddr_un a;
	if (fill_addr(&a, path, e) < 0)
		return NULL;
	struct ms_ctl_client *c = calloc(1, sizeof *c);
	if (!c) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		ms_err_set(e, "cannot create a socket:");
		free(c);
		return NULL;
	}
	int r;
	do
		r = connect(c->fd, (struct sockaddr *)&a, sizeof a);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		ms_err_set(e, "cannot connect to '%s':", path);
		close(c->fd);
		free(c);
		return NULL;
	}
	return c;
}

int ms_ctl_client_fd(const struct ms_ctl_client *c)
{
	return c->fd;
}

int ms_ctl_client_send(struct ms_ctl_client *c, const char *line, ms_err *e)
{
	size_t n = strlen(line);
	if (n + 1 > MS_CTL_LINE_MAX)
		return ms_err_set(e, "command longer than %d bytes", MS_CTL_LINE_MAX - 1);
	char buf[MS_CTL_LINE_MAX];
	memcpy(buf, line, n);
	buf[n++] = '\n';
	size_t done = 0;
	while (done < n) {
		ssize_t k = send(c->fd, buf + done, n - done, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ms_err_set(e, "cannot send a command:");
		done += (size_t)k;
	}
	return 0;
}

int ms_ctl_client_recv(struct ms_ctl_client *c, char *line, size_t size, double timeout_s,
                       ms_err *e)
{
	double deadline = timeout_s >= 0 ? ms_ctl_now() + timeout_s : 0;
	for (;;) {
		char *l;
		long n = ms_ctl_lines_next(&c->in, &l);
		if (n >= 0) {
			snprintf(line, size, "%s", l);
			return 1;
		}
		if (n == -2)
			return ms_err_set(e, "the answer is longer than %d bytes", MS_CTL_LINE_MAX - 1);
		int wait_ms = -1;
		if (timeout_s >= 0) {
			double left = deadline - ms_ctl_now();
			if (left <= 0) {
				errno = ETIMEDOUT;
				return ms_err_set(e, "no answer within %g s", timeout_s);
			}
			wait_ms = (int)(left * 1000) + 1;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = poll(&p, 1, wait_ms);
		if (r < 0 && errno == EINTR)
			return ms_err_set(e, "interrupted");
		if (r <= 0)
			continue;
		r = ms_ctl_lines_fill(&c->in, c->fd);
		if (r < 0)
			return ms_err_set(e, "cannot read the answer:");
		if (r == 0) {
			/* A last line without its newline still counts. */
			if (ms_ctl_lines_pending(&c->in) > 0 && ms_ctl_lines_pending(&c->in) < MS_CTL_LINE_MAX) {
				size_t k = ms_ctl_lines_pending(&c->in);
				snprintf(line, size, "%.*s", (int)k, c->in.buf + c->in.off);
				c->in.off = c->in.len;
				return 1;
			}
			return 0;
		}
	}
}

int ms_ctl_client_request(struct ms_ctl_client *c, const char *line, char *reply, size_t size,
                          double timeout_s, ms_ctl_event_fn *on_event, void *ctx, ms_err *e)
{
	if (ms_ctl_client_send(c, line, e) < 0)
		return -1;
	double deadline = ms_ctl_now() + timeout_s;
	for (;;) {
		double left = timeout_s >= 0 ? deadline - ms_ctl_now() : -1;
		if (timeout_s >= 0 && left < 0)
			left = 0;
		char buf[MS_CTL_LINE_MAX];
		int r = ms_ctl_client_recv(c, buf, sizeof buf, left, e);
		if (r < 0)
			return -1;
		if (r == 0)
			return ms_err_set(e, "the connection closed before an answer came");
		int k = ms_ctl_classify(buf, NULL, NULL);
		if (k == 2) {
			if (on_event)
				on_event(ctx, buf);
			continue;
		}
		if (k < 0)
			return ms_err_set(e, "not an answer: '%.200s'", buf);
		snprintf(reply, size, "%s", buf);
		return k;
	}
}

void ms_ctl_client_close(struct ms_ctl_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

/* ---- where rigs live ----------------------------------------------------- */

int ms_ctl_runtime_base(char *out, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	int n;
	if (xdg && xdg[0] == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode)) {
		n = snprintf(out, size, "%s/mstk", xdg);
	} else {
		struct passwd pw, *res = NULL;
		char buf[4096];
		if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
			n = snprintf(out, size, "/tmp/mstk-%s", res->pw_name);
		else
			n = snprintf(out, size, "/tmp/mstk-%u", (unsigned)getuid());
	}
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int ms_ctl_rig_socket(const char *dir, char *out, size_t size, ms_err *e)
{
	char base[2048];
	int n;
	const char *env = getenv("MS_RUNTIME_DIR");
	if (dir && *dir && !strchr(dir, '/')) {
		if (ms_ctl_runtime_base(base, sizeof base) < 0)
			return ms_err_set(e, "the runtime base directory name is too long");
		n = snprintf(out, size, "%s/%s/ctl.sock", base, dir);
	} else if (dir && *dir) {
		n = snprintf(out, size, "%s/ctl.sock", dir);
	} else if (env && *env) {
		n = snprintf(out, size, "%s/ctl.sock", env);
	} else {
		if (ms_ctl_runtime_base(base, sizeof base) < 0)
			return ms_err_set(e, "the runtime base directory name is too long");
		char link[2100];
		snprintf(link, sizeof link, "%s/last", base);
		struct stat st;
		if (lstat(link, &st) < 0)
			return ms_err_set(e, "no rig is running (there is no %s; start one with ms-run)", link);
		n = snprintf(out, size, "%s/ctl.sock", link);
	}
	if (n < 0 || (size_t)n >= size)
		return ms_err_set(e, "the rig's socket path is too long");
	return 0;
}

/* ---- rates -------------------------------------------------------------- */

void ms_ctl_rate_add(struct ms_ctl_rate *r, uint64_t n, double now)
{
	if (r->t1 == 0) {
		r->t0 = r->t1 = now;
		r->n0 = r->n1 = 0;
	}
	if (now - r->t1 >= 1.0) {
		if (now - r->t1 >= 2.0) {
			r->t0 = now;
			r->n0 = 0;
		} else {
			r->t0 = r->t1;
			r->n0 = r->n1;
		}
		r->t1 = now;
		r->n1 = 0;
	}
	r->n1 += n;
}

double ms_ctl_rate_get(const struct ms_ctl_rate *r, double now)
{
	if (r->t1 == 0 || now - r->t1 >= 2.0)
		return 0;
	double span = now - r->t0;
	if (span < 0.1)
		span = 0.1;
	return (double)(r->n0 + r->n1) / span;
}
