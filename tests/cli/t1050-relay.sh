#!/bin/sh
# The frame relay: a "=>" pipe loses nothing, a "->" pipe drops what a slow
# consumer cannot take and still ends its stream properly, one producer
# feeds several consumers, and output that is not a frame stream is refused.
. "$(dirname "$0")/lib.sh"
. "$MS_SRC/tests/cli/rig.sh"

test_expect_success 'frames to replay' '
	ms-simulate --width 256 --height 256 --fixed 1 --tethered 0 --roi-size 32 --fast -q \
		--photons 0 -n 400 >f.frames &&
	ms-info f.frames | grep -q "^frames	400$"
'

# count NAME: the consumer reports the frames and completeness of what it got.
count() {
	echo "sh -c \"ms-info - | grep -e ^frames -e ^complete | sed s/^/$1-/ >&2\""
}

test_expect_success 'a => pipe loses nothing: every frame, an end record that counts them' '
	cat >l.pipeline <<-EOF &&
	stage src cat f.frames
	stage a $(count a)
	stage b sh -c "sleep 0.5; exec $(count b | sed "s/^sh -c \"//; s/\"$//")"
	pipe src => a b
	EOF
	ms-run l.pipeline >l.out 2>l.err &&
	grep -q "^a: a-frames	400$" l.err && grep -q "^a: a-complete	yes$" l.err &&
	grep -q "^b: b-frames	400$" l.err && grep -q "^b: b-complete	yes$" l.err
'

test_expect_success 'a -> pipe drops what a slow consumer cannot take; its stream still ends well' '
	cat >d.pipeline <<-EOF &&
	stage src cat f.frames
	stage slow sh -c "sleep 0.5; exec $(count s | sed "s/^sh -c \"//; s/\"$//")"
	pipe src -> slow
	EOF
	ms-run d.pipeline >d.out 2>d.err &&
	cat d.err &&
	n=$(sed -n "s/^slow: s-frames	//p" d.err) &&
	test "$n" -gt 0 && test "$n" -lt 400 &&
	grep -q "^slow: s-complete	yes$" d.err
'

test_expect_success 'output that is not a frame stream is refused' '
	cat >g.pipeline <<-EOF &&
	stage src sh -c "echo this is not a frame stream; sleep 0.3"
	stage dst ms-info -
	pipe src -> dst
	EOF
	ms-run g.pipeline >g.out 2>g.err; rc=$?
	cat g.err &&
	test $rc -eq 1 &&
	grep -q "^ms-run: src: its output is not a frame stream: no longer reading it$" g.err &&
	grep -q "^dst: ms-info: standard input: empty input" g.err
'

test_expect_success 'the dry run shows both kinds of pipe' '
	printf "stage s cat f.frames\nstage a cat\nstage b cat\npipe s -> a\npipe s => b\n" >p &&
	ms-run --dry-run p >plan &&
	grep -q "^pipe s -> a$" plan && grep -q "^pipe s => b$" plan &&
	printf "stage s cat\nstage a cat\npipe s >> a\n" >q &&
	fails_cleanly 1 "q:3: expected .pipe PRODUCER -> CONSUMER" ms-run q
'

stop_rigs
test_done
