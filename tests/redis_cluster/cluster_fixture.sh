#!/usr/bin/env bash
# A throwaway Redis Cluster (3 masters, 3 replicas) on loopback, for the tests.
#
#   cluster_fixture.sh start DIR       forms the cluster; prints and writes DIR/url
#                                      (seed list) and DIR/ports (the node ports)
#   cluster_fixture.sh start DIR tls   the same over TLS only (clients, cluster bus and
#                                      replication), 3 masters without replicas (quicker
#                                      to form); DIR/tls/cert.pem is the nodes'
#                                      certificate and CA, issued to the name in
#                                      DIR/tls/name and not to their IP address
#   cluster_fixture.sh stop DIR        stops it and removes DIR
#
# The nodes run in the foreground as children of a supervisor (so they are reaped when
# a test kills one); SIGUSR1 to the supervisor (DIR/supervisor.pid) starts again every
# node that died, with its nodes.conf, so it rejoins the cluster (as a replica if it
# was failed over meanwhile). The supervisor ends after two hours at the latest, should
# the stop never come.
set -u

nodes=6
replicas=1
node_timeout_ms=2000
tls_args=()      # the nodes' TLS options (tls mode)
cli_tls_args=()  # redis-cli's
tls_name=redis-cluster.test

use_tls() {  # DIR: sets the TLS options of the nodes and of redis-cli
    local dir=$1
    nodes=3
    replicas=0
    tls_args=(--tls-cert-file "$dir/tls/cert.pem" --tls-key-file "$dir/tls/key.pem"
        --tls-ca-cert-file "$dir/tls/cert.pem" --tls-auth-clients no
        --tls-cluster yes --tls-replication yes)
    cli_tls_args=(--tls --cacert "$dir/tls/cert.pem")
}

make_certificate() {  # DIR: self-signed, for the name only (the cluster announces IPs)
    local dir=$1
    mkdir -p "$dir/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$tls_name" \
        -addext "subjectAltName=DNS:$tls_name" -keyout "$dir/tls/key.pem" \
        -out "$dir/tls/cert.pem" > /dev/null 2>&1 || return 1
    echo "$tls_name" > "$dir/tls/name"
}

cli() {  # PORT ARGS...
    local port=$1
    shift
    redis-cli "${cli_tls_args[@]}" -p "$port" "$@"
}

die() { echo "cluster_fixture: $*" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() {  # DIR PORT
    local dir=$1 port=$2
    mkdir -p "$dir/$port"
    local listen=(--port "$port")
    ((${#tls_args[@]})) && listen=(--port 0 --tls-port "$port" "${tls_args[@]}")
    redis-server "${listen[@]}" --bind 127.0.0.1 --dir "$dir/$port" --save '' \
        --appendonly no --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$node_timeout_ms" --cluster-replica-validity-factor 0 \
        >> "$dir/$port/redis.log" 2>&1 &
    echo $! > "$dir/$port/pid"
}

cluster_ok() {  # PORT: that node sees every slot served
    cli "$1" cluster info 2>/dev/null | tr -d '\r' | grep -q '^cluster_state:ok$'
}

supervise() {  # DIR BASE [tls]
    local dir=$1 base=$2 ports=() p
    [[ ${3:-} == tls ]] && use_tls "$dir"
    for ((i = 0; i < nodes; i++)); do ports+=($((base + i))); done
    trap 'for p in "${ports[@]}"; do kill -KILL "$(cat "$dir/$p/pid")" 2>/dev/null; done; wait; exit 0' TERM
    trap 'for p in "${ports[@]}"; do kill -0 "$(cat "$dir/$p/pid")" 2>/dev/null || start_node "$dir" "$p"; done' USR1
    for p in "${ports[@]}"; do start_node "$dir" "$p"; done
    local until=$((SECONDS + 10))
    for p in "${ports[@]}"; do
        until listening "$p"; do
            if ((SECONDS > until)) || ! kill -0 "$(cat "$dir/$p/pid")" 2>/dev/null; then
                echo "node $p did not start" > "$dir/error"
                kill -TERM $$
            fi
            sleep 0.01
        done
    done
    local addresses=()
    for p in "${ports[@]}"; do addresses+=("127.0.0.1:$p"); done
    if ! redis-cli "${cli_tls_args[@]}" --cluster create "${addresses[@]}" \
        --cluster-replicas "$replicas" --cluster-yes \
        > "$dir/create.log" 2>&1; then
        echo "redis-cli --cluster create failed; see $dir/create.log" > "$dir/error"
        kill -TERM $$
    fi
    until=$((SECONDS + 30))
    for p in "${ports[@]}"; do
        until cluster_ok "$p"; do
            if ((SECONDS > until)); then
                echo "the cluster did not reach cluster_state:ok" > "$dir/error"
                kill -TERM $$
            fi
            sleep 0.02
        done
    done
    echo "${ports[*]}" > "$dir/ports"
    echo "127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}" > "$dir/url.tmp"
    mv "$dir/url.tmp" "$dir/url"
    local end=$((SECONDS + 7200))
    while ((SECONDS < end)); do
        sleep 1 &
        wait $! 2>/dev/null
    done
    kill -TERM $$
}

stop() {  # DIR
    local dir=$1 pid
    [[ -f $dir/supervisor.pid ]] || return 0
    pid=$(cat "$dir/supervisor.pid")
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 500; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    kill -KILL "$pid" 2>/dev/null
    for f in "$dir"/*/pid; do
        [[ -f $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$dir"
}

case "${1:-}" in
    start)
        dir=${2:?DIR}
        mode=${3:-}
        [[ -z $mode || $mode == tls ]] || die "unknown mode $mode"
        [[ $mode == tls ]] && nodes=3
        stop "$dir"  # a cluster left by an interrupted run
        for attempt in 1 2 3 4 5; do
            rm -rf "$dir"
            mkdir -p "$dir"
            # Ports below 32000, with the cluster bus (port + 10000) out of the
            # ephemeral range too.
            base=$((20000 + (RANDOM % 190) * 10))
            free=1
            for ((i = 0; i < nodes; i++)); do
                if listening $((base + i)) || listening $((base + i + 10000)); then free=0; fi
            done
            ((free)) || continue
            if [[ $mode == tls ]] && ! make_certificate "$dir"; then
                die "openssl could not make a certificate"
            fi
            setsid "$0" supervise "$dir" "$base" $mode < /dev/null > /dev/null 2>&1 &
            echo $! > "$dir/supervisor.pid"
            until=$((SECONDS + 60))
            while [[ ! -f $dir/url && ! -f $dir/error ]] && ((SECONDS < until)); do
                sleep 0.02
            done
            if [[ -f $dir/url ]]; then
                cat "$dir/url"
                exit 0
            fi
            cat "$dir/error" >&2 2>/dev/null
            stop "$dir"
        done
        die "could not form a cluster"
        ;;
    supervise) supervise "$2" "$3" "${4:-}" ;;
    stop) stop "${2:?DIR}" ;;
    *) die "usage: $0 start DIR [tls] | stop DIR" ;;
esac
