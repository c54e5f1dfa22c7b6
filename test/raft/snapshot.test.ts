// etcd raft_snap_test.go (and raft-rs test_request_snapshot): how a leader whose log starts after a
// snapshot (index 11, term 11, voters {1, 2}) sends it to a follower and resumes replication.
import { describe, expect, test } from "bun:test";
import { RaftError } from "../../src/raft/errors.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { MessageType, newConfState, newEntry, newSnapshot } from "../../src/raft/types.ts";
import { type Interface, m, newTestRaft, snapshot } from "./harness.ts";

const testingSnap = () => snapshot(11, 11, [1n, 2n]);

/** Node 1 restored from the snapshot (and persisted it: only a durable log may lead), then leader. */
function snapLeader(peers: bigint[]): Interface {
  const p = newTestRaft(1n, peers, 10, 1);
  expect(p.raft.restore(testingSnap())).toBe(true);
  p.persist();
  p.raft.becomeCandidate();
  p.raft.becomeLeader();
  return p;
}

describe("etcd raft_snap_test.go", () => {
  test("TestSendingSnapshotSetPendingSnapshot: a follower behind the log's start gets the snapshot and is marked pending at its index", () => {
    const p = snapLeader([1n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    pr2.nextIdx = r.raftLog.firstIndex();
    expect(pr2.nextIdx).toBe(12);
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: pr2.nextIdx - 1, reject: true }));

    expect(pr2.pendingSnapshot).toBe(11);
    expect(pr2.state).toBe(ProgressState.Snapshot);
    const sent = p.readMessages();
    expect(sent.map((x) => [MessageType[x.msgType], x.to, x.snapshot?.metadata.index])).toEqual([["MsgSnapshot", 2n, 11]]);
  });

  test("TestPendingSnapshotPauseReplication: no appends go to a follower while its snapshot is pending", () => {
    const p = snapLeader([1n, 2n]);
    const r = p.raft;
    r.prs.get(2n)!.becomeSnapshot(11);
    r.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry({ data: new TextEncoder().encode("somedata") })] }));
    expect(p.readMessages()).toEqual([]);
  });

  test("TestSnapshotFailure: a failed snapshot clears the pending index, keeps Next and waits (paused) for a heartbeat", () => {
    const p = snapLeader([1n, 2n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    pr2.nextIdx = 1;
    pr2.becomeSnapshot(11);
    r.step(m({ msgType: MessageType.MsgSnapStatus, from: 2n, to: 1n, reject: true }));

    expect({ pending: pr2.pendingSnapshot, next: pr2.nextIdx, paused: pr2.paused, state: pr2.state }).toEqual({
      pending: 0,
      next: 1,
      paused: true,
      state: ProgressState.Probe,
    });
  });

  test("TestSnapshotSucceed: a delivered snapshot moves Next past it and waits (paused) for the follower's answer", () => {
    const p = snapLeader([1n, 2n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    pr2.nextIdx = 1;
    pr2.becomeSnapshot(11);
    r.step(m({ msgType: MessageType.MsgSnapStatus, from: 2n, to: 1n, reject: false }));

    expect({ pending: pr2.pendingSnapshot, next: pr2.nextIdx, paused: pr2.paused, state: pr2.state }).toEqual({
      pending: 0,
      next: 12,
      paused: true,
      state: ProgressState.Probe,
    });
  });

  test("TestSnapshotAbort: an ack at or past the pending snapshot ends it and replication resumes at once", () => {
    const p = snapLeader([1n, 2n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    pr2.nextIdx = 1;
    pr2.becomeSnapshot(11);
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: 11 }));

    expect(pr2.pendingSnapshot).toBe(0);
    expect(pr2.state).toBe(ProgressState.Replicate);
    // Newer etcd (the lead's choice for this core): the follower goes straight to Replicate and the
    // leader sends its no-op at 12 right away, optimistically moving Next to 13 with 1 inflight.
    // raft-rs 0.7 leaves Next at 12 and waits; both put a valid MsgAppend on the wire.
    expect(pr2.nextIdx).toBe(13);
    expect(pr2.ins.count).toBe(1);
    expect(p.readMessages().map((x) => [MessageType[x.msgType], x.index, x.entries.map((e) => e.index)])).toEqual([["MsgAppend", 11, [12]]]);
  });
});

describe("etcd snapshot_succeed_via_app_resp_behind", () => {
  test("an ack behind the pending snapshot ends it if the leader's log can still catch the follower up", () => {
    // Newer etcd, the lead's choice for this core: whatever index the follower's snapshot really
    // had, replication resumes from the log. raft-rs 0.7 keeps waiting until match >= pending.
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    for (const d of ["a", "b", "c"]) r.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry({ data: new TextEncoder().encode(d) })] }));
    p.persist();
    p.readMessages();
    const pr2 = r.prs.get(2n)!;
    pr2.becomeSnapshot(4);
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: r.term, index: 2 }));

    expect({ state: pr2.state, pending: pr2.pendingSnapshot, matched: pr2.matched }).toEqual({ state: ProgressState.Replicate, pending: 0, matched: 2 });
    expect(p.readMessages().map((x) => [MessageType[x.msgType], x.index, x.entries.map((e) => e.index)])).toEqual([["MsgAppend", 2, [3, 4]]]);
  });

  test("an ack behind the pending snapshot and below the leader's first index keeps waiting for the snapshot", () => {
    const p = snapLeader([1n, 2n]);
    const r = p.raft;
    p.readMessages();
    const pr2 = r.prs.get(2n)!;
    pr2.becomeSnapshot(11);
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: r.term, index: 5 }));

    expect({ state: pr2.state, pending: pr2.pendingSnapshot, matched: pr2.matched }).toEqual({ state: ProgressState.Snapshot, pending: 11, matched: 5 });
    expect(p.readMessages()).toEqual([]);
  });
});

describe("raft-rs test_raft_snap.rs", () => {
  test("test_request_snapshot: a follower's request_snapshot makes the leader send a snapshot; only a status report ends it", () => {
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    const r = p.raft;
    r.restore(testingSnap());
    p.persist();
    // No leader known: the request is dropped.
    expect(() => r.requestSnapshot(1)).toThrow(RaftError);
    r.becomeCandidate();
    r.becomeLeader();
    // A leader cannot request a snapshot.
    expect(() => r.requestSnapshot(1)).toThrow(RaftError);

    const pr2 = r.prs.get(2n)!;
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: 11 }));
    expect(pr2.state).toBe(ProgressState.Replicate);
    p.readMessages();

    const request = { msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: 11, reject: true, rejectHint: 0, requestSnapshot: r.raftLog.committed };
    // A request below the match index is out of order: ignored.
    r.step(m({ ...request, index: 9 }));
    expect(pr2.state).toBe(ProgressState.Replicate);

    r.step(m(request));
    expect({ state: pr2.state, pending: pr2.pendingSnapshot, next: pr2.nextIdx, paused: pr2.isPaused() }).toEqual({
      state: ProgressState.Snapshot,
      pending: 11,
      next: 12,
      paused: true,
    });
    const sent = p.readMessages();
    expect(sent.map((x) => [MessageType[x.msgType], x.snapshot?.metadata.index])).toEqual([["MsgSnapshot", 11]]);

    // Appends and acks do not end the snapshot state...
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: 11 }));
    expect({ state: pr2.state, pending: pr2.pendingSnapshot, next: pr2.nextIdx, paused: pr2.isPaused() }).toEqual({
      state: ProgressState.Snapshot,
      pending: 11,
      next: 12,
      paused: true,
    });
    // ...the application's snapshot status report does.
    r.step(m({ msgType: MessageType.MsgSnapStatus, from: 2n, to: 1n }));
    expect({ state: pr2.state, pending: pr2.pendingSnapshot, next: pr2.nextIdx, paused: pr2.isPaused() }).toEqual({
      state: ProgressState.Probe,
      pending: 0,
      next: 12,
      paused: true,
    });
  });

  test("a follower installs a snapshot from the leader and acks its index; a stale one is answered with its commit", () => {
    const p = newTestRaft(2n, [1n, 2n], 10, 1);
    const r = p.raft;
    const snapMsg = m({ msgType: MessageType.MsgSnapshot, from: 1n, to: 2n, term: 11, snapshot: testingSnap() });
    r.step(snapMsg);
    expect(p.readMessages().map((x) => [MessageType[x.msgType], x.index, x.reject])).toEqual([["MsgAppendResponse", 11, false]]);
    expect({ first: r.raftLog.firstIndex(), last: r.raftLog.lastIndex(), committed: r.raftLog.committed }).toEqual({ first: 12, last: 11, committed: 11 });
    p.persist();

    const older = m({ msgType: MessageType.MsgSnapshot, from: 1n, to: 2n, term: 11, snapshot: snapshot(5, 5, [1n, 2n]) });
    r.step(older);
    expect(p.readMessages().map((x) => [MessageType[x.msgType], x.index])).toEqual([["MsgAppendResponse", 11]]);
    expect(r.raftLog.firstIndex()).toBe(12);
  });

  test("a snapshot whose ConfState is invalid is refused without touching the log or the configuration", () => {
    // Regression: ConfStates that replay without error but do not round-trip used to throw out of
    // step() after the log had already been replaced.
    const invalid = [
      newConfState({ voters: [1n, 2n], learners: [2n] }),
      newConfState({ voters: [1n, 2n], learnersNext: [2n] }),
      newConfState({ voters: [1n, 2n], autoLeave: true }),
      newConfState({ voters: [1n, 2n, 2n] }),
      newConfState({ learners: [2n] }),
    ];
    for (const cs of invalid) {
      const p = newTestRaft(2n, [1n, 2n], 10, 1);
      const r = p.raft;
      r.step(m({ msgType: MessageType.MsgSnapshot, from: 1n, to: 2n, term: 11, snapshot: newSnapshot(11, 11, cs) }));
      // Answered like a stale snapshot: with the follower's commit index.
      expect(p.readMessages().map((x) => [MessageType[x.msgType], x.index])).toEqual([["MsgAppendResponse", 0]]);
      expect({ first: r.raftLog.firstIndex(), last: r.raftLog.lastIndex(), pending: r.snap(), conf: r.prs.conf.toString() }).toEqual({
        first: 1,
        last: 0,
        pending: undefined,
        conf: "voters=(1 2)",
      });
    }
  });
});
