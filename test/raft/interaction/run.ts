// Runs one interaction script: every directive against one fresh InteractionEnv, in order.
import { type Chunk, type Directive, formatDirective, parseFile } from "./datadriven.ts";
import { InteractionEnv } from "./env.ts";
import { HANDLERS } from "./handlers/index.ts";

export interface Result {
  d: Directive;
  actual: string;
}

export function runDirective(env: InteractionEnv, d: Directive, file: string): string {
  const h = HANDLERS[d.cmd];
  if (h === undefined) throw new Error(`${file}:${d.line}: unknown command ${d.cmd}`);
  try {
    h(env, d);
  } catch (e) {
    throw new Error(`${file}:${d.line}: ${d.source}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
  return env.out.take() || "ok\n";
}

/** Runs every directive; `rewritten` is the file with each expected output replaced by the actual one. */
export function runScript(text: string, file: string): { results: Result[]; rewritten: string } {
  const chunks: Chunk[] = parseFile(text, file);
  const env = new InteractionEnv();
  const results: Result[] = [];
  let rewritten = "";
  for (const c of chunks) {
    if (c.kind === "text") {
      rewritten += c.text;
      continue;
    }
    const actual = runDirective(env, c.d, file);
    results.push({ d: c.d, actual });
    rewritten += formatDirective(c.d, actual);
  }
  return { results, rewritten };
}
