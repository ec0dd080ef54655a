#!/usr/bin/env bash
# Wall clock, every stack side by side in one process, the server in
# another: ./wallclock.sh [rounds] [requests per stack and round].
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet --bin server --bin wallclock
BIN=$CARGO_TARGET_DIR/release
PORT_FILE=$(mktemp)
"$BIN/server" > "$PORT_FILE" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -f "$PORT_FILE"' EXIT
for _ in $(seq 50); do [ -s "$PORT_FILE" ] && break; sleep 0.1; done
"$BIN/wallclock" "$(head -1 "$PORT_FILE")" "$@"
