/* fstream: the frame stream over a file descriptor; see fstream.h. */
#include "fstream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cli.h"
#include "shmring.h"

/* The fixed part of every record, in the writer's (native) byte order. */
struct record {
	char magic[4];		/* "MSFR" */
	uint32_t kind;
	uint64_t seq;
	uint64_t t_ns;
	uint64_t payload;
};
_Static_assert(sizeof(struct record) == 32, "record header is 32 bytes");

/* The payload of a frame record in the shm transport. */
struct descriptor {
	uint64_t pos;		/* position in the ring */
	uint32_t slot;		/* pos % nslots */
	uint32_t zero;
};
_Static_assert(sizeof(struct descriptor) == 16, "descriptor is 16 bytes");

struct ms_fwriter {
	int fd;
	const char *name;
	struct ms_frame_info info;
	size_t frame_bytes;
	uint64_t count;
	uint64_t last_t_ns;
	/* shm transport: */
	struct ms_shmring *ring;
	bool may_block;		/* fd is a pipe, FIFO, socket or device */
};

struct ms_freader {
	int fd;
	char *name;
	struct ms_frame_info info;
	size_t frame_bytes;
	uint64_t count;
	unsigned char *pixels;
	bool ended;
	/* Bytes read past the header while looking for its end. */
	unsigned char pending[MS_FSTREAM_HEADER_MAX];
	size_t npending, pending_off;
	/* shm transport: the header's promises, then the ring itself. */
	bool shm;
	char shm_name[MS_SHMRING_NAME_MAX + 2];
	uint32_t shm_slots;
	uint64_t shm_id;		/* 0: the header gave none */
	struct ms_shmring *ring;
	uint64_t pos;			/* ring position of the next frame to deliver */
	_Atomic uint64_t pos_seen;	/* pos, for ms_freader_fill in another thread;
					 * UINT64_MAX until the reader has a place */
	uint64_t avail;			/* positions below it are known to be written */
	uint64_t dropped;
	/*
	 * The ring position of the first descriptor this reader was sent: a
	 * reader that joins a running stream (a consumer restarted behind a
	 * relay) starts there, and what came before was never its to miss.
	 */
	uint64_t base;
	bool based;
	bool end_seen;
	uint64_t end_count;
	ms_freader_drop_fn *on_drop;
	void *drop_ctx;
	int wake_fd;		/* -1, or a descriptor whose readiness aborts reads */
};

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t k = writev(fd, iov, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

static bool little_endian(void)
{
	const uint16_t one = 1;
	return *(const unsigned char *)&one == 1;
}

/* Write the header; transport is the text from TRANSPORT to before ENDHDR. */
static struct ms_fwriter *open_writer(int fd, const struct ms_frame_info *info,
                                      const char *transport, const char *name, ms_err *e)
{
	if (info->width == 0 || info->height == 0 || ms_pixfmt_bytes(info->fmt) == 0) {
		ms_err_set(e, "%s: bad frame geometry %ux%u %s", name, info->width,
		           info->height, ms_pixfmt_name(info->fmt));
		return NULL;
	}
	char hdr[MS_FSTREAM_HEADER_MAX];
	int n = snprintf(hdr, sizeof hdr,
	                 "%s %d\nWIDTH %u\nHEIGHT %u\nFORMAT %s\nNM_PER_PX %.17g\n"
	                 "ENDIAN %s\nTRANSPORT %sENDHDR\n",
	                 MS_FSTREAM_MAGIC, MS_FSTREAM_VERSION, info->width, info->height,
	                 ms_pixfmt_name(info->fmt), info->nm_per_px,
	                 little_endian() ? "little" : "big", transport);
	if (write_all(fd, hdr, (size_t)n) < 0) {
		ms_err_set(e, "cannot write to %s:", name);
		return NULL;
	}
	struct ms_fwriter *w = calloc(1, sizeof *w);
	if (!w) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	w->fd = fd;
	w->name = name;
	w->info = *info;
	w->frame_bytes = ms_frame_bytes(info);
	return w;
}

struct ms_fwriter *ms_fwriter_open(int fd, const struct ms_frame_info *info,
                                   const char *name, ms_err *e)
{
	return open_writer(fd, info, "inline\n", name, e);
}

struct ms_fwriter *ms_fwriter_open_shm(int fd, struct ms_shmring *ring, const char *name,
                                       ms_err *e)
{
	char transport[512];
	snprintf(transport, sizeof transport, "shm\nSHM %s\nSLOTS %" PRIu32 "\nSHM_ID %" PRIx64 "\n",
	         ms_shmring_name(ring), ms_shmring_nslots(ring), ms_shmring_id(ring));
	struct ms_fwriter *w = open_writer(fd, ms_shmring_info(ring), transport, name, e);
	if (!w)
		return NULL;
	w->ring = ring;
	struct stat st;
	w->may_block = fstat(fd, &st) < 0 || !S_ISREG(st.st_mode);
	return w;
}

/*
 * Whether a descriptor can be written without waiting. On a pipe, POLLOUT
 * means room for at least one more page, more than a 48-byte record, and as
 * the only writer we cannot lose that room before our write.
 */
static bool writable_now(const struct ms_fwriter *w)
{
	if (!w->may_block)
		return true;
	struct pollfd p = { .fd = w->fd, .events = POLLOUT };
	int n;
	while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
		;
	/* Errors and hang-ups are for the write to report. */
	return n != 0;
}

static int put_shm(struct ms_fwriter *w, const struct ms_frame *f, ms_err *e)
{
	uint64_t pos;
	if (ms_shmring_put(w->ring, f, &pos, e) < 0)
		return ms_err_prefix(e, "%s", w->name);
	w->count++;
	w->last_t_ns = f->t_ns;
	/* The reader learns of this frame from the next descriptor or the end record. */
	if (!writable_now(w))
		return 0;
	struct {
		struct record rec;
		struct descriptor d;
	} msg = {
		{ { 'M', 'S', 'F', 'R' }, MS_REC_FRAME, f->seq, f->t_ns, sizeof(struct descriptor) },
		{ pos, (uint32_t)(pos % ms_shmring_nslots(w->ring)), 0 },
	};
	if (write_all(w->fd, &msg, sizeof msg) < 0)
		return ms_err_set(e, "cannot write to %s:", w->name);
	return 0;
}

int ms_fwriter_put(struct ms_fwriter *w, const struct ms_frame *f, ms_err *e)
{
	if (f->info.width != w->info.width || f->info.height != w->info.height ||
	    f->info.fmt != w->info.fmt)
		return ms_err_set(e, "%s: frame %" PRIu64 " is %ux%u %s, the stream is %ux%u %s",
		                  w->name, f->seq, f->info.width, f->info.height,
		                  ms_pixfmt_name(f->info.fmt), w->info.width, w->info.height,
		                  ms_pixfmt_name(w->info.fmt));
	if (w->ring)
		return put_shm(w, f, e);
	struct record rec = { { 'M', 'S', 'F', 'R' }, MS_REC_FRAME, f->seq, f->t_ns, w->frame_bytes };
	struct iovec iov[2] = {
		{ &rec, sizeof rec },
		{ (void *)f->pixels, w->frame_bytes },
	};
	if (writev_all(w->fd, iov, 2) < 0)
		return ms_err_set(e, "cannot write to %s:", w->name);
	w->count++;
	w->last_t_ns = f->t_ns;
	return 0;
}

int ms_fwriter_close(struct ms_fwriter *w, ms_err *e)
{
	/* The last frame's time, not the clock: equal inputs give equal streams. */
	struct record rec = { { 'M', 'S', 'F', 'R' }, MS_REC_END, w->count, w->last_t_ns, 0 };
	int rc = 0;
	if (write_all(w->fd, &rec, sizeof rec) < 0)
		rc = ms_err_set(e, "cannot write to %s:", w->name);
	else if (w->ring && w->may_block)
		ms_shmring_wait_attached(w->ring, MS_FSTREAM_SHM_LINGER_MS);
	free(w);
	return rc;
}

void ms_fwriter_abandon(struct ms_fwriter *w)
{
	free(w);
}

bool ms_fstream_sniff(const void *buf, size_t n)
{
	size_t m = strlen(MS_FSTREAM_MAGIC);
	return n >= m + 1 && memcmp(buf, MS_FSTREAM_MAGIC, m) == 0 &&
	       ((const char *)buf)[m] == ' ';
}

/*
 * Read up to n bytes, first from what the header read left over. The shm
 * transport's records are small, so there the pending buffer also serves
 * as a read buffer: one read() brings many descriptors.
 */
/*
 * read(), but a byte on the wake descriptor (if one is set) makes it give
 * up with ECANCELED: a reader thread blocked on a quiet pipe can then be
 * stopped without cancelling it.
 */
static ssize_t raw_read(struct ms_freader *r, void *buf, size_t n)
{
	for (;;) {
		if (r->wake_fd >= 0) {
			struct pollfd p[2] = { { r->fd, POLLIN, 0 }, { r->wake_fd, POLLIN, 0 } };
			if (poll(p, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (p[1].revents) {
				errno = ECANCELED;
				return -1;
			}
		}
		ssize_t k = read(r->fd, buf, n);
		if (k < 0 && errno == EINTR)
			continue;
		return k;
	}
}

static ssize_t read_some(struct ms_freader *r, void *buf, size_t n)
{
	if (r->shm && r->pending_off == r->npending && n < sizeof r->pending) {
		ssize_t k = raw_read(r, r->pending, sizeof r->pending);
		if (k <= 0)
			return k;
		r->npending = (size_t)k;
		r->pending_off = 0;
	}
	if (r->pending_off < r->npending) {
		size_t k = r->npending - r->pending_off;
		if (k > n)
			k = n;
		memcpy(buf, r->pending + r->pending_off, k);
		r->pending_off += k;
		return (ssize_t)k;
	}
	return raw_read(r, buf, n);
}

/* Fill buf completely: returns n, or fewer at end of file, or -1. */
static ssize_t read_full(struct ms_freader *r, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read_some(r, (char *)buf + got, n - got);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static int parse_header(struct ms_freader *r, char *text, ms_err *e)
{
	bool have_w = false, have_h = false, have_fmt = false, have_transport = false;
	char *save = NULL;
	int lineno = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		char key[32], val[256];
		if (sscanf(line, "%31s %255s", key, val) != 2)
			return ms_err_set(e, "%s: header line %d is not 'KEY VALUE': '%s'",
			                  r->name, lineno, line);
		if (lineno == 1) {
			long v;
			if (strcmp(key, MS_FSTREAM_MAGIC) != 0)
				return ms_err_set(e, "%s: not a frame stream", r->name);
			if (ms_parse_long(val, &v) < 0 || v != MS_FSTREAM_VERSION)
				return ms_err_set(e, "%s: frame stream version '%s' is not supported "
				                  "(this reader knows version %d)", r->name, val,
				                  MS_FSTREAM_VERSION);
		} else if (strcmp(key, "WIDTH") == 0 || strcmp(key, "HEIGHT") == 0) {
			long v;
			if (ms_parse_long(val, &v) < 0 || v < 1 || v > (long)MS_FRAME_MAX_SIDE)
				return ms_err_set(e, "%s: bad %s '%s' in header", r->name, key, val);
			if (key[0] == 'W') {
				r->info.width = (uint32_t)v;
				have_w = true;
			} else {
				r->info.height = (uint32_t)v;
				have_h = true;
			}
		} else if (strcmp(key, "FORMAT") == 0) {
			r->info.fmt = ms_pixfmt_parse(val);
			if (r->info.fmt == MS_PIX_NONE)
				return ms_err_set(e, "%s: unknown pixel format '%s' in header", r->name, val);
			have_fmt = true;
		} else if (strcmp(key, "NM_PER_PX") == 0) {
			double v;
			if (ms_parse_double(val, &v) < 0 || v < 0)
				return ms_err_set(e, "%s: bad NM_PER_PX '%s' in header", r->name, val);
			r->info.nm_per_px = v;
		} else if (strcmp(key, "ENDIAN") == 0) {
			if (strcmp(val, little_endian() ? "little" : "big") != 0)
				return ms_err_set(e, "%s: stream is %s-endian; this machine reads only its own order",
				                  r->name, val);
		} else if (strcmp(key, "TRANSPORT") == 0) {
			if (strcmp(val, "shm") == 0)
				r->shm = true;
			else if (strcmp(val, "inline") != 0)
				return ms_err_set(e, "%s: transport '%s' is not supported by this reader",
				                  r->name, val);
			have_transport = true;
		} else if (strcmp(key, "SHM") == 0) {
			if (strlen(val) >= sizeof r->shm_name)
				return ms_err_set(e, "%s: shared-memory name '%s' in header is too long",
				                  r->name, val);
			strcpy(r->shm_name, val);
		} else if (strcmp(key, "SLOTS") == 0) {
			long v;
			if (ms_parse_long(val, &v) < 0 || v < (long)MS_SHMRING_MIN_SLOTS ||
			    v > (long)MS_SHMRING_MAX_SLOTS)
				return ms_err_set(e, "%s: bad SLOTS '%s' in header", r->name, val);
			r->shm_slots = (uint32_t)v;
		} else if (strcmp(key, "SHM_ID") == 0) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(val, &end, 16);
			if (errno || *end || end == val)
				return ms_err_set(e, "%s: bad SHM_ID '%s' in header", r->name, val);
			r->shm_id = v;
		}
		/* Other keys are for newer writers: ignored, as in PAM. */
	}
	if (!have_w || !have_h || !have_fmt || !have_transport)
		return ms_err_set(e, "%s: header lacks %s", r->name,
		                  !have_w ? "WIDTH" : !have_h ? "HEIGHT" : !have_fmt ? "FORMAT" : "TRANSPORT");
	if (r->shm && (!r->shm_name[0] || !r->shm_slots))
		return ms_err_set(e, "%s: shared-memory frame stream header lacks %s", r->name,
		                  !r->shm_name[0] ? "SHM" : "SLOTS");
	return 0;
}

/* Map the ring the header names and check that it is the one announced. */
static int open_ring(struct ms_freader *r, ms_err *e)
{
	ms_err sub = { { 0 } };
	r->ring = ms_shmring_open(r->shm_name, &sub);
	if (!r->ring) {
		if (strstr(sub.msg, "no shared-memory segment"))
			return ms_err_set(e, "%s: the stream's frames were in shared-memory segment "
			                  "'%s', which is gone: its writer has ended (a shared-memory "
			                  "stream can only be read while its writer runs)",
			                  r->name, r->shm_name);
		return ms_err_set(e, "%s: %s", r->name, sub.msg);
	}
	const struct ms_frame_info *ri = ms_shmring_info(r->ring);
	if (r->shm_id && ms_shmring_id(r->ring) != r->shm_id)
		return ms_err_set(e, "%s: shared-memory segment '%s' belongs to another writer "
		                  "(the stream's writer has ended and the name was reused)",
		                  r->name, r->shm_name);
	if (ri->width != r->info.width || ri->height != r->info.height || ri->fmt != r->info.fmt ||
	    ms_shmring_nslots(r->ring) != r->shm_slots)
		return ms_err_set(e, "%s: shared-memory segment '%s' holds %" PRIu32 " slots of "
		                  "%ux%u %s, the stream header says %" PRIu32 " slots of %ux%u %s",
		                  r->name, r->shm_name, ms_shmring_nslots(r->ring), ri->width,
		                  ri->height, ms_pixfmt_name(ri->fmt), r->shm_slots, r->info.width,
		                  r->info.height, ms_pixfmt_name(r->info.fmt));
	return 0;
}

struct ms_freader *ms_freader_open(int fd, const char *name, ms_err *e)
{
	struct ms_freader *r = calloc(1, sizeof *r);
	if (!r) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	r->fd = fd;
	atomic_init(&r->pos_seen, UINT64_MAX);
	r->wake_fd = -1;
	r->name = strdup(name);
	/* Read in chunks until "ENDHDR\n"; keep any bytes read beyond it. */
	char buf[MS_FSTREAM_HEADER_MAX + 1];
	size_t have = 0;
	char *end = NULL;
	while (!end) {
		if (have == MS_FSTREAM_HEADER_MAX) {
			ms_err_set(e, "%s: %s", name, ms_fstream_sniff(buf, have) ?
			           "frame stream header has no ENDHDR line" : "not a frame stream");
			goto fail;
		}
		ssize_t k = read(fd, buf + have, MS_FSTREAM_HEADER_MAX - have);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			ms_err_set(e, "cannot read %s:", name);
			goto fail;
		}
		if (k == 0) {
			if (have == 0)
				ms_err_set(e, "%s: empty input, not a frame stream", name);
			else if (!ms_fstream_sniff(buf, have))
				ms_err_set(e, "%s: not a frame stream", name);
			else
				ms_err_set(e, "%s: truncated frame stream header", name);
			goto fail;
		}
		have += (size_t)k;
		buf[have] = '\0';
		if (have >= 9 && !ms_fstream_sniff(buf, have)) {
			ms_err_set(e, "%s: not a frame stream", name);
			goto fail;
		}
		/* The same read may bring binary records after ENDHDR: only the header is text. */
		end = memmem(buf, have, "\nENDHDR\n", strlen("\nENDHDR\n"));
		if (memchr(buf, '\0', end ? (size_t)(end - buf) : have)) {
			ms_err_set(e, "%s: not a frame stream (binary data in the header)", name);
			goto fail;
		}
	}
	size_t hdr_len = (size_t)(end - buf) + strlen("\nENDHDR\n");
	r->npending = have - hdr_len;
	memcpy(r->pending, buf + hdr_len, r->npending);
	end[1] = '\0';
	if (parse_header(r, buf, e) < 0)
		goto fail;
	if (r->shm && open_ring(r, e) < 0)
		goto fail;
	r->frame_bytes = ms_frame_bytes(&r->info);
	r->pixels = malloc(r->frame_bytes);
	if (!r->pixels) {
		ms_err_set(e, "%s: out of memory for a %ux%u frame", name, r->info.width, r->info.height);
		goto fail;
	}
	return r;
fail:
	ms_freader_close(r);
	return NULL;
}

const struct ms_frame_info *ms_freader_info(const struct ms_freader *r)
{
	return &r->info;
}

void ms_freader_set_wake_fd(struct ms_freader *r, int fd)
{
	r->wake_fd = fd;
}

bool ms_freader_ready(const struct ms_freader *r)
{
	if (r->ended || r->pending_off < r->npending || r->pos < r->avail)
		return true;
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

uint64_t ms_freader_count(const struct ms_freader *r)
{
	return r->count;
}

const char *ms_freader_transport(const struct ms_freader *r)
{
	return r->shm ? "shm" : "inline";
}

uint64_t ms_freader_dropped(const struct ms_freader *r)
{
	return r->dropped;
}

void ms_freader_on_drop(struct ms_freader *r, ms_freader_drop_fn *fn, void *ctx)
{
	r->on_drop = fn;
	r->drop_ctx = ctx;
}

static void report_drops(struct ms_freader *r, uint64_t from, uint64_t n)
{
	r->dropped += n;
	if (!r->on_drop)
		return;
	struct ms_drop d = { .noticed_ns = ms_now_ns() };
	for (uint64_t p = from; p < from + n; p++) {
		d.pos = p;
		d.known = ms_shmring_meta(r->ring, p, &d.seq, &d.t_ns);
		if (!d.known)
			d.seq = d.t_ns = 0;
		r->on_drop(r->drop_ctx, &d);
	}
}


/* Read one record header; a short read or a missing marker is an error. */
static int read_record(struct ms_freader *r, struct record *rec, ms_err *e)
{
	ssize_t k = read_full(r, rec, sizeof *rec);
	if (k < 0)
		return ms_err_set(e, "cannot read %s:", r->name);
	if (k == 0)
		return ms_err_set(e, "%s: truncated frame stream: it ends after %" PRIu64
		                  " frames without an end record", r->name, r->count);
	if ((size_t)k < sizeof *rec)
		return ms_err_set(e, "%s: truncated frame stream: record %" PRIu64
		                  " is cut short", r->name, r->count);
	if (memcmp(rec->magic, "MSFR", 4) != 0)
		return ms_err_set(e, "%s: corrupt frame stream: no record marker after %" PRIu64
		                  " frames", r->name, r->count);
	return 0;
}

/*
 * The shm transport. Ring positions are the truth: a descriptor only says
 * that every position up to its own has been written, so the reader walks
 * the positions in order and reads descriptors only to learn of more (or to
 * wait for them). Descriptors for positions it has already passed - those
 * it skipped when the ring overwrote them - are read and dropped.
 */
static int next_shm(struct ms_freader *r, struct ms_frame *f, ms_err *e)
{
	for (;;) {
		if (r->pos < r->avail) {
			uint64_t from = r->pos, missed = 0;
			int rc = ms_shmring_next(r->ring, &r->pos, r->pixels, f, &missed, e);
			if (rc < 0)
				return ms_err_prefix(e, "%s", r->name);
			if (rc == 0)
				return ms_err_set(e, "%s: frame %" PRIu64 " of the stream is not in "
				                  "shared-memory segment '%s'", r->name, r->pos,
				                  r->shm_name);
			if (missed)
				report_drops(r, from, missed);
			if (r->avail < r->pos)
				r->avail = r->pos;
			atomic_store_explicit(&r->pos_seen, r->pos, memory_order_relaxed);
			r->count++;
			return 1;
		}
		if (r->end_seen) {
			if (r->count + r->dropped != r->end_count - r->base)
				return ms_err_set(e, "%s: frame stream ended with a count of %" PRIu64
				                  " but %" PRIu64 " frames arrived and %" PRIu64
				                  " were dropped after ring position %" PRIu64, r->name,
				                  r->end_count, r->count, r->dropped, r->base);
			r->ended = true;
			return 0;
		}
		struct record rec;
		if (read_record(r, &rec, e) < 0)
			return -1;
		if (rec.kind == MS_REC_END) {
			if (rec.seq < r->pos)
				return ms_err_set(e, "%s: frame stream ended with a count of %" PRIu64
				                  " after ring position %" PRIu64, r->name, rec.seq, r->pos);
			if (!r->based) {
				/* No frame was sent to this reader: none was missed either. */
				r->based = true;
				r->base = r->pos = rec.seq;
			}
			r->end_seen = true;
			r->end_count = rec.seq;
			r->avail = rec.seq;
			continue;
		}
		if (rec.kind != MS_REC_FRAME || rec.payload != sizeof(struct descriptor))
			return ms_err_set(e, "%s: corrupt frame stream: record after ring position %"
			                  PRIu64 " has kind %u and %" PRIu64 " bytes (a shared-memory "
			                  "descriptor has %zu)", r->name, r->pos, rec.kind, rec.payload,
			                  sizeof(struct descriptor));
		struct descriptor d;
		ssize_t k = read_full(r, &d, sizeof d);
		if (k < 0)
			return ms_err_set(e, "cannot read %s:", r->name);
		if ((size_t)k < sizeof d)
			return ms_err_set(e, "%s: truncated frame stream: a descriptor is cut short",
			                  r->name);
		if (d.slot != d.pos % r->shm_slots)
			return ms_err_set(e, "%s: corrupt frame stream: descriptor for ring position %"
			                  PRIu64 " names slot %" PRIu32, r->name, d.pos, d.slot);
		if (!r->based) {
			r->based = true;
			r->base = r->pos = d.pos;
			atomic_store_explicit(&r->pos_seen, r->pos, memory_order_relaxed);
		}
		if (d.pos >= r->avail)
			r->avail = d.pos + 1;
	}
}

int ms_freader_next(struct ms_freader *r, struct ms_frame *f, ms_err *e)
{
	if (r->ended)
		return 0;
	if (r->shm)
		return next_shm(r, f, e);
	struct record rec;
	if (read_record(r, &rec, e) < 0)
		return -1;
	if (rec.kind == MS_REC_END) {
		if (rec.seq != r->count)
			return ms_err_set(e, "%s: frame stream ended with a count of %" PRIu64
			                  " but %" PRIu64 " frames arrived", r->name, rec.seq, r->count);
		r->ended = true;
		return 0;
	}
	if (rec.kind != MS_REC_FRAME || rec.payload != r->frame_bytes)
		return ms_err_set(e, "%s: corrupt frame stream: record %" PRIu64 " has kind %u and "
		                  "%" PRIu64 " bytes (a frame has %zu)", r->name, r->count,
		                  rec.kind, rec.payload, r->frame_bytes);
	ssize_t k = read_full(r, r->pixels, r->frame_bytes);
	if (k < 0)
		return ms_err_set(e, "cannot read %s:", r->name);
	if ((size_t)k < r->frame_bytes)
		return ms_err_set(e, "%s: truncated frame stream: frame %" PRIu64 " has %zd of %zu bytes",
		                  r->name, r->count, k, r->frame_bytes);
	f->seq = rec.seq;
	f->t_ns = rec.t_ns;
	f->info = r->info;
	f->pixels = r->pixels;
	r->count++;
	return 1;
}

int ms_freader_fill(const struct ms_freader *r, double *fill, uint64_t *overrun)
{
	*overrun = 0;
	if (r->shm) {
		/* Before the first descriptor the reader has no place in the ring yet. */
		uint64_t pos = atomic_load_explicit(&r->pos_seen, memory_order_relaxed);
		uint64_t head = ms_shmring_head(r->ring);
		if (pos == UINT64_MAX)
			pos = head;
		uint64_t lag = head > pos ? head - pos : 0;
		*fill = lag >= r->shm_slots ? 1.0 : (double)lag / r->shm_slots;
		*overrun = lag > r->shm_slots ? lag - r->shm_slots : 0;
		return 0;
	}
	/* An inline stream waits in its pipe or FIFO (a file does not wait). */
	int queued = 0, cap = fcntl(r->fd, F_GETPIPE_SZ);
	if (cap <= 0 || ioctl(r->fd, FIONREAD, &queued) < 0)
		return -1;
	*fill = queued >= cap ? 1.0 : (double)queued / cap;
	return 0;
}

void ms_freader_close(struct ms_freader *r)
{
	if (!r)
		return;
	ms_shmring_close(r->ring);
	free(r->pixels);
	free(r->name);
	free(r);
}
