// Broadcaster page: one RTCPeerConnection per viewer, all fed from the same camera stream.
"use strict";

(() => {
  const { connectSocket, rtcConfig, setStatus } = omnicastCommon;
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  const preview = $("preview");
  const videoSource = $("videoSource");
  const audioSource = $("audioSource");
  const sizeSel = $("size");
  const fpsSel = $("fps");

  /** viewer socket id → RTCPeerConnection */
  const peers = new Map();
  let stream = null;
  let socket = null;
  let config = { iceServers: [] };

  // Read by tests and handy in the console.
  const state = { peers, status: "starting", viewers: 0, get stream() { return stream; } };
  window.omnicast = state;

  function status(s, text) {
    state.status = s;
    setStatus(statusEl, s, text);
  }

  function wanted() {
    const [width, height] = sizeSel.value.split("x").map(Number);
    return { width, height, fps: Number(fpsSel.value) };
  }

  function videoConstraints() {
    const { width, height, fps } = wanted();
    const c = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: fps } };
    if (videoSource.value) c.deviceId = { exact: videoSource.value };
    return c;
  }

  function audioConstraints() {
    return audioSource.value ? { deviceId: { exact: audioSource.value } } : true;
  }

  async function openStream() {
    try {
      return await navigator.mediaDevices.getUserMedia({ video: videoConstraints(), audio: audioConstraints() });
    } catch (e) {
      // No (usable) microphone: broadcast video alone rather than nothing.
      console.warn("camera+microphone failed, trying camera only", e);
      return navigator.mediaDevices.getUserMedia({ video: videoConstraints(), audio: false });
    }
  }

  /** Switches every viewer to the new stream's tracks without renegotiating. */
  async function useStream(next) {
    const old = stream;
    stream = next;
    // Keep the chosen resolution under load and lower the frame rate instead: detail matters
    // more than motion for a 360° or robot camera.
    for (const t of stream.getVideoTracks()) t.contentHint = "detail";
    preview.srcObject = stream;
    const byKind = Object.fromEntries(stream.getTracks().map((t) => [t.kind, t]));
    await Promise.all(
      [...peers.values()].flatMap((pc) =>
        pc.getTransceivers().map((tr) => {
          const track = byKind[tr.receiver.track.kind];
          return track ? tr.sender.replaceTrack(track).catch((e) => console.warn("replaceTrack", e)) : null;
        }),
      ),
    );
    if (old) old.getTracks().forEach((t) => t.stop());
    showActual();
    await listDevices();
  }

  async function restartStream() {
    try {
      await useStream(await openStream());
      if (socket?.connected) status("live", "broadcasting");
    } catch (e) {
      status("error", `camera unavailable: ${e.name || "error"}: ${e.message || e}`);
    }
  }

  async function changeSize() {
    const track = stream?.getVideoTracks()[0];
    if (!track) return restartStream();
    try {
      const { width, height, fps } = wanted();
      await track.applyConstraints({ width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: fps } });
      showActual();
    } catch (e) {
      console.warn("applyConstraints failed, reopening the camera", e);
      await restartStream();
    }
  }

  function showActual() {
    const s = stream?.getVideoTracks()[0]?.getSettings() || {};
    $("actual").textContent = s.width ? `${s.width}×${s.height} @ ${Math.round(s.frameRate || 0)} fps` : "–";
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current) => {
      const list = devices.filter((d) => d.kind === kind);
      select.replaceChildren(
        ...list.map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId)),
      );
      if (current && list.some((d) => d.deviceId === current)) select.value = current;
    };
    fill(videoSource, "videoinput", stream?.getVideoTracks()[0]?.getSettings().deviceId);
    fill(audioSource, "audioinput", stream?.getAudioTracks()[0]?.getSettings().deviceId);
  }

  /** Puts H.264 Constrained Baseline first so desktop viewers (openh264) can decode it. */
  function preferH264(transceiver) {
    if (!transceiver.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return;
    const rank = (c) => {
      if (c.mimeType !== "video/H264") return 2;
      const fmtp = c.sdpFmtpLine || "";
      return fmtp.includes("profile-level-id=42e01f") && fmtp.includes("packetization-mode=1") ? 0 : 1;
    };
    const codecs = [...RTCRtpReceiver.getCapabilities("video").codecs].sort((a, b) => rank(a) - rank(b));
    try {
      transceiver.setCodecPreferences(codecs);
    } catch (e) {
      console.warn("cannot prefer H.264", e);
    }
  }

  function closePeer(id) {
    const pc = peers.get(id);
    if (!pc) return;
    pc.close();
    peers.delete(id);
  }

  async function onWatcher(id) {
    closePeer(id);
    const pc = new RTCPeerConnection(config);
    peers.set(id, pc);
    for (const track of stream.getTracks()) {
      const tr = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (track.kind === "video") preferH264(tr);
    }
    pc.onicecandidate = (e) => {
      if (e.candidate) socket.emit("candidate", id, e.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" && peers.get(id) === pc) closePeer(id);
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      socket.emit("offer", id, pc.localDescription);
    } catch (e) {
      console.error("offer to", id, "failed", e);
      closePeer(id);
    }
  }

  function connect() {
    socket = connectSocket();
    socket.on("connect", () => {
      socket.emit("broadcaster");
      status("live", "broadcasting");
    });
    socket.on("disconnect", () => {
      for (const id of [...peers.keys()]) closePeer(id);
      status("reconnecting", "connection to server lost — reconnecting…");
    });
    socket.on("watcher", (id) => {
      if (stream) onWatcher(id);
    });
    socket.on("answer", (id, description) => {
      peers.get(id)?.setRemoteDescription(description).catch((e) => console.warn("answer from", id, e));
    });
    socket.on("candidate", (id, candidate) => {
      peers.get(id)?.addIceCandidate(new RTCIceCandidate(candidate)).catch((e) => console.warn("candidate from", id, e));
    });
    const gone = (id) => closePeer(id);
    socket.on("disconnectPeer", gone);
    socket.on("bye", gone);
    socket.on("viewers", (n) => {
      state.viewers = n;
      $("viewers").textContent = String(n);
    });
    socket.on("replaced", () => {
      for (const id of [...peers.keys()]) closePeer(id);
      status("error", "another broadcaster took over this room");
    });
    socket.on("error", (e) => {
      console.warn("server error", e);
      if (e && e.code === "broadcaster_key") status("error", `not broadcasting: ${e.message}`);
    });
  }

  videoSource.onchange = restartStream;
  audioSource.onchange = restartStream;
  sizeSel.onchange = changeSize;
  fpsSel.onchange = changeSize;
  $("viewerLink").href = "/" + window.location.search.replace(/([?&])key=[^&]*&?/, "$1").replace(/[?&]$/, "");
  window.addEventListener("pagehide", () => socket?.close());

  (async () => {
    config = await rtcConfig();
    try {
      await useStream(await openStream());
    } catch (e) {
      status("error", `camera unavailable: ${e.name || "error"}: ${e.message || e}`);
      return;
    }
    connect();
  })();
})();
