// A controller that stops answering for 30 seconds, under the leader of a running chain (compiled
// consensus processes on the devchain emulators). Its calls hang until their deadlines; meanwhile the
// chain goes on without it (the emulator still syncs blocks from its peers, as the real one does). Nothing in that node may pile up: not calls to the controller, not
// memory. Afterwards it catches up and commits everything in order.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { DevChain } from "../../src/devchain/chain.ts";
import { ensureBinary } from "../support/binary.ts";
import { rssMiB, scrapeNode, waitForLeader } from "../support/chain-metrics.ts";
import { waitUntil } from "../support/wait-until.ts";

const HANG_MS = 30_000;

describe("a controller that stops answering for 30 seconds", () => {
  let chain: DevChain;
  const pids: number[] = [];

  beforeAll(async () => {
    const binary = await ensureBinary();
    chain = await DevChain.create({ nodes: 3, seed: "controller-hang", consensusCommand: [binary], blockInterval: 1 });
    for (const n of chain.nodes) pids[n.index] = chain.startConsensus(n.index).pid;
  }, 240_000);
  afterAll(async () => {
    await chain?.close();
  });

  const scrape = (i: number) => scrapeNode(chain, i);

  test("under the leader: no pile-up of calls or memory, the chain goes on, and the node catches up in order", async () => {
    await chain.waitForHeight(3, 90_000);
    const hung = await waitForLeader(chain);
    const rss = () => rssMiB(pids[hung]);
    const controller = chain.node(hung).controller;
    const others = chain.nodes.filter((n) => n.index !== hung).map((n) => n.index);
    const calls = () => Object.values(controller.callCounts).reduce((a, b) => a + b, 0);

    const baseline = rss();
    const callsBefore = calls();
    const othersBefore = Math.min(...others.map((i) => chain.node(i).controller.height));
    const hungHeight = controller.height;
    controller.hang(HANG_MS);
    const started = performance.now();
    let peak = baseline;
    let backlogPeak = 0;
    let outboundPeak = 0;
    while (performance.now() - started < HANG_MS) {
      peak = Math.max(peak, rss());
      const m = await scrape(hung);
      backlogPeak = Math.max(backlogPeak, m.get("consensus_commit_backlog") ?? 0);
      outboundPeak = Math.max(outboundPeak, m.get('consensus_queue_depth{queue="peer_outbound"}') ?? 0);
      await Bun.sleep(250);
    }
    const callsDuring = calls() - callsBefore;
    const othersAfter = Math.min(...others.map((i) => chain.node(i).controller.height));
    console.log(
      `hung controller under node ${hung}: ${callsDuring} calls reached it in ${HANG_MS / 1000} s; RSS ${baseline.toFixed(1)} MiB before, ` +
        `peak ${peak.toFixed(1)} MiB; commit backlog peak ${backlogPeak}, outbound queue peak ${outboundPeak}; ` +
        `the others went from ${othersBefore} to ${othersAfter}; load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
    );

    // The chain went on without the hung node (leadership moved away from it).
    expect(othersAfter - othersBefore).toBeGreaterThanOrEqual(5);
    // No pile-up: one call at a time, each waiting out its deadline, so a handful reached the controller.
    expect(callsDuring).toBeLessThanOrEqual(20);
    // The committed entries it could not hand over wait in order, one per block the others committed.
    expect(backlogPeak).toBeLessThanOrEqual(othersAfter - hungHeight + 2);
    expect(peak - baseline).toBeLessThan(100);

    // Afterwards: it catches up with the others, its backlog drains, and every chain agrees.
    const target = Math.max(...chain.heights());
    await chain.waitForHeight(target + 2, 120_000);
    await waitUntil(async () => (await scrape(hung)).get("consensus_commit_backlog") === 0, "the backlog to drain", 60_000, 250);
    chain.assertNoFork();
    expect(chain.isConsensusRunning(hung)).toBe(true);
  }, 360_000);
});
