// A complete Config for starting the service in-process (the Rust service's defaults, ports from the test).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
    preVote: true,
    // Never the working directory: each service under test gets its own data dir.
    raftDataPath: over.raftDataPath ?? mkdtempSync(join(tmpdir(), "consensus-raft-")),
    enableMetrics: false,
    metricsPort: 60001,
    metricsBuckets: [0.25, 0.5, 1],
    grpcListenAddr: "::",
    metricsListenAddr: "::",
    maxMessageBytes: 16 << 20,
    peerMsgsPerSecond: 2000,
    source: "test",
    ...over,
  };
}
