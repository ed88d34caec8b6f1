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
   * file ("broadcast" or "view"). Returns the state tests read ({recording, bytes, type, saved,
   * error}) and `follow()`, which the page calls whenever the stream it sends or shows is
   * replaced (another camera, a reconnected broadcaster): a recording cannot change streams, so
   * the file so far is saved and the next one starts on the new stream. A stream that ends (the
   * broadcaster left) saves the file too; recording goes on once a stream comes back, until Stop.
   */
  function attach({ button, label, getStream, who }) {
    /** Whether the person asked to record (from Record to Stop), whatever the stream does. */
    let wanted = false;
    let recorder = null;
    let recorded = null;
    const state = { recording: false, bytes: 0, type: null, saved: null, error: null, follow };
    const type = supportedType();
    if (type === null) {
      button.disabled = true;
      button.title = "This browser cannot record (no MediaRecorder)";
      return state;
    }
    let chunks = [];
    let started = 0;
    let timer = null;

    function show() {
      // Some containers (Chromium's MP4) hand their data over only at the end: no size till then.
      const size = state.bytes > 0 ? ` · ${(state.bytes / 1e6).toFixed(1)} MB` : "";
      label.textContent = state.recording
        ? `REC ${clock(Date.now() - started)}${size}`
        : wanted
          ? `REC waiting for the picture${state.saved ? ` (saved ${state.saved})` : ""}`
          : state.saved
            ? `saved ${state.saved}`
            : "";
    }

    function showButton() {
      button.textContent = wanted ? "Stop recording" : "Record";
      button.setAttribute("aria-pressed", String(wanted));
    }

    const usable = (stream) => stream && stream.getTracks().some((t) => t.readyState === "live");

    /** Starts a file on the current stream, if there is one. */
    function begin() {
      const stream = getStream();
      if (!usable(stream)) {
        show();
        return false;
      }
      let next;
      try {
        next = new MediaRecorder(stream, type ? { mimeType: type } : {});
      } catch (e) {
        state.error = `cannot record: ${e.message || e}`;
        wanted = false;
        showButton();
        label.textContent = state.error;
        return false;
      }
      recorder = next;
      recorded = stream;
      chunks = [];
      state.bytes = 0;
      state.type = next.mimeType || type;
      next.ondataavailable = (e) => {
        if (e.data && e.data.size > 0) {
          chunks.push(e.data);
          state.bytes += e.data.size;
          show();
        }
      };
      // Stop, a replaced stream or an ended one: save, then go on if still wanted.
      next.onstop = () => {
        recorder = null;
        recorded = null;
        save();
        if (wanted) begin();
      };
      next.onerror = (e) => {
        state.error = `recording failed: ${e.error?.message || e.error || e}`;
        label.textContent = state.error;
      };
      next.start(1000);
      started = Date.now();
      state.recording = true;
      state.error = null;
      clearInterval(timer);
      timer = setInterval(show, 500);
      show();
      return true;
    }

    function start() {
      if (!usable(getStream())) {
        state.error = "nothing to record yet";
        label.textContent = state.error;
        return;
      }
      wanted = true;
      showButton();
      begin();
    }

    function stop() {
      wanted = false;
      showButton();
      if (recorder) recorder.stop();
      else show();
    }

    /** The page's stream was replaced: a new file on the new stream (see above). */
    function follow() {
      if (!wanted || (recorder && recorded === getStream())) return;
      if (recorder) recorder.stop();
      else begin();
    }

    function save() {
      clearInterval(timer);
      state.recording = false;
      if (chunks.length === 0) {
        show();
        return;
      }
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
      if (wanted) stop();
      else start();
    });
    return state;
  }

  return { attach, supportedType };
})();
