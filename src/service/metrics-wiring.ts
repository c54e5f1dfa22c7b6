// How the running node feeds its Prometheus metrics: its events become counters, its state becomes
// gauges read at scrape time, and every bounded queue gets a depth gauge beside its capacity.
import type { ConsolaInstance } from "consola";
import type { Config } from "../config/types.ts";
import { ConsensusMetrics } from "../metrics/metrics.ts";
import { MAX_CONNECTIONS } from "../metrics/server.ts";
import { MAX_QUEUED_ENTRIES } from "../node/committer.ts";
import type { ConsensusNode, NodeDeps } from "../node/node.ts";
import { peerIdHex } from "../peer/peer-id.ts";
import { NONE, STATE_ROLE_NAMES, StateRole } from "../raft/index.ts";
import type { GrpcServer } from "../rpc/server.ts";

/** The node's events, counted in `metrics` (absent: metrics off) and logged where they always were. */
export function countedEvents(metrics: () => ConsensusMetrics | undefined, log: ConsolaInstance): Pick<NodeDeps, "peerEvents" | "transportEvents" | "raftWithoutPeer"> {
  /** The last leader this node knew, for counting leader changes (not role changes). */
  let knownLeader = NONE;
  return {
    raftWithoutPeer: () => metrics()?.peerMsgsDropped.inc({ reason: "not_validator" }),
    transportEvents: {
      dropped: (reason) => metrics()?.peerMsgsDropped.inc({ reason }),
      mailbook: (result) => metrics()?.mailbookChanges.inc({ result }),
      networkFailed: (call) => metrics()?.networkFailures.inc({ call }),
    },
    peerEvents: {
      inboundDropped: (reason) => metrics()?.peerMsgsDropped.inc({ reason }),
      roleChanged(role, leader) {
        if (role === StateRole.Candidate || role === StateRole.PreCandidate) metrics()?.elections.inc();
        if (leader !== NONE && leader !== knownLeader) metrics()?.leaderChanges.inc();
        if (leader !== NONE) knownLeader = leader;
        log.info("raft role", { role: STATE_ROLE_NAMES[role], leader: peerIdHex(leader) });
      },
      blockCommitted(_h, waited) {
        metrics()?.blocksCommitted.inc();
        metrics()?.commitLatency.observe(waited / 1000);
      },
      blockRecommitted: () => metrics()?.blocksRecommitted.inc(),
      proposed: () => metrics()?.proposals.inc(),
      leaderTransfer: (_to, reason) => metrics()?.leaderTransfers.inc({ reason }),
    },
  };
}

/** The registry, with the consensus state gauges reading `node()` at scrape time. */
export function consensusMetrics(settings: Config, node: () => ConsensusNode, isServing: () => boolean, log: ConsolaInstance): ConsensusMetrics {
  const metrics = new ConsensusMetrics(
    settings.metricsBuckets,
    () => {
      const p = node().peer;
      if (p === undefined) return undefined;
      const s = p.status();
      return {
        raftRunning: true,
        term: s.term,
        role: s.role,
        leaderHex: s.leader === 0n ? "" : peerIdHex(s.leader),
        commit: s.commit,
        applied: s.applied,
        lastIndex: s.lastIndex,
        height: s.height,
        committerBacklog: s.committerBacklog,
        blockIntervalSeconds: s.blockInterval,
        voters: s.voters.length,
        leaderlessSeconds: s.leaderlessMs / 1000,
        lastBlockAgeSeconds: (s.lastBlock?.agoMs ?? s.runningMs) / 1000,
      };
    },
    (msg, fields) => log.warn(msg, fields),
  );
  metrics.serving(isServing);
  metrics.electionTimeout.set((settings.electionTick * settings.tickIntervalInMillis) / 1000);
  return metrics;
}

/** A depth gauge for every bounded queue of the node and of its servers. */
export function watchQueues(metrics: ConsensusMetrics, node: ConsensusNode, server: GrpcServer, metricsConnections: () => number): void {
  const { transport } = node;
  metrics.queue("peer_outbound", () => transport.queued, transport.maxQueued);
  metrics.queue("mailbook", () => transport.mailbook.size, transport.mailbook.capacity);
  metrics.queue("peer_origins", () => transport.trackedOrigins.size, transport.trackedOrigins.capacity);
  metrics.queue("grpc_calls", () => server.load.calls, server.limits.calls);
  metrics.queue("grpc_request_bytes", () => server.load.bytes, server.limits.bytes);
  metrics.queue("grpc_connections", () => server.load.connections, server.limits.connections);
  metrics.queue("commit_entries", () => node.peer?.status().committerQueued ?? 0, MAX_QUEUED_ENTRIES);
  metrics.queue("metrics_connections", metricsConnections, MAX_CONNECTIONS);
}
