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
  /** viewer socket id → its data channels and what it may do */
  const channels = new Map();
  let stream = null;
  let socket = null;
  let config = { iceServers: [] };
  // ?control=KEY: viewers whose hello carries it may send messages (shown here).
  const controlKey = new URLSearchParams(window.location.search).get("control") || "";
  const MESSAGES_SHOWN = 10;

  // Read by tests and handy in the console.
  const state = {
    peers,
    status: "starting",
    viewers: 0,
    get stream() { return stream; },
    /** viewer id → its latest view {yaw, pitch, roll, fov} */
    views: new Map(),
    samples: 0,
    /** accepted messages, newest last: {viewer, data} */
    messages: [],
    projection: null,
    refused: 0,
    malformed: 0,
    telemetrySent: 0,
    sendTelemetry,
  };
  window.omnicast = state;
  /** The Record button: what this page sends. */
  state.record = omnicastRecorder.attach({
    button: document.getElementById("record"),
    label: document.getElementById("recordStatus"),
    getStream: () => stream,
    who: "broadcast",
  });

  /** What the picture is: ?projection=flat|equirect, else 360° when the camera's picture is 2:1. */
  function projection() {
    const asked = new URLSearchParams(window.location.search).get("projection");
    if (asked === "flat" || asked === "equirect") return asked;
    const s = stream?.getVideoTracks()[0]?.getSettings() || {};
    return s.width && s.width === 2 * s.height ? "equirect" : "flat";
  }

  /** Tells every viewer (or the one `control` channel) what the picture is. */
  function announceProjection(only) {
    const text = JSON.stringify({ type: "projection", projection: projection() });
    state.projection = projection();
    for (const control of only ? [only] : [...channels.values()].map((c) => c.control)) {
      if (control.readyState === "open") control.send(text);
    }
  }

  function showData() {
    $("senders").textContent = String(state.views.size);
    $("samples").textContent = String(state.samples);
    $("messages").replaceChildren(
      ...state.messages.map((m) => {
        const li = document.createElement("li");
        li.textContent = `${m.viewer}: ${JSON.stringify(m.data)}`;
        return li;
      }),
    );
  }

  /** The data channels of viewer `id`'s connection: welcome, views, messages, errors. */
  function serveChannels(id, pc) {
    const { Refused, parseViewer, open } = omnicastChannels;
    const { control, viewport } = open(pc);
    const viewer = { control, hasControl: false, lastErrorAt: -Infinity };
    channels.set(id, viewer);
    const reply = (m) => {
      if (control.readyState === "open") control.send(JSON.stringify(m));
    };
    const error = (message) => reply({ type: "error", message });
    control.onopen = () => announceProjection(control);
    const onMessage = (e) => {
      let m;
      try {
        m = parseViewer(e.data);
      } catch (err) {
        if (!(err instanceof Refused)) throw err;
        state.malformed += 1;
        // One error a second at most, whatever the viewer sends.
        const now = performance.now();
        if (now - viewer.lastErrorAt >= 1000) {
          viewer.lastErrorAt = now;
          error(err.message);
        }
        return;
      }
      if (m.type === "viewport") {
        state.samples += 1;
        state.views.set(id, { yaw: m.yaw, pitch: m.pitch, roll: m.roll, fov: m.fov });
      } else if (m.type === "hello") {
        viewer.hasControl = controlKey !== "" && m.control === controlKey;
        reply({ type: "welcome", control: viewer.hasControl });
        if (m.control !== null && !viewer.hasControl) {
          error(controlKey ? "the control key does not match" : "this broadcast has no control key: nobody may send messages");
        }
      } else if (m.type === "message") {
        if (viewer.hasControl) {
          state.messages.push({ viewer: id, data: m.data });
          if (state.messages.length > MESSAGES_SHOWN) state.messages.shift();
        } else {
          state.refused += 1;
          error("message refused: send hello with the room's control key first");
        }
      }
      showData();
    };
    control.onmessage = onMessage;
    viewport.onmessage = onMessage;
  }

  /** Sends `data` to every viewer as telemetry; false if it is too large. */
  function sendTelemetry(data) {
    const text = JSON.stringify({ type: "telemetry", t: Date.now(), data });
    if (new TextEncoder().encode(text).length > omnicastChannels.MAX_BYTES) return false;
    for (const { control } of channels.values()) {
      if (control.readyState === "open") control.send(text);
    }
    state.telemetrySent += 1;
    return true;
  }

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
    // A recording goes on in a new file, from the new camera.
    state.record.follow();
    showActual();
    announceProjection();
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
      announceProjection();
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
    channels.delete(id);
    if (state.views.delete(id)) showData();
  }

  async function onWatcher(id) {
    closePeer(id);
    const pc = new RTCPeerConnection(config);
    peers.set(id, pc);
    for (const track of stream.getTracks()) {
      const tr = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (track.kind === "video") preferH264(tr);
    }
    serveChannels(id, pc);
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
  // The viewer link carries neither the broadcaster key nor the control key.
  const viewerParams = new URLSearchParams(window.location.search);
  viewerParams.delete("key");
  viewerParams.delete("control");
  $("viewerLink").href = "/" + (viewerParams.size ? `?${viewerParams}` : "");
  $("controlKey").textContent = controlKey ? "set (?control=…)" : "none: nobody may send messages";
  $("telemetryForm").onsubmit = (e) => {
    e.preventDefault();
    const input = $("telemetry");
    if (!input.value.trim()) return;
    if (sendTelemetry(omnicastChannels.typed(input.value))) {
      input.value = "";
    } else {
      status("error", "telemetry too large (16 KiB at most)");
    }
  };
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
