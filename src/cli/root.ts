// The command tree. A subcommand module is evaluated only when chosen (a dynamic import), which keeps
// `--version` and `-h` from starting the service code.
import { defineCommand, type CommandDef, type Resolvable } from "citty";
import { UsageError } from "./errors.ts";
import { VERSION } from "../config/version.ts";

export const root = defineCommand({
  meta: {
    name: "consensus",
    version: VERSION,
    description: "Raft consensus service of a CITA-Cloud node (drop-in replacement for consensus_raft)",
  },
  subCommands: {
    run: () => import("./run.ts").then((m) => m.default),
    health: () => import("./health.ts").then((m) => m.default),
    status: () => import("./status.ts").then((m) => m.default),
    demo: () => import("./demo.ts").then((m) => m.default),
  },
});

export async function subcommand(name: string): Promise<CommandDef<any>> {
  const subs = (await resolve(root.subCommands)) ?? {};
  if (!Object.hasOwn(subs, name)) throw new UsageError(`unrecognized subcommand '${name}'`);
  return (await resolve(subs[name]))!;
}

/** Unwraps citty's lazily given values (a value, a promise, or a function returning either). */
export async function resolve<T>(value: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}
