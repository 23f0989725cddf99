#!/bin/sh
# A rig whose camera writes into shared memory (--shm): ms-run relays the
# descriptors, the tracker reads the ring; a restarted tracker joins at
# the newest frame and counts nothing before it as missed; a camera killed
# outright has its ring removed by ms-run and a new one made by its
# restart (a new ring is a new stream: the tracker starts over on it);
# nothing is left at the end; and a ring left by a crash of
# ms-run itself goes at the next start.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

cat >shm.pipeline <<EOF
stage camera ms-simulate --width 128 --height 96 --fixed 2 --tethered 2 --roi-size 32 --fps 100 --shm --slots 64 --rois-out {data}/rois.tsv
stage track ms-track --roi-size 32 --rois {data}/rois.tsv -o {data}/t{n}.h5
pipe camera -> track
restart camera 2 0.2
restart track 2 0.2
EOF

# rings NAME: the shared-memory segments of rig NAME.
rings() { ls /dev/shm | grep "^mstk-$(basename "$(rigdir "$1")")-" || true; }
# camera_ring NAME: the ring of rig NAME's camera as it runs now.
camera_ring() {
	echo "mstk-$(basename "$(rigdir "$1")")-camera-$(status_of "$1" camera.pid)"
}
track_restarted() { test "$(status_of "$1" track.restarts)" = "$2" && stage_running "$1" track; }
# track_new NAME PID: the tracker runs again, as another process than PID.
track_new() { p=$(status_of "$1" track.pid); test -n "$p" && test "$p" != 0 && test "$p" != "$2" && stage_running "$1" track; }

test_expect_success 'the rig comes up; the camera ring is named with the rig, the stage and its pid' '
	start_rig r --data-dir data shm.pipeline &&
	wait_for 10 stage_running r camera && wait_for 10 stage_running r track &&
	ring=$(camera_ring r) && echo "$ring" && wait_for 10 test -e "/dev/shm/$ring" &&
	test "$(rings r)" = "$ring"
'

test_expect_success 'frames flow through it: the tracker counts, nothing dropped' '
	wait_for 10 frames_above r track 150 &&
	test "$(status_of r track.dropped)" = 0 &&
	test "$(status_of r track.frames-dropped)" = 0 &&
	ms-ctl status >st && cat st && grep -q "^track .* running .* 0  *[0-9]*%$" st
'

test_expect_success 'a tracker killed and restarted joins at the newest frame: none counted missed' '
	tpid=$(status_of r track.pid) && kill -KILL "$tpid" &&
	wait_for 10 track_restarted r 1 &&
	wait_for 10 frames_above r track 50 &&
	test "$(status_of r track.dropped)" = 0
'

test_expect_success 'a camera killed outright: ms-run removes its ring, the restart makes a new one' '
	old=$(camera_ring r) && cpid=$(status_of r camera.pid) && tpid=$(status_of r track.pid) &&
	kill -KILL "$cpid" &&
	wait_for 10 eval "! test -e /dev/shm/$old" &&
	wait_for 10 eval "test \"\$(status_of r camera.restarts)\" = 1" &&
	wait_for 10 stage_running r camera &&
	new=$(camera_ring r) && test "$new" != "$old" &&
	wait_for 10 test -e "/dev/shm/$new" &&
	wait_for 10 track_new r "$tpid" && wait_for 10 frames_above r track 30 &&
	grep -q "^ms-run: camera: its new stream differs from the last one: restarting its consumers" r.err &&
	test "$(status_of r track.dropped)" = 0 && test "$(rings r)" = "$new"
'

test_expect_success 'quit: the rig ends well, no ring of it is left' '
	d=$(rigdir r) && ms-ctl --dir "$d" quit && wait_for 15 rig_ended r &&
	test "$(cat r.rc)" = 0 &&
	test -z "$(ls /dev/shm | grep "^mstk-$(basename "$d")-")"
'

test_expect_success 'ms-run and its camera killed outright: the ring is left, and removed at the next start' '
	start_rig k --data-dir dk shm.pipeline &&
	wait_for 10 stage_running k camera && wait_for 10 stage_running k track &&
	wait_for 10 frames_above k track 5 &&
	ring=$(camera_ring k) && cpid=$(status_of k camera.pid) && tpid=$(status_of k track.pid) &&
	pid=$(rig_pid k) &&
	kill -STOP "$cpid" && kill -KILL "$pid" && kill -KILL "$cpid" &&
	wait_for 10 gone "$cpid" && wait_for 10 gone "$tpid" &&
	test -e "/dev/shm/$ring" && mv k.dir k.dead &&
	start_rig n --data-dir dn shm.pipeline &&
	grep -q "^ms-run: removed the stale runtime directory $(cat k.dead)$" n.err &&
	! test -e "/dev/shm/$ring" &&
	ms-ctl --dir "$(rigdir n)" quit && wait_for 15 rig_ended n
'

stop_rigs
test_done
