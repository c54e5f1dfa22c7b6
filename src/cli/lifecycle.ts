// Runs a service from start to exit: start it, wait for SIGTERM/SIGINT (the Rust service handled
// only SIGTERM) or for the service to end, stop it within a hard deadline. Every failure is logged
// and surfaces as one FatalError; the caller turns that into exit status 1.
import type { ConsolaInstance } from "consola";
import type { RunningService } from "../service/service.ts";
import { FatalError } from "./errors.ts";
import { errorMessage } from "../util/errors.ts";

export interface ProcessEvents {
  /** Subscribes to stop signals and to uncaught errors; returns the unsubscribe function. */
  subscribe(handlers: { signal(name: string): void; fatal(error: unknown): void }): () => void;
}

export const processEvents: ProcessEvents = {
  subscribe({ signal, fatal }) {
    const onSignal = (name: NodeJS.Signals) => signal(name);
    const onError = (error: unknown) => fatal(error);
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    process.on("uncaughtException", onError);
    process.on("unhandledRejection", onError);
    return () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      process.off("uncaughtException", onError);
      process.off("unhandledRejection", onError);
    };
  },
};

export interface RunUntilStoppedOptions {
  start: () => Promise<RunningService>;
  log: ConsolaInstance;
  /** Hard bound from the stop signal to the end of shutdown (including a start still in progress). */
  stopTimeoutMs: number;
  events?: ProcessEvents;
}

/** Resolves once the service has stopped cleanly; rejects with a FatalError (already logged) otherwise. */
export async function runUntilStopped(opts: RunUntilStoppedOptions): Promise<void> {
  const { log } = opts;
  const stopRequested = deferred<string>();
  const failure = deferred<never>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const unsubscribe = (opts.events ?? processEvents).subscribe({
    signal(name) {
      if (timer !== undefined) {
        log.warn("already stopping; signal ignored", { signal: name });
        return;
      }
      timer = setTimeout(
        () => failure.reject(new FatalError(`service did not stop within ${opts.stopTimeoutMs} ms after ${name}`)),
        opts.stopTimeoutMs,
      );
      stopRequested.resolve(name);
    },
    fatal(error) {
      failure.reject(new FatalError(`uncaught error: ${errorMessage(error)}`));
    },
  });
  // Anything awaited below also ends on a fatal error or when the stop deadline passes.
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failure.promise]);

  let phase = "service failed to start";
  try {
    const service = await guard(Promise.resolve().then(opts.start));
    phase = "service failed";
    const signal = await guard(Promise.race([service.done.then(() => undefined), stopRequested.promise]));
    if (signal === undefined) {
      log.info("service stopped by itself");
    } else {
      log.info("stopping", { signal, timeout_ms: opts.stopTimeoutMs });
      phase = "service failed to stop";
      await guard(service.stop(signal));
      log.info("stopped", { signal });
    }
  } catch (err) {
    const error = err instanceof FatalError ? err : new FatalError(`${phase}: ${errorMessage(err)}`);
    log.fatal(error.message);
    throw error;
  } finally {
    clearTimeout(timer);
    unsubscribe();
  }
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => [resolve, reject] = [res, rej]);
  promise.catch(() => {}); // observed through guard(); never an unhandled rejection on its own
  return { promise, resolve, reject };
}
