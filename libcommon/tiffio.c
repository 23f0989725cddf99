/*
 * tiffio: owns mstk's TIFF video files (see tiffio.h). Reading goes through
 * libtiff, with its messages caught per handle (TIFFOpenOptions) so that they
 * end up in the ms_err and never on stderr. ImageJ's private tags (labels)
 * are read as libtiff's anonymous fields, so no global tag extender is
 * registered. Writing does not use libtiff: ImageJ reads a stack with
 * "images=N" as N frames back to back after the first page's data, and
 * libtiff puts each page's directory between the pages' data, so the writer
 * lays out the file itself: header, all pixel data contiguous, then every
 * directory (the first with the ImageJ description, scale and labels) once
 * the frame count and the labels are known, at close. That is the layout
 * tifffile and ImageJ write, and libtiff reads it like any other TIFF.
 */
#include "tiffio.h"

#include <tiffio.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ImageJ's private tags and the codes in its metadata header. */
#define TAG_IJ_COUNTS 50838	/* IJMetadataByteCounts */
#define TAG_IJ_DATA 50839	/* IJMetadata */
#define IJ_MAGIC 0x494A494Au	/* "IJIJ" */
#define IJ_LABELS 0x6C61626Cu	/* "labl" */

#ifndef MS_VERSION
#define MS_VERSION "unknown"
#endif

/* Classic TIFF offsets are 32 bits; leave room for the directories. */
#define CLASSIC_LIMIT (UINT64_C(4) * 1024 * 1024 * 1024 - UINT64_C(64) * 1024 * 1024)
/* Upper bound of the directory and label bytes one page adds at close. */
#define META_PER_FRAME 512u

/* ---------------------------------------------------------------- bytes */

static uint16_t get16(const unsigned char *p, bool be)
{
	return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t get32(const unsigned char *p, bool be)
{
	return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t get64(const unsigned char *p, bool be)
{
	uint64_t hi = get32(p + (be ? 0 : 4), be), lo = get32(p + (be ? 4 : 0), be);
	return hi << 32 | lo;
}

static bool host_is_be(void)
{
	const uint16_t one = 1;
	return *(const unsigned char *)&one == 0;
}

static void swap16(void *buf, size_t n)
{
	unsigned char *p = buf;
	for (size_t i = 0; i + 1 < n; i += 2) {
		unsigned char t = p[i];
		p[i] = p[i + 1];
		p[i + 1] = t;
	}
}

int ms_tiff_sniff(const void *buf, size_t n)
{
	const unsigned char *p = buf;
	if (n < 4)
		return 0;
	return (p[0] == 'I' && p[1] == 'I' && (p[2] == 42 || p[2] == 43) && p[3] == 0) ||
	       (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && (p[3] == 42 || p[3] == 43));
}

/* ---------------------------------------------------------------- reader */

struct ms_tiff_reader {
	TIFF *tif;
	char *path;
	int fd;			/* owned by tif; used for pread and the size */
	uint64_t fsize;
	struct ms_frame_info info;
	size_t frame_bytes;
	size_t nframes;
	size_t cur;		/* directory libtiff is on; SIZE_MAX: unknown */
	bool contiguous;	/* ImageJ's one-IFD stack: frames back to back */
	uint64_t contig_off;
	bool swab;		/* file order differs from ours (contiguous path) */
	uint64_t *page_off;	/* per page: its pixels' offset when they lie uncompressed
				 * and back to back, so pread reads them; UINT64_MAX: use
				 * libtiff (nframes entries, or NULL) */
	size_t page_cap;
	uint64_t *t_ns;		/* nframes entries, or NULL */
	bool has_ts;
	unsigned char *tilebuf;
	size_t tilebuf_size;
	char libmsg[512];	/* libtiff's last error on this handle */
};

/*
 * libtiff's per-handle handlers: keep the error for our message, drop the
 * warnings (they are about tags we do not use, such as ImageJ's, that
 * libtiff does not know). Returning 1 keeps libtiff's global handler quiet.
 */
static int on_tiff_error(TIFF *tif, void *ud, const char *module, const char *fmt, va_list ap)
{
	char *buf = ud;
	(void)tif;
	int n = snprintf(buf, 512, "%s: ", module ? module : "libtiff");
	if (n < 0 || n >= 512)
		n = 0;
	vsnprintf(buf + n, 512 - (size_t)n, fmt, ap);
	return 1;
}

static int on_tiff_warning(TIFF *tif, void *ud, const char *module, const char *fmt, va_list ap)
{
	(void)tif, (void)ud, (void)module, (void)fmt, (void)ap;
	return 1;
}

static const char *libmsg(struct ms_tiff_reader *r)
{
	return r->libmsg[0] ? r->libmsg : "no detail from libtiff";
}

/* nm in one unit of ImageJ's "unit=" (0: a unit we do not know). */
static double unit_nm(const char *u)
{
	static const struct {
		const char *name;
		double nm;
	} units[] = {
		{"nm", 1}, {"nanometer", 1}, {"nanometers", 1},
		{"micron", 1e3}, {"microns", 1e3}, {"um", 1e3}, {"\xc2\xb5m", 1e3},
		{"\xb5m", 1e3}, {"\\u00B5m", 1e3}, {"micrometer", 1e3}, {"micrometers", 1e3},
		{"mm", 1e6}, {"cm", 1e7}, {"m", 1e9}, {"meter", 1e9},
		{"inch", 25.4e6}, {"in", 25.4e6},
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(u, units[i].name) == 0)
			return units[i].nm;
	return 0;
}

/* Copy the value of the "key=value" line of an ImageJ description. */
static bool ij_value(const char *desc, const char *key, char *out, size_t n)
{
	size_t klen = strlen(key);
	for (const char *p = desc; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, klen) != 0 || p[klen] != '=')
			continue;
		const char *v = p + klen + 1;
		size_t len = strcspn(v, "\r\n");
		if (len >= n)
			return false;
		memcpy(out, v, len);
		out[len] = 0;
		return true;
	}
	return false;
}

/*
 * XResolution of the current directory as the rational in the file:
 * libtiff keeps it as a float, which would make 1/nm_per_px inexact.
 */
static bool raw_xresolution(struct ms_tiff_reader *r, uint32_t *num, uint32_t *den)
{
	bool be = TIFFIsBigEndian(r->tif), big = TIFFIsBigTIFF(r->tif);
	uint64_t off = TIFFCurrentDirOffset(r->tif);
	unsigned char b[20];
	size_t esz = big ? 20 : 12;
	if (pread(r->fd, b, big ? 8 : 2, (off_t)off) != (big ? 8 : 2))
		return false;
	uint64_t n = big ? get64(b, be) : get16(b, be);
	off += big ? 8 : 2;
	for (uint64_t i = 0; i < n && i < 4096; i++, off += esz) {
		if (pread(r->fd, b, esz, (off_t)off) != (ssize_t)esz)
			return false;
		uint16_t tag = get16(b, be), type = get16(b + 2, be);
		if (tag < TIFFTAG_XRESOLUTION)
			continue;
		if (tag > TIFFTAG_XRESOLUTION || type != TIFF_RATIONAL)
			return false;
		unsigned char v[8];
		if (big)
			memcpy(v, b + 12, 8);
		else if (pread(r->fd, v, 8, (off_t)get32(b + 8, be)) != 8)
			return false;
		*num = get32(v, be);
		*den = get32(v + 4, be);
		return *num != 0 && *den != 0;
	}
	return false;
}

/* nm per pixel from the first page: ImageJ's unit, else ResolutionUnit. */
static double page_nm_per_px(struct ms_tiff_reader *r, const char *desc)
{
	double per_unit = 0;	/* nm in the unit of XResolution */
	char unit[64];
	if (desc && strncmp(desc, "ImageJ=", 7) == 0 && ij_value(desc, "unit", unit, sizeof unit))
		per_unit = unit_nm(unit);
	uint16_t ru;
	if (per_unit == 0 && TIFFGetField(r->tif, TIFFTAG_RESOLUTIONUNIT, &ru)) {
		if (ru == RESUNIT_CENTIMETER)
			per_unit = 1e7;
		else if (ru == RESUNIT_INCH)
			per_unit = 25.4e6;
	}
	if (per_unit == 0)
		return 0;
	double px_per_unit;
	uint32_t num, den;
	float fres;
	if (raw_xresolution(r, &num, &den))
		return per_unit * den / num;
	if (!TIFFGetField(r->tif, TIFFTAG_XRESOLUTION, &fres))
		return 0;
	px_per_unit = fres;
	if (!(px_per_unit > 0) || !isfinite(px_per_unit))
		return 0;
	return per_unit / px_per_unit;
}

/*
 * Epoch seconds as text to ns. Plain decimals are converted exactly (a
 * double cannot hold 19 digits); other forms strtod accepts (an exponent)
 * go through rint(t * 1e9). Negative, absurd or non-numbers: false.
 */
static bool parse_epoch_ns(const char *s, uint64_t *ns)
{
	const uint64_t max_s = UINT64_MAX / 1000000000u - 1;
	while (*s == ' ')
		s++;
	const char *p = s;
	if (*p == '+')
		p++;
	uint64_t sec = 0, frac = 0;
	int ndig = 0, nfrac = 0;
	bool round_up = false;
	for (; *p >= '0' && *p <= '9'; p++, ndig++) {
		sec = sec * 10 + (uint64_t)(*p - '0');
		if (sec > max_s)
			return false;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, ndig++, nfrac++) {
			if (nfrac < 9)
				frac = frac * 10 + (uint64_t)(*p - '0');
			else if (nfrac == 9)
				round_up = *p >= '5';
		}
	}
	while (*p == ' ')
		p++;
	if (*p == 0 && ndig > 0) {
		for (int k = nfrac; k < 9; k++)
			frac *= 10;
		*ns = sec * 1000000000u + frac + round_up;
		return true;
	}
	char *end;
	errno = 0;
	double t = strtod(s, &end);
	while (*end == ' ')
		end++;
	if (end == s || *end || errno || !isfinite(t) || t < 0 || t > (double)max_s)
		return false;
	*ns = (uint64_t)rint(t * 1e9);
	return true;
}

/*
 * Per-frame timestamps from ImageJ's labels on the first page. Anything
 * malformed means no timestamps; the pixels are still good. A hyperstack
 * of C channels may carry one label per frame, i.e. per C pages (MagScope's
 * ROI video and ours): then every page of a frame gets its time.
 */
static void read_labels(struct ms_tiff_reader *r, uint32_t channels)
{
	const TIFFField *fc = TIFFFindField(r->tif, TAG_IJ_COUNTS, TIFF_ANY);
	const TIFFField *fd = TIFFFindField(r->tif, TAG_IJ_DATA, TIFF_ANY);
	uint32_t nc = 0, nd = 0;
	void *pc = NULL, *pd = NULL;
	if (!fc || !fd || !TIFFGetField(r->tif, TAG_IJ_COUNTS, &nc, &pc) ||
	    !TIFFGetField(r->tif, TAG_IJ_DATA, &nd, &pd) || !pc || !pd || nc < 2)
		return;
	TIFFDataType tc = TIFFFieldDataType(fc), td = TIFFFieldDataType(fd);
	if ((tc != TIFF_LONG && tc != TIFF_SHORT) || (td != TIFF_BYTE && td != TIFF_UNDEFINED))
		return;
#define COUNT(i) ((uint64_t)(tc == TIFF_LONG ? ((uint32_t *)pc)[i] : ((uint16_t *)pc)[i]))
	const unsigned char *d = pd;
	bool be = TIFFIsBigEndian(r->tif);
	uint64_t hl = COUNT(0);
	if (hl < 12 || hl % 8 != 4 || hl > nd || get32(d, be) != IJ_MAGIC)
		return;
	uint64_t pos = hl;
	uint32_t block = 1;
	for (uint64_t t = 4; t + 8 <= hl; t += 8) {
		uint32_t type = get32(d + t, be), cnt = get32(d + t + 4, be);
		if (cnt > nc - block)
			return;
		uint64_t per = type == IJ_LABELS && channels > 1 &&
			       (uint64_t)cnt * channels == r->nframes ? channels : 1;
		for (uint32_t k = 0; k < cnt; k++, block++) {
			uint64_t len = COUNT(block);
			if (len > nd - pos)
				return;
			if (type == IJ_LABELS && k * per < r->nframes) {
				char s[64];
				size_t m = 0;
				bool ok = len % 2 == 0 && len / 2 < sizeof s;
				for (uint64_t j = 0; ok && j < len; j += 2) {
					uint16_t u = get16(d + pos + j, be);
					ok = u >= 0x20 && u < 0x7f;
					s[m++] = (char)u;
				}
				s[m] = 0;
				uint64_t ns;
				if (ok && parse_epoch_ns(s, &ns) && ns) {
					if (!r->t_ns && !(r->t_ns = calloc(r->nframes, sizeof *r->t_ns)))
						return;
					for (uint64_t j = 0; j < per; j++)
						r->t_ns[k * per + j] = ns;
					r->has_ts = true;
				}
			}
			pos += len;
		}
		if (type == IJ_LABELS)
			return;
	}
#undef COUNT
}

static const char *photometric_name(uint16_t p)
{
	switch (p) {
	case PHOTOMETRIC_RGB: return "RGB";
	case PHOTOMETRIC_YCBCR: return "YCbCr";
	case PHOTOMETRIC_SEPARATED: return "CMYK";
	case PHOTOMETRIC_CIELAB: return "CIE L*a*b*";
	case PHOTOMETRIC_MASK: return "a transparency mask";
	default: return "an unsupported photometric interpretation";
	}
}

/*
 * Check the current directory (page i): a pixel format we read, the size
 * of page 0 and data inside the file. Page 0 sets the reader's geometry.
 */
static int check_page(struct ms_tiff_reader *r, size_t i, ms_err *e)
{
	TIFF *tif = r->tif;
	uint32_t w = 0, h = 0;
	uint16_t bps = 0, spp = 1, fmt = SAMPLEFORMAT_UINT, photo = PHOTOMETRIC_MINISBLACK, comp = 1;
	TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
	TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
	TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
	TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
	TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo);
	const char *p = r->path;
	if (spp != 1)
		return ms_err_set(e, "'%s' page %zu has %u samples per pixel (%s); only single-sample "
				  "grayscale is supported", p, i, (unsigned)spp,
				  photo == PHOTOMETRIC_RGB ? "RGB" : "multi-channel");
	if (photo != PHOTOMETRIC_MINISBLACK && photo != PHOTOMETRIC_MINISWHITE &&
	    photo != PHOTOMETRIC_PALETTE)
		return ms_err_set(e, "'%s' page %zu is %s; only grayscale is supported", p, i,
				  photometric_name(photo));
	if (fmt == SAMPLEFORMAT_IEEEFP)
		return ms_err_set(e, "'%s' page %zu has %u-bit floating-point samples; only 8- and "
				  "16-bit unsigned integers are supported", p, i, (unsigned)bps);
	if (fmt != SAMPLEFORMAT_UINT && fmt != SAMPLEFORMAT_VOID)
		return ms_err_set(e, "'%s' page %zu has %s samples; only 8- and 16-bit unsigned "
				  "integers are supported", p, i,
				  fmt == SAMPLEFORMAT_INT ? "signed integer" : "complex or unknown");
	if (bps != 8 && bps != 16)
		return ms_err_set(e, "'%s' page %zu has %u bits per sample; only 8 and 16 are supported",
				  p, i, (unsigned)bps);
	if (w == 0 || h == 0 || w > MS_FRAME_MAX_SIDE || h > MS_FRAME_MAX_SIDE)
		return ms_err_set(e, "'%s' page %zu has an unsupported size %" PRIu32 "x%" PRIu32,
				  p, i, w, h);
	if (!TIFFIsCODECConfigured(comp))
		return ms_err_set(e, "'%s' page %zu uses compression %u, which this libtiff cannot "
				  "decode", p, i, (unsigned)comp);
	enum ms_pixfmt pf = bps == 8 ? MS_PIX_U8 : MS_PIX_U16;
	if (i == 0) {
		r->info.width = w;
		r->info.height = h;
		r->info.fmt = pf;
		r->frame_bytes = ms_frame_bytes(&r->info);
	} else if (w != r->info.width || h != r->info.height || pf != r->info.fmt) {
		return ms_err_set(e, "'%s' page %zu is %" PRIu32 "x%" PRIu32 " %u-bit but page 0 is "
				  "%" PRIu32 "x%" PRIu32 " %u-bit; all pages must match", p, i, w, h,
				  (unsigned)bps, r->info.width, r->info.height,
				  r->info.fmt == MS_PIX_U8 ? 8u : 16u);
	}
	uint32_t n = TIFFIsTiled(tif) ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
	for (uint32_t s = 0; s < n; s++) {
		int err = 0;
		uint64_t off = TIFFGetStrileOffsetWithErr(tif, s, &err);
		uint64_t cnt = err ? 0 : TIFFGetStrileByteCountWithErr(tif, s, &err);
		if (err)
			return ms_err_set(e, "'%s' page %zu: cannot read the data offsets: %s", p, i,
					  libmsg(r));
		if (off > r->fsize || cnt > r->fsize - off)
			return ms_err_set(e, "'%s' is truncated: page %zu has data up to byte %" PRIu64
					  " but the file has %" PRIu64 " bytes", p, i, off + cnt, r->fsize);
	}
	return 0;
}

/*
 * Record where page i's pixels are, if they can be read by one pread: an
 * uncompressed page in strips that lie back to back and hold exactly one
 * frame. Reading such a page then needs no directory walk, which costs
 * libtiff a few hundred small reads and seeks per page. Called with
 * libtiff on page i; out of memory only loses the fast path.
 */
static void note_page(struct ms_tiff_reader *r, size_t i)
{
	if (i >= r->page_cap) {
		size_t cap = r->page_cap ? 2 * r->page_cap : 64;
		uint64_t *p = realloc(r->page_off, cap * sizeof *p);
		if (!p) {
			free(r->page_off);
			r->page_off = NULL;
			r->page_cap = SIZE_MAX;
			return;
		}
		r->page_off = p;
		r->page_cap = cap;
	}
	if (!r->page_off)
		return;
	TIFF *tif = r->tif;
	uint16_t comp = 1;
	TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
	uint64_t off = UINT64_MAX;
	if (comp == COMPRESSION_NONE && !TIFFIsTiled(tif)) {
		uint32_t n = TIFFNumberOfStrips(tif);
		uint64_t first = TIFFGetStrileOffset(tif, 0), next = first;
		for (uint32_t k = 0; k < n && next != UINT64_MAX; k++)
			next = TIFFGetStrileOffset(tif, k) == next
				? next + TIFFGetStrileByteCount(tif, k) : UINT64_MAX;
		if (next != UINT64_MAX && next - first == r->frame_bytes && next <= r->fsize)
			off = first;
	}
	r->page_off[i] = off;
}

/*
 * ImageJ's big stacks: one IFD, "images=N" in the description, and the N
 * frames uncompressed and back to back from the first page's data on.
 */
static int setup_contiguous(struct ms_tiff_reader *r, uint64_t images, ms_err *e)
{
	TIFF *tif = r->tif;
	uint16_t comp = 1;
	TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
	if (comp != COMPRESSION_NONE || TIFFIsTiled(tif))
		return ms_err_set(e, "'%s' is an ImageJ stack of %" PRIu64 " images in one page, but "
				  "its data is %s; only uncompressed strips can be read", r->path,
				  images, comp != COMPRESSION_NONE ? "compressed" : "tiled");
	uint32_t n = TIFFNumberOfStrips(tif);
	uint64_t first = TIFFGetStrileOffset(tif, 0), next = first;
	for (uint32_t s = 0; s < n; s++) {
		if (TIFFGetStrileOffset(tif, s) != next)
			return ms_err_set(e, "'%s' is an ImageJ stack of %" PRIu64 " images in one page, "
					  "but the first page's strips are not contiguous", r->path, images);
		next += TIFFGetStrileByteCount(tif, s);
	}
	if (next - first != r->frame_bytes)
		return ms_err_set(e, "'%s' is an ImageJ stack whose first page holds %" PRIu64
				  " bytes, not the %zu of one frame", r->path, next - first,
				  r->frame_bytes);
	if (images > UINT32_MAX)
		return ms_err_set(e, "'%s' says it holds %" PRIu64 " images, more than can be read",
				  r->path, images);
	if ((r->fsize - first) / r->frame_bytes < images)
		return ms_err_set(e, "'%s' is truncated: the ImageJ stack says %" PRIu64 " images of "
				  "%zu bytes from byte %" PRIu64 ", but the file has %" PRIu64 " bytes",
				  r->path, images, r->frame_bytes, first, r->fsize);
	r->contiguous = true;
	r->contig_off = first;
	r->swab = TIFFIsBigEndian(tif) != host_is_be();
	r->nframes = (size_t)images;
	return 0;
}

struct ms_tiff_reader *ms_tiff_open_read(const char *path, ms_err *e)
{
	struct ms_tiff_reader *r = calloc(1, sizeof *r);
	if (!r || !(r->path = strdup(path))) {
		free(r);
		ms_err_set(e, "out of memory opening '%s'", path);
		return NULL;
	}
	r->fd = -1;
	r->cur = SIZE_MAX;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ms_err_set(e, "cannot open '%s':", path);
		goto fail;
	}
	struct stat st;
	unsigned char head[8];
	ssize_t got = 0;
	if (fstat(fd, &st) < 0 || (got = pread(fd, head, sizeof head, 0)) < 0) {
		ms_err_set(e, "cannot read '%s':", path);
		goto fail_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		ms_err_set(e, "'%s' is not a regular file", path);
		goto fail_fd;
	}
	r->fsize = (uint64_t)st.st_size;
	if (!ms_tiff_sniff(head, (size_t)got)) {
		ms_err_set(e, "'%s' is not a TIFF file (%s)", path,
			   got == 0 ? "it is empty" : "no II*/MM* header");
		goto fail_fd;
	}
	TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
	if (!opts) {
		ms_err_set(e, "out of memory opening '%s'", path);
		goto fail_fd;
	}
	TIFFOpenOptionsSetErrorHandlerExtR(opts, on_tiff_error, r->libmsg);
	TIFFOpenOptionsSetWarningHandlerExtR(opts, on_tiff_warning, NULL);
	/* "m": no memory map, so a file cut short under us is an error, not SIGBUS. */
	r->tif = TIFFFdOpenExt(fd, path, "rm", opts);
	TIFFOpenOptionsFree(opts);
	if (!r->tif) {
		/* libtiff does not close fd when it fails; TIFFClose will once it succeeds. */
		ms_err_set(e, "'%s' is truncated or corrupt: %s", path, libmsg(r));
		goto fail_fd;
	}
	r->fd = fd;
	r->cur = 0;

	if (check_page(r, 0, e) < 0) {
		goto fail;
	}
	r->swab = TIFFIsBigEndian(r->tif) != host_is_be();
	note_page(r, 0);
	const char *desc = NULL;
	if (!TIFFGetField(r->tif, TIFFTAG_IMAGEDESCRIPTION, &desc))
		desc = NULL;
	r->info.nm_per_px = page_nm_per_px(r, desc);
	uint64_t images = 0;
	char val[32];
	if (desc && strncmp(desc, "ImageJ=", 7) == 0 && ij_value(desc, "images", val, sizeof val)) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(val, &end, 10);
		if (!errno && end != val && *end == 0)
			images = v;
	}
	/* (desc belongs to this directory: read it before moving on.) */
	uint32_t channels = 1;
	if (desc && strncmp(desc, "ImageJ=", 7) == 0 && ij_value(desc, "channels", val, sizeof val))
		channels = (uint32_t)strtoul(val, NULL, 10);

	/* Walk every page now, so that a bad page fails here, not mid-stream. */
	size_t n = 1;
	while (!TIFFLastDirectory(r->tif)) {
		r->libmsg[0] = 0;
		if (!TIFFReadDirectory(r->tif)) {
			r->cur = SIZE_MAX;
			ms_err_set(e, "'%s' is truncated or corrupt: cannot read page %zu: %s", path, n,
				   libmsg(r));
			goto fail;
		}
		r->cur = n;
		if (check_page(r, n, e) < 0) {
			goto fail;
		}
		note_page(r, n);
		n++;
		if (n > UINT32_MAX) {
			ms_err_set(e, "'%s' has more pages than can be read", path);
			goto fail;
		}
	}
	if (r->cur != 0) {
		if (!TIFFSetDirectory(r->tif, 0)) {
			ms_err_set(e, "cannot return to the first page of '%s': %s", path, libmsg(r));
			goto fail;
		}
		r->cur = 0;
	}
	r->nframes = n;
	if (n == 1 && images > 1 && setup_contiguous(r, images, e) < 0) {
		goto fail;
	}
	read_labels(r, channels);
	return r;
fail_fd:
	close(fd);
fail:
	ms_tiff_close_read(r);
	return NULL;
}

const struct ms_frame_info *ms_tiff_info(const struct ms_tiff_reader *r)
{
	return &r->info;
}

size_t ms_tiff_frames(const struct ms_tiff_reader *r)
{
	return r->nframes;
}

int ms_tiff_has_timestamps(const struct ms_tiff_reader *r)
{
	return r->has_ts;
}

static int read_at(struct ms_tiff_reader *r, uint64_t off, size_t i, void *pixels, ms_err *e)
{
	unsigned char *dst = pixels;
	size_t done = 0;
	while (done < r->frame_bytes) {
		ssize_t got = pread(r->fd, dst + done, r->frame_bytes - done, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return ms_err_set(e, "cannot read frame %zu of '%s':", i, r->path);
		if (got == 0)
			return ms_err_set(e, "'%s' is truncated: frame %zu ends past the end of the file",
					  r->path, i);
		done += (size_t)got;
	}
	if (r->swab && r->info.fmt == MS_PIX_U16)
		swap16(pixels, r->frame_bytes);
	return 0;
}

static int read_contiguous(struct ms_tiff_reader *r, size_t i, void *pixels, ms_err *e)
{
	return read_at(r, r->contig_off + (uint64_t)i * r->frame_bytes, i, pixels, e);
}

static int read_strips(struct ms_tiff_reader *r, size_t i, unsigned char *dst, ms_err *e)
{
	TIFF *tif = r->tif;
	uint32_t h = r->info.height, rps = 0;
	size_t row = r->frame_bytes / h;
	TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
	if (rps == 0 || rps > h)
		rps = h;
	uint32_t n = TIFFNumberOfStrips(tif);
	if (n != (h + rps - 1) / rps)
		return ms_err_set(e, "'%s' page %zu has %" PRIu32 " strips, not the %" PRIu32
				  " its rows per strip imply", r->path, i, n, (h + rps - 1) / rps);
	for (uint32_t s = 0; s < n; s++) {
		uint32_t rows = h - s * rps < rps ? h - s * rps : rps;
		tmsize_t want = (tmsize_t)(rows * row);
		r->libmsg[0] = 0;
		if (TIFFReadEncodedStrip(tif, s, dst + (size_t)s * rps * row, want) != want)
			return ms_err_set(e, "'%s' is truncated or corrupt: cannot read strip %" PRIu32
					  " of page %zu: %s", r->path, s, i, libmsg(r));
	}
	return 0;
}

static int read_tiles(struct ms_tiff_reader *r, size_t i, unsigned char *dst, ms_err *e)
{
	TIFF *tif = r->tif;
	uint32_t tw = 0, th = 0, w = r->info.width, h = r->info.height;
	size_t bpp = ms_pixfmt_bytes(r->info.fmt);
	TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
	TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
	tmsize_t tsize = TIFFTileSize(tif);
	if (tw == 0 || th == 0 || tw > MS_FRAME_MAX_SIDE || th > MS_FRAME_MAX_SIDE ||
	    tsize != (tmsize_t)((size_t)tw * th * bpp))
		return ms_err_set(e, "'%s' page %zu has bad tiles (%" PRIu32 "x%" PRIu32 ")",
				  r->path, i, tw, th);
	if (r->tilebuf_size < (size_t)tsize) {
		unsigned char *b = realloc(r->tilebuf, (size_t)tsize);
		if (!b)
			return ms_err_set(e, "out of memory reading tiles of '%s'", r->path);
		r->tilebuf = b;
		r->tilebuf_size = (size_t)tsize;
	}
	for (uint32_t y = 0; y < h; y += th) {
		for (uint32_t x = 0; x < w; x += tw) {
			uint32_t t = TIFFComputeTile(tif, x, y, 0, 0);
			r->libmsg[0] = 0;
			if (TIFFReadEncodedTile(tif, t, r->tilebuf, tsize) != tsize)
				return ms_err_set(e, "'%s' is truncated or corrupt: cannot read tile %"
						  PRIu32 " of page %zu: %s", r->path, t, i, libmsg(r));
			uint32_t cols = w - x < tw ? w - x : tw, rows = h - y < th ? h - y : th;
			for (uint32_t k = 0; k < rows; k++)
				memcpy(dst + ((size_t)(y + k) * w + x) * bpp,
				       r->tilebuf + (size_t)k * tw * bpp, cols * bpp);
		}
	}
	return 0;
}

/* Make page i libtiff's current directory: one step forward is O(1). */
static int seek_page(struct ms_tiff_reader *r, size_t i, ms_err *e)
{
	if (r->cur == i)
		return 0;
	r->libmsg[0] = 0;
	bool ok = r->cur != SIZE_MAX && i == r->cur + 1 ? TIFFReadDirectory(r->tif)
							 : TIFFSetDirectory(r->tif, (tdir_t)i);
	if (!ok) {
		r->cur = SIZE_MAX;
		return ms_err_set(e, "'%s' is truncated or corrupt: cannot read page %zu: %s",
				  r->path, i, libmsg(r));
	}
	r->cur = i;
	/* The file may have changed since it was opened: check again (cheap). */
	if (check_page(r, i, e) < 0) {
		r->cur = SIZE_MAX;
		return -1;
	}
	return 0;
}

int ms_tiff_read(struct ms_tiff_reader *r, size_t i, void *pixels, uint64_t *t_ns, ms_err *e)
{
	if (i >= r->nframes)
		return ms_err_set(e, "frame %zu is past the end of '%s' (%zu frames)", i, r->path,
				  r->nframes);
	int rc;
	if (r->contiguous)
		rc = read_contiguous(r, i, pixels, e);
	else if (r->page_off && r->page_off[i] != UINT64_MAX)
		rc = read_at(r, r->page_off[i], i, pixels, e);
	else if ((rc = seek_page(r, i, e)) == 0)
		rc = TIFFIsTiled(r->tif) ? read_tiles(r, i, pixels, e) : read_strips(r, i, pixels, e);
	if (rc < 0)
		return -1;
	if (t_ns)
		*t_ns = r->t_ns ? r->t_ns[i] : 0;
	return 0;
}

uint64_t ms_tiff_frame_offset(const struct ms_tiff_reader *r, size_t i)
{
	if (i >= r->nframes || (r->swab && r->info.fmt == MS_PIX_U16))
		return UINT64_MAX;
	uint64_t off = r->contiguous ? r->contig_off + (uint64_t)i * r->frame_bytes
		     : r->page_off ? r->page_off[i] : UINT64_MAX;
	if (off == UINT64_MAX || off % ms_pixfmt_bytes(r->info.fmt) != 0)
		return UINT64_MAX;
	return off;
}

int ms_tiff_fd(const struct ms_tiff_reader *r)
{
	return r->fd;
}

uint64_t ms_tiff_frame_t_ns(const struct ms_tiff_reader *r, size_t i)
{
	return r->t_ns && i < r->nframes ? r->t_ns[i] : 0;
}

void ms_tiff_close_read(struct ms_tiff_reader *r)
{
	if (!r)
		return;
	if (r->tif)
		TIFFClose(r->tif);
	free(r->t_ns);
	free(r->page_off);
	free(r->tilebuf);
	free(r->path);
	free(r);
}

/* ---------------------------------------------------------------- writer */

/*
 * A live writer keeps room for a provisional first directory between the
 * header and the pixels: page 0 with "images=N" in the description, which
 * ImageJ, tifffile and the reader above take as N frames back to back
 * (ImageJ's own form for stacks past 4 GiB, so it stays a classic TIFF
 * whatever the size). ms_tiff_sync rewrites it; close writes the real
 * directories at the end and points the header at them.
 */
#define LIVE_IFD 16u		/* classic header, then 8 spare bytes */
#define LIVE_DATA0 1024u	/* pixels start here */

struct ms_tiff_writer {
	FILE *f;
	char *path;
	struct ms_frame_info info;
	size_t frame_bytes;
	bool big;
	bool live;		/* provisional directory; classic/BigTIFF chosen at close */
	bool force_big;
	bool synced;		/* the header points at the provisional directory */
	bool failed;		/* a write failed; the file is not a valid TIFF */
	uint32_t channels;	/* pages per frame (ImageJ hyperstack channels) */
	uint64_t data0;		/* offset of the first page's pixels */
	uint64_t pos;		/* bytes written so far */
	uint64_t n;		/* pages written */
	uint64_t *t_ns;		/* per frame (every channels pages) */
	size_t cap;
	unsigned char *swapbuf;	/* u16 frames in file order, on big-endian hosts */
};

/* Little-endian output, the file's order. */
static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (unsigned char)(v >> 8 * k);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int k = 0; k < 8; k++)
		p[k] = (unsigned char)(v >> 8 * k);
}

static int wr(struct ms_tiff_writer *w, const void *buf, size_t n, ms_err *e)
{
	if (n && fwrite(buf, 1, n, w->f) != n) {
		w->failed = true;
		return ms_err_set(e, "cannot write '%s':", w->path);
	}
	w->pos += n;
	return 0;
}

static int pad_even(struct ms_tiff_writer *w, ms_err *e)
{
	static const unsigned char zero;
	return w->pos % 2 ? wr(w, &zero, 1, e) : 0;
}

/*
 * The best rational num/den <= 2^32-1 for x > 0, from the continued
 * fraction: decimals such as 107.5 or 65.3 come out exact (215/2, 653/10).
 */
static void to_rational(double x, uint32_t *num, uint32_t *den)
{
	uint64_t h0 = 0, h1 = 1, k0 = 1, k1 = 0;
	double v = x;
	for (int it = 0; it < 64; it++) {
		double a = floor(v);
		if (!(a < 4294967296.0))
			break;
		uint64_t ai = (uint64_t)a, h2 = ai * h1 + h0, k2 = ai * k1 + k0;
		if (h2 > UINT32_MAX || k2 > UINT32_MAX)
			break;
		h0 = h1, h1 = h2, k0 = k1, k1 = k2;
		if (v == a)
			break;
		v = 1.0 / (v - a);
	}
	*num = (uint32_t)h1;
	*den = (uint32_t)k1;
}

struct ms_tiff_writer *ms_tiff_open_write(const char *path, const struct ms_frame_info *info,
					  uint64_t expected_frames, ms_err *e)
{
	struct ms_tiff_wopts o = {.expected_frames = expected_frames};
	return ms_tiff_open_write_opts(path, info, &o, e);
}

struct ms_tiff_writer *ms_tiff_open_write_opts(const char *path, const struct ms_frame_info *info,
					       const struct ms_tiff_wopts *o, ms_err *e)
{
	if (info->fmt != MS_PIX_U8 && info->fmt != MS_PIX_U16) {
		ms_err_set(e, "cannot write '%s': pixel format %d is neither u8 nor u16", path,
			   (int)info->fmt);
		return NULL;
	}
	if (info->width == 0 || info->height == 0 || info->width > MS_FRAME_MAX_SIDE ||
	    info->height > MS_FRAME_MAX_SIDE) {
		ms_err_set(e, "cannot write '%s': bad frame size %" PRIu32 "x%" PRIu32, path,
			   info->width, info->height);
		return NULL;
	}
	if (!(info->nm_per_px == 0 || (info->nm_per_px >= 1e-6 && info->nm_per_px <= 1e9))) {
		ms_err_set(e, "cannot write '%s': nm per pixel %g is out of range", path,
			   info->nm_per_px);
		return NULL;
	}
	if (o->channels > 65535) {
		ms_err_set(e, "cannot write '%s': %" PRIu32 " channels is more than 65535", path,
			   o->channels);
		return NULL;
	}
	struct ms_tiff_writer *w = calloc(1, sizeof *w);
	if (!w || !(w->path = strdup(path))) {
		free(w);
		ms_err_set(e, "out of memory creating '%s'", path);
		return NULL;
	}
	w->info = *info;
	w->frame_bytes = ms_frame_bytes(info);
	w->channels = o->channels ? o->channels : 1;
	w->live = o->live;
	w->force_big = o->bigtiff;
	uint64_t per = (uint64_t)w->frame_bytes + META_PER_FRAME;
	w->big = !w->live && (o->bigtiff || o->expected_frames == 0 ||
			      o->expected_frames > CLASSIC_LIMIT / per);
	w->data0 = w->live ? LIVE_DATA0 : w->big ? 16 : 8;
	if (host_is_be() && info->fmt == MS_PIX_U16 && !(w->swapbuf = malloc(w->frame_bytes))) {
		ms_err_set(e, "out of memory creating '%s'", path);
		free(w->path);
		free(w);
		return NULL;
	}
	if (!(w->f = fopen(path, "wb"))) {
		ms_err_set(e, "cannot create '%s':", path);
		free(w->swapbuf);
		free(w->path);
		free(w);
		return NULL;
	}
	setvbuf(w->f, NULL, _IOFBF, 1 << 20);
	/* The first-IFD offset stays 0 (not yet a TIFF) until a sync or
	 * close writes a directory. */
	unsigned char h[LIVE_DATA0] = {'I', 'I'};
	if (w->big) {
		put16(h + 2, 43);
		put16(h + 4, 8);
	} else {
		put16(h + 2, 42);
	}
	if (wr(w, h, (size_t)w->data0, e) < 0) {
		fclose(w->f);
		remove(path);
		free(w->swapbuf);
		free(w->path);
		free(w);
		return NULL;
	}
	return w;
}

int ms_tiff_write(struct ms_tiff_writer *w, const void *pixels, uint64_t t_ns, ms_err *e)
{
	if (w->failed)
		return ms_err_set(e, "cannot write '%s': an earlier write failed", w->path);
	if (!w->big && !w->live &&
	    w->pos + w->frame_bytes + (w->n + 1) * META_PER_FRAME + 4096 > UINT32_MAX)
		return ms_err_set(e, "cannot write frame %" PRIu64 " to '%s': a classic TIFF ends at "
				  "4 GiB; open it with a larger expected frame count (or 0) to get a "
				  "BigTIFF", w->n, w->path);
	uint64_t frame = w->n / w->channels;
	if (w->n % w->channels == 0 && frame == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 1024;
		uint64_t *t = realloc(w->t_ns, cap * sizeof *t);
		if (!t)
			return ms_err_set(e, "out of memory writing '%s'", w->path);
		w->t_ns = t;
		w->cap = cap;
	}
	const void *src = pixels;
	if (w->swapbuf) {
		memcpy(w->swapbuf, pixels, w->frame_bytes);
		swap16(w->swapbuf, w->frame_bytes);
		src = w->swapbuf;
	}
	if (wr(w, src, w->frame_bytes, e) < 0)
		return -1;
	if (w->n % w->channels == 0)
		w->t_ns[frame] = t_ns;
	w->n++;
	return 0;
}

/* One directory entry: tag, type, count, and the value bytes (LE). */
struct ent {
	uint16_t tag, type;
	uint64_t count;
	const void *data;	/* len bytes; NULL: streamed (see write_ifd) */
	uint64_t len;
	uint64_t off;		/* where an out-of-line value goes */
};

/*
 * ImageJ labels: one per page, or one per frame in a hyperstack (as
 * MagScope writes them, and as ImageJ's Labels list reads them back).
 */
static uint64_t nlabels(const struct ms_tiff_writer *w, bool hyper)
{
	return hyper ? w->n / w->channels : w->n;
}

static uint64_t label_t(const struct ms_tiff_writer *w, bool hyper, uint64_t i)
{
	return w->t_ns[hyper ? i : i / w->channels];
}

/* Characters of a label: the seconds' digits, the point, 9 decimals. */
static uint32_t label_chars(uint64_t t_ns)
{
	uint32_t d = 1;
	for (uint64_t s = t_ns / 1000000000u; s >= 10; s /= 10)
		d++;
	return d + 10;
}

static void ent_num(struct ent *x, unsigned char *store, uint16_t tag, uint16_t type, uint64_t v)
{
	size_t sz = type == TIFF_SHORT ? 2 : type == TIFF_LONG ? 4 : 8;
	if (sz == 2)
		put16(store, (uint16_t)v);
	else if (sz == 4)
		put32(store, (uint32_t)v);
	else
		put64(store, v);
	*x = (struct ent){.tag = tag, .type = type, .count = 1, .data = store, .len = sz};
}

/* ImageJ metadata block: the "IJIJ" header, then each label in UTF-16LE. */
static int write_labels(struct ms_tiff_writer *w, bool hyper, ms_err *e)
{
	uint64_t nl = nlabels(w, hyper);
	unsigned char hdr[12];
	put32(hdr, IJ_MAGIC);
	put32(hdr + 4, IJ_LABELS);
	put32(hdr + 8, (uint32_t)nl);
	if (wr(w, hdr, sizeof hdr, e) < 0)
		return -1;
	for (uint64_t i = 0; i < nl; i++) {
		char s[32];
		unsigned char u[64];
		uint64_t t = label_t(w, hyper, i);
		int len = snprintf(s, sizeof s, "%" PRIu64 ".%09" PRIu64, t / 1000000000u,
				   t % 1000000000u);
		for (int k = 0; k < len; k++)
			put16(u + 2 * k, (unsigned char)s[k]);
		if (wr(w, u, 2 * (size_t)len, e) < 0)
			return -1;
	}
	return 0;
}

/* IJMetadataByteCounts: the header's 12 bytes, then each label's. */
static int write_label_counts(struct ms_tiff_writer *w, bool hyper, ms_err *e)
{
	uint64_t nl = nlabels(w, hyper);
	unsigned char b[4];
	put32(b, 12);
	if (wr(w, b, 4, e) < 0)
		return -1;
	for (uint64_t i = 0; i < nl; i++) {
		put32(b, 2 * label_chars(label_t(w, hyper, i)));
		if (wr(w, b, 4, e) < 0)
			return -1;
	}
	return 0;
}

/*
 * The fixed part of a directory that goes at `at`: entry count, entries
 * and next offset, into buf (at most 16 + 20 * n bytes); out-of-line
 * values are given their offsets right after it. Returns its length.
 */
static size_t ifd_head(const struct ms_tiff_writer *w, struct ent *x, size_t n, uint64_t at,
		       uint64_t next, unsigned char *buf)
{
	size_t esz = w->big ? 20 : 12, inl = w->big ? 8 : 4;
	size_t head = (w->big ? 8 : 2) + n * esz + (w->big ? 8 : 4);
	uint64_t o = at + head;
	for (size_t k = 0; k < n; k++) {
		if (x[k].len <= inl)
			continue;
		x[k].off = o;
		o += x[k].len + x[k].len % 2;
	}
	unsigned char *b = buf;
	if (w->big)
		put64(b, n);
	else
		put16(b, (uint16_t)n);
	b += w->big ? 8 : 2;
	for (size_t k = 0; k < n; k++, b += esz) {
		memset(b, 0, esz);
		put16(b, x[k].tag);
		put16(b + 2, x[k].type);
		if (w->big)
			put64(b + 4, x[k].count);
		else
			put32(b + 4, (uint32_t)x[k].count);
		unsigned char *v = b + (w->big ? 12 : 8);
		if (x[k].len <= inl)
			memcpy(v, x[k].data, x[k].len);
		else if (w->big)
			put64(v, x[k].off);
		else
			put32(v, (uint32_t)x[k].off);
	}
	if (w->big)
		put64(b, next);
	else
		put32(b, (uint32_t)next);
	return head;
}

/*
 * Write one directory at w->pos followed by its out-of-line values; next is
 * the offset of the following directory (0 for the last).
 */
static int write_ifd(struct ms_tiff_writer *w, struct ent *x, size_t n, uint64_t next, bool hyper,
		     ms_err *e)
{
	unsigned char head[16 + 20 * 24];
	size_t hl = ifd_head(w, x, n, w->pos, next, head);
	if (wr(w, head, hl, e) < 0)
		return -1;
	size_t inl = w->big ? 8 : 4;
	for (size_t k = 0; k < n; k++) {
		if (x[k].len <= inl)
			continue;
		if (w->pos != x[k].off) {
			w->failed = true;
			return ms_err_set(e, "internal error laying out '%s'", w->path);
		}
		int rc = x[k].data ? wr(w, x[k].data, x[k].len, e)
		       : x[k].tag == TAG_IJ_DATA ? write_labels(w, hyper, e)
		       : write_label_counts(w, hyper, e);
		if (rc < 0 || pad_even(w, e) < 0)
			return -1;
	}
	return 0;
}

/*
 * The entries of page `page` (sorted by tag); the first page also carries
 * the description, the software and the labels. Returns the count.
 */
struct page_vals {
	unsigned char num[12][8];
	unsigned char xres[8], yres[8];
	unsigned char ijc[8];	/* the label counts when they fit in the entry */
};

static size_t page_entries(struct ms_tiff_writer *w, uint64_t page, struct ent *x,
			   struct page_vals *pv, const char *desc, uint64_t ijc_len, uint64_t ij_len)
{
	static const char software[] = "mstk " MS_VERSION;
	uint16_t offtype = w->big ? TIFF_LONG8 : TIFF_LONG;
	bool scale = w->info.nm_per_px > 0;
	size_t n = 0, v = 0;
	ent_num(&x[n++], pv->num[v++], TIFFTAG_IMAGEWIDTH, TIFF_LONG, w->info.width);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_IMAGELENGTH, TIFF_LONG, w->info.height);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_BITSPERSAMPLE, TIFF_SHORT,
		w->info.fmt == MS_PIX_U8 ? 8 : 16);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_COMPRESSION, TIFF_SHORT, COMPRESSION_NONE);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_PHOTOMETRIC, TIFF_SHORT, PHOTOMETRIC_MINISBLACK);
	if (page == 0)
		x[n++] = (struct ent){.tag = TIFFTAG_IMAGEDESCRIPTION, .type = TIFF_ASCII,
				      .count = strlen(desc) + 1, .data = desc,
				      .len = strlen(desc) + 1};
	ent_num(&x[n++], pv->num[v++], TIFFTAG_STRIPOFFSETS, offtype,
		w->data0 + page * w->frame_bytes);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_SAMPLESPERPIXEL, TIFF_SHORT, 1);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_ROWSPERSTRIP, TIFF_LONG, w->info.height);
	ent_num(&x[n++], pv->num[v++], TIFFTAG_STRIPBYTECOUNTS, offtype, w->frame_bytes);
	if (scale) {
		x[n++] = (struct ent){.tag = TIFFTAG_XRESOLUTION, .type = TIFF_RATIONAL, .count = 1,
				      .data = pv->xres, .len = 8};
		x[n++] = (struct ent){.tag = TIFFTAG_YRESOLUTION, .type = TIFF_RATIONAL, .count = 1,
				      .data = pv->yres, .len = 8};
		/* ImageJ's way: no TIFF unit, "unit=nm" in the description. */
		ent_num(&x[n++], pv->num[v++], TIFFTAG_RESOLUTIONUNIT, TIFF_SHORT, RESUNIT_NONE);
	}
	if (page == 0) {
		x[n++] = (struct ent){.tag = TIFFTAG_SOFTWARE, .type = TIFF_ASCII,
				      .count = sizeof software, .data = software,
				      .len = sizeof software};
		if (ij_len) {
			x[n++] = (struct ent){.tag = TAG_IJ_COUNTS, .type = TIFF_LONG,
					      .count = ijc_len / 4,
					      .data = ijc_len <= 8 ? pv->ijc : NULL, .len = ijc_len};
			x[n++] = (struct ent){.tag = TAG_IJ_DATA, .type = TIFF_BYTE,
					      .count = ij_len, .data = NULL, .len = ij_len};
		}
	}
	return n;
}

/* Bytes a directory and its out-of-line values take. */
static uint64_t ifd_size(const struct ms_tiff_writer *w, const struct ent *x, size_t n)
{
	size_t esz = w->big ? 20 : 12, inl = w->big ? 8 : 4;
	uint64_t size = (w->big ? 16 : 6) + n * esz;
	for (size_t k = 0; k < n; k++)
		if (x[k].len > inl)
			size += x[k].len + x[k].len % 2;
	return size;
}

/* The ImageJ description of a stack of `images` pages. */
static void describe(const struct ms_tiff_writer *w, uint64_t images, bool hyper, char *buf,
		     size_t n)
{
	const char *unit = w->info.nm_per_px > 0 ? "unit=nm\n" : "";
	if (hyper)
		snprintf(buf, n, "ImageJ=1.11a\nimages=%" PRIu64 "\nchannels=%" PRIu32 "\nframes=%"
			 PRIu64 "\nhyperstack=true\nmode=grayscale\n%sloop=false\n", images,
			 w->channels, images / w->channels, unit);
	else
		snprintf(buf, n, "ImageJ=1.11a\nimages=%" PRIu64 "\nframes=%" PRIu64 "\n%sloop=false\n",
			 images, images, unit);
}

static void scale_vals(const struct ms_tiff_writer *w, struct page_vals *pv)
{
	if (w->info.nm_per_px > 0) {
		/* pixels per nm = 1/nm_per_px: store nm_per_px = a/b as b/a */
		uint32_t a, b;
		to_rational(w->info.nm_per_px, &a, &b);
		put32(pv->xres, b);
		put32(pv->xres + 4, a);
		memcpy(pv->yres, pv->xres, 8);
	}
}

/* Write the header: the format's magic and the first directory's offset. */
static int put_header(struct ms_tiff_writer *w, uint64_t ifd0, ms_err *e)
{
	unsigned char h[16] = {'I', 'I'};
	size_t n = w->big ? 16 : 8;
	if (w->big) {
		put16(h + 2, 43);
		put16(h + 4, 8);
		put64(h + 8, ifd0);
	} else {
		put16(h + 2, 42);
		put32(h + 4, (uint32_t)ifd0);
	}
	if (pwrite(fileno(w->f), h, n, 0) != (ssize_t)n)
		return ms_err_set(e, "cannot write '%s':", w->path);
	return 0;
}

int ms_tiff_sync(struct ms_tiff_writer *w, ms_err *e)
{
	if (w->failed)
		return ms_err_set(e, "cannot write '%s': an earlier write failed", w->path);
	if (fflush(w->f) != 0) {
		w->failed = true;
		return ms_err_set(e, "cannot write '%s':", w->path);
	}
	uint64_t images = w->n / w->channels * w->channels;
	if (!w->live || images == 0)
		return 0;
	char desc[256];
	describe(w, images, w->channels > 1, desc, sizeof desc);
	struct page_vals pv;
	scale_vals(w, &pv);
	struct ent x[20];
	size_t n = page_entries(w, 0, x, &pv, desc, 0, 0);
	unsigned char buf[LIVE_DATA0 - LIVE_IFD];
	size_t len = ifd_head(w, x, n, LIVE_IFD, 0, buf);
	for (size_t k = 0; k < n; k++) {
		if (x[k].len <= 4)
			continue;
		size_t at = (size_t)(x[k].off - LIVE_IFD);
		if (at + x[k].len > sizeof buf)
			return ms_err_set(e, "internal error: the provisional directory of '%s' does not "
					  "fit", w->path);
		memcpy(buf + at, x[k].data, x[k].len);
		len = at + x[k].len;
	}
	if (pwrite(fileno(w->f), buf, len, LIVE_IFD) != (ssize_t)len ||
	    (!w->synced && put_header(w, LIVE_IFD, e) < 0)) {
		w->failed = true;
		return ms_err_set(e, "cannot write '%s':", w->path);
	}
	w->synced = true;
	return 0;
}

/*
 * The directories of pages 1..n-1 differ only in their strip offset and
 * in where they and their values sit: one template, patched per page
 * (millions of pages take a second or so, not minutes).
 */
static int write_other_ifds(struct ms_tiff_writer *w, struct page_vals *pv, const char *desc,
			    ms_err *e)
{
	struct ent x[20];
	size_t n = page_entries(w, 1, x, pv, desc, 0, 0);
	size_t esz = w->big ? 20 : 12, inl = w->big ? 8 : 4, first = w->big ? 8 : 2;
	size_t vpos = w->big ? 12 : 8;
	uint64_t size = ifd_size(w, x, n);
	unsigned char t[16 + 20 * 24 + 20 * 16];
	if (size > sizeof t)
		return ms_err_set(e, "internal error laying out '%s'", w->path);
	size_t hl = ifd_head(w, x, n, 0, 0, t);
	for (size_t k = 0; k < n; k++) {
		if (x[k].len <= inl)
			continue;
		memcpy(t + x[k].off, x[k].data, x[k].len);
		if (x[k].len % 2)
			t[x[k].off + x[k].len] = 0;
	}
	for (uint64_t p = 1; p < w->n; p++) {
		uint64_t at = w->pos;
		for (size_t k = 0; k < n; k++) {
			unsigned char *v = t + first + k * esz + vpos;
			uint64_t val = x[k].tag == TIFFTAG_STRIPOFFSETS ? w->data0 + p * w->frame_bytes
				     : x[k].len > inl ? at + x[k].off : UINT64_MAX;
			if (val == UINT64_MAX)
				continue;
			if (w->big)
				put64(v, val);
			else
				put32(v, (uint32_t)val);
		}
		uint64_t next = p + 1 < w->n ? at + size : 0;
		if (w->big)
			put64(t + hl - 8, next);
		else
			put32(t + hl - 4, (uint32_t)next);
		if (wr(w, t, (size_t)size, e) < 0)
			return -1;
	}
	return 0;
}

static int finish(struct ms_tiff_writer *w, ms_err *e)
{
	if (w->n == 0) {
		remove(w->path);
		return ms_err_set(e, "no frames were written to '%s'; removed it (a TIFF needs "
				  "at least one page)", w->path);
	}
	int rc = 0;
	bool hyper = w->channels > 1;
	if (w->n % w->channels) {
		/* Keep every page, as a plain stack, and say so. */
		rc = ms_err_set(e, "'%s': %" PRIu64 " pages are not whole frames of %" PRIu32
				" channels; written as a plain stack", w->path, w->n, w->channels);
		hyper = false;
	}
	/* A live file is a BigTIFF only if it has to be. */
	if (w->live)
		w->big = w->force_big || w->pos + w->n * META_PER_FRAME + 4096 > UINT32_MAX;
	/* Labels only when some frame has a time: a stack of zeros says nothing. */
	bool labels = false;
	uint64_t nl = nlabels(w, hyper), ij_len = 12;
	for (uint64_t i = 0; i < nl; i++) {
		uint64_t t = label_t(w, hyper, i);
		labels |= t != 0;
		ij_len += 2 * (uint64_t)label_chars(t);
	}
	if (!labels)
		ij_len = 0;
	uint64_t ijc_len = labels ? 4 * (nl + 1) : 0;
	if (!w->big && ij_len > UINT32_MAX)
		return ms_err_set(e, "cannot write '%s': too many labels for a classic TIFF", w->path);
	char desc[256];
	describe(w, w->n, hyper, desc, sizeof desc);
	struct page_vals pv;
	scale_vals(w, &pv);
	if (labels && nl == 1) {
		/* One label: its counts go inline in a BigTIFF entry. */
		put32(pv.ijc, 12);
		put32(pv.ijc + 4, 2 * label_chars(label_t(w, hyper, 0)));
	}
	struct ent x[20];
	int wrc = pad_even(w, e);
	uint64_t ifd0 = w->pos;
	if (wrc == 0) {
		size_t n = page_entries(w, 0, x, &pv, desc, ijc_len, ij_len);
		wrc = write_ifd(w, x, n, w->n > 1 ? ifd0 + ifd_size(w, x, n) : 0, hyper, e);
	}
	if (wrc == 0)
		wrc = write_other_ifds(w, &pv, desc, e);
	if (wrc == 0 && !w->big && w->pos > UINT32_MAX)
		wrc = ms_err_set(e, "cannot write '%s': it passed 4 GiB, too big for a classic TIFF",
				 w->path);
	/* Everything else is on disk before the header points at it. */
	if (wrc == 0 && fflush(w->f) != 0)
		wrc = ms_err_set(e, "cannot write '%s':", w->path);
	if (wrc == 0)
		wrc = put_header(w, ifd0, e);
	return wrc ? wrc : rc;
}

int ms_tiff_close_write(struct ms_tiff_writer *w, ms_err *e)
{
	if (!w)
		return 0;
	int rc = w->failed ? ms_err_set(e, "'%s' is incomplete: an earlier write failed%s", w->path,
				       w->synced ? " (it reads up to the last sync)" : "")
			   : finish(w, e);
	if (fclose(w->f) != 0 && rc == 0)
		rc = ms_err_set(e, "cannot write '%s':", w->path);
	free(w->t_ns);
	free(w->swapbuf);
	free(w->path);
	free(w);
	return rc;
}

uint64_t ms_tiff_written(const struct ms_tiff_writer *w)
{
	return w->n;
}

uint64_t ms_tiff_bytes(const struct ms_tiff_writer *w)
{
	return w->pos;
}
