// Test harness for the Raft core, in the style of raft-rs/etcd tests: Raft instances over
// MemStorage, a synchronous in-memory network that delivers messages breadth-first, and filters
// to drop, cut or isolate traffic. `persist()` plays the role of the application writing the
// unstable log to storage (so a leader can count its own ack).
import { resolveConfig, type RaftConfig } from "../../src/raft/config.ts";
import { Raft, StateRole } from "../../src/raft/raft.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import {
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
  newConfState,
  newEntry,
  newMessage,
  newSnapshot,
} from "../../src/raft/types.ts";

export { StateRole };

/** Raft plus the test-side persistence hooks. */
export class Interface {
  constructor(
    readonly raft: Raft,
    readonly store: MemStorage,
  ) {}

  get id(): NodeId {
    return this.raft.id;
  }

  step(m: Message): void {
    this.raft.step(m);
  }

  /** Drains the queued outgoing messages. */
  readMessages(): Message[] {
    const m = this.raft.msgs;
    this.raft.msgs = [];
    return m;
  }

  /** Writes the unstable snapshot and entries to storage and acknowledges them to Raft. */
  persist(): void {
    const log = this.raft.raftLog;
    const snap = log.unstableSnapshot();
    if (snap !== undefined) {
      const index = snap.metadata.index;
      log.stableSnap(index);
      this.store.applySnapshot(snap);
      this.raft.onPersistSnap(index);
      this.raft.commitApply(index);
    }
    const unstable = log.unstableEntries().slice();
    if (unstable.length > 0) {
      const last = unstable[unstable.length - 1];
      log.stableEntries(last.index, last.term);
      this.store.append(unstable);
      this.raft.onPersistEntries(last.index, last.term);
    }
  }
}

export interface TestRaftOptions extends Partial<RaftConfig> {
  seed?: number;
}

export function newTestConfig(id: NodeId, election: number, heartbeat: number, opts: TestRaftOptions = {}): RaftConfig {
  return {
    id,
    electionTick: election,
    heartbeatTick: heartbeat,
    maxSizePerMsg: Number.MAX_SAFE_INTEGER,
    maxInflightMsgs: 256,
    random: seededRandom(opts.seed ?? Number(id) * 7919),
    ...opts,
  };
}

/** A Raft over `storage`; if the storage has no configuration yet, `peers` become its voters. */
export function newTestRaft(id: NodeId, peers: NodeId[], election: number, heartbeat: number, storage?: MemStorage, opts: TestRaftOptions = {}): Interface {
  const store = storage ?? new MemStorage();
  const cs = store.initialState().confState;
  if (cs.voters.length === 0 && cs.learners.length === 0 && peers.length > 0) store.setConfState(newConfState({ voters: peers }));
  return new Interface(new Raft(resolveConfig(newTestConfig(id, election, heartbeat, opts)), store), store);
}

export function newTestRaftWithLearners(id: NodeId, peers: NodeId[], learners: NodeId[], election: number, heartbeat: number, storage?: MemStorage): Interface {
  const store = storage ?? new MemStorage();
  store.setConfState(newConfState({ voters: peers, learners }));
  return newTestRaft(id, [], election, heartbeat, store);
}

export function newStorageWithEntries(ents: Entry[], voters: NodeId[] = []): MemStorage {
  const s = MemStorage.withVoters(voters);
  s.append(ents);
  return s;
}

export function ent(term: number, index: number, data?: string): Entry {
  return newEntry({ term, index, data: data === undefined ? undefined : new TextEncoder().encode(data) });
}

/** Entries with the given terms at indexes start, start+1, ... */
export function entsWithTerms(terms: number[], start = 1): Entry[] {
  return terms.map((t, i) => ent(t, start + i));
}

export function m(init: Partial<Message>): Message {
  return newMessage(init);
}

export function snapshot(index: number, term: number, voters: NodeId[], learners: NodeId[] = []): Snapshot {
  return newSnapshot(index, term, newConfState({ voters, learners }));
}

export function confStateOf(voters: NodeId[], learners: NodeId[] = []): ConfState {
  return newConfState({ voters, learners });
}

export function proposal(from: NodeId, to: NodeId, data = "somedata"): Message {
  return newMessage({ msgType: MessageType.MsgPropose, from, to, entries: [newEntry({ data: new TextEncoder().encode(data) })] });
}

export function hup(id: NodeId): Message {
  return newMessage({ msgType: MessageType.MsgHup, from: id, to: id });
}

export function beat(id: NodeId): Message {
  return newMessage({ msgType: MessageType.MsgBeat, from: id, to: id });
}

export function confChangeEntry(data: Uint8Array): Entry {
  return newEntry({ entryType: EntryType.EntryConfChangeV2, data });
}

/** Ticks until an election timeout passes (at least 2×election ticks − 1 guarantees one). */
export function tickElectionTimeout(r: Raft): void {
  for (let i = 0; i < r.randomizedElectionTimeout; i++) r.tick();
}

/** Ticks the raw election/heartbeat timers once per tick, the whole randomized timeout. */
export function tickTimes(r: Raft, n: number): void {
  for (let i = 0; i < n; i++) r.tick();
}

/** Sets the randomized election timeout explicitly (etcd's setRandomizedElectionTimeout). */
export function setRandomizedElectionTimeout(r: Raft, v: number): void {
  r.randomizedElectionTimeout = v;
}

type Peer = Interface | undefined;

/** A synchronous network of Raft nodes; `undefined` peers are black holes. */
export class Network {
  readonly peers = new Map<NodeId, Peer>();
  readonly storage = new Map<NodeId, MemStorage>();
  private dropm = new Map<string, number>();
  private ignorem = new Set<MessageType>();
  private readonly rand: (n: number) => number;
  /** Optional hook run on every message before delivery; return false to drop it. */
  msgHook?: (m: Message) => boolean;

  /**
   * `peers[i]` is the node with id i+1: an Interface, or undefined for a fresh node created here,
   * or null for a black hole. Fresh nodes use `opts` (pre-vote, check-quorum, ...).
   */
  constructor(peers: (Interface | undefined | null)[], opts: TestRaftOptions = {}, seed = 1) {
    this.rand = seededRandom(seed);
    const ids = peers.map((_, i) => BigInt(i + 1));
    peers.forEach((p, i) => {
      const id = ids[i];
      if (p === undefined) {
        const store = MemStorage.withVoters(ids);
        this.storage.set(id, store);
        this.peers.set(id, newTestRaft(id, [], 10, 1, store, opts));
      } else if (p === null) {
        this.peers.set(id, undefined);
      } else {
        this.storage.set(id, p.store);
        this.peers.set(id, p);
      }
    });
  }

  peer(id: NodeId): Interface {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`no live peer ${id}`);
    return p;
  }

  raft(id: NodeId): Raft {
    return this.peer(id).raft;
  }

  /** Delivers messages and every message they cause, breadth-first, until the network is quiet. */
  send(msgs: Message[]): void {
    let queue = msgs;
    while (queue.length > 0) {
      const next: Message[] = [];
      for (const msg of queue) {
        const p = this.peers.get(msg.to);
        if (p === undefined) continue;
        try {
          p.step(msg);
        } catch (e) {
          if (!(e instanceof Error && e.name === "RaftError")) throw e;
        }
        p.persist();
        next.push(...this.filter(p.readMessages()));
      }
      queue = next;
    }
  }

  /** Filters messages through drop/ignore rules (local messages must never be sent). */
  filter(msgs: Message[]): Message[] {
    return msgs.filter((msg) => {
      if (this.ignorem.has(msg.msgType)) return false;
      if (msg.msgType === MessageType.MsgHup) throw new Error("unexpected MsgHup on the network");
      const perc = this.dropm.get(`${msg.from}-${msg.to}`) ?? 0;
      if (perc > 0 && this.rand(1_000_000) / 1_000_000 < perc) return false;
      if (this.msgHook && !this.msgHook(msg)) return false;
      return true;
    });
  }

  drop(from: NodeId, to: NodeId, perc: number): void {
    this.dropm.set(`${from}-${to}`, perc);
  }

  cut(a: NodeId, b: NodeId): void {
    this.drop(a, b, 2.0);
    this.drop(b, a, 2.0);
  }

  isolate(id: NodeId): void {
    for (const other of this.peers.keys()) {
      if (other !== id) this.cut(id, other);
    }
  }

  ignore(t: MessageType): void {
    this.ignorem.add(t);
  }

  recover(): void {
    this.dropm.clear();
    this.ignorem.clear();
  }
}

export function readMessages(p: Interface): Message[] {
  return p.readMessages();
}

/** A compact, comparable view of a message for assertions. */
export function brief(msg: Message): Record<string, unknown> {
  return {
    type: MessageType[msg.msgType],
    from: msg.from,
    to: msg.to,
    term: msg.term,
    logTerm: msg.logTerm,
    index: msg.index,
    commit: msg.commit,
    reject: msg.reject,
    entries: msg.entries.map((e) => `${e.term}/${e.index}`),
  };
}

/** The log terms by index (1-based order) of a Raft, persisted and unstable together. */
export function logTerms(r: Raft): number[] {
  return r.raftLog.allEntries().map((e) => e.term);
}

// ---------------------------------------------------------------- conformance helpers
// (etcd raft_paper_test.go / raft_flow_control_test.go / raft_snap_test.go building blocks)

/** Ids 1..n (etcd `idsBySize`). */
export function idsBySize(n: number): NodeId[] {
  return Array.from({ length: n }, (_, i) => BigInt(i + 1));
}

/** The reply of a follower that accepts an append (etcd `acceptAndReply`). */
export function acceptAndReply(msg: Message): Message {
  if (msg.msgType !== MessageType.MsgAppend) throw new Error(`acceptAndReply needs a MsgAppend, got ${MessageType[msg.msgType]}`);
  return newMessage({ msgType: MessageType.MsgAppendResponse, from: msg.to, to: msg.from, term: msg.term, index: msg.index + msg.entries.length });
}

/** Every field of an entry, data as text: for exact comparisons. */
export function entView(e: Entry): Record<string, unknown> {
  return { type: EntryType[e.entryType], term: e.term, index: e.index, data: new TextDecoder().decode(e.data), context: new TextDecoder().decode(e.context) };
}

/** Every field of a message (unlike `brief`): compare `msgView(actual)` with `msgView(m({...expected}))`. */
export function msgView(msg: Message): Record<string, unknown> {
  return {
    type: MessageType[msg.msgType],
    from: msg.from,
    to: msg.to,
    term: msg.term,
    logTerm: msg.logTerm,
    index: msg.index,
    entries: msg.entries.map(entView),
    commit: msg.commit,
    commitTerm: msg.commitTerm,
    snapshot: msg.snapshot === undefined ? undefined : { index: msg.snapshot.metadata.index, term: msg.snapshot.metadata.term },
    requestSnapshot: msg.requestSnapshot,
    reject: msg.reject,
    rejectHint: msg.rejectHint,
    context: new TextDecoder().decode(msg.context),
    priority: msg.priority,
  };
}
