// Scenario tests for log replication, commitment and per-follower progress, ported from the
// scenarios of etcd raft_test.go and raft-rs test_raft.rs. Where etcd and raft-rs differ the
// raft-rs expectation is used and the difference is noted.
import { describe, expect, test } from "bun:test";
import { RaftError } from "../../src/raft/errors.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { type Entry, MessageType, NONE, type NodeId, entrySize, newEntry } from "../../src/raft/types.ts";
import {
  type Interface,
  Network,
  StateRole,
  addNode,
  becomeLeaderNow,
  beat,
  commitNoopEntry,
  compactThrough,
  entsWithTerms,
  expectOneMessage,
  hup,
  m,
  newStorageWithEntries,
  newTestRaft,
  nextEnts,
  proposal,
  snapshot,
  text,
} from "./harness.ts";

const P3: NodeId[] = [1n, 2n, 3n];

/** term/index/data of every entry in the log, for whole-log comparisons. */
function logView(r: { raftLog: { allEntries(): Entry[] } }): [number, number, string][] {
  return r.raftLog.allEntries().map((e) => [e.term, e.index, text(e.data)]);
}

function propose(p: Interface, data = "somedata"): void {
  p.step(proposal(p.id, p.id, data));
}

function ack(p: Interface, from: NodeId, index: number, extra: Parameters<typeof m>[0] = {}): void {
  p.step(m({ msgType: MessageType.MsgAppendResponse, from, to: p.id, term: p.raft.term, index, ...extra }));
}

describe("LogReplication", () => {
  test("a proposal on the leader is committed and applied everywhere", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.send([proposal(1n, 1n, "somedata")]);
    for (const id of P3) {
      expect(nt.raft(id).raftLog.committed).toBe(2);
      expect(nextEnts(nt.peer(id)).filter((e) => e.data.length > 0).map((e) => text(e.data))).toEqual(["somedata"]);
    }
  });

  test("proposals across a leader change are committed in order", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.send([proposal(1n, 1n, "first")]);
    nt.send([m({ msgType: MessageType.MsgHup, from: 1n, to: 2n })]);
    nt.send([proposal(2n, 2n, "second")]);
    for (const id of P3) {
      expect(nt.raft(id).raftLog.committed).toBe(4);
      expect(nextEnts(nt.peer(id)).filter((e) => e.data.length > 0).map((e) => text(e.data))).toEqual(["first", "second"]);
    }
  });
});

test("SingleNodeCommit: a single node commits each proposal by itself", () => {
  const nt = new Network([undefined]);
  nt.send([hup(1n)]);
  nt.send([proposal(1n, 1n, "some data")]);
  nt.send([proposal(1n, 1n, "some data")]);
  expect(nt.raft(1n).raftLog.committed).toBe(3);
});

describe("commitment across terms", () => {
  test("CannotCommitWithoutNewTermEntry: entries of an old term commit only with one of the new term", () => {
    const nt = new Network([undefined, undefined, undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    // 1 reaches only 2: the two proposals cannot commit.
    nt.cut(1n, 3n);
    nt.cut(1n, 4n);
    nt.cut(1n, 5n);
    nt.send([proposal(1n, 1n, "some data")]);
    nt.send([proposal(1n, 1n, "some data")]);
    expect(nt.raft(1n).raftLog.committed).toBe(1);
    nt.recover();
    // Keep the new leader's no-op from being replicated.
    nt.ignore(MessageType.MsgAppend);
    nt.send([hup(2n)]);
    const r2 = nt.raft(2n);
    expect(r2.state).toBe(StateRole.Leader);
    // Index 3 (term 1) is on a majority now, but it must not be committed by counting.
    expect(r2.raftLog.committed).toBe(1);
    nt.recover();
    nt.send([beat(2n)]);
    nt.send([proposal(2n, 2n, "some data")]);
    expect(r2.raftLog.committed).toBe(5);
  });

  test("CommitWithoutNewTermEntry: the new leader's no-op commits the previous term's entries", () => {
    const nt = new Network([undefined, undefined, undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.cut(1n, 3n);
    nt.cut(1n, 4n);
    nt.cut(1n, 5n);
    nt.send([proposal(1n, 1n, "some data")]);
    nt.send([proposal(1n, 1n, "some data")]);
    expect(nt.raft(1n).raftLog.committed).toBe(1);
    nt.recover();
    nt.send([hup(2n)]);
    expect(nt.raft(1n).raftLog.committed).toBe(4);
  });

  test("OldMessages: an append from a deposed leader's term is ignored", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    nt.send([hup(2n)]);
    nt.send([hup(1n)]);
    expect(nt.raft(1n).term).toBe(3);
    // An old leader of term 2 tries to append at index 3.
    nt.send([m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 2, index: 2, logTerm: 2, entries: [newEntry({ term: 2, index: 3 })] })]);
    nt.send([proposal(1n, 1n, "somedata")]);
    for (const id of P3) {
      expect(logView(nt.raft(id))).toEqual([
        [1, 1, ""],
        [2, 2, ""],
        [3, 3, ""],
        [3, 4, "somedata"],
      ]);
      expect(nt.raft(id).raftLog.committed).toBe(4);
    }
  });
});

describe("Proposal", () => {
  const cases: [string, (Interface | undefined | null)[], boolean][] = [
    ["3 live", [undefined, undefined, undefined], true],
    ["3 nodes, 1 black hole", [undefined, undefined, null], true],
    ["3 nodes, 2 black holes", [undefined, null, null], false],
    ["4 nodes, 2 black holes", [undefined, null, null, undefined], false],
    ["5 nodes, 2 black holes", [undefined, null, null, undefined, undefined], true],
  ];
  for (const [name, peers, success] of cases) {
    test(`${name}: ${success ? "committed everywhere" : "dropped, no leader"}`, () => {
      const nt = new Network(peers);
      nt.send([hup(1n)]);
      // Without a quorum node 1 stays candidate: the network swallows the ProposalDropped.
      nt.send([proposal(1n, 1n, "somedata")]);
      const want = success
        ? [
            [1, 1, ""],
            [1, 2, "somedata"],
          ]
        : [];
      for (const [id, p] of nt.peers) if (p !== undefined) expect(logView(nt.raft(id))).toEqual(want as [number, number, string][]);
      expect(nt.raft(1n).term).toBe(1);
    });
  }

  for (const peers of [
    [undefined, undefined, undefined],
    [undefined, undefined, null],
  ] as (undefined | null)[][]) {
    test(`ProposalByProxy (${peers.length - peers.filter((x) => x === null).length} live): a follower forwards to the leader`, () => {
      const nt = new Network(peers);
      nt.send([hup(1n)]);
      nt.send([proposal(2n, 2n, "somedata")]);
      for (const [id, p] of nt.peers) {
        if (p === undefined) continue;
        expect(logView(nt.raft(id))).toEqual([
          [1, 1, ""],
          [1, 2, "somedata"],
        ]);
      }
      expect(nt.raft(1n).term).toBe(1);
    });
  }

  test("a follower forwards a proposal with term 0, and drops it with no leader", () => {
    const p = newTestRaft(2n, P3, 10, 1);
    expect(() => propose(p)).toThrow(RaftError);
    p.raft.becomeFollower(1, 1n);
    propose(p);
    const fwd = expectOneMessage(p);
    expect([MessageType[fwd.msgType], fwd.to, fwd.term, fwd.entries.length]).toEqual(["MsgPropose", 1n, 0, 1]);
  });

  test("disableProposalForwarding drops a follower's proposal", () => {
    const p = newTestRaft(2n, P3, 10, 1, undefined, { disableProposalForwarding: true });
    p.raft.becomeFollower(1, 1n);
    expect(() => propose(p)).toThrow(/forwarding is disabled/);
    expect(p.readMessages()).toEqual([]);
  });
});

test("Commit: the commit index is the quorum's match index, only for an entry of the current term", () => {
  // [match indexes of voters 1.., log terms, leader term, expected commit]
  const cases: [number[], number[], number, number][] = [
    // single
    [[1], [1], 1, 1],
    [[1], [1], 2, 0],
    [[2], [1, 2], 2, 2],
    [[1], [2], 2, 1],
    // odd
    [[2, 1, 1], [1, 2], 1, 1],
    [[2, 1, 1], [1, 1], 2, 0],
    [[2, 1, 2], [1, 2], 2, 2],
    [[2, 1, 2], [1, 1], 2, 0],
    // even
    [[2, 1, 1, 1], [1, 2], 1, 1],
    [[2, 1, 1, 1], [1, 1], 2, 0],
    [[2, 1, 1, 2], [1, 2], 1, 1],
    [[2, 1, 1, 2], [1, 1], 2, 0],
    [[2, 1, 2, 2], [1, 2], 2, 2],
    [[2, 1, 2, 2], [1, 1], 2, 0],
  ];
  cases.forEach(([matches, terms, term, want], i) => {
    const store = newStorageWithEntries(entsWithTerms(terms), [1n]);
    store.setHardState({ term, vote: NONE, commit: 0 });
    const r = newTestRaft(1n, [], 10, 2, store).raft;
    matches.forEach((match, j) => {
      const id = BigInt(j + 1);
      if (id > 1n) r.applyConfChange(addNode(id));
      const pr = r.prs.get(id)!;
      pr.matched = match;
      pr.nextIdx = match + 1;
    });
    r.maybeCommit();
    expect(r.raftLog.committed, `case ${i}`).toBe(want);
  });
});

test("StepIgnoreOldTermMsg: a message of an older term changes nothing and gets no answer", () => {
  const p = newTestRaft(1n, P3, 10, 1);
  p.raft.becomeFollower(2, NONE);
  const elapsed = p.raft.electionElapsed;
  p.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 1, entries: [newEntry({ term: 1, index: 1 })], commit: 1 }));
  expect(p.raft.raftLog.lastIndex()).toBe(0);
  expect(p.raft.raftLog.committed).toBe(0);
  expect(p.raft.leaderId).toBe(NONE);
  expect(p.raft.electionElapsed).toBe(elapsed);
  expect(p.readMessages()).toEqual([]);
});

test("HandleMsgApp: match check, conflict truncation and commit = min(leader commit, last new entry)", () => {
  // Follower log [1@1, 2@2] at term 2. [term, logTerm, index, commit, entries (term@index), wantLast, wantCommit, wantReject]
  const cases: [number, number, number, number, [number, number][], number, number, boolean][] = [
    // 1. reject if the log has no entry at index with logTerm
    [2, 3, 2, 3, [], 2, 0, true], // mismatch
    [2, 3, 3, 3, [], 2, 0, true], // missing
    // 2. a conflicting entry and its suffix are replaced; new entries appended
    [2, 1, 1, 1, [], 2, 1, false],
    [2, 0, 0, 1, [[2, 1]], 1, 1, false],
    [2, 2, 2, 3, [[2, 3], [2, 4]], 4, 3, false],
    [2, 2, 2, 4, [[2, 3]], 3, 3, false],
    [2, 1, 1, 4, [[2, 2]], 2, 2, false],
    // 3. commit = min(leader commit, index of the last new entry)
    [1, 1, 1, 3, [], 2, 1, false],
    [1, 1, 1, 3, [[2, 2]], 2, 2, false],
    [2, 2, 2, 3, [], 2, 2, false],
    [2, 2, 2, 4, [], 2, 2, false],
  ];
  cases.forEach(([term, logTerm, index, commit, ents, wlast, wcommit, wreject], i) => {
    const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(entsWithTerms([1, 2]), [1n]));
    p.raft.becomeFollower(2, NONE);
    p.raft.handleAppendEntries(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term, logTerm, index, commit, entries: ents.map(([t, x]) => newEntry({ term: t, index: x })) }));
    expect(p.raft.raftLog.lastIndex(), `case ${i}`).toBe(wlast);
    expect(p.raft.raftLog.committed, `case ${i}`).toBe(wcommit);
    const msgs = p.readMessages();
    expect(msgs.length, `case ${i}`).toBe(1);
    expect(msgs[0].reject, `case ${i}`).toBe(wreject);
    // raft-rs reports the follower's commit index in every append response.
    expect(msgs[0].commit, `case ${i}`).toBe(wcommit);
  });
});

describe("heartbeats", () => {
  test("HandleHeartbeat: a follower commits to the heartbeat's commit, never backwards, and echoes its commit", () => {
    for (const [commit, want] of [
      [3, 3],
      [1, 2],
    ]) {
      const p = newTestRaft(1n, [], 5, 1, newStorageWithEntries(entsWithTerms([1, 2, 3]), [1n, 2n]));
      p.raft.becomeFollower(2, 2n);
      p.raft.raftLog.commitTo(2);
      p.step(m({ msgType: MessageType.MsgHeartbeat, from: 2n, to: 1n, term: 2, commit }));
      expect(p.raft.raftLog.committed).toBe(want);
      const resp = expectOneMessage(p);
      expect([MessageType[resp.msgType], resp.to, resp.commit]).toEqual(["MsgHeartbeatResponse", 2n, want]);
    }
  });

  test("a heartbeat whose commit is beyond the follower's log is clamped, not a crash", () => {
    // Deliberate choice (raft-rs would panic): e.g. a follower whose data dir was wiped.
    const p = newTestRaft(2n, [], 10, 1, newStorageWithEntries(entsWithTerms([1]), [1n, 2n]));
    p.raft.becomeFollower(1, 1n);
    p.step(m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 1, commit: 5 }));
    expect(p.raft.raftLog.committed).toBe(1);
    expect(expectOneMessage(p).commit).toBe(1);
  });

  test("HandleHeartbeatResp: a lagging follower's heartbeat response re-sends appends until it acks", () => {
    const p = newTestRaft(1n, [], 5, 1, newStorageWithEntries(entsWithTerms([1, 2, 3]), [1n, 2n]));
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    r.raftLog.commitTo(r.raftLog.lastIndex());
    const hbResp = () => m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: r.term });
    p.step(hbResp());
    let msgs = p.readMessages();
    expect(msgs.map((x) => MessageType[x.msgType])).toEqual(["MsgAppend"]);
    p.step(hbResp());
    msgs = p.readMessages();
    expect(msgs.map((x) => MessageType[x.msgType])).toEqual(["MsgAppend"]);
    ack(p, 2n, msgs[0].index + msgs[0].entries.length);
    p.readMessages();
    p.step(hbResp());
    expect(p.readMessages()).toEqual([]);
  });

  test("BcastBeat: heartbeats carry no entries and commit = min(follower match, leader commit)", () => {
    const store = new MemStorage();
    store.applySnapshot(snapshot(1000, 1, P3));
    const p = newTestRaft(1n, [], 10, 1, store);
    const r = p.raft;
    r.term = 1;
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 10; i++) r.appendEntry([newEntry()]);
    p.persist();
    const slow = r.prs.get(2n)!;
    slow.matched = 5;
    slow.nextIdx = 6;
    const normal = r.prs.get(3n)!;
    normal.matched = r.raftLog.lastIndex();
    normal.nextIdx = r.raftLog.lastIndex() + 1;
    p.step(beat(1n));
    const msgs = p.readMessages();
    expect(msgs.map((x) => [MessageType[x.msgType], x.to, x.term, x.index, x.logTerm, x.commit, x.entries.length])).toEqual([
      ["MsgHeartbeat", 2n, r.term, 0, 0, 5, 0],
      ["MsgHeartbeat", 3n, r.term, 0, 0, 1000, 0],
    ]);
  });

  test("RecvMsgBeat: only a leader answers MsgBeat, with a heartbeat to each follower", () => {
    for (const [state, want] of [
      [StateRole.Leader, 2],
      [StateRole.Candidate, 0],
      [StateRole.Follower, 0],
    ] as [StateRole, number][]) {
      const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(entsWithTerms([1, 1]), P3));
      const r = p.raft;
      if (state === StateRole.Follower) r.becomeFollower(1, NONE);
      else {
        r.becomeCandidate();
        if (state === StateRole.Leader) r.becomeLeader();
      }
      p.readMessages();
      p.step(beat(1n));
      const msgs = p.readMessages();
      expect(msgs.length).toBe(want);
      for (const x of msgs) expect(x.msgType).toBe(MessageType.MsgHeartbeat);
    }
  });
});

describe("progress", () => {
  test("ProgressLeader: the leader's own progress follows its persisted log", () => {
    const p = newTestRaft(1n, [1n, 2n], 5, 1);
    becomeLeaderNow(p);
    p.raft.prs.get(2n)!.becomeReplicate();
    for (let i = 0; i < 5; i++) {
      const self = p.raft.prs.get(1n)!;
      expect(self.state).toBe(ProgressState.Replicate);
      expect(self.matched).toBe(i + 1);
      expect(self.nextIdx).toBe(self.matched + 1);
      propose(p);
      // Not counted until persisted.
      expect(p.raft.prs.get(1n)!.matched).toBe(i + 1);
      p.persist();
    }
  });

  test("ProgressResumeByHeartbeatResp: a heartbeat response unpauses a probing follower", () => {
    const p = newTestRaft(1n, [1n, 2n], 5, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    const pr = p.raft.prs.get(2n)!;
    pr.paused = true;
    p.step(beat(1n));
    expect(pr.paused).toBe(true);
    p.step(m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: p.raft.term }));
    // Resumed, and the follower (behind the leader) immediately gets one probe, which pauses again.
    const msgs = p.readMessages().filter((x) => x.msgType === MessageType.MsgAppend);
    expect(msgs.length).toBe(1);
    expect(pr.paused).toBe(true);
  });

  test("ProgressPaused: a probing follower gets one append until it answers", () => {
    const p = newTestRaft(1n, [1n, 2n], 5, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    for (let i = 0; i < 3; i++) propose(p);
    expect(p.readMessages().length).toBe(1);
  });

  test("MsgAppRespWaitReset: an ack ends a follower's wait; others still wait for theirs", () => {
    const p = newTestRaft(1n, P3, 5, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    nextEnts(p);
    ack(p, 2n, 1);
    expect(p.raft.raftLog.committed).toBe(1);
    p.readMessages();
    p.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry()] }));
    let msgs = p.readMessages();
    // 2 left the wait with its ack; 3 still waits for the answer to its probe.
    expect(msgs.map((x) => [MessageType[x.msgType], x.to, x.entries.map((e) => e.index)])).toEqual([["MsgAppend", 2n, [2]]]);
    ack(p, 3n, 1);
    msgs = p.readMessages();
    expect(msgs.map((x) => [MessageType[x.msgType], x.to, x.entries.map((e) => e.index)])).toEqual([["MsgAppend", 3n, [2]]]);
  });

  test("LeaderIncreaseNext: Next moves optimistically only in Replicate", () => {
    for (const [state, wnext] of [
      [ProgressState.Replicate, 3 + 1 + 1 + 1],
      [ProgressState.Probe, 2],
    ] as [ProgressState, number][]) {
      const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(entsWithTerms([1, 2, 3]), [1n, 2n]));
      p.raft.becomeCandidate();
      p.raft.becomeLeader();
      const pr = p.raft.prs.get(2n)!;
      pr.state = state;
      pr.nextIdx = 2;
      propose(p);
      expect(pr.nextIdx).toBe(wnext);
    }
  });

  test("SendAppendForProgressProbe: one append per heartbeat round until the follower answers", () => {
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    p.readMessages();
    const pr = r.prs.get(2n)!;
    pr.becomeProbe();
    for (let round = 0; round < 3; round++) {
      if (round === 0) {
        r.appendEntry([newEntry({ data: new TextEncoder().encode("somedata") })]);
        r.sendAppend(2n, pr);
        const msgs = p.readMessages();
        expect(msgs.length).toBe(1);
        expect(msgs[0].index).toBe(0);
      }
      expect(pr.paused).toBe(true);
      for (let j = 0; j < 10; j++) {
        r.appendEntry([newEntry({ data: new TextEncoder().encode("somedata") })]);
        r.sendAppend(2n, pr);
        expect(p.readMessages()).toEqual([]);
      }
      for (let j = 0; j < r.heartbeatTimeout; j++) p.step(beat(1n));
      expect(pr.paused).toBe(true);
      const hb = p.readMessages();
      expect(hb.map((x) => MessageType[x.msgType])).toEqual(["MsgHeartbeat"]);
    }
    p.step(m({ msgType: MessageType.MsgHeartbeatResponse, from: 2n, to: 1n, term: r.term }));
    const msgs = p.readMessages();
    expect(msgs.length).toBe(1);
    expect(msgs[0].index).toBe(0);
    expect(pr.paused).toBe(true);
  });

  test("SendAppendForProgressReplicate: every new entry is streamed at once", () => {
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    p.readMessages();
    const pr = r.prs.get(2n)!;
    pr.becomeReplicate();
    for (let i = 0; i < 10; i++) {
      r.appendEntry([newEntry({ data: new TextEncoder().encode("somedata") })]);
      r.sendAppend(2n, pr);
      expect(p.readMessages().length).toBe(1);
    }
  });

  test("SendAppendForProgressSnapshot: nothing is sent while a snapshot is in flight", () => {
    const p = newTestRaft(1n, [1n, 2n], 10, 1);
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    p.readMessages();
    const pr = r.prs.get(2n)!;
    pr.becomeSnapshot(10);
    for (let i = 0; i < 10; i++) {
      r.appendEntry([newEntry({ data: new TextEncoder().encode("somedata") })]);
      r.sendAppend(2n, pr);
      expect(p.readMessages()).toEqual([]);
    }
  });

  test("RecvMsgUnreachable: an unreachable follower in Replicate falls back to probing after its match", () => {
    const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(entsWithTerms([1, 2, 3]), [1n, 2n]));
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    p.readMessages();
    const pr = r.prs.get(2n)!;
    pr.matched = 3;
    pr.becomeReplicate();
    pr.nextIdx = 6;
    p.step(m({ msgType: MessageType.MsgUnreachable, from: 2n, to: 1n }));
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.nextIdx).toBe(pr.matched + 1);
  });

  test("LeaderAppResp: stale, rejected and accepted append responses", () => {
    // Leader log [1@1, 1@2] plus its no-op at 3; follower 2 starts at match 0, next 3.
    // [index, reject, wmatch, wnext, wmsgs, windex, wcommit]
    const cases: [number, boolean, number, number, number, number, number][] = [
      [3, true, 0, 3, 0, 0, 0], // stale rejection (not for the probe at next-1): ignored
      [2, true, 0, 2, 1, 1, 0], // rejected: Next decreases and a probe goes out
      [2, false, 2, 4, 2, 2, 2], // accepted: commit, broadcast the new commit
      // raft-rs: an ack equal to Match is stale (etcd would move a probing follower to Replicate).
      [0, false, 0, 3, 0, 0, 0],
    ];
    for (const [index, reject, wmatch, wnext, wmsgs, windex, wcommit] of cases) {
      const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(entsWithTerms([1, 1]), P3));
      p.raft.becomeCandidate();
      p.raft.becomeLeader();
      p.readMessages();
      ack(p, 2n, index, { reject, rejectHint: index });
      const pr = p.raft.prs.get(2n)!;
      const label = `index ${index} reject ${reject}`;
      expect(pr.matched, label).toBe(wmatch);
      expect(pr.nextIdx, label).toBe(wnext);
      const msgs = p.readMessages();
      expect(msgs.length, label).toBe(wmsgs);
      for (const x of msgs) {
        expect(x.index, label).toBe(windex);
        expect(x.commit, label).toBe(wcommit);
      }
    }
  });

  test("ProgressCommittedIndex (raft-rs): the leader tracks each follower's reported commit index", () => {
    const nt = new Network([undefined, undefined, undefined]);
    nt.send([hup(1n)]);
    const reported = (leader: NodeId) => P3.map((id) => nt.raft(leader).prs.get(id)!.committedIndex);
    expect(reported(1n)).toEqual([1, 1, 1]);
    nt.cut(1n, 3n);
    nt.send([proposal(1n, 1n), proposal(1n, 1n)]);
    nt.recover();
    expect(reported(1n)).toEqual([3, 3, 1]);
    nt.send([beat(1n)]);
    expect(reported(1n)).toEqual([3, 3, 3]);
  });
});

test("UncommittedEntryLimit: proposals beyond the uncommitted byte budget are dropped, empty entries never", () => {
  const maxEntries = 1024;
  const data = new TextEncoder().encode("testdata");
  const limit = maxEntries * data.length;
  const p = newTestRaft(1n, P3, 5, 1, undefined, { maxUncommittedSize: limit, maxSizePerMsg: limit, maxInflightMsgs: 2 * 1024 });
  const r = p.raft;
  r.becomeCandidate();
  r.becomeLeader();
  expect(r.uncommitted.size).toBe(0);
  r.prs.get(2n)!.becomeReplicate();
  r.prs.get(3n)!.becomeReplicate();
  const prop = (n = 1) => m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: Array.from({ length: n }, () => newEntry({ data })) });
  for (let i = 0; i < maxEntries; i++) p.step(prop());
  expect(() => p.step(prop())).toThrow(/uncommitted size limit/);
  expect(p.readMessages().length).toBe(maxEntries * 2);
  // Pretend they were committed and handed out.
  r.reduceUncommittedSize(r.raftLog.slice(2, 2 + maxEntries));
  expect(r.uncommitted.size).toBe(0);
  // One large proposal is accepted while below the limit, even if it overshoots it...
  p.step(prop(2 * maxEntries));
  // ...after which small ones are dropped, but an empty entry always passes.
  expect(() => p.step(prop())).toThrow(RaftError);
  p.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry()] }));
  expect(p.readMessages().length).toBe(2 * 2);
  const last = r.raftLog.lastIndex();
  r.reduceUncommittedSize(r.raftLog.slice(2 + maxEntries, last + 1));
  expect(r.uncommitted.size).toBe(0);
});

test("FastLogRejection: the follower's hint and the leader's term skip find the divergence in one round trip", () => {
  // [leader log terms, follower log terms, follower compacted through, hint term, hint index, next append term, next append index]
  const cases: [number[], number[], number, number, number, number, number][] = [
    [[1, 2, 2, 4, 4, 4, 4], [1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], 0, 3, 7, 2, 3],
    [[1, 2, 2, 3, 4, 4, 4, 5], [1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], 0, 3, 8, 3, 4],
    [[1, 1, 1, 1], [1, 2, 2, 4], 0, 1, 1, 1, 1],
    [[1, 1, 1, 1, 1, 1], [1, 2, 2, 4], 0, 1, 1, 1, 1],
    [[1, 1, 1, 1], [1, 2, 2, 4, 4, 4], 0, 1, 1, 1, 1],
    [[1, 1, 1, 4, 5], [1, 1, 1, 4], 0, 4, 4, 4, 4],
    [[2, 5, 5, 5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], 0, 4, 6, 2, 1],
    [[2, 2, 2, 2, 2], [2, 4, 4, 4, 4, 4, 4, 4], 0, 2, 1, 2, 1],
    // A stale append arriving after the follower compacted past it: hint term 0, step back one entry.
    [[1, 1, 3], [1, 1, 3, 3, 3], 4, 0, 3, 1, 2],
  ];
  cases.forEach(([leaderTerms, followerTerms, compact, hintTerm, hintIndex, nextTerm, nextIndex], i) => {
    const last = leaderTerms.length;
    const lastTerm = leaderTerms[last - 1];
    const s1 = newStorageWithEntries(entsWithTerms(leaderTerms), P3);
    s1.setHardState({ term: lastTerm - 1, vote: NONE, commit: last });
    const n1 = newTestRaft(1n, [], 10, 1, s1);
    n1.raft.becomeCandidate(); // term = last term
    n1.raft.becomeLeader();
    n1.readMessages();
    const s2 = newStorageWithEntries(entsWithTerms(followerTerms), P3);
    s2.setHardState({ term: lastTerm, vote: 1n, commit: 0 });
    const n2 = newTestRaft(2n, [], 10, 1, s2);
    if (compact !== 0) compactThrough(s2, compact);
    n2.step(m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: n1.raft.term }));
    const hbResp = expectOneMessage(n2);
    expect(hbResp.msgType).toBe(MessageType.MsgHeartbeatResponse);
    n1.step(hbResp);
    const app = expectOneMessage(n1);
    expect(app.msgType).toBe(MessageType.MsgAppend);
    n2.step(app);
    const rej = expectOneMessage(n2);
    expect(rej.msgType).toBe(MessageType.MsgAppendResponse);
    expect(rej.reject, `case ${i}`).toBe(true);
    expect([rej.logTerm, rej.rejectHint], `case ${i}`).toEqual([hintTerm, hintIndex]);
    n1.step(rej);
    const next = n1.readMessages()[0];
    expect([next.logTerm, next.index], `case ${i}`).toEqual([nextTerm, nextIndex]);
  });
});

test("LogReplicationWithReorderedMessage: a delayed rejection below Match makes the leader resend from Match", () => {
  const r1 = newTestRaft(1n, [1n, 2n], 10, 1);
  becomeLeaderNow(r1);
  r1.readMessages();
  const pr = r1.raft.prs.get(2n)!;
  pr.becomeReplicate();
  const r2 = newTestRaft(2n, [1n, 2n], 10, 1);
  // Two appends in flight to r2.
  r1.raft.appendEntry([newEntry({ data: new TextEncoder().encode("somedata") })]);
  r1.raft.sendAppend(2n, pr);
  const req1 = expectOneMessage(r1);
  r1.raft.appendEntry([newEntry({ data: new TextEncoder().encode("somedata") })]);
  r1.raft.sendAppend(2n, pr);
  const req2 = expectOneMessage(r1);
  r1.persist();
  // r2 receives the second first and rejects it.
  r2.step(req2);
  const resp2 = expectOneMessage(r2);
  expect([resp2.reject, resp2.rejectHint, resp2.index]).toEqual([true, 0, 2]);
  r2.step(req1);
  const resp1 = expectOneMessage(r2);
  expect([resp1.reject, resp1.index]).toEqual([false, 2]);
  r1.step(resp1);
  expectOneMessage(r1); // the commit broadcast
  expect(pr.matched).toBe(2);
  // A transient network problem sends r2 back to probing; then the stale rejection arrives.
  r1.step(m({ msgType: MessageType.MsgUnreachable, from: 2n, to: 1n }));
  expect(pr.state).toBe(ProgressState.Probe);
  r1.step(resp2);
  const retry = expectOneMessage(r1);
  // The hint (0) is below Match: resend from Match instead of regressing.
  expect(retry.index).toBe(pr.matched);
});

describe("batching and message size", () => {
  test("a batch of proposals becomes one append per follower (one broadcast, contiguous indexes)", () => {
    const p = newTestRaft(1n, P3, 10, 1);
    becomeLeaderNow(p);
    commitNoopEntry(p);
    p.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: ["a", "b", "c", "d", "e"].map((d) => newEntry({ data: new TextEncoder().encode(d) })) }));
    const msgs = p.readMessages();
    expect(msgs.map((x) => [x.to, x.index, x.entries.map((e) => e.index)])).toEqual([
      [2n, 1, [2, 3, 4, 5, 6]],
      [3n, 1, [2, 3, 4, 5, 6]],
    ]);
    expect(p.raft.raftLog.unstableEntries().map((e) => text(e.data))).toEqual(["a", "b", "c", "d", "e"]);
  });

  test("batchAppend (raft-rs test_batch_msg_append): appends to one follower in one Ready are merged", () => {
    const p = newTestRaft(1n, P3, 10, 1, undefined, { batchAppend: true });
    becomeLeaderNow(p);
    commitNoopEntry(p);
    for (let i = 0; i < 10; i++) propose(p);
    expect(p.raft.msgs.length).toBe(2);
    for (const x of p.raft.msgs) {
      expect(x.entries.length).toBe(10);
      expect(x.index).toBe(1);
    }
    // A rejection restarts from an earlier index: not contiguous, so a separate message.
    ack(p, 2n, 2, { reject: true });
    expect(p.raft.msgs.length).toBe(3);
  });

  test("maxSizePerMsg 0 sends one entry per append; the window streams the rest on acks", () => {
    const p = newTestRaft(1n, [1n, 2n], 10, 1, undefined, { maxSizePerMsg: 0 });
    becomeLeaderNow(p);
    commitNoopEntry(p);
    p.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: ["a", "b", "c"].map((d) => newEntry({ data: new TextEncoder().encode(d) })) }));
    let msgs = p.readMessages();
    expect(msgs.map((x) => x.entries.map((e) => e.index))).toEqual([[2]]);
    p.persist();
    ack(p, 2n, 2);
    msgs = p.readMessages();
    expect(msgs.map((x) => x.entries.map((e) => e.index))).toEqual([[3], [4]]);
  });

  test("maxSizePerMsg in bytes packs as many entries as fit (always at least one)", () => {
    const data = new Uint8Array(100);
    const size = entrySize(newEntry({ data }));
    const p = newTestRaft(1n, [1n, 2n], 10, 1, undefined, { maxSizePerMsg: 2 * size });
    becomeLeaderNow(p);
    commitNoopEntry(p);
    p.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: Array.from({ length: 5 }, () => newEntry({ data })) }));
    // The proposal's broadcast carries what fits in one message...
    expect(p.readMessages().map((x) => x.entries.map((e) => e.index))).toEqual([[2, 3]]);
    p.persist();
    ack(p, 2n, 3);
    // ...and the ack lets the window stream the rest, still two entries per message.
    expect(p.readMessages().map((x) => x.entries.map((e) => e.index))).toEqual([[4, 5], [6]]);
    const big = newTestRaft(1n, [1n, 2n], 10, 1, undefined, { maxSizePerMsg: 10 });
    becomeLeaderNow(big);
    commitNoopEntry(big);
    big.step(m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry({ data: new Uint8Array(1000) })] }));
    expect(big.readMessages().map((x) => x.entries.length)).toEqual([1]);
  });
});
