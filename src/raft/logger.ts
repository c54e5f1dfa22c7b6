// The core logs through an injected sink (no I/O of its own). Fields are plain key/value objects.
export interface RaftLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const noop = () => {};
export const NOOP_LOGGER: RaftLogger = { debug: noop, info: noop, warn: noop, error: noop };
