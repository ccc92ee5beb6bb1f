#!/usr/bin/env bash
# Runs redis-benchmark and the broadcast's Redis benchmark against one throwaway
# redis-server, side by side, and prints the ratio.
#   bench/redis_bench.sh [build-dir]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
trap bench_cleanup EXIT
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$bench_dir" \
  --logfile "$bench_dir/redis.log" &
bench_pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

print_machine
reference=$(redis-benchmark -p "$port" -q -n 200000 -P 16 publish ch hello | tr '\r' '\n' |
            grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
echo "redis-benchmark -q -n 200000 -P 16 publish ch hello: $reference requests/s"
out=$("$build/bench/bench_redis" "redis://127.0.0.1:$port" 200000)
echo "$out"
ours=$(echo "$out" | awk '/throughput/ {print $4}')
awk -v a="$ours" -v b="$reference" 'BEGIN { printf "ratio: %.2f of redis-benchmark\n", a / b }'
