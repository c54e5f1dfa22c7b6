// Scenario tests for membership changes and learners, ported from the scenarios of etcd
// raft_test.go / raft-rs test_raft.rs and etcd's confchange_v2 interaction scripts. This service
// uses ConfChangeV2 only; a configuration takes effect when the application applies its entry.
import { describe, expect, test } from "bun:test";
import { ConfChangeError } from "../../src/raft/confchange/changer.ts";
import { RaftError } from "../../src/raft/errors.ts";
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType, NONE, type NodeId, newEntry } from "../../src/raft/types.ts";
import {
  type Interface,
  Network,
  StateRole,
  addLearner,
  addNode,
  applyCommitted,
  beat,
  confChange,
  hup,
  learnerIds,
  leaveJoint,
  m,
  newTestRaft,
  newTestRaftWithLearners,
  nextEnts,
  proposal,
  proposeConfChange,
  removeNode,
  setRandomizedElectionTimeout,
  text,
  tickTimes,
  transferLeader,
  voterIds,
} from "./harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];

function tickToCampaign(p: Interface): void {
  setRandomizedElectionTimeout(p.raft, p.raft.electionTimeout);
  tickTimes(p.raft, p.raft.electionTimeout);
}

describe("learners", () => {
  test("LearnerElectionTimeout: a learner never campaigns", () => {
    const n2 = newTestRaftWithLearners(2n, [1n], [2n], 10, 1);
    n2.raft.becomeFollower(1, NONE);
    tickToCampaign(n2);
    tickTimes(n2.raft, 3 * n2.raft.electionTimeout);
    expect(n2.raft.state).toBe(StateRole.Follower);
    expect(n2.readMessages()).toEqual([]);
  });

  test("LearnerPromotion: a learner campaigns only after it is promoted", () => {
    const n1 = newTestRaftWithLearners(1n, [1n], [2n], 10, 1);
    const n2 = newTestRaftWithLearners(2n, [1n], [2n], 10, 1);
    n1.raft.becomeFollower(1, NONE);
    n2.raft.becomeFollower(1, NONE);
    const nt = new Network([n1, n2]);
    expect(n1.raft.state).not.toBe(StateRole.Leader);
    tickToCampaign(n1);
    expect(n1.raft.state).toBe(StateRole.Leader);
    expect(n2.raft.state).toBe(StateRole.Follower);
    nt.send([beat(1n)]);
    n1.raft.applyConfChange(addNode(2n));
    n2.raft.applyConfChange(addNode(2n));
    expect(n2.raft.promotable).toBe(true);
    tickToCampaign(n2);
    expect(n2.raft.state).toBe(StateRole.Candidate);
    nt.send([beat(2n)]); // flushes n2's vote requests
    expect(n1.raft.state).toBe(StateRole.Follower);
    expect(n2.raft.state).toBe(StateRole.Leader);
  });

  test("LearnerCanVote: a learner grants a valid vote (it may have been promoted without knowing)", () => {
    const n2 = newTestRaftWithLearners(2n, [1n], [2n], 10, 1);
    n2.raft.becomeFollower(1, NONE);
    n2.step(m({ msgType: MessageType.MsgRequestVote, from: 1n, to: 2n, term: 2, logTerm: 11, index: 11 }));
    const msgs = n2.readMessages();
    expect(msgs.map((x) => [MessageType[x.msgType], x.reject])).toEqual([["MsgRequestVoteResponse", false]]);
  });

  test("LearnerLogReplication: a learner receives and commits the leader's entries", () => {
    const n1 = newTestRaftWithLearners(1n, [1n], [2n], 10, 1);
    const n2 = newTestRaftWithLearners(2n, [1n], [2n], 10, 1);
    const nt = new Network([n1, n2]);
    n1.raft.becomeFollower(1, NONE);
    n2.raft.becomeFollower(1, NONE);
    tickToCampaign(n1);
    nt.send([beat(1n)]);
    expect(n1.raft.state).toBe(StateRole.Leader);
    expect(n2.raft.promotable).toBe(false);
    const next = n1.raft.raftLog.committed + 1;
    nt.send([proposal(1n, 1n)]);
    expect(n1.raft.raftLog.committed).toBe(next);
    expect(n2.raft.raftLog.committed).toBe(next);
    expect(n1.raft.prs.get(2n)!.matched).toBe(n2.raft.raftLog.committed);
  });

  test("LearnerCampaign: a learner ignores MsgHup and MsgTimeoutNow", () => {
    const n1 = newTestRaft(1n, [1n], 10, 1);
    n1.raft.applyConfChange(addLearner(2n));
    const n2 = newTestRaft(2n, [1n], 10, 1);
    n2.raft.applyConfChange(addLearner(2n));
    const nt = new Network([n1, n2]);
    nt.send([hup(2n)]);
    expect(n2.raft.promotable).toBe(false);
    expect(n2.raft.state).toBe(StateRole.Follower);
    nt.send([hup(1n)]);
    expect(n1.raft.state).toBe(StateRole.Leader);
    expect(n1.raft.leaderId).toBe(1n);
    // A transfer target can become a learner after the leader checked it.
    nt.send([m({ msgType: MessageType.MsgTimeoutNow, from: 1n, to: 2n, term: n1.raft.term })]);
    expect(n2.raft.state).toBe(StateRole.Follower);
    expect(n1.raft.state).toBe(StateRole.Leader);
  });

  test("a learner is not asked for votes and does not count toward the commit quorum", () => {
    const p = newTestRaftWithLearners(1n, [1n, 2n], [3n], 10, 1);
    p.step(hup(1n));
    expect(p.readMessages().map((x) => [MessageType[x.msgType], x.to])).toEqual([["MsgRequestVote", 2n]]);
    p.step(m({ msgType: MessageType.MsgRequestVoteResponse, from: 2n, to: 1n, term: 1 }));
    p.persist();
    p.readMessages();
    // Only the learner acks the no-op: nothing commits.
    p.step(m({ msgType: MessageType.MsgAppendResponse, from: 3n, to: 1n, term: 1, index: 1 }));
    expect(p.raft.raftLog.committed).toBe(0);
    p.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: 1, index: 1 }));
    expect(p.raft.raftLog.committed).toBe(1);
  });
});

describe("proposing conf changes", () => {
  function leader(peers: NodeId[] = [1n, 2n]): Interface {
    const p = newTestRaft(1n, peers, 10, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    p.persist();
    p.readMessages();
    return p;
  }

  test("StepConfig: a conf change proposal is appended and marks the pending conf index", () => {
    const p = leader();
    const index = p.raft.raftLog.lastIndex();
    p.step(proposeConfChange(1n, 1n, addNode(3n)));
    expect(p.raft.raftLog.lastIndex()).toBe(index + 1);
    expect(p.raft.pendingConfIndex).toBe(index + 1);
    expect(p.raft.raftLog.allEntries()[index].entryType).toBe(EntryType.EntryConfChangeV2);
  });

  test("StepIgnoreConfig: a second conf change while one is unapplied becomes an empty normal entry", () => {
    const p = leader();
    p.step(proposeConfChange(1n, 1n, addNode(3n)));
    const index = p.raft.raftLog.lastIndex();
    const pending = p.raft.pendingConfIndex;
    p.step(proposeConfChange(1n, 1n, addNode(4n)));
    const ents = p.raft.raftLog.slice(index + 1, p.raft.raftLog.lastIndex() + 1);
    expect(ents.map((e) => [e.entryType, e.term, e.index, e.data.length])).toEqual([[EntryType.EntryNormal, 1, 3, 0]]);
    expect(p.raft.pendingConfIndex).toBe(pending);
  });

  test("the pending guard: once the change is applied the next one is accepted; an empty change outside a joint config is refused", () => {
    const p = leader([1n]);
    p.step(proposeConfChange(1n, 1n, addLearner(2n)));
    p.step(proposeConfChange(1n, 1n, leaveJoint()));
    const ents = applyCommitted(p);
    expect(ents.map((e) => e.entryType)).toEqual([EntryType.EntryNormal, EntryType.EntryConfChangeV2, EntryType.EntryNormal]);
    expect(learnerIds(p.raft)).toEqual([2n]);
    expect(p.raft.hasPendingConf()).toBe(false);
    // Not joint: "leave joint" is refused.
    const last = p.raft.raftLog.lastIndex();
    p.step(proposeConfChange(1n, 1n, leaveJoint()));
    expect(p.raft.raftLog.slice(last + 1, last + 2)[0].entryType).toBe(EntryType.EntryNormal);
    // A real change is accepted again.
    p.step(proposeConfChange(1n, 1n, addNode(2n)));
    expect(p.raft.raftLog.slice(last + 2, last + 3)[0].entryType).toBe(EntryType.EntryConfChangeV2);
    expect(p.raft.pendingConfIndex).toBe(last + 2);
  });

  test("NewLeaderPendingConfig: a new leader must not propose a conf change before applying its whole log", () => {
    for (const [addEntry, want] of [
      [false, 0],
      [true, 1],
    ] as [boolean, number][]) {
      const p = newTestRaft(1n, [1n, 2n], 10, 1);
      if (addEntry) {
        p.raft.appendEntry([newEntry()]);
        p.persist();
      }
      p.raft.becomeCandidate();
      p.raft.becomeLeader();
      expect(p.raft.pendingConfIndex).toBe(want);
    }
  });

  test("ConfChange V1 and undecodable V2 proposals are dropped", () => {
    const p = leader();
    const last = p.raft.raftLog.lastIndex();
    for (const entryType of [EntryType.EntryConfChange, EntryType.EntryConfChangeV2]) {
      const bad = m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry({ entryType, data: new Uint8Array([0xff, 0xff, 0xff]) })] });
      expect(() => p.step(bad)).toThrow(RaftError);
    }
    expect(p.raft.raftLog.lastIndex()).toBe(last);
    expect(p.raft.pendingConfIndex).toBe(0);
  });
});

describe("applying conf changes", () => {
  test("AddNode", () => {
    const r = newTestRaft(1n, [1n], 10, 1).raft;
    r.applyConfChange(addNode(2n));
    expect(voterIds(r)).toEqual([1n, 2n]);
  });

  test("AddLearner: add, promote, demote self and promote self again", () => {
    const r = newTestRaft(1n, [1n], 10, 1).raft;
    const cs = r.applyConfChange(addLearner(2n));
    expect(cs.learners).toEqual([2n]);
    expect(learnerIds(r)).toEqual([2n]);
    expect(r.promotable).toBe(true);
    r.applyConfChange(addNode(2n));
    expect(voterIds(r)).toEqual([1n, 2n]);
    expect(learnerIds(r)).toEqual([]);
    r.applyConfChange(addLearner(1n));
    expect(learnerIds(r)).toEqual([1n]);
    expect(r.promotable).toBe(false);
    r.applyConfChange(addNode(1n));
    expect(learnerIds(r)).toEqual([]);
    expect(r.promotable).toBe(true);
  });

  test("AddNodeCheckQuorum: a new voter counts as active for one check-quorum round", () => {
    const r = newTestRaft(1n, [1n], 10, 1, undefined, { checkQuorum: true }).raft;
    r.becomeCandidate();
    r.becomeLeader();
    tickTimes(r, r.electionTimeout - 1);
    r.applyConfChange(addNode(2n));
    // This tick runs the quorum check: 2 has not answered yet but is given the benefit of the doubt.
    r.tick();
    expect(r.state).toBe(StateRole.Leader);
    tickTimes(r, r.electionTimeout);
    expect(r.state).toBe(StateRole.Follower);
  });

  test("RemoveNode: removing the last voter is refused and changes nothing", () => {
    const r = newTestRaft(1n, [1n, 2n], 10, 1).raft;
    r.applyConfChange(removeNode(2n));
    expect(voterIds(r)).toEqual([1n]);
    expect(() => r.applyConfChange(removeNode(1n))).toThrow(ConfChangeError);
    expect(voterIds(r)).toEqual([1n]);
  });

  test("RemoveLearner", () => {
    const r = newTestRaftWithLearners(1n, [1n], [2n], 10, 1).raft;
    r.applyConfChange(removeNode(2n));
    expect(voterIds(r)).toEqual([1n]);
    expect(learnerIds(r)).toEqual([]);
    expect(() => r.applyConfChange(removeNode(1n))).toThrow(ConfChangeError);
    expect(voterIds(r)).toEqual([1n]);
  });

  test("a simple change of more than one voter is refused: it needs a joint configuration", () => {
    const r = newTestRaft(1n, P3, 10, 1).raft;
    const two = confChange([
      [ConfChangeType.AddNode, 4n],
      [ConfChangeType.RemoveNode, 3n],
    ]);
    // Auto with two changes enters a joint config, which is fine...
    expect(r.applyConfChange(two).votersOutgoing).toEqual(P3);
    // ...but a joint config cannot take another change before it is left.
    expect(() => r.applyConfChange(addNode(5n))).toThrow(/joint/);
  });

  test("Promotable: only a voter of its own configuration may campaign", () => {
    const cases: [NodeId[], boolean][] = [
      [[1n], true],
      [[1n, 2n, 3n], true],
      [[], false],
      [[2n, 3n], false],
    ];
    for (const [peers, want] of cases) expect(newTestRaft(1n, peers, 5, 1).raft.promotable).toBe(want);
  });

  test("RaftNodes: voters are reported, and broadcast to, in ascending id order", () => {
    for (const ids of [
      [1n, 2n, 3n],
      [3n, 2n, 1n],
    ]) {
      const r = newTestRaft(1n, ids, 10, 1).raft;
      expect(voterIds(r)).toEqual([1n, 2n, 3n]);
      expect([...r.prs.ids()]).toEqual([1n, 2n, 3n]);
    }
  });

  test("CommitAfterRemoveNode: pending entries commit once a removal shrinks the quorum", () => {
    const p = newTestRaft(1n, [1n, 2n], 5, 1);
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    p.step(proposeConfChange(1n, 1n, removeNode(2n)));
    expect(nextEnts(p)).toEqual([]);
    const ccIndex = r.raftLog.lastIndex();
    p.step(proposal(1n, 1n, "hello"));
    // 2 acknowledges the conf change, committing it (but not "hello").
    p.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: r.term, index: ccIndex }));
    let ents = nextEnts(p);
    expect(ents.map((e) => [e.entryType, e.data.length])).toEqual([
      [EntryType.EntryNormal, 0],
      [EntryType.EntryConfChangeV2, ents[1].data.length],
    ]);
    r.applyConfChange(removeNode(2n));
    ents = nextEnts(p);
    expect(ents.map((e) => [e.entryType, text(e.data)])).toEqual([[EntryType.EntryNormal, "hello"]]);
  });
});

describe("membership changes in a cluster", () => {
  /** Voters 1..3 plus node 4, which is not yet a member (its configuration is [1,2,3]). */
  function cluster(): Network {
    return new Network([1n, 2n, 3n, 4n].map((id) => newTestRaft(id, P3, 10, 1)));
  }
  const applyAll = (nt: Network) => {
    for (const id of nt.peers.keys()) applyCommitted(nt.peer(id));
  };
  const replace3With4 = (transition: ConfChangeTransition) =>
    confChange(
      [
        [ConfChangeType.AddNode, 4n],
        [ConfChangeType.RemoveNode, 3n],
      ],
      transition,
    );

  test("enter joint with auto-leave: the leader proposes the empty ConfChangeV2 when it applies the joint entry", () => {
    const nt = cluster();
    nt.send([hup(1n)]);
    nt.send([proposeConfChange(1n, 1n, replace3With4(ConfChangeTransition.Auto))]);
    const lead = nt.raft(1n);
    const before = lead.raftLog.lastIndex();
    applyAll(nt);
    for (const id of P3) {
      const r = nt.raft(id);
      expect(r.prs.conf.voters.incoming.sortedIds()).toEqual([1n, 2n, 4n]);
      expect(r.prs.conf.voters.outgoing.sortedIds()).toEqual(P3);
      expect(r.prs.conf.autoLeave).toBe(true);
    }
    // Only the leader initiated the leave, right when it applied the joint entry.
    expect(lead.raftLog.lastIndex()).toBe(before + 1);
    const leave = lead.raftLog.slice(before + 1, before + 2)[0];
    expect([leave.entryType, leave.data.length]).toEqual([EntryType.EntryConfChangeV2, 0]);
    expect(lead.pendingConfIndex).toBe(before + 1);
    expect(nt.raft(2n).raftLog.lastIndex()).toBe(before);
    // The next heartbeat round replicates it (to 4 as well) and both halves commit it.
    nt.send([beat(1n)]);
    expect(lead.raftLog.committed).toBe(before + 1);
    applyAll(nt);
    for (const id of [1n, 2n, 3n, 4n]) {
      const cs = nt.raft(id).prs.confState();
      expect([cs.voters, cs.votersOutgoing, cs.autoLeave], `node ${id}`).toEqual([[1n, 2n, 4n], [], false]);
    }
    expect(lead.prs.get(3n)).toBeUndefined();
    expect(nt.raft(3n).promotable).toBe(false);
    expect(nt.raft(4n).promotable).toBe(true);
    // The new configuration commits without node 3.
    nt.isolate(3n);
    nt.send([proposal(1n, 1n, "after")]);
    expect(nt.raft(4n).raftLog.committed).toBe(lead.raftLog.lastIndex());
  });

  test("explicit joint: no auto-leave, both majorities needed, no other change until an explicit leave", () => {
    const nt = cluster();
    nt.send([hup(1n)]);
    nt.send([proposeConfChange(1n, 1n, replace3With4(ConfChangeTransition.Explicit))]);
    const lead = nt.raft(1n);
    const before = lead.raftLog.lastIndex();
    applyAll(nt);
    expect(lead.prs.conf.autoLeave).toBe(false);
    expect(lead.raftLog.lastIndex()).toBe(before);
    nt.send([beat(1n)]);
    expect(lead.prs.get(4n)!.matched).toBe(before);
    // {1,4} is a majority of the incoming {1,2,4} but not of the outgoing {1,2,3}.
    nt.isolate(2n);
    nt.cut(1n, 3n);
    nt.send([proposal(1n, 1n, "joint")]);
    expect(lead.raftLog.committed).toBe(before);
    nt.recover();
    nt.isolate(2n);
    nt.send([beat(1n)]);
    expect(lead.raftLog.committed).toBe(before + 1);
    nt.recover();
    // Another change while joint is turned into an empty entry.
    const last = lead.raftLog.lastIndex();
    nt.send([proposeConfChange(1n, 1n, addNode(5n))]);
    expect(lead.raftLog.slice(last + 1, last + 2)[0].entryType).toBe(EntryType.EntryNormal);
    nt.send([proposeConfChange(1n, 1n, leaveJoint())]);
    applyAll(nt);
    expect(lead.prs.confState().voters).toEqual([1n, 2n, 4n]);
    expect(lead.prs.confState().votersOutgoing).toEqual([]);
  });

  test("replacing the leader: joint {add 4, remove 1}; the removed leader keeps leading, drops proposals, then hands over", () => {
    const nt = cluster();
    nt.send([hup(1n)]);
    nt.send([
      proposeConfChange(
        1n,
        1n,
        confChange([
          [ConfChangeType.AddNode, 4n],
          [ConfChangeType.RemoveNode, 1n],
        ]),
      ),
    ]);
    applyAll(nt);
    const lead = nt.raft(1n);
    // In the outgoing half 1 is still a voter: it leads the joint phase and proposes the leave.
    expect(lead.promotable).toBe(true);
    nt.send([beat(1n)]);
    applyAll(nt);
    expect(lead.prs.confState().voters).toEqual([2n, 3n, 4n]);
    expect(lead.state).toBe(StateRole.Leader);
    expect(lead.promotable).toBe(false);
    expect(() => nt.peer(1n).step(proposal(1n, 1n))).toThrow(/not in the configuration/);
    nt.send([transferLeader(4n, 1n)]);
    const n4 = nt.raft(4n);
    expect(n4.state).toBe(StateRole.Leader);
    expect(n4.term).toBe(2);
    nt.send([proposal(4n, 4n, "new leader")]);
    for (const id of [2n, 3n, 4n]) expect(nt.raft(id).raftLog.committed).toBe(n4.raftLog.lastIndex());
  });

  test("removing the leader: a simple removal leaves it leading until it transfers leadership", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.send([proposeConfChange(1n, 1n, removeNode(1n))]);
    for (const id of P3) applyCommitted(nt.peer(id));
    const lead = nt.raft(1n);
    expect(voterIds(lead)).toEqual([2n, 3n]);
    expect(lead.state).toBe(StateRole.Leader);
    expect(() => nt.peer(1n).step(proposal(1n, 1n))).toThrow(RaftError);
    // It still answers for the group it led: followers keep hearing heartbeats.
    nt.send([beat(1n)]);
    expect(nt.raft(2n).leaderId).toBe(1n);
    nt.send([transferLeader(2n, 1n)]);
    expect(nt.raft(2n).state).toBe(StateRole.Leader);
    nt.send([proposal(2n, 2n, "x")]);
    expect(nt.raft(3n).raftLog.committed).toBe(nt.raft(2n).raftLog.lastIndex());
  });

  test("removing the leader of two: the last voter takes over even with an append it has not persisted yet", () => {
    // Regression: a lone voter wins at once, and it used to crash (raft-rs asserts too) when the
    // removed leader's last append and its MsgTimeoutNow were stepped in one batch before a Ready.
    const nt = new Network([undefined, undefined]);
    nt.send([hup(2n)]);
    nt.send([proposeConfChange(2n, 2n, removeNode(2n))]);
    for (const id of [1n, 2n]) applyCommitted(nt.peer(id));
    const n1 = nt.peer(1n);
    expect(voterIds(n1.raft)).toEqual([1n]);
    // The removed leader still replicates an entry it accepted earlier; its append and the
    // transfer arrive together, before node 1 wrote the append to disk.
    const last = nt.raft(2n).raftLog.lastIndex();
    const app = m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 1, index: last, logTerm: 1, commit: last, entries: [newEntry({ term: 1, index: last + 1, data: new TextEncoder().encode("late") })] });
    n1.step(app);
    n1.step(m({ msgType: MessageType.MsgTimeoutNow, from: 2n, to: 1n, term: 1 }));
    expect(n1.raft.state).toBe(StateRole.Leader);
    expect(n1.raft.term).toBe(2);
    // It does not count the unwritten entries for itself...
    expect(n1.raft.prs.get(1n)!.matched).toBe(last);
    expect(n1.raft.raftLog.committed).toBe(last);
    // ...and commits them, with its no-op, once they are durable.
    n1.persist();
    expect(n1.raft.raftLog.committed).toBe(last + 2);
    expect(applyCommitted(n1).map((e) => text(e.data))).toEqual(["late", ""]);
  });

  test("a leader elected during an auto-leave joint config leaves it once it has applied its log", () => {
    const nt = cluster();
    nt.send([hup(1n)]);
    nt.send([proposeConfChange(1n, 1n, replace3With4(ConfChangeTransition.Auto))]);
    // Everyone but the leader applies the joint entry; then 2 takes over before 1 proposes the leave.
    for (const id of [2n, 3n, 4n]) applyCommitted(nt.peer(id));
    nt.isolate(1n);
    nt.send([beat(2n)]);
    nt.send([hup(2n)]);
    const r2 = nt.raft(2n);
    expect(r2.state).toBe(StateRole.Leader);
    expect(r2.prs.conf.voters.isJoint()).toBe(true);
    nt.send([beat(2n)]);
    applyCommitted(nt.peer(2n));
    const leave = r2.raftLog.slice(r2.raftLog.lastIndex(), r2.raftLog.lastIndex() + 1)[0];
    expect([leave.entryType, leave.data.length]).toEqual([EntryType.EntryConfChangeV2, 0]);
    nt.send([beat(2n)]);
    for (const id of [2n, 3n, 4n]) applyCommitted(nt.peer(id));
    expect(r2.prs.confState().voters).toEqual([1n, 2n, 4n]);
    expect(r2.prs.confState().votersOutgoing).toEqual([]);
  });
});
