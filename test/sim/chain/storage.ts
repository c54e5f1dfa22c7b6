// The node's real SqliteStorage (on tmpfs), watched: what is durable is what a write call has
// returned from, and a write can be turned into the moment the process dies (power cut or kill -9
// in the middle of a Ready): the write does not happen and nothing of the process runs after it.
import type { SqliteStorage } from "../../../src/storage/sqlite.ts";
import type { ApplyUpdate, NodeStorage, PersistBatch } from "../../../src/storage/node-storage.ts";
import type { RaftState } from "../../../src/raft/storage.ts";
import type { Entry, HardState, NodeId, Snapshot } from "../../../src/raft/types.ts";

/** What the process had made durable, as the checker compares acknowledgements with it. */
export interface DurableView {
  term: number;
  vote: NodeId;
  lastIndex: number;
}

export class WatchedStorage implements NodeStorage {
  readonly file: string;
  readonly durable: DurableView;
  /** Set by the nemesis: the next write kills the process instead of happening. */
  crashAtNextWrite = false;
  writes = 0;

  constructor(
    private readonly inner: SqliteStorage,
    /** Kills the process; called instead of an armed write. */
    private readonly die: (what: string) => void,
  ) {
    this.file = inner.file;
    const hs = inner.initialState().hardState;
    this.durable = { term: hs.term, vote: hs.vote, lastIndex: inner.lastIndex() };
  }

  private beforeWrite(what: string): void {
    if (!this.crashAtNextWrite) return;
    this.crashAtNextWrite = false;
    this.die(what);
    throw new Error(`process died at its ${what} write`);
  }

  private noteDurable(hs?: HardState): void {
    this.writes++;
    if (hs !== undefined) {
      this.durable.term = hs.term;
      this.durable.vote = hs.vote;
    }
    this.durable.lastIndex = this.inner.lastIndex();
  }

  // ---- the core's read side

  initialState(): RaftState {
    return this.inner.initialState();
  }
  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    return this.inner.entries(lo, hi, maxSize);
  }
  term(idx: number): number {
    return this.inner.term(idx);
  }
  firstIndex(): number {
    return this.inner.firstIndex();
  }
  lastIndex(): number {
    return this.inner.lastIndex();
  }
  snapshot(requestIndex: number, to: NodeId): Snapshot {
    return this.inner.snapshot(requestIndex, to);
  }

  // ---- the node's side

  persist(batch: PersistBatch): void {
    this.beforeWrite("persist");
    this.inner.persist(batch);
    this.noteDurable(batch.hardState ?? (batch.snapshot ? this.inner.initialState().hardState : undefined));
  }
  apply(index: number, update?: ApplyUpdate): void {
    this.beforeWrite("apply");
    this.inner.apply(index, update);
    this.noteDurable();
  }
  compact(keepTail: number): number {
    this.beforeWrite("compact");
    const n = this.inner.compact(keepTail);
    this.noteDurable();
    return n;
  }
  appliedIndex(): number {
    return this.inner.appliedIndex();
  }
  chainConfigBytes(): Uint8Array {
    return this.inner.chainConfigBytes();
  }
  setChainConfigBytes(chainConfigBytes: Uint8Array): void {
    this.beforeWrite("state machine");
    this.inner.setChainConfigBytes(chainConfigBytes);
    this.noteDurable();
  }
  /** The applied block imported from a Rust data dir, when the storage keeps one. */
  recommitEntry(): Entry | undefined {
    return (this.inner as { recommitEntry?: () => Entry | undefined }).recommitEntry?.();
  }
  abortHeight(): bigint {
    return this.inner.abortHeight();
  }
  setAbortHeight(height: bigint): void {
    this.beforeWrite("abort height");
    this.inner.setAbortHeight(height);
    this.noteDurable();
  }
}
