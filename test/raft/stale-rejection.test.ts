// Append rejections that arrive late or twice. Our network delivers out of order and may duplicate,
// so a leader regularly sees a rejection its follower sent before it caught up. Such a rejection is
// stale and must be ignored exactly as raft-rs 0.7 ignores it (Progress::maybe_decr_to), so that a
// leader of this implementation and a Rust one take the same decision in a mixed chain:
//   - in Replicate, a rejection at or below the match index is stale;
//   - in Probe, a rejection is stale unless it answers the probe outstanding (index = next - 1).
import { describe, expect, test } from "bun:test";
import { MemStorage } from "../../src/raft/storage.ts";
import { ProgressState } from "../../src/raft/tracker/progress.ts";
import { type Message, MessageType } from "../../src/raft/types.ts";
import { type Interface, brief, confStateOf, entsWithTerms, m, newTestRaft, proposal } from "./harness.ts";

const TERM = 12;

/**
 * Node 1 of {1, 2, 3} leading term 12 over a log of 24 entries: 1..7 of term 6, 8..23 of term 11,
 * and its no-op at 24. One entry per MsgAppend (raft-rs's default max_size_per_msg = 0).
 */
function leaderOfTerm12(): Interface {
  const store = MemStorage.withVoters([1n, 2n, 3n]);
  store.append(entsWithTerms([...Array(7).fill(6), ...Array(16).fill(11)]));
  store.setHardState({ term: TERM - 1, vote: 0n, commit: 7 });
  const p = newTestRaft(1n, [], 10, 1, store, { maxSizePerMsg: 0 });
  p.raft.becomeCandidate();
  p.raft.becomeLeader();
  p.persist();
  p.readMessages();
  expect(p.raft.term).toBe(TERM);
  expect(p.raft.raftLog.lastIndex()).toBe(24);
  return p;
}

function appendResponse(from: bigint, init: Partial<Message>): Message {
  return m({ msgType: MessageType.MsgAppendResponse, from, to: 1n, term: TERM, ...init });
}

function progress(p: Interface, id: bigint) {
  const pr = p.raft.prs.get(id)!;
  return { matched: pr.matched, next: pr.nextIdx, state: pr.state, paused: pr.paused };
}

/** Follower 2 accepts entry 8: the leader moves it to Replicate and streams 9..24, one per message. */
function accept8(p: Interface): void {
  p.step(appendResponse(2n, { index: 8, commit: 8 }));
  expect(progress(p, 2n)).toEqual({ matched: 8, next: 25, state: ProgressState.Replicate, paused: false });
  expect(p.readMessages().map((x) => x.index)).toEqual(Array.from({ length: 16 }, (_, i) => 8 + i));
}

/** Follower 2's rejection of an append at prev index 8, sent while its log still ended at 7 (term 6). */
const OLD_REJECT_8 = { index: 8, reject: true, rejectHint: 7, logTerm: 6, commit: 7 } as const;

describe("stale append rejections are ignored as raft-rs 0.7 ignores them", () => {
  test("in Replicate, a delayed rejection at the match index changes nothing and sends nothing", () => {
    const p = leaderOfTerm12();
    accept8(p);
    p.step(appendResponse(2n, OLD_REJECT_8));
    expect(progress(p, 2n)).toEqual({ matched: 8, next: 25, state: ProgressState.Replicate, paused: false });
    expect(p.readMessages()).toEqual([]);
    // Replication goes on where it was: the next entry follows 24 directly.
    p.step(proposal(1n, 1n));
    const to2 = p.readMessages().filter((x) => x.to === 2n);
    expect(to2.map(brief)).toEqual([
      { type: "MsgAppend", from: 1n, to: 2n, term: TERM, logTerm: 12, index: 24, commit: 7, reject: false, entries: ["12/25"] },
    ]);
  });

  test("in Replicate, a rejection at or below the match is stale whatever its hint, even one that looks like an empty log", () => {
    const p = leaderOfTerm12();
    accept8(p);
    for (const r of [
      { index: 8, reject: true, rejectHint: 0, logTerm: 0 },
      { index: 5, reject: true, rejectHint: 4, logTerm: 6 },
      { index: 8, reject: true, rejectHint: 7, logTerm: 6 },
    ]) {
      p.step(appendResponse(2n, r));
      expect(progress(p, 2n)).toEqual({ matched: 8, next: 25, state: ProgressState.Replicate, paused: false });
      expect(p.readMessages()).toEqual([]);
    }
  });

  test("in Probe, a duplicated rejection that does not answer the outstanding probe is ignored", () => {
    const p = leaderOfTerm12();
    accept8(p);
    // The appends after 8 were lost; 2 rejects the one at 12. The leader probes at the match.
    const reject12 = { index: 12, reject: true, rejectHint: 8, logTerm: 11, commit: 8 };
    p.step(appendResponse(2n, reject12));
    expect(progress(p, 2n)).toEqual({ matched: 8, next: 9, state: ProgressState.Probe, paused: true });
    expect(p.readMessages().map(brief)).toEqual([
      { type: "MsgAppend", from: 1n, to: 2n, term: TERM, logTerm: 11, index: 8, commit: 7, reject: false, entries: ["11/9"] },
    ]);
    // The network delivers that rejection again, and 2's rejections of 13 and 14: none answers the probe at 8.
    for (const r of [reject12, { ...reject12, index: 13 }, { ...reject12, index: 14 }]) {
      p.step(appendResponse(2n, r));
      expect(progress(p, 2n)).toEqual({ matched: 8, next: 9, state: ProgressState.Probe, paused: true });
      expect(p.readMessages()).toEqual([]);
    }
  });

  test("in Probe after a snapshot, an old rejection at the match index does not lower the match or send a second snapshot", () => {
    const p = leaderOfTerm12();
    accept8(p);
    // 3 acknowledges everything: 24 commits. The leader then compacts its log up to 20.
    p.step(appendResponse(3n, { index: 24, commit: 7 }));
    p.readMessages();
    expect(p.raft.raftLog.committed).toBe(24);
    p.store.createSnapshot(20, confStateOf([1n, 2n, 3n]), new Uint8Array([1]));
    p.store.compact(20);
    // 2 missed 9..24 and rejects the commit broadcast at 24: 9 is compacted, so it gets the snapshot.
    p.step(appendResponse(2n, { index: 24, reject: true, rejectHint: 8, logTerm: 11, commit: 8 }));
    const snap = p.readMessages();
    expect(snap.map((x) => [MessageType[x.msgType], x.snapshot?.metadata.index])).toEqual([["MsgSnapshot", 20]]);
    p.step(m({ msgType: MessageType.MsgSnapStatus, from: 2n, to: 1n }));
    expect(progress(p, 2n)).toEqual({ matched: 8, next: 21, state: ProgressState.Probe, paused: true });
    // A late copy of 2's rejection of index 8 (from when it had 7) answers no probe of ours: ignored.
    p.step(appendResponse(2n, OLD_REJECT_8));
    expect(progress(p, 2n)).toEqual({ matched: 8, next: 21, state: ProgressState.Probe, paused: true });
    expect(p.readMessages()).toEqual([]);
  });

  test("a stale rejection that happens to answer the outstanding probe gets the same probe raft-rs sends, and the follower's ack restores its match", () => {
    const p = leaderOfTerm12();
    accept8(p);
    p.step(appendResponse(2n, { index: 12, reject: true, rejectHint: 8, logTerm: 11, commit: 8 }));
    expect(p.readMessages().map((x) => x.index)).toEqual([8]);
    // The old rejection of index 8 is indistinguishable from an answer to the probe at 8 that
    // says "my log ends at 7". raft-rs 0.7 takes it as one and probes at 7 with entry 8; so do we.
    p.step(appendResponse(2n, OLD_REJECT_8));
    expect(p.readMessages().map(brief)).toEqual([
      { type: "MsgAppend", from: 1n, to: 2n, term: TERM, logTerm: 6, index: 7, commit: 7, reject: false, entries: ["11/8"] },
    ]);
    expect(progress(p, 2n)).toMatchObject({ next: 8, state: ProgressState.Probe, paused: true });
    // 2 does have 8: it accepts, and replication resumes from its match.
    p.step(appendResponse(2n, { index: 8, commit: 8 }));
    expect(progress(p, 2n)).toEqual({ matched: 8, next: 25, state: ProgressState.Replicate, paused: false });
  });
});
