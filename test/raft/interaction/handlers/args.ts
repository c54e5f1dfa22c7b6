// Reading a directive's arguments: bare numbers are node ids, `key=value` are options.
import type { NodeId } from "../../../../src/raft/types.ts";
import type { Arg, Directive } from "../datadriven.ts";

/** The bare-number arguments, as node ids, in order. */
export function ids(d: Directive): NodeId[] {
  return d.args.filter((a) => a.vals.length === 0 && /^\d+$/.test(a.key)).map((a) => BigInt(a.key));
}

/** Exactly one node id: the first bare argument. */
export function firstId(d: Directive): NodeId {
  const all = ids(d);
  if (all.length === 0) throw new Error(`${d.cmd}: a node id is required`);
  return all[0];
}

export function opt(d: Directive, key: string): Arg | undefined {
  return d.args.find((a) => a.key === key && a.vals.length > 0);
}

export function optInt(d: Directive, key: string): number | undefined {
  const a = opt(d, key);
  if (a === undefined) return undefined;
  const n = Number(a.vals[0]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${d.cmd}: ${key} must be a non-negative integer, got ${a.vals[0]}`);
  return n;
}

export function optIds(d: Directive, key: string): NodeId[] {
  return opt(d, key)?.vals.map((v) => BigInt(v)) ?? [];
}

/** The bare arguments in order (e.g. `propose 1 foo` gives ["1", "foo"]). */
export function positional(d: Directive): string[] {
  return d.args.filter((a) => a.vals.length === 0).map((a) => a.key);
}
