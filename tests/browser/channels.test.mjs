// The data channels between browsers and the desktop app, and the robot bridge: a third-party
// client written from the README's protocol alone, the built-in viewer and broadcaster pages,
// the desktop broadcaster with its viewport log, control key and a robot process on the bridge.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { repoRoot, startServer, waitFor } from "../support/server.mjs";
import { launchChromium, framesDecoded } from "../support/browser.mjs";
import { hostedUrl, runOmnicast, runProgram } from "../support/process.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-channels-"));
cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

/** A free TCP port on loopback. */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The example robot (assets/examples/robot.py) on `port`, telemetry every 200 ms. */
async function startRobot(port) {
  const robot = runProgram("python3", [path.join(repoRoot, "assets/examples/robot.py"), "--port", String(port), "--interval", "0.2"], cleanups);
  await waitFor("the robot listening", () => robot.output().includes("robot listening"), 10_000);
  return robot;
}

/** The desktop broadcaster, headless, hosting its server, with the data-channel options. */
async function desktopBroadcaster(extra) {
  const caster = runOmnicast([
    "broadcast", "--headless", "--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0",
    "--media-bind", "127.0.0.1", "--source", "test-pattern", "--size", "640x320", ...extra,
  ], cleanups);
  const url = await waitFor("broadcaster's server URL", () => hostedUrl(caster), 30_000);
  return { caster, url };
}

const logged = (file, viewer) =>
  readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.viewer === viewer);

/** A WebRTC client written from the README alone: Socket.IO signalling, an answer, the two
 * channels the broadcaster opens; what the broadcaster says is kept in `window.tp.got`. */
async function thirdPartyClient(browser, url, controlKey) {
  const page = await browser.context.newPage();
  await page.goto(`${url}/healthz`);
  await page.addScriptTag({ url: "/socket.io/socket.io.js" });
  await page.evaluate((key) => {
    const got = { welcome: [], telemetry: [], errors: [] };
    const tp = (window.tp = { got, pc: null, control: null, viewport: null, socket: io(location.origin) });
    tp.socket.on("connect", () => tp.socket.emit("watcher"));
    tp.socket.on("offer", async (id, description) => {
      const pc = (tp.pc = new RTCPeerConnection({ iceServers: [] }));
      const video = document.createElement("video");
      video.muted = true;
      document.body.append(video);
      pc.ontrack = (e) => {
        video.srcObject = e.streams[0] || new MediaStream([e.track]);
        video.play().catch(() => {});
      };
      pc.onicecandidate = (e) => e.candidate && tp.socket.emit("candidate", id, e.candidate);
      pc.ondatachannel = ({ channel }) => {
        // A channel the other side made may arrive open already (no open event then).
        const whenOpen = (opened) => (channel.readyState === "open" ? opened() : (channel.onopen = opened));
        if (channel.label === "omnicast-viewport") {
          whenOpen(() => (tp.viewport = channel));
          return;
        }
        if (channel.label !== "omnicast") return;
        whenOpen(() => {
          tp.control = channel;
          // As the README advises: hello again each second until welcomed.
          const hello = (tries) => {
            if (got.welcome.length || tries >= 5) return;
            channel.send(JSON.stringify({ type: "hello", control: key }));
            setTimeout(() => hello(tries + 1), 1000);
          };
          hello(0);
        });
        channel.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.type === "welcome") got.welcome.push(m.control);
          if (m.type === "telemetry") got.telemetry.push(m.data);
          if (m.type === "error") got.errors.push(m.message);
        };
      };
      await pc.setRemoteDescription(description);
      await pc.setLocalDescription(await pc.createAnswer());
      tp.socket.emit("answer", id, pc.localDescription);
    });
    tp.socket.on("candidate", (_id, c) => tp.pc?.addIceCandidate(c).catch(() => {}));
  }, controlKey);
  return page;
}

test("a third-party client's views reach the log and, with the key, its message reaches the robot and the robot's telemetry reaches it", async () => {
  const port = await freePort();
  let robot = await startRobot(port);
  const log = path.join(dir, "views.jsonl");
  const { caster, url } = await desktopBroadcaster([
    "--viewport-log", log, "--bridge", `tcp://127.0.0.1:${port}`, "--control-key", "s3cret",
  ]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await thirdPartyClient(browser, url, "s3cret");
  await waitFor("both channels open and control given", () =>
    page.evaluate(() => window.tp.viewport !== null && window.tp.control !== null && window.tp.got.welcome.includes(true)), 30_000);
  const me = await page.evaluate(() => window.tp.socket.id);

  // 30 samples, 50 ms apart: yaw/pitch for most, a quaternion (phones) for the last 5.
  const sent = await page.evaluate(async () => {
    const sent = [];
    for (let i = 0; i < 30; i++) {
      const m = i < 25
        ? { type: "viewport", t: Date.now(), yaw: i * 12 - 150, pitch: (i % 9) - 4, roll: 0, fov: 100 }
        // A quarter turn to the right about the vertical: yaw 90.
        : { type: "viewport", t: Date.now(), q: [0, -Math.SQRT1_2, 0, Math.SQRT1_2] };
      window.tp.viewport.send(JSON.stringify(m));
      sent.push(m);
      await new Promise((r) => setTimeout(r, 50));
    }
    return sent;
  });
  const lines = await waitFor("30 samples logged", () => {
    const l = logged(log, me);
    return l.length >= 30 && l;
  }, 10_000);
  lines.sort((a, b) => a.t_sent - b.t_sent);
  lines.forEach((l, i) => {
    assert.equal(l.t_sent, sent[i].t);
    if (i < 25) {
      assert.deepEqual([l.yaw, l.pitch, l.fov], [sent[i].yaw, sent[i].pitch, 100], JSON.stringify(l));
    } else {
      assert.ok(Math.abs(l.yaw - 90) < 0.01 && Math.abs(l.pitch) < 0.01, JSON.stringify(l));
    }
    assert.ok(l.t_received - l.t_sent > -50 && l.t_received - l.t_sent < 1000, JSON.stringify(l));
  });

  // With the key, a message reaches the robot; the robot's telemetry comes back.
  await page.evaluate(() => window.tp.control.send(JSON.stringify({ type: "message", t: Date.now(), data: { drive: [1, 0] } })));
  await waitFor("the robot prints the message", () => robot.output().includes(`message from viewer ${me}: {"drive": [1, 0]}`), 10_000);
  await waitFor("telemetry carrying the message back", () =>
    page.evaluate(() => window.tp.got.telemetry.some((t) => t.messages === 1 && t.last_message?.drive?.[0] === 1)), 10_000);

  // The robot restarts: the bridge comes back by itself and telemetry flows again.
  await robot.stop();
  robot = await startRobot(port);
  await waitFor("the broadcaster reconnects to the restarted robot", () => robot.output().includes("broadcaster connected"), 10_000);
  const before = await page.evaluate(() => window.tp.got.telemetry.length);
  await waitFor("telemetry from the restarted robot", () =>
    page.evaluate((n) => window.tp.got.telemetry.length > n + 2 && window.tp.got.telemetry.at(-1).messages === 0, before), 10_000);

  // Garbage on both channels: errors back (at most one a second), nothing else happens.
  const decodedBefore = await framesDecoded(page, "window.tp.pc");
  const tooBig = await page.evaluate(async () => {
    const { control, viewport } = window.tp;
    for (const ch of [control, viewport]) {
      ch.send("nonsense");
      ch.send(JSON.stringify({ type: "viewport", t: "2024-01-01", yaw: 0, pitch: 0 }));
      ch.send(JSON.stringify({ type: "viewport", t: 1, yaw: "left", pitch: 0 }));
      ch.send(JSON.stringify({ type: "dance" }));
      ch.send(JSON.stringify({ type: "message", t: 1, data: "x".repeat(40_000) }));
      ch.send(new Uint8Array([1, 2, 3]));
    }
    // 1 MiB is over what the broadcaster's SCTP takes: the browser refuses to send it.
    try {
      control.send("x".repeat(1 << 20));
      return "sent";
    } catch (e) {
      return e.name;
    }
  });
  assert.notEqual(tooBig, "sent");
  await waitFor("an error back", () => page.evaluate(() => window.tp.got.errors.length > 0), 5_000);
  await new Promise((r) => setTimeout(r, 1500));
  const errors = await page.evaluate(() => window.tp.got.errors);
  assert.ok(errors.length <= 3, `at most one error a second: ${JSON.stringify(errors)}`);
  assert.equal(await page.evaluate(() => window.tp.pc.connectionState), "connected");
  await waitFor("video goes on", async () => (await framesDecoded(page, "window.tp.pc")) > decodedBefore + 30, 10_000);
  // And the channels still work.
  await page.evaluate(() => window.tp.viewport.send(JSON.stringify({ type: "viewport", t: Date.now(), yaw: 7, pitch: 7 })));
  await waitFor("a sample after the garbage is logged", () => logged(log, me).some((l) => l.yaw === 7), 5_000);
  assert.ok(!caster.output().includes("panicked"), caster.output());
});

test("without the key a viewer is welcomed but its messages are refused", async () => {
  const port = await freePort();
  const robot = await startRobot(port);
  const { url } = await desktopBroadcaster(["--bridge", `tcp://127.0.0.1:${port}`, "--control-key", "s3cret"]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await thirdPartyClient(browser, url, "guess");
  await waitFor("welcomed without control", () => page.evaluate(() => window.tp.got.welcome.includes(false)), 30_000);
  await page.evaluate(() => window.tp.control.send(JSON.stringify({ type: "message", t: Date.now(), data: "open the door" })));
  await waitFor("refused", () => page.evaluate(() => window.tp.got.errors.some((e) => e.includes("control key"))), 5_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!robot.output().includes("open the door"), robot.output());
});

test("the viewer page shows the robot's telemetry and, opened with ?control=, sends it messages", async () => {
  const port = await freePort();
  const robot = await startRobot(port);
  const { url } = await desktopBroadcaster(["--bridge", `tcp://127.0.0.1:${port}`, "--control-key", "k"]);
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const page = await browser.context.newPage();
  await page.goto(`${url}/?control=k`);
  await waitFor("control given", () => page.evaluate(() => window.omnicast.control === true), 30_000);
  // The desktop broadcaster's 640x320 picture is 2:1: viewers are told it is 360°.
  await waitFor("told the picture is 360°", () => page.evaluate(() => window.omnicast.projection === "equirect"), 10_000);
  assert.equal(await page.locator("#projection").textContent(), "360° (equirectangular)");
  await waitFor("telemetry shown", () => page.locator("#telemetryView").isVisible(), 10_000);
  assert.match(await page.locator("#telemetryView").textContent(), /uptime_s/);
  await page.fill("#message", '{"arm": "up"}');
  await page.click("#messageForm button");
  await waitFor("the robot gets it", () => robot.output().includes('{"arm": "up"}'), 10_000);
  // Without ?control= there is no message box.
  const plain = await browser.context.newPage();
  await plain.goto(`${url}/`);
  await waitFor("welcomed", () => plain.evaluate(() => window.omnicast.control === false), 30_000);
  assert.equal(await plain.locator("#messageForm").isVisible(), false);
  await waitFor("telemetry reaches every viewer", () => plain.evaluate(() => window.omnicast.telemetryCount > 0), 10_000);
});

test("the desktop viewer sends its views to the broadcaster page and gets its telemetry", async () => {
  const server = await startServer();
  cleanups.push(() => server.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const caster = await browser.context.newPage();
  await caster.goto(`${server.url}/broadcast.html?room=dc&control=k`);
  await caster.selectOption("#size", "640x480");
  await waitFor("browser broadcasting", () => caster.evaluate(() => window.omnicast.status === "live"));
  // The person broadcasting types telemetry now and then.
  const typing = setInterval(() => {
    caster.fill("#telemetry", '{"lamp": "on"}').then(() => caster.click("#telemetryForm button")).catch(() => {});
  }, 300);
  cleanups.push(() => clearInterval(typing));

  const trace = path.join(dir, "trace.csv");
  writeFileSync(trace, "t,yaw,pitch,roll\n" + Array.from({ length: 40 }, (_, i) => `${(i * 0.05).toFixed(2)},${i * 4 - 80},${i % 5},0`).join("\n") + "\n");
  const statsFile = path.join(dir, "dc-stats.json");
  const viewer = runOmnicast([
    "view", "--headless", "--media-bind", "127.0.0.1:0", "--server", server.url, "--room", "dc",
    "--control-key", "k", "--viewport-trace", trace, "--frames", "120", "--stats-json", statsFile,
  ], cleanups);
  const timer = setTimeout(() => viewer.child.kill("SIGKILL"), 60_000);
  const [code] = await viewer.exited;
  clearTimeout(timer);
  clearInterval(typing);
  assert.equal(code, 0, viewer.output());
  const stats = JSON.parse(readFileSync(statsFile, "utf8"));
  assert.equal(stats.viewport_samples_sent, 40, JSON.stringify(stats));
  assert.ok(stats.telemetry_received > 0, JSON.stringify(stats));
  assert.match(viewer.output(), /the control key was accepted/);
  // The page's 640x480 camera is flat, and the page said so.
  assert.equal(stats.projection, "flat", JSON.stringify(stats));
  assert.match(viewer.output(), /the broadcaster's picture is flat/);
  assert.match(viewer.output(), /telemetry: \{"lamp":"on"\}/);
  const page = await caster.evaluate(() => ({ samples: window.omnicast.samples, malformed: window.omnicast.malformed }));
  assert.equal(page.samples, 40, JSON.stringify(page));
  assert.equal(page.malformed, 0);
  assert.equal(await caster.locator("#samples").textContent(), "40");
});
