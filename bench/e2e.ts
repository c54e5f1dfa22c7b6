// End-to-end bench of the consensus node: 3 compiled binaries on loopback with the controller and
// network emulators (test/e2e harness), default storage (fsync per Ready), Raft timers as etcd's
// defaults (tick 100 ms, heartbeat 1 tick, election 10 ticks: 100 ms / 1000-2000 ms).
//  1. Block interval 0: blocks per second and consensus latency, per height from the moment the
//     leader's controller handed out the proposal to the moment the last controller had the block
//     (and, closer to an etcd put, to the moment the leader's own controller committed it).
//  2. Failover, several runs each: kill -9 of the leader, and SIGTERM (leader hand-off), timed to
//     the first block proposed by another node on a survivor's controller.
//
//   bun run bench/e2e.ts [--seconds 30] [--runs 5]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Health } from "../gen/health_check_pb.ts";
import { grpcClient } from "../src/devchain/grpc.ts";
import { E2EChain, median } from "../test/e2e/harness.ts";

const { values: args } = parseArgs({
  options: { seconds: { type: "string", default: "30" }, runs: { type: "string", default: "5" } },
});
const SECONDS = Number(args.seconds);
const RUNS = Number(args.runs);
const ETCD_TIMERS = { tickIntervalInMillis: 100, heartbeatTick: 1, electionTick: 10 };

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (x: number) => (x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1));

interface Throughput {
  blocks: number;
  seconds: number;
  lastNode: number[];
  leaderOnly: number[];
  synced: number;
  /** Medians of the leader's steps per block, from its log (ms resolution). */
  steps: Record<string, number>;
}

// A block's life on the leader, as its log tells it (the committer and proposer log each step).
const STEPS = [
  ["new proposal", "GetProposal answered"],
  ["pending proposal proposed", "proposed to Raft"],
  ["checking proposal..", "committed in Raft (replication round)"],
  ["committing proposal..", "CheckProposal answered"],
  ["block committed", "CommitBlock answered"],
] as const;

/** Median time of each step on `leader` for heights in (from, to]; the first step counts from the previous block's commit. */
function leaderSteps(e: E2EChain, leader: number, from: number, to: number): Record<string, number> {
  const at = new Map<string, number>();
  for (const line of e.log(leader).split("\n")) {
    const m = line.match(/^(\S+) .*?(new proposal|pending proposal proposed|checking proposal\.\.|committing proposal\.\.|block committed) height=(\d+)/);
    if (m && !at.has(`${m[2]}@${m[3]}`)) at.set(`${m[2]}@${m[3]}`, Date.parse(m[1]));
  }
  const out: Record<string, number> = {};
  for (let k = 0; k < STEPS.length; k++) {
    const gaps: number[] = [];
    for (let h = from + 2; h <= to; h++) {
      const prev = k === 0 ? at.get(`block committed@${h - 1}`) : at.get(`${STEPS[k - 1][0]}@${h}`);
      const now = at.get(`${STEPS[k][0]}@${h}`);
      if (prev !== undefined && now !== undefined) gaps.push(now - prev);
    }
    if (gaps.length > 0) out[STEPS[k][1]] = median(gaps);
  }
  return out;
}

/** Blocks committed during `seconds` of steady state, with per-height latencies. */
async function throughput(e: E2EChain): Promise<Throughput> {
  await e.waitHeight(5);
  const { index: leader } = await e.leader(e.all());
  const from = Math.min(...e.chain.heights());
  const t0 = performance.now();
  await Bun.sleep(SECONDS * 1000); // the measurement window itself
  const to = Math.min(...e.chain.heights());
  const seconds = (performance.now() - t0) / 1000;
  const lastNode: number[] = [];
  const leaderOnly: number[] = [];
  let synced = 0;
  for (let h = from + 1; h <= to; h++) {
    const blocks = e.chain.controllers.map((c) => c.block(h)!);
    const proposer = e.chain.nodes.findIndex((n) => Buffer.from(blocks[0].header.proposer).equals(n.address));
    const handedOut = e.chain.node(proposer).controller.proposalAnsweredAt(h);
    if (handedOut === undefined) continue;
    lastNode.push(Math.max(...blocks.map((b) => b.appendedAt)) - handedOut);
    leaderOnly.push(blocks[proposer].appendedAt - handedOut);
    synced += blocks.filter((b) => b.source === "sync").length;
  }
  return { blocks: to - from, seconds, lastNode, leaderOnly, synced, steps: leaderSteps(e, leader, from, to) };
}

/**
 * Sequential health checks on node 0 while the chain runs: the cost of one loopback gRPC round
 * trip at this moment, the unit a block's critical path is made of (about 7 calls: GetProposal,
 * SendMsg + ProcessNetworkMsg for the append and again for its ack, CheckProposal, CommitBlock).
 */
async function rpcRoundTrip(e: E2EChain): Promise<number[]> {
  const client = grpcClient(Health, e.chain.node(0).ports.grpc, "bench", 5000);
  const out: number[] = [];
  for (let k = 0; k < 300; k++) {
    const t = performance.now();
    await client.check({ service: "" });
    out.push(performance.now() - t);
  }
  return out;
}

/** One failover: stop the leader (kill -9 or SIGTERM), time the first block by another node, then bring it back. */
async function failover(e: E2EChain, how: "kill" | "term"): Promise<number> {
  const { index: old } = await e.leader(e.all());
  const survivors = e.all().filter((i) => i !== old);
  const h0 = e.top();
  const t0 = performance.now();
  const stopped = how === "kill" ? e.chain.killConsensus(old) : e.chain.stopConsensus(old);
  const took = await e.waitBlockBy(h0, survivors, (p) => p !== old, 60_000, t0);
  await stopped;
  const mark = e.logMark(old);
  e.chain.startConsensus(old);
  await e.waitLog(old, "block committed", mark);
  await e.leader(e.all());
  return took;
}

function load(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

const started = new Date();
console.log(`e2e bench: 3 nodes, block_interval 0, fsync on, tick 100 ms / heartbeat 1 / election 10; ${SECONDS} s window, ${RUNS} failover runs each`);
console.log(`start ${started.toISOString()}, load average ${load()}`);

const e = await E2EChain.start({ nodes: 3, seed: "bench-e2e", blockInterval: 0, raft: ETCD_TIMERS });
let tp: Throughput;
let rpc: number[];
const kills: number[] = [];
const terms: number[] = [];
try {
  tp = await throughput(e);
  console.log(`throughput done: ${tp.blocks} blocks in ${tp.seconds.toFixed(1)} s; load average ${load()}`);
  rpc = await rpcRoundTrip(e);
  for (let r = 0; r < RUNS; r++) {
    kills.push(await failover(e, "kill"));
    terms.push(await failover(e, "term"));
    console.log(`failover run ${r + 1}: kill -9 ${ms(kills[r])} ms, SIGTERM ${ms(terms[r])} ms; load average ${load()}`);
  }
  e.chain.assertNoFork();
} finally {
  await e.close();
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b).map(ms).join(", ");
console.log(`
| metric | consensus (TS, this run) | etcd 3.4 anchor (same machine) |
|---|---|---|
| blocks/s (etcd: sequential puts/s, 1 client) | ${(tp.blocks / tp.seconds).toFixed(1)} | 1,073 |
| latency p50, proposal handed out → last node committed | ${ms(quantile(tp.lastNode, 0.5))} ms | — |
| latency p99, same | ${ms(quantile(tp.lastNode, 0.99))} ms | — |
| latency p50, proposal handed out → leader's controller committed (etcd: put p50) | ${ms(quantile(tp.leaderOnly, 0.5))} ms | 0.87 ms |
| latency p99, same (etcd: put p99) | ${ms(quantile(tp.leaderOnly, 0.99))} ms | 2.06 ms |
| loopback gRPC round trip p50 / p99 (health check, during the run) | ${ms(quantile(rpc, 0.5))} / ${ms(quantile(rpc, 0.99))} ms | — |
| kill -9 failover, median of ${RUNS} | ${ms(median(kills))} ms (${sorted(kills)}) | 1,369 ms small state, 1,115 ms after load |
| SIGTERM failover (hand-off), median of ${RUNS} | ${ms(median(terms))} ms (${sorted(terms)}) | — |

where a block's time goes on the leader (medians): ${Object.entries(tp.steps).map(([k, v]) => `${k} +${v} ms`).join(", ")}
blocks that reached a controller through block sync instead of its consensus: ${tp.synced} of ${tp.blocks * 3}
end ${new Date().toISOString()}, load average ${load()}`);
