import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodePeerId,
  encodePeerId,
  MAX_PEER_ID,
  PeerIdError,
  peerIdFromAddress,
  peerIdHex,
} from "../../src/peer/peer-id.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));

// Computed with rustc's DefaultHasher (SipHash-1-3, keys 0 and 0) over the raw address bytes.
const VECTORS: Array<[string, bigint, string]> = [
  ["f805cf7df8dffc4fd9c98791d72d00c9587dc1d9", 5936725455453027748n, "0x52637c58fd4bfda4"],
  ["0000000000000000000000000000000000000000", 2656592473731891376n, "0x24de1cc795c400b0"],
  ["ffffffffffffffffffffffffffffffffffffffff", 11954230095630064159n, "0xa5e5f4ef8d505a1f"],
  ["", 15130871412783076140n, "0xd1fba762150c532c"],
  ["01", 4952851536318644461n, "0x44bc103b1f8540ed"],
];

// A plain BigInt SipHash-1-3 (k0 = k1 = 0), written straight from the paper, as an independent oracle.
function referenceSipHash13(data: Uint8Array): bigint {
  const M = (1n << 64n) - 1n;
  const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & M;
  let v0 = 0x736f6d6570736575n, v1 = 0x646f72616e646f6dn, v2 = 0x6c7967656e657261n, v3 = 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & M; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const padded = new Uint8Array(data.length - (data.length % 8) + 8);
  padded.set(data);
  padded[padded.length - 1] = data.length & 0xff;
  const view = new DataView(padded.buffer);
  for (let i = 0; i < padded.length; i += 8) {
    const m = view.getBigUint64(i, true);
    v3 ^= m; round(); v0 ^= m;
  }
  v2 ^= 0xffn;
  round(); round(); round();
  return v0 ^ v1 ^ v2 ^ v3;
}

describe("peer id (SipHash-1-3, Rust DefaultHasher)", () => {
  test.each(VECTORS)("address %p hashes to the Rust peer id", (addr, id, idHex) => {
    expect(peerIdFromAddress(hex(addr))).toBe(id);
    expect(referenceSipHash13(hex(addr))).toBe(id); // the oracle below is right too
    expect(peerIdHex(id)).toBe(idHex);
  });

  test("matches a BigInt reference for every length across block boundaries", () => {
    for (let len = 0; len <= 33; len++) {
      const bytes = Uint8Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff);
      expect(peerIdFromAddress(bytes)).toBe(referenceSipHash13(bytes));
    }
  });

  test("matches the BigInt reference on random inputs, including long ones (length byte wraps)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(peerIdFromAddress(bytes)).toBe(referenceSipHash13(bytes));
      }),
      { numRuns: 500 },
    );
  });

  test("does not depend on the byte offset of the input view", () => {
    const buf = hex("aa" + VECTORS[0]![0] + "bb");
    expect(peerIdFromAddress(buf.subarray(1, 21))).toBe(VECTORS[0]![1]);
  });
});

describe("peer id encoding", () => {
  test("8 bytes big-endian, as in probe payloads", () => {
    expect(Buffer.from(encodePeerId(5936725455453027748n)).toString("hex")).toBe("52637c58fd4bfda4");
    expect(decodePeerId(hex("52637c58fd4bfda4"))).toBe(5936725455453027748n);
  });

  test("round-trips every uint64", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_PEER_ID }), (id) => {
        expect(decodePeerId(encodePeerId(id))).toBe(id);
      }),
    );
    expect(Buffer.from(encodePeerId(MAX_PEER_ID)).toString("hex")).toBe("ffffffffffffffff");
  });

  test("decodes from a view into a larger buffer", () => {
    expect(decodePeerId(hex("0052637c58fd4bfda400").subarray(1, 9))).toBe(5936725455453027748n);
  });

  test("rejects payloads that are not 8 bytes and ids outside uint64", () => {
    expect(() => decodePeerId(hex("52637c58fd4bfd"))).toThrow(PeerIdError);
    expect(() => decodePeerId(hex("52637c58fd4bfda400"))).toThrow("8 bytes, got 9");
    expect(() => encodePeerId(-1n)).toThrow(PeerIdError);
    expect(() => encodePeerId(MAX_PEER_ID + 1n)).toThrow(PeerIdError);
  });

  test("hex form is zero-padded to 16 digits", () => {
    expect(peerIdHex(1n)).toBe("0x0000000000000001");
  });
});
