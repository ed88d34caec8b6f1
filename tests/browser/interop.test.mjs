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

/** Where beeps begin in `samples` (Float32Array at 48 kHz): louder than 0.15 after at least
 * 150 ms below it, as the engine's detector does. */
function beepOnsets(samples) {
  const onsets = [];
  let lastLoud = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) > 0.15) {
      if (i - lastLoud >= 7200) onsets.push(i);
      lastLoud = i;
    }
  }
  return onsets;
}

/** The left channel of a 16-bit stereo WAV file, as floats. */
function wavLeft(file) {
  const buf = readFileSync(file);
  assert.equal(buf.toString("ascii", 0, 4), "RIFF");
  let at = 12;
  while (buf.toString("ascii", at, at + 4) !== "data") at += 8 + buf.readUInt32LE(at + 4);
  const start = at + 8;
  const frames = Math.floor((buf.length - start) / 4);
  const left = new Float32Array(frames);
  for (let i = 0; i < frames; i++) left[i] = buf.readInt16LE(start + i * 4) / 32768;
  return left;
}

test("a browser hears the desktop broadcaster's sound (Opus), muted until Enable audio", async () => {
  const page = await browserWatchesDesktop("640x360", ["--audio", "test-tone"]);
  // Sound arrives as Opus; the page starts muted and offers the button.
  const audio = await waitFor("audio packets", () => page.evaluate(async () => {
    const stats = await window.omnicast.pc.getStats();
    const a = [...stats.values()].find((s) => s.type === "inbound-rtp" && s.kind === "audio");
    return a && a.packetsReceived > 50 ? { mime: stats.get(a.codecId).mimeType, packets: a.packetsReceived } : null;
  }), 20_000);
  assert.equal(audio.mime, "audio/opus");
  assert.equal(await page.evaluate(() => document.getElementById("video").muted), true);
  assert.equal(await page.isVisible("#enableAudio"), true);
  await page.click("#enableAudio");
  assert.equal(await page.evaluate(() => document.getElementById("video").muted), false);
  // Headless Chromium plays nothing out loud: listen to the stream with WebAudio instead, for
  // 2.5 s, and find the test tone's beeps (one a second) over its quiet tone.
  const heard = await page.evaluate(async () => {
    const ctx = new AudioContext({ sampleRate: 48000 });
    await ctx.resume();
    const source = ctx.createMediaStreamSource(document.getElementById("video").srcObject);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let peak = 0, quietPeak = 0, loudBlocks = 0, blocks = 0;
    const end = performance.now() + 2500;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      analyser.getFloatTimeDomainData(buf);
      let p = 0;
      for (const s of buf) p = Math.max(p, Math.abs(s));
      peak = Math.max(peak, p);
      if (p < 0.15) quietPeak = Math.max(quietPeak, p);
      loudBlocks += p > 0.15 ? 1 : 0;
      blocks++;
    }
    await ctx.close();
    return { peak, quietPeak, loudBlocks, blocks };
  });
  assert.ok(heard.peak > 0.3, `beeps at −6 dBFS: ${JSON.stringify(heard)}`);
  assert.ok(heard.quietPeak > 0.01, `the quiet tone between beeps: ${JSON.stringify(heard)}`);
  // 100 ms beeps, one a second: a small share of the blocks, but some.
  assert.ok(heard.loudBlocks >= 2 && heard.loudBlocks < heard.blocks / 3, JSON.stringify(heard));
});

test("the desktop viewer plays the browser broadcaster page's microphone (its beeps in the WAV)", async () => {
  const server = await startServer();
  cleanups.push(() => server.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const caster = await browser.context.newPage();
  await caster.goto(`${server.url}/broadcast.html?room=ears`);
  await waitFor("browser broadcasting", () => caster.evaluate(() => window.omnicast.status === "live"));
  const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-ears-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const statsFile = path.join(dir, "stats.json");
  const wav = path.join(dir, "heard.wav");
  const viewer = run([
    "view", "--headless", "--media-bind", "127.0.0.1:0", "--server", server.url, "--room", "ears",
    "--frames", "150", "--stats-json", statsFile, "--audio-wav", wav,
  ]);
  const timer = setTimeout(() => viewer.child.kill("SIGKILL"), 60_000);
  const [code] = await viewer.exited;
  clearTimeout(timer);
  assert.equal(code, 0, viewer.output());
  const stats = JSON.parse(readFileSync(statsFile, "utf8"));
  assert.ok(stats.frames_decoded >= 150, JSON.stringify(stats));
  assert.ok(stats.audio.packets_received > 100, JSON.stringify(stats.audio));
  const left = wavLeft(wav);
  const onsets = beepOnsets(left);
  // Chromium's fake microphone beeps regularly: several in four seconds of sound.
  assert.ok(left.length > 48000 * 3, `${left.length} samples`);
  assert.ok(onsets.length >= 3, `beeps at ${onsets} in ${left.length} samples`);
});
