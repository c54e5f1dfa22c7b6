// Configuration of one Raft node, with raft-rs names (camelCase) and defaults.
import { RaftError } from "./errors.ts";
import type { RaftLogger } from "./logger.ts";
import { type RandomSource, seededRandom } from "./rand.ts";
import { ReadOnlyOption } from "./read-only.ts";
import type { NodeId } from "./types.ts";

export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * Deliberate bugs the core can be built with, for tests only: the simulator switches one on to
 * prove that its checks catch it. Never set in production.
 * - `grantVoteWithoutLogCheck`: grant votes without the candidate's log being up to date.
 * - `commitPreviousTermByCounting`: commit an entry of an earlier term once a majority holds it.
 * - `staleRejectResetsMatch`: forget a follower's match on any rejection at the match index whose
 *   hint is below it, stale or not (in Replicate too).
 */
export const RAFT_TEST_BUGS = ["grantVoteWithoutLogCheck", "commitPreviousTermByCounting", "staleRejectResetsMatch"] as const;
export type RaftTestBug = (typeof RAFT_TEST_BUGS)[number];

const NO_TEST_BUGS: ReadonlySet<RaftTestBug> = new Set();

export interface RaftConfig {
  id: NodeId;
  /** Ticks without leader contact before a follower campaigns (randomized in [min, max)). */
  electionTick: number;
  /** Ticks between leader heartbeats. */
  heartbeatTick: number;
  /** Index already applied by the application (entries up to it are not returned again). */
  applied?: number;
  /** Byte limit of one MsgAppend; 0 means one entry per message (raft-rs default). */
  maxSizePerMsg?: number;
  /** Inflight MsgAppend window per follower, in messages (default 256). */
  maxInflightMsgs?: number;
  /** Inflight window in bytes of entries; 0 = unlimited. */
  maxInflightBytes?: number;
  /** Leader steps down when it has not heard from a quorum within an election timeout. */
  checkQuorum?: boolean;
  /** Run a pre-vote round before disrupting the cluster with a real election. */
  preVote?: boolean;
  minElectionTick?: number;
  maxElectionTick?: number;
  readOnlyOption?: ReadOnlyOption;
  /** Do not broadcast the new commit index right away (saves messages; followers learn it later). */
  skipBcastCommit?: boolean;
  /**
   * Skip the periodic heartbeat to a replicating follower that was sent an append since the last
   * one: the append reset its election timer and carried the commit index, and its answer shows it
   * alive. (raft-rs always sends them; with appends flowing they are pure cost.)
   */
  skipHeartbeatsWhileAppending?: boolean;
  /** Merge appends to the same follower within one Ready. */
  batchAppend?: boolean;
  /** A candidate with lower priority and equal log is refused (raft-rs priority election). */
  priority?: number;
  /** Bound on the data size of uncommitted entries on the leader; proposals beyond it are dropped. */
  maxUncommittedSize?: number;
  /** Bound on the size of committed entries returned per Ready. */
  maxCommittedSizePerReady?: number;
  /** Drop proposals on followers instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Random source for election timeouts; defaults to a PRNG seeded from the id. */
  random?: RandomSource;
  logger?: RaftLogger;
  /** Test only: deliberate bugs to build this node with (see RAFT_TEST_BUGS). Never set in production. */
  testBugs?: ReadonlySet<RaftTestBug>;
}

export type ResolvedConfig = Required<Omit<RaftConfig, "logger">> & { logger?: RaftLogger };

export function resolveConfig(c: RaftConfig): ResolvedConfig {
  const r: ResolvedConfig = {
    id: c.id,
    electionTick: c.electionTick,
    heartbeatTick: c.heartbeatTick,
    applied: c.applied ?? 0,
    maxSizePerMsg: c.maxSizePerMsg ?? 0,
    maxInflightMsgs: c.maxInflightMsgs ?? 256,
    maxInflightBytes: c.maxInflightBytes ?? 0,
    checkQuorum: c.checkQuorum ?? false,
    preVote: c.preVote ?? false,
    minElectionTick: c.minElectionTick || c.electionTick,
    maxElectionTick: c.maxElectionTick || 2 * c.electionTick,
    readOnlyOption: c.readOnlyOption ?? ReadOnlyOption.Safe,
    skipBcastCommit: c.skipBcastCommit ?? false,
    skipHeartbeatsWhileAppending: c.skipHeartbeatsWhileAppending ?? false,
    batchAppend: c.batchAppend ?? false,
    priority: c.priority ?? 0,
    maxUncommittedSize: c.maxUncommittedSize ?? NO_LIMIT,
    maxCommittedSizePerReady: c.maxCommittedSizePerReady ?? NO_LIMIT,
    disableProposalForwarding: c.disableProposalForwarding ?? false,
    random: c.random ?? seededRandom(Number(BigInt.asUintN(32, c.id))),
    logger: c.logger,
    testBugs: c.testBugs ?? NO_TEST_BUGS,
  };
  validateConfig(r);
  return r;
}

function invalid(msg: string): never {
  throw new RaftError("ConfigInvalid", msg);
}

export function validateConfig(c: ResolvedConfig): void {
  if (c.id === 0n) invalid("invalid node id");
  if (!(c.heartbeatTick > 0)) invalid("heartbeat tick must greater than 0");
  if (!(c.electionTick > c.heartbeatTick)) invalid("election tick must be greater than heartbeat tick");
  if (c.minElectionTick < c.electionTick) invalid(`min election tick ${c.minElectionTick} must not be less than election_tick ${c.electionTick}`);
  if (c.minElectionTick >= c.maxElectionTick) invalid(`min election tick ${c.minElectionTick} should be less than max election tick ${c.maxElectionTick}`);
  if (!(c.maxInflightMsgs > 0)) invalid("max inflight messages must be greater than 0");
  if (c.readOnlyOption === ReadOnlyOption.LeaseBased && !c.checkQuorum) invalid("read_only_option == LeaseBased requires check_quorum == true");
  if (c.maxUncommittedSize < c.maxSizePerMsg) invalid("max uncommitted size should greater than max_size_per_msg");
}
