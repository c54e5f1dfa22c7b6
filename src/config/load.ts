// Loads the [consensus_raft] table of a TOML file into a validated, frozen Config. Keys, types and
// defaults are the Rust service's (consensus_raft 6.7.4); every key is optional. Bad values are
// rejected here, before anything starts, with one line naming the file and the key.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { ConfigError, describeFsError, describeValue } from "./errors.ts";
import { readNodeAddress } from "./node-address.ts";
import type { Config, LogLevel } from "./types.ts";

export const SECTION = "consensus_raft";

export const DEFAULT_METRICS_BUCKETS: readonly number[] = Object.freeze([
  0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0,
]);

export interface LoadedConfig {
  config: Config;
  /** Harmless problems (unknown keys) to log once a logger exists. */
  warnings: string[];
}

type Check<T> = (value: unknown) => T;

class BadValue extends Error {}

const MAX_PORT = 65535;
// setTimeout/setInterval treat delays above 2^31-1 ms as 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

function integer(min: number, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return (v) => {
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new BadValue(`expected an integer ${range}, got ${describeValue(v)}`);
  };
}

const port = integer(1, MAX_PORT);

const boolean: Check<boolean> = (v) => {
  if (typeof v === "boolean") return v;
  throw new BadValue(`expected true or false, got ${describeValue(v)}`);
};

const nonEmptyString: Check<string> = (v) => {
  if (typeof v === "string" && v !== "") return v;
  throw new BadValue(`expected a non-empty string, got ${describeValue(v)}`);
};

const LOG_LEVELS: Record<string, LogLevel> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "critical",
};

const logLevel: Check<LogLevel> = (v) => {
  const level = typeof v === "string" ? LOG_LEVELS[v.toLowerCase()] : undefined;
  if (level) return level;
  throw new BadValue(`expected one of trace, debug, info, warn (or warning), error, critical, got ${describeValue(v)}`);
};

const buckets: Check<readonly number[]> = (v) => {
  if (!Array.isArray(v) || v.length === 0) {
    throw new BadValue(`expected a non-empty array of increasing positive numbers, got ${describeValue(v)}`);
  }
  v.forEach((b, i) => {
    if (typeof b !== "number" || !Number.isFinite(b) || b <= 0) {
      throw new BadValue(`element ${i} must be a finite number > 0, got ${describeValue(b)}`);
    }
    if (i > 0 && b <= v[i - 1]) {
      throw new BadValue(`must be strictly increasing, but element ${i} (${b}) is not greater than element ${i - 1} (${v[i - 1]})`);
    }
  });
  return Object.freeze([...v]);
};

// An address to bind: an IP literal (IPv6 may be bracketed). Names, `localhost` included, are refused:
// binding one binds only the first address it resolves to (::1 or 127.0.0.1), which depends on the host.
const listenAddr: Check<string> = (v) => {
  if (typeof v === "string") {
    const bare = v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v;
    if (isIP(bare) !== 0) return bare;
  }
  throw new BadValue(`expected an IP address such as "::", "0.0.0.0", "127.0.0.1" or "::1", got ${describeValue(v)}`);
};

type Fields = Omit<Config, "nodeAddress" | "source">;

// TOML key → Config field, check and default. Order is the Rust service's documentation order.
const KEYS: { [K in keyof Fields]: [key: string, check: Check<Fields[K]>, fallback: Fields[K]] } = {
  // "" (absent) is reported as missing after the table is read.
  nodeAddrPath: ["node_addr", nonEmptyString, ""],
  grpcListenPort: ["grpc_listen_port", port, 50001],
  grpcListenAddr: ["grpc_listen_addr", listenAddr, "::"],
  networkPort: ["network_port", port, 50000],
  controllerPort: ["controller_port", port, 50004],
  logLevel: ["log_level", logLevel, "info"],
  logToStdout: ["log_to_stdout", boolean, false],
  logDir: ["log_dir", nonEmptyString, "logs"],
  logFileName: ["log_file_name", nonEmptyString, "consensus-service.log"],
  logRotateSize: ["log_rotate_size", integer(1), 128 * 1024 * 1024],
  logRotateKeep: ["log_rotate_keep", integer(0), 5],
  logRotateCompress: ["log_rotate_compress", boolean, false],
  tickIntervalInMillis: ["tick_interval_in_millis", integer(1, MAX_TIMER_MS), 200],
  heartbeatTick: ["heartbeat_tick", integer(1), 15],
  electionTick: ["election_tick", integer(1), 50],
  checkQuorum: ["check_quorum", boolean, false],
  preVote: ["pre_vote", boolean, true],
  raftDataPath: ["raft_data_path", nonEmptyString, "raft-data-dir"],
  enableMetrics: ["enable_metrics", boolean, true],
  metricsPort: ["metrics_port", port, 60001],
  metricsListenAddr: ["metrics_listen_addr", listenAddr, "::"],
  metricsBuckets: ["metrics_buckets", buckets, DEFAULT_METRICS_BUCKETS],
  // At most 2 GiB - 1: gRPC implementations (tonic, grpc-go, grpc-java) hold sizes in a signed 32-bit int.
  maxMessageBytes: ["max_message_bytes", integer(1024, 2 ** 31 - 1), 16 * 1024 * 1024],
  peerMsgsPerSecond: ["peer_msgs_per_second", integer(1, 1_000_000), 2000],
};

/** The TOML key names this loader understands, in documentation order. */
export const CONFIG_KEYS: readonly string[] = Object.values(KEYS).map(([key]) => key);

/**
 * Reads `path` (relative paths are relative to the CWD) and returns the validated Config.
 * Throws ConfigError with a one-line message for every problem that stops the service.
 */
export function loadConfig(path: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${path}: cannot read config file: ${describeFsError(err)}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (err) {
    const reason = (err as Error).message.replace(/^TOML Parse error:\s*/, "");
    throw new ConfigError(`${path}: invalid TOML: ${reason}`);
  }
  if (!(SECTION in doc)) throw new ConfigError(`${path}: missing [${SECTION}] table`);
  const table = doc[SECTION];
  if (table === null || typeof table !== "object" || Array.isArray(table)) {
    throw new ConfigError(`${path}: ${SECTION}: expected a table, got ${describeValue(table)}`);
  }
  return fromTable(table as Record<string, unknown>, path);
}

function fromTable(table: Record<string, unknown>, path: string): LoadedConfig {
  const where = (key: string) => `${path}: ${SECTION}.${key}`;
  const fields: Record<string, unknown> = {};
  for (const [field, [key, check, fallback]] of Object.entries(KEYS) as [string, [string, Check<unknown>, unknown]][]) {
    if (!(key in table)) {
      fields[field] = fallback;
      continue;
    }
    try {
      fields[field] = check(table[key]);
    } catch (err) {
      if (err instanceof BadValue) throw new ConfigError(`${where(key)}: ${err.message}`);
      throw err;
    }
  }
  const f = fields as unknown as Fields;

  if (f.electionTick <= f.heartbeatTick) {
    throw new ConfigError(
      `${where("election_tick")}: must be greater than heartbeat_tick (${f.heartbeatTick}), got ${f.electionTick}`,
    );
  }
  if (f.enableMetrics && f.metricsPort === f.grpcListenPort) {
    throw new ConfigError(`${where("metrics_port")}: must differ from grpc_listen_port (${f.grpcListenPort})`);
  }
  if (f.nodeAddrPath === "") {
    throw new ConfigError(`${where("node_addr")}: missing; set it to the path of the file holding this node's address`);
  }
  const nodeAddress = readNodeAddress(f.nodeAddrPath, where("node_addr"));

  const known = new Set(CONFIG_KEYS);
  const warnings = Object.keys(table)
    .filter((key) => !known.has(key))
    .map((key) => {
      const hint = closestKey(key);
      return `${where(key)}: unknown key, ignored${hint ? ` (did you mean ${hint}?)` : ""}`;
    });

  const config: Config = Object.freeze({ ...f, nodeAddress, source: path });
  return { config, warnings };
}

// A likely intended key for a typo: the known key within edit distance 2, if any.
function closestKey(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of CONFIG_KEYS) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}
