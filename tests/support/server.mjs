// Starts the real omnicast-signal binary on loopback with OS-chosen ports, for the Node and
// browser test suites.
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function signalBinary() {
  return process.env.OMNICAST_SIGNAL_BIN || path.join(root, "target/debug/omnicast-signal");
}

export const repoRoot = root;

/**
 * Runs the server until `stop()` is awaited. Resolves once it listens.
 * @returns {Promise<{url: string, stunPort: number, stop: () => Promise<void>, logs: () => string}>}
 */
export async function startServer(extraArgs = [], { scheme = "http" } = {}) {
  const child = spawn(
    signalBinary(),
    ["--bind", "127.0.0.1:0", "--stun-bind", "127.0.0.1:0", ...extraArgs],
    { env: { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG || "info" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const listening = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk.toString();
      const clean = output.replace(/\x1b\[[0-9;]*m/g, "");
      const http = clean.match(/http=(127\.0\.0\.1:\d+)/);
      const stun = clean.match(/stun=Some\(127\.0\.0\.1:(\d+)\)/);
      if (http) resolve({ url: `${scheme}://${http[1]}`, stunPort: stun ? Number(stun[1]) : 0 });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`omnicast-signal exited with ${code}:\n${output}`)));
    setTimeout(() => reject(new Error(`omnicast-signal did not start in 20 s:\n${output}`)), 20_000).unref();
  });
  const { url, stunPort } = await listening;
  return {
    url,
    stunPort,
    logs: () => output,
    /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code (null if it had to be killed). */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      const [code] = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Polls `fn` until it returns a truthy value, failing after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs = 15_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves with the arguments of the next `event` on `socket`, or fails after `timeoutMs`. */
export function next(socket, event, timeoutMs = 5_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}
