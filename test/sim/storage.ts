// A node's disk as the simulator sees it: what has been fsynced (`durable`) and what has been
// written but not yet fsynced (`pending`). Raft reads the latest written state (the `view`), as it
// does from a real write cache; an fsync replays the pending writes onto the durable image in one
// atomic step; a crash (kill -9) throws the view and the pending writes away. The applied index,
// the state machine and the ConfState are written durably when entries are applied, as the real
// service records them in one transaction with the applied index.
import { type RaftState, type Storage, StorageError, cloneConfState, cloneSnapshot, limitSize } from "../../src/raft/storage.ts";
import { type ConfState, type Entry, type HardState, type NodeId, type Snapshot, newConfState, newHardState, newSnapshot } from "../../src/raft/types.ts";
import { BOOT_HASH, BOOT_INDEX, BOOT_TERM, type SmState, decodeSm, encodeSm } from "./state-machine.ts";

export interface DiskImage {
  hs: HardState;
  /** ConfState as of the applied index (or the installed snapshot). */
  confState: ConfState;
  /** The latest snapshot taken or installed. */
  snap: Snapshot;
  /** Retained log; entries[0] has index `offset`. */
  entries: Entry[];
  offset: number;
  /** Term of entry offset-1 (the compaction point). */
  compactedTerm: number;
  sm: SmState;
}

type PendingWrite =
  | { kind: "append"; entries: Entry[] }
  | { kind: "hardState"; hs: HardState }
  | { kind: "snapshot"; snap: Snapshot; sm: SmState };

function emptyImage(): DiskImage {
  return {
    hs: newHardState(),
    confState: newConfState(),
    snap: newSnapshot(),
    entries: [],
    offset: 1,
    compactedTerm: 0,
    sm: { applied: 0, hash: 0 },
  };
}

function cloneImage(d: DiskImage): DiskImage {
  return {
    hs: { ...d.hs },
    confState: cloneConfState(d.confState),
    snap: cloneSnapshot(d.snap),
    entries: d.entries.slice(),
    offset: d.offset,
    compactedTerm: d.compactedTerm,
    sm: { ...d.sm },
  };
}

function lastIndexOf(d: DiskImage): number {
  return d.offset + d.entries.length - 1;
}

/** Term of entry `i` in an image, or undefined if it is compacted away or absent. */
function termOf(d: DiskImage, i: number): number | undefined {
  if (i === d.offset - 1) return d.compactedTerm;
  if (i < d.offset || i > lastIndexOf(d)) return undefined;
  return d.entries[i - d.offset].term;
}

function applyWrite(d: DiskImage, w: PendingWrite): void {
  switch (w.kind) {
    case "append": {
      const first = w.entries[0].index;
      if (first < d.offset) throw new Error(`append at ${first} overwrites the compacted log (first index ${d.offset})`);
      if (first > lastIndexOf(d) + 1) throw new Error(`append at ${first} leaves a gap after ${lastIndexOf(d)}`);
      d.entries.length = first - d.offset;
      for (const e of w.entries) d.entries.push(e);
      return;
    }
    case "hardState":
      // The commit index only matters as a lower bound: never let an older write lower it.
      d.hs = { term: w.hs.term, vote: w.hs.vote, commit: Math.max(d.hs.commit, w.hs.commit) };
      return;
    case "snapshot": {
      const m = w.snap.metadata;
      d.snap = cloneSnapshot(w.snap);
      d.entries = [];
      d.offset = m.index + 1;
      d.compactedTerm = m.term;
      if (d.hs.term < m.term) d.hs = { ...d.hs, term: m.term };
      if (d.hs.commit < m.index) d.hs = { ...d.hs, commit: m.index };
      d.confState = cloneConfState(m.confState);
      d.sm = { ...w.sm };
      return;
    }
  }
}

export class SimStorage implements Storage {
  /** What survives a crash. */
  durable: DiskImage = emptyImage();
  /** What Raft reads: durable plus pending writes. */
  view: DiskImage = emptyImage();
  private pending: PendingWrite[] = [];
  /** Writes staged since the disk was created; `pending` holds the last ones not yet durable. */
  private written = 0;

  /** A disk booted like a fresh validator of the Rust service: a snapshot at (5, 5) with `voters`. */
  static bootstrapped(voters: NodeId[], learners: NodeId[] = []): SimStorage {
    const s = new SimStorage();
    const sm = { applied: BOOT_INDEX, hash: BOOT_HASH };
    const snap = newSnapshot(BOOT_INDEX, BOOT_TERM, newConfState({ voters, learners }), encodeSm(sm));
    s.stageSnapshot(snap);
    s.fsync();
    return s;
  }

  // ---------------------------------------------------------------- Storage (read side)

  initialState(): RaftState {
    return { hardState: { ...this.view.hs }, confState: cloneConfState(this.view.confState) };
  }

  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    const v = this.view;
    if (lo < v.offset) throw new StorageError("Compacted", `entries(${lo}) < first index ${v.offset}`);
    if (hi > lastIndexOf(v) + 1) throw new Error(`entries hi ${hi} is out of bound, last index ${lastIndexOf(v)}`);
    return limitSize(v.entries.slice(lo - v.offset, hi - v.offset), maxSize);
  }

  term(idx: number): number {
    const v = this.view;
    if (idx < v.offset - 1) throw new StorageError("Compacted", `term(${idx}) < first index ${v.offset}`);
    if (idx > lastIndexOf(v)) throw new StorageError("Unavailable", `term(${idx}) > last index ${lastIndexOf(v)}`);
    return termOf(v, idx)!;
  }

  firstIndex(): number {
    return this.view.offset;
  }

  lastIndex(): number {
    return lastIndexOf(this.view);
  }

  snapshot(requestIndex: number, _to: NodeId): Snapshot {
    // The state machine is durable at every applied index, so a snapshot of it can always be cut
    // (as the service persists one after every apply).
    const v = this.view;
    if (v.sm.applied > v.snap.metadata.index && this.pending.every((w) => w.kind === "hardState")) this.takeSnapshot();
    const s = v.snap;
    if (s.metadata.index === 0 || s.metadata.index < requestIndex) throw new StorageError("SnapshotTemporarilyUnavailable");
    return cloneSnapshot(s);
  }

  // ---------------------------------------------------------------- write side (one Ready)

  stageAppend(entries: Entry[]): void {
    if (entries.length > 0) this.stage({ kind: "append", entries });
  }

  stageHardState(hs: HardState): void {
    this.stage({ kind: "hardState", hs: { ...hs } });
  }

  stageSnapshot(snap: Snapshot): void {
    this.stage({ kind: "snapshot", snap: cloneSnapshot(snap), sm: decodeSm(snap.data) });
  }

  private stage(w: PendingWrite): void {
    applyWrite(this.view, w);
    this.pending.push(w);
    this.written++;
  }

  /** Number of writes staged so far: an fsync up to this mark covers them all. */
  get writtenMark(): number {
    return this.written;
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Whether entries or a snapshot are written but not durable (not just a commit index). */
  hasPendingLog(): boolean {
    return this.pending.some((w) => w.kind !== "hardState");
  }

  /**
   * Makes the writes staged before `mark` durable, in order and atomically; returns the hard
   * states that became durable (each one, so a checker sees every vote that hit the disk).
   */
  fsync(mark = this.written): HardState[] {
    const n = Math.max(0, this.pending.length - (this.written - mark));
    const hs: HardState[] = [];
    for (let i = 0; i < n; i++) {
      const w = this.pending[i];
      applyWrite(this.durable, w);
      if (w.kind !== "append") hs.push({ ...this.durable.hs });
    }
    this.pending = this.pending.slice(n);
    return hs;
  }

  /** kill -9: everything not fsynced is gone. */
  crash(): void {
    this.pending = [];
    this.view = cloneImage(this.durable);
  }

  // ---------------------------------------------------------------- durable-at-once writes

  private assertNoPendingLog(what: string): void {
    for (const w of this.pending) {
      if (w.kind !== "hardState") throw new Error(`${what} while log writes are pending`);
    }
  }

  /**
   * Records an applied entry with the new state machine (and ConfState) in one durable write.
   * Pending appends may be in flight (asynchronous persistence): they only touch entries above
   * the applied index, so the two commute; a pending snapshot would not.
   */
  recordApply(sm: SmState, confState: ConfState | undefined): void {
    if (this.pending.some((w) => w.kind === "snapshot")) throw new Error("apply while a snapshot install is pending");
    for (const d of [this.view, this.durable]) {
      d.sm = { ...sm };
      if (confState) d.confState = cloneConfState(confState);
      // Persist the commit index no later than the apply (raft-rs rule): applied <= commit on restart.
      if (d.hs.commit < sm.applied) d.hs = { ...d.hs, commit: sm.applied };
    }
  }

  /** Records a snapshot of the state machine at its applied index (the log stays as it is). */
  private takeSnapshot(): Snapshot {
    this.assertNoPendingLog("snapshot");
    const v = this.view;
    const at = v.sm.applied;
    const term = termOf(v, at);
    if (term === undefined) throw new Error(`cannot snapshot at ${at}: entry is not in the log`);
    const snap = newSnapshot(at, term, cloneConfState(v.confState), encodeSm(v.sm));
    for (const d of [this.view, this.durable]) {
      if (at > d.snap.metadata.index) d.snap = cloneSnapshot(snap);
    }
    return snap;
  }

  /** Takes a snapshot at the applied index and discards the log before `compactTo` (<= applied + 1). */
  snapshotAndCompact(compactTo: number): Snapshot {
    const snap = this.takeSnapshot();
    if (compactTo > snap.metadata.index + 1) throw new Error(`cannot compact to ${compactTo} beyond the snapshot at ${snap.metadata.index}`);
    for (const d of [this.view, this.durable]) {
      if (compactTo > d.offset) {
        d.compactedTerm = termOf(d, compactTo - 1)!;
        d.entries = d.entries.slice(compactTo - d.offset);
        d.offset = compactTo;
      }
    }
    return snap;
  }

  // ---------------------------------------------------------------- inspection (checker)

  durableLastIndex(): number {
    return lastIndexOf(this.durable);
  }

  /** Term of durable entry `i`; undefined when compacted below or not written. */
  durableTerm(i: number): number | undefined {
    return termOf(this.durable, i);
  }

  /** Term of entry `i` as written (durable or not); undefined when compacted below or not written. */
  viewTerm(i: number): number | undefined {
    return termOf(this.view, i);
  }

  /** Whether (index, term) is durable here, either as an entry or covered by the durable snapshot/compaction point. */
  durablyHolds(index: number, term: number): boolean {
    const d = this.durable;
    if (index < d.offset - 1) return true; // compacted: only applied (hence committed) entries are compacted
    return termOf(d, index) === term;
  }

  /** Whether the disk has never been initialized (a new member waiting for its first snapshot). */
  isBlank(): boolean {
    const cs = this.durable.confState;
    return cs.voters.length === 0 && cs.learners.length === 0 && cs.votersOutgoing.length === 0;
  }
}
