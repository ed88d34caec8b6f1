// HTTPS (browsers allow cameras only on https or localhost) and graceful shutdown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { next, startServer } from "../support/server.mjs";

function get(url) {
  return new Promise((resolve, reject) => {
    https
      .get(url, { rejectUnauthorized: false }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      })
      .on("error", reject)
      .setTimeout(10_000, function () {
        this.destroy(new Error(`no answer from ${url} within 10 s`));
      });
  });
}

test("serves pages and Socket.IO over HTTPS with the given certificate, and stops cleanly", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "omnicast-tls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert,
  ], { stdio: "ignore" });

  const server = await startServer(["--tls-cert", cert, "--tls-key", key], { scheme: "https" });
  try {
    const health = await get(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    const page = await get(`${server.url}/broadcast.html`);
    assert.match(page.body, /socket\.io\.js/);

    const a = io(server.url, { transports: ["websocket"], rejectUnauthorized: false, reconnection: false });
    const b = io(server.url, { transports: ["websocket"], rejectUnauthorized: false, reconnection: false });
    await Promise.all([a, b].map((s) => next(s, "connect")));
    // Only once the server has answered the broadcaster (with its viewer count) is it
    // registered: messages on two sockets have no order between them.
    const registered = next(a, "viewers");
    a.emit("broadcaster");
    await registered;
    const watcher = next(a, "watcher");
    b.emit("watcher");
    assert.deepEqual(await watcher, [b.id]);
    // Past stop()'s own 5 s before SIGKILL.
    const closed = next(b, "disconnect", 15_000);
    // SIGTERM: clients are disconnected and the process exits 0 on its own.
    assert.equal(await server.stop(), 0);
    await closed;
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});

test("a missing certificate is a clear startup error, not a crash", async () => {
  await assert.rejects(
    startServer(["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"]),
    /cannot load TLS certificate \/nonexistent\/cert\.pem/,
  );
});
