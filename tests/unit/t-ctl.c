/* t-ctl: the control protocol: word splitting and quoting, replies, line
 * reading, and the server and client over real sockets and FIFOs (many
 * clients, subscribers, deferred answers, clients that vanish mid-line). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "../lib/tap.h"

/* ---- parsing ------------------------------------------------------------ */

static int split(const char *line, char *store, const char **w)
{
	ms_err e;
	return ms_ctl_split(line, strlen(line), store, MS_CTL_LINE_MAX + 1, w, MS_CTL_WORDS_MAX, &e);
}

static void test_split(void)
{
	char store[MS_CTL_LINE_MAX + 1];
	const char *w[MS_CTL_WORDS_MAX];
	ms_err e;

	tap_int(split("camera focus set 500", store, w), 4, "four plain words");
	tap_str(w[3], "500", "last word");
	tap_int(split("  a\t\tb   c  \r\n", store, w), 3, "blanks, tabs and CRLF separate and end");
	tap_str(w[2], "c", "CR is not part of the last word");
	tap_int(split("rig message \"hello world\" x", store, w), 4, "a quoted word with a blank");
	tap_str(w[2], "hello world", "quotes removed");
	tap_int(split("t v name=\"a b\"c", store, w), 3, "quotes may start inside a word");
	tap_str(w[2], "name=a bc", "key=\"value\" joins into one word");
	tap_int(split("t v \"say \\\"hi\\\" \\\\ done\"", store, w), 3, "escapes inside quotes");
	tap_str(w[2], "say \"hi\" \\ done", "\\\" and \\\\ unescaped");
	tap_int(split("t v a\\b", store, w), 3, "a backslash outside quotes is literal");
	tap_str(w[2], "a\\b", "kept as is");
	tap_int(split("t v \"\" x", store, w), 4, "an empty quoted word counts");
	tap_str(w[2], "", "and is empty");
	tap_int(split("", store, w), 0, "empty line: no words");
	tap_int(split(" \t \n", store, w), 0, "blank line: no words");
	tap_int(split("t v caf\xc3\xa9 \xe2\x82\xac", store, w), 4, "UTF-8 words pass");
	tap_str(w[2], "caf\xc3\xa9", "UTF-8 kept");

	tap_int(ms_ctl_split("t v \"open", 9, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "an unterminated quote is refused");
	tap_ok(strstr(e.msg, "unterminated quote") != NULL, "and named: %s", e.msg);
	tap_int(ms_ctl_split("t v a\x01", 6, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "a control character is refused");
	tap_ok(strstr(e.msg, "0x01 at byte 6") != NULL, "with its position: %s", e.msg);
	tap_int(ms_ctl_split("t v a\0b", 7, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "a NUL byte is refused");
	tap_int(ms_ctl_split("t v \xff\xfe", 6, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "bytes that are not UTF-8 are refused");
	tap_ok(strstr(e.msg, "not UTF-8") != NULL, "named: %s", e.msg);
	tap_int(ms_ctl_split("t v \xc3", 5, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "a cut UTF-8 sequence is refused");
	tap_int(ms_ctl_split("t v \xed\xa0\x80", 7, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "a UTF-16 surrogate is refused");
	tap_int(ms_ctl_split("t v \x7f", 5, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "DEL is refused");

	static char big[MS_CTL_LINE_MAX + 10];
	memset(big, 'a', sizeof big - 1);
	big[MS_CTL_LINE_MAX - 1] = '\0';	/* 4095 bytes: the longest line */
	tap_int(ms_ctl_split(big, strlen(big), store, sizeof store, w, MS_CTL_WORDS_MAX, &e), 1,
	        "a line of %d bytes is taken", MS_CTL_LINE_MAX - 1);
	big[MS_CTL_LINE_MAX - 1] = 'a';
	big[MS_CTL_LINE_MAX] = '\0';
	tap_int(ms_ctl_split(big, strlen(big), store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "a line of %d bytes is refused", MS_CTL_LINE_MAX);
	tap_ok(strstr(e.msg, "longer than 4095") != NULL, "named: %s", e.msg);

	char many[1024] = "";
	for (int i = 0; i < MS_CTL_WORDS_MAX + 1; i++)
		strcat(many, "w ");
	tap_int(ms_ctl_split(many, strlen(many), store, sizeof store, w, MS_CTL_WORDS_MAX, &e), -1,
	        "too many words are refused");
}

static void test_parse(void)
{
	struct ms_ctl_cmd c;
	ms_err e;
	const char *l = "camera set fps=200 photons=1e4\n";
	tap_int(ms_ctl_parse(&c, l, strlen(l), &e), 0, "a command parses");
	tap_str(c.target, "camera", "target");
	tap_str(c.verb, "set", "verb");
	tap_int(c.argc, 2, "argc");
	tap_str(c.argv[1], "photons=1e4", "argv");
	l = "status";
	tap_int(ms_ctl_parse(&c, l, strlen(l), &e), 0, "one word parses");
	tap_str(c.target, "", "with no target");
	tap_str(c.verb, "status", "as the verb");
	tap_int(c.argc, 0, "and no arguments");
	tap_int(ms_ctl_parse(&c, "   ", 3, &e), -1, "a blank line is an error");
	tap_ok(strstr(e.msg, "empty command") != NULL, "named: %s", e.msg);
	tap_int(ms_ctl_parse(&c, "cam \"\"", 6, &e), -1, "an empty verb is an error");

	char key[32];
	const char *v;
	tap_int(ms_ctl_kv("fps=200", key, sizeof key, &v), 1, "key=value");
	tap_str(key, "fps", "key");
	tap_str(v, "200", "value");
	tap_int(ms_ctl_kv("tethered-z-sigma=", key, sizeof key, &v), 1, "an empty value");
	tap_str(v, "", "is empty");
	tap_int(ms_ctl_kv("=3", key, sizeof key, &v), 0, "no key: not a pair");
	tap_int(ms_ctl_kv("a b=3", key, sizeof key, &v), 0, "a blank in the key: not a pair");
	tap_int(ms_ctl_kv("plain", key, sizeof key, &v), 0, "no '=': not a pair");

	char val[64];
	const char *text = "state=running frames=120 msg=\"two words\" camera.fps=99.5";
	tap_int(ms_ctl_get(text, "frames", val, sizeof val), 1, "get finds a key");
	tap_str(val, "120", "its value");
	tap_int(ms_ctl_get(text, "msg", val, sizeof val), 1, "a quoted value");
	tap_str(val, "two words", "unquoted");
	tap_int(ms_ctl_get(text, "camera.fps", val, sizeof val), 1, "a dotted key");
	tap_int(ms_ctl_get(text, "fps", val, sizeof val), 0, "a key that is not there");
}

static void test_quote(void)
{
	const char *words[] = { "rig", "message", "a \"quoted\" word", "", "back\\slash", "x=1" };
	char line[256];
	int n = ms_ctl_join(line, sizeof line, 6, words);
	tap_ok(n > 0, "join: %s", line);
	char store[MS_CTL_LINE_MAX + 1];
	const char *w[MS_CTL_WORDS_MAX];
	int k = split(line, store, w);
	tap_int(k, 6, "joined words split back into as many");
	bool same = k == 6;
	for (int i = 0; i < k && i < 6; i++)
		same = same && strcmp(w[i], words[i]) == 0;
	tap_ok(same, "and into the same words");
	tap_int(ms_ctl_join(line, 8, 6, words), -1, "join refuses a buffer too small");
}

static void test_replies(void)
{
	char buf[MS_CTL_LINE_MAX];
	ms_ctl_ok(buf, sizeof buf, "%s", "");
	tap_str(buf, "ok", "an empty ok is 'ok'");
	ms_ctl_ok(buf, sizeof buf, "focus=%g", 500.0);
	tap_str(buf, "ok focus=500", "ok with text");
	ms_ctl_err(buf, sizeof buf, MS_CTL_BAD_VALUE, "'%s' is not a number\nsecond line", "abc");
	tap_str(buf, "err bad-value 'abc' is not a number second line", "newlines become spaces");
	static char huge[3 * MS_CTL_LINE_MAX];
	memset(huge, 'x', sizeof huge - 1);
	int n = ms_ctl_ok(buf, sizeof buf, "%s", huge);
	tap_int(n, MS_CTL_LINE_MAX - 1, "a reply is cut to one line");
	/* A cut inside a UTF-8 sequence leaves no partial sequence. */
	for (size_t i = 0; i < sizeof huge - 2; i += 2) {
		huge[i] = (char)0xc3;
		huge[i + 1] = (char)0xa9;
	}
	huge[sizeof huge - 1] = '\0';
	n = ms_ctl_ok(buf, sizeof buf, "y%s", huge);
	char store[MS_CTL_LINE_MAX + 1];
	const char *w[MS_CTL_WORDS_MAX];
	ms_err e;
	tap_int(ms_ctl_split(buf, (size_t)n, store, sizeof store, w, MS_CTL_WORDS_MAX, &e), 2,
	        "a cut UTF-8 reply is still valid text");

	enum ms_ctl_code code;
	const char *text;
	tap_int(ms_ctl_classify("ok", &code, &text), 0, "'ok' is ok");
	tap_str(text, "", "with no text");
	tap_int(ms_ctl_classify("ok a=1", &code, &text), 0, "'ok a=1' is ok");
	tap_str(text, "a=1", "text after ok");
	tap_int(ms_ctl_classify("err busy later", &code, &text), 1, "err");
	tap_int(code, MS_CTL_BUSY, "with its code");
	tap_str(text, "later", "and message");
	tap_int(ms_ctl_classify("err timeout", &code, &text), 1, "err without a message");
	tap_int(code, MS_CTL_TIMEOUT, "timeout");
	tap_int(ms_ctl_classify("event camera focus position=5", NULL, &text), 2, "an event");
	tap_str(text, "camera focus position=5", "event text");
	tap_int(ms_ctl_classify("okay", NULL, NULL), -1, "'okay' is not ok");
	tap_int(ms_ctl_classify("garbage", NULL, NULL), -1, "garbage is nothing");
}

static void test_lines(void)
{
	int p[2];
	if (pipe(p) < 0)
		return;
	struct ms_ctl_lines *l = calloc(1, sizeof *l);
	char *line;
	ssize_t k = write(p[1], "abc\nde", 6);
	(void)k;
	ms_ctl_lines_fill(l, p[0]);
	tap_int(ms_ctl_lines_next(l, &line), 3, "a complete line");
	tap_str(line, "abc", "its text");
	tap_int(ms_ctl_lines_next(l, &line), -1, "a partial line is held");
	tap_int((long)ms_ctl_lines_pending(l), 2, "two bytes pending");
	k = write(p[1], "f\n", 2);
	ms_ctl_lines_fill(l, p[0]);
	tap_int(ms_ctl_lines_next(l, &line), 3, "completed later");
	tap_str(line, "def", "joined");

	/* An overlong line, fed in pieces, is dropped once; the next line is whole. */
	char chunk[1000];
	memset(chunk, 'z', sizeof chunk);
	int drops = 0, got = 0;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 12; i++) {
		k = write(p[1], chunk, sizeof chunk);
		while (ms_ctl_lines_fill(l, p[0]) == 1 && ms_ctl_lines_pending(l) > 0) {
			long n = ms_ctl_lines_next(l, &line);
			if (n == -2)
				drops++;
			if (n == -1 || n == -2)
				break;
		}
	}
	k = write(p[1], "\nok line\n", 9);
	ms_ctl_lines_fill(l, p[0]);
	long n;
	while ((n = ms_ctl_lines_next(l, &line)) != -1) {
		if (n == -2)
			drops++;
		else {
			got++;
			tap_str(line, "ok line", "the line after an overlong one is whole");
		}
	}
	tap_int(drops, 1, "an overlong line is reported once");
	tap_int(got, 1, "and nothing of it comes through");
	close(p[0]);
	close(p[1]);
	free(l);
}

/* ---- server ------------------------------------------------------------- */

struct srvctx {
	atomic_int calls;
	struct ms_ctl_server *srv;
	atomic_ullong deferred_client;
	atomic_int ndeferred;
};

static void handler(void *p, struct ms_ctl_server *s, struct ms_ctl_req *r)
{
	struct srvctx *c = p;
	atomic_fetch_add(&c->calls, 1);
	const struct ms_ctl_cmd *cmd = r->cmd;
	if (strcmp(cmd->verb, "echo") == 0) {
		char line[MS_CTL_LINE_MAX];
		if (ms_ctl_join(line, sizeof line, cmd->argc, cmd->argv) < 0)
			line[0] = '\0';
		ms_ctl_ok(r->reply, sizeof r->reply, "%s", line);
	} else if (strcmp(cmd->verb, "emit") == 0) {
		ms_ctl_server_event(s, NULL, "n=%d", cmd->argc ? atoi(cmd->argv[0]) : 0);
		ms_ctl_ok(r->reply, sizeof r->reply, "emitted");
	} else if (strcmp(cmd->verb, "later") == 0) {
		atomic_store(&c->deferred_client, r->client);
		atomic_fetch_add(&c->ndeferred, 1);
		r->defer = true;
	} else if (strcmp(cmd->verb, "silent") == 0) {
		/* leaves the reply empty: the server must still answer */
	} else {
		ms_ctl_err(r->reply, sizeof r->reply, MS_CTL_UNKNOWN_VERB, "no verb '%s'", cmd->verb);
	}
}

static char sockpath[100];

static struct ms_ctl_client *conn(void)
{
	ms_err e;
	struct ms_ctl_client *c = ms_ctl_client_open(sockpath, &e);
	if (!c)
		tap_diag("connect: %s", e.msg);
	return c;
}

static int req(struct ms_ctl_client *c, const char *line, char *reply, size_t size)
{
	ms_err e;
	int r = ms_ctl_client_request(c, line, reply, size, 5, NULL, NULL, &e);
	if (r < 0)
		snprintf(reply, size, "(failed: %s)", e.msg);
	return r;
}

struct many_arg {
	int id, n, bad;
};

static void *many_client(void *p)
{
	struct many_arg *a = p;
	struct ms_ctl_client *c = conn();
	if (!c) {
		a->bad = a->n;
		return NULL;
	}
	for (int i = 0; i < a->n; i++) {
		char line[64], want[64], reply[MS_CTL_LINE_MAX];
		snprintf(line, sizeof line, "unit echo c%d i%d", a->id, i);
		snprintf(want, sizeof want, "ok c%d i%d", a->id, i);
		if (req(c, line, reply, sizeof reply) != 0 || strcmp(reply, want) != 0)
			a->bad++;
	}
	ms_ctl_client_close(c);
	return NULL;
}

/* Raw socket: for sending bytes a well-behaved client would not. */
static int raw_connect(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sockpath);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct drain_arg {
	struct ms_ctl_client *c;
	int n;
};

/* Read events until "last=1". */
static void *drain(void *p)
{
	struct drain_arg *a = p;
	char ev[MS_CTL_LINE_MAX];
	ms_err e;
	while (ms_ctl_client_recv(a->c, ev, sizeof ev, 10, &e) == 1) {
		a->n++;
		if (strcmp(ev, "event unit last=1") == 0)
			break;
	}
	return NULL;
}

static void test_server_thread(void)
{
	ms_err e;
	snprintf(sockpath, sizeof sockpath, "%s/unit.sock", tap_tmpdir());
	struct srvctx ctx = { 0 };
	struct ms_ctl_server *s = ms_ctl_server_open(sockpath, "unit", 0, &e);
	if (!tap_ok(s != NULL, "server opens a socket: %s", s ? "" : e.msg))
		return;
	ctx.srv = s;
	struct stat st;
	tap_ok(stat(sockpath, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	       "the socket exists with mode 0600");
	tap_ok(ms_ctl_server_start(s, handler, &ctx, &e) == 0, "the server thread starts");

	struct ms_ctl_server *s2 = ms_ctl_server_open(sockpath, "unit", 0, &e);
	tap_ok(s2 == NULL && strstr(e.msg, "in use") != NULL,
	       "a second server on a live socket is refused: %s", e.msg);
	ms_ctl_server_close(s2);

	struct ms_ctl_client *c = conn();
	char reply[MS_CTL_LINE_MAX];
	tap_int(req(c, "unit echo a \"b c\"", reply, sizeof reply), 0, "request answered ok");
	tap_str(reply, "ok a \"b c\"", "the handler's answer, quoting kept");
	tap_int(req(c, "echo", reply, sizeof reply), 0, "a one-word line is for the server itself");
	tap_str(reply, "ok", "and answered by it");
	tap_int(req(c, "other echo x", reply, sizeof reply), 1, "another target");
	tap_ok(strncmp(reply, "err unknown-target", 18) == 0, "is unknown-target: %s", reply);
	tap_int(req(c, "unit frob", reply, sizeof reply), 1, "an unknown verb");
	tap_ok(strncmp(reply, "err unknown-verb", 16) == 0, "is unknown-verb: %s", reply);
	int before = atomic_load(&ctx.calls);
	tap_int(req(c, "unit echo \"open", reply, sizeof reply), 1, "a malformed line");
	tap_ok(strncmp(reply, "err usage", 9) == 0, "is a usage error: %s", reply);
	tap_int(req(c, "", reply, sizeof reply), 1, "an empty line");
	tap_ok(strncmp(reply, "err usage empty command", 23) == 0, "is a usage error: %s", reply);
	tap_int(atomic_load(&ctx.calls), before, "malformed lines never reach the handler");
	tap_int(req(c, "unit silent", reply, sizeof reply), 1, "a handler that says nothing");
	tap_str(reply, "err failed no answer", "still gets an answer");

	/* Garbage bytes and an overlong line on a raw connection. */
	int fd = raw_connect();
	static char junk[3 * MS_CTL_LINE_MAX];
	memset(junk, 'q', sizeof junk);
	junk[sizeof junk - 1] = '\n';
	ssize_t k = write(fd, "unit echo \x80\x81\n", 14);
	k = write(fd, junk, sizeof junk);
	k = write(fd, "unit echo fine\n", 15);
	(void)k;
	struct ms_ctl_client *wrap = NULL;
	(void)wrap;
	char rb[4 * MS_CTL_LINE_MAX];
	size_t got = 0;
	for (int tries = 0; tries < 200 && !memmem(rb, got, "ok fine\n", 8); tries++) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 20) > 0) {
			k = read(fd, rb + got, sizeof rb - got - 1);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
	}
	rb[got] = '\0';
	tap_ok(strstr(rb, "err usage byte 0x80") != NULL, "bytes that are not text: err usage");
	tap_ok(strstr(rb, "err usage line longer than 4095 bytes") != NULL, "an overlong line: err usage");
	tap_ok(strstr(rb, "ok fine\n") != NULL, "and the next line is served");
	char *nl = rb;
	int nlines = 0;
	while ((nl = strchr(nl, '\n'))) {
		nlines++;
		nl++;
	}
	tap_int(nlines, 3, "one answer per line, no more");
	close(fd);

	/* A client that vanishes mid-line changes nothing and breaks nothing. */
	before = atomic_load(&ctx.calls);
	fd = raw_connect();
	k = write(fd, "unit emit 99", 12);
	close(fd);
	tap_int(req(c, "unit echo still", reply, sizeof reply), 0, "the server still answers");
	tap_int(atomic_load(&ctx.calls), before + 1, "the partial line was never handled");

	/* Subscribers get events; others do not. */
	struct ms_ctl_client *sub = conn(), *sub2 = conn();
	tap_int(req(sub, "subscribe", reply, sizeof reply), 0, "subscribe");
	tap_str(reply, "ok subscribed", "is confirmed");
	tap_int(req(sub2, "unit subscribe other", reply, sizeof reply), 0, "subscribe with a filter");
	tap_int(ms_ctl_server_subscribers(s), 2, "two subscribers");
	tap_int(req(c, "unit emit 7", reply, sizeof reply), 0, "a command emits an event");
	char ev[MS_CTL_LINE_MAX];
	tap_int(ms_ctl_client_recv(sub, ev, sizeof ev, 5, &e), 1, "the subscriber receives it");
	tap_str(ev, "event unit n=7", "as 'event STAGE ...'");
	ms_ctl_server_event(s, "other", "x=1");
	tap_int(ms_ctl_client_recv(sub2, ev, sizeof ev, 5, &e), 1, "a filtered subscriber gets its stage");
	tap_str(ev, "event other x=1", "that event");
	tap_int(ms_ctl_client_recv(sub2, ev, sizeof ev, 0.2, &e), -1, "but not the others");
	tap_int(ms_ctl_client_recv(c, ev, sizeof ev, 0.2, &e), -1, "a non-subscriber gets nothing");
	tap_int(ms_ctl_client_recv(sub, ev, sizeof ev, 5, &e), 1, "the full subscriber gets both");
	tap_str(ev, "event other x=1", "in order");
	tap_int(req(sub, "unsubscribe", reply, sizeof reply), 0, "unsubscribe");
	ms_ctl_server_event(s, NULL, "y=2");
	tap_int(ms_ctl_client_recv(sub, ev, sizeof ev, 0.2, &e), -1, "then no more events");
	/* Events that arrive while a request waits are passed aside. */
	tap_int(req(sub, "subscribe", reply, sizeof reply), 0, "subscribe again");
	ms_ctl_server_event(s, NULL, "z=3");
	tap_int(req(sub, "unit echo after", reply, sizeof reply), 0, "a request after an event");
	tap_str(reply, "ok after", "gets its own answer, not the event");

	/* Many clients at once, each answered in order. */
	enum { NCLIENTS = 24, NREQ = 40 };
	pthread_t th[NCLIENTS];
	struct many_arg args[NCLIENTS];
	for (int i = 0; i < NCLIENTS; i++) {
		args[i] = (struct many_arg){ i, NREQ, 0 };
		pthread_create(&th[i], NULL, many_client, &args[i]);
	}
	int bad = 0;
	for (int i = 0; i < NCLIENTS; i++) {
		pthread_join(th[i], NULL);
		bad += args[i].bad;
	}
	tap_int(bad, 0, "%d clients x %d requests, every answer right", NCLIENTS, NREQ);

	/* A deferred answer holds that client's next line back, in order. */
	fd = raw_connect();
	k = write(fd, "unit later\nunit echo second\n", 28);
	for (int i = 0; i < 200 && atomic_load(&ctx.ndeferred) == 0; i++)
		usleep(5000);
	usleep(50000);
	struct pollfd p = { fd, POLLIN, 0 };
	tap_int(poll(&p, 1, 100), 0, "nothing is answered while the first is deferred");
	tap_int(ms_ctl_server_answer(s, atomic_load(&ctx.deferred_client), "ok first"), 0,
	        "the deferred answer is given");
	got = 0;
	for (int tries = 0; tries < 200 && !memmem(rb, got, "ok second\n", 10); tries++) {
		if (poll(&p, 1, 20) > 0) {
			k = read(fd, rb + got, sizeof rb - got - 1);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
	}
	rb[got] = '\0';
	tap_str(rb, "ok first\nok second\n", "answers come in the order asked");
	close(fd);
	tap_int(ms_ctl_server_answer(s, 999999, "ok"), -1, "an answer for a gone client is refused");

	/* A subscriber that never reads is dropped, not waited for; one that
	 * reads keeps up. */
	fd = raw_connect();
	k = write(fd, "subscribe\n", 10);
	for (int i = 0; i < 200 && ms_ctl_server_subscribers(s) < 3; i++)
		usleep(5000);
	struct drain_arg da = { .c = sub };
	pthread_t dt;
	pthread_create(&dt, NULL, drain, &da);
	char pad[1000];
	memset(pad, 'p', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	int sent = 0;
	for (int i = 0; i < 20000 && ms_ctl_server_subscribers(s) > 2; i++) {
		ms_ctl_server_event(s, NULL, "pad=%s", pad);
		sent++;
		if (i % 50 == 49)
			usleep(2000);
	}
	tap_int(ms_ctl_server_subscribers(s), 2, "a subscriber that does not read is dropped");
	tap_ok(sent * 1000 > MS_CTL_OUTBUF_MAX, "after more than its buffer (%d events)", sent);
	ms_ctl_server_event(s, NULL, "last=1");
	pthread_join(dt, NULL);
	tap_int(da.n, sent + 1, "the reading subscriber got every event");
	close(fd);

	/* Too many clients: the extra one is told so. */
	struct ms_ctl_client *cs[MS_CTL_CLIENTS_MAX + 1];
	int opened = 0;
	for (int i = 0; i < MS_CTL_CLIENTS_MAX + 1; i++)
		if ((cs[i] = conn()))
			opened++;
	int busy = 0;
	for (int i = 0; i < MS_CTL_CLIENTS_MAX + 1; i++) {
		if (!cs[i])
			continue;
		int r = req(cs[i], "unit echo hi", reply, sizeof reply);
		/* The server may have closed before the request went out. */
		if (r < 0 && ms_ctl_client_recv(cs[i], reply, sizeof reply, 1, &e) == 1)
			r = 1;
		if (r == 1 && strncmp(reply, "err busy too many clients", 25) == 0)
			busy++;
		ms_ctl_client_close(cs[i]);
	}
	tap_ok(opened == MS_CTL_CLIENTS_MAX + 1 && busy >= 1,
	       "past %d clients, the extra ones get err busy (%d)", MS_CTL_CLIENTS_MAX, busy);

	ms_ctl_client_close(sub);
	ms_ctl_client_close(sub2);
	tap_int(req(c, "unit echo end", reply, sizeof reply), 0, "still serving after all that");
	ms_ctl_client_close(c);
	ms_ctl_server_close(s);
	tap_ok(access(sockpath, F_OK) != 0, "closing removes the socket");
}

/* Poll mode: the program drives dispatch from its own loop. */
static void test_server_poll(void)
{
	ms_err e;
	snprintf(sockpath, sizeof sockpath, "%s/poll.sock", tap_tmpdir());
	/* A stale socket (nobody listening) is replaced. */
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sockpath);
	bind(stale, (struct sockaddr *)&a, sizeof a);
	close(stale);
	struct srvctx ctx = { 0 };
	struct ms_ctl_server *s = ms_ctl_server_open(sockpath, "poller", 0, &e);
	if (!tap_ok(s != NULL, "a stale socket is replaced: %s", s ? "" : e.msg))
		return;
	int fd = raw_connect();
	ssize_t k = write(fd, "poller echo 1\npoller emit 2\n", 28);
	(void)k;
	int handled = 0;
	for (int i = 0; i < 100 && handled < 2; i++)
		handled += ms_ctl_server_wait(s, 0.05, handler, &ctx);
	tap_int(handled, 2, "wait + dispatch handle both lines");
	char rb[256];
	usleep(10000);
	k = read(fd, rb, sizeof rb - 1);
	rb[k > 0 ? k : 0] = '\0';
	tap_str(rb, "ok 1\nok emitted\n", "and answer them");
	tap_int(ms_ctl_server_wait(s, 0, handler, &ctx), 0, "nothing more to do");
	close(fd);
	ms_ctl_server_wait(s, 0.05, handler, &ctx);
	tap_int(ms_ctl_server_clients(s), 0, "a closed client is dropped");
	ms_ctl_server_close(s);

	/* Other files at the path are never replaced. */
	char path[300];
	snprintf(path, sizeof path, "%s/regular", tap_tmpdir());
	FILE *f = fopen(path, "w");
	fclose(f);
	s = ms_ctl_server_open(path, "x", 0, &e);
	tap_ok(s == NULL && strstr(e.msg, "neither a socket nor a FIFO"), "a regular file is refused: %s",
	       e.msg);
	ms_ctl_server_close(s);
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	s = ms_ctl_server_open(longp, "x", 0, &e);
	tap_ok(s == NULL && strstr(e.msg, "longer than"), "an overlong socket path is refused: %s", e.msg);
	ms_ctl_server_close(s);
}

static int lines_in(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, ch;
	if (!f)
		return 0;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* FIFO mode: commands come through a FIFO, answers go to standard error. */
static void test_server_fifo(void)
{
	ms_err e;
	char fifo[300], errpath[300];
	snprintf(fifo, sizeof fifo, "%s/ctl.fifo", tap_tmpdir());
	snprintf(errpath, sizeof errpath, "%s/stderr", tap_tmpdir());
	if (mkfifo(fifo, 0600) < 0)
		return;
	struct srvctx ctx = { 0 };
	struct ms_ctl_server *s = ms_ctl_server_open(fifo, "fifo", 0, &e);
	if (!tap_ok(s != NULL && ms_ctl_server_is_fifo(s), "a FIFO becomes a command FIFO"))
		return;
	int saved = dup(STDERR_FILENO);
	int ef = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(ef, STDERR_FILENO);
	close(ef);
	/* Two writers, one after the other: the FIFO never reads as ended. */
	for (int w = 0; w < 2; w++) {
		int fd = open(fifo, O_WRONLY);
		const char *text = w == 0 ? "fifo echo one\nfifo subscribe\n" : "fifo echo \"two\n";
		ssize_t k = write(fd, text, strlen(text));
		(void)k;
		close(fd);
		for (int i = 0; i < 100 && lines_in(errpath) < 2 + w; i++)
			ms_ctl_server_wait(s, 0.02, handler, &ctx);
	}
	int fd = open(fifo, O_WRONLY);
	ssize_t k = write(fd, "fifo echo three\n", 16);
	(void)k;
	close(fd);
	for (int i = 0; i < 100 && lines_in(errpath) < 4; i++)
		ms_ctl_server_wait(s, 0.02, handler, &ctx);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[1024] = "";
	FILE *f = fopen(errpath, "r");
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	tap_ok(strstr(buf, ": ok one\n") != NULL, "the answer goes to standard error");
	tap_ok(strstr(buf, ": err usage events need a socket") != NULL, "subscribing over a FIFO is refused");
	tap_ok(strstr(buf, ": err usage unterminated quote") != NULL, "a malformed line is refused");
	tap_ok(strstr(buf, ": ok three\n") != NULL, "a later writer is still heard");
	ms_ctl_server_close(s);
	tap_ok(access(fifo, F_OK) == 0, "the FIFO, which the user made, is left in place");
}

static void test_rig_paths(void)
{
	char out[512], want[512];
	ms_err e;
	const char *tmp = tap_tmpdir();
	setenv("XDG_RUNTIME_DIR", tmp, 1);
	unsetenv("MS_RUNTIME_DIR");
	tap_int(ms_ctl_runtime_base(out, sizeof out), 0, "runtime base");
	snprintf(want, sizeof want, "%s/mstk", tmp);
	tap_str(out, want, "is $XDG_RUNTIME_DIR/mstk");
	tap_int(ms_ctl_rig_socket("rig-42", out, sizeof out, &e), 0, "a rig by name");
	snprintf(want, sizeof want, "%s/mstk/rig-42/ctl.sock", tmp);
	tap_str(out, want, "is under the base");
	tap_int(ms_ctl_rig_socket("/some/dir", out, sizeof out, &e), 0, "a rig by path");
	tap_str(out, "/some/dir/ctl.sock", "is that directory's socket");
	tap_int(ms_ctl_rig_socket(NULL, out, sizeof out, &e), -1, "no rig started yet");
	tap_ok(strstr(e.msg, "no rig is running") != NULL, "says so: %s", e.msg);
	setenv("MS_RUNTIME_DIR", "/run/rig-7", 1);
	tap_int(ms_ctl_rig_socket(NULL, out, sizeof out, &e), 0, "a stage's own rig");
	tap_str(out, "/run/rig-7/ctl.sock", "from $MS_RUNTIME_DIR");
	unsetenv("MS_RUNTIME_DIR");
	char base[400];
	snprintf(base, sizeof base, "%s/mstk", tmp);
	mkdir(base, 0700);
	snprintf(want, sizeof want, "%s/last", base);
	tap_ok(symlink("rig-9", want) == 0, "a 'last' link");
	tap_int(ms_ctl_rig_socket(NULL, out, sizeof out, &e), 0, "the last rig");
	snprintf(want, sizeof want, "%s/mstk/last/ctl.sock", tmp);
	tap_str(out, want, "through the link");
	setenv("XDG_RUNTIME_DIR", "relative/path", 1);
	ms_ctl_runtime_base(out, sizeof out);
	tap_ok(strncmp(out, "/tmp/mstk-", 10) == 0, "a relative $XDG_RUNTIME_DIR is ignored: %s", out);
	tap_int(ms_ctl_runtime_base(out, 8), -1, "a base too long for the buffer is an error");
}

static void test_rate(void)
{
	struct ms_ctl_rate r = { 0 };
	tap_near(ms_ctl_rate_get(&r, 5), 0, 0, "no events, no rate");
	for (int i = 0; i <= 300; i++)
		ms_ctl_rate_add(&r, 1, 10 + i * 0.01);
	tap_near(ms_ctl_rate_get(&r, 13.0), 100, 2, "100 events/s");
	tap_near(ms_ctl_rate_get(&r, 20.0), 0, 0, "a rate stops when events stop");
}

static void test_switch_arg(void)
{
	static const struct {
		const char *line;
		int rc;
		bool on;
	} cases[] = {
		{ "track acquisition", 0, false },
		{ "track acquisition on", 1, true },
		{ "track acquisition off", 1, false },
		{ "track acquisition maybe", -1, false },
		{ "track acquisition on off", -1, false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct ms_ctl_cmd c;
		ms_err e;
		char reply[MS_CTL_LINE_MAX] = "";
		bool on = !cases[i].on;
		ms_ctl_parse(&c, cases[i].line, strlen(cases[i].line), &e);
		int rc = ms_ctl_switch_arg(&c, &on, reply, sizeof reply);
		tap_int(rc, cases[i].rc, "switch '%s' gives %d", cases[i].line, cases[i].rc);
		if (rc > 0)
			tap_int(on, cases[i].on, "switch '%s' is %s", cases[i].line, cases[i].on ? "on" : "off");
		if (rc < 0)
			tap_str(reply, "err usage acquisition [on|off]", "switch '%s' says how", cases[i].line);
	}
}

int main(void)
{
	test_switch_arg();
	test_split();
	test_parse();
	test_quote();
	test_replies();
	test_lines();
	test_server_thread();
	test_server_poll();
	test_server_fifo();
	test_rig_paths();
	test_rate();
	return tap_done();
}
