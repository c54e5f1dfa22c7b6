import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ProposalSchema } from "../../gen/common_pb.ts";
import { type ChainConfig, emptyChainConfig, encodeProposal, tryDecodeProposal } from "../../src/node/chain-config.ts";
import { Committer, type CommitterHost, MAX_QUEUED_ENTRIES } from "../../src/node/committer.ts";
import { ConfChangeTransition, ConfChangeType, type ConfChangeV2, type Entry, EntryType, newEntry, codec } from "../../src/raft/index.ts";
import { captureLog } from "../support/capture-log.ts";
import type { NodeTestBug } from "../../src/node/test-bugs.ts";
import { SimClock } from "../support/sim-clock.ts";
import { FakeController } from "./fake-controller.ts";

function block(index: number, height: bigint): Entry {
  return newEntry({ index, term: 2, data: encodeProposal(create(ProposalSchema, { height, data: new Uint8Array([7, index, Number(height)]) })) });
}

function setup(startHeight = 0n, bugs: NodeTestBug[] = []) {
  const clock = new SimClock();
  const controller = new FakeController();
  controller.height = startHeight;
  let config: ChainConfig = { ...emptyChainConfig(), height: startHeight };
  const applied: { index: number; height?: bigint; cc?: ConfChangeV2 | null }[] = [];
  const cap = captureLog();
  const fatal: unknown[] = [];
  /** What storage would hold: every committed entry handed over. */
  const stored = new Map<number, Entry>();
  /** The first index still in the log (entries below it were compacted away). */
  let first = 1;
  const recommitted: bigint[] = [];
  const host: CommitterHost = {
    log: cap.log,
    controller,
    clock,
    random: { next: () => 0.5 },
    chainConfig: () => config,
    applied(index, c) {
      if (c) config = c;
      applied.push({ index, height: c?.height });
    },
    appliedConfChange(index, cc) {
      applied.push({ index, cc: cc ?? null });
    },
    blockCommitted() {},
    fatal: (e) => fatal.push(e),
    readEntries: (lo, hi) => Array.from({ length: hi - lo }, (_, i) => stored.get(lo + i)!),
    appliedRange: () => ({ first, applied: applied.at(-1)?.index ?? 0 }),
    blockRecommitted: (h) => recommitted.push(h),
    testBugs: new Set(bugs),
  };
  const committer = new Committer(host, 0);
  const enqueue = (ents: Entry[]) => {
    for (const e of ents) stored.set(e.index, e);
    committer.enqueue(ents);
  };
  return { clock, controller, applied, committer, enqueue, cap, fatal, stored, recommitted, config: () => config, compactTo: (i: number) => (first = i) };
}

describe("commit pipeline", () => {
  test("blocks are checked then committed in order, each applied with the configuration the controller returned", async () => {
    const t = setup();
    t.enqueue([block(1, 1n), block(2, 2n), block(3, 3n)]);
    await t.clock.until(() => t.applied.length === 3, 60_000, "three applies");
    expect(t.applied.map((a) => [a.index, a.height])).toEqual([[1, 1n], [2, 2n], [3, 3n]]);
    expect(t.controller.calls.map((c) => `${c.method}:${c.height}`)).toEqual([
      "CheckProposal:1", "CommitBlock:1", "CheckProposal:2", "CommitBlock:2", "CheckProposal:3", "CommitBlock:3",
    ]);
    expect(t.controller.committed).toEqual([1n, 2n, 3n]);
  });

  test("a controller that is down or behind is retried until it accepts the block, which is committed once", async () => {
    const t = setup();
    t.controller.plan.check = ["unavailable", 128, "unavailable"];
    t.enqueue([block(1, 1n)]);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply");
    expect(t.controller.count("CheckProposal")).toBe(4);
    expect(t.controller.committed).toEqual([1n]);
    expect(t.cap.lines.filter((l) => l.message === "block not committed yet, retrying" && l.level === "warn")).toHaveLength(1);
  });

  test("a failed CommitBlock is retried (the Rust service dropped the block)", async () => {
    const t = setup();
    t.controller.plan.commit = [130];
    t.enqueue([block(1, 1n)]);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply");
    expect(t.controller.count("CommitBlock")).toBe(2);
    expect(t.controller.committed).toEqual([1n]);
  });

  test("a height the controller already has (ProposalTooLow) is confirmed by an idempotent CommitBlock", async () => {
    const t = setup();
    t.controller.height = 5n; // the controller synced ahead of consensus
    t.enqueue([block(1, 3n)]);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply");
    expect(t.controller.committed).toEqual([]);
    expect(t.applied[0].height).toBe(3n);
  });

  test("blocks at or below the applied height, empty entries and undecodable data need no controller", async () => {
    const t = setup(4n);
    t.enqueue([block(1, 3n), newEntry({ index: 2, term: 2 }), newEntry({ index: 3, term: 2, data: new Uint8Array([0xff, 0xff]) })]);
    await t.clock.until(() => t.applied.length === 3, 60_000, "three applies");
    expect(t.controller.calls).toEqual([]);
    expect(t.cap.has("committed entry is not a Proposal; skipping it")).toBe(true);
  });

  test("conf changes are handed to Raft in log order, between blocks", async () => {
    const t = setup();
    const cc: ConfChangeV2 = { transition: ConfChangeTransition.Auto, changes: [{ changeType: ConfChangeType.AddNode, nodeId: 9n }], context: new Uint8Array() };
    t.enqueue([block(1, 1n), newEntry({ index: 2, term: 2, entryType: EntryType.EntryConfChangeV2, data: codec.encodeConfChangeV2(cc) }), block(3, 2n)]);
    await t.clock.until(() => t.applied.length === 3, 60_000, "three applies");
    expect(t.applied.map((a) => a.index)).toEqual([1, 2, 3]);
    expect(t.applied[1].cc?.changes[0].nodeId).toBe(9n);
  });

  test("entries already queued are not queued twice (after a restart or a repeated Ready)", async () => {
    const t = setup();
    t.enqueue([block(1, 1n)]);
    t.enqueue([block(1, 1n), block(2, 2n)]);
    await t.clock.until(() => t.applied.length === 2, 60_000, "two applies");
    expect(t.controller.committed).toEqual([1n, 2n]);
  });

  test("while the controller hangs, at most a bounded window of entries is held; the rest follows in order", async () => {
    const t = setup();
    t.controller.plan.check = ["hang"];
    const n = MAX_QUEUED_ENTRIES * 3;
    for (let i = 1; i <= n; i++) t.enqueue([block(i, BigInt(i))]);
    expect(t.committer.queued).toBeLessThanOrEqual(MAX_QUEUED_ENTRIES);
    expect(t.committer.backlog).toBe(n);
    t.committer.resetTo(0); // cancels the hung call (as a snapshot would), nothing is covered
    await t.clock.until(() => t.applied.length === n, 60_000, "every block applied");
    expect(t.applied.map((a) => a.index)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(t.controller.committed).toHaveLength(n);
    expect(t.committer.backlog).toBe(0);
  });

  test("a snapshot installed meanwhile voids the block in flight and the queue it covers", async () => {
    const t = setup();
    t.controller.plan.check = ["hang"];
    t.enqueue([block(1, 1n), block(2, 2n), block(3, 3n)]);
    await t.clock.until(() => t.controller.count("CheckProposal") === 1, 60_000, "the first check");
    t.controller.height = 2n; // the snapshot's configuration: the controller syncs the rest itself
    t.committer.resetTo(2);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply after the snapshot");
    expect(t.applied.map((a) => a.index)).toEqual([3]);
    expect(t.controller.committed).toEqual([3n]);
  });
});

describe("a controller that lost blocks (no WAL) gets them again", () => {
  /** Blocks 1..n committed and applied; the controller then comes back at `at`. */
  async function chainWithLoss(n: number, at: bigint, bugs: NodeTestBug[] = []) {
    const t = setup(0n, bugs);
    t.enqueue(Array.from({ length: n }, (_, i) => block(i + 1, BigInt(i + 1))));
    await t.clock.until(() => t.applied.length === n, 60_000, "the blocks");
    t.controller.height = at;
    t.controller.calls.length = 0;
    return t;
  }
  const commits = (t: ReturnType<typeof setup>) => t.controller.calls.filter((c) => c.method === "CommitBlock" && c.height !== (1n << 64n) - 1n);

  test("a lower height from the controller recommits the retained blocks above it, in order, with the very same bytes, before new ones", async () => {
    const t = await chainWithLoss(5, 3n);
    t.committer.controllerAt(3n, "reconfigure"); // confirmed by a ping first
    t.enqueue([block(6, 6n)]);
    await t.clock.until(() => t.applied.length === 6, 60_000, "block 6");
    expect(commits(t).map((c) => c.height)).toEqual([4n, 5n, 6n]);
    expect(commits(t)[0].data).toEqual(decodeData(t.stored.get(4)!));
    expect(commits(t)[1].data).toEqual(decodeData(t.stored.get(5)!));
    expect(t.recommitted).toEqual([4n, 5n]);
    expect(t.committer.recommitting).toBe(false);
    expect(t.cap.has("recommit entry succeed")).toBe(true);
  });

  test("a block in flight that the controller cannot take yet (ProposalTooHigh) makes it ask the controller's height, then recommit", async () => {
    const t = await chainWithLoss(3, 2n);
    t.enqueue([block(4, 4n)]);
    await t.clock.until(() => t.applied.length === 4, 60_000, "block 4");
    expect(commits(t).map((c) => c.height)).toEqual([3n, 4n]);
    expect(t.controller.calls.some((c) => c.method === "CommitBlock" && c.height === (1n << 64n) - 1n)).toBe(true);
  });

  test("blocks no longer in the log are left to the controller's block sync, said once; the retained ones follow when it has caught up", async () => {
    const t = await chainWithLoss(6, 1n);
    t.compactTo(4); // entries 1..3 compacted away
    t.committer.controllerAt(1n, "start");
    await t.clock.advance(30_000);
    expect(t.controller.height).toBe(1n); // 4 is too high until the gap is filled
    t.committer.controllerAt(1n, "proposal"); // the same report again, from every lower proposal
    t.committer.controllerAt(1n, "proposal");
    expect(t.cap.lines.filter((l) => l.message.includes("no longer in the raft log"))).toHaveLength(1);
    const attempts = t.controller.count("CheckProposal");
    expect(attempts).toBeLessThan(30); // backoff, not a loop
    t.controller.height = 3n; // block sync fetched 2 and 3 from peers
    await t.clock.until(() => !t.committer.recommitting, 60_000, "the recommits");
    expect(commits(t).map((c) => c.height)).toEqual([4n, 5n, 6n]);
  });

  test("with none of the lost blocks left in the log, repeated reports of that height give one line and no calls", async () => {
    const t = await chainWithLoss(3, 1n);
    t.compactTo(4); // everything applied was compacted away (a snapshot, say)
    for (let i = 0; i < 20; i++) t.committer.controllerAt(1n, "proposal");
    await t.clock.advance(10_000);
    expect(t.cap.lines.filter((l) => l.message.includes("no longer in the raft log"))).toHaveLength(1);
    expect(commits(t)).toEqual([]);
    expect(t.controller.count("CheckProposal")).toBe(0);
    expect(t.committer.recommitting).toBe(false);
  });

  test("heights at or above the applied one, or a second report while recommitting from lower, change nothing", async () => {
    const t = await chainWithLoss(4, 4n);
    t.committer.controllerAt(4n, "ping");
    t.committer.controllerAt(9n, "ping");
    expect(t.committer.recommitting).toBe(false);
    t.controller.height = 1n;
    t.controller.plan.check = ["hang"];
    t.committer.controllerAt(1n, "reconfigure");
    t.committer.controllerAt(2n, "reconfigure"); // an older report arriving late
    t.controller.plan.check = [];
    t.committer.resetTo(0); // frees the hung call, as a snapshot would
    await t.clock.until(() => !t.committer.recommitting, 60_000, "the recommits");
    expect(commits(t).map((c) => c.height)).toEqual([2n, 3n, 4n]);
  });

  test("a stale lower report (a Reconfigure from the controller's sync arriving late) is checked by a ping and commits nothing again", async () => {
    const t = await chainWithLoss(5, 5n); // the controller has every block
    t.committer.controllerAt(3n, "reconfigure");
    await t.clock.advance(1_000);
    expect(t.controller.calls.map((c) => c.height)).toEqual([(1n << 64n) - 1n]); // one ping, nothing else
    expect(t.committer.recommitting).toBe(false);
  });

  test("a controller that loses blocks again during the recommits gets them from its new height, in order", async () => {
    const t = await chainWithLoss(5, 3n);
    t.controller.plan.check = ["hang"];
    t.committer.controllerAt(3n, "reconfigure");
    await t.clock.until(() => t.controller.count("CheckProposal") === 1, 60_000, "the recommit of 4 in flight");
    t.controller.height = 1n; // a second power loss
    t.committer.controllerAt(1n, "reconfigure");
    await t.clock.until(() => !t.committer.recommitting, 60_000, "the recommits");
    expect(commits(t).map((c) => c.height)).toEqual([2n, 3n, 4n, 5n]);
    expect(t.controller.height).toBe(5n);
  });

  test("with the no-recommit defect re-injected nothing is recommitted (what the simulator must catch)", async () => {
    const t = await chainWithLoss(3, 1n, ["no-recommit"]);
    t.committer.controllerAt(1n, "reconfigure");
    expect(t.committer.recommitting).toBe(false);
    await t.clock.advance(10_000);
    expect(commits(t)).toEqual([]);
  });
});

function decodeData(e: Entry): Uint8Array {
  return tryDecodeProposal(e.data)!.data;
}

describe("early checks: a block is checked when it reaches the log, committed with CommitBlock alone", () => {
  const methods = (t: ReturnType<typeof setup>) => t.controller.calls.map((c) => `${c.method}:${c.height}`);

  test("the next block for an idle controller is checked before it is committed; its commit needs only CommitBlock", async () => {
    const t = setup();
    t.committer.appended([block(1, 1n)]);
    await t.clock.advance(1);
    expect(methods(t)).toEqual(["CheckProposal:1"]);
    t.enqueue([block(1, 1n)]);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply");
    expect(methods(t)).toEqual(["CheckProposal:1", "CommitBlock:1"]);
  });

  test("the result counts only for the very same bytes: another block at that height is checked again", async () => {
    const t = setup();
    t.committer.appended([block(1, 1n)]);
    const other = newEntry({ index: 1, term: 3, data: encodeProposal(create(ProposalSchema, { height: 1n, data: new Uint8Array([9]) })) });
    t.enqueue([other]);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply");
    expect(methods(t)).toEqual(["CheckProposal:1", "CheckProposal:1", "CommitBlock:1"]);
    expect(t.controller.calls[1].data).toEqual(new Uint8Array([9]));
  });

  test("no early check of a block that is not next; one that lands while the block before is committed is checked right after it", async () => {
    const t = setup();
    t.committer.appended([block(1, 2n)]); // a gap: the controller would take it as too high and sync
    await t.clock.advance(1);
    expect(methods(t)).toEqual([]);
    t.controller.plan.commit = ["hang"];
    t.enqueue([block(1, 1n)]);
    await t.clock.until(() => t.controller.count("CommitBlock") === 1, 60_000, "block 1 in flight");
    t.committer.appended([block(2, 2n)]);
    await t.clock.advance(1);
    expect(methods(t)).toEqual(["CheckProposal:1", "CommitBlock:1"]); // the controller is not at 1 yet
    t.committer.resetTo(0); // frees the hung call (as a snapshot would); block 1 is committed again
    await t.clock.until(() => t.applied.length === 1, 60_000, "block 1");
    await t.clock.advance(1);
    expect(methods(t).slice(-1)).toEqual(["CheckProposal:2"]); // block 2, before it is committed
    t.enqueue([block(2, 2n)]);
    await t.clock.until(() => t.applied.length === 2, 60_000, "block 2");
    expect(methods(t).filter((x) => x.endsWith(":2"))).toEqual(["CheckProposal:2", "CommitBlock:2"]);
  });

  test("a failed early check is only a missed shortcut: the commit path checks again", async () => {
    const t = setup();
    t.controller.plan.check = ["unavailable"];
    t.committer.appended([block(1, 1n)]);
    t.enqueue([block(1, 1n)]);
    await t.clock.until(() => t.applied.length === 1, 60_000, "the apply");
    expect(methods(t)).toEqual(["CheckProposal:1", "CheckProposal:1", "CommitBlock:1"]);
  });
});

