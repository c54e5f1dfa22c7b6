// The command-line arguments both simulators take (test/sim/cli.ts for the Raft core,
// test/sim/chain/cli.ts for the chain): one parser, so their flags and errors stay alike.
import { parseArgs } from "node:util";
import type { RunResult } from "./report.ts";

export interface SimArgs {
  seeds?: string;
  from?: string;
  steps?: string;
  seed?: string;
  verbose?: boolean;
  "trace-lines"?: string;
  "keep-going"?: boolean;
  bug?: string[];
  skip?: string[];
  "ack-before-fsync"?: boolean;
  help?: boolean;
}

export interface SimCommandLine {
  readonly args: SimArgs;
  /** An integer flag >= min (the default when absent); anything else is a usage error. */
  int(name: string, v: string | undefined, dflt: number, min: number): number;
  /** Each value must be one of `known`; anything else is a usage error. */
  oneOf(values: readonly string[], known: readonly string[], what: string): void;
}

/** Parses process.argv; `--help` prints `usageText` and exits 0. `extra` adds boolean flags. */
export function parseSimArgs(name: string, usageText: string, extra: readonly ("ack-before-fsync")[] = []): SimCommandLine {
  const usage = (msg: string): never => {
    process.stderr.write(`${name}: ${msg}\n${usageText}\n`);
    process.exit(2);
  };
  let args: SimArgs;
  try {
    args = parseArgs({
      options: {
        seeds: { type: "string" },
        from: { type: "string" },
        steps: { type: "string" },
        seed: { type: "string" },
        verbose: { type: "boolean" },
        "trace-lines": { type: "string" },
        "keep-going": { type: "boolean" },
        bug: { type: "string", multiple: true },
        skip: { type: "string", multiple: true },
        ...Object.fromEntries(extra.map((f) => [f, { type: "boolean" as const }])),
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values as SimArgs;
  } catch (e) {
    return usage((e as Error).message);
  }
  if (args.help) {
    process.stdout.write(`${usageText}\n`);
    process.exit(0);
  }
  return {
    args,
    int(flag, v, dflt, min) {
      if (v === undefined) return dflt;
      if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) usage(`--${flag} must be an integer >= ${min}, got "${v}"`);
      return Number(v);
    },
    oneOf(values, known, what) {
      for (const v of values) if (!known.includes(v)) usage(`unknown ${what} "${v}"`);
    },
  };
}

/** Prints the result of one replayed seed and exits: 1 with the violation report, 0 without one. */
export function printReplayAndExit(r: RunResult<unknown, unknown>, wallMs: number, violationReport: () => string): never {
  process.stdout.write(`seed ${r.seed}: ${r.params}\n`);
  process.stdout.write(
    `  ${r.steps} steps + ${r.livenessSteps} liveness steps, ${r.simTimeMs} simulated ms, ${wallMs.toFixed(0)} ms wall, digest ${r.digest.toString(16)}\n`,
  );
  process.stdout.write(`  ${JSON.stringify(r.stats)}\n`);
  if (r.violation) {
    process.stdout.write(`${violationReport()}\n`);
    process.exit(1);
  }
  process.stdout.write("  no violation\n");
  process.exit(0);
}
