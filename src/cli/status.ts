// `consensus status`: reads GET /status from the metrics port of one or more running nodes and
// prints a table (one row per node, then the leader's view of its peers) or the JSON as is.
// Exit 0 when every node answered, 1 when one did not (unreachable, timeout, not a status),
// 2 on usage errors: the same as `consensus health`.
import { defineCommand } from "citty";
import type { NodeStatusJson, PeerStatusJson } from "../node/status.ts";
import { repeatable } from "./argv.ts";
import { CheckFailed, UsageError } from "./errors.ts";
import { parseAddr, parseTimeout, type Target, writeQuietly } from "./health.ts";

export const DEFAULT_STATUS_ADDR = "localhost:60001";
const DEFAULT_TIMEOUT_MS = 1000;
const COMMAND = "consensus status";

export type StatusResult = { addr: string; ok: true; status: NodeStatusJson } | { addr: string; ok: false; reason: string };

function looksLikeStatus(x: unknown): x is NodeStatusJson {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  return typeof o.id === "string" && typeof o.raft_running === "boolean" && (o.peers === null || Array.isArray(o.peers));
}

function describeFetchError(e: unknown, label: string, timeoutMs: number): string {
  const err = e as { name?: string; code?: string; message?: string };
  if (err.name === "TimeoutError" || err.name === "AbortError") return `no answer from ${label} within ${timeoutMs} ms`;
  if (err.code === "ECONNREFUSED") return `cannot reach ${label}: connection refused`;
  if (err.code === "ENOTFOUND") return `cannot reach ${label}: host not found`;
  const text = String(err.message ?? e).split(/[.\n]/, 1)[0];
  return `cannot reach ${label}: ${text}`;
}

/** GET /status of one node; never throws. */
export async function fetchStatus(target: Target, label: string, timeoutMs: number): Promise<StatusResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  let body: string;
  try {
    res = await fetch(`${target.url}/status`, { signal, redirect: "manual" });
    body = await res.text();
  } catch (e) {
    return { addr: label, ok: false, reason: describeFetchError(e, label, timeoutMs) };
  }
  if (res.status !== 200) {
    const hint = res.status === 404 ? " (not the metrics port of a consensus service that serves /status)" : "";
    return { addr: label, ok: false, reason: `${label} answered HTTP ${res.status}${hint}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  if (!looksLikeStatus(json)) return { addr: label, ok: false, reason: `${label} answered something that is not a consensus status` };
  return { addr: label, ok: true, status: json };
}

// ------------------------------------------------------------------ table

/** 184 ms, 2.3 s, 4m05s, 3h07m, 2d04h. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const pad = (n: number) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${pad((s % 86400) / 3600)}h`;
}

function table(header: string[], rows: string[][], indent = ""): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    indent +
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const dash = (v: number | string | null | undefined): string => (v === null || v === undefined ? "-" : String(v));

function peerRows(peers: PeerStatusJson[]): string[][] {
  return peers.map((p) => [
    p.id,
    p.address ?? "-",
    p.learner ? "learner" : "voter",
    String(p.match),
    String(p.next),
    String(p.lag),
    p.state,
    p.recent_active ? "yes" : "no",
    p.last_heard_ms === null ? "never" : `${formatMs(p.last_heard_ms)} ago`,
  ]);
}

/** The table `consensus status` prints for the given answers (in --addr order). */
export function renderStatusTable(results: StatusResult[]): string {
  const answered = results.filter((r): r is Extract<StatusResult, { ok: true }> => r.ok);
  const heights = answered.map((r) => r.status.height).filter((h): h is number => h !== null);
  const top = heights.length > 0 ? Math.max(...heights) : undefined;
  const rows = results.map((r) => {
    if (!r.ok) return [r.addr, "-", "unreachable", "-", "-", "-", "-", "-", "-", "-", r.reason];
    const s = r.status;
    const lag = s.height !== null && top !== undefined ? String(top - s.height) : "-";
    return [
      r.addr,
      s.id,
      s.role ?? (s.raft_running ? "-" : "no raft"),
      dash(s.term),
      s.leader ?? (s.raft_running ? "none" : "-"),
      dash(s.height),
      lag,
      s.last_block ? `${formatMs(s.last_block.age_ms)} ago` : "-",
      s.last_block ? formatMs(s.last_block.commit_latency_ms) : "-",
      dash(s.commit_backlog),
      `${formatMs(s.uptime_seconds * 1000)}${s.serving ? "" : " (NOT SERVING)"}`,
    ];
  });
  const out = table(["NODE", "ID", "ROLE", "TERM", "LEADER", "HEIGHT", "LAG", "LAST BLOCK", "COMMIT TIME", "BACKLOG", "UPTIME"], rows);

  // Which leader the answering Raft nodes name, and whether they agree.
  const raft = answered.filter((r) => r.status.raft_running);
  const named = new Set(raft.map((r) => r.status.leader ?? "none"));
  const leaderNode = answered.find((r) => r.status.role === "leader");
  if (results.length > 1 && raft.length > 0) {
    out.push("");
    if (named.size === 1 && !named.has("none")) {
      const id = [...named][0];
      const at = answered.find((r) => r.status.id === id);
      const term = at?.status.term ?? raft[0].status.term;
      out.push(`leader ${id}${at ? ` (${at.addr})` : ""}, term ${term}: all ${raft.length} answering nodes agree`);
    } else if (named.size === 1) {
      out.push(`no leader: none of the ${raft.length} answering nodes knows one`);
    } else {
      const by = [...named].map((id) => `${id} by ${raft.filter((r) => (r.status.leader ?? "none") === id).map((r) => r.addr).join(", ")}`);
      out.push(`nodes disagree on the leader: ${by.join("; ")}`);
    }
  }
  if (leaderNode?.status.peers && leaderNode.status.peers.length > 0) {
    out.push("");
    out.push(`peers, as the leader ${leaderNode.addr} sees them (its last index ${dash(leaderNode.status.last_index)}):`);
    out.push(...table(["PEER", "ADDRESS", "KIND", "MATCH", "NEXT", "LAG", "STATE", "ACTIVE", "LAST HEARD"], peerRows(leaderNode.status.peers), "  "));
  }
  return `${out.join("\n")}\n`;
}

// ------------------------------------------------------------------ command

export default defineCommand({
  meta: { name: "status", description: "show the Raft state of running nodes: leader, term, height, lag, peers" },
  args: {
    addr: repeatable({
      type: "string",
      default: DEFAULT_STATUS_ADDR,
      valueHint: "host:port",
      description: "metrics address of a node (metrics_port); repeat it for each node of a chain",
    }),
    output: { type: "string", alias: "o", default: "table", valueHint: "table|json", description: "print a table, or the JSON of GET /status" },
    timeout: { type: "string", default: String(DEFAULT_TIMEOUT_MS), valueHint: "ms", description: "give up on a node after this many milliseconds" },
  },
  async run({ args, rawArgs }) {
    // citty keeps one value of a repeated flag; main() hands every occurrence over as --addr=<value>.
    const given = rawArgs.filter((a) => a.startsWith("--addr=")).map((a) => a.slice("--addr=".length));
    const addrs = given.length > 0 ? given : [DEFAULT_STATUS_ADDR];
    const targets = addrs.map((a) => parseAddr(a, COMMAND));
    const timeoutMs = parseTimeout(args.timeout, COMMAND);
    if (args.output !== "table" && args.output !== "json") throw new UsageError(`--output '${args.output}' must be table or json`, COMMAND);

    const results = await Promise.all(targets.map((t, i) => fetchStatus(t, addrs[i], timeoutMs)));
    const failed = results.filter((r) => !r.ok);
    const single = results.length === 1;
    if (!(single && failed.length === 1)) {
      if (args.output === "json") {
        const json = single ? (results[0] as Extract<StatusResult, { ok: true }>).status : results.map((r) => (r.ok ? { addr: r.addr, status: r.status } : { addr: r.addr, error: r.reason }));
        writeQuietly(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        writeQuietly(renderStatusTable(results));
      }
    }
    if (failed.length > 0) throw new CheckFailed(`no status: ${failed.map((r) => (r as { reason: string }).reason).join("; ")}`);
  },
});
