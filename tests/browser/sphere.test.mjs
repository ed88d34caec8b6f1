// The viewer page's 360° view against the desktop broadcaster sending a known 360° picture from
// a file (a colour per direction): the page shows the right colour at the middle of its view for
// each yaw and pitch, the back seam and both poles included; dragging turns it; its views reach
// the broadcaster's log; a flat broadcast opens flat; it draws only when a frame comes.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoRoot, waitFor } from "../support/server.mjs";
import { launchChromium } from "../support/browser.mjs";
import { omnicastBinary, runProgram } from "../support/process.mjs";
import { COLOURS, compassPng, desktopBroadcaster as broadcaster, middle, near, settledBox } from "../support/compass.mjs";

import { mkdirSync } from "node:fs";

mkdirSync(path.join(repoRoot, "target/screenshots"), { recursive: true });
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-sphere-"));
cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
const desktopBroadcaster = (args) => broadcaster(args, cleanups);

test("the 360° page shows each direction's colour where it looks, the seam and poles included, and its views reach the log", async () => {
  const png = path.join(dir, "compass.png");
  await compassPng(png);
  const log = path.join(dir, "views.jsonl");
  const { url } = await desktopBroadcaster(["--source", `image:${png}`, "--size", "640x320", "--viewport-log", log]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 800, height: 600 });
  // A shared link: looking right.
  await page.goto(`${url}/?view=360&yaw=90&pitch=0&fov=60`);
  await waitFor("the 360° view drawing frames", () => page.evaluate(() => (window.omnicast.viewStats?.frames ?? 0) > 3), 30_000);
  assert.ok(await page.evaluate(() => window.omnicast.viewStats.webgl2), "WebGL2");
  await waitFor("right is green", async () => near(await middle(page), COLOURS.green), 5_000);
  for (const [view, colour] of [
    [{ yaw: 0, pitch: 0 }, "red"],
    [{ yaw: 180, pitch: 0 }, "blue"],
    [{ yaw: -179.5, pitch: 0 }, "blue"],
    [{ yaw: -90, pitch: 0 }, "yellow"],
    [{ yaw: 30, pitch: 89 }, "white"],
    [{ yaw: -120, pitch: -89 }, "black"],
  ]) {
    await page.evaluate((v) => window.omnicast.setView(v), view);
    await waitFor(`${JSON.stringify(view)} shows ${colour}`, async () => near(await middle(page), COLOURS[colour]), 5_000);
  }
  // Dragging left turns the view right, as if pulling the picture.
  await page.evaluate(() => window.omnicast.setView({ yaw: 0, pitch: 0, fov: 60 }));
  const box = await settledBox(page);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 - box.height / 2, box.y + box.height / 2, { steps: 10 });
  await page.mouse.up();
  const turned = await page.evaluate(() => window.omnicast.view.yaw);
  assert.ok(Math.abs(turned - 30) < 3, `half the height dragged at fov 60 turns 30°: ${turned}`);
  // The wheel zooms within 30°-120°.
  await page.mouse.wheel(0, -5000);
  await waitFor("zoomed in to the limit", () => page.evaluate(() => window.omnicast.view.fov === 30), 5_000);

  // Its views reach the broadcaster's log (at most ~30 a second).
  await page.screenshot({ path: path.join(repoRoot, "target/screenshots/page-360.png") });
  await page.evaluate(() => window.omnicast.setView({ yaw: 77, pitch: 11, fov: 60 }));
  await waitFor("samples sent", () => page.evaluate(() => window.omnicast.samplesSent > 0), 10_000);
  const logged = await waitFor("the view in the log", () => {
    const lines = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    return lines.find((l) => Math.abs(l.yaw - 77) < 0.01 && Math.abs(l.pitch - 11) < 0.01);
  }, 10_000);
  assert.ok(logged.fov > 60, `the horizontal fov of a wide view: ${JSON.stringify(logged)}`);

  // It draws when a frame comes or the view changes, not continuously: the picture is 30 fps.
  const before = await page.evaluate(() => ({ ...window.omnicast.viewStats }));
  await new Promise((r) => setTimeout(r, 2000));
  const after2 = await page.evaluate(() => ({ ...window.omnicast.viewStats }));
  const draws = after2.draws - before.draws;
  const frames = after2.frames - before.frames;
  assert.ok(draws <= frames + 2, `draws ${draws} vs frames ${frames}`);
});

test("a flat broadcast opens flat, a 2:1 one as 360° by itself", async () => {
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const flat = await desktopBroadcaster(["--source", "test-pattern", "--size", "640x360"]);
  const page = await browser.context.newPage();
  await page.goto(`${flat.url}/`);
  await waitFor("told flat", () => page.evaluate(() => window.omnicast.projection === "flat"), 30_000);
  assert.equal(await page.evaluate(() => window.omnicast.viewMode), "flat");
  assert.equal(await page.locator("#sphere").isVisible(), false);
  const wide = await desktopBroadcaster(["--source", "test-pattern", "--size", "640x320"]);
  const page2 = await browser.context.newPage();
  await page2.goto(`${wide.url}/`);
  await waitFor("360° by itself", () => page2.evaluate(() => window.omnicast.viewMode === "360"), 30_000);
  assert.equal(await page2.locator("#sphere").isVisible(), true);
});

test("on a phone-sized page, touch drags the view and, switched on, the phone's orientation steers it and is sent back", async () => {
  const png = path.join(dir, "compass-phone.png");
  await compassPng(png);
  const log = path.join(dir, "phone.jsonl");
  const { url } = await desktopBroadcaster(["--source", `image:${png}`, "--size", "640x320", "--viewport-log", log]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Emulation.setTouchEmulationEnabled", { enabled: true, maxTouchPoints: 5 });
  await page.goto(`${url}/`);
  await waitFor("360° by itself, drawing", () => page.evaluate(() => window.omnicast.viewMode === "360" && (window.omnicast.viewStats?.frames ?? 0) > 3), 30_000);
  await waitFor("straight ahead is red", async () => near(await middle(page), COLOURS.red), 5_000);

  // A finger swipes left across half the view's height: the view turns right by half its fov.
  const box = await settledBox(page);
  const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
  const touch = (type, px) => cdp.send("Input.dispatchTouchEvent", { type, touchPoints: type === "touchEnd" ? [] : [{ x: px, y }] });
  await touch("touchStart", x);
  for (let i = 1; i <= 10; i++) await touch("touchMove", x - (box.height / 2) * (i / 10));
  await touch("touchEnd", 0);
  const swiped = await page.evaluate(() => window.omnicast.view.yaw);
  assert.ok(Math.abs(swiped - 45) < 4, `half the height at fov 90 turns 45°: ${swiped}`);

  // The phone takes over where the view is; turning it 90° to the right looks right (green).
  await page.click("#resetView");
  await waitFor("the view reset", () => page.evaluate(() => window.omnicast.view.yaw === 0), 5_000);
  await page.click("#phone");
  // Under touch emulation the click comes as a tap, a moment later.
  await waitFor("the phone steering", () => page.evaluate(() => window.omnicast.phone), 5_000);
  const orient = (alpha, beta, gamma) =>
    page.evaluate(([a, b, g]) => window.dispatchEvent(new DeviceOrientationEvent("deviceorientation", { alpha: a, beta: b, gamma: g })), [alpha, beta, gamma]);
  await orient(10, 90, 0); // upright, facing wherever: that is straight ahead now
  await orient(-80, 90, 0); // 90° to the right
  await waitFor("the view follows the phone to the right", async () => near(await middle(page), COLOURS.green), 5_000);
  let v = await page.evaluate(() => ({ ...window.omnicast.view }));
  assert.ok(Math.abs(v.yaw - 90) < 0.5 && Math.abs(v.pitch) < 0.5, JSON.stringify(v));
  await orient(-80, 179, 0); // tilted back to look almost straight up
  await waitFor("looking up shows the top (white)", async () => near(await middle(page), COLOURS.white), 5_000);
  await orient(-80, 90, 0);
  // What the phone looks at goes back to the broadcaster.
  await waitFor("the phone's view in the broadcaster's log", () =>
    readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).some((l) => Math.abs(l.yaw - 90) < 0.5 && Math.abs(l.pitch) < 0.5), 10_000);

  // Switched off, dragging works again and the phone no longer steers.
  await page.click("#phone");
  await waitFor("the phone no longer steering", () => page.evaluate(() => !window.omnicast.phone), 5_000);
  await orient(100, 90, 0);
  v = await page.evaluate(() => ({ ...window.omnicast.view }));
  assert.ok(Math.abs(v.yaw - 90) < 0.5, `the phone no longer steers: ${JSON.stringify(v)}`);
  await touch("touchStart", x);
  for (let i = 1; i <= 10; i++) await touch("touchMove", x + (box.height / 2) * (i / 10));
  await touch("touchEnd", 0);
  v = await page.evaluate(() => ({ ...window.omnicast.view }));
  assert.ok(Math.abs(v.yaw - 45) < 4, `dragging again: ${JSON.stringify(v)}`);
  await page.screenshot({ path: path.join(repoRoot, "target/screenshots/page-360-phone.png") });
});

test("without WebGL2 the page falls back to WebGL1 with the same colours, and two fingers pinch to zoom", async () => {
  const png = path.join(dir, "compass-gl1.png");
  await compassPng(png);
  const { url } = await desktopBroadcaster(["--source", `image:${png}`, "--size", "640x320"]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  // A browser with WebGL1 only.
  await page.addInitScript(() => {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (type, ...rest) {
      return type === "webgl2" ? null : getContext.call(this, type, ...rest);
    };
  });
  await page.setViewportSize({ width: 800, height: 600 });
  await page.goto(`${url}/?view=360&yaw=180&fov=60`);
  await waitFor("drawing", () => page.evaluate(() => (window.omnicast.viewStats?.frames ?? 0) > 3), 30_000);
  assert.equal(await page.evaluate(() => window.omnicast.viewStats.webgl2), false);
  await waitFor("the back (across the seam) is blue", async () => near(await middle(page), COLOURS.blue), 5_000);
  await page.evaluate(() => window.omnicast.setView({ yaw: 90 }));
  await waitFor("right is green", async () => near(await middle(page), COLOURS.green), 5_000);

  // Two fingers moving apart zoom in (a narrower field of view).
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Emulation.setTouchEmulationEnabled", { enabled: true, maxTouchPoints: 5 });
  const box = await settledBox(page);
  const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
  const fingers = (type, spread) => cdp.send("Input.dispatchTouchEvent", {
    type,
    touchPoints: type === "touchEnd" ? [] : [{ x: cx - spread, y: cy, id: 1 }, { x: cx + spread, y: cy, id: 2 }],
  });
  await fingers("touchStart", 40);
  for (let i = 1; i <= 10; i++) await fingers("touchMove", 40 + i * 4);
  await fingers("touchEnd", 0);
  const fov = await page.evaluate(() => window.omnicast.view.fov);
  assert.ok(fov < 45 && fov >= 30, `spreading the fingers from 80 to 160 px halves the fov: ${fov}`);
});

/** An X server of its own (Xvfb picks a free display). */
async function xvfb() {
  const { spawn } = await import("node:child_process");
  const child = spawn("Xvfb", ["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"], { stdio: ["ignore", "pipe", "ignore"] });
  cleanups.push(async () => child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (c) => (out += c));
  const n = await waitFor("Xvfb's display", () => out.match(/^(\d+)\n/)?.[1], 10_000);
  return `:${n}`;
}

/** The screen's pixel at (x, y), from `xwd` (x11-apps): ZPixmap, 32 bits a pixel. */
async function screenPixel(display, x, y) {
  const { execFileSync } = await import("node:child_process");
  const xwd = execFileSync("xwd", ["-root", "-silent", "-display", display], { maxBuffer: 64 << 20 });
  const field = (i) => xwd.readUInt32BE(i * 4);
  const [headerSize, byteOrder, bitsPerPixel, bytesPerLine, ncolors] = [field(0), field(7), field(11), field(12), field(19)];
  assert.equal(bitsPerPixel, 32, "a 24-bit screen comes as 32 bits a pixel");
  const at = headerSize + ncolors * 12 + y * bytesPerLine + x * 4;
  const px = byteOrder === 0 ? [xwd[at + 2], xwd[at + 1], xwd[at]] : [xwd[at + 1], xwd[at + 2], xwd[at + 3]];
  return px;
}

test("the desktop viewer and the page show the same colour at the same yaw, pitch and fov", async () => {
  const png = path.join(dir, "compass-both.png");
  await compassPng(png);
  const { url } = await desktopBroadcaster(["--source", `image:${png}`, "--size", "640x320"]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const display = await xvfb();
  for (const [yaw, pitch, fov, colour] of [[90, 0, 60, "green"], [180, 10, 50, "blue"], [-60, 80, 40, "white"]]) {
    const home = mkdtempSync(path.join(dir, "home-"));
    mkdirSync(path.join(home, "xdg"));
    const viewer = runProgram(omnicastBinary, [
      "view", "--server", url, "--media-bind", "127.0.0.1",
      "--yaw", String(yaw), "--pitch", String(pitch), "--fov", String(fov),
    ], cleanups, { DISPLAY: display, HOME: home, XDG_RUNTIME_DIR: path.join(home, "xdg"), RUST_LOG: "warn" });
    // The middle of the window's video area (below the controls).
    const desktop = await waitFor(`the desktop view at ${yaw}/${pitch}`, async () => {
      const px = await screenPixel(display, 640, 430);
      return near(px, COLOURS[colour]) && px;
    }, 60_000, 250);
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 800, height: 600 });
    await page.goto(`${url}/?view=360&yaw=${yaw}&pitch=${pitch}&fov=${fov}`);
    await waitFor("the page drawing", () => page.evaluate(() => (window.omnicast.viewStats?.frames ?? 0) > 3), 30_000);
    const web = await waitFor(`the page at ${yaw}/${pitch}`, async () => {
      const px = await middle(page);
      return near(px, COLOURS[colour]) && px;
    }, 10_000);
    assert.ok(near(desktop, web), `desktop ${desktop} and page ${web} agree`);
    await page.close();
    await viewer.stop();
  }
});
