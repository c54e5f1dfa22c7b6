// Metric names that example/'s alert rules and Grafana dashboard query, for checking them against
// what a running node exports.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./binary.ts";

export const RULES_FILE = join(ROOT, "example", "prometheus-rules.yaml");
export const DASHBOARD_FILE = join(ROOT, "example", "grafana-dashboard.json");

export interface Dashboard {
  templating: { list: { name: string; type: string; query: unknown }[] };
  panels: { id: number; type: string; title: string; datasource?: { type: string; uid: string }; gridPos: { x: number; y: number; w: number; h: number }; targets?: { expr: string; datasource: { uid: string } }[] }[];
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, "utf8"));
}

export function dashboardExprs(): string[] {
  return dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

export function ruleExprs(): string[] {
  const text = readFileSync(RULES_FILE, "utf8");
  // Each `expr: |` block: the indented lines under it.
  return [...text.matchAll(/\n( +)expr: \|\n((?:\1 {2}.*\n)+)/g)].map((m) => m[2]);
}

/** Names of the series an expression selects: this service's `consensus_*` and `<client>_to_<Method>` families. */
export function metricNames(expr: string): Set<string> {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b(consensus_[a-z_]+|[a-z]+_to_[A-Za-z]+(?:_bucket|_sum|_count)?)\b/g)) names.add(m[1]);
  return names;
}

/** The family a sample name belongs to: histogram series lose _bucket, _sum and _count. */
export function family(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, "");
}
