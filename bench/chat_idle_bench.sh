#!/usr/bin/env bash
# Memory per idle client of broadcaster-chat on memory://: a fresh server, then N
# WebSocket clients joined to the room (each as the page is: upgraded on /, subscribed),
# then one message to all of them. bench_chat_load --idle prints the server's RSS before,
# once all have joined and after the message, and the growth per client. N = 100 and
# 10,000 (each on a fresh server), and the server's CPU while they stay idle. Takes about
# 10 s.
#   bench/chat_idle_bench.sh [build-dir] [clients...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
shift || true
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(100 10000)
chat=$build/examples/chatroom/broadcaster-chat
load=$build/bench/bench_chat_load
trap bench_cleanup EXIT

# A descriptor per client on each side, with room to spare.
wanted=0
for n in "${counts[@]}"; do ((n + 100 > wanted)) && wanted=$((n + 100)); done
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < wanted)); then
  ulimit -n "$wanted" || { echo "cannot raise the descriptor limit to $wanted" >&2; exit 1; }
fi

print_machine
for n in "${counts[@]}"; do
  port=$(free_port)
  "$chat" --port "$port" --broadcast memory:// 2>>"$bench_dir/chat.log" &
  chat_pid=$!
  bench_pids=("$chat_pid")
  wait_port "$port" "$bench_dir/chat.log" "$chat_pid"
  echo "== $n idle clients, memory://"
  "$load" --ports "$port" --pids "$chat_pid" --clients "$n" --idle || echo "(incomplete run)"
  kill "$chat_pid"
  wait "$chat_pid" 2>/dev/null || true
  bench_pids=()
done
