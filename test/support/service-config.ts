// A complete Config for starting the service in-process (defaults of the seed, ports from the test).
import type { Config } from "../../src/config/types.ts";

export function serviceConfig(over: Partial<Config> & Pick<Config, "grpcListenPort" | "networkPort">): Config {
  return {
    nodeAddrPath: "node_address",
    nodeAddress: Uint8Array.from(Buffer.from("0000000000000000000000000000000000000000", "hex")),
    controllerPort: 50004,
    logLevel: "info",
    logToStdout: true,
    logDir: "logs",
    logFileName: "consensus-service.log",
    logRotateSize: 128 << 20,
    logRotateKeep: 5,
    logRotateCompress: false,
    tickIntervalInMillis: 200,
    heartbeatTick: 15,
    electionTick: 50,
    checkQuorum: false,
    raftDataPath: "raft-data-dir",
    enableMetrics: false,
    metricsPort: 60001,
    metricsBuckets: [0.25, 0.5, 1],
    source: "test",
    ...over,
  };
}
