// The Raft core's own value types. They mirror raft-rs `eraftpb` field for field, but use plain
// numbers for terms and indexes (checked against 2^53 at the wire, see codec.ts) and bigint for
// node ids (SipHash u64). Converting to and from the generated protobuf types happens only at the
// transport and storage edges.
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType } from "../../gen/eraftpb_pb.ts";

export { ConfChangeTransition, ConfChangeType, EntryType, MessageType };

/** A Raft node id: a non-zero uint64. */
export type NodeId = bigint;
/** "No node": raft-rs INVALID_ID. */
export const NONE: NodeId = 0n;

export interface Entry {
  entryType: EntryType;
  term: number;
  index: number;
  data: Uint8Array;
  context: Uint8Array;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  learnersNext: NodeId[];
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  confState: ConfState;
  index: number;
  term: number;
}

export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface Message {
  msgType: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  commitTerm: number;
  snapshot?: Snapshot;
  requestSnapshot: number;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
  priority: number;
}

export interface ConfChangeSingle {
  changeType: ConfChangeType;
  nodeId: NodeId;
}

export interface ConfChangeV2 {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  context: Uint8Array;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/**
 * An empty list to share wherever a message or Ready part carries nothing, saving an allocation
 * per message. Deliberately not frozen: JSC stores a frozen array differently, and loops that see
 * both kinds deoptimize. Nobody may append to one; RawNode.ready() checks that they stay empty.
 */
export function sharedEmptyList<T>(): T[] {
  const a: T[] = [];
  a.push(undefined as T); // gives it the storage layout of a filled array
  a.length = 0;
  return a;
}

export const NO_ENTRIES: Entry[] = sharedEmptyList();
export const NO_MESSAGES: Message[] = sharedEmptyList();

export function newEntry(init: Partial<Entry> = {}): Entry {
  return {
    entryType: init.entryType ?? EntryType.EntryNormal,
    term: init.term ?? 0,
    index: init.index ?? 0,
    data: init.data ?? EMPTY_BYTES,
    context: init.context ?? EMPTY_BYTES,
  };
}

export function newMessage(init: Partial<Message> = {}): Message {
  return {
    msgType: init.msgType ?? MessageType.MsgHup,
    to: init.to ?? NONE,
    from: init.from ?? NONE,
    term: init.term ?? 0,
    logTerm: init.logTerm ?? 0,
    index: init.index ?? 0,
    entries: init.entries ?? [],
    commit: init.commit ?? 0,
    commitTerm: init.commitTerm ?? 0,
    snapshot: init.snapshot,
    requestSnapshot: init.requestSnapshot ?? 0,
    reject: init.reject ?? false,
    rejectHint: init.rejectHint ?? 0,
    context: init.context ?? EMPTY_BYTES,
    priority: init.priority ?? 0,
  };
}

export function newConfState(init: Partial<ConfState> = {}): ConfState {
  return {
    voters: init.voters ?? [],
    learners: init.learners ?? [],
    votersOutgoing: init.votersOutgoing ?? [],
    learnersNext: init.learnersNext ?? [],
    autoLeave: init.autoLeave ?? false,
  };
}

export function newSnapshot(index = 0, term = 0, confState: ConfState = newConfState(), data: Uint8Array = EMPTY_BYTES): Snapshot {
  return { data, metadata: { confState, index, term } };
}

export function newHardState(init: Partial<HardState> = {}): HardState {
  return { term: init.term ?? 0, vote: init.vote ?? NONE, commit: init.commit ?? 0 };
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function isEmptyHardState(h: HardState): boolean {
  return h.term === 0 && h.vote === NONE && h.commit === 0;
}

function sameIds(a: NodeId[], b: NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  for (const x of b) if (!s.has(x)) return false;
  return true;
}

/** Set-equality of two ConfStates (order of ids does not matter). */
export function confStateEqual(a: ConfState, b: ConfState): boolean {
  return (
    sameIds(a.voters, b.voters) &&
    sameIds(a.learners, b.learners) &&
    sameIds(a.votersOutgoing, b.votersOutgoing) &&
    sameIds(a.learnersNext, b.learnersNext) &&
    a.autoLeave === b.autoLeave
  );
}

/** Approximate encoded size of an entry, used for max_size_per_msg and byte budgets (as raft-rs: the protobuf size). */
export function entrySize(e: Entry): number {
  // tag+varint for type/term/index plus length-delimited data and context; exactness is not needed,
  // only monotonicity and a stable relation to payload size.
  return 12 + e.data.length + e.context.length;
}

/** Payload size used for the uncommitted-size bound (raft-rs counts data only). */
export function payloadSize(e: Entry): number {
  return e.data.length;
}

/** The ASCII context marking a leader-transfer election; it bypasses leader leases. */
export const CAMPAIGN_TRANSFER = new TextEncoder().encode("CampaignTransfer");
export const CAMPAIGN_PRE_ELECTION = new TextEncoder().encode("CampaignPreElection");
export const CAMPAIGN_ELECTION = new TextEncoder().encode("CampaignElection");


export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppendResponse ||
    t === MessageType.MsgRequestVoteResponse ||
    t === MessageType.MsgHeartbeatResponse ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgRequestPreVoteResponse
  );
}

/** Vote responses are the only messages whose term may be reset for pre-vote. */
export function voteRespMsgType(t: MessageType): MessageType {
  switch (t) {
    case MessageType.MsgRequestVote:
      return MessageType.MsgRequestVoteResponse;
    case MessageType.MsgRequestPreVote:
      return MessageType.MsgRequestPreVoteResponse;
    default:
      throw new Error(`not a vote message: ${MessageType[t]}`);
  }
}

