// eraftpb wire compatibility with raft-rs: field numbers and wire types checked by a small protobuf
// reader written here (independent of @bufbuild/protobuf), exact uint64 ids, checked terms and
// indexes, int64 priority, and byte examples of files the Rust service writes.
import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import * as pb from "../../gen/eraftpb_pb.ts";
import {
  CodecError,
  decodeConfChangeV2,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  encodeConfChangeV2,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
} from "../../src/raft/codec.ts";
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  type Message,
  MessageType,
  newConfState,
  newEntry,
  newMessage,
  newSnapshot,
} from "../../src/raft/types.ts";
import { msgView } from "./harness.ts";

// ---------------------------------------------------------------- a minimal protobuf wire reader

interface WireField {
  no: number;
  /** 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. */
  wt: number;
  /** The varint value, or the raw bytes of the other wire types. */
  value: bigint | Uint8Array;
  /** Bytes the value took on the wire. */
  size: number;
}

function readVarint(b: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new Error("truncated varint");
    const byte = b[pos++];
    v |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return [v, pos];
  }
  throw new Error("varint longer than 10 bytes");
}

function readFields(b: Uint8Array): WireField[] {
  const out: WireField[] = [];
  let pos = 0;
  while (pos < b.length) {
    const [tag, p] = readVarint(b, pos);
    const no = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    pos = p;
    if (wt === 0) {
      const [v, end] = readVarint(b, pos);
      out.push({ no, wt, value: v, size: end - pos });
      pos = end;
      continue;
    }
    let len: number;
    if (wt === 2) [len, pos] = (([l, q]) => [Number(l), q])(readVarint(b, pos));
    else if (wt === 1) len = 8;
    else if (wt === 5) len = 4;
    else throw new Error(`unsupported wire type ${wt} for field ${no}`);
    if (pos + len > b.length) throw new Error(`field ${no} overruns the buffer`);
    out.push({ no, wt, value: b.subarray(pos, pos + len), size: len });
    pos += len;
  }
  return out;
}

/** Field number → wire type, for every field present (sorted, repeated fields listed each time). */
const layout = (fs: WireField[]) => fs.map((f) => [f.no, f.wt]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
const only = (fs: WireField[], no: number) => {
  const hits = fs.filter((f) => f.no === no);
  if (hits.length !== 1) throw new Error(`field ${no} occurs ${hits.length} times`);
  return hits[0];
};
const varint = (fs: WireField[], no: number) => only(fs, no).value as bigint;
const bytes = (fs: WireField[], no: number) => only(fs, no).value as Uint8Array;
/** The values of a packed repeated varint field. */
function packed(b: Uint8Array): bigint[] {
  const out: bigint[] = [];
  for (let pos = 0; pos < b.length; ) {
    const [v, p] = readVarint(b, pos);
    out.push(v);
    pos = p;
  }
  return out;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const enc = (s: string) => new TextEncoder().encode(s);

// ---------------------------------------------------------------- fixtures

const U64_MAX = 18446744073709551615n;
// SipHash-1-3 peer ids as rustc's DefaultHasher computes them (example node address, 20×0xff, empty address).
const SIP_EXAMPLE = 5936725455453027748n;
const SIP_FF = 11954230095630064159n;
const SIP_EMPTY = 15130871412783076140n;

/** A message with every eraftpb field set to a non-default value. */
function fullMessage(): Message {
  return newMessage({
    msgType: MessageType.MsgAppend,
    to: U64_MAX,
    from: SIP_EXAMPLE,
    term: 7,
    logTerm: 6,
    index: 5,
    entries: [
      newEntry({ term: 6, index: 6, data: enc("a") }),
      newEntry({ entryType: EntryType.EntryConfChangeV2, term: 7, index: 7, data: enc("cc"), context: enc("ctx") }),
    ],
    commit: 4,
    commitTerm: 3,
    snapshot: newSnapshot(
      3,
      2,
      newConfState({ voters: [SIP_EXAMPLE, SIP_FF], learners: [SIP_EMPTY], votersOutgoing: [SIP_EXAMPLE, 1n], learnersNext: [1n], autoLeave: true }),
      enc("state"),
    ),
    requestSnapshot: 8,
    reject: true,
    rejectHint: 9,
    context: enc("CampaignTransfer"),
    priority: 5,
  });
}

describe("eraftpb Message on the wire", () => {
  test("every field has raft-rs's field number and wire type (deprecated_priority 14 is a varint)", () => {
    const fs = readFields(encodeMessage(fullMessage()));
    expect(layout(fs)).toEqual([
      [1, 0], // msg_type
      [2, 0], // to
      [3, 0], // from
      [4, 0], // term
      [5, 0], // log_term
      [6, 0], // index
      [7, 2], // entries (one per entry)
      [7, 2],
      [8, 0], // commit
      [9, 2], // snapshot
      [10, 0], // reject
      [11, 0], // reject_hint
      [12, 2], // context
      [13, 0], // request_snapshot (etcd: vote)
      [14, 0], // deprecated_priority (etcd: repeated Message responses, length-delimited)
      [15, 0], // commit_term
      [16, 0], // priority
    ]);
    expect([1, 2, 3, 4, 5, 6, 8, 10, 11, 13, 14, 15, 16].map((no) => varint(fs, no))).toEqual([
      3n,
      U64_MAX,
      SIP_EXAMPLE,
      7n,
      6n,
      5n,
      4n,
      1n,
      9n,
      8n,
      5n, // a positive priority is mirrored into deprecated_priority for older raft-rs peers
      3n,
      5n,
    ]);
    expect(new TextDecoder().decode(bytes(fs, 12))).toBe("CampaignTransfer");
  });

  test("entries are eraftpb.Entry: entry_type 1, term 2, index 3, data 4, context 6", () => {
    const entries = readFields(encodeMessage(fullMessage())).filter((f) => f.no === 7);
    const cc = readFields(entries[1].value as Uint8Array);
    expect(layout(cc)).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 2],
      [6, 2],
    ]);
    expect([varint(cc, 1), varint(cc, 2), varint(cc, 3)]).toEqual([2n, 7n, 7n]);
    expect([hex(bytes(cc, 4)), hex(bytes(cc, 6))]).toEqual([hex(enc("cc")), hex(enc("ctx"))]);
    // proto3: EntryNormal (0) and empty context are omitted.
    expect(layout(readFields(entries[0].value as Uint8Array))).toEqual([
      [2, 0],
      [3, 0],
      [4, 2],
    ]);
  });

  test("a snapshot is data 1 + metadata 2 {conf_state 1, index 2, term 3}; ConfState ids are packed", () => {
    const snap = readFields(bytes(readFields(encodeMessage(fullMessage())), 9));
    expect(layout(snap)).toEqual([
      [1, 2],
      [2, 2],
    ]);
    const meta = readFields(bytes(snap, 2));
    expect(layout(meta)).toEqual([
      [1, 2],
      [2, 0],
      [3, 0],
    ]);
    expect([varint(meta, 2), varint(meta, 3)]).toEqual([3n, 2n]);
    const cs = readFields(bytes(meta, 1));
    // One length-delimited field per repeated list: packed, as prost emits and raft-rs expects.
    expect(layout(cs)).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
      [4, 2],
      [5, 0],
    ]);
    expect([1, 2, 3, 4].map((no) => packed(bytes(cs, no)))).toEqual([[SIP_EXAMPLE, SIP_FF], [SIP_EMPTY], [SIP_EXAMPLE, 1n], [1n]]);
    expect(varint(cs, 5)).toBe(1n);
  });

  test("every field round-trips, uint64 ids above 2^53 exactly", () => {
    const msg = fullMessage();
    const back = decodeMessage(encodeMessage(msg));
    expect(msgView(back)).toEqual(msgView(msg));
    expect(back.to).toBe(U64_MAX);
    expect(back.from).toBe(SIP_EXAMPLE);
    expect(back.snapshot?.metadata.confState).toEqual(msg.snapshot!.metadata.confState);
    expect(hex(back.snapshot!.data)).toBe(hex(enc("state")));
  });

  test("a negative priority is a 10-byte int64 varint, is not mirrored into field 14, and round-trips", () => {
    for (const priority of [-1, -(2 ** 53 - 1)]) {
      const msg = newMessage({ msgType: MessageType.MsgRequestVote, to: 2n, from: 1n, term: 1, priority });
      const fs = readFields(encodeMessage(msg));
      expect(fs.some((f) => f.no === 14)).toBe(false);
      expect(only(fs, 16).size).toBe(10);
      expect(BigInt.asIntN(64, varint(fs, 16))).toBe(BigInt(priority));
      expect(decodeMessage(encodeMessage(msg)).priority).toBe(priority);
    }
  });

  test("a message from an older raft-rs peer with only deprecated_priority set decodes that priority", () => {
    const b = toBinary(pb.MessageSchema, create(pb.MessageSchema, { msgType: pb.MessageType.MsgRequestVote, term: 2n, deprecatedPriority: 7n }));
    expect(decodeMessage(b).priority).toBe(7);
  });
});

describe("uint64 terms and indexes", () => {
  const TOO_BIG = 2n ** 53n;
  const MAX = BigInt(Number.MAX_SAFE_INTEGER);

  test("2^53-1 decodes exactly; anything above is refused with a CodecError naming the field, never rounded", () => {
    for (const field of ["term", "logTerm", "index", "commit", "commitTerm", "rejectHint", "requestSnapshot"] as const) {
      const ok = toBinary(pb.MessageSchema, create(pb.MessageSchema, { msgType: pb.MessageType.MsgAppend, [field]: MAX }));
      expect(decodeMessage(ok)[field]).toBe(Number.MAX_SAFE_INTEGER);
      const bad = toBinary(pb.MessageSchema, create(pb.MessageSchema, { msgType: pb.MessageType.MsgAppend, [field]: TOO_BIG }));
      expect(() => decodeMessage(bad)).toThrow(CodecError);
    }
    const expectRefused = (f: () => unknown, field: string) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(CodecError);
        expect((e as Error).message).toContain(field);
        return;
      }
      throw new Error(`${field} above 2^53-1 was accepted`);
    };
    expectRefused(() => decodeMessage(toBinary(pb.MessageSchema, create(pb.MessageSchema, { term: U64_MAX }))), "message.term");
    expectRefused(() => decodeMessage(toBinary(pb.MessageSchema, create(pb.MessageSchema, { entries: [{ index: TOO_BIG }] }))), "entry.index");
    expectRefused(() => decodeEntry(toBinary(pb.EntrySchema, create(pb.EntrySchema, { term: TOO_BIG }))), "entry.term");
    expectRefused(() => decodeHardState(toBinary(pb.HardStateSchema, create(pb.HardStateSchema, { commit: U64_MAX }))), "hard_state.commit");
    expectRefused(() => decodeSnapshot(toBinary(pb.SnapshotSchema, create(pb.SnapshotSchema, { metadata: { index: TOO_BIG } }))), "snapshot.index");
    expectRefused(() => decodeSnapshot(toBinary(pb.SnapshotSchema, create(pb.SnapshotSchema, { metadata: { term: TOO_BIG } }))), "snapshot.term");
  });

  test("malformed bytes are a CodecError, not a crash", () => {
    const truncated = encodeMessage(fullMessage()).subarray(0, 40);
    // a cut-off message, entries declaring 5 bytes that are missing, a tag without its value, an 11-byte varint
    for (const b of [truncated, unhex("3a05"), unhex("08"), unhex("ffffffffffffffffffffff")]) {
      expect(() => decodeMessage(b)).toThrow(CodecError);
    }
    expect(() => decodeEntry(unhex("2205"))).toThrow(CodecError);
  });
});

describe("other eraftpb messages", () => {
  test("HardState is term 1, vote 2, commit 3, the vote a full uint64", () => {
    const hs = { term: 5, vote: SIP_FF, commit: 3 };
    const fs = readFields(encodeHardState(hs));
    expect(layout(fs)).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
    ]);
    expect(varint(fs, 2)).toBe(SIP_FF);
    expect(decodeHardState(encodeHardState(hs))).toEqual(hs);
  });

  test("ConfChangeV2 uses raft-rs numbering: AddLearnerNode is 2 (etcd's UpdateNode)", () => {
    const cc = {
      transition: ConfChangeTransition.Explicit,
      changes: [{ changeType: ConfChangeType.AddLearnerNode, nodeId: U64_MAX }],
      context: enc("x"),
    };
    const fs = readFields(encodeConfChangeV2(cc));
    expect(layout(fs)).toEqual([
      [1, 0],
      [2, 2],
      [3, 2],
    ]);
    expect(varint(fs, 1)).toBe(2n);
    const single = readFields(bytes(fs, 2));
    expect([varint(single, 1), varint(single, 2)]).toEqual([2n, U64_MAX]);
    expect(decodeConfChangeV2(encodeConfChangeV2(cc))).toEqual(cc);
  });
});

describe("bytes the Rust service writes (its raft-entry and raft-snapshot files) decode and re-encode identically", () => {
  test("the raft-entry example decodes to EntryNormal term 6 index 7 with Proposal{height 1, data \"abc\"} and re-encodes identically", () => {
    const b = unhex("10061807220708011203616263");
    const e = decodeEntry(b);
    expect({ type: e.entryType, term: e.term, index: e.index, data: hex(e.data), context: e.context.length }).toEqual({
      type: EntryType.EntryNormal,
      term: 6,
      index: 7,
      data: "08011203616263",
      context: 0,
    });
    // Proposal{height = 1 (field 1), data = "abc" (field 2)}
    const proposal = readFields(e.data);
    expect([varint(proposal, 1), new TextDecoder().decode(bytes(proposal, 2))]).toEqual([1n, "abc"]);
    expect(hex(encodeEntry(e))).toBe(hex(b));
  });

  test("the raft-snapshot example (after its length prefix) decodes to index 6, term 6, one SipHash voter, and re-encodes identically", () => {
    const file = unhex("2d0a1810031a14f805cf7df8dffc4fd9c98791d72d00c9587dc1d912110a0b0a09a4fbafea8f8bdfb15210061806");
    const [len, start] = readVarint(file, 0);
    const body = file.subarray(start);
    expect(Number(len)).toBe(body.length);
    const s = decodeSnapshot(body);
    expect({ index: s.metadata.index, term: s.metadata.term, confState: s.metadata.confState, data: hex(s.data) }).toEqual({
      index: 6,
      term: 6,
      confState: newConfState({ voters: [SIP_EXAMPLE] }),
      data: "10031a14f805cf7df8dffc4fd9c98791d72d00c9587dc1d9",
    });
    expect(hex(encodeSnapshot(s))).toBe(hex(body));
  });
});
