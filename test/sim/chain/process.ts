// One node of the simulated chain (a Slot: its address, data dir, controller, network service and
// the ports they serve on), and one incarnation of its consensus process: the real ConsensusNode on
// a Scope of the simulated clock, the real SqliteStorage in the node's tmpfs dir, and simulated
// gRPC calls to the controller and the network service. What the production server does with
// incoming calls (service.ts, rpc/server.ts) is mirrored by `consensusHandlers`.
import { clone, create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConsolaInstance } from "consola";
import {
  type ConsensusConfiguration,
  ConsensusConfigurationResponseSchema,
  ProposalResponseSchema,
  type ProposalWithProof,
  ProposalWithProofSchema,
  ProposalSchema,
  type StatusCode,
  StatusCodeSchema,
} from "../../../gen/common_pb.ts";
import { type NetworkMsg, NetworkMsgSchema, RegisterInfoSchema } from "../../../gen/network_pb.ts";
import { StatusCodeEnum } from "../../../gen/status_code_pb.ts";
import { STOP_TIMEOUT_MS } from "../../../src/cli/run.ts";
import type { Config } from "../../../src/config/types.ts";
import type { ControllerEmulator } from "../../../src/devchain/controller.ts";
import type { ControllerService, NetworkServiceHandlers } from "../../../src/devchain/edges.ts";
import type { NetworkEndpoint } from "../../../src/devchain/network.ts";
import { PING_HEIGHT, tryDecodeChainConfig } from "../../../src/node/chain-config.ts";
import type { ControllerClient } from "../../../src/node/controller.ts";
import { ConsensusNode } from "../../../src/node/node.ts";
import type { Random } from "../../../src/node/ports.ts";
import type { NodeTestBug } from "../../../src/node/test-bugs.ts";
import type { RaftTestBug } from "../../../src/raft/config.ts";
import { HAND_OFF_MS, stopInOrder } from "../../../src/service/stop.ts";
import type { Message } from "../../../src/raft/types.ts";
import { EnvelopeError, parseEnvelope } from "../../../src/peer/envelope.ts";
import type { NetworkOutlet } from "../../../src/peer/transport.ts";
import { SqliteStorage } from "../../../src/storage/sqlite.ts";
import type { RegistrationTarget } from "../../../src/node/registration.ts";
import type { SimClock } from "../../support/sim-clock.ts";
import type { ChainChecker } from "./checker.ts";
import { LOOPBACK, Link, Scope, SimPort, simCall } from "./rpc.ts";
import { WatchedStorage } from "./storage.ts";

/** consensus.ConsensusService and NetworkMsgHandlerService, as the production server answers them. */
export interface ConsensusHandlers {
  reconfigure(cfg: ConsensusConfiguration): StatusCode;
  checkBlock(pwp: ProposalWithProof): StatusCode;
  processNetworkMsg(msg: NetworkMsg): StatusCode;
}

/** One node of the chain: what outlives its consensus processes. */
export class Slot {
  readonly controllerPort: SimPort<ControllerService>;
  readonly networkPort: SimPort<NetworkServiceHandlers>;
  readonly consensusPort: SimPort<ConsensusHandlers>;
  controller!: ControllerEmulator;
  endpoint!: NetworkEndpoint;
  process: ConsensusProcess | undefined;
  incarnations = 0;
  /** The data dir was deleted since the last incarnation. */
  wiped = false;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly address: Uint8Array,
    readonly id: bigint,
    readonly dir: string,
  ) {
    this.controllerPort = new SimPort(`controller${index}`);
    this.networkPort = new SimPort(`network${index}`);
    this.consensusPort = new SimPort(`consensus${index}`);
  }

  get up(): boolean {
    return this.process !== undefined && this.process.state !== "down";
  }
}

/** What a consensus process needs from the simulation. */
export interface ProcessHost {
  readonly clock: SimClock;
  readonly checker: ChainChecker;
  readonly cfg: (slot: Slot) => Config;
  readonly log: (name: string) => ConsolaInstance;
  /** A fresh seeded generator for one incarnation. */
  random(): Random;
  /** One-way latency of a consensus <-> controller call (never 0). */
  controllerLatency(slot: Slot): number;
  /** Known defects to build the node (and its Raft core) with. */
  readonly nodeBugs: ReadonlySet<NodeTestBug>;
  readonly raftBugs: ReadonlySet<RaftTestBug>;
  /** The process stopped by itself (fatal error) or was stopped. */
  exited(p: ConsensusProcess, how: string): void;
  /** A SIGTERM stop overran its bound. */
  stopOverran(p: ConsensusProcess): void;
  /** The node reported a fatal error. */
  fatal(p: ConsensusProcess, err: unknown): void;
}

const OK = (): StatusCode => create(StatusCodeSchema, { code: 0 });

export class ConsensusProcess {
  readonly scope: Scope;
  readonly storage: WatchedStorage;
  readonly node: ConsensusNode;
  readonly name: string;
  state: "up" | "stopping" | "down" = "up";
  private readonly inner: SqliteStorage;
  private readonly listener;
  private readonly log: ConsolaInstance;

  constructor(
    private readonly host: ProcessHost,
    readonly slot: Slot,
    readonly incarnation: number,
  ) {
    this.name = `${slot.name}#${incarnation}`;
    this.scope = new Scope(host.clock, this.name);
    const log = (this.log = host.log(slot.name));
    this.inner = SqliteStorage.open(slot.dir, { log: log.withTag("storage") });
    this.storage = new WatchedStorage(this.inner, (what) => this.kill(`power cut during its ${what} write`));
    const startHeight = Number(tryDecodeChainConfig(this.inner.chainConfigBytes())?.height ?? 0n);
    host.checker.onStart(slot.index, incarnation, { ...this.storage.durable }, startHeight, slot.wiped);
    slot.wiped = false;

    const scope = this.scope;
    const i = slot.index;
    // One connection to the controller per process, as the gRPC client keeps one.
    const toControllerLink = new Link(() => host.controllerLatency(slot));
    const toController = <T>(invoke: (h: ControllerService, call: { signal: AbortSignal; clientName?: string }) => Promise<T>, o?: { timeoutMs?: number; signal?: AbortSignal }) =>
      simCall(scope, slot.controllerPort, toControllerLink, invoke, { timeoutMs: o?.timeoutMs, signal: o?.signal, clientName: "consensus" });
    const controller: ControllerClient = {
      getProposal: (_req, o) => toController((h, call) => h.getProposal(call), o).then((r) => clone(ProposalResponseSchema, r)),
      checkProposal: (p, o) => {
        const req = clone(ProposalSchema, p);
        return toController((h, call) => h.checkProposal(req, call), o).then((r) => clone(StatusCodeSchema, r));
      },
      commitBlock: (pwp, o) => {
        const req = clone(ProposalWithProofSchema, pwp);
        const height = req.proposal?.height ?? 0n;
        const ping = height === PING_HEIGHT;
        return toController((h, call) => {
          if (!ping) host.checker.onCommitRequest(i, Number(height), req.proposal?.data ?? new Uint8Array());
          return h.commitBlock(req, call);
        }, o).then((r) => {
          if (!ping && r.status?.code === StatusCodeEnum.Success) host.checker.onCommitSuccess(i, incarnation, Number(height));
          return clone(ConsensusConfigurationResponseSchema, r);
        });
      },
    };
    const toNetwork = <T>(invoke: (h: NetworkServiceHandlers, call: { signal: AbortSignal; clientName?: string }) => T | Promise<T>, o?: { timeoutMs?: number; signal?: AbortSignal }) =>
      simCall(scope, slot.networkPort, LOOPBACK, invoke, { timeoutMs: o?.timeoutMs, signal: o?.signal, clientName: "consensus" });
    const network: NetworkOutlet & RegistrationTarget = {
      sendMsg: (m) => toNetwork((h, call) => h.sendMsg(clone(NetworkMsgSchema, m), call)),
      broadcast: (m) => toNetwork((h, call) => h.broadcast(clone(NetworkMsgSchema, m), call)),
      registerNetworkMsgHandler: (info, o) => toNetwork((h, call) => h.registerNetworkMsgHandler(create(RegisterInfoSchema, info), call), o),
    };
    this.node = new ConsensusNode({
      settings: host.cfg(slot),
      log,
      clock: scope,
      random: host.random(),
      storage: this.storage,
      controller,
      network,
      listenPort: () => 50001 + i,
      fatal: (e) => {
        if (this.state !== "down") host.fatal(this, e);
      },
      testBugs: host.nodeBugs,
      raftTestBugs: host.raftBugs,
    });
    // Every raft message the node hands to its transport, with what its storage holds right then.
    const transport = this.node.transport;
    const send = transport.send.bind(transport);
    transport.send = (m: Message) => {
      if (this.state !== "down") host.checker.onRaftSend(i, m, this.storage.durable);
      return send(m);
    };
    this.listener = slot.consensusPort.serve(this.handlers());
    this.node.start();
  }

  private handlers(): ConsensusHandlers {
    const { node, host, slot } = this;
    return {
      reconfigure: (cfg) => {
        try {
          node.reconfigure(cfg);
        } catch {
          // Still success, as the server answers: a failed Reconfigure aborts the controller's sync.
        }
        return OK();
      },
      checkBlock: () => OK(),
      processNetworkMsg: (nm) => {
        let env;
        try {
          env = parseEnvelope(nm);
        } catch (e) {
          if (!(e instanceof EnvelopeError)) throw e;
          throw new ConnectError(e.message, Code.InvalidArgument);
        }
        const stale = env.type === "raft" ? host.checker.staleRejection(node, env.msg) : undefined;
        try {
          node.networkMsg(env);
        } catch {
          throw new ConnectError("consensus failed to handle the message", Code.Internal);
        }
        if (stale !== undefined && env.type === "raft") host.checker.checkStaleRejection(slot.index, node, env.msg, stale);
        return OK();
      },
    };
  }

  /** kill -9 (or a power cut): nothing of this incarnation runs any more; storage keeps what was written. */
  kill(how = "kill -9"): void {
    if (this.state === "down") return;
    this.state = "down";
    this.scope.kill();
    this.listener.close();
    this.inner.close();
    this.host.exited(this, how);
  }

  /** SIGTERM: the service's own stop sequence, bounded as `consensus run` bounds it. */
  async terminate(): Promise<void> {
    if (this.state !== "up") return;
    this.state = "stopping";
    const overrun = this.scope.after(STOP_TIMEOUT_MS, () => {
      this.host.stopOverran(this);
      this.kill("stop took too long: exit 1");
    });
    await stopInOrder(
      {
        log: this.log,
        node: this.node,
        server: { stop: async () => this.listener.close() },
        clients: [],
        metricsServer: undefined,
        storage: this.inner,
        notServing: () => {},
      },
      "SIGTERM",
      HAND_OFF_MS,
    );
    overrun();
    this.kill("SIGTERM: stopped");
  }
}
