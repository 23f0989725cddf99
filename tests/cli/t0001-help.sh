#!/bin/sh
# Every program: --help, --version, usage errors, man page, completions.
. "$(dirname "$0")/lib.sh"

progs=$(cd "$MS_BIN" && ls ms-*)

# Every long option in a program's table (and its subcommands') is named
# in its man page source.
man_has_options() {
	page="$MS_SRC/man/$1.1.scd"
	subs=$($1 --list-options | awk -F'	' '$1 == "sub" { print $2 }')
	{ $1 --list-options; for s in $subs; do $1 $s --list-options; done; } |
	awk -F'	' '$1 == "opt" { print $3 }' | sort -u >opts
	for o in $(cat opts); do
		grep -q -e "$o" "$page" || { echo "$page does not mention $o"; return 1; }
	done
}

test_expect_success 'there are programs to test' '
	[ -n "$progs" ] && echo "$progs" | grep -q ms-track
'

for p in $progs; do
	test_expect_success "$p --help prints usage to stdout and exits 0" "
		$p --help >out 2>err &&
		grep -q '^usage: $p' out &&
		! test -s err
	"
	test_expect_success "$p -h is --help" "
		$p -h >out && grep -q '^usage: $p' out
	"
	test_expect_success "$p --version names mstk" "
		$p --version >out && grep -q '^$p (mstk) [0-9]' out
	"
	test_expect_code 2 "$p rejects an unknown option with exit 2" "
		$p --no-such-option >out 2>err; rc=\$?
		test \$(wc -l <err) -le 2 && grep -q \"^$p: unknown option '--no-such-option'\" err
		exit \$rc
	"
	test_expect_success "$p has a man page that mandoc accepts" "
		test -f \"\$MS_MAN/$p.1\" &&
		mandoc -Tlint -W warning \"\$MS_MAN/$p.1\"
	"
	test_expect_success "$p man page documents every option" "man_has_options $p"
done

test_expect_success 'ms-zlut subcommands have their own --help' '
	for s in build show convert; do
		ms-zlut $s --help >out && grep -q "^usage: ms-zlut $s" out || exit 1
	done
'

test_expect_code 2 'ms-zlut with an unknown command exits 2' '
	ms-zlut frobnicate 2>err; rc=$?; grep -q "unknown command .frobnicate." err; exit $rc
'

test_expect_success 'completions are up to date with the option tables' '
	"$MS_SRC/tools/gen-completions" "$MS_BIN" gen &&
	diff -r "$MS_SRC/completions/bash" gen/bash &&
	diff -r "$MS_SRC/completions/zsh" gen/zsh
'

test_expect_success 'bash completion scripts load and complete options' '
	for f in gen/bash/*; do bash -n "$f" || exit 1; done &&
	bash -c ". gen/bash/ms-track; COMP_WORDS=(ms-track --zl); COMP_CWORD=1; _ms_track; echo \"\${COMPREPLY[@]}\"" >out &&
	grep -q -- "--zlut" out &&
	bash -c ". gen/bash/ms-track; COMP_WORDS=(ms-track --com-background m); COMP_CWORD=2; _ms_track; echo \"\${COMPREPLY[@]}\"" >out &&
	grep -q "mean median" out
'

test_expect_success 'zsh completion scripts parse' '
	if command -v zsh >/dev/null; then
		for f in gen/zsh/*; do zsh -n "$f" || exit 1; done
	fi
'

test_expect_success 'ms-formats(5) and the man pages lint clean' '
	test -f "$MS_MAN/ms-formats.5" && mandoc -Tlint -W warning "$MS_MAN"/*.[157]
'

test_done
