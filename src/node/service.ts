// The running service: the gRPC server, the peer transport behind ProcessNetworkMsg, and
// registration with the network service in the background. Raft is not wired in yet: inbound raft
// messages are counted (transport stats) and dropped, and Reconfigure is only logged.
import type { ConsolaInstance } from "consola";
import type { Config } from "../config/types.ts";
import { peerIdFromAddress, peerIdHex } from "../peer/peer-id.ts";
import { PeerTransport } from "../peer/transport.ts";
import { createNetworkClient } from "../rpc/clients.ts";
import { registerNetworkMsgHandler } from "../rpc/registration.ts";
import { createGrpcServer } from "../rpc/server.ts";

export interface RunningService {
  /** Stops everything (leader hand-off first, once Raft runs). Safe to call more than once. */
  stop(reason: string): Promise<void>;
  /** Rejects with a readable Error when the service hits a fatal condition after start-up. */
  readonly done: Promise<void>;
}

/** How long gRPC calls in flight may take to finish when stopping. */
const STOP_GRACE_MS = 1500;
/** How long queued peer messages may take to go out when stopping (Raft resends what is lost). */
const DRAIN_MS = 500;

export async function startService(cfg: Config, log: ConsolaInstance): Promise<RunningService> {
  const selfId = peerIdFromAddress(cfg.nodeAddress);
  log.info("consensus service starting", { peer_id: selfId.toString(), peer_id_hex: peerIdHex(selfId) });

  const netLog = log.withTag("network");
  const network = createNetworkClient({ port: cfg.networkPort });
  const transport = new PeerTransport({ selfId, network, log: netLog });
  const server = createGrpcServer({
    port: cfg.grpcListenPort,
    log: log.withTag("grpc"),
    handlers: {
      reconfigure: (c) =>
        log.info("reconfigure received", {
          height: c.height.toString(),
          block_interval: c.blockInterval,
          validators: c.validators.length,
        }),
      networkMsg: (env) => transport.handleInbound(env),
    },
  });
  try {
    await server.start();
  } catch (e) {
    network.close();
    throw e;
  }

  const registration = new AbortController();
  registerNetworkMsgHandler(network, server.port, netLog, registration.signal).then(
    () => transport.probe(),
    (e) => {
      if (!registration.signal.aborted) log.error("network registration gave up", { error: String(e) });
    },
  );

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping: Promise<void> | undefined;
  return {
    stop(reason: string) {
      stopping ??= (async () => {
        log.info("service stopping", { reason });
        registration.abort(new Error("service stopping"));
        await server.stop(STOP_GRACE_MS);
        transport.close();
        let timer: Timer | undefined;
        await Promise.race([transport.idle(), new Promise<void>((r) => (timer = setTimeout(r, DRAIN_MS)))]);
        clearTimeout(timer);
        network.close();
        log.info("service stopped", { raft_msgs_dropped: transport.stats.raftReceived });
        resolveDone();
      })();
      return stopping;
    },
    done,
  };
}
