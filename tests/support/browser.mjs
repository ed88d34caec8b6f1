// Debian's Chromium driven by playwright-core, with a fake camera; never downloads a browser.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export async function launchChromium(extraArgs = []) {
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), "omnicast-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream=fps=30",
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      "--autoplay-policy=no-user-gesture-required",
      ...extraArgs,
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** framesDecoded of the first inbound video RTP stream of `pcExpr`'s connection, or 0. */
export async function framesDecoded(page, pcExpr = "window.omnicast.pc") {
  return page.evaluate(async (expr) => {
    // eslint-disable-next-line no-eval
    const pc = eval(expr);
    if (!pc) return 0;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") return s.framesDecoded || 0;
    }
    return 0;
  }, pcExpr);
}
