// Deterministic simulation of a cluster of real Raft cores (openraft-turmoil style). One seed
// decides everything: the cluster and its options, every message delay, loss, duplicate and
// partition, every crash, restart, membership change, leader transfer, compaction and proposal.
// A run has a safety phase (faults on, invariants checked after every step) and a liveness phase
// (faults off: the cluster must elect a leader, commit a new entry and bring every live member up
// to it within a bound). A step is one event: a tick, a message delivery, an fsync completing, a
// transport report, a client proposal or a nemesis action.
import { STATE_ROLE_NAMES, StateRole } from "../../src/raft/raft.ts";
import {
  type ConfChangeSingle,
  type ConfState,
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  EMPTY_BYTES,
  type Message,
  MessageType,
  type NodeId,
  newEntry,
} from "../../src/raft/types.ts";
import { Checker, Violation } from "./checker.ts";
import { CALM, type LinkProfile, NetworkFaults, cloneMessage } from "./network.ts";
import { type Host, type Input, SimNode, isMember } from "./node.ts";
import { type Params, describeParams, drawParams } from "./params.ts";
import { EventQueue, type Timed } from "./queue.ts";
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
}

export interface ViolationReport {
  seed: number;
  step: number;
  timeMs: number;
  phase: "safety" | "liveness";
  invariant: string;
  detail: string;
  params: string;
  cluster: string[];
  trace: string[];
}

export interface SimStats {
  leaders: number;
  maxTerm: number;
  committed: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  snapshotsSent: number;
  compactions: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  proposals: number;
}

export interface SimResult {
  seed: number;
  steps: number;
  livenessSteps: number;
  simTimeMs: number;
  /** Digest of every event of the run: equal digests mean a bit-for-bit identical replay. */
  digest: number;
  params: string;
  stats: SimStats;
  violation?: ViolationReport;
}

type SimEvent = Timed &
  (
    | { kind: "tick"; node: SimNode; inc: number }
    | { kind: "deliver"; msg: Message; fromInc: number }
    | { kind: "fsync"; node: SimNode; inc: number }
    | { kind: "report"; node: SimNode; inc: number; input: Input }
    | { kind: "client" }
    | { kind: "nemesis" }
    | { kind: "restart"; node: SimNode }
    | { kind: "strike"; node: SimNode; inc: number }
    | { kind: "heal"; epoch: number }
  );

/** An event before the queue numbers it. */
type EventInit = SimEvent extends infer E ? (E extends unknown ? Omit<E, "seq"> : never) : never;

const MAX_MEMBERS = 7;
const MIN_VOTERS = 3;
const ROLE = (r: StateRole) => STATE_ROLE_NAMES[r];

export class Simulation implements Host {
  readonly params: Params;
  readonly checker: Checker;
  readonly trace: Trace;
  /** Randomness for node-internal choices (election timeouts), the network, the client and the nemesis. */
  readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly clientRng: Rng;
  private readonly nemesisRng: Rng;
  readonly faults = new NetworkFaults();
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
  };

  constructor(readonly opts: SimOptions) {
    const root = new Rng(opts.seed);
    this.params = drawParams(root);
    this.rng = root.fork();
    this.netRng = root.fork();
    this.clientRng = root.fork();
    this.nemesisRng = root.fork();
    this.trace = new Trace(Math.max(64, opts.traceLines ?? 40));
    this.checker = new Checker((id) => this.nodes.get(id)?.storage, new Set(opts.skipInvariants ?? []));
    this.checker.onRoleChange = (id, role, term) => {
      if (role === StateRole.Leader) {
        this.stats.leaders++;
        this.maybeStrikeNewLeader(id);
      }
      if (term > this.stats.maxTerm) this.stats.maxTerm = term;
      this.record(`n${id} is ${ROLE(role)} of term ${term}`);
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
    this.push({ kind: "nemesis", time: this.nemesisRng.range(p.nemesisEveryMs / 2, p.nemesisEveryMs * 2) });
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
          throw new Violation("liveness", `no new entry committed and applied by every live member within ${bound} ms after the faults stopped${this.markerIndex > 0 ? ` (marker committed at ${this.markerIndex})` : ""}`);
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
        n.fsynced();
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
        this.nemesis();
        this.push({ kind: "nemesis", time: this.now + this.nemesisRng.range(this.params.nemesisEveryMs / 2, (this.params.nemesisEveryMs * 3) / 2) });
        return;
      case "restart":
        if (ev.node.status === "down") this.restart(ev.node);
        return;
      case "strike":
        if (this.phase === "safety" && ev.node.status === "up" && ev.node.incarnation === ev.inc) this.strike(ev.node);
        return;
      case "heal":
        if (ev.epoch === this.partitionEpoch && this.faults.hasPartitions()) {
          this.faults.heal();
          this.record("network healed");
        }
        return;
    }
  }

  private push(ev: EventInit): void {
    this.queue.push(ev as SimEvent);
  }

  private record(text: string | (() => string)): void {
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
      maxUncommittedSize: p.maxUncommittedSize,
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
    if (!n.busy && v.sm.applied - v.snap.metadata.index >= this.params.snapshotEvery) this.compact(n, this.params.keepTail);
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
  private compact(n: SimNode, keep: number): void {
    const v = n.storage.view;
    const to = Math.max(v.offset, v.sm.applied + 1 - keep);
    n.storage.snapshotAndCompact(to);
    this.stats.compactions++;
    this.record(`n${n.id} snapshot at ${v.sm.applied}, log now starts at ${n.storage.firstIndex()}`);
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.status === "up" && n.isLeader && (best === undefined || n.raw!.raft.term > best.raw!.raft.term)) best = n;
    }
    return best;
  }

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.status === "up");
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

  scheduleFsync(n: SimNode): void {
    this.push({ kind: "fsync", time: this.now + this.rng.range(this.params.fsyncMin, this.params.fsyncMax), node: n, inc: n.incarnation });
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

  // ---------------------------------------------------------------- nemesis

  private nemesis(): void {
    const r = this.nemesisRng;
    switch (r.weighted([3, 2, 1.5, 1, 1.5, 3, 1.5, 1])) {
      case 0:
        return this.crashOne(r);
      case 1:
        return this.partitionRandom(r);
      case 2:
        return this.isolateLeader(r);
      case 3:
        return this.cutOneWay(r);
      case 4:
        return this.changeLinks(r);
      case 5:
        return this.changeMembership(r);
      case 6:
        return this.transferLeader(r);
      default: {
        const up = this.upNodes().filter((n) => !n.busy);
        if (up.length > 0) this.compact(r.pick(up), 0);
      }
    }
  }

  /**
   * Reactive fault: hit a leader moments after it was elected, while its first entries are still
   * on their way. This is what leaves short higher-term tails behind (Figure 8 of the Raft paper).
   */
  private maybeStrikeNewLeader(id: NodeId): void {
    const n = this.nodes.get(id);
    if (this.phase !== "safety" || n === undefined || !this.nemesisRng.chance(this.params.strikeNewLeader)) return;
    this.push({ kind: "strike", time: this.now + this.nemesisRng.range(0, this.params.fsyncMax + 10), node: n, inc: n.incarnation });
  }

  private strike(n: SimNode): void {
    const r = this.nemesisRng;
    if (r.chance(0.5)) {
      this.crash(n, r);
    } else {
      this.faults.heal();
      this.faults.isolate(n.id, this.liveIds());
      this.record(`ISOLATE n${n.id} right after its election`);
      this.scheduleHeal(r);
    }
  }

  private crashOne(r: Rng): void {
    const l = this.leader();
    const up = this.upNodes();
    if (up.length === 0) return;
    this.crash(l !== undefined && r.chance(0.35) ? l : r.pick(up), r);
  }

  private crash(n: SimNode, r: Rng): void {
    n.crash();
    this.stats.crashes++;
    const downFor = r.chance(0.7) ? r.range(50, 1000) : r.range(2000, 8000);
    this.record(`n${n.id} CRASHES (kill -9), back in ${downFor} ms`);
    this.push({ kind: "restart", time: this.now + downFor, node: n });
  }

  private liveIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.status !== "stopped").map((n) => n.id);
  }

  private scheduleHeal(r: Rng): void {
    this.stats.partitions++;
    this.push({ kind: "heal", time: this.now + r.range(300, 5000), epoch: ++this.partitionEpoch });
  }

  private partitionRandom(r: Rng): void {
    const ids = this.liveIds();
    if (ids.length < 2) return;
    for (let i = ids.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    const cut = r.range(1, ids.length - 1);
    const groups = [ids.slice(0, cut), ids.slice(cut)];
    if (groups[1].length > 2 && r.chance(0.3)) groups.push(groups[1].splice(0, 1));
    this.faults.heal();
    this.faults.partition(groups);
    this.record(`PARTITION ${groups.map((g) => `{${g.join(",")}}`).join(" | ")}`);
    this.scheduleHeal(r);
  }

  private isolateLeader(r: Rng): void {
    const l = this.leader();
    if (l === undefined) return;
    this.faults.heal();
    this.faults.isolate(l.id, this.liveIds());
    this.record(`ISOLATE leader n${l.id}`);
    this.scheduleHeal(r);
  }

  private cutOneWay(r: Rng): void {
    const ids = this.liveIds();
    if (ids.length < 2) return;
    this.faults.heal();
    const n = r.range(1, 3);
    for (let i = 0; i < n; i++) {
      const a = r.pick(ids);
      const b = r.pick(ids.filter((x) => x !== a));
      this.faults.blockOneWay(a, b);
    }
    this.record(`ONE-WAY cuts ${this.faults.describe()}`);
    this.scheduleHeal(r);
  }

  private changeLinks(r: Rng): void {
    const profiles: LinkProfile[] = [
      CALM,
      { ...CALM, drop: r.pick([0.05, 0.15, 0.3]) },
      { ...CALM, duplicate: r.pick([0.1, 0.3]) },
      { ...CALM, slow: 0.25, slowDelay: r.range(100, 1500) },
      { drop: 0.1, duplicate: 0.1, slow: 0.2, minDelay: 1, maxDelay: 20, slowDelay: 800 },
    ];
    this.faults.profile = r.pick(profiles);
    const p = this.faults.profile;
    this.record(`LINKS drop=${p.drop} dup=${p.duplicate} slow=${p.slow}/${p.slowDelay}ms delay=${p.minDelay}-${p.maxDelay}ms`);
  }

  private transferLeader(r: Rng): void {
    const l = this.leader();
    if (l === undefined) return;
    const voters = l.raw!.raft.prs.conf.voters.ids().filter((id) => id !== l.id);
    if (voters.length === 0) return;
    const to = r.pick(voters);
    if (l.tryLeaderAction((raw) => raw.transferLeader(to))) {
      this.stats.transfers++;
      this.record(`n${l.id} transfers leadership to n${to}`);
    }
  }

  private newId(): NodeId {
    const id = this.nextId++;
    this.allocated.add(id);
    return id;
  }

  private changeMembership(r: Rng): void {
    const l = this.leader();
    if (l === undefined || l.busy) return;
    const raft = l.raw!.raft;
    if (raft.hasPendingConf()) return;
    const conf = raft.prs.conf;
    let cc: ConfChangeV2;
    if (conf.voters.isJoint()) {
      // Explicit joint configurations are left by the application.
      if (conf.autoLeave) return;
      cc = { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES };
    } else {
      const changes = this.pickChanges(r, [...conf.voters.incoming.voters], [...conf.learners]);
      if (changes === undefined) return;
      const t = r.weighted([7, 1.5, 1.5]);
      const transition = t === 0 ? ConfChangeTransition.Auto : t === 1 ? ConfChangeTransition.Implicit : ConfChangeTransition.Explicit;
      cc = { transition, changes, context: EMPTY_BYTES };
    }
    const text = describeCc(cc);
    if (l.tryLeaderAction((raw) => raw.proposeConfChange(EMPTY_BYTES, cc))) {
      this.stats.confChanges++;
      this.record(`n${l.id} proposes conf change ${text}`);
    }
  }

  /** A valid change of the current (non-joint) configuration that keeps 3..7 voters and at most 7 members. */
  private pickChanges(r: Rng, voters: NodeId[], learners: NodeId[]): ConfChangeSingle[] | undefined {
    const add = (id: NodeId): ConfChangeSingle => ({ changeType: ConfChangeType.AddNode, nodeId: id });
    const learner = (id: NodeId): ConfChangeSingle => ({ changeType: ConfChangeType.AddLearnerNode, nodeId: id });
    const remove = (id: NodeId): ConfChangeSingle => ({ changeType: ConfChangeType.RemoveNode, nodeId: id });
    const members = voters.length + learners.length;
    const options: (() => ConfChangeSingle[])[] = [];
    if (members < MAX_MEMBERS) {
      options.push(() => [add(this.newId())]);
      options.push(() => [learner(this.newId())]);
      options.push(() => [add(this.newId()), remove(r.pick(voters))]);
    }
    if (members < MAX_MEMBERS - 1 && voters.length > MIN_VOTERS) options.push(() => [add(this.newId()), add(this.newId()), remove(r.pick(voters)), remove(r.pick(voters))]);
    if (learners.length > 0) {
      options.push(() => [add(r.pick(learners))]);
      options.push(() => [remove(r.pick(learners))]);
    }
    if (voters.length > MIN_VOTERS) {
      options.push(() => [remove(r.pick(voters))]);
      options.push(() => [learner(r.pick(voters))]);
      if (learners.length > 0) options.push(() => [learner(r.pick(voters)), add(r.pick(learners))]);
    }
    if (options.length === 0) return undefined;
    return r.pick(options)();
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
      if (n.raw === undefined) continue;
      const conf = n.raw.raft.prs.conf;
      for (const id of conf.voters.ids()) needed.add(id);
      for (const id of conf.learners) needed.add(id);
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
    const cs = this.latestConfState();
    this.reconcileMembers(cs);
    for (const n of this.nodes.values()) {
      if (isMember(cs, n.id) && n.storage.view.sm.applied < this.markerIndex) return false;
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
      cluster: this.clusterLines(),
      trace: this.trace.lines(this.opts.traceLines ?? 40),
    };
  }
}

function describeCc(cc: ConfChangeV2): string {
  if (cc.changes.length === 0) return "leave-joint";
  const kinds: Record<number, string> = { [ConfChangeType.AddNode]: "add", [ConfChangeType.AddLearnerNode]: "learner", [ConfChangeType.RemoveNode]: "remove" };
  const tr = cc.transition === ConfChangeTransition.Auto ? "" : cc.transition === ConfChangeTransition.Implicit ? " (joint, implicit)" : " (joint, explicit)";
  return cc.changes.map((c) => `${kinds[c.changeType]} n${c.nodeId}`).join(", ") + tr;
}

export function formatViolation(v: ViolationReport, steps: number): string {
  return [
    `VIOLATION of "${v.invariant}" — seed ${v.seed}, step ${v.step} (${v.phase} phase, t=${v.timeMs} ms)`,
    `  ${v.detail}`,
    `  replay: bun run test/sim/cli.ts --seed ${v.seed} --steps ${steps}`,
    `  params: ${v.params}`,
    "  cluster at the violation:",
    ...v.cluster.map((l) => `    ${l}`),
    `  last ${v.trace.length} events:`,
    ...v.trace.map((l) => `    ${l}`),
  ].join("\n");
}

/** Runs one seed. */
export function simulate(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
