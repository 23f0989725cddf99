/*
 * rois: bead/ROI lists. A text file, '#' starts a comment, one bead per
 * line: "id x0 y0", the top-left corner of the bead's square ROI in camera
 * pixels; anything after the third field must be a comment. The ROI size
 * is not in the file: it is a program option (--roi-size), the same for
 * every bead.
 */
#ifndef MS_ROIS_H
#define MS_ROIS_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

#define MS_ROI_SIZE_MIN 8
#define MS_ROI_SIZE_MAX 256
#define MS_ROI_SIZE_DEFAULT 64
#define MS_BEAD_ID_MAX 65535	/* MagScope stores bead ids as uint16 */

struct ms_roi {
	uint32_t id;
	int32_t x0, y0;
};

struct ms_roilist {
	struct ms_roi *roi;
	size_t n;
};

/*
 * Read a list; a malformed line fails with the file, line number and text.
 * Ids must be unique and within 0..65535.
 */
int ms_rois_load(const char *path, struct ms_roilist *list, ms_err *e);
/* Parse from an open stream; name is used in messages. */
int ms_rois_read(FILE *f, const char *name, struct ms_roilist *list, ms_err *e);
/* Every ROI of this size lies inside a width x height frame. */
int ms_rois_check(const struct ms_roilist *list, int roi_size, uint32_t width,
                  uint32_t height, ms_err *e);
/* Check that size is an even number from 8 to 256. */
int ms_roi_size_check(long size, ms_err *e);
/* Write a list; comment[i] (may be NULL) follows its line after '#'. */
int ms_rois_write(FILE *f, const struct ms_roilist *list, const char *const *comment);
/* Index of the bead with this id, or -1. */
long ms_rois_find(const struct ms_roilist *list, uint32_t id);
void ms_rois_free(struct ms_roilist *list);

#endif
