// Injected before the app's scripts: taps the microphone stream and the remote (reply) stream into
// WebAudio analysers and logs their levels every 10 ms in window.__probe, so a test can measure,
// inside the page, when the user's speech ended and when reply audio arrived.
(() => {
  const probe = { mic: [], remote: [], jitter: [], started: performance.now(), errors: [] };
  window.__probe = probe;
  let ctx = null;
  const context = () => (ctx = ctx || new AudioContext());

  function watch(stream, log) {
    const source = context().createMediaStreamSource(stream);
    const analyser = context().createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    setInterval(() => {
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const v of data) sum += v * v;
      const rms = Math.sqrt(sum / data.length);
      log.push([performance.now() - probe.started, rms > 0 ? 20 * Math.log10(rms) : -120]);
    }, 10);
  }

  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await getUserMedia(constraints);
    try { watch(stream, probe.mic); } catch (e) { probe.errors.push(String(e)); }
    return stream;
  };

  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    pc.addEventListener("track", (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      const audio = document.createElement("audio");
      audio.muted = true;
      audio.srcObject = stream;
      audio.play().catch((e) => probe.errors.push(String(e)));
      try { watch(stream, probe.remote); } catch (e) { probe.errors.push(String(e)); }
      // the receive jitter buffer's cumulative delay and emitted samples (WebRTC stats, inbound-rtp audio)
      setInterval(async () => {
        const stats = await pc.getStats(event.track);
        stats.forEach((r) => {
          if (r.type === "inbound-rtp" && r.kind === "audio") {
            probe.jitter.push([performance.now() - probe.started, r.jitterBufferDelay || 0, r.jitterBufferEmittedCount || 0]);
          }
        });
      }, 50);
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
