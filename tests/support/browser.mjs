// Debian's Chromium driven by playwright-core, with a fake camera; never downloads a browser.
// It runs as a person's browser does: only the flags this machine needs (MACHINE_FLAGS), none that
// changes how a page behaves (no autoplay exemption, no GPU or WebGL switch; headless Chromium
// draws WebGL on SwiftShader by itself). A test about such a flag passes it and says why.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** What this machine needs, and nothing a person's browser would not have. */
export const MACHINE_FLAGS = [
  // Root in CI: Chromium's sandbox needs an unprivileged user.
  "--no-sandbox",
  // The network rule: nothing leaves the machine (no QUIC, no background or component
  // fetches, no sync, no name lookups but loopback).
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  // The private namespace has only loopback: ICE must use it, with plain addresses (no mDNS).
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/** A fake camera and microphone, allowed without asking (the machine has neither). */
export const FAKE_DEVICES = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream=fps=30"];

export async function launchChromium(extraArgs = []) {
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), "omnicast-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...MACHINE_FLAGS, ...FAKE_DEVICES, ...extraArgs],
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
