import { describe, expect, test } from "bun:test";
import type { Proposal } from "../../gen/common_pb.ts";
import { type ChainConfig, emptyChainConfig } from "../../src/node/chain-config.ts";
import { MIN_STALL_MS, Proposer, RETRY_AFTER_FAILURE_MS } from "../../src/node/proposer.ts";
import { captureLog } from "../support/capture-log.ts";
import { waitUntil } from "../support/wait-until.ts";
import { FakeController } from "./fake-controller.ts";

function setup(blockInterval: number) {
  const controller = new FakeController();
  let now = 1_000;
  const config: ChainConfig = { ...emptyChainConfig(), height: 0n, blockInterval };
  const proposed: Proposal[] = [];
  const transfers: string[] = [];
  const controllerHeights: bigint[] = [];
  const cap = captureLog();
  let allowed = true;
  let transferTakes = true;
  const p = new Proposer({
    log: cap.log,
    controller,
    chainConfig: () => config,
    canPropose: () => allowed,
    propose: (x) => {
      proposed.push(x);
      return true;
    },
    transferLeadership: (reason) => {
      transfers.push(reason);
      return transferTakes;
    },
    controllerAt: (h) => controllerHeights.push(h),
    now: () => now,
  });
  return {
    p,
    controller,
    config,
    proposed,
    transfers,
    controllerHeights,
    cap,
    advance: (ms: number) => (now += ms),
    setAllowed: (v: boolean) => (allowed = v),
    setTransferTakes: (v: boolean) => (transferTakes = v),
  };
}

describe("leader proposer", () => {
  test("a new leader asks at once and proposes the next height", async () => {
    const t = setup(3);
    t.p.start();
    await waitUntil(() => t.proposed.length === 1, "a proposal");
    expect(t.proposed[0].height).toBe(1n);
  });

  test("a proposal whose height is not applied height + 1 is dropped", async () => {
    const t = setup(3);
    t.controller.proposalHeight = 5n;
    t.p.start();
    await waitUntil(() => t.controller.count("GetProposal") === 1, "the fetch");
    await Bun.sleep(0);
    expect(t.proposed).toHaveLength(0);
    expect(t.controllerHeights).toEqual([]); // ahead: its Reconfigure brings the height
  });

  test("a proposal below the next height shows a controller that lost blocks: reported, dropped, asked again after a pause, logged rate-limited", async () => {
    const t = setup(0);
    t.config.height = 10n;
    t.controller.proposalHeight = 10n; // the controller is at 9
    t.p.start();
    for (let i = 0; i < 50; i++) {
      await waitUntil(() => t.controller.count("GetProposal") === i + 1, "a fetch");
      await Bun.sleep(0);
      t.p.poll();
      expect(t.controller.count("GetProposal")).toBe(i + 1); // block_interval 0, yet no spinning
      t.advance(RETRY_AFTER_FAILURE_MS);
      t.p.poll();
    }
    expect(t.proposed).toHaveLength(0);
    expect(t.controllerHeights.every((h) => h === 9n)).toBe(true);
    expect(t.controllerHeights).toHaveLength(50);
    const lines = t.cap.lines.filter((l) => l.message === "receive a proposal with invalid height, drop it");
    expect(lines.length).toBeLessThanOrEqual(3); // 50 answers in 5 simulated seconds
  });

  test("no new fetch while a block is pending; the next one waits for the block interval", async () => {
    const t = setup(3);
    t.p.start();
    await waitUntil(() => t.proposed.length === 1, "a proposal");
    t.p.poll();
    expect(t.controller.count("GetProposal")).toBe(1); // block 1 is pending
    t.config.height = 1n;
    t.controller.height = 1n;
    t.p.blockApplied(1n);
    expect(t.controller.count("GetProposal")).toBe(1); // 3 s have not passed since the last answer
    t.advance(3_000);
    t.p.poll();
    await waitUntil(() => t.proposed.length === 2, "the second proposal");
    expect(t.proposed[1].height).toBe(2n);
  });

  test("block_interval 0 asks again as soon as the previous block is applied", async () => {
    const t = setup(0);
    t.p.start();
    await waitUntil(() => t.proposed.length === 1, "a proposal");
    t.config.height = 1n;
    t.controller.height = 1n;
    t.p.blockApplied(1n);
    await waitUntil(() => t.proposed.length === 2, "the second proposal");
  });

  test("nothing is proposed while a membership change is pending", async () => {
    const t = setup(0);
    t.setAllowed(false);
    t.p.start();
    t.p.poll();
    expect(t.controller.count("GetProposal")).toBe(0);
    t.setAllowed(true);
    t.p.poll();
    await waitUntil(() => t.proposed.length === 1, "a proposal");
  });

  test("without a valid proposal for 4 block intervals the leader hands over, once per stall", async () => {
    const t = setup(3);
    t.controller.plan.get = [139, 139, 139, 139, 139, 139];
    t.p.start();
    await waitUntil(() => t.controller.count("GetProposal") === 1, "the first fetch");
    await Bun.sleep(0);
    for (let i = 0; i < 4; i++) {
      t.advance(3_000);
      t.p.poll();
      await Bun.sleep(0);
    }
    expect(t.transfers).toEqual([]);
    t.advance(1);
    t.p.poll();
    expect(t.transfers).toEqual(["stalled proposals"]);
    t.p.poll();
    expect(t.transfers).toHaveLength(1);
    // The hand-over may not take (no follower up to date, a lost MsgTimeoutNow): tried again a period later.
    t.advance(12_001);
    t.p.poll();
    expect(t.transfers).toHaveLength(2);
  });

  test("a stall with no follower to take over yet is tried again on the next poll, warned about once", async () => {
    // Seen in the chain simulator: a stall period equal to a multiple of the election timeout made
    // every attempt fall on the tick where check-quorum clears the followers' recent activity.
    const t = setup(1);
    t.setAllowed(false);
    t.setTransferTakes(false);
    t.p.start();
    t.advance(4_001);
    t.p.poll();
    expect(t.transfers).toEqual(["stalled proposals"]);
    t.advance(100);
    t.p.poll();
    t.advance(100);
    t.p.poll();
    expect(t.transfers).toHaveLength(3);
    t.setTransferTakes(true);
    t.advance(100);
    t.p.poll();
    expect(t.transfers).toHaveLength(4);
    // Once a hand-over is under way, the next attempt waits for another stall period.
    t.advance(100);
    t.p.poll();
    expect(t.transfers).toHaveLength(4);
    expect(t.cap.lines.filter((l) => l.message === "no block proposed for too long, transferring leadership")).toHaveLength(1);
  });

  test("a leader that cannot propose at all (membership change that never settles) hands over too", async () => {
    const t = setup(1);
    t.setAllowed(false);
    t.p.start();
    t.advance(3_999); // 4 x block_interval 1 s
    t.p.poll();
    expect(t.transfers).toEqual([]);
    t.advance(2);
    t.p.poll();
    expect(t.controller.count("GetProposal")).toBe(0);
    expect(t.transfers).toEqual(["stalled proposals"]);
    t.advance(4_001);
    t.p.poll();
    expect(t.transfers).toHaveLength(2);
  });

  test("a block proposed but never applied counts as a stall (its own controller does not commit it)", async () => {
    const t = setup(0);
    t.p.start();
    await waitUntil(() => t.proposed.length === 1, "a proposal");
    t.advance(MIN_STALL_MS + 1);
    t.p.poll();
    expect(t.transfers).toEqual(["stalled proposals"]);
  });

  test("with block_interval 0 the stall window is at least the minimum, not zero", async () => {
    const t = setup(0);
    t.controller.plan.get = ["unavailable", "unavailable", "unavailable"];
    t.p.start();
    await waitUntil(() => t.controller.count("GetProposal") === 1, "the first fetch");
    t.advance(MIN_STALL_MS - 10);
    t.p.poll();
    expect(t.transfers).toEqual([]);
    t.advance(20);
    t.p.poll();
    expect(t.transfers).toEqual(["stalled proposals"]);
  });

  test("stop() forgets the pending block and ignores a late answer", async () => {
    const t = setup(3);
    t.controller.plan.get = ["hang"];
    t.p.start();
    await waitUntil(() => t.controller.count("GetProposal") === 1, "the fetch");
    t.p.stop();
    await Bun.sleep(5);
    expect(t.proposed).toHaveLength(0);
    expect(t.p.isActive).toBe(false);
  });
});
