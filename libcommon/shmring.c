/*
 * shmring: the POSIX shared-memory frame ring; see shmring.h.
 *
 * Segment layout (all offsets multiples of the page size or of 64):
 *   header page   struct ring_hdr: geometry, the write counter, and (in its
 *                 own cache line) the count of readers that ever attached -
 *                 the only word readers write, through a separate writable
 *                 mapping of this page alone;
 *   meta ring     MS_SHMRING_META entries of {stamp, seq, t_ns};
 *   slots         nslots x {stamp, seq, t_ns, padding to 64 bytes, pixels
 *                 padded to a multiple of 64 bytes}.
 * The writer fills every header field before it stores the magic (release),
 * and a reader trusts nothing before it has loaded the magic (acquire) and
 * checked every field against the segment's size.
 */
#include "shmring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared-memory atomics must be lock-free");

#define RING_MAGIC UINT64_C(0x314752534d534d)	/* "MSMSRG1" in little-endian bytes */
#define RING_VERSION 1u
#define SHM_DIR "/dev/shm"
/* Consecutive overwritten copies after which a reader gives up. */
#define NEXT_MAX_TRIES 100000

struct ring_hdr {
	_Atomic uint64_t magic;		/* stored last by the writer */
	uint32_t version;
	uint32_t width, height, fmt;
	uint32_t nslots, nmeta;
	uint32_t hdr_bytes;
	uint64_t frame_bytes, slot_bytes;
	uint64_t meta_off, slots_off, total_bytes;
	double nm_per_px;
	uint64_t id;
	int64_t writer_pid;
	_Alignas(64) _Atomic uint64_t written;	/* frames completely put */
	_Atomic uint32_t finished;
	_Alignas(64) _Atomic uint64_t attached;	/* written by readers */
};

struct meta_entry {
	_Atomic uint64_t stamp;		/* 2*pos+1 while written, 2*pos+2 once done */
	_Atomic uint64_t seq;
	_Atomic uint64_t t_ns;
	_Atomic uint64_t pad;
};

struct slot_hdr {
	_Atomic uint64_t stamp;		/* as in meta_entry */
	_Atomic uint64_t seq;
	_Atomic uint64_t t_ns;
	unsigned char pad[40];
};
_Static_assert(sizeof(struct slot_hdr) == 64, "slot header is one cache line");
_Static_assert(sizeof(struct meta_entry) == 32, "meta entry is 32 bytes");

struct ms_shmring {
	bool writer;
	char name[MS_SHMRING_NAME_MAX + 2];
	unsigned char *base;		/* the whole segment (read-only for readers) */
	size_t size;
	struct ring_hdr *hdr;		/* = base */
	struct ring_hdr *hdr_rw;	/* readers: writable header page, or NULL */
	size_t hdr_bytes;
	struct ms_frame_info info;
	uint32_t nslots, nmeta;
	size_t frame_bytes, slot_bytes, meta_off, slots_off;
	uint64_t id;
	uint64_t next;			/* writer: position of the next put */
	uint64_t torn;			/* reader: copies discarded mid-way */
};

struct layout {
	size_t hdr_bytes, frame_bytes, slot_bytes, meta_off, slots_off, total;
};

/* What a writer or a reader keeps of the ring's shape. */
static void take_shape(struct ms_shmring *r, const struct ms_frame_info *info, uint32_t nslots,
		       uint32_t nmeta, const struct layout *l)
{
	r->info = *info;
	r->nslots = nslots;
	r->nmeta = nmeta;
	r->hdr_bytes = l->hdr_bytes;
	r->frame_bytes = l->frame_bytes;
	r->slot_bytes = l->slot_bytes;
	r->meta_off = l->meta_off;
	r->slots_off = l->slots_off;
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static size_t page_bytes(void)
{
	long p = sysconf(_SC_PAGESIZE);
	return p >= 4096 ? (size_t)p : 4096;
}

/* The segment's layout; false if it would not fit in a size_t. */
static bool compute_layout(const struct ms_frame_info *info, uint32_t nslots, size_t hdr_bytes,
                           struct layout *l)
{
	l->hdr_bytes = hdr_bytes;
	l->frame_bytes = ms_frame_bytes(info);
	l->slot_bytes = sizeof(struct slot_hdr) + round_up(l->frame_bytes, 64);
	l->meta_off = hdr_bytes;
	l->slots_off = round_up(l->meta_off + (size_t)MS_SHMRING_META * sizeof(struct meta_entry),
	                        hdr_bytes);
	if (l->frame_bytes == 0 || nslots == 0 || l->slot_bytes > (SIZE_MAX - l->slots_off) / nslots)
		return false;
	l->total = l->slots_off + l->slot_bytes * nslots;
	return true;
}

static bool valid_geometry(const struct ms_frame_info *info)
{
	return info->width >= 1 && info->height >= 1 && info->width <= MS_FRAME_MAX_SIDE &&
	       info->height <= MS_FRAME_MAX_SIDE && ms_pixfmt_bytes(info->fmt) != 0;
}

size_t ms_shmring_bytes(const struct ms_frame_info *info, uint32_t nslots)
{
	struct layout l;
	if (!valid_geometry(info) || !compute_layout(info, nslots, page_bytes(), &l))
		return 0;
	return l.total;
}

/* Put name into out as "/name"; -1 (e set) if it is not a portable shm name. */
static int normalise_name(const char *name, char *out, ms_err *e)
{
	const char *body = name[0] == '/' ? name + 1 : name;
	size_t n = strlen(body);
	if (n == 0 || n > MS_SHMRING_NAME_MAX)
		return ms_err_set(e, "bad shared-memory name '%s': it must have 1 to %d characters",
		                  name, MS_SHMRING_NAME_MAX);
	if (strcmp(body, ".") == 0 || strcmp(body, "..") == 0)
		return ms_err_set(e, "bad shared-memory name '%s'", name);
	for (size_t i = 0; i < n; i++) {
		char c = body[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return ms_err_set(e, "bad shared-memory name '%s': only letters, digits, "
			                  "'.', '_' and '-' may follow the leading '/'", name);
	}
	out[0] = '/';
	memcpy(out + 1, body, n + 1);
	return 0;
}

int ms_shmring_default_name(char *buf, size_t size, const char *tag)
{
	int n = snprintf(buf, size, "/mstk-%s-%ld", tag, (long)getpid());
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static void human_bytes(char *buf, size_t n, double bytes)
{
	if (bytes >= 1e9)
		snprintf(buf, n, "%.2f GB", bytes / 1e9);
	else if (bytes >= 1e6)
		snprintf(buf, n, "%.1f MB", bytes / 1e6);
	else
		snprintf(buf, n, "%.0f kB", bytes / 1e3);
}

static uint64_t random_id(void)
{
	uint64_t id = 0;
	if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id)
		id = ms_now_ns() ^ ((uint64_t)getpid() << 40);
	return id ? id : 1;
}

struct ms_shmring *ms_shmring_create(const char *name, const struct ms_frame_info *info,
                                     uint32_t nslots, ms_err *e)
{
	char norm[MS_SHMRING_NAME_MAX + 2];
	if (normalise_name(name, norm, e) < 0)
		return NULL;
	if (!valid_geometry(info)) {
		ms_err_set(e, "shared-memory ring '%s': bad frame geometry %ux%u %s", norm,
		           info->width, info->height, ms_pixfmt_name(info->fmt));
		return NULL;
	}
	if (nslots < MS_SHMRING_MIN_SLOTS || nslots > MS_SHMRING_MAX_SLOTS) {
		ms_err_set(e, "shared-memory ring '%s': %" PRIu32 " slots; a ring has %u to %u",
		           norm, nslots, MS_SHMRING_MIN_SLOTS, MS_SHMRING_MAX_SLOTS);
		return NULL;
	}
	struct layout l;
	if (!compute_layout(info, nslots, page_bytes(), &l)) {
		ms_err_set(e, "shared-memory ring '%s': %" PRIu32 " slots of %ux%u %s do not fit "
		           "in memory", norm, nslots, info->width, info->height,
		           ms_pixfmt_name(info->fmt));
		return NULL;
	}
	/* A full tmpfs would otherwise surface as SIGBUS at the first put. */
	struct statvfs vfs;
	if (statvfs(SHM_DIR, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < (double)l.total) {
		char need[32], have[32];
		human_bytes(need, sizeof need, (double)l.total);
		human_bytes(have, sizeof have, (double)vfs.f_bavail * (double)vfs.f_frsize);
		ms_err_set(e, "no room in " SHM_DIR " for shared-memory ring '%s': %" PRIu32
		           " slots of %ux%u %s need %s, %s are free (use fewer slots, or a "
		           "larger " SHM_DIR ")", norm, nslots, info->width, info->height,
		           ms_pixfmt_name(info->fmt), need, have);
		return NULL;
	}
	int fd = shm_open(norm, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			ms_err_set(e, "shared-memory segment '%s' already exists (another writer "
			           "uses the name, or a crashed one left " SHM_DIR "%s behind)", norm, norm);
		else
			ms_err_set(e, "cannot create shared-memory segment '%s':", norm);
		return NULL;
	}
	struct ms_shmring *ring = NULL;
	void *base = MAP_FAILED;
	int rc;
	if (ftruncate(fd, (off_t)l.total) < 0) {
		ms_err_set(e, "cannot size shared-memory segment '%s':", norm);
		goto fail;
	}
	if ((rc = posix_fallocate(fd, 0, (off_t)l.total)) != 0) {
		char need[32];
		human_bytes(need, sizeof need, (double)l.total);
		errno = rc;
		ms_err_set(e, "cannot reserve %s in " SHM_DIR " for shared-memory ring '%s':",
		           need, norm);
		goto fail;
	}
	base = mmap(NULL, l.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		ms_err_set(e, "cannot map shared-memory segment '%s':", norm);
		goto fail;
	}
	ring = calloc(1, sizeof *ring);
	if (!ring) {
		ms_err_set(e, "out of memory");
		goto fail;
	}
	close(fd);
	ring->writer = true;
	memcpy(ring->name, norm, strlen(norm) + 1);
	ring->base = base;
	ring->size = l.total;
	ring->hdr = base;
	take_shape(ring, info, nslots, MS_SHMRING_META, &l);
	ring->id = random_id();

	/* The fresh segment is zero: every stamp says "never written". */
	struct ring_hdr *h = ring->hdr;
	h->version = RING_VERSION;
	h->width = info->width;
	h->height = info->height;
	h->fmt = (uint32_t)info->fmt;
	h->nslots = nslots;
	h->nmeta = ring->nmeta;
	h->hdr_bytes = (uint32_t)l.hdr_bytes;
	h->frame_bytes = l.frame_bytes;
	h->slot_bytes = l.slot_bytes;
	h->meta_off = l.meta_off;
	h->slots_off = l.slots_off;
	h->total_bytes = l.total;
	h->nm_per_px = info->nm_per_px;
	h->id = ring->id;
	h->writer_pid = getpid();
	atomic_store_explicit(&h->magic, RING_MAGIC, memory_order_release);
	return ring;
fail:
	if (base != MAP_FAILED)
		munmap(base, l.total);
	close(fd);
	shm_unlink(norm);
	free(ring);
	return NULL;
}

static struct slot_hdr *slot_at(const struct ms_shmring *r, uint64_t pos)
{
	return (struct slot_hdr *)(r->base + r->slots_off + (size_t)(pos % r->nslots) * r->slot_bytes);
}

static struct meta_entry *meta_at(const struct ms_shmring *r, uint64_t pos)
{
	return (struct meta_entry *)(r->base + r->meta_off) + pos % r->nmeta;
}

static _Atomic uint64_t *slot_pixels(struct slot_hdr *s)
{
	return (_Atomic uint64_t *)(s + 1);
}

/*
 * The pixels move as relaxed atomic words: that keeps the seqlock free of
 * data races under the C11 model, at about half memcpy's speed (a 128 kB
 * frame takes some 8 us on the project's machines).
 */
static void copy_in(_Atomic uint64_t *dst, const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++) {
		uint64_t v;
		memcpy(&v, s + 8 * i, 8);
		atomic_store_explicit(&dst[i], v, memory_order_relaxed);
	}
	if (n % 8) {
		uint64_t v = 0;
		memcpy(&v, s + 8 * nw, n % 8);
		atomic_store_explicit(&dst[nw], v, memory_order_relaxed);
	}
}

static void copy_out(void *dst, const _Atomic uint64_t *src, size_t n)
{
	unsigned char *d = dst;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++) {
		uint64_t v = atomic_load_explicit(&src[i], memory_order_relaxed);
		memcpy(d + 8 * i, &v, 8);
	}
	if (n % 8) {
		uint64_t v = atomic_load_explicit(&src[nw], memory_order_relaxed);
		memcpy(d + 8 * nw, &v, n % 8);
	}
}

int ms_shmring_put(struct ms_shmring *ring, const struct ms_frame *f, uint64_t *pos, ms_err *e)
{
	if (!ring->writer)
		return ms_err_set(e, "shared-memory ring '%s' is open for reading only", ring->name);
	if (f->info.width != ring->info.width || f->info.height != ring->info.height ||
	    f->info.fmt != ring->info.fmt)
		return ms_err_set(e, "shared-memory ring '%s': frame %" PRIu64 " is %ux%u %s, the "
		                  "ring holds %ux%u %s", ring->name, f->seq, f->info.width,
		                  f->info.height, ms_pixfmt_name(f->info.fmt), ring->info.width,
		                  ring->info.height, ms_pixfmt_name(ring->info.fmt));
	uint64_t p = ring->next;
	/*
	 * Seqlock write: the odd stamp, then a release fence so that a reader
	 * whose copy saw any of the new words also sees the odd stamp after its
	 * acquire fence; the even stamp last, with release, so that a reader
	 * that loads it (acquire) sees the whole frame.
	 */
	struct meta_entry *m = meta_at(ring, p);
	atomic_store_explicit(&m->stamp, 2 * p + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&m->seq, f->seq, memory_order_relaxed);
	atomic_store_explicit(&m->t_ns, f->t_ns, memory_order_relaxed);
	atomic_store_explicit(&m->stamp, 2 * p + 2, memory_order_release);

	struct slot_hdr *s = slot_at(ring, p);
	atomic_store_explicit(&s->stamp, 2 * p + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->seq, f->seq, memory_order_relaxed);
	atomic_store_explicit(&s->t_ns, f->t_ns, memory_order_relaxed);
	copy_in(slot_pixels(s), f->pixels, ring->frame_bytes);
	atomic_store_explicit(&s->stamp, 2 * p + 2, memory_order_release);

	ring->next = p + 1;
	atomic_store_explicit(&ring->hdr->written, p + 1, memory_order_release);
	if (pos)
		*pos = p;
	return 0;
}

bool ms_shmring_wait_attached(const struct ms_shmring *ring, int timeout_ms)
{
	const struct timespec tick = { 0, 1000000 };
	for (int waited = 0;; waited++) {
		if (atomic_load_explicit(&ring->hdr->attached, memory_order_acquire) > 0)
			return true;
		if (waited >= timeout_ms)
			return false;
		nanosleep(&tick, NULL);
	}
}

static void ring_free(struct ms_shmring *r)
{
	if (r->hdr_rw)
		munmap(r->hdr_rw, r->hdr_bytes);
	if (r->base)
		munmap(r->base, r->size);
	free(r);
}

void ms_shmring_destroy(struct ms_shmring *ring)
{
	if (!ring)
		return;
	if (ring->writer) {
		atomic_store_explicit(&ring->hdr->finished, 1, memory_order_release);
		shm_unlink(ring->name);
	}
	ring_free(ring);
}

void ms_shmring_close(struct ms_shmring *r)
{
	ms_shmring_destroy(r);
}

/*
 * Readers can open a segment in the instant between the writer's shm_open
 * and its magic store; they wait this long for the writer to finish.
 */
#define OPEN_WAIT_MS 500

struct ms_shmring *ms_shmring_open(const char *name, ms_err *e)
{
	char norm[MS_SHMRING_NAME_MAX + 2];
	if (normalise_name(name, norm, e) < 0)
		return NULL;
	bool rw = true;
	int fd = shm_open(norm, O_RDWR, 0);
	if (fd < 0 && errno == EACCES) {
		rw = false;
		fd = shm_open(norm, O_RDONLY, 0);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			ms_err_set(e, "no shared-memory segment '%s' (its writer has not created "
			           "it yet, or has ended and removed it)", norm);
		else
			ms_err_set(e, "cannot open shared-memory segment '%s':", norm);
		return NULL;
	}
	struct ms_shmring *r = calloc(1, sizeof *r);
	if (!r) {
		close(fd);
		ms_err_set(e, "out of memory");
		return NULL;
	}
	memcpy(r->name, norm, strlen(norm) + 1);
	const struct timespec tick = { 0, 1000000 };
	struct stat st;
	const struct ring_hdr *h = NULL;
	size_t min = page_bytes();
	for (int waited = 0;; waited++) {
		if (fstat(fd, &st) < 0) {
			ms_err_set(e, "cannot inspect shared-memory segment '%s':", norm);
			goto fail;
		}
		if ((size_t)st.st_size >= min) {
			if (!r->base) {
				r->size = (size_t)st.st_size;
				void *p = mmap(NULL, r->size, PROT_READ, MAP_SHARED, fd, 0);
				if (p == MAP_FAILED) {
					ms_err_set(e, "cannot map shared-memory segment '%s':", norm);
					goto fail;
				}
				r->base = p;
				r->hdr = p;
				h = p;
			}
			if (atomic_load_explicit(&h->magic, memory_order_acquire) == RING_MAGIC)
				break;
		}
		if (waited >= OPEN_WAIT_MS) {
			ms_err_set(e, "shared-memory segment '%s' is not an mstk frame ring", norm);
			goto fail;
		}
		nanosleep(&tick, NULL);
	}
	if (h->version != RING_VERSION) {
		ms_err_set(e, "shared-memory ring '%s' has layout version %" PRIu32 "; this reader "
		           "knows version %u", norm, h->version, RING_VERSION);
		goto fail;
	}
	struct ms_frame_info info = {
		.width = h->width, .height = h->height, .fmt = (enum ms_pixfmt)h->fmt,
		.nm_per_px = h->nm_per_px,
	};
	struct layout l;
	if (!valid_geometry(&info) || h->nslots < MS_SHMRING_MIN_SLOTS ||
	    h->nslots > MS_SHMRING_MAX_SLOTS || h->nmeta != MS_SHMRING_META ||
	    h->hdr_bytes < sizeof(struct ring_hdr) || h->hdr_bytes % 4096 != 0 ||
	    !compute_layout(&info, h->nslots, h->hdr_bytes, &l) || l.slot_bytes != h->slot_bytes ||
	    l.meta_off != h->meta_off || l.slots_off != h->slots_off || l.total != h->total_bytes ||
	    l.total != r->size) {
		ms_err_set(e, "shared-memory ring '%s' has an inconsistent header", norm);
		goto fail;
	}
	take_shape(r, &info, h->nslots, h->nmeta, &l);
	r->id = h->id;
	if (rw) {
		void *p = mmap(NULL, r->hdr_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			r->hdr_rw = p;
			atomic_fetch_add_explicit(&r->hdr_rw->attached, 1, memory_order_release);
		}
	}
	close(fd);
	return r;
fail:
	close(fd);
	ring_free(r);
	return NULL;
}

int ms_shmring_read(struct ms_shmring *r, uint64_t pos, void *pixels, struct ms_frame *f)
{
	struct slot_hdr *s = slot_at(r, pos);
	const uint64_t want = 2 * pos + 2;
	uint64_t st = atomic_load_explicit(&s->stamp, memory_order_acquire);
	if (st < want)
		return 0;
	if (st > want)
		return -2;
	uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
	uint64_t t_ns = atomic_load_explicit(&s->t_ns, memory_order_relaxed);
	copy_out(pixels, slot_pixels(s), r->frame_bytes);
	/* Pairs with the writer's release fence: see ms_shmring_put. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->stamp, memory_order_relaxed) != want) {
		r->torn++;
		return -2;
	}
	f->seq = seq;
	f->t_ns = t_ns;
	f->info = r->info;
	f->pixels = pixels;
	return 1;
}

int ms_shmring_next(struct ms_shmring *r, uint64_t *pos, void *pixels, struct ms_frame *f,
                    uint64_t *missed, ms_err *e)
{
	for (int tries = 0; tries < NEXT_MAX_TRIES; tries++) {
		int rc = ms_shmring_read(r, *pos, pixels, f);
		if (rc == 1) {
			++*pos;
			return 1;
		}
		if (rc == 0)
			return 0;
		/*
		 * Overwritten: the newest complete frame is the one with the most
		 * time left before the writer comes round to its slot again.
		 */
		uint64_t head = atomic_load_explicit(&r->hdr->written, memory_order_acquire);
		if (head > *pos + 1) {
			*missed += head - 1 - *pos;
			*pos = head - 1;
		}
	}
	return ms_err_set(e, "shared-memory ring '%s': the writer overwrote every frame before "
	                  "it could be copied (%" PRIu32 " slots are too few for this reader)",
	                  r->name, r->nslots);
}

bool ms_shmring_meta(const struct ms_shmring *r, uint64_t pos, uint64_t *seq, uint64_t *t_ns)
{
	struct meta_entry *m = meta_at(r, pos);
	const uint64_t want = 2 * pos + 2;
	if (atomic_load_explicit(&m->stamp, memory_order_acquire) != want)
		return false;
	uint64_t s = atomic_load_explicit(&m->seq, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&m->t_ns, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&m->stamp, memory_order_relaxed) != want)
		return false;
	*seq = s;
	*t_ns = t;
	return true;
}

uint64_t ms_shmring_head(const struct ms_shmring *r)
{
	return atomic_load_explicit(&r->hdr->written, memory_order_acquire);
}

bool ms_shmring_finished(const struct ms_shmring *r)
{
	return atomic_load_explicit(&r->hdr->finished, memory_order_acquire) != 0;
}

uint64_t ms_shmring_torn(const struct ms_shmring *r)
{
	return r->torn;
}

const struct ms_frame_info *ms_shmring_info(const struct ms_shmring *r)
{
	return &r->info;
}

uint32_t ms_shmring_nslots(const struct ms_shmring *r)
{
	return r->nslots;
}

const char *ms_shmring_name(const struct ms_shmring *r)
{
	return r->name;
}

uint64_t ms_shmring_id(const struct ms_shmring *r)
{
	return r->id;
}
