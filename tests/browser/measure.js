// Test-only instrumentation, injected after the real page's app.js by the browser tests.
// Records per presented frame (requestVideoFrameCallback metadata + mean luma of a 16x16
// downscale + a 32x32 grey patch of the region `crop=x0,y0,x1,y1` (fractions) when asked),
// the received audio's RMS per
// 128-sample WebAudio block mapped to performance time, and getStats(); posts it all to
// /report after `seconds` (query string; after `warmup` more seconds when given), and
// /progress every second while it runs.
"use strict";

// Firefox's fake microphone is a tone and it has no file-backed one: with `micfile=URL` the
// page's getUserMedia still goes through the browser (permission path, fake device), then its
// track is replaced by the file played (looped, mono) through WebAudio.
function useFileAsMicrophone(url) {
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    const granted = await real(constraints);
    granted.getTracks().forEach((t) => t.stop());
    const ac = new AudioContext();
    const data = await (await fetch(url)).arrayBuffer();
    const src = ac.createBufferSource();
    src.buffer = await ac.decodeAudioData(data);
    src.loop = true;
    const dst = ac.createMediaStreamDestination();
    dst.channelCount = 1;
    src.connect(dst);
    src.start();
    window.emostreamMicFile = { url, sampleRate: ac.sampleRate, seconds: src.buffer.duration, context: ac };
    return dst.stream;
  };
}

function micFileInfo() {
  const m = window.emostreamMicFile;
  if (!m) return null;
  return { url: m.url, sampleRate: m.sampleRate, seconds: m.seconds, state: m.context.state, playedS: m.context.currentTime };
}

(async () => {
  const q = new URLSearchParams(location.search);
  const seconds = Number(q.get("seconds") || 8);
  const warmup = Number(q.get("warmup") || 0);
  const crop = q.has("crop") ? q.get("crop").split(",").map(Number) : null;
  const api = window.emostream;
  if (q.has("micfile")) useFileAsMicrophone(q.get("micfile"));
  // Liveness for the harness (a page whose JavaScript stopped running posts nothing).
  const alive = () => fetch("/progress", { method: "POST", body: "{}" }).catch(() => {});
  alive();
  setInterval(alive, 1000);
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

  // Audio tap: the received stream's RMS per 128-sample block, at the block's output time on
  // the performance clock. Through an AudioWorklet (block = render quantum), or with
  // `tap=script` through a ScriptProcessorNode. Firefox 153 (headless, PulseAudio) froze the
  // whole page for good, right after the worklet was wired to the remote track, in about 1
  // run of 5 (gdb: its media-graph thread and a WebRTC worker waiting on one mutex, the main
  // thread blocked); with the ScriptProcessorNode less often (0 of 8 short runs, ~1 of 5
  // 30-s runs); in none of 13 runs without a tap. The harness detects a frozen page (it stops
  // posting /progress) and the Firefox tests retry it once. A ScriptProcessorNode delays its
  // output by one buffer: its input buffer is taken as starting at playbackTime - buffer
  // length, exact to one buffer (256 samples, 5.3 ms at 48 kHz).
  async function tapAudio(stream) {
    // One AudioContext per page: the microphone file's when there is one.
    const ac = window.emostreamMicFile ? window.emostreamMicFile.context : new AudioContext();
    const src = ac.createMediaStreamSource(stream);
    const atOutput = (t) => {
      const ts = ac.getOutputTimestamp();
      return ts.performanceTime + (t - ts.contextTime) * 1000;
    };
    const blockRms = (ch, k) => {
      let s = 0;
      for (let i = k; i < k + 128; i++) s += ch[i] * ch[i];
      return Math.sqrt(s / 128);
    };
    let node;
    if (q.get("tap") === "script") {
      node = ac.createScriptProcessor(256, 1, 1);
      node.onaudioprocess = (e) => {
        const ch = e.inputBuffer.getChannelData(0);
        const start = e.playbackTime - ch.length / ac.sampleRate;
        for (let k = 0; k + 128 <= ch.length; k += 128) audio.push([atOutput(start + k / ac.sampleRate), blockRms(ch, k)]);
      };
    } else {
      // Blocks are posted in batches of 8 (~23 ms): one message per batch.
      const code = `class Tap extends AudioWorkletProcessor {
        constructor() { super(); this.batch = []; }
        process(inputs) { const ch = inputs[0] && inputs[0][0];
          if (ch) { let s = 0; for (let i = 0; i < ch.length; i++) s += ch[i] * ch[i];
            this.batch.push([currentTime, Math.sqrt(s / ch.length)]);
            if (this.batch.length >= 8) { this.port.postMessage(this.batch); this.batch = []; } }
          return true; } }
        registerProcessor("tap", Tap);`;
      await ac.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
      node = new AudioWorkletNode(ac, "tap");
      node.port.onmessage = (ev) => {
        for (const [t, rms] of ev.data) audio.push([atOutput(t), rms]);
      };
    }
    src.connect(node);
    node.connect(ac.destination);
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
  const snapshot = async () => {
    const out = [];
    if (api.pc) (await api.pc.getStats()).forEach((s) => out.push(s));
    return out;
  };
  // `warmup=S`: S seconds of streaming before the measured window, whose start is marked by
  // t0 and a getStats() snapshot (statsWarm), so counters can be taken over the window only.
  let statsWarm = null;
  if (warmup > 0) {
    await new Promise((r) => setTimeout(r, warmup * 1000));
    statsWarm = await snapshot();
  }
  t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const stats = await snapshot();
  const report = {
    state: api.state, error: api.error, offerSdp, iceState, id: api.id, frames, audio, stats, statsWarm, t0, timeOrigin: performance.timeOrigin,
    serverStats: api.lastStats, rttMs: api.rttMs, pageFrameLatencyMs: api.frameLatencyMs, userAgent: navigator.userAgent,
    micFile: micFileInfo(),
    frameCallback: "requestVideoFrameCallback" in HTMLVideoElement.prototype,
    frameClock: api.frameClock, pageFps: api.fps, pageFrames: api.frames,
    overlay: Object.fromEntries([...document.querySelectorAll("#overlay b")].map((b) => [b.id, b.textContent])),
    audioContext: ac ? { state: ac.state, currentTime: ac.currentTime, baseLatency: ac.baseLatency, outputLatency: ac.outputLatency, sampleRate: ac.sampleRate } : null,
  };
  await fetch("/report", { method: "POST", body: JSON.stringify(report) });
  document.title = "reported";
})().catch(async (e) => {
  await fetch("/report", { method: "POST", body: JSON.stringify({ state: "exception", error: String(e && e.stack || e) }) });
});
