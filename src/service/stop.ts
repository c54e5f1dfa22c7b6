// The order a service stops in. The gRPC server keeps running while a leader hands over (the new
// leader's messages must still get in); only then does it stop, the transport drains, and the
// clients, the metrics endpoint and storage close.
import type { ConsolaInstance } from "consola";
import type { MetricsServer } from "../metrics/server.ts";
import type { ConsensusNode } from "../node/node.ts";
import type { GrpcServer } from "../rpc/server.ts";
import type { NodeStorage } from "../storage/node-storage.ts";

/** How long a stopping leader waits for another node to take over. */
export const HAND_OFF_MS = 1_000;
/** How long gRPC calls in flight may take to finish when stopping. */
export const STOP_GRACE_MS = 1_000;

export interface ServiceParts {
  readonly log: ConsolaInstance;
  readonly node: ConsensusNode;
  readonly server: Pick<GrpcServer, "stop">;
  readonly clients: readonly { close(): void }[];
  readonly metricsServer: MetricsServer | undefined;
  readonly storage: NodeStorage & { close(): void };
  /** Health turns NOT_SERVING from here on. */
  notServing(): void;
}

export async function stopInOrder(parts: ServiceParts, reason: string, handOffMs: number): Promise<void> {
  const { log, node, server } = parts;
  log.info("service stopping", { reason });
  await node.stopPeer(handOffMs);
  parts.notServing();
  await server.stop(STOP_GRACE_MS);
  await node.closeTransport();
  for (const c of parts.clients) c.close();
  parts.metricsServer?.stop();
  parts.storage.close();
  log.info("service stopped", { raft_msgs_dropped: node.raftMessagesWithoutPeer });
}
