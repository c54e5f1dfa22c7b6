// The Raft state machine of this service: the controller's ConsensusConfiguration (chain height,
// block interval, validator addresses), stored as its protobuf bytes.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ConsensusConfiguration, ConsensusConfigurationSchema, type Proposal, ProposalSchema } from "../../gen/common_pb.ts";
import { peerIdFromAddress } from "../peer/peer-id.ts";
import { bytesEqual } from "../util/bytes.ts";

export type ChainConfig = ConsensusConfiguration;

/** CommitBlock at this height is the controller's "ping": it answers its current configuration. */
export const PING_HEIGHT = (1n << 64n) - 1n;

export function emptyChainConfig(): ChainConfig {
  return create(ConsensusConfigurationSchema, {});
}

export function encodeChainConfig(c: ChainConfig): Uint8Array {
  return toBinary(ConsensusConfigurationSchema, c);
}

/** Decodes stored or received configuration bytes; empty bytes are the default configuration. */
export function decodeChainConfig(b: Uint8Array): ChainConfig {
  return fromBinary(ConsensusConfigurationSchema, b);
}

export function tryDecodeChainConfig(b: Uint8Array): ChainConfig | undefined {
  try {
    return decodeChainConfig(b);
  } catch {
    return undefined;
  }
}

export function encodeProposal(p: Proposal): Uint8Array {
  return toBinary(ProposalSchema, p);
}

export function tryDecodeProposal(b: Uint8Array): Proposal | undefined {
  try {
    return fromBinary(ProposalSchema, b);
  } catch {
    return undefined;
  }
}


/** Position of `address` in the validator list, or -1. */
export function validatorIndex(c: ChainConfig, address: Uint8Array): number {
  return c.validators.findIndex((v) => bytesEqual(v, address));
}

const idsOf = new WeakMap<ChainConfig, readonly bigint[]>();

/**
 * Raft ids of the validators, in list order, without duplicates. Remembered per configuration
 * object (configurations are never changed in place): the leader asks on every tick and apply.
 */
export function validatorIds(c: ChainConfig): readonly bigint[] {
  let ids = idsOf.get(c);
  if (ids === undefined) {
    ids = [...new Set(c.validators.map((v) => peerIdFromAddress(v)))];
    idsOf.set(c, ids);
  }
  return ids;
}

export function describeChainConfig(c: ChainConfig): Record<string, unknown> {
  return { height: c.height, block_interval: c.blockInterval, validators: c.validators.length };
}
