// RawNode: the only surface the application sees. It wraps the Raft state machine and hands out
// its work in Ready batches. Rules for the caller (raft-rs semantics; src/raft/README.md explains them):
//  1. if hasReady(): rd = ready(); between ready() and advance*() call nothing that changes state;
//  2. send rd.messages at once (a leader's appends may overlap with its own fsync);
//  3. persist rd.snapshot, rd.entries and rd.hardState durably (one transaction);
//  4. only then send rd.persistedMessages (vote grants, append acks);
//  5. apply rd.committedEntries (conf changes through applyConfChange);
//  6. light = advance(rd) (or advanceAppend + advanceApplyTo when applying asynchronously);
//     send light.messages and apply light.committedEntries.
import { type RaftConfig, resolveConfig } from "./config.ts";
import { encodeConfChangeV2 } from "./codec.ts";
import { RaftError } from "./errors.ts";
import { Raft, type SoftState, StateRole, msg } from "./raft.ts";
import type { ReadState } from "./read-only.ts";
import type { Storage } from "./storage.ts";
import type { Progress, ProgressState } from "./tracker/progress.ts";
import {
  type ConfChangeV2,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  NONE,
  NO_ENTRIES,
  NO_MESSAGES,
  type NodeId,
  type Snapshot,
  hardStateEqual,
  isLocalMsg,
  isResponseMsg,
  newEntry,
  sharedEmptyList,
} from "./types.ts";

export interface Ready {
  /** Sequence number, for asynchronous persistence (onPersistReady). */
  readonly number: number;
  /** Changed soft state (leader, role), if any. */
  readonly softState?: SoftState;
  /** Changed hard state; must be persisted. */
  readonly hardState?: HardState;
  readonly readStates: ReadState[];
  /** Entries to append to stable storage (discarding stored entries at index >= the first). */
  readonly entries: Entry[];
  /** A snapshot to install, if any. */
  readonly snapshot?: Snapshot;
  /** Committed entries to apply. */
  readonly committedEntries: Entry[];
  /** Messages that may be sent at once (leader only). */
  readonly messages: Message[];
  /** Messages that may only be sent after entries, hard state and snapshot are durable. */
  readonly persistedMessages: Message[];
  /** False only if nothing but the commit index changed (no fsync needed). */
  readonly mustSync: boolean;
}

export interface LightReady {
  /** New commit index to record, if it moved. */
  readonly commitIndex?: number;
  readonly committedEntries: Entry[];
  readonly messages: Message[];
}

/** A copy of what the leader knows about one member's log (Status.peers). */
export interface PeerProgress {
  readonly id: NodeId;
  /** Highest index known to be in the member's log. */
  readonly match: number;
  /** Next index to send it. */
  readonly next: number;
  readonly state: ProgressState;
  /** Heard from since the last check-quorum round (every election timeout with check_quorum). */
  readonly recentActive: boolean;
  /** A learner (no vote) rather than a voter. */
  readonly learner: boolean;
}

export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  /** Last index of the log (stable or not). */
  lastIndex: number;
  /** Per-member progress, only on the leader (live objects of the tracker: do not change them). */
  progress?: Map<NodeId, Progress>;
  /** The same as copies, every member but this node, in id order; only on the leader. */
  peers?: PeerProgress[];
  confState: ConfState;
  leadTransferee?: NodeId;
}

/** The facts a caller's loop reads often, without copying the tracker (see status() for all). */
export interface BasicStatus {
  readonly term: number;
  readonly role: StateRole;
  /** The leader this node knows of, or NONE. */
  readonly leader: NodeId;
  readonly commit: number;
  readonly lastIndex: number;
  /** On a leader handing over: the node it hands over to. */
  readonly leadTransferee: NodeId | undefined;
  /** A conf change is in the log and not yet applied: no other may be proposed. */
  readonly pendingConfChange: boolean;
}

export const enum SnapshotStatus {
  Finish = 0,
  Failure = 1,
}

/** What a Ready asked to persist: its last entry and snapshot (0 = none). Flat numbers: one object per Ready. */
interface ReadyRecord {
  number: number;
  lastIndex: number;
  lastTerm: number;
  snapIndex: number;
}

/** Shared empty list for the read states of a Ready that has none (see sharedEmptyList). */
const NO_READ_STATES: ReadState[] = sharedEmptyList();

export class RawNode {
  readonly raft: Raft;
  private prevSs: SoftState;
  private prevHs: HardState;
  /** Highest index handed out in committedEntries so far. */
  private commitSinceIndex: number;
  private maxNumber = 0;
  private records: ReadyRecord[] = [];

  constructor(config: RaftConfig, store: Storage) {
    const c = resolveConfig(config);
    this.raft = new Raft(c, store);
    this.prevSs = this.raft.softState();
    this.prevHs = this.raft.hardState();
    this.commitSinceIndex = c.applied;
  }

  // ---------------------------------------------------------------- inputs

  /** Advances the logical clock by one tick. Returns true if something may be ready. */
  tick(): boolean {
    return this.raft.tick();
  }

  /** Campaigns to become leader (a real election, or pre-vote first if enabled). */
  campaign(): void {
    this.raft.step(msg(NONE, MessageType.MsgHup, this.raft.id));
  }

  /** Proposes data to be appended to the log. Throws RaftError("ProposalDropped") if refused. */
  propose(context: Uint8Array, data: Uint8Array): void {
    const m = msg(NONE, MessageType.MsgPropose, this.raft.id);
    m.entries = [newEntry({ data, context })];
    this.raft.step(m);
  }

  /** Proposes a batch of entries in one message (one append, one broadcast). */
  proposeBatch(data: Uint8Array[]): void {
    const m = msg(NONE, MessageType.MsgPropose, this.raft.id);
    m.entries = data.map((d) => newEntry({ data: d }));
    this.raft.step(m);
  }

  /** Proposes a membership change. An empty ConfChangeV2 leaves a joint configuration. */
  proposeConfChange(context: Uint8Array, cc: ConfChangeV2): void {
    const m = msg(NONE, MessageType.MsgPropose, this.raft.id);
    m.entries = [newEntry({ entryType: EntryType.EntryConfChangeV2, data: encodeConfChangeV2(cc), context })];
    this.raft.step(m);
  }

  /** Applies a committed conf change and returns the new ConfState (to be stored). */
  applyConfChange(cc: ConfChangeV2): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Steps a message received from a peer. Local-only types and unknown responders are refused. */
  step(m: Message): void {
    if (isLocalMsg(m.msgType)) throw new RaftError("StepLocalMsg", MessageType[m.msgType] ?? String(m.msgType));
    if (this.raft.prs.get(m.from) !== undefined || !isResponseMsg(m.msgType)) {
      this.raft.step(m);
      return;
    }
    throw new RaftError("StepPeerNotFound", `from ${m.from}`);
  }

  /** Requests a linearizable read; the answer arrives as a ReadState carrying `ctx`. */
  readIndex(ctx: Uint8Array): void {
    const m = msg(NONE, MessageType.MsgReadIndex, this.raft.id);
    m.entries = [newEntry({ data: ctx })];
    this.raft.step(m);
  }

  transferLeader(transferee: NodeId): void {
    const m = msg(NONE, MessageType.MsgTransferLeader, transferee);
    this.raft.step(m);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(msg(NONE, MessageType.MsgUnreachable, id));
  }

  reportSnapshot(id: NodeId, status: SnapshotStatus): void {
    const m = msg(NONE, MessageType.MsgSnapStatus, id);
    m.reject = status === SnapshotStatus.Failure;
    this.raft.step(m);
  }

  /** Asks the leader for a snapshot at least as recent as `requestIndex`. */
  requestSnapshot(requestIndex: number): void {
    this.raft.requestSnapshot(requestIndex);
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    const r = this.raft;
    if (r.msgs.length > 0) return true;
    const ss = r.softState();
    if (ss.leaderId !== this.prevSs.leaderId || ss.raftState !== this.prevSs.raftState) return true;
    if (!hardStateEqual(r.hardState(), this.prevHs)) return true;
    if (r.readStates.length > 0) return true;
    if (r.raftLog.unstableEntries().length > 0) return true;
    const s = r.snap();
    if (s !== undefined && s.metadata.index !== 0) return true;
    return r.raftLog.hasNextEntriesSince(this.commitSinceIndex);
  }

  ready(): Ready {
    const r = this.raft;
    const number = ++this.maxNumber;
    const record: ReadyRecord = { number, lastIndex: 0, lastTerm: 0, snapIndex: 0 };
    let mustSync = false;
    const ss = r.softState();
    const softState = ss.leaderId !== this.prevSs.leaderId || ss.raftState !== this.prevSs.raftState ? ss : undefined;
    const hs = r.hardState();
    let hardState: HardState | undefined;
    if (!hardStateEqual(hs, this.prevHs)) {
      if (hs.vote !== this.prevHs.vote || hs.term !== this.prevHs.term) mustSync = true;
      hardState = hs;
    }
    let readStates = NO_READ_STATES;
    if (r.readStates.length > 0) {
      readStates = r.readStates;
      r.readStates = [];
    }
    let snapshot: Snapshot | undefined;
    const us = r.snap();
    if (us !== undefined) {
      snapshot = us;
      if (this.commitSinceIndex > us.metadata.index) throw new Error("snapshot is older than the committed entries already handed out");
      this.commitSinceIndex = us.metadata.index;
      record.snapIndex = us.metadata.index;
      mustSync = true;
    }
    const unstable = r.raftLog.unstableEntries();
    const entries = unstable.length > 0 ? unstable.slice() : NO_ENTRIES;
    if (entries.length > 0) {
      const last = entries[entries.length - 1];
      mustSync = true;
      record.lastIndex = last.index;
      record.lastTerm = last.term;
    }
    const light = this.genLightReady();
    // A leader may send before persisting (thesis §10.2.1); everyone else only after.
    const isLeader = r.state === StateRole.Leader;
    this.records.push(record);
    return {
      number,
      softState,
      hardState,
      readStates,
      entries,
      snapshot,
      committedEntries: light.committedEntries,
      messages: isLeader ? light.messages : NO_MESSAGES,
      persistedMessages: isLeader ? NO_MESSAGES : light.messages,
      mustSync,
    };
  }

  private genLightReady(): { committedEntries: Entry[]; messages: Message[] } {
    if (NO_ENTRIES.length !== 0 || NO_MESSAGES.length !== 0 || NO_READ_STATES.length !== 0) {
      throw new Error("a shared empty list was appended to: Ready and message lists are read-only");
    }
    const r = this.raft;
    const max = r.maxCommittedSizePerReady;
    const committedEntries = r.raftLog.nextEntriesSince(this.commitSinceIndex, max >= Number.MAX_SAFE_INTEGER ? undefined : max) ?? NO_ENTRIES;
    r.reduceUncommittedSize(committedEntries);
    if (committedEntries.length > 0) this.commitSinceIndex = committedEntries[committedEntries.length - 1].index;
    let messages = NO_MESSAGES;
    if (r.msgs.length > 0) {
      messages = r.msgs;
      r.msgs = [];
    }
    return { committedEntries, messages };
  }

  private commitReady(rd: Ready): void {
    if (rd.softState) this.prevSs = rd.softState;
    if (rd.hardState) this.prevHs = rd.hardState;
    const rec = this.records[this.records.length - 1];
    if (rec === undefined || rec.number !== rd.number) throw new Error(`advancing a Ready out of order (${rd.number})`);
    if (rec.snapIndex !== 0) this.raft.raftLog.stableSnap(rec.snapIndex);
    if (rec.lastIndex !== 0) this.raft.raftLog.stableEntries(rec.lastIndex, rec.lastTerm);
  }

  /** Everything up to Ready `number` is durable (asynchronous persistence). */
  onPersistReady(number: number): void {
    let index = 0;
    let term = 0;
    let snapIndex = 0;
    while (this.records.length > 0 && this.records[0].number <= number) {
      const rec = this.records.shift()!;
      if (rec.snapIndex !== 0) {
        snapIndex = rec.snapIndex;
        index = 0;
        term = 0;
      }
      if (rec.lastIndex !== 0) {
        index = rec.lastIndex;
        term = rec.lastTerm;
      }
    }
    if (snapIndex !== 0) this.raft.onPersistSnap(snapIndex);
    if (index !== 0) this.raft.onPersistEntries(index, term);
  }

  /** The Ready was persisted and its committed entries applied: returns what became possible. */
  advance(rd: Ready): LightReady {
    const applied = this.commitSinceIndex;
    const light = this.advanceAppend(rd);
    this.advanceApplyTo(applied);
    return light;
  }

  /** The Ready was persisted (committed entries may still be being applied). */
  advanceAppend(rd: Ready): LightReady {
    this.commitReady(rd);
    this.onPersistReady(this.maxNumber);
    const light = this.genLightReady();
    if (this.raft.state !== StateRole.Leader && light.messages.length > 0) {
      throw new Error("not leader but has new msg after advance");
    }
    const hs = this.raft.hardState();
    let commitIndex: number | undefined;
    if (hs.commit > this.prevHs.commit) {
      commitIndex = hs.commit;
      this.prevHs = { ...this.prevHs, commit: hs.commit };
    }
    return { commitIndex, committedEntries: light.committedEntries, messages: light.messages };
  }

  /** Persistence is asynchronous: remember the Ready, call onPersistReady(rd.number) when durable. */
  advanceAppendAsync(rd: Ready): void {
    this.commitReady(rd);
  }

  /** All committed entries handed out so far were applied. */
  advanceApply(): void {
    this.advanceApplyTo(this.commitSinceIndex);
  }

  /** Entries up to `applied` were applied. */
  advanceApplyTo(applied: number): void {
    this.raft.commitApply(applied);
  }

  // ---------------------------------------------------------------- inspection

  status(): Status {
    const r = this.raft;
    const leader = r.state === StateRole.Leader;
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      lastIndex: r.raftLog.lastIndex(),
      progress: leader ? r.prs.progress : undefined,
      peers: leader ? this.peerProgress() : undefined,
      confState: r.prs.confState(),
      leadTransferee: r.leadTransferee,
    };
  }

  basicStatus(): BasicStatus {
    const r = this.raft;
    return {
      term: r.term,
      role: r.state,
      leader: r.leaderId,
      commit: r.raftLog.committed,
      lastIndex: r.raftLog.lastIndex(),
      leadTransferee: r.leadTransferee,
      pendingConfChange: r.hasPendingConf(),
    };
  }

  /**
   * On a leader, sends every follower an append carrying the commit index (empty for those that
   * have every entry). With `skipBcastCommit` the caller uses it to announce a commit that no new
   * append carried in time.
   */
  broadcastCommit(): void {
    if (this.raft.state === StateRole.Leader) this.raft.bcastAppend();
  }

  /** The current configuration (both halves of a joint one). */
  confState(): ConfState {
    return this.raft.prs.confState();
  }

  /** Whether `id` is in the configuration: a voter or learner of either half of a joint one. */
  inConfiguration(id: NodeId): boolean {
    const c = this.raft.prs.conf;
    return c.voters.has(id) || c.learners.has(id) || c.learnersNext.has(id);
  }

  /** The leader's replication state for member `id` (undefined when not leading or not a member). */
  progressState(id: NodeId): ProgressState | undefined {
    return this.raft.state === StateRole.Leader ? this.raft.prs.get(id)?.state : undefined;
  }

  private peerProgress(): PeerProgress[] {
    const r = this.raft;
    const learners = r.prs.conf.learners;
    const out: PeerProgress[] = [];
    for (const [id, pr] of r.prs.progress) {
      if (id === r.id) continue;
      out.push({ id, match: pr.matched, next: pr.nextIdx, state: pr.state, recentActive: pr.recentActive, learner: learners.has(id) });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
