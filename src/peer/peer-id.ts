// Raft node ids of CITA-Cloud peers: Rust's `DefaultHasher::new().write(address).finish()`, which is
// SipHash-1-3 with keys (0, 0) over the raw address bytes. Mixed Rust/TS clusters need it bit-exact.
// The 64-bit lanes are kept as pairs of uint32 halves: BigInt arithmetic is ~60x slower.

export const MAX_PEER_ID = (1n << 64n) - 1n;

// Lanes v0..v3 as [hi0, lo0, hi1, lo1, hi2, lo2, hi3, lo3]; reused across calls (single-threaded).
const v = new Uint32Array(8);

function sipRounds(n: number): void {
  let h0 = v[0]!, l0 = v[1]!, h1 = v[2]!, l1 = v[3]!, h2 = v[4]!, l2 = v[5]!, h3 = v[6]!, l3 = v[7]!;
  let t: number;
  for (let i = 0; i < n; i++) {
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    t = (l0 + l1) >>> 0;
    h0 = (h0 + h1 + (t < l0 ? 1 : 0)) >>> 0;
    l0 = t;
    t = ((h1 << 13) | (l1 >>> 19)) >>> 0;
    l1 = ((l1 << 13) | (h1 >>> 19)) >>> 0;
    h1 = (t ^ h0) >>> 0;
    l1 = (l1 ^ l0) >>> 0;
    t = h0;
    h0 = l0;
    l0 = t;
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    t = (l2 + l3) >>> 0;
    h2 = (h2 + h3 + (t < l2 ? 1 : 0)) >>> 0;
    l2 = t;
    t = ((h3 << 16) | (l3 >>> 16)) >>> 0;
    l3 = ((l3 << 16) | (h3 >>> 16)) >>> 0;
    h3 = (t ^ h2) >>> 0;
    l3 = (l3 ^ l2) >>> 0;
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    t = (l0 + l3) >>> 0;
    h0 = (h0 + h3 + (t < l0 ? 1 : 0)) >>> 0;
    l0 = t;
    t = ((h3 << 21) | (l3 >>> 11)) >>> 0;
    l3 = ((l3 << 21) | (h3 >>> 11)) >>> 0;
    h3 = (t ^ h0) >>> 0;
    l3 = (l3 ^ l0) >>> 0;
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    t = (l2 + l1) >>> 0;
    h2 = (h2 + h1 + (t < l2 ? 1 : 0)) >>> 0;
    l2 = t;
    t = ((h1 << 17) | (l1 >>> 15)) >>> 0;
    l1 = ((l1 << 17) | (h1 >>> 15)) >>> 0;
    h1 = (t ^ h2) >>> 0;
    l1 = (l1 ^ l2) >>> 0;
    t = h2;
    h2 = l2;
    l2 = t;
  }
  v[0] = h0; v[1] = l0; v[2] = h1; v[3] = l1; v[4] = h2; v[5] = l2; v[6] = h3; v[7] = l3;
}

function compress(hi: number, lo: number): void {
  v[6]! ^= hi;
  v[7]! ^= lo;
  sipRounds(1);
  v[0]! ^= hi;
  v[1]! ^= lo;
}

function le32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

/** The Raft node id of a validator address (any byte string; 20 bytes in practice). */
export function peerIdFromAddress(address: Uint8Array): bigint {
  // Initial state for k0 = k1 = 0: the "somepseudorandomlygeneratedbytes" constants.
  v[0] = 0x736f6d65; v[1] = 0x70736575;
  v[2] = 0x646f7261; v[3] = 0x6e646f6d;
  v[4] = 0x6c796765; v[5] = 0x6e657261;
  v[6] = 0x74656462; v[7] = 0x79746573;
  const len = address.length;
  const full = len - (len % 8);
  for (let i = 0; i < full; i += 8) compress(le32(address, i + 4), le32(address, i));
  // Last block: the remaining bytes little-endian, the length's low byte on top.
  let lo = 0;
  let hi = (len & 0xff) << 24;
  for (let i = full; i < len; i++) {
    const k = i - full;
    if (k < 4) lo |= address[i]! << (8 * k);
    else hi |= address[i]! << (8 * (k - 4));
  }
  compress(hi >>> 0, lo >>> 0);
  v[5]! ^= 0xff;
  sipRounds(3);
  const rh = (v[0]! ^ v[2]! ^ v[4]! ^ v[6]!) >>> 0;
  const rl = (v[1]! ^ v[3]! ^ v[5]! ^ v[7]!) >>> 0;
  return (BigInt(rh) << 32n) | BigInt(rl);
}

export class PeerIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PeerIdError";
  }
}

/** `0x` and 16 lowercase hex digits, the form used in logs. */
export function peerIdHex(id: bigint): string {
  return `0x${id.toString(16).padStart(16, "0")}`;
}

/** 8 bytes big-endian: the payload of probe, probe-resp and refresh messages. */
export function encodePeerId(id: bigint): Uint8Array {
  if (id < 0n || id > MAX_PEER_ID) throw new PeerIdError(`peer id ${id} is outside uint64`);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, id, false);
  return out;
}

export function decodePeerId(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new PeerIdError(`a peer id is 8 bytes, got ${bytes.length}`);
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, false);
}
