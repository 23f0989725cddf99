#!/bin/sh
# Frames in shared memory: ms-simulate and ms-capture with --shm write a
# descriptor stream that ms-track and ms-info read with no option; a
# deliberately slow reader (stopped for a second) misses frames, counts,
# reports and timestamps them, while the camera keeps its rate; a tracker
# that lags shows its ring filling in its status, and draining; and the
# ring is gone however its producer ends: done, signalled, its reader gone,
# failed, or - after SIGKILL - at the next producer's start.
. "$(dirname "$0")/lib.sh"

small="ms-simulate --width 64 --height 48 --fixed 1 --tethered 0 --roi-size 16"
mid="ms-simulate --width 128 --height 96 --fixed 2 --tethered 2 --roi-size 32"

# field NAME FILE: the value of one ms-info line.
field() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$2"; }
# ring_of FILE: the ring a producer run with -v named in FILE.
ring_of() { sed -n 's/.*frames in shared-memory ring \(\/[^ ]*\) .*/\1/p' "$1"; }
# await SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS.
await() {
	aw_n=$(($1 * 20))
	shift
	while ! "$@" >/dev/null 2>&1; do
		aw_n=$((aw_n - 1))
		[ $aw_n -gt 0 ] || { echo "waited in vain for: $*"; return 1; }
		sleep 0.05
	done
}
has_ring() { test -n "$(ring_of "$1")"; }

test_expect_success 'set-up: ROI lists' '
	$small -n 1 --fast --rois-out r16.tsv >/dev/null &&
	$mid -n 1 --fast --rois-out r32.tsv >/dev/null
'

test_expect_success 'ms-simulate --shm | ms-track: every frame tracked, none missed, the ring gone after' '
	$mid --fps 500 -n 200 --shm --slots 1024 -v 2>sim.err | ms-track --rois r32.tsv --roi-size 32 -o t.h5 2>trk.err &&
	cat trk.err && ring=$(ring_of sim.err) && echo "ring $ring" &&
	case "$ring" in /mstk-simulate-[0-9]*) ;; *) exit 1 ;; esac &&
	grep -q "^ms-track: 200 frames, 800 ROIs .*, 0 dropped (overwritten in the ring)$" trk.err &&
	! test -e "/dev/shm$ring" &&
	$PY -c "import h5py; assert h5py.File(\"t.h5\")[\"tracking\"][\"frame_timestamps_ns\"].shape[0] == 200"
'

test_expect_success 'the tracks are those of the same frames sent inline' '
	$mid --fast -n 50 --shm --slots 64 | ms-track --rois r32.tsv --roi-size 32 >shm.tsv &&
	$mid --fast -n 50 | ms-track --rois r32.tsv --roi-size 32 >inline.tsv &&
	test $(wc -l <shm.tsv) -eq 201 && cmp shm.tsv inline.tsv
'

test_expect_success 'ms-info reads a shm stream from a pipe: transport, nothing dropped, complete' '
	$small --fps 1000 -n 50 --shm --slots 256 | ms-info - >info && cat info &&
	test "$(field transport info)" = shm && test "$(field dropped info)" = 0 &&
	test "$(field frames info)" = 50 && test "$(field seq info)" = 0..49 &&
	test "$(field complete info)" = yes
'

test_expect_success 'ms-capture --shm: a replay through a ring' '
	$small -n 20 --fast -o s.tif &&
	ms-capture -q -d replay:s.tif --fps 500 --shm --slots 64 | ms-info - >info &&
	test "$(field transport info)" = shm && test "$(field frames info)" = 20 &&
	test "$(field complete info)" = yes
'

# The slow reader: a tracker stopped (SIGSTOP) for a second while a camera
# at 200 frames/s puts 600 frames into a ring of 8.
test_expect_success 'a reader stopped for 1 s misses frames, the camera keeps its rate' '
	mkfifo slow.fifo || exit 1
	$small --fps 200 -n 600 --shm --slots 8 -v >slow.fifo 2>cam.err &
	cam=$!
	ms-track --rois r16.tsv --roi-size 16 --batch 1 -o slow.h5 <slow.fifo 2>slow.err &
	trk=$!
	echo $trk >trk.pid &&
	sleep 0.5 && kill -STOP $trk && sleep 1 && kill -CONT $trk &&
	wait $cam && wait $trk &&
	cat cam.err slow.err | grep -v "bead [0-9]"
'

test_expect_success '... the camera made its 600 frames in 3 s, as if nobody had stopped' '
	sed -n "s/^ms-simulate: 600 frames in \([0-9.]*\) s (\([0-9.]*\) frames\/s.*/\1 \2/p" cam.err >rate &&
	read secs fps <rate && echo "$secs s, $fps frames/s" &&
	awk -v s="$secs" -v f="$fps" "BEGIN { exit !(s < 3.7 && f > 160 && f < 204) }"
'

test_expect_success '... the tracker counted what it missed: tracked + dropped = 600, about 1 s of frames' '
	sed -n "s/^ms-track: \([0-9]*\) frames, .*, \([0-9]*\) dropped (overwritten in the ring)$/\1 \2/p" slow.err >counts &&
	read got dropped <counts && echo "tracked $got, dropped $dropped" &&
	test $((got + dropped)) -eq 600 && test "$dropped" -ge 150 && test "$dropped" -le 400
'

test_expect_success '... and reported them with their sequence numbers and the times they were taken' '
	grep -q "^ms-track: missed [0-9]* frames (seq [0-9]*\.\.[0-9]*, taken [0-9.]*\.\.[0-9.]* s after the epoch; [0-9]* in all): the camera.s ring overwrote them before they were read$" slow.err &&
	n=$(sed -n "s/^ms-track: missed \([0-9]*\) frames (seq \([0-9]*\)\.\.\([0-9]*\),.*/\1 \2 \3/p" slow.err | awk "{ n += \$1; if (\$1 != \$3 - \$2 + 1) bad = 1 } END { print bad ? -1 : n }") &&
	read got dropped <counts && test "$n" -eq "$dropped" &&
	all=$(sed -n "s/^ms-track: missed .*; \([0-9]*\) in all).*/\1/p" slow.err | tail -n 1) &&
	test "$all" -eq "$dropped"
'

test_expect_success '... the frames it did track have their timestamps: 5 ms apart, one gap of the missed ones' '
	read got dropped <counts &&
	$PY -c "
import h5py, numpy as np, sys
t = h5py.File(\"slow.h5\")[\"tracking\"][\"frame_timestamps_ns\"][:].astype(np.int64)
d = np.diff(t)
got, dropped = int(sys.argv[1]), int(sys.argv[2])
assert len(t) == got, (len(t), got)
gaps = d[d != 5000000]
print(\"gaps (ms):\", gaps / 1e6)
assert (d > 0).all() and (gaps % 5000000 == 0).all(), gaps
assert (gaps // 5000000 - 1).sum() == dropped, (gaps, dropped)
" "$got" "$dropped"
'

test_expect_success '... and its ring is gone' '
	ring=$(ring_of cam.err) && test -n "$ring" && ! test -e "/dev/shm$ring"
'

# A tracker that answers but cannot keep up: its output goes to a pipe
# whose reader is stopped, so it blocks writing rows while the camera goes
# on; its status shows the ring filling, then draining once it may write.
fill_of() { ms-ctl --socket fill.sock status | tr " " "\n" | sed -n "s/^ring-fill=\([0-9]*\)%$/\1/p"; }
fill_at_least() { f=$(fill_of) && test -n "$f" && test "$f" -ge "$1"; }
fill_below() { f=$(fill_of) && test -n "$f" && test "$f" -lt "$1"; }
test_expect_success 'a tracker that lags: its status shows the ring fill rise to 100%, then fall' '
	mkfifo rows.fifo || exit 1
	# held open here (read-write, so opening it does not wait) and never read
	exec 3<>rows.fifo
	$mid --fps 400 --shm --slots 32 2>/dev/null 3>&- | ms-track --rois r32.tsv --roi-size 32 \
		--batch 1 --control fill.sock >rows.fifo 2>fill.err 3>&- &
	await 10 test -S fill.sock &&
	await 20 fill_at_least 100 && echo "full: $(fill_of)%" &&
	ms-ctl --socket fill.sock status | grep -q "dropped=[1-9]"
	rc=$?
	# now drained, through the descriptor held open all along (a reader
	# that opened the FIFO anew could come after the last one closed)
	cat <&3 >/dev/null &
	drain=$!
	test $rc = 0 && await 10 fill_below 50 && echo "after: $(fill_of)%"
	rc=$?
	pkill -f "^$mid --fps 400 --shm --slots 32$"
	await 10 eval "! test -S fill.sock"
	kill $drain
	exec 3>&-
	wait
	test $rc = 0
'

test_expect_success 'SIGTERM: the stream ends, exit 143, the ring is removed' '
	$small --fps 100 --shm -v >term.ms 2>term.err &
	pid=$! && echo $pid >term.pid &&
	await 10 has_ring term.err &&
	ring=$(ring_of term.err) && test -e "/dev/shm$ring" &&
	sleep 0.2 && kill -TERM $pid && { wait $pid; rc=$?; } && test $rc -eq 143 &&
	! test -e "/dev/shm$ring"
'

test_expect_success 'a reader that goes away (EPIPE): exit 0, the ring is removed' '
	$small --fps 1000 --shm -v 2>pipe.err | head -c 2000 >/dev/null &&
	ring=$(ring_of pipe.err) && test -n "$ring" && ! test -e "/dev/shm$ring"
'

test_expect_success 'a camera that fails mid-run ends its output and removes its ring' '
	$small -n 10 --fast >s.ms && head -c 20000 s.ms >trunc.ms &&
	ms-capture -v -d replay:trunc.ms --fast --shm >fail.ms 2>fail.err; rc=$? &&
	cat fail.err && test $rc -eq 1 && grep -q "truncated" fail.err &&
	ring=$(ring_of fail.err) && test -n "$ring" && ! test -e "/dev/shm$ring"
'

test_expect_success 'SIGKILL leaves the ring; the next producer of its kind removes it' '
	$small --fps 100 --shm -v >kill.ms 2>kill.err &
	pid=$! &&
	await 10 has_ring kill.err &&
	ring=$(ring_of kill.err) && kill -KILL $pid && { wait $pid; true; } &&
	test -e "/dev/shm$ring" &&
	$small -n 1 --fast --shm >next.ms &&
	! test -e "/dev/shm$ring"
'

test_expect_success '--shm with -o, and bad ring options, are usage errors' '
	fails_cleanly 2 "not a TIFF" $small -n 1 --shm -o x.tif &&
	fails_cleanly 2 "invalid value .a/b. for --shm-name" $small -n 1 --shm-name a/b &&
	fails_cleanly 2 "invalid value .1. for --slots" $small -n 1 --slots 1 &&
	fails_cleanly 2 "not a TIFF" ms-capture -d replay:s.tif --slots 4 -o x.tif
'

test_expect_success 'a ring name in use is refused, naming it' '
	name=mstk-t1200-$$
	$small --fps 100 --shm-name $name >busy.ms 2>/dev/null &
	pid=$! && echo $pid >busy.pid &&
	await 10 test -e /dev/shm/$name &&
	fails_cleanly 1 "shared-memory segment ./$name. already exists" $small -n 1 --shm-name $name &&
	kill -TERM $pid && wait $pid; ! test -e /dev/shm/$name
'

for f in *.pid; do [ -e "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null && kill -TERM "$(cat "$f")" 2>/dev/null; done
test_done
