/*
 * v4l2-shim: a fake V4L2 capture device for tests, loaded with LD_PRELOAD
 * (no kernel module, no hardware). Opening /dev/mstk-fake-video gives a
 * device with memory-mapped streaming that answers the ioctls a capture
 * program uses, and forwards every other call to the C library. It starts
 * in YUYV, 64x48, with 16 bytes of padding per line, at 100 frames/s;
 * offers YUYV, GREY and Y16; crops within a 640x480 sensor; has exposure
 * (1..10000 in 100 us units), automatic exposure and gain (0..100). Frame
 * k of a stream has luma (x + 2y + k) mod 256 at column x, row y of the
 * sensor (37 times that, mod 65536, in Y16), a monotonic timestamp and
 * sequence number k; a frame that comes due while no buffer is queued is
 * lost, as a driver loses it, and MS_FAKE_V4L2_SKIP=K makes the device
 * skip sequence number K. MS_FAKE_V4L2_PAD=0 takes the line padding away.
 * State is global: this is a test double for one single-threaded process.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/videodev2.h>

#define FAKE_PATH "/dev/mstk-fake-video"
#define SENSOR_W 640
#define SENSOR_H 480
#define MAXBUF 32

static int fake_fd = -1;
static uint32_t pixfmt = V4L2_PIX_FMT_YUYV;
static struct v4l2_rect crop = { 0, 0, 64, 48 };
static uint32_t fps_num = 1, fps_den = 100;	/* frame interval, s */
static int32_t exposure = 100, exposure_auto = V4L2_EXPOSURE_APERTURE_PRIORITY, gain = 0;
static unsigned nbuf;
static struct {
	void *mem;
	size_t len;
	int queued;		/* order of queueing; 0: not queued */
} bufs[MAXBUF];
static int queue_order;
static int streaming;
static uint64_t start_ns, next_k, seq_shift;

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint32_t bpp(void)
{
	return pixfmt == V4L2_PIX_FMT_GREY ? 1 : 2;
}

static uint32_t pad(void)
{
	const char *p = getenv("MS_FAKE_V4L2_PAD");
	return p ? (uint32_t)atoi(p) : 16;
}

static uint32_t bytesperline(void)
{
	return crop.width * bpp() + pad();
}

static void *next_fn(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static int fake_open(const char *path)
{
	int (*real_open)(const char *, int, ...) = next_fn("open");
	int fd = real_open("/dev/null", O_RDWR);
	if (fd >= 0)
		fake_fd = fd;
	(void)path;
	return fd;
}

int open(const char *path, int flags, ...)
{
	if (strcmp(path, FAKE_PATH) == 0)
		return fake_open(path);
	int (*real_open)(const char *, int, ...) = next_fn("open");
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (mode_t)va_arg(ap, int);
	va_end(ap);
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	if (strcmp(path, FAKE_PATH) == 0)
		return fake_open(path);
	int (*real_open)(const char *, int, ...) = next_fn("open64");
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (mode_t)va_arg(ap, int);
	va_end(ap);
	return real_open(path, flags, mode);
}

int close(int fd)
{
	int (*real_close)(int) = next_fn("close");
	if (fd == fake_fd && fd >= 0)
		fake_fd = -1;
	return real_close(fd);
}

static uint64_t period_ns(void)
{
	return (uint64_t)fps_num * 1000000000u / fps_den;
}

static void fill(unsigned i, uint64_t k)
{
	unsigned char *p = bufs[i].mem;
	uint32_t bl = bytesperline();
	for (uint32_t y = 0; y < crop.height; y++) {
		unsigned char *row = p + (size_t)y * bl;
		for (uint32_t x = 0; x < crop.width; x++) {
			unsigned v = (unsigned)(crop.left + (int)x + 2 * (crop.top + (int)y)) + (unsigned)k;
			if (pixfmt == V4L2_PIX_FMT_GREY) {
				row[x] = (unsigned char)v;
			} else if (pixfmt == V4L2_PIX_FMT_YUYV) {
				row[2 * x] = (unsigned char)v;
				row[2 * x + 1] = 128;
			} else {
				unsigned w = (37 * v) & 0xffff;
				row[2 * x] = (unsigned char)(w & 0xff);
				row[2 * x + 1] = (unsigned char)(w >> 8);
			}
		}
		memset(row + crop.width * bpp(), 0xee, pad());
	}
}

static int oldest_queued(void)
{
	int best = -1;
	for (unsigned i = 0; i < nbuf; i++)
		if (bufs[i].queued && (best < 0 || bufs[i].queued < bufs[best].queued))
			best = (int)i;
	return best;
}

/* Frames that came due with no buffer queued are lost, as in a driver. */
static void lose_unbuffered(uint64_t now)
{
	while (oldest_queued() < 0 && start_ns + next_k * period_ns() <= now)
		next_k++;
}

static void set_fmt(struct v4l2_pix_format *f)
{
	if (f->pixelformat == V4L2_PIX_FMT_GREY || f->pixelformat == V4L2_PIX_FMT_YUYV ||
	    f->pixelformat == V4L2_PIX_FMT_Y16)
		pixfmt = f->pixelformat;
	if (f->width >= 8 && f->width + (uint32_t)crop.left <= SENSOR_W)
		crop.width = f->width;
	if (f->height >= 8 && f->height + (uint32_t)crop.top <= SENSOR_H)
		crop.height = f->height;
}

static void get_fmt(struct v4l2_pix_format *f)
{
	memset(f, 0, sizeof *f);
	f->width = crop.width;
	f->height = crop.height;
	f->pixelformat = pixfmt;
	f->field = V4L2_FIELD_NONE;
	f->bytesperline = bytesperline();
	f->sizeimage = f->bytesperline * crop.height;
}

static int fail(int err)
{
	errno = err;
	return -1;
}

static int fake_ioctl(unsigned long req, void *arg)
{
	switch (req) {
	case VIDIOC_QUERYCAP: {
		struct v4l2_capability *c = arg;
		memset(c, 0, sizeof *c);
		strcpy((char *)c->driver, "mstk-fake");
		strcpy((char *)c->card, "mstk fake camera");
		c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
		c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
		return 0;
	}
	case VIDIOC_ENUM_FMT: {
		struct v4l2_fmtdesc *d = arg;
		static const uint32_t f[] = { V4L2_PIX_FMT_YUYV, V4L2_PIX_FMT_GREY, V4L2_PIX_FMT_Y16 };
		if (d->index >= 3)
			return fail(EINVAL);
		d->pixelformat = f[d->index];
		return 0;
	}
	case VIDIOC_G_FMT:
		get_fmt(&((struct v4l2_format *)arg)->fmt.pix);
		return 0;
	case VIDIOC_S_FMT:
		if (streaming || nbuf)
			return fail(EBUSY);
		set_fmt(&((struct v4l2_format *)arg)->fmt.pix);
		get_fmt(&((struct v4l2_format *)arg)->fmt.pix);
		return 0;
	case VIDIOC_QUERYCTRL: {
		struct v4l2_queryctrl *q = arg;
		uint32_t id = q->id;
		memset(q, 0, sizeof *q);
		q->id = id;
		if (id == V4L2_CID_EXPOSURE_ABSOLUTE) {
			q->minimum = 1;
			q->maximum = 10000;
		} else if (id == V4L2_CID_GAIN) {
			q->maximum = 100;
		} else if (id == V4L2_CID_EXPOSURE_AUTO) {
			q->maximum = 3;
		} else {
			return fail(EINVAL);
		}
		q->step = 1;
		return 0;
	}
	case VIDIOC_G_CTRL:
	case VIDIOC_S_CTRL: {
		struct v4l2_control *c = arg;
		int32_t *v = c->id == V4L2_CID_EXPOSURE_ABSOLUTE ? &exposure
		             : c->id == V4L2_CID_GAIN ? &gain
		             : c->id == V4L2_CID_EXPOSURE_AUTO ? &exposure_auto : NULL;
		if (!v)
			return fail(EINVAL);
		if (req == VIDIOC_G_CTRL) {
			c->value = *v;
			return 0;
		}
		/* Like uvcvideo: no manual exposure while the automatic one is on. */
		if (v == &exposure && exposure_auto != V4L2_EXPOSURE_MANUAL)
			return fail(EACCES);
		*v = c->value;
		return 0;
	}
	case VIDIOC_G_PARM:
	case VIDIOC_S_PARM: {
		struct v4l2_streamparm *p = arg;
		if (req == VIDIOC_S_PARM && p->parm.capture.timeperframe.denominator &&
		    p->parm.capture.timeperframe.numerator) {
			fps_num = p->parm.capture.timeperframe.numerator;
			fps_den = p->parm.capture.timeperframe.denominator;
			/* Like many drivers: whole frames per second only. */
			fps_den = (fps_den + fps_num / 2) / fps_num;
			fps_num = 1;
		}
		memset(&p->parm, 0, sizeof p->parm);
		p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
		p->parm.capture.timeperframe.numerator = fps_num;
		p->parm.capture.timeperframe.denominator = fps_den;
		return 0;
	}
	case VIDIOC_G_SELECTION:
	case VIDIOC_S_SELECTION: {
		struct v4l2_selection *s = arg;
		if (s->target != V4L2_SEL_TGT_CROP)
			return fail(EINVAL);
		if (req == VIDIOC_S_SELECTION) {
			if (nbuf)
				return fail(EBUSY);
			if (s->r.left < 0 || s->r.top < 0 || s->r.width < 8 || s->r.height < 8 ||
			    s->r.left + (int)s->r.width > SENSOR_W || s->r.top + (int)s->r.height > SENSOR_H)
				return fail(EINVAL);
			crop = s->r;
		}
		s->r = crop;
		return 0;
	}
	case VIDIOC_REQBUFS: {
		struct v4l2_requestbuffers *r = arg;
		if (r->memory != V4L2_MEMORY_MMAP)
			return fail(EINVAL);
		if (streaming)
			return fail(EBUSY);
		/* The caller unmapped them; only forget them. */
		memset(bufs, 0, sizeof bufs);
		nbuf = r->count > MAXBUF ? MAXBUF : r->count;
		for (unsigned i = 0; i < nbuf; i++) {
			bufs[i].len = (size_t)bytesperline() * crop.height;
			bufs[i].mem = mmap(NULL, bufs[i].len, PROT_READ | PROT_WRITE,
			                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		}
		r->count = nbuf;
		return 0;
	}
	case VIDIOC_QUERYBUF: {
		struct v4l2_buffer *b = arg;
		if (b->index >= nbuf)
			return fail(EINVAL);
		b->length = (uint32_t)bufs[b->index].len;
		b->m.offset = b->index * 4096;
		return 0;
	}
	case VIDIOC_QBUF: {
		struct v4l2_buffer *b = arg;
		if (b->index >= nbuf || bufs[b->index].queued)
			return fail(EINVAL);
		lose_unbuffered(mono_ns());
		bufs[b->index].queued = ++queue_order;
		return 0;
	}
	case VIDIOC_DQBUF: {
		struct v4l2_buffer *b = arg;
		if (!streaming)
			return fail(EINVAL);
		uint64_t now = mono_ns();
		lose_unbuffered(now);
		int i = oldest_queued();
		uint64_t due = start_ns + next_k * period_ns();
		if (i < 0 || due > now)
			return fail(EAGAIN);
		uint64_t k = next_k++;
		const char *skip = getenv("MS_FAKE_V4L2_SKIP");
		if (skip && (uint64_t)atoll(skip) == k + seq_shift)
			seq_shift++;
		fill((unsigned)i, k);
		bufs[i].queued = 0;
		memset(b, 0, sizeof *b);
		b->index = (uint32_t)i;
		b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
		b->memory = V4L2_MEMORY_MMAP;
		b->bytesused = (uint32_t)bufs[i].len;
		b->flags = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
		b->sequence = (uint32_t)(k + seq_shift);
		b->timestamp.tv_sec = (time_t)(due / 1000000000u);
		b->timestamp.tv_usec = (long)(due % 1000000000u / 1000u);
		return 0;
	}
	case VIDIOC_STREAMON:
		if (!nbuf)
			return fail(EINVAL);
		streaming = 1;
		start_ns = mono_ns();
		next_k = seq_shift = 0;
		return 0;
	case VIDIOC_STREAMOFF:
		streaming = 0;
		for (unsigned i = 0; i < nbuf; i++)
			bufs[i].queued = 0;
		return 0;
	default:
		return fail(ENOTTY);
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (fd == fake_fd && fd >= 0)
		return fake_ioctl(req, arg);
	int (*real_ioctl)(int, unsigned long, ...) = next_fn("ioctl");
	return real_ioctl(fd, req, arg);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fd == fake_fd && fd >= 0) {
		size_t i = (size_t)off / 4096;
		if (i >= nbuf || len > bufs[i].len) {
			errno = EINVAL;
			return MAP_FAILED;
		}
		return bufs[i].mem;
	}
	void *(*real_mmap)(void *, size_t, int, int, int, off_t) = next_fn("mmap");
	return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/* glibc declares fds write-only, which it is not: poll reads the fds and events. */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (n == 1 && fds[0].fd == fake_fd && fake_fd >= 0) {
		fds[0].revents = 0;
		uint64_t now = mono_ns();
		lose_unbuffered(now);
		uint64_t wait_ns = (uint64_t)(timeout < 0 ? 3600000 : timeout) * 1000000u;
		if (streaming && oldest_queued() >= 0) {
			uint64_t due = start_ns + next_k * period_ns();
			uint64_t until = due > now ? due - now : 0;
			if (until <= wait_ns) {
				struct timespec ts = { (time_t)(until / 1000000000u), (long)(until % 1000000000u) };
				nanosleep(&ts, NULL);
				fds[0].revents = POLLIN;
				return 1;
			}
		}
		struct timespec ts = { (time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u) };
		nanosleep(&ts, NULL);
		return 0;
	}
	int (*real_poll)(struct pollfd *, nfds_t, int) = next_fn("poll");
	return real_poll(fds, n, timeout);
}
