// Test-only instrumentation, injected after the real page's app.js by the browser tests.
// Records per presented frame (requestVideoFrameCallback metadata + mean luma of a 16x16
// downscale + a 32x32 grey patch of the region `crop=x0,y0,x1,y1` (fractions) when asked),
// the received audio's RMS per
// 128-sample WebAudio block mapped to performance time, and getStats(); posts it all to
// /report after `seconds` (query string), then to /done.
"use strict";
(async () => {
  const q = new URLSearchParams(location.search);
  const seconds = Number(q.get("seconds") || 8);
  const crop = q.has("crop") ? q.get("crop").split(",").map(Number) : null;
  const api = window.emostream;
  await api.ready;
  const frames = [];
  const audio = [];
  const canvas = document.createElement("canvas");
  canvas.width = 16; canvas.height = 16;
  const ctx2d = canvas.getContext("2d", { willReadFrequently: true });
  const tcanvas = document.createElement("canvas");
  tcanvas.width = 32; tcanvas.height = 32;
  const tctx = tcanvas.getContext("2d", { willReadFrequently: true });
  let t0 = null;

  api.onFrame = (now, meta, video) => {
    ctx2d.drawImage(video, 0, 0, 16, 16);
    const px = ctx2d.getImageData(0, 0, 16, 16).data;
    let s = 0;
    for (let i = 0; i < px.length; i += 4) s += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    const rec = {
      now, luma: s / 256,
      presentationTime: meta && meta.presentationTime, expectedDisplayTime: meta && meta.expectedDisplayTime,
      captureTime: meta && meta.captureTime, receiveTime: meta && meta.receiveTime,
      rtpTimestamp: meta && meta.rtpTimestamp, presentedFrames: meta && meta.presentedFrames,
      width: meta && meta.width, height: meta && meta.height,
    };
    if (crop) {
      const W = video.videoWidth, H = video.videoHeight;
      tctx.drawImage(video, crop[0] * W, crop[1] * H, (crop[2] - crop[0]) * W, (crop[3] - crop[1]) * H, 0, 0, 32, 32);
      const d = tctx.getImageData(0, 0, 32, 32).data;
      const g = new Array(32 * 32);
      for (let i = 0, j = 0; i < d.length; i += 4, j++) g[j] = Math.round(0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]);
      rec.gray = g;
    }
    frames.push(rec);
  };

  // Audio tap: the received stream through an AudioWorklet that reports block RMS.
  async function tapAudio(stream) {
    const ac = new AudioContext();
    const code = `class Tap extends AudioWorkletProcessor {
      process(inputs) { const ch = inputs[0] && inputs[0][0];
        if (ch) { let s = 0; for (let i = 0; i < ch.length; i++) s += ch[i] * ch[i];
          this.port.postMessage([currentTime, Math.sqrt(s / ch.length)]); }
        return true; } }
      registerProcessor("tap", Tap);`;
    await ac.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
    const src = ac.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ac, "tap");
    src.connect(node);
    node.connect(ac.destination);
    node.port.onmessage = (ev) => {
      const ts = ac.getOutputTimestamp();
      // Output (speaker) time of this block on the performance clock.
      const perf = ts.performanceTime + (ev.data[0] - ts.contextTime) * 1000;
      audio.push([perf, ev.data[1]]);
    };
    return ac;
  }

  let ac = null;
  const waitTrack = setInterval(async () => {
    const v = document.getElementById("avatar");
    if (!ac && v.srcObject && v.srcObject.getAudioTracks().length) {
      clearInterval(waitTrack);
      ac = await tapAudio(new MediaStream(v.srcObject.getAudioTracks()));
    }
  }, 50);

  await api.start();
  const deadline = performance.now() + 20000;
  while (api.state !== "connected" && performance.now() < deadline) {
    if (api.state === "busy" || api.state === "error") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const offerSdp = api.pc && api.pc.localDescription ? api.pc.localDescription.sdp : null;
  const iceState = api.pc ? api.pc.iceConnectionState : null;
  t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const stats = [];
  if (api.pc) (await api.pc.getStats()).forEach((s) => stats.push(s));
  const report = {
    state: api.state, error: api.error, offerSdp, iceState, id: api.id, frames, audio, stats, t0, timeOrigin: performance.timeOrigin,
    serverStats: api.lastStats, rttMs: api.rttMs, pageFrameLatencyMs: api.frameLatencyMs, userAgent: navigator.userAgent,
    audioContext: ac ? { baseLatency: ac.baseLatency, outputLatency: ac.outputLatency, sampleRate: ac.sampleRate } : null,
  };
  await fetch("/report", { method: "POST", body: JSON.stringify(report) });
  document.title = "reported";
})().catch(async (e) => {
  await fetch("/report", { method: "POST", body: JSON.stringify({ state: "exception", error: String(e && e.stack || e) }) });
});
