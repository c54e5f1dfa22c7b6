// `consensus health`: a gRPC health probe built into the binary (what grpc-health-probe did for the
// Rust image), so a scratch image and a Kubernetes exec probe need nothing else. Exit 0 only when
// the service answers SERVING; any other answer, a refused connection or a missed deadline is a
// CheckFailed (exit 1, one line on stderr).
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
export function parseAddr(addr: string): Target {
  const m = /^(?:\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(addr);
  if (!m) throw new UsageError(`--addr '${addr}' is not host:port or [ipv6]:port`, COMMAND);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new UsageError(`--addr '${addr}': port must be 1..65535`, COMMAND);
  const v6 = m[1];
  const host = v6 ?? m[2];
  return { host, port, url: `http://${v6 !== undefined ? `[${v6}]` : host}:${port}` };
}

export function parseTimeout(text: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(ms >= 1 && ms <= 2 ** 31 - 1)) {
    throw new UsageError(`--timeout '${text}' is not a whole number of milliseconds in 1..2147483647`, COMMAND);
  }
  return ms;
}

/** Resolves with SERVING's name and the round trip; rejects with a CheckFailed saying why not. */
export async function probe(target: Target, timeoutMs: number, label: string): Promise<{ status: string; ms: number }> {
  const sessions = new Http2SessionManager(target.url);
  const client = createClient(Health, createGrpcTransport({ baseUrl: target.url, sessionManager: sessions }));
  const started = performance.now();
  try {
    const res = await client.check({ service: "" }, { timeoutMs });
    const status = HealthCheckResponse_ServingStatus[res.status] ?? `status ${res.status}`;
    if (res.status !== HealthCheckResponse_ServingStatus.SERVING) throw new CheckFailed(`unhealthy: ${label} answered ${status}`);
    return { status, ms: performance.now() - started };
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    const e = ConnectError.from(err);
    if (e.code === Code.DeadlineExceeded) throw new CheckFailed(`unhealthy: no answer from ${label} within ${timeoutMs} ms`);
    if (e.code === Code.Unavailable) throw new CheckFailed(`unhealthy: cannot reach ${label}: ${e.rawMessage}`);
    throw new CheckFailed(`unhealthy: health check of ${label} failed: [${Code[e.code]}] ${e.rawMessage}`);
  } finally {
    sessions.abort();
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
    const { status, ms } = await probe(target, timeoutMs, args.addr);
    writeQuietly(`${status} (${args.addr}, ${ms.toFixed(1)} ms)\n`);
  },
});

function writeQuietly(text: string): void {
  try {
    writeSync(1, text);
  } catch {
    // stdout closed: the exit status is the answer
  }
}
