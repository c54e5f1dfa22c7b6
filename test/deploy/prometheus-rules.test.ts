// The alert rules in example/ load in Prometheus and behave as their unit tests say:
// `promtool check rules` and `promtool test rules` (Debian's `prometheus` package, installed by
// .ci/run). Without promtool the test is skipped on a workstation and fails in CI.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "../support/binary.ts";
import { HAVE_PROMTOOL, PROMTOOL_MISSING, PROMTOOL_REQUIRED, promtool } from "../support/promtool.ts";

const RULES = join(ROOT, "example", "prometheus-rules.yaml");
const RULE_TESTS = join(ROOT, "example", "prometheus-rules.test.yaml");

if (PROMTOOL_REQUIRED && !HAVE_PROMTOOL) {
  test("promtool is installed", () => {
    throw new Error(PROMTOOL_MISSING);
  });
}

describe.skipIf(!HAVE_PROMTOOL)("alert rules under promtool", () => {
  test("promtool check rules: the file loads, every rule is valid", () => {
    const r = promtool("check", "rules", RULES);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("SUCCESS: 10 rules found");
  });

  test("promtool test rules: each alert fires on a failing chain and stays quiet on a healthy one", () => {
    const r = promtool("test", "rules", RULE_TESTS);
    expect(r.stdout + r.stderr).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  test("every alert has a summary, a description with a likely cause and a first check, and a severity; each has a unit test", async () => {
    const rules = await Bun.file(RULES).text();
    const tests = await Bun.file(RULE_TESTS).text();
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    expect(alerts.length).toBe(10);
    const blocks = rules.split(/\n {6}- alert: /).slice(1);
    for (const block of blocks) {
      const name = block.split("\n", 1)[0];
      const text = block.replace(/\s+/g, " ");
      expect([name, /\n {10}severity: (critical|warning)\n/.test(block)]).toEqual([name, true]);
      expect([name, text.includes("summary:"), text.includes("Likely cause"), text.includes("First check")]).toEqual([name, true, true, true]);
      expect([name, tests.includes(`alertname: ${name}\n        exp_alerts:`)]).toEqual([name, true]);
    }
  });
});
