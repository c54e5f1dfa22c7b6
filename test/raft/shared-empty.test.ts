// Empty parts of Readies and messages share one list each (an allocation saved per message). The
// lists are not frozen (see sharedEmptyList), so the RawNode must catch a caller that appends to
// one before the change leaks into every later Ready.
import { describe, expect, test } from "bun:test";
import { RawNode } from "../../src/raft/raw-node.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import { NO_MESSAGES, newConfState, newMessage, newSnapshot } from "../../src/raft/types.ts";

function follower(): RawNode {
  const st = new MemStorage();
  st.applySnapshot(newSnapshot(1, 1, newConfState({ voters: [1n, 2n] })));
  return new RawNode({ id: 2n, electionTick: 10, heartbeatTick: 1, applied: 1 }, st);
}

describe("shared empty lists", () => {
  test("a Ready without leader messages hands out the shared empty list", () => {
    const rn = follower();
    rn.step(newMessage({ msgType: 8 /* MsgHeartbeat */, from: 1n, to: 2n, term: 2, commit: 1 }));
    const rd = rn.ready();
    expect(rd.messages).toBe(NO_MESSAGES);
    expect(rd.persistedMessages.length).toBe(1);
    rn.advance(rd);
  });

  test("appending to it is caught by the next advance or ready, with a clear error", () => {
    const rn = follower();
    rn.step(newMessage({ msgType: 8, from: 1n, to: 2n, term: 2, commit: 1 }));
    const rd = rn.ready();
    rd.messages.push(newMessage());
    try {
      expect(() => rn.advance(rd)).toThrow(/shared empty list was appended to/);
      expect(() => rn.ready()).toThrow(/shared empty list was appended to/);
    } finally {
      NO_MESSAGES.length = 0; // repair the module state for the other tests in this process
    }
  });
});
