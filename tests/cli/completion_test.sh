#!/bin/sh
# SPDX-License-Identifier: MIT
# Exercises the shell completions of ipc-pipe with real completion calls:
# bash (the completion function, with COMP_WORDS/COMP_CWORD set) and fish
# (complete -C) must offer the verbs, exactly the options each verb's --help
# lists, option values, and a FIFO in a temporary directory for `recv`; the
# zsh one must parse and load through compinit.
# Usage: tests/cli/completion_test.sh BINARY SOURCE_DIR
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY SOURCE_DIR" >&2
    exit 64
fi
case $1 in /*) bin=$1 ;; */*) bin=$(pwd)/$1 ;; *) bin=$(command -v "$1") || bin=$1 ;; esac
src=$(cd "$2" && pwd) || exit 1
bash_comp=$src/completions/bash/ipc-pipe
fish_comp=$src/completions/fish/ipc-pipe.fish
zsh_comp=$src/completions/zsh/_ipc-pipe

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ipc-completion.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failures=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    failures=$((failures + 1))
}

# expect_same WHAT EXPECTED_FILE ACTUAL_FILE: both hold the same set of lines.
expect_same() {
    sort -u "$2" >"$tmp/expected.sorted"
    sort -u "$3" >"$tmp/actual.sorted"
    if ! cmp -s "$tmp/expected.sorted" "$tmp/actual.sorted"; then
        fail "$1: expected (<) and offered (>) differ:"
        diff "$tmp/expected.sorted" "$tmp/actual.sorted" | grep '^[<>]' | sed 's/^/    /' >&2
    fi
}

# expect_line WHAT FILE LINE: FILE has LINE.
expect_line() {
    grep -Fqx -e "$3" "$2" || fail "$1: '$3' not offered (got: $(tr '\n' ' ' <"$2"))"
}

# expect_no_line WHAT FILE LINE: FILE does not have LINE.
expect_no_line() {
    if grep -Fqx -e "$3" "$2"; then fail "$1: '$3' offered but should not be"; fi
}

for f in "$bin" "$bash_comp" "$fish_comp" "$zsh_comp"; do
    [ -e "$f" ] || fail "missing: $f"
done
for sh in bash fish zsh; do
    command -v "$sh" >/dev/null 2>&1 || fail "$sh is not installed (tools/deps.sh test installs it)"
done
[ "$failures" -eq 0 ] || exit 1

# What the binary says: its verbs and, per verb, its options.
"$bin" --help >"$tmp/help" || fail "$bin --help failed"
awk '/^Subcommands:/ { on = 1; next } /^[^ ]/ { on = 0 } on && NF { print $1 }' "$tmp/help" >"$tmp/verbs"
verbs=$(cat "$tmp/verbs")
[ -n "$verbs" ] || fail "no verbs in '$bin --help'"
for verb in $verbs; do
    "$bin" "$verb" --help >"$tmp/help.$verb" || fail "$bin $verb --help failed"
    awk '/^Options:/ { on = 1; next } /^[^ ]/ { on = 0 }
         on && $1 ~ /^-/ { n = split($1, a, ","); for (i = 1; i <= n; i++) print a[i] }' \
        "$tmp/help.$verb" >"$tmp/options.$verb"
    [ -s "$tmp/options.$verb" ] || fail "no options in '$bin $verb --help'"
done

# Fixtures: a FIFO, a plain file, FIFOs in a subdirectory and in one whose
# name has a space.
fixtures=$tmp/fixtures
if ! { mkdir "$fixtures" "$fixtures/sub" "$fixtures/with space" &&
    mkfifo "$fixtures/in.fifo" "$fixtures/sub/nested.fifo" "$fixtures/with space/spaced.fifo" &&
    : >"$fixtures/plain.txt"; }; then
    fail "cannot make the fixtures in $fixtures"
    exit 1
fi

# ---- bash -------------------------------------------------------------------

cat >"$tmp/harness.bash" <<'EOF'
# comp WORD...: what _ipc_pipe offers for the last WORD, one per line.
comp() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _ipc_pipe
    ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}"
    return 0
}
EOF

# bash_complete MODE WORD...: prints what bash offers. MODE is plain, or bc
# to load bash-completion first.
bash_complete() {
    mode=$1
    shift
    bash --norc --noprofile -c '
        if [ "$1" = bc ]; then . "$bash_completion" || exit 1; fi
        . "$2" || exit 1
        . "$3" || exit 1
        [ "$(complete -p ipc-pipe)" = "complete -F _ipc_pipe ipc-pipe" ] || { echo "not registered" >&2; exit 1; }
        shift 3
        comp "$@"' bash "$mode" "$tmp/harness.bash" "$bash_comp" "$@"
}

# Without bash-completion, and with it when it is installed (or named by
# $IPC_BASH_COMPLETION).
bash_completion=${IPC_BASH_COMPLETION:-/usr/share/bash-completion/bash_completion}
export bash_completion
bash_modes=plain
[ -r "$bash_completion" ] && bash_modes="plain bc"
for mode in $bash_modes; do
    tag="bash ($mode)"
    out=$tmp/bash.out

    bash_complete "$mode" ipc-pipe '' >"$out" || fail "$tag: ipc-pipe <TAB> failed"
    expect_same "$tag: verbs" "$tmp/verbs" "$out"

    bash_complete "$mode" ipc-pipe re >"$out" || fail "$tag: ipc-pipe re<TAB> failed"
    printf '%s\n' recv relay >"$tmp/expected"
    expect_same "$tag: verbs starting with re" "$tmp/expected" "$out"

    for verb in $verbs; do
        bash_complete "$mode" ipc-pipe "$verb" - >"$out" || fail "$tag: ipc-pipe $verb -<TAB> failed"
        grep -vx -e - "$out" >"$out.options"
        expect_same "$tag: options of $verb" "$tmp/options.$verb" "$out.options"
    done

    bash_complete "$mode" ipc-pipe recv -- >"$out" || fail "$tag: ipc-pipe recv --<TAB> failed"
    grep -e '^--' "$tmp/options.recv" >"$tmp/expected"
    expect_same "$tag: long options of recv" "$tmp/expected" "$out"

    bash_complete "$mode" ipc-pipe recv "$fixtures/" >"$out" || fail "$tag: ipc-pipe recv DIR/<TAB> failed"
    expect_line "$tag: recv DIR/" "$out" "$fixtures/in.fifo"
    expect_line "$tag: recv DIR/" "$out" "$fixtures/sub"
    expect_line "$tag: recv DIR/" "$out" "$fixtures/with space"
    expect_no_line "$tag: recv DIR/" "$out" "$fixtures/plain.txt"

    bash_complete "$mode" ipc-pipe recv "$fixtures/sub/" >"$out" || fail "$tag: ipc-pipe recv DIR/SUB/<TAB> failed"
    expect_line "$tag: recv DIR/SUB/" "$out" "$fixtures/sub/nested.fifo"

    # bash-completion's _filedir dequotes only inside a real completion.
    if [ "$mode" = plain ]; then
        (cd "$fixtures" && bash_complete "$mode" ipc-pipe recv 'with\ space/') >"$out" ||
            fail "$tag: ipc-pipe recv with\\ space/<TAB> failed"
        expect_line "$tag: recv with\\ space/" "$out" "with space/spaced.fifo"
    fi

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe recv '') >"$out" || fail "$tag: ipc-pipe recv <TAB> failed"
    expect_line "$tag: recv in the fixtures" "$out" in.fifo
    expect_line "$tag: recv in the fixtures" "$out" -
    expect_no_line "$tag: recv in the fixtures" "$out" plain.txt

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe rm '') >"$out" || fail "$tag: ipc-pipe rm <TAB> failed"
    expect_line "$tag: rm in the fixtures" "$out" in.fifo
    expect_no_line "$tag: rm in the fixtures" "$out" -

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe create '') >"$out" || fail "$tag: ipc-pipe create <TAB> failed"
    expect_line "$tag: create in the fixtures" "$out" plain.txt

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe ls '') >"$out" || fail "$tag: ipc-pipe ls <TAB> failed"
    printf '%s\n' sub 'with space' >"$tmp/expected"
    expect_same "$tag: ls in the fixtures" "$tmp/expected" "$out"

    bash_complete "$mode" ipc-pipe recv -o '' >"$out" || fail "$tag: ipc-pipe recv -o <TAB> failed"
    printf '%s\n' text json jsonl csv >"$tmp/expected"
    expect_same "$tag: values of -o" "$tmp/expected" "$out"

    bash_complete "$mode" ipc-pipe send --timeout '' >"$out" || fail "$tag: ipc-pipe send --timeout <TAB> failed"
    printf '%s\n' 250ms 1s 5s inf 0 >"$tmp/expected"
    expect_same "$tag: values of --timeout" "$tmp/expected" "$out"

    bash_complete "$mode" ipc-pipe ls -p "$$" >"$out" || fail "$tag: ipc-pipe ls -p PID<TAB> failed"
    expect_line "$tag: values of -p" "$out" "$$"
done

# ---- fish -------------------------------------------------------------------

# fish_complete LINE: what fish offers: candidate, tab, description.
# shellcheck disable=SC2016 # $argv is fish's, not ours
fish_complete() {
    fish --no-config -c 'source $argv[1]; or exit 1; complete -C"$argv[2]"' "$fish_comp" "$1"
}
# shellcheck disable=SC2016
fish_escape() {
    fish --no-config -c 'string escape -- $argv[1]' "$1"
}

tag=fish
out=$tmp/fish.out
fish -n "$fish_comp" || fail "fish -n $fish_comp"

fish_complete 'ipc-pipe ' >"$out" || fail "$tag: ipc-pipe <TAB> failed"
cut -f1 "$out" >"$out.words"
expect_same "$tag: verbs" "$tmp/verbs" "$out.words"
awk -F '\t' 'NF < 2 || $2 == "" { print }' "$out" >"$out.bare"
[ -s "$out.bare" ] && fail "$tag: verbs without a description: $(tr '\n' ' ' <"$out.bare")"

for verb in $verbs; do
    fish_complete "ipc-pipe $verb -" >"$out" || fail "$tag: ipc-pipe $verb -<TAB> failed"
    cut -f1 "$out" | grep -vx -e - >"$out.options"
    expect_same "$tag: options of $verb" "$tmp/options.$verb" "$out.options"
done

fish_complete 'ipc-pipe recv --' >"$out" || fail "$tag: ipc-pipe recv --<TAB> failed"
cut -f1 "$out" >"$out.words"
grep -e '^--' "$tmp/options.recv" >"$tmp/expected"
expect_same "$tag: long options of recv" "$tmp/expected" "$out.words"

fish_complete "ipc-pipe recv $(fish_escape "$fixtures/")" >"$out" || fail "$tag: ipc-pipe recv DIR/<TAB> failed"
cut -f1 "$out" >"$out.words"
expect_line "$tag: recv DIR/" "$out.words" "$fixtures/in.fifo"
expect_line "$tag: recv DIR/" "$out.words" "$fixtures/sub/"
expect_line "$tag: recv DIR/" "$out.words" "$fixtures/with space/"
expect_no_line "$tag: recv DIR/" "$out.words" "$fixtures/plain.txt"

fish_complete "ipc-pipe recv $(fish_escape "$fixtures/with space/")" >"$out" ||
    fail "$tag: ipc-pipe recv DIR/with\\ space/<TAB> failed"
cut -f1 "$out" >"$out.words"
expect_line "$tag: recv DIR/with\\ space/" "$out.words" "$fixtures/with space/spaced.fifo"

(cd "$fixtures" && fish_complete 'ipc-pipe recv ') >"$out" || fail "$tag: ipc-pipe recv <TAB> failed"
cut -f1 "$out" >"$out.words"
expect_line "$tag: recv in the fixtures" "$out.words" in.fifo
expect_line "$tag: recv in the fixtures" "$out.words" -
expect_no_line "$tag: recv in the fixtures" "$out.words" plain.txt

(cd "$fixtures" && fish_complete 'ipc-pipe ls ') >"$out" || fail "$tag: ipc-pipe ls <TAB> failed"
cut -f1 "$out" >"$out.words"
printf '%s\n' sub/ 'with space/' >"$tmp/expected"
expect_same "$tag: ls in the fixtures" "$tmp/expected" "$out.words"

fish_complete 'ipc-pipe recv -o ' >"$out" || fail "$tag: ipc-pipe recv -o <TAB> failed"
cut -f1 "$out" >"$out.words"
printf '%s\n' text json jsonl csv >"$tmp/expected"
expect_same "$tag: values of -o" "$tmp/expected" "$out.words"

fish_complete 'ipc-pipe relay --timeout ' >"$out" || fail "$tag: ipc-pipe relay --timeout <TAB> failed"
cut -f1 "$out" >"$out.words"
printf '%s\n' 250ms 1s 5s inf 0 >"$tmp/expected"
expect_same "$tag: values of --timeout" "$tmp/expected" "$out.words"

# ---- zsh --------------------------------------------------------------------

zsh -n "$zsh_comp" || fail "zsh -n $zsh_comp"
if ! { mkdir "$tmp/zfunc" && cp "$zsh_comp" "$tmp/zfunc/"; }; then fail "cannot copy $zsh_comp"; fi
zsh -f -c '
    fpath=("$1" $fpath)
    autoload -U compinit && compinit -u -d "$2" || exit 1
    [[ ${_comps[ipc-pipe]-} == _ipc-pipe ]] || { print -u2 "_ipc-pipe is not the completer of ipc-pipe"; exit 1; }
    autoload +X _ipc-pipe || exit 1' zsh "$tmp/zfunc" "$tmp/zcompdump" >"$tmp/zsh.out" 2>&1 ||
    fail "zsh: the completion does not load: $(cat "$tmp/zsh.out")"
[ -s "$tmp/zsh.out" ] && fail "zsh: loading printed: $(cat "$tmp/zsh.out")"

if [ "$failures" -ne 0 ]; then
    echo "completion_test: $failures failure(s)" >&2
    exit 1
fi
echo "completion_test: ok"
