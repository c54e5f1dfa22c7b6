// `consensus demo`: a scripted run (kill -9 the leader, watch the failover, restart it) through the
// compiled binary reaches a height, reports the failover and exits 0 leaving nothing behind;
// Ctrl-C stops it cleanly; on a terminal the `k` key kills the leader. The view and the metrics
// parsing it relies on are checked against the real exporter.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { parseNodeMetrics } from "../../src/cli/demo-session.ts";
import { type DemoView, renderFrame, renderLine } from "../../src/cli/demo-view.ts";
import { ConsensusMetrics } from "../../src/metrics/metrics.ts";
import { ensureBinary } from "../support/binary.ts";
import { waitUntil } from "../support/wait-until.ts";

let bin: string;
const running = new Set<{ kill(signal?: number | NodeJS.Signals): void; exited: Promise<number> }>();
beforeAll(async () => {
  bin = await ensureBinary();
}, 180_000);
// A demo left running by a failed test is stopped the clean way first: SIGKILL would orphan its nodes.
afterAll(async () => {
  await Promise.all(
    [...running].map(async (p) => {
      p.kill("SIGTERM");
      const timer = setTimeout(() => p.kill("SIGKILL"), 15_000);
      await p.exited;
      clearTimeout(timer);
    }),
  );
}, 30_000);

interface DemoRun {
  code: number;
  output: string;
  workDir: string;
}

/** Processes whose working directory is inside `dir` (the demo's consensus nodes run in node dirs). */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`).startsWith(dir)) pids.push(Number(pid));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

/** Runs the demo with stdout on a pipe; `during` may act on the live output. */
async function demo(args: string[], during?: (output: () => string, proc: { kill(s: NodeJS.Signals): void }) => Promise<void>): Promise<DemoRun> {
  const proc = Bun.spawn([bin, "demo", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  let output = "";
  const reader = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) output += decoder.decode(chunk, { stream: true });
  })();
  const stderr = new Response(proc.stderr).text();
  if (during) await during(() => output, proc);
  const code = await proc.exited;
  await reader;
  running.delete(proc);
  output += await stderr;
  return { code, output, workDir: /work dir (\S+)/.exec(output)?.[1] ?? "" };
}

describe("a scripted run", () => {
  let run: DemoRun;
  beforeAll(async () => {
    run = await demo(["--nodes", "3", "--block-interval", "1", "--duration", "30", "--kill-leader-after", "8"]);
  }, 150_000);

  test("exits 0 with a summary: blocks committed, no fork", () => {
    expect(run.output).toContain("demo finished after");
    expect(run.code).toBe(0);
    expect(run.output).toContain("no fork: every block height is identical on all 3 controllers");
    const heights = /heights: node0 (\d+), node1 (\d+), node2 (\d+)/.exec(run.output);
    expect(heights).not.toBeNull();
    expect(Math.max(...heights!.slice(1).map(Number))).toBeGreaterThanOrEqual(4);
  });

  test("shows the failover: the leader killed, a new one elected, the chain going on, the old one restarted", () => {
    const killed = /kill -9 (node\d), the leader \(term (\d+)\)/.exec(run.output);
    expect(killed).not.toBeNull();
    const [, victim, term] = killed!;
    const after = run.output.slice(killed!.index);
    const elected = /(node\d) is the new leader/.exec(after);
    expect(elected).not.toBeNull();
    expect(elected![1]).not.toBe(victim);
    const withTerm = /(node\d) is the (?:new )?leader \(term (\d+)\)/.exec(after);
    expect(withTerm![1]).toBe(elected![1]);
    expect(Number(withTerm![2])).toBeGreaterThan(Number(term));
    expect(run.output).toMatch(/block \d+ from the new leader committed \d+ ms after the kill/);
    expect(run.output).toContain(`restarted ${victim}`);
    expect(run.output).toMatch(new RegExp(`kill -9 of leader ${victim} at height \\d+: new leader ≈\\d+ ms, next block after \\d+ ms`));
  });

  test("prints plain status lines when stdout is not a terminal", () => {
    expect(run.output).not.toContain("\x1b[");
    expect(run.output).toMatch(/^\+\d+\.\ds {2}heights \d+ \d+ \d+/m);
  });

  test("leaves no process and no work dir behind", () => {
    expect(run.workDir).toMatch(/devchain-/);
    expect(existsSync(run.workDir)).toBe(false);
    expect(processesIn(run.workDir)).toEqual([]);
  });
});

test("Ctrl-C (SIGINT) stops the chain cleanly: summary, exit 0, nothing left running", async () => {
  const run = await demo(["--nodes", "3"], async (output, proc) => {
    await waitUntil(() => /is the leader/.test(output()), "a leader in the demo output", 60_000, 100);
    proc.kill("SIGINT");
  });
  expect(run.output).toContain("stopping the chain");
  expect(run.output).toContain("no fork");
  expect(run.code).toBe(0);
  expect(existsSync(run.workDir)).toBe(false);
  expect(processesIn(run.workDir)).toEqual([]);
}, 120_000);

test.skipIf(!Bun.which("script"))("on a terminal: a live table, and the k key kills the leader", async () => {
  // script(1) gives the demo a pseudo-terminal; what we write to its stdin arrives as key presses.
  const proc = Bun.spawn(["script", "-qfec", `${bin} demo --nodes 3 --duration 40`, "/dev/null"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, TERM: "xterm", COLUMNS: "120", LINES: "40" },
  });
  running.add(proc);
  let output = "";
  const reader = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) output += decoder.decode(chunk, { stream: true });
  })();
  await waitUntil(() => /leader node\d \(term \d+\)/.test(output), "a leader in the live table", 60_000, 100);
  proc.stdin.write("k");
  proc.stdin.flush();
  await waitUntil(() => /kill -9 node\d, the leader/.test(output), "the kill in the event list", 20_000, 100);
  proc.stdin.write("q");
  proc.stdin.flush();
  expect(await proc.exited).toBe(0);
  await reader;
  running.delete(proc);
  expect(output).toContain("\x1b[2K  node   process"); // the table, redrawn line by line
  expect(output).toMatch(/kill -9 of leader node\d at height \d+/);
  expect(output).toContain("no fork");
}, 120_000);

test("usage errors exit 2 before anything starts", async () => {
  for (const [args, message] of [
    [["--nodes", "0"], "--nodes '0' must be a whole number in 1..9"],
    [["--block-interval", "1.5"], "--block-interval '1.5'"],
    [["--duration", "5", "--kill-leader-after", "5"], "--kill-leader-after must be shorter than --duration"],
  ] as const) {
    const proc = Bun.spawnSync([bin, "demo", ...args]);
    expect(proc.exitCode).toBe(2);
    expect(proc.stderr.toString()).toContain(message);
    expect(proc.stdout.toString()).toBe("");
  }
});

describe("the view", () => {
  test("reads term, role and leader from the real exporter's text", async () => {
    const metrics = new ConsensusMetrics([1], () => ({
      raftRunning: true,
      term: 7,
      role: 2,
      leaderHex: "0x52637c58fd4bfda4",
      commit: 10,
      applied: 10,
      lastIndex: 10,
      height: 4n,
      committerBacklog: 0,
      blockIntervalSeconds: 1,
      voters: 3,
      leaderlessSeconds: 0,
      lastBlockAgeSeconds: 0.4,
    }));
    expect(parseNodeMetrics(await metrics.text())).toEqual({ term: 7, role: 2, leaderHex: "0x52637c58fd4bfda4" });
    const idle = new ConsensusMetrics([1], () => undefined);
    expect(parseNodeMetrics(await idle.text())).toBeUndefined(); // no Raft peer running: no state to show
  });

  const view: DemoView = {
    elapsedMs: 12_345,
    nodes: [
      { name: "node0", process: "up", height: 12, role: "leader", term: 7, lastCommit: 21.4 },
      { name: "node1", process: "up", height: 12, role: "follower", term: 7, lastCommit: 30 },
      { name: "node2", process: "killed", height: 9 },
    ],
    leader: { name: "node0", term: 7 },
    blocksPerSecond: 0.94,
    events: ["+4.8s  node0 is the leader (term 7)"],
  };

  test("a table row per node, the leader line and the events", () => {
    const frame = renderFrame(view, "consensus demo · 3 nodes", "keys: q quit");
    expect(frame[0]).toBe("consensus demo · 3 nodes · 12.3s");
    expect(frame).toContain("  node0  up       12      leader    7     21 ms");
    expect(frame).toContain("  node2  killed   9       -         -     -");
    expect(frame).toContain("  leader node0 (term 7) · 0.9 blocks/s");
    expect(frame).toContain("  +4.8s  node0 is the leader (term 7)");
    expect(frame.at(-1)).toBe("  keys: q quit");
  });

  test("the plain line marks nodes that are down", () => {
    expect(renderLine(view)).toBe("+12.3s  heights 12 12 9(killed) · leader node0 (term 7) · 0.9 blocks/s · last commit 30 ms");
  });
});
