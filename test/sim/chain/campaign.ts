// Many seeds of the chain simulator, summed up: shared by the CI test and the CLI.
import { type ChainResult, simulateChain } from "./sim.ts";

export interface ChainCampaignOptions {
  from: number;
  count: number;
  steps: number;
  bugs?: readonly string[];
  skipInvariants?: readonly string[];
  stopOnViolation?: boolean;
  onResult?: (r: ChainResult) => void;
}

export interface ChainCampaignSummary {
  seeds: number;
  steps: number;
  livenessSteps: number;
  failures: ChainResult[];
  elapsedMs: number;
  /** Wall-clock cost of 1,000 steps (both phases). */
  msPer1000Steps: number;
  /** Simulated time over all seeds. */
  simTimeMs: number;
  /** The longest liveness phase (simulated ms) and its seed. */
  slowestRecovery: { seed: number; ms: number };
}

export async function runChainCampaign(o: ChainCampaignOptions): Promise<ChainCampaignSummary> {
  const t0 = performance.now();
  const s: ChainCampaignSummary = { seeds: 0, steps: 0, livenessSteps: 0, failures: [], elapsedMs: 0, msPer1000Steps: 0, simTimeMs: 0, slowestRecovery: { seed: o.from, ms: 0 } };
  for (let seed = o.from; seed < o.from + o.count; seed++) {
    const r = await simulateChain({ seed, steps: o.steps, bugs: o.bugs, skipInvariants: o.skipInvariants });
    s.seeds++;
    s.steps += r.steps;
    s.livenessSteps += r.livenessSteps;
    s.simTimeMs += r.simTimeMs;
    if (!r.violation && r.stats.livenessMs > s.slowestRecovery.ms) s.slowestRecovery = { seed, ms: r.stats.livenessMs };
    o.onResult?.(r);
    if (r.violation) {
      s.failures.push(r);
      if (o.stopOnViolation) break;
    }
  }
  s.elapsedMs = performance.now() - t0;
  const all = s.steps + s.livenessSteps;
  s.msPer1000Steps = all === 0 ? 0 : (s.elapsedMs * 1000) / all;
  return s;
}

export function describeChainCampaign(s: ChainCampaignSummary, stepsPerSeed: number): string {
  return (
    `${s.seeds} seeds x ${stepsPerSeed} steps (+${s.livenessSteps} liveness steps, ${(s.simTimeMs / 1000).toFixed(0)} simulated s): ` +
    `${s.failures.length} violation(s) in ${(s.elapsedMs / 1000).toFixed(1)} s, ${s.msPer1000Steps.toFixed(1)} ms per 1,000 steps; ` +
    `slowest recovery after the faults: ${(s.slowestRecovery.ms / 1000).toFixed(1)} s (seed ${s.slowestRecovery.seed})`
  );
}
