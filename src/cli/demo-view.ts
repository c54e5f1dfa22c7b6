// What `consensus demo` prints: a status table redrawn in place on a terminal, or one plain line
// per update when stdout is a pipe or a file. Pure functions of a DemoView, so they are testable.

export type ProcessState = "starting" | "up" | "killed" | "stopped" | "exited";

export interface NodeView {
  readonly name: string;
  readonly process: ProcessState;
  readonly height: number;
  /** Raft role from the node's metrics; undefined while they cannot be read. */
  readonly role?: string;
  readonly term?: number;
  /**
   * Proposal → committed at this node (ms), for its last block; "sync" when the block came by the
   * controllers' block sync, "catch-up" when the node replayed it after being down.
   */
  readonly lastCommit?: number | "sync" | "catch-up";
}

export interface DemoView {
  readonly elapsedMs: number;
  readonly nodes: readonly NodeView[];
  readonly leader?: { readonly name: string; readonly term: number };
  /** Chain growth over the last few seconds. */
  readonly blocksPerSecond?: number;
  /** Newest last, already formatted by formatEvent. */
  readonly events: readonly string[];
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export function formatEvent(atMs: number, text: string): string {
  return `+${seconds(atMs)}  ${text}`;
}

function latency(c: NodeView["lastCommit"]): string {
  if (c === undefined) return "-";
  return typeof c === "number" ? `${Math.round(c)} ms` : c === "sync" ? "synced" : c;
}

function leaderText(view: DemoView): string {
  const rate = view.blocksPerSecond === undefined ? "" : ` · ${view.blocksPerSecond.toFixed(1)} blocks/s`;
  return view.leader ? `leader ${view.leader.name} (term ${view.leader.term})${rate}` : `no leader${rate}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `  ${r.map((cell, c) => cell.padEnd(widths[c])).join("  ")}`.trimEnd());
}

/** The full-screen frame for a terminal (without cursor movement). */
export function renderFrame(view: DemoView, title: string, keysHelp: string | undefined, maxEvents = 8): string[] {
  const rows = [["node", "process", "height", "role", "term", "last commit"]];
  for (const n of view.nodes) {
    rows.push([n.name, n.process, String(n.height), n.role ?? "-", n.term === undefined ? "-" : String(n.term), latency(n.lastCommit)]);
  }
  const lines = [`${title} · ${seconds(view.elapsedMs)}`, "", ...table(rows), "", `  ${leaderText(view)}`, "", "  events"];
  const events = view.events.slice(-maxEvents);
  lines.push(...(events.length > 0 ? events.map((e) => `  ${e}`) : ["  (none yet)"]));
  if (keysHelp) lines.push("", `  ${keysHelp}`);
  return lines;
}

/** One status line for pipes and files. */
export function renderLine(view: DemoView): string {
  const heights = view.nodes.map((n) => (n.process === "up" || n.process === "starting" ? String(n.height) : `${n.height}(${n.process})`));
  const commits = view.nodes.map((n) => n.lastCommit).filter((c): c is number => typeof c === "number");
  const commit = commits.length > 0 ? ` · last commit ${Math.round(Math.max(...commits))} ms` : "";
  return `+${seconds(view.elapsedMs)}  heights ${heights.join(" ")} · ${leaderText(view)}${commit}`;
}
