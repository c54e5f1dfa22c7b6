// The nemesis: every fault and operator action of the safety phase. At random moments it crashes
// nodes (kill -9), partitions the network (symmetric, one-way, isolating the leader), changes how
// links lose, duplicate and delay messages, changes membership through ConfChangeV2 (add, remove,
// replace, promote, demote, joint changes with every transition), transfers leadership and forces
// snapshots. It also strikes reactively: a leader hit moments after its election leaves a short
// higher-term tail behind, and one hit moments after its commit index moved leaves the rest of its
// entries half replicated; together they produce the interleavings of Figure 8 of the Raft paper.
import {
  type ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  EMPTY_BYTES,
  type NodeId,
} from "../../src/raft/types.ts";
import { CALM, type LinkProfile, type NetworkFaults } from "./network.ts";
import type { SimNode } from "./node.ts";
import type { Params } from "./params.ts";
import type { SimStats } from "./report.ts";
import type { Rng } from "./rng.ts";

const MAX_MEMBERS = 7;
const MIN_VOTERS = 3;

/** What the nemesis may see and do in the simulation. */
export interface World {
  readonly faults: NetworkFaults;
  readonly stats: SimStats;
  leader(): SimNode | undefined;
  upNodes(): SimNode[];
  /** Ids of nodes that are up or crashed (not stopped for good). */
  liveIds(): NodeId[];
  record(text: string): void;
  /** Crashes `n` and restarts it from its disk after `downForMs`. */
  crash(n: SimNode, downForMs: number): void;
  /** Heals the current partition after `afterMs`, unless a newer one replaced it. */
  healLater(afterMs: number): void;
  /** Runs `strike(n)` after `afterMs` if `n` is still the same incarnation. */
  strikeLater(n: SimNode, afterMs: number): void;
  compact(n: SimNode, keep: number): void;
  /** A fresh node id: its node is created when the leader first contacts it. */
  allocateId(): NodeId;
}

export class Nemesis {
  constructor(
    private readonly world: World,
    private readonly rng: Rng,
    private readonly params: Params,
  ) {}

  /** Time until the next action. */
  nextDelay(): number {
    const every = this.params.nemesisEveryMs;
    return this.rng.range(every / 2, (every * 3) / 2);
  }

  act(): void {
    const r = this.rng;
    switch (r.weighted([3, 2, 1.5, 1, 1.5, 3, 1.5, 1])) {
      case 0:
        return this.crashOne();
      case 1:
        return this.partitionRandom();
      case 2:
        return this.isolateLeader();
      case 3:
        return this.cutOneWay();
      case 4:
        return this.changeLinks();
      case 5:
        return this.changeMembership();
      case 6:
        return this.transferLeader();
      default: {
        const idle = this.world.upNodes().filter((n) => !n.busy && !n.storage.hasPendingLog());
        if (idle.length > 0) this.world.compact(r.pick(idle), 0);
      }
    }
  }

  /** A node just became leader: maybe strike it before its first entries are replicated. */
  onLeaderElected(n: SimNode): void {
    if (this.rng.chance(this.params.strikeNewLeader)) this.world.strikeLater(n, this.rng.range(0, this.params.fsyncMax + 10));
  }

  /** A leader's commit index moved: maybe strike it while the rest of its entries are in flight. */
  onLeaderCommit(n: SimNode): void {
    if (this.rng.chance(this.params.strikeAfterCommit)) this.world.strikeLater(n, this.rng.range(0, this.params.fsyncMax + 10));
  }

  strike(n: SimNode): void {
    if (this.rng.chance(0.5)) {
      this.crash(n);
    } else {
      this.world.faults.heal();
      this.world.faults.isolate(n.id, this.world.liveIds());
      this.world.record(`ISOLATE n${n.id} right after its election`);
      this.healLater();
    }
  }

  private crash(n: SimNode): void {
    // Mostly short outages; sometimes long ones, so the log moves on and a snapshot is needed.
    this.world.crash(n, this.rng.chance(0.7) ? this.rng.range(50, 1000) : this.rng.range(2000, 8000));
  }

  private crashOne(): void {
    const up = this.world.upNodes();
    if (up.length === 0) return;
    const l = this.world.leader();
    this.crash(l !== undefined && this.rng.chance(0.35) ? l : this.rng.pick(up));
  }

  private healLater(): void {
    this.world.stats.partitions++;
    this.world.healLater(this.rng.range(300, 5000));
  }

  private partitionRandom(): void {
    const r = this.rng;
    const ids = this.world.liveIds();
    if (ids.length < 2) return;
    for (let i = ids.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    const cut = r.range(1, ids.length - 1);
    const groups = [ids.slice(0, cut), ids.slice(cut)];
    if (groups[1].length > 2 && r.chance(0.3)) groups.push(groups[1].splice(0, 1));
    this.world.faults.heal();
    this.world.faults.partition(groups);
    this.world.record(`PARTITION ${groups.map((g) => `{${g.join(",")}}`).join(" | ")}`);
    this.healLater();
  }

  private isolateLeader(): void {
    const l = this.world.leader();
    if (l === undefined) return;
    this.world.faults.heal();
    this.world.faults.isolate(l.id, this.world.liveIds());
    this.world.record(`ISOLATE leader n${l.id}`);
    this.healLater();
  }

  private cutOneWay(): void {
    const r = this.rng;
    const ids = this.world.liveIds();
    if (ids.length < 2) return;
    const faults = this.world.faults;
    faults.heal();
    const n = r.range(1, 3);
    for (let i = 0; i < n; i++) {
      const a = r.pick(ids);
      faults.blockOneWay(a, r.pick(ids.filter((x) => x !== a)));
    }
    this.world.record(`ONE-WAY cuts ${faults.describe()}`);
    this.healLater();
  }

  private changeLinks(): void {
    const r = this.rng;
    const profiles: LinkProfile[] = [
      CALM,
      { ...CALM, drop: r.pick([0.05, 0.15, 0.3]) },
      { ...CALM, duplicate: r.pick([0.1, 0.3]) },
      { ...CALM, slow: 0.25, slowDelay: r.range(100, 1500) },
      { drop: 0.1, duplicate: 0.1, slow: 0.2, minDelay: 1, maxDelay: 20, slowDelay: 800 },
    ];
    const p = r.pick(profiles);
    this.world.faults.profile = p;
    this.world.record(`LINKS drop=${p.drop} dup=${p.duplicate} slow=${p.slow}/${p.slowDelay}ms delay=${p.minDelay}-${p.maxDelay}ms`);
  }

  private transferLeader(): void {
    const l = this.world.leader();
    if (l === undefined) return;
    const voters = l.raw!.raft.prs.conf.voters.ids().filter((id) => id !== l.id);
    if (voters.length === 0) return;
    const to = this.rng.pick(voters);
    if (l.tryLeaderAction((raw) => raw.transferLeader(to))) {
      this.world.stats.transfers++;
      this.world.record(`n${l.id} transfers leadership to n${to}`);
    }
  }

  /** The leader proposes one membership change, only when none is pending (as the service does). */
  private changeMembership(): void {
    const l = this.world.leader();
    if (l === undefined || l.busy) return;
    const raft = l.raw!.raft;
    if (raft.hasPendingConf()) return;
    const conf = raft.prs.conf;
    let cc: ConfChangeV2;
    if (conf.voters.isJoint()) {
      // Joint configurations entered with an Explicit transition are left by the application.
      if (conf.autoLeave) return;
      cc = { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES };
    } else {
      const changes = this.pickChanges([...conf.voters.incoming.voters], [...conf.learners]);
      if (changes === undefined) return;
      const t = this.rng.weighted([7, 1.5, 1.5]);
      const transition = t === 0 ? ConfChangeTransition.Auto : t === 1 ? ConfChangeTransition.Implicit : ConfChangeTransition.Explicit;
      cc = { transition, changes, context: EMPTY_BYTES };
    }
    if (l.tryLeaderAction((raw) => raw.proposeConfChange(EMPTY_BYTES, cc))) {
      this.world.stats.confChanges++;
      this.world.record(`n${l.id} proposes conf change ${describeConfChange(cc)}`);
    }
  }

  /** A valid change of a non-joint configuration that keeps 3..7 voters and at most 7 members. */
  private pickChanges(voters: NodeId[], learners: NodeId[]): ConfChangeSingle[] | undefined {
    const r = this.rng;
    const fresh = () => this.world.allocateId();
    const add = (id: NodeId): ConfChangeSingle => ({ changeType: ConfChangeType.AddNode, nodeId: id });
    const learner = (id: NodeId): ConfChangeSingle => ({ changeType: ConfChangeType.AddLearnerNode, nodeId: id });
    const remove = (id: NodeId): ConfChangeSingle => ({ changeType: ConfChangeType.RemoveNode, nodeId: id });
    const members = voters.length + learners.length;
    const options: (() => ConfChangeSingle[])[] = [];
    if (members < MAX_MEMBERS) {
      options.push(() => [add(fresh())]);
      options.push(() => [learner(fresh())]);
      options.push(() => [add(fresh()), remove(r.pick(voters))]); // replace a voter
    }
    if (members < MAX_MEMBERS - 1 && voters.length > MIN_VOTERS) {
      options.push(() => [add(fresh()), add(fresh()), remove(r.pick(voters)), remove(r.pick(voters))]);
    }
    if (learners.length > 0) {
      options.push(() => [add(r.pick(learners))]); // promote
      options.push(() => [remove(r.pick(learners))]);
    }
    if (voters.length > MIN_VOTERS) {
      options.push(() => [remove(r.pick(voters))]);
      options.push(() => [learner(r.pick(voters))]); // demote
      if (learners.length > 0) options.push(() => [learner(r.pick(voters)), add(r.pick(learners))]); // swap roles
    }
    return options.length === 0 ? undefined : r.pick(options)();
  }
}

export function describeConfChange(cc: ConfChangeV2): string {
  if (cc.changes.length === 0) return "leave-joint";
  const kinds: Record<number, string> = { [ConfChangeType.AddNode]: "add", [ConfChangeType.AddLearnerNode]: "learner", [ConfChangeType.RemoveNode]: "remove" };
  const how =
    cc.transition === ConfChangeTransition.Auto ? "" : cc.transition === ConfChangeTransition.Implicit ? " (joint, implicit)" : " (joint, explicit)";
  return cc.changes.map((c) => `${kinds[c.changeType]} n${c.nodeId}`).join(", ") + how;
}
