#!/bin/sh
# demo.sh DIR: the offline path end to end, on simulated beads.
#   1. a focus sweep of fixed beads, recorded as a TIFF stack
#   2. ms-zlut build: the Z-LUT from that sweep
#   3. a run of tethered beads, streamed straight into ms-track
#   4. how far the tracked positions are from the simulator's ground truth
#   5. the live rig: ms-run starts a simulated camera and the tracker (the
#      frames in shared memory), ms-ctl shows its status, moves the focus,
#      and stops it
# Uses the programs on PATH (or in $MS_BIN). Runs in about 15 seconds.
set -eu
dir=${1:-demo}
[ -n "${MS_BIN:-}" ] && PATH="$MS_BIN:$PATH"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
nm=100

echo "== 1. focus sweep: 6 fixed beads, z from -5 to +5 um in 100 nm steps"
ms-simulate --fixed 6 --tethered 0 --nm-per-px $nm --format u16 --photons 10000 \
	--sweep -5000:5000:100 --frames-per-step 4 --fast --seed 11 \
	--rois-out "$dir/sweep-rois.tsv" --zfile "$dir/sweep-z.txt" -o "$dir/sweep.tif"

echo "== 2. Z-LUT from the sweep"
ms-zlut build --force --rois "$dir/sweep-rois.tsv" --z "$dir/sweep-z.txt" \
	-o "$dir/zlut.h5" "$dir/sweep.tif"
ms-zlut show "$dir/zlut.h5"

echo "== 3. tethered beads, simulated and tracked in one pipeline"
ms-simulate --fixed 2 --tethered 6 --nm-per-px $nm --format u16 --photons 10000 \
	--tethered-z -1000 --tethered-z-sigma 1500 --frames 400 --fps 100 --fast --seed 12 \
	--truth "$dir/truth.tsv" --rois-out "$dir/rois.tsv" |
ms-track --rois "$dir/rois.tsv" --zlut "$dir/zlut.h5" -o "$dir/tracks.h5" --force --tsv \
	> "$dir/tracks.tsv"
ms-info "$dir/tracks.h5"

echo "== 4. tracked minus true positions"
awk -v nm_per_px=$nm -f "$here/compare-truth.awk" "$dir/truth.tsv" "$dir/tracks.tsv"

echo "== 5. the live rig: ms-run's demo pipeline, a camera at 100 frames/s feeding the tracker"
ms-run --dry-run --data-dir "$dir/live" | grep -e '^stage' -e '^pipe'
rm -rf "$dir/live"
ms-run --data-dir "$dir/live" 2>"$dir/live-rig.err" &
rig=$!
trap 'kill $rig 2>/dev/null' EXIT
# The rig says on standard error when every stage runs, and where its socket is.
rundir=
for _ in $(seq 100); do
	rundir=$(sed -n 's/.* up: .* control socket \(.*\)\/ctl\.sock$/\1/p' "$dir/live-rig.err")
	[ -n "$rundir" ] && break
	sleep 0.1
done
[ -n "$rundir" ] || { cat "$dir/live-rig.err"; exit 1; }
sleep 2
ms-ctl --dir "$rundir" status
echo "\$ ms-ctl camera focus set 500"
ms-ctl --dir "$rundir" camera focus set 500
sleep 1
ms-ctl --dir "$rundir" status
echo "\$ ms-ctl quit"
ms-ctl --dir "$rundir" quit
wait $rig
trap - EXIT
ms-info "$dir"/live/*-tracks-1.h5 | grep -E '^(file|frames|beads)\s'
echo "demo files are in $dir/: sweep.tif, zlut.h5, tracks.h5, tracks.tsv, truth.tsv, live/ (the rig's tracks and log)"
