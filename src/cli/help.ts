// Help text in the shape clap printed for the Rust service, plain text (no colours), generated
// from the citty command definitions so flags and help never drift apart.
import type { ArgsDef, CommandDef, CommandMeta } from "citty";
import { aliases } from "./argv.ts";
import { resolve } from "./root.ts";

const HELP_LINE: [string, string] = ["-h, --help", "Print help"];

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`.trimEnd()).join("\n");
}

export async function renderRootHelp(root: CommandDef<any>): Promise<string> {
  const meta = (await resolve(root.meta)) ?? {};
  const subs = (await resolve(root.subCommands)) ?? {};
  const commands: [string, string][] = [];
  for (const [name, sub] of Object.entries(subs)) {
    const subMeta: CommandMeta = (await resolve((await resolve(sub))?.meta)) ?? {};
    if (!subMeta.hidden) commands.push([name, subMeta.description ?? ""]);
  }
  commands.push(["help", "Print this message or the help of the given subcommand(s)"]);
  return [
    `${meta.name} ${meta.version}`,
    meta.description ?? "",
    "",
    `Usage: ${meta.name} [COMMAND]`,
    "",
    "Commands:",
    table(commands),
    "",
    "Options:",
    table([HELP_LINE, ["-V, --version", "Print version"]]),
    "",
  ].join("\n");
}

export async function renderCommandHelp(cmd: CommandDef<any>, usageName: string): Promise<string> {
  const meta = (await resolve(cmd.meta)) ?? {};
  const defs: ArgsDef = (await resolve(cmd.args)) ?? {};
  const rows: [string, string][] = [];
  for (const [name, def] of Object.entries(defs)) {
    const short = aliases(def)[0];
    const left = `${short ? `-${short}, ` : "    "}--${name}${def.type === "string" ? ` <${def.valueHint ?? name}>` : ""}`;
    const fallback = def.default !== undefined && def.type !== "boolean" ? ` [default: ${def.default}]` : "";
    rows.push([left, `${def.description ?? ""}${fallback}`]);
  }
  rows.push(HELP_LINE);
  return [meta.description ?? "", "", `Usage: ${usageName} [OPTIONS]`, "", "Options:", table(rows), ""].join("\n");
}
