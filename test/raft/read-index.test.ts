// Scenario tests for linearizable reads (ReadIndex, raft thesis §6.4), ported from the scenarios of
// etcd raft_test.go and raft-rs test_raft.rs. This core follows raft-rs: a leader that has not yet
// committed an entry of its own term drops read requests (etcd postpones them).
import { describe, expect, test } from "bun:test";
import { ReadOnlyOption } from "../../src/raft/read-only.ts";
import { MessageType, type NodeId, newEntry } from "../../src/raft/types.ts";
import {
  type Interface,
  Network,
  StateRole,
  beat,
  entsWithTerms,
  expectOneMessage,
  hup,
  m,
  newStorageWithEntries,
  newTestRaft,
  newTestRaftWithLearners,
  readIndex,
  removeNode,
  setRandomizedElectionTimeout,
  text,
  tickTimes,
} from "./harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];

function emptyProposal(): ReturnType<typeof m> {
  return m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry()] });
}

/** Runs rounds of (10 proposals, then a read on `reader`) and checks each read's index and context. */
function checkReads(nt: Network, rounds: [NodeId, number, string][]): void {
  for (const [reader, wantIndex, ctx] of rounds) {
    for (let j = 0; j < 10; j++) nt.send([emptyProposal()]);
    nt.send([readIndex(reader, reader, ctx)]);
    const r = nt.raft(reader);
    expect(r.readStates.length, ctx).toBe(1);
    expect(r.readStates[0].index, ctx).toBe(wantIndex);
    expect(text(r.readStates[0].requestCtx), ctx).toBe(ctx);
    r.readStates = [];
  }
}

const SIX_ROUNDS: [NodeId, number, string][] = [
  [1n, 11, "ctx1"],
  [2n, 21, "ctx2"],
  [3n, 31, "ctx3"],
  [1n, 41, "ctx4"],
  [2n, 51, "ctx5"],
  [3n, 61, "ctx6"],
];

test("ReadOnlyOptionSafe: reads on the leader and on followers return the leader's commit index", () => {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send([hup(1n)]);
  expect(nt.raft(1n).state).toBe(StateRole.Leader);
  checkReads(nt, SIX_ROUNDS);
});

test("ReadOnlyWithLearner: a single voter serves reads at once, also those forwarded by a learner", () => {
  const a = newTestRaftWithLearners(1n, [1n], [2n], 10, 1);
  const b = newTestRaftWithLearners(2n, [1n], [2n], 10, 1);
  const nt = new Network([a, b]);
  setRandomizedElectionTimeout(b.raft, b.raft.electionTimeout + 1);
  tickTimes(b.raft, b.raft.electionTimeout);
  nt.send([hup(1n)]);
  expect(a.raft.state).toBe(StateRole.Leader);
  checkReads(nt, [
    [1n, 11, "ctx1"],
    [2n, 21, "ctx2"],
    [1n, 31, "ctx3"],
    [2n, 41, "ctx4"],
  ]);
});

test("ReadOnlyOptionLease: with lease-based reads the leader answers without a heartbeat round", () => {
  const nt = new Network(P3.map((id) => newTestRaft(id, P3, 10, 1, undefined, { checkQuorum: true, readOnlyOption: ReadOnlyOption.LeaseBased })));
  const b = nt.raft(2n);
  setRandomizedElectionTimeout(b, b.electionTimeout + 1);
  tickTimes(b, b.electionTimeout);
  nt.send([hup(1n)]);
  expect(nt.raft(1n).state).toBe(StateRole.Leader);
  checkReads(nt, SIX_ROUNDS);
  // No heartbeat is needed: the leader answers a read on its own, in the same step.
  const leader = nt.peer(1n);
  leader.step(readIndex(1n, 1n, "lease"));
  expect(leader.readMessages()).toEqual([]);
  expect(leader.raft.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[61, "lease"]]);
});

test("a lease-based read requires check-quorum (configuration error otherwise)", () => {
  expect(() => newTestRaft(1n, P3, 10, 1, undefined, { readOnlyOption: ReadOnlyOption.LeaseBased })).toThrow(/requires check_quorum/);
});

test("ReadOnlyForNewLeader: no read index until the leader has committed an entry of its term", () => {
  // [id, committed, applied, compacted through]
  const cfgs: [NodeId, number, number, number][] = [
    [1n, 1, 1, 0],
    [2n, 2, 2, 2],
    [3n, 2, 2, 2],
  ];
  const peers: Interface[] = cfgs.map(([id, committed, applied, compact]) => {
    const store = newStorageWithEntries(entsWithTerms([1, 1]), P3);
    store.setHardState({ term: 1, vote: 0n, commit: committed });
    if (compact !== 0) store.compact(compact);
    return newTestRaft(id, [], 10, 1, store, { applied });
  });
  const nt = new Network(peers);
  // Keep the new leader from committing anything in its term.
  nt.ignore(MessageType.MsgAppend);
  nt.send([hup(1n)]);
  const sm = nt.raft(1n);
  expect(sm.state).toBe(StateRole.Leader);
  // Its commit index (1) may be behind the cluster's (2): the read is dropped (raft-rs).
  nt.send([readIndex(1n, 1n, "ctx")]);
  expect(sm.readStates).toEqual([]);
  expect(sm.readOnly.pendingReadCount()).toBe(0);
  nt.recover();
  tickTimes(sm, sm.heartbeatTimeout);
  nt.send([emptyProposal()]);
  expect(sm.raftLog.committed).toBe(4);
  expect(sm.raftLog.term(sm.raftLog.committed)).toBe(sm.term);
  // The dropped read stays dropped; a new one is served at the new commit index.
  expect(sm.readStates).toEqual([]);
  nt.send([readIndex(1n, 1n, "ctx")]);
  expect(sm.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[4, "ctx"]]);
});

describe("pending reads on the leader", () => {
  function leaderOf2(): Interface {
    const p = newTestRaft(1n, [1n, 2n], 5, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    p.persist();
    p.raft.raftLog.commitTo(p.raft.raftLog.lastIndex());
    p.readMessages();
    return p;
  }
  const hbResp = (p: Interface, ctx: string) =>
    m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: p.raft.term, context: new TextEncoder().encode(ctx) });

  test("RaftFreesReadOnlyMem: a read is one heartbeat round carrying its context, then forgotten", () => {
    const p = leaderOf2();
    p.step(readIndex(2n, 1n, "ctx"));
    const hb = expectOneMessage(p);
    expect([MessageType[hb.msgType], hb.to, text(hb.context)]).toEqual(["MsgHeartbeat", 2n, "ctx"]);
    expect(p.raft.readOnly.pendingReadCount()).toBe(1);
    p.step(hbResp(p, "ctx"));
    expect(p.raft.readOnly.pendingReadCount()).toBe(0);
    // The read came from follower 2: the answer goes back to it (next to an append for the lagging 2).
    const resps = p.readMessages().filter((x) => x.msgType === MessageType.MsgReadIndexResp);
    expect(resps.map((x) => [x.to, x.index, text(x.entries[0].data)])).toEqual([[2n, 1, "ctx"]]);
  });

  test("ReadOnlyDuplicateRequest: a repeated context is one pending read and one answer", () => {
    const p = leaderOf2();
    p.step(readIndex(1n, 1n, "dup"));
    p.step(readIndex(1n, 1n, "dup"));
    expect(p.raft.readOnly.pendingReadCount()).toBe(1);
    p.readMessages();
    p.step(hbResp(p, "dup"));
    expect(p.raft.readStates.map((rs) => text(rs.requestCtx))).toEqual(["dup"]);
  });

  test("an ack completes its read and every read queued before it, but none after it", () => {
    const p = leaderOf2();
    for (const ctx of ["a", "b", "c"]) p.step(readIndex(1n, 1n, ctx));
    p.readMessages();
    p.step(hbResp(p, "b"));
    expect(p.raft.readStates.map((rs) => text(rs.requestCtx))).toEqual(["a", "b"]);
    expect(p.raft.readOnly.pendingReadCount()).toBe(1);
  });

  test("a late ack of a completed read does not complete a newer read", () => {
    const p = leaderOf2();
    p.step(readIndex(1n, 1n, "old"));
    p.step(hbResp(p, "old"));
    p.raft.readStates = [];
    p.step(readIndex(1n, 1n, "new"));
    p.readMessages();
    // A duplicated ack of the finished round arrives: leadership is not re-confirmed by it.
    p.step(hbResp(p, "old"));
    expect(p.raft.readStates).toEqual([]);
    p.step(hbResp(p, "new"));
    expect(p.raft.readStates.map((rs) => text(rs.requestCtx))).toEqual(["new"]);
  });

  test("ReadWhenQuorumBecomesLess (raft-rs): a pending read completes when the quorum shrinks", () => {
    const p = leaderOf2();
    p.step(readIndex(1n, 1n, "ctx"));
    p.readMessages(); // the heartbeat to 2 is lost
    expect(p.raft.readStates).toEqual([]);
    p.raft.applyConfChange(removeNode(2n));
    expect(p.raft.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[1, "ctx"]]);
  });
});

describe("reads off the leader", () => {
  test("a follower forwards a read to the leader with term 0 and records the answer", () => {
    const p = newTestRaft(2n, P3, 10, 1, newStorageWithEntries(entsWithTerms([1, 1]), P3));
    p.raft.becomeFollower(1, 1n);
    p.step(readIndex(2n, 2n, "fwd"));
    const fwd = expectOneMessage(p);
    expect([MessageType[fwd.msgType], fwd.to, fwd.term, text(fwd.entries[0].data)]).toEqual(["MsgReadIndex", 1n, 0, "fwd"]);
    p.step(m({ msgType: MessageType.MsgReadIndexResp, from: 1n, to: 2n, term: 1, index: 2, entries: [newEntry({ data: new TextEncoder().encode("fwd") })] }));
    expect(p.raft.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[2, "fwd"]]);
    // The read index is a committed entry of the leader's term, matching ours.
    expect(p.raft.raftLog.committed).toBe(2);
  });

  test("a follower without a leader drops the read", () => {
    const p = newTestRaft(2n, P3, 10, 1);
    p.step(readIndex(2n, 2n, "x"));
    expect(p.readMessages()).toEqual([]);
    expect(p.raft.readStates).toEqual([]);
  });

  test("a malformed MsgReadIndexResp is ignored", () => {
    const p = newTestRaft(2n, P3, 10, 1);
    p.raft.becomeFollower(1, 1n);
    p.step(m({ msgType: MessageType.MsgReadIndexResp, from: 1n, to: 2n, term: 1, index: 5 }));
    expect(p.raft.readStates).toEqual([]);
    expect(p.raft.raftLog.committed).toBe(0);
  });

  test("a read on a leader cut off from its quorum never completes (Safe option)", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.isolate(1n);
    nt.send([readIndex(1n, 1n, "cut")]);
    nt.send([beat(1n)]);
    expect(nt.raft(1n).readStates).toEqual([]);
    expect(nt.raft(1n).readOnly.pendingReadCount()).toBe(1);
    nt.recover();
    // The next heartbeat round carries the pending context and completes it.
    nt.send([beat(1n)]);
    expect(nt.raft(1n).readStates.map((rs) => text(rs.requestCtx))).toEqual(["cut"]);
  });
});
