/*
 * framesrc: one way to read frames, whatever they arrive in. A source is a
 * list of TIFF files read one after the other, or one frame stream (a
 * file, a FIFO, or standard input given as "-" or as no input at all).
 * Every file of a source must have the same geometry and pixel format.
 * Programs that consume frames (ms-track, ms-zlut, ms-find, ms-info) read
 * through this and never care which it was.
 */
#ifndef MS_FRAMESRC_H
#define MS_FRAMESRC_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"
#include "fstream.h"

struct ms_framesrc;

/*
 * Open the inputs: npaths == 0, or a single "-", reads a frame stream from
 * standard input. A path is sniffed: a TIFF, or a file holding a frame
 * stream. TIFFs may be many; a frame stream must be the only input.
 */
struct ms_framesrc *ms_framesrc_open(char *const *paths, int npaths, ms_err *e);
const struct ms_frame_info *ms_framesrc_info(const struct ms_framesrc *s);
/* Total frames if known in advance (TIFF files), or -1 (streams). */
int64_t ms_framesrc_total(const struct ms_framesrc *s);
/* Name of the input the last frame came from, for messages. */
const char *ms_framesrc_name(const struct ms_framesrc *s);
/*
 * The next frame: 1 (pixels valid until the next call), 0 at the end of
 * the last input, -1 on error. Frames are numbered across all inputs in
 * f->seq for TIFFs (streams keep the camera's sequence numbers).
 */
int ms_framesrc_next(struct ms_framesrc *s, struct ms_frame *f, ms_err *e);
/* Reads of a stream give up once fd is readable (see ms_freader_set_wake_fd). */
void ms_framesrc_set_wake_fd(struct ms_framesrc *s, int fd);
/* The same with the pixels in dst (frame_bytes): a TIFF page is read
 * straight into it, a stream's frame copied; f->pixels is dst. */
int ms_framesrc_next_into(struct ms_framesrc *s, struct ms_frame *f, void *dst, ms_err *e);
/*
 * A window of a TIFF file mapped read-only, where frames are used in
 * place: no copy, and what the kernel's page cache already holds costs no
 * memory of our own. A zeroed struct is an empty window.
 */
struct ms_framemap {
	void *base;		/* NULL: empty */
	size_t len;
	uint64_t off;		/* file offset of base */
	int input;		/* which of the inputs */
};
/*
 * The next frame in place, when it can be: an uncompressed TIFF page whose
 * pixels lie back to back in the host's order (ms_tiff_frame_offset). If
 * m is empty, a window of about window bytes of the file from this frame
 * on is mapped into it; if m holds the frame, it is used. Returns 1 with
 * f->pixels inside m (faulted in, valid until ms_framemap_release), 0 at
 * the end, -1 on error (a file cut short since it was opened is one), or
 * 2 when the frame cannot be mapped (its page, or the file) or lies
 * outside m: then it is not consumed (read it with ms_framesrc_next_into,
 * or release m and try again). A mapping stays valid after the source moves on to another file
 * or is closed. Truncating a file while its frames are mapped and in use
 * is a SIGBUS (the pages were there when this returned).
 */
int ms_framesrc_next_mapped(struct ms_framesrc *s, struct ms_frame *f, struct ms_framemap *m,
                            size_t window, ms_err *e);
void ms_framemap_release(struct ms_framemap *m);
/* Whether the next frame is at hand without waiting (always, for files). */
bool ms_framesrc_ready(const struct ms_framesrc *s);
/*
 * Frames a shared-memory stream's ring overwrote before they were read
 * (ms_freader_dropped); 0 for files and inline streams, which lose nothing.
 */
uint64_t ms_framesrc_dropped(const struct ms_framesrc *s);
/* How full the stream's ring or pipe is, 0..1, and the frames overwritten
 * but not yet found missing (ms_freader_fill); -1 for files, which never
 * make frames wait. Safe from another thread. */
int ms_framesrc_fill(const struct ms_framesrc *s, double *fill, uint64_t *overrun);
/* Report each of those frames as it is found missing (ms_freader_on_drop). */
void ms_framesrc_on_drop(struct ms_framesrc *s, ms_freader_drop_fn *fn, void *ctx);
/* How the frames arrive: "tiff", or the stream's transport ("inline", "shm"). */
const char *ms_framesrc_transport(const struct ms_framesrc *s);
void ms_framesrc_close(struct ms_framesrc *s);

#endif
