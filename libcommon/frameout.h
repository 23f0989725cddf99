/*
 * frameout: a producer's frame output, as ms-simulate and ms-capture write
 * it. Without --shm it is a frame stream with the pixels inline; with
 * --shm the producer creates a shared-memory ring (shmring.h), puts every
 * frame into it once, and writes only descriptors on the stream (the
 * descriptor mode of fstream.h), so that a slow reader never holds the
 * camera back. This module owns those options, the naming of rings - under
 * ms-run $MS_SHM_PREFIX, the stage's name and the pid (so that ms-run frees
 * them whatever becomes of the producer), alone /mstk-TAG-PID - the
 * removal, at the next start, of rings that crashed producers of the same
 * TAG left, the default ring size, and removing the ring at every end:
 * ms_frameout_close and ms_frameout_abandon do, and ms_frameout_unlink is
 * for an exit handler, so that even ms_die leaves nothing in /dev/shm.
 */
#ifndef MS_FRAMEOUT_H
#define MS_FRAMEOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "err.h"
#include "frame.h"

#define MS_KEY_FRAMEOUT (MS_KEY_LONG + 150)
#define MS_KEY_FRAMEOUT_SHM (MS_KEY_FRAMEOUT + 0)

#define MS_FRAMEOUT_OPTS \
	{ "shm", MS_KEY_FRAMEOUT + 0, NULL, "pixels in a shared-memory ring; the stream carries descriptors", NULL }, \
	{ "shm-name", MS_KEY_FRAMEOUT + 1, "NAME", "the ring's name (implies --shm; default /mstk-TAG-PID)", NULL }, \
	{ "slots", MS_KEY_FRAMEOUT + 2, "N", "frames the ring holds (implies --shm; 128, at most 256 MiB)", NULL }

/* The ring's default size: this many slots, fewer if they exceed the bytes. */
#define MS_FRAMEOUT_SLOTS 128
#define MS_FRAMEOUT_RING_BYTES ((uint64_t)256 << 20)

struct ms_frameout_opts {
	bool shm;
	const char *name;	/* NULL: the default name */
	long slots;		/* 0: the default */
};

/*
 * Apply option key with argument arg to o. Returns 1 if key was one of
 * MS_FRAMEOUT_OPTS, 0 otherwise; a bad value is a usage error (exit 2).
 */
int ms_frameout_apply(struct ms_frameout_opts *o, const struct ms_cli *c, int key, const char *arg);

struct ms_frameout;

/*
 * Start the output on fd (name it in messages as fdname): with o->shm,
 * create the ring first (named as above, tag being the program's short
 * name, "simulate"), then write the stream header.
 */
struct ms_frameout *ms_frameout_open(int fd, const struct ms_frame_info *info,
                                     const struct ms_frameout_opts *o, const char *tag,
                                     const char *fdname, ms_err *e);
/* Write one frame; never waits for a reader in shm mode. */
int ms_frameout_put(struct ms_frameout *o, const struct ms_frame *f, ms_err *e);
/*
 * Write the end record and free o, removing the ring (readers that have
 * it mapped read on to the end). On a pipe, waits up to a few seconds for
 * the reader to have attached, so that a short stream is not gone before
 * it looks (see ms_fwriter_close).
 */
int ms_frameout_close(struct ms_frameout *o, ms_err *e);
/*
 * End a camera's stream: ms_frameout_close, or ms_frameout_abandon when
 * *reader_gone says the reader has left already. A reader that leaves
 * during the close (EPIPE) sets *reader_gone and is no error: a reader that
 * stops reading is a normal end of a camera's stream.
 */
int ms_frameout_finish(struct ms_frameout *o, bool *reader_gone, ms_err *e);
/* Free o without an end record, removing the ring (a reader that went away). */
void ms_frameout_abandon(struct ms_frameout *o);
/* Remove the ring's name only; for an exit handler (NULL is fine). */
void ms_frameout_unlink(const struct ms_frameout *o);
/* The ring's name ("/mstk-simulate-4242"), or NULL for an inline stream. */
const char *ms_frameout_ring(const struct ms_frameout *o);
uint32_t ms_frameout_slots(const struct ms_frameout *o);

/*
 * The name a producer's ring gets by default, into buf: "/" PREFIX STAGE
 * "-" PID with $MS_SHM_PREFIX and $MS_STAGE (tag when $MS_STAGE is unset)
 * when ms-run set them, else "/mstk-" TAG "-" PID.
 */
int ms_frameout_default_name(char *buf, size_t size, const char *tag, ms_err *e);
/*
 * Remove /dev/shm/mstk-TAG-PID segments whose process is gone: what a
 * producer killed outright left. Returns how many were removed.
 */
int ms_frameout_clean_stale(const char *tag);
/* Slots of the default ring for frames of this geometry. */
uint32_t ms_frameout_default_slots(const struct ms_frame_info *info);

#endif
