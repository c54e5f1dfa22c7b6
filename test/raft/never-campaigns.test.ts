// A node that never campaigns (a learner, or a voter that its stale configuration leaves out) and
// whose term moved past the leader's: in raft-rs it ignores the leader's lower-term messages and,
// without pre-vote or check-quorum, nothing it sends would ever carry its term back. The leader,
// which counts on it, would wait forever. Ours answers with its term, so the leader steps down and
// wins again at a term the node takes.
import { expect, test } from "bun:test";
import { MessageType } from "../../src/raft/types.ts";
import { Network, StateRole, beat, followerAtTerm, hup, m, newTestRaft, readMessages } from "./harness.ts";

/** Node 1 has the configuration {1, 2}; node 2's stale one is {1}: node 2 never campaigns. */
function staleFollowerCluster(): Network {
  return new Network([newTestRaft(1n, [1n, 2n], 10, 1), followerAtTerm(2n, [1n], 0)]);
}

test("a leader whose heartbeat reaches such a node at a higher term steps down, and leads again above that term", () => {
  const net = staleFollowerCluster();
  net.send([hup(1n)]);
  expect(net.raft(1n).state).toBe(StateRole.Leader);
  net.raft(2n).becomeFollower(5, 0n); // e.g. a removed node's vote request moved it on

  net.send([beat(1n)]);
  expect([net.raft(1n).state, net.raft(1n).term]).toEqual([StateRole.Follower, 5]);

  net.send([hup(1n)]);
  expect([net.raft(1n).state, net.raft(1n).term]).toEqual([StateRole.Leader, 6]);
  expect(net.raft(2n).leaderId).toBe(1n);
});

test("a candidate below such a node's term is told its term, and wins the next election", () => {
  const net = staleFollowerCluster();
  net.raft(2n).becomeFollower(9, 0n);

  net.send([hup(1n)]);
  expect([net.raft(1n).state, net.raft(1n).term]).toEqual([StateRole.Follower, 9]);

  net.send([hup(1n)]);
  expect([net.raft(1n).state, net.raft(1n).term]).toEqual([StateRole.Leader, 10]);
});

test("a node that campaigns still ignores a lower-term vote request, as in raft-rs", () => {
  const voteRequest = m({ msgType: MessageType.MsgRequestVote, from: 1n, to: 2n, term: 3 });
  const campaigner = followerAtTerm(2n, [1n, 2n], 9);
  campaigner.step(voteRequest);
  expect(readMessages(campaigner)).toEqual([]);
  const neverCampaigns = followerAtTerm(2n, [1n], 9);
  neverCampaigns.step(voteRequest);
  expect(readMessages(neverCampaigns).map((r) => [r.msgType, r.to, r.term, r.reject])).toEqual([[MessageType.MsgRequestVoteResponse, 1n, 9, true]]);
});
