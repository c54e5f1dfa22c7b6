// What GET /status reports about one node: the Raft peer's own view (role, leader, how long it
// has been without one) and, on a leader, each follower's progress and when it last spoke.
import { afterEach, describe, expect, test } from "bun:test";
import { MessageType } from "../../gen/eraftpb_pb.ts";
import { buildStatus } from "../../src/node/status.ts";
import { peerIdHex } from "../../src/peer/peer-id.ts";
import { PeerRig } from "../support/peer-rig.ts";

const rigs: PeerRig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

function rig(): PeerRig {
  const r = new PeerRig();
  rigs.push(r);
  return r;
}

function statusOf(r: PeerRig) {
  return buildStatus({
    version: "6.7.4",
    selfId: r.self.id,
    address: r.self.address,
    serving: true,
    uptimeMs: 1234,
    peer: { status: r.peer.status(), config: r.peer.chainConfig() },
  });
}

describe("status of a Raft peer", () => {
  test("a follower names its leader and how long it went without one; it lists no peers", async () => {
    const r = rig();
    const fresh = statusOf(r);
    expect(fresh).toMatchObject({ raft_running: true, role: "follower", leader: null, leader_address: null, peers: null, height: 10, block_interval_seconds: 3 });
    expect(fresh.leaderless_ms).toBeGreaterThanOrEqual(0);
    r.deliver(r.a, { msgType: MessageType.MsgHeartbeat, term: 6n, commit: 5n });
    await r.settle();
    const s = statusOf(r);
    expect(s).toMatchObject({
      id: peerIdHex(r.self.id),
      address: "0x2222222222222222222222222222222222222222",
      uptime_seconds: 1.2,
      role: "follower",
      term: 6,
      leader: peerIdHex(r.a.id),
      leader_address: "0x1111111111111111111111111111111111111111",
      leaderless_ms: 0,
      commit_index: 5,
      voters: [r.a.id, r.self.id, r.b.id].sort((x, y) => (x < y ? -1 : 1)).map(peerIdHex),
      voters_outgoing: [],
      learners: [],
      commit_backlog: 0,
      last_block: null,
      peers: null,
    });
  });

  test("a leader lists each follower: who answered and when, who never did", async () => {
    const r = rig();
    r.peer.node.campaign(); // pre-vote first (term 6), then the real vote
    await r.settle();
    r.deliver(r.a, { msgType: MessageType.MsgRequestPreVoteResponse, term: 6n });
    await r.settle();
    r.deliver(r.a, { msgType: MessageType.MsgRequestVoteResponse, term: 6n });
    await r.settle();
    expect(r.peer.isLeader()).toBe(true);
    const last = r.peer.status().lastIndex; // the new leader's empty entry
    r.deliver(r.a, { msgType: MessageType.MsgAppendResponse, term: 6n, index: BigInt(last) });
    await r.settle();
    const s = statusOf(r);
    expect(s).toMatchObject({ role: "leader", term: 6, leader: peerIdHex(r.self.id), leaderless_ms: 0 });
    const byAddress = new Map(s.peers!.map((p) => [p.address, p]));
    expect(s.peers!.map((p) => p.id).sort()).toEqual([peerIdHex(r.a.id), peerIdHex(r.b.id)].sort());
    const a = byAddress.get("0x1111111111111111111111111111111111111111")!;
    const b = byAddress.get("0x3333333333333333333333333333333333333333")!;
    expect(a.last_heard_ms).toBeGreaterThanOrEqual(0);
    expect(a).toMatchObject({ learner: false, state: "replicate", recent_active: true, match: last, next: last + 1, lag: 0 });
    expect(b).toMatchObject({ learner: false, state: "probe", recent_active: false, match: 0, lag: last, last_heard_ms: null }); // B never said anything
  });

  test("a node that runs no Raft peer reports its identity and null Raft fields", () => {
    const s = buildStatus({ version: "6.7.4", selfId: 0x1234n, address: new Uint8Array(20).fill(0xab), serving: false, uptimeMs: 50 });
    expect(s).toMatchObject({ id: "0x0000000000001234", address: `0x${"ab".repeat(20)}`, serving: false, raft_running: false, role: null, peers: null });
  });
});
