// One simulated node: a disk that survives crashes and, while it is up, a RawNode of the real core
// driven exactly as the service drives it: Ready -> send the leader's messages at once -> write
// snapshot, entries and hard state -> (fsync, a separate simulated moment) -> send the persisted
// messages -> apply committed entries -> advance -> handle the LightReady. While a Ready waits for
// its fsync the node is blocked (nothing may touch the RawNode between ready() and advance()):
// its inputs queue up, as they would behind a synchronous transaction in the service's loop.
import { decodeConfChangeV2 } from "../../src/raft/codec.ts";
import type { RaftConfig } from "../../src/raft/config.ts";
import { RaftError } from "../../src/raft/errors.ts";
import { StateRole } from "../../src/raft/raft.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { RawNode, type Ready, SnapshotStatus } from "../../src/raft/raw-node.ts";
import { type ConfChangeV2, type ConfState, type Entry, EntryType, type Message, type NodeId, type Snapshot } from "../../src/raft/types.ts";
import type { Checker } from "./checker.ts";
import type { Rng } from "./rng.ts";
import { chainHash, entryDigest } from "./state-machine.ts";
import type { SimStorage } from "./storage.ts";
import type { Trace } from "./trace.ts";

export type Input =
  | { kind: "tick" }
  | { kind: "campaign" }
  | { kind: "msg"; msg: Message }
  | { kind: "propose"; data: Uint8Array[] }
  | { kind: "snapStatus"; to: NodeId; ok: boolean }
  | { kind: "unreachable"; to: NodeId }
  /** Committed entries wait to be applied (asynchronous apply): apply some now. */
  | { kind: "apply" };

export type NodeStatus = "up" | "down" | "stopped";

/** What a node needs from the simulation around it. */
export interface Host {
  readonly checker: Checker;
  readonly trace: Trace;
  readonly rng: Rng;
  /** Puts messages on the network (they leave now). */
  send(from: SimNode, msgs: Message[]): void;
  /** Schedules an fsync of the node's writes staged before `mark`. */
  scheduleFsync(node: SimNode, mark: number): void;
  /**
   * Persist asynchronously (raft-rs advance_append_async + on_persist_ready): the node keeps
   * handling inputs while its writes are in flight, and the persisted messages of each Ready wait
   * for the fsync that covers it. Otherwise each Ready blocks the node until its fsync.
   */
  readonly asyncPersist: boolean;
  /**
   * Apply committed entries beside the Raft loop, as the service's committer does (advanceAppend,
   * then advanceApplyTo once applied), up to this many ms later; 0 applies them within the Ready.
   */
  readonly applyLagMs: number;
  /** Schedules an "apply" input for the node. */
  scheduleApply(node: SimNode): void;
  /** Deliberate application bug (to prove the checks bite): send persisted messages before the fsync. */
  readonly ackBeforeFsync: boolean;
}

export function isMember(cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.votersOutgoing.includes(id) || cs.learners.includes(id) || cs.learnersNext.includes(id);
}

export class SimNode {
  status: NodeStatus = "down";
  raw: RawNode | undefined = undefined;
  /** Bumped on every crash, so events of a dead incarnation are recognised and ignored. */
  incarnation = 0;
  /** Synchronous persistence: the Ready waiting for its fsync. */
  private waiting: Ready | undefined = undefined;
  /** Asynchronous persistence: Readies handed off but not yet durable, oldest first. */
  private unflushed: { number: number; mark: number; msgs: Message[]; snapIndex: number }[] = [];
  /** Asynchronous apply: committed entries handed out but not applied yet. */
  private toApply: Entry[] = [];
  private applyScheduled = false;
  private inbox: Input[] = [];
  /** Set when the node applied (or restarted with) a configuration that no longer contains it. */
  removed = false;
  /** When the simulation noticed the removal (it stops the node after a grace period). */
  removedSince: number | undefined = undefined;

  constructor(
    readonly id: NodeId,
    readonly storage: SimStorage,
    private readonly host: Host,
    private readonly config: Omit<RaftConfig, "id" | "applied" | "random">,
  ) {}

  get busy(): boolean {
    return this.waiting !== undefined;
  }

  get isLeader(): boolean {
    return this.raw !== undefined && this.raw.raft.state === StateRole.Leader;
  }

  /** Starts (or restarts) from the durable state only. */
  start(): void {
    this.host.checker.onStart(this);
    this.raw = new RawNode(
      { ...this.config, id: this.id, applied: this.storage.durable.sm.applied, random: seededRandom(this.host.rng.u32()) },
      this.storage,
    );
    this.status = "up";
    this.removed = !this.storage.isBlank() && !isMember(this.storage.durable.confState, this.id);
    this.removedSince = undefined;
    this.host.checker.observe(this);
  }

  /** kill -9: memory and unsynced writes are lost. */
  crash(): void {
    this.raw = undefined;
    this.waiting = undefined;
    this.unflushed = [];
    this.toApply = [];
    this.applyScheduled = false;
    this.inbox = [];
    this.storage.crash();
    this.incarnation++;
    this.status = "down";
  }

  /** Graceful stop (removed from the cluster): nothing more runs, the disk stays as it is. */
  stop(): void {
    this.crash();
    this.status = "stopped";
  }

  /** Hands an input to the node; it waits in the inbox while a Ready is being persisted. */
  input(i: Input): void {
    if (this.raw === undefined) return;
    if (this.waiting !== undefined) {
      this.inbox.push(i);
      return;
    }
    this.handle(i);
  }

  /** Runs leader-only actions now (never queued: they are decided on the node's current state). */
  tryLeaderAction(act: (raw: RawNode) => void): boolean {
    if (this.raw === undefined || this.waiting !== undefined || !this.isLeader) return false;
    try {
      act(this.raw);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      return false;
    }
    this.drive();
    this.host.checker.observe(this);
    return true;
  }

  /** An fsync of the writes staged before `mark` completed. */
  fsynced(mark: number): void {
    if (this.raw === undefined) return;
    if (this.host.asyncPersist) {
      this.releaseDurable(mark);
    } else {
      this.flush(mark);
      const rd = this.waiting;
      if (rd === undefined) return;
      this.waiting = undefined;
      this.finishReady(rd);
    }
    this.drive();
    this.host.checker.observe(this);
    while (this.waiting === undefined && this.inbox.length > 0 && this.raw !== undefined) this.handle(this.inbox.shift()!);
  }

  private flush(mark: number): void {
    this.host.checker.onDurable(this, this.storage.fsync(mark));
  }

  /**
   * Asynchronous persistence: every write up to `mark` is durable now. The writes become durable
   * in order, so each Ready's persisted messages leave as of the moment its own writes hit the
   * disk (a later Ready in the same fsync may already have moved on, e.g. truncated the log).
   */
  private releaseDurable(mark: number): void {
    const raw = this.raw!;
    let number = 0;
    let snapIndex = 0;
    while (this.unflushed.length > 0 && this.unflushed[0].mark <= mark) {
      const b = this.unflushed.shift()!;
      this.flush(b.mark);
      this.host.send(this, b.msgs);
      number = b.number;
      if (b.snapIndex > 0) snapIndex = b.snapIndex;
    }
    this.flush(mark);
    if (number === 0) return;
    raw.onPersistReady(number);
    if (snapIndex > 0) raw.advanceApplyTo(snapIndex);
  }

  private handle(i: Input): void {
    const raw = this.raw!;
    try {
      switch (i.kind) {
        case "tick":
          raw.tick();
          break;
        case "campaign":
          raw.campaign();
          break;
        case "msg": {
          const stale = this.host.checker.staleRejection(this, i.msg);
          raw.step(i.msg);
          if (stale !== undefined) this.host.checker.checkStaleRejection(this, i.msg, stale);
          break;
        }
        case "propose":
          if (i.data.length === 1) raw.propose(new Uint8Array(0), i.data[0]);
          else raw.proposeBatch(i.data);
          break;
        case "snapStatus":
          raw.reportSnapshot(i.to, i.ok ? SnapshotStatus.Finish : SnapshotStatus.Failure);
          break;
        case "unreachable":
          raw.reportUnreachable(i.to);
          break;
        case "apply":
          this.applyQueued();
          break;
      }
    } catch (e) {
      // Refused proposals and messages from unknown peers are normal answers, not failures.
      if (!(e instanceof RaftError)) throw e;
    }
    this.drive();
    this.host.checker.observe(this);
  }

  /** Processes Readies until there is none or one has to wait for its fsync. */
  private drive(): void {
    const raw = this.raw!;
    while (this.waiting === undefined && this.raw !== undefined && raw.hasReady()) {
      const rd = raw.ready();
      // A leader's appends may leave before its own write (thesis §10.2.1).
      this.host.send(this, rd.messages);
      if (this.host.ackBeforeFsync) this.host.send(this, rd.persistedMessages);
      if (rd.snapshot) this.storage.stageSnapshot(rd.snapshot);
      if (rd.entries.length > 0) {
        const first = rd.entries[0].index;
        this.host.checker.onAppend(this.id, rd.entries, first - 1 < this.storage.firstIndex() - 1 ? 0 : this.storage.viewTerm(first - 1) ?? 0);
        this.storage.stageAppend(rd.entries);
      }
      if (rd.hardState) this.storage.stageHardState(rd.hardState);
      if (this.host.asyncPersist) {
        this.handOff(rd);
        continue;
      }
      if (rd.mustSync) {
        this.waiting = rd;
        this.host.scheduleFsync(this, this.storage.writtenMark);
        return;
      }
      // Only the commit index changed: written without an fsync (a crash may lose it).
      this.finishReady(rd);
    }
  }

  /** Asynchronous persistence: the Ready's writes are in flight; go on with the next one. */
  private handOff(rd: Ready): void {
    const raw = this.raw!;
    raw.advanceAppendAsync(rd);
    if (rd.snapshot) this.snapshotInstalled(rd.snapshot);
    const wrote = rd.snapshot !== undefined || rd.entries.length > 0 || rd.hardState !== undefined;
    const msgs = this.host.ackBeforeFsync ? [] : rd.persistedMessages;
    if (wrote || this.unflushed.length > 0) {
      // Persisted messages of Ready n leave only once everything up to n is durable.
      const mark = this.storage.writtenMark;
      this.unflushed.push({ number: rd.number, mark, msgs, snapIndex: rd.snapshot?.metadata.index ?? 0 });
      if (wrote) this.host.scheduleFsync(this, mark);
    } else {
      this.host.send(this, msgs);
      raw.onPersistReady(rd.number);
    }
    this.committed(rd.committedEntries);
  }

  private finishReady(rd: Ready): void {
    const raw = this.raw!;
    if (rd.snapshot) this.snapshotInstalled(rd.snapshot);
    if (!this.host.ackBeforeFsync) this.host.send(this, rd.persistedMessages);
    if (this.host.applyLagMs > 0) {
      const light = raw.advanceAppend(rd);
      if (light.commitIndex !== undefined) this.storage.stageHardState(raw.raft.hardState());
      this.host.send(this, light.messages);
      if (rd.snapshot) raw.advanceApplyTo(rd.snapshot.metadata.index);
      this.committed(rd.committedEntries);
      this.committed(light.committedEntries);
      return;
    }
    this.applyEntries(rd.committedEntries);
    const light = raw.advance(rd);
    if (light.commitIndex !== undefined) this.storage.stageHardState(raw.raft.hardState());
    this.host.send(this, light.messages);
    this.applyEntries(light.committedEntries);
    raw.advanceApply();
  }

  /** The snapshot replaced the state machine: entries still waiting to be applied are part of it. */
  private snapshotInstalled(snap: Snapshot): void {
    this.host.checker.onSnapshotInstalled(this, snap);
    this.toApply = [];
  }

  /** Entries handed out as committed (outside the synchronous path of finishReady). */
  private committed(entries: Entry[]): void {
    if (entries.length === 0) return;
    if (this.host.applyLagMs === 0) {
      this.applyEntries(entries);
      this.raw!.advanceApplyTo(entries[entries.length - 1].index);
      return;
    }
    for (const e of entries) this.toApply.push(e);
    if (!this.applyScheduled) {
      this.applyScheduled = true;
      this.host.scheduleApply(this);
    }
  }

  /** Asynchronous apply: the committer got through some of the queued entries. */
  private applyQueued(): void {
    this.applyScheduled = false;
    const n = Math.min(this.toApply.length, 1 + this.host.rng.int(8));
    if (n === 0) return;
    const batch = this.toApply.splice(0, n);
    this.applyEntries(batch);
    this.raw!.advanceApplyTo(batch[batch.length - 1].index);
    if (this.toApply.length > 0) {
      this.applyScheduled = true;
      this.host.scheduleApply(this);
    }
  }

  private applyEntries(entries: Entry[]): void {
    if (entries.length === 0) return;
    const raw = this.raw!;
    // Account for the commit that handed these entries out before they are applied.
    this.host.checker.observe(this);
    for (const e of entries) {
      const sm = this.storage.view.sm;
      if (e.index !== sm.applied + 1) {
        throw new Error(`node ${this.id} was handed entry ${e.index} to apply after ${sm.applied}`);
      }
      let cs: ConfState | undefined;
      if (e.entryType === EntryType.EntryConfChangeV2) {
        const cc: ConfChangeV2 = decodeConfChangeV2(e.data);
        cs = raw.applyConfChange(cc);
        if (!isMember(cs, this.id)) this.removed = true;
      }
      const hash = chainHash(sm.hash, e.index, e.term, entryDigest(e));
      this.storage.recordApply({ applied: e.index, hash }, cs);
      this.host.checker.onApply(this, e, hash);
    }
  }
}
