#!/usr/bin/env bash
# Runs the NATS backend beside plain nats.c (publish, delivery, latency) against one
# throwaway nats-server, and prints the ratios.
#   bench/nats_bench.sh [build-dir] [messages]
set -euo pipefail
build=${1:-build}
messages=${2:-200000}
port=$(shuf -i 20000-32000 -n 1)
nats-server -a 127.0.0.1 -p "$port" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "nats-server $(nats-server --version | awk '{print $NF}'), $messages messages of 5 bytes"
"$build/bench/bench_nats" "nats://127.0.0.1:$port" "$messages"
