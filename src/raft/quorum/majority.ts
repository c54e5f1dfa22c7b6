// Majority quorum arithmetic: the commit index a set of voters agrees on, and the outcome of a vote.
import type { NodeId } from "../types.ts";

export const enum VoteResult {
  /** Neither won nor lost yet: missing votes could still decide either way. */
  Pending = 0,
  Lost = 1,
  Won = 2,
}

/** Index acknowledged by a voter, or undefined if the voter is unknown. */
export type AckedIndexer = (id: NodeId) => number | undefined;

/** A set of voters deciding by simple majority. The empty config wins every vote. */
export class MajorityConfig {
  readonly voters: Set<NodeId>;
  private scratch: number[] = [];

  constructor(voters: Iterable<NodeId> = []) {
    this.voters = new Set(voters);
  }

  get size(): number {
    return this.voters.size;
  }

  has(id: NodeId): boolean {
    return this.voters.has(id);
  }

  /** Sorted ids (deterministic iteration for tests and the wire). */
  sortedIds(): NodeId[] {
    return [...this.voters].sort(cmpId);
  }

  /**
   * The largest index that a majority has acknowledged. An empty config returns +Infinity so that a
   * joint config with an empty half is decided by the other half (raft-rs returns u64::MAX).
   */
  committedIndex(acked: AckedIndexer): number {
    const n = this.voters.size;
    if (n === 0) return Number.POSITIVE_INFINITY;
    const s = this.scratch;
    s.length = n;
    let i = 0;
    for (const id of this.voters) s[i++] = acked(id) ?? 0;
    if (n === 1) return s[0];
    if (n === 3) {
      // Median of three without sorting: the hot path of a 3-node cluster.
      const a = s[0], b = s[1], c = s[2];
      return a > b ? (b > c ? b : a > c ? c : a) : a > c ? a : b > c ? c : b;
    }
    s.sort((x, y) => y - x);
    return s[(n >> 1)];
  }

  voteResult(votes: (id: NodeId) => boolean | undefined): VoteResult {
    const n = this.voters.size;
    if (n === 0) return VoteResult.Won;
    let yes = 0;
    let missing = 0;
    for (const id of this.voters) {
      const v = votes(id);
      if (v === undefined) missing++;
      else if (v) yes++;
    }
    const q = (n >> 1) + 1;
    if (yes >= q) return VoteResult.Won;
    if (yes + missing >= q) return VoteResult.Pending;
    return VoteResult.Lost;
  }
}

export function cmpId(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
