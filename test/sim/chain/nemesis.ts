// The chain nemesis: every fault and operator action of the safety phase, at random moments drawn
// from the run's seed. Processes: kill -9, SIGTERM, a power cut in the middle of a write, every
// node at once. Controllers: restarts, hangs, error answers, a closed port, slow calls, power
// losses that take their last blocks (one controller, one machine, every machine). Network:
// partitions, an isolated leader, one-way cuts, lossy bursts, a restarting network service.
// Governance through the controllers' admin changes: validators added and removed, the leader
// removed, shrink to one and grow back, complete replacement, block interval changes. And the
// operator's wipe of every data dir, only with every controller at one height.
import { Code } from "@connectrpc/connect";
import { StatusCodeEnum as S } from "../../../gen/status_code_pb.ts";
import type { ControllerMethod } from "../../../src/devchain/controller.ts";
import type { ChainParams } from "./params.ts";
import type { Slot } from "./process.ts";
import type { Rng } from "../rng.ts";
import type { Scope } from "./rpc.ts";

/** What the nemesis may see and do. */
export interface NemesisWorld {
  readonly slots: readonly Slot[];
  readonly params: ChainParams;
  /** The nemesis' timers; they die when the safety phase ends. */
  readonly scope: Scope;
  note(text: string): void;
  /** The up node that leads the highest term, if any. */
  leader(): Slot | undefined;
  /** Keeps `slot`'s consensus down for `ms` at least (a down process is restarted after that). */
  holdDown(slot: Slot, ms: number): void;
  killProcess(slot: Slot, how: string): void;
  terminateProcess(slot: Slot): void;
  powerLoss(slot: Slot, blocks: number): void;
  wipeAll(): void;
  /** Validators the admin last asked for (node indexes). */
  validators(): number[];
  setValidators(v: number[]): void;
  setBlockInterval(s: number): void;
  /** Latency of `slot`'s consensus <-> controller calls, until cleared. */
  slowController(slot: Slot, ms: number | undefined): void;
  readonly fabric: {
    partition(...groups: number[][]): void;
    block(from: number, to: number): void;
    heal(): void;
    /** Loss (30 % unless given), duplicates and reordering on every link, or back to normal. */
    lossyBurst(on: boolean, loss?: number): void;
  };
  stopNetworkService(slot: Slot): void;
  startNetworkService(slot: Slot): void;
  /** The controller's port was closed by the nemesis (so the end of faults reopens it). */
  closeControllerPort(slot: Slot): void;
  openControllerPort(slot: Slot): void;
}

const DURATIONS = [200, 1_000, 3_000, 8_000];
const METHODS: ControllerMethod[] = ["GetProposal", "CheckProposal", "CommitBlock"];
const STATUSES = [S.StorageServerNotReady, S.ExecuteServerNotReady, S.NoneRawTx, S.ProposalCheckError];
const GRPC_CODES = [Code.Unavailable, Code.Internal, Code.Unknown, Code.ResourceExhausted];

export class ChainNemesis {
  private stopped = false;
  actions = 0;

  constructor(
    private readonly w: NemesisWorld,
    private readonly rng: Rng,
  ) {}

  /** Starts acting (again) on the world's current scope. */
  start(): void {
    this.stopped = false;
    this.scheduleNext();
  }

  stop(): void {
    this.stopped = true;
  }

  private scheduleNext(): void {
    if (this.stopped) return;
    const gap = -Math.log(1 - this.rng.float()) * this.w.params.faultGapMs;
    this.w.scope.after(Math.max(1, Math.round(gap)), () => {
      if (this.stopped) return;
      this.act();
      this.scheduleNext();
    });
  }

  private later(ms: number, fn: () => void): void {
    this.w.scope.after(ms, () => {
      if (!this.stopped) fn();
    });
  }

  private duration(): number {
    return this.rng.pick(DURATIONS) * (0.5 + this.rng.float());
  }

  /** A random node, or (often) the leader. */
  private target(): Slot {
    const leader = this.w.leader();
    if (leader !== undefined && this.rng.chance(0.5)) return leader;
    return this.rng.pick(this.w.slots);
  }

  private act(): void {
    const weights = this.w.params.weights;
    const families = Object.keys(weights) as (keyof typeof weights)[];
    const family = families[this.rng.weighted(families.map((f) => weights[f]))];
    this.actions++;
    switch (family) {
      case "process":
        return this.process();
      case "controller":
        return this.controller();
      case "network":
        return this.network();
      case "governance":
        return this.governance();
      case "powerLoss":
        return this.powerLoss();
      case "wipe":
        return this.wipe();
    }
  }

  private process(): void {
    const w = this.w;
    const s = this.target();
    const down = this.rng.chance(0.1) ? 15_000 : this.duration();
    switch (this.rng.weighted([4, 3, 2, 1])) {
      case 0:
        w.note(`nemesis: kill -9 ${s.name}${s === w.leader() ? " (leader)" : ""}, down ${Math.round(down)} ms`);
        w.killProcess(s, "kill -9");
        w.holdDown(s, down);
        return;
      case 1:
        w.note(`nemesis: SIGTERM ${s.name}${s === w.leader() ? " (leader)" : ""}, down ${Math.round(down)} ms`);
        w.terminateProcess(s);
        w.holdDown(s, down);
        return;
      case 2:
        if (s.process === undefined || s.process.state !== "up") return;
        w.note(`nemesis: ${s.name} loses power at its next write`);
        s.process.storage.crashAtNextWrite = true;
        w.holdDown(s, down);
        return;
      case 3:
        w.note(`nemesis: kill -9 every node, down ${Math.round(down)} ms`);
        for (const x of w.slots) {
          w.killProcess(x, "kill -9 (all)");
          w.holdDown(x, down * (0.5 + this.rng.float()));
        }
        return;
    }
  }

  private controller(): void {
    const w = this.w;
    const s = this.target();
    const c = s.controller;
    const d = this.duration();
    switch (this.rng.weighted([2, 2, 3, 1, 2])) {
      case 0:
        w.note(`nemesis: ${c.name} restarts in ${Math.round(d)} ms`);
        c.kill();
        this.later(d, () => {
          if (!c.running) void c.start();
        });
        return;
      case 1: {
        const ms = this.rng.pick([500, 3_000, 12_000]);
        w.note(`nemesis: ${c.name} hangs for ${ms} ms`);
        c.hang(ms);
        return;
      }
      case 2: {
        const methods = METHODS.filter(() => this.rng.chance(0.6));
        const times = this.rng.range(1, 8);
        if (this.rng.chance(0.5)) {
          const status = this.rng.pick(STATUSES);
          w.note(`nemesis: ${c.name} answers ${S[status]} to ${methods.join("/") || "every call"} x${times}`);
          c.injectFault({ methods: methods.length > 0 ? methods : undefined, status, times });
        } else {
          const grpcCode = this.rng.pick(GRPC_CODES);
          w.note(`nemesis: ${c.name} fails ${methods.join("/") || "every call"} with ${Code[grpcCode]} x${times}`);
          c.injectFault({ methods: methods.length > 0 ? methods : undefined, grpcCode, times });
        }
        return;
      }
      case 3:
        if (!c.serving) return;
        w.note(`nemesis: ${c.name} closes its port for ${Math.round(d)} ms`);
        w.closeControllerPort(s);
        this.later(d, () => w.openControllerPort(s));
        return;
      case 4: {
        const ms = this.rng.pick([300, 2_000, 7_000]);
        w.note(`nemesis: calls between ${s.name} and its controller take ${ms} ms for ${Math.round(d)} ms`);
        w.slowController(s, ms);
        this.later(d, () => w.slowController(s, undefined));
        return;
      }
    }
  }

  private powerLoss(): void {
    const w = this.w;
    const k = this.rng.range(1, 3);
    switch (this.rng.weighted([3, 3, 2])) {
      case 0: {
        const s = this.target();
        w.note(`nemesis: ${s.controller.name} loses power (no WAL): its last ${k} block(s) are gone`);
        w.powerLoss(s, k);
        return;
      }
      case 1: {
        const s = this.target();
        const down = this.duration();
        w.note(`nemesis: ${s.name}'s machine loses power: consensus killed, controller loses its last ${k} block(s)`);
        w.killProcess(s, "power loss");
        w.holdDown(s, down);
        w.powerLoss(s, k);
        return;
      }
      case 2: {
        const down = this.duration();
        w.note(`nemesis: power loss everywhere: every consensus killed, every controller loses up to ${k} block(s)`);
        for (const s of w.slots) {
          w.killProcess(s, "power loss (all)");
          w.holdDown(s, down * (0.5 + this.rng.float()));
          w.powerLoss(s, this.rng.range(1, k));
        }
        return;
      }
    }
  }

  private network(): void {
    const w = this.w;
    const n = w.slots.length;
    const d = this.duration();
    switch (this.rng.weighted([3, 2, 1, 2, 2])) {
      case 0: {
        const a: number[] = [];
        const b: number[] = [];
        for (let i = 0; i < n; i++) (this.rng.chance(0.5) ? a : b).push(i);
        w.note(`nemesis: partition [${a}] | [${b}] for ${Math.round(d)} ms`);
        w.fabric.partition(a, b);
        this.later(d, () => {
          w.note("nemesis: partition healed");
          w.fabric.heal();
        });
        return;
      }
      case 1: {
        const leader = w.leader();
        if (leader === undefined) return;
        w.note(`nemesis: leader ${leader.name} isolated for ${Math.round(d)} ms`);
        w.fabric.partition([leader.index]);
        this.later(d, () => {
          w.note("nemesis: leader isolation healed");
          w.fabric.heal();
        });
        return;
      }
      case 2: {
        const from = this.rng.int(n);
        const to = this.rng.int(n);
        if (from === to) return;
        w.note(`nemesis: nothing from node${from} reaches node${to} for ${Math.round(d)} ms`);
        w.fabric.block(from, to);
        this.later(d, () => w.fabric.heal());
        return;
      }
      case 3:
        w.note(`nemesis: lossy network (loss, duplicates, reordering) for ${Math.round(d)} ms`);
        w.fabric.lossyBurst(true);
        this.later(d, () => w.fabric.lossyBurst(false));
        return;
      case 4: {
        const s = this.rng.pick(w.slots);
        const gap = this.rng.chance(0.5) ? 0 : d;
        w.note(`nemesis: ${s.name}'s network service restarts${gap > 0 ? ` after ${Math.round(gap)} ms` : ""}`);
        w.stopNetworkService(s);
        if (gap === 0) w.startNetworkService(s);
        else this.later(gap, () => w.startNetworkService(s));
        return;
      }
    }
  }

  private governance(): void {
    const w = this.w;
    const all = w.slots.map((s) => s.index);
    const current = w.validators();
    const others = all.filter((i) => !current.includes(i));
    const leader = w.leader();
    const pickSome = (from: number[], min: number) => {
      const k = this.rng.range(min, Math.max(min, Math.min(from.length, 5)));
      const xs = [...from];
      const out: number[] = [];
      while (out.length < k && xs.length > 0) out.push(xs.splice(this.rng.int(xs.length), 1)[0]);
      return out.sort((a, b) => a - b);
    };
    const change = (next: number[], what: string) => {
      if (next.length === 0) return;
      w.note(`nemesis: admin ${what}: validators [${current}] -> [${next}]`);
      w.setValidators(next);
    };
    switch (this.rng.weighted([3, 2, 5, 1, 2, 1, 2])) {
      case 0:
        if (others.length > 0 && current.length < 5) change([...current, this.rng.pick(others)].sort((a, b) => a - b), "adds a validator");
        return;
      case 1:
        if (current.length > 1) {
          const out = this.rng.pick(current.filter((i) => i !== leader?.index).length > 0 ? current.filter((i) => i !== leader?.index) : current);
          change(current.filter((i) => i !== out), "removes a validator");
        }
        return;
      case 2:
        if (leader !== undefined && current.includes(leader.index) && current.length > 1) {
          change(current.filter((i) => i !== leader.index), "removes the leader");
          // The leader hands over with one MsgTimeoutNow: often on a network that loses some.
          if (this.rng.chance(0.5)) {
            const d = this.rng.range(200, 1_000);
            w.note(`nemesis: the network loses most messages during the hand-over, for ${d} ms`);
            w.fabric.lossyBurst(true, 0.6);
            this.later(d, () => w.fabric.lossyBurst(false));
          }
        }
        return;
      case 3:
        if (current.length > 1) change([this.rng.pick(current)], "shrinks to one");
        return;
      case 4:
        if (current.length < 3 && others.length > 0) change([...current, ...pickSome(others, 1)].sort((a, b) => a - b), "grows the validators");
        return;
      case 5:
        if (others.length > 0) change(pickSome(others, 1), "replaces every validator");
        return;
      case 6: {
        const s = this.rng.pick([0, 0, 1, 2, 3]);
        w.note(`nemesis: admin sets the block interval to ${s} s`);
        w.setBlockInterval(s);
        return;
      }
    }
  }

  private wipe(): void {
    const w = this.w;
    const heights = new Set(w.slots.map((s) => s.controller.height));
    if (heights.size !== 1) return;
    w.note(`nemesis: operator wipes every consensus data dir at height ${[...heights][0]} (every controller there)`);
    w.wipeAll();
  }
}
