// The consensus envelope on the network service: NetworkMsg{module "consensus", type, origin, msg}.
// Byte-compatible with consensus_raft: `raft` carries an encoded eraftpb.Message, the other three
// carry a peer id as 8 bytes big-endian. Inbound envelopes are validated here, at the edge, in full:
// whatever passes can be stepped by Raft, and whatever fails touches no state anywhere.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConsensusConfigurationSchema } from "../../gen/common_pb.ts";
import { type Message as RaftMessage, MessageSchema as RaftMessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { type NetworkMsg, NetworkMsgSchema } from "../../gen/network_pb.ts";
import { type Message as CoreMessage, codec } from "../raft/index.ts";
import { decodePeerId, encodePeerId } from "./peer-id.ts";

export const MODULE = "consensus";

export type InboundEnvelope =
  /** A raft message, decoded once, here: what passed the checks below goes to Raft as it is. */
  | { readonly type: "raft"; readonly origin: bigint; readonly msg: CoreMessage }
  | { readonly type: "probe" | "probe-resp" | "refresh"; readonly origin: bigint; readonly id: bigint };

/** An envelope that must be refused with INVALID_ARGUMENT (never retried by the network). */
export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeError";
  }
}

/** A raft message for the peer reachable at `origin`, encoded as eraftpb.Message. */
export function raftEnvelope(origin: bigint, msg: CoreMessage): NetworkMsg {
  return create(NetworkMsgSchema, { module: MODULE, type: "raft", origin, msg: toBinary(RaftMessageSchema, codec.messageToPb(msg)) });
}

/** Broadcast asking every peer to answer with its id; origin 0 because Broadcast ignores it. */
export function probeEnvelope(selfId: bigint): NetworkMsg {
  return create(NetworkMsgSchema, { module: MODULE, type: "probe", origin: 0n, msg: encodePeerId(selfId) });
}

export function probeRespEnvelope(origin: bigint, selfId: bigint): NetworkMsg {
  return create(NetworkMsgSchema, { module: MODULE, type: "probe-resp", origin, msg: encodePeerId(selfId) });
}

/** Tells the peer at `origin` that its raft message for `intendedTo` reached the wrong node. */
export function refreshEnvelope(origin: bigint, intendedTo: bigint): NetworkMsg {
  return create(NetworkMsgSchema, { module: MODULE, type: "refresh", origin, msg: encodePeerId(intendedTo) });
}

/** Validates an inbound NetworkMsg; throws EnvelopeError with consensus_raft's message for each defect. */
export function parseEnvelope(nm: NetworkMsg): InboundEnvelope {
  if (nm.module !== MODULE) throw new EnvelopeError(`wrong module: ${JSON.stringify(nm.module)}`);
  switch (nm.type) {
    case "raft":
      return { type: "raft", origin: nm.origin, msg: decodeRaft(nm.msg) };
    case "probe":
    case "probe-resp":
    case "refresh":
      return { type: nm.type, origin: nm.origin, id: decodeId(nm.msg) };
    default:
      throw new EnvelopeError(`unknown msg type: ${JSON.stringify(nm.type)}`);
  }
}

function decodeRaft(bytes: Uint8Array): CoreMessage {
  let msg: RaftMessage;
  try {
    msg = fromBinary(RaftMessageSchema, bytes);
  } catch (e) {
    throw new EnvelopeError(`can't decode raft msg: ${(e as Error).message}`);
  }
  // Id 0 is no node in raft-rs; an empty or truncated payload decodes to it.
  if (msg.to === 0n) throw new EnvelopeError("can't decode raft msg: destination id is 0");
  let m: CoreMessage;
  try {
    m = codec.messageFromPb(msg); // terms and indexes below 2^53, a known entry type, ...
  } catch (e) {
    throw new EnvelopeError(`can't decode raft msg: ${(e as Error).message}`);
  }
  const field = beyondHeadroom(m);
  if (field !== undefined) throw new EnvelopeError(`can't decode raft msg: ${field} is beyond 2^52`);
  // A snapshot's data is our state machine: one we could not apply must not reach Raft.
  if (msg.msgType === MessageType.MsgSnapshot && msg.snapshot !== undefined) {
    try {
      fromBinary(ConsensusConfigurationSchema, msg.snapshot.data);
    } catch {
      throw new EnvelopeError("can't decode raft msg: snapshot data is not a ConsensusConfiguration");
    }
  }
  return m;
}

/**
 * Terms and indexes count up from small numbers; Raft adds to them (a campaign takes term + 1), and
 * they must stay exact doubles. A value near 2^53 is never real, and one step more would make the
 * node's own hard state unstorable and stop it. Returns the first field that is too large.
 */
const HEADROOM = 2 ** 52;

function beyondHeadroom(m: CoreMessage): string | undefined {
  if (m.term > HEADROOM) return "term";
  if (m.logTerm > HEADROOM) return "log term";
  if (m.index > HEADROOM) return "index";
  if (m.commit > HEADROOM) return "commit";
  if (m.commitTerm > HEADROOM) return "commit term";
  if (m.rejectHint > HEADROOM) return "reject hint";
  if (m.requestSnapshot > HEADROOM) return "request snapshot";
  for (const e of m.entries) if (e.term > HEADROOM || e.index > HEADROOM) return "entry term or index";
  const meta = m.snapshot?.metadata;
  if (meta !== undefined && (meta.term > HEADROOM || meta.index > HEADROOM)) return "snapshot term or index";
  return undefined;
}

function decodeId(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new EnvelopeError(`invalid peer id: expected 8 bytes, got ${bytes.length}`);
  const id = decodePeerId(bytes);
  if (id === 0n) throw new EnvelopeError("invalid peer id: 0");
  return id;
}
