// The running service: storage, the gRPC server and health first; then network registration and
// the probe in the background; the supervisor starts a Raft peer once the controller tells this
// node it is a validator. Stopping hands leadership over first (bounded), then closes everything.
import type { ConsolaInstance } from "consola";
import { HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import type { Config } from "../config/types.ts";
import { VERSION } from "../config/version.ts";
import type { ConsensusMetrics } from "../metrics/metrics.ts";
import { type MetricsServer, startMetricsServer } from "../metrics/server.ts";
import { LoggedBlockTimeline } from "../node/block-timeline.ts";
import { ConsensusNode } from "../node/node.ts";
import { systemClock, systemRandom } from "../node/ports.ts";
import { buildStatus, type NodeStatusJson } from "../node/status.ts";
import { peerIdFromAddress, peerIdHex } from "../peer/peer-id.ts";
import { createControllerClient, createNetworkClient } from "../rpc/clients.ts";
import { createGrpcServer } from "../rpc/server.ts";
import { SqliteStorage } from "../storage/sqlite.ts";
import { consensusMetrics, countedEvents, watchQueues } from "./metrics-wiring.ts";
import { HAND_OFF_MS, stopInOrder } from "./stop.ts";

export { HAND_OFF_MS } from "./stop.ts";

export interface RunningService {
  /** Stops everything (leader hand-off first). Safe to call more than once. */
  stop(reason: string): Promise<void>;
  /** Rejects with a readable Error when the service hits a fatal condition after start-up. */
  readonly done: Promise<void>;
}

export async function startService(settings: Config, log: ConsolaInstance): Promise<RunningService> {
  const startedAt = performance.now();
  const selfId = peerIdFromAddress(settings.nodeAddress);
  log.info("consensus service starting", { peer_id: selfId, peer_id_hex: peerIdHex(selfId) });

  const storage = SqliteStorage.open(settings.raftDataPath, { log: log.withTag("storage") });
  const network = createNetworkClient({ port: settings.networkPort, readMaxBytes: settings.maxMessageBytes });
  const controller = createControllerClient({ port: settings.controllerPort, readMaxBytes: settings.maxMessageBytes });

  let rejectDone!: (e: Error) => void;
  let resolveDone!: () => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  let fatalError: Error | undefined;
  let stopping: Promise<void> | undefined;
  let serving = false;
  const isServing = () => serving && fatalError === undefined;

  const metrics: ConsensusMetrics | undefined = settings.enableMetrics ? consensusMetrics(settings, () => node, isServing, log) : undefined;
  const node = new ConsensusNode({
    settings,
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
    ...countedEvents(() => metrics, log),
  });

  const status = (): NodeStatusJson => {
    const p = node.peer;
    return buildStatus({
      version: VERSION,
      selfId,
      address: settings.nodeAddress,
      serving: isServing(),
      uptimeMs: performance.now() - startedAt,
      peer: p && { status: p.status(), config: p.chainConfig() },
    });
  };

  const server = createGrpcServer({
    port: settings.grpcListenPort,
    host: settings.grpcListenAddr,
    maxMessageBytes: settings.maxMessageBytes,
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

  let metricsServer: MetricsServer | undefined;
  if (metrics) watchQueues(metrics, node, server, () => metricsServer?.connections() ?? 0);
  try {
    await server.start();
    if (metrics) metricsServer = await startMetricsServer(metrics, settings.metricsPort, settings.metricsListenAddr, log, { status });
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
    stopping ??= stopInOrder(
      { log, node, server, clients: [network, controller], metricsServer, storage, notServing: () => (serving = false) },
      reason,
      handOffMs,
    );
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
