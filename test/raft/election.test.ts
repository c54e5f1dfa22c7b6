// Scenario tests for elections and pre-vote, ported from the scenarios of etcd raft_test.go and
// raft-rs test_raft.rs (names kept so they can be compared). Expectations follow raft-rs where the
// two differ on what goes over the wire.
import { describe, expect, test } from "bun:test";
import { RaftError } from "../../src/raft/errors.ts";
import { STATE_ROLE_NAMES } from "../../src/raft/raft.ts";
import { EntryType, MessageType, NONE, type NodeId, newEntry } from "../../src/raft/types.ts";
import {
  type Interface,
  Network,
  StateRole,
  addNode,
  applyConfChanges,
  entsWithConfig,
  entsWithTerms,
  followerAtTerm,
  hup,
  logTerms,
  m,
  newStorageWithEntries,
  newTestRaft,
  newTestRaftWithLearners,
  nextEnts,
  proposal,
  proposeConfChange,
  removeNode,
  setOption,
  tickTimes,
  transferLeader,
  votedWithConfig,
} from "./harness.ts";
import { encodeConfChangeV2 } from "../../src/raft/codec.ts";

const P3: NodeId[] = [1n, 2n, 3n];
const P5: NodeId[] = [1n, 2n, 3n, 4n, 5n];

describe("LeaderElection", () => {
  for (const preVote of [false, true]) {
    // A failed election leaves a pre-candidate in its old term, a candidate in the new one.
    const cand = preVote ? { state: StateRole.PreCandidate, term: 0 } : { state: StateRole.Candidate, term: 1 };
    const cases: [string, () => Network, { state: StateRole; term: number }][] = [
      ["3 live nodes", () => new Network([undefined, undefined, undefined], { preVote }), { state: StateRole.Leader, term: 1 }],
      ["3 nodes, 1 black hole", () => new Network([undefined, undefined, null], { preVote }), { state: StateRole.Leader, term: 1 }],
      ["3 nodes, 2 black holes", () => new Network([undefined, null, null], { preVote }), cand],
      ["4 nodes, 2 black holes", () => new Network([undefined, null, null, undefined], { preVote }), cand],
      ["5 nodes, 2 black holes", () => new Network([undefined, null, null, undefined, undefined], { preVote }), { state: StateRole.Leader, term: 1 }],
      [
        // Three logs further along than node 1's, in the same term: rejections instead of ignored votes.
        "3 of 5 voters have longer logs",
        () =>
          new Network(
            [undefined, entsWithConfig([1], 2n, P5, { preVote }), entsWithConfig([1], 3n, P5, { preVote }), entsWithConfig([1, 1], 4n, P5, { preVote }), undefined],
            { preVote },
          ),
        { state: StateRole.Follower, term: 1 },
      ],
    ];
    for (const [name, mk, want] of cases) {
      test(`${preVote ? "PreVote" : "Vote"}: ${name}`, () => {
        const nt = mk();
        nt.send([hup(1n)]);
        expect(nt.raft(1n).state).toBe(want.state);
        expect(nt.raft(1n).term).toBe(want.term);
      });
    }
  }
});

describe("LeaderCycle", () => {
  // Every node can campaign and win in turn: elections also work when not starting from scratch.
  for (const preVote of [false, true]) {
    test(preVote ? "with pre-vote" : "without pre-vote", () => {
      const nt = new Network([undefined, undefined, undefined], { preVote });
      for (const campaigner of P3) {
        nt.send([hup(campaigner)]);
        for (const id of P3) expect(nt.raft(id).state).toBe(id === campaigner ? StateRole.Leader : StateRole.Follower);
      }
      expect(nt.raft(1n).term).toBe(3);
    });
  }
});

describe("LeaderElectionOverwriteNewerLogs", () => {
  // Node 1 won term 1 and replicated to 2; node 3 won term 2 and wrote an entry nobody got;
  // 4 and 5 voted for 3 in term 2. A leader of term 3 overwrites node 3's newer-term entry.
  for (const preVote of [false, true]) {
    test(preVote ? "with pre-vote" : "without pre-vote", () => {
      const opts = { preVote };
      const nt = new Network([
        entsWithConfig([1], 1n, P5, opts),
        entsWithConfig([1], 2n, P5, opts),
        entsWithConfig([2], 3n, P5, opts),
        votedWithConfig(3n, 2, 4n, P5, opts),
        votedWithConfig(3n, 2, 5n, P5, opts),
      ]);
      // A quorum knows about term 2, so the first campaign fails but pushes node 1 to term 2.
      nt.send([hup(1n)]);
      expect(nt.raft(1n).state).toBe(StateRole.Follower);
      expect(nt.raft(1n).term).toBe(2);
      nt.send([hup(1n)]);
      expect(nt.raft(1n).state).toBe(StateRole.Leader);
      expect(nt.raft(1n).term).toBe(3);
      for (const id of P5) expect(logTerms(nt.raft(id))).toEqual([1, 3]);
    });
  }
});

describe("VoteFromAnyState", () => {
  const states = [StateRole.Follower, StateRole.PreCandidate, StateRole.Candidate, StateRole.Leader];
  for (const vt of [MessageType.MsgRequestVote, MessageType.MsgRequestPreVote]) {
    for (const st of states) {
      test(`${MessageType[vt]} granted from ${STATE_ROLE_NAMES[st]}`, () => {
        const p = newTestRaft(1n, P3, 10, 1);
        const r = p.raft;
        r.term = 1;
        if (st === StateRole.Follower) r.becomeFollower(r.term, 3n);
        else if (st === StateRole.PreCandidate) r.becomePreCandidate();
        else if (st === StateRole.Candidate) r.becomeCandidate();
        else {
          r.becomeCandidate();
          r.becomeLeader();
        }
        p.readMessages();
        const origTerm = r.term;
        const newTerm = r.term + 1;
        r.step(m({ msgType: vt, from: 2n, to: 1n, term: newTerm, logTerm: newTerm, index: 42 }));
        const msgs = p.readMessages();
        expect(msgs.length).toBe(1);
        expect(msgs[0].msgType).toBe(vt === MessageType.MsgRequestVote ? MessageType.MsgRequestVoteResponse : MessageType.MsgRequestPreVoteResponse);
        expect(msgs[0].reject).toBe(false);
        expect(msgs[0].term).toBe(newTerm);
        if (vt === MessageType.MsgRequestVote) {
          // A real vote resets state and term, and records the vote.
          expect(r.state).toBe(StateRole.Follower);
          expect(r.term).toBe(newTerm);
          expect(r.vote).toBe(2n);
        } else {
          // A pre-vote changes nothing.
          expect(r.state).toBe(st);
          expect(r.term).toBe(origTerm);
          expect([NONE, 1n]).toContain(r.vote);
        }
      });
    }
  }
});

describe("dueling candidates", () => {
  test("DuelingCandidates: a candidate with a shorter log disrupts the leader but cannot win", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.cut(1n, 3n);
    nt.send([hup(1n)]);
    nt.send([hup(3n)]);
    // 1 wins with 2's vote; 3 got its own vote and a rejection from 2.
    expect(nt.raft(1n).state).toBe(StateRole.Leader);
    expect(nt.raft(3n).state).toBe(StateRole.Candidate);
    nt.recover();
    // 3's higher term deposes 1, but both reject 3 since its log lacks the no-op.
    nt.send([hup(3n)]);
    const want: [NodeId, number][] = [
      [1n, 1],
      [2n, 1],
      [3n, 0],
    ];
    for (const [id, last] of want) {
      expect(nt.raft(id).state).toBe(StateRole.Follower);
      expect(nt.raft(id).term).toBe(2);
      expect(nt.raft(id).raftLog.lastIndex()).toBe(last);
    }
  });

  test("DuelingPreCandidates: with pre-vote the rejoining node does not disrupt the leader", () => {
    const nt = new Network([undefined, undefined, undefined], { preVote: true });
    nt.cut(1n, 3n);
    nt.send([hup(1n)]);
    nt.send([hup(3n)]);
    expect(nt.raft(1n).state).toBe(StateRole.Leader);
    // 3's pre-vote was rejected by 2 in term 1, which 3 adopts as a follower.
    expect(nt.raft(3n).state).toBe(StateRole.Follower);
    nt.recover();
    nt.send([hup(3n)]);
    const want: [NodeId, StateRole, number][] = [
      [1n, StateRole.Leader, 1],
      [2n, StateRole.Follower, 1],
      [3n, StateRole.Follower, 0],
    ];
    for (const [id, state, last] of want) {
      expect(nt.raft(id).state).toBe(state);
      expect(nt.raft(id).term).toBe(1);
      expect(nt.raft(id).raftLog.lastIndex()).toBe(last);
    }
  });

  test("CandidateConcede: a candidate of the same term yields to the leader and takes its log", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.isolate(1n);
    nt.send([hup(1n)]);
    nt.send([hup(3n)]);
    nt.recover();
    nt.send([m({ msgType: MessageType.MsgBeat, from: 3n, to: 3n })]);
    nt.send([proposal(3n, 3n, "force follower")]);
    nt.send([m({ msgType: MessageType.MsgBeat, from: 3n, to: 3n })]);
    const a = nt.raft(1n);
    expect(a.state).toBe(StateRole.Follower);
    expect(a.term).toBe(1);
    expect(a.leaderId).toBe(3n);
    for (const id of P3) {
      const r = nt.raft(id);
      expect(r.raftLog.committed).toBe(2);
      expect(r.raftLog.allEntries().map((e) => [e.term, e.index, new TextDecoder().decode(e.data)])).toEqual([
        [1, 1, ""],
        [1, 2, "force follower"],
      ]);
    }
  });
});

describe("single node", () => {
  test("SingleNodeCandidate becomes leader at once", () => {
    const nt = new Network([undefined]);
    nt.send([hup(1n)]);
    expect(nt.raft(1n).state).toBe(StateRole.Leader);
    expect(nt.raft(1n).term).toBe(1);
  });

  test("SingleNodePreCandidate skips straight through pre-vote to leader", () => {
    const nt = new Network([undefined], { preVote: true });
    nt.send([hup(1n)]);
    expect(nt.raft(1n).state).toBe(StateRole.Leader);
    expect(nt.raft(1n).term).toBe(1);
  });

  for (const preVote of [false, true]) {
    test(`${preVote ? "PreCampaignWhileLeader" : "CampaignWhileLeader"}: MsgHup on a leader changes nothing`, () => {
      const p = newTestRaft(1n, [1n], 5, 1, undefined, { preVote });
      expect(p.raft.state).toBe(StateRole.Follower);
      p.step(hup(1n));
      p.persist();
      expect(p.raft.state).toBe(StateRole.Leader);
      const term = p.raft.term;
      p.step(hup(1n));
      expect(p.raft.state).toBe(StateRole.Leader);
      expect(p.raft.term).toBe(term);
    });
  }
});

describe("RecvMsgVote tables", () => {
  // Recipient log [2@1, 2@2]; the candidate's log is (index, logTerm); both at the same term.
  const cases: [StateRole, number, number, NodeId, boolean][] = [
    [StateRole.Follower, 0, 0, NONE, true],
    [StateRole.Follower, 0, 1, NONE, true],
    [StateRole.Follower, 0, 2, NONE, true],
    [StateRole.Follower, 0, 3, NONE, false],
    [StateRole.Follower, 1, 0, NONE, true],
    [StateRole.Follower, 1, 1, NONE, true],
    [StateRole.Follower, 1, 2, NONE, true],
    [StateRole.Follower, 1, 3, NONE, false],
    [StateRole.Follower, 2, 0, NONE, true],
    [StateRole.Follower, 2, 1, NONE, true],
    [StateRole.Follower, 2, 2, NONE, false],
    [StateRole.Follower, 2, 3, NONE, false],
    [StateRole.Follower, 3, 0, NONE, true],
    [StateRole.Follower, 3, 1, NONE, true],
    [StateRole.Follower, 3, 2, NONE, false],
    [StateRole.Follower, 3, 3, NONE, false],
    // Already voted: only a repeat of the same vote is granted.
    [StateRole.Follower, 3, 2, 2n, false],
    [StateRole.Follower, 3, 2, 1n, true],
    [StateRole.Leader, 3, 3, 1n, true],
    [StateRole.PreCandidate, 3, 3, 1n, true],
    [StateRole.Candidate, 3, 3, 1n, true],
  ];
  for (const vt of [MessageType.MsgRequestVote, MessageType.MsgRequestPreVote]) {
    test(`${MessageType[vt]}: grant iff not voted for another and the candidate's log is up to date`, () => {
      cases.forEach(([state, index, logTerm, voteFor, wreject], i) => {
        const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(entsWithTerms([2, 2]), [1n]));
        const r = p.raft;
        r.state = state;
        r.vote = voteFor;
        r.term = Math.max(2, logTerm);
        r.step(m({ msgType: vt, term: r.term, from: 2n, to: 1n, index, logTerm }));
        const msgs = p.readMessages();
        expect(msgs.length, `case ${i}`).toBe(1);
        expect(msgs[0].msgType, `case ${i}`).toBe(vt === MessageType.MsgRequestVote ? MessageType.MsgRequestVoteResponse : MessageType.MsgRequestPreVoteResponse);
        expect(msgs[0].reject, `case ${i}`).toBe(wreject);
        if (wreject) {
          // raft-rs: a rejection carries the voter's commit point so the candidate can catch up.
          expect(msgs[0].commit, `case ${i}`).toBe(r.raftLog.committed);
        }
      });
    });
  }
});

describe("StateTransition", () => {
  // [from, to, allowed, term after, leader after]
  const cases: [StateRole, StateRole, boolean, number, NodeId][] = [
    [StateRole.Follower, StateRole.Follower, true, 1, NONE],
    [StateRole.Follower, StateRole.PreCandidate, true, 0, NONE],
    [StateRole.Follower, StateRole.Candidate, true, 1, NONE],
    [StateRole.Follower, StateRole.Leader, false, 0, NONE],
    [StateRole.PreCandidate, StateRole.Follower, true, 0, NONE],
    [StateRole.PreCandidate, StateRole.PreCandidate, true, 0, NONE],
    [StateRole.PreCandidate, StateRole.Candidate, true, 1, NONE],
    [StateRole.PreCandidate, StateRole.Leader, true, 0, 1n],
    [StateRole.Candidate, StateRole.Follower, true, 0, NONE],
    [StateRole.Candidate, StateRole.PreCandidate, true, 0, NONE],
    [StateRole.Candidate, StateRole.Candidate, true, 1, NONE],
    [StateRole.Candidate, StateRole.Leader, true, 0, 1n],
    [StateRole.Leader, StateRole.Follower, true, 1, NONE],
    [StateRole.Leader, StateRole.PreCandidate, false, 0, NONE],
    [StateRole.Leader, StateRole.Candidate, false, 1, NONE],
    [StateRole.Leader, StateRole.Leader, true, 0, 1n],
  ];
  for (const [from, to, allowed, wterm, wlead] of cases) {
    test(`${STATE_ROLE_NAMES[from]} -> ${STATE_ROLE_NAMES[to]} ${allowed ? "allowed" : "refused"}`, () => {
      const r = newTestRaft(1n, [1n], 10, 1).raft;
      r.state = from;
      const go = () => {
        if (to === StateRole.Follower) r.becomeFollower(wterm, wlead);
        else if (to === StateRole.PreCandidate) r.becomePreCandidate();
        else if (to === StateRole.Candidate) r.becomeCandidate();
        else r.becomeLeader();
      };
      if (!allowed) {
        // An illegal transition is a programming error: it must fail loudly, not corrupt state.
        expect(go).toThrow(/invalid transition/);
        return;
      }
      go();
      expect(r.term).toBe(wterm);
      expect(r.leaderId).toBe(wlead);
      expect(r.state).toBe(to);
    });
  }
});

test("AllServerStepdown: every role steps down to follower on a higher-term vote or append", () => {
  const cases: [StateRole, number][] = [
    [StateRole.Follower, 0],
    [StateRole.PreCandidate, 0],
    [StateRole.Candidate, 0],
    [StateRole.Leader, 1],
  ];
  for (const [state, windex] of cases) {
    for (const mt of [MessageType.MsgRequestVote, MessageType.MsgAppend]) {
      const p = newTestRaft(1n, P3, 10, 1);
      const r = p.raft;
      if (state === StateRole.Follower) r.becomeFollower(1, NONE);
      else if (state === StateRole.PreCandidate) r.becomePreCandidate();
      else if (state === StateRole.Candidate) r.becomeCandidate();
      else {
        r.becomeCandidate();
        r.becomeLeader();
      }
      r.step(m({ msgType: mt, from: 2n, to: 1n, term: 3, logTerm: 3 }));
      const label = `${STATE_ROLE_NAMES[state]}/${MessageType[mt]}`;
      expect(r.state, label).toBe(StateRole.Follower);
      expect(r.term, label).toBe(3);
      expect(r.raftLog.lastIndex(), label).toBe(windex);
      expect(r.raftLog.allEntries().length, label).toBe(windex);
      // Only an append names the leader; a vote request does not.
      expect(r.leaderId, label).toBe(mt === MessageType.MsgRequestVote ? NONE : 2n);
    }
  }
});

describe("CandidateResetTerm", () => {
  for (const mt of [MessageType.MsgHeartbeat, MessageType.MsgAppend]) {
    test(`an isolated candidate reverts to follower of the leader's term on ${MessageType[mt]}`, () => {
      const nt = new Network([undefined, undefined, undefined]);
      const [a, b, c] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
      nt.send([hup(1n)]);
      expect([a.state, b.state, c.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.Follower]);
      // Raise the term of 1 and 2 while 3 is isolated.
      nt.isolate(3n);
      nt.send([hup(2n)]);
      nt.send([hup(1n)]);
      expect(a.state).toBe(StateRole.Leader);
      expect(b.state).toBe(StateRole.Follower);
      c.resetRandomizedElectionTimeout();
      tickTimes(c, c.randomizedElectionTimeout);
      expect(c.state).toBe(StateRole.Candidate);
      nt.recover();
      nt.send([m({ msgType: mt, from: 1n, to: 3n, term: a.term })]);
      expect(c.state).toBe(StateRole.Follower);
      expect(c.term).toBe(a.term);
      expect(c.leaderId).toBe(1n);
    });
  }
});

test("LeaderMsgAppSelfAckAfterTermChange: a deposed leader's late local persistence neither commits nor crashes", () => {
  // raft-rs counterpart of etcd's self-ack test: the leader's own ack is the persistence callback.
  const p = newTestRaft(1n, P3, 5, 1);
  const r = p.raft;
  r.becomeCandidate();
  r.becomeLeader();
  r.step(proposal(1n, 1n));
  // Hears of a new leader before its log write finished.
  r.step(m({ msgType: MessageType.MsgHeartbeat, from: 2n, to: 1n, term: r.term + 1 }));
  expect(r.state).toBe(StateRole.Follower);
  p.persist();
  expect(r.state).toBe(StateRole.Follower);
  expect(r.raftLog.committed).toBe(0);
  expect(r.prs.get(1n)!.matched).toBe(0);
});

test("PastElectionTimeout: the randomized timeout is uniform over [et, 2et)", () => {
  const cases: [number, number, boolean][] = [
    [5, 0, false],
    [10, 0.1, true],
    [13, 0.4, true],
    [15, 0.6, true],
    [18, 0.9, true],
    [20, 1, false],
  ];
  for (const [elapse, wprob, round] of cases) {
    const r = newTestRaft(1n, [1n], 10, 1).raft;
    r.electionElapsed = elapse;
    let c = 0;
    for (let j = 0; j < 10_000; j++) {
      r.resetRandomizedElectionTimeout();
      expect(r.randomizedElectionTimeout).toBeGreaterThanOrEqual(10);
      expect(r.randomizedElectionTimeout).toBeLessThan(20);
      if (r.passElectionTimeout()) c++;
    }
    let got = c / 10_000;
    if (round) got = Math.floor(got * 10 + 0.5) / 10;
    expect(got, `elapsed ${elapse}`).toBe(wprob);
  }
});

describe("pre-vote", () => {
  const preVoteCluster = (opts: { checkQuorum?: boolean } = {}) =>
    new Network(P3.map((id) => followerAtTerm(id, P3, 1, { preVote: true, ...opts })));

  test("a pre-candidate keeps its term and vote; its requests carry term+1 and are not persisted", () => {
    const p = newTestRaft(1n, P3, 10, 1, undefined, { preVote: true });
    p.raft.becomeFollower(4, NONE);
    p.step(hup(1n));
    expect(p.raft.state).toBe(StateRole.PreCandidate);
    expect(p.raft.term).toBe(4);
    expect(p.raft.vote).toBe(NONE);
    const msgs = p.readMessages();
    expect(msgs.map((x) => [MessageType[x.msgType], x.to, x.term])).toEqual([
      ["MsgRequestPreVote", 2n, 5],
      ["MsgRequestPreVote", 3n, 5],
    ]);
  });

  test("PreVoteWithSplitVote: after a split vote the next round completes", () => {
    const nt = preVoteCluster();
    nt.send([hup(1n)]);
    nt.isolate(1n);
    nt.send([hup(2n), hup(3n)]);
    // Both pre-votes succeed, both real votes split.
    for (const id of [2n, 3n]) {
      expect(nt.raft(id).term).toBe(3);
      expect(nt.raft(id).state).toBe(StateRole.Candidate);
    }
    nt.send([hup(2n)]);
    expect(nt.raft(2n).term).toBe(4);
    expect(nt.raft(3n).term).toBe(4);
    expect(nt.raft(2n).state).toBe(StateRole.Leader);
    expect(nt.raft(3n).state).toBe(StateRole.Follower);
  });

  test("NodeWithSmallerTermCanCompleteElection: a lagging pre-candidate does not stall the cluster", () => {
    const nt = preVoteCluster();
    nt.cut(1n, 3n);
    nt.cut(2n, 3n);
    nt.send([hup(1n)]);
    expect(nt.raft(1n).state).toBe(StateRole.Leader);
    expect(nt.raft(2n).state).toBe(StateRole.Follower);
    nt.send([hup(3n)]);
    expect(nt.raft(3n).state).toBe(StateRole.PreCandidate);
    nt.send([hup(2n)]);
    expect([nt.raft(1n).term, nt.raft(2n).term, nt.raft(3n).term]).toEqual([3, 3, 1]);
    expect([nt.raft(1n).state, nt.raft(2n).state, nt.raft(3n).state]).toEqual([StateRole.Follower, StateRole.Leader, StateRole.PreCandidate]);
    // Bring 3 back and crash the leader 2.
    nt.recover();
    nt.cut(2n, 1n);
    nt.cut(2n, 3n);
    nt.send([hup(3n)]);
    nt.send([hup(1n)]);
    expect(nt.raft(1n).state === StateRole.Leader || nt.raft(3n).state === StateRole.Leader).toBe(true);
  });

  // A rolling upgrade: n1 (leader, term 2) and n2 run pre-vote; n3 was partitioned without
  // pre-vote, ran up its term to 4 with a shorter log, then restarted with pre-vote on.
  function preVoteMigrationCluster(): Network {
    const n1 = followerAtTerm(1n, P3, 1, { preVote: true });
    const n2 = followerAtTerm(2n, P3, 1, { preVote: true });
    const n3 = followerAtTerm(3n, P3, 1, { preVote: false });
    const nt = new Network([n1, n2, n3]);
    nt.send([hup(1n)]);
    nt.isolate(3n);
    nt.send([proposal(1n, 1n, "some data")]);
    nt.send([hup(3n)]);
    nt.send([hup(3n)]);
    expect([n1.raft.state, n2.raft.state, n3.raft.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.Candidate]);
    expect([n1.raft.term, n2.raft.term, n3.raft.term]).toEqual([2, 2, 4]);
    setOption(n3.raft, { preVote: true });
    nt.recover();
    return nt;
  }

  test("PreVoteMigrationCanCompleteElection", () => {
    const nt = preVoteMigrationCluster();
    nt.isolate(1n);
    nt.send([hup(3n)]);
    nt.send([hup(2n)]);
    // 2 learns term 4 from 3's rejection; 3's shorter log keeps it a pre-candidate.
    expect(nt.raft(2n).state).toBe(StateRole.Follower);
    expect(nt.raft(3n).state).toBe(StateRole.PreCandidate);
    nt.send([hup(3n)]);
    nt.send([hup(2n)]);
    expect(nt.raft(2n).state).toBe(StateRole.Leader);
    expect(nt.raft(3n).state).toBe(StateRole.Follower);
  });

  test("PreVoteMigrationWithFreeStuckPreCandidate: a stale heartbeat frees the stuck pre-candidate", () => {
    const nt = preVoteMigrationCluster();
    const [n1, n2, n3] = [nt.raft(1n), nt.raft(2n), nt.raft(3n)];
    nt.send([hup(3n)]);
    expect([n1.state, n2.state, n3.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.PreCandidate]);
    nt.send([hup(3n)]);
    expect([n1.state, n2.state, n3.state]).toEqual([StateRole.Leader, StateRole.Follower, StateRole.PreCandidate]);
    // 3 answers the lower-term heartbeat with its term, which disrupts the leader.
    nt.send([m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 3n, term: n1.term })]);
    expect(n1.state).toBe(StateRole.Follower);
    expect(n3.term).toBe(n1.term);
  });
});

test("ConfChangeV2CheckBeforeCampaign: no campaign while a committed conf change is unapplied", () => {
  const nt = new Network([undefined, undefined, undefined]);
  const [n1, n2] = [nt.peer(1n), nt.peer(2n)];
  nt.send([hup(1n)]);
  expect(n1.raft.state).toBe(StateRole.Leader);
  nt.send([proposeConfChange(1n, 1n, removeNode(3n))]);
  expect(n2.raft.raftLog.committed).toBe(2);
  // The timeout passes, but the committed conf change is not applied yet.
  tickTimes(n2.raft, n2.raft.randomizedElectionTimeout);
  expect(n2.raft.state).toBe(StateRole.Follower);
  // Neither does a transfer make it campaign.
  nt.send([transferLeader(2n, 1n)]);
  expect(n1.raft.state).toBe(StateRole.Leader);
  expect(n2.raft.state).toBe(StateRole.Follower);
  tickTimes(n1.raft, n1.raft.electionTimeout); // abandons the transfer
  expect(n1.raft.leadTransferee).toBeUndefined();
  expect(applyConfChanges(n2, nextEnts(n2))).toBe(1);
  nt.send([transferLeader(2n, 1n)]);
  expect(n1.raft.state).toBe(StateRole.Follower);
  expect(n2.raft.state).toBe(StateRole.Leader);
  applyConfChanges(n1, nextEnts(n1));
  n1.raft.resetRandomizedElectionTimeout();
  tickTimes(n1.raft, n1.raft.randomizedElectionTimeout);
  expect(n1.raft.state).toBe(StateRole.Candidate);
});

describe("vote messages on the wire", () => {
  test("MsgRequestVote carries term, last index and term, commit and commit term, and priority", () => {
    const store = newStorageWithEntries(entsWithTerms([1, 1, 2]), P3);
    store.setHardState({ term: 2, vote: NONE, commit: 2 });
    const p = newTestRaft(1n, [], 10, 1, store, { priority: 7 });
    p.step(hup(1n));
    const msgs = p.readMessages();
    expect(msgs.length).toBe(2);
    for (const [i, to] of [2n, 3n].entries()) {
      const v = msgs[i];
      expect(v.msgType).toBe(MessageType.MsgRequestVote);
      expect(v.to).toBe(to);
      expect([v.term, v.index, v.logTerm, v.commit, v.commitTerm, v.priority]).toEqual([3, 3, 2, 2, 1, 7]);
      expect(v.context.length).toBe(0);
    }
  });

  test("AdvanceCommitIndexByVoteRequest: a voter that rejects fast-forwards its commit from the request", () => {
    // Candidate 1 knows index 3 is committed; voter 2 has a longer log but only commit 1.
    const s1 = newStorageWithEntries(entsWithTerms([1, 1, 1]), P3);
    s1.setHardState({ term: 1, vote: NONE, commit: 3 });
    const s2 = newStorageWithEntries(entsWithTerms([1, 1, 1, 1]), P3);
    s2.setHardState({ term: 1, vote: NONE, commit: 1 });
    const nt = new Network([newTestRaft(1n, [], 10, 1, s1), newTestRaft(2n, [], 10, 1, s2), null]);
    nt.send([hup(1n)]);
    expect(nt.raft(1n).state).toBe(StateRole.Candidate);
    expect(nt.raft(2n).raftLog.committed).toBe(3);
    expect(nt.raft(2n).vote).toBe(NONE);
  });

  test("AdvanceCommitIndexByVoteResponse: a rejection that commits a conf change stops the election", () => {
    // Candidate 1 has a conf change at index 2 it does not know is committed; voter 2 does.
    const cc = newEntry({ term: 1, index: 2, entryType: EntryType.EntryConfChangeV2, data: encodeConfChangeV2(removeNode(3n)) });
    const s1 = newStorageWithEntries([newEntry({ term: 1, index: 1 }), cc, newEntry({ term: 1, index: 3 })], P3);
    s1.setHardState({ term: 1, vote: NONE, commit: 1 });
    const s2 = newStorageWithEntries([newEntry({ term: 1, index: 1 }), cc, newEntry({ term: 1, index: 3 }), newEntry({ term: 1, index: 4 })], P3);
    s2.setHardState({ term: 1, vote: NONE, commit: 3 });
    const nt = new Network([newTestRaft(1n, [], 10, 1, s1), newTestRaft(2n, [], 10, 1, s2), null]);
    nt.send([hup(1n)]);
    const r1 = nt.raft(1n);
    expect(r1.raftLog.committed).toBe(3);
    // An election must not span a configuration change.
    expect(r1.state).toBe(StateRole.Follower);
    expect(r1.term).toBe(2);
    // ...and it will not campaign until the conf change is applied.
    nt.send([hup(1n)]);
    expect(r1.state).toBe(StateRole.Follower);
    expect(r1.term).toBe(2);
  });
});

describe("priority election (raft-rs)", () => {
  // [candidate log longer?, candidate priority, voters' priority, expected candidate state]
  const cases: [boolean, number, number, StateRole][] = [
    [false, 1, 3, StateRole.Follower], // equal logs, lower priority: refused
    [false, 3, 3, StateRole.Leader], // equal logs, equal priority: granted
    [false, 3, 1, StateRole.Leader],
    [true, 1, 3, StateRole.Leader], // a longer log wins regardless of priority
  ];
  for (const [longer, cprio, vprio, want] of cases) {
    test(`log ${longer ? "longer" : "equal"}, candidate priority ${cprio}, voters ${vprio} -> ${STATE_ROLE_NAMES[want]}`, () => {
      const mk = (id: NodeId, terms: number[], priority: number): Interface => {
        const p = newTestRaft(id, [], 10, 1, newStorageWithEntries(entsWithTerms(terms), P3), { priority });
        p.raft.becomeFollower(1, NONE);
        return p;
      };
      const nt = new Network([mk(1n, longer ? [1, 1] : [1], cprio), mk(2n, [1], vprio), mk(3n, [1], vprio)]);
      nt.send([hup(1n)]);
      expect(nt.raft(1n).state).toBe(want);
    });
  }
});

test("a learner promoted by a conf change can vote in the new configuration (LearnerRespondVote)", () => {
  const learnerCfg = (id: NodeId) => {
    const p = newTestRaftWithLearners(id, [1n, 2n], [3n], 10, 1);
    p.raft.becomeFollower(1, NONE);
    return p;
  };
  const nt = new Network([learnerCfg(1n), undefined, learnerCfg(3n)]);
  nt.isolate(2n);
  // 1 cannot win: it does not ask learner 3 for a vote.
  nt.send([hup(1n)]);
  expect(nt.raft(1n).state).toBe(StateRole.Candidate);
  nt.peer(1n).raft.applyConfChange(addNode(3n));
  nt.send([hup(1n)]);
  expect(nt.raft(1n).state).toBe(StateRole.Leader);
});

test("a proposal on a candidate is dropped with ProposalDropped", () => {
  const p = newTestRaft(1n, P3, 10, 1);
  p.step(hup(1n));
  expect(p.raft.state).toBe(StateRole.Candidate);
  expect(() => p.step(proposal(1n, 1n))).toThrow(RaftError);
  expect(p.raft.raftLog.lastIndex()).toBe(0);
});
