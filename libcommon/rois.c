/* rois: bead/ROI list files; see rois.h. */
#include "rois.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int ms_roi_size_check(long size, ms_err *e)
{
	if (size < MS_ROI_SIZE_MIN || size > MS_ROI_SIZE_MAX || size % 2 != 0)
		return ms_err_set(e, "ROI size %ld is not an even number from %d to %d",
		                  size, MS_ROI_SIZE_MIN, MS_ROI_SIZE_MAX);
	return 0;
}

static int push(struct ms_roilist *list, size_t *cap, struct ms_roi r)
{
	if (list->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct ms_roi *p = realloc(list->roi, ncap * sizeof *p);
		if (!p)
			return -1;
		list->roi = p;
		*cap = ncap;
	}
	list->roi[list->n++] = r;
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	const struct ms_roi *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

int ms_rois_read(FILE *f, const char *name, struct ms_roilist *list, ms_err *e)
{
	list->roi = NULL;
	list->n = 0;
	size_t cap = 0;
	char *line = NULL;
	size_t linecap = 0;
	long lineno = 0;
	ssize_t len;
	while ((len = getline(&line, &linecap, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *fields[4];
		int nf = 0;
		char *save = NULL;
		for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save))
			if (nf < 4)
				fields[nf++] = t;
			else
				nf++;
		if (nf == 0)
			continue;
		long v[3];
		if (nf != 3) {
			ms_err_set(e, "%s:%ld: expected 'id x0 y0', found %d field%s", name, lineno,
			           nf, nf == 1 ? "" : "s");
			goto fail;
		}
		for (int i = 0; i < 3; i++) {
			if (ms_parse_long(fields[i], &v[i]) < 0) {
				ms_err_set(e, "%s:%ld: '%s' is not an integer (expected 'id x0 y0')",
				           name, lineno, fields[i]);
				goto fail;
			}
		}
		if (v[0] < 0 || v[0] > MS_BEAD_ID_MAX) {
			ms_err_set(e, "%s:%ld: bead id %ld is outside 0..%d", name, lineno, v[0], MS_BEAD_ID_MAX);
			goto fail;
		}
		if (v[1] < 0 || v[2] < 0 || v[1] > (long)INT32_MAX || v[2] > (long)INT32_MAX) {
			ms_err_set(e, "%s:%ld: ROI corner (%ld, %ld) is negative or too large",
			           name, lineno, v[1], v[2]);
			goto fail;
		}
		if (push(list, &cap, (struct ms_roi){ (uint32_t)v[0], (int32_t)v[1], (int32_t)v[2] }) < 0) {
			ms_err_set(e, "%s: out of memory", name);
			goto fail;
		}
	}
	if (ferror(f)) {
		ms_err_set(e, "cannot read %s:", name);
		goto fail;
	}
	free(line);
	/* Duplicate ids would merge two beads' tracks: refuse them. */
	struct ms_roi *sorted = malloc((list->n ? list->n : 1) * sizeof *sorted);
	if (!sorted) {
		ms_rois_free(list);
		return ms_err_set(e, "%s: out of memory", name);
	}
	/* An empty list has roi == NULL, which memcpy and qsort must not see. */
	if (list->n) {
		memcpy(sorted, list->roi, list->n * sizeof *sorted);
		qsort(sorted, list->n, sizeof *sorted, cmp_id);
	}
	for (size_t i = 1; i < list->n; i++) {
		if (sorted[i].id == sorted[i - 1].id) {
			uint32_t id = sorted[i].id;
			free(sorted);
			ms_rois_free(list);
			return ms_err_set(e, "%s: bead id %u appears more than once", name, id);
		}
	}
	free(sorted);
	return 0;
fail:
	free(line);
	ms_rois_free(list);
	return -1;
}

int ms_rois_load(const char *path, struct ms_roilist *list, ms_err *e)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return ms_err_set(e, "cannot open '%s':", path);
	int rc = ms_rois_read(f, path, list, e);
	fclose(f);
	if (rc == 0 && list->n == 0)
		return ms_err_set(e, "%s: no beads in the ROI list", path);
	return rc;
}

int ms_rois_check(const struct ms_roilist *list, int roi_size, uint32_t width,
                  uint32_t height, ms_err *e)
{
	for (size_t i = 0; i < list->n; i++) {
		const struct ms_roi *r = &list->roi[i];
		if ((int64_t)r->x0 + roi_size > (int64_t)width || (int64_t)r->y0 + roi_size > (int64_t)height)
			return ms_err_set(e, "ROI of bead %u at (%d, %d), size %d, lies outside the "
			                  "%ux%u frame", r->id, r->x0, r->y0, roi_size, width, height);
	}
	return 0;
}

int ms_rois_write(FILE *f, const struct ms_roilist *list, const char *const *comment)
{
	fprintf(f, "# id x0 y0\n");
	for (size_t i = 0; i < list->n; i++) {
		const struct ms_roi *r = &list->roi[i];
		if (comment && comment[i])
			fprintf(f, "%u %d %d # %s\n", r->id, r->x0, r->y0, comment[i]);
		else
			fprintf(f, "%u %d %d\n", r->id, r->x0, r->y0);
	}
	return ferror(f) ? -1 : 0;
}

long ms_rois_find(const struct ms_roilist *list, uint32_t id)
{
	for (size_t i = 0; i < list->n; i++)
		if (list->roi[i].id == id)
			return (long)i;
	return -1;
}

void ms_rois_free(struct ms_roilist *list)
{
	free(list->roi);
	list->roi = NULL;
	list->n = 0;
}
