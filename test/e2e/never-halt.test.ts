// Ordinary bad days that must not halt a chain, each played with compiled binaries and the
// emulators: a controller without a WAL losing its last block (one validator while it runs; every
// node after a power loss), and a leader removed from the validators while its hand-over message
// (MsgTimeoutNow) is lost.
import { afterEach, describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { MessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import type { NetworkMsg } from "../../gen/network_pb.ts";
import type { ControllerEmulator } from "../../src/devchain/controller.ts";
import { E2EChain, LONG_MS } from "./harness.ts";

const TEST_MS = 150_000;
let e: E2EChain | undefined;

afterEach(async () => {
  await e?.close();
  e = undefined;
}, 30_000);

/** Every block a controller lost is back at its height, byte for byte the same block. */
function lostBlocksCameBack(c: ControllerEmulator): void {
  expect(c.lostBlocks.length).toBeGreaterThan(0);
  for (const lost of c.lostBlocks) {
    const now = c.block(lost.height);
    expect(now).toBeDefined();
    expect(Buffer.from(now!.hash).toString("hex")).toBe(Buffer.from(lost.hash).toString("hex"));
    expect(Buffer.from(now!.data)).toEqual(Buffer.from(lost.data));
  }
}

function raftType(msg: NetworkMsg): MessageType | undefined {
  if (msg.type !== "raft") return undefined;
  try {
    return fromBinary(MessageSchema, msg.msg).msgType;
  } catch {
    return undefined;
  }
}

describe("a controller that lost its last block (no WAL)", () => {
  test("one validator: its controller comes back a block behind while consensus runs; the block is committed again and the chain goes on", async () => {
    e = await E2EChain.start({ nodes: 1, seed: "e2e-recommit-one", blockInterval: 0 });
    await e.waitHeight(5);
    const c = e.chain.node(0).controller;
    const mark = e.logMark(0);
    await c.powerLoss(1);
    const lost = c.lostBlocks[0].height;
    await e.waitHeight(lost + 5);
    lostBlocksCameBack(c);
    await e.waitLog(0, "recommit entry succeed", mark);
    expect(await e.metric(0, "consensus_blocks_recommitted_total")).toBeGreaterThanOrEqual(1);
    // The controller's lower proposals are dropped with a rate-limited line, not one per answer.
    const invalid = e.logSince(0, mark).split("\n").filter((l) => l.includes("receive a proposal with invalid height")).length;
    expect(invalid).toBeLessThanOrEqual(6);
    e.chain.assertNoFork();
  }, TEST_MS);

  test("four validators after a power loss everywhere (consensus killed -9, every controller a block behind): all recommit and the chain goes on", async () => {
    e = await E2EChain.start({ nodes: 4, seed: "e2e-recommit-all", blockInterval: 0 });
    await e.waitHeight(5);
    for (const i of e.all()) await e.chain.killConsensus(i);
    for (const n of e.chain.nodes) await n.controller.powerLoss(1);
    const before = e.top();
    for (const i of e.all()) e.chain.startConsensus(i);
    await e.waitHeight(before + 4);
    for (const n of e.chain.nodes) lostBlocksCameBack(n.controller);
    e.chain.assertNoFork();
  }, TEST_MS);
});

describe("a leader removed from the validators", () => {
  test("while its hand-over (MsgTimeoutNow) is lost, it tries again, and the new validators go on once the loss stops", async () => {
    e = await E2EChain.start({ nodes: 4, seed: "e2e-lost-handover", blockInterval: 0 });
    await e.waitHeight(3);
    const { index: leader } = await e.leader();
    let lostTimeoutNows = 0;
    e.chain.fabric.dropWhen = (msg) => raftType(msg) === MessageType.MsgTimeoutNow && ++lostTimeoutNows > 0;
    const rest = e.all().filter((i) => i !== leader);
    const at = e.chain.setValidators(rest);
    // Two hand-overs lost: the first one and at least one retry.
    await e.wait(() => lostTimeoutNows >= 2, LONG_MS, "two lost MsgTimeoutNow");
    e.chain.fabric.dropWhen = undefined;
    await e.waitBlockBy(at, rest, (p) => rest.includes(p), LONG_MS);
    const top = e.top(rest);
    await e.waitHeight(top + 3, rest);
    const { index: newLeader } = await e.leader(rest);
    expect(rest).toContain(newLeader);
    e.chain.assertNoFork();
  }, TEST_MS);
});
