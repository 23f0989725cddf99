/*
 * fstream: the frame stream, mstk's netpbm. A short text header says what
 * follows, then fixed binary records carry the frames, then an end record
 * carries the count, so that a reader can tell a finished stream from a
 * truncated one. It works over any file descriptor: a pipe, a FIFO, a
 * file. The layout is in ms-formats(5):
 *
 *   MSFRAMES 1\n WIDTH w\n HEIGHT h\n FORMAT u8|u16\n NM_PER_PX x\n
 *   ENDIAN little\n TRANSPORT inline\n ENDHDR\n
 *   then per frame a 32-byte record header ("MSFR", kind, seq, t_ns,
 *   payload bytes) and the payload; last a record of kind END whose seq
 *   field holds the number of frames written.
 *
 * TRANSPORT names how pixels travel; "inline" puts them in the payload.
 * A reader refuses transports it does not know, so that a new transport
 * cannot be misread by an old reader.
 *
 * TRANSPORT shm (the descriptor mode) leaves the pixels in a shared-memory
 * ring (shmring.h), written once by the camera; the header adds
 * "SHM /segment-name\n SLOTS n\n SHM_ID x\n" and each frame record's
 * 16-byte payload is a descriptor {u64 position in the ring, u32 slot,
 * u32 0}. The writer never blocks on a slow reader: the ring overwrites,
 * and when the pipe itself is full the writer leaves out descriptors (the
 * reader learns from the next one, or from the end record, that those
 * frames exist). The reader copies each frame out of the ring; when the
 * ring has overwritten frames it has not read, it skips to the newest,
 * counts the missed frames (ms_freader_dropped) and reports each one with
 * its sequence number and timestamp (ms_freader_on_drop). The end record
 * counts the frames put, so a finished stream checks delivered + dropped.
 * A reader starts at the first descriptor it is sent, so one that joins a
 * running stream (a consumer restarted behind ms-run's relay) neither
 * replays old frames nor counts the frames before it as missed.
 */
#ifndef MS_FSTREAM_H
#define MS_FSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"

#define MS_FSTREAM_MAGIC "MSFRAMES"
#define MS_FSTREAM_VERSION 1
#define MS_FSTREAM_HEADER_MAX 4096

enum ms_record_kind {
	MS_REC_FRAME = 1,
	MS_REC_END = 2,
};

struct ms_fwriter;
struct ms_freader;
struct ms_shmring;

/* Write the header to fd. name is used in messages ("standard output"). */
struct ms_fwriter *ms_fwriter_open(int fd, const struct ms_frame_info *info,
                                   const char *name, ms_err *e);
/*
 * Write a descriptor-mode header naming ring (which the caller created and
 * destroys after ms_fwriter_close); ms_fwriter_put then puts each frame into
 * the ring and writes only its descriptor to fd, never waiting for the
 * reader. ms_fwriter_close writes the end record and, when fd is a pipe or
 * a socket whose reader has not opened the ring yet, waits up to
 * MS_FSTREAM_SHM_LINGER_MS for it, so that a short stream is not gone
 * before its reader looks.
 */
struct ms_fwriter *ms_fwriter_open_shm(int fd, struct ms_shmring *ring, const char *name,
                                       ms_err *e);
#define MS_FSTREAM_SHM_LINGER_MS 5000
/* Write one frame; its geometry must match the header. */
int ms_fwriter_put(struct ms_fwriter *w, const struct ms_frame *f, ms_err *e);
/* Write the end record and free w; fd stays open. */
int ms_fwriter_close(struct ms_fwriter *w, ms_err *e);
/* Free w without an end record (the stream then reads as truncated). */
void ms_fwriter_abandon(struct ms_fwriter *w);

/* Read and check the header from fd. */
struct ms_freader *ms_freader_open(int fd, const char *name, ms_err *e);
const struct ms_frame_info *ms_freader_info(const struct ms_freader *r);
/*
 * The next frame: 1 and *f filled (its pixels stay valid until the next
 * call), 0 at a proper end, -1 on a truncated or corrupt stream.
 */
int ms_freader_next(struct ms_freader *r, struct ms_frame *f, ms_err *e);
/*
 * Make reads give up (ECANCELED, so the call fails) once fd becomes
 * readable: the way to stop a thread blocked on a quiet input. -1 clears.
 */
void ms_freader_set_wake_fd(struct ms_freader *r, int fd);
/*
 * Whether the next record can be read without waiting (buffered bytes or a
 * readable descriptor): a live consumer uses it to close a batch early
 * rather than hold frames back while the camera is quiet.
 */
bool ms_freader_ready(const struct ms_freader *r);
/* Frames read so far. */
uint64_t ms_freader_count(const struct ms_freader *r);
/* "inline" or "shm". */
const char *ms_freader_transport(const struct ms_freader *r);
/*
 * Frames the reader missed because the shared-memory ring overwrote them
 * before it got to them (always 0 for an inline stream, whose writer waits).
 */
uint64_t ms_freader_dropped(const struct ms_freader *r);
/*
 * How full the buffer that frames wait in before this reader is, 0..1: for
 * the shm transport, frames the writer has put in the ring that this
 * reader has not read, as a share of its slots (at 1, the next frame
 * overwrites one it has not read); for an inline stream on a pipe or FIFO,
 * the share of the pipe's buffer in use. -1 when there is no such buffer
 * (a regular file). *overrun gets the frames the ring has overwritten that
 * the reader has not yet found missing (it counts them as dropped when it
 * next reads): a stalled reader's losses, as they happen. Safe to call
 * from another thread than the reader's.
 */
int ms_freader_fill(const struct ms_freader *r, double *fill, uint64_t *overrun);
/* One missed frame, as reported to an ms_freader_on_drop callback. */
struct ms_drop {
	uint64_t pos;		/* its position in the writer's ring */
	bool known;		/* false: the ring no longer remembers seq and t_ns */
	uint64_t seq;		/* its camera sequence number */
	uint64_t t_ns;		/* when the camera took it */
	uint64_t noticed_ns;	/* when this reader found it gone (ms_now_ns) */
};
typedef void ms_freader_drop_fn(void *ctx, const struct ms_drop *d);
/* Call fn from within ms_freader_next once for every frame missed, in order. */
void ms_freader_on_drop(struct ms_freader *r, ms_freader_drop_fn *fn, void *ctx);
void ms_freader_close(struct ms_freader *r);

/* Whether buf (n bytes from the start of a file) begins a frame stream. */
bool ms_fstream_sniff(const void *buf, size_t n);

#endif
