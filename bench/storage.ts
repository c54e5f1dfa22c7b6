// Durable storage throughput: Readies per second through SqliteStorage.persist (one transaction,
// one fsync each with synchronous=FULL) for batches of 1, 16, 256 (and 1024) entries of 256 B, next to the
// raw fsync cost of the same disk. Rounds are interleaved (fsync probe, then every case) and the
// table shows medians, so load from other processes hits every row alike.
//
//   bun run bench/storage.ts [--rounds 3] [--seconds 1.5] [--dir DIR]   (default dir: $TMPDIR)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { newEntry } from "../src/raft/index.ts";
import type { SyncMode } from "../src/storage/db.ts";
import { SqliteStorage } from "../src/storage/sqlite.ts";

const { values: args } = parseArgs({
  options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "1.5" }, dir: { type: "string", default: os.tmpdir() } },
});
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const ENTRY_BYTES = 256;
const CASES: [SyncMode, number][] = [
  ["FULL", 1],
  ["FULL", 16],
  ["FULL", 256],
  // Not asked for, but shows that a Ready's cost is mostly its fsync: a loop that falls behind
  // gets bigger Readies and catches up.
  ["FULL", 1024],
  ["NORMAL", 1],
  ["NORMAL", 16],
  ["NORMAL", 256],
];
/** etcd raft-core W1a, single driver, batch 256: entries committed per second in memory (anchors-etcd.md B). */
const RAFT_CORE_TARGET = 296_400;

const root = fs.mkdtempSync(path.join(args.dir, "storage-bench-"));

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);

interface Sample {
  perSec: number;
  p50: number;
  p99: number;
}

/** fio's etcd disk check in miniature: 1000 × (write 2300 B + fdatasync). */
function fsyncCost(): Sample {
  const file = path.join(root, "fsync-probe");
  const fd = fs.openSync(file, "w");
  const buf = Buffer.alloc(2300, 7);
  const lat: number[] = [];
  const t0 = Bun.nanoseconds();
  for (let i = 0; i < 1000; i++) {
    const t = Bun.nanoseconds();
    fs.writeSync(fd, buf);
    fs.fdatasyncSync(fd);
    lat.push((Bun.nanoseconds() - t) / 1e6);
  }
  const total = (Bun.nanoseconds() - t0) / 1e9;
  fs.closeSync(fd);
  fs.rmSync(file);
  lat.sort((a, b) => a - b);
  return { perSec: 1000 / total, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

/** Readies per second for one case, in a fresh data dir. */
function persistRate(sync: SyncMode, batch: number, round: number): Sample {
  const dir = path.join(root, `${sync}-${batch}-${round}`);
  const st = SqliteStorage.open(dir, { synchronous: sync });
  const payload = crypto.getRandomValues(new Uint8Array(ENTRY_BYTES));
  const lat: number[] = [];
  let index = 0;
  const t0 = Bun.nanoseconds();
  const deadline = t0 + SECONDS * 1e9;
  while (Bun.nanoseconds() < deadline) {
    const entries = [];
    for (let i = 0; i < batch; i++) entries.push(newEntry({ term: 1, index: ++index, data: payload }));
    const t = Bun.nanoseconds();
    // A follower's Ready: new entries plus the hard state that commits the previous batch.
    st.persist({ entries, hardState: { term: 1, vote: 1n, commit: index - batch } });
    lat.push((Bun.nanoseconds() - t) / 1e6);
    // Apply and compact like a running node, so the log stays bounded (in the rate, not in the latencies).
    if (lat.length % 64 === 0) {
      st.apply(index - batch);
      st.compact(1024);
    }
  }
  const seconds = (Bun.nanoseconds() - t0) / 1e9;
  st.close();
  fs.rmSync(dir, { recursive: true });
  lat.sort((a, b) => a - b);
  return { perSec: lat.length / seconds, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

try {
  const fsyncs: Sample[] = [];
  const results: Sample[][] = CASES.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    fsyncs.push(fsyncCost());
    CASES.forEach(([sync, batch], i) => results[i].push(persistRate(sync, batch, round)));
  }
  const fsyncP50 = median(fsyncs.map((f) => f.p50));
  console.log(
    `disk fsync (write 2300 B + fdatasync, 1000x; median of ${ROUNDS} rounds): p50 ${fmt(fsyncP50, 3)} ms, ` +
      `p99 ${fmt(median(fsyncs.map((f) => f.p99)), 3)} ms, ${fmt(median(fsyncs.map((f) => f.perSec)))}/s`,
  );
  console.log("");
  console.log(`| synchronous | entries per Ready (${ENTRY_BYTES} B) | Readies/s | entries/s | MB/s | Ready p50 ms | Ready p99 ms | Ready p50 / fsync p50 |`);
  console.log("|---|---|---|---|---|---|---|---|");
  let full256 = 0;
  CASES.forEach(([sync, batch], i) => {
    const rs = median(results[i].map((r) => r.perSec));
    const p50 = median(results[i].map((r) => r.p50));
    if (sync === "FULL" && batch === 256) full256 = rs * batch;
    console.log(
      `| ${sync} | ${batch} | ${fmt(rs)} | ${fmt(rs * batch)} | ${fmt((rs * batch * ENTRY_BYTES) / 1e6, 1)} | ` +
        `${fmt(p50, 3)} | ${fmt(median(results[i].map((r) => r.p99)), 3)} | ${fmt(p50 / fsyncP50, 1)}x |`,
    );
  });
  console.log("");
  console.log(
    `batch 256 with fsync: ${fmt(full256)} entries/s = ${fmt(full256 / RAFT_CORE_TARGET, 2)}x ` +
      `the raft-core target (etcd raft W1a, batch 256, 3 nodes in memory: ${fmt(RAFT_CORE_TARGET)} entries/s)`,
  );
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
