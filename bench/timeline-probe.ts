// (temporary) quick timeline + cpu run
import { readFileSync } from "node:fs";
import { DevChain } from "../src/devchain/chain.ts";
import { formatSteps, parseTimelines, summarize } from "./lib/timeline.ts";
const nodes = Number(process.argv[2] ?? 3);
const secs = Number(process.argv[3] ?? 10);
const cmd = process.env.PROBE_CMD ? JSON.parse(process.env.PROBE_CMD) : ["dist/consensus"].map((p) => `${process.cwd()}/${p}`);
const chain = await DevChain.create({ nodes, seed: "bench-e2e", blockInterval: 0, raft: { tickIntervalInMillis: 100, heartbeatTick: 1, electionTick: 10 }, consensusCommand: cmd, env: { CONSENSUS_BLOCK_TIMELINE: "1" } });
const procs = chain.nodes.map((n) => chain.startConsensus(n.index));
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" "); return (Number(f[11]) + Number(f[12])) * 10; };
const self = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
try {
  await chain.waitForHeight(5, 60_000);
  const from = Math.max(...chain.heights());
  const c0 = procs.map((p) => cpu(p.pid)); const s0 = self();
  const t0 = performance.now();
  await Bun.sleep(secs * 1000);
  const to = Math.min(...chain.heights());
  const c1 = procs.map((p) => cpu(p.pid)); const s1 = self();
  const n = to - from;
  console.log(`${n} blocks in ${((performance.now() - t0) / 1000).toFixed(1)} s; cpu ms per block: nodes ${procs.map((_, i) => ((c1[i] - c0[i]) / n).toFixed(2)).join(", ")}; emulators ${((s1 - s0) / n).toFixed(2)}`);
  const tl = chain.nodes.flatMap((nd) => parseTimelines(nd.index, readFileSync(nd.logPath, "utf8")));
  console.log(formatSteps(summarize(tl, from + 1, to)));
} finally {
  await chain.close();
}
