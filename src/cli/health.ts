// `consensus health`: a gRPC health probe built into the binary (what grpc-health-probe did for the
// Rust image), so a scratch image and a Kubernetes exec probe need nothing else. Exit 0 only when
// the service answers SERVING; any other answer, a refused connection or a missed deadline is a
// CheckFailed (exit 1, one line on stderr). grpc-health-probe.ts speaks the same probe with that
// tool's flags for images deployed with its command line.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { defineCommand } from "citty";
import { writeSync } from "node:fs";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import { CheckFailed, UsageError } from "./errors.ts";

export const DEFAULT_ADDR = "localhost:50001";
export const DEFAULT_TIMEOUT_MS = 1000;
const COMMAND = "consensus health";

export interface Target {
  host: string;
  port: number;
  /** `http://host:port` with IPv6 literals in brackets. */
  url: string;
}

/** Parses `host:port` or `[v6]:port`; throws a UsageError naming what is wrong. */
export function parseAddr(addr: string, command = COMMAND): Target {
  // No IPv6 zone ids ([fe80::1%eth0]): URLs cannot carry them unescaped, and loopback needs none.
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/%]+)):(\d{1,5})$/.exec(addr);
  if (!m) throw new UsageError(`--addr '${addr}' is not host:port or [ipv6]:port`, command);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new UsageError(`--addr '${addr}': port must be 1..65535`, command);
  const v6 = m[1];
  const host = v6 ?? m[2];
  return { host, port, url: `http://${v6 !== undefined ? `[${v6}]` : host}:${port}` };
}

export function parseTimeout(text: string, command = COMMAND): number {
  const ms = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(ms >= 1 && ms <= 2 ** 31 - 1)) {
    throw new UsageError(`--timeout '${text}' is not a whole number of milliseconds in 1..2147483647`, command);
  }
  return ms;
}

export type ProbeResult =
  | { ok: true; status: string; ms: number }
  /** connect: nothing answers at the address; rpc: the call failed or timed out; unhealthy: not SERVING. */
  | { ok: false; kind: "connect" | "rpc" | "unhealthy"; reason: string };

/** One grpc.health.v1.Health/Check call; never throws. `label` names the address in reasons. */
export async function probe(target: Target, timeoutMs: number, label: string, service = ""): Promise<ProbeResult> {
  const started = performance.now();
  let sessions: Http2SessionManager | undefined;
  try {
    sessions = new Http2SessionManager(target.url);
    const client = createClient(Health, createGrpcTransport({ baseUrl: target.url, sessionManager: sessions }));
    const res = await client.check({ service }, { timeoutMs });
    const status = HealthCheckResponse_ServingStatus[res.status] ?? `status ${res.status}`;
    if (res.status !== HealthCheckResponse_ServingStatus.SERVING) return { ok: false, kind: "unhealthy", reason: `${label} answered ${status}` };
    return { ok: true, status, ms: performance.now() - started };
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.DeadlineExceeded) return { ok: false, kind: "rpc", reason: `no answer from ${label} within ${timeoutMs} ms` };
    if (e.code === Code.Unavailable) return { ok: false, kind: "connect", reason: `cannot reach ${label}: ${e.rawMessage}` };
    return { ok: false, kind: "rpc", reason: `health check of ${label} failed: [${Code[e.code]}] ${e.rawMessage}` };
  } finally {
    sessions?.abort();
  }
}

export default defineCommand({
  meta: { name: "health", description: "check the health of a running service (exit 0 only when SERVING)" },
  args: {
    addr: { type: "string", default: DEFAULT_ADDR, valueHint: "host:port", description: "gRPC address of the service" },
    timeout: { type: "string", default: String(DEFAULT_TIMEOUT_MS), valueHint: "ms", description: "give up after this many milliseconds" },
  },
  async run({ args }) {
    const target = parseAddr(args.addr);
    const timeoutMs = parseTimeout(args.timeout);
    const r = await probe(target, timeoutMs, args.addr);
    if (!r.ok) throw new CheckFailed(`unhealthy: ${r.reason}`);
    writeQuietly(`${r.status} (${args.addr}, ${r.ms.toFixed(1)} ms)\n`);
  },
});

export function writeQuietly(text: string, fd = 1): void {
  try {
    writeSync(fd, text);
  } catch {
    // output closed: the exit status is the answer
  }
}
