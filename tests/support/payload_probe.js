// Injected before the app's scripts: once window.__capture is true, keeps every byte the server sends the
// page (fetch responses, streamed event data, data-channel messages) and every URL it requests, so a test
// can check that nothing identifying an engine reaches the browser before a blind vote.
(() => {
  const seen = { urls: [], texts: [] };
  window.__payloads = seen;
  window.__capture = false;
  const keep = (list, value) => { if (window.__capture) list.push(String(value)); };

  const nativeFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    keep(seen.urls, typeof input === "string" ? input : input.url);
    const response = await nativeFetch(input, init);
    if (window.__capture && response.body) {
      const reader = response.clone().body.getReader();
      const decoder = new TextDecoder();
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          keep(seen.texts, decoder.decode(value, { stream: true }));
        }
      })().catch(() => {});
    }
    return response;
  };

  const NativeEventSource = window.EventSource;
  if (NativeEventSource) {
    window.EventSource = function (url, options) {
      keep(seen.urls, url);
      const source = new NativeEventSource(url, options);
      source.addEventListener("message", (event) => keep(seen.texts, event.data));
      return source;
    };
    window.EventSource.prototype = NativeEventSource.prototype;
  }

  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new NativePC(...args);
    const listen = (channel) => channel.addEventListener("message", (event) => keep(seen.texts, event.data));
    const create = pc.createDataChannel.bind(pc);
    pc.createDataChannel = (...a) => { const channel = create(...a); listen(channel); return channel; };
    pc.addEventListener("datachannel", (event) => listen(event.channel));
    return pc;
  };
  window.RTCPeerConnection.prototype = NativePC.prototype;
})();
