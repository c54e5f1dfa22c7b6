// Reads the nodes' "block timeline" lines (CONSENSUS_BLOCK_TIMELINE=1) and lines up each height's
// steps across nodes. Times are epoch milliseconds taken by the nodes themselves, so the bench adds
// no clock of its own; every figure is relative to the leader's GetProposal answer for that height.
//
// Sides of a block, per step:
//  - "leader": the node that answered GetProposal for that height (the proposer).
//  - "quorum follower": the time by which as many followers had done the step as the leader needs
//    for a majority (1 of 2 followers with 3 nodes, 2 of 4 with 5, 3 of 6 with 7): the follower
//    side of the critical path up to the commit.
//  - "last follower": the time by which every follower had done it (the commit steps only: the
//    last controller's CommitBlock answer ends "proposal → last node committed").
import { BLOCK_STEPS, type BlockStep } from "../../src/node/block-timeline.ts";

export interface NodeTimeline {
  readonly node: number;
  readonly height: number;
  /** Absolute epoch ms of each step seen on that node. */
  readonly at: Partial<Record<BlockStep, number>>;
}

/** Parses one node's log. */
export function parseTimelines(node: number, log: string): NodeTimeline[] {
  const out: NodeTimeline[] = [];
  for (const line of log.split("\n")) {
    if (!line.includes("block timeline")) continue;
    const fields = new Map<string, string>();
    for (const m of line.matchAll(/(\w+)=(\S+)/g)) fields.set(m[1], m[2]);
    const t0 = Number(fields.get("t0"));
    const height = Number(fields.get("height"));
    if (!Number.isFinite(t0) || !Number.isFinite(height)) continue;
    const at: Partial<Record<BlockStep, number>> = {};
    for (const s of BLOCK_STEPS) {
      const v = fields.get(s);
      if (v !== undefined) at[s] = t0 + Number(v);
    }
    out.push({ node, height, at });
  }
  return out;
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (q === 0.5) {
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export type Side = "leader" | "quorum follower" | "last follower";

const FOLLOWER_STEPS: readonly BlockStep[] = BLOCK_STEPS.filter((s) => s !== "proposal_answered" && s !== "proposed" && s !== "append_sent" && s !== "ack_received");
const LAST_FOLLOWER_STEPS: readonly BlockStep[] = ["committed", "check_sent", "check_answered", "commit_sent", "commit_answered"];

/** One height, as its nodes' timelines tell it. */
export interface BlockSample {
  readonly height: number;
  readonly leader: number;
  /** Ms since the leader's GetProposal answer, by `${side} ${step}`. */
  readonly since: ReadonlyMap<string, number>;
  /** Leader's GetProposal answer → leader's CommitBlock answered, if the leader logged both. */
  readonly toLeader?: number;
  /** Leader's GetProposal answer → the last node's CommitBlock answered, if every node logged it. */
  readonly toLast?: number;
}

/**
 * Every height in [from, to] whose proposer logged its GetProposal answer. `nodes` is the chain's
 * size (default: the number of nodes with timelines), which sets the quorum.
 */
export function blockSamples(timelines: readonly NodeTimeline[], from: number, to: number, nodes?: number): BlockSample[] {
  const byHeight = new Map<number, NodeTimeline[]>();
  for (const t of timelines) if (t.height >= from && t.height <= to) (byHeight.get(t.height) ?? byHeight.set(t.height, []).get(t.height)!).push(t);
  const n = nodes ?? new Set(timelines.map((t) => t.node)).size;
  const quorumFollowers = Math.floor(n / 2); // majority of n, minus the leader
  const out: BlockSample[] = [];
  for (const [height, ts] of [...byHeight].sort((a, b) => a[0] - b[0])) {
    // A re-proposal after a leader change would give two; the one that reached Raft wins.
    const leaders = ts.filter((t) => t.at.proposal_answered !== undefined);
    const leader = leaders.find((t) => t.at.proposed !== undefined) ?? leaders[0];
    if (leader === undefined) continue;
    const followers = ts.filter((t) => t.node !== leader.node);
    const start = leader.at.proposal_answered!;
    const since = new Map<string, number>();
    for (const s of BLOCK_STEPS) if (leader.at[s] !== undefined) since.set(`leader ${s}`, leader.at[s]! - start);
    for (const s of FOLLOWER_STEPS) {
      const vs = followers.map((f) => f.at[s]).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      if (quorumFollowers > 0 && vs.length >= quorumFollowers) since.set(`quorum follower ${s}`, vs[quorumFollowers - 1] - start);
      if (LAST_FOLLOWER_STEPS.includes(s) && vs.length === n - 1 && n - 1 > quorumFollowers) since.set(`last follower ${s}`, vs[vs.length - 1] - start);
    }
    const answered = ts.map((t) => t.at.commit_answered).filter((x): x is number => x !== undefined);
    const toLeader = leader.at.commit_answered === undefined ? undefined : leader.at.commit_answered - start;
    const toLast = new Set(ts.filter((t) => t.at.commit_answered !== undefined).map((t) => t.node)).size === n ? Math.max(...answered) - start : undefined;
    out.push({ height, leader: leader.node, since, toLeader, toLast });
  }
  return out;
}

export interface StepRow {
  readonly who: Side;
  readonly step: BlockStep;
  /** Median ms since the leader's GetProposal answer. */
  readonly sinceStart: number;
  /** 90th percentile of the same. */
  readonly p90: number;
  /** `sinceStart` minus the row above's: rows are ordered by `sinceStart`, so never negative, and the gaps add up to the last row. */
  readonly gap: number;
  readonly samples: number;
}

/** The steps of a block on each side, ordered by their median time since the GetProposal answer. */
export function summarizeSamples(samples: readonly BlockSample[]): StepRow[] {
  const byKey = new Map<string, number[]>();
  for (const b of samples) for (const [k, v] of b.since) (byKey.get(k) ?? byKey.set(k, []).get(k)!).push(v);
  const rows = [...byKey].map(([key, vs]) => {
    const step = key.slice(key.lastIndexOf(" ") + 1) as BlockStep;
    return { who: key.slice(0, key.lastIndexOf(" ")) as Side, step, sinceStart: quantile(vs, 0.5), p90: quantile(vs, 0.9), samples: vs.length };
  });
  // Ties (steps in the same turn of a node's loop) keep the order of BLOCK_STEPS, leader first.
  const sideOrder: Side[] = ["leader", "quorum follower", "last follower"];
  rows.sort((a, b) => a.sinceStart - b.sinceStart || BLOCK_STEPS.indexOf(a.step) - BLOCK_STEPS.indexOf(b.step) || sideOrder.indexOf(a.who) - sideOrder.indexOf(b.who));
  return rows.map((r, i) => ({ ...r, gap: i === 0 ? r.sinceStart : r.sinceStart - rows[i - 1].sinceStart }));
}

/** summarizeSamples(blockSamples(...)): the step table of heights [from, to]. */
export function summarize(timelines: readonly NodeTimeline[], from: number, to: number, nodes?: number): StepRow[] {
  return summarizeSamples(blockSamples(timelines, from, to, nodes));
}

export function formatSteps(rows: readonly StepRow[]): string {
  const lines = [
    "| step | side | p50 since GetProposal answered (ms) | gap from the row above (ms) | p90 since GetProposal answered (ms) | blocks |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows) lines.push(`| ${r.step.replaceAll("_", " ")} | ${r.who} | ${r.sinceStart.toFixed(2)} | ${r.gap.toFixed(2)} | ${r.p90.toFixed(2)} | ${r.samples} |`);
  return lines.join("\n");
}
