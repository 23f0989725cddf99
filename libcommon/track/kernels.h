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
enum ms_weighting {
	MS_PROFILE_NEAREST, MS_PROFILE_LINEAR, MS_PROFILE_CUBIC, MS_PROFILE_BILINEAR, MS_PROFILE_AREA
};
enum ms_z_method { MS_Z_PEARSON, MS_Z_SSD };
/* How the best plane is refined: the LUT interpolated along z
 * (ms_z_fit_cubic), or MagTrack's parabola over plane scores (ms_z_fit). */
enum ms_z_fit { MS_ZFIT_CUBIC, MS_ZFIT_PARABOLA };
/* Bin weights of the match (ms_z_bin_weights). */
enum ms_z_weights { MS_ZW_RADIUS, MS_ZW_UNIFORM };

/* What went wrong with one ROI (ms_xyz.flags). */
enum {
	MS_TRK_XY_BAD = 1,	/* x, y (and so z) are NaN */
	MS_TRK_Z_BAD = 2,	/* z is NaN: no usable profile or the fit failed */
	MS_TRK_EMPTY = 4,	/* the ROI has no contrast (flat, or all zero) */
	MS_TRK_Z_EDGE = 8,	/* z is NaN: the best match is at a table end */
	MS_TRK_SATURATED = 16,	/* a note, not a failure: some pixels were at full
				 * scale (radial-fit left the saturated core out) */
};

/* ---- ROI input and background ---- */

/* uint32 scratch the histogram median of ms_roi_load needs. */
#define MS_ROI_HIST_LEN 5120

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

/*
 * The centre of symmetry of a prepared (mean-subtracted, windowed) line of
 * a's w samples (w <= 256): the exact peak of its band-limited
 * autoconvolution, by Newton's method from c0, which must be within about
 * half a sample of it. ms_autoconv_fine's step per axis; QI's too. NaN
 * when the peak is not found near c0 or lies within 2 samples of an end.
 */
double ms_symmetric_centre(struct ms_acfine *a, const float *line, double c0);

/* MagTrack's line count rule: half_lines = floor(w * line_ratio / 2). */
int ms_autoconv_half_lines(int w, double line_ratio);

/* ---- XY: quadrant interpolation ---- */

/*
 * QI (van Loenhout et al. 2012, as qtrk does it): about the current
 * centre, four quadrant profiles are sampled (bilinear interpolation at
 * nang angles per quadrant and nr radii from rmin to rmax, in-bounds
 * samples only); the profile for x is the left half (quadrants 1 + 2)
 * reversed followed by the right half (0 + 3), the one for y likewise with
 * the halves above and below; each is mean-subtracted, windowed and its
 * centre of symmetry found (ms_symmetric_centre: the exact autoconvolution
 * peak, where qtrk fits a 7-point parabola). A shift of d pixels moves each
 * half of a profile by d 2/pi on average over a quadrant, so the centre
 * moves by d = (c - (nr - 1/2)) (rmax - rmin) / nr pi / 2. iters such
 * steps; the start must be within a pixel or so. A ms_qi holds the angle
 * tables, the window and the FFT plans (per thread).
 */
struct ms_qi;
struct ms_qi *ms_qi_new(int nr, int nang, double rmin, double rmax);	/* NULL: out of memory */
void ms_qi_free(struct ms_qi *q);
/* Returns 0, or -1 with NaN when a profile has no contrast or a step fails. */
int ms_qi(const float *roi, int w, double x, double y, int iters, struct ms_qi *q, double *nx,
	  double *ny);

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
 *   BILINEAR: qtrk's: bin b is the mean of the image interpolated
 *            bilinearly on the circle of radius b / oversample (about one
 *            sample per pixel of arc, at least 8).
 *   AREA:    NEAREST by pixel area: each pixel's 4 x 4 sub-pixels are
 *            binned by their own round(s).
 * Pixels that would fall beyond the last bin are dropped; a bin that gets
 * nothing is NaN.
 * Returns 0, or -1 (all NaN) when x or y is not finite.
 */
int ms_radial_profile(const float *roi, int w, double x, double y, int oversample,
		      enum ms_weighting wt, float *prof, float *scratch);
/* The same for the first nb bins (1 <= nb <= ms_profile_max_len: the
 * corners of the ROI, with the centre a few pixels off, lie within
 * (3w/4 + 4) oversample bins); pixels beyond them are never visited, and
 * bins beyond the ROI are NaN. */
size_t ms_profile_max_len(int w, int oversample);
int ms_radial_profile_n(const float *roi, int w, double x, double y, int oversample,
			enum ms_weighting wt, int nb, float *prof, float *scratch);

/* ---- XY: radial-symmetry fit ---- */

/* Floats of scratch ms_radial_fit, ms_radial_fit_taper and
 * ms_radial_template need. */
size_t ms_radial_fit_scratch_len(int w, int oversample);

/*
 * Refine a centre (x, y) by iters Gauss-Newton steps of a least-squares
 * fit of the model T(|p - c|) to the pixels p of the ROI, T being the
 * interpolating cubic spline through the nb bins of the radial profile
 * prof (ms_radial_profile_n's, any weighting), at s = oversample |p - c|
 * < nb - 2, leaving out the pixels within rmin of the centre and the bins
 * below oversample * rmin (a saturated core: a clipped pixel carries no
 * information, and the bins beside a clipped edge would bend the
 * template where it is steepest). NaN pixels (masked) are left out too. weighted: each pixel weighs 1/T
 * (Poisson variance, for data whose zero is zero photons); else all weigh
 * 1. The profile should be taken about (x, y), which must be within a few
 * tenths of a pixel of the centre. Returns 0, or -1 with NaN when a step
 * exceeds a pixel, the fit is singular or too few bins remain.
 */
int ms_radial_fit(const float *roi, int w, double x, double y, const float *prof, int nb,
		  int oversample, double rmin, int iters, int weighted, float *scratch, double *nx,
		  double *ny);
/*
 * A template for ms_radial_fit taken by least squares rather than by
 * averaging in bins: the cubic spline with knots at the bins (the fit's
 * end conditions: straight from an inner start) fitted to the pixels at
 * rmin <= |p - (x, y)| < (nb - 2) / oversample, written as the nb bin
 * values it interpolates (NaN below bin floor(oversample * rmin)), so that
 * ms_radial_fit_taper with the same rmin, whose template starts at that
 * bin, reads back exactly this spline. Bins average a steep profile over
 * their width, and a spline through them misses a sharp bend; this
 * follows the pixels. Its last two bins are held by the end condition
 * rather than the pixels. scratch: ms_radial_fit_scratch_len floats.
 * Returns 0, or -1 (all NaN) when too few pixels or bins remain.
 */
int ms_radial_template(const float *roi, int w, double x, double y, int oversample, double rmin,
		       int nb, float *prof, float *scratch);
/*
 * The same with the core weighed down gradually rather than cut: a pixel
 * at radius r weighs clamp((r - rmin) / taper, 0, 1) (taper > 0, px), and
 * the template is read from bin floor(oversample * rmin) up, so that no
 * pixel enters or leaves the fit at once as the centre or rmin moves a
 * little. taper 0 is ms_radial_fit.
 */
int ms_radial_fit_taper(const float *roi, int w, double x, double y, const float *prof, int nb,
			int oversample, double rmin, double taper, int iters, int weighted,
			float *scratch, double *nx, double *ny);

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
 * Bin weights for the match. UNIFORM is MagTrack's Pearson: every bin
 * counts the same. RADIUS weighs bin b by b, the number of pixels it
 * averages (so the inverse of its noise variance): the match is then the
 * weighted least-squares one, and the noisy inner bins, which hold a
 * few pixels each, no longer set the precision. sw (ms_z_stride(plen)
 * floats) gets sqrt(weight) per normalised element (bin i+1), 0 past the
 * end.
 */
void ms_z_bin_weights(size_t plen, enum ms_z_weights zw, float *sw);
/*
 * The general normalisation: bins first .. plen-1 only (first >= 1; the
 * others are 0), and with sw (NULL: uniform) the weighted mean taken out
 * and each element scaled by sqrt(weight) before the unit norm, so that a
 * dot product of two normalised profiles is their weighted Pearson
 * coefficient.
 */
int ms_z_normalise_from(const float *prof, size_t plen, size_t first, const float *sw,
			float *out);

/*
 * Score every plane (planes: nplanes normalised profiles, stride floats
 * apart) against the normalised profile pn: PEARSON gives the correlation
 * coefficient, SSD qtrk's negative sum of squared differences. Higher is
 * better for both.
 */
void ms_z_scores(const float *pn, const float *planes, size_t nplanes, size_t stride,
		 enum ms_z_method m, float *scores);

/*
 * Scores with the bins below first left out on both sides (a saturated
 * core): pn from ms_z_normalise_from(first, sw), each plane (normalised
 * with the same sw) re-centred and re-scaled over bins first.. from its
 * stored form, so the scores are the Pearson coefficients (or qtrk's SSD)
 * of those bins alone. stats (2 nplanes floats) receives each plane's mean and inverse
 * norm over those bins, for ms_z_gram_from.
 */
void ms_z_scores_from(const float *pn, const float *planes, size_t nplanes, size_t plen,
		      size_t first, const float *sw, const double *prefix, enum ms_z_method m,
		      float *scores, float *stats);
/*
 * Per plane, the running sums (from bin 1) of sqrt(weight) x element and
 * of element squared, so that ms_z_scores_from needs two subtractions per
 * plane for any first bin, not a pass over the bins (prefix may be NULL
 * there). ms_z_prefix_len(plen) doubles per plane.
 */
size_t ms_z_prefix_len(size_t plen);
void ms_z_prefix(const float *planes, size_t nplanes, size_t plen, const float *sw,
		 double *prefix);
/* ms_z_gram's band over the same bins, for planes lo .. hi-1. */
void ms_z_gram_from(const float *planes, size_t nplanes, size_t plen, size_t first,
		    const float *sw, const float *stats, size_t lo, size_t hi, float *gram);

/* Index of the highest of scores[lo..hi-1] (lo < hi). */
size_t ms_z_argmax(const float *scores, size_t lo, size_t hi);

/*
 * The band of the planes' Gram matrix that the z interpolation needs:
 * gram[4k + d] = <plane k, plane k+d> for d = 0..3 (0 past the last
 * plane). Computed once per LUT; gram holds 4 * nplanes floats.
 */
void ms_z_gram(const float *planes, size_t nplanes, size_t stride, float *gram);

/*
 * z (nm) with the LUT interpolated along z: between planes k and k+1 the
 * reference profile is the Catmull-Rom cubic through planes k-1 .. k+2,
 * L(u) = sum_j c_j(u) L_j, and the match is maximised over the continuous
 * fractional plane index u instead of fitting a parabola to plane scores.
 * Because the planes and the measured profile p are normalised, the match
 * at any u follows from the plane scores s_j = <p, L_j> and the Gram band:
 * <p, L(u)> = sum c_j s_j and |L(u)|^2 = c^T G c, so PEARSON maximises
 * <p, L(u)> / |L(u)| and SSD minimises |p - L(u)|^2 = 1 - 2<p, L(u)> +
 * |L(u)|^2, each at a few dozen flops per trial u. best is the plane with
 * the highest score; scores[best-2 .. best+2] (those inside the table)
 * must be valid. u is searched over [best-1, best+1] on a 1/16-plane grid,
 * then by golden section to 1e-4 plane. The first and last intervals have
 * no outer neighbour to interpolate with, so u is confined to [1, n-2]: a
 * match at (or pinned against) that limit, or best at a table end, gives
 * NaN with *flags |= MS_TRK_Z_EDGE. *plane (may be NULL) gets u; z maps u
 * linearly into z_nm.
 */
double ms_z_fit_cubic(const float *scores, const float *gram, size_t nplanes, size_t best,
		      enum ms_z_method m, const double *z_nm, unsigned *flags, double *plane);

/*
 * z (nm) from the scores: argmax, ms_parabolic_vertex(n_local) over plane
 * index, then linear interpolation of the fractional index in z_nm. NaN
 * with *flags |= MS_TRK_Z_EDGE when the window hits a table end or the
 * vertex leaves the table, *flags |= MS_TRK_Z_BAD when the fit fails.
 * *plane (may be NULL) gets the fractional plane index.
 */
double ms_z_fit(const float *scores, size_t nplanes, int n_local, const double *z_nm,
		unsigned *flags, double *plane);
/* The same from a given best plane (reading scores[best-h .. best+h]). */
double ms_z_fit_parabola(const float *scores, size_t nplanes, size_t best, int n_local,
			 const double *z_nm, unsigned *flags, double *plane);

#endif
