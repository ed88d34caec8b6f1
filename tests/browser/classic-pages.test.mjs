// Existing classic pages keep working with only the server swapped: served with --web-root,
// first with the Socket.IO 4 client the server provides at /socket.io/socket.io.js, then with an
// old page that bundles the Socket.IO 2 client (Engine.IO v3) and listens for `bye`.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startServer, waitFor, repoRoot } from "../support/server.mjs";
import { launchChromium, framesDecoded } from "../support/browser.mjs";

const fixture = path.join(repoRoot, "tests/fixtures/classic");
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function classicRun(webRoot, expectedEngineIo) {
  const server = await startServer(["--web-root", webRoot]);
  cleanups.push(() => server.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());

  const caster = await browser.context.newPage();
  await caster.goto(`${server.url}/broadcast.html`);
  await waitFor("camera on", () => caster.evaluate(() => !!document.querySelector("video").srcObject));
  await waitFor("socket connected", () => caster.evaluate(() => socket.connected));
  assert.equal(await caster.evaluate(() => Number(socket.io.engine.transport.query.EIO)), expectedEngineIo);

  const viewers = [];
  for (let i = 0; i < 2; i++) {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/`);
    viewers.push(page);
  }
  for (const [i, page] of viewers.entries()) {
    const first = await waitFor(`classic viewer ${i} decoding`, () => framesDecoded(page, "peerConnection"), 20_000);
    await waitFor(`classic viewer ${i} decoding more`, async () => (await framesDecoded(page, "peerConnection")) > first + 10, 20_000);
    // Chromium may start below the capture size and ramp up as its bandwidth estimate grows.
    await waitFor(`classic viewer ${i} at 640 wide`, () => page.evaluate(() => document.querySelector("video").videoWidth === 640), 20_000);
  }
  assert.equal(await caster.evaluate(() => Object.keys(peerConnections).length), 2);
  await viewers[0].close();
  await waitFor("broadcaster closed the departed viewer's connection", () =>
    caster.evaluate(() => Object.keys(peerConnections).length === 1),
  );
  assert.ok(
    (await framesDecoded(viewers[1], "peerConnection")) > 0,
    "the remaining viewer is unaffected",
  );
}

test("classic pages with the server's Socket.IO 4 client", async () => {
  await classicRun(fixture, 4);
});

test("classic pages bundling the Socket.IO 2 client (Engine.IO v3, `bye`)", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-classic-v2-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(fixture, dir, { recursive: true });
  cpSync(path.join(repoRoot, "node_modules/socket.io-client-v2/dist/socket.io.js"), path.join(dir, "socket.io-v2.js"));
  for (const page of ["broadcast.html", "index.html"]) {
    const file = path.join(dir, page);
    let html = readFileSync(file, "utf8").replace("/socket.io/socket.io.js", "/socket.io-v2.js");
    if (page === "broadcast.html") html = html.replace("<script src=\"/broadcast.js\">", "<script>window.DISCONNECT_EVENT = \"bye\";</script>\n    <script src=\"/broadcast.js\">");
    writeFileSync(file, html);
  }
  await classicRun(dir, 3);
});
