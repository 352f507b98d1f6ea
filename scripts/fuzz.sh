#!/usr/bin/env bash
# usage: fuzz.sh PACKAGE TARGET FUZZTIME MINIMIZETIME
# Fuzzes one target for a bounded time. Go 1.26's fuzzing coordinator can
# fail a run that found nothing with a bare "context deadline exceeded" at
# the end of -fuzztime (a race between the deadline and its child context,
# golang/go#75804, fixed in Go 1.27). Such a run writes no failing input;
# it is run again, at most twice. Any other failure, or one that wrote an
# input to testdata/fuzz, fails at once.
set -uo pipefail
pkg=$1 target=$2 fuzztime=$3 minimize=$4
GO=${GO:-go}
for attempt in 1 2 3; do
  out=$(mktemp)
  "$GO" test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  if ((rc == 0)); then rm -f "$out"; exit 0; fi
  if grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out" && ! grep -q '^panic:' "$out"; then
    echo "fuzz.sh: $target: coordinator deadline race (golang/go#75804), no input found; attempt $attempt of 3" >&2
    rm -f "$out"
    continue
  fi
  rm -f "$out"
  exit "$rc"
done
echo "fuzz.sh: $target: failed 3 times with the coordinator deadline race" >&2
exit 1
