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
  // ?control=KEY: said in hello; with the broadcast's key, messages typed here reach the robot.
  const controlKey = new URLSearchParams(window.location.search).get("control") || "";
  /** The broadcaster's `omnicast` channel, once open, and whether it has welcomed us. */
  let control = null;
  let welcomed = false;
  /** Its `omnicast-viewport` channel, once open. */
  let viewportChannel = null;
  const params = new URLSearchParams(window.location.search);
  const number = (name) => (params.has(name) && Number.isFinite(Number(params.get(name))) ? Number(params.get(name)) : undefined);
  /** ?view=360|flat wins over what the broadcaster says its picture is. */
  const askedView = ["360", "flat"].includes(params.get("view")) ? params.get("view") : null;
  let sphere = null;
  const SAMPLE_INTERVAL_MS = 33;
  let lastSampleAt = 0;
  let sampleTimer = null;

  // Read by tests and handy in the console.
  const state = {
    status: "connecting",
    get pc() { return pc; },
    /** The broadcaster's last welcome: may our messages reach the robot? */
    control: null,
    /** What the broadcaster says its picture is: "flat" or "equirect" (360°). */
    projection: null,
    /** The latest telemetry's data, and how many came. */
    telemetry: undefined,
    telemetryCount: 0,
    /** What the broadcaster refused, newest last. */
    errors: [],
    sendMessage,
    /** "360" or "flat": how the picture is shown. */
    viewMode: askedView || "flat",
    /** The 360° view ({yaw, pitch, fov}) and its figures ({draws, frames}), once shown. */
    get view() { return sphere?.view; },
    get viewStats() { return sphere?.stats; },
    setView: (v) => sphere?.set(v),
    /** Viewport samples sent to the broadcaster. */
    samplesSent: 0,
    /** Whether the phone's orientation steers the view. */
    phone: false,
  };
  window.omnicast = state;
  /** The Record button: what this page receives. */
  state.record = omnicastRecorder.attach({
    button: $("record"),
    label: $("recordStatus"),
    getStream: () => video.srcObject,
    who: "view",
  });

  /** Sends `data` to the robot (it arrives only with the control key); false if it cannot go. */
  function sendMessage(data) {
    if (!control || control.readyState !== "open") return false;
    control.send(JSON.stringify({ type: "message", t: Date.now(), data }));
    return true;
  }

  /** Sends the view to the broadcaster (at most ~30 times a second; the latest goes). */
  function sendView() {
    // A flat picture has no view to report.
    if (!sphere || !lastView || state.viewMode !== "360") return;
    const wait = lastSampleAt + SAMPLE_INTERVAL_MS - performance.now();
    if (wait > 0) {
      sampleTimer ??= setTimeout(() => {
        sampleTimer = null;
        sendView();
      }, wait);
      return;
    }
    const channel = viewportChannel?.readyState === "open" ? viewportChannel : control?.readyState === "open" ? control : null;
    if (!channel) return;
    const { yaw, pitch, hfov } = lastView;
    channel.send(JSON.stringify({ type: "viewport", t: Date.now(), yaw, pitch, roll: 0, fov: hfov }));
    lastSampleAt = performance.now();
    state.samplesSent += 1;
  }
  let lastView = null;

  /** The phone's orientation steering the 360° view, while on. */
  let phone = null;

  function onOrientation(e) {
    if (!sphere || e.alpha === null || e.beta === null) return;
    const angle = screen.orientation?.angle ?? window.orientation ?? 0;
    const q = omnicastSphere.phoneRotation(e.alpha, e.beta, e.gamma ?? 0, angle);
    const v = omnicastChannels.fromQuaternion(q);
    if (!v) return;
    // Where the phone points when it takes over is where the view already looks.
    phone.offset ??= sphere.view.yaw - v.yaw;
    sphere.set({ yaw: v.yaw + phone.offset, pitch: v.pitch });
  }

  /** Turns "look around by moving the phone" on or off (off: drag again). */
  async function usePhone(on) {
    if (on && !phone) {
      // iOS asks the person first, and only from a tap.
      if (typeof DeviceOrientationEvent !== "undefined" && typeof DeviceOrientationEvent.requestPermission === "function") {
        const answer = await DeviceOrientationEvent.requestPermission().catch(() => "denied");
        if (answer !== "granted") {
          $("phone").textContent = "Moving the phone is not allowed here";
          return;
        }
      }
      phone = { offset: null };
      window.addEventListener("deviceorientation", onOrientation);
    } else if (!on && phone) {
      window.removeEventListener("deviceorientation", onOrientation);
      phone = null;
    }
    state.phone = !!phone;
    $("phone").textContent = phone ? "Stop moving the phone (drag instead)" : "Look around by moving the phone";
    $("phone").setAttribute("aria-pressed", String(!!phone));
  }

  /** Shows the picture flat or as the 360° view. */
  function showAs(mode) {
    state.viewMode = mode;
    const canvas = $("sphere");
    if (mode === "360" && !sphere) {
      try {
        sphere = omnicastSphere.create(canvas, video, {
          yaw: number("yaw") ?? 0,
          pitch: number("pitch") ?? 0,
          fov: number("fov") ?? 90,
          onView: (v) => {
            lastView = v;
            sendView();
          },
        });
      } catch (e) {
        console.warn("no 360° view here", e);
        $("viewToggle").disabled = true;
        return showAs("flat");
      }
    }
    canvas.hidden = mode !== "360";
    // A view to look around in gets the room a window or a phone has, not the picture's 2:1.
    $("stage").classList.toggle("sphere", mode === "360");
    $("resetView").hidden = mode !== "360";
    $("phone").hidden = mode !== "360" || !("DeviceOrientationEvent" in window);
    if (mode !== "360") usePhone(false);
    $("viewToggle").textContent = mode === "360" ? "Flat view" : "360° view";
    if (mode === "360") sphere.redraw();
  }

  /** Runs `opened` when `dc` is open: a channel the other side made may arrive open already,
   * and then fires no open event. */
  function whenOpen(dc, opened) {
    if (dc.readyState === "open") opened();
    else dc.onopen = opened;
  }

  /** The channels the broadcaster opens (classic broadcasters open none). */
  function takeChannel(dc) {
    if (dc.label === omnicastChannels.VIEWPORT) {
      whenOpen(dc, () => {
        viewportChannel = dc;
        if (lastView) sendView();
      });
      dc.onclose = () => {
        if (viewportChannel === dc) viewportChannel = null;
      };
      return;
    }
    if (dc.label !== omnicastChannels.CONTROL) return;
    whenOpen(dc, () => {
      control = dc;
      // Said again each second until the broadcaster answers (a first message can go missing
      // while a new channel settles): at most five times.
      let tries = 0;
      const hello = () => {
        if (control !== dc || dc.readyState !== "open" || welcomed || tries++ >= 5) return;
        dc.send(JSON.stringify({ type: "hello", control: controlKey || null }));
        setTimeout(hello, 1000);
      };
      welcomed = false;
      hello();
    });
    dc.onclose = () => {
      if (control === dc) control = null;
    };
    dc.onmessage = (e) => {
      let m;
      try {
        m = omnicastChannels.parseBroadcaster(e.data);
      } catch (err) {
        console.warn("unreadable message from the broadcaster", err.message);
        return;
      }
      if (m.type === "welcome") {
        welcomed = true;
        state.control = m.control;
        $("control").textContent = m.control ? "yes" : controlKey ? "refused (wrong key?)" : "no";
      } else if (m.type === "projection") {
        state.projection = m.projection;
        $("projection").textContent = m.projection === "equirect" ? "360° (equirectangular)" : "flat";
        // The picture says how to show it, unless the link did.
        if (!askedView) showAs(m.projection === "equirect" ? "360" : "flat");
      } else if (m.type === "telemetry") {
        state.telemetry = m.data;
        state.telemetryCount += 1;
        const view = $("telemetryView");
        view.hidden = false;
        view.textContent = `telemetry ${new Date(m.t).toLocaleTimeString()}: ${JSON.stringify(m.data, null, 1)}`;
      } else if (m.type === "error") {
        state.errors.push(m.message);
        $("messageStatus").textContent = m.message;
      }
    };
  }

  function status(s, text) {
    state.status = s;
    setStatus(statusEl, s, text);
  }

  /** The browser would not start the video by itself (a power-saving mode, a strict autoplay
   * setting): a Play button does, with the person's tap. */
  function refused(err) {
    console.warn("the video does not play yet", err.message || err);
    if (err.name === "NotAllowedError" && video.paused) {
      $("play").hidden = false;
      status("waiting", "press Play to start the video");
    }
  }

  function closePeer() {
    if (pc) pc.close();
    pc = null;
    control = null;
    viewportChannel = null;
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
      if (video.srcObject !== stream) {
        video.srcObject = stream;
        // Play now: left to the autoplay attribute, a browser with its default settings shows
        // the first frame paused and starts a muted video only once it has checked that it is
        // visible (up to a second later here). Muted, play() needs no gesture.
        video.play().catch(refused);
        // A recording goes on in a new file (once this connection's tracks have all come).
        setTimeout(() => state.record.follow(), 0);
      }
      if (e.track.kind === "audio") enableAudio.hidden = !video.muted;
    };
    mine.onicecandidate = (e) => {
      if (e.candidate) socket.emit("candidate", id, e.candidate);
    };
    mine.ondatachannel = (e) => {
      if (pc === mine) takeChannel(e.channel);
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
    $("play").hidden = true;
    showSize();
    status("live", "live");
  });
  $("play").onclick = () => video.play().catch(refused);
  enableAudio.onclick = () => {
    video.muted = false;
    video.play().catch(() => {});
    enableAudio.hidden = true;
  };
  // The broadcaster link does not pass the control key on.
  const casterParams = new URLSearchParams(window.location.search);
  casterParams.delete("control");
  $("broadcastLink").href = "/broadcast.html" + (casterParams.size ? `?${casterParams}` : "");
  $("viewToggle").onclick = () => showAs(state.viewMode === "360" ? "flat" : "360");
  $("resetView").onclick = () => {
    if (phone) phone.offset = null;
    sphere?.set({ yaw: 0, pitch: 0, fov: 90 });
  };
  $("phone").onclick = () => usePhone(!phone);
  $("fullscreen").onclick = () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else $("stage").requestFullscreen?.().catch((e) => console.warn("full screen", e));
  };
  if (askedView) showAs(askedView);
  $("messageForm").hidden = !controlKey;
  $("messageForm").onsubmit = (e) => {
    e.preventDefault();
    const input = $("message");
    if (!input.value.trim()) return;
    if (sendMessage(omnicastChannels.typed(input.value))) {
      input.value = "";
      $("messageStatus").textContent = "sent";
    } else {
      $("messageStatus").textContent = "not connected to the broadcaster's data channel";
    }
  };
  window.addEventListener("pagehide", () => socket?.close());

  (async () => {
    config = await rtcConfig();
    connect();
  })();
})();
