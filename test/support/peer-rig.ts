// An in-process Raft peer wired as the service wires it (transport -> RaftPeer.receive, directory of
// validators, sqlite storage in a mkdtemp dir, a scriptable controller), for tests that feed it peer
// traffic directly. The peer is the second of three validators, so it never campaigns by itself;
// its ticker is not started, so nothing happens that the test did not cause.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ConsensusConfigurationSchema } from "../../gen/common_pb.ts";
import { MessageSchema } from "../../gen/eraftpb_pb.ts";
import type { NetworkMsg } from "../../gen/network_pb.ts";
import { systemClock, systemRandom } from "../../src/node/ports.ts";
import { codec, type Message, newConfState, newSnapshot } from "../../src/raft/index.ts";
import { RaftPeer } from "../../src/node/raft-peer.ts";
import { ValidatorDirectory, zenohOrigin } from "../../src/peer/directory.ts";
import { peerIdFromAddress } from "../../src/peer/peer-id.ts";
import { type NetworkOutlet, PeerTransport } from "../../src/peer/transport.ts";
import { SqliteStorage } from "../../src/storage/sqlite.ts";
import { FakeController } from "../node/fake-controller.ts";
import { captureLog } from "./capture-log.ts";
import { serviceConfig } from "./service-config.ts";

export interface RigMember {
  readonly address: Uint8Array;
  readonly id: bigint;
  /** The origin network_zenoh gives it. */
  readonly origin: bigint;
}

function member(hex: string): RigMember {
  const address = Uint8Array.from(Buffer.from(hex, "hex"));
  return { address, id: peerIdFromAddress(address), origin: zenohOrigin(address)! };
}

/** Records what the transport sends; never fails. */
export class RecordingNetwork implements NetworkOutlet {
  readonly sent: NetworkMsg[] = [];
  readonly broadcasts: NetworkMsg[] = [];
  sendMsg(m: NetworkMsg) {
    this.sent.push(m);
    return Promise.resolve({ code: 0 });
  }
  broadcast(m: NetworkMsg) {
    this.broadcasts.push(m);
    return Promise.resolve({ code: 0 });
  }
}

export interface PeerState {
  term: number;
  vote: bigint;
  commit: number;
  lastIndex: number;
  applied: number;
  role: number;
  leader: bigint;
  voters: string;
  mailbook: string;
}

export class PeerRig {
  readonly a = member("1111111111111111111111111111111111111111");
  readonly self = member("2222222222222222222222222222222222222222");
  readonly b = member("3333333333333333333333333333333333333333");
  readonly dir = mkdtempSync(join(tmpdir(), "peer-rig-"));
  readonly storage = SqliteStorage.open(this.dir);
  readonly controller = new FakeController();
  readonly network = new RecordingNetwork();
  readonly log = captureLog();
  /** Why inbound messages were dropped, in order: the transport's and the Raft peer's reasons. */
  readonly drops: string[] = [];
  /** The transport's mailbook events ("rebound", "refused"), in order. */
  readonly mailbookChanges: string[] = [];
  /** Raft messages the transport handed to the peer. */
  delivered = 0;
  readonly fatal: unknown[] = [];
  readonly clock = { t: 1_000_000 };
  /** The peer's tick interval and election timeout in ticks. */
  readonly tickMs: number;
  readonly electionTick: number;
  readonly transport: PeerTransport;
  readonly peer: RaftPeer;

  constructor(opts: { peerMsgsPerSecond?: number; emptyStore?: boolean; validators?: "all" | "self-and-b" } = {}) {
    const cfg = serviceConfig({ grpcListenPort: 1, networkPort: 2, nodeAddress: this.self.address, raftDataPath: this.dir });
    this.tickMs = cfg.tickIntervalInMillis;
    this.electionTick = cfg.electionTick;
    this.controller.validators =
      opts.validators === "self-and-b" ? [this.self.address, this.b.address] : [this.a.address, this.self.address, this.b.address];
    // A member of a running chain: its store already holds the configuration {a, self, b}. With
    // `emptyStore` it is a node joining the chain (new validator, wiped store) instead.
    if (!opts.emptyStore) this.storage.persist({ snapshot: newSnapshot(5, 5, newConfState({ voters: [this.a.id, this.self.id, this.b.id] })) });
    this.transport = new PeerTransport({
      selfId: this.self.id,
      network: this.network,
      log: this.log.log,
      now: () => this.clock.t,
      peerMsgsPerSecond: opts.peerMsgsPerSecond,
      events: { dropped: (r) => this.drops.push(r), mailbook: (r) => this.mailbookChanges.push(r) },
    });
    const trigger = create(ConsensusConfigurationSchema, { height: 10n, blockInterval: 3, validators: this.controller.validators });
    this.peer = new RaftPeer(
      {
        settings: cfg,
        selfId: this.self.id,
        log: this.log.log,
        storage: this.storage,
        outlet: this.transport,
        controller: this.controller,
        // Its time is the rig's clock (see tick); timers still run on the system clock.
        clock: { ...systemClock, now: () => this.clock.t },
        random: systemRandom,
        fatal: (e) => this.fatal.push(e),
        events: { inboundDropped: (r) => this.drops.push(r) },
      },
      trigger,
    );
    this.transport.onRaft((m) => {
      this.delivered++;
      this.peer.receive(m);
    });
    this.transport.setDirectory(new ValidatorDirectory(() => this.peer));
  }

  /** The transport learns where `m` is, as from its answer to our probe. */
  learnOrigin(m: RigMember): void {
    this.transport.handleInbound({ type: "probe-resp", origin: m.origin, id: m.id });
  }

  /** A Raft message from `from` reaches the node through the network service. */
  deliver(from: { id: bigint; origin: bigint }, m: MessageInitShape<typeof MessageSchema>): void {
    this.transport.handleInbound({ type: "raft", origin: from.origin, msg: codec.messageFromPb(create(MessageSchema, { to: this.self.id, from: from.id, ...m })) });
  }

  /** The Raft messages the node has sent so far, decoded. */
  sentRaft(): Message[] {
    return this.network.sent.filter((n) => n.type === "raft").map((n) => codec.decodeMessage(n.msg));
  }

  /** Runs `n` ticks of the peer's ticker, the rig's clock moving one tick interval before each. */
  tick(n: number): void {
    for (let i = 0; i < n; i++) {
      this.clock.t += this.tickMs;
      (this.peer as unknown as { onTick(): void }).onTick();
    }
  }

  /** Lets the Ready loop (scheduled with setImmediate) and the transport's sends run. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    await this.transport.idle();
  }

  state(): PeerState {
    const s = this.peer.status();
    return {
      term: s.term,
      vote: this.peer.node.raft.vote,
      commit: s.commit,
      lastIndex: s.lastIndex,
      applied: s.applied,
      role: s.role,
      leader: s.leader,
      voters: s.voters.join(","),
      mailbook: [...this.transport.mailbook.entries()].map(([id, o]) => `${id}@${o}`).join(","),
    };
  }

  async close(): Promise<void> {
    await this.peer.stop();
    this.transport.close();
    this.storage.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
