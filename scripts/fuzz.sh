#!/bin/sh
# Runs every Go fuzz target of the repository for FUZZTIME (default 10s)
# each. `go test` already runs their seed corpora; this explores further.
# Only the packages whose tests declare a Fuzz function are listed (listing
# the others would build and start every test binary, the lab's included,
# for nothing).
set -eu
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	for target in $(go test -list '^Fuzz' "$dir" | grep '^Fuzz' || true); do
		echo "fuzz: $dir $target ($FUZZTIME)"
		go test "$dir" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" >"$out" 2>&1 || { cat "$out"; exit 1; }
	done
done
