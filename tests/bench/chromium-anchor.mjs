// Anchor for the fan-out benchmark: Chromium's own broadcaster page (fake camera, 1280x720 at
// 30 fps) sending to N receivers, the way a browser broadcaster works: one encoder per viewer.
// Prints the broadcaster browser's CPU (its whole process tree, from /proc) for each N.
// Receivers run in a second browser and do not decode (their tracks are never attached), so
// they cost the machine little. Run inside a private network namespace (scripts/bench-media.sh).
//
//   node tests/bench/chromium-anchor.mjs [N,N,...] [seconds]
import { chromium } from "playwright-core";
import { startServer, waitFor } from "../support/server.mjs";
import { treeCpuSeconds } from "../support/proc.mjs";
import { FAKE_DEVICES, MACHINE_FLAGS } from "../support/browser.mjs";

const counts = (process.argv[2] || "1,5,20").split(",").map(Number);
const seconds = Number(process.argv[3] || 10);
// As a person's browser runs, with the fake devices this machine needs (tests/support/browser.mjs).
const args = [...MACHINE_FLAGS, ...FAKE_DEVICES];


// A receiver that answers and never attaches the track (so it does not decode).
async function receiver(page, url) {
  await page.goto(`${url}/healthz`);
  await page.addScriptTag({ url: `${url}/socket.io/socket.io.js` });
  await page.evaluate(() => {
    const socket = io(window.location.origin, { auth: { room: "anchor" } });
    window.stats = { connected: false };
    socket.on("offer", async (id, description) => {
      const pc = new RTCPeerConnection({ iceServers: [] });
      window.pc = pc;
      pc.onicecandidate = (e) => e.candidate && socket.emit("candidate", id, e.candidate);
      pc.onconnectionstatechange = () => (window.stats.connected = pc.connectionState === "connected");
      await pc.setRemoteDescription(description);
      await pc.setLocalDescription(await pc.createAnswer());
      socket.emit("answer", id, pc.localDescription);
    });
    socket.on("candidate", (id, c) => window.pc?.addIceCandidate(c).catch(() => {}));
    socket.on("connect", () => socket.emit("watcher"));
    socket.on("broadcaster", () => socket.emit("watcher"));
  });
}

const server = await startServer();
const casterServer = await chromium.launchServer({ executablePath: "/usr/bin/chromium", headless: true, args });
const casterBrowser = await chromium.connect(casterServer.wsEndpoint());
const receiversBrowser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args });
try {
  const caster = await casterBrowser.newPage();
  await caster.goto(`${server.url}/broadcast.html?room=anchor`);
  await caster.selectOption("#size", "1280x720");
  await waitFor("broadcasting", () => caster.evaluate(() => window.omnicast.status === "live"));
  const pid = casterServer.process().pid;
  console.log(`Chromium broadcaster page, 1280x720 30 fps fake camera, loopback, ${seconds} s per N`);
  console.log(`${"N".padStart(4)} ${"cpu %".padStart(9)} ${"frames sent/s/viewer".padStart(22)}`);
  const pages = [];
  for (const n of counts) {
    while (pages.length < n) {
      const p = await receiversBrowser.newPage();
      await receiver(p, server.url);
      pages.push(p);
    }
    await waitFor(`${n} receivers connected`, async () => {
      const states = await Promise.all(pages.map((p) => p.evaluate(() => window.stats.connected)));
      return states.every(Boolean);
    }, 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const sent = async () => caster.evaluate(async () => {
      let frames = 0;
      for (const pc of window.omnicast.peers.values()) {
        for (const s of (await pc.getStats()).values()) {
          if (s.type === "outbound-rtp" && s.kind === "video") frames += s.framesEncoded || 0;
        }
      }
      return frames;
    });
    const f0 = await sent();
    const c0 = treeCpuSeconds(pid);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const elapsed = (Date.now() - t0) / 1000;
    const cpu = ((treeCpuSeconds(pid) - c0) / elapsed) * 100;
    const perViewer = (await sent() - f0) / elapsed / n;
    console.log(`${String(n).padStart(4)} ${cpu.toFixed(1).padStart(8)}% ${perViewer.toFixed(1).padStart(22)}`);
  }
} finally {
  await receiversBrowser.close();
  await casterBrowser.close();
  await casterServer.close();
  await server.stop();
}
