#!/bin/sh
# The tracking engine against the issue's bars, on the physical simulator:
# 100 nm per pixel, beads offset up to 2 px from their ROI's centre, z over
# +-5 um, a Z-LUT at 100 nm steps (121 planes, -6..+6 um) built by ms-zlut
# from a simulated sweep, the default methods. Accuracy is the RMS error
# against the simulator's truth; precision the standard deviation over
# repeated noisy frames of one bead, as a ratio to the Cramer-Rao bound of
# ms-simulate --crlb. Each bound sits at 1.5x what was measured (or at the
# bar, where that is lower), so that a regression fails.
. "$(dirname "$0")/lib.sh"

nm=100

# val KEY FILE: the number after KEY
val() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$2"; }
# below A B: A < B
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# lut NAME PHOTONS ROI FRAMES_PER_STEP: a 121-plane LUT from a focus sweep
# of six fixed beads (u16)
lut() {
	ms-simulate --nm-per-px $nm --roi-size $3 --format u16 --photons $2 --fast -q \
		--width $((8 * $3)) --height $((4 * $3)) --min-separation $(($3 + 36)) \
		--fixed 6 --tethered 0 --seed 21 --sweep -6000:6000:100 --frames-per-step $4 \
		--rois-out $1.rois --zfile $1.z -o $1.tif &&
	ms-zlut build -q --roi-size $3 --rois $1.rois --z $1.z -o $1.h5 $1.tif &&
	rm -f $1.tif
}

# run NAME PHOTONS ROI FORMAT [TRACK OPTIONS]: twelve fixed beads through a
# focus sweep from -4900 to 4882 nm in 73 nm steps (135 frames; not on the
# LUT's planes), each bead's ROI moved by whole pixels so that the bead sits
# anywhere within +-2 px of its centre; tracked, and compared with the truth
run() {
	name=$1 ph=$2 roi=$3 fmt=$4
	shift 4
	ms-simulate --nm-per-px $nm --roi-size $roi --format $fmt --photons $ph --fast -q \
		--width $((9 * roi)) --height $((5 * roi)) --min-separation $((roi + 36)) \
		--fixed 12 --tethered 0 --seed 31 --sweep -4900:4882:73 --frames-per-step 1 \
		--truth $name.truth --rois-out $name.rois0 -o $name.tif &&
	awk -v nm=$nm -v h=$((roi / 2)) 'FNR == NR { if (!/^#/ && $1 == 0) {
			fx[$3] = $4 / nm - $7 - h; fy[$3] = $5 / nm - $8 - h }; next }
		/^#/ { print; next }
		{ kx = $1 % 5 - 2; ky = int($1 * 7 / 3) % 5 - 2
		  if (fx[$1] + kx > 2 || fx[$1] + kx < -2) kx -= (kx > 0) - (kx < 0)
		  if (fy[$1] + ky > 2 || fy[$1] + ky < -2) ky -= (ky > 0) - (ky < 0)
		  print $1, $2 - kx, $3 - ky }' $name.truth $name.rois0 >$name.rois &&
	ms-track -q --rois $name.rois --zlut "$@" $name.tif >$name.tsv &&
	awk -v nm_per_px=$nm -f "$MS_SRC/examples/compare-truth.awk" $name.truth $name.tsv \
		>$name.cmp &&
	rm -f $name.tif && cat $name.cmp
}

# offsets NAME: the largest |offset| of a bead from its ROI's centre, px
offsets() {
	awk -v nm=$nm -v h=$(($2 / 2)) 'FNR == NR { if (!/^#/) { x0[$1] = $2; y0[$1] = $3 }; next }
		!/^#/ && $1 == 0 { dx = $4 / nm - x0[$3] - h; dy = $5 / nm - y0[$3] - h
		  m = dx < 0 ? -dx : dx; m = dy > m ? dy : -dy > m ? -dy : m; if (m > max) max = m }
		END { print max }' $1.rois $1.truth
}

test_expect_success 'setup: LUTs from sweeps at 1e4 and 1e3 photons, 64 and 128 px' '
	lut l4 10000 64 2 && lut l3 1000 64 4 && lut l128 10000 128 2 &&
	ms-zlut show l4.h5 | grep -q "^planes	121" &&
	ms-zlut show l128.h5 | grep -q "^profile_length	64"
'

# Measured: x 0.00150, y 0.00152 px, z 0.88 nm RMS (the bars: 0.005 px, 10 nm)
test_expect_success '64 px, 1e4 photons, u16: x/y and z within the bars' '
	run a4 10000 64 u16 l4.h5 &&
	below "$(offsets a4 64)" 2.0001 && below 1.9 "$(offsets a4 64)" &&
	test "$(val nan_xy a4.cmp)" -eq 0 && test "$(val nan_z a4.cmp)" -eq 0 &&
	below "$(val rms_x_px a4.cmp)" 0.00225 && below "$(val rms_y_px a4.cmp)" 0.00228 &&
	below "$(val rms_z_nm a4.cmp)" 1.32
'

# Measured: x 0.00152, y 0.00154 px, z 0.89 nm (8-bit steps of 39 photons)
test_expect_success '64 px, 1e4 photons, u8: the same' '
	run a8 10000 64 u8 l4.h5 &&
	test "$(val nan_xy a8.cmp)" -eq 0 && test "$(val nan_z a8.cmp)" -eq 0 &&
	below "$(val rms_x_px a8.cmp)" 0.00228 && below "$(val rms_y_px a8.cmp)" 0.00231 &&
	below "$(val rms_z_nm a8.cmp)" 1.33
'

# Measured: x 0.0048, y 0.0049 px, z 1.61 nm (the bars: 0.015 px, 15 nm)
test_expect_success '64 px, 1e3 photons: x/y and z within the bars' '
	run a3 1000 64 u16 l3.h5 &&
	test "$(val nan_xy a3.cmp)" -eq 0 && test "$(val nan_z a3.cmp)" -eq 0 &&
	below "$(val rms_x_px a3.cmp)" 0.0072 && below "$(val rms_y_px a3.cmp)" 0.0073 &&
	below "$(val rms_z_nm a3.cmp)" 2.41
'

# Measured: x 0.00121, y 0.00119 px, z 0.73 nm: at least as good as 64 px
test_expect_success '128 px, 1e4 photons: at least as good as 64 px' '
	run a128 10000 128 u16 l128.h5 &&
	test "$(val nan_xy a128.cmp)" -eq 0 && test "$(val nan_z a128.cmp)" -eq 0 &&
	below "$(val rms_x_px a128.cmp)" 0.0018 && below "$(val rms_y_px a128.cmp)" 0.0018 &&
	below "$(val rms_z_nm a128.cmp)" 1.09 &&
	below "$(val rms_x_px a128.cmp)" "$(val rms_x_px a4.cmp)" &&
	below "$(val rms_y_px a128.cmp)" "$(val rms_y_px a4.cmp)" &&
	below "$(val rms_z_nm a128.cmp)" "$(val rms_z_nm a4.cmp)"
'

# MagTrack's autoconv x/y, for comparison (same LUT and z fit): measured
# x 0.0118 px (MagTrack itself: about 0.011 px and 25 nm)
test_expect_success 'the default x/y is at least three times closer than MagTrack autoconv' '
	run m4 10000 64 u16 l4.h5 --xy-method autoconv &&
	below "$(val rms_x_px a4.cmp)" "$(val rms_x_px m4.cmp | awk "{ print \$1 / 3 }")"
'

# precision: NAME Z: 40 frames of twelve fixed beads at z; per bead the SD
# of x, y and z over the frames, averaged over the beads; as ratios to the
# Cramer-Rao bound at that z
precision() {
	ms-simulate --nm-per-px $nm --roi-size 64 --format u16 --photons 10000 --fast -q \
		--width 432 --height 192 --min-separation 100 --fixed 8 --tethered 0 \
		--fixed-z $2 -n 40 --seed 41 --rois-out $1.rois -o $1.tif &&
	ms-track -q --rois $1.rois --zlut l4.h5 $1.tif >$1.tsv &&
	ms-simulate --crlb --nm-per-px $nm --roi-size 64 --format u16 --photons 10000 \
		--fixed-z $2 >$1.crlb &&
	awk 'FNR == NR { if (!/^#/) { bx = $2; by = $3; bz = $4 }; next } /^#/ { next }
		{ n[$3]++; sx[$3] += $4; sy[$3] += $5; sz[$3] += $6
		  qx[$3] += $4 * $4; qy[$3] += $5 * $5; qz[$3] += $6 * $6 }
		END { for (b in n) { k++
			dx += sqrt((qx[b] - sx[b] ^ 2 / n[b]) / (n[b] - 1)) / 100
			dy += sqrt((qy[b] - sy[b] ^ 2 / n[b]) / (n[b] - 1)) / 100
			dz += sqrt((qz[b] - sz[b] ^ 2 / n[b]) / (n[b] - 1)) }
		  printf "sd_x_px %.5f sd_y_px %.5f sd_z_nm %.3f crlb_x_px %.5f crlb_z_nm %.3f ",
			dx / k, dy / k, dz / k, bx, bz
		  printf "ratio_x %.3f ratio_y %.3f ratio_z %.3f\n", dx / k / bx, dy / k / by,
			dz / k / bz }' $1.crlb $1.tsv >$1.prec && cat $1.prec
}

# Measured ratios (x, y; z): -3500 nm 1.14, 1.12; 1.28. -1500 nm 1.07,
# 1.15; 1.17. 0 nm 1.14, 1.20; 1.17. The bead's bright centre saturates
# from 0.4 to 4.3 um (at these settings 50 pixels of a ROI at 500 nm, 61 at
# 1000, 15 at 2000, 31 at 3500): 500 nm 1.38, 1.37; 1.88. 1000 nm 1.24,
# 1.28; 1.57. 2000 nm 1.31, 1.23; 1.34. 3500 nm 1.20, 1.18; 1.33. (With
# the core and 2 px beside it cut out of the x/y fit, before: 500 nm 1.93,
# 1.91; 2.73. 1000 nm 1.97, 2.07; 1.71. 2000 nm 1.57, 1.45; 1.64.) The
# bars (1.5 for x/y, 2 for z) are tighter than 1.5x those, so they are the
# bounds.
for z in -3500 -1500 0 500 1000 2000 3500; do
	test_expect_success "precision at z = $z nm: x/y within 1.5x, z within 2x the Cramer-Rao bound" "
		precision p$z $z &&
		below \$(val ratio_x p$z.prec) 1.5 && below \$(val ratio_y p$z.prec) 1.5 &&
		below \$(val ratio_z p$z.prec) 2
	"
done

test_done
