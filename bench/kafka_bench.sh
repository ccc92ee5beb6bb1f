#!/usr/bin/env bash
# Runs librdkafka's own producer/consumer and the broadcast's Kafka backend against one
# throwaway mock cluster (broadcaster-kafka-mock, 3 brokers), side by side.
# These are figures against librdkafka's mock cluster, not a real Kafka deployment.
#   bench/kafka_bench.sh [build-dir]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
coproc mock { exec "$build/broadcaster-kafka-mock" --brokers 3; }
bench_pids+=("$mock_PID")
trap bench_cleanup EXIT
read -r -t 10 bootstrap <&"${mock[0]}"

print_machine
"$build/bench/bench_kafka" "$bootstrap" 200000 1
echo "broadcaster bench kafka://$bootstrap --subscribers 10 --count 100000:"
"$build/tools/broadcaster/broadcaster" bench "kafka://$bootstrap" --subscribers 10 --count 100000
url="kafka://$bootstrap?consumer.fetch.wait.max.ms=1"
echo "broadcaster bench $url --subscribers 10 --rate 1000 --duration 5:"
"$build/tools/broadcaster/broadcaster" bench "$url" --subscribers 10 --rate 1000 --duration 5
