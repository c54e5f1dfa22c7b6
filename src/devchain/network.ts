// Network emulator: plays network_zenoh for every node of a devchain (its behaviour: README.md
// here). One fabric holds all nodes; each node gets its own network.NetworkService endpoint. A
// message is delivered to the destination's consensus in its own task (so order is not kept), with
// `origin` rewritten to the sender, retried like cloud-common-rs' RetryClient and then dropped.
// Loss, delay, duplication and partitions are injected per link from one seeded RNG.
//
// The fabric runs on a Clock, and each endpoint reaches its consensus through a NetworkEdge: gRPC
// on loopback by default (grpc-edges.ts), simulated calls in the chain simulator.
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { ConsolaInstance } from "consola";
import { NetworkMsgSchema, NetworkStatusResponseSchema, type NetworkMsg } from "../../gen/network_pb.ts";
import { StatusCodeSchema, TotalNodeNetInfoSchema } from "../../gen/common_pb.ts";
import { type Cancel, type Clock, sleep, systemClock } from "../node/ports.ts";
import type { IncomingCall, Listener, NetworkEdge } from "./edges.ts";
import { isRetryable } from "./grpc.ts";
import { grpcNetworkEdge } from "./grpc-edges.ts";
import { originOf, toHex } from "./identity.ts";
import { silentLogger } from "./log.ts";
import { seededRng, type Rng } from "./rng.ts";
import { waitFor } from "./wait.ts";

/** Conditions of a link; probabilities in [0, 1], times in ms. */
export interface LinkFault {
  readonly loss?: number;
  readonly delayMs?: number;
  /** Each delivery's delay is `delayMs ± jitterMs` (uniform, never below 0): this reorders. */
  readonly jitterMs?: number;
  /** Probability that a message is delivered twice. */
  readonly duplicate?: number;
}

/** Delivery retry, as RetryClient: 100 ms doubling by 1.5 up to 5 s, at most 10 tries or 10 s. */
export interface DeliveryRetry {
  readonly maxAttempts: number;
  readonly initialMs: number;
  readonly maxMs: number;
  readonly maxElapsedMs: number;
}

export interface NetworkOptions {
  /** Source of every random decision; a seeded one by default. */
  readonly rng?: Rng;
  readonly seed?: number;
  readonly retry?: Partial<DeliveryRetry>;
  /** Deadline of each ProcessNetworkMsg call (tonic has none; we do not want hung tasks piling up); gRPC edges only. */
  readonly callTimeoutMs?: number;
  /**
   * How messages find a node's consensus. "static" (network_zenoh): the configured route, whatever
   * was registered. "registered" (the older networks): only after RegisterNetworkMsgHandler, and a
   * restarted endpoint has forgotten every registration.
   */
  readonly routing?: "static" | "registered";
  /** Timers and elapsed time; the system clock by default. */
  readonly clock?: Clock;
  readonly log?: ConsolaInstance;
}

export interface NetworkNodeOptions {
  readonly name?: string;
  readonly address: Uint8Array;
  /** How it reaches its consensus and serves it; gRPC on loopback (`consensusPort`, `port`) by default. */
  readonly edge?: NetworkEdge;
  /** Static route of module "consensus" (like `[[network_zenoh.modules]]`); gRPC edge only. */
  readonly consensusPort?: number;
  /** Own NetworkService port; a free one when absent; gRPC edge only. */
  readonly port?: number;
}

export interface MessageCounters {
  /** Copies handed to the fabric (a broadcast to 3 peers counts 3). */
  sent: number;
  /** Extra copies made by duplication. */
  duplicated: number;
  /** Copies the destination's consensus accepted at the gRPC level (whatever its status code). */
  delivered: number;
  dropped: number;
}

export type DropReason = "noRoute" | "self" | "unknownModule" | "loss" | "partition" | "stopped" | "unregistered" | "failed";

const DEFAULT_RETRY: DeliveryRetry = { maxAttempts: 10, initialMs: 100, maxMs: 5000, maxElapsedMs: 10_000 };

export class NetworkEndpoint {
  readonly index: number;
  readonly name: string;
  readonly address: Uint8Array;
  readonly origin: bigint;
  /** The configured consensus port (gRPC edge), if any. */
  readonly consensusPort: number | undefined;
  /** What RegisterNetworkMsgHandler was told (with static routing recorded, never used, as in zenoh). */
  readonly registrations: { module: string; hostname: string; port: string }[] = [];
  readonly clientNames = new Set<string>();
  readonly edge: NetworkEdge;
  private server: Listener | undefined;
  /** Registered modules since the last start (what an older network routes by). */
  private readonly routes = new Set<string>();

  constructor(
    private readonly fabric: NetworkFabric,
    index: number,
    opts: NetworkNodeOptions,
    callTimeoutMs: number,
  ) {
    this.index = index;
    this.name = opts.name ?? `node${index}`;
    this.address = opts.address;
    this.origin = originOf(opts.address);
    this.consensusPort = opts.consensusPort;
    if (opts.edge) this.edge = opts.edge;
    else if (opts.consensusPort !== undefined) this.edge = grpcNetworkEdge({ consensusPort: opts.consensusPort, port: opts.port, callTimeoutMs });
    else throw new Error(`${this.name}: a network endpoint needs an edge or a consensusPort`);
  }

  get port(): number {
    const port = this.edge.port;
    if (port === undefined) throw new Error(`${this.name} has no network port before start()`);
    return port;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Whether a message for `module` has a route here (see NetworkOptions.routing). */
  hasRoute(module: string): boolean {
    return this.fabric.routing === "static" || this.routes.has(module);
  }

  /** Serves NetworkService (again, on the same port after the first start). */
  async start(): Promise<void> {
    if (this.server) return;
    const fabric = this.fabric;
    const ok = () => create(StatusCodeSchema, { code: 0 });
    const server = await this.edge.serve({
      sendMsg: (msg, call) => {
        this.noteCaller(call);
        fabric.unicast(this, msg);
        return ok();
      },
      broadcast: (msg, call) => {
        this.noteCaller(call);
        fabric.broadcast(this, msg);
        return ok();
      },
      registerNetworkMsgHandler: (info, call) => {
        this.noteCaller(call);
        this.registrations.push({ module: info.moduleName, hostname: info.hostname, port: info.port });
        this.routes.add(info.moduleName);
        return ok();
      },
      getNetworkStatus: () => create(NetworkStatusResponseSchema, { peerCount: BigInt(fabric.peersOf(this).length) }),
      addNode: () => ok(),
      getPeersNetInfo: () =>
        create(TotalNodeNetInfoSchema, {
          nodes: fabric.peersOf(this).map((p) => ({ multiAddress: `/dns4/localhost/tcp/${p.edge.port ?? 0}`, origin: p.origin })),
        }),
    });
    this.server = server;
  }

  /**
   * The network service of this node goes away: its consensus cannot send, nothing reaches it. An
   * older network keeps registrations in memory only: they are gone.
   */
  stop(): void {
    this.server?.close();
    this.server = undefined;
    this.routes.clear();
  }

  private noteCaller(call: IncomingCall): void {
    if (call.clientName) this.clientNames.add(call.clientName);
  }
}

export class NetworkFabric {
  readonly nodes: NetworkEndpoint[] = [];
  private readonly byOrigin = new Map<bigint, NetworkEndpoint>();
  private readonly rng: Rng;
  /** Backoff jitter has its own stream, so retries (timing-dependent) do not shift fault decisions. */
  private readonly backoffRng: Rng;
  private readonly retry: DeliveryRetry;
  private readonly callTimeoutMs: number;
  private readonly log: ConsolaInstance;
  private readonly clock: Clock;
  readonly routing: "static" | "registered";
  private readonly closing = new AbortController();
  private readonly timers = new Set<Cancel>();
  private linkRules: { from?: number; to?: number; fault: LinkFault }[] = [];
  private groupOf = new Map<number, number>();
  private blocked = new Set<string>();
  private readonly counters = new Map<string, MessageCounters>();
  readonly drops: Record<DropReason, number> = {
    noRoute: 0,
    self: 0,
    unknownModule: 0,
    loss: 0,
    partition: 0,
    stopped: 0,
    unregistered: 0,
    failed: 0,
  };
  private inFlightCount = 0;
  /** A test's message filter: what it returns true for is lost (counted as loss), e.g. one Raft message type. */
  dropWhen: ((msg: NetworkMsg, from: number, to: number) => boolean) | undefined;

  constructor(opts: NetworkOptions = {}) {
    this.rng = opts.rng ?? seededRng(opts.seed ?? 1);
    this.backoffRng = seededRng(Math.floor(this.rng() * 2 ** 32));
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.clock = opts.clock ?? systemClock;
    this.routing = opts.routing ?? "static";
    this.log = (opts.log ?? silentLogger()).withTag("network");
  }

  /** Adds a node and starts its endpoint. */
  async addNode(opts: NetworkNodeOptions): Promise<NetworkEndpoint> {
    const ep = new NetworkEndpoint(this, this.nodes.length, opts, this.callTimeoutMs);
    if (this.byOrigin.has(ep.origin)) {
      throw new Error(`two nodes share the origin ${ep.origin} (address ${toHex(opts.address)}): zenoh could not tell them apart`);
    }
    this.nodes.push(ep);
    this.byOrigin.set(ep.origin, ep);
    await ep.start();
    return ep;
  }

  // ---- faults ----

  /** Sets the conditions of the links from `from` to `to` (either may be omitted for "any"); later rules win. */
  setLinkFault(fault: LinkFault, link: { from?: number; to?: number } = {}): void {
    for (const p of [fault.loss, fault.duplicate]) {
      if (p !== undefined && !(p >= 0 && p <= 1)) throw new Error(`a probability must be within [0, 1], got ${p}`);
    }
    for (const t of [fault.delayMs, fault.jitterMs]) {
      if (t !== undefined && !(t >= 0)) throw new Error(`a delay must be ≥ 0 ms, got ${t}`);
    }
    this.linkRules.push({ ...link, fault });
  }

  clearLinkFaults(): void {
    this.linkRules = [];
  }

  /** Symmetric partition: messages pass only inside a group; unlisted nodes form one more group. */
  partition(...groups: number[][]): void {
    this.groupOf = new Map();
    groups.forEach((g, i) => g.forEach((n) => this.groupOf.set(this.nodeAt(n).index, i)));
  }

  /** One-way block: nothing from `from` reaches `to`. */
  block(from: number, to: number): void {
    this.blocked.add(`${this.nodeAt(from).index}>${this.nodeAt(to).index}`);
  }

  /** Removes partitions and blocks (link conditions stay). */
  heal(): void {
    this.groupOf = new Map();
    this.blocked = new Set();
  }

  canReach(from: number, to: number): boolean {
    const group = (n: number) => this.groupOf.get(n) ?? -1;
    return group(from) === group(to) && !this.blocked.has(`${from}>${to}`);
  }

  // ---- observation ----

  /** Counters per message type (`NetworkMsg.type`). */
  stats(): Record<string, MessageCounters> {
    return Object.fromEntries([...this.counters].map(([t, c]) => [t, { ...c }]));
  }

  /** Waits until no delivery is pending (scheduled, in flight or retrying). */
  async waitIdle(timeoutMs: number): Promise<void> {
    await waitFor(() => this.inFlightCount === 0, timeoutMs, "network deliveries to settle");
  }

  peersOf(ep: NetworkEndpoint): NetworkEndpoint[] {
    return this.nodes.filter(
      (p) => p !== ep && p.running && this.canReach(ep.index, p.index) && this.canReach(p.index, ep.index),
    );
  }

  async close(): Promise<void> {
    this.closing.abort(new Error("network closed"));
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    for (const ep of this.nodes) ep.stop();
  }

  // ---- routing, called by the endpoints ----

  unicast(from: NetworkEndpoint, msg: NetworkMsg): void {
    const to = this.byOrigin.get(msg.origin);
    if (!to) {
      this.count(msg.type).sent++;
      return this.drop(msg.type, "noRoute");
    }
    this.dispatch(from, to, msg);
  }

  broadcast(from: NetworkEndpoint, msg: NetworkMsg): void {
    for (const to of this.nodes) if (to !== from) this.dispatch(from, to, msg);
  }

  private dispatch(from: NetworkEndpoint, to: NetworkEndpoint, msg: NetworkMsg): void {
    const counters = this.count(msg.type);
    counters.sent++;
    // zenoh receivers drop what carries their own origin, so a send to oneself never arrives.
    if (to === from) return this.drop(msg.type, "self");
    if (msg.module !== "consensus") return this.drop(msg.type, "unknownModule");
    if (!this.canReach(from.index, to.index)) return this.drop(msg.type, "partition");
    const fault = this.linkFault(from.index, to.index);
    if (fault.loss && this.rng() < fault.loss) return this.drop(msg.type, "loss");
    if (this.dropWhen?.(msg, from.index, to.index)) return this.drop(msg.type, "loss");
    let copies = 1;
    if (fault.duplicate && this.rng() < fault.duplicate) {
      copies = 2;
      counters.duplicated++;
    }
    const out = create(NetworkMsgSchema, { module: msg.module, type: msg.type, origin: from.origin, msg: msg.msg });
    for (let i = 0; i < copies; i++) {
      const jitter = fault.jitterMs ? (2 * this.rng() - 1) * fault.jitterMs : 0;
      const delay = Math.max(0, (fault.delayMs ?? 0) + jitter);
      this.inFlightCount++;
      // A task per message, even with no delay: SendMsg answers before anything is delivered.
      // (A timer of 0 ms waits about a millisecond on Bun; a zero delay takes the next turn instead.)
      const go = () => void this.deliver(from, to, out).finally(() => this.inFlightCount--);
      if (delay === 0 && !this.closing.signal.aborted) {
        this.clock.defer(go);
      } else {
        const cancel = this.clock.after(delay, () => {
          this.timers.delete(cancel);
          go();
        });
        this.timers.add(cancel);
      }
    }
  }

  private async deliver(from: NetworkEndpoint, to: NetworkEndpoint, msg: NetworkMsg): Promise<void> {
    // A partition raised while the message was on its way cuts it too.
    if (!this.canReach(from.index, to.index)) return this.drop(msg.type, "partition");
    if (!to.running) return this.drop(msg.type, "stopped");
    if (!to.hasRoute(msg.module)) return this.drop(msg.type, "unregistered");
    const signal = this.closing.signal;
    const started = this.clock.now();
    let wait = this.retry.initialMs;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await to.edge.deliver(msg, signal);
        this.count(msg.type).delivered++;
        return;
      } catch (e) {
        const pause = wait * (0.8 + 0.4 * this.backoffRng());
        const giveUp =
          !isRetryable(e) || attempt >= this.retry.maxAttempts || this.clock.now() - started + pause > this.retry.maxElapsedMs;
        if (giveUp || signal.aborted) {
          if (!signal.aborted) {
            this.log.warn("delivery failed, message dropped", {
              type: msg.type,
              to: to.name,
              attempts: attempt,
              error: ConnectError.from(e).message,
            });
          }
          return this.drop(msg.type, "failed");
        }
        try {
          await sleep(this.clock, pause, signal);
        } catch {
          break;
        }
        wait = Math.min(wait * 1.5, this.retry.maxMs);
      }
    }
    this.drop(msg.type, "failed");
  }

  private linkFault(from: number, to: number): LinkFault {
    let fault: LinkFault = {};
    for (const r of this.linkRules) {
      if ((r.from === undefined || r.from === from) && (r.to === undefined || r.to === to)) fault = r.fault;
    }
    return fault;
  }

  private nodeAt(i: number): NetworkEndpoint {
    const ep = this.nodes[i];
    if (!ep) throw new Error(`no node ${i} in a network of ${this.nodes.length}`);
    return ep;
  }

  private count(type: string): MessageCounters {
    let c = this.counters.get(type);
    if (!c) this.counters.set(type, (c = { sent: 0, duplicated: 0, delivered: 0, dropped: 0 }));
    return c;
  }

  private drop(type: string, reason: DropReason): void {
    this.count(type).dropped++;
    this.drops[reason]++;
  }
}
