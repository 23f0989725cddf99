/*
 * synth: analytic ring-bead images for the unit tests and the benchmark,
 * not a physical model (that is beadsim's job). A bead is radially
 * symmetric about an exact sub-pixel centre, I(r) = 1 + 0.8 cos(2 pi r /
 * P(z)) exp(-r^2 / s(z)^2), with ring period P and envelope s growing
 * smoothly with z, so that the radial profile is a known, monotonic
 * function of z over -6..+6 um. Pixels are sampled at their centres or
 * averaged over ss x ss sub-samples (a pixel's area). Noise comes from rng.h,
 * seeded, so it is reproducible.
 */
#ifndef MS_TRACK_SYNTH_H
#define MS_TRACK_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "rng.h"

/* The bead's relative intensity at radius r (px) and height z (nm). */
double ms_synth_ring(double r, double z_nm);

/* Render a w x h image (stride floats per row) of one bead at (cx, cy). */
void ms_synth_bead(float *img, int w, int h, size_t stride, double cx, double cy, double z_nm,
		   int ss);


/*
 * Write img * scale (Poisson-distributed when g is not NULL) rounded and
 * clipped into a u8/u16 image (out_stride pixels per row), or into floats
 * when fmt is MS_PIX_NONE.
 */
void ms_synth_quantise(const float *img, int w, int h, size_t stride, double scale,
		       struct ms_rng *g, enum ms_pixfmt fmt, void *out, size_t out_stride);

#endif
