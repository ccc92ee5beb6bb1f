#!/usr/bin/env bash
# pgbench running SELECT pg_notify('c','x') with 8 clients, and `broadcaster bench`
# through one broadcast (without and with ?history=N), side by side on one throwaway
# PostgreSQL 15 cluster.
#   bench/postgres_bench.sh [build-dir]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build=${1:-build}
bin=/usr/lib/postgresql/15/bin
dir=$bench_dir
as=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres "$dir"
  chmod 755 "$dir"
  as=(runuser -u postgres --)
fi
port=$(free_port)
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
  --no-sync >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off" start >/dev/null
trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; bench_cleanup' EXIT
url="postgres://postgres@127.0.0.1:$port/postgres"

print_machine
echo "SELECT pg_notify('c', 'x');" > "$dir/notify.sql"
reference=$("$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 8 -j 2 -T 5 \
  -f "$dir/notify.sql" postgres 2>/dev/null | awk '/^tps/ {print $3; exit}')
echo "pgbench -c 8 -j 2 -T 5 (SELECT pg_notify): $reference notifications/s"
"$build/tools/broadcaster/broadcaster" bench "$url" --subscribers 1 --count 50000 | tee "$dir/ours"
ours=$(awk '/^published/ {print $6}' "$dir/ours")
awk -v a="$ours" -v b="$reference" 'BEGIN { printf "ratio: %.2f of pgbench\n", a / b }'
echo "latency at a fixed 1000 msg/s:"
"$build/tools/broadcaster/broadcaster" bench "$url" --subscribers 1 --rate 1000 --duration 5 |
  grep latency
# With history: every publish also inserts a row and trims the channel to the last N.
for kept in 10000 100; do
  echo "with ?history=$kept:"
  "$build/tools/broadcaster/broadcaster" bench "$url?history=$kept" --subscribers 1 --count 50000
  "$build/tools/broadcaster/broadcaster" bench "$url?history=$kept" --subscribers 1 --rate 1000 \
    --duration 5 | grep latency
done
