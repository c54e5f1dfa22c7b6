// Registration of our ProcessNetworkMsg endpoint with the network service. Retried until the network
// answers code 0 (it may start after us); it runs beside the gRPC server, never in front of it.
import type { ConsolaInstance } from "consola";
import type { RegisterInfo } from "../../gen/network_pb.ts";
import { MODULE } from "../peer/envelope.ts";
import { type RetryPolicy, withRetry } from "./retry.ts";

export interface RegistrationTarget {
  registerNetworkMsgHandler(
    info: Pick<RegisterInfo, "moduleName" | "hostname" | "port">,
    options: { signal: AbortSignal },
  ): Promise<{ code: number }>;
}

/** Roughly once a second once the backoff has grown; forever until registered or aborted. */
export const REGISTRATION_RETRY: RetryPolicy = {
  minDelayMs: 250,
  maxDelayMs: 1000,
  factor: 2,
  maxElapsedMs: Infinity,
  maxAttempts: Infinity,
};

export class RegistrationRefused extends Error {
  constructor(readonly code: number) {
    super(`network service answered status code ${code}`);
    this.name = "RegistrationRefused";
  }
}

/** Resolves once registered; rejects only when `signal` aborts. */
export async function registerNetworkMsgHandler(
  network: RegistrationTarget,
  grpcPort: number,
  log: ConsolaInstance,
  signal: AbortSignal,
  policy: RetryPolicy = REGISTRATION_RETRY,
): Promise<void> {
  log.info("registering network msg handler", { port: grpcPort });
  const info = { moduleName: MODULE, hostname: "localhost", port: String(grpcPort) };
  const attempts = await withRetry(
    async (attempt) => {
      const { code } = await network.registerNetworkMsgHandler(info, { signal });
      if (code !== 0) throw new RegistrationRefused(code);
      return attempt;
    },
    {
      policy,
      signal,
      // Any failure is worth another try: without registration legacy networks never deliver to us.
      retryOn: () => true,
      onRetry: (err, attempt, delayMs) => {
        // The first failure is news; the rest would repeat it every second while the network is down.
        const level = attempt === 1 ? "warn" : "debug";
        const error = err instanceof Error ? err.message : String(err);
        log[level]("network msg handler registration failed, retrying", { attempt, delay_ms: delayMs, error });
      },
    },
  );
  log.info("network msg handler registered", { attempts });
}
