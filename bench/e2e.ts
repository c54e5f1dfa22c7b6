// End-to-end bench of the consensus node next to etcd, in one invocation.
//
// Ours: a chain of --nodes compiled binaries on loopback with the controller and network emulators
// (test/e2e harness), default storage (fsync per Ready), block_interval 0 (one block in flight, like
// one client's sequential puts), Raft timers as etcd's defaults (tick 100 ms, heartbeat 1 tick,
// election 10 ticks). Every node logs a "block timeline" line per block (CONSENSUS_BLOCK_TIMELINE=1),
// and latencies come from those lines: from the leader's GetProposal answer to the last node's
// (and to the leader's own) CommitBlock answer, on the nodes' clocks.
// etcd: the sequential-put part of ../shared/anchors/etcd/A (3 members of Debian's etcd 3.4 on
// 127.0.0.1, default flags, one client doing sequential 256 B puts against the leader with the
// anchor's etcdbench). Installed with apt-get and built on first use; without it, our figures only.
//
// Each round runs, for each --nodes value, a fresh chain for --seconds and then one etcd run, so
// both sides see the same outside load; ratios are per round, then the median and range.
// Then --failovers runs each of kill -9 and SIGTERM of our leader (a fresh chain of the first
// --nodes value) and kill -9 of etcd's leader, interleaved.
//
//   bun bench/e2e.ts                                  # 3 nodes, 5 rounds of 10 s, 5 failovers each
//   bun bench/e2e.ts --nodes 3,5,7 --runs 3           # scaling: p50 at 7 over p50 at 3
//   bun bench/e2e.ts --seconds 5 --runs 1 --failovers 0 --no-etcd   # quick look, ours only
//   options: --puts 2000 (etcd puts per run)
//
// Raw results: one JSON line per measurement in /tmp/e2e-bench/results-<time>.jsonl.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Health } from "../gen/health_check_pb.ts";
import { grpcClient } from "../src/devchain/grpc.ts";
import { E2EChain, median } from "../test/e2e/harness.ts";
import { EtcdCluster, type EtcdTools, findAnchorDir, prepareEtcd, type SeqResult } from "./lib/etcd-cluster.ts";
import { type BlockSample, blockSamples, formatSteps, parseTimelines, summarizeSamples } from "./lib/timeline.ts";

const WORK = "/tmp/e2e-bench";
const ANCHOR_DIR = findAnchorDir(path.resolve(import.meta.dir, ".."), "etcd/A");
const ETCD_TIMERS = { tickIntervalInMillis: 100, heartbeatTick: 1, electionTick: 10 };
const PUT_SIZE = 256;

function fail(msg: string, code = 2): never {
  console.error(`e2e bench: ${msg}`);
  process.exit(code);
}

function parse() {
  try {
    return parseArgs({
      options: {
        seconds: { type: "string", default: "10" },
        runs: { type: "string", default: "5" },
        nodes: { type: "string", default: "3" },
        failovers: { type: "string", default: "5" },
        puts: { type: "string", default: "2000" },
        "no-etcd": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
}

function count(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

const args = parse();
if (args.help) {
  const lines = fs.readFileSync(import.meta.path, "utf8").split("\n");
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith("//"))).join("\n"));
  process.exit(0);
}
const SECONDS = Number(args.seconds);
if (!(SECONDS > 0)) fail(`--seconds must be a positive number, got ${JSON.stringify(args.seconds)}`);
const RUNS = count("runs", args.runs, 1);
const FAILOVERS = count("failovers", args.failovers, 0);
const PUTS = count("puts", args.puts, 1);
const NODES = args.nodes.split(",").map((s) => count("nodes", s.trim(), 1));

const quantile = (xs: readonly number[], q: number) => {
  if (xs.length === 0) return NaN;
  if (q === 0.5) return median(xs);
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (x: number) => (Number.isNaN(x) ? "n/a" : x >= 100 ? Math.round(x).toLocaleString("en-US") : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const rate = (x: number) => (Number.isNaN(x) ? "n/a" : x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1));
const med = (xs: readonly number[]) => (xs.length === 0 ? NaN : median(xs));

function load(): string {
  return os.loadavg().map((l) => l.toFixed(1)).join(" ");
}

// ---------------------------------------------------------------- ours

interface OurRun {
  nodes: number;
  round: number;
  blocks: number;
  seconds: number;
  blocksPerS: number;
  /** Per height: leader's GetProposal answer → last node's / leader's CommitBlock answered (ms). */
  toLast: number[];
  toLeader: number[];
  /** Heights taken from the controller emulators' clock because a node logged no timeline for them (block sync). */
  fromEmulator: number;
  /** The same two latencies from the emulators' clock (bench process), for every height: a cross-check. */
  emulatorToLast: number[];
  synced: number;
  samples: BlockSample[];
  rpc: number[];
  load: string;
}

/**
 * Sequential health checks on node 0 while the chain runs: the cost of one loopback gRPC round
 * trip at this moment, the unit a block's critical path is made of.
 */
async function rpcRoundTrip(e: E2EChain, calls: number): Promise<number[]> {
  const client = grpcClient(Health, e.chain.node(0).ports.grpc, "bench", 5000);
  const out: number[] = [];
  for (let k = 0; k < calls; k++) {
    const t = performance.now();
    await client.check({ service: "" });
    out.push(performance.now() - t);
  }
  return out;
}

/** The chain running now, for the interrupt handler. */
let current: E2EChain | undefined;

async function startChain(nodes: number, env?: Record<string, string>): Promise<E2EChain> {
  current = await E2EChain.start({ nodes, seed: "bench-e2e", blockInterval: 0, raft: ETCD_TIMERS, env });
  return current;
}

async function closeChain(e: E2EChain): Promise<void> {
  await e.close();
  if (current === e) current = undefined;
}

async function ours(nodes: number, round: number): Promise<OurRun> {
  const e = await startChain(nodes, { CONSENSUS_BLOCK_TIMELINE: "1" });
  try {
    await e.waitHeight(5, e.all());
    await e.leader(e.all());
    const from = Math.min(...e.chain.heights());
    const t0 = performance.now();
    await Bun.sleep(SECONDS * 1000); // the measurement window
    const to = Math.min(...e.chain.heights());
    const seconds = (performance.now() - t0) / 1000;
    const rpc = await rpcRoundTrip(e, 100); // also gives the nodes time to log the window's last lines
    e.chain.assertNoFork();

    const timelines = e.all().flatMap((i) => parseTimelines(i, e.log(i)));
    const samples = blockSamples(timelines, from + 1, to, nodes);
    const byHeight = new Map(samples.map((s) => [s.height, s]));
    const toLast: number[] = [];
    const toLeader: number[] = [];
    const emulatorToLast: number[] = [];
    let fromEmulator = 0;
    let synced = 0;
    for (let h = from + 1; h <= to; h++) {
      const blocks = e.chain.controllers.map((c) => c.block(h)!);
      synced += blocks.filter((b) => b.source === "sync").length;
      const proposer = e.chain.nodes.findIndex((n) => Buffer.from(blocks[0].header.proposer).equals(n.address));
      const handedOut = proposer < 0 ? undefined : e.chain.node(proposer).controller.proposalAnsweredAt(h);
      const emuLast = handedOut === undefined ? undefined : Math.max(...blocks.map((b) => b.appendedAt)) - handedOut;
      if (emuLast !== undefined) emulatorToLast.push(emuLast);
      const s = byHeight.get(h);
      if (s?.toLast !== undefined && s.toLeader !== undefined) {
        toLast.push(s.toLast);
        toLeader.push(s.toLeader);
      } else if (handedOut !== undefined) {
        // A node has no timeline for it (it got the block by sync): this height on the emulators' clock.
        fromEmulator++;
        toLast.push(emuLast!);
        toLeader.push(blocks[proposer].appendedAt - handedOut);
      }
    }
    const blocks = to - from;
    return { nodes, round, blocks, seconds, blocksPerS: blocks / seconds, toLast, toLeader, fromEmulator, emulatorToLast, synced, samples, rpc, load: load() };
  } finally {
    await closeChain(e);
  }
}

/** One failover: stop the leader (kill -9 or SIGTERM), time the first block by another node, then bring it back. */
async function failover(e: E2EChain, how: "kill" | "term"): Promise<number> {
  const { index: old } = await e.leader(e.all());
  const survivors = e.all().filter((i) => i !== old);
  const h0 = e.top();
  const t0 = performance.now();
  const stopped = how === "kill" ? e.chain.killConsensus(old) : e.chain.stopConsensus(old);
  const took = await e.waitBlockBy(h0, survivors, (p) => p !== old, 60_000, t0);
  await stopped;
  const mark = e.logMark(old);
  e.chain.startConsensus(old);
  await e.waitLog(old, "block committed", mark);
  await e.leader(e.all());
  return took;
}

// ---------------------------------------------------------------- run

fs.mkdirSync(WORK, { recursive: true });
const jsonl = path.join(WORK, `results-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`);
const out = fs.openSync(jsonl, "w");
const record = (o: Record<string, unknown>) => fs.writeSync(out, JSON.stringify(o) + "\n");

console.log(
  `e2e bench: ${NODES.join(",")} node(s), block_interval 0, fsync on, tick 100 ms / heartbeat 1 / election 10; ` +
    `${RUNS} round(s) of ${SECONDS} s per chain size, ${PUTS} etcd puts per round, ${FAILOVERS} failover(s) of each kind`,
);
console.log(`start ${new Date().toISOString()}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? "?"}), load average ${load()}, bun ${Bun.version}`);

let cluster: EtcdCluster | undefined;
// Interrupted: stop the chain's processes and the etcd members (ours, by PID) before leaving.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.log(`${sig}: stopping the chain and the etcd members`);
    void Promise.allSettled([current?.close(), cluster?.stop()]).then(() => process.exit(130));
  });
}
const tools: EtcdTools = args["no-etcd"]
  ? { ok: false, reason: "skipped (--no-etcd)" }
  : ANCHOR_DIR === undefined
    ? { ok: false, reason: "../shared/anchors/etcd/A not found next to the repository" }
    : prepareEtcd(ANCHOR_DIR, path.join(WORK, "etcd"), (s) => console.log(s));
if (tools.ok) {
  try {
    const started = await EtcdCluster.start(tools, path.join(WORK, "etcd"));
    cluster = started.cluster;
    console.log(`etcd anchor: ${tools.version}; 3 members on ${cluster.endpoints.join(", ")}, healthy ${ms(started.startMs)} ms after start`);
  } catch (e) {
    console.log(`etcd anchor unavailable: ${(e as Error).message.split("\n")[0]}; our figures only`);
  }
} else {
  console.log(`etcd anchor unavailable: ${tools.reason}; our figures only`);
}

const runs = new Map<number, OurRun[]>(NODES.map((n) => [n, []]));
/** etcd's run right after each of ours, by chain size (same index as `runs`). */
const etcdAfter = new Map<number, SeqResult[]>(NODES.map((n) => [n, []]));
const kills: number[] = [];
const terms: number[] = [];
const etcdKills: number[] = [];

try {
  for (let round = 1; round <= RUNS; round++) {
    for (const n of NODES) {
      const o = await ours(n, round);
      runs.get(n)!.push(o);
      const { samples, toLast, toLeader, emulatorToLast, rpc, ...rest } = o;
      record({
        impl: "ours", ...rest, p50ToLast: quantile(toLast, 0.5), p99ToLast: quantile(toLast, 0.99), p50ToLeader: quantile(toLeader, 0.5),
        p99ToLeader: quantile(toLeader, 0.99), emulatorP50ToLast: quantile(emulatorToLast, 0.5), rpcP50: quantile(rpc, 0.5), toLast, toLeader,
      });
      console.log(
        `round ${round}, ours ${n} nodes: ${o.blocks} blocks in ${o.seconds.toFixed(1)} s = ${rate(o.blocksPerS)}/s; ` +
          `p50/p99 to last node ${ms(quantile(toLast, 0.5))}/${ms(quantile(toLast, 0.99))} ms, to leader's ${ms(quantile(toLeader, 0.5))}/${ms(quantile(toLeader, 0.99))} ms ` +
          `(emulator clock p50 ${ms(quantile(emulatorToLast, 0.5))} ms); gRPC p50 ${ms(quantile(rpc, 0.5))} ms; load ${o.load}`,
      );
      if (cluster) {
        const s = await cluster.seq(PUTS, PUT_SIZE, `r${round}-n${n}`);
        etcdAfter.get(n)!.push(s);
        record({ impl: "etcd", round, after: n, load: load(), ...s });
        console.log(
          `round ${round}, etcd: ${s.puts} puts = ${rate(s.puts_per_s)}/s; put p50/p99 ${ms(s.p50_ms)}/${ms(s.p99_ms)} ms; ` +
            `ratios: p50 ${(quantile(toLast, 0.5) / s.p50_ms).toFixed(1)}×, blocks/s ${(o.blocksPerS / s.puts_per_s).toFixed(3)}×; load ${load()}`,
        );
      }
    }
  }

  if (FAILOVERS > 0) {
    const e = await startChain(NODES[0]);
    try {
      await e.waitHeight(5, e.all());
      for (let r = 1; r <= FAILOVERS; r++) {
        kills.push(await failover(e, "kill"));
        if (cluster) etcdKills.push(await cluster.failover());
        terms.push(await failover(e, "term"));
        record({ impl: "failover", run: r, nodes: NODES[0], kill: kills.at(-1), term: terms.at(-1), etcdKill: etcdKills.at(-1), load: load() });
        console.log(
          `failover ${r}: ours kill -9 ${ms(kills.at(-1)!)} ms, SIGTERM ${ms(terms.at(-1)!)} ms` +
            (cluster ? `; etcd kill -9 ${ms(etcdKills.at(-1)!)} ms` : "") +
            `; load ${load()}`,
        );
      }
      e.chain.assertNoFork();
    } finally {
      await closeChain(e);
    }
  }
} finally {
  await cluster?.stop();
  fs.closeSync(out);
}

// ---------------------------------------------------------------- report

/** Median and range of per-round values, "x (a–b)". */
function spread(xs: number[], f: (x: number) => string, unit = ""): string {
  if (xs.length === 0 || xs.some(Number.isNaN)) return "n/a";
  if (xs.length === 1) return `${f(xs[0])}${unit}`;
  return `**${f(med(xs))}${unit}** (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}
const ratio = (x: number) => `${x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3)}×`;
const perRound = (n: number, f: (o: OurRun) => number) => runs.get(n)!.map(f);
/** ours/etcd for each round (etcd's run right after ours). */
const perRoundRatio = (n: number, f: (o: OurRun) => number, g: (s: SeqResult) => number) => {
  const e = etcdAfter.get(n)!;
  return e.length === 0 ? [] : runs.get(n)!.map((o, i) => f(o) / g(e[i]));
};
const p50Last = (o: OurRun) => quantile(o.toLast, 0.5);
const p99Last = (o: OurRun) => quantile(o.toLast, 0.99);
const p50Leader = (o: OurRun) => quantile(o.toLeader, 0.5);
const p99Leader = (o: OurRun) => quantile(o.toLeader, 0.99);
const allEtcd = [...etcdAfter.values()].flat();
const etcdCol = (f: (s: SeqResult) => number, fmt: (x: number) => string, unit = "") => (allEtcd.length ? spread(allEtcd.map(f), fmt, unit) : "—");

const cols = NODES.map((n) => `ours, ${n} nodes`);
const rows: string[][] = [
  ["blocks/s (etcd: sequential puts/s, 1 client)", ...NODES.map((n) => spread(perRound(n, (o) => o.blocksPerS), rate)), etcdCol((s) => s.puts_per_s, rate)],
  ["p50, GetProposal answered → last node's CommitBlock answered (etcd: put p50)", ...NODES.map((n) => spread(perRound(n, p50Last), ms, " ms")), etcdCol((s) => s.p50_ms, ms, " ms")],
  ["p99, same (etcd: put p99)", ...NODES.map((n) => spread(perRound(n, p99Last), ms, " ms")), etcdCol((s) => s.p99_ms, ms, " ms")],
  ["p50, GetProposal answered → leader's CommitBlock answered", ...NODES.map((n) => spread(perRound(n, p50Leader), ms, " ms")), "—"],
  ["p99, same", ...NODES.map((n) => spread(perRound(n, p99Leader), ms, " ms")), "—"],
];
if (allEtcd.length) {
  rows.push(
    ["**ratio** p50 to last node / etcd put p50", ...NODES.map((n) => spread(perRoundRatio(n, p50Last, (s) => s.p50_ms), ratio)), "—"],
    ["ratio p50 to leader's / etcd put p50", ...NODES.map((n) => spread(perRoundRatio(n, p50Leader, (s) => s.p50_ms), ratio)), "—"],
    ["**ratio** blocks/s / etcd puts/s", ...NODES.map((n) => spread(perRoundRatio(n, (o) => o.blocksPerS, (s) => s.puts_per_s), ratio)), "—"],
  );
}
if (NODES.length > 1) {
  const base = NODES[0];
  rows.push([
    `**p50 to last node over p50 at ${base} nodes** (same round)`,
    ...NODES.map((n) => (n === base ? "1×" : spread(runs.get(n)!.map((o, i) => p50Last(o) / p50Last(runs.get(base)![i])), ratio))),
    "—",
  ]);
}
rows.push(
  ["loopback gRPC round trip p50 (health check, during the run)", ...NODES.map((n) => spread(perRound(n, (o) => quantile(o.rpc, 0.5)), ms, " ms")), "—"],
  ["p50 to last node on the emulators' clock (cross-check)", ...NODES.map((n) => spread(perRound(n, (o) => quantile(o.emulatorToLast, 0.5)), ms, " ms")), "—"],
  [
    "blocks that reached a controller by block sync / heights timed on the emulators' clock",
    ...NODES.map((n) => {
      const rs = runs.get(n)!;
      const sum = (f: (o: OurRun) => number) => rs.reduce((a, o) => a + f(o), 0);
      return `${sum((o) => o.synced)} of ${sum((o) => o.blocks * n)} / ${sum((o) => o.fromEmulator)} of ${sum((o) => o.blocks)}`;
    }),
    "—",
  ],
);
if (FAILOVERS > 0) {
  const fcol = (xs: number[]) => NODES.map((n, k) => (k === 0 ? spread(xs, ms, " ms") : "—"));
  rows.push(
    [`kill -9 of the leader → next block (etcd: next put), median of ${FAILOVERS}`, ...fcol(kills), etcdKills.length ? spread(etcdKills, ms, " ms") : "—"],
    [`SIGTERM of the leader (hand-off) → next block, median of ${FAILOVERS}`, ...fcol(terms), "—"],
  );
}

console.log("");
console.log(`| metric | ${cols.join(" | ")} | etcd 3.4, 3 members |`);
console.log(`|---|${cols.map(() => "---|").join("")}---|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log("");
console.log(`Medians of ${RUNS} round(s) with the range in brackets; a ratio is ours/etcd per round (etcd ran right after ours), then its median.`);
for (const n of NODES) {
  const samples = runs.get(n)!.flatMap((o) => o.samples);
  console.log("");
  console.log(`Where a block's time goes, ${n} nodes (${samples.length} blocks from the nodes' timelines, all rounds):`);
  console.log("");
  console.log(formatSteps(summarizeSamples(samples)));
}
console.log("");
console.log(`end ${new Date().toISOString()}, load average ${load()}; raw results: ${jsonl}`);
