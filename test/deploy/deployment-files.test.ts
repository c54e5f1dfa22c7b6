// The deployment files and the operator docs agree with the binary and with each other: the
// systemd unit passes `systemd-analyze verify` without a warning; the unit, the Dockerfile and the
// Kubernetes example run the same command line, which the CLI accepts; stop timeouts outlast the
// service's own bounded stop; probes target the gRPC port; docs/operating.md names every
// subcommand, flag and metric there is; every relative link in the docs leads to a file.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { ArgsDef } from "citty";
import { parseFlags } from "../../src/cli/argv.ts";
import healthCommand, { parseAddr, parseTimeout } from "../../src/cli/health.ts";
import demoCommand from "../../src/cli/demo.ts";
import { resolve, root } from "../../src/cli/root.ts";
import runCommand, { STOP_TIMEOUT_MS } from "../../src/cli/run.ts";
import { ConsensusMetrics } from "../../src/metrics/metrics.ts";
import { ROOT, ensureBinary } from "../support/binary.ts";

const DEPLOYED = ["consensus", "run", "-c", "/etc/cita-cloud/config/config.toml", "--stdout"];
const UNIT_PATH = join(ROOT, "example/consensus.service");

/** `[Section]` → key → value (the unit has no repeated keys). */
function parseUnit(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1];
      out[section] = {};
      continue;
    }
    const eq = line.indexOf("=");
    expect(eq).toBeGreaterThan(0);
    const key = line.slice(0, eq).trim();
    expect(out[section][key]).toBeUndefined();
    out[section][key] = line.slice(eq + 1).trim();
  }
  return out;
}

function dockerfile(): Map<string, string> {
  const lines = readFileSync(join(ROOT, "Dockerfile"), "utf8").split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  const out = new Map<string, string>();
  for (const l of lines) {
    const [instruction, ...rest] = l.split(" ");
    if (!out.has(instruction)) out.set(instruction, rest.join(" "));
  }
  return out;
}

function acceptedBy(cmd: { args?: unknown }, name: string, argv: string[]): string[] {
  return parseFlags(`consensus ${name}`, argv, cmd.args as ArgsDef).normalized;
}

test.skipIf(!Bun.which("systemd-analyze"))("systemd-analyze verify accepts the unit without a single warning", async () => {
  // verify insists that ExecStart's binary exists: point it at the one just built, nothing else changes.
  const bin = await ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "systemd-unit-"));
  try {
    const unit = readFileSync(UNIT_PATH, "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/consensus ");
    writeFileSync(join(dir, "consensus.service"), unit.replace("ExecStart=/usr/local/bin/consensus ", `ExecStart=${bin} `));
    const proc = Bun.spawn(["systemd-analyze", "verify", join(dir, "consensus.service")], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: "", stderr: "" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("the systemd unit runs the deployed command as a dedicated user, restarts on failure and outlasts a clean stop", () => {
  const unit = parseUnit(readFileSync(UNIT_PATH, "utf8"));
  const svc = unit.Service;
  const exec = svc.ExecStart.split(/\s+/);
  expect(exec[0]).toBe("/usr/local/bin/consensus");
  expect(["consensus", ...exec.slice(1)]).toEqual(DEPLOYED);
  expect(acceptedBy(runCommand, "run", exec.slice(2))).toEqual(["--config=/etc/cita-cloud/config/config.toml", "--stdout"]);
  expect(svc.User).toMatch(/^[a-z][a-z0-9_-]*$/);
  expect(svc.User).not.toBe("root");
  expect(svc.WorkingDirectory).toBe(`/var/lib/${svc.StateDirectory}`);
  expect(svc.Restart).toBe("on-failure");
  expect(svc.KillSignal).toBe("SIGTERM");
  expect(Number(svc.TimeoutStopSec) * 1000).toBeGreaterThan(STOP_TIMEOUT_MS);
  expect(svc.StandardOutput).toBe("journal");
  expect(unit.Install.WantedBy).toBe("multi-user.target");
});

test("the Dockerfile: scratch, uid 1000, /data, the deployed command by default", () => {
  const d = dockerfile();
  expect(d.get("FROM")).toBe("scratch");
  expect(d.get("USER")).toBe("1000:1000");
  expect(d.get("WORKDIR")).toBe("/data");
  expect(d.has("ENTRYPOINT")).toBe(false); // like the Rust image: a command override is a whole command line
  expect(JSON.parse(d.get("CMD")!)).toEqual(DEPLOYED);
  const probe = JSON.parse(d.get("HEALTHCHECK")!.replace(/^.*?CMD /, ""));
  expect(probe[0]).toBe("consensus");
  expect(acceptedBy(healthCommand, "health", probe.slice(2))).toEqual(["--addr=localhost:50001"]);
});

test("the Kubernetes example: the deployed command, probes on the gRPC port, a grace period longer than the stop", async () => {
  const doc = Bun.YAML.parse(await Bun.file(join(ROOT, "example/k8s-consensus.yaml")).text()) as any;
  const pod = doc.spec.template.spec;
  const c = pod.containers.find((x: { name: string }) => x.name === "consensus");
  expect(c.command).toEqual(DEPLOYED);
  expect(c.workingDir).toBe("/data");
  expect(pod.securityContext.runAsUser).toBe(1000);
  const grpcPort = c.ports.find((p: { name: string }) => p.name === "grpc").containerPort;
  expect(grpcPort).toBe(50001);

  const live: string[] = c.livenessProbe.exec.command;
  expect(live.slice(0, 2)).toEqual(["consensus", "health"]);
  const flags = Object.fromEntries(acceptedBy(healthCommand, "health", live.slice(2)).map((f) => f.slice(2).split("=")));
  expect(parseAddr(flags.addr).port).toBe(grpcPort);
  // The probe must give up before Kubernetes does.
  expect(parseTimeout(flags.timeout)).toBeLessThan(c.livenessProbe.timeoutSeconds * 1000);
  expect(c.readinessProbe.grpc.port).toBe(grpcPort);
  expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(STOP_TIMEOUT_MS);
});

describe("the operator docs", () => {
  const operating = readFileSync(join(ROOT, "docs/operating.md"), "utf8");
  const synopsis = /## Command line\n\n```\n([\s\S]*?)```/.exec(operating)?.[1] ?? "";

  test("lists every subcommand and every flag in its command-line synopsis", async () => {
    const subs = Object.keys((await resolve(root.subCommands)) ?? {});
    expect(subs.length).toBeGreaterThanOrEqual(3);
    for (const name of subs) expect(synopsis).toMatch(new RegExp(`^  ${name} `, "m"));
    for (const [name, cmd] of [["run", runCommand], ["health", healthCommand], ["demo", demoCommand]] as const) {
      expect(synopsis).toContain(`consensus ${name} [OPTIONS]`);
      for (const flag of Object.keys(cmd.args as ArgsDef)) expect(synopsis).toContain(`--${flag}`);
    }
  });

  test("documents every metric the exporter registers", async () => {
    const metrics = new ConsensusMetrics([1], () => undefined);
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names.length).toBeGreaterThan(10);
    const section = /## Metrics\n([\s\S]*?)\n## /.exec(operating)?.[1] ?? "";
    expect(names.filter((n) => !section.includes(`\`${n}\``))).toEqual([]);
  });
});

describe("the docs", () => {
  const DOCS = ["README.md", "docs/operating.md", "docs/security.md", "docs/architecture.md", "docs/compatibility.md", "src/raft/README.md", "bench/README.md"];

  test("the README stays a front page: the two commands first, at most about 120 lines", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain("```sh\nnpm ci && npm start ");
    expect(readme).toContain("\nnpm test ");
    expect(readme.indexOf("npm ci && npm start")).toBeLessThan(200);
    expect(readme.split("\n").length).toBeLessThanOrEqual(130);
  });

  /** The ids GitHub gives headings: lower case, punctuation dropped, spaces to hyphens. */
  const headingIds = (file: string) =>
    new Set(
      readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("#"))
        .map((l) => l.replace(/^#+\s*/, "").trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replaceAll(" ", "-")),
    );

  test("every relative link leads to a file that exists, and to a heading in it", () => {
    const broken: string[] = [];
    for (const doc of DOCS) {
      const text = readFileSync(join(ROOT, doc), "utf8");
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue;
        const [file, anchor] = target.split("#");
        const path = file === "" ? join(ROOT, doc) : join(ROOT, dirname(doc), file);
        if (!existsSync(path)) broken.push(`${doc}: ${target}`);
        else if (anchor !== undefined && path.endsWith(".md") && !headingIds(path).has(anchor)) broken.push(`${doc}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});
