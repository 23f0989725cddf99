#!/bin/sh
# ms-capture: files replayed as a camera at a frame rate, looped, cropped,
# piped on to ms-track; drops, timeouts, signals and a closed pipe; clean
# errors for missing files, bad devices and bad settings; and, when Aravis
# is built in, its fake GenICam camera through the real acquisition path.
. "$(dirname "$0")/lib.sh"

sim="ms-simulate --width 64 --height 48 --fixed 1 --tethered 0 --roi-size 16 --fast -q"

# field NAME FILE: the value of one ms-info line.
field() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$2"; }

test_expect_success 'set-up: a TIFF stack and a frame stream of 10 frames' '
	$sim -n 10 --rois-out rois -o s.tif && $sim -n 10 >s.ms &&
	ms-info s.tif | grep -q "^frames	10"
'

test_expect_success 'a TIFF replayed at 100 frames/s: 10 frames, the rate in the timestamps, in real time' '
	start=$(date +%s%N) &&
	ms-capture -q -d replay:s.tif --fps 100 >out.ms &&
	end=$(date +%s%N) && ms=$(( (end - start) / 1000000 )) && echo "$ms ms" &&
	test $ms -ge 90 &&
	ms-info out.ms >info &&
	test "$(field frames info)" = 10 && test "$(field frame_rate_hz info)" = 100.000 &&
	test "$(field seq info)" = 0..9 && test "$(field complete info)" = yes &&
	test "$(field nm_per_px info)" = 100
'

test_expect_success 'a frame stream replayed at 50 frames/s into a TIFF keeps every pixel' '
	ms-capture -q -d replay:s.ms --fps 50 -o out.tif &&
	ms-info out.tif >info &&
	test "$(field frames info)" = 10 && test "$(field frame_rate_hz info)" = 50.000 &&
	$PY -c "import tifffile, numpy as np; a = tifffile.imread(\"s.tif\"); b = tifffile.imread(\"out.tif\"); assert a.shape == b.shape == (10, 48, 64) and (a == b).all()"
'

test_expect_success '--loop with -n goes round the file and stops at N' '
	ms-capture -q -d replay:s.tif --loop --fast -n 25 -o loop.tif &&
	ms-info loop.tif | grep -q "^frames	25" &&
	$PY -c "import tifffile; a = tifffile.imread(\"s.tif\"); b = tifffile.imread(\"loop.tif\"); assert all((b[k] == a[k % 10]).all() for k in range(25))"
'

test_expect_success 'without --loop a replay ends by itself at the end of the file' '
	ms-capture -q -d replay:s.tif --fast -n 100 >short.ms &&
	ms-info short.ms | grep -q "^frames	10"
'

test_expect_success 'roi crops the replay; nm-per-px goes into the header' '
	ms-capture -q -d replay:s.tif --fast --set roi=8,4,32,16 --nm-per-px 250 -o crop.tif &&
	ms-info crop.tif >info && test "$(field width info)" = 32 && test "$(field height info)" = 16 &&
	test "$(field nm_per_px info)" = 250 &&
	$PY -c "import tifffile; a = tifffile.imread(\"s.tif\"); b = tifffile.imread(\"crop.tif\"); assert (b == a[:, 4:20, 8:40]).all()"
'

test_expect_success 'standard input replays as a camera (replay:-), and MS_CAMERA names the device' '
	$sim -n 5 | ms-capture -q -d replay:- --fast >stdin.ms &&
	ms-info stdin.ms | grep -q "^frames	5" &&
	MS_CAMERA=replay:s.ms ms-capture -q --fast >env.ms &&
	ms-info env.ms | grep -q "^frames	10"
'

test_expect_success 'a replay feeds ms-track live: one track row per bead per frame' '
	ms-capture -q -d replay:s.tif --fps 200 | ms-track -q --rois rois --roi-size 16 >tracks.tsv &&
	test $(grep -vc "^#" tracks.tsv) -eq 10
'

test_expect_success '--settings reads the settings back after --set' '
	ms-capture -d replay:s.tif --set fps=12.5 --loop --set roi=1,2,30,20 --settings >set &&
	grep -q "^fps	12.5	" set && grep -q "^loop	1	" set && grep -q "^roi	1,2,30,20	" set &&
	grep -q "^frames	10	.*read-only" set && grep -q "^timeout	1	" set
'

test_expect_success 'a slow reader makes the camera drop frames, counted and seen as gaps' '
	ms-simulate --width 256 --height 256 --fixed 1 --tethered 0 --roi-size 16 --fast -q -n 4 -o big.tif &&
	ms-capture -d replay:big.tif --loop --fps 1000 --buffers 4 -n 200 2>err |
		{ sleep 0.4; cat >slow.ms; } &&
	ms-info slow.ms >info && test "$(field frames info)" = 200 &&
	grep -q "gaps: frames were dropped" info &&
	dropped=$(sed -n "s/.*, \([0-9]*\) dropped.*/\1/p" err) && echo "dropped $dropped" &&
	last=$(field seq info | sed "s/.*\.\.\([0-9]*\).*/\1/") &&
	test "$dropped" -ge 200 && test $((last + 1)) -eq $((200 + dropped))
'

test_expect_success 'a source that goes quiet counts timeouts and says so once per silence' '
	ms-simulate --width 64 --height 48 --fixed 1 --tethered 0 --roi-size 16 -q --fps 2.5 -n 3 |
		ms-capture -d replay:- --fast --set timeout=0.15 >quiet.ms 2>err &&
	cat err && ms-info quiet.ms | grep -q "^frames	3" &&
	test $(grep -c "no frame from replay:- within the timeout" err) -eq 2 &&
	n=$(sed -n "s/.*dropped, \([0-9]*\) timeouts.*/\1/p" err) && test "$n" -ge 4 && test "$n" -le 5
'

test_expect_success '-v prints a statistics line once a second' '
	ms-capture -v -d replay:s.tif --loop --fps 40 -n 50 >/dev/null 2>err &&
	cat err &&
	grep -q "^ms-capture: replay of s.tif (64x48 u8, file): 64x48 u8" err &&
	grep "^ms-capture: [0-9.]* frames/s, [0-9]* frames, 0 dropped, 0 timeouts$" err >stats &&
	test $(wc -l <stats) -eq 1 &&
	rate=$(sed "s/^ms-capture: \([0-9.]*\) frames.*/\1/" stats) &&
	awk -v r="$rate" "BEGIN { exit !(r > 36 && r < 44) }"
'

test_expect_success 'SIGTERM and SIGINT end the stream with its end record' '
	ms-capture -q -d replay:s.tif --loop --fps 100 >term.ms &
	pid=$!
	sleep 0.5 && kill -TERM $pid && wait $pid; rc=$?
	test $rc -eq 143 && ms-info term.ms | grep -q "^complete	yes" &&
	ms-capture -q -d replay:s.tif --loop --fps 100 -o int.tif &
	pid=$!
	sleep 0.5 && kill -INT $pid && wait $pid; rc=$?
	test $rc -eq 130 && ms-info int.tif | grep -q "^timestamps	yes"
'

test_expect_success 'a closed pipe ends the capture quietly with status 0' '
	ms-capture -d replay:s.tif --loop --fast 2>err | head -c 20000 >/dev/null &&
	! test -s err
'

test_expect_success 'a missing file, a bad device and bad settings fail cleanly' '
	fails_cleanly 1 "cannot open .nope.tif.: No such file or directory" ms-capture -d replay:nope.tif &&
	fails_cleanly 1 "unknown device .webcam.: expected one of replay:FILE" ms-capture -d webcam &&
	fails_cleanly 1 "cannot open ./dev/video99.: No such file" ms-capture -d v4l2:/dev/video99 &&
	fails_cleanly 1 "./dev/null. is not a V4L2 device" ms-capture -d v4l2:/dev/null &&
	fails_cleanly 1 "unknown setting .exposure. for .replay:s.tif.; it has: fps, fast, loop, roi, frames, nm_per_px, timeout" \
		ms-capture -d replay:s.tif --set exposure=10 &&
	fails_cleanly 1 "invalid value .0,0,65,48. for roi: the frames are 64x48" \
		ms-capture -d replay:s.tif --set roi=0,0,65,48 &&
	fails_cleanly 1 "cannot loop over standard input: a pipe can be read only once" \
		ms-capture -d replay:- --loop <s.ms &&
	fails_cleanly 2 "invalid value .fps. for --set: expected NAME=VALUE" ms-capture -d replay:s.tif --set fps &&
	fails_cleanly 2 "invalid value .0. for --fps" ms-capture -d replay:s.tif --fps 0 &&
	! test -e nope.tif
'

# V4L2 through a fake device (tests/lib/v4l2-shim.c, with LD_PRELOAD): not
# under the sanitizers, whose runtime must be the first library loaded.
shim=${MS_UNIT:+$MS_UNIT/../lib/v4l2-shim.so}
if [ -n "$shim" ] && [ -f "$shim" ] && [ "${MS_SAN:-}" != 1 ]; then
	v4l2="env LD_PRELOAD=$shim ms-capture -d v4l2:/dev/mstk-fake-video"

	test_expect_success 'V4L2 (a fake device): settings are set and read back' '
		$v4l2 --set exposure=2500 --set gain=7 --fps 50 --set roi=10,20,32,16 --set format=Y16 \
			--settings >set &&
		cat set &&
		grep -q "^exposure	2500	" set && grep -q "^gain	7	" set && grep -q "^fps	50	" set &&
		grep -q "^roi	10,20,32,16	" set && grep -q "^format	Y16	" set
	'

	test_expect_success 'V4L2: YUYV gives its luma, Y16 u16 and GREY u8, line padding left out' '
		$v4l2 -q --set roi=10,20,32,16 -n 5 -o yuyv.tif &&
		$v4l2 -q --set roi=10,20,32,16 --set format=Y16 -n 5 -o y16.tif &&
		MS_FAKE_V4L2_PAD=0 $v4l2 -q --set format=GREY -n 5 -o grey.tif &&
		MS_FAKE_V4L2_PAD=0 $v4l2 -q --set format=Y16 -n 5 -o y16z.tif &&
		$PY -c "
import tifffile, numpy as np
for f, x0, y0, w, h, m, t in ((\"yuyv.tif\", 10, 20, 32, 16, 1, np.uint8), (\"y16.tif\", 10, 20, 32, 16, 37, np.uint16),
                           (\"grey.tif\", 0, 0, 64, 48, 1, np.uint8), (\"y16z.tif\", 0, 0, 64, 48, 37, np.uint16)):
    a = tifffile.imread(f)
    y, x = np.mgrid[0:h, 0:w]
    assert a.shape == (5, h, w) and a.dtype == t, (f, a.shape, a.dtype)
    for k in range(5):
        assert (a[k] == m * ((x + x0 + 2 * (y + y0) + k) % 256)).all(), (f, k)
"
	'

	test_expect_success 'V4L2: frames at the interval set, stamped by the driver clock on the epoch' '
		before=$(date +%s) &&
		$v4l2 -q --fps 50 -n 20 >v.ms &&
		ms-info v.ms >info && test "$(field frames info)" = 20 && test "$(field seq info)" = 0..19 &&
		test "$(field frame_rate_hz info)" = 50.000 &&
		first=$(field first_frame info | sed "s/.*(\([0-9]*\)[0-9]\{9\} ns)/\1/") &&
		test "$first" -ge "$before" && test "$first" -le $((before + 5))
	'

	test_expect_success 'V4L2: a gap in the driver sequence numbers is a drop' '
		MS_FAKE_V4L2_SKIP=7 $v4l2 -n 20 >gap.ms 2>err &&
		ms-info gap.ms | grep -q "^seq	0..20 (gaps" && grep -q ", 1 dropped, 0 timeouts" err
	'

	test_expect_success 'V4L2: bad settings are refused with the range or the choices' '
		fails_cleanly 1 "invalid value .1e9. for exposure: must be from 100 to 1e+06" $v4l2 --set exposure=1e9 &&
		fails_cleanly 1 "invalid value .MJPG. for format: expected GREY, Y10, Y12, Y16, YUYV or UYVY" \
			$v4l2 --set format=MJPG &&
		fails_cleanly 1 "unknown setting .binning. for .v4l2:/dev/mstk-fake-video.; it has: exposure, gain, fps, roi, format" \
			$v4l2 --set binning=2
	'
fi

if ! ms-capture -d fake: --settings >fake.set 2>fake.err; then
	grep -q "built without it" fake.err || { cat fake.err; exit 1; }
	test_expect_success 'without Aravis, fake: says how to get it' '
		fails_cleanly 1 "needs Aravis (GenICam), and this mstk was built without it" ms-capture -d fake:
	'
	test_done
	exit
fi

test_expect_success 'fake GenICam camera: settings are set and read back' '
	ms-capture -d fake: --set exposure=2500 --set gain=4 --fps 250 --set roi=16,8,64,40 \
		--set binning=1 --set format=u16 --settings >set &&
	cat set &&
	grep -q "^exposure	2500	" set && grep -q "^gain	4	" set && grep -q "^fps	250	" set &&
	grep -q "^roi	16,8,64,40	" set && grep -q "^format	Mono16	" set &&
	grep -q "^sensor	2048,2048	.*read-only" set
'

test_expect_success 'fake GenICam camera: frames arrive at the rate set, with the pattern, region and format' '
	ms-capture -q -d fake: --fps 200 --set roi=16,8,64,40 --set format=u16 -n 60 --buffers 64 >fake.ms &&
	ms-info fake.ms >info &&
	test "$(field frames info)" = 60 && test "$(field seq info)" = 0..59 &&
	test "$(field width info)" = 64 && test "$(field format info)" = u16 &&
	rate=$(field frame_rate_hz info) && echo "rate $rate" &&
	awk -v r="$rate" "BEGIN { exit !(r > 180 && r < 210) }" &&
	ms-capture -q -d fake: --fps 500 --set roi=16,8,64,40 -n 5 -o fake.tif &&
	$PY -c "
import tifffile, numpy as np
a = tifffile.imread(\"fake.tif\")
y, x = np.mgrid[0:40, 0:64]
assert a.shape == (5, 40, 64) and a.dtype == np.uint8
assert (a == ((x + 16 + 2 * (y + 8)) % 256)).all()
"
'

test_expect_success 'fake GenICam camera: the statistics line with -v' '
	ms-capture -v -d fake: --set roi=0,0,32,32 --fps 100 -n 150 --buffers 64 >/dev/null 2>err &&
	cat err &&
	grep -q "^ms-capture: Aravis Fake (serial 1, Aravis fake camera): 32x32 u8" err &&
	grep "^ms-capture: [0-9.]* frames/s, [0-9]* frames, 0 dropped, 0 timeouts$" err >stats &&
	test $(wc -l <stats) -eq 1 &&
	grep -q "^ms-capture: 150 frames in 1\.[0-9]* s (.*), 0 dropped, 0 timeouts" err
'

test_expect_success 'fake GenICam camera: out-of-range settings fail with the range' '
	fails_cleanly 1 "invalid value .1e9. for exposure: this camera takes 10 to 1e+07 us" \
		ms-capture -d fake: --set exposure=1e9 &&
	fails_cleanly 1 "invalid value .2000,0,100,10. for roi: the sensor is 2048x2048" \
		ms-capture -d fake: --set roi=2000,0,100,10 &&
	fails_cleanly 1 "unknown setting .shutter. for .fake:.; it has: exposure, gain, fps, roi, binning, format, sensor" \
		ms-capture -d fake: --set shutter=1
'

test_expect_success '--list shows the cameras, fake: among them' '
	ms-capture --list >list && grep -q "^fake:	" list
'

test_done
