// Memory over hours: a chain of compiled binaries with the controller and network emulators,
// an optional burst phase at block_interval 0, then a steady phase at block_interval 1 s, with
// each node sampled every few seconds from outside (RSS and open fds from /proc, the raft data
// dir's size) and from inside (the consensus_memory_bytes gauges on its metrics port). Prints a
// summary table per node and writes every sample to a CSV file.
//
//   bun run bench/soak.ts [--nodes 3] [--burst-minutes 5] [--minutes 60] [--sample-seconds 10]
//                         [--faults none|net|all] [--fault-every 120] [--out soak.csv]
//                         [--heap-snapshots DIR] [--keep] [--summarize FILE]
//
// --faults net: every --fault-every seconds of the steady phase, in turn, the leader is cut off for
//   15 s, or every link loses 20% and reorders (delay 0-50 ms) for 30 s. No process restarts, so
//   each node's curve is one process from start to end.
// --faults all: net's faults plus, in turn, kill -9 of a follower and SIGTERM of the leader, each
//   restarted 5 s later (its samples then continue with the new process: see the restarts column).
// --heap-snapshots DIR: SIGUSR2 to every node at the start and at the end of the steady phase;
//   each writes a heap snapshot and logs its most common object types (bench/heap-diff.ts compares
//   two of them).
// --keep: keep the work dir (configs, node logs, raft data); removed at the end otherwise.
// --summarize FILE: print the summary of an earlier run's CSV, run nothing.
import { appendFileSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DevChain } from "../src/devchain/chain.ts";
import { ensureBinary } from "../test/support/binary.ts";
import { parseMetrics } from "../test/support/chain-metrics.ts";

const { values: args } = parseArgs({
  options: {
    nodes: { type: "string", default: "3" },
    "burst-minutes": { type: "string", default: "5" },
    minutes: { type: "string", default: "60" },
    "sample-seconds": { type: "string", default: "10" },
    faults: { type: "string", default: "none" },
    "fault-every": { type: "string", default: "120" },
    out: { type: "string" },
    "heap-snapshots": { type: "string" },
    summarize: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const NODES = Number(args.nodes);
const BURST_MIN = Number(args["burst-minutes"]);
const STEADY_MIN = Number(args.minutes);
const SAMPLE_S = Number(args["sample-seconds"]);
const FAULTS = args.faults as "none" | "net" | "all";
const FAULT_EVERY_S = Number(args["fault-every"]);
if (!["none", "net", "all"].includes(FAULTS)) throw new Error(`--faults must be none, net or all, got ${FAULTS}`);
for (const [k, v] of [["--nodes", NODES], ["--burst-minutes", BURST_MIN], ["--minutes", STEADY_MIN], ["--sample-seconds", SAMPLE_S], ["--fault-every", FAULT_EVERY_S]] as const) {
  if (!(v >= 0) || (k !== "--burst-minutes" && v === 0)) throw new Error(`${k} must be a positive number, got ${v}`);
}
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const OUT = resolve(args.out ?? `soak-${stamp}.csv`);
const SNAP_DIR = args["heap-snapshots"] ? resolve(args["heap-snapshots"]) : undefined;

const AREAS = ["heap_used", "heap_total", "external", "array_buffers"] as const;
interface Sample {
  t: number; // seconds since the start
  phase: "burst" | "steady";
  node: number;
  pid: number;
  restarts: number;
  height: number;
  rss: number; // bytes, from /proc: all, anonymous (heaps, JIT code), file-backed (the mapped binary)
  rssAnon: number;
  rssFile: number;
  fds: number;
  data: number; // bytes of the raft data dir
  inside: Record<(typeof AREAS)[number], number | undefined>;
}

const t0 = performance.now();
const now = () => (performance.now() - t0) / 1000;
const say = (msg: string) => console.log(`+${now().toFixed(0).padStart(5)}s  ${msg}`);

if (args.summarize) {
  const file = resolve(args.summarize);
  const samples = readCsv(file);
  summarize(samples, samples.find((s) => s.phase === "steady")?.t ?? 0, `summary of ${file}`, file);
  process.exit(0);
}

// The binary is copied, so a rebuild of dist/ during the run does not change what a restart starts.
const work = `/tmp/soak-${stamp}`;
mkdirSync(work, { recursive: true });
const binary = join(work, "consensus");
copyFileSync(await ensureBinary(), binary);
const chain = await DevChain.create({
  nodes: NODES,
  seed: "soak",
  blockInterval: BURST_MIN > 0 ? 0 : 1,
  consensusCommand: [binary],
  workDir: join(work, "chain"),
});
const pids = new Map<number, number>();
const restarts = new Map<number, number>();
const start = (i: number) => {
  pids.set(i, chain.startConsensus(i).pid);
};
for (const n of chain.nodes) {
  restarts.set(n.index, 0);
  start(n.index);
}

writeFileSync(OUT, `t_s,phase,node,pid,restarts,height,rss_bytes,rss_anon_bytes,rss_file_bytes,fds,data_dir_bytes,${AREAS.join(",")}\n`);
const samples: Sample[] = [];
let phase: Sample["phase"] = BURST_MIN > 0 ? "burst" : "steady";

function procRss(pid: number): { rss: number; rssAnon: number; rssFile: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kB = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
    return { rss: kB("VmRSS"), rssAnon: kB("RssAnon"), rssFile: kB("RssFile") };
  } catch {
    return undefined; // exited between two looks
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
    }
  } catch {
    // missing or changing under us
  }
  return total;
}

async function scrape(i: number): Promise<Map<string, number> | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${chain.node(i).ports.metrics}/metrics`, { signal: AbortSignal.timeout(3000) });
    return r.ok ? parseMetrics(await r.text()) : undefined;
  } catch {
    return undefined;
  }
}

async function sampleAll(): Promise<void> {
  const t = now();
  for (const n of chain.nodes) {
    const pid = pids.get(n.index)!;
    if (!chain.isConsensusRunning(n.index)) continue;
    const mem = procRss(pid);
    if (mem === undefined) continue;
    let fds = 0;
    try {
      fds = readdirSync(`/proc/${pid}/fd`).length;
    } catch {}
    const m = await scrape(n.index);
    const inside = Object.fromEntries(AREAS.map((a) => [a, m?.get(`consensus_memory_bytes{area="${a}"}`)])) as Sample["inside"];
    const s: Sample = {
      t,
      phase,
      node: n.index,
      pid,
      restarts: restarts.get(n.index)!,
      height: n.controller.height,
      ...mem,
      fds,
      data: dirBytes(join(n.dir, "raft-data-dir")),
      inside,
    };
    samples.push(s);
    appendFileSync(
      OUT,
      `${t.toFixed(1)},${phase},${n.index},${pid},${s.restarts},${s.height},${mem.rss},${mem.rssAnon},${mem.rssFile},${fds},${s.data},${AREAS.map((a) => inside[a] ?? "").join(",")}\n`,
    );
  }
}

async function leader(): Promise<number | undefined> {
  for (const n of chain.nodes) if ((await scrape(n.index))?.get("consensus_is_leader") === 1) return n.index;
  return undefined;
}

let faultTurn = 0;
async function fault(): Promise<void> {
  const kinds = FAULTS === "net" ? ["partition", "lossy"] : ["partition", "lossy", "kill", "term"];
  const kind = kinds[faultTurn++ % kinds.length];
  const l = await leader();
  if (kind === "partition" && l !== undefined) {
    say(`fault: node${l} (leader) cut off for 15 s`);
    chain.fabric.partition([l]);
    await Bun.sleep(15_000);
    chain.fabric.heal();
  } else if (kind === "lossy") {
    say("fault: every link loses 20% and reorders (0-50 ms) for 30 s");
    chain.fabric.setLinkFault({ loss: 0.2, delayMs: 25, jitterMs: 25 });
    await Bun.sleep(30_000);
    chain.fabric.clearLinkFaults();
  } else if ((kind === "kill" || kind === "term") && l !== undefined) {
    const victim = kind === "kill" ? (l + 1) % NODES : l;
    say(`fault: ${kind === "kill" ? "kill -9 follower" : "SIGTERM leader"} node${victim}, restart in 5 s`);
    if (kind === "kill") await chain.killConsensus(victim);
    else await chain.stopConsensus(victim);
    await Bun.sleep(5_000);
    restarts.set(victim, restarts.get(victim)! + 1);
    start(victim);
  }
}

async function heapSnapshots(label: string): Promise<void> {
  if (!SNAP_DIR) return;
  mkdirSync(SNAP_DIR, { recursive: true });
  const written = (i: number) => readFileSync(chain.node(i).logPath, "utf8").split("\n").filter((l) => l.includes("heap snapshot written"));
  for (const n of chain.nodes) {
    if (!chain.isConsensusRunning(n.index)) continue;
    const before = written(n.index).length;
    process.kill(pids.get(n.index)!, "SIGUSR2");
    const deadline = performance.now() + 60_000;
    while (performance.now() < deadline && written(n.index).length === before) await Bun.sleep(200);
    const file = /file=(\S+)/.exec(written(n.index).at(-1) ?? "")?.[1];
    if (written(n.index).length > before && file) copyFileSync(file, join(SNAP_DIR, `node${n.index}-${label}.heapsnapshot`));
  }
  const lines = chain.nodes.map((n) => written(n.index).at(-1));
  say(`heap snapshots (${label}) in ${SNAP_DIR}:\n${lines.map((l, i) => `    node${i}: ${l?.replace(/^.*written /, "")}`).join("\n")}`);
}

// ---- run ----

let stopping = false;
process.on("SIGINT", () => {
  stopping = true;
});
say(`soak: ${NODES} nodes, burst ${BURST_MIN} min at block_interval 0, then ${STEADY_MIN} min at 1 s; sample every ${SAMPLE_S} s; faults ${FAULTS}`);
say(`work dir ${work}; samples to ${OUT}`);
await chain.waitForHeight(1, 120_000);

const sampler = (async () => {
  while (!stopping) {
    const next = performance.now() + SAMPLE_S * 1000;
    await sampleAll();
    await Bun.sleep(Math.max(0, next - performance.now()));
  }
})();

if (BURST_MIN > 0) {
  await sleepUnless(BURST_MIN * 60_000);
  const at = chain.setBlockInterval(1);
  await chain.waitForHeight(at, 120_000);
  say(`block_interval 1 s from height ${at}`);
}
phase = "steady";
const steadyStart = now();
await heapSnapshots("steady-start");
const steadyEnd = performance.now() + STEADY_MIN * 60_000;
let nextFault = performance.now() + FAULT_EVERY_S * 1000;
let nextReport = performance.now();
while (!stopping && performance.now() < steadyEnd) {
  if (FAULTS !== "none" && performance.now() >= nextFault) {
    await fault();
    nextFault = performance.now() + FAULT_EVERY_S * 1000;
  }
  if (performance.now() >= nextReport) {
    say(`heights ${chain.heights().join(",")}`);
    nextReport += 300_000;
  }
  await Bun.sleep(1000);
}
await heapSnapshots("steady-end");
stopping = true;
await sampler;
const crashes = chain.exits.filter((x) => x.unexpected);
const forks = chain.forkCheck();
await chain.close();
if (!args.keep) rmSync(work, { recursive: true, force: true });
else say(`kept the work dir ${work} (configs, node logs, raft data)`);

async function sleepUnless(ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!stopping && performance.now() < end) await Bun.sleep(Math.min(1000, end - performance.now()));
}

summarize(samples, steadyStart, `soak: ${NODES} nodes, burst ${BURST_MIN} min (block_interval 0), steady ${STEADY_MIN} min (block_interval 1 s), faults ${FAULTS}; unexpected exits ${crashes.length}, forks ${forks.length}`, OUT);
if (crashes.length > 0 || forks.length > 0) process.exit(1);

// ---- summary ----

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}
/** Least-squares slope of y over t, per hour. */
function slopePerHour(pts: { t: number; y: number }[]): number {
  if (pts.length < 2) return NaN;
  const mt = mean(pts.map((p) => p.t));
  const my = mean(pts.map((p) => p.y));
  let num = 0;
  let den = 0;
  for (const p of pts) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return (num / den) * 3600;
}
function f1(x: number): string {
  return Number.isFinite(x) ? x.toFixed(1) : "—";
}
function pct(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) ? `${((b / a - 1) * 100).toFixed(1)}%` : "—";
}
function MiB(b: number): number {
  return b / (1 << 20);
}

/** The samples of a CSV written by this script. */
function readCsv(file: string): Sample[] {
  const [head, ...lines] = readFileSync(file, "utf8").trim().split("\n");
  const cols = head.split(",");
  return lines.map((line) => {
    const v = Object.fromEntries(line.split(",").map((x, k) => [cols[k], x]));
    const n = (k: string) => Number(v[k]);
    return {
      t: n("t_s"),
      phase: v.phase as Sample["phase"],
      node: n("node"),
      pid: n("pid"),
      restarts: n("restarts"),
      height: n("height"),
      rss: n("rss_bytes"),
      rssAnon: n("rss_anon_bytes"),
      rssFile: n("rss_file_bytes"),
      fds: n("fds"),
      data: n("data_dir_bytes"),
      inside: Object.fromEntries(AREAS.map((a) => [a, v[a] === "" ? undefined : Number(v[a])])) as Sample["inside"],
    };
  });
}

/** The summary table of a run: per node, RSS and where it is, over the whole run and its last two 20-minute windows. */
function summarize(samples: Sample[], steadyStart: number, header: string, file: string): void {
  const end = Math.max(...samples.map((s) => s.t));
  const WINDOW = 20 * 60;
  const lastFrom = end - WINDOW;
  const prevFrom = end - 2 * WINDOW;
  const rows: string[] = [];
  const heapRows: string[] = [];
  for (const node of [...new Set(samples.map((s) => s.node))].sort()) {
    const all = samples.filter((s) => s.node === node);
    const steady = all.filter((s) => s.t >= steadyStart);
    if (all.length === 0) continue;
    const rss = all.map((s) => MiB(s.rss));
    const prev = steady.filter((s) => s.t >= prevFrom && s.t < lastFrom).map((s) => MiB(s.rss));
    const last = steady.filter((s) => s.t >= lastFrom).map((s) => MiB(s.rss));
    const slope = slopePerHour(steady.map((s) => ({ t: s.t, y: MiB(s.rss) })));
    const fds = all.map((s) => s.fds);
    const data = all.map((s) => MiB(s.data));
    rows.push(
      `| node${node} | ${f1(rss[0])} | ${f1(MiB(steady[0]?.rss ?? NaN))} | ${f1(Math.min(...rss))} | ${f1(Math.max(...rss))} | ${f1(mean(prev))} | ${f1(mean(last))} | ${pct(mean(prev), mean(last))} | ${f1(slope)} | ${Math.min(...fds)}–${Math.max(...fds)} | ${f1(Math.min(...data))}–${f1(Math.max(...data))} | ${all.at(-1)!.restarts} |`,
    );
    const hu = (s: Sample) => MiB(s.inside.heap_used ?? NaN);
    const mc = (s: Sample) => MiB(s.rssAnon);
    const hPrev = steady.filter((s) => s.t >= prevFrom && s.t < lastFrom);
    const hLast = steady.filter((s) => s.t >= lastFrom);
    heapRows.push(
      `| node${node} | ${f1(hu(steady[0]))} | ${f1(mean(hPrev.map(hu)))} | ${f1(mean(hLast.map(hu)))} | ${f1(slopePerHour(steady.map((s) => ({ t: s.t, y: hu(s) }))))} | ${f1(mc(steady[0]))} | ${f1(mean(hPrev.map(mc)))} | ${f1(mean(hLast.map(mc)))} | ${f1(slopePerHour(steady.map((s) => ({ t: s.t, y: mc(s) }))))} |`,
    );
  }
  const heights = samples.filter((s) => s.t >= steadyStart).map((s) => s.height);
  console.log(`
${header}
chain height ${Math.min(...heights)} at the steady start → ${Math.max(...heights)} at the end
windows: previous = [${((prevFrom - steadyStart) / 60).toFixed(0)}, ${((lastFrom - steadyStart) / 60).toFixed(0)}) min of the steady phase, last = the final 20 min

RSS (MiB)
| node | start | steady start | min | max | mean, previous 20 min | mean, last 20 min | change | slope over steady phase (MiB/h) | fds | data dir (MiB) | restarts |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

where it is (MiB): the JS heap from the node's consensus_memory_bytes, anonymous RSS from /proc
| node | JS heap used, steady start | mean, previous 20 min | mean, last 20 min | slope (MiB/h) | anonymous RSS, steady start | mean, previous 20 min | mean, last 20 min | slope (MiB/h) |
|---|---|---|---|---|---|---|---|---|
${heapRows.join("\n")}

samples: ${file}`);
}
