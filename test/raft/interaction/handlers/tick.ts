// tick <id> [n=K]: ticks the node K times (default 1).
import { firstId, optInt } from "./args.ts";
import type { Handler } from "./types.ts";

export const tick: Handler = (env, d) => {
  const n = env.node(firstId(d));
  const k = optInt(d, "n") ?? 1;
  for (let i = 0; i < k; i++) n.raw.tick();
};
