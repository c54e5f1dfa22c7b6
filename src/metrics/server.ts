// The metrics port: GET /metrics (Prometheus text) and GET /status (this node's Raft state as
// JSON, what `consensus status` reads) on [::]:metrics_port. Other paths get the Rust service's
// hint, the list of metrics ports (404), other methods 405. The port is unauthenticated and read-only; what a caller can hold is bounded:
// at most MAX_CONNECTIONS open connections (more are closed at once) and an idle timeout, so
// a client that opens connections and never finishes its request cannot pile them up.
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { ConsolaInstance } from "consola";
import { describeListenError } from "../rpc/server.ts";
import type { ConsensusMetrics } from "./metrics.ts";

const HINT =
  "use /metrics or /status; default ports: /60000/metrics for network, /60001/metrics for consensus, /60002/metrics for executor, " +
  "/60003/metrics for storage, /60004/metrics for controller, /60005/metrics for crypto\n";

/** Open connections to the metrics port; Prometheus and a few `consensus status` need a handful. */
export const MAX_CONNECTIONS = 64;
/** A connection with no traffic for this long is closed (Prometheus scrapes every 15–60 s and reconnects). */
export const IDLE_TIMEOUT_MS = 90_000;

export interface MetricsServer {
  readonly port: number;
  /** Connections open now. */
  readonly connections: () => number;
  stop(): void;
}

export interface MetricsServerOptions {
  /** The body of GET /status, serialised as JSON. */
  status?: () => unknown;
  maxConnections?: number;
  idleTimeoutMs?: number;
}

function route(url: string | undefined): "/metrics" | "/status" | undefined {
  const path = url?.split("?", 1)[0];
  return path === "/metrics" || path === "/status" ? path : undefined;
}

export function startMetricsServer(
  metrics: ConsensusMetrics,
  port: number,
  host: string,
  log: ConsolaInstance,
  opts: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const open = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const path = route(req.url);
    if (path === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end(HINT);
      return;
    }
    if (req.method !== "GET") {
      res.writeHead(405, { "content-type": "text/plain", allow: "GET" }).end(`${path} answers GET only\n`);
      return;
    }
    if (path === "/status") {
      let body: string;
      try {
        body = `${JSON.stringify(opts.status?.() ?? null)}\n`;
      } catch (e) {
        res.writeHead(500, { "content-type": "text/plain" }).end(`status failed: ${e}\n`);
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(body);
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { "content-type": metrics.contentType }).end(body),
      (e) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${e}\n`),
    );
  });
  server.on("connection", (socket: Socket) => {
    if (open.size >= maxConnections) {
      socket.destroy();
      return;
    }
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    socket.setTimeout(idleMs, () => socket.destroy());
  });
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const why = describeListenError(e);
      reject(new Error(`cannot listen for metrics on ${address}: ${why}`));
    });
    server.listen(port, host, () => {
      const bound = (server.address() as AddressInfo).port;
      log.info("metrics on", { host, port: bound });
      resolve({
        port: bound,
        connections: () => open.size,
        stop: () => {
          server.close();
          server.closeAllConnections?.();
          for (const s of open) s.destroy();
        },
      });
    });
  });
}
