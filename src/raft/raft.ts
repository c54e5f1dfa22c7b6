// The Raft state machine: roles, elections, replication, commitment, snapshots, membership,
// leader transfer and ReadIndex, with raft-rs semantics so that a node running this core can be in
// one cluster with raft-rs nodes. Pure: no timers, clock, randomness or I/O; it only reacts to
// tick() and step() and queues outgoing messages in `msgs` for the RawNode to hand out.
import { type RaftTestBug, type ResolvedConfig, NO_LIMIT } from "./config.ts";
import { Changer, ConfChangeError, ccEnterJoint, ccLeaveJoint, isJoint, restoreConfState } from "./confchange/changer.ts";
import { decodeConfChangeV2 } from "./codec.ts";
import { RaftError } from "./errors.ts";
import { NOOP_LOGGER, type RaftLogger } from "./logger.ts";
import { VoteResult } from "./quorum/majority.ts";
import { RaftLog } from "./raft-log.ts";
import { ReadOnly, ReadOnlyOption, type ReadState } from "./read-only.ts";
import { type Storage, StorageError } from "./storage.ts";
import { INVALID_INDEX, type Progress, ProgressState } from "./tracker/progress.ts";
import { ProgressTracker } from "./tracker/tracker.ts";
import {
  CAMPAIGN_ELECTION,
  CAMPAIGN_PRE_ELECTION,
  CAMPAIGN_TRANSFER,
  type ConfChangeV2,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  NONE,
  NO_ENTRIES,
  type NodeId,
  type Snapshot,
  confStateEqual,
  entrySize,
  newEntry,
  payloadSize,
  voteRespMsgType,
} from "./types.ts";
import { bytesEqual } from "../util/bytes.ts";

export const enum StateRole {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

export const STATE_ROLE_NAMES = ["Follower", "Candidate", "Leader", "PreCandidate"] as const;

export interface SoftState {
  leaderId: NodeId;
  raftState: StateRole;
}

/** Builds a message with every field present (a stable object shape keeps property access fast). */
export function msg(to: NodeId, msgType: MessageType, from: NodeId = NONE): Message {
  return {
    msgType,
    to,
    from,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: NO_ENTRIES,
    commit: 0,
    commitTerm: 0,
    snapshot: undefined,
    requestSnapshot: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
    priority: 0,
  };
}

/** Tracks the data size of uncommitted entries on the leader (raft-rs UncommittedState). */
class UncommittedState {
  size = 0;
  /** Entries at or below this index were appended before this node became leader. */
  lastLogTailIndex = 0;
  constructor(readonly maxSize: number) {}

  isNoLimit(): boolean {
    return this.maxSize === NO_LIMIT;
  }

  maybeIncrease(ents: Entry[]): boolean {
    if (this.isNoLimit()) return true;
    let size = 0;
    for (const e of ents) size += payloadSize(e);
    // Never drop an empty entry (elections, leave-joint), and always allow one uncommitted entry.
    if (size === 0 || this.size === 0 || size + this.size <= this.maxSize) {
      this.size += size;
      return true;
    }
    return false;
  }

  maybeReduce(ents: Entry[]): boolean {
    if (this.isNoLimit() || ents.length === 0) return true;
    let size = 0;
    for (const e of ents) if (e.index > this.lastLogTailIndex) size += payloadSize(e);
    if (size > this.size) {
      this.size = 0;
      return false;
    }
    this.size -= size;
    return true;
  }
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly prs: ProgressTracker;
  state: StateRole = StateRole.Follower;
  /** Whether this node is a voter of the current configuration (may campaign). */
  promotable = false;
  leaderId: NodeId = NONE;
  /** The node leadership is being transferred to, if any. */
  leadTransferee: NodeId | undefined = undefined;
  /** Index of the latest conf change proposed by this leader; no new one until it is applied. */
  pendingConfIndex = 0;
  pendingRequestSnapshot = INVALID_INDEX;
  readOnly: ReadOnly;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  msgs: Message[] = [];

  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  readonly minElectionTimeout: number;
  readonly maxElectionTimeout: number;
  readonly maxMsgSize: number;
  readonly skipBcastCommit: boolean;
  readonly skipHeartbeatsWhileAppending: boolean;
  /** Followers sent an append since the last periodic heartbeat (with skipHeartbeatsWhileAppending). */
  private readonly appendedSinceBeat = new Set<NodeId>();
  readonly batchAppend: boolean;
  readonly disableProposalForwarding: boolean;
  priority: number;
  readonly maxCommittedSizePerReady: number;
  readonly uncommitted: UncommittedState;
  readonly logger: RaftLogger;
  private readonly random: (n: number) => number;

  /** Deliberate bugs this node was built with; tests only (RaftConfig.testBugs), empty otherwise. */
  private readonly testBugs: ReadonlySet<RaftTestBug>;

  constructor(c: ResolvedConfig, store: Storage) {
    this.id = c.id;
    this.logger = c.logger ?? NOOP_LOGGER;
    this.random = c.random;
    this.testBugs = c.testBugs;
    const rs = store.initialState();
    this.raftLog = new RaftLog(store);
    this.prs = new ProgressTracker(c.maxInflightMsgs, c.maxInflightBytes);
    this.checkQuorum = c.checkQuorum;
    this.preVote = c.preVote;
    this.readOnly = new ReadOnly(c.readOnlyOption);
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.minElectionTimeout = c.minElectionTick;
    this.maxElectionTimeout = c.maxElectionTick;
    this.maxMsgSize = c.maxSizePerMsg;
    this.skipBcastCommit = c.skipBcastCommit;
    this.skipHeartbeatsWhileAppending = c.skipHeartbeatsWhileAppending;
    this.batchAppend = c.batchAppend;
    this.disableProposalForwarding = c.disableProposalForwarding;
    this.priority = c.priority;
    this.maxCommittedSizePerReady = c.maxCommittedSizePerReady;
    this.uncommitted = new UncommittedState(c.maxUncommittedSize);

    restoreConfState(this.prs, this.raftLog.lastIndex(), rs.confState);
    const cs = this.postConfChange();
    if (!confStateEqual(cs, rs.confState)) {
      throw new Error(`invalid restore: ${JSON.stringify(cs, bigintJson)} != ${JSON.stringify(rs.confState, bigintJson)}`);
    }
    const hs = rs.hardState;
    if (hs.term !== 0 || hs.vote !== NONE || hs.commit !== 0) this.loadState(hs);
    if (c.applied > 0) this.commitApply(c.applied);
    this.becomeFollower(this.term, NONE);
    this.logger.info("newRaft", {
      raft_id: this.id,
      term: this.term,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      last_index: this.raftLog.lastIndex(),
      last_term: this.raftLog.lastTerm(),
      peers: this.prs.conf.toString(),
    });
  }

  // ---------------------------------------------------------------- state

  softState(): SoftState {
    return { leaderId: this.leaderId, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new Error(`hs.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /** The pending (unstable) snapshot, if any. */
  snap(): Snapshot | undefined {
    return this.raftLog.unstableSnapshot();
  }

  passElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.minElectionTimeout + this.random(this.maxElectionTimeout - this.minElectionTimeout);
  }

  hasPendingConf(): boolean {
    return this.pendingConfIndex > this.raftLog.applied;
  }

  private shouldBcastCommit(): boolean {
    return !this.skipBcastCommit || this.hasPendingConf();
  }

  private commitToCurrentTerm(): boolean {
    return this.raftLog.tryTerm(this.raftLog.committed) === this.term;
  }

  // ---------------------------------------------------------------- sending

  private send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    const t = m.msgType;
    if (
      t === MessageType.MsgRequestVote ||
      t === MessageType.MsgRequestPreVote ||
      t === MessageType.MsgRequestVoteResponse ||
      t === MessageType.MsgRequestPreVoteResponse
    ) {
      // Campaign messages carry the term they are about; it must be set explicitly.
      if (m.term === 0) throw new Error(`term should be set when sending ${MessageType[t]}`);
    } else {
      if (m.term !== 0) throw new Error(`term should not be set when sending ${MessageType[t]} (was ${m.term})`);
      // Proposals and read requests forwarded to the leader are treated as local messages (term 0).
      if (t !== MessageType.MsgPropose && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends an append (or a snapshot) to `to` if its progress allows; returns whether it sent. */
  maybeSendAppend(to: NodeId, pr: Progress, allowEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    // Created lazily: most calls from the ack loop find nothing to send.
    let m: Message;
    if (pr.pendingRequestSnapshot !== INVALID_INDEX) {
      m = msg(to, MessageType.MsgAppend);
      // The follower asked for a snapshot: do not bother loading entries.
      if (!this.prepareSendSnapshot(m, pr, to)) return false;
    } else {
      let ents: Entry[] | undefined;
      let term: number | undefined;
      try {
        ents = this.raftLog.entries(pr.nextIdx, this.maxMsgSize === NO_LIMIT ? undefined : this.maxMsgSize);
      } catch (e) {
        if (!(e instanceof StorageError)) throw e;
        ents = undefined;
      }
      if (!allowEmpty && (ents === undefined || ents.length === 0)) return false;
      m = msg(to, MessageType.MsgAppend);
      if (ents !== undefined) term = this.raftLog.tryTerm(pr.nextIdx - 1);
      if (ents !== undefined && term !== undefined) {
        if (this.batchAppend && this.tryBatching(to, pr, ents)) return true;
        this.prepareSendEntries(m, pr, term, ents);
      } else {
        // The entries (or the term before them) were compacted: send a snapshot instead.
        if (!this.prepareSendSnapshot(m, pr, to)) return false;
      }
    }
    this.send(m);
    if (this.skipHeartbeatsWhileAppending && m.msgType === MessageType.MsgAppend) this.appendedSinceBeat.add(to);
    return true;
  }

  sendAppend(to: NodeId, pr: Progress): void {
    this.maybeSendAppend(to, pr, true);
  }

  private prepareSendEntries(m: Message, pr: Progress, term: number, ents: Entry[]): void {
    m.msgType = MessageType.MsgAppend;
    m.index = pr.nextIdx - 1;
    m.logTerm = term;
    m.entries = ents;
    m.commit = this.raftLog.committed;
    const n = ents.length;
    if (n > 0) {
      let bytes = 0;
      for (let i = 0; i < n; i++) bytes += entrySize(ents[i]);
      pr.updateState(ents[n - 1].index, bytes);
    }
  }

  /** Appends `ents` to an MsgAppend already queued for `to` in this Ready, if contiguous. */
  private tryBatching(to: NodeId, pr: Progress, ents: Entry[]): boolean {
    for (const m of this.msgs) {
      if (m.msgType !== MessageType.MsgAppend || m.to !== to) continue;
      if (ents.length === 0) return true;
      const last = m.entries.length > 0 ? m.entries[m.entries.length - 1].index : m.index;
      if (last + 1 !== ents[0].index) return false;
      let bytes = 0;
      for (const e of ents) bytes += entrySize(e);
      if (!pr.isPaused()) {
        m.entries = m.entries.concat(ents);
        m.commit = this.raftLog.committed;
        pr.updateState(ents[ents.length - 1].index, bytes);
        return true;
      }
      return false;
    }
    return false;
  }

  private prepareSendSnapshot(m: Message, pr: Progress, to: NodeId): boolean {
    if (!pr.recentActive) {
      this.logger.debug("ignore sending snapshot since it is not recently active", { raft_id: this.id, to });
      return false;
    }
    m.msgType = MessageType.MsgSnapshot;
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot(pr.pendingRequestSnapshot, to);
    } catch (e) {
      if (e instanceof StorageError && e.kind === "SnapshotTemporarilyUnavailable") {
        this.logger.debug("failed to send snapshot because snapshot is temporarily unavailable", { raft_id: this.id, to });
        return false;
      }
      throw e;
    }
    if (snapshot.metadata.index === 0) throw new Error("need non-empty snapshot");
    m.snapshot = snapshot;
    this.logger.debug("sent snapshot", {
      raft_id: this.id,
      to,
      first_index: this.raftLog.firstIndex(),
      commit: this.raftLog.committed,
      snapshot_index: snapshot.metadata.index,
      snapshot_term: snapshot.metadata.term,
    });
    pr.becomeSnapshot(snapshot.metadata.index);
    return true;
  }

  private sendHeartbeat(to: NodeId, pr: Progress, ctx: Uint8Array | undefined): void {
    // Never advance a follower's commit past what it is known to have.
    const m = msg(to, MessageType.MsgHeartbeat);
    m.commit = Math.min(pr.matched, this.raftLog.committed);
    if (ctx !== undefined) m.context = ctx;
    this.send(m);
  }

  bcastAppend(): void {
    const ids = this.prs.ids();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === this.id) continue;
      this.sendAppend(id, this.prs.get(id)!);
    }
  }

  bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  /** The heartbeat of every heartbeat timeout, less those an append made needless. */
  private periodicHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestCtx();
    if (!this.skipHeartbeatsWhileAppending || ctx !== undefined) {
      this.bcastHeartbeatWithCtx(ctx);
    } else {
      for (const id of this.prs.ids()) {
        if (id === this.id) continue;
        const pr = this.prs.get(id)!;
        if (this.appendedSinceBeat.has(id) && pr.state === ProgressState.Replicate) continue;
        this.sendHeartbeat(id, pr, undefined);
      }
    }
    this.appendedSinceBeat.clear();
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    for (const id of this.prs.ids()) {
      if (id === this.id) continue;
      this.sendHeartbeat(id, this.prs.get(id)!, ctx);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(msg(to, MessageType.MsgTimeoutNow));
  }

  private sendRequestSnapshot(): void {
    const m = msg(this.leaderId, MessageType.MsgAppendResponse);
    m.index = this.raftLog.committed;
    m.reject = true;
    m.rejectHint = this.raftLog.lastIndex();
    m.requestSnapshot = this.pendingRequestSnapshot;
    this.send(m);
  }

  // ---------------------------------------------------------------- commitment

  /** Advances the commit index from the voters' match indexes; true if it moved. */
  maybeCommit(): boolean {
    const mci = this.prs.maximalCommittedIndex();
    if (this.testBugs.has("commitPreviousTermByCounting")) {
      // Deliberate bug for the simulator: commit by counting replicas whatever the entry's term.
      if (mci > this.raftLog.committed && mci !== Number.POSITIVE_INFINITY && mci <= this.raftLog.lastIndex()) {
        this.raftLog.commitTo(mci);
        return true;
      }
      return false;
    }
    if (this.raftLog.maybeCommit(mci, this.term)) {
      this.prs.get(this.id)?.updateCommitted(this.raftLog.committed);
      return true;
    }
    return false;
  }

  /** The application applied up to `applied`; may trigger the automatic leave of a joint config. */
  commitApply(applied: number): void {
    const oldApplied = this.raftLog.applied;
    this.raftLog.appliedTo(applied);
    // raft-rs limitation kept for compatibility: auto-leave only happens if this node is still the
    // leader when the joint entry is applied (a new leader proposes it in its own commitApply).
    if (
      this.prs.conf.autoLeave &&
      oldApplied <= this.pendingConfIndex &&
      applied >= this.pendingConfIndex &&
      this.state === StateRole.Leader
    ) {
      // An empty ConfChangeV2 means "leave joint"; empty data never counts against size limits.
      const e = newEntry({ entryType: EntryType.EntryConfChangeV2 });
      if (!this.appendEntry([e])) throw new Error("appending an empty EntryConfChangeV2 should never be dropped");
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.logger.info("initiating automatic transition out of joint configuration", { raft_id: this.id, config: this.prs.conf.toString() });
    }
  }

  /** Entries were persisted up to (index, term). A leader may now count itself for commitment. */
  onPersistEntries(index: number, term: number): void {
    const update = this.raftLog.maybePersist(index, term);
    if (update && this.state === StateRole.Leader) {
      // An older term's entries land late when a lone voter won before its write completed;
      // counting them is safe, as only entries of the current term commit by counting.
      const pr = this.prs.get(this.id);
      if (pr && pr.maybeUpdate(index) && this.maybeCommit() && this.shouldBcastCommit()) this.bcastAppend();
    }
  }

  onPersistSnap(index: number): void {
    this.raftLog.maybePersistSnap(index);
  }

  /** Adds entries to the leader's log with this term; false if the uncommitted size limit refuses them. */
  appendEntry(es: Entry[]): boolean {
    if (!this.uncommitted.maybeIncrease(es)) return false;
    const li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i].term = this.term;
      es[i].index = li + 1 + i;
    }
    this.raftLog.append(es);
    // The leader's own match index moves only when the entries are persisted (onPersistEntries).
    return true;
  }

  reduceUncommittedSize(ents: Entry[]): void {
    if (this.state !== StateRole.Leader) return;
    if (!this.uncommitted.maybeReduce(ents)) {
      this.logger.debug("try to reduce uncommitted size less than 0", { raft_id: this.id, first_index: ents[0]?.index ?? 0 });
    }
  }

  // ---------------------------------------------------------------- roles

  reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.leaderId = NONE;
    this.resetRandomizedElectionTimeout();
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    this.pendingConfIndex = 0;
    this.readOnly = new ReadOnly(this.readOnly.option);
    this.pendingRequestSnapshot = INVALID_INDEX;
    this.uncommitted.size = 0;
    const last = this.raftLog.lastIndex();
    const committed = this.raftLog.committed;
    const persisted = this.raftLog.persisted;
    for (const [id, pr] of this.prs.progress) {
      pr.reset(last + 1);
      if (id === this.id) {
        pr.matched = persisted;
        pr.committedIndex = committed;
      }
    }
  }

  becomeFollower(term: number, leaderId: NodeId): void {
    const pendingRequestSnapshot = this.pendingRequestSnapshot;
    this.reset(term);
    this.leaderId = leaderId;
    this.state = StateRole.Follower;
    this.pendingRequestSnapshot = pendingRequestSnapshot;
    this.logger.info("became follower", { raft_id: this.id, term, leader: leaderId });
  }

  becomeCandidate(): void {
    if (this.state === StateRole.Leader) throw new Error("invalid transition [leader -> candidate]");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateRole.Candidate;
    this.logger.info("became candidate", { raft_id: this.id, term: this.term });
  }

  becomePreCandidate(): void {
    if (this.state === StateRole.Leader) throw new Error("invalid transition [leader -> pre-candidate]");
    // A pre-candidate changes neither its term nor its vote.
    this.state = StateRole.PreCandidate;
    this.prs.resetVotes();
    this.leaderId = NONE;
    this.logger.info("became pre-candidate", { raft_id: this.id, term: this.term });
  }

  becomeLeader(): void {
    if (this.state === StateRole.Follower) throw new Error("invalid transition [follower -> leader]");
    this.reset(this.term);
    this.leaderId = this.id;
    this.state = StateRole.Leader;
    const last = this.raftLog.lastIndex();
    // The log may not be fully durable yet: a lone voter wins at once, possibly right after
    // stepping an append it has not written (e.g. a removed leader's MsgTimeoutNow in the same
    // batch). reset() set its own match to the persisted index; it counts the rest once written.
    this.uncommitted.lastLogTailIndex = last;
    this.prs.get(this.id)?.becomeReplicate();
    // There may be an unapplied conf change in the log: delay new ones until everything is applied.
    this.pendingConfIndex = last;
    if (!this.appendEntry([newEntry()])) throw new Error("appending an empty entry should never be dropped");
    this.logger.info("became leader", { raft_id: this.id, term: this.term });
  }

  // ---------------------------------------------------------------- ticks

  tick(): boolean {
    return this.state === StateRole.Leader ? this.tickHeartbeat() : this.tickElection();
  }

  tickElection(): boolean {
    this.electionElapsed++;
    if (!this.passElectionTimeout() || !this.promotable) return false;
    this.electionElapsed = 0;
    this.step(msg(NONE, MessageType.MsgHup, this.id));
    return true;
  }

  private tickHeartbeat(): boolean {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    let hasReady = false;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        hasReady = true;
        this.step(msg(NONE, MessageType.MsgCheckQuorum, this.id));
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateRole.Leader && this.leadTransferee !== undefined) this.abortLeaderTransfer();
    }
    if (this.state !== StateRole.Leader) return hasReady;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      hasReady = true;
      this.step(msg(NONE, MessageType.MsgBeat, this.id));
    }
    return hasReady;
  }

  // ---------------------------------------------------------------- elections

  /** Number of conf change entries in `ents`. */
  private numPendingConf(ents: Entry[]): number {
    let n = 0;
    for (const e of ents) if (e.entryType === EntryType.EntryConfChange || e.entryType === EntryType.EntryConfChangeV2) n++;
    return n;
  }

  private hasUnappliedConfChanges(lo: number, hi: number): boolean {
    if (lo >= hi) return false;
    return this.numPendingConf(this.raftLog.slice(lo, hi)) > 0;
  }

  hup(transferLeader: boolean): void {
    if (this.state === StateRole.Leader) {
      this.logger.debug("ignoring MsgHup because already leader", { raft_id: this.id });
      return;
    }
    // A learner or removed node must not campaign even when asked to (RawNode.campaign): voters
    // would grant it and a non-voter would lead, or its term bumps would disrupt the cluster.
    if (!this.promotable) {
      this.logger.warn("is unpromotable and can not campaign", { raft_id: this.id, term: this.term });
      return;
    }
    // A pending snapshot already carries its configuration; otherwise look at unapplied entries.
    // (The applied index can lag behind a compaction the storage has already done.)
    const first = this.raftLog.unstable.maybeFirstIndex() ?? Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    const ents = first <= this.raftLog.committed ? this.raftLog.slice(first, this.raftLog.committed + 1) : [];
    const n = this.numPendingConf(ents);
    if (n !== 0 && this.raftLog.committed > this.raftLog.applied) {
      this.logger.warn("cannot campaign since there are still pending configuration changes to apply", { raft_id: this.id, term: this.term, pending: n });
      return;
    }
    this.logger.info("starting a new election", { raft_id: this.id, term: this.term });
    if (transferLeader) this.campaign(CAMPAIGN_TRANSFER);
    else if (this.preVote) this.campaign(CAMPAIGN_PRE_ELECTION);
    else this.campaign(CAMPAIGN_ELECTION);
  }

  campaign(campaignType: Uint8Array): void {
    let voteMsg: MessageType;
    let term: number;
    if (campaignType === CAMPAIGN_PRE_ELECTION) {
      this.becomePreCandidate();
      // Pre-votes are for the next term, which is not taken until the pre-vote is won.
      voteMsg = MessageType.MsgRequestPreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgRequestVote;
      term = this.term;
    }
    if (this.poll(this.id, voteMsg, true) === VoteResult.Won) return; // single-voter cluster
    const [commit, commitTerm] = this.raftLog.commitInfo();
    for (const id of this.prs.conf.voters.ids()) {
      if (id === this.id) continue;
      const m = msg(id, voteMsg);
      m.term = term;
      m.index = this.raftLog.lastIndex();
      m.logTerm = this.raftLog.lastTerm();
      m.commit = commit;
      m.commitTerm = commitTerm;
      if (campaignType === CAMPAIGN_TRANSFER) m.context = CAMPAIGN_TRANSFER;
      m.priority = this.priority;
      this.send(m);
    }
    this.logger.info("broadcast vote request", { raft_id: this.id, term, type: MessageType[voteMsg] });
  }

  private poll(from: NodeId, t: MessageType, vote: boolean): VoteResult {
    this.prs.recordVote(from, vote);
    const { granted, rejected, result } = this.prs.tallyVotes();
    if (from !== this.id) {
      this.logger.info("received votes response", { raft_id: this.id, from, type: MessageType[t], granted, rejected, term: this.term });
    }
    if (result === VoteResult.Won) {
      if (this.state === StateRole.PreCandidate) this.campaign(CAMPAIGN_ELECTION);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === VoteResult.Lost) {
      // A lost pre-vote carries a future term: stay in ours.
      this.becomeFollower(this.term, NONE);
    }
    return result;
  }

  /** raft-rs: a vote message carries the sender's commit point; use it to advance ours safely. */
  private maybeCommitByVote(m: Message): void {
    if (m.commit === 0 || m.commitTerm === 0) return;
    const lastCommit = this.raftLog.committed;
    if (m.commit <= lastCommit || this.state === StateRole.Leader) return;
    if (!this.raftLog.maybeCommit(m.commit, m.commitTerm)) return;
    this.logger.info("fast-forwarded commit to vote request", { raft_id: this.id, commit: this.raftLog.committed });
    if (this.state !== StateRole.Candidate && this.state !== StateRole.PreCandidate) return;
    // An election must not span a configuration change: step down if one became committed.
    if (this.hasUnappliedConfChanges(lastCommit + 1, this.raftLog.committed + 1)) this.becomeFollower(this.term, NONE);
  }

  // ---------------------------------------------------------------- step

  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.msgType === MessageType.MsgRequestVote || m.msgType === MessageType.MsgRequestPreVote) {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.leaderId !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Heard from a leader within the minimum election timeout: ignore the disruptive vote.
          this.logger.info("ignored vote: lease is not expired", {
            raft_id: this.id,
            term: this.term,
            from: m.from,
            msg_term: m.term,
            remaining_ticks: this.electionTimeout - this.electionElapsed,
          });
          return;
        }
      }
      if (m.msgType === MessageType.MsgRequestPreVote || (m.msgType === MessageType.MsgRequestPreVoteResponse && !m.reject)) {
        // Pre-votes never change our term; a granted pre-vote response carries the future term.
      } else {
        this.logger.info("received a message with higher term", { raft_id: this.id, term: this.term, msg_term: m.term, from: m.from, type: MessageType[m.msgType] });
        if (m.msgType === MessageType.MsgAppend || m.msgType === MessageType.MsgHeartbeat || m.msgType === MessageType.MsgSnapshot) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      const stuckWithoutAnswer = this.checkQuorum || this.preVote || !this.promotable;
      if (stuckWithoutAnswer && (m.msgType === MessageType.MsgHeartbeat || m.msgType === MessageType.MsgAppend)) {
        // A stale leader (e.g. after a partition) learns our term from this empty response, so a
        // node that cannot win elections does not keep disrupting it with term bumps. A node that
        // never campaigns (a learner, or a voter its stale configuration leaves out) must answer
        // too: no vote request of its would ever move the leader past its term, so the leader,
        // which counts on it, would wait for it forever.
        this.send(msg(m.from, MessageType.MsgAppendResponse));
      } else if (m.msgType === MessageType.MsgRequestPreVote || (m.msgType === MessageType.MsgRequestVote && !this.promotable)) {
        // Reject (instead of ignoring) so a lower-term pre-candidate learns about our term. So
        // does a candidate asking a node that never campaigns: nothing else would ever carry that
        // node's term to it, and its every vote request would be ignored.
        const r = msg(m.from, voteRespMsgType(m.msgType));
        r.term = this.term;
        r.reject = true;
        this.send(r);
      } else {
        this.logger.debug("ignored a message with lower term", { raft_id: this.id, term: this.term, msg_term: m.term, from: m.from, type: MessageType[m.msgType] });
      }
      return;
    }

    switch (m.msgType) {
      case MessageType.MsgHup:
        this.hup(false);
        return;
      case MessageType.MsgRequestVote:
      case MessageType.MsgRequestPreVote:
        this.handleVoteRequest(m);
        return;
      default:
        switch (this.state) {
          case StateRole.PreCandidate:
          case StateRole.Candidate:
            this.stepCandidate(m);
            return;
          case StateRole.Follower:
            this.stepFollower(m);
            return;
          case StateRole.Leader:
            this.stepLeader(m);
            return;
        }
    }
  }

  private handleVoteRequest(m: Message): void {
    // We can vote for a repeat of our vote, when we have not voted and know no leader in this
    // term, or for a pre-vote of a future term...
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.leaderId === NONE) ||
      (m.msgType === MessageType.MsgRequestPreVote && m.term > this.term);
    // ...if the candidate's log is at least as up to date as ours (priority breaks log ties).
    const upToDate = this.testBugs.has("grantVoteWithoutLogCheck") || this.raftLog.isUpToDate(m.index, m.logTerm);
    if (canVote && upToDate && (m.index > this.raftLog.lastIndex() || this.priority <= m.priority)) {
      this.logger.info("cast vote", { raft_id: this.id, term: this.term, for: m.from, type: MessageType[m.msgType], msg_term: m.term });
      // Answer with the message's term: for pre-votes our own term may be older.
      const r = msg(m.from, voteRespMsgType(m.msgType));
      r.term = m.term;
      this.send(r);
      if (m.msgType === MessageType.MsgRequestVote) {
        // Only real votes are recorded.
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.logger.info("rejected vote", { raft_id: this.id, term: this.term, from: m.from, type: MessageType[m.msgType], msg_term: m.term, vote: this.vote });
      const r = msg(m.from, voteRespMsgType(m.msgType));
      r.reject = true;
      r.term = this.term;
      const [commit, commitTerm] = this.raftLog.commitInfo();
      r.commit = commit;
      r.commitTerm = commitTerm;
      this.send(r);
      this.maybeCommitByVote(m);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.msgType) {
      case MessageType.MsgBeat:
        this.periodicHeartbeat();
        return;
      case MessageType.MsgCheckQuorum:
        if (!this.prs.quorumRecentlyActive(this.id)) {
          this.logger.warn("stepped down to follower since quorum is not active", { raft_id: this.id, term: this.term });
          this.becomeFollower(this.term, NONE);
        }
        return;
      case MessageType.MsgPropose:
        this.handlePropose(m);
        return;
      case MessageType.MsgReadIndex:
        this.handleLeaderReadIndex(m);
        return;
    }

    const pr = this.prs.get(m.from);
    if (pr === undefined) {
      this.logger.debug("no progress available", { raft_id: this.id, from: m.from, type: MessageType[m.msgType] });
      return;
    }
    switch (m.msgType) {
      case MessageType.MsgAppendResponse:
        this.handleAppendResponse(m, pr);
        break;
      case MessageType.MsgHeartbeatResponse:
        this.handleHeartbeatResponse(m, pr);
        break;
      case MessageType.MsgSnapStatus:
        this.handleSnapshotStatus(m, pr);
        break;
      case MessageType.MsgUnreachable:
        // An optimistic stream to an unreachable node has probably lost messages: go back to probing.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.logger.debug("failed to send message, because it is unreachable", { raft_id: this.id, to: m.from });
        break;
      case MessageType.MsgTransferLeader:
        this.handleTransferLeader(m, pr);
        break;
    }
  }

  private handlePropose(m: Message): void {
    if (m.entries.length === 0) throw new Error("stepped empty MsgProp");
    if (!this.prs.progress.has(this.id)) {
      // This leader was removed from the configuration: drop new proposals.
      throw new RaftError("ProposalDropped", "leader is not in the configuration");
    }
    if (this.leadTransferee !== undefined) {
      this.logger.debug("transfer leadership is in progress; dropping proposal", { raft_id: this.id, term: this.term, transferee: this.leadTransferee });
      throw new RaftError("ProposalDropped", "leader transfer in progress");
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (e.entryType === EntryType.EntryNormal) continue;
      let cc: ConfChangeV2 | undefined;
      if (e.entryType === EntryType.EntryConfChangeV2) {
        try {
          cc = decodeConfChangeV2(e.data);
        } catch (err) {
          this.logger.error("invalid confchange", { raft_id: this.id, error: String(err) });
          throw new RaftError("ProposalDropped", "invalid conf change");
        }
      } else {
        // ConfChange V1 is never produced by this service; refuse it rather than guess.
        this.logger.error("conf change v1 is not supported", { raft_id: this.id });
        throw new RaftError("ProposalDropped", "conf change v1 is not supported");
      }
      let reason = "";
      if (this.hasPendingConf()) reason = "possible unapplied conf change";
      else {
        const alreadyJoint = isJoint(this.prs.conf);
        const wantLeave = cc.changes.length === 0;
        if (alreadyJoint && !wantLeave) reason = "must transition out of joint config first";
        else if (!alreadyJoint && wantLeave) reason = "not in joint state; refusing empty conf change";
      }
      if (reason === "") {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      } else {
        this.logger.info("ignoring conf change", { raft_id: this.id, reason, config: this.prs.conf.toString() });
        m.entries[i] = newEntry();
      }
    }
    if (!this.appendEntry(m.entries)) {
      this.logger.debug("entries are dropped due to overlimit of max uncommitted size", { raft_id: this.id, uncommitted_size: this.uncommitted.size });
      throw new RaftError("ProposalDropped", "uncommitted size limit reached");
    }
    this.bcastAppend();
  }

  private handleLeaderReadIndex(m: Message): void {
    // Until this leader has committed an entry in its term it cannot know the commit index.
    if (!this.commitToCurrentTerm()) return;
    if (this.prs.isSingleton()) {
      const r = this.handleReadyReadIndex(m, this.raftLog.committed);
      if (r) this.send(r);
      return;
    }
    if (this.readOnly.option === ReadOnlyOption.Safe) {
      const ctx = m.entries[0].data;
      this.readOnly.addRequest(this.raftLog.committed, m, this.id);
      this.bcastHeartbeatWithCtx(ctx);
    } else {
      const r = this.handleReadyReadIndex(m, this.raftLog.committed);
      if (r) this.send(r);
    }
  }

  /** A read index is ready: record it locally or answer the follower that asked. */
  private handleReadyReadIndex(req: Message, index: number): Message | undefined {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.entries[0].data });
      return undefined;
    }
    const r = msg(req.from, MessageType.MsgReadIndexResp);
    r.index = index;
    r.entries = req.entries;
    return r;
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    let nextProbeIndex = m.rejectHint;
    if (m.reject && m.logTerm > 0) {
      // Skip every index whose term in our log is above the follower's term at the hint: a probe
      // there must fail too. This probes at most once per term in our log.
      nextProbeIndex = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
    }
    pr.recentActive = true;
    pr.updateCommitted(m.commit);
    if (m.reject) {
      this.logger.debug("received msgAppend rejection", { raft_id: this.id, from: m.from, index: m.index, reject_hint: m.rejectHint, log_term: m.logTerm });
      if (this.lostAcknowledgedEntries(m, pr, nextProbeIndex)) {
        this.logger.warn("follower no longer has entries it acknowledged; probing it from its log end", {
          raft_id: this.id,
          follower: m.from,
          matched: pr.matched,
          follower_hint: m.rejectHint,
        });
        pr.matched = 0;
        pr.becomeProbe();
        pr.nextIdx = Math.max(1, Math.min(m.index, nextProbeIndex + 1));
        this.sendAppend(m.from, pr);
        return;
      }
      if (pr.maybeDecrTo(m.index, nextProbeIndex, m.requestSnapshot)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, pr);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    switch (pr.state) {
      case ProgressState.Probe:
        pr.becomeReplicate();
        break;
      case ProgressState.Snapshot:
        // The follower caught up past the snapshot (via the snapshot or plain appends).
        if (pr.matched + 1 >= this.raftLog.firstIndex() || pr.isSnapshotCaughtUp()) {
          this.logger.debug("snapshot done, resumed sending replication messages", { raft_id: this.id, to: m.from });
          pr.pendingRequestSnapshot = INVALID_INDEX;
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case ProgressState.Replicate:
        pr.ins.freeTo(m.index);
        break;
    }
    if (this.maybeCommit()) {
      if (this.shouldBcastCommit()) this.bcastAppend();
    } else if (oldPaused) {
      // The follower may be missing the latest commit index.
      this.sendAppend(m.from, pr);
    }
    // Flow control may now allow several messages at once (without empty commit-only ones).
    while (this.maybeSendAppend(m.from, pr, false)) {}
    if (m.from === this.leadTransferee && pr.matched === this.raftLog.lastIndex()) {
      this.logger.info("sent MsgTimeoutNow after received MsgAppResp", { raft_id: this.id, to: m.from });
      this.sendTimeoutNow(m.from);
    }
  }

  /**
   * Whether rejection `m` shows that the follower no longer holds entries it acknowledged (its data
   * dir was wiped, or restored from an old copy): it answers the probe outstanding at the match
   * index (Probe state, index = next - 1 = matched), and no index of our log from the match on can
   * match the follower's (`nextProbeIndex` below the match).
   *
   * A fresh rejection of that kind proves the loss: the match was acknowledged in this term, after
   * the follower persisted it, and only a leader of a higher term could have made it drop those
   * entries (the rejection would then carry that term and depose us before it got here).
   *
   * A stale one cannot be told apart, but it can only pass this test where raft-rs 0.7 takes it as
   * fresh too: raft-rs ignores every rejection at or below the match in Replicate, and every one
   * that does not answer the outstanding probe in Probe, and this test holds in neither case.
   * Where it holds raft-rs probes from the hint as we do; we also forget the match, so that the
   * follower is not counted for entries it lacks and its acks below the old match are not dropped
   * as stale. Were the rejection old after all, the follower accepts the probe and its ack restores
   * the match: a lower match can only delay commitment, never advance it.
   *
   * A wiped follower does reach this state from Replicate: its rejections at or below the match are
   * ignored, but the next append beyond the match (a new entry, or the empty append that carries
   * the commit index or answers a heartbeat response while the match is behind the log) is rejected
   * above the match; that moves it to Probe at match + 1, and the probe at the match is rejected.
   */
  private lostAcknowledgedEntries(m: Message, pr: Progress, nextProbeIndex: number): boolean {
    if (m.requestSnapshot !== INVALID_INDEX || pr.matched === 0) return false;
    if (this.testBugs.has("staleRejectResetsMatch")) return m.index === pr.matched && m.rejectHint < pr.matched;
    return pr.state === ProgressState.Probe && m.index === pr.nextIdx - 1 && m.index === pr.matched && nextProbeIndex < pr.matched;
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.updateCommitted(m.commit);
    pr.recentActive = true;
    pr.resume();
    // Free one slot of a full window so that replication can make progress.
    if (pr.state === ProgressState.Replicate && pr.ins.full()) pr.ins.freeFirstOne();
    if (pr.matched < this.raftLog.lastIndex() || pr.pendingRequestSnapshot !== INVALID_INDEX) this.sendAppend(m.from, pr);

    if (this.readOnly.option !== ReadOnlyOption.Safe || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined || !this.prs.hasQuorum(acks)) return;
    for (const rs of this.readOnly.advance(m.context)) {
      const r = this.handleReadyReadIndex(rs.req, rs.index);
      if (r) this.send(r);
    }
  }

  private handleSnapshotStatus(m: Message, pr: Progress): void {
    if (pr.state !== ProgressState.Snapshot) return;
    if (m.reject) {
      pr.snapshotFailure();
      pr.becomeProbe();
      this.logger.debug("snapshot failed, resumed sending replication messages", { raft_id: this.id, to: m.from });
    } else {
      pr.becomeProbe();
      this.logger.debug("snapshot succeeded, resumed sending replication messages", { raft_id: this.id, to: m.from });
    }
    // After success wait for the follower's append response; after failure wait a heartbeat.
    pr.pause();
    pr.pendingRequestSnapshot = INVALID_INDEX;
  }

  private handleTransferLeader(m: Message, pr: Progress): void {
    const transferee = m.from;
    if (this.prs.conf.learners.has(transferee)) {
      this.logger.debug("ignored transferring leadership to a learner", { raft_id: this.id, transferee });
      return;
    }
    if (this.leadTransferee !== undefined) {
      if (this.leadTransferee === transferee) {
        this.logger.info("transfer leadership is in progress, ignores request to same node", { raft_id: this.id, term: this.term, transferee });
        return;
      }
      this.logger.info("abort previous transferring leadership", { raft_id: this.id, term: this.term, previous: this.leadTransferee });
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) {
      this.logger.debug("already leader; ignored transferring leadership to self", { raft_id: this.id });
      return;
    }
    this.logger.info("starts to transfer leadership", { raft_id: this.id, term: this.term, transferee });
    // The transfer must finish within an election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.matched === this.raftLog.lastIndex()) {
      this.sendTimeoutNow(transferee);
      this.logger.info("sends MsgTimeoutNow immediately as the transferee already has up-to-date log", { raft_id: this.id, transferee });
    } else {
      this.sendAppend(transferee, pr);
    }
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = undefined;
  }

  private stepCandidate(m: Message): void {
    switch (m.msgType) {
      case MessageType.MsgPropose:
        this.logger.info("no leader; dropping proposal", { raft_id: this.id, term: this.term });
        throw new RaftError("ProposalDropped", "no leader");
      case MessageType.MsgAppend:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnapshot:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.MsgRequestPreVoteResponse:
      case MessageType.MsgRequestVoteResponse:
        // Only responses for the current kind of candidacy count (a candidate may still get
        // stale pre-vote responses of its own term).
        if (
          (this.state === StateRole.PreCandidate && m.msgType !== MessageType.MsgRequestPreVoteResponse) ||
          (this.state === StateRole.Candidate && m.msgType !== MessageType.MsgRequestVoteResponse)
        ) {
          return;
        }
        this.poll(m.from, m.msgType, !m.reject);
        this.maybeCommitByVote(m);
        return;
      case MessageType.MsgTimeoutNow:
        this.logger.debug("ignored MsgTimeoutNow", { raft_id: this.id, term: this.term, from: m.from });
        return;
    }
  }

  /** Sends a request this follower cannot serve to the leader, or drops it (logging `noLeader`). */
  private forwardToLeader(m: Message, noLeader: string): void {
    if (this.leaderId === NONE) {
      this.logger.info(noLeader, { raft_id: this.id, term: this.term });
      return;
    }
    m.to = this.leaderId;
    this.send(m);
  }

  private stepFollower(m: Message): void {
    switch (m.msgType) {
      case MessageType.MsgPropose:
        if (this.leaderId === NONE) {
          this.logger.info("no leader; dropping proposal", { raft_id: this.id, term: this.term });
          throw new RaftError("ProposalDropped", "no leader");
        }
        if (this.disableProposalForwarding) {
          throw new RaftError("ProposalDropped", "proposal forwarding is disabled");
        }
        m.to = this.leaderId;
        this.send(m);
        return;
      case MessageType.MsgAppend:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnapshot:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        this.forwardToLeader(m, "no leader; dropping leader transfer msg");
        return;
      case MessageType.MsgTimeoutNow:
        if (this.promotable) {
          this.logger.info("received MsgTimeoutNow and starts an election to get leadership", { raft_id: this.id, term: this.term, from: m.from });
          // Transfers never use pre-vote: the cluster is healthy, no need for the extra round.
          this.hup(true);
        } else {
          this.logger.info("received MsgTimeoutNow but is not promotable", { raft_id: this.id, from: m.from });
        }
        return;
      case MessageType.MsgReadIndex:
        this.forwardToLeader(m, "no leader; dropping index reading msg");
        return;
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) {
          this.logger.error("invalid format of MsgReadIndexResp", { raft_id: this.id, from: m.from, entries: m.entries.length });
          return;
        }
        this.readStates.push({ index: m.index, requestCtx: m.entries[0].data });
        // The leader's read index is an entry of its term, so it is safe to commit up to it.
        if (m.index <= this.raftLog.lastIndex()) this.raftLog.maybeCommit(m.index, m.term);
        return;
    }
  }

  handleAppendEntries(m: Message): void {
    if (this.pendingRequestSnapshot !== INVALID_INDEX) {
      this.sendRequestSnapshot();
      return;
    }
    if (m.index < this.raftLog.committed) {
      const r = msg(m.from, MessageType.MsgAppendResponse);
      r.index = this.raftLog.committed;
      r.commit = this.raftLog.committed;
      this.send(r);
      return;
    }
    const r = msg(m.from, MessageType.MsgAppendResponse);
    const res = this.maybeAppendFromLeader(m);
    if (res !== undefined) {
      r.index = res;
    } else {
      this.logger.debug("rejected msgApp", { raft_id: this.id, log_term: m.logTerm, index: m.index, from: m.from });
      // Hint the largest index <= min(m.index, lastIndex) whose term is <= m.logTerm.
      const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
      const [hi, ht] = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
      r.index = m.index;
      r.reject = true;
      r.rejectHint = hi;
      r.logTerm = ht ?? 0;
    }
    r.commit = this.raftLog.committed;
    this.send(r);
  }

  /** maybeAppend, refusing (instead of crashing on) a leader that contradicts committed entries. */
  private maybeAppendFromLeader(m: Message): number | undefined {
    try {
      const res = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
      return res?.[1];
    } catch (e) {
      if (e instanceof Error && /conflict with committed entry|out of range/.test(e.message)) {
        this.logger.error("rejected append that contradicts the committed log", { raft_id: this.id, from: m.from, error: e.message });
        return undefined;
      }
      throw e;
    }
  }

  private handleHeartbeat(m: Message): void {
    // A follower whose log is shorter than the leader believes (e.g. a wiped data dir) must not
    // crash: commit only what it has.
    this.raftLog.commitTo(Math.min(m.commit, this.raftLog.lastIndex()));
    if (this.pendingRequestSnapshot !== INVALID_INDEX) {
      this.sendRequestSnapshot();
      return;
    }
    const r = msg(m.from, MessageType.MsgHeartbeatResponse);
    r.context = m.context;
    r.commit = this.raftLog.committed;
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === undefined) {
      this.logger.warn("ignored MsgSnapshot without a snapshot", { raft_id: this.id, from: m.from });
      return;
    }
    const { index, term } = snap.metadata;
    const r = msg(m.from, MessageType.MsgAppendResponse);
    if (this.restore(snap)) {
      this.logger.info("restored snapshot", { raft_id: this.id, commit: this.raftLog.committed, snapshot_index: index, snapshot_term: term });
      r.index = this.raftLog.lastIndex();
    } else {
      this.logger.info("ignored snapshot", { raft_id: this.id, commit: this.raftLog.committed, snapshot_index: index, snapshot_term: term });
      r.index = this.raftLog.committed;
    }
    this.send(r);
  }

  /** Installs a snapshot from the leader; false if it is stale, foreign or already covered. */
  restore(snap: Snapshot): boolean {
    const meta = snap.metadata;
    if (meta.index < this.raftLog.committed) return false;
    if (this.state !== StateRole.Follower) {
      // Defense in depth: only followers install snapshots.
      this.logger.warn("non-follower attempted to restore snapshot", { raft_id: this.id, state: STATE_ROLE_NAMES[this.state] });
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = meta.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id) && !cs.votersOutgoing.includes(this.id)) {
      this.logger.warn("attempted to restore snapshot but it is not in the ConfState", { raft_id: this.id });
      return false;
    }
    if (this.pendingRequestSnapshot === INVALID_INDEX && this.raftLog.matchTerm(meta.index, meta.term)) {
      this.logger.info("fast-forwarded commit to snapshot", { raft_id: this.id, commit: this.raftLog.committed, snapshot_index: meta.index, snapshot_term: meta.term });
      this.raftLog.commitTo(meta.index);
      return false;
    }
    // Validate the snapshot's configuration before touching any state: a peer's bad ConfState
    // must not crash or corrupt this node.
    const probe = new ProgressTracker(this.prs.maxInflight, this.prs.maxInflightBytes);
    try {
      restoreConfState(probe, meta.index + 1, cs);
    } catch (e) {
      this.logger.error("rejected snapshot with an invalid configuration", { raft_id: this.id, error: String(e) });
      return false;
    }
    // Replaying can succeed yet yield another ConfState (a voter also listed as a learner,
    // learners_next or auto_leave outside a joint config, duplicate ids): refuse that too.
    if (!confStateEqual(probe.confState(), cs)) {
      this.logger.error("rejected snapshot with an invalid configuration", { raft_id: this.id, error: "conf state does not round-trip" });
      return false;
    }
    this.raftLog.restore(snap);
    this.prs.clear();
    restoreConfState(this.prs, this.raftLog.lastIndex(), cs);
    const newCs = this.postConfChange();
    if (!confStateEqual(cs, newCs)) throw new Error("invalid restore: conf state mismatch after snapshot");
    this.pendingRequestSnapshot = INVALID_INDEX;
    return true;
  }

  /** Asks the leader for a snapshot at least as recent as `requestIndex` (raft-rs request_snapshot). */
  requestSnapshot(requestIndex: number): void {
    if (this.state === StateRole.Leader) this.logger.info("can not request snapshot on leader; dropping request snapshot", { raft_id: this.id });
    else if (this.leaderId === NONE) this.logger.info("drop request snapshot because of no leader", { raft_id: this.id });
    else if (this.snap() !== undefined) this.logger.info("there is a pending snapshot; dropping request snapshot", { raft_id: this.id });
    else if (this.pendingRequestSnapshot !== INVALID_INDEX) this.logger.info("there is a pending snapshot; dropping request snapshot", { raft_id: this.id });
    else {
      this.pendingRequestSnapshot = requestIndex;
      this.sendRequestSnapshot();
      return;
    }
    throw new RaftError("RequestSnapshotDropped");
  }

  // ---------------------------------------------------------------- membership

  /** Applies a committed conf change; returns the new ConfState. */
  applyConfChange(cc: ConfChangeV2): ConfState {
    const changer = new Changer(this.prs);
    let res;
    if (ccLeaveJoint(cc)) res = changer.leaveJoint();
    else {
      const autoLeave = ccEnterJoint(cc);
      res = autoLeave !== undefined ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
    }
    this.prs.applyConf(res[0], res[1], this.raftLog.lastIndex());
    return this.postConfChange();
  }

  /** Reacts to a new configuration: promotability, commit under the new quorum, probes, reads. */
  postConfChange(): ConfState {
    this.logger.info("switched to configuration", { raft_id: this.id, config: this.prs.conf.toString() });
    const cs = this.prs.confState();
    const isVoter = this.prs.conf.voters.has(this.id);
    this.promotable = isVoter;
    if (!isVoter && this.state === StateRole.Leader) {
      // A removed leader keeps leading until it steps down (the application transfers leadership first).
      return cs;
    }
    if (this.state !== StateRole.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      // The new quorum may commit more: tell everyone.
      this.bcastAppend();
    } else {
      // Probe new members right away instead of waiting for a heartbeat.
      for (const id of this.prs.ids()) {
        if (id === this.id) continue;
        this.maybeSendAppend(id, this.prs.get(id)!, false);
      }
    }
    // The quorum may have shrunk: pending reads may now be complete.
    const ctx = this.readOnly.lastPendingRequestCtx();
    if (ctx !== undefined) {
      const acks = this.readOnly.recvAck(this.id, ctx);
      if (acks !== undefined && this.prs.hasQuorum(acks)) {
        for (const rs of this.readOnly.advance(ctx)) {
          const r = this.handleReadyReadIndex(rs.req, rs.index);
          if (r) this.send(r);
        }
      }
    }
    if (this.leadTransferee !== undefined && !this.prs.conf.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }
}

export function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

export { ConfChangeError };
