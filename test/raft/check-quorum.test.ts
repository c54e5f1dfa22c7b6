// Scenario tests for check-quorum (leader lease) and disruptive followers, ported from the
// scenarios of etcd raft_test.go / raft-rs test_raft.rs.
import { describe, expect, test } from "bun:test";
import { MessageType, type NodeId } from "../../src/raft/types.ts";
import { Network, StateRole, followerAtTerm, hup, m, newTestRaft, proposal, setOption, setRandomizedElectionTimeout, tickTimes } from "./harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];

function checkQuorumCluster(): Network {
  return new Network(P3.map((id) => newTestRaft(id, P3, 10, 1, undefined, { checkQuorum: true })));
}

describe("leader step-down", () => {
  test("LeaderStepdownWhenQuorumActive: a leader that hears from a quorum keeps leading", () => {
    const p = newTestRaft(1n, P3, 5, 1, undefined, { checkQuorum: true });
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < r.electionTimeout + 1; i++) {
      r.step(m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: r.term }));
      r.tick();
    }
    expect(r.state).toBe(StateRole.Leader);
  });

  test("LeaderStepdownWhenQuorumLost: a leader that hears from nobody steps down after an election timeout", () => {
    const p = newTestRaft(1n, P3, 5, 1, undefined, { checkQuorum: true });
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    const term = r.term;
    tickTimes(r, r.electionTimeout + 1);
    expect(r.state).toBe(StateRole.Follower);
    // Stepping down does not start a new term.
    expect(r.term).toBe(term);
    expect(r.leaderId).toBe(0n);
  });
});

test("LeaderSupersedingWithCheckQuorum: votes are ignored within the lease and granted once it expires", () => {
  const nt = checkQuorumCluster();
  const [a, b, c] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
  nt.send([hup(1n)]);
  expect(a.state).toBe(StateRole.Leader);
  expect(c.state).toBe(StateRole.Follower);
  // Keep b from campaigning on its own while its election timer runs.
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  nt.send([hup(3n)]);
  // b heard from the leader within the election timeout: it ignores c's vote request.
  expect(c.state).toBe(StateRole.Candidate);
  expect(a.state).toBe(StateRole.Leader);
  tickTimes(b, b.electionTimeout);
  expect(b.state).toBe(StateRole.Follower);
  nt.send([hup(3n)]);
  expect(c.state).toBe(StateRole.Leader);
});

test("LeaderElectionWithCheckQuorum: a candidate wins once a quorum's leases expired", () => {
  const nt = checkQuorumCluster();
  const [a, b, c] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
  setRandomizedElectionTimeout(a, a.electionTimeout + 1);
  setRandomizedElectionTimeout(b, b.electionTimeout + 2);
  // Right after start-up votes are granted regardless of the lease (no leader is known).
  nt.send([hup(1n)]);
  expect(a.state).toBe(StateRole.Leader);
  expect(c.state).toBe(StateRole.Follower);
  setRandomizedElectionTimeout(a, a.electionTimeout + 1);
  setRandomizedElectionTimeout(b, b.electionTimeout + 2);
  tickTimes(a, a.electionTimeout);
  tickTimes(b, b.electionTimeout);
  nt.send([hup(3n)]);
  // b's lease expired and it votes for c; a (still in its lease) learns the new term from c.
  expect(a.state).toBe(StateRole.Follower);
  expect(c.state).toBe(StateRole.Leader);
  expect(a.leaderId).toBe(3n);
});

test("FreeStuckCandidateWithCheckQuorum: a stuck candidate's term reaches the old leader via a stale heartbeat", () => {
  const nt = checkQuorumCluster();
  const [a, b, c] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
  nt.send([hup(1n)]);
  nt.isolate(1n);
  nt.send([hup(3n)]);
  // b still holds the lease of leader 1 and ignores c.
  expect(b.state).toBe(StateRole.Follower);
  expect(c.state).toBe(StateRole.Candidate);
  expect(c.term).toBe(b.term + 1);
  nt.send([hup(3n)]);
  expect(b.state).toBe(StateRole.Follower);
  expect(c.state).toBe(StateRole.Candidate);
  expect(c.term).toBe(b.term + 2);
  nt.recover();
  // c answers the lower-term heartbeat with its term; the old leader steps down to it.
  nt.send([m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 3n, term: a.term })]);
  expect(a.state).toBe(StateRole.Follower);
  expect(a.term).toBe(c.term);
  nt.send([hup(3n)]);
  expect(c.state).toBe(StateRole.Leader);
});

test("NonPromotableVoterWithCheckQuorum: a node outside the voter set still follows the leader", () => {
  const a = newTestRaft(1n, [1n, 2n], 10, 1, undefined, { checkQuorum: true });
  // b's own configuration does not list it as a voter.
  const b = newTestRaft(2n, [1n], 10, 1, undefined, { checkQuorum: true });
  expect(b.raft.promotable).toBe(false);
  const nt = new Network([a, b]);
  setRandomizedElectionTimeout(b.raft, b.raft.electionTimeout + 1);
  tickTimes(b.raft, b.raft.electionTimeout);
  nt.send([hup(1n)]);
  expect(a.raft.state).toBe(StateRole.Leader);
  expect(b.raft.state).toBe(StateRole.Follower);
  expect(b.raft.leaderId).toBe(1n);
});

describe("disruptive followers", () => {
  test("DisruptiveFollower: a timed-out follower's higher term deposes the leader through its reply", () => {
    const nt = new Network(P3.map((id) => followerAtTerm(id, P3, 1, { checkQuorum: true })));
    const [n1, n2, n3] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
    nt.send([hup(1n)]);
    expect([n1.state, n2.state, n3.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.Follower]);
    // The leader's messages to n3 are delayed while n3's election timer runs out.
    setRandomizedElectionTimeout(n3, n3.electionTimeout + 2);
    tickTimes(n3, n3.randomizedElectionTimeout - 1);
    n3.tick();
    expect([n1.state, n2.state, n3.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.Candidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([2, 2, 3]);
    // The delayed heartbeat arrives; n3 answers with its higher term and the leader steps down
    // (n3's own vote requests are ignored: 1 and 2 are within their lease).
    nt.send([m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 3n, term: n1.term })]);
    expect([n1.state, n2.state, n3.state]).toEqual([StateRole.Follower, StateRole.Follower, StateRole.Candidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([3, 2, 3]);
  });

  test("DisruptiveFollowerPreVote: with pre-vote the lagging node cannot disrupt the leader", () => {
    const nt = new Network(P3.map((id) => followerAtTerm(id, P3, 1, { checkQuorum: true })));
    const [n1, n2, n3] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
    nt.send([hup(1n)]);
    nt.isolate(3n);
    for (let i = 0; i < 3; i++) nt.send([proposal(1n, 1n)]);
    for (const r of [n1, n2, n3]) setOption(r, { preVote: true });
    nt.recover();
    nt.send([hup(3n)]);
    expect([n1.state, n2.state, n3.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.PreCandidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([2, 2, 2]);
    // A delayed heartbeat of the current term just brings n3 back as a follower.
    nt.send([m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 3n, term: n1.term })]);
    expect(n1.state).toBe(StateRole.Leader);
    expect(n3.state).toBe(StateRole.Follower);
    expect(n3.leaderId).toBe(1n);
  });
});

test("PreVoteWithCheckQuorum: a pre-candidate grants pre-votes (it has no lease) so the cluster recovers", () => {
  const nt = new Network(P3.map((id) => followerAtTerm(id, P3, 1, { checkQuorum: true, preVote: true })));
  const [n2, n3] = [nt.raft(2n), nt.raft(3n)];
  nt.send([hup(1n)]);
  nt.isolate(1n);
  expect(nt.raft(1n).state).toBe(StateRole.Leader);
  expect(n2.state).toBe(StateRole.Follower);
  expect(n3.state).toBe(StateRole.Follower);
  // 2 still holds 1's lease and ignores 3's pre-vote; 3, now a pre-candidate, grants 2's.
  nt.send([hup(3n)]);
  expect(n3.state).toBe(StateRole.PreCandidate);
  nt.send([hup(2n)]);
  expect(n2.state).toBe(StateRole.Leader);
  expect(n3.state).toBe(StateRole.Follower);
});

describe("stale-term messages", () => {
  for (const opts of [{ checkQuorum: true }, { preVote: true }]) {
    test(`with ${Object.keys(opts)[0]} a stale leader's append is answered with an empty response of the newer term`, () => {
      const p = newTestRaft(2n, P3, 10, 1, undefined, opts);
      p.raft.becomeFollower(5, 3n);
      p.step(m({ msgType: MessageType.MsgAppend, from: 1n, to: 2n, term: 3, index: 0, logTerm: 0 }));
      const msgs = p.readMessages();
      expect(msgs.map((x) => [MessageType[x.msgType], x.to, x.term, x.reject, x.index])).toEqual([["MsgAppendResponse", 1n, 5, false, 0]]);
      expect(p.raft.term).toBe(5);
      expect(p.raft.leaderId).toBe(3n);
    });
  }

  test("without check-quorum or pre-vote a stale append is silently ignored", () => {
    const p = newTestRaft(2n, P3, 10, 1);
    p.raft.becomeFollower(5, 3n);
    p.step(m({ msgType: MessageType.MsgAppend, from: 1n, to: 2n, term: 3 }));
    expect(p.readMessages()).toEqual([]);
  });

  test("a lower-term pre-vote is rejected with the voter's term so the pre-candidate catches up", () => {
    const p = newTestRaft(2n, P3, 10, 1, undefined, { preVote: true });
    p.raft.becomeFollower(5, 3n);
    p.step(m({ msgType: MessageType.MsgRequestPreVote, from: 1n, to: 2n, term: 4, index: 9, logTerm: 4 }));
    const msgs = p.readMessages();
    expect(msgs.map((x) => [MessageType[x.msgType], x.to, x.term, x.reject])).toEqual([["MsgRequestPreVoteResponse", 1n, 5, true]]);
  });
});
