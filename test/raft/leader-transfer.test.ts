// Scenario tests for leadership transfer (raft thesis §3.10), ported from the scenarios of etcd
// raft_test.go / raft-rs test_raft.rs, plus the wire detail that matters for raft-rs peers: the
// transferee's vote requests carry the "CampaignTransfer" context, which bypasses leader leases.
import { describe, expect, test } from "bun:test";
import { RaftError } from "../../src/raft/errors.ts";
import { type Raft } from "../../src/raft/raft.ts";
import { CAMPAIGN_TRANSFER, ConfChangeType, type Message, MessageType, type NodeId, newConfState } from "../../src/raft/types.ts";
import {
  Network,
  StateRole,
  compactThrough,
  confChange,
  expectOneMessage,
  hup,
  leaveJoint,
  m,
  newTestRaft,
  newTestRaftWithLearners,
  nextEnts,
  proposal,
  removeNode,
  setRandomizedElectionTimeout,
  text,
  tickTimes,
  transferLeader,
  voterIds,
} from "./harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];

/** etcd checkLeaderTransferState: role, known leader, and no transfer left pending. */
function expectTransferState(r: Raft, state: StateRole, lead: NodeId): void {
  expect(r.state).toBe(state);
  expect(r.leaderId).toBe(lead);
  expect(r.leadTransferee).toBeUndefined();
}

function elected(opts = {}): Network {
  const nt = new Network([undefined, undefined, undefined], opts);
  nt.send([hup(1n)]);
  expect(nt.raft(1n).leaderId).toBe(1n);
  return nt;
}

describe("successful transfers", () => {
  test("ToUpToDateNode: transfer to an up-to-date follower and back", () => {
    const nt = elected();
    const lead = nt.raft(1n);
    nt.send([transferLeader(2n, 1n)]);
    expectTransferState(lead, StateRole.Follower, 2n);
    expect(nt.raft(2n).term).toBe(2);
    nt.send([proposal(1n, 1n, "")]);
    nt.send([transferLeader(1n, 2n)]);
    expectTransferState(lead, StateRole.Leader, 1n);
    expect(lead.term).toBe(3);
  });

  test("ToUpToDateNodeFromFollower: a transfer request sent to a follower is forwarded to the leader", () => {
    const nt = elected();
    const lead = nt.raft(1n);
    nt.send([transferLeader(2n, 2n)]);
    expectTransferState(lead, StateRole.Follower, 2n);
    nt.send([proposal(1n, 1n, "")]);
    nt.send([transferLeader(1n, 1n)]);
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("WithCheckQuorum: a transfer works although the followers are within their leader lease", () => {
    const nt = new Network([undefined, undefined, undefined], { checkQuorum: true });
    for (const id of P3) setRandomizedElectionTimeout(nt.raft(id), nt.raft(id).electionTimeout + Number(id));
    const f = nt.raft(2n);
    tickTimes(f, f.electionTimeout);
    nt.send([hup(1n)]);
    const lead = nt.raft(1n);
    expect(lead.state).toBe(StateRole.Leader);
    nt.send([transferLeader(2n, 1n)]);
    expectTransferState(lead, StateRole.Follower, 2n);
    nt.send([proposal(1n, 1n, "")]);
    nt.send([transferLeader(1n, 2n)]);
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("ToSlowFollower: the leader first catches the transferee up, then sends MsgTimeoutNow", () => {
    const nt = elected();
    nt.isolate(3n);
    nt.send([proposal(1n, 1n, "")]);
    nt.recover();
    const lead = nt.raft(1n);
    expect(lead.prs.get(3n)!.matched).toBe(1);
    const timeoutNow: Message[] = [];
    nt.msgHook = (x) => {
      if (x.msgType === MessageType.MsgTimeoutNow) timeoutNow.push(x);
      return true;
    };
    nt.send([transferLeader(3n, 1n)]);
    expectTransferState(lead, StateRole.Follower, 3n);
    // MsgTimeoutNow went out only once 3 had the whole log.
    expect(timeoutNow.map((x) => [x.from, x.to, x.term])).toEqual([[1n, 3n, 1]]);
    expect(nt.raft(3n).raftLog.lastIndex()).toBe(3);
  });

  test("AfterSnapshot: a transferee that needs a snapshot gets it, applies it, then takes over", () => {
    const nt = elected();
    nt.isolate(3n);
    nt.send([proposal(1n, 1n, "")]);
    const leadIf = nt.peer(1n);
    const lead = leadIf.raft;
    nextEnts(leadIf);
    const applied = lead.raftLog.applied;
    leadIf.store.createSnapshot(applied, newConfState({ voters: voterIds(lead) }), new Uint8Array());
    compactThrough(leadIf.store, applied);
    nt.recover();
    expect(lead.prs.get(3n)!.matched).toBe(1);
    // Hold back 3's ack of the snapshot.
    let held: Message | undefined;
    nt.msgHook = (x) => {
      if (x.msgType !== MessageType.MsgAppendResponse || x.from !== 3n || x.reject) return true;
      held = x;
      return false;
    };
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.state).toBe(StateRole.Leader);
    expect(lead.leadTransferee).toBe(3n);
    expect(held).toBeDefined();
    expect(nt.raft(3n).raftLog.firstIndex()).toBe(applied + 1);
    nt.msgHook = undefined;
    nt.send([held!]);
    expectTransferState(lead, StateRole.Follower, 3n);
  });

  test("SecondTransferToAnotherNode: a new target replaces a pending transfer", () => {
    const nt = elected();
    nt.isolate(3n);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    nt.send([transferLeader(2n, 1n)]);
    expectTransferState(lead, StateRole.Follower, 2n);
  });
});

describe("transfers that do not happen", () => {
  test("ToSelf: a transfer to the leader itself is a no-op", () => {
    const nt = elected();
    nt.send([transferLeader(1n, 1n)]);
    expectTransferState(nt.raft(1n), StateRole.Leader, 1n);
  });

  test("ToNonExistingNode: a transfer to an unknown node is ignored", () => {
    const nt = elected();
    nt.send([transferLeader(4n, 1n)]);
    expectTransferState(nt.raft(1n), StateRole.Leader, 1n);
  });

  test("to a learner: ignored", () => {
    const p = newTestRaftWithLearners(1n, [1n, 2n], [3n], 10, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    p.readMessages();
    p.step(transferLeader(3n, 1n));
    expect(p.raft.leadTransferee).toBeUndefined();
    expect(p.readMessages()).toEqual([]);
  });

  test("Timeout: a transfer that does not finish within an election timeout is abandoned", () => {
    const nt = elected();
    nt.isolate(3n);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    tickTimes(lead, lead.heartbeatTimeout);
    expect(lead.leadTransferee).toBe(3n);
    tickTimes(lead, lead.electionTimeout - lead.heartbeatTimeout);
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("SecondTransferToSameNode: repeating the request does not extend the timeout", () => {
    const nt = elected();
    nt.isolate(3n);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    tickTimes(lead, lead.heartbeatTimeout);
    nt.send([transferLeader(3n, 1n)]);
    tickTimes(lead, lead.electionTimeout - lead.heartbeatTimeout);
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("IgnoreProposal: proposals are dropped while a transfer is pending", () => {
    const nt = elected();
    nt.isolate(3n);
    const leadIf = nt.peer(1n);
    nextEnts(leadIf);
    nt.send([transferLeader(3n, 1n)]);
    expect(leadIf.raft.leadTransferee).toBe(3n);
    nt.send([proposal(1n, 1n, "")]);
    expect(() => leadIf.step(proposal(1n, 1n, ""))).toThrow(RaftError);
    expect(() => leadIf.step(proposal(1n, 1n, ""))).toThrow(/transfer in progress/);
    expect(leadIf.raft.prs.get(1n)!.matched).toBe(1);
    expect(leadIf.raft.raftLog.lastIndex()).toBe(1);
  });

  test("ReceiveHigherTermVote: a pending transfer ends when another node wins a newer term", () => {
    const nt = elected();
    nt.isolate(3n);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    nt.send([hup(2n)]);
    expectTransferState(lead, StateRole.Follower, 2n);
  });

  test("Back: transferring back to the leader itself cancels a pending transfer", () => {
    const nt = elected();
    nt.isolate(3n);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    nt.send([transferLeader(1n, 1n)]);
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("RemoveNode: removing the transferee cancels the transfer", () => {
    const nt = elected();
    nt.ignore(MessageType.MsgTimeoutNow);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    lead.applyConfChange(removeNode(3n));
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("DemoteNode: demoting the transferee to learner cancels the transfer once the joint config is left", () => {
    const nt = elected();
    nt.ignore(MessageType.MsgTimeoutNow);
    const lead = nt.raft(1n);
    nt.send([transferLeader(3n, 1n)]);
    expect(lead.leadTransferee).toBe(3n);
    lead.applyConfChange(
      confChange([
        [ConfChangeType.RemoveNode, 3n],
        [ConfChangeType.AddLearnerNode, 3n],
      ]),
    );
    // Still a voter of the outgoing half: the transfer stays.
    expect(lead.leadTransferee).toBe(3n);
    lead.applyConfChange(leaveJoint());
    expectTransferState(lead, StateRole.Leader, 1n);
  });

  test("TransferNonMember: MsgTimeoutNow to a node outside the configuration does nothing", () => {
    const p = newTestRaft(1n, [2n, 3n, 4n], 5, 1);
    p.step(m({ msgType: MessageType.MsgTimeoutNow, from: 2n, to: 1n, term: 1 }));
    p.step(m({ msgType: MessageType.MsgRequestVoteResponse, from: 2n, to: 1n, term: 1 }));
    p.step(m({ msgType: MessageType.MsgRequestVoteResponse, from: 3n, to: 1n, term: 1 }));
    expect(p.raft.state).toBe(StateRole.Follower);
    expect(p.readMessages()).toEqual([]);
  });

  test("a candidate ignores MsgTimeoutNow", () => {
    const p = newTestRaft(2n, P3, 10, 1);
    p.step(hup(2n));
    p.readMessages();
    const term = p.raft.term;
    p.step(m({ msgType: MessageType.MsgTimeoutNow, from: 1n, to: 2n, term }));
    expect(p.raft.state).toBe(StateRole.Candidate);
    expect(p.raft.term).toBe(term);
    expect(p.readMessages()).toEqual([]);
  });
});

describe("the transfer election on the wire", () => {
  test("MsgTimeoutNow makes the transferee campaign with the CampaignTransfer context, skipping pre-vote", () => {
    const p = newTestRaft(2n, P3, 10, 1, undefined, { preVote: true });
    p.raft.becomeFollower(1, 1n);
    p.step(m({ msgType: MessageType.MsgTimeoutNow, from: 1n, to: 2n, term: 1 }));
    expect(p.raft.state).toBe(StateRole.Candidate);
    const votes = p.readMessages();
    expect(votes.map((x) => [MessageType[x.msgType], x.to, x.term, text(x.context)])).toEqual([
      ["MsgRequestVote", 1n, 2, "CampaignTransfer"],
      ["MsgRequestVote", 3n, 2, "CampaignTransfer"],
    ]);
  });

  test("the CampaignTransfer context bypasses the leader lease of check-quorum followers", () => {
    const p = newTestRaft(3n, P3, 10, 1, undefined, { checkQuorum: true });
    p.raft.becomeFollower(1, 1n); // just heard from leader 1: in lease
    const vote = { msgType: MessageType.MsgRequestVote, from: 2n, to: 3n, term: 2, index: 0, logTerm: 0 };
    p.step(m(vote));
    expect(p.readMessages()).toEqual([]);
    expect(p.raft.term).toBe(1);
    p.step(m({ ...vote, context: CAMPAIGN_TRANSFER }));
    const resp = expectOneMessage(p);
    expect([MessageType[resp.msgType], resp.to, resp.term, resp.reject]).toEqual(["MsgRequestVoteResponse", 2n, 2, false]);
    expect(p.raft.term).toBe(2);
    expect(p.raft.vote).toBe(2n);
  });

  test("with check-quorum and pre-vote on every node, a transfer completes in one real election", () => {
    const nt = elected({ checkQuorum: true, preVote: true });
    const seen: string[] = [];
    nt.msgHook = (x) => {
      if (x.msgType === MessageType.MsgRequestVote || x.msgType === MessageType.MsgRequestPreVote) seen.push(`${MessageType[x.msgType]}:${text(x.context)}`);
      return true;
    };
    nt.send([transferLeader(3n, 1n)]);
    expectTransferState(nt.raft(1n), StateRole.Follower, 3n);
    expect(nt.raft(3n).state).toBe(StateRole.Leader);
    expect(seen).toEqual(["MsgRequestVote:CampaignTransfer", "MsgRequestVote:CampaignTransfer"]);
  });
});
