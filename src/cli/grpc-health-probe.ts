// The binary answers to the name `grpc-health-probe` too. The Rust image shipped the gRPC project's
// probe, and cloud-config's liveness probe runs `grpc-health-probe -addr=localhost:50001`; the
// scratch image links that name to this binary, which then reads that tool's flags (Go syntax:
// -flag=value, -flag value, --flag) and exits with its codes: 0 SERVING, 1 invalid arguments,
// 2 connection failure, 3 RPC failure or timeout, 4 not SERVING.
import { parseAddr, probe, writeQuietly } from "./health.ts";
import { errorMessage } from "../util/errors.ts";

const EXIT = { ok: 0, args: 1, connect: 2, rpc: 3, unhealthy: 4 } as const;
const VALUE_FLAGS = new Set(["addr", "service", "connect-timeout", "rpc-timeout", "user-agent", "rpc-header"]);
/** Accepted and without effect here: -v only adds output, -gzip compresses a tiny request. */
const BOOL_FLAGS = new Set(["v", "gzip"]);
const TLS_FLAGS = new Set(["tls", "tls-no-verify", "tls-ca-cert", "tls-client-cert", "tls-client-key", "tls-server-name", "alts", "spiffe"]);
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

class ArgError extends Error {}

/** A Go duration ("250ms", "1s", "1m30s") in milliseconds. */
export function parseGoDuration(text: string): number {
  if (!/^(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+$/.test(text)) throw new ArgError(`invalid duration "${text}"`);
  let ms = 0;
  for (const [, n, , unit] of text.matchAll(/(\d+(\.\d*)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit];
  return ms;
}

export interface ProbeFlags {
  addr: string;
  service: string;
  connectTimeoutMs: number;
  rpcTimeoutMs: number;
}

export function parseProbeFlags(argv: readonly string[]): ProbeFlags {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([\w-]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!m) throw new ArgError(`unexpected argument "${argv[i]}"`);
    const [, name, inline] = m;
    if (TLS_FLAGS.has(name)) throw new ArgError(`-${name}: TLS is not supported, the consensus service serves plaintext gRPC (h2c)`);
    if (BOOL_FLAGS.has(name)) {
      if (inline !== undefined && !/^(true|false|1|0)$/.test(inline)) throw new ArgError(`invalid boolean value "${inline}" for -${name}`);
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new ArgError(`flag provided but not defined: -${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ArgError(`flag needs an argument: -${name}`);
    values.set(name, value);
  }
  const addr = values.get("addr");
  if (!addr) throw new ArgError("-addr not specified");
  const timeout = (name: string) => {
    const ms = parseGoDuration(values.get(name) ?? "1s");
    if (!(ms >= 1)) throw new ArgError(`-${name} must be at least 1ms, got "${values.get(name)}"`);
    return ms;
  };
  return { addr, service: values.get("service") ?? "", connectTimeoutMs: timeout("connect-timeout"), rpcTimeoutMs: timeout("rpc-timeout") };
}

/** Runs the probe as `grpc-health-probe`; returns that tool's exit code. */
export async function grpcHealthProbe(argv: readonly string[]): Promise<number> {
  let flags: ProbeFlags;
  let target: ReturnType<typeof parseAddr>;
  try {
    flags = parseProbeFlags(argv);
    target = parseAddr(flags.addr);
  } catch (e) {
    writeQuietly(`error: ${errorMessage(e)}\n`, 2);
    return EXIT.args;
  }
  // One deadline covers both phases, as long as the two timeouts together.
  const r = await probe(target, Math.ceil(flags.connectTimeoutMs + flags.rpcTimeoutMs), flags.addr, flags.service);
  if (r.ok) {
    writeQuietly(`status: ${r.status}\n`);
    return EXIT.ok;
  }
  writeQuietly(`error: ${r.reason}\n`, 2);
  return EXIT[r.kind];
}
