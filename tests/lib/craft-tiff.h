/*
 * craft-tiff: hand-laid little-endian classic TIFFs for the reader tests,
 * in layouts neither mstk's writer nor the tifffile fixtures make: each
 * page's directory right after its pixels (as libtiff writes), pixels at
 * odd offsets, or ImageJ's one-directory stack in the host's order. Pixel
 * (x, y) of frame t is craft_px(t, y, x) (16-bit; the low byte for u8).
 * Header-only: static functions, for the tests that include it.
 */
#ifndef MS_CRAFT_TIFF_H
#define MS_CRAFT_TIFF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline unsigned craft_px(unsigned t, unsigned y, unsigned x)
{
	return (40000u + 977u * t + 37u * y + 5u * x) & 0xffffu;
}

static inline void craft_put(FILE *f, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		fputc((int)((v >> (8 * i)) & 0xff), f);
}

static inline void craft_entry(FILE *f, uint16_t tag, uint16_t type, uint32_t count, uint32_t v)
{
	craft_put(f, tag, 2);
	craft_put(f, type, 2);
	craft_put(f, count, 4);
	craft_put(f, v, type == 3 && count == 1 ? 2 : 4);
	if (type == 3 && count == 1)
		craft_put(f, 0, 2);
}

/*
 * Write n frames of w x h (bps 8 or 16). Page k's pixels are preceded by
 * one pad byte when bit k of odd_mask is set (an odd offset); each page's
 * directory follows its pixels. imagej: instead, one directory with
 * "images=n" and the n frames back to back after it (odd_mask ignored).
 * Returns 0, or -1 if the file cannot be written.
 */
static inline int craft_tiff(const char *path, unsigned w, unsigned h, unsigned bps, unsigned n,
                             uint32_t odd_mask, int imagej)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t bpp = bps / 8, fb = (size_t)w * h * bpp;
	fwrite("II*\0", 1, 4, f);
	craft_put(f, 8, 4);	/* the first directory follows the header */
	char desc[64];
	snprintf(desc, sizeof desc, "ImageJ=1.54f\nimages=%u\nslices=%u\n", n, n);
	uint32_t dlen = (uint32_t)strlen(desc) + 1;
	for (unsigned k = 0; k < (imagej ? 1u : n); k++) {
		/* the directory at the current (even) offset, its pixels after it */
		long ifd = ftell(f);
		uint16_t ntags = imagej ? 10 : 9;
		long after = ifd + 2 + 12L * ntags + 4;
		long desc_at = after;
		long data = after + (imagej ? (long)((dlen + 1) & ~1u) : 0);
		if (!imagej && ((odd_mask >> k) & 1))
			data++;
		long next = data + (long)fb;
		next += next & 1;
		craft_put(f, ntags, 2);
		craft_entry(f, 256, 4, 1, w);
		craft_entry(f, 257, 4, 1, h);
		craft_entry(f, 258, 3, 1, bps);
		craft_entry(f, 259, 3, 1, 1);
		craft_entry(f, 262, 3, 1, 1);
		if (imagej)
			craft_entry(f, 270, 2, dlen, (uint32_t)desc_at);
		craft_entry(f, 273, 4, 1, (uint32_t)data);
		craft_entry(f, 277, 3, 1, 1);
		craft_entry(f, 278, 4, 1, h);
		craft_entry(f, 279, 4, 1, (uint32_t)fb);
		craft_put(f, !imagej && k + 1 < n ? (uint64_t)next : 0, 4);
		if (imagej) {
			fwrite(desc, 1, dlen, f);
			if (dlen & 1)
				fputc(0, f);
		}
		while (ftell(f) < data)
			fputc(0, f);
		for (unsigned t = imagej ? 0 : k; t < (imagej ? n : k + 1); t++)
			for (unsigned y = 0; y < h; y++)
				for (unsigned x = 0; x < w; x++)
					craft_put(f, craft_px(t, y, x), (int)bpp);
		while (ftell(f) < next)
			fputc(0, f);
	}
	return fclose(f) == 0 ? 0 : -1;
}

#endif
