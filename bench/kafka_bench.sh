#!/usr/bin/env bash
# Runs librdkafka's own producer/consumer and the broadcast's Kafka backend against one
# throwaway mock cluster (broadcaster-kafka-mock, 3 brokers), side by side.
# These are figures against librdkafka's mock cluster, not a real Kafka deployment.
#   bench/kafka_bench.sh [build-dir]
set -euo pipefail
build=${1:-build}
coproc mock { exec "$build/broadcaster-kafka-mock" --brokers 3; }
pid=$mock_PID
trap 'kill $pid; wait $pid 2>/dev/null' EXIT
read -r -t 10 bootstrap <&"${mock[0]}"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/bench/bench_kafka" "$bootstrap" 200000 1
echo "broadcaster bench kafka://$bootstrap --subscribers 10 --count 100000:"
"$build/tools/broadcaster/broadcaster" bench "kafka://$bootstrap" --subscribers 10 --count 100000
url="kafka://$bootstrap?consumer.fetch.wait.max.ms=1"
echo "broadcaster bench $url --subscribers 10 --rate 1000 --duration 5:"
"$build/tools/broadcaster/broadcaster" bench "$url" --subscribers 10 --rate 1000 --duration 5
