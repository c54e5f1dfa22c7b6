// Raft core throughput and latency next to etcd-raft, measured in the same invocation.
// Workloads mirror ../shared/anchors/etcd/B (3 nodes in one process, memory storage and bus,
// 256-byte entries, single-loop driver): W1b = 10,000 sequential propose->commit, W1a = 100,000
// entries pipelined with `batch` proposals per loop pass. Every measurement is a fresh process
// (ours and the anchor alike); runs are interleaved ours, etcd, ours, etcd... and the table shows
// medians, so load from other processes hits both sides alike.
//
//   bun bench/raft-core.ts                  # 5 runs of each row, etcd anchor if Go can be had
//   bun bench/raft-core.ts --runs 3 --marshal   # add the rows with protobuf round-trips
//   bun bench/raft-core.ts --no-etcd        # our figures only
//   bun bench/raft-core.ts --warmup 20000   # longer warm-up on both sides (steady state, JIT warm)
//   bun bench/raft-core.ts --one w1a --batch 256 [--marshal] [--n N]   # one run, one JSON line
//
// Raw results: one JSON line per measurement in /tmp/raftcore-bench/results-<time>.jsonl.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type Anchor, prepareAnchor, runAnchor } from "./lib/etcd-anchor.ts";
import { type RunOptions, runOnce } from "./lib/raft-cluster.ts";

const WORK = "/tmp/raftcore-bench";
const ANCHOR_DIR = path.resolve(import.meta.dir, "../../shared/anchors/etcd/B/raftcore");

interface Row {
  label: string;
  workload: "w1a" | "w1b";
  n: number;
  batch: number;
  marshal: boolean;
}

const ROWS: Row[] = [
  { label: "W1b sequential 10k", workload: "w1b", n: 10_000, batch: 1, marshal: false },
  { label: "W1a pipelined 100k, batch 256", workload: "w1a", n: 100_000, batch: 256, marshal: false },
  { label: "W1a pipelined 100k, batch 1", workload: "w1a", n: 100_000, batch: 1, marshal: false },
  { label: "W1a pipelined 100k, all at once", workload: "w1a", n: 100_000, batch: 100_000, marshal: false },
];
const MARSHAL_ROWS: Row[] = [
  { label: "W1b sequential 10k + marshal", workload: "w1b", n: 10_000, batch: 1, marshal: true },
  { label: "W1a pipelined 100k, batch 256 + marshal", workload: "w1a", n: 100_000, batch: 256, marshal: true },
];

function fail(msg: string, code = 2): never {
  console.error(`raft-core bench: ${msg}`);
  process.exit(code);
}

/** Runs `f`; a failure (a run that did not verify, an anchor that crashed) is one line and exit 1. */
function orFail<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    fail((e as Error).message, 1);
  }
}

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) fail(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function parse() {
  try {
    return parseArgs({
      options: {
        runs: { type: "string" },
        marshal: { type: "boolean", default: false },
        "no-etcd": { type: "boolean", default: false },
        one: { type: "string" },
        batch: { type: "string" },
        n: { type: "string" },
        size: { type: "string" },
        warmup: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
}

const args = parse();
if (args.help) {
  // The header comment of this file is the usage.
  const lines = fs.readFileSync(import.meta.path, "utf8").split("\n");
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith("//"))).join("\n"));
  process.exit(0);
}

if (args.one !== undefined) {
  // A single measurement in this process (the orchestrator runs each one in a fresh child).
  if (args.one !== "w1a" && args.one !== "w1b") fail(`--one must be w1a or w1b, got ${JSON.stringify(args.one)}`);
  const o: RunOptions = {
    workload: args.one,
    n: positiveInt("n", args.n, args.one === "w1a" ? 100_000 : 10_000),
    size: positiveInt("size", args.size, 256),
    batch: positiveInt("batch", args.batch, 256),
    warmup: positiveInt("warmup", args.warmup, 1000),
    marshal: args.marshal,
  };
  console.log(JSON.stringify(orFail(() => runOnce(o))));
  process.exit(0);
}

const runs = positiveInt("runs", args.runs, 5);
const warmup = positiveInt("warmup", args.warmup, 1000);
const rows = args.marshal ? [...ROWS, ...MARSHAL_ROWS] : ROWS;
fs.mkdirSync(WORK, { recursive: true });
const jsonl = path.join(WORK, `results-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`);

function ours(r: Row): Record<string, unknown> {
  const cmd = [process.execPath, import.meta.path, "--one", r.workload, "--n", String(r.n), "--batch", String(r.batch), "--warmup", String(warmup)];
  if (r.marshal) cmd.push("--marshal");
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 300_000 });
  const out = p.stdout.toString().trim().split("\n").pop() ?? "";
  if (p.exitCode !== 0) throw new Error(`our run ${r.label} failed: ${p.stderr.toString().trim().split("\n").slice(-3).join(" | ")}`);
  return JSON.parse(out) as Record<string, unknown>;
}

function theirs(bin: string, r: Row): Record<string, unknown> {
  const a = ["-workload", r.workload, "-mode", "single", "-n", String(r.n), "-batch", String(r.batch), "-warmup", String(warmup)];
  if (r.marshal) a.push("-marshal");
  return runAnchor(bin, a);
}

const cpu = os.cpus()[0]?.model ?? "unknown cpu";
console.log(`raft-core bench: ${runs} run(s) per row, warm-up ${warmup} entries, ${os.cpus().length} cpus (${cpu}), load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log(`ours: bun ${Bun.version}`);
const anchor: Anchor = args["no-etcd"] ? { ok: false, reason: "skipped (--no-etcd)" } : prepareAnchor(ANCHOR_DIR, WORK, (s) => console.log(s));
console.log(anchor.ok ? `etcd anchor: ${anchor.bin} (${anchor.version}, etcd raft 3.4 from Debian)` : `etcd anchor unavailable: ${anchor.reason}`);

const results = new Map<string, { ours: Record<string, unknown>[]; etcd: Record<string, unknown>[] }>();
for (const r of rows) results.set(r.label, { ours: [], etcd: [] });
const out = fs.openSync(jsonl, "w");
for (let run = 1; run <= runs; run++) {
  for (const r of rows) {
    const pair = results.get(r.label)!;
    const o = orFail(() => ours(r));
    pair.ours.push(o);
    fs.writeSync(out, JSON.stringify({ run, row: r.label, ...o }) + "\n");
    if (anchor.ok) {
      const t = { impl: "etcd", ...orFail(() => theirs(anchor.bin, r)) };
      pair.etcd.push(t);
      fs.writeSync(out, JSON.stringify({ run, row: r.label, ...t }) + "\n");
    }
  }
  process.stdout.write(`run ${run}/${runs} done\n`);
}
fs.closeSync(out);

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const med = (rs: Record<string, unknown>[], k: string) => (rs.length ? median(rs.map((x) => Number(x[k]))) : NaN);
const rate = (r: Row) => (r.workload === "w1a" ? "leader_commits_per_s" : "commits_per_s");
const fmtRate = (x: number) => (Number.isNaN(x) ? "n/a" : Math.round(x).toLocaleString("en-US"));
const fmtUs = (p50: number, p99: number) => (Number.isNaN(p50) ? "n/a" : `${p50.toFixed(1)} / ${p99.toFixed(1)} µs`);

/**
 * ours/etcd per run (each pair ran back to back, so under the same outside load), then the median
 * and the range of those ratios: steadier on a shared machine than a ratio of two medians.
 */
function pairedRatios(o: Record<string, unknown>[], e: Record<string, unknown>[], k: string): string {
  if (e.length === 0) return "n/a | n/a";
  const rs = o.map((x, i) => Number(x[k]) / Number(e[i][k]));
  return `${median(rs).toFixed(2)}× | ${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}`;
}

console.log("");
console.log("| workload | ours commits/s | etcd commits/s | ours/etcd | per-run range | ours p50/p99 | etcd p50/p99 |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  const { ours: o, etcd: e } = results.get(r.label)!;
  const lat = r.workload === "w1b";
  console.log(
    `| ${r.label} | ${fmtRate(med(o, rate(r)))} | ${fmtRate(med(e, rate(r)))} | ${pairedRatios(o, e, rate(r))} | ` +
      `${lat ? fmtUs(med(o, "p50_us"), med(o, "p99_us")) : "—"} | ${lat ? fmtUs(med(e, "p50_us"), med(e, "p99_us")) : "—"} |`,
  );
}
console.log("");
console.log(`${runs} interleaved run(s): commits/s and latencies are medians, ours/etcd the median of per-run ratios; raw results: ${jsonl}`);
