// A leader whose own configuration no longer holds it (a removal proposed before it was elected,
// applied under its lead) can propose neither blocks nor configuration changes: Raft drops both.
// It must hand leadership over, to a voter that is not a validator if no validator is a voter,
// or the chain stops for good (found by the chain simulator, seed 8165).
import { afterEach, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { ConsensusConfigurationSchema } from "../../gen/common_pb.ts";
import { MessageType } from "../../gen/eraftpb_pb.ts";
import { ConfChangeTransition, ConfChangeType, EMPTY_BYTES } from "../../src/raft/index.ts";
import { PeerRig } from "../support/peer-rig.ts";

const rigs: PeerRig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

/** self wins an election among {a, self, b} with a's votes. */
async function elect(r: PeerRig): Promise<void> {
  for (const m of [r.a, r.b]) r.learnOrigin(m);
  r.peer.node.campaign();
  await r.settle();
  const term = BigInt(r.peer.status().term);
  r.deliver(r.a, { msgType: MessageType.MsgRequestPreVoteResponse, term: term + 1n });
  await r.settle();
  r.deliver(r.a, { msgType: MessageType.MsgRequestVoteResponse, term: BigInt(r.peer.status().term) });
  await r.settle();
  expect(r.peer.isLeader()).toBe(true);
}

test("a leader outside its own configuration, with no validator among the voters, hands over to a voter", async () => {
  const r = new PeerRig();
  rigs.push(r);
  await elect(r);
  // A removal of self is pending (the previous leader's, in the real case) ...
  r.peer.node.proposeConfChange(new Uint8Array(0), {
    transition: ConfChangeTransition.Auto,
    changes: [{ changeType: ConfChangeType.RemoveNode, nodeId: r.self.id }],
    context: EMPTY_BYTES,
  });
  await r.settle();
  // ... while governance makes self the only validator: neither a nor b may lead the chain.
  r.peer.offerConfig(create(ConsensusConfigurationSchema, { height: 11n, blockInterval: 3, validators: [r.self.address] }));
  const term = BigInt(r.peer.status().term);
  const last = BigInt(r.peer.status().lastIndex);
  r.deliver(r.a, { msgType: MessageType.MsgAppendResponse, term, index: last });
  await r.settle();
  expect(r.peer.status().voters.sort()).toEqual([r.a.id, r.b.id].sort());
  expect(r.peer.isLeader()).toBe(true);

  r.tick(1);
  await r.settle();
  const timeoutNow = r.sentRaft().filter((m) => m.msgType === MessageType.MsgTimeoutNow);
  expect(timeoutNow.map((m) => m.to)).toEqual([r.a.id]);
  expect(r.log.lines.some((l) => l.message === "transferring leadership" && l.fields.reason === "leader is outside its raft configuration")).toBe(true);
  expect(r.log.has("conf change dropped by raft")).toBe(false);
});
