#!/bin/sh
# Control: commands to a live camera alone (socket and FIFO) and through a
# rig; events to watchers; malformed, unknown and out-of-range commands
# are refused with err and change nothing; nothing crashes.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

cam="ms-simulate --width 128 --height 96 --fixed 1 --tethered 1 --roi-size 32"

# raw SOCKET: send stdin's bytes as they are, print what comes back.
cat >raw.py <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
data = sys.stdin.buffer.read()
s.sendall(data)
want = int(sys.argv[2])
got = b""
end = time.time() + 10
s.settimeout(0.2)
while got.count(b"\n") < want and time.time() < end:
    try:
        k = s.recv(65536)
    except socket.timeout:
        continue
    if not k:
        break
    got += k
sys.stdout.write(got.decode())
EOF

test_expect_success 'a camera alone answers on its socket' '
	$cam --control cam.sock --fps 100 --truth truth.tsv >frames 2>cam.err &
	echo $! >cam.pid &&
	wait_for 10 test -S cam.sock &&
	ms-ctl --socket cam.sock status >st && grep -q "^state=running frames=" st &&
	ms-ctl --socket cam.sock camera help | grep -q "focus set NM"
'

test_expect_success 'focus set moves every bead: the truth shows the new z' '
	ms-ctl --socket cam.sock camera focus set 1000 >out &&
	test "$(cat out)" = "position=1000" &&
	wait_for 10 grep -q "	0	[0-9.]*	[0-9.]*	1000.0000	" truth.tsv &&
	awk -F"\t" "!/^#/ && NF == 8 && \$3 == 0 { print \$6 + 0 }" truth.tsv | uniq >zs &&
	test "$(cat zs | tr "\n" " ")" = "0 1000 "
'

test_expect_success 'a focus beyond the bead table rebuilds it; one out of range is refused' '
	ms-ctl --socket cam.sock camera focus set 8000 &&
	test "$(ms-ctl --socket cam.sock camera focus get)" = "position=8000" &&
	ms-ctl --socket cam.sock status | grep -q "zmin=[0-9]" &&
	test_must_fail() { "$@"; test $? -eq 1; } &&
	test_must_fail ms-ctl --socket cam.sock camera focus set 1e9 2>err &&
	grep -q "err bad-value focus 1e9 is out of range" err &&
	test "$(ms-ctl --socket cam.sock camera focus get)" = "position=8000"
'

test_expect_success 'set changes several settings at once, or none of them' '
	ms-ctl --socket cam.sock camera set photons=5000 tethered-z=200 fps=80 &&
	ms-ctl --socket cam.sock camera get photons tethered-z fps >got &&
	test "$(cat got)" = "fps=80 tethered-z=200 photons=5000" &&
	! ms-ctl --socket cam.sock camera set photons=9 fps=abc 2>err &&
	grep -q "err bad-value fps .abc. is not a number" err &&
	! ms-ctl --socket cam.sock camera set nosuch=1 2>err &&
	grep -q "err usage no setting .nosuch." err &&
	! ms-ctl --socket cam.sock camera set fps=0.5 2>err &&
	grep -q "err bad-value fps 0.5 is too low for tethered beads" err &&
	test "$(ms-ctl --socket cam.sock camera get photons fps)" = "fps=80 photons=5000"
'

test_expect_success 'acquisition off stops the frames; on starts them again' '
	ms-ctl --socket cam.sock camera acquisition off &&
	ms-ctl --socket cam.sock status | grep -q "state=paused .*acquisition=off" &&
	n1=$(ms-ctl --socket cam.sock status | sed "s/.* frames=\([0-9]*\) .*/\1/") &&
	sleep 0.3 &&
	n2=$(ms-ctl --socket cam.sock status | sed "s/.* frames=\([0-9]*\) .*/\1/") &&
	test "$n1" = "$n2" &&
	ms-ctl --socket cam.sock camera acquisition on &&
	more() { test "$(ms-ctl --socket cam.sock status | sed "s/.* frames=\([0-9]*\) .*/\1/")" -gt "$n2"; } &&
	wait_for 10 more
'

test_expect_success 'malformed lines get err usage and change nothing; then all is well' '
	printf "camera focus set \"500\nZZ\377\376\ncamera focus set 500\001\n\n   \n" >bad &&
	head -c 5000 /dev/zero | tr "\0" x >>bad && printf "\ncamera focus get\n" >>bad &&
	$PY raw.py cam.sock 7 <bad >replies &&
	cat replies &&
	test $(wc -l <replies) -eq 7 &&
	test $(grep -c "^err usage" replies) -eq 6 &&
	grep -q "^err usage unterminated quote" replies &&
	grep -q "^err usage byte 0xff" replies &&
	grep -q "^err usage control character 0x01" replies &&
	grep -q "^err usage empty command" replies &&
	grep -q "^err usage line longer than 4095 bytes" replies &&
	test "$(tail -n 1 replies)" = "ok position=8000"
'

test_expect_success 'a client that goes away mid-line changes nothing' '
	printf "camera focus set 123" | $PY raw.py cam.sock 0 &&
	test "$(ms-ctl --socket cam.sock camera focus get)" = "position=8000"
'

test_expect_success 'unknown targets and verbs are refused by name' '
	! ms-ctl --socket cam.sock track status 2>err &&
	grep -q "err unknown-target no target .track. here (this is .camera.)" err &&
	! ms-ctl --socket cam.sock camera frob 2>err &&
	grep -q "err unknown-verb no verb .frob." err &&
	! ms-ctl --socket cam.sock camera focus 2>err && grep -q "err usage focus get | focus set NM" err
'

test_expect_success 'quit ends the camera with a complete stream and removes its socket' '
	ms-ctl --socket cam.sock camera quit &&
	wait_for 10 gone "$(cat cam.pid)" &&
	! test -e cam.sock &&
	ms-info frames | grep -q "^complete	yes" &&
	grep -q "stopped by a quit command" cam.err
'

test_expect_success 'a command FIFO: lines in, answers on standard error' '
	mkfifo c.fifo || exit 1
	$cam --control c.fifo --fps 100 >/dev/null 2>fifo.err &
	echo $! >fifo.pid &&
	echo "camera focus set 250" >c.fifo &&
	wait_for 10 grep -q "^ms-simulate: ok position=250$" fifo.err &&
	echo "camera set bogus" >c.fifo &&
	wait_for 10 grep -q "^ms-simulate: err usage .bogus. is not KEY=VALUE" fifo.err &&
	echo "subscribe" >c.fifo &&
	wait_for 10 grep -q "^ms-simulate: err usage events need a socket" fifo.err &&
	echo "camera quit" >c.fifo &&
	wait_for 10 gone "$(cat fifo.pid)" &&
	test -p c.fifo
'

test_expect_success 'the tracker alone reports frames, ROIs/s and invalid results' '
	$cam -n 1 --rois-out r.tsv >/dev/null 2>&1 || exit 1
	$cam --fps 100 2>/dev/null | ms-track --rois r.tsv --roi-size 32 --control trk.sock >/dev/null 2>trk.err &
	wait_for 10 test -S trk.sock &&
	rising() { ms-ctl --socket trk.sock status >ts && grep -q "frames=[1-9][0-9]" ts; } &&
	wait_for 10 rising &&
	grep -q "^state=running frames=[0-9]* fps=[0-9.]* rois=2 rois-per-s=[0-9]* invalid=[0-9]* dropped=0 ring-fill=[0-9]*% acquisition=on skipped=0 saving=off mode=track zlut=-$" ts &&
	kill $(pgrep -f "^ms-simulate --width 128 --height 96 --fixed 1 --tethered 1 --roi-size 32 --fps 100$") &&
	wait_for 10 eval "! test -e trk.sock"
'

# Through a rig: the same commands by stage name, and events to watchers.
cat >small.pipeline <<EOF
stage camera $cam --fps 100 --rois-out {data}/rois.tsv
stage track ms-track --roi-size 32 --rois {data}/rois.tsv -o {data}/t{n}.h5
pipe camera -> track
EOF

test_expect_success 'a rig from a pipeline file comes up' '
	start_rig rig --timeout 1 --data-dir data small.pipeline &&
	wait_for 10 stage_running rig camera && wait_for 10 stage_running rig track
'

test_expect_success 'ms-ctl watch sees the focus event a command causes' '
	ms-ctl -v -n 1 watch camera >ev 2>ev.err &
	wait_for 10 grep -q watching ev.err &&
	ms-ctl camera focus set 500 >out && test "$(cat out)" = position=500 &&
	wait_for 10 grep -q "^event camera focus position=500$" ev
'

test_expect_success 'a watcher of one stage does not see the others: rig events only if asked' '
	ms-ctl -v watch rig >rev 2>rev.err &
	echo $! >rev.pid &&
	ms-ctl -v -t 0.5 watch track >tev 2>tev.err &&
	wait_for 10 grep -q watching rev.err &&
	ms-ctl camera focus set 600 && ms-ctl rig message "hello there" &&
	wait_for 10 grep -q "^event rig message text=\"hello there\"$" rev &&
	kill "$(cat rev.pid)" &&
	! grep -q focus rev && ! test -s tev
'

test_expect_success 'through the rig: err answers, exit status 1, nothing crashes' '
	! ms-ctl camera set fps=abc 2>err && grep -q "^ms-ctl: err bad-value" err &&
	! ms-ctl nosuch status 2>err && grep -q "err unknown-target no stage .nosuch. (stages: camera, track; or rig)" err &&
	! ms-ctl rig frob 2>err && grep -q "err unknown-verb no rig verb .frob." err &&
	! ms-ctl track frob 2>err && grep -q "err unknown-verb" err &&
	! ms-ctl camera unsubscribe 2>err && grep -q "err usage .unsubscribe. (to the rig)" err &&
	d=$(rigdir rig) &&
	$PY raw.py "$d/ctl.sock" 7 <bad >replies && test $(grep -c "^err usage" replies) -eq 6 &&
	grep -q "^err busy\|^ok position" replies &&
	test "$(status_of rig state)" = running &&
	test "$(status_of rig camera.restarts)" = 0 && test "$(status_of rig track.restarts)" = 0
'

test_expect_success 'many clients at once are all answered' '
	for i in $(seq 1 20); do
		( ms-ctl camera focus get >"answer.$i" 2>&1; echo $? >>"many.rc" ) &
	done
	wait_for 15 eval "test \$(wc -l <many.rc) -eq 20" &&
	test "$(sort -u many.rc)" = 0 &&
	test "$(cat answer.* | sort -u)" = "position=600"
'

test_expect_success 'a stage that stops answering: err timeout, and status says so' '
	cpid=$(status_of rig camera.pid) &&
	kill -STOP "$cpid" &&
	! ms-ctl camera focus get 2>err; rc=$?
	ms-ctl status >st; kill -CONT "$cpid"
	cat err st &&
	grep -q "^ms-ctl: err timeout stage .camera. did not answer within 1 s$" err &&
	grep -q "^camera  *$cpid running(timeout) " st
'

test_expect_success 'late answers are thrown away: the next command gets its own' '
	ms-ctl camera focus set 700 >out && test "$(cat out)" = position=700 &&
	ms-ctl camera focus get >out && test "$(cat out)" = position=700
'

test_expect_success 'ms-ctl quit stops the rig and waits for it' '
	ms-ctl quit && wait_for 10 rig_ended rig && test "$(cat rig.rc)" = 0 &&
	! test -e "$(rigdir rig)"
'

stop_rigs
test_done
