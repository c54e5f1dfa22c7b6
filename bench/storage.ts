// Durable storage throughput: Readies per second through SqliteStorage.persist (one transaction,
// one fsync each with synchronous=FULL) for batches of 1, 16 and 256 entries of 256 B, next to the
// raw fsync cost of the same disk measured in the same run.
//
//   bun run bench/storage.ts [dir]      (dir: where to write, default a fresh dir under $TMPDIR)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { newEntry } from "../src/raft/types.ts";
import type { SyncMode } from "../src/storage/db.ts";
import { SqliteStorage } from "../src/storage/sqlite.ts";

const ENTRY_BYTES = 256;
const BATCHES = [1, 16, 256];
const SECONDS_PER_CASE = 2;
/** etcd raft-core W1a, single driver, batch 256: entries committed per second in memory (anchors-etcd.md B). */
const RAFT_CORE_TARGET = 296_400;

const root = fs.mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), "storage-bench-"));

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** fio's etcd disk check in miniature: write 2300 B + fdatasync, 1000 times. */
function fsyncCost(): { p50: number; p99: number; perSec: number } {
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
  return { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), perSec: 1000 / total };
}

interface Row {
  sync: SyncMode;
  batch: number;
  readies: number;
  readiesPerSec: number;
  entriesPerSec: number;
  p50: number;
  p99: number;
}

function persistRate(sync: SyncMode, batch: number): Row {
  const dir = path.join(root, `${sync}-${batch}`);
  const st = SqliteStorage.open(dir, { synchronous: sync });
  const payload = crypto.getRandomValues(new Uint8Array(ENTRY_BYTES));
  const lat: number[] = [];
  let index = 0;
  const deadline = Bun.nanoseconds() + SECONDS_PER_CASE * 1e9;
  const t0 = Bun.nanoseconds();
  while (Bun.nanoseconds() < deadline) {
    const entries = [];
    for (let i = 0; i < batch; i++) entries.push(newEntry({ term: 1, index: ++index, data: payload }));
    const t = Bun.nanoseconds();
    // A follower's Ready: new entries plus the hard state that commits the previous batch.
    st.persist({ entries, hardState: { term: 1, vote: 1n, commit: index - batch } });
    lat.push((Bun.nanoseconds() - t) / 1e6);
    // Keep the in-memory mirror bounded as a running node would (applied + compacted, outside the timing).
    if (lat.length % 256 === 0) {
      st.apply(index - batch);
      st.compact(1024);
    }
  }
  const seconds = (Bun.nanoseconds() - t0) / 1e9;
  st.close();
  lat.sort((a, b) => a - b);
  return {
    sync,
    batch,
    readies: lat.length,
    readiesPerSec: lat.length / seconds,
    entriesPerSec: index / seconds,
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
  };
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

try {
  const before = fsyncCost();
  const rows: Row[] = [];
  for (const sync of ["FULL", "NORMAL"] as const) for (const b of BATCHES) rows.push(persistRate(sync, b));
  const after = fsyncCost();
  const fsync = before.p50 <= after.p50 ? before : after;

  console.log(`disk fsync (write 2300 B + fdatasync, 1000x, better of two runs): p50 ${fmt(fsync.p50, 3)} ms, p99 ${fmt(fsync.p99, 3)} ms, ${fmt(fsync.perSec)}/s`);
  console.log(`(the other run: p50 ${fmt(before.p50 <= after.p50 ? after.p50 : before.p50, 3)} ms)`);
  console.log("");
  console.log(`| synchronous | entries per Ready (${ENTRY_BYTES} B) | Readies/s | entries/s | MB/s | Ready p50 ms | Ready p99 ms | p50 / fsync p50 |`);
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.sync} | ${r.batch} | ${fmt(r.readiesPerSec)} | ${fmt(r.entriesPerSec)} | ${fmt((r.entriesPerSec * ENTRY_BYTES) / 1e6, 1)} | ` +
        `${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.p50 / fsync.p50, 1)}x |`,
    );
  }
  const full256 = rows.find((r) => r.sync === "FULL" && r.batch === 256)!;
  console.log("");
  console.log(
    `batch 256 with fsync: ${fmt(full256.entriesPerSec)} entries/s = ${fmt(full256.entriesPerSec / RAFT_CORE_TARGET, 2)}x ` +
      `the raft-core target (etcd raft W1a, batch 256, in memory: ${fmt(RAFT_CORE_TARGET)} entries/s)`,
  );
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
