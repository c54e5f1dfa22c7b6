// The consensus gRPC server: ConsensusService (controller -> us), NetworkMsgHandlerService (peer
// messages from the network service) and grpc.health.v1.Health, on one h2c port. Handlers answer at
// once and hand work to callbacks; bad input gets INVALID_ARGUMENT, never an untyped error (the
// network service retries UNKNOWN and INTERNAL, so a bad message would come back several times).
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConsolaInstance } from "consola";
import type { ConsensusConfiguration } from "../../gen/common_pb.ts";
import { ConsensusService } from "../../gen/consensus_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import { NetworkMsgHandlerService } from "../../gen/network_pb.ts";
import { EnvelopeError, type InboundEnvelope, parseEnvelope } from "../peer/envelope.ts";

export interface GrpcServerHandlers {
  /** Receives the controller's configuration; must return at once (the controller waits on it). */
  reconfigure(cfg: ConsensusConfiguration): void;
  /** Receives a validated peer message. */
  networkMsg(env: InboundEnvelope): void;
  /** Current health (SERVING when absent). */
  health?(): HealthCheckResponse_ServingStatus;
}

export interface GrpcServerOptions {
  readonly port: number;
  /** `::` listens on IPv6 and IPv4 alike. */
  readonly host?: string;
  /** Largest request accepted; a synced block in CheckBlock or a raft append can be large. */
  readonly maxMessageBytes?: number;
  readonly log: ConsolaInstance;
  readonly handlers: GrpcServerHandlers;
  /** Server-side interceptors (e.g. per-caller latency metrics). */
  readonly interceptors?: Interceptor[];
}

export interface GrpcServer {
  /** Listens; rejects with a one-line reason naming the address when it cannot. */
  start(): Promise<void>;
  /** The bound port (meaningful after start; differs from the option when that was 0). */
  readonly port: number;
  /** Stops accepting, lets calls in flight finish for up to `graceMs`, then cuts the rest. */
  stop(graceMs?: number): Promise<void>;
}

export const SERVER_DEFAULTS = { host: "::", maxMessageBytes: 64 << 20 } as const;

const OK = { code: 0 };

export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const { log, handlers } = opts;
  const host = opts.host ?? SERVER_DEFAULTS.host;
  const maxBytes = opts.maxMessageBytes ?? SERVER_DEFAULTS.maxMessageBytes;
  const address = `${host.includes(":") ? `[${host}]` : host}:${opts.port}`;

  const routes = (router: ConnectRouter) => {
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
          log.warn("rejected network msg", { reason: e.message, type: nm.type, origin: nm.origin });
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

  const handler = connectNodeAdapter({
    routes,
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: maxBytes,
    writeMaxBytes: maxBytes,
    interceptors: opts.interceptors,
    // The router alone answers HTTP 404 without grpc-status; gRPC servers answer UNIMPLEMENTED in
    // a trailers-only response (one HEADERS frame that ends the stream).
    fallback: (req, res) => {
      const headers = {
        "content-type": "application/grpc",
        "grpc-status": String(Code.Unimplemented),
        "grpc-message": encodeURIComponent(`unknown method ${req.url ?? ""}`),
      };
      if ("stream" in res) {
        res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
      } else {
        res.writeHead(200, headers).end();
      }
    },
  });

  // A larger per-stream window speeds up big uploads. Never setLocalWindowSize: it stalls uploads on Bun.
  const server = http2.createServer({ settings: { initialWindowSize: 1 << 20 } }, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  let onSessionsGone: (() => void) | undefined;
  server.on("session", (s) => {
    sessions.add(s);
    s.on("error", (e) => log.debug("grpc session error", { error: String(e) }));
    s.on("close", () => {
      sessions.delete(s);
      if (sessions.size === 0) onSessionsGone?.();
    });
  });
  let boundPort = opts.port;
  let listening = false;

  return {
    get port() {
      return boundPort;
    },

    start() {
      return new Promise<void>((resolve, reject) => {
        const fail = (e: unknown) => {
          server.off("listening", onListening);
          reject(new Error(`cannot listen for gRPC on ${address}: ${describeListenError(e)}`));
        };
        const onListening = () => {
          server.off("error", fail);
          server.on("error", (e) => log.error("grpc server error", { error: String(e) }));
          listening = true;
          boundPort = (server.address() as AddressInfo).port;
          log.info("grpc server listening", { host, port: boundPort });
          resolve();
        };
        server.once("error", fail);
        server.once("listening", onListening);
        try {
          server.listen(opts.port, host);
        } catch (e) {
          server.off("error", fail);
          fail(e);
        }
      });
    },

    async stop(graceMs = 2000) {
      if (!listening) return;
      listening = false;
      // close() stops accepting at once, but its callback can wait forever on idle client
      // sessions, so sessions are closed here and the wait is bounded.
      server.close();
      if (sessions.size > 0) {
        const gone = new Promise<void>((r) => (onSessionsGone = r));
        for (const s of sessions) s.close();
        let timer: Timer | undefined;
        await Promise.race([gone, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
        for (const s of sessions) s.destroy();
      }
      log.info("grpc server stopped", { port: boundPort });
    },
  };
}

function describeListenError(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return "address already in use";
    case "EACCES":
      return "permission denied";
    case "EADDRNOTAVAIL":
      return "address not available on this host";
    default:
      return e instanceof Error ? e.message : String(e);
  }
}
