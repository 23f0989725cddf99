#!/bin/sh
# Scripts: files of control lines with sleep and wait, run by the rig
# (ms-ctl run, ms-run --script); the first error stops them, reported
# with its line number and reason, and nothing after it runs.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

cam="ms-simulate --width 128 --height 96 --fixed 1 --tethered 1 --roi-size 32 --fps 100"
cat >rig.pipeline <<EOF
stage camera $cam --rois-out {data}/rois.tsv
stage track ms-track --roi-size 32 --rois {data}/rois.tsv -o {data}/t{n}.h5
pipe camera -> track
EOF

test_expect_success 'a rig comes up' '
	start_rig rig --data-dir data rig.pipeline
'

test_expect_success 'a good script runs to its end: commands, sleep, wait' '
	cat >good.txt <<-\EOF &&
	# MagScope: SleepCommand, SetAcquisitionOnCommand, ShowMessageCommand...
	wait camera frames>=10 10

	camera focus set 300
	sleep 0.1
	camera acquisition off
	wait camera acquisition=off
	camera acquisition on
	rig message "acquisition is back"
	wait rig track.frames>10 10
	camera set fps=50 "photons=2000"
	EOF
	ms-ctl -v run good.txt 2>err && cat err &&
	grep -q "^good.txt:4: camera focus set 300$" err &&
	grep -q "^ms-ctl: good.txt: finished$" err &&
	test "$(ms-ctl camera get focus fps photons)" = "fps=50 photons=2000 focus=300" &&
	grep -q " ms-run: message: acquisition is back$" data/*-rig.log
'

test_expect_success 'an error stops the script at its line; later lines do not run' '
	cat >bad.txt <<-\EOF &&
	camera focus set 100
	# a comment

	camera set fps=abc
	camera focus set 999
	EOF
	! ms-ctl run bad.txt 2>err && cat err &&
	grep -q "^ms-ctl: bad.txt:4: err bad-value fps .abc. is not a number$" err &&
	test "$(ms-ctl camera focus get)" = position=100 &&
	grep -q "^ms-run: script .*/bad.txt:4: err bad-value" rig.err &&
	test "$(status_of rig state)" = running
'

script_fails() {
	line=$1
	pat=$2
	! ms-ctl run s.txt 2>err || { echo "it did not fail"; return 1; }
	cat err
	grep -q "^ms-ctl: s.txt:$line: $pat" err
}

test_expect_success 'every kind of bad line is reported with its number' '
	printf "camera focus get\nnosuch frob\n" >s.txt && script_fails 2 "err unknown-target no stage .nosuch." &&
	printf "\n\ncamera focus set \"1\n" >s.txt && script_fails 3 "err usage unterminated quote" &&
	printf "sleep\n" >s.txt && script_fails 1 "err usage sleep SECONDS" &&
	printf "sleep -1\n" >s.txt && script_fails 1 "err usage sleep SECONDS" &&
	printf "wait camera\n" >s.txt && script_fails 1 "err usage wait TARGET CONDITION" &&
	printf "wait camera frames>>3\n" >s.txt && script_fails 1 "err usage bad condition" &&
	printf "wait nosuch frames>3\n" >s.txt && script_fails 1 "err unknown-target no stage .nosuch." &&
	printf "camera frob\n" >s.txt && script_fails 1 "err unknown-verb" &&
	printf "rig run other.txt\n" >s.txt && script_fails 1 "err usage .run. cannot be used in a script"
'

test_expect_success 'a wait that times out says what it saw last' '
	printf "camera focus set 5\nwait camera focus=12345 0.3\n" >s.txt &&
	script_fails 2 "wait: camera focus=12345 did not come within 0.3 s (last: focus=5)"
'

test_expect_success 'one script at a time; rig abort stops the one running' '
	printf "sleep 30\n" >long.txt &&
	ms-ctl run long.txt 2>long.err &
	running() { status_of rig script | grep -q "^running:1$"; } &&
	wait_for 10 running &&
	! ms-ctl rig run "$TRASH/good.txt" 2>err && grep -q "err busy script .*long.txt is running (line 1)" err &&
	ms-ctl rig abort &&
	wait_for 10 grep -q "^ms-ctl: long.txt:1: stopped: aborted$" long.err &&
	test "$(status_of rig script)" = none
'

test_expect_success 'quit the rig' '
	ms-ctl quit && wait_for 10 rig_ended rig && test "$(cat rig.rc)" = 0
'

test_expect_success 'ms-run --script: an error stops the script and the rig, with exit 1' '
	printf "wait camera frames>=5 10\ncamera focus set 10\ncamera focus set nan-ish\nquit\n" >cli.txt &&
	ms-run --script cli.txt --data-dir data2 rig.pipeline >c.out 2>c.err; rc=$?
	cat c.err && test $rc -eq 1 &&
	grep -q "^ms-run: script cli.txt:3: err bad-value focus .nan-ish. is not a number$" c.err &&
	grep -q "^ms-run: stopping (the script failed)$" c.err &&
	test -z "$(ls "$RIGBASE" | grep rig-)"
'

test_expect_success 'ms-run --script that ends with quit: the rig stops well' '
	printf "wait track frames>=5 10\nrig message done\nquit\ncamera focus set 1\n" >q.txt &&
	ms-run --script q.txt --data-dir data3 rig.pipeline >q.out 2>q.err; rc=$?
	cat q.err && test $rc -eq 0 &&
	grep -q "^ms-run: script q.txt: finished by .quit. at line 3$" q.err &&
	ls data3/t1.h5 &&
	fails_cleanly 1 "cannot read script .nosuch.txt." ms-run --script nosuch.txt rig.pipeline
'

stop_rigs
test_done
