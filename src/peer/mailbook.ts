// Peer id -> network origin cache. Origins are opaque handles chosen by the network service; we only
// learn them from what peers send us (raft `from`, probe and probe-resp payloads) and never persist them.
//
// Nothing on the wire is authenticated, so bindings are guarded:
//  - network_zenoh writes the origin itself: the big-endian u64 of the first 8 bytes of the sender's
//    validator address. Once traffic of some validator has arrived from exactly that origin, the
//    network is known to work that way ("address mode"), and from then on a validator id is bound
//    to its address origin only: claims from any other origin are refused (and the transport drops
//    such raft messages as forged).
//  - Otherwise (legacy networks with per-connection origins, ids that are not validators) a known id
//    moves to another origin only once its bound origin has been silent for `quietMs`, so a probe
//    that claims a live peer's id cannot redirect our traffic.

export interface PeerDirectory {
  /** The origin network_zenoh derives for `id` when it is a known validator, else undefined. */
  addressOrigin(id: bigint): bigint | undefined;
  /** Members (configuration or validator list) are never evicted to make room. */
  isMember(id: bigint): boolean;
}

export const NO_DIRECTORY: PeerDirectory = { addressOrigin: () => undefined, isMember: () => false };

export type LearnResult =
  | { readonly kind: "new" | "same" }
  | { readonly kind: "rebound"; readonly previous: bigint; readonly reason: "address" | "quiet" }
  | { readonly kind: "refused"; readonly current: bigint | undefined; readonly reason: "address" | "alive" };

export interface MailbookOptions {
  /** Bound on entries; ids come from the wire, a real chain has a handful of validators. */
  readonly capacity?: number;
  /** How long a bound origin must be silent before another origin may take its id. */
  readonly quietMs?: number;
}

interface Binding {
  origin: bigint;
  heardAt: number;
}

export class Mailbook {
  readonly #bindings = new Map<bigint, Binding>();
  readonly capacity: number;
  readonly quietMs: number;
  directory: PeerDirectory = NO_DIRECTORY;
  #addressMode = false;

  constructor(opts: MailbookOptions = {}) {
    this.capacity = opts.capacity ?? 4096;
    this.quietMs = opts.quietMs ?? 10_000;
  }

  /** Whether the network has been seen deriving origins from validator addresses (see above). */
  get addressMode(): boolean {
    return this.#addressMode;
  }

  /** Traffic from `origin` claims to be `id` at time `now` (ms). */
  learn(id: bigint, origin: bigint, now: number): LearnResult {
    const b = this.#bindings.get(id);
    const proven = this.directory.addressOrigin(id);
    if (proven !== undefined && origin !== proven && this.#addressMode) return { kind: "refused", current: b?.origin, reason: "address" };
    if (proven !== undefined && origin === proven) this.#addressMode = true;
    if (b === undefined) {
      this.#makeRoom();
      this.#bindings.set(id, { origin, heardAt: now });
      return { kind: "new" };
    }
    if (b.origin === origin) {
      b.heardAt = now;
      this.#touch(id, b);
      return { kind: "same" };
    }
    let reason: "address" | "quiet";
    if (origin === proven) reason = "address";
    else if (now - b.heardAt >= this.quietMs) reason = "quiet";
    else return { kind: "refused", current: b.origin, reason: "alive" };
    const previous = b.origin;
    b.origin = origin;
    b.heardAt = now;
    this.#touch(id, b);
    return { kind: "rebound", previous, reason };
  }

  /** Drops `id` only if it is still mapped to `origin` (that origin said it is someone else). */
  forget(id: bigint, origin: bigint): boolean {
    if (this.#bindings.get(id)?.origin !== origin) return false;
    this.#bindings.delete(id);
    return true;
  }

  origin(id: bigint): bigint | undefined {
    return this.#bindings.get(id)?.origin;
  }

  get size(): number {
    return this.#bindings.size;
  }

  /** Bindings, least recently heard first. */
  *entries(): IterableIterator<[bigint, bigint]> {
    for (const [id, b] of this.#bindings) yield [id, b.origin];
  }

  // Map order is the order of last contact.
  #touch(id: bigint, b: Binding): void {
    this.#bindings.delete(id);
    this.#bindings.set(id, b);
  }

  /** Evicts the least recently heard non-member (or, if all are members, the least recently heard). */
  #makeRoom(): void {
    if (this.#bindings.size < this.capacity) return;
    let victim: bigint | undefined;
    for (const id of this.#bindings.keys()) {
      if (!this.directory.isMember(id)) {
        victim = id;
        break;
      }
    }
    this.#bindings.delete(victim ?? this.#bindings.keys().next().value!);
  }
}
