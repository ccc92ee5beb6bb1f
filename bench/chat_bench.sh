#!/usr/bin/env bash
# The chat room under load: broadcaster-chat on memory:// (1 instance), and on
# redis://, postgres:// and kafka:// (2 instances each; Kafka is librdkafka's mock
# cluster), 100 clients and 10 senders, a flood run and a fixed-rate run (500
# messages/s = 50,000 deliveries/s), driven by bench_chat_load. In the flood each
# sender sends as fast as it can, with at most 100 of its messages not yet back to it:
# the run measures what the room delivers, not how far queues grow behind it.
#   bench/chat_bench.sh [build-dir] [scenario]
# With a scenario, only the runs whose label contains it (and only the brokers they
# need): bench/chat_bench.sh build "memory://, 1 instance, flood".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
only=${2:-}
chat=$build/examples/chatroom/broadcaster-chat
load=$build/bench/bench_chat_load
dir=$bench_dir
trap bench_cleanup EXIT

start_chat() {  # URL; sets chat_port and chat_pid
  chat_port=$(free_port)
  # Deep client queues: the load generator reads 100 sockets on one thread and must
  # not be mistaken for slow clients.
  "$chat" --port "$chat_port" --broadcast "$1" --client-queue-messages 1000000 \
    --client-queue-bytes 1000000000 2>>"$dir/chat.log" &
  chat_pid=$!
  bench_pids+=("$chat_pid")
  # An instance listens once its backend is connected.
  wait_port "$chat_port" "$dir/chat.log" "$chat_pid"
}

wanted() { [[ $1 == *"$only"* ]]; }
wanted_backend() { wanted "$1, 2 instances, flood" || wanted "$1, 2 instances, 500 msg/s"; }

print_machine
redis_port='' pg_port='' kafka_bootstrap=''
if wanted_backend redis://; then
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" &
  bench_pids+=($!)
  wait_port "$redis_port" "$dir/redis.log" "${bench_pids[-1]}"
fi

# A throwaway PostgreSQL 15 cluster (as the postgres user when root).
if wanted_backend postgres://; then
  pg_bin=/usr/lib/postgresql/15/bin
  pg_as=()
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$dir"
    pg_as=(runuser -u postgres --)
  fi
  pg_port=$(free_port)
  "${pg_as[@]}" "$pg_bin/initdb" -D "$dir/pg" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log"
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off" start >/dev/null
  trap '"${pg_as[@]}" "$pg_bin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null
    bench_cleanup' EXIT
fi

if wanted_backend kafka://; then
  coproc kafka { exec "$build/broadcaster-kafka-mock" --brokers 3; }
  bench_pids+=("$kafka_PID")
  read -r -t 10 kafka_bootstrap <&"${kafka[0]}"
fi

run() {  # LABEL URL INSTANCES LOAD-ARGS...
  local label=$1 url=$2 instances=$3
  shift 3
  wanted "$label" || return 0
  local ports=() server_pids=()
  for _ in $(seq "$instances"); do
    start_chat "$url"
    ports+=("$chat_port")
    server_pids+=("$chat_pid")
  done
  echo "== $label"
  "$load" --ports "$(IFS=,; echo "${ports[*]}")" --pids "$(IFS=,; echo "${server_pids[*]}")" \
    --clients 100 --senders 10 "$@" || echo "(incomplete run: see above)"
  for p in "${server_pids[@]}"; do kill "$p"; done
}

run "memory://, 1 instance, flood" memory:// 1 --messages 5000 --window 100
run "memory://, 1 instance, 500 msg/s" memory:// 1 --rate 500 --duration 10
run "redis://, 2 instances, flood" "redis://127.0.0.1:$redis_port" 2 --messages 5000 --window 100
run "redis://, 2 instances, 500 msg/s" "redis://127.0.0.1:$redis_port" 2 --rate 500 --duration 10
run "postgres://, 2 instances, flood" "postgres://postgres@127.0.0.1:$pg_port/postgres" 2 \
  --messages 5000 --window 100
run "postgres://, 2 instances, 500 msg/s" "postgres://postgres@127.0.0.1:$pg_port/postgres" 2 \
  --rate 500 --duration 10
# The mock answers fetches only after fetch.wait.max.ms; a real broker answers at once.
kafka_url="kafka://$kafka_bootstrap?consumer.fetch.wait.max.ms=1"
run "kafka://, 2 instances, flood" "$kafka_url" 2 --messages 5000 --window 100
run "kafka://, 2 instances, 500 msg/s" "$kafka_url" 2 --rate 500 --duration 10
