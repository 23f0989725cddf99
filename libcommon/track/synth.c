/*
 * synth: analytic ring beads for
 * tests and the benchmark. See synth.h.
 */
#include "track/synth.h"

#include <math.h>

static void ring_params(double z_nm, double *k, double *s2)
{
	double zu = z_nm / 1000.0;
	double period = 5.0 + 0.4 * (zu + 6.0);	/* 5.0 .. 9.8 px */
	double sig = 9.0 + 0.6 * (zu + 6.0);	/* 9 .. 16.2 px */
	*k = 2 * M_PI / period;
	*s2 = sig * sig;
}

double ms_synth_ring(double r, double z_nm)
{
	double k, s2;
	ring_params(z_nm, &k, &s2);
	return 1.0 + 0.8 * cos(k * r) * exp(-r * r / s2);
}

void ms_synth_bead(float *img, int w, int h, size_t stride, double cx, double cy, double z_nm,
		   int ss)
{
	double k, s2;
	ring_params(z_nm, &k, &s2);
	if (ss < 1)
		ss = 1;
	for (int r = 0; r < h; r++)
		for (int c = 0; c < w; c++) {
			double acc = 0;
			for (int i = 0; i < ss; i++)
				for (int j = 0; j < ss; j++) {
					double dy = r - cy + (i + 0.5) / ss - 0.5;
					double dx = c - cx + (j + 0.5) / ss - 0.5;
					double rr = sqrt(dx * dx + dy * dy);
					acc += 1.0 + 0.8 * cos(k * rr) * exp(-rr * rr / s2);
				}
			img[r * stride + c] = (float)(acc / (ss * ss));
		}
}

void ms_synth_quantise(const float *img, int w, int h, size_t stride, double scale,
		       struct ms_rng *g, enum ms_pixfmt fmt, void *out, size_t out_stride)
{
	double max = fmt == MS_PIX_U8 ? 255 : 65535;
	for (int r = 0; r < h; r++)
		for (int c = 0; c < w; c++) {
			double v = img[r * stride + c] * scale;
			if (g)
				v = ms_rng_poisson(g, v);
			else if (fmt != MS_PIX_NONE)
				v = nearbyint(v);
			size_t o = r * out_stride + c;
			if (fmt == MS_PIX_NONE) {
				((float *)out)[o] = (float)v;
				continue;
			}
			v = v < 0 ? 0 : v > max ? max : v;
			if (fmt == MS_PIX_U8)
				((uint8_t *)out)[o] = (uint8_t)v;
			else
				((uint16_t *)out)[o] = (uint16_t)v;
		}
}
