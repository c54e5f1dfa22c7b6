// The service's logger: a consola instance with one reporter that formats each event as a single
// line (format.ts) and hands it to a synchronous sink (stdout or a rotating file).
import { createConsola, type ConsolaInstance, type LogObject } from "consola/core";
import type { Config, LogLevel } from "../config/types.ts";
import { RotatingFileSink } from "./file-sink.ts";
import { formatLine } from "./format.ts";
import { type Sink, StdoutSink } from "./sinks.ts";

// consola's numeric levels; "critical" is consola's fatal, which shares level 0 with error, so the
// reporter filters that case by type.
const CONSOLA_LEVEL: Record<LogLevel, number> = { trace: 5, debug: 4, info: 3, warn: 1, error: 0, critical: 0 };

export interface LoggerOptions {
  level: LogLevel;
  sink: Sink;
}

export function createLogger({ level, sink }: LoggerOptions): ConsolaInstance {
  const onlyCritical = level === "critical";
  return createConsola({
    level: CONSOLA_LEVEL[level],
    // consola otherwise merges repeated messages and writes them up to a second later.
    throttle: 0,
    reporters: [
      {
        log(obj: LogObject) {
          if (onlyCritical && obj.type !== "fatal") return;
          sink.write(formatLine(obj));
        },
      },
    ],
  });
}

/** Stdout when `logToStdout`, otherwise `<logDir>/<logFileName>` with rotation. Throws a readable Error. */
export function openSink(
  cfg: Pick<Config, "logToStdout" | "logDir" | "logFileName" | "logRotateSize" | "logRotateKeep" | "logRotateCompress">,
): Sink {
  if (cfg.logToStdout) return new StdoutSink();
  return new RotatingFileSink({
    dir: cfg.logDir,
    fileName: cfg.logFileName,
    rotateSize: cfg.logRotateSize,
    keep: cfg.logRotateKeep,
    compress: cfg.logRotateCompress,
  });
}
