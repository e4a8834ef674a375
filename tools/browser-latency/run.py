#!/usr/bin/env python3
"""Latency at the browser for LL-HLS, TS HLS and the built-in player, through
one edge on loopback.

Starts an origin and an edge (fleetcast-media), ffmpeg publishing a 30 fps
test pattern with a keyframe each second to the origin, a static server for
play.html (hls.js from node_modules), and headless Chromium driven over the
DevTools protocol on a pipe (as docs/img/shoot.py). Then, for ROUNDS rounds,
plays through the EDGE, each mode in a fresh tab, in the order:

  ll-hls   play.html?src=EDGE/live/NAME/ll.m3u8&ll=1   (hls.js lowLatencyMode)
  hls      play.html?src=EDGE/live/NAME/index.m3u8     (hls.js defaults)
  player   EDGE/watch/live/NAME                        (the built-in MSE player)

Each: WARMUP seconds not counted, then one sample a second for SECONDS.
Latency sample = Date.now() − wall-clock time of the frame at the play head,
as the edge stamped it (PROGRAM-DATE-TIME for HLS via hls.playingDate; the
`prft` box for the built-in player). hls.js's own `hls.latency` is recorded
beside it. The origin → edge offset (edge PROGRAM-DATE-TIME − origin's for
the same CMAF segment) is measured too, so glass to glass ≈ sample + offset.

    tools/browser-latency/run.py [--bin target/debug/fleetcast-media]
        [--rounds 3] [--warmup 10] [--seconds 30] [--json out.json]
        [--modes ll-hls,hls,player] [--part-ms 500] [--catchup RATE]
        [--write-interval-ms MS]

--part-ms sets hls.ll.part_duration_ms on both servers (through config
files); --write-interval-ms sets playback.write_interval_ms on both (the
built-in player's `.mp4` is written to it at that interval); --catchup sets hls.js's maxLiveSyncPlaybackRate (default 1: hls.js
keeps whatever latency a session starts at).

Needs `npm ci` in tools/browser-latency first (hls.js, pinned).
"""
import argparse
import functools
import http.client
import http.server
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
# Own loopback addresses so the standard ports (and the origin's admin port
# 8081, which edges ask for /api/streams) collide with nothing else.
ORIGIN_IP, EDGE_IP = "127.0.0.61", "127.0.0.62"
STREAM = "live/cam"


class Chromium:
    """Headless Chromium over --remote-debugging-pipe (NUL-separated JSON on fds 3/4)."""

    def __init__(self, log):
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()

        def fds():
            r, w = os.dup(to_r), os.dup(from_w)
            r, w = os.dup(r) if r <= 4 else r, os.dup(w) if w <= 4 else w
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.profile = tempfile.mkdtemp(prefix="fleetcast-lat-chromium-")
        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--mute-audio", "--autoplay-policy=no-user-gesture-required",
             "--window-size=1280,720", f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True)
        os.close(to_r)
        os.close(from_w)
        self.out = os.fdopen(to_w, "wb", buffering=0)
        self.inp = os.fdopen(from_r, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
            chunk = self.inp.read(1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        raise RuntimeError(f"{method}: no answer in {timeout} s")

    def close(self):
        # Each process of Chromium's session by its own id (never a negative
        # id: some kill(1) forms turn that into kill(-1)).
        pids = [self.proc.pid]
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if os.getpgid(int(p)) == self.proc.pid:
                        pids.append(int(p))
                except OSError:
                    pass
        for p in set(pids):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait(timeout=10)
        subprocess.run(["rm", "-rf", self.profile], check=False)


def get(host, port, path, timeout=10):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_until(what, fn, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if fn():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


NTP_UNIX = 2_208_988_800


def prft_boxes(data):
    """(media time in ms, unix seconds) of every `prft` box in data (90 kHz video)."""
    out = []
    for m in re.finditer(b"prft", data):
        i = m.start() - 4
        if i < 0 or i + 32 > len(data):
            continue
        ntp = struct.unpack(">Q", data[i + 16 : i + 24])[0]
        if data[i + 8] == 0:
            media = struct.unpack(">I", data[i + 24 : i + 28])[0]
        else:
            media = struct.unpack(">Q", data[i + 24 : i + 32])[0]
        out.append((media / 90.0, (ntp >> 32) - NTP_UNIX + (ntp & 0xFFFFFFFF) / 2**32))
    return out


def mp4_clock(host, seconds, out):
    """Median of (receive time − media time) over a server's live .mp4 `prft`s,
    skipping the first second (the GOP cache arrives in a burst, stamped late)."""
    c = http.client.HTTPConnection(host, 8080, timeout=10)
    try:
        c.request("GET", f"/{STREAM}.mp4")
        r = c.getresponse()
        buf, t0, end = bytearray(), time.time(), time.time() + seconds
        keep_from = 0
        while time.time() < end:
            chunk = r.read1(65536)
            if not chunk:
                break
            if time.time() - t0 < 1.0:
                keep_from = len(buf) + len(chunk)
            buf += chunk
        offs = [unix - ms / 1000.0 for ms, unix in prft_boxes(bytes(buf[keep_from:]))]
        out[host] = statistics.median(offs) if offs else None
    finally:
        c.close()


def pdt_errors(playlist, clock):
    """PROGRAM-DATE-TIME − the origin's receive time of that segment's first
    frame (origin .mp4 clock + the segment's timeline ms in its name)."""
    errs, pdt = [], None
    for line in playlist.decode().splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
        elif line and not line.startswith("#"):
            m = re.match(r"seg-(\d+)\.(ts|m4s)", line)
            if m and pdt is not None:
                errs.append(pdt - (clock + int(m.group(1)) / 1000.0))
            pdt = None
    return errs


def clock_check():
    """How far each server's wall-clock stamps are from the origin's receive
    time: PDT errors of both playlists on both servers, and the edge's .mp4
    clock against the origin's (the origin → edge hop)."""
    clocks = {}
    ts = [threading.Thread(target=mp4_clock, args=(h, 4.0, clocks)) for h in (ORIGIN_IP, EDGE_IP)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=20)
    co, ce = clocks.get(ORIGIN_IP), clocks.get(EDGE_IP)
    out = {"edge_mp4_hop": [ce - co] if co is not None and ce is not None else []}
    for host, who in ((ORIGIN_IP, "origin"), (EDGE_IP, "edge")):
        for pl, kind in (("ll.m3u8", "ll"), ("index.m3u8", "ts")):
            errs = []
            if co is not None:
                status, body = get(host, 8080, f"/{STREAM}/{pl}")
                if status == 200:
                    errs = pdt_errors(body, co)
            out[f"{who}_{kind}_pdt"] = errs
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def play(chrome, url, key, warmup, seconds):
    target = chrome.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    samples, last = [], None
    try:
        chrome.call("Page.navigate", {"url": url}, session)
        time.sleep(warmup)
        t0 = time.time()
        for i in range(int(seconds)):
            time.sleep(max(0.0, t0 + i + 1 - time.time()))
            r = chrome.call("Runtime.evaluate", {
                "expression": f"JSON.stringify(window.{key} || null)", "returnByValue": True}, session)
            last = json.loads(r.get("result", {}).get("value") or "null")
            if last and last.get("latencyMs") is not None:
                samples.append({"latency_ms": last["latencyMs"],
                                "hls_latency_ms": last.get("hlsLatencyMs"),
                                "hls_target_latency_ms": last.get("targetLatencyMs"),
                                "frames": last.get("decodedFrames")})
        offsets = clock_check()
    finally:
        chrome.call("Target.closeTarget", {"targetId": target})
    return samples, last, offsets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/fleetcast-media")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--json")
    ap.add_argument("--modes", default="ll-hls,hls,player", help="which modes, in this order each round")
    ap.add_argument("--catchup", type=float,
                    help="hls.js maxLiveSyncPlaybackRate (default: hls.js's 1, no catching up)")
    ap.add_argument("--part-ms", type=int,
                    help="hls.ll.part_duration_ms on both servers (through config files; default: the servers' 500)")
    ap.add_argument("--write-interval-ms", type=int,
                    help="playback.write_interval_ms on both servers (through config files; default: the servers' 200)")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    if not os.path.isfile(os.path.join(HERE, "node_modules/hls.js/dist/hls.min.js")):
        sys.exit("hls.js missing: run `npm ci` in tools/browser-latency")

    tmp = tempfile.mkdtemp(prefix="fleetcast-lat-")
    log = open(os.path.join(tmp, "log"), "w")
    procs = []
    chrome = None
    httpd = None
    try:
        if a.part_ms is None and a.write_interval_ms is None:
            origin_cmd = [a.bin, "origin", "--rtmp", f"{ORIGIN_IP}:1935", "--http", f"{ORIGIN_IP}:8080",
                          "--admin", f"{ORIGIN_IP}:8081", "--data", os.path.join(tmp, "odata")]
            edge_cmd = [a.bin, "edge", "--rtmp", f"{EDGE_IP}:1935", "--http", f"{EDGE_IP}:8080",
                        "--admin", f"{EDGE_IP}:8081",
                        "--upstream", f"rtmp://{ORIGIN_IP}:1935,http://{ORIGIN_IP}:8080",
                        "--cache-dir", os.path.join(tmp, "ecache")]
        else:
            def config(name, ip, extra):
                path = os.path.join(tmp, f"{name}.yaml")
                with open(path, "w") as f:
                    f.write(f'rtmp: {{ listen: "{ip}:1935" }}\nhttp: {{ listen: "{ip}:8080" }}\n'
                            f'admin: {{ listen: "{ip}:8081" }}\ndata_dir: "{tmp}/{name}-data"\n'
                            + (f'hls: {{ ll: {{ part_duration_ms: {a.part_ms} }} }}\n' if a.part_ms else '')
                            + (f'playback: {{ write_interval_ms: {a.write_interval_ms} }}\n'
                               if a.write_interval_ms is not None else '')
                            + extra)
                return [a.bin, "--config", path]
            origin_cmd = config("origin", ORIGIN_IP, "")
            edge_cmd = config("edge", EDGE_IP,
                              f'role: edge\nedge:\n  upstreams: ["rtmp://{ORIGIN_IP}:1935", '
                              f'"http://{ORIGIN_IP}:8080"]\n  cache: {{ dir: "{tmp}/ecache" }}\n')
        procs.append(subprocess.Popen(origin_cmd, stdout=log, stderr=log, cwd=tmp))
        procs.append(subprocess.Popen(edge_cmd, stdout=log, stderr=log, cwd=tmp))
        wait_until("origin and edge HTTP", lambda: get(ORIGIN_IP, 8080, "/")[0] == 200
                   and get(EDGE_IP, 8080, "/")[0] == 200, 30)
        procs.append(subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100",
             "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
             "-tune", "zerolatency", "-g", "30", "-c:a", "aac",
             "-f", "flv", f"rtmp://{ORIGIN_IP}:1935/{STREAM}"],
            stdout=log, stderr=log))
        wait_until("the origin's ll.m3u8", lambda: get(ORIGIN_IP, 8080, f"/{STREAM}/ll.m3u8")[0] == 200, 30)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *_):
                pass

        handler = functools.partial(Quiet, directory=HERE)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        page = f"http://127.0.0.1:{httpd.server_address[1]}/play.html"
        edge = f"http://{EDGE_IP}:8080"

        modes = [
            ("ll-hls", f"{page}?ll=1&src={edge}/{STREAM}/ll.m3u8", "latencyState"),
            ("hls", f"{page}?src={edge}/{STREAM}/index.m3u8", "latencyState"),
            ("player", f"{edge}/watch/{STREAM}", "fleetcastPlayer"),
        ]
        rate = f"&rate={a.catchup}" if a.catchup else ""
        modes = [(m, u + rate if m != "player" else u, k) for m, u, k in modes
                 if m in a.modes.split(",")]
        chrome = Chromium(log)
        results = {m: {"samples": [], "runs": []} for m, _, _ in modes}
        checks = {}
        # Which clock check corrects each mode's edge-stamped latency to the origin's clock.
        correction_key = {"ll-hls": "edge_ll_pdt", "hls": "edge_ts_pdt", "player": "edge_mp4_hop"}
        for rnd in range(a.rounds):
            for mode, url, key in modes:
                samples, last, check = play(chrome, url, key, a.warmup, a.seconds)
                for k, v in check.items():
                    checks.setdefault(k, []).extend(v)
                corr = check.get(correction_key[mode]) or []
                corr_ms = statistics.median(corr) * 1000 if corr else None
                for smp in samples:
                    smp["vs_origin_ms"] = smp["latency_ms"] + corr_ms if corr_ms is not None else None
                lat = [smp["latency_ms"] for smp in samples]
                run = {"round": rnd + 1, "n": len(lat),
                       "median_ms": statistics.median(lat) if lat else None,
                       "correction_ms": corr_ms,
                       "errors": (last or {}).get("errors"), "frames": (last or {}).get("decodedFrames"),
                       "dropped": (last or {}).get("droppedFrames")}
                results[mode]["samples"] += samples
                results[mode]["runs"].append(run)
                print(f"round {rnd + 1} {mode:6}: n={run['n']} median={run['median_ms']} ms (edge clock)"
                      f" correction={corr_ms and round(corr_ms)} ms frames={run['frames']}"
                      f" dropped={run['dropped']} errors={run['errors']}", flush=True)

        def stats(v):
            return {"n": len(v), "median": statistics.median(v), "p90": pct(v, 90),
                    "min": min(v), "max": max(v)} if v else None

        summary = {"clock_checks_ms": {k: stats([x * 1000 for x in v]) for k, v in checks.items()}}
        for mode, _, _ in modes:
            smp = results[mode]["samples"]
            summary[mode] = {
                "edge_clock": stats([x["latency_ms"] for x in smp]),
                "origin_clock": stats([x["vs_origin_ms"] for x in smp if x["vs_origin_ms"] is not None]),
                "hls_js_latency": stats([x["hls_latency_ms"] for x in smp if x.get("hls_latency_ms") is not None]),
            }
        ts_med = ((summary.get("hls") or {}).get("origin_clock") or {}).get("median")
        print("\nlatency (ms): now - when the ORIGIN received the frame on screen (edge-stamped + correction)")
        print("mode        n  median    p90    min    max   edge-clock median  hls.latency median  vs TS HLS")
        for mode, _, _ in modes:
            o, e, h = summary[mode]["origin_clock"], summary[mode]["edge_clock"], summary[mode]["hls_js_latency"]
            if not o:
                print(f"{mode:8} no samples")
                continue
            ratio = o["median"] / ts_med if ts_med else float("nan")
            summary[mode]["ratio_vs_hls"] = ratio
            print(f"{mode:8} {o['n']:4} {o['median']:7.0f} {o['p90']:6.0f} {o['min']:6.0f} {o['max']:6.0f}"
                  f"   {e['median']:17.0f}  {h['median'] if h else '-':>18}  {ratio:9.2f}")
        print("\nclock checks (ms): PDT - origin receive time of the segment's first frame; edge .mp4 hop")
        for k, v in summary["clock_checks_ms"].items():
            if v:
                print(f"  {k:14} n={v['n']:3} median={v['median']:7.0f} p90={v['p90']:7.0f}"
                      f" min={v['min']:7.0f} max={v['max']:7.0f}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"summary": summary, "results": results}, f, indent=1)
    finally:
        if chrome:
            chrome.close()
        if httpd:
            httpd.shutdown()
        for p in reversed(procs):
            p.kill()
            p.wait(timeout=10)
        log.close()
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    sys.exit(main())
