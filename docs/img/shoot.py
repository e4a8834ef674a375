#!/usr/bin/env python3
"""Screenshot of a page after it has run for a while, with headless Chromium
driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages separated by NUL on file descriptors 3 and 4; no websocket, no
packages). `chromium --screenshot` shoots at the load event, before a live
player has shown a picture; this waits first.

    docs/img/shoot.py URL OUT.png [--wait SECS] [--size 1280,720]

Prints the page's window.fleetcastPlayer (if any) at the moment of the shot.
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--wait", type=float, default=6.0)
    ap.add_argument("--size", default="1280,720")
    a = ap.parse_args()

    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def fds():
        # Copies above 4 first: pipe() may have handed out 3 or 4 itself
        # (close-on-exec), and dup2 onto the same number changes nothing.
        r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)
        r, w = os.dup(r) if r <= 4 else r, os.dup(w) if w <= 4 else w
        os.dup2(r, 3)
        os.dup2(w, 4)

    profile = tempfile.mkdtemp(prefix="fleetcast-shoot-")
    proc = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--mute-audio", "--hide-scrollbars", "--autoplay-policy=no-user-gesture-required",
         f"--window-size={a.size}", f"--user-data-dir={profile}",
         "--remote-debugging-pipe", "about:blank"],
        preexec_fn=fds, close_fds=False,
        stdout=subprocess.DEVNULL, stderr=open(os.environ.get("SHOOT_LOG", os.devnull), "w"), start_new_session=True)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    out = os.fdopen(to_chrome_w, "wb", buffering=0)
    inp = os.fdopen(from_chrome_r, "rb", buffering=0)
    buf = b""
    next_id = [0]

    def call(method, params=None, session=None):
        nonlocal buf
        next_id[0] += 1
        msg = {"id": next_id[0], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.time() + 30
        while time.time() < deadline:
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == next_id[0]:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
            chunk = inp.read(1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            buf += chunk
        raise RuntimeError(f"{method}: no answer")

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        w, h = (int(x) for x in a.size.split(","))
        call("Emulation.setDeviceMetricsOverride",
             {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False}, session)
        call("Page.navigate", {"url": a.url}, session)
        time.sleep(a.wait)
        state = call("Runtime.evaluate", {
            "expression": "JSON.stringify(window.fleetcastPlayer || null)",
            "returnByValue": True}, session)
        shot = call("Page.captureScreenshot", {"format": "png"}, session)
        with open(a.out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(state.get("result", {}).get("value"))
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        subprocess.run(["rm", "-rf", profile], check=False)


if __name__ == "__main__":
    sys.exit(main())
