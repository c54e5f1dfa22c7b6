// The known defects the chain simulator can put back, each behind a test-only switch of the node
// (NodeDeps.testBugs) or of the Raft core (RaftConfig.testBugs), and the campaign's defaults.
import type { NodeTestBug } from "../../../src/node/test-bugs.ts";
import type { RaftTestBug } from "../../../src/raft/config.ts";

/** Command-line name -> the switch it turns on. */
const SWITCHES = {
  "no-recommit": { node: "no-recommit" },
  "no-handover-retry": { node: "no-handover-retry" },
  "ack-before-fsync": { node: "ack-before-fsync" },
  "stale-reject-resets-match": { raft: "staleRejectResetsMatch" },
} as const satisfies Record<string, { node: NodeTestBug } | { raft: RaftTestBug }>;

export type ChainBug = keyof typeof SWITCHES;
export const CHAIN_BUGS = Object.keys(SWITCHES) as ChainBug[];

/** The node and core switches behind `bugs`. */
export function switchesOf(bugs: readonly string[]): { node: Set<NodeTestBug>; raft: Set<RaftTestBug> } {
  const node = new Set<NodeTestBug>();
  const raft = new Set<RaftTestBug>();
  for (const b of bugs) {
    const s: { node?: NodeTestBug; raft?: RaftTestBug } | undefined = SWITCHES[b as ChainBug];
    if (s === undefined) throw new Error(`unknown defect ${b}`);
    if (s.node) node.add(s.node);
    if (s.raft) raft.add(s.raft);
  }
  return { node, raft };
}

/** Safety-phase steps of one seed in a default campaign. */
export const DEFAULT_STEPS = 3000;
