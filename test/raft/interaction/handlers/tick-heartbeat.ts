// tick-heartbeat <id>: ticks the node heartbeatTick times (a leader sends heartbeats).
import { firstId } from "./args.ts";
import type { Handler } from "./types.ts";

export const tickHeartbeat: Handler = (env, d) => {
  const n = env.node(firstId(d));
  for (let i = 0; i < n.config.heartbeatTick; i++) n.raw.tick();
};
