// Who the mailbook may trust: the running Raft peer's members, and the origin network_zenoh gives
// each validator (the big-endian u64 of the first 8 address bytes, written by the network itself).
import type { PeerDirectory } from "./mailbook.ts";
import { peerIdFromAddress } from "./peer-id.ts";

/** What the directory reads from the running peer (a RaftPeer fits). */
export interface MembershipView {
  isMember(id: bigint): boolean;
  chainConfig(): { readonly validators: readonly Uint8Array[] };
}

/** network_zenoh's origin for consensus messages of the validator with this address. */
export function zenohOrigin(address: Uint8Array): bigint | undefined {
  if (address.length < 8) return undefined;
  return new DataView(address.buffer, address.byteOffset, 8).getBigUint64(0, false);
}

export class ValidatorDirectory implements PeerDirectory {
  #validators: readonly Uint8Array[] | undefined;
  #origins = new Map<bigint, bigint>();

  /** `view` returns the running peer, or undefined while this node runs none. */
  constructor(private readonly view: () => MembershipView | undefined) {}

  addressOrigin(id: bigint): bigint | undefined {
    const validators = this.view()?.chainConfig().validators;
    if (validators === undefined) return undefined;
    if (validators !== this.#validators) {
      // Rebuilt only when the configuration object changes (a new block's validator list).
      this.#validators = validators;
      this.#origins = new Map();
      for (const a of validators) {
        const o = zenohOrigin(a);
        if (o !== undefined) this.#origins.set(peerIdFromAddress(a), o);
      }
    }
    return this.#origins.get(id);
  }

  isMember(id: bigint): boolean {
    return this.view()?.isMember(id) ?? false;
  }
}
