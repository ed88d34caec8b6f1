// CPU time of a process tree, from /proc, for the benchmarks.
import { readdirSync, readFileSync } from "node:fs";

/** CPU seconds (user + system) of `root` and its descendants, by Chromium process type
 * (`renderer`, `gpu-process`…; `browser` for processes without one). */
export function treeCpuByType(root) {
  const procs = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      const type = cmd.match(/--type=([a-z-]+)/)?.[1] ?? "browser";
      procs.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), type });
    } catch {
      // gone
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!tree.has(pid) && tree.has(p.ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const byType = {};
  for (const pid of tree) {
    const p = procs.get(pid);
    if (p) byType[p.type] = (byType[p.type] ?? 0) + p.ticks / 100;
  }
  return byType;
}

/** CPU seconds of `root` and all its descendants. */
export function treeCpuSeconds(root) {
  return Object.values(treeCpuByType(root)).reduce((a, b) => a + b, 0);
}
