// A new chain's first block, with the Rust service's default timers (ticks of 200 ms, heartbeats
// every 15 ticks, elections after 50-100 ticks: 10-20 s). The first listed validator campaigns as
// soon as its peers' network origins are known, instead of campaigning into the void and leaving
// the chain to wait out an election timeout.
import { afterEach, describe, expect, test } from "bun:test";
import { E2EChain } from "./harness.ts";

const DEFAULT_TIMERS = { tickIntervalInMillis: 200, heartbeatTick: 15, electionTick: 50 };
let e: E2EChain | undefined;

afterEach(async () => {
  await e?.close();
  e = undefined;
}, 30_000);

describe("a new chain with the default timers", () => {
  for (const run of [1, 2, 3]) {
    // Most of the 5 s is the controller's: it retries its start-up Reconfigure every 3 s and serves
    // only once consensus took it.
    test(`commits block 1 within 5 s, proposed by the first listed validator (start ${run})`, async () => {
      const started = performance.now();
      e = await E2EChain.start({ nodes: 4, seed: `e2e-first-block-${run}`, blockInterval: 0, raft: DEFAULT_TIMERS });
      await e.waitHeight(1, [0], 5_000);
      const ms = performance.now() - started;
      expect(ms).toBeLessThan(5_000);
      expect(e.proposers(0, 1, 0)).toEqual(new Set([0]));
      // One leader for the term, agreed by all (no second election).
      const { index, term } = await e.leader(e.all(), 5_000);
      expect(index).toBe(0);
      expect(term).toBe(6); // the bootstrap term 5, plus the one election
    }, 30_000);
  }
});
