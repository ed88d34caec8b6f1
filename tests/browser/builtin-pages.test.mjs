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
    const width = await page.evaluate(() => document.getElementById("video").videoWidth);
    assert.equal(width, sent.width, `viewer ${i} shows the sent width`);
    assert.equal(await page.evaluate(() => window.omnicast.status), "live");
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
  t.diagnostic(`3 viewers decoded ${sent.width}x${sent.height} and saw the broadcaster leave`);
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
