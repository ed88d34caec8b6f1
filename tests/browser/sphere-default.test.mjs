// The viewer page in a browser as people run it (tests/support/browser.mjs: no autoplay
// exemption): the 360° view shows the picture whatever the timing of the video's first frame (at
// each 2:1 size and frame rate, on every reload, when playback starts late), the flat view too,
// and a browser that will not start the video by itself gets a Play button.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoRoot, waitFor } from "../support/server.mjs";
import { launchChromium } from "../support/browser.mjs";
import { COLOURS, compassPng, desktopBroadcaster as broadcaster, middle, near } from "../support/compass.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-sphere-default-"));
cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
const desktopBroadcaster = (args) => broadcaster(args, cleanups);

/** The colour at the middle of the flat view's current video frame. */
async function flatMiddle(page) {
  return page.evaluate(() => {
    const video = document.getElementById("video");
    const copy = document.createElement("canvas");
    [copy.width, copy.height] = [video.videoWidth, video.videoHeight];
    const ctx = copy.getContext("2d");
    ctx.drawImage(video, 0, 0);
    return [...ctx.getImageData(copy.width >> 1, copy.height >> 1, 1, 1).data.slice(0, 3)];
  });
}

/** The WebGL errors `page` prints to its console, from now on. */
function glErrors(page) {
  const errors = [];
  page.on("console", (m) => {
    if (/GL_INVALID|WebGL: /.test(m.text())) errors.push(m.text());
  });
  return errors;
}

// A browser as people run it (no autoplay exemption): the video may present its first frame
// before muted autoplay has started it, and a texture allocated from that frame had no picture,
// so the view stayed black for good. The picture must show within 3 s of the page saying live,
// at each 2:1 size and frame rate, and on every one of ten reloads.
test("opened by a link in a browser with default settings, the 360° view shows the picture at every size and on every reload", async () => {
  const png = path.join(dir, "compass-sizes.png");
  await compassPng(png);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  const errors = glErrors(page);
  await page.setViewportSize({ width: 800, height: 600 });
  /** Opens (or reloads) the link; the middle is green within 3 s of "live". */
  const showsGreen = async (open, what) => {
    await open();
    await waitFor(`${what}: live`, () => page.evaluate(() => window.omnicast.status === "live"), 30_000);
    await waitFor(`${what}: green (right) within 3 s of live`, async () => near(await middle(page), COLOURS.green), 3_000);
  };
  for (const size of ["640x320", "1280x640", "1920x960"]) {
    for (const fps of ["15", "30"]) {
      const { caster, url } = await desktopBroadcaster(["--source", `image:${png}`, "--size", size, "--fps", fps]);
      await showsGreen(() => page.goto(`${url}/?view=360&yaw=90&pitch=0&fov=60`), `${size} at ${fps} fps`);
      assert.equal(await page.evaluate(() => { const v = document.getElementById("video"); return `${v.videoWidth}x${v.videoHeight}`; }), size);
      if (size === "1920x960" && fps === "30") {
        for (let i = 1; i <= 10; i++) await showsGreen(() => page.reload(), `reload ${i}`);
        // The flat view of the same link shows the picture too (its middle is the front: red).
        await page.goto(`${url}/?view=flat`);
        await waitFor("flat: live", () => page.evaluate(() => window.omnicast.status === "live"), 30_000);
        await waitFor("flat: the middle is red", async () => near(await flatMiddle(page), COLOURS.red), 3_000);
      }
      await caster.stop();
    }
  }
  assert.deepEqual(errors, [], "no WebGL errors");
});

/** The compass picture broadcast at `size`, and an 800×600 page in a browser of its own. */
async function compassBroadcast(name, size) {
  const png = path.join(dir, `compass-${name}.png`);
  await compassPng(png);
  const { url } = await desktopBroadcaster(["--source", `image:${png}`, "--size", size]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 800, height: 600 });
  return { url, page };
}

/** Makes `page` a browser that shows a video's first frame and starts it only `delayMs` later
 * (or, with `refuse`, only from a tap): no autoplay attribute, play() late or refused. */
async function latePlay(page, { delayMs = 0, refuse = false }) {
  await page.addInitScript(({ delayMs, refuse }) => {
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function () {
      if (refuse && !tapped) {
        return Promise.reject(new DOMException("play() can only be initiated by a user gesture", "NotAllowedError"));
      }
      return new Promise((resolve, reject) => setTimeout(() => play.call(this).then(resolve, reject), delayMs));
    };
    window.pausedFrames = 0;
    let tapped = false;
    window.addEventListener("pointerdown", () => (tapped = true), { capture: true });
    document.addEventListener("DOMContentLoaded", () => {
      const video = document.getElementById("video");
      video.autoplay = false;
      const onFrame = () => {
        if (video.paused) window.pausedFrames += 1;
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    });
  }, { delayMs, refuse });
}

test("the 360° view shows the picture however late the video starts after its first frame, and after a lost GL context", async () => {
  const { url, page } = await compassBroadcast("late", "1920x960");
  const errors = glErrors(page);
  await latePlay(page, { delayMs: 1500 });
  await page.goto(`${url}/?view=360&yaw=90&pitch=0&fov=60`);
  await waitFor("live", () => page.evaluate(() => window.omnicast.status === "live"), 30_000);
  assert.ok(await page.evaluate(() => window.pausedFrames) > 0, "a frame came while the video was paused");
  await waitFor("green (right) within 3 s of live", async () => near(await middle(page), COLOURS.green), 3_000);
  assert.deepEqual(errors, [], "no WebGL errors");

  // The GL context lost (a GPU process restart) and given back: the picture comes back too.
  await page.evaluate(() => {
    window.loseContext = document.getElementById("sphere").getContext("webgl2").getExtension("WEBGL_lose_context");
    window.loseContext.loseContext();
  });
  await waitFor("the context lost", () => page.evaluate(() => window.omnicast.viewStats.contextsLost === 1), 5_000);
  await page.evaluate(() => window.loseContext.restoreContext());
  await waitFor("green again after the context came back", async () => near(await middle(page), COLOURS.green), 3_000);
});

test("a browser that will not start the video by itself: the page offers Play, and a tap shows the 360° picture", async () => {
  const { url, page } = await compassBroadcast("tap", "640x320");
  await latePlay(page, { refuse: true });
  await page.goto(`${url}/?view=360&yaw=90&pitch=0&fov=60`);
  await waitFor("the Play button", () => page.isVisible("#play"), 30_000);
  assert.notEqual(await page.evaluate(() => window.omnicast.status), "live");
  mkdirSync(path.join(repoRoot, "target/screenshots"), { recursive: true });
  await page.screenshot({ path: path.join(repoRoot, "target/screenshots/page-play.png") });
  await page.click("#play");
  await waitFor("live", () => page.evaluate(() => window.omnicast.status === "live"), 5_000);
  await waitFor("green (right) within 3 s of live", async () => near(await middle(page), COLOURS.green), 3_000);
  assert.equal(await page.isVisible("#play"), false);
});
