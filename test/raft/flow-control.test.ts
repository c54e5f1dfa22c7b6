// etcd raft_flow_control_test.go and raft-rs test_raft_flow_control.rs: a follower in Replicate
// state gets at most `maxInflightMsgs` appends (and, here, at most `maxInflightBytes` of entries)
// in flight; acks and heartbeat responses reopen the window.
import { describe, expect, test } from "bun:test";
import type { Raft } from "../../src/raft/raft.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { MessageType, entrySize, newEntry } from "../../src/raft/types.ts";
import { type Interface, type TestRaftOptions, m, newTestRaft } from "./harness.ts";

function propose(r: Raft, data = "somedata"): void {
  r.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry({ data: new TextEncoder().encode(data) })] }));
}

/** A leader of `peers` (election 5, heartbeat 1) whose followers are forced into Replicate. */
function leaderReplicating(peers: bigint[], opts: TestRaftOptions = {}): Interface {
  const p = newTestRaft(1n, peers, 5, 1, undefined, opts);
  p.raft.becomeCandidate();
  p.raft.becomeLeader();
  for (const id of peers) if (id !== 1n) p.raft.prs.get(id)!.becomeReplicate();
  return p;
}

/** Fills the follower's window with one proposal per message. */
function fillWindow(p: Interface): void {
  for (let i = 0; i < p.raft.prs.maxInflight; i++) {
    propose(p.raft);
    p.readMessages();
  }
}

describe("etcd raft_flow_control_test.go", () => {
  test("TestMsgAppFlowControlFull: each proposal sends one MsgAppend until the window is full, then nothing", () => {
    const p = leaderReplicating([1n, 2n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    for (let i = 0; i < r.prs.maxInflight; i++) {
      propose(r);
      const ms = p.readMessages();
      expect({ i, types: ms.map((x) => MessageType[x.msgType]) }).toEqual({ i, types: ["MsgAppend"] });
    }
    expect(pr2.ins.count).toBe(256);
    expect(pr2.isPaused()).toBe(true);
    for (let i = 0; i < 10; i++) {
      propose(r);
      expect(p.readMessages()).toEqual([]);
    }
  });

  test("TestMsgAppFlowControlMoveForward: an ack frees every slot up to its index; stale acks free nothing", () => {
    const p = leaderReplicating([1n, 2n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    fillWindow(p);
    // Index 1 is the no-op, 2 the first proposal: start acking at 2.
    for (let tt = 2; tt < r.prs.maxInflight; tt++) {
      r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: tt }));
      p.readMessages();
      // The freed slot takes exactly one new append.
      propose(r);
      expect(p.readMessages().map((x) => MessageType[x.msgType])).toEqual(["MsgAppend"]);
      expect(pr2.isPaused()).toBe(true);
      for (let i = 0; i < tt; i++) {
        r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: i }));
        expect(pr2.isPaused()).toBe(true);
      }
    }
  });

  test("TestMsgAppFlowControlRecvHeartbeat: a heartbeat response to a full window frees one slot", () => {
    // raft-rs semantics (also etcd before v3.6): the response frees the oldest slot and the leader
    // sends an empty MsgAppend; the progress stays unpaused until that slot is used. Newer etcd
    // instead marks the progress paused again after the empty append.
    const p = leaderReplicating([1n, 2n]);
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;
    fillWindow(p);
    for (let tt = 1; tt < 5; tt++) {
      expect(pr2.isPaused()).toBe(true);
      for (let i = 0; i < tt; i++) {
        r.step(m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n }));
        const ms = p.readMessages();
        expect(ms.map((x) => [MessageType[x.msgType], x.entries.length])).toEqual([["MsgAppend", 0]]);
        expect(pr2.isPaused()).toBe(false);
      }
      // One slot, so one append...
      propose(r);
      expect(p.readMessages()).toHaveLength(1);
      // ...and only one.
      for (let i = 0; i < 10; i++) {
        propose(r);
        expect(p.readMessages()).toEqual([]);
      }
      // The next heartbeat response sends the ten pending proposals in one append.
      r.step(m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n }));
      expect(p.readMessages().map((x) => x.entries.length)).toEqual([10]);
    }
  });
});

describe("raft-rs test_raft_flow_control.rs", () => {
  test("test_msg_app_flow_control_with_freeing_resources: each follower's window drains and refills independently", () => {
    // raft-rs also allocates the ring buffer lazily and frees it when empty; our windows are
    // preallocated (256 slots per follower), so only the accounting is checked here.
    const p = leaderReplicating([1n, 2n, 3n]);
    const r = p.raft;
    const [pr2, pr3] = [r.prs.get(2n)!, r.prs.get(3n)!];
    expect(r.prs.get(1n)!.ins.count).toBe(0);

    propose(r);
    expect([pr2.ins.count, pr3.ins.count]).toEqual([1, 1]);

    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: r.raftLog.lastIndex() }));
    expect([pr2.ins.count, pr3.ins.count]).toEqual([0, 1]);

    propose(r);
    expect([pr2.ins.count, pr3.ins.count]).toEqual([1, 2]);

    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, index: r.raftLog.lastIndex() }));
    expect([pr2.ins.count, pr3.ins.count]).toEqual([0, 2]);
    expect(pr2.ins.bytes).toBe(0);
    // The leader never tracks a window for itself.
    expect(r.prs.get(1n)!.ins.count).toBe(0);
  });
});

describe("inflight byte budget (maxInflightBytes)", () => {
  test("a byte budget pauses replication long before the message-count limit, and an ack resumes it", () => {
    const data = "x".repeat(88);
    const size = entrySize(newEntry({ data: new TextEncoder().encode(data) }));
    const noop = entrySize(newEntry());
    const budget = 2 * size;
    const p = leaderReplicating([1n, 2n], { maxInflightBytes: budget });
    const r = p.raft;
    const pr2 = r.prs.get(2n)!;

    // First append: the no-op and one proposal, under budget.
    propose(r, data);
    expect(p.readMessages().map((x) => x.entries.length)).toEqual([2]);
    expect(pr2.ins.bytes).toBe(noop + size);
    expect(pr2.isPaused()).toBe(false);

    // Second append crosses the budget: paused with 2 of 256 slots used.
    propose(r, data);
    expect(p.readMessages()).toHaveLength(1);
    expect(pr2.ins.count).toBe(2);
    expect(pr2.ins.bytes).toBe(noop + 2 * size);
    expect(pr2.isPaused()).toBe(true);

    // Further proposals are held back.
    propose(r, data);
    propose(r, data);
    expect(p.readMessages()).toEqual([]);

    // Acking the first append frees its bytes; the held proposals go out in one append.
    r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: r.term, index: 2 }));
    const ms = p.readMessages().filter((x) => x.entries.length > 0);
    expect(ms.map((x) => x.entries.map((e) => e.index))).toEqual([[4, 5]]);
    expect(pr2.ins.count).toBe(2);
    expect(pr2.ins.bytes).toBe(3 * size);
    expect(pr2.isPaused()).toBe(true);
    expect(pr2.state).toBe(ProgressState.Replicate);
  });

  test("without a byte budget the same traffic never pauses", () => {
    const data = "x".repeat(88);
    const p = leaderReplicating([1n, 2n]);
    for (let i = 0; i < 4; i++) {
      propose(p.raft, data);
      expect(p.readMessages()).toHaveLength(1);
    }
    expect(p.raft.prs.get(2n)!.isPaused()).toBe(false);
  });
});
