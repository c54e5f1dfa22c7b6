// The running service. This is a placeholder with the final signature; the Foundation work fills
// it with the gRPC server, network registration and probing, and the node work with Raft.
import type { ConsolaInstance } from "consola";
import type { Config } from "../config/types.ts";

export interface RunningService {
  /** Stops everything (leader hand-off first, once Raft runs). Safe to call more than once. */
  stop(reason: string): Promise<void>;
  /** Rejects with a readable Error when the service hits a fatal condition after start-up. */
  readonly done: Promise<void>;
}

export async function startService(cfg: Config, log: ConsolaInstance): Promise<RunningService> {
  log.info("service started (placeholder)", { port: cfg.grpcListenPort });
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  return {
    async stop(reason: string) {
      log.info("service stopping", { reason });
      resolveDone();
    },
    done,
  };
}
