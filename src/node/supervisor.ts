// Decides whether this node runs a Raft peer, from the newest chain configuration the
// controller showed: a Reconfigure (newest wins, lower heights ignored), else the running peer's own
// applied configuration, else a CommitBlock(u64::MAX) ping. A validator runs a peer; a node that
// is no longer a validator keeps it until the chain passes the abort window (its last validator
// height + 2, persisted so a restart inside the window restarts the peer), then stops it.
import { create } from "@bufbuild/protobuf";
import type { ConsolaInstance } from "consola";
import { ProposalWithProofSchema } from "../../gen/common_pb.ts";
import { StatusCodeEnum } from "../../gen/status_code_pb.ts";
import type { Config } from "../config/types.ts";
import { peerIdFromAddress } from "../peer/peer-id.ts";
import type { NodeStorage } from "../storage/node-storage.ts";
import { type ChainConfig, PING_HEIGHT, describeChainConfig, validatorIndex } from "./chain-config.ts";
import type { ControllerClient } from "./controller.ts";
import type { Cancel, Clock } from "./ports.ts";
import type { RaftPeer } from "./raft-peer.ts";
import { errorMessage } from "../util/errors.ts";

export const SUPERVISOR_PERIOD_MS = 3_000;
export const PING_TIMEOUT_MS = 5_000;
/** Election timeouts without a word from any peer after which a removed voter leaves Raft. */
export const STALE_VOTER_ELECTIONS = 10;

export interface SupervisorDeps {
  readonly settings: Config;
  readonly log: ConsolaInstance;
  readonly storage: NodeStorage;
  readonly controller: ControllerClient;
  readonly clock: Clock;
  readonly makePeer: (config: ChainConfig) => RaftPeer;
  /** A round failed in a way retrying cannot fix (storage): the node must stop. */
  readonly fatal: (err: unknown) => void;
  readonly periodMs?: number;
}

export class Supervisor {
  private latest: ChainConfig | undefined;
  private _peer: RaftPeer | undefined;
  private abortHeight: bigint;
  /** The last configuration evaluated in this process listed this node as a validator. */
  private wasValidator = false;
  private cancelTimer: Cancel | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private pingFailing = false;
  /** Stopped as a voter nobody talks to (see stillAVoter); reset when it is a validator again. */
  private gaveUpAsRemoved = false;
  private readonly selfId: bigint;
  private readonly staleVoterMs: number;
  /** Aborts the controller call of the round in flight when stopping. */
  private readonly stopping = new AbortController();

  constructor(private readonly deps: SupervisorDeps) {
    this.abortHeight = deps.storage.abortHeight();
    this.selfId = peerIdFromAddress(deps.settings.nodeAddress);
    this.staleVoterMs = STALE_VOTER_ELECTIONS * deps.settings.electionTick * deps.settings.tickIntervalInMillis;
  }

  get peer(): RaftPeer | undefined {
    return this._peer;
  }

  start(): void {
    this.cancelTimer = this.deps.clock.every(this.deps.periodMs ?? SUPERVISOR_PERIOD_MS, () => this.kick());
    this.kick();
  }

  /** Reconfigure from the controller: answered at once by the server, evaluated here. */
  onReconfigure(c: ChainConfig): void {
    if (this.stopped) return;
    if (this.latest !== undefined && c.height < this.latest.height) {
      this.deps.log.debug("ignored reconfigure lower than a pending one", { height: c.height, pending: this.latest.height });
      return;
    }
    this.latest = c;
    this.kick();
  }

  /** Stops the peer (a leader hands over first, within `handOffMs`). */
  async stop(handOffMs: number): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    // A controller that accepts the connection and never answers must not hold the stop.
    this.stopping.abort(new Error("stopping"));
    await this.running?.catch(() => {});
    // The peer stays reachable while it hands over: the transferee's append acks and the new
    // leader's messages must still get to it.
    await this._peer?.stop(handOffMs);
    this._peer = undefined;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    // A round fails only when it cannot make or stop a peer (the stored configuration cannot be
    // decoded, a storage write failed): retrying would report SERVING while nothing runs.
    this.running = this.evaluate()
      .catch((e) => {
        if (this.stopped) return;
        this.stopped = true;
        this.cancelTimer?.();
        this.deps.fatal(e);
      })
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async evaluate(): Promise<void> {
    const { log, settings, storage } = this.deps;
    let config = this.latest;
    this.latest = undefined;
    if (config !== undefined) {
      log.info("get reconfigure from controller", describeChainConfig(config));
      this._peer?.offerConfig(config);
    } else if (this._peer !== undefined) {
      config = this._peer.chainConfig();
    } else {
      config = await this.ping();
      if (config === undefined || this.stopped) return;
    }
    const validator = validatorIndex(config, settings.nodeAddress) >= 0;
    if (validator) {
      this.abortHeight = config.height + 2n;
      this.wasValidator = true;
      this.gaveUpAsRemoved = false;
      // Persisted here too: a validator restarted before it sees its removal must still know it
      // was one at this height (the Rust service wrote it only once out, and forgot otherwise).
      if (this.abortHeight > storage.abortHeight()) storage.setAbortHeight(this.abortHeight);
    } else {
      // The validator height above is only as fresh as the last round (3 s: many blocks at a
      // short interval). The exclusion happened at or before this height, and the new validators'
      // leader proposes the next block only once this node's removal is applied: until that
      // block, the cluster may still need this node's vote to commit the removal.
      if (this.wasValidator && config.height + 1n > this.abortHeight) this.abortHeight = config.height + 1n;
      this.wasValidator = false;
      if (this._peer !== undefined || config.height < this.abortHeight) log.info("I'm not in the validators list", { height: config.height, abort_height: this.abortHeight });
      if (this.abortHeight > storage.abortHeight()) storage.setAbortHeight(this.abortHeight);
    }
    if (validator || config.height < this.abortHeight || this.stillAVoter()) {
      if (this._peer === undefined && !this.stopped) {
        const peer = this.deps.makePeer(config);
        this._peer = peer;
        peer.start();
      }
    } else if (this._peer !== undefined && this._peer.status().committerBacklog > 0) {
      // Committed blocks still on their way to the controller may make this node a validator
      // again (or carry the change it is waiting for): decide once they are applied.
      log.debug("not leaving raft while committed blocks are still being applied", { backlog: this._peer.status().committerBacklog });
    } else if (this._peer !== undefined) {
      log.info("abort raft", { height: config.height, abort_height: this.abortHeight });
      const peer = this._peer;
      this._peer = undefined;
      await peer.stop(0);
    }
  }

  /**
   * A node off the validator list whose applied Raft configuration still lists it as a voter:
   * the removal is not yet committed there, and the others may need its vote to commit it (or
   * to elect a leader that will). It keeps running while peers talk to it; once nobody has for
   * STALE_VOTER_MS (its removal was applied without it), it gives up until it is a validator again.
   */
  private stillAVoter(): boolean {
    if (this.gaveUpAsRemoved) return false;
    const cs = this.deps.storage.initialState().confState;
    if (!cs.voters.includes(this.selfId) && !cs.votersOutgoing.includes(this.selfId)) return false;
    const peer = this._peer;
    if (peer === undefined || peer.msSinceHeardFromValidators() < this.staleVoterMs) return true;
    this.deps.log.info("no longer a validator and no validator has talked to this voter for a while; leaving raft", {
      silent_ms: Math.round(peer.msSinceHeardFromValidators()),
    });
    this.gaveUpAsRemoved = true;
    return false;
  }

  /** CommitBlock(u64::MAX): the controller answers its current configuration. */
  private async ping(): Promise<ChainConfig | undefined> {
    const { controller, log } = this.deps;
    log.debug("ping_controller..");
    try {
      const r = await controller.commitBlock(create(ProposalWithProofSchema, { proposal: { height: PING_HEIGHT }, proof: new Uint8Array(0) }), {
        timeoutMs: PING_TIMEOUT_MS,
        signal: this.stopping.signal,
      });
      const code = r.status?.code ?? StatusCodeEnum.NoneStatusCode;
      if (code === StatusCodeEnum.Success && r.config) {
        if (this.pingFailing) log.info("controller answers again");
        this.pingFailing = false;
        return r.config;
      }
      this.pingFailed({ code, status: StatusCodeEnum[code] });
    } catch (e) {
      if (this.stopping.signal.aborted) return undefined;
      this.pingFailed({ error: errorMessage(e) });
    }
    return undefined;
  }

  private pingFailed(fields: Record<string, unknown>): void {
    // The controller starts after us in a fresh pod: one warning, then quiet retries.
    if (!this.pingFailing) this.deps.log.warn("commit block failed (ping), will retry", fields);
    else this.deps.log.debug("commit block failed (ping), will retry", fields);
    this.pingFailing = true;
  }
}
