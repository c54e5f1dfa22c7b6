// Raft messages to and from peers through the local network service, and the probe protocol that
// keeps the mailbook (peer id -> origin) filled. Sending never blocks the caller: calls go through a
// bounded queue with bounded concurrency, and their results are only counted and logged (Raft
// retransmits whatever is lost).
import type { ConsolaInstance } from "consola";
import type { Message as RaftMessage } from "../../gen/eraftpb_pb.ts";
import type { NetworkMsg } from "../../gen/network_pb.ts";
import {
  type InboundEnvelope,
  probeEnvelope,
  probeRespEnvelope,
  raftEnvelope,
  refreshEnvelope,
} from "./envelope.ts";
import { Mailbook } from "./mailbook.ts";
import { peerIdHex } from "./peer-id.ts";

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
  /** Monotonic clock in ms (tests inject one). */
  readonly now?: () => number;
}

export interface PeerTransportStats {
  raftQueued: number;
  raftNoRoute: number;
  raftOverloaded: number;
  raftReceived: number;
  raftMisdirected: number;
  probesSent: number;
  probesSuppressed: number;
  networkFailures: number;
}

interface Outgoing {
  readonly call: "sendMsg" | "broadcast";
  readonly msg: NetworkMsg;
}

export class PeerTransport {
  readonly selfId: bigint;
  readonly mailbook = new Mailbook();
  readonly stats: PeerTransportStats = {
    raftQueued: 0,
    raftNoRoute: 0,
    raftOverloaded: 0,
    raftReceived: 0,
    raftMisdirected: 0,
    probesSent: 0,
    probesSuppressed: 0,
    networkFailures: 0,
  };

  readonly #network: NetworkOutlet;
  readonly #log: ConsolaInstance;
  readonly #maxInFlight: number;
  readonly #maxQueued: number;
  readonly #probeIntervalMs: number;
  readonly #now: () => number;
  #queue: Outgoing[] = [];
  #head = 0;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];
  #lastProbeAt = -Infinity;
  #raftHandler: RaftHandler | undefined;
  #networkFailing = false;
  #closed = false;

  constructor(opts: PeerTransportOptions) {
    this.selfId = opts.selfId;
    this.#network = opts.network;
    this.#log = opts.log;
    this.#maxInFlight = opts.maxInFlight ?? 32;
    this.#maxQueued = opts.maxQueued ?? 4096;
    this.#probeIntervalMs = opts.probeIntervalMs ?? 500;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Queues a raft message for `msg.to`. Never blocks, never throws for network trouble. */
  send(msg: RaftMessage): SendOutcome {
    if (this.#closed) return "closed";
    const origin = this.mailbook.origin(msg.to);
    if (origin === undefined) {
      this.stats.raftNoRoute++;
      this.#log.debug("drop msg and probe", { to: peerIdHex(msg.to), type: msg.msgType });
      this.#maybeProbe();
      return "no-route";
    }
    if (!this.#enqueue("sendMsg", raftEnvelope(origin, msg))) {
      this.stats.raftOverloaded++;
      return "overloaded";
    }
    this.stats.raftQueued++;
    return "queued";
  }

  /** Sets the consumer of inbound raft messages addressed to us (one consumer; replaces any earlier). */
  onRaft(handler: RaftHandler): void {
    this.#raftHandler = handler;
  }

  /** Broadcasts a probe now, regardless of the rate limit (start-up, after registration). */
  probe(): void {
    if (this.#closed) return;
    this.#lastProbeAt = this.#now();
    if (this.#enqueue("broadcast", probeEnvelope(this.selfId))) this.stats.probesSent++;
  }

  /** Handles a validated inbound envelope (see parseEnvelope). */
  handleInbound(env: InboundEnvelope): void {
    if (this.#closed) return;
    switch (env.type) {
      case "raft": {
        this.#learn(env.msg.from, env.origin);
        if (env.msg.to !== this.selfId) {
          // The network delivered someone else's message here: the sender's mailbook is stale.
          this.stats.raftMisdirected++;
          this.#log.debug("misdirected raft msg, refreshing sender", {
            to: peerIdHex(env.msg.to),
            origin: env.origin,
          });
          this.#enqueue("sendMsg", refreshEnvelope(env.origin, env.msg.to));
          return;
        }
        this.stats.raftReceived++;
        this.#raftHandler?.(env.msg, env.origin);
        return;
      }
      case "probe":
        if (env.id === this.selfId) return; // our own broadcast echoed back by the network
        this.#learn(env.id, env.origin);
        this.#enqueue("sendMsg", probeRespEnvelope(env.origin, this.selfId));
        return;
      case "probe-resp":
        this.#learn(env.id, env.origin);
        return;
      case "refresh":
        // The node at `origin` is not `id`: stop sending there, and ask everyone again.
        if (this.mailbook.forget(env.id, env.origin)) {
          this.#log.debug("mailbook entry dropped", { peer: peerIdHex(env.id), origin: env.origin });
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

  #learn(id: bigint, origin: bigint): void {
    if (id === 0n || id === this.selfId) return;
    const change = this.mailbook.learn(id, origin);
    if (change) {
      this.#log.debug("mailbook updated", { peer: peerIdHex(id), origin, previous: change.previous });
    }
  }

  #maybeProbe(): void {
    if (this.#now() - this.#lastProbeAt < this.#probeIntervalMs) {
      this.stats.probesSuppressed++;
      return;
    }
    this.probe();
  }

  #pending(): number {
    return this.#queue.length - this.#head + this.#inFlight;
  }

  #enqueue(call: Outgoing["call"], msg: NetworkMsg): boolean {
    if (this.#queue.length - this.#head >= this.#maxQueued) return false;
    this.#queue.push({ call, msg });
    this.#pump();
    return true;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#head < this.#queue.length) {
      const item = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
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
      }
    } catch (e) {
      this.stats.networkFailures++;
      const fields = { call: item.call, type: item.msg.type, error: e instanceof Error ? e.message : String(e) };
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
