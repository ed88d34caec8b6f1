// What the viewer page's 360° view costs Chromium beside the flat page: the desktop broadcaster
// (test pattern, 1920x960, 30 fps) watched by one headless Chromium page, flat then 360°, then
// again (S seconds each). Prints the CPU of Chromium's renderer and GPU processes (from /proc;
// the 360° view's WebGL runs on SwiftShader in the GPU process here), video frames received per
// second and, for the 360° view, draws per second. Run inside a private network namespace
// (scripts/bench-media.sh).
//
//   node tests/bench/page-360.mjs [seconds]
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoRoot, waitFor } from "../support/server.mjs";
import { treeCpuByType } from "../support/proc.mjs";
import { MACHINE_FLAGS } from "../support/browser.mjs";

const seconds = Number(process.argv[2] || 15);
// The debug build: it is what `cargo build` (scripts/bench-media.sh) has just made, so its
// embedded pages are current; the broadcaster's own speed does not matter here.
const binary = process.env.OMNICAST_BIN || path.join(repoRoot, "target/debug/omnicast");


const caster = spawn(binary, [
  "broadcast", "--headless", "--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0", "--media-bind", "127.0.0.1",
  "--source", "test-pattern", "--size", "1920x960", "--fps", "30", "--bitrate-kbps", "4000",
], { env: { ...process.env, RUST_LOG: "warn", NO_COLOR: "1" }, stdio: ["ignore", "pipe", "ignore"] });
let out = "";
caster.stdout.on("data", (c) => (out += c));
const url = await waitFor("the broadcaster's URL", () => out.match(/--server (http:\/\/\S+)/)?.[1], 60_000);

const userDataDir = mkdtempSync(path.join(os.tmpdir(), "omnicast-bench-360-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 720 },
  // As a person's browser runs (tests/support/browser.mjs): no autoplay or GPU switch.
  args: MACHINE_FLAGS,
});
const browserPid = Number(readFileSync("/proc/self/stat", "utf8").split(" ")[0]); // this node process: Chromium is its child
const page = await context.newPage();
const framesReceived = () => page.evaluate(async () => {
  const stats = await window.omnicast.pc?.getStats();
  for (const s of stats?.values() ?? []) if (s.type === "inbound-rtp" && s.kind === "video") return s.framesDecoded || 0;
  return 0;
});

console.log(`omnicast page 360° vs flat: 1920x960 30 fps from the desktop broadcaster, Chromium ${seconds} s each, ${new Date().toISOString().slice(0, 10)}`);
console.log(["view", "renderer cpu %", "gpu process cpu %", "all chromium cpu %", "frames received/s", "draws/s"].join("\t"));
for (const view of ["flat", "360", "flat", "360"]) {
  await page.goto(`${url}/?view=${view}`);
  await waitFor("frames", async () => (await framesReceived()) > 60, 60_000);
  await new Promise((r) => setTimeout(r, 2000));
  const [cpu0, f0, d0, t0] = [treeCpuByType(browserPid), await framesReceived(), await page.evaluate(() => window.omnicast.viewStats?.draws ?? 0), Date.now()];
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const [cpu1, f1, d1, t1] = [treeCpuByType(browserPid), await framesReceived(), await page.evaluate(() => window.omnicast.viewStats?.draws ?? 0), Date.now()];
  const secs = (t1 - t0) / 1000;
  const pct = (type) => (((cpu1[type] ?? 0) - (cpu0[type] ?? 0)) / secs) * 100;
  const all = Object.keys(cpu1).reduce((sum, t) => sum + pct(t), 0);
  console.log([view, pct("renderer").toFixed(1), pct("gpu-process").toFixed(1), all.toFixed(1), ((f1 - f0) / secs).toFixed(1), view === "360" ? ((d1 - d0) / secs).toFixed(1) : "–"].join("\t"));
}
await context.close();
rmSync(userDataDir, { recursive: true, force: true });
caster.kill("SIGTERM");
