/*
 * ctl: the control protocol (ms-control(7)). One text line per command,
 * "TARGET VERB [ARGS...]" (a line of one word is a VERB for whoever reads
 * it), words separated by blanks, double quotes around a word with blanks
 * (inside quotes \" and \\ stand for " and \), key=value words allowed.
 * Every command is answered by one line, "ok [TEXT]" or "err CODE MESSAGE";
 * events are lines "event STAGE key=value ...". This module owns parsing
 * and formatting those lines, the server endpoint a program embeds (a Unix
 * stream socket it creates, or a command FIFO whose replies go to standard
 * error), and the client that sends a line and reads the answer.
 *
 * The server is poll-driven: it has one descriptor (an epoll set holding
 * the listening socket and every client) that becomes readable when there
 * is work, and ms_ctl_server_dispatch() does that work without blocking,
 * calling the program's handler once per complete line. A program with a
 * poll loop adds the descriptor to it; a program that blocks elsewhere
 * runs the same loop in a thread (ms_ctl_server_start). Events may be sent
 * from any thread. Clients' lines are answered in order: while a handler
 * defers an answer (a router waiting on another program), that client's
 * further lines wait.
 */
#ifndef MS_CTL_H
#define MS_CTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Longest line, newline included; a longer one is refused whole. */
#define MS_CTL_LINE_MAX 4096
/* Most words in a line. */
#define MS_CTL_WORDS_MAX 64
/* Most clients one server keeps; one more is told "err busy" and closed. */
#define MS_CTL_CLIENTS_MAX 64
/* Bytes a client may leave unread before the server drops it. */
#define MS_CTL_OUTBUF_MAX (1024 * 1024)

enum ms_ctl_code {
	MS_CTL_OK = 0,
	MS_CTL_USAGE,		/* the line is malformed or the arguments wrong */
	MS_CTL_UNKNOWN_TARGET,
	MS_CTL_UNKNOWN_VERB,
	MS_CTL_BAD_VALUE,	/* a value out of range or not a number */
	MS_CTL_FAILED,		/* understood, but doing it failed */
	MS_CTL_BUSY,		/* not now: try again later */
	MS_CTL_TIMEOUT,
};
/* "usage", "unknown-target", ...; "ok" for MS_CTL_OK. */
const char *ms_ctl_code_name(enum ms_ctl_code c);

/* ---- words and lines ---------------------------------------------------- */

/*
 * Split line (len bytes; a trailing "\n" or "\r\n" is ignored) into words,
 * unquoting them into store (storesize >= len + 1 is always enough).
 * Returns the number of words, or -1 with e set: an unterminated quote,
 * a control character or bytes that are not UTF-8, more than maxwords
 * words, a line longer than MS_CTL_LINE_MAX. Does not allocate.
 */
int ms_ctl_split(const char *line, size_t len, char *store, size_t storesize,
                 const char **words, int maxwords, ms_err *e);

/* A parsed command. Holds its own storage: parsing never allocates. */
struct ms_ctl_cmd {
	const char *target;	/* "" for a one-word line */
	const char *verb;
	int argc;		/* words after the verb */
	const char *argv[MS_CTL_WORDS_MAX];
	char store[MS_CTL_LINE_MAX + 1];
};

/* Parse a command line; -1 with e set when it is malformed or empty. */
int ms_ctl_parse(struct ms_ctl_cmd *c, const char *line, size_t len, ms_err *e);

/*
 * If word is "key=value" (key of letters, digits, '_', '-', '.'), copy the
 * key into key (keysize bytes) and point *value at the value; returns 1.
 * Returns 0 for any other word (or a key too long for the buffer).
 */
int ms_ctl_kv(const char *word, char *key, size_t keysize, const char **value);
/*
 * Find key in text made of words (a reply's "k=v k=v ..."): copies its
 * (unquoted) value into val and returns 1, or returns 0 if it is absent.
 */
int ms_ctl_get(const char *text, const char *key, char *val, size_t size);
/*
 * The arguments of a switch verb, "VERB [on|off]" (acquisition, saving):
 * 1 with *on set for "on" or "off", 0 for the bare verb (a query), -1 for
 * anything else, with reply (size bytes) set to "err usage VERB [on|off]".
 */
int ms_ctl_switch_arg(const struct ms_ctl_cmd *c, bool *on, char *reply, size_t size);

/*
 * Append word to out (size bytes, NUL-terminated, holding len bytes),
 * quoted when it is empty or holds blanks, quotes or backslashes; a space
 * goes before it when out is not empty. Returns the new length, or -1 if
 * it does not fit (out is then unchanged).
 */
int ms_ctl_append_word(char *out, size_t size, size_t len, const char *word);
/* Join words into one line (no newline) with ms_ctl_append_word. */
int ms_ctl_join(char *out, size_t size, int n, const char *const *words);

/* ---- replies ------------------------------------------------------------ */

/*
 * Format "ok TEXT" (or "ok" for an empty format) or "err CODE MESSAGE"
 * into buf (at most MS_CTL_LINE_MAX - 1 bytes are used), without a
 * newline; newlines and control characters in the text become spaces, and
 * text that does not fit is cut. Return the length.
 */
int ms_ctl_ok(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int ms_ctl_err(char *buf, size_t size, enum ms_ctl_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int ms_ctl_vformat(char *buf, size_t size, const char *head, const char *fmt, va_list ap);

/*
 * What a line is: 0 "ok" (*text after "ok "), 1 "err" (*code and *text:
 * the message), 2 an event (*text after "event "), -1 anything else.
 */
int ms_ctl_classify(const char *line, enum ms_ctl_code *code, const char **text);

/* ---- reading lines from a descriptor ------------------------------------ */

struct ms_ctl_lines {
	char buf[2 * MS_CTL_LINE_MAX];
	size_t len, off;
	bool skipping;		/* inside an overlong line, until its newline */
};

/*
 * Read what fd has (once; non-blocking descriptors return at once).
 * Returns 1 if bytes came or the read would block, 0 at end of file, -1
 * on error (errno set).
 */
int ms_ctl_lines_fill(struct ms_ctl_lines *l, int fd);
/*
 * The next complete line: returns its length and points *line at it (NUL
 * terminated, newline removed; valid until the next fill), -1 if there is
 * no complete line, -2 if an overlong line was thrown away (once per line).
 */
long ms_ctl_lines_next(struct ms_ctl_lines *l, char **line);
/* Bytes of a partial line held. */
size_t ms_ctl_lines_pending(const struct ms_ctl_lines *l);

/* ---- the server --------------------------------------------------------- */

enum {
	/* Give every target to the handler (a router such as ms-run); else
	 * lines for other targets are answered unknown-target. */
	MS_CTL_ROUTER = 1,
};

struct ms_ctl_server;

/* What a handler gets: the command, and where its answer goes. */
struct ms_ctl_req {
	const struct ms_ctl_cmd *cmd;
	const char *line;	/* the line as received, without its newline */
	uint64_t client;	/* who sent it; names it to ms_ctl_server_answer */
	char reply[MS_CTL_LINE_MAX];	/* fill with ms_ctl_ok / ms_ctl_err */
	bool defer;		/* set to answer later with ms_ctl_server_answer */
};

typedef void ms_ctl_handler(void *ctx, struct ms_ctl_server *s, struct ms_ctl_req *req);

/*
 * Serve control lines at path, as the endpoint called name (the STAGE of
 * its events and the target it answers to). If path is an existing FIFO,
 * lines are read from it and replies go to standard error; otherwise a
 * Unix stream socket is created there (mode 0600), replacing a stale
 * socket that nobody listens on, but never a live one or another file.
 * The server answers "subscribe" and "unsubscribe" itself (a subscriber
 * gets every event; "unsubscribe" stops that); every other line goes to
 * the handler given to dispatch.
 */
struct ms_ctl_server *ms_ctl_server_open(const char *path, const char *name, int flags,
                                         ms_err *e);
/* The descriptor to poll for reading; dispatch when it is readable. */
int ms_ctl_server_fd(const struct ms_ctl_server *s);
/*
 * Do what is ready, without blocking: accept clients, read their lines,
 * call handler(ctx, s, req) once per line and send the answers, flush
 * pending output, drop clients that went away. Returns the number of
 * lines handled.
 */
int ms_ctl_server_dispatch(struct ms_ctl_server *s, ms_ctl_handler *handler, void *ctx);
/*
 * Wait up to timeout_s seconds (0: only look; < 0: forever) for work,
 * then dispatch; a signal ends the wait early. Returns lines handled.
 */
int ms_ctl_server_wait(struct ms_ctl_server *s, double timeout_s, ms_ctl_handler *handler,
                       void *ctx);
/* Give a deferred request its answer; 0, or -1 if that client is gone. */
int ms_ctl_server_answer(struct ms_ctl_server *s, uint64_t client, const char *reply);
/*
 * Make client a subscriber of the events whose STAGE is filter (NULL: of
 * every event). Filters add up; a subscriber of everything ignores them.
 */
int ms_ctl_server_subscribe(struct ms_ctl_server *s, uint64_t client, const char *filter);
/* Send "event STAGE TEXT" (stage NULL: the server's name) to subscribers. */
void ms_ctl_server_event(struct ms_ctl_server *s, const char *stage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Send an event line as it is ("event STAGE ..."; no newline). */
void ms_ctl_server_event_line(struct ms_ctl_server *s, const char *line);
/* Clients connected, and of those, subscribers. */
int ms_ctl_server_clients(struct ms_ctl_server *s);
int ms_ctl_server_subscribers(struct ms_ctl_server *s);
const char *ms_ctl_server_name(const struct ms_ctl_server *s);
bool ms_ctl_server_is_fifo(const struct ms_ctl_server *s);
/*
 * Run the dispatch loop in a thread of its own (signals blocked in it),
 * calling handler from there. ms_ctl_server_close stops it.
 */
int ms_ctl_server_start(struct ms_ctl_server *s, ms_ctl_handler *handler, void *ctx, ms_err *e);
/* Stop the thread if any, close every client, remove the socket. */
void ms_ctl_server_close(struct ms_ctl_server *s);

/* ---- the client --------------------------------------------------------- */

struct ms_ctl_client;

/* Connect to the control socket at path. */
struct ms_ctl_client *ms_ctl_client_open(const char *path, ms_err *e);
int ms_ctl_client_fd(const struct ms_ctl_client *c);
/* Send one line (a newline is added). */
int ms_ctl_client_send(struct ms_ctl_client *c, const char *line, ms_err *e);
/*
 * The next line received, newline removed: 1, or 0 when the server closed
 * the connection, or -1 on error or when timeout_s (< 0: none) passed
 * (errno ETIMEDOUT).
 */
int ms_ctl_client_recv(struct ms_ctl_client *c, char *line, size_t size, double timeout_s,
                       ms_err *e);
/*
 * Send line and wait up to timeout_s for its answer, passing any events
 * that arrive first to on_event (if not NULL). Returns 0 for "ok", 1 for
 * "err" (reply holds the whole answer line either way), -1 if no answer
 * came (e says why).
 */
typedef void ms_ctl_event_fn(void *ctx, const char *line);
int ms_ctl_client_request(struct ms_ctl_client *c, const char *line, char *reply, size_t size,
                          double timeout_s, ms_ctl_event_fn *on_event, void *ctx, ms_err *e);
void ms_ctl_client_close(struct ms_ctl_client *c);

/* ---- where rigs live ----------------------------------------------------- */

/*
 * The directory under which ms-run makes each rig's runtime directory:
 * $XDG_RUNTIME_DIR/mstk when that is set to a directory, else
 * /tmp/mstk-USER. Returns -1 if it does not fit in size.
 */
int ms_ctl_runtime_base(char *out, size_t size);
/*
 * The control socket of a rig: dir/ctl.sock, where dir is the given
 * runtime directory (a name without '/' is taken under the base), else
 * $MS_RUNTIME_DIR (set in a rig's stages), else the rig started last
 * (base/last). -1 with e set if none can be named.
 */
int ms_ctl_rig_socket(const char *dir, char *out, size_t size, ms_err *e);

/* ---- rates for status replies ------------------------------------------- */

/*
 * Events per second over the last second or two: add counts as they
 * happen, read the rate at any time. Times are CLOCK_MONOTONIC seconds.
 */
struct ms_ctl_rate {
	double t0, t1;		/* start of the previous and of the current window */
	uint64_t n0, n1;	/* counts in them */
};
void ms_ctl_rate_add(struct ms_ctl_rate *r, uint64_t n, double now);
double ms_ctl_rate_get(const struct ms_ctl_rate *r, double now);
/* CLOCK_MONOTONIC in seconds. */
double ms_ctl_now(void);

#endif
