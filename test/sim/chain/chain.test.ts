// The chain simulator in CI: replay, the report of a violation, a fixed campaign, and proof that it
// finds each known defect when the defect is put back.
import { afterAll, describe, expect, test } from "bun:test";
import { CHAIN_BUGS, type ChainBug, DEFAULT_STEPS } from "./bugs.ts";
import { addCampaignCounts } from "../campaign.ts";
import { type ChainCampaignSummary, describeChainCampaign, runChainCampaign } from "./campaign.ts";
import { type ChainResult, formatChainViolation, simulateChain } from "./sim.ts";

const STEPS = DEFAULT_STEPS;

function reports(rs: ChainResult[]): string[] {
  return rs.map((r) => formatChainViolation(r.violation!, STEPS));
}

describe("replay", () => {
  test("a seed replays bit for bit, and another seed takes another path", async () => {
    const a = await simulateChain({ seed: 7, steps: STEPS });
    const b = await simulateChain({ seed: 7, steps: STEPS });
    const c = await simulateChain({ seed: 8, steps: STEPS });
    expect(a.violation).toBeUndefined();
    expect(b).toEqual(a);
    expect(c.digest).not.toBe(a.digest);
    // The run did real work: blocks, leaders, faults, restarts.
    expect(a.stats.height).toBeGreaterThan(3);
    expect(a.stats.leaders).toBeGreaterThan(0);
    expect(a.stats.nemesisActions).toBeGreaterThan(5);
  }, 60_000);
});

/** Seeds the CI campaign runs: about two minutes on one core (about 0.12 s a seed). */
const CI_SEEDS = 1000;
const CHUNKS = 10;

describe("campaign: every invariant holds, and the chain grows again once the faults stop", () => {
  const done: ChainCampaignSummary[] = [];
  const per = CI_SEEDS / CHUNKS;
  for (let i = 0; i < CHUNKS; i++) {
    const from = 1 + i * per;
    test(`seeds ${from}..${from + per - 1} x ${STEPS} steps`, async () => {
      const s = await runChainCampaign({ from, count: per, steps: STEPS });
      done.push(s);
      expect(reports(s.failures)).toEqual([]);
      expect(s.steps).toBe(per * STEPS);
    }, 180_000);
  }
  afterAll(() => {
    if (done.length === 0) return;
    const total: ChainCampaignSummary = {
      ...addCampaignCounts(done),
      simTimeMs: done.reduce((a, s) => a + s.simTimeMs, 0),
      slowestRecovery: done.reduce((a, s) => (s.slowestRecovery.ms > a.ms ? s.slowestRecovery : a), { seed: 0, ms: 0 }),
    };
    console.log(`chain simulation campaign: ${describeChainCampaign(total, STEPS)}`);
  });
});

/**
 * Seeds that once found a defect (fixed since), replayed in every run even if the campaign's range
 * changes. Seeds shift when the nemesis or the parameters change; these are the ones at the commit
 * that fixed them: 476 a removed leader's own pre-vote kept its lease alive at the empty store whose
 * vote it needed; 598 a node that cannot be elected hid its higher term from the leader and the
 * candidates (it dropped their lower-term messages without an answer); 1031 a removed node with a
 * stale joint configuration, voted for by a node that followed the live leader; 2121 an empty store
 * started outside the validator list, made a validator by a later Reconfigure, kept refusing the
 * leader; 2212 a controller one block behind kept its candidate forever (the emulator lacked the
 * controller's 60 s growth check); 2440 a late bootstrap while the real holder of the chain's state
 * was down for 10 s, then every controller lost the block; 2678 and 3813 a second block loss during
 * recommits; 7281 a stalled leader's hand-over fell every time on the tick where check-quorum had
 * just cleared its followers' activity (no transferee, tried again only a stall period later);
 * 8165 a leader outside its own configuration, no validator among the voters, kept leading; 5256
 * a lone validator's controller lost a block gone from the Raft log, and its sync waited for two
 * growth checks, longer than the old liveness bound.
 */
const REGRESSION_SEEDS = [476, 598, 1031, 2121, 2212, 2440, 2678, 3813, 5256, 7281, 8165];

describe("regression seeds", () => {
  for (const seed of REGRESSION_SEEDS) {
    test(`seed ${seed}`, async () => {
      const r = await simulateChain({ seed, steps: STEPS });
      expect(r.violation === undefined ? [] : reports([r])).toEqual([]);
    }, 60_000);
  }
});

/** What each known defect breaks, and within how many seeds of the default campaign it must show. */
const BITES: Record<ChainBug, { invariants: string[]; within: number }> = {
  "no-recommit": { invariants: ["liveness", "lost block comes back"], within: 200 },
  "no-handover-retry": { invariants: ["liveness"], within: 200 },
  "stale-reject-resets-match": { invariants: ["stale rejection ignored"], within: 200 },
  "ack-before-fsync": { invariants: ["persist before ack"], within: 200 },
};

/**
 * The first seed (from 1) on which the defect breaks one of `invariants` while the same seed without
 * it passes, and how many seeds that took.
 */
async function firstCatch(bug: ChainBug, invariants: readonly string[], within: number) {
  for (let seed = 1; seed <= within; seed++) {
    const r = await simulateChain({ seed, steps: STEPS, bugs: [bug] });
    if (r.violation === undefined || !invariants.includes(r.violation.invariant)) continue;
    const clean = await simulateChain({ seed, steps: STEPS });
    if (clean.violation === undefined) return { seed, result: r };
  }
  return undefined;
}

describe("it bites: each known defect, put back, is found within 200 seeds", () => {
  for (const bug of CHAIN_BUGS) {
    test(bug, async () => {
      const { invariants, within } = BITES[bug];
      const found = await firstCatch(bug, invariants, within);
      expect(found).toBeDefined();
      const v = found!.result.violation!;
      console.log(`${bug}: found at seed ${found!.seed} by "${v.invariant}"`);
      // The report names the seed, the invariant and the command that replays it...
      const text = formatChainViolation(v, STEPS, [bug]);
      expect(text).toContain(`VIOLATION of "${v.invariant}" — seed ${v.seed}`);
      expect(text).toContain(`npm run sim:chain -- --seed ${v.seed} --steps ${STEPS} --bug ${bug}`);
      expect(v.trace.length).toBeGreaterThan(10);
      for (const line of v.trace) expect(line).toMatch(/^#\d+ t=\d+ \S/);
      // ...and the seed replays to the same violation.
      const again = await simulateChain({ seed: v.seed, steps: STEPS, bugs: [bug] });
      expect(again).toEqual(found!.result);
    }, 300_000);
  }
});
