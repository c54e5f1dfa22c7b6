// The chain simulator: N real ConsensusNodes (RaftPeer, Committer, Proposer, Supervisor,
// membership, transport, registration) on one simulated clock, each with SqliteStorage in its own
// tmpfs dir, next to the devchain's controller and network emulators on simulated edges. One seed
// decides everything. A run is rounds of faults (the nemesis on for a drawn stretch of simulated
// time), each followed by a calm period (faults stop: network healed, every process and controller
// up and answering) in which every validator's controller must grow by 3 blocks within a bound;
// `steps` counts the steps under faults. Every invariant is checked after every step. A step is
// one timer of the simulated clock with everything it caused.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConsolaInstance, createConsola, type LogObject } from "consola/core";
import type { Config } from "../../../src/config/types.ts";
import { ControllerEmulator, ControllerGroup, GROWTH_CHECK_INTERVAL_MS } from "../../../src/devchain/controller.ts";
import { deriveAddress, originOf } from "../../../src/devchain/identity.ts";
import { NetworkFabric } from "../../../src/devchain/network.ts";
import type { NodeTestBug } from "../../../src/node/test-bugs.ts";
import { peerIdFromAddress } from "../../../src/peer/peer-id.ts";
import type { RaftTestBug } from "../../../src/raft/config.ts";
import { StateRole } from "../../../src/raft/raft.ts";
import { SimClock } from "../../support/sim-clock.ts";
import { serviceConfig } from "../../support/service-config.ts";
import { Rng } from "../rng.ts";
import { Trace } from "../trace.ts";
import { switchesOf } from "./bugs.ts";
import { ChainChecker, type ChainInvariant, Violation } from "./checker.ts";
import { ChainNemesis, type NemesisWorld } from "./nemesis.ts";
import { type ChainParams, describeParams, drawParams } from "./params.ts";
import { ConsensusProcess, type ProcessHost, Slot } from "./process.ts";
import { LOOPBACK, Link, Scope, simCall } from "./rpc.ts";
import type { RunResult } from "../report.ts";

export interface ChainSimOptions {
  seed: number;
  /** Steps under faults (the rounds of faults end once they are spent). */
  steps: number;
  /** Known defects to build every node with (see --bug). */
  bugs?: readonly string[];
  /** Invariants not to enforce. */
  skipInvariants?: readonly string[];
  /** Lines of history in a violation report. */
  traceLines?: number;
  /** Called with every trace line as it happens (--verbose). */
  onTrace?: (line: string) => void;
}

export interface ChainViolation {
  seed: number;
  step: number;
  timeMs: number;
  phase: "safety" | "liveness";
  invariant: ChainInvariant;
  detail: string;
  params: string;
  state: string[];
  trace: string[];
}

export interface ChainStats {
  /** Highest controller height at the end. */
  height: number;
  leaders: number;
  /** Rounds of faults (each followed by a calm period). */
  rounds: number;
  nemesisActions: number;
  kills: number;
  restarts: number;
  /** The longest recovery after a round of faults (simulated ms). */
  livenessMs: number;
}

export type ChainResult = RunResult<ChainStats, ChainViolation>;

/**
 * Liveness bound after the faults stop. A controller one block behind that holds a candidate syncs
 * only once its growth check drops the candidate: up to two check intervals after its height last
 * grew (consensus cannot make it sync sooner; its blocks are gone from the Raft log by then). Then
 * 30 s for the sync and three blocks (re-registration with an older network alone can take 30 s).
 */
export const LIVENESS_MS = 2 * GROWTH_CHECK_INTERVAL_MS + 30_000;
/** Block timestamps: simulated time from this wall time. */
const EPOCH_MS = 1_800_000_000_000;
/** Steps in one simulated second beyond which the run is a storm (the busiest seeds stay far below). */
const STORM_STEPS = 50_000;
/** How long one round of faults lasts (simulated ms), drawn per round. */
const CHAOS_MS = [5_000, 15_000, 30_000, 60_000];
/** A controller's power loss takes blocks it appended this recently (up to the k the nemesis asks for). */
const UNFLUSHED_MS = 5_000;
/** The kubelet restarts a process that exited by itself after this long. */
const RESTART_BACKOFF_MS = 1_000;

function tmpRoot(): string {
  return existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
}

function strHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function formatFields(args: unknown[]): string {
  return args
    .map((a) => {
      if (typeof a === "string") return a;
      if (a && typeof a === "object") {
        return Object.entries(a as Record<string, unknown>)
          .map(([k, v]) => `${k}=${typeof v === "string" ? JSON.stringify(v) : v instanceof Uint8Array ? Buffer.from(v).toString("hex").slice(0, 16) : String(v)}`)
          .join(" ");
      }
      return String(a);
    })
    .join(" ");
}

export class ChainSim implements ProcessHost {
  readonly clock = new SimClock(0);
  readonly params: ChainParams;
  readonly trace: Trace;
  readonly slots: Slot[] = [];
  /** Controllers sync blocks over the network: only between nodes the network connects both ways. */
  readonly group = new ControllerGroup((a, b) => {
    const i = this.slots.findIndex((s) => s.controller === a);
    const j = this.slots.findIndex((s) => s.controller === b);
    const up = (k: number) => this.slots[k].endpoint.running;
    return up(i) && up(j) && this.fabric.canReach(i, j) && this.fabric.canReach(j, i);
  });
  readonly fabric: NetworkFabric;
  readonly checker: ChainChecker;
  readonly nodeBugs: ReadonlySet<NodeTestBug>;
  readonly raftBugs: ReadonlySet<RaftTestBug>;
  private readonly rootDir: string;
  private readonly nemesisRng: Rng;
  private readonly processRng: Rng;
  private readonly latencyRng: Rng;
  private readonly nemesis: ChainNemesis;
  private nemesisScope: Scope;
  private readonly kubelet: Scope;
  private readonly wires: Scope;
  private readonly holdUntil: number[];
  private readonly slowLink: (number | undefined)[];
  private readonly closedControllerPorts = new Set<number>();
  private targetValidators: number[];
  private phase: "safety" | "liveness" = "safety";
  private steps = 0;
  private livenessSteps = 0;
  private uncaught: unknown[] = [];
  private readonly stats: ChainStats = { height: 0, leaders: 0, rounds: 0, nemesisActions: 0, kills: 0, restarts: 0, livenessMs: 0 };
  private lastLeader = new Map<number, bigint>();
  private stormSecond = -1;
  private stormSteps = 0;

  constructor(readonly opts: ChainSimOptions) {
    const root = new Rng(opts.seed);
    this.params = drawParams(root);
    this.nemesisRng = root.fork();
    this.processRng = root.fork();
    this.latencyRng = root.fork();
    const fabricRng = root.fork();
    const bugs = switchesOf(opts.bugs ?? []);
    this.nodeBugs = bugs.node;
    this.raftBugs = bugs.raft;
    this.trace = new Trace(Math.max(64, opts.traceLines ?? 60));
    this.rootDir = mkdtempSync(join(tmpRoot(), `chain-sim-${opts.seed}-`));
    this.nemesisScope = new Scope(this.clock, "nemesis");
    this.kubelet = new Scope(this.clock, "kubelet");
    this.wires = new Scope(this.clock, "wires");
    const p = this.params;
    this.targetValidators = [...p.validators];
    this.holdUntil = new Array(p.nodes).fill(0);
    this.slowLink = new Array(p.nodes).fill(undefined);
    this.fabric = new NetworkFabric({ rng: () => fabricRng.float(), clock: this.clock, routing: p.routing, log: this.log("network") });
    this.fabric.setLinkFault(this.calmLinks());
    let addresses = Array.from({ length: p.nodes }, (_, i) => deriveAddress(`chain-sim:${opts.seed}`, i));
    if (new Set(addresses.map(originOf)).size !== addresses.length) {
      addresses = Array.from({ length: p.nodes }, (_, i) => deriveAddress(`chain-sim:${opts.seed}:again`, i));
    }
    const genesis = { blockInterval: p.blockInterval, validators: p.validators.map((v) => addresses[v]) };
    for (let i = 0; i < p.nodes; i++) {
      const dir = join(this.rootDir, `node${i}`);
      mkdirSync(dir, { recursive: true });
      const slot = new Slot(i, `node${i}`, addresses[i], peerIdFromAddress(addresses[i]), dir);
      const skew = p.clockSkewMs === 0 ? 0 : this.latencyRng.range(-p.clockSkewMs, p.clockSkewMs);
      // The controller's one connection to its consensus.
      const toConsensus = new Link(() => this.controllerLatency(slot));
      slot.controller = new ControllerEmulator({
        name: `controller${i}`,
        address: addresses[i],
        genesis,
        group: this.group,
        clock: this.clock,
        wallClock: () => EPOCH_MS + skew + Math.floor(this.clock.now()),
        log: this.log(`controller${i}`),
        edge: {
          consensus: {
            reconfigure: (cfg, signal) =>
              simCall(this.wires, slot.consensusPort, toConsensus, (h) => h.reconfigure(cfg), { signal, timeoutMs: 5_000, clientName: "controller" }),
            checkBlock: (pwp, signal) =>
              simCall(this.wires, slot.consensusPort, toConsensus, (h) => h.checkBlock(pwp), { signal, timeoutMs: 5_000, clientName: "controller" }),
          },
          serve: async (service) => slot.controllerPort.serve(service),
        },
      });
      this.slots.push(slot);
    }
    this.checker = new ChainChecker(
      this.slots.map((s) => s.controller),
      this.slots.map((s) => s.name),
      opts.skipInvariants,
    );
    this.nemesis = new ChainNemesis(this.nemesisWorld(), this.nemesisRng);
  }

  // ---------------------------------------------------------------- ProcessHost

  cfg(slot: Slot): Config {
    const p = this.params;
    return serviceConfig({
      grpcListenPort: 50001 + slot.index,
      networkPort: 50000,
      controllerPort: 50004,
      nodeAddress: slot.address,
      raftDataPath: slot.dir,
      tickIntervalInMillis: p.tickMs,
      heartbeatTick: p.heartbeatTick,
      electionTick: p.electionTick,
      checkQuorum: p.checkQuorum,
      preVote: p.preVote,
    });
  }

  log(name: string): ConsolaInstance {
    const trace = this.trace;
    const verbose = this.opts.onTrace;
    return createConsola({
      level: 3,
      throttle: 0,
      reporters: [
        {
          log: (o: LogObject) => {
            // The run's directory has a random name: reports show it as <data> so that replays match.
            const text = () => `${o.tag ? `${name}/${o.tag}` : name} ${o.type}: ${formatFields(o.args)}`.replaceAll(this.rootDir, "<data>");
            trace.add(text);
            if (typeof o.args[0] === "string") trace.fold(strHash(o.args[0]));
            if (verbose) verbose(`#${trace.step} t=${trace.time} ${text()}`);
          },
        },
      ],
    });
  }

  random() {
    const r = this.processRng.fork();
    return { next: () => r.float() };
  }

  /**
   * One way of a consensus <-> controller call. Never 0: a controller takes time to build, check
   * and execute a block, and a chain of instantaneous calls would commit blocks without simulated
   * time ever moving.
   */
  controllerLatency(slot: Slot): number {
    const p = this.params;
    const slow = this.slowLink[slot.index];
    if (slow !== undefined) return slow;
    if (p.controllerSlowChance > 0 && this.latencyRng.chance(p.controllerSlowChance)) return p.controllerSlowMs;
    return this.latencyRng.range(1, Math.max(1, p.controllerLatencyMs));
  }

  exited(p: ConsensusProcess, how: string): void {
    this.stats.kills++;
    this.note(`${p.name} exits: ${how}`);
    // A process that stopped by itself is restarted by its supervisor after a moment.
    this.holdUntil[p.slot.index] = Math.max(this.holdUntil[p.slot.index], this.clock.now() + RESTART_BACKOFF_MS);
  }

  stopOverran(p: ConsensusProcess): void {
    this.checker.fail("stop within bound", `${p.name} did not stop within 5000 ms of its SIGTERM`);
  }

  fatal(p: ConsensusProcess, err: unknown): void {
    this.checker.fail("no fatal error", `${p.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    p.kill("fatal error: exit 1");
  }

  // ---------------------------------------------------------------- world

  note(text: string): void {
    this.trace.add(text);
    this.trace.fold(strHash(text));
    this.opts.onTrace?.(`#${this.trace.step} t=${this.trace.time} ${text}`);
  }

  private calmLinks() {
    const p = this.params;
    return { delayMs: p.netDelayMs, jitterMs: p.netJitterMs, loss: this.phase === "safety" ? p.netLoss : 0, duplicate: this.phase === "safety" ? p.netDuplicate : 0 };
  }

  leader(): Slot | undefined {
    let best: Slot | undefined;
    let term = -1;
    for (const s of this.slots) {
      const raft = s.up ? s.process!.node.peer?.node.raft : undefined;
      if (raft !== undefined && raft.state === StateRole.Leader && raft.term > term) {
        best = s;
        term = raft.term;
      }
    }
    return best;
  }

  private startProcess(slot: Slot): void {
    if (slot.up) return;
    slot.incarnations++;
    this.stats.restarts++;
    this.note(`start ${slot.name}#${slot.incarnations}${slot.wiped ? " (empty data dir)" : ""}`);
    slot.process = new ConsensusProcess(this, slot, slot.incarnations);
  }

  private killProcess(slot: Slot, how: string): void {
    if (slot.process !== undefined && slot.process.state !== "down") slot.process.kill(how);
  }

  private nemesisWorld(): NemesisWorld {
    const sim = this;
    const f = this.fabric;
    return {
      slots: this.slots,
      params: this.params,
      get scope() {
        return sim.nemesisScope;
      },
      note: (t) => this.note(t),
      leader: () => this.leader(),
      holdDown: (slot, ms) => {
        this.holdUntil[slot.index] = Math.max(this.holdUntil[slot.index], this.clock.now() + ms);
      },
      killProcess: (slot, how) => this.killProcess(slot, how),
      terminateProcess: (slot) => {
        if (slot.process?.state === "up") void slot.process.terminate();
      },
      powerLoss: (slot, blocks) => {
        // Without a WAL a controller loses what its storage had not flushed: blocks of the last
        // moments, never old ones.
        const c = slot.controller;
        let recent = 0;
        while (recent < blocks && recent < c.height && c.block(c.height - recent)!.appendedAt >= this.clock.now() - UNFLUSHED_MS) recent++;
        this.checker.onControllerLoss(slot.index, c.height - recent);
        void c.powerLoss(recent);
      },
      wipeAll: () => this.wipeAll(),
      validators: () => [...this.targetValidators],
      setValidators: (v) => {
        this.targetValidators = [...v];
        const at = this.group.scheduleConfigChange({ atHeight: 0, validators: v.map((i) => this.slots[i].address) });
        this.note(`  takes effect at height ${at}`);
      },
      setBlockInterval: (s) => {
        const at = this.group.scheduleConfigChange({ atHeight: 0, blockInterval: s });
        this.note(`  takes effect at height ${at}`);
      },
      slowController: (slot, ms) => {
        this.slowLink[slot.index] = ms;
      },
      fabric: {
        partition: (...g) => f.partition(...g),
        block: (a, b) => f.block(a, b),
        heal: () => f.heal(),
        lossyBurst: (on, loss = 0.3) => {
          f.clearLinkFaults();
          f.setLinkFault(on ? { delayMs: this.params.netDelayMs, jitterMs: 200, loss, duplicate: 0.2 } : this.calmLinks());
        },
      },
      stopNetworkService: (slot) => slot.endpoint.stop(),
      startNetworkService: (slot) => void slot.endpoint.start(),
      closeControllerPort: (slot) => {
        this.closedControllerPorts.add(slot.index);
        slot.controller.stopServer();
      },
      openControllerPort: (slot) => {
        this.closedControllerPorts.delete(slot.index);
        if (slot.controller.running) void slot.controller.startServer();
      },
    };
  }

  /** The operator procedure: the chain stopped, every controller at one height, every data dir deleted. */
  private wipeAll(): void {
    for (const s of this.slots) {
      this.killProcess(s, "stopped for a wipe");
      this.holdUntil[s.index] = Math.max(this.holdUntil[s.index], this.clock.now() + 12_000);
    }
    // Calls already on their way settle first (network retries give up within 10 s); then the
    // operator checks the heights again.
    this.nemesisScope.after(11_000, () => {
      const heights = new Set(this.slots.map((s) => s.controller.height));
      if (heights.size !== 1 || this.slots.some((s) => s.up)) {
        this.note(`wipe abandoned: controllers at heights ${[...heights].join(",")}`);
        return;
      }
      for (const s of this.slots) {
        rmSync(s.dir, { recursive: true, force: true });
        s.wiped = true;
      }
      this.checker.onWipeAll([...heights][0]);
      this.note(`every consensus data dir wiped at height ${[...heights][0]}`);
    });
  }

  // ---------------------------------------------------------------- running

  private async setup(): Promise<void> {
    for (const s of this.slots) {
      s.endpoint = await this.fabric.addNode({
        name: s.name,
        address: s.address,
        edge: {
          deliver: async (msg, signal) => {
            await simCall(this.wires, s.consensusPort, LOOPBACK, (h) => h.processNetworkMsg(msg), { signal, timeoutMs: 5_000, clientName: "network" });
          },
          serve: async (h) => s.networkPort.serve(h),
        },
      });
    }
    for (const s of this.slots) await s.controller.start();
    for (const s of this.slots) this.startProcess(s);
    this.kubelet.every(100, () => {
      for (const s of this.slots) if (!s.up && this.clock.now() >= this.holdUntil[s.index]) this.startProcess(s);
    });
  }

  /** One step: the next timer and everything it set off; then every check. */
  private async step(): Promise<void> {
    try {
      await this.clock.step();
    } catch (e) {
      this.uncaught.push(e);
    }
    this.trace.step = this.steps + this.livenessSteps;
    this.trace.time = Math.round(this.clock.now());
    this.checkStorm();
    this.trace.fold(Math.round(this.clock.now() * 16), this.clock.fired);
    if (this.uncaught.length > 0) {
      const e = this.uncaught[0];
      this.checker.fail("no uncaught error", e instanceof Error ? (e.stack ?? e.message) : String(e));
    }
    this.checker.checkBlocks();
    this.checker.checkNodes(this.slots.map((s) => (s.up ? s.process!.node : undefined)));
    for (const s of this.slots) {
      const raft = s.up ? s.process!.node.peer?.node.raft : undefined;
      if (raft !== undefined && raft.state === StateRole.Leader && this.lastLeader.get(raft.term) !== raft.id) {
        this.lastLeader.set(raft.term, raft.id);
        this.stats.leaders++;
        this.note(`${s.name} leads term ${raft.term}`);
      }
    }
    const v = this.checker.violation;
    if (v !== undefined) throw v;
  }

  /** A round of faults begins. */
  private startFaults(): void {
    this.phase = "safety";
    this.nemesisScope = new Scope(this.clock, "nemesis");
    this.fabric.clearLinkFaults();
    this.fabric.setLinkFault(this.calmLinks());
    this.note(`round ${this.stats.rounds}: faults on`);
    this.nemesis.start();
  }

  /** After the faults: every validator's controller grows by 3 blocks, every lost block comes back. */
  private async calm(): Promise<void> {
    const start = this.clock.now();
    const base = this.slots.map((s) => s.controller.height);
    const done = () => this.validatorSlots().every((s) => s.controller.height >= base[s.index] + 3) && this.checker.missingLostBlocks().length === 0;
    while (!done()) {
      if (this.clock.now() - start > LIVENESS_MS) {
        const behind = this.validatorSlots()
          .filter((s) => s.controller.height < base[s.index] + 3)
          .map((s) => `${s.controller.name} ${base[s.index]} -> ${s.controller.height}`);
        this.checker.fail(
          "liveness",
          `${LIVENESS_MS / 1000} s after the faults stopped: ${[...behind, ...this.checker.missingLostBlocks()].join("; ")} (validators must grow by 3 blocks)`,
        );
        const v = this.checker.violation;
        if (v !== undefined) throw v;
        return;
      }
      this.livenessSteps++;
      await this.step();
    }
    this.stats.livenessMs = Math.max(this.stats.livenessMs, Math.round(this.clock.now() - start));
  }

  /**
   * Simulated time must move: more than STORM_STEPS steps within one simulated second is a storm of
   * work that feeds itself (in the node, or a loop of instantaneous calls in the simulation).
   */
  private checkStorm(): void {
    const second = Math.floor(this.clock.now() / 1000);
    if (second !== this.stormSecond) {
      this.stormSecond = second;
      this.stormSteps = 0;
    }
    if (++this.stormSteps > STORM_STEPS) this.checker.fail("no storm", `more than ${STORM_STEPS} steps within the simulated second from t=${second * 1000} ms`);
  }

  /** Faults stop: network healed, every service up and answering, the nemesis gone. */
  private endFaults(): void {
    this.nemesis.stop();
    this.nemesisScope.kill();
    this.phase = "liveness";
    this.fabric.heal();
    this.fabric.clearLinkFaults();
    this.fabric.setLinkFault(this.calmLinks());
    for (const s of this.slots) {
      this.slowLink[s.index] = undefined;
      const c = s.controller;
      c.clearFaults();
      if (!c.running) void c.start();
      else if (this.closedControllerPorts.has(s.index)) void c.startServer();
      if (!s.endpoint.running) void s.endpoint.start();
      this.holdUntil[s.index] = 0;
    }
    this.closedControllerPorts.clear();
    this.note("faults stop: network healed, every controller and network service up, every process restarted");
  }

  private validatorSlots(): Slot[] {
    const head = this.slots.reduce((a, s) => (s.controller.height > a.controller.height ? s : a), this.slots[0]).controller.config;
    return this.slots.filter((s) => head.validators.some((v) => Buffer.from(v).equals(Buffer.from(s.address))));
  }

  async run(): Promise<ChainResult> {
    const onUnhandled = (e: unknown) => this.uncaught.push(e);
    process.on("unhandledRejection", onUnhandled);
    let violation: Violation | undefined;
    try {
      await this.setup();
      this.note(`seed ${this.opts.seed}: ${describeParams(this.params)}`);
      // Rounds of faults, each followed by a calm period in which the chain must grow again.
      while (this.steps < this.opts.steps) {
        this.stats.rounds++;
        this.startFaults();
        const until = this.clock.now() + this.nemesisRng.pick(CHAOS_MS);
        while (this.steps < this.opts.steps && this.clock.now() < until) {
          this.steps++;
          await this.step();
        }
        this.endFaults();
        await this.calm();
      }
    } catch (e) {
      if (!(e instanceof Violation)) throw e;
      violation = e;
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    this.stats.height = Math.max(...this.slots.map((s) => s.controller.height));
    this.stats.nemesisActions = this.nemesis.actions;
    for (const s of this.slots) this.trace.fold(s.controller.height);
    return {
      seed: this.opts.seed,
      steps: this.steps,
      livenessSteps: this.livenessSteps,
      simTimeMs: Math.round(this.clock.now()),
      digest: this.trace.digest,
      params: describeParams(this.params),
      stats: { ...this.stats },
      violation: violation && {
        seed: this.opts.seed,
        step: this.steps + this.livenessSteps,
        timeMs: Math.round(this.clock.now()),
        phase: this.phase,
        invariant: violation.invariant,
        detail: violation.detail,
        params: describeParams(this.params),
        state: this.describeState(),
        trace: this.trace.lines(this.opts.traceLines ?? 60),
      },
    };
  }

  describeState(): string[] {
    return this.slots.map((s) => {
      const c = s.controller;
      const p = s.process;
      const peer = s.up ? p!.node.peer : undefined;
      const st = peer?.status();
      const conf = st ? `voters=[${st.voters.join(",")}]${st.votersOutgoing.length > 0 ? `&&[${st.votersOutgoing.join(",")}]` : ""}${st.learners.length > 0 ? ` learners=[${st.learners.join(",")}]` : ""}` : "";
      const raft = st ? ` ${["follower", "candidate", "LEADER", "pre-candidate"][st.role]} term=${st.term} commit=${st.commit} applied=${st.applied} height=${st.height} ${conf}` : "";
      return (
        `${s.name} (${s.id}) consensus ${p ? `#${p.incarnation} ${p.state}` : "never started"}${raft}; ` +
        `${c.name} ${c.running ? (c.serving ? "serving" : "starting") : "down"} height=${c.height}${c.syncing ? " syncing" : ""}; ` +
        `network ${s.endpoint.running ? "up" : "down"}`
      );
    });
  }

  /** Removes every data dir of the run. */
  dispose(): void {
    this.nemesisScope.kill();
    this.kubelet.kill();
    for (const s of this.slots) {
      if (s.process?.state !== "down") s.process?.kill("end of run");
      s.controller.kill();
    }
    rmSync(this.rootDir, { recursive: true, force: true });
  }
}

export async function simulateChain(opts: ChainSimOptions): Promise<ChainResult> {
  const sim = new ChainSim(opts);
  try {
    return await sim.run();
  } finally {
    sim.dispose();
  }
}

export function formatChainViolation(v: ChainViolation, steps: number, bugs: readonly string[] = []): string {
  const bugArgs = bugs.map((b) => ` --bug ${b}`).join("");
  return [
    `VIOLATION of "${v.invariant}" — seed ${v.seed}, step ${v.step} (${v.phase} phase, t=${v.timeMs} ms)`,
    `  ${v.detail}`,
    `  replay: npm run sim:chain -- --seed ${v.seed} --steps ${steps}${bugArgs} --verbose`,
    `  params: ${v.params}`,
    "  chain at the violation:",
    ...v.state.map((l) => `    ${l}`),
    `  last ${v.trace.length} events:`,
    ...v.trace.map((l) => `    ${l}`),
  ].join("\n");
}
