// RawNode: the Ready contract (what may be sent before and after persistence, mustSync, LightReady,
// synchronous and asynchronous persistence and apply), the input API, and restart from storage.
import { describe, expect, test } from "bun:test";
import { RaftError } from "../../src/raft/errors.ts";
import { StateRole } from "../../src/raft/raft.ts";
import { RawNode, SnapshotStatus } from "../../src/raft/raw-node.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { ConfChangeType, type Message, MessageType, NONE, type NodeId, newConfState, newEntry } from "../../src/raft/types.ts";
import { addLearner, addNode, compactThrough, confChange, m, text } from "./harness.ts";
import { DEFAULT_PEER_CONFIG, RawCluster, RawPeer, appliedData } from "./raw-harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];
const enc = (s: string) => new TextEncoder().encode(s);
const view = (msgs: Message[]) => msgs.map((x) => [MessageType[x.msgType], x.to, x.term, x.index, x.reject]);

function follower(id: NodeId = 2n): RawPeer {
  return RawPeer.bootstrap(id, newConfState({ voters: P3 }));
}

/** A single-voter node that has campaigned and processed its first Ready: leader, no-op applied. */
function singleLeader(): RawPeer {
  const p = RawPeer.bootstrap(1n, newConfState({ voters: [1n] }));
  p.node.campaign();
  p.handleReady();
  expect(p.node.raft.state).toBe(StateRole.Leader);
  expect(p.node.hasReady()).toBe(false);
  return p;
}

describe("the Ready contract", () => {
  test("a follower's append ack is only in persistedMessages, with the entries and hard state to persist", () => {
    const p = follower();
    p.node.step(m({ msgType: MessageType.MsgAppend, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, entries: [newEntry({ term: 1, index: 1 })] }));
    expect(p.node.hasReady()).toBe(true);
    const rd = p.node.ready();
    expect(rd.messages).toEqual([]);
    expect(view(rd.persistedMessages)).toEqual([["MsgAppendResponse", 1n, 1, 1, false]]);
    expect(rd.entries.map((e) => [e.term, e.index])).toEqual([[1, 1]]);
    expect(rd.hardState).toEqual({ term: 1, vote: NONE, commit: 0 });
    expect(rd.softState).toEqual({ leaderId: 1n, raftState: StateRole.Follower });
    expect(rd.mustSync).toBe(true);
    expect(rd.committedEntries).toEqual([]);
  });

  test("a vote grant is only in persistedMessages, and the vote is in the hard state to persist first", () => {
    const p = follower();
    p.node.step(m({ msgType: MessageType.MsgRequestVote, from: 3n, to: 2n, term: 5, index: 0, logTerm: 0 }));
    const rd = p.node.ready();
    expect(rd.messages).toEqual([]);
    expect(view(rd.persistedMessages)).toEqual([["MsgRequestVoteResponse", 3n, 5, 0, false]]);
    expect(rd.hardState).toEqual({ term: 5, vote: 3n, commit: 0 });
    expect(rd.mustSync).toBe(true);
  });

  test("a candidate's vote requests wait for persistence; a leader's appends may leave at once", () => {
    const p = RawPeer.bootstrap(1n, newConfState({ voters: P3 }));
    p.node.campaign();
    const rd1 = p.node.ready();
    expect(rd1.softState?.raftState).toBe(StateRole.Candidate);
    expect(rd1.hardState).toEqual({ term: 1, vote: 1n, commit: 0 });
    expect(rd1.messages).toEqual([]);
    expect(view(rd1.persistedMessages)).toEqual([
      ["MsgRequestVote", 2n, 1, 0, false],
      ["MsgRequestVote", 3n, 1, 0, false],
    ]);
    p.store.setHardState(rd1.hardState!);
    p.node.advance(rd1);
    p.node.step(m({ msgType: MessageType.MsgRequestVoteResponse, from: 2n, to: 1n, term: 1 }));
    const rd2 = p.node.ready();
    expect(rd2.softState).toEqual({ leaderId: 1n, raftState: StateRole.Leader });
    expect(rd2.entries.map((e) => [e.term, e.index])).toEqual([[1, 1]]);
    // Thesis §10.2.1: the leader replicates while it writes its own disk.
    expect(view(rd2.messages)).toEqual([
      ["MsgAppend", 2n, 1, 0, false],
      ["MsgAppend", 3n, 1, 0, false],
    ]);
    expect(rd2.persistedMessages).toEqual([]);
  });

  test("mustSync is false when only the commit index changed", () => {
    const p = follower();
    p.node.step(m({ msgType: MessageType.MsgAppend, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, entries: [newEntry({ term: 1, index: 1 })] }));
    p.handleReady();
    p.node.step(m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 1, commit: 1 }));
    const rd = p.node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: NONE, commit: 1 });
    expect(rd.entries).toEqual([]);
    expect(rd.mustSync).toBe(false);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1]);
    expect(view(rd.persistedMessages)).toEqual([["MsgHeartbeatResponse", 1n, 1, 0, false]]);
  });

  test("advance returns a LightReady with what persisting made possible: the leader's own commit", () => {
    const p = RawPeer.bootstrap(1n, newConfState({ voters: [1n] }));
    p.node.campaign();
    const rd = p.node.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([1]);
    // The leader does not count itself before its write is durable.
    expect(rd.committedEntries).toEqual([]);
    p.store.append(rd.entries);
    p.store.setHardState(rd.hardState!);
    const light = p.node.advance(rd);
    expect(light.commitIndex).toBe(1);
    expect(light.committedEntries.map((e) => e.index)).toEqual([1]);
    expect(light.messages).toEqual([]);
    p.node.advanceApply();
    expect(p.node.hasReady()).toBe(false);
    p.node.propose(new Uint8Array(), enc("x"));
    const rd2 = p.node.ready();
    expect(rd2.entries.map((e) => [e.index, text(e.data)])).toEqual([[2, "x"]]);
    expect(rd2.committedEntries).toEqual([]);
    // The commit index only moved after the Ready: no hard state change in it.
    expect(rd2.hardState).toBeUndefined();
    p.store.append(rd2.entries);
    const light2 = p.node.advance(rd2);
    expect(light2.commitIndex).toBe(2);
    expect(light2.committedEntries.map((e) => text(e.data))).toEqual(["x"]);
    p.node.advanceApply();
    expect(p.node.hasReady()).toBe(false);
    expect(p.node.status().applied).toBe(2);
  });

  test("Ready numbers increase and advancing out of order is refused", () => {
    const p = follower();
    p.node.step(m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 1 }));
    const rd1 = p.node.ready();
    p.node.step(m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 2 }));
    const rd2 = p.node.ready();
    expect(rd2.number).toBe(rd1.number + 1);
    expect(() => p.node.advance(rd1)).toThrow(/out of order/);
  });

  test("the soft state is reported once per change", () => {
    const p = RawPeer.bootstrap(1n, newConfState({ voters: [1n] }));
    p.node.campaign();
    p.handleReady();
    expect(p.readies[0].softState).toEqual({ leaderId: 1n, raftState: StateRole.Leader });
    p.node.propose(new Uint8Array(), enc("x"));
    p.handleReady();
    expect(p.readies[1].softState).toBeUndefined();
  });
});

describe("asynchronous apply and persistence", () => {
  test("advanceAppend, then advanceApplyTo later: committed entries are handed out once", () => {
    const p = singleLeader();
    p.node.propose(new Uint8Array(), enc("a"));
    p.node.propose(new Uint8Array(), enc("b"));
    const rd = p.node.ready();
    p.store.append(rd.entries);
    const light = p.node.advanceAppend(rd);
    expect(light.commitIndex).toBe(3);
    expect(light.committedEntries.map((e) => text(e.data))).toEqual(["a", "b"]);
    // Not applied yet, and nothing more to hand out.
    expect(p.node.status().applied).toBe(1);
    expect(p.node.hasReady()).toBe(false);
    p.node.propose(new Uint8Array(), enc("c"));
    const rd2 = p.node.ready();
    expect(rd2.committedEntries).toEqual([]);
    p.store.append(rd2.entries);
    const light2 = p.node.advanceAppend(rd2);
    expect(light2.committedEntries.map((e) => text(e.data))).toEqual(["c"]);
    p.node.advanceApplyTo(3);
    expect(p.node.status().applied).toBe(3);
    p.node.advanceApplyTo(4);
    expect(p.node.status().applied).toBe(4);
    // Applying past the commit index is a programming error.
    expect(() => p.node.advanceApplyTo(9)).toThrow(/out of range/);
  });

  test("advanceAppendAsync + onPersistReady: the leader commits only what is durable", () => {
    const p = RawPeer.bootstrap(1n, newConfState({ voters: [1n] }));
    p.node.campaign();
    const rd1 = p.node.ready();
    p.store.append(rd1.entries);
    p.store.setHardState(rd1.hardState!);
    p.node.advanceAppendAsync(rd1);
    expect(p.node.raft.raftLog.committed).toBe(0);
    p.node.propose(new Uint8Array(), enc("a"));
    const rd2 = p.node.ready();
    p.store.append(rd2.entries);
    p.node.advanceAppendAsync(rd2);
    expect(p.node.hasReady()).toBe(false);
    // The first write completes.
    p.node.onPersistReady(rd1.number);
    expect(p.node.hasReady()).toBe(true);
    const rd3 = p.node.ready();
    expect(rd3.hardState?.commit).toBe(1);
    expect(rd3.mustSync).toBe(false);
    expect(rd3.committedEntries.map((e) => e.index)).toEqual([1]);
    p.node.advanceAppendAsync(rd3);
    // "Everything up to Ready n is durable" covers the later write too.
    p.node.onPersistReady(rd3.number);
    const rd4 = p.node.ready();
    expect(rd4.committedEntries.map((e) => text(e.data))).toEqual(["a"]);
  });
});

test("async persistence: a lone voter that wins while an earlier Ready is still being written commits after it lands", () => {
  // Regression: becoming leader with a Ready in flight used to throw (ready() and onPersistEntries
  // assumed a new leader's log is always durable, as raft-rs does).
  const p = RawPeer.bootstrap(1n, newConfState({ voters: [1n] }));
  p.node.raft.becomeFollower(1, 2n);
  p.node.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 1, index: 0, logTerm: 0, entries: [newEntry({ term: 1, index: 1, data: enc("old") })] }));
  const rd1 = p.node.ready();
  p.store.append(rd1.entries);
  p.store.setHardState(rd1.hardState!);
  p.node.advanceAppendAsync(rd1);
  p.node.step(m({ msgType: MessageType.MsgTimeoutNow, from: 2n, to: 1n, term: 1 }));
  expect(p.node.raft.state).toBe(StateRole.Leader);
  const rd2 = p.node.ready();
  expect(rd2.entries.map((e) => [e.term, e.index])).toEqual([[2, 2]]);
  p.store.append(rd2.entries);
  p.store.setHardState(rd2.hardState!);
  p.node.advanceAppendAsync(rd2);
  // The older write lands first: an entry of the old term, nothing to commit yet.
  p.node.onPersistReady(rd1.number);
  expect(p.node.raft.raftLog.committed).toBe(0);
  p.node.onPersistReady(rd2.number);
  const rd3 = p.node.ready();
  expect(rd3.committedEntries.map((e) => [e.index, text(e.data)])).toEqual([
    [1, "old"],
    [2, ""],
  ]);
});

describe("inputs through RawNode", () => {
  test("step refuses local message types from outside", () => {
    const p = follower();
    for (const t of [MessageType.MsgHup, MessageType.MsgBeat, MessageType.MsgUnreachable, MessageType.MsgSnapStatus, MessageType.MsgCheckQuorum]) {
      expect(() => p.node.step(m({ msgType: t, from: 1n, to: 2n, term: 1 }))).toThrow(/StepLocalMsg/);
    }
    expect(p.node.raft.state).toBe(StateRole.Follower);
    expect(p.node.raft.term).toBe(0);
    expect(p.node.hasReady()).toBe(false);
  });

  test("step refuses responses from unknown peers but handles their requests", () => {
    const p = follower();
    for (const t of [MessageType.MsgAppendResponse, MessageType.MsgHeartbeatResponse, MessageType.MsgRequestVoteResponse, MessageType.MsgRequestPreVoteResponse]) {
      expect(() => p.node.step(m({ msgType: t, from: 9n, to: 2n, term: 1 }))).toThrow(/StepPeerNotFound/);
    }
    expect(p.node.hasReady()).toBe(false);
    p.node.step(m({ msgType: MessageType.MsgRequestVote, from: 9n, to: 2n, term: 1 }));
    expect(view(p.node.ready().persistedMessages)).toEqual([["MsgRequestVoteResponse", 9n, 1, 0, false]]);
  });

  test("campaign, propose (on the leader and by a follower), readIndex and transferLeader in a cluster", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.propose(1n, "a");
    c.propose(2n, "b");
    for (const id of P3) expect(appliedData(c.peer(id))).toEqual(["a", "b"]);
    c.node(3n).readIndex(enc("r1"));
    c.stabilize();
    expect(c.peer(3n).readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[3, "r1"]]);
    c.node(1n).transferLeader(3n);
    c.stabilize();
    expect(c.leader()).toBe(3n);
    expect(c.node(3n).raft.term).toBe(2);
    c.propose(3n, "c");
    for (const id of P3) expect(appliedData(c.peer(id))).toEqual(["a", "b", "c"]);
  });

  test("a dropped proposal surfaces as RaftError ProposalDropped", () => {
    const c = new RawCluster(P3);
    // No leader yet.
    expect(() => c.node(2n).propose(new Uint8Array(), enc("x"))).toThrow(RaftError);
    c.elect(1n);
    c.node(1n).transferLeader(3n);
    c.drop = (x) => x.msgType === MessageType.MsgTimeoutNow;
    c.stabilize();
    expect(() => c.node(1n).proposeBatch([enc("x")])).toThrow(/ProposalDropped/);
  });

  test("proposeBatch appends all entries in one Ready and one append per follower", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.node(1n).proposeBatch([enc("a"), enc("b"), enc("c")]);
    const rd = c.node(1n).ready();
    expect(rd.entries.map((e) => text(e.data))).toEqual(["a", "b", "c"]);
    expect(rd.messages.map((x) => [x.to, x.entries.length])).toEqual([
      [2n, 3],
      [3n, 3],
    ]);
  });

  test("reportUnreachable sends a replicating follower back to probing", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.propose(1n, "a");
    const pr2 = c.node(1n).status().progress!.get(2n)!;
    expect(pr2.state).toBe(ProgressState.Replicate);
    c.node(1n).reportUnreachable(2n);
    expect(pr2.state).toBe(ProgressState.Probe);
    expect(pr2.nextIdx).toBe(pr2.matched + 1);
  });

  test("reportSnapshot: a failure resends after a heartbeat; a finish waits for the follower's ack", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.drop = (x) => x.to === 3n || x.from === 3n;
    c.propose(1n, "a", "b", "c");
    const lead = c.peer(1n);
    lead.store.createSnapshot(lead.appliedIndex, lead.confState(), enc("sm"));
    compactThrough(lead.store, lead.appliedIndex);
    const snaps: Message[] = [];
    c.drop = (x) => {
      if (x.msgType !== MessageType.MsgSnapshot) return false;
      snaps.push(x);
      return true;
    };
    c.tick(1n);
    c.stabilize();
    const pr3 = lead.node.status().progress!.get(3n)!;
    expect(snaps.length).toBe(1);
    expect(pr3.state).toBe(ProgressState.Snapshot);
    lead.node.reportSnapshot(3n, SnapshotStatus.Failure);
    expect([pr3.state, pr3.pendingSnapshot, pr3.isPaused()]).toEqual([ProgressState.Probe, 0, true]);
    c.tick(1n);
    c.stabilize();
    expect(snaps.length).toBe(2);
    // This time it arrives; the application reports success before the follower's ack comes back.
    c.drop = () => false;
    c.queue.push(snaps[1]);
    lead.node.reportSnapshot(3n, SnapshotStatus.Finish);
    expect([pr3.state, pr3.nextIdx, pr3.isPaused()]).toEqual([ProgressState.Probe, lead.appliedIndex + 1, true]);
    c.stabilize();
    expect(pr3.state).toBe(ProgressState.Replicate);
    expect(c.peer(3n).appliedIndex).toBe(lead.appliedIndex);
    expect(new TextDecoder().decode(c.peer(3n).store.snap.data)).toBe("sm");
  });

  test("a learner's campaign() is refused: no messages, no state change", () => {
    const c = new RawCluster([1n, 2n], {}, [3n]);
    c.elect(1n);
    c.node(3n).campaign();
    expect(c.node(3n).raft.state).toBe(StateRole.Follower);
    expect(c.node(3n).hasReady()).toBe(false);
    c.stabilize();
    expect(c.leader()).toBe(1n);
    expect(c.node(1n).raft.term).toBe(1);
  });

  test("status: hard and soft state, applied, configuration; progress only on the leader", () => {
    const c = new RawCluster(P3, {}, [4n]);
    c.elect(1n);
    c.propose(1n, "a");
    const s = c.node(1n).status();
    expect(s.hardState).toEqual({ term: 1, vote: 1n, commit: 2 });
    expect(s.softState).toEqual({ leaderId: 1n, raftState: StateRole.Leader });
    expect(s.applied).toBe(2);
    expect(s.confState.voters).toEqual(P3);
    expect(s.confState.learners).toEqual([4n]);
    expect([...s.progress!.keys()].sort()).toEqual([1n, 2n, 3n, 4n]);
    expect(c.node(2n).status().progress).toBeUndefined();
  });

  test("status: the leader lists every other member's progress as copies; a lagging follower shows its match", () => {
    const c = new RawCluster(P3, {}, [4n]);
    c.elect(1n);
    c.drop = (x) => x.to === 3n;
    c.propose(1n, "a");
    const s = c.node(1n).status();
    expect(s.lastIndex).toBe(2);
    expect(s.peers!.map((p) => [p.id, p.match, p.learner])).toEqual([
      [2n, 2, false],
      [3n, 1, false],
      [4n, 2, true],
    ]);
    expect(s.peers![0].state).toBe(ProgressState.Replicate);
    expect(s.peers![0].recentActive).toBe(true);
    (s.peers![0] as { match: number }).match = 99;
    expect(c.node(1n).status().progress!.get(2n)!.matched).toBe(2);
    expect(c.node(2n).status().peers).toBeUndefined();
    expect(c.node(2n).status().lastIndex).toBe(2);
  });
});

describe("membership through RawNode", () => {
  test("add a learner, let it catch up, then promote it", () => {
    const c = new RawCluster(P3);
    // Node 4 is bootstrapped with the cluster's configuration, which does not contain it yet.
    c.add(RawPeer.bootstrap(4n, newConfState({ voters: P3 })));
    c.elect(1n);
    c.propose(1n, "a");
    c.node(1n).proposeConfChange(new Uint8Array(), addLearner(4n));
    c.stabilize();
    for (const id of [1n, 2n, 3n, 4n]) expect(c.peer(id).confState().learners, `node ${id}`).toEqual([4n]);
    expect(appliedData(c.peer(4n))).toEqual(["a"]);
    expect(c.node(4n).raft.promotable).toBe(false);
    c.node(1n).proposeConfChange(new Uint8Array(), addNode(4n));
    c.stabilize();
    for (const id of [1n, 2n, 3n, 4n]) {
      const cs = c.peer(id).confState();
      expect([cs.voters, cs.learners], `node ${id}`).toEqual([[1n, 2n, 3n, 4n], []]);
    }
    expect(c.node(4n).raft.promotable).toBe(true);
  });

  test("joint consensus with auto-leave: every node ends in the new configuration", () => {
    const c = new RawCluster(P3);
    c.add(RawPeer.bootstrap(4n, newConfState({ voters: P3 })));
    c.elect(1n);
    const cc = confChange([
      [ConfChangeType.AddNode, 4n],
      [ConfChangeType.RemoveNode, 3n],
    ]);
    c.node(1n).proposeConfChange(new Uint8Array(), cc);
    c.stabilize();
    const joint = c.peer(1n).confState();
    expect([joint.voters, joint.votersOutgoing, joint.autoLeave]).toEqual([[1n, 2n, 4n], P3, true]);
    // raft-rs appends the leave entry without a broadcast: the next heartbeat carries it.
    c.tick(1n);
    c.stabilize();
    for (const id of [1n, 2n, 3n, 4n]) {
      const cs = c.peer(id).confState();
      expect([cs.voters, cs.votersOutgoing, cs.autoLeave], `node ${id}`).toEqual([[1n, 2n, 4n], [], false]);
    }
    expect(c.node(3n).raft.promotable).toBe(false);
    c.drop = (x) => x.to === 3n || x.from === 3n;
    c.propose(1n, "without 3");
    expect(appliedData(c.peer(4n))).toEqual(["without 3"]);
  });
});

describe("restart from storage", () => {
  test("term, vote and commit come back; applied entries are not delivered again", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.propose(1n, "a", "b", "c");
    const p2 = c.peer(2n);
    const before = p2.node.status();
    p2.restart();
    const after = p2.node.status();
    expect(after.hardState).toEqual(before.hardState);
    expect(after.hardState).toEqual({ term: 1, vote: 1n, commit: 4 });
    expect(after.applied).toBe(4);
    expect(after.confState.voters).toEqual(P3);
    expect(p2.node.hasReady()).toBe(false);
    c.propose(1n, "d");
    expect(appliedData(p2)).toEqual(["a", "b", "c", "d"]);
  });

  test("committed entries beyond the applied index are delivered again after a restart", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.propose(1n, "a", "b", "c");
    // As if the process died after persisting commit 4 but having applied only up to 2.
    const node = new RawNode({ ...DEFAULT_PEER_CONFIG, id: 2n, applied: 2 }, c.peer(2n).store);
    expect(node.hasReady()).toBe(true);
    const rd = node.ready();
    expect(rd.committedEntries.map((e) => [e.index, text(e.data)])).toEqual([
      [3, "b"],
      [4, "c"],
    ]);
    expect(rd.entries).toEqual([]);
    expect(rd.hardState).toBeUndefined();
  });

  test("a restarted follower rejoins and catches up on what it missed", () => {
    const c = new RawCluster(P3);
    c.elect(1n);
    c.propose(1n, "a");
    c.drop = (x) => x.to === 3n || x.from === 3n;
    c.propose(1n, "b", "c");
    const p3 = c.peer(3n);
    p3.restart();
    c.drop = () => false;
    c.tick(1n);
    c.stabilize();
    expect(appliedData(p3)).toEqual(["a", "b", "c"]);
    expect(p3.node.status().hardState).toEqual(c.node(1n).status().hardState);
  });
});
