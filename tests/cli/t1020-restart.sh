#!/bin/sh
# ms-run's policies: a stage killed by a signal is reported with it and
# restarted (bounded, with back-off) while the others run on; a stage that
# keeps failing, or fails without a restart policy, stops the rig; a stage
# that ignores SIGTERM is killed after the timeout; bad pipelines are
# refused before anything starts.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

cam="ms-simulate --width 128 --height 96 --fixed 1 --tethered 1 --roi-size 32 --fps 100"
cat >rig.pipeline <<EOF
# camera and tracker, both restarted if they fail
stage camera $cam --rois-out {data}/rois.tsv
stage track ms-track --roi-size 32 --rois {data}/rois.tsv -o {data}/t{n}.h5

pipe camera -> track
restart camera 2 0.2
restart track 3 0.2
EOF

test_expect_success 'a rig comes up' '
	start_rig rig --data-dir data rig.pipeline &&
	wait_for 10 stage_running rig camera && wait_for 10 stage_running rig track &&
	wait_for 10 frames_above rig track 20
'

test_expect_success 'kill -9 of the tracker: reported with the signal, restarted' '
	cpid=$(status_of rig camera.pid) && tpid=$(status_of rig track.pid) &&
	echo "$cpid" >camera.before &&
	kill -9 "$tpid" &&
	wait_for 10 grep -q "^ms-run: track: killed by signal 9 (SIGKILL); restarting in 0.2 s (restart 1 of 3)$" rig.err &&
	wait_for 10 stage_running rig track &&
	test "$(status_of rig track.restarts)" = 1 &&
	test "$(status_of rig track.pid)" != "$tpid" &&
	wait_for 10 frames_above rig track 20
'

test_expect_success 'the camera ran on meanwhile; the frames the tracker missed are counted' '
	test "$(status_of rig camera.pid)" = "$(cat camera.before)" &&
	test "$(status_of rig camera.restarts)" = 0 &&
	test "$(status_of rig track.frames-dropped)" -gt 0
'

test_expect_success 'the tracks the killed tracker wrote read back with h5py' '
	test -f data/t1.h5 && test -f data/t2.h5 &&
	$PY -c "
import h5py, numpy as np
t = h5py.File(\"data/t1.h5\", \"r\")[\"tracking\"]
nf = t[\"frame_timestamps_ns\"].shape[0]
# A kill -9 can land inside an append: trust the batches before the last.
counts = t[\"batch_record_count\"][:]
n = int(counts[:-1].sum())
assert n <= t[\"positions_nm\"].shape[0], n
p = t[\"positions_nm\"][:n]
assert nf > 10 and n > 20, (nf, n)
# a tethered bead may wander to its ROI edge: flagged NaN, not garbage
assert np.isfinite(p[:, :2]).mean() > 0.9
print(nf, \"frames before the kill\")
" &&
	ms-info data/t1.h5 | grep -q "^frames	[1-9]"
'

test_expect_success 'kill -9 of the camera: it restarts and the tracker goes on, same process' '
	tpid=$(status_of rig track.pid) && cpid=$(status_of rig camera.pid) &&
	n=$(status_of rig track.frames) &&
	kill -9 "$cpid" &&
	wait_for 10 grep -q "^ms-run: camera: killed by signal 9 (SIGKILL); restarting in 0.2 s (restart 1 of 2)$" rig.err &&
	wait_for 10 stage_running rig camera &&
	wait_for 10 frames_above rig track $((n + 20)) &&
	test "$(status_of rig track.pid)" = "$tpid" &&
	test "$(status_of rig track.restarts)" = 1
'

test_expect_success 'rig restart STAGE restarts it at once, not counted as a failure' '
	tpid=$(status_of rig track.pid) &&
	ms-ctl rig restart track >out && grep -q "restarting track" out &&
	changed() { p=$(status_of rig track.pid); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$tpid" ]; } &&
	wait_for 10 changed && wait_for 10 stage_running rig track &&
	test "$(status_of rig track.restarts)" = 1 &&
	! ms-ctl rig restart nosuch 2>err && grep -q "err unknown-target no stage .nosuch." err
'

test_expect_success 'quit; the log tells of every start' '
	ms-ctl quit && wait_for 10 rig_ended rig && test "$(cat rig.rc)" = 0 &&
	grep -c " ms-run: track: started (pid [0-9]*): ms-track --control" data/*-rig.log >starts &&
	test "$(cat starts)" -eq 3 &&
	grep -c " ms-run: camera: started" data/*-rig.log >starts && test "$(cat starts)" -eq 2
'

test_expect_success 'a stage that keeps failing is restarted as often as allowed, then the rig stops' '
	cat >flaky.pipeline <<-EOF &&
	stage camera $cam
	stage flaky sh -c "sleep 0.1; exit 3"
	restart flaky 2 0.05
	EOF
	ms-run flaky.pipeline >f.out 2>f.err; rc=$?
	cat f.err &&
	test $rc -eq 1 &&
	grep -q "^ms-run: flaky: exited with status 3; restarting in 0.1 s (restart 2 of 2)$" f.err &&
	grep -q "^ms-run: flaky: exited with status 3; it was restarted 2 times already: stopping the rig$" f.err &&
	grep -q "^camera: ms-simulate: .*(stopped by a signal)" f.err &&
	test -z "$(ls "$RIGBASE" | grep rig-)"
'

test_expect_success 'without a restart line, a crash stops the rig at once' '
	printf "sleep 0.2\nkill -SEGV \$\$\n" >boom.sh &&
	cat >crash.pipeline <<-EOF &&
	stage camera $cam
	stage boom sh boom.sh
	EOF
	ms-run crash.pipeline >c.out 2>c.err; rc=$?
	cat c.err &&
	test $rc -eq 1 &&
	grep -q "^ms-run: boom: killed by signal 11 (SIGSEGV): stopping the rig$" c.err
'

test_expect_success 'a stage that ignores SIGTERM gets SIGKILL after the kill timeout' '
	cat >stubborn.pipeline <<-EOF &&
	stage stubborn sh -c "trap \"\" TERM; echo ready >&2; while :; do sleep 0.05; done"
	EOF
	start_rig st --kill-timeout 0.5 stubborn.pipeline &&
	wait_for 10 grep -q "^stubborn: ready" st.err &&
	pid=$(rig_pid st) && kill -TERM "$pid" &&
	wait_for 10 rig_ended st &&
	grep -q "^ms-run: stubborn: still running 0.5 s after SIGTERM: SIGKILL$" st.err &&
	grep -q "^ms-run: stubborn: stopped (killed by signal 9 (SIGKILL))$" st.err &&
	! test -e "$(rigdir st)"
'

test_expect_success 'a stage that ends well ends the rig well' '
	cat >short.pipeline <<-EOF &&
	stage camera ms-simulate --width 64 --height 64 --fixed 1 --tethered 0 --roi-size 16 -n 30 --fast --rois-out {data}/r.tsv
	stage track ms-track --roi-size 16 --rois {data}/r.tsv --tsv -o {data}/short.h5
	pipe camera -> track
	EOF
	ms-run --data-dir sdata short.pipeline >s.out 2>s.err &&
	grep -q "^track: ms-track: 30 frames" s.err &&
	grep -q "^ms-run: every stage has ended$" s.err &&
	ms-info sdata/short.h5 | grep -q "^frames	30$"
'

test_expect_success 'bad pipelines are refused with the line, before anything starts' '
	printf "stage a sleep 5\n\nstgae b sleep 5\n" >p1 &&
	fails_cleanly 1 "^ms-run: p1:3: unknown directive .stgae. (stage, pipe, restart)$" ms-run p1 &&
	printf "stage a sleep 5\npipe a -> b\n" >p2 &&
	fails_cleanly 1 "p2:2: no stage .b." ms-run p2 &&
	printf "stage a cat\nstage b cat\npipe a -> b\npipe b -> a\n" >p3 &&
	fails_cleanly 1 "the pipes through stage .a. form a loop" ms-run p3 &&
	printf "stage a no-such-program-here\n" >p4 &&
	fails_cleanly 1 "p4:1: stage .a.: program .no-such-program-here. not found" ms-run p4 &&
	printf "stage rig sleep 1\n" >p5 &&
	fails_cleanly 1 "p5:1: bad stage name .rig." ms-run p5 &&
	printf "stage a sleep 1\nrestart a many\n" >p6 &&
	fails_cleanly 1 "p6:2: bad restart COUNT .many." ms-run p6 &&
	printf "stage a \"sleep\n" >p7 &&
	fails_cleanly 1 "p7:1: unterminated quote" ms-run p7 &&
	fails_cleanly 2 "unexpected operand" ms-run p1 p2 &&
	test -z "$(ls "$RIGBASE" 2>/dev/null | grep rig-)"
'

stop_rigs
test_done
