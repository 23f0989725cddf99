# lib.sh: the shell-test library, after git's t/test-lib.sh. A test file
# sources it, states claims with test_expect_success 'what' 'commands',
# and ends with test_done; the output is TAP for prove. Every test runs in
# a fresh scratch directory ($TRASH) that is removed at the end unless a
# test failed and MS_KEEP is set. Programs come from $MS_BIN.

set -u
: "${MS_BIN:?MS_BIN must point at the built programs (run through make check)}"
PATH="$MS_BIN:$PATH"
export PATH
PY=/usr/bin/python3		# Debian's python, with numpy, h5py and tifffile
export LC_ALL=C
MS_SRC=${MS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
SHARED=${MS_SHARED:-$MS_SRC/../shared}
[ -d "$SHARED" ] || SHARED=/work/shared

test_count=0
test_failed=0
TRASH=$(mktemp -d "${TMPDIR:-/tmp}/ms-test.XXXXXX")
trap 'cd /; [ "$test_failed" -gt 0 ] && [ -n "${MS_KEEP:-}" ] || rm -rf "$TRASH"' EXIT
cd "$TRASH" || exit 1

# test_expect_success DESCRIPTION COMMANDS
test_expect_success() {
	test_count=$((test_count + 1))
	if (eval "$2") >"$TRASH/.out" 2>&1; then
		echo "ok $test_count - $1"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $1"
		sed 's/^/#   /' "$TRASH/.out" | tail -n 30
	fi
}

# test_expect_failure_code CODE DESCRIPTION COMMANDS: COMMANDS must exit CODE
test_expect_code() {
	test_count=$((test_count + 1))
	(eval "$3") >"$TRASH/.out" 2>&1
	rc=$?
	if [ "$rc" -eq "$1" ]; then
		echo "ok $test_count - $2"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $2 (exit $rc, wanted $1)"
		sed 's/^/#   /' "$TRASH/.out" | tail -n 30
	fi
}

# Skip the rest of a file, with a reason (for missing optional tools).
skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

# grep_err PATTERN FILE: FILE holds PATTERN, shown on failure.
grep_err() {
	if ! grep -q -- "$1" "$2"; then
		echo "expected '$1' in $2, which holds:"
		cat "$2"
		return 1
	fi
}

# a program must not have crashed: exit codes above 128 are signals, and
# the sanitizers exit with their own messages.
no_crash() {
	rc=$1
	file=$2
	if [ "$rc" -ge 126 ] || grep -q -e 'Sanitizer' -e 'runtime error' "$file"; then
		echo "crashed (exit $rc):"
		cat "$file"
		return 1
	fi
}

# fails_cleanly CODE PATTERN CMD...: CMD exits CODE with PATTERN on stderr,
# one line naming the program, and no crash.
fails_cleanly() {
	code=$1
	pat=$2
	shift 2
	"$@" >"$TRASH/.stdout" 2>"$TRASH/.stderr"
	rc=$?
	no_crash "$rc" "$TRASH/.stderr" || return 1
	if [ "$rc" -ne "$code" ]; then
		echo "exit $rc, wanted $code; stderr:"
		cat "$TRASH/.stderr"
		return 1
	fi
	grep_err "$pat" "$TRASH/.stderr"
}

test_done() {
	echo "1..$test_count"
	[ "$test_failed" -eq 0 ]
}
