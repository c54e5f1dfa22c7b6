// The leader's block source: it asks its controller for the next proposal, paced by the block
// interval (0: as soon as the previous block is applied), proposes it to Raft when its height is
// the next one, and hands leadership to an up-to-date validator when no valid proposal arrives
// for 4 block intervals (for example while its controller is syncing).
import type { ConsolaInstance } from "consola";
import type { Proposal } from "../../gen/common_pb.ts";
import { StatusCodeEnum } from "../../gen/status_code_pb.ts";
import type { ControllerClient } from "./controller.ts";
import type { ChainConfig } from "./chain-config.ts";

export interface ProposerHost {
  readonly log: ConsolaInstance;
  readonly controller: ControllerClient;
  chainConfig(): ChainConfig;
  /** Whether a block may be proposed now (no membership change pending). */
  canPropose(): boolean;
  /** Proposes the encoded block to Raft; false if Raft dropped it. */
  propose(p: Proposal): boolean;
  /** Hands leadership to an up-to-date validator other than this node; false if there is none. */
  transferLeadership(reason: string): boolean;
  now(): number;
}

export const GET_PROPOSAL_TIMEOUT_MS = 10_000;
/** The stall window never drops below this, so block_interval = 0 does not mean "transfer at once". */
export const MIN_STALL_MS = 3_000;

export class Proposer {
  private active = false;
  private fetching: AbortController | undefined;
  /** Height of the block proposed to Raft and not yet applied. */
  private pendingHeight: bigint | undefined;
  private nextFetchAt = 0;
  /** When the leader started waiting for a valid proposal. */
  private stallSince: number | undefined;
  private failing = false;

  constructor(private readonly host: ProposerHost) {}

  get isActive(): boolean {
    return this.active;
  }

  /** This node became leader: fetch at once. */
  start(): void {
    this.active = true;
    this.pendingHeight = undefined;
    this.nextFetchAt = this.host.now();
    this.stallSince = undefined;
    this.poll();
  }

  /** This node is no longer leader: forget everything in flight. */
  stop(): void {
    this.active = false;
    this.fetching?.abort(new Error("not leader"));
    this.fetching = undefined;
    this.pendingHeight = undefined;
    this.stallSince = undefined;
  }

  /** A block at `height` was applied locally. */
  blockApplied(height: bigint): void {
    if (this.pendingHeight !== undefined && height >= this.pendingHeight) {
      this.pendingHeight = undefined;
      if (this.host.chainConfig().blockInterval === 0) this.nextFetchAt = this.host.now();
      this.poll();
    }
  }

  /** Called on every tick and event: fetch when due, and watch for a stall. */
  poll(): void {
    if (!this.active) return;
    const now = this.host.now();
    // The pending block may have been applied by another path (skipped as already done, or a
    // newer configuration adopted): the applied height is what counts.
    if (this.pendingHeight !== undefined && this.host.chainConfig().height >= this.pendingHeight) this.pendingHeight = undefined;
    if (this.fetching === undefined && this.pendingHeight === undefined && now >= this.nextFetchAt && this.host.canPropose()) {
      void this.fetch();
    }
    if (this.stallSince !== undefined && now - this.stallSince > this.stallLimitMs()) {
      this.host.log.warn("no valid proposal for too long, transferring leadership", { waited_ms: Math.round(now - this.stallSince) });
      this.stallSince = undefined;
      this.host.transferLeadership("stalled proposals");
    }
  }

  private stallLimitMs(): number {
    return Math.max(4 * this.host.chainConfig().blockInterval * 1000, MIN_STALL_MS);
  }

  private async fetch(): Promise<void> {
    const { log, controller } = this.host;
    const abort = new AbortController();
    this.fetching = abort;
    this.stallSince ??= this.host.now();
    log.debug("fetching proposal..");
    let proposal: Proposal | undefined;
    try {
      const r = await controller.getProposal({}, { timeoutMs: GET_PROPOSAL_TIMEOUT_MS, signal: abort.signal });
      const code = r.status?.code ?? StatusCodeEnum.NoneStatusCode;
      // 109 (NoTransaction) is a legacy success code.
      if ((code === StatusCodeEnum.Success || code === StatusCodeEnum.NoTransaction) && r.proposal) proposal = r.proposal;
      else this.noteFailure({ code, status: StatusCodeEnum[code] });
    } catch (e) {
      if (!abort.signal.aborted) this.noteFailure({ error: e instanceof Error ? e.message : String(e) });
    }
    if (this.fetching !== abort) return; // stopped or restarted meanwhile
    this.fetching = undefined;
    this.nextFetchAt = this.host.now() + this.host.chainConfig().blockInterval * 1000;
    if (proposal === undefined || !this.active) return;
    if (this.failing) log.info("controller gives proposals again");
    this.failing = false;
    const expected = this.host.chainConfig().height + 1n;
    if (proposal.height !== expected) {
      log.warn("receive a proposal with invalid height, drop it", { proposal_height: proposal.height, expect_height: expected });
      return;
    }
    log.info("new proposal", { height: proposal.height, bytes: proposal.data.length });
    if (!this.host.canPropose()) return;
    if (this.host.propose(proposal)) {
      this.pendingHeight = proposal.height;
      this.stallSince = undefined;
      log.info("pending proposal proposed", { height: proposal.height });
    }
  }

  private noteFailure(fields: Record<string, unknown>): void {
    if (!this.failing) this.host.log.warn("fetching proposal failed", fields);
    else this.host.log.debug("fetching proposal failed", fields);
    this.failing = true;
  }
}
