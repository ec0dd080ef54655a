#!/usr/bin/env bash
# Per-request client instructions, end to end over loopback, server in
# another process. For each stack: callgrind on the client at N_LO and N_HI
# requests (64 in flight); per request = (Ir(N_HI) - Ir(N_LO)) / (N_HI - N_LO),
# so setup (runtime, client, token, 64 connections) cancels. Then the extra
# over the static-header middleware on the same stack.
#
# Needs valgrind (Debian: apt-get install valgrind).
#
#   ./instructions.sh                 # build, then one round over all stacks
#   ROUNDS=2 ./instructions.sh        # two rounds, to see repeatability
#   STACKS="rm04-static aliri" N_LO=200 N_HI=1200 ./instructions.sh
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
N_LO=${N_LO:-200}
N_HI=${N_HI:-1200}
ROUNDS=${ROUNDS:-1}
REPS=${REPS:-3}   # runs per (stack, N); the median is used
STACKS=${STACKS:-"rm04-static aliri reqwest-auth rm05-static ours ours-noreplay"}
# glibc malloc made repeatable: a tcache that never fills (65535 per bin)
# and covers every size it can (<= 1032 B), so small allocations cost the
# same whatever order the 64 connections free in; a 64 MiB top pad and no
# trimming, so sbrk/trim calls don't come and go between runs.
TUNABLES=${TUNABLES:-glibc.malloc.tcache_count=65535:glibc.malloc.tcache_max=1032:glibc.malloc.top_pad=67108864:glibc.malloc.trim_threshold=4294967295}
OUT=${OUT:-$CARGO_TARGET_DIR/callgrind}
mkdir -p "$OUT"

cargo build --release --quiet --bin server --bin client
BIN=$CARGO_TARGET_DIR/release

"$BIN/server" > "$OUT/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$OUT/port" ] && break; sleep 0.1; done
PORT=$(head -1 "$OUT/port")

ir1() { # stack n tag -> total Ir of one client run
    local f="$OUT/$1.$2.$3.out"
    GLIBC_TUNABLES=$TUNABLES valgrind --tool=callgrind --callgrind-out-file="$f" \
        "$BIN/client" "$1" "$PORT" "$2" > /dev/null 2> "$f.log"
    awk '/^(summary|totals):/ {print $2; exit}' "$f"
}
ir() { # stack n round -> "median min max" of REPS runs
    local r all=()
    for r in $(seq "$REPS"); do all+=("$(ir1 "$1" "$2" "$3.$r")"); done
    printf '%s\n' "${all[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)], v[1], v[NR]}'
}

declare -A PER
echo "GLIBC_TUNABLES=$TUNABLES  N_LO=$N_LO N_HI=$N_HI  REPS=$REPS (median; instructions per request)"
for round in $(seq "$ROUNDS"); do
    for s in $STACKS; do
        read -r lo lo_min lo_max <<< "$(ir "$s" "$N_LO" "$round")"
        read -r hi hi_min hi_max <<< "$(ir "$s" "$N_HI" "$round")"
        PER[$s.$round]=$(( (hi - lo) / (N_HI - N_LO) ))
        printf 'round %d  %-13s Ir(%d)=%d [spread %d]  Ir(%d)=%d [spread %d]  per request %d\n' \
            "$round" "$s" "$N_LO" "$lo" $((lo_max - lo_min)) "$N_HI" "$hi" $((hi_max - hi_min)) "${PER[$s.$round]}"
    done
done
echo
echo "extra over its own static stack:"
for round in $(seq "$ROUNDS"); do
    for s in $STACKS; do
        case $s in
            aliri|reqwest-auth) base=rm04-static ;;
            ours|ours-noreplay) base=rm05-static ;;
            *) continue ;;
        esac
        [ -n "${PER[$base.$round]:-}" ] || continue
        printf 'round %d  %-13s %+d over %s\n' "$round" "$s" \
            $(( PER[$s.$round] - PER[$base.$round] )) "$base"
    done
done
