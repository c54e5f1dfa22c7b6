import { codec } from "../../src/raft/index.ts";
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { MessageSchema as RaftMessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { NetworkMsgSchema } from "../../gen/network_pb.ts";
import {
  EnvelopeError,
  parseEnvelope,
  probeEnvelope,
  probeRespEnvelope,
  raftEnvelope,
  refreshEnvelope,
} from "../../src/peer/envelope.ts";

const EXAMPLE_ID = 5936725455453027748n; // peer id of f805cf7d…c1d9
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const netMsg = (init: { module?: string; type?: string; origin?: bigint; msg?: Uint8Array }) =>
  create(NetworkMsgSchema, { module: "consensus", ...init });

describe("envelope encoding", () => {
  test("a probe encodes to exactly the bytes consensus_raft broadcasts", () => {
    expect(hex(toBinary(NetworkMsgSchema, probeEnvelope(EXAMPLE_ID)))).toBe(
      "0a09636f6e73656e737573120570726f6265220852637c58fd4bfda4",
    );
  });

  test("probe-resp and refresh carry the origin and an 8-byte big-endian id", () => {
    const resp = probeRespEnvelope(77n, EXAMPLE_ID);
    expect([resp.module, resp.type, resp.origin, hex(resp.msg)]).toEqual(["consensus", "probe-resp", 77n, "52637c58fd4bfda4"]);
    const refresh = refreshEnvelope(78n, 1n);
    expect([refresh.type, refresh.origin, hex(refresh.msg)]).toEqual(["refresh", 78n, "0000000000000001"]);
  });

  test("a raft envelope carries the eraftpb encoding of the message", () => {
    const m = create(RaftMessageSchema, { msgType: MessageType.MsgHeartbeat, to: 2n, from: 1n, term: 5n, commit: 9n });
    const env = raftEnvelope(3n, codec.messageFromPb(m));
    expect([env.type, env.origin]).toEqual(["raft", 3n]);
    expect(env.msg).toEqual(toBinary(RaftMessageSchema, m));
  });
});

describe("envelope parsing", () => {
  test("reads consensus_raft's probe bytes as a probe from the sender's id", () => {
    const nm = fromBinary(NetworkMsgSchema, Buffer.from("0a09636f6e73656e737573120570726f6265220852637c58fd4bfda4", "hex"));
    nm.origin = 42n; // the network stamps the sender's origin on delivery
    expect(parseEnvelope(nm)).toEqual({ type: "probe", origin: 42n, id: EXAMPLE_ID });
  });

  test("raft messages survive the envelope round trip, uint64 ids and origins included", () => {
    const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    // Terms and indexes beyond 2^52 are refused (untrusted-messages.test.ts and fuzz.test.ts cover why).
    const counter = fc.bigInt({ min: 1n, max: 1n << 52n });
    fc.assert(
      fc.property(u64, u64.filter((x) => x !== 0n), u64, counter, counter, (origin, to, from, term, index) => {
        const m = create(RaftMessageSchema, {
          msgType: MessageType.MsgAppend,
          to,
          from,
          term,
          index,
          entries: [{ term, index, data: new Uint8Array([1, 2, 3]) }],
        });
        const wire = toBinary(NetworkMsgSchema, raftEnvelope(origin, codec.messageFromPb(m)));
        const env = parseEnvelope(fromBinary(NetworkMsgSchema, wire));
        expect(env.type).toBe("raft");
        expect(env.origin).toBe(origin);
        if (env.type === "raft") expect(toBinary(RaftMessageSchema, codec.messageToPb(env.msg))).toEqual(toBinary(RaftMessageSchema, m));
      }),
      { numRuns: 200 },
    );
  });

  const bad: Array<[string, Parameters<typeof netMsg>[0], string]> = [
    ["another module", { module: "controller", type: "raft" }, "wrong module"],
    ["an empty module", { module: "", type: "probe", msg: new Uint8Array(8).fill(1) }, "wrong module"],
    ["an unknown type", { type: "gossip" }, "unknown msg type"],
    ["undecodable raft bytes", { type: "raft", msg: new Uint8Array([0xff, 0xff, 0xff]) }, "can't decode raft msg"],
    ["a truncated raft message", { type: "raft", msg: new Uint8Array([0x10, 0x80]) }, "can't decode raft msg"],
    ["a raft message without destination", { type: "raft", msg: new Uint8Array() }, "can't decode raft msg"],
    ["a 7-byte probe id", { type: "probe", msg: new Uint8Array(7).fill(1) }, "invalid peer id"],
    ["an empty probe-resp id", { type: "probe-resp" }, "invalid peer id"],
    ["a 9-byte refresh id", { type: "refresh", msg: new Uint8Array(9).fill(1) }, "invalid peer id"],
    ["peer id 0", { type: "probe", msg: new Uint8Array(8) }, "invalid peer id"],
    [
      "a term too close to 2^53 for Raft to count on",
      { type: "raft", msg: toBinary(RaftMessageSchema, create(RaftMessageSchema, { to: 1n, term: (1n << 52n) + 1n })) },
      "can't decode raft msg: term is beyond 2^52",
    ],
    [
      "a snapshot whose data is not a ConsensusConfiguration",
      {
        type: "raft",
        msg: toBinary(
          RaftMessageSchema,
          create(RaftMessageSchema, { msgType: MessageType.MsgSnapshot, to: 1n, term: 6n, snapshot: { data: new Uint8Array([0xff]), metadata: { index: 9n, term: 6n } } }),
        ),
      },
      "snapshot data is not a ConsensusConfiguration",
    ],
  ];
  test.each(bad)("rejects %s", (_what, init, message) => {
    const parse = () => parseEnvelope(netMsg(init));
    expect(parse).toThrow(EnvelopeError);
    expect(parse).toThrow(message);
  });
});
