import { createConsola, type ConsolaInstance } from "consola/core";

/** The emulators log nothing unless the caller hands them a logger. */
export function silentLogger(): ConsolaInstance {
  return createConsola({ level: -999, throttle: 0 });
}
