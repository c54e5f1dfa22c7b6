// The consensus gRPC server on one h2c port: the routes of routes.ts behind the admission control
// of admission.ts, with a bounded stop.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, createConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { ConsolaInstance } from "consola";
import { LogLimiter } from "../peer/rate.ts";
import { errorMessage } from "../util/errors.ts";
import { Admission, FRAME_HEADER, type GrpcServerLoad, type RefusalReason, trailersOnly } from "./admission.ts";
import { consensusRoutes, type GrpcServerHandlers } from "./routes.ts";

export type { GrpcServerHandlers } from "./routes.ts";
export type { GrpcServerLoad, RefusalReason } from "./admission.ts";

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

export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const { log } = opts;
  const host = opts.host ?? SERVER_DEFAULTS.host;
  const maxBytes = opts.maxMessageBytes ?? SERVER_DEFAULTS.maxMessageBytes;
  const address = `${host.includes(":") ? `[${host}]` : host}:${opts.port}`;
  const warn = new LogLimiter(log, () => performance.now());
  const admission = new Admission(
    {
      maxBytes,
      maxCalls: opts.maxCalls ?? SERVER_DEFAULTS.maxCalls,
      maxInflight: opts.maxInflightBytes ?? Math.max(64 << 20, 2 * (maxBytes + FRAME_HEADER)),
      maxConnections: opts.maxConnections ?? SERVER_DEFAULTS.maxConnections,
    },
    (reason) => opts.onRefused?.(reason),
    log,
    warn,
  );

  const router = createConnectRouter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: maxBytes,
    writeMaxBytes: maxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    interceptors: opts.interceptors,
  });
  consensusRoutes(opts.handlers, log, warn)(router);
  const byPath = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  function handler(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    const uHandler = byPath.get(req.url?.split("?", 1)[0] ?? "");
    if (uHandler === undefined) {
      // gRPC servers answer an unknown method with UNIMPLEMENTED (Connect's router alone gives 404).
      trailersOnly(res, Code.Unimplemented, `unknown method ${req.url ?? ""}`);
      return;
    }
    const call = admission.admitCall(req, res);
    if (call === undefined) return;
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    const limited: UniversalServerRequest = { ...uReq, body: admission.limitedBody(uReq.body as AsyncIterable<Uint8Array>, call) };
    uHandler(limited)
      .then((uRes) => universalResponseToNodeResponse(withTypedParseErrors(uRes), res))
      .catch((e) => log.debug("grpc call ended with a transport error", { method: uHandler.method.name, error: String(e) }));
  }

  // A larger per-stream window speeds up big uploads. Never setLocalWindowSize: it stalls uploads on Bun.
  const server = http2.createServer(
    { settings: { initialWindowSize: 1 << 20, maxConcurrentStreams: SERVER_DEFAULTS.maxStreamsPerConnection } },
    handler,
  );
  server.on("session", (s) => admission.admitSession(s));
  let boundPort = opts.port;
  let listening = false;

  return {
    get port() {
      return boundPort;
    },
    load: admission.load,
    limits: { calls: admission.limits.maxCalls, bytes: admission.limits.maxInflight, connections: admission.limits.maxConnections },

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
      await admission.closeSessions(graceMs);
      log.info("grpc server stopped", { port: boundPort });
    },
  };
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
