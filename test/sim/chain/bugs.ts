// The known defects the chain simulator can re-inject (each behind a test-only switch of the node
// or of the Raft core), and the campaign's defaults.

/** Node defects (NodeDeps.testBugs) and the Raft core's (RaftConfig.testBugs), by their CLI names. */
export const CHAIN_BUGS = ["no-recommit", "no-handover-retry", "stale-reject-resets-match", "ack-before-fsync"] as const;
export type ChainBug = (typeof CHAIN_BUGS)[number];

/** Safety-phase steps of one seed in a default campaign. */
export const DEFAULT_STEPS = 3000;
