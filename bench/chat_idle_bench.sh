#!/usr/bin/env bash
# Memory per idle client of broadcaster-chat on memory://: a fresh server, then N
# WebSocket clients joined to the room (each as the page is: upgraded on /, subscribed),
# then one message to all of them. bench_chat_load --idle prints the server's RSS before,
# once all have joined and after the message, and the growth per client. N = 100 and
# 10,000 (each on a fresh server), and the server's CPU while they stay idle. Takes about
# 10 s.
#   bench/chat_idle_bench.sh [build-dir] [clients...]
set -euo pipefail
build=${1:-build}
shift || true
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(100 10000)
chat=$build/examples/chatroom/broadcaster-chat
load=$build/bench/bench_chat_load
dir=$(mktemp -d)
chat_pid=
cleanup() {
  [[ -n $chat_pid ]] && kill "$chat_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# A descriptor per client on each side, with room to spare.
wanted=0
for n in "${counts[@]}"; do ((n + 100 > wanted)) && wanted=$((n + 100)); done
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < wanted)); then
  ulimit -n "$wanted" || { echo "cannot raise the descriptor limit to $wanted" >&2; exit 1; }
fi

free_port() {  # below the ephemeral range: no outgoing connection holds it
  local port
  for _ in $(seq 50); do
    port=$(shuf -i 20000-32000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

wait_port() {
  for _ in $(seq 1000); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.02
  done
  echo "nothing listens on $1: $(tail -3 "$dir/chat.log" 2>/dev/null)" >&2
  exit 1
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for n in "${counts[@]}"; do
  port=$(free_port)
  "$chat" --port "$port" --broadcast memory:// 2>>"$dir/chat.log" &
  chat_pid=$!
  wait_port "$port"
  echo "== $n idle clients, memory://"
  "$load" --ports "$port" --pids "$chat_pid" --clients "$n" --idle || echo "(incomplete run)"
  kill "$chat_pid"
  wait "$chat_pid" 2>/dev/null || true
  chat_pid=
done
