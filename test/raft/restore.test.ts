// Scenario tests for snapshot restore and snapshot provision, ported from the scenarios of etcd
// raft_test.go and raft-rs test_raft.rs (including raft-rs request_snapshot).
import { describe, expect, test } from "bun:test";
import { RaftError } from "../../src/raft/errors.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { MessageType, NONE, type NodeId, newConfState, newSnapshot } from "../../src/raft/types.ts";
import {
  type Interface,
  Network,
  StateRole,
  beat,
  compactThrough,
  entsWithTerms,
  expectOneMessage,
  hup,
  learnerIds,
  m,
  newStorageWithEntries,
  newTestRaft,
  newTestRaftWithLearners,
  nextEnts,
  proposal,
  setRandomizedElectionTimeout,
  snapshot,
  tickTimes,
  voterIds,
} from "./harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];

describe("Raft.restore", () => {
  test("Restore: the log becomes the snapshot, the configuration its ConfState; a second restore is a no-op", () => {
    const s = snapshot(11, 11, P3);
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    expect(p.raft.restore(s)).toBe(true);
    expect(p.raft.raftLog.lastIndex()).toBe(11);
    expect(p.raft.raftLog.term(11)).toBe(11);
    expect(p.raft.raftLog.committed).toBe(11);
    expect(voterIds(p.raft)).toEqual(P3);
    expect(p.raft.restore(s)).toBe(false);
  });

  test("RestoreWithLearner: voters and learners come from the snapshot", () => {
    const s = snapshot(11, 11, [1n, 2n], [3n]);
    const p = newTestRaftWithLearners(3n, [1n, 2n], [3n], 8, 2);
    expect(p.raft.promotable).toBe(false);
    expect(p.raft.restore(s)).toBe(true);
    expect(p.raft.raftLog.lastIndex()).toBe(11);
    expect(p.raft.raftLog.term(11)).toBe(11);
    expect(voterIds(p.raft)).toEqual([1n, 2n]);
    expect(learnerIds(p.raft)).toEqual([3n]);
    expect(p.raft.promotable).toBe(false);
    expect(p.raft.restore(s)).toBe(false);
  });

  test("RestoreWithVotersOutgoing: an outgoing voter installs a joint configuration", () => {
    const s = newSnapshot(11, 11, newConfState({ voters: [2n, 3n, 4n], votersOutgoing: [1n, 2n, 3n] }));
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    expect(p.raft.restore(s)).toBe(true);
    expect(p.raft.raftLog.lastIndex()).toBe(11);
    expect(p.raft.raftLog.term(11)).toBe(11);
    expect(voterIds(p.raft)).toEqual([1n, 2n, 3n, 4n]);
    expect(p.raft.prs.conf.voters.outgoing.sortedIds()).toEqual([1n, 2n, 3n]);
    // Still a voter (of the outgoing half) until the joint configuration is left.
    expect(p.raft.promotable).toBe(true);
    expect(p.raft.restore(s)).toBe(false);
  });

  test("RestoreVoterToLearner: a voter accepts a snapshot that made it a learner", () => {
    // A snapshot may compress "remove 3, re-add 3 as learner"; refusing it would cut 3 off forever.
    const p = newTestRaft(3n, P3, 10, 1);
    expect(p.raft.promotable).toBe(true);
    expect(p.raft.restore(snapshot(11, 11, [1n, 2n], [3n]))).toBe(true);
    expect(p.raft.promotable).toBe(false);
  });

  test("RestoreLearnerPromotion: a learner becomes a voter through a snapshot", () => {
    const p = newTestRaftWithLearners(3n, [1n, 2n], [3n], 10, 1);
    expect(p.raft.promotable).toBe(false);
    expect(p.raft.restore(snapshot(11, 11, P3))).toBe(true);
    expect(p.raft.promotable).toBe(true);
  });

  test("a snapshot whose ConfState does not contain this node is refused", () => {
    const p = newTestRaft(3n, P3, 10, 1);
    expect(p.raft.restore(snapshot(11, 11, [1n, 2n]))).toBe(false);
    expect(p.raft.raftLog.lastIndex()).toBe(0);
    expect(voterIds(p.raft)).toEqual(P3);
  });

  test("only a follower restores a snapshot; anyone else steps down to a new term instead", () => {
    const p = newTestRaft(1n, P3, 10, 1);
    p.raft.becomeCandidate();
    expect(p.raft.restore(snapshot(11, 11, P3))).toBe(false);
    expect(p.raft.state).toBe(StateRole.Follower);
    expect(p.raft.term).toBe(2);
    expect(p.raft.raftLog.lastIndex()).toBe(0);
  });

  test("RestoreIgnoreSnapshot: a snapshot the log already contains only fast-forwards the commit", () => {
    const store = newStorageWithEntries(entsWithTerms([1, 1, 1]), [1n, 2n]);
    store.setHardState({ term: 1, vote: NONE, commit: 1 });
    const p = newTestRaft(1n, [], 10, 1, store);
    expect(p.raft.restore(snapshot(1, 1, [1n, 2n]))).toBe(false);
    expect(p.raft.raftLog.committed).toBe(1);
    expect(p.raft.restore(snapshot(2, 1, [1n, 2n]))).toBe(false);
    expect(p.raft.raftLog.committed).toBe(2);
    // The log was kept.
    expect(p.raft.raftLog.lastIndex()).toBe(3);
  });

  test("a snapshot older than the commit index is refused and answered with the commit index", () => {
    const store = newStorageWithEntries(entsWithTerms([1, 1, 1]), [1n, 2n]);
    store.setHardState({ term: 1, vote: NONE, commit: 3 });
    const p = newTestRaft(2n, [], 10, 1, store);
    p.step(m({ msgType: MessageType.MsgSnapshot, from: 1n, to: 2n, term: 1, snapshot: snapshot(2, 1, [1n, 2n]) }));
    const resp = expectOneMessage(p);
    expect([MessageType[resp.msgType], resp.to, resp.index, resp.reject]).toEqual(["MsgAppendResponse", 1n, 3, false]);
    expect(p.raft.raftLog.lastIndex()).toBe(3);
  });

  test("RestoreFromSnapMsg: MsgSnapshot names the leader, installs the snapshot and acks its index", () => {
    const p = newTestRaft(2n, [1n, 2n], 10, 1);
    p.step(m({ msgType: MessageType.MsgSnapshot, from: 1n, to: 2n, term: 2, snapshot: snapshot(11, 11, [1n, 2n]) }));
    expect(p.raft.leaderId).toBe(1n);
    expect(p.raft.term).toBe(2);
    expect(p.raft.raftLog.lastIndex()).toBe(11);
    const resp = expectOneMessage(p);
    expect([MessageType[resp.msgType], resp.to, resp.index, resp.reject]).toEqual(["MsgAppendResponse", 1n, 11, false]);
    // The snapshot waits in the unstable log for the application to persist it.
    expect(p.raft.raftLog.unstableSnapshot()?.metadata.index).toBe(11);
  });
});

describe("providing snapshots", () => {
  /** A leader whose log starts after a snapshot at 11, with follower 2 known. */
  function leaderAfterSnapshot(): Interface {
    const p = newTestRaft(1n, [1n], 10, 1);
    p.raft.restore(snapshot(11, 11, [1n, 2n]));
    p.persist();
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    p.readMessages();
    return p;
  }

  test("ProvideSnap: a follower that needs compacted entries gets a snapshot", () => {
    const p = leaderAfterSnapshot();
    const pr = p.raft.prs.get(2n)!;
    pr.nextIdx = p.raft.raftLog.firstIndex();
    p.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: p.raft.term, index: pr.nextIdx - 1, reject: true }));
    const msg = expectOneMessage(p);
    expect(msg.msgType).toBe(MessageType.MsgSnapshot);
    expect(msg.snapshot?.metadata.index).toBe(11);
    expect(pr.state).toBe(ProgressState.Snapshot);
    expect(pr.pendingSnapshot).toBe(11);
  });

  test("IgnoreProvidingSnap: no snapshot goes to a follower that is not recently active", () => {
    const p = leaderAfterSnapshot();
    const pr = p.raft.prs.get(2n)!;
    pr.nextIdx = p.raft.raftLog.firstIndex() - 1;
    pr.recentActive = false;
    p.step(proposal(1n, 1n));
    expect(p.readMessages()).toEqual([]);
    expect(pr.state).toBe(ProgressState.Probe);
  });

  test("a snapshot that is temporarily unavailable is retried later, not fatal", () => {
    const p = leaderAfterSnapshot();
    const pr = p.raft.prs.get(2n)!;
    pr.nextIdx = p.raft.raftLog.firstIndex();
    p.store.triggerSnapUnavailable = 1;
    const reject = () => m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: p.raft.term, index: pr.nextIdx - 1, reject: true });
    p.step(reject());
    expect(p.readMessages()).toEqual([]);
    expect(pr.state).toBe(ProgressState.Probe);
    p.step(m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: p.raft.term }));
    expect(p.readMessages().map((x) => MessageType[x.msgType])).toEqual(["MsgSnapshot"]);
    expect(pr.state).toBe(ProgressState.Snapshot);
  });

  test("LearnerReceiveSnapshot: a learner behind the leader's compacted log catches up by snapshot", () => {
    const store = MemStorage.withVoters([1n], [2n]);
    const n1 = newTestRaftWithLearners(1n, [1n], [2n], 10, 1, store);
    const n2 = newTestRaftWithLearners(2n, [1n], [2n], 10, 1);
    n1.raft.restore(snapshot(11, 11, [1n], [2n]));
    n1.persist();
    const nt = new Network([n1, n2]);
    setRandomizedElectionTimeout(n1.raft, n1.raft.electionTimeout);
    tickTimes(n1.raft, n1.raft.electionTimeout);
    expect(n1.raft.state).toBe(StateRole.Leader);
    nt.send([beat(1n)]);
    expect(n2.raft.raftLog.firstIndex()).toBe(12);
    expect(n2.raft.raftLog.committed).toBe(n1.raft.raftLog.committed);
    expect(n1.raft.raftLog.committed).toBe(12);
  });

  test("SlowNodeRestore: a node that missed compacted entries is restored by snapshot and keeps up", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.isolate(3n);
    for (let j = 0; j <= 100; j++) nt.send([proposal(1n, 1n, "")]);
    const lead = nt.peer(1n);
    nextEnts(lead);
    const applied = lead.raft.raftLog.applied;
    nt.storage.get(1n)!.createSnapshot(applied, newConfState({ voters: voterIds(lead.raft) }), new Uint8Array());
    compactThrough(nt.storage.get(1n)!, applied);
    nt.recover();
    // Heartbeats until the leader knows 3 is active again (one round suffices; bounded for safety).
    for (let i = 0; i < 10 && !lead.raft.prs.get(3n)!.recentActive; i++) nt.send([beat(1n)]);
    expect(lead.raft.prs.get(3n)!.recentActive).toBe(true);
    const follower = nt.raft(3n);
    nt.send([proposal(1n, 1n, "")]);
    expect(follower.raftLog.firstIndex()).toBe(applied + 1);
    nt.send([proposal(1n, 1n, "")]);
    expect(follower.raftLog.committed).toBe(lead.raft.raftLog.committed);
    expect(follower.raftLog.lastIndex()).toBe(lead.raft.raftLog.lastIndex());
  });
});

describe("request_snapshot (raft-rs)", () => {
  /** 3 nodes; leader 1 has committed and applied 4 entries and snapshotted them. */
  function cluster(): { nt: Network; lead: Interface } {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.send([proposal(1n, 1n, "a"), proposal(1n, 1n, "b"), proposal(1n, 1n, "c")]);
    const lead = nt.peer(1n);
    nextEnts(lead);
    nt.storage.get(1n)!.createSnapshot(lead.raft.raftLog.applied, newConfState({ voters: P3 }), new TextEncoder().encode("sm@4"));
    expect(lead.raft.raftLog.committed).toBe(4);
    return { nt, lead };
  }

  test("an up-to-date follower asks for a snapshot, gets it, and rejoins replication", () => {
    const { nt, lead } = cluster();
    const f = nt.peer(2n);
    f.raft.requestSnapshot(f.raft.raftLog.committed);
    const req = expectOneMessage(f);
    expect([MessageType[req.msgType], req.to, req.reject, req.requestSnapshot, req.rejectHint, req.index]).toEqual(["MsgAppendResponse", 1n, true, 4, 4, 4]);
    // Deliver the request but hold the snapshot back: replication to 2 pauses meanwhile.
    const held = nt.dispatch([req]);
    expect(held.map((x) => MessageType[x.msgType])).toEqual(["MsgSnapshot"]);
    const pr = lead.raft.prs.get(2n)!;
    expect(pr.state).toBe(ProgressState.Snapshot);
    nt.send([proposal(1n, 1n, "d")]);
    expect(lead.raft.raftLog.committed).toBe(5);
    expect(f.raft.raftLog.committed).toBe(4);
    nt.send(held);
    // The follower installed the snapshot even though its log already had index 4 (it asked for it).
    expect(f.store.snap.metadata.index).toBe(4);
    expect(new TextDecoder().decode(f.store.snap.data)).toBe("sm@4");
    expect(f.raft.pendingRequestSnapshot).toBe(0);
    nt.send([m({ msgType: MessageType.MsgSnapStatus, from: 2n, to: 1n })]);
    nt.send([m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: lead.raft.term })]);
    nt.send([proposal(1n, 1n, "e")]);
    expect(lead.raft.raftLog.committed).toBe(6);
    expect(f.raft.raftLog.committed).toBe(6);
    expect(pr.state).toBe(ProgressState.Replicate);
  });

  test("a pending request makes the follower answer appends and heartbeats with the request again", () => {
    const f = cluster().nt.peer(2n);
    f.raft.requestSnapshot(4);
    f.readMessages();
    for (const msgType of [MessageType.MsgHeartbeat, MessageType.MsgAppend]) {
      f.step(m({ msgType, from: 1n, to: 2n, term: f.raft.term, index: 4, logTerm: 1, commit: 4 }));
      const again = expectOneMessage(f);
      expect([MessageType[again.msgType], again.reject, again.requestSnapshot]).toEqual(["MsgAppendResponse", true, 4]);
    }
  });

  test("request snapshot unavailable: the leader keeps probing and sends the snapshot once it is available", () => {
    const { nt, lead } = cluster();
    const f = nt.peer(2n);
    f.raft.requestSnapshot(4);
    const req = expectOneMessage(f);
    const pr = lead.raft.prs.get(2n)!;
    lead.store.triggerSnapUnavailable = 1;
    lead.step(req);
    expect(pr.state).toBe(ProgressState.Probe);
    lead.store.triggerSnapUnavailable = 1;
    lead.step(req);
    expect(pr.state).toBe(ProgressState.Probe);
    // Not stale although reject != next-1: a snapshot request is always honoured.
    lead.step(req);
    expect(pr.state).toBe(ProgressState.Snapshot);
    expect(lead.readMessages().filter((x) => x.msgType === MessageType.MsgSnapshot).length).toBe(1);
  });

  test("a request beyond the stored snapshot waits for a real one instead of getting a forged index", () => {
    // Regression: MemStorage used to raise a stale snapshot's index to the requested one but keep
    // its term, so the follower installed (4, term of 2) and then rejected every later append.
    const { nt, lead } = cluster();
    nt.send([proposal(1n, 1n, "d")]);
    const f = nt.peer(2n);
    f.raft.requestSnapshot(f.raft.raftLog.committed); // 5, beyond the stored snapshot at 4
    const req = expectOneMessage(f);
    lead.step(req);
    expect(lead.readMessages().filter((x) => x.msgType === MessageType.MsgSnapshot)).toEqual([]);
    expect(lead.raft.prs.get(2n)!.state).toBe(ProgressState.Probe);
    nextEnts(lead);
    lead.store.createSnapshot(5, newConfState({ voters: P3 }), new TextEncoder().encode("sm@5"));
    lead.step(req);
    const snaps = lead.readMessages().filter((x) => x.msgType === MessageType.MsgSnapshot);
    expect(snaps.map((x) => [x.snapshot?.metadata.index, x.snapshot?.metadata.term])).toEqual([[5, 1]]);
    nt.send(snaps);
    expect(f.store.snap.metadata.index).toBe(5);
    nt.send([m({ msgType: MessageType.MsgSnapStatus, from: 2n, to: 1n })]);
    nt.send([m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: lead.raft.term })]);
    nt.send([proposal(1n, 1n, "e")]);
    expect(f.raft.raftLog.committed).toBe(6);
  });

  test("a snapshot request is refused without a leader and on the leader itself", () => {
    const p = newTestRaft(2n, P3, 10, 1);
    expect(() => p.raft.requestSnapshot(1)).toThrow(RaftError);
    const { lead } = cluster();
    expect(() => lead.raft.requestSnapshot(1)).toThrow(/RequestSnapshotDropped/);
  });
});
