/*
 * frame: what a frame is, everywhere in mstk. A frame is height rows of
 * width pixels, row-major, tightly packed, in one of the pixel formats
 * below (native byte order in memory), with a sequence number and a
 * timestamp in nanoseconds since the Unix epoch (0: unknown). The
 * frame_info part is what a stream or a file says once, in its header.
 */
#ifndef MS_FRAME_H
#define MS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum ms_pixfmt {
	MS_PIX_NONE = 0,
	MS_PIX_U8 = 1,
	MS_PIX_U16 = 2,
};

struct ms_frame_info {
	uint32_t width, height;
	enum ms_pixfmt fmt;
	double nm_per_px;	/* 0: not known */
};

struct ms_frame {
	uint64_t seq;		/* camera sequence number, counts from 0 */
	uint64_t t_ns;		/* ns since the epoch; 0: not known */
	struct ms_frame_info info;
	const void *pixels;	/* width * height * bytes per pixel */
};

/* Largest side a frame may have; guards readers against absurd headers. */
#define MS_FRAME_MAX_SIDE 65536u

size_t ms_pixfmt_bytes(enum ms_pixfmt fmt);
const char *ms_pixfmt_name(enum ms_pixfmt fmt);	/* "u8", "u16" */
/* Parse "u8"/"u16"; returns MS_PIX_NONE for anything else. */
enum ms_pixfmt ms_pixfmt_parse(const char *s);
/* The largest pixel value of the format: 255 or 65535. */
unsigned ms_pixfmt_max(enum ms_pixfmt fmt);
/* Bytes in one frame of this geometry. */
size_t ms_frame_bytes(const struct ms_frame_info *info);

/* The current time in ns since the epoch (CLOCK_REALTIME). */
uint64_t ms_now_ns(void);

#endif
