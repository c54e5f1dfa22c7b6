// The hand-written eraftpb.Message codec (src/raft/wire.ts) must be indistinguishable from the
// generated one: the same bytes for every message it encodes, the same Message for every input it
// decodes, and for inputs it declines the generated code decides (so errors stay as they were).
import { describe, expect, test } from "bun:test";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import * as pb from "../../gen/eraftpb_pb.ts";
import { decodeMessage, encodeMessage, messageFromPb, messageToPb } from "../../src/raft/codec.ts";
import type { Entry, Message, Snapshot } from "../../src/raft/types.ts";
import { fastDecodeMessage, fastEncodeMessage } from "../../src/raft/wire.ts";

const slowEncode = (m: Message) => toBinary(pb.MessageSchema, messageToPb(m));
const slowDecode = (b: Uint8Array) => messageFromPb(fromBinary(pb.MessageSchema, b));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

const U64 = 2n ** 64n - 1n;
// Values where varint lengths change, plus random ones.
const num = fc.oneof(
  fc.constantFrom(0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, 2 ** 49, Number.MAX_SAFE_INTEGER),
  fc.nat(),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
);
const id = fc.oneof(fc.constantFrom(0n, 1n, 2n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, U64), fc.bigInt({ min: 0n, max: U64 }));
const bytes = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 300 }));
const entry: fc.Arbitrary<Entry> = fc.record({ entryType: fc.constantFrom(0, 1, 2), term: num, index: num, data: bytes, context: bytes });
const snapshot: fc.Arbitrary<Snapshot> = fc.record({
  data: bytes,
  metadata: fc.record({
    confState: fc.record({
      voters: fc.array(id, { maxLength: 5 }),
      learners: fc.array(id, { maxLength: 3 }),
      votersOutgoing: fc.array(id, { maxLength: 3 }),
      learnersNext: fc.array(id, { maxLength: 3 }),
      autoLeave: fc.boolean(),
    }),
    index: num,
    term: num,
  }),
});
const message: fc.Arbitrary<Message> = fc.record({
  msgType: fc.integer({ min: 0, max: 18 }),
  to: id,
  from: id,
  term: num,
  logTerm: num,
  index: num,
  entries: fc.array(entry, { maxLength: 6 }),
  commit: num,
  commitTerm: num,
  snapshot: fc.option(snapshot, { nil: undefined }),
  requestSnapshot: num,
  reject: fc.boolean(),
  rejectHint: num,
  context: bytes,
  priority: fc.oneof(fc.constant(0), fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(-1, 1)),
});

describe("hand-written eraftpb.Message codec", () => {
  test("encodes every regular message to exactly the generated code's bytes", () => {
    fc.assert(
      fc.property(message, (m) => {
        const fast = fastEncodeMessage(m);
        expect(fast).toBeDefined();
        expect(hex(fast!)).toBe(hex(slowEncode(m)));
      }),
      { numRuns: 1500 },
    );
  });

  test("decodes those bytes to exactly the generated code's Message", () => {
    fc.assert(
      fc.property(message, (m) => {
        const b = slowEncode(m);
        expect(fastDecodeMessage(b)).toEqual(slowDecode(b));
        expect(decodeMessage(encodeMessage(m))).toEqual(slowDecode(b));
      }),
      { numRuns: 1500 },
    );
  });

  test("on damaged input it either agrees with the generated code or declines (never a different answer)", () => {
    const damaged = fc.tuple(message, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat()).map(([m, flips, cut]) => {
      const b = slowEncode(m).slice();
      for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
      return b.subarray(0, b.length === 0 ? 0 : b.length - (cut % Math.min(b.length, 8)));
    });
    fc.assert(
      fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 64 })), (b) => {
        const fast = fastDecodeMessage(b);
        let slow: Message | Error;
        try {
          slow = slowDecode(b);
        } catch (e) {
          slow = e as Error;
        }
        if (fast !== undefined) expect(fast).toEqual(slow as Message);
      }),
      { numRuns: 1500 },
    );
  });

  test("out-of-range values are left to the generated code, which keeps its errors", () => {
    const base = { msgType: 3, to: 2n, from: 1n, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, commitTerm: 0, snapshot: undefined, requestSnapshot: 0, reject: false, rejectHint: 0, context: new Uint8Array(0), priority: 0 };
    for (const bad of [{ term: -1 }, { index: 1.5 }, { commit: 2 ** 53 }, { to: 2n ** 64n }, { from: -1n }, { msgType: -1 }, { priority: 2 ** 60 }]) {
      const m = { ...base, ...bad } as Message;
      expect(fastEncodeMessage(m)).toBeUndefined();
      let slow: string;
      try {
        slow = hex(slowEncode(m));
      } catch (e) {
        slow = `throws ${(e as Error).name}`;
      }
      let viaCodec: string;
      try {
        viaCodec = hex(encodeMessage(m));
      } catch (e) {
        viaCodec = `throws ${(e as Error).name}`;
      }
      expect(viaCodec).toBe(slow);
    }
  });

  test("bytes fields are plain copies even when the input is a Buffer (whose slice is a view)", () => {
    const m = { ...slowDecode(slowEncode({ msgType: 3, to: 2n, from: 1n, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, commitTerm: 0, snapshot: undefined, requestSnapshot: 0, reject: false, rejectHint: 0, context: new Uint8Array([5]), priority: 0 })) };
    m.entries = [{ entryType: 0, term: 1, index: 1, data: new Uint8Array([7, 7, 7]), context: new Uint8Array(0) }];
    const wire = Buffer.from(encodeMessage(m));
    const d = fastDecodeMessage(wire)!;
    wire.fill(0);
    expect(Array.from(d.entries[0].data)).toEqual([7, 7, 7]);
    expect(Array.from(d.context)).toEqual([5]);
    expect(d.entries[0].data.constructor).toBe(Uint8Array);
  });

  test("unknown fields are skipped and unpacked ConfState ids are accepted, as protobuf requires", () => {
    // MsgSnapshot to=2, snapshot{metadata{conf_state{voters 1 (unpacked), voters 3 (unpacked), field 9 varint}, index 5}},
    // then unknown fields 20 (varint), 21 (bytes), 22 (fixed64), 23 (fixed32).
    const cs = "0801" + "0803" + "4807";
    const md = "0a" + (cs.length / 2).toString(16).padStart(2, "0") + cs + "1005";
    const snap = "12" + (md.length / 2).toString(16).padStart(2, "0") + md;
    const msg = "0807" + "1002" + "4a" + (snap.length / 2).toString(16).padStart(2, "0") + snap + "a00101" + "aa0102abcd" + "b1010102030405060708" + "bd0101020304";
    const b = new Uint8Array(Buffer.from(msg, "hex"));
    const fast = fastDecodeMessage(b);
    expect(fast).toBeDefined();
    expect(fast).toEqual(slowDecode(b));
    expect(fast!.snapshot!.metadata.confState.voters).toEqual([1n, 3n]);
  });
});
