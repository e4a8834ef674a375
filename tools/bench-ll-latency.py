#!/usr/bin/env python3
"""Low-latency HLS against MPEG-TS HLS through one edge, on loopback.

Starts an origin and an edge (fleetcast-media from the build), publishes
ffmpeg's test pattern in real time to the origin, and for DURATION seconds
watches the edge as players would:

- LL-HLS: blocking playlist reloads of ll.m3u8 (_HLS_msn/_HLS_part of the
  next part), noting when each part appears;
- TS HLS: index.m3u8 polled every 50 ms, noting when each segment appears;
- /APP/NAME.mp4: the live fMP4 stream read as it comes, noting each fragment.

The origin's clock for a media time comes from its own /live/NAME.mp4 `prft`
boxes (the wall-clock time the origin received that frame). Availability
latency of a part/segment = when the edge listed it − when the origin received
its last frame (its end on the timeline). A player then holds back from the
live edge: PART-HOLD-BACK (3 parts) for LL-HLS, three target durations for
TS (hls.js and Safari defaults); the estimate adds that and half a step (the
playlist's end moves a part or a segment at a time). Glass-to-glass in a
browser adds decoding and rendering.

Usage: tools/bench-ll-latency.py [BINARY] [DURATION]   (prints JSON)
"""
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/fleetcast-media"
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
NTP_UNIX = 2_208_988_800


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(yaml, tmp, name):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(yaml.replace("DATA", d))
    log = open(os.path.join(d, "log"), "w")
    return subprocess.Popen([BIN, "--config", path], stdout=log, stderr=log)


def get(port, path, timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def prft_boxes(data):
    """(media_time, unix seconds) of every prft box in data."""
    out = []
    for m in re.finditer(b"prft", data):
        i = m.start() - 4
        if i < 0 or i + 32 > len(data):
            continue
        version = data[i + 8]
        ntp = struct.unpack(">Q", data[i + 16 : i + 24])[0]
        if version == 0:
            media = struct.unpack(">I", data[i + 24 : i + 28])[0]
        else:
            media = struct.unpack(">Q", data[i + 24 : i + 32])[0]
        out.append((media, (ntp >> 32) - NTP_UNIX + (ntp & 0xFFFFFFFF) / 2**32))
    return out


def read_mp4(port, path, seconds, on_chunk):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    c.request("GET", path)
    r = c.getresponse()
    end = time.time() + seconds
    while time.time() < end:
        chunk = r.read1(65536)
        if not chunk:
            break
        on_chunk(time.time(), chunk)
    c.close()


def main():
    tmp = tempfile.mkdtemp(prefix="fleetcast-ll-")
    o_rtmp, o_http, e_rtmp, e_http = (free_port() for _ in range(4))
    hls = "hls: { segment_duration_secs: 2, window: 6, ll: { part_duration_ms: 500 } }\n"
    origin = start(
        f'rtmp: {{ listen: "127.0.0.1:{o_rtmp}" }}\nhttp: {{ listen: "127.0.0.1:{o_http}" }}\n'
        f'data_dir: "DATA"\n{hls}',
        tmp,
        "origin",
    )
    edge = start(
        f'role: edge\nrtmp: {{ listen: "127.0.0.1:{e_rtmp}" }}\nhttp: {{ listen: "127.0.0.1:{e_http}" }}\n'
        f'data_dir: "DATA"\n{hls}edge:\n  upstreams: ["rtmp://127.0.0.1:{o_rtmp}", "http://127.0.0.1:{o_http}"]\n'
        f'  idle_timeout_secs: 30\n  cache: {{ dir: "DATA/cache" }}\n',
        tmp,
        "edge",
    )
    time.sleep(1.0)
    publisher = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100",
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-g", "30", "-c:a", "aac",
         "-t", str(int(DURATION + 30)), "-f", "flv", f"rtmp://127.0.0.1:{o_rtmp}/live/bench"],
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if get(e_http, "/live/bench/ll.m3u8")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        origin_clock = []  # (media ms, unix s) as the origin received the frames
        seen_parts, seen_segs, mp4_frags = {}, {}, []

        def origin_prft():
            buf = bytearray()

            def on(_t, chunk):
                buf.extend(chunk)
                for media, unix in prft_boxes(bytes(buf)):
                    origin_clock.append((media / 90.0, unix))
                del buf[: max(0, len(buf) - 64)]

            read_mp4(o_http, "/live/bench.mp4", DURATION + 5, on)

        def edge_mp4():
            buf = bytearray()

            def on(t, chunk):
                buf.extend(chunk)
                for media, _unix in prft_boxes(bytes(buf)):
                    mp4_frags.append((media / 90.0, t))
                del buf[: max(0, len(buf) - 64)]

            read_mp4(e_http, "/live/bench.mp4", DURATION, on)

        def ll():
            end = time.time() + DURATION
            q = ""
            while time.time() < end:
                st, body = get(e_http, "/live/bench/ll.m3u8" + q)
                now = time.time()
                if st != 200:
                    time.sleep(0.1)
                    q = ""
                    continue
                text = body.decode()
                msn = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
                nsegs = len([l for l in text.splitlines() if l.startswith("seg-")])
                tail = text.split("#EXTINF")[-1]
                nparts = len([l for l in tail.splitlines() if l.startswith("#EXT-X-PART:")])
                for m in re.finditer(r'#EXT-X-PART:DURATION=([\d.]+),URI="part-(\d+)\.m4s"', text):
                    start = int(m.group(2))
                    seen_parts.setdefault(start, (start + float(m.group(1)) * 1000, now))
                q = f"?_HLS_msn={msn + nsegs}&_HLS_part={nparts}"

        def ts():
            end = time.time() + DURATION
            while time.time() < end:
                st, body = get(e_http, "/live/bench/index.m3u8")
                now = time.time()
                if st == 200:
                    lines = body.decode().splitlines()
                    for i, l in enumerate(lines):
                        if l.startswith("#EXTINF:"):
                            name = lines[i + 1]
                            start = int(name[4:-3])
                            dur = float(l[8:].rstrip(","))
                            seen_segs.setdefault(start, (start + dur * 1000, now))
                time.sleep(0.05)

        threads = [threading.Thread(target=f) for f in (origin_prft, edge_mp4, ll, ts)]
        for t in threads:
            t.start()
        # Anything listed in the first second was there before we watched.
        t0 = time.time() + 1.0
        for t in threads:
            t.join()
        offsets = [unix - ms / 1000.0 for ms, unix in origin_clock]
        if not offsets:
            raise SystemExit("no prft from the origin")
        off = statistics.median(offsets)

        def lat(items):
            return [now - (off + end / 1000.0) for end, now in items if now > t0]

        parts = lat(seen_parts.values())
        segs = lat(seen_segs.values())
        frame = 1000 / 30
        mp4 = [t - (off + (ms + frame) / 1000.0) for ms, t in mp4_frags if t > t0]

        def summary(v):
            if not v:
                return None
            v = sorted(v)
            return {"n": len(v), "median_s": round(statistics.median(v), 3),
                    "p90_s": round(v[int(0.9 * (len(v) - 1))], 3)}

        ll_s, ts_s, mp4_s = summary(parts), summary(segs), summary(mp4)
        out = {
            "duration_s": DURATION,
            "ll_hls_part_availability": ll_s,
            "ts_segment_availability": ts_s,
            "live_mp4_fragment_arrival": mp4_s,
            # A player holds back from the end of the playlist, which moves
            # in steps of a part (segment): on average half a step more.
            "estimated_player_latency_s": {
                "ll_hls (PART-HOLD-BACK 1.5 s + half a 0.5 s part + availability)":
                    ll_s and round(1.5 + 0.25 + ll_s["median_s"], 2),
                "ts_hls (HOLD-BACK 3 x 2 s + half a 2 s segment + availability)":
                    ts_s and round(6.0 + 1.0 + ts_s["median_s"], 2),
            },
        }
        print(json.dumps(out, indent=2))
    finally:
        for p in (publisher, edge, origin):
            p.terminate()
        for p in (publisher, edge, origin):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
