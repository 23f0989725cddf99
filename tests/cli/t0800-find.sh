#!/bin/sh
# ms-find: automatic bead selection on simulated frames, checked against
# the simulator's truth, and its refusals.
. "$(dirname "$0")/lib.sh"

# check.py TRUTH ROIS [--frame K] [--roi N] [--sep S]: compare an ROI list
# with the true bead centres of frame K (x_nm / 100 px). With S < the
# ROI size every bead must be matched within 3 px (ROI corner round(c -
# N/2), clamped) by exactly one ROI and nothing else found. With S = N
# (non-overlapping ROIs) beads whose centred ROIs overlap another's cannot
# all be had: then every bead whose ROI overlaps none must be matched, and
# every ROI must hold a bead (centre within N/4 of the ROI's centre).
# Always: ids 0..n-1, scores descending after the first, ROIs inside the
# frame and at least S apart in x or y.
cat >check.py <<'EOF'
import argparse, re, sys
ap = argparse.ArgumentParser()
ap.add_argument("truth"); ap.add_argument("rois")
ap.add_argument("--frame", type=int, default=0); ap.add_argument("--roi", type=int, default=64)
ap.add_argument("--sep", type=int, default=48); ap.add_argument("--size", type=int, default=1024)
ap.add_argument("--nm", type=float, default=100)
a = ap.parse_args()
w = a.roi
beads = [(float(f[3]) / a.nm, float(f[4]) / a.nm) for f in
         (l.split("\t") for l in open(a.truth) if not l.startswith("#")) if int(f[0]) == a.frame]
found, scores = [], []
for line in open(a.rois):
    body, _, comment = line.partition("#")
    if not body.split():
        continue
    i, x0, y0 = map(int, body.split())
    found.append((i, x0, y0))
    scores.append(float(re.search(r"score=([-0-9.]+)", comment).group(1)))
def corner(c):
    return min(max(round(c - w / 2), 0), a.size - w)
problems = []
if [f[0] for f in found] != list(range(len(found))):
    problems.append("ids are not 0..n-1")
if any(s1 < s2 for s1, s2 in zip(scores[1:], scores[2:])):
    problems.append("scores not descending")
for _, x0, y0 in found:
    if x0 < 0 or y0 < 0 or x0 + w > a.size or y0 + w > a.size:
        problems.append("ROI %d,%d outside the frame" % (x0, y0))
for j, (_, xa, ya) in enumerate(found):
    for _, xb, yb in found[j + 1:]:
        if abs(xa - xb) < a.sep and abs(ya - yb) < a.sep:
            problems.append("ROIs %d,%d and %d,%d closer than %d" % (xa, ya, xb, yb, a.sep))
def overlaps_other(k):
    xk, yk = corner(beads[k][0]), corner(beads[k][1])
    return any(abs(xk - corner(x)) < w and abs(yk - corner(y)) < w
               for j, (x, y) in enumerate(beads) if j != k)
must = [k for k in range(len(beads)) if a.sep < w or not overlaps_other(k)]
for k in must:
    x0, y0 = corner(beads[k][0]), corner(beads[k][1])
    hits = [f for f in found if abs(f[1] - x0) <= 3 and abs(f[2] - y0) <= 3]
    if len(hits) != 1:
        problems.append("bead %d (ROI %d,%d) matched %d times" % (k, x0, y0, len(hits)))
for _, x0, y0 in found:
    if a.sep < w:
        ok = any(abs(x0 - corner(x)) <= 3 and abs(y0 - corner(y)) <= 3 for x, y in beads)
    else:
        ok = any(abs(x0 + w / 2 - x) <= w / 4 and abs(y0 + w / 2 - y) <= w / 4 for x, y in beads)
    if not ok:
        problems.append("ROI %d,%d holds no bead" % (x0, y0))
print("%d beads, %d found, %d must match" % (len(beads), len(found), len(must)))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF

# The first bead's true centre in frame K of a truth file, as X,Y pixels.
seed_of() {
	awk -v k="${2:-0}" '!/^#/ && $1 == k && $3 == 0 { printf "%.4f,%.4f", $4 / 100, $5 / 100; exit }' "$1"
}

# The seconds in ms-find's summary line.
secs() {
	sed -n 's/.* frame, \([0-9.]*\) s$/\1/p' "$1"
}

test_expect_success 'setup: 1024x1024 frames of 25 fixed and 25 tethered beads' '
	ms-simulate --width 1024 --height 1024 --fixed 25 --tethered 25 --roi-size 64 -n 1 \
		--fast --format u16 --seed 11 -q --rois-out true.rois --truth truth.tsv -o a.tif &&
	ms-simulate --width 1024 --height 1024 --fixed 25 --tethered 25 --roi-size 64 -n 3 \
		--fast --seed 4 --fixed-z 0 --tethered-z 2000 -q --truth truth2.tsv -o b.tif &&
	test $(grep -vc "^#" true.rois) -eq 50
'

test_expect_success 'with a seed: every bead within 3 px, nothing else' '
	ms-find -v --seed $(seed_of truth.tsv) --min-separation 48 a.tif >seed.rois 2>err &&
	cat err && $PY check.py truth.tsv seed.rois --sep 48 &&
	test $(grep -vc "^#" seed.rois) -eq 50 &&
	echo "# seeded, 1024x1024, 50 beads: $(secs err) s" >&3
' 3>&1

test_expect_success 'the seed is bead 0, its ROI the click rule round(c - 32), score 1' '
	set -- $(seed_of truth.tsv | tr , " ") &&
	want=$(awk -v x="$1" -v y="$2" "BEGIN { printf \"0 %d %d\", int(x - 32 + 0.5), int(y - 32 + 0.5) }") &&
	grep -v "^#" seed.rois | head -n 1 >first &&
	grep -q "^$want # score=1.000 seed" first
'

test_expect_success 'fixed beads sit where --rois-out put them' '
	grep "fixed" true.rois | while read -r id x0 y0 rest; do
		awk -v x="$x0" -v y="$y0" "!/^#/ && (\$2 - x) ^ 2 <= 1 && (\$3 - y) ^ 2 <= 1 { n++ }
			END { exit n != 1 }" seed.rois || { echo "fixed bead $id at $x0,$y0 not found"; exit 1; }
	done
'

test_expect_success 'without a seed: every bead within 3 px, nothing else' '
	ms-find -v --min-separation 48 a.tif >auto.rois 2>err &&
	cat err && $PY check.py truth.tsv auto.rois --sep 48 &&
	echo "# seedless, 1024x1024, 50 beads: $(secs err) s" >&3
' 3>&1

test_expect_success 'beads at two focus depths (u8): both found, seeded and seedless' '
	ms-find -v --seed $(seed_of truth2.tsv) --min-separation 48 b.tif >two.rois 2>err &&
	cat err && $PY check.py truth2.tsv two.rois --sep 48 &&
	grep -q "with 2 templates" err &&
	grep -q "template=1" two.rois &&
	echo "# seeded, two looks: $(secs err) s" >&3 &&
	ms-find --min-separation 48 b.tif >two-auto.rois 2>err &&
	$PY check.py truth2.tsv two-auto.rois --sep 48 &&
	echo "# seedless, two looks: $(secs err) s" >&3
' 3>&1

test_expect_success '--templates 1 (MagScope): only the seed look' '
	ms-find -q --templates 1 --seed $(seed_of truth2.tsv) --min-separation 48 b.tif >one.rois &&
	test $(grep -vc "^#" one.rois) -eq 25 &&
	! grep -q "template=" one.rois
'

test_expect_success 'default separation: non-overlapping ROIs, every isolated bead, each ROI a bead' '
	ms-find -q --seed $(seed_of truth.tsv) a.tif >nov.rois &&
	$PY check.py truth.tsv nov.rois --sep 64 &&
	ms-find -q a.tif >nov-auto.rois &&
	$PY check.py truth.tsv nov-auto.rois --sep 64
'

test_expect_success 'a frame stream on standard input gives the same list as the TIFF' '
	ms-simulate --width 1024 --height 1024 --fixed 25 --tethered 25 --roi-size 64 -n 1 \
		--fast --format u16 --seed 11 -q | ms-find -q --min-separation 48 >stream.rois &&
	cmp auto.rois stream.rois &&
	ms-simulate --width 1024 --height 1024 --fixed 25 --tethered 25 --roi-size 64 -n 1 \
		--fast --format u16 --seed 11 -q | ms-find -q --min-separation 48 - >stream2.rois &&
	cmp auto.rois stream2.rois
'

test_expect_success '--frame K searches frame K (the same as that page alone)' '
	$PY -c "
import tifffile
p = tifffile.TiffFile(\"b.tif\").pages[2].asarray()
tifffile.imwrite(\"page2.tif\", p)
" &&
	ms-find -q --frame 2 --seed $(seed_of truth2.tsv 2) b.tif >f2.rois &&
	ms-find -q --seed $(seed_of truth2.tsv 2) page2.tif >p2.rois &&
	cmp f2.rois p2.rois &&
	ms-find -q --frame 0 --seed $(seed_of truth2.tsv 2) b.tif >f0.rois &&
	! cmp -s f0.rois f2.rois
'

test_expect_success '-o FILE writes the list there and nothing to stdout' '
	ms-find -q --min-separation 48 -o out.rois a.tif >stdout &&
	! test -s stdout && cmp out.rois auto.rois
'

test_expect_success '--max N keeps the N best, the seed first' '
	ms-find -q --max 5 --seed $(seed_of truth.tsv) a.tif >max.rois &&
	test $(grep -vc "^#" max.rois) -eq 5 &&
	grep -v "^#" max.rois >five &&
	head -n 1 five | grep -q "# score=1.000 seed" &&
	grep -v "^#" nov.rois | head -n 5 | cmp - five
'

test_expect_success '--threshold S keeps scores >= S only' '
	ms-find -q --threshold 0.999 --seed $(seed_of truth.tsv) a.tif >hi.rois &&
	test $(grep -vc "^#" hi.rois) -eq 1 &&
	ms-find -q --threshold 0.99 --templates 1 --seed $(seed_of truth.tsv) a.tif >mid.rois &&
	n=$(grep -vc "^#" mid.rois) && test "$n" -gt 1 && test "$n" -lt 25 &&
	awk -F"score=" "!/^#/ { if (\$2 + 0 < 0.99) exit 1 }" mid.rois
'

test_expect_success '--min-separation keeps ROIs that far apart' '
	ms-find -q --min-separation 200 a.tif >far.rois &&
	n=$(grep -vc "^#" far.rois) && test "$n" -gt 5 && test "$n" -lt 50 &&
	$PY - <<-EOF
	r = [tuple(map(int, l.split("#")[0].split())) for l in open("far.rois") if not l.startswith("#")]
	assert all(abs(a[1] - b[1]) >= 200 or abs(a[2] - b[2]) >= 200 for i, a in enumerate(r) for b in r[i + 1:])
	EOF
'

test_expect_success 'a bad --seed is a usage error' '
	fails_cleanly 2 "invalid value .abc. for --seed: not .X,Y." ms-find --seed abc a.tif &&
	fails_cleanly 2 "invalid value .10. for --seed" ms-find --seed 10 a.tif &&
	fails_cleanly 2 "invalid value .1,2,3. for --seed" ms-find --seed 1,2,3 a.tif &&
	fails_cleanly 2 "invalid value .,5. for --seed" ms-find --seed ,5 a.tif &&
	fails_cleanly 2 "invalid value .nan,5. for --seed" ms-find --seed nan,5 a.tif
'

test_expect_success 'a seed outside the frame fails cleanly' '
	fails_cleanly 1 "ms-find: seed 5000,10 lies outside the 1024x1024 frame" \
		ms-find --seed 5000,10 a.tif &&
	fails_cleanly 1 "lies outside" ms-find --seed -3,10 a.tif
'

test_expect_success 'a flat seed region fails cleanly' '
	$PY -c "
import numpy, tifffile
a = tifffile.imread(\"a.tif\")
a[900:1024, 0:124] = 1000
tifffile.imwrite(\"flat.tif\", a)
tifffile.imwrite(\"blank.tif\", numpy.full((256, 256), 7, numpy.uint16))
" &&
	fails_cleanly 1 "ms-find: the seed.s ROI (x0 20, y0 940, 64 px) is flat (zero variance)" \
		ms-find --seed 52,972 flat.tif &&
	fails_cleanly 1 "is flat" ms-find --seed 100,100 blank.tif &&
	fails_cleanly 1 "nothing bead-like stands out" ms-find blank.tif
'

test_expect_success 'other refusals: missing frame, ROI too big, bad sizes, two inputs' '
	fails_cleanly 1 "a.tif: has 1 frame, no frame 3" ms-find --frame 3 a.tif &&
	$PY -c "
import numpy, tifffile
tifffile.imwrite(\"small.tif\", numpy.random.default_rng(1).integers(0, 999, (100, 100), dtype=numpy.uint16))
" &&
	fails_cleanly 1 "a 128 px ROI does not fit the 100x100 frame" \
		ms-find --roi-size 128 --seed 50,50 small.tif &&
	fails_cleanly 2 "invalid value .63. for --roi-size" ms-find --roi-size 63 a.tif &&
	fails_cleanly 2 "invalid value .0. for --templates" ms-find --templates 0 a.tif &&
	fails_cleanly 2 "one input at most" ms-find a.tif a.tif &&
	fails_cleanly 1 "cannot open .nope.tif." ms-find nope.tif &&
	fails_cleanly 1 "cannot create .nodir/x.rois.: No such file" ms-find -q -o nodir/x.rois a.tif
'

test_expect_success 'a full standard output is an error, not exit 0' '
	if test -w /dev/full; then
		ms-find -q a.tif >/dev/full 2>err; rc=$?
		no_crash $rc err && test $rc -eq 1 && grep_err "error writing standard output" err
	fi
'

test_expect_success '--help names the options' '
	ms-find --help >out &&
	grep -q "^usage: ms-find" out &&
	for o in --seed --roi-size --threshold --max --min-separation --templates --frame --output; do
		grep -q -- "$o" out || exit 1
	done
'

test_done
