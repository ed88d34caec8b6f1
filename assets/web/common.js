// Shared by the broadcaster and viewer pages. Speaks the classic broadcast protocol
// (broadcaster / watcher / offer / answer / candidate / disconnectPeer) plus Omnicast's
// extensions (rooms, broadcaster key, viewers, broadcasterLeft, noBroadcaster, error).
"use strict";

const omnicastCommon = (() => {
  const params = new URLSearchParams(window.location.search);

  /** Room and key from the page URL (?room=lab&key=secret). */
  function roomAndKey() {
    return { room: params.get("room") || "", key: params.get("key") || "" };
  }

  /** Socket.IO connection to this server, joined to the page's room. */
  function connectSocket() {
    const { room, key } = roomAndKey();
    // `auth` keeps the key out of URLs and logs; the server also accepts ?room= for old clients.
    return io(window.location.origin, {
      auth: { room, key },
      reconnectionDelayMax: 5000,
    });
  }

  /** The ICE servers the signal server recommends (its own STUN server first). */
  async function rtcConfig() {
    try {
      const res = await fetch("/ice-servers", { cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json();
      return { iceServers: body.iceServers || [] };
    } catch (e) {
      console.warn("no ICE server list; host candidates only", e);
      return { iceServers: [] };
    }
  }

  function setStatus(el, state, text) {
    el.dataset.state = state;
    el.textContent = text;
  }

  return { roomAndKey, connectSocket, rtcConfig, setStatus };
})();
