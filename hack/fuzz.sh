#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 20s).
# Usage: hack/fuzz.sh [FUZZTIME]
#
# The Go fuzzing engine sometimes fails a run when -fuzztime expires while a
# worker is mid-input ("context deadline exceeded", golang/go#51484, #75804):
# no input fails, nothing is written to testdata/fuzz. Such a run is retried
# once. Anything else that fails (a failing input written, a panic, a t.Fatal,
# a second engine failure) fails this script, with the whole output shown.
set -uo pipefail
t=${1:-20s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# engine_flake LOG: the run failed without any failing input of ours.
engine_flake() {
  grep -q 'context deadline exceeded\|fuzzing process hung or terminated unexpectedly' "$1" &&
    ! grep -q 'Failing input written to\|panic:\|_test\.go:[0-9]*:' "$1"
}

fail=0
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $f for $t"
    for try in 1 2; do
      if go test -run='^$' -fuzz="^${f}\$" -fuzztime="$t" "$pkg" >"$log" 2>&1; then
        tail -n 3 "$log"
        break
      fi
      if [ "$try" = 1 ] && engine_flake "$log"; then
        echo "fuzz: $f: the fuzzing engine failed with no failing input; once more:"
        tail -n 4 "$log"
        continue
      fi
      cat "$log"
      fail=1
      break
    done
  done
done
exit "$fail"
