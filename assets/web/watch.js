// Viewer page: answers the broadcaster's offer, shows its stream, re-joins by itself.
"use strict";

(() => {
  const { connectSocket, rtcConfig, setStatus } = omnicastCommon;
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const statusEl = $("status");
  const enableAudio = $("enableAudio");

  let pc = null;
  let peerId = null;
  let config = { iceServers: [] };
  let socket = null;

  // Read by tests and handy in the console.
  const state = { status: "connecting", get pc() { return pc; } };
  window.omnicast = state;

  function status(s, text) {
    state.status = s;
    setStatus(statusEl, s, text);
  }

  function closePeer() {
    if (pc) pc.close();
    pc = null;
    peerId = null;
    video.srcObject = null;
    enableAudio.hidden = true;
    $("actual").textContent = "–";
  }

  async function onOffer(id, description) {
    closePeer();
    peerId = id;
    const mine = (pc = new RTCPeerConnection(config));
    status("connecting", "connecting to the broadcaster…");
    mine.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      if (video.srcObject !== stream) video.srcObject = stream;
      if (e.track.kind === "audio") enableAudio.hidden = !video.muted;
    };
    mine.onicecandidate = (e) => {
      if (e.candidate) socket.emit("candidate", id, e.candidate);
    };
    mine.onconnectionstatechange = () => {
      if (pc !== mine) return;
      if (mine.connectionState === "failed") {
        closePeer();
        status("reconnecting", "connection to the broadcaster failed — retrying…");
        socket.emit("watcher");
      }
    };
    try {
      await mine.setRemoteDescription(description);
      await mine.setLocalDescription(await mine.createAnswer());
      if (pc === mine) socket.emit("answer", id, mine.localDescription);
    } catch (e) {
      console.error("cannot answer the offer", e);
      if (pc === mine) status("error", `cannot use the broadcaster's offer: ${e.message || e}`);
    }
  }

  function connect() {
    socket = connectSocket();
    socket.on("connect", () => {
      status("waiting", "waiting for the broadcaster…");
      socket.emit("watcher");
    });
    socket.on("disconnect", () => {
      closePeer();
      status("reconnecting", "connection to the server lost — reconnecting…");
    });
    socket.on("noBroadcaster", () => {
      if (!pc) status("waiting", "waiting for the broadcaster…");
    });
    socket.on("broadcaster", () => {
      closePeer();
      status("connecting", "broadcaster found — connecting…");
      socket.emit("watcher");
    });
    socket.on("broadcasterLeft", () => {
      closePeer();
      status("left", "the broadcaster left — waiting for it to come back…");
    });
    const gone = (id) => {
      if (id !== peerId) return;
      closePeer();
      status("left", "the broadcaster left — waiting for it to come back…");
    };
    socket.on("disconnectPeer", gone);
    socket.on("bye", gone);
    socket.on("offer", onOffer);
    socket.on("candidate", (id, candidate) => {
      if (!pc || id !== peerId) return;
      pc.addIceCandidate(new RTCIceCandidate(candidate)).catch((e) => console.warn("candidate", e));
    });
    socket.on("error", (e) => console.warn("server error", e));
  }

  const showSize = () => {
    if (video.videoWidth) $("actual").textContent = `${video.videoWidth}×${video.videoHeight}`;
  };
  video.addEventListener("resize", showSize);
  video.addEventListener("playing", () => {
    showSize();
    status("live", "live");
  });
  enableAudio.onclick = () => {
    video.muted = false;
    video.play().catch(() => {});
    enableAudio.hidden = true;
  };
  $("broadcastLink").href = "/broadcast.html" + window.location.search;
  window.addEventListener("pagehide", () => socket?.close());

  (async () => {
    config = await rtcConfig();
    connect();
  })();
})();
