// The commit pipeline: every committed Raft entry, in order, exactly once, on every node. Blocks go
// to the local controller (CheckProposal, then CommitBlock with the empty Raft proof), retried
// with backoff until the controller accepts them or reports the height done; conf changes are
// applied to Raft. It runs beside the Raft loop: ticks and heartbeats never wait for it.
//
// A controller without a WAL (controller_hsm since v6.7.0) can come back from a power loss below
// the height consensus applied. Whenever the controller shows such a height T (start-up, a
// Reconfigure, a GetProposal for T+1, a ping), the blocks of (T, R] that are still in the Raft log
// are committed again, first and in order, with the very bytes Raft committed.
import { create } from "@bufbuild/protobuf";
import type { ConsolaInstance } from "consola";
import { type Proposal, ProposalWithProofSchema } from "../../gen/common_pb.ts";
import { StatusCodeEnum } from "../../gen/status_code_pb.ts";
import { type ConfChangeV2, type Entry, EntryType, codec } from "../raft/index.ts";
import { bytesEqual } from "../util/bytes.ts";
import { errorMessage } from "../util/errors.ts";
import type { BlockTimeline } from "./block-timeline.ts";
import { type ChainConfig, PING_HEIGHT, tryDecodeProposal } from "./chain-config.ts";
import type { ControllerClient } from "./controller.ts";
import { Backoff, type Clock, type Random, sleep } from "./ports.ts";
import type { NodeTestBug } from "./test-bugs.ts";

export interface CommitterHost {
  readonly log: ConsolaInstance;
  readonly controller: ControllerClient;
  readonly clock: Clock;
  readonly random: Random;
  /** The configuration as of the last applied entry. */
  chainConfig(): ChainConfig;
  /** Records `index` as applied (with the configuration it produced) and advances Raft. */
  applied(index: number, config?: ChainConfig): void;
  /** Applies a committed conf change to Raft and records it as applied at `index`. */
  appliedConfChange(index: number, cc: ConfChangeV2 | undefined): void;
  /** Entries [lo, hi) read back from storage (committed ones waiting, or applied ones to recommit). */
  readEntries(lo: number, hi: number): Entry[];
  /** The first index still in the log and the applied index: the applied entries a recommit can use. */
  appliedRange(): { first: number; applied: number };
  /** An applied entry kept beside the log (the Rust service's last entry, imported), if any. */
  keptEntry?(): Entry | undefined;
  /** A block the controller had lost was committed again. */
  blockRecommitted?(height: bigint): void;
  readonly testBugs?: ReadonlySet<NodeTestBug>;
  readonly timeline?: BlockTimeline;
  /** A block was committed by the controller (for metrics and the proposer). */
  blockCommitted(height: bigint, waitedMs: number): void;
  /** Applying failed in a way that cannot be retried (storage): the node must stop. */
  fatal(err: unknown): void;
}

/** Deadlines of controller calls. CommitBlock executes the block, so it gets longer. */
export const CHECK_TIMEOUT_MS = 10_000;
export const COMMIT_TIMEOUT_MS = 30_000;
export const PING_TIMEOUT_MS = 5_000;
/**
 * Committed entries held in memory for the controller at most. While the controller is slow or
 * down, the rest stays in storage (where Raft keeps it until applied) and is read back in order.
 */
export const MAX_QUEUED_ENTRIES = 256;

export class Committer {
  private queue: Entry[] = [];
  private running = false;
  private stopped = false;
  /** Bumped when the queue is reset under a running apply (snapshot installed): its result is void. */
  private epoch = 0;
  private abort = new AbortController();
  /** Index of the last entry taken into the queue. */
  private lastQueued: number;
  /** Highest committed index handed to the committer (entries above lastQueued wait in storage). */
  private highestCommitted: number;
  private failing = false;
  /** The newest block that reached the log while the controller was busy (see appended). */
  private uncheckedNext: Proposal | undefined;
  /** A CheckProposal sent when the block reached the log, before it was committed (see appended). */
  private earlyCheck: { height: bigint; data: Uint8Array; result: Promise<{ code: number }> } | undefined;
  /** Blocks to commit again before anything else, lowest height first. */
  private recommits: Proposal[] = [];
  /** A ping is confirming a lower height the controller showed (see controllerAt). */
  private confirming = false;
  /** Aborts the committer's own calls when it stops (the per-attempt `abort` is replaced often). */
  private readonly stopping = new AbortController();
  /** The controller height of the last "no longer in the raft log" line (said once per height). */
  private gapReportedAt: bigint | undefined;

  constructor(
    private readonly host: CommitterHost,
    lastApplied: number,
  ) {
    this.lastQueued = lastApplied;
    this.highestCommitted = lastApplied;
  }

  /** Blocks the controller lost are being committed again: no new proposal until they are. */
  get recommitting(): boolean {
    return this.recommits.length > 0;
  }

  /**
   * The controller showed `height` (a Reconfigure, a proposal for the height after it, start-up).
   * Such a report can be stale: a Reconfigure from its block sync may arrive after this node has
   * applied higher. So a height below the applied one is first confirmed by a ping
   * (CommitBlock u64::MAX answers the controller's height now), and only then are blocks
   * committed again.
   */
  controllerAt(height: bigint, source: string): void {
    if (this.stopped || this.host.testBugs?.has("no-recommit")) return;
    if (height >= this.host.chainConfig().height || this.confirming) return;
    this.confirming = true;
    void this.confirmHeight(source).finally(() => (this.confirming = false));
  }

  /** Pings until the controller answers (it may not serve yet: it has just restarted), then acts on its height. */
  private async confirmHeight(source: string): Promise<void> {
    const backoff = new Backoff(this.host.random, 100, 5_000);
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const now = await this.pingHeight(signal);
      if (now !== undefined) return this.recommitAbove(now, source);
      await sleep(this.host.clock, backoff.next(), signal).catch(() => {});
    }
  }

  /**
   * The controller is at `height` now. Below the applied height, the retained blocks above it are
   * committed again (in order, before anything else); blocks no longer in the log are left to the
   * controller's block sync, said once.
   */
  private recommitAbove(height: bigint, source: string): void {
    if (this.stopped) return;
    const applied = this.host.chainConfig().height;
    if (height >= applied) return;
    // Already recommitting from there: the controller moves up as the recommits land. (A lower
    // height means it lost blocks again: the list is rebuilt.)
    const next = this.recommits[0]?.height;
    if (next !== undefined && height >= next - 1n) return;
    const blocks = this.retainedBlocks(height, applied);
    // The same list again (its first blocks are gone from the log): the retries go on as they are.
    if (next !== undefined && blocks[0]?.height === next) return;
    const { log } = this.host;
    const lowest = blocks[0]?.height;
    if ((lowest === undefined || lowest > height + 1n) && this.gapReportedAt !== height) {
      this.gapReportedAt = height;
      log.warn("controller lost blocks that are no longer in the raft log; its block sync must fetch them from peers", {
        controller_height: height,
        applied_height: applied,
        missing_from: height + 1n,
        missing_to: lowest === undefined ? applied : lowest - 1n,
        source,
      });
    }
    if (blocks.length === 0) return;
    log.warn("controller is behind the applied height; committing its lost blocks again", {
      controller_height: height,
      applied_height: applied,
      blocks: blocks.length,
      source,
    });
    this.recommits = blocks;
    // A block in flight waits: it cannot land before the lost ones.
    this.interrupt(new Error("recommitting lost blocks first"));
    void this.run();
  }

  /** Applied proposals with heights in (above, upTo], the first committed one per height, in height order. */
  private retainedBlocks(above: bigint, upTo: bigint): Proposal[] {
    const byHeight = new Map<bigint, Proposal>();
    const consider = (e: Entry) => {
      if (e.entryType !== EntryType.EntryNormal || e.data.length === 0) return;
      const p = tryDecodeProposal(e.data);
      if (p === undefined || p.height <= above || p.height > upTo || byHeight.has(p.height)) return;
      byHeight.set(p.height, p);
    };
    const kept = this.host.keptEntry?.();
    if (kept !== undefined) consider(kept);
    const { first, applied } = this.host.appliedRange();
    if (first <= applied) for (const e of this.host.readEntries(first, applied + 1)) consider(e);
    return [...byHeight.values()].sort((a, b) => (a.height < b.height ? -1 : 1));
  }

  /** Number of committed entries waiting for the controller (in memory or still in storage). */
  get backlog(): number {
    return this.queue.length + (this.highestCommitted - this.lastQueued);
  }

  /** Entries held in memory right now (at most MAX_QUEUED_ENTRIES). */
  get queued(): number {
    return this.queue.length;
  }

  enqueue(ents: readonly Entry[]): void {
    for (const e of ents) {
      if (e.index <= this.highestCommitted) continue;
      this.highestCommitted = e.index;
      if (this.queue.length < MAX_QUEUED_ENTRIES && e.index === this.lastQueued + 1) {
        this.queue.push(e);
        this.lastQueued = e.index;
      }
    }
    if (this.queue.length > 0) void this.run();
  }

  /** A snapshot at `index` replaced the state: forget entries it covers, cancel work on them. */
  resetTo(index: number): void {
    this.queue = this.queue.filter((e) => e.index > index);
    if (index > this.lastQueued) this.lastQueued = index;
    if (index > this.highestCommitted) this.highestCommitted = index;
    this.interrupt(new Error("superseded by a snapshot"));
    this.refill();
    if (this.queue.length > 0) void this.run();
  }

  /** Reads the next committed entries back from storage once the queue has room again. */
  private refill(): void {
    if (this.lastQueued >= this.highestCommitted || this.queue.length > MAX_QUEUED_ENTRIES / 2) return;
    const hi = Math.min(this.highestCommitted, this.lastQueued + MAX_QUEUED_ENTRIES - this.queue.length);
    for (const e of this.host.readEntries(this.lastQueued + 1, hi + 1)) {
      this.queue.push(e);
      this.lastQueued = e.index;
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort(new Error("stopping"));
    this.stopping.abort(new Error("stopping"));
  }

  /** Voids the controller call in flight; the loop then takes the next piece of work. */
  private interrupt(reason: Error): void {
    this.epoch++;
    this.earlyCheck = undefined;
    this.abort.abort(reason);
    this.abort = new AbortController();
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.stopped && (this.recommits.length > 0 || this.queue.length > 0)) {
        const epoch = this.epoch;
        if (this.recommits.length > 0) {
          const p = this.recommits[0];
          try {
            await this.commitBlock(p, this.abort.signal);
          } catch (err) {
            if (this.stopped || this.epoch !== epoch) continue;
            throw err;
          }
          if (this.epoch !== epoch || this.recommits[0] !== p) continue;
          this.recommits.shift();
          this.host.log.info("recommit entry succeed", { height: p.height });
          this.host.blockRecommitted?.(p.height);
          continue;
        }
        const e = this.queue[0];
        try {
          await this.applyOne(e, epoch);
        } catch (err) {
          if (this.stopped || this.epoch !== epoch) continue;
          throw err;
        }
        if (this.epoch === epoch && this.queue[0] === e) this.queue.shift();
        this.refill();
      }
    } catch (err) {
      this.host.fatal(err);
    } finally {
      this.running = false;
    }
    this.maybeCheckEarly();
  }

  private async applyOne(e: Entry, epoch: number): Promise<void> {
    const { log } = this.host;
    switch (e.entryType) {
      case EntryType.EntryNormal: {
        if (e.data.length === 0) {
          // A new leader's empty entry: nothing for the controller.
          this.host.applied(e.index);
          return;
        }
        const p = tryDecodeProposal(e.data);
        if (p === undefined) {
          // Every node sees the same bytes and skips them the same way.
          log.error("committed entry is not a Proposal; skipping it", { index: e.index, bytes: e.data.length });
          this.host.applied(e.index);
          return;
        }
        const current = this.host.chainConfig().height;
        if (p.height <= current) {
          log.info("proposal height less than or equal current block height, don't check proposal", { index: e.index, height: p.height, current_height: current });
          this.host.applied(e.index);
          return;
        }
        const started = this.host.clock.now();
        const config = await this.commitBlock(p, this.abort.signal);
        if (this.epoch !== epoch || this.stopped) return;
        // The controller echoes the requested height for a height it already had.
        const next = config.height < p.height ? { ...config, height: p.height } : config;
        this.host.applied(e.index, next);
        this.host.blockCommitted(p.height, this.host.clock.now() - started);
        this.host.timeline?.done(p.height);
        return;
      }
      case EntryType.EntryConfChangeV2: {
        let cc: ConfChangeV2 | undefined;
        try {
          cc = codec.decodeConfChangeV2(e.data);
        } catch (err) {
          if (!(err instanceof codec.CodecError)) throw err;
          log.error("committed conf change cannot be decoded; skipping it", { index: e.index, error: err.message });
        }
        this.host.appliedConfChange(e.index, cc);
        return;
      }
      default:
        // This service only ever proposes ConfChangeV2; a V1 change is refused, not fatal.
        log.error("unexpected conf change v1 entry; skipping it", { index: e.index });
        this.host.applied(e.index);
    }
  }

  /**
   * Entries that reached this node's log, before they are committed. When the first block among
   * them is the next one for an idle controller, it is checked at once (CheckProposal is
   * read-only): its commit then needs only CommitBlock, and the check overlaps replication instead
   * of following it. On the leader that is its own proposal, checked while the append is on its
   * way. The result counts only for those very bytes at that height; anything else is checked
   * again in the commit path, so the controller still sees every block checked before it is
   * committed, in height order.
   */
  appended(ents: readonly Entry[]): void {
    for (const e of ents) {
      if (e.entryType !== EntryType.EntryNormal || e.data.length === 0) continue;
      const p = tryDecodeProposal(e.data);
      if (p === undefined || p.height <= this.host.chainConfig().height) continue;
      // Busy with the block before (a follower learns its commit about when the next block
      // arrives): this one is checked as soon as the controller has that one.
      this.uncheckedNext = p;
      this.maybeCheckEarly();
      return;
    }
  }

  /** Sends the early check of the newest block that reached the log, if it is next and the controller idle. */
  private maybeCheckEarly(): void {
    const p = this.uncheckedNext;
    if (p === undefined || this.stopped || this.running || this.queue.length > 0 || this.recommits.length > 0) return;
    this.uncheckedNext = undefined;
    if (p.height !== this.host.chainConfig().height + 1n) return;
    if (this.earlyCheck?.height === p.height && bytesEqual(this.earlyCheck.data, p.data)) return;
    const { log, controller, timeline } = this.host;
    log.info("checking proposal..", { height: p.height, early: true });
    timeline?.at(p.height, "check_sent");
    const result = controller.checkProposal(p, { timeoutMs: CHECK_TIMEOUT_MS, signal: this.abort.signal }).then(
      (r) => {
        timeline?.at(p.height, "check_answered");
        return { code: r.code };
      },
      // A failed early check is only a missed shortcut: the commit path checks again.
      () => ({ code: StatusCodeEnum.NoneStatusCode }),
    );
    this.earlyCheck = { height: p.height, data: p.data, result };
  }

  /** The early check of exactly this block, if there was one (consumed). */
  private takeEarlyCheck(p: Proposal): Promise<{ code: number }> | undefined {
    const early = this.earlyCheck;
    this.earlyCheck = undefined;
    if (early === undefined || early.height !== p.height || !bytesEqual(early.data, p.data)) return undefined;
    return early.result;
  }

  /** CommitBlock(u64::MAX): the controller's height now, or undefined when it does not answer. */
  private async pingHeight(signal: AbortSignal): Promise<bigint | undefined> {
    try {
      const r = await this.host.controller.commitBlock(create(ProposalWithProofSchema, { proposal: { height: PING_HEIGHT }, proof: new Uint8Array(0) }), {
        timeoutMs: PING_TIMEOUT_MS,
        signal,
      });
      if (r.status?.code === StatusCodeEnum.Success && r.config) return r.config.height;
    } catch {
      // It reports again when it is back (its start-up Reconfigure), or the retry loop asks again.
    }
    return undefined;
  }

  /** CheckProposal + CommitBlock until the controller accepts the block or has it already. */
  private async commitBlock(p: Proposal, signal: AbortSignal): Promise<ChainConfig> {
    const { controller, log } = this.host;
    const backoff = new Backoff(this.host.random, 100, 5_000);
    for (let attempt = 1; ; attempt++) {
      let problem: Record<string, unknown>;
      try {
        const early = attempt === 1 ? this.takeEarlyCheck(p) : undefined;
        let check: { code: number };
        if (early !== undefined) {
          check = await early;
        } else {
          log.info("checking proposal..", { height: p.height });
          this.host.timeline?.at(p.height, "check_sent");
          check = await controller.checkProposal(p, { timeoutMs: CHECK_TIMEOUT_MS, signal });
          this.host.timeline?.at(p.height, "check_answered");
        }
        // ProposalTooLow: the controller already has this height (it synced it); CommitBlock then
        // answers success at once with its configuration.
        if (check.code === StatusCodeEnum.Success || check.code === StatusCodeEnum.ProposalTooLow) {
          log.info("committing proposal..", { height: p.height });
          this.host.timeline?.at(p.height, "commit_sent");
          const r = await controller.commitBlock(create(ProposalWithProofSchema, { proposal: p, proof: new Uint8Array(0) }), {
            timeoutMs: COMMIT_TIMEOUT_MS,
            signal,
          });
          this.host.timeline?.at(p.height, "commit_answered");
          const code = r.status?.code ?? StatusCodeEnum.NoneStatusCode;
          if (code === StatusCodeEnum.Success && r.config) {
            if (this.failing) log.info("controller accepts blocks again", { height: p.height, attempts: attempt });
            this.failing = false;
            log.info("block committed", { height: p.height });
            return r.config;
          }
          problem = { call: "CommitBlock", code, status: StatusCodeEnum[code] };
        } else {
          problem = { call: "CheckProposal", code: check.code, status: StatusCodeEnum[check.code] };
          // Too high for the next block, or for a block it had (a recommit): the controller is below
          // the applied height (it lost blocks, maybe again). Ask it where it is; the lost blocks
          // then go first.
          if (check.code === StatusCodeEnum.ProposalTooHigh && p.height <= this.host.chainConfig().height + 1n) {
            const now = await this.pingHeight(signal);
            if (now !== undefined) this.recommitAbove(now, "ping");
          }
        }
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        problem = { call: "controller", error: errorMessage(err) };
      }
      // ProposalTooHigh: the controller is behind and syncs by itself; anything else may pass later.
      const fields = { height: p.height, attempt, ...problem };
      if (!this.failing || attempt % 20 === 0) log.warn("block not committed yet, retrying", fields);
      else log.debug("block not committed yet, retrying", fields);
      this.failing = true;
      await sleep(this.host.clock, backoff.next(), signal);
    }
  }
}
