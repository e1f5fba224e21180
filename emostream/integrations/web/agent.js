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
    onFrame: null, lastStats: null, rttMs: null, frameLatencyMs: null, events: [],
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

  // The browser's lip sync starts from each stream's own delay -- in Chromium the sound's jitter
  // buffer and device add 40-80 ms more than the video's path -- and closes the gap by half of
  // it every few seconds, down to 30 ms: the first ~15 s of speech played that much behind the
  // lips. Two seconds after connecting, the gap is measured (getStats, over one second) and the
  // video's jitter buffer target set to it, so the sync starts near zero.
  async function seedLipSync(pc) {
    const receivers = pc.getReceivers();
    const video = receivers.find((r) => r.track && r.track.kind === "video");
    if (!video || !("jitterBufferTarget" in video)) return;
    const sample = async () => {
      const out = {};
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp") out[s.kind] = s;
        if (s.type === "media-playout") out.playout = s;
      });
      return out;
    };
    const per = (b, a, s, key, count) =>
      b[s] && a[s] && b[s][count] > a[s][count] ? (b[s][key] - a[s][key]) / (b[s][count] - a[s][count]) : null;
    await new Promise((r) => setTimeout(r, 1000));
    const a = await sample();
    await new Promise((r) => setTimeout(r, 1000));
    const b = await sample();
    if (pc !== api.pc) return;
    // The buffers' targets (where they settle), not their delays now: the sound's buffer starts
    // well above its target and drains over seconds.
    const audioBuffer = per(b, a, "audio", "jitterBufferTargetDelay", "jitterBufferEmittedCount");
    const device = b.playout && a.playout ? per(b, a, "playout", "totalPlayoutDelay", "totalSamplesCount") : 0;
    const videoBuffer = per(b, a, "video", "jitterBufferTargetDelay", "jitterBufferEmittedCount");
    const decode = per(b, a, "video", "totalDecodeTime", "framesDecoded") || 0;
    if (audioBuffer === null || videoBuffer === null) return;
    const gapMs = 1000 * (audioBuffer + (device || 0) - videoBuffer - decode);
    api.lipSyncSeedMs = Math.round(gapMs);
    if (gapMs > 0) video.jitterBufferTarget = Math.min(gapMs, 500);
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
        seedLipSync(pc).catch(() => {});
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
      while (api.state !== "connected") await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1000 * Number(q.get("sayAfter") || 1)));
      els.text.value = q.get("say");
      els.say.click();
      if (q.has("interruptAfter")) {
        await new Promise((r) => setTimeout(r, 1000 * Number(q.get("interruptAfter"))));
        els.interrupt.click();
      }
    }
  })();
})();
