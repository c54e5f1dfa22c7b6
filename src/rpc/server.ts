// The consensus gRPC server: ConsensusService (controller -> us), NetworkMsgHandlerService (peer
// messages from the network service) and grpc.health.v1.Health, on one h2c port. Handlers answer at
// once and hand work to callbacks; bad input gets INVALID_ARGUMENT, never an untyped error (the
// network service retries UNKNOWN and INTERNAL, so a bad message would come back several times).
//
// The port is unauthenticated, so every resource a caller can make us hold is bounded: connections,
// streams per connection, calls in flight, the bytes their requests hold, and the size of one
// message, which is checked from the 5-byte gRPC frame header before the body is read. Refusals are
// RESOURCE_EXHAUSTED at once, without reading the request.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, createConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { ConsolaInstance } from "consola";
import type { ConsensusConfiguration } from "../../gen/common_pb.ts";
import { ConsensusService } from "../../gen/consensus_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import { NetworkMsgHandlerService } from "../../gen/network_pb.ts";
import { EnvelopeError, type InboundEnvelope, parseEnvelope } from "../peer/envelope.ts";
import { LogLimiter } from "../peer/rate.ts";
import { errorMessage } from "../util/errors.ts";

export interface GrpcServerHandlers {
  /** Receives the controller's configuration; must return at once (the controller waits on it). */
  reconfigure(cfg: ConsensusConfiguration): void;
  /** Receives a validated peer message. */
  networkMsg(env: InboundEnvelope): void;
  /** Current health (SERVING when absent). */
  health?(): HealthCheckResponse_ServingStatus;
}

/** Why a call was refused before its request was read (a label of consensus_grpc_refused_total). */
export type RefusalReason = "too_large" | "busy" | "byte_budget" | "connections";

export interface GrpcServerOptions {
  readonly port: number;
  /** `::` listens on IPv6 and IPv4 alike. */
  readonly host?: string;
  /** Largest message accepted or sent (`max_message_bytes`); a synced block or a raft append can be large. */
  readonly maxMessageBytes?: number;
  /** Calls in flight over all connections. */
  readonly maxCalls?: number;
  /** Request bytes held by calls in flight over all connections (default: max(64 MiB, 2 messages)). */
  readonly maxInflightBytes?: number;
  readonly maxConnections?: number;
  readonly log: ConsolaInstance;
  readonly handlers: GrpcServerHandlers;
  /** Server-side interceptors (e.g. per-caller latency metrics). */
  readonly interceptors?: Interceptor[];
  readonly onRefused?: (reason: RefusalReason) => void;
}

/** What the server holds right now (for metrics). */
export interface GrpcServerLoad {
  readonly calls: number;
  readonly bytes: number;
  readonly connections: number;
}

export interface GrpcServer {
  /** Listens; rejects with a one-line reason naming the address when it cannot. */
  start(): Promise<void>;
  /** The bound port (meaningful after start; differs from the option when that was 0). */
  readonly port: number;
  readonly load: GrpcServerLoad;
  readonly limits: { readonly calls: number; readonly bytes: number; readonly connections: number };
  /** Stops accepting, lets calls in flight finish for up to `graceMs`, then cuts the rest. */
  stop(graceMs?: number): Promise<void>;
}

export const SERVER_DEFAULTS = {
  host: "::",
  maxMessageBytes: 16 << 20,
  maxCalls: 1024,
  maxConnections: 256,
  // Real callers (tonic, grpc-go, grpc-js) queue streams beyond this; it stops a stream explosion.
  maxStreamsPerConnection: 1024,
} as const;

const OK = { code: 0 };
const FRAME_HEADER = 5;

export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const { log, handlers } = opts;
  const host = opts.host ?? SERVER_DEFAULTS.host;
  const maxBytes = opts.maxMessageBytes ?? SERVER_DEFAULTS.maxMessageBytes;
  const maxCalls = opts.maxCalls ?? SERVER_DEFAULTS.maxCalls;
  const maxInflight = opts.maxInflightBytes ?? Math.max(64 << 20, 2 * (maxBytes + FRAME_HEADER));
  const maxConnections = opts.maxConnections ?? SERVER_DEFAULTS.maxConnections;
  const address = `${host.includes(":") ? `[${host}]` : host}:${opts.port}`;
  const warn = new LogLimiter(log, () => performance.now());
  const load = { calls: 0, bytes: 0, connections: 0 };
  const refused = (reason: RefusalReason) => opts.onRefused?.(reason);

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

  const router = createConnectRouter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: maxBytes,
    writeMaxBytes: maxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    interceptors: opts.interceptors,
  });
  routes(router);
  const byPath = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  /** One call in flight: the request bytes it holds, released once when it ends or is refused. */
  interface Call {
    bytes: number;
    open: boolean;
  }

  function release(call: Call): void {
    if (!call.open) return;
    call.open = false;
    load.calls--;
    load.bytes -= call.bytes;
  }

  /** Counts and caps the request bytes of one call as Connect reads them. */
  async function* limitedBody(body: AsyncIterable<Uint8Array>, call: Call): AsyncGenerator<Uint8Array> {
    const header = new Uint8Array(FRAME_HEADER);
    let seen = 0;
    for await (const chunk of body) {
      if (!call.open) return;
      if (seen < FRAME_HEADER) {
        const n = Math.min(FRAME_HEADER - seen, chunk.length);
        header.set(chunk.subarray(0, n), seen);
        if (seen + n === FRAME_HEADER) {
          const declared = new DataView(header.buffer).getUint32(1);
          if (declared > maxBytes) throw refuse(call, "too_large", declared);
        }
      }
      seen += chunk.length;
      // A unary request holds one message; anything beyond its frame is refused the same way.
      if (seen > maxBytes + FRAME_HEADER) throw refuse(call, "too_large", seen - FRAME_HEADER);
      if (load.bytes + chunk.length > maxInflight) throw refuse(call, "byte_budget", 0);
      load.bytes += chunk.length;
      call.bytes += chunk.length;
      yield chunk;
    }
  }

  /**
   * Refuses a call whose request is still arriving. Its share is released at once: the response
   * may only end once the caller stops sending (Bun keeps such a stream open), which it does when
   * the stream is reset after the answer, or by its own deadline.
   */
  function refuse(call: Call, reason: "too_large" | "byte_budget", size: number): ConnectError {
    release(call);
    refused(reason);
    if (reason === "byte_budget") {
      return new ConnectError("server is busy: requests in flight hold too many bytes, retry later", Code.ResourceExhausted);
    }
    return new ConnectError(`message of ${size} bytes is larger than max_message_bytes (${maxBytes})`, Code.ResourceExhausted);
  }

  function handler(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    const uHandler = byPath.get(req.url?.split("?", 1)[0] ?? "");
    if (uHandler === undefined) {
      // gRPC servers answer an unknown method with UNIMPLEMENTED (Connect's router alone gives 404).
      trailersOnly(res, Code.Unimplemented, `unknown method ${req.url ?? ""}`);
      return;
    }
    if (load.calls >= maxCalls) {
      refused("busy");
      trailersOnly(res, Code.ResourceExhausted, "server is busy: too many calls in flight, retry later");
      return;
    }
    load.calls++;
    const call: Call = { bytes: 0, open: true };
    res.once("close", () => release(call));
    res.once("finish", () => {
      release(call);
      // Answered before the request was read to its end (a refusal): reset the stream so the caller
      // stops sending (RFC 9113 §8.1 allows NO_ERROR here), instead of trickling the rest in.
      if (!req.readableEnded) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    const limited: UniversalServerRequest = { ...uReq, body: limitedBody(uReq.body as AsyncIterable<Uint8Array>, call) };
    uHandler(limited)
      .then((uRes) => universalResponseToNodeResponse(withTypedParseErrors(uRes), res))
      .catch((e) => log.debug("grpc call ended with a transport error", { method: uHandler.method.name, error: String(e) }));
  }

  // A larger per-stream window speeds up big uploads. Never setLocalWindowSize: it stalls uploads on Bun.
  const server = http2.createServer(
    { settings: { initialWindowSize: 1 << 20, maxConcurrentStreams: SERVER_DEFAULTS.maxStreamsPerConnection } },
    handler,
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  let onSessionsGone: (() => void) | undefined;
  server.on("session", (s) => {
    if (sessions.size >= maxConnections) {
      refused("connections");
      warn.warn("too many grpc connections; closing a new one", { limit: maxConnections });
      s.destroy();
      return;
    }
    sessions.add(s);
    load.connections = sessions.size;
    s.on("error", (e) => log.debug("grpc session error", { error: String(e) }));
    s.on("close", () => {
      sessions.delete(s);
      load.connections = sessions.size;
      if (sessions.size === 0) onSessionsGone?.();
    });
  });
  let boundPort = opts.port;
  let listening = false;

  return {
    get port() {
      return boundPort;
    },
    load,
    limits: { calls: maxCalls, bytes: maxInflight, connections: maxConnections },

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

/** A gRPC error response in one HEADERS frame that ends the stream; the request is never read. */
function trailersOnly(res: http2.Http2ServerResponse, code: Code, message: string): void {
  res.stream.respond(
    { ":status": 200, "content-type": "application/grpc", "grpc-status": String(code), "grpc-message": encodeURIComponent(message) },
    { endStream: true },
  );
}

/**
 * Connect answers a request body that is not the method's protobuf message (or a frame flagged as
 * compressed without an encoding) with INTERNAL, which callers retry; it is the caller's input that
 * is wrong, so the answer is INVALID_ARGUMENT.
 */
const INPUT_ERRORS = ["parse binary", "received compressed envelope"];

function withTypedParseErrors(uRes: UniversalServerResponse): UniversalServerResponse {
  const { body, trailer } = uRes;
  if (trailer === undefined || body === undefined || !(Symbol.asyncIterator in Object(body))) return uRes;
  const fix = () => {
    const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
    if (trailer.get("grpc-status") === String(Code.Internal) && INPUT_ERRORS.some((p) => message.startsWith(p))) {
      trailer.set("grpc-status", String(Code.InvalidArgument));
    }
  };
  async function* fixed(): AsyncGenerator<Uint8Array> {
    yield* body as AsyncIterable<Uint8Array>;
    fix();
  }
  return { ...uRes, body: fixed() };
}

/** A bind failure in words (shared with the metrics endpoint). */
export function describeListenError(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return "address already in use";
    case "EACCES":
      return "permission denied";
    case "EADDRNOTAVAIL":
      return "address not available on this host";
    default:
      return errorMessage(e);
  }
}
