// Strict parsing of a subcommand's flags against its citty arg definitions. citty itself ignores
// unknown flags and takes a missing value as "", so we check here (clap's rules: unknown flags,
// missing values, values on boolean flags, repeated flags and stray positionals are usage errors)
// and hand citty a normalised argv it cannot misread.
import type { ArgDef, ArgsDef } from "citty";
import { UsageError } from "./errors.ts";

export interface ParsedFlags {
  /** `-h`/`--help` was given: show the command's help and do nothing else. */
  help: boolean;
  /** The same flags as `--name=value` / `--name`, for citty's own parser. */
  normalized: string[];
}

const REPEATABLE = new WeakSet<ArgDef>();

/** Marks a string flag that may be given more than once (citty gets every occurrence). */
export function repeatable<T extends ArgDef>(def: T): T {
  REPEATABLE.add(def);
  return def;
}

export function isRepeatable(def: ArgDef): boolean {
  return REPEATABLE.has(def);
}

export function aliases(def: ArgDef): string[] {
  return "alias" in def && def.alias !== undefined ? [def.alias].flat() : [];
}

export function parseFlags(command: string, tokens: readonly string[], defs: ArgsDef): ParsedFlags {
  const options = Object.entries(defs).filter(([, d]) => d.type === "string" || d.type === "boolean");
  const byLong = new Map(options.map(([name, d]) => [name, { name, def: d }]));
  const byShort = new Map<string, { name: string; def: ArgDef }>();
  for (const [name, d] of options) for (const a of aliases(d)) byShort.set(a, { name, def: d });

  const endOfFlags = tokens.indexOf("--");
  const flagTokens = endOfFlags < 0 ? tokens : tokens.slice(0, endOfFlags);
  if (flagTokens.some((t) => t === "-h" || t === "--help")) return { help: true, normalized: [] };

  const usage = (message: string) => new UsageError(message, command);
  const seen = new Set<string>();
  const normalized: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (i === endOfFlags) {
      if (i + 1 < tokens.length) throw usage(`unexpected argument '${tokens[i + 1]}'`);
      break;
    }
    let spec: { name: string; def: ArgDef } | undefined;
    let inline: string | undefined;
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      spec = byLong.get(eq < 0 ? token.slice(2) : token.slice(2, eq));
      if (eq >= 0) inline = token.slice(eq + 1);
    } else if (token.startsWith("-") && token.length > 1) {
      spec = byShort.get(token[1]);
      if (token.length > 2) inline = token[2] === "=" ? token.slice(3) : token.slice(2);
    } else {
      throw usage(`unexpected argument '${token}'`);
    }
    if (!spec) throw usage(`unexpected argument '${token}'`);

    const flag = `--${spec.name}`;
    if (seen.has(spec.name) && !REPEATABLE.has(spec.def)) throw usage(`'${flag}' cannot be used more than once`);
    seen.add(spec.name);

    if (spec.def.type === "boolean") {
      if (inline !== undefined) throw usage(`'${flag}' takes no value, got '${token}'`);
      normalized.push(flag);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = tokens[i + 1];
      if (next !== undefined && i + 1 !== endOfFlags && !(next.startsWith("-") && next.length > 1)) {
        value = next;
        i++;
      }
    }
    if (value === undefined || value === "") {
      throw usage(`a value is required for '${flag} <${spec.def.valueHint ?? spec.name}>'`);
    }
    normalized.push(`${flag}=${value}`);
  }
  return { help: false, normalized };
}
