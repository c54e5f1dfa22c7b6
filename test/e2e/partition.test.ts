// Network partitions on a 4-node chain of compiled binaries (all validators): a 2|2 split has no
// majority anywhere, so no block may commit; a 1|3 split that isolates the leader lets the three
// go on under a new leader. Healing must converge every node onto one chain, with no fork ever.
// (The emulated controllers sync blocks among themselves in-process, outside the partition.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { E2EChain } from "./harness.ts";

const TEST_MS = 120_000;
/** How long a 2|2 split is watched: several election timeouts (2-4 s each here: tick 50 ms × 40). */
const WATCH_MS = 8_000;

let e: E2EChain;

beforeAll(async () => {
  e = await E2EChain.start({ nodes: 4, seed: "e2e-partition", blockInterval: 0, raft: { electionTick: 40 } });
  await e.waitHeight(5);
}, 120_000);

afterAll(async () => {
  e?.chain.fabric.heal();
  await e?.close();
}, 30_000);

/** After healing: one leader for all four, every node commits new blocks through its own consensus. */
async function converges(): Promise<void> {
  const marks = e.all().map((i) => e.logMark(i));
  const { index } = await e.leader(e.all());
  const top = e.top();
  await e.waitHeight(top + 3);
  for (const i of e.all()) await e.waitLog(i, "block committed", marks[i]);
  expect((await e.leader(e.all())).index).toBe(index);
  e.chain.assertNoFork();
}

describe("partitions of a 4-node chain", () => {
  test("2|2: no block commits on either side and nothing forks; healing converges", async () => {
    const { index: leader } = await e.leader(e.all());
    const withLeader = [leader, e.all().find((i) => i !== leader)!];
    const rest = e.all().filter((i) => !withLeader.includes(i));
    e.chain.fabric.partition(withLeader, rest);
    // A block already committed in Raft may still reach the controllers; nothing after it can.
    const ceiling = e.top() + 1;
    const until = performance.now() + WATCH_MS;
    while (performance.now() < until) {
      expect(e.top()).toBeLessThanOrEqual(ceiling);
      await Bun.sleep(100);
    }
    e.chain.assertNoFork();
    e.chain.fabric.heal();
    await converges();
    expect(e.commitViolations(false)).toEqual([]);
  }, TEST_MS);

  test("1|3 isolating the leader: the three elect a new leader and go on; healing converges", async () => {
    const { index: old } = await e.leader(e.all());
    const majority = e.all().filter((i) => i !== old);
    const oldMark = e.logMark(old);
    e.chain.fabric.partition([old], majority);
    const h0 = e.top();
    const ms = await e.waitBlockBy(h0, majority, (p) => p !== old);
    console.log(`1|3 partition: first block by the majority's new leader after ${Math.round(ms)} ms`);
    const top = e.top(majority);
    await e.waitHeight(top + 3, majority);
    const { index: now } = await e.leader(majority);
    expect(now).not.toBe(old);
    // The isolated node commits nothing through Raft on its own (at most a block already
    // committed before the split).
    const committed = [...e.logSince(old, oldMark).matchAll(/block committed height=(\d+)/g)].map((m) => Number(m[1]));
    expect(committed.filter((h) => h > h0 + 1)).toEqual([]);
    e.chain.assertNoFork();

    e.chain.fabric.heal();
    await converges();
    expect(e.commitViolations(false)).toEqual([]);
  }, TEST_MS);
});
