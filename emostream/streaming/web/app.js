// emostream page: start/stop, microphone, the avatar's video + audio, emotion, portrait,
// reference style, live stats. No dependencies. window.emostream exposes the state and hooks
// (onFrame, onStats) that the browser tests use.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    video: $("avatar"), start: $("start"), stop: $("stop"), status: $("status"),
    emotions: $("emotions"), intensity: $("intensity"), intensityOut: $("intensity-out"),
    portrait: $("portrait"), style: $("style"), placeholder: $("placeholder"),
    fps: $("st-fps"), rtt: $("st-rtt"), frame: $("st-frame"), a2f: $("st-a2f"), mic: $("st-mic"),
  };
  const api = {
    pc: null, channel: null, mic: null, id: null, config: null, portrait: null,
    emotion: "neutral", lastStats: null, rttMs: null, frameLatencyMs: null,
    frames: 0, fps: null, frameClock: null, onFrame: null, onStats: null, error: null, state: "idle",
    start, stop, setEmotion, send,
  };
  window.emostream = api;

  // A server started with --token: open the page as http://HOST:PORT/#token=TOKEN. The fragment
  // never leaves the browser; the token goes only into the Authorization header.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  function authHeaders(headers = {}) {
    return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
  }

  function setStatus(text, isError = false) {
    els.status.textContent = text;
    els.status.classList.toggle("error", isError);
    if (isError) api.error = text;
  }

  async function loadConfig() {
    const r = await fetch("/config");
    api.config = await r.json();
    for (const name of api.config.emotions) {
      const b = document.createElement("button");
      b.textContent = name;
      b.dataset.emotion = name;
      b.addEventListener("click", () => setEmotion(name));
      els.emotions.appendChild(b);
    }
    markEmotion();
  }

  function markEmotion() {
    for (const b of els.emotions.children) b.classList.toggle("active", b.dataset.emotion === api.emotion);
  }

  function send(msg) {
    if (api.channel && api.channel.readyState === "open") api.channel.send(JSON.stringify(msg));
  }

  function setEmotion(name) {
    api.emotion = name;
    markEmotion();
    send({ type: "emotion", name, intensity: Number(els.intensity.value) });
  }

  async function getMic() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus("No microphone API here (page must be served from localhost or https); video only.");
      return null;
    }
    try {
      return await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
        video: false,
      });
    } catch (e) {
      const why = e && e.name === "NotAllowedError" ? "microphone permission denied"
        : e && e.name === "NotFoundError" ? "no microphone found" : `microphone unavailable (${e && e.name})`;
      setStatus(`${why}: the avatar stays idle (no speech).`);
      return null;
    }
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
      setTimeout(resolve, 3000); // no trickle: send what we have after 3 s
    });
  }

  async function start() {
    if (api.pc) return;
    api.error = null;
    api.state = "starting";
    els.start.disabled = true;
    els.stop.disabled = false;
    setStatus("Starting…");
    api.mic = await getMic();
    const pc = new RTCPeerConnection({ iceServers: (api.config && api.config.iceServers) || [] });
    api.pc = pc;
    if (api.mic) {
      pc.addTransceiver(api.mic.getAudioTracks()[0], { direction: "sendrecv" });
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.addTransceiver("video", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (ev) => {
      stream.addTrack(ev.track);
      els.video.srcObject = stream;
      els.video.play().catch(() => setStatus("Click the video to play with sound."));
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== api.pc) return;
      if (pc.connectionState === "connected") {
        api.state = "connected";
        setStatus(api.mic ? "Connected: speak." : "Connected (no microphone).");
        els.placeholder.classList.add("hidden");
      } else if (pc.connectionState === "failed") {
        setStatus("Connection failed (ICE). If the server is remote, configure --ice-server.", true);
        stop();
      }
    });
    const ch = pc.createDataChannel("control");
    api.channel = ch;
    ch.addEventListener("open", () => {
      setEmotion(api.emotion);
      api.pingTimer = setInterval(() => send({ type: "ping", t: performance.now() }), 1000);
    });
    ch.addEventListener("message", (ev) => onMessage(JSON.parse(ev.data)));

    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc);
    let resp;
    try {
      resp = await fetch("/offer", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json" }),
        body: JSON.stringify({
          sdp: pc.localDescription.sdp, type: pc.localDescription.type,
          emotion: api.emotion, intensity: Number(els.intensity.value),
          portrait: api.portrait,
        }),
      });
    } catch (e) {
      setStatus(`Cannot reach the server: ${e}`, true);
      stop();
      return;
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const msg = resp.status === 503 ? (body.error || "Server busy: no free avatar session; try again later.")
        : (body.error || `HTTP ${resp.status}`);
      setStatus(msg, true);
      api.state = resp.status === 503 ? "busy" : "error";
      stop(api.state);
      return;
    }
    api.id = body.id;
    await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
    startFrameClock();
  }

  function stop(state = "idle") {
    const pc = api.pc;
    api.pc = null;
    clearInterval(api.pingTimer);
    if (api.channel) api.channel.close();
    api.channel = null;
    if (pc) pc.close();
    if (api.mic) api.mic.getTracks().forEach((t) => t.stop());
    api.mic = null;
    els.video.srcObject = null;
    els.placeholder.classList.remove("hidden");
    els.start.disabled = false;
    els.stop.disabled = true;
    if (state === "idle") { api.state = "idle"; if (!api.error) setStatus("Stopped."); }
  }

  function onMessage(msg) {
    if (msg.type === "pong") {
      api.rttMs = performance.now() - msg.t;
      els.rtt.textContent = `${api.rttMs.toFixed(1)} ms`;
    } else if (msg.type === "stats") {
      api.lastStats = msg;
      if (msg.mic) els.mic.textContent = `${msg.mic.seconds.toFixed(1)} s`;
      if (msg.recent_frames) matchFrames(msg.recent_frames);
      const a2f = msg.audio_to_frame_ms && msg.audio_to_frame_ms.p50 != null
        ? msg.audio_to_frame_ms.p50 : msg.pipeline_latency_ms;
      if (a2f != null) {
        const transport = api.frameLatencyMs == null ? 0 : api.frameLatencyMs;
        els.a2f.textContent = `${(a2f + transport).toFixed(0)} ms`;
      }
      if (api.onStats) api.onStats(msg);
    } else if (msg.type === "error") {
      setStatus(msg.message, true);
    }
  }

  // Frame → screen latency: the server reports (pts, send time) of its recent frames; the
  // page knows each presented frame's RTP timestamp (90 kHz, 3600 per 25 fps frame, from a
  // random origin). The origin is the one under which every frame is received after it was
  // sent (one frame off would put receipt ~40 ms before sending). Same-host clocks only.
  const seen = []; // [rtpTimestamp, receive epoch ms, display epoch ms]
  function matchFrames(recent) {
    if (!seen.length || !recent.length) return;
    const step = 90000 / 25;
    const sent = new Map(recent.map(([pts, ms]) => [pts, ms]));
    let best = null;
    for (const [rtp0] of seen.slice(-1)) {
      for (const [pts0] of recent) {
        const lat = [];
        let ok = true;
        for (const [rtp, recv, shown] of seen) {
          const d = ((rtp - rtp0) | 0) / step;
          const s = sent.get(pts0 + d);
          if (s === undefined) continue;
          if (recv - s < -2) { ok = false; break; }
          lat.push(shown - s);
        }
        if (ok && lat.length >= 5 && (best === null || pts0 > best.pts0)) best = { pts0, lat };
      }
    }
    if (!best) return;
    const sorted = best.lat.sort((a, b) => a - b);
    api.frameLatencyMs = sorted[Math.floor(sorted.length / 2)];
    els.frame.textContent = `${api.frameLatencyMs.toFixed(0)} ms`;
  }

  // Per-frame timing: requestVideoFrameCallback (Chromium, Firefox >= 132) gives each
  // presented frame with its RTP timestamp and receive time. Without it (Firefox ESR 128, or
  // media.rvfc.enabled=false) each animation frame polls a count of painted video frames, so
  // the fps overlay still counts video frames, not display refreshes: Firefox's
  // mozPaintedFrames (its getVideoPlaybackQuality() stays at 0 for a MediaStream), else
  // getVideoPlaybackQuality(). Frame → screen latency needs the per-frame metadata: "n/a".
  function paintedFrameCounter(v) {
    if (typeof v.mozPaintedFrames === "number") return ["mozPaintedFrames", () => v.mozPaintedFrames];
    if (v.getVideoPlaybackQuality) {
      return ["getVideoPlaybackQuality", () => {
        const q = v.getVideoPlaybackQuality();
        return q.totalVideoFrames - q.droppedVideoFrames;
      }];
    }
    return [null, null];
  }

  function startFrameClock() {
    const v = els.video;
    const times = [];
    const count = (t, n) => {
      for (let i = 0; i < n; i++) times.push(t);
      while (times.length && t - times[0] > 1000) times.shift();
      api.fps = Math.max(0, times.length - 1);
      els.fps.textContent = `${api.fps}`;
      api.frames += n;
    };
    if (v.requestVideoFrameCallback) {
      api.frameClock = "requestVideoFrameCallback";
      const tick = (now, meta) => {
        if (!api.pc) return;
        count(meta.presentationTime, 1);
        if (meta.rtpTimestamp !== undefined && meta.receiveTime) {
          const o = performance.timeOrigin;
          seen.push([meta.rtpTimestamp, o + meta.receiveTime, o + (meta.expectedDisplayTime || meta.presentationTime)]);
          if (seen.length > 50) seen.shift();
        }
        if (api.onFrame) api.onFrame(now, meta, v);
        v.requestVideoFrameCallback(tick);
      };
      v.requestVideoFrameCallback(tick);
      return;
    }
    const [name, painted] = paintedFrameCounter(v);
    api.frameClock = name;
    els.frame.textContent = "n/a";
    if (!painted) {
      els.fps.textContent = "n/a";
      return;
    }
    let shown = painted();
    const poll = (now) => {
      if (!api.pc) return;
      const total = painted();
      if (total > shown) {
        count(now, total - shown);
        shown = total;
        if (api.onFrame) api.onFrame(now, null, v);
      }
      requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  }

  async function uploadPortrait(file) {
    setStatus(`Checking ${file.name}…`);
    const r = await fetch("/portrait", { method: "POST", body: file, headers: authHeaders({ "X-Filename": file.name }) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { setStatus(`Portrait rejected: ${body.error || r.status}`, true); return; }
    api.portrait = body.portrait;
    setStatus("Portrait accepted.");
    if (api.pc) { stop(); await start(); }
  }

  async function uploadStyle(file) {
    let frames;
    try { frames = JSON.parse(await file.text()); } catch (e) { setStatus(`Style file is not JSON: ${e}`, true); return; }
    send({ type: "style", frames });
    setStatus("Reference style sent.");
  }

  els.start.addEventListener("click", () => start());
  els.stop.addEventListener("click", () => stop());
  els.intensity.addEventListener("input", () => {
    els.intensityOut.textContent = Number(els.intensity.value).toFixed(2);
  });
  els.intensity.addEventListener("change", () => setEmotion(api.emotion));
  els.portrait.addEventListener("change", () => { if (els.portrait.files[0]) uploadPortrait(els.portrait.files[0]); });
  els.style.addEventListener("change", () => { if (els.style.files[0]) uploadStyle(els.style.files[0]); });
  window.addEventListener("pagehide", () => stop());
  api.ready = loadConfig().then(() => {
    if (new URLSearchParams(location.search).has("autostart")) start();
  });
})();
