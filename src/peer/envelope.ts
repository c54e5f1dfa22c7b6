// The consensus envelope on the network service: NetworkMsg{module "consensus", type, origin, msg}.
// Byte-compatible with consensus_raft: `raft` carries an encoded eraftpb.Message, the other three
// carry a peer id as 8 bytes big-endian. Inbound envelopes are validated here, at the edge.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Message as RaftMessage, MessageSchema as RaftMessageSchema } from "../../gen/eraftpb_pb.ts";
import { type NetworkMsg, NetworkMsgSchema } from "../../gen/network_pb.ts";
import { decodePeerId, encodePeerId } from "./peer-id.ts";

export const MODULE = "consensus";

export type InboundEnvelope =
  | { readonly type: "raft"; readonly origin: bigint; readonly msg: RaftMessage }
  | { readonly type: "probe" | "probe-resp" | "refresh"; readonly origin: bigint; readonly id: bigint };

/** An envelope that must be refused with INVALID_ARGUMENT (never retried by the network). */
export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeError";
  }
}

/** A raft message for the peer reachable at `origin`. */
export function raftEnvelope(origin: bigint, msg: RaftMessage): NetworkMsg {
  return create(NetworkMsgSchema, { module: MODULE, type: "raft", origin, msg: toBinary(RaftMessageSchema, msg) });
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

/** Validates an inbound NetworkMsg; throws EnvelopeError with the seed's message for each defect. */
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

function decodeRaft(bytes: Uint8Array): RaftMessage {
  let msg: RaftMessage;
  try {
    msg = fromBinary(RaftMessageSchema, bytes);
  } catch (e) {
    throw new EnvelopeError(`can't decode raft msg: ${(e as Error).message}`);
  }
  // Id 0 is no node in raft-rs; an empty or truncated payload decodes to it.
  if (msg.to === 0n) throw new EnvelopeError("can't decode raft msg: destination id is 0");
  return msg;
}

function decodeId(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new EnvelopeError(`invalid peer id: expected 8 bytes, got ${bytes.length}`);
  const id = decodePeerId(bytes);
  if (id === 0n) throw new EnvelopeError("invalid peer id: 0");
  return id;
}
