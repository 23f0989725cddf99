/*
 * tiffio: multi-page grayscale TIFF and BigTIFF through libtiff, 8- and
 * 16-bit, read and written a page per frame. Reads ImageJ stacks as
 * MagScope writes them with tifffile (axes TYX): the frame count from the
 * pages (or from "images=N" for ImageJ's contiguous one-IFD stacks), nm per
 * pixel from the resolution tags and "unit=", and per-frame timestamps from
 * the ImageJ labels (epoch seconds as text). Writes the same form back, so
 * ImageJ, tifffile and MagScope's users read mstk's video, and switches to
 * BigTIFF when the file could pass 4 GiB. Each handle is independent: no
 * global state, and libtiff's messages go into the ms_err, never stderr.
 */
#ifndef MS_TIFFIO_H
#define MS_TIFFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"

struct ms_tiff_reader;
struct ms_tiff_writer;

/*
 * Open path and check every page: same size, 8 or 16 bits, one sample,
 * uncompressed or a codec libtiff decodes, data inside the file. Fails with
 * a message naming the file and what is wrong (not a TIFF, truncated, RGB,
 * 32-bit float, pages of different sizes). Opening walks every directory
 * (about 10 us a page).
 */
struct ms_tiff_reader *ms_tiff_open_read(const char *path, ms_err *e);
/* Geometry, pixel format and nm per pixel (0 if the file does not say). */
const struct ms_frame_info *ms_tiff_info(const struct ms_tiff_reader *r);
size_t ms_tiff_frames(const struct ms_tiff_reader *r);
/*
 * Whether the file carried per-frame timestamps (ImageJ labels that are
 * epoch seconds; a frame whose label is not a number reads as t_ns 0).
 */
int ms_tiff_has_timestamps(const struct ms_tiff_reader *r);
/*
 * Read frame i (0-based) into pixels (ms_frame_bytes(info) bytes, native
 * order) and its timestamp (ns since the epoch, 0 when unknown) into *t_ns.
 * Sequential reading (i, i+1, ...) is fast; any order works.
 */
int ms_tiff_read(struct ms_tiff_reader *r, size_t i, void *pixels, uint64_t *t_ns, ms_err *e);
/*
 * Where frame i's pixels lie in the file when they can be used where they
 * lie (mapped rather than read): an uncompressed page whose pixels are
 * back to back, in the host's byte order, at an offset aligned for the
 * pixel type. Returns that offset (the frame's ms_frame_bytes from there
 * were inside the file when it was opened), or UINT64_MAX: read the frame
 * with ms_tiff_read. Frame i's timestamp is ms_tiff_frame_t_ns (0 when
 * unknown), and the file's descriptor (for mmap; owned by the reader,
 * open until ms_tiff_close_read) ms_tiff_fd.
 */
uint64_t ms_tiff_frame_offset(const struct ms_tiff_reader *r, size_t i);
uint64_t ms_tiff_frame_t_ns(const struct ms_tiff_reader *r, size_t i);
int ms_tiff_fd(const struct ms_tiff_reader *r);
void ms_tiff_close_read(struct ms_tiff_reader *r);

/*
 * Create path for frames of this geometry. expected_frames (0: unknown)
 * decides classic TIFF or BigTIFF: BigTIFF when the pixels could pass
 * 4 GiB, or when the length is unknown. A classic file refuses the frame
 * that would take it past 4 GiB. The pixel data goes out contiguously as
 * it comes; the directories follow at close.
 */
struct ms_tiff_writer *ms_tiff_open_write(const char *path, const struct ms_frame_info *info,
                                          uint64_t expected_frames, ms_err *e);
/*
 * Append one page; t_ns becomes the frame's ImageJ label (epoch seconds
 * with 9 decimals). No labels are written when every t_ns is 0.
 */
int ms_tiff_write(struct ms_tiff_writer *w, const void *pixels, uint64_t t_ns, ms_err *e);
/*
 * Write the directories and the ImageJ metadata (frame count, labels,
 * scale) and close; w is freed even on failure. With no frames written
 * there is no valid TIFF to make: it fails and removes the file.
 */
int ms_tiff_close_write(struct ms_tiff_writer *w, ms_err *e);

/*
 * Options of a writer. expected_frames as for ms_tiff_open_write (ignored
 * when live). channels > 1 makes an ImageJ hyperstack: every `channels`
 * consecutive pages are one frame (axes TCYX, as MagScope's ROI video:
 * one channel per ROI), the description says channels=C, frames=T, and
 * all pages of a frame carry its timestamp. live: for a recording of
 * unknown length that must survive its writer. The file is a classic TIFF
 * unless it ends past 4 GiB (then BigTIFF, decided at close), and after
 * each ms_tiff_sync it is a valid ImageJ stack of the frames written so
 * far (one directory and "images=N", ImageJ's own form for big stacks,
 * without the timestamps, which only close writes): a killed writer
 * leaves a file that ImageJ, tifffile and ms_tiff_open_read read up to
 * the last sync.
 */
struct ms_tiff_wopts {
	uint64_t expected_frames;
	uint32_t channels;	/* 0 or 1: a plain stack */
	bool live;
	bool bigtiff;		/* BigTIFF whatever the size */
};
struct ms_tiff_writer *ms_tiff_open_write_opts(const char *path, const struct ms_frame_info *info,
					       const struct ms_tiff_wopts *o, ms_err *e);
/*
 * Flush what was written; on a live writer also make the whole frames
 * written so far readable (above). A failure leaves the writer failed.
 */
int ms_tiff_sync(struct ms_tiff_writer *w, ms_err *e);
/* Pages written so far, and bytes in the file so far. */
uint64_t ms_tiff_written(const struct ms_tiff_writer *w);
uint64_t ms_tiff_bytes(const struct ms_tiff_writer *w);

/* Whether buf (n bytes from the start of a file) looks like a TIFF. */
int ms_tiff_sniff(const void *buf, size_t n);

#endif
