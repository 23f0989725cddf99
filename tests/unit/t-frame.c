/*
 * t-frame: pixel formats and frame sizes, the vocabulary every reader and
 * writer uses: bytes per pixel, names and their parsing (a round trip,
 * and refusal of near misses), the largest value, the size of a frame
 * (without 32-bit overflow at the largest side), and the clock.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "../lib/tap.h"

int main(void)
{
	tap_int(ms_pixfmt_bytes(MS_PIX_U8), 1, "u8 is 1 byte");
	tap_int(ms_pixfmt_bytes(MS_PIX_U16), 2, "u16 is 2 bytes");
	tap_int(ms_pixfmt_bytes(MS_PIX_NONE), 0, "no format is 0 bytes");
	tap_int(ms_pixfmt_bytes((enum ms_pixfmt)7), 0, "an unknown format is 0 bytes");

	tap_str(ms_pixfmt_name(MS_PIX_U8), "u8", "name of u8");
	tap_str(ms_pixfmt_name(MS_PIX_U16), "u16", "name of u16");
	tap_str(ms_pixfmt_name(MS_PIX_NONE), "none", "name of no format");
	tap_str(ms_pixfmt_name((enum ms_pixfmt)7), "none", "name of an unknown format");

	tap_int(ms_pixfmt_parse("u8"), MS_PIX_U8, "parse u8");
	tap_int(ms_pixfmt_parse("u16"), MS_PIX_U16, "parse u16");
	const char *bad[] = { "", "U8", "u16 ", "u", "u32", "u1", "u80", "none", "8", NULL };
	for (int i = 0; bad[i]; i++)
		tap_int(ms_pixfmt_parse(bad[i]), MS_PIX_NONE, "parse '%s' is no format", bad[i]);
	for (enum ms_pixfmt f = MS_PIX_U8; f <= MS_PIX_U16; f++)
		tap_int(ms_pixfmt_parse(ms_pixfmt_name(f)), f, "name and parse round-trip for %s",
		        ms_pixfmt_name(f));

	tap_int(ms_pixfmt_max(MS_PIX_U8), 255, "u8 max is 255");
	tap_int(ms_pixfmt_max(MS_PIX_U16), 65535, "u16 max is 65535");

	struct ms_frame_info info = { 640, 480, MS_PIX_U8, 0 };
	tap_int((long long)ms_frame_bytes(&info), 640 * 480, "640x480 u8 frame bytes");
	info.fmt = MS_PIX_U16;
	tap_int((long long)ms_frame_bytes(&info), 640 * 480 * 2, "640x480 u16 frame bytes");
	info = (struct ms_frame_info){ 7, 3, MS_PIX_U16, 0 };
	tap_int((long long)ms_frame_bytes(&info), 42, "odd sizes: 7x3 u16 is 42 bytes, no row padding");
	info = (struct ms_frame_info){ MS_FRAME_MAX_SIDE, MS_FRAME_MAX_SIDE, MS_PIX_U16, 0 };
	tap_int((long long)ms_frame_bytes(&info), 2LL * 65536 * 65536,
	        "the largest frame's size does not overflow 32 bits");
	info.fmt = MS_PIX_NONE;
	tap_int((long long)ms_frame_bytes(&info), 0, "a frame of no format has no bytes");
	tap_int(MS_FRAME_MAX_SIDE, 65536, "the largest side is 65536");

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t before = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	uint64_t now = ms_now_ns();
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t after = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	tap_ok(before <= now && now <= after, "ms_now_ns is the realtime clock in ns (%llu)",
	       (unsigned long long)now);
	tap_ok(now > UINT64_C(1600000000) * 1000000000u, "ms_now_ns counts from the epoch");
	return tap_done();
}
