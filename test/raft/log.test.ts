// RaftLog, its unstable tail and MemStorage (etcd log_test.go, log_unstable_test.go,
// storage_test.go; raft-rs raft_log/log_unstable/storage tests). MemStorage follows raft-rs:
// compact(i) makes i the first index, and the term of i-1 stays known.
import { describe, expect, test } from "bun:test";
import { Unstable } from "../../src/raft/log-unstable.ts";
import { RaftLog } from "../../src/raft/raft-log.ts";
import { MemStorage, StorageError, type StorageErrorKind } from "../../src/raft/storage.ts";
import { type Entry, type Snapshot, entrySize, newConfState, newSnapshot } from "../../src/raft/types.ts";
import { ent, entView, entsWithTerms } from "./harness.ts";

const views = (ents: Entry[]) => ents.map(entView);
/** Entries with index = term = i for i in [from, to) (etcd TestSlice). */
const selfTermed = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => ent(from + k, from + k));
const snap = (index: number, term: number): Snapshot => newSnapshot(index, term, newConfState({ voters: [1n] }));

/** A MemStorage whose log starts after a snapshot at (index, term). */
function storageAfter(index: number, term: number, ents: Entry[] = []): MemStorage {
  const s = new MemStorage();
  if (index > 0) s.applySnapshot(snap(index, term));
  s.append(ents);
  return s;
}

function logWith(ents: Entry[]): RaftLog {
  const l = new RaftLog(new MemStorage());
  l.append(ents);
  return l;
}

function expectStorageError(f: () => unknown, kind: StorageErrorKind): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(StorageError);
    expect((e as StorageError).kind).toBe(kind);
    return;
  }
  throw new Error(`expected StorageError ${kind}`);
}

describe("RaftLog", () => {
  test("TestFindConflict: the first entry whose term differs from the log, or a new entry past its end", () => {
    const cases: [Entry[], number][] = [
      // no conflict, empty
      [[], 0],
      // no conflict
      [entsWithTerms([1, 2, 3], 1), 0],
      [entsWithTerms([2, 3], 2), 0],
      [entsWithTerms([3], 3), 0],
      // no conflict, but new entries
      [entsWithTerms([1, 2, 3, 4, 4], 1), 4],
      [entsWithTerms([2, 3, 4, 4], 2), 4],
      [entsWithTerms([3, 4, 4], 3), 4],
      [entsWithTerms([4, 4], 4), 4],
      // conflicts with existing entries
      [entsWithTerms([4, 4], 1), 1],
      [entsWithTerms([1, 4, 4], 2), 2],
      [entsWithTerms([1, 2, 4, 4], 3), 3],
    ];
    for (const [i, [ents, want]] of cases.entries()) {
      expect({ i, conflict: logWith(entsWithTerms([1, 2, 3])).findConflict(ents) }).toEqual({ i, conflict: want });
    }
  });

  test("TestFindConflictByTerm: the largest index <= i whose term is <= t, also below a compacted prefix", () => {
    // [snapshot (index, term), terms after it, index, term, want]
    const cases: [[number, number], number[], number, number, number][] = [
      // log starting at 1
      [[0, 0], [2, 2, 5, 5, 5], 100, 2, 100], // beyond the last index: unknown, returned as is
      [[0, 0], [2, 2, 5, 5, 5], 5, 6, 5],
      [[0, 0], [2, 2, 5, 5, 5], 5, 5, 5],
      [[0, 0], [2, 2, 5, 5, 5], 5, 4, 2],
      [[0, 0], [2, 2, 5, 5, 5], 5, 2, 2],
      [[0, 0], [2, 2, 5, 5, 5], 5, 1, 0],
      [[0, 0], [2, 2, 5, 5, 5], 1, 2, 1],
      [[0, 0], [2, 2, 5, 5, 5], 1, 1, 0],
      [[0, 0], [2, 2, 5, 5, 5], 0, 0, 0],
      // log compacted up to a snapshot at (10, 3)
      [[10, 3], [3, 3, 4, 4, 4], 30, 3, 30],
      [[10, 3], [3, 3, 4, 4, 4], 14, 9, 14],
      [[10, 3], [3, 3, 4, 4, 4], 14, 4, 14],
      [[10, 3], [3, 3, 4, 4, 4], 14, 3, 12],
      [[10, 3], [3, 3, 4, 4, 4], 14, 2, 9],
      [[10, 3], [3, 3, 4, 4, 4], 11, 5, 11],
      [[10, 3], [3, 3, 4, 4, 4], 10, 5, 10],
      [[10, 3], [3, 3, 4, 4, 4], 10, 3, 10],
      [[10, 3], [3, 3, 4, 4, 4], 10, 2, 9],
      [[10, 3], [3, 3, 4, 4, 4], 9, 2, 9],
      [[10, 3], [3, 3, 4, 4, 4], 4, 2, 4],
      [[10, 3], [3, 3, 4, 4, 4], 0, 0, 0],
    ];
    for (const [i, [[si, st], terms, index, term, want]] of cases.entries()) {
      const l = new RaftLog(storageAfter(si, st));
      l.append(entsWithTerms(terms, si + 1));
      const [got, gotTerm] = l.findConflictByTerm(index, term);
      // The term comes back with the index; unknown (beyond the log or compacted) reads as 0.
      expect({ i, got, gotTerm: gotTerm ?? 0 }).toEqual({ i, got: want, gotTerm: l.term(want) });
    }
  });

  test("TestIsUpToDate: a higher last term wins; equal last terms compare last indexes", () => {
    const l = logWith(entsWithTerms([1, 2, 3]));
    const last = l.lastIndex();
    const cases: [number, number, boolean][] = [
      [last - 1, 4, true],
      [last, 4, true],
      [last + 1, 4, true],
      [last - 1, 2, false],
      [last, 2, false],
      [last + 1, 2, false],
      [last - 1, 3, false],
      [last, 3, true],
      [last + 1, 3, true],
    ];
    for (const [index, term, want] of cases) expect({ index, term, up: l.isUpToDate(index, term) }).toEqual({ index, term, up: want });
  });

  test("TestAppend: append truncates any conflicting suffix and moves the unstable offset back to it", () => {
    const cases: [Entry[], number, Entry[], number][] = [
      [[], 2, entsWithTerms([1, 2]), 3],
      [entsWithTerms([2], 3), 3, entsWithTerms([1, 2, 2]), 3],
      // conflicts with index 1
      [entsWithTerms([2], 1), 1, entsWithTerms([2]), 1],
      // conflicts with index 2
      [entsWithTerms([3, 3], 2), 3, entsWithTerms([1, 3, 3]), 2],
    ];
    for (const [ents, windex, wents, wunstable] of cases) {
      const l = new RaftLog(storageAfter(0, 0, entsWithTerms([1, 2])));
      expect(l.append(ents)).toBe(windex);
      expect(views(l.entries(1))).toEqual(views(wents));
      expect(l.unstable.offset).toBe(wunstable);
    }
  });

  test("TestLogMaybeAppend: match the previous entry, append what is new, commit up to min(leader commit, last new)", () => {
    const [lastIndex, lastTerm, commit] = [3, 3, 1];
    // [logTerm, index, leader commit, entries, result ([conflict, lastNew] or undefined), commit after]
    const cases: [number, number, number, Entry[], number | undefined, number][] = [
      // no match: different term, or index beyond the log
      [lastTerm - 1, lastIndex, lastIndex, entsWithTerms([4], lastIndex + 1), undefined, commit],
      [lastTerm, lastIndex + 1, lastIndex, entsWithTerms([4], lastIndex + 2), undefined, commit],
      // match with the last entry
      [lastTerm, lastIndex, lastIndex, [], lastIndex, lastIndex],
      [lastTerm, lastIndex, lastIndex + 1, [], lastIndex, lastIndex], // never commit past the last new entry
      [lastTerm, lastIndex, lastIndex - 1, [], lastIndex, lastIndex - 1],
      [lastTerm, lastIndex, 0, [], lastIndex, commit], // commit never decreases
      [0, 0, lastIndex, [], 0, commit],
      [lastTerm, lastIndex, lastIndex, entsWithTerms([4], lastIndex + 1), lastIndex + 1, lastIndex],
      [lastTerm, lastIndex, lastIndex + 1, entsWithTerms([4], lastIndex + 1), lastIndex + 1, lastIndex + 1],
      [lastTerm, lastIndex, lastIndex + 2, entsWithTerms([4], lastIndex + 1), lastIndex + 1, lastIndex + 1],
      [lastTerm, lastIndex, lastIndex + 2, entsWithTerms([4, 4], lastIndex + 1), lastIndex + 2, lastIndex + 2],
      // match with an entry in the middle: the conflicting suffix is replaced
      [lastTerm - 1, lastIndex - 1, lastIndex, entsWithTerms([4], lastIndex), lastIndex, lastIndex],
      [lastTerm - 2, lastIndex - 2, lastIndex, entsWithTerms([4], lastIndex - 1), lastIndex - 1, lastIndex - 1],
      [lastTerm - 2, lastIndex - 2, lastIndex, entsWithTerms([4, 4], lastIndex - 1), lastIndex, lastIndex],
    ];
    for (const [i, [logTerm, index, committed, ents, wlast, wcommit]] of cases.entries()) {
      const l = logWith(entsWithTerms([1, 2, 3]));
      l.committed = commit;
      const res = l.maybeAppend(index, logTerm, committed, ents);
      expect({ i, last: res?.[1], commit: l.committed }).toEqual({ i, last: wlast, commit: wcommit });
      if (res !== undefined && ents.length > 0) {
        expect(views(l.slice(l.lastIndex() - ents.length + 1, l.lastIndex() + 1))).toEqual(views(ents));
      }
    }
  });

  test("TestLogMaybeAppend: an append that conflicts with a committed entry throws and changes nothing", () => {
    const l = logWith(entsWithTerms([1, 2, 3]));
    l.committed = 1;
    expect(() => l.maybeAppend(0, 0, 3, entsWithTerms([4], 1))).toThrow(/conflict with committed entry/);
    expect(views(l.allEntries())).toEqual(views(entsWithTerms([1, 2, 3])));
  });

  test("a conflicting append lowers the persisted mark to just before the conflict", () => {
    const l = new RaftLog(storageAfter(0, 0, entsWithTerms([1, 1, 1])));
    expect(l.persisted).toBe(3);
    l.maybeAppend(1, 1, 0, entsWithTerms([2, 2], 2));
    expect(l.persisted).toBe(1);
    // A persist notice for the old entry at 3 (term 1) must not count for the new one.
    expect(l.maybePersist(3, 1)).toBe(false);
    expect(l.persisted).toBe(1);
  });

  test("TestCommitTo: commit never decreases; committing past the last index throws", () => {
    const l = logWith(entsWithTerms([1, 2, 3]));
    l.committed = 2;
    l.commitTo(3);
    expect(l.committed).toBe(3);
    l.commitTo(1);
    expect(l.committed).toBe(3);
    expect(() => l.commitTo(4)).toThrow(/out of range/);
  });

  test("maybeCommit commits only an index whose term is the given (current) term", () => {
    const l = logWith(entsWithTerms([1, 2, 2]));
    expect(l.maybeCommit(2, 1)).toBe(false);
    expect(l.maybeCommit(3, 2)).toBe(true);
    expect(l.committed).toBe(3);
    expect(l.maybeCommit(2, 2)).toBe(false);
    expect(l.committed).toBe(3);
  });

  test("appliedTo stays within [applied, min(committed, persisted)]", () => {
    const l = new RaftLog(storageAfter(0, 0, entsWithTerms([1, 1])));
    l.append(entsWithTerms([1], 3));
    l.commitTo(3);
    // Entry 3 is committed but not persisted: it cannot be applied yet.
    expect(() => l.appliedTo(3)).toThrow(/out of range/);
    l.appliedTo(2);
    expect(() => l.appliedTo(1)).toThrow(/out of range/);
    expect(l.applied).toBe(2);
  });

  test("TestStableTo: only the exact last unstable entry can be marked stable", () => {
    const l = logWith(entsWithTerms([1, 2]));
    expect(() => l.stableEntries(1, 1)).toThrow();
    expect(() => l.stableEntries(2, 1)).toThrow();
    l.stableEntries(2, 2);
    expect({ offset: l.unstable.offset, unstable: l.unstableEntries().length }).toEqual({ offset: 3, unstable: 0 });
  });

  test("TestStableToWithSnap: a pending snapshot must be stabled before entries after it", () => {
    const l = new RaftLog(new MemStorage());
    l.restore(snap(5, 2));
    l.append(entsWithTerms([3], 6));
    expect(() => l.stableEntries(6, 3)).toThrow(/snapshot must be stabled/);
    expect(() => l.stableSnap(4)).toThrow();
    l.stableSnap(5);
    l.stableEntries(6, 3);
    expect(l.unstable.offset).toBe(7);
  });

  test("TestLogRestore: a log over a storage that starts with a snapshot", () => {
    const l = new RaftLog(storageAfter(1000, 1000));
    expect(l.allEntries()).toEqual([]);
    expect({ first: l.firstIndex(), last: l.lastIndex(), committed: l.committed, applied: l.applied, offset: l.unstable.offset }).toEqual({
      first: 1001,
      last: 1000,
      committed: 1000,
      applied: 1000,
      offset: 1001,
    });
    expect(l.term(1000)).toBe(1000);
  });

  test("restore(snapshot) replaces the log: indexes, terms, commit and the persisted mark follow the snapshot", () => {
    const l = new RaftLog(storageAfter(0, 0, entsWithTerms([1, 1, 2, 2])));
    l.append(entsWithTerms([3], 5));
    l.commitTo(3);
    expect(l.persisted).toBe(4);
    l.restore(snap(3, 7));
    expect({ first: l.firstIndex(), last: l.lastIndex(), committed: l.committed, persisted: l.persisted }).toEqual({
      first: 4,
      last: 3,
      committed: 3,
      persisted: 3,
    });
    expect(l.term(3)).toBe(7);
    expect(l.unstableSnapshot()?.metadata.index).toBe(3);
    expect(l.unstableEntries()).toEqual([]);
    // Restoring below the commit index would lose committed entries.
    expect(() => l.restore(snap(2, 7))).toThrow();
  });

  test("TestTerm / TestTermWithUnstableSnapshot: known terms span [first-1, last]; anything else reads as 0", () => {
    const [offset, num] = [100, 100];
    const l = new RaftLog(storageAfter(offset, offset));
    for (let i = 1; i < num; i++) l.append([ent(i, offset + i)]);
    const cases: [number, number][] = [
      [offset - 1, 0],
      [offset, offset],
      [offset + num / 2, num / 2],
      [offset + num - 1, num - 1],
      [offset + num, 0],
    ];
    for (const [index, w] of cases) expect({ index, term: l.term(index) }).toEqual({ index, term: w });

    const u = new RaftLog(storageAfter(offset, 1));
    u.restore(snap(offset + 5, 2));
    expect([u.term(offset), u.term(offset + 5), u.term(offset + 6)]).toEqual([0, 2, 0]);
  });

  test("TestSlice: entries across storage and the unstable tail, with compaction and size limits", () => {
    const [offset, num] = [100, 100];
    const last = offset + num;
    const half = offset + num / 2;
    const size = entrySize(ent(half, half));
    const l = new RaftLog(storageAfter(offset, 0, selfTermed(offset + 1, half)));
    l.append(selfTermed(half, last));
    expect(l.unstable.offset).toBe(half);

    // [lo, hi, maxSize (undefined: none), want [from, to)]
    const cases: [number, number, number | undefined, [number, number]][] = [
      // no limit
      [offset + 1, offset + 1, undefined, [0, 0]],
      [offset + 1, half - 1, undefined, [offset + 1, half - 1]],
      [offset + 1, half, undefined, [offset + 1, half]],
      [offset + 1, half + 1, undefined, [offset + 1, half + 1]],
      [offset + 1, last, undefined, [offset + 1, last]],
      [half - 1, half, undefined, [half - 1, half]],
      [half - 1, half + 1, undefined, [half - 1, half + 1]],
      [half - 1, last, undefined, [half - 1, last]],
      [half, half + 1, undefined, [half, half + 1]],
      [half, last, undefined, [half, last]],
      [last - 1, last, undefined, [last - 1, last]],
      // at least one entry, even with a zero budget
      [offset + 1, last, 0, [offset + 1, offset + 2]],
      [half - 1, half + 1, 0, [half - 1, half]],
      [half, last, 0, [half, half + 1]],
      [half + 1, last, 0, [half + 1, half + 2]],
      // low limits, across the storage/unstable boundary
      [offset + 1, last, size - 1, [offset + 1, offset + 2]],
      [half - 1, half + 1, size + 1, [half - 1, half]],
      [half - 1, half + 1, size * 2, [half - 1, half + 1]],
      [half - 1, half + 2, size * 3, [half - 1, half + 2]],
      [half, half + 2, size, [half, half + 1]],
      [half, half + 3, size * 2, [half, half + 2]],
      // high limits
      [offset + 1, last, Number.MAX_SAFE_INTEGER, [offset + 1, last]],
      [half - 1, half + 3, size * 3, [half - 1, half + 2]],
      [half - 3, half + 3, size * 5 + size / 2, [half - 3, half + 2]],
    ];
    for (const [lo, hi, max, [from, to]] of cases) {
      const want = from === to ? [] : selfTermed(from, to);
      expect({ lo, hi, max, got: views(l.slice(lo, hi, max)) }).toEqual({ lo, hi, max, got: views(want) });
    }
    // Compacted below the first index.
    expectStorageError(() => l.slice(offset - 1, offset + 1), "Compacted");
    expectStorageError(() => l.slice(offset, offset + 1), "Compacted");
    // Inverted or out-of-bound ranges are programming errors.
    expect(() => l.slice(half, half - 1)).toThrow(/invalid slice/);
    expect(() => l.slice(last, last + 1)).toThrow(/out of bound/);
  });

  test("nextEntriesSince hands out committed entries that are durable, after `since`, and never below the first index", () => {
    const s = storageAfter(3, 1, entsWithTerms([1, 1, 1], 4));
    const l = new RaftLog(s);
    l.append(entsWithTerms([2, 2], 7));
    l.commitTo(8);
    // Entries 7 and 8 are committed but not persisted.
    expect(views(l.nextEntriesSince(3) ?? [])).toEqual(views(entsWithTerms([1, 1, 1], 4)));
    expect(views(l.nextEntriesSince(0) ?? [])).toEqual(views(entsWithTerms([1, 1, 1], 4)));
    expect(l.nextEntriesSince(6)).toBeUndefined();
    expect(l.hasNextEntriesSince(6)).toBe(false);
    // Still in the unstable tail: not durable.
    expect(l.maybePersist(8, 2)).toBe(false);
    s.append(l.unstableEntries().slice());
    l.stableEntries(8, 2);
    expect(l.maybePersist(8, 2)).toBe(true);
    expect(views(l.nextEntriesSince(6) ?? [])).toEqual(views(entsWithTerms([2, 2], 7)));
    expect(l.hasNextEntriesSince(6)).toBe(true);
  });
});

describe("Unstable", () => {
  const unstable = (ents: Entry[], offset: number, s?: Snapshot) => {
    const u = new Unstable(offset);
    u.entries = ents.slice();
    u.snapshot = s;
    return u;
  };

  test("TestUnstableMaybeFirstIndex / MaybeLastIndex: known from the snapshot and the entries only", () => {
    // [entries, offset, snapshot, first, last]
    const cases: [Entry[], number, Snapshot | undefined, number | undefined, number | undefined][] = [
      [[ent(1, 5)], 5, undefined, undefined, 5],
      [[], 0, undefined, undefined, undefined],
      [[ent(1, 5)], 5, snap(4, 1), 5, 5],
      [[], 5, snap(4, 1), 5, 4],
    ];
    for (const [ents, offset, s, first, last] of cases) {
      const u = unstable(ents, offset, s);
      expect([u.maybeFirstIndex(), u.maybeLastIndex()]).toEqual([first, last]);
    }
  });

  test("TestUnstableMaybeTerm: a term is known for unstable entries and for the snapshot's own index", () => {
    // [entries, offset, snapshot, index, term or undefined]
    const cases: [Entry[], number, Snapshot | undefined, number, number | undefined][] = [
      [[ent(1, 5)], 5, undefined, 5, 1],
      [[ent(1, 5)], 5, undefined, 6, undefined],
      [[ent(1, 5)], 5, undefined, 4, undefined],
      [[ent(1, 5)], 5, snap(4, 1), 5, 1],
      [[ent(1, 5)], 5, snap(4, 1), 6, undefined],
      [[ent(1, 5)], 5, snap(4, 1), 4, 1],
      [[ent(1, 5)], 5, snap(4, 1), 3, undefined],
      [[], 5, snap(4, 1), 5, undefined],
      [[], 5, snap(4, 1), 4, 1],
      [[], 0, undefined, 5, undefined],
    ];
    for (const [i, [ents, offset, s, index, w]] of cases.entries()) {
      expect({ i, term: unstable(ents, offset, s).maybeTerm(index) }).toEqual({ i, term: w });
    }
  });

  test("TestUnstableRestore: a snapshot replaces the entries and moves the offset after it", () => {
    const u = unstable([ent(1, 5)], 5, snap(4, 1));
    const s = snap(6, 2);
    u.restore(s);
    expect({ offset: u.offset, entries: u.entries.length, snap: u.snapshot }).toEqual({ offset: 7, entries: 0, snap: s });
  });

  test("TestUnstableStableTo: only the exact last entry (index and term) can be marked stable", () => {
    const u = unstable(entsWithTerms([1, 1], 5), 5);
    expect(() => u.stableEntries(5, 1)).toThrow();
    expect(() => u.stableEntries(6, 2)).toThrow();
    u.stableEntries(6, 1);
    expect({ offset: u.offset, n: u.entries.length }).toEqual({ offset: 7, n: 0 });
    expect(() => u.stableEntries(6, 1)).toThrow(/empty/);
  });

  test("TestUnstableTruncateAndAppend: append at the end, replace from before the offset, or truncate in the middle", () => {
    // [entries, offset, to append, offset after, entries after]
    const cases: [Entry[], number, Entry[], number, Entry[]][] = [
      // append to the end
      [entsWithTerms([1], 5), 5, entsWithTerms([1, 1], 6), 5, entsWithTerms([1, 1, 1], 5)],
      // replace the unstable entries
      [entsWithTerms([1], 5), 5, entsWithTerms([2, 2], 5), 5, entsWithTerms([2, 2], 5)],
      [entsWithTerms([1], 5), 5, entsWithTerms([2, 2, 2], 4), 4, entsWithTerms([2, 2, 2], 4)],
      // truncate the existing entries and append
      [entsWithTerms([1, 1, 1], 5), 5, entsWithTerms([2], 6), 5, entsWithTerms([1, 2], 5)],
      [entsWithTerms([1, 1, 1], 5), 5, entsWithTerms([2, 2], 7), 5, entsWithTerms([1, 1, 2, 2], 5)],
    ];
    for (const [ents, offset, toAppend, woffset, wents] of cases) {
      const u = unstable(ents, offset);
      u.truncateAndAppend(toAppend);
      expect({ offset: u.offset, entries: views(u.entries) }).toEqual({ offset: woffset, entries: views(wents) });
    }
  });

  test("slice outside [offset, offset+len] is a programming error", () => {
    const u = unstable(entsWithTerms([1, 1], 5), 5);
    expect(views(u.slice(5, 7))).toEqual(views(entsWithTerms([1, 1], 5)));
    expect(() => u.slice(4, 6)).toThrow(/out of bound/);
    expect(() => u.slice(5, 8)).toThrow(/out of bound/);
    expect(() => u.slice(6, 5)).toThrow(/invalid/);
  });
});

describe("MemStorage", () => {
  /** Entries 3, 4, 5 (terms 3, 4, 5), first index 3: the log after a snapshot at (2, 2). */
  const store345 = () => storageAfter(2, 2, entsWithTerms([3, 4, 5], 3));

  test("TestStorageTerm: terms of [first-1, last]; Compacted below, Unavailable above", () => {
    const s = store345();
    expectStorageError(() => s.term(1), "Compacted");
    expect([s.term(2), s.term(3), s.term(4), s.term(5)]).toEqual([2, 3, 4, 5]);
    expectStorageError(() => s.term(6), "Unavailable");
  });

  test("TestStorageEntries: [lo, hi) with a size limit that always returns at least one entry", () => {
    const s = storageAfter(2, 2, entsWithTerms([3, 4, 5, 6], 3));
    const sz = entrySize(ent(3, 3));
    const cases: [number, number, number | undefined, number[]][] = [
      [3, 4, undefined, [3]],
      [3, 5, undefined, [3, 4]],
      [3, 7, undefined, [3, 4, 5, 6]],
      [3, 7, 0, [3]],
      [3, 7, 2 * sz, [3, 4]],
      [3, 7, 2 * sz + sz / 2, [3, 4]],
      [3, 7, 3 * sz - 1, [3, 4]],
      [3, 7, 3 * sz, [3, 4, 5]],
    ];
    for (const [lo, hi, max, want] of cases) {
      expect({ lo, hi, max, got: s.entries(lo, hi, max).map((e) => e.index) }).toEqual({ lo, hi, max, got: want });
    }
    expectStorageError(() => s.entries(2, 4), "Compacted");
    expect(() => s.entries(3, 8)).toThrow(/out of bound/);
  });

  test("TestStorageFirstIndex / LastIndex follow appends and compaction", () => {
    const s = store345();
    expect([s.firstIndex(), s.lastIndex()]).toEqual([3, 5]);
    s.append([ent(5, 6)]);
    expect(s.lastIndex()).toBe(6);
    s.compact(4);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([4, 6]);
  });

  test("TestStorageCompact: compact(i) makes i the first index; at or below the first index it is a no-op", () => {
    // [compact index, first index, its term, entries left]
    const cases: [number, number, number, number][] = [
      [2, 3, 3, 3],
      [3, 3, 3, 3],
      [4, 4, 4, 2],
      [5, 5, 5, 1],
    ];
    for (const [i, wfirst, wterm, wlen] of cases) {
      const s = store345();
      s.compact(i);
      expect({ i, first: s.firstIndex(), term: s.term(s.firstIndex()), len: s.lastIndex() - s.firstIndex() + 1 }).toEqual({
        i,
        first: wfirst,
        term: wterm,
        len: wlen,
      });
    }
  });

  test("compaction boundaries: everything can be compacted (the last term stays known), nothing beyond", () => {
    const s = store345();
    s.compact(6);
    expect({ first: s.firstIndex(), last: s.lastIndex(), lastTerm: s.term(5), all: s.allEntries() }).toEqual({ first: 6, last: 5, lastTerm: 5, all: [] });
    expectStorageError(() => s.term(4), "Compacted");
    expectStorageError(() => s.entries(5, 6), "Compacted");
    // The log continues right after the compacted prefix.
    s.append([ent(6, 6)]);
    expect([s.firstIndex(), s.lastIndex(), s.term(6)]).toEqual([6, 6, 6]);

    expect(() => store345().compact(7)).toThrow(/compact not received raft logs/);
  });

  test("a RaftLog over a compacted storage still matches an append at the compacted boundary", () => {
    const s = store345();
    s.compact(5);
    const l = new RaftLog(s);
    expect([l.firstIndex(), l.term(4), l.matchTerm(4, 4)]).toEqual([5, 4, true]);
    expect(l.maybeAppend(4, 4, 0, [ent(5, 5), ent(6, 6)])).toEqual([6, 6]);
  });

  test("TestStorageAppend: overwrites from the first new index; refuses gaps and compacted indexes", () => {
    const cases: [Entry[], Entry[]][] = [
      [entsWithTerms([3, 4, 5], 3), entsWithTerms([3, 4, 5], 3)],
      [entsWithTerms([3, 6, 6], 3), entsWithTerms([3, 6, 6], 3)],
      [entsWithTerms([3, 4, 5, 5], 3), entsWithTerms([3, 4, 5, 5], 3)],
      // truncate the incoming entries at the existing tail
      [entsWithTerms([5], 5), entsWithTerms([3, 4, 5], 3)],
      [entsWithTerms([6], 5), entsWithTerms([3, 4, 6], 3)],
      [entsWithTerms([5], 6), entsWithTerms([3, 4, 5, 5], 3)],
    ];
    for (const [toAppend, want] of cases) {
      const s = store345();
      s.append(toAppend);
      expect(views(s.allEntries())).toEqual(views(want));
    }
    expect(() => store345().append(entsWithTerms([2, 3], 2))).toThrow(/compacted/);
    expect(() => store345().append(entsWithTerms([6], 7))).toThrow(/continuous/);
  });

  test("TestStorageCreateSnapshot: only newer snapshots of retained entries", () => {
    const s = store345();
    const cs = newConfState({ voters: [1n, 2n, 3n] });
    const made = s.createSnapshot(4, cs, new TextEncoder().encode("data"));
    expect({ index: made.metadata.index, term: made.metadata.term, voters: made.metadata.confState.voters }).toEqual({ index: 4, term: 4, voters: [1n, 2n, 3n] });
    expectStorageError(() => s.createSnapshot(4, cs, new Uint8Array()), "SnapshotOutOfDate");
    expectStorageError(() => s.createSnapshot(3, cs, new Uint8Array()), "SnapshotOutOfDate");
    expect(() => s.createSnapshot(6, cs, new Uint8Array())).toThrow(/out of bound/);
    // Creating a snapshot does not compact the log.
    expect(s.firstIndex()).toBe(3);
  });

  test("TestStorageApplySnapshot: replaces the log; a snapshot older than the first index is out of date", () => {
    const s = new MemStorage();
    s.applySnapshot(snap(4, 4));
    expect({ first: s.firstIndex(), last: s.lastIndex(), term: s.term(4), hs: s.hardState }).toEqual({
      first: 5,
      last: 4,
      term: 4,
      hs: { term: 4, vote: 0n, commit: 4 },
    });
    expectStorageError(() => s.applySnapshot(snap(3, 3)), "SnapshotOutOfDate");
    // A snapshot in the middle of the log drops the entries after it too.
    const t = store345();
    t.applySnapshot(snap(4, 4));
    expect({ first: t.firstIndex(), last: t.lastIndex(), term: t.term(4) }).toEqual({ first: 5, last: 4, term: 4 });
  });

  test("snapshot(requestIndex) never returns a snapshot older than the request; a temporary failure is retried", () => {
    const s = store345();
    s.createSnapshot(4, undefined, new Uint8Array());
    expect(s.snapshot(0, 2n).metadata.index).toBe(4);
    s.triggerSnapUnavailable = 1;
    expectStorageError(() => s.snapshot(0, 2n), "SnapshotTemporarilyUnavailable");
    expect(s.snapshot(0, 2n).metadata.index).toBe(4);
  });
});
