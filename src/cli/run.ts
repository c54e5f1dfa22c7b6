// `consensus run`: load the config, open the log, start the service and keep it running until a
// stop signal. Flags and help texts are the Rust service's (clap), typo included in spirit only.
import { defineCommand } from "citty";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { createLogger, openSink } from "../log/logger.ts";
import { UsageError } from "./errors.ts";
import { runUntilStopped } from "./lifecycle.ts";
import { SERVICE_NAME, VERSION } from "../config/version.ts";

export const STOP_TIMEOUT_MS = 5000;

export default defineCommand({
  meta: { name: "run", description: "run the service" },
  args: {
    config: {
      type: "string",
      alias: "c",
      default: "config.toml",
      valueHint: "config",
      description: "specify consensus config file path",
    },
    stdout: { type: "boolean", description: "if specified, log to stdout. Overrides the config" },
    "log-dir": { type: "string", alias: "d", description: "the log dir. Overrides the config" },
    "log-file-name": { type: "string", alias: "f", description: "the log file name. Overrides the config" },
  },
  async run({ args }) {
    const logDir = args["log-dir"];
    const logFileName = args["log-file-name"];
    if (args.stdout && (logDir !== undefined || logFileName !== undefined)) {
      throw new UsageError("'--stdout' cannot be used with '--log-dir' or '--log-file-name'", "consensus run");
    }
    const loaded = loadConfig(args.config);
    const config: Config = Object.freeze({
      ...loaded.config,
      logToStdout: args.stdout === true || loaded.config.logToStdout,
      logDir: logDir ?? loaded.config.logDir,
      logFileName: logFileName ?? loaded.config.logFileName,
    });

    const sink = openSink(config);
    const log = createLogger({ level: config.logLevel, sink });
    for (const warning of loaded.warnings) log.warn(warning);

    // Loaded here, not at the top, so that `--version` and `--help` stay fast.
    const { startService } = await import("../service/service.ts");
    await runUntilStopped({
      // Logged once the signal handlers are in place: from this line on, SIGTERM stops cleanly.
      start: () => {
        log.info(`starting ${SERVICE_NAME}`, {
          version: VERSION,
          config: config.source,
          node_address: `0x${config.nodeAddress.toHex()}`,
          pid: process.pid,
        });
        return startService(config, log);
      },
      log,
      stopTimeoutMs: STOP_TIMEOUT_MS,
    });
  },
});
