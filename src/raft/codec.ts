// Lossless conversion between the core's value types and raft-rs `eraftpb` wire messages.
// uint64 terms and indexes become numbers: anything above 2^53-1 is rejected with a CodecError
// instead of being silently rounded (a real cluster will not reach 2^53 entries or terms).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as pb from "../../gen/eraftpb_pb.ts";
import type { ConfChangeV2, ConfState, Entry, HardState, Message, Snapshot } from "./types.ts";

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function num(v: bigint, field: string): number {
  if (v > MAX_SAFE) throw new CodecError(`${field} ${v} exceeds 2^53-1`);
  return Number(v);
}

function i64(v: bigint, field: string): number {
  if (v > MAX_SAFE || v < -MAX_SAFE) throw new CodecError(`${field} ${v} exceeds 2^53-1`);
  return Number(v);
}

function decodeWith<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CodecError) throw e;
    throw new CodecError(`cannot decode ${what}: ${(e as Error).message}`);
  }
}

// ---- core -> pb ----

export function entryToPb(e: Entry): pb.Entry {
  return create(pb.EntrySchema, {
    entryType: e.entryType,
    term: BigInt(e.term),
    index: BigInt(e.index),
    data: e.data,
    context: e.context,
  });
}

export function confStateToPb(cs: ConfState): pb.ConfState {
  return create(pb.ConfStateSchema, {
    voters: cs.voters,
    learners: cs.learners,
    votersOutgoing: cs.votersOutgoing,
    learnersNext: cs.learnersNext,
    autoLeave: cs.autoLeave,
  });
}

export function snapshotToPb(s: Snapshot): pb.Snapshot {
  return create(pb.SnapshotSchema, {
    data: s.data,
    metadata: {
      confState: confStateToPb(s.metadata.confState),
      index: BigInt(s.metadata.index),
      term: BigInt(s.metadata.term),
    },
  });
}

export function hardStateToPb(h: HardState): pb.HardState {
  return create(pb.HardStateSchema, { term: BigInt(h.term), vote: h.vote, commit: BigInt(h.commit) });
}

export function messageToPb(m: Message): pb.Message {
  const priority = BigInt(m.priority);
  return create(pb.MessageSchema, {
    msgType: m.msgType,
    to: m.to,
    from: m.from,
    term: BigInt(m.term),
    logTerm: BigInt(m.logTerm),
    index: BigInt(m.index),
    entries: m.entries.map(entryToPb),
    commit: BigInt(m.commit),
    commitTerm: BigInt(m.commitTerm),
    snapshot: m.snapshot ? snapshotToPb(m.snapshot) : undefined,
    requestSnapshot: BigInt(m.requestSnapshot),
    reject: m.reject,
    rejectHint: BigInt(m.rejectHint),
    context: m.context,
    // raft-rs mirrors a positive priority into the deprecated field for older peers.
    deprecatedPriority: priority > 0n ? priority : 0n,
    priority,
  });
}

export function confChangeV2ToPb(cc: ConfChangeV2): pb.ConfChangeV2 {
  return create(pb.ConfChangeV2Schema, {
    transition: cc.transition,
    changes: cc.changes.map((c) => ({ changeType: c.changeType, nodeId: c.nodeId })),
    context: cc.context,
  });
}

// ---- pb -> core ----

export function entryFromPb(e: pb.Entry): Entry {
  return {
    entryType: e.entryType,
    term: num(e.term, "entry.term"),
    index: num(e.index, "entry.index"),
    data: e.data,
    context: e.context,
  };
}

export function confStateFromPb(cs: pb.ConfState | undefined): ConfState {
  return {
    voters: cs ? [...cs.voters] : [],
    learners: cs ? [...cs.learners] : [],
    votersOutgoing: cs ? [...cs.votersOutgoing] : [],
    learnersNext: cs ? [...cs.learnersNext] : [],
    autoLeave: cs?.autoLeave ?? false,
  };
}

export function snapshotFromPb(s: pb.Snapshot): Snapshot {
  const md = s.metadata;
  return {
    data: s.data,
    metadata: {
      confState: confStateFromPb(md?.confState),
      index: num(md?.index ?? 0n, "snapshot.index"),
      term: num(md?.term ?? 0n, "snapshot.term"),
    },
  };
}

export function hardStateFromPb(h: pb.HardState): HardState {
  return { term: num(h.term, "hard_state.term"), vote: h.vote, commit: num(h.commit, "hard_state.commit") };
}

export function messageFromPb(m: pb.Message): Message {
  // Older raft-rs peers only fill deprecated_priority.
  const priority = m.priority !== 0n ? m.priority : m.deprecatedPriority;
  return {
    msgType: m.msgType,
    to: m.to,
    from: m.from,
    term: num(m.term, "message.term"),
    logTerm: num(m.logTerm, "message.log_term"),
    index: num(m.index, "message.index"),
    entries: m.entries.map(entryFromPb),
    commit: num(m.commit, "message.commit"),
    commitTerm: num(m.commitTerm, "message.commit_term"),
    snapshot: m.snapshot ? snapshotFromPb(m.snapshot) : undefined,
    requestSnapshot: num(m.requestSnapshot, "message.request_snapshot"),
    reject: m.reject,
    rejectHint: num(m.rejectHint, "message.reject_hint"),
    context: m.context,
    priority: i64(BigInt.asIntN(64, priority), "message.priority"),
  };
}

export function confChangeV2FromPb(cc: pb.ConfChangeV2): ConfChangeV2 {
  return {
    transition: cc.transition,
    changes: cc.changes.map((c) => ({ changeType: c.changeType, nodeId: c.nodeId })),
    context: cc.context,
  };
}

// ---- bytes ----

export const encodeMessage = (m: Message): Uint8Array => toBinary(pb.MessageSchema, messageToPb(m));
export const decodeMessage = (b: Uint8Array): Message =>
  decodeWith("raft message", () => messageFromPb(fromBinary(pb.MessageSchema, b)));

export const encodeEntry = (e: Entry): Uint8Array => toBinary(pb.EntrySchema, entryToPb(e));
export const decodeEntry = (b: Uint8Array): Entry => decodeWith("entry", () => entryFromPb(fromBinary(pb.EntrySchema, b)));

export const encodeHardState = (h: HardState): Uint8Array => toBinary(pb.HardStateSchema, hardStateToPb(h));
export const decodeHardState = (b: Uint8Array): HardState =>
  decodeWith("hard state", () => hardStateFromPb(fromBinary(pb.HardStateSchema, b)));

export const encodeConfState = (c: ConfState): Uint8Array => toBinary(pb.ConfStateSchema, confStateToPb(c));
export const decodeConfState = (b: Uint8Array): ConfState =>
  decodeWith("conf state", () => confStateFromPb(fromBinary(pb.ConfStateSchema, b)));

export const encodeSnapshot = (s: Snapshot): Uint8Array => toBinary(pb.SnapshotSchema, snapshotToPb(s));
export const decodeSnapshot = (b: Uint8Array): Snapshot =>
  decodeWith("snapshot", () => snapshotFromPb(fromBinary(pb.SnapshotSchema, b)));

export const encodeConfChangeV2 = (c: ConfChangeV2): Uint8Array => toBinary(pb.ConfChangeV2Schema, confChangeV2ToPb(c));
export const decodeConfChangeV2 = (b: Uint8Array): ConfChangeV2 =>
  decodeWith("conf change v2", () => confChangeV2FromPb(fromBinary(pb.ConfChangeV2Schema, b)));
