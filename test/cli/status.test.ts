// `consensus status` as an operator runs it: the compiled binary against stand-in /status
// endpoints (a leader, followers, a node that lags, one that is down, one that never answers, a
// port that is not consensus), and the table it prints from a chain's answers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as http from "node:http";
import * as net from "node:net";
import type { ArgsDef } from "citty";
import { parseFlags, repeatable } from "../../src/cli/argv.ts";
import { UsageError } from "../../src/cli/errors.ts";
import { formatMs, renderStatusTable, type StatusResult } from "../../src/cli/status.ts";
import type { NodeStatusJson } from "../../src/node/status.ts";
import { ensureBinary } from "../support/binary.ts";

const A = "0x00000000000000aa";
const B = "0x00000000000000bb";
const C = "0x00000000000000cc";

function node(id: string, over: Partial<NodeStatusJson> = {}): NodeStatusJson {
  return {
    version: "6.7.4",
    id,
    address: `0x${id.slice(-2).repeat(20)}`,
    serving: true,
    uptime_seconds: 125,
    raft_running: true,
    role: "follower",
    term: 7,
    leader: A,
    leader_address: `0x${"aa".repeat(20)}`,
    leaderless_ms: 0,
    commit_index: 30,
    applied_index: 30,
    last_index: 30,
    height: 20,
    block_interval_seconds: 3,
    voters: [A, B, C],
    voters_outgoing: [],
    learners: [],
    commit_backlog: 0,
    last_block: { height: 20, commit_latency_ms: 12, age_ms: 800 },
    peers: null,
    ...over,
  };
}

const leader = node(A, {
  role: "leader",
  peers: [
    { id: B, address: `0x${"bb".repeat(20)}`, learner: false, match: 30, next: 31, lag: 0, state: "replicate", recent_active: true, last_heard_ms: 40 },
    { id: C, address: `0x${"cc".repeat(20)}`, learner: false, match: 24, next: 25, lag: 6, state: "probe", recent_active: false, last_heard_ms: null },
  ],
});
const follower = node(B);
const lagging = node(C, { height: 14, commit_index: 24, applied_index: 24, last_index: 24, commit_backlog: 3 });

describe("the table", () => {
  const ok = (addr: string, status: NodeStatusJson): StatusResult => ({ addr, ok: true, status });

  test("a row per node with its lag behind the highest; the leader all agree on; the leader's view of its peers", () => {
    const text = renderStatusTable([ok("n0:60001", leader), ok("n1:60001", follower), ok("n2:60001", lagging)]);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^NODE +ID +ROLE +TERM +LEADER +HEIGHT +LAG +LAST BLOCK +COMMIT TIME +BACKLOG +UPTIME$/);
    expect(lines[1]).toMatch(new RegExp(`^n0:60001 +${A} +leader +7 +${A} +20 +0 +800 ms ago +12 ms +0 +2m05s$`));
    expect(lines[3]).toMatch(new RegExp(`^n2:60001 +${C} +follower +7 +${A} +14 +6 +800 ms ago +12 ms +3 +2m05s$`));
    expect(text).toContain(`leader ${A} (n0:60001), term 7: all 3 answering nodes agree`);
    expect(text).toContain("peers, as the leader n0:60001 sees them (its last index 30):");
    expect(text).toMatch(new RegExp(`\\n  ${B} +0x(bb){20} +voter +30 +31 +0 +replicate +yes +40 ms ago\\n`));
    expect(text).toMatch(new RegExp(`\\n  ${C} +0x(cc){20} +voter +24 +25 +6 +probe +no +never\\n`));
  });

  test("a node that does not answer gets a row with the reason; disagreement and no leader are spelled out", () => {
    const down: StatusResult = { addr: "n2:60001", ok: false, reason: "cannot reach n2:60001: connection refused" };
    const text = renderStatusTable([ok("n0:60001", node(A, { leader: null, role: "pre-candidate" })), ok("n1:60001", follower), down]);
    expect(text).toMatch(/\nn2:60001 +- +unreachable( +-)+ +cannot reach n2:60001: connection refused\n/);
    expect(text).toContain(`nodes disagree on the leader: none by n0:60001; ${A} by n1:60001`);
    const none = renderStatusTable([ok("n0:60001", node(A, { leader: null })), ok("n1:60001", node(B, { leader: null }))]);
    expect(none).toContain("no leader: none of the 2 answering nodes knows one");
    expect(none).toMatch(/\nn0:60001 +\S+ +follower +7 +none /);
  });

  test("a node that is not a validator shows no Raft state; one that is not SERVING says so", () => {
    const text = renderStatusTable([ok("n9:60001", node("0x0000000000000099", { raft_running: false, role: null, term: null, leader: null, height: null, last_block: null, commit_backlog: null, serving: false }))]);
    expect(text).toMatch(/\nn9:60001 +0x0000000000000099 +no raft +- +- +- +- +- +- +- +2m05s \(NOT SERVING\)\n/);
  });

  test("durations read at a glance", () => {
    expect([0.4, 184, 2_345, 245_000, 11_340_000, 190_000_000].map(formatMs)).toEqual(["0 ms", "184 ms", "2.3 s", "4m05s", "3h09m", "2d04h"]);
  });
});

describe("flags", () => {
  const defs: ArgsDef = { addr: repeatable({ type: "string" }), timeout: { type: "string" } };
  test("--addr may be repeated, other flags may not", () => {
    expect(parseFlags("consensus status", ["--addr", "a:1", "--addr=b:2"], defs).normalized).toEqual(["--addr=a:1", "--addr=b:2"]);
    expect(() => parseFlags("consensus status", ["--timeout", "1", "--timeout", "2"], defs)).toThrow(UsageError);
  });
});

describe("the binary", () => {
  let bin: string;
  const servers: (http.Server | net.Server)[] = [];
  let leaderPort: number;
  let followerPort: number;
  let laggingPort: number;
  let silentPort: number;
  let notConsensusPort: number;
  let closedPort: number;

  async function listen(s: http.Server | net.Server): Promise<number> {
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    return (s.address() as net.AddressInfo).port;
  }
  const serveJson = (body: unknown) =>
    listen(
      http.createServer((req, res) => {
        if (req.url === "/status") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
        else res.writeHead(404).end();
      }),
    );

  beforeAll(async () => {
    bin = await ensureBinary();
    leaderPort = await serveJson(leader);
    followerPort = await serveJson(follower);
    laggingPort = await serveJson(lagging);
    silentPort = await listen(net.createServer(() => {})); // accepts, never answers
    notConsensusPort = await listen(http.createServer((_q, res) => res.writeHead(404).end("no")));
    const probe = net.createServer();
    closedPort = await listen(probe);
    probe.close();
    servers.pop();
  }, 180_000);
  afterAll(() => servers.forEach((s) => s.close()));

  async function status(...args: string[]) {
    const proc = Bun.spawn([bin, "status", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  }
  const at = (port: number) => ["--addr", `127.0.0.1:${port}`];

  test("three nodes: exit 0, the table names the leader and the lagging node", async () => {
    const r = await status(...at(leaderPort), ...at(followerPort), ...at(laggingPort));
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toContain(`leader ${A} (127.0.0.1:${leaderPort}), term 7: all 3 answering nodes agree`);
    expect(r.stdout).toMatch(new RegExp(`\\n127\\.0\\.0\\.1:${laggingPort} +${C} +follower +7 +${A} +14 +6 `));
  });

  test("-o json prints one node's JSON as is, several as a list with the address of each", async () => {
    const one = await status(...at(leaderPort), "-o", "json");
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toEqual(leader);
    const two = await status(...at(followerPort), ...at(closedPort), "--output=json", "--timeout", "2000");
    expect(two.code).toBe(1);
    expect(JSON.parse(two.stdout)).toEqual([
      { addr: `127.0.0.1:${followerPort}`, status: follower },
      { addr: `127.0.0.1:${closedPort}`, error: `cannot reach 127.0.0.1:${closedPort}: connection refused` },
    ]);
  });

  test("no answer, a refused connection or a port that is not consensus: exit 1 with one line on stderr", async () => {
    const silent = await status(...at(silentPort), "--timeout", "300");
    expect(silent).toEqual({ code: 1, stdout: "", stderr: `consensus: no status: no answer from 127.0.0.1:${silentPort} within 300 ms\n` });
    const refused = await status(...at(closedPort));
    expect(refused).toEqual({ code: 1, stdout: "", stderr: `consensus: no status: cannot reach 127.0.0.1:${closedPort}: connection refused\n` });
    const other = await status(...at(notConsensusPort));
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(`consensus: no status: 127.0.0.1:${notConsensusPort} answered HTTP 404 (not the metrics port of a consensus service that serves /status)\n`);
  });

  test("a node down among several: the others are still shown, exit 1", async () => {
    const r = await status(...at(leaderPort), ...at(closedPort));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`127.0.0.1:${leaderPort}  ${A}  leader`);
    expect(r.stdout).toMatch(new RegExp(`\\n127\\.0\\.0\\.1:${closedPort} +- +unreachable`));
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("usage errors exit 2; --help documents the flags like the other subcommands", async () => {
    for (const [args, message] of [
      [["--addr", "nohost"], "--addr 'nohost' is not host:port or [ipv6]:port"],
      [["-o", "yaml"], "--output 'yaml' must be table or json"],
      [["--timeout", "0"], "--timeout '0' is not a whole number"],
      [["--timeout", "1", "--timeout", "2"], "'--timeout' cannot be used more than once"],
      [["extra"], "unexpected argument 'extra'"],
    ] as const) {
      const r = await status(...args);
      expect([args, r.code, r.stdout]).toEqual([args, 2, ""]);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toEndWith("(see 'consensus status --help')\n");
    }
    const help = await status("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: consensus status [OPTIONS]");
    expect(help.stdout).toMatch(/ {6}--addr <host:port> +metrics address of a node .*repeat it .* \[default: localhost:60001\]/);
    expect(help.stdout).toMatch(/ {2}-o, --output <table\|json> +.* \[default: table\]/);
    const root = Bun.spawnSync([bin, "--help"]).stdout.toString();
    expect(root).toMatch(/\n {2}status +show the Raft state of running nodes/);
  });
});
