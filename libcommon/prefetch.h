/*
 * prefetch: reading overlapped with processing. A thread of its own reads
 * frames from a framesrc into a few batch buffers while the caller works
 * on the previous batch, so a tracker on a multi-GB stack never waits for
 * the disk and never holds more than nbuf batches in memory, however long
 * the file. Uncompressed TIFF pages are not read but mapped, a window of
 * the file per batch, faulted in by the reader thread and unmapped when
 * the batch's buffer is filled again: no copy, and a resident size
 * bounded by the batches in flight. On a live stream a batch is closed
 * early when no frame is waiting, so latency stays at one frame when the
 * camera is slow. The
 * source belongs to the reader thread: its drop callback
 * (ms_framesrc_on_drop) runs there.
 */
#ifndef MS_PREFETCH_H
#define MS_PREFETCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "framesrc.h"

struct ms_frame_batch {
	size_t nframes;
	size_t frame_bytes;
	/*
	 * Frame i's pixels: in place in a mapping of the file (an uncompressed
	 * TIFF page, see ms_framesrc_next_mapped), or a copy in the batch's
	 * own buffer (anything else).
	 */
	const unsigned char **frame;
	uint64_t *t_ns, *seq;
	/*
	 * Frames the source had missed (ms_framesrc_dropped) when this batch
	 * was closed: read here, the count needs no lock against the reader.
	 */
	uint64_t dropped;
};

struct ms_prefetch;

/*
 * Start reading src in batches of at most max_frames, into nbuf (>= 2)
 * buffers. src must not be used by the caller until ms_prefetch_stop.
 * When *interrupt (may be NULL) becomes non-zero - a signal handler's
 * flag - a waiting ms_prefetch_next returns 0 within 100 ms, so a quiet
 * input cannot keep a program from stopping.
 */
struct ms_prefetch *ms_prefetch_start(struct ms_framesrc *src, size_t max_frames, int nbuf,
                                      const volatile sig_atomic_t *interrupt, ms_err *e);
/* The same; flags MS_PREFETCH_COPY: read every frame into the buffers, map none. */
enum { MS_PREFETCH_COPY = 1 };
struct ms_prefetch *ms_prefetch_start_flags(struct ms_framesrc *src, size_t max_frames, int nbuf,
                                            const volatile sig_atomic_t *interrupt, int flags,
                                            ms_err *e);
/*
 * The next batch, in order: 1 and *b set, 0 after the last batch, -1 when
 * the source failed (e says why; batches before it were all delivered).
 * Give every batch back with ms_prefetch_release before asking for more
 * than nbuf - 1 others.
 */
int ms_prefetch_next(struct ms_prefetch *p, struct ms_frame_batch **b, ms_err *e);
void ms_prefetch_release(struct ms_prefetch *p, struct ms_frame_batch *b);
/*
 * Whether ms_prefetch_next would return at once: a batch is ready, or the
 * reader has finished. A caller with work in hand can tell from it
 * whether to do that work now or alongside the next batch.
 */
bool ms_prefetch_ready(struct ms_prefetch *p);
/* Stop the reader (even if it waits for input) and free everything. */
void ms_prefetch_stop(struct ms_prefetch *p);

/*
 * Frames per batch that keep one batch under limit_bytes (at least 1, at
 * most want): memory is bounded by frame size, not by the caller's wish.
 */
size_t ms_prefetch_batch_frames(size_t want, size_t frame_bytes, size_t limit_bytes);

#endif
