// One consensus node without its gRPC edge: the peer transport (probe protocol, mailbook, admission
// limits), the registration with the network service, and the supervisor that runs a Raft peer
// while the controller lists this node as a validator. The service (service.ts) wires it to sqlite,
// gRPC clients, the gRPC server and metrics; the chain simulator wires the same class to simulated
// controllers, network and clock. What one does, the other runs.
import type { ConsolaInstance } from "consola";
import type { Config } from "../config/types.ts";
import { ValidatorDirectory } from "../peer/directory.ts";
import type { InboundEnvelope } from "../peer/envelope.ts";
import { peerIdFromAddress } from "../peer/peer-id.ts";
import { type NetworkOutlet, PeerTransport, type TransportEvents } from "../peer/transport.ts";
import type { RaftTestBug } from "../raft/index.ts";
import type { NodeStorage } from "../storage/node-storage.ts";
import type { BlockTimeline } from "./block-timeline.ts";
import type { ChainConfig } from "./chain-config.ts";
import type { ControllerClient } from "./controller.ts";
import { type Clock, type Random, sleep } from "./ports.ts";
import { type PeerEvents, RaftPeer } from "./raft-peer.ts";
import { NetworkRegistration, type RegistrationTarget } from "./registration.ts";
import { Supervisor } from "./supervisor.ts";
import type { NodeTestBug } from "./test-bugs.ts";

/** How long queued peer messages may take to go out when stopping. */
export const DRAIN_MS = 300;

export interface NodeDeps {
  readonly settings: Config;
  readonly log: ConsolaInstance;
  readonly clock: Clock;
  readonly random: Random;
  readonly storage: NodeStorage;
  readonly controller: ControllerClient;
  readonly network: NetworkOutlet & RegistrationTarget;
  /** Where the network service delivers to us (our gRPC port, known once the server listens). */
  readonly listenPort: () => number;
  readonly peerEvents?: PeerEvents;
  readonly transportEvents?: TransportEvents;
  /** Raft messages that arrived while this node runs no Raft peer (not a validator). */
  readonly raftWithoutPeer?: () => void;
  /** The node cannot go on (a storage failure): the caller stops it. */
  readonly fatal: (err: unknown) => void;
  /** Records each block's steps (see block-timeline.ts); off when absent. */
  readonly timeline?: BlockTimeline;
  /** Test-only: known defects re-injected (see test-bugs.ts). */
  readonly testBugs?: ReadonlySet<NodeTestBug>;
  /** Test-only: known defects of the Raft core to build the peer's RawNode with (RaftConfig.testBugs). */
  readonly raftTestBugs?: ReadonlySet<RaftTestBug>;
}

export class ConsensusNode {
  readonly selfId: bigint;
  readonly transport: PeerTransport;
  readonly supervisor: Supervisor;
  readonly registration: NetworkRegistration;
  private raftDropped = 0;

  constructor(private readonly deps: NodeDeps) {
    const { settings, log, clock, random, storage, controller, network } = deps;
    this.selfId = peerIdFromAddress(settings.nodeAddress);
    const netLog = log.withTag("network");
    const peerLog = log.withTag("raft");
    this.transport = new PeerTransport({
      selfId: this.selfId,
      network,
      log: netLog,
      peerMsgsPerSecond: settings.peerMsgsPerSecond,
      now: () => clock.now(),
      events: {
        ...deps.transportEvents,
        networkRecovered: () => {
          deps.transportEvents?.networkRecovered?.();
          this.registration.renew("network service answers again");
        },
      },
    });
    this.registration = new NetworkRegistration({
      network,
      port: deps.listenPort,
      log: netLog,
      clock,
      random,
      registered: (first) => {
        // Learn the peers' origins as soon as the network delivers to us.
        if (first) this.transport.probe();
      },
    });
    this.supervisor = new Supervisor({
      settings,
      log,
      storage,
      controller,
      clock,
      fatal: deps.fatal,
      makePeer: (config) =>
        new RaftPeer(
          {
            settings,
            selfId: this.selfId,
            log: peerLog,
            storage,
            outlet: this.transport,
            controller,
            clock,
            random,
            events: deps.peerEvents,
            fatal: deps.fatal,
            testBugs: deps.testBugs,
            raftTestBugs: deps.raftTestBugs,
            timeline: deps.timeline,
          },
          config,
        ),
    });
    // Without a running peer (not a validator) raft messages are answered OK and dropped, never queued.
    this.transport.onRaft((msg) => {
      const peer = this.supervisor.peer;
      if (peer) peer.receive(msg);
      else {
        this.raftDropped++;
        deps.raftWithoutPeer?.();
      }
    });
    this.transport.setDirectory(new ValidatorDirectory(() => this.supervisor.peer));
  }

  /** The running Raft peer, while this node is (or just was) a validator. */
  get peer(): RaftPeer | undefined {
    return this.supervisor.peer;
  }

  /** Raft messages dropped because no peer ran. */
  get raftMessagesWithoutPeer(): number {
    return this.raftDropped;
  }

  start(): void {
    this.registration.start();
    this.supervisor.start();
  }

  /** ConsensusService/Reconfigure: answered at once, evaluated beside. */
  reconfigure(c: ChainConfig): void {
    this.supervisor.onReconfigure(c);
  }

  /** NetworkMsgHandlerService/ProcessNetworkMsg, after the envelope was validated. */
  networkMsg(env: InboundEnvelope): void {
    this.transport.handleInbound(env);
  }

  /**
   * First half of a stop: no more registrations; the Raft peer stops (a leader hands over first,
   * within `handOffMs`, while inbound messages still arrive).
   */
  async stopPeer(handOffMs: number): Promise<void> {
    this.registration.stop();
    await this.supervisor.stop(handOffMs);
  }

  /** Second half: the transport stops taking messages and gets DRAIN_MS to send what is queued. */
  async closeTransport(): Promise<void> {
    this.transport.close();
    const drained = new AbortController();
    await Promise.race([this.transport.idle().then(() => drained.abort()), sleep(this.deps.clock, DRAIN_MS, drained.signal).catch(() => {})]);
    drained.abort();
  }
}
