// What the consensus gRPC port serves: ConsensusService (controller -> us), NetworkMsgHandlerService
// (peer messages from the network service) and grpc.health.v1.Health. Handlers answer at once and
// hand work to callbacks; bad input gets INVALID_ARGUMENT, never an untyped error (the network
// service retries UNKNOWN and INTERNAL, so a bad message would come back several times).
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { ConsolaInstance } from "consola";
import type { ConsensusConfiguration } from "../../gen/common_pb.ts";
import { ConsensusService } from "../../gen/consensus_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import { NetworkMsgHandlerService } from "../../gen/network_pb.ts";
import { EnvelopeError, type InboundEnvelope, parseEnvelope } from "../peer/envelope.ts";
import type { LogLimiter } from "../peer/rate.ts";

export interface GrpcServerHandlers {
  /** Receives the controller's configuration; must return at once (the controller waits on it). */
  reconfigure(cfg: ConsensusConfiguration): void;
  /** Receives a validated peer message. */
  networkMsg(env: InboundEnvelope): void;
  /** Current health (SERVING when absent). */
  health?(): HealthCheckResponse_ServingStatus;
}

const OK = { code: 0 };

/** Registers the three services on `router`. `warn` rate-limits lines that callers can cause. */
export function consensusRoutes(handlers: GrpcServerHandlers, log: ConsolaInstance, warn: LogLimiter): (router: ConnectRouter) => void {
  return (router) => {
    router.service(ConsensusService, {
      reconfigure(cfg) {
        try {
          handlers.reconfigure(cfg);
        } catch (e) {
          // Still success: a failed Reconfigure aborts the controller's block sync.
          log.error("reconfigure handler failed", { error: String(e) });
        }
        return OK;
      },
      // Raft has no proofs to verify: every synced block is fine by consensus.
      checkBlock: () => OK,
    });
    router.service(NetworkMsgHandlerService, {
      processNetworkMsg(nm) {
        let env: InboundEnvelope;
        try {
          env = parseEnvelope(nm);
        } catch (e) {
          if (!(e instanceof EnvelopeError)) throw e;
          warn.warn("rejected network msg", { reason: e.message, type: nm.type, origin: nm.origin });
          throw new ConnectError(e.message, Code.InvalidArgument);
        }
        try {
          handlers.networkMsg(env);
        } catch (e) {
          log.error("network msg handler failed", { type: env.type, error: String(e) });
          throw new ConnectError("consensus failed to handle the message", Code.Internal);
        }
        return OK;
      },
    });
    router.service(Health, {
      check: () => ({ status: handlers.health?.() ?? HealthCheckResponse_ServingStatus.SERVING }),
    });
  };
}
