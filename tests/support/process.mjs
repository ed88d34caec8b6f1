// Child processes for the browser suites: the omnicast binary (or any program), its output
// collected, stopped (SIGTERM, then SIGKILL after 10 s) by the cleanup it registers.
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { repoRoot } from "./server.mjs";

export const omnicastBinary = process.env.OMNICAST_BIN || path.join(repoRoot, "target/debug/omnicast");

/** Starts `program` with `args`; `cleanups` gets what stops it. */
export function runProgram(program, args, cleanups, env = {}) {
  const child = spawn(program, args, {
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const exited = once(child, "exit");
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      // A process that does not stop when asked must not hold the suite up.
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  cleanups.push(stop);
  return { child, exited, stop, output: () => output };
}

/** Starts the omnicast binary with `args`. */
export function runOmnicast(args, cleanups) {
  return runProgram(omnicastBinary, args, cleanups, { RUST_LOG: "info,webrtc=error,rtc=error" });
}

/** The hosted server's URL a headless broadcaster prints. */
export function hostedUrl(proc) {
  return proc.output().match(/--server (http:\/\/\S+)/)?.[1];
}
