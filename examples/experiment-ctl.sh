#!/bin/sh
# experiment-ctl.sh: the same experiment as experiment.script, as a shell
# script of ms-ctl calls against the rig started last (or the one named by
# MS_RUNTIME_DIR). Each ms-ctl exits 1 on an "err" answer, so `set -e`
# stops the experiment at the first refusal.
set -eu
until ms-ctl track status | grep -q 'frames=[1-9][0-9]'; do sleep 0.2; done
ms-ctl rig message "experiment: focus steps"
ms-ctl track saving new-file
for z in -500 0 500; do
	ms-ctl camera focus set "$z"
	sleep 0.5
done
ms-ctl track roi list
ms-ctl track saving off
ms-ctl quit
