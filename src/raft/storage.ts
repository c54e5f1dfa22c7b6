// The read side of Raft's log storage, as the core sees it (raft-rs `Storage`), and an in-memory
// implementation used by tests, the simulator and the benchmarks. The application owns the write
// side: it appends entries, sets the HardState and installs snapshots after each Ready.
import {
  type ConfState,
  type Entry,
  type HardState,
  type NodeId,
  type Snapshot,
  entrySize,
  newConfState,
  newHardState,
  newSnapshot,
} from "./types.ts";

export type StorageErrorKind =
  /** The requested index is older than the first retained entry. */
  | "Compacted"
  /** The requested index is beyond the last entry. */
  | "Unavailable"
  /** The snapshot is older than the one already held. */
  | "SnapshotOutOfDate"
  /** No snapshot can be produced right now; Raft retries later. */
  | "SnapshotTemporarilyUnavailable";

export class StorageError extends Error {
  constructor(readonly kind: StorageErrorKind, detail?: string) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = "StorageError";
  }
}

export interface RaftState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  /** HardState and ConfState at start-up. The node is "initialized" when the ConfState has voters or learners. */
  initialState(): RaftState;
  /**
   * Entries in [lo, hi). With `maxSize`, returns at least one entry and stops before the total
   * size would exceed it. Throws StorageError("Compacted") if lo < firstIndex.
   */
  entries(lo: number, hi: number, maxSize?: number): Entry[];
  /** Term of entry `idx`, valid for [firstIndex-1, lastIndex]; throws Compacted / Unavailable outside. */
  term(idx: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /**
   * A snapshot whose index is at least `requestIndex`, to be sent to `to`. May throw
   * StorageError("SnapshotTemporarilyUnavailable").
   */
  snapshot(requestIndex: number, to: NodeId): Snapshot;
}

/** Truncates `ents` so that their total size stays within `maxSize` (always keeps the first). */
export function limitSize(ents: Entry[], maxSize: number | undefined): Entry[] {
  const n = fitCount(ents, 0, ents.length, maxSize);
  return n === ents.length ? ents : ents.slice(0, n);
}

/**
 * How many of ents[from, to) fit within `maxSize` after `taken` earlier entries of `size` bytes
 * (limitSize's rule: the first entry overall always fits). Lets callers cut before copying.
 */
export function fitCount(ents: Entry[], from: number, to: number, maxSize: number | undefined, size = 0, taken = 0): number {
  if (maxSize === undefined) return to - from;
  let i = from;
  for (; i < to; i++) {
    size += entrySize(ents[i]);
    if (size > maxSize && (taken > 0 || i > from)) break;
  }
  return i - from;
}

/**
 * An in-memory Storage with the write operations the application would perform. It keeps the
 * term of the entry just before the first retained one, so prev-log matching works after compaction.
 */
export class MemStorage implements Storage {
  hardState: HardState = newHardState();
  snap: Snapshot = newSnapshot();
  private store: Entry[] = [];
  private offset = 1; // index of store[0]
  /** Test hook: make snapshot() throw SnapshotTemporarilyUnavailable this many times. */
  triggerSnapUnavailable = 0;

  static withConfState(cs: ConfState): MemStorage {
    const s = new MemStorage();
    s.snap.metadata.confState = cloneConfState(cs);
    return s;
  }

  /** A storage initialized like raft-rs `new_with_conf_state`: voters set, all indexes 0. */
  static withVoters(voters: NodeId[], learners: NodeId[] = []): MemStorage {
    return MemStorage.withConfState(newConfState({ voters, learners }));
  }

  initialState(): RaftState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  setConfState(cs: ConfState): void {
    this.snap.metadata.confState = cloneConfState(cs);
  }

  setCommit(commit: number): void {
    this.hardState.commit = commit;
  }

  firstIndex(): number {
    return this.offset;
  }

  lastIndex(): number {
    return this.offset + this.store.length - 1;
  }

  term(idx: number): number {
    if (idx === this.offset - 1) return this.dummyTerm;
    if (idx < this.offset) throw new StorageError("Compacted", `term(${idx}) < first index ${this.offset}`);
    if (idx > this.lastIndex()) throw new StorageError("Unavailable", `term(${idx}) > last index ${this.lastIndex()}`);
    return this.store[idx - this.offset].term;
  }

  /** Term of the entry just before the first retained one (kept across compaction). */
  private dummyTerm = 0;

  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    if (lo < this.offset) throw new StorageError("Compacted", `entries(${lo}) < first index ${this.offset}`);
    if (hi > this.lastIndex() + 1) throw new Error(`entries hi ${hi} is out of bound, last index ${this.lastIndex()}`);
    const from = lo - this.offset;
    return this.store.slice(from, from + fitCount(this.store, from, hi - this.offset, maxSize));
  }

  snapshot(requestIndex: number, _to: NodeId): Snapshot {
    if (this.triggerSnapUnavailable > 0) {
      this.triggerSnapUnavailable--;
      throw new StorageError("SnapshotTemporarilyUnavailable");
    }
    // Like the real storages: never forge a newer index onto an older snapshot (its term would be
    // wrong and the follower would reject every later append); Raft retries later.
    if (this.snap.metadata.index < requestIndex) {
      throw new StorageError("SnapshotTemporarilyUnavailable", `requested ${requestIndex}, have ${this.snap.metadata.index}`);
    }
    return cloneSnapshot(this.snap);
  }

  /** Appends entries, discarding any existing entries at index >= the first new one. */
  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0].index;
    if (first < this.offset) throw new Error(`overwrite compacted raft logs, compacted: ${this.offset - 1}, append: ${first}`);
    if (first > this.lastIndex() + 1) throw new Error(`raft logs should be continuous, last index: ${this.lastIndex()}, new appended: ${first}`);
    this.store.length = first - this.offset;
    for (const e of ents) this.store.push(e);
  }

  /** Discards entries before `compactIndex` (which becomes the first index). */
  compact(compactIndex: number): void {
    if (compactIndex <= this.offset) return;
    if (compactIndex > this.lastIndex() + 1) throw new Error(`compact not received raft logs: ${compactIndex}, last index: ${this.lastIndex()}`);
    this.dummyTerm = this.store[compactIndex - 1 - this.offset].term;
    this.store = this.store.slice(compactIndex - this.offset);
    this.offset = compactIndex;
  }

  /** Installs a snapshot: the log is replaced, HardState term/commit are raised to cover it. */
  applySnapshot(snapshot: Snapshot): void {
    const meta = snapshot.metadata;
    if (this.firstIndex() > meta.index) throw new StorageError("SnapshotOutOfDate");
    this.snap = cloneSnapshot(snapshot);
    if (this.hardState.term < meta.term) this.hardState.term = meta.term;
    if (this.hardState.commit < meta.index) this.hardState.commit = meta.index;
    this.store = [];
    this.offset = meta.index + 1;
    this.dummyTerm = meta.term;
  }

  /** Records a snapshot of the state machine at `index` (<= last index) without touching the log. */
  createSnapshot(index: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new StorageError("SnapshotOutOfDate");
    if (index > this.lastIndex()) throw new Error(`snapshot ${index} is out of bound, last index ${this.lastIndex()}`);
    this.snap.metadata.index = index;
    this.snap.metadata.term = this.term(index);
    if (confState) this.snap.metadata.confState = cloneConfState(confState);
    this.snap.data = data;
    return cloneSnapshot(this.snap);
  }

  /** All retained entries (tests). */
  allEntries(): Entry[] {
    return this.store.slice();
  }
}

export function cloneConfState(cs: ConfState): ConfState {
  return {
    voters: cs.voters.slice(),
    learners: cs.learners.slice(),
    votersOutgoing: cs.votersOutgoing.slice(),
    learnersNext: cs.learnersNext.slice(),
    autoLeave: cs.autoLeave,
  };
}

export function cloneSnapshot(s: Snapshot): Snapshot {
  return {
    data: s.data,
    metadata: { index: s.metadata.index, term: s.metadata.term, confState: cloneConfState(s.metadata.confState) },
  };
}
