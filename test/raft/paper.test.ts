// etcd raft_paper_test.go: the scenarios of the Raft paper (§5.1-§5.4), one test per etcd test,
// with etcd's inputs and expected terms, states and messages. Where raft-rs 0.7 puts something
// different on the wire the raft-rs outcome is asserted and the comment says so.
import { describe, expect, test } from "bun:test";
import type { Raft } from "../../src/raft/raft.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { MemStorage } from "../../src/raft/storage.ts";
import { type Entry, type Message, MessageType, NONE, type NodeId, newEntry } from "../../src/raft/types.ts";
import {
  type Interface,
  Network,
  StateRole,
  acceptAndReply,
  commitNoopEntry,
  ent,
  entView,
  entsWithTerms,
  idsBySize,
  m,
  msgView,
  newStorageWithEntries,
  newTestConfig,
  newTestRaft,
} from "./harness.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function propose(r: Raft, data = ""): void {
  r.step(m({ msgType: MessageType.MsgPropose, from: r.id, to: r.id, entries: [newEntry({ data: enc(data) })] }));
}


/** Committed entries the application has not applied yet (etcd `nextCommittedEnts`). */
function nextCommitted(r: Raft): Entry[] {
  return r.raftLog.nextEntriesSince(r.raftLog.applied) ?? [];
}

const views = (ents: Entry[]) => ents.map(entView);
const msgViews = (msgs: Message[]) => msgs.map(msgView);

describe("etcd raft_paper_test.go (§5.1 terms)", () => {
  const updateTermFromMessage = (state: StateRole) => {
    const p = newTestRaft(1n, [1n, 2n, 3n], 10, 1);
    const r = p.raft;
    if (state === StateRole.Follower) r.becomeFollower(1, 2n);
    else {
      r.becomeCandidate();
      if (state === StateRole.Leader) r.becomeLeader();
    }
    r.step(m({ msgType: MessageType.MsgAppend, term: 2 }));
    expect(r.term).toBe(2);
    expect(r.state).toBe(StateRole.Follower);
  };

  test("TestFollowerUpdateTermFromMessage: a follower adopts a higher term", () => updateTermFromMessage(StateRole.Follower));
  test("TestCandidateUpdateTermFromMessage: a candidate adopts a higher term and steps down", () => updateTermFromMessage(StateRole.Candidate));
  test("TestLeaderUpdateTermFromMessage: a leader adopts a higher term and steps down", () => updateTermFromMessage(StateRole.Leader));

  test("TestRejectStaleTermMessage: a message of an older term never reaches the role handlers", () => {
    const store = MemStorage.withVoters([1n, 2n, 3n]);
    store.setHardState({ term: 2, vote: NONE, commit: 0 });
    const p = newTestRaft(1n, [], 10, 1, store);
    const r = p.raft;
    // etcd swaps r.step for a fake; here the role handlers are shadowed on the instance.
    let called = false;
    const spy = r as unknown as Record<string, unknown>;
    for (const h of ["stepFollower", "stepCandidate", "stepLeader"]) {
      expect(typeof spy[h]).toBe("function"); // the spy must shadow real handlers
      spy[h] = () => (called = true);
    }
    const before = { term: r.term, state: r.state, leader: r.leaderId, elapsed: r.electionElapsed, last: r.raftLog.lastIndex() };

    r.step(m({ msgType: MessageType.MsgAppend, term: r.term - 1 }));

    expect(called).toBe(false);
    // etcd ignores instead of replying with a reject, and so do we (no check-quorum, no pre-vote).
    expect(p.readMessages()).toEqual([]);
    expect({ term: r.term, state: r.state, leader: r.leaderId, elapsed: r.electionElapsed, last: r.raftLog.lastIndex() }).toEqual(before);
  });
});

describe("etcd raft_paper_test.go (§5.2 leader election)", () => {
  test("TestStartAsFollower: a server starts as a follower", () => {
    expect(newTestRaft(1n, [1n, 2n, 3n], 10, 1).raft.state).toBe(StateRole.Follower);
  });

  test("TestLeaderBcastBeat: one heartbeat tick sends MsgHeartbeat to every follower with no entries and commit 0", () => {
    const p = newTestRaft(1n, [1n, 2n, 3n], 10, 1);
    const r = p.raft;
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 10; i++) r.appendEntry([newEntry({ index: i + 1 })]);
    r.tick();
    expect(msgViews(p.readMessages())).toEqual(
      msgViews([
        m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 1, commit: 0 }),
        m({ msgType: MessageType.MsgHeartbeat, from: 1n, to: 3n, term: 1, commit: 0 }),
      ]),
    );
  });

  const nonleaderStartElection = (state: StateRole) => {
    const et = 10;
    const p = newTestRaft(1n, [1n, 2n, 3n], et, 1);
    const r = p.raft;
    if (state === StateRole.Follower) r.becomeFollower(1, 2n);
    else r.becomeCandidate();
    for (let i = 1; i < 2 * et; i++) r.tick();

    expect(r.term).toBe(2);
    expect(r.state).toBe(StateRole.Candidate);
    expect(r.vote).toBe(1n);
    expect(r.prs.votes.get(1n)).toBe(true);
    expect(msgViews(p.readMessages())).toEqual(
      msgViews([
        m({ msgType: MessageType.MsgRequestVote, from: 1n, to: 2n, term: 2, index: 0, logTerm: 0 }),
        m({ msgType: MessageType.MsgRequestVote, from: 1n, to: 3n, term: 2, index: 0, logTerm: 0 }),
      ]),
    );
  };

  test("TestFollowerStartElection: a follower that hears nothing for 2×election−1 ticks campaigns at term 2", () =>
    nonleaderStartElection(StateRole.Follower));
  test("TestCandidateStartNewElection: a candidate that does not win starts a new election at the next term", () =>
    nonleaderStartElection(StateRole.Candidate));

  test("TestLeaderElectionInOneRoundRPC: win, lose or stay candidate after one round of votes", () => {
    const cases: [number, Record<number, boolean>, StateRole][] = [
      // win with votes from a majority
      [1, {}, StateRole.Leader],
      [3, { 2: true, 3: true }, StateRole.Leader],
      [3, { 2: true }, StateRole.Leader],
      [5, { 2: true, 3: true, 4: true, 5: true }, StateRole.Leader],
      [5, { 2: true, 3: true, 4: true }, StateRole.Leader],
      [5, { 2: true, 3: true }, StateRole.Leader],
      // back to follower when a majority denies
      [3, { 2: false, 3: false }, StateRole.Follower],
      [5, { 2: false, 3: false, 4: false, 5: false }, StateRole.Follower],
      [5, { 2: true, 3: false, 4: false, 5: false }, StateRole.Follower],
      // undecided: stay candidate
      [3, {}, StateRole.Candidate],
      [5, { 2: true }, StateRole.Candidate],
      [5, { 2: false, 3: false }, StateRole.Candidate],
      [5, {}, StateRole.Candidate],
    ];
    for (const [i, [size, votes, want]] of cases.entries()) {
      const r = newTestRaft(1n, idsBySize(size), 10, 1).raft;
      r.step(m({ msgType: MessageType.MsgHup, from: 1n, to: 1n }));
      for (const [id, vote] of Object.entries(votes)) {
        r.step(m({ msgType: MessageType.MsgRequestVoteResponse, from: BigInt(id), to: 1n, term: r.term, reject: !vote }));
      }
      expect({ i, state: r.state, term: r.term }).toEqual({ i, state: want, term: 1 });
    }
  });

  test("TestFollowerVote: one vote per term, first come first served; the reply waits for persistence", () => {
    const cases: [NodeId, NodeId, boolean][] = [
      [NONE, 2n, false],
      [NONE, 3n, false],
      [2n, 2n, false],
      [3n, 3n, false],
      [2n, 3n, true],
      [3n, 2n, true],
    ];
    for (const [vote, nvote, wreject] of cases) {
      const store = MemStorage.withVoters([1n, 2n, 3n]);
      store.setHardState({ term: 1, vote, commit: 0 });
      // The Raft-level reply (etcd reads it from msgsAfterAppend).
      const r = newTestRaft(1n, [], 10, 1, store).raft;
      r.step(m({ msgType: MessageType.MsgRequestVote, from: nvote, to: 1n, term: 1 }));
      const reply = m({ msgType: MessageType.MsgRequestVoteResponse, from: 1n, to: nvote, term: 1, reject: wreject });
      expect(msgViews(r.msgs)).toEqual(msgViews([reply]));

      // Through a RawNode: a vote response is a persisted message, never an immediate one, and the
      // Ready that carries it also carries the new vote to persist first.
      const store2 = MemStorage.withVoters([1n, 2n, 3n]);
      store2.setHardState({ term: 1, vote, commit: 0 });
      const rn = new RawNode(newTestConfig(1n, 10, 1), store2);
      rn.step(m({ msgType: MessageType.MsgRequestVote, from: nvote, to: 1n, term: 1 }));
      const rd = rn.ready();
      expect(rd.messages).toEqual([]);
      expect(msgViews(rd.persistedMessages)).toEqual(msgViews([reply]));
      if (vote === NONE) {
        expect(rd.hardState).toEqual({ term: 1, vote: nvote, commit: 0 });
        expect(rd.mustSync).toBe(true);
      } else {
        expect(rd.hardState).toBeUndefined();
      }
    }
  });

  test("TestCandidateFallback: a candidate that hears from a leader of its term or newer becomes its follower", () => {
    for (const term of [1, 2]) {
      const r = newTestRaft(1n, [1n, 2n, 3n], 10, 1).raft;
      r.step(m({ msgType: MessageType.MsgHup, from: 1n, to: 1n }));
      expect(r.state).toBe(StateRole.Candidate);
      r.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term }));
      expect({ state: r.state, term: r.term, leader: r.leaderId }).toEqual({ state: StateRole.Follower, term, leader: 2n });
    }
  });

  const electionTimeoutRandomized = (state: StateRole) => {
    const et = 10;
    const p = newTestRaft(1n, [1n, 2n, 3n], et, 1);
    const r = p.raft;
    const timeouts = new Set<number>();
    for (let round = 0; round < 50 * et; round++) {
      if (state === StateRole.Follower) r.becomeFollower(r.term + 1, 2n);
      else r.becomeCandidate();
      let time = 0;
      while (p.readMessages().length === 0) {
        r.tick();
        time++;
      }
      timeouts.add(time);
    }
    // Every timeout in [et, 2et) is drawn, and nothing outside it.
    expect([...timeouts].sort((a, b) => a - b)).toEqual(Array.from({ length: et }, (_, i) => et + i));
  };

  test("TestFollowerElectionTimeoutRandomized: follower timeouts cover [et, 2et)", () => electionTimeoutRandomized(StateRole.Follower));
  test("TestCandidateElectionTimeoutRandomized: candidate timeouts cover [et, 2et)", () => electionTimeoutRandomized(StateRole.Candidate));

  const electionTimeoutNonconflict = (state: StateRole) => {
    const et = 10;
    const ids = idsBySize(5);
    const ps = ids.map((id) => newTestRaft(id, ids, et, 1));
    let conflicts = 0;
    for (let round = 0; round < 1000; round++) {
      for (const p of ps) {
        if (state === StateRole.Follower) p.raft.becomeFollower(p.raft.term + 1, NONE);
        else p.raft.becomeCandidate();
      }
      let timeoutNum = 0;
      while (timeoutNum === 0) {
        for (const p of ps) {
          p.raft.tick();
          if (p.readMessages().length > 0) timeoutNum++;
        }
      }
      if (timeoutNum > 1) conflicts++;
    }
    expect(conflicts / 1000).toBeLessThanOrEqual(0.3);
  };

  test("TestFollowersElectionTimeoutNonconflict: usually a single follower times out first", () =>
    electionTimeoutNonconflict(StateRole.Follower));
  test("TestCandidatesElectionTimeoutNonconflict: usually a single candidate times out first", () =>
    electionTimeoutNonconflict(StateRole.Candidate));
});

describe("etcd raft_paper_test.go (§5.3 log replication)", () => {
  const leaderWithCommittedNoop = (size = 3) => {
    const p = newTestRaft(1n, idsBySize(size), 10, 1);
    p.raft.becomeCandidate();
    p.raft.becomeLeader();
    commitNoopEntry(p);
    return p;
  };

  test("TestLeaderStartReplication: a proposal is appended and sent to every follower with the preceding index and term", () => {
    const p = leaderWithCommittedNoop();
    const r = p.raft;
    const li = r.raftLog.lastIndex();
    propose(r, "some data");

    expect(r.raftLog.lastIndex()).toBe(li + 1);
    expect(r.raftLog.committed).toBe(li);
    const wents = [ent(1, li + 1, "some data")];
    expect(msgViews(p.readMessages())).toEqual(
      msgViews([
        m({ msgType: MessageType.MsgAppend, from: 1n, to: 2n, term: 1, index: li, logTerm: 1, entries: wents, commit: li }),
        m({ msgType: MessageType.MsgAppend, from: 1n, to: 3n, term: 1, index: li, logTerm: 1, entries: wents, commit: li }),
      ]),
    );
    expect(views(r.raftLog.unstableEntries())).toEqual(views(wents));
  });

  test("TestLeaderCommitEntry: a replicated entry is committed, handed out for applying, and the new commit is broadcast", () => {
    const p = leaderWithCommittedNoop();
    const r = p.raft;
    const li = r.raftLog.lastIndex();
    propose(r, "some data");
    p.persist();
    for (const msg of p.readMessages()) r.step(acceptAndReply(msg));

    expect(r.raftLog.committed).toBe(li + 1);
    expect(views(nextCommitted(r))).toEqual(views([ent(1, li + 1, "some data")]));
    const msgs = p.readMessages();
    expect(msgs.map((x) => [x.to, MessageType[x.msgType], x.commit])).toEqual([
      [2n, "MsgAppend", li + 1],
      [3n, "MsgAppend", li + 1],
    ]);
  });

  test("TestLeaderAcknowledgeCommit: an entry commits once a majority including the leader has it", () => {
    const cases: [number, NodeId[], boolean][] = [
      [1, [], true],
      [3, [], false],
      [3, [2n], true],
      [3, [2n, 3n], true],
      [5, [], false],
      [5, [2n], false],
      [5, [2n, 3n], true],
      [5, [2n, 3n, 4n], true],
      [5, [2n, 3n, 4n, 5n], true],
    ];
    for (const [i, [size, acceptors, wack]] of cases.entries()) {
      const p = leaderWithCommittedNoop(size);
      const r = p.raft;
      const li = r.raftLog.lastIndex();
      propose(r, "some data");
      p.persist();
      for (const msg of p.readMessages()) if (acceptors.includes(msg.to)) r.step(acceptAndReply(msg));
      expect({ i, ack: r.raftLog.committed > li }).toEqual({ i, ack: wack });
    }
  });

  test("TestLeaderCommitPrecedingEntries: committing an entry of the current term commits every earlier entry", () => {
    const logs: Entry[][] = [[], [ent(2, 1)], [ent(1, 1), ent(2, 2)], [ent(1, 1)]];
    for (const tt of logs) {
      const store = newStorageWithEntries(tt, [1n, 2n, 3n]);
      store.setHardState({ term: 2, vote: NONE, commit: 0 });
      const p = newTestRaft(1n, [], 10, 1, store);
      const r = p.raft;
      r.becomeCandidate();
      r.becomeLeader();
      propose(r, "some data");
      p.persist();
      for (const msg of p.readMessages()) r.step(acceptAndReply(msg));

      const li = tt.length;
      expect(views(nextCommitted(r))).toEqual(views([...tt, ent(3, li + 1), ent(3, li + 2, "some data")]));
    }
  });

  test("TestFollowerCommitEntry: a follower commits what the leader says is committed, in log order", () => {
    const cases: [Entry[], number][] = [
      [[ent(1, 1, "some data")], 1],
      [[ent(1, 1, "some data"), ent(1, 2, "some data2")], 2],
      [[ent(1, 1, "some data2"), ent(1, 2, "some data")], 2],
      [[ent(1, 1, "some data"), ent(1, 2, "some data2")], 1],
    ];
    for (const [ents, commit] of cases) {
      const p = newTestRaft(1n, [1n, 2n, 3n], 10, 1);
      const r = p.raft;
      r.becomeFollower(1, 2n);
      r.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 1, entries: ents, commit }));
      expect(r.raftLog.committed).toBe(commit);
      // Only durable entries are handed out for applying.
      expect(nextCommitted(r)).toEqual([]);
      p.persist();
      expect(views(nextCommitted(r))).toEqual(views(ents.slice(0, commit)));
    }
  });

  test("TestFollowerCheckMsgApp: a follower accepts an append only if it has the preceding entry, else hints where to retry", () => {
    // [logTerm, index] of the append, then the expected reply: index, reject, rejectHint, logTerm.
    const cases: [number, number, number, boolean, number, number][] = [
      // matches committed entries
      [0, 0, 1, false, 0, 0],
      [1, 1, 1, false, 0, 0],
      // matches an uncommitted entry
      [2, 2, 2, false, 0, 0],
      // mismatches an existing entry
      [1, 2, 2, true, 1, 1],
      // the entry does not exist
      [3, 3, 3, true, 2, 2],
    ];
    for (const [logTerm, index, windex, wreject, wrejectHint, wlogTerm] of cases) {
      const store = newStorageWithEntries([ent(1, 1), ent(2, 2)], [1n, 2n, 3n]);
      store.setHardState({ term: 0, vote: NONE, commit: 1 });
      const p = newTestRaft(1n, [], 10, 1, store);
      p.raft.becomeFollower(2, 2n);
      p.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 2, logTerm, index }));
      // raft-rs (unlike etcd) also reports the follower's commit index in every append response.
      expect(msgViews(p.readMessages())).toEqual(
        msgViews([
          m({
            msgType: MessageType.MsgAppendResponse,
            from: 1n,
            to: 2n,
            term: 2,
            index: windex,
            reject: wreject,
            rejectHint: wrejectHint,
            logTerm: wlogTerm,
            commit: 1,
          }),
        ]),
      );
    }
  });

  test("TestFollowerAppendEntries: a follower drops a conflicting suffix and appends only what it lacks", () => {
    const cases: [number, number, Entry[], Entry[], Entry[]][] = [
      [2, 2, entsWithTerms([3], 3), entsWithTerms([1, 2, 3]), entsWithTerms([3], 3)],
      [1, 1, entsWithTerms([3, 4], 2), entsWithTerms([1, 3, 4]), entsWithTerms([3, 4], 2)],
      [0, 0, entsWithTerms([1]), entsWithTerms([1, 2]), []],
      [0, 0, entsWithTerms([3]), entsWithTerms([3]), entsWithTerms([3])],
    ];
    for (const [index, logTerm, ents, wents, wunstable] of cases) {
      const store = newStorageWithEntries([ent(1, 1), ent(2, 2)], [1n, 2n, 3n]);
      const p = newTestRaft(1n, [], 10, 1, store);
      p.raft.becomeFollower(2, 2n);
      p.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: 2, logTerm, index, entries: ents }));
      expect(views(p.raft.raftLog.allEntries())).toEqual(views(wents));
      expect(views(p.raft.raftLog.unstableEntries())).toEqual(views(wunstable));
    }
  });

  test("TestLeaderSyncFollowerLog: the leader makes each follower log of the paper's Figure 7 identical to its own", () => {
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const term = 8;
    const followers: Record<string, number[]> = {
      a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
      b: [1, 1, 1, 4, 4],
      c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
      d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
      e: [1, 1, 1, 4, 4, 4, 4],
      f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    };
    for (const [name, terms] of Object.entries(followers)) {
      const leadStore = newStorageWithEntries(entsWithTerms(leaderTerms), [1n, 2n, 3n]);
      leadStore.setHardState({ term, vote: NONE, commit: leaderTerms.length });
      const lead = newTestRaft(1n, [], 10, 1, leadStore);
      const followerStore = newStorageWithEntries(entsWithTerms(terms), [1n, 2n, 3n]);
      followerStore.setHardState({ term: term - 1, vote: NONE, commit: 0 });
      const follower = newTestRaft(2n, [], 10, 1, followerStore);
      // Three nodes: follower 2 may have the more up-to-date log, so the leader needs node 3's vote.
      const n = new Network([lead, follower, null]);
      n.send([m({ msgType: MessageType.MsgHup, from: 1n, to: 1n })]);
      n.send([m({ msgType: MessageType.MsgRequestVoteResponse, from: 3n, to: 1n, term: term + 1 })]);
      n.send([m({ msgType: MessageType.MsgPropose, from: 1n, to: 1n, entries: [newEntry()] })]);

      const summary = (r: Raft) => ({ name, committed: r.raftLog.committed, log: views(r.raftLog.allEntries()) });
      expect(lead.raft.state).toBe(StateRole.Leader);
      expect(summary(follower.raft)).toEqual(summary(lead.raft));
      expect(lead.raft.raftLog.lastIndex()).toBe(leaderTerms.length + 2);
    }
  });
});

describe("etcd raft_paper_test.go (§5.4 safety)", () => {
  test("TestVoteRequest: a vote request carries the candidate's last index and term to every peer", () => {
    const cases: [Entry[], number][] = [
      [[ent(1, 1)], 2],
      [[ent(1, 1), ent(2, 2)], 3],
    ];
    for (const [ents, wterm] of cases) {
      const p = newTestRaft(1n, [1n, 2n, 3n], 10, 1);
      const r = p.raft;
      r.step(m({ msgType: MessageType.MsgAppend, from: 2n, to: 1n, term: wterm - 1, logTerm: 0, index: 0, entries: ents }));
      p.readMessages();
      for (let i = 1; i < r.electionTimeout * 2; i++) r.tickElection();

      const last = ents[ents.length - 1];
      expect(p.readMessages().map((x) => [MessageType[x.msgType], x.to, x.term, x.index, x.logTerm])).toEqual([
        ["MsgRequestVote", 2n, wterm, last.index, last.term],
        ["MsgRequestVote", 3n, wterm, last.index, last.term],
      ]);
    }
  });

  test("TestVoter: a voter refuses a candidate whose log is less up to date than its own", () => {
    // voter log, candidate's last log term, candidate's last index, reject?
    const cases: [Entry[], number, number, boolean][] = [
      // same last term
      [entsWithTerms([1]), 1, 1, false],
      [entsWithTerms([1]), 1, 2, false],
      [entsWithTerms([1, 1]), 1, 1, true],
      // candidate has the higher last term
      [entsWithTerms([1]), 2, 1, false],
      [entsWithTerms([1]), 2, 2, false],
      [entsWithTerms([1, 1]), 2, 1, false],
      // voter has the higher last term
      [entsWithTerms([2]), 1, 1, true],
      [entsWithTerms([2]), 1, 2, true],
      [entsWithTerms([2, 2]), 1, 1, true],
      [entsWithTerms([1, 1]), 1, 1, true],
    ];
    for (const [i, [ents, logTerm, index, wreject]] of cases.entries()) {
      const p = newTestRaft(1n, [], 10, 1, newStorageWithEntries(ents, [1n, 2n]));
      p.step(m({ msgType: MessageType.MsgRequestVote, from: 2n, to: 1n, term: 3, logTerm, index }));
      const msgs = p.readMessages();
      expect({ i, n: msgs.length, type: MessageType[msgs[0].msgType], reject: msgs[0].reject }).toEqual({
        i,
        n: 1,
        type: "MsgRequestVoteResponse",
        reject: wreject,
      });
    }
  });

  test("TestLeaderOnlyCommitsLogFromCurrentTerm: entries of earlier terms are never committed by counting replicas", () => {
    const cases: [number, number][] = [
      [1, 0],
      [2, 0],
      [3, 3],
    ];
    for (const [index, wcommit] of cases) {
      const store = newStorageWithEntries([ent(1, 1), ent(2, 2)], [1n, 2n]);
      store.setHardState({ term: 2, vote: NONE, commit: 0 });
      const p = newTestRaft(1n, [], 10, 1, store);
      const r = p.raft;
      r.becomeCandidate();
      r.becomeLeader();
      p.readMessages();
      propose(r);
      r.step(m({ msgType: MessageType.MsgAppendResponse, from: 2n, to: 1n, term: r.term, index }));
      // The leader's own ack arrives once its log is durable (etcd advanceMessagesAfterAppend).
      p.persist();
      expect({ index, committed: r.raftLog.committed }).toEqual({ index, committed: wcommit });
    }
  });
});
