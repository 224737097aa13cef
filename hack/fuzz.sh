#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 20s).
# Usage: hack/fuzz.sh [FUZZTIME]
set -euo pipefail
t=${1:-20s}
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $f for $t"
    go test -run='^$' -fuzz="^${f}\$" -fuzztime="$t" "$pkg" 2>&1 | tail -n 3
  done
done
