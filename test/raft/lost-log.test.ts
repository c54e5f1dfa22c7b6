// A follower that comes back with an empty log after acknowledging entries (an operator wiped its
// data dir) must be caught up again. Its first rejections sit at or below its match index, which
// a leader ignores as stale (as raft-rs does); the first rejection above the match moves it to
// Probe at the match, and the rejection of that probe shows the loss: the leader forgets the match
// and probes from the follower's log end (or sends a snapshot when its log is compacted).
import { describe, expect, test } from "bun:test";
import { MemStorage } from "../../src/raft/storage.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { type Message, MessageType } from "../../src/raft/types.ts";
import { Network, StateRole, beat, confStateOf, hup, m, newTestRaft, proposal } from "./harness.ts";

/** A 3-node cluster whose leader 1 has 6 entries (no-op + 5), all on 2 and 3, and node 3 wiped. */
function clusterWithWipedFollower(opts: { compactAt?: number } = {}) {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send([hup(1n)]);
  for (let i = 0; i < 5; i++) nt.send([proposal(1n, 1n)]);
  const leader = nt.raft(1n);
  expect(leader.raftLog.committed).toBe(6);
  expect(leader.prs.get(3n)!.matched).toBe(6);
  if (opts.compactAt !== undefined) {
    const store = nt.storage.get(1n)!;
    store.createSnapshot(opts.compactAt, confStateOf([1n, 2n, 3n]), new Uint8Array([1]));
    store.compact(opts.compactAt);
  }
  // Node 3 restarts from an empty store with the same configuration.
  const wiped = newTestRaft(3n, [1n, 2n, 3n], 10, 1, MemStorage.withVoters([1n, 2n, 3n]));
  nt.peers.set(3n, wiped);
  nt.storage.set(3n, wiped.store);
  // Every append, append response and snapshot between the leader and node 3, in delivery order,
  // one line each; `lose` picks messages the network loses (they are listed, marked lost).
  const fixture = { nt, leader, wiped, lines: [] as string[], lose: (_x: Message) => false };
  nt.msgHook = (x) => {
    const between = (x.from === 1n && x.to === 3n) || (x.from === 3n && x.to === 1n);
    const heartbeat = x.msgType === MessageType.MsgHeartbeat || x.msgType === MessageType.MsgHeartbeatResponse;
    const lost = between && fixture.lose(x);
    if (between && !heartbeat) fixture.lines.push(lost ? `${line(x)} (lost)` : line(x));
    return !lost;
  };
  return fixture;
}

/** A message between 1 and 3 as one line: "1->3 app 6 [7] c=7", "3->1 rej 6 hint 0", "3->1 ack 7". */
function line(x: Message): string {
  const dir = `${x.from}->${x.to}`;
  switch (x.msgType) {
    case MessageType.MsgAppend:
      return `${dir} app ${x.index} [${x.entries.map((e) => e.index).join(",")}] c=${x.commit}`;
    case MessageType.MsgAppendResponse:
      return x.reject ? `${dir} rej ${x.index} hint ${x.rejectHint}` : `${dir} ack ${x.index}`;
    case MessageType.MsgSnapshot:
      return `${dir} snapshot ${x.snapshot?.metadata.index}`;
    default:
      return `${dir} ${MessageType[x.msgType]}`;
  }
}

describe("follower that lost its log", () => {
  test("a wiped follower is found from Replicate and caught up from its log end (leader log not compacted)", () => {
    const { nt, leader, wiped, lines } = clusterWithWipedFollower();
    nt.send([proposal(1n, 1n)]);
    expect(lines).toEqual([
      "1->3 app 6 [7] c=6",
      "3->1 rej 6 hint 0", // at the match: stale for raft-rs, ignored
      "1->3 app 7 [] c=7", // the commit broadcast, beyond the match
      "3->1 rej 7 hint 0", // above the match: Probe at 7
      "1->3 app 6 [7] c=7", // the probe at the match
      "3->1 rej 6 hint 0", // answers the probe: the follower lost acknowledged entries
      "1->3 app 0 [1,2,3,4,5,6,7] c=7",
      "3->1 ack 7", // Replicate again
      "1->3 app 7 [] c=7", // the commit index it may have missed while probed
      "3->1 ack 7",
    ]);
    expect(leader.state).toBe(StateRole.Leader);
    expect(wiped.raft.raftLog.lastIndex()).toBe(7);
    expect(wiped.raft.raftLog.committed).toBe(7);
    const pr = leader.prs.get(3n)!;
    expect([pr.matched, pr.nextIdx, pr.state]).toEqual([7, 8, ProgressState.Replicate]);
  });

  test("a wiped follower gets a snapshot when the leader has compacted its log past the follower's log end", () => {
    const { nt, leader, wiped, lines } = clusterWithWipedFollower({ compactAt: 5 });
    nt.send([proposal(1n, 1n)]);
    expect(lines).toEqual([
      "1->3 app 6 [7] c=6",
      "3->1 rej 6 hint 0",
      "1->3 app 7 [] c=7",
      "3->1 rej 7 hint 0",
      "1->3 app 6 [7] c=7",
      "3->1 rej 6 hint 0",
      "1->3 snapshot 5", // entries from 1 are compacted
      "3->1 ack 5", // the snapshot is applied: Replicate from 6
      "1->3 app 5 [6,7] c=7",
      "3->1 ack 7",
    ]);
    expect(wiped.store.snap.metadata.index).toBe(5);
    expect(wiped.raft.raftLog.lastIndex()).toBe(7);
    expect(wiped.raft.raftLog.committed).toBe(7);
    expect(leader.prs.get(3n)!.state).toBe(ProgressState.Replicate);
  });

  for (const compactAt of [undefined, 5]) {
    test(`on an idle chain, heartbeats alone repair a wiped follower once one entry was added (${compactAt === undefined ? "full log" : "compacted log: snapshot"})`, () => {
      const c = clusterWithWipedFollower({ compactAt });
      const { nt, leader, wiped, lines } = c;
      // Nothing new to replicate: the leader believes 3 is up to date and sends it heartbeats
      // only, as raft-rs does (every entry is committed on 1 and 2 meanwhile).
      for (let i = 0; i < 3; i++) nt.send([beat(1n)]);
      expect(lines).toEqual([]);
      expect([leader.prs.get(3n)!.matched, leader.prs.get(3n)!.state]).toEqual([6, ProgressState.Replicate]);
      // One entry is added and the chain falls idle again; the commit broadcast to 3 is lost.
      c.lose = (x) => x.msgType === MessageType.MsgAppend && x.entries.length === 0;
      nt.send([proposal(1n, 1n)]);
      expect(lines).toEqual(["1->3 app 6 [7] c=6", "3->1 rej 6 hint 0", "1->3 app 7 [] c=7 (lost)"]);
      // The leader knows 3 lags (match 6 < 7): the next heartbeat response draws an append beyond the match.
      c.lose = () => false;
      lines.length = 0;
      nt.send([beat(1n)]);
      const found = ["1->3 app 7 [] c=7", "3->1 rej 7 hint 0", "1->3 app 6 [7] c=7", "3->1 rej 6 hint 0"];
      expect(lines).toEqual(
        compactAt === undefined
          ? [...found, "1->3 app 0 [1,2,3,4,5,6,7] c=7", "3->1 ack 7", "1->3 app 7 [] c=7", "3->1 ack 7"]
          : [...found, "1->3 snapshot 5", "3->1 ack 5", "1->3 app 5 [6,7] c=7", "3->1 ack 7"],
      );
      expect(wiped.raft.raftLog.lastIndex()).toBe(7);
      expect(wiped.raft.raftLog.committed).toBe(7);
      expect([leader.prs.get(3n)!.matched, leader.prs.get(3n)!.state]).toEqual([7, ProgressState.Replicate]);
    });
  }

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
