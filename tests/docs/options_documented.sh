#!/bin/sh
# SPDX-License-Identifier: MIT
# Every verb and every long option that BINARY's --help shows appears in its
# man page and in each completion script; the scripts parse in their shells.
# Usage: options_documented.sh BINARY SOURCE_DIR
set -u
bin=$1
src=$2
name=$(basename "$bin")
man="$src/man/$name.1.ronn"
roff="$src/man/$name.1"
bash_c="$src/completions/bash/$name"
zsh_c="$src/completions/zsh/_$name"
fish_c="$src/completions/fish/$name.fish"
fail=0
problem() { echo "FAIL: $*"; fail=1; }

for f in "$man" "$roff" "$bash_c" "$zsh_c" "$fish_c" "$src/man/ipc.7.ronn" "$src/man/ipc.7"; do
    [ -f "$f" ] || problem "missing $f"
done
[ $fail -eq 0 ] || exit 1

bash -n "$bash_c" || problem "bash -n $bash_c"
zsh -n "$zsh_c" || problem "zsh -n $zsh_c"
fish -n "$fish_c" || problem "fish -n $fish_c"

verbs=$("$bin" --help | awk '/^Subcommands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}')
[ -n "$verbs" ] || problem "no verbs found in $name --help"

for verb in $verbs; do
    for f in "$man" "$bash_c" "$zsh_c" "$fish_c"; do
        grep -q -- "$verb" "$f" || problem "verb '$verb' missing from $f"
    done
    opts=$("$bin" "$verb" --help | grep -o -- '--[a-z0-9][a-z0-9-]*' | sort -u)
    for opt in $opts; do
        long=${opt#--}
        grep -q -- "$opt" "$man" || problem "$name $verb: $opt missing from $man"
        # ronn escapes every hyphen of an option in the roff: \-\-max\-msg\-size.
        grep -qF -- "$opt" "$roff" || grep -qF -- "$(printf '%s' "$opt" | sed 's/-/\\-/g')" "$roff" ||
            problem "$name $verb: $opt missing from $roff (run make man)"
        grep -q -- "$opt" "$bash_c" || problem "$name $verb: $opt missing from $bash_c"
        grep -q -- "$opt" "$zsh_c" || problem "$name $verb: $opt missing from $zsh_c"
        grep -Eq -- "(-l|--long-option)[ =]'?$long'?([^a-z0-9-]|\$)" "$fish_c" ||
            problem "$name $verb: $opt missing from $fish_c"
    done
done
[ $fail -eq 0 ] && echo "ok: $name verbs and options documented in man page and completions"
exit $fail
