// A consola logger that records every line (message + fields) so tests can assert on logs.
import { createConsola, type ConsolaInstance, LogLevels } from "consola";

export interface LoggedLine {
  readonly level: string;
  readonly tag: string;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

export interface CapturedLog {
  readonly log: ConsolaInstance;
  readonly lines: LoggedLine[];
  has(message: string): boolean;
}

export function captureLog(): CapturedLog {
  const lines: LoggedLine[] = [];
  const log = createConsola({
    level: LogLevels.trace,
    throttle: 0,
    reporters: [
      {
        log(o) {
          const [message, fields] = o.args as [unknown, unknown];
          lines.push({
            level: o.type,
            tag: o.tag,
            message: String(message),
            fields: typeof fields === "object" && fields !== null ? (fields as Record<string, unknown>) : {},
          });
        },
      },
    ],
  });
  return { log, lines, has: (m) => lines.some((l) => l.message === m) };
}
