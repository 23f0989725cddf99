/* frame: pixel formats and frame sizes; see frame.h. */
#include "frame.h"

#include <string.h>
#include <time.h>

size_t ms_pixfmt_bytes(enum ms_pixfmt fmt)
{
	switch (fmt) {
	case MS_PIX_U8: return 1;
	case MS_PIX_U16: return 2;
	default: return 0;
	}
}

const char *ms_pixfmt_name(enum ms_pixfmt fmt)
{
	switch (fmt) {
	case MS_PIX_U8: return "u8";
	case MS_PIX_U16: return "u16";
	default: return "none";
	}
}

enum ms_pixfmt ms_pixfmt_parse(const char *s)
{
	if (strcmp(s, "u8") == 0)
		return MS_PIX_U8;
	if (strcmp(s, "u16") == 0)
		return MS_PIX_U16;
	return MS_PIX_NONE;
}

unsigned ms_pixfmt_max(enum ms_pixfmt fmt)
{
	return fmt == MS_PIX_U16 ? 65535u : 255u;
}

size_t ms_frame_bytes(const struct ms_frame_info *info)
{
	return (size_t)info->width * info->height * ms_pixfmt_bytes(info->fmt);
}

uint64_t ms_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
