// The running service: storage, the gRPC server and health first; then network registration and
// the probe in the background; the supervisor starts a Raft peer once the controller tells this
// node it is a validator. Stopping hands leadership over first (bounded), then closes everything.
import type { ConsolaInstance } from "consola";
import { HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import type { Config } from "../config/types.ts";
import { ConsensusMetrics } from "../metrics/metrics.ts";
import { MAX_CONNECTIONS, type MetricsServer, startMetricsServer } from "../metrics/server.ts";
import { peerIdFromAddress, peerIdHex } from "../peer/peer-id.ts";
import { STATE_ROLE_NAMES, StateRole } from "../raft/raft.ts";
import { NONE } from "../raft/types.ts";
import { VERSION } from "../cli/version.ts";
import { createControllerClient, createNetworkClient } from "../rpc/clients.ts";
import { createGrpcServer } from "../rpc/server.ts";
import { SqliteStorage } from "../storage/sqlite.ts";
import { MAX_QUEUED_ENTRIES } from "../node/committer.ts";
import { LoggedBlockTimeline } from "../node/block-timeline.ts";
import { ConsensusNode } from "../node/node.ts";
import { systemClock, systemRandom } from "../node/ports.ts";
import { buildStatus, type NodeStatusJson } from "../node/status.ts";

export interface RunningService {
  /** Stops everything (leader hand-off first). Safe to call more than once. */
  stop(reason: string): Promise<void>;
  /** Rejects with a readable Error when the service hits a fatal condition after start-up. */
  readonly done: Promise<void>;
}

/** How long a stopping leader waits for another node to take over. */
export const HAND_OFF_MS = 1_000;
/** How long gRPC calls in flight may take to finish when stopping. */
const STOP_GRACE_MS = 1_000;

export async function startService(cfg: Config, log: ConsolaInstance): Promise<RunningService> {
  const startedAt = performance.now();
  const selfId = peerIdFromAddress(cfg.nodeAddress);
  log.info("consensus service starting", { peer_id: selfId, peer_id_hex: peerIdHex(selfId) });

  const storage = SqliteStorage.open(cfg.raftDataPath, { log: log.withTag("storage") });
  const network = createNetworkClient({ port: cfg.networkPort, readMaxBytes: cfg.maxMessageBytes });
  const controller = createControllerClient({ port: cfg.controllerPort, readMaxBytes: cfg.maxMessageBytes });
  let metrics: ConsensusMetrics | undefined;

  let rejectDone!: (e: Error) => void;
  let resolveDone!: () => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  let fatalError: Error | undefined;
  let stopping: Promise<void> | undefined;
  let serving = false;
  /** The last leader this node knew, for counting leader changes (not role changes). */
  let knownLeader = NONE;

  const node = new ConsensusNode({
    cfg,
    log,
    clock: systemClock,
    random: systemRandom,
    storage,
    controller,
    network,
    listenPort: () => server.port,
    // CONSENSUS_BLOCK_TIMELINE=1: one "block timeline" line per block (bench/e2e.ts reads them).
    timeline: process.env.CONSENSUS_BLOCK_TIMELINE === "1" ? new LoggedBlockTimeline(log.withTag("timeline"), () => performance.timeOrigin + performance.now()) : undefined,
    fatal: (e) => fatal(e),
    raftWithoutPeer: () => metrics?.peerMsgsDropped.inc({ reason: "not_validator" }),
    transportEvents: {
      dropped: (reason) => metrics?.peerMsgsDropped.inc({ reason }),
      mailbook: (result) => metrics?.mailbookChanges.inc({ result }),
    },
    peerEvents: {
      inboundDropped: (reason) => metrics?.peerMsgsDropped.inc({ reason }),
      roleChanged(role, leader) {
        if (role === StateRole.Candidate || role === StateRole.PreCandidate) metrics?.elections.inc();
        if (leader !== NONE && leader !== knownLeader) metrics?.leaderChanges.inc();
        if (leader !== NONE) knownLeader = leader;
        log.info("raft role", { role: STATE_ROLE_NAMES[role], leader: peerIdHex(leader) });
      },
      blockCommitted(_h, waited) {
        metrics?.blocksCommitted.inc();
        metrics?.commitLatency.observe(waited / 1000);
      },
      proposed: () => metrics?.proposals.inc(),
      leaderTransfer: (_to, reason) => metrics?.leaderTransfers.inc({ reason }),
    },
  });
  const { supervisor, transport } = node;

  if (cfg.enableMetrics) {
    metrics = new ConsensusMetrics(
      cfg.metricsBuckets,
      () => {
        const p = supervisor.peer;
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
    metrics.serving(() => isServing());
    metrics.electionTimeout.set((cfg.electionTick * cfg.tickIntervalInMillis) / 1000);
  }
  const isServing = () => serving && fatalError === undefined;
  const status = (): NodeStatusJson => {
    const p = supervisor.peer;
    return buildStatus({
      version: VERSION,
      selfId,
      address: cfg.nodeAddress,
      serving: isServing(),
      uptimeMs: performance.now() - startedAt,
      peer: p && { status: p.status(), config: p.chainConfig() },
    });
  };

  const server = createGrpcServer({
    port: cfg.grpcListenPort,
    host: cfg.grpcListenAddr,
    maxMessageBytes: cfg.maxMessageBytes,
    onRefused: (reason) => metrics?.grpcRefused.inc({ reason }),
    log: log.withTag("grpc"),
    interceptors: metrics ? [metrics.interceptor()] : [],
    handlers: {
      reconfigure: (c) => node.reconfigure(c),
      networkMsg: (env) => node.networkMsg(env),
      // SERVING while this node can do its job: storage open, server listening, no fatal error.
      health: () => (isServing() ? HealthCheckResponse_ServingStatus.SERVING : HealthCheckResponse_ServingStatus.NOT_SERVING),
    },
  });

  if (metrics) {
    metrics.queue("peer_outbound", () => transport.queued, transport.maxQueued);
    metrics.queue("mailbook", () => transport.mailbook.size, transport.mailbook.capacity);
    metrics.queue("peer_origins", () => transport.trackedOrigins.size, transport.trackedOrigins.capacity);
    metrics.queue("grpc_calls", () => server.load.calls, server.limits.calls);
    metrics.queue("grpc_request_bytes", () => server.load.bytes, server.limits.bytes);
    metrics.queue("grpc_connections", () => server.load.connections, server.limits.connections);
    metrics.queue("commit_entries", () => supervisor.peer?.status().committerQueued ?? 0, MAX_QUEUED_ENTRIES);
    metrics.queue("metrics_connections", () => metricsServer?.connections() ?? 0, MAX_CONNECTIONS);
  }

  let metricsServer: MetricsServer | undefined;
  try {
    await server.start();
    if (metrics) metricsServer = await startMetricsServer(metrics, cfg.metricsPort, cfg.metricsListenAddr, log, { status });
    else log.info("metrics off");
  } catch (e) {
    await server.stop(0);
    network.close();
    controller.close();
    storage.close();
    throw e;
  }
  serving = true;

  node.start();

  function stop(reason: string, handOffMs = HAND_OFF_MS): Promise<void> {
    stopping ??= (async () => {
      log.info("service stopping", { reason });
      // The server keeps running during the hand-off: the new leader's messages must get in.
      await node.stopPeer(handOffMs);
      serving = false;
      await server.stop(STOP_GRACE_MS);
      await node.closeTransport();
      network.close();
      controller.close();
      metricsServer?.stop();
      storage.close();
      log.info("service stopped", { raft_msgs_dropped: node.raftMessagesWithoutPeer });
    })();
    return stopping;
  }

  function fatal(e: unknown): void {
    if (fatalError) return;
    fatalError = e instanceof Error ? e : new Error(String(e));
    log.error("fatal error, stopping", { error: fatalError.message });
    void stop("fatal error", 0).finally(() => rejectDone(fatalError!));
  }

  return {
    async stop(reason: string) {
      await stop(reason);
      if (!fatalError) resolveDone();
    },
    done,
  };
}
