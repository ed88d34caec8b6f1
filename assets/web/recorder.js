// Record buttons for the pages: MediaRecorder on the stream a page sends (broadcaster) or
// receives (viewer), in the container the browser offers (MP4 where it can, else WebM), saved
// as a download when stopped. Chunks every second, so the size shown grows as it goes.
"use strict";

const omnicastRecorder = (() => {
  /** What MediaRecorder is asked for, best first; the first the browser supports is used. */
  const TYPES = [
    "video/mp4;codecs=avc1,opus",
    "video/mp4",
    "video/webm;codecs=h264,opus",
    "video/webm;codecs=vp8,opus",
    "video/webm",
  ];

  function supportedType() {
    if (typeof MediaRecorder === "undefined") return null;
    return TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || "";
  }

  const clock = (ms) => {
    const s = Math.floor(ms / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };

  /**
   * Wires `button` to record `getStream()`; `label` shows the time and size. `who` names the
   * file ("broadcast" or "view"). Returns the state tests read: {recording, bytes, type, saved}.
   */
  function attach({ button, label, getStream, who }) {
    const state = { recording: false, bytes: 0, type: null, saved: null, error: null };
    const type = supportedType();
    if (type === null) {
      button.disabled = true;
      button.title = "This browser cannot record (no MediaRecorder)";
      return state;
    }
    let recorder = null;
    let chunks = [];
    let started = 0;
    let timer = null;

    function show() {
      // Some containers (Chromium's MP4) hand their data over only at the end: no size till then.
      const size = state.bytes > 0 ? ` · ${(state.bytes / 1e6).toFixed(1)} MB` : "";
      label.textContent = state.recording
        ? `REC ${clock(Date.now() - started)}${size}`
        : state.saved
          ? `saved ${state.saved}`
          : "";
    }

    function start() {
      const stream = getStream();
      if (!stream || stream.getTracks().length === 0) {
        state.error = "nothing to record yet";
        label.textContent = state.error;
        return;
      }
      try {
        recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
      } catch (e) {
        state.error = `cannot record: ${e.message || e}`;
        label.textContent = state.error;
        return;
      }
      chunks = [];
      state.bytes = 0;
      state.type = recorder.mimeType || type;
      recorder.ondataavailable = (e) => {
        if (e.data && e.data.size > 0) {
          chunks.push(e.data);
          state.bytes += e.data.size;
          show();
        }
      };
      recorder.onstop = () => save();
      recorder.onerror = (e) => {
        state.error = `recording failed: ${e.error?.message || e.error || e}`;
        label.textContent = state.error;
      };
      recorder.start(1000);
      started = Date.now();
      state.recording = true;
      state.error = null;
      button.textContent = "Stop recording";
      button.setAttribute("aria-pressed", "true");
      timer = setInterval(show, 500);
      show();
    }

    function save() {
      clearInterval(timer);
      state.recording = false;
      button.textContent = "Record";
      button.setAttribute("aria-pressed", "false");
      const blobType = (state.type || "video/webm").split(";")[0];
      const blob = new Blob(chunks, { type: blobType });
      const ext = blobType === "video/mp4" ? "mp4" : "webm";
      const { room } = omnicastCommon.roomAndKey();
      const stamp = new Date(started).toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
      const name = `omnicast-${who}-${room || "main"}-${stamp}.${ext}`;
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      state.saved = name;
      show();
    }

    button.addEventListener("click", () => {
      if (state.recording) recorder.stop();
      else start();
    });
    return state;
  }

  return { attach, supportedType };
})();
