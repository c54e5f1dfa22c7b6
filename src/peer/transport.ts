// Raft messages to and from peers through the local network service, and the probe protocol that
// keeps the mailbook (peer id -> origin) filled. Sending never blocks the caller: calls go through a
// bounded queue with bounded concurrency, and their results are only logged (Raft retransmits
// whatever is lost).
//
// Inbound traffic is admitted per origin by token buckets: an origin bound in the mailbook to a
// member gets `peerMsgsPerSecond`, any other origin a twentieth of it, and all of those together a
// quarter. The excess is dropped and reported (`TransportEvents.dropped`; answering
// RESOURCE_EXHAUSTED instead would make the network service retry each message up to ten times).
// Answers we owe to inbound traffic (probe-resp, refresh) are rate-limited per origin, so inbound
// traffic cannot fill the outbound queue.
import type { ConsolaInstance } from "consola";
import { type Message as RaftMessage } from "../raft/index.ts";
import type { NetworkMsg } from "../../gen/network_pb.ts";
import {
  type InboundEnvelope,
  probeEnvelope,
  probeRespEnvelope,
  raftEnvelope,
  refreshEnvelope,
} from "./envelope.ts";
import { type LearnResult, Mailbook, type PeerDirectory } from "./mailbook.ts";
import { peerIdHex } from "./peer-id.ts";
import { KeyedBuckets, LogLimiter, TokenBucket } from "./rate.ts";
import { errorMessage } from "../util/errors.ts";

/** The two network service calls the transport needs; a Connect NetworkService client fits. */
export interface NetworkOutlet {
  sendMsg(msg: NetworkMsg): Promise<unknown>;
  broadcast(msg: NetworkMsg): Promise<unknown>;
}

/**
 * What became of an outbound raft message. Anything but "queued" means the message is gone, and
 * the node should tell Raft the peer is unreachable.
 */
export type SendOutcome = "queued" | "no-route" | "overloaded" | "closed";

export type RaftHandler = (msg: RaftMessage, origin: bigint) => void;

/** Why the transport dropped an inbound message (a label of consensus_peer_msgs_dropped_total). */
export type TransportDropReason = "rate_limited" | "misdirected" | "origin_mismatch";

export interface TransportEvents {
  dropped?(reason: TransportDropReason): void;
  mailbook?(result: "rebound" | "refused"): void;
  /** A network service call failed (its message is lost; Raft resends what it needs). */
  networkFailed?(call: "sendMsg" | "broadcast"): void;
  /** The network service answers again after failed calls (it may have restarted). */
  networkRecovered?(): void;
}

/** Defaults of the inbound limits; see the file comment. */
export const INBOUND_DEFAULTS = { peerMsgsPerSecond: 2000, origins: 1024 } as const;
/** Probe-resp and refresh answers per second to one origin (one answer is all a peer needs). */
const ANSWERS_PER_SECOND = 4;

export interface PeerTransportOptions {
  readonly selfId: bigint;
  readonly network: NetworkOutlet;
  readonly log: ConsolaInstance;
  /** Network calls in flight at once. */
  readonly maxInFlight?: number;
  /** Calls waiting for a slot; beyond this, new messages are dropped. */
  readonly maxQueued?: number;
  /** At most one probe broadcast per this interval for mailbook misses and refreshes. */
  readonly probeIntervalMs?: number;
  /** Inbound messages per second admitted from one origin bound to a member. */
  readonly peerMsgsPerSecond?: number;
  /** Silence of a bound origin after which another origin may take its id (see mailbook.ts). */
  readonly rebindQuietMs?: number;
  readonly events?: TransportEvents;
  /** Monotonic clock in ms (tests inject one). */
  readonly now?: () => number;
}

interface Outgoing {
  readonly call: "sendMsg" | "broadcast";
  readonly msg: NetworkMsg;
}

export class PeerTransport {
  readonly mailbook: Mailbook;
  readonly maxQueued: number;

  readonly #selfId: bigint;
  readonly #network: NetworkOutlet;
  readonly #log: ConsolaInstance;
  readonly #maxInFlight: number;
  readonly #probeIntervalMs: number;
  readonly #now: () => number;
  readonly #events: TransportEvents;
  readonly #warn: LogLimiter;
  readonly #trusted: KeyedBuckets<bigint>;
  readonly #untrusted: KeyedBuckets<bigint>;
  readonly #untrustedTotal: TokenBucket;
  readonly #answers: KeyedBuckets<bigint>;
  /** Calls waiting from #head on; slots before #head are emptied as they are taken. */
  #queue: (Outgoing | undefined)[] = [];
  #head = 0;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];
  #lastProbeAt = -Infinity;
  #raftHandler: RaftHandler | undefined;
  #networkFailing = false;
  #closed = false;

  constructor(opts: PeerTransportOptions) {
    this.#selfId = opts.selfId;
    this.#network = opts.network;
    this.#log = opts.log;
    this.#maxInFlight = opts.maxInFlight ?? 32;
    this.maxQueued = opts.maxQueued ?? 4096;
    this.#probeIntervalMs = opts.probeIntervalMs ?? 500;
    this.#now = opts.now ?? (() => performance.now());
    this.#events = opts.events ?? {};
    this.#warn = new LogLimiter(this.#log, this.#now);
    this.mailbook = new Mailbook({ quietMs: opts.rebindQuietMs });
    const rate = opts.peerMsgsPerSecond ?? INBOUND_DEFAULTS.peerMsgsPerSecond;
    const origins = INBOUND_DEFAULTS.origins;
    this.#trusted = new KeyedBuckets(rate, rate, origins);
    const perStranger = Math.max(1, Math.floor(rate / 20));
    this.#untrusted = new KeyedBuckets(perStranger, perStranger, origins);
    const strangers = Math.max(1, Math.floor(rate / 4));
    this.#untrustedTotal = new TokenBucket(strangers, strangers, this.#now());
    this.#answers = new KeyedBuckets(ANSWERS_PER_SECOND, ANSWERS_PER_SECOND, origins);
  }

  /** Who counts as a member and which origins validators have (set once the node can tell). */
  setDirectory(directory: PeerDirectory): void {
    this.mailbook.directory = directory;
  }

  /** Network calls queued, not yet started. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Origins the admission and answer limits currently track, and their bound. */
  get trackedOrigins(): { readonly size: number; readonly capacity: number } {
    const maps = [this.#trusted, this.#untrusted, this.#answers];
    return { size: maps.reduce((n, m) => n + m.size, 0), capacity: maps.reduce((n, m) => n + m.capacity, 0) };
  }

  /** Queues a raft message for `msg.to`. Never blocks, never throws for network trouble. */
  send(msg: RaftMessage): SendOutcome {
    if (this.#closed) return "closed";
    const origin = this.mailbook.origin(msg.to);
    if (origin === undefined) {
      this.#log.debug("drop msg and probe", { to: peerIdHex(msg.to), type: msg.msgType });
      this.#maybeProbe();
      return "no-route";
    }
    return this.#enqueue("sendMsg", raftEnvelope(origin, msg)) ? "queued" : "overloaded";
  }

  /** Whether a raft message to `id` would go out (its origin is known). */
  hasRoute(id: bigint): boolean {
    return this.mailbook.origin(id) !== undefined;
  }

  /** Sets the consumer of inbound raft messages addressed to us (one consumer; replaces any earlier). */
  onRaft(handler: RaftHandler): void {
    this.#raftHandler = handler;
  }

  /** Broadcasts a probe now, regardless of the rate limit (start-up, after registration). */
  probe(): void {
    if (this.#closed) return;
    this.#lastProbeAt = this.#now();
    this.#enqueue("broadcast", probeEnvelope(this.#selfId));
  }

  /** Handles a validated inbound envelope (see parseEnvelope). */
  handleInbound(env: InboundEnvelope): void {
    if (this.#closed) return;
    const now = this.#now();
    if (!this.#admit(env, now)) {
      this.#events.dropped?.("rate_limited");
      return;
    }
    switch (env.type) {
      case "raft": {
        if (env.msg.to !== this.#selfId) {
          // The network delivered someone else's message here: the sender's mailbook is stale. The
          // message is not learned from either: it proves nothing about who sits where.
          this.#events.dropped?.("misdirected");
          this.#log.debug("misdirected raft msg, refreshing sender", { to: peerIdHex(env.msg.to), origin: env.origin });
          this.#answer(env.origin, now, () => refreshEnvelope(env.origin, env.msg.to));
          return;
        }
        const learned = this.#learn(env.msg.from, env.origin, now);
        if (learned?.kind === "refused" && learned.reason === "address") {
          // The sender's id belongs to a validator that the network places elsewhere: forged.
          this.#events.dropped?.("origin_mismatch");
          return;
        }
        this.#raftHandler?.(env.msg, env.origin);
        return;
      }
      case "probe":
        if (env.id === this.#selfId) return; // our own broadcast echoed back by the network
        this.#learn(env.id, env.origin, now);
        this.#answer(env.origin, now, () => probeRespEnvelope(env.origin, this.#selfId));
        return;
      case "probe-resp":
        this.#learn(env.id, env.origin, now);
        return;
      case "refresh":
        // The node at `origin` is not `id`: stop sending there, and ask everyone again.
        if (this.mailbook.forget(env.id, env.origin)) {
          this.#log.info("mailbook entry dropped", { peer: peerIdHex(env.id), origin: env.origin });
        }
        this.#maybeProbe();
        return;
    }
  }

  /** Resolves once every queued network call has settled. */
  idle(): Promise<void> {
    if (this.#pending() === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops sending and drops what is still queued; calls in flight end by their own deadline. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    this.#settleIdle();
  }

  /** Origins bound to a member get the members' budget; everyone else shares a small one. */
  #admit(env: InboundEnvelope, now: number): boolean {
    const claimed = env.type === "raft" ? env.msg.from : env.type === "refresh" ? undefined : env.id;
    const trusted =
      claimed !== undefined && this.mailbook.origin(claimed) === env.origin && this.mailbook.directory.isMember(claimed);
    if (trusted) return this.#trusted.take(env.origin, now);
    return this.#untrusted.take(env.origin, now) && this.#untrustedTotal.take(now);
  }

  /** Queues an answer we owe `origin`, at most a few per second per origin. */
  #answer(origin: bigint, now: number, make: () => NetworkMsg): void {
    if (this.#answers.take(origin, now)) this.#enqueue("sendMsg", make());
  }

  #learn(id: bigint, origin: bigint, now: number): LearnResult | undefined {
    if (id === 0n || id === this.#selfId) return undefined;
    const addressMode = this.mailbook.addressMode;
    const r = this.mailbook.learn(id, origin, now);
    if (!addressMode && this.mailbook.addressMode) {
      this.#log.info("the network derives origins from validator addresses: validator ids are bound to them from now on", { peer: peerIdHex(id), origin });
    }
    switch (r.kind) {
      case "new":
        this.#log.debug("mailbook updated", { peer: peerIdHex(id), origin });
        break;
      case "rebound":
        this.#events.mailbook?.("rebound");
        this.#log.info("mailbook re-bound", { peer: peerIdHex(id), origin, previous: r.previous, reason: r.reason });
        break;
      case "refused":
        this.#events.mailbook?.("refused");
        this.#warn.warn("mailbook re-binding refused", { peer: peerIdHex(id), origin, bound: r.current, reason: r.reason });
        break;
    }
    return r;
  }

  #maybeProbe(): void {
    if (this.#now() - this.#lastProbeAt >= this.#probeIntervalMs) this.probe();
  }

  #pending(): number {
    return this.#queue.length - this.#head + this.#inFlight;
  }

  #enqueue(call: Outgoing["call"], msg: NetworkMsg): boolean {
    if (this.#queue.length - this.#head >= this.maxQueued) return false;
    this.#queue.push({ call, msg });
    this.#pump();
    return true;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!;
      // Let go of the message once it is taken: a sent message must not stay reachable from here
      // (each holds its Raft payload, up to max_message_bytes).
      this.#queue[this.#head++] = undefined;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#inFlight++;
      this.#dispatch(item).finally(() => {
        this.#inFlight--;
        this.#pump();
        this.#settleIdle();
      });
    }
  }

  async #dispatch(item: Outgoing): Promise<void> {
    try {
      await (item.call === "sendMsg" ? this.#network.sendMsg(item.msg) : this.#network.broadcast(item.msg));
      if (this.#networkFailing) {
        this.#networkFailing = false;
        this.#log.info("network service reachable again");
        this.#events.networkRecovered?.();
      }
    } catch (e) {
      this.#events.networkFailed?.(item.call);
      const fields = { call: item.call, type: item.msg.type, error: errorMessage(e) };
      // One warning per outage, not one per message: heartbeats alone would flood the log.
      if (this.#networkFailing) {
        this.#log.debug("network service call failed", fields);
      } else {
        this.#networkFailing = true;
        this.#log.warn("network service call failed", fields);
      }
    }
  }

  #settleIdle(): void {
    if (this.#pending() !== 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
