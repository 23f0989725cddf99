/*
 * zlut: Z look-up tables, the reference radial profiles a bead's z is read
 * from. One table holds nplanes reference z positions (nm) and, per bead,
 * nplanes profiles of plen bins. Two file forms:
 *   - native HDF5: group /zlut with datasets z_nm (nplanes, f64),
 *     profiles (nbeads, nplanes, plen, f32), bead_ids (nbeads, u32) and
 *     attributes roi_size, nm_per_px, profile_oversample, profile_weighting
 *     (ms_weighting_names: "nearest", "linear", ...), created (ISO 8601),
 *     mstk_version;
 *   - MagScope's text matrix: (1 + plen) rows x nplanes columns, row 0 the
 *     z in nm, whitespace-separated, '%.18e' as numpy writes it. One bead.
 * ms_zlut_load() tells them apart by the HDF5 signature. Writes are atomic
 * (a temporary file renamed over the target), so a cron job never leaves a
 * half-written table behind.
 */
#ifndef MS_ZLUT_H
#define MS_ZLUT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct ms_zlut {
	size_t nplanes, plen, nbeads;
	double *z_nm;		/* [nplanes] */
	float *profiles;	/* [nbeads][nplanes][plen] */
	uint32_t *bead_ids;	/* [nbeads]; a text table has one bead, id 0 */
	int roi_size;		/* 0: unknown (text tables) */
	double nm_per_px;	/* 0: unknown */
	int oversample;		/* radial profile oversampling; 0: unknown */
	char weighting[16];	/* "nearest", "linear", "cubic", "bilinear", "area"; "" if unknown */
	char created[40];	/* ISO 8601 local time, "" if unknown */
};

/* Allocate the arrays of an empty table (zeros); fields set by the caller. */
int ms_zlut_alloc(struct ms_zlut *z, size_t nplanes, size_t plen, size_t nbeads, ms_err *e);
void ms_zlut_free(struct ms_zlut *z);

/* Load either form; checks shape, finite z, at least 2 planes and 1 bin. */
int ms_zlut_load(const char *path, struct ms_zlut *z, ms_err *e);
int ms_zlut_save_h5(const char *path, const struct ms_zlut *z, ms_err *e);
/* Text form of one bead (index into bead_ids). */
int ms_zlut_save_text(const char *path, const struct ms_zlut *z, size_t bead, ms_err *e);

/* Profile of bead b at plane k. */
static inline const float *ms_zlut_profile(const struct ms_zlut *z, size_t b, size_t k)
{
	return z->profiles + (b * z->nplanes + k) * z->plen;
}

/* Index of the bead with this id, or -1. */
long ms_zlut_find_bead(const struct ms_zlut *z, uint32_t id);

/* Whether an HDF5 file at path has the /zlut group. */
int ms_zlut_is_h5(const char *path);

#endif
