// Command-line entry: dispatches to a subcommand and maps the outcome to an exit status.
// 0 success, 1 config error or fatal runtime error, 2 usage error. Errors are one line on stderr.
import { runCommand } from "citty";
import { writeSync } from "node:fs";
import { basename } from "node:path";
import { ConfigError } from "../config/errors.ts";
import { parseFlags } from "./argv.ts";
import { CheckFailed, FatalError, UsageError } from "./errors.ts";
import { renderCommandHelp, renderRootHelp } from "./help.ts";
import { resolve, root, subcommand } from "./root.ts";
import { SERVICE_NAME, VERSION } from "../config/version.ts";
import { errorMessage } from "../util/errors.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Names under which the binary is the gRPC project's health probe (the Rust image shipped it). */
const PROBE_NAMES = ["grpc-health-probe", "grpc_health_probe"];

/** `invokedAs` is argv[0]: under a PROBE_NAMES name the binary is that probe (grpc-health-probe.ts). */
export async function main(argv: readonly string[], invokedAs = "consensus"): Promise<number> {
  if (PROBE_NAMES.includes(basename(invokedAs))) return (await import("./grpc-health-probe.ts")).grpcHealthProbe(argv);
  try {
    await dispatch(argv);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) {
      printErr(`usage error: ${err.message} (see '${err.command} --help')`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError) printErr(`config error: ${err.message}`);
    else if (err instanceof CheckFailed) printErr(err.message);
    else if (err instanceof FatalError) printErr(`fatal: ${err.message}`);
    else printErr(`fatal: ${errorMessage(err)}`);
    return EXIT_FAILURE;
  }
}

async function dispatch(argv: readonly string[]): Promise<void> {
  const index = argv.findIndex((t) => !t.startsWith("-"));
  for (const flag of index < 0 ? argv : argv.slice(0, index)) {
    if (flag === "-h" || flag === "--help") return print(await renderRootHelp(root));
    if (flag === "-V" || flag === "--version") return print(`${SERVICE_NAME} ${VERSION}\n`);
    throw new UsageError(`unexpected argument '${flag}'`);
  }
  if (index < 0) return print(await renderRootHelp(root));

  const [name, ...rest] = argv.slice(index);
  if (name === "help") {
    if (rest.length === 0) return print(await renderRootHelp(root));
    if (rest.length > 1) throw new UsageError(`unexpected argument '${rest[1]}'`);
    return print(await renderCommandHelp(await subcommand(rest[0]), `consensus ${rest[0]}`));
  }
  const cmd = await subcommand(name);
  const flags = parseFlags(`consensus ${name}`, rest, (await resolve(cmd.args)) ?? {});
  if (flags.help) return print(await renderCommandHelp(cmd, `consensus ${name}`));
  await runCommand(cmd, { rawArgs: flags.normalized });
}

// Output goes through writeSync so nothing is lost when the process exits right after; a closed
// pipe (EPIPE) is not an error worth dying over.
function print(text: string): void {
  try {
    writeSync(1, text);
  } catch {
    // stdout closed by the reader (e.g. `consensus -h | head -1`)
  }
}

function printErr(message: string): void {
  try {
    writeSync(2, `consensus: ${message.replace(/\s*[\r\n]+\s*/g, " ")}\n`);
  } catch {
    // nothing else to report to
  }
}
