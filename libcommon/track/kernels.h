/*
 * kernels: the tracking kernels as plain functions on one float ROI
 * (w x w, row-major, tightly packed), each stateless and thread-safe, with
 * every scratch buffer passed in by the caller so that nothing allocates
 * per ROI. The pipeline in track.h strings them together; the unit tests
 * and the benchmark call them one by one. Coordinates follow the project's
 * contract: the centre of pixel (row r, column c) is at x=c, y=r.
 *
 * The semantics are MagTrack's (reference: tracking-algorithms.md, Part 1
 * section 2) with bounds checks added: a kernel that would read outside
 * the ROI or fit at an edge returns -1 / NaN instead.
 */
#ifndef MS_TRACK_KERNELS_H
#define MS_TRACK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

enum ms_com_bg { MS_COM_BG_NONE, MS_COM_BG_MEAN, MS_COM_BG_MEDIAN };
enum ms_weighting { MS_PROFILE_NEAREST, MS_PROFILE_LINEAR, MS_PROFILE_CUBIC };
enum ms_z_method { MS_Z_PEARSON, MS_Z_SSD };

/* What went wrong with one ROI (ms_xyz.flags). */
enum {
	MS_TRK_XY_BAD = 1,	/* x, y (and so z) are NaN */
	MS_TRK_Z_BAD = 2,	/* z is NaN: no usable profile or the fit failed */
	MS_TRK_EMPTY = 4,	/* the ROI has no contrast (flat, or all zero) */
	MS_TRK_Z_EDGE = 8,	/* z is NaN: the best match is at a table end */
};

/* ---- ROI input and background ---- */

/* uint32 scratch the histogram median of ms_roi_load needs. */
#define MS_ROI_HIST_LEN 4224

/*
 * Copy the w x w ROI at (x0, y0) of a u8/u16 frame (stride pixels per
 * row) into dst as floats. If median is not NULL, also compute the ROI's
 * median (numpy's: the mean of the two middle values, w*w being even) by a
 * histogram of the integer pixels, in hist (MS_ROI_HIST_LEN entries). The
 * caller guarantees the ROI lies inside the frame. Returns 0, or -1 for a
 * pixel format other than u8/u16.
 */
int ms_roi_load(const void *frame, enum ms_pixfmt fmt, size_t stride, int x0, int y0, int w,
		float *dst, double *median, uint32_t *hist);

/* Median of n floats (numpy's definition); NaN if any value is NaN or n is
 * 0. scratch holds n floats. */
double ms_median_f32(const float *v, size_t n, float *scratch);
/* Mean of n floats, accumulated in double. */
double ms_mean_f32(const float *v, size_t n);
/* Whether all n values equal the first (a ROI with no contrast). */
int ms_roi_flat(const float *v, size_t n);

/*
 * Centre of mass. With MS_COM_BG_NONE the weights are the pixel values;
 * otherwise |I - bg| with bg the ROI's mean or median (computed by the
 * caller), so dark and bright rings both count. *mass gets the total
 * weight (may be NULL). Returns 0, or -1 with x = y = NaN when the mass is
 * zero or not finite.
 */
int ms_com(const float *roi, int w, enum ms_com_bg mode, double bg, double *x, double *y,
	   double *mass);

/* ---- sub-pixel helpers ---- */

/*
 * MagTrack's parabolic_vertex: a least-squares parabola through n_local
 * (odd, >= 3) points of data[] around round(est), weighted (h-|t|+1)^2
 * as np.polyfit(w=h-|t|+1) weights them (h = n_local/2). The window
 * centre is clamped to [h, n-1-h]; NaN if it sits at either clamp limit
 * (the peak is too near an edge), if any point is NaN, or if the parabola
 * does not open downwards. The vertex is not limited to the window.
 */
double ms_parabolic_vertex(const float *data, int n, double est, int n_local);

/* ---- XY: autoconvolution ---- */

/* Floats of scratch ms_autoconv needs for a w-pixel ROI. */
size_t ms_autoconv_scratch_len(int w);

/*
 * One MagTrack autoconvolution step on both axes. The profile for y is
 * the mean of the 2*half_lines+1 columns around round(x_old) (clipped to
 * the ROI), the profile for x the mean of as many rows around
 * round(y_old); each is mean-subtracted, multiplied by a Gaussian window
 * (sigma = w/6) centred on the fractional old estimate, and convolved
 * with itself ('same' lags). n_local = 0 takes the argmax k* (half-pixel
 * resolution, MagTrack's auto_conv); otherwise k* is refined with
 * ms_parabolic_vertex(n_local) (auto_conv_multiline_sub_pixel). The centre
 * is (k* + R)/2 with R = (w-1)/2. Returns 0, or -1 with x = y = NaN when
 * the old estimate is not inside the ROI or a fit fails.
 */
int ms_autoconv(const float *roi, int w, double x_old, double y_old, int half_lines, int n_local,
		float *scratch, double *x, double *y);

/*
 * The same multi-line step with the sub-pixel peak taken exactly: the
 * autoconvolution's band-limited (Fourier) interpolant is maximised by
 * Newton's method, instead of fitting a parabola to 5 integer lags. Newton
 * starts at the old estimate, so that must already be on the right peak
 * (within about half a pixel): run a half-pixel ms_autoconv first, as
 * MagTrack's pipeline does. A symmetric bead then gives its centre at
 * any sub-pixel offset, without the parabola's pixel-locking bias (about
 * 0.007 px at worst for a 64 px ROI). Needs a per-thread ms_acfine (FFT
 * plans and buffers for one ROI size). Returns 0, or -1 with NaN.
 */
struct ms_acfine;
struct ms_acfine *ms_acfine_new(int w);	/* NULL: out of memory */
void ms_acfine_free(struct ms_acfine *a);
int ms_autoconv_fine(const float *roi, int w, double x_old, double y_old, int half_lines,
		     struct ms_acfine *a, double *x, double *y);

/* MagTrack's line count rule: half_lines = floor(w * line_ratio / 2). */
int ms_autoconv_half_lines(int w, double line_ratio);

/* ---- radial profile ---- */

/* Number of bins of a radial profile: (w/2) * oversample. */
size_t ms_profile_len(int w, int oversample);
/* Floats of scratch ms_radial_profile needs; allocate it (malloc), since it
 * also holds ints. */
size_t ms_profile_scratch_len(int w, int oversample);

/*
 * Radial profile about (x, y) in prof[ms_profile_len(w, oversample)].
 * A pixel at distance r has s = oversample * r.
 *   NEAREST: MagTrack's: the pixel goes to bin round(s) (half to even);
 *            each bin is the mean of its pixels.
 *   LINEAR:  the pixel is split between bins floor(s) and floor(s)+1 with
 *            weights 1-frac(s) and frac(s); each bin is the weighted mean.
 *   CUBIC:   as LINEAR with the uniform cubic B-spline kernel: bins
 *            floor(s)-1 .. floor(s)+2, weight B3(s - bin). Smoother in the
 *            centre, so the profile of a bead depends least on where its
 *            centre falls within a pixel.
 * Pixels that would fall beyond the last bin are dropped; a bin that gets
 * nothing is NaN. Returns 0, or -1 (all NaN) when x or y is not finite.
 */
int ms_radial_profile(const float *roi, int w, double x, double y, int oversample,
		      enum ms_weighting wt, float *prof, float *scratch);

/* ---- Z lookup ---- */

/*
 * Profiles are compared over bins 1..plen-1 (bin 0 holds the few pixels
 * nearest the centre and may be empty). A normalised profile keeps those
 * plen-1 bins, mean-subtracted over the finite ones, NaN set to 0, scaled
 * to unit Euclidean norm, zero-padded to ms_z_stride(plen) floats.
 */
size_t ms_z_stride(size_t plen);
/* Returns 0, or -1 (out all zeros) when no finite bin or no contrast. */
int ms_z_normalise(const float *prof, size_t plen, float *out);

/*
 * Score every plane (planes: nplanes normalised profiles, stride floats
 * apart) against the normalised profile pn: PEARSON gives the correlation
 * coefficient, SSD qtrk's negative sum of squared differences. Higher is
 * better for both.
 */
void ms_z_scores(const float *pn, const float *planes, size_t nplanes, size_t stride,
		 enum ms_z_method m, float *scores);

/*
 * z (nm) from the scores: argmax, ms_parabolic_vertex(n_local) over plane
 * index, then linear interpolation of the fractional index in z_nm. NaN
 * with *flags |= MS_TRK_Z_EDGE when the window hits a table end or the
 * vertex leaves the table, *flags |= MS_TRK_Z_BAD when the fit fails.
 * *plane (may be NULL) gets the fractional plane index.
 */
double ms_z_fit(const float *scores, size_t nplanes, int n_local, const double *z_nm,
		unsigned *flags, double *plane);

#endif
