#!/bin/sh
# The offline path end to end: simulated sweep -> ms-zlut build ->
# simulated tethered beads -> ms-track, checked against ground truth.
. "$(dirname "$0")/lib.sh"

nm=100
common="--nm-per-px $nm --roi-size 64 --format u16 --photons 100000 --fast -q"

# rms FIELD FILE: the value after FIELD in compare-truth output
rms() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$2"; }
# below A B: A < B, numerically
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

test_expect_success 'a simulated sweep builds a Z-LUT' '
	ms-simulate $common --width 384 --height 256 --fixed 6 --tethered 0 --seed 21 \
		--sweep -5000:5000:100 --frames-per-step 2 \
		--rois-out sweep.rois --zfile sweep.z -o sweep.tif &&
	test $(grep -vc "^#" sweep.z) -eq 202 &&
	ms-zlut build -q --rois sweep.rois --z sweep.z -o lut.h5 sweep.tif &&
	ms-zlut show lut.h5 >show &&
	grep -q "^planes	101" show && grep -q "^profile_length	32" show &&
	grep -q "^z_min_nm	-5000" show && grep -q "^z_max_nm	5000" show
'

# Measured (seeds 21/22, the default radial-fit x/y and cubic z fit): x
# 0.00045 px, y 0.00048 px, z 0.65 nm RMS (MagTrack's pipeline gave 0.0087,
# 0.0090 px and 15.3 nm). The bounds sit at 1.5x that, so a regression fails
# here long before it would pass unnoticed; tests/cli/t0410-accuracy.sh holds
# the issue's bars.
test_expect_success 'tethered beads track within 1.5x the measured error of ground truth' '
	ms-simulate $common --width 384 --height 256 --fixed 2 --tethered 6 --seed 22 \
		--tethered-z -1000 --tethered-z-sigma 1500 -n 100 --fps 100 \
		--truth truth.tsv --rois-out run.rois |
	ms-track -q --rois run.rois --zlut lut.h5 >tracks.tsv &&
	awk -v nm_per_px=$nm -f "$MS_SRC/examples/compare-truth.awk" truth.tsv tracks.tsv >cmp &&
	cat cmp &&
	x=$(rms rms_x_px cmp) && y=$(rms rms_y_px cmp) && z=$(rms rms_z_nm cmp) &&
	below "$x" 0.0007 && below "$y" 0.00072 && below "$z" 0.98 &&
	test "$(rms nan_xy cmp)" -eq 0
'

# MagScope's table was made with MagTrack's optics (pixel MTF on the field)
# and nearest-bin profiles; mstk's simulator integrates intensity over the
# pixel, so a bias remains (measured 8.2 nm RMS with the table interpolated
# along z; 129 nm with MagTrack's 7-point parabola).
test_expect_success 'a MagScope text Z-LUT loads and tracks (ROI 50, 200 nm per pixel)' '
	lut="$SHARED/fixtures/magscope-simulation-zlut.txt" &&
	ms-simulate --nm-per-px 200 --roi-size 50 --format u16 --photons 100000 --fast -q \
		--width 300 --height 200 --fixed 3 --tethered 0 --fixed-z 1500 -n 5 --seed 23 \
		--truth t50.tsv --rois-out r50 |
	ms-track -q --rois r50 --roi-size 50 --zlut "$lut" >tr50.tsv &&
	awk -v nm_per_px=200 -f "$MS_SRC/examples/compare-truth.awk" t50.tsv tr50.tsv >cmp50 &&
	cat cmp50 &&
	z=$(rms rms_z_nm cmp50) && below "$z" 12.3 &&
	test "$(rms nan_z cmp50)" -eq 0
'

test_done
