// Reads the nodes' "block timeline" lines (CONSENSUS_BLOCK_TIMELINE=1) and lines up each height's
// steps across nodes: the leader's own steps, and for the followers the median follower. Times are
// epoch milliseconds taken by the nodes themselves, so the bench adds no clock of its own.
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

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface StepRow {
  readonly who: "leader" | "follower";
  readonly step: BlockStep;
  /** Median ms since the leader's GetProposal answer. */
  readonly sinceStart: number;
  /** Median ms since the previous step in this table (the critical path's gaps). */
  readonly gap: number;
  readonly samples: number;
}

/**
 * The critical path of a block, step by step: the leader's steps up to the first ack, the
 * follower's steps in between, then both sides' commit steps. Heights in [from, to] whose
 * proposer is known (it logged proposal_answered).
 */
export function summarize(timelines: readonly NodeTimeline[], from: number, to: number): StepRow[] {
  const byHeight = new Map<number, NodeTimeline[]>();
  for (const t of timelines) if (t.height >= from && t.height <= to) (byHeight.get(t.height) ?? byHeight.set(t.height, []).get(t.height)!).push(t);
  const path: Array<["leader" | "follower", BlockStep]> = [
    ["leader", "proposal_answered"],
    ["leader", "proposed"],
    ["leader", "append_sent"],
    ["follower", "append_received"],
    ["leader", "persisted"],
    ["follower", "persisted"],
    ["follower", "ack_sent"],
    ["leader", "ack_received"],
    ["leader", "committed"],
    ["leader", "check_sent"],
    ["leader", "check_answered"],
    ["leader", "commit_sent"],
    ["leader", "commit_answered"],
    ["follower", "committed"],
    ["follower", "check_sent"],
    ["follower", "check_answered"],
    ["follower", "commit_sent"],
    ["follower", "commit_answered"],
  ];
  const since = new Map<string, number[]>();
  const gaps = new Map<string, number[]>();
  for (const ts of byHeight.values()) {
    const leader = ts.find((t) => t.at.proposal_answered !== undefined);
    if (leader === undefined) continue;
    const followers = ts.filter((t) => t !== leader);
    const start = leader.at.proposal_answered!;
    let prev = start;
    for (const [who, step] of path) {
      let v: number | undefined;
      if (who === "leader") v = leader.at[step];
      else {
        const vs = followers.map((f) => f.at[step]).filter((x): x is number => x !== undefined);
        // The follower whose ack made the commit: the earliest one; for its commit steps, the last.
        v = vs.length === 0 ? undefined : step.startsWith("commit") || step.startsWith("check") || step === "committed" ? Math.max(...vs) : Math.min(...vs);
      }
      if (v === undefined) continue;
      const key = `${who} ${step}`;
      (since.get(key) ?? since.set(key, []).get(key)!).push(v - start);
      (gaps.get(key) ?? gaps.set(key, []).get(key)!).push(v - prev);
      prev = v;
    }
  }
  const rows: StepRow[] = [];
  for (const [who, step] of path) {
    const key = `${who} ${step}`;
    const s = since.get(key);
    if (!s) continue;
    rows.push({ who, step, sinceStart: median(s), gap: median(gaps.get(key)!), samples: s.length });
  }
  return rows;
}

export function formatSteps(rows: readonly StepRow[]): string {
  const lines = ["| step | median since GetProposal answered (ms) | median gap from the step above (ms) | blocks |", "|---|---|---|---|"];
  for (const r of rows) lines.push(`| ${r.who} ${r.step.replaceAll("_", " ")} | ${r.sinceStart.toFixed(2)} | ${r.gap.toFixed(2)} | ${r.samples} |`);
  return lines.join("\n");
}
