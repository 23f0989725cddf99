#!/bin/sh
# ms-capture --control: a camera that takes commands while it acquires -
# status, set and get of its settings (a change of geometry refused, the
# stream going on), acquisition off and on, quit - with a replayed file,
# and with Aravis' fake GenICam camera when Aravis is built in.
. "$(dirname "$0")/lib.sh"

sim="ms-simulate --width 64 --height 48 --fixed 1 --tethered 0 --roi-size 16 --fast -q"

field() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$2"; }
await() {
	aw_n=$(($1 * 20))
	shift
	while ! "$@" >/dev/null 2>&1; do
		aw_n=$((aw_n - 1))
		[ $aw_n -gt 0 ] || { echo "waited in vain for: $*"; return 1; }
		sleep 0.05
	done
}
# ctl SOCKET VERB...: one command; its answer on stdout, "err ..." on stderr.
ctl() { s=$1; shift; ms-ctl --socket "$s" camera "$@"; }
# key SOCKET KEY: one value of the camera's status.
key() { ctl "$1" status | tr " " "\n" | sed -n "s/^$2=//p"; }
frames_above() { test "$(key "$1" frames)" -gt "$2"; }

test_expect_success 'set-up: a 10-frame TIFF' '
	$sim -n 10 -o s.tif
'

test_expect_success 'a replay with --control answers status' '
	( ms-capture -d replay:s.tif --loop --fps 100 --buffers 64 --control cap.sock >cap.ms 2>cap.err
	  echo $? >cap.rc ) &
	await 10 test -S cap.sock && await 10 frames_above cap.sock 5 &&
	ctl cap.sock status >st && cat st &&
	grep -q "^state=running frames=[0-9]* fps=[0-9.]* dropped=[0-9]* timeouts=[0-9]* acquisition=on width=64 height=48 format=u8 device=replay:s.tif$" st
'

test_expect_success 'set changes a setting while it runs, answered with the value taken; get reads it' '
	test "$(ctl cap.sock set fps=200)" = "fps=200" &&
	test "$(ctl cap.sock get fps)" = "fps=200" &&
	ctl cap.sock get >all && grep -q "^fps=200 fast=0 loop=1 roi=0,0,64,48 frames=10 nm_per_px=100 timeout=1$" all
'

test_expect_success 'a region of the same size is moved; one of another size is refused, the old one kept' '
	test "$(ctl cap.sock set roi=0,0,64,48)" = "roi=0,0,64,48" &&
	! ctl cap.sock set roi=8,4,32,16 2>err && cat err &&
	grep -q "^ms-ctl: err busy roi=8,4,32,16 would make 32x16 u8 frames of 100 nm/px; the stream going out is 64x48 u8 of 100 nm/px" err &&
	test "$(ctl cap.sock get roi)" = "roi=0,0,64,48" &&
	test "$(key cap.sock acquisition)" = on
'

test_expect_success 'unknown settings, bad values and read-only settings are refused with the reason' '
	! ctl cap.sock set nosuch=1 2>err && grep -q "err usage no setting .nosuch. (settings: fps, fast, loop, roi, frames, nm_per_px, timeout)" err &&
	! ctl cap.sock set fps=abc 2>err && grep -q "err bad-value .*abc" err &&
	! ctl cap.sock set frames=3 2>err && grep -q "err bad-value .*read-only" err &&
	! ctl cap.sock set fps 2>err && grep -q "err usage .fps. is not NAME=VALUE" err &&
	! ctl cap.sock get nosuch 2>err && grep -q "err usage no setting .nosuch." err &&
	! ctl cap.sock jump 2>err && grep -q "err unknown-verb" err &&
	test "$(ctl cap.sock get fps)" = "fps=200"
'

test_expect_success 'acquisition off: no more frames, state paused; on: frames again' '
	test "$(ctl cap.sock acquisition off)" = "acquisition=off" &&
	test "$(key cap.sock state)" = paused &&
	n1=$(key cap.sock frames) && sleep 0.3 && n2=$(key cap.sock frames) &&
	echo "$n1 $n2" && test "$n1" -eq "$n2" &&
	test "$(ctl cap.sock acquisition)" = "acquisition=off" &&
	test "$(ctl cap.sock acquisition on)" = "acquisition=on" &&
	await 10 frames_above cap.sock $((n2 + 20)) &&
	! ctl cap.sock acquisition maybe 2>err && grep -q "err usage acquisition \[on|off\]" err
'

# Sequence numbers that started again at 0 after the pause would end below n - 1.
test_expect_success 'quit: exit 0, and the stream is complete, its sequence numbers going on across the pause' '
	test "$(ctl cap.sock quit)" = stopping &&
	await 10 test -s cap.rc && test "$(cat cap.rc)" = 0 &&
	grep -q "stopped by a quit command" cap.err &&
	! test -e cap.sock &&
	ms-info cap.ms >info && cat info &&
	n=$(field frames info) && test "$n" -gt 40 &&
	seq=$(field seq info | cut -d" " -f1) && first=${seq%..*} && last=${seq#*..} &&
	test "$first" = 0 && test "$last" -ge $((n - 1)) && test "$(field complete info)" = yes
'

test_expect_success 'with --shm, the status names the ring' '
	ms-capture -q -d replay:s.tif --loop --fps 100 --shm --control shm.sock 2>/dev/null | ms-info - >shm.info &
	await 10 test -S shm.sock && await 10 frames_above shm.sock 2 &&
	ring=$(key shm.sock shm) && echo "$ring" &&
	case "$ring" in /mstk-capture-[0-9]*) ;; *) exit 1 ;; esac &&
	test -e "/dev/shm$ring" &&
	ctl shm.sock quit && await 10 test -s shm.info &&
	grep -q "^complete	yes" shm.info && ! test -e "/dev/shm$ring"
'

test_expect_success '--control with --settings or --list is a usage error' '
	fails_cleanly 2 "takes no -o, --control or --shm" ms-capture -d replay:s.tif --settings --control x.sock &&
	fails_cleanly 2 "takes no other options" ms-capture --list --control x.sock
'

if ! ms-capture -d fake: --settings >/dev/null 2>&1; then
	for s in *.sock; do [ -S "$s" ] && ms-ctl --socket "$s" camera quit >/dev/null 2>&1; done
	test_done
	exit $?
fi

test_expect_success 'fake GenICam camera: exposure and gain change while it runs, into a ring' '
	ms-capture -q -d fake: --set roi=0,0,64,48 --fps 200 --buffers 64 --shm --slots 512 --control fk.sock 2>fk.err |
		ms-info - >fk.info &
	await 10 test -S fk.sock && await 10 frames_above fk.sock 20 &&
	test "$(ctl fk.sock set exposure=2000 gain=3)" = "exposure=2000 gain=3" &&
	test "$(ctl fk.sock get exposure gain fps)" = "exposure=2000 gain=3 fps=200" &&
	ctl fk.sock status >st && cat st &&
	grep -q "^state=running frames=[0-9]* fps=[0-9.]* dropped=[0-9]* timeouts=[0-9]* acquisition=on width=64 height=48 format=u8 device=fake: shm=/mstk-capture-[0-9]*$" st
'

test_expect_success 'fake GenICam camera: the region moves while it runs; a format change is refused' '
	test "$(ctl fk.sock set roi=32,16,64,48)" = "roi=32,16,64,48" &&
	! ctl fk.sock set format=u16 2>err && grep -q "err busy format=u16 would make 64x48 u16 frames" err &&
	test "$(ctl fk.sock get format)" = "format=Mono8" &&
	n=$(key fk.sock frames) && await 10 frames_above fk.sock $((n + 20))
'

test_expect_success 'fake GenICam camera: the frame rate set is the rate measured' '
	test "$(ctl fk.sock set fps=100)" = "fps=100" &&
	sleep 2.2 && f=$(key fk.sock fps) && echo "fps $f" &&
	awk -v f="$f" "BEGIN { exit !(f > 70 && f < 130) }"
'

test_expect_success 'fake GenICam camera: quit ends the stream whole and removes the ring' '
	ring=$(key fk.sock shm) &&
	ctl fk.sock quit && await 10 test -s fk.info && cat fk.info &&
	grep -q "^transport	shm" fk.info && grep -q "^dropped	0" fk.info &&
	grep -q "^complete	yes" fk.info && ! test -e "/dev/shm$ring"
'

# Whatever a failed test left running goes now.
for s in *.sock; do [ -S "$s" ] && ms-ctl --socket "$s" camera quit >/dev/null 2>&1; done
test_done
