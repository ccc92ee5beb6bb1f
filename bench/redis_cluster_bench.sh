#!/usr/bin/env bash
# Forms a throwaway 3-master/3-replica Redis Cluster and runs bench_redis_cluster on
# it: publish throughput and fan-out through 1, 2 and 3 shards, side by side.
#   bench/redis_cluster_bench.sh [build-dir] [messages]
set -euo pipefail
build=${1:-build}
messages=${2:-200000}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
fixture=$here/../tests/redis_cluster/cluster_fixture.sh
trap 'bash "$fixture" stop "$dir"' EXIT
bash "$fixture" start "$dir" > /dev/null
port=$(cut -d' ' -f1 "$dir/ports")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/bench/bench_redis_cluster" "$port" "$messages"
