// Minimal gRPC plumbing for the emulators: an h2c Connect server that can be closed abruptly
// (to play a killed service) and re-opened on the same port, and clients that carry the
// `client-name` metadata every CITA-Cloud service sends.
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient, type Client, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";

const MAX_MESSAGE_BYTES = 64 << 20;

export interface GrpcServer {
  readonly port: number;
  /** Stops listening and cuts every open connection: in-flight calls fail at the client. */
  close(): void;
}

/** Serves `routes` on `[::]:port` (dual stack, like the real services); port 0 picks a free one. */
export async function listenGrpc(routes: (router: ConnectRouter) => void, port = 0): Promise<GrpcServer> {
  const handler = connectNodeAdapter({
    routes,
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
  });
  const server = http2.createServer({ settings: { initialWindowSize: 1 << 20 } }, handler);
  const sockets = new Set<net.Socket>();
  server.on("connection", (sock: net.Socket) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  server.on("session", (s) => s.on("error", () => {})); // a client that vanishes must not crash us
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "::", () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", () => {});
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      // server.close() alone waits for idle sessions (possibly forever). Cut the sockets, without
      // a GOAWAY, the way a dying process does.
      for (const sock of sockets) sock.destroy();
      sockets.clear();
      server.close();
    },
  };
}

/** A client of `service` on localhost:`port` whose calls carry `client-name: <clientName>`. */
export function grpcClient<T extends DescService>(
  service: T,
  port: number,
  clientName: string,
  timeoutMs: number,
): Client<T> {
  const nameHeader: Interceptor = (next) => (req) => {
    req.header.set("client-name", clientName);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: `http://localhost:${port}`,
    defaultTimeoutMs: timeoutMs,
    interceptors: [nameHeader],
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
  });
  return createClient(service, transport);
}

// The codes cloud-common-rs' RetryClient retries, plus Canceled: that is what a Connect client
// sees when the peer dies in the middle of a call (where tonic would see Unavailable).
const RETRYABLE = new Set([
  Code.DataLoss,
  Code.Internal,
  Code.Unknown,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.OutOfRange,
  Code.Unavailable,
  Code.Canceled,
]);

export function isRetryable(err: unknown): boolean {
  return RETRYABLE.has(ConnectError.from(err).code);
}

/** Picks `count` distinct free TCP ports (all held open together so none repeats). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(0, "::", () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    for (const s of servers) s.close();
  }
}
