# rig.sh: helpers for the tests of ms-run and ms-ctl, sourced after lib.sh.
# Every rig of a test file lives under $TRASH (XDG_RUNTIME_DIR points
# there), so test files never meet each other's rigs or the user's. A rig
# runs in the background with its exit status written to NAME.rc when it
# ends; conditions are polled against a deadline, never slept for.

XDG_RUNTIME_DIR=$TRASH/xdg
export XDG_RUNTIME_DIR
unset MS_RUNTIME_DIR
mkdir -p "$XDG_RUNTIME_DIR"
RIGBASE=$XDG_RUNTIME_DIR/mstk

# wait_for SECONDS COMMAND...: run COMMAND until it succeeds, or fail
# after SECONDS (saying what it waited for).
wait_for() {
	wf_limit=$1
	shift
	wf_end=$(($(date +%s%N) + wf_limit * 1000000000))
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(date +%s%N)" -gt "$wf_end" ]; then
			echo "waited ${wf_limit}s in vain for: $*"
			return 1
		fi
		sleep 0.05
	done
}

# start_rig NAME [ms-run args...]: start ms-run in the background, its
# output in NAME.out and NAME.err, its exit status later in NAME.rc, and
# wait until it is up; NAME.dir then names its runtime directory.
start_rig() {
	sr_name=$1
	shift
	rm -f "$sr_name.rc"
	( ms-run "$@" >"$sr_name.out" 2>"$sr_name.err"; echo $? >"$sr_name.rc" ) &
	wait_for 10 rig_up "$sr_name" || { cat "$sr_name.err"; return 1; }
}

# rig_up NAME: the rig has said it is up; NAME.dir gets its directory.
rig_up() {
	dir=$(sed -n 's/.* up: .* control socket \(.*\)\/ctl\.sock$/\1/p' "$1.err" | head -n 1)
	[ -n "$dir" ] && [ -S "$dir/ctl.sock" ] && echo "$dir" >"$1.dir"
}

# rig_pid NAME: the pid in rig NAME's lock file, if it holds one; a read
# that came too early (empty, or 0) must never reach kill, where 0 would
# signal the whole process group, the test harness included.
rig_pid() {
	rp=$(cat "$(cat "$1.dir")/lock" 2>/dev/null) || return 1
	case $rp in ''|0|1|*[!0-9]*) return 1 ;; esac
	echo "$rp"
}

# rigdir NAME: the runtime directory of rig NAME.
rigdir() {
	cat "$1.dir"
}

# status_of NAME KEY: one value of the rig's status.
status_of() {
	ms-ctl --dir "$(rigdir "$1")" --raw status | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# stage_running NAME STAGE: the stage is up and has said how many frames.
stage_running() {
	[ "$(status_of "$1" "$2.state")" = running ] &&
	[ -n "$(status_of "$1" "$2.frames")" ]
}

# frames_above NAME STAGE N: the stage reports more than N frames.
frames_above() {
	f=$(status_of "$1" "$2.frames")
	[ -n "$f" ] && [ "$f" -gt "$3" ]
}

# rig_ended NAME: ms-run has exited (its status is in NAME.rc).
rig_ended() {
	[ -s "$1.rc" ]
}

# gone PID: the process has ended (a zombie counts as ended).
gone() {
	! [ -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# stop_rigs: on the way out, end every rig this file started, and every
# process whose pid a test left in a *.pid file, and wait for the rigs to
# be gone (they write into $TRASH until then).
stop_rigs() {
	for f in "$TRASH"/*.pid; do
		[ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	done
	for f in "$TRASH"/*.dir; do
		[ -e "$f" ] || continue
		name=${f%.dir}
		rig_ended "$name" && continue
		pid=$(rig_pid "$name") && kill -TERM "$pid" 2>/dev/null
		wait_for 15 rig_ended "$name" >/dev/null
	done
	return 0
}
