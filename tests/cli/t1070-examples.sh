#!/bin/sh
# The rig examples run as they are: a pipeline file, an experiment as a
# script of control lines, and the same experiment as a shell script of
# ms-ctl calls.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"
ex=$MS_SRC/examples

test_expect_success 'ms-run runs experiment.script on rig.pipeline to its quit' '
	timeout 60 ms-run --script "$ex/experiment.script" --data-dir data1 "$ex/rig.pipeline" \
		>run.out 2>run.err; rc=$?
	cat run.err; test $rc -eq 0 &&
	grep -q "experiment: done" run.err &&
	test $(ls data1 | grep -c "^Tracking Data .*\.h5$") -ge 2 &&
	for f in data1/Tracking*.h5; do
		$PY -c "import h5py,sys; h5py.File(sys.argv[1], \"r\", swmr=True)[\"tracking\"]" "$f" || exit 1
	done
'

test_expect_success 'experiment-ctl.sh drives a running rig to its end' '
	start_rig rig2 --data-dir data2 "$ex/rig.pipeline" &&
	timeout 60 "$ex/experiment-ctl.sh" >ctl.out 2>&1 &&
	wait_for 20 rig_ended rig2 &&
	test "$(cat rig2.rc)" -eq 0 &&
	grep -q "experiment: focus steps" rig2.err &&
	test $(ls data2 | grep -c "^Tracking Data .*\.h5$") -ge 2
'

test_expect_success 'a script that fails stops at its line, with the reason' '
	sed "s/^camera focus set 500$/camera focus set lots/" "$ex/experiment.script" >bad.script &&
	line=$(grep -n "focus set lots" bad.script | cut -d: -f1) &&
	timeout 60 ms-run --script bad.script --data-dir data3 "$ex/rig.pipeline" >bad.out 2>bad.err; rc=$?
	test $rc -eq 1 && grep -q "bad.script:$line: err" bad.err
'

stop_rigs
test_done
