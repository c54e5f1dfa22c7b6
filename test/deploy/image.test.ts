// The FROM scratch image: scripts/image-root.sh prepares the root folder from the compiled binary,
// then either a real Docker engine (Debian's docker.io; a private daemon started here, no registry)
// builds the Dockerfile, runs `--version`, starts a node and probes it from outside and inside,
// or, where no engine starts, the same root folder runs under chroot (with /proc). The test says
// which it did. IMAGE_TEST_MODE=docker|chroot forces one.
import { afterAll, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "../../src/devchain/grpc.ts";
import { ROOT, ensureBinary } from "../support/binary.ts";
import { waitUntil } from "../support/wait-until.ts";

const ADDRESS = "f805cf7df8dffc4fd9c98791d72d00c9587dc1d9";
const DEFAULT_CMD = ["consensus", "run", "-c", "/etc/cita-cloud/config/config.toml", "--stdout"];
const forced = process.env.IMAGE_TEST_MODE;
const isRoot = process.getuid?.() === 0;
const cleanups: (() => unknown)[] = [];
if (!isRoot) console.warn("image test: skipped: not root, so neither a Docker daemon nor chroot can run here");
afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Ran> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env } });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function ok(cmd: string[], opts?: Parameters<typeof run>[1]): Promise<string> {
  const r = await run(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

function uidOf(pid: number): string {
  return /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "?";
}

function writeNodeConfig(dir: string, ports: { grpc: number; metrics: number; network: number; controller: number }, extra = ""): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "node_address"), ADDRESS);
  writeFileSync(
    join(dir, "config.toml"),
    [
      "[consensus_raft]",
      'node_addr = "/etc/cita-cloud/config/node_address"',
      `grpc_listen_port = ${ports.grpc}`,
      `metrics_port = ${ports.metrics}`,
      `network_port = ${ports.network}`,
      `controller_port = ${ports.controller}`,
      extra,
      "",
    ].join("\n"),
  );
  // Readable by uid 1000 (mkdtemp dirs are 0700).
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
}

/** Every file under `dir` as `/path` (symlinks as `/path -> target`), sorted. */
function filesUnder(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = join(prefix, e.name);
    if (e.isSymbolicLink()) out.push(`/${rel} -> ${readlinkSync(join(dir, rel))}`);
    else if (e.isDirectory()) out.push(...filesUnder(dir, rel));
    else out.push(`/${rel}`);
  }
  return out.sort();
}

/** A private Docker daemon under `dir`; undefined (with the reason) when none can start here. */
async function startDocker(dir: string): Promise<{ docker: (args: string[], timeoutMs?: number) => Promise<Ran>; stop: () => Promise<void> } | string> {
  const dockerd = Bun.which("dockerd", { PATH: `/usr/sbin:/usr/bin:${process.env.PATH}` });
  const client = Bun.which("docker", { PATH: `/usr/bin:${process.env.PATH}` });
  if (!dockerd || !client) return "dockerd or docker not installed (apt-get install docker.io)";
  const sock = `unix://${dir}/docker.sock`;
  const log = openSync(join(dir, "dockerd.log"), "w");
  const daemon = Bun.spawn(
    [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false", `--data-root=${dir}/root`, `--exec-root=${dir}/exec`, `--pidfile=${dir}/docker.pid`, "-H", sock],
    { stdin: "ignore", stdout: log, stderr: log },
  );
  const docker = (args: string[], timeoutMs?: number) => run([client, "-H", sock, ...args], { env: { DOCKER_BUILDKIT: "0" }, timeoutMs });
  const stop = async () => {
    daemon.kill("SIGTERM");
    const timer = setTimeout(() => daemon.kill("SIGKILL"), 30_000);
    await daemon.exited;
    clearTimeout(timer);
    // dockerd leaves its network namespace mount behind; nothing may stay mounted under dir.
    const mounts = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[4])
      .filter((m) => m?.startsWith(dir))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) await run(["umount", "-l", m]);
  };
  try {
    await waitUntil(async () => daemon.exitCode !== null || (await docker(["info"], 10_000)).code === 0, "the docker daemon", 60_000, 250);
  } catch {
    // fall through: reported below
  }
  if (daemon.exitCode !== null || (await docker(["info"], 10_000)).code !== 0) {
    await stop();
    const tail = readFileSync(join(dir, "dockerd.log"), "utf8").trim().split("\n").slice(-3).join(" | ");
    return `the docker daemon did not start: ${tail}`;
  }
  return { docker, stop };
}

async function healthFromHost(bin: string, port: number): Promise<Ran> {
  return run([bin, "health", "--addr", `localhost:${port}`, "--timeout", "3000"], { timeoutMs: 20_000 });
}

test.skipIf(!isRoot)(
  "the scratch image runs the service as uid 1000 in /data (read-only root) and answers its health probe from outside",
  async () => {
    const bin = await ensureBinary();
    const work = mkdtempSync(join(tmpdir(), "image-"));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const context = join(work, "image");

    // 1. The root folder: the binary plus exactly what ldd lists, as regular files (cp -L).
    await ok([join(ROOT, "scripts/image-root.sh"), bin, context]);
    const libs = (await ok(["ldd", bin])).match(/\/\S+/g) ?? [];
    expect(libs.length).toBeGreaterThan(0);
    const rootfs = join(context, "rootfs");
    expect(filesUnder(rootfs)).toEqual(
      [...libs, "/etc/nsswitch.conf", "/usr/bin/consensus", "/usr/bin/grpc-health-probe -> consensus"].sort(),
    );
    expect(readdirSync(join(context, "data"))).toEqual([]);
    expect(lstatSync(join(rootfs, "tmp")).mode & 0o7777).toBe(0o1777);

    const [grpc, metrics, network, controller] = await freePorts(4);
    const ports = { grpc, metrics, network, controller };

    const dockerDir = mkdtempSync(join(tmpdir(), "dockerd-"));
    cleanups.push(() => rmSync(dockerDir, { recursive: true, force: true }));
    let mode = forced === "chroot" ? undefined : await startDocker(dockerDir);
    if (typeof mode === "string") {
      if (forced === "docker") throw new Error(mode);
      console.log(`image test: no Docker engine (${mode}); using chroot`);
      mode = undefined;
    }

    if (mode !== undefined) {
      const { docker, stop } = mode;
      cleanups.push(stop);
      const tag = `consensus-image-test:${process.pid}`;
      const built = await docker(["build", "-q", "-f", join(ROOT, "Dockerfile"), "-t", tag, context], 300_000);
      if (built.code !== 0) throw new Error(`docker build failed: ${built.stderr}`);
      cleanups.push(() => docker(["rmi", "-f", tag]));
      const info = JSON.parse((await docker(["image", "inspect", tag])).stdout)[0];
      expect(info.Config.User).toBe("1000:1000");
      expect(info.Config.WorkingDir).toBe("/data");
      expect(info.Config.Cmd).toEqual(DEFAULT_CMD);
      console.log(`image test: Docker engine; image ${(info.Size / 1e6).toFixed(1)} MB`);

      const version = await docker(["run", "--rm", tag, "consensus", "--version"]);
      expect(version).toMatchObject({ code: 0, stdout: "consensus_raft 6.7.4\n" });

      // The default command as Kubernetes runs it: read-only root, a fresh named volume on /data
      // (Docker seeds it from the image's /data, so it must come out owned by uid 1000).
      const cfg = join(work, "config");
      writeNodeConfig(cfg, ports);
      const name = `consensus-image-test-${process.pid}`;
      const volume = `consensus-image-test-data-${process.pid}`;
      cleanups.push(() => docker(["volume", "rm", "-f", volume]));
      const args = ["run", "-d", "--name", name, "--network", "host", "--read-only", "-v", `${volume}:/data`, "-v", `${cfg}:/etc/cita-cloud/config:ro`, tag];
      const started = await docker(args);
      expect(started.code).toBe(0);
      cleanups.push(() => docker(["rm", "-f", name]));
      await waitUntil(async () => (await healthFromHost(bin, grpc)).code === 0, "SERVING from the container, probed from the host", 60_000, 250);
      // What Kubernetes exec probes run: the binary inside the image, nothing else; cloud-config's
      // probe for the Rust image keeps working as it is.
      expect((await docker(["exec", name, "consensus", "health", "--addr", `localhost:${grpc}`])).code).toBe(0);
      expect(await docker(["exec", name, "grpc-health-probe", `-addr=localhost:${grpc}`])).toMatchObject({ code: 0, stdout: "status: SERVING\n" });
      const pid = Number((await docker(["inspect", "-f", "{{.State.Pid}}", name])).stdout.trim());
      expect(uidOf(pid)).toBe("1000");
      const data = (await docker(["volume", "inspect", "-f", "{{.Mountpoint}}", volume])).stdout.trim();
      expect(statSync(data).uid).toBe(1000);
      expect(statSync(join(data, "raft-data-dir/raft.sqlite")).uid).toBe(1000);

      const t0 = performance.now();
      expect((await docker(["stop", "-t", "10", name])).code).toBe(0);
      const stopMs = performance.now() - t0;
      expect((await docker(["inspect", "-f", "{{.State.ExitCode}}", name])).stdout.trim()).toBe("0");
      expect(stopMs).toBeLessThan(9_000); // PID 1 handles SIGTERM itself: no SIGKILL after the 10 s grace
      expect((await docker(["logs", name])).stdout).toContain("service stopped");
      console.log(`image test: docker stop took ${Math.round(stopMs)} ms`);
      expect((await healthFromHost(bin, grpc)).code).toBe(1);
      return;
    }

    // chroot: the same root folder, plus what Docker would supply (/proc, /etc/hosts) and /data.
    if (!Bun.which("chroot") || !Bun.which("mount")) throw new Error("neither Docker nor chroot/mount is available");
    console.log("image test: chroot (no Docker engine was used)");
    const proc = join(rootfs, "proc");
    mkdirSync(proc);
    await ok(["mount", "-t", "proc", "proc", proc]);
    cleanups.push(() => run(["umount", "-l", proc]));
    copyFileSync("/etc/hosts", join(rootfs, "etc/hosts"));
    mkdirSync(join(rootfs, "data"));
    chownSync(join(rootfs, "data"), 1000, 1000);
    // chroot(1) starts in /, so the data path is absolute here (Docker's WORKDIR makes it /data).
    writeNodeConfig(join(rootfs, "etc/cita-cloud/config"), ports, 'raft_data_path = "/data/raft-data-dir"');
    const inRoot = (args: string[]) => ["chroot", "--userspec=1000:1000", rootfs, ...args];

    expect(await run(inRoot(["/usr/bin/consensus", "--version"]))).toMatchObject({ code: 0, stdout: "consensus_raft 6.7.4\n" });
    const node = Bun.spawn(inRoot(DEFAULT_CMD.map((a, i) => (i === 0 ? "/usr/bin/consensus" : a))), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    cleanups.push(() => node.kill("SIGKILL"));
    const output = new Response(node.stdout).text();
    await waitUntil(async () => node.exitCode !== null || (await healthFromHost(bin, grpc)).code === 0, "SERVING from the chroot, probed from outside", 60_000, 250);
    expect(node.exitCode).toBeNull();
    expect((await run(inRoot(["/usr/bin/consensus", "health", "--addr", `localhost:${grpc}`]))).code).toBe(0);
    expect(await run(inRoot(["/usr/bin/grpc-health-probe", `-addr=localhost:${grpc}`]))).toMatchObject({ code: 0, stdout: "status: SERVING\n" });
    expect(uidOf(node.pid)).toBe("1000");
    expect(existsSync(join(rootfs, "data/raft-data-dir/raft.sqlite"))).toBe(true);
    node.kill("SIGTERM");
    expect(await node.exited).toBe(0);
    expect(await output).toContain("service stopped");
  },
  360_000,
);
