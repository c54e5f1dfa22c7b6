// A block's timeline on this node: when each step of its path happened, with sub-millisecond
// times on a clock that processes on one machine share (epoch milliseconds), so the steps of one
// height can be lined up across nodes. Off unless the service is started with
// CONSENSUS_BLOCK_TIMELINE=1; then each node logs one "block timeline" line per block, once its
// controller has committed it.
import type { ConsolaInstance } from "consola";
import { type Entry, EntryType } from "../raft/index.ts";
import { tryDecodeProposal } from "./chain-config.ts";

/** The steps of a block, in the order they happen on the leader; a follower has a subset. */
export const BLOCK_STEPS = [
  "proposal_answered", // leader: GetProposal answered
  "proposed", // leader: handed to Raft
  "append_sent", // leader: first MsgAppend carrying it went to the network
  "append_received", // follower: MsgAppend carrying it arrived
  "persisted", // its entry is durable here
  "ack_sent", // follower: append ack (after persisting) went to the network
  "ack_received", // leader: first follower ack covering it arrived
  "committed", // Raft's commit index covers it here
  "check_sent", // CheckProposal sent to this node's controller
  "check_answered",
  "commit_sent", // CommitBlock sent
  "commit_answered",
] as const;
export type BlockStep = (typeof BLOCK_STEPS)[number];

/** Heights followed at once; older ones are dropped (a block normally completes in milliseconds). */
const MAX_TRACKED = 256;

export interface BlockTimeline {
  /** `step` of the block at `height` happened now (only its first occurrence counts). */
  at(height: bigint, step: BlockStep): void;
  /** `step` happened now for each block among `entries`. */
  atEntries(entries: readonly Entry[], step: BlockStep): void;
  /** `step` happened now for every known block entry up to `index` that has not had it yet. */
  atIndexUpTo(index: number, step: BlockStep): void;
  /** The block at `height` is committed by this node's controller: log its line, forget it. */
  done(height: bigint): void;
}

export const NO_TIMELINE: BlockTimeline = { at() {}, atEntries() {}, atIndexUpTo() {}, done() {} };

interface Track {
  readonly height: bigint;
  /** Its log index, once known (0 before it is proposed). */
  index: number;
  readonly times: Partial<Record<BlockStep, number>>;
}

export class LoggedBlockTimeline implements BlockTimeline {
  private readonly byHeight = new Map<bigint, Track>();
  /** Block entries by log index, for the steps that only know an index (acks). */
  private readonly byIndex = new Map<number, Track>();

  constructor(
    private readonly log: ConsolaInstance,
    /** Epoch milliseconds with sub-millisecond precision. */
    private readonly epochNow: () => number,
  ) {}

  at(height: bigint, step: BlockStep): void {
    this.mark(this.track(height, 0), step, this.epochNow());
  }

  atEntries(entries: readonly Entry[], step: BlockStep): void {
    let now: number | undefined;
    for (const e of entries) {
      if (e.entryType !== EntryType.EntryNormal || e.data.length === 0) continue;
      const p = tryDecodeProposal(e.data);
      if (p === undefined) continue;
      this.mark(this.track(p.height, e.index), step, (now ??= this.epochNow()));
    }
  }

  atIndexUpTo(index: number, step: BlockStep): void {
    let now: number | undefined;
    for (const [i, t] of this.byIndex) if (i <= index) this.mark(t, step, (now ??= this.epochNow()));
  }

  done(height: bigint): void {
    const t = this.byHeight.get(height);
    if (t === undefined) return;
    this.forget(t);
    const times = BLOCK_STEPS.filter((s) => t.times[s] !== undefined).map((s) => [s, t.times[s]!] as const);
    if (times.length === 0) return;
    const t0 = times[0][1];
    const fields: Record<string, unknown> = { height, index: t.index, t0: t0.toFixed(3) };
    for (const [s, v] of times) fields[s] = (v - t0).toFixed(3);
    this.log.info("block timeline", fields);
  }

  private track(height: bigint, index: number): Track {
    let t = this.byHeight.get(height);
    if (t !== undefined && index > 0 && t.index > 0 && t.index !== index) {
      // Another entry for this height (a new leader proposed it again): start over.
      this.forget(t);
      t = undefined;
    }
    if (t === undefined) {
      t = { height, index, times: {} };
      this.byHeight.set(height, t);
      if (this.byHeight.size > MAX_TRACKED) this.forget(this.byHeight.values().next().value!);
    }
    if (index > 0 && t.index === 0) t.index = index;
    if (index > 0) this.byIndex.set(index, t);
    return t;
  }

  private mark(t: Track, step: BlockStep, now: number): void {
    if (t.times[step] === undefined) t.times[step] = now;
  }

  private forget(t: Track): void {
    if (this.byHeight.get(t.height) === t) this.byHeight.delete(t.height);
    if (t.index > 0 && this.byIndex.get(t.index) === t) this.byIndex.delete(t.index);
  }
}
