// The desktop engine and browsers interoperate through the same server: a browser watches the
// headless desktop broadcaster, and the headless desktop viewer watches the browser broadcaster
// page (fake camera, H.264 negotiated).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startServer, waitFor } from "../support/server.mjs";
import { launchChromium, framesDecoded } from "../support/browser.mjs";
import { runOmnicast } from "../support/process.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const run = (args) => runOmnicast(args, cleanups);

/** Opens the browser viewer page of the server at `url` and waits until it has decoded a first
 * frame and 30 more; returns the page. */
async function browserWatches(url, what) {
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.goto(`${url}/`);
  const first = await waitFor(`browser decoding ${what}`, () => framesDecoded(page), 30_000);
  await waitFor("more frames", async () => (await framesDecoded(page)) > first + 30, 20_000);
  return page;
}

/** Starts the desktop broadcaster at `size` (with `extra` arguments) and checks that a browser
 * viewer decodes it as H.264; returns the viewer's page. */
async function browserWatchesDesktop(size, extra = []) {
  const caster = run([
    "broadcast", "--headless", "--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0",
    "--media-bind", "127.0.0.1", "--source", "test-pattern", "--size", size, ...extra,
  ]);
  const url = await waitFor("broadcaster's server URL", () => caster.output().match(/--server (http:\/\/\S+)/)?.[1], 30_000);
  const page = await browserWatches(url, "the desktop stream");
  const [width, height] = size.split("x").map(Number);
  assert.deepEqual(
    await page.evaluate(() => [document.getElementById("video").videoWidth, document.getElementById("video").videoHeight]),
    [width, height],
  );
  assert.equal(await page.evaluate(() => window.omnicast.status), "live");
  const codec = await page.evaluate(async () => {
    const stats = await window.omnicast.pc.getStats();
    const inbound = [...stats.values()].find((s) => s.type === "inbound-rtp" && s.kind === "video");
    return stats.get(inbound.codecId).mimeType;
  });
  assert.equal(codec, "video/H264");
  return page;
}

test("a browser watches a kiosk broadcaster (the app's own hosted server)", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-kiosk-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, "omnicast.toml");
  writeFileSync(config, [
    'mode = "broadcaster"',
    'media_bind = "127.0.0.1:0"',
    "[broadcast]",
    'source = "test-pattern"',
    'size = "1920x960"',
    'bind = "127.0.0.1:0"',
    'stun_bind = "127.0.0.1:0"',
  ].join("\n"));
  const caster = run(["--kiosk", "--config", config, "--headless"]);
  const url = await waitFor("kiosk's server URL", () => caster.output().match(/--server (http:\/\/\S+)/)?.[1], 30_000);
  const page = await browserWatches(url, "the kiosk's stream");
  assert.equal(await page.evaluate(() => document.getElementById("video").videoWidth), 1920);
});

test("a browser watches the desktop broadcaster", async () => {
  await browserWatchesDesktop("640x360");
});

test("a browser watches a 360° desktop broadcast encoded on several threads (several slices a picture)", async () => {
  const page = await browserWatchesDesktop("1920x960", ["--encode-threads", "2"]);
  // Pictures keep coming whole: nothing the browser could not decode.
  const dropped = await page.evaluate(async () => {
    const stats = await window.omnicast.pc.getStats();
    const inbound = [...stats.values()].find((s) => s.type === "inbound-rtp" && s.kind === "video");
    return { pli: inbound.pliCount, lost: inbound.packetsLost };
  });
  assert.deepEqual(dropped, { pli: 0, lost: 0 });
});

test("the desktop viewer watches the browser broadcaster page", async () => {
  const server = await startServer();
  cleanups.push(() => server.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const caster = await browser.context.newPage();
  await caster.goto(`${server.url}/broadcast.html?room=desk`);
  await caster.selectOption("#size", "640x480");
  await waitFor("browser broadcasting", () => caster.evaluate(() => window.omnicast.status === "live"));

  const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-interop-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const statsFile = path.join(dir, "stats.json");
  const viewer = run([
    "view", "--headless", "--media-bind", "127.0.0.1:0", "--server", server.url, "--room", "desk",
    "--frames", "60", "--stats-json", statsFile,
  ]);
  const timer = setTimeout(() => viewer.child.kill("SIGKILL"), 60_000);
  const [code] = await viewer.exited;
  clearTimeout(timer);
  assert.equal(code, 0, viewer.output());
  const stats = JSON.parse(readFileSync(statsFile, "utf8"));
  assert.ok(stats.frames_decoded >= 60, JSON.stringify(stats));
  assert.ok(stats.width > 0 && stats.height > 0, JSON.stringify(stats));
});
