// Fleetcast player: plays the live fragmented MP4 stream (/APP/NAME.mp4)
// with Media Source Extensions. The stream is an init segment (ftyp, moov)
// then fragments ([prft] moof mdat); prft holds the wall-clock time the
// server received the fragment's first frame, which gives the latency
// readout. State for tests: window.fleetcastPlayer, and a console line
// "fleetcast-player: ..." every second.
"use strict";
(function () {
  const video = document.getElementById("player");
  const readout = document.getElementById("readout");
  if (!video) return;
  const src = video.dataset.src;
  const NTP_UNIX_OFFSET = 2208988800; // seconds from 1900 to 1970
  const KEEP_BEHIND = 10; // seconds of buffer kept behind the play head
  const TRIM_AFTER = 30; // trim once this much is behind the play head
  const MAX_BEHIND = 1.5; // jump to the live edge when further behind
  const LIVE_OFFSET = 0.3; // where to jump: this far before the edge
  const CATCH_UP_OVER = 0.5; // play at 1.1x while further behind than this
  const MAX_QUEUE = 8 * 1024 * 1024; // bytes waiting to be appended

  const state = {
    currentTime: 0,
    decodedFrames: 0,
    droppedFrames: 0,
    latencyMs: null,
    codecs: null,
    errors: [],
    fragments: 0,
    bytes: 0,
    jumps: 0,
    reconnects: 0,
  };
  window.fleetcastPlayer = state;

  function fail(what) {
    const msg = String(what && what.message ? what.message : what);
    state.errors.push(msg);
    console.error("fleetcast-player error: " + msg);
  }

  function u32(b, o) {
    return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
  }
  function u64(b, o) {
    return u32(b, o) * 4294967296 + u32(b, o + 4);
  }
  function type(b, o) {
    return String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);
  }

  // Top-level boxes of `b` from `o`: [{type, start, end}]; stops at an
  // incomplete box (more bytes to come).
  function boxes(b, o, end) {
    const out = [];
    while (end - o >= 8) {
      let size = u32(b, o);
      let header = 8;
      if (size === 1) {
        if (end - o < 16) break;
        size = u64(b, o + 8);
        header = 16;
      }
      if (size < header) throw new Error("bad box size " + size + " at " + o);
      if (end - o < size) break;
      out.push({ type: type(b, o + 4), start: o, body: o + header, end: o + size });
      o += size;
    }
    return out;
  }

  function child(b, box, name) {
    return boxes(b, box.body, box.end).find(function (c) { return c.type === name; });
  }

  // Codecs and per-track timescales from moov.
  function readInit(b, moov) {
    const codecs = [];
    const timescales = {};
    for (const trak of boxes(b, moov.body, moov.end).filter(function (c) { return c.type === "trak"; })) {
      const tkhd = child(b, trak, "tkhd");
      const mdia = child(b, trak, "mdia");
      if (!tkhd || !mdia) continue;
      const trackId = u32(b, tkhd.body + (b[tkhd.body] === 1 ? 20 : 12));
      const mdhd = child(b, mdia, "mdhd");
      if (mdhd) timescales[trackId] = u32(b, mdhd.body + (b[mdhd.body] === 1 ? 20 : 12));
      const minf = child(b, mdia, "minf");
      const stbl = minf && child(b, minf, "stbl");
      const stsd = stbl && child(b, stbl, "stsd");
      if (!stsd) continue;
      // stsd: version/flags, entry count, then sample entries.
      for (const entry of boxes(b, stsd.body + 8, stsd.end)) {
        if (entry.type === "avc1" || entry.type === "avc3") {
          // Visual sample entry: 78 bytes before its child boxes.
          const avcC = boxes(b, entry.body + 78, entry.end).find(function (c) { return c.type === "avcC"; });
          if (!avcC) throw new Error("avc1 without avcC");
          const hex = function (x) { return (x < 16 ? "0" : "") + x.toString(16); };
          codecs.push(entry.type + "." + hex(b[avcC.body + 1]) + hex(b[avcC.body + 2]) + hex(b[avcC.body + 3]));
        } else if (entry.type === "mp4a") {
          codecs.push("mp4a.40.2");
        }
      }
    }
    return { codecs: codecs, timescales: timescales };
  }

  // prft: version, flags, reference track, NTP time, media time.
  function readPrft(b, box, timescales) {
    const v = b[box.body];
    const track = u32(b, box.body + 4);
    const ntpSecs = u32(b, box.body + 8);
    const ntpFrac = u32(b, box.body + 12);
    const media = v === 1 ? u64(b, box.body + 16) : u32(b, box.body + 16);
    const scale = timescales[track] || 90000;
    return {
      t: media / scale,
      wallMs: (ntpSecs - NTP_UNIX_OFFSET) * 1000 + (ntpFrac / 4294967296) * 1000,
    };
  }

  let session = 0;

  function start() {
    const my = ++session;
    const ms = new MediaSource();
    const abort = new AbortController();
    let sb = null;
    let queue = [];
    let queued = 0;
    let pending = new Uint8Array(0);
    let timescales = {};
    let refs = []; // {t, wallMs} of recent fragments, oldest first
    let initParts = [];
    let waitingFor = null;

    video.src = URL.createObjectURL(ms);

    function pump() {
      if (!sb || sb.updating || queue.length === 0 || my !== session) return;
      const total = queue.reduce(function (n, q) { return n + q.length; }, 0);
      const buf = new Uint8Array(total);
      let o = 0;
      for (const q of queue) { buf.set(q, o); o += q.length; }
      queue = [];
      queued = 0;
      try {
        sb.appendBuffer(buf);
      } catch (e) {
        if (e.name === "QuotaExceededError") {
          trim(true);
          queue = [buf];
          queued = buf.length;
        } else {
          fail(e);
        }
      }
    }

    function trim(force) {
      if (!sb || sb.updating || video.buffered.length === 0) return;
      const start = video.buffered.start(0);
      const cut = video.currentTime - KEEP_BEHIND;
      if ((force || video.currentTime - start > TRIM_AFTER) && cut > start) {
        try { sb.remove(start, cut); } catch (e) { fail(e); }
      }
    }

    function push(bytes) {
      queue.push(bytes);
      queued += bytes.length;
      if (queued > MAX_QUEUE) {
        // The decoder is not keeping up: drop what waits, catch up later.
        queue = [];
        queued = 0;
        fail("append queue over " + MAX_QUEUE + " bytes, dropped");
      }
      pump();
    }

    function onBytes(chunk) {
      const b = new Uint8Array(pending.length + chunk.length);
      b.set(pending, 0);
      b.set(chunk, pending.length);
      let used = 0;
      let frag = [];
      for (const box of boxes(b, 0, b.length)) {
        const bytes = b.subarray(box.start, box.end);
        if (box.type === "ftyp") {
          initParts = [bytes];
        } else if (box.type === "moov") {
          initParts.push(bytes);
          const info = readInit(b, box);
          timescales = info.timescales;
          const mime = 'video/mp4; codecs="' + info.codecs.join(",") + '"';
          state.codecs = mime;
          console.log("fleetcast-player: codecs " + info.codecs.join(","));
          if (!MediaSource.isTypeSupported(mime)) throw new Error("not supported here: " + mime);
          const init = new Uint8Array(initParts.reduce(function (n, p) { return n + p.length; }, 0));
          let o = 0;
          for (const p of initParts) { init.set(p, o); o += p.length; }
          if (!sb) {
            sb = ms.addSourceBuffer(mime);
            sb.mode = "segments";
            sb.addEventListener("updateend", function () { pump(); });
            sb.addEventListener("error", function () { fail("SourceBuffer error"); });
          } else if (sb.changeType) {
            sb.changeType(mime); // new codec configuration (republish)
          }
          push(init);
        } else if (box.type === "prft") {
          refs.push(readPrft(b, box, timescales));
          if (refs.length > 600) refs.splice(0, refs.length - 600);
        } else if (box.type === "moof" || box.type === "styp") {
          frag.push(bytes);
        } else if (box.type === "mdat") {
          frag.push(bytes);
          const n = frag.reduce(function (s, f) { return s + f.length; }, 0);
          const whole = new Uint8Array(n);
          let o = 0;
          for (const f of frag) { whole.set(f, o); o += f.length; }
          frag = [];
          state.fragments += 1;
          if (sb) push(whole);
        }
        used = box.end;
      }
      // An unfinished moof (its mdat still coming) is read again whole.
      if (frag.length > 0) used = frag[0].byteOffset - b.byteOffset;
      pending = b.slice(used);
    }

    ms.addEventListener("sourceopen", function () {
      URL.revokeObjectURL(video.src);
      fetch(src, { signal: abort.signal, cache: "no-store" })
        .then(function (resp) {
          if (!resp.ok) {
            return resp.text().then(function (t) {
              throw new Error("HTTP " + resp.status + ": " + t.trim());
            });
          }
          const reader = resp.body.getReader();
          function read() {
            return reader.read().then(function (r) {
              if (r.done || my !== session) return;
              state.bytes += r.value.length;
              onBytes(r.value);
              return read();
            });
          }
          return read();
        })
        .then(function () {
          if (my === session) retry("stream ended");
        })
        .catch(function (e) {
          if (my !== session) return;
          fail(e);
          retry("error");
        });
    });

    function tick() {
      if (my !== session) return;
      const b = video.buffered;
      if (b.length > 0) {
        const end = b.end(b.length - 1);
        // Start, a gap, or too far behind: go to the live edge.
        if (video.currentTime < b.start(0) || end - video.currentTime > MAX_BEHIND) {
          video.currentTime = Math.max(b.start(b.length - 1), end - LIVE_OFFSET);
          state.jumps += 1;
        }
        // A little behind: play slightly faster until near the edge again.
        const behind = end - video.currentTime;
        video.playbackRate = behind > CATCH_UP_OVER ? 1.1 : 1.0;
        if (video.paused && !waitingFor) {
          waitingFor = video.play();
          if (waitingFor) {
            waitingFor.catch(function (e) { fail(e); }).finally(function () { waitingFor = null; });
          }
        }
      }
      trim(false);
      const t = video.currentTime;
      let ref = null;
      for (let i = refs.length - 1; i >= 0; i--) {
        if (refs[i].t <= t) { ref = refs[i]; break; }
      }
      if (ref) state.latencyMs = Math.round(Date.now() - (ref.wallMs + (t - ref.t) * 1000));
      const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
      state.currentTime = t;
      state.decodedFrames = q ? q.totalVideoFrames : 0;
      state.droppedFrames = q ? q.droppedVideoFrames : 0;
      if (readout) {
        readout.textContent = "latency " + (state.latencyMs === null ? "–" : state.latencyMs + " ms") +
          " · t " + t.toFixed(2) + " s · frames " + state.decodedFrames +
          (state.errors.length ? " · " + state.errors[state.errors.length - 1] : "");
        readout.className = state.errors.length ? "readout error" : "readout";
      }
    }

    function retry(why) {
      if (my !== session) return;
      session += 1; // stops this session's callbacks
      abort.abort();
      clearInterval(timer);
      state.reconnects += 1;
      console.log("fleetcast-player: reconnecting (" + why + ")");
      setTimeout(start, 2000);
    }

    const timer = setInterval(tick, 250);
  }

  video.addEventListener("error", function () {
    fail("video element: " + (video.error ? video.error.code + " " + video.error.message : "unknown"));
  });

  setInterval(function () {
    console.log("fleetcast-player: t=" + state.currentTime.toFixed(3) +
      " frames=" + state.decodedFrames +
      " latency_ms=" + (state.latencyMs === null ? "none" : state.latencyMs) +
      " errors=" + state.errors.length +
      (state.errors.length ? " last_error=[" + state.errors[state.errors.length - 1].replace(/"/g, "'") + "]" : ""));
  }, 1000);

  start();
})();
