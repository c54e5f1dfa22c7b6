// Safety invariants, checked incrementally as the run goes (every hook is O(change), never a scan
// of the whole cluster per step). The checker keeps a global history: the leader of each term,
// every (index, term) entry ever appended anywhere, every entry ever committed, the state machine
// hash after every applied index, and per node its term, vote, commit index and durable votes.
import type { RawNode } from "../../src/raft/raw-node.ts";
import { StateRole } from "../../src/raft/raft.ts";
import { PROGRESS_STATE_NAMES, ProgressState } from "../../src/raft/tracker/progress.ts";
import { type Entry, type HardState, type Message, MessageType, NONE, type NodeId, type Snapshot } from "../../src/raft/types.ts";
import { BOOT_HASH, BOOT_INDEX, BOOT_TERM, decodeSm, entryDigest } from "./state-machine.ts";
import type { SimStorage } from "./storage.ts";

/** Every invariant the checker enforces, by the name a violation reports. */
export const INVARIANTS = [
  "election safety",
  "leader completeness",
  "log matching",
  "state machine safety",
  "leader commits its own term",
  "commit within quorum",
  "committed entries survive crashes",
  "apply only durable entries",
  "persist before promise",
  "term monotonic",
  "commit monotonic",
  "one vote per term",
  "stale rejection ignored",
] as const;

export class Violation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = "Violation";
  }
}

interface NodeHistory {
  /** In-memory term, vote, commit and role of the current incarnation. */
  term: number;
  vote: NodeId;
  commit: number;
  role: StateRole;
  /** Highest term ever made durable, and the durable commit index. */
  durableTerm: number;
  durableCommit: number;
  /** The vote made durable in each term (survives restarts). */
  durableVotes: Map<number, NodeId>;
  /** The candidate each term's vote grant went to, as seen on the wire. */
  grants: Map<number, NodeId>;
}

/** What the checker needs to know about a node. */
export interface Observed {
  readonly id: NodeId;
  readonly storage: SimStorage;
  readonly raw: RawNode | undefined;
}

export type RoleChange = (id: NodeId, role: StateRole, term: number) => void;

/** A leader's progress of a follower before it steps a rejection from it that raft-rs 0.7 calls stale. */
export interface StaleRejection {
  term: number;
  matched: number;
  next: number;
  state: ProgressState;
}

/** The fields of an append response the stale-rejection rule looks at. */
export interface AppendResponse {
  readonly msgType: MessageType;
  readonly reject: boolean;
  readonly requestSnapshot: number;
  readonly term: number;
  readonly from: NodeId;
  readonly index: number;
  readonly rejectHint: number;
}

/**
 * Before a leader steps `m`: if `m` is an append rejection that raft-rs 0.7 calls stale, the
 * leader's progress of its sender. raft-rs's rule (Progress::maybe_decr_to): in Replicate, a
 * rejection at or below the match index is stale; in Probe or Snapshot, one that does not answer
 * the probe outstanding (index = next - 1) is; a follower's snapshot request never is.
 */
export function staleRejectionBefore(raw: RawNode | undefined, m: AppendResponse): StaleRejection | undefined {
  if (m.msgType !== MessageType.MsgAppendResponse || !m.reject || m.requestSnapshot !== 0) return undefined;
  const r = raw?.raft;
  if (r === undefined || r.state !== StateRole.Leader || m.term !== r.term) return undefined;
  const pr = r.prs.get(m.from);
  if (pr === undefined) return undefined;
  const stale = pr.state === ProgressState.Replicate ? m.index <= pr.matched : m.index !== pr.nextIdx - 1;
  return stale ? { term: r.term, matched: pr.matched, next: pr.nextIdx, state: pr.state } : undefined;
}

/** After the leader stepped the stale rejection `m`: how its progress of the sender moved, if it did. */
export function staleRejectionActedOn(raw: RawNode | undefined, m: AppendResponse, before: StaleRejection): string | undefined {
  const r = raw?.raft;
  if (r === undefined || r.state !== StateRole.Leader || r.term !== before.term) return undefined;
  const pr = r.prs.get(m.from);
  if (pr === undefined || (pr.matched === before.matched && pr.nextIdx === before.next && pr.state === before.state)) return undefined;
  const show = (matched: number, next: number, state: ProgressState) => `{match ${matched}, next ${next}, ${PROGRESS_STATE_NAMES[state]}}`;
  return (
    `acted on a stale rejection from ${m.from} (index ${m.index}, hint ${m.rejectHint}): ` +
    `${show(before.matched, before.next, before.state)} became ${show(pr.matched, pr.nextIdx, pr.state)}`
  );
}

/** Terms stay far below 2^20 in any run, so (index, term) packs into one exact number. */
const TERM_BITS = 1048576;
const key = (index: number, term: number) => index * TERM_BITS + term;

export class Checker {
  /** Committed entries by index: their term and payload digest. */
  private regTerm: number[] = [];
  private regDigest: number[] = [];
  /** The state machine hash after applying each index (set by the first node that applies it). */
  private regHash: number[] = [];
  /** Highest index known committed (by a leader counting a quorum). */
  regMax = BOOT_INDEX;
  readonly leaderOfTerm = new Map<number, NodeId>();
  /** Highest index committed by the leader of each term. */
  private committedInTerm = new Map<number, number>();
  /** (index, term) -> payload digest and term of the previous entry, for Log Matching. */
  private appended = new Map<number, { digest: number; prevTerm: number }>();
  private nodes = new Map<NodeId, NodeHistory>();
  onRoleChange: RoleChange | undefined;
  /** Called when a leader's commit index moves. */
  onLeaderCommit: ((id: NodeId) => void) | undefined;

  constructor(
    private readonly storageOf: (id: NodeId) => SimStorage | undefined,
    /** Invariants not to enforce (to measure what the others catch on their own). */
    private readonly skip: ReadonlySet<string> = new Set(),
  ) {
    this.regTerm[BOOT_INDEX] = BOOT_TERM;
    this.regDigest[BOOT_INDEX] = 0;
    this.regHash[BOOT_INDEX] = BOOT_HASH;
  }

  private fail(invariant: string, detail: string): void {
    if (!this.skip.has(invariant)) throw new Violation(invariant, detail);
  }

  private history(id: NodeId): NodeHistory {
    let h = this.nodes.get(id);
    if (h === undefined) {
      h = { term: 0, vote: NONE, commit: 0, role: StateRole.Follower, durableTerm: 0, durableCommit: 0, durableVotes: new Map(), grants: new Map() };
      this.nodes.set(id, h);
    }
    return h;
  }

  /** Term of the committed entry at `i`, for reports. */
  committedTerm(i: number): number | undefined {
    return i <= this.regMax ? this.regTerm[i] : undefined;
  }

  /** A node (re)started from its durable state. */
  onStart(n: Observed): void {
    const h = this.history(n.id);
    const d = n.storage.durable;
    if (d.hs.term < h.durableTerm) this.fail("term monotonic", `node ${n.id} restarted with durable term ${d.hs.term} < ${h.durableTerm} made durable before`);
    if (d.hs.commit < h.durableCommit) this.fail("commit monotonic", `node ${n.id} restarted with durable commit ${d.hs.commit} < ${h.durableCommit} made durable before`);
    // Committed entries are never lost: what the disk says is committed must be the committed log.
    const from = Math.max(d.offset, d.sm.applied + 1);
    for (let i = from; i <= d.hs.commit; i++) {
      const t = n.storage.durableTerm(i);
      if (i > this.regMax || t !== this.regTerm[i]) {
        this.fail("committed entries survive crashes", `node ${n.id} restarted with durable commit ${d.hs.commit} but entry ${i} has term ${t}, committed term ${this.committedTerm(i)}`);
      }
    }
    h.term = d.hs.term;
    h.vote = d.hs.vote;
    h.commit = d.hs.commit;
    h.role = StateRole.Follower;
  }

  /** After each input a node handled: roles, terms, votes and commit. */
  observe(n: Observed): void {
    const raw = n.raw;
    if (raw === undefined) return;
    const r = raw.raft;
    const h = this.history(n.id);
    if (r.term < h.term) this.fail("term monotonic", `node ${n.id} term went from ${h.term} back to ${r.term}`);
    if (r.term === h.term && h.vote !== NONE && r.vote !== h.vote) {
      this.fail("one vote per term", `node ${n.id} changed its vote in term ${r.term} from ${h.vote} to ${r.vote}`);
    }
    if (r.state !== h.role || r.term !== h.term) {
      if (r.state === StateRole.Leader) this.onLeader(n, r.term);
      this.onRoleChange?.(n.id, r.state, r.term);
    }
    h.term = r.term;
    h.vote = r.vote;
    h.role = r.state;
    const c = r.raftLog.committed;
    if (c < h.commit) this.fail("commit monotonic", `node ${n.id} commit went from ${h.commit} back to ${c}`);
    if (c > h.commit) {
      this.onCommit(n, h.commit, c, r.state === StateRole.Leader);
      h.commit = c;
    }
  }

  /**
   * Before a node steps `m`: if `m` is an append rejection that raft-rs 0.7 calls stale, the
   * leader's progress of its sender, for `checkStaleRejection` to compare with after the step (see
   * staleRejectionBefore). Not a safety property: a leader that acts on a stale rejection only
   * lowers its view of the follower and resends, but it then decides unlike a raft-rs leader in the
   * same situation, and those resends (snapshots included) are wasted.
   */
  staleRejection(n: Observed, m: Message): StaleRejection | undefined {
    return staleRejectionBefore(n.raw, m);
  }

  /** After a node stepped a stale rejection: the leader's progress of the sender is as it was. */
  checkStaleRejection(n: Observed, m: Message, before: StaleRejection): void {
    const moved = staleRejectionActedOn(n.raw, m, before);
    if (moved !== undefined) this.fail("stale rejection ignored", `leader ${n.id} of term ${before.term} ${moved}`);
  }

  /**
   * Election Safety and Leader Completeness, when a node becomes leader of `term`: its log holds
   * every entry committed in an earlier term. (Entries committed in later terms need not be
   * there: a candidate can still win an old term with a vote grant that was delayed in flight;
   * such a leader can never commit, since a majority has moved on to the later term.)
   */
  private onLeader(n: Observed, term: number): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== n.id) this.fail("election safety", `nodes ${prev} and ${n.id} are both leader of term ${term}`);
    this.leaderOfTerm.set(term, n.id);
    let committed = BOOT_INDEX;
    for (const [t, index] of this.committedInTerm) if (t < term && index > committed) committed = index;
    const log = n.raw!.raft.raftLog;
    const last = log.lastIndex();
    if (last < committed) this.fail("leader completeness", `leader ${n.id} of term ${term} has last index ${last} < index ${committed} committed in an earlier term`);
    const first = log.firstIndex();
    const boundary = first - 1;
    if (boundary <= committed && boundary >= BOOT_INDEX && log.term(boundary) !== this.regTerm[boundary]) {
      this.fail("leader completeness", `leader ${n.id} of term ${term} has snapshot ${boundary}/t${log.term(boundary)}, committed term ${this.regTerm[boundary]}`);
    }
    if (first <= committed) {
      const ents = log.slice(first, Math.min(committed, last) + 1);
      for (const e of ents) {
        if (e.term !== this.regTerm[e.index] || entryDigest(e) !== this.regDigest[e.index]) {
          this.fail("leader completeness", `leader ${n.id} of term ${term} has entry ${e.index}/t${e.term}, committed ${e.index}/t${this.regTerm[e.index]}`);
        }
      }
    }
  }

  /** A node's commit index moved from `from` to `to`. */
  private onCommit(n: Observed, from: number, to: number, asLeader: boolean): void {
    const log = n.raw!.raft.raftLog;
    if (asLeader) {
      // Paper §5.4.2: a leader counts replicas only for entries of its own term.
      const term = n.raw!.raft.term;
      if (log.term(to) !== term) this.fail("leader commits its own term", `leader ${n.id} of term ${term} committed ${to}/t${log.term(to)} by counting replicas`);
      this.checkQuorumDurable(n, to, log.term(to));
      this.committedInTerm.set(term, to);
      this.onLeaderCommit?.(n.id);
    } else if (to > this.regMax) {
      this.fail("commit within quorum", `follower ${n.id} committed ${to} but no leader has committed beyond ${this.regMax}`);
    }
    const first = log.firstIndex();
    if (from + 1 < first) {
      // Jumped over a snapshot: its last entry must be the committed one.
      const b = first - 1;
      if (b > this.regMax || log.term(b) !== this.regTerm[b]) {
        this.fail("state machine safety", `node ${n.id} committed snapshot ${b}/t${log.term(b)}, committed term ${this.committedTerm(b)}`);
      }
    }
    const lo = Math.max(from + 1, first);
    if (lo > to) return;
    const ents = log.slice(lo, to + 1);
    for (const e of ents) {
      const i = e.index;
      const d = entryDigest(e);
      if (i <= this.regMax) {
        if (e.term !== this.regTerm[i] || d !== this.regDigest[i]) {
          this.fail("state machine safety", `node ${n.id} committed ${i}/t${e.term} but ${i}/t${this.regTerm[i]} was committed before`);
        }
      } else {
        this.regTerm[i] = e.term;
        this.regDigest[i] = d;
        this.regMax = i;
      }
    }
  }

  /** The leader's new commit index must be durable on a majority of each half of its configuration. */
  private checkQuorumDurable(n: Observed, index: number, term: number): void {
    const voters = n.raw!.raft.prs.conf.voters;
    for (const half of [voters.incoming.voters, voters.outgoing.voters]) {
      if (half.size === 0) continue;
      let durable = 0;
      const missing: NodeId[] = [];
      for (const id of half) {
        const s = this.storageOf(id);
        if (s !== undefined && s.durablyHolds(index, term)) durable++;
        else missing.push(id);
      }
      if (durable * 2 <= half.size) {
        this.fail("commit within quorum", `leader ${n.id} committed ${index}/t${term} but it is durable on only ${durable} of ${[...half].join(",")} (missing on ${missing.join(",")})`);
      }
    }
  }

  /** Entries a node is about to write, after `prevTerm` at index entries[0].index-1. */
  onAppend(id: NodeId, entries: Entry[], prevTerm: number): void {
    let pt = prevTerm;
    for (const e of entries) {
      const k = key(e.index, e.term);
      const d = entryDigest(e);
      const seen = this.appended.get(k);
      if (seen === undefined) this.appended.set(k, { digest: d, prevTerm: pt });
      else if (seen.digest !== d || seen.prevTerm !== pt) {
        this.fail("log matching", `node ${id} wrote ${e.index}/t${e.term} after term ${pt}, but another log has a different ${e.index}/t${e.term} after term ${seen.prevTerm}`);
      }
      pt = e.term;
    }
  }

  /** An entry applied to a node's state machine, leaving it at `hash`. */
  onApply(n: Observed, e: Entry, hash: number): void {
    const i = e.index;
    if (i > this.regMax || e.term !== this.regTerm[i] || entryDigest(e) !== this.regDigest[i]) {
      this.fail("state machine safety", `node ${n.id} applied ${i}/t${e.term}, committed ${i}/t${this.committedTerm(i)}`);
    }
    const want = this.regHash[i];
    if (want === undefined) this.regHash[i] = hash;
    else if (want !== hash) this.fail("state machine safety", `node ${n.id} state machine after ${i} differs from another node's`);
    if (!n.storage.durablyHolds(i, e.term)) this.fail("apply only durable entries", `node ${n.id} applied ${i}/t${e.term} which is not durable`);
  }

  /** A snapshot installed into a node's state machine. */
  onSnapshotInstalled(n: Observed, snap: Snapshot): void {
    const { index, term } = snap.metadata;
    const sm = decodeSm(snap.data);
    if (sm.applied !== index) this.fail("state machine safety", `snapshot ${index}/t${term} carries a state machine at ${sm.applied}`);
    if (index > this.regMax || term !== this.regTerm[index] || this.regHash[index] !== sm.hash) {
      this.fail("state machine safety", `node ${n.id} installed snapshot ${index}/t${term} that does not match the committed state machine`);
    }
  }

  /** A message leaves a node: vote grants and append acks must describe durable state. */
  onSend(n: Observed, m: Message): void {
    if (m.msgType === MessageType.MsgRequestVoteResponse && !m.reject) {
      const h = this.history(n.id);
      const durable = h.durableVotes.get(m.term);
      if (durable !== m.to) {
        this.fail("persist before promise", `node ${n.id} granted its vote in term ${m.term} to ${m.to} but its durable vote in that term is ${durable ?? "none"}`);
      }
      const prev = h.grants.get(m.term);
      if (prev !== undefined && prev !== m.to) this.fail("one vote per term", `node ${n.id} granted its vote in term ${m.term} to ${prev} and to ${m.to}`);
      h.grants.set(m.term, m.to);
    } else if (m.msgType === MessageType.MsgAppendResponse && !m.reject && m.index > 0) {
      // The acknowledged entries must be on disk (below the durable compaction point everything
      // is applied, hence durable).
      const s = n.storage;
      if (m.index > s.durableLastIndex() && m.index >= s.durable.offset) {
        this.fail("persist before promise", `node ${n.id} acknowledged entries up to ${m.index} but its durable log ends at ${s.durableLastIndex()}`);
      }
    }
  }

  /** Hard states of a node that became durable, in the order they were written. */
  onDurable(n: Observed, written: HardState[]): void {
    const h = this.history(n.id);
    for (const hs of written) {
      if (hs.term < h.durableTerm) this.fail("term monotonic", `node ${n.id} durable term went from ${h.durableTerm} back to ${hs.term}`);
      h.durableTerm = hs.term;
      if (hs.commit > h.durableCommit) h.durableCommit = hs.commit;
      if (hs.vote !== NONE) {
        const prev = h.durableVotes.get(hs.term);
        if (prev !== undefined && prev !== hs.vote) this.fail("one vote per term", `node ${n.id} durably voted for ${prev} and then ${hs.vote} in term ${hs.term}`);
        h.durableVotes.set(hs.term, hs.vote);
      }
    }
  }

  /** Digest of the committed entry at `i`, if committed. */
  committedDigest(i: number): number | undefined {
    return i <= this.regMax ? this.regDigest[i] : undefined;
  }
}
