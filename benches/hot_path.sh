#!/usr/bin/env bash
# Instructions per request in the outside harness's setup (a header-less
# request, its URI cloned from one shared Uri, `ready().await; call(req)`
# on a current-thread runtime), counted by callgrind: (count with N
# requests - count with none) / N. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary cargo reports, wherever CARGO_TARGET_DIR puts it.
bin=$(cargo bench --bench hot_path --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
n=${N:-20000}
count() {
  HOT_PATH_STACK=$1 HOT_PATH_N=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    awk '/Collected/ { print $4 }'
}
for stack in static floor ours ours_without_replay try_authorize; do
  echo "$stack $(( ($(count "$stack" "$n") - $(count "$stack" 0)) / n ))"
done
