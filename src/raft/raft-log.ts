// The Raft log as the core sees it: durable entries in Storage followed by the unstable tail, with
// the committed, persisted and applied marks.
import { Unstable } from "./log-unstable.ts";
import { type Storage, StorageError, fitCount, limitSize } from "./storage.ts";
import { type Entry, type Snapshot, type NodeId, entrySize } from "./types.ts";

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be committed by a quorum. */
  committed: number;
  /** Highest index known to be durable on this node. */
  persisted: number;
  /** Highest index the application has applied. */
  applied: number;

  constructor(readonly store: Storage) {
    const first = store.firstIndex();
    const last = store.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.persisted = last;
    this.applied = first - 1;
  }

  toString(): string {
    return `committed=${this.committed}, persisted=${this.persisted}, applied=${this.applied}, unstable.offset=${this.unstable.offset}, unstable.entries=${this.unstable.entries.length}`;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.store.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.store.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of entry `idx`; 0 outside [firstIndex-1, lastIndex] (as raft-rs). */
  term(idx: number): number {
    const dummy = this.firstIndex() - 1;
    if (idx < dummy || idx > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(idx);
    if (t !== undefined) return t;
    return this.store.term(idx);
  }

  /** Like term() but undefined where storage has compacted or lacks the entry. */
  tryTerm(idx: number): number | undefined {
    try {
      return this.term(idx);
    } catch (e) {
      if (e instanceof StorageError) return undefined;
      throw e;
    }
  }

  matchTerm(idx: number, term: number): boolean {
    return this.tryTerm(idx) === term;
  }

  /** The index of the first entry of `ents` whose term conflicts with the log (0 if none). */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, and that term (fast log backtracking).
   * The term is undefined if storage cannot tell.
   */
  findConflictByTerm(index: number, term: number): [number, number | undefined] {
    let ci = index;
    if (index > this.lastIndex()) return [index, undefined];
    for (;;) {
      const t = this.tryTerm(ci);
      if (t === undefined) return [ci, undefined];
      if (t > term) ci--;
      else return [ci, t];
    }
  }

  /**
   * Appends entries from a leader if (idx, term) matches; returns [conflict index, last new index]
   * or undefined if it does not match.
   */
  maybeAppend(idx: number, term: number, committed: number, ents: Entry[]): [number, number] | undefined {
    if (!this.matchTerm(idx, term)) return undefined;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`entry ${conflict} conflict with committed entry ${this.committed}`);
      }
      this.append(ents.slice(conflict - (idx + 1)));
      // Entries at and after the conflict changed: they are no longer known to be persisted.
      if (this.persisted > conflict - 1) this.persisted = conflict - 1;
    }
    const lastNew = idx + ents.length;
    this.commitTo(Math.min(committed, lastNew));
    return [conflict, lastNew];
  }

  commitTo(toCommit: number): void {
    if (this.committed >= toCommit) return;
    if (this.lastIndex() < toCommit) {
      throw new Error(`to_commit ${toCommit} is out of range [last_index ${this.lastIndex()}]`);
    }
    this.committed = toCommit;
  }

  appliedTo(idx: number): void {
    if (idx === 0) return;
    if (idx > this.appliedIndexUpperBound() || idx < this.applied) {
      throw new Error(`applied(${idx}) is out of range [prev_applied(${this.applied}), min(committed(${this.committed}), persisted(${this.persisted}))]`);
    }
    this.applied = idx;
  }

  /** Entries are applied only once committed and durable here (raft-rs with max_apply_unpersisted_log_limit 0). */
  appliedIndexUpperBound(): number {
    return Math.min(this.committed, this.persisted);
  }

  /** Marks (index, term) durable if it is still the entry at that index. */
  maybePersist(index: number, term: number): boolean {
    // Entries at or after the first unstable index (or a pending snapshot) are not persisted yet,
    // even if an identical entry was persisted earlier and then overwritten.
    const firstUpdate = this.unstable.snapshot ? this.unstable.snapshot.metadata.index : this.unstable.offset;
    if (index > this.persisted && index < firstUpdate && this.storedTerm(index) === term) {
      this.persisted = index;
      return true;
    }
    return false;
  }

  private storedTerm(idx: number): number | undefined {
    try {
      return this.store.term(idx);
    } catch (e) {
      if (e instanceof StorageError) return undefined;
      throw e;
    }
  }

  maybePersistSnap(index: number): boolean {
    if (index > this.persisted) {
      this.persisted = index;
      return true;
    }
    return false;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    if (after < this.committed) throw new Error(`after ${after} is out of range [committed ${this.committed}]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  unstableSnapshot(): Snapshot | undefined {
    return this.unstable.snapshot;
  }

  /** Entries from `idx` to the end, limited by `maxSize`. */
  entries(idx: number, maxSize?: number): Entry[] {
    const last = this.lastIndex();
    if (idx > last) return [];
    return this.slice(idx, last + 1, maxSize);
  }

  allEntries(): Entry[] {
    return this.entries(this.firstIndex());
  }

  /** Whether entries (idx, term) or newer: candidate log at least as up to date as ours. */
  isUpToDate(lastIndex: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lastIndex >= this.lastIndex());
  }

  /** Committed entries after `since` that may be applied (bounded by persistence). */
  nextEntriesSince(since: number, maxSize?: number): Entry[] | undefined {
    const offset = Math.max(since + 1, this.firstIndex());
    const high = this.appliedIndexUpperBound() + 1;
    if (high > offset) return this.slice(offset, high, maxSize);
    return undefined;
  }

  hasNextEntriesSince(since: number): boolean {
    const offset = Math.max(since + 1, this.firstIndex());
    return this.appliedIndexUpperBound() + 1 > offset;
  }

  /** Commits `maxIndex` if it belongs to `term` (only the current term's entries commit by counting). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.tryTerm(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** (committed, term of committed) as sent in vote messages. */
  commitInfo(): [number, number] {
    return [this.committed, this.tryTerm(this.committed) ?? 0];
  }

  snapshot(requestIndex: number, to: NodeId): Snapshot {
    const s = this.unstable.snapshot;
    if (s && s.metadata.index >= requestIndex) return s;
    return this.store.snapshot(requestIndex, to);
  }

  stableEntries(index: number, term: number): void {
    this.unstable.stableEntries(index, term);
  }

  stableSnap(index: number): void {
    this.unstable.stableSnap(index);
  }

  restore(snap: Snapshot): void {
    const index = snap.metadata.index;
    if (index < this.committed) throw new Error(`snapshot index ${index} < committed ${this.committed}`);
    if (this.persisted > index) this.persisted = index;
    this.committed = index;
    this.unstable.restore(snap);
  }

  /**
   * Entries in [lo, hi), from storage then the unstable tail, limited by `maxSize`. Throws
   * StorageError("Compacted") if lo is below the first index.
   */
  slice(lo: number, hi: number, maxSize?: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const off = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < off) {
      const end = Math.min(hi, off);
      const stored = this.store.entries(lo, end, maxSize);
      // Storage stopped early because of the size limit: do not add unstable entries.
      if (stored.length < end - lo) return stored;
      ents = limitSize(stored, maxSize);
      if (hi <= off || ents.length < stored.length) return ents;
    }
    // Cut the unstable part to the remaining budget before copying it (a long tail is common).
    const from = Math.max(lo, off);
    let size = 0;
    if (maxSize !== undefined) for (let i = 0; i < ents.length; i++) size += entrySize(ents[i]);
    const n = fitCount(this.unstable.entries, from - off, hi - off, maxSize, size, ents.length);
    const u = this.unstable.slice(from, from + n);
    return ents.length > 0 ? ents.concat(u) : u;
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new Error(`invalid slice ${lo} > ${hi}`);
    const first = this.firstIndex();
    if (lo < first) throw new StorageError("Compacted", `slice(${lo}) < first index ${first}`);
    const last = this.lastIndex();
    if (hi > last + 1) throw new Error(`slice[${lo},${hi}) out of bound [${first},${last}]`);
  }
}
