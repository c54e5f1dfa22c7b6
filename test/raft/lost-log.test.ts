// A follower that comes back with an empty log after acknowledging entries (an operator wiped its
// data dir) must be caught up again; raft-rs treats its rejections as stale forever.
import { describe, expect, test } from "bun:test";
import { MemStorage } from "../../src/raft/storage.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { MessageType } from "../../src/raft/types.ts";
import { Network, StateRole, hup, m, newTestRaft, proposal } from "./harness.ts";

describe("follower that lost its log", () => {
  test("a wiped follower is probed from its log end and catches up (leader log not compacted)", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    for (let i = 0; i < 5; i++) nt.send([proposal(1n, 1n)]);
    const leader = nt.raft(1n);
    expect(leader.raftLog.committed).toBe(6);
    expect(leader.prs.get(3n)!.matched).toBe(6);

    // Node 3 restarts from an empty store with the same configuration.
    const wiped = newTestRaft(3n, [1n, 2n, 3n], 10, 1, MemStorage.withVoters([1n, 2n, 3n]));
    nt.peers.set(3n, wiped);
    nt.storage.set(3n, wiped.store);

    nt.send([proposal(1n, 1n)]);
    expect(leader.state).toBe(StateRole.Leader);
    expect(wiped.raft.raftLog.lastIndex()).toBe(leader.raftLog.lastIndex());
    expect(wiped.raft.raftLog.committed).toBe(leader.raftLog.committed);
    expect(leader.prs.get(3n)!.matched).toBe(leader.raftLog.lastIndex());
    expect(leader.prs.get(3n)!.state).toBe(ProgressState.Replicate);
  });

  test("a wiped follower gets a snapshot when the leader has compacted its log", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    for (let i = 0; i < 5; i++) nt.send([proposal(1n, 1n)]);
    const leader = nt.raft(1n);
    const store = nt.storage.get(1n)!;
    store.createSnapshot(5, undefined, new Uint8Array([1]));
    store.compact(5);

    const wiped = newTestRaft(3n, [1n, 2n, 3n], 10, 1, MemStorage.withVoters([1n, 2n, 3n]));
    nt.peers.set(3n, wiped);
    nt.storage.set(3n, wiped.store);
    nt.send([proposal(1n, 1n)]);
    // The leader sent a snapshot; the application reports it delivered, then replication resumes.
    expect(wiped.store.snap.metadata.index).toBe(5);
    nt.send([m({ msgType: MessageType.MsgSnapStatus, from: 3n, to: 1n })]);
    nt.send([m({ msgType: MessageType.MsgHeartbeatResponse, from: 3n, to: 1n, term: leader.term })]);
    expect(wiped.raft.raftLog.lastIndex()).toBe(leader.raftLog.lastIndex());
    expect(wiped.raft.raftLog.committed).toBe(leader.raftLog.committed);
  });

  test("a rejection anchored above the match index is handled as usual (no reset)", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.send([proposal(1n, 1n)]);
    const leader = nt.raft(1n);
    const pr = leader.prs.get(2n)!;
    const matched = pr.matched;
    leader.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: leader.term, index: matched + 1, reject: true, rejectHint: matched - 1, logTerm: 1 }));
    expect(pr.matched).toBe(matched);
  });
});
