#!/usr/bin/env bash
# Edge relay benchmark, side by side with nginx-rtmp relaying with `pull`,
# on loopback. Two measurements:
#
# 1. Publish -> first frame at a viewer that is already waiting, direct on
#    the origin and through one and two edge tiers (a fresh stream name each
#    round, so each edge finds and pulls it cold). The viewer is
#    `media-bench first-frame`; the publisher starts 0.5 s after it, and the
#    figure is counted from the publisher's start (ffmpeg's start-up is in
#    every figure alike; compare the differences between tiers).
# 2. Origin egress while N viewers play from one edge (media-bench play),
#    against N viewers directly on the origin: bytes the origin sent (TCP
#    bytes_sent on its RTMP port, from ss) per second; and the edge's CPU
#    seconds per Gbit delivered. Same for nginx-rtmp (an nginx origin and an
#    nginx edge with `pull`).
#
# Environment (defaults in brackets):
#   VIEWERS   viewer counts for egress, comma separated   [50,200,500]
#   ROUNDS    latency rounds per path                     [5]
#   DURATION  seconds per egress run                      [15]
#   RAMP      seconds over which viewers connect          [3]
#   BENCH_DEBUG=1 prints each egress run's media-bench summary on stderr
# Prints a table per measurement; docs/benchmarks.md has a run.
set -euo pipefail
cd "$(dirname "$0")/.."

VIEWERS=${VIEWERS:-50,200,500}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-15}
RAMP=${RAMP:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

missing=()
command -v nginx >/dev/null || missing+=(nginx)
[[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || missing+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi

# The stream bench-fanout.sh uses (about 1.1 Mbit/s, GOP 2 s), made once.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fleetcast/bench
file=$cache/testsrc2-360p30-1100k-gop2s.flv
if [[ ! -s $file ]]; then
    mkdir -p "$cache"
    echo "generating $file" >&2
    ffmpeg -hide_banner -loglevel error -nostdin -y \
        -f lavfi -i testsrc2=size=640x360:rate=30 \
        -f lavfi -i sine=frequency=440:sample_rate=44100 \
        -t 60 -c:v libx264 -preset veryfast -b:v 1000k -maxrate 1000k -bufsize 1000k \
        -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
        -c:a aac -b:a 96k -shortest "$file.tmp.flv"
    mv "$file.tmp.flv" "$file"
fi

cargo build --release -p fleetcast-media -p fleetcast-media-bench >&2
FM=$TARGET_DIR/release/fleetcast-media
MB=$TARGET_DIR/release/media-bench
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_port() { # host:port
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# Fleetcast: origin, edge 1 (from the origin), edge 2 (from edge 1). Each on
# a loopback address of its own, as pods have: an edge asks an upstream's
# /api/streams on the upstream's host at the admin port (8081).
O_RTMP=127.0.0.11:19350 O_HTTP=127.0.0.11:18080 O_ADMIN=127.0.0.11:8081
E1_RTMP=127.0.0.12:19351 E1_HTTP=127.0.0.12:18081 E1_ADMIN=127.0.0.12:8081
E2_RTMP=127.0.0.13:19352 E2_HTTP=127.0.0.13:18082 E2_ADMIN=127.0.0.13:8081
RUST_LOG=warn "$FM" origin --rtmp $O_RTMP --http $O_HTTP --admin $O_ADMIN --data "$work/origin" 2>"$work/origin.log" &
fo=$!; pids+=($fo)
RUST_LOG=warn "$FM" edge --rtmp $E1_RTMP --http $E1_HTTP --admin $E1_ADMIN --cache-dir "$work/e1" \
    --upstream rtmp://$O_RTMP,http://$O_HTTP 2>"$work/e1.log" &
fe1=$!; pids+=($fe1)
RUST_LOG=warn "$FM" edge --rtmp $E2_RTMP --http $E2_HTTP --admin $E2_ADMIN --cache-dir "$work/e2" \
    --upstream rtmp://$E1_RTMP,http://$E1_HTTP 2>"$work/e2.log" &
pids+=($!)

# nginx-rtmp: origin, edge 1 (`pull` from the origin), edge 2 (from edge 1).
N_O=127.0.0.1:19360 N_E1=127.0.0.1:19361 N_E2=127.0.0.1:19362
nginx_start() { # name listen extra
    local prefix=$work/nginx-$1
    mkdir -p "$prefix"
    cat >"$prefix/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 8192; }
rtmp { server { listen $2; application live { live on; $3 } } }
CONF
    nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" &
    pids+=($!)
}
nginx_start origin $N_O ""
no=${pids[-1]}
nginx_start e1 $N_E1 "pull rtmp://$N_O/live;"
ne1=${pids[-1]}
nginx_start e2 $N_E2 "pull rtmp://$N_E1/live;"
for a in $O_RTMP $O_HTTP $E1_RTMP $E1_HTTP $E2_RTMP $E2_HTTP $N_O $N_E1 $N_E2; do wait_port "$a"; done
# nginx serves from its worker process (the master only supervises).
worker() { ps --ppid "$1" -o pid= | head -1 | tr -d ' '; }
no=$(worker "$no")
ne1=$(worker "$ne1")
[[ -n $no && -n $ne1 ]] || { echo "nginx workers not found" >&2; exit 1; }

publish() { # url seconds (loops the file)
    ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$file" \
        -c copy -t "$2" -f flv "$1" >/dev/null 2>>"$work/publish.log" &
    echo $!
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

echo "$(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), nginx $(nginx -v 2>&1 | cut -d/ -f2)" >&2

# 1. Publish -> first frame.
latency() { # viewer-url-prefix publish-url-prefix tag
    local vals=()
    for r in $(seq 1 "$ROUNDS"); do
        local name=lat-$3-$r-$$
        "$MB" first-frame --url "$1/live/$name" --timeout 30 --retry-ms 20 >"$work/ff" 2>"$work/ff.err" &
        local ff=$!
        sleep 0.5
        local pub
        pub=$(publish "$2/live/$name" 12)
        if wait $ff; then
            vals+=("$(awk '{printf "%.0f", $1 - 500}' "$work/ff")")
        else
            echo "round $r of $3: $(cat "$work/ff.err")" >&2
        fi
        kill "$pub" 2>/dev/null || true
        wait "$pub" 2>/dev/null || true
    done
    printf '%s\n' "${vals[@]}" | median
}
echo
echo "publish -> first frame, ms (median of $ROUNDS, fresh stream each round)"
printf '%-22s %10s %10s\n' path fleetcast nginx-rtmp
tags=(direct edge1 edge2)
furls=("rtmp://$O_RTMP" "rtmp://$E1_RTMP" "rtmp://$E2_RTMP")
nurls=("rtmp://$N_O" "rtmp://$N_E1" "rtmp://$N_E2")
for i in 0 1 2; do
    f=$(latency "${furls[$i]}" "rtmp://$O_RTMP" "f${tags[$i]}")
    n=$(latency "${nurls[$i]}" "rtmp://$N_O" "n${tags[$i]}")
    printf '%-22s %10s %10s\n' "${tags[$i]}" "$f" "$n"
done

# 2. Origin egress and edge CPU as viewers grow, sampled while every viewer
# is connected: bytes sent on the server's RTMP port (TCP bytes_sent from
# `ss`, the same for both servers whatever syscalls they use) and CPU ticks.
sent() { ss -tinH state established "( sport = :$1 )" | grep -o 'bytes_sent:[0-9]*' | awk -F: '{s += $2} END {print s + 0}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
window=$((DURATION - RAMP - 4))
((window > 0)) || { echo "DURATION must exceed RAMP + 4" >&2; exit 1; }
egress() { # origin-port edge-pid edge-port viewer-url viewers -> "origin_mbit edge_cpu_s_per_gbit"
    "$MB" play --url "$4" --viewers "$5" --duration "$DURATION" --ramp "$RAMP" --progress 0 >"$work/play" 2>&1 &
    local p=$! o0 e0 c0 o1 e1 c1
    sleep $((RAMP + 2))
    o0=$(sent "$1"); e0=$(sent "$3"); c0=$(cpu_ticks "$2")
    sleep "$window"
    o1=$(sent "$1"); e1=$(sent "$3"); c1=$(cpu_ticks "$2")
    wait $p || cat "$work/play" >&2
    [[ -z ${BENCH_DEBUG:-} ]] || { echo "$4:" >&2; head -2 "$work/play" >&2; }
    awk -v o=$((o1 - o0)) -v e=$((e1 - e0)) -v c=$((c1 - c0)) -v d="$window" -v hz="$hz" \
        'BEGIN { printf "%8.2f %10.2f", o * 8 / d / 1e6, (e > 0 ? (c / hz) / (e * 8 / 1e9) : 0) }'
}
fp=$(publish "rtmp://$O_RTMP/live/egress" 100000)
np=$(publish "rtmp://$N_O/live/egress" 100000)
pids+=("$fp" "$np")
sleep 3
echo
echo "origin egress, Mbit/s, and edge CPU-s per Gbit delivered, over ${window} s with every viewer on"
printf '%8s | %8s %8s %10s | %8s %10s\n' viewers f-direct f-edge f-edge-cpu n-edge n-edge-cpu
IFS=, read -ra counts <<<"$VIEWERS"
for n in "${counts[@]}"; do
    read -r direct _ <<<"$(egress "${O_RTMP#*:}" $fo "${O_RTMP#*:}" "rtmp://$O_RTMP/live/egress" "$n")"
    read -r fe fcpu <<<"$(egress "${O_RTMP#*:}" $fe1 "${E1_RTMP#*:}" "rtmp://$E1_RTMP/live/egress" "$n")"
    read -r ne ncpu <<<"$(egress "${N_O#*:}" $ne1 "${N_E1#*:}" "rtmp://$N_E1/live/egress" "$n")"
    printf '%8s | %8s %8s %10s | %8s %10s\n' "$n" "$direct" "$fe" "$fcpu" "$ne" "$ncpu"
done
