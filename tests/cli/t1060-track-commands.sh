#!/bin/sh
# ms-track under control: ROIs added, moved and removed, acquisition and
# saving switched, data mode and folder set, a new file, a Z-LUT loaded;
# every change takes effect between batches, malformed commands change
# nothing.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

cam="ms-simulate --width 256 --height 128 --fixed 2 --tethered 0 --roi-size 32 --seed 3 -q"
ctl() { ms-ctl --socket trk.sock "$@" 2>&1; }
# value KEY: from the last reply saved in reply
value() { tr ' ' '\n' <reply | sed -n "s/^$1=//p"; }

test_expect_success 'setup: a live tracker with a control socket' '
	$cam -n 1 --rois-out r.tsv >/dev/null &&
	ms-simulate --width 256 --height 128 --fixed 3 --tethered 0 --roi-size 32 --seed 4 -q --fast \
		--format u16 --sweep -1000:1000:250 --frames-per-step 2 --rois-out sr.tsv --zfile z -o sw.tif &&
	ms-zlut build -q --rois sr.tsv --roi-size 32 --z z -o lut.h5 sw.tif &&
	{ $cam --fps 200 | ms-track -q --rois r.tsv --roi-size 32 --control trk.sock --batch 4 \
		--tsv >live.tsv 2>trk.err & } &&
	echo $! >trk.pid &&
	wait_for 10 test -S trk.sock
'

test_expect_success 'roi list shows the beads of the ROI file' '
	ctl track roi list >reply &&
	test "$(value n)" = 2 &&
	test "$(value 0)" = "$(awk "\$1 == 0 { print \$2 \",\" \$3 }" r.tsv)"
'

test_expect_success 'roi add puts a new bead into the tracks' '
	ctl track roi add 7 100 60 >reply && test "$(value n)" = 3 &&
	wait_for 10 grep -q "	7	.*	100	60$" live.tsv
'

test_expect_success 'roi move changes its corner in the rows that follow' '
	ctl track roi move 7 120 70 >reply &&
	wait_for 10 grep -q "	7	.*	120	70$" live.tsv
'

test_expect_success 'roi remove stops its rows' '
	ctl track roi remove 7 >reply && test "$(value n)" = 2 &&
	n1=$(grep -c "	7	" live.tsv) && sleep 0.5 && n2=$(grep -c "	7	" live.tsv) &&
	test "$n1" -eq "$n2"
'

test_expect_success 'bad ROI commands are refused and change nothing' '
	! ctl track roi add 0 10 10 >reply && grep -q "err bad-value bead 0 exists" reply &&
	! ctl track roi add 9 250 10 >reply && grep -q "err bad-value an ROI of 32 px at (250, 10) is outside the 256x128 frame" reply &&
	! ctl track roi remove 42 >reply && grep -q "err bad-value there is no bead 42" reply &&
	! ctl track roi add x 1 1 >reply && grep -q "err bad-value .x. is not an integer" reply &&
	! ctl track roi twirl >reply && grep -q "err usage" reply &&
	! ctl track frobnicate >reply && grep -q "err unknown-verb" reply &&
	ctl track roi list >reply && test "$(value n)" = 2
'

test_expect_success 'acquisition off skips frames; on resumes tracking' '
	ctl track acquisition off >reply &&
	wait_for 10 sh -c "ms-ctl --socket trk.sock track status | grep -q \"skipped=[1-9]\"" &&
	ctl track status >reply && f1=$(value frames) && sleep 0.5 &&
	ctl track status >reply && test "$(value frames)" = "$f1" &&
	ctl track acquisition on >reply &&
	wait_for 10 sh -c "ms-ctl --socket trk.sock track status | grep -qv \"frames=$f1 \""
'

test_expect_success 'saving needs a folder; with one it writes a dated SWMR tracks file' '
	! ctl track saving on >reply && grep -q "err failed" reply &&
	ctl track saving folder "$TRASH/data dir" >reply &&
	ctl track saving on >reply && test "$(value saving)" = on &&
	wait_for 10 sh -c "ls \"$TRASH/data dir\" | grep -q \"^Tracking Data .*\\.h5$\"" &&
	f=$(ls "$TRASH/data dir"/Tracking*.h5 | head -n 1) &&
	wait_for 10 sh -c "$PY -c \"import h5py,sys; g = h5py.File(sys.argv[1], \\\"r\\\", swmr=True)[\\\"tracking\\\"]; assert g[\\\"frame_timestamps_ns\\\"].shape[0] > 0\" \"$f\""
'

test_expect_success 'saving new-file and a data mode change start new files' '
	n0=$(ls "$TRASH/data dir" | wc -l) &&
	ctl track saving new-file >reply &&
	ctl track saving mode track+roi-video >reply && test "$(value mode)" = track+roi-video &&
	wait_for 10 sh -c "ls \"$TRASH/data dir\" | grep -q \"^Video .*\\.tif$\"" &&
	test $(ls "$TRASH/data dir" | wc -l) -gt "$n0" &&
	! ctl track saving mode movie >reply && grep -q "err bad-value no data mode .movie." reply &&
	ctl track saving off >reply && test "$(value saving)" = off
'

test_expect_success 'zlut load turns z on; a table that does not fit is refused' '
	! ctl track zlut load "$SHARED/fixtures/magscope-simulation-zlut.txt" >reply &&
	grep -q "err failed .*does not fit" reply &&
	ctl track zlut load lut.h5 >reply && test "$(value planes)" = 9 &&
	wait_for 10 sh -c "tail -n 3 live.tsv | cut -f6 | grep -qv nan" &&
	ctl track status >reply && test "$(value zlut)" = lut.h5 &&
	ctl track zlut unload >reply &&
	wait_for 10 sh -c "tail -n 2 live.tsv | cut -f6 | grep -q nan"
'

test_expect_success 'the tracker ends cleanly with files that read back' '
	kill -TERM $(cat trk.pid) && wait_for 10 gone "$(cat trk.pid)" &&
	wait_for 10 eval "! test -e trk.sock" &&
	for f in "$TRASH/data dir"/*.h5; do
		$PY -c "import h5py,sys; h5py.File(sys.argv[1], \"r\")[\"tracking\"]" "$f" || exit 1
	done &&
	for f in "$TRASH/data dir"/*.tif; do
		$PY -c "import tifffile,sys; assert tifffile.TiffFile(sys.argv[1]).imagej_metadata[\"channels\"] == 2" "$f" || exit 1
	done
'

stop_rigs
test_done
