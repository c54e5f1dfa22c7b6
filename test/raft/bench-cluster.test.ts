// The raft-core benchmark's cluster (bench/lib/raft-cluster.ts) must measure a correct run: every
// workload ends with all three nodes agreeing, the protobuf round-trip must not change what
// happens on the bus, and the end-of-run check must catch a divergent node.
import { describe, expect, test } from "bun:test";
import path from "node:path";
import { Cluster, payloads, percentile, runOnce } from "../../bench/lib/raft-cluster.ts";

const BENCH = path.resolve(import.meta.dir, "../../bench/raft-core.ts");

describe("raft-core bench cluster", () => {
  test("W1a and W1b runs verify, and marshalling every message changes nothing on the bus", () => {
    for (const workload of ["w1a", "w1b"] as const) {
      const o = { workload, n: workload === "w1a" ? 3000 : 300, size: 256, batch: 256, warmup: 50 };
      const plain = runOnce({ ...o, marshal: false });
      const wire = runOnce({ ...o, marshal: true });
      expect(plain.verified).toBe(true);
      expect(wire.verified).toBe(true);
      // Same seeds, same protocol: the same elections and the same number of messages.
      expect(wire.election_ticks).toBe(plain.election_ticks);
      expect(wire.messages_total).toBe(plain.messages_total);
      expect(plain.term).toBe(2); // one pre-vote round, one election: node 1 led throughout
    }
  });

  test("a sequential commit puts 8 messages on the bus, as in etcd (MsgApp, ack, commit MsgApp, ack; twice)", () => {
    const c = new Cluster(false);
    c.elect();
    const before = c.messagesSent();
    c.sequential(payloads(100, 256, 0));
    c.pumpUntilIdle();
    expect(c.messagesSent() - before).toBe(800);
  });

  test("verification refuses a node whose state machine diverged", () => {
    const c = new Cluster(false);
    c.elect();
    c.sequential(payloads(10, 64, 0));
    c.pumpUntilIdle();
    c.verify(10);
    c.nodes[2].sumLo ^= 1;
    expect(() => c.verify(10)).toThrow(/verify failed on node 3/);
  });

  test("payloads carry base+i+1 little-endian, like the anchor's, and percentiles use its rank rule", () => {
    const p = payloads(3, 16, 2 ** 40);
    expect(new DataView(p[2].buffer, p[2].byteOffset).getBigUint64(0, true)).toBe(2n ** 40n + 3n);
    expect(p[1][8]).toBe(9);
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(sorted, 50), percentile(sorted, 99), percentile(sorted, 100)]).toEqual([50, 99, 100]);
  });

  test("the CLI runs one measurement as one JSON line and refuses bad flags with exit 2", () => {
    const one = Bun.spawnSync([process.execPath, BENCH, "--one", "w1b", "--n", "200", "--warmup", "20"]);
    expect(one.exitCode).toBe(0);
    const r = JSON.parse(one.stdout.toString());
    expect(r).toMatchObject({ impl: "ts", workload: "w1b", n: 200, verified: true });
    for (const bad of [["--runs", "0"], ["--one", "w1c"], ["--n", "x", "--one", "w1a"], ["--bogus"]]) {
      const p = Bun.spawnSync([process.execPath, BENCH, ...bad]);
      expect(p.exitCode).toBe(2);
      expect(p.stderr.toString()).toMatch(/^raft-core bench: /);
    }
  });
});
