#!/usr/bin/env bash
# Server memory under load, on loopback only: starts `dotdo serve` (release build), loads
# it from a separate client process (tests/examples/load_idle.rs) and prints the server's
# RSS from /proc/<pid>/status.
#
#   scripts/load-idle.sh [idle] [SESSIONS=10000] [CALLS=20]
#       SESSIONS idle WebSocket sessions, then CALLS calls spread over them; RSS per session.
#   scripts/load-idle.sh partial [CONNECTIONS=700] [FRAME_BYTES=33554432]
#       CONNECTIONS connections (half TCP, half WebSocket) each holding a partial frame of
#       FRAME_BYTES (the default maximum frame); RSS stays under the partial-frame budget
#       (256 MiB) plus 72 KiB per connection.
#
# Bounded: at most 20,000 connections, 10 minutes; the server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-idle}
case "$mode" in
  idle) n=${2:-10000}; calls=${3:-20} ;;
  partial) n=${2:-700}; frame=${3:-33554432} ;;
  *) echo "usage: $0 [idle [SESSIONS] [CALLS] | partial [CONNECTIONS] [FRAME_BYTES]]" >&2; exit 2 ;;
esac
ulimit -n "$(ulimit -Hn)"
cargo build -q --release -p do-runtime --bin dotdo
cargo build -q --release -p tests --example load_idle
target="${CARGO_TARGET_DIR:-target}/release"
data=$(mktemp -d)
out=$(mktemp)
"$target/dotdo" serve --port 0 --tcp-port 0 --data "$data" --workers 2 \
  --idle-timeout-ms 900000 --max-connections 20000 >"$out" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
http=$(sed -n 's|^dotdo listening on http://||p' "$out")
tcp=$(sed -n 's|^  tcp://\([^ ]*\).*|\1|p' "$out")
echo "server pid $server, http $http, tcp $tcp"
case "$mode" in
  idle) timeout 600 "$target/examples/load_idle" idle "ws://$http/rpc" "$server" "$n" "$calls" ;;
  partial) timeout 600 "$target/examples/load_idle" partial "$http" "$tcp" "$server" "$n" "$frame" ;;
esac
