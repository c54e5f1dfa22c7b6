// Controller emulator: plays controller_hsm toward one consensus process (its behaviour: README.md
// here). It serves controller.Consensus2ControllerService with the real height rules, calls the
// local consensus' Reconfigure at start-up until it answers 0, and syncs blocks from peer
// controllers (CheckBlock + Reconfigure per synced block) when it falls behind. Tests drive its
// faults.
//
// The logic runs on a Clock and talks to its consensus through a ControllerEdge: the gRPC edge
// (grpc-edges.ts, the default) serves a real port and dials consensus on localhost, for
// `consensus demo`, bench/ and the end-to-end tests; the chain simulator passes a simulated edge
// and its simulated clock. One emulator, both uses.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConsolaInstance } from "consola";
import { BlockHeaderSchema, CompactBlockSchema, type BlockHeader } from "../../gen/blockchain_pb.ts";
import {
  ConsensusConfigurationResponseSchema,
  ConsensusConfigurationSchema,
  ProposalInnerSchema,
  ProposalResponseSchema,
  ProposalWithProofSchema,
  StatusCodeSchema,
  type ConsensusConfiguration,
  type ConsensusConfigurationResponse,
  type Proposal,
  type ProposalResponse,
  type ProposalWithProof,
  type StatusCode,
} from "../../gen/common_pb.ts";
import { StatusCodeEnum as S } from "../../gen/status_code_pb.ts";
import { type Cancel, type Clock, sleep, systemClock } from "../node/ports.ts";
import type { ControllerEdge, IncomingCall, Listener } from "./edges.ts";
import { grpcControllerEdge } from "./grpc-edges.ts";
import { bytesEqual } from "../util/bytes.ts";
import { sha256, toHex } from "./identity.ts";
import { silentLogger } from "./log.ts";

/** The real controller's `inner_block_growth_check_interval` default. */
export const GROWTH_CHECK_INTERVAL_MS = 60_000;

export const U64_MAX = (1n << 64n) - 1n;

/** The part of the controller's system config that consensus sees. */
export interface SystemConfig {
  /** Seconds, as in `[system_config].block_interval`. */
  readonly blockInterval: number;
  readonly validators: readonly Uint8Array[];
}

/** An admin change (like the UTXO txs of `cldi admin`): applies to the first block at or after `atHeight`. */
export interface ConfigChange {
  readonly atHeight: number;
  readonly blockInterval?: number;
  readonly validators?: readonly Uint8Array[];
}

export interface Block {
  readonly height: number;
  readonly hash: Uint8Array;
  readonly header: BlockHeader;
  /** The encoded ProposalInner the block was committed from. */
  readonly data: Uint8Array;
  readonly proof: Uint8Array;
  /** The system config in force after this block. */
  readonly config: SystemConfig;
  readonly source: "genesis" | "commit" | "sync";
  /** The controller's clock (`performance.now()` on the system clock) when the block entered this chain. */
  readonly appendedAt: number;
}

export type ControllerMethod = "GetProposal" | "CheckProposal" | "CommitBlock";

/** An injected failure: answer with a StatusCodeEnum `status`, or fail the RPC with `grpcCode`. */
export interface Fault {
  readonly methods?: readonly ControllerMethod[];
  readonly status?: number;
  readonly grpcCode?: Code;
  /** How many calls it hits; unlimited by default. */
  readonly times?: number;
}

export interface HeightStats {
  /** CommitBlock calls that appended this height (0 or 1 by construction). */
  newCommits: number;
  /** CommitBlock calls for this height after it was already in the chain (answered 0, idempotent). */
  repeatCommits: number;
  /** CommitBlock calls for this height answered with a non-zero status. */
  failedCommits: number;
}

export interface ControllerOptions {
  readonly name?: string;
  /** This node's 20-byte address: the proposer of its proposals. */
  readonly address: Uint8Array;
  /**
   * How it serves and reaches its consensus; by default gRPC on loopback (`consensusPort`, `port`,
   * `callTimeoutMs`).
   */
  readonly edge?: ControllerEdge;
  /** Where the local consensus serves ConsensusService (dialled on localhost); gRPC edge only. */
  readonly consensusPort?: number;
  /** Own Consensus2ControllerService port; a free one when absent; gRPC edge only. */
  readonly port?: number;
  /** Timers and elapsed time; the system clock by default. */
  readonly clock?: Clock;
  /** Wall time in ms since the epoch, for block timestamps; `Date.now` by default. */
  readonly wallClock?: () => number;
  /** System config of the genesis block. */
  readonly genesis: SystemConfig;
  /** The other controllers of the chain, for block sync. */
  readonly group?: ControllerGroup;
  /** Pause between start-up Reconfigure attempts (the real `server_retry_interval`, 3 s). */
  readonly retryIntervalMs?: number;
  /** Serve at once instead of only after consensus acknowledged the start-up Reconfigure. */
  readonly serveBeforeReconfigure?: boolean;
  /** How often it compares its height with its peers' (chain status exchange). */
  readonly syncCheckIntervalMs?: number;
  /**
   * How often it checks that its height grew (the real `inner_block_growth_check_interval`, 60 s);
   * stuck while a peer is higher, it drops its candidate, so it syncs even one block behind.
   */
  readonly growthCheckIntervalMs?: number;
  /** Deadline of each call to consensus; gRPC edge only. */
  readonly callTimeoutMs?: number;
  /** Pseudo transaction hashes per proposal, to give blocks a realistic size. */
  readonly txsPerProposal?: number;
  readonly log?: ConsolaInstance;
}

interface ActiveFault extends Fault {
  remaining: number;
}

const EMPTY = new Uint8Array(0);

function txRoot(txHashes: readonly Uint8Array[]): Uint8Array {
  return sha256("tx-root", ...txHashes);
}

function stateRootAfter(block: Block): Uint8Array {
  return sha256("state", block.hash);
}

function blockHash(header: BlockHeader): Uint8Array {
  return sha256(toBinary(BlockHeaderSchema, header));
}

function checkConfig(blockInterval: number | undefined, validators: readonly Uint8Array[] | undefined): void {
  if (blockInterval !== undefined && !(Number.isInteger(blockInterval) && blockInterval >= 0 && blockInterval < 2 ** 32)) {
    throw new Error(`block interval must be a u32 number of seconds, got ${blockInterval}`);
  }
  if (validators !== undefined && validators.length === 0) {
    throw new Error("the validator list must not be empty");
  }
}

/** The controllers of one chain; they find each other here to sync blocks (controller-to-controller). */
export class ControllerGroup {
  private readonly members = new Set<ControllerEmulator>();

  /**
   * `reachable(a, b)`: whether controller `a` can fetch blocks from `b` right now (block sync goes
   * over the network service; the chain simulator passes its partitions here). Always by default.
   */
  constructor(private readonly reachable: (a: ControllerEmulator, b: ControllerEmulator) => boolean = () => true) {}

  add(c: ControllerEmulator): void {
    this.members.add(c);
  }

  remove(c: ControllerEmulator): void {
    this.members.delete(c);
  }

  get controllers(): ControllerEmulator[] {
    return [...this.members];
  }

  /** The running peer with the highest chain, skipping `excluded`. */
  highestPeer(self: ControllerEmulator, excluded: ReadonlySet<ControllerEmulator>): ControllerEmulator | undefined {
    let best: ControllerEmulator | undefined;
    for (const c of this.members) {
      if (c === self || !c.running || excluded.has(c) || !this.reachable(self, c)) continue;
      if (!best || c.height > best.height) best = c;
    }
    return best;
  }

  /**
   * Schedules `change` on every controller so that all apply it to the same block: the height is
   * raised to just above the highest block any of them ever held (lost ones included: those come
   * back as they were, without the change). Returns the height it takes effect at.
   */
  scheduleConfigChange(change: ConfigChange): number {
    const top = Math.max(0, ...this.controllers.map((c) => c.highestHeight));
    const atHeight = Math.max(change.atHeight, top + 1);
    for (const c of this.members) c.scheduleConfigChange({ ...change, atHeight });
    return atHeight;
  }
}

export class ControllerEmulator {
  readonly name: string;
  readonly address: Uint8Array;
  private readonly opts: ControllerOptions;
  private readonly log: ConsolaInstance;
  private readonly retryIntervalMs: number;
  private readonly syncCheckIntervalMs: number;
  private readonly growthCheckIntervalMs: number;
  private cancelGrowthTimer: Cancel | undefined;
  private readonly blocks: Block[] = [];
  private pending: ConfigChange[] = [];
  /** Admin changes each block took (they go back to `pending` if the block is lost). */
  private readonly changesAt = new Map<number, ConfigChange[]>();
  private readonly stats = new Map<number, HeightStats>();
  /** Height → clock time of the first GetProposal answer for it. */
  private readonly proposalTimes = new Map<number, number>();
  private readonly edge: ControllerEdge;
  private readonly clock: Clock;
  private readonly wallClock: () => number;

  private server: Listener | undefined;
  private serverOpening: Promise<void> | undefined;
  /** One per start..kill; aborting it ends every task of that life. */
  private life: AbortController | undefined;
  private cancelSyncTimer: Cancel | undefined;
  private ownProposal: { height: number; data: Uint8Array } | undefined;
  /** Height of a proposal this controller checked (or made): it then waits for consensus instead of syncing. */
  private candidate = 0;
  private syncingNow = false;
  private hangUntil = 0;
  private faults: ActiveFault[] = [];

  /** True once the local consensus acknowledged the start-up Reconfigure in the current life. */
  reconfiguredAtStart = false;
  readonly callCounts: Record<ControllerMethod, number> = { GetProposal: 0, CheckProposal: 0, CommitBlock: 0 };
  /** `client-name` metadata values seen on incoming calls. */
  readonly clientNames = new Set<string>();
  /** Calls made to consensus (attempts included), in order. */
  readonly reconfigureCalls: ConsensusConfiguration[] = [];
  readonly checkBlockCalls: number[] = [];
  /** Blocks this controller lost in power losses (see powerLoss), in the order they were lost. */
  readonly lostBlocks: Block[] = [];

  constructor(opts: ControllerOptions) {
    checkConfig(opts.genesis.blockInterval, opts.genesis.validators);
    this.opts = opts;
    this.name = opts.name ?? `controller-${toHex(opts.address).slice(0, 8)}`;
    this.address = opts.address;
    this.log = (opts.log ?? silentLogger()).withTag(this.name);
    this.retryIntervalMs = opts.retryIntervalMs ?? 3000;
    this.syncCheckIntervalMs = opts.syncCheckIntervalMs ?? 1000;
    this.growthCheckIntervalMs = opts.growthCheckIntervalMs ?? GROWTH_CHECK_INTERVAL_MS;
    this.clock = opts.clock ?? systemClock;
    this.wallClock = opts.wallClock ?? Date.now;
    if (opts.edge) this.edge = opts.edge;
    else if (opts.consensusPort !== undefined) this.edge = grpcControllerEdge({ consensusPort: opts.consensusPort, port: opts.port, callTimeoutMs: opts.callTimeoutMs ?? 5000 });
    else throw new Error(`${this.name}: a controller needs an edge or a consensusPort`);
    const header = create(BlockHeaderSchema, {
      prevhash: new Uint8Array(32),
      timestamp: 0n,
      height: 0n,
      transactionsRoot: txRoot([]),
      proposer: EMPTY,
    });
    this.blocks.push({
      height: 0,
      hash: blockHash(header),
      header,
      data: EMPTY,
      proof: EMPTY,
      config: { blockInterval: opts.genesis.blockInterval, validators: [...opts.genesis.validators] },
      source: "genesis",
      appendedAt: this.clock.now(),
    });
    opts.group?.add(this);
  }

  // ---- state, for tests and peers ----

  get height(): number {
    return this.blocks.length - 1;
  }

  /** The highest block this controller ever held, counting blocks it lost in power losses. */
  get highestHeight(): number {
    let top = this.height;
    for (const b of this.lostBlocks) if (b.height > top) top = b.height;
    return top;
  }

  get head(): Block {
    return this.blocks[this.blocks.length - 1];
  }

  get config(): SystemConfig {
    return this.head.config;
  }

  /** The port it serves on; known after `start()`. */
  get port(): number {
    const port = this.edge.port;
    if (port === undefined) throw new Error(`${this.name} has no port before start()`);
    return port;
  }

  get running(): boolean {
    return this.life !== undefined;
  }

  get serving(): boolean {
    return this.server !== undefined;
  }

  get syncing(): boolean {
    return this.syncingNow;
  }

  block(height: number): Block | undefined {
    return this.blocks[height];
  }

  /** The committed chain, genesis first. */
  chain(): { height: number; hash: string; proposer: string; source: Block["source"] }[] {
    return this.blocks.map((b) => ({
      height: b.height,
      hash: toHex(b.hash),
      proposer: toHex(b.header.proposer),
      source: b.source,
    }));
  }

  /** When this controller first handed out a proposal for `height` (its clock), if it did. */
  proposalAnsweredAt(height: number): number | undefined {
    return this.proposalTimes.get(height);
  }

  heightStats(height: number): HeightStats {
    return { ...(this.stats.get(height) ?? { newCommits: 0, repeatCommits: 0, failedCommits: 0 }) };
  }

  // ---- admin ----

  /** Applies `change` to the config of the first block committed at or after `change.atHeight`. */
  scheduleConfigChange(change: ConfigChange): void {
    checkConfig(change.blockInterval, change.validators);
    if (change.atHeight <= this.highestHeight) {
      throw new Error(`${this.name}: cannot schedule a config change at height ${change.atHeight}, the chain is at ${this.highestHeight}`);
    }
    this.pending.push({ ...change });
    this.pending.sort((a, b) => a.atHeight - b.atHeight);
  }

  /** Calls arriving in the next `ms` get no answer until that time has passed. */
  hang(ms: number): void {
    this.hangUntil = this.clock.now() + ms;
  }

  injectFault(fault: Fault): void {
    if (fault.status === undefined && fault.grpcCode === undefined) {
      throw new Error("a fault needs a status or a grpcCode");
    }
    this.faults.push({ ...fault, remaining: fault.times ?? Infinity });
  }

  clearFaults(): void {
    this.faults = [];
    this.hangUntil = 0;
  }

  // ---- life cycle ----

  /**
   * Starts like the real controller: Reconfigure{current height} to consensus every retry interval
   * until it answers 0, then serve (unless `serveBeforeReconfigure`) and watch peers for sync.
   * Returns once the port is known; the rest runs in the background.
   */
  async start(): Promise<void> {
    if (this.life) throw new Error(`${this.name} is already running`);
    await this.edge.prepare?.();
    if (this.life) throw new Error(`${this.name} is already running`);
    const life = new AbortController();
    this.life = life;
    this.reconfiguredAtStart = false;
    void this.boot(life.signal).catch((e) => {
      if (!life.signal.aborted) this.log.error("start-up failed", { error: String(e) });
    });
  }

  /** Server gone at once (open calls are cut), background work stopped; the chain is kept, as on disk. */
  kill(): void {
    this.life?.abort(new Error(`${this.name} killed`));
    this.life = undefined;
    this.cancelSyncTimer?.();
    this.cancelSyncTimer = undefined;
    this.cancelGrowthTimer?.();
    this.cancelGrowthTimer = undefined;
    this.stopServer();
    this.ownProposal = undefined;
    this.candidate = 0;
    this.syncingNow = false;
    this.clearFaults();
  }

  async restart(): Promise<void> {
    this.kill();
    await this.start();
  }

  /**
   * A power loss of a controller without a WAL (controller_hsm since v6.7.0): it comes back with
   * its last `blocks` blocks gone (never below genesis) and restarts as usual (Reconfigure at its
   * lower height). The lost blocks are kept in `lostBlocks` so a test can check that what comes
   * back at those heights is the very same block.
   */
  async powerLoss(blocks: number): Promise<void> {
    this.kill();
    const keep = Math.max(1, this.blocks.length - blocks);
    for (const b of this.blocks.splice(keep)) {
      this.lostBlocks.push(b);
      this.stats.delete(b.height);
      // The admin transactions of a lost block are pending again: committed again, the block
      // applies them again.
      const changes = this.changesAt.get(b.height);
      this.changesAt.delete(b.height);
      if (changes) this.pending.push(...changes);
    }
    this.pending.sort((a, b) => a.atHeight - b.atHeight);
    this.log.info("power loss", { height: this.height, lost: this.lostBlocks.length });
    await this.start();
  }

  /** Leaves the group for good. */
  close(): void {
    this.kill();
    this.opts.group?.remove(this);
  }

  /** Starts serving (again) on the same port, without touching anything else. */
  async startServer(): Promise<void> {
    const life = this.life;
    if (!life) throw new Error(`${this.name} is not running`);
    while (!this.server && this.life === life) {
      this.serverOpening ??= this.openServer(life).finally(() => (this.serverOpening = undefined));
      await this.serverOpening;
    }
  }

  /** Stops serving (connections refused) while the controller keeps running. */
  stopServer(): void {
    this.server?.close();
    this.server = undefined;
  }

  private async openServer(life: AbortController): Promise<void> {
    const server = await this.edge.serve({
      getProposal: async (call) => this.getProposal(await this.enter("GetProposal", call)),
      checkProposal: async (req, call) => this.checkProposal(req, await this.enter("CheckProposal", call)),
      commitBlock: async (req, call) => this.commitBlock(req, await this.enter("CommitBlock", call)),
    });
    // Killed (or restarted) while the socket was opening: that life must not serve.
    if (this.life !== life) return server.close();
    this.server = server;
    this.log.debug("serving", { port: this.edge.port });
  }

  private async boot(signal: AbortSignal): Promise<void> {
    if (this.opts.serveBeforeReconfigure) await this.startServer();
    for (;;) {
      const cfg = this.configMessage(BigInt(this.height));
      this.reconfigureCalls.push(cfg);
      const code = await this.callConsensus("Reconfigure", () => this.edge.consensus.reconfigure(cfg, signal));
      if (signal.aborted) return;
      if (code === S.Success) break;
      await sleep(this.clock, this.retryIntervalMs, signal);
    }
    this.reconfiguredAtStart = true;
    this.log.info("consensus reconfigured", { height: this.height });
    await this.startServer();
    if (signal.aborted) return;
    this.cancelSyncTimer = this.clock.every(this.syncCheckIntervalMs, () => this.maybeSync());
    let checkedHeight = this.height;
    this.cancelGrowthTimer = this.clock.every(this.growthCheckIntervalMs, () => {
      if (this.height === checkedHeight) this.dropCandidateIfBehind();
      checkedHeight = this.height;
    });
  }

  // ---- the service ----

  private async enter(method: ControllerMethod, call: IncomingCall): Promise<ActiveFault | undefined> {
    this.callCounts[method]++;
    if (call.clientName) this.clientNames.add(call.clientName);
    while (this.clock.now() < this.hangUntil) await sleep(this.clock, this.hangUntil - this.clock.now(), call.signal);
    const fault = this.faults.find((f) => f.remaining > 0 && (!f.methods || f.methods.includes(method)));
    if (!fault) return undefined;
    fault.remaining--;
    if (fault.grpcCode !== undefined) throw new ConnectError(`injected ${method} failure`, fault.grpcCode);
    return fault;
  }

  private getProposal(fault: ActiveFault | undefined): ProposalResponse {
    if (fault) return create(ProposalResponseSchema, { status: { code: fault.status } });
    if (this.syncingNow) return create(ProposalResponseSchema, { status: { code: S.NodeInSyncMode } });
    const n = this.height + 1;
    if (this.ownProposal?.height !== n) this.ownProposal = { height: n, data: this.buildProposal(n) };
    if (!this.proposalTimes.has(n)) this.proposalTimes.set(n, this.clock.now());
    this.candidate = n;
    return create(ProposalResponseSchema, {
      status: { code: S.Success },
      proposal: { height: BigInt(n), data: this.ownProposal.data },
    });
  }

  private checkProposal(p: Proposal, fault: ActiveFault | undefined): StatusCode {
    const code = (c: number) => create(StatusCodeSchema, { code: c });
    if (fault) return code(fault.status!);
    const n = BigInt(this.height + 1);
    if (p.height < n) return code(S.ProposalTooLow);
    if (p.height > n) {
      this.requestSync(`proposal at ${p.height} is too high`);
      return code(S.ProposalTooHigh);
    }
    const own = this.ownProposal;
    if (!(own && BigInt(own.height) === p.height && bytesEqual(own.data, p.data))) {
      const c = this.validate(p.data, this.height + 1, true).code;
      if (c !== S.Success) return code(c);
    }
    this.candidate = this.height + 1;
    return code(S.Success);
  }

  private commitBlock(req: ProposalWithProof, fault: ActiveFault | undefined): ConsensusConfigurationResponse {
    const requested = req.proposal?.height ?? 0n;
    const answer = (status: number) => {
      if (status !== S.Success && requested <= BigInt(Number.MAX_SAFE_INTEGER)) this.bump(Number(requested), "failedCommits");
      return create(ConsensusConfigurationResponseSchema, {
        status: { code: status },
        config: this.configMessage(requested),
      });
    };
    if (!req.proposal) return answer(S.NoneProposal);
    if (fault) return answer(fault.status!);
    if (requested === U64_MAX) {
      return create(ConsensusConfigurationResponseSchema, {
        status: { code: S.Success },
        config: this.configMessage(BigInt(this.height)),
      });
    }
    if (requested <= BigInt(this.height)) {
      this.bump(Number(requested), "repeatCommits");
      return answer(S.Success);
    }
    if (requested > BigInt(this.height + 1)) {
      this.requestSync(`commit at ${requested} is too high`);
      return answer(S.ProposalTooHigh);
    }
    const n = this.height + 1;
    const v = this.validate(req.proposal.data, n, false);
    if (v.code !== S.Success) return answer(v.code === S.NoneProposal ? S.NoForkTree : v.code);
    this.append(
      { height: n, hash: blockHash(v.header!), header: v.header!, data: req.proposal.data, proof: req.proof },
      "commit",
    );
    this.bump(n, "newCommits");
    return answer(S.Success);
  }

  /**
   * Decodes a proposal for height `n`. Commit only checks what the real CommitBlock does (decodable,
   * height, prevhash); `full` adds CheckProposal's content checks.
   */
  private validate(data: Uint8Array, n: number, full: boolean): { code: number; header?: BlockHeader } {
    let inner;
    try {
      inner = fromBinary(ProposalInnerSchema, data);
    } catch {
      return { code: S.DecodeError };
    }
    const block = inner.proposal;
    if (!block) return { code: S.NoneProposal };
    const header = block.header;
    if (!header) return { code: S.NoneBlockHeader };
    if (!block.body) return { code: S.NoneBlockBody };
    const head = this.head;
    if (header.height !== BigInt(n) || !bytesEqual(header.prevhash, head.hash)) {
      return { code: S.ProposalCheckError };
    }
    if (full) {
      const ts = Number(header.timestamp);
      const ok =
        bytesEqual(inner.preStateRoot, stateRootAfter(head)) &&
        head.config.validators.some((v) => bytesEqual(v, header.proposer)) &&
        ts >= Number(head.header.timestamp) &&
        ts <= this.wallClock() + head.config.blockInterval * 1000 &&
        bytesEqual(header.transactionsRoot, txRoot(block.body.txHashes));
      if (!ok) return { code: S.ProposalCheckError };
    }
    return { code: S.Success, header };
  }

  private buildProposal(n: number): Uint8Array {
    const prev = this.head;
    const txHashes = Array.from({ length: this.opts.txsPerProposal ?? 0 }, (_, i) =>
      sha256("tx", this.address, `${n}:${i}`),
    );
    const header = create(BlockHeaderSchema, {
      prevhash: prev.hash,
      timestamp: BigInt(Math.max(this.wallClock(), Number(prev.header.timestamp))),
      height: BigInt(n),
      transactionsRoot: txRoot(txHashes),
      proposer: this.address,
    });
    const block = create(CompactBlockSchema, { version: 0, header, body: { txHashes } });
    return toBinary(ProposalInnerSchema, create(ProposalInnerSchema, { preStateRoot: stateRootAfter(prev), proposal: block }));
  }

  /** Appends block h+1. Committed blocks take due admin changes; synced ones carry their config. */
  private append(b: Omit<Block, "config" | "source" | "appendedAt"> & { config?: SystemConfig }, source: "commit" | "sync"): void {
    let config = b.config ?? this.config;
    const due = this.pending.filter((c) => c.atHeight <= b.height);
    this.pending = this.pending.filter((c) => c.atHeight > b.height);
    if (due.length > 0) this.changesAt.set(b.height, due);
    if (source === "commit") {
      for (const c of due) {
        config = {
          blockInterval: c.blockInterval ?? config.blockInterval,
          validators: c.validators ? [...c.validators] : config.validators,
        };
      }
    }
    this.blocks.push({ ...b, config, source, appendedAt: this.clock.now() });
    this.ownProposal = undefined;
    this.candidate = 0;
    this.log.info("block committed", { height: b.height, source, hash: toHex(b.hash).slice(0, 16) });
  }

  private bump(height: number, key: keyof HeightStats): void {
    const s = this.stats.get(height) ?? { newCommits: 0, repeatCommits: 0, failedCommits: 0 };
    s[key]++;
    this.stats.set(height, s);
  }

  private configMessage(height: bigint, config: SystemConfig = this.config): ConsensusConfiguration {
    return create(ConsensusConfigurationSchema, {
      height,
      blockInterval: config.blockInterval,
      validators: [...config.validators],
    });
  }

  // ---- sync ----

  /** The chain-status rule of HSM: sync when a peer is 2+ ahead, or 1 ahead with no candidate here. */
  private maybeSync(): void {
    const peer = this.opts.group?.highestPeer(this, new Set());
    if (!peer) return;
    const h = this.height;
    if (peer.height > h + 1 || (peer.height > h && this.candidate !== h + 1)) {
      this.requestSync(`peer ${peer.name} is at ${peer.height}`);
    }
  }

  /** Its height has not grown for a growth check interval: a candidate must not keep it from syncing. */
  private dropCandidateIfBehind(): void {
    const peer = this.opts.group?.highestPeer(this, new Set());
    if (!peer || peer.height <= this.height || this.candidate === 0) return;
    this.log.info("height stuck while a peer is higher: candidate dropped", { height: this.height, peer: peer.name });
    this.ownProposal = undefined;
    this.candidate = 0;
  }

  private requestSync(reason: string): void {
    if (!this.life || this.syncingNow) return;
    this.ownProposal = undefined;
    this.candidate = 0;
    void this.sync(reason, this.life.signal);
  }

  private async sync(reason: string, signal: AbortSignal): Promise<void> {
    this.syncingNow = true;
    this.log.info("sync started", { reason, height: this.height });
    const distrusted = new Set<ControllerEmulator>();
    try {
      for (;;) {
        const peer = this.opts.group?.highestPeer(this, distrusted);
        if (!peer || peer.height <= this.height) break;
        const outcome = await this.syncFrom(peer, signal);
        if (outcome === "abort") break;
        if (outcome === "distrust") distrusted.add(peer);
      }
    } finally {
      if (!signal.aborted) {
        this.syncingNow = false;
        this.log.info("sync finished", { height: this.height });
      }
    }
  }

  /** Copies blocks from `peer` until level with it; each goes through consensus' CheckBlock and Reconfigure. */
  private async syncFrom(peer: ControllerEmulator, signal: AbortSignal): Promise<"done" | "abort" | "distrust"> {
    while (this.height < peer.height) {
      const n = this.height + 1;
      const b = peer.block(n);
      if (!b) return "done";
      if (!bytesEqual(b.header.prevhash, this.head.hash)) {
        this.log.warn("peer block does not extend our chain", { peer: peer.name, height: n });
        return "distrust";
      }
      const pwp = create(ProposalWithProofSchema, {
        proposal: { height: BigInt(n), data: b.data },
        proof: b.proof,
      });
      this.checkBlockCalls.push(n);
      const checked = await this.callConsensus("CheckBlock", () => this.edge.consensus.checkBlock(pwp, signal));
      if (signal.aborted || checked === undefined) return "abort";
      if (checked !== S.Success) {
        // Codes that are multiples of 100 mean "not ready": retry later, the peer is not to blame.
        return checked % 100 === 0 ? "abort" : "distrust";
      }
      if (this.height >= n) continue; // consensus committed it meanwhile
      this.append({ height: n, hash: b.hash, header: b.header, data: b.data, proof: b.proof, config: b.config }, "sync");
      const cfg = this.configMessage(BigInt(n), b.config);
      this.reconfigureCalls.push(cfg);
      const code = await this.callConsensus("Reconfigure", () => this.edge.consensus.reconfigure(cfg, signal));
      if (code !== S.Success) return "abort"; // HSM leaves its sync loop when Reconfigure fails
    }
    return "done";
  }

  /** One call to consensus; its status code, or undefined when the call itself failed. */
  private async callConsensus(what: string, call: () => Promise<StatusCode>): Promise<number | undefined> {
    try {
      const r = await call();
      if (r.code !== S.Success) this.log.warn(`${what} answered ${r.code}`);
      return r.code;
    } catch (e) {
      if (!this.life?.signal.aborted) this.log.warn(`${what} failed`, { error: ConnectError.from(e).message });
      return undefined;
    }
  }
}
