// What `GET /status` answers and `consensus status` prints: one node's Raft and chain state as
// plain JSON (Raft ids as 0x + 16 hex digits, addresses as 0x + 40 hex digits, times in ms or seconds as
// the field name says). Built from RaftPeer.status(); a node that runs no Raft peer (not a
// validator) answers with the Raft fields null.
import { peerIdFromAddress, peerIdHex } from "../peer/peer-id.ts";
import { PROGRESS_STATE_NAMES, type NodeId } from "../raft/index.ts";
import type { ChainConfig } from "./chain-config.ts";
import type { PeerStatus } from "./raft-peer.ts";

export interface PeerStatusJson {
  id: string;
  /** The validator address behind the id, when the chain configuration lists it. */
  address: string | null;
  learner: boolean;
  /** Highest log index the leader knows the peer holds. */
  match: number;
  /** Next index the leader sends it. */
  next: number;
  /** The leader's last index minus match: entries the peer still lacks. */
  lag: number;
  /** probe, replicate or snapshot. */
  state: string;
  recent_active: boolean;
  /** Since the peer's last accepted message to this node; null if none since this leader's peer started. */
  last_heard_ms: number | null;
}

export interface NodeStatusJson {
  version: string;
  id: string;
  address: string;
  /** The service answers gRPC health SERVING. */
  serving: boolean;
  uptime_seconds: number;
  /** A Raft peer runs here (the node is, or just was, a validator); the fields below are null otherwise. */
  raft_running: boolean;
  /** follower, candidate, leader or pre-candidate. */
  role: string | null;
  term: number | null;
  /** The leader's id, null while none is known. */
  leader: string | null;
  leader_address: string | null;
  /** How long this node has known no leader, 0 while it knows one. */
  leaderless_ms: number | null;
  commit_index: number | null;
  applied_index: number | null;
  last_index: number | null;
  /** Chain height of the applied configuration. */
  height: number | null;
  block_interval_seconds: number | null;
  voters: string[] | null;
  /** The outgoing half of a joint configuration; empty outside one. */
  voters_outgoing: string[] | null;
  learners: string[] | null;
  /** Committed entries waiting for the controller. */
  commit_backlog: number | null;
  /** The last block this node committed to its controller. */
  last_block: { height: number; commit_latency_ms: number; age_ms: number } | null;
  /** Only on the leader: every other member, in id order. */
  peers: PeerStatusJson[] | null;
}

export interface StatusInput {
  version: string;
  selfId: NodeId;
  address: Uint8Array;
  serving: boolean;
  uptimeMs: number;
  peer?: { status: PeerStatus; config: ChainConfig };
}

const ROLE_NAMES = ["follower", "candidate", "leader", "pre-candidate"];
const ms = (x: number) => Math.round(x);
const hexAddress = (a: Uint8Array) => `0x${Buffer.from(a).toString("hex")}`;

export function buildStatus(input: StatusInput): NodeStatusJson {
  const base = {
    version: input.version,
    id: peerIdHex(input.selfId),
    address: hexAddress(input.address),
    serving: input.serving,
    uptime_seconds: Math.round(input.uptimeMs / 100) / 10,
  };
  if (input.peer === undefined) {
    return {
      ...base,
      raft_running: false,
      role: null,
      term: null,
      leader: null,
      leader_address: null,
      leaderless_ms: null,
      commit_index: null,
      applied_index: null,
      last_index: null,
      height: null,
      block_interval_seconds: null,
      voters: null,
      voters_outgoing: null,
      learners: null,
      commit_backlog: null,
      last_block: null,
      peers: null,
    };
  }
  const { status: s, config } = input.peer;
  const addresses = new Map<NodeId, string>();
  for (const v of config.validators) addresses.set(peerIdFromAddress(v), hexAddress(v));
  const ids = (list: NodeId[]) => list.map(peerIdHex);
  return {
    ...base,
    raft_running: true,
    role: ROLE_NAMES[s.role] ?? String(s.role),
    term: s.term,
    leader: s.leader === 0n ? null : peerIdHex(s.leader),
    leader_address: s.leader === 0n ? null : (addresses.get(s.leader) ?? null),
    leaderless_ms: ms(s.leaderlessMs),
    commit_index: s.commit,
    applied_index: s.applied,
    last_index: s.lastIndex,
    height: Number(s.height),
    block_interval_seconds: s.blockInterval,
    voters: ids(s.voters),
    voters_outgoing: ids(s.votersOutgoing),
    learners: ids(s.learners),
    commit_backlog: s.committerBacklog,
    last_block: s.lastBlock ? { height: Number(s.lastBlock.height), commit_latency_ms: ms(s.lastBlock.commitLatencyMs), age_ms: ms(s.lastBlock.agoMs) } : null,
    peers:
      s.peers?.map((p) => ({
        id: peerIdHex(p.id),
        address: addresses.get(p.id) ?? null,
        learner: p.learner,
        match: p.match,
        next: p.next,
        lag: Math.max(0, s.lastIndex - p.match),
        state: PROGRESS_STATE_NAMES[p.state]?.toLowerCase() ?? String(p.state),
        recent_active: p.recentActive,
        last_heard_ms: p.heardAgoMs === undefined ? null : ms(p.heardAgoMs),
      })) ?? null,
  };
}
