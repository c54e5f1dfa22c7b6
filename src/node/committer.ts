// The commit pipeline: every committed Raft entry, in order, exactly once, on every node. Blocks go
// to the local controller (CheckProposal, then CommitBlock with the empty Raft proof), retried
// with backoff until the controller accepts them or reports the height done; conf changes are
// applied to Raft. It runs beside the Raft loop: ticks and heartbeats never wait for it.
import { create } from "@bufbuild/protobuf";
import type { ConsolaInstance } from "consola";
import { type Proposal, ProposalWithProofSchema } from "../../gen/common_pb.ts";
import { StatusCodeEnum } from "../../gen/status_code_pb.ts";
import { CodecError, decodeConfChangeV2 } from "../raft/codec.ts";
import type { ConfChangeV2, Entry } from "../raft/types.ts";
import { EntryType } from "../raft/types.ts";
import type { ControllerClient } from "./controller.ts";
import { type ChainConfig, tryDecodeProposal } from "./chain-config.ts";
import { Backoff, type Clock, type Random, sleep } from "./ports.ts";

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
  /** Committed entries [lo, hi) read back from storage (the queue holds only a bounded window). */
  readEntries(lo: number, hi: number): Entry[];
  /** A block was committed by the controller (for metrics and the proposer). */
  blockCommitted(height: bigint, waitedMs: number): void;
  /** Applying failed in a way that cannot be retried (storage): the node must stop. */
  fatal(err: unknown): void;
}

/** Deadlines of controller calls. CommitBlock executes the block, so it gets longer. */
export const CHECK_TIMEOUT_MS = 10_000;
export const COMMIT_TIMEOUT_MS = 30_000;
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

  constructor(
    private readonly host: CommitterHost,
    lastApplied: number,
  ) {
    this.lastQueued = lastApplied;
    this.highestCommitted = lastApplied;
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
    this.epoch++;
    this.queue = this.queue.filter((e) => e.index > index);
    if (index > this.lastQueued) this.lastQueued = index;
    if (index > this.highestCommitted) this.highestCommitted = index;
    this.abort.abort(new Error("superseded by a snapshot"));
    this.abort = new AbortController();
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
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const epoch = this.epoch;
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
        return;
      }
      case EntryType.EntryConfChangeV2: {
        let cc: ConfChangeV2 | undefined;
        try {
          cc = decodeConfChangeV2(e.data);
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
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

  /** CheckProposal + CommitBlock until the controller accepts the block or has it already. */
  private async commitBlock(p: Proposal, signal: AbortSignal): Promise<ChainConfig> {
    const { controller, log } = this.host;
    const backoff = new Backoff(this.host.random, 100, 5_000);
    for (let attempt = 1; ; attempt++) {
      let problem: Record<string, unknown>;
      try {
        log.info("checking proposal..", { height: p.height });
        const check = await controller.checkProposal(p, { timeoutMs: CHECK_TIMEOUT_MS, signal });
        // ProposalTooLow: the controller already has this height (it synced it); CommitBlock then
        // answers success at once with its configuration.
        if (check.code === StatusCodeEnum.Success || check.code === StatusCodeEnum.ProposalTooLow) {
          log.info("committing proposal..", { height: p.height });
          const r = await controller.commitBlock(create(ProposalWithProofSchema, { proposal: p, proof: new Uint8Array(0) }), {
            timeoutMs: COMMIT_TIMEOUT_MS,
            signal,
          });
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
        }
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        problem = { call: "controller", error: err instanceof Error ? err.message : String(err) };
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
