// A hand-written protobuf codec for eraftpb.Message, the one type that crosses the wire for every
// Raft message. It writes the same bytes as @bufbuild/protobuf (fields in number order, proto3
// defaults omitted, ConfState ids packed) without building intermediate objects or BigInts for
// terms and indexes, which makes it several times faster. It only handles the regular case: for
// anything unusual (a value outside its range, a malformed or odd encoding) it returns undefined
// and codec.ts falls back to the generated code, which defines the behaviour (and the errors).
import { type Entry, EMPTY_BYTES, type Message, NO_ENTRIES, type Snapshot } from "./types.ts";

const TWO32 = 4294967296;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const U64_MAX = 0xffffffffffffffffn;

// ---------------------------------------------------------------- encoding

/** A field value the fast path will not encode (the generated code decides what happens). */
class Irregular {}
const IRREGULAR = new Irregular();

/** Size of a uint64 varint for a safe, non-negative integer. */
function numSize(v: number): number {
  if (!(v >= 0 && v <= MAX_SAFE && Math.floor(v) === v)) throw IRREGULAR;
  if (v < 128) return 1;
  if (v < 16384) return 2;
  if (v < 2097152) return 3;
  if (v < 268435456) return 4;
  if (v < 34359738368) return 5;
  if (v < 4398046511104) return 6;
  if (v < 562949953421312) return 7;
  return 8;
}

// Node ids repeat (a cluster has a handful) and splitting a 64-bit BigInt allocates: remember the
// 32-bit halves of recently encoded ids.
const ENC_SLOTS = 8;
const encIds: bigint[] = [];
const encLo = new Uint32Array(ENC_SLOTS);
const encHi = new Uint32Array(ENC_SLOTS);
let encNext = 0;

/** The cache slot holding the halves of `v` (a uint64). */
function idSlot(v: bigint): number {
  for (let i = 0; i < encIds.length; i++) if (encIds[i] === v) return i;
  if (v < 0n || v > U64_MAX) throw IRREGULAR;
  const i = encNext;
  encNext = (encNext + 1) % ENC_SLOTS;
  encIds[i] = v;
  encLo[i] = Number(v & 0xffffffffn);
  encHi[i] = Number(v >> 32n);
  return i;
}

function bigSize(v: bigint): number {
  const i = idSlot(v);
  const hi = encHi[i];
  if (hi === 0) return numSize(encLo[i]);
  // 33..64 significant bits, 7 per byte.
  return Math.ceil((64 - Math.clz32(hi)) / 7);
}

function writeNum(buf: Uint8Array, p: number, v: number): number {
  while (v >= 0x80000000) {
    buf[p++] = (v & 0x7f) | 0x80; // ToInt32 keeps the low bits of any safe integer
    v = Math.floor(v / 128);
  }
  while (v > 127) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/** Writes a uint64 id; its halves are in the cache since bigSize(v) ran in the sizing pass. */
function writeBig(buf: Uint8Array, p: number, v: bigint): number {
  const i = idSlot(v);
  let lo = encLo[i];
  let hi = encHi[i];
  if (hi === 0) return writeNum(buf, p, lo);
  while (hi > 0 || lo > 127) {
    buf[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[p++] = lo;
  return p;
}

/** int64 priority as a two's-complement varint (10 bytes when negative). */
function writeI64(buf: Uint8Array, p: number, v: number): number {
  if (v >= 0) return writeNum(buf, p, v);
  const hi = Math.floor(v / TWO32);
  let lo = v - hi * TWO32;
  let h = hi >>> 0;
  while (h > 0 || lo > 127) {
    buf[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (h << 25)) >>> 0;
    h >>>= 7;
  }
  buf[p++] = lo;
  return p;
}

function i64Size(v: number): number {
  if (v >= 0) return numSize(v);
  if (!(v >= -MAX_SAFE && Math.floor(v) === v)) throw IRREGULAR;
  return 10;
}

/** Enum values are int32 on the wire; the fast path takes the usual non-negative ones. */
function enumSize(v: number): number {
  if (!(v >= 0 && v <= 0x7fffffff && (v | 0) === v)) throw IRREGULAR;
  return numSize(v);
}

const lenSize = (n: number) => numSize(n) + n;

function entryBodySize(e: Entry): number {
  let s = 0;
  if (e.entryType !== 0) s += 1 + enumSize(e.entryType);
  if (e.term !== 0) s += 1 + numSize(e.term);
  if (e.index !== 0) s += 1 + numSize(e.index);
  if (e.data.length > 0) s += 1 + lenSize(e.data.length);
  if (e.context.length > 0) s += 1 + lenSize(e.context.length);
  return s;
}

function idsSize(ids: bigint[]): number {
  let s = 0;
  for (let i = 0; i < ids.length; i++) s += bigSize(ids[i]);
  return s;
}

function confStateBodySize(s: Snapshot["metadata"]["confState"]): number {
  let n = 0;
  for (const ids of [s.voters, s.learners, s.votersOutgoing, s.learnersNext]) if (ids.length > 0) n += 1 + lenSize(idsSize(ids));
  if (s.autoLeave) n += 2;
  return n;
}

function metadataBodySize(md: Snapshot["metadata"]): number {
  let n = 1 + lenSize(confStateBodySize(md.confState));
  if (md.index !== 0) n += 1 + numSize(md.index);
  if (md.term !== 0) n += 1 + numSize(md.term);
  return n;
}

function snapshotBodySize(s: Snapshot): number {
  let n = 0;
  if (s.data.length > 0) n += 1 + lenSize(s.data.length);
  return n + 1 + lenSize(metadataBodySize(s.metadata));
}

function writeBytes(buf: Uint8Array, p: number, tag: number, b: Uint8Array): number {
  buf[p++] = tag;
  p = writeNum(buf, p, b.length);
  buf.set(b, p);
  return p + b.length;
}

function writeEntry(buf: Uint8Array, p: number, e: Entry): number {
  if (e.entryType !== 0) {
    buf[p++] = 0x08;
    p = writeNum(buf, p, e.entryType);
  }
  if (e.term !== 0) {
    buf[p++] = 0x10;
    p = writeNum(buf, p, e.term);
  }
  if (e.index !== 0) {
    buf[p++] = 0x18;
    p = writeNum(buf, p, e.index);
  }
  if (e.data.length > 0) p = writeBytes(buf, p, 0x22, e.data);
  if (e.context.length > 0) p = writeBytes(buf, p, 0x32, e.context);
  return p;
}

function writeIds(buf: Uint8Array, p: number, tag: number, ids: bigint[]): number {
  if (ids.length === 0) return p;
  buf[p++] = tag;
  p = writeNum(buf, p, idsSize(ids));
  for (let i = 0; i < ids.length; i++) p = writeBig(buf, p, ids[i]);
  return p;
}

function writeSnapshot(buf: Uint8Array, p: number, s: Snapshot): number {
  if (s.data.length > 0) p = writeBytes(buf, p, 0x0a, s.data);
  const md = s.metadata;
  buf[p++] = 0x12;
  p = writeNum(buf, p, metadataBodySize(md));
  const cs = md.confState;
  buf[p++] = 0x0a;
  p = writeNum(buf, p, confStateBodySize(cs));
  p = writeIds(buf, p, 0x0a, cs.voters);
  p = writeIds(buf, p, 0x12, cs.learners);
  p = writeIds(buf, p, 0x1a, cs.votersOutgoing);
  p = writeIds(buf, p, 0x22, cs.learnersNext);
  if (cs.autoLeave) {
    buf[p++] = 0x28;
    buf[p++] = 1;
  }
  if (md.index !== 0) {
    buf[p++] = 0x10;
    p = writeNum(buf, p, md.index);
  }
  if (md.term !== 0) {
    buf[p++] = 0x18;
    p = writeNum(buf, p, md.term);
  }
  return p;
}

/** Sizes of the entries of the message being encoded (reused between calls). */
let entrySizes = new Float64Array(64);

/** The eraftpb.Message bytes of `m`, or undefined if a value is outside what the fast path encodes. */
export function fastEncodeMessage(m: Message): Uint8Array | undefined {
  let size: number;
  const ents = m.entries;
  const snapSize = m.snapshot !== undefined ? 0 : -1;
  try {
    size = 0;
    if (m.msgType !== 0) size += 1 + enumSize(m.msgType);
    if (m.to !== 0n) size += 1 + bigSize(m.to);
    if (m.from !== 0n) size += 1 + bigSize(m.from);
    if (m.term !== 0) size += 1 + numSize(m.term);
    if (m.logTerm !== 0) size += 1 + numSize(m.logTerm);
    if (m.index !== 0) size += 1 + numSize(m.index);
    if (ents.length > entrySizes.length) entrySizes = new Float64Array(ents.length * 2);
    for (let i = 0; i < ents.length; i++) {
      const s = entryBodySize(ents[i]);
      entrySizes[i] = s;
      size += 1 + lenSize(s);
    }
    if (m.commit !== 0) size += 1 + numSize(m.commit);
    if (snapSize === 0) size += 1 + lenSize(snapshotBodySize(m.snapshot!));
    if (m.reject) size += 2;
    if (m.rejectHint !== 0) size += 1 + numSize(m.rejectHint);
    if (m.context.length > 0) size += 1 + lenSize(m.context.length);
    if (m.requestSnapshot !== 0) size += 1 + numSize(m.requestSnapshot);
    // raft-rs mirrors a positive priority into the deprecated field 14 for older peers.
    if (m.priority > 0) size += 1 + numSize(m.priority);
    if (m.commitTerm !== 0) size += 1 + numSize(m.commitTerm);
    if (m.priority !== 0) size += 2 + i64Size(m.priority);
  } catch (e) {
    if (e === IRREGULAR) return undefined;
    throw e;
  }
  const buf = new Uint8Array(size);
  let p = 0;
  if (m.msgType !== 0) {
    buf[p++] = 0x08;
    p = writeNum(buf, p, m.msgType);
  }
  if (m.to !== 0n) {
    buf[p++] = 0x10;
    p = writeBig(buf, p, m.to);
  }
  if (m.from !== 0n) {
    buf[p++] = 0x18;
    p = writeBig(buf, p, m.from);
  }
  if (m.term !== 0) {
    buf[p++] = 0x20;
    p = writeNum(buf, p, m.term);
  }
  if (m.logTerm !== 0) {
    buf[p++] = 0x28;
    p = writeNum(buf, p, m.logTerm);
  }
  if (m.index !== 0) {
    buf[p++] = 0x30;
    p = writeNum(buf, p, m.index);
  }
  for (let i = 0; i < ents.length; i++) {
    buf[p++] = 0x3a;
    p = writeNum(buf, p, entrySizes[i]);
    p = writeEntry(buf, p, ents[i]);
  }
  if (m.commit !== 0) {
    buf[p++] = 0x40;
    p = writeNum(buf, p, m.commit);
  }
  if (snapSize === 0) {
    buf[p++] = 0x4a;
    p = writeNum(buf, p, snapshotBodySize(m.snapshot!));
    p = writeSnapshot(buf, p, m.snapshot!);
  }
  if (m.reject) {
    buf[p++] = 0x50;
    buf[p++] = 1;
  }
  if (m.rejectHint !== 0) {
    buf[p++] = 0x58;
    p = writeNum(buf, p, m.rejectHint);
  }
  if (m.context.length > 0) p = writeBytes(buf, p, 0x62, m.context);
  if (m.requestSnapshot !== 0) {
    buf[p++] = 0x68;
    p = writeNum(buf, p, m.requestSnapshot);
  }
  if (m.priority > 0) {
    buf[p++] = 0x70;
    p = writeNum(buf, p, m.priority);
  }
  if (m.commitTerm !== 0) {
    buf[p++] = 0x78;
    p = writeNum(buf, p, m.commitTerm);
  }
  if (m.priority !== 0) {
    buf[p++] = 0x80;
    buf[p++] = 0x01;
    p = writeI64(buf, p, m.priority);
  }
  if (p !== size) throw new Error(`eraftpb encoder size mismatch: wrote ${p} of ${size} bytes`);
  return buf;
}

// ---------------------------------------------------------------- decoding

/** Cursor over the input; `lo`/`hi` hold the halves of the last varint read. */
class Reader {
  buf: Uint8Array = EMPTY_BYTES;
  pos = 0;
  end = 0;
  lo = 0;
  hi = 0;
}

/** One reader for every decode (decoding never re-enters): saves an allocation per message. */
const reader = new Reader();


/** Reads a varint into r.lo/r.hi; false if it is truncated or longer than 10 bytes. */
function varint(r: Reader): boolean {
  const buf = r.buf;
  const end = r.end;
  let pos = r.pos;
  let lo = 0;
  let b = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) return false;
    b = buf[pos++];
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      r.pos = pos;
      r.lo = lo >>> 0;
      r.hi = 0;
      return true;
    }
  }
  if (pos >= end) return false;
  b = buf[pos++];
  lo |= (b & 0x0f) << 28;
  let hi = (b & 0x7f) >> 4;
  if (b >= 0x80) {
    for (let shift = 3; ; shift += 7) {
      if (shift > 31 || pos >= end) return false;
      b = buf[pos++];
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
  }
  r.pos = pos;
  r.lo = lo >>> 0;
  r.hi = hi >>> 0;
  return true;
}

/** Thrown inside the decoder to hand the input to the generated code. */
const BAIL = new Irregular();

function readNum(r: Reader): number {
  if (!varint(r) || r.hi > 0x1fffff) throw BAIL;
  return r.hi * TWO32 + r.lo;
}

// Node ids repeat (a cluster has a handful): remember recent ones instead of rebuilding the BigInt.
const ID_SLOTS = 16;
const idLo = Uint32Array.from({ length: ID_SLOTS }, (_, i) => i);
const idHi = new Uint32Array(ID_SLOTS);
const idVal: bigint[] = Array.from({ length: ID_SLOTS }, (_, i) => BigInt(i));

function readBig(r: Reader): bigint {
  if (!varint(r)) throw BAIL;
  const lo = r.lo;
  const hi = r.hi;
  const slot = (lo ^ hi) & (ID_SLOTS - 1);
  if (idLo[slot] === lo && idHi[slot] === hi) return idVal[slot];
  const v = hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  idLo[slot] = lo;
  idHi[slot] = hi;
  idVal[slot] = v;
  return v;
}

function readEnum(r: Reader): number {
  if (!varint(r) || r.hi !== 0 || r.lo > 0x7fffffff) throw BAIL;
  return r.lo;
}

function readBool(r: Reader): boolean {
  if (!varint(r)) throw BAIL;
  return (r.lo | r.hi) !== 0;
}

/** Reads a length prefix and returns the end of the field's bytes. */
function readLen(r: Reader): number {
  const n = readNum(r);
  if (n > r.end - r.pos) throw BAIL;
  return r.pos + n;
}

/**
 * Bytes fields are copied out: a view would pin the whole message buffer for as long as the entry
 * lives in the log, and in JSC copying a small range is cheaper than creating a view.
 */
function readBytes(r: Reader): Uint8Array {
  const end = readLen(r);
  const b = end === r.pos ? EMPTY_BYTES : r.buf.slice(r.pos, end);
  r.pos = end;
  return b;
}

/** Skips a field of an unknown number; groups and reserved wire types are left to the generated code. */
function skip(r: Reader, wt: number): void {
  switch (wt) {
    case 0:
      if (!varint(r)) throw BAIL;
      return;
    case 1:
      r.pos += 8;
      break;
    case 2:
      r.pos = readLen(r);
      return;
    case 5:
      r.pos += 4;
      break;
    default:
      throw BAIL;
  }
  if (r.pos > r.end) throw BAIL;
}

/** Reads a tag: (field number << 3) | wire type. */
function readTag(r: Reader): number {
  if (!varint(r) || r.hi !== 0 || r.lo >>> 3 === 0) throw BAIL;
  return r.lo;
}

/** Runs `f` over the sub-range [pos, end) of a length-delimited field. */
function within<T>(r: Reader, f: (r: Reader) => T): T {
  const end = readLen(r);
  const outer = r.end;
  r.end = end;
  const v = f(r);
  if (r.pos !== end) throw BAIL;
  r.end = outer;
  return v;
}

function readEntry(r: Reader): Entry {
  let entryType = 0;
  let term = 0;
  let index = 0;
  let data = EMPTY_BYTES;
  let context = EMPTY_BYTES;
  while (r.pos < r.end) {
    const tag = readTag(r);
    switch (tag) {
      case 0x08:
        entryType = readEnum(r);
        break;
      case 0x10:
        term = readNum(r);
        break;
      case 0x18:
        index = readNum(r);
        break;
      case 0x22:
        data = readBytes(r);
        break;
      case 0x32:
        context = readBytes(r);
        break;
      case 0x28: // sync_log: not part of the core's Entry
        readBool(r);
        break;
      default:
        if (tag >>> 3 <= 6) throw BAIL; // a known field with an unexpected wire type
        skip(r, tag & 7);
    }
  }
  return { entryType, term, index, data, context };
}

/** A repeated uint64, packed (length-delimited) or one value per field. */
function readIds(r: Reader, wt: number, into: bigint[]): void {
  if (wt === 0) {
    into.push(readBig(r));
    return;
  }
  if (wt !== 2) throw BAIL;
  const end = readLen(r);
  const outer = r.end;
  r.end = end;
  while (r.pos < end) into.push(readBig(r));
  r.end = outer;
}

function readConfState(r: Reader): Snapshot["metadata"]["confState"] {
  const cs = { voters: [] as bigint[], learners: [] as bigint[], votersOutgoing: [] as bigint[], learnersNext: [] as bigint[], autoLeave: false };
  while (r.pos < r.end) {
    const tag = readTag(r);
    const no = tag >>> 3;
    const wt = tag & 7;
    if (no === 1) readIds(r, wt, cs.voters);
    else if (no === 2) readIds(r, wt, cs.learners);
    else if (no === 3) readIds(r, wt, cs.votersOutgoing);
    else if (no === 4) readIds(r, wt, cs.learnersNext);
    else if (tag === 0x28) cs.autoLeave = readBool(r);
    else if (no === 5) throw BAIL;
    else skip(r, wt);
  }
  return cs;
}

function readMetadata(r: Reader): Snapshot["metadata"] {
  let confState: Snapshot["metadata"]["confState"] | undefined;
  let index = 0;
  let term = 0;
  while (r.pos < r.end) {
    const tag = readTag(r);
    if (tag === 0x0a) {
      if (confState !== undefined) throw BAIL; // repeated singular message: protobuf merges
      confState = within(r, readConfState);
    } else if (tag === 0x10) index = readNum(r);
    else if (tag === 0x18) term = readNum(r);
    else if (tag >>> 3 <= 3) throw BAIL;
    else skip(r, tag & 7);
  }
  return { confState: confState ?? { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }, index, term };
}

function readSnapshot(r: Reader): Snapshot {
  let data = EMPTY_BYTES;
  let metadata: Snapshot["metadata"] | undefined;
  while (r.pos < r.end) {
    const tag = readTag(r);
    if (tag === 0x0a) data = readBytes(r);
    else if (tag === 0x12) {
      if (metadata !== undefined) throw BAIL;
      metadata = within(r, readMetadata);
    } else if (tag >>> 3 <= 2) throw BAIL;
    else skip(r, tag & 7);
  }
  return {
    data,
    metadata: metadata ?? { confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }, index: 0, term: 0 },
  };
}

/** Decodes eraftpb.Message bytes, or returns undefined for anything the generated code should judge. */
export function fastDecodeMessage(buf: Uint8Array): Message | undefined {
  // Buffer#slice is a view, not a copy: read a Buffer through a plain Uint8Array over its bytes.
  if (buf.constructor !== Uint8Array) buf = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = reader;
  r.buf = buf;
  r.pos = 0;
  r.end = buf.length;
  let msgType = 0;
  let to = 0n;
  let from = 0n;
  let term = 0;
  let logTerm = 0;
  let index = 0;
  let entries = NO_ENTRIES;
  let commit = 0;
  let commitTerm = 0;
  let snapshot: Snapshot | undefined;
  let requestSnapshot = 0;
  let reject = false;
  let rejectHint = 0;
  let context = EMPTY_BYTES;
  // int64 priority and the deprecated uint64 field, as raw halves until the end.
  let pLo = 0;
  let pHi = 0;
  let dLo = 0;
  let dHi = 0;
  try {
    while (r.pos < r.end) {
      const tag = readTag(r);
      switch (tag) {
        case 0x08:
          msgType = readEnum(r);
          break;
        case 0x10:
          to = readBig(r);
          break;
        case 0x18:
          from = readBig(r);
          break;
        case 0x20:
          term = readNum(r);
          break;
        case 0x28:
          logTerm = readNum(r);
          break;
        case 0x30:
          index = readNum(r);
          break;
        case 0x3a:
          if (entries === NO_ENTRIES) entries = [];
          entries.push(within(r, readEntry));
          break;
        case 0x40:
          commit = readNum(r);
          break;
        case 0x4a:
          if (snapshot !== undefined) throw BAIL;
          snapshot = within(r, readSnapshot);
          break;
        case 0x50:
          reject = readBool(r);
          break;
        case 0x58:
          rejectHint = readNum(r);
          break;
        case 0x62:
          context = readBytes(r);
          break;
        case 0x68:
          requestSnapshot = readNum(r);
          break;
        case 0x70:
          if (!varint(r)) throw BAIL;
          dLo = r.lo;
          dHi = r.hi;
          break;
        case 0x78:
          commitTerm = readNum(r);
          break;
        case 0x80:
          if (!varint(r)) throw BAIL;
          pLo = r.lo;
          pHi = r.hi;
          break;
        default:
          if (tag >>> 3 <= 16) throw BAIL;
          skip(r, tag & 7);
      }
    }
  } catch (e) {
    if (e === BAIL) return undefined;
    throw e;
  } finally {
    r.buf = EMPTY_BYTES; // do not keep the last input alive
  }
  // Older raft-rs peers only fill deprecated_priority; both are read as int64.
  if ((pLo | pHi) === 0) {
    pLo = dLo;
    pHi = dHi;
  }
  const priority = (pHi | 0) * TWO32 + pLo;
  if (priority > MAX_SAFE || priority < -MAX_SAFE) return undefined;
  return {
    msgType,
    to,
    from,
    term,
    logTerm,
    index,
    entries,
    commit,
    commitTerm,
    snapshot,
    requestSnapshot,
    reject,
    rejectHint,
    context,
    priority,
  };
}
