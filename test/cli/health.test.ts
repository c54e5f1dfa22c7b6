// `consensus health`, the probe built into the binary: exit 0 only for SERVING, 1 with one line on
// stderr for any other answer or no answer, 2 for usage errors. Run as the compiled binary against
// a real `consensus run`, against the service's own gRPC server with a scripted health state, and
// against ports where nothing (or something that is not gRPC) listens.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HealthCheckResponse_ServingStatus as Status } from "../../gen/health_check_pb.ts";
import { parseGoDuration, parseProbeFlags } from "../../src/cli/grpc-health-probe.ts";
import { parseAddr, parseTimeout } from "../../src/cli/health.ts";
import { UsageError } from "../../src/cli/errors.ts";
import { silentLogger } from "../../src/devchain/log.ts";
import { freePorts } from "../../src/devchain/grpc.ts";
import { createGrpcServer, type GrpcServer } from "../../src/rpc/server.ts";
import { ensureBinary } from "../support/binary.ts";
import { waitUntil } from "../support/wait-until.ts";

const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
});

let bin: string;
/** The binary under the name `grpc-health-probe` (a symlink, as in the image). */
let probeBin: string;
beforeAll(async () => {
  bin = await ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "health-probe-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  probeBin = join(dir, "grpc-health-probe");
  symlinkSync(bin, probeBin);
}, 180_000);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function spawn(argv: string[]): Promise<Ran> {
  const t0 = performance.now();
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

const health = (...args: string[]) => spawn([bin, "health", ...args]);
const grpcHealthProbe = (...args: string[]) => spawn([probeBin, ...args]);

function usageMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).command).toBe("consensus health");
    return (e as Error).message;
  }
  throw new Error("expected a usage error");
}

describe("address and timeout flags", () => {
  test.each([
    ["localhost:50001", "localhost", 50001, "http://localhost:50001"],
    ["127.0.0.1:1", "127.0.0.1", 1, "http://127.0.0.1:1"],
    ["[::1]:65535", "::1", 65535, "http://[::1]:65535"],
    ["consensus.node0.svc:50001", "consensus.node0.svc", 50001, "http://consensus.node0.svc:50001"],
  ])("%s is host %s, port %d", (addr, host, port, url) => {
    expect(parseAddr(addr)).toEqual({ host, port, url });
  });

  test.each(["localhost", ":50001", "localhost:", "::1:50001", "[::1]", "host:0", "host:65536", "host:123456", "a b:1", "http://localhost:50001", "[::1:50001", "[fe80::1%eth0]:50001"])(
    "%p is refused",
    (addr) => {
      expect(usageMessage(() => parseAddr(addr))).toContain(`'${addr}'`);
    },
  );

  test("timeouts are whole milliseconds, at least 1", () => {
    expect(parseTimeout("1")).toBe(1);
    expect(parseTimeout("2147483647")).toBe(2147483647);
    for (const bad of ["0", "-5", "1.5", "1e3", "", "2147483648", "soon"]) {
      expect(usageMessage(() => parseTimeout(bad))).toContain("--timeout");
    }
  });
});

describe("against a running `consensus run`", () => {
  let port: number;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "health-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [grpc, metrics, network, controller] = await freePorts(4);
    port = grpc;
    writeFileSync(join(dir, "node_address"), "f805cf7df8dffc4fd9c98791d72d00c9587dc1d9");
    writeFileSync(
      join(dir, "config.toml"),
      `[consensus_raft]\nnode_addr = "node_address"\ngrpc_listen_port = ${grpc}\nmetrics_port = ${metrics}\nnetwork_port = ${network}\ncontroller_port = ${controller}\n`,
    );
    // No network or controller next to it: the service still serves (the Rust one did not even listen).
    const node = Bun.spawn([bin, "run", "-c", "config.toml", "--stdout"], { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    cleanups.push(() => node.kill("SIGKILL"));
    await waitUntil(async () => node.exitCode !== null || (await health("--addr", `localhost:${port}`)).code === 0, "the node to serve", 60_000, 100);
    expect(node.exitCode).toBeNull();
  }, 90_000);

  test("SERVING: exit 0, the status on stdout, nothing on stderr", async () => {
    const r = await health("--addr", `localhost:${port}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^SERVING \\(localhost:${port}, [\\d.]+ ms\\)\\n$`));
    expect(r.stderr).toBe("");
  });

  test("over IPv6 loopback and IPv4 literals alike (the server listens on [::])", async () => {
    expect((await health("--addr", `[::1]:${port}`)).code).toBe(0);
    expect((await health("--addr", `127.0.0.1:${port}`, "--timeout", "5000")).code).toBe(0);
  });
});

describe("against the service's gRPC server with a scripted health", () => {
  let server: GrpcServer;
  let status = Status.NOT_SERVING;
  beforeAll(async () => {
    server = createGrpcServer({
      port: 0,
      host: "::",
      log: silentLogger(),
      handlers: { reconfigure: () => {}, networkMsg: () => {}, health: () => status },
    });
    await server.start();
    cleanups.push(() => server.stop(0));
  });

  test.each([
    ["NOT_SERVING", Status.NOT_SERVING],
    ["UNKNOWN", Status.UNKNOWN],
  ])("%s: exit 1 and one line naming the status", async (name, s) => {
    status = s;
    const r = await health("--addr", `localhost:${server.port}`);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`consensus: unhealthy: localhost:${server.port} answered ${name}\n`);
  });

  test("the answer follows the service's state: SERVING again gives exit 0", async () => {
    status = Status.SERVING;
    expect((await health("--addr", `localhost:${server.port}`)).code).toBe(0);
  });
});

describe("no answer", () => {
  test("nothing listening: exit 1, 'cannot reach'", async () => {
    const [port] = await freePorts(1);
    const r = await health("--addr", `localhost:${port}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^consensus: unhealthy: cannot reach localhost:${port}: .*ECONNREFUSED.*\\n$`));
  });

  test("a server that accepts and never answers: exit 1 once the timeout has passed", async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => {});
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const port = (silent.address() as net.AddressInfo).port;
    const r = await health("--addr", `127.0.0.1:${port}`, "--timeout", "300");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`consensus: unhealthy: no answer from 127.0.0.1:${port} within 300 ms\n`);
    // The deadline covers connecting too; the rest is process start-up (generous on a shared machine).
    expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(r.ms).toBeLessThan(10_000);
  });

  test("something that is not a gRPC server: exit 1 with one line", async () => {
    const web = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("hello") });
    cleanups.push(() => web.stop(true));
    const r = await health("--addr", `127.0.0.1:${web.port}`, "--timeout", "3000");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^consensus: unhealthy: .+\n$/);
  });
});

describe("usage errors exit 2", () => {
  test.each([
    [["--addr", "nope"], "--addr 'nope' is not host:port or [ipv6]:port"],
    [["--timeout", "0"], "--timeout '0'"],
    [["--bogus"], "unexpected argument '--bogus'"],
    [["--addr"], "a value is required for '--addr <host:port>'"],
  ])("%p", async (args, message) => {
    const r = await health(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.split("\n")).toHaveLength(2);
  });
});

describe("as grpc-health-probe (cloud-config's liveness probe for the Rust image)", () => {
  test("Go durations", () => {
    expect(parseGoDuration("1s")).toBe(1000);
    expect(parseGoDuration("250ms")).toBe(250);
    expect(parseGoDuration("1m30s")).toBe(90_000);
    expect(parseGoDuration("1.5s")).toBe(1500);
    expect(parseGoDuration("500us")).toBe(0.5);
    for (const bad of ["1", "s", "-1s", "1sec", ""]) expect(() => parseGoDuration(bad)).toThrow("invalid duration");
  });

  test("its flags, in Go's spellings; one deadline of both timeouts", () => {
    expect(parseProbeFlags(["-addr=localhost:50001"])).toEqual({ addr: "localhost:50001", service: "", connectTimeoutMs: 1000, rpcTimeoutMs: 1000 });
    expect(parseProbeFlags(["--addr", "[::1]:1", "-service", "x", "-connect-timeout=250ms", "-rpc-timeout", "2s", "-v", "-gzip=false"])).toEqual({
      addr: "[::1]:1",
      service: "x",
      connectTimeoutMs: 250,
      rpcTimeoutMs: 2000,
    });
    expect(() => parseProbeFlags([])).toThrow("-addr not specified");
    expect(() => parseProbeFlags(["-addr"])).toThrow("flag needs an argument: -addr");
    expect(() => parseProbeFlags(["-addr=x:1", "-bogus"])).toThrow("flag provided but not defined: -bogus");
    expect(() => parseProbeFlags(["-addr=x:1", "-tls"])).toThrow("TLS is not supported");
    expect(() => parseProbeFlags(["-addr=x:1", "-rpc-timeout=0s"])).toThrow("-rpc-timeout must be at least 1ms");
    expect(() => parseProbeFlags(["-addr=x:1", "stray"])).toThrow('unexpected argument "stray"');
  });

  test("exit codes: 0 SERVING, 4 not SERVING, 2 nothing listening, 3 no answer in time, 1 bad arguments", async () => {
    let status = Status.SERVING;
    const server = createGrpcServer({ port: 0, log: silentLogger(), handlers: { reconfigure: () => {}, networkMsg: () => {}, health: () => status } });
    await server.start();
    cleanups.push(() => server.stop(0));

    expect(await grpcHealthProbe(`-addr=localhost:${server.port}`)).toMatchObject({ code: 0, stdout: "status: SERVING\n", stderr: "" });
    status = Status.NOT_SERVING;
    expect(await grpcHealthProbe(`-addr=localhost:${server.port}`)).toMatchObject({ code: 4, stderr: `error: localhost:${server.port} answered NOT_SERVING\n` });

    const [closed] = await freePorts(1);
    expect((await grpcHealthProbe("-addr", `localhost:${closed}`)).code).toBe(2);

    const silent = net.createServer((s) => s.on("error", () => {}));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    cleanups.push(() => silent.close());
    const port = (silent.address() as net.AddressInfo).port;
    const slow = await grpcHealthProbe(`-addr=127.0.0.1:${port}`, "-connect-timeout=100ms", "-rpc-timeout=150ms");
    expect(slow.code).toBe(3);
    expect(slow.stderr).toBe(`error: no answer from 127.0.0.1:${port} within 250 ms\n`);

    expect(await grpcHealthProbe()).toMatchObject({ code: 1, stdout: "", stderr: "error: -addr not specified\n" });
    expect((await grpcHealthProbe("-addr=nope")).code).toBe(1);
  });
});
