// Joint quorum: during a joint configuration both the incoming and the outgoing majority must agree.
import type { NodeId } from "../types.ts";
import { type AckedIndexer, MajorityConfig, VoteResult, cmpId } from "./majority.ts";

export class JointConfig {
  constructor(
    readonly incoming: MajorityConfig = new MajorityConfig(),
    readonly outgoing: MajorityConfig = new MajorityConfig(),
  ) {}

  clone(): JointConfig {
    return new JointConfig(new MajorityConfig(this.incoming.voters), new MajorityConfig(this.outgoing.voters));
  }

  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  has(id: NodeId): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  /** Union of both halves, sorted. */
  ids(): NodeId[] {
    const s = new Set(this.incoming.voters);
    for (const id of this.outgoing.voters) s.add(id);
    return [...s].sort(cmpId);
  }

  committedIndex(acked: AckedIndexer): number {
    const i = this.incoming.committedIndex(acked);
    const o = this.outgoing.committedIndex(acked);
    return i < o ? i : o;
  }

  voteResult(votes: (id: NodeId) => boolean | undefined): VoteResult {
    const i = this.incoming.voteResult(votes);
    const o = this.outgoing.voteResult(votes);
    if (i === o) return i;
    if (i === VoteResult.Lost || o === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }
}
