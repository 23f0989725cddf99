#!/bin/sh
# TIFF in and out: ms-simulate writes stacks tifffile reads; ms-track reads
# TIFF and frame streams alike; bad TIFFs fail cleanly.
. "$(dirname "$0")/lib.sh"

sim="ms-simulate --width 160 --height 128 --fixed 2 --tethered 1 --roi-size 48 --fast --seed 3 -q"

test_expect_success 'ms-simulate -o writes a TIFF stack tifffile reads with labels and scale' '
	$sim -n 6 --format u16 -o s.tif &&
	$PY - <<-EOF
	import tifffile
	with tifffile.TiffFile("s.tif") as t:
	    a = t.asarray()
	    assert a.shape == (6, 128, 160), a.shape
	    assert a.dtype.name == "uint16", a.dtype
	    md = t.imagej_metadata
	    assert md is not None and int(md["images"]) == 6, md
	    labels = md["Labels"]
	    assert len(labels) == 6 and all(float(x) > 1e9 for x in labels), labels
	    x = t.pages[0].tags["XResolution"].value
	    assert abs(x[1] / x[0] - 100) < 1e-6, x
	EOF
'

test_expect_success 'ms-info describes the stack' '
	ms-info s.tif >info &&
	grep -q "^frames	6" info && grep -q "^format	u16" info &&
	grep -q "^timestamps	yes" info && grep -q "^nm_per_px	100" info
'

test_expect_success 'the same frames track identically from TIFF and from a stream' '
	$sim -n 6 --format u16 --rois-out rois >s.frames &&
	ms-track --rois rois --roi-size 48 -q s.frames >a.tsv &&
	ms-track --rois rois --roi-size 48 -q s.tif >b.tsv &&
	cmp a.tsv b.tsv && test $(grep -vc "^#" a.tsv) -eq 18
'

test_expect_success 'several TIFF files are read as one run' '
	ms-track --rois rois --roi-size 48 -q s.tif s.tif >c.tsv &&
	test $(grep -vc "^#" c.tsv) -eq 36 &&
	test "$(tail -n 1 c.tsv | cut -f1)" = 11
'

test_expect_success 'a truncated TIFF fails with the file named' '
	head -c 20000 s.tif >cut.tif &&
	fails_cleanly 1 "cut.tif" ms-track --rois rois --roi-size 48 cut.tif
'

test_expect_success 'a file that is not a TIFF fails cleanly' '
	printf "II*\000garbage" >bad.tif &&
	fails_cleanly 1 "bad.tif" ms-track --rois rois --roi-size 48 bad.tif &&
	echo "plain text" >notes.txt &&
	fails_cleanly 1 "neither a TIFF nor a frame stream" ms-track --rois rois notes.txt
'

test_expect_success 'a missing input is named' '
	fails_cleanly 1 "cannot open .nope.tif.: No such file" ms-track --rois rois nope.tif
'

test_expect_success 'TIFF files of different sizes are refused' '
	ms-simulate --width 96 --height 96 --fixed 1 --tethered 0 --roi-size 32 --fast -q -n 2 --format u16 -o small.tif &&
	fails_cleanly 1 "small.tif" ms-track --rois rois --roi-size 48 s.tif small.tif
'

test_done
