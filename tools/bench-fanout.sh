#!/usr/bin/env bash
# Side-by-side live fan-out benchmark: the Fleetcast origin against nginx with
# Debian's RTMP module, in one run, on loopback. Both servers get the same
# ffmpeg publisher and the same media-bench viewers, A B A B over rounds;
# media-bench prints medians and ratios (Fleetcast / nginx). See
# docs/benchmarks.md for what each column means.
#
# Environment (defaults in brackets):
#   VIEWERS   viewer counts, comma separated      [200,500,1000]
#   ROUNDS    rounds per viewer count             [3]
#   DURATION  seconds per viewer run              [20]
#   RAMP      seconds over which viewers connect  [5]
#   SETTLE    seconds of publishing before viewers [24]
#             (Fleetcast keeps each live stream's HLS and LL-HLS segments
#             from its start: the 6-segment window, 3 more for players
#             still fetching and the open one, 2 s each, fill in about
#             20 s; their memory is the stream's, so the "publisher alone"
#             RSS is read after they are full)
#   BUILD     which Fleetcast binary              [musl]
#             musl: the static release binary the images ship
#             (x86_64-unknown-linux-musl); native: the host's glibc build,
#             whose allocator raises its mmap threshold as buffers are
#             freed and so keeps growing a stream's RSS for about 70 s
#   PEERS     what to measure                     [nginx-rtmp,fleetcast-rtmp]
#             (also: fleetcast-flv for HTTP-FLV viewers of the origin)
#   JSON      where to write every run as JSON    [target/bench-fanout.json]
# Extra arguments go to `media-bench compare`.
set -euo pipefail
cd "$(dirname "$0")/.."

VIEWERS=${VIEWERS:-200,500,1000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
RAMP=${RAMP:-5}
SETTLE=${SETTLE:-24}
BUILD=${BUILD:-musl}
PEERS=${PEERS:-nginx-rtmp,fleetcast-rtmp}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
JSON=${JSON:-$TARGET_DIR/bench-fanout.json}

# The peer and the publisher come from Debian.
missing=()
command -v nginx >/dev/null || missing+=(nginx)
[[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || missing+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi

# The stream: 60 s of H.264 (testsrc2 640x360, 30 fps, 1 Mbit/s CBR-ish,
# GOP 2 s) + AAC 96 kbit/s sine, about 1.1 Mbit/s; made once and cached.
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

cargo build --release -p fleetcast-media-bench >&2
case $BUILD in
musl)
    target=x86_64-unknown-linux-musl
    if [[ $PEERS == *fleetcast* ]]; then
        rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >&2
        command -v musl-gcc >/dev/null || { echo "musl-gcc is needed (Debian: musl-tools; make deps installs it)" >&2; exit 1; }
        cargo build --release --locked --target "$target" -p fleetcast-media >&2
    fi
    fleetcast=$TARGET_DIR/$target/release/fleetcast-media
    ;;
native)
    [[ $PEERS == *fleetcast* ]] && cargo build --release -p fleetcast-media >&2
    fleetcast=$TARGET_DIR/release/fleetcast-media
    ;;
*) echo "BUILD must be musl or native, not $BUILD" >&2; exit 2 ;;
esac

# 1,000 viewers need 1,000 sockets here and 2,000 in nginx.
ulimit -n "$(ulimit -Hn)"

echo "$(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), fleetcast-media $BUILD, nginx $(nginx -v 2>&1 | cut -d/ -f2), $(dpkg-query -W -f='libnginx-mod-rtmp ${Version}' libnginx-mod-rtmp 2>/dev/null)" >&2
exec "$TARGET_DIR/release/media-bench" compare \
    --file "$file" \
    --nginx-conf tools/peer/nginx-rtmp.conf \
    --fleetcast "$fleetcast" \
    --peers "$PEERS" --viewers "$VIEWERS" --rounds "$ROUNDS" \
    --duration "$DURATION" --ramp "$RAMP" --settle "$SETTLE" \
    --json "$JSON" "$@"
