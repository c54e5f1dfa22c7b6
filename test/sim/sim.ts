// Deterministic simulation of a cluster of real Raft cores (openraft-turmoil style). One seed
// decides everything: the cluster and its options, every message delay, loss, duplicate and
// partition, every crash, restart, membership change, leader transfer, compaction and proposal.
// A run has a safety phase (faults on, invariants checked after every step) and a liveness phase
// (faults off: the cluster must elect a leader, commit a new entry and bring every live member up
// to it within a bound). A step is one event: a tick, a message delivery, an fsync completing, a
// transport report, a client proposal or a nemesis action.
import type { RaftTestBug } from "../../src/raft/config.ts";
import { STATE_ROLE_NAMES, StateRole } from "../../src/raft/raft.ts";
import { type ConfState, type Message, MessageType, type NodeId, newEntry } from "../../src/raft/types.ts";
import { Checker, Violation } from "./checker.ts";
import { Nemesis, type World } from "./nemesis.ts";
import { CALM, NetworkFaults, cloneMessage } from "./network.ts";
import { type Host, type Input, SimNode, isMember } from "./node.ts";
import { type Params, describeParams, drawParams } from "./params.ts";
import { EventQueue, type Timed } from "./queue.ts";
import type { SimResult, SimStats, ViolationReport } from "./report.ts";
import { Rng } from "./rng.ts";
import { entryDigest, showData, textBytes } from "./state-machine.ts";
import { SimStorage } from "./storage.ts";
import { Trace, showMsg } from "./trace.ts";

export interface SimOptions {
  seed: number;
  /** Steps of the safety phase. */
  steps: number;
  /** The liveness phase fails if it needs more than this many election timeouts of simulated time. */
  livenessTimeouts?: number;
  /** Lines of history in a violation report. */
  traceLines?: number;
  /** Called with every trace record as it happens (CLI --verbose). */
  onTrace?: (line: string) => void;
  /** Invariants not to enforce (to measure what the others catch on their own). */
  skipInvariants?: readonly string[];
  /** Deliberate application bug: vote grants and append acks leave before the fsync. */
  ackBeforeFsync?: boolean;
  /** Deliberate core bugs every node is built with (RaftConfig.testBugs). */
  testBugs?: ReadonlySet<RaftTestBug>;
}

type SimEvent = Timed &
  (
    | { kind: "tick"; node: SimNode; inc: number }
    | { kind: "deliver"; msg: Message; fromInc: number }
    | { kind: "fsync"; node: SimNode; inc: number; mark: number }
    | { kind: "apply"; node: SimNode; inc: number }
    | { kind: "report"; node: SimNode; inc: number; input: Input }
    | { kind: "client" }
    | { kind: "nemesis" }
    | { kind: "restart"; node: SimNode }
    | { kind: "strike"; node: SimNode; inc: number }
    | { kind: "heal"; epoch: number }
  );

/** An event before the queue numbers it. */
type EventInit = SimEvent extends infer E ? (E extends unknown ? Omit<E, "seq"> : never) : never;

/** A message storm: more than STORM_RATE events per simulated second, STORM_SECONDS seconds in a row. */
const STORM_RATE = 20000;
const STORM_SECONDS = 10;
const ROLE = (r: StateRole) => STATE_ROLE_NAMES[r];

export class Simulation implements Host, World {
  readonly params: Params;
  readonly checker: Checker;
  readonly trace: Trace;
  /** Randomness for node-internal choices (election timeouts), the network, the client and the nemesis. */
  readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly clientRng: Rng;
  private readonly nemesis: Nemesis;
  readonly faults = new NetworkFaults();
  readonly ackBeforeFsync: boolean;
  readonly asyncPersist: boolean;
  readonly applyLagMs: number;
  readonly nodes = new Map<NodeId, SimNode>();
  private readonly queue = new EventQueue<SimEvent>();
  /** Ids handed out to conf changes whose node is created when the first message reaches it. */
  private readonly allocated = new Set<NodeId>();
  private nextId: bigint;
  private partitionEpoch = 0;
  private proposalSeq = 0;
  private clientPace = 1;
  now = 0;
  step = 0;
  private phase: "safety" | "liveness" = "safety";
  private livenessSteps = 0;
  /** Start (time, step) of the current storm-detection window. */
  private windowTime = 0;
  private windowStep = 0;
  private stormSeconds = 0;
  private livenessStart = 0;
  private readonly markers = new Set<number>();
  private markerScan = 0;
  private markerIndex = 0;
  readonly stats: SimStats = {
    leaders: 0,
    maxTerm: 0,
    committed: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsSent: 0,
    compactions: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    proposals: 0,
    peakEventsPerSec: 0,
  };

  constructor(readonly opts: SimOptions) {
    this.ackBeforeFsync = opts.ackBeforeFsync ?? false;
    const root = new Rng(opts.seed);
    this.params = { ...drawParams(root, opts.testBugs), skipHeartbeatsWhileAppending: new Rng(opts.seed ^ 0x5bd1e995).chance(0.5) };
    this.asyncPersist = this.params.asyncPersist;
    this.applyLagMs = this.params.applyLagMs;
    this.rng = root.fork();
    this.netRng = root.fork();
    this.clientRng = root.fork();
    this.nemesis = new Nemesis(this, root.fork(), this.params);
    this.trace = new Trace(Math.max(64, opts.traceLines ?? 40));
    this.checker = new Checker((id) => this.nodes.get(id)?.storage, new Set(opts.skipInvariants ?? []));
    this.checker.onRoleChange = (id, role, term) => {
      if (role === StateRole.Leader) {
        this.stats.leaders++;
        const n = this.nodes.get(id);
        if (this.phase === "safety" && n !== undefined) this.nemesis.onLeaderElected(n);
      }
      if (term > this.stats.maxTerm) this.stats.maxTerm = term;
      this.record(`n${id} is ${ROLE(role)} of term ${term}`);
    };
    this.checker.onLeaderCommit = (id) => {
      const n = this.nodes.get(id);
      if (this.phase === "safety" && n !== undefined) this.nemesis.onLeaderCommit(n);
    };
    const p = this.params;
    const voters: NodeId[] = [];
    const learners: NodeId[] = [];
    for (let i = 1; i <= p.voters; i++) voters.push(BigInt(i));
    for (let i = 1; i <= p.learners; i++) learners.push(BigInt(p.voters + i));
    this.nextId = BigInt(p.voters + p.learners + 1);
    for (const id of [...voters, ...learners]) this.createNode(id, SimStorage.bootstrapped(voters, learners));
    // As the Rust service: the first validator campaigns at once.
    this.nodes.get(1n)!.input({ kind: "campaign" });
    this.push({ kind: "client", time: 1 });
    this.push({ kind: "nemesis", time: this.nemesis.nextDelay() });
  }

  // ---------------------------------------------------------------- running

  run(): SimResult {
    let violation: ViolationReport | undefined;
    try {
      while (this.step < this.opts.steps) this.runOne();
      this.beginLiveness();
      while (!this.livenessReached()) {
        const bound = (this.opts.livenessTimeouts ?? 30) * this.params.electionTick * this.params.tickMs;
        if (this.now - this.livenessStart > bound) {
          const what =
            this.markerIndex === 0
              ? `no entry proposed after the faults stopped was committed within ${bound} ms (leader: ${this.leader()?.id ?? "none"})`
              : `the marker committed at ${this.markerIndex} was not applied by every member within ${bound} ms after the faults stopped`;
          throw new Violation("liveness", what);
        }
        this.runOne();
        this.livenessSteps++;
      }
    } catch (e) {
      violation = this.report(e);
    }
    this.stats.committed = this.checker.regMax;
    this.trace.fold(this.checker.regMax, this.stats.maxTerm);
    return {
      seed: this.opts.seed,
      steps: Math.min(this.step, this.opts.steps),
      livenessSteps: this.livenessSteps,
      simTimeMs: this.now,
      digest: this.trace.digest,
      params: describeParams(this.params),
      stats: this.stats,
      violation,
    };
  }

  private runOne(): void {
    const ev = this.queue.pop();
    if (ev === undefined) throw new Error("the event queue ran dry");
    this.now = ev.time;
    this.step++;
    this.trace.step = this.step;
    this.trace.time = this.now;
    this.checkStorm();
    switch (ev.kind) {
      case "tick": {
        const n = ev.node;
        if (n.status !== "up" || n.incarnation !== ev.inc) return;
        this.trace.fold(1, Number(n.id));
        n.input({ kind: "tick" });
        this.afterNode(n);
        if (n.status === "up" && n.incarnation === ev.inc) this.push({ kind: "tick", time: this.now + this.tickInterval(n), node: n, inc: ev.inc });
        return;
      }
      case "deliver":
        this.deliver(ev.msg, ev.fromInc);
        return;
      case "fsync": {
        const n = ev.node;
        if (n.status !== "up" || n.incarnation !== ev.inc) return;
        this.trace.fold(3, Number(n.id));
        this.record(`n${n.id} fsync done`);
        n.fsynced(ev.mark);
        this.afterNode(n);
        return;
      }
      case "apply": {
        const n = ev.node;
        if (n.status !== "up" || n.incarnation !== ev.inc) return;
        this.trace.fold(5, Number(n.id));
        n.input({ kind: "apply" });
        this.afterNode(n);
        return;
      }
      case "report": {
        const n = ev.node;
        if (n.status !== "up" || n.incarnation !== ev.inc) return;
        this.trace.fold(4, Number(n.id));
        n.input(ev.input);
        this.afterNode(n);
        return;
      }
      case "client":
        this.client();
        return;
      case "nemesis":
        if (this.phase !== "safety") return;
        this.nemesis.act();
        this.push({ kind: "nemesis", time: this.now + this.nemesis.nextDelay() });
        return;
      case "restart":
        if (ev.node.status === "down") this.restart(ev.node);
        return;
      case "strike":
        if (this.phase === "safety" && ev.node.status === "up" && ev.node.incarnation === ev.inc) this.nemesis.strike(ev.node);
        return;
      case "heal":
        if (ev.epoch === this.partitionEpoch && this.faults.hasPartitions()) {
          this.faults.heal();
          this.record("network healed");
        }
        return;
    }
  }

  /**
   * A healthy cluster needs at most a few thousand events per simulated second. Catching a
   * follower up over a reordering network can burst far above that for seconds (one-entry
   * appends, a 256-message inflight window, and every out-of-order reject sends the leader back to
   * probing and then a new full window: seed 304486 sends ~250 messages per entry), but such a
   * burst ends; a rate that stays that high for ten seconds means nodes bounce messages at each
   * other without end. The peak rate is reported in the stats.
   */
  private checkStorm(): void {
    if (this.now - this.windowTime < 1000) return;
    const rate = this.step - this.windowStep;
    if (rate > this.stats.peakEventsPerSec) this.stats.peakEventsPerSec = rate;
    this.stormSeconds = rate > STORM_RATE ? this.stormSeconds + 1 : 0;
    if (this.stormSeconds >= STORM_SECONDS) {
      throw new Violation("no message storm", `more than ${STORM_RATE} events per simulated second for ${STORM_SECONDS} seconds (${rate} in the last one)`);
    }
    this.windowTime = this.now;
    this.windowStep = this.step;
  }

  private push(ev: EventInit): void {
    this.queue.push(ev as SimEvent);
  }

  record(text: string | (() => string)): void {
    this.trace.add(text);
    if (this.opts.onTrace) this.opts.onTrace(this.trace.lines(1)[0]);
  }

  private tickInterval(n: SimNode): number {
    // Clocks drift a little per node.
    return this.params.tickMs + Number(n.id % 7n) - 3;
  }

  // ---------------------------------------------------------------- nodes

  private createNode(id: NodeId, storage: SimStorage): SimNode {
    const p = this.params;
    const n = new SimNode(id, storage, this, {
      electionTick: p.electionTick,
      heartbeatTick: p.heartbeatTick,
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      maxSizePerMsg: p.maxSizePerMsg,
      maxInflightMsgs: p.maxInflightMsgs,
      maxInflightBytes: p.maxInflightBytes,
      batchAppend: p.batchAppend,
      skipBcastCommit: p.skipBcastCommit,
      skipHeartbeatsWhileAppending: p.skipHeartbeatsWhileAppending,
      maxUncommittedSize: p.maxUncommittedSize,
      testBugs: p.testBugs,
    });
    this.nodes.set(id, n);
    n.start();
    this.push({ kind: "tick", time: this.now + 1 + this.rng.int(p.tickMs), node: n, inc: n.incarnation });
    return n;
  }

  private restart(n: SimNode): void {
    const d = n.storage.durable;
    this.record(`n${n.id} restarts: term ${d.hs.term} vote ${d.hs.vote} commit ${d.hs.commit} applied ${d.sm.applied} log ${d.offset}..${d.offset + d.entries.length - 1}`);
    n.start();
    this.push({ kind: "tick", time: this.now + 1 + this.rng.int(this.params.tickMs), node: n, inc: n.incarnation });
    this.afterNode(n);
  }

  /** Housekeeping after a node handled something: retire it once removed, take snapshots. */
  private afterNode(n: SimNode): void {
    if (n.status !== "up") return;
    if (n.removed) this.retire(n);
    if (n.status !== "up") return;
    const v = n.storage.view;
    if (!n.busy && !n.storage.hasPendingLog() && v.sm.applied - v.snap.metadata.index >= this.params.snapshotEvery) this.compact(n, this.params.keepTail);
  }

  /**
   * A node that applied its own removal hands leadership over and keeps running for a grace
   * period, so that the remaining members learn the change is committed (the Rust service keeps
   * its task alive for the same reason), then stops for good.
   */
  private retire(n: SimNode): void {
    if (n.removedSince === undefined) {
      n.removedSince = this.now;
      this.record(`n${n.id} applied its own removal`);
    }
    if (n.isLeader && n.raw!.raft.leadTransferee === undefined) {
      const to = n.raw!.raft.prs.conf.voters.ids().find((id) => id !== n.id);
      if (to !== undefined && n.tryLeaderAction((raw) => raw.transferLeader(to))) this.record(`removed leader n${n.id} transfers leadership to n${to}`);
    }
    // Once faults stop, the operator's reconciliation decides (see reconcileMembers).
    if (this.phase === "safety" && this.now - n.removedSince >= 2 * this.params.electionTick * this.params.tickMs) {
      n.stop();
      this.record(`n${n.id} stops (removed)`);
    }
  }
  compact(n: SimNode, keep: number): void {
    const v = n.storage.view;
    const to = Math.max(v.offset, v.sm.applied + 1 - keep);
    n.storage.snapshotAndCompact(to);
    this.stats.compactions++;
    this.record(`n${n.id} snapshot at ${v.sm.applied}, log now starts at ${n.storage.firstIndex()}`);
  }

  // ---------------------------------------------------------------- the world as the nemesis sees it

  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.status === "up" && n.isLeader && (best === undefined || n.raw!.raft.term > best.raw!.raft.term)) best = n;
    }
    return best;
  }

  upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.status === "up");
  }

  liveIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.status !== "stopped").map((n) => n.id);
  }

  crash(n: SimNode, downForMs: number): void {
    n.crash();
    this.stats.crashes++;
    this.record(`n${n.id} CRASHES (kill -9), back in ${downForMs} ms`);
    this.push({ kind: "restart", time: this.now + downForMs, node: n });
  }

  healLater(afterMs: number): void {
    this.push({ kind: "heal", time: this.now + afterMs, epoch: ++this.partitionEpoch });
  }

  strikeLater(n: SimNode, afterMs: number): void {
    this.push({ kind: "strike", time: this.now + afterMs, node: n, inc: n.incarnation });
  }

  allocateId(): NodeId {
    const id = this.nextId++;
    this.allocated.add(id);
    return id;
  }

  // ---------------------------------------------------------------- network (Host)

  send(from: SimNode, msgs: Message[]): void {
    for (const m of msgs) {
      this.checker.onSend(from, m);
      if (m.msgType === MessageType.MsgSnapshot) this.stats.snapshotsSent++;
      const p = this.faults.profile;
      if (this.netRng.chance(p.drop)) {
        this.stats.dropped++;
        this.record(() => `lost ${showMsg(m)}`);
        this.transportFailed(from, m);
        continue;
      }
      this.push({ kind: "deliver", time: this.now + this.faults.delay(this.netRng), msg: cloneMessage(m), fromInc: from.incarnation });
      if (this.netRng.chance(p.duplicate)) {
        this.stats.duplicated++;
        this.push({ kind: "deliver", time: this.now + this.faults.delay(this.netRng), msg: cloneMessage(m), fromInc: from.incarnation });
      }
    }
  }

  scheduleFsync(n: SimNode, mark: number): void {
    this.push({ kind: "fsync", time: this.now + this.rng.range(this.params.fsyncMin, this.params.fsyncMax), node: n, inc: n.incarnation, mark });
  }

  scheduleApply(n: SimNode): void {
    this.push({ kind: "apply", time: this.now + this.rng.range(1, this.applyLagMs), node: n, inc: n.incarnation });
  }

  /** The sender learns that a message could not be delivered (as a real transport reports). */
  private transportFailed(from: SimNode, m: Message): void {
    const input: Input | undefined =
      m.msgType === MessageType.MsgSnapshot
        ? { kind: "snapStatus", to: m.to, ok: false }
        : this.netRng.chance(0.3)
          ? { kind: "unreachable", to: m.to }
          : undefined;
    if (input) this.push({ kind: "report", time: this.now + this.faults.delay(this.netRng), node: from, inc: from.incarnation, input });
  }

  private deliver(m: Message, fromInc: number): void {
    this.trace.fold(2, m.msgType, Number(m.to) * 65536 + Number(m.from));
    let to = this.nodes.get(m.to);
    if (to === undefined && this.allocated.has(m.to)) {
      // A newly added member comes to life when the leader first contacts it.
      this.allocated.delete(m.to);
      this.record(`n${m.to} created (blank disk)`);
      to = this.createNode(m.to, new SimStorage());
    }
    const from = this.nodes.get(m.from);
    const reachable = to !== undefined && to.status === "up" && !this.faults.isBlocked(m.from, m.to);
    if (!reachable) {
      this.stats.dropped++;
      this.record(() => `undeliverable ${showMsg(m)}`);
      if (from !== undefined && from.incarnation === fromInc) this.transportFailed(from, m);
      return;
    }
    this.stats.delivered++;
    this.record(() => showMsg(m));
    to!.input({ kind: "msg", msg: m });
    if (m.msgType === MessageType.MsgSnapshot && from !== undefined && from.incarnation === fromInc) {
      this.push({ kind: "report", time: this.now + this.faults.delay(this.netRng), node: from, inc: fromInc, input: { kind: "snapStatus", to: m.to, ok: true } });
    }
    this.afterNode(to!);
  }

  // ---------------------------------------------------------------- client

  private client(): void {
    const r = this.clientRng;
    const p = this.params;
    if (this.phase === "liveness") {
      this.proposeMarker();
      this.push({ kind: "client", time: this.now + p.heartbeatTick * p.tickMs * 2 });
      return;
    }
    // The offered load changes over the run: idle stretches, steady traffic and bursts.
    if (r.chance(0.03)) this.clientPace = r.pick([0.2, 1, 1, 5]);
    const target = this.proposalTarget(r);
    if (target !== undefined) {
      const n = r.chance(0.8) ? 1 : r.range(2, 5);
      const data: Uint8Array[] = [];
      for (let i = 0; i < n; i++) data.push(textBytes(`c${++this.proposalSeq}${".".repeat(r.int(40))}`));
      this.stats.proposals += n;
      this.record(`client proposes c${this.proposalSeq - n + 1}${n > 1 ? `..c${this.proposalSeq}` : ""} to n${target.id}`);
      target.input({ kind: "propose", data });
      this.afterNode(target);
    }
    const mean = p.proposeEveryMs * this.clientPace;
    this.push({ kind: "client", time: this.now + 1 + r.int(Math.max(1, Math.round(2 * mean))) });
  }

  /** Mostly the current leader; sometimes a node that still believes it leads (a client with stale routing), or anyone. */
  private proposalTarget(r: Rng): SimNode | undefined {
    const up = this.upNodes();
    if (up.length === 0) return undefined;
    const x = r.float();
    if (x < 0.6) return this.leader() ?? r.pick(up);
    if (x < 0.85) {
      const leaders = up.filter((n) => n.isLeader);
      if (leaders.length > 0) return r.pick(leaders);
    }
    return r.pick(up);
  }

  // ---------------------------------------------------------------- liveness

  private beginLiveness(): void {
    this.phase = "liveness";
    this.livenessStart = this.now;
    this.faults.heal();
    this.faults.profile = CALM;
    this.markerScan = this.checker.regMax + 1;
    const cs = this.latestConfState();
    this.record(`LIVENESS phase: faults stop; members ${[...new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners])].join(",")}`);
    this.reconcileMembers(cs);
  }

  /** The operator's view of membership: the configuration of the most advanced state machine. */
  private latestConfState(): ConfState {
    let latest: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (latest === undefined || n.storage.durable.sm.applied > latest.storage.durable.sm.applied) latest = n;
    }
    return latest!.storage.durable.confState;
  }

  /**
   * The operator's housekeeping once faults stop: a node runs while the latest configuration or a
   * member's own (possibly still joint) configuration includes it, and is stopped otherwise (a
   * removed node that never learned it would disrupt elections forever). A stopped node that is
   * still needed, e.g. removed too early from a joint configuration, is started again.
   */
  private reconcileMembers(cs: ConfState): void {
    const needed = new Set<NodeId>();
    for (const n of this.nodes.values()) {
      if (!isMember(cs, n.id)) continue;
      needed.add(n.id);
      // A member still in a joint configuration needs the outgoing voters to leave it.
      const conf = n.raw?.raft.prs.conf;
      if (conf !== undefined && conf.voters.isJoint()) for (const id of conf.voters.ids()) needed.add(id);
    }
    for (const n of this.nodes.values()) {
      if (n.status === "up" && !needed.has(n.id)) {
        n.stop();
        this.record(`n${n.id} is not a member any more: stopped`);
      } else if (n.status !== "up" && needed.has(n.id)) {
        this.restart(n);
      }
    }
  }

  private proposeMarker(): void {
    const target = this.leader() ?? this.proposalTarget(this.clientRng);
    if (target === undefined) return;
    const data = textBytes(`L${++this.proposalSeq}`);
    this.markers.add(entryDigest(newEntry({ data })));
    this.record(`client proposes liveness marker ${showData(data)} to n${target.id}`);
    target.input({ kind: "propose", data: [data] });
    this.afterNode(target);
  }

  /** A marker is committed and every live node has applied it. */
  private livenessReached(): boolean {
    const cs = this.latestConfState();
    this.reconcileMembers(cs);
    if (this.markerIndex === 0) {
      for (; this.markerScan <= this.checker.regMax; this.markerScan++) {
        const d = this.checker.committedDigest(this.markerScan);
        if (d !== undefined && this.markers.has(d)) {
          this.markerIndex = this.markerScan;
          this.record(`liveness marker committed at ${this.markerIndex}`);
          break;
        }
      }
      if (this.markerIndex === 0) return false;
    }
    // Every member must catch up, except one case Raft itself leaves stuck: without pre-vote and
    // check-quorum, a member whose term ran ahead while it was cut off ignores the leader's
    // lower-term messages, and if its configuration is too old to reach the leader, nothing
    // ever tells the leader (the same holds in raft-rs and etcd).
    const leaderTerm = this.leader()?.raw!.raft.term ?? Number.POSITIVE_INFINITY;
    const staleTermExempt = !this.params.preVote && !this.params.checkQuorum;
    for (const n of this.nodes.values()) {
      if (!isMember(cs, n.id) || n.storage.view.sm.applied >= this.markerIndex) continue;
      if (staleTermExempt && n.raw !== undefined && n.raw.raft.term > leaderTerm) continue;
      return false;
    }
    return true;
  }

  // ---------------------------------------------------------------- reports

  private clusterLines(): string[] {
    const out: string[] = [];
    for (const n of this.nodes.values()) {
      const s = n.storage;
      let line = `n${n.id} ${n.status}`;
      if (n.raw !== undefined) {
        const r = n.raw.raft;
        line += ` ${ROLE(r.state)} term=${r.term} vote=${r.vote} commit=${r.raftLog.committed} applied=${s.view.sm.applied} log=${r.raftLog.firstIndex()}..${r.raftLog.lastIndex()} conf=${r.prs.conf.toString()}`;
      }
      line += ` | disk: term=${s.durable.hs.term} vote=${s.durable.hs.vote} commit=${s.durable.hs.commit} last=${s.durableLastIndex()}`;
      out.push(line);
    }
    out.push(`network: cuts ${this.faults.describe()}`);
    return out;
  }

  private report(e: unknown): ViolationReport {
    let invariant: string;
    let detail: string;
    if (e instanceof Violation) {
      invariant = e.invariant;
      detail = e.detail;
    } else {
      // An exception out of the core is a crash of the node: as much a failure as a broken invariant.
      invariant = "no panic";
      const err = e instanceof Error ? e : new Error(String(e));
      const frames = (err.stack ?? "").split("\n").filter((l) => l.trim().startsWith("at ")).slice(0, 4).map((l) => l.trim());
      detail = `${err.message}${frames.length > 0 ? ` (${frames.join(" <- ")})` : ""}`;
    }
    return {
      seed: this.opts.seed,
      step: this.step,
      timeMs: this.now,
      phase: this.phase,
      invariant,
      detail,
      params: describeParams(this.params),
      replay: replayCommand(this.opts),
      cluster: this.clusterLines(),
      trace: this.trace.lines(this.opts.traceLines ?? 40),
    };
  }
}

/** The command line that replays this run. */
export function replayCommand(o: SimOptions): string {
  const flags = [`--seed ${o.seed}`, `--steps ${o.steps}`];
  for (const bug of o.testBugs ?? []) flags.push(`--bug ${bug}`);
  if (o.ackBeforeFsync) flags.push("--ack-before-fsync");
  for (const inv of o.skipInvariants ?? []) flags.push(`--skip "${inv}"`);
  return `bun run test/sim/cli.ts ${flags.join(" ")}`;
}

/** Runs one seed. */
export function simulate(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
