// The built-in broadcaster page (fake camera) and three viewer pages, connected only through
// omnicast-signal and its embedded STUN server: every viewer decodes frames at the sent size,
// then sees that the broadcaster left. Runs inside a private network namespace (see run.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitFor } from "../support/server.mjs";
import { launchChromium, framesDecoded } from "../support/browser.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("broadcaster page reaches three viewer pages through the embedded STUN server", async (t) => {
  const ice = await (await fetch(`${server.url}/ice-servers`)).json();
  assert.deepEqual(ice.iceServers, [{ urls: [`stun:127.0.0.1:${server.stunPort}`] }]);

  const room = "e2e";
  const caster = await browser.context.newPage();
  await caster.goto(`${server.url}/broadcast.html?room=${room}`);
  await caster.selectOption("#size", "640x480");
  await waitFor("broadcaster live", () => caster.evaluate(() => window.omnicast.status === "live"));
  const sent = await waitFor("640-wide capture", () =>
    caster.evaluate(() => {
      const s = window.omnicast.stream?.getVideoTracks()[0]?.getSettings();
      return s && s.width === 640 ? s : null;
    }),
  );

  const viewers = [];
  for (let i = 0; i < 3; i++) {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/?room=${room}`);
    viewers.push(page);
  }
  await waitFor("3 viewers counted", () => caster.evaluate(() => window.omnicast.viewers === 3), 20_000);

  for (const [i, page] of viewers.entries()) {
    const first = await waitFor(`viewer ${i} decoding`, () => framesDecoded(page), 20_000);
    await waitFor(`viewer ${i} decoding more`, async () => (await framesDecoded(page)) > first + 10, 20_000);
    // Chromium may start a connection below the capture size and ramp up within seconds.
    await waitFor(`viewer ${i} showing the sent width ${sent.width}`, () =>
      page.evaluate((w) => document.getElementById("video").videoWidth === w, sent.width), 20_000);
    await waitFor(`viewer ${i} live`, () => page.evaluate(() => window.omnicast.status === "live"), 5_000);
    // The connection used only loopback candidates: nothing left the machine.
    const remote = await page.evaluate(async () => {
      const stats = await window.omnicast.pc.getStats();
      const pair = [...stats.values()].find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
      return pair ? stats.get(pair.remoteCandidateId).address : null;
    });
    assert.equal(remote, "127.0.0.1");
  }
  await viewers[0].screenshot({ path: process.env.OMNICAST_SCREENSHOT_DIR ? `${process.env.OMNICAST_SCREENSHOT_DIR}/viewer.png` : undefined });
  await caster.screenshot({ path: process.env.OMNICAST_SCREENSHOT_DIR ? `${process.env.OMNICAST_SCREENSHOT_DIR}/broadcaster.png` : undefined });

  await caster.close();
  for (const [i, page] of viewers.entries()) {
    await waitFor(`viewer ${i} told the broadcaster left`, () => page.evaluate(() => window.omnicast.status === "left"));
    const text = await page.textContent("#status");
    assert.match(text, /broadcaster left/);
  }

  // The broadcaster comes back (a reload, a robot reboot): every viewer re-joins by itself.
  const again = await browser.context.newPage();
  await again.goto(`${server.url}/broadcast.html?room=${room}`);
  await again.selectOption("#size", "640x480");
  for (const [i, page] of viewers.entries()) {
    await waitFor(`viewer ${i} decoding the returned broadcaster`, async () => (await framesDecoded(page)) > 10, 20_000);
    await waitFor(`viewer ${i} live again`, () => page.evaluate(() => window.omnicast.status === "live"));
  }
  await again.close();
  t.diagnostic(`3 viewers decoded ${sent.width}x${sent.height}, saw the broadcaster leave and come back`);
});

test("a viewer that arrives first waits, then plays when the broadcaster starts", async () => {
  const room = "late";
  const viewer = await browser.context.newPage();
  await viewer.goto(`${server.url}/?room=${room}`);
  await waitFor("waiting state", () => viewer.evaluate(() => window.omnicast.status === "waiting"));
  assert.match(await viewer.textContent("#status"), /waiting for the broadcaster/);

  const caster = await browser.context.newPage();
  await caster.goto(`${server.url}/broadcast.html?room=${room}`);
  await caster.selectOption("#size", "640x480");
  await waitFor("viewer decoding", async () => (await framesDecoded(viewer)) > 5, 20_000);
  await caster.close();
  await viewer.close();
});

test("the camera picker really switches the camera, and viewers keep playing", async () => {
  // Chromium's fake_device_1 produces Y16 depth frames no encoder takes; fake_device_2 is a
  // normal colour camera, so switch 0 → 2.
  const cams = await launchChromium(["--use-fake-device-for-media-stream=device-count=3,fps=30"]);
  try {
    const room = "switch";
    const caster = await cams.context.newPage();
    await caster.goto(`${server.url}/broadcast.html?room=${room}`);
    await caster.selectOption("#size", "640x480");
    await waitFor("broadcaster live", () => caster.evaluate(() => window.omnicast.status === "live"));
    const other = await waitFor("cameras listed", () =>
      caster.$$eval("#videoSource option", (os) => os.find((o) => o.textContent === "fake_device_2")?.value),
    );
    const viewer = await cams.context.newPage();
    await viewer.goto(`${server.url}/?room=${room}`);
    const before = await waitFor("viewer decoding", () => framesDecoded(viewer), 20_000);

    const current = await caster.evaluate(() => window.omnicast.stream.getVideoTracks()[0].getSettings().deviceId);
    assert.notEqual(current, other);
    await caster.selectOption("#videoSource", other);
    await waitFor("capture from the other camera", () =>
      caster.evaluate((id) => window.omnicast.stream.getVideoTracks()[0].getSettings().deviceId === id, other),
    );
    // The viewer's sender track was replaced in place: same connection, still decoding.
    const pcBefore = await viewer.evaluate(() => window.omnicast.pc.localDescription.sdp.length);
    await waitFor("viewer decoding after the switch", async () => (await framesDecoded(viewer)) > before + 30, 20_000);
    assert.equal(await viewer.evaluate(() => window.omnicast.pc.localDescription.sdp.length), pcBefore);
    assert.equal(
      await caster.evaluate(() => [...window.omnicast.peers.values()][0].getSenders().find((s) => s.track?.kind === "video").track.getSettings().deviceId),
      other,
      "the viewer's connection sends the newly chosen camera",
    );

    // The microphone picker switches the microphone the viewer hears.
    const mics = await caster.$$eval("#audioSource option", (os) => os.map((o) => o.value));
    const micNow = await caster.evaluate(() => window.omnicast.stream.getAudioTracks()[0].getSettings().deviceId);
    const otherMic = mics.find((id) => id !== micNow && id !== "default" && id !== "communications");
    assert.ok(otherMic, `a second microphone to switch to (have ${mics})`);
    await caster.selectOption("#audioSource", otherMic);
    await waitFor("the viewer's connection sends the other microphone", () =>
      caster.evaluate((id) => {
        const sender = [...window.omnicast.peers.values()][0].getSenders().find((s) => s.track?.kind === "audio");
        return sender.track.getSettings().deviceId === id;
      }, otherMic),
    );

    // Size presets, including the 2:1 360° ones, and the frame-rate choice reach the camera.
    await caster.selectOption("#size", "1920x960");
    await caster.selectOption("#fps", "15");
    await waitFor("camera at 1920x960 15 fps", () =>
      caster.evaluate(() => {
        const s = window.omnicast.stream.getVideoTracks()[0].getSettings();
        return s.width === 1920 && s.height === 960 && Math.round(s.frameRate) === 15;
      }),
    );
    await waitFor("viewer receiving 1920x960", () =>
      viewer.evaluate(() => document.getElementById("video").videoWidth === 1920), 20_000);
  } finally {
    await cams.close();
  }
});
