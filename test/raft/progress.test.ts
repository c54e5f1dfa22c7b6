// Progress: the leader's view of one follower (etcd tracker/progress_test.go, raft-rs progress
// tests): pausing, acks (maybeUpdate), rejections (maybeDecrTo) in each state, and the state moves.
import { describe, expect, test } from "bun:test";
import { INVALID_INDEX, Progress, ProgressState } from "../../src/raft/tracker/progress.ts";

function progress(init: { state?: ProgressState; matched?: number; next: number; paused?: boolean; pendingSnapshot?: number }): Progress {
  const p = new Progress(init.next, 256);
  p.matched = init.matched ?? 0;
  if (init.state === ProgressState.Replicate) p.becomeReplicate();
  if (init.state === ProgressState.Snapshot) p.becomeSnapshot(init.pendingSnapshot ?? 0);
  // becomeReplicate resets Next to match+1: put back the value the case asks for.
  p.nextIdx = init.next;
  p.paused = init.paused ?? false;
  return p;
}

const view = (p: Progress) => ({ state: p.state, matched: p.matched, next: p.nextIdx, paused: p.paused, pendingSnapshot: p.pendingSnapshot });

describe("Progress", () => {
  test("TestProgressIsPaused: Probe pauses after one append, Replicate only when its window is full, Snapshot always", () => {
    const cases: [ProgressState, boolean, boolean][] = [
      [ProgressState.Probe, false, false],
      [ProgressState.Probe, true, true],
      [ProgressState.Replicate, false, false],
      [ProgressState.Replicate, true, false],
      [ProgressState.Snapshot, false, true],
      [ProgressState.Snapshot, true, true],
    ];
    for (const [state, paused, want] of cases) {
      expect({ state, paused, got: progress({ state, next: 1, paused }).isPaused() }).toEqual({ state, paused, got: want });
    }
    const full = progress({ state: ProgressState.Replicate, next: 1 });
    for (let i = 1; i <= 256; i++) full.updateState(i, 1);
    expect(full.isPaused()).toBe(true);
  });

  test("TestProgressResume: an accepted rejection or a new ack unpauses a probe", () => {
    const p = progress({ next: 2, paused: true });
    expect(p.maybeDecrTo(1, 1, INVALID_INDEX)).toBe(true);
    expect(p.paused).toBe(false);
    p.paused = true;
    expect(p.maybeUpdate(2)).toBe(true);
    expect(p.paused).toBe(false);
  });

  test("TestProgressBecomeProbe: Next restarts after the match, or after the snapshot that was delivered", () => {
    const cases: [Progress, number][] = [
      [progress({ state: ProgressState.Replicate, matched: 1, next: 5 }), 2],
      // snapshot finished: the follower has everything up to it
      [progress({ state: ProgressState.Snapshot, matched: 1, next: 5, pendingSnapshot: 10 }), 11],
      // snapshot failed (pending cleared): back to the match
      [progress({ state: ProgressState.Snapshot, matched: 1, next: 5, pendingSnapshot: 0 }), 2],
    ];
    for (const [p, wnext] of cases) {
      p.becomeProbe();
      expect(view(p)).toEqual({ state: ProgressState.Probe, matched: 1, next: wnext, paused: false, pendingSnapshot: 0 });
    }
  });

  test("TestProgressBecomeReplicate: Next restarts right after the match with an empty window", () => {
    const p = progress({ matched: 1, next: 5 });
    p.becomeReplicate();
    expect(view(p)).toEqual({ state: ProgressState.Replicate, matched: 1, next: 2, paused: false, pendingSnapshot: 0 });
    expect(p.ins.count).toBe(0);
  });

  test("TestProgressBecomeSnapshot: the pending snapshot index is recorded and the match kept", () => {
    const p = progress({ matched: 1, next: 5 });
    p.becomeSnapshot(10);
    expect(view(p)).toEqual({ state: ProgressState.Snapshot, matched: 1, next: 5, paused: false, pendingSnapshot: 10 });
    expect(p.isPaused()).toBe(true);
  });

  test("TestProgressUpdate: an ack never lowers Match or Next and reports whether it was news", () => {
    const [prevM, prevN] = [3, 5];
    const cases: [number, number, number, boolean][] = [
      [prevM - 1, prevM, prevN, false], // stale: neither moves
      [prevM, prevM, prevN, false], // same match: Next is not lowered
      [prevM + 1, prevM + 1, prevN, true], // new match below Next
      [prevM + 2, prevM + 2, prevN + 1, true], // new match pushes Next
    ];
    for (const [update, wm, wn, wok] of cases) {
      const p = progress({ matched: prevM, next: prevN });
      expect({ update, ok: p.maybeUpdate(update), m: p.matched, n: p.nextIdx }).toEqual({ update, ok: wok, m: wm, n: wn });
    }
  });

  test("TestProgressMaybeDecr: rejections at or below the match are stale in Replicate; a probe only accepts the answer to its probe", () => {
    // [state, match, next, rejected, follower's hint (last index), accepted?, new Next]
    const cases: [ProgressState, number, number, number, number, boolean, number][] = [
      // Replicate: rejected <= match is stale
      [ProgressState.Replicate, 5, 10, 5, 5, false, 10],
      [ProgressState.Replicate, 5, 10, 4, 4, false, 10],
      // Replicate: rejected > match restarts at match+1
      [ProgressState.Replicate, 5, 10, 9, 9, true, 6],
      // Probe: only a rejection of next-1 counts
      [ProgressState.Probe, 0, 0, 0, 0, false, 0],
      [ProgressState.Probe, 0, 10, 5, 5, false, 10],
      // Probe: next-1 rejected, back off to min(rejected, hint+1)
      [ProgressState.Probe, 0, 10, 9, 9, true, 9],
      [ProgressState.Probe, 0, 2, 1, 1, true, 1],
      [ProgressState.Probe, 0, 1, 0, 0, true, 1],
      [ProgressState.Probe, 0, 10, 9, 2, true, 3],
      [ProgressState.Probe, 0, 10, 9, 0, true, 1],
    ];
    for (const [i, [state, m, n, rejected, hint, w, wn]] of cases.entries()) {
      const p = progress({ state, matched: m, next: n });
      expect({ i, ok: p.maybeDecrTo(rejected, hint, INVALID_INDEX), next: p.nextIdx }).toEqual({ i, ok: w, next: wn });
    }
  });

  test("a probe never backs off below match+1, whatever the hint says", () => {
    const p = progress({ matched: 4, next: 8 });
    expect(p.maybeDecrTo(7, 1, INVALID_INDEX)).toBe(true);
    expect(p.nextIdx).toBe(5);
  });

  test("raft-rs request_snapshot: a rejection carrying request_snapshot is never stale and records the request once", () => {
    // Replicate: even a rejection at the match index asks for the snapshot; Next is left alone.
    const r = progress({ state: ProgressState.Replicate, matched: 5, next: 10 });
    expect(r.maybeDecrTo(5, 5, 7)).toBe(true);
    expect({ next: r.nextIdx, pending: r.pendingRequestSnapshot }).toEqual({ next: 10, pending: 7 });
    // ...but one below the match is out of order.
    const stale = progress({ state: ProgressState.Replicate, matched: 5, next: 10 });
    expect(stale.maybeDecrTo(4, 4, 7)).toBe(false);
    expect(stale.pendingRequestSnapshot).toBe(INVALID_INDEX);

    // Probe: accepted even when it does not answer the probe; the first request wins.
    const p = progress({ next: 10, paused: true });
    expect(p.maybeDecrTo(3, 3, 7)).toBe(true);
    expect(p.maybeDecrTo(3, 3, 8)).toBe(true);
    expect({ next: p.nextIdx, pending: p.pendingRequestSnapshot, paused: p.paused }).toEqual({ next: 10, pending: 7, paused: false });
  });

  test("becomeProbe after a snapshot: delivered → Next after the snapshot; failed → Next after the match", () => {
    const delivered = progress({ state: ProgressState.Snapshot, matched: 3, next: 4, pendingSnapshot: 11 });
    delivered.becomeProbe();
    expect(view(delivered)).toEqual({ state: ProgressState.Probe, matched: 3, next: 12, paused: false, pendingSnapshot: 0 });

    const failed = progress({ state: ProgressState.Snapshot, matched: 3, next: 4, pendingSnapshot: 11 });
    failed.snapshotFailure();
    failed.becomeProbe();
    expect(view(failed)).toEqual({ state: ProgressState.Probe, matched: 3, next: 4, paused: false, pendingSnapshot: 0 });

    // A match already past the snapshot wins over it.
    const ahead = progress({ state: ProgressState.Snapshot, matched: 20, next: 21, pendingSnapshot: 11 });
    ahead.becomeProbe();
    expect(ahead.nextIdx).toBe(21);
  });

  test("updateState: Replicate moves Next optimistically and fills the window; Probe pauses; Snapshot refuses", () => {
    const r = progress({ state: ProgressState.Replicate, matched: 2, next: 3 });
    r.updateState(7, 70);
    expect({ next: r.nextIdx, count: r.ins.count, bytes: r.ins.bytes }).toEqual({ next: 8, count: 1, bytes: 70 });

    const p = progress({ matched: 2, next: 3 });
    p.updateState(7, 70);
    expect({ next: p.nextIdx, paused: p.paused, count: p.ins.count }).toEqual({ next: 3, paused: true, count: 0 });

    expect(() => progress({ state: ProgressState.Snapshot, next: 3, pendingSnapshot: 9 }).updateState(7, 70)).toThrow();
  });

  test("isSnapshotCaughtUp once the match reaches the pending snapshot", () => {
    const p = progress({ state: ProgressState.Snapshot, matched: 3, next: 4, pendingSnapshot: 11 });
    expect(p.isSnapshotCaughtUp()).toBe(false);
    p.maybeUpdate(11);
    expect(p.isSnapshotCaughtUp()).toBe(true);
  });
});
