#!/bin/sh
# ms-run: the demo rig comes up, frames flow from the camera to the
# tracker, control commands reach the stages, and SIGTERM stops it all in
# order: every stage gone, the tracks file readable, nothing left behind.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

test_expect_success 'the demo rig, dry run: the stages it would start, consumers first' '
	ms-run --dry-run --data-dir data >plan &&
	sed -n 2p plan | grep -q "^stage track ms-track --control .*/track.sock --rois $TRASH/data/.*-rois.tsv -o $TRASH/data/.*-tracks-1.h5" &&
	sed -n 3p plan | grep -q "^stage camera ms-simulate --control .*/camera.sock --fps 100" &&
	grep -q "^pipe camera -> track" plan &&
	grep -q "^restart track 3 0.5" plan
'

test_expect_success 'the demo rig starts with both stages running' '
	start_rig demo --data-dir data &&
	wait_for 10 stage_running demo camera &&
	wait_for 10 stage_running demo track
'

test_expect_success 'its runtime directory is private and holds the sockets and FIFOs' '
	d=$(rigdir demo) &&
	case "$d" in "$RIGBASE"/rig-*) ;; *) echo "unexpected dir $d"; exit 1 ;; esac &&
	test "$(stat -c %a "$d")" = 700 &&
	test -S "$d/ctl.sock" && test -S "$d/camera.sock" && test -S "$d/track.sock" &&
	test -p "$d/camera.out" && test -p "$d/track.in" &&
	test "$(readlink "$RIGBASE/last")" = "$(basename "$d")"
'

test_expect_success 'ms-ctl status shows both stages with frame counts rising' '
	ms-ctl status >st1 && cat st1 &&
	grep -q "^STAGE  *PID  *STATE  *RESTARTS  *FRAMES  *FPS  *DROPPED  *FILL$" st1 &&
	grep -q "^track  *[0-9][0-9]* running .* [0-9]*%$" st1 &&
	grep -q "^camera  *[0-9][0-9]* running " st1 &&
	grep -q "^track  *[0-9][0-9]* running " st1 &&
	n1=$(status_of demo track.frames) &&
	wait_for 10 frames_above demo track $((n1 + 20)) &&
	wait_for 10 frames_above demo camera $((n1 + 20))
'

test_expect_success 'the status names every stage with pid, state, restarts and rates' '
	ms-ctl --raw status | tr " " "\n" >kv &&
	grep -q "^rig=rig-[0-9]*$" kv && grep -q "^state=running$" kv &&
	grep -q "^stages=camera,track$" kv &&
	grep -q "^camera.pid=[1-9][0-9]*$" kv && grep -q "^camera.restarts=0$" kv &&
	grep -q "^camera.frames-sent=[1-9]" kv && grep -q "^track.frames-received=[1-9]" kv &&
	grep -q "^track.rois=8$" kv && grep -q "^track.rois-per-s=" kv &&
	grep -q "^track.ring-fill=[0-9]*%$" kv && grep -q "^track.queue-fill=[0-9]*%$" kv &&
	fps=$(sed -n "s/^camera.fps=//p" kv) &&
	awk -v f="$fps" "BEGIN { exit !(f > 20 && f < 400) }"
'

test_expect_success 'a command reaches its stage and comes back answered' '
	ms-ctl camera focus set 500 >out && test "$(cat out)" = "position=500" &&
	ms-ctl camera focus get >out && test "$(cat out)" = "position=500" &&
	test "$(status_of demo camera.focus)" = 500
'

test_expect_success 'the tracker keeps up with the camera: no frames dropped' '
	test "$(status_of demo track.frames-dropped)" = 0 &&
	test "$(status_of demo track.invalid)" = 0
'

test_expect_success 'SIGTERM: every stage exits, in order, and ms-run reports 143' '
	cpid=$(status_of demo camera.pid) && tpid=$(status_of demo track.pid) &&
	d=$(rigdir demo) && rig=$(basename "$d") &&
	pid=$(rig_pid demo) && kill -TERM "$pid" &&
	wait_for 15 rig_ended demo &&
	test "$(cat demo.rc)" = 143 &&
	gone "$cpid" && gone "$tpid" &&
	grep -q "^ms-run: stopping (SIGTERM)" demo.err &&
	grep -q "^camera: ms-simulate: .* (stopped by a signal)" demo.err &&
	grep -q "^track: ms-track: [1-9][0-9]* frames" demo.err &&
	! grep -q "SIGKILL" demo.err
'

test_expect_success 'nothing is left in the runtime directory or /dev/shm' '
	d=$(rigdir demo) && rig=$(basename "$d") &&
	! test -e "$d" && ! test -e "$RIGBASE/last" &&
	test -z "$(ls /dev/shm | grep -e "$rig")"
'

test_expect_success 'the tracks file reads back with h5py, every frame the tracker had' '
	ls data/*-tracks-1.h5 >h5 && test $(wc -l <h5) -eq 1 &&
	n=$(sed -n "s/^track: ms-track: \([0-9]*\) frames.*/\1/p" demo.err) &&
	$PY -c "
import h5py, numpy as np, sys
f = h5py.File(open(\"h5\").read().strip(), \"r\")
t = f[\"tracking\"]
nf = t[\"frame_timestamps_ns\"].shape[0]
p = t[\"positions_nm\"][:]
assert nf == int(sys.argv[1]), (nf, sys.argv[1])
assert p.shape == (8 * nf, 3), p.shape
assert np.isfinite(p[:, :2]).all()
ts = t[\"frame_timestamps_ns\"][:]
assert (np.diff(ts) > 0).all()
print(nf, \"frames\")
" "$n"
'

test_expect_success 'the log in the data directory has every stage line, timestamped' '
	log=$(ls data/*-rig.log) &&
	grep -q "^20[0-9-]*T[0-9:.]* camera: ms-simulate: " "$log" &&
	grep -q "^20[0-9-]*T[0-9:.]* ms-run: stopping (SIGTERM)" "$log"
'

test_expect_success 'ms-ctl without a rig says so and exits 1' '
	fails_cleanly 1 "no rig is running\|no rig answers" ms-ctl status
'

stop_rigs
test_done
