// Recording and browsers: the viewer page's Record button saves what it receives and the
// broadcaster page's what it sends (MediaRecorder, the container Chromium offers), both with
// picture and sound as ffprobe reads them; and Chromium plays the desktop's own recordings, the
// broadcaster's and a headless viewer's, picture and sound.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startServer, waitFor } from "../support/server.mjs";
import { launchChromium, framesDecoded } from "../support/browser.mjs";
import { runOmnicast, hostedUrl } from "../support/process.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function scratch(name) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `omnicast-${name}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** ffprobe's streams (codec type → codec name) and duration of `file`. */
function probe(file) {
  const out = execFileSync("ffprobe", ["-v", "error", "-show_format", "-show_streams", "-of", "json", file]);
  const json = JSON.parse(out.toString());
  const streams = Object.fromEntries(json.streams.map((s) => [s.codec_type, s.codec_name]));
  // WebM from MediaRecorder has no duration in its header: count the packets' time instead.
  let duration = Number(json.format.duration);
  if (!Number.isFinite(duration)) {
    const pts = execFileSync("ffprobe", [
      "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0", file,
    ]).toString().trim().split("\n").map(Number).filter(Number.isFinite);
    duration = Math.max(...pts) - Math.min(...pts);
  }
  return { streams, duration };
}

/** Clicks Record on `page`, waits `ms`, clicks it again and saves the download into `dir`. */
async function recordOnPage(page, ms, dir) {
  await page.click("#record");
  await waitFor("recording", () => page.evaluate(() => window.omnicast.record.recording), 5_000);
  await page.waitForTimeout(ms);
  assert.match(await page.textContent("#recordStatus"), /^REC 0:0\d( · \d+\.\d MB)?$/);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#record")]);
  const file = path.join(dir, download.suggestedFilename());
  await download.saveAs(file);
  return file;
}

test("the viewer page records what it receives, picture and sound", async () => {
  const caster = runOmnicast([
    "broadcast", "--headless", "--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0",
    "--media-bind", "127.0.0.1", "--source", "test-pattern", "--size", "640x360", "--audio", "test-tone",
  ], cleanups);
  const url = await waitFor("broadcaster's server URL", () => hostedUrl(caster), 30_000);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.goto(`${url}/`);
  await waitFor("decoding", async () => (await framesDecoded(page)) > 10, 30_000);
  const file = await recordOnPage(page, 3000, scratch("page-view"));
  assert.match(path.basename(file), /^omnicast-view-main-\d{8}T\d{6}Z\.(webm|mp4)$/);
  const { streams, duration } = probe(file);
  assert.ok(streams.video && streams.audio, JSON.stringify(streams));
  assert.ok(duration >= 2.0 && duration <= 4.5, `${duration} s`);
});

test("the broadcaster page records what it sends, picture and sound", async () => {
  const server = await startServer();
  cleanups.push(() => server.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.goto(`${server.url}/broadcast.html?room=rec`);
  await waitFor("browser broadcasting", () => page.evaluate(() => window.omnicast.status === "live"));
  const file = await recordOnPage(page, 3000, scratch("page-broadcast"));
  assert.match(path.basename(file), /^omnicast-broadcast-rec-\d{8}T\d{6}Z\.(webm|mp4)$/);
  const { streams, duration } = probe(file);
  assert.ok(streams.video && streams.audio, JSON.stringify(streams));
  assert.ok(duration >= 2.0 && duration <= 4.5, `${duration} s`);
});

/** Keeps every download of `page` in `dir`; returns the list of files, growing. */
function keepDownloads(page, dir) {
  const files = [];
  page.on("download", async (download) => {
    const file = path.join(dir, `${files.length}-${download.suggestedFilename()}`);
    await download.saveAs(file);
    files.push(file);
  });
  return files;
}

test("a recording goes on across a broadcaster that leaves and comes back, and across a camera switch, a file each", async () => {
  const server = await startServer();
  cleanups.push(() => server.stop());
  // Three fake cameras (the third is a colour one: see builtin-pages.test.mjs).
  const browser = await launchChromium(["--use-fake-device-for-media-stream=device-count=3,fps=30"]);
  cleanups.push(() => browser.close());
  const room = "follow";
  const broadcast = async () => {
    const caster = await browser.context.newPage();
    await caster.goto(`${server.url}/broadcast.html?room=${room}`);
    await waitFor("browser broadcasting", () => caster.evaluate(() => window.omnicast.status === "live"));
    return caster;
  };
  let caster = await broadcast();
  const viewer = await browser.context.newPage();
  await viewer.goto(`${server.url}/?room=${room}`);
  await waitFor("the viewer live", () => viewer.evaluate(() => window.omnicast.status === "live"), 20_000);

  // The viewer records; the broadcaster leaves (its file is saved) and comes back (a new one).
  const viewed = keepDownloads(viewer, scratch("follow-view"));
  await viewer.click("#record");
  await waitFor("recording", () => viewer.evaluate(() => window.omnicast.record.recording), 5_000);
  await viewer.waitForTimeout(2000);
  await caster.close();
  await waitFor("the first file saved", () => viewed.length === 1, 10_000);
  assert.match(await viewer.textContent("#recordStatus"), /^REC waiting for the picture/);
  caster = await broadcast();
  await waitFor("recording again", () => viewer.evaluate(() => window.omnicast.record.recording), 20_000);
  await viewer.waitForTimeout(2000);
  await viewer.click("#record");
  await waitFor("the second file saved", () => viewed.length === 2, 10_000);
  for (const file of viewed) {
    const { streams, duration } = probe(file);
    assert.ok(streams.video && streams.audio, `${file}: ${JSON.stringify(streams)}`);
    assert.ok(duration >= 1.0, `${file}: ${duration} s`);
  }

  // The broadcaster records and switches cameras: the file so far, then one from the new camera.
  const sent = keepDownloads(caster, scratch("follow-broadcast"));
  const other = await waitFor("cameras listed", () =>
    caster.$$eval("#videoSource option", (os) => os.find((o) => o.textContent === "fake_device_2")?.value));
  await caster.click("#record");
  await waitFor("recording", () => caster.evaluate(() => window.omnicast.record.recording), 5_000);
  await caster.waitForTimeout(2000);
  await caster.selectOption("#videoSource", other);
  await waitFor("the first camera's file saved", () => sent.length === 1, 10_000);
  await waitFor("recording the other camera", () => caster.evaluate(() => window.omnicast.record.recording), 10_000);
  await caster.waitForTimeout(2000);
  await caster.click("#record");
  await waitFor("the second camera's file saved", () => sent.length === 2, 10_000);
  for (const file of sent) {
    const { streams, duration } = probe(file);
    assert.ok(streams.video, `${file}: ${JSON.stringify(streams)}`);
    assert.ok(duration >= 1.0, `${file}: ${duration} s`);
  }
});

/** Plays `file` in a page (served through playwright) for two seconds of its time; returns
 * what Chromium decoded. */
async function playInChromium(browser, file) {
  const page = await browser.context.newPage();
  await page.route("http://127.0.0.1/recording.mp4", (route) =>
    route.fulfill({ path: file, contentType: "video/mp4" }));
  await page.route("http://127.0.0.1/", (route) =>
    route.fulfill({ contentType: "text/html", body: "<video id=v src=/recording.mp4 muted></video>" }));
  await page.goto("http://127.0.0.1/");
  await page.evaluate(() => document.getElementById("v").play());
  await waitFor(`${path.basename(file)} playing 2 s`, () => page.evaluate(() => document.getElementById("v").currentTime >= 2), 20_000);
  const seen = await page.evaluate(() => {
    const v = document.getElementById("v");
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      duration: v.duration,
      video: v.webkitVideoDecodedByteCount,
      audio: v.webkitAudioDecodedByteCount,
      error: v.error?.message || null,
    };
  });
  await page.close();
  return seen;
}

test("Chromium plays the desktop broadcaster's and a headless viewer's recordings", async () => {
  const sent = scratch("desk-sent");
  const received = scratch("desk-received");
  const caster = runOmnicast([
    "broadcast", "--headless", "--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0",
    "--media-bind", "127.0.0.1", "--source", "test-pattern", "--size", "640x360", "--audio", "test-tone",
    "--record", sent,
  ], cleanups);
  const url = await waitFor("broadcaster's server URL", () => hostedUrl(caster), 30_000);
  const viewer = runOmnicast([
    "view", "--headless", "--media-bind", "127.0.0.1:0", "--server", url, "--frames", "120", "--record", received,
  ], cleanups);
  const [code] = await viewer.exited;
  assert.equal(code, 0, viewer.output());
  await caster.stop();
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  for (const dir of [sent, received]) {
    const name = readdirSync(dir).find((f) => f.endsWith(".mp4"));
    assert.ok(name, `a recording in ${dir}`);
    const seen = await playInChromium(browser, path.join(dir, name));
    assert.equal(seen.error, null);
    assert.deepEqual([seen.width, seen.height], [640, 360]);
    assert.ok(seen.duration >= 3, JSON.stringify(seen));
    assert.ok(seen.video > 0 && seen.audio > 0, `picture and sound decoded: ${JSON.stringify(seen)}`);
  }
});
