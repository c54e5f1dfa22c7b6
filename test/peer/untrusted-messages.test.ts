// The peer-message path against forged, stale, misdirected and flooding traffic: what
// reaches Raft, what is dropped (and counted), what the mailbook lets itself be told, and that every
// queue on the way is bounded.
import { codec } from "../../src/raft/index.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ConsensusConfigurationSchema } from "../../gen/common_pb.ts";
import { type Message as PbMessage, MessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { ConsensusMetrics, MAX_CALL_HISTOGRAMS } from "../../src/metrics/metrics.ts";
import { encodeChainConfig } from "../../src/node/chain-config.ts";
import { decodePeerId } from "../../src/peer/peer-id.ts";
import { LogLimiter } from "../../src/peer/rate.ts";
import { type NetworkOutlet, PeerTransport } from "../../src/peer/transport.ts";
import { captureLog } from "../support/capture-log.ts";
import { PeerRig } from "../support/peer-rig.ts";

const rigs: PeerRig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

function rig(opts: { peerMsgsPerSecond?: number } = {}): PeerRig {
  const r = new PeerRig(opts);
  rigs.push(r);
  return r;
}

type MsgInit = MessageInitShape<typeof MessageSchema>;

/** Delivers a raft message as the network would: `origin` is the sender as the network sees it. */
function deliver(r: PeerRig, origin: bigint, m: MsgInit): void {
  r.transport.handleInbound({ type: "raft", origin, msg: codec.messageFromPb(create(MessageSchema, { to: r.self.id, ...m })) });
}

/** Raft messages the peer sent since `from` (index into the network's record), decoded. */
function raftSent(r: PeerRig, from = 0): { origin: bigint; msg: PbMessage }[] {
  return r.network.sent
    .slice(from)
    .filter((n) => n.type === "raft")
    .map((n) => ({ origin: n.origin, msg: fromBinary(MessageSchema, n.msg) }));
}

/** Makes the rig's peer a follower of A at term 6 (A heartbeats from its real origin). */
async function followerOfA(r: PeerRig): Promise<void> {
  deliver(r, r.a.origin, { msgType: MessageType.MsgHeartbeat, from: r.a.id, term: 6n, commit: 5n });
  await r.settle();
  expect(r.state()).toMatchObject({ term: 6, leader: r.a.id });
}

describe("forged and misdirected raft messages change no state and are counted", () => {
  test("a vote request from an id outside the configuration and the validator list is dropped; from a member it is not", async () => {
    const r = rig();
    await followerOfA(r);
    const before = r.state();
    const sent = r.network.sent.length;
    deliver(r, 0x99n, { msgType: MessageType.MsgRequestVote, from: 0x4242n, term: 1000n, logTerm: 1000n, index: 1000n });
    await r.settle();
    expect(r.state()).toEqual({ ...before, mailbook: r.state().mailbook });
    expect(r.drops).toEqual(["not_member"]);
    expect(raftSent(r, sent)).toEqual([]);

    // Control: the same request from member B (from B's own origin) is stepped and moves the term.
    deliver(r, r.b.origin, { msgType: MessageType.MsgRequestVote, from: r.b.id, term: 1000n, logTerm: 1000n, index: 1000n });
    await r.settle();
    expect(r.state().term).toBe(1000);
    expect(r.drops).toEqual(["not_member"]);
  });

  test("a message claiming to come from this node itself is dropped", async () => {
    const r = rig();
    await followerOfA(r);
    const before = r.state();
    deliver(r, r.a.origin, { msgType: MessageType.MsgHeartbeat, from: r.self.id, term: 50n });
    await r.settle();
    expect(r.state()).toEqual(before);
    expect(r.drops).toEqual(["from_self"]);
  });

  test.each([
    ["MsgPropose (a forwarded proposal would inject an entry)", MessageType.MsgPropose],
    ["MsgTransferLeader (would depose the leader)", MessageType.MsgTransferLeader],
    ["MsgHup (local only)", MessageType.MsgHup],
    ["MsgReadIndex (unused)", MessageType.MsgReadIndex],
  ])("%s from a member is dropped as an unexpected type", async (_name, msgType) => {
    const r = rig();
    await followerOfA(r);
    const before = r.state();
    const sent = r.network.sent.length;
    deliver(r, r.a.origin, { msgType, from: r.a.id, term: 6n, entries: [{ data: new Uint8Array([1]) }] });
    await r.settle();
    expect(r.state()).toEqual(before);
    expect(r.drops).toEqual(["unexpected_type"]);
    expect(raftSent(r, sent)).toEqual([]);
  });

  test("a message without a term is dropped: Raft would take it for a local one (a candidate would adopt term 0)", async () => {
    const r = rig();
    await followerOfA(r);
    r.peer.node.campaign();
    await r.settle();
    const before = r.state();
    expect(before.role).not.toBe(0); // campaigning (pre-candidate)
    deliver(r, r.a.origin, { msgType: MessageType.MsgHeartbeat, from: r.a.id, term: 0n });
    await r.settle();
    expect(r.state()).toEqual(before);
    expect(r.drops).toEqual(["zero_term"]);
  });

  test("a message for another node is not stepped, not learned from, and answered with one refresh", async () => {
    const r = rig();
    await followerOfA(r);
    const before = r.state();
    const sent = r.network.sent.length;
    const stranger = 0x5555n;
    r.transport.handleInbound({
      type: "raft",
      origin: stranger,
      msg: codec.messageFromPb(create(MessageSchema, { msgType: MessageType.MsgHeartbeat, to: r.b.id, from: 0x77n, term: 99n })),
    });
    await r.settle();
    expect(r.state()).toEqual(before);
    expect(r.transport.mailbook.origin(0x77n)).toBeUndefined();
    expect(r.drops).toEqual(["misdirected"]);
    const refresh = r.network.sent.slice(sent);
    expect(refresh.map((n) => [n.type, n.origin, decodePeerId(n.msg)])).toEqual([["refresh", stranger, r.b.id]]);
  });

  test("a member of the outgoing half of a joint configuration is heard; the validator list alone also admits", async () => {
    const r = rig();
    await followerOfA(r);
    const c = 0xc0ffeen;
    const data = encodeChainConfig(create(ConsensusConfigurationSchema, { height: 20n, validators: r.controller.validators }));
    deliver(r, r.a.origin, {
      msgType: MessageType.MsgSnapshot,
      from: r.a.id,
      term: 6n,
      snapshot: {
        data,
        metadata: { index: 20n, term: 6n, confState: { voters: [r.a.id, r.self.id, r.b.id], votersOutgoing: [r.a.id, r.self.id, c] } },
      },
    });
    await r.settle();
    expect(r.peer.node.raft.prs.conf.voters.outgoing.voters.has(c)).toBe(true);
    const sent = r.network.sent.length;
    // The transport knows no origin for c yet: a probe-resp teaches it, then c's pre-vote is stepped.
    r.transport.handleInbound({ type: "probe-resp", origin: 0xc0n, id: c });
    deliver(r, 0xc0n, { msgType: MessageType.MsgRequestPreVote, from: c, term: 7n, logTerm: 6n, index: 20n });
    await r.settle();
    expect(r.drops).toEqual([]);
    const answers = raftSent(r, sent);
    expect(answers.map((a) => [a.origin, a.msg.msgType, a.msg.to])).toEqual([[0xc0n, MessageType.MsgRequestPreVoteResponse, c]]);
  });

  test("once the network is seen deriving origins from addresses, a validator's id from any other origin is dropped", async () => {
    const r = rig();
    await followerOfA(r); // A spoke from its address origin: the network works like network_zenoh
    expect(r.transport.mailbook.addressMode).toBe(true);
    const before = r.state();
    // B has not spoken yet; a forger claiming B is not bound and its messages are not stepped.
    for (const term of [500n, 900n]) deliver(r, 0xbad0n, { msgType: MessageType.MsgRequestVote, from: r.b.id, term, logTerm: term, index: term });
    await r.settle();
    expect(r.state()).toEqual(before);
    expect(r.transport.mailbook.origin(r.b.id)).toBeUndefined();
    expect(r.drops).toEqual(["origin_mismatch", "origin_mismatch"]);
    // Control: the same request from B's address origin is stepped.
    deliver(r, r.b.origin, { msgType: MessageType.MsgRequestVote, from: r.b.id, term: 900n, logTerm: 900n, index: 900n });
    await r.settle();
    expect(r.state().term).toBe(900);
  });
});

describe("stale-term messages behave as in raft-rs", () => {
  test("a stale append is answered with an append response carrying our term; the log is untouched", async () => {
    const r = rig();
    await followerOfA(r);
    const before = r.state();
    const sent = r.network.sent.length;
    deliver(r, r.b.origin, { msgType: MessageType.MsgAppend, from: r.b.id, term: 5n, logTerm: 5n, index: 5n, entries: [{ term: 5n, index: 6n }] });
    await r.settle();
    expect(r.state()).toEqual({ ...before, mailbook: r.state().mailbook });
    const out = raftSent(r, sent);
    expect(out.map((o) => [o.msg.msgType, o.msg.to, o.msg.term])).toEqual([[MessageType.MsgAppendResponse, r.b.id, 6n]]);
  });

  test("a stale pre-vote is rejected with our term", async () => {
    const r = rig();
    await followerOfA(r);
    const sent = r.network.sent.length;
    deliver(r, r.b.origin, { msgType: MessageType.MsgRequestPreVote, from: r.b.id, term: 5n, logTerm: 5n, index: 5n });
    await r.settle();
    const out = raftSent(r, sent);
    expect(out.map((o) => [o.msg.msgType, o.msg.reject, o.msg.term])).toEqual([[MessageType.MsgRequestPreVoteResponse, true, 6n]]);
    expect(r.state().term).toBe(6);
  });

  test("a stale vote, heartbeat response or vote response is ignored without an answer", async () => {
    const r = rig();
    await followerOfA(r);
    const before = r.state();
    const sent = r.network.sent.length;
    for (const msgType of [MessageType.MsgRequestVote, MessageType.MsgHeartbeatResponse, MessageType.MsgRequestVoteResponse]) {
      deliver(r, r.b.origin, { msgType, from: r.b.id, term: 5n, logTerm: 5n, index: 5n });
    }
    await r.settle();
    expect(r.state()).toEqual({ ...before, mailbook: r.state().mailbook });
    expect(raftSent(r, sent)).toEqual([]);
  });
});

describe("the mailbook cannot be poisoned", () => {
  test("a probe claiming a live peer's id from another origin does not redirect our traffic", async () => {
    const r = rig();
    await followerOfA(r);
    for (let i = 0; i < 5; i++) {
      r.clock.t += 60_000; // long after any quiet period: the address rule decides, not time
      r.transport.handleInbound({ type: "probe", origin: 0xe71n, id: r.a.id });
      r.transport.handleInbound({ type: "probe-resp", origin: 0xe72n, id: r.a.id });
      deliver(r, r.a.origin, { msgType: MessageType.MsgHeartbeat, from: r.a.id, term: 6n, commit: 5n });
    }
    await r.settle();
    expect(r.transport.mailbook.origin(r.a.id)).toBe(r.a.origin);
    const toA = raftSent(r).filter((o) => o.msg.to === r.a.id);
    expect(toA.length).toBeGreaterThanOrEqual(5);
    expect(new Set(toA.map((o) => o.origin))).toEqual(new Set([r.a.origin]));
    expect(r.mailbookChanges).toEqual(Array(10).fill("refused"));
    // Logged, but not once per message.
    const warned = r.log.lines.filter((l) => l.message === "mailbook re-binding refused");
    expect(warned.length).toBeGreaterThan(0);
    expect(warned.length).toBeLessThanOrEqual(10);
  });

  test("where origins are not derived from addresses, a known id moves only after its origin went quiet, and the move is logged", () => {
    const r = rig();
    const id = 0x1234n; // not a validator: no address-derived origin
    r.transport.handleInbound({ type: "probe-resp", origin: 5n, id });
    const quiet = r.transport.mailbook.quietMs;
    for (let i = 0; i < 5; i++) {
      r.clock.t += quiet / 2;
      r.transport.handleInbound({ type: "probe", origin: 5n, id }); // the real peer keeps talking
      r.transport.handleInbound({ type: "probe", origin: 6n, id });
    }
    expect(r.transport.mailbook.origin(id)).toBe(5n);
    r.clock.t += quiet;
    r.transport.handleInbound({ type: "probe", origin: 6n, id });
    expect(r.transport.mailbook.origin(id)).toBe(6n);
    const moved = r.log.lines.filter((l) => l.message === "mailbook re-bound");
    expect(moved.map((l) => l.fields)).toEqual([expect.objectContaining({ origin: 6n, previous: 5n, reason: "quiet" })]);
  });
});

describe("admission: a flood costs its sender, not the members", () => {
  test("one foreign origin flooding probes gets its burst, then is dropped and counted; it cannot fill our outbound queue", async () => {
    const r = rig(); // 2000 msgs/s per member origin: 100/s per stranger, 500/s all strangers
    for (let i = 0; i < 10_000; i++) r.transport.handleInbound({ type: "probe", origin: 0xf100dn, id: 0x6000n + BigInt(i) });
    expect(r.drops).toEqual(Array(10_000 - 100).fill("rate_limited"));
    expect(r.transport.mailbook.size).toBe(100);
    expect(r.transport.queued + r.network.sent.length).toBeLessThanOrEqual(4); // answers: 4 per second per origin
    r.clock.t += 1000; // a second later the origin has 100 more
    let admitted = 0;
    for (let i = 0; i < 1000; i++) {
      const before = r.drops.length;
      r.transport.handleInbound({ type: "probe", origin: 0xf100dn, id: 0x9000n + BigInt(i) });
      if (r.drops.length === before) admitted++;
    }
    expect(admitted).toBe(100);
    expect(r.drops).toEqual(Array(10_000 - 100 + 900).fill("rate_limited"));
  });

  test("many foreign origins share one budget; the mailbook and the per-origin buckets stay bounded", () => {
    const r = rig();
    for (let i = 0; i < 20_000; i++) r.transport.handleInbound({ type: "probe", origin: 0x1_0000n + BigInt(i), id: 0x6000n + BigInt(i) });
    expect(r.drops).toEqual(Array(20_000 - 500).fill("rate_limited"));
    expect(r.transport.mailbook.size).toBeLessThanOrEqual(r.transport.mailbook.capacity);
    expect(r.transport.trackedOrigins.size).toBeLessThanOrEqual(r.transport.trackedOrigins.capacity);
    expect(r.transport.trackedOrigins.size).toBeGreaterThan(1000);
  });

  test("a member's traffic keeps its own budget while strangers flood", async () => {
    const r = rig();
    await followerOfA(r);
    const sent = r.network.sent.length;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 200; i++) {
        deliver(r, 0xf100dn + BigInt(i % 7), { msgType: MessageType.MsgHeartbeat, from: r.a.id, term: 6n });
        r.transport.handleInbound({ type: "probe", origin: 0xf200dn + BigInt(i), id: 0x6000n + BigInt(i) });
      }
      deliver(r, r.a.origin, { msgType: MessageType.MsgHeartbeat, from: r.a.id, term: 6n, commit: 5n });
      await r.settle();
    }
    const answersToA = raftSent(r, sent).filter((o) => o.msg.msgType === MessageType.MsgHeartbeatResponse && o.origin === r.a.origin);
    expect(answersToA).toHaveLength(50);
    expect(r.state()).toMatchObject({ term: 6, leader: r.a.id });
    expect(r.drops.filter((d) => d === "rate_limited").length).toBeGreaterThan(10_000);
  });
});

describe("bounds", () => {
  test("with the network service hung, sends neither block nor grow the queue past its bound", async () => {
    const never: NetworkOutlet = { sendMsg: () => new Promise(() => {}), broadcast: () => new Promise(() => {}) };
    const t = new PeerTransport({ selfId: 1n, network: never, log: captureLog().log, maxQueued: 1000, maxInFlight: 8 });
    t.handleInbound({ type: "probe-resp", origin: 2n, id: 2n });
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 50_000; i++) {
      const o = t.send(codec.messageFromPb(create(MessageSchema, { msgType: MessageType.MsgHeartbeat, to: 2n, from: 1n, term: 1n })));
      outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    }
    expect(t.queued).toBe(1000);
    expect(outcomes.get("queued")).toBe(1008);
    expect(outcomes.get("overloaded")).toBe(50_000 - 1008);
    t.close();
  });

  test("per-caller latency histograms are bounded however many client names callers invent", async () => {
    const warnings: string[] = [];
    const m = new ConsensusMetrics([1], () => undefined, (msg) => warnings.push(msg));
    for (let i = 0; i < 1000; i++) m.observeCall(`caller${i}`, "ProcessNetworkMsg", 1);
    const names = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name).filter((n) => n.includes("_to_")));
    expect(names.size).toBe(MAX_CALL_HISTOGRAMS);
    expect(warnings.length).toBe(MAX_CALL_HISTOGRAMS); // one per skipped name, and those are bounded too
  });

  test("queues and caches report their depth and bound", async () => {
    const m = new ConsensusMetrics([1], () => undefined);
    let depth = 3;
    m.queue("peer_outbound", () => depth, 4096);
    depth = 7;
    const text = await m.text();
    expect(text).toContain('consensus_queue_depth{queue="peer_outbound"} 7');
    expect(text).toContain('consensus_queue_capacity{queue="peer_outbound"} 4096');
  });

  test("a flood of one warning is logged a few times per interval, then once with the count it swallowed", () => {
    const cap = captureLog();
    const clock = { t: 0 };
    const limiter = new LogLimiter(cap.log, () => clock.t, 10_000, 3);
    for (let i = 0; i < 1000; i++) limiter.warn("rejected network msg", { i });
    expect(cap.lines).toHaveLength(3);
    clock.t += 10_000;
    limiter.warn("rejected network msg", { i: 1000 });
    expect(cap.lines.at(-1)?.fields).toEqual({ i: 1000, suppressed: 997 });
  });
});
