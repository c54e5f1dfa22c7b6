// gRPC clients for the sibling services on this node: the controller and the network service.
// Every call carries `client-name: consensus` (the siblings label their metrics with it) and a
// deadline; transport pings detect a hung peer even between calls.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Consensus2ControllerService } from "../../gen/controller_pb.ts";
import { NetworkService } from "../../gen/network_pb.ts";

export const CLIENT_NAME = "consensus";

export interface GrpcClientOptions {
  readonly port: number;
  /** Host of the sibling service; CITA-Cloud runs them all in one pod. */
  readonly host?: string;
  /** Deadline of each call unless the call sets its own `timeoutMs`. */
  readonly timeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly pingTimeoutMs?: number;
  /**
   * Largest message accepted or sent (`max_message_bytes`; a proposal can carry a large block). A
   * larger reply fails with RESOURCE_EXHAUSTED as soon as its frame header arrives, before its body
   * is buffered.
   */
  readonly readMaxBytes?: number;
}

export const CLIENT_DEFAULTS = {
  host: "localhost",
  timeoutMs: 10_000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 5_000,
  readMaxBytes: 16 << 20,
} as const;

/** A Connect client plus the means to drop its connection. */
export type ServiceClient<S extends DescService> = Client<S> & {
  /** `http://host:port`, for messages. */
  readonly target: string;
  /** Closes the connection; a later call reconnects. */
  close(): void;
};

const clientName: Interceptor = (next) => (req) => {
  req.header.set("client-name", CLIENT_NAME);
  return next(req);
};

export function baseUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function createServiceClient<S extends DescService>(service: S, opts: GrpcClientOptions): ServiceClient<S> {
  const o = { ...CLIENT_DEFAULTS, ...opts };
  const target = baseUrl(o.host, o.port);
  const sessionManager = new Http2SessionManager(target, {
    pingIntervalMs: o.pingIntervalMs,
    pingTimeoutMs: o.pingTimeoutMs,
  });
  const transport = createGrpcTransport({
    baseUrl: target,
    sessionManager,
    defaultTimeoutMs: o.timeoutMs,
    readMaxBytes: o.readMaxBytes,
    writeMaxBytes: o.readMaxBytes,
    interceptors: [clientName],
  });
  return Object.assign(createClient(service, transport), {
    target,
    close: () => sessionManager.abort(),
  });
}

export function createControllerClient(opts: GrpcClientOptions): ServiceClient<typeof Consensus2ControllerService> {
  return createServiceClient(Consensus2ControllerService, opts);
}

export function createNetworkClient(opts: GrpcClientOptions): ServiceClient<typeof NetworkService> {
  return createServiceClient(NetworkService, opts);
}
