// Runs many seeds and sums them up: shared by the CI tests and the CLI.
import type { RaftTestBug } from "../../src/raft/config.ts";
import type { SimResult } from "./report.ts";
import { simulate } from "./sim.ts";

export interface CampaignOptions {
  /** First seed; seeds are consecutive. */
  from: number;
  count: number;
  steps: number;
  skipInvariants?: readonly string[];
  ackBeforeFsync?: boolean;
  testBugs?: ReadonlySet<RaftTestBug>;
  /** Stop at the first violation. */
  stopOnViolation?: boolean;
  onResult?: (r: SimResult) => void;
}

/** What every campaign summary counts (both simulators' campaigns run in chunks in CI). */
export interface CampaignCounts<F> {
  seeds: number;
  steps: number;
  livenessSteps: number;
  failures: F[];
  elapsedMs: number;
  msPer1000Steps: number;
}

/** The counts of several chunks of one campaign, added up. */
export function addCampaignCounts<F>(done: readonly CampaignCounts<F>[]): CampaignCounts<F> {
  const total: CampaignCounts<F> = {
    seeds: done.reduce((a, s) => a + s.seeds, 0),
    steps: done.reduce((a, s) => a + s.steps, 0),
    livenessSteps: done.reduce((a, s) => a + s.livenessSteps, 0),
    failures: done.flatMap((s) => s.failures),
    elapsedMs: done.reduce((a, s) => a + s.elapsedMs, 0),
    msPer1000Steps: 0,
  };
  total.msPer1000Steps = (total.elapsedMs * 1000) / Math.max(1, total.steps + total.livenessSteps);
  return total;
}

export interface CampaignSummary {
  seeds: number;
  /** Safety-phase steps over all seeds. */
  steps: number;
  livenessSteps: number;
  failures: SimResult[];
  elapsedMs: number;
  /** Wall-clock cost of 1,000 steps (both phases). */
  msPer1000Steps: number;
  /** The seed with the highest event rate in one simulated second (message bursts), and that rate. */
  peak: { seed: number; eventsPerSec: number };
}

export function runCampaign(o: CampaignOptions): CampaignSummary {
  const t0 = performance.now();
  let seeds = 0;
  let steps = 0;
  let livenessSteps = 0;
  const failures: SimResult[] = [];
  const peak = { seed: o.from, eventsPerSec: 0 };
  for (let seed = o.from; seed < o.from + o.count; seed++) {
    const r = simulate({ seed, steps: o.steps, skipInvariants: o.skipInvariants, ackBeforeFsync: o.ackBeforeFsync, testBugs: o.testBugs });
    seeds++;
    steps += r.steps;
    livenessSteps += r.livenessSteps;
    if (r.stats.peakEventsPerSec > peak.eventsPerSec) Object.assign(peak, { seed, eventsPerSec: r.stats.peakEventsPerSec });
    o.onResult?.(r);
    if (r.violation) {
      failures.push(r);
      if (o.stopOnViolation) break;
    }
  }
  const elapsedMs = performance.now() - t0;
  const all = steps + livenessSteps;
  return { seeds, steps, livenessSteps, failures, elapsedMs, msPer1000Steps: all === 0 ? 0 : (elapsedMs * 1000) / all, peak };
}

export function describeSummary(s: CampaignSummary, stepsPerSeed: number): string {
  return (
    `${s.seeds} seeds x ${stepsPerSeed} steps (+${s.livenessSteps} liveness steps): ${s.failures.length} violation(s) ` +
    `in ${(s.elapsedMs / 1000).toFixed(1)} s, ${s.msPer1000Steps.toFixed(1)} ms per 1,000 steps; ` +
    `busiest simulated second: ${s.peak.eventsPerSec} events (seed ${s.peak.seed})`
  );
}
