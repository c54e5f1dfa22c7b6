// example/grafana-dashboard.json imports anywhere: the data source is a variable, not a uid of
// ours; the panels the operators asked for are there, laid out on Grafana's 24-column grid; every
// query is valid PromQL (promtool parses it) and is scoped to the chosen job and nodes. That every
// metric it names exists on a running node is checked end to end (test/e2e/status.test.ts).
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dashboard, dashboardExprs } from "../support/metric-names.ts";
import { HAVE_PROMTOOL, promtool } from "../support/promtool.ts";

const d = dashboard();

describe("the Grafana dashboard", () => {
  test("the data source is a variable of type prometheus, and every panel and query uses it", () => {
    const ds = d.templating.list.find((v) => v.type === "datasource");
    expect(ds).toMatchObject({ name: "datasource", query: "prometheus" });
    for (const p of d.panels.filter((p) => p.type !== "row")) {
      expect([p.title, p.datasource]).toEqual([p.title, { type: "prometheus", uid: "${datasource}" }]);
      for (const t of p.targets ?? []) expect([p.title, t.datasource.uid]).toEqual([p.title, "${datasource}"]);
    }
    const uids = [...JSON.stringify(d).matchAll(/"uid": ?"([^"]*)"/g)].map((m) => m[1]);
    expect(new Set(uids)).toEqual(new Set(["${datasource}", "cita-consensus-raft"]));
  });

  test("the panels of the issue are there", () => {
    const titles = d.panels.map((p) => p.title);
    for (const t of [
      "Height",
      "Blocks per second",
      "Role",
      "Term",
      "Leader changes and elections",
      "Commit latency",
      "Commit backlog",
      "gRPC latency by method (p99)",
      "Dropped peer messages",
      "Queue depth against capacity",
    ]) {
      expect(titles).toContain(t);
    }
  });

  test("panel ids are unique and panels fit the 24-column grid without overlapping", () => {
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const taken = new Set<string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      expect([p.title, x >= 0 && w > 0 && x + w <= 24 && h > 0]).toEqual([p.title, true]);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          expect([p.title, taken.has(`${i},${j}`)]).toEqual([p.title, false]);
          taken.add(`${i},${j}`);
        }
    }
  });

  test("every query selects the chosen job and nodes", () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(15);
    for (const e of exprs) {
      const selectors = [...e.matchAll(/\b(consensus_[a-z_]+|[a-z]+_to_[A-Za-z]+(?:_bucket|_sum|_count)?)(\{[^}]*\})?/g)];
      for (const s of selectors) expect([e, s[2]]).toEqual([e, '{job="$job",instance=~"$instance"}']);
    }
  });

  test.skipIf(!HAVE_PROMTOOL)("every query is valid PromQL (promtool parses each as a recording rule)", () => {
    const dir = mkdtempSync(join(tmpdir(), "dashboard-promql-"));
    try {
      const rules = dashboardExprs().map(
        (e, i) =>
          `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e.replaceAll("$__rate_interval", "5m").replaceAll("$job", "chain").replaceAll("$instance", ".*"))}`,
      );
      const file = join(dir, "rules.yaml");
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join("\n")}\n`);
      const r = promtool("check", "rules", file);
      expect(r.stdout + r.stderr).toContain(`SUCCESS: ${rules.length} rules found`);
      expect(r.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
