#!/bin/sh
# ms-info: every kind of mstk file described; tracks exported; the
# pixel-size fallback of ms-track announced.
. "$(dirname "$0")/lib.sh"

sim="ms-simulate --width 160 --height 128 --fixed 2 --tethered 0 --roi-size 48 --fast -q --seed 4"

test_expect_success 'setup: a stream, a stack, a tracks file and two Z-LUTs' '
	$sim -n 3 --rois-out rois >s.frames &&
	$sim -n 3 -o s.tif &&
	ms-track -q --rois rois --roi-size 48 -o t.h5 s.frames &&
	ms-zlut convert "$SHARED/fixtures/magscope-simulation-zlut.txt" z.h5
'

test_expect_success 'one call describes several files of different kinds' '
	ms-info s.frames s.tif t.h5 z.h5 "$SHARED/fixtures/magscope-simulation-zlut.txt" >out &&
	grep -q "^kind	frame stream" out &&
	grep -q "^kind	TIFF stack" out &&
	grep -q "^kind	tracks (HDF5, MagScope schema)" out &&
	grep -q "^kind	Z-LUT (mstk HDF5)" out &&
	grep -q "^kind	Z-LUT (MagScope text)" out &&
	grep -q "^records	6" out && grep -q "^beads	2" out &&
	test $(grep -c "^planes	100" out) -eq 2
'

test_expect_success 'the stream frame rate and sequence are reported' '
	ms-info s.frames >out &&
	grep -q "^frame_rate_hz	30.000" out && grep -q "^seq	0..2$" out
'

test_expect_success '--csv exports tracks with a header line' '
	ms-info --csv t.h5 >t.csv &&
	head -n 1 t.csv | grep -q "^frame,t_ns,bead,x_nm,y_nm,z_nm,roi_x0,roi_y0$" &&
	test $(wc -l <t.csv) -eq 7
'

test_expect_success 'an HDF5 file that is neither tracks nor Z-LUT is refused' '
	$PY -c "import h5py; h5py.File(\"other.h5\", \"w\").create_dataset(\"x\", data=[1])" &&
	fails_cleanly 1 "neither /tracking nor /zlut" ms-info other.h5
'

test_expect_success 'a bad file among good ones fails the call, the others are still described' '
	echo "not a table" >junk.txt &&
	ms-info s.tif junk.txt >out 2>err; rc=$?
	no_crash $rc err && test $rc -eq 1 && grep -q "^kind	TIFF stack" out && grep -q "junk.txt" err
'

test_expect_success '--tsv of a file that is not a tracks file is refused' '
	fails_cleanly 1 "not an HDF5 tracks file" ms-info --tsv z.h5
'

test_expect_success 'ms-track says when it must assume 1 nm per pixel' '
	sed "s/^NM_PER_PX 100$/NM_PER_PX 0  /" s.frames >nopx.frames &&
	ms-info nopx.frames | grep -q "^nm_per_px	unknown" &&
	ms-track --rois rois --roi-size 48 nopx.frames >out.tsv 2>err &&
	grep -q "assuming 1 nm per pixel" err &&
	ms-track -q --rois rois --roi-size 48 --nm-per-px 100 nopx.frames >px.tsv &&
	ms-track -q --rois rois --roi-size 48 s.frames >ref.tsv && cmp px.tsv ref.tsv
'

test_done
