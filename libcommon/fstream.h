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
 * A reader refuses transports it does not know, so a shared-memory
 * transport can be added without old readers misreading it.
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

/* Write the header to fd. name is used in messages ("standard output"). */
struct ms_fwriter *ms_fwriter_open(int fd, const struct ms_frame_info *info,
                                   const char *name, ms_err *e);
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
 * Whether the next record can be read without waiting (buffered bytes or a
 * readable descriptor): a live consumer uses it to close a batch early
 * rather than hold frames back while the camera is quiet.
 */
bool ms_freader_ready(const struct ms_freader *r);
/* Frames read so far. */
uint64_t ms_freader_count(const struct ms_freader *r);
void ms_freader_close(struct ms_freader *r);

/* Whether buf (n bytes from the start of a file) begins a frame stream. */
bool ms_fstream_sniff(const void *buf, size_t n);

#endif
