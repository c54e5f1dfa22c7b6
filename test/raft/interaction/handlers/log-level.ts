// log-level debug|info|warn|error|none: which of the core's log lines the following directives
// print. At none they print nothing at all (for the set-up part of a script).
import { LOG_LEVELS, type LogLevel } from "../env.ts";
import { positional } from "./args.ts";
import type { Handler } from "./types.ts";

export const logLevel: Handler = (env, d) => {
  const level = positional(d)[0] as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new Error(`log-level: one of ${LOG_LEVELS.join(", ")}`);
  env.out.level = level;
};
