import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { MessageSchema as RaftMessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { codec, type Message as RaftMessage } from "../../src/raft/index.ts";
import type { NetworkMsg } from "../../gen/network_pb.ts";
import { decodePeerId } from "../../src/peer/peer-id.ts";
import { type NetworkOutlet, PeerTransport } from "../../src/peer/transport.ts";
import { captureLog } from "../support/capture-log.ts";

const SELF = 100n;
const PEER = 200n;

/** An in-memory network: records calls, can fail them or hold them until released. */
class MemoryNetwork implements NetworkOutlet {
  readonly sent: NetworkMsg[] = [];
  readonly broadcasts: NetworkMsg[] = [];
  fail = false;
  hold = false;
  readonly #held: Array<() => void> = [];
  sendMsg(m: NetworkMsg) {
    return this.#call(() => this.sent.push(m));
  }
  broadcast(m: NetworkMsg) {
    return this.#call(() => this.broadcasts.push(m));
  }
  release() {
    for (const r of this.#held.splice(0)) r();
  }
  #call(record: () => void): Promise<unknown> {
    record();
    if (this.fail) return Promise.reject(new Error("connect ECONNREFUSED"));
    if (!this.hold) return Promise.resolve({ code: 0 });
    return new Promise((r) => this.#held.push(() => r({ code: 0 })));
  }
}

function setup(opts: { maxInFlight?: number; maxQueued?: number } = {}) {
  const net = new MemoryNetwork();
  const clock = { t: 1000 };
  const cap = captureLog();
  const events: string[] = [];
  const transport = new PeerTransport({
    selfId: SELF,
    network: net,
    log: cap.log,
    probeIntervalMs: 500,
    now: () => clock.t,
    events: {
      dropped: (r) => events.push(`dropped ${r}`),
      mailbook: (r) => events.push(`mailbook ${r}`),
      networkFailed: (call) => events.push(`networkFailed ${call}`),
      networkRecovered: () => events.push("networkRecovered"),
    },
    ...opts,
  });
  const inbound: Array<[RaftMessage, bigint]> = [];
  transport.onRaft((m, o) => inbound.push([m, o]));
  return { net, clock, cap, transport, inbound, events };
}

const raft = (to: bigint, from: bigint, msgType = MessageType.MsgHeartbeat): RaftMessage =>
  codec.messageFromPb(create(RaftMessageSchema, { msgType, to, from, term: 3n }));

describe("outbound raft messages", () => {
  test("a message to an unknown peer is dropped, reported, and a burst of misses sends one probe", async () => {
    const { net, transport, clock } = setup();
    for (let i = 0; i < 50; i++) expect(transport.send(raft(PEER, SELF))).toBe("no-route");
    await transport.idle();
    expect(net.sent).toHaveLength(0);
    expect(net.broadcasts).toHaveLength(1);
    expect(net.broadcasts[0]!.type).toBe("probe");
    expect(decodePeerId(net.broadcasts[0]!.msg)).toBe(SELF); // 50 misses, one probe: 49 suppressed

    clock.t += 499;
    transport.send(raft(PEER, SELF));
    clock.t += 1;
    transport.send(raft(PEER, SELF));
    await transport.idle();
    expect(net.broadcasts).toHaveLength(2); // one more once the interval has passed
  });

  test("a known peer gets the message by SendMsg to its origin", async () => {
    const { net, transport } = setup();
    transport.handleInbound({ type: "probe-resp", origin: 7n, id: PEER });
    expect(transport.send(raft(PEER, SELF, MessageType.MsgAppend))).toBe("queued");
    await transport.idle();
    expect(net.sent).toHaveLength(1);
    expect([net.sent[0]!.type, net.sent[0]!.origin]).toEqual(["raft", 7n]);
    expect(net.broadcasts).toHaveLength(0);
  });

  test("send never blocks: with the network stalled, the queue bound drops the excess", async () => {
    const { net, transport } = setup({ maxInFlight: 2, maxQueued: 3 });
    net.hold = true;
    transport.handleInbound({ type: "probe-resp", origin: 7n, id: PEER });
    const outcomes = Array.from({ length: 8 }, () => transport.send(raft(PEER, SELF)));
    expect(outcomes).toEqual(["queued", "queued", "queued", "queued", "queued", "overloaded", "overloaded", "overloaded"]);
    expect(net.sent).toHaveLength(2); // only maxInFlight calls started
    let idle = false;
    transport.idle().then(() => (idle = true));
    while (!idle) {
      net.release();
      await Bun.sleep(1);
    }
    expect(net.sent).toHaveLength(5); // the 3 "overloaded" never reach the network
  });

  test("network failures are reported each, logged once per outage as a warning, and never thrown", async () => {
    const { net, transport, cap, events } = setup();
    transport.handleInbound({ type: "probe-resp", origin: 7n, id: PEER });
    net.fail = true;
    for (let i = 0; i < 5; i++) expect(transport.send(raft(PEER, SELF))).toBe("queued");
    await transport.idle();
    expect(net.sent).toHaveLength(5); // all five calls were made, and all five failed
    expect(events).toEqual(Array(5).fill("networkFailed sendMsg"));
    const failed = cap.lines.filter((l) => l.message === "network service call failed");
    expect(failed.map((l) => l.level)).toEqual(["warn", "debug", "debug", "debug", "debug"]);
    expect(cap.lines.filter((l) => l.level === "warn")).toHaveLength(1);
    net.fail = false;
    transport.send(raft(PEER, SELF));
    await transport.idle();
    expect(cap.has("network service reachable again")).toBe(true);
    expect(events.slice(5)).toEqual(["networkRecovered"]);
  });

  test("after close, sends are refused and nothing more reaches the network", async () => {
    const { net, transport } = setup();
    transport.handleInbound({ type: "probe-resp", origin: 7n, id: PEER });
    transport.close();
    expect(transport.send(raft(PEER, SELF))).toBe("closed");
    transport.probe();
    await transport.idle();
    expect(net.sent).toHaveLength(0);
    expect(net.broadcasts).toHaveLength(0);
  });
});

describe("inbound messages", () => {
  test("a probe teaches the mailbook and is answered with probe-resp to its origin", async () => {
    const { net, transport } = setup();
    transport.handleInbound({ type: "probe", origin: 42n, id: PEER });
    await transport.idle();
    expect(transport.mailbook.origin(PEER)).toBe(42n);
    expect(net.sent).toHaveLength(1);
    expect([net.sent[0]!.type, net.sent[0]!.origin, decodePeerId(net.sent[0]!.msg)]).toEqual(["probe-resp", 42n, SELF]);
  });

  test("our own probe echoed back is ignored", async () => {
    const { net, transport } = setup();
    transport.handleInbound({ type: "probe", origin: 42n, id: SELF });
    await transport.idle();
    expect(transport.mailbook.size).toBe(0);
    expect(net.sent).toHaveLength(0);
  });

  test("a raft message for us is delivered with its origin, and its sender is learned", () => {
    const { transport, inbound } = setup();
    const m = raft(SELF, PEER, MessageType.MsgAppend);
    transport.handleInbound({ type: "raft", origin: 9n, msg: m });
    expect(inbound).toEqual([[m, 9n]]);
    expect(transport.mailbook.origin(PEER)).toBe(9n);
  });

  test("a raft message for another node is not delivered and the sender gets refresh", async () => {
    const { net, transport, inbound, events } = setup();
    transport.handleInbound({ type: "raft", origin: 9n, msg: raft(300n, PEER) });
    await transport.idle();
    expect(inbound).toHaveLength(0);
    expect(events).toEqual(["dropped misdirected"]);
    expect(net.sent).toHaveLength(1);
    expect([net.sent[0]!.type, net.sent[0]!.origin, decodePeerId(net.sent[0]!.msg)]).toEqual(["refresh", 9n, 300n]);
    // A message that was not for us is not learned from.
    expect(transport.mailbook.origin(PEER)).toBeUndefined();
  });

  test("a newer origin for a known peer replaces the old one once the old one has gone quiet", () => {
    const { transport, clock, cap, events } = setup();
    transport.handleInbound({ type: "probe-resp", origin: 1n, id: PEER });
    transport.handleInbound({ type: "raft", origin: 2n, msg: raft(SELF, PEER) });
    expect(transport.mailbook.origin(PEER)).toBe(1n);
    clock.t += transport.mailbook.quietMs;
    transport.handleInbound({ type: "raft", origin: 2n, msg: raft(SELF, PEER) });
    expect(transport.mailbook.origin(PEER)).toBe(2n);
    expect(events).toEqual(["mailbook refused", "mailbook rebound"]);
    expect(cap.lines.find((l) => l.message === "mailbook re-bound")?.fields).toMatchObject({ origin: 2n, previous: 1n, reason: "quiet" });
  });

  test("refresh from the origin we used drops that stale entry and probes", async () => {
    const { net, transport } = setup();
    transport.handleInbound({ type: "probe-resp", origin: 5n, id: PEER });
    transport.handleInbound({ type: "refresh", origin: 5n, id: PEER });
    await transport.idle();
    expect(transport.mailbook.origin(PEER)).toBeUndefined();
    expect(net.broadcasts.map((b) => b.type)).toEqual(["probe"]);
    expect(transport.send(raft(PEER, SELF))).toBe("no-route");
  });

  test("refresh from some other origin leaves a good entry alone", async () => {
    const { transport } = setup();
    transport.handleInbound({ type: "probe-resp", origin: 5n, id: PEER });
    transport.handleInbound({ type: "refresh", origin: 6n, id: PEER });
    expect(transport.mailbook.origin(PEER)).toBe(5n);
  });
});
