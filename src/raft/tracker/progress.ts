// What the leader knows about one follower's log, and how it is replicating to it.
import { Inflights } from "./inflights.ts";

export const enum ProgressState {
  /** Sending at most one append per heartbeat until the match point is found. */
  Probe = 0,
  /** Optimistically streaming appends within the inflight window. */
  Replicate = 1,
  /** Waiting for a snapshot to be applied; no appends. */
  Snapshot = 2,
}

export const PROGRESS_STATE_NAMES = ["Probe", "Replicate", "Snapshot"] as const;

/** raft-rs INVALID_INDEX. */
export const INVALID_INDEX = 0;

export class Progress {
  matched = 0;
  nextIdx: number;
  state: ProgressState = ProgressState.Probe;
  /** In Probe state: an append was sent and we wait for its answer (or a heartbeat response). */
  paused = false;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** A follower asked for a snapshot at least this recent (raft-rs request_snapshot). */
  pendingRequestSnapshot = INVALID_INDEX;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The follower's own commit index, as it reported it. */
  committedIndex = 0;
  readonly ins: Inflights;

  constructor(nextIdx: number, maxInflight: number, maxInflightBytes = 0) {
    this.nextIdx = nextIdx;
    this.ins = new Inflights(maxInflight, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.paused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.ins.reset();
  }

  reset(nextIdx: number): void {
    this.matched = 0;
    this.nextIdx = nextIdx;
    this.state = ProgressState.Probe;
    this.paused = false;
    this.pendingSnapshot = 0;
    this.pendingRequestSnapshot = INVALID_INDEX;
    this.recentActive = false;
    this.ins.reset();
  }

  becomeProbe(): void {
    // After a snapshot the follower is known to have everything up to it: probe right after it.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.nextIdx = Math.max(this.matched + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.nextIdx = this.matched + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.nextIdx = this.matched + 1;
  }

  becomeSnapshot(snapshotIdx: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIdx;
  }

  snapshotFailure(): void {
    this.pendingSnapshot = 0;
  }

  isSnapshotCaughtUp(): boolean {
    return this.state === ProgressState.Snapshot && this.matched >= this.pendingSnapshot;
  }

  /** Records an ack of index `n`; false if it is stale. */
  maybeUpdate(n: number): boolean {
    const needUpdate = this.matched < n;
    if (needUpdate) {
      this.matched = n;
      this.paused = false;
    }
    if (this.nextIdx < n + 1) this.nextIdx = n + 1;
    return needUpdate;
  }

  updateCommitted(committed: number): void {
    if (committed > this.committedIndex) this.committedIndex = committed;
  }

  optimisticUpdate(n: number): void {
    this.nextIdx = n + 1;
  }

  /**
   * Handles a rejected append at `rejected` with the follower's hint; returns false if the
   * rejection is stale. A non-zero `requestSnapshot` is a follower asking for a snapshot.
   */
  maybeDecrTo(rejected: number, matchHint: number, requestSnapshot: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // In Replicate, a rejection below (or at) the match point is stale, unless it asks for a snapshot.
      if (rejected < this.matched || (rejected === this.matched && requestSnapshot === INVALID_INDEX)) return false;
      if (requestSnapshot === INVALID_INDEX) this.nextIdx = this.matched + 1;
      else this.pendingRequestSnapshot = requestSnapshot;
      return true;
    }
    // Otherwise a rejection is stale unless it answers the probe we sent (next - 1).
    if ((this.nextIdx === 0 || this.nextIdx - 1 !== rejected) && requestSnapshot === INVALID_INDEX) return false;
    if (requestSnapshot === INVALID_INDEX) {
      this.nextIdx = Math.max(Math.min(rejected, matchHint + 1), this.matched + 1);
    } else if (this.pendingRequestSnapshot === INVALID_INDEX) {
      this.pendingRequestSnapshot = requestSnapshot;
    }
    this.paused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.paused;
      case ProgressState.Replicate:
        return this.ins.full();
      default:
        return true;
    }
  }

  resume(): void {
    this.paused = false;
  }

  pause(): void {
    this.paused = true;
  }

  /** Called after sending entries up to `last` (total `bytes`). */
  updateState(last: number, bytes: number): void {
    switch (this.state) {
      case ProgressState.Replicate:
        this.optimisticUpdate(last);
        this.ins.add(last, bytes);
        break;
      case ProgressState.Probe:
        this.paused = true;
        break;
      default:
        throw new Error(`updating progress state in unhandled state ${PROGRESS_STATE_NAMES[this.state]}`);
    }
  }

  toString(): string {
    return `{matched: ${this.matched}, next: ${this.nextIdx}, state: ${PROGRESS_STATE_NAMES[this.state]}, paused: ${this.paused}, pendingSnapshot: ${this.pendingSnapshot}, recentActive: ${this.recentActive}, inflight: ${this.ins.count}}`;
  }
}
