// The Prometheus endpoint: GET /metrics on [::]:metrics_port; anything else gets the seed's hint.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { ConsolaInstance } from "consola";
import { describeListenError } from "../rpc/server.ts";
import type { ConsensusMetrics } from "./metrics.ts";

const HINT =
  "use /metrics; default ports: /60000/metrics for network, /60001/metrics for consensus, /60002/metrics for executor, " +
  "/60003/metrics for storage, /60004/metrics for controller, /60005/metrics for crypto\n";

export interface MetricsServer {
  readonly port: number;
  stop(): void;
}

export function startMetricsServer(metrics: ConsensusMetrics, port: number, host: string, log: ConsolaInstance): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && (req.url === "/metrics" || req.url?.startsWith("/metrics?"))) {
      metrics.text().then(
        (body) => res.writeHead(200, { "content-type": metrics.contentType }).end(body),
        (e) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${e}\n`),
      );
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end(HINT);
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
        stop: () => {
          server.close();
          server.closeAllConnections?.();
        },
      });
    });
  });
}
