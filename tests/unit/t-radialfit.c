/*
 * t-radialfit: the radial fit's eight-lane (AVX2) rows against its four-
 * lane ones. This file compiles libcommon/track/radialfit.c a second time
 * with the eight-lane path left out (MS_RADIALFIT_4WIDE) and its public
 * names changed, so that both can run on the same noisy beads: on a CPU
 * with AVX2 the library takes the eight-lane rows, and the centres must
 * agree to float rounding. (t-track tests the fit's accuracy itself.)
 */
#define MS_RADIALFIT_4WIDE 1
#define ms_radial_fit four_radial_fit
#define ms_radial_fit_taper four_radial_fit_taper
#define ms_radial_template four_radial_template
#define ms_radial_fit_scratch_len four_radial_fit_scratch_len
#include "track/radialfit.c"
#undef ms_radial_fit
#undef ms_radial_fit_taper
#undef ms_radial_template
#undef ms_radial_fit_scratch_len

#include <stdio.h>
#include <stdlib.h>

#include "rng.h"
#include "track/synth.h"
#include "../lib/tap.h"

/* The library's own, which kernels.h declared above under the other names. */
size_t ms_radial_fit_scratch_len(int w, int oversample);
int ms_radial_fit(const float *roi, int w, double x, double y, const float *prof, int nb,
		  int oversample, double rmin, int iters, int weighted, float *scratch, double *nx,
		  double *ny);

static void compare(int w, int weighted, double rmin)
{
	size_t w2 = (size_t)w * w;
	int nb = (int)ms_profile_max_len(w, 1);
	float *roi = malloc(w2 * sizeof *roi), *prof = malloc((size_t)nb * sizeof *prof);
	float *ps = malloc(ms_profile_scratch_len(w, 1) * sizeof *ps);
	float *sa = malloc(ms_radial_fit_scratch_len(w, 1) * sizeof *sa);
	float *sb = malloc(four_radial_fit_scratch_len(w, 1) * sizeof *sb);
	struct ms_rng g;
	ms_rng_seed(&g, 7 + (uint64_t)w);
	double maxd = 0, maxerr = 0;
	int fails = 0, n = 60;
	for (int i = 0; i < n; i++) {
		double cx = w / 2 + 4 * ms_rng_uniform(&g) - 2, cy = w / 2 + 4 * ms_rng_uniform(&g) - 2;
		double z = -4000 + 8000 * ms_rng_uniform(&g), scale = 20000;
		ms_synth_bead(roi, w, w, (size_t)w, cx, cy, z, 2);
		for (size_t k = 0; k < w2; k++)
			roi[k] += (float)(sqrt(roi[k] * scale) / scale * ms_rng_normal(&g));
		/* from a start a few hundredths off, as the pipeline's is */
		double x0 = cx + 0.03, y0 = cy - 0.02, xa, ya, xb, yb;
		ms_radial_profile_n(roi, w, x0, y0, 1, MS_PROFILE_LINEAR, nb, prof, ps);
		int ra = ms_radial_fit(roi, w, x0, y0, prof, nb, 1, rmin, 2, weighted, sa, &xa, &ya);
		int rb = four_radial_fit(roi, w, x0, y0, prof, nb, 1, rmin, 2, weighted, sb, &xb, &yb);
		if (ra != 0 || rb != 0) {
			fails++;
			continue;
		}
		maxd = fmax(maxd, fmax(fabs(xa - xb), fabs(ya - yb)));
		maxerr = fmax(maxerr, fmax(fabs(xa - cx), fabs(ya - cy)));
	}
	/* a few float roundings in sums of thousands of pixels: about 1e-6 px;
	 * an arithmetic slip in either path would show as 1e-3 or more */
	tap_ok(fails == 0 && maxd < 2e-5 && maxerr < 0.02,
	       "%d px, %s, core %g px: eight-lane and four-lane centres agree to %.2g px "
	       "(%d of %d fits failed; worst error against the truth %.4f px)", w,
	       weighted ? "weighted" : "unweighted", rmin, maxd, fails, n, maxerr);
	free(sb);
	free(sa);
	free(ps);
	free(prof);
	free(roi);
}

int main(void)
{
	tap_diag("this CPU %s AVX2: the library's rows are %s-lane", 
		 __builtin_cpu_supports("avx2") ? "has" : "lacks",
		 __builtin_cpu_supports("avx2") ? "eight" : "four");
	compare(64, 0, 0);
	compare(128, 0, 0);
	compare(64, 1, 0);
	compare(64, 0, 3);
	return tap_done();
}
