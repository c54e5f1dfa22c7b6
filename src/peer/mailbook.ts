// Peer id -> network origin cache. Origins are opaque handles chosen by the network service; we only
// learn them from what peers send us (raft `from`, probe and probe-resp payloads) and never persist them.

export interface MailbookChange {
  readonly id: bigint;
  readonly origin: bigint;
  /** The origin replaced, or undefined for a new peer. */
  readonly previous: bigint | undefined;
}

export class Mailbook {
  readonly #origins = new Map<bigint, bigint>();

  // Bounded because ids come from the wire; a real chain has a handful of validators.
  constructor(private readonly capacity = 4096) {}

  /** Records `id` at `origin`; returns the change, or undefined when nothing changed. */
  learn(id: bigint, origin: bigint): MailbookChange | undefined {
    const previous = this.#origins.get(id);
    if (previous === origin) return undefined;
    if (previous === undefined && this.#origins.size >= this.capacity) {
      const oldest = this.#origins.keys().next().value!;
      this.#origins.delete(oldest);
    }
    this.#origins.set(id, origin);
    return { id, origin, previous };
  }

  /** Drops `id` only if it is still mapped to `origin` (that origin said it is someone else). */
  forget(id: bigint, origin: bigint): boolean {
    if (this.#origins.get(id) !== origin) return false;
    this.#origins.delete(id);
    return true;
  }

  origin(id: bigint): bigint | undefined {
    return this.#origins.get(id);
  }

  get size(): number {
    return this.#origins.size;
  }

  entries(): IterableIterator<[bigint, bigint]> {
    return this.#origins.entries();
  }
}
