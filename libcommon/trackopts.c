/* trackopts: shared tracking options; see trackopts.h. */
#include "trackopts.h"

#include <string.h>

#include "err.h"
#include "rois.h"

static int odd_points(const struct ms_cli *c, const char *arg)
{
	long n = ms_cli_long(c, arg, 3, 99);
	if (n % 2 == 0)
		ms_usage_error("invalid value '%s' for --%s: must be odd", arg, c->opt_name);
	return (int)n;
}

int ms_trackopts_apply(struct ms_track_params *p, const struct ms_cli *c, int key, const char *arg)
{
	switch (key - MS_KEY_TRACK) {
	case 0: {
		long n = ms_cli_long(c, arg, MS_ROI_SIZE_MIN, MS_ROI_SIZE_MAX);
		if (n % 2)
			ms_usage_error("invalid value '%s' for --roi-size: must be even", arg);
		p->roi_size = (int)n;
		return 1;
	}
	case 1: p->com_bg = ms_cli_choice(c, arg, ms_com_bg_names); return 1;
	case 2: p->xy = ms_cli_choice(c, arg, ms_xy_names); return 1;
	case 3: p->autoconv_iters = (int)ms_cli_long(c, arg, 0, 100); return 1;
	case 4: p->line_ratio = ms_cli_double(c, arg, 0, 1); return 1;
	case 5: p->xy_n_local = odd_points(c, arg); return 1;
	case 6: p->oversample = (int)ms_cli_long(c, arg, 1, 16); return 1;
	case 7: p->weighting = ms_cli_choice(c, arg, ms_weighting_names); return 1;
	case 8: p->z = ms_cli_choice(c, arg, ms_z_names); return 1;
	case 9: p->z_n_local = odd_points(c, arg); return 1;
	case 10: p->z_fit = ms_cli_choice(c, arg, ms_z_fit_names); return 1;
	case 12: p->fit_iters = (int)ms_cli_long(c, arg, 1, 20); return 1;
	case 13: {
		static const char *const wts[] = {"uniform", "poisson", NULL};
		p->fit_weighted = ms_cli_choice(c, arg, wts);
		return 1;
	}
	case 14: p->z_weights = ms_cli_choice(c, arg, ms_z_weights_names); return 1;
	case 15: p->qi_iters = (int)ms_cli_long(c, arg, 1, 100); return 1;
	case 16: p->qi_radial = (int)ms_cli_long(c, arg, 4, 128); return 1;
	case 17: p->qi_angular = (int)ms_cli_long(c, arg, 1, 1024); return 1;
	case 18: {
		char *colon = strchr(arg, ':');
		double lo, hi;
		char buf[64];
		if (!colon || strlen(arg) >= sizeof buf)
			ms_usage_error("invalid value '%s' for --qi-radius: expected MIN:MAX (pixels)", arg);
		memcpy(buf, arg, (size_t)(colon - arg));
		buf[colon - arg] = '\0';
		if (ms_parse_double(buf, &lo) < 0 || ms_parse_double(colon + 1, &hi) < 0 ||
		    !(lo >= 0 && hi > lo && hi <= 256))
			ms_usage_error("invalid value '%s' for --qi-radius: expected MIN:MAX with "
				       "0 <= MIN < MAX <= 256", arg);
		p->qi_rmin = lo;
		p->qi_rmax = hi;
		return 1;
	}
	case 11: p->z_search = (int)ms_cli_long(c, arg, 0, 100000); return 1;
	}
	return 0;
}
