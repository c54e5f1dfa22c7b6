// A small cluster of RawNodes over MemStorage, driven by the Ready rules of raw-node.ts exactly as
// an application must follow them: send `messages` at once; persist snapshot, entries and hard
// state; only then send `persistedMessages`; apply committed entries (conf changes through
// applyConfChange); advance and handle the LightReady; advanceApply. Messages travel through one
// FIFO queue; `drop` can lose them. Used by the RawNode tests and reusable by simulations.
import type { RaftConfig } from "../../src/raft/config.ts";
import { decodeConfChangeV2 } from "../../src/raft/codec.ts";
import { RaftError } from "../../src/raft/errors.ts";
import { StateRole } from "../../src/raft/raft.ts";
import type { ReadState } from "../../src/raft/read-only.ts";
import { type LightReady, RawNode, type Ready } from "../../src/raft/raw-node.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import { type ConfState, type Entry, EntryType, type Message, type NodeId, newConfState } from "../../src/raft/types.ts";

export type PeerConfig = Omit<RaftConfig, "id" | "applied">;

/** Election 10, heartbeat 1, unlimited message size: the etcd/raft-rs test defaults. */
export const DEFAULT_PEER_CONFIG: PeerConfig = { electionTick: 10, heartbeatTick: 1, maxSizePerMsg: Number.MAX_SAFE_INTEGER, maxInflightMsgs: 256 };

/** One node: a RawNode, its storage, and the state machine it applies to (the applied entries). */
export class RawPeer {
  node: RawNode;
  /** Normal entries with data, in the order they were applied. */
  readonly applied: Entry[] = [];
  /** Index of the last entry (or snapshot) applied to the state machine. */
  appliedIndex = 0;
  /** Completed linearizable reads, as the application saw them. */
  readonly readStates: ReadState[] = [];
  /** Every Ready handled, for tests that look at the Ready contract. */
  readonly readies: Ready[] = [];

  constructor(
    readonly id: NodeId,
    readonly store: MemStorage,
    readonly config: PeerConfig = DEFAULT_PEER_CONFIG,
  ) {
    this.appliedIndex = store.snap.metadata.index;
    this.node = new RawNode({ ...config, id, applied: this.appliedIndex }, store);
  }

  /** A fresh node whose storage is bootstrapped with `confState` (nothing in the log yet). */
  static bootstrap(id: NodeId, confState: ConfState, config: PeerConfig = DEFAULT_PEER_CONFIG): RawPeer {
    return new RawPeer(id, MemStorage.withConfState(confState), config);
  }

  /** Rebuilds the RawNode from what is in storage, as after a process restart. */
  restart(): void {
    this.node = new RawNode({ ...this.config, id: this.id, applied: this.appliedIndex }, this.store);
  }

  /** The configuration the application has stored (its last applied ConfState). */
  confState(): ConfState {
    return this.store.initialState().confState;
  }

  /** Handles one Ready if there is one and returns the messages it produced, in sending order. */
  handleReady(): Message[] {
    if (!this.node.hasReady()) return [];
    const rd = this.node.ready();
    this.readies.push(rd);
    const out: Message[] = [...rd.messages];
    if (rd.snapshot !== undefined) {
      this.store.applySnapshot(rd.snapshot);
      this.appliedIndex = rd.snapshot.metadata.index;
    }
    this.store.append(rd.entries);
    if (rd.hardState !== undefined) this.store.setHardState(rd.hardState);
    // Everything above is durable now: votes and acks may leave.
    out.push(...rd.persistedMessages);
    this.readStates.push(...rd.readStates);
    this.apply(rd.committedEntries);
    const light: LightReady = this.node.advance(rd);
    if (light.commitIndex !== undefined) this.store.setCommit(light.commitIndex);
    out.push(...light.messages);
    this.apply(light.committedEntries);
    this.node.advanceApply();
    return out;
  }

  private apply(ents: Entry[]): void {
    for (const e of ents) {
      if (e.entryType === EntryType.EntryConfChangeV2) {
        this.store.setConfState(this.node.applyConfChange(decodeConfChangeV2(e.data)));
      } else if (e.data.length > 0) {
        this.applied.push(e);
      }
      this.appliedIndex = e.index;
    }
  }
}

export class RawCluster {
  readonly peers = new Map<NodeId, RawPeer>();
  /** Messages sent but not yet delivered, in sending order. */
  queue: Message[] = [];
  /** Return true to lose a message (partitions, crashed nodes). */
  drop: (m: Message) => boolean = () => false;

  /** Voters `ids` (and `learners`), all bootstrapped with the same configuration. */
  constructor(ids: NodeId[], config: Partial<PeerConfig> = {}, learners: NodeId[] = []) {
    const cs = newConfState({ voters: ids, learners });
    for (const id of [...ids, ...learners]) this.add(RawPeer.bootstrap(id, cs, { ...DEFAULT_PEER_CONFIG, ...config }));
  }

  add(p: RawPeer): RawPeer {
    this.peers.set(p.id, p);
    return p;
  }

  peer(id: NodeId): RawPeer {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  node(id: NodeId): RawNode {
    return this.peer(id).node;
  }

  /** The node that believes it leads in the highest term, if any. */
  leader(): NodeId | undefined {
    let best: RawPeer | undefined;
    for (const p of this.peers.values()) {
      const r = p.node.raft;
      if (r.state === StateRole.Leader && (best === undefined || r.term > best.node.raft.term)) best = p;
    }
    return best?.id;
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).tick();
  }

  /** Handles the Readies of every node and delivers every message until nothing moves. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const p of this.peers.values()) {
        while (p.node.hasReady()) {
          this.send(p.handleReady());
          moved = true;
        }
      }
      if (this.queue.length > 0) {
        this.deliver();
        moved = true;
      }
      if (!moved) return;
    }
    throw new Error(`cluster did not stabilize in ${maxRounds} rounds`);
  }

  send(msgs: Message[]): void {
    for (const m of msgs) if (!this.drop(m)) this.queue.push(m);
  }

  /** Steps every queued message into its recipient (in order); unknown recipients lose it. */
  deliver(): void {
    const msgs = this.queue;
    this.queue = [];
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (p === undefined) continue;
      try {
        p.node.step(m);
      } catch (e) {
        // A dropped forwarded proposal or a response from a removed peer is not an error here.
        if (!(e instanceof RaftError)) throw e;
      }
    }
  }

  /** Campaigns on `id` and runs the election to the end. */
  elect(id: NodeId): void {
    this.node(id).campaign();
    this.stabilize();
    if (this.leader() !== id) throw new Error(`node ${id} did not win the election`);
  }

  /** Proposes `data` (strings) on `id` one entry each, then stabilizes. */
  propose(id: NodeId, ...data: string[]): void {
    for (const d of data) this.node(id).propose(new Uint8Array(), new TextEncoder().encode(d));
    this.stabilize();
  }
}

/** The applied data of a peer as strings. */
export function appliedData(p: RawPeer): string[] {
  return p.applied.map((e) => new TextDecoder().decode(e.data));
}
