#!/bin/sh
# The frame stream: written by ms-simulate, read by ms-info and ms-track;
# a truncated stream is told from a finished one.
. "$(dirname "$0")/lib.sh"

test_expect_success 'ms-simulate writes a self-describing stream' '
	ms-simulate -n 5 --fast --width 128 --height 96 --fixed 1 --tethered 0 --roi-size 32 -q >s.frames &&
	head -c 8 s.frames | grep -q MSFRAMES &&
	ms-info s.frames >info &&
	grep -q "^width	128" info && grep -q "^height	96" info &&
	grep -q "^format	u8" info && grep -q "^frames	5" info &&
	grep -q "^nm_per_px	100" info && grep -q "^complete	yes" info
'

test_expect_success 'the stream is exactly header + 5 records + end record' '
	hdr=$(awk "/^ENDHDR/ { print NR; exit }" s.frames) &&
	hbytes=$(head -n "$hdr" s.frames | wc -c) &&
	total=$(wc -c <s.frames) &&
	test "$total" -eq $((hbytes + 5 * (32 + 128 * 96) + 32))
'

test_expect_success 'ms-info reads a stream from standard input' '
	ms-info - <s.frames >info && grep -q "^frames	5" info
'

test_expect_success 'a cut record is reported as truncated, exit 1' '
	head -c $(( $(wc -c <s.frames) - 100 )) s.frames >cut.frames &&
	fails_cleanly 1 "truncated frame stream" ms-info cut.frames
'

test_expect_success 'a stream without its end record is truncated too' '
	head -c $(( $(wc -c <s.frames) - 32 )) s.frames >noend.frames &&
	fails_cleanly 1 "without an end record" ms-info noend.frames
'

test_expect_success 'ms-track on a truncated stream fails after writing what it read' '
	echo "0 10 10" >rois &&
	ms-track --rois rois --roi-size 32 -q <noend.frames >out.tsv 2>err; rc=$?
	no_crash $rc err && test $rc -eq 1 && grep -q "truncated frame stream" err &&
	test $(grep -vc "^#" out.tsv) -eq 5
'

test_expect_success 'garbage is not a frame stream' '
	printf "hello world\n" >junk &&
	fails_cleanly 1 "not a frame stream" ms-track --rois rois - <junk
'

test_expect_success 'an empty input is not a frame stream' '
	fails_cleanly 1 "empty input" ms-track --rois rois </dev/null
'

test_expect_success 'a header with an unknown version is refused' '
	printf "MSFRAMES 9\nWIDTH 4\nHEIGHT 4\nFORMAT u8\nTRANSPORT inline\nENDHDR\n" >v9 &&
	fails_cleanly 1 "version .9. is not supported" ms-info v9
'

test_expect_success 'a FIFO carries the stream between processes' '
	mkfifo fifo &&
	{ ms-simulate -n 7 --fast --width 128 --height 96 --fixed 1 --tethered 0 --roi-size 32 -q >fifo & } &&
	ms-info fifo >info && wait &&
	grep -q "^frames	7" info
'

test_done
