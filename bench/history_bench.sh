#!/usr/bin/env bash
# History figures, side by side on one throwaway redis-server: the flood through
# redis:// and redis-stream:// (`broadcaster bench`, 10 subscribers, alternating, three
# runs each), then the cost of a join with the last 50 (bench_history_join) on
# redis-stream:// and memory://?history=1000.
#   bench/history_bench.sh [build-dir] [messages]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
count=${2:-200000}
trap bench_cleanup EXIT
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$bench_dir" \
  --logfile "$bench_dir/redis.log" &
bench_pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

print_machine
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
