/* framesrc: TIFF files or a frame stream behind one reader; see framesrc.h. */
#include "framesrc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fstream.h"
#include "tiffio.h"

/* Linux 5.14; older headers lack it, and older kernels say EINVAL. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

struct ms_framesrc {
	char *const *paths;
	int npaths;
	int cur;			/* index of the open TIFF */
	struct ms_tiff_reader *tiff;
	size_t tiff_frame;
	struct ms_freader *stream;
	int stream_fd;
	struct ms_frame_info info;
	int64_t total;
	uint64_t next_seq;
	void *pixels;
	const char *name;
};

/* Whether path starts like a TIFF (1), a frame stream (2), or neither (0). */
static int sniff_path(const char *path, ms_err *e)
{
	/* A FIFO or socket cannot be read twice: only a frame stream can come from it. */
	struct stat st;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return ms_err_set(e, "%s: is a directory, neither a TIFF nor a frame stream", path);
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
			return 2;
	}
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return ms_err_set(e, "cannot open '%s':", path);
	unsigned char buf[16];
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0)
		return ms_err_set(e, "cannot read '%s':", path);
	if (ms_tiff_sniff(buf, (size_t)n))
		return 1;
	if (ms_fstream_sniff(buf, (size_t)n))
		return 2;
	if (n == 0)
		return ms_err_set(e, "%s: empty file, neither a TIFF nor a frame stream", path);
	return ms_err_set(e, "%s: neither a TIFF nor a frame stream", path);
}

static bool same_geometry(const struct ms_frame_info *a, const struct ms_frame_info *b)
{
	return a->width == b->width && a->height == b->height && a->fmt == b->fmt;
}

static int open_tiff(struct ms_framesrc *s, int i, ms_err *e)
{
	s->tiff = ms_tiff_open_read(s->paths[i], e);
	if (!s->tiff)
		return -1;
	s->cur = i;
	s->tiff_frame = 0;
	s->name = s->paths[i];
	return 0;
}

struct ms_framesrc *ms_framesrc_open(char *const *paths, int npaths, ms_err *e)
{
	struct ms_framesrc *s = calloc(1, sizeof *s);
	if (!s) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	s->paths = paths;
	s->npaths = npaths;
	s->stream_fd = -1;
	if (npaths == 0 || (npaths == 1 && strcmp(paths[0], "-") == 0)) {
		s->name = "standard input";
		s->stream = ms_freader_open(STDIN_FILENO, s->name, e);
		if (!s->stream)
			goto fail;
		s->info = *ms_freader_info(s->stream);
		s->total = -1;
		return s;
	}
	/* Check every input up front: a bad file 3 hours into a batch job is too late. */
	int kind0 = 0;
	for (int i = 0; i < npaths; i++) {
		if (strcmp(paths[i], "-") == 0) {
			ms_err_set(e, "standard input ('-') must be the only input");
			goto fail;
		}
		int kind = sniff_path(paths[i], e);
		if (kind < 0)
			goto fail;
		if (kind == 2 && npaths > 1) {
			ms_err_set(e, "%s: a frame stream must be the only input", paths[i]);
			goto fail;
		}
		if (i == 0)
			kind0 = kind;
	}
	if (kind0 == 2) {
		s->stream_fd = open(paths[0], O_RDONLY);
		if (s->stream_fd < 0) {
			ms_err_set(e, "cannot open '%s':", paths[0]);
			goto fail;
		}
		s->name = paths[0];
		s->stream = ms_freader_open(s->stream_fd, paths[0], e);
		if (!s->stream)
			goto fail;
		s->info = *ms_freader_info(s->stream);
		s->total = -1;
		return s;
	}
	s->total = 0;
	for (int i = 0; i < npaths; i++) {
		if (open_tiff(s, i, e) < 0)
			goto fail;
		const struct ms_frame_info *info = ms_tiff_info(s->tiff);
		if (i == 0) {
			s->info = *info;
		} else if (!same_geometry(info, &s->info)) {
			ms_err_set(e, "%s: frames are %ux%u %s, but %s has %ux%u %s", paths[i],
			           info->width, info->height, ms_pixfmt_name(info->fmt), paths[0],
			           s->info.width, s->info.height, ms_pixfmt_name(s->info.fmt));
			goto fail;
		}
		s->total += (int64_t)ms_tiff_frames(s->tiff);
		ms_tiff_close_read(s->tiff);
		s->tiff = NULL;
	}
	if (open_tiff(s, 0, e) < 0)
		goto fail;
	s->pixels = malloc(ms_frame_bytes(&s->info));
	if (!s->pixels) {
		ms_err_set(e, "out of memory for a %ux%u frame", s->info.width, s->info.height);
		goto fail;
	}
	return s;
fail:
	ms_framesrc_close(s);
	return NULL;
}

const struct ms_frame_info *ms_framesrc_info(const struct ms_framesrc *s)
{
	return &s->info;
}

int64_t ms_framesrc_total(const struct ms_framesrc *s)
{
	return s->total;
}

const char *ms_framesrc_name(const struct ms_framesrc *s)
{
	return s->name;
}

int ms_framesrc_next(struct ms_framesrc *s, struct ms_frame *f, ms_err *e)
{
	return ms_framesrc_next_into(s, f, NULL, e);
}

/* Move on to the TIFF that holds the next frame: 1, or 0 at the end, -1 on error. */
static int next_tiff(struct ms_framesrc *s, ms_err *e)
{
	while (s->tiff && s->tiff_frame >= ms_tiff_frames(s->tiff)) {
		ms_tiff_close_read(s->tiff);
		s->tiff = NULL;
		if (s->cur + 1 >= s->npaths)
			return 0;
		if (open_tiff(s, s->cur + 1, e) < 0)
			return -1;
		/* The file may have changed since open: check again. */
		if (!same_geometry(ms_tiff_info(s->tiff), &s->info))
			return ms_err_set(e, "%s: frame geometry changed while reading", s->name);
	}
	return s->tiff ? 1 : 0;
}

int ms_framesrc_next_into(struct ms_framesrc *s, struct ms_frame *f, void *dst, ms_err *e)
{
	if (s->stream) {
		int rc = ms_freader_next(s->stream, f, e);
		if (rc > 0 && dst) {
			memcpy(dst, f->pixels, ms_frame_bytes(&f->info));
			f->pixels = dst;
		}
		return rc;
	}
	int rc = next_tiff(s, e);
	if (rc <= 0)
		return rc;
	uint64_t t_ns;
	void *px = dst ? dst : s->pixels;
	if (ms_tiff_read(s->tiff, s->tiff_frame, px, &t_ns, e) < 0)
		return -1;
	s->tiff_frame++;
	f->seq = s->next_seq++;
	f->t_ns = t_ns;
	f->info = *ms_tiff_info(s->tiff);
	f->pixels = px;
	return 1;
}

/*
 * Map [off, off + len) of the open TIFF (fsize bytes long) into m, from
 * the page that holds off on, clipped to the file's end. False when the
 * file cannot be mapped (a file system without mmap, no address space):
 * then it is read.
 */
static bool map_window(struct ms_framesrc *s, struct ms_framemap *m, uint64_t off, size_t len,
                       uint64_t fsize)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = off - off % page, end = len < fsize - off ? off + len : fsize;
	if (end - start > SIZE_MAX)
		return false;
	void *p = mmap(NULL, (size_t)(end - start), PROT_READ, MAP_SHARED, ms_tiff_fd(s->tiff),
	               (off_t)start);
	if (p == MAP_FAILED)
		return false;
	m->base = p;
	m->len = (size_t)(end - start);
	m->off = start;
	m->input = s->cur;
	return true;
}

int ms_framesrc_next_mapped(struct ms_framesrc *s, struct ms_frame *f, struct ms_framemap *m,
                            size_t window, ms_err *e)
{
	if (s->stream)
		return 2;
	int rc = next_tiff(s, e);
	if (rc <= 0)
		return rc;
	uint64_t off = ms_tiff_frame_offset(s->tiff, s->tiff_frame);
	size_t fb = ms_frame_bytes(&s->info);
	if (off == UINT64_MAX)
		return 2;
	if (m->base && (m->input != s->cur || off < m->off || off - m->off > m->len ||
	                fb > m->len - (off - m->off)))
		return 2;
	/*
	 * Past the end of a file, a mapping has no pages (SIGBUS) or, in the
	 * last one, zeros: a file cut short since it was opened must be an
	 * error, as it is for a read.
	 */
	struct stat st;
	if (fstat(ms_tiff_fd(s->tiff), &st) < 0)
		return ms_err_set(e, "cannot read '%s':", s->name);
	if ((uint64_t)st.st_size < off + fb)
		return ms_err_set(e, "'%s' is truncated: frame %zu ends past the end of the file",
		                  s->name, s->tiff_frame);
	if (!m->base && !map_window(s, m, off, window > fb ? window : fb, (uint64_t)st.st_size))
		return 2;
	unsigned char *px = (unsigned char *)m->base + (off - m->off);
	/*
	 * Fault the pages in here, in the reader, not in whoever uses the
	 * pixels: a disk read waits here. Kernels before 5.14 do not know the
	 * advice; then the pages come in on first touch.
	 */
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)px - (uintptr_t)px % page;
	if (madvise((void *)a, (uintptr_t)px + fb - a, MADV_POPULATE_READ) != 0 && errno != EINVAL) {
		if (errno == EFAULT)
			return ms_err_set(e, "'%s' is truncated: frame %zu ends past the end of the file",
			                  s->name, s->tiff_frame);
		return ms_err_set(e, "cannot read frame %zu of '%s':", s->tiff_frame, s->name);
	}
	f->seq = s->next_seq++;
	f->t_ns = ms_tiff_frame_t_ns(s->tiff, s->tiff_frame);
	f->info = *ms_tiff_info(s->tiff);
	f->pixels = px;
	s->tiff_frame++;
	return 1;
}

void ms_framemap_release(struct ms_framemap *m)
{
	if (m->base)
		munmap(m->base, m->len);
	*m = (struct ms_framemap){ 0 };
}

void ms_framesrc_set_wake_fd(struct ms_framesrc *s, int fd)
{
	if (s->stream)
		ms_freader_set_wake_fd(s->stream, fd);
}

bool ms_framesrc_ready(const struct ms_framesrc *s)
{
	return s->stream ? ms_freader_ready(s->stream) : true;
}

uint64_t ms_framesrc_dropped(const struct ms_framesrc *s)
{
	return s->stream ? ms_freader_dropped(s->stream) : 0;
}

int ms_framesrc_fill(const struct ms_framesrc *s, double *fill, uint64_t *overrun)
{
	*overrun = 0;
	return s->stream ? ms_freader_fill(s->stream, fill, overrun) : -1;
}

void ms_framesrc_on_drop(struct ms_framesrc *s, ms_freader_drop_fn *fn, void *ctx)
{
	if (s->stream)
		ms_freader_on_drop(s->stream, fn, ctx);
}

const char *ms_framesrc_transport(const struct ms_framesrc *s)
{
	return s->stream ? ms_freader_transport(s->stream) : "tiff";
}

void ms_framesrc_close(struct ms_framesrc *s)
{
	if (!s)
		return;
	ms_freader_close(s->stream);
	if (s->stream_fd >= 0)
		close(s->stream_fd);
	if (s->tiff)
		ms_tiff_close_read(s->tiff);
	free(s->pixels);
	free(s);
}
