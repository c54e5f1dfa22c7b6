// Turns ConfChangeV2 requests into new configurations: simple (one voter at a time), entering a
// joint configuration, and leaving it. Also rebuilds a tracker from a stored ConfState.
import { Configuration, type MapChange, MapChangeType, type ProgressTracker } from "../tracker/tracker.ts";
import { type ConfChangeSingle, ConfChangeTransition, ConfChangeType, type ConfChangeV2, type ConfState, type NodeId } from "../types.ts";

export class ConfChangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfChangeError";
  }
}

/** Membership changes relative to the tracker's current progress map. */
class IncrChangeMap {
  readonly changes: MapChange = [];
  constructor(private readonly base: ReadonlyMap<NodeId, unknown>) {}

  contains(id: NodeId): boolean {
    for (let i = this.changes.length - 1; i >= 0; i--) {
      if (this.changes[i][0] === id) return this.changes[i][1] === MapChangeType.Add;
    }
    return this.base.has(id);
  }

  record(id: NodeId, t: MapChangeType): void {
    this.changes.push([id, t]);
  }
}

export function isJoint(cfg: Configuration): boolean {
  return cfg.voters.isJoint();
}

/** Whether a ConfChangeV2 asks to leave a joint configuration (the empty, Auto change). */
export function ccLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0;
}

/** undefined for a simple change; otherwise whether the joint config is left automatically. */
export function ccEnterJoint(cc: ConfChangeV2): boolean | undefined {
  // More changes could in theory use the simple protocol, but joint consensus is always safe.
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    return cc.transition !== ConfChangeTransition.Explicit;
  }
  return undefined;
}

export class Changer {
  constructor(private readonly tracker: ProgressTracker) {}

  enterJoint(autoLeave: boolean, ccs: ConfChangeSingle[]): [Configuration, MapChange] {
    if (isJoint(this.tracker.conf)) throw new ConfChangeError("config is already joint");
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.voters.incoming.size === 0) {
      // Adding nodes to an empty config is allowed (bootstrap), but it cannot become joint.
      throw new ConfChangeError("can't make a zero-voter config joint");
    }
    for (const id of cfg.voters.incoming.voters) cfg.voters.outgoing.voters.add(id);
    this.apply(cfg, prs, ccs);
    cfg.autoLeave = autoLeave;
    checkInvariants(cfg, prs);
    return [cfg, prs.changes];
  }

  leaveJoint(): [Configuration, MapChange] {
    if (!isJoint(this.tracker.conf)) throw new ConfChangeError("can't leave a non-joint config");
    const [cfg, prs] = this.checkAndCopy();
    for (const id of cfg.learnersNext) cfg.learners.add(id);
    cfg.learnersNext.clear();
    for (const id of cfg.voters.outgoing.voters) {
      if (!cfg.voters.incoming.has(id) && !cfg.learners.has(id)) prs.record(id, MapChangeType.Remove);
    }
    cfg.voters.outgoing.voters.clear();
    cfg.autoLeave = false;
    checkInvariants(cfg, prs);
    return [cfg, prs.changes];
  }

  simple(ccs: ConfChangeSingle[]): [Configuration, MapChange] {
    if (isJoint(this.tracker.conf)) throw new ConfChangeError("can't apply simple config change in joint config");
    const [cfg, prs] = this.checkAndCopy();
    this.apply(cfg, prs, ccs);
    const before = this.tracker.conf.voters.incoming.voters;
    const after = cfg.voters.incoming.voters;
    let diff = 0;
    for (const id of after) if (!before.has(id)) diff++;
    for (const id of before) if (!after.has(id)) diff++;
    if (diff > 1) throw new ConfChangeError("more than one voter changed without entering joint config");
    checkInvariants(cfg, prs);
    return [cfg, prs.changes];
  }

  private apply(cfg: Configuration, prs: IncrChangeMap, ccs: ConfChangeSingle[]): void {
    for (const cc of ccs) {
      // A zeroed node id means the application decided not to apply this change.
      if (cc.nodeId === 0n) continue;
      switch (cc.changeType) {
        case ConfChangeType.AddNode:
          makeVoter(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.AddLearnerNode:
          makeLearner(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          remove(cfg, prs, cc.nodeId);
          break;
        default:
          throw new ConfChangeError(`unknown conf change type ${cc.changeType}`);
      }
    }
    if (cfg.voters.incoming.size === 0) throw new ConfChangeError("removed all voters");
  }

  private checkAndCopy(): [Configuration, IncrChangeMap] {
    const prs = new IncrChangeMap(this.tracker.progress);
    checkInvariants(this.tracker.conf, prs);
    return [this.tracker.conf.clone(), prs];
  }
}

function makeVoter(cfg: Configuration, prs: IncrChangeMap, id: NodeId): void {
  if (!prs.contains(id)) {
    cfg.voters.incoming.voters.add(id);
    prs.record(id, MapChangeType.Add);
    return;
  }
  cfg.voters.incoming.voters.add(id);
  cfg.learners.delete(id);
  cfg.learnersNext.delete(id);
}

function makeLearner(cfg: Configuration, prs: IncrChangeMap, id: NodeId): void {
  if (!prs.contains(id)) {
    cfg.learners.add(id);
    prs.record(id, MapChangeType.Add);
    return;
  }
  if (cfg.learners.has(id)) return;
  cfg.voters.incoming.voters.delete(id);
  cfg.learners.delete(id);
  cfg.learnersNext.delete(id);
  // A voter of the outgoing half can only become a learner when the joint config is left.
  if (cfg.voters.outgoing.has(id)) cfg.learnersNext.add(id);
  else cfg.learners.add(id);
}

function remove(cfg: Configuration, prs: IncrChangeMap, id: NodeId): void {
  if (!prs.contains(id)) return;
  cfg.voters.incoming.voters.delete(id);
  cfg.learners.delete(id);
  cfg.learnersNext.delete(id);
  // Still a voter of the outgoing half: keep its Progress until the joint config is left.
  if (!cfg.voters.outgoing.has(id)) prs.record(id, MapChangeType.Remove);
}

function checkInvariants(cfg: Configuration, prs: IncrChangeMap): void {
  for (const id of cfg.voters.ids()) {
    if (!prs.contains(id)) throw new ConfChangeError(`no progress for voter ${id}`);
  }
  for (const id of cfg.learners) {
    if (!prs.contains(id)) throw new ConfChangeError(`no progress for learner ${id}`);
    if (cfg.voters.outgoing.has(id)) throw new ConfChangeError(`${id} is in learners and outgoing voters`);
    if (cfg.voters.incoming.has(id)) throw new ConfChangeError(`${id} is in learners and incoming voters`);
  }
  for (const id of cfg.learnersNext) {
    if (!prs.contains(id)) throw new ConfChangeError(`no progress for learner(next) ${id}`);
    if (!cfg.voters.outgoing.has(id)) throw new ConfChangeError(`${id} is in learners_next and not outgoing voters`);
  }
  if (!isJoint(cfg)) {
    if (cfg.learnersNext.size > 0) throw new ConfChangeError("learners_next must be empty when not joint");
    if (cfg.autoLeave) throw new ConfChangeError("auto_leave must be false when not joint");
  }
}

/**
 * Rebuilds the tracker's configuration from a ConfState (at start-up and on snapshot restore) by
 * replaying it as a sequence of changes: first the outgoing voters as simple adds, then entering
 * the joint configuration with the incoming voters and learners.
 */
export function restoreConfState(tracker: ProgressTracker, nextIdx: number, cs: ConfState): void {
  const outgoing: ConfChangeSingle[] = cs.votersOutgoing.map((nodeId) => ({ changeType: ConfChangeType.AddNode, nodeId }));
  const incoming: ConfChangeSingle[] = [
    ...cs.votersOutgoing.map((nodeId) => ({ changeType: ConfChangeType.RemoveNode, nodeId })),
    ...cs.voters.map((nodeId) => ({ changeType: ConfChangeType.AddNode, nodeId })),
    ...cs.learners.map((nodeId) => ({ changeType: ConfChangeType.AddLearnerNode, nodeId })),
    ...cs.learnersNext.map((nodeId) => ({ changeType: ConfChangeType.AddLearnerNode, nodeId })),
  ];
  if (outgoing.length === 0) {
    for (const cc of incoming) {
      const [cfg, changes] = new Changer(tracker).simple([cc]);
      tracker.applyConf(cfg, changes, nextIdx);
    }
  } else {
    for (const cc of outgoing) {
      const [cfg, changes] = new Changer(tracker).simple([cc]);
      tracker.applyConf(cfg, changes, nextIdx);
    }
    const [cfg, changes] = new Changer(tracker).enterJoint(cs.autoLeave, incoming);
    tracker.applyConf(cfg, changes, nextIdx);
  }
}

