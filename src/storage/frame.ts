// Binary framing of a run of consecutive log entries, stored as one blob per appended batch: one
// row per Ready instead of one per entry halves the CPU cost of a persist and makes compaction a
// delete of a few rows. Indexes are implied (first + position); per entry:
//   u8 entry type | u32 term high | u32 term low | u32 data length | data | u32 context length | context
// (big-endian). Terms are ≤ 2^53 (the codec's rule), so the two halves hold them exactly.
import { type Entry } from "../raft/index.ts";

const HEADER = 1 + 4 + 4 + 4 + 4;
const TWO_32 = 2 ** 32;

export function encodeEntries(ents: readonly Entry[]): Uint8Array {
  let size = 0;
  for (const e of ents) size += HEADER + e.data.length + e.context.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let o = 0;
  for (const e of ents) {
    out[o] = e.entryType;
    dv.setUint32(o + 1, Math.floor(e.term / TWO_32));
    dv.setUint32(o + 5, e.term >>> 0);
    dv.setUint32(o + 9, e.data.length);
    out.set(e.data, o + 13);
    o += 13 + e.data.length;
    dv.setUint32(o, e.context.length);
    out.set(e.context, o + 4);
    o += 4 + e.context.length;
  }
  return out;
}

/** Decodes the entries `first`..`last` framed in `blob`; throws on any size mismatch. */
export function decodeEntries(blob: Uint8Array, first: number, last: number): Entry[] {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const ents: Entry[] = [];
  let o = 0;
  const need = (n: number) => {
    if (o + n > blob.length) throw new Error(`entry ${first + ents.length} is cut short`);
  };
  for (let index = first; index <= last; index++) {
    need(HEADER - 4);
    const entryType = blob[o];
    const term = dv.getUint32(o + 1) * TWO_32 + dv.getUint32(o + 5);
    const dataLen = dv.getUint32(o + 9);
    o += 13;
    need(dataLen + 4);
    const data = blob.subarray(o, o + dataLen);
    o += dataLen;
    const ctxLen = dv.getUint32(o);
    o += 4;
    need(ctxLen);
    const context = blob.subarray(o, o + ctxLen);
    o += ctxLen;
    if (!Number.isSafeInteger(term)) throw new Error(`entry ${index} has term ${term} above 2^53`);
    ents.push({ entryType, term, index, data, context });
  }
  if (o !== blob.length) throw new Error(`${blob.length - o} bytes after entry ${last}`);
  return ents;
}
