// What an operator watching memory gets from a running binary: consensus_memory_bytes on the
// metrics port (RSS agreeing with /proc, the JS heap inside it), and on SIGUSR2 a heap snapshot
// in the working directory plus a log line, without stopping the service.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ensureBinary } from "../support/binary.ts";
import { parseMetrics, rssMiB } from "../support/chain-metrics.ts";
import { freePort } from "../support/free-port.ts";
import { waitUntil } from "../support/wait-until.ts";

const ADDRESS = "f805cf7df8dffc4fd9c98791d72d00c9587dc1d9";
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** `consensus run` alone (no network or controller: it keeps retrying to register), metrics on. */
async function startNode(): Promise<{ dir: string; proc: Subprocess<"ignore", "pipe", "pipe">; metricsPort: number; out: () => string }> {
  const bin = await ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "metrics-memory-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const [grpc, metricsPort, network, controller] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, "node_address"), ADDRESS);
  writeFileSync(
    join(dir, "config.toml"),
    `[consensus_raft]\nnode_addr = "node_address"\ngrpc_listen_port = ${grpc}\nmetrics_port = ${metricsPort}\n` +
      `network_port = ${network}\ncontroller_port = ${controller}\nraft_data_path = "raft-data"\n`,
  );
  const proc = Bun.spawn([bin, "run", "--stdout"], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  cleanups.push(() => proc.kill("SIGKILL"));
  let text = "";
  void (async () => {
    for await (const chunk of proc.stdout) text += Buffer.from(chunk).toString();
  })();
  const out = () => text;
  await waitUntil(() => out().includes("INFO metrics on "), "the metrics endpoint", 20_000, 20);
  return { dir, proc, metricsPort, out };
}

async function scrape(port: number): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
}

describe("memory of a running binary", () => {
  test("consensus_memory_bytes: RSS as /proc reports it, the JS heap within it", async () => {
    const { proc, metricsPort } = await startNode();
    const m = await scrape(metricsPort);
    const area = (a: string) => m.get(`consensus_memory_bytes{area="${a}"}`)!;
    const procRss = rssMiB(proc.pid) * (1 << 20);
    // Two readings a moment apart of a process that is starting up: close, not equal.
    expect(Math.abs(area("rss") - procRss) / procRss).toBeLessThan(0.2);
    expect(area("rss_peak")).toBeGreaterThanOrEqual(area("rss") * 0.95);
    expect(area("heap_used")).toBeGreaterThan(1 << 20);
    expect(area("heap_used")).toBeLessThanOrEqual(area("heap_total"));
    expect(area("heap_total")).toBeLessThan(area("rss"));
    expect(area("external")).toBeGreaterThan(0);
    expect(area("array_buffers")).toBeGreaterThanOrEqual(0);
  }, 60_000);

  test("SIGUSR2 writes a heap snapshot into the working directory and logs the figures; the service goes on", async () => {
    const { dir, proc, metricsPort, out } = await startNode();
    proc.kill("SIGUSR2");
    await waitUntil(() => out().includes("heap snapshot written"), "the snapshot log line", 20_000, 20);
    const line = out().split("\n").find((l) => l.includes("heap snapshot written"))!;
    expect(line).toMatch(/^\S+ INFO SIGUSR2: heap snapshot written rss=\d+ rss_peak=\d+ heap_used=\d+ .*top_types=\S+:\d+,/);
    const file = /file=(\S+)$/.exec(line)![1];
    expect(file).toStartWith(join(dir, `consensus-${proc.pid}-`));
    expect(file).toEndWith(".heapsnapshot");
    // The V8 format Chrome DevTools loads: a JSON object with the node and edge tables.
    const snap = JSON.parse(readFileSync(file, "utf8"));
    expect(snap.snapshot.node_count).toBeGreaterThan(1000);
    expect(snap.nodes.length).toBe(snap.snapshot.node_count * snap.snapshot.meta.node_fields.length);
    // Still serving, and a normal stop afterwards.
    expect((await scrape(metricsPort)).get('consensus_memory_bytes{area="rss"}')).toBeGreaterThan(0);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 60_000);
});
