// The leader's block source: it asks its controller for the next proposal, paced by the block
// interval (0: as soon as the previous block is applied), proposes it to Raft when its height is
// the next one, and hands leadership over (see RaftPeer.transferLeadership) when it has proposed
// nothing for 4 block intervals, whatever the reason (its controller syncing or failing, a
// membership change that does not settle, its own blocks not getting applied): a leader that
// cannot propose must not keep the others from electing one that can. Without a follower to take
// over it tries again on every tick; a hand-over under way gets another such period.
import type { ConsolaInstance } from "consola";
import type { Proposal } from "../../gen/common_pb.ts";
import { StatusCodeEnum } from "../../gen/status_code_pb.ts";
import type { ControllerClient } from "./controller.ts";
import { LogLimiter } from "../peer/rate.ts";
import type { ChainConfig } from "./chain-config.ts";
import type { BlockTimeline } from "./block-timeline.ts";
import type { NodeTestBug } from "./test-bugs.ts";
import { errorMessage } from "../util/errors.ts";

export interface ProposerHost {
  readonly log: ConsolaInstance;
  readonly controller: ControllerClient;
  chainConfig(): ChainConfig;
  /** Whether a block may be proposed now (no membership change pending). */
  canPropose(): boolean;
  /** Proposes the encoded block to Raft; false if Raft dropped it. */
  propose(p: Proposal): boolean;
  /** Hands leadership to an up-to-date follower; true if a hand-over is under way, false if none can start. */
  transferLeadership(reason: string): boolean;
  /** The controller showed its height (a proposal for the height after it). */
  controllerAt(height: bigint): void;
  readonly testBugs?: ReadonlySet<NodeTestBug>;
  readonly timeline?: BlockTimeline;
  now(): number;
}

export const GET_PROPOSAL_TIMEOUT_MS = 10_000;
/** The stall window never drops below this, so block_interval = 0 does not mean "transfer at once". */
export const MIN_STALL_MS = 3_000;
/** After a failed or unusable GetProposal, the next one waits at least this long (block_interval 0 would spin). */
export const RETRY_AFTER_FAILURE_MS = 100;

export class Proposer {
  private active = false;
  private fetching: AbortController | undefined;
  /** Height of the block proposed to Raft and not yet applied. */
  private pendingHeight: bigint | undefined;
  private nextFetchAt = 0;
  /** Since when this leader has made no progress (no proposal accepted by Raft, no block applied). */
  private stallSince: number | undefined;
  /** The stall whose warning was logged (a hand-over without a transferee is tried every tick). */
  private stallReportedFor: number | undefined;
  private failing = false;
  private readonly limitedLog: LogLimiter;

  constructor(private readonly host: ProposerHost) {
    this.limitedLog = new LogLimiter(host.log, () => host.now());
  }

  get isActive(): boolean {
    return this.active;
  }

  /** This node became leader: fetch at once. */
  start(): void {
    this.active = true;
    this.pendingHeight = undefined;
    this.nextFetchAt = this.host.now();
    this.stallSince = this.host.now();
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
      if (this.active) this.stallSince = this.host.now();
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
    // The old rule: the stall clock ran only while fetching, so a leader that could not propose never handed over.
    const oldRule = this.host.testBugs?.has("no-handover-retry") ?? false;
    if (oldRule && !this.host.canPropose()) this.stallSince = undefined;
    if (this.stallSince !== undefined && now - this.stallSince > this.stallLimitMs()) {
      if (this.stallReportedFor !== this.stallSince) {
        this.stallReportedFor = this.stallSince;
        this.host.log.warn("no block proposed for too long, transferring leadership", {
          waited_ms: Math.round(now - this.stallSince),
          can_propose: this.host.canPropose(),
          pending_height: this.pendingHeight,
        });
      }
      if (oldRule) {
        this.stallSince = undefined;
        this.host.transferLeadership("stalled proposals");
      } else if (this.host.transferLeadership("stalled proposals")) {
        // Tried again after another stall period if this one does not take.
        this.stallSince = now;
      }
      // Otherwise no follower qualifies at this moment (one catching up, or check-quorum has just
      // cleared every follower's recent activity): tried again on the next tick, not a stall later.
    }
  }

  private stallLimitMs(): number {
    return Math.max(4 * this.host.chainConfig().blockInterval * 1000, MIN_STALL_MS);
  }

  private async fetch(): Promise<void> {
    const { log, controller } = this.host;
    const abort = new AbortController();
    this.fetching = abort;
    if (this.host.testBugs?.has("no-handover-retry")) this.stallSince ??= this.host.now();
    log.debug("fetching proposal..");
    let proposal: Proposal | undefined;
    try {
      const r = await controller.getProposal({}, { timeoutMs: GET_PROPOSAL_TIMEOUT_MS, signal: abort.signal });
      const code = r.status?.code ?? StatusCodeEnum.NoneStatusCode;
      // 109 (NoTransaction) is a legacy success code.
      if ((code === StatusCodeEnum.Success || code === StatusCodeEnum.NoTransaction) && r.proposal) proposal = r.proposal;
      else this.noteFailure({ code, status: StatusCodeEnum[code] });
    } catch (e) {
      if (!abort.signal.aborted) this.noteFailure({ error: errorMessage(e) });
    }
    if (this.fetching !== abort) return; // stopped or restarted meanwhile
    this.fetching = undefined;
    const interval = this.host.chainConfig().blockInterval * 1000;
    this.nextFetchAt = this.host.now() + (proposal === undefined ? Math.max(interval, RETRY_AFTER_FAILURE_MS) : interval);
    if (proposal === undefined || !this.active) return;
    if (this.failing) log.info("controller gives proposals again");
    this.failing = false;
    const expected = this.host.chainConfig().height + 1n;
    if (proposal.height !== expected) {
      this.limitedLog.warn("receive a proposal with invalid height, drop it", { proposal_height: proposal.height, expect_height: expected });
      this.nextFetchAt = this.host.now() + Math.max(interval, RETRY_AFTER_FAILURE_MS);
      // Lower: the controller lost blocks we applied (they go to it again first). Higher: it
      // synced ahead and its Reconfigure brings the new height.
      if (proposal.height < expected) this.host.controllerAt(proposal.height - 1n);
      return;
    }
    this.host.timeline?.at(proposal.height, "proposal_answered");
    log.info("new proposal", { height: proposal.height, bytes: proposal.data.length });
    if (!this.host.canPropose()) return;
    if (this.host.propose(proposal)) {
      this.host.timeline?.at(proposal.height, "proposed");
      this.pendingHeight = proposal.height;
      this.stallSince = this.host.now();
      log.info("pending proposal proposed", { height: proposal.height });
    }
  }

  private noteFailure(fields: Record<string, unknown>): void {
    if (!this.failing) this.host.log.warn("fetching proposal failed", fields);
    else this.host.log.debug("fetching proposal failed", fields);
    this.failing = true;
  }
}
