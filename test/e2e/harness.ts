// End-to-end harness: a DevChain of compiled `consensus` binaries plus what the scenarios observe
// from outside, the way an operator would: the controllers' chains, each node's Prometheus
// endpoint (leader, term), its health over a third-party gRPC client, and its log file.
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { DevChain, type DevChainOptions } from "../../src/devchain/chain.ts";
import { peerIdFromAddress, peerIdHex } from "../../src/peer/peer-id.ts";
import { ensureBinary } from "../support/binary.ts";
import { parseMetrics, type Scrape } from "../support/chain-metrics.ts";
import { GrpcJsClient } from "../support/grpc-js-client.ts";

/** Deadline for conditions that should hold within seconds on an idle machine (the CI box is not idle). */
export const LONG_MS = 60_000;

export type ChainOptions = Omit<DevChainOptions, "consensusCommand">;

export type { Scrape };

export interface LeaderView {
  readonly index: number;
  readonly term: number;
}

export class E2EChain {
  /** Raft id of each node, by node index. */
  readonly ids: readonly bigint[];

  private constructor(readonly chain: DevChain) {
    this.ids = chain.nodes.map((n) => peerIdFromAddress(n.address));
  }

  /** Creates the chain with the compiled binary and starts consensus on every node. */
  static async start(opts: ChainOptions): Promise<E2EChain> {
    const binary = await ensureBinary();
    // E2E_KEEP=1 keeps the work dir (configs, data, logs) for a look after the run; E2E_LOG_LEVEL
    // sets the nodes' log level (debug shows Raft's inner workings).
    const chain = await DevChain.create({
      keepWorkDir: process.env.E2E_KEEP === "1",
      logLevel: process.env.E2E_LOG_LEVEL,
      ...opts,
      consensusCommand: [binary],
    });
    for (const n of chain.nodes) chain.startConsensus(n.index);
    return new E2EChain(chain);
  }

  all(): number[] {
    return this.chain.nodes.map((n) => n.index);
  }

  running(): number[] {
    return this.all().filter((i) => this.chain.isConsensusRunning(i));
  }

  height(i: number): number {
    return this.chain.node(i).controller.height;
  }

  top(which: readonly number[] = this.all()): number {
    return Math.max(...which.map((i) => this.height(i)));
  }

  // ---- metrics ----

  /** One scrape of node i's metrics, or undefined if it does not answer. */
  async scrape(i: number): Promise<Scrape | undefined> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.chain.node(i).ports.metrics}/metrics`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? parseMetrics(await r.text()) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Waits until `among` agree on one leader: it reports itself leader, and every other node of
   * `among` names it in `consensus_leader` at the same term.
   */
  async leader(among: readonly number[] = this.running(), timeoutMs = LONG_MS): Promise<LeaderView> {
    return this.wait(async () => {
      const scrapes = await Promise.all(among.map((i) => this.scrape(i)));
      if (scrapes.some((s) => s === undefined)) return undefined;
      const leaders = among.filter((_, k) => scrapes[k]!.get("consensus_is_leader") === 1);
      if (leaders.length !== 1) return undefined;
      const index = leaders[0];
      const label = `consensus_leader{leader="${peerIdHex(this.ids[index])}"}`;
      const term = scrapes[among.indexOf(index)]!.get("consensus_term")!;
      const agreed = scrapes.every((s) => s!.get(label) === 1 && s!.get("consensus_term") === term);
      return agreed ? { index, term } : undefined;
    }, timeoutMs, `one leader agreed on by nodes ${among.join(",")}`, 100);
  }

  async metric(i: number, series: string): Promise<number | undefined> {
    return (await this.scrape(i))?.get(series);
  }

  // ---- waiting ----

  /**
   * Polls `cond` until it gives a truthy value. Fails at once when a consensus process exits on
   * its own (a crash), and on timeout; both errors carry the chain's state and log tails.
   */
  async wait<T>(cond: () => T | Promise<T>, timeoutMs: number, what: string, pollMs = 25): Promise<NonNullable<T>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const crash = this.chain.exits.find((x) => x.unexpected);
      if (crash) throw new Error(`node${crash.node} exited on its own (code ${crash.code}, signal ${crash.signal}) while waiting for ${what}\n${this.describe()}`);
      const v = await cond();
      if (v) return v as NonNullable<T>;
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`);
      await Bun.sleep(pollMs);
    }
  }

  async waitHeight(height: number, which: readonly number[] = this.running(), timeoutMs = LONG_MS): Promise<void> {
    await this.wait(() => which.every((i) => this.height(i) >= height), timeoutMs, `height ${height} on nodes ${which.join(",")}`);
  }

  /** Waits until the highest chain among `which` passes `above`. */
  async waitAbove(above: number, which: readonly number[], timeoutMs = LONG_MS): Promise<void> {
    await this.wait(() => this.top(which) > above, timeoutMs, `a block above ${above} on nodes ${which.join(",")}`);
  }

  /**
   * Waits for a block above `above`, on any node of `which`, proposed by a node `accept` takes;
   * resolves with the time it took. (A block committed before a leader died can still land on the
   * others afterwards: only a block by another proposer shows that a new leader works.)
   */
  async waitBlockBy(above: number, which: readonly number[], accept: (proposer: number) => boolean, timeoutMs = LONG_MS, since = performance.now()): Promise<number> {
    await this.wait(
      () =>
        which.some((i) => {
          const c = this.chain.node(i).controller;
          for (let h = above + 1; h <= c.height; h++) if (accept(this.proposerOf(c.block(h)!.header.proposer))) return true;
          return false;
        }),
      timeoutMs,
      `a block above ${above} by an accepted proposer on nodes ${which.join(",")}`,
    );
    return performance.now() - since;
  }

  private proposerOf(address: Uint8Array): number {
    const hex = Buffer.from(address).toString("hex");
    return this.chain.nodes.findIndex((n) => n.addressHex === hex);
  }

  // ---- logs ----

  log(i: number): string {
    try {
      return readFileSync(this.chain.node(i).logPath, "utf8");
    } catch {
      return "";
    }
  }

  /** Current size of node i's log: pass it to waitLog to look only at what comes later. */
  logMark(i: number): number {
    try {
      return statSync(this.chain.node(i).logPath).size;
    } catch {
      return 0;
    }
  }

  /** What node i logged after `mark` (read from that offset: logs grow to megabytes). */
  logSince(i: number, mark: number): string {
    let fd: number;
    try {
      fd = openSync(this.chain.node(i).logPath, "r");
    } catch {
      return "";
    }
    try {
      const size = statSync(this.chain.node(i).logPath).size;
      const buf = Buffer.alloc(Math.max(0, size - mark));
      readSync(fd, buf, 0, buf.length, mark);
      return buf.toString("utf8");
    } finally {
      closeSync(fd);
    }
  }

  async waitLog(i: number, text: string, mark = 0, timeoutMs = LONG_MS): Promise<void> {
    await this.wait(() => this.logSince(i, mark).includes(text), timeoutMs, `"${text}" in node${i}'s log`, 100);
  }

  // ---- health ----

  /** grpc.health.v1.Health/Check over @grpc/grpc-js: "SERVING", "NOT_SERVING", or the error. */
  async health(i: number): Promise<string> {
    const client = new GrpcJsClient(this.chain.node(i).ports.grpc);
    try {
      const r = await client.call<{ status: string }>(client.health, "Check", { service: "" });
      return r.error ? `error: ${r.error.message}` : r.value!.status;
    } finally {
      client.close();
    }
  }

  // ---- invariants ----

  /**
   * Every block entered each controller's chain exactly once: through one successful new
   * CommitBlock from its consensus, or through block sync. With `strict`, a committed height also
   * saw no second successful CommitBlock (no re-commit), as expected while no node restarts.
   */
  commitViolations(strict: boolean): string[] {
    const problems: string[] = [];
    for (const i of this.all()) {
      const c = this.chain.node(i).controller;
      for (let h = 1; h <= c.height; h++) {
        const s = c.heightStats(h);
        const source = c.block(h)!.source;
        const entered = s.newCommits + (source === "sync" ? 1 : 0);
        if (entered !== 1) problems.push(`node${i} h${h}: entered ${entered} times (${JSON.stringify(s)}, ${source})`);
        if (strict && source === "commit" && s.repeatCommits > 0) problems.push(`node${i} h${h}: ${s.repeatCommits} repeated CommitBlock`);
      }
    }
    return problems;
  }

  /** Indexes of the nodes whose addresses proposed blocks in (from, to]. */
  proposers(from: number, to: number, via = this.all()[0]): Set<number> {
    const c = this.chain.node(via).controller;
    const out = new Set<number>();
    for (let h = from + 1; h <= Math.min(to, c.height); h++) out.add(this.proposerOf(c.block(h)!.header.proposer));
    return out;
  }

  describe(): string {
    const lines = [`heights ${this.chain.heights().join(",")}; running ${this.running().join(",")}; exits ${JSON.stringify(this.chain.exits)}`];
    for (const n of this.chain.nodes) {
      const tail = this.logSince(n.index, Math.max(0, this.logMark(n.index) - 4096)).trimEnd().split("\n").slice(-6);
      lines.push(`--- node${n.index} (${n.dir})`, ...tail.map((l) => `  ${l.slice(0, 300)}`));
    }
    return lines.join("\n");
  }

  async close(): Promise<void> {
    await this.chain.close();
  }
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
