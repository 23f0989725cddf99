#!/bin/sh
# Runtime directories: two rigs side by side do not collide; ms-ctl finds
# the last one, or the one named; a rig's own stages find it; what a
# crashed ms-run left is cleaned at the next start, and a live rig's
# directory never is.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

test_expect_success 'two demo rigs side by side' '
	start_rig a --data-dir da &&
	start_rig b --data-dir db &&
	test "$(rigdir a)" != "$(rigdir b)" &&
	wait_for 10 stage_running a camera && wait_for 10 stage_running b camera &&
	wait_for 10 stage_running a track && wait_for 10 stage_running b track
'

test_expect_success 'each answers for itself; without --dir ms-ctl talks to the last' '
	ra=$(basename "$(rigdir a)") && rb=$(basename "$(rigdir b)") &&
	test "$(readlink "$RIGBASE/last")" = "$rb" &&
	test "$(ms-ctl --raw status | tr " " "\n" | sed -n "s/^rig=//p")" = "$rb" &&
	test "$(ms-ctl --dir "$ra" --raw status | tr " " "\n" | sed -n "s/^rig=//p")" = "$ra" &&
	test "$(status_of a camera.pid)" != "$(status_of b camera.pid)" &&
	ms-ctl --dir "$ra" camera focus set 111 &&
	ms-ctl --dir "$(rigdir b)" camera focus set 222 &&
	test "$(status_of a camera.focus)" = 111 && test "$(status_of b camera.focus)" = 222
'

test_expect_success 'their files do not collide either' '
	ls da/*-tracks-1.h5 && ls db/*-tracks-1.h5 && ls da/*-rig.log && ls db/*-rig.log
'

test_expect_success 'stopping one leaves the other running' '
	ms-ctl --dir "$(rigdir a)" quit && wait_for 10 rig_ended a &&
	! test -e "$(rigdir a)" &&
	test "$(status_of b state)" = running &&
	test "$(readlink "$RIGBASE/last")" = "$(basename "$(rigdir b)")"
'

test_expect_success 'SIGINT stops a rig too, with 130' '
	pid=$(rig_pid b) && kill -INT "$pid" &&
	wait_for 10 rig_ended b && test "$(cat b.rc)" = 130 &&
	grep -q "^ms-run: stopping (SIGINT)" b.err &&
	! test -e "$(rigdir b)" && ! test -e "$RIGBASE/last"
'

test_expect_success 'a crashed rig: its stages follow it, its directory is cleaned next time' '
	start_rig k --data-dir dk &&
	wait_for 10 stage_running k track &&
	cpid=$(status_of k camera.pid) && tpid=$(status_of k track.pid) &&
	pid=$(rig_pid k) &&
	kill -9 "$pid" &&
	wait_for 10 gone "$cpid" && wait_for 10 gone "$tpid" &&
	test -d "$(rigdir k)" &&
	mv k.dir k.dead &&
	start_rig n --data-dir dn &&
	grep -q "^ms-run: removed the stale runtime directory $(cat k.dead)$" n.err &&
	! test -e "$(cat k.dead)"
'

test_expect_success 'a stale directory of a dead pid goes, with its shared memory' '
	d=$RIGBASE/rig-999999999 && mkdir -p "$d" &&
	: >"$d/lock" && : >"$d/camera.sock" && mkfifo "$d/track.in" &&
	echo "mstk-rig-999999999-" >"$d/shm-prefix" &&
	: >/dev/shm/mstk-rig-999999999-ring &&
	live=$RIGBASE/rig-$$ && mkdir -p "$live" && : >"$live/lock" &&
	ms-ctl quit && wait_for 10 rig_ended n &&
	start_rig m --data-dir dm &&
	grep -q "^ms-run: removed the stale runtime directory $d$" m.err &&
	! test -e "$d" && ! test -e /dev/shm/mstk-rig-999999999-ring &&
	test -d "$live"
'

test_expect_success 'a stage can talk to its own rig ($MS_RUNTIME_DIR)' '
	cat >self.pipeline <<-\EOF &&
	stage chatty sh -c "sleep 0.2; ms-ctl rig message from-inside-$MS_STAGE; sleep 30"
	EOF
	start_rig s --data-dir ds self.pipeline &&
	wait_for 10 grep -q "^ms-run: message: from-inside-chatty$" s.err &&
	ms-ctl --dir "$(rigdir s)" quit && wait_for 10 rig_ended s
'

test_expect_success 'an explicit --dir: used as it is; a second rig there is refused' '
	start_rig x --dir "$TRASH/myrig" --data-dir dx &&
	test "$(rigdir x)" = "$TRASH/myrig" &&
	ms-ctl --dir "$TRASH/myrig" camera focus get >out && test "$(cat out)" = position=0 &&
	fails_cleanly 1 "runtime directory .*myrig. is in use by another ms-run" ms-run --dir "$TRASH/myrig" &&
	ms-ctl --dir "$TRASH/myrig" quit && wait_for 10 rig_ended x &&
	! test -e "$TRASH/myrig" &&
	long=$TRASH/$(printf "%0100d" 0) &&
	fails_cleanly 1 "too long for a socket path" ms-run --dir "$long" &&
	! test -e "$long"
'

stop_rigs
test_done
