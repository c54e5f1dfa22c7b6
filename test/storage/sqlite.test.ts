// SqliteStorage semantics: what survives a restart, log truncation and compaction boundaries,
// snapshots, the Raft safety guards on the write side, and uint64 edge values.
import type { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import fc from "fast-check";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { StorageError, type Entry, EntryType, type Snapshot, newConfState, newEntry } from "../../src/raft/index.ts";
import { StorageWriteError } from "../../src/storage/errors.ts";
import { SqliteStorage } from "../../src/storage/sqlite.ts";
import { Model, fingerprint, nextOp, rng, runOp } from "../fixtures/storage/workload.ts";

const U64_MAX = (1n << 64n) - 1n;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const dirs: string[] = [];
const open: SqliteStorage[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "storage-test-"));
  dirs.push(d);
  return d;
}

function openAt(dir: string): SqliteStorage {
  const s = SqliteStorage.open(dir);
  open.push(s);
  return s;
}

function reopen(s: SqliteStorage): SqliteStorage {
  s.close();
  return openAt(path.dirname(s.file));
}

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const bytes = (...b: number[]) => new Uint8Array(b);
const ent = (index: number, term: number, data = bytes(index & 0xff, term & 0xff)): Entry => newEntry({ index, term, data });
const ents = (from: number, to: number, term: number): Entry[] => {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term));
  return out;
};
const snap = (index: number, term: number, voters: bigint[], data: Uint8Array): Snapshot => ({
  data,
  metadata: { index, term, confState: newConfState({ voters }) },
});

function storageError(f: () => unknown): StorageError {
  try {
    f();
  } catch (e) {
    if (e instanceof StorageError) return e;
    throw e;
  }
  throw new Error("expected a StorageError");
}

describe("a fresh data dir", () => {
  test("starts empty: no state, no log, nothing applied", () => {
    const s = openAt(tmpDir());
    expect(s.initialState().hardState).toEqual({ term: 0, vote: 0n, commit: 0 });
    expect(s.initialState().confState.voters).toEqual([]);
    expect([s.firstIndex(), s.lastIndex(), s.term(0), s.appliedIndex()]).toEqual([1, 0, 0, 0]);
    expect(s.chainConfigBytes().length).toBe(0);
    expect(s.abortHeight()).toBe(0n);
    expect(fs.existsSync(path.join(path.dirname(s.file), "raft.sqlite"))).toBe(true);
  });

  test("creates a missing raft_data_path, including parents", () => {
    const dir = path.join(tmpDir(), "a", "raft-data-dir");
    const s = openAt(dir);
    expect(s.file).toBe(path.join(dir, "raft.sqlite"));
  });

  test("joins a chain at a non-zero height through a leader's snapshot, and keeps it across a restart", () => {
    let s = openAt(tmpDir());
    const config = bytes(8, 0xf4, 3, 16, 3); // ConsensusConfiguration{height 500, block_interval 3}
    s.persist({ snapshot: snap(1000, 7, [1n, 2n, 3n], config), entries: ents(1001, 1003, 7), hardState: { term: 7, vote: 0n, commit: 1002 } });
    s = reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(1000), s.appliedIndex()]).toEqual([1001, 1003, 7, 1000]);
    expect(s.initialState()).toEqual({ hardState: { term: 7, vote: 0n, commit: 1002 }, confState: newConfState({ voters: [1n, 2n, 3n] }) });
    expect(s.chainConfigBytes()).toEqual(config);
    expect(() => s.term(999)).toThrow(StorageError);
  });
});

describe("restart recovery", () => {
  test("every field survives close and reopen", () => {
    let s = openAt(tmpDir());
    const cs = newConfState({ voters: [U64_MAX, 2n], learners: [3n], votersOutgoing: [1n << 63n], learnersNext: [4n], autoLeave: true });
    s.persist({ snapshot: snap(5, 5, [1n, 2n], bytes(1, 2, 3)) });
    s.persist({
      entries: [
        newEntry({ index: 6, term: 6, entryType: EntryType.EntryConfChangeV2, data: bytes(9, 9), context: bytes(7) }),
        newEntry({ index: 7, term: 6, data: new Uint8Array(5000).fill(0xab) }),
        newEntry({ index: 8, term: 6 }),
      ],
      hardState: { term: 6, vote: U64_MAX, commit: 7 },
    });
    s.apply(6, { chainConfigBytes: bytes(4, 5, 6), confState: cs });
    s.compact(0);
    s.setAbortHeight(U64_MAX);
    const before = fingerprint(s);
    s = reopen(s);
    expect(fingerprint(s)).toBe(before);
    expect(s.initialState()).toEqual({ hardState: { term: 6, vote: U64_MAX, commit: 7 }, confState: cs });
    expect(s.entries(7, 9)).toEqual([
      newEntry({ index: 7, term: 6, data: new Uint8Array(5000).fill(0xab) }),
      newEntry({ index: 8, term: 6 }),
    ]);
    expect([s.firstIndex(), s.term(6), s.appliedIndex()]).toEqual([7, 6, 6]);
    expect(s.snapshot(6, 2n)).toEqual({ data: bytes(4, 5, 6), metadata: { index: 6, term: 6, confState: cs } });
    expect(s.abortHeight()).toBe(U64_MAX);
  });

  test("matches a MemStorage-based model over random operations and restarts", () => {
    fc.assert(
      fc.property(fc.integer(), fc.array(fc.boolean(), { minLength: 10, maxLength: 30 }), (seed, restarts) => {
        const dir = tmpDir();
        let s = SqliteStorage.open(dir, { synchronous: "NORMAL" });
        try {
          const model = new Model();
          const r = rng(seed);
          for (const restart of restarts) {
            const op = nextOp(r, s);
            runOp(s, op);
            runOp(model, op);
            expect(fingerprint(s)).toBe(fingerprint(model));
            if (restart) {
              s.close();
              s = SqliteStorage.open(dir, { synchronous: "NORMAL" });
              expect(fingerprint(s)).toBe(fingerprint(model));
            }
          }
        } finally {
          s.close();
        }
      }),
      { numRuns: 25 },
    );
  }, 60_000);
});

describe("appending entries", () => {
  test("an append at index i discards every stored entry >= i, also inside and across stored batches", () => {
    let s = openAt(tmpDir());
    s.persist({ entries: ents(1, 4, 1), hardState: { term: 1, vote: 1n, commit: 2 } });
    s.persist({ entries: ents(5, 8, 1) });
    s.persist({ entries: ents(9, 10, 1) });
    // Cuts the first batch after entry 3 and drops the two later batches.
    s.persist({ entries: [ent(4, 2, bytes(0xee))], hardState: { term: 2, vote: 2n, commit: 2 } });
    expect(s.lastIndex()).toBe(4);
    expect(s.entries(1, 5).map((e) => [e.index, e.term])).toEqual([[1, 1], [2, 1], [3, 1], [4, 2]]);
    s = reopen(s);
    expect(s.entries(1, 5)).toEqual([ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 2, bytes(0xee))]);
    expect(() => s.term(5)).toThrow(StorageError);
    // Appending at the end after a truncation continues the log.
    s.persist({ entries: ents(5, 6, 2) });
    s = reopen(s);
    expect(s.entries(1, 7).map((e) => e.term)).toEqual([1, 1, 1, 2, 2, 2]);
  });

  test("a truncation that replaces the whole uncommitted log keeps the committed prefix", () => {
    let s = openAt(tmpDir());
    s.persist({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 1n, commit: 3 } });
    s.persist({ entries: ents(4, 9, 1) });
    s.persist({ entries: ents(4, 5, 3), hardState: { term: 3, vote: 0n, commit: 3 } });
    s = reopen(s);
    expect(s.entries(1, 6).map((e) => [e.index, e.term])).toEqual([[1, 1], [2, 1], [3, 1], [4, 3], [5, 3]]);
  });

  test("refuses to overwrite committed or compacted entries, or to leave a gap, and changes nothing", () => {
    const s = openAt(tmpDir());
    s.persist({ entries: ents(1, 6, 1), hardState: { term: 1, vote: 1n, commit: 4 } });
    s.apply(3);
    s.compact(1);
    const before = fingerprint(s);
    expect(() => s.persist({ entries: ents(4, 5, 2) })).toThrow("would overwrite committed entries (commit 4)");
    expect(() => s.persist({ entries: ents(2, 2, 2) })).toThrow("overwrite compacted raft logs");
    expect(() => s.persist({ entries: ents(8, 9, 1) })).toThrow("raft logs should be continuous");
    expect(() => s.persist({ entries: [ent(7, 1), ent(9, 1)] })).toThrow("not contiguous");
    expect(() => s.persist({ entries: [ent(7, 1), ent(8, 0)] })).toThrow("below the previous entry's 1");
    expect(fingerprint(s)).toBe(before);
    expect(fingerprint(reopen(s))).toBe(before);
  });
});

describe("hard state", () => {
  test("rejects Ready batches that would break Raft safety, without writing any part of them", () => {
    const s = openAt(tmpDir());
    s.persist({ entries: ents(1, 3, 2), hardState: { term: 2, vote: 7n, commit: 2 } });
    const before = fingerprint(s);
    const withEntry = { entries: [ent(4, 2)] };
    expect(() => s.persist({ ...withEntry, hardState: { term: 1, vote: 7n, commit: 2 } })).toThrow("term goes back from 2 to 1");
    expect(() => s.persist({ ...withEntry, hardState: { term: 2, vote: 8n, commit: 2 } })).toThrow("changes the vote of term 2 from 7 to 8");
    expect(() => s.persist({ ...withEntry, hardState: { term: 2, vote: 0n, commit: 2 } })).toThrow("changes the vote");
    expect(() => s.persist({ ...withEntry, hardState: { term: 2, vote: 7n, commit: 1 } })).toThrow("commit goes back from 2 to 1");
    expect(() => s.persist({ ...withEntry, hardState: { term: 2, vote: 7n, commit: 5 } })).toThrow("commit 5 is beyond the last entry 4");
    expect(fingerprint(s)).toBe(before);
    // A new term may carry any vote.
    s.persist({ hardState: { term: 3, vote: 8n, commit: 3 } });
    expect(reopen(s).initialState().hardState).toEqual({ term: 3, vote: 8n, commit: 3 });
  });

  test("malformed values get a clear error instead of a wrapped or rounded row", () => {
    const s = openAt(tmpDir());
    expect(() => s.persist({ entries: [ent(Number.NaN, 1)] })).toThrow("index NaN is not an integer");
    expect(() => s.persist({ entries: [ent(1, 1.5)] })).toThrow("invalid term 1.5");
    expect(() => s.persist({ entries: [newEntry({ index: 1, term: 1, entryType: 256 as EntryType })] })).toThrow("type 256");
    expect(() => s.persist({ hardState: { term: 1, vote: U64_MAX + 1n, commit: 0 } })).toThrow("invalid hard state");
    expect(() => s.persist({ hardState: { term: 2 ** 53, vote: 1n, commit: 0 } })).toThrow("invalid hard state");
    expect(() => s.persist({ snapshot: snap(1.5, 1, [1n], bytes()) })).toThrow("invalid snapshot index 1.5");
    expect(fingerprint(reopen(s))).toBe(fingerprint(new Model()));
  });

  test("a failed write (disk full) throws StorageWriteError and leaves memory and disk as they were", () => {
    const s = openAt(tmpDir());
    s.persist({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 1n, commit: 1 } });
    const before = fingerprint(s);
    // White-box: cap the database at its current size, as a full disk would.
    const db = (s as unknown as { db: Database }).db;
    db.run(`PRAGMA max_page_count = ${Number(db.query("PRAGMA page_count").values()[0][0])}`);
    const big = [newEntry({ index: 2, term: 2, data: new Uint8Array(100_000) })];
    expect(() => s.persist({ entries: big, hardState: { term: 2, vote: 2n, commit: 1 } })).toThrow(
      new StorageWriteError(`raft database ${s.file}: persist failed: disk full (database or disk is full)`),
    );
    expect(fingerprint(s)).toBe(before);
    db.run("PRAGMA max_page_count = 1073741823");
    s.persist({ entries: big, hardState: { term: 2, vote: 2n, commit: 1 } });
    expect(reopen(s).entries(1, 3)).toEqual([ent(1, 1), big[0]]);
  });

  test("an empty Ready writes nothing", () => {
    const s = openAt(tmpDir());
    const before = fs.statSync(s.file).mtimeMs;
    s.persist({});
    s.persist({ entries: [], snapshot: snap(0, 0, [], bytes()) });
    expect(fingerprint(s)).toBe(fingerprint(new Model()));
    expect(fs.statSync(s.file).mtimeMs).toBe(before);
  });
});

describe("apply", () => {
  test("stores the applied index, its term, the state machine and the ConfState together", () => {
    let s = openAt(tmpDir());
    s.persist({ entries: [ent(1, 1), ent(2, 2), ent(3, 2)], hardState: { term: 2, vote: 1n, commit: 3 } });
    s.apply(2, { chainConfigBytes: bytes(1), confState: newConfState({ voters: [9n] }) });
    s.apply(3); // no new state machine or ConfState: both stay
    s = reopen(s);
    expect(s.appliedIndex()).toBe(3);
    expect(s.snapshot(3, 9n)).toEqual({ data: bytes(1), metadata: { index: 3, term: 2, confState: newConfState({ voters: [9n] }) } });
  });

  test("setChainConfigBytes replaces the configuration without moving the applied index, durably", () => {
    let s = openAt(tmpDir());
    s.persist({ entries: ents(1, 2, 1), hardState: { term: 1, vote: 1n, commit: 2 } });
    s.apply(2, { chainConfigBytes: bytes(1) });
    s.setChainConfigBytes(bytes(2, 2));
    s = reopen(s);
    expect(s.appliedIndex()).toBe(2);
    expect(s.snapshot(2, 1n).data).toEqual(bytes(2, 2));
  });

  test("raises a lagging stored commit index so that a restart never sees applied > commit", () => {
    let s = openAt(tmpDir());
    s.persist({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 1n, commit: 2 } });
    s.apply(4);
    s = reopen(s);
    expect(s.initialState().hardState.commit).toBe(4);
  });

  test("refuses indexes that do not advance or that are not stored", () => {
    const s = openAt(tmpDir());
    s.persist({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 1n, commit: 3 } });
    s.apply(2);
    expect(() => s.apply(2)).toThrow("does not advance the applied index 2");
    expect(() => s.apply(1)).toThrow("does not advance");
    expect(() => s.apply(4)).toThrow("beyond the last stored entry 3");
    expect(s.appliedIndex()).toBe(2);
  });
});

describe("compaction", () => {
  // Terms 1,1,2,2,3,3,3,4 at indexes 1..8, everything committed, 6 applied.
  function prepared(): SqliteStorage {
    const s = openAt(tmpDir());
    const terms = [1, 1, 2, 2, 3, 3, 3, 4];
    s.persist({ entries: terms.slice(0, 3).map((t, i) => ent(i + 1, t)) });
    s.persist({ entries: terms.slice(3).map((t, i) => ent(i + 4, t)), hardState: { term: 4, vote: 1n, commit: 8 } });
    s.apply(6);
    return s;
  }

  test("keeps the configured tail of applied entries and the term of the entry before the first kept one", () => {
    let s = prepared();
    expect(s.compact(2)).toBe(4);
    expect([s.firstIndex(), s.lastIndex(), s.term(4)]).toEqual([5, 8, 2]);
    expect(storageError(() => s.term(3)).kind).toBe("Compacted");
    expect(storageError(() => s.entries(4, 6)).kind).toBe("Compacted");
    s = reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(4)]).toEqual([5, 8, 2]);
    expect(s.entries(5, 9).map((e) => e.term)).toEqual([3, 3, 3, 4]);
  });

  test("keepTail 0 keeps no applied entry; unapplied entries are never compacted", () => {
    let s = prepared();
    expect(s.compact(0)).toBe(6);
    expect([s.firstIndex(), s.term(6)]).toEqual([7, 3]);
    s = reopen(s);
    expect(s.entries(7, 9).map((e) => e.index)).toEqual([7, 8]);
    expect(s.term(6)).toBe(3);
  });

  test("removes nothing when the tail is already short enough, and compacts step by step", () => {
    let s = prepared();
    expect(s.compact(6)).toBe(0);
    expect(s.compact(100)).toBe(0);
    expect(s.compact(4)).toBe(2);
    expect(s.compact(4)).toBe(0);
    expect(s.term(2)).toBe(1);
    s.apply(8);
    expect(s.compact(1)).toBe(5);
    s = reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(7)]).toEqual([8, 8, 3]);
  });

  test("rejects a negative or fractional tail", () => {
    const s = prepared();
    expect(() => s.compact(-1)).toThrow("non-negative integer");
    expect(() => s.compact(1.5)).toThrow("non-negative integer");
  });
});

describe("snapshots", () => {
  test("are made at the applied index, and are temporarily unavailable beyond it", () => {
    const s = openAt(tmpDir());
    s.persist({ snapshot: snap(5, 5, [1n], bytes(1)) });
    s.persist({ entries: ents(6, 9, 5), hardState: { term: 5, vote: 1n, commit: 9 } });
    s.apply(7, { chainConfigBytes: bytes(2) });
    const sn = s.snapshot(3, 2n);
    expect(sn.metadata.index).toBe(7);
    expect(sn.metadata.term).toBe(5);
    expect(sn.data).toEqual(bytes(2));
    expect(s.snapshot(7, 2n).metadata.index).toBe(7);
    expect(storageError(() => s.snapshot(8, 2n)).kind).toBe("SnapshotTemporarilyUnavailable");
  });

  test("an installed snapshot replaces the whole log and becomes the applied state", () => {
    let s = openAt(tmpDir());
    s.persist({ entries: ents(1, 10, 1), hardState: { term: 1, vote: 1n, commit: 3 } });
    s.apply(2, { chainConfigBytes: bytes(1) });
    s.persist({ snapshot: snap(8, 3, [4n, U64_MAX], bytes(8, 8)) });
    s = reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(8), s.appliedIndex()]).toEqual([9, 8, 3, 8]);
    expect(s.initialState()).toEqual({ hardState: { term: 3, vote: 1n, commit: 8 }, confState: newConfState({ voters: [4n, U64_MAX] }) });
    expect(s.snapshot(8, 1n)).toEqual(snap(8, 3, [4n, U64_MAX], bytes(8, 8)));
  });

  test("a snapshot at or below the commit index is out of date", () => {
    const s = openAt(tmpDir());
    s.persist({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 1n, commit: 4 } });
    const before = fingerprint(s);
    expect(storageError(() => s.persist({ snapshot: snap(4, 1, [1n], bytes()) })).kind).toBe("SnapshotOutOfDate");
    expect(fingerprint(s)).toBe(before);
  });
});

describe("uint64 and 2^53 edge values", () => {
  test("node ids and the abort height round-trip at 2^63-1, 2^63 and 2^64-1 without wrapping", () => {
    for (const id of [(1n << 63n) - 1n, 1n << 63n, U64_MAX]) {
      let s = openAt(tmpDir());
      const cs = newConfState({ voters: [id], learners: [id], votersOutgoing: [id], learnersNext: [id] });
      s.persist({ snapshot: { data: bytes(), metadata: { index: 1, term: 1, confState: cs } }, hardState: { term: 1, vote: id, commit: 1 } });
      s.setAbortHeight(id);
      s = reopen(s);
      expect(s.initialState()).toEqual({ hardState: { term: 1, vote: id, commit: 1 }, confState: cs });
      expect(s.abortHeight()).toBe(id);
    }
  });

  test("terms and indexes up to 2^53-1 are exact", () => {
    let s = openAt(tmpDir());
    s.persist({ snapshot: snap(MAX_SAFE - 3, MAX_SAFE - 1, [1n], bytes()) });
    s.persist({ entries: [ent(MAX_SAFE - 2, MAX_SAFE - 1), ent(MAX_SAFE - 1, MAX_SAFE), ent(MAX_SAFE, MAX_SAFE)], hardState: { term: MAX_SAFE, vote: 1n, commit: MAX_SAFE } });
    s.apply(MAX_SAFE);
    s = reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(MAX_SAFE - 1), s.appliedIndex()]).toEqual([MAX_SAFE - 2, MAX_SAFE, MAX_SAFE, MAX_SAFE]);
    expect(s.initialState().hardState).toEqual({ term: MAX_SAFE, vote: 1n, commit: MAX_SAFE });
    expect(s.snapshot(0, 1n).metadata.term).toBe(MAX_SAFE);
  });

  test("an abort height outside u64 is refused", () => {
    const s = openAt(tmpDir());
    expect(() => s.setAbortHeight(U64_MAX + 1n)).toThrow("is not a u64");
    expect(() => s.setAbortHeight(-1n)).toThrow("is not a u64");
    expect(s.abortHeight()).toBe(0n);
  });
});

test("close is idempotent and releases the data dir", () => {
  const dir = tmpDir();
  const s = openAt(dir);
  s.close();
  s.close();
  expect(openAt(dir).lastIndex()).toBe(0);
});
