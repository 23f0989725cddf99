#!/bin/sh
# ms-zlut: build variants, show, convert between HDF5 and MagScope text.
. "$(dirname "$0")/lib.sh"

fixture="$SHARED/fixtures/magscope-simulation-zlut.txt"

test_expect_success 'show reads the MagScope fixture: 100 planes, 25 bins, -5000..5000' '
	ms-zlut show "$fixture" >show &&
	grep -q "^planes	100" show && grep -q "^profile_length	25" show &&
	grep -q "^z_min_nm	-5000" show && grep -q "^z_max_nm	5000" show &&
	grep -q "^z_step_nm	101.01" show && grep -q "^form	MagScope text" show
'

test_expect_success 'text -> HDF5 -> text keeps every number' '
	ms-zlut convert "$fixture" f.h5 &&
	ms-zlut convert f.h5 back.txt &&
	$PY - "$fixture" back.txt <<-EOF
	import sys, numpy as np
	a = np.loadtxt(sys.argv[1]); b = np.loadtxt(sys.argv[2])
	assert a.shape == b.shape == (26, 100), (a.shape, b.shape)
	# profiles are float32 in HDF5; z is float64
	assert np.array_equal(a[0], b[0])
	assert np.allclose(a[1:], b[1:], rtol=1e-6, atol=1e-7, equal_nan=True)
	EOF
'

test_expect_success 'the HDF5 form holds the documented datasets, read by h5py' '
	$PY - <<-EOF
	import h5py, numpy as np
	g = h5py.File("f.h5", "r")["zlut"]
	assert g["z_nm"].shape == (100,) and g["z_nm"].dtype == np.float64
	assert g["profiles"].shape == (1, 100, 25) and g["profiles"].dtype == np.float32
	assert g["bead_ids"].shape == (1,)
	EOF
'

test_expect_success 'convert refuses to overwrite, and needs --bead for a per-bead table' '
	fails_cleanly 1 "exists" ms-zlut convert "$fixture" f.h5
'

test_expect_success 'setup: a small sweep' '
	ms-simulate --nm-per-px 100 --roi-size 32 --format u16 --photons 100000 --fast -q \
		--width 200 --height 100 --fixed 3 --tethered 0 --seed 31 \
		--sweep -1000:1000:250 --frames-per-step 3 --rois-out r --zfile z -o sw.tif
'

test_expect_success 'build averages frames of equal z into sorted planes' '
	ms-zlut build -q --rois r --roi-size 32 --z z -o all.h5 sw.tif &&
	ms-zlut show all.h5 >show && grep -q "^planes	9" show &&
	grep -q "^beads	1" show && grep -q "^roi_size	32" show && grep -q "^nm_per_px	100" show
'

test_expect_success 'build --per-bead keeps one table per bead; --bead takes one' '
	ms-zlut build -q --rois r --roi-size 32 --z z -o per.h5 --per-bead sw.tif &&
	ms-zlut show per.h5 >show && grep -q "^beads	3" show && grep -q "^bead_ids	0,1,2" show &&
	ms-zlut build -q --rois r --roi-size 32 --z z -o one.txt --bead 1 sw.tif &&
	test $(wc -l <one.txt) -eq 17 &&
	fails_cleanly 1 "give --bead ID" ms-zlut convert per.h5 x.txt &&
	ms-zlut convert --bead 2 per.h5 two.txt && test $(wc -l <two.txt) -eq 17
'

test_expect_success 'the text written is what numpy.loadtxt reads' '
	$PY -c "import numpy as np; a = np.loadtxt(\"one.txt\"); assert a.shape == (17, 9), a.shape; assert a[0, 0] == -1000 and a[0, -1] == 1000"
'

test_expect_success 'a ZFILE that does not match the frame count is refused' '
	head -n 10 z >short.z &&
	fails_cleanly 1 "has 10 z values but the input has 27 frames" ms-zlut build --rois r --roi-size 32 --z short.z -o x.h5 sw.tif
'

test_expect_success 'a ZFILE with a bad line is refused with its line number' '
	{ head -n 3 z; echo "12x"; } >bad.z &&
	fails_cleanly 1 "bad.z:4: .12x. is not a z in nm" ms-zlut build --rois r --roi-size 32 --z bad.z -o x.h5 sw.tif
'

test_expect_success 'malformed text Z-LUTs are refused with the file named' '
	printf "1 2 3\n4 5\n" >ragged.txt &&
	fails_cleanly 1 "ragged.txt" ms-zlut show ragged.txt &&
	printf "1 2 3\n" >onerow.txt &&
	fails_cleanly 1 "onerow.txt" ms-zlut show onerow.txt &&
	printf "1 nan 3\n4 5 6\n" >nanz.txt &&
	fails_cleanly 1 "nanz.txt" ms-zlut show nanz.txt
'

test_expect_success 'a truncated HDF5 Z-LUT is refused' '
	head -c 1000 all.h5 >cut.h5 &&
	fails_cleanly 1 "cut.h5" ms-zlut show cut.h5
'

test_done
