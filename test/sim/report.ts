// What a run reports: its statistics, and for a broken invariant, everything needed to understand
// and replay it (seed, step, invariant, the cluster's state and the last events).

export interface ViolationReport {
  seed: number;
  step: number;
  timeMs: number;
  phase: "safety" | "liveness";
  invariant: string;
  detail: string;
  params: string;
  /** The command line that replays the run. */
  replay: string;
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
  /** Highest number of events in one simulated second. */
  peakEventsPerSec: number;
}

/** One seed's run, in either simulator (the Raft core's, the chain's). */
export interface RunResult<Stats, Violation> {
  seed: number;
  steps: number;
  livenessSteps: number;
  simTimeMs: number;
  /** Digest of every event of the run: equal digests mean a bit-for-bit identical replay. */
  digest: number;
  params: string;
  stats: Stats;
  violation?: Violation;
}

export type SimResult = RunResult<SimStats, ViolationReport>;

export function formatViolation(v: ViolationReport): string {
  return [
    `VIOLATION of "${v.invariant}" — seed ${v.seed}, step ${v.step} (${v.phase} phase, t=${v.timeMs} ms)`,
    `  ${v.detail}`,
    `  replay: ${v.replay}`,
    `  params: ${v.params}`,
    "  cluster at the violation:",
    ...v.cluster.map((l) => `    ${l}`),
    `  last ${v.trace.length} events:`,
    ...v.trace.map((l) => `    ${l}`),
  ].join("\n");
}
