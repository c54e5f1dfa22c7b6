// The etcd service-level anchor for bench/e2e.ts: a 3-member etcd 3.4 cluster (Debian's
// etcd-server) on 127.0.0.1 with default flags but for the addresses (fsync on, heartbeat 100 ms,
// election 1000 ms), driven by the anchor's Go tool `../shared/anchors/etcd/A/etcdbench` (etcd's
// own clientv3, built GOPATH-style against Debian's golang-etcd-server-dev), started and measured
// the way that folder's run.sh does it. Members are started and stopped by PID; data, logs and the
// binary live under a work dir in /tmp. Client and peer ports are fixed below 32768, outside the
// kernel's ephemeral range the chain's ports come from, and are checked free before use.
//
// prepareEtcd() never throws: when the anchor cannot be had it returns why, in one line.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Subprocess } from "bun";
import { aptInstall, lastLine, missingPackages, run } from "./apt.ts";

const PACKAGES = ["etcd-server", "etcd-client", "golang-go", "golang-etcd-server-dev"];
const CLIENTV3_SRC = "/usr/share/gocode/src/go.etcd.io/etcd/clientv3";

export type EtcdTools = { ok: true; etcdbench: string; etcd: string; version: string } | { ok: false; reason: string };

/**
 * `../shared/anchors/<rel>` next to the repository; from a git worktree elsewhere, next to the
 * main checkout. Undefined when neither exists.
 */
export function findAnchorDir(repoRoot: string, rel: string): string | undefined {
  const roots = [repoRoot];
  const common = run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], { cwd: repoRoot, timeoutMs: 10_000 });
  if (common.ok) roots.push(path.dirname(common.out.trim()));
  return roots.map((r) => path.resolve(r, "../shared/anchors", rel)).find((d) => fs.existsSync(d));
}

function haveTools(): boolean {
  return Bun.which("etcd") !== null && Bun.which("go") !== null && fs.existsSync(CLIENTV3_SRC);
}

/** Installs what is missing (apt-get, once) and builds etcdbench under `work`; never throws. */
export function prepareEtcd(anchorDir: string, work: string, log: (s: string) => void): EtcdTools {
  const src = path.join(anchorDir, "etcdbench");
  if (!fs.existsSync(path.join(src, "main.go"))) return { ok: false, reason: `anchor source not found at ${src}` };
  if (!haveTools()) {
    const t0 = performance.now();
    const why = aptInstall(missingPackages(PACKAGES), log);
    if (why !== undefined) return { ok: false, reason: why };
    if (!haveTools()) return { ok: false, reason: "packages installed but etcd, go or the clientv3 sources are still missing" };
    log(`installed in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const bin = path.join(work, "bin", "etcdbench");
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  const fresh = fs.existsSync(bin) && fs.statSync(bin).mtimeMs > fs.statSync(path.join(src, "main.go")).mtimeMs;
  if (!fresh) {
    const t0 = performance.now();
    const env = { GO111MODULE: "off", GOPATH: `${path.join(work, "gopath")}:/usr/share/gocode`, GOCACHE: path.join(work, "gocache"), GOFLAGS: "" };
    const b = run(["go", "build", "-o", bin, "."], { cwd: src, env, timeoutMs: 900_000 });
    if (!b.ok) return { ok: false, reason: `go build of etcdbench failed: ${lastLine(b.err)}` };
    log(`built ${bin} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const v = run(["etcd", "--version"], { timeoutMs: 30_000 });
  const version = v.out.match(/etcd Version: (\S+)/)?.[1] ?? "?";
  const go = run(["go", "version"], { timeoutMs: 30_000 }).out.trim().split(" ")[2] ?? "?";
  return { ok: true, etcdbench: bin, etcd: Bun.which("etcd")!, version: `etcd ${version}, etcdbench built with ${go}` };
}

/** One JSON line from `etcdbench <cmd>`, bounded by `timeoutMs`; throws with its stderr on failure. */
async function etcdbench(bin: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const p = Bun.spawn([bin, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`etcdbench ${args[0]} failed (${code ?? p.signalCode}): ${lastLine(err) || lastLine(out)}`);
  return JSON.parse(lastLine(out)) as Record<string, unknown>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** The answer of `etcdbench leader`. */
interface LeaderAnswer {
  leader_endpoint: string;
  leader_id: number;
  members: { endpoint: string; id: number; leader: number; err?: string }[];
}

export interface SeqResult {
  puts: number;
  puts_per_s: number;
  p50_ms: number;
  p99_ms: number;
  mean_ms: number;
  [k: string]: unknown;
}

export class EtcdCluster {
  private readonly procs: (Subprocess | undefined)[];
  private readonly names: string[];
  private readonly clientPorts: number[];
  private readonly peerPorts: number[];
  private readonly onExit = () => this.killAll();

  private constructor(
    private readonly tools: Extract<EtcdTools, { ok: true }>,
    private readonly work: string,
    base: number,
    size: number,
  ) {
    this.names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
    this.clientPorts = this.names.map((_, i) => base + 100 * i);
    this.peerPorts = this.clientPorts.map((p) => p + 1);
    this.procs = this.names.map(() => undefined);
  }

  get endpoints(): string[] {
    return this.clientPorts.map((p) => `127.0.0.1:${p}`);
  }

  /** PIDs of the running members (for CPU accounting and the report). */
  get pids(): number[] {
    return this.procs.filter((p): p is Subprocess => p !== undefined).map((p) => p.pid);
  }

  /**
   * Starts a fresh cluster (data wiped) and waits until every member answers and agrees on one
   * leader. Tries a few port bases until one has all its ports free.
   */
  static async start(tools: Extract<EtcdTools, { ok: true }>, work: string, size = 3): Promise<{ cluster: EtcdCluster; startMs: number }> {
    for (const base of [23379, 24379, 25379, 26379, 27379]) {
      const ports = Array.from({ length: size }, (_, i) => [base + 100 * i, base + 100 * i + 1]).flat();
      const free = await Promise.all(ports.map(portFree));
      if (!free.every(Boolean)) continue;
      const c = new EtcdCluster(tools, work, base, size);
      fs.rmSync(path.join(work, "data"), { recursive: true, force: true });
      fs.mkdirSync(path.join(work, "logs"), { recursive: true });
      for (const n of c.names) fs.writeFileSync(c.logPath(n), "");
      process.on("exit", c.onExit);
      const t0 = performance.now();
      for (let i = 0; i < size; i++) c.startMember(i);
      try {
        await c.waitHealthy();
      } catch (e) {
        await c.stop();
        throw e;
      }
      return { cluster: c, startMs: performance.now() - t0 };
    }
    throw new Error("no free port base for the etcd cluster (tried 23379..27379)");
  }

  private logPath(name: string): string {
    return path.join(this.work, "logs", `${name}.log`);
  }

  /** As run.sh's start_member: default flags except the addresses. */
  private startMember(i: number): void {
    const n = this.names[i];
    const cluster = this.names.map((m, k) => `${m}=http://127.0.0.1:${this.peerPorts[k]}`).join(",");
    const client = `http://127.0.0.1:${this.clientPorts[i]}`;
    const peer = `http://127.0.0.1:${this.peerPorts[i]}`;
    const out = fs.openSync(this.logPath(n), "a");
    try {
      // Not inheriting ETCD_* variables: etcd reads its flags from them.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ETCD_"))) as Record<string, string>;
      this.procs[i] = Bun.spawn(
        [
          this.tools.etcd,
          "--name", n,
          "--data-dir", path.join(this.work, "data", n),
          "--listen-client-urls", client,
          "--advertise-client-urls", client,
          "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer,
          "--initial-cluster", cluster,
          "--initial-cluster-state", "new",
          "--initial-cluster-token", "e2e-bench",
          "--logger", "zap",
          "--log-outputs", "stderr",
        ],
        { env, stdin: "ignore", stdout: out, stderr: out },
      );
    } finally {
      fs.closeSync(out);
    }
  }

  /** Every member answers Status and names the same leader; bounded to `timeoutMs`. */
  async waitHealthy(timeoutMs = 60_000): Promise<{ index: number; id: number }> {
    const deadline = performance.now() + timeoutMs;
    let last = "";
    for (;;) {
      try {
        const a = (await etcdbench(this.tools.etcdbench, ["leader", "-endpoints", this.endpoints.join(",")], 10_000)) as unknown as LeaderAnswer;
        if (a.leader_endpoint && a.members.every((m) => !m.err && m.leader === a.leader_id)) {
          return { index: this.endpoints.indexOf(a.leader_endpoint), id: a.leader_id };
        }
        last = JSON.stringify(a.members.map((m) => m.err ?? m.leader));
      } catch (e) {
        last = (e as Error).message;
      }
      if (performance.now() > deadline) throw new Error(`etcd cluster not healthy after ${timeoutMs} ms (${last}); logs in ${path.join(this.work, "logs")}`);
      await Bun.sleep(100);
    }
  }

  /** `etcdbench seq` against the current leader: `n` sequential puts of `size` bytes, one client. */
  async seq(n: number, size: number, prefix: string): Promise<SeqResult> {
    const { index } = await this.waitHealthy();
    const r = await etcdbench(this.tools.etcdbench, ["seq", "-endpoints", this.endpoints[index], "-n", String(n), "-size", String(size), "-prefix", prefix], 300_000);
    return r as SeqResult;
  }

  /**
   * As run.sh's failover cycle: kill -9 the leader, time the first successful put on the
   * survivors (etcdbench failover), then restart the member and wait for the cluster to agree again.
   */
  async failover(): Promise<number> {
    const { index, id } = await this.waitHealthy();
    const survivors = this.endpoints.filter((_, i) => i !== index);
    const p = this.procs[index]!;
    const since = BigInt(Date.now()) * 1_000_000n;
    p.kill("SIGKILL");
    const r = await etcdbench(this.tools.etcdbench, ["failover", "-endpoints", survivors.join(","), "-since", String(since), "-oldleader", String(id), "-timeout", "60s"], 90_000);
    await p.exited;
    this.procs[index] = undefined;
    if (typeof r.put_ok_after_ms !== "number") throw new Error(`etcd failover: ${String(r.error ?? JSON.stringify(r))}`);
    this.startMember(index);
    await this.waitHealthy();
    return r.put_ok_after_ms;
  }

  /** SIGTERM every member, SIGKILL after 15 s. */
  async stop(): Promise<void> {
    process.off("exit", this.onExit);
    const live = this.procs.filter((p): p is Subprocess => p !== undefined && p.exitCode === null && p.signalCode === null);
    for (const p of live) p.kill("SIGTERM");
    await Promise.all(
      live.map(async (p) => {
        const timer = setTimeout(() => p.kill("SIGKILL"), 15_000);
        await p.exited;
        clearTimeout(timer);
      }),
    );
    this.procs.fill(undefined);
  }

  /** Last resort on process exit (synchronous): SIGKILL the members still running. */
  private killAll(): void {
    for (const p of this.procs) if (p !== undefined && p.exitCode === null) p.kill("SIGKILL");
  }
}
