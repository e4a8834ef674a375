#!/usr/bin/env bash
# Edge cache on a replayed VOD workload: a Fleetcast origin holding FILES VOD
# files, an edge in front of it, and REQUESTS requests replayed through the
# edge with curl (PARALLEL at a time), file popularity Zipf(1) like most VOD
# catalogs, a quarter of the requests byte ranges. Prints the hit ratio and
# origin bytes vs edge bytes from the edge's /metrics, once with a cache
# smaller than the catalog and once with one that holds it all, each side by
# side with nginx's proxy_cache on the same workload. "Served without a
# fetch" = 1 - upstream requests / requests: both sides count a request that
# waited on another's fetch differently (Fleetcast a miss, nginx a HIT after
# its cache lock), so the upstream requests are what compares.
#
# Environment (defaults in brackets):
#   FILES     files in the catalog                  [60]
#   REQUESTS  requests replayed per run             [3000]
#   PARALLEL  requests in flight                    [16]
#   SMALL     disk bytes of the small-cache run     [25% of the catalog]
#   PROFILE   cargo profile of the server binary    [debug]
#   KEEP      set: keep the work directory (logs)   []
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-60}
REQUESTS=${REQUESTS:-3000}
PARALLEL=${PARALLEL:-16}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

# Hit ratio and bytes do not depend on the build profile; the debug build
# is the one tests already made.
PROFILE=${PROFILE:-debug}
if [[ $PROFILE == release ]]; then cargo build -q --release -p fleetcast-media; else cargo build -q -p fleetcast-media; fi
BIN=$TARGET_DIR/$PROFILE/fleetcast-media
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# Deterministic catalog: file i is 256 KiB .. 2 MiB.
mkdir -p "$WORK/origin/vod"
catalog=0
for i in $(seq 0 $((FILES - 1))); do
    size=$(((256 + (i * 7919) % 1793) * 1024))
    head -c "$size" /dev/urandom >"$WORK/origin/vod/f$i.mp4"
    catalog=$((catalog + size))
done
SMALL=${SMALL:-$((catalog / 4))}

# Starts `fleetcast-media --config $1` (log in $2), waits for its
# listeners, sets ADDR to its HTTP address and ADMIN to its admin address.
start() {
    local log=$2
    RUST_LOG=info NO_COLOR=1 "$BIN" --config "$1" >/dev/null 2>"$log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        ADDR=$(grep -o 'http=[0-9.:]*' "$log" 2>/dev/null | head -1 | cut -d= -f2 || true)
        ADMIN=$(grep -o 'admin=[0-9.:]*' "$log" 2>/dev/null | head -1 | cut -d= -f2 || true)
        if [[ -n $ADDR && -n $ADMIN ]]; then
            return
        fi
        sleep 0.1
    done
    echo "server did not start: $(cat "$log")" >&2
    exit 1
}

cat >"$WORK/origin.yaml" <<EOF
rtmp: { listen: "127.0.0.1:0" }
http: { listen: "127.0.0.1:0" }
admin: { listen: "127.0.0.1:0" }
data_dir: "$WORK/origin"
log: { level: warn }
EOF
start "$WORK/origin.yaml" "$WORK/origin.log"
ORIGIN=$ADDR

# The workload: REQUESTS lines of "file range" (range "-" = whole file),
# Zipf(1) over the catalog by inverse CDF, from a fixed seed.
awk -v n="$FILES" -v r="$REQUESTS" 'BEGIN {
    srand(42); h = 0; for (k = 1; k <= n; k++) { h += 1 / k; cdf[k] = h }
    for (i = 0; i < r; i++) {
        u = rand() * h; k = 1; while (cdf[k] < u) k++
        range = "-"; if (rand() < 0.25) { s = int(rand() * 200000); range = s "-" s + 65535 }
        print "f" (k - 1) ".mp4", range
    }
}' >"$WORK/workload"

# $1 is a server's admin address (the metrics are not on the public port).
metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }

run() {
    local name=$1 disk=$2 memory=$3
    rm -rf "$WORK/cache-$name"
    cat >"$WORK/edge-$name.yaml" <<EOF
role: edge
rtmp: { listen: "127.0.0.1:0" }
http: { listen: "127.0.0.1:0" }
admin: { listen: "127.0.0.1:0" }
data_dir: "$WORK/edge-data-$name"
log: { level: warn }
edge:
  upstreams: ["http://$ORIGIN"]
  # nginx keeps objects for the origin's Cache-Control: max-age=300: the same here.
  cache: { dir: "$WORK/cache-$name", disk_bytes: $disk, memory_bytes: $memory, revalidate_secs: 300 }
EOF
    start "$WORK/edge-$name.yaml" "$WORK/edge-$name.log"
    local edge=$ADDR admin=$ADMIN
    local t0 t1
    t0=$(date +%s.%N)
    # shellcheck disable=SC2016
    xargs -P "$PARALLEL" -L 1 sh -c '
        if [ "$2" = "-" ]; then curl -s -o /dev/null -w "%{http_code}\n" "http://$0/vod/$1"
        else curl -s -o /dev/null -w "%{http_code}\n" -r "$2" "http://$0/vod/$1"; fi' "$edge" \
        <"$WORK/workload" >"$WORK/status-$name"
    t1=$(date +%s.%N)
    local failed
    failed=$(grep -cv '^20[06]$' "$WORK/status-$name" || true)
    local hm hd miss up served fetches
    hm=$(metric "$admin" 'fleetcast_media_cache_hits_total{tier="memory"}')
    hd=$(metric "$admin" 'fleetcast_media_cache_hits_total{tier="disk"}')
    miss=$(metric "$admin" fleetcast_media_cache_misses_total)
    up=$(metric "$admin" fleetcast_media_cache_upstream_bytes_total)
    fetches=$(metric "$admin" fleetcast_media_cache_upstream_requests_total)
    local used
    used=$(du -sb "$WORK/cache-$name" | cut -f1)
    served=$(($(metric "$admin" 'fleetcast_media_cache_served_bytes_total{tier="memory"}') +
        $(metric "$admin" 'fleetcast_media_cache_served_bytes_total{tier="disk"}')))
    awk -v n="$name" -v d="$disk" -v m="$memory" -v hm="$hm" -v hd="$hd" -v miss="$miss" \
        -v up="$up" -v s="$served" -v c="$catalog" -v t0="$t0" -v t1="$t1" -v failed="$failed" -v f="$fetches" -v r="$REQUESTS" -v used="$used" 'BEGIN {
        secs = t1 - t0
        printf "%-12s disk %6.1f MiB (used %6.1f) | fetches %4d, served without a fetch %.3f | hits %5d (mem %5d, disk %5d) misses %4d | origin %7.1f MiB, edge %7.1f MiB, origin/edge %.3f | catalog %.1f MiB | %.1f s, %d failed\n",
            n, d / 1048576, used / 1048576, f, 1 - f / r, hm + hd, hm, hd, miss,
            up / 1048576, s / 1048576, up / s, c / 1048576, secs, failed
    }'
}

# The peer: nginx's proxy_cache in front of the same origin (Debian's nginx),
# one worker, with request collapsing (proxy_cache_lock) and revalidation
# (it follows the origin's Cache-Control: max-age=300 over proxy_cache_valid,
# and the edge is given revalidate_secs 300 to match). Its figures come from
# its access log.
run_nginx() {
    local name=$1 disk=$2
    local prefix=$WORK/nginx-$name port=$((20000 + RANDOM % 20000))
    mkdir -p "$prefix/cache" "$prefix/tmp"
    cat >"$prefix/nginx.conf" <<CONF
daemon off;
# Its cache lives in this run's private directory.
user $(id -un);
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 1024; }
http {
    log_format cachelog '\$upstream_cache_status \$upstream_bytes_received \$body_bytes_sent';
    access_log $prefix/access.log cachelog;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    proxy_cache_path $prefix/cache levels=1:2 keys_zone=vod:10m max_size=$disk inactive=1h use_temp_path=off;
    server {
        listen 127.0.0.1:$port;
        location /vod/ {
            proxy_pass http://$ORIGIN;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache vod;
            proxy_cache_valid 200 30s;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 60s;
        }
    }
}
CONF
    nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    : >"$prefix/access.log"
    local t0 t1
    t0=$(date +%s.%N)
    # shellcheck disable=SC2016
    xargs -P "$PARALLEL" -L 1 sh -c '
        if [ "$2" = "-" ]; then curl -s -o /dev/null -w "%{http_code}\n" "http://$0/vod/$1"
        else curl -s -o /dev/null -w "%{http_code}\n" -r "$2" "http://$0/vod/$1"; fi' "127.0.0.1:$port" \
        <"$WORK/workload" >"$WORK/status-nginx-$name"
    t1=$(date +%s.%N)
    local failed
    failed=$(grep -cv '^20[06]$' "$WORK/status-nginx-$name" || true)
    local used
    used=$(du -sb "$prefix/cache" | cut -f1)
    awk -v used="$used" -v n="nginx-$name" -v d="$disk" -v c="$catalog" -v r="$REQUESTS" -v t0="$t0" -v t1="$t1" -v failed="$failed" '
        { if ($1 == "HIT") hits++; else if ($1 == "MISS" || $1 == "EXPIRED") miss++
          if ($2 != "-") { fetches++; up += $2 } ; s += $3 }
        END {
        printf "%-12s disk %6.1f MiB (used %6.1f) | fetches %4d, served without a fetch %.3f | HIT %5d MISS %4d                    | origin %7.1f MiB, edge %7.1f MiB, origin/edge %.3f | catalog %.1f MiB | %.1f s, %d failed\n",
            n, d / 1048576, used / 1048576, fetches, 1 - fetches / r, hits, miss, up / 1048576, s / 1048576, up / s, c / 1048576, t1 - t0, failed
    }' "$prefix/access.log"
}

echo "catalog: $FILES files, $((catalog / 1048576)) MiB; $REQUESTS requests, $PARALLEL in flight, Zipf(1), 25% ranges"
run small "$SMALL" $((4 * 1024 * 1024))
run_nginx small "$SMALL"
run large $((catalog * 2)) $((64 * 1024 * 1024))
run_nginx large $((catalog * 2))
