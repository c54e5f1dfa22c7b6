// The chain behind `consensus demo`: the devchain emulators in this process, N consensus processes,
// and what the demo observes about them (heights, roles and terms from each node's metrics, exact
// commit times from the controllers), plus the actions a user can take (kill or stop the leader,
// restart stopped nodes) and the story they tell (failover and catch-up times).
import { createConsola, type LogObject } from "consola/core";
import { readFileSync } from "node:fs";
import { DevChain } from "../devchain/chain.ts";
import { peerIdFromAddress, peerIdHex } from "../peer/peer-id.ts";
import { type DemoView, formatEvent, type NodeView, type ProcessState } from "./demo-view.ts";
import { parsePrometheusText } from "../metrics/text.ts";
import { bytesEqual } from "../util/bytes.ts";
import { errorMessage } from "../util/errors.ts";

export interface DemoSessionOptions {
  readonly nodes: number;
  /** Block interval in whole seconds (0: next block as soon as the previous one is committed). */
  readonly blockInterval: number;
  /** argv prefix that runs this binary (`run -c config.toml --stdout` is appended). */
  readonly consensusCommand: readonly string[];
  readonly keepWorkDir: boolean;
  /** Called with each new event line as it happens. */
  readonly onEvent: (line: string) => void;
}

export interface NodeMetrics {
  readonly term: number;
  readonly role: number;
  /** `0x…` peer id of the leader this node follows, or "". */
  readonly leaderHex: string;
}

const ROLE_NAMES = ["follower", "candidate", "leader", "pre-candidate"];
const LEADER = 2;
/** Chain growth is measured over this window. */
const RATE_WINDOW_MS = 10_000;
const SCRAPE_TIMEOUT_MS = 1_000;
/** A commit this many blocks below the chain's top is a node catching up. */
const CATCH_UP_GAP = 2;

/** The last line a crashed node wrote: its one-line reason, when it had time to give one. */
function lastLine(logPath: string): string {
  try {
    const lines = readFileSync(logPath, "utf8").trimEnd().split("\n");
    return lines.at(-1) || "(empty log)";
  } catch (e) {
    return `(no log: ${errorMessage(e)})`;
  }
}

/** Reads the consensus state gauges out of a node's Prometheus text; undefined if they are missing. */
export function parseNodeMetrics(text: string): NodeMetrics | undefined {
  const scrape = parsePrometheusText(text);
  const term = scrape.get("consensus_term");
  const role = scrape.get("consensus_role");
  if (term === undefined || role === undefined || scrape.get("consensus_raft_running") !== 1) return undefined;
  let leaderHex = "";
  for (const [series, v] of scrape) {
    const m = /^consensus_leader\{leader="(0x[0-9a-f]+)"\}$/.exec(series);
    if (m && v === 1) leaderHex = m[1];
  }
  return { term, role, leaderHex };
}

interface NodeState {
  process: ProcessState;
  metrics?: NodeMetrics;
  lastCommit?: NodeView["lastCommit"];
}

/** A leader taken down on purpose, and how the chain got over it. */
interface Failover {
  readonly node: number;
  readonly how: "kill" | "stop";
  readonly at: number;
  /** The highest height when it happened. */
  readonly height: number;
  newLeaderAfterMs?: number;
  resumedAfterMs?: number;
  resumedAt?: number;
}

export interface DemoOutcome {
  readonly ok: boolean;
  readonly lines: readonly string[];
}

export class DemoSession {
  readonly startedAt = Date.now();
  private readonly events: string[] = [];
  private readonly state: NodeState[];
  private readonly byPeerHex = new Map<string, number>();
  private readonly commitLatencies: number[] = [];
  private readonly heightSamples: { at: number; height: number }[] = [];
  private readonly catchUps = new Map<number, { at: number; target: number }>();
  /** Nodes whose controller is behind and syncing blocks (announced once until it is level again). */
  private readonly syncing = new Set<number>();
  private exitsSeen = 0;
  private crashes: string[] = [];
  private leaderSeen: { node: number; term: number } | undefined;
  private leaderChanges = 0;
  private failovers: Failover[] = [];
  private closed = false;

  private constructor(
    readonly chain: DevChain,
    private readonly opts: DemoSessionOptions,
  ) {
    this.state = chain.nodes.map(() => ({ process: "starting" }));
    for (const n of chain.nodes) this.byPeerHex.set(peerIdHex(peerIdFromAddress(n.address)), n.index);
  }

  static async start(opts: DemoSessionOptions): Promise<DemoSession> {
    let session: DemoSession | undefined;
    // The emulators report through this logger; the demo listens for commits and syncs.
    const log = createConsola({
      level: 3,
      throttle: 0,
      reporters: [{ log: (o) => session?.onEmulatorLog(o) }],
    });
    const chain = await DevChain.create({
      nodes: opts.nodes,
      seed: "demo",
      blockInterval: opts.blockInterval,
      consensusCommand: opts.consensusCommand,
      // Ask consensus for its first Reconfigure soon after it starts, not after the default 3 s.
      controller: { retryIntervalMs: 500 },
      keepWorkDir: opts.keepWorkDir,
      log,
    });
    session = new DemoSession(chain, opts);
    try {
      for (const n of chain.nodes) chain.startConsensus(n.index);
    } catch (e) {
      await chain.close();
      throw e;
    }
    session.event(`started ${opts.nodes} consensus processes; electing a leader`);
    return session;
  }

  private now(): number {
    return Date.now() - this.startedAt;
  }

  private event(text: string): void {
    const line = formatEvent(this.now(), text);
    this.events.push(line);
    if (this.events.length > 100) this.events.shift();
    this.opts.onEvent(line);
  }

  private name(i: number): string {
    return this.chain.nodes[i].name;
  }

  private maxHeight(): number {
    return Math.max(...this.chain.heights());
  }

  private onEmulatorLog(o: LogObject): void {
    const node = /^controller(\d+)$/.exec(o.tag ?? "");
    if (!node || this.closed) return;
    const i = Number(node[1]);
    const [message, fields] = o.args as [string, Record<string, unknown> | undefined];
    if (message === "block committed") {
      const height = Number(fields?.height);
      if (fields?.source === "sync") {
        this.state[i].lastCommit = "sync";
        return;
      }
      const block = this.chain.nodes[i].controller.block(height);
      if (!block) return;
      // A node two or more blocks behind is replaying what it missed: its delay says nothing about Raft.
      if (height + CATCH_UP_GAP <= this.maxHeight()) {
        this.state[i].lastCommit = "catch-up";
      } else {
        const ms = o.date.getTime() - Number(block.header.timestamp);
        this.state[i].lastCommit = ms;
        this.commitLatencies.push(ms);
      }
      // The chain has got over a failover once a block proposed by someone else is committed
      // (a block the old leader proposed may still be committed after its death).
      const f = this.failovers.at(-1);
      if (f && f.resumedAfterMs === undefined && height > f.height && !bytesEqual(block.header.proposer, this.chain.nodes[f.node].address)) {
        f.resumedAt = height;
        f.resumedAfterMs = o.date.getTime() - f.at;
        // Its block can land before the next metrics scrape shows the new leader.
        if (f.newLeaderAfterMs === undefined) {
          f.newLeaderAfterMs = f.resumedAfterMs;
          const proposer = this.chain.nodes.find((n) => bytesEqual(n.address, block.header.proposer));
          this.event(`${proposer?.name ?? "another node"} is the new leader`);
        }
        this.event(`block ${height} from the new leader committed ${f.resumedAfterMs} ms after the ${f.how}`);
      }
    } else if (message === "sync started" && !this.syncing.has(i)) {
      this.syncing.add(i);
      this.event(`${this.name(i)}: its controller fetches the missing blocks from a peer (block sync from height ${fields?.height})`);
    }
  }

  /** Reads every node's metrics and process state; emits the events that follow from them. */
  async refresh(): Promise<void> {
    await Promise.all(this.chain.nodes.map((n) => this.scrape(n.index, n.ports.metrics)));
    this.noteExits();
    this.noteLeader();
    this.noteCatchUps();
    const top = this.maxHeight();
    for (const i of this.syncing) if (this.chain.nodes[i].controller.height >= top) this.syncing.delete(i);
    const now = Date.now();
    this.heightSamples.push({ at: now, height: top });
    while (this.heightSamples.length > 2 && now - this.heightSamples[1].at >= RATE_WINDOW_MS) this.heightSamples.shift();
  }

  private async scrape(i: number, port: number): Promise<void> {
    const s = this.state[i];
    if (!this.chain.isConsensusRunning(i)) {
      s.metrics = undefined;
      return;
    }
    try {
      const res = await fetch(`http://localhost:${port}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
      const m = parseNodeMetrics(await res.text());
      s.metrics = m;
      if (m !== undefined && s.process === "starting") s.process = "up";
    } catch {
      s.metrics = undefined; // still starting, or just died: noteExits tells which
    }
  }

  private noteExits(): void {
    for (const exit of this.chain.exits.slice(this.exitsSeen)) {
      const s = this.state[exit.node];
      if (!exit.unexpected) continue; // killed or stopped by us: already recorded
      if (exit.code === 0) {
        s.process = "stopped";
        this.event(`${this.name(exit.node)} stopped by itself (exit 0)`);
      } else {
        s.process = "exited";
        const how = exit.signal ? `signal ${exit.signal}` : `exit ${exit.code}`;
        this.crashes.push(`${this.name(exit.node)} (${how})`);
        this.event(`${this.name(exit.node)} died (${how}): ${lastLine(this.chain.nodes[exit.node].logPath)}`);
      }
    }
    this.exitsSeen = this.chain.exits.length;
  }

  /** Every node died by itself (none is running and at least one crashed): nothing more to show. */
  allCrashed(): boolean {
    return this.crashes.length > 0 && this.chain.nodes.every((n) => !this.chain.isConsensusRunning(n.index));
  }

  /** The leader as the nodes report it: the highest-term node that says it leads. */
  leader(): { node: number; term: number } | undefined {
    let best: { node: number; term: number } | undefined;
    this.state.forEach((s, node) => {
      if (s.metrics?.role === LEADER && this.chain.isConsensusRunning(node) && (best === undefined || s.metrics.term > best.term)) {
        best = { node, term: s.metrics.term };
      }
    });
    return best;
  }

  private noteLeader(): void {
    const now = this.leader();
    if (now === undefined || (now.node === this.leaderSeen?.node && now.term === this.leaderSeen.term)) return;
    if (this.leaderSeen !== undefined) this.leaderChanges++;
    this.leaderSeen = now;
    const f = this.failovers.at(-1);
    if (f && f.newLeaderAfterMs === undefined && now.node !== f.node) {
      f.newLeaderAfterMs = Date.now() - f.at;
      this.event(`${this.name(now.node)} is the new leader (term ${now.term}), ≈${f.newLeaderAfterMs} ms after the ${f.how}`);
    } else {
      this.event(`${this.name(now.node)} is the leader (term ${now.term})`);
    }
  }

  private noteCatchUps(): void {
    for (const [i, c] of this.catchUps) {
      if (this.chain.nodes[i].controller.height >= c.target) {
        this.catchUps.delete(i);
        this.event(`${this.name(i)} caught up to height ${c.target} in ${Date.now() - c.at} ms`);
      }
    }
  }

  /** Takes the leader down: `kill` is SIGKILL (a crash), `stop` is SIGTERM (it hands leadership over first). */
  async takeLeaderDown(how: "kill" | "stop"): Promise<boolean> {
    const leader = this.leader();
    if (leader === undefined) {
      this.event("no leader right now; nothing to take down");
      return false;
    }
    const i = leader.node;
    this.failovers.push({ node: i, how, at: Date.now(), height: this.maxHeight() });
    this.state[i].process = how === "kill" ? "killed" : "stopped";
    this.state[i].metrics = undefined;
    if (how === "kill") {
      this.event(`kill -9 ${this.name(i)}, the leader (term ${leader.term})`);
      await this.chain.killConsensus(i);
    } else {
      this.event(`SIGTERM to ${this.name(i)}, the leader: it hands leadership over, then exits`);
      const code = await this.chain.stopConsensus(i);
      this.event(`${this.name(i)} exited (${code === null ? "killed after the grace period" : `exit ${code}`})`);
    }
    return true;
  }

  /** Restarts every node that is not running; returns their indexes. */
  restartStopped(): number[] {
    const restarted: number[] = [];
    for (const n of this.chain.nodes) {
      if (this.chain.isConsensusRunning(n.index)) continue;
      this.chain.startConsensus(n.index);
      this.state[n.index] = { process: "starting", lastCommit: this.state[n.index].lastCommit };
      this.catchUps.set(n.index, { at: Date.now(), target: this.maxHeight() });
      restarted.push(n.index);
      this.event(`restarted ${n.name} (height ${n.controller.height}, chain at ${this.maxHeight()})`);
    }
    if (restarted.length === 0) this.event("every node is running; nothing to restart");
    return restarted;
  }

  /** The most recent failover, if any. */
  lastFailover(): Readonly<Failover> | undefined {
    return this.failovers.at(-1);
  }

  view(): DemoView {
    const nodes: NodeView[] = this.chain.nodes.map((n) => {
      const s = this.state[n.index];
      return {
        name: n.name,
        process: s.process,
        height: n.controller.height,
        role: s.metrics ? ROLE_NAMES[s.metrics.role] ?? String(s.metrics.role) : undefined,
        term: s.metrics?.term,
        lastCommit: s.lastCommit,
      };
    });
    const leader = this.leader();
    const first = this.heightSamples[0];
    const last = this.heightSamples.at(-1);
    const rate = first && last && last.at - first.at >= 2000 ? ((last.height - first.height) * 1000) / (last.at - first.at) : undefined;
    return {
      elapsedMs: this.now(),
      nodes,
      leader: leader && { name: this.name(leader.node), term: leader.term },
      blocksPerSecond: rate,
      events: this.events,
    };
  }

  /** Stops every process and emulator; checks the chains for forks and reports. */
  async close(): Promise<DemoOutcome> {
    this.noteExits();
    this.closed = true;
    const elapsed = this.now();
    const heights = this.chain.heights();
    const forks = this.chain.forkCheck();
    await this.chain.close();
    const top = Math.max(...heights);
    const lines = [
      `demo finished after ${(elapsed / 1000).toFixed(1)} s`,
      `  heights: ${this.chain.nodes.map((n, i) => `${n.name} ${heights[i]}`).join(", ")} (${top} blocks, ${((top * 1000) / elapsed).toFixed(2)} per second)`,
    ];
    const lat = [...this.commitLatencies].sort((a, b) => a - b);
    if (lat.length > 0) {
      const pick = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))];
      lines.push(`  commit latency (proposal → committed at a node): median ${pick(0.5)} ms, p99 ${pick(0.99)} ms over ${lat.length} commits`);
    }
    lines.push(`  leader changes: ${this.leaderChanges}`);
    for (const f of this.failovers) {
      const leaderPart = f.newLeaderAfterMs === undefined ? "no new leader seen" : `new leader ≈${f.newLeaderAfterMs} ms`;
      const blockPart = f.resumedAfterMs === undefined ? "no block after it" : `next block after ${f.resumedAfterMs} ms`;
      lines.push(`  ${f.how === "kill" ? "kill -9" : "SIGTERM"} of leader ${this.name(f.node)} at height ${f.height}: ${leaderPart}, ${blockPart}`);
    }
    if (forks.length === 0) {
      lines.push(`  no fork: every block height is identical on all ${this.chain.nodes.length} controllers that hold it`);
    } else {
      lines.push(`  FORK at ${forks.length} height(s), first at ${forks[0].height}: ${JSON.stringify(forks[0].hashes)}`);
    }
    if (this.crashes.length > 0) lines.push(`  crashed: ${this.crashes.join(", ")}`);
    if (this.opts.keepWorkDir) lines.push(`  work dir kept: ${this.chain.workDir}`);
    return { ok: forks.length === 0 && this.crashes.length === 0, lines };
  }
}
