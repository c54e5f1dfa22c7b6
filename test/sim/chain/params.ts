// Everything a chain run is made of, drawn from its seed.
import type { Rng } from "../rng.ts";

export interface ChainParams {
  /** Consensus nodes (each with its controller and network service); validators are some of them. */
  nodes: number;
  /** Genesis validators (node indexes). */
  validators: number[];
  /** Genesis block interval in seconds (0: the next block as soon as one is committed). */
  blockInterval: number;
  tickMs: number;
  heartbeatTick: number;
  electionTick: number;
  checkQuorum: boolean;
  preVote: boolean;
  /** One-way latency of consensus <-> controller calls: a base and an occasional slow call. */
  controllerLatencyMs: number;
  controllerSlowMs: number;
  controllerSlowChance: number;
  /** Each controller's wall clock is off by up to this much (block timestamps, CheckProposal). */
  clockSkewMs: number;
  /** Network links: delay, jitter, loss and duplication while no fault says otherwise. */
  netDelayMs: number;
  netJitterMs: number;
  netLoss: number;
  netDuplicate: number;
  /** "registered": an older network that routes by registration and forgets it when it restarts. */
  routing: "static" | "registered";
  /** Mean simulated time between two nemesis actions. */
  faultGapMs: number;
  /** Relative weights of the nemesis' action families. */
  weights: Record<FaultFamily, number>;
}

export const FAULT_FAMILIES = ["process", "controller", "network", "governance", "powerLoss", "wipe"] as const;
export type FaultFamily = (typeof FAULT_FAMILIES)[number];

export function drawParams(rng: Rng): ChainParams {
  const nodes = rng.range(2, 6);
  // 1 to 5 genesis validators among the nodes (one validator alone is a chain too).
  const count = rng.chance(0.15) ? 1 : rng.range(2, Math.min(5, nodes));
  const order = shuffled(rng, [...Array(nodes).keys()]);
  const validators = order.slice(0, count).sort((a, b) => a - b);
  const heartbeatTick = rng.range(2, 4);
  const weight = () => rng.pick([0, 1, 1, 2, 3]);
  return {
    nodes,
    validators,
    blockInterval: rng.pick([0, 0, 1, 1, 2, 3]),
    tickMs: rng.pick([50, 100, 100, 200]),
    heartbeatTick,
    electionTick: rng.range(Math.max(heartbeatTick + 4, 8), 16),
    checkQuorum: rng.chance(0.3),
    preVote: rng.chance(0.85),
    controllerLatencyMs: rng.range(0, 10),
    controllerSlowMs: rng.pick([200, 1000, 6000]),
    controllerSlowChance: rng.pick([0, 0, 0.01, 0.05]),
    clockSkewMs: rng.pick([0, 0, 20, 500]),
    netDelayMs: rng.range(1, 20),
    netJitterMs: rng.range(0, 30),
    netLoss: rng.pick([0, 0, 0.01, 0.05, 0.1]),
    netDuplicate: rng.pick([0, 0, 0.01, 0.05]),
    routing: rng.chance(0.3) ? "registered" : "static",
    faultGapMs: rng.pick([500, 1000, 2000, 4000]),
    weights: {
      process: weight() + 1,
      controller: weight(),
      network: weight(),
      governance: weight(),
      powerLoss: weight(),
      wipe: rng.pick([0, 0, 1]),
    },
  };
}

function shuffled<T>(rng: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

export function describeParams(p: ChainParams): string {
  const w = Object.entries(p.weights)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return (
    `${p.nodes} nodes, validators [${p.validators.join(",")}], interval ${p.blockInterval}s, tick ${p.tickMs}ms ` +
    `hb ${p.heartbeatTick} el ${p.electionTick}${p.preVote ? " prevote" : ""}${p.checkQuorum ? " checkquorum" : ""}, ` +
    `controller ${p.controllerLatencyMs}ms (slow ${p.controllerSlowMs}ms x${p.controllerSlowChance}, clocks ±${p.clockSkewMs}ms), ` +
    `net ${p.netDelayMs}±${p.netJitterMs}ms loss ${p.netLoss} dup ${p.netDuplicate} ${p.routing}, ` +
    `faults every ~${p.faultGapMs}ms [${w}]`
  );
}
