/* trackopts: shared tracking options; see trackopts.h. */
#include "trackopts.h"

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
	}
	return 0;
}
