// promtool (Debian package `prometheus`) for the tests of example/'s rules and of /metrics.
// .ci/run installs it; a workstation without it skips those tests, CI without it fails them.

export const HAVE_PROMTOOL = Bun.which("promtool") !== null;

const ci = process.env.CI;
/** In CI a missing promtool is a failure, not a skip. */
export const PROMTOOL_REQUIRED = ci !== undefined && ci !== "" && ci !== "0" && ci !== "false";

export const PROMTOOL_MISSING = "promtool is not installed: CI must run these tests (apt-get install prometheus; .ci/run does it)";

export function promtool(...args: string[]): { code: number; stdout: string; stderr: string } {
  return promtoolWithInput(undefined, ...args);
}

export function promtoolWithInput(stdin: string | undefined, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync(["promtool", ...args], { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}
