// Shared by the etcd anchors: run a command with a bound, and install missing Debian packages with
// apt-get once (root only). Nothing here throws; failures come back as one line.
export interface RunResult {
  readonly ok: boolean;
  readonly out: string;
  readonly err: string;
}

export function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs: number }): RunResult {
  try {
    const p = Bun.spawnSync(cmd, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe", timeout: opts.timeoutMs });
    return { ok: p.exitCode === 0, out: p.stdout.toString(), err: p.stderr.toString() };
  } catch (e) {
    return { ok: false, out: "", err: (e as Error).message };
  }
}

export const lastLine = (s: string) => s.trim().split("\n").pop() ?? "";

/** Packages of `packages` that dpkg does not list as installed. */
export function missingPackages(packages: readonly string[]): string[] {
  return packages.filter((p) => !run(["dpkg-query", "-W", "-f=${Status}", p], { timeoutMs: 30_000 }).out.includes("install ok installed"));
}

/**
 * `apt-get update` and `apt-get install -y packages`; undefined on success, else why not. Waits up
 * to 5 minutes for the dpkg lock (another bench may be installing at the same time).
 */
export function aptInstall(packages: readonly string[], log: (s: string) => void): string | undefined {
  if (packages.length === 0) return undefined;
  if (process.getuid?.() !== 0) return `not root, cannot apt-get install ${packages.join(" ")}`;
  if (Bun.which("apt-get") === null) return "no apt-get on this machine";
  log(`installing ${packages.join(" ")} with apt-get (once)...`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const lock = ["-o", "DPkg::Lock::Timeout=300"];
  const up = run(["apt-get", ...lock, "update"], { env, timeoutMs: 600_000 });
  if (!up.ok) return `apt-get update failed: ${lastLine(up.err)}`;
  const inst = run(["apt-get", ...lock, "install", "-y", ...packages], { env, timeoutMs: 900_000 });
  if (!inst.ok) return `apt-get install failed: ${lastLine(inst.err)}`;
  return undefined;
}
