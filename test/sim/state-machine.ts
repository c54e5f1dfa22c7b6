// The simulated state machine: a running hash over the applied sequence (index, term, type, data).
// Two nodes agree on their applied prefix up to index i exactly when their hashes at i agree, so
// State Machine Safety costs one comparison per applied entry, and a snapshot carries the whole
// state machine in twelve bytes.
import type { Entry } from "../../src/raft/types.ts";

export interface SmState {
  /** Index of the last applied entry (or of the installed snapshot). */
  applied: number;
  /** Hash of the applied sequence up to `applied`. */
  hash: number;
}

/** The synthetic snapshot every initial member boots from (as the Rust service: index 5, term 5). */
export const BOOT_INDEX = 5;
export const BOOT_TERM = 5;
export const BOOT_HASH = 0x5eed5eed;

/** FNV-1a of an entry's type and payload. */
export function entryDigest(e: Entry): number {
  let h = (0x811c9dc5 ^ e.entryType) >>> 0;
  h = Math.imul(h, 0x01000193);
  const d = e.data;
  for (let i = 0; i < d.length; i++) {
    h ^= d[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x9e3779b1);
  return (h ^ (h >>> 15)) >>> 0;
}

/** The state machine hash after applying entry (index, term, digest) on top of `hash`. */
export function chainHash(hash: number, index: number, term: number, digest: number): number {
  return mix(mix(mix(hash, index), term), digest);
}

export function encodeSm(sm: SmState): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setFloat64(0, sm.applied);
  v.setUint32(8, sm.hash);
  return b;
}

export function decodeSm(data: Uint8Array): SmState {
  if (data.length !== 12) throw new Error(`snapshot data has ${data.length} bytes, expected 12`);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { applied: v.getFloat64(0), hash: v.getUint32(8) };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function textBytes(s: string): Uint8Array {
  return enc.encode(s);
}

/** A short printable form of an entry payload for traces. */
export function showData(d: Uint8Array): string {
  if (d.length === 0) return "-";
  const s = dec.decode(d.length > 24 ? d.subarray(0, 24) : d);
  return /^[\x20-\x7e]*$/.test(s) ? s.replace(/\.+$/, "") : `<${d.length}B>`;
}
