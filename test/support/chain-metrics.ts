// Reading running nodes from the outside: their Prometheus text, the leader, their memory.
import { readFileSync } from "node:fs";
import type { DevChain } from "../../src/devchain/chain.ts";
import { parsePrometheusText as parseMetrics, type Scrape } from "../../src/metrics/text.ts";
import { waitUntil } from "./wait-until.ts";

export { parsePrometheusText as parseMetrics, type Scrape } from "../../src/metrics/text.ts";

/** Node i's metrics (throws if the endpoint does not answer). */
export async function scrapeNode(chain: DevChain, i: number): Promise<Scrape> {
  return parseMetrics(await (await fetch(`http://127.0.0.1:${chain.node(i).ports.metrics}/metrics`)).text());
}

/** Waits until some node reports itself leader and returns its index. */
export async function waitForLeader(chain: DevChain, timeoutMs = 60_000): Promise<number> {
  let leader = -1;
  await waitUntil(
    async () => {
      for (const n of chain.nodes) if ((await scrapeNode(chain, n.index)).get("consensus_is_leader") === 1) leader = n.index;
      return leader >= 0;
    },
    "a leader",
    timeoutMs,
    200,
  );
  return leader;
}

/** Resident memory of a process, MiB. */
export function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}
