#!/bin/sh
# ms-track --data-dir: MagScope's saving from the shell (data modes, dated
# file names in local time, rotation attribute), files readable while
# written and after a SIGKILL (ms-simulate then ends on the closed pipe),
# and the usage errors.
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup: a short simulated run' '
	ms-simulate --width 256 --height 192 --fixed 2 --tethered 2 --roi-size 32 -n 12 --fast \
		--format u16 --seed 5 -q --rois-out rois -o s.tif
'

# check_dir DIR WANT: the files in DIR, summarised by h5py and tifffile, are WANT.
check_dir() {
	$PY - "$1" >got <<-'EOF'
	import sys, glob, os, re, h5py, tifffile
	for p in sorted(glob.glob(sys.argv[1] + "/*")):
	    n = os.path.basename(p)
	    if re.fullmatch(r"Tracking Data \d{4}-\d\d-\d\d \d\d-\d\d-\d\d\.\d{6}\.h5", n):
	        g = h5py.File(p, "r")["tracking"]
	        print("tracks", g["frame_timestamps_ns"].shape[0], g["bead_ids"].shape[0],
	              int(g.attrs["rotation_interval_ns"]) // 60000000000)
	    elif re.fullmatch(r"Video \d{4}-\d\d-\d\d \d\d-\d\d-\d\d\.\d{3}\.tif", n):
	        t = tifffile.TiffFile(p); s = t.series[0]
	        print("video", s.axes, s.shape, s.dtype, len(t.imagej_metadata["Labels"]))
	    else:
	        print("unexpected", n)
	EOF
	echo "$2" >want
	diff want got
}

test_expect_success '--data-dir with track+roi-video: one tracks file and one ROI hyperstack' '
	ms-track -q --rois rois --roi-size 32 --data-dir out --mode track+roi-video s.tif >stdout &&
	! test -s stdout &&
	check_dir out "tracks 12 48 60
video TCYX (12, 4, 32, 32) uint16 12"
'

test_expect_success 'each mode saves exactly its files' '
	ms-track -q --rois rois --roi-size 32 --data-dir m1 --mode track s.tif &&
	check_dir m1 "tracks 12 48 60" &&
	ms-track -q --rois rois --roi-size 32 --data-dir m2 --mode track+full-video s.tif &&
	check_dir m2 "tracks 12 48 60
video TYX (12, 192, 256) uint16 12" &&
	ms-track -q --rois rois --roi-size 32 --data-dir m3 --mode roi-video s.tif &&
	check_dir m3 "video TCYX (12, 4, 32, 32) uint16 12" &&
	ms-track -q --rois rois --roi-size 32 --data-dir m4 --mode full-video s.tif &&
	check_dir m4 "video TYX (12, 192, 256) uint16 12"
'

test_expect_success 'the video holds the input frames and their times' '
	$PY - <<-EOF
	import glob, tifffile, numpy as np
	a = tifffile.imread("s.tif"); b = tifffile.imread(glob.glob("m4/*.tif")[0])
	assert np.array_equal(a, b)
	la = tifffile.TiffFile("s.tif").imagej_metadata["Labels"]
	lb = tifffile.TiffFile(glob.glob("m4/*.tif")[0]).imagej_metadata["Labels"]
	assert [float(x) for x in la] == [float(x) for x in lb], (la[:2], lb[:2])
	EOF
'

test_expect_success 'the tracks equal those of -o, and -o still works beside --data-dir' '
	ms-track -q --rois rois --roi-size 32 -o both.h5 --data-dir m5 s.tif &&
	ms-info --tsv both.h5 >a.tsv &&
	ms-info --tsv m5/*.h5 >b.tsv &&
	cmp a.tsv b.tsv && test $(grep -vc "^#" a.tsv) -eq 48
'

test_expect_success 'file names are in local time (TZ), and --rotate 0 records no rotation' '
	before=$(TZ=JST-9 date +%Y-%m-%d) &&
	TZ=JST-9 ms-track -q --rois rois --roi-size 32 --data-dir tz --rotate 0 s.tif &&
	after=$(TZ=JST-9 date +%Y-%m-%d) &&
	n=$(ls tz) &&
	case "$n" in "Tracking Data $before "*|"Tracking Data $after "*) ;; *) echo "$n"; false ;; esac &&
	check_dir tz "tracks 12 48 0" &&
	$PY - tz <<-EOF
	import sys, glob, os, time, h5py
	p = glob.glob(sys.argv[1] + "/*.h5")[0]
	start = int(h5py.File(p, "r")["tracking"].attrs["file_start_ns"])
	# the name is file_start in Tokyo time (UTC+9), to the microsecond
	t = time.gmtime(start // 10**9 + 9 * 3600)
	want = "Tracking Data " + time.strftime("%Y-%m-%d %H-%M-%S", t) + ".%06d.h5" % (start % 10**9 // 1000)
	assert os.path.basename(p) == want, (p, want)
	EOF
'

test_expect_success 'a second run into the same folder takes new names' '
	ms-track -q --rois rois --roi-size 32 --data-dir out --mode track+roi-video s.tif &&
	test $(ls out | wc -l) -eq 4
'

test_expect_success 'SIGKILL mid-run: the tracks (SWMR) and the video read up to the last batch' '
	ms-simulate --width 256 --height 192 --fixed 2 --tethered 2 --roi-size 32 --fps 100 \
		--seed 5 -q | ms-track -q --rois rois --roi-size 32 --batch 4 --data-dir kill \
		--mode track+full-video &
	pid=$!
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		sleep 0.25
		ms-info kill/*.h5 2>/dev/null | grep -q "^frames	[1-9][0-9]" && break
	done
	kill -KILL $pid
	wait
	ms-info kill/*.h5 >info &&
	frames=$(awk -F"	" "\$1 == \"frames\" { print \$2 }" info) &&
	test "$frames" -ge 10 &&
	$PY - kill "$frames" <<-EOF
	import sys, glob, h5py, tifffile
	g = h5py.File(glob.glob(sys.argv[1] + "/*.h5")[0], "r", swmr=True)["tracking"]
	n = g["frame_timestamps_ns"].shape[0]
	assert n >= int(sys.argv[2]), n
	assert list(g["frame_offsets"][-2:]) == [4 * (n - 1), 4 * n]
	v = tifffile.TiffFile(glob.glob(sys.argv[1] + "/*.tif")[0]).series[0]
	assert v.shape[0] >= n - 4 and v.shape[1:] == (192, 256), (v.shape, n)
	EOF
'

test_expect_success 'usage errors: --mode and --rotate need --data-dir; bad values' '
	fails_cleanly 2 "go with --data-dir" ms-track --rois rois --mode track s.tif &&
	fails_cleanly 2 "go with --data-dir" ms-track --rois rois --rotate 5 s.tif &&
	fails_cleanly 2 "invalid value .video. for --mode: must be one of track, track+roi-video" \
		ms-track --rois rois --data-dir x --mode video s.tif &&
	fails_cleanly 2 "invalid value .-1. for --rotate" ms-track --rois rois --data-dir x --rotate -1 s.tif
'

test_expect_success 'a folder that cannot be made is a clean failure' '
	: >plain &&
	fails_cleanly 1 "cannot use folder .plain." ms-track --rois rois --roi-size 32 --data-dir plain/sub s.tif
'

test_done
