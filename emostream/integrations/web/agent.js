// The emostream agent page: one WebRTC connection to the bot (Pipecat SmallWebRTC), receive-only
// audio + video; lines typed here go to POST /api/say, the Interrupt button to /api/interrupt.
// `window.emostream` exposes the state and a per-frame hook (onFrame) that the browser tests use;
// `?say=TEXT&sayAfter=S` types and sends a line S seconds after connecting (tests, demos).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    video: $("avatar"), text: $("text"), say: $("say"), interrupt: $("interrupt"),
    connect: $("connect"), emotion: $("emotion"), status: $("status"), fps: $("fps"), frames: $("frames"),
    form: $("say-form"),
  };
  let readyResolve;
  const api = {
    ready: new Promise((r) => { readyResolve = r; }),
    state: "idle", error: null, pc: null, id: null, frames: 0, fps: null, frameClock: null,
    onFrame: null, lastStats: null, rttMs: null, frameLatencyMs: null, events: [], lipSync: null,
  };
  window.emostream = api;

  function setStatus(text, isError = false) {
    els.status.textContent = text;
    if (isError) api.error = text;
  }

  function setEnabled(on) {
    for (const el of [els.text, els.say, els.interrupt, els.emotion]) el.disabled = !on;
    els.connect.textContent = on ? "Disconnect" : "Connect";
  }

  async function post(path, body) {
    const r = await fetch(path, { method: "POST", body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  }

  function waitIceGathering(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", check);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", check);
      setTimeout(resolve, 2000);
    });
  }

  // Presented frames: fps over the last second, and the test hook.
  const times = [];
  function frameLoop() {
    const cb = (now, meta) => {
      api.frames += 1;
      times.push(now);
      while (times.length && now - times[0] > 1000) times.shift();
      api.fps = times.length;
      els.fps.textContent = String(api.fps);
      els.frames.textContent = String(api.frames);
      if (api.onFrame) api.onFrame(now, meta, els.video);
      els.video.requestVideoFrameCallback(cb);
    };
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      api.frameClock = "requestVideoFrameCallback";
      els.video.requestVideoFrameCallback(cb);
    }
  }

  // Lip sync. A receiver lines the two streams up on the sender's clocks (RTCP); Chromium's own
  // sync closes half the gap every few seconds and stops inside 30 ms, and its sound path (jitter
  // buffer + device) starts 40-80 ms longer than the video's: left alone, speech played 15-25 ms
  // behind the lips for good, and up to 100 ms behind for the first ~15 s. The page holds them
  // together itself: once a second it reads, from one getStats call, the sender-clock time each
  // stream is playing now (estimatedPlayoutTimestamp), and moves a bias by half their gap. A
  // positive bias delays the video, a negative one the sound: that stream's jitterBufferTarget is
  // set to its own least delay (jitterBufferMinimumDelay, over the last tick) plus the bias, so
  // the target always bites and the bias never winds up. The gap is within 5 ms after ~4 s.
  // `api.lipSync` keeps the readings (gap, bias, each jitter buffer's target; the last 120).
  // A step is at most `stepMs`: a gap that is still changing (a sound device that starts with a
  // deep buffer and drains it) must not throw the bias far past where it will settle.
  const SYNC = { tickMs: 1000, gain: 0.5, deadMs: 5, stepMs: 40, maxMs: 400, keep: 120 };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

  async function inboundStats(pc) {
    const out = {};
    (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") out[s.kind] = s; });
    return out;
  }

  // Mean of a getStats sum per count between two readings, in ms; null without new counts.
  function perCountMs(now, before, kind, key, count) {
    const b = now[kind], a = before[kind];
    if (!b || !a || b[key] === undefined || !(b[count] > a[count])) return null;
    return (1000 * (b[key] - a[key])) / (b[count] - a[count]);
  }

  async function holdLipSync(pc) {
    const receiver = (kind) => pc.getReceivers().find((r) => r.track && r.track.kind === kind);
    const video = receiver("video"), audio = receiver("audio");
    if (!video || !audio || !("jitterBufferTarget" in video)) return;
    const sync = { biasMs: 0, readings: [] };
    api.lipSync = sync;
    let before = await inboundStats(pc);
    while (pc === api.pc && pc.connectionState === "connected") {
      await sleep(SYNC.tickMs);
      const now = await inboundStats(pc);
      const per = (kind, key) => perCountMs(now, before, kind, key, "jitterBufferEmittedCount");
      const videoLeast = per("video", "jitterBufferMinimumDelay"), audioLeast = per("audio", "jitterBufferMinimumDelay");
      const buffersMs = { audio: per("audio", "jitterBufferTargetDelay"), video: per("video", "jitterBufferTargetDelay") };
      before = now;
      const a = now.audio && now.audio.estimatedPlayoutTimestamp;
      const v = now.video && now.video.estimatedPlayoutTimestamp;
      if (!a || !v || videoLeast === null || audioLeast === null || pc !== api.pc) continue;
      const skewMs = a - v; // < 0: the sound plays older content than the picture (it is late)
      const stepMs = Math.abs(skewMs) > SYNC.deadMs ? clamp(-SYNC.gain * skewMs, -SYNC.stepMs, SYNC.stepMs) : 0;
      sync.biasMs = clamp(sync.biasMs + stepMs, -SYNC.maxMs, SYNC.maxMs);
      video.jitterBufferTarget = sync.biasMs > 0 ? Math.round(videoLeast + sync.biasMs) : null;
      audio.jitterBufferTarget = sync.biasMs < 0 ? Math.round(audioLeast - sync.biasMs) : null;
      sync.readings.push({ t: performance.now(), skewMs, biasMs: sync.biasMs, buffersMs });
      if (sync.readings.length > SYNC.keep) sync.readings.shift();
    }
  }

  async function start() {
    if (api.pc) return;
    api.error = null;
    api.state = "starting";
    setStatus("Connecting…");
    const pc = new RTCPeerConnection({ iceServers: [] });
    api.pc = pc;
    // Pipecat's SmallWebRTC expects audio first, then video (the transceivers' order).
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (ev) => {
      stream.addTrack(ev.track);
      els.video.srcObject = stream;
    };
    pc.onconnectionstatechange = () => {
      if (pc !== api.pc) return;
      if (pc.connectionState === "connected") {
        api.state = "connected";
        holdLipSync(pc).catch(() => {});
        setEnabled(true);
        setStatus("Connected: type a line and press Say.");
      } else if (pc.connectionState === "failed") {
        stop("error");
        setStatus("The connection failed.", true);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc);
    const resp = await fetch("/api/offer", {
      method: "POST", body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    if (!resp.ok) {
      const text = await resp.text();
      api.state = resp.status === 503 ? "busy" : "error";
      stop(api.state);
      setStatus(text, true);
      return;
    }
    const answer = await resp.json();
    api.id = answer.pc_id;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  }

  function stop(state = "idle") {
    const pc = api.pc;
    api.pc = null;
    if (pc) pc.close();
    setEnabled(false);
    api.state = state;
    if (state === "idle") setStatus("Disconnected.");
  }

  async function say(text) {
    if (!api.id || !text) return;
    api.events.push({ what: "say", t: performance.now(), text });
    setStatus(`Saying: “${text}”`);
    try { await post("/api/say", { pc_id: api.id, text }); } catch (e) { setStatus(String(e), true); }
  }

  async function interrupt() {
    if (!api.id) return;
    api.events.push({ what: "interrupt", t: performance.now() });
    setStatus("Interrupted.");
    try { await post("/api/interrupt", { pc_id: api.id }); } catch (e) { setStatus(String(e), true); }
  }

  els.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = els.text.value.trim();
    els.text.value = "";
    say(text);
  });
  els.interrupt.addEventListener("click", interrupt);
  els.connect.addEventListener("click", () => (api.pc ? stop() : start().catch((e) => setStatus(String(e), true))));
  els.emotion.addEventListener("change", () => {
    if (api.id) post("/api/emotion", { pc_id: api.id, emotion: els.emotion.value, intensity: 1.0 }).catch((e) => setStatus(String(e), true));
  });

  // Leaving or reloading the page closes the connection now (the bot ends at once and frees its
  // slot), instead of the server noticing a vanished peer ~30 s later.
  window.addEventListener("pagehide", () => { if (api.pc) stop(); });

  api.start = start;
  api.stop = stop;
  api.say = say;
  api.interrupt = interrupt;

  (async () => {
    const cfg = await (await fetch("/api/config")).json();
    for (const name of cfg.emotions) {
      const o = document.createElement("option");
      o.value = name; o.textContent = name; o.selected = name === cfg.emotion;
      els.emotion.appendChild(o);
    }
    frameLoop();
    readyResolve();
    // Demo / test automation from the query string: type and send a line, press Interrupt.
    const q = new URLSearchParams(location.search);
    if (q.has("say")) {
      while (api.state !== "connected") await sleep(50);
      await sleep(1000 * Number(q.get("sayAfter") || 1));
      els.text.value = q.get("say");
      els.say.click();
      if (q.has("interruptAfter")) {
        await sleep(1000 * Number(q.get("interruptAfter")));
        els.interrupt.click();
      }
    }
  })();
})();
