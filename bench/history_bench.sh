#!/usr/bin/env bash
# History figures, side by side on one throwaway redis-server: the flood through
# redis:// and redis-stream:// (`broadcaster bench`, 10 subscribers, alternating, three
# runs each), then the cost of a join with the last 50 (bench_history_join) on
# redis-stream:// and memory://?history=1000.
#   bench/history_bench.sh [build-dir] [messages]
set -euo pipefail
build=${1:-build}
count=${2:-200000}
dir=$(mktemp -d)
port=$(shuf -i 20000-32000 -n 1)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cli="$build/tools/broadcaster/broadcaster"
for run in 1 2 3; do
  for scheme in redis redis-stream; do
    redis-cli -p "$port" flushall >/dev/null
    echo "run $run, $scheme://: $("$cli" bench "$scheme://127.0.0.1:$port" --subscribers 10 \
      --count "$count" | tr '\n' ' ')"
  done
done
redis-cli -p "$port" flushall >/dev/null
"$build/bench/bench_history_join" "redis-stream://127.0.0.1:$port" 500 50
"$build/bench/bench_history_join" "memory://?history=1000" 500 50
