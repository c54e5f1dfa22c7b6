import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ProposalSchema } from "../../gen/common_pb.ts";
import { type ChainConfig, emptyChainConfig, encodeProposal } from "../../src/node/chain-config.ts";
import { systemClock, systemRandom } from "../../src/node/ports.ts";
import { Committer, type CommitterHost, MAX_QUEUED_ENTRIES } from "../../src/node/committer.ts";
import { encodeConfChangeV2 } from "../../src/raft/codec.ts";
import { ConfChangeTransition, ConfChangeType, type ConfChangeV2, type Entry, EntryType, newEntry } from "../../src/raft/types.ts";
import { captureLog } from "../support/capture-log.ts";
import { waitUntil } from "../support/wait-until.ts";
import { FakeController } from "./fake-controller.ts";

function block(index: number, height: bigint): Entry {
  return newEntry({ index, term: 2, data: encodeProposal(create(ProposalSchema, { height, data: new Uint8Array([7]) })) });
}

function setup(startHeight = 0n) {
  const controller = new FakeController();
  controller.height = startHeight;
  let config: ChainConfig = { ...emptyChainConfig(), height: startHeight };
  const applied: { index: number; height?: bigint; cc?: ConfChangeV2 | null }[] = [];
  const cap = captureLog();
  const fatal: unknown[] = [];
  /** What storage would hold: every committed entry handed over. */
  const stored = new Map<number, Entry>();
  const host: CommitterHost = {
    log: cap.log,
    controller,
    clock: systemClock,
    random: systemRandom,
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
  };
  const committer = new Committer(host, 0);
  const enqueue = (ents: Entry[]) => {
    for (const e of ents) stored.set(e.index, e);
    committer.enqueue(ents);
  };
  return { controller, applied, committer, enqueue, cap, fatal, config: () => config };
}

describe("commit pipeline", () => {
  test("blocks are checked then committed in order, each applied with the configuration the controller returned", async () => {
    const t = setup();
    t.enqueue([block(1, 1n), block(2, 2n), block(3, 3n)]);
    await waitUntil(() => t.applied.length === 3, "three applies");
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
    await waitUntil(() => t.applied.length === 1, "the apply", 10_000);
    expect(t.controller.count("CheckProposal")).toBe(4);
    expect(t.controller.committed).toEqual([1n]);
    expect(t.cap.lines.filter((l) => l.message === "block not committed yet, retrying" && l.level === "warn")).toHaveLength(1);
  });

  test("a failed CommitBlock is retried (the Rust service dropped the block)", async () => {
    const t = setup();
    t.controller.plan.commit = [130];
    t.enqueue([block(1, 1n)]);
    await waitUntil(() => t.applied.length === 1, "the apply");
    expect(t.controller.count("CommitBlock")).toBe(2);
    expect(t.controller.committed).toEqual([1n]);
  });

  test("a height the controller already has (ProposalTooLow) is confirmed by an idempotent CommitBlock", async () => {
    const t = setup();
    t.controller.height = 5n; // the controller synced ahead of consensus
    t.enqueue([block(1, 3n)]);
    await waitUntil(() => t.applied.length === 1, "the apply");
    expect(t.controller.committed).toEqual([]);
    expect(t.applied[0].height).toBe(3n);
  });

  test("blocks at or below the applied height, empty entries and undecodable data need no controller", async () => {
    const t = setup(4n);
    t.enqueue([block(1, 3n), newEntry({ index: 2, term: 2 }), newEntry({ index: 3, term: 2, data: new Uint8Array([0xff, 0xff]) })]);
    await waitUntil(() => t.applied.length === 3, "three applies");
    expect(t.controller.calls).toEqual([]);
    expect(t.cap.has("committed entry is not a Proposal; skipping it")).toBe(true);
  });

  test("conf changes are handed to Raft in log order, between blocks", async () => {
    const t = setup();
    const cc: ConfChangeV2 = { transition: ConfChangeTransition.Auto, changes: [{ changeType: ConfChangeType.AddNode, nodeId: 9n }], context: new Uint8Array() };
    t.enqueue([block(1, 1n), newEntry({ index: 2, term: 2, entryType: EntryType.EntryConfChangeV2, data: encodeConfChangeV2(cc) }), block(3, 2n)]);
    await waitUntil(() => t.applied.length === 3, "three applies");
    expect(t.applied.map((a) => a.index)).toEqual([1, 2, 3]);
    expect(t.applied[1].cc?.changes[0].nodeId).toBe(9n);
  });

  test("entries already queued are not queued twice (after a restart or a repeated Ready)", async () => {
    const t = setup();
    t.enqueue([block(1, 1n)]);
    t.enqueue([block(1, 1n), block(2, 2n)]);
    await waitUntil(() => t.applied.length === 2, "two applies");
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
    await waitUntil(() => t.applied.length === n, "every block applied", 20_000);
    expect(t.applied.map((a) => a.index)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(t.controller.committed).toHaveLength(n);
    expect(t.committer.backlog).toBe(0);
  });

  test("a snapshot installed meanwhile voids the block in flight and the queue it covers", async () => {
    const t = setup();
    t.controller.plan.check = ["hang"];
    t.enqueue([block(1, 1n), block(2, 2n), block(3, 3n)]);
    await waitUntil(() => t.controller.count("CheckProposal") === 1, "the first check");
    t.controller.height = 2n; // the snapshot's configuration: the controller syncs the rest itself
    t.committer.resetTo(2);
    await waitUntil(() => t.applied.length === 1, "the apply after the snapshot");
    expect(t.applied.map((a) => a.index)).toEqual([3]);
    expect(t.controller.committed).toEqual([3n]);
  });
});
