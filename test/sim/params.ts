// Everything a run varies, drawn from its seed: cluster shape, core options, disk and network
// timing, and how hard the nemesis pushes. One line of text describes it in every report.
import { NO_LIMIT, type RaftTestBug } from "../../src/raft/config.ts";
import type { Rng } from "./rng.ts";

export interface Params {
  voters: number;
  learners: number;
  tickMs: number;
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  batchAppend: boolean;
  /** Drawn from its own stream (see Sim's constructor), so adding it kept every seed's other choices. */
  skipHeartbeatsWhileAppending: boolean;
  skipBcastCommit: boolean;
  maxUncommittedSize: number;
  /** Persist through advance_append_async / on_persist_ready instead of blocking on each Ready. */
  asyncPersist: boolean;
  /** Apply committed entries up to this many ms after they are handed out (0: within the Ready). */
  applyLagMs: number;
  /** fsync duration range (ms). */
  fsyncMin: number;
  fsyncMax: number;
  /** Mean time between nemesis actions (ms). */
  nemesisEveryMs: number;
  /** Mean time between client proposals (ms); varies during the run around this. */
  proposeEveryMs: number;
  /** Log entries kept behind a snapshot when compacting, and how far applying runs ahead of the last snapshot before one is taken. */
  /** Probability that a newly elected leader is crashed or isolated moments later. */
  strikeNewLeader: number;
  /** Probability that a leader is crashed or isolated moments after its commit index moves. */
  strikeAfterCommit: number;
  keepTail: number;
  snapshotEvery: number;
  /** Deliberate core bugs every node is built with (not drawn: chosen by the caller, to prove the checks bite). */
  testBugs: ReadonlySet<RaftTestBug>;
}

export function drawParams(rng: Rng, testBugs: ReadonlySet<RaftTestBug> = new Set()): Params {
  const voters = rng.pick([3, 3, 3, 4, 5, 5, 5, 6, 7]);
  const electionTick = rng.range(5, 10);
  const maxSizePerMsg = rng.pick([0, 0, 64, 256, NO_LIMIT]);
  return {
    voters,
    learners: rng.chance(0.25) ? 1 : 0,
    tickMs: 100,
    electionTick,
    heartbeatTick: rng.range(1, Math.min(3, electionTick - 1)),
    preVote: rng.chance(0.5),
    checkQuorum: rng.chance(0.5),
    maxSizePerMsg,
    maxInflightMsgs: rng.pick([1, 2, 4, 256]),
    maxInflightBytes: rng.pick([0, 0, 0, 200]),
    batchAppend: rng.chance(0.3),
    skipHeartbeatsWhileAppending: false,
    skipBcastCommit: rng.chance(0.2),
    maxUncommittedSize: rng.chance(0.15) && maxSizePerMsg <= 256 ? 512 : NO_LIMIT,
    asyncPersist: rng.chance(0.3),
    applyLagMs: rng.pick([0, 0, 5, 50]),
    fsyncMin: 1,
    fsyncMax: rng.pick([2, 10, 30]),
    nemesisEveryMs: rng.pick([200, 400, 800]),
    proposeEveryMs: rng.pick([20, 60, 150]),
    strikeNewLeader: rng.pick([0, 0.2, 0.5]),
    strikeAfterCommit: rng.pick([0, 0.05, 0.2]),
    keepTail: rng.pick([0, 1, 5, 20]),
    snapshotEvery: rng.pick([3, 10, 40, 1000]),
    testBugs,
  };
}

export function describeParams(p: Params): string {
  const lim = (n: number) => (n === NO_LIMIT ? "inf" : String(n));
  return [
    `voters=${p.voters}`,
    `learners=${p.learners}`,
    `election=${p.electionTick}`,
    `heartbeat=${p.heartbeatTick}`,
    `pre_vote=${p.preVote}`,
    `check_quorum=${p.checkQuorum}`,
    `max_size_per_msg=${lim(p.maxSizePerMsg)}`,
    `max_inflight=${p.maxInflightMsgs}`,
    `max_inflight_bytes=${p.maxInflightBytes}`,
    `batch_append=${p.batchAppend}`,
    `skip_bcast_commit=${p.skipBcastCommit}`,
    `skip_heartbeats_while_appending=${p.skipHeartbeatsWhileAppending}`,
    `max_uncommitted=${lim(p.maxUncommittedSize)}`,
    `async_persist=${p.asyncPersist}`,
    `apply_lag=${p.applyLagMs}ms`,
    `fsync=${p.fsyncMin}-${p.fsyncMax}ms`,
    `nemesis_every=${p.nemesisEveryMs}ms`,
    `propose_every=${p.proposeEveryMs}ms`,
    `strike_new_leader=${p.strikeNewLeader}`,
    `strike_after_commit=${p.strikeAfterCommit}`,
    `keep_tail=${p.keepTail}`,
    `snapshot_every=${p.snapshotEvery}`,
    ...(p.testBugs.size > 0 ? [`bugs=${[...p.testBugs].join(",")}`] : []),
  ].join(" ");
}
