// The leader's view of the cluster: the active configuration, each member's Progress, and votes.
import { JointConfig } from "../quorum/joint.ts";
import { MajorityConfig, VoteResult, cmpId } from "../quorum/majority.ts";
import type { ConfState, NodeId } from "../types.ts";
import { Progress } from "./progress.ts";

/** A membership configuration: voters (possibly joint), learners, staged learners. */
export class Configuration {
  constructor(
    readonly voters: JointConfig = new JointConfig(),
    readonly learners: Set<NodeId> = new Set(),
    /** Voters of the outgoing half that become learners when the joint config is left. */
    readonly learnersNext: Set<NodeId> = new Set(),
    /** Leave the joint configuration automatically once it is committed and applied. */
    public autoLeave = false,
  ) {}

  static fromVoters(voters: Iterable<NodeId>, learners: Iterable<NodeId> = []): Configuration {
    return new Configuration(new JointConfig(new MajorityConfig(voters)), new Set(learners));
  }

  clone(): Configuration {
    return new Configuration(this.voters.clone(), new Set(this.learners), new Set(this.learnersNext), this.autoLeave);
  }

  toConfState(): ConfState {
    return {
      voters: this.voters.incoming.sortedIds(),
      votersOutgoing: this.voters.outgoing.sortedIds(),
      learners: [...this.learners].sort(cmpId),
      learnersNext: [...this.learnersNext].sort(cmpId),
      autoLeave: this.autoLeave,
    };
  }

  toString(): string {
    const f = (ids: Iterable<NodeId>) => `(${[...ids].sort(cmpId).join(" ")})`;
    let s = `voters=${f(this.voters.incoming.voters)}`;
    if (this.voters.isJoint()) s += `&&${f(this.voters.outgoing.voters)}`;
    if (this.learners.size) s += ` learners=${f(this.learners)}`;
    if (this.learnersNext.size) s += ` learners_next=${f(this.learnersNext)}`;
    if (this.autoLeave) s += " autoleave";
    return s;
  }
}

export const enum MapChangeType {
  Add = 0,
  Remove = 1,
}
export type MapChange = [NodeId, MapChangeType][];

export class ProgressTracker {
  progress = new Map<NodeId, Progress>();
  conf = new Configuration();
  votes = new Map<NodeId, boolean>();
  /** Sorted ids of all tracked members (voters and learners), refreshed on every membership change. */
  private sorted: NodeId[] = [];

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes = 0,
  ) {}

  /** Tracked ids in ascending order: iteration order for broadcasts. */
  ids(): readonly NodeId[] {
    return this.sorted;
  }

  get(id: NodeId): Progress | undefined {
    return this.progress.get(id);
  }

  clear(): void {
    this.progress.clear();
    this.conf = new Configuration();
    this.votes.clear();
    this.sorted = [];
  }

  isSingleton(): boolean {
    return this.conf.voters.incoming.size === 1 && !this.conf.voters.isJoint();
  }

  confState(): ConfState {
    return this.conf.toConfState();
  }

  /** Installs a configuration produced by the Changer, adding and removing Progress entries. */
  applyConf(conf: Configuration, changes: MapChange, nextIdx: number): void {
    this.conf = conf;
    for (const [id, t] of changes) {
      if (t === MapChangeType.Add) {
        const pr = new Progress(nextIdx, this.maxInflight, this.maxInflightBytes);
        // A new member counts as active, or check-quorum could depose the leader before it answers.
        pr.recentActive = true;
        this.progress.set(id, pr);
      } else {
        this.progress.delete(id);
      }
    }
    this.sorted = [...this.progress.keys()].sort(cmpId);
  }

  /** The largest index committed by the voters' match indexes. */
  maximalCommittedIndex(): number {
    return this.conf.voters.committedIndex((id) => this.progress.get(id)?.matched);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; only the first vote of a node in a round counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, v] of this.votes) {
      if (!this.conf.voters.has(id)) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.voteResult(this.votes) };
  }

  voteResult(votes: Map<NodeId, boolean>): VoteResult {
    return this.conf.voters.voteResult((id) => votes.get(id));
  }

  /** True if the given set of nodes forms a quorum of the voters. */
  hasQuorum(potential: Set<NodeId>): boolean {
    return this.conf.voters.voteResult((id) => (potential.has(id) ? true : undefined)) === VoteResult.Won;
  }

  /** Whether a quorum was recently active, from `self`'s perspective; resets the activity flags. */
  quorumRecentlyActive(self: NodeId): boolean {
    const active = new Set<NodeId>();
    for (const [id, pr] of this.progress) {
      if (id === self) {
        pr.recentActive = true;
        active.add(id);
      } else if (pr.recentActive) {
        active.add(id);
        pr.recentActive = false;
      }
    }
    return this.hasQuorum(active);
  }
}
