import { describe, expect, test } from "bun:test";
import { MessageType } from "../../src/raft/types.ts";
import { Network, StateRole, hup, proposal } from "./harness.ts";

describe("raft core smoke", () => {
  test("three nodes elect node 1 and commit a proposal everywhere", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    expect(nt.raft(1n).state).toBe(StateRole.Leader);
    expect(nt.raft(2n).state).toBe(StateRole.Follower);
    expect(nt.raft(1n).term).toBe(1);
    nt.send([proposal(1n, 1n)]);
    for (const id of [1n, 2n, 3n]) {
      expect(nt.raft(id).raftLog.committed).toBe(2);
      expect(nt.raft(id).raftLog.lastIndex()).toBe(2);
    }
    expect(MessageType.MsgAppend).toBe(3);
  });
});
