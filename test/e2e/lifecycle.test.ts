// One 3-node chain of compiled binaries, taken through a node's life in sequence: steady growth,
// hostile peer messages, a block-interval change, kill -9 and SIGTERM of the leader, a crash of
// every node at once, and a node whose data dir was wiped. No fork at any height, ever.
//
// Elections here time out after 3-6 s (tick 50 ms × 60): a SIGTERM hand-off that did not work
// would take at least 4 s (1 s hand-off wait + 3 s), so "about a second" is told apart from it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { MessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { NetworkMsgHandlerService, NetworkMsgSchema, type NetworkMsg } from "../../gen/network_pb.ts";
import { grpcClient } from "../../src/devchain/grpc.ts";
import { seededRng } from "../../src/devchain/rng.ts";
import { GrpcJsClient } from "../support/grpc-js-client.ts";
import { E2EChain, LONG_MS } from "./harness.ts";

const TEST_MS = 120_000;
const ELECTION_MIN_MS = 50 * 60;

let e: E2EChain;

beforeAll(async () => {
  e = await E2EChain.start({ nodes: 3, seed: "e2e-lifecycle", blockInterval: 0, raft: { electionTick: 60 } });
}, 120_000);

afterAll(async () => {
  await e?.close();
}, 30_000);

function others(of: number): number[] {
  return e.all().filter((i) => i !== of);
}

/** Starts every (stopped) node; each must take part in Raft again and the chain must grow on. */
async function restartAll(): Promise<void> {
  const top = e.top();
  const marks = e.all().map((i) => e.logMark(i));
  for (const i of e.all()) e.chain.startConsensus(i);
  await e.leader(e.all());
  await e.waitHeight(top + 3);
  for (const i of e.all()) await participates(i, marks[i]);
}

/** Node i runs Raft again: its consensus commits new blocks to its controller. */
async function participates(i: number, mark: number): Promise<void> {
  await e.waitLog(i, "block committed", mark);
  e.chain.assertNoFork();
}

describe("a 3-node chain of compiled binaries", () => {
  test("grows steadily: one leader, every node commits every block exactly once, health SERVING", async () => {
    await e.waitHeight(10);
    const leader = await e.leader();
    expect(leader.term).toBeGreaterThan(5); // the bootstrap snapshot is at term 5
    for (const i of e.all()) expect(await e.health(i)).toBe("SERVING");
    expect(e.commitViolations(true)).toEqual([]);
    e.chain.assertNoFork();
    // Each node's consensus committed the blocks itself (block sync is only a fallback).
    for (const i of e.all()) expect(e.log(i)).toContain("block committed");
    // No controller had a block before the leader's controller handed it out as a proposal (the
    // latency bench measures between these two moments).
    for (let h = 1; h <= 10; h++) {
      const proposer = e.chain.node(0).controller.block(h)!.header.proposer;
      const handedOut = e.chain.nodes.find((n) => Buffer.from(proposer).equals(n.address))!.controller.proposalAnsweredAt(h)!;
      for (const c of e.chain.controllers) expect(c.block(h)!.appendedAt).toBeGreaterThan(handedOut);
    }
  }, TEST_MS);

  test("malformed peer messages are refused with INVALID_ARGUMENT or dropped, and change nothing", async () => {
    const before = await e.leader();
    const h0 = e.top();
    const terms = await Promise.all(e.all().map((i) => e.metric(i, "consensus_term")));
    const target = before.index;
    const follower = others(target)[0];
    const id = e.ids[target];
    const valid = toBinary(MessageSchema, create(MessageSchema, { msgType: MessageType.MsgHeartbeat, to: id, from: e.ids[follower], term: 1n, context: new Uint8Array(40) }));
    const envelope = (m: MessageInitShape<typeof NetworkMsgSchema>) => create(NetworkMsgSchema, { module: "consensus", type: "raft", origin: e.chain.node(follower).origin, ...m });
    const raft = (m: MessageInitShape<typeof MessageSchema>) => envelope({ msg: toBinary(MessageSchema, create(MessageSchema, { to: id, from: e.ids[follower], ...m })) });

    const refused: [string, NetworkMsg][] = [
      ["wrong module", envelope({ module: "controller", msg: valid })],
      ["unknown type", envelope({ type: "gossip", msg: valid })],
      ["empty raft payload (to = 0)", envelope({ msg: new Uint8Array() })],
      ["raft payload cut inside a field", envelope({ msg: valid.subarray(0, valid.length - 7) })],
      ["invalid wire type", envelope({ msg: new Uint8Array([0x0f, 0x01]) })],
      ["overlong varint", envelope({ msg: new Uint8Array([0x10, ...Array(11).fill(0xff)]) })],
      ["probe id of 7 bytes", envelope({ type: "probe", msg: new Uint8Array(7).fill(1) })],
      ["probe id 0", envelope({ type: "probe", msg: new Uint8Array(8) })],
      ["refresh id of 9 bytes", envelope({ type: "refresh", msg: new Uint8Array(9).fill(1) })],
    ];
    // Well-formed envelopes whose Raft content must not touch the node: terms beyond 2^53-1 (never
    // rounded), local message types, an unknown type, strangers. Refusing them or taking and
    // dropping them are both fine; an error the network would retry is not.
    const harmless: [string, NetworkMsg][] = [
      ["heartbeat at term 2^60", raft({ msgType: MessageType.MsgHeartbeat, term: 1n << 60n })],
      ["vote request at index 2^62", raft({ msgType: MessageType.MsgRequestVote, term: BigInt(before.term + 1), index: 1n << 62n, logTerm: 1n << 62n })],
      ["MsgHup from outside", raft({ msgType: MessageType.MsgHup })],
      ["MsgBeat from outside", raft({ msgType: MessageType.MsgBeat })],
      ["MsgCheckQuorum from outside", raft({ msgType: MessageType.MsgCheckQuorum })],
      ["unknown message type 99", raft({ msgType: 99 as MessageType, term: BigInt(before.term) })],
      ["append response from a stranger", raft({ msgType: MessageType.MsgAppendResponse, from: 42n, term: BigInt(before.term), index: 1n << 40n })],
    ];

    const client = grpcClient(NetworkMsgHandlerService, e.chain.node(target).ports.grpc, "network", 5000);
    const codeOf = async (m: NetworkMsg) => {
      try {
        await client.processNetworkMsg(m);
        return "OK";
      } catch (err) {
        return Code[ConnectError.from(err).code];
      }
    };
    for (const [what, m] of refused) expect([what, await codeOf(m)]).toEqual([what, "InvalidArgument"]);
    for (const [what, m] of harmless) expect([what, ["OK", "InvalidArgument"].includes(await codeOf(m))]).toEqual([what, true]);

    // Random payloads: never an error the network would retry (UNKNOWN, INTERNAL, ...).
    const rng = seededRng(7);
    const seen = new Set<string>();
    for (let k = 0; k < 200; k++) {
      const bytes = Uint8Array.from({ length: Math.floor(rng() * 64) }, () => Math.floor(rng() * 256));
      const type = ["raft", "probe", "probe-resp", "refresh"][k % 4];
      seen.add(await codeOf(envelope({ type, msg: bytes })));
    }
    expect([...seen].filter((c) => c !== "OK" && c !== "InvalidArgument")).toEqual([]);

    // Request bodies that are not a NetworkMsg at all, through a third-party client (tonic and
    // grpc-go answer INTERNAL here, which the network service would retry).
    const grpcJs = new GrpcJsClient(e.chain.node(follower).ports.grpc);
    try {
      for (const body of [Buffer.from([0xff, 0xff, 0xff]), Buffer.from("not a protobuf message at all")]) {
        const r = await grpcJs.callPath("/network.NetworkMsgHandlerService/ProcessNetworkMsg", body);
        expect(r.error?.code).toBe(3); // INVALID_ARGUMENT
      }
    } finally {
      grpcJs.close();
    }

    await e.waitAbove(h0 + 3, e.all());
    const after = await e.leader();
    expect(after).toEqual(before);
    expect(await Promise.all(e.all().map((i) => e.metric(i, "consensus_term")))).toEqual(terms);
    for (const i of e.all()) expect(await e.health(i)).toBe("SERVING");
    expect(e.commitViolations(true)).toEqual([]);
    e.chain.assertNoFork();
  }, TEST_MS);

  test("a block-interval change is followed, and so is the change back", async () => {
    const slowFrom = e.chain.setBlockInterval(3);
    await e.waitHeight(slowFrom + 4);
    const c = e.chain.node(0).controller;
    const ts = (h: number) => Number(c.block(h)!.header.timestamp);
    // The first block after the change may have been fetched under the old interval.
    const slowGaps = [2, 3, 4].map((k) => ts(slowFrom + k) - ts(slowFrom + k - 1));
    console.log(`block gaps at interval 3 s: ${slowGaps.join(", ")} ms`);
    for (const gap of slowGaps) {
      expect(gap).toBeGreaterThanOrEqual(2990);
      expect(gap).toBeLessThan(3000 + 5000);
    }
    for (const x of e.chain.controllers) expect(x.config.blockInterval).toBe(3);

    const fastFrom = e.chain.setBlockInterval(0);
    await e.waitHeight(fastFrom + 8, e.all(), LONG_MS);
    const fastGaps = [2, 3, 4, 5, 6, 7, 8].map((k) => ts(fastFrom + k) - ts(fastFrom + k - 1)).sort((a, b) => a - b);
    console.log(`block gaps at interval 0: ${fastGaps.join(", ")} ms`);
    expect(fastGaps[3]).toBeLessThan(1500); // median: blocks follow each other again, not 3 s apart
    expect(e.commitViolations(true)).toEqual([]);
    e.chain.assertNoFork();
  }, TEST_MS);

  test("kill -9 of the leader: a new leader carries on (failover time reported)", async () => {
    const { index: old } = await e.leader();
    const survivors = others(old);
    const h0 = e.top();
    const t0 = performance.now();
    await e.chain.killConsensus(old);
    const ms = await e.waitBlockBy(h0, survivors, (p) => p !== old, LONG_MS, t0);
    console.log(`kill -9 failover: first block by a new leader ${Math.round(ms)} ms after the kill (election timeout ${ELECTION_MIN_MS}-${2 * ELECTION_MIN_MS} ms)`);
    expect(ms).toBeLessThan(2 * ELECTION_MIN_MS + 10_000);
    const now = await e.leader(survivors);
    expect(now.index).not.toBe(old);

    const mark = e.logMark(old);
    e.chain.startConsensus(old);
    await participates(old, mark);
    await e.leader(e.all());
    expect(e.commitViolations(false)).toEqual([]);
  }, TEST_MS);

  test("SIGTERM of the leader: it hands leadership over and the next block comes in about a second", async () => {
    const { index: old } = await e.leader(e.all());
    const survivors = others(old);
    const marks = e.all().map((i) => e.logMark(i));
    const h0 = e.top();
    const t0 = performance.now();
    const exited = e.chain.stopConsensus(old);
    const ms = await e.waitBlockBy(h0, survivors, (p) => p !== old, LONG_MS, t0);
    console.log(`SIGTERM failover: first block by the new leader ${Math.round(ms)} ms after the signal`);
    expect(await exited).toBe(0);
    expect(e.logSince(old, marks[old])).toContain("handing leadership over before stopping");
    // The new leader was elected on the old one's word, not after an election timeout. (The old
    // one may stop before it hears of its successor: its wait is bounded by 1 s.)
    expect(survivors.some((i) => e.logSince(i, marks[i]).includes("received MsgTimeoutNow and starts an election"))).toBe(true);
    // Without the hand-off this takes ≥ 1 s (hand-off wait) + 3 s (election timeout).
    expect(ms).toBeLessThan(3000);

    const restart = e.logMark(old);
    e.chain.startConsensus(old);
    await participates(old, restart);
    await e.leader(e.all());
    expect(e.commitViolations(true)).toEqual([]);
  }, TEST_MS);

  test("all nodes stopped together and restarted: the chain resumes where it was, without a fork", async () => {
    await e.leader(e.all());
    const codes = await Promise.all(e.all().map((i) => e.chain.stopConsensus(i)));
    expect(codes).toEqual([0, 0, 0]);
    await restartAll();
    expect(e.commitViolations(true)).toEqual([]);
  }, TEST_MS);

  test("all nodes killed at once and restarted: the chain resumes where it was, without a fork", async () => {
    await e.leader(e.all());
    await Promise.all(e.all().map((i) => e.chain.killConsensus(i)));
    await restartAll();
    // A crash between the controller's commit and the applied index reaching disk re-commits that
    // one block (idempotent at the controller); every block still entered each chain once.
    expect(e.commitViolations(false)).toEqual([]);
  }, TEST_MS);

  test("a node whose data dir was wiped rejoins through a snapshot and commits blocks again", async () => {
    const { index: leader } = await e.leader(e.all());
    const wiped = others(leader)[0];
    // Wiped at a running chain (its controller above genesis), not at height 0, where an empty
    // store starts from the genesis bootstrap as every node of a new chain does.
    await e.waitHeight(2);
    expect(await e.chain.stopConsensus(wiped)).toBe(0);
    e.chain.wipeConsensusData(wiped);
    // Meanwhile the other two go past the log tail a leader keeps (200 applied entries, compacted
    // every 64), so that the log alone can no longer bring the wiped node back.
    const applied = async () => (await e.metric(leader, "consensus_applied_index")) ?? 0;
    await e.wait(async () => (await applied()) >= 300, 90_000, "the leader's applied index to pass 300");
    const mark = e.logMark(wiped);
    e.chain.startConsensus(wiped);
    // Its empty store waits for the leader's snapshot instead of bootstrapping from the validator list.
    await e.waitLog(wiped, "empty raft storage at a running chain", mark);
    await e.waitLog(wiped, "apply_snapshot", mark);
    await participates(wiped, mark);
    await e.wait(
      async () => {
        const [a, b] = await Promise.all([e.metric(wiped, "consensus_applied_index"), e.metric(leader, "consensus_applied_index")]);
        return a !== undefined && b !== undefined && b - a <= 2;
      },
      LONG_MS,
      `node${wiped}'s applied index to reach the leader's`,
    );
    const h = e.top();
    await e.waitHeight(h + 2);
    expect(await e.health(wiped)).toBe("SERVING");
    expect(e.commitViolations(false)).toEqual([]);
    e.chain.assertNoFork();
  }, 180_000);

  test("every data dir wiped at a non-zero height (cloud-op rollback --clean): the chain resumes", async () => {
    await e.leader(e.all());
    // The operator procedure: the chain is stopped at one height (cloud-op rolls every controller
    // back to the same block) before the consensus data is deleted. With no Raft state left, a
    // controller a block behind the others would propose a second block at a height they have.
    // A slow block interval leaves a quiet window in which every controller has the same height.
    const slowFrom = e.chain.setBlockInterval(3);
    await e.waitHeight(slowFrom + 1);
    await e.wait(async () => new Set(e.chain.heights()).size === 1, LONG_MS, "every controller at the same height");
    await Promise.all(e.all().map((i) => e.chain.stopConsensus(i)));
    expect(new Set(e.chain.heights()).size).toBe(1);
    for (const i of e.all()) e.chain.wipeConsensusData(i);
    const marks = e.all().map((i) => e.logMark(i));
    // Each fresh store waits to hear from a leader first (it could be joining a running chain);
    // when none appears (30 s with these fast timers), the first listed validator starts the Raft
    // state from the validator list and campaigns, the others take it from its snapshot or start
    // it the same way, and the chain goes on.
    await restartAll();
    const lateStarts = e.all().filter((i) => e.logSince(i, marks[i]).includes("no leader heard from; starting the chain's raft state"));
    expect(lateStarts.length).toBeGreaterThan(0);
    expect(e.commitViolations(false)).toEqual([]);
    e.chain.assertNoFork();
  }, 180_000);
});
