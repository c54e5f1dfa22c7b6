import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ConfigError } from "../../src/config/errors.ts";
import { DEFAULT_METRICS_BUCKETS, loadConfig } from "../../src/config/load.ts";

const ROOT = resolve(import.meta.dir, "../..");
const ADDRESS = "f805cf7df8dffc4fd9c98791d72d00c9587dc1d9";
const ADDRESS_BYTES = Uint8Array.fromHex(ADDRESS);

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A fresh directory holding `config.toml` with `body` and an address file `node_address`. */
function setup(body: string, address = ADDRESS): { dir: string; path: string; addrPath: string } {
  const dir = mkdtempSync(join(tmpdir(), "consensus-config-"));
  dirs.push(dir);
  const path = join(dir, "config.toml");
  const addrPath = join(dir, "node_address");
  writeFileSync(addrPath, address);
  writeFileSync(path, body.replaceAll("$ADDR", JSON.stringify(addrPath)));
  return { dir, path, addrPath };
}

function withCwd<T>(dir: string, fn: () => T): T {
  const old = process.cwd();
  process.chdir(dir);
  try {
    return fn();
  } finally {
    process.chdir(old);
  }
}

function loadError(path: string): string {
  try {
    loadConfig(path);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected loadConfig to throw");
}

const DEFAULTS = {
  grpcListenPort: 50001,
  grpcListenAddr: "::",
  networkPort: 50000,
  controllerPort: 50004,
  logLevel: "info" as const,
  logToStdout: false,
  logDir: "logs",
  logFileName: "consensus-service.log",
  logRotateSize: 134217728,
  logRotateKeep: 5,
  logRotateCompress: false,
  tickIntervalInMillis: 200,
  heartbeatTick: 15,
  electionTick: 50,
  checkQuorum: false,
  preVote: true,
  raftDataPath: "raft-data-dir",
  enableMetrics: true,
  metricsPort: 60001,
  metricsListenAddr: "::",
  metricsBuckets: [0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0],
  maxMessageBytes: 16777216,
  peerMsgsPerSecond: 2000,
};

describe("loadConfig: values", () => {
  test("the Rust service's example/config.toml loads with the node address file beside it", () => {
    const { config, warnings } = withCwd(ROOT, () => loadConfig("example/config.toml"));
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      ...DEFAULTS,
      nodeAddrPath: "example/node_address",
      nodeAddress: ADDRESS_BYTES,
      source: "example/config.toml",
    });
  });

  test("every key is optional except node_addr, with the Rust service's defaults", () => {
    const { path, addrPath } = setup("[consensus_raft]\nnode_addr = $ADDR\n");
    const { config, warnings } = loadConfig(path);
    expect(warnings).toEqual([]);
    expect(config).toEqual({ ...DEFAULTS, nodeAddrPath: addrPath, nodeAddress: ADDRESS_BYTES, source: path });
    expect(DEFAULT_METRICS_BUCKETS).toEqual(DEFAULTS.metricsBuckets);
  });

  test("every key is read into its field", () => {
    const { path, addrPath } = setup(`
      [other_service]
      grpc_listen_port = "not ours, not checked"
      [consensus_raft]
      node_addr = $ADDR
      grpc_listen_port = 1
      network_port = 65535
      controller_port = 40004
      log_level = "debug"
      log_to_stdout = true
      log_dir = "/var/log/c"
      log_file_name = "c.log"
      log_rotate_size = 1
      log_rotate_keep = 0
      log_rotate_compress = true
      tick_interval_in_millis = 1
      heartbeat_tick = 1
      election_tick = 2
      check_quorum = true
      pre_vote = false
      raft_data_path = "/data/raft"
      enable_metrics = false
      metrics_port = 1
      metrics_buckets = [1, 2.5, 1e3]
      grpc_listen_addr = "127.0.0.1"
      metrics_listen_addr = "[::1]"
      max_message_bytes = 1024
      peer_msgs_per_second = 7
    `);
    const { config, warnings } = loadConfig(path);
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      nodeAddrPath: addrPath,
      nodeAddress: ADDRESS_BYTES,
      grpcListenPort: 1,
      grpcListenAddr: "127.0.0.1",
      networkPort: 65535,
      controllerPort: 40004,
      logLevel: "debug" as const,
      logToStdout: true,
      logDir: "/var/log/c",
      logFileName: "c.log",
      logRotateSize: 1,
      logRotateKeep: 0,
      logRotateCompress: true,
      tickIntervalInMillis: 1,
      heartbeatTick: 1,
      electionTick: 2,
      checkQuorum: true,
      preVote: false,
      raftDataPath: "/data/raft",
      enableMetrics: false,
      metricsPort: 1,
      metricsListenAddr: "::1",
      metricsBuckets: [1, 2.5, 1000],
      maxMessageBytes: 1024,
      peerMsgsPerSecond: 7,
      source: path,
    });
  });

  test("the result is frozen", () => {
    const { config } = loadConfig(setup("[consensus_raft]\nnode_addr = $ADDR\n").path);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.metricsBuckets)).toBe(true);
  });

  test.each([
    ["trace", "trace"],
    ["debug", "debug"],
    ["info", "info"],
    ["warning", "warn"],
    ["warn", "warn"],
    ["WARN", "warn"],
    ["Error", "error"],
    ["critical", "critical"],
  ])("log_level %p is accepted as %p", (given, level) => {
    const { config } = loadConfig(setup(`[consensus_raft]\nnode_addr = $ADDR\nlog_level = "${given}"\n`).path);
    expect(config.logLevel as string).toBe(level);
  });

  test("metrics_port may equal grpc_listen_port when metrics are disabled", () => {
    const { path } = setup("[consensus_raft]\nnode_addr = $ADDR\nenable_metrics = false\nmetrics_port = 50001\n");
    expect(loadConfig(path).config.metricsPort).toBe(50001);
  });

  test("unknown keys are warnings naming file and key, with a suggestion for typos", () => {
    const { path } = setup("[consensus_raft]\nnode_addr = $ADDR\ngrpc_listen_prot = 1\nbananas = 2\n");
    const { config, warnings } = loadConfig(path);
    expect(config.grpcListenPort).toBe(50001);
    expect(warnings).toEqual([
      `${path}: consensus_raft.grpc_listen_prot: unknown key, ignored (did you mean grpc_listen_port?)`,
      `${path}: consensus_raft.bananas: unknown key, ignored`,
    ]);
  });
});

describe("loadConfig: errors name the file and the key", () => {
  const cases: [string, string][] = [
    [`grpc_listen_port = "abc"`, `grpc_listen_port: expected an integer in 1..65535, got "abc"`],
    [`grpc_listen_port = 0`, `grpc_listen_port: expected an integer in 1..65535, got 0`],
    [`network_port = 65536`, `network_port: expected an integer in 1..65535, got 65536`],
    [`controller_port = 1.5`, `controller_port: expected an integer in 1..65535, got 1.5`],
    [`metrics_port = -1`, `metrics_port: expected an integer in 1..65535, got -1`],
    [`metrics_port = 50001`, `metrics_port: must differ from grpc_listen_port (50001)`],
    [`heartbeat_tick = 0`, `heartbeat_tick: expected an integer >= 1, got 0`],
    [`election_tick = 15`, `election_tick: must be greater than heartbeat_tick (15), got 15`],
    [`heartbeat_tick = 60`, `election_tick: must be greater than heartbeat_tick (60), got 50`],
    [`tick_interval_in_millis = 0`, `tick_interval_in_millis: expected an integer in 1..2147483647, got 0`],
    [`tick_interval_in_millis = 2147483648`, `tick_interval_in_millis: expected an integer in 1..2147483647, got 2147483648`],
    [`log_rotate_size = 0`, `log_rotate_size: expected an integer >= 1, got 0`],
    [`log_rotate_keep = -1`, `log_rotate_keep: expected an integer >= 0, got -1`],
    [`log_rotate_compress = "yes"`, `log_rotate_compress: expected true or false, got "yes"`],
    [`log_to_stdout = 1`, `log_to_stdout: expected true or false, got 1`],
    [`check_quorum = []`, `check_quorum: expected true or false, got an empty array`],
    [`enable_metrics = { a = 1 }`, `enable_metrics: expected true or false, got a table`],
    [`log_dir = ""`, `log_dir: expected a non-empty string, got ""`],
    [`log_file_name = 7`, `log_file_name: expected a non-empty string, got 7`],
    [`raft_data_path = true`, `raft_data_path: expected a non-empty string, got true`],
    [`log_level = "verbose"`, `log_level: expected one of trace, debug, info, warn (or warning), error, critical, got "verbose"`],
    [`log_level = 3`, `log_level: expected one of trace, debug, info, warn (or warning), error, critical, got 3`],
    [`metrics_buckets = []`, `metrics_buckets: expected a non-empty array of increasing positive numbers, got an empty array`],
    [`metrics_buckets = 5`, `metrics_buckets: expected a non-empty array of increasing positive numbers, got 5`],
    [`metrics_buckets = [1, "2"]`, `metrics_buckets: element 1 must be a finite number > 0, got "2"`],
    [`metrics_buckets = [1, inf]`, `metrics_buckets: element 1 must be a finite number > 0, got Infinity`],
    [`metrics_buckets = [nan]`, `metrics_buckets: element 0 must be a finite number > 0, got NaN`],
    [`metrics_buckets = [0, 1]`, `metrics_buckets: element 0 must be a finite number > 0, got 0`],
    [`metrics_buckets = [1, 2, 2]`, `metrics_buckets: must be strictly increasing, but element 2 (2) is not greater than element 1 (2)`],
    [`metrics_buckets = [5, 1]`, `metrics_buckets: must be strictly increasing, but element 1 (1) is not greater than element 0 (5)`],
    [`node_addr = 5`, `node_addr: expected a non-empty string, got 5`],
    [`grpc_listen_addr = "example.com"`, `grpc_listen_addr: expected an IP address such as "::", "0.0.0.0", "127.0.0.1" or "::1", got "example.com"`],
    [`grpc_listen_addr = ""`, `grpc_listen_addr: expected an IP address such as "::", "0.0.0.0", "127.0.0.1" or "::1", got ""`],
    [`metrics_listen_addr = "1.2.3.4:80"`, `metrics_listen_addr: expected an IP address such as "::", "0.0.0.0", "127.0.0.1" or "::1", got "1.2.3.4:80"`],
    [`metrics_listen_addr = 0`, `metrics_listen_addr: expected an IP address such as "::", "0.0.0.0", "127.0.0.1" or "::1", got 0`],
    [`max_message_bytes = 1023`, `max_message_bytes: expected an integer in 1024..2147483647, got 1023`],
    [`max_message_bytes = 2147483648`, `max_message_bytes: expected an integer in 1024..2147483647, got 2147483648`],
    [`peer_msgs_per_second = 0`, `peer_msgs_per_second: expected an integer in 1..1000000, got 0`],
  ];
  test.each(cases)("%s", (line, expected) => {
    const key = line.split(" ")[0];
    const body = key === "node_addr" ? `[consensus_raft]\n${line}\n` : `[consensus_raft]\nnode_addr = $ADDR\n${line}\n`;
    const { path } = setup(body);
    expect(loadError(path)).toBe(`${path}: consensus_raft.${expected}`);
  });

  test("missing node_addr", () => {
    const { path } = setup("[consensus_raft]\ngrpc_listen_port = 50001\n");
    expect(loadError(path)).toBe(
      `${path}: consensus_raft.node_addr: missing; set it to the path of the file holding this node's address`,
    );
  });

  test("missing config file", () => {
    const dir = setup("").dir;
    const path = join(dir, "absent.toml");
    expect(loadError(path)).toBe(`${path}: cannot read config file: no such file`);
  });

  test("config path is a directory", () => {
    const { dir } = setup("");
    expect(loadError(dir)).toBe(`${dir}: cannot read config file: is a directory, not a file`);
  });

  test("invalid TOML", () => {
    const { path } = setup("[consensus_raft]\nnode_addr = 'unterminated\n");
    expect(loadError(path)).toBe(`${path}: invalid TOML: Unterminated string; literal strings cannot contain newlines`);
  });

  test("duplicate key is invalid TOML", () => {
    const { path } = setup("[consensus_raft]\nnode_addr = $ADDR\nnode_addr = $ADDR\n");
    expect(loadError(path)).toStartWith(`${path}: invalid TOML: `);
  });

  test("missing [consensus_raft] table", () => {
    const { path } = setup("[controller]\nport = 1\n");
    expect(loadError(path)).toBe(`${path}: missing [consensus_raft] table`);
  });

  test("consensus_raft that is not a table", () => {
    expect(loadError(setup("consensus_raft = 5\n").path)).toEndWith(": consensus_raft: expected a table, got 5");
    expect(loadError(setup("[[consensus_raft]]\nnode_addr = $ADDR\n").path)).toEndWith(
      ": consensus_raft: expected a table, got an array",
    );
  });
});

describe("node_addr file", () => {
  test.each([
    ["bare hex, no newline", ADDRESS],
    ["0x prefix", `0x${ADDRESS}`],
    ["0X prefix", `0X${ADDRESS}`],
    ["upper-case digits", ADDRESS.toUpperCase()],
    ["trailing newline", `${ADDRESS}\n`],
    ["CRLF and surrounding blanks", `  \t0x${ADDRESS}\r\n\n`],
  ])("accepts %s", (_name, content) => {
    const { path } = setup("[consensus_raft]\nnode_addr = $ADDR\n", content);
    expect(loadConfig(path).config.nodeAddress).toEqual(ADDRESS_BYTES);
  });

  test.each([
    ["empty", "", "is empty; expected 40 hex digits (20 bytes)"],
    ["only whitespace", " \n", "is empty; expected 40 hex digits (20 bytes)"],
    ["too short", ADDRESS.slice(1), "expected 40 hex digits (20 bytes), got 39"],
    ["too long", `${ADDRESS}00`, "expected 40 hex digits (20 bytes), got 42"],
    ["prefix only", "0x", "expected 40 hex digits (20 bytes), got 0"],
    ["non-hex digit", `g${ADDRESS.slice(1)}`, 'expected 40 hex digits (20 bytes), found "g" at position 1'],
    ["inner space", `${ADDRESS.slice(0, 20)} ${ADDRESS.slice(20)}`, 'expected 40 hex digits (20 bytes), found " " at position 21'],
    ["two lines", `${ADDRESS}\n${ADDRESS}`, 'expected 40 hex digits (20 bytes), found "\\n" at position 41'],
  ])("rejects %s", (_name, content, reason) => {
    const { path, addrPath } = setup("[consensus_raft]\nnode_addr = $ADDR\n", content);
    expect(loadError(path)).toBe(`${path}: consensus_raft.node_addr: address file ${JSON.stringify(addrPath)}: ${reason}`);
  });

  test("missing address file", () => {
    const { path, dir } = setup(`[consensus_raft]\nnode_addr = "nowhere"\n`);
    expect(withCwd(dir, () => loadError(path))).toBe(
      `${path}: consensus_raft.node_addr: cannot read address file "nowhere": no such file`,
    );
  });

  test("address path is a directory", () => {
    const { path, dir } = setup(`[consensus_raft]\nnode_addr = "sub"\n`);
    mkdirSync(join(dir, "sub"));
    expect(withCwd(dir, () => loadError(path))).toBe(
      `${path}: consensus_raft.node_addr: cannot read address file "sub": is a directory, not a file`,
    );
  });

  test("a relative node_addr is relative to the working directory, not to the config file", () => {
    const { path, dir } = setup(`[consensus_raft]\nnode_addr = "node_address"\n`);
    expect(withCwd(dir, () => loadConfig(path).config.nodeAddress)).toEqual(ADDRESS_BYTES);
    const elsewhere = setup("", "00".repeat(20)).dir;
    expect(withCwd(elsewhere, () => loadConfig(path).config.nodeAddress)).toEqual(new Uint8Array(20));
  });
});
