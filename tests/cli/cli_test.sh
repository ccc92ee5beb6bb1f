#!/usr/bin/env bash
# Tests of the `broadcaster` command-line tool through a real redis-server (started
# here on a free port, stopped on exit). Usage: cli_test.sh BROADCASTER_BINARY CASE
set -Eeuo pipefail
# A command that fails unexpectedly names itself, so a failure is never silent.
trap 'status=$?; [[ $- != *e* ]] || echo "FAIL: line $LINENO: $BASH_COMMAND: exit $status" >&2' ERR

tool=$1
case_name=$2
work=$(mktemp -d)
redis_pid=""
kafka_pid=""
nats_pid=""
pg_stop=()
cleanup() {
  # Best effort: how the servers exit must not change the test's status.
  trap - ERR
  set +e
  if [[ -n $redis_pid ]]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
  if [[ -n $kafka_pid ]]; then kill "$kafka_pid" 2>/dev/null; wait "$kafka_pid" 2>/dev/null; fi
  if [[ -n $nats_pid ]]; then kill "$nats_pid" 2>/dev/null; wait "$nats_pid" 2>/dev/null; fi
  if ((${#pg_stop[@]})); then "${pg_stop[@]}" >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

start_redis() {
  # A random port below the ephemeral range (no outgoing connection holds it) that
  # nobody listens on; another one if the server cannot have it (another test may
  # have taken it meanwhile).
  for _ in $(seq 3); do
    for _ in $(seq 20); do
      port=$(shuf -i 20000-32000 -n 1)
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    done
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
      --logfile "$work/redis.log" &
    redis_pid=$!
    for _ in $(seq 500); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then
        url="redis://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.02
    done
    echo "redis-server on port $port did not answer: $(tail -3 "$work/redis.log")" >&2
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
  done
  fail "redis-server did not start: $(tail -3 "$work/redis.log")"
}

# A throwaway PostgreSQL 15 cluster (run as the postgres user when root).
start_postgres() {
  local bin=/usr/lib/postgresql/15/bin as=()
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$work"
    chmod 755 "$work"
    as=(runuser -u postgres --)
  fi
  for _ in $(seq 20); do
    port=$(shuf -i 20000-32000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  "${as[@]}" "$bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$work/initdb.log" 2>&1 || fail "initdb: $(cat "$work/initdb.log")"
  "${as[@]}" "$bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $work -c fsync=off" start >/dev/null ||
    fail "pg_ctl: $(cat "$work/pg.log")"
  pg_stop=("${as[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate stop)
  url="postgres://postgres@127.0.0.1:$port/postgres"
}

# A Kafka mock cluster (broadcaster-kafka-mock, next to the tool in the build tree, or
# $BROADCASTER_KAFKA_MOCK); its first line of output is the bootstrap list.
start_kafka() {
  local mock=${BROADCASTER_KAFKA_MOCK:-$(dirname "$tool")/../../broadcaster-kafka-mock}
  coproc kafka { exec "$mock" --brokers 3; }
  kafka_pid=$kafka_PID
  local bootstrap
  read -r -t 10 bootstrap <&"${kafka[0]}" || fail "broadcaster-kafka-mock did not start"
  url="kafka://$bootstrap"
}

# A nats-server in the foreground on a random port below the ephemeral range, with a
# token (which must never show in the tool's output).
start_nats() {
  local port
  for _ in 1 2 3; do
    port=$((20000 + RANDOM % 12000))
    nats-server -a 127.0.0.1 -p "$port" --auth hunter2 > "$work/nats.log" 2>&1 &
    nats_pid=$!
    for _ in $(seq 500); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        url="nats://hunter2@127.0.0.1:$port"
        return 0
      fi
      kill -0 "$nats_pid" 2>/dev/null || break
      sleep 0.01
    done
    kill "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    nats_pid=""
  done
  fail "nats-server did not start: $(tail -3 "$work/nats.log")"
}

# Starts `broadcaster subscribe ARGS...` in the background; returns once it printed
# "subscribed" on stderr (bounded wait, no sleeping for the subscription itself).
subscribe_bg() {
  "$tool" subscribe "$@" > "$work/out" 2> "$work/err" &
  sub_pid=$!
  for _ in $(seq 500); do
    grep -q '^subscribed$' "$work/err" 2>/dev/null && return 0
    kill -0 "$sub_pid" 2>/dev/null || fail "subscribe exited early: $(cat "$work/err")"
    sleep 0.01
  done
  fail "no 'subscribed' line: $(cat "$work/err")"
}

wait_sub() {
  wait "$sub_pid" || fail "subscribe exited with $?: $(cat "$work/err")"
}

expect_status() {  # STATUS PATTERN COMMAND...
  local want=$1 pattern=$2
  shift 2
  set +e
  "$@" > "$work/stdout" 2> "$work/stderr"
  local got=$?
  set -e
  [[ $got == "$want" ]] || fail "'$*' exited $got, expected $want: $(cat "$work/stderr")"
  if [[ -n $pattern ]]; then
    # One line naming the problem (besides subscribe's own "subscribed").
    [[ $(grep -vc '^subscribed$' "$work/stderr") -eq 1 ]] ||
      fail "expected one error line: $(cat "$work/stderr")"
    grep -q -- "$pattern" "$work/stderr" || fail "stderr lacks '$pattern': $(cat "$work/stderr")"
  fi
  if grep -q "hunter2" "$work/stderr"; then fail "password leaked: $(cat "$work/stderr")"; fi
}

case $case_name in
  round_trip)
    start_redis
    subscribe_bg "$url" news --count 1
    "$tool" publish "$url" news "hello world"
    wait_sub
    [[ $(cat "$work/out") == "hello world" ]] || fail "got '$(cat "$work/out")'"
    ;;
  stdin_lines)
    start_redis
    subscribe_bg "$url" lines --count 3
    printf 'one\ntwo\nthree\n' | "$tool" publish "$url" lines
    wait_sub
    [[ $(cat "$work/out") == $'one\ntwo\nthree' ]] || fail "got '$(cat "$work/out")'"
    ;;
  null_separated)
    start_redis
    subscribe_bg "$url" nul --count 2 --json
    printf 'a\nb\0c' | "$tool" publish --null "$url" nul
    wait_sub
    [[ $(cat "$work/out") == $'{"channel":"nul","message":"a\\nb"}\n{"channel":"nul","message":"c"}' ]] ||
      fail "got '$(cat "$work/out")'"
    ;;
  with_channel)
    start_redis
    subscribe_bg "$url" left right --count 2 --with-channel
    "$tool" publish "$url" left L
    "$tool" publish "$url" right R
    wait_sub
    [[ $(cat "$work/out") == $'left\tL\nright\tR' ]] || fail "got '$(cat "$work/out")'"
    ;;
  json_binary)
    start_redis
    printf '\x00\xff\x01' > "$work/payload"
    subscribe_bg "$url" bin --count 2 --json
    "$tool" publish --file "$work/payload" "$url" bin
    "$tool" publish "$url" bin 'quote " and ✓'
    wait_sub
    expected=$'{"channel":"bin","message_base64":"AP8B"}\n{"channel":"bin","message":"quote \\" and ✓"}'
    [[ $(cat "$work/out") == "$expected" ]] || fail "got '$(cat "$work/out")'"
    ;;
  timeout)
    start_redis
    expect_status 7 "timed out" "$tool" subscribe "$url" quiet --count 1 --timeout 0.3
    ;;
  errors)
    expect_status 4 "no backend for scheme 'mqtt'" "$tool" publish "mqtt://u:hunter2@h" c m
    expect_status 3 "not a valid URL\|invalid URL" "$tool" publish "redis://u:hunter2@[::1" c m
    expect_status 3 "unknown option 'bogus'" "$tool" publish "redis://:hunter2@h?bogus=1" c m
    port=$(shuf -i 20000-32000 -n 1)
    expect_status 5 "cannot connect to redis://\*\*\*@127.0.0.1:$port" \
      "$tool" publish "redis://:hunter2@127.0.0.1:$port" c m
    expect_status 2 "" "$tool" publish
    ;;
  secrets)
    # Generated passwords hold raw '/', '?', '#', '@': no piece of them may be printed,
    # whether the URL is refused or the host is unreachable.
    port=$(shuf -i 20000-32000 -n 1)
    for url in "redis://user:Zq1/Yw2@127.0.0.1:$port" "redis://:Zq1?Yw2#Xe3@127.0.0.1:$port" \
               "redis://u:1234/Yw2@127.0.0.1:$port/0" "redis://:Zq1@Yw2@127.0.0.1:$port" \
               "rediss://:Zq1%2FYw2@127.0.0.1:$port" "redis://127.0.0.1:$port?password=Zq1&Yw2" \
               "postgres://u:Zq1/Yw2@127.0.0.1:$port/db" "postgres://u:4321/Yw2@127.0.0.1:$port/db" \
               "postgres://127.0.0.1:$port/db?password=Zq1#Yw2" \
               "kafka://u:Zq1/Yw2@127.0.0.1:$port" \
               "kafka://127.0.0.1:$port?connect_timeout_ms=300&kafka.sasl.password=Zq1" \
               "kafka://127.0.0.1:$port?kafka.sasl.oauthbearer.client.secret=Zq1&kafka.ssl.key.pem=Yw2&connect_timeout_ms=300" \
               "kafka://127.0.0.1:$port?kafka.pass%77ord=Zq1" "nats://u:Zq1/Yw2@h" "user:Zq1/Yw2@h"; do
      for command in publish subscribe; do
        args=(c m)
        [[ $command == subscribe ]] && args=(c --timeout 1)
        set +e
        "$tool" "$command" "$url" "${args[@]}" > "$work/stdout" 2> "$work/stderr"
        got=$?
        set -e
        [[ $got -ge 2 ]] || fail "$command $url exited $got: $(cat "$work/stderr")"
        [[ -s $work/stderr ]] || fail "$command $url: no error line"
        for piece in Zq1 Yw2 Xe3 1234 4321; do
          if grep -q "$piece" "$work/stderr" "$work/stdout"; then
            fail "$command $url leaked '$piece': $(cat "$work/stderr")"
          fi
        done
      done
    done
    ;;
  json_channel_base64)
    start_redis
    channel=$'bin\xff\x01ch'
    subscribe_bg "$url" "$channel" "ok✓" --count 2 --json
    "$tool" publish "$url" "$channel" "hello"
    "$tool" publish "$url" "ok✓" "fine"
    wait_sub
    expected="{\"channel_base64\":\"$(printf 'bin\xff\x01ch' | base64)\",\"message\":\"hello\"}"$'\n'
    expected+='{"channel":"ok✓","message":"fine"}'
    [[ $(cat "$work/out") == "$expected" ]] || fail "got '$(cat "$work/out")'"
    # Every line is valid JSON.
    /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]' \
      "$work/out" || fail "not JSON: $(cat "$work/out")"
    ;;
  error_lines_kafka)
    start_kafka
    # A channel Kafka refuses, named in the error line: escaped (one line) and shortened.
    expect_status 6 'channel .evil\\nline\\x01.' "$tool" publish "$url" $'evil\nline\x01' m
    long=$(head -c 100000 /dev/zero | tr '\0' 'x')
    expect_status 6 "(100000 bytes)" "$tool" publish "$url" "$long" m
    (($(wc -c < "$work/stderr") < 400)) || fail "long error line: $(wc -c < "$work/stderr") bytes"
    expect_status 6 "cannot subscribe to 'bad\\\\nname', 'x\{64\}'\.\.\. (100000 bytes), 'a b' and 1 more on" \
      "$tool" subscribe "$url" $'bad\nname' "$long" "a b" "c d"
    (($(wc -c < "$work/stderr") < 400)) || fail "long error line: $(wc -c < "$work/stderr") bytes"
    ;;
  epipe)
    # With SIGPIPE ignored (as some parents leave it), `subscribe | head -1` must end
    # once head is gone, not keep running.
    start_redis
    mkfifo "$work/fifo"
    (trap '' PIPE; exec "$tool" subscribe "$url" piped > "$work/fifo" 2> "$work/err") &
    sub_pid=$!
    head -1 < "$work/fifo" > "$work/first" &
    head_pid=$!
    for _ in $(seq 500); do
      grep -q '^subscribed$' "$work/err" 2>/dev/null && break
      kill -0 "$sub_pid" 2>/dev/null || fail "subscribe exited early: $(cat "$work/err")"
      sleep 0.01
    done
    grep -q '^subscribed$' "$work/err" || fail "no 'subscribed' line: $(cat "$work/err")"
    "$tool" publish "$url" piped first
    wait "$head_pid"
    [[ $(cat "$work/first") == first ]] || fail "head got '$(cat "$work/first")'"
    "$tool" publish "$url" piped second
    for _ in $(seq 100); do
      kill -0 "$sub_pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$sub_pid" 2>/dev/null; then
      kill "$sub_pid"
      fail "subscribe kept running after its reader left"
    fi
    set +e
    wait "$sub_pid"
    got=$?
    set -e
    [[ $got == 1 ]] || fail "subscribe exited $got, expected 1: $(cat "$work/err")"
    [[ $(cat "$work/err") == subscribed ]] || fail "unexpected stderr: $(cat "$work/err")"
    ;;
  bench_args)
    for bad in "--rate -5" "--rate 0" "--rate nan" "--duration -1" "--duration inf" "--size 0" \
               "--size 15" "--count 0"; do
      # shellcheck disable=SC2086 # one option and its value
      expect_status 2 "" "$tool" bench memory:// $bad
      grep -q -- "${bad%% *}" "$work/stderr" || fail "'$bad' not named: $(cat "$work/stderr")"
    done
    # The duration bounds the run at any rate (a message every 10 s used to mean 10 s).
    start=$(date +%s%N)
    "$tool" bench memory:// --rate 0.1 --duration 1 --json > "$work/bench.json"
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    ((elapsed_ms < 4000)) || fail "took $elapsed_ms ms"
    grep -q '"published":1,' "$work/bench.json" || fail "$(cat "$work/bench.json")"
    ;;
  bench_memory)
    "$tool" bench memory:// --subscribers 10 --count 2000 --json > "$work/bench.json"
    grep -q '"published":2000,' "$work/bench.json" || fail "$(cat "$work/bench.json")"
    grep -q '"delivered":20000,' "$work/bench.json" || fail "$(cat "$work/bench.json")"
    grep -q '"lost":0,' "$work/bench.json" || fail "$(cat "$work/bench.json")"
    ;;
  round_trip_postgres)
    start_postgres
    subscribe_bg "$url" "Chat Room" --count 2 --json
    "$tool" publish "$url" "Chat Room" "hello postgres"
    printf '\xff\x00binary' > "$work/payload"
    "$tool" publish --file "$work/payload" "$url" "Chat Room"
    wait_sub
    expected=$'{"channel":"Chat Room","message":"hello postgres"}\n{"channel":"Chat Room","message_base64":"/wBiaW5hcnk="}'
    [[ $(cat "$work/out") == "$expected" ]] || fail "got '$(cat "$work/out")'"
    ;;
  round_trip_kafka)
    start_kafka
    subscribe_bg "$url" orders --count 2 --with-channel
    printf 'first\nsecond\n' | "$tool" publish "$url" orders
    wait_sub
    [[ $(cat "$work/out") == $'orders\tfirst\norders\tsecond' ]] || fail "got '$(cat "$work/out")'"
    expect_status 6 "invalid channel\|channel" "$tool" publish "$url" "Chat Room" m
    ;;
  round_trip_nats)
    start_nats
    subscribe_bg "$url" chat.room --count 2 --json
    "$tool" publish "$url" chat.room "hello nats"
    printf '\xff\x00binary' > "$work/payload"
    "$tool" publish --file "$work/payload" "$url" chat.room
    wait_sub
    expected=$'{"channel":"chat.room","message":"hello nats"}\n{"channel":"chat.room","message_base64":"/wBiaW5hcnk="}'
    [[ $(cat "$work/out") == "$expected" ]] || fail "got '$(cat "$work/out")'"
    expect_status 6 "channel" "$tool" publish "$url" "Chat Room" m
    expect_status 6 "channel" "$tool" publish "$url" "chat.*" m
    ;;
  bench_kafka)
    start_kafka
    "$tool" bench "$url" --subscribers 2 --count 2000 > "$work/bench.txt"
    grep -q "delivered    4000 of 4000" "$work/bench.txt" || fail "$(cat "$work/bench.txt")"
    ;;
  bench_redis)
    start_redis
    "$tool" bench "$url" --subscribers 2 --count 2000 > "$work/bench.txt"
    grep -q "delivered    4000 of 4000" "$work/bench.txt" || fail "$(cat "$work/bench.txt")"
    ;;
  history_stream)
    start_redis
    url="redis-stream://127.0.0.1:$port"
    printf 'one\ntwo\nthree\n' | "$tool" publish "$url" log
    "$tool" history "$url" log --limit 2 > "$work/out"
    [[ $(cat "$work/out") == $'two\nthree' ]] || fail "got '$(cat "$work/out")'"
    "$tool" history "$url" log --json --with-position > "$work/out"
    grep -Eqx '\{"channel":"log","message":"one","position":"[0-9]+-[0-9]+"\}' <(head -1 "$work/out") ||
      fail "got '$(cat "$work/out")'"
    (($(wc -l < "$work/out") == 3)) || fail "expected 3 lines: '$(cat "$work/out")'"
    ;;
  history_kafka)
    start_kafka
    printf 'one\ntwo\nthree\n' | "$tool" publish "$url" log
    "$tool" history "$url" log --limit 3 --with-position > "$work/history"
    first=$(head -1 "$work/history" | cut -f1)
    # partition-offset
    [[ $first =~ ^[0-9]+-0$ ]] || fail "no position: '$(cat "$work/history")'"
    subscribe_bg "$url" log --since "$first" --count 3 --timeout 10
    "$tool" publish "$url" log four
    wait_sub
    [[ $(cat "$work/out") == $'two\nthree\nfour' ]] || fail "got '$(cat "$work/out")'"
    ;;
  history_unsupported)
    start_redis
    # With a password, which the error line must mask (expect_status checks).
    redis-cli -p "$port" config set requirepass hunter2 > /dev/null
    url="redis://:hunter2@127.0.0.1:$port"
    expect_status 1 "cannot read the history of 'log' on redis://\*\*\*@127.0.0.1:$port: this backend keeps no history" \
      "$tool" history "$url" log
    [[ ! -s $work/stdout ]] || fail "unexpected output: $(cat "$work/stdout")"
    expect_status 1 "on memory://: this backend keeps no history" "$tool" history memory:// log
    expect_status 1 "keeps no history" "$tool" subscribe "$url" log --last 1
    ;;
  subscribe_position)
    start_redis
    url="redis-stream://127.0.0.1:$port"
    subscribe_bg "$url" log --count 1 --with-position --with-channel --timeout 10
    "$tool" publish "$url" log hello
    wait_sub
    "$tool" history "$url" log --limit 1 --with-position > "$work/history"
    # The position the subscriber printed is the one the broker stored.
    [[ $(cat "$work/out") == "$(cut -f1 "$work/history")"$'\tlog\thello' ]] ||
      fail "got '$(cat "$work/out")', history '$(cat "$work/history")'"
    grep -Eqx '[0-9]+-[0-9]+	log	hello' "$work/out" || fail "no position: '$(cat "$work/out")'"
    ;;
  subscribe_since)
    start_redis
    url="redis-stream://127.0.0.1:$port"
    printf 'one\ntwo\nthree\n' | "$tool" publish "$url" log
    "$tool" history "$url" log --limit 3 --with-position > "$work/history"
    first=$(head -1 "$work/history" | cut -f1)
    [[ $first =~ ^[0-9]+-[0-9]+$ ]] || fail "no position: '$first'"
    # "subscribed" comes once the history is queued: "four" is a live message.
    subscribe_bg "$url" log --since "$first" --count 3 --timeout 10
    "$tool" publish "$url" log four
    wait_sub
    [[ $(cat "$work/out") == $'two\nthree\nfour' ]] || fail "got '$(cat "$work/out")'"
    # Refused before connecting (nothing listens on the port: that would be status 5).
    expect_status 2 "--since takes exactly one channel" \
      "$tool" subscribe "redis-stream://127.0.0.1:1" a b --since "$first"
    expect_status 6 "cannot subscribe to 'log' on redis-stream://.*: not a position" \
      "$tool" subscribe "$url" log --since bogus
    ;;
  subscribe_last)
    start_redis
    url="redis-stream://127.0.0.1:$port"
    printf 'one\ntwo\nthree\n' | "$tool" publish "$url" log
    subscribe_bg "$url" log --last 1 --count 2 --timeout 10
    "$tool" publish "$url" log four
    wait_sub
    [[ $(cat "$work/out") == $'three\nfour' ]] || fail "got '$(cat "$work/out")'"
    ;;
  *)
    fail "unknown case $case_name"
    ;;
esac
echo "ok: $case_name"
