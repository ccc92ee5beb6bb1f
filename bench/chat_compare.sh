#!/usr/bin/env bash
# broadcaster-chat beside other chat servers: the same load (bench_chat_load) on each,
# one table with a column per server.
#
#   bench/chat_compare.sh BUILD_DIR [--runs N] [--peer 'NAME=COMMAND']...
#
# broadcaster-chat on memory:// is always the first column. A peer is any server
# speaking the same protocol (a WebSocket at "/"; each text message a client sends goes
# to every client of the room, sender included); COMMAND starts it in the foreground,
# with {port} where its port goes:
#   bench/chat_compare.sh build --peer 'uws=node bench/peers/uws_chat.mjs {port}' \
#     --peer 'ws=node bench/peers/ws_chat.mjs {port}'
# (bench/peers/README.md: install those two with `npm ci --prefix bench/peers`).
#
# Measurements, each on a freshly started server, each scenario N times (default 3)
# with the servers taking turns (A B A B A B) so that a noisy stretch of the machine
# does not fall on one server only:
#   - flood: 100 clients, 10 senders, each sending 5000 messages as fast as the room
#     takes them (at most 100 not yet back to it): deliveries/s, server CPU per
#     delivery, peak RSS;
#   - 500 msg/s to 100 clients and 50 msg/s to 1000 clients (10 senders, 10 s):
#     latency p50/p99, server CPU per delivery, peak RSS (1000 clients);
#   - 10,000 idle clients joined to the room, then one message: RSS growth per client.
# A cell is the median (and range) of the runs; a run that failed (lost messages, the
# server not starting or dying) is left out and counted in the cell.
# CPU and memory are those of the process listening on the server's port.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
trap bench_cleanup EXIT

usage() {
  echo "usage: $0 BUILD_DIR [--runs N] [--peer 'NAME=COMMAND']..." >&2
  echo "  COMMAND contains {port}, e.g. --peer 'uws=node bench/peers/uws_chat.mjs {port}'" >&2
  exit 2
}

# --- arguments -------------------------------------------------------------------------

[[ $# -ge 1 && $1 != -* ]] || usage
build=$1
shift
runs=3
chat=$build/examples/chatroom/broadcaster-chat
load=$build/bench/bench_chat_load
for binary in "$chat" "$load"; do
  if [[ ! -x $binary ]]; then
    echo "$binary is missing: build broadcaster-chat and bench_chat_load" >&2
    exit 1
  fi
done
# Deep client queues, as in chat_bench.sh: the load generator reads all its sockets on
# one thread and must not be mistaken for slow clients (and dropped).
names=(broadcaster-chat)
commands=("$(printf '%q' "$chat") --port {port} --broadcast memory:// \
--client-queue-messages 1000000 --client-queue-bytes 1000000000")
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; runs=$2; shift 2 ;;
    --peer)
      [[ ${2:-} == *=*'{port}'* ]] || usage
      names+=("${2%%=*}")
      commands+=("${2#*=}")
      shift 2
      ;;
    *) usage ;;
  esac
done

# The bundled peers need their npm packages; this script installs nothing by itself.
if [[ ${commands[*]} == *peers/* && ! -d $here/peers/node_modules ]]; then
  echo "the peers in bench/peers need their packages: npm ci --prefix $here/peers" >&2
  exit 1
fi

# A descriptor per idle client on each side (load generator, server), with room to spare.
idle_clients=10000
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < idle_clients + 200)); then
  ulimit -n $((idle_clients + 200)) ||
    echo "cannot raise the descriptor limit: the idle runs will fail" >&2
fi

# --- scenarios -------------------------------------------------------------------------

scenarios=(flood100 rate100 rate1000 idle)
declare -A scenario_label=(
  [flood100]="flood, 100 clients"
  [rate100]="500 msg/s to 100 clients"
  [rate1000]="50 msg/s to 1000 clients"
  [idle]="$idle_clients idle clients"
)
declare -A scenario_args=(
  [flood100]="--clients 100 --senders 10 --messages 5000 --window 100"
  [rate100]="--clients 100 --senders 10 --rate 500 --duration 10"
  [rate1000]="--clients 1000 --senders 10 --rate 50 --duration 10"
  [idle]="--clients $idle_clients --idle"
)

# --- one run ---------------------------------------------------------------------------

# Starts server I in the background, in a session of its own so that stopping it stops
# whatever its command started; sets server_port, server_group (to stop) and server_pid
# (the process listening on the port, whose CPU and memory are measured).
start_server() {  # I LOG
  local i=$1 log=$2
  server_port=$(free_port)
  setsid bash -c "${commands[i]//\{port\}/$server_port}" >"$log" 2>&1 &
  server_group=$!
  bench_pids=("-$server_group")
  wait_port "$server_port" "$log" "$server_group" || return 1
  server_pid=$(ss -Hltnp "sport = :$server_port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  server_pid=${server_pid:-$server_group}
}

stop_server() {
  kill -- "-$server_group" 2>/dev/null || true
  wait "$server_group" 2>/dev/null || true
  bench_pids=()
}


# Why a run's figures do not count (empty if they do), from its results file.
run_failure() {  # SCENARIO RESULTS
  local -A r=()
  local name value
  [[ -s $2 ]] || { echo "no results"; return; }
  while IFS='=' read -r name value; do r[$name]=$value; done <"$2"
  if [[ $1 == idle ]]; then
    [[ ${r[reached]:-0} == "${r[clients]:-}" ]] ||
      echo "the message reached ${r[reached]:-0} of ${r[clients]:-?} clients"
  else
    local problems=
    [[ ${r[lost]:-} == 0 ]] || problems+=", lost ${r[lost]:-?} of ${r[expected]:-?}"
    [[ ${r[duplicates]:-} == 0 ]] || problems+=", ${r[duplicates]:-?} duplicates"
    [[ ${r[order_violations]:-} == 0 ]] || problems+=", ${r[order_violations]:-?} out of order"
    if [[ -n $problems ]]; then echo "${problems#, }"; fi
  fi
}

# Runs SCENARIO on a fresh server I; leaves its figures in results/SCENARIO.I.RUN, or
# the reason it failed in failed/SCENARIO.I.RUN.
run_one() {  # SCENARIO I RUN
  local scenario=$1 i=$2 run=$3
  local key=$scenario.$i.$run
  local results=$bench_dir/results/$key failure=
  local -a args
  read -ra args <<<"${scenario_args[$scenario]}"
  printf '%s, run %s/%s, %s: ' "${scenario_label[$scenario]}" "$run" "$runs" "${names[i]}"
  if ! start_server "$i" "$bench_dir/server.$key.log"; then
    failure="did not start"
  else
    # A server that stops answering must not hang the whole comparison.
    timeout 300 "$load" --ports "$server_port" --pids "$server_pid" "${args[@]}" \
      --results "$results" >"$bench_dir/load.$key.log" 2>&1 || true
    alive "$server_pid" || failure="the server died"
    failure=${failure:-$(run_failure "$scenario" "$results")}
    stop_server
  fi
  if [[ -n $failure ]]; then
    echo "$failure" >"$bench_dir/failed/$key"
    rm -f "$results"
    echo "FAILED: $failure"
    tail -3 "$bench_dir/load.$key.log" "$bench_dir/server.$key.log" 2>/dev/null | sed 's/^/    /' || true
  else
    echo "ok"
  fi
}

# --- the table -------------------------------------------------------------------------

# A figure of the runs that count, one a line, sorted.
figures() {  # SCENARIO I FIGURE
  local run file
  for run in $(seq "$runs"); do
    file=$bench_dir/results/$1.$2.$run
    if [[ -f $file ]]; then grep "^$3=" "$file" | cut -d= -f2 || true; fi
  done | sort -g
}

# The median of the sorted numbers on stdin; nothing if there are none.
median_of() {
  awk '{ v[NR] = $1 }
    END { if (NR) print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# "median (min-max)" of a figure over the runs that count, divided by DIVISOR and
# printed with FORMAT; notes the failed runs.
cell() {  # SCENARIO I FIGURE FORMAT DIVISOR
  local scenario=$1 i=$2 figure=$3 format=$4 divisor=$5
  local values failed first_failure
  values=$(figures "$scenario" "$i" "$figure")
  failed=$(find "$bench_dir/failed" -name "$scenario.$i.*" | wc -l)
  if [[ -z $values ]]; then
    first_failure=$(cat "$bench_dir/failed/$scenario.$i.1" 2>/dev/null || echo "no results")
    echo "failed ($first_failure)"
    return
  fi
  local median min max
  median=$(median_of <<<"$values")
  min=$(head -1 <<<"$values")
  max=$(tail -1 <<<"$values")
  awk -v f="$format" -v d="$divisor" -v median="$median" -v min="$min" -v max="$max" \
    -v count="$(wc -l <<<"$values")" -v failed="$failed" -v runs="$runs" 'BEGIN {
      out = sprintf(f, median / d)
      if (count > 1) out = out sprintf(" (" f "-" f ")", min / d, max / d)
      if (failed > 0) out = out sprintf("; %d of %d runs failed", failed, runs)
      print out
    }'
}

# Row label, scenario, figure in the results file, printf format, divisor.
rows=(
  "flood, 100 clients: deliveries/s|flood100|deliveries_per_s|%.0f|1"
  "flood, 100 clients: server CPU per delivery (µs)|flood100|server_cpu_us_per_delivery|%.2f|1"
  "500 msg/s to 100 clients: latency p50 (µs)|rate100|latency_p50_us|%.0f|1"
  "500 msg/s to 100 clients: latency p99 (µs)|rate100|latency_p99_us|%.0f|1"
  "500 msg/s to 100 clients: server CPU per delivery (µs)|rate100|\
server_cpu_us_per_delivery|%.2f|1"
  "50 msg/s to 1000 clients: latency p50 (µs)|rate1000|latency_p50_us|%.0f|1"
  "50 msg/s to 1000 clients: latency p99 (µs)|rate1000|latency_p99_us|%.0f|1"
  "50 msg/s to 1000 clients: server CPU per delivery (µs)|rate1000|\
server_cpu_us_per_delivery|%.2f|1"
  "peak RSS, 100 clients (MiB; flood)|flood100|server_peak_rss_kib|%.1f|1024"
  "peak RSS, 1000 clients (MiB)|rate1000|server_peak_rss_kib|%.1f|1024"
  "memory per idle client, $idle_clients clients (KiB RSS)|idle|server_rss_per_client_kib|%.2f|1"
)

print_table() {
  local row label scenario figure format divisor i
  printf '| |'; printf ' %s |' "${names[@]}"; echo
  printf '|---|'; printf -- '---|%.0s' "${names[@]}"; echo
  for row in "${rows[@]}"; do
    IFS='|' read -r label scenario figure format divisor <<<"$row"
    printf '| %s |' "$label"
    for i in "${!names[@]}"; do
      printf ' %s |' "$(cell "$scenario" "$i" "$figure" "$format" "$divisor")"
    done
    echo
  done
}

# Each peer's median over broadcaster-chat's, for the figures where less is better.
print_ratios() {
  local row label scenario figure base peer i
  printf '| peer / broadcaster-chat |'; printf ' %s |' "${names[@]:1}"; echo
  printf '|---|'; printf -- '---|%.0s' "${names[@]:1}"; echo
  for row in "${rows[@]}"; do
    IFS='|' read -r label scenario figure _ _ <<<"$row"
    [[ $figure == server_cpu_us_per_delivery || $figure == latency_p99_us ]] || continue
    base=$(figures "$scenario" 0 "$figure" | median_of)
    printf '| %s |' "${label% (*}"  # a ratio has no unit
    for i in $(seq 1 $((${#names[@]} - 1))); do
      peer=$(figures "$scenario" "$i" "$figure" | median_of)
      if [[ -n $base && -n $peer ]]; then
        printf ' %s |' "$(awk -v a="$peer" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
      else
        printf ' - |'
      fi
    done
    echo
  done
}

# --- main ------------------------------------------------------------------------------

mkdir -p "$bench_dir/results" "$bench_dir/failed"
print_machine
if [[ ${commands[*]} == *node* ]] && command -v node >/dev/null; then
  echo "node: $(node --version)"
fi
echo "runs: $runs per scenario and server, the servers taking turns"
echo "servers (one fresh instance per run):"
for i in "${!names[@]}"; do echo "  ${names[i]}: ${commands[i]}"; done
echo "load, for each scenario:"
for scenario in "${scenarios[@]}"; do
  echo "  ${scenario_label[$scenario]}: $load --ports PORT --pids PID ${scenario_args[$scenario]}"
done
echo
for scenario in "${scenarios[@]}"; do
  for run in $(seq "$runs"); do
    for i in "${!names[@]}"; do run_one "$scenario" "$i" "$run"; done
  done
done
echo
print_table
if [[ ${#names[@]} -gt 1 ]]; then
  echo
  echo "Ratios of the medians (above 1: the peer needs more CPU per delivery, or its p99 is"
  echo "higher):"
  echo
  print_ratios
fi
