// The chain harness: N node identities and ports, a work dir with each node's config.toml and
// address file, the controller emulators and the network fabric running in this process, and the
// `consensus` processes spawned from a given command. End-to-end tests and `consensus demo` use it.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { ConsolaInstance } from "consola";
import { ControllerEmulator, ControllerGroup, type ConfigChange, type ControllerOptions } from "./controller.ts";
import { freePorts } from "./grpc.ts";
import { deriveAddress, originOf, toHex } from "./identity.ts";
import { silentLogger } from "./log.ts";
import { NetworkFabric, type NetworkEndpoint, type NetworkOptions } from "./network.ts";
import { waitFor } from "./wait.ts";

export interface RaftTuning {
  readonly tickIntervalInMillis: number;
  readonly heartbeatTick: number;
  readonly electionTick: number;
}

/**
 * Fast but not twitchy on a loaded 2-core machine: heartbeats every 200 ms, elections after 1-2 s.
 * (The network emulator delivers roughly 700-1300 messages/s here; 5 nodes heartbeating every
 * 100 ms would already spend a third of that.)
 */
export const FAST_RAFT: RaftTuning = { tickIntervalInMillis: 50, heartbeatTick: 4, electionTick: 20 };

type TomlValue = string | number | boolean | readonly number[];

export interface DevChainOptions {
  readonly nodes: number;
  /** Addresses (and so Raft ids and origins) derive from it. */
  readonly seed?: string | number;
  /** Created with mkdtemp when absent (and then removed by close()). */
  readonly workDir?: string;
  /** Indexes of the genesis validators; all nodes by default. */
  readonly validators?: readonly number[];
  /** Genesis block interval in seconds. */
  readonly blockInterval?: number;
  /** argv prefix of a consensus process, e.g. `["dist/consensus"]`; `run -c config.toml --stdout` is appended. */
  readonly consensusCommand?: readonly string[];
  readonly raft?: Partial<RaftTuning>;
  readonly logLevel?: string;
  /** More `[consensus_raft]` keys, written verbatim (they win over the harness' own). */
  readonly extraConfig?: Readonly<Record<string, TomlValue>>;
  readonly controller?: Pick<
    ControllerOptions,
    "retryIntervalMs" | "serveBeforeReconfigure" | "syncCheckIntervalMs" | "growthCheckIntervalMs" | "callTimeoutMs" | "txsPerProposal"
  >;
  readonly network?: NetworkOptions;
  /** Start the controller emulators in create() (default true). */
  readonly startControllers?: boolean;
  readonly keepWorkDir?: boolean;
  readonly log?: ConsolaInstance;
  /** Environment variables added to every consensus process's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface DevNode {
  readonly index: number;
  readonly name: string;
  readonly address: Uint8Array;
  readonly addressHex: string;
  readonly origin: bigint;
  /** Working directory of its consensus process; holds config.toml, node_address, consensus.log. */
  readonly dir: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly ports: { readonly grpc: number; readonly controller: number; readonly network: number; readonly metrics: number };
  readonly controller: ControllerEmulator;
  readonly network: NetworkEndpoint;
}

export interface ProcessExit {
  readonly node: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** False when the harness asked for it (stop/kill). */
  readonly unexpected: boolean;
}

export interface ForkConflict {
  readonly height: number;
  /** Controller name → block hash (hex). */
  readonly hashes: Record<string, string>;
}

/** Heights at which controllers hold different blocks (compared wherever two or more have the height). */
export function findForks(controllers: readonly ControllerEmulator[]): ForkConflict[] {
  const conflicts: ForkConflict[] = [];
  const top = Math.max(0, ...controllers.map((c) => c.height));
  for (let h = 0; h <= top; h++) {
    const hashes: Record<string, string> = {};
    for (const c of controllers) {
      const b = c.block(h);
      if (b) hashes[c.name] = toHex(b.hash);
    }
    if (new Set(Object.values(hashes)).size > 1) conflicts.push({ height: h, hashes });
  }
  return conflicts;
}

function tomlValue(v: TomlValue): string {
  if (typeof v === "string") return JSON.stringify(v); // JSON escapes are valid TOML basic-string escapes
  if (Array.isArray(v)) return `[${v.map(String).join(", ")}]`;
  return String(v);
}

export class DevChain {
  readonly workDir: string;
  readonly nodes: readonly DevNode[];
  readonly group: ControllerGroup;
  readonly fabric: NetworkFabric;
  readonly exits: ProcessExit[] = [];
  private readonly opts: DevChainOptions;
  private readonly ownsWorkDir: boolean;
  private readonly processes = new Map<number, { proc: Subprocess; expected: boolean }>();

  private constructor(opts: DevChainOptions, workDir: string, ownsWorkDir: boolean, nodes: DevNode[], group: ControllerGroup, fabric: NetworkFabric) {
    this.opts = opts;
    this.workDir = workDir;
    this.ownsWorkDir = ownsWorkDir;
    this.nodes = nodes;
    this.group = group;
    this.fabric = fabric;
  }

  static async create(opts: DevChainOptions): Promise<DevChain> {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new Error(`a devchain needs at least 1 node, got ${opts.nodes}`);
    const seed = opts.seed ?? "devchain";
    const validators = opts.validators ?? [...Array(opts.nodes).keys()];
    for (const v of validators) {
      if (!Number.isInteger(v) || v < 0 || v >= opts.nodes) throw new Error(`validator index ${v} is not a node of this ${opts.nodes}-node chain`);
    }
    if (validators.length === 0) throw new Error("a devchain needs at least one validator");
    const log = opts.log ?? silentLogger();
    const ownsWorkDir = opts.workDir === undefined;
    const workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), "devchain-"));
    const addresses = Array.from({ length: opts.nodes }, (_, i) => deriveAddress(seed, i));
    const origins = new Set(addresses.map(originOf));
    if (origins.size !== addresses.length) throw new Error(`seed ${seed} gives two nodes the same origin; pick another seed`);

    const ports = await freePorts(4 * opts.nodes);
    const group = new ControllerGroup();
    const fabric = new NetworkFabric({ log, ...opts.network });
    const genesis = { blockInterval: opts.blockInterval ?? 1, validators: validators.map((v) => addresses[v]) };
    const raft = { ...FAST_RAFT, ...opts.raft };
    const nodes: DevNode[] = [];
    try {
      for (let i = 0; i < opts.nodes; i++) {
        const name = `node${i}`;
        const dir = join(workDir, name);
        const p = { grpc: ports[4 * i], controller: ports[4 * i + 1], network: ports[4 * i + 2], metrics: ports[4 * i + 3] };
        mkdirSync(dir, { recursive: true });
        // As cloud-config writes it: hex without 0x and without a trailing newline.
        writeFileSync(join(dir, "node_address"), toHex(addresses[i]));
        const keys: Record<string, TomlValue> = {
          node_addr: "node_address",
          grpc_listen_port: p.grpc,
          network_port: p.network,
          controller_port: p.controller,
          metrics_port: p.metrics,
          enable_metrics: true,
          log_level: opts.logLevel ?? "info",
          tick_interval_in_millis: raft.tickIntervalInMillis,
          heartbeat_tick: raft.heartbeatTick,
          election_tick: raft.electionTick,
          raft_data_path: "raft-data-dir",
          ...opts.extraConfig,
        };
        const toml = Object.entries(keys).map(([k, v]) => `${k} = ${tomlValue(v)}`).join("\n");
        const configPath = join(dir, "config.toml");
        writeFileSync(configPath, `# written by the devchain harness\n[consensus_raft]\n${toml}\n`);
        const network = await fabric.addNode({ name, address: addresses[i], consensusPort: p.grpc, port: p.network });
        const controller = new ControllerEmulator({
          ...opts.controller,
          name: `controller${i}`,
          address: addresses[i],
          consensusPort: p.grpc,
          port: p.controller,
          genesis,
          group,
          log,
        });
        nodes.push({
          index: i,
          name,
          address: addresses[i],
          addressHex: toHex(addresses[i]),
          origin: originOf(addresses[i]),
          dir,
          configPath,
          logPath: join(dir, "consensus.log"),
          ports: p,
          controller,
          network,
        });
      }
      if (opts.startControllers !== false) for (const n of nodes) await n.controller.start();
    } catch (e) {
      for (const n of nodes) n.controller.close();
      await fabric.close();
      if (ownsWorkDir) rmSync(workDir, { recursive: true, force: true });
      throw e;
    }
    return new DevChain(opts, workDir, ownsWorkDir, nodes, group, fabric);
  }

  node(i: number): DevNode {
    const n = this.nodes[i];
    if (!n) throw new Error(`no node ${i} in this ${this.nodes.length}-node chain`);
    return n;
  }

  get controllers(): ControllerEmulator[] {
    return this.nodes.map((n) => n.controller);
  }

  // ---- consensus processes ----

  /** Spawns node i's consensus in its directory; output is appended to its consensus.log. */
  startConsensus(i: number, extraArgs: readonly string[] = []): Subprocess {
    const cmd = this.opts.consensusCommand;
    if (!cmd || cmd.length === 0) throw new Error("this devchain has no consensusCommand to start consensus processes with");
    const node = this.node(i);
    if (this.processes.has(i)) throw new Error(`${node.name}: consensus is already running`);
    const out = openSync(node.logPath, "a");
    try {
      const proc = Bun.spawn([...cmd, "run", "-c", "config.toml", "--stdout", ...extraArgs], {
        cwd: node.dir,
        env: { ...process.env, ...this.opts.env },
        stdin: "ignore",
        stdout: out,
        stderr: out,
      });
      const entry = { proc, expected: false };
      this.processes.set(i, entry);
      void proc.exited.then((code) => {
        if (this.processes.get(i) === entry) this.processes.delete(i);
        const signal = proc.signalCode ? String(proc.signalCode) : null;
        this.exits.push({ node: i, code: signal ? null : code, signal, unexpected: !entry.expected });
      });
      return proc;
    } finally {
      closeSync(out); // the child holds its own copy
    }
  }

  isConsensusRunning(i: number): boolean {
    return this.processes.has(i);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Resolves with the exit code (null if killed). */
  async stopConsensus(i: number, graceMs = 10_000): Promise<number | null> {
    const entry = this.processes.get(i);
    if (!entry) return null;
    entry.expected = true;
    entry.proc.kill("SIGTERM");
    const timer = setTimeout(() => entry.proc.kill("SIGKILL"), graceMs);
    const code = await entry.proc.exited;
    clearTimeout(timer);
    return entry.proc.signalCode ? null : code;
  }

  /** SIGKILL: a crash, nothing flushed that was not already durable. */
  async killConsensus(i: number): Promise<void> {
    const entry = this.processes.get(i);
    if (!entry) return;
    entry.expected = true;
    entry.proc.kill("SIGKILL");
    await entry.proc.exited;
  }

  async restartConsensus(i: number, opts: { kill?: boolean } = {}): Promise<Subprocess> {
    if (opts.kill) await this.killConsensus(i);
    else await this.stopConsensus(i);
    return this.startConsensus(i);
  }

  /** What `cloud-op rollback --clean` does: remove the Raft data dir (consensus must be stopped). */
  wipeConsensusData(i: number): void {
    const node = this.node(i);
    if (this.processes.has(i)) throw new Error(`${node.name}: stop consensus before wiping its data`);
    rmSync(join(node.dir, "raft-data-dir"), { recursive: true, force: true });
  }

  // ---- chain state ----

  heights(): number[] {
    return this.nodes.map((n) => n.controller.height);
  }

  /** Waits until every node in `which` (all by default) has committed `height`. */
  async waitForHeight(height: number, timeoutMs: number, which: readonly number[] = this.nodes.map((n) => n.index)): Promise<void> {
    await waitFor(
      () => which.every((i) => this.node(i).controller.height >= height),
      timeoutMs,
      `height ${height} on nodes ${which.join(",")} (now ${which.map((i) => this.node(i).controller.height).join(",")})`,
    );
  }

  forkCheck(): ForkConflict[] {
    return findForks(this.controllers);
  }

  assertNoFork(): void {
    const forks = this.forkCheck();
    if (forks.length > 0) {
      const first = forks[0];
      throw new Error(`fork at ${forks.length} height(s), first at ${first.height}: ${JSON.stringify(first.hashes)}`);
    }
  }

  /** Schedules an admin config change on every controller; returns the height it takes effect at. */
  scheduleConfigChange(change: ConfigChange): number {
    return this.group.scheduleConfigChange(change);
  }

  setValidators(indexes: readonly number[], atHeight = 0): number {
    return this.scheduleConfigChange({ atHeight, validators: indexes.map((i) => this.node(i).address) });
  }

  setBlockInterval(seconds: number, atHeight = 0): number {
    return this.scheduleConfigChange({ atHeight, blockInterval: seconds });
  }

  /** Stops every process (SIGKILL after a short grace), controller and network endpoint. */
  async close(): Promise<void> {
    await Promise.all([...this.processes.keys()].map((i) => this.stopConsensus(i, 3000)));
    for (const n of this.nodes) n.controller.close();
    await this.fabric.close();
    if (this.ownsWorkDir && !this.opts.keepWorkDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}
