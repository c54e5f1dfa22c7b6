// The durable state of one node as a plain value (what a fresh dir starts with, what a legacy
// import produces, what a restart loads) and the invariants every transaction preserves.
import { type ConfState, type Entry, type HardState, EMPTY_BYTES, newConfState, newHardState } from "../raft/index.ts";

export interface DurableState {
  hardState: HardState;
  /** The ConfState as of the applied index (the latest applied one, or the installed snapshot's). */
  confState: ConfState;
  appliedIndex: number;
  appliedTerm: number;
  /** Encoded common.ConsensusConfiguration as of the applied index. */
  chainConfigBytes: Uint8Array;
  /** Index and term of the entry just before the first retained one (0/0 before any compaction). */
  compactedIndex: number;
  compactedTerm: number;
  /** The supervisor's abort window (last validator height + 2), u64. */
  abortHeight: bigint;
  /** Retained log, contiguous from compactedIndex + 1. */
  entries: Entry[];
  /**
   * The Rust service's `raft-entry` when it was the entry at the applied index: a block consensus
   * applied that its controller may have lost. Not part of the log (the term of the entry before it
   * is unknown); kept until the applied index moves on, so the committer can commit it again.
   */
  recommitEntry?: Entry;
}

export function freshState(): DurableState {
  return {
    hardState: newHardState(),
    confState: newConfState(),
    appliedIndex: 0,
    appliedTerm: 0,
    chainConfigBytes: EMPTY_BYTES,
    compactedIndex: 0,
    compactedTerm: 0,
    abortHeight: 0n,
    entries: [],
    recommitEntry: undefined,
  };
}

/** Returns the first broken invariant, or undefined when the state is consistent. */
export function inconsistency(s: DurableState): string | undefined {
  const last = s.compactedIndex + s.entries.length;
  let prevTerm = s.compactedTerm;
  for (let i = 0; i < s.entries.length; i++) {
    const e = s.entries[i];
    if (e.index !== s.compactedIndex + 1 + i) return `log has a gap: entry ${e.index} where ${s.compactedIndex + 1 + i} belongs`;
    if (e.term < prevTerm) return `log term goes backwards at index ${e.index} (${e.term} < ${prevTerm})`;
    prevTerm = e.term;
  }
  if (s.appliedIndex < s.compactedIndex) return `applied index ${s.appliedIndex} is below the compacted index ${s.compactedIndex}`;
  if (s.appliedIndex > last) return `applied index ${s.appliedIndex} is beyond the last entry ${last}`;
  const appliedTerm = s.appliedIndex === s.compactedIndex ? s.compactedTerm : s.entries[s.appliedIndex - s.compactedIndex - 1].term;
  if (appliedTerm !== s.appliedTerm) return `applied term ${s.appliedTerm} differs from the log's term ${appliedTerm} at ${s.appliedIndex}`;
  if (s.hardState.commit < s.appliedIndex) return `commit index ${s.hardState.commit} is below the applied index ${s.appliedIndex}`;
  if (s.hardState.commit > last) return `commit index ${s.hardState.commit} is beyond the last entry ${last}`;
  const r = s.recommitEntry;
  if (r && (r.index !== s.appliedIndex || r.term !== s.appliedTerm)) {
    return `recommit entry ${r.index} (term ${r.term}) is not the applied entry ${s.appliedIndex} (term ${s.appliedTerm})`;
  }
  return undefined;
}
