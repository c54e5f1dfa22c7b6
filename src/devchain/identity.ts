// Node identities of a devchain: 20-byte addresses derived from a seed, and the network origin
// network_zenoh gives a node (big-endian u64 of the first 8 bytes of its address).
import { createHash } from "node:crypto";

export function sha256(...parts: (Uint8Array | string)[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Deterministic 20-byte address of node `index` in the chain identified by `seed`. */
export function deriveAddress(seed: string | number, index: number): Uint8Array {
  return sha256(`devchain-node:${seed}:${index}`).slice(0, 20);
}

export function originOf(address: Uint8Array): bigint {
  if (address.length < 8) {
    throw new Error(`an address needs at least 8 bytes to derive an origin, got ${address.length}`);
  }
  return new DataView(address.buffer, address.byteOffset, 8).getBigUint64(0, false);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}


