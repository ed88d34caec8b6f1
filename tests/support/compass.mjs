// The 360° test picture (a colour per direction, written as a PNG), the desktop broadcaster that
// sends it, and how the browser suites read the colour a page shows.
import { deflateSync } from "node:zlib";
import { writeFileSync } from "node:fs";
import { waitFor } from "./server.mjs";
import { hostedUrl, runOmnicast } from "./process.mjs";

// 640x320: rows 0-39 white (the top), 280-319 black (the bottom); between them, by yaw: front
// (-45..45) red, right (45..135) green, back blue, left (-135..-45) yellow.
export const COLOURS = { red: [220, 30, 30], green: [30, 200, 30], blue: [30, 30, 220], yellow: [230, 220, 30], white: [250, 250, 250], black: [5, 5, 5] };

/** Writes that picture as a PNG (Node has no image package here: zlib and a CRC do). */
export async function compassPng(file) {
  const [w, h] = [640, 320];
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      let c;
      if (y < 40) c = COLOURS.white;
      else if (y >= 280) c = COLOURS.black;
      else if (x >= 240 && x < 400) c = COLOURS.red;
      else if (x >= 400 && x < 560) c = COLOURS.green;
      else if (x >= 80 && x < 240) c = COLOURS.yellow;
      else c = COLOURS.blue;
      raw.set(c, y * (w * 3 + 1) + 1 + x * 3);
    }
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  writeFileSync(file, Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]));
}

/** A headless desktop broadcaster on loopback with `args`; `cleanups` gets what stops it. */
export async function desktopBroadcaster(args, cleanups) {
  const caster = runOmnicast([
    "broadcast", "--headless", "--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0",
    "--media-bind", "127.0.0.1", ...args,
  ], cleanups);
  const url = await waitFor("broadcaster's server URL", () => hostedUrl(caster), 30_000);
  return { caster, url };
}

/** The colour at the middle of the 360° view. */
export async function middle(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById("sphere");
    const copy = document.createElement("canvas");
    [copy.width, copy.height] = [canvas.width, canvas.height];
    const ctx = copy.getContext("2d");
    ctx.drawImage(canvas, 0, 0);
    return [...ctx.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data.slice(0, 3)];
  });
}

export const near = (got, want) => got.every((v, i) => Math.abs(v - want[i]) < 45);

/** The 360° view's box once the layout has settled (the same twice, 200 ms apart). */
export async function settledBox(page) {
  let last = null;
  return waitFor("the view's layout settled", async () => {
    const box = await page.locator("#sphere").boundingBox();
    const same = last && JSON.stringify(box) === JSON.stringify(last);
    last = box;
    await new Promise((r) => setTimeout(r, 200));
    return same && box;
  }, 10_000);
}
