// The storage a node needs: the Raft core's read side plus the writes the node makes after each
// Ready and each applied entry. SqliteStorage is the production implementation.
import { type Storage, type ConfState, type Entry, type HardState, type Snapshot } from "../raft/index.ts";

/** What one Ready asks to make durable. Applied in this order: snapshot, entries, hard state. */
export interface PersistBatch {
  /** An incoming snapshot: replaces the whole log and becomes the applied state. */
  snapshot?: Snapshot;
  /** New entries; an append at index i first discards every stored entry at index >= i. */
  entries?: readonly Entry[];
  hardState?: HardState;
}

/** What the node records together with the applied index. */
export interface ApplyUpdate {
  /** Encoded common.ConsensusConfiguration after applying up to the index. */
  chainConfigBytes?: Uint8Array;
  /** ConfState after applying up to the index (when a conf change was applied). */
  confState?: ConfState;
}

/**
 * Every write is durable when the call returns (one transaction each); a failed write throws and
 * the node must stop.
 */
export interface NodeStorage extends Storage {
  /** Where the state lives, for messages. */
  readonly file: string;
  /** Makes one Ready durable; only then may votes and append acks leave. */
  persist(batch: PersistBatch): void;
  /** Records that everything up to `index` is applied, with what it produced. */
  apply(index: number, update?: ApplyUpdate): void;
  /** Drops applied entries, keeping at most `keepTail` at or below the applied index. */
  compact(keepTail: number): number;
  appliedIndex(): number;
  /** Encoded common.ConsensusConfiguration as of the applied index (empty on a fresh node). */
  chainConfigBytes(): Uint8Array;
  /** Replaces the stored configuration without moving the applied index. */
  setChainConfigBytes(chainConfigBytes: Uint8Array): void;
  /**
   * An applied block kept beside the log for a controller that may have lost it: the Rust
   * service's last entry, imported from its data dir (its predecessor's term is unknown, so it
   * cannot be a log entry). Undefined when there is none.
   */
  recommitEntry?(): Entry | undefined;
  /** The supervisor's persisted abort window (u64). */
  abortHeight(): bigint;
  setAbortHeight(height: bigint): void;
}
