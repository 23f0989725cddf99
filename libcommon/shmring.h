/*
 * shmring: the POSIX shared-memory frame ring. One writer (the camera) puts
 * frames into a ring of slots in a named segment under /dev/shm; any number
 * of readers map it and copy frames out. The writer never waits for anyone:
 * it overwrites the oldest slot, and a reader that fell behind learns so from
 * the slot's stamp, skips to the newest frame and counts what it missed.
 *
 * Frames are numbered by their position in the ring's history: the n-th
 * frame put has position n (from 0) and lives in slot n % nslots. Each slot
 * carries a seqlock stamp, odd (2n+1) while the writer fills it with frame n
 * and 2n+2 once that frame is complete; a reader checks the stamp before and
 * after its copy, so it never accepts a torn frame. The camera's own
 * sequence number and timestamp travel with each frame, and a metadata ring
 * far longer than the slot ring keeps them for recent positions, so that a
 * reader can say which frames it missed and when they were taken.
 *
 * Every access to shared memory is a C11 atomic (the pixels are copied as
 * relaxed 64-bit words, ordered by release/acquire fences around them), so
 * the protocol is race-free under the C11 memory model, not only in
 * practice. The segment is 0600: writer and readers run as one user.
 */
#ifndef MS_SHMRING_H
#define MS_SHMRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"

#define MS_SHMRING_MIN_SLOTS 2u
#define MS_SHMRING_MAX_SLOTS 65536u
/* Positions whose sequence number and timestamp the ring remembers. */
#define MS_SHMRING_META 32768u
/* Longest segment name, without the leading '/'. */
#define MS_SHMRING_NAME_MAX 200

struct ms_shmring;

/* --- writer --- */

/*
 * Create the segment name ("/name" or "name": letters, digits, '.', '_',
 * '-') holding nslots frames of this geometry. Fails if the name is taken
 * (O_EXCL) or if /dev/shm has no room for the ring (the space is reserved
 * now, so that the writer cannot later die of SIGBUS on a full tmpfs).
 */
struct ms_shmring *ms_shmring_create(const char *name, const struct ms_frame_info *info,
                                     uint32_t nslots, ms_err *e);
/*
 * Copy frame f into the next slot and publish it; never blocks. The
 * geometry must match the ring's. *pos (if not NULL) gets the frame's
 * position.
 */
int ms_shmring_put(struct ms_shmring *ring, const struct ms_frame *f, uint64_t *pos, ms_err *e);
/*
 * Wait up to timeout_ms for a reader to have opened the ring (at any time
 * since its creation); returns whether one has. A writer that is about to
 * destroy a ring calls it so that a reader still starting up is not left
 * with a name that no longer exists.
 */
bool ms_shmring_wait_attached(const struct ms_shmring *ring, int timeout_ms);
/*
 * Mark the ring finished, unmap it and remove its name; readers that have
 * it mapped keep reading what is in it. On a reader, the same as close.
 */
void ms_shmring_destroy(struct ms_shmring *ring);

/* --- readers --- */

/* Map an existing ring; its pixel slots are mapped read-only. */
struct ms_shmring *ms_shmring_open(const char *name, ms_err *e);
/*
 * Copy the frame at position pos into pixels (ms_shmring_info's frame
 * bytes) and fill *f (f->pixels = pixels). Returns 1 when done, 0 when the
 * frame is not written yet, -2 when the writer has overwritten it (or did so
 * during the copy: then nothing in *f or pixels is to be trusted).
 */
int ms_shmring_read(struct ms_shmring *r, uint64_t pos, void *pixels, struct ms_frame *f);
/*
 * Sequential reading: copy the frame at *pos, or, if it was overwritten,
 * skip to the newest complete frame and copy that. Returns 1 with *pos set
 * past the frame returned and *missed increased by the frames skipped; 0 if
 * the frame at *pos is not written yet; -1 (e set) if the writer overwrote
 * every frame before it could be copied (a ring far too small for the
 * reader's copy time).
 */
int ms_shmring_next(struct ms_shmring *r, uint64_t *pos, void *pixels, struct ms_frame *f,
                    uint64_t *missed, ms_err *e);
/*
 * The camera sequence number and timestamp of the frame at pos, whether or
 * not its pixels are still in the ring; false when the ring no longer
 * remembers (more than MS_SHMRING_META positions ago) or pos is not written.
 */
bool ms_shmring_meta(const struct ms_shmring *r, uint64_t pos, uint64_t *seq, uint64_t *t_ns);
/* Frames completely put so far: positions below it have been written. */
uint64_t ms_shmring_head(const struct ms_shmring *r);
/* Whether the writer has destroyed the ring (no more frames will come). */
bool ms_shmring_finished(const struct ms_shmring *r);
/* Copies this reader threw away because the writer refilled the slot meanwhile. */
uint64_t ms_shmring_torn(const struct ms_shmring *r);
/* Unmap; the segment stays. On the writer, the same as destroy. */
void ms_shmring_close(struct ms_shmring *r);

/* --- both --- */

const struct ms_frame_info *ms_shmring_info(const struct ms_shmring *r);
uint32_t ms_shmring_nslots(const struct ms_shmring *r);
/* The segment name, with its leading '/'. */
const char *ms_shmring_name(const struct ms_shmring *r);
/* A random number drawn at creation: tells a ring from a later one of the same name. */
uint64_t ms_shmring_id(const struct ms_shmring *r);
/* Bytes the segment of such a ring takes; 0 if the geometry is impossible. */
size_t ms_shmring_bytes(const struct ms_frame_info *info, uint32_t nslots);
/* A per-process name, "/mstk-TAG-PID", for a ring nobody else names. */
int ms_shmring_default_name(char *buf, size_t size, const char *tag);

#endif
