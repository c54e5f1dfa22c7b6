// One Raft peer of the chain: the RawNode and its Ready loop, wired to durable storage, the peer
// transport, the commit pipeline and (on the leader) the proposer and membership changes.
// Everything runs on the one event loop; the Ready loop is synchronous from ready() to advance,
// and every controller or network call happens beside it, never inside.
import type { ConsolaInstance } from "consola";
import type { Proposal } from "../../gen/common_pb.ts";
import type { Config } from "../config/types.ts";
import { peerIdHex } from "../peer/peer-id.ts";
import { LogLimiter } from "../peer/rate.ts";
import type { SendOutcome } from "../peer/transport.ts";
import { RaftError, type RaftLogger, type RaftTestBug, StateRole, type PeerProgress, RawNode, type Ready, SnapshotStatus, ProgressState, type ConfChangeV2, type ConfState, type Message, MessageType, NONE, type NodeId, type Snapshot, newConfState, newSnapshot } from "../raft/index.ts";
import type { NodeStorage } from "../storage/node-storage.ts";
import {
  type ChainConfig,
  decodeChainConfig,
  describeChainConfig,
  encodeChainConfig,
  encodeProposal,
  tryDecodeChainConfig,
  validatorIds,
  validatorIndex,
} from "./chain-config.ts";
import { type BlockTimeline, NO_TIMELINE } from "./block-timeline.ts";
import { Committer } from "./committer.ts";
import type { ControllerClient } from "./controller.ts";
import { describeConfChange, nextConfChange, removesNode } from "./membership.ts";
import { type Cancel, type Clock, type Random, randomInt, sleep } from "./ports.ts";
import { Proposer } from "./proposer.ts";
import type { NodeTestBug } from "./test-bugs.ts";
import { errorMessage } from "../util/errors.ts";

/** The Rust service's bootstrap snapshot for a fresh validator store: index 5, term 5, all validators voting. */
export const BOOTSTRAP_INDEX = 5;
export const BOOTSTRAP_TERM = 5;
/**
 * Applied entries kept in the log when it is compacted (every 64 applies, so 200 to 263 are kept).
 * They serve two needs: a lagging follower catches up from the log instead of a snapshot, and a
 * controller that lost blocks in a power loss (no WAL: in practice the one block it was finalizing)
 * gets up to ~200 of them back from this node, byte for byte. Blocks older than that reach it
 * through its block sync from peers.
 */
export const LOG_KEEP_TAIL = 200;
/**
 * Where a late bootstrap starts (see RaftPeer.bootstrapLate): far above the genesis bootstrap and
 * growing with the chain height, so a later one always outranks an earlier history in index and
 * term (up to 2^20 entries and 2^12 elections per block of height apart), and below 2^52.
 */
export function lateBootstrapPoint(height: bigint): { index: number; term: number } {
  const h = Number(height > 1n << 30n ? 1n << 30n : height);
  return { index: 2 ** 40 + h * 2 ** 20, term: 2 ** 32 + h * 2 ** 12 };
}

/**
 * How long an empty store at a non-zero height waits without word from a leader before it
 * bootstraps from the validator list (twice that on all but the first listed validator): the
 * longer of 3 election timeouts and 30 s. Long enough for the members of the real configuration,
 * restarted at the same time, to campaign first and ask for its vote, and for one that is merely
 * down (a reboot) to come back: a store bootstrapped late starts a history without the blocks
 * before it, so a block every controller then loses could not be committed again.
 */
export const FRESH_HOLD_OFF_ELECTIONS = 3;
export const FRESH_HOLD_OFF_MIN_MS = 30_000;
/** How long a leader's new commit index may wait for an append to carry it (see announceCommitSoon). */
export const COMMIT_ANNOUNCE_MS = 20;

export interface PeerOutlet {
  send(msg: Message): SendOutcome;
  /** Whether a message to `id` has somewhere to go (its network origin is known). */
  hasRoute(id: NodeId): boolean;
}

/** Why an inbound raft message was not stepped (a label of consensus_peer_msgs_dropped_total). */
export type InboundDropReason = "from_self" | "not_member" | "unexpected_type" | "zero_term";

/**
 * The message types peers send each other. Local types never cross the wire, and our peers never
 * forward proposals, transfer requests or read-index traffic (only a leader proposes and transfers,
 * read-index is unused; the Rust service is the same): from outside, those could only inject
 * entries or depose a leader.
 */
const VOTE_REQUESTS: ReadonlySet<MessageType> = new Set([MessageType.MsgRequestVote, MessageType.MsgRequestPreVote]);
const LEADER_MESSAGES: ReadonlySet<MessageType> = new Set([MessageType.MsgAppend, MessageType.MsgHeartbeat, MessageType.MsgSnapshot]);

const WIRE_TYPES: ReadonlySet<MessageType> = new Set([
  MessageType.MsgAppend,
  MessageType.MsgAppendResponse,
  MessageType.MsgRequestVote,
  MessageType.MsgRequestVoteResponse,
  MessageType.MsgRequestPreVote,
  MessageType.MsgRequestPreVoteResponse,
  MessageType.MsgSnapshot,
  MessageType.MsgHeartbeat,
  MessageType.MsgHeartbeatResponse,
  MessageType.MsgTimeoutNow,
]);

/** Events for metrics and tests. */
export interface PeerEvents {
  inboundDropped?(reason: InboundDropReason): void;
  roleChanged?(role: StateRole, leader: NodeId, term: number): void;
  blockCommitted?(height: bigint, waitedMs: number): void;
  /** A block its controller had lost was committed again. */
  blockRecommitted?(height: bigint): void;
  proposed?(height: bigint): void;
  leaderTransfer?(to: NodeId, reason: string): void;
}

export interface RaftPeerDeps {
  readonly settings: Config;
  readonly selfId: NodeId;
  readonly log: ConsolaInstance;
  readonly storage: NodeStorage;
  readonly outlet: PeerOutlet;
  readonly controller: ControllerClient;
  readonly clock: Clock;
  readonly random: Random;
  readonly events?: PeerEvents;
  readonly testBugs?: ReadonlySet<NodeTestBug>;
  /** Test-only: known defects of the Raft core (RaftConfig.testBugs). */
  readonly raftTestBugs?: ReadonlySet<RaftTestBug>;
  /** Records each block's steps (off by default). */
  readonly timeline?: BlockTimeline;
  /** The node cannot continue (storage failure): the service must stop. */
  readonly fatal: (err: unknown) => void;
}

export interface PeerStatus {
  term: number;
  role: StateRole;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  height: bigint;
  /** Block interval of the applied chain configuration, seconds. */
  blockInterval: number;
  voters: NodeId[];
  /** The outgoing half of a joint configuration (empty otherwise). */
  votersOutgoing: NodeId[];
  learners: NodeId[];
  /** On the leader: every other member's replication progress and how long ago it last spoke to us. */
  peers?: PeerView[];
  /** Committed entries waiting for the controller (in memory or still in storage). */
  committerBacklog: number;
  /** Of those, entries held in memory (bounded). */
  committerQueued: number;
  /** How long this node has known no leader (0 while it knows one), ms. */
  leaderlessMs: number;
  /** The last block this peer committed to the controller, if any. */
  lastBlock?: { height: bigint; commitLatencyMs: number; agoMs: number };
  /** Since this peer started, ms. */
  runningMs: number;
}

export interface PeerView extends PeerProgress {
  /** Since the last Raft message from it that we accepted, ms; undefined if none since this peer started. */
  heardAgoMs?: number;
}

function sameValidators(a: ChainConfig, b: ChainConfig): boolean {
  const x = validatorIds(a);
  const y = validatorIds(b);
  return x.length === y.length && x.every((id, i) => id === y[i]);
}

function raftLogger(log: ConsolaInstance, now: () => number): RaftLogger {
  const f = (fields?: Record<string, unknown>) => (fields ? [fields] : []);
  // Warnings and errors of the core can be triggered by peers' messages: rate-limit them.
  const limited = new LogLimiter(log, now);
  return {
    debug: (m, x) => log.debug(m, ...f(x)),
    info: (m, x) => log.info(m, ...f(x)),
    warn: (m, x) => limited.warn(m, x),
    error: (m, x) => limited.error(m, x),
  };
}

export class RaftPeer {
  private raw: RawNode;

  /** The Raft node (replaced once if an empty store bootstraps late, see bootstrapLate). */
  get node(): RawNode {
    return this.raw;
  }
  private chain: ChainConfig;
  private readonly committer: Committer;
  private readonly proposer: Proposer;
  private readonly log: ConsolaInstance;
  private stopTicker: Cancel | undefined;
  private scheduled = false;
  private stopped = false;
  private role: StateRole = StateRole.Follower;
  private leader: NodeId = NONE;
  /** Reports that may only be stepped after a Ready cycle. */
  private unreachable = new Set<NodeId>();
  private snapshotsSent: NodeId[] = [];
  private roleWaiters: Array<() => void> = [];
  /** When a leader that must leave may hand over again (the previous hand-over may have been lost). */
  private nextRemovalHandOverAt = 0;
  private readonly limitedLog: LogLimiter;
  /** Ticks an empty store at a running chain waits without word from a leader before it bootstraps. */
  private bootstrapWaitTicks = 0;
  /** Ticks left of that wait (0: no wait, it has a configuration). Word from a leader restarts it. */
  private bootstrapAfterTicks = 0;
  /** The last leader message (append, heartbeat, snapshot): from whom and when. */
  private leaderContact: { from: NodeId; at: number } | undefined;
  private readonly now: () => number;
  private appliedSinceCompaction = 0;
  private validatorsOf: ChainConfig | undefined;
  private validatorSet = new Set<NodeId>();
  private readonly inboundWarn: LogLimiter;
  private readonly timeline: BlockTimeline;
  private controllerBehindAtStart: bigint | undefined;
  /** The highest commit index sent to each peer in an append or heartbeat (leader). */
  private readonly commitSent = new Map<NodeId, number>();
  private announceTimer: Cancel | undefined;
  /** The commit index last broadcast by itself (each is broadcast at most once). */
  private commitAnnounced = 0;
  /** This node is to start the chain's first election (see maybeFirstCampaign). */
  private firstCampaignPending = false;
  /** When each member last sent us a message that was stepped (status only). */
  private readonly heardAt = new Map<NodeId, number>();
  private readonly startedAt: number;
  /** Since when no leader is known; undefined while one is. */
  private leaderlessSince: number | undefined;
  private lastBlock: { height: bigint; commitLatencyMs: number; at: number } | undefined;

  constructor(
    private readonly deps: RaftPeerDeps,
    startConfig: ChainConfig,
  ) {
    const { storage, settings, selfId } = deps;
    this.log = deps.log;
    this.now = () => deps.clock.now();
    this.timeline = deps.timeline ?? NO_TIMELINE;
    this.limitedLog = new LogLimiter(this.log, this.now);
    this.inboundWarn = new LogLimiter(this.log, this.now);
    this.startedAt = this.leaderlessSince = this.now();
    const stored = tryDecodeChainConfig(storage.chainConfigBytes());
    if (stored === undefined) throw new Error(`${storage.file}: stored chain configuration cannot be decoded`);
    this.chain = stored;

    // A validator's empty store at genesis starts from the Rust service's bootstrap snapshot
    // (index 5, term 5, every validator a voter), so mixed Rust/TS chains start the same way; the
    // first listed validator campaigns first (see maybeFirstCampaign).
    const position = validatorIndex(startConfig, settings.nodeAddress);
    let wantsCampaign = false;
    const initial = storage.initialState();
    const noConfiguration = initial.confState.voters.length === 0 && initial.confState.learners.length === 0;
    if (position >= 0 && noConfiguration && startConfig.height === 0n && initial.hardState.term === 0) {
      this.bootstrap(BOOTSTRAP_INDEX, BOOTSTRAP_TERM, validatorIds(startConfig));
      wantsCampaign = position === 0;
    } else if (position >= 0 && noConfiguration) {
      this.awaitChainState(startConfig, position);
    } else if (position < 0) {
      this.log.info("incoming config doesn't contain this node, will exit for next one", describeChainConfig(startConfig));
    }
    // A controller below the recorded height lost blocks (no WAL): they are committed again once
    // the peer runs.
    if (startConfig.height < this.chain.height) this.controllerBehindAtStart = startConfig.height;
    this.adoptConfig(startConfig, "start");
    this.raw = this.newRawNode();
    this.committer = new Committer(
      {
        log: this.log,
        controller: deps.controller,
        clock: deps.clock,
        random: deps.random,
        chainConfig: () => this.chain,
        applied: (index, config) => this.applied(index, config),
        appliedConfChange: (index, cc) => this.appliedConfChange(index, cc),
        readEntries: (lo, hi) => storage.entries(lo, hi),
        appliedRange: () => ({ first: storage.firstIndex(), applied: storage.appliedIndex() }),
        keptEntry: () => storage.recommitEntry?.(),
        blockRecommitted: (height) => deps.events?.blockRecommitted?.(height),
        testBugs: deps.testBugs,
        timeline: this.timeline,
        blockCommitted: (height, waited) => {
          this.lastBlock = { height, commitLatencyMs: waited, at: this.now() };
          this.proposer.blockApplied(height);
          deps.events?.blockCommitted?.(height, waited);
        },
        fatal: (err) => this.fail(err),
      },
      storage.appliedIndex(),
    );
    this.proposer = new Proposer({
      log: this.log,
      controller: deps.controller,
      chainConfig: () => this.chain,
      canPropose: () => this.canProposeBlock(),
      propose: (p) => this.proposeBlock(p),
      transferLeadership: (reason) => this.transferLeadership(reason),
      controllerAt: (height) => this.committer.controllerAt(height, "proposal"),
      testBugs: deps.testBugs,
      timeline: this.timeline,
      now: this.now,
    });
    this.log.info("raft start", { peer_id: selfId, applied: storage.appliedIndex(), ...describeChainConfig(this.chain) });
    // A new chain's first validator campaigns once its peers can be reached: their network origins
    // are learned from their probes, and a campaign sent before that is lost, leaving the chain
    // without a leader for a whole election timeout (10-20 s with the default timers).
    this.firstCampaignPending = wantsCampaign;
  }

  private newRawNode(): RawNode {
    const { storage, settings, selfId } = this.deps;
    return new RawNode(
      {
        id: selfId,
        electionTick: settings.electionTick,
        heartbeatTick: settings.heartbeatTick,
        checkQuorum: settings.checkQuorum,
        preVote: settings.preVote,
        applied: storage.appliedIndex(),
        maxSizePerMsg: 1 << 20,
        maxInflightMsgs: 256,
        maxUncommittedSize: 64 << 20,
        // Only the leader proposes; peers drop forwarded proposals (see receive()).
        disableProposalForwarding: true,
        // A new commit index rides on the next append; announced by itself only if none comes soon
        // (see announceCommitSoon): at block_interval 0 that saves an append and its ack per follower.
        skipBcastCommit: true,
        // A follower that is being sent appends needs no heartbeat besides.
        skipHeartbeatsWhileAppending: true,
        random: (n) => randomInt(this.deps.random, n),
        logger: raftLogger(this.log, this.now),
        testBugs: this.deps.raftTestBugs,
      },
      storage,
    );
  }

  /** Writes a bootstrap snapshot with `voters`, keeping the adopted configuration. */
  private bootstrap(index: number, term: number, voters: readonly NodeId[]): void {
    const { storage } = this.deps;
    storage.persist({ snapshot: newSnapshot(index, term, newConfState({ voters: [...voters] })) });
    if (this.chain.validators.length > 0) storage.setChainConfigBytes(encodeChainConfig(this.chain));
    this.log.info("bootstrapped raft storage", { index, term, voters: voters.length });
  }

  /**
   * Nobody reached this empty store: start the chain's Raft state from the validator list. Every
   * wiped store at one height writes the same snapshot, so they form one cluster. Its index and
   * term come from the chain height and lie above anything an earlier history can have reached:
   * a node that kept such a history (it was down meanwhile) and meets this cluster later is
   * outvoted and caught up by snapshot, instead of holding the same indexes with other entries.
   */
  private bootstrapLate(): void {
    if (this.hasConfiguration()) return; // a snapshot came meanwhile
    this.log.info("no leader heard from; starting the chain's raft state from the validator list", { height: this.chain.height });
    const { index, term } = lateBootstrapPoint(this.chain.height);
    this.bootstrap(index, term, validatorIds(this.chain));
    this.raw = this.newRawNode();
    this.committer.resetTo(index);
    this.schedule();
  }

  start(): void {
    this.stopTicker = this.deps.clock.every(this.deps.settings.tickIntervalInMillis, () => this.onTick());
    if (this.controllerBehindAtStart !== undefined) this.committer.controllerAt(this.controllerBehindAtStart, "start");
    if (this.firstCampaignPending) this.maybeFirstCampaign();
    this.schedule();
  }

  // ---------------------------------------------------------------- inputs

  /** An inbound raft message, decoded and checked at the peer edge (parseEnvelope). Never throws. */
  receive(m: Message): void {
    if (this.stopped) return;
    if (!WIRE_TYPES.has(m.msgType)) return this.dropInbound("unexpected_type", m);
    // Raft takes term 0 for a local message and skips its term checks: a candidate would adopt
    // term 0 from such a heartbeat. Peers always send their term (at least the bootstrap term 5).
    if (m.term === 0) return this.dropInbound("zero_term", m);
    if (m.from === this.deps.selfId) return this.dropInbound("from_self", m);
    // A node with nothing but the bootstrap snapshot (joining a running chain, or replacing a
    // validator) knows neither the real configuration nor its members, some of which may be
    // validators on their way out: it must take their appends and answer their vote requests
    // (they may need its vote), or it would elect itself into a second history.
    if (!this.isMember(m.from) && (!this.takesAnyone() || (VOTE_REQUESTS.has(m.msgType) && this.leaseHeld()))) {
      return this.dropInbound("not_member", m);
    }
    this.heardAt.set(m.from, this.now());
    // A deposed leader's lower-term append must not replace the live leader's contact.
    if (LEADER_MESSAGES.has(m.msgType) && m.term >= this.node.raft.term) this.leaderContact = { from: m.from, at: this.now() };
    try {
      if (m.msgType === MessageType.MsgAppend && m.entries.length > 0) this.timeline.atEntries(m.entries, "append_received");
      else if (m.msgType === MessageType.MsgAppendResponse && !m.reject) this.timeline.atIndexUpTo(m.index, "ack_received");
      this.node.step(m);
    } catch (e) {
      if (e instanceof RaftError) this.log.debug("raft message not stepped", { from: m.from, reason: e.kind });
      else this.log.error("step raft msg failed", { from: m.from, type: MessageType[m.msgType], error: errorMessage(e) });
    }
    this.schedule();
  }

  /**
   * The leader it follows sent an append, heartbeat or snapshot within an election timeout. A node
   * that takes messages from anyone still refuses strangers' vote requests then: they come from
   * removed nodes with stale configurations (the leader it follows is the live cluster), and
   * granting them would move its term past the leader's and cut it off. Only leader messages count:
   * a former leader's own vote requests must not keep its lease alive, or it could never win the
   * vote it needs to hand the chain over.
   */
  private leaseHeld(): boolean {
    const c = this.leaderContact;
    if (this.leader === NONE || c === undefined || c.from !== this.leader) return false;
    return this.now() - c.at < this.deps.settings.electionTick * this.deps.settings.tickIntervalInMillis;
  }

  /**
   * Whether this node takes Raft messages from any node: at a running chain, while its own
   * configuration does not include it (an empty store waiting for the leader's snapshot, or one
   * left from a configuration it was removed from, now a validator again). Its view of who belongs
   * is then not the chain's: the real configuration may hold validators on their way out, whose
   * appends it must take and who may need its vote. A member of its own configuration has a quorum
   * to protect and keeps the filter.
   */
  private takesAnyone(): boolean {
    if (this.chain.height === 0n) return false;
    return !this.node.inConfiguration(this.deps.selfId);
  }

  /**
   * Whether `id` may talk Raft to us: a member of the configuration (both halves of a joint one,
   * learners included) or of the controller's validator list, which runs ahead of the configuration
   * on a node that is catching up (its new leader may not be in its configuration yet).
   */
  isMember(id: NodeId): boolean {
    return this.node.inConfiguration(id) || this.validators().has(id);
  }

  /** The peer ids of the adopted configuration's validators (cached per configuration). */
  private validators(): ReadonlySet<NodeId> {
    if (this.chain !== this.validatorsOf) {
      this.validatorsOf = this.chain;
      this.validatorSet = new Set(validatorIds(this.chain));
    }
    return this.validatorSet;
  }

  private dropInbound(reason: InboundDropReason, m: Message): void {
    this.deps.events?.inboundDropped?.(reason);
    this.inboundWarn.warn("dropped raft message", { reason, from: peerIdHex(m.from), type: MessageType[m.msgType] ?? m.msgType, term: m.term });
  }

  /** A newer configuration from the controller (Reconfigure or ping) while running. */
  offerConfig(c: ChainConfig): void {
    if (this.stopped) return;
    if (c.height < this.chain.height) this.committer.controllerAt(c.height, "reconfigure");
    else if (this.adoptConfig(c, "reconfigure")) {
      // A node with an empty store that started outside the validator list may be a validator now.
      if (this.bootstrapAfterTicks === 0 && c.height > 0n && !this.hasConfiguration()) {
        const position = validatorIndex(c, this.deps.settings.nodeAddress);
        if (position >= 0) this.awaitChainState(c, position);
      }
      this.schedule();
    }
  }

  /**
   * An empty store at a running chain (a new validator, a wiped node) has no configuration of its
   * own: the validator list is not the chain's Raft configuration, and a store bootstrapped from it
   * would hold a different configuration at the same index and term as everyone else's, a second
   * history in the making. It waits, taking Raft messages from any node (see takesAnyone), for the
   * chain's leader to send it the state (a snapshot). Only if no leader reaches it for a while
   * (every store was wiped, or the leader left before its snapshot came) does it bootstrap from the
   * validator list and stand for election, the first listed validator first (see bootstrapLate).
   */
  private awaitChainState(c: ChainConfig, position: number): void {
    const { electionTick, tickIntervalInMillis } = this.deps.settings;
    const ticks = Math.max(FRESH_HOLD_OFF_ELECTIONS * electionTick, Math.ceil(FRESH_HOLD_OFF_MIN_MS / tickIntervalInMillis));
    this.bootstrapWaitTicks = position === 0 ? ticks : 2 * ticks;
    this.bootstrapAfterTicks = this.bootstrapWaitTicks;
    this.log.info("empty raft storage at a running chain: waiting for its leader to send the raft state", {
      height: c.height,
      wait_ticks: this.bootstrapAfterTicks,
    });
  }

  private hasConfiguration(): boolean {
    const cs = this.deps.storage.initialState().confState;
    return cs.voters.length > 0 || cs.learners.length > 0;
  }

  // ---------------------------------------------------------------- status

  status(): PeerStatus {
    const st = this.node.status();
    const now = this.now();
    const heard = (id: NodeId) => {
      const at = this.heardAt.get(id);
      return at === undefined ? undefined : now - at;
    };
    const last = this.lastBlock;
    return {
      term: st.hardState.term,
      role: st.softState.raftState,
      leader: st.softState.leaderId,
      commit: st.hardState.commit,
      applied: this.deps.storage.appliedIndex(),
      lastIndex: st.lastIndex,
      height: this.chain.height,
      blockInterval: this.chain.blockInterval,
      voters: st.confState.voters,
      votersOutgoing: st.confState.votersOutgoing,
      learners: st.confState.learners,
      peers: st.peers?.map((p) => ({ ...p, heardAgoMs: heard(p.id) })),
      committerBacklog: this.committer.backlog,
      committerQueued: this.committer.queued,
      leaderlessMs: this.leaderlessSince === undefined ? 0 : now - this.leaderlessSince,
      lastBlock: last && { height: last.height, commitLatencyMs: last.commitLatencyMs, agoMs: now - last.at },
      runningMs: now - this.startedAt,
    };
  }

  /**
   * Milliseconds since a validator's message was last taken (since the start when none was). Only
   * validators count: other removed nodes with stale configurations keep talking to each other.
   */
  msSinceHeardFromValidators(): number {
    let last = this.startedAt;
    for (const id of validatorIds(this.chain)) {
      const at = this.heardAt.get(id);
      if (at !== undefined && at > last) last = at;
    }
    return this.now() - last;
  }

  chainConfig(): ChainConfig {
    return this.chain;
  }

  isLeader(): boolean {
    return this.role === StateRole.Leader;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Stops the peer. A leader first hands leadership to an up-to-date follower and waits (bounded)
   * for someone else to lead, so the chain does not wait out an election timeout.
   */
  async stop(handOffMs = 0): Promise<void> {
    if (this.stopped) return;
    if (handOffMs > 0 && this.isLeader()) await this.handOff(handOffMs);
    this.stopped = true;
    this.stopTicker?.();
    this.proposer.stop();
    this.committer.stop();
    for (const w of this.roleWaiters) w();
    this.roleWaiters = [];
    this.log.info("raft exit");
  }

  private async handOff(timeoutMs: number): Promise<void> {
    const target = this.pickTransferee(false) ?? this.bestFollower();
    if (target === undefined) {
      this.log.info("no follower to hand leadership to");
      return;
    }
    this.log.info("handing leadership over before stopping", { to: peerIdHex(target) });
    this.deps.events?.leaderTransfer?.(target, "shutdown");
    this.proposer.stop();
    this.node.transferLeader(target);
    this.schedule();
    const deadline = this.now() + timeoutMs;
    while (this.isLeader() && this.now() < deadline) {
      const roleChanged = new AbortController();
      this.roleWaiters.push(() => roleChanged.abort());
      await sleep(this.deps.clock, Math.max(1, deadline - this.now()), roleChanged.signal).catch(() => {});
    }
    this.log.info(this.isLeader() ? "leadership hand-off timed out" : "leadership handed over", { leader: peerIdHex(this.leader) });
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopTicker?.();
    this.proposer.stop();
    this.committer.stop();
    this.deps.fatal(err);
  }

  // ---------------------------------------------------------------- the loop

  private onTick(): void {
    if (this.stopped) return;
    try {
      if (this.firstCampaignPending) this.maybeFirstCampaign();
      if (this.bootstrapAfterTicks > 0) {
        // A leader that once reached this store may vanish before its snapshot does (a removed
        // leader stopped for good): the wait starts again on each word from a leader, not never.
        // Not "never while the leader heard is a validator": after every store is wiped, a stale
        // heartbeat of a leader from before the wipe, delivered late, would make every node wait
        // for a leader that no longer holds any state (seen end to end).
        if (this.leaseHeld()) this.bootstrapAfterTicks = this.bootstrapWaitTicks;
        else if (--this.bootstrapAfterTicks === 0) this.bootstrapLate();
      }
      this.node.tick();
      this.proposer.poll();
      this.maybeProposeConfChange();
    } catch (e) {
      // A late bootstrap writes: a storage failure stops the node, as everywhere else.
      return this.fail(e);
    }
    this.schedule();
  }

  /**
   * The first campaign of a new chain, once routes reach a quorum of the voters. Given up as soon
   * as anyone else campaigned or leads (the term moved); if no route ever appears, this node's own
   * election timeout starts an ordinary election.
   */
  private maybeFirstCampaign(): void {
    const st = this.node.basicStatus();
    if (st.term !== BOOTSTRAP_TERM || st.leader !== NONE || st.role !== StateRole.Follower) {
      this.firstCampaignPending = false;
      return;
    }
    const voters = this.node.confState().voters;
    const reachable = voters.filter((id) => id === this.deps.selfId || this.deps.outlet.hasRoute(id)).length;
    if (reachable < Math.floor(voters.length / 2) + 1) return;
    this.firstCampaignPending = false;
    this.log.info("start campaign ...", { voters: voters.length, reachable });
    this.node.campaign();
    this.schedule();
  }

  /** Coalesces work: many inbound messages are stepped before one Ready (one fsync). */
  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.deps.clock.defer(() => {
      this.scheduled = false;
      this.processReady();
    });
  }

  private processReady(): void {
    if (this.stopped) return;
    try {
      while (this.node.hasReady()) {
        const rd = this.node.ready();
        this.handleReady(rd);
        this.flushReports();
      }
      if (this.role === StateRole.Leader) this.announceCommitSoon();
    } catch (e) {
      this.fail(e);
    }
  }

  private handleReady(rd: Ready): void {
    const { storage } = this.deps;
    // 1. A leader's messages may leave before its own write (Raft thesis §10.2.1).
    this.sendAll(rd.messages);
    // 2. Persist entries, hard state and snapshot in one transaction.
    // 3. Votes and append acks only now.
    if (this.deps.testBugs?.has("ack-before-fsync")) {
      this.sendAll(rd.persistedMessages);
      storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    } else {
      storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
      this.timeline.atEntries(rd.entries, "persisted");
      this.sendAll(rd.persistedMessages);
    }
    if (rd.entries.length > 0) this.committer.appended(rd.entries);
    const light = this.node.advanceAppend(rd);
    this.sendAll(light.messages);
    // 4. Only after advanceAppend: what follows can append to the Raft log (a new leader's conf
    // change, applying entries synchronously, auto-leave of a joint config), and RawNode takes no
    // new entries between ready() and advanceAppend().
    if (rd.snapshot && rd.snapshot.metadata.index > 0) {
      this.snapshotInstalled(rd.snapshot);
      this.node.advanceApplyTo(rd.snapshot.metadata.index);
    }
    if (rd.softState) this.roleChange(rd.softState.raftState, rd.softState.leaderId);
    // Committed entries go to the commit pipeline (controller calls happen there).
    this.timeline.atEntries(rd.committedEntries, "committed");
    this.timeline.atEntries(light.committedEntries, "committed");
    this.committer.enqueue(rd.committedEntries);
    this.committer.enqueue(light.committedEntries);
  }

  private sendAll(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.msgType === MessageType.MsgAppend || m.msgType === MessageType.MsgHeartbeat) this.commitSent.set(m.to, Math.max(this.commitSent.get(m.to) ?? 0, m.commit));
      if (m.msgType === MessageType.MsgAppend && m.entries.length > 0) this.timeline.atEntries(m.entries, "append_sent");
      else if (m.msgType === MessageType.MsgAppendResponse && !m.reject) this.timeline.atIndexUpTo(m.index, "ack_sent");
      const outcome = this.deps.outlet.send(m);
      if (outcome !== "queued") {
        this.unreachable.add(m.to);
        if (m.msgType === MessageType.MsgSnapshot) this.log.warn("snapshot not sent", { to: peerIdHex(m.to), outcome });
      } else if (m.msgType === MessageType.MsgSnapshot) {
        this.snapshotsSent.push(m.to);
      }
    }
  }

  /**
   * A leader's new commit index. At block_interval 0 the next block follows within milliseconds
   * and its append carries the commit index to the followers; only if none has within
   * COMMIT_ANNOUNCE_MS is it sent by itself (raft-rs sends it at once, costing an append and an ack
   * per follower per block). With a block interval it is sent at once.
   */
  private announceCommitSoon(): void {
    const { commit } = this.node.basicStatus();
    // Once per commit index: a follower that the broadcast cannot reach (paused, probing, no
    // route) learns it from its next append or heartbeat, as in raft-rs.
    if (this.announceTimer !== undefined || commit <= this.commitAnnounced || !this.commitUnannounced(commit)) return;
    if (this.chain.blockInterval > 0) {
      // No block follows for a second or more: announce it now, as raft-rs does.
      this.announceCommit(commit);
      return;
    }
    this.announceTimer = this.deps.clock.after(COMMIT_ANNOUNCE_MS, () => {
      this.announceTimer = undefined;
      if (this.stopped || this.role !== StateRole.Leader) return;
      const now = this.node.basicStatus().commit;
      if (now > this.commitAnnounced && this.commitUnannounced(now)) this.announceCommit(now);
    });
  }

  private announceCommit(commit: number): void {
    this.commitAnnounced = commit;
    this.node.broadcastCommit();
    this.schedule();
  }

  /** Some voter has not been sent commit index `commit` yet. */
  private commitUnannounced(commit: number): boolean {
    for (const id of this.node.confState().voters) if (id !== this.deps.selfId && (this.commitSent.get(id) ?? 0) < commit) return true;
    return false;
  }

  /** Unreachable peers and snapshot results are stepped after the Ready cycle, never inside it. */
  private flushReports(): void {
    if (this.unreachable.size > 0) {
      const ids = [...this.unreachable];
      this.unreachable.clear();
      for (const id of ids) {
        this.node.reportUnreachable(id);
        if (this.node.progressState(id) === ProgressState.Snapshot) this.node.reportSnapshot(id, SnapshotStatus.Failure);
      }
    }
    if (this.snapshotsSent.length > 0) {
      // The network gives no delivery report: count a queued snapshot as sent. If it was lost, the
      // follower's next rejection makes the leader send another one.
      const ids = this.snapshotsSent;
      this.snapshotsSent = [];
      for (const id of ids) this.node.reportSnapshot(id, SnapshotStatus.Finish);
    }
  }

  private snapshotInstalled(snap: Snapshot): void {
    const c = tryDecodeChainConfig(snap.data);
    if (c !== undefined) this.chain = c;
    this.bootstrapAfterTicks = 0; // it has the chain's configuration now
    this.committer.resetTo(snap.metadata.index);
    this.log.info("apply_snapshot", { index: snap.metadata.index, term: snap.metadata.term, ...describeChainConfig(this.chain) });
  }

  private roleChange(role: StateRole, leader: NodeId): void {
    const wasLeader = this.role === StateRole.Leader;
    this.role = role;
    this.leader = leader;
    if (leader === NONE) this.leaderlessSince ??= this.now();
    else this.leaderlessSince = undefined;
    const term = this.node.basicStatus().term;
    this.deps.events?.roleChanged?.(role, leader, term);
    if (role === StateRole.Leader && !wasLeader) {
      this.log.info("became leader", { term });
      this.nextRemovalHandOverAt = 0;
      this.proposer.start();
      this.maybeProposeConfChange();
    } else if (role !== StateRole.Leader && wasLeader) {
      this.log.info("no longer leader", { term, leader: peerIdHex(leader) });
      this.proposer.stop();
    }
    for (const w of this.roleWaiters) w();
    this.roleWaiters = [];
  }

  // ---------------------------------------------------------------- applying

  private applied(index: number, config?: ChainConfig): void {
    const { storage } = this.deps;
    // A configuration adopted meanwhile (Reconfigure) may be newer than the one this block returned.
    if (config !== undefined && config.height >= this.chain.height) {
      storage.apply(index, { chainConfigBytes: encodeChainConfig(config) });
      if (!sameValidators(this.chain, config)) this.log.info("validators changed", describeChainConfig(config));
      this.chain = config;
    } else {
      storage.apply(index);
    }
    this.node.advanceApplyTo(index);
    this.maybeCompact();
    this.proposer.poll();
    this.maybeProposeConfChange();
    this.schedule();
  }

  private appliedConfChange(index: number, cc: ConfChangeV2 | undefined): void {
    let cs: ConfState | undefined;
    if (cc !== undefined) {
      try {
        cs = this.node.applyConfChange(cc);
        this.log.info("apply config change", { index, change: describeConfChange(cc), voters: cs.voters.length, joint: cs.votersOutgoing.length > 0 });
      } catch (e) {
        // Every node refuses the same invalid change the same way.
        this.log.error("invalid conf change not applied", { index, error: errorMessage(e) });
      }
    }
    this.deps.storage.apply(index, cs ? { confState: cs } : {});
    this.node.advanceApplyTo(index);
    this.maybeProposeConfChange();
    this.schedule();
  }

  private maybeCompact(): void {
    if (++this.appliedSinceCompaction < 64) return;
    this.appliedSinceCompaction = 0;
    this.deps.storage.compact(LOG_KEEP_TAIL);
  }

  /** Adopts a configuration from the controller if it is newer than the applied one. */
  private adoptConfig(c: ChainConfig, source: string): boolean {
    if (c.height < this.chain.height) {
      if (source === "start") this.log.warn("block height in initial reconfigure is lower than recorded; skip it", { reconfigure: c.height, recorded: this.chain.height });
      return false;
    }
    if (c.height === this.chain.height && this.chain.validators.length > 0) return false;
    this.chain = c;
    this.deps.storage.setChainConfigBytes(encodeChainConfig(c));
    this.log.info("reconfigure ack", { source, ...describeChainConfig(c) });
    return true;
  }

  // ---------------------------------------------------------------- leader duties

  private canProposeBlock(): boolean {
    // Blocks wait while membership changes: the validator set of a block must be settled.
    return this.isLeader() && !this.committer.recommitting && !this.node.basicStatus().pendingConfChange && this.wantedConfChange() === undefined;
  }

  private proposeBlock(p: Proposal): boolean {
    try {
      this.node.propose(new Uint8Array(0), encodeProposal(p));
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.log.warn("proposal dropped by raft", { height: p.height, reason: e.message });
      return false;
    }
    this.deps.events?.proposed?.(p.height);
    this.schedule();
    return true;
  }

  private wantedConfChange(): ConfChangeV2 | undefined {
    const cs = this.node.confState();
    if (cs.votersOutgoing.length > 0) return undefined; // leaving the joint config happens by itself
    return nextConfChange(cs, validatorIds(this.chain));
  }

  private maybeProposeConfChange(): void {
    // Raft's pending-conf index covers a change proposed and not yet applied (also one a new leader may have inherited).
    if (!this.isLeader() || this.node.basicStatus().pendingConfChange) return;
    const cc = this.wantedConfChange();
    // A leader whose configuration no longer holds it (a removal it inherited from the previous
    // leader) can propose neither blocks nor configuration changes: Raft drops them.
    const outside = !this.node.inConfiguration(this.deps.selfId);
    if (outside || (cc !== undefined && removesNode(cc, this.deps.selfId))) {
      // A leader never removes itself: an up-to-date follower takes over and removes it. The
      // network may lose the one MsgTimeoutNow, and Raft then gives the hand-over up after an
      // election timeout: try again whenever none is under way, at most once per election timeout.
      if (this.node.basicStatus().leadTransferee !== undefined || this.now() < this.nextRemovalHandOverAt) return;
      if (this.deps.testBugs?.has("no-handover-retry") && this.nextRemovalHandOverAt > 0) return;
      if (this.transferLeadership(outside ? "leader is outside its raft configuration" : "leader is removed from validators")) {
        this.nextRemovalHandOverAt = this.now() + this.deps.settings.electionTick * this.deps.settings.tickIntervalInMillis;
      }
      return;
    }
    if (cc === undefined) return;
    try {
      this.node.proposeConfChange(new Uint8Array(0), cc);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.log.warn("conf change dropped by raft", { change: describeConfChange(cc), reason: e.message });
      return;
    }
    this.log.info("pending conf change proposed", { change: describeConfChange(cc) });
    this.schedule();
  }

  /**
   * No voter is a validator (a complete replacement: the next leader adds the validators before it
   * removes anyone), or this leader cannot act on its configuration. Not when this leader is the
   * one validator among the voters: a non-validator taking over would only hand back to it.
   */
  private noValidatorToTakeOver(): boolean {
    if (!this.node.inConfiguration(this.deps.selfId)) return true;
    const validators = this.validators();
    return !this.node.confState().voters.some((id) => validators.has(id));
  }

  /** Up-to-date followers: recently active, replicating, matched the last index. */
  private pickTransferee(requireValidator: boolean): NodeId | undefined {
    const { lastIndex, peers = [] } = this.node.status();
    const validators = this.validators();
    const candidates: NodeId[] = [];
    for (const pr of peers) {
      if (pr.learner || (requireValidator && !validators.has(pr.id))) continue;
      if (pr.recentActive && pr.state === ProgressState.Replicate && pr.match === lastIndex) candidates.push(pr.id);
    }
    if (candidates.length === 0) return undefined;
    return candidates[randomInt(this.deps.random, candidates.length)];
  }

  /** The voter with the highest match index (it catches up, then gets MsgTimeoutNow). */
  private bestFollower(): NodeId | undefined {
    let best: NodeId | undefined;
    let bestMatch = -1;
    for (const pr of this.node.status().peers ?? []) {
      if (!pr.learner && pr.match > bestMatch) {
        best = pr.id;
        bestMatch = pr.match;
      }
    }
    return best;
  }

  private transferLeadership(reason: string): boolean {
    if (!this.isLeader()) return false;
    if (this.node.basicStatus().leadTransferee !== undefined) return true; // one is under way
    if (this.node.confState().votersOutgoing.length > 0) {
      this.limitedLog.debug("no leader transfer during a joint configuration", { reason });
      return false;
    }
    // A validator takes over if one can. If none can (no voter is a validator, or this leader is
    // outside its own configuration and so can change nothing), any up-to-date voter: it adds the
    // validators, then hands over to one of them in turn.
    const target = this.pickTransferee(true) ?? (this.noValidatorToTakeOver() ? this.pickTransferee(false) : undefined);
    if (target === undefined) {
      // Retried on every tick until a follower catches up: warn once in a while, not every tick.
      this.limitedLog.warn("finding a qualified transferee", { reason });
      return false;
    }
    this.log.info("transferring leadership", { to: peerIdHex(target), reason });
    this.deps.events?.leaderTransfer?.(target, reason);
    this.node.transferLeader(target);
    this.schedule();
    return true;
  }
}
