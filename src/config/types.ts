// The validated, frozen configuration of the service: the Rust service's [consensus_raft] keys (same
// names in camelCase, same defaults) plus our additions. Loading and validation live in load.ts.

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "critical";

export interface Config {
  /** Path of the file holding this node's 20-byte address in hex (the Rust service's `node_addr`). */
  readonly nodeAddrPath: string;
  /** The 20 raw address bytes read from `nodeAddrPath`. */
  readonly nodeAddress: Uint8Array;
  readonly grpcListenPort: number;
  /** Our addition: the address the gRPC server binds (`::` as in the Rust service: every interface). */
  readonly grpcListenAddr: string;
  readonly networkPort: number;
  readonly controllerPort: number;
  readonly logLevel: LogLevel;
  readonly logToStdout: boolean;
  readonly logDir: string;
  readonly logFileName: string;
  readonly logRotateSize: number;
  readonly logRotateKeep: number;
  readonly logRotateCompress: boolean;
  readonly tickIntervalInMillis: number;
  readonly heartbeatTick: number;
  readonly electionTick: number;
  readonly checkQuorum: boolean;
  /** Our addition: a pre-vote round before a real election (a rejoining node cannot disrupt). */
  readonly preVote: boolean;
  readonly raftDataPath: string;
  readonly enableMetrics: boolean;
  readonly metricsPort: number;
  /** Our addition: the address the metrics server binds (`::` by default). */
  readonly metricsListenAddr: string;
  readonly metricsBuckets: readonly number[];
  /** Our addition: largest gRPC message served or accepted from the controller and network, in bytes. */
  readonly maxMessageBytes: number;
  /** Our addition: inbound peer messages per second admitted from one trusted origin (others get less). */
  readonly peerMsgsPerSecond: number;
  /** Absolute or relative path of the TOML file this came from (for messages). */
  readonly source: string;
}
