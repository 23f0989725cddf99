#!/bin/sh
# ms-track: its outputs (TSV, HDF5 in MagScope's schema) and its refusals.
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup: a short simulated run' '
	ms-simulate --width 256 --height 192 --fixed 2 --tethered 2 --roi-size 64 -n 10 --fast \
		--format u16 --seed 5 -q --rois-out rois --truth truth.tsv -o s.tif
'

test_expect_success 'TSV goes to stdout without -o, with the header line' '
	ms-track --rois rois s.tif >out.tsv 2>err &&
	head -n 1 out.tsv | grep -q "^# frame	t_ns	bead	x_nm	y_nm	z_nm	roi_x0	roi_y0$" &&
	test $(grep -vc "^#" out.tsv) -eq 40 &&
	grep -q "10 frames, 40 ROIs" err
'

test_expect_success 'without a Z-LUT z is nan, and the summary counts no invalid x/y' '
	test $(grep -v "^#" out.tsv | cut -f6 | sort -u) = nan &&
	grep -q " 0 invalid" err
'

test_expect_success 'nm per pixel comes from the input: x_nm near the truth' '
	awk -v nm_per_px=100 -f "$MS_SRC/examples/compare-truth.awk" truth.tsv out.tsv >cmp &&
	awk "/^rms_x_px/ { exit !(\$2 < 0.2 && \$4 < 0.2) }" cmp
'

test_expect_success '--nm-per-px overrides the metadata' '
	ms-track -q --rois rois --nm-per-px 50 s.tif >half.tsv &&
	a=$(grep -v "^#" out.tsv | head -n 1 | cut -f4) &&
	b=$(grep -v "^#" half.tsv | head -n 1 | cut -f4) &&
	awk -v a="$a" -v b="$b" "BEGIN { exit !(a / b > 1.999 && a / b < 2.001) }"
'

test_expect_success '-o writes HDF5 in the MagScope schema, read back by h5py' '
	ms-track -q --rois rois -o t.h5 s.tif >/dev/null &&
	$PY - <<-EOF
	import h5py, numpy as np
	f = h5py.File("t.h5", "r")
	g = f["tracking"]
	u64 = np.dtype("uint64")
	for name in ["batch_sequence", "batch_frame_start", "batch_frame_count", "batch_record_start",
	             "batch_record_count", "frame_timestamps_ns", "frame_offsets", "frame_batch_sequence"]:
	    assert g[name].dtype == u64, (name, g[name].dtype)
	    assert g[name].maxshape[0] is None, name
	assert g["bead_ids"].dtype == np.dtype("uint16")
	assert g["positions_nm"].dtype == np.dtype("float64") and g["positions_nm"].shape == (40, 3)
	assert g["roi_positions_px"].dtype == np.dtype("uint16") and g["roi_positions_px"].shape == (40, 2)
	assert list(g["frame_offsets"][:]) == list(range(0, 44, 4))
	assert g["frame_timestamps_ns"].shape == (10,)
	assert int(g.attrs["schema_version"]) == 1
	for a in ["include_roi_positions", "record_order", "batch_sequence_order", "recording_id",
	          "recording_start_ns", "file_start_ns", "rotation_interval_ns",
	          "min_frame_timestamp_ns", "max_frame_timestamp_ns"]:
	    assert a in g.attrs, a
	ts = g["frame_timestamps_ns"][:]
	assert g.attrs["min_frame_timestamp_ns"] == ts.min() and g.attrs["max_frame_timestamp_ns"] == ts.max()
	assert sorted(set(g["bead_ids"][:])) == [0, 1, 2, 3]
	EOF
'

test_expect_success 'ms-info --tsv exports the HDF5 rows equal to the TSV ones' '
	ms-info --tsv t.h5 >back.tsv &&
	cmp out.tsv back.tsv
'

test_expect_success 'an existing output is not overwritten without --force' '
	fails_cleanly 1 "t.h5" ms-track -q --rois rois -o t.h5 s.tif &&
	ms-track -q --rois rois -o t.h5 --force s.tif
'

test_expect_success 'a malformed ROI line is refused with its line number' '
	printf "# beads\n0 10 10\n1 20 x\n" >bad.rois &&
	fails_cleanly 1 "bad.rois:3: .x. is not an integer" ms-track --rois bad.rois s.tif
'

test_expect_success 'an ROI line with too many fields is refused' '
	printf "0 10 10 7\n" >bad2.rois &&
	fails_cleanly 1 "bad2.rois:1: expected .id x0 y0." ms-track --rois bad2.rois s.tif
'

test_expect_success 'duplicate bead ids are refused' '
	printf "3 10 10\n3 80 80\n" >dup.rois &&
	fails_cleanly 1 "bead id 3 appears more than once" ms-track --rois dup.rois s.tif
'

test_expect_success 'an ROI outside the frame is refused' '
	printf "0 200 10\n" >out.rois &&
	fails_cleanly 1 "bead 0 at (200, 10), size 64, lies outside the 256x192 frame" \
		ms-track --rois out.rois s.tif
'

test_expect_success 'a missing ROI list is named' '
	fails_cleanly 1 "cannot open .no.rois." ms-track --rois no.rois s.tif
'

test_expect_success 'non-numeric and out-of-range option values are usage errors' '
	fails_cleanly 2 "invalid value .abc. for --roi-size: not an integer" ms-track --rois rois --roi-size abc s.tif &&
	fails_cleanly 2 "invalid value .63. for --roi-size: must be even" ms-track --rois rois --roi-size 63 s.tif &&
	fails_cleanly 2 "invalid value .4. for --roi-size: must be from 8 to 256" ms-track --rois rois --roi-size 4 s.tif &&
	fails_cleanly 2 "invalid value .0. for --jobs" ms-track --rois rois -j 0 s.tif &&
	fails_cleanly 2 "invalid value .x1. for --nm-per-px: not a number" ms-track --rois rois --nm-per-px x1 s.tif &&
	fails_cleanly 2 "invalid value .fast. for --com-background: must be one of none, mean, median" \
		ms-track --rois rois --com-background fast s.tif
'

test_expect_success '--rois is required' '
	fails_cleanly 2 "--rois FILE is required" ms-track s.tif
'

test_expect_success 'a Z-LUT whose profile length does not fit the ROI size is refused' '
	fails_cleanly 1 "profile length 25 does not fit ROI size 64" \
		ms-track --rois rois --zlut "$SHARED/fixtures/magscope-simulation-zlut.txt" s.tif
'

test_expect_success 'results do not depend on the thread count' '
	ms-track -q -j 1 --rois rois s.tif >j1.tsv &&
	ms-track -q -j 2 --rois rois s.tif >j2.tsv &&
	ms-track -q -j 2 --batch 3 --rois rois s.tif >j3.tsv &&
	cmp j1.tsv j2.tsv && cmp j1.tsv j3.tsv
'

test_expect_success 'the same tracks (but t_ns) from frames mapped from the TIFF, a stream, a zlib copy' '
	ms-track -q -j 2 --rois rois s.tif >mapped.tsv &&
	ms-capture -q -d replay:s.tif --fast | ms-track -q -j 2 --rois rois >stream.tsv &&
	$PY -c "import tifffile, sys; a = tifffile.imread(sys.argv[1]); tifffile.imwrite(sys.argv[2], a, compression=\"zlib\", photometric=\"minisblack\")" s.tif z.tif &&
	$PY -c "import tifffile, sys; assert tifffile.TiffFile(sys.argv[1]).pages[0].compression != 1" z.tif &&
	ms-track -q -j 2 --nm-per-px 100 --rois rois z.tif >zlib.tsv &&
	test $(grep -vc "^#" mapped.tsv) -eq 40 &&
	cut -f1,3- mapped.tsv >m.cut && cut -f1,3- stream.tsv >s.cut && cut -f1,3- zlib.tsv >z.cut &&
	cmp m.cut s.cut && cmp m.cut z.cut
'

test_expect_success 'SIGTERM mid-run leaves a valid HDF5 file and exit 143' '
	ms-simulate --width 256 --height 192 --fixed 2 --tethered 2 --roi-size 64 --fps 200 \
		--seed 5 -q | ms-track -q --rois rois --batch 4 -o sig.h5 --nm-per-px 100 &
	pid=$! &&
	sleep 2 &&
	kill -TERM $pid &&
	wait $pid ; rc=$?
	test $rc -eq 143 &&
	$PY -c "import h5py; g = h5py.File(\"sig.h5\", \"r\")[\"tracking\"]; n = g[\"frame_timestamps_ns\"].shape[0]; assert n > 10 and g[\"frame_offsets\"].shape[0] == n + 1, n"
'

test_done
