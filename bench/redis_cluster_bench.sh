#!/usr/bin/env bash
# Forms a throwaway 3-master/3-replica Redis Cluster and runs bench_redis_cluster on
# it: publish throughput and fan-out through 1, 2 and 3 shards, side by side.
#   bench/redis_cluster_bench.sh [build-dir] [messages]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
messages=${2:-200000}
dir=$bench_dir
fixture=$here/../tests/redis_cluster/cluster_fixture.sh
trap 'bash "$fixture" stop "$dir"; bench_cleanup' EXIT
bash "$fixture" start "$dir" > /dev/null
port=$(cut -d' ' -f1 "$dir/ports")
print_machine
"$build/bench/bench_redis_cluster" "$port" "$messages"
