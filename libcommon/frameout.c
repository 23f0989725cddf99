/* frameout: a producer's inline or shared-memory frame output; see frameout.h. */
#include "frameout.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fstream.h"
#include "shmring.h"

struct ms_frameout {
	struct ms_fwriter *w;
	struct ms_shmring *ring;	/* NULL: inline */
	char name[MS_SHMRING_NAME_MAX + 2];
};

int ms_frameout_apply(struct ms_frameout_opts *o, const struct ms_cli *c, int key, const char *arg)
{
	switch (key - MS_KEY_FRAMEOUT) {
	case 0:
		o->shm = true;
		return 1;
	case 1:
		/* Checked like a ring's name now, not after the camera has started. */
		if (!*arg || strlen(arg) > MS_SHMRING_NAME_MAX + 1 ||
		    strspn(arg[0] == '/' ? arg + 1 : arg, "abcdefghijklmnopqrstuvwxyz"
		           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(arg[0] == '/' ? arg + 1 : arg) ||
		    strcmp(arg, "/") == 0)
			ms_usage_error("invalid value '%s' for --shm-name: letters, digits, '.', '_' "
			               "and '-' after an optional leading '/'", arg);
		o->name = arg;
		o->shm = true;
		return 1;
	case 2:
		o->slots = ms_cli_long(c, arg, MS_SHMRING_MIN_SLOTS, MS_SHMRING_MAX_SLOTS);
		o->shm = true;
		return 1;
	}
	return 0;
}

static bool valid_word(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       strlen(s);
}

int ms_frameout_default_name(char *buf, size_t size, const char *tag, ms_err *e)
{
	const char *prefix = getenv("MS_SHM_PREFIX");
	const char *stage = getenv("MS_STAGE");
	int n;
	if (prefix && *prefix) {
		if (!valid_word(prefix))
			return ms_err_set(e, "MS_SHM_PREFIX '%s' is not usable in a shared-memory name",
			                  prefix);
		n = snprintf(buf, size, "/%s%s-%ld", prefix,
		             stage && valid_word(stage) ? stage : tag, (long)getpid());
	} else {
		n = snprintf(buf, size, "/mstk-%s-%ld", tag, (long)getpid());
	}
	if (n < 0 || (size_t)n >= size || (size_t)n > MS_SHMRING_NAME_MAX + 1)
		return ms_err_set(e, "the shared-memory name for %s is too long", tag);
	return 0;
}

int ms_frameout_clean_stale(const char *tag)
{
	DIR *d = opendir("/dev/shm");
	if (!d)
		return 0;
	char want[128];
	snprintf(want, sizeof want, "mstk-%s-", tag);
	size_t wl = strlen(want);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, want, wl) != 0)
			continue;
		const char *digits = de->d_name + wl;
		char *end;
		errno = 0;
		long pid = strtol(digits, &end, 10);
		if (errno || end == digits || *end || pid <= 0 || pid == (long)getpid())
			continue;
		/* Only a process that is certainly gone: EPERM means it lives. */
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char name[300];
		snprintf(name, sizeof name, "/%s", de->d_name);
		n += shm_unlink(name) == 0;
	}
	closedir(d);
	return n;
}

uint32_t ms_frameout_default_slots(const struct ms_frame_info *info)
{
	uint64_t per = ms_frame_bytes(info) + 128;
	uint64_t n = MS_FRAMEOUT_RING_BYTES / (per ? per : 1);
	if (n > MS_FRAMEOUT_SLOTS)
		n = MS_FRAMEOUT_SLOTS;
	if (n < 4)
		n = 4;
	return (uint32_t)n;
}

struct ms_frameout *ms_frameout_open(int fd, const struct ms_frame_info *info,
                                     const struct ms_frameout_opts *o, const char *tag,
                                     const char *fdname, ms_err *e)
{
	struct ms_frameout *out = calloc(1, sizeof *out);
	if (!out) {
		ms_err_set(e, "out of memory");
		return NULL;
	}
	if (!o || !o->shm) {
		out->w = ms_fwriter_open(fd, info, fdname, e);
		if (!out->w) {
			free(out);
			return NULL;
		}
		return out;
	}
	if (o->name) {
		snprintf(out->name, sizeof out->name, "%s%s", o->name[0] == '/' ? "" : "/", o->name);
	} else {
		if (ms_frameout_default_name(out->name, sizeof out->name, tag, e) < 0) {
			free(out);
			return NULL;
		}
		if (!getenv("MS_SHM_PREFIX") || !*getenv("MS_SHM_PREFIX"))
			ms_frameout_clean_stale(tag);
	}
	uint32_t slots = o->slots > 0 ? (uint32_t)o->slots : ms_frameout_default_slots(info);
	out->ring = ms_shmring_create(out->name, info, slots, e);
	if (!out->ring) {
		free(out);
		return NULL;
	}
	out->w = ms_fwriter_open_shm(fd, out->ring, fdname, e);
	if (!out->w) {
		int saved = errno;
		ms_shmring_destroy(out->ring);
		free(out);
		errno = saved;
		return NULL;
	}
	return out;
}

int ms_frameout_put(struct ms_frameout *o, const struct ms_frame *f, ms_err *e)
{
	return ms_fwriter_put(o->w, f, e);
}

int ms_frameout_close(struct ms_frameout *o, ms_err *e)
{
	int rc = ms_fwriter_close(o->w, e);
	int saved = errno;
	ms_shmring_destroy(o->ring);
	free(o);
	errno = saved;
	return rc;
}

int ms_frameout_finish(struct ms_frameout *o, bool *reader_gone, ms_err *e)
{
	if (*reader_gone) {
		ms_frameout_abandon(o);
		return 0;
	}
	if (ms_frameout_close(o, e) == 0)
		return 0;
	if (errno != EPIPE)
		return -1;
	*reader_gone = true;
	return 0;
}

void ms_frameout_abandon(struct ms_frameout *o)
{
	if (!o)
		return;
	ms_fwriter_abandon(o->w);
	ms_shmring_destroy(o->ring);
	free(o);
}

void ms_frameout_unlink(const struct ms_frameout *o)
{
	if (o && o->ring)
		shm_unlink(o->name);
}

const char *ms_frameout_ring(const struct ms_frameout *o)
{
	return o->ring ? o->name : NULL;
}

uint32_t ms_frameout_slots(const struct ms_frameout *o)
{
	return o->ring ? ms_shmring_nslots(o->ring) : 0;
}
