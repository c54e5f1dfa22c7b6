// Compares two V8-format heap snapshots (what SIGUSR2 makes a node write): live objects and their
// own bytes by constructor name, sorted by the growth in bytes from the first to the second.
//
//   bun run bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [--top 25]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: opts, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "25" } } });
if (positionals.length !== 2) {
  console.error("usage: bun run bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [--top 25]");
  process.exit(2);
}

interface Group {
  count: number;
  bytes: number;
}

/** Object count and self size by "type:name" (name is the constructor for objects). */
function summarize(file: string): { groups: Map<string, Group>; total: Group } {
  const snap = JSON.parse(readFileSync(file, "utf8"));
  const fields: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const width = fields.length;
  const nodes: number[] = snap.nodes;
  const strings: string[] = snap.strings;
  const groups = new Map<string, Group>();
  const total = { count: 0, bytes: 0 };
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    const name = type === "object" || type === "native" || type === "closure" ? strings[nodes[i + iName]] : "";
    const key = `${type}${name ? `:${name.slice(0, 60)}` : ""}`;
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += nodes[i + iSize];
    groups.set(key, g);
    total.count++;
    total.bytes += nodes[i + iSize];
  }
  return { groups, total };
}

const a = summarize(positionals[0]);
const b = summarize(positionals[1]);
const keys = new Set([...a.groups.keys(), ...b.groups.keys()]);
const rows = [...keys].map((k) => {
  const x = a.groups.get(k) ?? { count: 0, bytes: 0 };
  const y = b.groups.get(k) ?? { count: 0, bytes: 0 };
  return { k, x, y, dBytes: y.bytes - x.bytes, dCount: y.count - x.count };
});
rows.sort((p, q) => q.dBytes - p.dBytes);
const kb = (n: number) => (n / 1024).toFixed(1);
console.log(`before: ${a.total.count} objects, ${kb(a.total.bytes)} KiB; after: ${b.total.count} objects, ${kb(b.total.bytes)} KiB`);
console.log("| type:constructor | count before | count after | KiB before | KiB after | Δ KiB |");
console.log("|---|---|---|---|---|---|");
for (const r of rows.slice(0, Number(opts.top))) {
  console.log(`| ${r.k} | ${r.x.count} | ${r.y.count} | ${kb(r.x.bytes)} | ${kb(r.y.bytes)} | ${kb(r.dBytes)} |`);
}
