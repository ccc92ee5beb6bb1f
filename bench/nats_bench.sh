#!/usr/bin/env bash
# Runs the NATS backend beside plain nats.c (publish, delivery, latency) against one
# throwaway nats-server, and prints the ratios.
#   bench/nats_bench.sh [build-dir] [messages]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
messages=${2:-200000}
trap bench_cleanup EXIT
port=$(free_port)
nats-server -a 127.0.0.1 -p "$port" >"$bench_dir/nats.log" 2>&1 &
bench_pids+=($!)
wait_port "$port" "$bench_dir/nats.log" "${bench_pids[-1]}"

print_machine
echo "nats-server $(nats-server --version | awk '{print $NF}'), $messages messages of 5 bytes"
"$build/bench/bench_nats" "nats://127.0.0.1:$port" "$messages"
