// Validator changes on a 5-node chain of compiled binaries: genesis validators 0, 1, 2; nodes 3 and
// 4 run consensus from the start as non-validators. The controllers apply each change at a block;
// the Raft membership must follow, the chain must keep growing, and no height may fork.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { E2EChain } from "./harness.ts";

const TEST_MS = 120_000;
const GENESIS = [0, 1, 2];

let e: E2EChain;

beforeAll(async () => {
  e = await E2EChain.start({ nodes: 5, seed: "e2e-membership", validators: GENESIS, blockInterval: 0 });
}, 120_000);

afterAll(async () => {
  await e?.close();
}, 30_000);

async function raftRunning(i: number): Promise<number | undefined> {
  return e.metric(i, "consensus_raft_running");
}

/** Node i left Raft: it logged "abort raft" after `mark` and reports no running peer. */
async function leftRaft(i: number, mark: number): Promise<void> {
  await e.waitLog(i, "abort raft", mark);
  expect(await raftRunning(i)).toBe(0);
  expect(await e.health(i)).toBe("SERVING"); // the process itself carries on
}

/** After the change at `at`, blocks come from `validators` only and every one of them commits blocks itself. */
async function chainRunsOn(validators: readonly number[], at: number, marks: readonly number[]): Promise<void> {
  await e.waitBlockBy(at, validators, (p) => validators.includes(p));
  for (const i of validators) await e.waitLog(i, "block committed", marks[i]);
  const top = e.top(validators);
  await e.waitHeight(top + 2, validators);
  const proposers = e.proposers(top, top + 2, validators[0]);
  expect([...proposers].every((p) => validators.includes(p))).toBe(true);
  const { index } = await e.leader(validators);
  expect(validators).toContain(index);
}

function marks(): number[] {
  return e.all().map((i) => e.logMark(i));
}

describe("validator changes on a 5-node chain", () => {
  test("non-validators stay out of Raft and follow the chain through block sync", async () => {
    await e.waitHeight(5, GENESIS);
    await e.leader(GENESIS);
    await e.waitHeight(4, [3, 4]);
    for (const i of [3, 4]) {
      expect(await raftRunning(i)).toBe(0);
      expect(e.chain.node(i).controller.block(3)!.source).toBe("sync");
    }
    for (const i of e.all()) expect(await e.health(i)).toBe("SERVING");
    e.chain.assertNoFork();
  }, TEST_MS);

  test("a removed validator leaves Raft and the other two go on", async () => {
    const { index: leader } = await e.leader(GENESIS);
    const removed = GENESIS.find((i) => i !== leader)!;
    const keep = GENESIS.filter((i) => i !== removed);
    const m = marks();
    const at = e.chain.setValidators(keep);
    await e.waitLog(leader, "apply config change", m[leader]);
    await leftRaft(removed, m[removed]);
    await chainRunsOn(keep, at, m);
    expect(e.commitViolations(false)).toEqual([]);
    e.chain.assertNoFork();
  }, TEST_MS);

  test("shrinking to one validator that is not the leader moves leadership to it", async () => {
    const current = e.chain.controllers[0].config.validators.map((v) => e.chain.nodes.findIndex((n) => Buffer.from(v).equals(n.address)));
    const { index: leader } = await e.leader(current);
    const sole = current.find((i) => i !== leader)!;
    const m = marks();
    const at = e.chain.setValidators([sole]);
    await e.waitLog(leader, "transferring leadership", m[leader]);
    await chainRunsOn([sole], at, m);
    await leftRaft(leader, m[leader]);
    expect(e.commitViolations(false)).toEqual([]);
    e.chain.assertNoFork();
  }, TEST_MS);

  test("restoring all three genesis validators brings the removed ones back into Raft", async () => {
    const m = marks();
    const at = e.chain.setValidators(GENESIS);
    await chainRunsOn(GENESIS, at, m);
    for (const i of GENESIS) expect(await raftRunning(i)).toBe(1);
    expect(e.commitViolations(false)).toEqual([]);
    e.chain.assertNoFork();
  }, TEST_MS);

  test("a complete replacement by the two nodes that started as non-validators", async () => {
    const m = marks();
    const at = e.chain.setValidators([3, 4]);
    await chainRunsOn([3, 4], at, m);
    for (const i of GENESIS) await leftRaft(i, m[i]);
    const top = e.top();
    await e.waitHeight(top + 2, [3, 4]);
    expect(e.commitViolations(false)).toEqual([]);
    e.chain.assertNoFork();
  }, TEST_MS);
});
