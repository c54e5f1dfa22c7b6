// Test harness for the Raft core, in the style of raft-rs/etcd tests: Raft instances over
// MemStorage, a synchronous in-memory network that delivers messages breadth-first, and filters
// to drop, cut or isolate traffic. `persist()` plays the role of the application writing the
// unstable log to storage (so a leader can count its own ack).
import { resolveConfig, type RaftConfig } from "../../src/raft/config.ts";
import { Raft, StateRole } from "../../src/raft/raft.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import { decodeConfChangeV2, encodeConfChangeV2 } from "../../src/raft/codec.ts";
import {
  type ConfChangeV2,
  ConfChangeTransition,
  ConfChangeType,
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
    for (let queue = msgs; queue.length > 0; ) queue = this.dispatch(queue);
  }

  /** Delivers only `msgs` (one hop, like `send` without filtering them) and returns the filtered messages they cause, undelivered. */
  dispatch(msgs: Message[]): Message[] {
    const out: Message[] = [];
    for (const msg of msgs) {
      const p = this.peers.get(msg.to);
      if (p === undefined) continue;
      try {
        p.step(msg);
      } catch (e) {
        if (!(e instanceof Error && e.name === "RaftError")) throw e;
      }
      p.persist();
      out.push(...this.filter(p.readMessages()));
    }
    return out;
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

// ---------------------------------------------------------------- scenario helpers
// (etcd raft_test.go / raft-rs test_raft.rs style building blocks)

/**
 * Persists the unstable log, returns the committed entries not yet applied and marks them
 * applied (etcd `nextEnts`, raft-rs `next_ents`). Applying may trigger a joint auto-leave.
 */
export function nextEnts(p: Interface): Entry[] {
  p.persist();
  const log = p.raft.raftLog;
  const ents = log.nextEntriesSince(log.applied) ?? [];
  p.raft.commitApply(log.committed);
  return ents;
}

/** Makes a candidate-then-leader out of `p` and persists its no-op (the leader counts itself). */
export function becomeLeaderNow(p: Interface): void {
  p.raft.becomeCandidate();
  p.raft.becomeLeader();
  p.persist();
}

/** Has every follower ack the leader's log and applies it (raft-rs `commit_noop_entry`). */
export function commitNoopEntry(p: Interface): void {
  const r = p.raft;
  if (r.state !== StateRole.Leader) throw new Error("commitNoopEntry needs a leader");
  r.bcastAppend();
  p.persist();
  for (const msg of p.readMessages()) {
    if (msg.msgType !== MessageType.MsgAppend || msg.entries.length !== 1 || msg.entries[0].data.length !== 0) {
      throw new Error(`not a message to append the no-op entry: ${JSON.stringify(brief(msg), (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`);
    }
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: msg.to, to: r.id, term: r.term, index: msg.entries[0].index }));
  }
  p.readMessages();
  nextEnts(p);
}

/** A node whose storage holds entries with `terms` at indexes 1.., at term = the last one (etcd `entsWithConfig`). */
export function entsWithConfig(terms: number[], id: NodeId, peers: NodeId[], opts: TestRaftOptions = {}): Interface {
  const store = MemStorage.withVoters(peers);
  store.append(entsWithTerms(terms));
  const p = newTestRaft(id, [], 5, 1, store, opts);
  p.raft.reset(terms[terms.length - 1]);
  return p;
}

/** A node that voted for `vote` in `term` but holds no entries (etcd `votedWithConfig`). */
export function votedWithConfig(vote: NodeId, term: number, id: NodeId, peers: NodeId[], opts: TestRaftOptions = {}): Interface {
  const store = MemStorage.withVoters(peers);
  store.setHardState({ term, vote, commit: 0 });
  const p = newTestRaft(id, [], 5, 1, store, opts);
  p.raft.reset(term);
  return p;
}

/** A fresh node of a cluster `peers` that has already moved to `term` as a follower without a leader. */
export function followerAtTerm(id: NodeId, peers: NodeId[], term: number, opts: TestRaftOptions = {}): Interface {
  const p = newTestRaft(id, peers, 10, 1, undefined, opts);
  p.raft.becomeFollower(term, 0n);
  return p;
}

export function confChange(changes: [ConfChangeType, NodeId][], transition = ConfChangeTransition.Auto): ConfChangeV2 {
  return { transition, changes: changes.map(([changeType, nodeId]) => ({ changeType, nodeId })), context: new Uint8Array() };
}

export const addNode = (id: NodeId): ConfChangeV2 => confChange([[ConfChangeType.AddNode, id]]);
export const removeNode = (id: NodeId): ConfChangeV2 => confChange([[ConfChangeType.RemoveNode, id]]);
export const addLearner = (id: NodeId): ConfChangeV2 => confChange([[ConfChangeType.AddLearnerNode, id]]);
/** The empty ConfChangeV2: leave a joint configuration. */
export const leaveJoint = (): ConfChangeV2 => confChange([]);

/** A MsgPropose carrying one ConfChangeV2 entry. */
export function proposeConfChange(from: NodeId, to: NodeId, cc: ConfChangeV2): Message {
  return newMessage({ msgType: MessageType.MsgPropose, from, to, entries: [newEntry({ entryType: EntryType.EntryConfChangeV2, data: encodeConfChangeV2(cc) })] });
}

/** Decodes and applies every conf change entry in `ents` on `p`; returns how many were applied. */
export function applyConfChanges(p: Interface, ents: Entry[]): number {
  let n = 0;
  for (const e of ents) {
    if (e.entryType !== EntryType.EntryConfChangeV2) continue;
    p.store.setConfState(p.raft.applyConfChange(decodeConfChangeV2(e.data)));
    n++;
  }
  return n;
}

/** Sorted voter ids (both halves of a joint config). */
export function voterIds(r: Raft): NodeId[] {
  return r.prs.conf.voters.ids();
}

export function learnerIds(r: Raft): NodeId[] {
  return [...r.prs.conf.learners].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A MsgReadIndex carrying `ctx`, as RawNode.readIndex builds it. */
export function readIndex(from: NodeId, to: NodeId, ctx: string): Message {
  return newMessage({ msgType: MessageType.MsgReadIndex, from, to, entries: [newEntry({ data: new TextEncoder().encode(ctx) })] });
}

export function transferLeader(transferee: NodeId, to: NodeId): Message {
  return newMessage({ msgType: MessageType.MsgTransferLeader, from: transferee, to });
}

export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

/** Exactly one queued message, or a failure naming what was there. */
export function expectOneMessage(p: Interface): Message {
  const msgs = p.readMessages();
  if (msgs.length !== 1) throw new Error(`expected one message, got ${msgs.length}: ${msgs.map((x) => MessageType[x.msgType]).join(", ")}`);
  return msgs[0];
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

/**
 * Like `nextEnts`, but applies conf change entries before reporting them applied, in the order
 * RawNode users must follow (apply, then advance): this is what lets a leader auto-leave a joint
 * configuration. Returns the applied entries.
 */
export function applyCommitted(p: Interface): Entry[] {
  p.persist();
  const log = p.raft.raftLog;
  const ents = log.nextEntriesSince(log.applied) ?? [];
  applyConfChanges(p, ents);
  if (ents.length > 0) p.raft.commitApply(ents[ents.length - 1].index);
  return ents;
}

/** Discards every stored entry up to and including `index` (etcd `Compact(index)` semantics). */
export function compactThrough(store: MemStorage, index: number): void {
  store.compact(index + 1);
}

/** Sets a readonly Raft option in place, for scenarios that flip it mid-test (e.g. a rolling pre-vote upgrade). */
export function setOption(r: Raft, opts: { preVote?: boolean; checkQuorum?: boolean }): void {
  Object.assign(r, opts);
}
