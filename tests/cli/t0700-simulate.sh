#!/bin/sh
# ms-simulate: reproducible frames, truth and ROI lists that agree, sweeps,
# and refusals of impossible requests.
. "$(dirname "$0")/lib.sh"

sim="ms-simulate --width 256 --height 192 --fixed 2 --tethered 2 --roi-size 48 --fast -q"

test_expect_success 'the same seed gives byte-identical frames; another seed does not' '
	$sim -n 4 --seed 7 >a && $sim -n 4 --seed 7 >b && cmp a b &&
	$sim -n 4 --seed 8 >c && ! cmp -s a c
'

test_expect_success 'truth has one row per bead per frame; the ROI list one line per bead' '
	$sim -n 6 --seed 7 --truth truth.tsv --rois-out rois >/dev/null &&
	head -n 1 truth.tsv | grep -q "^# frame	t_ns	bead	x_nm	y_nm	z_nm	roi_x0	roi_y0" &&
	test $(grep -vc "^#" truth.tsv) -eq 24 &&
	test $(grep -vc "^#" rois) -eq 4
'

test_expect_success 'each bead sits near the centre of its ROI, fixed beads do not move' '
	awk -F"\t" "!/^#/ { cx = \$4 / 100 - \$7; cy = \$5 / 100 - \$8;
		if (cx < 18 || cx > 30 || cy < 18 || cy > 30) { print \"off-centre: \" \$0; bad = 1 } }
		END { exit bad }" truth.tsv &&
	test $(awk -F"\t" "!/^#/ && \$3 == 0 { print \$4, \$5 }" truth.tsv | sort -u | wc -l) -eq 1 &&
	test $(awk -F"\t" "!/^#/ && \$3 == 3 { print \$4, \$5 }" truth.tsv | sort -u | wc -l) -eq 6
'

test_expect_success 'a one-frame run places the beads exactly as a long run' '
	$sim -n 1 --seed 7 --rois-out rois1 >/dev/null && cmp rois rois1
'

test_expect_success 'a sweep writes one z per frame and ends by itself' '
	$sim --tethered 0 --sweep -200:200:100 --frames-per-step 3 --zfile z --truth st.tsv >sw &&
	test $(wc -l <z) -eq 15 &&
	test "$(sort -un z | tr "\n" " ")" = "-200 -100 0 100 200 " &&
	ms-info sw | grep -q "^frames	15" &&
	awk -F"\t" "!/^#/ && \$3 == 0 { print \$6 + 0 }" st.tsv >zt &&
	awk "{ print \$1 + 0 }" z | cmp - zt
'

test_expect_success 'the focus offset moves every bead in z' '
	$sim -n 1 --focus 700 --fixed-z 100 --truth f.tsv >/dev/null &&
	awk -F"\t" "!/^#/ && \$3 == 0 { exit !(\$6 == 800) }" f.tsv
'

test_expect_success 'u16 with photons 0 is noise-free, so frames of fixed beads repeat' '
	ms-simulate --width 128 --height 96 --fixed 1 --tethered 0 --roi-size 32 --fast -q \
		--format u16 --photons 0 -n 3 -o q.tif &&
	$PY -c "import tifffile; a = tifffile.imread(\"q.tif\"); assert (a[0] == a[2]).all() and a.max() > 20000, a.max()"
'

test_expect_success 'paced frames arrive at the requested rate' '
	start=$(date +%s%N) &&
	ms-simulate --width 64 --height 64 --fixed 1 --tethered 0 --roi-size 16 -q --fps 50 -n 26 >/dev/null &&
	end=$(date +%s%N) &&
	ms=$(( (end - start) / 1000000 )) && echo "$ms ms" &&
	test $ms -ge 480
'

test_expect_success 'impossible requests are refused with the reason' '
	fails_cleanly 1 "cannot place 500 fixed and 3 tethered beads in a 512x256 frame" ms-simulate --fixed 500 -n 1 &&
	fails_cleanly 2 "STOP is not START plus a whole number of STEPs" ms-simulate --sweep 0:100:30 &&
	fails_cleanly 2 "STEP must go from START towards STOP" ms-simulate --sweep 100:0:10 &&
	fails_cleanly 2 "invalid value .u12. for --format" ms-simulate --format u12 &&
	fails_cleanly 2 "invalid value .-3. for --frames" ms-simulate -n -3
'

test_expect_success 'a closed pipe ends the camera quietly with status 0' '
	ms-simulate --width 64 --height 64 --fixed 1 --tethered 0 --roi-size 16 --fast 2>err | head -c 100 >/dev/null &&
	! test -s err
'

test_expect_success 'SIGTERM ends an endless stream with its end record' '
	ms-simulate --width 64 --height 64 --fixed 1 --tethered 0 --roi-size 16 --fps 100 -q >long &
	pid=$!
	sleep 1 && kill -TERM $pid && wait $pid; rc=$?
	test $rc -eq 143 && ms-info long >info && grep -q "^complete	yes" info
'

test_expect_success '--crlb prints the bound at each sweep step, shrinking with photons' '
	ms-simulate --crlb --format u16 --photons 10000 --sweep -2000:2000:1000 >b4 &&
	head -n 1 b4 | grep -q "^# z_nm	crlb_x_px	crlb_y_px	crlb_z_nm$" &&
	test $(grep -vc "^#" b4) -eq 5 &&
	ms-simulate --crlb --format u16 --photons 40000 --fixed-z -1000 >b16 &&
	test $(grep -vc "^#" b16) -eq 1 &&
	awk "FNR == NR { if (\$1 == -1000) { x = \$2; z = \$4 }; next } !/^#/ {
		r = x / \$2; q = z / \$4; exit !(r > 1.99 && r < 2.01 && q > 1.99 && q < 2.01) }" b4 b16
'

test_expect_success '--crlb refuses no photons and frame outputs' '
	fails_cleanly 2 "photons" ms-simulate --crlb --photons 0 &&
	fails_cleanly 2 "crlb" ms-simulate --crlb -o x.tif
'

test_done
