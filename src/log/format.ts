// One log event → one line: `<ISO time> <LEVEL> [tag] message key=value ...`. Values that
// could break the line apart (spaces, quotes, newlines, `=`) are JSON-quoted, so every event is
// exactly one line and stays machine-splittable.
import type { LogObject } from "consola/core";

const LEVEL_NAMES: Record<number, string> = { 0: "ERROR", 1: "WARN", 2: "INFO", 3: "INFO", 4: "DEBUG" };

export function levelName(obj: Pick<LogObject, "type" | "level">): string {
  if (obj.type === "fatal") return "CRITICAL";
  return LEVEL_NAMES[obj.level] ?? (obj.level < 0 ? "ERROR" : "TRACE");
}

export function formatLine(obj: LogObject): string {
  let line = `${obj.date.toISOString()} ${levelName(obj)}`;
  if (obj.tag) line += ` [${obj.tag}]`;
  const [first, ...rest] = obj.args;
  if (first !== undefined) line += " " + (typeof first === "string" ? escapeControl(first) : renderValue(first));
  for (const arg of rest) {
    if (isFields(arg)) {
      for (const [key, value] of Object.entries(arg)) line += ` ${escapeControl(key)}=${renderValue(value)}`;
    } else {
      line += " " + renderValue(arg);
    }
  }
  return line + "\n";
}

function isFields(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function renderValue(v: unknown): string {
  switch (typeof v) {
    case "string":
      return quoteIfNeeded(v);
    case "bigint":
      return v.toString(10);
    case "object":
      if (v === null) return "null";
      if (v instanceof Uint8Array) return v.toHex();
      if (v instanceof Error) return quoteIfNeeded(v.message);
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? "invalid-date" : v.toISOString();
      if (Array.isArray(v)) return `[${v.map(renderValue).join(",")}]`;
      return jsonToken(safeJson(v));
    default:
      return String(v);
  }
}

function quoteIfNeeded(s: string): string {
  return s === "" || /[\s"=\\\p{Cc}]/u.test(s) ? JSON.stringify(s) : s;
}

// JSON delimits itself; it only needs quoting when a string inside it holds whitespace.
function jsonToken(json: string): string {
  return /\s/.test(json) ? JSON.stringify(json) : json;
}

function escapeControl(s: string): string {
  return s.replace(/\p{Cc}/gu, (c) => JSON.stringify(c).slice(1, -1));
}

function safeJson(v: object): string {
  try {
    return JSON.stringify(v, (_k, x) =>
      typeof x === "bigint" ? x.toString(10) : x instanceof Uint8Array ? x.toHex() : x instanceof Error ? x.message : x,
    );
  } catch {
    return String(v); // cyclic structures
  }
}
