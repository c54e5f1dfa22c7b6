// The etcd-raft anchor: builds ../shared/anchors/etcd/B/raftcore (Go, GOPATH mode against Debian's
// golang-etcd-server-dev, exactly as that folder's run.sh does) and runs it one measurement per
// process. If Go or the etcd sources are missing it tries apt-get once; when that is not possible
// it says why, and the caller carries on without the anchor.
import fs from "node:fs";
import path from "node:path";
import { aptInstall, lastLine, missingPackages, run } from "./apt.ts";

const ETCD_RAFT_SRC = "/usr/share/gocode/src/go.etcd.io/etcd/raft";
const PACKAGES = ["golang-go", "golang-etcd-server-dev"];

export type Anchor = { ok: true; bin: string; version: string } | { ok: false; reason: string };

function haveToolchain(): boolean {
  return Bun.which("go") !== null && fs.existsSync(ETCD_RAFT_SRC);
}

function tryInstall(log: (s: string) => void): string | undefined {
  const why = aptInstall(missingPackages(PACKAGES), log);
  if (why !== undefined) return why;
  return haveToolchain() ? undefined : "packages installed but go or the etcd raft sources are still missing";
}

/** Builds the anchor binary under `work`; never throws. */
export function prepareAnchor(anchorDir: string, work: string, log: (s: string) => void): Anchor {
  if (!fs.existsSync(path.join(anchorDir, "main.go"))) return { ok: false, reason: `anchor source not found at ${anchorDir}` };
  if (!haveToolchain()) {
    const why = tryInstall(log);
    if (why !== undefined) return { ok: false, reason: why };
  }
  const bin = path.join(work, "bin", "raftcore");
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  const env = {
    GO111MODULE: "off",
    GOPATH: `${path.join(work, "gopath")}:/usr/share/gocode`,
    GOCACHE: path.join(work, "gocache"),
    GOFLAGS: "",
  };
  const b = run(["go", "build", "-o", bin, "."], { cwd: anchorDir, env, timeoutMs: 600_000 });
  if (!b.ok) return { ok: false, reason: `go build failed: ${lastLine(b.err)}` };
  const v = run(["go", "version"], { timeoutMs: 30_000 });
  return { ok: true, bin, version: v.out.trim() };
}

/** One anchor measurement (one process), as its -json line. */
export function runAnchor(bin: string, args: string[]): Record<string, unknown> {
  const r = run([bin, "-json", ...args], { timeoutMs: 120_000 });
  if (!r.ok) throw new Error(`etcd anchor ${args.join(" ")} failed: ${lastLine(r.err) || lastLine(r.out)}`);
  return JSON.parse(lastLine(r.out)) as Record<string, unknown>;
}
