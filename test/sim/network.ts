// The simulated network's fault state: per-link blocking (symmetric partitions, one-way cuts,
// isolation) and the current loss, duplication and delay profile. The simulation asks it what to
// do with each message; delivery itself is an event in the simulation's queue.
import type { Entry, Message, NodeId, Snapshot } from "../../src/raft/types.ts";
import { cloneConfState } from "../../src/raft/storage.ts";
import type { Rng } from "./rng.ts";

export interface LinkProfile {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Probability that a message takes the slow path (reordering it behind later ones). */
  slow: number;
  /** Normal one-way delay range, in simulated ms. */
  minDelay: number;
  maxDelay: number;
  /** Extra delay on the slow path. */
  slowDelay: number;
}

export const CALM: LinkProfile = { drop: 0, duplicate: 0, slow: 0, minDelay: 1, maxDelay: 5, slowDelay: 0 };

export class NetworkFaults {
  profile: LinkProfile = CALM;
  /** to-sets of blocked directed links, by sender. */
  private blocked = new Map<NodeId, Set<NodeId>>();

  isBlocked(from: NodeId, to: NodeId): boolean {
    const s = this.blocked.get(from);
    return s !== undefined && s.has(to);
  }

  blockOneWay(from: NodeId, to: NodeId): void {
    let s = this.blocked.get(from);
    if (s === undefined) this.blocked.set(from, (s = new Set()));
    s.add(to);
  }

  /** Splits `ids` into groups that cannot talk to each other. */
  partition(groups: NodeId[][]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i]) for (const b of groups[j]) this.blockOneWay(a, b);
      }
    }
  }

  isolate(id: NodeId, others: NodeId[]): void {
    this.partition([[id], others.filter((o) => o !== id)]);
  }

  heal(): void {
    this.blocked.clear();
  }

  hasPartitions(): boolean {
    return this.blocked.size > 0;
  }

  /** One-way delay of the next message (the slow path reorders it). */
  delay(rng: Rng): number {
    const p = this.profile;
    let d = rng.range(p.minDelay, p.maxDelay);
    if (rng.chance(p.slow)) d += rng.range(1, p.slowDelay);
    return d;
  }

  describe(): string {
    const cuts: string[] = [];
    for (const [from, tos] of this.blocked) for (const to of tos) cuts.push(`${from}->${to}`);
    return cuts.length === 0 ? "none" : cuts.join(" ");
  }
}

function cloneEntry(e: Entry): Entry {
  return { entryType: e.entryType, term: e.term, index: e.index, data: e.data, context: e.context };
}

function cloneSnap(s: Snapshot): Snapshot {
  return { data: s.data, metadata: { index: s.metadata.index, term: s.metadata.term, confState: cloneConfState(s.metadata.confState) } };
}

/** What the receiver gets: a copy that shares nothing mutable with the sender (as after serialization). */
export function cloneMessage(m: Message): Message {
  return {
    msgType: m.msgType,
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map(cloneEntry),
    commit: m.commit,
    commitTerm: m.commitTerm,
    snapshot: m.snapshot === undefined ? undefined : cloneSnap(m.snapshot),
    requestSnapshot: m.requestSnapshot,
    reject: m.reject,
    rejectHint: m.rejectHint,
    context: m.context,
    priority: m.priority,
  };
}
