/*
 * trackopts: the tracking-method options that ms-track and ms-zlut share
 * (a Z-LUT must be built with the same profile settings it is used with),
 * as option-table entries and one function that applies them to a
 * struct ms_track_params. The defaults are MagTrack's.
 */
#ifndef MS_TRACKOPTS_H
#define MS_TRACKOPTS_H

#include "cli.h"
#include "track/track.h"

#define MS_KEY_TRACK (MS_KEY_LONG + 100)
/* Keys a program may need to tell apart (was it given explicitly?). */
#define MS_KEY_TRACK_ROI_SIZE (MS_KEY_TRACK + 0)
#define MS_KEY_TRACK_OVERSAMPLE (MS_KEY_TRACK + 6)
#define MS_KEY_TRACK_WEIGHTING (MS_KEY_TRACK + 7)

#define MS_TRACK_OPTS \
	{ "roi-size", MS_KEY_TRACK + 0, "N", "ROI side in pixels, even, 8 to 256 (64)", NULL }, \
	{ "com-background", MS_KEY_TRACK + 1, "MODE", "centre-of-mass background: none, mean, median (median)", "none mean median" }, \
	{ "xy-method", MS_KEY_TRACK + 2, "METHOD", "x/y method: com, autoconv, autoconv-fine, radial-fit, qi (radial-fit)", "com autoconv autoconv-fine radial-fit qi" }, \
	{ "autoconv-iterations", MS_KEY_TRACK + 3, "N", "multi-line autoconvolution passes (5)", NULL }, \
	{ "line-ratio", MS_KEY_TRACK + 4, "X", "band of lines averaged, as a fraction of the ROI (0.1)", NULL }, \
	{ "xy-fit-points", MS_KEY_TRACK + 5, "N", "points in the x/y peak parabola, odd, >= 3 (5)", NULL }, \
	{ "oversample", MS_KEY_TRACK + 6, "N", "radial profile bins per pixel (1)", NULL }, \
	{ "profile-weighting", MS_KEY_TRACK + 7, "MODE", "radial profile weighting: nearest, linear, cubic, bilinear, area (linear)", "nearest linear cubic bilinear area" }, \
	{ "z-method", MS_KEY_TRACK + 8, "METHOD", "profile match: pearson, ssd (pearson)", "pearson ssd" }, \
	{ "z-fit-points", MS_KEY_TRACK + 9, "N", "points in the z peak parabola, odd, >= 3 (7)", NULL }, \
	{ "z-fit", MS_KEY_TRACK + 10, "FIT", "sub-plane z: cubic (LUT interpolated along z), parabola (cubic)", "cubic parabola" }, \
	{ "fit-iterations", MS_KEY_TRACK + 12, "N", "radial-fit Gauss-Newton steps (2)", NULL }, \
	{ "fit-weights", MS_KEY_TRACK + 13, "W", "radial-fit pixel weights: uniform, poisson (uniform)", "uniform poisson" }, \
	{ "qi-iterations", MS_KEY_TRACK + 15, "N", "QI steps (4)", NULL }, \
	{ "qi-radial-steps", MS_KEY_TRACK + 16, "N", "QI radii sampled, 4 to 128 (ROI size / 2)", NULL }, \
	{ "qi-angular-steps", MS_KEY_TRACK + 17, "N", "QI angles sampled per quadrant (ROI size / 2)", NULL }, \
	{ "qi-radius", MS_KEY_TRACK + 18, "MIN:MAX", "QI radius range in pixels (1:ROI size / 2 - 2)", NULL }, \
	{ "z-weights", MS_KEY_TRACK + 14, "W", "profile bin weights in the match: radius, uniform (radius)", "radius uniform" }, \
	{ "z-search", MS_KEY_TRACK + 11, "N", "start the z search within N planes of the previous z, which also wins near-ties; 0: whole table (8)", NULL }

/*
 * Apply option key with argument arg to p. Returns 1 if key was one of
 * MS_TRACK_OPTS, 0 otherwise; a bad value is a usage error (exit 2).
 */
int ms_trackopts_apply(struct ms_track_params *p, const struct ms_cli *c, int key, const char *arg);

#endif
