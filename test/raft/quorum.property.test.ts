// Quorum arithmetic against independent oracles (etcd quorum/quick_test.go): the majority commit
// index against sort-and-pick plus its defining property, the joint commit index against the min of
// both halves, and vote results against a brute force over every way the missing votes could fall.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { JointConfig } from "../../src/raft/quorum/joint.ts";
import { MajorityConfig, VoteResult } from "../../src/raft/quorum/majority.ts";
import type { NodeId } from "../../src/raft/types.ts";

/** Generous: the machine is shared and the brute-force oracles are exponential in the missing votes. */
const PROPERTY_TIMEOUT = 30_000;
const RUNS = { numRuns: 2000 };

/** Small ids and ids near 2^64 (SipHash ids are uint64, beyond 2^53). */
const idArb = fc.integer({ min: 1, max: 10 }).map((i) => (i <= 5 ? BigInt(i) : (1n << 64n) - BigInt(i)));
const votersArb = fc.uniqueArray(idArb, { maxLength: 9 });
/** Acked index per id; ids absent from the map count as 0, extra ids must be ignored. */
const ackedArb = fc.array(fc.tuple(idArb, fc.integer({ min: 0, max: 20 })), { maxLength: 12 }).map((kv) => new Map(kv));
const votesArb = fc.array(fc.tuple(idArb, fc.boolean()), { maxLength: 12 }).map((kv) => new Map(kv));

/** Sort ascending and pick the quorum-th largest; the empty config commits everything. */
function naiveCommitted(voters: NodeId[], acked: Map<NodeId, number>): number {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const idx = voters.map((id) => acked.get(id) ?? 0).sort((a, b) => a - b);
  const q = Math.floor(voters.length / 2) + 1;
  return idx[voters.length - q];
}

/** How many voters acked at least `i`. */
function ackedAtLeast(voters: NodeId[], acked: Map<NodeId, number>, i: number): number {
  return voters.filter((id) => (acked.get(id) ?? 0) >= i).length;
}

/** Every way to fill in the missing votes of `ids`. */
function* completions(ids: NodeId[], votes: Map<NodeId, boolean>): Generator<Map<NodeId, boolean>> {
  const missing = ids.filter((id) => !votes.has(id));
  for (let mask = 0; mask < 1 << missing.length; mask++) {
    const c = new Map(votes);
    missing.forEach((id, bit) => c.set(id, ((mask >> bit) & 1) === 1));
    yield c;
  }
}

/** A complete vote wins iff a strict majority said yes (an empty config always wins). */
function wins(voters: NodeId[], votes: Map<NodeId, boolean>): boolean {
  return voters.length === 0 || voters.filter((id) => votes.get(id) === true).length * 2 > voters.length;
}

/** Won if every completion wins, Lost if none does, else Pending. */
function bruteForceVote(halves: NodeId[][], votes: Map<NodeId, boolean>): VoteResult {
  const ids = [...new Set(halves.flat())];
  let anyWin = false;
  let anyLoss = false;
  for (const c of completions(ids, votes)) {
    if (halves.every((h) => wins(h, c))) anyWin = true;
    else anyLoss = true;
  }
  return anyWin && !anyLoss ? VoteResult.Won : anyLoss && !anyWin ? VoteResult.Lost : VoteResult.Pending;
}

describe("majority quorum", () => {
  test("committedIndex equals sort-and-pick and is the largest index a majority acked", () => {
    fc.assert(
      fc.property(votersArb, ackedArb, ackedArb, (voters, acked, acked2) => {
        const c = new MajorityConfig(voters);
        const got = c.committedIndex((id) => acked.get(id));
        expect(got).toBe(naiveCommitted(voters, acked));
        if (voters.length > 0) {
          const q = Math.floor(voters.length / 2) + 1;
          expect(ackedAtLeast(voters, acked, got)).toBeGreaterThanOrEqual(q);
          expect(ackedAtLeast(voters, acked, got + 1)).toBeLessThan(q);
        }
        // The same config answers a second, different question correctly (no state leaks between calls).
        expect(c.committedIndex((id) => acked2.get(id))).toBe(naiveCommitted(voters, acked2));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);

  test("voteResult matches a brute force over every completion of the missing votes", () => {
    fc.assert(
      fc.property(votersArb, votesArb, (voters, votes) => {
        expect(new MajorityConfig(voters).voteResult((id) => votes.get(id))).toBe(bruteForceVote([voters], votes));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);

  test("examples: a 3-node cluster commits the median, an empty config commits everything and wins every vote", () => {
    const c = new MajorityConfig([1n, 2n, 3n]);
    const acked = new Map([
      [1n, 100],
      [2n, 101],
      [3n, 99],
    ]);
    expect(c.committedIndex((id) => acked.get(id))).toBe(100);
    // An unknown voter counts as having acked nothing.
    expect(c.committedIndex((id) => (id === 3n ? undefined : acked.get(id)))).toBe(100);
    expect(c.committedIndex((id) => (id === 1n ? acked.get(id) : undefined))).toBe(0);
    expect(new MajorityConfig().committedIndex(() => 0)).toBe(Number.POSITIVE_INFINITY);
    expect(new MajorityConfig().voteResult(() => undefined)).toBe(VoteResult.Won);
  });
});

describe("joint quorum", () => {
  test("committedIndex is the min of both halves' commit indexes", () => {
    fc.assert(
      fc.property(votersArb, votersArb, ackedArb, (incoming, outgoing, acked) => {
        const j = new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing));
        expect(j.committedIndex((id) => acked.get(id))).toBe(Math.min(naiveCommitted(incoming, acked), naiveCommitted(outgoing, acked)));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);

  test("a joint config with an empty outgoing half behaves exactly like its incoming majority", () => {
    fc.assert(
      fc.property(votersArb, ackedArb, votesArb, (voters, acked, votes) => {
        const j = new JointConfig(new MajorityConfig(voters));
        const maj = new MajorityConfig(voters);
        expect(j.committedIndex((id) => acked.get(id))).toBe(maj.committedIndex((id) => acked.get(id)));
        expect(j.voteResult((id) => votes.get(id))).toBe(maj.voteResult((id) => votes.get(id)));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);

  test("voteResult needs both halves: brute force over every completion of the missing votes", () => {
    fc.assert(
      fc.property(votersArb, votersArb, votesArb, (incoming, outgoing, votes) => {
        const j = new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing));
        expect(j.voteResult((id) => votes.get(id))).toBe(bruteForceVote([incoming, outgoing], votes));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);
});
