// The tail of the log that is not yet persisted: entries appended since the last Ready (and an
// incoming snapshot). `offset` is the index of entries[0].
import type { Entry, Snapshot } from "./types.ts";

export class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  constructor(public offset: number) {}

  /** Index of the first entry if a snapshot is pending (snapshot index + 1). */
  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    const n = this.entries.length;
    if (n > 0) return this.offset + n - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(idx: number): number | undefined {
    if (idx < this.offset) {
      const s = this.snapshot;
      return s && s.metadata.index === idx ? s.metadata.term : undefined;
    }
    const n = this.entries.length;
    if (n === 0 || idx > this.offset + n - 1) return undefined;
    return this.entries[idx - this.offset].term;
  }

  /** The entries up to (index, term) are persisted: drop them from the unstable tail. */
  stableEntries(index: number, term: number): void {
    if (this.snapshot !== undefined) throw new Error("the snapshot must be stabled before entries");
    const n = this.entries.length;
    if (n === 0) throw new Error(`unstable.slice is empty, expect its last one's index and term are ${index} and ${term}`);
    const last = this.entries[n - 1];
    if (last.index !== index || last.term !== term) {
      throw new Error(`the last one of unstable.slice has different index ${last.index} and term ${last.term}, expect ${index} ${term}`);
    }
    this.offset = last.index + 1;
    this.entries = [];
  }

  stableSnap(index: number): void {
    const s = this.snapshot;
    if (s === undefined) throw new Error(`unstable.snap is none, expect a snapshot with index ${index}`);
    if (s.metadata.index !== index) throw new Error(`unstable.snap has different index ${s.metadata.index}, expect ${index}`);
    this.snapshot = undefined;
  }

  restore(snap: Snapshot): void {
    this.entries = [];
    this.offset = snap.metadata.index + 1;
    this.snapshot = snap;
  }

  /** Appends, truncating any unstable entries at or after the first new index. */
  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      // contiguous: append directly
    } else if (after <= this.offset) {
      // The log is being truncated before the unstable tail: replace it wholesale.
      this.offset = after;
      this.entries = [];
    } else {
      this.mustCheckOutOfBounds(this.offset, after);
      this.entries.length = after - this.offset;
    }
    for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]);
  }

  slice(lo: number, hi: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new Error(`invalid unstable.slice ${lo} > ${hi}`);
    const upper = this.offset + this.entries.length;
    if (lo < this.offset || hi > upper) throw new Error(`unstable.slice[${lo}, ${hi}] out of bound[${this.offset}, ${upper}]`);
  }
}
