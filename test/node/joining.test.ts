// A node whose store is empty at a running chain (a new validator, a wiped data dir): it must not
// make up a configuration from the validator list and start a second history with it; it waits
// for the chain's leader to send it the state, and takes Raft messages from any node meanwhile,
// because the real configuration may hold validators on their way out (who may need its vote).
import { afterEach, describe, expect, test } from "bun:test";
import { MessageType } from "../../gen/eraftpb_pb.ts";
import { FRESH_HOLD_OFF_ELECTIONS, FRESH_HOLD_OFF_MIN_MS } from "../../src/node/raft-peer.ts";
import { PeerRig } from "../support/peer-rig.ts";

const rigs: PeerRig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

/** `self` with an empty store at chain height 10; the validators are self and b: a is on its way out. */
function joining(): PeerRig {
  const r = new PeerRig({ emptyStore: true, validators: "self-and-b" });
  rigs.push(r);
  return r;
}

describe("an empty store at a running chain", () => {
  test("does not bootstrap a configuration of its own from the validator list", async () => {
    const r = joining();
    await r.settle();
    expect(r.peer.status().voters).toEqual([]);
    expect(r.log.has("empty raft storage at a running chain: waiting for its leader to send the raft state")).toBe(true);
    expect(r.log.has("bootstrapped raft storage")).toBe(false);
  });

  test("answers the vote request of a member of the real configuration that is no longer a validator", async () => {
    const r = joining();
    await r.settle();
    // a learns where we are from our probe answer; then it asks for our vote.
    r.learnOrigin(r.a);
    r.deliver(r.a, { msgType: MessageType.MsgRequestVote, term: 9n, logTerm: 8n, index: 30n });
    await r.settle();
    const votes = r.sentRaft().filter((m) => m.msgType === MessageType.MsgRequestVoteResponse);
    expect(votes.map((m) => [m.to, m.reject])).toEqual([[r.a.id, false]]);
    expect(r.drops).toEqual([]);
  });

  test("takes the leader's snapshot and from then on drops strangers again", async () => {
    const r = joining();
    await r.settle();
    r.learnOrigin(r.a);
    r.deliver(r.a, {
      msgType: MessageType.MsgSnapshot,
      term: 9n,
      snapshot: { metadata: { index: 30n, term: 8n, confState: { voters: [r.a.id, r.self.id, r.b.id] } }, data: new Uint8Array() },
    });
    await r.settle();
    expect(r.peer.status().voters.sort()).toEqual([r.a.id, r.self.id, r.b.id].sort());
    expect(r.peer.status().leader).toBe(r.a.id);
    r.deliver({ id: 0x4242n, origin: 0x99n }, { msgType: MessageType.MsgRequestVote, term: 1000n, logTerm: 1000n, index: 1000n });
    await r.settle();
    expect(r.drops).toEqual(["not_member"]);
  });
});

describe("a leader that reached the empty store, then stopped sending", () => {
  // a led the chain (self's heartbeat came from it), was removed from the validators, and stopped:
  // it is no longer a validator, and self has no configuration of its own yet.
  test("once it has been silent an election timeout, its vote request is answered even right after its pre-vote", async () => {
    const r = joining();
    await r.settle();
    r.learnOrigin(r.a);
    r.deliver(r.a, { msgType: MessageType.MsgHeartbeat, term: 7n });
    await r.settle();
    expect(r.peer.status().leader).toBe(r.a.id);
    r.tick(r.electionTick + 1);
    r.deliver(r.a, { msgType: MessageType.MsgRequestPreVote, term: 8n, logTerm: 7n, index: 10n });
    await r.settle();
    r.clock.t += 15;
    r.deliver(r.a, { msgType: MessageType.MsgRequestVote, term: 8n, logTerm: 7n, index: 10n });
    await r.settle();
    const answers = r.sentRaft().filter((m) => m.msgType === MessageType.MsgRequestPreVoteResponse || m.msgType === MessageType.MsgRequestVoteResponse);
    expect(answers.map((m) => [MessageType[m.msgType], m.reject])).toEqual([
      ["MsgRequestPreVoteResponse", false],
      ["MsgRequestVoteResponse", false],
    ]);
    expect(r.drops).toEqual([]);
  });

  test("while it still sends heartbeats, its vote requests and its silence change nothing", async () => {
    const r = joining();
    await r.settle();
    r.learnOrigin(r.a);
    for (let i = 0; i < 8; i++) {
      r.deliver(r.a, { msgType: MessageType.MsgHeartbeat, term: 7n });
      await r.settle();
      r.tick(r.electionTick - 1);
    }
    r.deliver(r.a, { msgType: MessageType.MsgRequestVote, term: 8n, logTerm: 7n, index: 10n });
    await r.settle();
    expect(r.drops).toEqual(["not_member"]);
    expect(r.log.has("bootstrapped raft storage")).toBe(false);
    expect(r.peer.status().voters).toEqual([]);
  });

  test("if its snapshot never comes, the store bootstraps from the validator list after the wait", async () => {
    const r = joining();
    await r.settle();
    r.learnOrigin(r.a);
    r.deliver(r.a, { msgType: MessageType.MsgHeartbeat, term: 7n });
    await r.settle();
    // The leader is followed for an election timeout after its heartbeat; then self, the first
    // listed validator, waits 3 election timeouts or 30 s, whichever is longer.
    const wait = Math.max(FRESH_HOLD_OFF_ELECTIONS * r.electionTick, Math.ceil(FRESH_HOLD_OFF_MIN_MS / r.tickMs));
    r.tick(r.electionTick - 1 + wait - 1);
    await r.settle();
    expect(r.log.has("bootstrapped raft storage")).toBe(false);
    r.tick(1);
    await r.settle();
    expect(r.log.has("no leader heard from; starting the chain's raft state from the validator list")).toBe(true);
    expect(r.peer.status().voters.sort()).toEqual([r.self.id, r.b.id].sort());
  });
});
