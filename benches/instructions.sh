#!/usr/bin/env bash
# Instructions per warm request for each stack, counted by callgrind:
# (count with N requests - count with none) / N, building the request
# included. Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench instructions --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -n 1)
n=20000
count() {
  STACK=$1 N=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    awk '/Collected/ { print $4 }'
}
for stack in raw static naive ours_without_replay ours static_and_copy; do
  echo "$stack $(( ($(count "$stack" "$n") - $(count "$stack" 0)) / n ))"
done
