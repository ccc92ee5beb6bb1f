# shellcheck shell=bash
# Helpers shared by the bench scripts; source it, don't run it.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# bench_dir is a scratch directory and bench_pids the processes to stop (-PGID for a
# process group): bench_cleanup stops them and removes the directory; a script installs
# it with `trap bench_cleanup EXIT`, or calls it from its own trap.

bench_dir=$(mktemp -d)
bench_pids=()

bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill -- "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$bench_dir"
}

# A port nothing listens on, below the ephemeral range: no outgoing connection holds it.
free_port() {
  local port
  for _ in $(seq 50); do
    port=$(shuf -i 20000-32000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  echo "no free port found" >&2
  return 1
}

# Whether PID still runs (a dead child not yet waited for is a zombie, and kill -0
# succeeds on it).
alive() {  # PID
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [[ -n $state && $state != Z && $state != X ]]
}

# Waits (20 s at most) until something accepts connections on PORT, or until PID (the
# server, if given) has exited; on failure, shows the end of LOG. A server listens once
# it is ready (broadcaster-chat: once its backend is connected).
wait_port() {  # PORT LOG [PID]
  for _ in $(seq 1000); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    [[ -z ${3:-} ]] || alive "$3" || break
    sleep 0.02
  done
  echo "nothing listens on $1: $(tail -3 "${2:-}" 2>/dev/null)" >&2
  return 1
}

# The line every bench report starts with: figures mean little without it.
print_machine() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}
