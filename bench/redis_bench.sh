#!/usr/bin/env bash
# Runs redis-benchmark and the broadcast's Redis benchmark against one throwaway
# redis-server, side by side, and prints the ratio.
#   bench/redis_bench.sh [build-dir]
set -euo pipefail
build=${1:-build}
dir=$(mktemp -d)
port=$(shuf -i 20000-32000 -n 1)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
reference=$(redis-benchmark -p "$port" -q -n 200000 -P 16 publish ch hello | tr '\r' '\n' |
            grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
echo "redis-benchmark -q -n 200000 -P 16 publish ch hello: $reference requests/s"
out=$("$build/bench/bench_redis" "redis://127.0.0.1:$port" 200000)
echo "$out"
ours=$(echo "$out" | awk '/throughput/ {print $4}')
awk -v a="$ours" -v b="$reference" 'BEGIN { printf "ratio: %.2f of redis-benchmark\n", a / b }'
