// Two options the service turns on to send fewer messages per block than raft-rs does, without
// changing what any node learns: a new commit index waits for the next append (skipBcastCommit),
// and a follower that was just sent an append gets no periodic heartbeat on top
// (skipHeartbeatsWhileAppending). Both are off by default, as in raft-rs.
import { describe, expect, test } from "bun:test";
import { MemStorage } from "../../src/raft/storage.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { type Message, MessageType } from "../../src/raft/types.ts";
import { type Interface, m, newTestRaft, proposal, type TestRaftOptions } from "./harness.ts";

/** Node 1 leading {1, 2, 3} at term 1, its empty entry acked by both followers. */
function leader(opts: TestRaftOptions): Interface {
  const p = newTestRaft(1n, [], 10, 1, MemStorage.withVoters([1n, 2n, 3n]), opts);
  p.raft.becomeCandidate();
  p.raft.becomeLeader();
  p.persist();
  const last = p.raft.raftLog.lastIndex();
  for (const id of [2n, 3n]) p.raft.step(ack(id, last, p.raft.term));
  p.persist();
  p.readMessages();
  return p;
}

function ack(from: bigint, index: number, term: number): Message {
  return m({ msgType: MessageType.MsgAppendResponse, from, to: 1n, term, index });
}

const beat = () => m({ msgType: MessageType.MsgBeat, from: 1n, to: 1n });
const kinds = (msgs: Message[]) => msgs.map((x) => `${MessageType[x.msgType]}->${x.to}`).sort();

describe("heartbeats while appending", () => {
  test("a replicating follower that was sent an append since the last beat gets no heartbeat; the others do", () => {
    const p = leader({ skipHeartbeatsWhileAppending: true });
    p.raft.step(proposal(1n, 1n, "x"));
    const sent = p.readMessages();
    expect(kinds(sent)).toEqual(["MsgAppend->2", "MsgAppend->3"]);
    // Follower 3 falls back to probing (say, a rejection): it must keep its heartbeats.
    p.raft.prs.get(3n)!.becomeProbe();
    p.raft.step(beat());
    expect(kinds(p.readMessages())).toEqual(["MsgHeartbeat->3"]);
    // Nothing appended since: everyone gets the next beat.
    p.raft.step(beat());
    expect(kinds(p.readMessages())).toEqual(["MsgHeartbeat->2", "MsgHeartbeat->3"]);
  });

  test("off by default: every beat goes to every follower, as raft-rs sends it", () => {
    const p = leader({});
    p.raft.step(proposal(1n, 1n, "x"));
    p.readMessages();
    p.raft.step(beat());
    expect(kinds(p.readMessages())).toEqual(["MsgHeartbeat->2", "MsgHeartbeat->3"]);
    expect(p.raft.prs.get(2n)!.state).toBe(ProgressState.Replicate);
  });
});

describe("commit broadcast", () => {
  test("with skipBcastCommit a new commit index is not sent by itself; the next append carries it", () => {
    const p = leader({ skipBcastCommit: true });
    p.raft.step(proposal(1n, 1n, "a"));
    p.persist();
    p.readMessages();
    const index = p.raft.raftLog.lastIndex();
    p.raft.step(ack(2n, index, p.raft.term));
    expect(p.raft.raftLog.committed).toBe(index);
    expect(p.readMessages()).toEqual([]); // raft-rs would send an empty append to 2 and 3 here
    p.raft.step(proposal(1n, 1n, "b"));
    const next = p.readMessages().filter((x) => x.msgType === MessageType.MsgAppend);
    expect(next.map((x) => x.commit)).toEqual([index, index]);
  });

  test("without it the commit index goes out at once, to every follower", () => {
    const p = leader({});
    p.raft.step(proposal(1n, 1n, "a"));
    p.persist();
    p.readMessages();
    const index = p.raft.raftLog.lastIndex();
    p.raft.step(ack(2n, index, p.raft.term));
    expect(p.readMessages().map((x) => [MessageType[x.msgType], x.to, x.commit])).toEqual([
      ["MsgAppend", 2n, index],
      ["MsgAppend", 3n, index],
    ]);
  });
});
